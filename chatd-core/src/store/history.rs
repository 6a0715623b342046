//! What a turn reads: the model-visible history (the files its messages reference are
//! [`super::files`]'s).

use codersdk::{ChatMessage, Uuid};
use sqlx::Row;

use super::chats::{
    chat_from_row, injected_context_for_output, labels_from_json, labels_json_column,
    message_from_row, CHAT_COLUMNS, MESSAGE_COLUMNS,
};
use super::{get_opt_uuid, uuid_text, Lease, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

impl Store {
    /// The history a model sees, oldest first: the non-deleted messages with visibility
    /// `model` or `both` from the newest compaction boundary on — every `system` row, the
    /// boundary (the newest compressed, model-only summary row), and every uncompressed
    /// row after it (the other rows of a compaction are bookkeeping for the user's view,
    /// never prompt). Without a boundary it is the whole model-visible history.
    /// [`ErrorKind::NotFound`] when the chat does not exist.
    ///
    /// The rows come from one statement (the boundary is a subquery on a partial index), so
    /// the prompt and its boundary come from one snapshot.
    pub async fn prompt_history(&self, chat_id: Uuid) -> Result<Vec<ChatMessage>> {
        let mut conn = self.pool().acquire().await.db()?;
        super::ensure_chat_exists(&mut conn, chat_id).await?;
        drop(conn);
        self.prompt_history_rows(chat_id).await
    }

    /// [`Store::prompt_history`] without the existence check (an unknown chat has no rows).
    async fn prompt_history_rows(&self, chat_id: Uuid) -> Result<Vec<ChatMessage>> {
        Ok(self.prompt_rows_after(chat_id, 0).await?.messages)
    }

    /// The prompt history's rows with id greater than `after_id` (`0`: all of them), with
    /// the history version and compaction boundary they were read with (one statement, so
    /// one snapshot).
    async fn prompt_rows_after(&self, chat_id: Uuid, after_id: i64) -> Result<PromptRows> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS}, \
             (SELECT h.history_version FROM chats h WHERE h.id = $1) AS history_version, \
             ({COMPACTION_BOUNDARY}) AS boundary_id \
             FROM chat_messages WHERE chat_id = $1 \
             AND visibility IN ('model', 'both') AND deleted = 0 AND id > $2 \
             AND (role = 'system' OR (id >= ({COMPACTION_BOUNDARY}) \
             AND (compressed = 0 OR id = ({COMPACTION_BOUNDARY})))) ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(chat_id))
            .bind(after_id)
            .fetch_all(self.pool())
            .await
            .db()?;
        let mark = match rows.first() {
            Some(row) => Some(HistoryMark {
                version: row.try_get("history_version").db()?,
                boundary: row.try_get("boundary_id").db()?,
                last_id: rows
                    .last()
                    .map(|r| r.try_get::<i64, _>("id"))
                    .transpose()
                    .db()?
                    .unwrap_or(after_id),
            }),
            None => None,
        };
        Ok(PromptRows {
            messages: rows.iter().map(message_from_row).collect::<Result<_>>()?,
            mark,
        })
    }

    /// The OpenAI Responses id saved with message `message_id` of `chat_id` (only steps of
    /// a model that stores its responses have one); `None` for another message, a deleted
    /// one, or one without an id. The engine reads it for the anchor of a chained request
    /// (docs/engine-design.md, "OpenAI Responses chaining"): the id is not part of
    /// [`ChatMessage`], which is also the API's message, so it is looked up beside it.
    pub async fn provider_response_id(
        &self,
        chat_id: Uuid,
        message_id: i64,
    ) -> Result<Option<String>> {
        let id: Option<Option<String>> = sqlx::query_scalar(
            "SELECT provider_response_id FROM chat_messages \
             WHERE chat_id = $1 AND id = $2 AND deleted = 0",
        )
        .bind(uuid_text(chat_id))
        .bind(message_id)
        .fetch_optional(self.pool())
        .await
        .db()?;
        Ok(id.flatten().filter(|id| !id.trim().is_empty()))
    }

    /// The user-visible messages with id greater than `after_id`, oldest first: what a
    /// stream subscriber has not seen yet.
    pub async fn messages_after(&self, chat_id: Uuid, after_id: i64) -> Result<Vec<ChatMessage>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE chat_id = $1 \
             AND visibility IN ('user', 'both') AND deleted = 0 AND id > $2 ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(chat_id))
            .bind(after_id)
            .fetch_all(self.pool())
            .await
            .db()?;
        rows.iter().map(message_from_row).collect()
    }
}

/// The chat columns a turn needs beyond [`codersdk::Chat`].
#[derive(Debug, Clone, PartialEq)]
pub struct TurnInputs {
    /// The chat.
    pub chat: codersdk::Chat,
    /// Client-executed tools declared at creation.
    pub dynamic_tools: Vec<codersdk::DynamicTool>,
    /// The chat's own system prompt (empty when none).
    pub system_prompt: String,
    /// What makes the chat a sub-agent; `None` for a root chat.
    pub subagent: Option<super::SubagentInfo>,
    /// A manual compaction waits ([`Store::request_compaction`]).
    pub compaction_requested: bool,
}

impl Store {
    /// The chat with its dynamic tools and system prompt; `None` when it does not exist.
    /// One statement.
    pub async fn turn_inputs(&self, chat_id: Uuid) -> Result<Option<TurnInputs>> {
        Ok(self.read_turn_row(chat_id).await?.map(|(inputs, _)| inputs))
    }

    /// What a turn of `lease` starts from, in two statements run concurrently: the state of
    /// the lease and the chat's [`TurnInputs`] (one read of the chat row), and the prompt
    /// history ([`Store::prompt_history`]). `None` when the chat does not exist.
    pub async fn turn_start(
        &self,
        lease: &Lease,
        known: Option<HistoryMark>,
    ) -> Result<Option<TurnStart>> {
        Ok(self
            .turn_start_read(lease, known)
            .await?
            .map(|(start, _)| start))
    }

    /// [`Store::turn_start`], also returning the lease epoch the chat row had.
    pub(super) async fn turn_start_read(
        &self,
        lease: &Lease,
        known: Option<HistoryMark>,
    ) -> Result<Option<(TurnStart, i64)>> {
        let after = known.map_or(0, |mark| mark.last_id);
        let (row, rows) = tokio::join!(
            self.read_turn_row(lease.chat_id),
            self.prompt_rows_after(lease.chat_id, after)
        );
        let Some((inputs, (status, worker, epoch))) = row? else {
            return Ok(None);
        };
        let rows = rows?;
        // Rows after the known ones extend the history only while the version and the
        // boundary are the ones it was read with; otherwise (or with nothing new to prove
        // them) the whole history is read again.
        let history = match (known, rows.mark) {
            (None, mark) => HistoryRead::Full {
                messages: rows.messages,
                mark,
            },
            (Some(known), Some(mark))
                if mark.version == known.version && mark.boundary == known.boundary =>
            {
                HistoryRead::Appended {
                    messages: rows.messages,
                    mark,
                }
            }
            (Some(_), _) => {
                let full = self.prompt_rows_after(lease.chat_id, 0).await?;
                HistoryRead::Full {
                    messages: full.messages,
                    mark: full.mark,
                }
            }
        };
        Ok(Some((
            TurnStart {
                lease: super::leases::lease_state_parts(&status, worker, epoch, lease),
                inputs,
                history,
            },
            epoch,
        )))
    }

    /// The chat row with everything a turn reads of it, and its lease columns.
    async fn read_turn_row(
        &self,
        chat_id: Uuid,
    ) -> Result<Option<(TurnInputs, (codersdk::ChatStatus, Option<Uuid>, i64))>> {
        let sql = format!(
            "SELECT {CHAT_COLUMNS}, c.last_injected_context, {} AS labels_json, \
             c.dynamic_tools, c.system_prompt, c.mode, c.reasoning_effort, \
             c.compaction_requested, c.worker_id, c.lease_epoch FROM chats c WHERE c.id = $1",
            labels_json_column(self.dialect())
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(chat_id))
            .fetch_optional(self.pool())
            .await
            .db()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut chat = chat_from_row(&row)?;
        chat.last_injected_context = injected_context_for_output(&row)?;
        chat.labels = labels_from_json(&row)?;
        let tools: Option<String> = row.try_get("dynamic_tools").db()?;
        let dynamic_tools = match tools {
            Some(text) => serde_json::from_str(&text).map_err(|_| {
                Error::new(ErrorKind::CorruptRow, "stored dynamic_tools is malformed")
            })?,
            None => Vec::new(),
        };
        let lease = (
            chat.status.clone(),
            get_opt_uuid(&row, "worker_id")?,
            row.try_get("lease_epoch").db()?,
        );
        Ok(Some((
            TurnInputs {
                chat,
                dynamic_tools,
                system_prompt: row.try_get("system_prompt").db()?,
                subagent: super::subagents::subagent_from_row(&row)?,
                compaction_requested: row.try_get::<i64, _>("compaction_requested").db()? != 0,
            },
            lease,
        )))
    }
}

/// What [`Store::turn_start`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnStart {
    /// The state of the turn's lease when the chat row was read.
    pub lease: super::LeaseState,
    /// The chat and its turn columns.
    pub inputs: TurnInputs,
    /// The prompt history, whole or the rows after a known part of it.
    pub history: HistoryRead,
}

impl TurnStart {
    /// The start of the turn a send claimed (`lease`, inserting `message` at `now`), from
    /// a [`Store::turn_start_read`] run beside the send's commit, which may have read the
    /// chat before the commit or after it. A row read before (its epoch is older than the
    /// lease's: nothing but the send could change the chat while it held the lock) gets
    /// what the send wrote: `running` under the lease, the error cleared, `updated_at`, and
    /// the message at the end of the history. A row read after is taken as it is, so an
    /// operation that took the chat right after the commit is seen, as by any claimed
    /// turn. `None` when no history mark can be kept (an empty history).
    pub(super) fn claimed_by_send(
        mut self,
        row_epoch: i64,
        lease: &Lease,
        message: &ChatMessage,
        now: codersdk::Timestamp,
    ) -> Option<TurnStart> {
        if row_epoch < lease.epoch {
            self.lease = super::LeaseState::Owned;
            let chat = &mut self.inputs.chat;
            chat.status = codersdk::ChatStatus::Running;
            chat.last_error = None;
            chat.updated_at = now;
        }
        let (messages, mark) = match &mut self.history {
            HistoryRead::Appended { messages, mark } => (messages, mark),
            HistoryRead::Full {
                messages,
                mark: Some(mark),
            } => (messages, mark),
            HistoryRead::Full { mark: None, .. } => return None,
        };
        // A history read after the commit already ends with the message.
        if messages.last().map(|m| m.id) != Some(message.id) && mark.last_id < message.id {
            messages.push(message.clone());
            mark.last_id = message.id;
        }
        Some(self)
    }
}

/// Where a read of a chat's prompt history stands: the history version and compaction
/// boundary it was read with, and its newest row. A history held in memory with a mark is
/// still valid, and extended by the rows after `last_id`, while the chat's version and
/// boundary are unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryMark {
    /// The chat's `history_version` (bumped by edits, which change rows in place).
    pub version: i64,
    /// The id of the newest compaction boundary (`0`: none).
    pub boundary: i64,
    /// The newest row read.
    pub last_id: i64,
}

/// The prompt history a [`Store::turn_start`] read.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum HistoryRead {
    /// The whole history ([`Store::prompt_history`]); `mark` is `None` when it is empty.
    Full {
        /// The rows, oldest first.
        messages: Vec<ChatMessage>,
        /// Where it stands.
        mark: Option<HistoryMark>,
    },
    /// The rows after the known mark's `last_id`, which extend the known history.
    Appended {
        /// The new rows, oldest first.
        messages: Vec<ChatMessage>,
        /// Where the extended history stands.
        mark: HistoryMark,
    },
}

/// Rows of a prompt-history read and where they stand (`None` without rows).
struct PromptRows {
    messages: Vec<ChatMessage>,
    mark: Option<HistoryMark>,
}

/// The id of a chat's newest compaction boundary (the chat is `$1`), `0` without one: its
/// newest non-deleted, compressed, model-only user row.
const COMPACTION_BOUNDARY: &str = "SELECT COALESCE(MAX(b.id), 0) FROM chat_messages b \
    WHERE b.chat_id = $1 AND b.compressed = 1 AND b.deleted = 0 AND b.visibility = 'model' \
    AND b.role = 'user'";
