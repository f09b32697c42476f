//! The module API: what a feature registers, and the registry that dispatches to it.
//!
//! A module implements [`Module`]; its `start` registers IQ handlers, hooks, stanza filters
//! and disco entries through a [`ModuleContext`]. Everything is recorded under the module's
//! name, so [`Registry::unload`] removes a module completely without cleanup code
//! (Prosody's unload, ejabberd's `gen_mod`). Disco answers are generated from what is
//! registered here, never written by hand.

use crate::error::StanzaError;
use crate::server::Server;
use crate::xml::{ElementExt, IqType};
use futures::future::BoxFuture;
use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

/// What an IQ handler returns: a result payload (or none), or a stanza error.
pub type IqResult = Result<Option<Element>, StanzaError>;

/// Which kind of address an IQ was sent to (ejabberd's `ejabberd_local` vs `ejabberd_sm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// The server itself (`localhost`).
    Host,
    /// A local user's bare JID (or no `to`: the sender's own account).
    Bare,
}

/// An IQ get/set handed to a handler, with the payload already picked out.
pub struct IqRequest {
    pub server: Server,
    /// The sender, as stamped by the server.
    pub from: Jid,
    /// The addressee (the host, or a bare JID).
    pub to: Jid,
    pub iq_type: IqType,
    /// The whole `<iq/>`.
    pub stanza: Element,
}

impl IqRequest {
    /// The single child element of the IQ (checked by the dispatcher).
    pub fn payload(&self) -> &Element {
        self.stanza
            .first_child()
            .expect("dispatcher checks there is one child")
    }
    /// The sender's full JID, if it has one.
    pub fn from_full(&self) -> Option<FullJid> {
        self.from.clone().try_into_full().ok()
    }
    pub fn from_bare(&self) -> BareJid {
        self.from.to_bare()
    }
    pub fn to_bare(&self) -> BareJid {
        self.to.to_bare()
    }
    /// True when a user addresses their own account (or the server on their behalf).
    pub fn is_own_account(&self) -> bool {
        self.to.node().is_none() || self.from.to_bare() == self.to.to_bare()
    }
}

type IqHandler = Arc<dyn Fn(IqRequest) -> BoxFuture<'static, IqResult> + Send + Sync>;

/// Something that happened in the server, handed to hooks.
#[derive(Clone, Debug)]
pub enum Event {
    /// A resource was bound: the session is a *connected* resource.
    SessionBound { jid: FullJid },
    /// A resource sent its initial presence: it is now *available*.
    InitialPresence { jid: FullJid, priority: i8 },
    /// A resource's stream ended.
    SessionClosed { jid: FullJid, status: String },
    /// An account was removed (its stored data is gone already).
    UserDeleted { jid: BareJid },
    /// An account was created by in-band registration or an administrator.
    UserRegistered { jid: BareJid },
    /// The server has started listening (modules load their stored state here).
    Started,
    /// A message for a local user found no resource to deliver it to.
    MessageUndeliverable { to: BareJid, stanza: Element },
    /// A user's session entered a multi-user chat room (after the room's own answers
    /// were queued).
    OccupantJoined { room: BareJid, occupant: FullJid },
}

/// The kind of an [`Event`], to register a hook for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    SessionBound,
    InitialPresence,
    SessionClosed,
    UserDeleted,
    UserRegistered,
    Started,
    MessageUndeliverable,
    OccupantJoined,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::SessionBound { .. } => EventKind::SessionBound,
            Event::InitialPresence { .. } => EventKind::InitialPresence,
            Event::SessionClosed { .. } => EventKind::SessionClosed,
            Event::UserDeleted { .. } => EventKind::UserDeleted,
            Event::UserRegistered { .. } => EventKind::UserRegistered,
            Event::Started => EventKind::Started,
            Event::MessageUndeliverable { .. } => EventKind::MessageUndeliverable,
            Event::OccupantJoined { .. } => EventKind::OccupantJoined,
        }
    }
}

/// A hook's answer: let later hooks run, or stop here because the event was handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Handled,
}

type HookHandler = Arc<dyn Fn(Server, Event) -> BoxFuture<'static, Flow> + Send + Sync>;

/// Which way a stanza crosses a local user's boundary, for filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From a local user's session to anywhere.
    Outbound,
    /// From anywhere to a local user.
    Inbound,
}

/// A filter's verdict on one stanza.
#[derive(Debug)]
pub enum Verdict {
    Pass,
    /// Drop silently.
    Drop,
    /// Refuse with this error to the sender.
    Bounce(StanzaError),
}

type StanzaFilter = Arc<dyn Fn(&Server, &Element, Direction) -> Verdict + Send + Sync>;

/// A disco identity (XEP-0030).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub category: String,
    pub kind: String,
    pub name: String,
}

/// A feature of the server.
pub trait Module: Send + Sync + 'static {
    /// A short unique name, also used in `modules.disabled`.
    fn name(&self) -> &'static str;
    /// Register everything the module provides.
    fn start(&self, m: &mut ModuleContext<'_>);
}

#[derive(Default)]
struct Tables {
    iq: HashMap<(IqType, Address, String, String), (&'static str, IqHandler)>,
    hooks: HashMap<EventKind, Vec<(i32, &'static str, HookHandler)>>,
    filters: Vec<(&'static str, StanzaFilter)>,
    features: Vec<(&'static str, Address, String)>,
    identities: Vec<(&'static str, Identity)>,
    commands: Vec<(&'static str, crate::adhoc::CommandDef)>,
    modules: Vec<&'static str>,
}

/// Every handler, hook, filter and disco entry registered by the loaded modules.
#[derive(Default)]
pub struct Registry {
    tables: RwLock<Tables>,
}

/// Handed to [`Module::start`]: registers things on the module's behalf.
pub struct ModuleContext<'a> {
    registry: &'a Registry,
    owner: &'static str,
    /// The server configuration, for module options.
    pub config: &'a rookery_config::Config,
}

impl ModuleContext<'_> {
    /// Handle IQs of type `ty` whose payload is `<name xmlns='ns'/>`, sent to `address`.
    pub fn iq<F, Fut>(&mut self, ty: IqType, address: Address, name: &str, ns: &str, handler: F)
    where
        F: Fn(IqRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = IqResult> + Send + 'static,
    {
        let h: IqHandler = Arc::new(move |req| Box::pin(handler(req)));
        let mut t = self.registry.tables.write().unwrap();
        t.iq.insert(
            (ty, address, ns.to_owned(), name.to_owned()),
            (self.owner, h),
        );
    }

    /// Run `handler` on every event of `kind`; higher `priority` runs first.
    pub fn hook<F, Fut>(&mut self, kind: EventKind, priority: i32, handler: F)
    where
        F: Fn(Server, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Flow> + Send + 'static,
    {
        let h: HookHandler = Arc::new(move |s, e| Box::pin(handler(s, e)));
        let mut t = self.registry.tables.write().unwrap();
        let list = t.hooks.entry(kind).or_default();
        list.push((priority, self.owner, h));
        list.sort_by_key(|(p, _, _)| -p);
    }

    /// Inspect every stanza entering or leaving a local user's session.
    pub fn filter<F>(&mut self, f: F)
    where
        F: Fn(&Server, &Element, Direction) -> Verdict + Send + Sync + 'static,
    {
        let mut t = self.registry.tables.write().unwrap();
        t.filters.push((self.owner, Arc::new(f)));
    }

    /// Advertise a disco feature on the given kind of address.
    pub fn feature(&mut self, address: Address, var: &str) {
        let mut t = self.registry.tables.write().unwrap();
        t.features.push((self.owner, address, var.to_owned()));
    }

    /// Offer an ad-hoc command (XEP-0050); see [`crate::adhoc`].
    pub fn command(&mut self, def: crate::adhoc::CommandDef) {
        self.registry.add_command(self.owner, def);
    }

    /// Advertise a disco identity of the server.
    pub fn identity(&mut self, category: &str, kind: &str, name: &str) {
        let mut t = self.registry.tables.write().unwrap();
        t.identities.push((
            self.owner,
            Identity {
                category: category.into(),
                kind: kind.into(),
                name: name.into(),
            },
        ));
    }
}

impl Registry {
    /// Start a module, recording what it registers under its name.
    pub fn load(&self, module: &dyn Module, config: &rookery_config::Config) {
        let owner = module.name();
        self.tables.write().unwrap().modules.push(owner);
        let mut ctx = ModuleContext {
            registry: self,
            owner,
            config,
        };
        module.start(&mut ctx);
    }

    /// Remove everything a module registered.
    pub fn unload(&self, owner: &str) {
        let mut t = self.tables.write().unwrap();
        t.iq.retain(|_, (o, _)| *o != owner);
        for list in t.hooks.values_mut() {
            list.retain(|(_, o, _)| *o != owner);
        }
        t.filters.retain(|(o, _)| *o != owner);
        t.features.retain(|(o, _, _)| *o != owner);
        t.identities.retain(|(o, _)| *o != owner);
        t.commands.retain(|(o, _)| *o != owner);
        t.modules.retain(|o| *o != owner);
    }

    /// Offer an ad-hoc command on behalf of `owner` (also at run time, e.g. for a new
    /// room); a command with the same node on the same JIDs is replaced.
    pub fn add_command(&self, owner: &'static str, def: crate::adhoc::CommandDef) {
        let mut t = self.tables.write().unwrap();
        t.commands
            .retain(|(_, c)| !(c.node == def.node && c.on == def.on));
        t.commands.push((owner, def));
    }

    /// Withdraw a command.
    pub fn remove_command(&self, on: &crate::adhoc::On, node: &str) {
        let mut t = self.tables.write().unwrap();
        t.commands.retain(|(_, c)| !(c.node == node && &c.on == on));
    }

    /// Every registered command.
    pub fn commands(&self) -> Vec<crate::adhoc::CommandDef> {
        let t = self.tables.read().unwrap();
        t.commands.iter().map(|(_, c)| c.clone()).collect()
    }

    /// Names of the loaded modules.
    pub fn modules(&self) -> Vec<&'static str> {
        self.tables.read().unwrap().modules.clone()
    }

    fn iq_handler(&self, ty: IqType, address: Address, payload: &Element) -> Option<IqHandler> {
        let t = self.tables.read().unwrap();
        let key = (ty, address, payload.ns(), payload.name().to_owned());
        t.iq.get(&key).map(|(_, h)| h.clone())
    }

    /// Whether any handler serves this namespace at this kind of address (for errors).
    pub fn has_iq_namespace(&self, address: Address, ns: &str) -> bool {
        let t = self.tables.read().unwrap();
        t.iq.keys().any(|(_, a, n, _)| *a == address && n == ns)
    }

    /// Run the hooks for `event` in priority order until one says it handled it.
    pub async fn fire(&self, server: &Server, event: Event) -> Flow {
        let handlers: Vec<HookHandler> = {
            let t = self.tables.read().unwrap();
            match t.hooks.get(&event.kind()) {
                Some(list) => list.iter().map(|(_, _, h)| h.clone()).collect(),
                None => return Flow::Continue,
            }
        };
        for h in handlers {
            if h(server.clone(), event.clone()).await == Flow::Handled {
                return Flow::Handled;
            }
        }
        Flow::Continue
    }

    /// Apply every filter; the first verdict that is not `Pass` wins.
    pub fn filter(&self, server: &Server, stanza: &Element, dir: Direction) -> Verdict {
        let t = self.tables.read().unwrap();
        if t.filters.is_empty() {
            return Verdict::Pass;
        }
        for (_, f) in &t.filters {
            match f(server, stanza, dir) {
                Verdict::Pass => continue,
                other => return other,
            }
        }
        Verdict::Pass
    }

    /// Disco features for an address kind, sorted and without duplicates.
    pub fn features(&self, address: Address) -> Vec<String> {
        let t = self.tables.read().unwrap();
        let mut v: Vec<String> = t
            .features
            .iter()
            .filter(|(_, a, _)| *a == address)
            .map(|(_, _, f)| f.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn identities(&self) -> Vec<Identity> {
        let t = self.tables.read().unwrap();
        t.identities.iter().map(|(_, i)| i.clone()).collect()
    }

    /// Dispatch an IQ get/set to its handler (ejabberd's `gen_iq_handler`). Returns the reply
    /// stanza. Unknown payloads get `service-unavailable`, no child or several get
    /// `bad-request`, a panicking handler is logged and answered `internal-server-error`.
    pub async fn dispatch_iq(
        &self,
        server: &Server,
        address: Address,
        from: Jid,
        to: Jid,
        iq_type: IqType,
        stanza: Element,
    ) -> Element {
        let count = stanza.children().count();
        if count != 1 {
            let text = if count == 0 {
                "an IQ get or set must have exactly one child element; it has none"
            } else {
                "an IQ get or set must have exactly one child element; it has several"
            };
            return StanzaError::bad_request(text).bounce(&stanza);
        }
        let payload = stanza.first_child().unwrap();
        let Some(handler) = self.iq_handler(iq_type, address, payload) else {
            let text = format!(
                "no service here handles <{} xmlns='{}'/>",
                payload.name(),
                payload.ns()
            );
            return StanzaError::service_unavailable(text).bounce(&stanza);
        };
        let req = IqRequest {
            server: server.clone(),
            from,
            to,
            iq_type,
            stanza: stanza.clone(),
        };
        // A handler runs in its own task so that a panic is contained and reported.
        match tokio::spawn(handler(req)).await {
            Ok(Ok(payload)) => crate::xml::iq_result(&stanza, payload),
            Ok(Err(e)) => e.bounce(&stanza),
            Err(join) => {
                tracing::error!(error = %join, ns = %stanza.first_child().map(|c| c.ns()).unwrap_or_default(), "IQ handler panicked");
                StanzaError::internal("the handler for this request failed").bounce(&stanza)
            }
        }
    }
}
