//! Hidden usage rows: what a model call outside the chat's history cost (a title, a turn
//! summary, a compaction summary), kept where spend is summed.
//!
//! Spend is the sum of `total_cost_micros` over a chat's messages, deleted ones included.
//! A call that adds nothing to the conversation still costs money, so it is written as an
//! assistant row that is soft-deleted from the start with visibility `model`: no history,
//! stream, unread marker or prompt ever shows it, and the chat's `updated_at` and
//! `last_model_config_id` are left alone.

use codersdk::{ChatMessageRole, ChatMessageUsage, Uuid};

use super::chats::{insert_message_row, StepColumns};
use super::{now_micros, MessageVisibility, NewMessage, Store};
use crate::error::{DbResultExt, Result};

/// One model call to account for with [`Store::record_hidden_usage`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HiddenUsage {
    /// The model config that served the call, when known.
    pub model_config_id: Option<Uuid>,
    /// Tokens of the call.
    pub usage: ChatMessageUsage,
    /// Cost in micro-dollars; `None` when the model has no prices (unpriced).
    pub total_cost_micros: Option<i64>,
    /// Wall time of the call.
    pub runtime_ms: i64,
}

impl Store {
    /// Writes `usage` as a hidden assistant row of `chat_id` (soft-deleted, visibility
    /// `model`, no content) and returns its id. One statement and no chat lock: nothing of
    /// the chat row changes.
    pub async fn record_hidden_usage(&self, chat_id: Uuid, usage: HiddenUsage) -> Result<i64> {
        let mut conn = self.writer().acquire().await.db()?;
        let columns = StepColumns {
            total_cost_micros: usage.total_cost_micros,
            runtime_ms: Some(usage.runtime_ms),
            deleted: true,
            ..StepColumns::default()
        };
        let row = NewMessage {
            role: ChatMessageRole::Assistant,
            parts: Vec::new(),
            visibility: MessageVisibility::Model,
            created_by: None,
            model_config_id: usage.model_config_id,
            usage: Some(usage.usage),
        };
        let message = insert_message_row(&mut conn, chat_id, now_micros(), row, &columns).await?;
        Ok(message.id)
    }
}
