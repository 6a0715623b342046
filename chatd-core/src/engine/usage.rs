//! Accounting for model calls that are not chat steps: titles, turn summaries and
//! compaction summaries. Each is written as a hidden usage row
//! ([`crate::store::Store::record_hidden_usage`]) so that spend summed over a chat's
//! messages matches what the provider bills.

use std::time::Instant;

use chatprovider::LanguageModel;
use codersdk::{ChatMessageUsage, ModelCostConfig, Uuid};

use super::Inner;
use crate::store::HiddenUsage;

/// What served a call outside the chat's history, for its usage row.
pub(crate) struct CallModel<'a> {
    /// The model config, when the call ran on one the engine knows.
    pub(crate) model_config_id: Option<Uuid>,
    /// The client (its provider and model id find price-book prices).
    pub(crate) model: &'a dyn LanguageModel,
    /// The model config's prices; unset prices come from the embedded price book.
    pub(crate) cost: Option<&'a ModelCostConfig>,
}

/// Records `usage` of a call that started at `started` as a hidden usage row of
/// `chat_id`. Best effort: a failure is logged, never surfaced (the call's result is
/// already useful), and a call that reported no tokens writes nothing.
pub(crate) async fn record_call(
    inner: &Inner,
    chat_id: Uuid,
    call: CallModel<'_>,
    usage: &ChatMessageUsage,
    started: Instant,
) {
    if usage.is_empty() {
        return;
    }
    let mut cost = call.cost.cloned();
    chatcost::PriceBook::embedded().fill_missing(
        call.model.provider().as_str(),
        call.model.model_id(),
        &mut cost,
    );
    let row = HiddenUsage {
        model_config_id: call.model_config_id,
        usage: *usage,
        total_cost_micros: chatcost::calculate_total_cost_micros(usage, cost.as_ref()),
        runtime_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
    };
    if let Err(e) = inner.store.record_hidden_usage(chat_id, row).await {
        tracing::warn!(%chat_id, error = %e, "recording the usage of a model call failed");
    }
}
