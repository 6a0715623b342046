//! Error payloads: [`ChatError`], [`ChatErrorKind`], [`ChatStreamRetry`] and the standard
//! [`Response`] body every failing HTTP call returns.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::macros::string_enum;
use crate::serde_util::is_zero_u16;
use crate::Timestamp;

string_enum! {
    /// Classification of a failed model call.
    ///
    /// `stream_silence_timeout` (Coder's newest name) is read as [`ChatErrorKind::StartupTimeout`].
    pub enum ChatErrorKind {
        /// Anything unclassified.
        Generic = "generic",
        /// The provider is overloaded (HTTP 529 or "overloaded").
        Overloaded = "overloaded",
        /// Rate limited (HTTP 429).
        RateLimit = "rate_limit",
        /// Timed out (408/502/503/504 or transport timeouts).
        Timeout = "timeout",
        /// The provider stream did not start within the startup timeout.
        StartupTimeout = "startup_timeout",
        /// Bad credentials (401/403).
        Auth = "auth",
        /// Invalid model or provider configuration.
        Config = "config",
        /// A provider quota or spend limit was reached.
        UsageLimit = "usage_limit",
        /// No usable API key for the provider.
        MissingKey = "missing_key",
        /// The provider was disabled by an administrator.
        ProviderDisabled = "provider_disabled",
        /// The provider's content filter refused the request.
        ContentFilter = "content_filter",
    }
    aliases { "stream_silence_timeout" => StartupTimeout }
}

/// A structured error: `last_error` of a chat and the payload of `error` stream events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatError {
    /// Human-readable summary. Always present.
    #[serde(default)]
    pub message: String,
    /// Extra provider detail (at most 500 runes); omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub detail: String,
    /// Classification; omitted when unknown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::serde_util::empty_as_none"
    )]
    #[ts(optional)]
    pub kind: Option<ChatErrorKind>,
    /// Provider id (`anthropic`, `openai`, …); omitted when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub provider: String,
    /// Whether the server considers the failure transient. Always present.
    #[serde(default)]
    pub retryable: bool,
    /// Upstream HTTP status; omitted when 0 (unknown).
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    #[ts(as = "Option<_>", optional)]
    pub status_code: u16,
}

impl ChatError {
    /// A non-retryable error with only a message and kind `generic`.
    pub fn generic(message: impl Into<String>) -> Self {
        ChatError {
            message: message.into(),
            detail: String::new(),
            kind: Some(ChatErrorKind::Generic),
            provider: String::new(),
            retryable: false,
            status_code: 0,
        }
    }
}

/// Payload of a `retry` stream event: the previous attempt failed and another follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatStreamRetry {
    /// 1-based number of the attempt that failed.
    pub attempt: u32,
    /// Delay before the next attempt, in milliseconds.
    pub delay_ms: i64,
    /// User-facing retry message.
    pub error: String,
    /// Classification; omitted when unknown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::serde_util::empty_as_none"
    )]
    #[ts(optional)]
    pub kind: Option<ChatErrorKind>,
    /// Provider id; omitted when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub provider: String,
    /// Upstream HTTP status; omitted when 0.
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    #[ts(as = "Option<_>", optional)]
    pub status_code: u16,
    /// When the next attempt starts.
    pub retrying_at: Timestamp,
}

/// One field-level validation failure inside a [`Response`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub struct ValidationError {
    /// The JSON field (or query parameter) at fault.
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

impl ValidationError {
    /// Builds a validation entry.
    pub fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// The standard body of every failing (and some succeeding) HTTP call.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct Response {
    /// What happened, in one sentence. Always present.
    #[serde(default)]
    pub message: String,
    /// More detail; omitted when empty. Never contains secrets.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub detail: String,
    /// Per-field problems; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub validations: Vec<ValidationError>,
}

impl Response {
    /// A response with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        Response {
            message: message.into(),
            ..Default::default()
        }
    }

    /// Adds a detail sentence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Adds one validation entry.
    pub fn with_validation(mut self, field: impl Into<String>, detail: impl Into<String>) -> Self {
        self.validations.push(ValidationError::new(field, detail));
        self
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        for v in &self.validations {
            write!(f, "; {}: {}", v.field, v.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for Response {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_alias_and_unknown() {
        let k: ChatErrorKind =
            serde_json::from_str("\"stream_silence_timeout\"").unwrap_or(ChatErrorKind::Generic);
        assert_eq!(k, ChatErrorKind::StartupTimeout);
        let k: ChatErrorKind =
            serde_json::from_str("\"hook_denied\"").unwrap_or(ChatErrorKind::Generic);
        assert_eq!(k, ChatErrorKind::Unknown("hook_denied".into()));
        assert_eq!(
            serde_json::to_string(&k).unwrap_or_default(),
            "\"hook_denied\""
        );
    }

    #[test]
    fn chat_error_presence_rules() {
        let e = ChatError {
            retryable: false,
            ..ChatError::generic("boom")
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap_or_default(),
            r#"{"message":"boom","kind":"generic","retryable":false}"#
        );
    }
}
