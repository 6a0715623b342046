//! The retention sweep's writes (docs/retention.md): automatic archiving of idle families,
//! the purge of families archived longer than the retention window, and the lease that lets
//! one replica at a time sweep. The engine's job (`engine/retention.rs`) decides when and
//! with which cutoffs; every write here re-checks its conditions under the locks it takes,
//! so a sweep racing a user (a message, an unarchive) never archives or deletes a chat that
//! stopped qualifying.

use codersdk::Uuid;
use sqlx::{Any, Transaction};

use super::actions::{archive_member, lock_family};
use super::{finish_tx, parse_uuid, uuid_text, Dialect, Store, Transition};
use crate::error::{DbResultExt, Result};

/// Second key of the PostgreSQL advisory lock that lets one replica at a time run the
/// retention sweep (the first is the schema's namespace, as for the replicas' liveness
/// locks, so deployments sharing a database do not wait for each other): the ASCII of
/// "rtnt".
pub const RETENTION_ADVISORY_LOCK_KEY: i32 = 0x7274_6e74;

/// Whether the family of root `r` was active at or after `$1` (Unix microseconds), or is
/// busy. A family's last activity is the newest of its members' `updated_at`, the
/// `created_at` of each member's newest message (by id, deleted or not: an edit is
/// activity) and of its queued messages; a member `pending`, `running` or
/// `requires_action` makes the family busy whatever its times.
const FAMILY_ACTIVE_SINCE: &str = "EXISTS (SELECT 1 FROM chats m WHERE m.root_chat_id = r.id \
     AND (m.status IN ('pending', 'running', 'requires_action') OR m.updated_at >= $1 \
     OR COALESCE((SELECT msg.created_at FROM chat_messages msg WHERE msg.chat_id = m.id \
                  ORDER BY msg.id DESC LIMIT 1), 0) >= $1 \
     OR EXISTS (SELECT 1 FROM chat_queued_messages q WHERE q.chat_id = m.id \
                AND q.created_at >= $1)))";

/// Whether root `r`'s family may be purged: every member archived, none busy.
const FAMILY_PURGEABLE: &str = "NOT EXISTS (SELECT 1 FROM chats m WHERE m.root_chat_id = r.id \
     AND (m.archived = 0 OR m.status IN ('pending', 'running', 'requires_action')))";

/// What [`Store::purge_archived_chats`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgedChats {
    /// Families (root chats) deleted.
    pub families: u64,
    /// Chats deleted, roots and sub-agents together.
    pub chats: u64,
}

/// The retention sweep's lease ([`Store::try_retention_lease`]): held until it is dropped
/// or [`RetentionLease::release`]d. On PostgreSQL a transaction holding a
/// transaction-scoped advisory lock, so the lock goes with the transaction whatever
/// happens to this process; on SQLite (one process) nothing.
#[derive(Debug)]
pub struct RetentionLease {
    tx: Option<Transaction<'static, Any>>,
}

impl RetentionLease {
    /// Releases the lease now (ends its transaction).
    pub async fn release(self) -> Result<()> {
        match self.tx {
            Some(tx) => tx.rollback().await.db(),
            None => Ok(()),
        }
    }
}

impl Store {
    /// Takes the retention sweep's lease: `None` when another replica holds it (it is
    /// sweeping now). On PostgreSQL `pg_try_advisory_xact_lock` on the schema's namespace
    /// and [`RETENTION_ADVISORY_LOCK_KEY`], in a transaction of its own, which takes no row lock and holds no snapshot between statements; on SQLite
    /// always granted.
    pub async fn try_retention_lease(&self) -> Result<Option<RetentionLease>> {
        if self.dialect() == Dialect::Sqlite {
            return Ok(Some(RetentionLease { tx: None }));
        }
        let schema = self.current_schema().await?.unwrap_or_default();
        let namespace = crate::cluster::key32(schema.as_bytes());
        let mut tx = self.pool().begin().await.db()?;
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
            .bind(namespace)
            .bind(RETENTION_ADVISORY_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await
            .db()?;
        if taken {
            Ok(Some(RetentionLease { tx: Some(tx) }))
        } else {
            tx.rollback().await.db()?;
            Ok(None)
        }
    }

    /// Root chats that automatic archiving would take, by id after `after` (a keyset
    /// cursor; `None` from the start), at most `limit`: not archived, not pinned, and whose
    /// family is neither busy nor active at or after `idle_before` (Unix microseconds; see
    /// docs/retention.md for what counts as activity). A read: [`Store::auto_archive_family`]
    /// checks again under the family's locks.
    pub async fn auto_archive_candidates(
        &self,
        idle_before: i64,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Uuid>> {
        let sql = format!(
            "SELECT r.id FROM chats r WHERE r.parent_chat_id IS NULL AND r.archived = 0 \
             AND r.pin_order = 0 AND r.id > $2 AND NOT {FAMILY_ACTIVE_SINCE} \
             ORDER BY r.id LIMIT $3"
        );
        let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(idle_before)
            .bind(after.map(uuid_text).unwrap_or_default())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await
            .db()?;
        ids.iter().map(|id| parse_uuid(id)).collect()
    }

    /// Archives the family of root chat `root` if, under the locks of the whole family
    /// (taken in id order, as [`Store::set_archived`] takes them), the root is still not
    /// archived, not pinned, and the family neither busy nor active at or after
    /// `idle_before`. Archiving is [`Store::set_archived`]'s: `archived`, `pin_order` 0,
    /// `archived_at` now, a watch event `deleted` per member. Returns the members'
    /// transitions, empty when the family no longer qualifies (or is gone).
    pub async fn auto_archive_family(
        &self,
        root: Uuid,
        idle_before: i64,
    ) -> Result<Vec<Transition>> {
        let now = super::now_micros();
        let dialect = self.dialect();
        let mut tx = self.begin_write().await?;
        let result = async {
            let members = match lock_family(&mut tx, dialect, root).await {
                Ok(members) => members,
                Err(e) if e.kind() == crate::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            // Read after the locks: a PostgreSQL statement that follows them sees every
            // write committed before they were granted, and none can follow until commit.
            let sql = format!(
                "SELECT r.id FROM chats r WHERE r.id = $2 AND r.parent_chat_id IS NULL \
                 AND r.archived = 0 AND r.pin_order = 0 AND NOT {FAMILY_ACTIVE_SINCE}"
            );
            let qualifies = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(idle_before)
                .bind(uuid_text(root))
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .is_some();
            if !qualifies {
                return Ok(Vec::new());
            }
            let mut changed = Vec::new();
            for (member, _) in &members {
                if let Some(t) = archive_member(&mut tx, member, now).await? {
                    changed.push(t);
                }
            }
            Ok(changed)
        }
        .await;
        finish_tx(tx, result).await
    }

    /// Deletes, in one transaction, up to `limit` archived families whose root was
    /// archived before `archived_before` (Unix microseconds), oldest archive first: the
    /// root and every sub-agent, and by cascade their labels, messages, queue and file
    /// links (the files themselves stay until [`Store::purge_unlinked_files`]). A family
    /// with a member not archived, or busy, is never deleted. On PostgreSQL each
    /// candidate's rows are locked in id order and the conditions checked again by the
    /// delete (a statement after the locks), so an unarchive or a message racing the purge
    /// either commits first (the family stays) or waits for it.
    pub async fn purge_archived_chats(
        &self,
        archived_before: i64,
        limit: usize,
    ) -> Result<PurgedChats> {
        let mut tx = self.begin_write().await?;
        let result = async {
            let sql = format!(
                "SELECT r.id FROM chats r WHERE r.parent_chat_id IS NULL AND r.archived = 1 \
                 AND r.archived_at < $1 AND {FAMILY_PURGEABLE} \
                 ORDER BY r.archived_at, r.id LIMIT $2"
            );
            let roots: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(archived_before)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await
                .db()?;
            let mut purged = PurgedChats::default();
            let lock = match self.dialect() {
                Dialect::Sqlite => "",
                Dialect::Postgres => " FOR UPDATE",
            };
            for root in roots {
                // The family's rows in id order, as every family-wide writer locks them
                // (on SQLite the transaction holds the database); counted here because
                // SQLite does not count the rows a cascade deletes.
                let sql = format!("SELECT id FROM chats WHERE root_chat_id = $1 ORDER BY id{lock}");
                let members: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(&root)
                    .fetch_all(&mut *tx)
                    .await
                    .db()?;
                let sql = format!(
                    "DELETE FROM chats WHERE root_chat_id = $2 AND EXISTS (SELECT 1 FROM chats r \
                     WHERE r.id = $2 AND r.archived = 1 AND r.archived_at < $1 \
                     AND {FAMILY_PURGEABLE})"
                );
                let deleted = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(archived_before)
                    .bind(&root)
                    .execute(&mut *tx)
                    .await
                    .db()?
                    .rows_affected();
                if deleted > 0 {
                    purged.families += 1;
                    purged.chats += u64::try_from(members.len()).unwrap_or(u64::MAX);
                }
            }
            Ok(purged)
        }
        .await;
        finish_tx(tx, result).await
    }
}
