//! The gateway's structured logs: one `tracing` event per fact, all under the message
//! [`LOG_MESSAGE`] and the target [`LOG_TARGET`], told apart by `record_type`
//! (docs/ai-gateway-records.md lists every field). Every line carries `interception_id`,
//! so a log pipeline joins them. Secrets never appear: the credential is its masked hint,
//! and error messages were redacted by the gateway before they reached the record.

use super::interception::{InterceptionRecord, InterceptionStart};
use super::recorder::{truncate_to, RecorderSettings};
use crate::store::{NewInterception, ThreadLink};

/// The message of every structured log line of the gateway.
pub const LOG_MESSAGE: &str = "aibridge interception";

/// The `tracing` target of those lines (filter with `CHATD_LOG=chatd::aibridge=info`).
pub const LOG_TARGET: &str = "chatd::aibridge";

/// `record_type` of the line logged when a call starts.
pub const RECORD_INTERCEPTION_START: &str = "interception_start";
/// `record_type` of the line logged when a call ended and was stored (or failed to be).
pub const RECORD_INTERCEPTION_END: &str = "interception_end";
/// `record_type` of a call's token usage line.
pub const RECORD_TOKEN_USAGE: &str = "token_usage";
/// `record_type` of a call's user prompt line (only while prompts are recorded).
pub const RECORD_PROMPT_USAGE: &str = "prompt_usage";
/// `record_type` of one line per tool call the model made.
pub const RECORD_TOOL_USAGE: &str = "tool_usage";
/// `record_type` of one line per reasoning ("thinking") block, bounded.
pub const RECORD_MODEL_THOUGHT: &str = "model_thought";

pub(crate) fn interception_start(start: &InterceptionStart, _settings: &RecorderSettings) {
    tracing::info!(
        target: LOG_TARGET,
        record_type = RECORD_INTERCEPTION_START,
        interception_id = %start.id,
        user_id = %start.user_id,
        provider_name = %start.provider_name,
        provider_type = %start.provider_type,
        api = start.api.as_str(),
        model = %start.model,
        streamed = start.streamed,
        credential_kind = start.credential_kind.as_str(),
        credential_hint = %start.credential_hint,
        client = start.client.as_deref(),
        client_session_id = start.client_session_id.as_deref(),
        correlation_id = start.correlation_id.as_deref(),
        started_at = %start.started_at,
        "{}",
        LOG_MESSAGE
    );
}

/// Logs everything a stored record says: the end, its usage, its prompt, one line per tool
/// call and per thought. `link` is `None` when the record could not be stored.
pub(crate) fn interception_finished(
    record: &InterceptionRecord,
    row: &NewInterception,
    link: Option<&ThreadLink>,
    settings: &RecorderSettings,
) {
    let id = row.id;
    // Thoughts echo what the user asked: the prompt opt-out silences them too.
    let logged_thoughts = if settings.record_prompts {
        record.thoughts.len().min(settings.max_thoughts_logged)
    } else {
        0
    };
    tracing::info!(
        target: LOG_TARGET,
        record_type = RECORD_INTERCEPTION_END,
        interception_id = %id,
        user_id = %row.user_id,
        provider_name = %row.provider_name,
        model = %row.model,
        ended_at = %record.ended_at,
        duration_ms = row.ended_at.saturating_sub(row.started_at) / 1000,
        upstream_status = row.upstream_status,
        error_kind = row.error_kind.as_deref(),
        error_message = row.error_message.as_deref(),
        client_disconnected = row.client_disconnected,
        cost_micros = row.cost_micros,
        priced = row.cost_micros.is_some(),
        tool_calls = record.tool_calls.len(),
        thoughts_dropped = record.thoughts.len().saturating_sub(logged_thoughts),
        thread_parent_id = link.and_then(|l| l.parent).map(|p| p.to_string()),
        thread_root_id = link.map(|l| l.root.to_string()),
        session_id = link.map(|l| l.session_key.as_str()),
        stored = link.is_some(),
        "{}",
        LOG_MESSAGE
    );
    if !record.usage.is_empty() {
        let u = &record.usage;
        tracing::info!(
            target: LOG_TARGET,
            record_type = RECORD_TOKEN_USAGE,
            interception_id = %id,
            user_id = %row.user_id,
            model = %row.model,
            input_tokens = u.input_tokens,
            output_tokens = u.output_tokens,
            cache_read_tokens = u.cache_read_tokens,
            cache_write_tokens = u.cache_creation_tokens,
            reasoning_tokens = u.reasoning_tokens,
            cost_micros = row.cost_micros,
            "{}",
            LOG_MESSAGE
        );
    }
    if let Some(prompt) = row.prompt.as_deref() {
        tracing::info!(
            target: LOG_TARGET,
            record_type = RECORD_PROMPT_USAGE,
            interception_id = %id,
            user_id = %row.user_id,
            prompt = prompt,
            "{}",
            LOG_MESSAGE
        );
    }
    for (ordinal, call) in record.tool_calls.iter().enumerate() {
        tracing::info!(
            target: LOG_TARGET,
            record_type = RECORD_TOOL_USAGE,
            interception_id = %id,
            user_id = %row.user_id,
            ordinal = ordinal,
            call_id = %truncate_to(&call.call_id, super::recorder::MAX_RECORDED_FIELD_BYTES),
            tool = %truncate_to(&call.name, super::recorder::MAX_RECORDED_FIELD_BYTES),
            argument_bytes = call.argument_bytes,
            "{}",
            LOG_MESSAGE
        );
    }
    for (ordinal, thought) in record.thoughts.iter().take(logged_thoughts).enumerate() {
        let kept = truncate_to(thought, settings.max_thought_bytes);
        tracing::info!(
            target: LOG_TARGET,
            record_type = RECORD_MODEL_THOUGHT,
            interception_id = %id,
            user_id = %row.user_id,
            ordinal = ordinal,
            thought = kept,
            truncated = kept.len() < thought.len(),
            "{}",
            LOG_MESSAGE
        );
    }
}
