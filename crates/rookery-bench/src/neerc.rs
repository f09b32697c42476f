//! The NEERC contest service (protocols.md part A): a jury and N halls in one contest
//! room; halls change the status of their tasks and every change reaches every occupant
//! as a headline broadcast carrying the whole task; the jury queries the board.
//!
//! Set-up (not measured): the first account is the jury. It enters the room (creating an
//! instant room if needed), makes every hall a member, and creates BOARD tasks assigned
//! to every hall (the board query's load), plus the task the halls will change: assigned
//! to every hall (`--small` off: each broadcast carries N statuses, the heavy case of a
//! contest-wide task) or one task per hall (`--small`: a broadcast carries one status).
//! Then the halls enter.
//!
//! Measured:
//! - the board: QUERIES `#tasks` round trips by the jury, one at a time;
//! - status changes: halls in turn set their status on their task (`todofail`: running,
//!   then fail with a reason, and again), CHANGES in all, at RATE changes/s or, at
//!   saturation, WINDOW changes in flight. Every occupant counts the broadcasts it
//!   receives; the k-th broadcast an occupant receives is the k-th change committed, so a
//!   change is done when every occupant has received k broadcasts, and its latency runs
//!   from its IQ's send to that last delivery. With one change in flight (a fixed rate
//!   below capacity) that is exact; with several it pairs the k-th sent with the k-th
//!   committed.

use crate::conn::{Conn, Target};
use crate::muc::{enter, has, instant_room, on_each, room_jid, start_tag};
use crate::pace::Pacer;
use crate::proc::{self, Delta, Meter};
use crate::{Accounts, Latency, Progress, histogram, run_bounded};
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

const NS: &str = "http://neerc.ifmo.ru/protocol/neerc";
const NS_ADMIN: &str = "http://jabber.org/protocol/muc#admin";

#[derive(Clone, Debug)]
pub struct NeercParams {
    pub room: String,
    pub halls: usize,
    /// Tasks on the board (each assigned to every hall) for the board query.
    pub board: usize,
    /// Board queries.
    pub queries: usize,
    /// Status changes in all.
    pub changes: u64,
    /// Changes per second; 0 = saturation with `window` in flight.
    pub rate: u64,
    pub window: usize,
    /// One task per hall instead of one task for all.
    pub small: bool,
    pub join_concurrency: usize,
    pub drain: Duration,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct NeercReport {
    pub room: String,
    pub halls: usize,
    pub occupants: usize,
    pub board_tasks: usize,
    /// Statuses per broadcast.
    pub statuses_per_broadcast: usize,
    pub setup_seconds: f64,
    /// The `#tasks` answer's size, bytes.
    pub board_bytes: usize,
    /// `#tasks` round trip.
    pub board: Latency,
    pub changes: u64,
    pub completed: u64,
    pub deliveries: u64,
    pub lost_deliveries: u64,
    pub seconds: f64,
    pub changes_per_s: f64,
    pub deliveries_per_s: f64,
    /// From a change's IQ to its last delivery.
    pub latency: Latency,
    pub server: Option<Delta>,
    /// Server CPU per change, milliseconds.
    pub server_cpu_per_change_ms: Option<f64>,
    /// Server CPU per delivery, microseconds.
    pub server_cpu_per_delivery_us: Option<f64>,
    pub generator_cpu_s: f64,
}

const LOGIN_CONCURRENCY: usize = 20;

/// Send an IQ and wait for its reply; fail unless it is a result.
async fn iq(c: &mut Conn, id: &str, body: &str, what: &str) -> Result<Vec<u8>> {
    c.send(body.as_bytes()).await?;
    let reply = c.iq_reply(id).await.with_context(|| what.to_owned())?;
    if !has(start_tag(&reply), "type", "result") {
        bail!("{what}: {}", String::from_utf8_lossy(&reply));
    }
    Ok(reply)
}

/// `<task>` with every hall in `halls` assigned, in an IQ with id `new-<id>`.
fn task_iq(service: &str, id: &str, title: &str, halls: &[String]) -> String {
    let mut s = format!(
        "<iq type='set' to='{service}' id='new-{id}'><task xmlns='{NS}#task' id='{id}' title='{title}' type='todofail'>"
    );
    for h in halls {
        let _ = write!(s, "<status for='{h}' type='none'/>");
    }
    s.push_str("</task></iq>");
    s
}

pub async fn run(
    target: &Target,
    accounts: &Accounts,
    p: &NeercParams,
    pid: Option<u32>,
) -> Result<NeercReport> {
    let n = p.halls + 1;
    if p.halls == 0 || accounts.count < n {
        bail!("{} halls and a jury need {n} accounts", p.halls);
    }
    let room = room_jid(&p.room, &target.domain);
    let room_name = room.split('@').next().unwrap_or_default().to_owned();
    let service = format!("{room_name}@neerc.{}", target.domain);
    let halls: Vec<String> = (1..n).map(|i| accounts.user(i)).collect();
    let started = Instant::now();

    let logins = run_bounded(n, LOGIN_CONCURRENCY, Some("logged in"), |i| {
        let (t, user, pw) = (target.clone(), accounts.user(i), accounts.password.clone());
        async move {
            let mut c = Conn::login(&t, i, &user, &pw).await?;
            c.available().await?;
            Ok(c)
        }
    })
    .await?;
    let mut conns = logins.into_iter().collect::<Result<Vec<Conn>>>()?;

    // The jury sets up the room and the tasks before the halls enter.
    let jury = &mut conns[0];
    if enter(jury, &room, &accounts.user(0)).await? {
        instant_room(jury, &room).await?;
    }
    for (k, chunk) in halls.chunks(100).enumerate() {
        let mut items = String::new();
        for h in chunk {
            let _ = write!(
                items,
                "<item jid='{h}@{}' affiliation='member'/>",
                target.domain
            );
        }
        let id = format!("aff{k}");
        let body = format!(
            "<iq type='set' to='{room}' id='{id}'><query xmlns='{NS_ADMIN}'>{items}</query></iq>"
        );
        iq(jury, &id, &body, "making the halls members").await?;
    }
    for t in 0..p.board {
        let id = format!("b{t}");
        iq(
            jury,
            &format!("new-{id}"),
            &task_iq(&service, &id, &format!("Board task {t}"), &halls),
            "creating a board task",
        )
        .await?;
    }
    // The tasks the halls change: "c" for all, or "c<i>" for hall i.
    if p.small {
        for (i, h) in halls.iter().enumerate() {
            let id = format!("c{i}");
            iq(
                jury,
                &format!("new-{id}"),
                &task_iq(
                    &service,
                    &id,
                    &format!("Task of {h}"),
                    std::slice::from_ref(h),
                ),
                "creating a hall's task",
            )
            .await?;
        }
    } else {
        iq(
            jury,
            "new-c",
            &task_iq(&service, "c", "Contest-wide task", &halls),
            "creating the contest-wide task",
        )
        .await?;
    }

    // The board query, one at a time.
    let mut board = histogram();
    let mut board_bytes = 0;
    for q in 0..p.queries {
        let id = format!("q{q}");
        let t = Instant::now();
        let reply = iq(
            jury,
            &id,
            &format!("<iq type='get' to='{service}' id='{id}'><query xmlns='{NS}#tasks'/></iq>"),
            "the board query",
        )
        .await?;
        board.saturating_record(t.elapsed().as_micros().max(1) as u64);
        board_bytes = reply.len();
    }

    // The halls enter.
    let jury_conn = conns.remove(0);
    let entered = on_each(conns, p.join_concurrency, Some("entered"), |i, mut c| {
        let (room, nick) = (room.clone(), accounts.user(i + 1));
        async move {
            enter(&mut c, &room, &nick).await?;
            Ok(c)
        }
    })
    .await?;
    let mut conns = vec![jury_conn];
    conns.extend(entered);
    let conns = on_each(conns, p.join_concurrency, None, |_, mut c| {
        let service = service.clone();
        async move {
            // The service's answer comes after everything it queued before (the clock).
            c.send(
                format!("<iq type='get' to='{service}' id='drain'><query xmlns='{NS}#ping'/></iq>")
                    .as_bytes(),
            )
            .await?;
            c.wait_for_iq("drain").await?;
            Ok(c)
        }
    })
    .await?;
    let setup_seconds = started.elapsed().as_secs_f64();

    // The changes.
    let total = p.changes;
    let epoch = Instant::now();
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let got: Arc<Vec<AtomicU32>> = Arc::new((0..total).map(|_| AtomicU32::new(0)).collect());
    let deliveries = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(histogram()));
    let window = Arc::new(Semaphore::new(if p.rate > 0 { 1 } else { p.window.max(1) }));
    let _progress = Progress::start("changes done", completed.clone());
    let me = std::process::id();
    let gen_before = proc::sample(me)?;
    let meter = Meter::start(pid)?;
    let started = Instant::now();

    let mut writers = Vec::with_capacity(n);
    let mut readers = Vec::with_capacity(n);
    for c in conns {
        let (mut reader, writer) = c.split();
        writers.push(writer);
        let (sent_at, got, deliveries, completed, latencies, window) = (
            sent_at.clone(),
            got.clone(),
            deliveries.clone(),
            completed.clone(),
            latencies.clone(),
            window.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut k = 0u64;
            let mut bodies = Vec::new();
            while k < total {
                bodies.clear();
                if !reader.bodies(&mut bodies).await? {
                    break;
                }
                let now = epoch.elapsed().as_micros() as u64;
                for b in &bodies {
                    if !b.starts_with("Task '") || k >= total {
                        continue;
                    }
                    deliveries.fetch_add(1, Ordering::Relaxed);
                    if got[k as usize].fetch_add(1, Ordering::AcqRel) + 1 == n as u32 {
                        let sent = sent_at[k as usize].load(Ordering::Acquire);
                        latencies
                            .lock()
                            .unwrap()
                            .saturating_record(now.saturating_sub(sent).max(1));
                        completed.fetch_add(1, Ordering::Relaxed);
                        window.add_permits(1);
                    }
                    k += 1;
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }

    // One driver sends the changes, from the halls in turn.
    let mut state = vec![false; p.halls]; // running?
    let pacer = (p.rate > 0).then(|| Pacer::start(1, p.rate, total));
    let gate = pacer.as_ref().map(|p| p.gate(0));
    let mut buf = String::new();
    for k in 0..total {
        match &gate {
            Some(g) => {
                g.acquire().await?.forget();
                // Below capacity, one change at a time: wait for the previous one.
                window.acquire().await?.forget();
            }
            None => window.acquire().await?.forget(),
        }
        let h = (k as usize) % p.halls;
        let task = if p.small {
            format!("c{h}")
        } else {
            "c".to_owned()
        };
        buf.clear();
        if state[h] {
            let _ = write!(
                buf,
                "<iq type='set' to='{service}' id='s{k}'><taskstatus xmlns='{NS}#taskstatus' id='{task}' type='fail' value='change {k}'/></iq>"
            );
        } else {
            let _ = write!(
                buf,
                "<iq type='set' to='{service}' id='s{k}'><taskstatus xmlns='{NS}#taskstatus' id='{task}' type='running'/></iq>"
            );
        }
        state[h] = !state[h];
        sent_at[k as usize].store(epoch.elapsed().as_micros() as u64, Ordering::Release);
        let w = &mut writers[h + 1];
        w.write_all(buf.as_bytes()).await?;
        w.flush().await?;
    }
    let deadline = tokio::time::Instant::now() + p.drain;
    for r in readers {
        if let Ok(r) = tokio::time::timeout_at(deadline, r).await {
            r??;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let server = meter.stop()?;
    let generator_cpu_s = proc::sample(me)?.cpu_s - gen_before.cpu_s;
    drop(writers);
    let completed = completed.load(Ordering::Relaxed);
    let deliveries = deliveries.load(Ordering::Relaxed);
    let latency = Latency::of(&latencies.lock().unwrap());
    Ok(NeercReport {
        room,
        halls: p.halls,
        occupants: n,
        board_tasks: p.board,
        statuses_per_broadcast: if p.small { 1 } else { p.halls },
        setup_seconds,
        board_bytes,
        board: Latency::of(&board),
        changes: total,
        completed,
        deliveries,
        lost_deliveries: (total * n as u64).saturating_sub(deliveries),
        seconds,
        changes_per_s: completed as f64 / seconds,
        deliveries_per_s: deliveries as f64 / seconds,
        latency,
        server,
        server_cpu_per_change_ms: server
            .filter(|_| completed > 0)
            .map(|d| d.cpu_s * 1e3 / completed as f64),
        server_cpu_per_delivery_us: server
            .filter(|_| deliveries > 0)
            .map(|d| d.cpu_s * 1e6 / deliveries as f64),
        generator_cpu_s,
    })
}
