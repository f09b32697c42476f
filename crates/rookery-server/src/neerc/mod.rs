//! The NEERC contest service (`protocols.md` part A): tasks, users and the clock of a
//! contest's MUC room, at `<subdomain>.<host>` (default `neerc.<host>`).
//!
//! `room@neerc.<host>` serves the MUC room `room@<muc subdomain>.<host>`; the bare service
//! JID serves `[neerc] default_room`. The service is written against [`Route`] only: it
//! receives stanzas and routes its answers and broadcasts, so it could run as a XEP-0114
//! component. It reads the MUC room (affiliations, occupants) through the MUC service.
//!
//! - `users.rs`: the access check and the user list, derived live from affiliations and
//!   shared groups;
//! - `tasks.rs`: the `<task/>` element, request parsing and the status state machine;
//! - `handlers.rs`: one function per query;
//! - `ops.rs`: the changes to a room's tasks, under the room's writer lock, with their
//!   broadcasts (used by the queries, the ad-hoc commands, the CLI and the scheduler);
//! - `schedule.rs`: scheduled tasks going live by the contest clock;
//! - `clock.rs`: the contest clock, its file and its smoothing;
//! - `commands.rs`: ad-hoc commands on `room@neerc.<host>` for stock clients.
//!
//! Every stanza the service sends (answers and broadcasts) goes through one bounded queue
//! routed by one task, so broadcasts leave in the order their changes were committed, and
//! a burst of changes waits for delivery instead of piling up in memory.

pub mod admin;
pub mod clock;
mod commands;
pub mod external;
mod handlers;
pub mod lines;
pub mod ops;
mod remote;
pub mod schedule;
pub mod tasks;
pub mod users;
pub mod view;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use jid::{FullJid, Jid};
use minidom::Element;
use rookery_storage::StoredTask;
use tokio::sync::mpsc;

use crate::error::StanzaError;
use crate::module::{Direction, Event, EventKind, Flow, Module, ModuleContext, Verdict};
use crate::muc::Delivery;
use crate::ns;
use crate::router::Route;
use crate::server::Server;
use crate::xml::{ElementExt, IqType, el};
use clock::Reading;
pub use clock::{Clock, ClockStatus};

/// The protocol's namespace prefix; queries are `NS#users`, `NS#tasks`, …
pub const NS: &str = "http://neerc.ifmo.ru/protocol/neerc";
pub const NS_USERS: &str = "http://neerc.ifmo.ru/protocol/neerc#users";
pub const NS_TASKS: &str = "http://neerc.ifmo.ru/protocol/neerc#tasks";
pub const NS_TASK: &str = "http://neerc.ifmo.ru/protocol/neerc#task";
pub const NS_TASKSTATUS: &str = "http://neerc.ifmo.ru/protocol/neerc#taskstatus";
pub const NS_PING: &str = "http://neerc.ifmo.ru/protocol/neerc#ping";
pub const NS_CLOCK: &str = "http://neerc.ifmo.ru/protocol/neerc#clock";

/// The features announced in disco#info.
const FEATURES: &[&str] = &[
    ns::DISCO_INFO,
    NS_USERS,
    NS_TASKS,
    NS_TASK,
    NS_TASKSTATUS,
    NS_PING,
    NS_CLOCK,
    ns::PING,
];

/// The module: one service per hosted domain once the server runs.
pub struct Neerc;

impl Module for Neerc {
    fn name(&self) -> &'static str {
        "neerc"
    }

    fn start(&self, m: &mut ModuleContext<'_>) {
        // The original client applies task and clock payloads from any sender: users may
        // not send them, to a room or to anyone, so only the service's are ever seen. Also
        // when the service runs as an external component (`enabled = false`).
        m.filter(|_, stanza, dir| {
            if dir == Direction::Outbound
                && stanza.name() == "message"
                && stanza.children().any(is_service_payload)
            {
                return Verdict::Bounce(StanzaError::forbidden(
                    "task and clock updates come from the contest service only",
                ));
            }
            Verdict::Pass
        });
        if !m.config.neerc.enabled {
            return;
        }
        m.hook(EventKind::Started, 0, |server, _| async move {
            for host in server.config().hosts.clone() {
                let domain = format!("{}.{host}", server.config().neerc.subdomain);
                if server.service(&domain).is_some() {
                    tracing::error!(%domain, "another service has this domain; the contest service does not start there");
                    continue;
                }
                let muc = Arc::new(view::LocalMuc { host: host.clone() });
                let service = NeercService::new(&server, &domain, &host, muc);
                server.register_service(&domain, service.clone());
                commands::register(&server, &service);
                service.start(&server).await;
                tracing::info!(%domain, "NEERC contest service ready");
            }
            Flow::Continue
        });
        // A newcomer to a contest room gets the clock at once (A.11).
        m.hook(EventKind::OccupantJoined, 0, |server, event| async move {
            let muc_prefix = format!("{}.", server.config().muc.subdomain);
            if let Event::OccupantJoined { room, occupant } = event
                && let Some(host) = room.domain().as_str().strip_prefix(&muc_prefix)
                && let Some(svc) = service_for(&server, host)
                && let Some(svc) = svc.as_any().and_then(|a| a.downcast_ref::<NeercService>())
                && let Some(name) = room.node()
            {
                svc.push_clock(name.as_str(), occupant).await;
            }
            Flow::Continue
        });
    }
}

/// A task or clock update, as only the contest service sends them.
fn is_service_payload(e: &Element) -> bool {
    e.name() == "x" && (e.has_ns(NS_TASKS) || e.has_ns(NS_CLOCK))
}

/// The tasks of one room, loaded from the store on first use; its lock is the room's
/// single writer.
#[derive(Default)]
pub struct RoomTasks {
    loaded: bool,
    tasks: BTreeMap<String, StoredTask>,
    /// Each task's `<task/>` as the `#tasks` answer carries it, serialised once and kept
    /// until the task changes (a board of 200 tasks × 500 halls is 3.5 MB).
    wire: HashMap<String, Arc<str>>,
}

impl RoomTasks {
    /// Forget what was serialised of a task that changed.
    fn changed(&mut self, id: &str) {
        self.wire.remove(id);
    }
}

/// One contest service (one domain).
pub struct NeercService {
    pub domain: String,
    /// The hosted domain whose MUC rooms it serves.
    pub host: String,
    default_room: String,
    lax: bool,
    rooms: Mutex<HashMap<String, Arc<tokio::sync::Mutex<RoomTasks>>>>,
    clock: Mutex<Reading>,
    /// Scheduled tasks needing confirmation that the jury was told of (room, id).
    announced: Mutex<HashSet<(String, String)>>,
    queue: mpsc::Sender<Delivery>,
    /// The MUC rooms it serves.
    muc: Arc<dyn view::MucView>,
}

/// Stanzas waiting for delivery, at most.
const QUEUE: usize = 1024;

impl NeercService {
    /// A service for `domain`, serving the MUC rooms of `host`.
    pub fn new(
        server: &Server,
        domain: &str,
        host: &str,
        muc: Arc<dyn view::MucView>,
    ) -> Arc<NeercService> {
        let (tx, rx) = mpsc::channel::<Delivery>(QUEUE);
        let routing = server.clone();
        // On shutdown, what was queued is still delivered (to sessions still there).
        server.spawn_queue(rx, move |d: Delivery| {
            let server = routing.clone();
            async move { d.deliver(&server).await }
        });
        let config = &server.config().neerc;
        Arc::new(NeercService {
            domain: domain.to_owned(),
            host: host.to_owned(),
            default_room: config.default_room.clone(),
            lax: config.lax_status,
            rooms: Mutex::new(HashMap::new()),
            clock: Mutex::new(Reading::default()),
            announced: Mutex::new(HashSet::new()),
            queue: tx,
            muc,
        })
    }

    /// Once registered: load the rooms that have tasks (their schedules must fire), watch
    /// the clock file, and check the schedules every second.
    pub(crate) async fn start(self: &Arc<Self>, server: &Server) {
        match server.stores().tasks.task_rooms(&self.domain).await {
            Ok(rooms) => {
                for room in rooms {
                    let lock = self.room_tasks(&room);
                    let mut rt = lock.lock().await;
                    if let Err(e) = self.load(server, &room, &mut rt).await {
                        tracing::error!(room, error = ?e, "cannot load the room's tasks");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list the rooms with tasks"),
        }
        let config = &server.config().neerc;
        if let Some(path) = config.clock_file.clone() {
            let poll = Duration::from_millis(config.clock_poll_ms);
            server.spawn(clock::watch(self.clone(), server.clone(), path, poll));
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let ticking = server.clone();
        server.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let stop = ticking.shutdown_token().clone();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => break,
                }
                let Some(svc) = weak.upgrade() else { break };
                svc.fire_due(&ticking).await;
            }
        });
    }

    /// The contest clock now.
    pub fn clock(&self) -> Clock {
        self.clock.lock().unwrap().now(ops::now_ms())
    }

    /// Whether the jury sets the clock (no clock file is configured).
    pub fn clock_by_jury(&self, server: &Server) -> bool {
        server.config().neerc.clock_file.is_none()
    }

    /// A new clock reading (from the file or the jury): smoothed, announced to every
    /// room the service serves, and scheduled tasks that became due fire.
    pub async fn clock_read(&self, server: &Server, clock: Clock) {
        let now = {
            let mut reading = self.clock.lock().unwrap();
            *reading = reading.next(clock, ops::now_ms());
            reading.clock
        };
        let mut rooms: Vec<String> = self.rooms.lock().unwrap().keys().cloned().collect();
        if !rooms.contains(&self.default_room) {
            rooms.push(self.default_room.clone());
        }
        for room in rooms {
            let to = self.muc.sessions(server, &room, false).await;
            self.fanout(self.clock_message(&room, &now), to).await;
        }
        self.fire_due(server).await;
    }

    /// `The clock is ticking` with the clock, from the room's service JID (A.8).
    fn clock_message(&self, room: &str, clock: &Clock) -> Element {
        el("message", ns::CLIENT)
            .with_attr("type", "headline")
            .with_attr("from", &format!("{room}@{}", self.domain))
            .with_child(el("body", ns::CLIENT).with_text("The clock is ticking"))
            .with_child(el("x", NS_CLOCK).with_child(clock.element(NS_CLOCK)))
    }

    /// Send the current clock to one occupant who just entered the room, if the room is
    /// a contest room: the default room, or one the service has served (tasks or queries).
    pub(crate) async fn push_clock(&self, room: &str, to: FullJid) {
        if room != self.default_room && !self.rooms.lock().unwrap().contains_key(room) {
            return;
        }
        let mut message = self.clock_message(room, &self.clock());
        message.put_attr("to", to.as_str());
        self.send(message).await;
    }

    /// Queue one stanza for several sessions (serialised once), after everything queued
    /// before it.
    async fn fanout(&self, stanza: Element, to: Vec<FullJid>) {
        if !to.is_empty() {
            self.send_delivery(Delivery::Fanout { stanza, to }).await;
        }
    }

    /// The writer lock and task cache of a room.
    fn room_tasks(&self, room: &str) -> Arc<tokio::sync::Mutex<RoomTasks>> {
        self.rooms
            .lock()
            .unwrap()
            .entry(room.to_owned())
            .or_default()
            .clone()
    }

    /// Load a room's tasks from the store the first time they are needed.
    async fn load(
        &self,
        server: &Server,
        room: &str,
        rt: &mut RoomTasks,
    ) -> Result<(), StanzaError> {
        if !rt.loaded {
            let stored = server.stores().tasks.tasks(&self.domain, room).await?;
            rt.tasks = stored.into_iter().map(|t| (t.id.clone(), t)).collect();
            rt.wire.clear();
            rt.loaded = true;
        }
        Ok(())
    }

    /// The tasks of a room in wire order (from the store if not loaded yet).
    pub async fn tasks(&self, server: &Server, room: &str) -> Result<Vec<StoredTask>, StanzaError> {
        let lock = self.room_tasks(room);
        let mut rt = lock.lock().await;
        self.load(server, room, &mut rt).await?;
        Ok(rt.sorted().into_iter().cloned().collect())
    }

    /// Queue a stanza for routing, after everything queued before it.
    async fn send(&self, stanza: Element) {
        self.send_delivery(Delivery::Route(stanza)).await;
    }

    /// Queue a delivery; when the queue is full, wait for room: a burst of changes is
    /// slowed to the speed of delivery (the delivery task never waits for the service).
    async fn send_delivery(&self, d: Delivery) {
        let _ = self.queue.send(d).await;
    }

    /// Announce a committed change to every occupant session of the room. Called under
    /// the room's writer lock, so announcements are queued in commit order.
    async fn broadcast(&self, server: &Server, room: &str, task: &StoredTask, kind: Option<&str>) {
        let from = format!("{room}@{}", self.domain);
        let message = handlers::change_message(&from, task, kind);
        let to = self.muc.sessions(server, room, false).await;
        // Serialised once for all of them, as MUC does.
        self.fanout(message, to).await;
    }

    /// disco#info for the service or one of its rooms.
    async fn disco_info(
        &self,
        server: &Server,
        to: &Jid,
        stanza: &Element,
        q: &Element,
    ) -> Element {
        if q.get_attr("node").is_some_and(|n| !n.is_empty()) {
            return StanzaError::item_not_found("no such node").bounce(stanza);
        }
        let name = match to.node() {
            None => "NEERC service".to_owned(),
            Some(room) => {
                let room = room.as_str();
                if !self.muc.exists(server, room).await {
                    return StanzaError::item_not_found(format!(
                        "there is no chat room {room}, so there is no contest service for it"
                    ))
                    .bounce(stanza);
                }
                format!("NEERC service for {room}")
            }
        };
        let mut info = el("query", ns::DISCO_INFO).with_child(
            el("identity", ns::DISCO_INFO)
                .with_attr("category", "component")
                .with_attr("type", "generic")
                .with_attr("name", &name),
        );
        for f in FEATURES.iter().chain([&crate::adhoc::NS]) {
            info.append_child(el("feature", ns::DISCO_INFO).with_attr("var", f));
        }
        crate::xml::iq_result(stanza, Some(info))
    }

    /// Send the `#tasks` answer, serialised already as `query`: as bytes to a local
    /// session, else parsed back into a stanza and routed.
    async fn send_board(
        &self,
        server: &Server,
        from: &Jid,
        to: &Jid,
        request: &Element,
        query: String,
    ) {
        let mut shell = el("iq", ns::CLIENT)
            .with_attr("type", "result")
            .with_attr("from", to.as_str());
        if let Some(id) = request.get_attr("id") {
            shell.put_attr("id", id);
        }
        let mut text = String::with_capacity(query.len() + 128);
        text.push_str("<iq type='result' from='");
        text.push_str(&crate::xml::escape(to.as_str()));
        if let Some(id) = request.get_attr("id") {
            text.push_str("' id='");
            text.push_str(&crate::xml::escape(id));
        }
        text.push_str("'>");
        text.push_str(&query);
        text.push_str("</iq>");
        match from.clone().try_into_full() {
            Ok(full) if server.serves_host(full.domain().as_str()) => {
                let prepared = crate::sm::Prepared::from_text(text);
                self.send_delivery(Delivery::Prepared {
                    prepared,
                    shell,
                    to: vec![full],
                })
                .await;
            }
            _ => {
                text.insert_str(3, " xmlns='jabber:client'");
                match text.parse::<Element>() {
                    Ok(mut reply) => {
                        reply.put_attr("to", from.as_str());
                        self.send(reply).await;
                    }
                    Err(e) => tracing::error!(error = %e, "the serialised board does not parse"),
                }
            }
        }
    }

    /// The answer to one IQ get or set (A.2).
    async fn answer(&self, server: &Server, from: &Jid, to: &Jid, stanza: &Element) -> Answer {
        let Some(q) = stanza.first_child() else {
            return Answer::Stanza(
                StanzaError::bad_request("an IQ get or set needs one child element").bounce(stanza),
            );
        };
        if q.is("query", ns::DISCO_INFO) {
            return Answer::Stanza(self.disco_info(server, to, stanza, q).await);
        }
        if q.is("query", ns::DISCO_ITEMS) {
            return Answer::Stanza(crate::xml::iq_result(
                stanza,
                Some(el("query", ns::DISCO_ITEMS)),
            ));
        }
        if q.is("ping", ns::PING) {
            return Answer::Stanza(crate::xml::iq_result(stanza, None));
        }
        let ns = q.ns();
        let Some(fragment) = ns.strip_prefix(NS).and_then(|f| f.strip_prefix('#')) else {
            return Answer::Stanza(
                StanzaError::service_unavailable(format!(
                    "the contest service does not answer <{} xmlns='{ns}'/>",
                    q.name()
                ))
                .bounce(stanza),
            );
        };
        let room = match to.node() {
            Some(n) => n.as_str().to_owned(),
            None => self.default_room.clone(),
        };
        let requester = match self.muc.requester(server, &room, &from.to_bare()).await {
            Ok(r) => r,
            Err(e) => return Answer::Stanza(e.bounce(stanza)),
        };
        let ctx = handlers::Ctx {
            server,
            room: &room,
            requester: &requester,
        };
        let result = match fragment {
            "users" => handlers::users(&ctx, self, q).await,
            "tasks" => {
                return match handlers::task_list(&ctx, self, q).await {
                    Ok(query) => Answer::Board(query),
                    Err(e) => Answer::Stanza(e.bounce(stanza)),
                };
            }
            "task" => handlers::task(&ctx, self, q).await,
            "taskstatus" => handlers::task_status(&ctx, self, q).await,
            "ping" => Ok(q.clone()),
            "clock" => {
                let set = stanza.get_attr("type") == Some("set");
                handlers::clock(&ctx, self, set, q).await
            }
            other => Err(StanzaError::service_unavailable(format!(
                "the contest service has no query #{other}"
            ))),
        };
        Answer::Stanza(match result {
            Ok(payload) => crate::xml::iq_result(stanza, Some(payload)),
            Err(e) => e.bounce(stanza),
        })
    }
}

#[async_trait]
impl Route for NeercService {
    async fn route(&self, server: &Server, stanza: Element) {
        // Messages and presence are not for the service (A.2).
        if stanza.name() != "iq" {
            return;
        }
        let Some(Ok(to)) = stanza.get_attr("to").map(Jid::new) else {
            return;
        };
        let Some(Ok(from)) = stanza.get_attr("from").map(Jid::new) else {
            return;
        };
        match IqType::parse(stanza.get_attr("type")) {
            Some(IqType::Get | IqType::Set) => {}
            Some(IqType::Result | IqType::Error) => return,
            None => {
                let e = StanzaError::bad_request("an IQ's type is get, set, result or error");
                return self.send(e.bounce(&stanza)).await;
            }
        }
        if let Some(reply) = crate::adhoc::service_iq(server, &stanza).await {
            return self.send(reply).await;
        }
        match self.answer(server, &from, &to, &stanza).await {
            Answer::Stanza(reply) => self.send(reply).await,
            Answer::Board(query) => self.send_board(server, &from, &to, &stanza, query).await,
        }
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// What the service answers to an IQ.
enum Answer {
    Stanza(Element),
    /// The `#tasks` query, serialised.
    Board(String),
}

/// The contest service of a hosted domain, if it runs.
pub fn service_for(server: &Server, host: &str) -> Option<Arc<dyn Route>> {
    server.service(&format!("{}.{host}", server.config().neerc.subdomain))
}
