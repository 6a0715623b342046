//! A local OpenAI Responses API server for the chaining tests (docs/engine-design.md,
//! "OpenAI Responses chaining"): [`MockResponses`] answers `POST /v1/responses` with a
//! streamed reply in the real event format, keeps the responses it was asked to store,
//! resolves `previous_response_id` against them, and reports usage that grows with the
//! conversation the way OpenAI's does.
//!
//! ```no_run
//! # async fn demo() {
//! use chatd_test_support::responses::{MockReply, MockResponses};
//!
//! let mock = MockResponses::start().await;
//! // Point an `OpenAiResponsesModel` at `mock.url()`; the next reply is a function call.
//! mock.push_reply(MockReply::function_call("call_1", "echo", serde_json::json!({"x": 1})));
//! // ... run a turn ...
//! for request in mock.requests() {
//!     println!("{:?} sent ~{} tokens", request.previous_response_id(), request.tokens_sent);
//! }
//! # }
//! ```
//!
//! # What it models
//!
//! - **Storage.** A request with `store` true (OpenAI's default when the field is absent)
//!   stores its response under a fresh `resp_…` id, with the size of the whole
//!   conversation in tokens (the input the provider counted without the `instructions`,
//!   plus the reply) and the function calls the reply left open.
//! - **Chaining.** A `previous_response_id` the mock does not hold (never stored, or
//!   dropped by [`MockResponses::forget_responses`]) is answered with HTTP 400 and
//!   OpenAI's error body ([`previous_response_not_found`]). Function-call continuity is
//!   checked as OpenAI checks it: every function call of the previous response and of the
//!   input needs its output in the input, and every output needs its call.
//! - **Usage.** `usage.input_tokens` is the request's own input ([`tokens_sent`]: the
//!   characters of `instructions` and of the `input` JSON text, [`CHARS_PER_TOKEN`] to a
//!   token, rounded up) plus the stored conversation of the previous response (its input
//!   items and its reply: `instructions` are not carried over, as on OpenAI). OpenAI bills
//!   the stored context of a chained request as input again; only the bytes on the wire
//!   shrink. `usage.output_tokens` is the reply's size by the same estimate.
//! - **Replies.** Scripted replies ([`MockResponses::push_reply`]) are used in order;
//!   without one the reply is the text [`default_reply`] for the request.
//!
//! Every request is recorded ([`MockResponses::requests`]) with its body, its
//! [`tokens_sent`], the HTTP status it got, and the id and usage of its response.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

/// Characters per token of the mock's token estimate (OpenAI's rule of thumb for English
/// text). Every count the mock reports is a whole number of characters divided by it,
/// rounded up.
pub const CHARS_PER_TOKEN: usize = 4;

/// The model name the mock reports in its responses.
pub const MOCK_RESPONSES_MODEL: &str = "gpt-5.1";

/// Most text characters one `response.output_text.delta` event carries: a reply arrives
/// in several deltas, as a real one does.
pub const MAX_DELTA_CHARS: usize = 16;

/// Path the mock serves (below its base URL).
pub const RESPONSES_PATH: &str = "/v1/responses";

/// What the mock answers one request with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MockReply {
    /// An assistant message with this text.
    Text(String),
    /// One function call, left open for the next request to answer.
    FunctionCall {
        /// The call id the output must name (`call_id`).
        call_id: String,
        /// The function's name.
        name: String,
        /// The arguments as JSON text.
        arguments: String,
    },
}

impl MockReply {
    /// A text reply.
    pub fn text(text: impl Into<String>) -> Self {
        MockReply::Text(text.into())
    }

    /// A function call of `name` with `arguments`, under `call_id`.
    pub fn function_call(
        call_id: impl Into<String>,
        name: impl Into<String>,
        arguments: Value,
    ) -> Self {
        MockReply::FunctionCall {
            call_id: call_id.into(),
            name: name.into(),
            arguments: arguments.to_string(),
        }
    }

    /// The characters the reply counts for in output tokens.
    fn chars(&self) -> usize {
        match self {
            MockReply::Text(text) => text.chars().count(),
            MockReply::FunctionCall {
                name, arguments, ..
            } => name.chars().count() + arguments.chars().count(),
        }
    }
}

/// One request the mock received.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ResponsesRequest {
    /// The JSON body (`null` when it was not JSON).
    pub body: Value,
    /// The request's own input in tokens ([`tokens_sent`]): what chaining saves sending.
    pub tokens_sent: u64,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The id of the response streamed back; `None` for a refused request.
    pub response_id: Option<String>,
    /// The `usage.input_tokens` reported: [`tokens_sent`](Self::tokens_sent) plus the
    /// stored conversation it continued. `None` for a refused request.
    pub input_tokens: Option<u64>,
    /// The `usage.output_tokens` reported; `None` for a refused request.
    pub output_tokens: Option<u64>,
}

impl ResponsesRequest {
    /// The `previous_response_id` the request continued from.
    pub fn previous_response_id(&self) -> Option<&str> {
        self.body
            .get("previous_response_id")
            .and_then(Value::as_str)
    }

    /// The `instructions` (the system blocks).
    pub fn instructions(&self) -> Option<&str> {
        self.body.get("instructions").and_then(Value::as_str)
    }

    /// The `input` items.
    pub fn input(&self) -> &[Value] {
        self.body
            .get("input")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The `type` of each input item, in order (`message`, `function_call`,
    /// `function_call_output`, `reasoning`, …).
    pub fn input_types(&self) -> Vec<&str> {
        self.input()
            .iter()
            .map(|i| i.get("type").and_then(Value::as_str).unwrap_or_default())
            .collect()
    }

    /// The text of each user message item of the input, in order.
    pub fn user_texts(&self) -> Vec<String> {
        self.input()
            .iter()
            .filter(|i| is_message_of(i, "user"))
            .map(message_text)
            .collect()
    }

    /// The `call_id` of each `function_call_output` item of the input, in order.
    pub fn function_call_outputs(&self) -> Vec<&str> {
        items_of(self.input(), "function_call_output")
            .filter_map(|i| i.get("call_id").and_then(Value::as_str))
            .collect()
    }

    /// Whether the request was answered with a stream.
    pub fn succeeded(&self) -> bool {
        self.status == 200
    }
}

/// Tokens for `chars` characters: `chars / CHARS_PER_TOKEN`, rounded up.
pub fn estimate_tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(CHARS_PER_TOKEN)).unwrap_or(u64::MAX)
}

/// The estimated tokens of a request body's own input: the characters of its
/// `instructions` plus those of its `input` array as JSON text, in tokens
/// ([`estimate_tokens`]). The stored conversation a `previous_response_id` brings in is not
/// part of it.
pub fn tokens_sent(body: &Value) -> u64 {
    let instructions = body
        .get("instructions")
        .and_then(Value::as_str)
        .map_or(0, |s| s.chars().count());
    let input = body
        .get("input")
        .map_or(0, |i| i.to_string().chars().count());
    estimate_tokens(instructions.saturating_add(input))
}

/// The estimated tokens of a request body's `instructions` alone.
fn instruction_tokens(body: &Value) -> u64 {
    let chars = body
        .get("instructions")
        .and_then(Value::as_str)
        .map_or(0, |s| s.chars().count());
    estimate_tokens(chars)
}

/// The reply the mock makes without a script: `Reply to [<text>]` for the request's last
/// user message text, or `Reply to the tool results.` when its input has no user text.
pub fn default_reply(body: &Value) -> String {
    let input = body
        .get("input")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    input
        .iter()
        .rev()
        .find(|i| is_message_of(i, "user"))
        .map(message_text)
        .filter(|t| !t.is_empty())
        .map_or_else(
            || "Reply to the tool results.".to_owned(),
            |t| format!("Reply to [{t}]"),
        )
}

/// OpenAI's error body for a `previous_response_id` it does not have.
pub fn previous_response_not_found(id: &str) -> Value {
    json!({
        "error": {
            "message": format!("Previous response with id '{id}' not found."),
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }
    })
}

fn is_message_of(item: &Value, role: &str) -> bool {
    item.get("type").and_then(Value::as_str) == Some("message")
        && item.get("role").and_then(Value::as_str) == Some(role)
}

fn items_of<'a>(input: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    input
        .iter()
        .filter(move |i| i.get("type").and_then(Value::as_str) == Some(kind))
}

/// The text of a message item (its `content`: a string or text parts).
fn message_text(item: &Value) -> String {
    match item.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// A stored response: what a request continuing from it inherits.
#[derive(Debug, Clone)]
struct Stored {
    /// The whole conversation up to and including this response, in tokens.
    context_tokens: u64,
    /// Function calls of this response, which the next request must answer.
    open_calls: BTreeSet<String>,
}

#[derive(Default)]
struct Shared {
    replies: Mutex<VecDeque<MockReply>>,
    stored: Mutex<HashMap<String, Stored>>,
    requests: Mutex<Vec<ResponsesRequest>>,
    next_id: AtomicU64,
}

/// Locks `mutex`, taking the data of a poisoned one: a panic elsewhere already fails the
/// test, and the records must stay readable for the assertion that reports it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A local OpenAI Responses server (module docs). It stops when dropped.
pub struct MockResponses {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for MockResponses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockResponses")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Drop for MockResponses {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockResponses {
    /// Starts the mock on a random local port.
    pub async fn start() -> MockResponses {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .route(RESPONSES_PATH, axum::routing::post(responses))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mock Responses server to a local port");
        let addr = listener
            .local_addr()
            .expect("the mock Responses server's local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockResponses {
            base_url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// The OpenAI base URL for a client: `base_url` + `/v1`.
    pub fn url(&self) -> String {
        format!("{}/v1", self.base_url)
    }

    /// Queues `reply` for the next request without a queued reply before it.
    pub fn push_reply(&self, reply: MockReply) {
        lock(&self.shared.replies).push_back(reply);
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<ResponsesRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The requests answered with a stream, oldest first.
    pub fn succeeded(&self) -> Vec<ResponsesRequest> {
        self.requests()
            .into_iter()
            .filter(ResponsesRequest::succeeded)
            .collect()
    }

    /// Drops every stored response, as OpenAI does when they expire or are deleted: a
    /// request continuing from one is refused from now on.
    pub fn forget_responses(&self) {
        lock(&self.shared.stored).clear();
    }

    /// How many responses are stored.
    pub fn stored_responses(&self) -> usize {
        lock(&self.shared.stored).len()
    }

    /// The conversation size in tokens stored with response `id`.
    pub fn context_tokens(&self, id: &str) -> Option<u64> {
        lock(&self.shared.stored).get(id).map(|s| s.context_tokens)
    }
}

/// An OpenAI-shaped error answer.
fn error_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|e| panic!("the mock's error response is invalid: {e}"))
}

fn invalid_request(message: String, param: &str) -> Value {
    json!({
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": null,
        }
    })
}

/// Why a request is refused, with its error body; `None` when it may be answered. Reads
/// the previous response (already resolved) for its open function calls.
fn continuity_error(input: &[Value], previous: Option<&Stored>) -> Option<Value> {
    let call_id = |i: &Value| {
        i.get("call_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let outputs: BTreeSet<String> = items_of(input, "function_call_output")
        .map(call_id)
        .collect();
    let mut calls: BTreeSet<String> = items_of(input, "function_call").map(call_id).collect();
    if let Some(previous) = previous {
        calls.extend(previous.open_calls.iter().cloned());
    }
    if let Some(missing) = calls.iter().find(|c| !outputs.contains(*c)) {
        return Some(invalid_request(
            format!("No tool output found for function call {missing}."),
            "input",
        ));
    }
    outputs.iter().find(|o| !calls.contains(*o)).map(|orphan| {
        invalid_request(
            format!("No tool call found for function call output with call_id {orphan}."),
            "input",
        )
    })
}

async fn responses(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        let error = invalid_request("The body is not valid JSON.".to_owned(), "body");
        lock(&shared.requests).push(ResponsesRequest {
            body: Value::Null,
            tokens_sent: 0,
            status: 400,
            response_id: None,
            input_tokens: None,
            output_tokens: None,
        });
        return error_response(StatusCode::BAD_REQUEST, &error);
    };
    let sent = tokens_sent(&body);
    let refuse = |status: StatusCode, error: Value| {
        lock(&shared.requests).push(ResponsesRequest {
            body: body.clone(),
            tokens_sent: sent,
            status: status.as_u16(),
            response_id: None,
            input_tokens: None,
            output_tokens: None,
        });
        error_response(status, &error)
    };
    let previous_id = body
        .get("previous_response_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let previous = match &previous_id {
        Some(id) => match lock(&shared.stored).get(id).cloned() {
            Some(stored) => Some(stored),
            None => {
                return refuse(StatusCode::BAD_REQUEST, previous_response_not_found(id));
            }
        },
        None => None,
    };
    let input = body
        .get("input")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if let Some(error) = continuity_error(input, previous.as_ref()) {
        return refuse(StatusCode::BAD_REQUEST, error);
    }
    let reply = lock(&shared.replies)
        .pop_front()
        .unwrap_or_else(|| MockReply::Text(default_reply(&body)));
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let id = format!("resp_mock{n:06}");
    let input_tokens = sent.saturating_add(previous.as_ref().map_or(0, |p| p.context_tokens));
    let output_tokens = estimate_tokens(reply.chars());
    // OpenAI's default: a request without `store` is stored.
    if body.get("store").and_then(Value::as_bool).unwrap_or(true) {
        let open_calls = match &reply {
            MockReply::FunctionCall { call_id, .. } => BTreeSet::from([call_id.clone()]),
            MockReply::Text(_) => BTreeSet::new(),
        };
        lock(&shared.stored).insert(
            id.clone(),
            Stored {
                // `instructions` are not carried over by `previous_response_id` (OpenAI
                // documents it): the stored conversation is the input items and the reply.
                context_tokens: input_tokens
                    .saturating_sub(instruction_tokens(&body))
                    .saturating_add(output_tokens),
                open_calls,
            },
        );
    }
    lock(&shared.requests).push(ResponsesRequest {
        body: body.clone(),
        tokens_sent: sent,
        status: 200,
        response_id: Some(id.clone()),
        input_tokens: Some(input_tokens),
        output_tokens: Some(output_tokens),
    });
    let events = events(&id, n, &body, &reply, input_tokens, output_tokens);
    let mut text = String::new();
    for event in &events {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        text.push_str(&format!("event: {kind}\ndata: {event}\n\n"));
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .body(Body::from(text))
        .unwrap_or_else(|e| panic!("the mock's SSE response is invalid: {e}"))
}

/// The event stream of one response, in the order OpenAI sends it: created, in progress,
/// the output item (added, its deltas, done), completed with the usage.
fn events(
    id: &str,
    n: u64,
    request: &Value,
    reply: &MockReply,
    input_tokens: u64,
    output_tokens: u64,
) -> Vec<Value> {
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": id,
            "object": "response",
            "created_at": 1_770_000_000_u64.saturating_add(n),
            "status": status,
            "error": null,
            "incomplete_details": null,
            "instructions": request.get("instructions").cloned().unwrap_or(Value::Null),
            "model": MOCK_RESPONSES_MODEL,
            "output": output,
            "previous_response_id": request.get("previous_response_id").cloned().unwrap_or(Value::Null),
            "store": request.get("store").cloned().unwrap_or(Value::Bool(true)),
            "usage": usage,
        })
    };
    let mut out = vec![
        json!({"type": "response.created", "response": response("in_progress", json!([]), Value::Null)}),
        json!({"type": "response.in_progress", "response": response("in_progress", json!([]), Value::Null)}),
    ];
    let item = match reply {
        MockReply::Text(text) => {
            let item_id = format!("msg_mock{n:06}");
            let started = json!({
                "id": item_id, "type": "message", "status": "in_progress",
                "content": [], "role": "assistant",
            });
            out.push(
                json!({"type": "response.output_item.added", "output_index": 0, "item": started}),
            );
            let empty = json!({"type": "output_text", "annotations": [], "text": ""});
            out.push(json!({
                "type": "response.content_part.added", "item_id": item_id,
                "output_index": 0, "content_index": 0, "part": empty,
            }));
            for delta in deltas(text) {
                out.push(json!({
                    "type": "response.output_text.delta", "item_id": item_id,
                    "output_index": 0, "content_index": 0, "delta": delta,
                }));
            }
            out.push(json!({
                "type": "response.output_text.done", "item_id": item_id,
                "output_index": 0, "content_index": 0, "text": text,
            }));
            let part = json!({"type": "output_text", "annotations": [], "text": text});
            out.push(json!({
                "type": "response.content_part.done", "item_id": item_id,
                "output_index": 0, "content_index": 0, "part": part.clone(),
            }));
            json!({
                "id": item_id, "type": "message", "status": "completed",
                "content": [part], "role": "assistant",
            })
        }
        MockReply::FunctionCall {
            call_id,
            name,
            arguments,
        } => {
            let item_id = format!("fc_mock{n:06}");
            out.push(json!({
                "type": "response.output_item.added", "output_index": 0,
                "item": {
                    "id": item_id, "type": "function_call", "status": "in_progress",
                    "arguments": "", "call_id": call_id, "name": name,
                },
            }));
            for delta in deltas(arguments) {
                out.push(json!({
                    "type": "response.function_call_arguments.delta", "item_id": item_id,
                    "output_index": 0, "delta": delta,
                }));
            }
            out.push(json!({
                "type": "response.function_call_arguments.done", "item_id": item_id,
                "output_index": 0, "arguments": arguments,
            }));
            json!({
                "id": item_id, "type": "function_call", "status": "completed",
                "arguments": arguments, "call_id": call_id, "name": name,
            })
        }
    };
    out.push(json!({"type": "response.output_item.done", "output_index": 0, "item": item.clone()}));
    let usage = json!({
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens.saturating_add(output_tokens),
    });
    out.push(json!({"type": "response.completed", "response": response("completed", json!([item]), usage)}));
    for (sequence, event) in out.iter_mut().enumerate() {
        if let Some(map) = event.as_object_mut() {
            map.insert("sequence_number".into(), sequence.into());
        }
    }
    out
}

/// `text` in pieces of at most [`MAX_DELTA_CHARS`] characters (at least one piece).
fn deltas(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let pieces: Vec<String> = chars
        .chunks(MAX_DELTA_CHARS)
        .map(|c| c.iter().collect())
        .collect();
    if pieces.is_empty() {
        vec![String::new()]
    } else {
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_rounds_up() {
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(CHARS_PER_TOKEN), 1);
        assert_eq!(estimate_tokens(CHARS_PER_TOKEN + 1), 2);
        // 4 characters of instructions + `[]` (2) = 6 characters: 2 tokens.
        assert_eq!(
            tokens_sent(&json!({"instructions": "abcd", "input": []})),
            2
        );
        assert_eq!(tokens_sent(&json!({})), 0);
    }

    #[test]
    fn continuity_needs_calls_and_outputs_in_pairs() {
        let call =
            json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"});
        let output = json!({"type": "function_call_output", "call_id": "c1", "output": "x"});
        assert!(continuity_error(&[call.clone(), output.clone()], None).is_none());
        assert!(continuity_error(std::slice::from_ref(&call), None).is_some());
        assert!(continuity_error(std::slice::from_ref(&output), None).is_some());
        let previous = Stored {
            context_tokens: 0,
            open_calls: BTreeSet::from(["c1".to_owned()]),
        };
        assert!(continuity_error(std::slice::from_ref(&output), Some(&previous)).is_none());
        assert!(continuity_error(&[], Some(&previous)).is_some());
    }

    #[test]
    fn the_default_reply_names_the_last_user_text() {
        let body = json!({"input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "two"}]},
        ]});
        assert_eq!(default_reply(&body), "Reply to [two]");
        assert_eq!(
            default_reply(&json!({"input": []})),
            "Reply to the tool results."
        );
    }
}
