//! User-facing sentences (Era C wording).
//!
//! HTTP statuses are deliberately absent: clients render `status_code` themselves.

use codersdk::ChatErrorKind;

use crate::provider::{display_name, subject_initial, subject_inner};
use crate::ClassifiedError;

/// The message of a cancellation or interruption.
pub(crate) const CANCELED: &str = "The request was canceled before it completed.";

/// The message of an OpenAI Responses continuity failure.
pub(crate) const CONTINUITY: &str = "The chat continuation failed due to an internal state mismatch. This is not a configuration or billing issue.";

/// The message of an error that has nothing more specific to say.
pub(crate) const FAILED_UNEXPECTEDLY: &str = "The chat request failed unexpectedly.";

const MISSING_KEY: &str = "This conversation was started with an API key that is no longer available. Send your message again to continue.";

/// The sentence shown when a chat ends with this classification.
pub(crate) fn terminal_message(c: &ClassifiedError) -> String {
    let p = c.provider();
    let known_status = c.status_code() != 0;
    match c.kind() {
        Some(ChatErrorKind::Overloaded) => format!("{} is temporarily overloaded.", subject_initial(p)),
        Some(ChatErrorKind::RateLimit) => format!("{} is rate limiting requests.", subject_initial(p)),
        Some(ChatErrorKind::Timeout) if !c.is_retryable() && !known_status => {
            "The request timed out before it completed.".to_owned()
        }
        Some(ChatErrorKind::Timeout) => format!("{} is temporarily unavailable.", subject_initial(p)),
        Some(ChatErrorKind::StartupTimeout) => {
            format!("{} did not start responding in time.", subject_initial(p))
        }
        Some(ChatErrorKind::UsageLimit) => format!(
            "The usage quota for {} has been exceeded. Check the billing and quota settings for the provider account.",
            subject_inner(p)
        ),
        Some(ChatErrorKind::Auth) => {
            format!("Authentication with {} failed. Check the API key and permissions.", subject_inner(p))
        }
        Some(ChatErrorKind::Config) => format!(
            "{} rejected the model configuration. Check the selected model and provider settings.",
            subject_initial(p)
        ),
        Some(ChatErrorKind::MissingKey) => MISSING_KEY.to_owned(),
        Some(ChatErrorKind::ProviderDisabled) => format!(
            "The {} provider has been disabled. Contact your Coder administrator.",
            display_name(p).unwrap_or("AI")
        ),
        Some(ChatErrorKind::ContentFilter) => content_filter_message(p, ""),
        // Generic, kinds from newer peers, and the zero value.
        _ if !c.is_retryable() && !known_status => FAILED_UNEXPECTEDLY.to_owned(),
        _ => format!("{} returned an unexpected error.", subject_initial(p)),
    }
}

/// The sentence shown while the chat waits to retry: no remediation advice, since the
/// server is still trying.
pub(crate) fn retry_message(c: &ClassifiedError) -> String {
    if c.is_retryable() && !c.message().is_empty() {
        return c.message().to_owned();
    }
    let p = c.provider();
    match c.kind() {
        Some(ChatErrorKind::Overloaded) => {
            format!("{} is temporarily overloaded.", subject_initial(p))
        }
        Some(ChatErrorKind::RateLimit) => {
            format!("{} is rate limiting requests.", subject_initial(p))
        }
        Some(ChatErrorKind::Timeout) => {
            format!("{} is temporarily unavailable.", subject_initial(p))
        }
        Some(ChatErrorKind::StartupTimeout) => {
            format!("{} did not start responding in time.", subject_initial(p))
        }
        Some(ChatErrorKind::Auth) => format!("Authentication with {} failed.", subject_inner(p)),
        Some(ChatErrorKind::Config) => {
            format!("{} rejected the model configuration.", subject_initial(p))
        }
        Some(ChatErrorKind::MissingKey) => {
            "The API key for this conversation is no longer available.".to_owned()
        }
        Some(ChatErrorKind::ProviderDisabled) => format!(
            "The {} provider has been disabled by an administrator.",
            display_name(p).unwrap_or("AI")
        ),
        _ => format!("{} returned an unexpected error.", subject_initial(p)),
    }
}

/// The message for a response the provider's content filter blocked, optionally naming the
/// filter category.
///
/// ```
/// use chaterror::content_filter_message;
/// assert_eq!(
///     content_filter_message("azure openai", "violence"),
///     "Azure OpenAI blocked this response under its content policy (violence)."
/// );
/// assert_eq!(
///     content_filter_message("", " "),
///     "The AI provider blocked this response under its content policy."
/// );
/// ```
pub fn content_filter_message(provider: &str, category: &str) -> String {
    let provider = crate::provider::normalize_provider(provider);
    let subject = subject_initial(&provider);
    match category.trim() {
        "" => format!("{subject} blocked this response under its content policy."),
        category => {
            format!("{subject} blocked this response under its content policy ({category}).")
        }
    }
}
