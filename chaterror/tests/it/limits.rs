//! Every public limit, exercised through the public API exactly at its edge.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use crate::common::{e, wrap, CANCELED_MSG};
use chaterror::retry::{delay, MAX_ATTEMPTS, MAX_DELAY};
use chaterror::{
    classify, classify_text, BoxError, Canceled, ChatErrorKind, ProviderError, DETAIL_ELLIPSIS,
    MAX_CHAIN_DEPTH, MAX_DETAIL_RUNES, MAX_DETAIL_SCAN_RUNES, MAX_ERROR_CODE_BYTES,
    MAX_ERROR_TEXT_BYTES, MAX_PARSED_BODY_BYTES, MAX_RETRY_AFTER,
};

#[test]
fn error_text_limit() {
    // A pattern that ends exactly at the limit is seen; one byte later it is cut.
    let pattern = "overloaded";
    let fits = format!(
        "{}{pattern}",
        "-".repeat(MAX_ERROR_TEXT_BYTES - pattern.len())
    );
    assert_eq!(
        classify_text(&fits).kind(),
        Some(&ChatErrorKind::Overloaded)
    );
    let cut = format!(
        "{}{pattern}",
        "-".repeat(MAX_ERROR_TEXT_BYTES - pattern.len() + 1)
    );
    assert_eq!(classify_text(&cut).kind(), Some(&ChatErrorKind::Generic));
    // Same through an error chain.
    assert_eq!(classify(&e(&fits)).kind(), Some(&ChatErrorKind::Overloaded));
    assert_eq!(classify(&e(&cut)).kind(), Some(&ChatErrorKind::Generic));
    // A cut inside a multibyte character backs off to a boundary.
    let wide = format!("{}é", "-".repeat(MAX_ERROR_TEXT_BYTES - 1));
    assert_eq!(classify_text(&wide).kind(), Some(&ChatErrorKind::Generic));
}

#[test]
fn chain_depth_limit() {
    fn chain(wrappers: usize) -> BoxError {
        let mut err: BoxError = Box::new(Canceled);
        for _ in 0..wrappers {
            err = Box::new(wrap("level", err));
        }
        err
    }
    // MAX_CHAIN_DEPTH links: the marker is the last link examined.
    let c = classify(&*chain(MAX_CHAIN_DEPTH - 1));
    assert_eq!(c.message(), CANCELED_MSG);
    // One more link and the marker is out of reach.
    let c = classify(&*chain(MAX_CHAIN_DEPTH));
    assert_eq!(c.message(), "The chat request failed unexpectedly.");
    assert_eq!(c.detail(), "level");
}

fn body_of_len(len: usize, message: &str) -> String {
    let prefix = format!(r#"{{"message":"{message}","pad":""#);
    let suffix = r#""}"#;
    let body = format!(
        "{prefix}{}{suffix}",
        "p".repeat(len - prefix.len() - suffix.len())
    );
    assert_eq!(body.len(), len);
    body
}

#[test]
fn parsed_body_limit() {
    let pe = |len| {
        ProviderError::new("fallback")
            .with_status(400)
            .with_body(body_of_len(len, "from body"))
    };
    assert_eq!(classify(&pe(MAX_PARSED_BODY_BYTES)).detail(), "from body");
    assert_eq!(
        classify(&pe(MAX_PARSED_BODY_BYTES + 1)).detail(),
        "fallback"
    );
}

#[test]
fn detail_rune_limit() {
    let pe = |runes: usize| {
        let body = format!(r#"{{"message":"{}"}}"#, "é".repeat(runes));
        classify(&ProviderError::new("").with_status(400).with_body(body))
    };
    assert_eq!(pe(MAX_DETAIL_RUNES).detail(), "é".repeat(MAX_DETAIL_RUNES));
    let over = pe(MAX_DETAIL_RUNES + 1);
    assert_eq!(over.detail().chars().count(), MAX_DETAIL_RUNES);
    assert!(over.detail().ends_with(DETAIL_ELLIPSIS));
    // Raw-text fallback detail obeys the same limit.
    let raw = classify_text(&"word ".repeat(MAX_DETAIL_RUNES));
    assert_eq!(raw.detail().chars().count(), MAX_DETAIL_RUNES);
}

#[test]
fn detail_scan_limit() {
    // A URL straddling the scan window never leaves `://` behind.
    for pad in [
        MAX_DETAIL_SCAN_RUNES - 3,
        MAX_DETAIL_SCAN_RUNES - 2,
        MAX_DETAIL_SCAN_RUNES,
    ] {
        let message = format!("{}https://host/p?key=secret", "x".repeat(pad));
        let c = classify(&ProviderError::new(message).with_status(400));
        assert!(!c.detail().contains("://"));
        assert_eq!(c.detail().chars().count(), MAX_DETAIL_RUNES);
    }
    // Below the window a short detail keeps its URL as host/path.
    let c = classify(&ProviderError::new("see https://host/p?key=secret").with_status(400));
    assert_eq!(c.detail(), "see host/p");
}

#[test]
fn error_code_limit() {
    let classify_code = |code: &str| {
        let body = format!(r#"{{"error":{{"message":"m","code":"{code}"}}}}"#);
        classify(&ProviderError::new("m").with_status(429).with_body(body))
    };
    let at = format!(
        "insufficient_quota{}",
        "_".repeat(MAX_ERROR_CODE_BYTES - "insufficient_quota".len())
    );
    assert_eq!(classify_code(&at).kind(), Some(&ChatErrorKind::UsageLimit));
    let over = format!("{at}_");
    assert_eq!(classify_code(&over).kind(), Some(&ChatErrorKind::RateLimit));
}

#[test]
fn retry_after_limit() {
    let hint = |v: &str| {
        classify(
            &ProviderError::new("")
                .with_status(429)
                .with_header("retry-after", v),
        )
        .retry_after()
    };
    assert_eq!(
        hint(&MAX_RETRY_AFTER.as_secs().to_string()),
        MAX_RETRY_AFTER
    );
    assert_eq!(
        hint(&(MAX_RETRY_AFTER.as_secs() + 1).to_string()),
        MAX_RETRY_AFTER
    );
    assert_eq!(
        hint(&(MAX_RETRY_AFTER.as_secs() - 1).to_string()),
        MAX_RETRY_AFTER - Duration::from_secs(1)
    );
}

#[test]
fn backoff_limits() {
    assert_eq!(delay(5), Duration::from_secs(32));
    assert_eq!(delay(6), MAX_DELAY);
    assert_eq!(MAX_ATTEMPTS, 25);
}
