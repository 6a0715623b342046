//! The store side of running several replicas on one PostgreSQL database
//! (docs/engine-design.md "Several replicas on PostgreSQL"): the relay's oversize batches,
//! and the hand-back of chats whose replica died.

use std::time::Duration;

use codersdk::{ChatStatus, Uuid};

use super::{get_uuid, now_micros, uuid_text, Dialect, Store, Transition};
use crate::error::{DbResultExt, Result};

impl Store {
    /// The schema this store's tables live in (PostgreSQL's `current_schema()`); `None` on
    /// SQLite. Replicas of one deployment share it, and it keeps the notification channels
    /// and advisory locks of deployments sharing a database apart.
    pub async fn current_schema(&self) -> Result<Option<String>> {
        if self.dialect() != Dialect::Postgres {
            return Ok(None);
        }
        sqlx::query_scalar("SELECT CAST(current_schema() AS TEXT)")
            .fetch_one(self.pool())
            .await
            .db()
    }

    /// The worker running chat `chat_id`, when it is `running`.
    pub(crate) async fn running_worker(&self, chat_id: Uuid) -> Result<Option<Uuid>> {
        let row = sqlx::query("SELECT worker_id FROM chats WHERE id = $1 AND status = $2")
            .bind(uuid_text(chat_id))
            .bind(ChatStatus::Running.as_str())
            .fetch_optional(self.pool())
            .await
            .db()?;
        match row {
            Some(row) => super::get_opt_uuid(&row, "worker_id"),
            None => Ok(None),
        }
    }

    /// Stores a relay batch too large for a notification; its id goes into the
    /// notification instead.
    pub(crate) async fn insert_relay_blob(&self, payload: &str) -> Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO relay_blobs (created_at, payload) VALUES ($1, $2) RETURNING id",
        )
        .bind(now_micros())
        .bind(payload)
        .fetch_one(self.writer())
        .await
        .db()
    }

    /// A stored relay batch; `None` once it was purged.
    pub(crate) async fn relay_blob(&self, id: i64) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT payload FROM relay_blobs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .db()
    }

    /// Deletes relay batches older than `retention`; how many.
    pub(crate) async fn purge_relay_blobs(&self, retention: Duration) -> Result<u64> {
        let cutoff =
            now_micros().saturating_sub(i64::try_from(retention.as_micros()).unwrap_or(i64::MAX));
        Ok(sqlx::query("DELETE FROM relay_blobs WHERE created_at < $1")
            .bind(cutoff)
            .execute(self.writer())
            .await
            .db()?
            .rows_affected())
    }

    /// The workers other than `me` that hold `running` chats: the candidates of
    /// [`Store::release_dead_worker`].
    pub(crate) async fn running_workers(&self, me: Uuid) -> Result<Vec<Uuid>> {
        let rows = sqlx::query(
            "SELECT DISTINCT worker_id FROM chats WHERE status = $1 AND worker_id IS NOT NULL \
             AND worker_id <> $2",
        )
        .bind(ChatStatus::Running.as_str())
        .bind(uuid_text(me))
        .fetch_all(self.pool())
        .await
        .db()?;
        rows.iter().map(|row| get_uuid(row, "worker_id")).collect()
    }

    /// PostgreSQL only: how many replicas hold a liveness lock in `namespace` on this
    /// database (each holds one for its lifetime), this one included.
    pub(crate) async fn live_replicas(&self, namespace: i32) -> Result<usize> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND objsubid = 2 AND classid = ($1::int4)::oid \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(namespace)
        .fetch_one(self.pool())
        .await
        .db()?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// PostgreSQL only: when nobody holds the liveness lock `(namespace, key)` of `worker`
    /// (the session-level advisory lock its replica takes for its lifetime, which
    /// PostgreSQL releases the moment that replica's connection dies), hands every chat
    /// `worker` runs back as `pending`, in one transaction, and returns one transition per
    /// chat (`running` → `pending`, the dead worker's lease ended). Holding the lock as a
    /// transaction lock while releasing keeps two survivors from both doing it, and a
    /// worker that is alive (lock held) is never touched. On SQLite: nothing.
    pub(crate) async fn release_dead_worker(
        &self,
        worker: Uuid,
        namespace: i32,
        key: i32,
    ) -> Result<Vec<Transition>> {
        if self.dialect() != Dialect::Postgres {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let result = async {
            let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
                .bind(namespace)
                .bind(key)
                .fetch_one(&mut *tx)
                .await
                .db()?;
            if !free {
                return Ok(Vec::new());
            }
            super::leases::release_worker(&mut tx, worker).await
        }
        .await;
        super::finish_tx(tx, result).await
    }
}
