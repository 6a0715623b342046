//! Worker leases: claims, heartbeats, release and stale recovery (and
//! docs/engine-design.md "Fenced workers").

use std::time::Duration;

use codersdk::{ChatError, ChatMessage, ChatStatus, Timestamp, Uuid};
use sqlx::Row;

use super::changes::{answer_pending_calls, moved as moved_to};
use super::{get_opt_uuid, get_uuid, now_micros, timestamp_to_micros, uuid_text};
use super::{ChatTx, Dialect, Store, Transition};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Most chats one [`Store::claim_pending`] call claims (`MaxChatsPerAcquire`); larger
/// limits are clamped to it.
pub const MAX_CLAIM_BATCH: usize = 10;

/// Key of the PostgreSQL advisory lock that serializes claims across replicas, so the
/// running-chat counts a claim reads stay true until it commits (an arbitrary constant:
/// the ASCII of "chatdclm").
pub const CLAIM_ADVISORY_LOCK_KEY: i64 = 0x6368_6174_6463_6c6d;

/// Most chats `running` at once in the whole deployment, by kind; see
/// [`Store::claim_pending_within`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimLimits {
    /// Running root chats.
    pub root_chats: usize,
    /// Running sub-agent chats.
    pub subagents: usize,
}

impl ClaimLimits {
    /// No limit beyond the claim's own batch.
    pub const UNLIMITED: ClaimLimits = ClaimLimits {
        root_chats: usize::MAX,
        subagents: usize::MAX,
    };
}

/// Most leases one heartbeat statement names. [`Store::heartbeat`] splits longer lists so
/// the statement stays far below both backends' bind-parameter limits (SQLite 32 766,
/// PostgreSQL 65 535; each lease takes two).
pub const MAX_LEASES_PER_HEARTBEAT_STATEMENT: usize = 500;

/// `last_error` message of a `requires_action` chat whose client never answered.
pub const DYNAMIC_TOOL_TIMEOUT_MESSAGE: &str = "Dynamic tool execution timed out";

/// A worker's claim on a running chat. Every worker write names it and is refused when the
/// chat was since released, recovered or claimed again (the epoch tells a stale worker of
/// the same process from the current one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The claimed chat.
    pub chat_id: Uuid,
    /// The claiming worker (one per process).
    pub worker_id: Uuid,
    /// The chat's `lease_epoch` after the claim; every claim bumps it.
    pub epoch: i64,
}

/// What [`ChatTx::check_lease`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Still `running` under this worker and epoch: the worker may write.
    Owned,
    /// Interrupted: now `waiting` with the worker cleared and no claim since (epoch
    /// unchanged). The worker may persist its partial step, then must stop.
    Interrupted,
    /// Released, recovered, edited, promoted or claimed again: the worker must write
    /// nothing and stop.
    Lost,
}

/// The chats [`Store::recover_stale`] moved, for the engine to publish and follow up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecoveredChats {
    /// One transition per chat moved, in chat id order: a stale `running` chat set back
    /// to `pending` (its dead worker's lease ended), or a `requires_action` chat set to
    /// `error` because the client never submitted results, with the synthetic error
    /// results ([`DYNAMIC_TOOL_TIMEOUT_MESSAGE`]) written in the same transaction for its
    /// pending dynamic tool calls (one `tool` message per call) and the error.
    pub transitions: Vec<Transition>,
}

impl RecoveredChats {
    /// The stale `running` chats set back to `pending` (to be claimed again).
    pub fn to_pending(&self) -> Vec<Uuid> {
        self.ids_now(&ChatStatus::Pending)
    }

    /// The `requires_action` chats set to `error`.
    pub fn timed_out(&self) -> Vec<Uuid> {
        self.ids_now(&ChatStatus::Error)
    }

    /// The synthetic error results of the `timed_out` chats, grouped by chat in
    /// `timed_out` order.
    pub fn tool_results(&self) -> Vec<ChatMessage> {
        self.transitions
            .iter()
            .flat_map(|t| t.messages.iter().cloned())
            .collect()
    }

    fn ids_now(&self, status: &ChatStatus) -> Vec<Uuid> {
        self.transitions
            .iter()
            .filter(|t| t.status == *status)
            .map(|t| t.chat_id)
            .collect()
    }
}

fn micros_of(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// What [`Store::claim_pending_counted`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claimed {
    /// The claimed chats.
    pub leases: Vec<Lease>,
    /// Pending chats remain that this claim did not take (the batch, a running limit, or
    /// a lock kept them).
    pub left_pending: bool,
    /// A pending chat had a free place but was locked by another transaction and skipped
    /// (PostgreSQL): worth claiming again shortly.
    pub contended: bool,
}

impl Store {
    /// Claims up to `limit` (at most [`MAX_CLAIM_BATCH`]) non-archived `pending` chats for
    /// `worker_id`, oldest `updated_at` first, with no deployment-wide running limit:
    /// [`Store::claim_pending_within`] with [`ClaimLimits::UNLIMITED`].
    pub async fn claim_pending(&self, worker_id: Uuid, limit: usize) -> Result<Vec<Lease>> {
        self.claim_pending_within(worker_id, limit, ClaimLimits::UNLIMITED)
            .await
    }

    /// Claims up to `limit` (at most [`MAX_CLAIM_BATCH`]) non-archived `pending` chats for
    /// `worker_id`, oldest `updated_at` first, in one transaction: each becomes `running`
    /// with a bumped epoch and fresh `started_at`/`heartbeat_at`. Concurrent claimers never
    /// get the same chat: PostgreSQL skips rows another claim has locked, SQLite claims under
    /// the database write lock.
    ///
    /// `limits` bound the chats `running` in the whole deployment (every worker on the
    /// database), counted separately for root chats and sub-agents: the transaction counts
    /// them and claims roots first, then sub-agents, only into the free places, so a flood
    /// of sub-agents never takes a root chat's place. Chats beyond a limit stay `pending`
    /// for a later claim. On PostgreSQL the count and the claim are serialized across
    /// replicas by a transaction-scoped advisory lock ([`CLAIM_ADVISORY_LOCK_KEY`]); SQLite's
    /// write lock does the same.
    pub async fn claim_pending_within(
        &self,
        worker_id: Uuid,
        limit: usize,
        limits: ClaimLimits,
    ) -> Result<Vec<Lease>> {
        Ok(self
            .claim_pending_counted(worker_id, limit, limits)
            .await?
            .leases)
    }

    /// [`Store::claim_pending_within`], also telling what it left pending.
    pub async fn claim_pending_counted(
        &self,
        worker_id: Uuid,
        limit: usize,
        limits: ClaimLimits,
    ) -> Result<Claimed> {
        let limit = limit.min(MAX_CLAIM_BATCH);
        if limit == 0 {
            return Ok(Claimed::default());
        }
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            if self.dialect() == Dialect::Postgres {
                // The claim's commit need not wait for its WAL flush: a claim lost in a
                // crash of the database leaves the chat `pending`, to be claimed again (its
                // worker's turn died with the connection anyway), and the turn's first
                // durable write (its step) flushes it with everything before. One disk
                // flush less before a turn's first output.
                sqlx::query(
                    "SELECT pg_advisory_xact_lock($1), \
                     set_config('synchronous_commit', 'off', true)",
                )
                .bind(CLAIM_ADVISORY_LOCK_KEY)
                .execute(&mut *tx)
                .await
                .db()?;
            }
            // Running and pending chats of both kinds in one statement: the free places,
            // and which kinds have anything to claim (a kind with nothing pending costs
            // no update).
            let counts = sqlx::query(
                "SELECT \
                 COALESCE(SUM(CASE WHEN status = $1 AND parent_chat_id IS NULL \
                   THEN 1 ELSE 0 END), 0) AS roots, \
                 COALESCE(SUM(CASE WHEN status = $1 AND parent_chat_id IS NOT NULL \
                   THEN 1 ELSE 0 END), 0) AS subs, \
                 COALESCE(SUM(CASE WHEN status = $2 AND archived = 0 \
                   AND parent_chat_id IS NULL THEN 1 ELSE 0 END), 0) AS pending_roots, \
                 COALESCE(SUM(CASE WHEN status = $2 AND archived = 0 \
                   AND parent_chat_id IS NOT NULL THEN 1 ELSE 0 END), 0) AS pending_subs \
                 FROM chats WHERE status IN ($1, $2)",
            )
            .bind(ChatStatus::Running.as_str())
            .bind(ChatStatus::Pending.as_str())
            .fetch_one(&mut *tx)
            .await
            .db()?;
            let count = |col: &str| -> Result<usize> {
                let n: i64 = counts.try_get(col).db()?;
                Ok(usize::try_from(n).unwrap_or(0))
            };
            let free_roots = limits.root_chats.saturating_sub(count("roots")?);
            let free_subs = limits.subagents.saturating_sub(count("subs")?);
            let (pending_roots, pending_subs) = (count("pending_roots")?, count("pending_subs")?);
            let root_places = limit.min(free_roots).min(pending_roots);
            let mut leases = self
                .claim_kind(&mut tx, worker_id, now, root_places, false)
                .await?;
            let roots = leases.len();
            let left = limit.saturating_sub(roots).min(free_subs).min(pending_subs);
            let subs = self.claim_kind(&mut tx, worker_id, now, left, true).await?;
            // Chats left pending (held back by the batch or a limit, or locked by another
            // transaction) want another claim when a place frees up; a chat skipped while
            // a place was free for it was locked (another claim, or a write on it such as
            // a turn summary's) and can be taken in a moment.
            let left_pending = pending_roots > roots || pending_subs > subs.len();
            let contended = roots < root_places || subs.len() < left;
            leases.extend(subs);
            Ok(Claimed {
                leases,
                left_pending,
                contended,
            })
        }
        .await;
        super::finish_tx(tx, result).await
    }

    /// Claims up to `n` pending root chats (`subagents` false) or sub-agents (true) inside
    /// the claim transaction.
    async fn claim_kind(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        worker_id: Uuid,
        now: i64,
        n: usize,
        subagents: bool,
    ) -> Result<Vec<Lease>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let kind = if subagents {
            "parent_chat_id IS NOT NULL"
        } else {
            "parent_chat_id IS NULL"
        };
        let pick = format!(
            "SELECT id FROM chats WHERE status = $5 AND archived = 0 AND {kind} \
             ORDER BY updated_at, id LIMIT $2"
        );
        // PostgreSQL: the pick runs once, as an init plan (`ARRAY(…)`). Written as
        // `id IN (…)` it may be re-run per outer row; a re-run skips the rows this statement
        // already updated and picks further ones, claiming more than the limit.
        let chosen = match self.dialect() {
            Dialect::Sqlite => format!("id IN ({pick})"),
            Dialect::Postgres => format!("id = ANY(ARRAY({pick} FOR UPDATE SKIP LOCKED))"),
        };
        // The outer status re-check keeps a row another transaction changed after the pick
        // from being claimed.
        let sql = format!(
            "UPDATE chats SET status = $3, worker_id = $1, lease_epoch = lease_epoch + 1, \
             started_at = $4, heartbeat_at = $4, updated_at = $4 \
             WHERE status = $5 AND {chosen} RETURNING id, lease_epoch"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(worker_id))
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(ChatStatus::Running.as_str())
            .bind(now)
            .bind(ChatStatus::Pending.as_str())
            .fetch_all(&mut **tx)
            .await
            .db()?;
        rows.iter()
            .map(|row| {
                Ok(Lease {
                    chat_id: get_uuid(row, "id")?,
                    worker_id,
                    epoch: row.try_get("lease_epoch").db()?,
                })
            })
            .collect()
    }

    /// Refreshes `heartbeat_at` of the chats `worker_id` still owns among `leases` (status
    /// `running`, same worker, same epoch) and returns those leases. A lease missing from
    /// the answer was lost: its worker must stop.
    pub async fn heartbeat(&self, worker_id: Uuid, leases: &[Lease]) -> Result<Vec<Lease>> {
        let now = now_micros();
        let mut owned = Vec::new();
        for chunk in leases.chunks(MAX_LEASES_PER_HEARTBEAT_STATEMENT) {
            let pairs = (0..chunk.len())
                .map(|i| {
                    let id = 4 + 2 * i;
                    format!("(id = ${id} AND lease_epoch = ${})", id + 1)
                })
                .collect::<Vec<_>>()
                .join(" OR ");
            // Only numbered placeholders are formatted in; every value is bound.
            let sql = format!(
                "UPDATE chats SET heartbeat_at = $3 WHERE worker_id = $1 AND status = $2 \
                 AND ({pairs}) RETURNING id, lease_epoch"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(uuid_text(worker_id))
                .bind(ChatStatus::Running.as_str())
                .bind(now);
            for lease in chunk {
                query = query.bind(uuid_text(lease.chat_id)).bind(lease.epoch);
            }
            let rows = query.fetch_all(self.writer()).await.db()?;
            for row in &rows {
                owned.push(Lease {
                    chat_id: get_uuid(row, "id")?,
                    worker_id,
                    epoch: row.try_get("lease_epoch").db()?,
                });
            }
        }
        Ok(owned)
    }

    /// The state of `lease` as committed, read without a lock: for a worker that was not
    /// told why its lease is gone (an operation of another process, or one that committed
    /// before the worker registered its turn) to learn whether it was interrupted (the
    /// chat is `waiting` under the same epoch: keep the partial step and finish, which
    /// runs the queue) or lost. A chat that no longer exists is [`LeaseState::Lost`].
    pub async fn lease_state(&self, lease: &Lease) -> Result<LeaseState> {
        let row = sqlx::query("SELECT status, worker_id, lease_epoch FROM chats WHERE id = $1")
            .bind(uuid_text(lease.chat_id))
            .fetch_optional(self.pool())
            .await
            .db()?;
        match row {
            Some(row) => lease_state_of(&row, lease),
            None => Ok(LeaseState::Lost),
        }
    }

    /// Graceful shutdown (row 9): every chat `worker_id` is running goes back to
    /// `pending` with its worker fields cleared, for another process to claim. Returns one
    /// transition per released chat (`running` → `pending`, the worker's lease ended).
    pub async fn release_all(&self, worker_id: Uuid) -> Result<Vec<Transition>> {
        let mut conn = self.writer().acquire().await.db()?;
        release_worker(&mut conn, worker_id).await
    }

    /// Stale recovery as of `now`: `running` chats whose heartbeat is older than
    /// `stale_after` go back to `pending` with the worker cleared (the epoch is left for the
    /// next claim to bump); `requires_action` chats not updated for `stale_after` go to
    /// `error` with [`DYNAMIC_TOOL_TIMEOUT_MESSAGE`], and each of their pending dynamic
    /// tool calls gets an error result with that message in the same transaction. Each
    /// candidate is re-checked under its chat lock, one transaction per chat, so a
    /// heartbeat or submission racing the scan wins.
    pub async fn recover_stale(
        &self,
        now: Timestamp,
        stale_after: Duration,
    ) -> Result<RecoveredChats> {
        let now = timestamp_to_micros(now);
        let threshold = now.saturating_sub(micros_of(stale_after));
        let candidates = sqlx::query(
            "SELECT id, status FROM chats WHERE (status = $1 AND heartbeat_at < $3) \
             OR (status = $2 AND updated_at < $3) ORDER BY id",
        )
        .bind(ChatStatus::Running.as_str())
        .bind(ChatStatus::RequiresAction.as_str())
        .bind(threshold)
        .fetch_all(self.pool())
        .await
        .db()?;
        let mut recovered = RecoveredChats::default();
        for row in &candidates {
            let chat_id = get_uuid(row, "id")?;
            let status = ChatStatus::from_wire(&row.try_get::<String, _>("status").db()?);
            let mut tx = match self.begin_chat_tx(chat_id).await {
                Ok(tx) => tx,
                // Deleted since the scan: nothing to recover.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let result = recover_one(&mut tx, &status, threshold, now).await;
            if let Some(transition) = tx.finish(result).await? {
                recovered.transitions.push(transition);
            }
        }
        Ok(recovered)
    }
}

/// Every chat `worker_id` is running goes back to `pending` with its worker fields
/// cleared, in one statement on `conn`; one transition per chat (`running` → `pending`,
/// that worker's lease ended). Graceful release and the hand-back of a dead replica's
/// chats both do this.
pub(super) async fn release_worker(
    conn: &mut sqlx::AnyConnection,
    worker_id: Uuid,
) -> Result<Vec<Transition>> {
    let rows = sqlx::query(
        "UPDATE chats SET status = $2, worker_id = NULL, started_at = NULL, \
         heartbeat_at = NULL, updated_at = $4 WHERE worker_id = $1 AND status = $3 \
         RETURNING id, lease_epoch",
    )
    .bind(uuid_text(worker_id))
    .bind(ChatStatus::Pending.as_str())
    .bind(ChatStatus::Running.as_str())
    .bind(now_micros())
    .fetch_all(&mut *conn)
    .await
    .db()?;
    rows.iter()
        .map(|row| {
            let chat_id = get_uuid(row, "id")?;
            let mut t = Transition::unchanged(chat_id, ChatStatus::Running);
            t.ended_turn = Some(Lease {
                chat_id,
                worker_id,
                epoch: row.try_get("lease_epoch").db()?,
            });
            t.set_status(ChatStatus::Pending);
            Ok(t)
        })
        .collect()
}

/// Re-checks one recovery candidate under its chat lock and moves it; the transition when
/// it moved.
async fn recover_one(
    tx: &mut ChatTx,
    status: &ChatStatus,
    threshold: i64,
    now: i64,
) -> Result<Option<Transition>> {
    let chat_id = tx.chat_id();
    let chat = tx.locked_chat().await?;
    let mut t = chat.transition();
    match status {
        ChatStatus::Running => {
            let moved = sqlx::query(
                "UPDATE chats SET status = $2, worker_id = NULL, started_at = NULL, \
                 heartbeat_at = NULL, updated_at = $5 \
                 WHERE id = $1 AND status = $3 AND heartbeat_at < $4",
            )
            .bind(uuid_text(chat_id))
            .bind(ChatStatus::Pending.as_str())
            .bind(ChatStatus::Running.as_str())
            .bind(threshold)
            .bind(now)
            .execute(&mut *tx.conn())
            .await
            .db()?
            .rows_affected()
                > 0;
            if !moved {
                return Ok(None);
            }
            // The dead worker's lease ends; if it is a turn of this very process that
            // lost touch with the database, it stops.
            moved_to(&mut t, &chat, ChatStatus::Pending);
            Ok(Some(t))
        }
        ChatStatus::RequiresAction => {
            let moved = sqlx::query(
                "UPDATE chats SET status = $2, last_error = $5, worker_id = NULL, \
                 started_at = NULL, heartbeat_at = NULL, updated_at = $6 \
                 WHERE id = $1 AND status = $3 AND updated_at < $4",
            )
            .bind(uuid_text(chat_id))
            .bind(ChatStatus::Error.as_str())
            .bind(ChatStatus::RequiresAction.as_str())
            .bind(threshold)
            .bind(dynamic_tool_timeout_error()?)
            .bind(now)
            .execute(&mut *tx.conn())
            .await
            .db()?
            .rows_affected()
                > 0;
            if !moved {
                return Ok(None);
            }
            // Stale recovery: the unanswered calls get error results in the same transaction, so
            // the history never ends in calls without answers.
            t.messages =
                answer_pending_calls(tx.conn(), chat_id, now, DYNAMIC_TOOL_TIMEOUT_MESSAGE).await?;
            t.error = Some(ChatError::generic(DYNAMIC_TOOL_TIMEOUT_MESSAGE));
            moved_to(&mut t, &chat, ChatStatus::Error);
            Ok(Some(t))
        }
        _ => Ok(None),
    }
}

fn dynamic_tool_timeout_error() -> Result<String> {
    serde_json::to_string(&ChatError::generic(DYNAMIC_TOOL_TIMEOUT_MESSAGE))
        .map_err(|_| Error::new(ErrorKind::InvalidArgument, "error could not be encoded"))
}

impl ChatTx {
    /// Whether `lease` still entitles its worker to write to the locked chat (the fencing
    /// check of every worker write). [`ErrorKind::InvalidArgument`] when the lease is for
    /// another chat.
    pub async fn check_lease(&mut self, lease: &Lease) -> Result<LeaseState> {
        if lease.chat_id != self.chat_id() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "lease is for another chat than the locked one",
            ));
        }
        let row = sqlx::query("SELECT status, worker_id, lease_epoch FROM chats WHERE id = $1")
            .bind(uuid_text(lease.chat_id))
            .fetch_one(&mut *self.conn())
            .await
            .db()?;
        lease_state_of(&row, lease)
    }
}

/// The state of `lease` given the chat's `status`, `worker_id` and `lease_epoch`.
pub(super) fn lease_state_of(row: &sqlx::any::AnyRow, lease: &Lease) -> Result<LeaseState> {
    let status = ChatStatus::from_wire(&row.try_get::<String, _>("status").db()?);
    let worker = get_opt_uuid(row, "worker_id")?;
    let epoch: i64 = row.try_get("lease_epoch").db()?;
    Ok(lease_state_parts(&status, worker, epoch, lease))
}

/// The state of `lease` given the chat's status, worker and lease epoch.
pub(super) fn lease_state_parts(
    status: &ChatStatus,
    worker: Option<Uuid>,
    epoch: i64,
    lease: &Lease,
) -> LeaseState {
    if epoch != lease.epoch {
        return LeaseState::Lost;
    }
    match (status, worker) {
        (ChatStatus::Running, Some(w)) if w == lease.worker_id => LeaseState::Owned,
        (ChatStatus::Waiting, None) => LeaseState::Interrupted,
        _ => LeaseState::Lost,
    }
}
