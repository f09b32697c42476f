//! `rookery-bench`: a load generator for XMPP servers on loopback.
//!
//! Scenarios: a login storm ([`login`]), 1:1 chat at a fixed rate or at saturation
//! ([`chat`]) and idle connections ([`idle`]). Each logs in with its own light codec
//! ([`conn`]) and, given the server's PID, samples its CPU time and memory from /proc
//! ([`proc`]) so it can report server CPU per login, per delivered message and RSS per idle
//! connection: figures that compare across servers run on the same machine.

pub mod chat;
pub mod conn;
pub mod idle;
pub mod login;
pub mod proc;

use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The test accounts: `{prefix}1` … `{prefix}{count}`, all with one password.
#[derive(Clone, Debug)]
pub struct Accounts {
    pub prefix: String,
    pub password: String,
    pub count: usize,
}

impl Accounts {
    /// The localpart of the `i`th account (0-based).
    pub fn user(&self, i: usize) -> String {
        format!("{}{}", self.prefix, i % self.count.max(1) + 1)
    }
}

/// Latency percentiles, microseconds.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// A histogram for microsecond latencies up to an hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// Prints a progress line to stderr every second until dropped.
pub struct Progress {
    stop: Arc<AtomicU64>,
}

impl Progress {
    pub fn start(what: &'static str, counter: Arc<AtomicU64>) -> Progress {
        let stop = Arc::new(AtomicU64::new(0));
        let s = stop.clone();
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            while s.load(Ordering::Relaxed) == 0 {
                tick.tick().await;
                let now = counter.load(Ordering::Relaxed);
                eprint!("\r{what}: {now} ({}/s)        ", now - last);
                last = now;
            }
            eprintln!();
        });
        Progress { stop }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(1, Ordering::Relaxed);
    }
}
