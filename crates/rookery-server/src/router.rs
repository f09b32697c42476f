//! The router (seed 002 §3.1–3.3): every stanza goes through [`Server::route`], which picks
//! the destination by domain — a hosted domain (local router / session manager), a service
//! with its own route, or a remote server (the S2S manager, `s2s/`).
//!
//! Delivery to local users follows RFC 6121 §8.5.

use crate::error::{Condition, StanzaError};
use crate::im::presence;
use crate::module::{Address, Direction, Event, Flow, Verdict};
use crate::server::Server;
use crate::xml::{ElementExt, IqType};
use async_trait::async_trait;
use futures::future::BoxFuture;
use jid::{BareJid, Jid};
use minidom::Element;

/// A service with its own domain (MUC, NEERC, a component): gets every stanza for it.
#[async_trait]
pub trait Route: Send + Sync {
    async fn route(&self, server: &Server, stanza: Element);
    /// The service itself, for features that need its concrete type (e.g. the contest
    /// service reading a MUC room).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// The stanza's `type`, or its default.
pub fn stanza_type(stanza: &Element) -> &str {
    stanza.get_attr("type").unwrap_or(match stanza.name() {
        "message" => "normal",
        "presence" => "available",
        _ => "",
    })
}

impl Server {
    /// Route a stanza whose `from` is already stamped. (Boxed: routing can recurse, e.g. a
    /// bounce routes the error back, a subscription answer routes presence.)
    pub fn route(&self, stanza: Element) -> BoxFuture<'_, ()> {
        Box::pin(self.route_inner(stanza))
    }

    /// Route a stanza whose `to` the caller has parsed already (and written back to the
    /// stanza in its normal form), saving the router a second parse.
    pub fn route_to(&self, to: Jid, stanza: Element) -> BoxFuture<'_, ()> {
        Box::pin(self.route_parsed(to, stanza))
    }

    async fn route_inner(&self, mut stanza: Element) {
        let to = match stanza.get_attr("to").map(Jid::new) {
            Some(Ok(to)) => {
                // Filters and services may rely on the normal form.
                if stanza.get_attr("to") != Some(to.as_str()) {
                    stanza.put_attr("to", to.as_str());
                }
                to
            }
            Some(Err(e)) => {
                let err = StanzaError::new(
                    Condition::JidMalformed,
                    format!("the 'to' address is not a valid JID: {e}"),
                );
                return self.bounce(&stanza, err).await;
            }
            None => {
                tracing::debug!("dropping a stanza without 'to' at the router");
                return;
            }
        };
        self.route_parsed(to, stanza).await
    }

    async fn route_parsed(&self, to: Jid, stanza: Element) {
        let domain = to.domain().as_str();
        if self.serves_host(domain) {
            self.route_local(to, stanza).await
        } else if let Some(service) = self.service(domain) {
            service.route(self, stanza).await
        } else if crate::component::is_configured(self, domain) {
            crate::component::unavailable(self, domain, &stanza).await
        } else if let Some(uplink) = self.uplink() {
            uplink.route(self, stanza).await
        } else {
            crate::s2s::route(self, domain, stanza).await
        }
    }

    /// Send the error reply for `stanza` back to its sender (never for errors or results).
    pub async fn bounce(&self, stanza: &Element, err: StanzaError) {
        if matches!(stanza_type(stanza), "error" | "result") || stanza.get_attr("from").is_none() {
            return;
        }
        let reply = err.bounce(stanza);
        self.route(reply).await
    }

    /// The local router (seed 002 §3.2): stanzas for a hosted domain.
    async fn route_local(&self, to: Jid, stanza: Element) {
        if to.node().is_none() {
            return self.route_to_host(to, stanza).await;
        }
        match self.registry().filter(self, &stanza, Direction::Inbound) {
            Verdict::Pass => {}
            Verdict::Drop => return,
            Verdict::Bounce(err) => return self.bounce(&stanza, err).await,
        }
        match stanza.name() {
            "message" => self.deliver_message(to, stanza).await,
            "presence" => presence::inbound(self, to, stanza).await,
            "iq" => self.deliver_iq(to, stanza).await,
            _ => {}
        }
    }

    async fn route_to_host(&self, to: Jid, stanza: Element) {
        if stanza.name() != "iq" || to.resource().is_some() {
            // Messages and presence to the server itself have no handler yet: ignore them,
            // as RFC 6121 §8.5.1 allows.
            return;
        }
        let from = match stanza.get_attr("from").map(Jid::new) {
            Some(Ok(f)) => f,
            _ => return,
        };
        let Some(ty) = IqType::parse(stanza.get_attr("type")) else {
            return;
        };
        if matches!(ty, IqType::Result | IqType::Error) {
            return;
        }
        let reply = self
            .registry()
            .dispatch_iq(self, Address::Host, from, to, ty, stanza)
            .await;
        self.route(reply).await
    }

    async fn deliver_message(&self, to: Jid, stanza: Element) {
        let mut stanza = stanza;
        let to = match to.try_into_full() {
            Ok(full) => {
                if let Some(session) = self.sm().resource(&full) {
                    // A session that just closed hands it back: it goes on as to a
                    // resource that is not there.
                    match session.offer(stanza) {
                        Ok(()) => return,
                        Err(back) => stanza = back,
                    }
                }
                Jid::from(full)
            }
            Err(bare) => Jid::from(bare),
        };
        let ty = stanza_type(&stanza).to_owned();
        let bare = to.to_bare();
        if !to.is_bare() {
            // RFC 6121 §8.5.3.2.1: no such resource.
            match ty.as_str() {
                "normal" | "chat" => {}
                "groupchat" => {
                    let err = StanzaError::service_unavailable(format!("{to} is not online"));
                    return self.bounce(&stanza, err).await;
                }
                _ => return,
            }
        }
        if ty == "groupchat" {
            let err = StanzaError::service_unavailable(
                "a groupchat message cannot be sent to a user's bare JID",
            );
            return self.bounce(&stanza, err).await;
        }
        let targets = if ty == "headline" {
            let mut v = self.sm().available(&bare);
            v.retain(|s| s.priority() >= 0);
            v
        } else {
            self.sm().message_targets(&bare)
        };
        let mut delivered = false;
        // Each target but the last gets a copy; the last one the stanza itself, which
        // comes back if that session did not take it.
        if let Some((last, others)) = targets.split_last() {
            for s in others {
                delivered |= s.send(stanza.clone());
            }
            match last.offer(stanza) {
                Ok(()) => return,
                Err(back) => stanza = back,
            }
        }
        if delivered || matches!(ty.as_str(), "headline" | "error") {
            return;
        }
        self.message_undeliverable(bare, stanza).await
    }

    /// A chat/normal message found nobody: offline storage (a hook), else an error.
    async fn message_undeliverable(&self, bare: BareJid, stanza: Element) {
        if !self.account_exists(&bare).await {
            let err = StanzaError::service_unavailable(format!("there is no user {bare}"));
            return self.bounce(&stanza, err).await;
        }
        let event = Event::MessageUndeliverable {
            to: bare.clone(),
            stanza: stanza.clone(),
        };
        if self.registry().fire(self, event).await == Flow::Continue {
            let err = StanzaError::service_unavailable(format!(
                "{bare} is offline and the message could not be stored"
            ));
            self.bounce(&stanza, err).await
        }
    }

    async fn deliver_iq(&self, to: Jid, stanza: Element) {
        let Some(ty) = IqType::parse(stanza.get_attr("type")) else {
            let err = StanzaError::bad_request("an IQ needs a type: get, set, result or error");
            return self.bounce(&stanza, err).await;
        };
        if let Ok(full) = to.clone().try_into_full() {
            match self.sm().resource(&full) {
                Some(session) => {
                    session.send(stanza);
                }
                None => {
                    let err = StanzaError::service_unavailable(format!("{to} is not online"));
                    self.bounce(&stanza, err).await
                }
            }
            return;
        }
        if matches!(ty, IqType::Result | IqType::Error) {
            return;
        }
        if !self.account_exists(&to.to_bare()).await {
            let err = StanzaError::service_unavailable(format!("there is no user {to}"));
            return self.bounce(&stanza, err).await;
        }
        let from = match stanza.get_attr("from").map(Jid::new) {
            Some(Ok(f)) => f,
            _ => return,
        };
        let reply = self
            .registry()
            .dispatch_iq(self, Address::Bare, from, to, ty, stanza)
            .await;
        self.route(reply).await
    }

    /// Whether a local account exists (online users exist without asking the store).
    pub async fn account_exists(&self, bare: &BareJid) -> bool {
        if self.sm().is_online(bare) {
            return true;
        }
        self.accounts().exists(bare).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "store failure checking an account");
            false
        })
    }
}
