//! [`GroupStore`] on SQLite: `shared_groups` and `shared_group_members`.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqliteStore, flag};
use crate::{Group, GroupStore, Result, StoreError};

const GROUP_COLUMNS: &str =
    "g.host AS host, g.group_id AS group_id, g.name AS name, g.show_in_roster AS show_in_roster";

fn group_from_row(row: &AnyRow) -> Result<Group> {
    Ok(Group {
        host: row.try_get("host")?,
        id: row.try_get("group_id")?,
        name: row.try_get("name")?,
        show_in_roster: row.try_get::<i64, _>("show_in_roster")? != 0,
    })
}

/// Sorted by id in code point order, whatever the database's collation.
fn sorted(mut groups: Vec<Group>) -> Vec<Group> {
    groups.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    groups
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(StoreError::Invalid("empty group name".into()));
    }
    if name.contains('\n') {
        return Err(StoreError::Invalid(format!(
            "group name {name:?} contains a newline"
        )));
    }
    Ok(())
}

#[async_trait]
impl GroupStore for SqliteStore {
    async fn create_group(
        &self,
        host: &str,
        id: &str,
        name: &str,
        show_in_roster: bool,
    ) -> Result<bool> {
        if id.is_empty() {
            return Err(StoreError::Invalid("empty group id".into()));
        }
        check_name(name)?;
        let created = sqlx::query(
            "INSERT INTO shared_groups (host, group_id, name, show_in_roster) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (host, group_id) DO NOTHING",
        )
        .bind(host)
        .bind(id)
        .bind(name)
        .bind(flag(show_in_roster))
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if created {
            tracing::debug!(host, id, "group created");
        }
        Ok(created)
    }

    async fn delete_group(&self, host: &str, id: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        // Explicitly, so it does not hinge on foreign keys being enforced.
        sqlx::query("DELETE FROM shared_group_members WHERE host = $1 AND group_id = $2")
            .bind(host)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let existed = sqlx::query("DELETE FROM shared_groups WHERE host = $1 AND group_id = $2")
            .bind(host)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        tx.commit().await?;
        if existed {
            tracing::debug!(host, id, "group deleted");
        }
        Ok(existed)
    }

    async fn groups(&self, host: &str) -> Result<Vec<Group>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM shared_groups g WHERE g.host = $1 ORDER BY g.group_id"
        )))
        .bind(host)
        .fetch_all(&self.pool)
        .await?;
        Ok(sorted(
            rows.iter().map(group_from_row).collect::<Result<_>>()?,
        ))
    }

    async fn group(&self, host: &str, id: &str) -> Result<Option<Group>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM shared_groups g WHERE g.host = $1 AND g.group_id = $2"
        )))
        .bind(host)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    async fn set_group(
        &self,
        host: &str,
        id: &str,
        name: &str,
        show_in_roster: bool,
    ) -> Result<bool> {
        check_name(name)?;
        let n = sqlx::query(
            "UPDATE shared_groups SET name = $3, show_in_roster = $4 \
             WHERE host = $1 AND group_id = $2",
        )
        .bind(host)
        .bind(id)
        .bind(name)
        .bind(flag(show_in_roster))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn add_members(&self, host: &str, id: &str, members: &[String]) -> Result<Vec<String>> {
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT 1 FROM shared_groups WHERE host = $1 AND group_id = $2")
            .bind(host)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            tx.rollback().await?;
            return Err(StoreError::Invalid(format!(
                "there is no group {id:?} on {host}"
            )));
        }
        let mut added = Vec::new();
        for member in members {
            let inserted = sqlx::query(
                "INSERT INTO shared_group_members (host, group_id, member) VALUES ($1, $2, $3) \
                 ON CONFLICT (host, group_id, member) DO NOTHING",
            )
            .bind(host)
            .bind(id)
            .bind(member.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if inserted {
                added.push(member.clone());
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn remove_members(
        &self,
        host: &str,
        id: &str,
        members: &[String],
    ) -> Result<Vec<String>> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut removed = Vec::new();
        let mut tx = self.write_tx().await?;
        for member in members {
            let deleted = sqlx::query(
                "DELETE FROM shared_group_members \
                 WHERE host = $1 AND group_id = $2 AND member = $3",
            )
            .bind(host)
            .bind(id)
            .bind(member.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if deleted {
                removed.push(member.clone());
            }
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn members(&self, host: &str, id: &str) -> Result<Vec<String>> {
        let mut members: Vec<String> = sqlx::query_scalar(
            "SELECT member FROM shared_group_members \
             WHERE host = $1 AND group_id = $2 ORDER BY member",
        )
        .bind(host)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        members.sort_unstable();
        Ok(members)
    }

    async fn groups_of(&self, host: &str, member: &str) -> Result<Vec<Group>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM shared_group_members m \
             JOIN shared_groups g ON g.host = m.host AND g.group_id = m.group_id \
             WHERE m.host = $1 AND m.member = $2 ORDER BY g.group_id"
        )))
        .bind(host)
        .bind(member)
        .fetch_all(&self.pool)
        .await?;
        Ok(sorted(
            rows.iter().map(group_from_row).collect::<Result<_>>()?,
        ))
    }

    async fn shown_contacts(&self, host: &str, member: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT o.member AS contact, g.name AS name FROM shared_group_members m \
             JOIN shared_groups g ON g.host = m.host AND g.group_id = m.group_id \
             JOIN shared_group_members o ON o.host = m.host AND o.group_id = m.group_id \
             WHERE m.host = $1 AND m.member = $2 AND g.show_in_roster = 1 AND o.member <> $2",
        )
        .bind(host)
        .bind(member)
        .fetch_all(&self.pool)
        .await?;
        let mut pairs = rows
            .iter()
            .map(|r| Ok((r.try_get("contact")?, r.try_get("name")?)))
            .collect::<Result<Vec<(String, String)>>>()?;
        pairs.sort_unstable();
        pairs.dedup();
        Ok(pairs)
    }

    async fn remove_member_everywhere(&self, member: &str) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM shared_group_members WHERE member = $1")
                .bind(member)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
