//! Sending messages and the per-chat queue (engine.md §6.1–6.3).

use codersdk::{
    decode_message_content, ChatBusyBehavior, ChatMessage, ChatMessagePart, ChatMessageRole,
    ChatPlanMode, ChatQueuedMessage, ChatStatus, Uuid, CURRENT_CONTENT_VERSION,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::actions::{
    answer_pending_calls, move_to_waiting, promote_head, TOOL_INTERRUPTED_MESSAGE,
};
use super::chats::{content_text, insert_message, json_text};
use super::{get_opt_uuid, get_time, get_uuid, now_micros, timestamp_from_micros, uuid_text};
use super::{ChatTx, MessageVisibility, NewMessage, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Most messages one chat's queue holds; sending one more while the chat is busy fails with
/// [`ErrorKind::QueueFull`] (engine.md §6.1, HTTP 429).
pub const MAX_QUEUED_MESSAGES: i64 = 20;

/// A user message for [`Store::send_message`]. The caller has validated the parts, checked
/// the usage limit and resolved the model (§6.1 steps 2–4); the store applies the busy rules.
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
        /// [`SendResult::promoted`]) this entry may already be history.
        queued: ChatQueuedMessage,
        /// `busy_behavior` was `interrupt` and the chat's status changed: a `running` turn
        /// was set to `waiting`, or a `requires_action` or `error` chat was set to
        /// `waiting` and its queue head promoted.
        interrupted: bool,
    },
}

/// The committed facts of [`Store::send_message`], for the engine to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct SendResult {
    /// What happened to the message.
    pub outcome: SendOutcome,
    /// The chat's status after the send.
    pub status: ChatStatus,
    /// The whole queue after the send, oldest first (the `queue_update` payload).
    pub queue: Vec<ChatQueuedMessage>,
    /// Synthetic error results ([`TOOL_INTERRUPTED_MESSAGE`]) written for the pending
    /// dynamic tool calls when an `interrupt` send left `requires_action`; one `tool`
    /// message per call, in call order.
    pub tool_results: Vec<ChatMessage>,
    /// The queue head an `interrupt` send promoted because no worker would (the chat was
    /// `requires_action` or `error`); the chat is then `pending`.
    pub promoted: Option<ChatMessage>,
}

/// The committed facts of [`Store::promote_queued`], for the engine to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Promoted {
    /// Synthetic error results ([`TOOL_INTERRUPTED_MESSAGE`]) written first for the
    /// pending dynamic tool calls when the chat was `requires_action`, so the history
    /// stays well-formed (codersdk.md §5.6); one `tool` message per call, in call order.
    pub tool_results: Vec<ChatMessage>,
    /// The user message the queue entry became.
    pub message: ChatMessage,
    /// The queue after the promotion, oldest first.
    pub queue: Vec<ChatQueuedMessage>,
}

const QUEUE_COLUMNS: &str = "id, chat_id, model_config_id, content, content_version, created_at";

/// Status and archived flag of the locked chat.
pub(super) async fn chat_state(
    conn: &mut AnyConnection,
    chat_id: Uuid,
) -> Result<(ChatStatus, bool)> {
    let row = sqlx::query("SELECT status, archived FROM chats WHERE id = $1")
        .bind(uuid_text(chat_id))
        .fetch_one(&mut *conn)
        .await
        .db()?;
    let status = ChatStatus::from_wire(&row.try_get::<String, _>("status").db()?);
    Ok((status, row.try_get::<i64, _>("archived").db()? != 0))
}

pub(super) fn chat_archived(chat_id: Uuid) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("chat {chat_id} is archived"),
    )
}

pub(super) async fn load_queue(
    conn: &mut AnyConnection,
    chat_id: Uuid,
) -> Result<Vec<ChatQueuedMessage>> {
    let sql =
        format!("SELECT {QUEUE_COLUMNS} FROM chat_queued_messages WHERE chat_id = $1 ORDER BY id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid_text(chat_id))
        .fetch_all(&mut *conn)
        .await
        .db()?;
    rows.iter().map(queued_from_row).collect()
}

fn queued_from_row(row: &AnyRow) -> Result<ChatQueuedMessage> {
    let version: i32 = row.try_get("content_version").db()?;
    let version = i16::try_from(version)
        .map_err(|_| Error::new(ErrorKind::CorruptRow, "stored content version out of range"))?;
    let raw: String = row.try_get("content").db()?;
    let content = decode_message_content(version, &raw)
        .map_err(|e| Error::new(ErrorKind::CorruptRow, e.to_string()))?;
    Ok(ChatQueuedMessage {
        id: row.try_get("id").db()?,
        chat_id: get_uuid(row, "chat_id")?,
        model_config_id: get_opt_uuid(row, "model_config_id")?,
        content,
        created_at: get_time(row, "created_at")?,
    })
}

/// Sets the locked chat `pending` after a user message was inserted for it. Worker fields
/// are cleared so a running worker's lease check fails (§6.3: it stops and drops its
/// partial step); the epoch is left for the next claim to bump.
async fn set_pending_for_new_message(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE chats SET status = $2, last_error = NULL, worker_id = NULL, started_at = NULL, \
         heartbeat_at = NULL, updated_at = $3 WHERE id = $1",
    )
    .bind(uuid_text(chat_id))
    .bind(ChatStatus::Pending.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

impl Store {
    /// Sends a user message following the busy rules of engine.md §6.1, in one transaction
    /// under the chat lock:
    ///
    /// - archived chat: [`ErrorKind::InvalidArgument`] (HTTP 400, codersdk.md §5.4);
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
        let content = content_text(&send.parts)?;
        let now = now_micros();
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = send_in_tx(&mut tx, send, content, now).await;
        tx.finish(result).await
    }

    /// The chat's queue, oldest first. [`ErrorKind::NotFound`] when the chat does not exist.
    pub async fn list_queue(&self, chat_id: Uuid) -> Result<Vec<ChatQueuedMessage>> {
        let mut conn = self.pool().acquire().await.db()?;
        super::ensure_chat_exists(&mut conn, chat_id).await?;
        load_queue(&mut conn, chat_id).await
    }

    /// Deletes queue entry `id` of the chat (§6.3) and returns the queue left, oldest first.
    /// [`ErrorKind::NotFound`] when the chat or the entry does not exist.
    pub async fn delete_queued(&self, chat_id: Uuid, id: i64) -> Result<Vec<ChatQueuedMessage>> {
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = delete_in_tx(&mut tx, id).await;
        tx.finish(result).await
    }

    /// Promotes queue entry `id` (§6.3, classic): deletes it, inserts it as a user message
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
    send: SendMessage,
    content: String,
    now: i64,
) -> Result<SendResult> {
    let chat_id = tx.chat_id();
    let conn = tx.conn();
    let (status, archived) = chat_state(conn, chat_id).await?;
    if archived {
        return Err(chat_archived(chat_id));
    }
    apply_chat_settings(
        conn,
        chat_id,
        send.plan_mode,
        send.mcp_server_ids.as_deref(),
    )
    .await?;
    let queued_count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM chat_queued_messages WHERE chat_id = $1")
            .bind(uuid_text(chat_id))
            .fetch_one(&mut *conn)
            .await
            .db()?;
    let result = if status.is_busy() || queued_count > 0 {
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
        let mut tool_results = Vec::new();
        let mut promoted = None;
        let interrupted = send.busy_behavior == ChatBusyBehavior::Interrupt
            && match status {
                // The worker sees `waiting`, persists its partial step and its finish
                // routine promotes the queue head (§6.1).
                ChatStatus::Running => {
                    move_to_waiting(conn, chat_id, &status, now).await?;
                    true
                }
                // No worker will finish these, so the queue head (the new message when
                // the queue was empty) is promoted now; a waiting chat with a queue
                // would otherwise never run it.
                ChatStatus::RequiresAction | ChatStatus::Error => {
                    tool_results = move_to_waiting(conn, chat_id, &status, now).await?;
                    promoted = promote_head(conn, chat_id, now).await?;
                    true
                }
                // `pending` must not be overwritten: an acquired run would be lost.
                _ => false,
            };
        let status = match (&promoted, interrupted) {
            (Some(_), _) => ChatStatus::Pending,
            (None, true) => ChatStatus::Waiting,
            (None, false) => status,
        };
        let queued = ChatQueuedMessage {
            id,
            chat_id,
            model_config_id: send.model_config_id,
            content: send.parts,
            created_at: timestamp_from_micros(now)?,
        };
        SendResult {
            outcome: SendOutcome::Queued {
                queued,
                interrupted,
            },
            status,
            queue: load_queue(conn, chat_id).await?,
            tool_results,
            promoted,
        }
    } else {
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
        set_pending_for_new_message(conn, chat_id, now).await?;
        SendResult {
            outcome: SendOutcome::Inserted(message),
            status: ChatStatus::Pending,
            queue: Vec::new(),
            tool_results: Vec::new(),
            promoted: None,
        }
    };
    Ok(result)
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

async fn delete_in_tx(tx: &mut ChatTx, id: i64) -> Result<Vec<ChatQueuedMessage>> {
    let chat_id = tx.chat_id();
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
    load_queue(tx.conn(), chat_id).await
}

async fn promote_checked_in_tx(tx: &mut ChatTx, id: i64, now: i64) -> Result<Promoted> {
    let chat_id = tx.chat_id();
    let (status, archived) = chat_state(tx.conn(), chat_id).await?;
    if archived {
        return Err(chat_archived(chat_id));
    }
    // A user message may not follow unanswered tool calls (engine.md §2.2 general rules).
    let tool_results = if status == ChatStatus::RequiresAction {
        answer_pending_calls(tx.conn(), chat_id, now, TOOL_INTERRUPTED_MESSAGE).await?
    } else {
        Vec::new()
    };
    let message = promote_in_tx(tx, id, now).await?;
    let queue = load_queue(tx.conn(), chat_id).await?;
    Ok(Promoted {
        tool_results,
        message,
        queue,
    })
}

fn queued_not_found(chat_id: Uuid, id: i64) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("queued message {id} of chat {chat_id} not found"),
    )
}

/// Moves queue entry `id` of the locked chat into its history and sets the chat `pending`.
pub(super) async fn promote_in_tx(tx: &mut ChatTx, id: i64, now: i64) -> Result<ChatMessage> {
    let chat_id = tx.chat_id();
    promote_in_conn(tx.conn(), chat_id, id, now).await
}

/// [`promote_in_tx`] for a chat locked by the caller's transaction on `conn` (archiving
/// holds the locks of a whole family in one transaction).
pub(super) async fn promote_in_conn(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    id: i64,
    now: i64,
) -> Result<ChatMessage> {
    let sql = format!(
        "DELETE FROM chat_queued_messages WHERE chat_id = $1 AND id = $2 \
         RETURNING {QUEUE_COLUMNS}, created_by"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid_text(chat_id))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .db()?
        .ok_or_else(|| queued_not_found(chat_id, id))?;
    let queued = queued_from_row(&row)?;
    let created_by = get_opt_uuid(&row, "created_by")?;
    let message = insert_message(
        conn,
        chat_id,
        now,
        NewMessage {
            role: ChatMessageRole::User,
            parts: queued.content,
            visibility: MessageVisibility::Both,
            created_by,
            model_config_id: queued.model_config_id,
            usage: None,
        },
    )
    .await?;
    set_pending_for_new_message(conn, chat_id, now).await?;
    Ok(message)
}
