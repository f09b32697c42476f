//! Multi-user chat fan-out (XEP-0045): N accounts join one room, K of them send
//! groupchat messages at a fixed total rate or as fast as a window of messages in flight
//! per sender allows, and every occupant (the senders too: a room echoes a message to its
//! sender) counts what it receives. Each body carries its send time and a sequence
//! number, so each delivery's latency is measured and what never arrives is counted as a
//! lost delivery.
//!
//! The first account enters first; if the room is new (status 201, locked until
//! configured) it accepts the default configuration by submitting an empty form (an
//! instant room, §10.1.2), then the others enter. Joining is not what this scenario
//! measures, but its cost (each entry is announced to every occupant already there) is
//! reported separately.

use crate::conn::{Conn, Target, groupchat};
use crate::pace::Pacer;
use crate::proc::{self, Delta, Meter};
use crate::{Accounts, Latency, Progress, histogram, run_bounded};
use anyhow::{Context, Result, bail};
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_OWNER: &str = "http://jabber.org/protocol/muc#owner";

#[derive(Clone, Debug, serde::Serialize)]
pub struct MucReport {
    /// The room's JID.
    pub room: String,
    pub occupants: usize,
    pub senders: usize,
    /// Requested total rate, messages/s; 0 = saturation.
    pub rate: u64,
    /// Whether this run created the room (the server answered the first entry with 201).
    pub created: bool,
    /// Seconds for every occupant to enter (after logging in).
    pub join_seconds: f64,
    /// The server during the entries.
    pub server_join: Option<Delta>,
    /// Server CPU per entry, milliseconds (each is announced to everyone already there).
    pub server_cpu_per_join_ms: Option<f64>,
    pub sent: u64,
    /// Deliveries expected: messages sent × occupants.
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub seconds: f64,
    pub deliveries_per_s: f64,
    pub messages_per_s: f64,
    /// From send to each occupant's receipt.
    pub latency: Latency,
    /// The server during the messages.
    pub server: Option<Delta>,
    /// Server CPU per delivery, microseconds.
    pub server_cpu_per_delivery_us: Option<f64>,
    /// Server CPU per message sent to the room, microseconds.
    pub server_cpu_per_message_us: Option<f64>,
    /// This generator's CPU time during the messages, seconds (near the elapsed time, it
    /// was the bottleneck).
    pub generator_cpu_s: f64,
}

#[derive(Clone, Debug)]
pub struct MucParams {
    /// `room@service`, or a room name on `conference.<domain>`.
    pub room: String,
    pub occupants: usize,
    /// How many occupants (the first ones) send.
    pub senders: usize,
    /// Total messages per second over all senders; 0 sends as fast as `window` allows.
    pub rate: u64,
    pub messages: u64,
    /// Messages in flight per sender at saturation: a message is in flight until every
    /// occupant has received it.
    pub window: usize,
    /// Entries in flight.
    pub join_concurrency: usize,
    /// How long to wait for stragglers after the last send.
    pub drain: Duration,
}

impl MucParams {
    pub fn new(occupants: usize, senders: usize, rate: u64, messages: u64) -> MucParams {
        MucParams {
            room: "bench".into(),
            occupants,
            senders,
            rate,
            messages,
            window: 8,
            join_concurrency: 20,
            drain: Duration::from_secs(10),
        }
    }
}

/// Logins in flight while the occupants log in.
const LOGIN_CONCURRENCY: usize = 20;

/// The start tag of an element (up to its first `>`).
pub(crate) fn start_tag(el: &[u8]) -> &[u8] {
    let end = el
        .iter()
        .position(|b| *b == b'>')
        .map_or(el.len(), |e| e + 1);
    &el[..end]
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Whether `el` has `name='value'` (either quote).
pub(crate) fn has(el: &[u8], name: &str, value: &str) -> bool {
    contains(el, &format!("{name}='{value}'")) || contains(el, &format!("{name}=\"{value}\""))
}

/// Enter `room` as `nick` and wait for our own presence (status 110, §7.2.3) or an
/// error. Whether the room was just created (status 201).
pub(crate) async fn enter(c: &mut Conn, room: &str, nick: &str) -> Result<bool> {
    c.send(
        format!(
            "<presence to='{room}/{nick}'><x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>"
        )
        .as_bytes(),
    )
    .await?;
    loop {
        let (_, p) = c
            .read_element(&["presence"])
            .await
            .with_context(|| format!("entering {room} as {nick}"))?;
        if has(start_tag(&p), "type", "error") {
            bail!(
                "the room refused {nick}: {}",
                String::from_utf8_lossy(&p).trim()
            );
        }
        if has(&p, "code", "110") {
            return Ok(has(&p, "code", "201"));
        }
    }
}

/// Accept the default configuration of a new room (an instant room, §10.1.2).
pub(crate) async fn instant_room(c: &mut Conn, room: &str) -> Result<()> {
    c.send(
        format!(
            "<iq type='set' to='{room}' id='instant'><query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query></iq>"
        )
        .as_bytes(),
    )
    .await?;
    let reply = c
        .iq_reply("instant")
        .await
        .context("creating an instant room")?;
    if !has(start_tag(&reply), "type", "result") {
        bail!(
            "the room refused the instant-room form: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    Ok(())
}

/// Run `f` on each connection, at most `concurrency` at once; the connections back, in
/// order, or the first error.
pub(crate) async fn on_each<F, Fut>(
    conns: Vec<Conn>,
    concurrency: usize,
    progress: Option<&'static str>,
    f: F,
) -> Result<Vec<Conn>>
where
    F: Fn(usize, Conn) -> Fut,
    Fut: Future<Output = Result<Conn>> + Send + 'static,
{
    let n = conns.len();
    let slots = Mutex::new(conns.into_iter().map(Some).collect::<Vec<_>>());
    let out = run_bounded(n, concurrency, progress, |i| {
        let c = slots.lock().unwrap()[i]
            .take()
            .expect("each connection once");
        f(i, c)
    })
    .await?;
    out.into_iter().collect()
}

/// The room's JID: `room` itself if it names a service, else on `conference.<domain>`.
pub fn room_jid(room: &str, domain: &str) -> String {
    if room.contains('@') {
        room.to_owned()
    } else {
        format!("{room}@conference.{domain}")
    }
}

pub async fn run(
    target: &Target,
    accounts: &Accounts,
    p: &MucParams,
    pid: Option<u32>,
) -> Result<MucReport> {
    let n = p.occupants;
    if n == 0 || p.senders == 0 || p.senders > n {
        bail!(
            "{} senders among {n} occupants: need 1 ≤ senders ≤ occupants",
            p.senders
        );
    }
    if accounts.count < n {
        bail!(
            "{n} occupants need {n} accounts; only {} are configured",
            accounts.count
        );
    }
    let per_sender = p.messages / p.senders as u64;
    if per_sender == 0 {
        bail!("{} messages for {} senders", p.messages, p.senders);
    }
    let room = room_jid(&p.room, &target.domain);

    // Log everyone in (not measured).
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

    // Enter: the first occupant creates the room, then the others.
    let meter = Meter::start(pid)?;
    let started = Instant::now();
    let created = enter(&mut conns[0], &room, &accounts.user(0)).await?;
    if created {
        instant_room(&mut conns[0], &room).await?;
    }
    let others = conns.split_off(1);
    let entered = on_each(others, p.join_concurrency, Some("entered"), |i, mut c| {
        let (room, nick) = (room.clone(), accounts.user(i + 1));
        async move {
            if enter(&mut c, &room, &nick).await? {
                bail!("{nick} created {room}: it should exist already");
            }
            Ok(c)
        }
    })
    .await?;
    conns.extend(entered);
    // Everyone has entered; let the announcements of later entries, the subject and any
    // configuration notice reach everyone: a ping to the room is answered after what the
    // room sent before it.
    let conns = on_each(conns, p.join_concurrency, None, |_, mut c| {
        let room = room.clone();
        async move {
            c.send(
                format!("<iq type='get' to='{room}' id='drain'><ping xmlns='urn:xmpp:ping'/></iq>")
                    .as_bytes(),
            )
            .await?;
            c.wait_for_iq("drain").await?;
            Ok(c)
        }
    })
    .await?;
    let join_seconds = started.elapsed().as_secs_f64();
    let server_join = meter.stop()?;

    // The messages.
    let total = per_sender * p.senders as u64;
    let epoch = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    // Deliveries still due per message; the last one frees a slot in its sender's window.
    let due: Arc<Vec<AtomicU32>> = Arc::new((0..total).map(|_| AtomicU32::new(n as u32)).collect());
    let windows: Arc<Vec<Semaphore>> = Arc::new(
        (0..p.senders)
            .map(|_| Semaphore::new(p.window.max(1)))
            .collect(),
    );
    let _progress = Progress::start("delivered", delivered.clone());
    let me = std::process::id();
    let gen_before = proc::sample(me)?;
    let meter = Meter::start(pid)?;
    let started = Instant::now();
    let pacer = (p.rate > 0).then(|| Arc::new(Pacer::start(p.senders, p.rate, total)));

    let mut recv_tasks = Vec::with_capacity(n);
    let mut send_tasks = Vec::with_capacity(p.senders);
    let mut idle_writers = Vec::new();
    for (i, c) in conns.into_iter().enumerate() {
        let (mut reader, mut writer) = c.split();
        let (delivered, due, slots) = (delivered.clone(), due.clone(), windows.clone());
        recv_tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut got = 0u64;
            let mut bodies = Vec::new();
            while got < total {
                bodies.clear();
                if !reader.bodies(&mut bodies).await? {
                    break;
                }
                let now = epoch.elapsed().as_micros() as u64;
                let mut counted = 0;
                for b in &bodies {
                    let Some((sent_us, seq)) = b.trim().split_once(' ') else {
                        continue;
                    };
                    let (Ok(sent_us), Ok(seq)) = (sent_us.parse::<u64>(), seq.parse::<u64>())
                    else {
                        continue;
                    };
                    let Some(left) = due.get(seq as usize) else {
                        continue;
                    };
                    h.saturating_record(now.saturating_sub(sent_us).max(1));
                    counted += 1;
                    if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                        slots[(seq / per_sender) as usize].add_permits(1);
                    }
                }
                got += counted;
                delivered.fetch_add(counted, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(h)
        }));
        if i >= p.senders {
            // Kept open until the end: dropping a write half would close the stream.
            idle_writers.push(writer);
            continue;
        }
        let (sent, windows, room) = (sent.clone(), windows.clone(), room.clone());
        // Fixed rate: this sender's share, released when due; else a window in flight.
        let gate = pacer.as_ref().map(|p| p.gate(i));
        send_tasks.push(tokio::spawn(async move {
            let mut buf = String::new();
            let first = i as u64 * per_sender;
            for seq in first..first + per_sender {
                match &gate {
                    Some(g) => g.acquire().await?.forget(),
                    None => windows[i].acquire().await?.forget(),
                }
                buf.clear();
                buf.push_str(&groupchat(&room, seq, epoch.elapsed().as_micros() as u64));
                writer.write_all(buf.as_bytes()).await?;
                writer.flush().await?;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(writer)
        }));
    }
    let mut writers = Vec::new();
    for t in send_tasks {
        writers.push(t.await??);
    }
    drop(pacer);
    let sent_total = sent.load(Ordering::Relaxed);
    // Wait for the occupants, at most `drain` after the last send.
    let deadline = tokio::time::Instant::now() + p.drain;
    let mut h = histogram();
    for t in recv_tasks {
        // An occupant still waiting at the deadline lost deliveries; what it got is in the
        // shared counter (its latencies are not in the histogram).
        if let Ok(r) = tokio::time::timeout_at(deadline, t).await {
            h.add(&r??)?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let server = meter.stop()?;
    let generator_cpu_s = proc::sample(me)?.cpu_s - gen_before.cpu_s;
    let delivered_total = delivered.load(Ordering::Relaxed);
    let expected = sent_total * n as u64;
    drop((writers, idle_writers));
    Ok(MucReport {
        room,
        occupants: n,
        senders: p.senders,
        rate: p.rate,
        created,
        join_seconds,
        server_join,
        server_cpu_per_join_ms: server_join.map(|d| d.cpu_s * 1e3 / n as f64),
        sent: sent_total,
        expected,
        delivered: delivered_total,
        lost: expected.saturating_sub(delivered_total),
        seconds,
        deliveries_per_s: delivered_total as f64 / seconds,
        messages_per_s: sent_total as f64 / seconds,
        latency: Latency::of(&h),
        server,
        server_cpu_per_delivery_us: server
            .filter(|_| delivered_total > 0)
            .map(|d| d.cpu_s * 1e6 / delivered_total as f64),
        server_cpu_per_message_us: server
            .filter(|_| sent_total > 0)
            .map(|d| d.cpu_s * 1e6 / sent_total as f64),
        generator_cpu_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_named_on_the_conference_service_unless_given_whole() {
        assert_eq!(room_jid("bench", "localhost"), "bench@conference.localhost");
        assert_eq!(room_jid("r@muc.example", "localhost"), "r@muc.example");
    }

    #[test]
    fn status_codes_and_types_are_found_with_either_quote() {
        let own = br#"<presence from="r@c/me"><x xmlns='http://jabber.org/protocol/muc#user'><status code="110"/><status code='201'/></x></presence>"#;
        assert!(has(own, "code", "110") && has(own, "code", "201"));
        assert!(!has(start_tag(own), "type", "error"));
        let refused = b"<presence type='error' from='r@c/me'><error type='cancel'/></presence>";
        assert!(has(start_tag(refused), "type", "error"));
        assert_eq!(
            start_tag(b"<iq type='result' id='x'/>"),
            b"<iq type='result' id='x'/>"
        );
    }
}
