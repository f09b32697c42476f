//! Ad-hoc command sessions: who may continue which session, idle expiry, a cap per
//! requester, and tombstones so that ended ids answer `session-expired`.

use rookery_forms::Actions;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One open session between a requester and a responder.
#[derive(Debug)]
pub(crate) struct Session {
    /// The requester's full JID, as stamped by the server.
    pub requester: String,
    /// The requester's bare JID, for the per-requester cap.
    pub requester_bare: String,
    pub responder: String,
    pub node: String,
    /// What the handler returned last time.
    pub state: Option<Value>,
    /// The actions offered in the last reply.
    pub actions: Actions,
    pub last_used: Instant,
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The session, taken out of the table while its request runs.
    Found(Box<Session>),
    /// Completed, canceled or expired.
    Ended,
    /// Unknown, or bound to another requester, responder or node.
    Unknown,
    /// Its previous request is still being handled.
    Busy,
}

#[derive(Default)]
struct Table {
    live: HashMap<String, Session>,
    /// Ids taken out while a request of theirs runs.
    busy: HashMap<String, (String, String, String)>,
    /// Ended ids and when they ended.
    ended: HashMap<String, Instant>,
}

/// The session table of one server.
#[derive(Default)]
pub(crate) struct Sessions {
    table: Mutex<Table>,
}

/// How long an ended id keeps answering `session-expired`.
const TOMBSTONE: Duration = Duration::from_secs(3600);
/// Most tombstones kept; the oldest go first.
const MAX_TOMBSTONES: usize = 100_000;

impl Sessions {
    /// A fresh unguessable id (128 random bits).
    pub fn new_id() -> String {
        let bytes: [u8; 16] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn sweep(t: &mut Table, ttl: Duration) {
        let now = Instant::now();
        let expired: Vec<String> = t
            .live
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_used) > ttl)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            t.live.remove(&id);
            t.ended.insert(id, now);
        }
        t.ended.retain(|_, at| now.duration_since(*at) < TOMBSTONE);
        if t.ended.len() > MAX_TOMBSTONES {
            let mut v: Vec<(String, Instant)> = t.ended.drain().collect();
            v.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
            v.truncate(MAX_TOMBSTONES / 2);
            t.ended = v.into_iter().collect();
        }
    }

    /// Open sessions of a requester (bare JID).
    pub fn count_for(&self, requester_bare: &str, ttl: Duration) -> usize {
        let mut t = self.table.lock().unwrap();
        Self::sweep(&mut t, ttl);
        t.live
            .values()
            .filter(|s| s.requester_bare == requester_bare)
            .count()
            + t.busy
                .values()
                .filter(|(r, _, _)| bare_of(r) == requester_bare)
                .count()
    }

    /// Take a session out for one request; it must belong to this requester, responder
    /// and node.
    pub fn take(
        &self,
        id: &str,
        requester: &str,
        responder: &str,
        node: &str,
        ttl: Duration,
    ) -> Lookup {
        let mut t = self.table.lock().unwrap();
        Self::sweep(&mut t, ttl);
        if let Some(s) = t.live.get(id) {
            if s.requester != requester || s.responder != responder || s.node != node {
                return Lookup::Unknown;
            }
            let s = t.live.remove(id).expect("just seen");
            t.busy.insert(
                id.to_owned(),
                (s.requester.clone(), s.responder.clone(), s.node.clone()),
            );
            return Lookup::Found(Box::new(s));
        }
        if let Some((r, to, n)) = t.busy.get(id) {
            if r == requester && to == responder && n == node {
                return Lookup::Busy;
            }
            return Lookup::Unknown;
        }
        if t.ended.contains_key(id) {
            return Lookup::Ended;
        }
        Lookup::Unknown
    }

    /// Mark a new id as in use while its first request runs.
    pub fn start(&self, id: &str, requester: &str, responder: &str, node: &str) {
        let mut t = self.table.lock().unwrap();
        t.busy.insert(
            id.to_owned(),
            (requester.to_owned(), responder.to_owned(), node.to_owned()),
        );
    }

    /// Put a session back after its request, to be continued.
    pub fn put(&self, id: &str, mut s: Session) {
        let mut t = self.table.lock().unwrap();
        t.busy.remove(id);
        s.last_used = Instant::now();
        t.live.insert(id.to_owned(), s);
    }

    /// End a session for good.
    pub fn end(&self, id: &str) {
        let mut t = self.table.lock().unwrap();
        t.busy.remove(id);
        t.live.remove(id);
        t.ended.insert(id.to_owned(), Instant::now());
    }

    /// Open sessions (for statistics).
    pub fn open(&self) -> usize {
        let t = self.table.lock().unwrap();
        t.live.len() + t.busy.len()
    }
}

fn bare_of(full: &str) -> &str {
    full.split('/').next().unwrap_or(full)
}
