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
//! - `handlers.rs`: one function per query, the per-room writer and the broadcasts;
//! - `clock.rs`: the contest clock (query only for now).
//!
//! Every stanza the service sends (answers and broadcasts) goes through one queue routed
//! by one task, so broadcasts leave in the order their changes were committed.

pub mod clock;
mod handlers;
pub mod tasks;
pub mod users;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jid::Jid;
use minidom::Element;
use rookery_storage::StoredTask;
use tokio::sync::mpsc;

use crate::error::StanzaError;
use crate::module::{Direction, EventKind, Flow, Module, ModuleContext, Verdict};
use crate::muc::Delivery;
use crate::ns;
use crate::router::Route;
use crate::server::Server;
use crate::xml::{ElementExt, IqType, el};
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
                let service = NeercService::new(&server, &domain, &host);
                server.register_service(&domain, service);
                tracing::info!(%domain, "NEERC contest service ready");
            }
            Flow::Continue
        });
        // The original client applies task and clock payloads from any sender: users may
        // not send them, to a room or to anyone, so only the service's are ever seen.
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
}

/// One contest service (one domain).
pub struct NeercService {
    pub domain: String,
    /// The hosted domain whose MUC rooms it serves.
    pub host: String,
    default_room: String,
    lax: bool,
    rooms: Mutex<HashMap<String, Arc<tokio::sync::Mutex<RoomTasks>>>>,
    clock: Mutex<Clock>,
    queue: mpsc::UnboundedSender<Delivery>,
}

impl NeercService {
    /// A service for `domain`, serving the MUC rooms of `host`.
    pub fn new(server: &Server, domain: &str, host: &str) -> Arc<NeercService> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
        let routing = server.clone();
        server.spawn(async move {
            while let Some(d) = rx.recv().await {
                match d {
                    Delivery::Route(stanza) => routing.route(stanza).await,
                    Delivery::Fanout { stanza, to } => {
                        crate::muc::fanout(&routing, stanza, to).await
                    }
                }
            }
        });
        let config = &server.config().neerc;
        Arc::new(NeercService {
            domain: domain.to_owned(),
            host: host.to_owned(),
            default_room: config.default_room.clone(),
            lax: config.lax_status,
            rooms: Mutex::new(HashMap::new()),
            clock: Mutex::new(Clock::default()),
            queue: tx,
        })
    }

    /// The current contest clock.
    pub fn clock(&self) -> Clock {
        *self.clock.lock().unwrap()
    }

    /// Set the contest clock (for a clock source; not broadcast yet).
    pub fn set_clock(&self, clock: Clock) {
        *self.clock.lock().unwrap() = clock;
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
    fn send(&self, stanza: Element) {
        let _ = self.queue.send(Delivery::Route(stanza));
    }

    /// Announce a committed change to every occupant session of the room. Called under
    /// the room's writer lock, so announcements are queued in commit order.
    async fn broadcast(&self, server: &Server, room: &str, task: &StoredTask, kind: Option<&str>) {
        let from = format!("{room}@{}", self.domain);
        let message = handlers::change_message(&from, task, kind);
        let to = users::occupant_sessions(server, &self.host, room).await;
        if !to.is_empty() {
            // Serialised once for all of them, as MUC does.
            let _ = self.queue.send(Delivery::Fanout {
                stanza: message,
                to,
            });
        }
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
                if users::with_room(server, &self.host, room, |_| ())
                    .await
                    .is_none()
                {
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
        for f in FEATURES {
            info.append_child(el("feature", ns::DISCO_INFO).with_attr("var", f));
        }
        crate::xml::iq_result(stanza, Some(info))
    }

    /// The answer to one IQ get or set (A.2).
    async fn answer(&self, server: &Server, from: &Jid, to: &Jid, stanza: &Element) -> Element {
        let Some(q) = stanza.first_child() else {
            return StanzaError::bad_request("an IQ get or set needs one child element")
                .bounce(stanza);
        };
        if q.is("query", ns::DISCO_INFO) {
            return self.disco_info(server, to, stanza, q).await;
        }
        if q.is("query", ns::DISCO_ITEMS) {
            return crate::xml::iq_result(stanza, Some(el("query", ns::DISCO_ITEMS)));
        }
        if q.is("ping", ns::PING) {
            return crate::xml::iq_result(stanza, None);
        }
        let ns = q.ns();
        let Some(fragment) = ns.strip_prefix(NS).and_then(|f| f.strip_prefix('#')) else {
            return StanzaError::service_unavailable(format!(
                "the contest service does not answer <{} xmlns='{ns}'/>",
                q.name()
            ))
            .bounce(stanza);
        };
        let room = match to.node() {
            Some(n) => n.as_str().to_owned(),
            None => self.default_room.clone(),
        };
        let requester = match users::requester(server, &self.host, &room, &from.to_bare()).await {
            Ok(r) => r,
            Err(e) => return e.bounce(stanza),
        };
        let ctx = handlers::Ctx {
            server,
            room: &room,
            requester: &requester,
        };
        let result = match fragment {
            "users" => handlers::users(&ctx, self, q).await,
            "tasks" => handlers::task_list(&ctx, self, q).await,
            "task" => handlers::task(&ctx, self, q).await,
            "taskstatus" => handlers::task_status(&ctx, self, q).await,
            "ping" => Ok(q.clone()),
            "clock" => Ok(handlers::clock(self, q)),
            other => Err(StanzaError::service_unavailable(format!(
                "the contest service has no query #{other}"
            ))),
        };
        match result {
            Ok(payload) => crate::xml::iq_result(stanza, Some(payload)),
            Err(e) => e.bounce(stanza),
        }
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
                return self.send(e.bounce(&stanza));
            }
        }
        let reply = self.answer(server, &from, &to, &stanza).await;
        self.send(reply);
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// The contest service of a hosted domain, if it runs.
pub fn service_for(server: &Server, host: &str) -> Option<Arc<dyn Route>> {
    server.service(&format!("{}.{host}", server.config().neerc.subdomain))
}
