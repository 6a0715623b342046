//! [`ClassifiedError`]: the result of classification.

use std::time::Duration;

use codersdk::{ChatError, ChatErrorKind, ChatStreamRetry, Timestamp};
use serde::{Serialize, Serializer};

use crate::messages::{retry_message, terminal_message};
use crate::provider::normalize_provider;
use crate::{detail, MAX_RETRY_AFTER};

/// What went wrong with a model call, in the terms a user and a retry loop need.
///
/// Produced by [`classify`](crate::classify) (or built with [`ClassifiedError::builder`]
/// for failures the chat loop recognises itself, then attached with
/// [`with_classification`](crate::with_classification)). Every value is normalized: the
/// message is filled in from the kind and provider, the detail is trimmed, scrubbed of URLs
/// and at most [`MAX_DETAIL_RUNES`](crate::MAX_DETAIL_RUNES) runes, the provider id is
/// normalized, and the retry hint is within [`MAX_RETRY_AFTER`]. The
/// [`Default`] value is the "no error" classification: no kind and an empty message.
///
/// It serializes to JSON as
/// `{"kind","message","detail","provider","retryable","status_code","retry_after_ms"}`, with
/// empty strings and zeros for unknown values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClassifiedError {
    #[serde(serialize_with = "kind_string")]
    kind: Option<ChatErrorKind>,
    message: String,
    detail: String,
    provider: String,
    retryable: bool,
    status_code: u16,
    #[serde(rename = "retry_after_ms", serialize_with = "whole_millis")]
    retry_after: Duration,
    /// The provider no longer has the response a chained OpenAI Responses request
    /// continued from. Internal: the chat loop reads it to replay the whole history
    /// instead; it is not part of the wire form, which stays the seven fields above.
    #[serde(skip)]
    chain_broken: bool,
}

impl ClassifiedError {
    /// Starts building a classification of `kind`.
    pub fn builder(kind: ChatErrorKind) -> ClassifiedErrorBuilder {
        ClassifiedErrorBuilder {
            inner: ClassifiedError {
                kind: Some(kind),
                ..Default::default()
            },
        }
    }

    /// The error kind; `None` only for the empty classification.
    pub fn kind(&self) -> Option<&ChatErrorKind> {
        self.kind.as_ref()
    }

    /// The user-facing sentence; empty only for the empty classification.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Provider-specific context, empty when none.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The normalized provider id, empty when unknown.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Whether retrying the call may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The upstream HTTP status, `None` when unknown.
    pub fn status(&self) -> Option<u16> {
        (self.status_code != 0).then_some(self.status_code)
    }

    /// The upstream HTTP status, `0` when unknown (the wire convention).
    pub fn status_code(&self) -> u16 {
        self.status_code
    }

    /// The provider's minimum delay before a retry; zero when it gave none.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// Whether the failure says the provider lost the stored response that a chained
    /// OpenAI Responses request named in `previous_response_id` (expired, deleted, or kept
    /// by another project). The request cannot succeed as sent, but the same step replayed
    /// with the whole history can, so a chat loop retries that way once instead of
    /// spending its retry budget on the same chained request.
    ///
    /// ```
    /// use chaterror::classify_text;
    /// let c = classify_text("Previous response with id 'resp_123' not found.");
    /// assert!(c.is_chain_broken());
    /// assert!(c.is_retryable());
    /// assert_eq!(c.provider(), "openai");
    /// assert!(!classify_text("model not found").is_chain_broken());
    /// ```
    pub fn is_chain_broken(&self) -> bool {
        self.chain_broken
    }

    /// Whether this is the empty classification (no error).
    pub fn is_empty(&self) -> bool {
        *self == ClassifiedError::default()
    }

    /// The same classification attributed to the provider named by `hint`.
    ///
    /// The hint is normalized. An empty hint changes nothing. A different provider
    /// regenerates the message so that it names the new provider; detail, status and retry
    /// hint are kept.
    ///
    /// ```
    /// use chaterror::classify_text;
    /// let c = classify_text("received status 429 from upstream").with_provider("azure openai");
    /// assert_eq!(c.provider(), "azure");
    /// assert_eq!(c.message(), "Azure OpenAI is rate limiting requests.");
    /// ```
    pub fn with_provider(&self, hint: &str) -> ClassifiedError {
        let hint = normalize_provider(hint);
        if hint.is_empty() {
            return self.clone().normalized();
        }
        if hint == self.provider && !self.message.is_empty() {
            return self.clone();
        }
        let mut c = self.clone();
        c.provider = hint;
        c.message.clear();
        c.normalized()
    }

    /// The sentence for a `retry` stream event: the message itself when it is retryable,
    /// else a short form without remediation advice.
    pub fn retry_message(&self) -> String {
        retry_message(self)
    }

    /// The terminal error payload (the chat's `last_error` and the `error` stream event);
    /// `None` for the empty classification.
    pub fn to_chat_error(&self) -> Option<ChatError> {
        if self.message.is_empty() {
            return None;
        }
        Some(ChatError {
            message: self.message.clone(),
            detail: self.detail.clone(),
            kind: self.kind.clone(),
            provider: self.provider.clone(),
            retryable: self.retryable,
            status_code: self.status_code,
        })
    }

    /// The payload of a `retry` stream event announcing 1-based `attempt`, which starts after
    /// `delay` from `now`; `None` for the empty classification.
    pub fn to_stream_retry(
        &self,
        attempt: u32,
        delay: Duration,
        now: Timestamp,
    ) -> Option<ChatStreamRetry> {
        if self.message.is_empty() {
            return None;
        }
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        let retrying_at = chrono::TimeDelta::try_milliseconds(delay_ms)
            .and_then(|d| now.0.checked_add_signed(d))
            .map_or(now, Timestamp);
        Some(ChatStreamRetry {
            attempt,
            delay_ms,
            error: self.retry_message(),
            kind: self.kind.clone(),
            provider: self.provider.clone(),
            status_code: self.status_code,
            retrying_at,
        })
    }

    /// Puts the value in canonical form (trimmed, redacted message; known kind; provider id
    /// normalized) so that every value handed out compares and serializes the same way.
    pub(crate) fn normalized(mut self) -> ClassifiedError {
        self.message = crate::redact::redact(self.message.trim()).into_owned();
        self.detail = detail::normalize(&self.detail);
        self.kind = self.kind.and_then(normalize_kind);
        self.provider = normalize_provider(&self.provider);
        self.retry_after = self.retry_after.min(MAX_RETRY_AFTER);
        if self.kind.is_none() && self.message.is_empty() {
            if self.detail.is_empty() && self.status_code == 0 && self.retry_after.is_zero() {
                return ClassifiedError::default();
            }
            self.kind = Some(ChatErrorKind::Generic);
        }
        if self.kind.is_none() {
            self.kind = Some(ChatErrorKind::Generic);
        }
        if self.message.is_empty() {
            self.message = terminal_message(&self);
        }
        self
    }

    pub(crate) fn from_parts(
        kind: ChatErrorKind,
        retryable: bool,
        provider: &str,
        status_code: u16,
        retry_after: Duration,
    ) -> ClassifiedError {
        ClassifiedError {
            kind: Some(kind),
            message: String::new(),
            detail: String::new(),
            provider: provider.to_owned(),
            retryable,
            status_code,
            retry_after,
            chain_broken: false,
        }
    }

    pub(crate) fn set_chain_broken(&mut self, chain_broken: bool) {
        self.chain_broken = chain_broken;
    }

    pub(crate) fn set_message(&mut self, message: impl Into<String>) {
        self.message = message.into();
    }

    pub(crate) fn set_detail(&mut self, detail: impl Into<String>) {
        self.detail = detail.into();
    }

    pub(crate) fn set_retryable(&mut self, retryable: bool) {
        self.retryable = retryable;
    }
}

/// Trims kinds from newer peers; a blank kind is no kind.
fn normalize_kind(kind: ChatErrorKind) -> Option<ChatErrorKind> {
    match kind {
        ChatErrorKind::Unknown(s) => {
            let t = s.trim();
            (!t.is_empty()).then(|| ChatErrorKind::from_wire(t))
        }
        known => Some(known),
    }
}

/// The empty classification has no kind; it serializes as `""` like the other unknowns.
fn kind_string<S: Serializer>(kind: &Option<ChatErrorKind>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_ref().map_or("", ChatErrorKind::as_str))
}

fn whole_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Builds a [`ClassifiedError`] for a failure the caller recognised itself (a startup
/// timeout, a missing key, a content-filter block). [`build`](Self::build) normalizes the
/// result, filling the message from the kind and provider unless one was set.
///
/// ```
/// use chaterror::{ChatErrorKind, ClassifiedError};
/// let c = ClassifiedError::builder(ChatErrorKind::StartupTimeout)
///     .provider("openai")
///     .retryable(true)
///     .build();
/// assert_eq!(c.message(), "OpenAI did not start responding in time.");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ClassifiedErrorBuilder {
    inner: ClassifiedError,
}

impl ClassifiedErrorBuilder {
    /// Sets the user-facing sentence instead of the generated one.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.inner.message = message.into();
        self
    }

    /// Sets provider-specific context.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.inner.detail = detail.into();
        self
    }

    /// Names the provider (normalized on build).
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.inner.provider = provider.into();
        self
    }

    /// Sets whether a retry may succeed.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.inner.retryable = retryable;
        self
    }

    /// Sets the upstream HTTP status (`0` = unknown).
    pub fn status(mut self, status: u16) -> Self {
        self.inner.status_code = status;
        self
    }

    /// Sets the provider's minimum retry delay.
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.inner.retry_after = retry_after;
        self
    }

    /// The normalized classification.
    pub fn build(self) -> ClassifiedError {
        self.inner.normalized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_normalizes_to_zero_value() {
        let c = ClassifiedError {
            kind: Some(ChatErrorKind::Unknown("  ".into())),
            ..Default::default()
        };
        assert!(c.normalized().is_empty());
        let c = ClassifiedError {
            provider: "openai".into(),
            ..Default::default()
        };
        assert!(c.normalized().is_empty());
    }

    #[test]
    fn empty_kind_with_status_becomes_generic() {
        let c = ClassifiedError {
            status_code: 500,
            ..Default::default()
        }
        .normalized();
        assert_eq!(c.kind(), Some(&ChatErrorKind::Generic));
        assert_eq!(c.message(), "The AI provider returned an unexpected error.");
    }

    #[test]
    fn unknown_kind_is_trimmed_and_kept() {
        let c = ClassifiedError::builder(ChatErrorKind::Unknown(" rate_limit ".into())).build();
        assert_eq!(c.kind(), Some(&ChatErrorKind::RateLimit));
        let c = ClassifiedError::builder(ChatErrorKind::Unknown("hook_denied".into())).build();
        assert_eq!(c.kind().map(ChatErrorKind::as_str), Some("hook_denied"));
        assert_eq!(c.message(), "The chat request failed unexpectedly.");
    }

    #[test]
    fn retry_after_is_capped() {
        let c = ClassifiedError::builder(ChatErrorKind::RateLimit)
            .retry_after(MAX_RETRY_AFTER + Duration::from_secs(1))
            .build();
        assert_eq!(c.retry_after(), MAX_RETRY_AFTER);
    }

    #[test]
    fn serializes_exact_fields() {
        let c = ClassifiedError::builder(ChatErrorKind::RateLimit)
            .provider("Azure OpenAI")
            .retryable(true)
            .status(429)
            .retry_after(Duration::from_millis(1500))
            .build();
        let v = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({
                "kind": "rate_limit",
                "message": "Azure OpenAI is rate limiting requests.",
                "detail": "",
                "provider": "azure",
                "retryable": true,
                "status_code": 429,
                "retry_after_ms": 1500
            })
        );
        let v = serde_json::to_value(ClassifiedError::default()).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({
                "kind": "", "message": "", "detail": "", "provider": "",
                "retryable": false, "status_code": 0, "retry_after_ms": 0
            })
        );
    }
}
