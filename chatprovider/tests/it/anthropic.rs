//! The Anthropic Messages client against recorded provider traffic: every recorded stream
//! decoded whole and re-chunked, end to end over HTTP, the recorded tool-loop requests,
//! the recorded error responses, and the transport rules (headers, timeouts, limits).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use chatd_test_support::fixtures::{read_testdata, stream_body, testdata_file_names};
use chatd_test_support::replay::{chunk, ReplayServer, Reply};
use chaterror::{classify, ChatErrorKind, ProviderError};
use chatprovider::sse::DEFAULT_MAX_EVENT_BYTES;
use chatprovider::{
    decode_body, AnthropicDecoder, AnthropicModel, AnthropicRequestOptions,
    AnthropicWebSearchOptions, CallSettings, ClientSettings, CorrelationHeaders, FinishReason,
    LanguageModel, Message, ModelRequest, ModelResponse, Part, ProviderRequestOptions,
    ResponseCollector, Role, StreamPart, ToolChoice, ToolDefinition,
    ANTHROPIC_INLINE_IMAGE_CAP_BYTES, ANTHROPIC_STREAM_CLOSED_MESSAGE,
};
use codersdk::{ChatMessageUsage, RawJson};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::decode_chunked;

const TEST_KEY: &str = "sk-ant-test-0123456789abcdef-SECRET";

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------

fn fixture_names() -> Vec<String> {
    testdata_file_names("streams")
        .into_iter()
        .filter(|n| n.starts_with("anthropic-messages--"))
        .filter(|n| n.ends_with(".sse") || n.ends_with(".jsonl"))
        .collect()
}

fn fixture_json(rel: &str) -> Value {
    serde_json::from_slice(&read_testdata(rel)).unwrap()
}

fn decode(body: &[u8]) -> Vec<StreamPart> {
    decode_body(AnthropicDecoder::new(), body, DEFAULT_MAX_EVENT_BYTES).unwrap()
}

fn decode_err(body: &[u8]) -> ProviderError {
    decode_body(AnthropicDecoder::new(), body, DEFAULT_MAX_EVENT_BYTES).unwrap_err()
}

fn collect(parts: &[StreamPart]) -> ModelResponse {
    let mut c = ResponseCollector::new();
    for p in parts {
        c.push(p);
    }
    c.finish()
}

/// An SSE body from JSON event payloads, named by their `type` like the real API.
fn sse(events: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for e in events {
        let t = e["type"].as_str().unwrap_or("message");
        out.push_str(&format!("event: {t}\ndata: {e}\n\n"));
    }
    out.into_bytes()
}

fn settings() -> ClientSettings {
    ClientSettings {
        user_agent: "coder-agents/test (linux/amd64)".into(),
        ..Default::default()
    }
}

fn model_at(base: &str) -> AnthropicModel {
    AnthropicModel::new("claude-haiku-4-5", TEST_KEY, Some(base), settings())
}

fn hello() -> ModelRequest {
    ModelRequest {
        messages: vec![Message::user_text("hi")],
        ..Default::default()
    }
}

fn body_of(model: &AnthropicModel, req: &ModelRequest) -> Value {
    serde_json::from_str(&model.request_json(req).unwrap()).unwrap()
}

fn offline() -> AnthropicModel {
    AnthropicModel::new("claude-sonnet-4-5", TEST_KEY, None, settings())
}

fn with_anthropic(req: ModelRequest, o: AnthropicRequestOptions) -> ModelRequest {
    ModelRequest {
        provider_options: Some(ProviderRequestOptions {
            anthropic: Some(o),
            ..Default::default()
        }),
        ..req
    }
}

fn raw(v: Value) -> RawJson {
    RawJson::from(v)
}

fn headers_of(rel: &str) -> Vec<(String, String)> {
    fixture_json(rel)
        .as_object()
        .unwrap()
        .iter()
        // The bodies were re-serialized, so the recorded length no longer applies.
        .filter(|(k, _)| !matches!(k.as_str(), "content-length" | "connection"))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

async fn stream_all(
    model: &AnthropicModel,
    req: ModelRequest,
) -> Result<Vec<StreamPart>, ProviderError> {
    let mut s = model.stream(req);
    let mut out = Vec::new();
    while let Some(p) = s.next().await {
        out.push(p?);
    }
    Ok(out)
}

/// Usage as chatcost normalizes Anthropic's (docs/cost.md): input as reported (already
/// without cache), cache read, cache creation from the 5m/1h breakdown when present (else
/// the flat count; always reported for Anthropic, 0 when absent), total the sum of all four.
fn expected_usage(u: &Value) -> ChatMessageUsage {
    let n = |k: &str| u.get(k).and_then(Value::as_i64);
    let input = n("input_tokens").unwrap_or(0);
    let output = n("output_tokens").unwrap_or(0);
    let read = n("cache_read_input_tokens").unwrap_or(0);
    let creation = match u.get("cache_creation") {
        Some(b) if b.is_object() => {
            b["ephemeral_5m_input_tokens"].as_i64().unwrap_or(0)
                + b["ephemeral_1h_input_tokens"].as_i64().unwrap_or(0)
        }
        _ => n("cache_creation_input_tokens").unwrap_or(0),
    };
    ChatMessageUsage {
        input_tokens: Some(input),
        output_tokens: Some(output),
        total_tokens: Some(input + output + read + creation),
        reasoning_tokens: None,
        cache_creation_tokens: Some(creation),
        cache_read_tokens: Some(read),
        context_limit: None,
    }
}

fn expected_finish(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "tool_use" => FinishReason::ToolCalls,
        "max_tokens" => FinishReason::Length,
        other => panic!("unexpected stop_reason {other}"),
    }
}

/// Checks a decoded response against `expected-decoded.json`.
fn check_expected(name: &str, resp: &ModelResponse) {
    let all = fixture_json("streams/expected-decoded.json");
    let exp = &all["streams"][name];
    assert!(exp.is_object(), "{name} missing from expected-decoded.json");
    let content = exp["content"].as_array().unwrap();
    fn of<'a>(content: &'a [Value], t: &'a str) -> impl Iterator<Item = &'a Value> {
        content.iter().filter(move |c| c["type"] == t)
    }
    let text: String = of(content, "text")
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(resp.text, text, "{name}: text");
    let thinking: Vec<&Value> = of(content, "thinking").collect();
    let reasoning: String = thinking
        .iter()
        .map(|c| c["thinking"].as_str().unwrap())
        .collect();
    assert_eq!(resp.reasoning, reasoning, "{name}: reasoning");
    assert_eq!(
        resp.reasoning_blocks.len(),
        thinking.len(),
        "{name}: reasoning blocks"
    );
    for (block, c) in resp.reasoning_blocks.iter().zip(&thinking) {
        assert_eq!(block.text, c["thinking"].as_str().unwrap());
        let sig = block.signature.as_deref().unwrap_or_default();
        assert_eq!(
            sig.len() as u64,
            c["signature_len"].as_u64().unwrap(),
            "{name}: signature"
        );
        assert!(block.redacted_data.is_none());
    }
    let tools: Vec<&Value> = of(content, "tool_use").collect();
    assert_eq!(resp.tool_calls.len(), tools.len(), "{name}: tool calls");
    for (call, c) in resp.tool_calls.iter().zip(&tools) {
        assert_eq!(call.id, c["id"].as_str().unwrap());
        assert_eq!(call.name, c["name"].as_str().unwrap());
        assert!(!call.provider_executed);
        match c["input"].get("__invalid_json__") {
            Some(invalid) => {
                assert_eq!(
                    call.arguments,
                    invalid.as_str().unwrap(),
                    "{name}: truncated input"
                );
                assert!(
                    !call.arguments_valid,
                    "{name}: truncated input flagged invalid"
                );
                assert!(call.arguments_json().is_none());
            }
            None => {
                assert!(call.arguments_valid, "{name}: valid input");
                let got: Value = serde_json::from_str(&call.arguments).unwrap();
                assert_eq!(got, c["input"], "{name}: input");
            }
        }
    }
    let stop = exp["stop_reason"].as_str().unwrap();
    assert_eq!(
        resp.finish_reason,
        Some(expected_finish(stop)),
        "{name}: finish"
    );
    assert_eq!(
        resp.usage,
        expected_usage(&exp["final_usage"]),
        "{name}: usage"
    );
    assert!(
        resp.response_id.as_deref().unwrap().starts_with("msg_"),
        "{name}: id"
    );
    assert!(
        resp.model.as_deref().unwrap().starts_with("claude-"),
        "{name}: model"
    );
}

/// The chunkings every fixture is decoded under: fixed sizes and 20 random seeds.
fn chunkings() -> Vec<(Option<usize>, u64)> {
    let mut c = vec![
        (None, 0),
        (Some(1), 0),
        (Some(2), 0),
        (Some(3), 0),
        (Some(7), 0),
        (Some(64), 0),
    ];
    c.extend((1..=20).map(|seed| (Some(0), seed)));
    c
}

// ---------------------------------------------------------------------------------------
// recorded streams
// ---------------------------------------------------------------------------------------

#[test]
fn every_anthropic_fixture_is_covered() {
    let names = fixture_names();
    assert_eq!(names.len(), 9, "{names:?}");
    let all = fixture_json("streams/expected-decoded.json");
    for name in &names {
        assert!(
            all["streams"][name].is_object(),
            "{name} has an expectation"
        );
    }
}

#[test]
fn fixtures_decode_identically_under_every_chunking() {
    for name in fixture_names() {
        let body = stream_body(&name);
        let baseline = decode(&body);
        assert!(
            matches!(baseline.last(), Some(StreamPart::Finish { .. })),
            "{name}"
        );
        for (size, seed) in chunkings() {
            let parts = decode_chunked(AnthropicDecoder::new(), &chunk(&body, size, seed)).unwrap();
            assert_eq!(parts, baseline, "{name} chunk {size:?} seed {seed}");
        }
    }
}

#[test]
fn fixtures_match_expected_decoded() {
    for name in fixture_names() {
        let parts = decode(&stream_body(&name));
        check_expected(&name, &collect(&parts));
    }
}

#[test]
fn part_sequences_are_well_formed() {
    for name in fixture_names() {
        let parts = decode(&stream_body(&name));
        assert!(
            matches!(parts.first(), Some(StreamPart::ResponseMetadata { .. })),
            "{name}"
        );
        let finishes = parts
            .iter()
            .filter(|p| matches!(p, StreamPart::Finish { .. }))
            .count();
        assert_eq!(finishes, 1, "{name}");
        // Every tool call is announced, streamed under its id, then completed.
        for p in &parts {
            if let StreamPart::ToolCall(call) = p {
                let started = parts.iter().any(|q| {
                    matches!(q, StreamPart::ToolCallStart { id, name: n, .. } if *id == call.id && *n == call.name)
                });
                assert!(started, "{name}: start of {}", call.id);
                let streamed: String = parts
                    .iter()
                    .filter_map(|q| match q {
                        StreamPart::ToolCallDelta { id, delta, .. } if *id == call.id => {
                            Some(delta.as_str())
                        }
                        _ => None,
                    })
                    .collect();
                if !streamed.is_empty() {
                    assert_eq!(streamed, call.arguments, "{name}");
                }
            }
        }
    }
}

#[test]
fn thinking_fixture_parts() {
    let parts = decode(&stream_body("anthropic-messages--thinking-then-text.jsonl"));
    let end = parts
        .iter()
        .find_map(|p| match p {
            StreamPart::ReasoningEnd {
                block,
                signature,
                redacted_data,
                ..
            } => Some((*block, signature.clone(), redacted_data.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(end.0, 0);
    assert!(end.1.unwrap().starts_with("EvQBCkYICxgCKkAxhD4N"));
    assert_eq!(end.2, None);
    // The empty last thinking delta is not forwarded; text is block 1.
    assert!(parts
        .iter()
        .all(|p| !matches!(p, StreamPart::ReasoningDelta { delta, .. } if delta.is_empty())));
    assert!(parts
        .iter()
        .any(|p| matches!(p, StreamPart::TextDelta { block: 1, .. })));
}

#[test]
fn truncated_tool_json_is_reported_not_dropped() {
    let parts = decode(&stream_body(
        "anthropic-messages--max-tokens-truncated-tool-json.sse",
    ));
    let n = parts.len();
    // The never-stopped tool block is flushed right before Finish.
    let StreamPart::ToolCall(call) = &parts[n - 2] else {
        panic!("{:?}", parts[n - 2])
    };
    assert_eq!(call.name, "make_file");
    assert!(!call.arguments_valid);
    assert!(call.arguments.starts_with("{\"filename\": \"taxes.txt\""));
    let StreamPart::Finish { reason, .. } = &parts[n - 1] else {
        panic!()
    };
    assert_eq!(*reason, FinishReason::Length);
}

#[test]
fn empty_tool_input_becomes_empty_object() {
    let resp = collect(&decode(&stream_body(
        "anthropic-messages--text-then-tool-use-no-args.jsonl",
    )));
    assert_eq!(resp.tool_calls[0].arguments, "{}");
    assert!(resp.tool_calls[0].arguments_valid);
    assert_eq!(
        resp.tool_calls[0].arguments_json(),
        Some(RawJson::empty_object())
    );
}

#[test]
fn message_delta_input_tokens_win() {
    let resp = collect(&decode(&stream_body(
        "anthropic-messages--message-delta-input-tokens-differ.jsonl",
    )));
    assert_eq!(resp.usage.input_tokens, Some(61));
    assert_eq!(resp.usage.output_tokens, Some(2));
    assert_eq!(resp.usage.total_tokens, Some(63));
    assert_eq!(resp.usage.cache_creation_tokens, Some(0));
}

#[tokio::test]
async fn fixtures_end_to_end_over_http() {
    let picks: [(Option<usize>, u64); 5] = [
        (None, 0),
        (Some(1), 0),
        (Some(0), 3),
        (Some(0), 11),
        (Some(7), 0),
    ];
    for name in fixture_names() {
        let body = stream_body(&name);
        let baseline = decode(&body);
        let mut replies: Vec<Reply> = picks
            .iter()
            .map(|(s, seed)| Reply::sse(chunk(&body, *s, *seed)))
            .collect();
        replies.push(Reply::sse(chunk(&body, Some(0), 5)));
        let server = ReplayServer::start(replies).await;
        let model = model_at(&server.base_url);
        for (size, seed) in picks {
            let parts = stream_all(&model, hello()).await.unwrap();
            assert_eq!(
                parts, baseline,
                "{name} over HTTP, chunk {size:?} seed {seed}"
            );
        }
        let resp = model.generate(hello()).await.unwrap();
        assert_eq!(resp, collect(&baseline), "{name} generate");
        check_expected(&name, &resp);
        assert_eq!(server.requests().len(), picks.len() + 1);
    }
}

// ---------------------------------------------------------------------------------------
// recorded tool loop: our requests against the SDK's
// ---------------------------------------------------------------------------------------

/// Removes every `cache_control` marker, returning where they were (JSON pointers).
fn strip_cache_control(v: &mut Value, path: &str, found: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if map.remove("cache_control").is_some() {
                found.push(path.to_owned());
            }
            for (k, child) in map.iter_mut() {
                strip_cache_control(child, &format!("{path}/{k}"), found);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                strip_cache_control(child, &format!("{path}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// The SDK's recorded body in our canonical form: string content as one text block, and
/// without the `caller` field the Python SDK echoes back from its response objects.
fn canonical_fixture(mut v: Value) -> Value {
    for m in v["messages"].as_array_mut().unwrap() {
        if let Some(text) = m["content"].as_str().map(str::to_owned) {
            m["content"] = json!([{"type": "text", "text": text}]);
        }
        for block in m["content"].as_array_mut().unwrap() {
            block.as_object_mut().unwrap().remove("caller");
        }
    }
    v
}

fn weather_tool(fixture: &Value) -> ToolDefinition {
    let t = &fixture["tools"][0];
    ToolDefinition {
        name: t["name"].as_str().unwrap().into(),
        description: t["description"].as_str().unwrap().into(),
        input_schema: RawJson::from_value(&t["input_schema"]).unwrap(),
    }
}

#[tokio::test]
async fn tool_loop_requests_match_the_recorded_ones() {
    let turn1_fixture = fixture_json("streams/anthropic-messages--tool-loop--turn1.request.json");
    let turn2_fixture = fixture_json("streams/anthropic-messages--tool-loop--turn2.request.json");
    let server = ReplayServer::start(vec![
        Reply::sse(vec![stream_body(
            "anthropic-messages--tool-loop--turn1.sse",
        )]),
        Reply::sse(vec![stream_body(
            "anthropic-messages--tool-loop--turn2.sse",
        )]),
    ])
    .await;
    let model = model_at(&server.base_url);

    let mut request = ModelRequest {
        messages: vec![Message::user_text("What is the weather in SF?")],
        tools: vec![weather_tool(&turn1_fixture)],
        settings: CallSettings {
            max_output_tokens: Some(1024),
            ..Default::default()
        },
        ..Default::default()
    };
    let turn1 = model.generate(request.clone()).await.unwrap();
    assert_eq!(turn1.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(turn1.text, "");
    let call = &turn1.tool_calls[0];

    // Turn 2 = turn 1 + the decoded assistant turn + the tool's result.
    request.messages.push(Message {
        role: Role::Assistant,
        content: vec![Part::ToolCall {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments_json().unwrap(),
            provider_executed: false,
            thought_signature: None,
        }],
    });
    let output =
        r#"{"location": "San Francisco, CA", "temperature": "68\u00b0F", "condition": "Sunny"}"#;
    request.messages.push(Message {
        role: Role::Tool,
        content: vec![Part::ToolResult {
            tool_call_id: call.id.clone(),
            name: call.name.clone(),
            output: RawJson::from_value(output).unwrap(),
            is_error: false,
        }],
    });
    let turn2 = model.generate(request).await.unwrap();
    assert_eq!(turn2.finish_reason, Some(FinishReason::Stop));
    assert!(turn2.text.contains("68°F"));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    for (recorded, fixture, markers) in [
        (&reqs[0], turn1_fixture, vec!["/messages/0/content/0"]),
        (
            &reqs[1],
            turn2_fixture,
            vec!["/messages/1/content/0", "/messages/2/content/0"],
        ),
    ] {
        assert_eq!(recorded.method, "POST");
        assert_eq!(recorded.path, "/v1/messages");
        let mut ours = recorded.json();
        let mut found = Vec::new();
        strip_cache_control(&mut ours, "", &mut found);
        assert_eq!(found, markers, "cache markers on the final two messages");
        assert_eq!(ours, canonical_fixture(fixture));
    }
}

#[tokio::test]
async fn orphan_tool_result_request_and_its_400() {
    let fixture =
        fixture_json("errors/anthropic--400-invalid-request--orphan-tool-result.request.json");
    let server = ReplayServer::start(vec![Reply::status(
        400,
        headers_of("errors/anthropic--400-invalid-request--orphan-tool-result.headers.json"),
        read_testdata("errors/anthropic--400-invalid-request--orphan-tool-result.json"),
    )])
    .await;
    let model = model_at(&server.base_url);
    let request = ModelRequest {
        messages: vec![
            Message::user_text("What's the weather in SF in Celsius?"),
            Message {
                role: Role::Tool,
                content: vec![Part::ToolResult {
                    tool_call_id: "toolu_01GHndag5wQmbzNihYmV2UBj".into(),
                    name: "get_weather".into(),
                    output: RawJson::from_value(
                        "The weather in San Francisco, CA is currently sunny with a temperature of 20°C.",
                    )
                    .unwrap(),
                    is_error: false,
                }],
            },
        ],
        tools: vec![weather_tool(&fixture)],
        settings: CallSettings {
            max_output_tokens: Some(1024),
            ..Default::default()
        },
        ..Default::default()
    };
    let err = model.generate(request).await.unwrap_err();
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::Generic));
    assert!(!c.is_retryable());
    assert_eq!(c.status(), Some(400));
    assert!(
        c.detail()
            .contains("unexpected `tool_use_id` found in `tool_result` blocks"),
        "{}",
        c.detail()
    );
    assert_eq!(err.should_retry(), Some(false));

    // Intentional difference: the SDK sent two consecutive user messages as recorded; we
    // merge same-role turns, and tool results go first in a user turn.
    let mut ours = server.requests()[0].json();
    let mut found = Vec::new();
    strip_cache_control(&mut ours, "", &mut found);
    assert_eq!(found, ["/messages/0/content/0", "/messages/0/content/1"]);
    let f = canonical_fixture(fixture);
    let merged = json!([{
        "role": "user",
        "content": [f["messages"][1]["content"][0].clone(), f["messages"][0]["content"][0].clone()],
    }]);
    assert_eq!(ours["messages"], merged);
    assert_eq!(ours["tools"], f["tools"]);
    assert_eq!(ours["max_tokens"], 1024);
    assert_eq!(ours["stream"], true);
}

// ---------------------------------------------------------------------------------------
// recorded errors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn recorded_429s_are_retryable_rate_limits() {
    for attempt in ["attempt1", "attempt2"] {
        let body = read_testdata(&format!(
            "errors/anthropic--429-rate-limit-error--{attempt}.json"
        ));
        let headers = headers_of(&format!(
            "errors/anthropic--429-rate-limit-error--{attempt}.headers.json"
        ));
        // The recorder dropped retry-after and the rate-limit headers; the second reply adds
        // them back the way the API sends them.
        let mut with_hint = headers.clone();
        with_hint.push(("retry-after".into(), "17".into()));
        with_hint.push(("anthropic-ratelimit-requests-remaining".into(), "0".into()));
        let server = ReplayServer::start(vec![
            Reply::status(429, headers, body.clone()),
            Reply::status(429, with_hint, body),
        ])
        .await;
        let model = model_at(&server.base_url);

        let err = model.generate(hello()).await.unwrap_err();
        let c = classify(&err);
        assert_eq!(c.kind(), Some(&ChatErrorKind::RateLimit), "{attempt}");
        assert!(c.is_retryable());
        assert_eq!(c.status(), Some(429));
        assert_eq!(c.provider(), "anthropic");
        assert_eq!(c.retry_after(), Duration::ZERO);
        assert!(c
            .detail()
            .starts_with("This request would exceed your organization's rate limit"));
        assert_eq!(err.should_retry(), Some(true));

        let err = model.generate(hello()).await.unwrap_err();
        let c = classify(&err);
        assert_eq!(c.kind(), Some(&ChatErrorKind::RateLimit));
        assert_eq!(c.retry_after(), Duration::from_secs(17));
        assert_eq!(
            err.header("anthropic-ratelimit-requests-remaining"),
            Some("0")
        );
    }
}

#[tokio::test]
async fn recorded_529_is_overloaded() {
    let server = ReplayServer::start(vec![Reply::status(
        529,
        vec![("content-type".into(), "application/json".into())],
        read_testdata("errors/anthropic--529-overloaded.json"),
    )])
    .await;
    let err = model_at(&server.base_url)
        .generate(hello())
        .await
        .unwrap_err();
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::Overloaded));
    assert!(c.is_retryable());
    assert_eq!(c.status(), Some(529));
    assert_eq!(c.detail(), "Overloaded");
}

#[tokio::test]
async fn overloaded_error_events_inside_a_200_stream() {
    let first = read_testdata("errors/anthropic--200-stream-first-event-overloaded.sse");
    let later = read_testdata("errors/anthropic--200-stream-then-overloaded-error-event.sse");
    for body in [&first, &later] {
        let err = decode_err(body);
        let c = classify(&err);
        assert_eq!(c.kind(), Some(&ChatErrorKind::Overloaded));
        assert!(c.is_retryable());
        assert_eq!(c.status(), Some(529));
        assert_eq!(c.detail(), "Overloaded");
        let json: Value = serde_json::from_slice(err.body()).unwrap();
        assert_eq!(json["error"]["type"], "overloaded_error");
        for (size, seed) in chunkings() {
            let e = decode_chunked(AnthropicDecoder::new(), &chunk(body, size, seed)).unwrap_err();
            assert_eq!(e.to_string(), err.to_string());
        }
    }

    let server = ReplayServer::start(vec![
        Reply::sse(chunk(&later, Some(5), 0)),
        Reply::sse(vec![first]),
    ])
    .await;
    let model = model_at(&server.base_url);
    // Content before the error is delivered, then the error ends the stream.
    let mut s = model.stream(hello());
    let mut got = Vec::new();
    let err = loop {
        match s.next().await.unwrap() {
            Ok(p) => got.push(p),
            Err(e) => break e,
        }
    };
    assert!(s.next().await.is_none());
    assert_eq!(
        got,
        vec![
            StreamPart::ResponseMetadata {
                id: Some("msg_01KfpJoAEabmH2iHRRFjQMAG".into()),
                model: Some("claude-3-haiku-20240307".into()),
            },
            StreamPart::TextDelta {
                block: 0,
                delta: "Hello".into()
            },
        ]
    );
    assert_eq!(classify(&err).kind(), Some(&ChatErrorKind::Overloaded));
    let err = model.generate(hello()).await.unwrap_err();
    assert_eq!(classify(&err).kind(), Some(&ChatErrorKind::Overloaded));
    assert!(classify(&err).is_retryable());
}

#[tokio::test]
async fn success_with_rate_limit_headers_decodes_normally() {
    let mut headers: Vec<(String, String)> =
        headers_of("errors/anthropic--200-ratelimit-headers.json")
            .into_iter()
            .filter(|(k, _)| k != "content-type")
            .collect();
    headers.push((
        "content-type".into(),
        "text/event-stream; charset=utf-8".into(),
    ));
    let body = stream_body("anthropic-messages--text.jsonl");
    let server = ReplayServer::start(vec![Reply {
        headers,
        ..Reply::sse(vec![body.clone()])
    }])
    .await;
    let resp = model_at(&server.base_url).generate(hello()).await.unwrap();
    assert_eq!(resp, collect(&decode(&body)));
}

// ---------------------------------------------------------------------------------------
// transport
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn silent_provider_is_a_retryable_startup_timeout() {
    let body = stream_body("anthropic-messages--text.jsonl");
    let server = ReplayServer::start(vec![Reply {
        delay_first_byte: Duration::from_secs(5),
        ..Reply::sse(vec![body])
    }])
    .await;
    let settings = ClientSettings {
        startup_timeout: Duration::from_millis(200),
        ..settings()
    };
    let model = AnthropicModel::new(
        "claude-haiku-4-5",
        TEST_KEY,
        Some(&server.base_url),
        settings,
    );
    let started = std::time::Instant::now();
    let err = model.generate(hello()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4));
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::StartupTimeout));
    assert!(c.is_retryable());
    assert_eq!(c.provider(), "anthropic");
}

#[tokio::test]
async fn request_is_sent_on_first_poll() {
    let server = ReplayServer::start(vec![Reply::sse(vec![stream_body(
        "anthropic-messages--text.jsonl",
    )])])
    .await;
    let model = model_at(&server.base_url);
    let mut s = model.stream(hello());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(server.requests().is_empty());
    assert!(s.next().await.unwrap().is_ok());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn stream_closed_before_message_stop() {
    for name in fixture_names() {
        let body = String::from_utf8(stream_body(&name)).unwrap();
        let cut = body.rfind("event: message_stop").unwrap();
        let truncated = &body.as_bytes()[..cut];
        let err = decode_err(truncated);
        assert_eq!(err.to_string(), ANTHROPIC_STREAM_CLOSED_MESSAGE, "{name}");
        let c = classify(&err);
        assert_eq!(c.kind(), Some(&ChatErrorKind::Timeout), "{name}");
        assert!(c.is_retryable());
        assert_eq!(c.provider(), "anthropic");
        assert!(
            c.message().contains("Anthropic stream closed unexpectedly"),
            "{}",
            c.message()
        );
    }
    assert_eq!(decode_err(b"").to_string(), ANTHROPIC_STREAM_CLOSED_MESSAGE);

    let body = stream_body("anthropic-messages--text.jsonl");
    let text = String::from_utf8(body).unwrap();
    let cut = text.rfind("event: message_stop").unwrap();
    let server =
        ReplayServer::start(vec![Reply::sse(chunk(&text.as_bytes()[..cut], Some(0), 9))]).await;
    let err = model_at(&server.base_url)
        .generate(hello())
        .await
        .unwrap_err();
    assert_eq!(classify(&err).kind(), Some(&ChatErrorKind::Timeout));
}

#[tokio::test]
async fn event_over_the_size_limit_fails() {
    let body = stream_body("anthropic-messages--thinking-then-text.jsonl");
    let server = ReplayServer::start(vec![Reply::sse(chunk(&body, Some(64), 0))]).await;
    let settings = ClientSettings {
        max_event_bytes: 300,
        ..settings()
    };
    let model = AnthropicModel::new(
        "claude-sonnet-4-5",
        TEST_KEY,
        Some(&server.base_url),
        settings,
    );
    let err = model.generate(hello()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("exceeds the maximum size of 300 bytes"),
        "{err}"
    );
    assert!(!classify(&err).is_retryable());
}

#[tokio::test]
async fn sends_auth_version_user_agent_and_correlation_headers() {
    let server = ReplayServer::start(vec![Reply::sse(vec![stream_body(
        "anthropic-messages--text.jsonl",
    )])])
    .await;
    let settings = ClientSettings {
        extra_headers: vec![("X-Gateway-Tag".into(), "blue".into())],
        ..settings()
    };
    let base = format!("{}/", server.base_url);
    let model = AnthropicModel::new("claude-haiku-4-5", TEST_KEY, Some(&base), settings);
    assert_eq!(model.base_url(), server.base_url);
    let request = ModelRequest {
        correlation: CorrelationHeaders {
            owner_id: Some("owner-1".into()),
            chat_id: Some("chat-root".into()),
            subchat_id: Some("chat-child".into()),
            workspace_id: Some("ws-9".into()),
        },
        ..hello()
    };
    model.generate(request).await.unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(TEST_KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("text/event-stream"));
    assert_eq!(
        r.header("user-agent"),
        Some("coder-agents/test (linux/amd64)")
    );
    assert_eq!(r.header("x-coder-owner-id"), Some("owner-1"));
    assert_eq!(r.header("x-coder-chat-id"), Some("chat-root"));
    assert_eq!(r.header("x-coder-subchat-id"), Some("chat-child"));
    assert_eq!(r.header("x-coder-workspace-id"), Some("ws-9"));
    assert_eq!(r.header("x-gateway-tag"), Some("blue"));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(r.header("anthropic-beta"), None);
    assert_eq!(r.json()["model"], "claude-haiku-4-5");
    assert_eq!(r.json()["stream"], true);
}

#[tokio::test]
async fn context_1m_sends_the_beta_header() {
    let server = ReplayServer::start(vec![Reply::sse(vec![stream_body(
        "anthropic-messages--text.jsonl",
    )])])
    .await;
    let model = model_at(&server.base_url);
    let req = with_anthropic(
        hello(),
        AnthropicRequestOptions {
            context_1m: Some(true),
            ..Default::default()
        },
    );
    model.generate(req).await.unwrap();
    assert_eq!(
        server.requests()[0].header("anthropic-beta"),
        Some("context-1m-2025-08-07")
    );
}

#[test]
fn default_base_url_and_key_never_in_debug() {
    let model = AnthropicModel::new(
        "claude-sonnet-4-5",
        TEST_KEY,
        None,
        ClientSettings::default(),
    );
    assert_eq!(model.base_url(), "https://api.anthropic.com");
    assert_eq!(
        model.messages_url(),
        "https://api.anthropic.com/v1/messages"
    );
    assert_eq!(model.model_id(), "claude-sonnet-4-5");
    assert_eq!(model.provider().as_str(), "anthropic");
    let debug = format!("{model:?} {model:#?}");
    assert!(
        !debug.contains(TEST_KEY) && !debug.contains("SECRET"),
        "{debug}"
    );
    assert!(debug.contains("[REDACTED]"));
    assert_eq!(
        AnthropicModel::new("m", "k", Some("  "), ClientSettings::default()).base_url(),
        "https://api.anthropic.com"
    );
}

#[tokio::test]
async fn errors_never_carry_the_key() {
    let server = ReplayServer::start(vec![Reply::status(
        401,
        vec![("content-type".into(), "application/json".into())],
        br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#.to_vec(),
    )])
    .await;
    let err = model_at(&server.base_url)
        .generate(hello())
        .await
        .unwrap_err();
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::Auth));
    let all = format!("{err} {err:?} {c:?}");
    assert!(!all.contains("SECRET"), "{all}");
}

#[tokio::test]
async fn invalid_key_fails_before_sending() {
    let server = ReplayServer::start(vec![]).await;
    let model = AnthropicModel::new("m", "bad\nkey-SECRET", Some(&server.base_url), settings());
    let err = model.generate(hello()).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("SECRET"));
    assert_eq!(classify(&err).kind(), Some(&ChatErrorKind::Config));
    assert!(server.requests().is_empty());
}

async fn redirecting_pair() -> (ReplayServer, ReplayServer) {
    let target = ReplayServer::start(vec![Reply::sse(vec![stream_body(
        "anthropic-messages--text.jsonl",
    )])])
    .await;
    let location = format!("{}/v1/messages", target.base_url);
    let origin = ReplayServer::start(vec![Reply::status(
        307,
        vec![("location".into(), location)],
        Vec::new(),
    )])
    .await;
    (origin, target)
}

#[tokio::test]
async fn key_is_not_sent_across_a_redirect_with_a_same_origin_policy() {
    let (origin, target) = redirecting_pair().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if same {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .build()
        .unwrap();
    let settings = ClientSettings { http, ..settings() };
    let model = AnthropicModel::new("m", TEST_KEY, Some(&origin.base_url), settings);
    let err = model.generate(hello()).await.unwrap_err();
    assert_eq!(err.status(), Some(307));
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn default_settings_do_not_leak_the_key_across_a_redirect() {
    let (origin, target) = redirecting_pair().await;
    let model = AnthropicModel::new("m", TEST_KEY, Some(&origin.base_url), settings());
    let _ = model.generate(hello()).await;
    assert!(target
        .requests()
        .iter()
        .all(|r| r.header("x-api-key").is_none()));
}

// ---------------------------------------------------------------------------------------
// request mapping
// ---------------------------------------------------------------------------------------

#[test]
fn system_blocks_defaults_and_cache_marker() {
    let req = ModelRequest {
        system: vec![
            "You are helpful.".into(),
            "  ".into(),
            "Deployment rules.".into(),
        ],
        ..hello()
    };
    let body = body_of(&offline(), &req);
    assert_eq!(
        body["system"],
        json!([
            {"type": "text", "text": "You are helpful."},
            {"type": "text", "text": "Deployment rules.", "cache_control": {"type": "ephemeral"}},
        ])
    );
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["stream"], true);
    for absent in [
        "tools",
        "tool_choice",
        "temperature",
        "top_p",
        "top_k",
        "thinking",
        "output_config",
    ] {
        assert!(body.get(absent).is_none(), "{absent}");
    }
    assert!(body_of(&offline(), &hello()).get("system").is_none());
    let zero = ModelRequest {
        settings: CallSettings {
            max_output_tokens: Some(0),
            ..Default::default()
        },
        ..hello()
    };
    assert_eq!(body_of(&offline(), &zero)["max_tokens"], 4096);
}

#[test]
fn sampling_settings_pass_through_without_thinking() {
    let req = ModelRequest {
        settings: CallSettings {
            max_output_tokens: Some(32000),
            temperature: Some(0.5),
            top_p: Some(0.9),
            top_k: Some(40),
            presence_penalty: Some(1.0),
            frequency_penalty: Some(1.0),
        },
        ..hello()
    };
    let body = body_of(&offline(), &req);
    assert_eq!(body["max_tokens"], 32000);
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["top_p"], 0.9);
    assert_eq!(body["top_k"], 40);
    assert!(body.get("presence_penalty").is_none() && body.get("frequency_penalty").is_none());
}

#[test]
fn thinking_budget_drops_sampling_and_makes_room() {
    let base = ModelRequest {
        settings: CallSettings {
            max_output_tokens: Some(8000),
            temperature: Some(0.2),
            top_p: Some(0.5),
            top_k: Some(5),
            ..Default::default()
        },
        ..hello()
    };
    let req = with_anthropic(
        base.clone(),
        AnthropicRequestOptions {
            thinking_budget_tokens: Some(10000),
            thinking_display: Some("summarized".into()),
            ..Default::default()
        },
    );
    let body = body_of(&offline(), &req);
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 10000, "display": "summarized"})
    );
    assert_eq!(body["max_tokens"], 14096);
    for absent in ["temperature", "top_p", "top_k", "output_config"] {
        assert!(body.get(absent).is_none(), "{absent}");
    }
    let small = with_anthropic(
        base,
        AnthropicRequestOptions {
            thinking_budget_tokens: Some(2048),
            ..Default::default()
        },
    );
    let body = body_of(&offline(), &small);
    assert_eq!(body["max_tokens"], 8000);
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
}

#[test]
fn effort_uses_output_config_and_adaptive_thinking() {
    let req = with_anthropic(
        hello(),
        AnthropicRequestOptions {
            effort: Some("high".into()),
            ..Default::default()
        },
    );
    let body = body_of(&offline(), &req);
    assert_eq!(body["output_config"], json!({"effort": "high"}));
    assert_eq!(body["thinking"], json!({"type": "adaptive"}));
    let both = with_anthropic(
        hello(),
        AnthropicRequestOptions {
            effort: Some("max".into()),
            thinking_budget_tokens: Some(4000),
            ..Default::default()
        },
    );
    let body = body_of(&offline(), &both);
    assert_eq!(body["output_config"], json!({"effort": "max"}));
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 4000})
    );
    assert_eq!(body["max_tokens"], 4096);
    let blank = with_anthropic(
        hello(),
        AnthropicRequestOptions {
            effort: Some("  ".into()),
            ..Default::default()
        },
    );
    assert!(body_of(&offline(), &blank).get("thinking").is_none());
}

fn tool(name: &str) -> ToolDefinition {
    ToolDefinition {
        name: name.into(),
        description: format!("The {name} tool"),
        input_schema: raw(json!({"type": "object", "properties": {"q": {"type": "string"}}})),
    }
}

#[test]
fn tools_and_tool_choice() {
    let base = ModelRequest {
        tools: vec![
            tool("search"),
            ToolDefinition {
                description: String::new(),
                input_schema: RawJson::null(),
                ..tool("noop")
            },
        ],
        ..hello()
    };
    let body = body_of(&offline(), &base);
    assert_eq!(
        body["tools"],
        json!([
            {"name": "search", "description": "The search tool", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
            {"name": "noop", "input_schema": {"type": "object", "properties": {}}},
        ])
    );
    assert!(body.get("tool_choice").is_none());
    let cases = [
        (Some(ToolChoice::Auto), None, json!({"type": "auto"})),
        (Some(ToolChoice::Required), None, json!({"type": "any"})),
        (
            Some(ToolChoice::Tool("search".into())),
            None,
            json!({"type": "tool", "name": "search"}),
        ),
        (Some(ToolChoice::None), Some(true), json!({"type": "none"})),
        (
            None,
            Some(true),
            json!({"type": "auto", "disable_parallel_tool_use": true}),
        ),
        (
            Some(ToolChoice::Auto),
            Some(true),
            json!({"type": "auto", "disable_parallel_tool_use": true}),
        ),
        (
            Some(ToolChoice::Required),
            Some(false),
            json!({"type": "any", "disable_parallel_tool_use": false}),
        ),
        (
            Some(ToolChoice::Tool("search".into())),
            Some(true),
            json!({"type": "tool", "name": "search", "disable_parallel_tool_use": true}),
        ),
    ];
    for (choice, disable, want) in cases {
        let req = with_anthropic(
            ModelRequest {
                tool_choice: choice.clone(),
                ..base.clone()
            },
            AnthropicRequestOptions {
                disable_parallel_tool_use: disable,
                ..Default::default()
            },
        );
        assert_eq!(
            body_of(&offline(), &req)["tool_choice"],
            want,
            "{choice:?} {disable:?}"
        );
    }
    let none = with_anthropic(
        ModelRequest {
            tool_choice: None,
            ..base.clone()
        },
        AnthropicRequestOptions {
            disable_parallel_tool_use: Some(false),
            ..Default::default()
        },
    );
    assert!(body_of(&offline(), &none).get("tool_choice").is_none());
    // Without tools there is no tool_choice at all.
    let toolless = ModelRequest {
        tool_choice: Some(ToolChoice::Required),
        ..hello()
    };
    assert!(body_of(&offline(), &toolless).get("tool_choice").is_none());
}

#[test]
fn web_search_tool() {
    let ws = |allowed: &[&str], blocked: &[&str]| {
        with_anthropic(
            hello(),
            AnthropicRequestOptions {
                web_search: Some(AnthropicWebSearchOptions {
                    allowed_domains: allowed.iter().map(|s| s.to_string()).collect(),
                    blocked_domains: blocked.iter().map(|s| s.to_string()).collect(),
                }),
                ..Default::default()
            },
        )
    };
    assert_eq!(
        body_of(&offline(), &ws(&[], &[]))["tools"],
        json!([{"type": "web_search_20250305", "name": "web_search"}])
    );
    assert_eq!(
        body_of(&offline(), &ws(&["docs.rs"], &["example.com"]))["tools"],
        json!([{"type": "web_search_20250305", "name": "web_search", "allowed_domains": ["docs.rs"]}])
    );
    assert_eq!(
        body_of(&offline(), &ws(&[], &["example.com"]))["tools"],
        json!([{"type": "web_search_20250305", "name": "web_search", "blocked_domains": ["example.com"]}])
    );
}

fn reasoning(text: &str, signature: Option<&str>, redacted: Option<&str>) -> Part {
    Part::Reasoning {
        text: text.into(),
        signature: signature.map(Into::into),
        redacted_data: redacted.map(Into::into),
        item_id: None,
        encrypted_content: None,
    }
}

#[test]
fn conversation_mapping_and_cache_markers() {
    let req = ModelRequest {
        messages: vec![
            Message::user_text("first"),
            Message::user_text("second"),
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::Text {
                        text: "Let me look.".into(),
                    },
                    reasoning("hmm", Some("sig-1"), None),
                    reasoning("", None, Some("REDACTED")),
                    reasoning("from another provider", None, None),
                    Part::ToolCall {
                        id: "toolu_1".into(),
                        name: "search".into(),
                        arguments: raw(json!({"q": "x"})),
                        provider_executed: false,
                        thought_signature: None,
                    },
                    Part::ToolCall {
                        id: "toolu_2".into(),
                        name: "noop".into(),
                        arguments: raw(json!([1])),
                        provider_executed: false,
                        thought_signature: None,
                    },
                    Part::Text {
                        text: String::new(),
                    },
                ],
            },
            Message {
                role: Role::Tool,
                content: vec![
                    Part::ToolResult {
                        tool_call_id: "toolu_1".into(),
                        name: "search".into(),
                        output: raw(json!({"hits": 2})),
                        is_error: false,
                    },
                    Part::ToolResult {
                        tool_call_id: "toolu_2".into(),
                        name: "noop".into(),
                        output: raw(json!("boom")),
                        is_error: true,
                    },
                ],
            },
            Message {
                role: Role::User,
                content: vec![Part::Text {
                    text: "thanks".into(),
                }],
            },
            Message {
                role: Role::User,
                content: vec![],
            },
        ],
        ..Default::default()
    };
    let body = body_of(&offline(), &req);
    let cc = json!({"type": "ephemeral"});
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "first"},
                {"type": "text", "text": "second"},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "REDACTED"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "x"}},
                {"type": "tool_use", "id": "toolu_2", "name": "noop", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "{\"hits\":2}"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": true, "cache_control": cc},
                {"type": "text", "text": "thanks", "cache_control": cc},
            ]},
        ])
    );

    // send_reasoning = false drops thinking; the marker skips thinking blocks.
    let last_assistant = ModelRequest {
        messages: vec![
            Message::user_text("q"),
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::Text { text: "a".into() },
                    reasoning("t", Some("s"), None),
                ],
            },
        ],
        ..Default::default()
    };
    let body = body_of(&offline(), &last_assistant);
    assert_eq!(
        body["messages"][1]["content"],
        json!([{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "text", "text": "a", "cache_control": cc}])
    );
    assert_eq!(body["messages"][0]["content"][0]["cache_control"], cc);
    let no_reasoning = with_anthropic(
        last_assistant,
        AnthropicRequestOptions {
            send_reasoning: Some(false),
            ..Default::default()
        },
    );
    assert_eq!(
        body_of(&offline(), &no_reasoning)["messages"][1]["content"],
        json!([{"type": "text", "text": "a", "cache_control": cc}])
    );
}

#[test]
fn files_become_image_document_or_text_blocks() {
    let file = |media_type: &str, data: &[u8], name: Option<&str>| Part::File {
        media_type: media_type.into(),
        data: data.to_vec(),
        filename: name.map(Into::into),
    };
    let req = ModelRequest {
        messages: vec![Message {
            role: Role::User,
            content: vec![
                file("image/PNG", b"\x89PNG", Some("a.png")),
                file("application/pdf", b"%PDF-1.7", Some("spec.pdf")),
                file("text/markdown; charset=utf-8", b"# notes", None),
                file("application/zip", b"PK", Some("x.zip")),
                Part::Text {
                    text: "describe".into(),
                },
            ],
        }],
        ..Default::default()
    };
    let body = body_of(&offline(), &req);
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjc="}, "title": "spec.pdf"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "# notes"}},
            {"type": "text", "text": "[attachment x.zip (application/zip) omitted: Anthropic accepts images, PDF and text files]"},
            {"type": "text", "text": "describe", "cache_control": {"type": "ephemeral"}},
        ])
    );
}

#[tokio::test]
async fn oversized_image_is_a_config_error_before_sending() {
    let cap = ANTHROPIC_INLINE_IMAGE_CAP_BYTES as usize;
    let image = |size: usize| ModelRequest {
        messages: vec![Message {
            role: Role::User,
            content: vec![Part::File {
                media_type: "image/jpeg".into(),
                data: vec![0; size],
                filename: Some("big.jpg".into()),
            }],
        }],
        ..Default::default()
    };
    assert!(offline().request_json(&image(cap - 1)).is_ok());
    let err = offline().request_json(&image(cap)).unwrap_err();
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::Config));
    assert!(!c.is_retryable());
    assert!(err.to_string().contains("big.jpg"));

    let server = ReplayServer::start(vec![]).await;
    let err = model_at(&server.base_url)
        .generate(image(cap))
        .await
        .unwrap_err();
    assert_eq!(classify(&err).kind(), Some(&ChatErrorKind::Config));
    assert!(server.requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// decoder rules beyond the recordings
// ---------------------------------------------------------------------------------------

fn start(id: &str) -> Value {
    json!({"type": "message_start", "message": {"id": id, "model": "claude-test", "content": [],
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 4, "cache_read_input_tokens": 6, "output_tokens": 1}}})
}

fn stop(reason: &str) -> [Value; 2] {
    [
        json!({"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {"output_tokens": 7}}),
        json!({"type": "message_stop"}),
    ]
}

#[test]
fn web_search_round_trip() {
    let results = json!([
        {"type": "web_search_result", "url": "https://www.rust-lang.org/", "title": "Rust", "encrypted_content": "enc1", "page_age": null},
        {"type": "web_search_result", "url": "https://docs.rs/", "title": "Docs.rs", "encrypted_content": "enc2"},
    ]);
    let mut events = vec![
        start("msg_ws"),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"query\": \"rust\"}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": results}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": "", "citations": []}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "citations_delta", "citation": {"type": "web_search_result_location", "url": "https://docs.rs/", "title": "Docs.rs", "cited_text": "crates", "encrypted_index": "x"}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "citations_delta", "citation": {"type": "char_location", "document_index": 0, "cited_text": "y"}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Rust docs live on docs.rs."}}),
        json!({"type": "content_block_stop", "index": 2}),
    ];
    events.extend(stop("end_turn"));
    let parts = decode(&sse(&events));
    assert!(parts.contains(&StreamPart::ToolCallStart {
        block: 0,
        id: "srvtoolu_1".into(),
        name: "web_search".into()
    }));
    let resp = collect(&parts);
    assert_eq!(resp.tool_calls.len(), 1);
    let call = &resp.tool_calls[0];
    assert!(call.provider_executed && call.arguments_valid);
    assert_eq!(call.arguments, "{\"query\": \"rust\"}");
    let result = parts
        .iter()
        .find_map(|p| match p {
            StreamPart::ProviderToolResult {
                tool_call_id,
                name,
                result,
                is_error,
            } => Some((tool_call_id, name, result, is_error)),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (result.0.as_str(), result.1.as_str(), *result.3),
        ("srvtoolu_1", "web_search", false)
    );
    assert_eq!(result.2.to_value(), results);
    let sources: Vec<(String, String)> = parts
        .iter()
        .filter_map(|p| match p {
            StreamPart::Source { id, url, .. } => Some((id.clone(), url.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        sources,
        [
            (
                "msg_ws:source:1".to_owned(),
                "https://www.rust-lang.org/".to_owned()
            ),
            ("msg_ws:source:2".to_owned(), "https://docs.rs/".to_owned()),
            ("msg_ws:source:3".to_owned(), "https://docs.rs/".to_owned()),
        ]
    );
    assert_eq!(
        resp.sources[0],
        (
            "https://www.rust-lang.org/".to_owned(),
            Some("Rust".to_owned())
        )
    );
    assert_eq!(resp.text, "Rust docs live on docs.rs.");

    // Replaying the turn sends the provider's blocks back as they came.
    let req = ModelRequest {
        messages: vec![
            Message::user_text("find rust docs"),
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::ToolCall {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        arguments: call.arguments_json().unwrap(),
                        provider_executed: true,
                        thought_signature: None,
                    },
                    Part::ToolResult {
                        tool_call_id: result.0.clone(),
                        name: result.1.clone(),
                        output: result.2.clone(),
                        is_error: false,
                    },
                    Part::Text {
                        text: resp.text.clone(),
                    },
                ],
            },
            Message::user_text("thanks"),
        ],
        ..Default::default()
    };
    let body = body_of(&offline(), &req);
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "rust"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": results},
            {"type": "text", "text": "Rust docs live on docs.rs.", "cache_control": {"type": "ephemeral"}},
        ])
    );
}

#[test]
fn web_search_error_result() {
    let mut events = vec![
        start("msg_e"),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_9",
            "content": {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}}}),
        json!({"type": "content_block_stop", "index": 0}),
    ];
    events.extend(stop("end_turn"));
    let parts = decode(&sse(&events));
    assert!(parts
        .iter()
        .any(|p| matches!(p, StreamPart::ProviderToolResult { is_error: true, .. })));
    assert!(!parts.iter().any(|p| matches!(p, StreamPart::Source { .. })));
}

#[test]
fn redacted_thinking_and_usage() {
    let mut events = vec![
        start("msg_r"),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "EmwKAhgBEgy3"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": "Hi"}}),
        json!({"type": "content_block_stop", "index": 1}),
    ];
    events.extend(stop("end_turn"));
    let parts = decode(&sse(&events));
    assert!(parts.contains(&StreamPart::ReasoningEnd {
        block: 0,
        signature: None,
        redacted_data: Some("EmwKAhgBEgy3".into()),
        item_id: None,
        encrypted_content: None,
    }));
    let resp = collect(&parts);
    assert_eq!(
        resp.reasoning_blocks[0].redacted_data.as_deref(),
        Some("EmwKAhgBEgy3")
    );
    assert_eq!(resp.text, "Hi");
    assert_eq!(
        resp.usage,
        ChatMessageUsage {
            input_tokens: Some(10),
            output_tokens: Some(7),
            total_tokens: Some(27),
            reasoning_tokens: None,
            cache_creation_tokens: Some(4),
            cache_read_tokens: Some(6),
            context_limit: None,
        }
    );
}

#[test]
fn stop_reasons() {
    let table = [
        ("end_turn", FinishReason::Stop),
        ("stop_sequence", FinishReason::Stop),
        ("tool_use", FinishReason::ToolCalls),
        ("max_tokens", FinishReason::Length),
        ("model_context_window_exceeded", FinishReason::Length),
        ("refusal", FinishReason::ContentFilter),
        ("pause_turn", FinishReason::Other("pause_turn".into())),
        ("something_new", FinishReason::Other("something_new".into())),
    ];
    for (reason, want) in table {
        let mut events = vec![start("msg_s")];
        events.extend(stop(reason));
        assert_eq!(
            collect(&decode(&sse(&events))).finish_reason,
            Some(want),
            "{reason}"
        );
    }
    let bare = sse(&[json!({"type": "message_stop"})]);
    let resp = collect(&decode(&bare));
    assert_eq!(resp.finish_reason, Some(FinishReason::Other(String::new())));
    assert_eq!(resp.usage, ChatMessageUsage::default());
}

#[test]
fn tool_input_sent_whole_in_block_start() {
    let mut events = vec![
        start("msg_t"),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_w", "name": "get", "input": {"path": "/tmp"}}}),
        json!({"type": "content_block_stop", "index": 0}),
    ];
    events.extend(stop("tool_use"));
    let resp = collect(&decode(&sse(&events)));
    assert_eq!(resp.tool_calls[0].arguments, "{\"path\":\"/tmp\"}");
    assert!(resp.tool_calls[0].arguments_valid);
}

#[test]
fn in_stream_error_types_keep_their_meaning() {
    let cases = [
        (
            "rate_limit_error",
            ChatErrorKind::RateLimit,
            true,
            Some(429),
        ),
        ("api_error", ChatErrorKind::Generic, true, Some(500)),
        (
            "invalid_request_error",
            ChatErrorKind::Generic,
            false,
            Some(400),
        ),
        (
            "authentication_error",
            ChatErrorKind::Auth,
            false,
            Some(401),
        ),
        ("timeout_error", ChatErrorKind::Timeout, true, Some(504)),
        ("mystery_error", ChatErrorKind::Generic, false, None),
    ];
    for (kind, want, retryable, status) in cases {
        let body = sse(&[
            start("msg_x"),
            json!({"type": "error", "error": {"type": kind, "message": "Something happened"}}),
        ]);
        let err = decode_err(&body);
        assert_eq!(err.status(), status, "{kind}");
        assert_eq!(err.provider(), Some("anthropic"));
        let c = classify(&err);
        assert_eq!(c.kind(), Some(&want), "{kind}");
        assert_eq!(c.is_retryable(), retryable, "{kind}");
        assert_eq!(c.detail(), "Something happened");
    }
}

#[test]
fn lenient_where_providers_are_sloppy() {
    // Unknown events and block types are skipped, pings and padding anywhere, events
    // after message_stop ignored; an unnamed event is typed by its JSON.
    let body = [
        "event: message_start\ndata: ",
        &start("msg_l").to_string(),
        "   \n\n",
        ": keep-alive comment\n\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: brand_new_event\ndata: {\"type\":\"brand_new_event\",\"x\":1}\n\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"mystery_block\",\"foo\":1}}\n\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"mystery_delta\"}}\n\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\t \n\n",
        "event: message_delta\ndata: {\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"IGNORED\"}}\n\n",
        "data: not json at all\n\n",
    ]
    .concat();
    let resp = collect(&decode(body.as_bytes()));
    assert_eq!(resp.text, "ok");
    assert_eq!(resp.finish_reason, Some(FinishReason::Stop));
    assert_eq!(resp.usage.output_tokens, Some(3));
}

#[test]
fn malformed_event_json_fails() {
    let body = format!("data: {}\n\ndata: {{not json}}\n\n", start("msg_m"));
    let err = decode_err(body.as_bytes());
    assert!(
        err.to_string()
            .starts_with("anthropic stream event is not valid JSON"),
        "{err}"
    );
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::Generic));
    assert!(!c.is_retryable());
}

#[test]
fn body_cut_inside_an_event_is_a_closed_stream() {
    // The SSE layer hands over the half-received last event when the body ends.
    let body = format!(
        "data: {}\n\ndata: {{\"type\":\"content_block_delta\",\"ind",
        start("msg_m")
    );
    let err = decode_err(body.as_bytes());
    assert!(
        err.to_string().starts_with(ANTHROPIC_STREAM_CLOSED_MESSAGE),
        "{err}"
    );
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::Timeout));
    assert!(c.is_retryable());
}

#[test]
fn oversized_tool_input_is_refused() {
    let mut body = sse(&[
        start("msg_big"),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "w", "input": {}}}),
    ]);
    let piece = "x".repeat(1024 * 1024);
    let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}});
    for _ in 0..33 {
        body.extend_from_slice(format!("data: {delta}\n\n").as_bytes());
    }
    let err = decode_err(&body);
    assert!(
        err.to_string()
            .contains("content block exceeds 33554432 bytes"),
        "{err}"
    );
}

#[test]
fn too_many_open_blocks_is_refused() {
    let mut events = vec![start("msg_o")];
    for i in 0..1025 {
        events.push(json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}));
    }
    let err = decode_err(&sse(&events));
    assert!(
        err.to_string().contains("more than 1024 content blocks"),
        "{err}"
    );
}
