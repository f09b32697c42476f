//! Idle connections: log K users in, wait, and see what each costs the server in memory.

use crate::conn::{Conn, Target};
use crate::proc::Meter;
use crate::{Accounts, Progress};
use anyhow::{Result, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Clone, Debug, serde::Serialize)]
pub struct IdleReport {
    pub connections: usize,
    pub login_seconds: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// (after − before) / connections.
    pub rss_per_connection_kib: Option<f64>,
    /// What a million such connections would need, GiB (a linear projection).
    pub projected_gib_per_million: Option<f64>,
}

pub async fn run(
    target: &Target,
    accounts: &Accounts,
    connections: usize,
    concurrency: usize,
    settle: Duration,
    pid: Option<u32>,
) -> Result<IdleReport> {
    if accounts.count < connections {
        bail!(
            "{connections} idle connections need as many accounts; only {} are configured",
            accounts.count
        );
    }
    let meter = Meter::start(pid)?;
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("connected", done.clone());
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let permit = limit.clone().acquire_owned().await?;
        let (t, user, pw, done) = (
            target.clone(),
            accounts.user(i),
            accounts.password.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let c = Conn::login(&t, i, &user, &pw).await;
            done.fetch_add(1, Ordering::Relaxed);
            c
        }));
    }
    let mut conns = Vec::with_capacity(connections);
    for t in tasks {
        conns.push(t.await??);
    }
    let login_seconds = started.elapsed().as_secs_f64();
    drop(progress);
    tokio::time::sleep(settle).await;
    let d = meter.stop()?;
    let per = d.map(|d| (d.rss_after_kib as f64 - d.rss_before_kib as f64) / connections as f64);
    for c in conns {
        drop(c);
    }
    Ok(IdleReport {
        connections,
        login_seconds,
        rss_before_kib: d.map(|d| d.rss_before_kib),
        rss_after_kib: d.map(|d| d.rss_after_kib),
        rss_per_connection_kib: per,
        projected_gib_per_million: per.map(|k| k * 1e6 / (1024.0 * 1024.0)),
    })
}
