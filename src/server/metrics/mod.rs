//! The Prometheus endpoint (`--metrics-port`): plain HTTP on its own port, `GET /metrics` in
//! the Prometheus text format. Every figure is read when scraped: the stores' queries for
//! streams and groups, the shared counters for commands and connections. Nothing on a
//! command's path is kept for it but the latency buckets of `INFO commandstats`' slots.

mod commands;
mod encode;
mod http;
mod server_figures;
mod streams;

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

pub use http::serve_metrics;

use super::state::Server;

/// Encodes every figure of the server at each scrape.
#[derive(Debug)]
struct ServerCollector(Arc<Server>);

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        server_figures::encode(&self.0, &mut encoder)?;
        commands::encode(&self.0, &mut encoder)?;
        streams::encode(&self.0, &mut encoder)
    }
}

/// The registry a scrape encodes.
fn registry(server: Arc<Server>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ServerCollector(server)));
    registry
}

/// The text a scrape returns.
fn scrape(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
    Ok(text)
}
