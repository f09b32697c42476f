//! Scheduled tasks (A.10, kept on the server): a task with a schedule is stored and shown
//! to the jury, and goes live when its time comes:
//!
//! - `start` + N: when the contest time reaches N;
//! - `end` + N (N negative before the end): when the contest time reaches length + N;
//! - `absolute`: at a wall-clock time (ms since 1970), whatever the contest clock says.
//!
//! Contest-relative schedules fire only once the contest has started (running, paused or
//! over): a missing clock (status 0) fires nothing, unlike in the original. A task without
//! confirmation goes live by itself and is announced like a new task; one that needs
//! confirmation is announced once to the jury in the room, and goes live when a jury
//! member activates it (ad-hoc command, CLI, or `#task` without a schedule).
//!
//! The service checks the schedules when the clock changes and every second.

use rookery_storage::{StoredTask, TaskSchedule};

use super::NeercService;
use super::clock::Clock;
use super::ops::now_ms;
use crate::server::Server;
use crate::xml::{ElementExt, el};

/// Whether a task scheduled `s` is due at contest clock `clock` and wall time `now_ms`.
pub fn due(s: &TaskSchedule, clock: &Clock, now_ms: i64) -> bool {
    match s.base.as_str() {
        "absolute" => now_ms >= s.at_ms,
        "start" => clock.status.started() && clock.time_ms >= s.at_ms,
        "end" => clock.status.started() && clock.time_ms - clock.total_ms >= s.at_ms,
        _ => false,
    }
}

/// Who fires scheduled tasks, in the audit log.
pub const SCHEDULER: &str = "schedule";

impl NeercService {
    /// Put every due scheduled task live, or announce it to the jury if it needs
    /// confirmation.
    pub async fn fire_due(&self, server: &Server) {
        let clock = self.clock();
        let now = now_ms();
        let rooms: Vec<_> = self
            .rooms
            .lock()
            .unwrap()
            .iter()
            .map(|(name, lock)| (name.clone(), lock.clone()))
            .collect();
        for (room, lock) in rooms {
            let due: Vec<StoredTask> = {
                let rt = lock.lock().await;
                rt.tasks
                    .values()
                    .filter(|t| t.schedule.as_ref().is_some_and(|s| due(s, &clock, now)))
                    .cloned()
                    .collect()
            };
            for task in due {
                let confirm = task.schedule.as_ref().is_some_and(|s| s.confirm);
                if !confirm {
                    match self.activate(server, &room, SCHEDULER, &task.id).await {
                        Ok(_) => tracing::info!(room, task = task.id, "scheduled task is live"),
                        // Removed or activated meanwhile: nothing to do.
                        Err(e) => {
                            tracing::debug!(room, task = task.id, error = ?e, "scheduled task not activated")
                        }
                    }
                } else if self
                    .announced
                    .lock()
                    .unwrap()
                    .insert((room.clone(), task.id.clone()))
                {
                    self.announce_due(server, &room, &task).await;
                }
            }
        }
    }

    /// Tell the jury in the room that a task waits for their confirmation.
    async fn announce_due(&self, server: &Server, room: &str, task: &StoredTask) {
        let from = format!("{room}@{}", self.domain);
        let to = self.muc.sessions(server, room, true).await;
        if to.is_empty() {
            return;
        }
        let body = format!(
            "Scheduled task '{}' ({}) is due: activate it with the command \"Activate a \
             scheduled task\" on {from}, or remove it",
            task.title, task.id
        );
        let message = el("message", crate::ns::CLIENT)
            .with_attr("type", "headline")
            .with_attr("from", &from)
            .with_child(el("body", crate::ns::CLIENT).with_text(&body));
        self.fanout(message, to).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::clock::ClockStatus;
    use super::*;

    fn sched(base: &str, at_ms: i64) -> TaskSchedule {
        TaskSchedule {
            base: base.into(),
            at_ms,
            confirm: false,
        }
    }

    fn clock(status: ClockStatus, time_ms: i64) -> Clock {
        Clock {
            time_ms,
            total_ms: 300 * 60_000,
            status,
        }
    }

    #[test]
    fn schedules_fire_by_contest_time_once_the_contest_started() {
        use ClockStatus::*;
        let start10 = sched("start", 10 * 60_000);
        assert!(!due(&start10, &clock(Running, 9 * 60_000), 0));
        assert!(due(&start10, &clock(Running, 10 * 60_000), 0));
        assert!(due(&start10, &clock(Paused, 11 * 60_000), 0));
        assert!(!due(&sched("start", 0), &clock(Before, 0), 0));
        assert!(
            !due(&sched("start", 0), &clock(Unknown, 0), 0),
            "no clock is not a start"
        );
        let end60 = sched("end", -60 * 60_000);
        assert!(!due(&end60, &clock(Running, 239 * 60_000), 0));
        assert!(due(&end60, &clock(Running, 240 * 60_000), 0));
        assert!(due(&sched("end", 0), &clock(Over, 300 * 60_000), 0));
        assert!(!due(&end60, &clock(Unknown, 0), 0));
        let at = sched("absolute", 1_000);
        assert!(!due(&at, &clock(Unknown, 0), 999));
        assert!(due(&at, &clock(Unknown, 0), 1_000));
    }
}
