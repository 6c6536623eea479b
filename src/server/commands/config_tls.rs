//! `CONFIG GET` and `CONFIG SET` of the TLS names. The TLS names of one `CONFIG SET` are
//! applied together, as one reload: a new certificate and its new key must be put in use at
//! once, since neither works with the other's predecessor.

use bytes::Bytes;

use super::Ctx;
use crate::server::resp::Value;
use crate::server::tls::TlsSettings;

/// Whether `name` (any case) is a TLS setting.
pub(super) fn is_tls_name(name: &[u8]) -> bool {
    TlsSettings::NAMES
        .iter()
        .any(|known| known.as_bytes().eq_ignore_ascii_case(name))
}

/// Applies the TLS pairs among a `CONFIG SET`'s `name value` pairs, reloading every TLS file
/// once; the other pairs are left to the caller. A file that does not load refuses the whole
/// change, and the material in use stays as it was.
pub(super) fn set(ctx: &Ctx<'_>, pairs: &[Bytes]) -> Result<(), Value> {
    let mut tls_pairs = pairs
        .chunks(2)
        .filter(|pair| is_tls_name(&pair[0]))
        .peekable();
    let Some(first) = tls_pairs.peek() else {
        return Ok(());
    };
    let blamed = String::from_utf8_lossy(&first[0]).to_ascii_lowercase();
    let failed = |reason: &str| {
        Value::error(format!(
            "ERR CONFIG SET failed (possibly related to argument '{blamed}') - {reason}"
        ))
    };
    let mut settings = ctx.server.config.read().tls.clone();
    for pair in tls_pairs {
        let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        let value = String::from_utf8_lossy(&pair[1]);
        let changes_start_only = match name.as_str() {
            // The listeners are bound once, at start.
            "tls-port" => value.parse() != Ok(settings.port),
            // Every node of a cluster must speak the same on the bus.
            "tls-cluster" => settings.value(&name).as_deref() != Some(&*value.to_ascii_lowercase()),
            _ => false,
        };
        if changes_start_only {
            return Err(failed("can't set immutable config"));
        }
        if let Some(Err(reason)) = settings.apply(&name, &value) {
            return Err(failed(&reason));
        }
    }
    ctx.server.use_tls_settings(settings).map_err(|error| {
        tracing::warn!(%error, "CONFIG SET: TLS material not reloaded; the previous material stays in use");
        failed(&format!("Unable to update TLS configuration: {error}"))
    })?;
    tracing::info!("CONFIG SET: TLS material reloaded");
    Ok(())
}
