//! Where a remote domain's server listens (RFC 6120 §3.2): the static map first
//! (`[s2s.hosts]` and addresses set at run time), then DNS SRV records
//! `_xmpp-server._tcp.<domain>` in priority order, then the domain itself on port 5269.

use super::outgoing::Failure;
use crate::server::Server;
use std::net::SocketAddr;

/// The port of a domain without SRV records (RFC 6120 §3.2.2).
const DEFAULT_PORT: u16 = 5269;

/// The addresses to try for `domain`, best first.
pub(super) async fn addresses(server: &Server, domain: &str) -> Result<Vec<SocketAddr>, Failure> {
    if let Some(addr) = server.s2s().static_host(domain) {
        return lookup(&addr).await.map_err(|e| {
            Failure::not_found(format!(
                "the address {addr} configured for {domain} cannot be resolved: {e}"
            ))
        });
    }
    let mut out = Vec::new();
    for (target, port) in super::srv::lookup(domain).await {
        if let Ok(addrs) = lookup(&format!("{target}:{port}")).await {
            out.extend(addrs);
        }
    }
    if out.is_empty() {
        out = lookup(&format!("{domain}:{DEFAULT_PORT}"))
            .await
            .map_err(|e| Failure::not_found(format!("{domain} was not found in DNS: {e}")))?;
    }
    Ok(out)
}

async fn lookup(host_port: &str) -> std::io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(host_port).await?.collect();
    if addrs.is_empty() {
        return Err(std::io::Error::other("no address"));
    }
    Ok(addrs)
}
