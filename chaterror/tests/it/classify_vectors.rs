//! Every `Classify` vector of core.md §A.12 (Era C), as table tests.
//!
//! Go shapes map to Rust as follows: `E("…")` is [`common::Text`], `fmt.Errorf("x: %w", err)`
//! is [`common::wrap`], `context.Canceled` / `DeadlineExceeded` are the crate's markers,
//! `errors.Join(ErrProviderTransportReset, err)` is [`TransportReset::wrap`], and PE is
//! [`ProviderError`].

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use crate::common::*;
use chaterror::{
    classify, classify_text, with_classification, Canceled, ChatErrorKind, ClassifiedError,
    DeadlineExceeded, Http2ErrorCode, Http2StreamError, ProviderError, TransportReset,
};

type Case = (&'static str, Box<dyn StdError + Send + Sync>, Want);

fn run(cases: Vec<Case>) {
    for (name, err, want) in cases {
        want.check(name, &classify(&*err));
    }
}

fn pe(message: &str, status: u16) -> ProviderError {
    ProviderError::new(message).with_status(status)
}

#[test]
fn main_table() {
    let cases: Vec<Case> = vec![
        (
            "529 text",
            Box::new(e("status 529 from upstream")),
            Want::kind("overloaded", true)
                .status(529)
                .provider("")
                .message("The AI provider is temporarily overloaded.")
                .detail("status 529 from upstream"),
        ),
        (
            "anthropic overloaded_error",
            Box::new(e("anthropic overloaded_error")),
            Want::kind("overloaded", true)
                .status(0)
                .provider("anthropic")
                .message("Anthropic is temporarily overloaded.")
                .detail("anthropic overloaded_error"),
        ),
        (
            "anthropic stream incomplete",
            Box::new(e("anthropic stream closed before message_stop: EOF")),
            Want::kind("timeout", true)
                .status(0)
                .provider("anthropic")
                .message("Anthropic stream closed unexpectedly before the response completed.")
                .no_detail(),
        ),
        (
            "openai stream incomplete",
            Box::new(e("openai responses stream closed before terminal event: EOF")),
            Want::kind("timeout", true)
                .status(0)
                .provider("openai")
                .message("OpenAI stream closed unexpectedly before the response completed."),
        ),
        (
            "auth beats config",
            Box::new(e("authentication failed: invalid model")),
            Want::kind("auth", false).status(0).provider("").message(AUTH_MSG).no_detail(),
        ),
        (
            "invalid model",
            Box::new(e("invalid model")),
            Want::kind("config", false).status(0).provider("").message(CONFIG_MSG).detail("invalid model"),
        ),
        ("forbidden", Box::new(e("forbidden")), Want::kind("auth", false).status(0).message(AUTH_MSG).no_detail()),
        ("401", Box::new(e("status 401 from upstream")), Want::kind("auth", false).status(401).message(AUTH_MSG)),
        ("403", Box::new(e("status 403 from upstream")), Want::kind("auth", false).status(403).message(AUTH_MSG)),
        (
            "forbidden loses to config",
            Box::new(e("forbidden: context length exceeded")),
            Want::kind("config", false).status(0).message(CONFIG_MSG),
        ),
        (
            "429",
            Box::new(e("status 429 from upstream")),
            Want::kind("rate_limit", true).status(429).message("The AI provider is rate limiting requests."),
        ),
        (
            "429 loses to config",
            Box::new(e("status 429: invalid model")),
            Want::kind("config", false).status(429).message(CONFIG_MSG),
        ),
        (
            "429 quota loses to config",
            Box::new(e("status 429: invalid model quota")),
            Want::kind("config", false).status(429).message(CONFIG_MSG),
        ),
        (
            "service unavailable",
            Box::new(e("service unavailable")),
            Want::kind("timeout", true).status(0).message(UNAVAILABLE_MSG),
        ),
        (
            "503 loses to config",
            Box::new(e("status 503: invalid model")),
            Want::kind("config", false).status(503).message(CONFIG_MSG),
        ),
        (
            "unavailable loses to config",
            Box::new(e("service unavailable: model not found")),
            Want::kind("config", false).status(0).message(CONFIG_MSG),
        ),
        (
            "refused loses to config",
            Box::new(e("connection refused: unsupported model")),
            Want::kind("config", false).status(0).message(CONFIG_MSG),
        ),
        (
            "bare deadline",
            Box::new(DeadlineExceeded),
            Want::kind("timeout", false)
                .status(0)
                .message("The request timed out before it completed.")
                .detail("context deadline exceeded"),
        ),
        (
            "join(transport reset, canceled)",
            Box::new(TransportReset::wrap(Canceled)),
            Want::kind("timeout", true)
                .status(0)
                .message(UNAVAILABLE_MSG)
                .detail("provider transport reset context canceled"),
        ),
        (
            "bare canceled",
            Box::new(Canceled),
            Want::kind("generic", false).status(0).message(CANCELED_MSG).no_detail(),
        ),
        (
            "500 wrapping canceled is retryable",
            Box::new(wrap("received status 500 from upstream", Canceled)),
            Want::kind("generic", true)
                .status(500)
                .message("The AI provider returned an unexpected error.")
                .detail("received status 500 from upstream: context canceled"),
        ),
        (
            "wrap(join(canceled, PE(context canceled, 500)))",
            Box::new(wrap("wrap", pe("context canceled", 500).with_source(Canceled))),
            Want::kind("generic", true)
                .status(500)
                .message("The AI provider returned an unexpected error.")
                .detail("context canceled"),
        ),
        (
            "provider_disabled openai",
            Box::new(
                pe("provider_disabled: AI provider \"openai\" is disabled\n", 503).with_title("Service Unavailable"),
            ),
            Want::kind("provider_disabled", false)
                .status(503)
                .provider("openai")
                .message("The OpenAI provider has been disabled. Contact your Coder administrator.")
                .detail("provider_disabled: AI provider \"openai\" is disabled"),
        ),
        (
            "provider_disabled custom",
            Box::new(
                pe("provider_disabled: AI provider \"mycustomprovider\" is disabled\n", 503)
                    .with_title("Service Unavailable"),
            ),
            Want::kind("provider_disabled", false)
                .status(503)
                .provider("")
                .message("The AI provider has been disabled. Contact your Coder administrator."),
        ),
        (
            "provider_disabled text",
            Box::new(e("provider_disabled: AI provider \"anthropic\" is disabled")),
            Want::kind("provider_disabled", false)
                .status(0)
                .provider("anthropic")
                .message("The Anthropic provider has been disabled. Contact your Coder administrator."),
        ),
        (
            "provider_disabled beats timeout",
            Box::new(
                pe("provider_disabled: AI provider \"google\" is disabled", 503).with_title("Service Unavailable"),
            ),
            Want::kind("provider_disabled", false)
                .status(503)
                .provider("google")
                .message("The Google provider has been disabled. Contact your Coder administrator."),
        ),
        (
            "PE 503",
            Box::new(pe("service unavailable", 503)),
            Want::kind("timeout", true).status(503).message(UNAVAILABLE_MSG).detail("service unavailable"),
        ),
        (
            "PE 400 image",
            Box::new(pe("", 400).with_body(dump(
                r#"{"error":{"type":"invalid_request_error","message":"Image exceeds 5 MB maximum."}}"#,
            ))),
            Want::kind("generic", false)
                .status(400)
                .message("The AI provider returned an unexpected error.")
                .detail("Image exceeds 5 MB maximum."),
        ),
        (
            "top-level body message",
            Box::new(pe("", 400).with_body(dump(r#"{"message":"The provided request is not valid"}"#))),
            Want::any().detail("The provided request is not valid"),
        ),
        (
            "braces in a plain message",
            Box::new(pe("", 400).with_body(dump(r#"{"error":{"message":"Value {x} is not allowed."}}"#))),
            Want::any().detail("Value {x} is not allowed."),
        ),
        (
            "wrapper with {resource} in URL (body)",
            Box::new(pe("", 400).with_body(dump(
                r#"{"error":{"message":"POST \"https://x.example/v1/{resource}/go\": 400 Bad Request {\"message\":\"real error\"}"}}"#,
            ))),
            Want::any().detail("real error"),
        ),
        (
            "wrapper with {resource} in URL (message)",
            Box::new(pe(r#"POST "https://x.example/v1/{resource}/go": 400 Bad Request {"message":"real error"}"#, 400)),
            Want::any().detail("real error"),
        ),
        (
            // Deviation (docs/chaterror.md): the spec keeps the wrapper text unchanged; we
            // keep it but reduce the URL to host/path, so no detail ever contains `://`.
            "wrapper without JSON",
            Box::new(pe(r#"POST "https://example.com/api": 500 Internal Server Error"#, 500)),
            Want::any().status(500).detail(r#"POST "example.com/api": 500 Internal Server Error"#),
        ),
        (
            // Same deviation: wrapper text kept (unescaped), URL reduced to host/path.
            "wrapper whose JSON has no message",
            Box::new(pe("", 400).with_body(dump(
                r#"{"error":{"message":"POST \"https://x.example/v1\": 400 Bad Request {\"foo\":\"bar\"}"}}"#,
            ))),
            Want::any().detail(r#"POST "x.example/v1": 400 Bad Request {"foo":"bar"}"#),
        ),
        (
            "nested beats top-level",
            Box::new(pe("", 400).with_body(dump(r#"{"message":"top level","error":{"message":"nested wins"}}"#))),
            Want::any().detail("nested wins"),
        ),
        (
            "non-object error",
            Box::new(pe("", 429).with_body(dump(r#"{"message":"rate limited","error":"rate_limit"}"#))),
            Want::any().detail("rate limited"),
        ),
        (
            "auth keeps structured detail only",
            Box::new(
                pe("invalid api key test-key", 401)
                    .with_body(dump(r#"{"error":{"message":"Incorrect API key provided."}}"#)),
            ),
            Want::kind("auth", false).status(401).message(AUTH_MSG).detail("Incorrect API key provided."),
        ),
        (
            "non-JSON body falls back to the message",
            Box::new(pe("  image exceeds 5 MB maximum  ", 400).with_body("not-json")),
            Want::any().detail("image exceeds 5 MB maximum"),
        ),
        (
            "bedrock wrapper as message",
            Box::new(pe(
                r#"POST "https://bedrock-runtime.eu-north-1.amazonaws.com/v1/messages": 400 Bad Request {"message":"The provided request is not valid"}"#,
                400,
            )),
            Want::any().detail("The provided request is not valid"),
        ),
        (
            "510 x truncated",
            Box::new(pe("", 400).with_body(dump(&format!(r#"{{"message":"{}"}}"#, "x".repeat(510))))),
            Want::any().detail(format!("{}…", "x".repeat(499))),
        ),
    ];
    run(cases);
}

#[test]
fn bedrock_wrapper_then_with_provider() {
    let err = pe("", 400).with_body(dump(
        r#"{"error":{"message":"POST \"https://bedrock-runtime.eu-north-1.amazonaws.com/v1/messages\": 400 Bad Request {\"message\":\"The provided request is not valid\"}","type":"api_error"}}"#,
    ));
    let c = classify(&err).with_provider("bedrock");
    Want::kind("generic", false)
        .status(400)
        .provider("bedrock")
        .message("AWS Bedrock returned an unexpected error.")
        .detail("The provided request is not valid")
        .check("bedrock", &c);
}

#[test]
fn retry_after_vectors() {
    let c = classify(&pe("", 429).with_header("Retry-After", "30"));
    Want::kind("rate_limit", true)
        .status(429)
        .check("retry-after 30", &c);
    assert_eq!(c.retry_after(), Duration::from_secs(30));

    let c = classify(
        &pe("upstream failed", 429)
            .with_header("Retry-After", "30")
            .with_header("ReTrY-AfTeR-Ms", "1500"),
    );
    assert_eq!(c.status_code(), 429);
    assert_eq!(c.retry_after(), Duration::from_millis(1500));

    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3));
    let c = classify(&pe("upstream failed", 429).with_header("Retry-After", at));
    assert_eq!(c.status_code(), 429);
    assert!(
        (Duration::from_secs(2)..=Duration::from_secs(4)).contains(&c.retry_after()),
        "{:?}",
        c.retry_after()
    );

    let c =
        classify(&pe("upstream failed", 429).with_header("Retry-After", "definitely not a delay"));
    assert_eq!(c.retry_after(), Duration::ZERO);
}

#[test]
fn preclassified_wrappers() {
    let missing_key = ClassifiedError::builder(ChatErrorKind::MissingKey)
        .detail("If this error persists after resending, please report it as a bug.")
        .build();
    let err = with_classification(
        e("AI Gateway routing requires the active turn API key ID"),
        missing_key,
    );
    // Further wrapping does not hide the classification.
    let err = wrap("chat loop", err);
    Want::kind("missing_key", false)
        .message(
            "This conversation was started with an API key that is no longer available. Send your message again to continue.",
        )
        .detail("If this error persists after resending, please report it as a bug.")
        .check("missing key", &classify(&err));

    // Coder's newest name for the kind reads as ours (DECISIONS §2).
    let silence = ClassifiedError::builder(ChatErrorKind::from_wire("stream_silence_timeout"))
        .provider("openai")
        .retryable(true)
        .build();
    let err = with_classification(Canceled, silence);
    Want::kind("startup_timeout", true)
        .status(0)
        .provider("openai")
        .message("OpenAI did not start responding in time.")
        .check("startup timeout", &classify(&err));
}

#[test]
fn responses_diagnostics() {
    let want = Want::kind("generic", false).message(CONTINUITY_MSG).detail(
        "OpenAI Responses API request continuity diagnostic: match=function_call_output_missing.",
    );
    let text = "No Tool Output Found For Function Call call_x";
    let from_text = classify(&e(text));
    want.clone().status(0).check("diagnostic text", &from_text);
    let from_body =
        classify(&pe("", 400).with_body(dump(&format!(r#"{{"error":{{"message":"{text}"}}}}"#))));
    want.clone()
        .status(400)
        .check("diagnostic body", &from_body);
    for c in [from_text, from_body] {
        assert!(!c.message().contains("call_x") && !c.detail().contains("call_x"));
    }

    let c = classify(&e(
        "Item 'ws_123' of type 'web_search_call' WAS PROVIDED WITHOUT ITS REQUIRED 'reasoning' item: 'rs_456'",
    ));
    Want::kind("generic", false)
        .message(CONTINUITY_MSG)
        .detail("OpenAI Responses API request continuity diagnostic: match=web_search_reasoning_missing.")
        .check("reasoning missing", &c);
    assert!(!c.detail().contains("ws_123") && !c.detail().contains("rs_456"));
}

#[test]
fn usage_limit_ordering() {
    let openai_stream = r#"openai stream error: {"type":"insufficient_quota","code":"insufficient_quota","message":"You exceeded your current quota, please check your plan and billing details."}"#;
    let cases: Vec<Case> = vec![
        (
            "insufficient_quota beats auth",
            Box::new(e("unauthorized: insufficient_quota")),
            Want::kind("usage_limit", false),
        ),
        (
            "unauthorized",
            Box::new(e("unauthorized")),
            Want::kind("auth", false),
        ),
        (
            "status 401",
            Box::new(e("status 401")),
            Want::kind("auth", false).status(401),
        ),
        (
            "openai stream text",
            Box::new(e(openai_stream)),
            Want::kind("usage_limit", false).provider("openai"),
        ),
        (
            "billing in structured detail",
            Box::new(
                pe("upstream failed", 500)
                    .with_body(dump(r#"{"error":{"message":"check your billing plan"}}"#)),
            ),
            Want::kind("usage_limit", false)
                .status(500)
                .detail("check your billing plan"),
        ),
        (
            "insufficient_quota beats 429 (text)",
            Box::new(e("status 429: insufficient_quota")),
            Want::kind("usage_limit", false).status(429),
        ),
        (
            "insufficient_quota beats 429 (body)",
            Box::new(
                pe("upstream failed", 429)
                    .with_body(dump(r#"{"error":{"message":"insufficient_quota"}}"#)),
            ),
            Want::kind("usage_limit", false).status(429),
        ),
        (
            "gemini quota 429 is a rate limit",
            Box::new(e(
                "gemini status 429: Resource has been exhausted (e.g. check quota).",
            )),
            Want::kind("rate_limit", true)
                .status(429)
                .provider("google"),
        ),
        (
            "azure quota 429 is a rate limit",
            Box::new(e(
                "azure openai exceeded token rate limit; quota remaining: 0; status 429",
            )),
            Want::kind("rate_limit", true).status(429).provider("azure"),
        ),
        (
            "billing 429 is a rate limit",
            Box::new(e(
                "status 429: rate limited: upgrade your billing plan for higher rate limits",
            )),
            Want::kind("rate_limit", true).status(429).provider(""),
        ),
        (
            "PE quota 429 is a rate limit",
            Box::new(pe("Resource has been exhausted (e.g. check quota).", 429)),
            Want::kind("rate_limit", true).status(429).provider(""),
        ),
    ];
    run(cases);
}

#[test]
fn pattern_coverage() {
    let groups: &[(&[&str], &str, bool)] = &[
        (&["overloaded"], "overloaded", true),
        (
            &[
                "rate limit",
                "rate_limit",
                "rate limited",
                "rate-limited",
                "too many requests",
            ],
            "rate_limit",
            true,
        ),
        (
            &[
                "timeout",
                "timed out",
                "service unavailable",
                "unavailable",
                "connection reset",
                "connection refused",
                "eof",
                "broken pipe",
                "bad gateway",
                "gateway timeout",
                "client conn",
                "goaway",
                "http2: stream closed",
                "use of closed network connection",
                "internal_error; received from peer",
                "refused_stream; received from peer",
                "cancel; received from peer",
                "enhance_your_calm; received from peer",
                "no_error; received from peer",
            ],
            "timeout",
            true,
        ),
        (
            &[
                "authentication",
                "unauthorized",
                "invalid api key",
                "invalid_api_key",
                "forbidden",
            ],
            "auth",
            false,
        ),
        (
            &["quota", "billing", "insufficient_quota", "payment required"],
            "usage_limit",
            false,
        ),
        (
            &[
                "invalid model",
                "model not found",
                "model_not_found",
                "unsupported model",
                "context length exceeded",
                "context_exceeded",
                "maximum context length",
                "malformed config",
                "malformed configuration",
            ],
            "config",
            false,
        ),
        (&["server error", "internal server error"], "generic", true),
        (
            &[
                "chat interrupted",
                "request interrupted",
                "operation interrupted",
            ],
            "generic",
            false,
        ),
        (&["status 408"], "timeout", true),
        (&["status 500"], "generic", true),
        (&["provider_disabled"], "provider_disabled", false),
    ];
    for (texts, kind, retryable) in groups {
        for text in *texts {
            Want::kind(kind, *retryable).check(text, &classify_text(text));
            // Upper case must not matter.
            Want::kind(kind, *retryable).check(text, &classify_text(&text.to_uppercase()));
        }
    }
    for text in [
        "chat interrupted",
        "request interrupted",
        "operation interrupted",
    ] {
        Want::any()
            .message(CANCELED_MSG)
            .no_detail()
            .check(text, &classify_text(text));
    }
}

#[test]
fn transport_texts() {
    for text in [
        "http2: client connection force closed via ClientConn.Close",
        "http2: Transport received Server's graceful shutdown GOAWAY",
        "http2: server sent GOAWAY and closed the connection",
        "http2: stream closed",
        "stream error: stream ID 455; INTERNAL_ERROR; received from peer",
        r#"Post "https://example.com/v1/messages": use of closed network connection"#,
        "http2: client conn is closed",
        "http2: client conn not usable",
        "http2: client conn could not be established",
        "http2: client connection lost",
    ] {
        Want::kind("timeout", true)
            .provider("")
            .message(UNAVAILABLE_MSG)
            .check(text, &classify_text(text));
    }
    for (host, provider, message) in [
        (
            "api.anthropic.com",
            "anthropic",
            "Anthropic is temporarily unavailable.",
        ),
        (
            "api.openai.com",
            "openai",
            "OpenAI is temporarily unavailable.",
        ),
        (
            "generativelanguage.googleapis.com",
            "google",
            "Google is temporarily unavailable.",
        ),
    ] {
        let text =
            format!(r#"Post "https://{host}/v1/messages": use of closed network connection"#);
        // The raw text holds a URL, so it never becomes the detail.
        Want::kind("timeout", true)
            .provider(provider)
            .message(message)
            .no_detail()
            .check(&text, &classify_text(&text));
    }
}

#[test]
fn status_beats_transport() {
    let cases: Vec<Case> = vec![
        (
            "server error 429",
            Box::new(e("http2: server error 429 Too Many Requests")),
            Want::kind("rate_limit", true).status(429),
        ),
        (
            "401 unauthorized",
            Box::new(e("http2: 401 unauthorized")),
            Want::kind("auth", false).status(401),
        ),
        (
            "client conn closed 429",
            Box::new(e(
                "http2: client conn is closed: status 429 Too Many Requests",
            )),
            Want::kind("rate_limit", true).status(429),
        ),
        (
            "GOAWAY 401",
            Box::new(e("http2: server sent GOAWAY: status 401 unauthorized")),
            Want::kind("auth", false).status(401),
        ),
        (
            "401 over typed reset",
            Box::new(wrap(
                "provider returned status 401",
                Http2StreamError::new(455, Http2ErrorCode::Internal).received_from_peer(),
            )),
            Want::kind("auth", false).status(401).no_detail(),
        ),
    ];
    run(cases);
}

#[test]
fn typed_http2_errors() {
    use Http2ErrorCode::*;
    for code in [Internal, RefusedStream, Cancel, EnhanceYourCalm, NoError] {
        let err = Http2StreamError::new(455, code).received_from_peer();
        let detail = format!("stream error: stream ID 455; {code}; received from peer");
        Want::kind("timeout", true)
            .status(0)
            .detail(detail)
            .check(&format!("{code}"), &classify(&err));
        // Wrapped inside a provider error or another error, too.
        let wrapped = wrap("provider stream", err.clone());
        Want::kind("timeout", true).check(&format!("wrapped {code}"), &classify(&wrapped));
        let boxed: Box<dyn StdError + Send + Sync> = Box::new(err);
        Want::kind("timeout", true).check(&format!("boxed {code}"), &classify(&*boxed));
    }
    for code in [Protocol, FlowControl, FrameSize, Compression] {
        let err = Http2StreamError::new(455, code).received_from_peer();
        Want::kind("generic", false)
            .status(0)
            .check(&format!("{code}"), &classify(&err));
    }
    let no_cause = Http2StreamError::new(455, Cancel);
    Want::kind("generic", false).check("CANCEL without cause", &classify(&no_cause));
    let local = Http2StreamError::new(455, Internal).with_cause("local transport reset");
    Want::kind("generic", false).check("INTERNAL local", &classify(&local));

    let id_401 = Http2StreamError::new(401, Internal).received_from_peer();
    Want::kind("timeout", true)
        .status(0)
        .check("stream id 401", &classify(&id_401));
    let id_503 = Http2StreamError::new(503, Protocol).received_from_peer();
    let want_503 = Want::kind("generic", false)
        .status(0)
        .message("The chat request failed unexpectedly.");
    want_503.check("stream id 503", &classify(&id_503));
    // The flattened strings classify the same way.
    Want::kind("timeout", true)
        .status(0)
        .check("flat 401", &classify_text(&id_401.to_string()));
    want_503.check("flat 503", &classify_text(&id_503.to_string()));
    want_503.check(
        "flat 503 colon",
        &classify_text("stream error: stream ID: 503; PROTOCOL_ERROR; received from peer"),
    );
}

#[test]
fn extract_status_through_classify() {
    for (text, want) in [
        ("received status 429 from upstream", 429),
        ("status code: 503", 503),
        ("http 502 bad gateway", 502),
        ("got 504 from upstream", 504),
        ("retrying 503 after 429", 503),
        ("HTTP 503 bad gateway", 503),
        ("dial tcp 10.0.0.1:503: connection refused", 0),
        ("proxy.internal:502 unreachable", 0),
        ("dial tcp 172.16.0.5:429: refused", 0),
        ("proxy at 10.0.0.1:500 returned 503", 503),
        (
            "stream error: stream ID 401; INTERNAL_ERROR; received from peer",
            0,
        ),
        (
            "stream error: stream ID: 503; PROTOCOL_ERROR; received from peer",
            0,
        ),
        ("stream error: stream ID 455; status 503 from upstream", 503),
        ("anthropic overloaded_error", 0),
        ("too many requests", 0),
        ("bad gateway", 0),
        ("service unavailable", 0),
        ("boom", 0),
    ] {
        assert_eq!(classify_text(text).status_code(), want, "{text}");
    }
}

#[test]
fn detect_provider_through_classify() {
    for (text, want) in [
        ("openai-compat upstream error", "openai-compat"),
        ("openai compatible proxy", "openai-compat"),
        ("azure openai rate limited", "azure"),
        ("openai rate limited", "openai"),
        ("anthropic overloaded", "anthropic"),
        ("gemini timeout", "google"),
        ("vercel ai gateway 503", "vercel"),
        ("local provider error", ""),
    ] {
        assert_eq!(classify_text(text).provider(), want, "{text}");
    }
}

#[test]
fn with_provider_vectors() {
    let c = classify_text("openai received status 429 from upstream");
    assert_eq!(c.provider(), "openai");
    let c = c.with_provider("azure openai");
    Want::kind("rate_limit", true)
        .status(429)
        .provider("azure")
        .message("Azure OpenAI is rate limiting requests.")
        .detail("openai received status 429 from upstream")
        .check("azure", &c);

    let c = classify_text("received status 429 from upstream").with_provider("openai");
    Want::any()
        .message("OpenAI is rate limiting requests.")
        .check("openai", &c);

    let c = classify(&pe("", 429).with_header("retry-after", "7")).with_provider("anthropic");
    assert_eq!(c.retry_after(), Duration::from_secs(7));
    assert_eq!(c.message(), "Anthropic is rate limiting requests.");

    // Same provider and a message: unchanged (the stream-incomplete sentence survives).
    let c = classify_text("anthropic stream closed before message_stop: EOF");
    assert_eq!(c.with_provider("Anthropic"), c);
    // Empty hint: re-normalized only.
    assert_eq!(c.with_provider("  "), c);
}

#[test]
fn payload_vectors() {
    let c = classify_text("azure openai received status 429 from upstream");
    let p = c.to_chat_error().unwrap();
    assert_eq!(
        p,
        codersdk::ChatError {
            message: "Azure OpenAI is rate limiting requests.".into(),
            detail: "azure openai received status 429 from upstream".into(),
            kind: Some(ChatErrorKind::RateLimit),
            provider: "azure".into(),
            retryable: true,
            status_code: 429,
        }
    );
    assert_eq!(ClassifiedError::default().to_chat_error(), None);
    assert_eq!(classify_text("").to_chat_error(), None);

    let c = ClassifiedError::builder(ChatErrorKind::Generic)
        .provider("openai")
        .retryable(true)
        .status(503)
        .build();
    assert_eq!(c.message(), "OpenAI returned an unexpected error.");
    let now = codersdk::Timestamp::now();
    let r = c.to_stream_retry(2, Duration::from_secs(3), now).unwrap();
    assert_eq!(r.attempt, 2);
    assert_eq!(r.delay_ms, 3000);
    assert_eq!(r.error, "OpenAI returned an unexpected error.");
    assert_eq!(r.status_code, 503);
    assert_eq!(r.kind, Some(ChatErrorKind::Generic));
    assert_eq!(r.provider, "openai");
    assert_eq!(r.retrying_at.unix_millis() - now.unix_millis(), 3000);
    assert_eq!(
        ClassifiedError::default().to_stream_retry(1, Duration::ZERO, now),
        None
    );
    // An absurd delay saturates instead of overflowing.
    let r = c.to_stream_retry(1, Duration::MAX, now).unwrap();
    assert_eq!(r.delay_ms, i64::MAX);
}

#[test]
fn message_table_via_round_trip() {
    let b = ClassifiedError::builder;
    let cases = [
        (
            b(ChatErrorKind::Timeout).provider("anthropic").retryable(true).build(),
            "Anthropic is temporarily unavailable.",
        ),
        (b(ChatErrorKind::Timeout).build(), "The request timed out before it completed."),
        (
            b(ChatErrorKind::UsageLimit).provider("openai").build(),
            "The usage quota for OpenAI has been exceeded. Check the billing and quota settings for the provider account.",
        ),
        (
            b(ChatErrorKind::UsageLimit).build(),
            "The usage quota for the AI provider has been exceeded. Check the billing and quota settings for the provider account.",
        ),
        (b(ChatErrorKind::Generic).build(), "The chat request failed unexpectedly."),
    ];
    for (c, want) in cases {
        let round = classify(&with_classification(e("anything"), c));
        assert_eq!(round.message(), want);
    }
}
