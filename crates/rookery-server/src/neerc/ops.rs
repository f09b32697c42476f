//! The service's operations on a room's tasks, whoever asks: the wire queries
//! (`handlers.rs`), the ad-hoc commands (`commands.rs`), the operator's CLI (`admin.rs`) and
//! the scheduler (`schedule.rs`). Each runs under the room's writer lock, held across the
//! store write and the queueing of the broadcast, so changes are committed and announced
//! in one order and none overwrites another.
//!
//! Callers check who may do what; these check what may be done (types, the status state
//! machine, existence) and log `actor` in the audit log.

use rookery_storage::{StoredTask, StoredTaskStatus, TaskSchedule, now_us};

use super::tasks::{self, REMOVE, STATUSES, TYPES};
use super::{NeercService, RoomTasks};
use crate::error::{Condition, StanzaError};
use crate::server::Server;

/// A task to create or replace.
#[derive(Clone, Debug, Default)]
pub struct TaskDraft {
    /// `None` (or an id not in use) creates a task; an existing id replaces it.
    pub id: Option<String>,
    pub title: String,
    /// One of [`TYPES`] (any string in lax mode).
    pub kind: String,
    /// The assignees, with the statuses to give them (`none` for a new assignment).
    pub statuses: Vec<StoredTaskStatus>,
    /// Set for a task that goes live later.
    pub schedule: Option<TaskSchedule>,
}

impl TaskDraft {
    /// A new task of `kind` for `assignees`, each with status `none`.
    pub fn new(kind: &str, title: &str, assignees: &[String]) -> TaskDraft {
        TaskDraft {
            id: None,
            title: title.to_owned(),
            kind: kind.to_owned(),
            statuses: assignees
                .iter()
                .map(|a| StoredTaskStatus {
                    assignee: a.clone(),
                    status: "none".to_owned(),
                    value: String::new(),
                })
                .collect(),
            schedule: None,
        }
    }
}

pub(super) fn now_ms() -> i64 {
    now_us() / 1000
}

fn assignees(t: &StoredTask) -> String {
    t.statuses
        .iter()
        .map(|s| s.assignee.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn no_task(id: &str) -> StanzaError {
    StanzaError::item_not_found(format!("there is no task {id} in this room"))
}

impl NeercService {
    /// Create or replace a task. A live task is announced to the room; a scheduled one is
    /// not, until it goes live. Replacing a scheduled task without a schedule makes it
    /// live now.
    pub async fn put_task(
        &self,
        server: &Server,
        room: &str,
        actor: &str,
        draft: TaskDraft,
    ) -> Result<StoredTask, StanzaError> {
        if draft.title.trim().is_empty() {
            return Err(StanzaError::bad_request("a task needs a title"));
        }
        if draft.kind.is_empty() || draft.kind == REMOVE {
            return Err(StanzaError::bad_request(format!(
                "a task needs a type: one of {}",
                TYPES.join(", ")
            )));
        }
        if !self.lax && !TYPES.contains(&draft.kind.as_str()) {
            return Err(StanzaError::bad_request(format!(
                "unknown task type {:?}: use one of {}",
                draft.kind,
                TYPES.join(", ")
            )));
        }
        let task = {
            let lock = self.room_tasks(room);
            let mut rt = lock.lock().await;
            self.load(server, room, &mut rt).await?;
            self.put_locked(server, room, &mut rt, actor, draft).await?
        };
        if task.schedule.is_some() {
            // Its time may have come already.
            self.fire_due(server).await;
        }
        Ok(task)
    }

    /// [`put_task`](Self::put_task) under the room's lock, once the draft is checked.
    async fn put_locked(
        &self,
        server: &Server,
        room: &str,
        rt: &mut RoomTasks,
        actor: &str,
        draft: TaskDraft,
    ) -> Result<StoredTask, StanzaError> {
        let store = &server.stores().tasks;
        let old = draft.id.as_ref().and_then(|id| rt.tasks.get(id)).cloned();
        let (id, created_ms, action) = match (&draft.id, &old) {
            (Some(id), Some(old)) if old.schedule.is_some() && draft.schedule.is_none() => {
                (id.clone(), now_ms(), "activate")
            }
            (Some(id), Some(old)) => (id.clone(), old.created_ms, "replace"),
            (Some(id), None) => (id.clone(), now_ms(), "create"),
            (None, _) => (
                store.new_task_id(&self.domain, room).await?,
                now_ms(),
                "create",
            ),
        };
        let task = StoredTask {
            id,
            title: draft.title,
            kind: draft.kind,
            created_ms,
            statuses: draft.statuses,
            schedule: draft.schedule,
        };
        let mut detail = format!(
            "{} '{}' assigned to [{}]",
            task.kind,
            task.title,
            assignees(&task)
        );
        if let Some(s) = &task.schedule {
            detail.push_str(&format!(
                ", scheduled {} {} ms{}",
                s.base,
                s.at_ms,
                if s.confirm { ", to confirm" } else { "" }
            ));
        }
        store
            .put_task(&self.domain, room, &task, actor, action, &detail)
            .await?;
        rt.changed(&task.id);
        rt.tasks.insert(task.id.clone(), task.clone());
        if task.schedule.is_none() {
            self.broadcast(server, room, &task, None).await;
        } else if old.is_some_and(|o| o.schedule.is_none()) {
            // A live task was put back on the schedule: it is gone from the board.
            self.broadcast(server, room, &task, Some(REMOVE)).await;
        }
        Ok(task)
    }

    /// Remove a task; the room hears of it if it was live.
    pub async fn remove_task(
        &self,
        server: &Server,
        room: &str,
        actor: &str,
        id: &str,
    ) -> Result<StoredTask, StanzaError> {
        let lock = self.room_tasks(room);
        let mut rt = lock.lock().await;
        self.load(server, room, &mut rt).await?;
        let Some(old) = rt.tasks.get(id).cloned() else {
            return Err(no_task(id));
        };
        if !server
            .stores()
            .tasks
            .delete_task(&self.domain, room, id, actor)
            .await?
        {
            return Err(no_task(id));
        }
        rt.tasks.remove(id);
        rt.changed(id);
        if old.schedule.is_none() {
            self.broadcast(server, room, &old, Some(REMOVE)).await;
        }
        Ok(old)
    }

    /// Set `assignee`'s status on a live task, following the state machine (unless the
    /// service is lax).
    #[allow(clippy::too_many_arguments)]
    pub async fn set_status(
        &self,
        server: &Server,
        room: &str,
        actor: &str,
        assignee: &str,
        id: &str,
        new: &str,
        value: &str,
    ) -> Result<StoredTask, StanzaError> {
        tasks::check_value(value)?;
        let lock = self.room_tasks(room);
        let mut rt = lock.lock().await;
        self.load(server, room, &mut rt).await?;
        let Some(task) = rt.tasks.get(id) else {
            return Err(no_task(id));
        };
        if task.schedule.is_some() {
            return Err(StanzaError::new(
                Condition::NotAcceptable,
                format!("task {id} is scheduled and not live yet"),
            ));
        }
        let Some(pos) = task.statuses.iter().position(|s| s.assignee == assignee) else {
            return Err(StanzaError::forbidden(format!(
                "task {id} is not assigned to {assignee}; only its assignees set their status"
            )));
        };
        let current = task.statuses[pos].status.clone();
        if !self.lax {
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
            assignee: assignee.to_owned(),
            status: new.to_owned(),
            value: value.to_owned(),
        };
        let detail = if value.is_empty() {
            format!("{assignee}: {current} -> {new}")
        } else {
            format!("{assignee}: {current} -> {new} ({value})")
        };
        if !server
            .stores()
            .tasks
            .set_task_status(&self.domain, room, id, &status, actor, &detail)
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
        rt.changed(id);
        self.broadcast(server, room, &task, None).await;
        Ok(task)
    }

    /// Make a scheduled task live now (a power user's confirmation, or its time came).
    pub async fn activate(
        &self,
        server: &Server,
        room: &str,
        actor: &str,
        id: &str,
    ) -> Result<StoredTask, StanzaError> {
        let lock = self.room_tasks(room);
        let mut rt = lock.lock().await;
        self.load(server, room, &mut rt).await?;
        let task = rt.tasks.get(id).cloned().ok_or_else(|| no_task(id))?;
        if task.schedule.is_none() {
            return Err(StanzaError::new(
                Condition::NotAcceptable,
                format!("task {id} is live already"),
            ));
        }
        let draft = TaskDraft {
            id: Some(task.id),
            title: task.title,
            kind: task.kind,
            statuses: task.statuses,
            schedule: None,
        };
        self.put_locked(server, room, &mut rt, actor, draft).await
    }

    /// Add `more` assignees (status `none`) to a task, keeping everyone else's status;
    /// returns the names that were not assigned yet. Under the room's lock, so a status
    /// change made meanwhile is not overwritten.
    pub async fn assign(
        &self,
        server: &Server,
        room: &str,
        actor: &str,
        id: &str,
        more: Vec<String>,
    ) -> Result<Vec<String>, StanzaError> {
        let lock = self.room_tasks(room);
        let mut rt = lock.lock().await;
        self.load(server, room, &mut rt).await?;
        let task = rt.tasks.get(id).cloned().ok_or_else(|| no_task(id))?;
        let mut draft = TaskDraft {
            id: Some(task.id),
            title: task.title,
            kind: task.kind,
            statuses: task.statuses,
            schedule: task.schedule,
        };
        let mut added = Vec::new();
        for name in more {
            if !draft.statuses.iter().any(|st| st.assignee == name) {
                draft.statuses.push(StoredTaskStatus {
                    assignee: name.clone(),
                    status: "none".to_owned(),
                    value: String::new(),
                });
                added.push(name);
            }
        }
        if !added.is_empty() {
            self.put_locked(server, room, &mut rt, actor, draft).await?;
        }
        Ok(added)
    }
}
