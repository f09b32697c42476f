//! TLS handshakes alone: connect, negotiate TLS (for STARTTLS: stream header, features,
//! `<starttls/>`, `<proceed/>`, then the handshake), and close, with a bounded number in
//! flight. Set against a login storm over TLS, this splits the server's CPU per TLS login
//! into the handshake and the rest (stream, SASL, binding).

use crate::conn::{Conn, Target, TlsMode};
use crate::proc::{Delta, Meter};
use crate::{Latency, Tally, run_bounded};
use anyhow::{Result, bail};
use std::time::Instant;

#[derive(Clone, Debug, serde::Serialize)]
pub struct HandshakeReport {
    pub tls_mode: TlsMode,
    pub handshakes: u64,
    pub failures: u64,
    pub first_failure: Option<String>,
    pub seconds: f64,
    pub handshakes_per_s: f64,
    /// From the start of the TCP connection to the end of the TLS handshake.
    pub latency: Latency,
    pub server: Option<Delta>,
    /// Server CPU per successful handshake (connection and close included), milliseconds.
    pub server_cpu_per_handshake_ms: Option<f64>,
    /// TLS version, cipher suite and key exchange of the first handshake.
    pub tls: Option<String>,
}

pub async fn run(
    target: &Target,
    handshakes: usize,
    concurrency: usize,
    pid: Option<u32>,
) -> Result<HandshakeReport> {
    if target.tls == TlsMode::None {
        bail!("the handshake scenario needs --tls starttls or --tls direct");
    }
    let meter = Meter::start(pid)?;
    let started = Instant::now();
    let results = run_bounded(handshakes, concurrency, Some("handshakes"), |i| {
        let t = target.clone();
        async move {
            let t0 = Instant::now();
            let c = Conn::tls_handshake(&t, i).await?;
            let took = t0.elapsed();
            let tls = if i == 0 { c.tls_info() } else { None };
            c.shutdown().await?;
            Ok((took, tls))
        }
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let server = meter.stop()?;
    let Tally {
        ok,
        failures,
        first_failure,
        latency,
        tls,
    } = Tally::of(results);
    Ok(HandshakeReport {
        tls_mode: target.tls,
        handshakes: ok,
        failures,
        first_failure,
        seconds,
        handshakes_per_s: ok as f64 / seconds,
        latency,
        server,
        server_cpu_per_handshake_ms: server.filter(|_| ok > 0).map(|d| d.cpu_s * 1e3 / ok as f64),
        tls,
    })
}
