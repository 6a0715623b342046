//! Worker writes of a turn: step persistence, retry state and the finish
//! routine (steps 1–5). Each is one transaction under the chat lock, fenced by the
//! worker's [`Lease`].

use codersdk::{
    ChatError, ChatMessagePart, ChatMessageRole, ChatMessageUsage, ChatStatus, ChatStreamRetry,
    Uuid,
};
use sqlx::Row;

use super::changes::{load_queue, pending_calls, promote_known_head, QUEUE_EMPTY_GUARD};
use super::chats::{insert_message_row, json_text, StepColumns};
use super::{now_micros, uuid_text, ChatTx, Lease, LeaseState, MessageVisibility, NewMessage};
use super::{Store, Transition};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// One model step to persist with [`Store::persist_step`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// The assistant message: text, reasoning and tool-call parts, plus provider-executed
    /// tool results kept inline.
    pub assistant_parts: Vec<ChatMessagePart>,
    /// Token usage of the step, with the model's context limit.
    pub usage: Option<ChatMessageUsage>,
    /// Cost of the step in micro-dollars, when the model config has pricing.
    pub total_cost_micros: Option<i64>,
    /// Wall time of the step.
    pub runtime_ms: i64,
    /// The provider's response id (OpenAI `store=true` only).
    pub provider_response_id: Option<String>,
    /// Model config the step ran with; also becomes the chat's last model.
    pub model_config_id: Option<Uuid>,
    /// Content of one tool-role message per locally executed result, in call order.
    pub tool_results: Vec<Vec<ChatMessagePart>>,
}

/// The answer of [`Store::persist_step`].
#[derive(Debug, Clone, PartialEq)]
pub struct PersistedStep {
    /// [`LeaseState::Owned`], or [`LeaseState::Interrupted`] when this was the partial step
    /// of an interrupted turn: the worker must then stop and finish.
    pub lease: LeaseState,
    /// The committed transition: the inserted messages in id order (the assistant
    /// message, then the tool results), which supersede the step's preview; the status is
    /// unchanged.
    pub transition: Transition,
}

/// How a turn ended, for [`Store::finish_turn`] (step 3).
#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    /// The model finished without pending tool calls: `waiting` (or `pending` when the
    /// queue head is promoted).
    Completed,
    /// The turn was cancelled by an interrupt: like [`TurnOutcome::Completed`].
    Interrupted,
    /// The process is shutting down (also a completion during shutdown): `pending`, for
    /// another process to claim.
    Shutdown,
    /// Unrecoverable error: `error` with this `last_error`.
    Failed(ChatError),
    /// The last step has dynamic (client) tool calls: `requires_action`.
    RequiresAction,
}

pub(super) fn lease_lost(lease: &Lease) -> Error {
    Error::new(
        ErrorKind::LeaseLost,
        format!(
            "worker {} no longer holds chat {} (epoch {})",
            lease.worker_id, lease.chat_id, lease.epoch
        ),
    )
}

impl Store {
    /// Persists one step in one transaction under the chat lock: one assistant
    /// message (visibility `both`, with usage, cost, runtime, provider response id and
    /// model config) and one tool message per result (visibility `both`), and bumps
    /// `last_model_config_id` and `updated_at`.
    ///
    /// Allowed while the lease is [`LeaseState::Owned`] and also when it is
    /// [`LeaseState::Interrupted`], so an interrupted turn keeps its partial step. Otherwise
    /// (edit, promote, recovery, a later claim) nothing is written and the error is
    /// [`ErrorKind::LeaseLost`]: the worker must stop.
    ///
    /// Statements, for one assistant message and `n` tool results: `BEGIN`, the chat update
    /// that also locks the row and returns the lease, `1 + n` inserts, `COMMIT`.
    pub async fn persist_step(&self, lease: &Lease, step: Step) -> Result<PersistedStep> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        // The chat update comes first and is the locking statement: it returns the lease
        // columns (which it does not change), so the lock, the lease check and the update
        // are one round trip; a lost lease rolls the update back.
        let row = sqlx::query(
            "UPDATE chats SET updated_at = $2, \
             last_model_config_id = COALESCE($3, last_model_config_id) WHERE id = $1 \
             RETURNING status, worker_id, lease_epoch",
        )
        .bind(uuid_text(lease.chat_id))
        .bind(now)
        .bind(step.model_config_id.map(uuid_text))
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        let Some(row) = row else {
            tx.rollback().await.db()?;
            return Err(super::chat_not_found(lease.chat_id));
        };
        let state = super::leases::lease_state_of(&row, lease)?;
        let status = ChatStatus::from_wire(&row.try_get::<String, _>("status").db()?);
        let mut tx = ChatTx {
            tx,
            chat_id: lease.chat_id,
            locked: None,
        };
        let result = persist_in_tx(&mut tx, lease, state, status, step, now).await;
        tx.finish(result).await
    }

    /// Locks the lease's chat and reads its lease state in the same statement (one round
    /// trip instead of two on the hot path of every step).
    pub(super) async fn begin_leased_tx(
        &self,
        lease: &Lease,
    ) -> Result<(ChatTx, LeaseState, ChatStatus)> {
        let mut tx = self.begin_write().await?;
        let sql = match self.dialect() {
            super::Dialect::Sqlite => {
                "SELECT status, worker_id, lease_epoch FROM chats WHERE id = $1"
            }
            super::Dialect::Postgres => {
                "SELECT status, worker_id, lease_epoch FROM chats WHERE id = $1 FOR UPDATE"
            }
        };
        let row = sqlx::query(sql)
            .bind(uuid_text(lease.chat_id))
            .fetch_optional(&mut *tx)
            .await
            .db()?;
        let Some(row) = row else {
            tx.rollback().await.db()?;
            return Err(super::chat_not_found(lease.chat_id));
        };
        let state = super::leases::lease_state_of(&row, lease)?;
        let status = ChatStatus::from_wire(&row.try_get::<String, _>("status").db()?);
        Ok((
            ChatTx {
                tx,
                chat_id: lease.chat_id,
                locked: None,
            },
            state,
            status,
        ))
    }

    /// The finish routine (lease check, target status, queue promotion, worker cleared, epoch
    /// bumped) in one transaction under the chat lock.
    ///
    /// Writes only while the lease is [`LeaseState::Owned`] or [`LeaseState::Interrupted`];
    /// otherwise the chat is left as it is (another worker owns it, or an edit, promote,
    /// shutdown or recovery moved it to `pending` or on) and the transition has written
    /// nothing ([`Transition::changed`] is false). When writing, the target status follows `outcome`; a `waiting` target of a
    /// non-archived chat with a non-empty queue promotes the queue head (lowest id) to a
    /// user message and becomes `pending`. The worker fields and the retry state are
    /// cleared and the epoch is bumped, which retires the lease: finishing is the lease's
    /// last write, and anything a stale copy of it tries later is refused. `last_error` is set for
    /// [`TurnOutcome::Failed`] and cleared otherwise, and `updated_at` is bumped.
    ///
    /// The transition carries the status, the error of a failed turn, the pending client
    /// tool calls of a `requires_action` one (read in the transaction), and the promoted
    /// message with the queue after it.
    pub async fn finish_turn(&self, lease: &Lease, outcome: TurnOutcome) -> Result<Transition> {
        let now = now_micros();
        let mut tx = self.begin_chat_tx(lease.chat_id).await?;
        let result = finish_in_tx(&mut tx, lease, outcome, now).await;
        tx.finish(result).await
    }

    /// Stores the retry state of the running turn (`Some`) or clears it (`None`), so a
    /// stream snapshot can show it. Only while the lease is [`LeaseState::Owned`]; otherwise
    /// nothing is written and the error is [`ErrorKind::LeaseLost`]. `updated_at` is left
    /// alone: retry state is transient and must not reorder the chat list.
    pub async fn record_retry(&self, lease: &Lease, retry: Option<ChatStreamRetry>) -> Result<()> {
        let encoded = retry
            .as_ref()
            .map(|r| json_text(serde_json::to_string(r), "retry state"))
            .transpose()?;
        let mut tx = self.begin_chat_tx(lease.chat_id).await?;
        let result = record_retry_in_tx(&mut tx, lease, encoded).await;
        tx.finish(result).await
    }
}

async fn persist_in_tx(
    tx: &mut ChatTx,
    lease: &Lease,
    state: LeaseState,
    status: ChatStatus,
    step: Step,
    now: i64,
) -> Result<PersistedStep> {
    if state == LeaseState::Lost {
        return Err(lease_lost(lease));
    }
    let chat_id = tx.chat_id();
    let conn = tx.conn();
    let columns = StepColumns {
        total_cost_micros: step.total_cost_micros,
        runtime_ms: Some(step.runtime_ms),
        provider_response_id: step.provider_response_id,
        ..StepColumns::default()
    };
    let mut messages = Vec::with_capacity(step.tool_results.len().saturating_add(1));
    // Inserting with the model config also moves the chat's `last_model_config_id`.
    let assistant = NewMessage {
        role: ChatMessageRole::Assistant,
        parts: step.assistant_parts,
        visibility: MessageVisibility::Both,
        created_by: None,
        model_config_id: step.model_config_id,
        usage: step.usage,
    };
    messages.push(insert_message_row(conn, chat_id, now, assistant, &columns).await?);
    let no_columns = StepColumns::default();
    for parts in step.tool_results {
        let tool = NewMessage {
            role: ChatMessageRole::Tool,
            parts,
            visibility: MessageVisibility::Both,
            created_by: None,
            model_config_id: None,
            usage: None,
        };
        messages.push(insert_message_row(conn, chat_id, now, tool, &no_columns).await?);
    }
    let mut transition = Transition::unchanged(chat_id, status);
    transition.messages = messages;
    // The durable step supersedes the preview of the parts that streamed it.
    transition.preview_reset = true;
    Ok(PersistedStep {
        lease: state,
        transition,
    })
}

async fn finish_in_tx(
    tx: &mut ChatTx,
    lease: &Lease,
    outcome: TurnOutcome,
    now: i64,
) -> Result<Transition> {
    if lease.chat_id != tx.chat_id() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "lease is for another chat than the locked one",
        ));
    }
    let chat_id = tx.chat_id();
    // The lock read the lease columns: no second read.
    let chat = tx.locked_chat().await?;
    let state = chat.lease_state(lease);
    let mut t = chat.transition();
    if state == LeaseState::Lost {
        // Another worker owns the chat, or it was already moved on
        // (`pending` after edit, promote, shutdown or recovery): leave it untouched.
        return Ok(t);
    }
    let (target, error) = match outcome {
        TurnOutcome::Completed | TurnOutcome::Interrupted => (ChatStatus::Waiting, None),
        TurnOutcome::Shutdown => (ChatStatus::Pending, None),
        TurnOutcome::Failed(error) => (ChatStatus::Error, Some(error)),
        TurnOutcome::RequiresAction => (ChatStatus::RequiresAction, None),
    };
    let last_error = error
        .as_ref()
        .map(|e| json_text(serde_json::to_string(e), "error"))
        .transpose()?;
    // Auto-promotion (step 4) applies to a `waiting` target of a chat that is not archived.
    // The status update is then guarded by an empty queue: a statement run under the lock
    // sees every queue change committed before it (a PostgreSQL locking read that waited
    // would not), and the common case — nothing queued — costs no read of the queue.
    let may_promote = target == ChatStatus::Waiting && !chat.archived;
    let guard = if may_promote { QUEUE_EMPTY_GUARD } else { "" };
    let sql = format!(
        "UPDATE chats SET status = $2, last_error = $3, worker_id = NULL, \
         lease_epoch = lease_epoch + 1, started_at = NULL, heartbeat_at = NULL, \
         retry_state = NULL, compaction_requested = 0, updated_at = $4 \
         WHERE id = $1{guard}"
    );
    let written = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid_text(chat_id))
        .bind(target.as_str())
        .bind(last_error)
        .bind(now)
        .execute(&mut *tx.conn())
        .await
        .db()?
        .rows_affected()
        > 0;
    if written {
        t.error = error;
        if target == ChatStatus::RequiresAction {
            t.action_required = Some(pending_calls(tx.conn(), chat_id).await?);
        }
        t.set_status(target);
    } else {
        // A message waits in the queue: the shared promote path sets `pending` and clears
        // the worker fields and `last_error`.
        let head = tx.queue_state().await?.head;
        if !promote_known_head(tx.conn(), &chat, &mut t, head, now).await? {
            // Nothing changes the queue while the lock is held; rolled back, the finish is
            // retried (FINISH_ATTEMPTS) and at worst left to stale recovery.
            return Err(Error::new(
                ErrorKind::Database,
                "the queue changed under the chat lock",
            ));
        }
        let conn = tx.conn();
        sqlx::query(
            "UPDATE chats SET retry_state = NULL, compaction_requested = 0, \
             lease_epoch = lease_epoch + 1 WHERE id = $1",
        )
        .bind(uuid_text(chat_id))
        .execute(&mut *conn)
        .await
        .db()?;
        t.queue = Some(load_queue(conn, chat_id).await?);
    }
    // The worker finishing is the lease's holder: no other turn ended.
    t.ended_turn = None;
    Ok(t)
}

async fn record_retry_in_tx(tx: &mut ChatTx, lease: &Lease, encoded: Option<String>) -> Result<()> {
    if tx.check_lease(lease).await? != LeaseState::Owned {
        return Err(lease_lost(lease));
    }
    sqlx::query("UPDATE chats SET retry_state = $2 WHERE id = $1")
        .bind(uuid_text(tx.chat_id()))
        .bind(encoded)
        .execute(&mut *tx.conn())
        .await
        .db()?;
    Ok(())
}
