//! The session manager (seed 002 §3.3): local users' resources and their presence state.
//!
//! Sessions follow Prosody's model (seed 004): a bound session is a *connected* resource;
//! after initial presence it is *available*; after a roster get it is *interested* in
//! roster pushes. Delivery to a session goes through a bounded queue; when a client stops
//! reading and its queue fills, the session is ended with `policy-violation` instead of
//! blocking the sender (ejabberd's `max_fsm_queue`).

use crate::error::{StreamCondition, StreamError};
use dashmap::DashMap;
use futures::task::AtomicWaker;
use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use std::collections::{HashSet, VecDeque};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

/// A stanza serialised once for many recipients (a groupchat message to every occupant of
/// a room): written as `head`, ` to='…'` and `tail`, so each recipient costs a copy of
/// bytes, not a tree and a serialisation.
#[derive(Debug)]
pub struct Prepared {
    head: Box<str>,
    tail: Box<str>,
}

impl Prepared {
    /// `stanza` (whose `to` is ignored), serialised for c2s streams.
    pub fn new(stanza: &Element) -> Arc<Prepared> {
        let mut s = stanza.clone();
        s.attrs_mut().remove(&crate::xml::no_ns(), "to");
        let bytes = rookery_xml::serialize(&s, crate::ns::CLIENT);
        Prepared::from_text(String::from_utf8(bytes).expect("serialised XML is UTF-8"))
    }

    /// A stanza already serialised for c2s streams (`jabber:client` as the default
    /// namespace), without a `to`.
    pub fn from_text(text: String) -> Arc<Prepared> {
        // Split right after the element name: `<message` | ` from='…' …>…</message>`.
        let at = text[1..]
            .find([' ', '>', '/'])
            .map_or(text.len(), |i| i + 1);
        Arc::new(Prepared {
            head: text[..at].into(),
            tail: text[at..].into(),
        })
    }

    /// The bytes for one recipient.
    pub fn write_to(&self, to: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(b" to='");
        out.extend_from_slice(crate::xml::escape(to).as_bytes());
        out.push(b'\'');
        out.extend_from_slice(self.tail.as_bytes());
    }
}

/// What a session writes to its client.
#[derive(Debug)]
pub enum Outgoing {
    Stanza(Element),
    /// A prepared stanza and the recipient's JID.
    Prepared(Arc<Prepared>, Box<str>),
}

impl Outgoing {
    /// Append the stanza's bytes for a c2s stream.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Outgoing::Stanza(s) => rookery_xml::serialize_into(s, crate::ns::CLIENT, out),
            Outgoing::Prepared(p, to) => p.write_to(to, out),
        }
    }
}

/// Wakes the one task that writes a session's stream: a flag plus that task's waker.
///
/// Cheaper than a `Notify` or a cancellation token, which lock a list of waiters each
/// time they are polled; the session loop polls on every stanza it reads.
#[derive(Debug, Default)]
pub struct Signal {
    raised: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    /// Wake the waiting task (or the next poll, if it is not waiting yet).
    pub fn raise(&self) {
        if !self.raised.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// [`raise`](Self::raise), waking the task even if it was raised already (and is
    /// waiting for something else, as a session whose write is stuck waits to be killed).
    pub fn raise_and_wake(&self) {
        self.raised.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Ready once after each [`raise`](Self::raise) (several raises may be seen as one).
    pub fn poll_raised(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.raised.load(Ordering::Acquire) {
            self.raised.store(false, Ordering::Release);
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.raised.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A session's bounded queue of stanzas waiting to be written to its client.
///
/// A plain deque under a mutex plus a [`Signal`], rather than a channel: it costs nothing
/// while empty (a channel preallocates a block of slots per session, which is most of an
/// idle connection's memory) and the writer takes what is queued under one lock.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    /// Raised when a stanza is queued, and when the session must end.
    pub signal: Signal,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Queue {
    stanzas: VecDeque<Outgoing>,
    closed: bool,
}

/// Why [`Outbox::push`] refused a stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue holds `capacity` stanzas already.
    Full,
    /// The session's writer is gone.
    Closed,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            queue: Mutex::new(Queue::default()),
            signal: Signal::default(),
            capacity: capacity.max(1),
        }
    }

    /// Queue a stanza and wake the writer.
    pub fn push(&self, stanza: Outgoing) -> Result<(), PushError> {
        self.offer(stanza).map_err(|(e, _)| e)
    }

    /// [`push`](Self::push), handing the stanza back when it is refused.
    pub fn offer(&self, stanza: Outgoing) -> Result<(), (PushError, Outgoing)> {
        {
            let mut q = self.queue.lock().unwrap();
            if q.closed {
                return Err((PushError::Closed, stanza));
            }
            if q.stanzas.len() >= self.capacity {
                return Err((PushError::Full, stanza));
            }
            q.stanzas.push_back(stanza);
        }
        self.signal.raise();
        Ok(())
    }

    /// Move up to `max` queued stanzas into `out`, oldest first; returns how many.
    pub fn take(&self, out: &mut Vec<Outgoing>, max: usize) -> usize {
        let mut q = self.queue.lock().unwrap();
        let n = q.stanzas.len().min(max);
        out.extend(q.stanzas.drain(..n));
        if q.stanzas.is_empty() && q.stanzas.capacity() > 64 {
            // A burst is over: give its memory back.
            q.stanzas = VecDeque::new();
        }
        n
    }

    /// Everything queued, oldest first.
    pub fn take_all(&self) -> Vec<Outgoing> {
        let mut out = Vec::new();
        self.take(&mut out, usize::MAX);
        out
    }

    /// Wait until something may be queued (spurious wake-ups are possible: check with
    /// [`take`](Self::take)). Cancel-safe.
    pub async fn ready(&self) {
        poll_fn(|cx| self.signal.poll_raised(cx)).await
    }

    /// Refuse further stanzas and return what was queued but never taken (prepared
    /// stanzas, groupchat messages that are never rerouted, are dropped).
    pub fn close(&self) -> Vec<Element> {
        let mut q = self.queue.lock().unwrap();
        q.closed = true;
        std::mem::take(&mut q.stanzas)
            .into_iter()
            .filter_map(|o| match o {
                Outgoing::Stanza(s) => Some(s),
                Outgoing::Prepared(..) => None,
            })
            .collect()
    }
}

/// Microseconds from a fixed point of the process's life to `t` (0 for earlier times).
fn mono_us(t: Instant) -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    t.saturating_duration_since(origin).as_micros() as u64
}

/// What woke a session's task: see [`SessionHandle::next_wake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    Killed,
    Outbox,
}

/// Presence-related state of one resource.
#[derive(Debug, Default)]
pub struct PresenceState {
    /// The last broadcast available presence; `Some` makes the resource *available*.
    pub presence: Option<Element>,
    pub priority: i8,
    /// Asked for the roster: receives roster pushes.
    pub interested: bool,
    /// Entities this resource sent directed presence to (they get its unavailable).
    pub directed: HashSet<Jid>,
    /// The status of the client's own unavailable presence, if that is what it sent last.
    pub left_with: Option<String>,
}

/// One connected resource, shared between its connection task and the router.
#[derive(Debug)]
pub struct SessionHandle {
    pub jid: FullJid,
    pub peer: SocketAddr,
    /// When the session was bound, epoch microseconds.
    pub since_us: i64,
    /// When the client last sent a stanza, in microseconds of [`mono_us`] (for idle users).
    last_active: AtomicU64,
    /// Stanzas received from the client.
    stanzas_in: AtomicU64,
    /// Stanzas waiting to be written to the client.
    pub outbox: Outbox,
    /// Why the session must end; set before `killed`.
    kill_reason: Mutex<Option<StreamError>>,
    /// The session must end: set by [`close`](Self::close), which then raises the outbox's
    /// signal so the session's task sees it.
    killed: AtomicBool,
    pub state: Mutex<PresenceState>,
}

impl SessionHandle {
    /// A session whose outbox holds at most `queue` stanzas.
    pub fn new(jid: FullJid, peer: SocketAddr, queue: usize) -> Self {
        let now = rookery_storage::now_us();
        SessionHandle {
            jid,
            peer,
            since_us: now,
            last_active: AtomicU64::new(mono_us(Instant::now())),
            stanzas_in: AtomicU64::new(0),
            outbox: Outbox::new(queue),
            kill_reason: Mutex::new(None),
            killed: AtomicBool::new(false),
            state: Mutex::new(PresenceState::default()),
        }
    }

    /// Queue a stanza for the client. Returns false when the session is gone or its queue is
    /// full; in the latter case the session is ended with `policy-violation`.
    pub fn send(&self, stanza: Element) -> bool {
        self.queue(Outgoing::Stanza(stanza))
    }

    /// [`send`](Self::send), handing the stanza back when the session did not take it.
    pub fn offer(&self, stanza: Element) -> Result<(), Element> {
        match self.outbox.offer(Outgoing::Stanza(stanza)) {
            Ok(()) => Ok(()),
            Err((e, Outgoing::Stanza(s))) => {
                if e == PushError::Full {
                    self.queue_full();
                }
                Err(s)
            }
            Err((_, _)) => unreachable!("a stanza was offered"),
        }
    }

    /// Queue a prepared stanza for the client, as [`send`](Self::send).
    pub fn send_prepared(&self, stanza: &Arc<Prepared>) -> bool {
        self.queue(Outgoing::Prepared(stanza.clone(), self.jid.as_str().into()))
    }

    fn queue(&self, item: Outgoing) -> bool {
        match self.outbox.push(item) {
            Ok(()) => true,
            Err(PushError::Full) => {
                self.queue_full();
                false
            }
            Err(PushError::Closed) => false,
        }
    }

    fn queue_full(&self) {
        tracing::warn!(jid = %self.jid, "outbound queue full; ending the session");
        self.close(StreamError::new(
            StreamCondition::PolicyViolation,
            "too many stanzas are waiting for this client: it is not reading them",
        ));
    }

    /// Ask the session's task to end the stream with this error.
    pub fn close(&self, reason: StreamError) {
        let mut r = self.kill_reason.lock().unwrap();
        if r.is_none() {
            *r = Some(reason);
        }
        drop(r);
        self.killed.store(true, Ordering::Release);
        self.outbox.signal.raise_and_wake();
    }

    /// Note a stanza from the client, read at `at` (the caller has the time already: the
    /// clock is read once per read from the socket, not per stanza).
    pub fn touch(&self, at: Instant) {
        self.last_active.store(mono_us(at), Ordering::Relaxed);
        self.stanzas_in.fetch_add(1, Ordering::Relaxed);
    }

    /// When the client last sent a stanza, epoch microseconds (measured on the monotonic
    /// clock back from now, so a step of the wall clock does not make users look idle).
    pub fn last_active_us(&self) -> i64 {
        let ago = mono_us(Instant::now()).saturating_sub(self.last_active.load(Ordering::Relaxed));
        rookery_storage::now_us() - ago as i64
    }

    /// Stanzas received from the client so far.
    pub fn stanzas_in(&self) -> u64 {
        self.stanzas_in.load(Ordering::Relaxed)
    }

    /// The `<show/>` of the current presence (`None`: unavailable; `""`: plain available).
    pub fn show(&self) -> Option<String> {
        let st = self.state.lock().unwrap();
        st.presence.as_ref().map(|p| {
            p.children()
                .find(|c| c.name() == "show")
                .map(|c| c.text())
                .unwrap_or_default()
        })
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Wait until [`close`](Self::close) is called. Cancel-safe; it shares the outbox's
    /// waker, so the session's task must poll it from the same task as the outbox.
    pub async fn wait_killed(&self) {
        poll_fn(|cx| {
            if self.is_killed() {
                return Poll::Ready(());
            }
            self.outbox.signal.waker.register(cx.waker());
            if self.is_killed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Wait for the next thing the session's task must do: end, or write what was queued.
    /// Cancel-safe.
    pub(crate) async fn next_wake(&self) -> Wake {
        poll_fn(|cx| {
            if self.is_killed() {
                return Poll::Ready(Wake::Killed);
            }
            match self.outbox.signal.poll_raised(cx) {
                Poll::Ready(()) if self.is_killed() => Poll::Ready(Wake::Killed),
                Poll::Ready(()) => Poll::Ready(Wake::Outbox),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    pub fn kill_reason(&self) -> Option<StreamError> {
        self.kill_reason.lock().unwrap().clone()
    }

    pub fn is_available(&self) -> bool {
        self.state.lock().unwrap().presence.is_some()
    }

    pub fn priority(&self) -> i8 {
        self.state.lock().unwrap().priority
    }

    pub fn is_interested(&self) -> bool {
        self.state.lock().unwrap().interested
    }
}

/// Local users' connected resources, by bare JID (as a string: a full JID's bare part is
/// looked up as a slice of it, without building a `BareJid` for every stanza).
#[derive(Default)]
pub struct SessionManager {
    users: DashMap<Box<str>, Vec<Arc<SessionHandle>>>,
}

/// The bare part of a full JID's normal form (a domain or localpart has no `/`).
fn bare_of(full: &FullJid) -> &str {
    let s = full.as_str();
    s.split_once('/').map_or(s, |(bare, _)| bare)
}

impl SessionManager {
    /// Register a bound resource. A session already bound to the same full JID is returned
    /// so the caller can end it: the newest connection wins (ejabberd's and Prosody's
    /// default conflict policy).
    pub fn bind(&self, session: Arc<SessionHandle>) -> Option<Arc<SessionHandle>> {
        let mut entry = self.users.entry(bare_of(&session.jid).into()).or_default();
        let old = entry
            .iter()
            .position(|s| s.jid == session.jid)
            .map(|i| entry.remove(i));
        entry.push(session);
        old
    }

    /// Remove exactly this session (not a newer one with the same JID).
    pub fn unbind(&self, session: &Arc<SessionHandle>) {
        let bare = bare_of(&session.jid);
        let mut empty = false;
        if let Some(mut list) = self.users.get_mut(bare) {
            list.retain(|s| !Arc::ptr_eq(s, session));
            empty = list.is_empty();
        }
        if empty {
            self.users.remove_if(bare, |_, l| l.is_empty());
        }
    }

    pub fn resource(&self, jid: &FullJid) -> Option<Arc<SessionHandle>> {
        let list = self.users.get(bare_of(jid))?;
        list.iter().find(|s| s.jid == *jid).cloned()
    }

    /// All connected resources of a user.
    pub fn resources(&self, bare: &BareJid) -> Vec<Arc<SessionHandle>> {
        self.users
            .get(bare.as_str())
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Available resources of a user.
    pub fn available(&self, bare: &BareJid) -> Vec<Arc<SessionHandle>> {
        let mut v = self.resources(bare);
        v.retain(|s| s.is_available());
        v
    }

    /// The resources a message to the bare JID goes to (RFC 6121 §8.5.2.1.1): the available
    /// ones with the highest non-negative priority.
    pub fn message_targets(&self, bare: &BareJid) -> Vec<Arc<SessionHandle>> {
        let mut v: Vec<(i8, Arc<SessionHandle>)> = self
            .resources(bare)
            .into_iter()
            .filter_map(|s| {
                let st = s.state.lock().unwrap();
                (st.presence.is_some() && st.priority >= 0).then(|| (st.priority, s.clone()))
            })
            .collect();
        let Some(max) = v.iter().map(|(p, _)| *p).max() else {
            return Vec::new();
        };
        v.retain(|(p, _)| *p == max);
        v.into_iter().map(|(_, s)| s).collect()
    }

    pub fn is_online(&self, bare: &BareJid) -> bool {
        self.users.contains_key(bare.as_str())
    }

    /// Every connected session.
    pub fn all(&self) -> Vec<Arc<SessionHandle>> {
        self.users.iter().flat_map(|e| e.value().clone()).collect()
    }

    pub fn count(&self) -> usize {
        self.users.iter().map(|e| e.value().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::ArcWake;
    use std::future::Future;

    /// A waker that counts how often it was woken.
    #[derive(Default)]
    struct Count(AtomicU64);
    impl ArcWake for Count {
        fn wake_by_ref(me: &Arc<Self>) {
            me.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>, count: &Arc<Count>) -> Poll<F::Output> {
        let waker = futures::task::waker(count.clone());
        f.poll(&mut Context::from_waker(&waker))
    }

    fn handle() -> SessionHandle {
        SessionHandle::new(
            "a@localhost/r".parse().unwrap(),
            "127.0.0.1:1".parse().unwrap(),
            10,
        )
    }

    #[test]
    fn a_queued_stanza_wakes_the_waiting_session_once() {
        let h = handle();
        let count = Arc::new(Count::default());
        let mut wait = std::pin::pin!(h.next_wake());
        assert!(poll_once(wait.as_mut(), &count).is_pending());
        h.send(Element::builder("message", "jabber:client").build());
        h.send(Element::builder("message", "jabber:client").build());
        // Two stanzas, one wake-up: the writer takes both.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll_once(wait.as_mut(), &count), Poll::Ready(Wake::Outbox));
        assert_eq!(h.outbox.take_all().len(), 2);
        let mut again = std::pin::pin!(h.next_wake());
        assert!(poll_once(again.as_mut(), &count).is_pending());
    }

    #[test]
    fn closing_wakes_a_session_stuck_in_a_write_even_when_stanzas_raised_the_signal() {
        let h = handle();
        let count = Arc::new(Count::default());
        // The session is writing and waits to be killed; stanzas keep coming meanwhile.
        let mut killed = std::pin::pin!(h.wait_killed());
        assert!(poll_once(killed.as_mut(), &count).is_pending());
        h.send(Element::builder("message", "jabber:client").build());
        assert!(poll_once(killed.as_mut(), &count).is_pending());
        h.send(Element::builder("message", "jabber:client").build());
        let woken = count.0.load(Ordering::SeqCst);
        h.close(StreamError::shutdown());
        assert_eq!(count.0.load(Ordering::SeqCst), woken + 1);
        assert_eq!(poll_once(killed.as_mut(), &count), Poll::Ready(()));
        let mut wait = std::pin::pin!(h.next_wake());
        assert_eq!(poll_once(wait.as_mut(), &count), Poll::Ready(Wake::Killed));
        assert_eq!(
            h.kill_reason().unwrap().condition,
            StreamCondition::SystemShutdown
        );
    }

    fn parse(bytes: &[u8]) -> Element {
        let mut p = rookery_xml::StreamParser::new(rookery_xml::Limits::default());
        let mut events = Vec::new();
        let mut doc = b"<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams'>"
            .to_vec();
        doc.extend_from_slice(bytes);
        p.feed(&doc, &mut events).unwrap();
        match events.pop() {
            Some(rookery_xml::StreamEvent::Stanza(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_prepared_stanza_is_the_stanza_addressed_to_each_recipient() {
        for xml in [
            "<message from='room@conference.example.org/a&amp;b' type='groupchat'><body>x &lt; y</body></message>",
            "<message/>",
            "<presence from='r@c.example.org/n'/>",
        ] {
            let stanza = parse(xml.as_bytes());
            let prepared = Prepared::new(&stanza);
            for to in ["bob@example.org/phone", "o'brien@example.org/r"] {
                let mut bytes = Vec::new();
                prepared.write_to(to, &mut bytes);
                let mut expected = stanza.clone();
                expected.attrs_mut().insert(
                    crate::xml::no_ns(),
                    "to".try_into().unwrap(),
                    to.to_owned(),
                );
                assert_eq!(
                    parse(&bytes),
                    expected,
                    "{}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
    }
}
