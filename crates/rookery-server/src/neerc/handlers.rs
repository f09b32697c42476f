//! The queries of the contest service (A.3–A.7, and `#clock`), once the room and the
//! sender's affiliation are checked. Every change to a room's tasks happens under that
//! room's writer lock, held across the store write and the queueing of the broadcasts,
//! so changes are committed and announced in one order and none overwrites another.

use minidom::Element;
use rookery_storage::{StoredTask, StoredTaskStatus, now_us};

use super::tasks::{self, REMOVE, STATUSES, TYPES};
use super::users::{self, Requester};
use super::{NS_TASK, NS_TASKS, NeercService, RoomTasks};
use crate::error::{Condition, StanzaError};
use crate::server::Server;
use crate::xml::{ElementExt, el};

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
    let list = users::room_users(ctx.server, &svc.host, ctx.room)
        .await
        .ok_or_else(|| {
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

/// `#tasks`: every task of the room, by creation time (then id).
pub async fn task_list(
    ctx: &Ctx<'_>,
    svc: &NeercService,
    request: &Element,
) -> Result<Element, StanzaError> {
    let lock = svc.room_tasks(ctx.room);
    let mut rt = lock.lock().await;
    svc.load(ctx.server, ctx.room, &mut rt).await?;
    let ns = request.ns();
    let mut out = shell(request);
    for t in rt.sorted() {
        out.append_child(tasks::task_element(t, &ns, None));
    }
    Ok(out)
}

fn now_ms() -> i64 {
    now_us() / 1000
}

fn assignees(t: &StoredTask) -> String {
    t.statuses
        .iter()
        .map(|s| s.assignee.as_str())
        .collect::<Vec<_>>()
        .join(", ")
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
    let store = &ctx.server.stores().tasks;
    let lock = svc.room_tasks(ctx.room);
    let mut rt = lock.lock().await;
    svc.load(ctx.server, ctx.room, &mut rt).await?;
    if req.kind.as_deref() == Some(REMOVE) {
        let Some(id) = req.id else {
            return Err(StanzaError::bad_request(
                "say which task to remove: <task id='…' type='remove'/>",
            ));
        };
        let Some(old) = rt.tasks.get(&id).cloned() else {
            return Err(StanzaError::item_not_found(format!(
                "there is no task {id} in this room"
            )));
        };
        if !store.delete_task(&svc.domain, ctx.room, &id, actor).await? {
            return Err(StanzaError::item_not_found(format!(
                "there is no task {id} in this room"
            )));
        }
        rt.tasks.remove(&id);
        svc.broadcast(ctx.server, ctx.room, &old, Some(REMOVE))
            .await;
        return Ok(request.clone());
    }
    let Some(title) = req.title.filter(|t| !t.trim().is_empty()) else {
        return Err(StanzaError::bad_request("a task needs a title"));
    };
    let Some(kind) = req.kind.filter(|k| !k.is_empty()) else {
        return Err(StanzaError::bad_request(format!(
            "a task needs a type: one of {}, or remove",
            TYPES.join(", ")
        )));
    };
    let (id, created_ms, action) = match req.id {
        None => (
            store.new_task_id(&svc.domain, ctx.room).await?,
            now_ms(),
            "create",
        ),
        Some(id) => match rt.tasks.get(&id) {
            Some(old) => {
                let created = old.created_ms;
                (id, created, "replace")
            }
            None => (id, now_ms(), "create"),
        },
    };
    let task = StoredTask {
        id,
        title,
        kind,
        created_ms,
        statuses: req.statuses,
    };
    let detail = format!(
        "{} '{}' assigned to [{}]",
        task.kind,
        task.title,
        assignees(&task)
    );
    store
        .put_task(&svc.domain, ctx.room, &task, actor, action, &detail)
        .await?;
    rt.tasks.insert(task.id.clone(), task.clone());
    svc.broadcast(ctx.server, ctx.room, &task, None).await;
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
    tasks::check_value(value)?;
    let lock = svc.room_tasks(ctx.room);
    let mut rt = lock.lock().await;
    svc.load(ctx.server, ctx.room, &mut rt).await?;
    let Some(task) = rt.tasks.get(id) else {
        return Err(StanzaError::item_not_found(format!(
            "there is no task {id} in this room"
        )));
    };
    let me = &ctx.requester.name;
    let Some(pos) = task.statuses.iter().position(|s| &s.assignee == me) else {
        return Err(StanzaError::forbidden(format!(
            "task {id} is not assigned to {me}; only its assignees set their status"
        )));
    };
    let current = task.statuses[pos].status.clone();
    if !svc.lax {
        if !STATUSES.contains(&new) {
            return Err(StanzaError::bad_request(format!(
                "unknown status {new:?}: use one of {}",
                STATUSES.join(", ")
            )));
        }
        if !tasks::transition_allowed(&task.kind, &current, new) {
            return Err(StanzaError::new(
                Condition::NotAcceptable,
                format!(
                    "a {} task cannot go from {current} to {new}",
                    if TYPES.contains(&task.kind.as_str()) {
                        task.kind.as_str()
                    } else {
                        "task of unknown type"
                    }
                ),
            ));
        }
    }
    let status = StoredTaskStatus {
        assignee: me.clone(),
        status: new.to_owned(),
        value: value.to_owned(),
    };
    let detail = if value.is_empty() {
        format!("{me}: {current} -> {new}")
    } else {
        format!("{me}: {current} -> {new} ({value})")
    };
    let actor = ctx.requester.jid.as_str();
    if !ctx
        .server
        .stores()
        .tasks
        .set_task_status(&svc.domain, ctx.room, id, &status, actor, &detail)
        .await?
    {
        return Err(StanzaError::internal(
            "the task changed under us; ask for the task list and try again",
        ));
    }
    let Some(task) = rt.tasks.get_mut(id) else {
        return Err(StanzaError::internal("the task vanished"));
    };
    task.statuses[pos] = status;
    let task = task.clone();
    svc.broadcast(ctx.server, ctx.room, &task, None).await;
    Ok(request.clone())
}

/// `#clock`: the contest clock.
pub fn clock(svc: &NeercService, request: &Element) -> Element {
    let mut out = shell(request);
    out.append_child(svc.clock().element(&request.ns()));
    out
}

impl RoomTasks {
    /// The tasks in wire order: by creation time, then id.
    pub fn sorted(&self) -> Vec<&StoredTask> {
        let mut v: Vec<&StoredTask> = self.tasks.values().collect();
        v.sort_by(|a, b| {
            a.created_ms
                .cmp(&b.created_ms)
                .then_with(|| tasks::natural_cmp(&a.id, &b.id))
        });
        v
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
