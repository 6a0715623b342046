//! The Gemini client: our documentation-written streams (testdata/streams/gemini--*.sse)
//! decoded whole and split at every byte boundary, the request mapping seen by a local
//! server, and each error class.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use chatd_test_support::fixtures::{stream_body, testdata_file_names};
use chatd_test_support::replay::{ReplayServer, Reply};
use chaterror::{classify, ChatErrorKind, ProviderError};
use chatprovider::sse::DEFAULT_MAX_EVENT_BYTES;
use chatprovider::{
    decode_body, CallSettings, ClientSettings, FinishReason, GeminiDecoder, GeminiModel,
    GoogleRequestOptions, GoogleSafetySetting, GoogleThinkingOptions, LanguageModel, Message,
    ModelRequest, ModelResponse, Part, ProviderRequestOptions, ResponseCollector, Role, StreamPart,
    ToolChoice, ToolDefinition, GEMINI_SKIP_THOUGHT_SIGNATURE, GEMINI_STREAM_CLOSED_ERROR,
};
use codersdk::{ChatMessageUsage, RawJson};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::decode_chunked;

const TEST_KEY: &str = "AIzaSyTEST-gemini-key-0123456789-SECRET";

fn fixture_names() -> Vec<String> {
    testdata_file_names("streams")
        .into_iter()
        .filter(|n| n.starts_with("gemini--"))
        .collect()
}

fn decode(body: &[u8]) -> Result<Vec<StreamPart>, ProviderError> {
    decode_body(GeminiDecoder::new(), body, DEFAULT_MAX_EVENT_BYTES)
}

fn collect(parts: &[StreamPart]) -> ModelResponse {
    let mut c = ResponseCollector::new();
    for p in parts {
        c.push(p);
    }
    c.finish()
}

fn settings() -> ClientSettings {
    ClientSettings {
        user_agent: "coder-agents/test (linux/amd64)".into(),
        ..Default::default()
    }
}

fn model_at(server: &ReplayServer, model: &str) -> GeminiModel {
    GeminiModel::new(model, TEST_KEY, Some(&server.url("/v1beta")), settings())
}

async fn stream_all(
    model: &GeminiModel,
    req: ModelRequest,
) -> Result<Vec<StreamPart>, ProviderError> {
    let mut s = model.stream(req);
    let mut out = Vec::new();
    while let Some(p) = s.next().await {
        out.push(p?);
    }
    Ok(out)
}

fn hello() -> ModelRequest {
    ModelRequest {
        messages: vec![Message::user_text("hi")],
        ..Default::default()
    }
}

#[test]
fn every_gemini_fixture_is_covered_and_split_anywhere() {
    let names = fixture_names();
    assert_eq!(
        names,
        [
            "gemini--parallel-function-calls.sse",
            "gemini--prompt-blocked.sse",
            "gemini--safety-stop.sse",
            "gemini--thoughts-then-text.sse",
        ]
    );
    for name in names {
        let body = stream_body(&name);
        let whole = decode(&body).unwrap();
        assert!(
            matches!(whole.last(), Some(StreamPart::Finish { .. })),
            "{name}"
        );
        // Every split point, and one byte at a time.
        for at in 0..=body.len() {
            let chunks = vec![body[..at].to_vec(), body[at..].to_vec()];
            let parts = decode_chunked(GeminiDecoder::new(), &chunks).unwrap();
            assert_eq!(parts, whole, "{name} split at {at}");
        }
        let bytes: Vec<Vec<u8>> = body.iter().map(|b| vec![*b]).collect();
        assert_eq!(decode_chunked(GeminiDecoder::new(), &bytes).unwrap(), whole);
    }
}

#[test]
fn thoughts_then_text() {
    let parts = decode(&stream_body("gemini--thoughts-then-text.sse")).unwrap();
    assert_eq!(
        parts[0],
        StreamPart::ResponseMetadata {
            id: Some("gr_thoughts_1".into()),
            model: Some("gemini-2.5-flash".into()),
        }
    );
    // Thoughts are block 0 (closed before the text), text is block 1.
    assert!(matches!(
        &parts[1],
        StreamPart::ReasoningDelta { block: 0, .. }
    ));
    assert!(matches!(
        &parts[3],
        StreamPart::ReasoningEnd {
            block: 0,
            signature: None,
            ..
        }
    ));
    assert!(matches!(&parts[4], StreamPart::TextDelta { block: 1, .. }));
    let r = collect(&parts);
    assert_eq!(
        r.reasoning,
        "**Planning the answer**\n\nThe user asks for the capital of France. It is Paris; answer briefly."
    );
    assert_eq!(r.reasoning_blocks.len(), 1);
    assert_eq!(r.text, "The capital of France is **Paris**.");
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    // input = prompt − cached; output = candidates + thoughts.
    assert_eq!(
        r.usage,
        ChatMessageUsage {
            input_tokens: Some(186),
            output_tokens: Some(61),
            total_tokens: Some(1271),
            reasoning_tokens: Some(52),
            cache_creation_tokens: None,
            cache_read_tokens: Some(1024),
            context_limit: None,
        }
    );
    assert!(r.tool_calls.is_empty() && r.thought_signatures.is_empty());
}

#[test]
fn parallel_function_calls_get_stable_ids_and_keep_the_signature() {
    let parts = decode(&stream_body("gemini--parallel-function-calls.sse")).unwrap();
    let r = collect(&parts);
    assert_eq!(r.reasoning_blocks.len(), 1);
    let calls: Vec<(&str, &str, Value)> = r
        .tool_calls
        .iter()
        .map(|c| {
            assert!(c.arguments_valid && !c.provider_executed);
            (
                c.id.as_str(),
                c.name.as_str(),
                serde_json::from_str(&c.arguments).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            (
                "gr_calls_1:call:0",
                "get_weather",
                json!({"city":"Paris","unit":"celsius"})
            ),
            (
                "gr_calls_1:call:1",
                "get_weather",
                json!({"city":"Tokyo","unit":"celsius"})
            ),
        ]
    );
    assert_eq!(
        r.thought_signatures,
        [(
            "gr_calls_1:call:0".to_owned(),
            "CiQBVKhc7sig-call-UGFyaXM=".to_owned()
        )]
    );
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(r.usage.output_tokens, Some(75));
    assert_eq!(r.usage.reasoning_tokens, Some(41));
    // The signature comes right before its call, each call after its start and delta.
    let kinds: Vec<&str> = parts
        .iter()
        .map(|p| match p {
            StreamPart::ResponseMetadata { .. } => "meta",
            StreamPart::ReasoningDelta { .. } => "reasoning",
            StreamPart::ReasoningEnd { .. } => "reasoning_end",
            StreamPart::ToolCallStart { .. } => "start",
            StreamPart::ToolCallDelta { .. } => "delta",
            StreamPart::ThoughtSignature { .. } => "signature",
            StreamPart::ToolCall(_) => "call",
            StreamPart::Finish { .. } => "finish",
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "meta",
            "reasoning",
            "reasoning_end",
            "start",
            "delta",
            "signature",
            "call",
            "start",
            "delta",
            "call",
            "finish"
        ]
    );
}

#[test]
fn safety_stops_and_blocked_prompts_are_content_filter() {
    for name in ["gemini--safety-stop.sse", "gemini--prompt-blocked.sse"] {
        let r = collect(&decode(&stream_body(name)).unwrap());
        assert_eq!(r.finish_reason, Some(FinishReason::ContentFilter), "{name}");
    }
    let r = collect(&decode(&stream_body("gemini--safety-stop.sse")).unwrap());
    assert_eq!(r.text, "I can explain the general chemistry, but");
    let r = collect(&decode(&stream_body("gemini--prompt-blocked.sse")).unwrap());
    assert_eq!((r.text.as_str(), r.usage.input_tokens), ("", Some(17)));
}

#[test]
fn a_cut_stream_is_a_retryable_timeout() {
    let body = stream_body("gemini--parallel-function-calls.sse");
    let text = String::from_utf8(body).unwrap();
    // Everything before the chunk with the finish reason.
    let cut = text.rfind("data: ").unwrap();
    for end in [cut, cut + 40] {
        let err = decode(&text.as_bytes()[..end]).unwrap_err();
        assert!(
            err.to_string().contains(GEMINI_STREAM_CLOSED_ERROR),
            "{err}"
        );
        let c = classify(&err);
        assert_eq!(c.kind(), Some(&ChatErrorKind::Timeout));
        assert!(c.is_retryable());
    }
}

#[tokio::test]
async fn request_mapping_on_the_wire() {
    let server = ReplayServer::start(vec![Reply::sse(vec![stream_body(
        "gemini--thoughts-then-text.sse",
    )])])
    .await;
    let model = model_at(&server, "gemini-3-pro-preview");
    let req = ModelRequest {
        system: vec!["You are terse.".into(), " ".into(), "Use tools.".into()],
        messages: vec![
            Message {
                role: Role::User,
                content: vec![
                    Part::Text {
                        text: "What is in this picture, and the weather?".into(),
                    },
                    Part::File {
                        media_type: "image/png; charset=binary".into(),
                        data: b"\x89PNG".to_vec(),
                        filename: Some("a.png".into()),
                    },
                ],
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::Reasoning {
                        text: "thinking".into(),
                        signature: None,
                        redacted_data: None,
                        item_id: None,
                        encrypted_content: None,
                    },
                    Part::ToolCall {
                        id: "gr_1:call:0".into(),
                        name: "get_weather".into(),
                        arguments: RawJson::from(json!({"city":"Paris"})),
                        provider_executed: false,
                        thought_signature: Some("sig-A".into()),
                    },
                    Part::ToolCall {
                        id: "gr_1:call:1".into(),
                        name: "get_weather".into(),
                        arguments: RawJson::from(json!({"city":"Tokyo"})),
                        provider_executed: false,
                        thought_signature: None,
                    },
                ],
            },
            Message {
                role: Role::Tool,
                content: vec![
                    Part::ToolResult {
                        tool_call_id: "gr_1:call:0".into(),
                        name: "get_weather".into(),
                        output: RawJson::from(json!("18C")),
                        is_error: false,
                    },
                    Part::ToolResult {
                        tool_call_id: "gr_1:call:1".into(),
                        name: "get_weather".into(),
                        output: RawJson::from(json!({"temp": 21})),
                        is_error: false,
                    },
                ],
            },
            Message {
                role: Role::Assistant,
                content: vec![Part::ToolCall {
                    id: "toolu_other_model".into(),
                    name: "ls".into(),
                    arguments: RawJson::from(json!({})),
                    provider_executed: false,
                    thought_signature: None,
                }],
            },
            Message {
                role: Role::Tool,
                content: vec![Part::ToolResult {
                    tool_call_id: "toolu_other_model".into(),
                    name: "ls".into(),
                    output: RawJson::from(json!("no such dir")),
                    is_error: true,
                }],
            },
        ],
        tools: vec![
            ToolDefinition {
                name: "get_weather".into(),
                description: "Weather of a city".into(),
                input_schema: RawJson::from(
                    json!({"type":"object","properties":{"city":{"type":"string"}}}),
                ),
            },
            ToolDefinition {
                name: "ls".into(),
                description: String::new(),
                input_schema: RawJson::null(),
            },
        ],
        tool_choice: Some(ToolChoice::Tool("get_weather".into())),
        settings: CallSettings {
            max_output_tokens: Some(1024),
            temperature: Some(0.5),
            top_k: Some(40),
            ..Default::default()
        },
        provider_options: Some(ProviderRequestOptions {
            google: Some(GoogleRequestOptions {
                thinking: Some(GoogleThinkingOptions {
                    budget: None,
                    level: Some("medium".into()),
                    include_thoughts: None,
                }),
                cached_content: Some("cachedContents/abc123".into()),
                safety_settings: Some(vec![GoogleSafetySetting {
                    category: "HARM_CATEGORY_HARASSMENT".into(),
                    threshold: "BLOCK_ONLY_HIGH".into(),
                }]),
                threshold: Some("BLOCK_NONE".into()),
                web_search: Some(true),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let parts = stream_all(&model, req).await.unwrap();
    assert!(matches!(parts.last(), Some(StreamPart::Finish { .. })));
    let got = server.requests();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path,
        "/v1beta/models/gemini-3-pro-preview:streamGenerateContent"
    );
    assert_eq!(r.query.as_deref(), Some("alt=sse"));
    assert_eq!(r.header("x-goog-api-key"), Some(TEST_KEY));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(
        r.header("user-agent"),
        Some("coder-agents/test (linux/amd64)")
    );
    let body = r.json();
    assert_eq!(
        body["systemInstruction"],
        json!({"parts":[{"text":"You are terse."},{"text":"Use tools."}]})
    );
    assert_eq!(
        body["contents"],
        json!([
            {"role":"user","parts":[
                {"text":"What is in this picture, and the weather?"},
                {"inlineData":{"mimeType":"image/png","data":"iVBORw=="}}
            ]},
            {"role":"model","parts":[
                {"functionCall":{"id":"gr_1:call:0","name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"sig-A"},
                {"functionCall":{"id":"gr_1:call:1","name":"get_weather","args":{"city":"Tokyo"}}}
            ]},
            {"role":"user","parts":[
                {"functionResponse":{"id":"gr_1:call:0","name":"get_weather","response":{"output":"18C"}}},
                {"functionResponse":{"id":"gr_1:call:1","name":"get_weather","response":{"temp":21}}}
            ]},
            {"role":"model","parts":[
                {"functionCall":{"id":"toolu_other_model","name":"ls","args":{}},"thoughtSignature":GEMINI_SKIP_THOUGHT_SIGNATURE}
            ]},
            {"role":"user","parts":[
                {"functionResponse":{"id":"toolu_other_model","name":"ls","response":{"error":"no such dir"}}}
            ]}
        ])
    );
    assert_eq!(
        body["tools"],
        json!([
            {"functionDeclarations":[
                {"name":"get_weather","description":"Weather of a city",
                 "parametersJsonSchema":{"type":"object","properties":{"city":{"type":"string"}}}},
                {"name":"ls"}
            ]},
            {"googleSearch":{}}
        ])
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["get_weather"]}})
    );
    // Gemini 3 Pro takes LOW/HIGH: medium is clamped up; thoughts are included by default.
    assert_eq!(
        body["generationConfig"],
        json!({"maxOutputTokens":1024,"temperature":0.5,"topK":40,
               "thinkingConfig":{"thinkingLevel":"HIGH","includeThoughts":true}})
    );
    assert_eq!(body["cachedContent"], "cachedContents/abc123");
    let safety = body["safetySettings"].as_array().unwrap();
    assert_eq!(
        safety[0],
        json!({"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_ONLY_HIGH"})
    );
    assert_eq!(safety.len(), 5);
    assert!(safety[1..].iter().all(|s| s["threshold"] == "BLOCK_NONE"));
}

#[test]
fn budgets_win_over_levels_and_plain_requests_stay_plain() {
    let model = GeminiModel::new("gemini-2.5-flash", TEST_KEY, None, settings());
    let body: Value = serde_json::from_str(&model.request_json(&hello()).unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"contents":[{"role":"user","parts":[{"text":"hi"}]}]})
    );
    let with = |t: GoogleThinkingOptions, model: &str| -> Value {
        let m = GeminiModel::new(model, TEST_KEY, None, settings());
        let req = ModelRequest {
            provider_options: Some(ProviderRequestOptions {
                google: Some(GoogleRequestOptions {
                    thinking: Some(t),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..hello()
        };
        let v: Value = serde_json::from_str(&m.request_json(&req).unwrap()).unwrap();
        v["generationConfig"]["thinkingConfig"].clone()
    };
    assert_eq!(
        with(
            GoogleThinkingOptions {
                budget: Some(512),
                level: Some("low".into()),
                include_thoughts: Some(false),
            },
            "gemini-3-flash"
        ),
        json!({"thinkingBudget":512,"includeThoughts":false})
    );
    // Before Gemini 3 a level is not sent.
    assert_eq!(
        with(
            GoogleThinkingOptions {
                budget: None,
                level: Some("low".into()),
                include_thoughts: Some(true),
            },
            "gemini-2.5-pro"
        ),
        json!({"includeThoughts":true})
    );
    // And a replayed call without a signature gets no placeholder before Gemini 3.
    let req = ModelRequest {
        messages: vec![Message {
            role: Role::Assistant,
            content: vec![Part::ToolCall {
                id: "c".into(),
                name: "ls".into(),
                arguments: RawJson::from(json!({})),
                provider_executed: false,
                thought_signature: None,
            }],
        }],
        ..Default::default()
    };
    let v: Value = serde_json::from_str(&model.request_json(&req).unwrap()).unwrap();
    assert!(v["contents"][0]["parts"][0]
        .get("thoughtSignature")
        .is_none());
}

fn google_error(code: u16, status: &str, message: &str, details: Value) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"error":{"code":code,"message":message,"status":status,"details":details}}),
    )
    .unwrap()
}

#[tokio::test]
async fn each_error_class() {
    let json_type = vec![("content-type".to_owned(), "application/json".to_owned())];
    let cases: Vec<(Reply, ChatErrorKind, bool, Duration)> = vec![
        (
            Reply::status(
                429,
                json_type.clone(),
                google_error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Resource has been exhausted (e.g. check quota).",
                    json!([
                        {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests"}]},
                        {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}
                    ]),
                ),
            ),
            ChatErrorKind::RateLimit,
            true,
            Duration::from_secs(37),
        ),
        (
            Reply::status(
                400,
                json_type.clone(),
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "Invalid JSON payload received. Unknown name \"foo\": Cannot find field.",
                    json!([]),
                ),
            ),
            ChatErrorKind::Generic,
            false,
            Duration::ZERO,
        ),
        (
            Reply::status(
                400,
                json_type.clone(),
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "API key not valid. Please pass a valid API key.",
                    json!([{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]),
                ),
            ),
            ChatErrorKind::Auth,
            false,
            Duration::ZERO,
        ),
        (
            Reply::status(
                403,
                json_type.clone(),
                google_error(
                    403,
                    "PERMISSION_DENIED",
                    "Method doesn't allow unregistered callers (callers without established identity).",
                    json!([]),
                ),
            ),
            ChatErrorKind::Auth,
            false,
            Duration::ZERO,
        ),
        (
            Reply::status(
                500,
                json_type.clone(),
                google_error(500, "INTERNAL", "An internal error has occurred.", json!([])),
            ),
            ChatErrorKind::Generic,
            true,
            Duration::ZERO,
        ),
        (
            Reply::status(
                503,
                json_type.clone(),
                google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", json!([])),
            ),
            ChatErrorKind::Timeout,
            true,
            Duration::ZERO,
        ),
    ];
    for (reply, kind, retryable, delay) in cases {
        let status = reply.status;
        let server = ReplayServer::start(vec![reply]).await;
        let err = stream_all(&model_at(&server, "gemini-2.5-flash"), hello())
            .await
            .unwrap_err();
        let c = classify(&err);
        assert_eq!(c.kind(), Some(&kind), "{status}: {err} / {c:?}");
        assert_eq!(c.is_retryable(), retryable, "{status}");
        assert_eq!(c.retry_after(), delay, "{status}");
        assert_eq!(c.provider(), "google", "{status}");
        assert!(!format!("{err:?}").contains(TEST_KEY));
    }
}

#[tokio::test]
async fn errors_inside_the_stream_and_the_key_in_echoes_are_handled() {
    let event = google_error(
        429,
        "RESOURCE_EXHAUSTED",
        &format!("quota for key {TEST_KEY} exhausted"),
        json!([{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2.5s"}]),
    );
    let mut body = b"data: ".to_vec();
    body.extend_from_slice(&event);
    body.extend_from_slice(b"\r\n\r\n");
    let server = ReplayServer::start(vec![Reply::sse(vec![body])]).await;
    let model = model_at(&server, "gemini-2.5-flash");
    let err = stream_all(&model, hello()).await.unwrap_err();
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::RateLimit));
    assert_eq!(c.retry_after(), Duration::from_millis(2500));
    let shown = format!("{err} {err:?} {}", String::from_utf8_lossy(err.body()));
    assert!(!shown.contains(TEST_KEY), "{shown}");
    assert!(!format!("{model:?}").contains(TEST_KEY));
    assert!(model.redactor().redact(TEST_KEY) != TEST_KEY);
}
