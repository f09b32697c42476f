//! 1:1 chat: pairs of users, one sends to the other, at a fixed total rate or as fast as a
//! window of messages in flight per pair allows. Every body carries its send time, so the
//! receiver measures latency; what never arrives is counted as lost.

use crate::conn::{Conn, Target, message};
use crate::pace::Pacer;
use crate::proc::{self, Delta, Meter};
use crate::{Accounts, Latency, Progress, histogram, run_bounded};
use anyhow::{Result, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

#[derive(Clone, Debug, serde::Serialize)]
pub struct ChatReport {
    pub pairs: usize,
    /// Requested total rate, messages/s; 0 = saturation.
    pub rate: u64,
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub seconds: f64,
    pub delivered_per_s: f64,
    pub latency: Latency,
    /// At a fixed rate, how late the generator sent each message after it was due: when
    /// this grows, the generator did not keep up and the rate was not what was asked.
    pub send_lag: Option<Latency>,
    pub server: Option<Delta>,
    /// Server CPU per delivered message, microseconds.
    pub server_cpu_per_message_us: Option<f64>,
    /// This generator's CPU time over the same span, seconds.
    pub generator_cpu_s: f64,
}

pub struct ChatParams {
    pub pairs: usize,
    /// Total messages per second over all pairs; 0 sends as fast as `window` allows.
    pub rate: u64,
    pub messages: u64,
    /// Messages in flight per pair at saturation.
    pub window: usize,
    /// At saturation, the most messages a sender writes at once: what the window allows
    /// when it gets a turn, as a buffered client would (1: one write per message).
    pub batch: usize,
    /// How long to wait for stragglers after the last send.
    pub drain: Duration,
}

/// Logins in flight while the pairs log in.
const LOGIN_CONCURRENCY: usize = 20;

/// A sender and its receiver, logged in and available.
pub struct Pair {
    pub sender: Conn,
    pub receiver: Conn,
}

/// Log in `pairs` pairs of accounts from the `first`th on (sender `first + 2i`, receiver
/// `first + 2i + 1`) and send their initial presence.
pub async fn login_pairs(
    target: &Target,
    accounts: &Accounts,
    first: usize,
    pairs: usize,
) -> Result<Vec<Pair>> {
    if accounts.count < first + pairs * 2 {
        bail!(
            "{pairs} pairs from account {} on need {} accounts; only {} are configured",
            first + 1,
            first + pairs * 2,
            accounts.count
        );
    }
    let conns = run_bounded(pairs * 2, LOGIN_CONCURRENCY, None, |i| {
        let n = first + i;
        let (t, user, pw) = (target.clone(), accounts.user(n), accounts.password.clone());
        async move {
            let mut c = Conn::login(&t, n, &user, &pw).await?;
            c.available().await?;
            Ok(c)
        }
    })
    .await?;
    let mut conns = conns.into_iter();
    let mut out = Vec::with_capacity(pairs);
    while let (Some(a), Some(b)) = (conns.next(), conns.next()) {
        out.push(Pair {
            sender: a?,
            receiver: b?,
        });
    }
    Ok(out)
}

/// Log `p.pairs` pairs in (the first accounts), then [`exchange`].
pub async fn run(
    target: &Target,
    accounts: &Accounts,
    p: &ChatParams,
    pid: Option<u32>,
) -> Result<ChatReport> {
    // Logging in is not what this scenario measures.
    let pairs = login_pairs(target, accounts, 0, p.pairs).await?;
    exchange(pairs, p, pid).await
}

/// Each sender sends `p.messages / pairs` messages to its receiver, at `p.rate` messages/s
/// over all pairs or as fast as `p.window` in flight per pair allows (`p.pairs` is not
/// used: the pairs are given).
pub async fn exchange(pairs: Vec<Pair>, p: &ChatParams, pid: Option<u32>) -> Result<ChatReport> {
    if pairs.is_empty() {
        bail!("no pairs to chat");
    }
    let npairs = pairs.len();
    let epoch = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let _progress = Progress::start("delivered", delivered.clone());
    let per_pair = p.messages / npairs as u64;
    let meter = Meter::start(pid)?;
    let me = std::process::id();
    let gen_before = proc::sample(me)?;
    let started = Instant::now();
    let pacer =
        (p.rate > 0).then(|| Arc::new(Pacer::start(npairs, p.rate, per_pair * npairs as u64)));

    let mut recv_tasks = Vec::new();
    let mut send_tasks = Vec::new();
    for (i, pair) in pairs.into_iter().enumerate() {
        let (a, b) = (pair.sender, pair.receiver);
        let to = b.jid.clone();
        let window = Arc::new(Semaphore::new(p.window.max(1)));
        let (mut reader, _bw) = b.split();
        let (_ar, mut writer) = a.split();
        let (delivered, w2) = (delivered.clone(), window.clone());
        recv_tasks.push(tokio::spawn(async move {
            let _keep = _bw;
            let mut h = histogram();
            let mut got = 0u64;
            let mut bodies = Vec::new();
            while got < per_pair {
                bodies.clear();
                if !reader.bodies(&mut bodies).await? {
                    break;
                }
                let now = epoch.elapsed().as_micros() as u64;
                for b in &bodies {
                    if let Ok(sent_us) = b.trim().parse::<u64>() {
                        h.saturating_record(now.saturating_sub(sent_us).max(1));
                        got += 1;
                    }
                }
                delivered.fetch_add(bodies.len() as u64, Ordering::Relaxed);
                w2.add_permits(bodies.len());
            }
            Ok::<_, anyhow::Error>((got, h))
        }));
        let (sent, pacer, batch) = (sent.clone(), pacer.clone(), p.batch.max(1) as u64);
        send_tasks.push(tokio::spawn(async move {
            let _keep = _ar;
            let mut buf = String::new();
            let mut lag = histogram();
            if let Some(pacer) = pacer {
                // Fixed rate: this pair's share, one write per message when it is due.
                let gate = pacer.gate(i);
                for n in 0..per_pair {
                    gate.acquire().await?.forget();
                    let late = Instant::now().saturating_duration_since(pacer.due(i, n));
                    lag.saturating_record(late.as_micros() as u64);
                    buf.clear();
                    buf.push_str(&message(&to, n, epoch.elapsed().as_micros() as u64));
                    writer.write_all(buf.as_bytes()).await?;
                    writer.flush().await?;
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                let mut n = 0;
                while n < per_pair {
                    window.acquire().await?.forget();
                    let mut k = 1;
                    while k < batch
                        && n + k < per_pair
                        && window.try_acquire().is_ok_and(|p| {
                            p.forget();
                            true
                        })
                    {
                        k += 1;
                    }
                    buf.clear();
                    let now = epoch.elapsed().as_micros() as u64;
                    for m in n..n + k {
                        buf.push_str(&message(&to, m, now));
                    }
                    writer.write_all(buf.as_bytes()).await?;
                    writer.flush().await?;
                    sent.fetch_add(k, Ordering::Relaxed);
                    n += k;
                }
            }
            Ok::<_, anyhow::Error>((writer, lag))
        }));
    }
    let mut writers = Vec::new();
    let mut lag = histogram();
    for t in send_tasks {
        let (w, l) = t.await??;
        writers.push(w);
        lag.add(&l)?;
    }
    drop(pacer);
    let sent_total = sent.load(Ordering::Relaxed);
    // Wait for the receivers, at most `drain` after the last send.
    let deadline = tokio::time::Instant::now() + p.drain;
    let mut h = histogram();
    for t in recv_tasks {
        // A receiver still waiting at the deadline lost messages; what it got is in the
        // shared counter (its latencies are not in the histogram).
        if let Ok(r) = tokio::time::timeout_at(deadline, t).await {
            let (_, hist) = r??;
            h.add(&hist)?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let server = meter.stop()?;
    let generator_cpu_s = proc::sample(me)?.cpu_s - gen_before.cpu_s;
    let delivered_total = delivered.load(Ordering::Relaxed);
    drop(writers);
    Ok(ChatReport {
        pairs: npairs,
        rate: p.rate,
        sent: sent_total,
        delivered: delivered_total,
        lost: sent_total.saturating_sub(delivered_total),
        seconds,
        delivered_per_s: delivered_total as f64 / seconds,
        latency: Latency::of(&h),
        send_lag: (p.rate > 0).then(|| Latency::of(&lag)),
        server,
        server_cpu_per_message_us: server
            .filter(|_| delivered_total > 0)
            .map(|d| d.cpu_s * 1e6 / delivered_total as f64),
        generator_cpu_s,
    })
}
