//! Spend: what the owner's model calls cost, summed from the messages' exact
//! `total_cost_micros` (usage limits and cost reports read the same rows).
//!
//! Every model call is a message row: the steps of a turn are assistant messages, and calls
//! outside the history (titles, turn summaries, compaction summaries) are hidden usage rows
//! ([`Store::record_hidden_usage`]). Deleted rows count: a call that was paid for stays paid
//! for when an edit or a retention purge hides its message. Unpriced rows (`NULL` cost) add
//! nothing to a sum. PostgreSQL's `SUM` of a `BIGINT` is a `NUMERIC`, so every sum is cast
//! back to `BIGINT` (exact; a sum past 2^63 micro-dollars fails rather than rounds).

use codersdk::Uuid;
use sqlx::Row;

use super::{uuid_text, Store};
use crate::error::{DbResultExt, Result};

impl Store {
    /// Σ `total_cost_micros` of the messages of `owner_id`'s chats created in
    /// `[start_micros, end_micros)` — the spend a usage limit compares with its limit. One
    /// statement.
    pub async fn spend_micros(
        &self,
        owner_id: Uuid,
        start_micros: i64,
        end_micros: i64,
    ) -> Result<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(m.total_cost_micros), 0) AS BIGINT) AS spent \
             FROM chats c JOIN chat_messages m ON m.chat_id = c.id \
             WHERE c.owner_id = $1 AND m.created_at >= $2 AND m.created_at < $3 \
             AND m.total_cost_micros IS NOT NULL",
        )
        .bind(uuid_text(owner_id))
        .bind(start_micros)
        .bind(end_micros)
        .fetch_one(self.pool())
        .await
        .db()?;
        row.try_get("spent").db()
    }
}
