//! The OpenAI Responses client against the recorded Responses streams (byte-exact and
//! re-chunked, decoder-only and end to end through a local server), the shared error
//! fixtures, request building, Azure specifics, headers, limits and secrets.
// `ProviderError` is what the decoder API returns; the helpers pass it through unboxed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use chatd_test_support::fixtures::{read_testdata, stream_body};
use chatd_test_support::replay::{chunk, ReplayServer, Reply};
use chaterror::{classify, ChatErrorKind, ProviderError};
use chatprovider::sse::{SseDecoder, DEFAULT_MAX_EVENT_BYTES};
use chatprovider::{
    decode_body, CallSettings, ClientSettings, CorrelationHeaders, FinishReason, LanguageModel,
    Message, ModelRequest, ModelResponse, OpenAiChatOptions, OpenAiLogprobs, OpenAiRequestOptions,
    OpenAiResponsesDecoder, OpenAiResponsesModel, OpenAiResponsesOptions, OpenAiWebSearchOptions,
    Part, Provider, ProviderRequestOptions, ResponseCollector, Role, StreamDecoder, StreamPart,
    ToolCall, ToolChoice, ToolDefinition, MAX_RESPONSE_OUTPUT_ITEMS,
    OPENAI_RESPONSES_STREAM_CLOSED,
};
use codersdk::{ChatMessageUsage, RawJson};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::decode_chunked;

const KEY: &str = "sk-RESPONSES-TEST-5f0c1e9a7b2d4c68";

const FIXTURES: [&str; 8] = [
    "openai-responses--text--azure.jsonl",
    "openai-responses--function-call--azure.jsonl",
    "openai-responses--text--cached-reasoning-usage.jsonl",
    "openai-responses--reasoning-tool-loop--step1.jsonl",
    "openai-responses--reasoning-tool-loop--step2.jsonl",
    "openai-responses--reasoning-tool-loop--step3.jsonl",
    "openai-responses--reasoning-tool-loop--step4.jsonl",
    "openai-responses--gateway-item-id-rotation--github-copilot.jsonl",
];
const ERROR_FIXTURE: &str = "openai-responses--error--insufficient-quota.jsonl";

/// Fixed chunk sizes tried on every fixture, besides the whole body and random sizes.
const FIXED_CHUNK_SIZES: [usize; 5] = [1, 2, 3, 7, 64];
/// Random chunkings (sizes 1..=64) tried on every fixture.
const RANDOM_SEEDS: u64 = 20;

// ---------------------------------------------------------------------------------------
// Helpers

/// A decode result that can be compared: parts, or the error's text and body.
type Outcome = Result<Vec<StreamPart>, (String, Vec<u8>)>;

fn outcome(r: Result<Vec<StreamPart>, ProviderError>) -> Outcome {
    r.map_err(|e| (e.to_string(), e.body().to_vec()))
}

fn decode_whole(body: &[u8]) -> Result<Vec<StreamPart>, ProviderError> {
    decode_body(
        OpenAiResponsesDecoder::default(),
        body,
        DEFAULT_MAX_EVENT_BYTES,
    )
}

fn collect(parts: &[StreamPart]) -> ModelResponse {
    let mut c = ResponseCollector::new();
    for p in parts {
        c.push(p);
    }
    c.finish()
}

/// SSE body of `events`, framed like OpenAI (`event:` line, `data:` line, blank line).
fn sse(events: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!(
            "event: {}\ndata: {e}\n\n",
            e["type"].as_str().unwrap()
        ));
    }
    out.into_bytes()
}

fn decode_events(events: &[Value]) -> Result<Vec<StreamPart>, ProviderError> {
    decode_whole(&sse(events))
}

fn settings() -> ClientSettings {
    ClientSettings {
        startup_timeout: Duration::from_secs(10),
        ..ClientSettings::default()
    }
}

fn openai_model(base_url: &str, model: &str) -> OpenAiResponsesModel {
    OpenAiResponsesModel::new(Provider::OpenAi, model, KEY, Some(base_url), settings()).unwrap()
}

fn fixture_lines(name: &str) -> Vec<Value> {
    String::from_utf8(read_testdata(&format!("streams/{name}")))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn expected(name: &str) -> Value {
    let all: Value =
        serde_json::from_slice(&read_testdata("streams/expected-decoded.json")).unwrap();
    all["streams"][name].clone()
}

fn responses_options(o: OpenAiResponsesOptions) -> Option<ProviderRequestOptions> {
    Some(ProviderRequestOptions {
        openai: Some(OpenAiRequestOptions::Responses(o)),
        ..Default::default()
    })
}

fn calculator_tool() -> ToolDefinition {
    ToolDefinition {
        name: "calculator".into(),
        description: "A minimal calculator for basic arithmetic. Call it once per step.".into(),
        input_schema: RawJson::from_json(
            r#"{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"},"op":{"type":"string","enum":["add","subtract","multiply","divide"]}},"required":["a","b","op"],"additionalProperties":false}"#,
        )
        .unwrap(),
    }
}

fn classified_kind(err: &ProviderError) -> (ChatErrorKind, bool) {
    let c = classify(err);
    (c.kind().cloned().unwrap(), c.is_retryable())
}

// ---------------------------------------------------------------------------------------
// Recorded streams

#[test]
fn every_fixture_decodes_identically_under_every_chunking() {
    for name in FIXTURES.iter().chain([&ERROR_FIXTURE]) {
        let body = stream_body(name);
        let whole = outcome(decode_whole(&body));
        assert_eq!(
            outcome(decode_chunked(
                OpenAiResponsesDecoder::default(),
                &chunk(&body, None, 0)
            )),
            whole,
            "{name}: whole body through the chunked path"
        );
        for size in FIXED_CHUNK_SIZES {
            let chunks = chunk(&body, Some(size), 0);
            let got = outcome(decode_chunked(OpenAiResponsesDecoder::default(), &chunks));
            assert_eq!(got, whole, "{name}: chunks of {size} bytes");
        }
        for seed in 1..=RANDOM_SEEDS {
            let chunks = chunk(&body, Some(0), seed);
            let got = outcome(decode_chunked(OpenAiResponsesDecoder::default(), &chunks));
            assert_eq!(got, whole, "{name}: random chunking, seed {seed}");
        }
    }
}

/// Compares a collected response with `expected-decoded.json`.
///
/// Representation mapping: `text` is every text delta concatenated across message items;
/// `reasoning_summary` is the reasoning text (summary parts joined by a blank line);
/// `function_calls[].arguments` is compared as parsed JSON; `final_status: completed` is
/// finish `tool_calls` when a function call was made, else `stop`; the raw `usage` is
/// compared after chatcost's Responses normalization (input = input_tokens − cached −
/// cache_write, cache_read = cached, total = the provider's total).
fn assert_matches_expected(name: &str, r: &ModelResponse) {
    let exp = expected(name);
    assert_eq!(r.text, exp["text"].as_str().unwrap(), "{name}: text");
    assert_eq!(
        r.reasoning,
        exp["reasoning_summary"].as_str().unwrap_or_default(),
        "{name}: reasoning"
    );
    let calls: Vec<(String, String, Value)> = r
        .tool_calls
        .iter()
        .map(|c| {
            assert!(c.arguments_valid && !c.provider_executed, "{name}: {c:?}");
            (
                c.id.clone(),
                c.name.clone(),
                serde_json::from_str(&c.arguments).unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, Value)> = exp["function_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["call_id"].as_str().unwrap().to_owned(),
                c["name"].as_str().unwrap().to_owned(),
                serde_json::from_str(c["arguments"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(calls, want, "{name}: function calls");
    assert_eq!(exp["final_status"], "completed", "{name}");
    let finish = if want.is_empty() {
        FinishReason::Stop
    } else {
        FinishReason::ToolCalls
    };
    assert_eq!(r.finish_reason, Some(finish), "{name}: finish");

    let u = &exp["usage"];
    let n = |v: &Value| v.as_i64();
    let cached = n(&u["input_tokens_details"]["cached_tokens"]).unwrap_or(0);
    let cache_write = n(&u["input_tokens_details"]["cache_write_tokens"]);
    let want_usage = ChatMessageUsage {
        input_tokens: Some(n(&u["input_tokens"]).unwrap() - cached - cache_write.unwrap_or(0)),
        output_tokens: n(&u["output_tokens"]),
        total_tokens: n(&u["total_tokens"]),
        reasoning_tokens: n(&u["output_tokens_details"]["reasoning_tokens"]),
        cache_creation_tokens: cache_write,
        cache_read_tokens: Some(cached),
        ..Default::default()
    };
    assert_eq!(r.usage, want_usage, "{name}: usage");

    // The terminal event's id wins: it is what a later request chains on (the Copilot
    // gateway rotates even the response id between events).
    let lines = fixture_lines(name);
    let last = &lines.last().unwrap()["response"];
    assert_eq!(r.response_id.as_deref(), last["id"].as_str(), "{name}: id");
    assert_eq!(r.model.as_deref(), last["model"].as_str(), "{name}: model");
}

#[test]
fn fixtures_decode_to_the_expected_content() {
    for name in FIXTURES {
        let body = stream_body(name);
        // The replayed framing holds exactly the recorded events.
        let mut events = Vec::new();
        let mut sse = SseDecoder::default();
        sse.push(&body, &mut events).unwrap();
        sse.finish(&mut events).unwrap();
        assert_eq!(
            events.len() as u64,
            expected(name)["events"].as_u64().unwrap(),
            "{name}"
        );

        let parts = decode_whole(&body).unwrap();
        assert!(
            matches!(parts.last(), Some(StreamPart::Finish { .. })),
            "{name}"
        );
        assert_matches_expected(name, &collect(&parts));
    }
}

#[test]
fn error_fixture_is_a_usage_limit_error() {
    let exp = expected(ERROR_FIXTURE);
    let err = decode_whole(&stream_body(ERROR_FIXTURE)).unwrap_err();
    assert_eq!(exp["final_status"], "failed");
    let event = &exp["error_event"];
    assert!(
        err.to_string().contains(event["message"].as_str().unwrap()),
        "{err}"
    );
    assert!(err.to_string().contains("insufficient_quota"), "{err}");
    // The error event itself is the body classification reads.
    let body: Value = serde_json::from_slice(err.body()).unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["code"], event["code"]);
    assert_eq!(err.provider(), Some("openai"));
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::UsageLimit));
    assert!(!c.is_retryable());
    assert!(
        c.detail().starts_with("You exceeded your current quota"),
        "{}",
        c.detail()
    );
}

#[tokio::test]
async fn fixtures_end_to_end_through_the_client() {
    for (i, name) in FIXTURES.iter().enumerate() {
        let body = stream_body(name);
        let want = collect(&decode_whole(&body).unwrap());
        let server = ReplayServer::start(vec![
            Reply::sse(chunk(&body, Some(0), 100 + i as u64)),
            // One-byte chunks over HTTP are slow to serve; the decoder-level test covers
            // them for every fixture, here only the small recordings.
            Reply::sse(chunk(&body, Some(if body.len() < 8192 { 1 } else { 7 }), 0)),
        ])
        .await;
        let model = openai_model(&format!("{}/v1", server.base_url), "gpt-5.1");
        let request = ModelRequest {
            messages: vec![Message::user_text("hi")],
            ..Default::default()
        };
        let got = model.generate(request.clone()).await.unwrap();
        assert_eq!(got, want, "{name}: random chunks");
        assert_matches_expected(name, &got);
        let got = model.generate(request).await.unwrap();
        assert_eq!(got, want, "{name}: small fixed chunks");
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].path, "/v1/responses");
        assert_eq!(reqs[0].method, "POST");
    }

    // The error recording: the stream fails with the quota error, not a closed stream.
    let server = ReplayServer::start(vec![Reply::sse(chunk(
        &stream_body(ERROR_FIXTURE),
        Some(7),
        0,
    ))])
    .await;
    let model = openai_model(&server.base_url, "gpt-5-nano");
    let err = model.generate(ModelRequest::default()).await.unwrap_err();
    assert_eq!(classified_kind(&err), (ChatErrorKind::UsageLimit, false));
}

#[test]
fn reasoning_items_carry_their_replay_data() {
    let step1 = "openai-responses--reasoning-tool-loop--step1.jsonl";
    let done = fixture_lines(step1)
        .into_iter()
        .find(|l| l["type"] == "response.output_item.done" && l["item"]["type"] == "reasoning")
        .unwrap();
    let parts = decode_whole(&stream_body(step1)).unwrap();
    let end = parts
        .iter()
        .find(|p| matches!(p, StreamPart::ReasoningEnd { .. }))
        .unwrap();
    assert_eq!(
        end,
        &StreamPart::ReasoningEnd {
            block: 0,
            signature: None,
            redacted_data: None,
            item_id: Some(done["item"]["id"].as_str().unwrap().to_owned()),
            encrypted_content: Some(
                done["item"]["encrypted_content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            ),
        }
    );
    // Reasoning is block 0, the call block 1; the call streams start, deltas, call.
    assert!(matches!(
        &parts[1],
        StreamPart::ReasoningDelta { block: 0, delta } if delta == "**Calcul"
    ));
    let start = parts
        .iter()
        .position(|p| matches!(p, StreamPart::ToolCallStart { block: 1, .. }))
        .unwrap();
    let call = parts
        .iter()
        .position(|p| matches!(p, StreamPart::ToolCall(_)))
        .unwrap();
    let deltas: String = parts[start..call]
        .iter()
        .filter_map(|p| match p {
            StreamPart::ToolCallDelta {
                block: 1,
                id,
                delta,
            } => {
                assert_eq!(id, "call_AB6AaRZ1FYZB2RwS6A5vbdqn");
                Some(delta.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(deltas, r#"{"a":12,"b":7,"op":"add"}"#);

    let r = collect(&parts);
    assert_eq!(r.reasoning_blocks.len(), 1);
    assert_eq!(r.reasoning_blocks[0].text, r.reasoning);
}

#[test]
fn rotating_item_ids_are_ignored() {
    // GitHub Copilot's gateway gives every event a new item_id; state follows output_index.
    let name = "openai-responses--gateway-item-id-rotation--github-copilot.jsonl";
    let parts = decode_whole(&stream_body(name)).unwrap();
    for p in &parts {
        match p {
            StreamPart::ReasoningDelta { block, .. } => assert_eq!(*block, 0),
            StreamPart::TextDelta { block, .. } => assert_eq!(*block, 1),
            StreamPart::ReasoningEnd {
                block,
                item_id,
                encrypted_content,
                ..
            } => {
                assert_eq!(*block, 0);
                // The id of the finished item (the gateway's last word), no encrypted
                // content (the gateway sent null).
                assert_eq!(item_id.as_deref(), Some("capture-id-8"));
                assert_eq!(encrypted_content, &None);
            }
            _ => {}
        }
    }
    let r = collect(&parts);
    assert_eq!(r.reasoning_blocks.len(), 1);
    assert_eq!(r.usage.reasoning_tokens, Some(44));
}

#[tokio::test]
async fn reasoning_tool_loop_replays_reasoning_calls_and_outputs_in_order() {
    let steps: Vec<Vec<u8>> = (1..=4)
        .map(|i| {
            stream_body(&format!(
                "openai-responses--reasoning-tool-loop--step{i}.jsonl"
            ))
        })
        .collect();
    let server = ReplayServer::start(
        steps
            .iter()
            .enumerate()
            .map(|(i, b)| Reply::sse(chunk(b, Some(0), i as u64 + 1)))
            .collect(),
    )
    .await;
    let model = openai_model(&server.base_url, "gpt-5.1-codex-max");
    let mut request = ModelRequest {
        system: vec!["You are a careful calculator.".into()],
        messages: vec![Message::user_text(
            "Compute ((12 + 7) * 3) * 10 with the calculator, one step at a time.",
        )],
        tools: vec![calculator_tool()],
        provider_options: responses_options(OpenAiResponsesOptions {
            store: false,
            reasoning_effort: Some("high".into()),
            reasoning_summary: Some("detailed".into()),
            include: vec!["reasoning.encrypted_content".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let results = ["19", "57", "570"];
    let mut expected_input = vec![json!({
        "type": "message",
        "role": "user",
        "content": [{
            "type": "input_text",
            "text": "Compute ((12 + 7) * 3) * 10 with the calculator, one step at a time.",
        }],
    })];
    for step in 0..4 {
        let r = model.generate(request.clone()).await.unwrap();
        let sent = server.requests()[step].json();
        assert_eq!(
            sent["input"],
            Value::Array(expected_input.clone()),
            "step {}",
            step + 1
        );
        assert_eq!(sent["store"], false);
        assert_eq!(sent["instructions"], "You are a careful calculator.");
        assert_eq!(
            sent["reasoning"],
            json!({"effort": "high", "summary": "detailed"})
        );
        assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));
        if step == 3 {
            assert_eq!(r.text, "The final result is **570**.");
            assert_eq!(r.finish_reason, Some(FinishReason::Stop));
            break;
        }
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        let result = *results.get(step).unwrap();

        // The assistant turn as the engine would store it, then the tool result.
        let mut content = Vec::new();
        for b in &r.reasoning_blocks {
            content.push(Part::Reasoning {
                text: b.text.clone(),
                signature: b.signature.clone(),
                redacted_data: b.redacted_data.clone(),
                item_id: b.item_id.clone(),
                encrypted_content: b.encrypted_content.clone(),
            });
            expected_input.push(json!({
                "type": "reasoning",
                "id": b.item_id.clone().unwrap(),
                "encrypted_content": b.encrypted_content.clone().unwrap(),
                "summary": [{"type": "summary_text", "text": b.text}],
            }));
        }
        let call = &r.tool_calls[0];
        content.push(Part::ToolCall {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments_json().unwrap(),
            provider_executed: false,
            thought_signature: None,
        });
        expected_input.push(json!({
            "type": "function_call",
            "call_id": call.id,
            "name": "calculator",
            "arguments": call.arguments,
        }));
        request.messages.push(Message {
            role: Role::Assistant,
            content,
        });
        request.messages.push(Message {
            role: Role::Tool,
            content: vec![Part::ToolResult {
                tool_call_id: call.id.clone(),
                name: call.name.clone(),
                output: RawJson::from_json(result).unwrap(),
                is_error: false,
            }],
        });
        expected_input.push(json!({
            "type": "function_call_output",
            "call_id": call.id,
            "output": result,
        }));
    }
    // Step 1 had a reasoning item; its replay is the second input item of step 2.
    let step2 = server.requests()[1].json();
    assert_eq!(step2["input"][1]["type"], "reasoning");
    assert!(step2["input"][1]["id"].as_str().unwrap().starts_with("rs_"));
    assert!(step2["input"][1]["encrypted_content"]
        .as_str()
        .unwrap()
        .starts_with("gAAAA"));
    assert_eq!(step2["input"][2]["type"], "function_call");
    assert_eq!(step2["input"][3]["type"], "function_call_output");
}

// ---------------------------------------------------------------------------------------
// Error fixtures

#[tokio::test]
async fn in_stream_error_events_classify_like_http_errors() {
    let cases = [
        (
            "errors/openai-responses--stream-error-event--flat-rate-limit.sse",
            ChatErrorKind::RateLimit,
            true,
            "Rate limit reached",
        ),
        (
            "errors/openai-responses--stream-error-event--nested-server-error.sse",
            ChatErrorKind::Generic,
            true,
            "response failed",
        ),
    ];
    for (path, kind, retryable, detail) in cases {
        let body = read_testdata(path);
        // Decoder only…
        let err = decode_whole(&body).unwrap_err();
        assert_eq!(classified_kind(&err), (kind.clone(), retryable), "{path}");
        assert_eq!(
            err.body(),
            body.trim_ascii().strip_prefix(b"data:").unwrap(),
            "{path}"
        );
        // …and served as a 200 SSE response.
        let server = ReplayServer::start(vec![Reply::sse(chunk(&body, Some(3), 0))]).await;
        let model = openai_model(&server.base_url, "gpt-5");
        let err = model.generate(ModelRequest::default()).await.unwrap_err();
        let c = classify(&err);
        assert_eq!(c.kind(), Some(&kind), "{path}: {err}");
        assert_eq!(c.is_retryable(), retryable, "{path}");
        assert_eq!(c.detail(), detail, "{path}");
        assert_eq!(c.provider(), "openai", "{path}");
    }
}

#[tokio::test]
async fn http_429_insufficient_quota_is_a_terminal_usage_limit() {
    let body = read_testdata("errors/openai--429-insufficient-quota.json");
    let server = ReplayServer::start(vec![Reply::status(
        429,
        vec![("content-type".into(), "application/json".into())],
        body,
    )])
    .await;
    let model = openai_model(&server.base_url, "gpt-5");
    let err = model.generate(ModelRequest::default()).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::UsageLimit));
    assert!(!c.is_retryable());
    assert_eq!(c.status_code(), 429);
}

#[test]
fn response_failed_reports_the_response_error() {
    let err = decode_events(&[
        json!({"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5"}}),
        json!({"type": "response.failed", "response": {"id": "resp_1", "status": "failed",
            "error": {"code": "server_error", "message": "The model failed."}}}),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("server_error"), "{err}");
    let body: Value = serde_json::from_slice(err.body()).unwrap();
    assert_eq!(
        body,
        json!({"error": {"code": "server_error", "message": "The model failed."}})
    );
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::Generic));
    assert!(c.is_retryable());
    assert_eq!(c.detail(), "The model failed.");

    let err = decode_events(&[json!({"type": "response.failed", "response": {"error": {
        "code": "rate_limit_exceeded", "message": "Slow down."}}})])
    .unwrap_err();
    assert_eq!(classified_kind(&err), (ChatErrorKind::RateLimit, true));
}

// ---------------------------------------------------------------------------------------
// Transport failures and limits

#[tokio::test]
async fn silent_server_is_a_retryable_startup_timeout() {
    let mut reply = Reply::sse(vec![stream_body("openai-responses--text--azure.jsonl")]);
    reply.delay_first_byte = Duration::from_secs(5);
    let server = ReplayServer::start(vec![reply]).await;
    let model = OpenAiResponsesModel::new(
        Provider::OpenAi,
        "gpt-5",
        KEY,
        Some(&server.base_url),
        ClientSettings {
            startup_timeout: Duration::from_millis(300),
            ..ClientSettings::default()
        },
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = model.generate(ModelRequest::default()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(classified_kind(&err), (ChatErrorKind::StartupTimeout, true));
}

#[tokio::test]
async fn body_ending_before_a_terminal_event_is_a_retryable_timeout() {
    let mut body = stream_body("openai-responses--text--azure.jsonl");
    let cut = String::from_utf8_lossy(&body)
        .find("event: response.completed")
        .unwrap();
    body.truncate(cut);

    // Decoder: the text made it out, then the error.
    let err = decode_whole(&body).unwrap_err();
    assert_eq!(err.to_string(), OPENAI_RESPONSES_STREAM_CLOSED);

    for (provider, subject) in [
        (Provider::OpenAi, "OpenAI"),
        (Provider::Azure, "Azure OpenAI"),
    ] {
        let server = ReplayServer::start(vec![Reply::sse(chunk(&body, Some(5), 0))]).await;
        let model =
            OpenAiResponsesModel::new(provider, "gpt-5.1", KEY, Some(&server.base_url), settings())
                .unwrap();
        let mut stream = model.stream(ModelRequest::default());
        let mut text = String::new();
        let err = loop {
            match stream.next().await.unwrap() {
                Ok(StreamPart::TextDelta { delta, .. }) => text.push_str(&delta),
                Ok(StreamPart::Finish { .. }) => panic!("finished without a terminal event"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert!(stream.next().await.is_none(), "nothing after the error");
        assert_eq!(text, "Hello");
        let c = classify(&err);
        assert_eq!(c.kind(), Some(&ChatErrorKind::Timeout));
        assert!(c.is_retryable());
        assert_eq!(
            c.message(),
            format!("{subject} stream closed unexpectedly before the response completed.")
        );
    }
}

#[tokio::test]
async fn event_over_the_size_limit_ends_the_stream() {
    let body = stream_body("openai-responses--reasoning-tool-loop--step1.jsonl");
    let server = ReplayServer::start(vec![Reply::sse(chunk(&body, Some(64), 0))]).await;
    let model = OpenAiResponsesModel::new(
        Provider::OpenAi,
        "gpt-5.1-codex-max",
        KEY,
        Some(&server.base_url),
        ClientSettings {
            max_event_bytes: 1024,
            ..settings()
        },
    )
    .unwrap();
    let err = model.generate(ModelRequest::default()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("exceeds the maximum size of 1024 bytes"),
        "{err}"
    );
    // Decoder-level: the same body decodes under the default limit.
    assert!(decode_whole(&body).is_ok());
}

#[test]
fn too_many_output_items_is_an_error() {
    let events: Vec<Value> = (0..=MAX_RESPONSE_OUTPUT_ITEMS)
        .map(|i| {
            json!({"type": "response.output_item.added", "output_index": i,
            "item": {"type": "message", "id": format!("msg_{i}")}})
        })
        .collect();
    let err = decode_events(&events).unwrap_err();
    assert!(err.to_string().contains("output items"), "{err}");
    assert!(decode_events(&events[..MAX_RESPONSE_OUTPUT_ITEMS])
        .unwrap_err()
        .to_string()
        .contains("closed before terminal event"));
}

#[test]
fn malformed_events_are_errors_and_done_markers_are_not() {
    let err = decode_whole(b"data: {not json\n\n").unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
    assert_eq!(classified_kind(&err), (ChatErrorKind::Generic, false));
    // A truncated event reads as a cut transport: retryable.
    let err = decode_whole(b"data: {\"type\":\n\n").unwrap_err();
    assert_eq!(
        classified_kind(&err),
        (ChatErrorKind::Timeout, true),
        "{err}"
    );
    let mut body = sse(&[json!({"type": "response.completed", "response": {}})]);
    body.extend_from_slice(b"data: [DONE]\n\n: keep-alive\n\n");
    assert!(decode_whole(&body).is_ok());
}

// ---------------------------------------------------------------------------------------
// Azure, headers, secrets

#[test]
fn azure_base_urls_are_rewritten_and_required() {
    for raw in [
        "my-res.cognitiveservices.azure.com/openai/deployments/x",
        "https://my-res.openai.azure.com",
        "https://my-res.openai.azure.com/openai/v1",
        "https://my-res.openai.azure.com/openai/v1/",
    ] {
        let m = OpenAiResponsesModel::new(Provider::Azure, "gpt-5.1", KEY, Some(raw), settings())
            .unwrap();
        assert_eq!(
            m.endpoint(),
            "https://my-res.openai.azure.com/openai/v1/responses",
            "{raw}"
        );
        assert_eq!(m.provider(), Provider::Azure);
        assert_eq!(m.model_id(), "gpt-5.1");
    }
    let err =
        OpenAiResponsesModel::new(Provider::Azure, "gpt-5.1", KEY, None, settings()).unwrap_err();
    assert_eq!(err.to_string(), "AZURE_OPENAI_BASE_URL is not set");
    assert_eq!(err.kind(), chatprovider::ErrorKind::MissingBaseUrl);

    let m = OpenAiResponsesModel::new(Provider::OpenAi, "gpt-5", KEY, None, settings()).unwrap();
    assert_eq!(m.endpoint(), "https://api.openai.com/v1/responses");
    let err = OpenAiResponsesModel::new(Provider::Anthropic, "claude", KEY, None, settings())
        .unwrap_err();
    assert_eq!(err.kind(), chatprovider::ErrorKind::UnsupportedProvider);
    let err =
        OpenAiResponsesModel::new(Provider::OpenAi, "gpt-5", "  ", None, settings()).unwrap_err();
    assert_eq!(err.to_string(), "OPENAI_API_KEY is not set");
    let err = OpenAiResponsesModel::new(Provider::OpenAi, "gpt-5", "sk-\nx", None, settings())
        .unwrap_err();
    assert_eq!(err.kind(), chatprovider::ErrorKind::InvalidApiKey);
    assert!(!err.to_string().contains("sk-"));
    let err = OpenAiResponsesModel::new(Provider::OpenAi, " ", KEY, None, settings()).unwrap_err();
    assert_eq!(err.kind(), chatprovider::ErrorKind::ModelRequired);
}

#[tokio::test]
async fn azure_sends_the_key_in_the_api_key_header() {
    let body = stream_body("openai-responses--text--azure.jsonl");
    let server = ReplayServer::start(vec![
        Reply::sse(vec![body.clone()]),
        Reply::sse(vec![body.clone()]),
    ])
    .await;
    // A non-Azure host (a gateway) is kept as given, query included.
    let model = OpenAiResponsesModel::new(
        Provider::Azure,
        "my-gpt-deployment",
        KEY,
        Some(&format!("{}/openai/v1/", server.base_url)),
        settings(),
    )
    .unwrap();
    let r = model.generate(ModelRequest::default()).await.unwrap();
    assert_eq!(r.text, "Hello");
    let gateway = OpenAiResponsesModel::new(
        Provider::Azure,
        "my-gpt-deployment",
        KEY,
        Some(&format!("{}/azure?api-version=preview", server.base_url)),
        settings(),
    )
    .unwrap();
    gateway.generate(ModelRequest::default()).await.unwrap();

    let reqs = server.requests();
    assert_eq!(reqs[0].path, "/openai/v1/responses");
    assert_eq!(reqs[0].query, None);
    assert_eq!(reqs[0].header("api-key"), Some(KEY));
    assert_eq!(reqs[0].header("authorization"), None);
    assert_eq!(reqs[0].json()["model"], "my-gpt-deployment");
    assert_eq!(reqs[1].path, "/azure/responses");
    assert_eq!(reqs[1].query.as_deref(), Some("api-version=preview"));
}

#[tokio::test]
async fn openai_sends_bearer_user_agent_and_correlation_headers() {
    let server = ReplayServer::start(vec![Reply::sse(vec![stream_body(
        "openai-responses--text--azure.jsonl",
    )])])
    .await;
    let model = OpenAiResponsesModel::new(
        Provider::OpenAi,
        "gpt-5.1",
        KEY,
        Some(&format!("{}/v1", server.base_url)),
        ClientSettings {
            user_agent: "coder-agents/9.9.9 (linux/amd64)".into(),
            extra_headers: vec![("X-Extra".into(), "yes".into())],
            ..settings()
        },
    )
    .unwrap();
    let request = ModelRequest {
        messages: vec![Message::user_text("hi")],
        correlation: CorrelationHeaders {
            owner_id: Some("owner-1".into()),
            chat_id: Some("chat-1".into()),
            subchat_id: Some("sub-1".into()),
            workspace_id: None,
        },
        ..Default::default()
    };
    model.generate(request).await.unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1/responses");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.header("api-key"), None);
    assert_eq!(
        r.header("user-agent"),
        Some("coder-agents/9.9.9 (linux/amd64)")
    );
    assert_eq!(r.header("x-coder-owner-id"), Some("owner-1"));
    assert_eq!(r.header("x-coder-chat-id"), Some("chat-1"));
    assert_eq!(r.header("x-coder-subchat-id"), Some("sub-1"));
    assert_eq!(r.header("x-coder-workspace-id"), None);
    assert_eq!(r.header("x-extra"), Some("yes"));
    assert_eq!(r.header("accept"), Some("text/event-stream"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["stream"], true);
}

#[test]
fn the_key_never_appears_in_debug_output() {
    for provider in [Provider::OpenAi, Provider::Azure] {
        let m = OpenAiResponsesModel::new(
            provider,
            "gpt-5",
            KEY,
            Some("https://user:secret-pass@gateway.example.com/v1?token=qs-secret"),
            settings(),
        )
        .unwrap();
        let dbg = format!("{m:?} {m:#?}");
        let chars: Vec<char> = KEY.chars().collect();
        for w in chars.windows(8) {
            let piece: String = w.iter().collect();
            assert!(!dbg.contains(&piece), "{piece} leaks: {dbg}");
        }
        assert!(
            !dbg.contains("secret-pass") && !dbg.contains("qs-secret"),
            "{dbg}"
        );
        assert!(dbg.contains("gateway.example.com"), "{dbg}");
    }
}

// ---------------------------------------------------------------------------------------
// Request mapping

#[test]
fn minimal_request_defaults() {
    let m = openai_model("https://api.openai.com/v1", "gpt-5");
    let body = m.request_body(&ModelRequest {
        messages: vec![Message::user_text("hello")],
        ..Default::default()
    });
    assert_eq!(
        body,
        json!({
            "model": "gpt-5",
            "input": [{"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "hello"}]}],
            "stream": true,
            "store": true,
            "include": ["reasoning.encrypted_content"],
        })
    );
}

#[test]
fn full_request_mapping() {
    let m = openai_model("https://api.openai.com/v1", "gpt-5.1");
    let mut metadata = codersdk::JsonObject::new();
    metadata.insert("team".into(), json!("infra"));
    metadata.insert("tier".into(), json!(3));
    let request = ModelRequest {
        system: vec!["Be brief.".into(), "  ".into(), "Use tools.".into()],
        messages: vec![
            Message {
                role: Role::User,
                content: vec![
                    Part::Text {
                        text: "Look at these".into(),
                    },
                    Part::File {
                        media_type: "image/png".into(),
                        data: vec![1, 2, 3],
                        filename: Some("a.png".into()),
                    },
                    Part::File {
                        media_type: "application/pdf".into(),
                        data: b"%PDF".to_vec(),
                        filename: Some("doc.pdf".into()),
                    },
                    Part::File {
                        media_type: "text/plain".into(),
                        data: b"hi".to_vec(),
                        filename: None,
                    },
                ],
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::Text {
                        text: "Checking.".into(),
                    },
                    Part::ToolCall {
                        id: "call_1".into(),
                        name: "read".into(),
                        arguments: RawJson::from_json(r#"{"path": "a"}"#).unwrap(),
                        provider_executed: false,
                        thought_signature: None,
                    },
                ],
            },
            Message {
                role: Role::Tool,
                content: vec![Part::ToolResult {
                    tool_call_id: "call_1".into(),
                    name: "read".into(),
                    output: RawJson::from_json(r#"{"ok":true}"#).unwrap(),
                    is_error: false,
                }],
            },
        ],
        tools: vec![calculator_tool()],
        tool_choice: Some(ToolChoice::Tool("calculator".into())),
        settings: CallSettings {
            max_output_tokens: Some(512),
            temperature: Some(0.5),
            top_p: Some(0.9),
            top_k: Some(4),
            presence_penalty: Some(0.1),
            frequency_penalty: Some(0.2),
        },
        provider_options: responses_options(OpenAiResponsesOptions {
            include: vec!["file_search_call.results".into()],
            instructions: Some("Model rules.".into()),
            logprobs: Some(OpenAiLogprobs::Top(50)),
            max_tool_calls: Some(4),
            metadata: Some(metadata),
            parallel_tool_calls: Some(false),
            prompt_cache_key: Some("pck".into()),
            reasoning_effort: Some("medium".into()),
            reasoning_summary: Some("auto".into()),
            safety_identifier: Some("sid".into()),
            service_tier: Some("flex".into()),
            store: true,
            strict_json_schema: Some(true),
            text_verbosity: Some("low".into()),
            user: Some("u-1".into()),
            web_search: Some(OpenAiWebSearchOptions {
                search_context_size: Some("high".into()),
                allowed_domains: vec!["docs.rs".into()],
            }),
        }),
        previous_response_id: None,
        correlation: CorrelationHeaders::default(),
    };
    let body = m.request_body(&request);
    let tool = calculator_tool();
    assert_eq!(
        body,
        json!({
            "model": "gpt-5.1",
            "instructions": "Model rules.\n\nBe brief.\n\nUse tools.",
            "input": [
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "Look at these"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AQID"},
                    {"type": "input_file", "filename": "doc.pdf",
                        "file_data": "data:application/pdf;base64,JVBERg=="},
                    {"type": "input_file", "filename": "file",
                        "file_data": "data:text/plain;base64,aGk="},
                ]},
                {"type": "message", "role": "assistant", "content": [
                    {"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "call_id": "call_1", "name": "read",
                    "arguments": "{\"path\":\"a\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "{\"ok\":true}"},
            ],
            "stream": true,
            "store": true,
            "include": ["file_search_call.results", "reasoning.encrypted_content",
                "message.output_text.logprobs"],
            "top_logprobs": 20,
            "tools": [
                {"type": "function", "name": "calculator", "description": tool.description,
                    "parameters": tool.input_schema.to_value(), "strict": true},
                {"type": "web_search", "search_context_size": "high",
                    "filters": {"allowed_domains": ["docs.rs"]}},
            ],
            "tool_choice": {"type": "function", "name": "calculator"},
            "parallel_tool_calls": false,
            "max_tool_calls": 4,
            "max_output_tokens": 512,
            "reasoning": {"effort": "medium", "summary": "auto"},
            "text": {"verbosity": "low"},
            "service_tier": "flex",
            "user": "u-1",
            "prompt_cache_key": "pck",
            "safety_identifier": "sid",
            "metadata": {"team": "infra", "tier": "3"},
        })
    );
}

#[test]
fn sampling_and_reasoning_follow_the_model_family() {
    let request = ModelRequest {
        settings: CallSettings {
            temperature: Some(0.2),
            top_p: Some(0.5),
            ..Default::default()
        },
        provider_options: responses_options(OpenAiResponsesOptions {
            store: true,
            reasoning_effort: Some("low".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cases = [
        ("gpt-4o", true, false),
        ("gpt-4.1-mini", true, false),
        ("gpt-5-chat-latest", true, false),
        ("gpt-5", false, true),
        ("o3-mini", false, true),
        ("gpt-5.1-codex-max", false, true),
        ("my-azure-deployment", true, true),
    ];
    for (model, sampling, reasoning) in cases {
        let body = openai_model("https://api.openai.com/v1", model).request_body(&request);
        assert_eq!(body.get("temperature").is_some(), sampling, "{model}");
        assert_eq!(body.get("top_p").is_some(), sampling, "{model}");
        assert_eq!(body.get("reasoning").is_some(), reasoning, "{model}");
    }
}

#[test]
fn chained_requests_send_only_what_they_are_given() {
    let m = openai_model("https://api.openai.com/v1", "gpt-5");
    let body = m.request_body(&ModelRequest {
        system: vec!["sys".into()],
        messages: vec![Message::user_text("next question")],
        previous_response_id: Some("resp_prev".into()),
        ..Default::default()
    });
    assert_eq!(body["previous_response_id"], "resp_prev");
    assert_eq!(body["instructions"], "sys");
    assert_eq!(body["input"].as_array().unwrap().len(), 1);
    assert_eq!(body["store"], true);
    // Blank ids are not sent.
    let body = m.request_body(&ModelRequest {
        previous_response_id: Some(" ".into()),
        ..Default::default()
    });
    assert!(body.get("previous_response_id").is_none());
}

#[test]
fn replay_of_reasoning_and_provider_tools_depends_on_store() {
    let history = vec![
        Message::user_text("search"),
        Message {
            role: Role::Assistant,
            content: vec![
                Part::Reasoning {
                    text: "thinking".into(),
                    signature: None,
                    redacted_data: None,
                    item_id: Some("rs_1".into()),
                    encrypted_content: None,
                },
                Part::Reasoning {
                    text: "anthropic thinking".into(),
                    signature: Some("sig".into()),
                    redacted_data: None,
                    item_id: None,
                    encrypted_content: None,
                },
                Part::ToolCall {
                    id: "ws_1".into(),
                    name: "web_search".into(),
                    arguments: RawJson::empty_object(),
                    provider_executed: true,
                    thought_signature: None,
                },
                Part::Text {
                    text: "Found it.".into(),
                },
            ],
        },
        Message {
            role: Role::Tool,
            content: vec![Part::ToolResult {
                tool_call_id: "ws_1".into(),
                name: "web_search".into(),
                output: RawJson::from_json(r#""results""#).unwrap(),
                is_error: false,
            }],
        },
    ];
    let m = openai_model("https://api.openai.com/v1", "gpt-5");
    let input = |store: bool| {
        m.request_body(&ModelRequest {
            messages: history.clone(),
            tool_choice: Some(ToolChoice::Required),
            provider_options: responses_options(OpenAiResponsesOptions {
                store,
                ..Default::default()
            }),
            ..Default::default()
        })
    };
    let stored = input(true);
    assert_eq!(
        stored["input"],
        json!([
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "search"}]},
            {"type": "item_reference", "id": "rs_1"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Found it."}]},
        ])
    );
    // No tools, so no tool choice either.
    assert!(stored.get("tool_choice").is_none() && stored.get("tools").is_none());
    let unstored = input(false);
    assert_eq!(unstored["input"].as_array().unwrap().len(), 2);
    assert_eq!(unstored["store"], false);
}

#[test]
fn chat_completions_options_are_mapped_to_their_responses_equivalents() {
    let m = openai_model("https://api.openai.com/v1", "gpt-5");
    let body = m.request_body(&ModelRequest {
        provider_options: Some(ProviderRequestOptions {
            openai: Some(OpenAiRequestOptions::ChatCompletions(OpenAiChatOptions {
                store: false,
                user: Some("u".into()),
                reasoning_effort: Some("high".into()),
                log_probs: Some(true),
                ..Default::default()
            })),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(body["store"], false);
    assert_eq!(body["user"], "u");
    assert_eq!(body["reasoning"], json!({"effort": "high"}));
    assert_eq!(
        body["include"],
        json!([
            "reasoning.encrypted_content",
            "message.output_text.logprobs"
        ])
    );
}

// ---------------------------------------------------------------------------------------
// Decoding rules (synthetic streams)

fn created() -> Value {
    json!({"type": "response.created", "response": {"id": "resp_x", "model": "gpt-5"}})
}

fn completed(usage: Value) -> Value {
    json!({"type": "response.completed", "response": {"id": "resp_x", "model": "gpt-5",
        "status": "completed", "usage": usage}})
}

#[test]
fn web_search_calls_and_citations() {
    let citation = json!({"type": "url_citation", "url": "https://docs.rs/", "title": "Docs.rs",
        "start_index": 0, "end_index": 4});
    let parts = decode_events(&[
        created(),
        json!({"type": "response.in_progress", "response": {"id": "resp_x", "model": "gpt-5"}}),
        json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"type": "web_search_call", "id": "ws_1", "status": "in_progress"}}),
        json!({"type": "response.web_search_call.searching", "output_index": 0, "item_id": "ws_1"}),
        json!({"type": "response.output_item.done", "output_index": 0,
            "item": {"type": "web_search_call", "id": "ws_1", "status": "completed",
                "action": {"type": "search", "query": "rust docs"}}}),
        json!({"type": "response.output_item.added", "output_index": 1,
            "item": {"type": "message", "id": "msg_1", "content": []}}),
        json!({"type": "response.output_text.delta", "output_index": 1, "content_index": 0,
            "delta": "Docs"}),
        json!({"type": "response.output_text.annotation.added", "output_index": 1,
            "content_index": 0, "annotation_index": 0, "annotation": citation}),
        json!({"type": "response.output_item.done", "output_index": 1,
            "item": {"type": "message", "id": "msg_1", "content": [{"type": "output_text",
                "text": "Docs", "annotations": [citation,
                    {"type": "url_citation", "url": "https://crates.io/", "title": "crates"},
                    {"type": "file_citation", "file_id": "f"}]}]}}),
        completed(json!({"input_tokens": 10, "output_tokens": 5})),
    ])
    .unwrap();
    let usage = ChatMessageUsage {
        input_tokens: Some(10),
        output_tokens: Some(5),
        total_tokens: Some(15),
        cache_read_tokens: Some(0),
        ..Default::default()
    };
    assert_eq!(
        parts,
        vec![
            StreamPart::ResponseMetadata {
                id: Some("resp_x".into()),
                model: Some("gpt-5".into())
            },
            StreamPart::ToolCallStart {
                block: 0,
                id: "ws_1".into(),
                name: "web_search".into()
            },
            StreamPart::ToolCall(ToolCall {
                id: "ws_1".into(),
                name: "web_search".into(),
                arguments: r#"{"query":"rust docs","type":"search"}"#.into(),
                arguments_valid: true,
                provider_executed: true,
            }),
            StreamPart::ProviderToolResult {
                tool_call_id: "ws_1".into(),
                name: "web_search".into(),
                result: RawJson::from_json(
                    r#"{"action":{"query":"rust docs","type":"search"},"status":"completed"}"#
                )
                .unwrap(),
                is_error: false,
            },
            StreamPart::TextDelta {
                block: 1,
                delta: "Docs".into()
            },
            StreamPart::Source {
                id: "source-0".into(),
                url: "https://docs.rs/".into(),
                title: Some("Docs.rs".into())
            },
            StreamPart::Source {
                id: "source-1".into(),
                url: "https://crates.io/".into(),
                title: Some("crates".into())
            },
            // A provider-executed call alone does not ask for tool results.
            StreamPart::Finish {
                reason: FinishReason::Stop,
                usage
            },
        ]
    );
}

#[test]
fn incomplete_responses_map_their_reason() {
    for (reason, want) in [
        ("max_output_tokens", FinishReason::Length),
        ("content_filter", FinishReason::ContentFilter),
        ("something_new", FinishReason::Other("something_new".into())),
    ] {
        let parts = decode_events(&[
            created(),
            json!({"type": "response.output_text.delta", "output_index": 0, "delta": "Hi"}),
            json!({"type": "response.incomplete", "response": {"id": "resp_x", "model": "gpt-5",
                "status": "incomplete", "incomplete_details": {"reason": reason},
                "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40},
                    "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3}}}}),
        ])
        .unwrap();
        assert_eq!(
            parts.last().unwrap(),
            &StreamPart::Finish {
                reason: want,
                usage: ChatMessageUsage {
                    input_tokens: Some(60),
                    output_tokens: Some(7),
                    total_tokens: Some(107),
                    reasoning_tokens: Some(3),
                    cache_read_tokens: Some(40),
                    ..Default::default()
                }
            },
            "{reason}"
        );
    }
}

#[test]
fn function_calls_without_arguments_get_an_empty_object() {
    let parts = decode_events(&[
        json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "list",
                "arguments": ""}}),
        json!({"type": "response.function_call_arguments.done", "output_index": 0,
            "arguments": ""}),
        json!({"type": "response.output_item.done", "output_index": 0,
            "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "list",
                "arguments": ""}}),
        completed(Value::Null),
    ])
    .unwrap();
    assert_eq!(
        parts,
        vec![
            StreamPart::ToolCallStart {
                block: 0,
                id: "call_1".into(),
                name: "list".into()
            },
            StreamPart::ToolCall(ToolCall {
                id: "call_1".into(),
                name: "list".into(),
                arguments: "{}".into(),
                arguments_valid: true,
                provider_executed: false,
            }),
            StreamPart::ResponseMetadata {
                id: Some("resp_x".into()),
                model: Some("gpt-5".into())
            },
            StreamPart::Finish {
                reason: FinishReason::ToolCalls,
                usage: ChatMessageUsage::default()
            },
        ]
    );
}

#[test]
fn calls_left_open_are_reported_at_completion() {
    // A gateway that never sends the done events: the streamed arguments are used.
    let parts = decode_events(&[
        json!({"type": "response.output_item.added", "output_index": 3,
            "item": {"type": "function_call", "call_id": "call_9", "name": "write"}}),
        json!({"type": "response.function_call_arguments.delta", "output_index": 3,
            "item_id": "rotating-1", "delta": "{\"a\":"}),
        json!({"type": "response.function_call_arguments.delta", "output_index": 3,
            "item_id": "rotating-2", "delta": "1"}),
        json!({"type": "response.output_item.added", "output_index": 4,
            "item": {"type": "reasoning", "id": "rs_open", "encrypted_content": "enc"}}),
        completed(Value::Null),
    ])
    .unwrap();
    let r = collect(&parts);
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_calls[0].arguments, "{\"a\":1");
    assert!(!r.tool_calls[0].arguments_valid);
    assert_eq!(r.reasoning_blocks[0].item_id.as_deref(), Some("rs_open"));
    assert_eq!(
        r.reasoning_blocks[0].encrypted_content.as_deref(),
        Some("enc")
    );
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
}

#[test]
fn reasoning_summary_parts_are_separated() {
    let parts = decode_events(&[
        json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
        json!({"type": "response.reasoning_summary_text.delta", "output_index": 0,
            "summary_index": 0, "delta": "First."}),
        json!({"type": "response.reasoning_summary_text.delta", "output_index": 0,
            "summary_index": 1, "delta": "Second."}),
        json!({"type": "response.reasoning_summary_text.delta", "output_index": 0,
            "summary_index": 1, "delta": " More."}),
        json!({"type": "response.output_item.done", "output_index": 0,
            "item": {"type": "reasoning", "id": "rs_1", "encrypted_content": "enc-final"}}),
        json!({"type": "response.output_item.added", "output_index": 1,
            "item": {"type": "reasoning", "id": "rs_2"}}),
        json!({"type": "response.reasoning_text.delta", "output_index": 1, "content_index": 0,
            "delta": "raw"}),
        json!({"type": "response.output_item.done", "output_index": 1,
            "item": {"type": "reasoning", "id": "rs_2"}}),
        completed(Value::Null),
    ])
    .unwrap();
    let r = collect(&parts);
    assert_eq!(r.reasoning, "First.\n\nSecond. More.raw");
    assert_eq!(r.reasoning_blocks.len(), 2);
    assert_eq!(r.reasoning_blocks[0].text, "First.\n\nSecond. More.");
    assert_eq!(
        r.reasoning_blocks[0].encrypted_content.as_deref(),
        Some("enc-final")
    );
    assert_eq!(r.reasoning_blocks[1].text, "raw");
    assert_eq!(r.reasoning_blocks[1].encrypted_content, None);
}

#[test]
fn refusals_are_text_and_finish_as_content_filter() {
    let parts = decode_events(&[
        json!({"type": "response.refusal.delta", "output_index": 0, "content_index": 0,
            "delta": "I can't help with that."}),
        completed(json!({"input_tokens": 1, "output_tokens": 1})),
    ])
    .unwrap();
    let r = collect(&parts);
    assert_eq!(r.text, "I can't help with that.");
    assert_eq!(r.finish_reason, Some(FinishReason::ContentFilter));
}

#[test]
fn events_after_the_terminal_event_are_ignored() {
    let mut d = OpenAiResponsesDecoder::new(Provider::Azure);
    let mut out = Vec::new();
    let ev = |v: Value| chatprovider::sse::SseEvent {
        data: v.to_string(),
        ..Default::default()
    };
    d.on_event(&ev(completed(Value::Null)), &mut out).unwrap();
    assert!(d.is_done());
    let n = out.len();
    d.on_event(
        &ev(json!({"type": "response.output_text.delta", "output_index": 0, "delta": "late"})),
        &mut out,
    )
    .unwrap();
    d.on_event(&ev(json!({"type": "error", "message": "late"})), &mut out)
        .unwrap();
    d.on_end(&mut out).unwrap();
    assert_eq!(out.len(), n);

    // Errors name the decoder's provider.
    let mut d = OpenAiResponsesDecoder::new(Provider::Azure);
    let err = d.on_end(&mut out).unwrap_err();
    assert_eq!(err.provider(), Some("azure"));
}

#[test]
fn oversized_tool_arguments_are_refused() {
    let mut d = OpenAiResponsesDecoder::default();
    let mut out = Vec::new();
    let ev = |v: Value| chatprovider::sse::SseEvent {
        data: v.to_string(),
        ..Default::default()
    };
    d.on_event(
        &ev(
            json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"type": "function_call", "call_id": "c", "name": "n"}}),
        ),
        &mut out,
    )
    .unwrap();
    let chunk = "x".repeat(1024 * 1024);
    let delta = ev(
        json!({"type": "response.function_call_arguments.delta", "output_index": 0,
        "delta": chunk}),
    );
    let max_chunks = chatprovider::MAX_TOOL_CALL_ARGUMENT_BYTES / chunk.len();
    for _ in 0..max_chunks {
        d.on_event(&delta, &mut out).unwrap();
        out.clear();
    }
    let err = d.on_event(&delta, &mut out).unwrap_err();
    assert!(err.to_string().contains("arguments exceed"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Redirects

/// A server at another origin that redirects (307, body and method kept) to `target`.
async fn redirect_to(target: &str) -> ReplayServer {
    ReplayServer::start(vec![Reply::status(
        307,
        vec![("location".into(), format!("{target}/v1/responses"))],
        Vec::new(),
    )])
    .await
}

#[tokio::test]
async fn a_client_that_stops_redirects_keeps_the_azure_key_home() {
    let other = ReplayServer::start(vec![Reply::sse(vec![stream_body(
        "openai-responses--text--azure.jsonl",
    )])])
    .await;
    let first = redirect_to(&other.base_url).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let model = OpenAiResponsesModel::new(
        Provider::Azure,
        "gpt-5.1",
        KEY,
        Some(&first.base_url),
        ClientSettings { http, ..settings() },
    )
    .unwrap();
    let err = model.generate(ModelRequest::default()).await.unwrap_err();
    assert_eq!(err.status(), Some(307));
    assert!(other.requests().is_empty());
}

#[tokio::test]
async fn default_settings_do_not_leak_the_azure_key_across_a_redirect() {
    let other = ReplayServer::start(vec![Reply::sse(vec![stream_body(
        "openai-responses--text--azure.jsonl",
    )])])
    .await;
    let first = redirect_to(&other.base_url).await;
    let model = OpenAiResponsesModel::new(
        Provider::Azure,
        "gpt-5.1",
        KEY,
        Some(&first.base_url),
        settings(),
    )
    .unwrap();
    let _ = model.generate(ModelRequest::default()).await;
    for r in other.requests() {
        assert_eq!(r.header("api-key"), None, "the key reached another origin");
    }
}
