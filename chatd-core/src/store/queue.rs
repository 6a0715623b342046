//! Sending messages and the per-chat queue.

use codersdk::{
    ChatBusyBehavior, ChatMessage, ChatMessagePart, ChatMessageRole, ChatPlanMode,
    ChatQueuedMessage, ChatStatus, Uuid, CURRENT_CONTENT_VERSION,
};
use sqlx::AnyConnection;

use super::changes::{
    answer_pending_calls, chat_archived, load_queue, move_to_waiting, moved, promote, promote_head,
    queued_not_found, set_pending_if_queue_empty, QUEUE_EMPTY_GUARD, TOOL_INTERRUPTED_MESSAGE,
};
use super::chats::{
    bind_message, content_text, insert_message, inserted_message, json_text, StepColumns,
    MESSAGE_INSERT_COLUMNS, MESSAGE_INSERT_VALUES,
};
use super::{now_micros, timestamp_from_micros, uuid_text};
use super::{
    ChatTx, Dialect, HistoryMark, Lease, MessageVisibility, NewMessage, Store, Transition,
    TurnStart,
};
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

/// A claim a send may make for the process that handles it ([`Store::send_and_claim`]):
/// an idle root chat then goes straight to `running` under this worker instead of to
/// `pending` for the next claim, and its turn starts without a claim transaction of its own
/// (docs/turn-path.md "The send claims its own turn").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendClaim {
    /// The worker that will run the turn.
    pub worker_id: Uuid,
    /// The mark of the chat's prompt history the worker holds, if any: the start handed
    /// back ([`SendResult::turn_start`]) then carries only the rows after it.
    pub known: Option<HistoryMark>,
    /// Most root chats `running` in the whole deployment, as for
    /// [`Store::claim_pending_within`]; at the limit the chat goes `pending` as usual.
    pub max_running_root_chats: usize,
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
    /// The lease of the turn the send claimed ([`Store::send_and_claim`]): the chat is
    /// `running` under the claim's worker, which must run the turn (or hand the chat back);
    /// `None` for every other send.
    pub claimed: Option<Lease>,
    /// What the claimed turn starts from ([`Store::turn_start`]'s answer), read beside the
    /// send's commit rather than after it; `None` when the send claimed nothing, changed
    /// the chat's settings or model, or the read failed (the turn then reads it itself).
    pub turn_start: Option<TurnStart>,
    /// Why the files the message references were not linked to the chat, if they were not
    /// ([`file_link_limit_warning`](super::file_link_limit_warning),
    /// [`file_link_error_warning`](super::file_link_error_warning)); the send itself
    /// succeeded.
    pub warnings: Vec<String>,
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
        self.send_message_checked(chat_id, None, send, None).await
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
        self.send_message_checked(chat_id, Some(owner), send, None)
            .await
    }

    /// [`Store::send_message`] (to a chat of `owner`'s when given, as
    /// [`Store::send_message_as`]) that also claims the turn it starts for `claim`'s worker
    /// when it can, in the same transaction: the chat is a root chat, no other root chat is
    /// `pending` (a send never overtakes chats waiting for a place) and fewer than
    /// `claim.max_running_root_chats` root chats are `running`. The chat then goes from idle
    /// straight to `running` with a bumped epoch, and [`SendResult::claimed`] holds the
    /// lease; otherwise the send is [`Store::send_message`]'s. On PostgreSQL the count is
    /// serialized with every claim by the claims' advisory lock
    /// ([`CLAIM_ADVISORY_LOCK_KEY`](super::CLAIM_ADVISORY_LOCK_KEY)), taken in the chat's
    /// locking statement (also when the chat turns out busy).
    pub async fn send_and_claim(
        &self,
        chat_id: Uuid,
        owner: Option<Uuid>,
        send: SendMessage,
        claim: SendClaim,
    ) -> Result<SendResult> {
        self.send_message_checked(chat_id, owner, send, Some(claim))
            .await
    }

    async fn send_message_checked(
        &self,
        chat_id: Uuid,
        owner: Option<Uuid>,
        send: SendMessage,
        claim: Option<SendClaim>,
    ) -> Result<SendResult> {
        let content = content_text(&send.parts)?;
        let now = now_micros();
        // A send that changes nothing but the history (no model, mode or MCP change) can
        // hand its turn the start read beside its commit.
        let plain = send.model_config_id.is_none()
            && send.plan_mode.is_none()
            && send.mcp_server_ids.is_none();
        let mut tx = self.begin_chat_tx_with(chat_id, claim.is_some()).await?;
        let result = send_in_tx(&mut tx, owner, send, content, now, claim, self.dialect()).await;
        let (mut sent, lease, claim) = match (result, claim) {
            (Ok(sent), Some(claim)) if plain => match sent.claimed {
                Some(lease) => (sent, lease, claim),
                None => return tx.finish(Ok(sent)).await,
            },
            (result, _) => return tx.finish(result).await,
        };
        // The turn's start is read while the send commits, instead of after: no other
        // transaction can change the chat before the commit (the send holds its lock), so
        // a read that runs first sees all but what the send wrote, which it knows.
        let (committed, read) =
            tokio::join!(tx.commit(), self.turn_start_read(&lease, claim.known));
        committed?;
        if let (SendOutcome::Inserted(message), Ok(Some((start, row_epoch)))) =
            (&sent.outcome, read)
        {
            let now = timestamp_from_micros(now)?;
            sent.turn_start = start.claimed_by_send(row_epoch, &lease, message, now);
        }
        Ok(sent)
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
    claim: Option<SendClaim>,
    dialect: Dialect,
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
    // Linked when the message is stored, inserted or queued alike: a queued message's
    // files belong to the chat from now on, whatever becomes of the queue entry.
    let warnings = super::files::link_message_files(conn, chat_id, &send.parts).await?;
    let mut t = chat.transition();
    // An idle chat with an empty queue starts a turn. The queue is checked by the status
    // update itself: a statement run under the lock sees every queue change committed
    // before it (a PostgreSQL locking read that waited would not).
    let idle = !chat.status.is_busy();
    let mut new = NewMessage {
        role: ChatMessageRole::User,
        parts: send.parts,
        visibility: MessageVisibility::Both,
        created_by: send.created_by,
        model_config_id: send.model_config_id,
        usage: None,
    };
    if idle {
        if let Some(claim) = claim {
            let claimed = claim_and_insert(conn, dialect, chat_id, claim, now, new, &content);
            match claimed.await? {
                Ok((lease, message)) => {
                    t.messages.push(message.clone());
                    moved(&mut t, &chat, ChatStatus::Running);
                    return Ok(SendResult {
                        outcome: SendOutcome::Inserted(message),
                        transition: t,
                        claimed: Some(lease),
                        turn_start: None,
                        warnings,
                    });
                }
                Err(unclaimed) => new = unclaimed,
            }
        }
        if set_pending_if_queue_empty(conn, chat_id, now).await? {
            let message = insert_message(conn, chat_id, now, new).await?;
            t.messages.push(message.clone());
            // The chat was idle: no turn runs it, so none is ended (a worker that claims
            // the chat before this is published runs this very message).
            moved(&mut t, &chat, ChatStatus::Pending);
            return Ok(SendResult {
                outcome: SendOutcome::Inserted(message),
                transition: t,
                claimed: None,
                turn_start: None,
                warnings,
            });
        }
    }
    let send_parts = new.parts;
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
        content: send_parts,
        created_at: timestamp_from_micros(now)?,
    };
    t.queue = Some(load_queue(conn, chat_id).await?);
    Ok(SendResult {
        outcome: SendOutcome::Queued {
            queued,
            interrupted,
        },
        transition: t,
        claimed: None,
        turn_start: None,
        warnings,
    })
}

/// Claims the locked, idle chat for `claim.worker_id` when the deployment has a place for
/// it and no other root chat waits for one (see [`Store::send_and_claim`]), and inserts
/// `new` (its parts already encoded as `content`) for it: on PostgreSQL in one statement
/// (the update and the insert as one data-modifying `WITH`), on SQLite in two. `Ok(Err(new))`, writing nothing, when it
/// cannot claim (also when a message waits in the chat's queue).
async fn claim_and_insert(
    conn: &mut AnyConnection,
    dialect: Dialect,
    chat_id: Uuid,
    claim: SendClaim,
    now: i64,
    new: NewMessage,
    content: &str,
) -> Result<std::result::Result<(Lease, ChatMessage), NewMessage>> {
    // On PostgreSQL the claims' advisory lock was taken with the chat's lock
    // (`Store::begin_chat_tx_with`), in an earlier statement: this one's snapshot follows
    // the previous holder's commit. The send's commit stays synchronous: it holds the
    // user's message. The message's parameters are `$1`–`$20` (`$1` the chat, `$15` now,
    // `$3` its model config); the claim's follow.
    let claim_sql = format!(
        "UPDATE chats SET status = $21, last_error = NULL, worker_id = $22, \
         lease_epoch = lease_epoch + 1, started_at = $15, heartbeat_at = $15, updated_at = $15, \
         last_model_config_id = COALESCE($3, last_model_config_id) \
         WHERE id = $1 AND parent_chat_id IS NULL AND archived = 0{QUEUE_EMPTY_GUARD} \
         AND (SELECT COUNT(*) FROM chats r WHERE r.status = $21 \
              AND r.parent_chat_id IS NULL) < $23 \
         AND NOT EXISTS (SELECT 1 FROM chats p WHERE p.status = $24 AND p.archived = 0 \
              AND p.parent_chat_id IS NULL) \
         RETURNING lease_epoch"
    );
    let sql = match dialect {
        Dialect::Postgres => format!(
            "WITH claimed AS ({claim_sql}), inserted AS (\
             INSERT INTO chat_messages ({MESSAGE_INSERT_COLUMNS}) \
             SELECT {MESSAGE_INSERT_VALUES} FROM claimed RETURNING id) \
             SELECT claimed.lease_epoch, inserted.id FROM claimed, inserted"
        ),
        // SQLite has no data-modifying `WITH`: the claim alone (it ignores the unused
        // message parameters), then the insert.
        Dialect::Sqlite => format!("{claim_sql}, 0"),
    };
    let limit = i64::try_from(claim.max_running_root_chats).unwrap_or(i64::MAX);
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    let step = StepColumns::default();
    let row: Option<(i64, i64)> =
        bind_message(query, chat_id, now, &new, content.to_owned(), &step)
            .bind(ChatStatus::Running.as_str())
            .bind(uuid_text(claim.worker_id))
            .bind(limit)
            .bind(ChatStatus::Pending.as_str())
            .fetch_optional(&mut *conn)
            .await
            .db()?;
    let Some((epoch, id)) = row else {
        return Ok(Err(new));
    };
    let lease = Lease {
        chat_id,
        worker_id: claim.worker_id,
        epoch,
    };
    let message = match dialect {
        Dialect::Postgres => inserted_message(id, chat_id, now, new, step.total_cost_micros)?,
        Dialect::Sqlite => insert_message(conn, chat_id, now, new).await?,
    };
    Ok(Ok((lease, message)))
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
