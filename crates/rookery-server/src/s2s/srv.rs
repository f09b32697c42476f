//! DNS SRV lookups for `_xmpp-server._tcp.<domain>` (RFC 6120 §3.2.1).

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
use std::sync::OnceLock;
use std::time::Duration;

/// The system's resolver, made on first use; `None` when it has no configuration.
fn resolver() -> Option<&'static TokioResolver> {
    static RESOLVER: OnceLock<Option<TokioResolver>> = OnceLock::new();
    RESOLVER
        .get_or_init(|| {
            let mut builder = match TokioResolver::builder_tokio() {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "no DNS configuration: SRV lookups disabled");
                    return None;
                }
            };
            let opts = builder.options_mut();
            opts.timeout = Duration::from_secs(3);
            opts.attempts = 1;
            builder.build().ok()
        })
        .as_ref()
}

/// The targets of `_xmpp-server._tcp.<domain>`, lowest priority first and, within a
/// priority, heaviest weight first; none when there are no records (or DNS fails).
pub(super) async fn lookup(domain: &str) -> Vec<(String, u16)> {
    let Some(resolver) = resolver() else {
        return Vec::new();
    };
    let name = format!("_xmpp-server._tcp.{domain}.");
    let lookup = match resolver.srv_lookup(name.as_str()).await {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(%domain, error = %e, "no SRV records");
            return Vec::new();
        }
    };
    let mut records: Vec<(u16, u16, String, u16)> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some((
                srv.priority,
                srv.weight,
                srv.target.to_ascii().trim_end_matches('.').to_owned(),
                srv.port,
            )),
            _ => None,
        })
        .collect();
    // A single target "." says the service is not offered (RFC 2782).
    records.retain(|r| !r.2.is_empty());
    records.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    records.into_iter().map(|(_, _, t, p)| (t, p)).collect()
}
