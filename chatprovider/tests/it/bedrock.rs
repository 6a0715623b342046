//! The Bedrock client: event-stream frames built from the recorded Anthropic streams
//! (decoded like the SSE originals, whole and split at every byte), the stored frame
//! fixtures of `testdata/bedrock/`, SigV4 against AWS's published vectors and against a
//! local server that re-signs what it received, bearer mode on the wire, the exception
//! classes and their classification, the factory's credential modes, and redaction.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, SystemTime};

use chatd_test_support::fixtures::{read_testdata, stream_body, testdata_file_names};
use chatd_test_support::replay::{chunk, Recorded, ReplayServer, Reply};
use chaterror::{classify, ChatErrorKind, ProviderError};
use chatprovider::sse::{SseDecoder, SseEvent, DEFAULT_MAX_EVENT_BYTES};
use chatprovider::{
    bedrock_exception_status, bedrock_invoke_path, decode_bedrock_body, decode_body,
    encode_chunk_frame, encode_exception_frame, language_model, sigv4_headers, AnthropicDecoder,
    AnthropicRequestOptions, AwsCredentials, AwsEnvironment, BedrockAuth, BedrockFramer,
    BedrockModel, ClientSettings, LanguageModel, Message, ModelRequest, Provider, ProviderApiKeys,
    ProviderRequestOptions, SigV4Request, StreamDecoder, StreamPart, BEDROCK_ANTHROPIC_VERSION,
    BEDROCK_MAX_FRAME_BYTES,
};
use codersdk::SecretString;
use futures_util::StreamExt;
use serde_json::Value;

const TOKEN: &str = "bedrock-api-key-SECRET-0123456789";
const ACCESS_KEY: &str = "AKIDCHATDTEST0001";
const SECRET_KEY: &str = "chatd-test-secret-key-SECRET/0123456789abcd";
const SESSION_TOKEN: &str = "chatd-test-session-token-SECRET-FwoGZXIvYXdz";
const MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// The stored frame fixtures and the recorded Anthropic stream each one frames.
const STORED: &[(&str, &str)] = &[
    (
        "bedrock/claude--text.eventstream",
        "anthropic-messages--text.jsonl",
    ),
    (
        "bedrock/claude--text-then-tool-use.eventstream",
        "anthropic-messages--text-then-tool-use.sse",
    ),
    (
        "bedrock/claude--thinking-then-text.eventstream",
        "anthropic-messages--thinking-then-text.jsonl",
    ),
];

fn anthropic_fixture_names() -> Vec<String> {
    testdata_file_names("streams")
        .into_iter()
        .filter(|n| n.starts_with("anthropic-messages--"))
        .filter(|n| n.ends_with(".sse") || n.ends_with(".jsonl"))
        .collect()
}

/// The event JSON texts of a recorded Anthropic stream.
fn anthropic_events(name: &str) -> Vec<String> {
    let mut sse = SseDecoder::new(DEFAULT_MAX_EVENT_BYTES);
    let mut events: Vec<SseEvent> = Vec::new();
    let body = stream_body(name);
    sse.push(&body, &mut events).unwrap();
    sse.finish(&mut events).unwrap();
    events
        .into_iter()
        .map(|e| e.data.trim().to_owned())
        .filter(|d| !d.is_empty())
        .collect()
}

/// Bedrock's body for the same events: one `chunk` frame each.
fn framed(events: &[String]) -> Vec<u8> {
    events.iter().flat_map(|e| encode_chunk_frame(e)).collect()
}

/// Decodes `chunks` as the HTTP path does: framer, then the Anthropic decoder.
fn decode_chunks(chunks: &[&[u8]]) -> Result<Vec<StreamPart>, ProviderError> {
    let mut framer = BedrockFramer::new(BEDROCK_MAX_FRAME_BYTES);
    let mut decoder = AnthropicDecoder::new();
    let mut out = Vec::new();
    let mut events = Vec::new();
    for c in chunks {
        framer.push_bytes(c, &mut events)?;
        for e in events.drain(..) {
            if !decoder.is_done() {
                decoder.on_event(&e, &mut out)?;
            }
        }
    }
    framer.finish_body()?;
    decoder.on_end(&mut out)?;
    Ok(out)
}

fn settings() -> ClientSettings {
    ClientSettings {
        user_agent: "coder-agents/test (linux/amd64)".into(),
        ..Default::default()
    }
}

fn hello() -> ModelRequest {
    ModelRequest {
        messages: vec![Message::user_text("hi")],
        ..Default::default()
    }
}

fn bearer_model(base: &str) -> BedrockModel {
    BedrockModel::with_bearer_region(
        MODEL,
        BedrockAuth::Bearer(SecretString::from(TOKEN)),
        Some(base),
        "us-east-1",
        settings(),
    )
}

fn credentials() -> AwsCredentials {
    AwsCredentials::new(
        ACCESS_KEY,
        SECRET_KEY,
        Some(SESSION_TOKEN.to_owned()),
        None,
        "chatd-test",
    )
}

fn sigv4_model(base: Option<&str>, region: Option<&str>) -> BedrockModel {
    BedrockModel::new(
        MODEL,
        BedrockAuth::Aws(AwsEnvironment::fixed(credentials(), region)),
        base,
        settings(),
    )
}

fn stream_reply(body: Vec<u8>) -> Reply {
    Reply {
        status: 200,
        headers: vec![(
            "content-type".into(),
            "application/vnd.amazon.eventstream".into(),
        )],
        chunks: chunk(&body, Some(5), 0),
        delay_first_byte: Duration::ZERO,
    }
}

async fn stream_all(model: &dyn LanguageModel) -> Result<Vec<StreamPart>, ProviderError> {
    let mut s = model.stream(hello());
    let mut out = Vec::new();
    while let Some(p) = s.next().await {
        out.push(p?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// framing and decoding
// ---------------------------------------------------------------------------------------

#[test]
fn framed_anthropic_streams_decode_like_the_sse_originals() {
    let names = anthropic_fixture_names();
    assert!(names.len() >= 9, "{names:?}");
    for name in names {
        let events = anthropic_events(&name);
        let baseline = decode_body(
            AnthropicDecoder::new(),
            &stream_body(&name),
            DEFAULT_MAX_EVENT_BYTES,
        )
        .unwrap();
        let body = framed(&events);
        assert_eq!(decode_bedrock_body(&body).unwrap(), baseline, "{name}");
        for (size, seed) in [
            (Some(1), 0),
            (Some(7), 0),
            (Some(64), 0),
            (Some(0), 1),
            (Some(0), 2),
        ] {
            let chunks = chunk(&body, size, seed);
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            assert_eq!(
                decode_chunks(&refs).unwrap(),
                baseline,
                "{name} {size:?} {seed}"
            );
        }
    }
}

#[test]
fn stored_fixtures_are_the_recorded_events_framed_byte_exact() {
    for (stored, origin) in STORED {
        let expected = framed(&anthropic_events(origin));
        if std::env::var_os("CHATD_WRITE_BEDROCK_FIXTURES").is_some() {
            let path = chatd_test_support::fixtures::testdata_path(stored);
            std::fs::write(path, &expected).unwrap();
        }
        assert_eq!(read_testdata(stored), expected, "{stored}");
    }
}

#[test]
fn stored_fixtures_decode_identically_at_every_split_point() {
    for (stored, origin) in STORED {
        let body = read_testdata(stored);
        let baseline = decode_body(
            AnthropicDecoder::new(),
            &stream_body(origin),
            DEFAULT_MAX_EVENT_BYTES,
        )
        .unwrap();
        assert!(matches!(baseline.last(), Some(StreamPart::Finish { .. })));
        assert_eq!(decode_bedrock_body(&body).unwrap(), baseline);
        for split in 0..=body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(
                decode_chunks(&[a, b]).unwrap(),
                baseline,
                "{stored} at {split}"
            );
        }
    }
}

#[test]
fn broken_frames_fail_instead_of_decoding() {
    let body = read_testdata(STORED[0].0);
    // A body cut inside a frame.
    let err = decode_bedrock_body(&body[..body.len() - 3]).unwrap_err();
    assert!(err.to_string().contains("stream closed"), "{err}");
    assert!(classify(&err).is_retryable());
    // A flipped payload byte: the frame's CRC no longer matches.
    let mut bad = body.clone();
    bad[30] ^= 0x55;
    let err = decode_bedrock_body(&bad).unwrap_err();
    assert!(err.to_string().contains("not valid"), "{err}");
    // A frame announcing more than the limit fails before buffering it.
    let mut framer = BedrockFramer::new(1024);
    let mut out = Vec::new();
    let err = framer
        .push_bytes(&(1025u32).to_be_bytes(), &mut out)
        .unwrap_err();
    assert!(err.to_string().contains("1025"), "{err}");
    let mut framer = BedrockFramer::new(1024);
    assert!(framer
        .push_bytes(&(1024u32).to_be_bytes(), &mut out)
        .is_ok());
}

// ---------------------------------------------------------------------------------------
// exceptions and errors
// ---------------------------------------------------------------------------------------

/// (exception, expected kind, retryable)
const EXCEPTIONS: &[(&str, ChatErrorKind, bool)] = &[
    ("throttlingException", ChatErrorKind::RateLimit, true),
    ("modelStreamErrorException", ChatErrorKind::Generic, true),
    ("validationException", ChatErrorKind::Generic, false),
    ("internalServerException", ChatErrorKind::Generic, true),
    ("serviceUnavailableException", ChatErrorKind::Timeout, true),
    ("modelTimeoutException", ChatErrorKind::Timeout, true),
];

#[test]
fn in_stream_exceptions_classify_by_their_documented_status() {
    let head = framed(&anthropic_events("anthropic-messages--text.jsonl")[..2]);
    for (kind, expected, retryable) in EXCEPTIONS {
        let mut body = head.clone();
        body.extend(encode_exception_frame(kind, "something went wrong"));
        let err = decode_bedrock_body(&body).unwrap_err();
        assert!(err.to_string().contains(kind), "{err}");
        let c = classify(&err);
        assert_eq!(c.kind(), Some(expected), "{kind}: {c:?}");
        assert_eq!(c.is_retryable(), *retryable, "{kind}");
        assert_eq!(c.provider(), "bedrock", "{kind}");
        assert_eq!(c.status(), bedrock_exception_status(kind), "{kind}");
    }
}

async fn http_error(
    status: u16,
    exception: &str,
    message: &str,
    extra: &[(&str, &str)],
) -> ProviderError {
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (
            "x-amzn-errortype".to_owned(),
            format!("{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        ),
    ];
    headers.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let body = serde_json::json!({ "message": message })
        .to_string()
        .into_bytes();
    let server = ReplayServer::start(vec![Reply::status(status, headers, body)]).await;
    stream_all(&bearer_model(&server.base_url))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn http_errors_classify_with_retry_after() {
    let err = http_error(
        429,
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
        &[("retry-after", "7")],
    )
    .await;
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::RateLimit), "{c:?}");
    assert!(c.is_retryable());
    assert_eq!(c.retry_after(), Duration::from_secs(7));
    assert_eq!(c.provider(), "bedrock");
    assert!(c.detail().contains("Too many requests"), "{}", c.detail());

    let err = http_error(
        400,
        "ValidationException",
        "The provided model identifier is invalid.",
        &[],
    )
    .await;
    let c = classify(&err);
    assert!(!c.is_retryable(), "{c:?}");
    assert_eq!(c.status(), Some(400));

    let err = http_error(
        403,
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
        &[],
    )
    .await;
    assert_eq!(classify(&err).kind(), Some(&ChatErrorKind::Auth));
    assert!(!classify(&err).is_retryable());

    let err = http_error(
        403,
        "ExpiredTokenException",
        "The security token included in the request is expired",
        &[],
    )
    .await;
    assert_eq!(classify(&err).kind(), Some(&ChatErrorKind::Auth));

    let err = http_error(
        424,
        "ModelStreamErrorException",
        "The model stream failed",
        &[],
    )
    .await;
    assert_eq!(classify(&err).status(), Some(424));
    // Never the token in an error.
    assert!(!format!("{err:?}").contains(TOKEN));
}

// ---------------------------------------------------------------------------------------
// the wire: bearer and SigV4
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn bearer_requests_carry_the_token_and_the_bedrock_body() {
    let body = read_testdata(STORED[1].0);
    let server = ReplayServer::start(vec![stream_reply(body.clone())]).await;
    let model = bearer_model(&server.base_url);
    let req = ModelRequest {
        provider_options: Some(ProviderRequestOptions {
            anthropic: Some(AnthropicRequestOptions {
                context_1m: Some(true),
                thinking_budget_tokens: Some(2048),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..hello()
    };
    let mut s = model.stream(req);
    let mut parts = Vec::new();
    while let Some(p) = s.next().await {
        parts.push(p.unwrap());
    }
    assert_eq!(parts, decode_bedrock_body(&body).unwrap());
    let r = &server.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path,
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(r.header("x-api-key"), None);
    assert_eq!(r.header("anthropic-version"), None);
    assert_eq!(r.header("anthropic-beta"), None);
    assert_eq!(
        r.header("user-agent"),
        Some("coder-agents/test (linux/amd64)")
    );
    assert_eq!(
        r.header("accept"),
        Some("application/vnd.amazon.eventstream")
    );
    let json = r.json();
    assert_eq!(json["anthropic_version"], BEDROCK_ANTHROPIC_VERSION);
    assert_eq!(
        json["anthropic_beta"],
        serde_json::json!(["context-1m-2025-08-07"])
    );
    assert_eq!(json["thinking"]["budget_tokens"], 2048);
    assert!(
        json.get("model").is_none() && json.get("stream").is_none(),
        "{json}"
    );
    assert_eq!(json["messages"][0]["role"], "user");
}

#[test]
fn urls_regions_and_paths() {
    assert_eq!(
        bedrock_invoke_path("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3"),
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3/invoke-with-response-stream"
    );
    let m = sigv4_model(None, Some("eu-west-3"));
    assert_eq!(
        m.invoke_url("eu-west-3"),
        format!("https://bedrock-runtime.eu-west-3.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream")
    );
    // The base URL override wins, without its trailing slash.
    let m = sigv4_model(
        Some("https://vpce-1.bedrock-runtime.example.test/"),
        Some("eu-west-3"),
    );
    assert!(m
        .invoke_url("eu-west-3")
        .starts_with("https://vpce-1.bedrock-runtime.example.test/model/"));
}

/// The AWS SigV4 test-suite cases stored in `testdata/sigv4/` (header signing).
#[test]
fn sigv4_matches_the_published_aws_vectors() {
    for case in testdata_file_names("sigv4")
        .into_iter()
        .filter(|n| !n.ends_with(".md"))
    {
        let context: Value =
            serde_json::from_slice(&read_testdata(&format!("sigv4/{case}/context.json"))).unwrap();
        let request =
            String::from_utf8(read_testdata(&format!("sigv4/{case}/request.txt"))).unwrap();
        let signed = String::from_utf8(read_testdata(&format!(
            "sigv4/{case}/header-signed-request.txt"
        )))
        .unwrap();
        let mut lines = request.lines();
        let first: Vec<&str> = lines.next().unwrap().split(' ').collect();
        let (method, target) = (first[0], first[1]);
        let mut host = String::new();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            if name.eq_ignore_ascii_case("host") {
                host = value.to_owned();
            } else {
                headers.push((name.to_ascii_lowercase(), value.to_owned()));
            }
        }
        let body: Vec<u8> = lines.collect::<Vec<_>>().join("\n").into_bytes();
        let header_refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let url = format!("https://{host}{target}");
        let creds = AwsCredentials::new(
            context["credentials"]["access_key_id"].as_str().unwrap(),
            context["credentials"]["secret_access_key"]
                .as_str()
                .unwrap(),
            context["credentials"]["token"].as_str().map(str::to_owned),
            None,
            "vectors",
        );
        let time: SystemTime =
            chrono::DateTime::parse_from_rfc3339(context["timestamp"].as_str().unwrap())
                .unwrap()
                .into();
        let out = sigv4_headers(
            &SigV4Request {
                method,
                url: &url,
                headers: &header_refs,
                body: &body,
            },
            &creds,
            context["region"].as_str().unwrap(),
            context["service"].as_str().unwrap(),
            time,
        )
        .unwrap();
        let auth = out
            .iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.clone())
            .unwrap();
        let expected = signed
            .lines()
            .find_map(|l| l.strip_prefix("Authorization:"))
            .unwrap();
        assert_eq!(auth, expected, "{case}");
    }
}

/// Recomputes the signature of a received request with `aws-sigv4` from what arrived (the
/// method, path, `host`, `content-type`, `x-amz-date`, `x-amz-security-token` and body)
/// and compares it with the `authorization` header the client sent.
fn verify_signature(r: &Recorded, region: &str) -> Result<(), String> {
    let date = r.header("x-amz-date").ok_or("no x-amz-date")?;
    let time: SystemTime = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map_err(|e| e.to_string())?
        .and_utc()
        .into();
    let host = r.header("host").ok_or("no host")?;
    let url = format!("http://{host}{}", r.path);
    let signed_headers = [("content-type", r.header("content-type").unwrap_or_default())];
    let token = r.header("x-amz-security-token").map(str::to_owned);
    if token.as_deref() != Some(SESSION_TOKEN) {
        return Err(format!("session token {token:?}"));
    }
    let creds = AwsCredentials::new(ACCESS_KEY, SECRET_KEY, token, None, "server");
    let expected = sigv4_headers(
        &SigV4Request {
            method: &r.method,
            url: &url,
            headers: &signed_headers,
            body: &r.body,
        },
        &creds,
        region,
        "bedrock",
        time,
    )
    .map_err(|e| e.to_string())?;
    let want = expected
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.as_str());
    let got = r.header("authorization");
    if want == got {
        Ok(())
    } else {
        Err(format!(
            "signature mismatch: sent {got:?}, expected {want:?}"
        ))
    }
}

#[tokio::test]
async fn sigv4_requests_verify_at_a_local_server() {
    let body = read_testdata(STORED[0].0);
    let reply = stream_reply(body.clone());
    let server = ReplayServer::start_with_responder(Vec::new(), move |r| {
        Some(match verify_signature(r, "eu-central-1") {
            Ok(()) => reply.clone(),
            Err(e) => Reply::status(
                403,
                vec![(
                    "x-amzn-errortype".into(),
                    "InvalidSignatureException".into(),
                )],
                serde_json::json!({ "message": e }).to_string().into_bytes(),
            ),
        })
    })
    .await;
    let model = sigv4_model(Some(&server.base_url), Some("eu-central-1"));
    let parts = stream_all(&model).await.unwrap();
    assert_eq!(parts, decode_bedrock_body(&body).unwrap());
    let r = &server.requests()[0];
    let auth = r.header("authorization").unwrap();
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")),
        "{auth}"
    );
    assert!(
        auth.contains("/eu-central-1/bedrock/aws4_request"),
        "{auth}"
    );
    assert_eq!(r.header("x-api-key"), None);
    assert_eq!(r.header("anthropic-version"), None);

    // Signed for another region: the server refuses it, as Bedrock would.
    let wrong = sigv4_model(Some(&server.base_url), Some("us-west-2"));
    let err = stream_all(&wrong).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(classify(&err).kind(), Some(&ChatErrorKind::Auth));
    // The secrets never show in the error, Debug, or what the redactor leaves.
    let text = format!("{err:?} {err} {wrong:?}");
    for secret in [SECRET_KEY, SESSION_TOKEN] {
        assert!(!text.contains(secret), "{text}");
    }
    let leak = format!("leak {SECRET_KEY} {SESSION_TOKEN}");
    let redacted = wrong.redactor().redact(&leak).to_string();
    assert!(
        !redacted.contains(SECRET_KEY) && !redacted.contains(SESSION_TOKEN),
        "{redacted}"
    );
}

#[tokio::test]
async fn ambient_mode_without_a_region_is_a_config_error() {
    let model = sigv4_model(None, None);
    let err = stream_all(&model).await.unwrap_err();
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::Config), "{c:?}");
    assert!(err.to_string().contains("AWS_REGION"), "{err}");
}

// ---------------------------------------------------------------------------------------
// the factory and the key policy's credential modes
// ---------------------------------------------------------------------------------------

#[test]
fn the_factory_builds_bearer_and_ambient_models() {
    // A stored key: bearer mode.
    let keys = ProviderApiKeys::new()
        .with_api_key(Provider::Bedrock, TOKEN)
        .unwrap();
    let creds = keys.client_credentials("bedrock").unwrap();
    let m = language_model(&creds, MODEL, None, settings()).unwrap();
    assert_eq!((m.provider(), m.model_id()), (Provider::Bedrock, MODEL));
    let dbg = format!("{m:?}");
    assert!(
        dbg.contains("BedrockModel") && dbg.contains("Bearer"),
        "{dbg}"
    );
    assert!(!dbg.contains(TOKEN), "{dbg}");
    assert!(!m.redactor().redact(TOKEN).to_string().contains(TOKEN));

    // Present without a key: ambient AWS credentials, resolved only when a request is sent.
    let mut keys = ProviderApiKeys::new();
    keys.set_ambient(Provider::Bedrock);
    let creds = keys.client_credentials("bedrock").unwrap();
    assert!(creds.is_ambient());
    let m = language_model(&creds, MODEL, None, settings()).unwrap();
    let dbg = format!("{m:?}");
    assert!(dbg.contains("Aws") && dbg.contains("not loaded"), "{dbg}");

    // Absent: the missing-key error.
    let err = ProviderApiKeys::new()
        .client_credentials("bedrock")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "API key for provider \"bedrock\" is not set"
    );
}
