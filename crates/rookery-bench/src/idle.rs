//! Idle connections: log K users in, wait, and see what each costs the server in memory.
//! Then, optionally, a few more pairs chat at a fixed rate among the idle crowd, to show
//! whether the active users' latency stays flat as K grows.

use crate::chat::{self, ChatParams, ChatReport};
use crate::conn::{Conn, Target};
use crate::proc::Meter;
use crate::{Accounts, run_bounded};
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

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
    /// The active pairs' chat while the idle connections are held, if asked for.
    pub active: Option<ChatReport>,
}

#[derive(Clone, Debug)]
pub struct IdleParams {
    pub connections: usize,
    /// Logins in flight while connecting.
    pub concurrency: usize,
    /// How long to wait after the last login before reading the server's memory.
    pub settle: Duration,
    /// Pairs that chat among the idle connections, with the accounts after the idle ones
    /// (0: none).
    pub active_pairs: usize,
    /// Their total rate, messages/s.
    pub rate: u64,
    /// For how long they chat.
    pub active_secs: u64,
    /// How long to wait for their stragglers.
    pub drain: Duration,
}

impl IdleParams {
    /// `connections` idle connections, nothing active.
    pub fn idle(connections: usize) -> IdleParams {
        IdleParams {
            connections,
            concurrency: 100,
            settle: Duration::from_secs(3),
            active_pairs: 0,
            rate: 0,
            active_secs: 0,
            drain: Duration::from_secs(10),
        }
    }
}

pub async fn run(
    target: &Target,
    accounts: &Accounts,
    p: &IdleParams,
    pid: Option<u32>,
) -> Result<IdleReport> {
    let k = p.connections;
    let needed = k + 2 * p.active_pairs;
    if accounts.count < needed {
        bail!(
            "{k} idle connections and {} active pairs need {needed} accounts; only {} are configured",
            p.active_pairs,
            accounts.count
        );
    }
    if p.active_pairs > 0 && (p.rate == 0 || p.active_secs == 0) {
        bail!("active pairs need a rate and a duration (--rate, --active-secs)");
    }
    let meter = Meter::start(pid)?;
    let started = Instant::now();
    let logins = run_bounded(k, p.concurrency, Some("connected"), |i| {
        let (t, user, pw) = (target.clone(), accounts.user(i), accounts.password.clone());
        async move { Conn::login(&t, i, &user, &pw).await }
    })
    .await?;
    let conns = logins.into_iter().collect::<Result<Vec<Conn>>>()?;
    let login_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(p.settle).await;
    let d = meter.stop()?;
    let per = d.map(|d| (d.rss_after_kib as f64 - d.rss_before_kib as f64) / k.max(1) as f64);
    let active = if p.active_pairs > 0 {
        let pairs = chat::login_pairs(target, accounts, k, p.active_pairs).await?;
        let params = ChatParams {
            pairs: p.active_pairs,
            rate: p.rate,
            messages: p.rate * p.active_secs,
            window: 64,
            batch: 1,
            drain: p.drain,
        };
        Some(chat::exchange(pairs, &params, pid).await?)
    } else {
        None
    };
    drop(conns);
    Ok(IdleReport {
        connections: k,
        login_seconds,
        rss_before_kib: d.map(|d| d.rss_before_kib),
        rss_after_kib: d.map(|d| d.rss_after_kib),
        rss_per_connection_kib: per,
        projected_gib_per_million: per.map(|k| k * 1e6 / (1024.0 * 1024.0)),
        active,
    })
}
