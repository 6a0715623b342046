//! One turn of one chat: model steps under the retry policy, tools, step
//! persistence, and the finish routine.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chaterror::retry::CauseToken;
use chatprovider::{
    message_from_parts, response_to_parts, CorrelationHeaders, Message, ModelRequest,
    ModelResponse, Part, ResponseCollector, StreamPart, ToolCall,
};
use codersdk::{
    ChatDebugRunKind, ChatDebugStatus, ChatDebugStepOperation, ChatError, ChatMessage,
    ChatMessagePart, ChatMessagePartType, ChatMessageRole, ChatStatus, ChatStreamEvent, RawJson,
    Timestamp, Uuid,
};
use futures_util::{FutureExt, StreamExt};

use super::compaction::{
    is_summary_row, still_too_long, Compactor, Failure, Measure, Source, TurnPrompt,
    COMPACTION_FAILED_MESSAGE, MAX_COMPACTION_REENTRIES,
};
use super::debug::{Attempts, DebugRun, RunLinks};
use super::models::{ResolvedModel, TurnModelRequest};
use super::{lock, HookPoint, Inner, StopCause, TurnControl};
use crate::error::ErrorKind;
use crate::store::{Lease, LeaseState, Step, TurnOutcome, TurnStart};
use crate::tools::{interrupted_result_part, TurnContext};
use crate::workspace::tools::Attachments;

/// Attempts at the finish transaction when the database fails transiently; after them the
/// chat is left to stale recovery.
pub const FINISH_ATTEMPTS: u32 = 3;

/// Wait before the second finish attempt (the third waits twice as long).
pub const FINISH_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// How a turn ended, before the finish routine.
#[derive(Debug)]
enum TurnEnd {
    Completed,
    Interrupted,
    Shutdown,
    Failed(ChatError),
    /// Client-executed tool calls wait for results; the finish transaction reads them.
    RequiresAction,
    /// The lease is gone: another worker or an operation owns the chat now.
    Lost,
}

/// Runs the turn of `control.lease` to its end and finishes it; never panics outward.
/// Whether a turn's start was already announced: a send that claimed its own turn
/// registered it, opened its buffer and published `running` with its message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Announced {
    /// Claimed by the run loop: the turn opens its buffer and announces `running` itself.
    No,
    /// Claimed by a send, with what the turn starts from when the send read it beside its
    /// commit (else the turn reads it).
    Yes(Option<Box<TurnStart>>),
}

pub(crate) async fn run_turn(inner: Arc<Inner>, control: Arc<TurnControl>, announced: Announced) {
    // One span per turn, so every log line of the turn (model calls, tools, retries) names
    // its chat and worker.
    let span = tracing::info_span!(
        "turn",
        chat_id = %control.lease.chat_id,
        worker = %control.lease.worker_id,
        epoch = control.lease.epoch,
    );
    tracing::Instrument::instrument(turn_body(inner, control, announced), span).await;
}

async fn turn_body(inner: Arc<Inner>, control: Arc<TurnControl>, announced: Announced) {
    let lease = control.lease;
    let chat_id = lease.chat_id;
    let prefetched = match announced {
        Announced::No => {
            // Buffer before announcing `running`, so a client that sees the status sees
            // every part.
            inner.begin_turn(chat_id);
            inner.publish_status(chat_id, ChatStatus::Running).await;
            None
        }
        Announced::Yes(start) => start,
    };
    // The turn's debug run, when debug logging is on for the chat (debug.rs).
    let mut debug = None;
    let end = match AssertUnwindSafe(turn_loop(&inner, &control, prefetched, &mut debug))
        .catch_unwind()
        .await
    {
        Ok(end) => end,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(%chat_id, panic = %what, "chat turn panicked");
            TurnEnd::Failed(ChatError::generic(format!(
                "chat processing panicked: {what}"
            )))
        }
    };
    if let Some(run) = debug {
        let (status, error) = debug_outcome(&end);
        run.finish(status, error).await;
    }
    inner.hook(HookPoint::Finishing(lease)).await;
    if finish(&inner, &lease, end).await {
        super::summary::spawn(&inner, chat_id);
    }
    let chat_still_runs = {
        let mut active = lock(&inner.active);
        // Only this turn's own entry: a later claim of the same chat (made after this
        // turn's lease ended) has its own and keeps it.
        active.remove(&lease);
        active.keys().any(|other| other.chat_id == chat_id)
    };
    if !chat_still_runs {
        inner.end_turn(chat_id);
    }
    // A slot is free: look for more work, when the last claim may have left some.
    if inner.claim_more.load(std::sync::atomic::Ordering::Relaxed) {
        inner.wake();
    }
}

/// How a turn that ended so is recorded in its debug run: its status and error.
fn debug_outcome(end: &TurnEnd) -> (ChatDebugStatus, Option<&ChatError>) {
    match end {
        TurnEnd::Completed | TurnEnd::RequiresAction => (ChatDebugStatus::Completed, None),
        TurnEnd::Interrupted | TurnEnd::Shutdown | TurnEnd::Lost => {
            (ChatDebugStatus::Interrupted, None)
        }
        TurnEnd::Failed(e) => (ChatDebugStatus::Error, Some(e)),
    }
}

/// The finish routine: one transaction, then its publication
/// ([`Inner::publish`]). Returns whether the turn gets a summary ([`super::summary`]).
async fn finish(inner: &Inner, lease: &Lease, end: TurnEnd) -> bool {
    let chat_id = lease.chat_id;
    let outcome = match end {
        TurnEnd::Completed => TurnOutcome::Completed,
        TurnEnd::Interrupted => TurnOutcome::Interrupted,
        TurnEnd::Shutdown => TurnOutcome::Shutdown,
        // Every failure (a resolver's, a panic's) loses key-shaped text before it is
        // stored and published; model failures were redacted with the turn's secrets.
        TurnEnd::Failed(e) => TurnOutcome::Failed(chaterror::Redactor::new().redact_chat_error(e)),
        TurnEnd::RequiresAction => TurnOutcome::RequiresAction,
        // Nothing to write: the new owner (or the operation) decides the chat's state.
        TurnEnd::Lost => return false,
    };
    let mut attempt = 0;
    let finished = loop {
        match inner.store.finish_turn(lease, outcome.clone()).await {
            Ok(f) => break f,
            Err(e) if attempt + 1 < FINISH_ATTEMPTS && !e.kind().is_client_error() => {
                tracing::warn!(%chat_id, error = %e, attempt, "finishing a turn failed; retrying");
                tokio::time::sleep(FINISH_RETRY_DELAY * (attempt + 1)).await;
                attempt += 1;
            }
            Err(e) => {
                // The chat stays `running` under a dead lease; stale recovery hands it back.
                tracing::error!(%chat_id, error = %e, "finishing a turn failed");
                return false;
            }
        }
    };
    let summarize = super::summary::wanted(inner, &outcome, &finished);
    inner.publish(finished).await;
    summarize
}

/// The chat's step loop.
async fn turn_loop(
    inner: &Arc<Inner>,
    control: &TurnControl,
    prefetched: Option<Box<TurnStart>>,
    debug: &mut Option<DebugRun>,
) -> TurnEnd {
    let lease = control.lease;
    let chat_id = lease.chat_id;
    // An operation that took the chat between the claim and this turn's registration could
    // not stop it (its publication found no turn of this lease): ask the store once. Later
    // ones find the turn registered. The lease, the chat row and the history: two reads at
    // once (docs/turn-path.md); a history held from the chat's last turn is extended by the
    // rows after it. A send that claimed the turn made these reads beside its commit (the
    // narrow window that leaves is in docs/turn-path.md, "The send claims its own turn").
    let start = match prefetched {
        Some(start) => *start,
        None => {
            let known = inner.histories.known(chat_id);
            match inner.store.turn_start(&lease, known).await {
                Ok(Some(start)) => start,
                Ok(None) => return TurnEnd::Lost,
                Err(e) => {
                    inner.histories.forget(chat_id);
                    return TurnEnd::Failed(internal_error(&e));
                }
            }
        }
    };
    match start.lease {
        LeaseState::Owned => {}
        LeaseState::Interrupted => return TurnEnd::Interrupted,
        LeaseState::Lost => return TurnEnd::Lost,
    }
    let inputs = start.inputs;
    let mut history = match inner.histories.settle(chat_id, start.history) {
        Some(history) => history,
        None => match inner.store.prompt_history(chat_id).await {
            Ok(history) => history,
            Err(e) => return TurnEnd::Failed(internal_error(&e)),
        },
    };
    // Client tool calls of a step whose finish never ran are still waiting for the client
    // (only a chat with client tools can have any).
    if !inputs.dynamic_tools.is_empty() {
        match inner.store.pending_tool_calls(chat_id).await {
            Ok(pending) if !pending.is_empty() => return TurnEnd::RequiresAction,
            Ok(_) => {}
            Err(e) => return TurnEnd::Failed(internal_error(&e)),
        }
    }
    if turn_already_answered(&history) && !inputs.compaction_requested {
        // A recovered or re-claimed chat whose last turn was persisted but not finished
        // (the worker died, or lost its lease, between the last step and the finish):
        // answering again would duplicate the reply. Only the finish is missing.
        tracing::info!(%chat_id, "claimed chat already has its reply; finishing without a model call");
        return TurnEnd::Completed;
    }
    let requested = history
        .iter()
        .rev()
        .find(|m| m.role == ChatMessageRole::User)
        .and_then(|m| m.model_config_id);
    let chat = &inputs.chat;
    let request = TurnModelRequest {
        chat_id,
        owner_id: chat.owner_id,
        organization_id: chat.organization_id,
        requested,
        last: chat.last_model_config_id,
        reasoning_effort: inputs
            .subagent
            .as_ref()
            .and_then(|s| s.reasoning_effort.as_deref())
            .and_then(chatprovider::ReasoningEffort::parse_exact),
    };
    let mut resolved = match inner.models.resolve(request).await {
        Ok(r) => r,
        Err(e) => return TurnEnd::Failed(e),
    };
    chatcost::PriceBook::embedded().fill_missing(
        resolved.model.provider().as_str(),
        resolved.model.model_id(),
        &mut resolved.cost,
    );
    // One check of cached settings when nothing is recorded (debug.rs).
    let links = RunLinks {
        trigger_message_id: history
            .iter()
            .rev()
            .find(|m| m.role == ChatMessageRole::User)
            .map(|m| m.id),
        history_tip_message_id: history.last().map(|m| m.id),
    };
    *debug = DebugRun::start(inner, ChatDebugRunKind::ChatTurn, chat, &resolved, links).await;
    let workspace = match super::workspace::prepare(inner, &lease, chat).await {
        Ok(w) => w,
        Err(super::workspace::PrepareError::Lost) => return TurnEnd::Lost,
        Err(super::workspace::PrepareError::Store(e)) => {
            return TurnEnd::Failed(internal_error(&e))
        }
    };
    let explore = inputs
        .subagent
        .as_ref()
        .is_some_and(|s| s.subagent_type == crate::subagents::SubagentType::Explore);
    let mut turn = TurnContext::for_chat(chat).with_explore(explore);
    turn.workspace_id = workspace.workspace_id;
    // Admin MCP servers come after the built-in and skill tools and before the chat's
    // dynamic tools; a forced server that cannot be prepared fails the turn closed.
    let mut mcp_tools = match &inner.mcp {
        Some(connector) => match connector.turn_tools(&inner.store, chat, &turn).await {
            Ok(mcp) => mcp.tools,
            Err(e) => return TurnEnd::Failed(e),
        },
        None => Vec::new(),
    };
    // Then the workspace's own `.mcp.json` servers, which never fail a turn.
    if let (Some(connector), Some(ws)) = (&inner.mcp, &workspace.workspace) {
        mcp_tools.extend(
            connector
                .workspace_tools(&inner.store, chat, ws, &turn)
                .await,
        );
    }
    // The sub-agent tools act on the engine; they exist for root chats only (one level).
    let subagent_tools = super::subagents::tools(inner, chat, &turn);
    let tools = inner
        .tools
        .turn_tools(turn)
        .with_tools(workspace.tools)
        .with_tools(crate::plan::plan_tools(
            Attachments {
                store: inner.store.clone(),
                organization_id: chat.organization_id,
            },
            workspace.workspace.clone(),
        ))
        .with_tools(subagent_tools)
        .with_tools(mcp_tools)
        .with_dynamic_tools(inputs.dynamic_tools.clone())
        .with_model_tools(resolved.tools.iter().cloned())
        .build();
    let system = match super::ops::system_prompt(
        inner,
        &inputs,
        &workspace.blocks,
        workspace.plan_path.as_deref(),
    )
    .await
    {
        Ok(system) => system,
        Err(e) => return TurnEnd::Failed(internal_error(&e)),
    };
    super::autotitle::maybe_generate(inner, &inputs, &history, &resolved);
    let files = FileCache::default();
    let mut compactor = Compactor::new(inner, request, &resolved).await;
    let prompt = TurnPrompt {
        model: &resolved,
        system: &system,
        tools: &tools,
        files: &files,
    };
    // The last step's usage (what a provider's refusal is measured against), whether a
    // compaction ran since the last successful step (a refusal then is final), and
    // whether one ran in this pass of the step loop (the post-run safety net skips then).
    let mut last_usage: Option<codersdk::ChatMessageUsage> = None;
    let mut compacted_since_step = false;
    let mut compacted_in_pass = false;
    if inputs.compaction_requested {
        // A manual compaction: summarize whatever the usage, then answer only what nobody
        // answered yet (a message sent while the request waited).
        let unanswered = history
            .last()
            .is_some_and(|m| m.role == ChatMessageRole::User && !is_summary_row(m));
        let measure = compactor.measured(inner, &history).await;
        match compact_history(
            inner,
            control,
            &compactor,
            &prompt,
            &mut history,
            measure,
            Source::Manual,
        )
        .await
        {
            Ok(true) => {}
            Ok(false) => return TurnEnd::Failed(ChatError::generic(COMPACTION_FAILED_MESSAGE)),
            Err(end) => return end,
        }
        if !unanswered {
            return TurnEnd::Completed;
        }
        compacted_since_step = true;
        compacted_in_pass = true;
    }

    for _ in 0..inner.settings.max_steps {
        if control.cancel.is_cancelled() {
            return stopped(control);
        }
        // No step starts while the owner is at their usage limit (a cached read when limits
        // are off; fails open). The step already streaming is never cut off.
        if let Err(refusal) = inner.admit(chat.owner_id).await {
            return TurnEnd::Failed(super::admission::turn_stopped_by_limit(&refusal));
        }
        // OpenAI Responses chaining (chain.rs): the messages the provider already holds
        // are sent only by a full replay.
        let chain = match super::chain::step_mode(&inner.store, chat, &resolved, &history).await {
            Ok(mode) => mode,
            Err(e) => return TurnEnd::Failed(internal_error(&e)),
        };
        let (held, sent) = chain.split(&history);
        let (held, messages) = match (
            request_messages(inner, held, &files).await,
            request_messages(inner, sent, &files).await,
        ) {
            (Ok(held), Ok(sent)) => (held, sent),
            (Err(e), _) | (_, Err(e)) => return TurnEnd::Failed(internal_error(&e)),
        };
        let request = ModelRequest {
            system: system.clone(),
            messages,
            tools: tools.definitions(),
            tool_choice: None,
            settings: with_default_max_tokens(&resolved, inner.settings.default_max_output_tokens),
            provider_options: resolved.provider_options.clone(),
            previous_response_id: chain.previous_response_id(),
            correlation: CorrelationHeaders {
                owner_id: Some(chat.owner_id.to_string()),
                chat_id: Some(chat.root_chat_id.unwrap_or(chat_id).to_string()),
                subchat_id: chat.parent_chat_id.map(|_| chat_id.to_string()),
                workspace_id: workspace.workspace_id.map(|w| w.to_string()),
            },
        };
        let request = super::chain::StepRequest::new(request, held);
        let attempts = Attempts::default();
        if let Some(run) = debug.as_mut() {
            let tip = history.last().map(|m| m.id);
            run.step(ChatDebugStepOperation::Stream, &request.attempt(), tip)
                .await;
        }
        let recorded = debug.is_some().then_some(&attempts);
        let started = Instant::now();
        let partial = Mutex::new(ResponseCollector::new());
        let streamed =
            stream_with_retry(inner, control, &resolved, &request, &partial, recorded).await;
        if let (Some(run), Err(StepError::Overflow(e) | StepError::Failed(e))) =
            (debug.as_mut(), &streamed)
        {
            run.end_step(ChatDebugStatus::Error, None, &attempts, Some(e), None)
                .await;
        }
        let response = match streamed {
            Ok(response) => response,
            Err(StepError::Stopped) => {
                let partial = std::mem::take(&mut *lock(&partial)).finish();
                if let Some(run) = debug.as_mut() {
                    let status = ChatDebugStatus::Interrupted;
                    run.end_step(status, Some(&partial), &attempts, None, None)
                        .await;
                }
                return stop_mid_step(inner, control, &resolved, partial, started).await;
            }
            Err(StepError::Overflow(e)) => {
                // The prompt does not fit: summarize and run the step again, unless a
                // summary was just made (it did not help) or the re-entries are used up.
                if !compactor.enabled() {
                    return TurnEnd::Failed(e);
                }
                if compacted_since_step || compactor.reentries >= MAX_COMPACTION_REENTRIES {
                    return TurnEnd::Failed(still_too_long(&e.provider));
                }
                let measure = compactor.overflow(inner, last_usage.as_ref()).await;
                let source = Source::Automatic;
                match compact_history(
                    inner,
                    control,
                    &compactor,
                    &prompt,
                    &mut history,
                    measure,
                    source,
                )
                .await
                {
                    Ok(true) => {
                        compactor.reentries += 1;
                        compacted_since_step = true;
                        compacted_in_pass = true;
                        continue;
                    }
                    Ok(false) => return TurnEnd::Failed(e),
                    Err(end) => return end,
                }
            }
            Err(StepError::Failed(e)) => return TurnEnd::Failed(e),
        };

        let assistant_parts = response_to_parts(&response);
        let calls: Vec<ToolCall> = response
            .tool_calls
            .iter()
            .filter(|c| !c.provider_executed)
            .cloned()
            .collect();
        let mut execution = tools.execute(&calls, &control.cancel);
        while let Some(result) = execution.next().await {
            publish_tool_part(inner, chat_id, &result.part);
        }
        let executed = execution.finish().await;
        let step = Step {
            assistant_parts,
            usage: Some(usage_with_limit(&response, &resolved)),
            total_cost_micros: chatcost::calculate_total_cost_micros(
                &response.usage,
                resolved.cost.as_ref(),
            ),
            runtime_ms: elapsed_ms(started),
            provider_response_id: response
                .response_id
                .clone()
                .filter(|_| resolved.store_response_id),
            model_config_id: Some(resolved.model_config_id),
            tool_results: executed.parts().into_iter().map(|p| vec![p]).collect(),
        };
        let persisted = match inner.store.persist_step(&lease, step).await {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::LeaseLost => return TurnEnd::Lost,
            Err(e) => return TurnEnd::Failed(internal_error(&e)),
        };
        if let Some(run) = debug.as_mut() {
            let assistant = persisted
                .transition
                .messages
                .iter()
                .find(|m| m.role == ChatMessageRole::Assistant)
                .map(|m| m.id);
            let status = ChatDebugStatus::Completed;
            run.end_step(status, Some(&response), &attempts, None, assistant)
                .await;
        }
        if request.is_chained() {
            // The next link is made from the durable history (chain.rs, "After a chained
            // step").
            history = match inner.store.prompt_history(chat_id).await {
                Ok(h) => h,
                Err(e) => return TurnEnd::Failed(internal_error(&e)),
            };
        } else {
            history.extend(persisted.transition.messages.iter().cloned());
        }
        inner.publish(persisted.transition).await;
        if persisted.lease == LeaseState::Interrupted || control.cancel.is_cancelled() {
            return match control.cause() {
                None | Some(StopCause::Interrupted) => TurnEnd::Interrupted,
                Some(_) => stopped(control),
            };
        }
        compacted_since_step = false;
        last_usage = Some(response.usage);
        // Inline compaction after a step that crossed the threshold. Not while client tool
        // calls wait: their results would arrive after the boundary without their calls.
        let mut compacted_now = false;
        let crossed = if executed.requires_action() {
            None
        } else {
            compactor.crossed(inner, &response.usage).await
        };
        if let Some(measure) = crossed {
            // A failure is logged; the post-run safety net tries once more.
            match compact_history(
                inner,
                control,
                &compactor,
                &prompt,
                &mut history,
                measure,
                Source::Automatic,
            )
            .await
            {
                Ok(done) => compacted_now = done,
                Err(end) => return end,
            }
            compacted_since_step |= compacted_now;
        }
        if executed.requires_action() {
            return TurnEnd::RequiresAction;
        }
        if executed.stop_turn {
            return TurnEnd::Completed;
        }
        // Continue only while the model asked for tools that answered.
        if !executed.results.is_empty() {
            compacted_in_pass |= compacted_now;
            continue;
        }
        // The model stopped. The safety net: one more attempt when nothing was compacted
        // in this pass (an inline attempt may have failed).
        if let (false, false, Some(measure)) = (compacted_in_pass, compacted_now, crossed) {
            match compact_history(
                inner,
                control,
                &compactor,
                &prompt,
                &mut history,
                measure,
                Source::Automatic,
            )
            .await
            {
                Ok(done) => compacted_now = done,
                Err(end) => return end,
            }
            compacted_since_step |= compacted_now;
        }
        // Compacted on what would have been the final step: the model never worked from
        // the summary, so it continues from it (a bounded number of times).
        if compacted_now && compactor.reentries < MAX_COMPACTION_REENTRIES {
            compactor.reentries += 1;
            compacted_in_pass = false;
            continue;
        }
        return TurnEnd::Completed;
    }
    TurnEnd::Completed
}

/// Runs one compaction of `history`, replaced by the compacted history on success.
/// `Ok(true)`: compacted; `Ok(false)`: the compaction failed (logged) and the history is as
/// it was; `Err`: the turn ends so (stopped, or its lease lost).
async fn compact_history(
    inner: &Arc<Inner>,
    control: &TurnControl,
    compactor: &Compactor,
    prompt: &TurnPrompt<'_>,
    history: &mut Vec<ChatMessage>,
    measure: Measure,
    source: Source,
) -> Result<bool, TurnEnd> {
    match compactor
        .compact(inner, control, prompt, history, measure, source)
        .await
    {
        Ok(compacted) => {
            *history = compacted;
            Ok(true)
        }
        Err(Failure::Stopped) => Err(stopped(control)),
        Err(Failure::Lost) => Err(TurnEnd::Lost),
        Err(Failure::Failed) => Ok(false),
    }
}

/// Whether the model-visible history already ends with a complete answer: an assistant
/// message without local tool calls waiting for results. Every step commits its tool
/// results with its assistant message, so an assistant message at the end with tool calls
/// means the calls were client-executed (answered later) or provider-executed (answered
/// inline); either way a trailing assistant message ends the model's turn.
fn turn_already_answered(history: &[ChatMessage]) -> bool {
    history
        .last()
        .is_some_and(|m| m.role == ChatMessageRole::Assistant)
}

/// The end of a turn stopped between steps.
fn stopped(control: &TurnControl) -> TurnEnd {
    match control.cause() {
        Some(StopCause::Interrupted) | None => TurnEnd::Interrupted,
        Some(StopCause::Shutdown) => TurnEnd::Shutdown,
        Some(StopCause::Superseded | StopCause::LeaseLost) => TurnEnd::Lost,
    }
}

/// A turn stopped while the model streamed. An interrupt keeps what was produced (text,
/// reasoning, completed tool calls with synthetic results), written without regard to the
/// cancellation; edit, promote, shutdown and a lost lease discard it.
async fn stop_mid_step(
    inner: &Inner,
    control: &TurnControl,
    resolved: &ResolvedModel,
    partial: ModelResponse,
    started: Instant,
) -> TurnEnd {
    let end = stopped(control);
    if !matches!(end, TurnEnd::Interrupted) {
        return end;
    }
    let assistant_parts = response_to_parts(&partial);
    if assistant_parts.is_empty() {
        return end;
    }
    let tool_results = partial
        .tool_calls
        .iter()
        .filter(|c| !c.provider_executed)
        .map(|c| vec![interrupted_result_part(c)])
        .collect();
    let step = Step {
        assistant_parts,
        usage: Some(usage_with_limit(&partial, resolved)),
        total_cost_micros: chatcost::calculate_total_cost_micros(
            &partial.usage,
            resolved.cost.as_ref(),
        ),
        runtime_ms: elapsed_ms(started),
        provider_response_id: None,
        model_config_id: Some(resolved.model_config_id),
        tool_results,
    };
    let chat_id = control.lease.chat_id;
    match inner.store.persist_step(&control.lease, step).await {
        Ok(persisted) => {
            inner.publish(persisted.transition).await;
            TurnEnd::Interrupted
        }
        Err(e) if e.kind() == ErrorKind::LeaseLost => TurnEnd::Lost,
        Err(e) => {
            tracing::warn!(%chat_id, error = %e, "persisting an interrupted step failed");
            TurnEnd::Interrupted
        }
    }
}

enum StepError {
    /// The turn's control token fired.
    Stopped,
    /// The provider refused the prompt as longer than the model's context window
    /// ([`chaterror::is_context_overflow`]): compaction may help.
    Overflow(ChatError),
    /// The model call failed for good.
    Failed(ChatError),
}

/// One model call under the retry policy. Each attempt starts from an empty
/// collector; each retry publishes a `retry` event (which clears the preview) and records
/// the retry state. A chained attempt the provider refuses because the chain is broken is
/// followed at once by a full replay, inside the same attempt (chain.rs).
async fn stream_with_retry(
    inner: &Arc<Inner>,
    control: &TurnControl,
    resolved: &ResolvedModel,
    request: &super::chain::StepRequest,
    partial: &Mutex<ResponseCollector>,
    attempts: Option<&Attempts>,
) -> Result<ModelResponse, StepError> {
    let chat_id = control.lease.chat_id;
    let cause = CauseToken::from_token(control.cancel.clone());
    let model = &resolved.model;
    let redactor = &resolved.redactor;
    let provider = model.provider().as_str().to_owned();
    let send = &move |request: ModelRequest| async move {
        *lock(partial) = ResponseCollector::new();
        let mut stream = model.stream(request);
        while let Some(part) = stream.next().await {
            // Redacted before classification reads it: a detail is cut to 500
            // runes, and a secret cut in half would no longer be recognised.
            let part = part.map_err(|e| redactor.redact_provider_error(e))?;
            publish_stream_part(inner, chat_id, &part);
            lock(partial).push(&part);
        }
        Ok::<_, chaterror::ProviderError>(std::mem::take(&mut *lock(partial)).finish())
    };
    let result = chaterror::retry::retry(
        &cause,
        move |_attempt_token| async move {
            match send(request.attempt()).await {
                Err(e) => match request.fall_back(chat_id, &e) {
                    Some(full) => send(full).await,
                    None => Err(e),
                },
                done => done,
            }
        },
        |attempt, _err, classified, delay| {
            let classified = classified.with_provider(&provider);
            let now = Timestamp(chrono::Utc::now());
            if let Some(retry) = classified.to_stream_retry(attempt, delay, now) {
                let retry = redactor.redact_stream_retry(retry);
                if let Some(attempts) = attempts {
                    attempts.push(&retry, redactor);
                }
                tracing::info!(%chat_id, attempt, delay_ms = retry.delay_ms, "retrying model call");
                inner.emit(ChatStreamEvent::retry(chat_id, retry.clone()));
                let store = inner.store.clone();
                let lease = control.lease;
                inner.spawn(async move {
                    // Best effort: only other processes' late subscribers read it.
                    let _ = store.record_retry(&lease, Some(retry)).await;
                });
            }
        },
    )
    .await;
    match result {
        Ok(response) => Ok(response),
        Err(e) if e.is_canceled() => Err(StepError::Stopped),
        Err(e) => {
            let overflow = chaterror::is_context_overflow(&e);
            let classified = chaterror::classify(&e).with_provider(&provider);
            let error = classified
                .to_chat_error()
                .unwrap_or_else(|| ChatError::generic(redactor.redact(&e.to_string())));
            let error = redactor.redact_chat_error(error);
            // Operators see why a chat failed without reading the database.
            tracing::warn!(
                %chat_id,
                provider = %error.provider,
                kind = ?error.kind,
                status = error.status_code,
                detail = %error.detail,
                "model call failed"
            );
            if overflow {
                return Err(StepError::Overflow(error));
            }
            Err(StepError::Failed(error))
        }
    }
}

/// Publishes one stream part as a `message_part` event (the part with its role).
fn publish_stream_part(inner: &Inner, chat_id: Uuid, part: &StreamPart) {
    let message_part = match part {
        StreamPart::TextDelta { delta, .. } => ChatMessagePart::text(delta.clone()),
        StreamPart::ReasoningDelta { delta, .. } => ChatMessagePart::reasoning(delta.clone()),
        StreamPart::ToolCallStart { id, name, .. } => {
            let mut p = ChatMessagePart::new(ChatMessagePartType::ToolCall);
            p.tool_call_id.clone_from(id);
            p.tool_name.clone_from(name);
            p
        }
        StreamPart::ToolCallDelta { id, delta, .. } => {
            let mut p = ChatMessagePart::new(ChatMessagePartType::ToolCall);
            p.tool_call_id.clone_from(id);
            p.args_delta.clone_from(delta);
            p
        }
        StreamPart::ToolCall(call) => {
            let args = call.arguments_json().unwrap_or_else(|| {
                RawJson::from_value(&call.arguments).unwrap_or_else(|_| RawJson::null())
            });
            let mut p = ChatMessagePart::tool_call(&call.id, &call.name, args);
            p.provider_executed = call.provider_executed;
            p
        }
        StreamPart::Source { url, title, .. } => {
            ChatMessagePart::source(url.clone(), title.clone().unwrap_or_default())
        }
        StreamPart::ProviderToolResult {
            tool_call_id,
            name,
            result,
            is_error,
        } => {
            let mut p = ChatMessagePart::tool_result(tool_call_id, name, result.clone(), *is_error);
            p.provider_executed = true;
            p
        }
        _ => return,
    };
    inner.emit(ChatStreamEvent::message_part(
        chat_id,
        Some(ChatMessageRole::Assistant),
        message_part,
    ));
}

fn publish_tool_part(inner: &Inner, chat_id: Uuid, part: &ChatMessagePart) {
    inner.emit(ChatStreamEvent::message_part(
        chat_id,
        Some(ChatMessageRole::Tool),
        part.clone(),
    ));
}

fn with_default_max_tokens(resolved: &ResolvedModel, default: i64) -> chatprovider::CallSettings {
    let mut settings = resolved.settings;
    if settings.max_output_tokens.is_none() {
        settings.max_output_tokens = Some(default);
    }
    settings
}

fn usage_with_limit(
    response: &ModelResponse,
    resolved: &ResolvedModel,
) -> codersdk::ChatMessageUsage {
    let mut usage = response.usage;
    if usage.context_limit.is_none() {
        usage.context_limit = resolved.context_limit;
    }
    usage
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// A store failure inside a turn, as the chat's `last_error`: generic wording, details in
/// the log (they may name tables and constraints).
fn internal_error(e: &crate::Error) -> ChatError {
    tracing::error!(error = %e, "chat turn failed on a store error");
    ChatError::generic("The chat could not be processed because of an internal error.")
}

/// An uploaded file as a model request needs it: media type, bytes, name.
type LoadedFile = (String, Vec<u8>, String);

/// Bytes of uploaded files referenced by the history, loaded once per turn.
#[derive(Default)]
pub(super) struct FileCache {
    files: Mutex<HashMap<Uuid, Option<LoadedFile>>>,
}

/// The history as request messages. `file` parts that reference an upload get the file's
/// bytes; a file that no longer exists becomes a short text placeholder so the model knows
/// something was attached.
pub(super) async fn request_messages(
    inner: &Inner,
    history: &[ChatMessage],
    files: &FileCache,
) -> crate::Result<Vec<Message>> {
    let mut out = Vec::with_capacity(history.len());
    for message in history {
        let mut parts = Vec::with_capacity(message.content.len());
        let mut extra = Vec::new();
        for part in &message.content {
            match (part.part_type == ChatMessagePartType::File, part.file_id) {
                (true, Some(file_id)) if part.data.is_empty() => {
                    match load_file(inner, files, file_id).await? {
                        Some((media_type, data, name)) => extra.push(Part::File {
                            media_type,
                            data,
                            filename: (!name.is_empty()).then_some(name),
                        }),
                        None => parts.push(ChatMessagePart::text(format!(
                            "[attached file {file_id} is no longer available]"
                        ))),
                    }
                }
                _ => parts.push(part.clone()),
            }
        }
        let converted = message_from_parts(&message.role, &parts);
        match converted {
            Some(mut m) => {
                m.content.extend(extra);
                out.push(m);
            }
            None if !extra.is_empty() => {
                if let Some(role) = chatprovider::request_role(&message.role) {
                    out.push(Message {
                        role,
                        content: extra,
                    });
                }
            }
            None => {}
        }
    }
    Ok(out)
}

async fn load_file(
    inner: &Inner,
    cache: &FileCache,
    id: Uuid,
) -> crate::Result<Option<LoadedFile>> {
    if let Some(hit) = lock(&cache.files).get(&id) {
        return Ok(hit.clone());
    }
    let loaded = inner
        .store
        .get_file(id)
        .await?
        .map(|f| (f.metadata.mime_type, f.data, f.metadata.name));
    lock(&cache.files).insert(id, loaded.clone());
    Ok(loaded)
}
