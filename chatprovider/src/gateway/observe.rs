//! Watching a response go by: a copy of each chunk the gateway forwards is decoded on the
//! side with the same decoders the chat engine streams with, and what they saw — model,
//! normalized usage, tool calls, reasoning, a classified failure — is the
//! [`Observation`] the interception record is made of.
//!
//! The observer never changes what is forwarded and never fails the forwarding: a body it
//! cannot decode is recorded as such (an error kind on the record), not refused.

use chaterror::{ClassifiedError, ProviderError, Redactor};
use codersdk::{ChatErrorKind, ChatMessageUsage};
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::anthropic::AnthropicDecoder;
use crate::catalog::Provider;
use crate::language_model::StreamDecoder;
use crate::openai_chat::{OpenAiChatDecoder, OpenAiChatUsageRule};
use crate::openai_responses::OpenAiResponsesDecoder;
use crate::response::StreamPart;
use crate::sse::{SseDecoder, SseEvent, DEFAULT_MAX_EVENT_BYTES};
use crate::transport::MAX_ERROR_BODY_BYTES;

use super::WireApi;

/// Most bytes of a non-streamed (JSON) response the observer keeps to read model, usage
/// and tool calls from at its end. A larger body is still forwarded whole; its record
/// then has no usage and says why (`observation_truncated`).
pub const MAX_OBSERVED_JSON_BYTES: usize = 8 * 1024 * 1024;

/// Most bytes of reasoning text kept per interception (the rest is dropped, the count of
/// dropped bytes is kept).
pub const MAX_THOUGHT_BYTES: usize = 16 * 1024;

/// Most tool calls kept per interception.
pub const MAX_OBSERVED_TOOL_CALLS: usize = 256;

/// A tool call the model made, as the record keeps it: no arguments, only their size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedToolCall {
    /// The provider's call id (`call_…`, `toolu_…`); empty when it gave none.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// Size in bytes of the arguments' JSON text.
    pub argument_bytes: u64,
}

/// A failure seen in the response: an upstream error status, an error event in a stream,
/// or a body that ended early or could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedError {
    /// The classified kind.
    pub kind: ChatErrorKind,
    /// What went wrong, redacted (the provider's own message where there is one).
    pub message: String,
}

/// What the observer saw of one response.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Observation {
    /// The model the provider says answered.
    pub model: Option<String>,
    /// Usage, normalized with `chatcost`'s rule for the API.
    pub usage: ChatMessageUsage,
    /// Tool calls, in order, at most [`MAX_OBSERVED_TOOL_CALLS`].
    pub tool_calls: Vec<ObservedToolCall>,
    /// Reasoning text, one entry per reasoning block, at most [`MAX_THOUGHT_BYTES`] in all.
    pub thoughts: Vec<String>,
    /// The failure, when the response was one.
    pub error: Option<ObservedError>,
    /// The non-streamed body exceeded [`MAX_OBSERVED_JSON_BYTES`] and was not read.
    pub observation_truncated: bool,
    /// Whether the response was a stream of server-sent events.
    pub streamed: bool,
}

enum Mode {
    /// A server-sent event stream, decoded event by event as it passes.
    Sse {
        sse: SseDecoder,
        decoder: Box<dyn StreamDecoder>,
        events: Vec<SseEvent>,
        parts: Vec<StreamPart>,
        failed: bool,
    },
    /// A JSON body, read at its end.
    Json { body: Vec<u8>, overflow: bool },
    /// An error status: the body (bounded) is classified at its end.
    Error {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
}

/// Decodes a copy of one response as it is forwarded. Feed each chunk to
/// [`Observer::observe`] as it goes to the client, then [`Observer::finish`].
pub struct Observer {
    api: WireApi,
    provider: Provider,
    mode: Mode,
    seen: Observation,
    thought_bytes: usize,
    last_thought_block: Option<u32>,
    redactor: Redactor,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("api", &self.api)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        })
}

impl Observer {
    /// An observer of a response to `api` with this status and these headers.
    /// `redactor` knows the credentials sent upstream, so an error echoing one is
    /// recorded without it.
    pub fn new(api: WireApi, status: u16, headers: &HeaderMap, redactor: Redactor) -> Self {
        let provider = api.provider();
        let streamed = is_event_stream(headers);
        let mode = if status >= 400 {
            Mode::Error {
                status,
                headers: headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect(),
                body: Vec::new(),
            }
        } else if streamed {
            let decoder: Box<dyn StreamDecoder> = match api {
                WireApi::ChatCompletions => Box::new(
                    OpenAiChatDecoder::new(provider).with_usage_rule(OpenAiChatUsageRule::OpenAi),
                ),
                WireApi::Responses => Box::new(OpenAiResponsesDecoder::new(provider)),
                WireApi::Messages => Box::new(AnthropicDecoder::new()),
            };
            Mode::Sse {
                sse: SseDecoder::new(DEFAULT_MAX_EVENT_BYTES),
                decoder,
                events: Vec::new(),
                parts: Vec::new(),
                failed: false,
            }
        } else {
            Mode::Json {
                body: Vec::new(),
                overflow: false,
            }
        };
        Observer {
            api,
            provider,
            mode,
            seen: Observation {
                streamed,
                ..Observation::default()
            },
            thought_bytes: 0,
            last_thought_block: None,
            redactor,
        }
    }

    /// Sees one forwarded chunk.
    pub fn observe(&mut self, chunk: &[u8]) {
        match &mut self.mode {
            Mode::Sse {
                sse,
                decoder,
                events,
                parts,
                failed,
            } => {
                if *failed {
                    return;
                }
                events.clear();
                if let Err(e) = sse.push(chunk, events) {
                    *failed = true;
                    self.seen.error = Some(ObservedError {
                        kind: ChatErrorKind::Generic,
                        message: e.to_string(),
                    });
                    return;
                }
                for event in events.iter() {
                    if decoder.is_done() {
                        break;
                    }
                    parts.clear();
                    let step = decoder.on_event(event, parts);
                    for part in parts.drain(..) {
                        collect_part(
                            &mut self.seen,
                            &mut self.thought_bytes,
                            &mut self.last_thought_block,
                            part,
                        );
                    }
                    if let Err(e) = step {
                        *failed = true;
                        self.seen.error = Some(classified(&e, self.provider, &self.redactor));
                        return;
                    }
                }
            }
            Mode::Json { body, overflow } => {
                if *overflow {
                    return;
                }
                if body.len().saturating_add(chunk.len()) > MAX_OBSERVED_JSON_BYTES {
                    *overflow = true;
                    body.clear();
                    body.shrink_to_fit();
                    return;
                }
                body.extend_from_slice(chunk);
            }
            Mode::Error { body, .. } => {
                let room = MAX_ERROR_BODY_BYTES.saturating_sub(body.len());
                body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
            }
        }
    }

    /// The body ended: `complete` when it ended normally, `false` when reading it failed
    /// or the client went away first (then a stream's missing end is not held against
    /// the upstream).
    pub fn finish(mut self, complete: bool) -> Observation {
        let mode = std::mem::replace(
            &mut self.mode,
            Mode::Json {
                body: Vec::new(),
                overflow: true,
            },
        );
        match mode {
            Mode::Sse {
                mut sse,
                mut decoder,
                mut events,
                mut parts,
                failed,
            } => {
                if !failed && complete {
                    events.clear();
                    let _ = sse.finish(&mut events);
                    for event in &events {
                        if decoder.is_done() {
                            break;
                        }
                        parts.clear();
                        if let Err(e) = decoder.on_event(event, &mut parts) {
                            self.seen.error = Some(classified(&e, self.provider, &self.redactor));
                            break;
                        }
                        for part in parts.drain(..) {
                            collect_part(
                                &mut self.seen,
                                &mut self.thought_bytes,
                                &mut self.last_thought_block,
                                part,
                            );
                        }
                    }
                    if self.seen.error.is_none() {
                        parts.clear();
                        match decoder.on_end(&mut parts) {
                            Ok(()) => {
                                for part in parts.drain(..) {
                                    collect_part(
                                        &mut self.seen,
                                        &mut self.thought_bytes,
                                        &mut self.last_thought_block,
                                        part,
                                    );
                                }
                            }
                            Err(e) => {
                                self.seen.error =
                                    Some(classified(&e, self.provider, &self.redactor))
                            }
                        }
                    }
                }
            }
            Mode::Json { body, overflow } => {
                if overflow {
                    self.seen.observation_truncated = true;
                } else if complete {
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(json) => self.read_json(&json),
                        Err(e) => {
                            self.seen.error = Some(ObservedError {
                                kind: ChatErrorKind::Generic,
                                message: format!("the response body is not JSON: {e}"),
                            })
                        }
                    }
                }
            }
            Mode::Error {
                status,
                headers,
                body,
            } => {
                let err = ProviderError::new(format!(
                    "{} API error: {status} {}",
                    self.provider.as_str(),
                    reqwest::StatusCode::from_u16(status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("")
                ))
                .with_status(status)
                .with_provider(self.provider.as_str())
                .with_headers(headers)
                .with_body(body);
                self.seen.error = Some(classified(&err, self.provider, &self.redactor));
            }
        }
        self.seen
    }

    fn read_json(&mut self, json: &Value) {
        self.seen.model = json.get("model").and_then(Value::as_str).map(str::to_owned);
        let usage = json.get("usage").filter(|u| u.is_object());
        match self.api {
            WireApi::ChatCompletions => {
                if let Some(u) = usage {
                    self.seen.usage = OpenAiChatUsageRule::OpenAi.normalize(u);
                }
                let choices = json.get("choices").and_then(Value::as_array);
                for choice in choices.into_iter().flatten() {
                    let message = choice.get("message");
                    if let Some(r) = message
                        .and_then(|m| m.get("reasoning_content"))
                        .and_then(Value::as_str)
                    {
                        self.thought(0, r);
                    }
                    let calls = message
                        .and_then(|m| m.get("tool_calls"))
                        .and_then(Value::as_array);
                    for call in calls.into_iter().flatten() {
                        let function = call.get("function");
                        self.tool_call(
                            text(call.get("id")),
                            text(function.and_then(|f| f.get("name"))),
                            text(function.and_then(|f| f.get("arguments"))).len(),
                        );
                    }
                }
            }
            WireApi::Responses => {
                if let Some(u) = usage {
                    self.seen.usage = serde_json::from_value(u.clone())
                        .ok()
                        .and_then(|u| chatcost::normalize::openai_responses(&u).ok())
                        .unwrap_or_default();
                }
                let output = json.get("output").and_then(Value::as_array);
                for (i, item) in output.into_iter().flatten().enumerate() {
                    match item.get("type").and_then(Value::as_str) {
                        Some("function_call") => self.tool_call(
                            text(item.get("call_id")),
                            text(item.get("name")),
                            text(item.get("arguments")).len(),
                        ),
                        Some("custom_tool_call") => self.tool_call(
                            text(item.get("call_id")),
                            text(item.get("name")),
                            text(item.get("input")).len(),
                        ),
                        Some("reasoning") => {
                            let summary = item.get("summary").and_then(Value::as_array);
                            for s in summary.into_iter().flatten() {
                                if let Some(t) = s.get("text").and_then(Value::as_str) {
                                    self.thought(u32::try_from(i).unwrap_or(u32::MAX), t);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            WireApi::Messages => {
                if let Some(u) = usage {
                    self.seen.usage = serde_json::from_value(u.clone())
                        .ok()
                        .and_then(|u| chatcost::normalize::anthropic(&u).ok())
                        .unwrap_or_default();
                }
                let content = json.get("content").and_then(Value::as_array);
                for (i, block) in content.into_iter().flatten().enumerate() {
                    match block.get("type").and_then(Value::as_str) {
                        Some("tool_use") | Some("server_tool_use") => {
                            let size = block
                                .get("input")
                                .and_then(|input| serde_json::to_vec(input).ok())
                                .map_or(0, |v| v.len());
                            self.tool_call(text(block.get("id")), text(block.get("name")), size);
                        }
                        Some("thinking") => {
                            if let Some(t) = block.get("thinking").and_then(Value::as_str) {
                                self.thought(u32::try_from(i).unwrap_or(u32::MAX), t);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn tool_call(&mut self, id: &str, name: &str, argument_bytes: usize) {
        push_tool_call(
            &mut self.seen,
            ObservedToolCall {
                id: id.to_owned(),
                name: name.to_owned(),
                argument_bytes: u64::try_from(argument_bytes).unwrap_or(u64::MAX),
            },
        );
    }

    fn thought(&mut self, block: u32, delta: &str) {
        push_thought(
            &mut self.seen,
            &mut self.thought_bytes,
            &mut self.last_thought_block,
            block,
            delta,
        );
    }
}

fn text(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or_default()
}

fn push_tool_call(seen: &mut Observation, call: ObservedToolCall) {
    if seen.tool_calls.len() < MAX_OBSERVED_TOOL_CALLS {
        seen.tool_calls.push(call);
    }
}

fn push_thought(
    seen: &mut Observation,
    used: &mut usize,
    last_block: &mut Option<u32>,
    block: u32,
    delta: &str,
) {
    let room = MAX_THOUGHT_BYTES.saturating_sub(*used);
    if room == 0 || delta.is_empty() {
        return;
    }
    // Cut at a character boundary within the room left.
    let mut end = delta.len().min(room);
    while !delta.is_char_boundary(end) {
        end -= 1;
    }
    let piece = delta.get(..end).unwrap_or_default();
    *used += piece.len();
    match seen.thoughts.last_mut() {
        Some(current) if *last_block == Some(block) => current.push_str(piece),
        _ => seen.thoughts.push(piece.to_owned()),
    }
    *last_block = Some(block);
}

fn collect_part(
    seen: &mut Observation,
    thought_bytes: &mut usize,
    last_block: &mut Option<u32>,
    part: StreamPart,
) {
    match part {
        StreamPart::ResponseMetadata { model: Some(m), .. } => seen.model = Some(m),
        StreamPart::ReasoningDelta { block, delta } => {
            push_thought(seen, thought_bytes, last_block, block, &delta)
        }
        StreamPart::ToolCall(call) => push_tool_call(
            seen,
            ObservedToolCall {
                argument_bytes: u64::try_from(call.arguments.len()).unwrap_or(u64::MAX),
                id: call.id,
                name: call.name,
            },
        ),
        StreamPart::Finish { usage, .. } => seen.usage = usage,
        _ => {}
    }
}

fn classified(err: &ProviderError, provider: Provider, redactor: &Redactor) -> ObservedError {
    let c: ClassifiedError = redactor.redact_classified(chaterror::classify(err));
    let c = c.with_provider(provider.as_str());
    let message = if c.detail().is_empty() {
        c.message().to_owned()
    } else {
        c.detail().to_owned()
    };
    ObservedError {
        kind: c.kind().cloned().unwrap_or(ChatErrorKind::Generic),
        message,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::language_model::decode_body;
    use reqwest::header::HeaderValue;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        h
    }

    fn testdata(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/streams")
            .join(name);
        std::fs::read(path).unwrap()
    }

    /// Feeds `body` in chunks of `size` bytes.
    fn observe(api: WireApi, status: u16, ct: &str, body: &[u8], size: usize) -> Observation {
        let mut o = Observer::new(api, status, &headers(ct), Redactor::new());
        for chunk in body.chunks(size.max(1)) {
            o.observe(chunk);
        }
        o.finish(true)
    }

    #[test]
    fn streams_are_seen_as_the_engine_decodes_them_whatever_the_chunking() {
        for (api, name) in [
            (
                WireApi::ChatCompletions,
                "openai-chat--tool-calls--parallel.sse",
            ),
            (WireApi::ChatCompletions, "openai-chat--text--usage.sse"),
            (
                WireApi::Messages,
                "anthropic-messages--tool-loop--turn1.sse",
            ),
            (
                WireApi::Messages,
                "anthropic-messages--text-then-tool-use.sse",
            ),
        ] {
            let body = testdata(name);
            let parts = match api {
                WireApi::Messages => {
                    decode_body(AnthropicDecoder::new(), &body, DEFAULT_MAX_EVENT_BYTES)
                }
                _ => decode_body(
                    OpenAiChatDecoder::new(Provider::OpenAi),
                    &body,
                    DEFAULT_MAX_EVENT_BYTES,
                ),
            }
            .unwrap();
            let calls: Vec<String> = parts
                .iter()
                .filter_map(|p| match p {
                    StreamPart::ToolCall(c) => Some(c.name.clone()),
                    _ => None,
                })
                .collect();
            let usage = parts
                .iter()
                .find_map(|p| match p {
                    StreamPart::Finish { usage, .. } => Some(*usage),
                    _ => None,
                })
                .unwrap();
            for size in [1, 7, 64, body.len()] {
                let seen = observe(api, 200, "text/event-stream; charset=utf-8", &body, size);
                assert!(seen.streamed);
                assert_eq!(seen.error, None, "{name} in {size}-byte chunks");
                assert_eq!(seen.usage, usage, "{name} in {size}-byte chunks");
                let names: Vec<String> = seen.tool_calls.iter().map(|c| c.name.clone()).collect();
                assert_eq!(names, calls, "{name}");
                assert!(seen.model.is_some(), "{name}");
            }
        }
    }

    #[test]
    fn an_error_status_is_classified_with_its_retry_after_and_redacted() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-secret-0123456789","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let mut o = Observer::new(
            WireApi::ChatCompletions,
            401,
            &headers("application/json"),
            Redactor::new().with_secret("sk-secret-0123456789"),
        );
        o.observe(body);
        let seen = o.finish(true);
        let e = seen.error.unwrap();
        assert_eq!(e.kind, ChatErrorKind::Auth);
        assert!(!e.message.contains("sk-secret-0123456789"), "{}", e.message);
        let limited = observe(
            WireApi::Messages,
            429,
            "application/json",
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
            5,
        );
        assert_eq!(limited.error.unwrap().kind, ChatErrorKind::RateLimit);
        let overloaded = observe(
            WireApi::Messages,
            529,
            "application/json",
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            100,
        );
        assert_eq!(overloaded.error.unwrap().kind, ChatErrorKind::Overloaded);
    }

    #[test]
    fn an_error_event_inside_a_stream_is_recorded() {
        let body = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let seen = observe(WireApi::Messages, 200, "text/event-stream", body, 10);
        assert_eq!(seen.model.as_deref(), Some("claude-x"));
        assert_eq!(seen.error.unwrap().kind, ChatErrorKind::Overloaded);
    }

    #[test]
    fn a_stream_cut_short_is_an_error_unless_the_client_left() {
        let body = testdata("openai-chat--text--usage.sse");
        let half = &body[..body.len() / 2];
        let mut o = Observer::new(
            WireApi::ChatCompletions,
            200,
            &headers("text/event-stream"),
            Redactor::new(),
        );
        o.observe(half);
        assert!(o.finish(true).error.is_some(), "the upstream closed early");
        let mut o = Observer::new(
            WireApi::ChatCompletions,
            200,
            &headers("text/event-stream"),
            Redactor::new(),
        );
        o.observe(half);
        assert!(
            o.finish(false).error.is_none(),
            "the client went away: not the upstream's fault"
        );
    }

    #[test]
    fn json_bodies_are_read_at_their_end_within_the_limit() {
        let body = br#"{"model":"gpt-4o","choices":[{"message":{"tool_calls":[{"id":"c1","function":{"name":"f","arguments":"{\"a\":1}"}}]}}],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        let seen = observe(WireApi::ChatCompletions, 200, "application/json", body, 3);
        assert!(!seen.streamed);
        assert_eq!(seen.model.as_deref(), Some("gpt-4o"));
        assert_eq!(seen.usage.input_tokens, Some(6));
        assert_eq!(seen.usage.cache_read_tokens, Some(4));
        assert_eq!(
            seen.tool_calls,
            vec![ObservedToolCall {
                id: "c1".into(),
                name: "f".into(),
                argument_bytes: 7
            }]
        );
        // At the limit a body is read; one byte more and it is not (and says so).
        let pad = |n: usize| {
            let mut b = br#"{"model":"m"}"#.to_vec();
            b.resize(n, b' ');
            b
        };
        let at = observe(
            WireApi::Responses,
            200,
            "application/json",
            &pad(MAX_OBSERVED_JSON_BYTES),
            1 << 20,
        );
        assert_eq!(at.model.as_deref(), Some("m"));
        assert!(!at.observation_truncated);
        let over = observe(
            WireApi::Responses,
            200,
            "application/json",
            &pad(MAX_OBSERVED_JSON_BYTES + 1),
            1 << 20,
        );
        assert!(over.observation_truncated);
        assert_eq!(over.model, None);
        let not_json = observe(WireApi::Messages, 200, "application/json", b"<html>", 10);
        assert!(not_json.error.is_some());
    }

    #[test]
    fn thoughts_and_tool_calls_are_bounded() {
        let thinking = "é".repeat(MAX_THOUGHT_BYTES);
        let body = serde_json::json!({"model": "claude", "content": [
            {"type": "thinking", "thinking": thinking},
            {"type": "thinking", "thinking": "more"}
        ]});
        let seen = observe(
            WireApi::Messages,
            200,
            "application/json",
            body.to_string().as_bytes(),
            4096,
        );
        let total: usize = seen.thoughts.iter().map(String::len).sum();
        assert!(
            (MAX_THOUGHT_BYTES - 1..=MAX_THOUGHT_BYTES).contains(&total),
            "{total}"
        );
        let calls: Vec<serde_json::Value> = (0..MAX_OBSERVED_TOOL_CALLS + 3)
            .map(|i| serde_json::json!({"type": "function_call", "call_id": format!("c{i}"), "name": "f", "arguments": "{}"}))
            .collect();
        let body = serde_json::json!({"model": "m", "output": calls});
        let seen = observe(
            WireApi::Responses,
            200,
            "application/json",
            body.to_string().as_bytes(),
            1 << 16,
        );
        assert_eq!(seen.tool_calls.len(), MAX_OBSERVED_TOOL_CALLS);
    }
}
