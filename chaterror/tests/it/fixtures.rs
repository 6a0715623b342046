//! Classifies every file of `testdata/errors/` (recorded or canonical provider error
//! responses), each with its expected kind written down and justified.
//!
//! The fixtures are the recorded files copied unchanged into `testdata/` at the repository
//! root (their README gives the provenance).
//!
//! Each error is built the way a provider client reports it: a [`ProviderError`] whose
//! message is the provider's `error.message`, with the HTTP status from `manifest.json`, the
//! recorded headers, the body as an HTTP dump, and the provider id. In-stream errors (SSE
//! `error` events inside an HTTP 200) have no status of their own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use chatd_test_support::fixtures::{read_testdata, testdata_file_names};
use chaterror::{classify, ClassifiedError, ProviderError};
use serde_json::Value;

use crate::common::Want;

/// `testdata/errors/<name>`.
fn read(name: &str) -> Vec<u8> {
    read_testdata(&format!("errors/{name}"))
}

fn json(name: &str) -> Value {
    serde_json::from_slice(&read(name)).unwrap()
}

fn manifest() -> Vec<Value> {
    json("manifest.json").as_array().unwrap().clone()
}

/// The HTTP status `manifest.json` records for a file.
fn status_of(name: &str) -> u16 {
    let entry = manifest()
        .into_iter()
        .find(|e| e["file"] == format!("errors/{name}"))
        .unwrap();
    entry["http_status"]
        .as_u64()
        .map_or(0, |s| u16::try_from(s).unwrap())
}

fn headers(name: &str) -> Vec<(String, String)> {
    json(name)
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// The provider's message in an error document (nested first).
fn provider_message(doc: &Value) -> String {
    doc["error"]["message"]
        .as_str()
        .or_else(|| doc["message"].as_str())
        .unwrap()
        .to_owned()
}

fn dump(status: u16, body: &[u8]) -> Vec<u8> {
    let mut out =
        format!("HTTP/1.1 {status} Error\r\nContent-Type: application/json\r\n\r\n").into_bytes();
    out.extend_from_slice(body);
    out
}

/// What a provider client reports for a recorded HTTP error response.
fn http_error(body_file: &str, headers_file: Option<&str>, provider: &str) -> ProviderError {
    let status = status_of(body_file);
    let body = read(body_file);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let mut pe = ProviderError::new(provider_message(&doc))
        .with_status(status)
        .with_body(dump(status, &body))
        .with_provider(provider);
    if let Some(h) = headers_file {
        pe = pe.with_headers(headers(h));
    }
    pe
}

/// The `error` event of a recorded SSE stream, as JSON text.
fn sse_error_event(name: &str) -> String {
    let text = String::from_utf8(read(name)).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim_start)
        .find(|data| serde_json::from_str::<Value>(data).is_ok_and(|v| v["type"] == "error"))
        .unwrap()
        .to_owned()
}

/// What a provider client reports for an error event inside a streaming HTTP 200.
fn stream_error(name: &str, provider: &str) -> ProviderError {
    let data = sse_error_event(name);
    let doc: Value = serde_json::from_str(&data).unwrap();
    ProviderError::new(provider_message(&doc))
        .with_body(data)
        .with_provider(provider)
}

fn assert_detail_safe(c: &ClassifiedError) {
    assert!(!c.detail().contains("://"), "{c:?}");
    assert!(c.detail().chars().count() <= chaterror::MAX_DETAIL_RUNES);
}

const ANTHROPIC_RATE_LIMIT_DETAIL_START: &str =
    "This request would exceed your organization's rate limit";

// --- anthropic--429-rate-limit-error--attempt{1,2} ------------------------------------------

/// Expected `rate_limit`, retryable: HTTP 429 triggers the rate-limit rule (#5) and the
/// message says "rate limit" too; the text has no usage words (quota, billing) and no
/// config words that would outrank it. The recorder kept no `retry-after`, so no hint.
fn check_anthropic_429(body: &str, headers: &str) {
    let c = classify(&http_error(body, Some(headers), "anthropic"));
    Want::kind("rate_limit", true)
        .status(429)
        .provider("anthropic")
        .message("Anthropic is rate limiting requests.")
        .check(body, &c);
    assert!(
        c.detail().starts_with(ANTHROPIC_RATE_LIMIT_DETAIL_START),
        "{c:?}"
    );
    // The message links to docs: the links survive as host/path only.
    assert!(
        c.detail().contains("docs.claude.com/en/api/rate-limits"),
        "{c:?}"
    );
    assert_eq!(c.retry_after(), Duration::ZERO);
    assert_detail_safe(&c);
}

#[test]
fn anthropic_429_rate_limit_error_attempt1() {
    check_anthropic_429(
        "anthropic--429-rate-limit-error--attempt1.json",
        "anthropic--429-rate-limit-error--attempt1.headers.json",
    );
}

#[test]
fn anthropic_429_rate_limit_error_attempt2() {
    check_anthropic_429(
        "anthropic--429-rate-limit-error--attempt2.json",
        "anthropic--429-rate-limit-error--attempt2.headers.json",
    );
}

/// Expected `rate_limit`, retryable, no hint: the headers say `x-should-retry: true`, which
/// only agrees with the 429; they carry no `retry-after`.
fn check_429_headers(name: &str) {
    let pe = ProviderError::new("")
        .with_status(429)
        .with_headers(headers(name));
    assert_eq!(pe.should_retry(), Some(true));
    let c = classify(&pe);
    Want::kind("rate_limit", true)
        .status(429)
        .no_detail()
        .check(name, &c);
    assert_eq!(c.retry_after(), Duration::ZERO);
}

#[test]
fn anthropic_429_rate_limit_error_attempt1_headers() {
    check_429_headers("anthropic--429-rate-limit-error--attempt1.headers.json");
}

#[test]
fn anthropic_429_rate_limit_error_attempt2_headers() {
    check_429_headers("anthropic--429-rate-limit-error--attempt2.headers.json");
}

// --- anthropic--400-invalid-request--orphan-tool-result ----------------------------------

/// Expected `generic`, not retryable: a 400 `invalid_request_error` about message structure
/// matches no rule (it is neither auth, nor config, nor transient), so it falls through to
/// the generic fallback with the provider's sentence as detail. `x-should-retry: false`
/// agrees.
#[test]
fn anthropic_400_invalid_request_orphan_tool_result() {
    let name = "anthropic--400-invalid-request--orphan-tool-result.json";
    let c = classify(&http_error(
        name,
        Some("anthropic--400-invalid-request--orphan-tool-result.headers.json"),
        "anthropic",
    ));
    Want::kind("generic", false)
        .status(400)
        .provider("anthropic")
        .message("Anthropic returned an unexpected error.")
        .detail(provider_message(&json(name)))
        .check(name, &c);
}

/// Expected: the recorded `x-should-retry: false` makes even a normally retryable 503
/// terminal (`timeout`, not retryable), per DECISIONS §3.
#[test]
fn anthropic_400_invalid_request_orphan_tool_result_headers() {
    let name = "anthropic--400-invalid-request--orphan-tool-result.headers.json";
    let pe = ProviderError::new("service unavailable")
        .with_status(503)
        .with_headers(headers(name));
    assert_eq!(pe.should_retry(), Some(false));
    Want::kind("timeout", false)
        .status(503)
        .check(name, &classify(&pe));
}

/// Expected `generic`, not retryable, no detail: this is the *request* that caused the 400,
/// not an error document. Its `messages` array must not be mistaken for a `message`, and a
/// 400 without a recognisable text is the generic fallback.
#[test]
fn anthropic_400_invalid_request_orphan_tool_result_request() {
    let name = "anthropic--400-invalid-request--orphan-tool-result.request.json";
    let pe = ProviderError::new("")
        .with_status(400)
        .with_body(read(name))
        .with_provider("anthropic");
    Want::kind("generic", false)
        .status(400)
        .message("Anthropic returned an unexpected error.")
        .no_detail()
        .check(name, &classify(&pe));
}

// --- anthropic--200-ratelimit-headers ---------------------------------------------------

/// Expected `overloaded`, retryable, no Retry-After: `anthropic-ratelimit-*-reset` headers
/// are RFC 3339 instants for quota windows, not the `retry-after` hint, so attaching them
/// to a 529 must not create a delay floor.
#[test]
fn anthropic_200_ratelimit_headers() {
    let name = "anthropic--200-ratelimit-headers.json";
    assert_eq!(status_of(name), 200);
    let pe = ProviderError::new("Overloaded")
        .with_status(529)
        .with_headers(headers(name))
        .with_provider("anthropic");
    let c = classify(&pe);
    Want::kind("overloaded", true)
        .status(529)
        .provider("anthropic")
        .check(name, &c);
    assert_eq!(c.retry_after(), Duration::ZERO);
    assert_eq!(pe.should_retry(), None);
}

// --- openai--429-insufficient-quota ----------------------------------------------------

/// Expected `usage_limit`, not retryable: `insufficient_quota` is the any-status usage
/// pattern, which beats the 429 (retrying cannot refill an account). OpenAI puts it only in
/// `error.type` / `error.code`, which we read as error text (docs/chaterror.md).
#[test]
fn openai_429_insufficient_quota() {
    let name = "openai--429-insufficient-quota.json";
    let c = classify(&http_error(name, None, "openai"));
    Want::kind("usage_limit", false)
        .status(429)
        .provider("openai")
        .message(
            "The usage quota for OpenAI has been exceeded. Check the billing and quota settings for the provider account.",
        )
        .detail(
            "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: platform.openai.com/docs/guides/error-codes/api-errors.",
        )
        .check(name, &c);
    assert_detail_safe(&c);

    // Without the body the message alone reads as a rate limit: "quota" and "billing" lose
    // to a 429. This is why the error code matters.
    let message_only = ProviderError::new(provider_message(&json(name))).with_status(429);
    Want::kind("rate_limit", true).check("message only", &classify(&message_only));
}

// --- openai--400-unsupported-parameter-* -----------------------------------------------

/// Expected `generic`, not retryable: "Unsupported parameter" is not one of the config
/// patterns (those name the model or the context length), so a 400 falls to the generic
/// fallback; the detail tells the user which parameter.
fn check_openai_400(name: &str) {
    let c = classify(&http_error(name, None, "openai"));
    Want::kind("generic", false)
        .status(400)
        .provider("openai")
        .message("OpenAI returned an unexpected error.")
        .detail(provider_message(&json(name)))
        .check(name, &c);
}

#[test]
fn openai_400_unsupported_parameter_temperature() {
    check_openai_400("openai--400-unsupported-parameter-temperature.json");
}

#[test]
fn openai_400_unsupported_parameter_max_tokens() {
    check_openai_400("openai--400-unsupported-parameter-max-tokens.json");
}

// --- anthropic--529-overloaded -----------------------------------------------------------

/// Expected `overloaded`, retryable: HTTP 529 is the first rule, and the text says
/// "Overloaded" too. The extra `"details": null` member is ignored.
#[test]
fn anthropic_529_overloaded() {
    let name = "anthropic--529-overloaded.json";
    Want::kind("overloaded", true)
        .status(529)
        .provider("anthropic")
        .message("Anthropic is temporarily overloaded.")
        .detail("Overloaded")
        .check(name, &classify(&http_error(name, None, "anthropic")));
}

// --- anthropic--200-stream-*-overloaded ---------------------------------------------------

/// Expected `overloaded`, retryable, status 0: the `error` event arrives inside an HTTP 200,
/// so there is no status of its own; the "overloaded" text (message and
/// `overloaded_error` type) decides. It is not "stream closed before message_stop": the
/// stream ended with an explicit error.
fn check_anthropic_stream_overloaded(name: &str) {
    assert_eq!(status_of(name), 200);
    let c = classify(&stream_error(name, "anthropic"));
    Want::kind("overloaded", true)
        .status(0)
        .provider("anthropic")
        .message("Anthropic is temporarily overloaded.")
        .detail("Overloaded")
        .check(name, &c);
}

#[test]
fn anthropic_200_stream_then_overloaded_error_event() {
    check_anthropic_stream_overloaded("anthropic--200-stream-then-overloaded-error-event.sse");
}

#[test]
fn anthropic_200_stream_first_event_overloaded() {
    check_anthropic_stream_overloaded("anthropic--200-stream-first-event-overloaded.sse");
}

// --- openai-responses--stream-error-event--* -----------------------------------------------

/// Expected `rate_limit`, retryable: the flat event's message "Rate limit reached" (and its
/// code `rate_limit_exceeded`) match the rate-limit patterns. The top-level `message` is
/// used because there is no `error` object.
#[test]
fn openai_responses_stream_error_event_flat_rate_limit() {
    let name = "openai-responses--stream-error-event--flat-rate-limit.sse";
    Want::kind("rate_limit", true)
        .status(0)
        .provider("openai")
        .message("OpenAI is rate limiting requests.")
        .detail("Rate limit reached")
        .check(name, &classify(&stream_error(name, "openai")));
}

/// Expected `generic`, retryable: the nested event's code `server_error` reads as "server
/// error", the generic-retryable rule (#9) — a transient failure on OpenAI's side. Without a
/// status the retryable generic message names the provider.
#[test]
fn openai_responses_stream_error_event_nested_server_error() {
    let name = "openai-responses--stream-error-event--nested-server-error.sse";
    Want::kind("generic", true)
        .status(0)
        .provider("openai")
        .message("OpenAI returned an unexpected error.")
        .detail("response failed")
        .check(name, &classify(&stream_error(name, "openai")));
}

// --- canonical-shapes--third-party-quotes ----------------------------------------------------

/// Each canonical shape, with the kind it must get:
/// - OpenAI 400 context length: "maximum context length" is a config pattern → `config`.
/// - OpenAI 401 invalid key: 401 → `auth`; the provider's sentence is kept (it masks the
///   key), its URL reduced to host/path.
/// - Anthropic 400 prompt too long: no pattern names it → `generic`, not retryable, with
///   the provider's sentence as detail.
/// - Anthropic 401: → `auth`.
/// - Anthropic 413: no rule for 413 → `generic`, not retryable.
/// - Anthropic 529: → `overloaded`, retryable.
#[test]
fn canonical_shapes_third_party_quotes() {
    let doc = json("canonical-shapes--third-party-quotes.json");
    let cases = [
        ("openai_400_context_length_exceeded", "openai", Want::kind("config", false)),
        ("openai_401_invalid_api_key", "openai", Want::kind("auth", false).detail(
            "Incorrect API key provided: sk-***. You can find your API key at platform.openai.com/account/api-keys.",
        )),
        ("anthropic_400_prompt_too_long", "anthropic", Want::kind("generic", false).detail(
            "prompt is too long: 210000 tokens > 200000 maximum",
        )),
        ("anthropic_401_authentication_error", "anthropic", Want::kind("auth", false).detail("invalid x-api-key")),
        ("anthropic_413_request_too_large", "anthropic", Want::kind("generic", false)),
        ("anthropic_529_overloaded", "anthropic", Want::kind("overloaded", true)),
    ];
    let shapes = doc
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "note")
        .count();
    assert_eq!(shapes, cases.len(), "every shape is covered");
    for (key, provider, want) in cases {
        let shape = &doc[key];
        let status = u16::try_from(shape["status"].as_u64().unwrap()).unwrap();
        let body = serde_json::to_vec(&shape["body"]).unwrap();
        let pe = ProviderError::new(provider_message(&shape["body"]))
            .with_status(status)
            .with_body(dump(status, &body))
            .with_provider(provider);
        let c = classify(&pe);
        want.status(status).provider(provider).check(key, &c);
        assert_detail_safe(&c);
    }
}

// --- bookkeeping -----------------------------------------------------------------------------

/// `manifest.json` describes every fixture; check sizes so the tests above read the files
/// the manifest vouches for. (`README.md` and `manifest.json` are metadata, not errors.)
#[test]
fn manifest_matches_files() {
    for entry in manifest() {
        let file = entry["file"]
            .as_str()
            .unwrap()
            .strip_prefix("errors/")
            .unwrap();
        assert_eq!(
            read(file).len() as u64,
            entry["bytes"].as_u64().unwrap(),
            "{file}"
        );
    }
}

/// A new fixture file fails this test until it has a classification test above.
#[test]
fn every_fixture_is_covered() {
    const COVERED: &[&str] = &[
        "README.md",
        "manifest.json",
        "anthropic--200-ratelimit-headers.json",
        "anthropic--200-stream-first-event-overloaded.sse",
        "anthropic--200-stream-then-overloaded-error-event.sse",
        "anthropic--400-invalid-request--orphan-tool-result.headers.json",
        "anthropic--400-invalid-request--orphan-tool-result.json",
        "anthropic--400-invalid-request--orphan-tool-result.request.json",
        "anthropic--429-rate-limit-error--attempt1.headers.json",
        "anthropic--429-rate-limit-error--attempt1.json",
        "anthropic--429-rate-limit-error--attempt2.headers.json",
        "anthropic--429-rate-limit-error--attempt2.json",
        "anthropic--529-overloaded.json",
        "canonical-shapes--third-party-quotes.json",
        "openai--400-unsupported-parameter-max-tokens.json",
        "openai--400-unsupported-parameter-temperature.json",
        "openai--429-insufficient-quota.json",
        "openai-responses--stream-error-event--flat-rate-limit.sse",
        "openai-responses--stream-error-event--nested-server-error.sse",
    ];
    // Sorted by name already.
    let files: Vec<String> = testdata_file_names("errors");
    let mut covered: Vec<String> = COVERED.iter().map(|s| (*s).to_owned()).collect();
    covered.sort();
    assert_eq!(files, covered);
}
