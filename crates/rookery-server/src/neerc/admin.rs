//! The operator's commands on a room's contest tasks (`rookery neerc …` through the admin
//! socket, [`crate::admin`]). They go through the service's operations (`ops.rs`), so the
//! room hears of every change exactly as when the jury makes it over XMPP, and the audit
//! log names the actor `<host>/admin-socket`.
//!
//! Assignees are named as the original client names them: a user's name (the JID's local
//! part) or a group's, matched case-insensitively. A group is any shared group the room
//! gives an affiliation to (by its id or display name), or the group a user is listed
//! under in `#users` (which includes `Admins` and `Users`); it stands for its members
//! among the room's users. A user's name wins over a group's of the same spelling.

use std::collections::HashMap;

use rookery_storage::{StoredTask, TaskSchedule};
use serde::{Deserialize, Serialize};

use super::lines::{self, LineError};
use super::ops::TaskDraft;
use super::tasks::natural_cmp;
use super::{NeercService, users};
use crate::error::StanzaError;
use crate::modules::groups;
use crate::server::Server;

/// A `rookery neerc …` operation on one room.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum NeercOp {
    /// The board. Items: `id<TAB>type<TAB>title[<TAB>schedule]` for each task, followed by
    /// `<TAB>assignee<TAB>status[<TAB>value]` for each of its assignees.
    Tasks,
    /// Create a task (or replace the task `id`, statuses reset to `none`).
    Add {
        kind: String,
        title: String,
        /// User or group names.
        to: Vec<String>,
        #[serde(default)]
        id: Option<String>,
    },
    /// Remove a task.
    Remove { id: String },
    /// Set an assignee's status, following the state machine.
    Status {
        id: String,
        assignee: String,
        status: String,
        #[serde(default)]
        value: String,
    },
    /// Create the tasks of a file of task creation lines (`lines.rs`): all of them, or
    /// none if any line is bad (items then list every bad line).
    Import { text: String },
}

/// Who the audit log says acted.
fn actor(host: &str) -> String {
    format!("{host}/admin-socket")
}

/// The names tasks of a room may be assigned to, lower-cased.
struct Names {
    users: HashMap<String, String>,
    groups: HashMap<String, Vec<String>>,
}

impl Names {
    fn is_name(&self, name: &str) -> bool {
        let n = name.to_lowercase();
        self.users.contains_key(&n) || self.groups.contains_key(&n)
    }

    /// The assignees `names` stand for, in order, without repeats; or the unknown names.
    fn expand(&self, names: &[String]) -> Result<Vec<String>, Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut unknown = Vec::new();
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            let n = name.to_lowercase();
            let found: Vec<&String> = match (self.users.get(&n), self.groups.get(&n)) {
                (Some(u), _) => vec![u],
                (None, Some(members)) => members.iter().collect(),
                (None, None) => {
                    unknown.push(name.to_owned());
                    continue;
                }
            };
            for f in found {
                if !out.contains(f) {
                    out.push(f.clone());
                }
            }
        }
        if unknown.is_empty() {
            Ok(out)
        } else {
            Err(unknown)
        }
    }
}

/// The users and groups of the room, or why there are none.
async fn names(server: &Server, host: &str, room: &str) -> Result<Names, String> {
    let (Some(list), Some(view)) = (
        users::room_users(server, host, room).await,
        users::view(server, host, room).await,
    ) else {
        return Err(no_room(server, host, room));
    };
    let mut names = Names {
        users: HashMap::new(),
        groups: HashMap::new(),
    };
    let mut by_jid = HashMap::new();
    for u in &list {
        names.users.insert(u.name.to_lowercase(), u.name.clone());
        by_jid.insert(u.jid.clone(), u.name.clone());
        names
            .groups
            .entry(u.group.to_lowercase())
            .or_default()
            .push(u.name.clone());
    }
    for jid in view.affiliations.keys() {
        let Some((ghost, id)) = groups::parse_group_jid(server, jid) else {
            continue;
        };
        let Ok(Some(group)) = server.stores().groups.group(&ghost, &id).await else {
            continue;
        };
        let members: Vec<String> = groups::members(server, &ghost, &id)
            .await
            .iter()
            .filter_map(|m| by_jid.get(m).cloned())
            .collect();
        for key in [group.id.to_lowercase(), group.name.to_lowercase()] {
            let entry = names.groups.entry(key).or_default();
            for m in &members {
                if !entry.contains(m) {
                    entry.push(m.clone());
                }
            }
        }
    }
    for members in names.groups.values_mut() {
        members.sort_by(|a, b| natural_cmp(a, b));
    }
    Ok(names)
}

/// The users named by `text` (user or group names, separated by commas, spaces or new
/// lines), for the ad-hoc commands: a name that matches nothing is an error.
pub(super) async fn expand_assignees(
    server: &Server,
    host: &str,
    room: &str,
    text: &str,
) -> Result<Vec<String>, StanzaError> {
    let known = names(server, host, room)
        .await
        .map_err(StanzaError::service_unavailable)?;
    let listed: Vec<String> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    known.expand(&listed).map_err(|unknown| {
        StanzaError::item_not_found(format!(
            "no user or group of room {room} is called {}",
            unknown.join(", ")
        ))
    })
}

fn no_room(server: &Server, host: &str, room: &str) -> String {
    format!(
        "there is no chat room {room}@{}.{host}; create it with `rookery contest init`",
        server.config().muc.subdomain
    )
}

/// `start+30`, `end-60!`, or milliseconds when not whole minutes.
fn schedule_text(s: &TaskSchedule) -> String {
    let offset = if s.at_ms % 60_000 == 0 {
        let m = s.at_ms / 60_000;
        if m == 0 {
            String::new()
        } else {
            format!("{m:+}")
        }
    } else {
        format!("{:+}ms", s.at_ms)
    };
    format!("{}{offset}{}", s.base, if s.confirm { "" } else { "!" })
}

/// A task as lines of the board.
fn board_lines(t: &StoredTask, out: &mut Vec<String>) {
    let mut head = format!("{}\t{}\t{}", t.id, t.kind, t.title);
    if let Some(s) = &t.schedule {
        head.push('\t');
        head.push_str(&schedule_text(s));
    }
    out.push(head);
    for s in &t.statuses {
        let mut line = format!("\t{}\t{}", s.assignee, s.status);
        if !s.value.is_empty() {
            line.push('\t');
            line.push_str(&s.value);
        }
        out.push(line);
    }
}

/// Run one operation on `room` of `host`'s contest service. Returns (success, message for
/// the operator, listed items).
pub async fn admin(
    server: &Server,
    host: &str,
    room: &str,
    op: NeercOp,
) -> (bool, String, Vec<String>) {
    match run(server, host, room, op).await {
        Ok((message, items)) => (true, message, items),
        Err((message, items)) => (false, message, items),
    }
}

type Outcome = Result<(String, Vec<String>), (String, Vec<String>)>;

fn fail(message: impl Into<String>) -> (String, Vec<String>) {
    (message.into(), Vec::new())
}

async fn run(server: &Server, host: &str, room: &str, op: NeercOp) -> Outcome {
    if !server.serves_host(host) {
        return Err(fail(format!(
            "this server does not serve the domain {host}"
        )));
    }
    let route = super::service_for(server, host);
    let Some(svc) = route
        .as_ref()
        .and_then(|r| r.as_any())
        .and_then(|a| a.downcast_ref::<NeercService>())
    else {
        return Err(fail(format!(
            "the contest service of {host} is not running ([neerc] enabled = false?)"
        )));
    };
    let room = match jid::NodePart::new(room.trim()) {
        Ok(n) if !room.trim().is_empty() => n.as_str().to_owned(),
        _ => return Err(fail(format!("'{room}' is not a valid room name"))),
    };
    let room = room.as_str();
    if users::with_room(server, host, room, |_| ()).await.is_none() {
        return Err(fail(no_room(server, host, room)));
    }
    let actor = actor(host);
    let e = |e: crate::error::StanzaError| fail(e.text);
    match op {
        NeercOp::Tasks => {
            let tasks = svc.tasks(server, room).await.map_err(e)?;
            let mut items = Vec::new();
            for t in &tasks {
                board_lines(t, &mut items);
            }
            Ok((format!("{} tasks in {room}", tasks.len()), items))
        }
        NeercOp::Add {
            kind,
            title,
            to,
            id,
        } => {
            let kind = lines::wire_type(&kind).unwrap_or(&kind).to_owned();
            let names = names(server, host, room).await.map_err(fail)?;
            let assignees = names.expand(&to).map_err(|unknown| {
                fail(format!(
                    "not a user or group of the room {room}: {}",
                    unknown.join(", ")
                ))
            })?;
            if assignees.is_empty() && !to.is_empty() {
                return Err(fail(format!(
                    "{} stand for no one in the room {room}",
                    to.join(", ")
                )));
            }
            let mut draft = TaskDraft::new(&kind, &title, &assignees);
            draft.id = id.filter(|i| !i.trim().is_empty());
            let task = svc.put_task(server, room, &actor, draft).await.map_err(e)?;
            let mut items = Vec::new();
            board_lines(&task, &mut items);
            Ok((
                format!(
                    "task {} ({} '{}') for {}",
                    task.id,
                    task.kind,
                    task.title,
                    if assignees.is_empty() {
                        "no one".to_owned()
                    } else {
                        assignees.join(", ")
                    }
                ),
                items,
            ))
        }
        NeercOp::Remove { id } => {
            let old = svc
                .remove_task(server, room, &actor, &id)
                .await
                .map_err(e)?;
            Ok((
                format!("removed task {} ('{}')", old.id, old.title),
                Vec::new(),
            ))
        }
        NeercOp::Status {
            id,
            assignee,
            status,
            value,
        } => {
            // The name as tasks store it: the user's, whatever its case here.
            let names = names(server, host, room).await.map_err(fail)?;
            let name = names
                .users
                .get(&assignee.trim().to_lowercase())
                .cloned()
                .unwrap_or_else(|| assignee.trim().to_owned());
            let task = svc
                .set_status(server, room, &actor, &name, &id, &status, &value)
                .await
                .map_err(e)?;
            let mut items = Vec::new();
            board_lines(&task, &mut items);
            Ok((format!("{name} on task {id}: {status}"), items))
        }
        NeercOp::Import { text } => import(server, svc, host, room, &actor, &text).await,
    }
}

/// Every line checked (syntax, then assignees) before the first task is created.
async fn import(
    server: &Server,
    svc: &NeercService,
    host: &str,
    room: &str,
    actor: &str,
    text: &str,
) -> Outcome {
    let names = names(server, host, room).await.map_err(fail)?;
    let bad = |errors: Vec<LineError>| {
        (
            format!(
                "{} bad line{}; nothing was imported",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            ),
            errors.iter().map(|e| e.to_string()).collect(),
        )
    };
    let parsed = lines::parse_lines(text, |n| names.is_name(n)).map_err(bad)?;
    if parsed.is_empty() {
        return Err(fail("the file has no task lines; nothing was imported"));
    }
    let mut drafts = Vec::new();
    let mut errors = Vec::new();
    let mut unassigned = Vec::new();
    for (line, t) in parsed {
        let assignees = match names.expand(&t.assignees) {
            Ok(a) => a,
            Err(unknown) => {
                errors.push(LineError {
                    line,
                    message: format!("not a user or group of the room: {}", unknown.join(", ")),
                });
                continue;
            }
        };
        if assignees.is_empty() {
            if t.assignees.is_empty() {
                unassigned.push(line.to_string());
            } else {
                errors.push(LineError {
                    line,
                    message: format!("{} stand for no one in the room", t.assignees.join(",")),
                });
                continue;
            }
        }
        let mut draft = TaskDraft::new(t.kind, &t.title, &assignees);
        draft.schedule = t.schedule.map(|s| TaskSchedule {
            base: s.anchor.as_str().to_owned(),
            at_ms: s.offset_ms,
            confirm: s.confirm,
        });
        drafts.push((line, draft));
    }
    if !errors.is_empty() {
        return Err(bad(errors));
    }
    let total = drafts.len();
    let mut items = Vec::new();
    for (done, (line, draft)) in drafts.into_iter().enumerate() {
        match svc.put_task(server, room, actor, draft).await {
            Ok(task) => {
                let mut head = format!("line {line}: task {}", task.id);
                if let Some(s) = &task.schedule {
                    head.push_str(&format!(" (scheduled {})", schedule_text(s)));
                }
                items.push(head);
            }
            Err(err) => {
                items.push(format!("line {line}: {}", err.text));
                return Err((
                    format!(
                        "imported {done} of {total} tasks; line {line} failed, the rest were not imported"
                    ),
                    items,
                ));
            }
        }
    }
    let mut message = format!("imported {total} tasks into {room}");
    if !unassigned.is_empty() {
        message.push_str(&format!(
            "; with no assignees (lines {})",
            unassigned.join(", ")
        ));
    }
    Ok((message, items))
}
