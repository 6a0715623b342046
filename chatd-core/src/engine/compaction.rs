//! Context compaction (engine.md §4.7): when a chat's prompt nears the model's context
//! window, the model summarizes the conversation and later turns start from the summary.
//!
//! - **Measure**: the context a step used — its input + cache-read + cache-write tokens,
//!   else its total ([`context_tokens`]) — against the context limit: the model config's,
//!   else the embedded table of context windows (`chatcost::ContextLimits`), else
//!   [`FALLBACK_CONTEXT_LIMIT`]. With a `compaction` model override, the stricter (smaller)
//!   of the two models' limits.
//! - **Threshold**: the user's own threshold for the model config, else the model config's
//!   `compression_threshold`, else [`codersdk::DEFAULT_COMPRESSION_THRESHOLD`] (70 %);
//!   compaction runs when usage ≥ threshold; 100 turns it off.
//! - **When**: inline after a persisted step that crosses the threshold; once more after the
//!   turn's last step when no compaction happened in this pass (a safety net for an inline
//!   attempt that failed); and when the provider refuses a step because the prompt does
//!   not fit ([`chaterror::is_context_overflow`]). When it happened on what would have been
//!   the turn's final step, the step loop runs again so the model continues from the
//!   summary; at most [`MAX_COMPACTION_REENTRIES`] times per turn. A prompt still too long
//!   right after a compaction ends the turn with [`CONTEXT_STILL_TOO_LONG_MESSAGE`].
//! - **The call**: one non-streaming generate with tool choice `none`, the turn's system
//!   prompt, the history and [`COMPACTION_SUMMARY_PROMPT`], within
//!   [`COMPACTION_TIMEOUT`]; no retries (the next trigger is the retry). A
//!   `chat_summarized` tool-call part streams meanwhile ("Summarizing…"). Its tokens are
//!   recorded as a hidden usage row, so spend stays exact.
//! - **The write**: [`crate::store::Store::persist_compaction`] — the hidden summary row
//!   (the new prompt boundary), the `chat_summarized` call and its result, and the user
//!   messages nobody answered yet written again after them — in one transaction fenced by
//!   the turn's lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatprovider::{CorrelationHeaders, Message, ModelRequest, ToolChoice};
use codersdk::{
    ChatError, ChatErrorKind, ChatMessage, ChatMessagePart, ChatMessagePartType, ChatMessageRole,
    ChatMessageUsage, ChatStreamEvent, RawJson, Uuid,
};
use tokio::sync::OnceCell;

use super::models::{ResolvedModel, TurnModelRequest};
use super::turn::FileCache;
use super::usage::{record_call, CallModel};
use super::{Inner, TurnControl};
use crate::error::ErrorKind;
use crate::store::Compaction;
use crate::tools::TurnTools;

/// Budget of one summary call.
pub const COMPACTION_TIMEOUT: Duration = Duration::from_secs(90);

/// Times one turn may run its step loop again after a compaction (engine.md's
/// `maxCompactionRetries`): a model that keeps filling its window cannot loop forever.
pub const MAX_COMPACTION_REENTRIES: u32 = 3;

/// Context window assumed when neither the model config nor the embedded table knows the
/// model: the smallest window of today's mainstream chat models, so compaction errs early.
pub const FALLBACK_CONTEXT_LIMIT: i64 = 128_000;

/// Threshold percent that turns automatic compaction off.
pub const COMPACTION_DISABLED_THRESHOLD: i32 = 100;

/// Name of the synthetic tool call that shows a compaction in the conversation.
pub const COMPACTION_TOOL_NAME: &str = "chat_summarized";

/// The instruction appended to the history for the summary call.
pub const COMPACTION_SUMMARY_PROMPT: &str = "\
The conversation above is about to be replaced by your summary of it, because it no longer \
fits the context window. Write that summary for whoever continues the work: another \
assistant with no memory of this conversation. Cover the user's goal and the task in hand; \
the decisions taken and why; the concrete details that matter (file paths, names of \
functions, types and tests, commands, API calls, configuration values, error messages); \
what is finished, what is under way and what is left; and exactly what you were doing or \
about to do when this request arrived. Write densely, facts only, without greetings or \
commentary. Do not call tools.";

/// What precedes the summary in the row the model reads from then on.
pub const COMPACTION_SUMMARY_PREFIX: &str = "\
[Context compacted] The earlier part of this conversation was replaced by the summary \
below, written when the context window filled up. Work was in progress; carry on from \
where it stands:";

/// The terminal error of a prompt that still does not fit after a compaction.
pub const CONTEXT_STILL_TOO_LONG_MESSAGE: &str = "The conversation is too long for the \
model's context window, even after summarizing it. Start a new chat, or switch to a model \
with a larger context window.";

/// The error of a manual compaction whose summary could not be made.
pub const COMPACTION_FAILED_MESSAGE: &str = "The conversation could not be summarized.";

/// Why a compaction ran, for the result body's `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The engine decided (threshold or provider refusal).
    Automatic,
    /// Someone asked for it; the threshold did not matter.
    Manual,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Automatic => "automatic",
            Source::Manual => "manual",
        }
    }
}

/// The context a step used, in tokens: input + cache read + cache write when any of
/// them is reported, else the total.
pub fn context_tokens(usage: &ChatMessageUsage) -> i64 {
    let parts = [
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_creation_tokens,
    ];
    let positive: Vec<i64> = parts.into_iter().flatten().filter(|t| *t > 0).collect();
    if positive.is_empty() {
        return usage.total_tokens.unwrap_or(0).max(0);
    }
    positive.into_iter().fold(0i64, i64::saturating_add)
}

/// The context window of `model`: its model config's, else the embedded table's, else
/// [`FALLBACK_CONTEXT_LIMIT`].
pub(crate) fn context_limit_of(model: &ResolvedModel) -> i64 {
    model
        .context_limit
        .filter(|l| *l > 0)
        .or_else(|| {
            chatcost::ContextLimits::embedded()
                .lookup(model.model.provider().as_str(), model.model.model_id())
        })
        .unwrap_or(FALLBACK_CONTEXT_LIMIT)
}

/// A measurement against the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Measure {
    pub(crate) tokens: i64,
    pub(crate) limit: i64,
    pub(crate) percent: f64,
}

impl Measure {
    fn new(tokens: i64, limit: i64) -> Measure {
        // Token counts stay far below 2^53, where f64 is exact.
        #[allow(clippy::cast_precision_loss)]
        let percent = if limit > 0 {
            tokens as f64 / limit as f64 * 100.0
        } else {
            0.0
        };
        Measure {
            tokens,
            limit,
            percent,
        }
    }
}

/// Whether `tokens` of `limit` reach `threshold` percent; `None` when compaction is off
/// (threshold ≥ 100), nothing was measured, or there is no limit.
pub(crate) fn crossed(tokens: i64, limit: i64, threshold: i32) -> Option<Measure> {
    if threshold >= COMPACTION_DISABLED_THRESHOLD || tokens <= 0 || limit <= 0 {
        return None;
    }
    let measure = Measure::new(tokens, limit);
    (measure.percent >= f64::from(threshold.max(0))).then_some(measure)
}

/// What the turn's model reads besides the history: the summary call reads the same.
pub(crate) struct TurnPrompt<'a> {
    /// The turn's model (it summarizes unless a compaction model is set).
    pub(crate) model: &'a ResolvedModel,
    /// The turn's system prompt.
    pub(crate) system: &'a [String],
    /// The turn's tools (declared in the summary call, never callable).
    pub(crate) tools: &'a TurnTools,
    /// Attached files the turn already loaded.
    pub(crate) files: &'a FileCache,
}

/// Why a compaction did not happen.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The turn was stopped meanwhile.
    Stopped,
    /// The lease is gone: persist nothing more.
    Lost,
    /// The summary could not be made or stored (the reason was logged).
    Failed,
}

/// One turn's compaction state: the threshold and limit in force, and the compaction model
/// (resolved once, at the first summary).
pub(crate) struct Compactor {
    threshold: i32,
    turn_limit: i64,
    request: TurnModelRequest,
    side: OnceCell<Option<ResolvedModel>>,
    /// Re-entries of the step loop so far.
    pub(crate) reentries: u32,
}

impl Compactor {
    /// The state for a turn of the chat of `request` on `resolved`: reads the owner's own
    /// threshold for the model config (a failed read falls back to the model config's:
    /// compaction is never worth failing a turn over).
    pub(crate) async fn new(
        inner: &Inner,
        request: TurnModelRequest,
        resolved: &ResolvedModel,
    ) -> Compactor {
        let own = match inner
            .store
            .user_compaction_threshold(request.owner_id, resolved.model_config_id)
            .await
        {
            Ok(own) => own,
            Err(e) => {
                tracing::warn!(chat_id = %request.chat_id, error = %e, "reading the user's compaction threshold failed");
                None
            }
        };
        Compactor {
            threshold: own
                .or(resolved.compression_threshold)
                .unwrap_or(codersdk::DEFAULT_COMPRESSION_THRESHOLD),
            turn_limit: context_limit_of(resolved),
            request,
            side: OnceCell::new(),
            reentries: 0,
        }
    }

    /// Whether automatic compaction can run at all.
    pub(crate) fn enabled(&self) -> bool {
        self.threshold < COMPACTION_DISABLED_THRESHOLD
    }

    /// The compaction model override, resolved on first use.
    async fn side_model(&self, inner: &Inner) -> Option<&ResolvedModel> {
        self.side
            .get_or_init(|| async { inner.models.compaction_model(self.request).await })
            .await
            .as_ref()
    }

    /// The limit in force: the turn model's, or the stricter of it and the compaction
    /// model's.
    async fn limit(&self, inner: &Inner) -> i64 {
        match self.side_model(inner).await {
            Some(side) => self.turn_limit.min(context_limit_of(side)),
            None => self.turn_limit,
        }
    }

    /// The measurement of a step's `usage` when it reaches the threshold.
    pub(crate) async fn crossed(&self, inner: &Inner, usage: &ChatMessageUsage) -> Option<Measure> {
        let tokens = context_tokens(usage);
        if !self.enabled() || tokens <= 0 {
            return None;
        }
        crossed(tokens, self.limit(inner).await, self.threshold)
    }

    /// What a provider's refusal measured: at least the whole window (the exact count is
    /// unknown), or more when the last step already reported more.
    pub(crate) async fn overflow(&self, inner: &Inner, last: Option<&ChatMessageUsage>) -> Measure {
        let limit = self.limit(inner).await;
        let seen = last.map_or(0, context_tokens);
        Measure::new(seen.max(limit), limit)
    }

    /// The measurement a manual compaction reports: the context of the newest step in
    /// `history` that reported usage, against the limit in force.
    pub(crate) async fn measured(&self, inner: &Inner, history: &[ChatMessage]) -> Measure {
        let tokens = history
            .iter()
            .rev()
            .filter(|m| m.role == ChatMessageRole::Assistant)
            .find_map(|m| m.usage.as_ref().map(context_tokens))
            .unwrap_or(0);
        Measure::new(tokens, self.limit(inner).await)
    }

    /// Summarizes `history` and stores the compaction under the turn's lease; returns the
    /// new prompt history. `turn` is what the turn's model reads (its model summarizes
    /// unless a compaction model is set), so the summary call reads what the model has read.
    pub(crate) async fn compact(
        &self,
        inner: &Arc<Inner>,
        control: &TurnControl,
        turn: &TurnPrompt<'_>,
        history: &[ChatMessage],
        measure: Measure,
        source: Source,
    ) -> Result<Vec<ChatMessage>, Failure> {
        let chat_id = control.lease.chat_id;
        let model = self.side_model(inner).await.unwrap_or(turn.model);
        let call_id = format!("{COMPACTION_TOOL_NAME}_{}", Uuid::new_v4().simple());
        // "Summarizing…": the tool call streams until the durable rows replace it.
        inner.emit(ChatStreamEvent::message_part(
            chat_id,
            Some(ChatMessageRole::Assistant),
            ChatMessagePart::tool_call(&call_id, COMPACTION_TOOL_NAME, RawJson::null()),
        ));
        let split = split_unanswered(history);
        let messages =
            match super::turn::request_messages(inner, split.summarized, turn.files).await {
                Ok(m) => m,
                Err(e) => {
                    return Err(self.fail(
                        inner,
                        chat_id,
                        &call_id,
                        format!("reading attached files failed: {e}"),
                    ))
                }
            };
        let mut messages = messages;
        messages.push(Message::user_text(COMPACTION_SUMMARY_PROMPT));
        let mut settings = model.settings;
        if settings.max_output_tokens.is_none() {
            settings.max_output_tokens = Some(inner.settings.default_max_output_tokens);
        }
        let request = ModelRequest {
            system: turn.system.to_vec(),
            messages,
            // Declared, but not callable: histories with tool calls need their tools
            // declared on some providers.
            tools: turn.tools.definitions(),
            tool_choice: Some(ToolChoice::None),
            settings,
            provider_options: model.provider_options.clone(),
            // Never chained: the summary must read the history it replaces, and after it
            // the chain restarts from the summary (chain.rs finds no anchor before it).
            previous_response_id: None,
            correlation: CorrelationHeaders {
                owner_id: Some(self.request.owner_id.to_string()),
                chat_id: Some(chat_id.to_string()),
                ..CorrelationHeaders::default()
            },
        };
        // Recorded as a `compaction` debug run when debug logging is on for the owner.
        let chat = super::debug::DebugChat {
            id: chat_id,
            owner_id: self.request.owner_id,
            root_chat_id: None,
            parent_chat_id: None,
        };
        let tip = history.last().map(|m| m.id);
        let links = super::debug::RunLinks {
            trigger_message_id: None,
            history_tip_message_id: tip,
        };
        let kind = codersdk::ChatDebugRunKind::Compaction;
        let mut debug = super::debug::DebugRun::start(inner, kind, chat, model, links).await;
        if let Some(run) = debug.as_mut() {
            let operation = codersdk::ChatDebugStepOperation::Generate;
            run.step(operation, &request, tip).await;
        }
        let started = Instant::now();
        let call = tokio::time::timeout(COMPACTION_TIMEOUT, model.model.generate(request));
        let outcome = tokio::select! {
            biased;
            () = control.cancel.cancelled() => {
                if let Some(run) = debug {
                    run.finish(codersdk::ChatDebugStatus::Interrupted, None).await;
                }
                return Err(Failure::Stopped);
            }
            outcome = call => outcome,
        };
        if let Some(run) = debug {
            run.record_outcome(&outcome, &model.redactor, model.model.provider().as_str())
                .await;
        }
        let response = match outcome {
            Err(_) => {
                return Err(self.fail(
                    inner,
                    chat_id,
                    &call_id,
                    format!(
                        "the summary took longer than {}s",
                        COMPACTION_TIMEOUT.as_secs()
                    ),
                ))
            }
            Ok(Err(e)) => {
                let text = model.redactor.display(&e).to_string();
                return Err(self.fail(
                    inner,
                    chat_id,
                    &call_id,
                    format!("the summary call failed: {text}"),
                ));
            }
            Ok(Ok(response)) => response,
        };
        let call_model = CallModel {
            model_config_id: Some(model.model_config_id),
            model: model.model.as_ref(),
            cost: model.cost.as_ref(),
        };
        record_call(inner, chat_id, call_model, &response.usage, started).await;
        let summary = response.text.trim().to_owned();
        if summary.is_empty() {
            return Err(self.fail(inner, chat_id, &call_id, "the summary was empty".to_owned()));
        }
        let body = serde_json::json!({
            "summary": summary,
            "source": source.as_str(),
            "threshold_percent": self.threshold,
            "usage_percent": measure.percent,
            "context_tokens": measure.tokens,
            "context_limit_tokens": measure.limit,
        });
        let result = RawJson::from_value(&body).unwrap_or_else(|_| RawJson::null());
        let compaction = Compaction {
            summary_prompt: format!("{COMPACTION_SUMMARY_PREFIX}\n\n{summary}"),
            tool_call: ChatMessagePart::tool_call(&call_id, COMPACTION_TOOL_NAME, RawJson::null()),
            tool_result: ChatMessagePart::tool_result(
                &call_id,
                COMPACTION_TOOL_NAME,
                result,
                false,
            ),
            model_config_id: Some(model.model_config_id),
            unanswered: split
                .unanswered
                .iter()
                .map(|m| (m.content.clone(), m.created_by))
                .collect(),
        };
        let transition = match inner
            .store
            .persist_compaction(&control.lease, compaction)
            .await
        {
            Ok(Some(t)) => t,
            // Interrupted between the summary and its write: the turn finishes as
            // interrupted (which runs the queue); the summary is not kept.
            Ok(None) => return Err(Failure::Stopped),
            Err(e) if e.kind() == ErrorKind::LeaseLost => return Err(Failure::Lost),
            Err(e) => {
                return Err(self.fail(
                    inner,
                    chat_id,
                    &call_id,
                    format!("storing the summary failed: {e}"),
                ))
            }
        };
        inner.publish(transition).await;
        tracing::info!(
            %chat_id,
            source = source.as_str(),
            context_tokens = measure.tokens,
            context_limit = measure.limit,
            usage_percent = measure.percent,
            "compacted the chat's context"
        );
        inner.store.prompt_history(chat_id).await.map_err(|e| {
            tracing::warn!(%chat_id, error = %e, "reloading the history after a compaction failed");
            Failure::Failed
        })
    }

    /// A failed compaction: the "Summarizing…" part ends as an error result, and the
    /// reason is logged.
    fn fail(&self, inner: &Inner, chat_id: Uuid, call_id: &str, reason: String) -> Failure {
        tracing::warn!(%chat_id, reason = %reason, "compacting the chat's context failed");
        let body = serde_json::json!({ "error": "The conversation could not be summarized." });
        let result = RawJson::from_value(&body).unwrap_or_else(|_| RawJson::null());
        inner.emit(ChatStreamEvent::message_part(
            chat_id,
            Some(ChatMessageRole::Tool),
            ChatMessagePart::tool_result(call_id, COMPACTION_TOOL_NAME, result, true),
        ));
        Failure::Failed
    }
}

/// The terminal error of a turn whose prompt still does not fit after a compaction (or
/// that cannot be summarized to fit).
pub(crate) fn still_too_long(provider: &str) -> ChatError {
    let mut error = ChatError::generic(CONTEXT_STILL_TOO_LONG_MESSAGE);
    error.kind = Some(ChatErrorKind::Config);
    error.provider = provider.to_owned();
    error.retryable = false;
    error
}

/// A history split for summarizing: what the summary covers, and the user messages at
/// the end that no assistant answered yet (they stay verbatim).
struct Split<'a> {
    summarized: &'a [ChatMessage],
    unanswered: &'a [ChatMessage],
}

/// Splits off the trailing user messages written by someone (the previous summary row,
/// written by nobody, is summarized like the rest).
fn split_unanswered(history: &[ChatMessage]) -> Split<'_> {
    let keep = history
        .iter()
        .rev()
        .take_while(|m| m.role == ChatMessageRole::User && !is_summary_row(m))
        .count();
    let (summarized, unanswered) = history.split_at(history.len() - keep);
    Split {
        summarized,
        unanswered,
    }
}

/// Whether `message` is a compaction's summary row.
pub(crate) fn is_summary_row(message: &ChatMessage) -> bool {
    message.role == ChatMessageRole::User
        && message.created_by.is_none()
        && message.content.first().is_some_and(|p| {
            p.part_type == ChatMessagePartType::Text
                && p.text.starts_with(COMPACTION_SUMMARY_PREFIX)
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn context_tokens_sum_the_prompt_buckets_else_the_total() {
        let usage = ChatMessageUsage {
            input_tokens: Some(100),
            cache_read_tokens: Some(50),
            cache_creation_tokens: Some(25),
            output_tokens: Some(999),
            total_tokens: Some(5000),
            ..Default::default()
        };
        assert_eq!(context_tokens(&usage), 175);
        let total_only = ChatMessageUsage {
            total_tokens: Some(4000),
            ..Default::default()
        };
        assert_eq!(context_tokens(&total_only), 4000);
        assert_eq!(context_tokens(&ChatMessageUsage::default()), 0);
    }

    #[test]
    fn threshold_edges() {
        // Exactly at the threshold compacts; one token below does not.
        assert!(crossed(700, 1000, 70).is_some());
        assert!(crossed(699, 1000, 70).is_none());
        // 100 turns it off even when the window is full; 0 compacts at any usage.
        assert!(crossed(5000, 1000, 100).is_none());
        assert!(crossed(1, 1000, 0).is_some());
        assert!(crossed(0, 1000, 0).is_none());
        assert!(crossed(10, 0, 50).is_none());
        let m = crossed(800, 1000, 70).unwrap();
        assert_eq!((m.tokens, m.limit), (800, 1000));
        assert!((m.percent - 80.0).abs() < 1e-9);
    }
}
