//! Whether a provider refused a request because the prompt does not fit the model's
//! context window.
//!
//! Classification puts these failures under [`ChatErrorKind::Config`](crate::ChatErrorKind)
//! (there is no context-length kind on the wire), and a config error is final. The chat
//! engine is the one caller that can do something about this particular config error —
//! summarize the conversation and try again — so it asks this predicate before giving up.

use std::error::Error as StdError;

use crate::chain::{chain_text, Chain};
use crate::provider_error::ProviderError;

/// How providers word a prompt that does not fit, lowercased (OpenAI's codes and texts,
/// Anthropic's, Bedrock's, Gemini's, and the generic forms OpenAI-compatible servers use).
const OVERFLOW_PATTERNS: &[&str] = &[
    "context_length_exceeded",
    "context length exceeded",
    "maximum context length",
    "context_exceeded",
    "context window",
    "prompt is too long",
    "input is too long",
    "too many input tokens",
    "input token count",
    "model_context_window_exceeded",
];

/// Whether `err` (its text, and the body of a [`ProviderError`] in its chain) says the
/// request's prompt exceeds the model's context window.
///
/// ```
/// use chaterror::{is_context_overflow, ProviderError};
/// let err = ProviderError::new("HTTP 400").with_status(400).with_body(
///     r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
/// );
/// assert!(is_context_overflow(&err));
/// assert!(!is_context_overflow(&ProviderError::new("HTTP 429").with_status(429)));
/// ```
pub fn is_context_overflow(err: &(dyn StdError + 'static)) -> bool {
    let mut text = chain_text(err).to_lowercase();
    for node in Chain::new(err) {
        if let Some(pe) = node.downcast_ref::<ProviderError>() {
            let body = pe.body();
            let cap = body.len().min(crate::MAX_ERROR_TEXT_BYTES);
            text.push('\n');
            text.push_str(
                &String::from_utf8_lossy(body.get(..cap).unwrap_or_default()).to_lowercase(),
            );
        }
    }
    OVERFLOW_PATTERNS.iter().any(|p| text.contains(p))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn body(status: u16, body: &str) -> ProviderError {
        ProviderError::new(format!("HTTP {status}"))
            .with_status(status)
            .with_body(body.to_owned())
    }

    #[test]
    fn recognises_each_providers_wording() {
        let cases = [
            r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
            r#"{"error":{"message":"Your input exceeds the context window of this model. Please adjust your input and try again.","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
            r#"{"message":"Input is too long for requested model."}"#,
            r#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#,
        ];
        for case in cases {
            assert!(is_context_overflow(&body(400, case)), "{case}");
        }
        assert!(is_context_overflow(&ProviderError::new(
            "context length exceeded"
        )));
    }

    #[test]
    fn other_failures_are_not_overflows() {
        let cases = [
            r#"{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}"#,
            r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#,
            r#"{"error":{"message":"The model `gpt-9` does not exist","code":"model_not_found"}}"#,
            "",
        ];
        for case in cases {
            assert!(!is_context_overflow(&body(400, case)), "{case}");
        }
    }
}
