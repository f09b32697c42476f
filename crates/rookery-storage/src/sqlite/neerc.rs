//! [`TaskStore`] on SQLite: `neerc_tasks`, `neerc_task_statuses`, `neerc_task_ids` and
//! the audit log `neerc_task_log`.

use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};

use super::SqliteStore;
use crate::{Result, StoredTask, StoredTaskStatus, TaskLogEntry, TaskSchedule, TaskStore, now_us};

/// Append one audit entry inside `tx`.
async fn log(
    tx: &mut Transaction<'static, Any>,
    service: &str,
    room: &str,
    task: &str,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO neerc_task_log (service, room, task, at_us, actor, action, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(service)
    .bind(room)
    .bind(task)
    .bind(now_us())
    .bind(actor)
    .bind(action)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A stored schedule: no base means a live task.
fn schedule(base: String, at_ms: i64, confirm: i64) -> Option<TaskSchedule> {
    (!base.is_empty()).then_some(TaskSchedule {
        base,
        at_ms,
        confirm: confirm != 0,
    })
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn tasks(&self, service: &str, room: &str) -> Result<Vec<StoredTask>> {
        let rows = sqlx::query(
            "SELECT id, title, kind, created_ms, schedule, schedule_ms, confirm FROM neerc_tasks \
             WHERE service = $1 AND room = $2 ORDER BY id",
        )
        .bind(service)
        .bind(room)
        .fetch_all(&self.pool)
        .await?;
        let mut tasks: Vec<StoredTask> = rows
            .iter()
            .map(|r| StoredTask {
                id: r.get(0),
                title: r.get(1),
                kind: r.get(2),
                created_ms: r.get(3),
                statuses: Vec::new(),
                schedule: schedule(r.get(4), r.get(5), r.get(6)),
            })
            .collect();
        let statuses = sqlx::query(
            "SELECT task, assignee, status, value FROM neerc_task_statuses \
             WHERE service = $1 AND room = $2 ORDER BY task, pos",
        )
        .bind(service)
        .bind(room)
        .fetch_all(&self.pool)
        .await?;
        for s in &statuses {
            let task: String = s.get(0);
            if let Ok(i) = tasks.binary_search_by(|t| t.id.as_str().cmp(&task)) {
                tasks[i].statuses.push(StoredTaskStatus {
                    assignee: s.get(1),
                    status: s.get(2),
                    value: s.get(3),
                });
            }
        }
        tasks.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(tasks)
    }

    async fn new_task_id(&self, service: &str, room: &str) -> Result<String> {
        let mut tx = self.write_tx().await?;
        let next: Option<i64> =
            sqlx::query("SELECT next_id FROM neerc_task_ids WHERE service = $1 AND room = $2")
                .bind(service)
                .bind(room)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get(0));
        let mut id = next.unwrap_or(1);
        // Skip ids a client chose for its own tasks.
        loop {
            let taken = sqlx::query(
                "SELECT 1 FROM neerc_tasks WHERE service = $1 AND room = $2 AND id = $3",
            )
            .bind(service)
            .bind(room)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
            if !taken {
                break;
            }
            id += 1;
        }
        sqlx::query(
            "INSERT INTO neerc_task_ids (service, room, next_id) VALUES ($1, $2, $3) \
             ON CONFLICT (service, room) DO UPDATE SET next_id = excluded.next_id",
        )
        .bind(service)
        .bind(room)
        .bind(id + 1)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id.to_string())
    }

    async fn put_task(
        &self,
        service: &str,
        room: &str,
        task: &StoredTask,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO neerc_tasks (service, room, id, title, kind, created_ms, updated_us, \
             schedule, schedule_ms, confirm) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (service, room, id) DO UPDATE SET title = excluded.title, \
             kind = excluded.kind, created_ms = excluded.created_ms, \
             updated_us = excluded.updated_us, schedule = excluded.schedule, \
             schedule_ms = excluded.schedule_ms, confirm = excluded.confirm",
        )
        .bind(service)
        .bind(room)
        .bind(task.id.as_str())
        .bind(task.title.as_str())
        .bind(task.kind.as_str())
        .bind(task.created_ms)
        .bind(now_us())
        .bind(task.schedule.as_ref().map_or("", |s| s.base.as_str()))
        .bind(task.schedule.as_ref().map_or(0, |s| s.at_ms))
        .bind(i64::from(task.schedule.as_ref().is_some_and(|s| s.confirm)))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM neerc_task_statuses WHERE service = $1 AND room = $2 AND task = $3",
        )
        .bind(service)
        .bind(room)
        .bind(task.id.as_str())
        .execute(&mut *tx)
        .await?;
        for (pos, s) in task.statuses.iter().enumerate() {
            sqlx::query(
                "INSERT INTO neerc_task_statuses \
                 (service, room, task, assignee, pos, status, value) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(service)
            .bind(room)
            .bind(task.id.as_str())
            .bind(s.assignee.as_str())
            .bind(pos as i64)
            .bind(s.status.as_str())
            .bind(s.value.as_str())
            .execute(&mut *tx)
            .await?;
        }
        log(&mut tx, service, room, &task.id, actor, action, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_task_status(
        &self,
        service: &str,
        room: &str,
        task: &str,
        status: &StoredTaskStatus,
        actor: &str,
        detail: &str,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(
            "UPDATE neerc_task_statuses SET status = $5, value = $6 \
             WHERE service = $1 AND room = $2 AND task = $3 AND assignee = $4",
        )
        .bind(service)
        .bind(room)
        .bind(task)
        .bind(status.assignee.as_str())
        .bind(status.status.as_str())
        .bind(status.value.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE neerc_tasks SET updated_us = $4 WHERE service = $1 AND room = $2 AND id = $3",
        )
        .bind(service)
        .bind(room)
        .bind(task)
        .bind(now_us())
        .execute(&mut *tx)
        .await?;
        log(&mut tx, service, room, task, actor, "status", detail).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_task(
        &self,
        service: &str,
        room: &str,
        task: &str,
        actor: &str,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "DELETE FROM neerc_task_statuses WHERE service = $1 AND room = $2 AND task = $3",
        )
        .bind(service)
        .bind(room)
        .bind(task)
        .execute(&mut *tx)
        .await?;
        let gone =
            sqlx::query("DELETE FROM neerc_tasks WHERE service = $1 AND room = $2 AND id = $3")
                .bind(service)
                .bind(room)
                .bind(task)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        log(&mut tx, service, room, task, actor, "remove", "").await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn task_rooms(&self, service: &str) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT DISTINCT room FROM neerc_tasks WHERE service = $1 ORDER BY room")
                .bind(service)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn task_log(&self, service: &str, room: &str, limit: u32) -> Result<Vec<TaskLogEntry>> {
        let rows = sqlx::query(
            "SELECT at_us, actor, action, task, detail FROM neerc_task_log \
             WHERE service = $1 AND room = $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(service)
        .bind(room)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut entries: Vec<TaskLogEntry> = rows
            .iter()
            .map(|r| TaskLogEntry {
                at_us: r.get(0),
                actor: r.get(1),
                action: r.get(2),
                task: r.get(3),
                detail: r.get(4),
            })
            .collect();
        entries.reverse();
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        (dir, s)
    }

    fn status(who: &str, st: &str, value: &str) -> StoredTaskStatus {
        StoredTaskStatus {
            assignee: who.into(),
            status: st.into(),
            value: value.into(),
        }
    }

    #[tokio::test]
    async fn tasks_keep_their_statuses_in_order_and_every_change_is_logged() {
        let (_dir, s) = store().await;
        let svc = "neerc.example.org";
        let id = s.new_task_id(svc, "neerc").await.unwrap();
        assert_eq!(id, "1");
        // A client-chosen id "2" is skipped by the next generated id.
        let mut chosen = StoredTask {
            id: "2".into(),
            title: "Chosen".into(),
            kind: "confirm".into(),
            created_ms: 500,
            statuses: vec![],
            schedule: None,
        };
        s.put_task(svc, "neerc", &chosen, "jury@example.org", "create", "")
            .await
            .unwrap();
        let task = StoredTask {
            id: id.clone(),
            title: "Do some work".into(),
            kind: "todo".into(),
            created_ms: 1000,
            statuses: vec![status("hall2", "none", ""), status("hall1", "none", "")],
            schedule: Some(TaskSchedule {
                base: "end".into(),
                at_ms: -3_600_000,
                confirm: true,
            }),
        };
        s.put_task(svc, "neerc", &task, "jury@example.org", "create", "")
            .await
            .unwrap();
        assert_eq!(s.new_task_id(svc, "neerc").await.unwrap(), "3");
        assert!(
            s.set_task_status(
                svc,
                "neerc",
                "1",
                &status("hall1", "running", ""),
                "hall1@example.org",
                "none -> running"
            )
            .await
            .unwrap()
        );
        assert!(
            !s.set_task_status(
                svc,
                "neerc",
                "1",
                &status("hall9", "running", ""),
                "hall9@example.org",
                ""
            )
            .await
            .unwrap()
        );
        let tasks = s.tasks(svc, "neerc").await.unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].id, "2", "sorted by creation time");
        assert_eq!(tasks[0].schedule, None);
        assert_eq!(tasks[1].schedule, task.schedule, "the schedule is kept");
        assert_eq!(s.task_rooms(svc).await.unwrap(), ["neerc"]);
        assert_eq!(
            tasks[1].statuses,
            [status("hall2", "none", ""), status("hall1", "running", "")]
        );
        assert!(s.tasks(svc, "other").await.unwrap().is_empty());
        chosen.title = "Chosen again".into();
        s.put_task(svc, "neerc", &chosen, "jury@example.org", "replace", "")
            .await
            .unwrap();
        assert!(
            s.delete_task(svc, "neerc", "1", "jury@example.org")
                .await
                .unwrap()
        );
        assert!(
            !s.delete_task(svc, "neerc", "1", "jury@example.org")
                .await
                .unwrap()
        );
        let tasks = s.tasks(svc, "neerc").await.unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].title, "Chosen again");
        let log = s.task_log(svc, "neerc", 10).await.unwrap();
        let actions: Vec<(&str, &str)> = log
            .iter()
            .map(|e| (e.action.as_str(), e.task.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("create", "2"),
                ("create", "1"),
                ("status", "1"),
                ("replace", "2"),
                ("remove", "1")
            ]
        );
        assert_eq!(log[2].actor, "hall1@example.org");
        assert_eq!(s.task_log(svc, "neerc", 2).await.unwrap().len(), 2);
    }
}
