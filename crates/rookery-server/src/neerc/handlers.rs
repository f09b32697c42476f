//! The queries of the contest service (A.3–A.7, and `#clock`), once the room and the
//! sender's affiliation are checked; changes go through the operations of `ops.rs`.

use minidom::Element;
use rookery_storage::StoredTask;

use super::Clock;
use super::ops::TaskDraft;
use super::tasks::{self, REMOVE, STATUSES};
use super::users::Requester;
use super::{NS_TASK, NS_TASKS, NeercService, RoomTasks};
use crate::error::{Condition, StanzaError};
use crate::server::Server;
use crate::xml::{ElementExt, el, escape};
use std::collections::BTreeMap;

/// Who asks, about which room.
pub struct Ctx<'a> {
    pub server: &'a Server,
    pub room: &'a str,
    pub requester: &'a Requester,
}

/// The request's element with its name, namespace and attributes, without children: the
/// start of an answer that lists things.
fn shell(request: &Element) -> Element {
    let mut e = el(request.name(), &request.ns());
    for (k, v) in request.attr_pairs() {
        e.put_attr(&k, &v);
    }
    e
}

/// `#users`: the room's users with their group and power.
pub async fn users(
    ctx: &Ctx<'_>,
    svc: &NeercService,
    request: &Element,
) -> Result<Element, StanzaError> {
    let list = svc.muc.users(ctx.server, ctx.room).await.ok_or_else(|| {
        StanzaError::service_unavailable(format!("there is no chat room {}", ctx.room))
    })?;
    let ns = request.ns();
    let mut out = shell(request);
    for u in list {
        out.append_child(
            el("user", &ns)
                .with_attr("name", &u.name)
                .with_attr("group", &u.group)
                .with_attr("power", if u.power { "yes" } else { "no" }),
        );
    }
    Ok(out)
}

/// `#tasks`: every task of the room, by creation time (then id), as the serialised
/// `<query/>` of the answer. Each task is serialised once and kept until it changes, so
/// a large board costs a copy, not a tree of 100 000 elements.
pub async fn task_list(
    ctx: &Ctx<'_>,
    svc: &NeercService,
    request: &Element,
) -> Result<String, StanzaError> {
    let lock = svc.room_tasks(ctx.room);
    let mut rt = lock.lock().await;
    svc.load(ctx.server, ctx.room, &mut rt).await?;
    // Scheduled tasks would look live to the original client: only on request, and only
    // for the jury.
    let scheduled = ctx.requester.power && request.get_attr("scheduled") == Some("include");
    let ns = request.ns();
    let mut out = String::from("<query xmlns='");
    out.push_str(&escape(&ns));
    out.push('\'');
    for (k, v) in request.attr_pairs() {
        if k != "xmlns" {
            out.push_str(&format!(" {k}='{}'", escape(&v)));
        }
    }
    let RoomTasks { tasks, wire, .. } = &mut *rt;
    let listed: Vec<&StoredTask> = sorted(tasks)
        .into_iter()
        .filter(|t| t.schedule.is_none() || scheduled)
        .collect();
    if listed.is_empty() {
        out.push_str("/>");
        return Ok(out);
    }
    out.push('>');
    for t in listed {
        let text = wire.entry(t.id.clone()).or_insert_with(|| {
            let bytes = rookery_xml::serialize(&tasks::task_element(t, &ns, None), &ns);
            String::from_utf8(bytes)
                .expect("serialised XML is UTF-8")
                .into()
        });
        out.push_str(text);
    }
    out.push_str("</query>");
    Ok(out)
}

/// `#task`: create, replace or remove a task (power users only). Creating or replacing
/// answers with the stored task; removing echoes the request.
pub async fn task(
    ctx: &Ctx<'_>,
    svc: &NeercService,
    request: &Element,
) -> Result<Element, StanzaError> {
    if !ctx.requester.power {
        return Err(StanzaError::forbidden(
            "only the jury (the room's owners and admins) may create, change or remove tasks",
        ));
    }
    let req = tasks::parse_task(request, svc.lax)?;
    let actor = ctx.requester.jid.as_str();
    if req.kind.as_deref() == Some(REMOVE) {
        let Some(id) = req.id else {
            return Err(StanzaError::bad_request(
                "say which task to remove: <task id='…' type='remove'/>",
            ));
        };
        svc.remove_task(ctx.server, ctx.room, actor, &id).await?;
        return Ok(request.clone());
    }
    let draft = TaskDraft {
        id: req.id,
        title: req.title.unwrap_or_default(),
        kind: req.kind.unwrap_or_default(),
        statuses: req.statuses,
        schedule: req.schedule,
    };
    let task = svc.put_task(ctx.server, ctx.room, actor, draft).await?;
    Ok(tasks::task_element(&task, NS_TASK, None))
}

/// `#taskstatus`: an assignee changes their own status; echoes the request.
pub async fn task_status(
    ctx: &Ctx<'_>,
    svc: &NeercService,
    request: &Element,
) -> Result<Element, StanzaError> {
    let Some(id) = request.get_attr("id").filter(|i| !i.is_empty()) else {
        return Err(StanzaError::bad_request(
            "say which task: <taskstatus id='…' type='…'/>",
        ));
    };
    let Some(new) = request.get_attr("type").filter(|t| !t.is_empty()) else {
        return Err(StanzaError::bad_request(format!(
            "say which status: type is one of {}",
            STATUSES.join(", ")
        )));
    };
    let value = request.get_attr("value").unwrap_or("");
    let actor = ctx.requester.jid.as_str();
    svc.set_status(
        ctx.server,
        ctx.room,
        actor,
        &ctx.requester.name,
        id,
        new,
        value,
    )
    .await?;
    Ok(request.clone())
}

/// `#clock`: the contest clock. A set carrying a `<clock time total status/>` sets it,
/// for the jury when no clock file is configured.
pub async fn clock(
    ctx: &Ctx<'_>,
    svc: &NeercService,
    set: bool,
    request: &Element,
) -> Result<Element, StanzaError> {
    let ns = request.ns();
    if set && let Some(new) = request.get_child("clock", ns.as_str()) {
        if !ctx.requester.power {
            return Err(StanzaError::forbidden(
                "only the jury sets the contest clock",
            ));
        }
        if !svc.clock_by_jury(ctx.server) {
            return Err(StanzaError::new(
                Condition::NotAllowed,
                "the clock follows the contest system's clock file",
            ));
        }
        let clock = Clock::from_element(new).map_err(StanzaError::bad_request)?;
        svc.clock_read(ctx.server, clock).await;
    }
    let mut out = shell(request);
    out.append_child(svc.clock().element(&ns));
    Ok(out)
}

/// The tasks in wire order: by creation time, then id.
fn sorted(tasks: &BTreeMap<String, StoredTask>) -> Vec<&StoredTask> {
    let mut v: Vec<&StoredTask> = tasks.values().collect();
    v.sort_by(|a, b| {
        a.created_ms
            .cmp(&b.created_ms)
            .then_with(|| tasks::natural_cmp(&a.id, &b.id))
    });
    v
}

impl RoomTasks {
    /// The tasks in wire order: by creation time, then id.
    pub fn sorted(&self) -> Vec<&StoredTask> {
        sorted(&self.tasks)
    }
}

/// The broadcast of one change (A.8), to each occupant session.
pub fn change_message(from: &str, task: &StoredTask, kind: Option<&str>) -> Element {
    el("message", crate::ns::CLIENT)
        .with_attr("type", "headline")
        .with_attr("from", from)
        .with_child(
            el("body", crate::ns::CLIENT)
                .with_text(&format!("Task '{}' ({}) changed", task.title, task.id)),
        )
        .with_child(el("x", NS_TASKS).with_child(tasks::task_element(task, NS_TASKS, kind)))
}
