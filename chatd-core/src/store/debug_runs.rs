//! Debug runs (docs/debug-runs.md): the recorded model calls of chats whose debug logging
//! is on, and the settings that decide when it is on — the deployment's "users may turn
//! it on" (`/chats/config/debug-logging`), each user's own toggle
//! (`/chats/config/user-debug-logging`), the deployment flag that forces it on, and the
//! retention window of the runs (`/chats/config/debug-retention-days`).
//!
//! The store keeps what the engine hands it: the documents arrive with secrets already
//! removed (the engine's `debug` module), and the store caps each one at
//! [`MAX_DEBUG_DOCUMENT_BYTES`] and each run at [`MAX_DEBUG_STEPS_PER_RUN`] steps, whoever
//! calls it.

use std::sync::atomic::Ordering;

use codersdk::{
    ChatDebugRun, ChatDebugRunKind, ChatDebugRunSummary, ChatDebugStatus, ChatDebugStep,
    ChatDebugStepOperation, RawJson, Response, Uuid,
};
use sqlx::Row;

use super::Store;
use super::{get_opt_uuid, get_time, get_uuid, now_micros, timestamp_from_micros, uuid_text};
use crate::cluster::ConfigChange;
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Most runs `GET /chats/{chat}/debug/runs` lists (codersdk.md §15: up to 100), newest
/// first.
pub const MAX_DEBUG_RUNS_LISTED: usize = 100;

/// Most steps one run records. A turn's steps past it are still run, not recorded; the
/// run's summary counts them (`steps_dropped`).
pub const MAX_DEBUG_STEPS_PER_RUN: i32 = 64;

/// Largest stored JSON document (a request, a response, usage, an error, an attempt, a
/// summary or metadata), in bytes of its JSON text. A longer one is replaced by an object
/// that says so ([`cap_debug_document`]): `{"truncated": true, "original_bytes": n,
/// "head": "<the first bytes of the text>"}`.
pub const MAX_DEBUG_DOCUMENT_BYTES: usize = 256 * 1024;

/// Most retried attempts one step records (the retry policy bounds them already; this
/// bounds what a caller of the store may write).
pub const MAX_DEBUG_ATTEMPTS_PER_STEP: usize = 32;

/// Largest batch [`Store::purge_debug_runs`] deletes in one statement (a larger
/// `batch_limit` is lowered to it), so one purge never holds the writer long.
pub const MAX_DEBUG_PURGE_BATCH: u32 = 1_000;

/// How many days debug runs are kept until an administrator says otherwise (Coder's
/// `DefaultChatDebugRetentionDays`).
pub const DEFAULT_DEBUG_RETENTION_DAYS: i32 = 30;

/// Longest retention window an administrator may set, in days (codersdk.md §15: 0–3650;
/// 0 keeps runs until their chat is deleted).
pub const MAX_DEBUG_RETENTION_DAYS: i32 = 3_650;

const ALLOW_USERS_KEY: &str = "chat_debug_logging_allow_users";
const RETENTION_DAYS_KEY: &str = "chat_debug_retention_days";

const RUN_COLUMNS: &str = "id, chat_id, root_chat_id, parent_chat_id, model_config_id, \
     trigger_message_id, history_tip_message_id, kind, status, provider, model, summary, \
     started_at, updated_at, finished_at";

const STEP_COLUMNS: &str = "id, run_id, chat_id, step_number, operation, status, \
     history_tip_message_id, assistant_message_id, normalized_request, normalized_response, \
     usage, attempts, error, metadata, started_at, updated_at, finished_at";

/// A run to start with [`Store::insert_debug_run`] (status `in_progress`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDebugRun {
    /// Run id.
    pub id: Uuid,
    /// The chat.
    pub chat_id: Uuid,
    /// The chat's root chat (sub-agents).
    pub root_chat_id: Option<Uuid>,
    /// The chat's parent chat (sub-agents).
    pub parent_chat_id: Option<Uuid>,
    /// The model config that serves the run.
    pub model_config_id: Option<Uuid>,
    /// The message that triggered the run (the user message a turn answers).
    pub trigger_message_id: Option<i64>,
    /// The newest message of the history when the run started.
    pub history_tip_message_id: Option<i64>,
    /// Kind.
    pub kind: ChatDebugRunKind,
    /// Provider id.
    pub provider: Option<String>,
    /// Model id.
    pub model: Option<String>,
    /// Start, Unix microseconds.
    pub started_at: i64,
}

/// A step to start with [`Store::insert_debug_step`] (status `in_progress`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDebugStep {
    /// Step id.
    pub id: Uuid,
    /// Its run.
    pub run_id: Uuid,
    /// The chat.
    pub chat_id: Uuid,
    /// 1-based number in the run.
    pub step_number: i32,
    /// Streaming or not.
    pub operation: ChatDebugStepOperation,
    /// The newest message of the prompt.
    pub history_tip_message_id: Option<i64>,
    /// The provider-neutral request, secrets removed.
    pub normalized_request: RawJson,
    /// Start, Unix microseconds.
    pub started_at: i64,
}

/// How a step ended, for [`Store::finish_debug_step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugStepEnd {
    /// `completed`, `error` or `interrupted`.
    pub status: ChatDebugStatus,
    /// The assistant message the step persisted.
    pub assistant_message_id: Option<i64>,
    /// The provider-neutral response (a partial one when interrupted), secrets removed.
    pub normalized_response: Option<RawJson>,
    /// Usage.
    pub usage: Option<RawJson>,
    /// The failed attempts that were retried, in order.
    pub attempts: Vec<RawJson>,
    /// The error that ended the step.
    pub error: Option<RawJson>,
    /// Timings and other facts of the call.
    pub metadata: RawJson,
    /// End, Unix microseconds.
    pub finished_at: i64,
}

/// `doc` as stored: unchanged when its JSON text is at most [`MAX_DEBUG_DOCUMENT_BYTES`]
/// long, else `{"truncated": true, "original_bytes": n, "head": "…"}` with the text's
/// first bytes (cut at a character boundary) as a string, so the stored document stays
/// valid JSON within the cap.
pub fn cap_debug_document(doc: &RawJson) -> RawJson {
    let text = doc.get();
    if text.len() <= MAX_DEBUG_DOCUMENT_BYTES {
        return doc.clone();
    }
    // Room for the wrapper and the escaping of the head (at most 6 bytes per byte, for
    // control characters written `\u00XX`): an eighth of the cap always fits.
    let mut cut = MAX_DEBUG_DOCUMENT_BYTES / 8;
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = text.get(..cut).unwrap_or_default();
    let capped = serde_json::json!({
        "truncated": true,
        "original_bytes": text.len(),
        "head": head,
    });
    RawJson::from_value(&capped).unwrap_or_else(|_| RawJson::empty_object())
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn stored_json(row: &sqlx::any::AnyRow, col: &str) -> Result<RawJson> {
    let text: String = row.try_get(col).db()?;
    RawJson::from_json(&text).map_err(|_| corrupt(col))
}

fn stored_opt_json(row: &sqlx::any::AnyRow, col: &str) -> Result<Option<RawJson>> {
    let text: Option<String> = row.try_get(col).db()?;
    text.map(|t| RawJson::from_json(&t).map_err(|_| corrupt(col)))
        .transpose()
}

fn stored_opt_time(row: &sqlx::any::AnyRow, col: &str) -> Result<Option<codersdk::Timestamp>> {
    row.try_get::<Option<i64>, _>(col)
        .db()?
        .map(timestamp_from_micros)
        .transpose()
}

fn corrupt(col: &str) -> Error {
    Error::new(
        ErrorKind::CorruptRow,
        format!("stored debug {col} is not valid JSON"),
    )
}

fn summary_from_row(row: &sqlx::any::AnyRow) -> Result<ChatDebugRunSummary> {
    Ok(ChatDebugRunSummary {
        id: get_uuid(row, "id")?,
        chat_id: get_uuid(row, "chat_id")?,
        kind: ChatDebugRunKind::from_wire(&row.try_get::<String, _>("kind").db()?),
        status: ChatDebugStatus::from_wire(&row.try_get::<String, _>("status").db()?),
        provider: row.try_get("provider").db()?,
        model: row.try_get("model").db()?,
        summary: stored_json(row, "summary")?,
        started_at: get_time(row, "started_at")?,
        updated_at: get_time(row, "updated_at")?,
        finished_at: stored_opt_time(row, "finished_at")?,
    })
}

fn step_from_row(row: &sqlx::any::AnyRow) -> Result<ChatDebugStep> {
    let attempts = stored_json(row, "attempts")?
        .parse::<Vec<RawJson>>()
        .map_err(|_| corrupt("attempts"))?;
    Ok(ChatDebugStep {
        id: get_uuid(row, "id")?,
        run_id: get_uuid(row, "run_id")?,
        chat_id: get_uuid(row, "chat_id")?,
        step_number: row.try_get::<i32, _>("step_number").db()?,
        operation: ChatDebugStepOperation::from_wire(&row.try_get::<String, _>("operation").db()?),
        status: ChatDebugStatus::from_wire(&row.try_get::<String, _>("status").db()?),
        history_tip_message_id: row.try_get("history_tip_message_id").db()?,
        assistant_message_id: row.try_get("assistant_message_id").db()?,
        normalized_request: stored_json(row, "normalized_request")?,
        normalized_response: stored_opt_json(row, "normalized_response")?,
        usage: stored_opt_json(row, "usage")?,
        attempts,
        error: stored_opt_json(row, "error")?,
        metadata: stored_json(row, "metadata")?,
        started_at: get_time(row, "started_at")?,
        updated_at: get_time(row, "updated_at")?,
        finished_at: stored_opt_time(row, "finished_at")?,
    })
}

fn retention_invalid(days: i32) -> Error {
    Error::with_response(
        ErrorKind::InvalidArgument,
        Response::new("Invalid debug retention days.").with_validation(
            "debug_retention_days",
            format!(
                "{days} is out of range: the retention must be between 0 and \
                 {MAX_DEBUG_RETENTION_DAYS} days (0 keeps debug runs until their chat is \
                 deleted)."
            ),
        ),
    )
}

impl Store {
    // -----------------------------------------------------------------------------------
    // Settings
    // -----------------------------------------------------------------------------------

    /// Whether the deployment forces debug logging on for every chat: a flag of the
    /// process (the server's `--chat-debug-logging-forced`), not a stored setting, shared
    /// by every clone of this store. Off by default.
    pub fn debug_logging_forced(&self) -> bool {
        self.debug_logging_forced.load(Ordering::Relaxed)
    }

    /// Forces debug logging on (or not) for every chat this store's engine runs; see
    /// [`Store::debug_logging_forced`]. Each replica sets it from its own flag.
    pub fn set_debug_logging_forced(&self, forced: bool) {
        self.debug_logging_forced.store(forced, Ordering::Relaxed);
    }

    /// Whether users may turn debug logging on for their own chats
    /// (`/chats/config/debug-logging`); off until an administrator allows it.
    pub async fn debug_logging_allow_users(&self) -> Result<bool> {
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM site_config WHERE key = $1")
                .bind(ALLOW_USERS_KEY)
                .fetch_optional(self.pool())
                .await
                .db()?;
        Ok(value.as_deref() == Some("true"))
    }

    /// Allows (or forbids) users to turn debug logging on for their own chats. Users'
    /// toggles are kept either way: forbidding stops their recording, allowing again
    /// resumes it.
    pub async fn set_debug_logging_allow_users(&self, allow: bool) -> Result<()> {
        let result = self
            .put_debug_setting(ALLOW_USERS_KEY, bool_text(allow))
            .await;
        self.changed(result, ConfigChange::Deployment)
    }

    /// `user_id`'s own debug-logging toggle (off when never set). Whether it records
    /// depends on the deployment too ([`Store::debug_logging_on`]).
    pub async fn user_debug_logging(&self, user_id: Uuid) -> Result<bool> {
        let enabled: Option<i64> =
            sqlx::query_scalar("SELECT enabled FROM user_chat_debug_logging WHERE user_id = $1")
                .bind(uuid_text(user_id))
                .fetch_optional(self.pool())
                .await
                .db()?;
        Ok(enabled.is_some_and(|e| e != 0))
    }

    /// Sets `user_id`'s own debug-logging toggle. The rules of who may (the deployment
    /// allows it, does not force it) are the caller's ([`crate::Admin`]).
    pub async fn set_user_debug_logging(&self, user_id: Uuid, enabled: bool) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO user_chat_debug_logging (user_id, enabled, updated_at) \
             VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE SET \
             enabled = excluded.enabled, updated_at = excluded.updated_at",
        )
        .bind(uuid_text(user_id))
        .bind(i64::from(enabled))
        .bind(now_micros())
        .execute(self.writer())
        .await
        .db()
        .map(|_| ());
        self.changed(result, ConfigChange::UserDebugLogging { user_id })
    }

    /// How many days debug runs are kept ([`DEFAULT_DEBUG_RETENTION_DAYS`] until set; 0
    /// keeps them until their chat is deleted).
    pub async fn debug_retention_days(&self) -> Result<i32> {
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM site_config WHERE key = $1")
                .bind(RETENTION_DAYS_KEY)
                .fetch_optional(self.pool())
                .await
                .db()?;
        match value {
            None => Ok(DEFAULT_DEBUG_RETENTION_DAYS),
            Some(v) => v.parse::<i32>().map_err(|_| {
                Error::new(
                    ErrorKind::CorruptRow,
                    "stored debug retention days is not a number",
                )
            }),
        }
    }

    /// Sets the retention window of debug runs: 0 to [`MAX_DEBUG_RETENTION_DAYS`] days,
    /// else [`ErrorKind::InvalidArgument`] whose validation names `debug_retention_days`.
    pub async fn set_debug_retention_days(&self, days: i32) -> Result<()> {
        if !(0..=MAX_DEBUG_RETENTION_DAYS).contains(&days) {
            return Err(retention_invalid(days));
        }
        let result = self
            .put_debug_setting(RETENTION_DAYS_KEY, &days.to_string())
            .await;
        self.changed(result, ConfigChange::Deployment)
    }

    async fn put_debug_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO site_config (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(now_micros())
        .execute(self.writer())
        .await
        .db()?;
        Ok(())
    }

    /// Whether the model calls of `owner_id`'s chats are recorded: forced by the
    /// deployment, or allowed to users and turned on by the owner. What every turn asks:
    /// the flag is in memory and both settings come from the hot-config cache
    /// ([`crate::configcache`]), the owner's only when users are allowed, so a warm turn
    /// that records nothing reads nothing from the database for it.
    pub async fn debug_logging_on(&self, owner_id: Uuid) -> Result<bool> {
        if self.debug_logging_forced() {
            return Ok(true);
        }
        let cache = self.config_cache();
        let allowed = cache
            .debug_logging_allow_users
            .get_or_load(&(), || self.debug_logging_allow_users())
            .await?;
        if !allowed {
            return Ok(false);
        }
        cache
            .user_debug_logging
            .get_or_load(&owner_id, || self.user_debug_logging(owner_id))
            .await
    }

    // -----------------------------------------------------------------------------------
    // Runs and steps
    // -----------------------------------------------------------------------------------

    /// Starts a run (`in_progress`, summary `{}`). One statement.
    pub async fn insert_debug_run(&self, run: &NewDebugRun) -> Result<()> {
        sqlx::query(
            "INSERT INTO chat_debug_runs (id, chat_id, root_chat_id, parent_chat_id, \
             model_config_id, trigger_message_id, history_tip_message_id, kind, status, \
             provider, model, summary, started_at, updated_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, '{}', $12, $12, NULL)",
        )
        .bind(uuid_text(run.id))
        .bind(uuid_text(run.chat_id))
        .bind(run.root_chat_id.map(uuid_text))
        .bind(run.parent_chat_id.map(uuid_text))
        .bind(run.model_config_id.map(uuid_text))
        .bind(run.trigger_message_id)
        .bind(run.history_tip_message_id)
        .bind(run.kind.as_str())
        .bind(ChatDebugStatus::InProgress.as_str())
        .bind(run.provider.as_deref())
        .bind(run.model.as_deref())
        .bind(run.started_at)
        .execute(self.writer())
        .await
        .db()?;
        Ok(())
    }

    /// Starts a step (`in_progress`, no attempts yet). `Ok(false)` without writing when its
    /// number is past [`MAX_DEBUG_STEPS_PER_RUN`] (or below 1); the request is capped at
    /// [`MAX_DEBUG_DOCUMENT_BYTES`].
    pub async fn insert_debug_step(&self, step: &NewDebugStep) -> Result<bool> {
        if !(1..=MAX_DEBUG_STEPS_PER_RUN).contains(&step.step_number) {
            return Ok(false);
        }
        let request = cap_debug_document(&step.normalized_request);
        sqlx::query(
            "INSERT INTO chat_debug_steps (id, run_id, chat_id, step_number, operation, status, \
             history_tip_message_id, assistant_message_id, normalized_request, \
             normalized_response, usage, attempts, error, metadata, started_at, updated_at, \
             finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, NULL, NULL, '[]', NULL, '{}', $9, $9, \
             NULL)",
        )
        .bind(uuid_text(step.id))
        .bind(uuid_text(step.run_id))
        .bind(uuid_text(step.chat_id))
        .bind(step.step_number)
        .bind(step.operation.as_str())
        .bind(ChatDebugStatus::InProgress.as_str())
        .bind(step.history_tip_message_id)
        .bind(request.get())
        .bind(step.started_at)
        .execute(self.writer())
        .await
        .db()?;
        Ok(true)
    }

    /// Ends a step: status, response, usage, attempts (at most
    /// [`MAX_DEBUG_ATTEMPTS_PER_STEP`], the first ones), error, metadata, each document
    /// capped. One statement.
    pub async fn finish_debug_step(&self, step_id: Uuid, end: &DebugStepEnd) -> Result<()> {
        let attempts: Vec<RawJson> = end
            .attempts
            .iter()
            .take(MAX_DEBUG_ATTEMPTS_PER_STEP)
            .map(cap_debug_document)
            .collect();
        let attempts = RawJson::from_value(&attempts).unwrap_or_else(|_| RawJson::null());
        let attempts = if attempts.is_null() {
            "[]".to_owned()
        } else {
            attempts.get().to_owned()
        };
        let opt = |d: &Option<RawJson>| d.as_ref().map(|d| cap_debug_document(d).get().to_owned());
        sqlx::query(
            "UPDATE chat_debug_steps SET status = $1, assistant_message_id = $2, \
             normalized_response = $3, usage = $4, attempts = $5, error = $6, metadata = $7, \
             updated_at = $8, finished_at = $8 WHERE id = $9",
        )
        .bind(end.status.as_str())
        .bind(end.assistant_message_id)
        .bind(opt(&end.normalized_response))
        .bind(opt(&end.usage))
        .bind(attempts)
        .bind(opt(&end.error))
        .bind(cap_debug_document(&end.metadata).get().to_owned())
        .bind(end.finished_at)
        .bind(uuid_text(step_id))
        .execute(self.writer())
        .await
        .db()?;
        Ok(())
    }

    /// Ends a run with `status` and its `summary` (capped). One statement.
    pub async fn finish_debug_run(
        &self,
        run_id: Uuid,
        status: &ChatDebugStatus,
        summary: &RawJson,
        finished_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE chat_debug_runs SET status = $1, summary = $2, updated_at = $3, \
             finished_at = $3 WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(cap_debug_document(summary).get().to_owned())
        .bind(finished_at)
        .bind(uuid_text(run_id))
        .execute(self.writer())
        .await
        .db()?;
        Ok(())
    }

    /// The newest [`MAX_DEBUG_RUNS_LISTED`] runs of `chat_id`, newest first (by start,
    /// then id). The caller checks who may read the chat.
    pub async fn list_debug_runs(&self, chat_id: Uuid) -> Result<Vec<ChatDebugRunSummary>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE chat_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
        );
        let limit = i64::try_from(MAX_DEBUG_RUNS_LISTED).unwrap_or(i64::MAX);
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(chat_id))
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .db()?;
        rows.iter().map(summary_from_row).collect()
    }

    /// Run `run_id` of `chat_id` with its steps in order; `None` when the chat has no such
    /// run. The caller checks who may read the chat.
    pub async fn debug_run(&self, chat_id: Uuid, run_id: Uuid) -> Result<Option<ChatDebugRun>> {
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE id = $1 AND chat_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(run_id))
            .bind(uuid_text(chat_id))
            .fetch_optional(self.pool())
            .await
            .db()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let s = summary_from_row(&row)?;
        let sql = format!(
            "SELECT {STEP_COLUMNS} FROM chat_debug_steps WHERE run_id = $1 ORDER BY step_number"
        );
        let steps = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(run_id))
            .fetch_all(self.pool())
            .await
            .db()?
            .iter()
            .map(step_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(ChatDebugRun {
            id: s.id,
            chat_id: s.chat_id,
            root_chat_id: get_opt_uuid(&row, "root_chat_id")?,
            parent_chat_id: get_opt_uuid(&row, "parent_chat_id")?,
            model_config_id: get_opt_uuid(&row, "model_config_id")?,
            trigger_message_id: row.try_get("trigger_message_id").db()?,
            history_tip_message_id: row.try_get("history_tip_message_id").db()?,
            kind: s.kind,
            status: s.status,
            provider: s.provider,
            model: s.model,
            summary: s.summary,
            started_at: s.started_at,
            updated_at: s.updated_at,
            finished_at: s.finished_at,
            steps,
        }))
    }

    /// Deletes up to `batch_limit` (at most [`MAX_DEBUG_PURGE_BATCH`]) runs, with their
    /// steps, that last changed before `older_than_micros`: finished runs by their end,
    /// runs left `in_progress` by a process that died by their last write. Oldest first;
    /// returns how many runs went. Call again while it returns `batch_limit`.
    pub async fn purge_debug_runs(&self, older_than_micros: i64, batch_limit: u32) -> Result<u64> {
        let limit = batch_limit.min(MAX_DEBUG_PURGE_BATCH);
        if limit == 0 {
            return Ok(0);
        }
        let done = sqlx::query(
            "DELETE FROM chat_debug_runs WHERE id IN (SELECT id FROM chat_debug_runs \
             WHERE updated_at < $1 ORDER BY updated_at LIMIT $2)",
        )
        .bind(older_than_micros)
        .bind(i64::from(limit))
        .execute(self.writer())
        .await
        .db()?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn documents_at_the_cap_are_kept_and_longer_ones_truncated() {
        // `"` + text + `"`: exactly the cap.
        let at_cap = format!("\"{}\"", "a".repeat(MAX_DEBUG_DOCUMENT_BYTES - 2));
        let doc = RawJson::from_json(&at_cap).unwrap();
        assert_eq!(cap_debug_document(&doc), doc);

        let over = format!("\"{}\"", "é".repeat(MAX_DEBUG_DOCUMENT_BYTES));
        let capped = cap_debug_document(&RawJson::from_json(&over).unwrap());
        assert!(capped.get().len() <= MAX_DEBUG_DOCUMENT_BYTES);
        let v = capped.to_value();
        assert_eq!(v["truncated"], true);
        assert_eq!(v["original_bytes"], over.len());
        assert!(v["head"].as_str().unwrap().starts_with("\"é"));
    }
}
