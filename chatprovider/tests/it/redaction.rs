//! Secrets out of every provider error: a fake provider echoes everything the client sent
//! (every header value, the request URI) back in each way a provider reports failure
//! (status with a JSON body and an echo header, plain-text 500, 429, an in-stream error
//! event, a 200 JSON error document, `response.failed`), for every client. Random keys,
//! random extra-header values and random endpoint query credentials never appear in the
//! error, its source chain, its classification or the payloads built from it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use chaterror::{classify, ProviderError, REDACTED};
use chatprovider::{
    AnthropicModel, ClientSettings, LanguageModel, Message, ModelRequest, OpenAiChatModel,
    OpenAiResponsesModel, Provider,
};
use codersdk::{SecretString, Timestamp};
use futures_util::StreamExt;
use proptest::prelude::*;

/// How the fake provider fails; the first path segment of the base URL.
const MODES: &[&str] = &[
    "status", "plain", "rate", "stream", "json200", "failed", "dump",
];

/// Everything the client sent, as the provider would echo it.
fn echo(uri: &Uri, headers: &HeaderMap) -> String {
    let mut out = format!("{uri}");
    for (name, value) in headers {
        out.push_str(&format!(
            " {name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    out
}

async fn fake_provider(uri: Uri, headers: HeaderMap) -> Response {
    let echoed = echo(&uri, &headers);
    let auth = headers
        .get("authorization")
        .or_else(|| headers.get("x-api-key"))
        .or_else(|| headers.get("api-key"))
        .cloned()
        .unwrap_or_else(|| axum::http::HeaderValue::from_static("none"));
    let mode = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    let json_error = |kind: &str| {
        serde_json::json!({
            "type": "error",
            "error": {"type": kind, "message": format!("Invalid credentials: {echoed}")},
        })
        .to_string()
    };
    let b = Response::builder();
    match mode {
        "status" => b
            .status(401)
            .header("content-type", "application/json")
            .header("x-echo-auth", auth)
            .body(Body::from(json_error("authentication_error"))),
        "plain" => b
            .status(500)
            .header("content-type", "text/plain")
            .body(Body::from(format!("upstream said: {echoed}"))),
        "rate" => b
            .status(429)
            .header("retry-after", "1")
            .header("content-type", "application/json")
            .body(Body::from(json_error("rate_limit_error"))),
        "stream" => b
            .status(200)
            .header("content-type", "text/event-stream")
            .body(Body::from(format!(
                "event: error\ndata: {}\n\n",
                json_error("overloaded_error")
            ))),
        "json200" => b
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(json_error("server_error"))),
        "failed" => {
            let event = serde_json::json!({
                "type": "response.failed",
                "response": {"error": {"code": "server_error", "message": echoed}},
            });
            b.status(200)
                .header("content-type", "text/event-stream")
                .body(Body::from(format!(
                    "event: response.failed\ndata: {event}\n\n"
                )))
        }
        // An HTTP dump as some SDK wrappers report it, echo in the head and the body.
        _ => b
            .status(400)
            .header("content-type", "text/plain")
            .body(Body::from(format!(
                "HTTP/1.1 400 Bad Request\r\nX-Echo: {echoed}\r\n\r\n{}",
                json_error("invalid_request_error")
            ))),
    }
    .unwrap()
}

/// Everything anyone could show of an error: text, debug, body, headers, source chain, the
/// classification and the wire payloads built from it.
fn shown(err: &ProviderError) -> String {
    let mut out = format!("{err}\n{err:?}\n{}\n", String::from_utf8_lossy(err.body()));
    for (n, v) in err.headers() {
        out.push_str(&format!("{n}: {v}\n"));
    }
    let mut node: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = node {
        out.push_str(&format!("{e}\n{e:?}\n"));
        node = e.source();
    }
    let c = classify(err);
    out.push_str(&format!("{c:?}\n{}\n", serde_json::to_string(&c).unwrap()));
    if let Some(e) = c.to_chat_error() {
        out.push_str(&serde_json::to_string(&e).unwrap());
    }
    if let Some(r) = c.to_stream_retry(1, Duration::from_secs(1), Timestamp::now()) {
        out.push_str(&serde_json::to_string(&r).unwrap());
    }
    out
}

/// Values that can travel in an HTTP header: visible ASCII.
fn header_secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "sk-[A-Za-z0-9_-]{20,60}",
        "sk-ant-api03-[A-Za-z0-9_-]{20,80}",
        "[A-Za-z0-9]{8,48}",
        "[!-~]{8,48}",
    ]
    .prop_filter("not the marker", |s| {
        !s.contains("REDACTED") && !REDACTED.contains(s.as_str())
    })
}

/// Query credentials: URL-safe.
fn query_secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{12,40}"
}

fn models(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    extra: &str,
    query: &str,
) -> Vec<(&'static str, Arc<dyn LanguageModel>)> {
    let settings = || ClientSettings {
        extra_headers: vec![("x-proxy-credential".into(), extra.to_owned())],
        startup_timeout: Duration::from_secs(10),
        http: http.clone(),
        // Not `..Default::default()`: that builds a client (TLS roots) per model.
        user_agent: "redaction-test".into(),
        max_event_bytes: chatprovider::sse::DEFAULT_MAX_EVENT_BYTES,
        aws: None,
    };
    let with_query = format!("{base}?api_key={query}");
    vec![
        (
            "openai-chat",
            Arc::new(
                OpenAiChatModel::new(
                    Provider::OpenAi,
                    "gpt-test",
                    Some(SecretString::new(key)),
                    Some(&with_query),
                    settings(),
                )
                .unwrap(),
            ),
        ),
        (
            "openai-compat-chat",
            Arc::new(
                OpenAiChatModel::new(
                    Provider::OpenAiCompat,
                    "local-model",
                    Some(SecretString::new(key)),
                    Some(&with_query),
                    settings(),
                )
                .unwrap(),
            ),
        ),
        (
            "openai-responses",
            Arc::new(
                OpenAiResponsesModel::new(
                    Provider::OpenAi,
                    "gpt-5",
                    key,
                    Some(&with_query),
                    settings(),
                )
                .unwrap(),
            ),
        ),
        (
            "anthropic",
            Arc::new(AnthropicModel::new(
                "claude-test",
                key,
                Some(base),
                settings(),
            )),
        ),
        (
            "bedrock",
            Arc::new(chatprovider::BedrockModel::with_bearer_region(
                "anthropic.claude-test-v1:0",
                chatprovider::BedrockAuth::Bearer(SecretString::new(key)),
                Some(base),
                "us-east-1",
                settings(),
            )),
        ),
    ]
}

fn request() -> ModelRequest {
    ModelRequest {
        messages: vec![Message::user_text("hi")],
        ..Default::default()
    }
}

fn start_server(rt: &tokio::runtime::Runtime) -> String {
    rt.block_on(async {
        let app = axum::Router::new().fallback(fake_provider);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    })
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) -> Result<(), TestCaseError> {
    for secret in secrets {
        let json = serde_json::to_string(secret).unwrap();
        let json = json.trim_matches('"');
        prop_assert!(
            !text.contains(secret) && !text.contains(json),
            "{what} leaks {secret:?}:\n{text}"
        );
    }
    Ok(())
}

#[test]
fn no_provider_error_path_shows_a_secret() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = start_server(&rt);
    // One client for all cases: building one (TLS roots) costs more than a request.
    let http = chatprovider::default_http_client();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(
            &(header_secret(), header_secret(), query_secret()),
            |(key, extra, query)| {
                // Errors per client that had something to redact: the echo reached the
                // error in most modes (a client that ignores a mode's format reports a
                // closed stream instead), else this test would prove nothing.
                let mut redacted = std::collections::BTreeMap::new();
                for mode in MODES {
                    let base = format!("{server}/{mode}");
                    for (client, model) in models(&http, &base, &key, &extra, &query) {
                        let err = rt.block_on(async {
                            let mut stream = model.stream(request());
                            loop {
                                match stream.next().await {
                                    Some(Ok(_)) => continue,
                                    Some(Err(e)) => break e,
                                    None => {
                                        panic!("{client}/{mode}: the stream ended without an error")
                                    }
                                }
                            }
                        });
                        let what = format!("{client}/{mode}");
                        let text = shown(&err);
                        if text.contains(REDACTED) {
                            *redacted.entry(client).or_insert(0) += 1;
                        }
                        assert_clean(&what, &text, &[&key, &extra, &query])?;
                        // The model's own redactor knows all three.
                        let r = model.redactor();
                        let known: &[&String] = if client == "anthropic" || client == "bedrock" {
                            &[&key, &extra] // their base URLs carry no query
                        } else {
                            &[&key, &extra, &query]
                        };
                        for s in known {
                            prop_assert!(
                                !r.redact(&format!("<{s}>")).contains(s.as_str()),
                                "{what}: redactor misses {s:?}"
                            );
                        }
                    }
                }
                for (client, n) in &redacted {
                    prop_assert!(
                        *n >= MODES.len() / 2,
                        "{client}: only {n} errors echoed a secret"
                    );
                }
                prop_assert_eq!(redacted.len(), 5);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn generate_reports_the_redacted_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = start_server(&rt);
    let key = "sk-ant-api03-generate-path-secret-0123456789";
    let model = AnthropicModel::new(
        "claude-test",
        key,
        Some(&format!("{server}/status")),
        ClientSettings::default(),
    );
    let err = rt.block_on(model.generate(request())).unwrap_err();
    assert_eq!(err.status(), Some(401));
    let text = shown(&err);
    assert!(!text.contains(key), "{text}");
    assert!(!text.contains("generate-path-secret"), "{text}");
    assert_eq!(
        classify(&err).kind(),
        Some(&codersdk::ChatErrorKind::Auth),
        "redaction keeps the classification"
    );
}
