//! Sending messages and the per-chat queue.

use codersdk::{
    ChatBusyBehavior, ChatMessage, ChatMessagePart, ChatMessageRole, ChatPlanMode,
    ChatQueuedMessage, ChatStatus, Uuid, CURRENT_CONTENT_VERSION,
};
use sqlx::AnyConnection;

use super::changes::{
    answer_pending_calls, chat_archived, load_queue, move_to_waiting, moved, promote, promote_head,
    queued_not_found, set_pending_if_queue_empty, TOOL_INTERRUPTED_MESSAGE,
};
use super::chats::{content_text, insert_message, json_text};
use super::{now_micros, timestamp_from_micros, uuid_text};
use super::{ChatTx, MessageVisibility, NewMessage, Store, Transition};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Most messages one chat's queue holds; sending one more while the chat is busy fails with
/// [`ErrorKind::QueueFull`] (HTTP 429).
pub const MAX_QUEUED_MESSAGES: i64 = 20;

/// A user message for [`Store::send_message`]. The caller has validated the parts, checked
/// the usage limit and resolved the model (steps 2–4); the store applies the busy rules.
#[derive(Debug, Clone, PartialEq)]
pub struct SendMessage {
    /// Content parts.
    pub parts: Vec<ChatMessagePart>,
    /// Author.
    pub created_by: Option<Uuid>,
    /// Resolved model config; when inserted it also becomes the chat's last model.
    pub model_config_id: Option<Uuid>,
    /// What to do when the chat is busy.
    pub busy_behavior: ChatBusyBehavior,
    /// Plan mode set with the message: `Some(true)` enters it, `Some(false)` leaves it,
    /// `None` keeps it. Applied in the send's transaction whether the message is inserted
    /// or queued, so the next turn that starts runs in the new mode.
    pub plan_mode: Option<bool>,
    /// When present, the chat's new MCP server selection (replacing the old one), applied
    /// like `plan_mode`. The caller has checked that the ids name enabled MCP server
    /// configurations; the store keeps what it is given.
    pub mcp_server_ids: Option<Vec<Uuid>>,
}

/// What [`Store::send_message`] did with the message.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// The chat was idle: the message was inserted and the chat set to `pending`.
    Inserted(ChatMessage),
    /// The chat was busy (or its queue non-empty): the message was queued.
    Queued {
        /// The new queue entry. When the send also promoted the queue head (see
        /// [`Transition::user_message`]) this entry may already be history.
        queued: ChatQueuedMessage,
        /// `busy_behavior` was `interrupt` and the chat's status changed: a `running` turn
        /// was set to `waiting`, or a `requires_action` or `error` chat was set to
        /// `waiting` and its queue head promoted.
        interrupted: bool,
    },
}

/// The answer of [`Store::send_message`]: what happened to the message, and what the
/// transaction committed for the engine to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct SendResult {
    /// What happened to the message.
    pub outcome: SendOutcome,
    /// The committed transition: status after the send (`pending` when inserted or when an
    /// `interrupt` send promoted the queue head, `waiting` when it interrupted a running
    /// turn, else unchanged); the synthetic [`TOOL_INTERRUPTED_MESSAGE`] results and the
    /// promoted message of an `interrupt` send over `requires_action` or `error`; the
    /// inserted message; the whole queue when the message was queued.
    pub transition: Transition,
}

/// The answer of [`Store::promote_queued`].
#[derive(Debug, Clone, PartialEq)]
pub struct Promoted {
    /// The user message the queue entry became.
    pub message: ChatMessage,
    /// The committed transition: synthetic [`TOOL_INTERRUPTED_MESSAGE`] results written
    /// first for the pending dynamic tool calls when the chat was `requires_action` (so
    /// the history stays well-formed), the message, the queue after the
    /// promotion and the status `pending`.
    pub transition: Transition,
}

impl Store {
    /// Sends a user message following the busy rules (idle: start a turn; busy: queue or
    /// interrupt, as the request asks), in one transaction
    /// under the chat lock:
    ///
    /// - archived chat: [`ErrorKind::InvalidArgument`] (HTTP 400);
    /// - busy (status `running`, `pending` or `requires_action`, or a non-empty queue, which
    ///   keeps FIFO order): the message is queued, or [`ErrorKind::QueueFull`] (HTTP 429)
    ///   when the queue holds [`MAX_QUEUED_MESSAGES`]. With `interrupt`: a `running` chat
    ///   goes to `waiting` with its worker cleared and its epoch kept (the worker persists
    ///   its partial step and its finish routine promotes the queue head); a
    ///   `requires_action` chat gets a [`TOOL_INTERRUPTED_MESSAGE`] error result for every
    ///   pending dynamic call and, like an `error` chat, has its queue head promoted at once
    ///   (status `pending`), since no worker will; `pending` (an acquired run that has not
    ///   started must not be lost) and `waiting` are left as they are;
    /// - idle: the message is inserted (visibility `both`), the chat goes to `pending` and
    ///   its `last_error` is cleared.
    ///
    /// [`ErrorKind::NotFound`] when the chat does not exist.
    pub async fn send_message(&self, chat_id: Uuid, send: SendMessage) -> Result<SendResult> {
        self.send_message_checked(chat_id, None, send).await
    }

    /// [`Store::send_message`] to a chat that must belong to `owner`: another user's chat
    /// is [`ErrorKind::NotFound`], refused before anything is written. The ownership check
    /// rides on the locking statement, so a send needs no separate read of the chat.
    pub async fn send_message_as(
        &self,
        chat_id: Uuid,
        owner: Uuid,
        send: SendMessage,
    ) -> Result<SendResult> {
        self.send_message_checked(chat_id, Some(owner), send).await
    }

    async fn send_message_checked(
        &self,
        chat_id: Uuid,
        owner: Option<Uuid>,
        send: SendMessage,
    ) -> Result<SendResult> {
        let content = content_text(&send.parts)?;
        let now = now_micros();
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = send_in_tx(&mut tx, owner, send, content, now).await;
        tx.finish(result).await
    }

    /// The chat's queue, oldest first. [`ErrorKind::NotFound`] when the chat does not exist.
    pub async fn list_queue(&self, chat_id: Uuid) -> Result<Vec<ChatQueuedMessage>> {
        let mut conn = self.pool().acquire().await.db()?;
        super::ensure_chat_exists(&mut conn, chat_id).await?;
        load_queue(&mut conn, chat_id).await
    }

    /// Deletes queue entry `id` of the chat; the transition carries the queue left,
    /// oldest first. [`ErrorKind::NotFound`] when the chat or the entry does not exist.
    pub async fn delete_queued(&self, chat_id: Uuid, id: i64) -> Result<Transition> {
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = delete_in_tx(&mut tx, id).await;
        tx.finish(result).await
    }

    /// Promotes queue entry `id` (classic): deletes it, inserts it as a user message
    /// (visibility `both`) and sets the chat `pending` with its worker cleared, so a running
    /// worker stops and drops its partial step. From `requires_action`, every pending
    /// dynamic call first gets a [`TOOL_INTERRUPTED_MESSAGE`] error result.
    /// [`ErrorKind::InvalidArgument`] (HTTP 400) when the chat is archived;
    /// [`ErrorKind::NotFound`] when the chat or the entry does not exist.
    pub async fn promote_queued(&self, chat_id: Uuid, id: i64) -> Result<Promoted> {
        let now = now_micros();
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = promote_checked_in_tx(&mut tx, id, now).await;
        tx.finish(result).await
    }
}

async fn send_in_tx(
    tx: &mut ChatTx,
    owner: Option<Uuid>,
    send: SendMessage,
    content: String,
    now: i64,
) -> Result<SendResult> {
    let chat_id = tx.chat_id();
    let chat = tx.locked_chat().await?;
    if owner.is_some_and(|owner| owner != chat.owner_id) {
        return Err(super::chat_not_found(chat_id));
    }
    let conn = tx.conn();
    if chat.archived {
        return Err(chat_archived(chat_id));
    }
    apply_chat_settings(
        conn,
        chat_id,
        send.plan_mode,
        send.mcp_server_ids.as_deref(),
    )
    .await?;
    let mut t = chat.transition();
    // An idle chat with an empty queue starts a turn. The queue is checked by the status
    // update itself: a statement run under the lock sees every queue change committed
    // before it (a PostgreSQL locking read that waited would not).
    if !chat.status.is_busy() && set_pending_if_queue_empty(conn, chat_id, now).await? {
        let message = insert_message(
            conn,
            chat_id,
            now,
            NewMessage {
                role: ChatMessageRole::User,
                parts: send.parts,
                visibility: MessageVisibility::Both,
                created_by: send.created_by,
                model_config_id: send.model_config_id,
                usage: None,
            },
        )
        .await?;
        t.messages.push(message.clone());
        // The chat was idle: no turn runs it, so none is ended (a worker that claims the
        // chat before this is published runs this very message).
        moved(&mut t, &chat, ChatStatus::Pending);
        return Ok(SendResult {
            outcome: SendOutcome::Inserted(message),
            transition: t,
        });
    }
    // Busy, or a message waits in the queue (FIFO): this one queues too.
    let queued_count = tx.queue_state().await?.count;
    let conn = tx.conn();
    if queued_count >= MAX_QUEUED_MESSAGES {
        return Err(Error::new(ErrorKind::QueueFull, "Message queue is full."));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO chat_queued_messages (chat_id, model_config_id, content, \
         content_version, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(uuid_text(chat_id))
    .bind(send.model_config_id.map(uuid_text))
    .bind(content)
    .bind(i32::from(CURRENT_CONTENT_VERSION))
    .bind(send.created_by.map(uuid_text))
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .db()?;
    let interrupted = send.busy_behavior == ChatBusyBehavior::Interrupt
        && match chat.status {
            // The worker sees `waiting`, persists its partial step and its finish
            // routine promotes the queue head.
            ChatStatus::Running => {
                move_to_waiting(conn, &chat, &mut t, now).await?;
                true
            }
            // No worker will finish these, so the queue head (the new message when the
            // queue was empty) is promoted now; a waiting chat with a queue would
            // otherwise never run it.
            ChatStatus::RequiresAction | ChatStatus::Error => {
                move_to_waiting(conn, &chat, &mut t, now).await?;
                promote_head(conn, &chat, &mut t, now).await?;
                true
            }
            // `pending` must not be overwritten: an acquired run would be lost.
            _ => false,
        };
    let queued = ChatQueuedMessage {
        id,
        chat_id,
        model_config_id: send.model_config_id,
        content: send.parts,
        created_at: timestamp_from_micros(now)?,
    };
    t.queue = Some(load_queue(conn, chat_id).await?);
    Ok(SendResult {
        outcome: SendOutcome::Queued {
            queued,
            interrupted,
        },
        transition: t,
    })
}

/// Applies the chat settings a message carries (plan mode, MCP selection) to the locked
/// chat; `None` keeps a setting.
async fn apply_chat_settings(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    plan_mode: Option<bool>,
    mcp_server_ids: Option<&[Uuid]>,
) -> Result<()> {
    if let Some(plan) = plan_mode {
        let mode = if plan {
            ChatPlanMode::Plan.as_str()
        } else {
            ""
        };
        sqlx::query("UPDATE chats SET plan_mode = $2 WHERE id = $1")
            .bind(uuid_text(chat_id))
            .bind(mode)
            .execute(&mut *conn)
            .await
            .db()?;
    }
    if let Some(ids) = mcp_server_ids {
        let ids = json_text(serde_json::to_string(ids), "mcp_server_ids")?;
        sqlx::query("UPDATE chats SET mcp_server_ids = $2 WHERE id = $1")
            .bind(uuid_text(chat_id))
            .bind(ids)
            .execute(&mut *conn)
            .await
            .db()?;
    }
    Ok(())
}

async fn delete_in_tx(tx: &mut ChatTx, id: i64) -> Result<Transition> {
    let chat_id = tx.chat_id();
    let chat = tx.locked_chat().await?;
    let deleted = sqlx::query("DELETE FROM chat_queued_messages WHERE chat_id = $1 AND id = $2")
        .bind(uuid_text(chat_id))
        .bind(id)
        .execute(&mut *tx.conn())
        .await
        .db()?
        .rows_affected();
    if deleted == 0 {
        return Err(queued_not_found(chat_id, id));
    }
    let mut t = chat.transition();
    t.queue = Some(load_queue(tx.conn(), chat_id).await?);
    Ok(t)
}

async fn promote_checked_in_tx(tx: &mut ChatTx, id: i64, now: i64) -> Result<Promoted> {
    let chat_id = tx.chat_id();
    let chat = tx.locked_chat().await?;
    let conn = tx.conn();
    if chat.archived {
        return Err(chat_archived(chat_id));
    }
    let mut t = chat.transition();
    // A user message may not follow unanswered tool calls (general rules).
    if chat.status == ChatStatus::RequiresAction {
        let results = answer_pending_calls(conn, chat_id, now, TOOL_INTERRUPTED_MESSAGE).await?;
        t.messages.extend(results);
    }
    let message = promote(conn, &chat, &mut t, id, now).await?;
    t.queue = Some(load_queue(conn, chat_id).await?);
    Ok(Promoted {
        message,
        transition: t,
    })
}
