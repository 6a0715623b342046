//! Classify LLM provider failures into chat error kinds, with user-facing messages and a
//! Retry-After-aware retry policy.
//!
//! A chat backend calls model providers that fail in many ways: HTTP statuses, JSON error
//! bodies, SDK wrapper strings, HTTP/2 resets, cancellations. This crate turns any such
//! error into a [`ClassifiedError`]: a [`ChatErrorKind`] from the wire vocabulary
//! (`rate_limit`, `auth`, `timeout`, …), whether a retry may help, the upstream status, the
//! provider, the provider's own explanation (bounded and scrubbed of URLs) and its
//! Retry-After hint, plus a sentence fit to show a user. [`retry()`] runs a model call under
//! the retry policy that classification implies. The rules are those of Coder's chatd
//! (parts A and B, Era C); the crate does no I/O beyond the timer of its retry loop.
//!
//! - [`classify`] walks an error's whole source chain; [`classify_text`] classifies a bare
//!   message.
//! - [`ProviderError`] is what a provider client should return (or wrap) so that
//!   classification sees status, headers and body.
//! - [`with_classification`] pins a classification the caller already knows (a startup
//!   timeout, a missing key) onto an error.
//! - [`ClassifiedError::to_chat_error`] and [`ClassifiedError::to_stream_retry`] build the
//!   wire payloads; [`decode_chat_error`] reads persisted ones back, including legacy text
//!   rows.
//! - [`Redactor`] removes the credentials a request used, and anything shaped like a key,
//!   from error text before it is stored, published, logged or returned; [`redact`]
//!   removes key-shaped text only, and every classification's detail goes through it.
//! - [`retry`](mod@retry) holds the backoff constants and the [`retry()`] driver.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use chaterror::{classify, retry, ChatErrorKind, ProviderError};
//! use tokio_util::sync::CancellationToken;
//!
//! // What a provider client reports for an HTTP 429.
//! let rate_limited = || {
//!     ProviderError::new("upstream failed")
//!         .with_status(429)
//!         .with_header("Retry-After", "3")
//!         .with_body(r#"{"error":{"message":"Rate limit reached for requests"}}"#)
//!         .with_provider("openai")
//! };
//!
//! let c = classify(&rate_limited());
//! assert_eq!(c.kind(), Some(&ChatErrorKind::RateLimit));
//! assert!(c.is_retryable());
//! assert_eq!(c.status(), Some(429));
//! assert_eq!(c.message(), "OpenAI is rate limiting requests.");
//! assert_eq!(c.detail(), "Rate limit reached for requests");
//! assert_eq!(c.retry_after(), Duration::from_secs(3));
//!
//! // Run a call that is rate limited once, then succeeds.
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! let cancel = CancellationToken::new();
//! let mut calls = 0;
//! let reply = retry(
//!     &cancel,
//!     |_attempt_token| {
//!         calls += 1;
//!         let outcome = if calls == 1 { Err(rate_limited()) } else { Ok("hello") };
//!         async move { outcome }
//!     },
//!     |attempt, _err, c, delay| {
//!         // Retry-After (3 s) is a floor on the 1 s backoff.
//!         assert_eq!((attempt, delay), (1, Duration::from_secs(3)));
//!         let event = c.to_stream_retry(attempt, delay, codersdk::Timestamp::now());
//!         assert_eq!(event.map(|e| e.error).as_deref(), Some("OpenAI is rate limiting requests."));
//!     },
//! )
//! .await;
//! assert_eq!(reply.ok(), Some("hello"));
//! # });
//! ```
//!
//! # Feature flags
//!
//! None.

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod chain;
mod classified;
mod classify;
mod detail;
mod error;
mod markers;
mod messages;
mod overflow;
mod patterns;
mod persisted;
mod provider;
mod provider_error;
mod redact;
pub mod retry;

pub use codersdk::ChatErrorKind;

pub use chain::{MAX_CHAIN_DEPTH, MAX_ERROR_TEXT_BYTES};
pub use classified::{ClassifiedError, ClassifiedErrorBuilder};
pub use classify::{classify, classify_text};
pub use detail::{
    DETAIL_ELLIPSIS, MAX_DETAIL_RUNES, MAX_DETAIL_SCAN_RUNES, MAX_ERROR_CODE_BYTES,
    MAX_PARSED_BODY_BYTES,
};
pub use error::{with_classification, Error, ErrorKind};
pub use markers::{
    find_in_chain, is_canceled, is_deadline_exceeded, is_interrupted, is_transport_reset, Canceled,
    DeadlineExceeded, Http2ErrorCode, Http2StreamError, Interrupted, TransportReset,
    HTTP2_CAUSE_RECEIVED_FROM_PEER,
};
pub use messages::content_filter_message;
pub use overflow::is_context_overflow;
pub use persisted::{decode_chat_error, decode_last_error, persisted_error_text};
pub use provider::{detect_provider, display_name, normalize_provider};
pub use provider_error::{
    parse_google_retry_delay, parse_retry_after, ProviderError, MAX_RETRY_AFTER, RETRY_AFTER,
    RETRY_AFTER_MS, X_SHOULD_RETRY,
};
pub use redact::{
    redact, RedactedDisplay, Redactor, MIN_ASSIGNED_SECRET_CHARS, MIN_BEARER_TOKEN_CHARS,
    MIN_KEY_SHAPE_CHARS, MIN_SUBSTRING_SECRET_BYTES, REDACTED,
};
pub use retry::{retry, Cancellation, CauseToken};

/// A boxed error that can cross threads: what [`retry()`] stores and what
/// [`with_classification`] accepts.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
