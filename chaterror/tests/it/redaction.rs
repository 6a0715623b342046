//! Redaction properties: a known secret placed anywhere in a provider error (message, title,
//! headers, body, source chain) never survives redaction, whatever classification then
//! makes of the error; key-shaped text goes without being known.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use chaterror::{classify, ProviderError, Redactor, MAX_DETAIL_RUNES, REDACTED};
use codersdk::Timestamp;
use proptest::prelude::*;

/// Secrets of the shapes providers issue and of no particular shape.
fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "sk-[A-Za-z0-9_-]{20,60}",
        "sk-ant-api03-[A-Za-z0-9_-]{20,90}",
        "AKIA[A-Z0-9]{16}",
        "[A-Za-z0-9]{8,64}",
        "[A-Za-z0-9+/=._~-]{8,64}",
        "[!-~]{8,40}",
    ]
    // "REDACTED" itself (or a piece of the marker) cannot be told apart from the marker.
    .prop_filter("not the marker", |s| {
        !REDACTED.contains(s.as_str()) && !s.contains("REDACTED")
    })
}

/// Text around the secret: words, JSON-ish punctuation, some Unicode.
fn filler() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,40}",
        "[ -~]{0,80}",
        "\\PC{0,40}",
        Just("Incorrect API key provided: ".to_owned()),
        Just("x-api-key: ".to_owned()),
        Just("Bearer ".to_owned()),
    ]
}

/// Where in the error the secret shows up.
#[derive(Debug, Clone, Copy)]
enum Place {
    Message,
    Title,
    Header,
    JsonBody,
    RawBody,
    DumpBody,
    Source,
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        Just(Place::Message),
        Just(Place::Title),
        Just(Place::Header),
        Just(Place::JsonBody),
        Just(Place::RawBody),
        Just(Place::DumpBody),
        Just(Place::Source),
    ]
}

#[derive(Debug)]
struct Echo(String);

impl std::fmt::Display for Echo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Echo {}

fn build(place: Place, text: &str, status: u16) -> ProviderError {
    let base = ProviderError::new("upstream failed")
        .with_status(status)
        .with_provider("openai");
    match place {
        Place::Message => ProviderError::new(text.to_owned()).with_status(status),
        Place::Title => base.with_title(text.to_owned()),
        Place::Header => base.with_header("x-echo", text.to_owned()),
        Place::JsonBody => {
            let body =
                serde_json::json!({"error": {"message": text, "type": "invalid_request_error"}});
            base.with_body(body.to_string())
        }
        Place::RawBody => base.with_body(text.as_bytes().to_vec()),
        Place::DumpBody => base.with_body(format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\r\n{{\"message\":{}}}",
            serde_json::to_string(text).unwrap()
        )),
        Place::Source => base.with_source(Echo(text.to_owned())),
    }
}

/// Everything anyone could show of an error and its classification.
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_known_secret_never_survives(
        secret in secret(),
        before in filler(),
        after in filler(),
        place in place(),
        status in prop_oneof![Just(400u16), Just(401), Just(429), Just(500), Just(0)],
        // The secret may sit far enough in that classification would cut the text there.
        pad in 0usize..(2 * MAX_DETAIL_RUNES),
    ) {
        let text = format!("{}{before}{secret}{after}", "p".repeat(pad));
        let redactor = Redactor::new().with_secret(&secret);
        let err = redactor.redact_provider_error(build(place, &text, status));
        let shown = shown(&err);
        // JSON serialization of a shown value escapes some characters: check those forms too.
        let json = serde_json::to_string(&secret).unwrap();
        let json = json.trim_matches('"');
        prop_assert!(!shown.contains(&secret), "{place:?} leaks {secret:?}:\n{shown}");
        prop_assert!(!shown.contains(json), "{place:?} leaks {json:?}:\n{shown}");
    }

    #[test]
    fn redaction_keeps_the_classification(
        secret in secret(),
        status in prop_oneof![Just(401u16), Just(429), Just(500), Just(529)],
    ) {
        let body = serde_json::json!({"error": {"message": format!("key {secret} rejected")}});
        let err = ProviderError::new("upstream failed")
            .with_status(status)
            .with_header("retry-after", "7")
            .with_body(body.to_string())
            .with_provider("anthropic");
        let before = classify(&err);
        let after = classify(&Redactor::new().with_secret(&secret).redact_provider_error(err));
        prop_assert_eq!(before.kind(), after.kind());
        prop_assert_eq!(before.is_retryable(), after.is_retryable());
        prop_assert_eq!(before.status(), after.status());
        prop_assert_eq!(before.retry_after(), after.retry_after());
        prop_assert_eq!(before.message(), after.message());
    }

    #[test]
    fn key_shaped_text_goes_unknown(
        key in prop_oneof![
            "sk-[A-Za-z0-9_-]{16,60}",
            "sk-ant-api03-[A-Za-z0-9_-]{16,90}",
            "AKIA[A-Z0-9]{16}",
            "ASIA[A-Z0-9]{16}",
        ],
        before in "[a-z :]{0,20}",
        after in "[ .,;]{0,3}",
    ) {
        let text = format!("{before} {key}{after}");
        let out = chaterror::redact(&text);
        prop_assert!(!out.contains(&key), "{out}");
        let c = classify(&ProviderError::new(text).with_status(401));
        prop_assert!(!c.detail().contains(&key), "{}", c.detail());
    }

    #[test]
    fn redaction_is_idempotent_and_total(text in "\\PC{0,200}", secret in secret()) {
        let r = Redactor::new().with_secret(&secret);
        let once = r.redact(&text).into_owned();
        let twice = r.redact(&once).into_owned();
        prop_assert_eq!(&once, &twice);
        let _ = r.redact_bytes(text.as_bytes());
    }
}

#[test]
fn a_source_that_shows_a_secret_is_replaced_but_still_classifies() {
    let secret = "opaque-credential-0123456789";
    let err = ProviderError::new("upstream failed")
        .with_status(429)
        .with_header("retry-after", "3")
        .with_provider("openai")
        .with_source(Echo(format!("transport said {secret}")));
    let redacted = Redactor::new()
        .with_secret(secret)
        .redact_provider_error(err.clone());
    let c = classify(&redacted);
    assert_eq!(c.kind(), classify(&err).kind());
    assert_eq!(c.retry_after(), Duration::from_secs(3));
    assert!(!shown(&redacted).contains(secret));
    // A clean source is kept as it is (markers and all).
    let clean = ProviderError::new("m").with_source(Echo("nothing secret".into()));
    let kept = Redactor::new()
        .with_secret(secret)
        .redact_provider_error(clean);
    let src = std::error::Error::source(&kept).unwrap();
    assert!(src.downcast_ref::<Echo>().is_some());
}
