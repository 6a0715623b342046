//! Status-changing chat operations: the pending dynamic tool calls, tool-result
//! submission, interrupt, message edit and archiving. Each is one transaction under the chat lock (archiving: under the locks
//! of the whole family) that re-checks its preconditions and returns the committed
//! [`Transition`] for the engine to publish. docs/engine-operations.md records the
//! decisions.

use std::collections::HashMap;

use codersdk::{
    validate_tool_results_against, ChatMessage, ChatMessagePart, ChatMessageRole, ChatStatus,
    ChatStreamToolCall, ChatWatchEventKind, Uuid, ValidatedToolResult,
};
use sqlx::{AnyConnection, Row};

use super::changes::{
    chat_archived, load_queue, move_to_waiting, moved, pending_calls, promote_head, tool_message,
    LockedChat, LOCKED_CHAT_COLUMNS,
};
use super::chats::{corrupt, insert_message};
use super::{chat_not_found, get_opt_uuid, now_micros, uuid_text};
use super::{ChatTx, Dialect, MessageVisibility, NewMessage, Store, Transition};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Message of the [`ErrorKind::Conflict`] (HTTP 409) answering tool results for a chat
/// that is not `requires_action`, including a repeated submission.
pub const NOT_AWAITING_TOOL_RESULTS_MESSAGE: &str = "Chat is not waiting for tool results.";

/// Message of the [`ErrorKind::InvalidArgument`] (HTTP 400) refusing to edit a message
/// that is not a `user` message.
pub const ONLY_USER_MESSAGES_EDITABLE_MESSAGE: &str = "Only user messages can be edited.";

/// Message of the [`ErrorKind::InvalidArgument`] (HTTP 400) refusing to unarchive a
/// sub-agent chat while its parent is archived.
pub const PARENT_ARCHIVED_MESSAGE: &str =
    "Cannot unarchive a sub-agent chat while its parent chat is archived. Unarchive the parent instead.";

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

/// The answer of [`Store::edit_message`].
#[derive(Debug, Clone, PartialEq)]
pub struct Edited {
    /// The replacement message (`EditChatMessageResponse::message`).
    pub message: ChatMessage,
    /// Ids of the messages soft-deleted: the edited one and every later one, ascending.
    pub deleted_message_ids: Vec<i64>,
    /// The committed transition: the replacement message, the queue (always empty after
    /// an edit), status `pending` (always announced), the preview of a
    /// stopped turn void.
    pub transition: Transition,
    /// Why the files the replacement references were not linked to the chat, if they were
    /// not (as [`SendResult::warnings`](super::SendResult::warnings)); the edit itself
    /// succeeded.
    pub warnings: Vec<String>,
}

impl Store {
    /// The pending dynamic tool calls of the chat ("Pending set"): the
    /// calls of its last non-deleted, non-compressed assistant message whose tool name is
    /// one of the chat's dynamic tools and whose id has no tool-result part in a later
    /// non-deleted message, in call order. These are what an `action_required` event
    /// carries. [`ErrorKind::NotFound`] when the chat does not exist.
    pub async fn pending_tool_calls(&self, chat_id: Uuid) -> Result<Vec<ChatStreamToolCall>> {
        let mut conn = self.pool().acquire().await.db()?;
        pending_calls(&mut conn, chat_id).await
    }

    /// Submits the client's results for the pending dynamic tool calls,
    /// in one transaction under the chat lock. Checks, in order:
    ///
    /// 1. archived chat: [`ErrorKind::InvalidArgument`] (HTTP 400);
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
    ) -> Result<Transition> {
        let now = now_micros();
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = submit_in_tx(&mut tx, results, now).await;
        tx.finish(result).await
    }

    /// Interrupts the chat in one transaction under the chat lock:
    ///
    /// - `running`: `waiting` with the worker fields cleared but the lease epoch kept, so
    ///   the worker's lease becomes [`super::LeaseState::Interrupted`]: it may persist its
    ///   partial step, and its finish routine promotes the queue;
    /// - `requires_action`: a [`TOOL_INTERRUPTED_MESSAGE`](super::TOOL_INTERRUPTED_MESSAGE) error result for every pending
    ///   dynamic call (one `tool` message each), then `waiting`;
    /// - `pending`: `waiting`;
    /// - `waiting`, `error` (or a legacy status): nothing changes.
    ///
    /// No worker finishes a chat that was not `running`, so when a non-archived chat ends
    /// `waiting` with a non-empty queue its head is promoted at once and the chat becomes
    /// `pending`. Leaving `pending` or `requires_action` bumps the lease epoch: no worker
    /// owns such a chat, and an earlier lease that the `pending` status had already
    /// fenced off must not turn into `Interrupted`. The transition of a chat that was
    /// already `waiting` or `error` has written nothing ([`Transition::changed`] is false).
    /// [`ErrorKind::NotFound`] when the chat does not exist.
    pub async fn interrupt(&self, chat_id: Uuid) -> Result<Transition> {
        let now = now_micros();
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = interrupt_in_tx(&mut tx, now).await;
        tx.finish(result).await
    }

    /// Edits user message `message_id` in one transaction under the chat
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
    /// chat sharing that root (row 17), in one transaction holding the
    /// locks of all of them, taken in id order so two family-wide calls cannot deadlock.
    ///
    /// Archive: a no-op (empty answer) when the chat is already archived. Otherwise every
    /// member is archived with `pin_order` 0; `running` members go to `waiting` with the
    /// worker cleared and the epoch kept (like [`Store::interrupt`]: the worker persists
    /// its partial step, and its finish routine promotes nothing in an archived chat);
    /// `pending` members go to `waiting`; `requires_action` members get
    /// [`TOOL_INTERRUPTED_MESSAGE`](super::TOOL_INTERRUPTED_MESSAGE) results for their pending calls, then `waiting`.
    ///
    /// Unarchive: a no-op when the chat is not archived; [`ErrorKind::InvalidArgument`]
    /// ([`PARENT_ARCHIVED_MESSAGE`]) when it has an archived parent. Otherwise every
    /// archived member is unarchived, and a `waiting` one with a queue has its head
    /// promoted (`pending`), since no worker will.
    ///
    /// Returns the transition of every member whose status or flag changed, in id order,
    /// each with the watch event `deleted` (archived) or `created` (unarchived).
    /// `updated_at` is bumped only where the status changed. [`ErrorKind::NotFound`] when the chat does not
    /// exist.
    pub async fn set_archived(&self, chat_id: Uuid, archived: bool) -> Result<Vec<Transition>> {
        let now = now_micros();
        let tx = self.begin_write().await?;
        // Not `begin_chat_tx`: locking the target first and its family after would take
        // the locks out of id order.
        let mut tx = ChatTx {
            tx,
            chat_id,
            locked: None,
        };
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

async fn submit_in_tx(
    tx: &mut ChatTx,
    results: Vec<ValidatedToolResult>,
    now: i64,
) -> Result<Transition> {
    let chat_id = tx.chat_id();
    let chat = tx.locked_chat().await?;
    let conn = tx.conn();
    if chat.archived {
        return Err(chat_archived(chat_id));
    }
    if chat.status != ChatStatus::RequiresAction {
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
    let mut t = chat.transition();
    for result in results {
        // Validation above guarantees every id is pending.
        let name = names
            .get(result.tool_call_id.as_str())
            .copied()
            .unwrap_or_default();
        let part =
            ChatMessagePart::tool_result(result.tool_call_id, name, result.output, result.is_error);
        t.messages
            .push(insert_message(conn, chat_id, now, tool_message(vec![part])).await?);
    }
    sqlx::query("UPDATE chats SET status = $2, last_error = NULL, updated_at = $3 WHERE id = $1")
        .bind(uuid_text(chat_id))
        .bind(ChatStatus::Pending.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await
        .db()?;
    moved(&mut t, &chat, ChatStatus::Pending);
    Ok(t)
}

async fn interrupt_in_tx(tx: &mut ChatTx, now: i64) -> Result<Transition> {
    let chat_id = tx.chat_id();
    let chat = tx.locked_chat().await?;
    let conn = tx.conn();
    let mut t = chat.transition();
    match chat.status {
        ChatStatus::Running => move_to_waiting(conn, &chat, &mut t, now).await?,
        ChatStatus::Pending | ChatStatus::RequiresAction => {
            move_to_waiting(conn, &chat, &mut t, now).await?;
            if !chat.archived && promote_head(conn, &chat, &mut t, now).await? {
                t.queue = Some(load_queue(conn, chat_id).await?);
            }
        }
        _ => {}
    }
    Ok(t)
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
    let chat = tx.locked_chat().await?;
    let conn = tx.conn();
    if chat.archived {
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
    // The replaced messages' files stay linked: the chat used them, and its soft-deleted
    // history still names them.
    let warnings = super::files::link_message_files(conn, chat_id, &edit.parts).await?;
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
    // moves through next, the pre-edit turn can never persist into the new history. The
    // history version tells cached histories that rows changed in place.
    sqlx::query(
        "UPDATE chats SET status = $2, last_error = NULL, worker_id = NULL, \
         started_at = NULL, heartbeat_at = NULL, retry_state = NULL, \
         lease_epoch = lease_epoch + 1, history_version = history_version + 1, \
         updated_at = $3 WHERE id = $1",
    )
    .bind(uuid_text(chat_id))
    .bind(ChatStatus::Pending.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await
    .db()?;
    let mut t = chat.transition();
    t.messages.push(message.clone());
    t.queue = Some(Vec::new());
    // The stopped turn's preview belongs to the history the edit replaced.
    t.preview_reset = true;
    moved(&mut t, &chat, ChatStatus::Pending);
    Ok(Edited {
        message,
        deleted_message_ids,
        transition: t,
        warnings,
    })
}

async fn set_archived_in_tx(
    tx: &mut ChatTx,
    dialect: Dialect,
    archive: bool,
    now: i64,
) -> Result<Vec<Transition>> {
    let chat_id = tx.chat_id();
    let conn = tx.conn();
    let members = lock_family(conn, dialect, chat_id).await?;
    let (target, target_parent) = members
        .iter()
        .find(|(m, _)| m.id == chat_id)
        .ok_or_else(|| chat_not_found(chat_id))?;
    if target.archived == archive {
        return Ok(Vec::new());
    }
    if !archive {
        let parent_archived = target_parent
            .and_then(|parent| members.iter().find(|(m, _)| m.id == parent))
            .is_some_and(|(parent, _)| parent.archived);
        if parent_archived {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                PARENT_ARCHIVED_MESSAGE,
            ));
        }
    }
    let mut changed = Vec::new();
    for (member, _) in &members {
        let report = if archive {
            archive_member(conn, member, now).await?
        } else {
            unarchive_member(conn, member, now).await?
        };
        if let Some(report) = report {
            changed.push(report);
        }
    }
    Ok(changed)
}

/// Locks the whole family of chat `chat_id` (every chat sharing its root), in id order so
/// two family-wide writers cannot deadlock, and returns each member as locked with its
/// parent. [`ErrorKind::NotFound`] when the chat does not exist.
pub(super) async fn lock_family(
    conn: &mut AnyConnection,
    dialect: Dialect,
    chat_id: Uuid,
) -> Result<Vec<(LockedChat, Option<Uuid>)>> {
    // `root_chat_id` never changes, so reading it before taking the locks is safe.
    let root: String = sqlx::query_scalar("SELECT root_chat_id FROM chats WHERE id = $1")
        .bind(uuid_text(chat_id))
        .fetch_optional(&mut *conn)
        .await
        .db()?
        .ok_or_else(|| chat_not_found(chat_id))?;
    let sql = match dialect {
        // `BEGIN IMMEDIATE` already holds the database write lock.
        Dialect::Sqlite => format!(
            "SELECT {LOCKED_CHAT_COLUMNS}, parent_chat_id FROM chats \
             WHERE root_chat_id = $1 ORDER BY id"
        ),
        // PostgreSQL sorts before it locks, so the rows are locked in id order.
        Dialect::Postgres => format!(
            "SELECT {LOCKED_CHAT_COLUMNS}, parent_chat_id FROM chats \
             WHERE root_chat_id = $1 ORDER BY id FOR UPDATE"
        ),
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&root)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    rows.iter()
        .map(|row| {
            Ok((
                LockedChat::from_row(row)?,
                get_opt_uuid(row, "parent_chat_id")?,
            ))
        })
        .collect()
}

pub(super) async fn archive_member(
    conn: &mut AnyConnection,
    member: &LockedChat,
    now: i64,
) -> Result<Option<Transition>> {
    let busy = member.status.is_busy();
    if member.archived && !busy {
        return Ok(None);
    }
    let mut t = member.transition();
    if busy {
        move_to_waiting(conn, member, &mut t, now).await?;
    }
    // A busy member of an archived family keeps the time its family was archived.
    sqlx::query(
        "UPDATE chats SET archived = 1, pin_order = 0, archived_at = COALESCE(archived_at, $2) \
         WHERE id = $1",
    )
    .bind(uuid_text(member.id))
    .bind(now)
    .execute(&mut *conn)
    .await
    .db()?;
    t.watch = Some(ChatWatchEventKind::Deleted);
    Ok(Some(t))
}

async fn unarchive_member(
    conn: &mut AnyConnection,
    member: &LockedChat,
    now: i64,
) -> Result<Option<Transition>> {
    if !member.archived {
        return Ok(None);
    }
    sqlx::query("UPDATE chats SET archived = 0, archived_at = NULL WHERE id = $1")
        .bind(uuid_text(member.id))
        .execute(&mut *conn)
        .await
        .db()?;
    let mut t = member.transition();
    // An archived chat's finish routine promotes nothing, so its queue waited for this.
    if member.status == ChatStatus::Waiting && promote_head(conn, member, &mut t, now).await? {
        t.queue = Some(load_queue(conn, member.id).await?);
    }
    t.watch = Some(ChatWatchEventKind::Created);
    Ok(Some(t))
}
