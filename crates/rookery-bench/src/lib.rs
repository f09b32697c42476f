//! `rookery-bench`: a load generator for XMPP servers on loopback.
//!
//! Scenarios: a login storm ([`login`]), TLS handshakes alone ([`handshake`]), 1:1 chat at
//! a fixed rate or at saturation ([`chat`]), idle connections, optionally with a few
//! active pairs chatting among them ([`idle`]), one multi-user chat room's fan-out
//! ([`muc`]), and a contest room's task changes and board ([`neerc`]). Each logs in with its own light codec ([`conn`]), over plaintext, STARTTLS
//! or direct TLS, and, given the server's PID, samples its CPU time and memory from /proc
//! ([`proc`]) so it can report server CPU per login, per TLS handshake, per delivered
//! message or groupchat delivery and RSS per idle connection: figures that compare across
//! servers run on the same machine.
//!
//! Fixed rates are paced by [`pace`], finer than the runtime's 1 ms timer, and each
//! fixed-rate report says how late the sends went out.

pub mod chat;
pub mod conn;
pub mod handshake;
pub mod idle;
pub mod login;
pub mod muc;
pub mod neerc;
pub mod pace;
pub mod proc;

use anyhow::Result;
use hdrhistogram::Histogram;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

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

/// What a storm of timed attempts (logins, handshakes) came to.
pub struct Tally {
    pub ok: u64,
    pub failures: u64,
    pub first_failure: Option<String>,
    pub latency: Latency,
    /// The TLS parameters one attempt reported, if any did.
    pub tls: Option<String>,
}

impl Tally {
    /// Count each attempt's outcome: its duration and TLS parameters, or its error.
    pub fn of(results: Vec<Result<(Duration, Option<String>)>>) -> Tally {
        let mut h = histogram();
        let mut t = Tally {
            ok: 0,
            failures: 0,
            first_failure: None,
            latency: Latency::default(),
            tls: None,
        };
        for r in results {
            match r {
                Ok((d, info)) => {
                    t.ok += 1;
                    h.saturating_record(d.as_micros() as u64);
                    t.tls = t.tls.or(info);
                }
                Err(e) => {
                    t.failures += 1;
                    t.first_failure.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        t.latency = Latency::of(&h);
        t
    }
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

/// Run `f(0)` … `f(count - 1)`, each on its own task, with at most `concurrency` running
/// at once (a task is started only when a slot is free), counting finished ones on a
/// progress line named `progress` if given. The results, in order; a task that panicked
/// makes the whole call fail.
pub async fn run_bounded<T, F, Fut>(
    count: usize,
    concurrency: usize,
    progress: Option<&'static str>,
    f: F,
) -> Result<Vec<Result<T>>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let _progress = progress.map(|what| Progress::start(what, done.clone()));
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let slot = slots.clone().acquire_owned().await?;
        let (work, done) = (f(i), done.clone());
        tasks.push(tokio::spawn(async move {
            let r = work.await;
            drop(slot);
            done.fetch_add(1, Ordering::Relaxed);
            r
        }));
    }
    let mut out = Vec::with_capacity(count);
    for t in tasks {
        out.push(t.await?);
    }
    Ok(out)
}

/// Raise this process's soft limit on open files to its hard limit (each connection is a
/// socket; the soft limit is often 1024 where the hard one is much higher). Returns the
/// limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on our stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_can_be_raised_to_the_hard_limit() {
        let now = raise_open_files_limit().unwrap();
        assert!(now >= 1);
        assert_eq!(raise_open_files_limit().unwrap(), now);
    }

    #[tokio::test]
    async fn bounded_tasks_run_in_order_and_report_each_result() {
        let running = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let out = run_bounded(20, 3, None, |i| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                if i == 7 {
                    anyhow::bail!("seven")
                }
                Ok(i * 2)
            }
        })
        .await
        .unwrap();
        assert_eq!(out.len(), 20);
        assert_eq!(*out[3].as_ref().unwrap(), 6);
        assert!(out[7].is_err());
        assert!(most.load(Ordering::SeqCst) <= 3);
    }
}
