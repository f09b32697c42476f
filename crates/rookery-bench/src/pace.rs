//! Fixed-rate sending, paced finer than the runtime's timer.
//!
//! Tokio's timer has a 1 ms tick, and an `Interval` less than 5 ms late fires its missed
//! ticks back to back. A sender due every 0.34 ms therefore sent three messages at once
//! each millisecond, and fifty such senders gave the server one burst of ~150 messages a
//! millisecond instead of a steady stream: at high fixed rates the latency measured was
//! queueing behind the generator's own bursts. A [`Pacer`] is a task that releases each
//! send when it is due: it sleeps on the timer until 2 ms before, then yields to the
//! other tasks in a loop, checking the clock each turn (to within a few µs on an
//! otherwise idle runtime). Between sends closer than 2 ms the generator's core is
//! therefore always busy, and its CPU time says nothing of its load: how late sends went
//! out (the senders' lag behind their due times) is what tells whether it kept up.
//! (A pacing thread was tried too: waking the runtime's worker from another thread cost
//! the generator ~90 % of its core at 50 000 msg/s, and sends were late by 0.1–1.6 ms.)

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Sends due sooner than this are waited for by yielding to the runtime's other tasks in
/// a loop rather than by its timer, whose tick is too coarse.
const SPIN: Duration = Duration::from_millis(2);

/// `total` sends at `rate` per second, taken by `senders` in turn: send `k` is due `k /
/// rate` seconds after the start and belongs to sender `k % senders`, so each sender's own
/// sends are `senders / rate` apart and the senders are evenly staggered.
pub struct Pacer {
    gates: Vec<Arc<Semaphore>>,
    start: Instant,
    rate: u64,
    senders: u64,
    task: JoinHandle<()>,
}

impl Pacer {
    pub fn start(senders: usize, rate: u64, total: u64) -> Pacer {
        let gates: Vec<_> = (0..senders.max(1))
            .map(|_| Arc::new(Semaphore::new(0)))
            .collect();
        let (rate, n) = (rate.max(1), gates.len() as u64);
        let start = Instant::now();
        let task = {
            let gates = gates.clone();
            tokio::spawn(async move {
                let mut k = 0;
                while k < total {
                    let due = (due_by(start.elapsed(), rate) + 1).min(total);
                    for j in k..due {
                        gates[(j % n) as usize].add_permits(1);
                    }
                    k = due;
                    match due_at(k, rate).checked_sub(start.elapsed()) {
                        Some(wait) if wait > SPIN => tokio::time::sleep(wait - SPIN).await,
                        _ => tokio::task::yield_now().await,
                    }
                }
            })
        };
        Pacer {
            gates,
            start,
            rate,
            senders: n,
            task,
        }
    }

    /// What sender `i` waits on: one permit per send (take it with `acquire` and
    /// `forget`).
    pub fn gate(&self, i: usize) -> Arc<Semaphore> {
        self.gates[i].clone()
    }

    /// When sender `i`'s `j`th send was due.
    pub fn due(&self, i: usize, j: u64) -> Instant {
        self.start + due_at(j * self.senders + i as u64, self.rate)
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// When send `k` is due, from the start.
fn due_at(k: u64, rate: u64) -> Duration {
    Duration::from_nanos((k as u128 * 1_000_000_000 / rate as u128) as u64)
}

/// The last send due by `elapsed`.
fn due_by(elapsed: Duration, rate: u64) -> u64 {
    (elapsed.as_nanos() * rate as u128 / 1_000_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sends_are_due_evenly_and_taken_in_turn() {
        assert_eq!(due_at(3, 1000), Duration::from_millis(3));
        assert_eq!(due_by(Duration::from_micros(2999), 1000), 2);
        assert_eq!(due_by(Duration::from_millis(3), 1000), 3);
        let p = Pacer::start(4, 1000, 0);
        // Sender 1's third send is send 9 of all: 9 ms after the start.
        assert_eq!(p.due(1, 2) - p.start, Duration::from_millis(9));
    }

    #[tokio::test]
    async fn a_pacer_releases_every_send_once_at_its_rate() {
        let p = Pacer::start(3, 2000, 30);
        let t = Instant::now();
        for i in 0..3 {
            let g = p.gate(i);
            for _ in 0..10 {
                g.acquire().await.unwrap().forget();
            }
        }
        // 30 sends at 2000/s: the last is due 14.5 ms after the start, not sooner.
        assert!(t.elapsed() >= Duration::from_micros(14_000));
        drop(p);
    }
}
