//! Announcements, the message of the day and the welcome message.
//!
//! The MOTD is sent at once to every available resource of the host and then, once, to
//! every other user at their next login (initial presence) until it is deleted; the
//! welcome message goes to each new account (stored offline until they log in).

use super::{add, form, node};
use crate::adhoc::{
    CommandRequest, DataForm, Field, HandlerResult, Permission, Reply, Values, immediate,
    prefilled_form, simple_form,
};
use crate::error::StanzaError;
use crate::module::{Event, EventKind, Flow, ModuleContext};
use crate::server::Server;
use crate::xml::{ElementExt, el};
use minidom::Element;
use serde_json::json;

/// Where the host's documents live (user `""` of the host).
const HOST_DOC: &str = "";

pub(super) fn register(m: &mut ModuleContext<'_>) {
    add(
        m,
        &node("announce"),
        "Send announcement to all online users",
        Permission::Admin,
        simple_form(
            form(
                "Making an announcement",
                "Fill out this form to make an announcement to all active users of this service.",
            )
            .with_field(Field::text_single("subject", "Subject"))
            .with_field(Field::text_multi("announcement", "Announcement").required()),
            announce,
        ),
    );
    add(
        m,
        &node("set-motd"),
        "Set message of the day",
        Permission::Admin,
        simple_form(motd_form(None), set_motd),
    );
    add(
        m,
        &node("edit-motd"),
        "Edit message of the day",
        Permission::Admin,
        prefilled_form(
            |req: CommandRequest| async move {
                let current = motd(&req.server, &req.host()).await?.map(|(_, t)| t);
                Ok(motd_form(current))
            },
            set_motd,
        ),
    );
    add(
        m,
        &node("delete-motd"),
        "Delete message of the day",
        Permission::Admin,
        immediate(|req: CommandRequest| delete_doc(req, "motd", "message of the day")),
    );
    add(
        m,
        &node("set-welcome"),
        "Set welcome message",
        Permission::Admin,
        prefilled_form(
            |req: CommandRequest| async move {
                let current = req
                    .server
                    .stores()
                    .user_data
                    .get_user_data(&req.host(), HOST_DOC, "welcome", "")
                    .await?;
                let mut f = Field::text_multi("welcome", "Welcome message").required();
                if let Some(t) = current {
                    f = f.with_values(t.lines().map(str::to_owned));
                }
                Ok(form(
                    "Setting the welcome message",
                    "This message is sent to every new user.",
                )
                .with_field(f))
            },
            |req: CommandRequest, v: Values| async move {
                let text = v.text("welcome");
                req.server
                    .stores()
                    .user_data
                    .put_user_data(&req.host(), HOST_DOC, "welcome", "", &text)
                    .await?;
                Ok(Reply::completed().info("the welcome message was set"))
            },
        ),
    );
    add(
        m,
        &node("delete-welcome"),
        "Delete welcome message",
        Permission::Admin,
        immediate(|req: CommandRequest| delete_doc(req, "welcome", "welcome message")),
    );
    m.hook(EventKind::InitialPresence, 0, |server, event| async move {
        if let Event::InitialPresence { jid, .. } = event
            && let Err(e) = motd_at_login(&server, &jid).await
        {
            tracing::warn!(%jid, error = %e, "could not send the message of the day");
        }
        Flow::Continue
    });
    m.hook(EventKind::UserRegistered, 0, |server, event| async move {
        if let Event::UserRegistered { jid } = event {
            let host = jid.domain().to_string();
            match server
                .stores()
                .user_data
                .get_user_data(&host, HOST_DOC, "welcome", "")
                .await
            {
                Ok(Some(text)) => {
                    let msg = message(&host, &jid.to_string(), None, "Welcome", &text, None);
                    server.route(msg).await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(%jid, error = %e, "could not read the welcome message"),
            }
        }
        Flow::Continue
    });
}

/// Delete one of the host's documents, saying whether there was one.
async fn delete_doc(req: CommandRequest, kind: &str, what: &str) -> HandlerResult {
    let data = &req.server.stores().user_data;
    Ok(
        if data
            .delete_user_data(&req.host(), HOST_DOC, kind, "")
            .await?
        {
            Reply::completed().info(format!("the {what} was deleted"))
        } else {
            Reply::completed().warn(format!("there was no {what}"))
        },
    )
}

fn motd_form(current: Option<String>) -> DataForm {
    let mut f = Field::text_multi("motd", "Message of the day").required();
    if let Some(t) = current {
        f = f.with_values(t.lines().map(str::to_owned));
    }
    form(
        "Setting the message of the day",
        "It is sent to online users now and to the others at their next login.",
    )
    .with_field(f)
}

/// A message from the host.
fn message(
    host: &str,
    to: &str,
    kind: Option<&str>,
    subject: &str,
    body: &str,
    id: Option<&str>,
) -> Element {
    let mut m = el("message", crate::ns::CLIENT)
        .with_attr("from", host)
        .with_attr("to", to)
        .with_attr("id", id.unwrap_or(&crate::c2s::random_id()));
    if let Some(k) = kind {
        m.put_attr("type", k);
    }
    if !subject.is_empty() {
        m.append_child(el("subject", crate::ns::CLIENT).with_text(subject));
    }
    m.append_child(el("body", crate::ns::CLIENT).with_text(body));
    m
}

/// Send to every available resource of `host`; returns (resources, users) reached.
fn broadcast(
    server: &Server,
    host: &str,
    kind: Option<&str>,
    subject: &str,
    body: &str,
) -> (usize, Vec<jid::BareJid>) {
    let mut n = 0;
    let mut users = Vec::new();
    for s in server.sm().all() {
        if s.jid.domain().as_str() != host || !s.is_available() {
            continue;
        }
        if s.send(message(host, &s.jid.to_string(), kind, subject, body, None)) {
            n += 1;
            users.push(s.jid.to_bare());
        }
    }
    users.sort();
    users.dedup();
    (n, users)
}

/// Announce to every available resource of every host (restart and shutdown).
pub(super) fn announce_everywhere(server: &Server, text: &str) -> usize {
    server
        .config()
        .hosts
        .iter()
        .map(|h| broadcast(server, h, Some("headline"), "Announcement", text).0)
        .sum()
}

async fn announce(req: CommandRequest, v: Values) -> HandlerResult {
    let host = req.host();
    let text = v.text("announcement");
    let (n, _) = broadcast(
        &req.server,
        &host,
        Some("headline"),
        v.str("subject").unwrap_or(""),
        &text,
    );
    tracing::info!(by = %req.from, resources = n, "announcement sent");
    Ok(Reply::completed().info(format!("the announcement was sent to {n} online resources")))
}

async fn motd(server: &Server, host: &str) -> Result<Option<(i64, String)>, StanzaError> {
    let raw = server
        .stores()
        .user_data
        .get_user_data(host, HOST_DOC, "motd", "")
        .await?;
    Ok(raw.and_then(|r| {
        let v: serde_json::Value = serde_json::from_str(&r).ok()?;
        Some((v.get("id")?.as_i64()?, v.get("text")?.as_str()?.to_owned()))
    }))
}

async fn set_motd(req: CommandRequest, v: Values) -> HandlerResult {
    let host = req.host();
    let text = v.text("motd");
    let id = rookery_storage::now_us();
    let data = &req.server.stores().user_data;
    data.put_user_data(
        &host,
        HOST_DOC,
        "motd",
        "",
        &json!({ "id": id, "text": text }).to_string(),
    )
    .await?;
    let (n, users) = broadcast(&req.server, &host, None, "Message of the day", &text);
    for u in users {
        let name = u.node().map(|n| n.to_string()).unwrap_or_default();
        data.put_user_data(&host, &name, "motd-seen", "", &id.to_string())
            .await?;
    }
    Ok(Reply::completed().info(format!(
        "the message of the day was set and sent to {n} online resources; other users get it at their next login"
    )))
}

async fn motd_at_login(server: &Server, jid: &jid::FullJid) -> Result<(), StanzaError> {
    let host = jid.domain().to_string();
    let Some((id, text)) = motd(server, &host).await? else {
        return Ok(());
    };
    let name = jid.node().map(|n| n.to_string()).unwrap_or_default();
    let data = &server.stores().user_data;
    let seen = data.get_user_data(&host, &name, "motd-seen", "").await?;
    if seen.as_deref() == Some(id.to_string().as_str()) {
        return Ok(());
    }
    if let Some(s) = server.sm().resource(jid) {
        s.send(message(
            &host,
            &jid.to_string(),
            None,
            "Message of the day",
            &text,
            None,
        ));
        data.put_user_data(&host, &name, "motd-seen", "", &id.to_string())
            .await?;
    }
    Ok(())
}
