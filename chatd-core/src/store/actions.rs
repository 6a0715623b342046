//! Status-changing chat operations: the pending dynamic tool calls, tool-result
//! submission (engine.md §7), interrupt (§6.6), message edit (§6.4) and archiving (§6.6,
//! §2.1 row 17). Each is one transaction under the chat lock (archiving: under the locks
//! of the whole family) that re-checks its preconditions and returns the committed facts
//! for the engine to publish. docs/engine-operations.md records the decisions.

use std::collections::{HashMap, HashSet};

use codersdk::{
    validate_tool_results_against, ChatMessage, ChatMessagePart, ChatMessagePartType,
    ChatMessageRole, ChatQueuedMessage, ChatStatus, ChatStreamToolCall, DynamicTool, Uuid,
    ValidatedToolResult,
};
use sqlx::{AnyConnection, Row};

use super::chats::{corrupt, insert_message, message_from_row, MESSAGE_COLUMNS};
use super::queue::{chat_archived, chat_state, load_queue, promote_in_conn};
use super::{chat_not_found, get_opt_uuid, get_uuid, now_micros, uuid_text};
use super::{ChatTx, Dialect, MessageVisibility, NewMessage, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Error text of the synthetic results written for pending dynamic tool calls when the
/// user interrupts a `requires_action` chat (engine.md §2.1 row 12), archives it, or sends
/// or promotes a message over it.
pub const TOOL_INTERRUPTED_MESSAGE: &str = "Tool execution interrupted by user";

/// Message of the [`ErrorKind::Conflict`] (HTTP 409) answering tool results for a chat
/// that is not `requires_action` (codersdk.md §5.6), including a repeated submission.
pub const NOT_AWAITING_TOOL_RESULTS_MESSAGE: &str = "Chat is not waiting for tool results.";

/// Message of the [`ErrorKind::InvalidArgument`] (HTTP 400) refusing to edit a message
/// that is not a `user` message (engine.md §6.4).
pub const ONLY_USER_MESSAGES_EDITABLE_MESSAGE: &str = "Only user messages can be edited.";

/// Message of the [`ErrorKind::InvalidArgument`] (HTTP 400) refusing to unarchive a
/// sub-agent chat while its parent is archived (codersdk.md §5.3).
pub const PARENT_ARCHIVED_MESSAGE: &str =
    "Cannot unarchive a sub-agent chat while its parent chat is archived. Unarchive the parent instead.";

/// The committed facts of [`Store::submit_tool_results`], for the engine to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// One `tool` message (visibility `both`) per submitted result, in request order.
    pub messages: Vec<ChatMessage>,
    /// The chat's status after the call: `pending`.
    pub status: ChatStatus,
}

/// The committed facts of [`Store::interrupt`]. The engine publishes, in order: the tool
/// messages, the promoted message, the status, then the queue (when a message was
/// promoted).
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupted {
    /// The status the chat had.
    pub previous_status: ChatStatus,
    /// The status after the call.
    pub status: ChatStatus,
    /// Whether anything was written (`false` for a chat that was already `waiting` or
    /// `error`).
    pub changed: bool,
    /// Synthetic error results ([`TOOL_INTERRUPTED_MESSAGE`]) for the pending dynamic tool
    /// calls of a `requires_action` chat: one `tool` message per call, in call order.
    pub tool_results: Vec<ChatMessage>,
    /// The queue head promoted to a user message because no worker would have done it
    /// (the chat was not `running`); the chat is then `pending`.
    pub promoted: Option<ChatMessage>,
    /// The whole queue after the call, oldest first.
    pub queue: Vec<ChatQueuedMessage>,
}

/// The replacement of an edited message, for [`Store::edit_message`]. The caller has
/// validated the parts (`codersdk::validate_edit_chat_message_request`) and checked the
/// usage limit.
#[derive(Debug, Clone, PartialEq)]
pub struct EditMessage {
    /// The new content.
    pub parts: Vec<ChatMessagePart>,
    /// Author of the replacement; `None` keeps the edited message's author.
    pub created_by: Option<Uuid>,
    /// Model config of the replacement; `None` keeps the edited message's.
    pub model_config_id: Option<Uuid>,
}

/// The committed facts of [`Store::edit_message`]. The engine publishes a full refresh,
/// the new message, an empty `queue_update` and the status.
#[derive(Debug, Clone, PartialEq)]
pub struct Edited {
    /// The replacement message (`EditChatMessageResponse::message`).
    pub message: ChatMessage,
    /// Ids of the messages soft-deleted: the edited one and every later one, ascending.
    pub deleted_message_ids: Vec<i64>,
    /// The chat's status after the edit: `pending`.
    pub status: ChatStatus,
    /// The queue after the edit: always empty.
    pub queue: Vec<ChatQueuedMessage>,
}

/// One chat of a family whose status or archived flag [`Store::set_archived`] changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedChat {
    /// The chat.
    pub chat_id: Uuid,
    /// Its status before the call (`running` tells the engine to stop the worker).
    pub previous_status: ChatStatus,
    /// Its status after the call.
    pub status: ChatStatus,
    /// Its archived flag after the call.
    pub archived: bool,
    /// Synthetic error results ([`TOOL_INTERRUPTED_MESSAGE`]) written when archiving a
    /// `requires_action` chat, one `tool` message per pending call.
    pub tool_results: Vec<ChatMessage>,
    /// The queue head promoted when unarchiving a `waiting` chat with a queue.
    pub promoted: Option<ChatMessage>,
    /// The chat's queue after the call, oldest first.
    pub queue: Vec<ChatQueuedMessage>,
}

impl Store {
    /// The pending dynamic tool calls of the chat (engine.md §7.2 "Pending set"): the
    /// calls of its last non-deleted, non-compressed assistant message whose tool name is
    /// one of the chat's dynamic tools and whose id has no tool-result part in a later
    /// non-deleted message, in call order. These are what an `action_required` event
    /// carries. [`ErrorKind::NotFound`] when the chat does not exist.
    pub async fn pending_tool_calls(&self, chat_id: Uuid) -> Result<Vec<ChatStreamToolCall>> {
        let mut conn = self.pool().acquire().await.db()?;
        pending_calls(&mut conn, chat_id).await
    }

    /// Submits the client's results for the pending dynamic tool calls (engine.md §7.3),
    /// in one transaction under the chat lock. Checks, in order:
    ///
    /// 1. archived chat: [`ErrorKind::InvalidArgument`] (HTTP 400, codersdk.md §5.6);
    /// 2. status not `requires_action`: [`ErrorKind::Conflict`] (HTTP 409,
    ///    [`NOT_AWAITING_TOOL_RESULTS_MESSAGE`]); a repeated submission lands here;
    /// 3. the ids against [`Store::pending_tool_calls`] with
    ///    [`codersdk::validate_tool_results_against`]: duplicate, missing or unexpected ids
    ///    are [`ErrorKind::InvalidArgument`] carrying that validation `Response`.
    ///
    /// Then each result becomes one `tool` message (visibility `both`) holding one
    /// tool-result part named after its pending call, and the chat goes to `pending` with
    /// `last_error` cleared and `updated_at` bumped. A refusal writes nothing.
    /// `results` should have passed `codersdk::validate_submit_tool_results_request`
    /// (non-empty, JSON outputs, double-encoded JSON unwrapped).
    pub async fn submit_tool_results(
        &self,
        chat_id: Uuid,
        results: Vec<ValidatedToolResult>,
    ) -> Result<Submitted> {
        let now = now_micros();
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = submit_in_tx(&mut tx, results, now).await;
        tx.finish(result).await
    }

    /// Interrupts the chat (engine.md §6.6) in one transaction under the chat lock:
    ///
    /// - `running`: `waiting` with the worker fields cleared but the lease epoch kept, so
    ///   the worker's lease becomes [`super::LeaseState::Interrupted`]: it may persist its
    ///   partial step, and its finish routine promotes the queue;
    /// - `requires_action`: a [`TOOL_INTERRUPTED_MESSAGE`] error result for every pending
    ///   dynamic call (one `tool` message each), then `waiting`;
    /// - `pending`: `waiting`;
    /// - `waiting`, `error` (or a legacy status): nothing changes.
    ///
    /// No worker finishes a chat that was not `running`, so when a non-archived chat ends
    /// `waiting` with a non-empty queue its head is promoted at once and the chat becomes
    /// `pending`. Leaving `pending` or `requires_action` bumps the lease epoch: no worker
    /// owns such a chat, and an earlier lease that the `pending` status had already
    /// fenced off must not turn into `Interrupted`. [`ErrorKind::NotFound`] when the chat
    /// does not exist.
    pub async fn interrupt(&self, chat_id: Uuid) -> Result<Interrupted> {
        let now = now_micros();
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = interrupt_in_tx(&mut tx, now).await;
        tx.finish(result).await
    }

    /// Edits user message `message_id` (engine.md §6.4) in one transaction under the chat
    /// lock: soft-deletes it and every later message of the chat, inserts the replacement
    /// (the edited message's visibility; the given model and author, else the edited
    /// message's), deletes the whole queue, and sets the chat `pending` with `last_error`,
    /// the worker fields and the retry state cleared, the lease epoch bumped (a running
    /// worker's lease is lost: its partial step is refused) and `updated_at` bumped.
    ///
    /// Refusals, in order: archived chat [`ErrorKind::InvalidArgument`] (HTTP 400); no
    /// such message in this chat, or deleted, or visible to the model only
    /// [`ErrorKind::NotFound`] (404); not a `user` message [`ErrorKind::InvalidArgument`]
    /// ([`ONLY_USER_MESSAGES_EDITABLE_MESSAGE`]). [`ErrorKind::NotFound`] when the chat does
    /// not exist.
    pub async fn edit_message(
        &self,
        chat_id: Uuid,
        message_id: i64,
        edit: EditMessage,
    ) -> Result<Edited> {
        let now = now_micros();
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = edit_in_tx(&mut tx, message_id, edit, now).await;
        tx.finish(result).await
    }

    /// Archives (`true`) or unarchives (`false`) the chat's whole family: its root and every
    /// chat sharing that root (engine.md §6.6, §2.1 row 17), in one transaction holding the
    /// locks of all of them, taken in id order so two family-wide calls cannot deadlock.
    ///
    /// Archive: a no-op (empty answer) when the chat is already archived. Otherwise every
    /// member is archived with `pin_order` 0; `running` members go to `waiting` with the
    /// worker cleared and the epoch kept (like [`Store::interrupt`]: the worker persists
    /// its partial step, and its finish routine promotes nothing in an archived chat);
    /// `pending` members go to `waiting`; `requires_action` members get
    /// [`TOOL_INTERRUPTED_MESSAGE`] results for their pending calls, then `waiting`.
    ///
    /// Unarchive: a no-op when the chat is not archived; [`ErrorKind::InvalidArgument`]
    /// ([`PARENT_ARCHIVED_MESSAGE`]) when it has an archived parent. Otherwise every
    /// archived member is unarchived, and a `waiting` one with a queue has its head
    /// promoted (`pending`), since no worker will.
    ///
    /// Returns every member whose status or flag changed, in id order. `updated_at` is
    /// bumped only where the status changed. [`ErrorKind::NotFound`] when the chat does not
    /// exist.
    pub async fn set_archived(&self, chat_id: Uuid, archived: bool) -> Result<Vec<ArchivedChat>> {
        let now = now_micros();
        let tx = self.begin_write().await?;
        // Not `begin_chat_tx`: locking the target first and its family after would take
        // the locks out of id order.
        let mut tx = ChatTx { tx, chat_id };
        let result = set_archived_in_tx(&mut tx, self.dialect(), archived, now).await;
        tx.finish(result).await
    }
}

impl ChatTx {
    /// [`Store::pending_tool_calls`] of the locked chat, inside this transaction.
    pub async fn pending_tool_calls(&mut self) -> Result<Vec<ChatStreamToolCall>> {
        let chat_id = self.chat_id();
        pending_calls(self.conn(), chat_id).await
    }
}

/// The pending dynamic tool calls of `chat_id`; see [`Store::pending_tool_calls`].
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

fn tool_message(parts: Vec<ChatMessagePart>) -> NewMessage {
    NewMessage {
        role: ChatMessageRole::Tool,
        parts,
        visibility: MessageVisibility::Both,
        created_by: None,
        model_config_id: None,
        usage: None,
    }
}

/// Sets the locked chat, now `from`, to `waiting` with the worker fields, retry state and
/// `last_error` cleared and `updated_at` bumped; returns the synthetic results written
/// for the pending calls of a `requires_action` chat. Only `running` keeps the lease
/// epoch (the interrupted worker may still persist its partial step); from any other
/// status no worker owns the chat, and the bump keeps a lease fenced off earlier (by an
/// edit, promote or recovery that set `pending`) from turning `Interrupted`.
pub(super) async fn move_to_waiting(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    from: &ChatStatus,
    now: i64,
) -> Result<Vec<ChatMessage>> {
    let tool_results = if *from == ChatStatus::RequiresAction {
        answer_pending_calls(conn, chat_id, now, TOOL_INTERRUPTED_MESSAGE).await?
    } else {
        Vec::new()
    };
    let sql = if *from == ChatStatus::Running {
        "UPDATE chats SET status = $2, worker_id = NULL, started_at = NULL, \
         heartbeat_at = NULL, retry_state = NULL, last_error = NULL, updated_at = $3 \
         WHERE id = $1"
    } else {
        "UPDATE chats SET status = $2, worker_id = NULL, started_at = NULL, \
         heartbeat_at = NULL, retry_state = NULL, last_error = NULL, updated_at = $3, \
         lease_epoch = lease_epoch + 1 WHERE id = $1"
    };
    sqlx::query(sql)
        .bind(uuid_text(chat_id))
        .bind(ChatStatus::Waiting.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(tool_results)
}

/// Promotes the queue head (lowest id) of the locked chat, if any, leaving it `pending`.
pub(super) async fn promote_head(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    now: i64,
) -> Result<Option<ChatMessage>> {
    let head: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM chat_queued_messages WHERE chat_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(uuid_text(chat_id))
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    match head {
        Some(id) => Ok(Some(promote_in_conn(conn, chat_id, id, now).await?)),
        None => Ok(None),
    }
}

async fn submit_in_tx(
    tx: &mut ChatTx,
    results: Vec<ValidatedToolResult>,
    now: i64,
) -> Result<Submitted> {
    let chat_id = tx.chat_id();
    let conn = tx.conn();
    let (status, archived) = chat_state(conn, chat_id).await?;
    if archived {
        return Err(chat_archived(chat_id));
    }
    if status != ChatStatus::RequiresAction {
        return Err(Error::new(
            ErrorKind::Conflict,
            NOT_AWAITING_TOOL_RESULTS_MESSAGE,
        ));
    }
    let pending = pending_calls(conn, chat_id).await?;
    validate_tool_results_against(
        pending.iter().map(|call| call.tool_call_id.as_str()),
        results.iter().map(|result| result.tool_call_id.as_str()),
    )
    .map_err(|response| Error::with_response(ErrorKind::InvalidArgument, response))?;
    let names: HashMap<&str, &str> = pending
        .iter()
        .map(|call| (call.tool_call_id.as_str(), call.tool_name.as_str()))
        .collect();
    let mut messages = Vec::with_capacity(results.len());
    for result in results {
        // Validation above guarantees every id is pending.
        let name = names
            .get(result.tool_call_id.as_str())
            .copied()
            .unwrap_or_default();
        let part =
            ChatMessagePart::tool_result(result.tool_call_id, name, result.output, result.is_error);
        messages.push(insert_message(conn, chat_id, now, tool_message(vec![part])).await?);
    }
    sqlx::query("UPDATE chats SET status = $2, last_error = NULL, updated_at = $3 WHERE id = $1")
        .bind(uuid_text(chat_id))
        .bind(ChatStatus::Pending.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(Submitted {
        messages,
        status: ChatStatus::Pending,
    })
}

async fn interrupt_in_tx(tx: &mut ChatTx, now: i64) -> Result<Interrupted> {
    let chat_id = tx.chat_id();
    let conn = tx.conn();
    let (previous_status, archived) = chat_state(conn, chat_id).await?;
    let mut tool_results = Vec::new();
    let mut promoted = None;
    let (status, changed) = match previous_status {
        ChatStatus::Running => {
            move_to_waiting(conn, chat_id, &previous_status, now).await?;
            (ChatStatus::Waiting, true)
        }
        ChatStatus::Pending | ChatStatus::RequiresAction => {
            tool_results = move_to_waiting(conn, chat_id, &previous_status, now).await?;
            if !archived {
                promoted = promote_head(conn, chat_id, now).await?;
            }
            let status = if promoted.is_some() {
                ChatStatus::Pending
            } else {
                ChatStatus::Waiting
            };
            (status, true)
        }
        ref other => (other.clone(), false),
    };
    Ok(Interrupted {
        previous_status,
        status,
        changed,
        tool_results,
        promoted,
        queue: load_queue(conn, chat_id).await?,
    })
}

fn message_not_found(chat_id: Uuid, message_id: i64) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("message {message_id} not found in chat {chat_id}"),
    )
}

fn visibility_from_str(text: &str) -> Result<MessageVisibility> {
    match text {
        "model" => Ok(MessageVisibility::Model),
        "user" => Ok(MessageVisibility::User),
        "both" => Ok(MessageVisibility::Both),
        _ => Err(corrupt("message visibility")),
    }
}

async fn edit_in_tx(
    tx: &mut ChatTx,
    message_id: i64,
    edit: EditMessage,
    now: i64,
) -> Result<Edited> {
    let chat_id = tx.chat_id();
    let conn = tx.conn();
    let (_, archived) = chat_state(conn, chat_id).await?;
    if archived {
        return Err(chat_archived(chat_id));
    }
    let row = sqlx::query(
        "SELECT role, visibility, created_by, model_config_id FROM chat_messages \
         WHERE chat_id = $1 AND id = $2 AND deleted = 0",
    )
    .bind(uuid_text(chat_id))
    .bind(message_id)
    .fetch_optional(&mut *conn)
    .await
    .db()?
    .ok_or_else(|| message_not_found(chat_id, message_id))?;
    let visibility = visibility_from_str(&row.try_get::<String, _>("visibility").db()?)?;
    // The client's history never shows model-only rows, so no client can name one.
    if visibility == MessageVisibility::Model {
        return Err(message_not_found(chat_id, message_id));
    }
    if ChatMessageRole::from_wire(&row.try_get::<String, _>("role").db()?) != ChatMessageRole::User
    {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            ONLY_USER_MESSAGES_EDITABLE_MESSAGE,
        ));
    }
    let created_by = edit.created_by.or(get_opt_uuid(&row, "created_by")?);
    let model_config_id = edit
        .model_config_id
        .or(get_opt_uuid(&row, "model_config_id")?);
    let mut deleted_message_ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE chat_messages SET deleted = 1 WHERE chat_id = $1 AND id >= $2 AND deleted = 0 \
         RETURNING id",
    )
    .bind(uuid_text(chat_id))
    .bind(message_id)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    deleted_message_ids.sort_unstable();
    let message = insert_message(
        conn,
        chat_id,
        now,
        NewMessage {
            role: ChatMessageRole::User,
            parts: edit.parts,
            visibility,
            created_by,
            model_config_id,
            usage: None,
        },
    )
    .await?;
    sqlx::query("DELETE FROM chat_queued_messages WHERE chat_id = $1")
        .bind(uuid_text(chat_id))
        .execute(&mut *conn)
        .await
        .db()?;
    // The epoch bump retires a running worker's lease outright: whatever status the chat
    // moves through next, the pre-edit turn can never persist into the new history.
    sqlx::query(
        "UPDATE chats SET status = $2, last_error = NULL, worker_id = NULL, \
         started_at = NULL, heartbeat_at = NULL, retry_state = NULL, \
         lease_epoch = lease_epoch + 1, updated_at = $3 WHERE id = $1",
    )
    .bind(uuid_text(chat_id))
    .bind(ChatStatus::Pending.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(Edited {
        message,
        deleted_message_ids,
        status: ChatStatus::Pending,
        queue: Vec::new(),
    })
}

/// A family member as locked by [`set_archived_in_tx`].
struct Member {
    id: Uuid,
    parent: Option<Uuid>,
    status: ChatStatus,
    archived: bool,
}

async fn set_archived_in_tx(
    tx: &mut ChatTx,
    dialect: Dialect,
    archive: bool,
    now: i64,
) -> Result<Vec<ArchivedChat>> {
    let chat_id = tx.chat_id();
    let conn = tx.conn();
    // `root_chat_id` never changes, so reading it before taking the locks is safe.
    let root: String = sqlx::query_scalar("SELECT root_chat_id FROM chats WHERE id = $1")
        .bind(uuid_text(chat_id))
        .fetch_optional(&mut *conn)
        .await
        .db()?
        .ok_or_else(|| chat_not_found(chat_id))?;
    let sql = match dialect {
        // `BEGIN IMMEDIATE` already holds the database write lock.
        Dialect::Sqlite => {
            "SELECT id, parent_chat_id, status, archived FROM chats \
             WHERE root_chat_id = $1 ORDER BY id"
        }
        // PostgreSQL sorts before it locks, so the rows are locked in id order.
        Dialect::Postgres => {
            "SELECT id, parent_chat_id, status, archived FROM chats \
             WHERE root_chat_id = $1 ORDER BY id FOR UPDATE"
        }
    };
    let rows = sqlx::query(sql)
        .bind(&root)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let members = rows
        .iter()
        .map(|row| {
            Ok(Member {
                id: get_uuid(row, "id")?,
                parent: get_opt_uuid(row, "parent_chat_id")?,
                status: ChatStatus::from_wire(&row.try_get::<String, _>("status").db()?),
                archived: row.try_get::<i64, _>("archived").db()? != 0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let target = members
        .iter()
        .find(|m| m.id == chat_id)
        .ok_or_else(|| chat_not_found(chat_id))?;
    if target.archived == archive {
        return Ok(Vec::new());
    }
    if !archive {
        let parent_archived = target
            .parent
            .and_then(|parent| members.iter().find(|m| m.id == parent))
            .is_some_and(|parent| parent.archived);
        if parent_archived {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                PARENT_ARCHIVED_MESSAGE,
            ));
        }
    }
    let mut changed = Vec::new();
    for member in members {
        let report = if archive {
            archive_member(conn, &member, now).await?
        } else {
            unarchive_member(conn, &member, now).await?
        };
        if let Some(report) = report {
            changed.push(report);
        }
    }
    Ok(changed)
}

async fn archive_member(
    conn: &mut AnyConnection,
    member: &Member,
    now: i64,
) -> Result<Option<ArchivedChat>> {
    let busy = member.status.is_busy();
    if member.archived && !busy {
        return Ok(None);
    }
    let (status, tool_results) = if busy {
        let results = move_to_waiting(conn, member.id, &member.status, now).await?;
        (ChatStatus::Waiting, results)
    } else {
        (member.status.clone(), Vec::new())
    };
    sqlx::query("UPDATE chats SET archived = 1, pin_order = 0 WHERE id = $1")
        .bind(uuid_text(member.id))
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(Some(ArchivedChat {
        chat_id: member.id,
        previous_status: member.status.clone(),
        status,
        archived: true,
        tool_results,
        promoted: None,
        queue: load_queue(conn, member.id).await?,
    }))
}

async fn unarchive_member(
    conn: &mut AnyConnection,
    member: &Member,
    now: i64,
) -> Result<Option<ArchivedChat>> {
    if !member.archived {
        return Ok(None);
    }
    sqlx::query("UPDATE chats SET archived = 0 WHERE id = $1")
        .bind(uuid_text(member.id))
        .execute(&mut *conn)
        .await
        .db()?;
    // An archived chat's finish routine promotes nothing, so its queue waited for this.
    let promoted = if member.status == ChatStatus::Waiting {
        promote_head(conn, member.id, now).await?
    } else {
        None
    };
    let status = if promoted.is_some() {
        ChatStatus::Pending
    } else {
        member.status.clone()
    };
    Ok(Some(ArchivedChat {
        chat_id: member.id,
        previous_status: member.status.clone(),
        status,
        archived: false,
        tool_results: Vec::new(),
        promoted,
        queue: load_queue(conn, member.id).await?,
    }))
}
