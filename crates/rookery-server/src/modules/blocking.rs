//! XEP-0191 Blocking Command. Blocklists are cached in memory for users seen since start
//! (loaded when a session binds), so the stanza filter is a map lookup on the routing path;
//! empty ones too, so that a user's later logins do not ask the store again.

use crate::error::{Condition, StanzaError};
use crate::module::{
    Address, Direction, Event, EventKind, Flow, IqRequest, IqResult, Module, ModuleContext, Verdict,
};
use crate::ns;
use crate::server::Server;
use crate::xml::{ElementExt, IqType, el};
use dashmap::{DashMap, DashSet};
use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Default, Clone)]
pub struct Blocking {
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// Blocklists loaded, by the user's bare JID as a string: the filter looks them up
    /// straight from a stanza's (normalised) address, without parsing it. Empty ones all
    /// share `empty`.
    lists: DashMap<String, Arc<HashSet<String>>>,
    empty: Arc<HashSet<String>>,
    /// Whether any list was ever loaded: until then every stanza passes at once (asking
    /// the map whether it is empty locks each of its shards).
    any: std::sync::atomic::AtomicBool,
    /// Resources that fetched the blocklist and so receive pushes (XEP-0191 §3.3).
    interested: DashSet<FullJid>,
}

impl Module for Blocking {
    fn name(&self) -> &'static str {
        "blocking"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        m.feature(Address::Host, ns::BLOCKING);
        m.feature(Address::Bare, ns::BLOCKING);
        let st = self.state.clone();
        m.iq(
            IqType::Get,
            Address::Bare,
            "blocklist",
            ns::BLOCKING,
            move |r| get(st.clone(), r),
        );
        let st = self.state.clone();
        m.iq(
            IqType::Set,
            Address::Bare,
            "block",
            ns::BLOCKING,
            move |r| change(st.clone(), r, true),
        );
        let st = self.state.clone();
        m.iq(
            IqType::Set,
            Address::Bare,
            "unblock",
            ns::BLOCKING,
            move |r| change(st.clone(), r, false),
        );
        let st = self.state.clone();
        m.hook(EventKind::SessionBound, 10, move |s, e| {
            load(st.clone(), s, e)
        });
        let st = self.state.clone();
        m.hook(EventKind::SessionClosed, 0, move |_, e| {
            if let Event::SessionClosed { jid, .. } = e {
                st.interested.remove(&jid);
            }
            async { Flow::Continue }
        });
        let st = self.state.clone();
        m.hook(EventKind::UserDeleted, 0, move |_, e| {
            if let Event::UserDeleted { jid } = e {
                st.lists.remove(jid.as_str());
            }
            async { Flow::Continue }
        });
        let st = self.state.clone();
        m.filter(move |_, stanza, dir| st.filter(stanza, dir));
    }
}

/// Whether `jid` matches a blocklist item (full, bare or domain item).
fn matches(list: &HashSet<String>, jid: &Jid) -> bool {
    list.contains(jid.as_str())
        || list.contains(jid.to_bare().as_str())
        || list.contains(jid.domain().as_str())
}

impl State {
    fn filter(&self, stanza: &Element, dir: Direction) -> Verdict {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return Verdict::Pass;
        }
        let (user_attr, other_attr) = match dir {
            Direction::Inbound => ("to", "from"),
            Direction::Outbound => ("from", "to"),
        };
        // The local user's address is one the server stamped or normalised (`from` at c2s,
        // `to` at the router), so its bare part is the map's key as it stands.
        let Some(user) = stanza.get_attr(user_attr) else {
            return Verdict::Pass;
        };
        let bare = user.split_once('/').map_or(user, |(bare, _)| bare);
        let Some(list) = self.lists.get(bare).map(|l| l.clone()) else {
            return Verdict::Pass;
        };
        if list.is_empty() {
            return Verdict::Pass;
        }
        let Some(Ok(other)) = stanza.get_attr(other_attr).map(Jid::new) else {
            return Verdict::Pass;
        };
        if !matches(&list, &other) {
            return Verdict::Pass;
        }
        let ty = crate::router::stanza_type(stanza);
        if stanza.name() == "presence" || matches!(ty, "error" | "result") {
            return Verdict::Drop;
        }
        match dir {
            Direction::Inbound => Verdict::Bounce(StanzaError::service_unavailable("")),
            Direction::Outbound => Verdict::Bounce(
                StanzaError::new(
                    Condition::NotAcceptable,
                    format!("you have blocked {other}; unblock it first"),
                )
                .with_app(el("blocked", ns::BLOCKING_ERRORS)),
            ),
        }
    }

    async fn list(
        &self,
        server: &Server,
        user: &BareJid,
    ) -> Result<Arc<HashSet<String>>, StanzaError> {
        if let Some(l) = self.lists.get(user.as_str()) {
            return Ok(l.clone());
        }
        let node = user.node().map(|n| n.as_str()).unwrap_or("");
        let v = server
            .stores()
            .blocklist
            .blocklist(user.domain().as_str(), node)
            .await?;
        Ok(self.keep(user, v))
    }

    /// Cache `jids` as the blocklist of `user`.
    fn keep(&self, user: &BareJid, jids: Vec<String>) -> Arc<HashSet<String>> {
        let set = if jids.is_empty() {
            self.empty.clone()
        } else {
            self.any.store(true, std::sync::atomic::Ordering::Release);
            Arc::new(jids.into_iter().collect())
        };
        self.lists.insert(user.to_string(), set.clone());
        set
    }
}

async fn load(st: Arc<State>, server: Server, e: Event) -> Flow {
    if let Event::SessionBound { jid } = e
        && let Err(err) = st.list(&server, &jid.to_bare()).await
    {
        tracing::error!(error = %err, "could not load a blocklist");
    }
    Flow::Continue
}

fn own(req: &IqRequest) -> Result<(), StanzaError> {
    if req.is_own_account() {
        Ok(())
    } else {
        Err(StanzaError::forbidden(
            "a blocklist belongs to its owner only",
        ))
    }
}

async fn get(st: Arc<State>, req: IqRequest) -> IqResult {
    own(&req)?;
    let list = st.list(&req.server, &req.from_bare()).await?;
    if let Some(full) = req.from_full() {
        st.interested.insert(full);
    }
    let mut items: Vec<&String> = list.iter().collect();
    items.sort();
    let mut q = el("blocklist", ns::BLOCKING);
    for j in items {
        q.append_child(el("item", ns::BLOCKING).with_attr("jid", j));
    }
    Ok(Some(q))
}

async fn change(st: Arc<State>, req: IqRequest, block: bool) -> IqResult {
    own(&req)?;
    let mut jids = Vec::new();
    for item in req
        .payload()
        .children()
        .filter(|c| c.is("item", ns::BLOCKING))
    {
        let raw = item
            .get_attr("jid")
            .ok_or_else(|| StanzaError::bad_request("a blocklist item needs a 'jid'"))?;
        let j = Jid::new(raw).map_err(|e| {
            StanzaError::new(
                Condition::JidMalformed,
                format!("'{raw}' is not a valid JID: {e}"),
            )
        })?;
        jids.push(j.to_string());
    }
    if block && jids.is_empty() {
        return Err(StanzaError::bad_request(
            "<block/> needs at least one <item/>",
        ));
    }
    let server = &req.server;
    let user = req.from_bare();
    let node = user.node().map(|n| n.as_str()).unwrap_or("").to_owned();
    let host = user.domain().as_str().to_owned();
    let store = &server.stores().blocklist;
    if block {
        store.block(&host, &node, &jids).await?;
        // Blocked contacts stop seeing us at once (XEP-0191 §3.3).
        for j in &jids {
            for s in server.sm().available(&user) {
                let p = el("presence", ns::CLIENT)
                    .with_attr("type", "unavailable")
                    .with_attr("from", s.jid.as_str())
                    .with_attr("to", j);
                server.route(p).await;
            }
        }
    } else {
        store.unblock(&host, &node, &jids).await?;
    }
    let fresh = store.blocklist(&host, &node).await?;
    st.keep(&user, fresh);
    // Push the change to every resource that fetched the blocklist.
    let name = if block { "block" } else { "unblock" };
    let mut push = el(name, ns::BLOCKING);
    for j in &jids {
        push.append_child(el("item", ns::BLOCKING).with_attr("jid", j));
    }
    for s in server.sm().resources(&user) {
        if st.interested.contains(&s.jid) {
            s.send(
                el("iq", ns::CLIENT)
                    .with_attr("type", "set")
                    .with_attr("id", &format!("block-{}", crate::c2s::random_id()))
                    .with_attr("to", s.jid.as_str())
                    .with_child(push.clone()),
            );
        }
    }
    Ok(None)
}
