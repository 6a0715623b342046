//! Context compaction's write: the boundary rows of a summarized chat, in one transaction
//! fenced by the turn's lease (engine.md §4.7).

use codersdk::{ChatMessagePart, ChatMessageRole, ChatStatus, Uuid};

use super::chats::{insert_message_row, StepColumns};
use super::turns::lease_lost;
use super::{now_micros, uuid_text, Lease, LeaseState, MessageVisibility, NewMessage, Store};
use super::{ChatTx, Transition};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// A summary to persist with [`Store::persist_compaction`].
#[derive(Debug, Clone, PartialEq)]
pub struct Compaction {
    /// Text of the hidden summary row: what the model reads instead of everything before
    /// it.
    pub summary_prompt: String,
    /// The `chat_summarized` tool call the user sees (an assistant part).
    pub tool_call: ChatMessagePart,
    /// Its result (a tool part) with the summary and the measurements.
    pub tool_result: ChatMessagePart,
    /// The model config that wrote the summary.
    pub model_config_id: Option<Uuid>,
    /// User messages the summary left out because no assistant answered them yet: the
    /// content of each, and who wrote it. They are written again after the boundary, so
    /// the model still reads them.
    pub unanswered: Vec<(Vec<ChatMessagePart>, Option<Uuid>)>,
}

/// Message of the 409 for a manual compaction of a chat that is not idle.
pub const COMPACTION_BUSY_MESSAGE: &str =
    "The chat is busy: it can be compacted when it is waiting for you or stopped on an error.";

impl Store {
    /// Asks for a manual compaction: an idle chat (`waiting` or `error`, not archived)
    /// becomes `pending` with the request recorded, and the worker that claims it
    /// summarizes the conversation regardless of the threshold. One transaction under the
    /// chat lock. [`crate::ErrorKind::Conflict`] with [`COMPACTION_BUSY_MESSAGE`] otherwise;
    /// [`crate::ErrorKind::NotFound`] when the chat does not exist.
    pub async fn request_compaction(&self, chat_id: Uuid) -> Result<Transition> {
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = request_in_tx(&mut tx).await;
        tx.finish(result).await
    }

    /// Writes a compaction in one transaction under the chat lock, while `lease` is still
    /// [`LeaseState::Owned`]. An interrupt meanwhile writes nothing and answers `None` (the
    /// worker then finishes as interrupted); an edit, promote or recovery writes nothing
    /// and is [`crate::ErrorKind::LeaseLost`]:
    ///
    /// 1. the summary as a **user row, visibility `model`, compressed** — the new prompt
    ///    boundary ([`Store::prompt_history`] starts there);
    /// 2. an **assistant row, visibility `user`, compressed** with the `chat_summarized`
    ///    tool call;
    /// 3. a **tool row, visibility `both`, compressed** with its result;
    /// 4. each unanswered user message again, **uncompressed, visibility `model`**.
    ///
    /// `updated_at` moves (messages were inserted); `last_model_config_id` does not. The
    /// transition carries rows 2 and 3 — the ones a client shows — and resets the preview
    /// (the "Summarizing…" part they replace).
    pub async fn persist_compaction(
        &self,
        lease: &Lease,
        compaction: Compaction,
    ) -> Result<Option<Transition>> {
        let (mut tx, state, status) = self.begin_leased_tx(lease).await?;
        let result = match state {
            LeaseState::Owned => compaction_in_tx(&mut tx, status, compaction)
                .await
                .map(Some),
            LeaseState::Interrupted => Ok(None),
            LeaseState::Lost => Err(lease_lost(lease)),
        };
        tx.finish(result).await
    }
}

async fn compaction_in_tx(
    tx: &mut ChatTx,
    status: codersdk::ChatStatus,
    compaction: Compaction,
) -> Result<Transition> {
    let chat_id = tx.chat_id();
    let now = now_micros();
    let conn = tx.conn();
    let compressed = StepColumns {
        compressed: true,
        ..StepColumns::default()
    };
    let row = |role, parts, visibility, model_config_id, created_by| NewMessage {
        role,
        parts,
        visibility,
        created_by,
        model_config_id,
        usage: None,
    };
    let summary = row(
        ChatMessageRole::User,
        vec![ChatMessagePart::text(compaction.summary_prompt)],
        MessageVisibility::Model,
        None,
        None,
    );
    insert_message_row(conn, chat_id, now, summary, &compressed).await?;
    let call = row(
        ChatMessageRole::Assistant,
        vec![compaction.tool_call],
        MessageVisibility::User,
        compaction.model_config_id,
        None,
    );
    let call = insert_message_row(conn, chat_id, now, call, &compressed).await?;
    let result = row(
        ChatMessageRole::Tool,
        vec![compaction.tool_result],
        MessageVisibility::Both,
        None,
        None,
    );
    let result = insert_message_row(conn, chat_id, now, result, &compressed).await?;
    let plain = StepColumns::default();
    for (parts, created_by) in compaction.unanswered {
        let again = row(
            ChatMessageRole::User,
            parts,
            MessageVisibility::Model,
            None,
            created_by,
        );
        insert_message_row(conn, chat_id, now, again, &plain).await?;
    }
    sqlx::query("UPDATE chats SET updated_at = $2, compaction_requested = 0 WHERE id = $1")
        .bind(uuid_text(chat_id))
        .bind(now)
        .execute(&mut *conn)
        .await
        .db()?;
    let mut transition = Transition::unchanged(chat_id, status);
    transition.messages = vec![call, result];
    transition.preview_reset = true;
    Ok(transition)
}

async fn request_in_tx(tx: &mut ChatTx) -> Result<Transition> {
    let chat_id = tx.chat_id();
    let chat = tx.locked_chat().await?;
    let idle = matches!(chat.status, ChatStatus::Waiting | ChatStatus::Error);
    if !idle || chat.archived {
        return Err(Error::new(ErrorKind::Conflict, COMPACTION_BUSY_MESSAGE));
    }
    sqlx::query(
        "UPDATE chats SET status = $2, compaction_requested = 1, last_error = NULL, \
         updated_at = $3 WHERE id = $1",
    )
    .bind(uuid_text(chat_id))
    .bind(ChatStatus::Pending.as_str())
    .bind(now_micros())
    .execute(&mut *tx.conn())
    .await
    .db()?;
    let mut t = chat.transition();
    t.set_status(ChatStatus::Pending);
    Ok(t)
}
