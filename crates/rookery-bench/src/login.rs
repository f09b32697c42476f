//! Login storm: connect, authenticate, bind and close, with a bounded number in flight.

use crate::conn::{Conn, Target};
use crate::proc::{Delta, Meter};
use crate::{Accounts, Latency, Progress, histogram};
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::Semaphore;

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
}

pub async fn run(
    target: &Target,
    accounts: &Accounts,
    logins: usize,
    concurrency: usize,
    pid: Option<u32>,
) -> Result<LoginReport> {
    let done = Arc::new(AtomicU64::new(0));
    let _progress = Progress::start("logins", done.clone());
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let meter = Meter::start(pid)?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(logins);
    for i in 0..logins {
        let permit = limit.clone().acquire_owned().await?;
        let (t, user, pw, done) = (
            target.clone(),
            accounts.user(i),
            accounts.password.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let t0 = Instant::now();
            let r = async {
                let c = Conn::login(&t, i, &user, &pw).await?;
                let took = t0.elapsed();
                c.close().await?;
                Ok::<_, anyhow::Error>(took)
            }
            .await;
            done.fetch_add(1, Ordering::Relaxed);
            r
        }));
    }
    let mut h = histogram();
    let (mut ok, mut failures, mut first_failure) = (0u64, 0u64, None);
    for t in tasks {
        match t.await? {
            Ok(d) => {
                ok += 1;
                h.saturating_record(d.as_micros() as u64);
            }
            Err(e) => {
                failures += 1;
                first_failure.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let server = meter.stop()?;
    Ok(LoginReport {
        logins: ok,
        failures,
        first_failure,
        seconds,
        logins_per_s: ok as f64 / seconds,
        latency: Latency::of(&h),
        server,
        server_cpu_per_login_ms: server.filter(|_| ok > 0).map(|d| d.cpu_s * 1e3 / ok as f64),
    })
}
