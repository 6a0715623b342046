//! The AI Gateway end to end: the official `openai` and `@anthropic-ai/sdk` npm packages
//! (pinned in `tests/aibridge-sdk`) call the gateway, which forwards to a mock upstream
//! replaying recorded provider streams from `testdata/streams/`. The mock records what
//! reached it (which key, which headers); a collecting sink records what the gateway
//! handed on. Also: the gateway's refusals, the address policy, and a soak of streamed
//! requests (`CHATD_AIBRIDGE_SOAK=1000` for the full run, docs/ai-gateway.md).
//!
//! Needs Node.js and `npm ci` in `server-example/tests/aibridge-sdk` (`scripts/test.sh` and
//! `.ci/run` do that).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method as AxumMethod, StatusCode as AxumStatus, Uri};
use axum::response::{IntoResponse, Response};
use chatd_core::aibridge::{
    CredentialKind, InstanceSource, InstanceType, InterceptionRecord, InterceptionSink,
    InterceptionStart, ProviderInstance, WireApi,
};
use chatd_core::store::{HiddenUsage, Store};
use chatd_test_support::db::on_each_backend;
use chatd_test_support::fixtures::stream_body;
use chatd_test_support::server::{serve, TestServer, TestUser};
use chatprovider::gateway::AddressPolicy;
use chatprovider::{Provider, ProviderApiKeys};
use codersdk::ChatErrorKind;
use futures_util::StreamExt;
use serde_json::{json, Value};
use server_example::routes::aibridge::{GatewayOptions, MAX_GATEWAY_BODY_BYTES};

/// What the mock upstream received.
#[derive(Debug, Clone)]
struct Seen {
    /// The first path segment: which instance's base URL was used.
    tag: String,
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct MockState {
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Header the SDK calls send to pick the mock's answer; an ordinary header, so it is
/// forwarded.
const SCENARIO: &str = "x-mock-scenario";

/// The first event of the streams that stall or break.
const STALLED_FIRST_EVENT: &[u8] =
    b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[]}\n\n";

const CHAT_TOOL_STREAM: &str = "openai-chat--tool-call--single.sse";
const CHAT_TEXT_STREAM: &str = "openai-chat--text--usage.sse";
const RESPONSES_STREAM: &str = "openai-responses--text--azure.jsonl";
const RESPONSES_TOOL_STREAM: &str = "openai-responses--function-call--azure.jsonl";
const MESSAGES_TOOL_STREAM: &str = "anthropic-messages--tool-loop--turn1.sse";

fn sse(body: Vec<u8>) -> Response {
    ([("content-type", "text/event-stream")], body).into_response()
}

fn json_answer(v: Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

fn chat_json() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_json_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 18, "total_tokens": 138,
            "prompt_tokens_details": {"cached_tokens": 100}}
    })
}

fn responses_json() -> Value {
    json!({
        "id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
        "model": "gpt-5.1-2025-11-13",
        "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]}],
        "usage": {"input_tokens": 30, "output_tokens": 12, "total_tokens": 42,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 4}}
    })
}

fn messages_json() -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_json_1", "name": "get_weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 50, "output_tokens": 20, "cache_read_input_tokens": 7,
            "cache_creation_input_tokens": 3}
    })
}

async fn mock_handler(
    State(state): State<MockState>,
    Path((tag, rest)): Path<(String, String)>,
    method: AxumMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let scenario = headers
        .get(SCENARIO)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state.seen.lock().unwrap().push(Seen {
        tag: tag.clone(),
        method: method.to_string(),
        path: format!("/{rest}"),
        query: uri.query().map(str::to_owned),
        headers,
        body,
    });
    if rest.ends_with("models") {
        return if tag.contains("anthropic") {
            json_answer(json!({"data": [{"type": "model", "id": "claude-mock",
                "display_name": "Claude Mock", "created_at": "2025-01-01T00:00:00Z"}],
                "has_more": false, "first_id": "claude-mock", "last_id": "claude-mock"}))
        } else {
            json_answer(
                json!({"object": "list", "data": [{"id": "gpt-mock", "object": "model",
                "created": 0, "owned_by": "mock"}]}),
            )
        };
    }
    match scenario.as_str() {
        "chat-stream-tool" => sse(stream_body(CHAT_TOOL_STREAM)),
        "chat-stream-text" => sse(stream_body(CHAT_TEXT_STREAM)),
        "chat-json" => json_answer(chat_json()),
        "responses-stream" => sse(stream_body(RESPONSES_STREAM)),
        "responses-json" => json_answer(responses_json()),
        "responses-stream-tool" => sse(stream_body(RESPONSES_TOOL_STREAM)),
        "messages-stream-tool" => sse(stream_body(MESSAGES_TOOL_STREAM)),
        "messages-json" => json_answer(messages_json()),
        "rate-limited" => (
            AxumStatus::TOO_MANY_REQUESTS,
            [("content-type", "application/json"), ("retry-after", "7")],
            json!({"error": {"message": "Rate limit reached for gpt-4o", "type": "requests",
                "param": null, "code": "rate_limit_exceeded"}})
            .to_string(),
        )
            .into_response(),
        // The first event, then nothing more until the client goes away.
        "stalled-stream" => {
            let first = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(
                STALLED_FIRST_EVENT,
            ))]);
            let body = first.chain(futures_util::stream::pending());
            (
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(body),
            )
                .into_response()
        }
        // The first event, then the connection breaks.
        "broken-stream" => {
            // The break comes a moment later, once the head and the first event are out.
            let body = futures_util::stream::iter([Ok(Bytes::from_static(STALLED_FIRST_EVENT))])
                .chain(futures_util::stream::once(async {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    Err(std::io::Error::other("upstream broke"))
                }));
            (
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(body),
            )
                .into_response()
        }
        other => (
            AxumStatus::IM_A_TEAPOT,
            format!("unknown scenario {other:?}"),
        )
            .into_response(),
    }
}

/// A mock upstream serving every instance under `/<tag>/…`.
async fn mock_upstream() -> (String, MockState) {
    let state = MockState::default();
    let app = axum::Router::new()
        .route("/{tag}/{*rest}", axum::routing::any(mock_handler))
        .with_state(state.clone());
    (serve(app).await, state)
}

/// The sink of the tests: keeps what it is handed.
#[derive(Debug, Default)]
pub(crate) struct Collect {
    started: Mutex<Vec<InterceptionStart>>,
    finished: Mutex<Vec<InterceptionRecord>>,
}

impl InterceptionSink for Collect {
    fn started(&self, start: &InterceptionStart) {
        self.started.lock().unwrap().push(start.clone());
    }
    fn finished(&self, record: InterceptionRecord) {
        self.finished.lock().unwrap().push(record);
    }
}

impl Collect {
    /// The finished records, once `n` arrived (a record is handed on when the body ends,
    /// which the client may see a moment before the server's task finishes).
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<InterceptionRecord> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let records = self.finished.lock().unwrap().clone();
            if records.len() >= n || std::time::Instant::now() > deadline {
                return records;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

const CENTRAL_OPENAI_KEY: &str = "sk-central-openai-0123456789abcdef";
const CENTRAL_ANTHROPIC_KEY: &str = "sk-ant-central-0123456789abcdef";
const OPENAI_B_KEY: &str = "sk-openai-b-0123456789abcdef";
const ANTHROPIC_CORP_KEY: &str = "sk-ant-corp-0123456789abcdef";
const USER_OPENAI_KEY: &str = "sk-user-own-openai-abcdef012345";
const USER_ANTHROPIC_KEY: &str = "sk-ant-user-own-abcdef012345";

fn instance(name: &str, t: InstanceType, base: String, key: &str) -> ProviderInstance {
    ProviderInstance {
        name: name.to_owned(),
        instance_type: t,
        base_url: base,
        api_key: Some(key.into()),
        source: InstanceSource::Environment,
        bedrock: chatd_core::aibridge::BedrockSettings::default(),
    }
}

/// A server whose default instances and two named ones point at the mock.
async fn gateway_server(
    store: &Store,
    mock: &str,
    allow_byok: bool,
    allow_loopback: bool,
    sink: Option<Arc<Collect>>,
) -> TestServer {
    let keys = ProviderApiKeys::new()
        .with_api_key(Provider::OpenAi, CENTRAL_OPENAI_KEY)
        .unwrap()
        .with_base_url(Provider::OpenAi, &format!("{mock}/default-openai/v1"))
        .unwrap()
        .with_api_key(Provider::Anthropic, CENTRAL_ANTHROPIC_KEY)
        .unwrap()
        .with_base_url(Provider::Anthropic, &format!("{mock}/default-anthropic"))
        .unwrap();
    let mut options = GatewayOptions::default();
    options.allow_byok = allow_byok;
    if allow_loopback {
        options.allowed_private = AddressPolicy::parse_allow_list("127.0.0.1/32").unwrap();
    }
    options.instances = vec![
        instance(
            "openai-b",
            InstanceType::OpenAi,
            format!("{mock}/openai-b/v1"),
            OPENAI_B_KEY,
        ),
        instance(
            "anthropic-corp",
            InstanceType::Anthropic,
            format!("{mock}/anthropic-corp"),
            ANTHROPIC_CORP_KEY,
        ),
    ];
    let builder = TestServer::builder(store)
        .deployment_keys(keys)
        .ai_gateway(options);
    // Without a sink of the test's, records go to the server's own recorder.
    match sink {
        Some(sink) => builder.interception_sink(sink),
        None => builder,
    }
    .start()
    .await
}

/// Runs the SDK script on `calls`; its results by id.
pub(crate) fn run_sdks(base: &str, calls: Value) -> BTreeMap<String, Value> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/aibridge-sdk"));
    assert!(
        dir.join("node_modules/openai").exists()
            && dir.join("node_modules/@anthropic-ai/sdk").exists(),
        "the SDKs are not installed: run `npm ci` in {} (scripts/test.sh does this)",
        dir.display()
    );
    let plan =
        std::env::temp_dir().join(format!("chatd-aibridge-plan-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&plan, json!({"base": base, "calls": calls}).to_string()).unwrap();
    let out = std::process::Command::new("node")
        .arg(dir.join("run.mjs"))
        .arg(&plan)
        .current_dir(&dir)
        .output()
        .expect("run node (is Node.js installed?)");
    let _ = std::fs::remove_file(&plan);
    assert!(
        out.status.success(),
        "the SDK script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "SDK output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    results
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r))
        .collect()
}

fn scenario(name: &str) -> Value {
    json!({ SCENARIO: name })
}

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers.get(name).and_then(|v| v.to_str().ok())
}

/// No chatd header and no chatd token reached the upstream.
fn assert_clean(seen: &Seen, user: &TestUser) {
    for (name, value) in &seen.headers {
        assert!(
            !name.as_str().starts_with("x-coder-") && name.as_str() != "x-ai-gov-token",
            "{name} reached the upstream"
        );
        assert!(
            !value.to_str().unwrap_or_default().contains(&user.token),
            "the chatd token reached the upstream in {name}"
        );
    }
}

fn record_of<'a>(
    records: &'a [InterceptionRecord],
    scenario_model: &str,
    provider: &str,
    kind: CredentialKind,
    api: WireApi,
) -> &'a InterceptionRecord {
    records
        .iter()
        .find(|r| {
            r.model == scenario_model
                && r.start.provider_name == provider
                && r.start.credential_kind == kind
                && r.start.api == api
        })
        .unwrap_or_else(|| {
            panic!(
                "no record of {scenario_model} via {provider} ({kind:?}, {api:?}) in {records:#?}"
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_call_through_the_gateway_and_every_call_is_recorded() {
    on_each_backend(|store| async move {
        let (mock, upstream) = mock_upstream().await;
        let sink = Arc::new(Collect::default());
        let server = gateway_server(&store, &mock, true, true, Some(Arc::clone(&sink))).await;
        let user = server.user("alice").await;
        let t = user.token.as_str();
        let gov = |extra: Value| {
            let mut h = extra;
            h["X-Coder-AI-Governance-Token"] = json!(t);
            h
        };
        let results = run_sdks(&server.base, json!([
            {"id": "chat-stream", "sdk": "openai", "api": "chat", "instance": "openai", "apiKey": t,
             "stream": true, "tools": true, "headers": scenario("chat-stream-tool")},
            {"id": "chat-json", "sdk": "openai", "api": "chat", "instance": "openai", "apiKey": t,
             "stream": false, "tools": true, "headers": scenario("chat-json")},
            {"id": "responses-stream", "sdk": "openai", "api": "responses", "instance": "openai",
             "apiKey": t, "stream": true, "headers": scenario("responses-stream")},
            {"id": "responses-stream-tool", "sdk": "openai", "api": "responses", "instance": "openai",
             "apiKey": t, "stream": true, "tools": true, "headers": scenario("responses-stream-tool")},
            {"id": "responses-json", "sdk": "openai", "api": "responses", "instance": "openai",
             "apiKey": t, "stream": false, "headers": scenario("responses-json")},
            {"id": "messages-stream", "sdk": "anthropic", "api": "messages", "instance": "anthropic",
             "apiKey": t, "stream": true, "tools": true, "headers": scenario("messages-stream-tool")},
            {"id": "messages-json-bearer", "sdk": "anthropic", "api": "messages",
             "instance": "anthropic-corp", "authToken": t, "stream": false, "tools": true,
             "headers": scenario("messages-json")},
            {"id": "byok-openai", "sdk": "openai", "api": "chat", "instance": "openai",
             "apiKey": USER_OPENAI_KEY, "stream": true,
             "headers": gov(scenario("chat-stream-text"))},
            {"id": "byok-anthropic", "sdk": "anthropic", "api": "messages", "instance": "anthropic",
             "apiKey": USER_ANTHROPIC_KEY, "stream": false,
             "headers": {"X-AI-Gov-Token": t, SCENARIO: "messages-json",
                         "X-Coder-AI-Governance-Request-Id": "corr-42"}},
            {"id": "named-openai", "sdk": "openai", "api": "chat", "instance": "openai-b",
             "apiKey": t, "stream": true, "headers": scenario("chat-stream-text")},
            {"id": "rate-limited", "sdk": "openai", "api": "chat", "instance": "openai",
             "apiKey": t, "stream": false, "headers": scenario("rate-limited")},
            {"id": "raw-stream", "sdk": "openai", "api": "chat", "instance": "openai", "apiKey": t,
             "stream": true, "raw": true, "headers": scenario("chat-stream-tool")},
            {"id": "bad-token", "sdk": "anthropic", "api": "messages", "instance": "anthropic",
             "apiKey": "chatd_not_a_token", "stream": false, "headers": scenario("messages-json")},
            {"id": "unknown-instance", "sdk": "openai", "api": "chat", "instance": "nope",
             "apiKey": t, "stream": false, "headers": scenario("chat-json")},
            {"id": "models-openai", "sdk": "openai", "api": "models", "instance": "openai", "apiKey": t},
            {"id": "models-anthropic", "sdk": "anthropic", "api": "models",
             "instance": "anthropic-corp", "apiKey": t}
        ]));

        // What the SDKs saw.
        let r = &results["chat-stream"];
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["toolCalls"][0]["name"], "get_weather");
        assert_eq!(r["toolCalls"][0]["arguments"], "{\"city\":\"New York City\"}");
        let r = &results["chat-json"];
        assert_eq!(r["toolCalls"][0]["id"], "call_json_1", "{r}");
        let r = &results["responses-stream"];
        assert_eq!(r["ok"], true, "{r}");
        assert!(!r["text"].as_str().unwrap().is_empty(), "{r}");
        assert_eq!(results["responses-json"]["text"], "Hello!");
        let r = &results["responses-stream-tool"];
        assert_eq!(r["toolCalls"][0]["name"], "weather", "{r}");
        let r = &results["messages-stream"];
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["toolCalls"].as_array().unwrap().len(), 1, "{r}");
        assert_eq!(results["messages-json-bearer"]["toolCalls"][0]["id"], "toolu_json_1");
        assert_eq!(results["byok-openai"]["ok"], true, "{}", results["byok-openai"]);
        assert_eq!(results["byok-anthropic"]["ok"], true, "{}", results["byok-anthropic"]);
        assert_eq!(results["named-openai"]["ok"], true);
        let r = &results["rate-limited"];
        assert_eq!((r["ok"].clone(), r["status"].clone()), (json!(false), json!(429)), "{r}");
        assert_eq!(r["retryAfter"], "7", "Retry-After passes through: {r}");
        assert_eq!(r["errorBody"]["code"], "rate_limit_exceeded", "the upstream's body: {r}");
        let raw = results["raw-stream"]["rawBody"].as_str().unwrap();
        assert_eq!(raw.as_bytes(), stream_body(CHAT_TOOL_STREAM), "byte for byte");
        let r = &results["bad-token"];
        assert_eq!(r["status"], 401, "{r}");
        assert_eq!(r["errorBody"]["type"], "error", "Anthropic's error shape: {r}");
        assert_eq!(r["errorBody"]["error"]["type"], "authentication_error", "{r}");
        let r = &results["unknown-instance"];
        assert_eq!(r["status"], 404, "{r}");
        assert!(r["errorBody"]["message"].as_str().unwrap().contains("nope"), "OpenAI's shape: {r}");
        assert_eq!(results["models-openai"]["models"], json!(["gpt-mock"]));
        assert_eq!(results["models-anthropic"]["models"], json!(["claude-mock"]));

        // What reached the upstream: the right instance, the right key, nothing of chatd's.
        let seen = upstream.seen.lock().unwrap().clone();
        let posts: Vec<&Seen> = seen.iter().filter(|s| s.method == "POST").collect();
        assert_eq!(posts.len(), 12, "every call but the refused ones was forwarded");
        for s in &seen {
            assert_clean(s, &user);
        }
        let by = |tag: &str, sc: &str| -> Vec<&Seen> {
            posts
                .iter()
                .copied()
                .filter(|s| s.tag == tag && header(s, SCENARIO) == Some(sc))
                .collect()
        };
        let central = by("default-openai", "chat-stream-tool");
        assert_eq!(central.len(), 2);
        assert_eq!(header(central[0], "authorization"), Some(&*format!("Bearer {CENTRAL_OPENAI_KEY}")));
        assert_eq!(central[0].path, "/v1/chat/completions");
        let sent = serde_json::from_slice::<Value>(&central[0].body).unwrap();
        assert_eq!(sent["tools"][0]["function"]["name"], "get_weather", "the body arrived whole");
        let resp = by("default-openai", "responses-stream");
        assert_eq!(resp[0].path, "/v1/responses");
        let anth = by("default-anthropic", "messages-stream-tool");
        assert_eq!(header(anth[0], "x-api-key"), Some(CENTRAL_ANTHROPIC_KEY));
        assert!(header(anth[0], "anthropic-version").is_some(), "the SDK's headers pass");
        assert_eq!(anth[0].path, "/v1/messages");
        let corp = by("anthropic-corp", "messages-json");
        assert_eq!(corp.len(), 1, "the named instance got its own call");
        assert_eq!(header(corp[0], "x-api-key"), Some(ANTHROPIC_CORP_KEY));
        assert_eq!(header(corp[0], "authorization"), None, "the bearer token was replaced");
        let byok = by("default-openai", "chat-stream-text");
        assert_eq!(header(byok[0], "authorization"), Some(&*format!("Bearer {USER_OPENAI_KEY}")));
        let byok = by("default-anthropic", "messages-json");
        // The client's own key goes upstream in the header it came in (this SDK version
        // sends it as a bearer token).
        let own = header(byok[0], "x-api-key")
            .map(str::to_owned)
            .or_else(|| header(byok[0], "authorization").map(|v| v.trim_start_matches("Bearer ").to_owned()));
        assert_eq!(own.as_deref(), Some(USER_ANTHROPIC_KEY), "{:?}", byok[0].headers);
        let named = by("openai-b", "chat-stream-text");
        assert_eq!(header(named[0], "authorization"), Some(&*format!("Bearer {OPENAI_B_KEY}")));
        let models: Vec<&Seen> = seen.iter().filter(|s| s.method == "GET").collect();
        assert_eq!(models.len(), 2);
        assert!(models.iter().any(|s| s.tag == "default-openai" && s.path == "/v1/models"));
        assert!(models.iter().any(|s| s.tag == "anthropic-corp" && s.path == "/v1/models"));

        // What the sink was handed: one record per forwarded call.
        let records = sink.wait_for(12).await;
        assert_eq!(records.len(), 12, "{records:#?}");
        assert_eq!(sink.started.lock().unwrap().len(), 12);
        for r in &records {
            assert_eq!(r.start.user_id, user.id);
            assert!(r.ended_at.as_datetime() >= r.start.started_at.as_datetime());
            assert!(!r.client_disconnected, "{r:#?}");
        }
        let r = record_of(&records, "gpt-4o-2024-08-06", "openai", CredentialKind::Central, WireApi::ChatCompletions);
        assert_eq!(r.start.provider_type, "openai");
        assert_eq!(r.start.credential_hint, chatprovider::key_hint(CENTRAL_OPENAI_KEY));
        assert_eq!(r.upstream_status, Some(200));
        let streamed: Vec<&InterceptionRecord> = records
            .iter()
            .filter(|r| r.start.streamed && r.start.api == WireApi::ChatCompletions && r.start.credential_kind == CredentialKind::Central && r.start.provider_name == "openai")
            .collect();
        assert_eq!(streamed.len(), 2, "the tool stream and its raw twin");
        for r in &streamed {
            assert_eq!(r.tool_calls.len(), 1);
            assert_eq!(r.tool_calls[0].name, "get_weather");
            assert_eq!(r.tool_calls[0].argument_bytes, "{\"city\":\"New York City\"}".len() as u64);
            assert!(r.usage.input_tokens.unwrap_or(0) > 0, "usage from the stream: {r:#?}");
            assert_eq!(r.start.prompt.as_deref(), Some("What is the weather in New York City?"));
            assert_eq!(r.error_kind, None);
        }
        let json_chat = records
            .iter()
            .find(|r| !r.start.streamed && r.start.api == WireApi::ChatCompletions && r.upstream_status == Some(200))
            .unwrap();
        assert_eq!(json_chat.tool_calls[0].call_id, "call_json_1");
        assert_eq!(json_chat.usage.input_tokens, Some(20), "prompt minus cached: {json_chat:#?}");
        assert_eq!(json_chat.usage.cache_read_tokens, Some(100));
        assert_eq!(json_chat.usage.output_tokens, Some(18));
        let responses = records
            .iter()
            .find(|r| !r.start.streamed && r.start.api == WireApi::Responses)
            .unwrap();
        assert_eq!(responses.model, "gpt-5.1-2025-11-13");
        assert_eq!(responses.usage.reasoning_tokens, Some(4));
        let streamed_responses: Vec<&InterceptionRecord> = records
            .iter()
            .filter(|r| r.start.streamed && r.start.api == WireApi::Responses)
            .collect();
        assert_eq!(streamed_responses.len(), 2);
        for r in &streamed_responses {
            assert!(r.usage.output_tokens.unwrap_or(0) > 0, "{r:#?}");
        }
        let with_tool: Vec<&&InterceptionRecord> =
            streamed_responses.iter().filter(|r| !r.tool_calls.is_empty()).collect();
        assert_eq!(with_tool.len(), 1);
        assert_eq!(with_tool[0].tool_calls[0].name, "weather");
        assert!(with_tool[0].tool_calls[0].argument_bytes > 0);
        let messages = records
            .iter()
            .find(|r| r.start.streamed && r.start.api == WireApi::Messages)
            .unwrap();
        assert_eq!(messages.start.client_session_id.as_deref(), Some("claude-session-1"));
        assert_eq!(messages.tool_calls.len(), 1);
        assert!(messages.usage.output_tokens.unwrap_or(0) > 0);
        assert_eq!(messages.start.client.as_deref(), Some("Anthropic"), "{:?}", messages.start.client);
        let corp = records
            .iter()
            .find(|r| r.start.provider_name == "anthropic-corp")
            .unwrap();
        assert_eq!(corp.usage.input_tokens, Some(50));
        assert_eq!(corp.usage.cache_read_tokens, Some(7));
        assert_eq!(corp.usage.cache_creation_tokens, Some(3));
        assert_eq!(corp.start.credential_hint, chatprovider::key_hint(ANTHROPIC_CORP_KEY));
        let byok: Vec<&InterceptionRecord> = records
            .iter()
            .filter(|r| r.start.credential_kind == CredentialKind::Byok)
            .collect();
        assert_eq!(byok.len(), 2);
        let byok_openai = byok.iter().find(|r| r.start.provider_type == "openai").unwrap();
        assert_eq!(byok_openai.start.credential_hint, chatprovider::key_hint(USER_OPENAI_KEY));
        let byok_anthropic = byok.iter().find(|r| r.start.provider_type == "anthropic").unwrap();
        assert_eq!(byok_anthropic.start.correlation_id.as_deref(), Some("corr-42"));
        assert!(records.iter().any(|r| r.start.provider_name == "openai-b"));
        let limited = records.iter().find(|r| r.upstream_status == Some(429)).unwrap();
        assert_eq!(limited.error_kind, Some(ChatErrorKind::RateLimit), "{limited:#?}");
        for r in &records {
            let hint = &r.start.credential_hint;
            for key in [CENTRAL_OPENAI_KEY, CENTRAL_ANTHROPIC_KEY, ANTHROPIC_CORP_KEY, USER_OPENAI_KEY] {
                assert!(!key.contains(hint.trim_start_matches('…')) || hint.len() < 10);
                assert!(!format!("{r:?}").contains(key), "a key in a record");
            }
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byok_off_is_403_and_private_upstreams_are_refused() {
    on_each_backend(|store| async move {
        let (mock, upstream) = mock_upstream().await;
        let sink = Arc::new(Collect::default());
        // No allow-list: the mock, on loopback, is a private upstream.
        let server = gateway_server(&store, &mock, false, false, Some(Arc::clone(&sink))).await;
        let user = server.user("bob").await;
        let t = user.token.as_str();
        let results = run_sdks(
            &server.base,
            json!([
                {"id": "byok", "sdk": "anthropic", "api": "messages", "instance": "anthropic",
                 "apiKey": USER_ANTHROPIC_KEY, "stream": false,
                 "headers": {"X-Coder-AI-Governance-Token": t, SCENARIO: "messages-json"}},
                {"id": "private", "sdk": "openai", "api": "chat", "instance": "openai", "apiKey": t,
                 "stream": true, "headers": scenario("chat-stream-text")}
            ]),
        );
        let r = &results["byok"];
        assert_eq!(r["status"], 403, "{r}");
        assert_eq!(r["errorBody"]["error"]["type"], "permission_error");
        assert!(
            r["errorBody"]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--ai-gateway-allow-byok"),
            "the 403 names the flag: {r}"
        );
        let r = &results["private"];
        assert_eq!(r["status"], 502, "{r}");
        assert!(r["error"].as_str().unwrap().contains("private"), "{r}");
        assert!(
            upstream.seen.lock().unwrap().is_empty(),
            "nothing reached the private upstream"
        );
        let records = sink.wait_for(1).await;
        assert_eq!(
            records.len(),
            1,
            "the refused forward is recorded, the 403 is not"
        );
        assert_eq!(records[0].error_kind, Some(ChatErrorKind::Config));
        assert_eq!(records[0].upstream_status, None);
        server.stop().await;
    })
    .await;
}

/// A host name resolving to loopback is refused by the resolver itself: the check is at
/// connect time, not on the configured text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_a_private_address_is_refused_at_connect_time() {
    on_each_backend(|store| async move {
        let (mock, upstream) = mock_upstream().await;
        let port = mock.rsplit(':').next().unwrap().to_owned();
        let sink = Arc::new(Collect::default());
        let mut options = GatewayOptions::default();
        options.instances = vec![instance(
            "by-name",
            InstanceType::OpenAi,
            format!("http://localhost:{port}/by-name/v1"),
            OPENAI_B_KEY,
        )];
        let server = TestServer::builder(&store)
            .ai_gateway(options)
            .interception_sink(Arc::clone(&sink) as Arc<dyn InterceptionSink>)
            .start()
            .await;
        let user = server.user("carol").await;
        let answer = server
            .http
            .post(server.api_v2("/aibridge/by-name/v1/chat/completions"))
            .bearer_auth(&user.token)
            .json(&json!({"model": "m", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 502);
        let body: Value = answer.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("localhost"),
            "{body}"
        );
        assert!(upstream.seen.lock().unwrap().is_empty());
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_in_the_providers_shape() {
    on_each_backend(|store| async move {
        let (mock, upstream) = mock_upstream().await;
        let sink = Arc::new(Collect::default());
        let server = gateway_server(&store, &mock, true, true, Some(Arc::clone(&sink))).await;
        let user = server.user("dave").await;
        let post = |path: &str, body: Vec<u8>| {
            server
                .http
                .post(server.api_v2(path))
                .header("x-api-key", &user.token)
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        // Not JSON, not an object: 400 in Anthropic's shape on /messages.
        for bad in [b"hello".to_vec(), b"[1]".to_vec(), Vec::new()] {
            let a = post("/aibridge/anthropic/v1/messages", bad).await.unwrap();
            assert_eq!(a.status(), 400);
            let body: Value = a.json().await.unwrap();
            assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        }
        // The body limit, at its edge: one byte over is 413 before anything is parsed.
        let over = vec![b' '; MAX_GATEWAY_BODY_BYTES + 1];
        let a = post("/aibridge/openai/v1/chat/completions", over)
            .await
            .unwrap();
        assert_eq!(a.status(), 413);
        let body: Value = a.json().await.unwrap();
        assert_eq!(body["error"]["code"], "request_too_large", "{body}");
        // At the limit the body is read, then found not to be JSON (a 400 of ours, not
        // forwarded).
        let at = vec![b' '; MAX_GATEWAY_BODY_BYTES];
        let a = post("/aibridge/openai/v1/chat/completions", at)
            .await
            .unwrap();
        assert_eq!(a.status(), 400);
        let body: Value = a.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not valid JSON"),
            "{body}"
        );
        // An Anthropic instance does not serve the OpenAI paths.
        let a = post("/aibridge/anthropic-corp/v1/responses", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(a.status(), 404);
        // No token at all.
        let a = server
            .http
            .post(server.api_v2("/aibridge/openai/v1/responses"))
            .json(&json!({"model": "m", "input": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(a.status(), 401);
        let body: Value = a.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");

        // The client's query string goes upstream unchanged (Claude Code sends `?beta=true`).
        let a = server
            .http
            .post(server.api_v2("/aibridge/anthropic/v1/messages?beta=true"))
            .header("x-api-key", &user.token)
            .header(SCENARIO, "messages-json")
            .json(&json!({"model": "claude", "max_tokens": 5, "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(a.status(), 200);
        let last = upstream.seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(
            (last.path.as_str(), last.query.as_deref()),
            ("/v1/messages", Some("beta=true"))
        );

        // The usage limit: once spent, the provider-shaped 429 tells the SDK not to retry.
        let admin = &server.admin_token;
        let s = server
            .http
            .put(server.api("/chats/usage-limits"))
            .header("Coder-Session-Token", admin)
            .json(&json!({"spend_limit_micros": 1_000, "period": "day"}))
            .send()
            .await
            .unwrap();
        assert_eq!(s.status(), 200);
        let chat: Value = server
            .http
            .post(server.api("/chats"))
            .header("Coder-Session-Token", &user.token)
            .json(&json!({"content": [{"type": "text", "text": "hello"}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let chat_id: codersdk::Uuid = chat["id"].as_str().unwrap().parse().unwrap();
        server
            .state
            .engine()
            .store()
            .record_hidden_usage(
                chat_id,
                HiddenUsage {
                    model_config_id: None,
                    usage: codersdk::ChatMessageUsage::default(),
                    total_cost_micros: Some(5_000),
                    runtime_ms: 1,
                },
            )
            .await
            .unwrap();
        let before = upstream.seen.lock().unwrap().len();
        let a = post(
            "/aibridge/anthropic/v1/messages",
            json!({"model": "claude", "max_tokens": 5, "messages": []})
                .to_string()
                .into_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(a.status(), 429);
        assert_eq!(a.headers()["x-should-retry"], "false");
        let body: Value = a.json().await.unwrap();
        assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
        assert_eq!(
            upstream.seen.lock().unwrap().len(),
            before,
            "the refused call was not sent"
        );
        server.stop().await;
    })
    .await;
}

/// Streamed requests through the gateway: each stream arrives byte-identical and each
/// call leaves exactly one record in the server's own recorder (the database, read back
/// through `GET /api/v2/aibridge/interceptions`), with its exact cost. `CHATD_AIBRIDGE_SOAK`
/// sets the count (default 100; the documented soak is 1000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_streams_are_byte_identical_and_each_leaves_one_record() {
    let n: usize = std::env::var("CHATD_AIBRIDGE_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    on_each_backend(|store| async move {
        let (mock, _upstream) = mock_upstream().await;
        let server = gateway_server(&store, &mock, true, true, None).await;
        let user = server.user("erin").await;
        let expected: [(&str, &str, &str, Vec<u8>); 3] = [
            (
                "openai",
                "chat/completions",
                "chat-stream-tool",
                stream_body(CHAT_TOOL_STREAM),
            ),
            (
                "openai",
                "responses",
                "responses-stream",
                stream_body(RESPONSES_STREAM),
            ),
            (
                "anthropic",
                "messages",
                "messages-stream-tool",
                stream_body(MESSAGES_TOOL_STREAM),
            ),
        ];
        let expected = Arc::new(expected);
        let started = std::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let concurrency = 10;
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..concurrency {
            let http = server.http.clone();
            let base = server.api_v2("/aibridge");
            let token = user.token.clone();
            let expected = Arc::clone(&expected);
            let next = Arc::clone(&next);
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let (instance, path, sc, body) = &expected[i % 3];
                    let got = http
                        .post(format!("{base}/{instance}/v1/{path}"))
                        .header("x-api-key", &token)
                        .header(SCENARIO, *sc)
                        .json(&json!({"model": "m", "stream": true, "messages": [], "input": "x"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(got.status(), 200);
                    let bytes = got.bytes().await.unwrap();
                    assert!(
                        bytes.as_ref() == body.as_slice(),
                        "stream {i} ({sc}) differs"
                    );
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let elapsed = started.elapsed();
        // A record is handed on when its body ends, which the client may see a moment
        // before the server's task does; then the recorder's queue is flushed.
        let recorder = server.state.interceptions().clone();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            recorder.flush().await;
            let stats = recorder.stats();
            if stats.recorded >= n as u64 || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let stats = recorder.stats();
        assert_eq!(
            (stats.recorded, stats.dropped, stats.write_failures),
            (n as u64, 0, 0),
            "one record per call, none dropped"
        );
        let mut records = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = server.api_v2("/aibridge/interceptions?limit=1000");
            if let Some(id) = &after {
                url.push_str(&format!("&after_id={id}"));
            }
            let page: Value = server
                .http
                .get(url)
                .header("Coder-Session-Token", &user.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            records.extend(page["results"].as_array().unwrap().iter().cloned());
            match page["next_after_id"].as_str() {
                Some(id) => after = Some(id.to_owned()),
                None => break,
            }
        }
        assert_eq!(records.len(), n, "one stored record per call");
        let mut ids: Vec<_> = records.iter().map(|r| r["id"].to_string()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "ids are unique");
        for r in &records {
            assert_eq!(r["status"], 200, "{r}");
            assert!(
                r["error"].is_null() && r["client_disconnected"] == false,
                "{r}"
            );
            assert_eq!(r["credential_kind"], "central", "{r}");
            // Exact cost from the price book (micro-USD per million tokens):
            // claude-haiku-4-5 1 in / 5 out: 656 + 74 × 5 = 1 026;
            // gpt-4o-2024-08-06 2.5 in / 10 out: 44 × 2.5 + 16 × 10 = 270.
            match r["model"].as_str().unwrap() {
                "claude-haiku-4-5-20251001" => assert_eq!(r["total_cost_micros"], 1026, "{r}"),
                "gpt-4o-2024-08-06" => assert_eq!(r["total_cost_micros"], 270, "{r}"),
                _ => assert_eq!(r["api"], "responses", "{r}"),
            }
        }
        println!("{n} streamed calls through the gateway in {elapsed:?}");
        server.stop().await;
    })
    .await;
}

/// Instances managed through the admin API: created, listed with the defaults and the
/// environment's (keys never shown), used by the gateway with their sealed key, changed,
/// deleted; the deployment's own are read-only; names are unique across all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_instances_are_managed_by_admins_and_used_by_the_gateway() {
    on_each_backend(|store| async move {
        let (mock, upstream) = mock_upstream().await;
        let sink = Arc::new(Collect::default());
        let server = gateway_server(&store, &mock, true, true, Some(Arc::clone(&sink))).await;
        let member = server.user("frank").await;
        let admin = server.admin_token.clone();
        let call = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
            let mut r = server
                .http
                .request(method, server.api_v2(path))
                .header("Coder-Session-Token", token);
            if let Some(b) = body {
                r = r.json(&b);
            }
            r.send()
        };
        const STORED_KEY: &str = "sk-stored-instance-0123456789abcdef";
        let create = json!({"name": "openai-stored", "type": "openai",
            "base_url": format!("{mock}/openai-stored/v1"), "api_key": STORED_KEY});
        let denied = call(
            reqwest::Method::POST,
            "/aibridge/providers",
            &member.token,
            Some(create.clone()),
        )
        .await
        .unwrap();
        assert_eq!(denied.status(), 403);
        let created = call(
            reqwest::Method::POST,
            "/aibridge/providers",
            &admin,
            Some(create.clone()),
        )
        .await
        .unwrap();
        assert_eq!(created.status(), 201);
        let text = created.text().await.unwrap();
        assert!(!text.contains(STORED_KEY), "{text}");
        let created: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(created["has_api_key"], true);
        assert_eq!(created["source"], "database");
        // Sealed at rest.
        let row = store
            .get_aibridge_instance("openai-stored")
            .await
            .unwrap()
            .unwrap();
        assert!(!row.api_key_sealed.clone().unwrap().contains(STORED_KEY));
        // Taken names: stored, environment, default, reserved.
        for (name, status) in [
            ("openai-stored", 409),
            ("openai-b", 409),
            ("anthropic", 409),
            ("providers", 400),
        ] {
            let mut body = create.clone();
            body["name"] = json!(name);
            let a = call(
                reqwest::Method::POST,
                "/aibridge/providers",
                &admin,
                Some(body),
            )
            .await
            .unwrap();
            assert_eq!(a.status(), status, "{name}");
        }
        let bad = call(
            reqwest::Method::POST,
            "/aibridge/providers",
            &admin,
            Some(json!({"name": "x", "type": "gemini"})),
        )
        .await
        .unwrap();
        assert_eq!(bad.status(), 400);
        let list: Vec<Value> = call(reqwest::Method::GET, "/aibridge/providers", &admin, None)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = list.iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "openai",
                "anthropic",
                "openai-b",
                "anthropic-corp",
                "openai-stored"
            ]
        );
        assert!(list.iter().all(|i| i.get("api_key").is_none()));
        assert_eq!(list[2]["read_only"], true);

        // The gateway uses it, with its key.
        let user = server.user("gina").await;
        let a = server
            .http
            .post(server.api_v2("/aibridge/openai-stored/v1/chat/completions"))
            .bearer_auth(&user.token)
            .header(SCENARIO, "chat-json")
            .json(&json!({"model": "gpt-4o", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(a.status(), 200);
        let seen = upstream.seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(seen.tag, "openai-stored");
        assert_eq!(
            header(&seen, "authorization"),
            Some(&*format!("Bearer {STORED_KEY}"))
        );
        let records = sink.wait_for(1).await;
        assert_eq!(records[0].start.provider_name, "openai-stored");

        // Changes: the key removed; the deployment's instances are read-only.
        let patched: Value = call(
            reqwest::Method::PATCH,
            "/aibridge/providers/openai-stored",
            &admin,
            Some(json!({"api_key": ""})),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(patched["has_api_key"], false);
        for name in ["openai", "openai-b"] {
            let a = call(
                reqwest::Method::PATCH,
                &format!("/aibridge/providers/{name}"),
                &admin,
                Some(json!({"api_key": "x"})),
            )
            .await
            .unwrap();
            assert_eq!(a.status(), 403, "{name}");
            let a = call(
                reqwest::Method::DELETE,
                &format!("/aibridge/providers/{name}"),
                &admin,
                None,
            )
            .await
            .unwrap();
            assert_eq!(a.status(), 403, "{name}");
        }
        let gone = call(
            reqwest::Method::DELETE,
            "/aibridge/providers/openai-stored",
            &admin,
            None,
        )
        .await
        .unwrap();
        assert_eq!(gone.status(), 204);
        let again = call(
            reqwest::Method::DELETE,
            "/aibridge/providers/openai-stored",
            &admin,
            None,
        )
        .await
        .unwrap();
        assert_eq!(again.status(), 404);
        let a = server
            .http
            .post(server.api_v2("/aibridge/openai-stored/v1/chat/completions"))
            .bearer_auth(&user.token)
            .json(&json!({"model": "gpt-4o", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(a.status(), 404);
        server.stop().await;
    })
    .await;
}

/// A name both stored through the API and configured by the environment is configured
/// twice: the server does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_stored_and_in_the_environment_stops_the_start() {
    on_each_backend(|store| async move {
        store
            .insert_aibridge_instance(&chatd_core::store::StoredAibridgeInstance {
                id: codersdk::Uuid::new_v4(),
                name: "corp".to_owned(),
                instance_type: "openai".to_owned(),
                base_url: "https://llm.corp.example/v1".to_owned(),
                api_key_sealed: None,
                bedrock_region: None,
                bedrock_model: None,
                bedrock_small_fast_model: None,
            })
            .await
            .unwrap();
        let keyring = chatd_test_support::server::test_keyring();
        let mut options =
            server_example::ServerOptions::new(chatd_core::StoreOptions::new("unused"), keyring);
        options.ai_gateway.instances = vec![instance(
            "corp",
            InstanceType::OpenAi,
            "https://other.example/v1".to_owned(),
            OPENAI_B_KEY,
        )];
        let admin = chatd_test_support::server::admin_over(&store, &options);
        let err = server_example::state::build_on(admin, options)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("configured twice"), "{err}");
    })
    .await;
}

/// A client that goes away mid-stream, and an upstream whose stream breaks, each leave one
/// record saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_and_broken_upstreams_are_recorded() {
    on_each_backend(|store| async move {
        let (mock, _upstream) = mock_upstream().await;
        let sink = Arc::new(Collect::default());
        let server = gateway_server(&store, &mock, true, true, Some(Arc::clone(&sink))).await;
        let user = server.user("hana").await;
        let send = |sc: &'static str| {
            server
                .http
                .post(server.api_v2("/aibridge/openai/v1/chat/completions"))
                .bearer_auth(&user.token)
                .header(SCENARIO, sc)
                .json(&json!({"model": "gpt-4o", "stream": true, "messages": []}))
                .send()
        };
        let mut stalled = send("stalled-stream").await.unwrap();
        assert_eq!(stalled.status(), 200);
        let first = stalled.chunk().await.unwrap().unwrap();
        assert!(
            first.starts_with(b"data: "),
            "the first event arrives at once, unbuffered"
        );
        drop(stalled);
        let records = sink.wait_for(1).await;
        assert_eq!(records.len(), 1);
        assert!(records[0].client_disconnected, "{:#?}", records[0]);
        assert_eq!(
            records[0].error_kind, None,
            "the client left; the upstream did nothing wrong"
        );
        assert_eq!(records[0].model, "gpt-4o");

        let broken = send("broken-stream").await.unwrap();
        assert_eq!(broken.status(), 200);
        assert!(
            broken.bytes().await.is_err(),
            "the break reaches the client as a break"
        );
        let records = sink.wait_for(2).await;
        assert_eq!(records.len(), 2);
        let r = &records[1];
        assert!(!r.client_disconnected);
        assert_eq!(r.error_kind, Some(ChatErrorKind::Timeout), "{r:#?}");
        server.stop().await;
    })
    .await;
}
