//! XEP-0012 Last Activity: the server's uptime, and when a user was last online (for the
//! user and their subscribers).

use crate::error::StanzaError;
use crate::im::roster;
use crate::module::{Address, Event, EventKind, Flow, IqRequest, IqResult, Module, ModuleContext};
use crate::ns;
use crate::server::Server;
use crate::xml::{ElementExt, IqType, el};
use rookery_storage::Subscription;

pub struct Last;

impl Module for Last {
    fn name(&self) -> &'static str {
        "last"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        m.feature(Address::Host, ns::LAST);
        m.iq(
            IqType::Get,
            Address::Host,
            "query",
            ns::LAST,
            |req| async move {
                let secs = req.server.uptime().as_secs().to_string();
                Ok(Some(el("query", ns::LAST).with_attr("seconds", &secs)))
            },
        );
        m.iq(IqType::Get, Address::Bare, "query", ns::LAST, user_last);
        m.hook(EventKind::SessionClosed, 0, record);
    }
}

async fn user_last(req: IqRequest) -> IqResult {
    let user = req.to_bare();
    let asker = req.from_bare();
    if asker != user {
        let sub = roster::subscription(&req.server, &user, &asker).await;
        if !matches!(sub, Subscription::From | Subscription::Both) {
            return Err(StanzaError::forbidden(
                "only the user's subscribers may ask when they were last online",
            ));
        }
    }
    if !req.server.sm().available(&user).is_empty() {
        return Ok(Some(el("query", ns::LAST).with_attr("seconds", "0")));
    }
    let (host, node) = (
        user.domain().as_str(),
        user.node().map_or("", |n| n.as_str()),
    );
    let last = match req.server.pending_last_activity(host, node) {
        Some(noted) => Some(noted),
        None => {
            req.server
                .stores()
                .last_activity
                .last_activity(host, node)
                .await?
        }
    };
    match last {
        Some((stamp, status)) => {
            let secs = ((rookery_storage::now_us() - stamp).max(0) / 1_000_000).to_string();
            Ok(Some(
                el("query", ns::LAST)
                    .with_attr("seconds", &secs)
                    .with_text(&status),
            ))
        }
        None => Err(StanzaError::service_unavailable(
            "this user has not been online since last activity was recorded",
        )),
    }
}

async fn record(server: Server, event: Event) -> Flow {
    let Event::SessionClosed { jid, status } = event else {
        return Flow::Continue;
    };
    let bare = jid.to_bare();
    if server.sm().resources(&bare).is_empty() {
        server.note_last_activity(&bare, &status);
    }
    Flow::Continue
}
