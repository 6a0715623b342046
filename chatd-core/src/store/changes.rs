//! The in-transaction building blocks the state-changing operations share (send and the
//! queue, interrupt, edit, tool results, archive, finish, recovery): reading the locked
//! chat, the queue, moving a chat to `waiting` or `pending`, promoting a queued message,
//! and answering pending client tool calls. Each records what it wrote into the
//! operation's [`Transition`]. Every function runs on the connection of a transaction
//! that already holds the chat's lock (`Store::begin_chat_tx`, or the family locks of
//! archiving).

use std::collections::HashSet;

use codersdk::{
    decode_message_content, ChatMessage, ChatMessagePart, ChatMessagePartType, ChatMessageRole,
    ChatQueuedMessage, ChatStatus, ChatStreamToolCall, DynamicTool, Uuid,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::chats::{corrupt, insert_message, message_from_row, MESSAGE_COLUMNS};
use super::{chat_not_found, get_opt_uuid, get_time, get_uuid, uuid_text};
use super::{Lease, MessageVisibility, NewMessage, Transition};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Error text of the synthetic results written for pending dynamic tool calls when the
/// user interrupts a `requires_action` chat (row 12), archives it, or sends
/// or promotes a message over it.
pub const TOOL_INTERRUPTED_MESSAGE: &str = "Tool execution interrupted by user";

pub(super) const QUEUE_COLUMNS: &str =
    "id, chat_id, model_config_id, content, content_version, created_at";

/// The locked chat as an operation finds it, read under the lock before any write.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LockedChat {
    pub(super) id: Uuid,
    pub(super) owner_id: Uuid,
    pub(super) status: ChatStatus,
    pub(super) archived: bool,
    worker_id: Option<Uuid>,
    epoch: i64,
}

/// The size and head of a locked chat's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct QueueState {
    /// Messages in the queue.
    pub(super) count: i64,
    /// The oldest entry (the next to promote).
    pub(super) head: Option<i64>,
}

impl QueueState {
    /// From a row with `queued` and `queue_head`.
    pub(super) fn from_row(row: &AnyRow) -> Result<QueueState> {
        Ok(QueueState {
            count: row.try_get("queued").db()?,
            head: row.try_get("queue_head").db()?,
        })
    }
}

impl LockedChat {
    /// A chat from a row with `id`, `status`, `archived`, `worker_id` and `lease_epoch`.
    pub(super) fn from_row(row: &AnyRow) -> Result<LockedChat> {
        Ok(LockedChat {
            id: get_uuid(row, "id")?,
            owner_id: get_uuid(row, "owner_id")?,
            status: ChatStatus::from_wire(&row.try_get::<String, _>("status").db()?),
            archived: row.try_get::<i64, _>("archived").db()? != 0,
            worker_id: get_opt_uuid(row, "worker_id")?,
            epoch: row.try_get("lease_epoch").db()?,
        })
    }

    /// The lease of the turn running the chat, if it is `running`.
    pub(super) fn running_lease(&self) -> Option<Lease> {
        match (&self.status, self.worker_id) {
            (ChatStatus::Running, Some(worker_id)) => Some(Lease {
                chat_id: self.id,
                worker_id,
                epoch: self.epoch,
            }),
            _ => None,
        }
    }

    /// The state of `lease` on this chat (see [`super::leases::lease_state_of`]).
    pub(super) fn lease_state(&self, lease: &Lease) -> super::LeaseState {
        super::leases::lease_state_parts(&self.status, self.worker_id, self.epoch, lease)
    }

    /// A transition of this chat that has written nothing yet.
    pub(super) fn transition(&self) -> Transition {
        Transition::unchanged(self.id, self.status.clone())
    }
}

/// The columns [`LockedChat::from_row`] reads, from `chats` (not aliased).
pub(super) const LOCKED_CHAT_COLUMNS: &str =
    "id, owner_id, status, archived, worker_id, lease_epoch";

/// Reads the queue state of a locked chat, in a statement of its own after the lock: a
/// PostgreSQL locking read that waited keeps the snapshot it started with, so a subquery in
/// it would miss what the lock's previous holder queued.
pub(super) async fn queue_state(conn: &mut AnyConnection, chat_id: Uuid) -> Result<QueueState> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS queued, MIN(id) AS queue_head FROM chat_queued_messages \
         WHERE chat_id = $1",
    )
    .bind(uuid_text(chat_id))
    .fetch_one(&mut *conn)
    .await
    .db()?;
    QueueState::from_row(&row)
}

/// Reads the locked chat. [`ErrorKind::NotFound`] when it does not exist.
pub(super) async fn locked_chat(conn: &mut AnyConnection, chat_id: Uuid) -> Result<LockedChat> {
    let sql = format!("SELECT {LOCKED_CHAT_COLUMNS} FROM chats WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid_text(chat_id))
        .fetch_optional(&mut *conn)
        .await
        .db()?
        .ok_or_else(|| chat_not_found(chat_id))?;
    LockedChat::from_row(&row)
}

/// Records in `t` that an operation (not the chat's worker) moved `chat` to `status`: a
/// turn running the chat loses its lease with it.
pub(super) fn moved(t: &mut Transition, chat: &LockedChat, status: ChatStatus) {
    if status != ChatStatus::Running {
        t.ended_turn = t.ended_turn.or_else(|| chat.running_lease());
    }
    t.set_status(status);
}

/// [`ErrorKind::InvalidArgument`] (HTTP 400) for writes to an archived chat.
pub(super) fn chat_archived(chat_id: Uuid) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("chat {chat_id} is archived"),
    )
}

/// The chat's queue, oldest first.
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

pub(super) fn queued_from_row(row: &AnyRow) -> Result<ChatQueuedMessage> {
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

pub(super) fn queued_not_found(chat_id: Uuid, id: i64) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("queued message {id} of chat {chat_id} not found"),
    )
}

/// Sets the locked chat `pending` after a user message was inserted for it. Worker fields
/// are cleared so a running worker's lease check fails (it stops and drops its
/// partial step); the epoch is left for the next claim to bump.
pub(super) async fn set_pending_for_new_message(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    now: i64,
) -> Result<()> {
    set_pending(conn, chat_id, now, "").await.map(|_| ())
}

/// [`set_pending_for_new_message`] only while the chat's queue is empty, in one statement
/// run under the lock (so its snapshot has every queue change committed before the lock):
/// `false`, writing nothing, when a message waits in the queue.
pub(super) async fn set_pending_if_queue_empty(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    now: i64,
) -> Result<bool> {
    set_pending(conn, chat_id, now, QUEUE_EMPTY_GUARD).await
}

/// The condition, appended to an update of chat `$1`, that its queue is empty.
pub(super) const QUEUE_EMPTY_GUARD: &str =
    " AND NOT EXISTS (SELECT 1 FROM chat_queued_messages q WHERE q.chat_id = $1)";

async fn set_pending(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    now: i64,
    guard: &str,
) -> Result<bool> {
    let sql = format!(
        "UPDATE chats SET status = $2, last_error = NULL, worker_id = NULL, started_at = NULL, \
         heartbeat_at = NULL, updated_at = $3 WHERE id = $1{guard}"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid_text(chat_id))
        .bind(ChatStatus::Pending.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(done.rows_affected() > 0)
}

/// Moves queue entry `id` of the locked chat into its history and sets the chat `pending`;
/// the new message and the status are recorded in `t` (the queue is the caller's to
/// reload). [`ErrorKind::NotFound`] when the entry does not exist.
pub(super) async fn promote(
    conn: &mut AnyConnection,
    chat: &LockedChat,
    t: &mut Transition,
    id: i64,
    now: i64,
) -> Result<ChatMessage> {
    let chat_id = chat.id;
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
    t.messages.push(message.clone());
    moved(t, chat, ChatStatus::Pending);
    Ok(message)
}

/// Promotes the queue head (lowest id) of the locked chat, if any, leaving it `pending`,
/// and records the message and the status in `t` (the queue is the caller's to reload).
/// Whether it promoted.
pub(super) async fn promote_head(
    conn: &mut AnyConnection,
    chat: &LockedChat,
    t: &mut Transition,
    now: i64,
) -> Result<bool> {
    let head: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM chat_queued_messages WHERE chat_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(uuid_text(chat.id))
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    promote_entry(conn, chat, t, head, now).await
}

/// [`promote_head`] with a head read under the lock ([`QueueState::head`]): for an
/// operation that has not touched the queue since.
pub(super) async fn promote_known_head(
    conn: &mut AnyConnection,
    chat: &LockedChat,
    t: &mut Transition,
    head: Option<i64>,
    now: i64,
) -> Result<bool> {
    promote_entry(conn, chat, t, head, now).await
}

async fn promote_entry(
    conn: &mut AnyConnection,
    chat: &LockedChat,
    t: &mut Transition,
    head: Option<i64>,
    now: i64,
) -> Result<bool> {
    let Some(id) = head else {
        return Ok(false);
    };
    promote(conn, chat, t, id, now).await?;
    Ok(true)
}

/// Sets the locked chat to `waiting` with the worker fields, retry state and
/// `last_error` cleared and `updated_at` bumped; for a `requires_action` chat the pending
/// calls first get [`TOOL_INTERRUPTED_MESSAGE`] results. Records the results, the status
/// and the ended turn in `t`. Only `running` keeps the lease epoch (the interrupted worker
/// may still persist its partial step); from any other status no worker owns the chat,
/// and the bump keeps a lease fenced off earlier (by an edit, promote or recovery that set
/// `pending`) from turning `Interrupted`.
pub(super) async fn move_to_waiting(
    conn: &mut AnyConnection,
    chat: &LockedChat,
    t: &mut Transition,
    now: i64,
) -> Result<()> {
    if chat.status == ChatStatus::RequiresAction {
        let results = answer_pending_calls(conn, chat.id, now, TOOL_INTERRUPTED_MESSAGE).await?;
        t.messages.extend(results);
    }
    let sql = if chat.status == ChatStatus::Running {
        "UPDATE chats SET status = $2, worker_id = NULL, started_at = NULL, \
         heartbeat_at = NULL, retry_state = NULL, last_error = NULL, updated_at = $3 \
         WHERE id = $1"
    } else {
        "UPDATE chats SET status = $2, worker_id = NULL, started_at = NULL, \
         heartbeat_at = NULL, retry_state = NULL, last_error = NULL, updated_at = $3, \
         lease_epoch = lease_epoch + 1 WHERE id = $1"
    };
    sqlx::query(sql)
        .bind(uuid_text(chat.id))
        .bind(ChatStatus::Waiting.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await
        .db()?;
    moved(t, chat, ChatStatus::Waiting);
    Ok(())
}

/// The pending dynamic tool calls of `chat_id`; see `Store::pending_tool_calls`.
pub(super) async fn pending_calls(
    conn: &mut AnyConnection,
    chat_id: Uuid,
) -> Result<Vec<ChatStreamToolCall>> {
    let tools: Option<String> = sqlx::query_scalar("SELECT dynamic_tools FROM chats WHERE id = $1")
        .bind(uuid_text(chat_id))
        .fetch_optional(&mut *conn)
        .await
        .db()?
        .ok_or_else(|| chat_not_found(chat_id))?;
    let Some(tools) = tools else {
        return Ok(Vec::new());
    };
    let names: HashSet<String> = serde_json::from_str::<Vec<DynamicTool>>(&tools)
        .map_err(|_| corrupt("dynamic_tools"))?
        .into_iter()
        .map(|tool| tool.name)
        .collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    // One statement, so the assistant message and the answers after it come from one
    // snapshot. Compressed assistant rows are compaction bookkeeping, never a model step.
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE chat_id = $1 AND deleted = 0 \
         AND id >= (SELECT MAX(id) FROM chat_messages WHERE chat_id = $1 AND role = $2 \
         AND deleted = 0 AND compressed = 0) ORDER BY id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid_text(chat_id))
        .bind(ChatMessageRole::Assistant.as_str())
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let mut messages = rows.iter().map(message_from_row);
    let assistant = match messages.next() {
        Some(message) => message?,
        None => return Ok(Vec::new()),
    };
    let mut answered = HashSet::new();
    for message in messages {
        for part in message?.content {
            if part.part_type == ChatMessagePartType::ToolResult {
                answered.insert(part.tool_call_id);
            }
        }
    }
    let mut seen = HashSet::new();
    Ok(assistant
        .content
        .into_iter()
        .filter(|part| {
            part.part_type == ChatMessagePartType::ToolCall
                && !part.provider_executed
                && names.contains(&part.tool_name)
                && !answered.contains(&part.tool_call_id)
                && seen.insert(part.tool_call_id.clone())
        })
        .map(|part| ChatStreamToolCall {
            // A persisted call always has its arguments; an empty object keeps the
            // event parseable if one does not.
            args: part
                .args
                .map_or_else(|| "{}".to_owned(), |args| args.get().to_owned()),
            tool_call_id: part.tool_call_id,
            tool_name: part.tool_name,
        })
        .collect())
}

/// Answers every pending dynamic call of the locked chat with an error result carrying
/// `message`: one `tool` message (visibility `both`) per call, in call order.
pub(super) async fn answer_pending_calls(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    now: i64,
    message: &str,
) -> Result<Vec<ChatMessage>> {
    let calls = pending_calls(conn, chat_id).await?;
    let mut inserted = Vec::with_capacity(calls.len());
    for call in calls {
        let part = ChatMessagePart::tool_error(call.tool_call_id, call.tool_name, message);
        inserted.push(insert_message(conn, chat_id, now, tool_message(vec![part])).await?);
    }
    Ok(inserted)
}

/// A `tool` message (visibility `both`) with `parts`.
pub(super) fn tool_message(parts: Vec<ChatMessagePart>) -> NewMessage {
    NewMessage {
        role: ChatMessageRole::Tool,
        parts,
        visibility: MessageVisibility::Both,
        created_by: None,
        model_config_id: None,
        usage: None,
    }
}
