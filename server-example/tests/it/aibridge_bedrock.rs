//! Bedrock-backed Anthropic through the AI Gateway: the official `@anthropic-ai/sdk` calls
//! `/api/v2/aibridge/{instance}/v1/messages` on `bedrock` instances, the gateway invokes a
//! mock of Bedrock's runtime (event-stream bodies from `testdata/bedrock/`, built from the
//! recorded Anthropic streams in `testdata/streams/`), and the SDK must see exactly what it
//! sees from Anthropic itself for the same stream. The mock checks what Bedrock would: the
//! path, the body, the bearer key or the SigV4 signature (recomputed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus, Uri};
use axum::response::{IntoResponse, Response};
use chatd_core::aibridge::{
    interception_cost_micros, BedrockSettings, CredentialKind, InstanceSource, InstanceType,
    InterceptionRecord, ProviderInstance,
};
use chatd_core::store::Store;
use chatd_test_support::db::on_each_backend;
use chatd_test_support::fixtures::stream_body;
use chatd_test_support::server::{serve, TestServer};
use chatprovider::gateway::AddressPolicy;
use chatprovider::sse::{SseDecoder, DEFAULT_MAX_EVENT_BYTES};
use chatprovider::{encode_chunk_frame, encode_exception_frame, AwsCredentials, AwsEnvironment};
use codersdk::ChatErrorKind;
use serde_json::{json, Value};
use server_example::routes::aibridge::GatewayOptions;

use super::aibridge::{run_sdks, Collect};

const ANTHROPIC_KEY: &str = "sk-ant-direct-0123456789abcdef";
const BEDROCK_KEY: &str = "ABSKQmVkcm9ja0FQSUtleS0wMTIzNDU2Nzg5";
const USER_BEDROCK_KEY: &str = "ABSKdXNlci1vd24tYmVkcm9jay1rZXk=";
const AKID: &str = "AKIAGATEWAYTEST0001";
const AWS_SECRET: &str = "gatewaytestsecretaccesskey0123456789abcd";
const AWS_TOKEN: &str = "gatewaytestsessiontoken";

/// The model the mock serves the tool-use stream for (priced in the book's Bedrock rows).
const SONNET: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";
const MAPPED_SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const MAPPED_HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";

/// The origin of `testdata/bedrock/claude--text-then-tool-use.eventstream`.
const ORIGIN_STREAM: &str = "anthropic-messages--text-then-tool-use.sse";

fn bedrock_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../testdata/bedrock/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// What the mock received.
#[derive(Debug, Clone)]
struct Seen {
    tag: String,
    /// The path as sent (still percent-encoded).
    raw_path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Mock {
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn message_json() -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_json_1", "name": "get_weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 50, "output_tokens": 20, "cache_read_input_tokens": 7,
            "cache_creation_input_tokens": 3}
    })
}

fn answer(content_type: &'static str, body: Vec<u8>) -> Response {
    ([("content-type", content_type)], body).into_response()
}

/// Anthropic's `/v1/messages` (the reference the Bedrock answers are compared with).
async fn anthropic_handler(
    State(mock): State<Mock>,
    Path(tag): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stream = serde_json::from_slice::<Value>(&body).unwrap()["stream"] == json!(true);
    mock.seen.lock().unwrap().push(Seen {
        tag,
        raw_path: uri.path().to_owned(),
        headers,
        body,
    });
    if stream {
        // The recording ends without the blank line that ends its last event, which an SSE
        // parser (the SDK's) then drops; Anthropic ends it.
        let mut body = stream_body(ORIGIN_STREAM);
        if !body.ends_with(b"\n\n") {
            body.extend_from_slice(b"\n\n");
        }
        answer("text/event-stream", body)
    } else {
        answer("application/json", message_json().to_string().into_bytes())
    }
}

/// Bedrock's runtime: `POST /model/{id}/invoke[-with-response-stream]`.
async fn bedrock_handler(
    State(mock): State<Mock>,
    Path((tag, model, action)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    mock.seen.lock().unwrap().push(Seen {
        tag: tag.clone(),
        raw_path: uri.path().to_owned(),
        headers,
        body,
    });
    let stream = action == "invoke-with-response-stream";
    let event_stream = "application/vnd.amazon.eventstream";
    match model.as_str() {
        "throttled" => (
            AxumStatus::TOO_MANY_REQUESTS,
            [
                ("content-type", "application/json"),
                (
                    "x-amzn-errortype",
                    "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                ),
                ("retry-after", "3"),
            ],
            r#"{"message":"Too many requests, please wait before trying again."}"#,
        )
            .into_response(),
        "exception" => {
            let mut body = encode_chunk_frame(
                r#"{"type":"message_start","message":{"id":"msg_x","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}"#,
            );
            body.extend(encode_exception_frame(
                "throttlingException",
                "Too many tokens, please wait before trying again.",
            ));
            answer(event_stream, body)
        }
        _ if tag == "bedrock-mapped" => {
            answer(event_stream, bedrock_fixture("claude--text.eventstream"))
        }
        _ if stream => answer(
            event_stream,
            bedrock_fixture("claude--text-then-tool-use.eventstream"),
        ),
        _ => answer("application/json", message_json().to_string().into_bytes()),
    }
}

async fn mock_upstream() -> (String, Mock) {
    let mock = Mock::default();
    let app = axum::Router::new()
        .route("/{tag}/v1/messages", axum::routing::post(anthropic_handler))
        .route(
            "/{tag}/model/{model}/{action}",
            axum::routing::post(bedrock_handler),
        )
        .with_state(mock.clone());
    (serve(app).await, mock)
}

fn aws_credentials() -> AwsCredentials {
    AwsCredentials::new(AKID, AWS_SECRET, Some(AWS_TOKEN.to_owned()), None, "test")
}

fn bedrock(
    name: &str,
    mock: &str,
    key: Option<&str>,
    region: Option<&str>,
    models: Option<(&str, &str)>,
) -> ProviderInstance {
    ProviderInstance {
        name: name.to_owned(),
        instance_type: InstanceType::Bedrock,
        base_url: format!("{mock}/{name}"),
        api_key: key.map(Into::into),
        source: InstanceSource::Environment,
        bedrock: BedrockSettings::new(region, models.map(|m| m.0), models.map(|m| m.1)).unwrap(),
    }
}

async fn bedrock_server(store: &Store, mock: &str, sink: Arc<Collect>) -> TestServer {
    let mut options = GatewayOptions::default();
    options.allowed_private = AddressPolicy::parse_allow_list("127.0.0.1/32").unwrap();
    // The AWS chain's region is us-west-2; an instance's own region wins over it.
    options.aws = AwsEnvironment::fixed(aws_credentials(), Some("us-west-2"));
    options.instances = vec![
        ProviderInstance {
            name: "anthropic-direct".to_owned(),
            instance_type: InstanceType::Anthropic,
            base_url: format!("{mock}/anthropic-direct"),
            api_key: Some(ANTHROPIC_KEY.into()),
            source: InstanceSource::Environment,
            bedrock: BedrockSettings::default(),
        },
        bedrock("bedrock-key", mock, Some(BEDROCK_KEY), None, None),
        bedrock("bedrock-sigv4", mock, None, Some("eu-west-1"), None),
        bedrock("bedrock-chain", mock, None, None, None),
        bedrock(
            "bedrock-mapped",
            mock,
            Some(BEDROCK_KEY),
            None,
            Some((MAPPED_SONNET, MAPPED_HAIKU)),
        ),
    ];
    TestServer::builder(store)
        .ai_gateway(options)
        .interception_sink(sink)
        .start()
        .await
}

/// `20261207T101010Z` as a time.
fn amz_date(text: &str) -> SystemTime {
    let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    let (hh, mm, ss) = (n(9..11), n(11..13), n(13..15));
    // Days from the civil date (proleptic Gregorian), as in Howard Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3_600 + mm * 60 + ss;
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
}

/// Recomputes the SigV4 signature of what reached the mock, for `region`.
fn assert_signed(seen: &Seen, region: &str) {
    let h = |name: &str| seen.headers.get(name).unwrap().to_str().unwrap().to_owned();
    let url = format!("http://{}{}", h("host"), seen.raw_path);
    let expected = chatprovider::sigv4_headers(
        &chatprovider::SigV4Request {
            method: "POST",
            url: &url,
            headers: &[("content-type", "application/json")],
            body: &seen.body,
        },
        &aws_credentials(),
        region,
        chatprovider::BEDROCK_SIGNING_NAME,
        amz_date(&h("x-amz-date")),
    )
    .unwrap();
    let expected = |name: &str| {
        expected
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(h("authorization"), expected("authorization"), "{url}");
    assert!(h("authorization").contains(&format!("/{region}/bedrock/aws4_request")));
    assert_eq!(h("x-amz-security-token"), AWS_TOKEN);
    assert!(seen.headers.get("x-api-key").is_none());
}

/// The (event, data) pairs of a server-sent event stream.
fn events(body: &[u8]) -> Vec<(String, String)> {
    let mut decoder = SseDecoder::new(DEFAULT_MAX_EVENT_BYTES);
    let mut out = Vec::new();
    decoder.push(body, &mut out).unwrap();
    decoder.finish(&mut out).unwrap();
    out.into_iter().map(|e| (e.event, e.data)).collect()
}

fn record<'a>(
    records: &'a [InterceptionRecord],
    instance: &str,
    model: &str,
) -> &'a InterceptionRecord {
    records
        .iter()
        .find(|r| r.start.provider_name == instance && r.model == model)
        .unwrap_or_else(|| panic!("no record of {model} via {instance} in {records:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_sdk_gets_from_bedrock_what_it_gets_from_anthropic() {
    on_each_backend(|store| async move {
        let (mock, upstream) = mock_upstream().await;
        let sink = Arc::new(Collect::default());
        let server = bedrock_server(&store, &mock, Arc::clone(&sink)).await;
        let user = server.user("bea").await;
        let t = user.token.as_str();
        let results = run_sdks(&server.base, json!([
            {"id": "anthropic-stream", "sdk": "anthropic", "api": "messages",
             "instance": "anthropic-direct", "apiKey": t, "stream": true, "tools": true,
             "model": "claude-sonnet-4-5"},
            {"id": "anthropic-json", "sdk": "anthropic", "api": "messages",
             "instance": "anthropic-direct", "apiKey": t, "stream": false, "tools": true},
            {"id": "bedrock-stream", "sdk": "anthropic", "api": "messages",
             "instance": "bedrock-key", "apiKey": t, "stream": true, "tools": true,
             "model": SONNET,
             "headers": {"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}},
            {"id": "bedrock-json", "sdk": "anthropic", "api": "messages",
             "instance": "bedrock-key", "apiKey": t, "stream": false, "tools": true,
             "model": SONNET},
            {"id": "bedrock-sigv4", "sdk": "anthropic", "api": "messages",
             "instance": "bedrock-sigv4", "apiKey": t, "stream": true, "model": SONNET},
            {"id": "bedrock-chain", "sdk": "anthropic", "api": "messages",
             "instance": "bedrock-chain", "authToken": t, "stream": false, "model": SONNET},
            {"id": "bedrock-byok", "sdk": "anthropic", "api": "messages",
             "instance": "bedrock-key", "apiKey": USER_BEDROCK_KEY, "stream": false,
             "model": SONNET, "headers": {"X-Coder-AI-Governance-Token": t}},
            {"id": "bedrock-throttled", "sdk": "anthropic", "api": "messages",
             "instance": "bedrock-key", "apiKey": t, "stream": true, "model": "throttled"},
            {"id": "bedrock-exception", "sdk": "anthropic", "api": "messages",
             "instance": "bedrock-key", "apiKey": t, "stream": true, "model": "exception"},
            {"id": "mapped-sonnet", "sdk": "anthropic", "api": "messages",
             "instance": "bedrock-mapped", "apiKey": t, "stream": true,
             "model": "claude-sonnet-4-5"},
            {"id": "mapped-haiku", "sdk": "anthropic", "api": "messages",
             "instance": "bedrock-mapped", "apiKey": t, "stream": true,
             "model": "claude-haiku-4-5"},
            {"id": "bedrock-models", "sdk": "anthropic", "api": "models",
             "instance": "bedrock-mapped", "apiKey": t}
        ]));

        // The SDK's view: Bedrock's answers are Anthropic's.
        for (bedrock, anthropic) in [
            ("bedrock-stream", "anthropic-stream"),
            ("bedrock-json", "anthropic-json"),
            ("bedrock-sigv4", "anthropic-stream"),
            ("bedrock-chain", "anthropic-json"),
            ("bedrock-byok", "anthropic-json"),
        ] {
            let (b, a) = (&results[bedrock], &results[anthropic]);
            assert_eq!(b["ok"], true, "{bedrock}: {b}");
            assert_eq!(a["ok"], true, "{anthropic}: {a}");
            for field in ["text", "toolCalls", "usage", "model"] {
                assert_eq!(b[field], a[field], "{bedrock} vs {anthropic}: {field}");
            }
        }
        assert_eq!(results["anthropic-stream"]["toolCalls"].as_array().unwrap().len(), 1);
        let r = &results["bedrock-throttled"];
        assert_eq!((r["ok"].clone(), r["status"].clone()), (json!(false), json!(429)), "{r}");
        assert_eq!(r["retryAfter"], "3", "Retry-After passes through: {r}");
        assert_eq!(r["errorBody"]["type"], "error", "Anthropic's shape: {r}");
        assert_eq!(r["errorBody"]["error"]["type"], "rate_limit_error", "{r}");
        assert!(
            r["errorBody"]["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("ThrottlingException: Too many requests"),
            "{r}"
        );
        let r = &results["bedrock-exception"];
        assert_eq!(r["ok"], false, "{r}");
        assert!(r["error"].as_str().unwrap().contains("throttlingException"), "{r}");
        for id in ["mapped-sonnet", "mapped-haiku"] {
            assert_eq!(results[id]["ok"], true, "{id}: {}", results[id]);
            assert!(!results[id]["text"].as_str().unwrap().is_empty());
        }
        assert_eq!(
            results["bedrock-models"]["models"],
            json!([MAPPED_SONNET, MAPPED_HAIKU])
        );

        // What reached "Bedrock".
        let seen = upstream.seen.lock().unwrap().clone();
        let on = |tag: &str| -> Vec<&Seen> { seen.iter().filter(|s| s.tag == tag).collect() };
        let keyed = on("bedrock-key");
        assert_eq!(keyed.len(), 5, "stream, json, byok, throttled, exception");
        let encoded = "anthropic.claude-sonnet-4-5-20250929-v1%3A0";
        for s in &keyed {
            for name in ["x-api-key", "anthropic-version", "anthropic-beta", "x-stainless-lang"] {
                assert!(s.headers.get(name).is_none(), "{name} reached Bedrock");
            }
            for (name, value) in &s.headers {
                assert!(!name.as_str().starts_with("x-coder-"), "{name} reached Bedrock");
                assert!(!value.to_str().unwrap_or_default().contains(t), "the token reached Bedrock");
            }
            let body: Value = serde_json::from_slice(&s.body).unwrap();
            assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
            assert!(body.get("model").is_none() && body.get("stream").is_none(), "{body}");
            assert_eq!(body["max_tokens"], 1024);
        }
        let stream_call = keyed[0];
        assert_eq!(
            stream_call.raw_path,
            format!("/bedrock-key/model/{encoded}/invoke-with-response-stream")
        );
        assert_eq!(stream_call.headers["authorization"], format!("Bearer {BEDROCK_KEY}"));
        assert_eq!(stream_call.headers["accept"], "application/vnd.amazon.eventstream");
        let body: Value = serde_json::from_slice(&stream_call.body).unwrap();
        assert_eq!(
            body["anthropic_beta"],
            json!(["interleaved-thinking-2025-05-14"]),
            "only the flags Bedrock accepts"
        );
        assert_eq!(keyed[1].raw_path, format!("/bedrock-key/model/{encoded}/invoke"));
        assert_eq!(
            keyed[2].headers["authorization"],
            format!("Bearer {USER_BEDROCK_KEY}"),
            "BYOK: the caller's Bedrock key"
        );
        assert_signed(on("bedrock-sigv4")[0], "eu-west-1");
        assert_signed(on("bedrock-chain")[0], "us-west-2");
        let mapped: Vec<&str> = on("bedrock-mapped").iter().map(|s| s.raw_path.as_str()).collect();
        assert_eq!(
            mapped,
            vec![
                "/bedrock-mapped/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream",
                "/bedrock-mapped/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream",
            ]
        );

        // The records: Bedrock's model, the same usage and tool calls as Anthropic's, and
        // the same cost (Bedrock and Anthropic price Claude Sonnet 4.5 alike).
        let records = sink.wait_for(11).await;
        assert_eq!(records.len(), 11, "{records:#?}");
        let direct = records
            .iter()
            .find(|r| r.start.provider_name == "anthropic-direct" && r.start.streamed)
            .unwrap();
        let via_bedrock = records
            .iter()
            .find(|r| r.start.provider_name == "bedrock-key" && r.start.streamed && r.model == SONNET)
            .unwrap();
        assert_eq!(via_bedrock.start.provider_type, "bedrock");
        assert_eq!(via_bedrock.error_kind, None, "{via_bedrock:#?}");
        assert_eq!(via_bedrock.usage, direct.usage);
        assert!(!via_bedrock.usage.is_empty());
        assert_eq!(via_bedrock.tool_calls.len(), 1);
        assert_eq!(via_bedrock.tool_calls[0].name, direct.tool_calls[0].name);
        let cost = interception_cost_micros(via_bedrock);
        assert!(cost.is_some_and(|c| c > 0), "priced from the book's bedrock rows");
        assert_eq!(cost, interception_cost_micros(direct));
        assert!(!via_bedrock.start.credential_hint.contains(BEDROCK_KEY));
        let signed = record(&records, "bedrock-sigv4", SONNET);
        assert_eq!(signed.start.credential_kind, CredentialKind::Central);
        assert!(!signed.start.credential_hint.is_empty());
        assert!(!signed.start.credential_hint.contains(AKID), "masked");
        let byok = records
            .iter()
            .find(|r| r.start.credential_kind == CredentialKind::Byok)
            .unwrap();
        assert_eq!(byok.start.provider_name, "bedrock-key");
        let throttled = record(&records, "bedrock-key", "throttled");
        assert_eq!(throttled.upstream_status, Some(429));
        assert_eq!(throttled.error_kind, Some(ChatErrorKind::RateLimit), "{throttled:#?}");
        let exception = record(&records, "bedrock-key", "exception");
        assert_eq!(exception.upstream_status, Some(200));
        assert!(exception.error_kind.is_some(), "{exception:#?}");
        assert!(
            exception.error_message.as_deref().unwrap_or_default().contains("throttlingException"),
            "{exception:#?}"
        );
        let haiku = record(&records, "bedrock-mapped", MAPPED_HAIKU);
        assert!(interception_cost_micros(haiku).is_some(), "{haiku:#?}");
        record(&records, "bedrock-mapped", MAPPED_SONNET);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_streams_are_anthropic_events_one_for_one() {
    on_each_backend(|store| async move {
        let (mock, _upstream) = mock_upstream().await;
        let sink = Arc::new(Collect::default());
        let server = bedrock_server(&store, &mock, Arc::clone(&sink)).await;
        let user = server.user("ben").await;
        let response = server
            .http
            .post(server.api_v2("/aibridge/bedrock-key/v1/messages"))
            .header("x-api-key", &user.token)
            .json(&json!({"model": SONNET, "max_tokens": 64, "stream": true, "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        assert!(response.headers().get("content-length").is_none());
        let body = response.bytes().await.unwrap();
        let got = events(&body);
        let origin = events(&stream_body(ORIGIN_STREAM));
        assert!(got.len() > 5);
        assert_eq!(got.len(), origin.len());
        for ((ge, gd), (oe, od)) in got.iter().zip(&origin) {
            assert_eq!(ge, oe, "event names");
            let (g, o): (Value, Value) = (
                serde_json::from_str(gd).unwrap(),
                serde_json::from_str(od).unwrap(),
            );
            assert_eq!(g, o, "event data");
        }

        // A request without a model never reaches Bedrock.
        let bad = server
            .http
            .post(server.api_v2("/aibridge/bedrock-key/v1/messages"))
            .header("x-api-key", &user.token)
            .json(&json!({"max_tokens": 64, "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        let v: Value = bad.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        // Bedrock instances serve only the Messages API.
        let wrong = server
            .http
            .post(server.api_v2("/aibridge/bedrock-key/v1/chat/completions"))
            .bearer_auth(&user.token)
            .json(&json!({"model": "m", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 404);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_instances_are_managed_through_the_admin_api() {
    on_each_backend(|store| async move {
        let (mock, upstream) = mock_upstream().await;
        let sink = Arc::new(Collect::default());
        let server = bedrock_server(&store, &mock, Arc::clone(&sink)).await;
        let admin = server.admin_token.clone();
        let call = |method: reqwest::Method, path: &str, body: Value| {
            server
                .http
                .request(method, server.api_v2(path))
                .header("Coder-Session-Token", &admin)
                .json(&body)
                .send()
        };
        let created = call(
            reqwest::Method::POST,
            "/aibridge/providers",
            json!({"name": "claude-aws", "type": "bedrock", "bedrock_region": "eu-central-1",
                   "bedrock_model": MAPPED_SONNET, "bedrock_small_fast_model": MAPPED_HAIKU}),
        )
        .await
        .unwrap();
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        assert_eq!(created["type"], "bedrock");
        assert_eq!(
            created["base_url"],
            "https://bedrock-runtime.eu-central-1.amazonaws.com"
        );
        assert_eq!(created["bedrock_region"], "eu-central-1");
        assert_eq!(created["bedrock_small_fast_model"], MAPPED_HAIKU);
        assert_eq!(created["has_api_key"], false);

        // The region moves the endpoint with it; an empty model removes the mapping
        // (and the small, fast model must go with it).
        let patched = call(
            reqwest::Method::PATCH,
            "/aibridge/providers/claude-aws",
            json!({"bedrock_region": "us-east-2"}),
        )
        .await
        .unwrap();
        assert_eq!(patched.status(), 200);
        let patched: Value = patched.json().await.unwrap();
        assert_eq!(
            patched["base_url"],
            "https://bedrock-runtime.us-east-2.amazonaws.com"
        );
        let orphan = call(
            reqwest::Method::PATCH,
            "/aibridge/providers/claude-aws",
            json!({"bedrock_model": ""}),
        )
        .await
        .unwrap();
        assert_eq!(orphan.status(), 400);
        let v: Value = orphan.json().await.unwrap();
        assert_eq!(
            v["validations"][0]["field"], "bedrock_small_fast_model",
            "{v}"
        );

        for (body, field) in [
            (json!({"name": "b1", "type": "bedrock"}), "base_url"),
            (
                json!({"name": "b2", "type": "openai", "bedrock_region": "us-east-1"}),
                "bedrock_region",
            ),
            (
                json!({"name": "b3", "type": "bedrock", "bedrock_region": "us-east-1.evil.com"}),
                "bedrock_region",
            ),
            (
                json!({"name": "b4", "type": "bedrock", "bedrock_region": "us-east-1",
                       "bedrock_model": "two words"}),
                "bedrock_model",
            ),
        ] {
            let r = call(reqwest::Method::POST, "/aibridge/providers", body.clone())
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{body}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["validations"][0]["field"], field, "{body}: {v}");
        }

        // A stored bedrock instance with a key, used by the gateway.
        let stored = call(
            reqwest::Method::POST,
            "/aibridge/providers",
            json!({"name": "bedrock-stored", "type": "bedrock",
                   "base_url": format!("{mock}/bedrock-stored"), "api_key": BEDROCK_KEY,
                   "bedrock_model": SONNET}),
        )
        .await
        .unwrap();
        assert_eq!(stored.status(), 201);
        let user = server.user("bo").await;
        let answer = server
            .http
            .post(server.api_v2("/aibridge/bedrock-stored/v1/messages"))
            .header("x-api-key", &user.token)
            .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let seen = upstream.seen.lock().unwrap().clone();
        let last = seen.last().unwrap();
        assert_eq!(last.tag, "bedrock-stored");
        assert_eq!(
            last.raw_path,
            "/bedrock-stored/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
        );
        assert_eq!(
            last.headers["authorization"],
            format!("Bearer {BEDROCK_KEY}")
        );
        let listed: Value = server
            .http
            .get(server.api_v2("/aibridge/providers"))
            .header("Coder-Session-Token", &admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = listed.to_string();
        assert!(!text.contains(BEDROCK_KEY), "keys are never shown");
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"bedrock-sigv4") && names.contains(&"bedrock-stored"));
        server.stop().await;
    })
    .await;
}
