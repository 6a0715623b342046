//! The OpenAI Chat Completions client: every recorded Chat Completions stream decoded
//! byte-exact and re-chunked, end to end through a local server, provider errors, startup
//! timeout, early close, event limit, in-stream errors, decoding edge cases and the request
//! it sends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use chatcost::normalize;
use chatd_test_support::fixtures::{read_testdata, stream_body, testdata_file_names};
use chatd_test_support::replay::{chunk, ReplayServer, Reply};
use chatprovider::sse::DEFAULT_MAX_EVENT_BYTES;
use chatprovider::{
    decode_body, provider_request_options, CallSettings, ClientSettings, CorrelationHeaders,
    FinishReason, LanguageModel, Message, ModelRequest, ModelResponse, OpenAiChatDecoder,
    OpenAiChatModel, OpenAiChatUsageRule, Part, Provider, ProviderApiKeys, ResponseCollector, Role,
    StreamPart, ToolChoice, ToolDefinition, OPENAI_CHAT_MAX_TOOL_CALLS,
    OPENAI_CHAT_STREAM_CLOSED_ERROR,
};
use codersdk::{ChatErrorKind, ChatMessageUsage, RawJson, SecretString};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::decode_chunked;

const KEY: &str = "sk-test-secret-0123456789";

/// A recorded Chat-Completions-shaped stream and how to decode it.
struct Case {
    file: &'static str,
    provider: Provider,
    rule: OpenAiChatUsageRule,
}

const CASES: [Case; 10] = [
    Case {
        file: "openai-chat--finish-length.sse",
        provider: Provider::OpenAi,
        rule: OpenAiChatUsageRule::OpenAi,
    },
    Case {
        file: "openai-chat--refusal.sse",
        provider: Provider::OpenAi,
        rule: OpenAiChatUsageRule::OpenAi,
    },
    Case {
        file: "openai-chat--text--obfuscation-usage.jsonl",
        provider: Provider::OpenAi,
        rule: OpenAiChatUsageRule::OpenAi,
    },
    Case {
        file: "openai-chat--text--usage.sse",
        provider: Provider::OpenAi,
        rule: OpenAiChatUsageRule::OpenAi,
    },
    Case {
        file: "openai-chat--tool-call--single.sse",
        provider: Provider::OpenAi,
        rule: OpenAiChatUsageRule::OpenAi,
    },
    Case {
        file: "openai-chat--tool-call--strict.sse",
        provider: Provider::OpenAi,
        rule: OpenAiChatUsageRule::OpenAi,
    },
    Case {
        file: "openai-chat--tool-calls--parallel.sse",
        provider: Provider::OpenAi,
        rule: OpenAiChatUsageRule::OpenAi,
    },
    Case {
        file: "openai-compatible--deepseek--reasoning-tool-call.jsonl",
        provider: Provider::OpenAiCompat,
        rule: OpenAiChatUsageRule::DeepSeek,
    },
    Case {
        file: "openai-compatible--groq--tool-call.jsonl",
        provider: Provider::OpenAiCompat,
        rule: OpenAiChatUsageRule::OpenAiCompatible,
    },
    Case {
        file: "openai-compatible--xai--reasoning-tool-call.jsonl",
        provider: Provider::OpenAiCompat,
        rule: OpenAiChatUsageRule::Xai,
    },
];

fn decoder(case: &Case) -> OpenAiChatDecoder {
    OpenAiChatDecoder::new(case.provider).with_usage_rule(case.rule)
}

fn collect(parts: &[StreamPart]) -> ModelResponse {
    let mut c = ResponseCollector::new();
    for p in parts {
        c.push(p);
    }
    c.finish()
}

fn decode(case: &Case) -> Vec<StreamPart> {
    decode_body(
        decoder(case),
        &stream_body(case.file),
        DEFAULT_MAX_EVENT_BYTES,
    )
    .unwrap()
}

fn expected(file: &str) -> Value {
    let all: Value =
        serde_json::from_slice(&read_testdata("streams/expected-decoded.json")).unwrap();
    all["streams"][file].clone()
}

/// The documented mapping from the reference decoder's raw `usage` to ours: the same
/// `chatcost` rule the decoder was configured with.
fn normalized(rule: OpenAiChatUsageRule, raw: &Value) -> ChatMessageUsage {
    match rule {
        OpenAiChatUsageRule::OpenAi => {
            normalize::openai_chat(&serde_json::from_value(raw.clone()).unwrap()).unwrap()
        }
        OpenAiChatUsageRule::Xai => {
            normalize::xai_chat(&serde_json::from_value(raw.clone()).unwrap()).unwrap()
        }
        OpenAiChatUsageRule::DeepSeek => {
            normalize::deepseek_chat(&serde_json::from_value(raw.clone()).unwrap()).unwrap()
        }
        _ => normalize::openai_compatible_chat(&serde_json::from_value(raw.clone()).unwrap())
            .unwrap(),
    }
}

fn usage(input: i64, output: i64, cache_read: i64, reasoning: Option<i64>) -> ChatMessageUsage {
    ChatMessageUsage {
        input_tokens: Some(input),
        output_tokens: Some(output),
        total_tokens: Some(input + output + cache_read),
        reasoning_tokens: reasoning,
        cache_creation_tokens: None,
        cache_read_tokens: Some(cache_read),
        context_limit: None,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn settings() -> ClientSettings {
    ClientSettings {
        http: http(),
        ..ClientSettings::default()
    }
}

fn model_at(provider: Provider, base_url: &str, settings: ClientSettings) -> OpenAiChatModel {
    OpenAiChatModel::new(
        provider,
        "test-model",
        Some(SecretString::new(KEY)),
        Some(&format!("{base_url}/v1")),
        settings,
    )
    .unwrap()
}

fn hello() -> ModelRequest {
    ModelRequest {
        messages: vec![Message::user_text("Hello")],
        ..ModelRequest::default()
    }
}

/// An SSE body with one `data:` event per payload.
fn sse(payloads: &[&str]) -> Vec<u8> {
    payloads
        .iter()
        .map(|p| format!("data: {p}\n\n"))
        .collect::<String>()
        .into_bytes()
}

fn decode_synthetic(payloads: &[&str]) -> Result<Vec<StreamPart>, chaterror::ProviderError> {
    decode_body(
        OpenAiChatDecoder::new(Provider::OpenAiCompat),
        &sse(payloads),
        DEFAULT_MAX_EVENT_BYTES,
    )
}

fn finish_of(parts: &[StreamPart]) -> (FinishReason, ChatMessageUsage) {
    match parts.last() {
        Some(StreamPart::Finish { reason, usage }) => (reason.clone(), *usage),
        other => panic!("last part is not Finish: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Recorded streams
// ---------------------------------------------------------------------------------------

#[test]
fn every_chat_fixture_is_covered() {
    // Sorted by name already.
    let on_disk: Vec<String> = testdata_file_names("streams")
        .into_iter()
        .filter(|n| n.starts_with("openai-chat--") || n.starts_with("openai-compatible--"))
        .collect();
    let mut covered: Vec<String> = CASES.iter().map(|c| c.file.to_owned()).collect();
    covered.sort();
    assert_eq!(on_disk, covered);
}

#[test]
fn fixtures_decode_identically_under_every_chunking() {
    for case in &CASES {
        let body = stream_body(case.file);
        let whole = decode(case);
        assert_eq!(
            decode_chunked(decoder(case), &chunk(&body, None, 0)).unwrap(),
            whole,
            "{}: whole body",
            case.file
        );
        for size in [1, 2, 3, 7, 64] {
            let got = decode_chunked(decoder(case), &chunk(&body, Some(size), 0)).unwrap();
            assert_eq!(got, whole, "{}: chunk size {size}", case.file);
        }
        for seed in 1..=20 {
            let got = decode_chunked(decoder(case), &chunk(&body, Some(0), seed)).unwrap();
            assert_eq!(got, whole, "{}: random seed {seed}", case.file);
        }
    }
}

#[test]
fn fixtures_match_expected_decoded() {
    for case in &CASES {
        let want = expected(case.file);
        let parts = decode(case);
        let got = collect(&parts);
        assert_eq!(got.text, want["text"].as_str().unwrap(), "{}", case.file);
        assert_eq!(
            got.reasoning,
            want["reasoning_text"].as_str().unwrap_or_default(),
            "{}",
            case.file
        );
        let want_calls = want["tool_calls"].as_array().unwrap();
        assert_eq!(got.tool_calls.len(), want_calls.len(), "{}", case.file);
        for (call, w) in got.tool_calls.iter().zip(want_calls) {
            assert_eq!(call.id, w["id"].as_str().unwrap());
            assert_eq!(call.name, w["name"].as_str().unwrap());
            // Arguments are the concatenated fragments, byte for byte…
            assert_eq!(call.arguments, w["arguments"].as_str().unwrap());
            assert!(call.arguments_valid);
            // …and parse to the same value.
            let parsed: Value = serde_json::from_str(&call.arguments).unwrap();
            let want_parsed: Value =
                serde_json::from_str(w["arguments"].as_str().unwrap()).unwrap();
            assert_eq!(parsed, want_parsed);
            assert!(!call.provider_executed);
        }
        // Finish reasons: the provider's value, except a refusal (documented: `stop` after
        // refusal text is reported as a content filter stop).
        let raw_reason = want["finish_reason"].as_str().unwrap();
        let want_reason = match (case.file, raw_reason) {
            ("openai-chat--refusal.sse", "stop") => FinishReason::ContentFilter,
            (_, "stop") => FinishReason::Stop,
            (_, "tool_calls") => FinishReason::ToolCalls,
            (_, "length") => FinishReason::Length,
            (_, other) => panic!("unexpected reason {other}"),
        };
        assert_eq!(got.finish_reason, Some(want_reason), "{}", case.file);
        // Usage: the raw object of the reference decoder, normalized with the case's rule.
        assert_eq!(
            got.usage,
            normalized(case.rule, &want["usage"]),
            "{}",
            case.file
        );
        assert!(
            got.response_id.is_some() && got.model.is_some(),
            "{}",
            case.file
        );
    }
}

#[test]
fn fixture_usage_is_normalized_per_vendor() {
    let by_file = |file: &str| {
        let case = CASES.iter().find(|c| c.file == file).unwrap();
        finish_of(&decode(case)).1
    };
    assert_eq!(
        by_file("openai-chat--text--usage.sse"),
        usage(14, 30, 0, Some(0))
    );
    assert_eq!(
        by_file("openai-chat--text--obfuscation-usage.jsonl"),
        usage(16, 300, 0, Some(0))
    );
    // xAI: completion (26) excludes reasoning (227); we bill both: 1 + 253 + 306 = 560.
    assert_eq!(
        by_file("openai-compatible--xai--reasoning-tool-call.jsonl"),
        usage(1, 253, 306, Some(227))
    );
    // DeepSeek: input = cache miss, cache read = cache hit.
    assert_eq!(
        by_file("openai-compatible--deepseek--reasoning-tool-call.jsonl"),
        usage(19, 83, 320, Some(39))
    );
    // Groq: usage also under x_groq.usage; no details reported.
    assert_eq!(
        by_file("openai-compatible--groq--tool-call.jsonl"),
        usage(210, 15, 0, None)
    );

    // Without knowing the vendor, the OpenAI Compatible rule reaches the same numbers for
    // xAI (from the totals) and DeepSeek (from the cache split)…
    for file in [
        "openai-compatible--xai--reasoning-tool-call.jsonl",
        "openai-compatible--deepseek--reasoning-tool-call.jsonl",
    ] {
        let generic = Case {
            file,
            provider: Provider::OpenAiCompat,
            rule: OpenAiChatUsageRule::OpenAiCompatible,
        };
        assert_eq!(finish_of(&decode(&generic)).1, by_file(file), "{file}");
    }
    // …while OpenAI's rule would under-bill xAI.
    let openai_rule = Case {
        file: "openai-compatible--xai--reasoning-tool-call.jsonl",
        provider: Provider::OpenAiCompat,
        rule: OpenAiChatUsageRule::OpenAi,
    };
    assert_eq!(finish_of(&decode(&openai_rule)).1.output_tokens, Some(26));
}

#[test]
fn fixture_part_sequences_are_well_formed() {
    for case in &CASES {
        let parts = decode(case);
        assert!(
            matches!(parts.first(), Some(StreamPart::ResponseMetadata { .. })),
            "{}: metadata first",
            case.file
        );
        let finishes = parts
            .iter()
            .filter(|p| matches!(p, StreamPart::Finish { .. }))
            .count();
        assert_eq!(finishes, 1, "{}", case.file);
        assert!(matches!(parts.last(), Some(StreamPart::Finish { .. })));
        let metadata = parts
            .iter()
            .filter(|p| matches!(p, StreamPart::ResponseMetadata { .. }))
            .count();
        assert_eq!(metadata, 1, "{}", case.file);
        // Each call: one start, then deltas that add up to its arguments, then the call.
        for call in collect(&parts).tool_calls {
            let start = parts
                .iter()
                .position(|p| matches!(p, StreamPart::ToolCallStart { id, .. } if *id == call.id))
                .unwrap();
            let end = parts
                .iter()
                .position(|p| matches!(p, StreamPart::ToolCall(c) if c.id == call.id))
                .unwrap();
            assert!(start < end);
            let streamed: String = parts
                .iter()
                .filter_map(|p| match p {
                    StreamPart::ToolCallDelta { id, delta, .. } if *id == call.id => {
                        Some(delta.as_str())
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(streamed, call.arguments, "{}", case.file);
        }
        // Reasoning blocks are closed before anything else starts.
        if case.file.contains("reasoning") {
            let end = parts
                .iter()
                .position(|p| matches!(p, StreamPart::ReasoningEnd { .. }))
                .unwrap();
            let last_reasoning = parts
                .iter()
                .rposition(|p| matches!(p, StreamPart::ReasoningDelta { .. }))
                .unwrap();
            let first_call = parts
                .iter()
                .position(|p| matches!(p, StreamPart::ToolCallStart { .. }))
                .unwrap();
            assert!(last_reasoning < end && end < first_call, "{}", case.file);
        }
    }
}

#[test]
fn parallel_calls_get_their_own_blocks() {
    let case = CASES
        .iter()
        .find(|c| c.file == "openai-chat--tool-calls--parallel.sse")
        .unwrap();
    let starts: Vec<(u32, String)> = decode(case)
        .into_iter()
        .filter_map(|p| match p {
            StreamPart::ToolCallStart { block, name, .. } => Some((block, name)),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        [
            (0, "GetWeatherArgs".to_owned()),
            (1, "get_stock_price".to_owned())
        ]
    );
}

#[tokio::test]
async fn fixtures_end_to_end_through_local_server() {
    for case in &CASES {
        let body = stream_body(case.file);
        let want_parts = decode(case);
        let want = collect(&want_parts);
        let mut replies = vec![Reply::sse(chunk(&body, None, 0))];
        for seed in 1..=3 {
            replies.push(Reply::sse(chunk(&body, Some(0), seed)));
        }
        // One-byte chunks end to end for the small bodies (the decoder tests above already
        // cover every body at every size); 7-byte chunks keep the big ones quick.
        let tiny = if body.len() > 16 * 1024 { 7 } else { 1 };
        replies.push(Reply::sse(chunk(&body, Some(tiny), 0)));
        let server = ReplayServer::start(replies).await;
        let model =
            model_at(case.provider, &server.base_url, settings()).with_usage_rule(case.rule);
        // Whole body: the exact part sequence.
        let parts: Vec<StreamPart> = model.stream(hello()).map(|p| p.unwrap()).collect().await;
        assert_eq!(parts, want_parts, "{}", case.file);
        // Random and one-byte chunking: the same response.
        for attempt in 0..4 {
            let got = model.generate(hello()).await.unwrap();
            assert_eq!(got, want, "{} attempt {attempt}", case.file);
        }
        let requests = server.requests();
        assert_eq!(requests.len(), 5);
        assert!(requests.iter().all(|r| r.path == "/v1/chat/completions"));
    }
}

// ---------------------------------------------------------------------------------------
// Provider errors
// ---------------------------------------------------------------------------------------

struct ErrorCase {
    name: &'static str,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    kind: ChatErrorKind,
    retryable: bool,
    retry_after: Duration,
}

fn canonical(name: &str) -> (u16, Vec<u8>) {
    let all: Value = serde_json::from_slice(&read_testdata(
        "errors/canonical-shapes--third-party-quotes.json",
    ))
    .unwrap();
    let shape = &all[name];
    (
        u16::try_from(shape["status"].as_u64().unwrap()).unwrap(),
        serde_json::to_vec(&shape["body"]).unwrap(),
    )
}

fn error_cases() -> Vec<ErrorCase> {
    // The OpenAI fixtures are bodies only (manifest: "recorded (body only)"): served with
    // the manifest's status and no headers.
    let manifest: Value = serde_json::from_slice(&read_testdata("errors/manifest.json")).unwrap();
    let status_of = |file: &str| {
        let entry = manifest
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["file"] == format!("errors/{file}"))
            .unwrap();
        assert_eq!(entry["authority"], "recorded (body only)");
        u16::try_from(entry["http_status"].as_u64().unwrap()).unwrap()
    };
    let recorded = |file: &'static str, kind: ChatErrorKind, retryable: bool| ErrorCase {
        name: file,
        status: status_of(file),
        headers: Vec::new(),
        body: read_testdata(&format!("errors/{file}")),
        kind,
        retryable,
        retry_after: Duration::ZERO,
    };
    let (ctx_status, ctx_body) = canonical("openai_400_context_length_exceeded");
    let (auth_status, auth_body) = canonical("openai_401_invalid_api_key");
    vec![
        recorded(
            "openai--400-unsupported-parameter-max-tokens.json",
            ChatErrorKind::Generic,
            false,
        ),
        recorded(
            "openai--400-unsupported-parameter-temperature.json",
            ChatErrorKind::Generic,
            false,
        ),
        recorded(
            "openai--429-insufficient-quota.json",
            ChatErrorKind::UsageLimit,
            false,
        ),
        ErrorCase {
            name: "canonical openai_400_context_length_exceeded",
            status: ctx_status,
            headers: Vec::new(),
            body: ctx_body,
            kind: ChatErrorKind::Config,
            retryable: false,
            retry_after: Duration::ZERO,
        },
        ErrorCase {
            name: "canonical openai_401_invalid_api_key",
            status: auth_status,
            headers: Vec::new(),
            body: auth_body,
            kind: ChatErrorKind::Auth,
            retryable: false,
            retry_after: Duration::ZERO,
        },
        // Synthetic (no recorded OpenAI 429 with headers exists in the fixtures): OpenAI's
        // `retry-after-ms` wins over `retry-after`.
        ErrorCase {
            name: "synthetic 429 rate limit with retry-after-ms",
            status: 429,
            headers: vec![
                ("retry-after-ms".into(), "1500".into()),
                ("retry-after".into(), "9".into()),
            ],
            body: br#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#.to_vec(),
            kind: ChatErrorKind::RateLimit,
            retryable: true,
            retry_after: Duration::from_millis(1500),
        },
        ErrorCase {
            name: "synthetic 503 with retry-after seconds",
            status: 503,
            headers: vec![("retry-after".into(), "4".into())],
            body: b"upstream unavailable".to_vec(),
            kind: ChatErrorKind::Timeout,
            retryable: true,
            retry_after: Duration::from_secs(4),
        },
    ]
}

#[tokio::test]
async fn http_errors_classify_from_status_headers_and_body() {
    for case in error_cases() {
        let mut headers = case.headers.clone();
        headers.push(("content-type".into(), "application/json".into()));
        let server =
            ReplayServer::start(vec![Reply::status(case.status, headers, case.body.clone())]).await;
        let model = model_at(Provider::OpenAi, &server.base_url, settings());
        let err = model.generate(hello()).await.unwrap_err();
        assert_eq!(err.status(), Some(case.status), "{}", case.name);
        assert_eq!(err.body(), case.body.as_slice(), "{}", case.name);
        let c = chaterror::classify(&err);
        assert_eq!(c.kind(), Some(&case.kind), "{}", case.name);
        assert_eq!(c.is_retryable(), case.retryable, "{}", case.name);
        assert_eq!(c.retry_after(), case.retry_after, "{}", case.name);
        assert_eq!(c.provider(), "openai", "{}", case.name);
        assert_eq!(c.status(), Some(case.status), "{}", case.name);
        assert!(!format!("{err:?} {err}").contains(KEY), "{}", case.name);
    }
}

#[tokio::test]
async fn recorded_400_detail_is_the_provider_message() {
    let body = read_testdata("errors/openai--400-unsupported-parameter-max-tokens.json");
    let server = ReplayServer::start(vec![Reply::status(400, Vec::new(), body)]).await;
    let model = model_at(Provider::OpenAiCompat, &server.base_url, settings());
    let c = chaterror::classify(&model.generate(hello()).await.unwrap_err());
    assert_eq!(
        c.detail(),
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    );
    assert_eq!(c.provider(), "openai-compat");
}

#[tokio::test]
async fn in_stream_error_chunks_become_classified_provider_errors() {
    let text_chunk = r#"{"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
    let quota = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let openrouter = r#"{"id":"gen-1","object":"chat.completion.chunk","error":{"code":429,"message":"Provider returned error: rate limited upstream"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#;
    let overloaded = "event: error\ndata: {\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let cases: Vec<(Vec<u8>, ChatErrorKind, bool, Option<u16>)> = vec![
        (
            sse(&[text_chunk, quota]),
            ChatErrorKind::UsageLimit,
            false,
            None,
        ),
        (
            sse(&[openrouter]),
            ChatErrorKind::RateLimit,
            true,
            Some(429),
        ),
        (
            [sse(&[text_chunk]), overloaded.as_bytes().to_vec()].concat(),
            ChatErrorKind::Overloaded,
            true,
            None,
        ),
    ];
    for (body, kind, retryable, status) in cases {
        let server = ReplayServer::start(vec![Reply::sse(vec![body.clone()])]).await;
        let model = model_at(Provider::OpenRouter, &server.base_url, settings());
        let results: Vec<_> = model.stream(hello()).collect().await;
        let err = results.last().unwrap().as_ref().unwrap_err();
        assert!(
            err.to_string().starts_with("openai chat stream error: "),
            "{err}"
        );
        assert!(!err.body().is_empty());
        assert_eq!(err.status(), status);
        let c = chaterror::classify(err);
        assert_eq!(c.kind(), Some(&kind), "{err}");
        assert_eq!(c.is_retryable(), retryable, "{err}");
        assert_eq!(c.provider(), "openrouter");
        // The error ends the stream: no Finish.
        assert!(!results
            .iter()
            .any(|r| matches!(r, Ok(StreamPart::Finish { .. }))));
    }
}

// ---------------------------------------------------------------------------------------
// Timeouts, early close, limits
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn slow_first_byte_is_a_retryable_startup_timeout() {
    let mut reply = Reply::sse(vec![stream_body("openai-chat--text--usage.sse")]);
    reply.delay_first_byte = Duration::from_secs(5);
    let server = ReplayServer::start(vec![reply]).await;
    let settings = ClientSettings {
        startup_timeout: Duration::from_millis(200),
        ..settings()
    };
    let model = model_at(Provider::OpenAi, &server.base_url, settings);
    let started = std::time::Instant::now();
    let err = model.generate(hello()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "did not wait for the body"
    );
    let c = chaterror::classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::StartupTimeout));
    assert!(c.is_retryable());
    assert_eq!(c.message(), "OpenAI did not start responding in time.");
}

/// The text fixture's events up to (not including) the one carrying `finish_reason`.
fn events_before_finish() -> Vec<u8> {
    let body = String::from_utf8(stream_body("openai-chat--text--usage.sse")).unwrap();
    let kept: Vec<&str> = body
        .split("\n\n")
        .take_while(|e| !e.contains("\"finish_reason\":\"stop\""))
        .collect();
    format!("{}\n\n", kept.join("\n\n")).into_bytes()
}

#[tokio::test]
async fn body_closed_before_finish_reason_is_a_retryable_timeout() {
    let truncated = events_before_finish();
    let server = ReplayServer::start(vec![Reply::sse(chunk(&truncated, Some(0), 5))]).await;
    let model = model_at(Provider::OpenAi, &server.base_url, settings());
    let results: Vec<_> = model.stream(hello()).collect().await;
    // The text that did arrive was streamed before the error.
    assert!(results
        .iter()
        .any(|r| matches!(r, Ok(StreamPart::TextDelta { .. }))));
    let err = results.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.to_string(), OPENAI_CHAT_STREAM_CLOSED_ERROR);
    let c = chaterror::classify(err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::Timeout));
    assert!(c.is_retryable());
    assert_eq!(c.provider(), "openai");
    assert_eq!(
        c.message(),
        "OpenAI stream closed unexpectedly before the response completed."
    );
    // An empty 200 body too.
    let err = decode_body(
        OpenAiChatDecoder::new(Provider::OpenAiCompat),
        b"",
        DEFAULT_MAX_EVENT_BYTES,
    )
    .unwrap_err();
    let c = chaterror::classify(&err);
    assert_eq!(
        c.message(),
        "OpenAI Compatible stream closed unexpectedly before the response completed."
    );
}

#[test]
fn finish_reason_then_clean_end_without_done_is_complete() {
    let body = String::from_utf8(stream_body("openai-chat--text--usage.sse")).unwrap();
    // Everything but `data: [DONE]`: usage included.
    let without_done = body.replace("data: [DONE]", "");
    let case = &CASES[3];
    assert_eq!(case.file, "openai-chat--text--usage.sse");
    let lenient = decode_body(
        decoder(case),
        without_done.as_bytes(),
        DEFAULT_MAX_EVENT_BYTES,
    )
    .unwrap();
    assert_eq!(lenient, decode(case));
    // Cut right after the finish chunk: complete, but the usage chunk never came.
    let cut: Vec<&str> = body.split("\n\n").collect();
    let finish_at = cut
        .iter()
        .position(|e| e.contains("\"finish_reason\":\"stop\""))
        .unwrap();
    let upto = format!("{}\n\n", cut[..=finish_at].join("\n\n"));
    let parts = decode_body(decoder(case), upto.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap();
    assert_eq!(
        finish_of(&parts),
        (FinishReason::Stop, ChatMessageUsage::default())
    );
}

#[tokio::test]
async fn oversized_event_is_a_clear_error() {
    let body = stream_body("openai-chat--text--usage.sse");
    let server = ReplayServer::start(vec![Reply::sse(chunk(&body, Some(0), 3))]).await;
    let settings = ClientSettings {
        max_event_bytes: 100,
        ..settings()
    };
    let model = model_at(Provider::OpenAi, &server.base_url, settings);
    let err = model.generate(hello()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "stream event exceeds the maximum size of 100 bytes"
    );
    assert_eq!(err.provider(), Some("openai"));
    let err = decode_body(OpenAiChatDecoder::new(Provider::OpenAi), &body, 100).unwrap_err();
    assert!(err.to_string().contains("maximum size of 100 bytes"));
}

// ---------------------------------------------------------------------------------------
// Decoding rules on synthetic streams
// ---------------------------------------------------------------------------------------

#[test]
fn sse_framing_leniency() {
    let body = ": keep-alive\r\ndata:{\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\r\n\r\n: OPENROUTER PROCESSING\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\ndata:[DONE]\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ignored\"}}]}\n\n";
    let parts = decode_body(
        OpenAiChatDecoder::new(Provider::OpenRouter),
        body.as_bytes(),
        DEFAULT_MAX_EVENT_BYTES,
    )
    .unwrap();
    let r = collect(&parts);
    assert_eq!(r.text, "ab");
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    assert_eq!(r.usage, ChatMessageUsage::default());
    assert_eq!(r.response_id.as_deref(), Some("c1"));
}

#[test]
fn finish_reason_mapping() {
    let cases = [
        ("stop", FinishReason::Stop),
        ("length", FinishReason::Length),
        ("tool_calls", FinishReason::ToolCalls),
        ("function_call", FinishReason::ToolCalls),
        ("content_filter", FinishReason::ContentFilter),
        ("eos", FinishReason::Other("eos".into())),
        ("error", FinishReason::Other("error".into())),
    ];
    for (raw, want) in cases {
        let chunk = format!(
            r#"{{"choices":[{{"index":0,"delta":{{"content":"x"}},"finish_reason":"{raw}"}}]}}"#
        );
        let parts = decode_synthetic(&[&chunk, "[DONE]"]).unwrap();
        assert_eq!(finish_of(&parts).0, want, "{raw}");
    }
}

#[test]
fn done_without_finish_reason_infers_it() {
    let text = r#"{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#;
    let call = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{}"}}]}}]}"#;
    // An empty string is not a finish reason.
    let empty = r#"{"choices":[{"index":0,"delta":{},"finish_reason":""}]}"#;
    let parts = decode_synthetic(&[text, empty, "[DONE]"]).unwrap();
    assert_eq!(finish_of(&parts).0, FinishReason::Stop);
    let parts = decode_synthetic(&[text, call, "[DONE]"]).unwrap();
    assert_eq!(finish_of(&parts).0, FinishReason::ToolCalls);
    // Without [DONE] and without a finish reason it is the closed-early error.
    let err = decode_synthetic(&[text, empty]).unwrap_err();
    assert_eq!(err.to_string(), OPENAI_CHAT_STREAM_CLOSED_ERROR);
}

#[test]
fn tool_call_deltas_merge_by_index() {
    let chunks = [
        // Arguments before the name; no id yet.
        r#"{"id":"chatcmpl-9","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"a\":"}}]}}]}"#,
        // The first call, whole in one delta (Groq style), interleaved.
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_A","type":"function","function":{"name":"alpha","arguments":"{}"}}]}}]}"#,
        // The second call gets its id and name; a repeated name is not appended.
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_B","function":{"name":"beta","arguments":"1"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"name":"beta","arguments":"}"}}]}}]}"#,
        // A third call that never gets arguments; a fourth with no id at all.
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":2,"id":"call_C","function":{"name":"gamma"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":3,"function":{"name":"delta","arguments":"{\"x\":"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ];
    let parts = decode_synthetic(&chunks).unwrap();
    let calls = collect(&parts).tool_calls;
    let summary: Vec<(&str, &str, &str, bool)> = calls
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                c.name.as_str(),
                c.arguments.as_str(),
                c.arguments_valid,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("call_B", "beta", r#"{"a":1}"#, true),
            ("call_A", "alpha", "{}", true),
            ("call_C", "gamma", "{}", true),
            ("chatcmpl-9-call-3", "delta", r#"{"x":"#, false),
        ]
    );
    // The buffered fragment is streamed right after the start, then the rest.
    let b_deltas: Vec<&str> = parts
        .iter()
        .filter_map(|p| match p {
            StreamPart::ToolCallDelta { id, delta, .. } if id == "call_B" => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(b_deltas, [r#"{"a":1"#, "}"]);
    let finish = finish_of(&parts).0;
    assert_eq!(finish, FinishReason::ToolCalls);
}

#[test]
fn tool_call_deltas_without_index() {
    let chunks = [
        r#"{"choices":[{"delta":{"tool_calls":[{"id":"x1","function":{"name":"one","arguments":"{\"a\""}}]}}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":":1}"}}]}}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"id":"x2","function":{"name":"two","arguments":{"b":2}}}]}}]}"#,
        r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
    ];
    let calls = collect(&decode_synthetic(&chunks).unwrap()).tool_calls;
    let got: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c.id.as_str(), c.arguments.as_str()))
        .collect();
    assert_eq!(got, [("x1", r#"{"a":1}"#), ("x2", r#"{"b":2}"#)]);
}

#[test]
fn truncated_arguments_are_kept_but_marked_invalid() {
    let chunks = [
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"write","arguments":"{\"text\": \"unfinis"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#,
        "[DONE]",
    ];
    let parts = decode_synthetic(&chunks).unwrap();
    let call = &collect(&parts).tool_calls[0];
    assert_eq!(call.arguments, r#"{"text": "unfinis"#);
    assert!(!call.arguments_valid);
    assert!(call.arguments_json().is_none());
    assert_eq!(finish_of(&parts).0, FinishReason::Length);
}

#[test]
fn reasoning_fields_and_blocks() {
    let chunks = [
        // OpenRouter may send both; reasoning_content wins so nothing is doubled.
        r#"{"id":"r1","model":"m","choices":[{"index":0,"delta":{"reasoning":"think ","reasoning_content":"think "}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"reasoning":"more"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"Ans"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"wer"}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"reasoning":"again"}}]}"#,
        // Other choices are ignored.
        r#"{"choices":[{"index":1,"delta":{"content":"other choice"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ];
    let parts = decode_synthetic(&chunks).unwrap();
    let shape: Vec<String> = parts
        .iter()
        .map(|p| match p {
            StreamPart::ResponseMetadata { .. } => "meta".to_owned(),
            StreamPart::ReasoningDelta { block, delta } => format!("r{block}:{delta}"),
            StreamPart::ReasoningEnd { block, .. } => format!("r{block}:end"),
            StreamPart::TextDelta { block, delta } => format!("t{block}:{delta}"),
            StreamPart::Finish { reason, .. } => format!("finish:{reason}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        shape,
        [
            "meta",
            "r0:think ",
            "r0:more",
            "r0:end",
            "t1:Answer",
            "r2:again",
            "r2:end",
            "finish:stop"
        ]
    );
    let r = collect(&parts);
    assert_eq!(r.reasoning, "think moreagain");
    assert_eq!(r.reasoning_blocks.len(), 2);
}

#[test]
fn usage_sources_last_one_wins() {
    // vLLM-style cumulative usage on every chunk, then Groq-style x_groq usage only.
    let chunks = [
        r#"{"choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
        r#"{"choices":[],"usage":null,"x_groq":{"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}}"#,
        "[DONE]",
    ];
    let parts = decode_synthetic(&chunks).unwrap();
    assert_eq!(finish_of(&parts).1, usage(5, 3, 0, None));
    // Corrupt usage (cached above prompt) leaves the call unpriced rather than failing.
    let chunks = [
        r#"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":9}}}"#,
        "[DONE]",
    ];
    let parts = decode_synthetic(&chunks).unwrap();
    assert_eq!(
        finish_of(&parts),
        (FinishReason::Stop, ChatMessageUsage::default())
    );
}

#[test]
fn malformed_chunks_and_limits_are_errors() {
    let err = decode_synthetic(&["{not json"]).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("openai chat stream sent a chunk that is not JSON"));
    let many: Vec<String> = (0..=OPENAI_CHAT_MAX_TOOL_CALLS)
        .map(|i| {
            format!(
                r#"{{"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":{i},"id":"c{i}","function":{{"name":"f","arguments":"{{}}"}}}}]}}}}]}}"#
            )
        })
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = decode_synthetic(&refs).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("openai chat stream has more than {OPENAI_CHAT_MAX_TOOL_CALLS} tool calls")
    );
    assert!(
        decode_synthetic(&refs[..OPENAI_CHAT_MAX_TOOL_CALLS]).is_err(),
        "no finish"
    );
}

// ---------------------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------------------

fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: "Current weather for a city.".into(),
        input_schema: RawJson::from_json(
            r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
        )
        .unwrap(),
    }
}

fn conversation() -> ModelRequest {
    ModelRequest {
        system: vec!["You are helpful.".into(), "  ".into(), "Be brief.".into()],
        messages: vec![
            Message {
                role: Role::User,
                content: vec![
                    Part::Text {
                        text: "What is in this picture, and the weather?".into(),
                    },
                    Part::File {
                        media_type: "image/png".into(),
                        data: vec![0x89, b'P', b'N', b'G'],
                        filename: Some("cat.png".into()),
                    },
                    Part::File {
                        media_type: "text/plain; charset=utf-8".into(),
                        data: b"notes".to_vec(),
                        filename: Some("notes.txt".into()),
                    },
                ],
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::Reasoning {
                        text: "not replayed".into(),
                        signature: None,
                        redacted_data: None,
                        item_id: None,
                        encrypted_content: None,
                    },
                    Part::Text {
                        text: "Checking.".into(),
                    },
                    Part::ToolCall {
                        id: "call_1".into(),
                        name: "get_weather".into(),
                        arguments: RawJson::from_json(r#"{"city": "Paris"}"#).unwrap(),
                        provider_executed: false,
                        thought_signature: None,
                    },
                    Part::ToolCall {
                        id: "call_2".into(),
                        name: "get_weather".into(),
                        arguments: RawJson::from_json(r#"{"city":"Rome"}"#).unwrap(),
                        provider_executed: false,
                        thought_signature: None,
                    },
                    Part::ToolCall {
                        id: "ws_1".into(),
                        name: "web_search".into(),
                        arguments: RawJson::empty_object(),
                        provider_executed: true,
                        thought_signature: None,
                    },
                ],
            },
            Message {
                role: Role::Tool,
                content: vec![
                    Part::ToolResult {
                        tool_call_id: "call_1".into(),
                        name: "get_weather".into(),
                        output: RawJson::from_value("sunny, 21°C").unwrap(),
                        is_error: false,
                    },
                    Part::ToolResult {
                        tool_call_id: "call_2".into(),
                        name: "get_weather".into(),
                        output: RawJson::from_json(r#"{"temp": 18, "sky": "rain"}"#).unwrap(),
                        is_error: true,
                    },
                    Part::ToolResult {
                        tool_call_id: "ws_1".into(),
                        name: "web_search".into(),
                        output: RawJson::null(),
                        is_error: false,
                    },
                ],
            },
            Message::user_text("Thanks"),
        ],
        tools: vec![weather_tool()],
        tool_choice: Some(ToolChoice::Tool("get_weather".into())),
        settings: CallSettings {
            max_output_tokens: Some(256),
            temperature: Some(0.25),
            top_p: Some(0.5),
            top_k: Some(40),
            presence_penalty: Some(0.5),
            frequency_penalty: Some(0.25),
        },
        provider_options: None,
        previous_response_id: None,
        correlation: CorrelationHeaders {
            owner_id: Some("owner-1".into()),
            chat_id: Some("chat-1".into()),
            subchat_id: Some("sub-1".into()),
            workspace_id: Some("ws-1".into()),
        },
    }
}

#[tokio::test]
async fn request_wire_format_headers_and_secrecy() {
    let server = ReplayServer::start(vec![Reply::sse(vec![stream_body(
        "openai-chat--text--usage.sse",
    )])])
    .await;
    let settings = ClientSettings {
        user_agent: "chatd-test/1.0 (linux/x86_64)".into(),
        extra_headers: vec![("X-Extra".into(), "yes".into())],
        ..settings()
    };
    let model = OpenAiChatModel::new(
        Provider::OpenAiCompat,
        " my-model ",
        Some(SecretString::new(KEY)),
        Some(&format!("{}/v1/", server.base_url)),
        settings,
    )
    .unwrap();
    assert_eq!(model.model_id(), "my-model");
    assert_eq!(
        model.endpoint(),
        format!("{}/v1/chat/completions", server.base_url)
    );
    let debug = format!("{model:?}");
    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("[REDACTED]"));

    model.generate(conversation()).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.query, None);
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("accept"),
        Some("text/event-stream, application/json")
    );
    assert_eq!(
        req.header("user-agent"),
        Some("chatd-test/1.0 (linux/x86_64)")
    );
    assert_eq!(req.header("x-coder-owner-id"), Some("owner-1"));
    assert_eq!(req.header("x-coder-chat-id"), Some("chat-1"));
    assert_eq!(req.header("x-coder-subchat-id"), Some("sub-1"));
    assert_eq!(req.header("x-coder-workspace-id"), Some("ws-1"));
    assert_eq!(req.header("x-extra"), Some("yes"));
    // The key travels only in Authorization.
    for (name, value) in &req.headers {
        if !name.eq_ignore_ascii_case("authorization") {
            assert!(!value.contains(KEY), "{name}");
        }
    }
    assert!(!String::from_utf8_lossy(&req.body).contains(KEY));

    let body = req.json();
    let want = json!({
        "model": "my-model",
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": 256,
        "temperature": 0.25,
        "top_p": 0.5,
        "top_k": 40,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "tools": [{
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": {"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},
            },
        }],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "messages": [
            {"role": "system", "content": "You are helpful.\n\nBe brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture, and the weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
                {"type": "text", "text": "<file name=\"notes.txt\" media_type=\"text/plain\">\nnotes\n</file>"},
            ]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21°C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "{\"temp\":18,\"sky\":\"rain\"}"},
            {"role": "user", "content": "Thanks"},
        ],
    });
    assert_eq!(body, want);
}

fn options(json: &str) -> Option<chatprovider::ProviderRequestOptions> {
    let parsed: codersdk::ChatModelProviderOptions = serde_json::from_str(json).unwrap();
    provider_request_options(&parsed, false)
}

fn body_for(provider: Provider, model: &str, request: &ModelRequest) -> Value {
    OpenAiChatModel::new(
        provider,
        model,
        None,
        Some("https://example.test/v1"),
        ClientSettings::default(),
    )
    .unwrap()
    .request_body(request)
}

#[test]
fn max_tokens_field_per_provider_and_model() {
    let request = ModelRequest {
        settings: CallSettings {
            max_output_tokens: Some(100),
            ..CallSettings::default()
        },
        ..hello()
    };
    let field = |provider, model| {
        let body = body_for(provider, model, &request);
        let has = |f: &str| body.get(f).is_some();
        match (has("max_tokens"), has("max_completion_tokens")) {
            (true, false) => "max_tokens",
            (false, true) => "max_completion_tokens",
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        field(Provider::OpenAi, "gpt-3.5-turbo"),
        "max_completion_tokens"
    );
    assert_eq!(field(Provider::OpenAi, "o3-mini"), "max_completion_tokens");
    assert_eq!(field(Provider::Azure, "o4-mini"), "max_completion_tokens");
    assert_eq!(field(Provider::Azure, "gpt-5.1"), "max_completion_tokens");
    assert_eq!(field(Provider::Azure, "gpt-5-chat-latest"), "max_tokens");
    assert_eq!(field(Provider::Azure, "gpt-4o-deploy"), "max_tokens");
    assert_eq!(field(Provider::OpenAiCompat, "o3-mini"), "max_tokens");
    assert_eq!(field(Provider::OpenRouter, "openai/o3"), "max_tokens");
    assert_eq!(field(Provider::Vercel, "openai/gpt-5"), "max_tokens");

    // The OpenAI option wins and replaces the call setting.
    let with_option = ModelRequest {
        provider_options: options(r#"{"openai":{"max_completion_tokens":42}}"#),
        ..request.clone()
    };
    let body = body_for(Provider::Azure, "gpt-4o", &with_option);
    assert_eq!(body["max_completion_tokens"], 42);
    assert!(body.get("max_tokens").is_none());
    // No setting, no field; top_k only where servers accept it.
    let bare = body_for(Provider::OpenAi, "gpt-4o", &hello());
    assert!(bare.get("max_tokens").is_none() && bare.get("max_completion_tokens").is_none());
    assert!(bare.get("tools").is_none() && bare.get("tool_choice").is_none());
}

#[test]
fn openai_chat_options() {
    let request = ModelRequest {
        tools: vec![weather_tool()],
        tool_choice: Some(ToolChoice::Required),
        provider_options: options(
            r#"{"openai":{"logit_bias":{"50256":-100},"top_log_probs":2,"parallel_tool_calls":false,
                "user":"u-1","reasoning_effort":"high","text_verbosity":"low","service_tier":"flex",
                "prompt_cache_key":"k","safety_identifier":"s","metadata":{"a":"b"},
                "prediction":{"type":"content","content":"x"},"structured_outputs":true,"store":false},
              "openrouter":{"user":"ignored"}}"#,
        ),
        settings: CallSettings {
            top_k: Some(3),
            ..CallSettings::default()
        },
        ..hello()
    };
    let body = body_for(Provider::OpenAi, "gpt-4o", &request);
    assert_eq!(body["logit_bias"], json!({"50256": -100}));
    assert_eq!(body["logprobs"], true);
    assert_eq!(body["top_logprobs"], 2);
    assert_eq!(body["parallel_tool_calls"], false);
    assert_eq!(body["user"], "u-1");
    assert_eq!(body["reasoning_effort"], "high");
    assert_eq!(body["verbosity"], "low");
    assert_eq!(body["service_tier"], "flex");
    assert_eq!(body["prompt_cache_key"], "k");
    assert_eq!(body["safety_identifier"], "s");
    assert_eq!(body["metadata"], json!({"a": "b"}));
    assert_eq!(
        body["prediction"],
        json!({"type": "content", "content": "x"})
    );
    assert_eq!(body["store"], false);
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["tools"][0]["function"]["strict"], true);
    assert!(body.get("top_k").is_none(), "OpenAI has no top_k");

    // Without tools, parallel_tool_calls is not sent (OpenAI rejects it).
    let no_tools = ModelRequest {
        tools: Vec::new(),
        ..request.clone()
    };
    let body = body_for(Provider::OpenAi, "gpt-4o", &no_tools);
    assert!(body.get("parallel_tool_calls").is_none());
    assert!(body.get("tool_choice").is_none());
    // Another provider's block is ignored.
    let body = body_for(Provider::OpenAiCompat, "m", &request);
    assert!(body.get("user").is_none() && body.get("store").is_none());
    assert_eq!(body["top_k"], 3);
}

#[test]
fn openai_compat_openrouter_and_vercel_options() {
    let request = ModelRequest {
        tools: vec![weather_tool()],
        provider_options: options(
            r#"{"openaicompat":{"user":"cu","reasoning_effort":"low"},
                "openrouter":{"reasoning":{"effort":"high","exclude":true},"include_usage":true,
                   "parallel_tool_calls":true,"user":"ou","log_probs":true,
                   "provider":{"order":["anthropic","google"],"allow_fallbacks":false,"sort":"price"},
                   "extra_body":{"transforms":["middle-out"],"temperature":0.1,"model":"evil","messages":[]}},
                "vercel":{"reasoning":{"max_tokens":2000},"providerOptions":{"order":["vertex"],"models":["openai/gpt-5"]},
                   "user":"vu","top_logprobs":3,"extra_body":{"stream":false,"custom":1}}}"#,
        ),
        settings: CallSettings {
            temperature: Some(0.9),
            ..CallSettings::default()
        },
        ..hello()
    };
    let compat = body_for(Provider::OpenAiCompat, "m", &request);
    assert_eq!(compat["user"], "cu");
    assert_eq!(compat["reasoning_effort"], "low");
    assert!(compat.get("reasoning").is_none());

    let or = body_for(Provider::OpenRouter, "anthropic/claude", &request);
    assert_eq!(or["reasoning"], json!({"effort": "high", "exclude": true}));
    assert_eq!(or["usage"], json!({"include": true}));
    assert_eq!(or["parallel_tool_calls"], true);
    assert_eq!(or["user"], "ou");
    assert_eq!(or["logprobs"], true);
    assert_eq!(
        or["provider"],
        json!({"order": ["anthropic", "google"], "allow_fallbacks": false, "sort": "price"})
    );
    assert_eq!(or["transforms"], json!(["middle-out"]));
    assert_eq!(or["temperature"], 0.1, "extra_body overrides settings");
    assert_eq!(or["model"], "anthropic/claude", "model is protected");
    assert_eq!(
        or["messages"].as_array().unwrap().len(),
        1,
        "messages are protected"
    );
    assert_eq!(or["stream_options"], json!({"include_usage": true}));

    let v = body_for(Provider::Vercel, "openai/gpt-5", &request);
    assert_eq!(v["reasoning"], json!({"max_tokens": 2000}));
    assert_eq!(
        v["providerOptions"],
        json!({"gateway": {"order": ["vertex"], "models": ["openai/gpt-5"]}})
    );
    assert_eq!(v["user"], "vu");
    assert_eq!(v["top_logprobs"], 3);
    assert_eq!(v["custom"], 1);
    assert_eq!(v["stream"], true, "stream is protected");
    assert!(v.get("top_k").is_none());
}

#[test]
fn message_conversion_edge_cases() {
    let request = ModelRequest {
        system: vec!["   ".into()],
        messages: vec![
            Message {
                role: Role::User,
                content: vec![
                    Part::Text { text: "a".into() },
                    Part::Text { text: "b".into() },
                    Part::File {
                        media_type: "application/json".into(),
                        data: br#"{"k":1}"#.to_vec(),
                        filename: None,
                    },
                ],
            },
            // An assistant turn with nothing to send is dropped.
            Message {
                role: Role::Assistant,
                content: vec![Part::Reasoning {
                    text: "hidden".into(),
                    signature: None,
                    redacted_data: None,
                    item_id: None,
                    encrypted_content: None,
                }],
            },
            Message {
                role: Role::Assistant,
                content: vec![Part::ToolCall {
                    id: "c9".into(),
                    name: "noop".into(),
                    arguments: RawJson::empty_object(),
                    provider_executed: false,
                    thought_signature: None,
                }],
            },
            // Tool results inside a user message come first, then the user's text.
            Message {
                role: Role::User,
                content: vec![
                    Part::ToolResult {
                        tool_call_id: "c9".into(),
                        name: "noop".into(),
                        output: RawJson::from_json("[1,2]").unwrap(),
                        is_error: false,
                    },
                    Part::File {
                        media_type: "application/pdf".into(),
                        data: b"%PDF".to_vec(),
                        filename: Some("r.pdf".into()),
                    },
                    Part::File {
                        media_type: "audio/wav".into(),
                        data: b"RIFF".to_vec(),
                        filename: None,
                    },
                    Part::File {
                        media_type: "application/zip".into(),
                        data: vec![0; 10],
                        filename: Some("a.zip".into()),
                    },
                ],
            },
        ],
        tools: vec![ToolDefinition {
            name: "noop".into(),
            description: " ".into(),
            input_schema: RawJson::null(),
        }],
        ..ModelRequest::default()
    };
    let body = body_for(Provider::OpenAiCompat, "m", &request);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "a\n\nb\n\n<file name=\"file\" media_type=\"application/json\">\n{\"k\":1}\n</file>"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c9", "type": "function", "function": {"name": "noop", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c9", "content": "[1,2]"},
            {"role": "user", "content": [
                {"type": "file", "file": {"filename": "r.pdf", "file_data": "data:application/pdf;base64,JVBERg=="}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "text", "text": "[file \"a.zip\" (application/zip, 10 bytes) was not sent: the Chat Completions API cannot carry this file type]"},
            ]},
        ])
    );
    assert_eq!(
        body["tools"][0],
        json!({"type": "function", "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}}})
    );
    for (choice, want) in [
        (ToolChoice::Auto, json!("auto")),
        (ToolChoice::None, json!("none")),
    ] {
        let r = ModelRequest {
            tool_choice: Some(choice),
            ..request.clone()
        };
        assert_eq!(
            body_for(Provider::OpenAiCompat, "m", &r)["tool_choice"],
            want
        );
    }
}

// ---------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------

#[test]
fn construction_and_endpoints() {
    let s = ClientSettings::default;
    let m = OpenAiChatModel::new(Provider::OpenRouter, "x/y", None, None, s()).unwrap();
    assert_eq!(
        m.endpoint(),
        "https://openrouter.ai/api/v1/chat/completions"
    );
    assert_eq!(m.usage_rule(), OpenAiChatUsageRule::OpenAiCompatible);
    let m = OpenAiChatModel::new(Provider::Vercel, "x/y", None, Some("  "), s()).unwrap();
    assert_eq!(
        m.endpoint(),
        "https://ai-gateway.vercel.sh/v1/chat/completions"
    );
    let m = OpenAiChatModel::new(Provider::OpenAi, "gpt-4o", None, None, s()).unwrap();
    assert_eq!(m.usage_rule(), OpenAiChatUsageRule::OpenAi);
    let m = OpenAiChatModel::new(
        Provider::Azure,
        "dep",
        None,
        Some("https://r.openai.azure.com/openai/v1?api-version=preview"),
        s(),
    )
    .unwrap();
    assert_eq!(
        m.endpoint(),
        "https://r.openai.azure.com/openai/v1/chat/completions?api-version=preview"
    );
    // The vendor of an OpenAI Compatible endpoint picks the usage rule.
    for (url, rule) in [
        ("https://api.x.ai/v1", OpenAiChatUsageRule::Xai),
        ("https://api.deepseek.com", OpenAiChatUsageRule::DeepSeek),
        (
            "http://localhost:8000/v1",
            OpenAiChatUsageRule::OpenAiCompatible,
        ),
    ] {
        let m = OpenAiChatModel::new(Provider::OpenAiCompat, "m", None, Some(url), s()).unwrap();
        assert_eq!(m.usage_rule(), rule, "{url}");
    }
    let m = OpenAiChatModel::new(Provider::OpenAiCompat, "m", None, None, s())
        .unwrap()
        .with_usage_rule(OpenAiChatUsageRule::Xai);
    assert_eq!(m.usage_rule(), OpenAiChatUsageRule::Xai);

    let err = OpenAiChatModel::new(Provider::Azure, "dep", None, None, s()).unwrap_err();
    assert_eq!(err.to_string(), "AZURE_OPENAI_BASE_URL is not set");
    let err = OpenAiChatModel::new(Provider::OpenAi, "  ", None, None, s()).unwrap_err();
    assert_eq!(err.to_string(), "model is required");
    assert!(OpenAiChatModel::new(Provider::OpenAiCompat, "m", None, Some("ftp://x"), s()).is_err());

    // From resolved credentials; Debug hides the key and the URL's user info and query.
    let keys = ProviderApiKeys::new()
        .with_api_key(Provider::OpenAiCompat, KEY)
        .unwrap()
        .with_base_url(
            Provider::OpenAiCompat,
            "https://user:pw@llm.internal/v1?token=abc",
        )
        .unwrap();
    let creds = keys.client_credentials("openai-compat").unwrap();
    let m = OpenAiChatModel::from_credentials(&creds, "m", s()).unwrap();
    let debug = format!("{m:?}");
    for secret in [KEY, "pw", "token=abc"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("llm.internal/v1/chat/completions"));
}

#[tokio::test]
async fn no_key_means_no_authorization_header() {
    let server = ReplayServer::start(vec![Reply::sse(vec![stream_body(
        "openai-chat--finish-length.sse",
    )])])
    .await;
    let model = OpenAiChatModel::new(
        Provider::OpenAiCompat,
        "local",
        Some(SecretString::new("")),
        Some(&server.base_url),
        settings(),
    )
    .unwrap();
    let r = model.generate(hello()).await.unwrap();
    assert_eq!(r.finish_reason, Some(FinishReason::Length));
    assert_eq!(server.requests()[0].header("authorization"), None);
    assert_eq!(server.requests()[0].path, "/chat/completions");
}

#[tokio::test]
async fn json_answers_to_a_streaming_request_are_decoded_whole() {
    // A server that ignores `stream: true` and answers with one chat.completion object
    // (non-streaming tool calls carry no `index`).
    let completion = json!({
        "id": "chatcmpl-json",
        "object": "chat.completion",
        "model": "local-llm",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me look.",
                "reasoning_content": "Need the weather.",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]
            },
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
    });
    let json_headers = || {
        vec![(
            "content-type".to_owned(),
            "application/json; charset=utf-8".to_owned(),
        )]
    };
    let quota = read_testdata("errors/openai--429-insufficient-quota.json");
    let server = ReplayServer::start(vec![
        Reply::status(
            200,
            json_headers(),
            serde_json::to_vec(&completion).unwrap(),
        ),
        // An error document with status 200.
        Reply::status(200, json_headers(), quota),
    ])
    .await;
    let model = model_at(Provider::OpenAiCompat, &server.base_url, settings());
    let r = model.generate(hello()).await.unwrap();
    assert_eq!(r.text, "Let me look.");
    assert_eq!(r.reasoning, "Need the weather.");
    let calls: Vec<(&str, &str, &str)> = r
        .tool_calls
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("c1", "get_weather", r#"{"city":"Oslo"}"#),
            ("c2", "get_time", "{}")
        ]
    );
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(r.usage, usage(12, 7, 0, None));
    assert_eq!(r.response_id.as_deref(), Some("chatcmpl-json"));

    let err = model.generate(hello()).await.unwrap_err();
    let c = chaterror::classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::UsageLimit));
    assert!(!c.is_retryable());

    // A stream mislabeled as JSON is still decoded as a stream.
    let case = &CASES[6];
    assert_eq!(case.file, "openai-chat--tool-calls--parallel.sse");
    let mislabeled = ReplayServer::start(vec![Reply::status(
        200,
        json_headers(),
        stream_body(case.file),
    )])
    .await;
    let got = model_at(Provider::OpenAi, &mislabeled.base_url, settings())
        .generate(hello())
        .await
        .unwrap();
    assert_eq!(got, collect(&decode(case)));

    // A JSON body above the event limit is refused like an oversized event.
    let big = ReplayServer::start(vec![Reply::status(
        200,
        json_headers(),
        serde_json::to_vec(&completion).unwrap(),
    )])
    .await;
    let small = ClientSettings {
        max_event_bytes: 64,
        ..settings()
    };
    let err = model_at(Provider::OpenAiCompat, &big.base_url, small)
        .generate(hello())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stream event exceeds the maximum size of 64 bytes"
    );
}

#[tokio::test]
async fn azure_keys_travel_in_the_api_key_header() {
    let body = stream_body("openai-chat--text--usage.sse");
    let server = ReplayServer::start(vec![Reply::sse(vec![body])]).await;
    let model = model_at(Provider::Azure, &server.base_url, settings());
    model.generate(hello()).await.unwrap();
    let req = &server.requests()[0];
    assert_eq!(req.header("api-key"), Some(KEY));
    assert_eq!(req.header("authorization"), None);
}
