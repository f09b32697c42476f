//! Login storm: connect, authenticate, bind and close, with a bounded number in flight.
//! Over STARTTLS or direct TLS, each login includes a full TLS handshake.

use crate::conn::{Conn, Target};
use crate::proc::{Delta, Meter};
use crate::{Accounts, Latency, Tally, run_bounded};
use anyhow::Result;
use std::time::Instant;

#[derive(Clone, Debug, serde::Serialize)]
pub struct LoginReport {
    pub logins: u64,
    pub failures: u64,
    pub first_failure: Option<String>,
    pub seconds: f64,
    pub logins_per_s: f64,
    pub latency: Latency,
    pub server: Option<Delta>,
    /// Server CPU per successful login, milliseconds.
    pub server_cpu_per_login_ms: Option<f64>,
    /// TLS version, cipher suite and key exchange of the first login, if over TLS.
    pub tls: Option<String>,
}

pub async fn run(
    target: &Target,
    accounts: &Accounts,
    logins: usize,
    concurrency: usize,
    pid: Option<u32>,
) -> Result<LoginReport> {
    let meter = Meter::start(pid)?;
    let started = Instant::now();
    let results = run_bounded(logins, concurrency, Some("logins"), |i| {
        let (t, user, pw) = (target.clone(), accounts.user(i), accounts.password.clone());
        async move {
            let t0 = Instant::now();
            let c = Conn::login(&t, i, &user, &pw).await?;
            let took = t0.elapsed();
            let tls = if i == 0 { c.tls_info() } else { None };
            c.close().await?;
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
    Ok(LoginReport {
        logins: ok,
        failures,
        first_failure,
        seconds,
        logins_per_s: ok as f64 / seconds,
        latency,
        server,
        server_cpu_per_login_ms: server.filter(|_| ok > 0).map(|d| d.cpu_s * 1e3 / ok as f64),
        tls,
    })
}
