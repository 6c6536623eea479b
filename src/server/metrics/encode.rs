//! Writing metric families: one value, or one value per label set.

use std::fmt;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

/// A gauge without labels.
pub(super) fn gauge(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> fmt::Result {
    out.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// A counter without labels; the text format names it `<name>_total`.
pub(super) fn counter(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeCounterValue,
) -> fmt::Result {
    out.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// A gauge with one value per label set; nothing is written without rows.
pub(super) fn gauges<L: EncodeLabelSet>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> fmt::Result {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut family = out.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// A counter with one value per label set; nothing is written without rows.
pub(super) fn counters<L: EncodeLabelSet>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut family = out.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        family
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

/// Milliseconds as seconds.
pub(super) fn seconds_of_ms(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Microseconds as seconds.
pub(super) fn seconds_of_us(us: u64) -> f64 {
    us as f64 / 1_000_000.0
}
