//! Tasks on the wire and their rules: the `<task/>` element (A.4, A.5), parsing a `#task`
//! request, and the status state machine the original client implements (A.9).

use minidom::Element;
use rookery_storage::{StoredTask, StoredTaskStatus, TaskSchedule};

use crate::error::{Condition, StanzaError};
use crate::xml::{ElementExt, el};

/// Task types the clients know.
pub const TYPES: &[&str] = &["todo", "todofail", "confirm", "okfail", "question"];
/// The pseudo-type of a removal request and notification.
pub const REMOVE: &str = "remove";
/// Statuses on the wire.
pub const STATUSES: &[&str] = &["none", "running", "success", "fail", "acknowledged"];

/// Longest task id, title, assignee name and status value accepted, in characters.
const MAX_ID: usize = 128;
const MAX_TITLE: usize = 4096;
const MAX_NAME: usize = 1023;
const MAX_VALUE: usize = 4096;
/// Most assignees on one task.
const MAX_ASSIGNEES: usize = 10_000;

/// `<task id title type timestamp><status for type [value]/>*</task>` in namespace `ns`.
/// `kind` replaces the stored type (`remove` for a removal notification, which carries no
/// statuses).
pub fn task_element(t: &StoredTask, ns: &str, kind: Option<&str>) -> Element {
    let mut e = el("task", ns)
        .with_attr("id", &t.id)
        .with_attr("title", &t.title)
        .with_attr("type", kind.unwrap_or(&t.kind))
        .with_attr("timestamp", &t.created_ms.to_string());
    if let Some(s) = &t.schedule {
        e.put_attr("schedule", &s.base);
        e.put_attr("schedule-time", &s.at_ms.to_string());
        e.put_attr("confirm", if s.confirm { "yes" } else { "no" });
    }
    if kind.is_none() {
        for s in &t.statuses {
            let mut st = el("status", ns)
                .with_attr("for", &s.assignee)
                .with_attr("type", &s.status);
            if !s.value.is_empty() {
                st.put_attr("value", &s.value);
            }
            e.append_child(st);
        }
    }
    e
}

/// A `#task` request as sent (nothing checked against the stored tasks yet).
#[derive(Debug)]
pub struct TaskRequest {
    pub id: Option<String>,
    pub title: Option<String>,
    pub kind: Option<String>,
    pub statuses: Vec<StoredTaskStatus>,
    pub schedule: Option<TaskSchedule>,
}

/// Schedule bases on the wire (A.10 proposal).
pub const SCHEDULE_BASES: &[&str] = &["start", "end", "absolute"];

/// `schedule`, `schedule-time` and `confirm` of a `<task/>`, if it is scheduled.
fn parse_schedule(task: &Element) -> Result<Option<TaskSchedule>, StanzaError> {
    let Some(base) = task.get_attr("schedule").filter(|b| !b.is_empty()) else {
        return Ok(None);
    };
    if !SCHEDULE_BASES.contains(&base) {
        return Err(StanzaError::bad_request(format!(
            "unknown schedule {base:?}: use start, end or absolute"
        )));
    }
    let Some(at_ms) = task
        .get_attr("schedule-time")
        .and_then(|t| t.trim().parse::<i64>().ok())
    else {
        return Err(StanzaError::bad_request(
            "a scheduled task needs schedule-time: milliseconds of contest time (start), \
             from the end (end), or since 1970 (absolute)",
        ));
    };
    let confirm = match task.get_attr("confirm").unwrap_or("no") {
        "yes" | "true" | "1" => true,
        "no" | "false" | "0" => false,
        other => {
            return Err(StanzaError::bad_request(format!(
                "confirm is yes or no, not {other:?}"
            )));
        }
    };
    Ok(Some(TaskSchedule {
        base: base.to_owned(),
        at_ms,
        confirm,
    }))
}

fn too_long(what: &str, max: usize) -> StanzaError {
    StanzaError::new(
        Condition::NotAcceptable,
        format!("the {what} is longer than {max} characters"),
    )
}

/// Parse a `<task/>`; `lax` accepts any type and status names, as the original did.
pub fn parse_task(task: &Element, lax: bool) -> Result<TaskRequest, StanzaError> {
    let id = task.get_attr("id").map(str::to_owned);
    if let Some(id) = &id {
        if id.is_empty() {
            return Err(StanzaError::bad_request("the task id must not be empty"));
        }
        if id.chars().count() > MAX_ID {
            return Err(too_long("task id", MAX_ID));
        }
    }
    let title = task.get_attr("title").map(str::to_owned);
    if title
        .as_ref()
        .is_some_and(|t| t.chars().count() > MAX_TITLE)
    {
        return Err(too_long("title", MAX_TITLE));
    }
    let kind = task.get_attr("type").map(str::to_owned);
    if let Some(k) = &kind
        && k != REMOVE
        && !lax
        && !TYPES.contains(&k.as_str())
    {
        return Err(StanzaError::bad_request(format!(
            "unknown task type {k:?}: use one of todo, todofail, confirm, okfail, question \
             (or remove)"
        )));
    }
    let mut statuses: Vec<StoredTaskStatus> = Vec::new();
    for s in task.children().filter(|c| c.name() == "status") {
        let Some(who) = s.get_attr("for").filter(|w| !w.is_empty()) else {
            return Err(StanzaError::bad_request(
                "every <status/> needs a 'for' naming the assignee",
            ));
        };
        if who.chars().count() > MAX_NAME {
            return Err(too_long("assignee name", MAX_NAME));
        }
        let status = s.get_attr("type").unwrap_or("none");
        if !lax && !STATUSES.contains(&status) {
            return Err(StanzaError::bad_request(format!(
                "unknown status {status:?} for {who}: use one of {}",
                STATUSES.join(", ")
            )));
        }
        let value = s.get_attr("value").unwrap_or("");
        if value.chars().count() > MAX_VALUE {
            return Err(too_long("status value", MAX_VALUE));
        }
        if statuses.iter().any(|x| x.assignee == who) {
            return Err(StanzaError::bad_request(format!(
                "{who} is assigned twice to the task"
            )));
        }
        statuses.push(StoredTaskStatus {
            assignee: who.to_owned(),
            status: status.to_owned(),
            value: value.to_owned(),
        });
    }
    if statuses.len() > MAX_ASSIGNEES {
        return Err(StanzaError::new(
            Condition::NotAcceptable,
            format!("a task may have at most {MAX_ASSIGNEES} assignees"),
        ));
    }
    let schedule = parse_schedule(task)?;
    Ok(TaskRequest {
        id,
        title,
        kind,
        statuses,
        schedule,
    })
}

/// Check a status value's length.
pub fn check_value(value: &str) -> Result<(), StanzaError> {
    if value.chars().count() > MAX_VALUE {
        return Err(too_long("status value", MAX_VALUE));
    }
    Ok(())
}

/// What an assignee can do to a task (the original client's `TaskActions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Start,
    Done,
    Fail,
}

/// The actions the client offers for a task type and the assignee's current status.
pub fn actions(kind: &str, current: &str) -> &'static [Action] {
    use Action::*;
    match (kind, current == "running") {
        ("todo", true) => &[Done],
        ("todo", false) => &[Start],
        ("todofail", true) => &[Done, Fail],
        ("todofail", false) => &[Start, Fail],
        ("confirm", _) | ("question", _) => &[Done],
        ("okfail", _) => &[Done, Fail],
        _ => &[],
    }
}

/// The status an action leads to.
pub fn result_of(action: Action, kind: &str, current: &str) -> &'static str {
    match action {
        Action::Start => "running",
        Action::Fail => "fail",
        Action::Done if kind == "question" => "success",
        Action::Done if current == "success" => "acknowledged",
        Action::Done => "success",
    }
}

/// Whether an assignee may move from `current` to `new` on a task of type `kind`: `new`
/// must be what one of the offered actions leads to. The client turns a fail with an
/// empty reason into done, so wherever fail is offered, done's result is allowed too.
pub fn transition_allowed(kind: &str, current: &str, new: &str) -> bool {
    let offered = actions(kind, current);
    let done_via_fail = offered.contains(&Action::Fail);
    offered
        .iter()
        .copied()
        .chain(done_via_fail.then_some(Action::Done))
        .any(|a| result_of(a, kind, current) == new)
}

/// Natural order for names: digit runs compare as numbers (`hall2` before `hall10`).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                let nb = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
                let (da, db) = (
                    a[..na].trim_start_matches('0'),
                    b[..nb].trim_start_matches('0'),
                );
                let o = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if o != Ordering::Equal {
                    return o;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                a = &a[x.len_utf8()..];
                b = &b[y.len_utf8()..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_machine_follows_the_client_actions() {
        // todo: start, then done; start again from success.
        assert!(transition_allowed("todo", "none", "running"));
        assert!(!transition_allowed("todo", "none", "success"));
        assert!(transition_allowed("todo", "running", "success"));
        assert!(!transition_allowed("todo", "running", "fail"));
        assert!(transition_allowed("todo", "success", "running"));
        // todofail: fail at any time; done (or an empty-reason fail) when running.
        assert!(transition_allowed("todofail", "none", "fail"));
        assert!(transition_allowed("todofail", "running", "fail"));
        assert!(transition_allowed("todofail", "running", "success"));
        assert!(!transition_allowed("todofail", "none", "acknowledged"));
        // confirm and okfail toggle between success and acknowledged.
        assert!(transition_allowed("confirm", "none", "success"));
        assert!(transition_allowed("confirm", "success", "acknowledged"));
        assert!(!transition_allowed("confirm", "none", "fail"));
        assert!(!transition_allowed("confirm", "none", "running"));
        assert!(transition_allowed("okfail", "none", "fail"));
        assert!(transition_allowed("okfail", "fail", "success"));
        // question: answered, and answered again.
        assert!(transition_allowed("question", "none", "success"));
        assert!(transition_allowed("question", "success", "success"));
        assert!(!transition_allowed("question", "success", "acknowledged"));
        // Nobody sets "none" themselves, and unknown types allow nothing.
        for kind in TYPES {
            assert!(!transition_allowed(kind, "success", "none"), "{kind}");
        }
        assert!(!transition_allowed("poll", "none", "success"));
    }

    #[test]
    fn natural_order_puts_hall2_before_hall10() {
        let mut v = vec!["hall10", "hall2", "admin", "hall1", "hall02b"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["admin", "hall1", "hall2", "hall02b", "hall10"]);
    }
}
