//! Spend and cost reports: what the owner's model calls cost, summed from the messages'
//! exact `total_cost_micros` (usage limits and cost reports read the same rows).
//!
//! Every model call is a message row: the steps of a turn are assistant messages, and calls
//! outside the history (titles, turn summaries, compaction summaries) are hidden usage rows
//! ([`Store::record_hidden_usage`]). Deleted rows count: a call that was paid for stays paid
//! for when an edit or a retention purge hides its message. Unpriced rows (`NULL` cost) add
//! nothing to a sum. PostgreSQL's `SUM` of a `BIGINT` is a `NUMERIC`, so every sum is cast
//! back to `BIGINT` (exact; a sum past 2^63 micro-dollars fails rather than rounds).
//!
//! The reports ([`Store::cost_summary`], [`Store::cost_by_user`]) count *usage rows*:
//! assistant rows that carry a cost or any token count. A priced row has a cost, an unpriced
//! one has tokens but no cost. Every part of a report sums the same rows from one snapshot,
//! so the totals equal the sum of either breakdown (docs/cost-reports.md). The statements
//! read the index `chat_messages (chat_id, created_at)` (one owner) or
//! `chat_messages (created_at)` (all users) of migration 0014.

use codersdk::{
    ChatCostChatBreakdown, ChatCostModelBreakdown, ChatCostTotals, ChatCostUserRollup, Uuid,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{get_opt_uuid, get_uuid, uuid_text, Dialect, Store};

use crate::error::{DbResultExt, Result};

/// The rows a cost report counts, as a condition on `chat_messages m`: assistant rows with a
/// cost or any token count — every step of a turn and every hidden usage row. An assistant
/// row without either is not a model call the report can account for (the boundary row of
/// a compaction, whose call is its own hidden usage row; a step interrupted before the
/// provider reported usage).
const USAGE_ROW: &str = "m.role = 'assistant' AND (m.total_cost_micros IS NOT NULL \
     OR m.input_tokens IS NOT NULL OR m.output_tokens IS NOT NULL \
     OR m.total_tokens IS NOT NULL OR m.reasoning_tokens IS NOT NULL \
     OR m.cache_creation_tokens IS NOT NULL OR m.cache_read_tokens IS NOT NULL)";

/// Most root chats in a summary's `by_chat` (the most expensive first); the summary's totals
/// still count every chat.
pub const MAX_COST_SUMMARY_CHATS: i64 = 1000;

/// The display name of the `by_model` entry of usage rows that name no model config (the
/// entry's `model_config_id` is the nil UUID).
pub const UNKNOWN_MODEL_DISPLAY_NAME: &str = "Unknown model";

/// The sums every report selects, over the `USAGE_ROW`s: `total_cost_micros`,
/// `priced_count`, `message_count`, the four token totals and `total_runtime_ms`.
const SUMS: &str = "CAST(COALESCE(SUM(m.total_cost_micros), 0) AS BIGINT) AS total_cost_micros, \
     CAST(COUNT(m.total_cost_micros) AS BIGINT) AS priced_count, \
     CAST(COUNT(*) AS BIGINT) AS message_count, \
     CAST(COALESCE(SUM(m.input_tokens), 0) AS BIGINT) AS total_input_tokens, \
     CAST(COALESCE(SUM(m.output_tokens), 0) AS BIGINT) AS total_output_tokens, \
     CAST(COALESCE(SUM(m.cache_read_tokens), 0) AS BIGINT) AS total_cache_read_tokens, \
     CAST(COALESCE(SUM(m.cache_creation_tokens), 0) AS BIGINT) AS total_cache_creation_tokens, \
     CAST(COALESCE(SUM(m.runtime_ms), 0) AS BIGINT) AS total_runtime_ms";

/// The AI Gateway's usage rows, as a condition on `aibridge_interceptions i`: calls with a
/// cost or any token count (a call that failed before the provider reported usage cost
/// nothing the report can account for).
const GATEWAY_USAGE_ROW: &str = "(i.cost_micros IS NOT NULL OR i.input_tokens IS NOT NULL \
     OR i.output_tokens IS NOT NULL OR i.cache_read_tokens IS NOT NULL \
     OR i.cache_write_tokens IS NOT NULL OR i.reasoning_tokens IS NOT NULL)";

/// [`SUMS`] over the gateway's usage rows, under the same names: a call counts as one
/// "message", its runtime is its duration.
const GATEWAY_SUMS: &str = "CAST(COALESCE(SUM(i.cost_micros), 0) AS BIGINT) AS total_cost_micros, \
     CAST(COUNT(i.cost_micros) AS BIGINT) AS priced_count, \
     CAST(COUNT(*) AS BIGINT) AS message_count, \
     CAST(COALESCE(SUM(i.input_tokens), 0) AS BIGINT) AS total_input_tokens, \
     CAST(COALESCE(SUM(i.output_tokens), 0) AS BIGINT) AS total_output_tokens, \
     CAST(COALESCE(SUM(i.cache_read_tokens), 0) AS BIGINT) AS total_cache_read_tokens, \
     CAST(COALESCE(SUM(i.cache_write_tokens), 0) AS BIGINT) AS total_cache_creation_tokens, \
     CAST(COALESCE(SUM((i.ended_at - i.started_at) / 1000), 0) AS BIGINT) AS total_runtime_ms";

/// The `provider` of the `by_model` entries of AI Gateway calls is the provider instance's
/// name; their `display_name` is the model followed by this suffix and the instance, and
/// their `model_config_id` the nil UUID (docs/ai-gateway-records.md).
pub const GATEWAY_MODEL_DISPLAY_SUFFIX: &str = " via AI Gateway";

/// What one owner's usage rows in a window add up to ([`Store::cost_summary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CostTotals {
    /// Σ cost of the priced rows, micro-dollars.
    pub total_cost_micros: i64,
    /// Rows with a cost.
    pub priced_message_count: i64,
    /// Rows with tokens but no cost (their model had no price).
    pub unpriced_message_count: i64,
    /// Token and runtime totals of all of them.
    pub totals: ChatCostTotals,
}

/// One page of [`Store::cost_by_user`] and how many users matched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CostUsersPage {
    /// The page, by spend (descending) then username.
    pub users: Vec<ChatCostUserRollup>,
    /// Users with usage rows in the window matching the filter, before paging.
    pub count: i64,
}

fn token_totals(row: &AnyRow) -> Result<ChatCostTotals> {
    Ok(ChatCostTotals {
        total_input_tokens: row.try_get("total_input_tokens").db()?,
        total_output_tokens: row.try_get("total_output_tokens").db()?,
        total_cache_read_tokens: row.try_get("total_cache_read_tokens").db()?,
        total_cache_creation_tokens: row.try_get("total_cache_creation_tokens").db()?,
        total_runtime_ms: row.try_get("total_runtime_ms").db()?,
    })
}

/// `needle` as a `LIKE … ESCAPE '\'` pattern matching any text that contains it.
fn contains_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len().saturating_add(2));
    out.push('%');
    for c in needle.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    /// Σ `total_cost_micros` of the messages of `owner_id`'s chats created in
    /// `[start_micros, end_micros)` plus Σ cost of their AI Gateway calls started in it —
    /// the spend a usage limit compares with its limit. One statement.
    pub async fn spend_micros(
        &self,
        owner_id: Uuid,
        start_micros: i64,
        end_micros: i64,
    ) -> Result<i64> {
        let row = sqlx::query(sqlx::AssertSqlSafe(spend_sql()))
            .bind(uuid_text(owner_id))
            .bind(start_micros)
            .bind(end_micros)
            .fetch_one(self.pool())
            .await
            .db()?;
        row.try_get("spent").db()
    }

    /// The cost summary of `owner_id`'s usage rows created in `[start_micros, end_micros)`,
    /// deleted and hidden rows included: the totals, per model config and per root chat,
    /// three statements read from one snapshot, so the breakdowns add up to the totals
    /// (`by_chat` only while it holds every root chat, [`MAX_COST_SUMMARY_CHATS`]).
    ///
    /// `by_model`: the most expensive first (then by message count and id); names from the
    /// model config, deleted ones included; `display_name` falls back to the model id. Rows
    /// that name no model config form one entry with the nil UUID and
    /// [`UNKNOWN_MODEL_DISPLAY_NAME`]; a config that no longer exists keeps its id with
    /// empty names. `by_chat`: sub-agent chats roll up into their root
    /// (`chats.root_chat_id`) under the root's title, the most expensive first (then by id).
    pub async fn cost_summary(
        &self,
        owner_id: Uuid,
        start_micros: i64,
        end_micros: i64,
    ) -> Result<CostSummary> {
        let mut tx = self.pool().begin_with(self.snapshot_begin()).await.db()?;
        let result = summary_in_tx(&mut tx, owner_id, start_micros, end_micros).await;
        super::finish_tx(tx, result).await
    }

    /// Every user's usage rows in `[start_micros, end_micros)`: one page of users with at
    /// least one, the biggest spender first (then by username and id), and how many there
    /// are. `username` keeps only users whose username or display name contains it,
    /// case-insensitively (`lower` of the database: ASCII on SQLite, Unicode on
    /// PostgreSQL). `chat_count` counts root chats. `limit` is clamped to ≥ 1 and `offset`
    /// to ≥ 0 (the caller validates). One statement, and a second one (same snapshot) for
    /// the count only when the page is empty past the first.
    pub async fn cost_by_user(
        &self,
        start_micros: i64,
        end_micros: i64,
        username: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<CostUsersPage> {
        let mut tx = self.pool().begin_with(self.snapshot_begin()).await.db()?;
        let result = users_in_tx(&mut tx, start_micros, end_micros, username, limit, offset).await;
        super::finish_tx(tx, result).await
    }

    /// `BEGIN` of a read-only snapshot (SQLite's deferred transaction reads one snapshot in
    /// WAL mode).
    pub(super) fn snapshot_begin(&self) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }
}

/// What [`Store::cost_summary`] read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CostSummary {
    /// The totals.
    pub totals: CostTotals,
    /// Per model config.
    pub by_model: Vec<ChatCostModelBreakdown>,
    /// Per root chat, at most [`MAX_COST_SUMMARY_CHATS`].
    pub by_chat: Vec<ChatCostChatBreakdown>,
}

/// The statements of the cost reports with their parameters, for `EXPLAIN` in the cost
/// benchmark (`benches/costs.rs`): name, SQL. The owner's statements take `$1` owner id,
/// `$2` start, `$3` end (and `by_chat` `$4` its limit); `by_user` takes `$1` start, `$2`
/// end, `$3` the `LIKE` pattern (`''`: no filter), `$4` limit, `$5` offset.
#[doc(hidden)]
pub fn cost_statements() -> Vec<(&'static str, String)> {
    vec![
        ("spend", spend_sql()),
        ("totals", totals_sql()),
        ("by_model", by_model_sql()),
        ("by_chat", by_chat_sql()),
        ("by_user", by_user_page_sql()),
    ]
}

/// The owner's spend in `[$2, $3)` ([`SPEND_EXPR`]).
fn spend_sql() -> String {
    format!("SELECT {SPEND_EXPR} AS spent")
}

/// The spend of user `$1` in `[$2, $3)` as one scalar expression: the chats' priced rows
/// plus the AI Gateway's priced calls (what [`Store::spend_micros`] and the admission
/// check's statement read). Each side is an indexed range read (`chat_messages (chat_id,
/// created_at)`, `aibridge_interceptions (user_id, started_at, id)`).
pub(super) const SPEND_EXPR: &str = "CAST((SELECT COALESCE(SUM(m.total_cost_micros), 0) \
     FROM chats c JOIN chat_messages m ON m.chat_id = c.id \
     WHERE c.owner_id = $1 AND m.created_at >= $2 AND m.created_at < $3 \
     AND m.total_cost_micros IS NOT NULL) + (SELECT COALESCE(SUM(i.cost_micros), 0) \
     FROM aibridge_interceptions i WHERE i.user_id = $1 AND i.started_at >= $2 \
     AND i.started_at < $3 AND i.cost_micros IS NOT NULL) AS BIGINT)";

fn totals_sql() -> String {
    format!(
        "SELECT CAST(SUM(t.total_cost_micros) AS BIGINT) AS total_cost_micros, \
         CAST(SUM(t.priced_count) AS BIGINT) AS priced_count, \
         CAST(SUM(t.message_count) AS BIGINT) AS message_count, \
         CAST(SUM(t.total_input_tokens) AS BIGINT) AS total_input_tokens, \
         CAST(SUM(t.total_output_tokens) AS BIGINT) AS total_output_tokens, \
         CAST(SUM(t.total_cache_read_tokens) AS BIGINT) AS total_cache_read_tokens, \
         CAST(SUM(t.total_cache_creation_tokens) AS BIGINT) AS total_cache_creation_tokens, \
         CAST(SUM(t.total_runtime_ms) AS BIGINT) AS total_runtime_ms FROM ( \
         SELECT {SUMS} FROM chats c JOIN chat_messages m ON m.chat_id = c.id \
         WHERE c.owner_id = $1 AND m.created_at >= $2 AND m.created_at < $3 AND {USAGE_ROW} \
         UNION ALL SELECT {GATEWAY_SUMS} FROM aibridge_interceptions i \
         WHERE i.user_id = $1 AND i.started_at >= $2 AND i.started_at < $3 \
         AND {GATEWAY_USAGE_ROW}) t"
    )
}

/// Per model config, then one entry per (provider instance, model) of the AI Gateway's
/// calls (`gateway` = 1), in one order.
fn by_model_sql() -> String {
    format!(
        "SELECT * FROM (SELECT m.model_config_id AS model_config_id, \
         mc.display_name AS display_name, mc.provider AS provider, mc.model AS model, {SUMS}, \
         CAST(0 AS BIGINT) AS gateway \
         FROM chats c JOIN chat_messages m ON m.chat_id = c.id \
         LEFT JOIN model_configs mc ON mc.id = m.model_config_id \
         WHERE c.owner_id = $1 AND m.created_at >= $2 AND m.created_at < $3 AND {USAGE_ROW} \
         GROUP BY m.model_config_id, mc.display_name, mc.provider, mc.model \
         UNION ALL SELECT NULL, NULL, i.provider_name, i.model, {GATEWAY_SUMS}, \
         CAST(1 AS BIGINT) FROM aibridge_interceptions i \
         WHERE i.user_id = $1 AND i.started_at >= $2 AND i.started_at < $3 \
         AND {GATEWAY_USAGE_ROW} GROUP BY i.provider_name, i.model) b \
         ORDER BY b.total_cost_micros DESC, b.message_count DESC, b.gateway ASC, \
         COALESCE(b.model_config_id, '') ASC, b.provider ASC, b.model ASC"
    )
}

fn by_chat_sql() -> String {
    format!(
        "SELECT c.root_chat_id AS root_chat_id, COALESCE(r.title, '') AS chat_title, {SUMS} \
         FROM chats c JOIN chat_messages m ON m.chat_id = c.id \
         LEFT JOIN chats r ON r.id = c.root_chat_id \
         WHERE c.owner_id = $1 AND m.created_at >= $2 AND m.created_at < $3 AND {USAGE_ROW} \
         GROUP BY c.root_chat_id, r.title \
         ORDER BY total_cost_micros DESC, c.root_chat_id ASC LIMIT $4"
    )
}

/// Per user, filtered by the `LIKE` pattern `$3` (`''`: everyone). Two levels: the window's
/// rows per (owner, root chat), then per owner — `chat_count` is the number of root chats
/// without a `COUNT(DISTINCT …)` (which PostgreSQL computes by sorting every row), and the
/// users table is joined to the per-owner rows, not to every message.
fn by_user_grouped_sql() -> String {
    format!(
        "SELECT r.user_id AS user_id, u.username AS username, u.name AS name, \
         CAST(SUM(r.total_cost_micros) AS BIGINT) AS total_cost_micros, \
         CAST(SUM(r.priced_count) AS BIGINT) AS priced_count, \
         CAST(SUM(r.message_count) AS BIGINT) AS message_count, \
         CAST(SUM(r.total_input_tokens) AS BIGINT) AS total_input_tokens, \
         CAST(SUM(r.total_output_tokens) AS BIGINT) AS total_output_tokens, \
         CAST(SUM(r.total_cache_read_tokens) AS BIGINT) AS total_cache_read_tokens, \
         CAST(SUM(r.total_cache_creation_tokens) AS BIGINT) AS total_cache_creation_tokens, \
         CAST(SUM(r.total_runtime_ms) AS BIGINT) AS total_runtime_ms, \
         CAST(COUNT(r.root_chat_id) AS BIGINT) AS chat_count \
         FROM (SELECT c.owner_id AS user_id, c.root_chat_id AS root_chat_id, {SUMS} \
               FROM chat_messages m JOIN chats c ON c.id = m.chat_id \
               WHERE m.created_at >= $1 AND m.created_at < $2 AND {USAGE_ROW} \
               GROUP BY c.owner_id, c.root_chat_id \
               UNION ALL SELECT i.user_id, NULL, {GATEWAY_SUMS} \
               FROM aibridge_interceptions i \
               WHERE i.started_at >= $1 AND i.started_at < $2 AND {GATEWAY_USAGE_ROW} \
               GROUP BY i.user_id) r \
         JOIN users u ON u.id = r.user_id \
         WHERE ($3 = '' OR lower(u.username) LIKE lower($3) ESCAPE '\\' \
                OR lower(u.name) LIKE lower($3) ESCAPE '\\') \
         GROUP BY r.user_id, u.username, u.name"
    )
}

fn by_user_page_sql() -> String {
    format!(
        "SELECT g.*, CAST(COUNT(*) OVER () AS BIGINT) AS matched FROM ({}) g \
         ORDER BY g.total_cost_micros DESC, g.username ASC, g.user_id ASC \
         LIMIT $4 OFFSET $5",
        by_user_grouped_sql()
    )
}

async fn summary_in_tx(
    conn: &mut AnyConnection,
    owner_id: Uuid,
    start_micros: i64,
    end_micros: i64,
) -> Result<CostSummary> {
    let owner = uuid_text(owner_id);
    let row = sqlx::query(sqlx::AssertSqlSafe(totals_sql()))
        .bind(owner.clone())
        .bind(start_micros)
        .bind(end_micros)
        .fetch_one(&mut *conn)
        .await
        .db()?;
    let priced: i64 = row.try_get("priced_count").db()?;
    let all: i64 = row.try_get("message_count").db()?;
    let totals = CostTotals {
        total_cost_micros: row.try_get("total_cost_micros").db()?,
        priced_message_count: priced,
        unpriced_message_count: all.saturating_sub(priced),
        totals: token_totals(&row)?,
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(by_model_sql()))
        .bind(owner.clone())
        .bind(start_micros)
        .bind(end_micros)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let by_model = rows.iter().map(model_breakdown).collect::<Result<_>>()?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(by_chat_sql()))
        .bind(owner)
        .bind(start_micros)
        .bind(end_micros)
        .bind(MAX_COST_SUMMARY_CHATS)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let by_chat = rows
        .iter()
        .map(|row| {
            Ok(ChatCostChatBreakdown {
                root_chat_id: get_uuid(row, "root_chat_id")?,
                chat_title: row.try_get("chat_title").db()?,
                total_cost_micros: row.try_get("total_cost_micros").db()?,
                message_count: row.try_get("message_count").db()?,
                totals: token_totals(row)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(CostSummary {
        totals,
        by_model,
        by_chat,
    })
}

fn model_breakdown(row: &AnyRow) -> Result<ChatCostModelBreakdown> {
    let gateway: i64 = row.try_get("gateway").db()?;
    if gateway != 0 {
        let provider: String = row.try_get("provider").db()?;
        let model: String = row.try_get("model").db()?;
        return Ok(ChatCostModelBreakdown {
            model_config_id: Uuid::nil(),
            display_name: format!("{model}{GATEWAY_MODEL_DISPLAY_SUFFIX} ({provider})"),
            provider,
            model,
            total_cost_micros: row.try_get("total_cost_micros").db()?,
            message_count: row.try_get("message_count").db()?,
            totals: token_totals(row)?,
        });
    }
    let id = get_opt_uuid(row, "model_config_id")?;
    let display: Option<String> = row.try_get("display_name").db()?;
    let provider: Option<String> = row.try_get("provider").db()?;
    let model: String = row
        .try_get::<Option<String>, _>("model")
        .db()?
        .unwrap_or_default();
    let display_name = match (id, display) {
        (None, _) => UNKNOWN_MODEL_DISPLAY_NAME.to_owned(),
        (Some(_), Some(d)) if !d.trim().is_empty() => d,
        (Some(_), _) => model.clone(),
    };
    Ok(ChatCostModelBreakdown {
        model_config_id: id.unwrap_or(Uuid::nil()),
        display_name,
        provider: provider.unwrap_or_default(),
        model,
        total_cost_micros: row.try_get("total_cost_micros").db()?,
        message_count: row.try_get("message_count").db()?,
        totals: token_totals(row)?,
    })
}

async fn users_in_tx(
    conn: &mut AnyConnection,
    start_micros: i64,
    end_micros: i64,
    username: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<CostUsersPage> {
    let pattern = username.map(contains_pattern).unwrap_or_default();
    let rows = sqlx::query(sqlx::AssertSqlSafe(by_user_page_sql()))
        .bind(start_micros)
        .bind(end_micros)
        .bind(pattern.clone())
        .bind(limit.max(1))
        .bind(offset.max(0))
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let mut count = 0;
    let mut users = Vec::with_capacity(rows.len());
    for row in &rows {
        count = row.try_get("matched").db()?;
        users.push(ChatCostUserRollup {
            user_id: get_uuid(row, "user_id")?,
            username: row.try_get("username").db()?,
            name: row.try_get("name").db()?,
            // Accounts have no avatars here.
            avatar_url: String::new(),
            total_cost_micros: row.try_get("total_cost_micros").db()?,
            message_count: row.try_get("message_count").db()?,
            chat_count: row.try_get("chat_count").db()?,
            totals: token_totals(row)?,
        });
    }
    if rows.is_empty() && offset > 0 {
        // Past the last page the window count has no row to ride on.
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS matched FROM ({}) g",
            by_user_grouped_sql()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(start_micros)
            .bind(end_micros)
            .bind(pattern)
            .fetch_one(&mut *conn)
            .await
            .db()?;
        count = row.try_get("matched").db()?;
    }
    Ok(CostUsersPage { users, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("al"), "%al%");
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
        assert_eq!(contains_pattern(""), "%%");
    }
}
