//! Worker writes of a turn: step persistence (engine.md §4.6), retry state and the finish
//! routine (§2.1 steps 1–5). Each is one transaction under the chat lock, fenced by the
//! worker's [`Lease`].

use codersdk::{
    ChatError, ChatMessage, ChatMessagePart, ChatMessageRole, ChatMessageUsage, ChatQueuedMessage,
    ChatStatus, ChatStreamRetry, Uuid,
};

use super::chats::{insert_message_row, json_text, StepColumns};
use super::queue::{chat_state, load_queue, promote_in_tx};
use super::Store;
use super::{now_micros, uuid_text, ChatTx, Lease, LeaseState, MessageVisibility, NewMessage};
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

/// The committed facts of [`Store::persist_step`], for the engine to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct PersistedStep {
    /// The inserted messages in id order: the assistant message, then the tool results.
    pub messages: Vec<ChatMessage>,
    /// [`LeaseState::Owned`], or [`LeaseState::Interrupted`] when this was the partial step
    /// of an interrupted turn: the worker must then stop and finish.
    pub lease: LeaseState,
}

/// How a turn ended, for [`Store::finish_turn`] (§2.1 step 3).
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

/// The committed facts of [`Store::finish_turn`]. The engine publishes, in order: the
/// status, the promoted message (if any), then the queue (when a message was promoted).
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedTurn {
    /// The chat's status after the call (unchanged when nothing was written).
    pub status: ChatStatus,
    /// The queue head that auto-promotion turned into a user message.
    pub promoted: Option<ChatMessage>,
    /// The whole queue after the call, oldest first.
    pub queue: Vec<ChatQueuedMessage>,
    /// Whether anything was written. `false` when the lease was lost: the chat was claimed
    /// again, or an edit, promote, shutdown or recovery already moved it on.
    pub wrote: bool,
}

fn lease_lost(lease: &Lease) -> Error {
    Error::new(
        ErrorKind::LeaseLost,
        format!(
            "worker {} no longer holds chat {} (epoch {})",
            lease.worker_id, lease.chat_id, lease.epoch
        ),
    )
}

impl Store {
    /// Persists one step (§4.6) in one transaction under the chat lock: one assistant
    /// message (visibility `both`, with usage, cost, runtime, provider response id and
    /// model config) and one tool message per result (visibility `both`), and bumps
    /// `last_model_config_id` and `updated_at`.
    ///
    /// Allowed while the lease is [`LeaseState::Owned`] and also when it is
    /// [`LeaseState::Interrupted`], so an interrupted turn keeps its partial step. Otherwise
    /// (edit, promote, recovery, a later claim) nothing is written and the error is
    /// [`ErrorKind::LeaseLost`]: the worker must stop.
    ///
    /// Statements, for one assistant message and `n` tool results: `BEGIN`, one locking
    /// read that also checks the lease, `1 + n` inserts, one chat update, `COMMIT`.
    pub async fn persist_step(&self, lease: &Lease, step: Step) -> Result<PersistedStep> {
        let now = now_micros();
        let (mut tx, state) = self.begin_leased_tx(lease).await?;
        let result = persist_in_tx(&mut tx, lease, state, step, now).await;
        tx.finish(result).await
    }

    /// Locks the lease's chat and reads its lease state in the same statement (one round
    /// trip instead of two on the hot path of every step).
    async fn begin_leased_tx(&self, lease: &Lease) -> Result<(ChatTx, LeaseState)> {
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
        Ok((
            ChatTx {
                tx,
                chat_id: lease.chat_id,
            },
            state,
        ))
    }

    /// The finish routine of §2.1 (steps 1–5) in one transaction under the chat lock.
    ///
    /// Writes only while the lease is [`LeaseState::Owned`] or [`LeaseState::Interrupted`];
    /// otherwise the chat is left as it is (another worker owns it, or an edit, promote,
    /// shutdown or recovery moved it to `pending` or on) and [`FinishedTurn::wrote`] is
    /// `false`. When writing, the target status follows `outcome`; a `waiting` target of a
    /// non-archived chat with a non-empty queue promotes the queue head (lowest id) to a
    /// user message and becomes `pending`. The worker fields and the retry state are
    /// cleared and the epoch is bumped, which retires the lease: finishing is the lease's
    /// last write, and anything a stale copy of it tries later is refused. `last_error` is set for
    /// [`TurnOutcome::Failed`] and cleared otherwise, and `updated_at` is bumped.
    pub async fn finish_turn(&self, lease: &Lease, outcome: TurnOutcome) -> Result<FinishedTurn> {
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
    sqlx::query(
        "UPDATE chats SET updated_at = $2, \
         last_model_config_id = COALESCE($3, last_model_config_id) WHERE id = $1",
    )
    .bind(uuid_text(chat_id))
    .bind(now)
    .bind(step.model_config_id.map(uuid_text))
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(PersistedStep {
        messages,
        lease: state,
    })
}

async fn finish_in_tx(
    tx: &mut ChatTx,
    lease: &Lease,
    outcome: TurnOutcome,
    now: i64,
) -> Result<FinishedTurn> {
    let state = tx.check_lease(lease).await?;
    let chat_id = tx.chat_id();
    let (status, archived) = chat_state(tx.conn(), chat_id).await?;
    if state == LeaseState::Lost {
        // §2.1 steps 1–2: another worker owns the chat, or it was already moved on
        // (`pending` after edit, promote, shutdown or recovery): leave it untouched.
        return Ok(FinishedTurn {
            status,
            promoted: None,
            queue: load_queue(tx.conn(), chat_id).await?,
            wrote: false,
        });
    }
    let (target, last_error) = match outcome {
        TurnOutcome::Completed | TurnOutcome::Interrupted => (ChatStatus::Waiting, None),
        TurnOutcome::Shutdown => (ChatStatus::Pending, None),
        TurnOutcome::Failed(error) => (
            ChatStatus::Error,
            Some(json_text(serde_json::to_string(&error), "error")?),
        ),
        TurnOutcome::RequiresAction => (ChatStatus::RequiresAction, None),
    };
    let head: Option<i64> = if target == ChatStatus::Waiting && !archived {
        sqlx::query_scalar(
            "SELECT id FROM chat_queued_messages WHERE chat_id = $1 ORDER BY id LIMIT 1",
        )
        .bind(uuid_text(chat_id))
        .fetch_optional(&mut *tx.conn())
        .await
        .db()?
    } else {
        None
    };
    let (status, promoted) = match head {
        Some(id) => {
            // Auto-promotion (§2.1 step 4): the shared promote path sets `pending` and
            // clears the worker fields and `last_error`.
            let message = promote_in_tx(tx, id, now).await?;
            sqlx::query(
                "UPDATE chats SET retry_state = NULL, lease_epoch = lease_epoch + 1 WHERE id = $1",
            )
            .bind(uuid_text(chat_id))
            .execute(&mut *tx.conn())
            .await
            .db()?;
            (ChatStatus::Pending, Some(message))
        }
        None => {
            sqlx::query(
                "UPDATE chats SET status = $2, last_error = $3, worker_id = NULL, \
                 lease_epoch = lease_epoch + 1, started_at = NULL, heartbeat_at = NULL, \
                 retry_state = NULL, updated_at = $4 \
                 WHERE id = $1",
            )
            .bind(uuid_text(chat_id))
            .bind(target.as_str())
            .bind(last_error)
            .bind(now)
            .execute(&mut *tx.conn())
            .await
            .db()?;
            (target, None)
        }
    };
    Ok(FinishedTurn {
        status,
        promoted,
        queue: load_queue(tx.conn(), chat_id).await?,
        wrote: true,
    })
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
