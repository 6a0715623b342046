//! Running a step's tool calls.

use std::fmt;
use std::time::Duration;

use chatprovider::ToolCall;
use codersdk::{ChatMessagePart, RawJson, Uuid};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::registry::{Entry, Slot, TurnTools};
use super::{ToolContext, ToolOutput};

/// Largest tool result, in bytes of compact JSON, that reaches the model and the database
/// unchanged: 64 KiB, about 16 000 tokens. A larger result is replaced by
/// `{"truncated":true,"original_bytes":<n>,"output":"<the first bytes>"}`, itself at most
/// this size, so one runaway command cannot fill the context window or bloat every later
/// request of the chat.
pub const MAX_TOOL_OUTPUT_BYTES: usize = 64 * 1024;

/// The error result of a call to a name the turn does not know.
pub const TOOL_NOT_FOUND_MESSAGE: &str = "Tool not found";

/// The error result of a call to a known tool that this turn's mode switched off.
pub const TOOL_NOT_ACTIVE_MESSAGE: &str = "Tool not active in this turn";

/// The error result of a call that the turn's cancellation (an interrupt) stopped, or that
/// never ran because of it.
pub const TOOL_INTERRUPTED_MESSAGE: &str = "tool call was interrupted before it produced a result";

/// The error result of a call whose arguments are not valid JSON (typically cut off by the
/// output token limit).
pub const TOOL_ARGUMENTS_INVALID_MESSAGE: &str =
    "Tool call arguments are not valid JSON (the call may have been cut off by the output \
     token limit). Call the tool again with complete arguments.";

/// The error result of a call whose tool panicked. The panic's own message goes to the
/// log only: it describes the server, not the model's request.
pub const TOOL_PANICKED_MESSAGE: &str = "Tool execution failed unexpectedly";

/// The error result of a call that ran longer than its tool's [`super::Tool::timeout`]:
/// "Tool execution timed out after 60s" (whole seconds when the budget is whole seconds,
/// else milliseconds).
pub fn timed_out_message(timeout: Duration) -> String {
    if timeout.subsec_nanos() == 0 {
        format!("Tool execution timed out after {}s", timeout.as_secs())
    } else {
        format!("Tool execution timed out after {}ms", timeout.as_millis())
    }
}

/// The error result part for `call` when it has no result because the turn was
/// interrupted before the call ran (step 3); [`TurnTools::execute`] answers
/// the calls it was given itself.
pub fn interrupted_result_part(call: &ToolCall) -> ChatMessagePart {
    ChatMessagePart::tool_error(&call.id, &call.name, TOOL_INTERRUPTED_MESSAGE)
}

/// How a tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ToolCallOutcome {
    /// The tool ran and returned a successful result.
    Succeeded,
    /// The tool ran and reported a failure ([`ToolOutput::error`]).
    Failed,
    /// No tool of that name exists in the turn ([`TOOL_NOT_FOUND_MESSAGE`]).
    NotFound,
    /// The tool exists but is switched off in this turn ([`TOOL_NOT_ACTIVE_MESSAGE`]).
    NotActive,
    /// The arguments were not valid JSON; the tool did not run
    /// ([`TOOL_ARGUMENTS_INVALID_MESSAGE`]).
    InvalidArguments,
    /// The tool ran past its timeout and was stopped ([`timed_out_message`]).
    TimedOut,
    /// The tool panicked ([`TOOL_PANICKED_MESSAGE`]).
    Panicked,
    /// The turn was cancelled before the tool produced a result
    /// ([`TOOL_INTERRUPTED_MESSAGE`]).
    Interrupted,
}

/// The answer to one tool call of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallResult {
    /// Position of the call in the slice given to [`TurnTools::execute`].
    pub index: usize,
    /// The `tool-result` part to publish and persist (carries the call id and tool name).
    pub part: ChatMessagePart,
    /// How the call ended.
    pub outcome: ToolCallOutcome,
    /// A stop-after tool succeeded: the turn ends after this step.
    pub stops_turn: bool,
}

/// Everything a step's tool calls produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepToolResults {
    /// One result per answered call, in call order. Provider-executed calls and pending
    /// dynamic calls have none.
    pub results: Vec<ToolCallResult>,
    /// The client-executed calls left open, in call order: when not empty the chat goes
    /// to `requires_action` after the step is persisted.
    pub pending_dynamic: Vec<ToolCall>,
    /// A stop-after tool succeeded: the turn ends after this step.
    pub stop_turn: bool,
}

impl StepToolResults {
    /// The result parts in call order: the `tool` rows to persist.
    pub fn parts(&self) -> Vec<ChatMessagePart> {
        self.results.iter().map(|r| r.part.clone()).collect()
    }

    /// Whether client-executed calls wait for the client.
    pub fn requires_action(&self) -> bool {
        !self.pending_dynamic.is_empty()
    }

    /// Whether any call was cut short by the turn's cancellation.
    pub fn interrupted(&self) -> bool {
        self.results
            .iter()
            .any(|r| r.outcome == ToolCallOutcome::Interrupted)
    }
}

/// A step's tool calls being executed; yields results in call order.
///
/// The calls run concurrently from the moment [`TurnTools::execute`] returns, each in its
/// own task, whether or not anyone waits. [`next`](Self::next) returns result `k` once
/// results `0..k` are done, so the engine can publish each part as early as the order
/// allows; [`finish`](Self::finish) waits for the rest and returns all of them. Dropping
/// the execution cancels and aborts the calls still running.
///
/// ```no_run
/// # async fn step(tools: chatd_core::tools::TurnTools, calls: Vec<chatprovider::ToolCall>) {
/// let cancel = tokio_util::sync::CancellationToken::new();
/// let mut running = tools.execute(&calls, &cancel);
/// while let Some(result) = running.next().await {
///     // publish result.part to the chat's stream
/// #   let _ = result;
/// }
/// let step = running.finish().await; // every result, pending dynamic calls, stop flag
/// # let _ = step;
/// # }
/// ```
pub struct ToolExecution {
    running: FuturesOrdered<BoxFuture<'static, ToolCallResult>>,
    done: Vec<ToolCallResult>,
    pending_dynamic: Vec<ToolCall>,
}

impl fmt::Debug for ToolExecution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolExecution")
            .field("running", &self.running.len())
            .field("done", &self.done.len())
            .field("pending_dynamic", &self.pending_dynamic)
            .finish()
    }
}

impl ToolExecution {
    /// The next result in call order, once it and all earlier ones are done; `None` when
    /// every call is answered.
    pub async fn next(&mut self) -> Option<&ToolCallResult> {
        let result = self.running.next().await?;
        self.done.push(result);
        self.done.last()
    }

    /// How many results [`next`](Self::next) has yet to return.
    pub fn remaining(&self) -> usize {
        self.running.len()
    }

    /// The client-executed calls that will be left open, in call order (known at once).
    pub fn pending_dynamic(&self) -> &[ToolCall] {
        &self.pending_dynamic
    }

    /// Waits for the remaining calls and returns every result, including those
    /// [`next`](Self::next) returned already.
    pub async fn finish(mut self) -> StepToolResults {
        while self.next().await.is_some() {}
        let stop_turn = self.done.iter().any(|r| r.stops_turn);
        StepToolResults {
            results: std::mem::take(&mut self.done),
            pending_dynamic: std::mem::take(&mut self.pending_dynamic),
            stop_turn,
        }
    }
}

impl TurnTools {
    /// Starts executing a step's tool calls.
    ///
    /// Each call is classified by name: a provider-executed call is skipped (its result
    /// arrived inline), a dynamic tool's call is left pending, an unknown name is answered
    /// [`TOOL_NOT_FOUND_MESSAGE`], a switched-off tool [`TOOL_NOT_ACTIVE_MESSAGE`], and
    /// arguments that are not valid JSON [`TOOL_ARGUMENTS_INVALID_MESSAGE`]. Every other
    /// call starts at once in its own Tokio task with a child of `cancel`, bounded by its
    /// tool's timeout. A tool that panics, times out or is cancelled gets an error result;
    /// a result larger than [`MAX_TOOL_OUTPUT_BYTES`] is truncated.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime (the calls are spawned on it).
    pub fn execute(&self, calls: &[ToolCall], cancel: &CancellationToken) -> ToolExecution {
        let mut running: FuturesOrdered<BoxFuture<'static, ToolCallResult>> = FuturesOrdered::new();
        let mut pending_dynamic = Vec::new();
        for (index, call) in calls.iter().enumerate() {
            if call.provider_executed {
                continue;
            }
            let immediate = |part: ChatMessagePart, outcome| ToolCallResult {
                index,
                part,
                outcome,
                stops_turn: false,
            };
            let error = |message: &str| ChatMessagePart::tool_error(&call.id, &call.name, message);
            let result = match self.slots.get(&call.name) {
                None => immediate(error(TOOL_NOT_FOUND_MESSAGE), ToolCallOutcome::NotFound),
                Some(Slot::Inactive) => {
                    immediate(error(TOOL_NOT_ACTIVE_MESSAGE), ToolCallOutcome::NotActive)
                }
                Some(Slot::Dynamic(_)) => {
                    pending_dynamic.push(call.clone());
                    continue;
                }
                Some(Slot::Active(entry)) => match call.arguments_json() {
                    None => immediate(
                        error(TOOL_ARGUMENTS_INVALID_MESSAGE),
                        ToolCallOutcome::InvalidArguments,
                    ),
                    Some(args) => {
                        running
                            .push_back(Box::pin(self.spawn_call(index, call, entry, args, cancel)));
                        continue;
                    }
                },
            };
            running.push_back(Box::pin(std::future::ready(result)));
        }
        ToolExecution {
            running,
            done: Vec::new(),
            pending_dynamic,
        }
    }

    /// [`execute`](Self::execute) and wait for every result.
    pub async fn execute_calls(
        &self,
        calls: &[ToolCall],
        cancel: &CancellationToken,
    ) -> StepToolResults {
        self.execute(calls, cancel).finish().await
    }

    /// Spawns one call; the returned future maps how the task ended onto a result.
    fn spawn_call(
        &self,
        index: usize,
        call: &ToolCall,
        entry: &Entry,
        args: RawJson,
        cancel: &CancellationToken,
    ) -> impl std::future::Future<Output = ToolCallResult> + Send + 'static {
        let tool = entry.tool.clone();
        let token = cancel.child_token();
        let ctx = ToolContext::new(self.turn.clone(), call.id.clone(), token.clone());
        let timeout = tool.timeout();
        let stops = tool.stops_turn();
        let mcp_server_config_id = tool.mcp_server_config_id();
        let (call_id, tool_name) = (call.id.clone(), call.name.clone());
        let handle = tokio::spawn(async move {
            let cancel = ctx.cancel.clone();
            let end = tokio::select! {
                biased;
                () = cancel.cancelled() => RunEnd::Interrupted,
                run = tokio::time::timeout(timeout, tool.run(ctx, args)) => match run {
                    Ok(output) => RunEnd::Output(output),
                    Err(_) => RunEnd::TimedOut,
                },
            };
            if !matches!(end, RunEnd::Output(_)) {
                // The tool's future is gone; tell whatever it started on the side.
                cancel.cancel();
            }
            end
        });
        let mut guard = AbortOnDrop { handle, token };
        async move {
            let joined = (&mut guard.handle).await;
            let (part, outcome) = match joined {
                Ok(RunEnd::Output(output)) => {
                    let output = limit_output(output);
                    let outcome = if output.is_error {
                        ToolCallOutcome::Failed
                    } else {
                        ToolCallOutcome::Succeeded
                    };
                    let part = ChatMessagePart::tool_result(
                        &call_id,
                        &tool_name,
                        output.result,
                        output.is_error,
                    );
                    (part, outcome)
                }
                Ok(RunEnd::TimedOut) => {
                    tracing::warn!(tool = %tool_name, call_id = %call_id, ?timeout, "tool call timed out");
                    let message = timed_out_message(timeout);
                    let part = ChatMessagePart::tool_error(&call_id, &tool_name, message);
                    (part, ToolCallOutcome::TimedOut)
                }
                Err(e) if e.is_panic() => {
                    let payload = e.into_panic();
                    let text = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(tool = %tool_name, call_id = %call_id, panic = %text, "tool panicked");
                    let part =
                        ChatMessagePart::tool_error(&call_id, &tool_name, TOOL_PANICKED_MESSAGE);
                    (part, ToolCallOutcome::Panicked)
                }
                Ok(RunEnd::Interrupted) | Err(_) => {
                    let part =
                        ChatMessagePart::tool_error(&call_id, &tool_name, TOOL_INTERRUPTED_MESSAGE);
                    (part, ToolCallOutcome::Interrupted)
                }
            };
            let part = with_mcp_server(part, mcp_server_config_id);
            ToolCallResult {
                index,
                stops_turn: stops && outcome == ToolCallOutcome::Succeeded,
                part,
                outcome,
            }
        }
    }
}

fn with_mcp_server(mut part: ChatMessagePart, id: Option<Uuid>) -> ChatMessagePart {
    part.mcp_server_config_id = id;
    part
}

/// How a spawned call ended, short of a panic.
enum RunEnd {
    Output(ToolOutput),
    TimedOut,
    Interrupted,
}

/// Cancels and aborts a call whose result nobody will read any more.
struct AbortOnDrop {
    handle: JoinHandle<RunEnd>,
    token: CancellationToken,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if !self.handle.is_finished() {
            self.token.cancel();
            self.handle.abort();
        }
    }
}

/// The truncation marker object; field order is the wire order.
#[derive(Serialize)]
struct Truncated<'a> {
    truncated: bool,
    original_bytes: usize,
    output: &'a str,
}

/// Replaces a result larger than [`MAX_TOOL_OUTPUT_BYTES`] by a [`Truncated`] object of
/// at most that size. A string result keeps its first characters as text; any other JSON
/// keeps its first characters of JSON text.
pub(super) fn limit_output(output: ToolOutput) -> ToolOutput {
    let text = output.result.get();
    let original_bytes = text.len();
    if original_bytes <= MAX_TOOL_OUTPUT_BYTES {
        return output;
    }
    let content = match output.result.parse::<String>() {
        Ok(s) => s,
        Err(_) => text.to_owned(),
    };
    let empty = Truncated {
        truncated: true,
        original_bytes,
        output: "",
    };
    let overhead = serde_json::to_string(&empty).map(|s| s.len()).unwrap_or(0);
    let budget = MAX_TOOL_OUTPUT_BYTES.saturating_sub(overhead);
    let mut kept = String::new();
    let mut used = 0usize;
    for c in content.chars() {
        let n = escaped_len(c);
        if used + n > budget {
            break;
        }
        used += n;
        kept.push(c);
    }
    let marker = Truncated {
        output: &kept,
        ..empty
    };
    let result = RawJson::from_value(&marker).unwrap_or_else(|_| RawJson::null());
    ToolOutput {
        result,
        is_error: output.is_error,
    }
}

/// Bytes `c` takes inside a JSON string as `serde_json` writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use proptest::prelude::*;

    fn limited(result: RawJson) -> serde_json::Value {
        let out = limit_output(ToolOutput::ok(result));
        assert!(out.result.get().len() <= MAX_TOOL_OUTPUT_BYTES);
        out.result.to_value()
    }

    #[test]
    fn output_at_the_limit_is_kept_and_one_byte_more_is_truncated() {
        // A JSON string of exactly MAX bytes: the quotes take two.
        let at = "a".repeat(MAX_TOOL_OUTPUT_BYTES - 2);
        let raw = RawJson::from_value(&at).unwrap();
        assert_eq!(raw.get().len(), MAX_TOOL_OUTPUT_BYTES);
        assert_eq!(limit_output(ToolOutput::ok(raw.clone())).result, raw);

        let over = RawJson::from_value(&format!("{at}b")).unwrap();
        let v = limited(over);
        assert_eq!(v["truncated"], true);
        assert_eq!(v["original_bytes"], MAX_TOOL_OUTPUT_BYTES + 1);
        let kept = v["output"].as_str().unwrap();
        assert!(at.starts_with(kept));
        // The marker uses the budget: nearly all of the limit is real output.
        assert!(kept.len() > MAX_TOOL_OUTPUT_BYTES - 100);
    }

    #[test]
    fn truncation_marker_fields_come_in_a_fixed_order_and_keep_is_error() {
        let big = RawJson::from_value(&"x".repeat(MAX_TOOL_OUTPUT_BYTES * 2)).unwrap();
        let out = limit_output(ToolOutput {
            result: big,
            is_error: true,
        });
        assert!(out.is_error);
        assert!(out
            .result
            .get()
            .starts_with(r#"{"truncated":true,"original_bytes":131074,"output":"xxx"#));
    }

    #[test]
    fn non_string_output_keeps_its_json_text_prefix() {
        let items: Vec<u32> = (0..40_000).collect();
        let raw = RawJson::from_value(&items).unwrap();
        let v = limited(raw.clone());
        let kept = v["output"].as_str().unwrap();
        assert!(kept.starts_with("[0,1,2,3"));
        assert!(raw.get().starts_with(kept));
    }

    #[test]
    fn escapes_count_against_the_budget() {
        // Each control character takes six bytes escaped, each quote two.
        let nasty = "\u{1}\"é\n".repeat(MAX_TOOL_OUTPUT_BYTES);
        let v = limited(RawJson::from_value(&nasty).unwrap());
        assert!(nasty.starts_with(v["output"].as_str().unwrap()));
    }

    proptest! {
        #[test]
        fn truncated_output_never_exceeds_the_limit(
            unit in "[a\u{0}-\u{1f}\"\\\\é😀]{1,4}",
            repeat in (MAX_TOOL_OUTPUT_BYTES / 8)..(MAX_TOOL_OUTPUT_BYTES / 2),
        ) {
            let s = unit.repeat(repeat);
            let raw = RawJson::from_value(&s).unwrap();
            let out = limit_output(ToolOutput::ok(raw.clone()));
            prop_assert!(out.result.get().len() <= MAX_TOOL_OUTPUT_BYTES);
            if raw.get().len() > MAX_TOOL_OUTPUT_BYTES {
                let v = out.result.to_value();
                prop_assert!(s.starts_with(v["output"].as_str().unwrap()));
                // Nothing is wasted: one more character would not have fit.
                prop_assert!(out.result.get().len() + 6 > MAX_TOOL_OUTPUT_BYTES);
            } else {
                prop_assert_eq!(out.result, raw);
            }
        }
    }

    #[test]
    fn timeout_message_names_the_budget() {
        assert_eq!(
            timed_out_message(Duration::from_secs(60)),
            "Tool execution timed out after 60s"
        );
        assert_eq!(
            timed_out_message(Duration::from_millis(1500)),
            "Tool execution timed out after 1500ms"
        );
    }
}
