//! Multi-user chat (XEP-0045): a service at `<subdomain>.<host>` with its own route, like
//! ejabberd's `mod_muc`.
//!
//! Every stanza for a room is handled under that room's lock: the handler changes the
//! [`Room`] and collects the stanzas to send, which go to the service's delivery queue
//! before the lock is released. One task per service routes the queue in order, so every
//! occupant sees a room's events in the order they happened, and a bounce coming back to
//! the room never waits for the lock its cause holds.
//!
//! - `room.rs`: the room model, its configuration form and the affiliation/role rules;
//! - `occupants.rs`: presence to the room (join, nick change, status, leave);
//! - `messages.rs`: groupchat, subject, private messages, invitations, history;
//! - `admin.rs`: `muc#admin` (affiliations and roles) and `muc#owner` (configuration,
//!   destruction), and the service's ad-hoc commands.

mod admin;
mod messages;
mod occupants;
pub mod provision;
pub mod room;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use tokio::sync::mpsc;

use crate::error::StanzaError;
use crate::module::{Direction, Event, EventKind, Flow, Module, ModuleContext, Verdict};
use crate::router::Route;
use crate::server::Server;
use crate::sm::Prepared;
use crate::xml::{ElementExt, IqType, el};
use crate::{adhoc, ns};
pub use room::{Affiliation, Role, Room, RoomConfig};

/// The module: starts one service per hosted domain once the server runs.
pub struct Muc;

impl Module for Muc {
    fn name(&self) -> &'static str {
        "muc"
    }

    fn start(&self, m: &mut ModuleContext<'_>) {
        if !m.config.muc.enabled {
            return;
        }
        m.hook(EventKind::Started, 0, |server, _| async move {
            for host in server.config().hosts.clone() {
                let domain = format!("{}.{host}", server.config().muc.subdomain);
                let service = MucService::new(&server, &domain, &host);
                if let Err(e) = service.restore(&server).await {
                    tracing::error!(%domain, error = %e, "could not load the stored rooms");
                }
                server.register_service(&domain, service.clone());
                admin::register_commands(&server, &service);
                tracing::info!(%domain, rooms = service.room_count(), "MUC service ready");
            }
            Flow::Continue
        });
        m.hook(EventKind::UserDeleted, 0, |server, event| async move {
            if let Event::UserDeleted { jid } = event {
                for host in server.config().hosts.clone() {
                    let domain = format!("{}.{host}", server.config().muc.subdomain);
                    if let Some(service) = server.service(&domain)
                        && let Some(muc) = service
                            .as_any()
                            .and_then(|a| a.downcast_ref::<MucService>())
                    {
                        muc.forget_user(&server, &jid).await;
                    }
                }
            }
            Flow::Continue
        });
    }
}

/// A room and its lock.
pub type RoomRef = Arc<tokio::sync::Mutex<Room>>;

/// One MUC service (one domain).
pub struct MucService {
    pub domain: String,
    /// The hosted domain it belongs to (`localhost` for `conference.localhost`).
    pub host: String,
    rooms: Mutex<HashMap<String, RoomRef>>,
    queue: mpsc::Sender<Delivery>,
}

/// Deliveries a service may have waiting. A room that produces faster than they are
/// delivered makes its senders wait (their streams are then not read), so a flood costs
/// the flooder, not the server's memory.
const QUEUE: usize = 1024;

/// What a room sends: a stanza to route, or one stanza for many occupants.
pub enum Delivery {
    Route(Element),
    /// `stanza` (without `to`) for each of `to`, serialised once for all local sessions.
    Fanout {
        stanza: Element,
        to: Vec<FullJid>,
    },
    /// Bytes serialised already, for local sessions only; `shell` is the stanza without
    /// its children, for the filters.
    Prepared {
        prepared: Arc<Prepared>,
        shell: Element,
        to: Vec<FullJid>,
    },
}

impl Delivery {
    /// Deliver it.
    pub(crate) async fn deliver(self, server: &Server) {
        match self {
            Delivery::Route(stanza) => server.route(stanza).await,
            Delivery::Fanout { stanza, to } => fanout(server, stanza, to).await,
            Delivery::Prepared {
                prepared,
                shell,
                to,
            } => deliver_prepared(server, &prepared, shell, to, None).await,
        }
    }
}

/// The stanzas a handler sends, in order.
#[derive(Default)]
pub struct Out(Vec<Delivery>);

impl Out {
    pub fn push(&mut self, stanza: Element) {
        self.0.push(Delivery::Route(stanza));
    }
    pub fn fanout(&mut self, stanza: Element, to: Vec<FullJid>) {
        if !to.is_empty() {
            self.0.push(Delivery::Fanout { stanza, to });
        }
    }
}

async fn send_all(queue: &mpsc::Sender<Delivery>, stanzas: Out) {
    for s in stanzas.0 {
        let _ = queue.send(s).await;
    }
}

/// Deliver a fan-out: local sessions get the prepared bytes (after the inbound filters,
/// which only look at the stanza's name and addresses, so they see a stand-in with no
/// children); anyone else (a session that just went away) gets a routed copy, so the
/// usual bounce comes back to the room.
pub(crate) async fn fanout(server: &Server, stanza: Element, to: Vec<FullJid>) {
    let prepared = Prepared::new(&stanza);
    let mut probe = el(stanza.name(), ns::CLIENT);
    for attr in ["from", "type", "id"] {
        if let Some(v) = stanza.get_attr(attr) {
            probe.put_attr(attr, v);
        }
    }
    deliver_prepared(server, &prepared, probe, to, Some(&stanza)).await;
}

/// Deliver `prepared` to each of `to`: local sessions get the bytes once the inbound
/// filters passed `probe` (the stanza without children); anyone else gets `whole`, if
/// given, routed with its `to`.
pub(crate) async fn deliver_prepared(
    server: &Server,
    prepared: &Arc<Prepared>,
    mut probe: Element,
    to: Vec<FullJid>,
    whole: Option<&Element>,
) {
    for jid in to {
        if server.serves_host(jid.domain().as_str())
            && let Some(session) = server.sm().resource(&jid)
        {
            probe.put_attr("to", jid.as_str());
            match server.registry().filter(server, &probe, Direction::Inbound) {
                Verdict::Pass => {
                    session.send_prepared(prepared);
                }
                Verdict::Drop => {}
                Verdict::Bounce(e) => server.bounce(&probe, e).await,
            }
            continue;
        }
        if let Some(whole) = whole {
            let mut copy = whole.clone();
            copy.put_attr("to", jid.as_str());
            server.route(copy).await;
        }
    }
}

impl MucService {
    fn new(server: &Server, domain: &str, host: &str) -> Arc<MucService> {
        let (tx, rx) = mpsc::channel::<Delivery>(QUEUE);
        let delivering = server.clone();
        server.spawn_queue(rx, move |d: Delivery| {
            let server = delivering.clone();
            async move { d.deliver(&server).await }
        });
        Arc::new(MucService {
            domain: domain.to_owned(),
            host: host.to_owned(),
            rooms: Mutex::new(HashMap::new()),
            queue: tx,
        })
    }

    /// Load the persistent rooms.
    async fn restore(&self, server: &Server) -> rookery_storage::Result<()> {
        let stored = server.stores().muc.rooms(&self.domain).await?;
        let mut rooms = self.rooms.lock().unwrap();
        for s in &stored {
            if let Some(room) = Room::from_stored(&self.domain, s) {
                rooms.insert(s.room.clone(), Arc::new(tokio::sync::Mutex::new(room)));
            }
        }
        Ok(())
    }

    pub fn room_count(&self) -> usize {
        self.rooms.lock().unwrap().len()
    }

    pub fn room(&self, name: &str) -> Option<RoomRef> {
        self.rooms.lock().unwrap().get(name).cloned()
    }

    /// Names of every room, sorted.
    pub fn room_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rooms.lock().unwrap().keys().cloned().collect();
        v.sort();
        v
    }

    /// Add a new room, unless another request created it first (then that one is
    /// returned, and the caller joins it like anyone else).
    fn insert_room(&self, name: &str, room: Room) -> (RoomRef, bool) {
        let mut rooms = self.rooms.lock().unwrap();
        if let Some(existing) = rooms.get(name) {
            return (existing.clone(), false);
        }
        let r = Arc::new(tokio::sync::Mutex::new(room));
        rooms.insert(name.to_owned(), r.clone());
        (r, true)
    }

    fn remove_room(&self, name: &str) {
        self.rooms.lock().unwrap().remove(name);
    }

    /// Queue stanzas for delivery, in order; waits while the queue is full. Called with
    /// the room's lock held, so a room's deliveries keep the order of its events.
    pub async fn send(&self, stanzas: Out) {
        send_all(&self.queue, stanzas).await
    }

    /// Whether `jid` is one of this server's users (who may create rooms by default).
    fn is_local_user(server: &Server, jid: &Jid) -> bool {
        jid.node().is_some() && server.serves_host(jid.domain().as_str())
    }

    /// Whether `jid` may create rooms here.
    fn may_create(server: &Server, jid: &Jid) -> bool {
        match server.config().muc.create.as_str() {
            "admins" => server.is_admin(jid.to_bare().as_str()),
            _ => Self::is_local_user(server, jid) || server.is_admin(jid.to_bare().as_str()),
        }
    }

    /// The JIDs of the shared groups `bare` belongs to, for group affiliations.
    pub async fn groups_of(server: &Server, bare: &BareJid) -> Vec<BareJid> {
        crate::modules::groups::groups_of(server, bare)
            .await
            .into_iter()
            .map(|g| crate::modules::groups::group_jid(&g.host, &g.id))
            .collect()
    }

    /// Save a persistent room's configuration and subject (affiliations are saved as they
    /// change).
    async fn save(&self, server: &Server, room: &Room) -> Result<(), StanzaError> {
        if !room.config.persistent {
            return Ok(());
        }
        server
            .stores()
            .muc
            .save_room(&self.domain, &room.to_stored())
            .await
            .map_err(|e| {
                tracing::error!(room = %room.jid, error = %e, "could not save the room");
                StanzaError::internal("the room could not be saved; try again")
            })
    }

    /// Save every affiliation of a room that just became persistent.
    async fn save_all(&self, server: &Server, room: &Room) -> Result<(), StanzaError> {
        self.save(server, room).await?;
        let name = room.jid.node().map(|n| n.to_string()).unwrap_or_default();
        for (jid, (a, reason)) in &room.affiliations {
            self.store_affiliation(server, &name, jid, *a, reason)
                .await?;
        }
        Ok(())
    }

    async fn store_affiliation(
        &self,
        server: &Server,
        room: &str,
        jid: &BareJid,
        a: Affiliation,
        reason: &str,
    ) -> Result<(), StanzaError> {
        server
            .stores()
            .muc
            .set_affiliation(&self.domain, room, jid.as_str(), a.as_str(), reason)
            .await
            .map_err(|e| {
                tracing::error!(%room, error = %e, "could not save an affiliation");
                StanzaError::internal("the affiliation could not be saved; try again")
            })
    }

    /// An account was deleted: it loses its affiliations everywhere.
    async fn forget_user(&self, server: &Server, jid: &BareJid) {
        let rooms: Vec<(String, RoomRef)> = self
            .rooms
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, room) in rooms {
            let mut r = room.lock().await;
            if r.affiliations.remove(jid).is_some() && r.config.persistent {
                let _ = self
                    .store_affiliation(server, &name, jid, Affiliation::None, "")
                    .await;
            }
        }
    }

    /// Stanzas to the service's own JID: disco and commands.
    async fn service_stanza(&self, server: &Server, from: Jid, to: Jid, stanza: Element) {
        if stanza.name() != "iq" {
            return;
        }
        let Some(ty) = IqType::parse(stanza.get_attr("type")) else {
            return;
        };
        if matches!(ty, IqType::Result | IqType::Error) {
            return;
        }
        let reply = match stanza.first_child() {
            Some(q) if q.is("query", ns::DISCO_INFO) && ty == IqType::Get => {
                let node = q.get_attr("node").unwrap_or("");
                match adhoc::disco_info(server, &from, &to, node) {
                    Some(Ok(info)) => crate::xml::iq_result(&stanza, Some(info)),
                    Some(Err(e)) => e.bounce(&stanza),
                    None if node.is_empty() => {
                        let info = el("query", ns::DISCO_INFO)
                            .with_child(
                                el("identity", ns::DISCO_INFO)
                                    .with_attr("category", "conference")
                                    .with_attr("type", "text")
                                    .with_attr("name", "Chatrooms"),
                            )
                            .with_child(
                                el("feature", ns::DISCO_INFO).with_attr("var", ns::DISCO_INFO),
                            )
                            .with_child(
                                el("feature", ns::DISCO_INFO).with_attr("var", ns::DISCO_ITEMS),
                            )
                            .with_child(
                                el("feature", ns::DISCO_INFO).with_attr("var", room::NS_MUC),
                            )
                            .with_child(el("feature", ns::DISCO_INFO).with_attr("var", adhoc::NS));
                        crate::xml::iq_result(&stanza, Some(info))
                    }
                    None => StanzaError::item_not_found("no such node").bounce(&stanza),
                }
            }
            Some(q) if q.is("query", ns::DISCO_ITEMS) && ty == IqType::Get => {
                let node = q.get_attr("node").unwrap_or("");
                match adhoc::disco_items(server, &from, &to, node) {
                    Some(items) => crate::xml::iq_result(&stanza, Some(items)),
                    None if node.is_empty() => {
                        let items = self.public_rooms().await;
                        crate::xml::iq_result(&stanza, Some(items))
                    }
                    None => StanzaError::item_not_found("no such node").bounce(&stanza),
                }
            }
            Some(q) if q.is("command", adhoc::NS) => {
                adhoc::answer_iq(server, from, to, &stanza).await
            }
            Some(q) if q.is("ping", ns::PING) => crate::xml::iq_result(&stanza, None),
            Some(q) => StanzaError::service_unavailable(format!(
                "the chatroom service does not answer <{} xmlns='{}'/>",
                q.name(),
                q.ns()
            ))
            .bounce(&stanza),
            None => StanzaError::bad_request("an IQ get or set needs one child").bounce(&stanza),
        };
        server.route(reply).await
    }

    /// The public rooms, for disco#items on the service.
    async fn public_rooms(&self) -> Element {
        let rooms: Vec<RoomRef> = self.rooms.lock().unwrap().values().cloned().collect();
        let mut items: Vec<(String, String)> = Vec::new();
        for r in rooms {
            let r = r.lock().await;
            if r.config.public && !r.locked {
                let name = if r.config.name.is_empty() {
                    r.jid.node().map(|n| n.to_string()).unwrap_or_default()
                } else {
                    r.config.name.clone()
                };
                items.push((r.jid.to_string(), name));
            }
        }
        items.sort();
        let mut q = el("query", ns::DISCO_ITEMS);
        for (jid, name) in items {
            q.append_child(
                el("item", ns::DISCO_ITEMS)
                    .with_attr("jid", &jid)
                    .with_attr("name", &name),
            );
        }
        q
    }

    /// Disco of a room (§6.4).
    fn room_disco(&self, room: &Room, stanza: &Element) -> Option<Element> {
        let q = stanza.first_child()?;
        if q.is("query", ns::DISCO_INFO) {
            if q.get_attr("node").is_some_and(|n| !n.is_empty()) {
                return Some(StanzaError::item_not_found("no such node").bounce(stanza));
            }
            let name = if room.config.name.is_empty() {
                room.jid.node().map(|n| n.to_string()).unwrap_or_default()
            } else {
                room.config.name.clone()
            };
            let mut info = el("query", ns::DISCO_INFO).with_child(
                el("identity", ns::DISCO_INFO)
                    .with_attr("category", "conference")
                    .with_attr("type", "text")
                    .with_attr("name", &name),
            );
            for f in room.features() {
                info.append_child(el("feature", ns::DISCO_INFO).with_attr("var", f));
            }
            info.append_child(room.info_form().to_element());
            return Some(crate::xml::iq_result(stanza, Some(info)));
        }
        if q.is("query", ns::DISCO_ITEMS) {
            // Occupants are not listed: that would reveal them to non-occupants.
            return Some(crate::xml::iq_result(
                stanza,
                Some(el("query", ns::DISCO_ITEMS)),
            ));
        }
        None
    }

    /// Stanzas to a room or an occupant.
    async fn room_stanza(&self, server: &Server, from: Jid, to: Jid, stanza: Element) {
        let name = to.node().map(|n| n.to_string()).unwrap_or_default();
        let Some(room) = self.room(&name) else {
            return self.no_room(server, from, to, stanza).await;
        };
        if crate::router::stanza_type(&stanza) == "error" {
            // An occupant's client refused something the room sent: it leaves (§7.14). It
            // may be the delivery task itself bringing this bounce, while a handler holding
            // the room's lock waits for that task to make room in the queue: handled apart.
            let queue = self.queue.clone();
            server.spawn(async move {
                let mut r = room.lock().await;
                let mut out = Out::default();
                occupants::refused(&mut r, &from, &stanza, &mut out);
                send_all(&queue, out).await;
            });
            return;
        }
        let mut r = room.lock().await;
        let mut out = Out::default();
        let full = from.clone().try_into_full().ok();
        let entering = stanza.name() == "presence"
            && full.as_ref().is_some_and(|f| r.occupant_of(f).is_none());
        match stanza.name() {
            "presence" => occupants::presence(server, &mut r, &from, &to, stanza, &mut out).await,
            "message" => {
                messages::message(self, server, &mut r, &from, &to, stanza, &mut out).await
            }
            "iq" => {
                self.room_iq(server, &mut r, &from, &to, stanza, &mut out)
                    .await
            }
            _ => {}
        }
        let destroyed = r.occupants.is_empty() && !r.config.persistent && !r.locked;
        if destroyed {
            self.remove_room(&name);
        }
        let entered = entering && full.as_ref().is_some_and(|f| r.occupant_of(f).is_some());
        let room_jid = r.jid.clone();
        drop(r);
        self.send(out).await;
        if entered && let Some(occupant) = full {
            let event = crate::module::Event::OccupantJoined {
                room: room_jid,
                occupant,
            };
            server.registry().fire(server, event).await;
        }
    }

    async fn room_iq(
        &self,
        server: &Server,
        r: &mut Room,
        from: &Jid,
        to: &Jid,
        stanza: Element,
        out: &mut Out,
    ) {
        let Some(ty) = IqType::parse(stanza.get_attr("type")) else {
            return;
        };
        if matches!(ty, IqType::Result | IqType::Error) {
            return;
        }
        if to.resource().is_some() {
            // IQs to occupants are not relayed: their real JIDs stay private.
            out.push(
                StanzaError::service_unavailable("IQs to occupants are not relayed by this room")
                    .bounce(&stanza),
            );
            return;
        }
        if ty == IqType::Get
            && let Some(reply) = self.room_disco(r, &stanza)
        {
            out.push(reply);
            return;
        }
        let reply = match stanza.first_child() {
            Some(q) if q.is("query", room::NS_ADMIN) => {
                admin::admin_iq(self, server, r, from, ty, &stanza, out).await
            }
            Some(q) if q.is("query", room::NS_OWNER) => {
                admin::owner_iq(self, server, r, from, ty, &stanza, out).await
            }
            Some(q) if q.is("ping", ns::PING) => crate::xml::iq_result(&stanza, None),
            Some(q) => StanzaError::service_unavailable(format!(
                "rooms do not answer <{} xmlns='{}'/>",
                q.name(),
                q.ns()
            ))
            .bounce(&stanza),
            None => StanzaError::bad_request("an IQ get or set needs one child").bounce(&stanza),
        };
        out.push(reply);
    }

    /// A stanza for a room that does not exist: presence may create it.
    async fn no_room(&self, server: &Server, from: Jid, to: Jid, stanza: Element) {
        let name = to.node().map(|n| n.to_string()).unwrap_or_default();
        let mut out = Out::default();
        match stanza.name() {
            "presence"
                if to.resource().is_some()
                    && crate::router::stanza_type(&stanza) == "available" =>
            {
                if !Self::may_create(server, &from) {
                    out.push(
                        StanzaError::not_allowed(format!(
                            "there is no room {name} and you may not create rooms here"
                        ))
                        .bounce(&stanza),
                    );
                } else {
                    let config = RoomConfig {
                        max_users: server.config().muc.max_occupants,
                        history_length: 20.min(server.config().muc.max_history),
                        ..RoomConfig::default()
                    };
                    let mut room = Room::new(to.to_bare(), config);
                    room.locked = true;
                    let owner = from.to_bare();
                    room.affiliations
                        .insert(owner, (Affiliation::Owner, String::new()));
                    let (room_ref, created) = self.insert_room(&name, room);
                    let mut r = room_ref.lock().await;
                    occupants::presence(server, &mut r, &from, &to, stanza, &mut out).await;
                    if created && r.occupants.is_empty() {
                        // The creator did not get in: no room after all.
                        self.remove_room(&name);
                    }
                }
            }
            "presence"
                if to.resource().is_none()
                    && crate::router::stanza_type(&stanza) == "available" =>
            {
                out.push(
                    StanzaError::new(
                        crate::error::Condition::JidMalformed,
                        "to enter a room, address your presence to room@service/nickname",
                    )
                    .bounce(&stanza),
                );
            }
            "presence" => {}
            _ => {
                if !matches!(crate::router::stanza_type(&stanza), "error" | "result") {
                    out.push(
                        StanzaError::item_not_found(format!("there is no room {name}"))
                            .bounce(&stanza),
                    );
                }
            }
        }
        self.send(out).await;
    }

    /// End a room: every occupant gets an unavailable presence with `<destroy/>`, and the
    /// room is gone (from the store too).
    pub async fn destroy(
        &self,
        server: &Server,
        r: &mut Room,
        alternate: Option<&str>,
        reason: &str,
        out: &mut Out,
    ) -> Result<(), StanzaError> {
        let name = r.jid.node().map(|n| n.to_string()).unwrap_or_default();
        if r.config.persistent || !r.affiliations.is_empty() {
            server
                .stores()
                .muc
                .delete_room(&self.domain, &name)
                .await
                .map_err(|e| {
                    tracing::error!(room = %r.jid, error = %e, "could not delete the room");
                    StanzaError::internal("the room could not be deleted; try again")
                })?;
        }
        let mut destroy = el("destroy", room::NS_USER);
        if let Some(alt) = alternate {
            destroy.put_attr("jid", alt);
        }
        if !reason.is_empty() {
            destroy.append_child(el("reason", room::NS_USER).with_text(reason));
        }
        for o in &r.occupants {
            let from = r.occupant_jid(&o.nick);
            let mut leaving = o.clone();
            leaving.role = Role::None;
            leaving.affiliation = Affiliation::None;
            for to in &o.sessions {
                let mut x = r.user_x(&leaving, false, &[]);
                x.append_child(destroy.clone());
                out.push(r.presence_of(&leaving, &from, to, true, x));
            }
        }
        r.occupants.clear();
        r.config.persistent = false;
        r.locked = false;
        self.remove_room(&name);
        Ok(())
    }
}

#[async_trait]
impl Route for MucService {
    async fn route(&self, server: &Server, stanza: Element) {
        let Some(Ok(to)) = stanza.get_attr("to").map(Jid::new) else {
            return;
        };
        let Some(Ok(from)) = stanza.get_attr("from").map(Jid::new) else {
            return;
        };
        if to.node().is_none() {
            if to.resource().is_none() {
                self.service_stanza(server, from, to, stanza).await;
            }
            return;
        }
        self.room_stanza(server, from, to, stanza).await
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// The MUC service of a hosted domain, if it runs.
pub fn service_for(server: &Server, host: &str) -> Option<Arc<dyn Route>> {
    server.service(&format!("{}.{host}", server.config().muc.subdomain))
}
