//! Ad-hoc commands (XEP-0050) on `room@neerc.<host>` (and the bare service JID for the
//! default room), so that a contest can be run from any client that executes commands
//! (Gajim, Psi, `rookery adhoc run`) without the custom client:
//!
//! | node | who | what |
//! |---|---|---|
//! | `neerc:board` | anyone in the room | the tasks and everyone's status (the jury) or mine |
//! | `neerc:status` | assignees | start, finish or fail one of my tasks |
//! | `neerc:answer` | assignees | answer a question |
//! | `neerc:clock` | anyone in the room | the contest clock |
//! | `neerc:create` | jury | create a task, now or on a schedule |
//! | `neerc:assign` | jury | add assignees to a task |
//! | `neerc:remove` | jury | remove a task |
//! | `neerc:activate` | jury | put a scheduled task live now |
//! | `neerc:set-clock` | jury | set the clock (when no clock file is configured) |
//!
//! Commands are offered to every local user; each checks the room's affiliations when it
//! runs (forbidden for those not in the room, or not in the jury), as the queries do.

use std::sync::Arc;

use rookery_forms::{DataForm, Field, Values};
use rookery_storage::{StoredTask, TaskSchedule};

use super::NeercService;
use super::clock::{Clock, ClockStatus};
use super::ops::TaskDraft;
use super::tasks::{self, Action};
use super::users::Requester;
use crate::adhoc::{CommandDef, CommandRequest, On, Permission, Reply};
use crate::adhoc::{immediate, prefilled_form, simple_form};
use crate::error::StanzaError;
use crate::server::Server;

/// The room a command was sent to and who runs it. The admin socket runs as the jury.
async fn who(svc: &NeercService, req: &CommandRequest) -> Result<(String, Requester), StanzaError> {
    let room = match req.to.node() {
        Some(n) => n.as_str().to_owned(),
        None => svc.default_room.clone(),
    };
    let jid = req.from.to_bare();
    if req.privileged {
        return Ok((
            room,
            Requester {
                name: jid.node().map(|n| n.to_string()).unwrap_or_default(),
                jid,
                affiliation: crate::muc::Affiliation::Owner,
                power: true,
            },
        ));
    }
    let r = svc.muc.requester(&req.server, &room, &jid).await?;
    Ok((room, r))
}

/// [`who`], for the jury only.
async fn jury(
    svc: &NeercService,
    req: &CommandRequest,
) -> Result<(String, Requester), StanzaError> {
    let (room, r) = who(svc, req).await?;
    if !r.power {
        return Err(StanzaError::forbidden(
            "only the jury (the room's owners and admins) may do this",
        ));
    }
    Ok((room, r))
}

fn type_options() -> Vec<(&'static str, &'static str)> {
    vec![
        ("To do: start, then done", "todo"),
        ("To do, may fail with a reason", "todofail"),
        ("Confirm", "confirm"),
        ("OK, or fail with a reason", "okfail"),
        ("Question", "question"),
    ]
}

fn label(t: &StoredTask) -> String {
    format!("{}: {}", t.id, t.title)
}

/// A list of tasks to pick one from.
fn task_field(var: &str, tasks: &[&StoredTask]) -> Field {
    let options: Vec<(String, String)> = tasks.iter().map(|t| (label(t), t.id.clone())).collect();
    let refs: Vec<(&str, &str)> = options
        .iter()
        .map(|(l, v)| (l.as_str(), v.as_str()))
        .collect();
    Field::list_single(var, "Task", &refs).required()
}

/// How a task's assignees stand, in a few words (`2 success, 1 running, 497 none`).
fn summary(t: &StoredTask) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for s in &t.statuses {
        match counts.iter_mut().find(|(k, _)| *k == s.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((&s.status, 1)),
        }
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn format_ms(ms: i64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

/// `H:MM:SS`, `H:MM` or minutes, as milliseconds.
fn parse_duration(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    let nums: Option<Vec<i64>> = parts.iter().map(|p| p.trim().parse::<i64>().ok()).collect();
    let nums = nums?;
    if nums.iter().any(|n| *n < 0) {
        return None;
    }
    let secs = match nums.as_slice() {
        [m] => m * 60,
        [h, m] => h * 3600 + m * 60,
        [h, m, s] => h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some(secs * 1000)
}

/// The schedule asked for in the create form.
fn schedule_of(values: &Values) -> Result<Option<TaskSchedule>, StanzaError> {
    let when = values.text("when");
    let confirm = values.bool("confirm");
    let offset = || -> Result<i64, StanzaError> {
        let text = values.text("offset");
        let text = text.trim().trim_start_matches('+');
        text.parse::<i64>().map(|m| m * 60_000).map_err(|_| {
            StanzaError::bad_request(format!(
                "the offset is a whole number of minutes, like 10 or -60, not {text:?}"
            ))
        })
    };
    Ok(match when.as_str() {
        "" | "now" => None,
        "start" | "end" => Some(TaskSchedule {
            base: when.clone(),
            at_ms: offset()?,
            confirm,
        }),
        "absolute" => {
            let at = values.text("at");
            let us = crate::util::parse_datetime(at.trim()).ok_or_else(|| {
                StanzaError::bad_request(format!(
                    "the time is like 2026-12-01T10:30:00Z, not {at:?}"
                ))
            })?;
            Some(TaskSchedule {
                base: when.clone(),
                at_ms: us / 1000,
                confirm,
            })
        }
        other => {
            return Err(StanzaError::bad_request(format!(
                "unknown schedule {other:?}"
            )));
        }
    })
}

/// Register the service's commands.
pub(super) fn register(server: &Server, svc: &Arc<NeercService>) {
    let on = || On::Service(svc.domain.clone());
    let reg = |def: CommandDef| server.registry().add_command("neerc", def);

    let s = svc.clone();
    reg(CommandDef::new(
        on(),
        "neerc:board",
        "Show the task board",
        Permission::LocalUser,
        immediate(move |req| {
            let s = s.clone();
            async move {
                let (room, me) = who(&s, &req).await?;
                let list = s.tasks(&req.server, &room).await?;
                let mut form = DataForm::result(&format!("Tasks of {room}"));
                if me.power {
                    form = form.with_reported(vec![
                        Field::text_single("id", "Id"),
                        Field::text_single("type", "Type"),
                        Field::text_single("title", "Title"),
                        Field::text_single("statuses", "Statuses"),
                        Field::text_single("schedule", "Scheduled"),
                    ]);
                    for t in &list {
                        let schedule = t
                            .schedule
                            .as_ref()
                            .map(|s| format!("{} {:+} min", s.base, s.at_ms / 60_000))
                            .unwrap_or_default();
                        form = form.with_item(&[
                            ("id", &t.id),
                            ("type", &t.kind),
                            ("title", &t.title),
                            ("statuses", &summary(t)),
                            ("schedule", &schedule),
                        ]);
                    }
                } else {
                    form = form.with_reported(vec![
                        Field::text_single("id", "Id"),
                        Field::text_single("type", "Type"),
                        Field::text_single("title", "Title"),
                        Field::text_single("status", "My status"),
                        Field::text_single("value", "Reason or answer"),
                    ]);
                    for t in list.iter().filter(|t| t.schedule.is_none()) {
                        let Some(mine) = t.statuses.iter().find(|s| s.assignee == me.name) else {
                            continue;
                        };
                        form = form.with_item(&[
                            ("id", &t.id),
                            ("type", &t.kind),
                            ("title", &t.title),
                            ("status", &mine.status),
                            ("value", &mine.value),
                        ]);
                    }
                }
                Ok(Reply::result(form))
            }
        }),
    ));

    let s = svc.clone();
    reg(CommandDef::new(
        on(),
        "neerc:clock",
        "Show the contest clock",
        Permission::LocalUser,
        immediate(move |req| {
            let s = s.clone();
            async move {
                who(&s, &req).await?;
                let c = s.clock();
                let status = match c.status {
                    ClockStatus::Unknown => "no clock",
                    ClockStatus::Before => "before the contest",
                    ClockStatus::Running => "running",
                    ClockStatus::Paused => "paused",
                    ClockStatus::Over => "over",
                };
                let form = DataForm::result("Contest clock")
                    .with_field(Field::text_single("status", "Status").with_value(status))
                    .with_field(
                        Field::text_single("time", "Elapsed").with_value(format_ms(c.time_ms)),
                    )
                    .with_field(
                        Field::text_single("total", "Length").with_value(format_ms(c.total_ms)),
                    )
                    .with_field(
                        Field::text_single("left", "Left")
                            .with_value(format_ms((c.total_ms - c.time_ms).max(0))),
                    );
                Ok(Reply::result(form))
            }
        }),
    ));

    let s = svc.clone();
    reg(CommandDef::new(
        on(),
        "neerc:create",
        "Create a task",
        Permission::LocalUser,
        prefilled_form(
            {
                let s = s.clone();
                move |req| {
                    let s = s.clone();
                    async move {
                        jury(&s, &req).await?;
                        Ok(DataForm::form("Create a task")
                            .with_instructions(
                                "Assignees are user or group names (e.g. hall1, hall2 or Halls), \
                                 separated by commas or spaces.",
                            )
                            .with_field(Field::text_single("title", "Title").required())
                            .with_field(
                                Field::list_single("type", "Type", &type_options())
                                    .with_value("todo")
                                    .required(),
                            )
                            .with_field(Field::text_multi("assignees", "Assignees").required())
                            .with_field(
                                Field::list_single(
                                    "when",
                                    "When",
                                    &[
                                        ("Now", "now"),
                                        ("Minutes after the start", "start"),
                                        ("Minutes from the end (negative: before it)", "end"),
                                        ("At a time (UTC)", "absolute"),
                                    ],
                                )
                                .with_value("now"),
                            )
                            .with_field(Field::text_single("offset", "Minutes (for start or end)"))
                            .with_field(Field::text_single(
                                "at",
                                "Time, like 2026-12-01T10:30:00Z (for a time)",
                            ))
                            .with_field(
                                Field::boolean("confirm", "Ask the jury before it goes live")
                                    .with_value("0"),
                            ))
                    }
                }
            },
            move |req, values| {
                let s = s.clone();
                async move {
                    let (room, me) = jury(&s, &req).await?;
                    let names = values.list("assignees").join(",");
                    let assignees =
                        super::admin::expand_assignees(&req.server, &s.host, &room, &names).await?;
                    let mut draft =
                        TaskDraft::new(&values.text("type"), &values.text("title"), &assignees);
                    draft.schedule = schedule_of(&values)?;
                    let t = s
                        .put_task(&req.server, &room, me.jid.as_str(), draft)
                        .await?;
                    let when = if t.schedule.is_some() {
                        " (scheduled)"
                    } else {
                        ""
                    };
                    Ok(Reply::completed().info(format!(
                        "Task {} '{}' created for {}{when}.",
                        t.id,
                        t.title,
                        assignees.join(", ")
                    )))
                }
            },
        ),
    ));

    let s = svc.clone();
    reg(CommandDef::new(
        on(),
        "neerc:assign",
        "Assign a task",
        Permission::LocalUser,
        prefilled_form(
            {
                let s = s.clone();
                move |req| {
                    let s = s.clone();
                    async move {
                        let (room, _) = jury(&s, &req).await?;
                        let list = s.tasks(&req.server, &room).await?;
                        let refs: Vec<&StoredTask> = list.iter().collect();
                        Ok(DataForm::form("Assign a task")
                            .with_field(task_field("task", &refs))
                            .with_field(
                                Field::text_multi("assignees", "More assignees (users or groups)")
                                    .required(),
                            ))
                    }
                }
            },
            move |req, values| {
                let s = s.clone();
                async move {
                    let (room, me) = jury(&s, &req).await?;
                    let id = values.text("task");
                    let names = values.list("assignees").join(",");
                    let more =
                        super::admin::expand_assignees(&req.server, &s.host, &room, &names).await?;
                    let added = s
                        .assign(&req.server, &room, me.jid.as_str(), &id, more)
                        .await?;
                    Ok(Reply::completed().info(if added.is_empty() {
                        format!("Task {id}: everyone named was assigned already.")
                    } else {
                        format!("Task {id} is now also assigned to {}.", added.join(", "))
                    }))
                }
            },
        ),
    ));

    let s = svc.clone();
    reg(CommandDef::new(
        on(),
        "neerc:remove",
        "Remove a task",
        Permission::LocalUser,
        prefilled_form(
            {
                let s = s.clone();
                move |req| {
                    let s = s.clone();
                    async move {
                        let (room, _) = jury(&s, &req).await?;
                        let list = s.tasks(&req.server, &room).await?;
                        let refs: Vec<&StoredTask> = list.iter().collect();
                        Ok(DataForm::form("Remove a task").with_field(task_field("task", &refs)))
                    }
                }
            },
            move |req, values| {
                let s = s.clone();
                async move {
                    let (room, me) = jury(&s, &req).await?;
                    let t = s
                        .remove_task(&req.server, &room, me.jid.as_str(), &values.text("task"))
                        .await?;
                    Ok(Reply::completed().info(format!("Task {} '{}' removed.", t.id, t.title)))
                }
            },
        ),
    ));

    let s = svc.clone();
    reg(CommandDef::new(
        on(),
        "neerc:activate",
        "Activate a scheduled task",
        Permission::LocalUser,
        prefilled_form(
            {
                let s = s.clone();
                move |req| {
                    let s = s.clone();
                    async move {
                        let (room, _) = jury(&s, &req).await?;
                        let list = s.tasks(&req.server, &room).await?;
                        let refs: Vec<&StoredTask> =
                            list.iter().filter(|t| t.schedule.is_some()).collect();
                        if refs.is_empty() {
                            return Err(StanzaError::item_not_found(
                                "there are no scheduled tasks in this room",
                            ));
                        }
                        Ok(DataForm::form("Activate a scheduled task")
                            .with_field(task_field("task", &refs)))
                    }
                }
            },
            move |req, values| {
                let s = s.clone();
                async move {
                    let (room, me) = jury(&s, &req).await?;
                    let t = s
                        .activate(&req.server, &room, me.jid.as_str(), &values.text("task"))
                        .await?;
                    Ok(Reply::completed().info(format!("Task {} '{}' is live.", t.id, t.title)))
                }
            },
        ),
    ));

    let s = svc.clone();
    reg(CommandDef::new(
        on(),
        "neerc:set-clock",
        "Set the contest clock",
        Permission::LocalUser,
        simple_form(
            DataForm::form("Set the contest clock")
                .with_field(
                    Field::list_single(
                        "status",
                        "Status",
                        &[
                            ("Before the contest", "BEFORE"),
                            ("Running", "RUNNING"),
                            ("Paused", "PAUSED"),
                            ("Over", "OVER"),
                        ],
                    )
                    .required(),
                )
                .with_field(
                    Field::text_single("time", "Elapsed (H:MM:SS or minutes)").with_value("0"),
                )
                .with_field(
                    Field::text_single("total", "Length (H:MM:SS or minutes)")
                        .with_value("5:00:00"),
                ),
            move |req, values| {
                let s = s.clone();
                async move {
                    jury(&s, &req).await?;
                    if !s.clock_by_jury(&req.server) {
                        return Err(StanzaError::not_allowed(
                            "the clock follows the contest system's clock file",
                        ));
                    }
                    let duration = |var: &str| {
                        let text = values.text(var);
                        parse_duration(&text).ok_or_else(|| {
                            StanzaError::bad_request(format!(
                                "{var} is H:MM:SS, H:MM or minutes, not {text:?}"
                            ))
                        })
                    };
                    let clock = Clock {
                        time_ms: duration("time")?,
                        total_ms: duration("total")?,
                        status: ClockStatus::from_name(&values.text("status")),
                    };
                    s.clock_read(&req.server, clock).await;
                    Ok(Reply::completed().info("The clock is set."))
                }
            },
        ),
    ));

    for (node, name, answer) in [
        ("neerc:status", "Set my task status", false),
        ("neerc:answer", "Answer a question", true),
    ] {
        let s = svc.clone();
        let layout_svc = svc.clone();
        reg(CommandDef::new(
            on(),
            node,
            name,
            Permission::LocalUser,
            prefilled_form(
                move |req| {
                    let s = layout_svc.clone();
                    async move {
                        let (room, me) = who(&s, &req).await?;
                        let list = s.tasks(&req.server, &room).await?;
                        let mine: Vec<&StoredTask> = list
                            .iter()
                            .filter(|t| {
                                t.schedule.is_none()
                                    && (t.kind == "question") == answer
                                    && t.statuses.iter().any(|st| st.assignee == me.name)
                            })
                            .collect();
                        if mine.is_empty() {
                            return Err(StanzaError::item_not_found(if answer {
                                "no question is assigned to you"
                            } else {
                                "no task is assigned to you"
                            }));
                        }
                        let form = DataForm::form(name).with_field(task_field("task", &mine));
                        Ok(if answer {
                            form.with_field(Field::text_multi("value", "Your answer").required())
                        } else {
                            form.with_field(
                                Field::list_single(
                                    "action",
                                    "What happened",
                                    &[("Started", "start"), ("Done", "done"), ("Failed", "fail")],
                                )
                                .required(),
                            )
                            .with_field(Field::text_single("value", "Reason (when failed)"))
                        })
                    }
                },
                move |req, values| {
                    let s = s.clone();
                    async move {
                        let (room, me) = who(&s, &req).await?;
                        let id = values.text("task");
                        let list = s.tasks(&req.server, &room).await?;
                        let t = list.iter().find(|t| t.id == id).ok_or_else(|| {
                            StanzaError::item_not_found(format!(
                                "there is no task {id} in this room"
                            ))
                        })?;
                        let current = t
                            .statuses
                            .iter()
                            .find(|st| st.assignee == me.name)
                            .map(|st| st.status.clone())
                            .unwrap_or_default();
                        let value = values.list("value").join("\n");
                        let action = if answer {
                            Action::Done
                        } else {
                            match values.text("action").as_str() {
                                "start" => Action::Start,
                                "fail" if !value.trim().is_empty() => Action::Fail,
                                // A failure without a reason is done, as in the client.
                                "fail" | "done" => Action::Done,
                                other => {
                                    return Err(StanzaError::bad_request(format!(
                                        "unknown action {other:?}"
                                    )));
                                }
                            }
                        };
                        let new = tasks::result_of(action, &t.kind, &current);
                        let value = if matches!(action, Action::Fail) || t.kind == "question" {
                            value
                        } else {
                            String::new()
                        };
                        let t = s
                            .set_status(
                                &req.server,
                                &room,
                                me.jid.as_str(),
                                &me.name,
                                &id,
                                new,
                                &value,
                            )
                            .await?;
                        Ok(Reply::completed()
                            .info(format!("Task {} '{}': you are at {new}.", t.id, t.title)))
                    }
                },
            ),
        ));
    }
}
