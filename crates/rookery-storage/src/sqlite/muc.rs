//! [`MucStore`] on SQLite: `muc_rooms` and `muc_affiliations`.

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::{MucStore, Result, StoredAffiliation, StoredRoom};

#[async_trait]
impl MucStore for SqliteStore {
    async fn rooms(&self, service: &str) -> Result<Vec<StoredRoom>> {
        let rows = sqlx::query(
            "SELECT room, config, subject, subject_by FROM muc_rooms \
             WHERE service = $1 ORDER BY room",
        )
        .bind(service)
        .fetch_all(&self.pool)
        .await?;
        let mut rooms: Vec<StoredRoom> = rows
            .iter()
            .map(|r| StoredRoom {
                room: r.get(0),
                config: r.get(1),
                subject: r.get(2),
                subject_by: r.get(3),
                affiliations: Vec::new(),
            })
            .collect();
        let affs = sqlx::query(
            "SELECT room, jid, affiliation, reason FROM muc_affiliations \
             WHERE service = $1 ORDER BY room, jid",
        )
        .bind(service)
        .fetch_all(&self.pool)
        .await?;
        for a in &affs {
            let room: String = a.get(0);
            if let Ok(i) = rooms.binary_search_by(|r| r.room.as_str().cmp(&room)) {
                rooms[i].affiliations.push(StoredAffiliation {
                    jid: a.get(1),
                    affiliation: a.get(2),
                    reason: a.get(3),
                });
            }
        }
        Ok(rooms)
    }

    async fn save_room(&self, service: &str, room: &StoredRoom) -> Result<()> {
        sqlx::query(
            "INSERT INTO muc_rooms (service, room, config, subject, subject_by) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (service, room) DO UPDATE SET config = excluded.config, \
             subject = excluded.subject, subject_by = excluded.subject_by",
        )
        .bind(service)
        .bind(room.room.as_str())
        .bind(room.config.as_str())
        .bind(room.subject.as_str())
        .bind(room.subject_by.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_room(&self, service: &str, room: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM muc_affiliations WHERE service = $1 AND room = $2")
            .bind(service)
            .bind(room)
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM muc_rooms WHERE service = $1 AND room = $2")
            .bind(service)
            .bind(room)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(gone > 0)
    }

    async fn set_affiliation(
        &self,
        service: &str,
        room: &str,
        jid: &str,
        affiliation: &str,
        reason: &str,
    ) -> Result<()> {
        if affiliation == "none" {
            sqlx::query(
                "DELETE FROM muc_affiliations WHERE service = $1 AND room = $2 AND jid = $3",
            )
            .bind(service)
            .bind(room)
            .bind(jid)
            .execute(&self.pool)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO muc_affiliations (service, room, jid, affiliation, reason) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (service, room, jid) DO UPDATE SET \
                 affiliation = excluded.affiliation, reason = excluded.reason",
            )
            .bind(service)
            .bind(room)
            .bind(jid)
            .bind(affiliation)
            .bind(reason)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MucStore;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn a_room_comes_back_with_its_affiliations_and_goes_away_with_them() {
        let (_dir, s) = store().await;
        let svc = "conference.example.org";
        let room = StoredRoom {
            room: "neerc".into(),
            config: r#"{"name":"Contest"}"#.into(),
            subject: "Welcome".into(),
            subject_by: "jury".into(),
            affiliations: vec![],
        };
        s.save_room(svc, &room).await.unwrap();
        s.set_affiliation(svc, "neerc", "jury@example.org", "owner", "")
            .await
            .unwrap();
        s.set_affiliation(svc, "neerc", "halls@groups.example.org", "member", "halls")
            .await
            .unwrap();
        s.set_affiliation(svc, "neerc", "troll@example.org", "outcast", "spam")
            .await
            .unwrap();
        s.set_affiliation(svc, "neerc", "troll@example.org", "none", "")
            .await
            .unwrap();
        let rooms = s.rooms(svc).await.unwrap();
        assert_eq!(rooms.len(), 1);
        assert_eq!(rooms[0].config, room.config);
        assert_eq!(rooms[0].subject, "Welcome");
        let affs: Vec<_> = rooms[0]
            .affiliations
            .iter()
            .map(|a| (a.jid.as_str(), a.affiliation.as_str()))
            .collect();
        assert_eq!(
            affs,
            [
                ("halls@groups.example.org", "member"),
                ("jury@example.org", "owner")
            ]
        );
        assert!(s.rooms("other.example.org").await.unwrap().is_empty());
        assert!(s.delete_room(svc, "neerc").await.unwrap());
        assert!(!s.delete_room(svc, "neerc").await.unwrap());
        assert!(s.rooms(svc).await.unwrap().is_empty());
    }
}
