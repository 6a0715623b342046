//! The classification algorithm (Era C).

use std::error::Error as StdError;
use std::time::Duration;

use codersdk::ChatErrorKind;

use crate::chain::{chain_text, is_canceled_node, is_deadline_node, prefix_within, Chain};
use crate::markers::{Http2StreamError, Interrupted, TransportReset};
use crate::messages::{CANCELED, CONTINUITY};
use crate::patterns::{self as pat, contains_any};
use crate::provider::{detect_provider_lower, normalize_provider, subject_initial};
use crate::{detail, ClassifiedError, Error, ProviderError};

/// Classifies an error, walking its whole source chain.
///
/// A classification attached with [`with_classification`](crate::with_classification)
/// anywhere in the chain wins. Otherwise the first [`ProviderError`] in the chain supplies
/// status, detail, Retry-After and whether the provider could not be reached at all
/// ([`ProviderError::is_connect_failure`], a retryable `timeout` without a status); typed markers ([`Canceled`](crate::Canceled),
/// [`DeadlineExceeded`](crate::DeadlineExceeded), [`Interrupted`],
/// [`TransportReset`], [`Http2StreamError`]) are recognised; and the text of the whole
/// chain is matched against the crate's text patterns in the fixed rule order
/// of this function.
///
/// An error with no text and no structured information gives the empty classification.
pub fn classify(err: &(dyn StdError + 'static)) -> ClassifiedError {
    let mut facts = ChainFacts::default();
    for node in Chain::new(err) {
        if let Some(e) = node.downcast_ref::<Error>() {
            if let Some(c) = e.classification() {
                return c.clone().normalized();
            }
        }
        if facts.provider_error.is_none() {
            facts.provider_error = node.downcast_ref::<ProviderError>();
        }
        if facts.http2.is_none() {
            facts.http2 = node.downcast_ref::<Http2StreamError>();
        }
        facts.canceled |= is_canceled_node(node);
        facts.deadline |= is_deadline_node(node);
        facts.interrupted |= node.is::<Interrupted>();
        facts.transport_reset |= node.is::<TransportReset>();
    }
    classify_with(&chain_text(err), &facts)
}

/// Classifies a bare error message, as [`classify`] would an error with this text and no
/// typed information.
///
/// ```
/// use chaterror::{classify_text, ChatErrorKind};
/// let c = classify_text("anthropic overloaded_error");
/// assert_eq!(c.kind(), Some(&ChatErrorKind::Overloaded));
/// assert_eq!(c.provider(), "anthropic");
/// assert_eq!(c.message(), "Anthropic is temporarily overloaded.");
/// ```
pub fn classify_text(text: &str) -> ClassifiedError {
    classify_with(
        prefix_within(text, crate::MAX_ERROR_TEXT_BYTES),
        &ChainFacts::default(),
    )
}

/// What the source chain says beyond its text.
#[derive(Default)]
struct ChainFacts<'a> {
    provider_error: Option<&'a ProviderError>,
    http2: Option<&'a Http2StreamError>,
    canceled: bool,
    deadline: bool,
    interrupted: bool,
    transport_reset: bool,
}

/// Structured information from a [`ProviderError`].
#[derive(Default)]
struct Structured {
    detail: String,
    /// Error codes from the body (`insufficient_quota`, `server_error`, …), lowercased.
    codes: String,
    status: u16,
    retry_after: Duration,
    provider: String,
    should_retry: Option<bool>,
}

impl Structured {
    fn from(pe: Option<&ProviderError>) -> Self {
        let Some(pe) = pe else {
            return Structured::default();
        };
        let body = detail::from_body(pe.body());
        // Like the error text, a detail candidate is cut before it is copied and scanned;
        // the cut still leaves far more than MAX_DETAIL_RUNES.
        let detail = match body.message {
            Some(m) => prefix_within(&m, crate::MAX_ERROR_TEXT_BYTES).to_owned(),
            None => {
                let message = prefix_within(pe.message(), crate::MAX_ERROR_TEXT_BYTES).trim();
                detail::unwrap_transport_wrapper(message).trim().to_owned()
            }
        };
        Structured {
            detail,
            codes: body.codes,
            status: pe.status().unwrap_or(0),
            retry_after: pe.retry_after(),
            provider: pe.provider().map(normalize_provider).unwrap_or_default(),
            should_retry: pe.should_retry(),
        }
    }
}

fn classify_with(text: &str, facts: &ChainFacts<'_>) -> ClassifiedError {
    let structured = Structured::from(facts.provider_error);
    let c = apply_rules(text, facts, &structured);
    // The provider's own verdict that a retry cannot help.
    if c.is_retryable() && structured.should_retry == Some(false) {
        let mut c = c;
        c.set_retryable(false);
        c.set_message(String::new());
        return c.normalized();
    }
    c
}

fn apply_rules(text: &str, facts: &ChainFacts<'_>, structured: &Structured) -> ClassifiedError {
    let message = text.trim();
    if message.is_empty()
        && structured.detail.is_empty()
        && structured.status == 0
        && structured.retry_after.is_zero()
    {
        return ClassifiedError::default();
    }
    let lower = message.to_lowercase();
    let status = match structured.status {
        0 => pat::status_from_text(&lower),
        s => s,
    };
    let provider = if structured.provider.is_empty() {
        detect_provider_lower(&lower)
    } else {
        structured.provider.as_str()
    };
    let base = |kind: ChatErrorKind, retryable: bool, provider: &str| {
        ClassifiedError::from_parts(kind, retryable, provider, status, structured.retry_after)
    };
    let with_detail = |mut c: ClassifiedError, detail: &str| {
        c.set_detail(detail);
        c.normalized()
    };

    // Interrupted by the user: never retry, never surface the raw text.
    if facts.interrupted || contains_any(&lower, pat::INTERRUPTED) {
        let mut c = base(ChatErrorKind::Generic, false, provider);
        c.set_message(CANCELED);
        return with_detail(c, &structured.detail);
    }

    // OpenAI Responses continuity failures name provider item ids; report only which
    // mismatch it was.
    let lower_detail = structured.detail.to_lowercase();
    let diagnostic = [
        (
            pat::RESPONSES_TOOL_OUTPUT_MISSING,
            "function_call_output_missing",
        ),
        (
            pat::RESPONSES_REASONING_MISSING,
            "web_search_reasoning_missing",
        ),
    ]
    .into_iter()
    .find(|(p, _)| lower.contains(p) || lower_detail.contains(p));
    if let Some((_, matched)) = diagnostic {
        let mut c = base(ChatErrorKind::Generic, false, provider);
        c.set_message(CONTINUITY);
        let d = format!("OpenAI Responses API request continuity diagnostic: match={matched}.");
        return with_detail(c, &d);
    }

    // A stream that ended without its terminal event was cut in transit: retry.
    let incomplete = [
        (pat::ANTHROPIC_STREAM_INCOMPLETE, "anthropic"),
        (pat::OPENAI_STREAM_INCOMPLETE, "openai"),
    ]
    .into_iter()
    .find(|(p, _)| lower.contains(p));
    if let Some((_, default_provider)) = incomplete {
        let provider = if provider.is_empty() {
            default_provider
        } else {
            provider
        };
        let mut c = base(ChatErrorKind::Timeout, true, provider);
        c.set_message(format!(
            "{} stream closed unexpectedly before the response completed.",
            subject_initial(provider)
        ));
        return with_detail(c, &structured.detail);
    }

    // A chained Responses request named a stored response the provider no longer has.
    // Coder matches the error text; our transport keeps the provider's own sentence in
    // the body, so the structured detail counts as well (as for the continuity
    // diagnostics above). Retryable: the same step replayed in full can succeed.
    let chain_broken = |text: &str| pat::RESPONSES_CHAIN_BROKEN.iter().all(|p| text.contains(p));
    if chain_broken(&lower) || chain_broken(&lower_detail) {
        let provider = if provider.is_empty() {
            "openai"
        } else {
            provider
        };
        let mut c = base(ChatErrorKind::Generic, true, provider);
        c.set_chain_broken(true);
        return with_detail(c, &structured_or_raw(&structured.detail, message));
    }

    // Provider error codes count as text: `insufficient_quota` or `server_error` often
    // appear only there. Underscores are also read as spaces so that `server_error`
    // matches "server error" and `context_length_exceeded` "context length exceeded".
    let signal_text;
    let lower_for_signals = if structured.codes.is_empty() {
        lower.as_str()
    } else {
        signal_text = format!(
            "{lower}\n{}\n{}",
            structured.codes,
            structured.codes.replace('_', " ")
        );
        signal_text.as_str()
    };
    let sig = Signals::compute(lower_for_signals, &lower_detail, status, facts);
    let rule = if sig.overloaded {
        Some((ChatErrorKind::Overloaded, true))
    } else if sig.usage_limit {
        Some((ChatErrorKind::UsageLimit, false))
    } else if sig.auth_strong || (sig.auth_weak && !sig.config) {
        Some((ChatErrorKind::Auth, false))
    } else if sig.rate_limit && !sig.config {
        Some((ChatErrorKind::RateLimit, true))
    } else if sig.provider_disabled {
        Some((ChatErrorKind::ProviderDisabled, false))
    } else if sig.timeout && !sig.config {
        Some((ChatErrorKind::Timeout, !sig.deadline))
    } else if sig.config {
        Some((ChatErrorKind::Config, false))
    } else if sig.generic_retryable {
        Some((ChatErrorKind::Generic, true))
    } else {
        None
    };

    match rule {
        Some((kind, retryable)) => {
            // Auth errors keep only the provider's own words: the raw text may hold the key.
            let detail = if kind == ChatErrorKind::Auth {
                structured.detail.clone()
            } else {
                structured_or_raw(&structured.detail, message)
            };
            with_detail(base(kind, retryable, provider), &detail)
        }
        None if facts.canceled => {
            let mut c = base(ChatErrorKind::Generic, false, provider);
            c.set_message(CANCELED);
            with_detail(c, &structured.detail)
        }
        None => with_detail(
            base(ChatErrorKind::Generic, false, provider),
            &structured_or_raw(&structured.detail, message),
        ),
    }
}

fn structured_or_raw(structured: &str, message: &str) -> String {
    if structured.is_empty() {
        detail::from_raw_text(message)
    } else {
        structured.to_owned()
    }
}

/// The text signals the rule order consults once no structured fact decided the kind.
struct Signals {
    overloaded: bool,
    usage_limit: bool,
    auth_strong: bool,
    auth_weak: bool,
    config: bool,
    rate_limit: bool,
    provider_disabled: bool,
    deadline: bool,
    timeout: bool,
    generic_retryable: bool,
}

impl Signals {
    fn compute(lower: &str, lower_detail: &str, status: u16, facts: &ChainFacts<'_>) -> Self {
        let in_text_or_detail = |patterns: &[&str]| {
            contains_any(lower, patterns) || contains_any(lower_detail, patterns)
        };
        let usage_limit = in_text_or_detail(pat::USAGE_LIMIT_ANY_STATUS)
            || (status != 429 && in_text_or_detail(pat::USAGE_LIMIT));
        // A typed HTTP/2 reset decides for itself; its text must not count as a timeout.
        let (http2_retryable, text_timeouts_allowed) = match facts.http2 {
            Some(e) if e.is_retryable() => (true, true),
            Some(_) => (false, false),
            None => (false, true),
        };
        let deadline = facts.deadline || lower.contains(pat::DEADLINE);
        let transport_reset = facts.transport_reset && status == 0;
        // Not in Coder's rules (its DNS failures match no pattern and end as a terminal
        // generic error): a typed "could not connect" is as transient as a reset stream.
        let connect_failure = status == 0
            && facts
                .provider_error
                .is_some_and(ProviderError::is_connect_failure);
        let timeout = transport_reset
            || connect_failure
            || deadline
            || matches!(status, 408 | 502 | 503 | 504)
            || http2_retryable
            || (text_timeouts_allowed && contains_any(lower, pat::TIMEOUT));
        Signals {
            overloaded: status == 529 || contains_any(lower, pat::OVERLOADED),
            usage_limit,
            auth_strong: status == 401
                || contains_any(lower, pat::AUTH_STRONG)
                || contains_any(lower_detail, pat::AUTH_STRONG_DETAIL),
            auth_weak: status == 403 || contains_any(lower, pat::AUTH_WEAK),
            config: contains_any(lower, pat::CONFIG),
            rate_limit: status == 429 || contains_any(lower, pat::RATE_LIMIT),
            provider_disabled: contains_any(lower, pat::PROVIDER_DISABLED),
            deadline,
            timeout,
            generic_retryable: status == 500 || contains_any(lower, pat::GENERIC_RETRYABLE),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::DeadlineExceeded;

    /// A provider error that never reached the provider, as a client reports a DNS failure.
    fn unreachable() -> ProviderError {
        ProviderError::new(
            "send request (api.example.invalid): error sending request: client error (Connect): \
             dns error: failed to lookup address information: Name or service not known",
        )
        .with_provider("openai")
        .with_connect_failure(true)
    }

    /// OpenAI's 400 for a `previous_response_id` it does not have, as the transport
    /// reports it: status line as text, the provider's sentence in the body.
    fn previous_response_missing() -> ProviderError {
        ProviderError::new("openai API error: 400 Bad Request")
            .with_status(400)
            .with_provider("openai")
            .with_body(
                br#"{"error":{"message":"Previous response with id 'resp_abc123' not found.","type":"invalid_request_error","param":"previous_response_id","code":"previous_response_not_found"}}"#
                    .to_vec(),
            )
    }

    #[test]
    fn a_missing_previous_response_is_a_retryable_broken_chain() {
        // From the body (what the HTTP client produces).
        let c = classify(&previous_response_missing());
        assert!(c.is_chain_broken());
        assert_eq!(c.kind(), Some(&ChatErrorKind::Generic));
        assert!(c.is_retryable());
        assert_eq!(c.provider(), "openai");
        assert_eq!(c.status(), Some(400));
        assert!(c.detail().contains("resp_abc123"), "{}", c.detail());
        // From the text alone, any case; the provider defaults to OpenAI.
        let c = classify_text("POST /v1/responses: PREVIOUS RESPONSE WITH ID 'resp_1' NOT FOUND");
        assert!(c.is_chain_broken());
        assert!(c.is_retryable());
        assert_eq!(c.provider(), "openai");
        assert_eq!(c.message(), "OpenAI returned an unexpected error.");
        // A provider named by the error is kept.
        let azure = ProviderError::new("previous response with id 'resp_1' not found")
            .with_provider("azure");
        assert_eq!(classify(&azure).provider(), "azure");
        assert!(classify(&azure).is_chain_broken());
    }

    #[test]
    fn chain_broken_needs_both_halves_and_is_never_serialized() {
        for text in [
            "previous response with id 'resp_1' expired",
            "response resp_1 not found",
            "model not found",
            "openai API error: 400 Bad Request",
        ] {
            assert!(!classify_text(text).is_chain_broken(), "{text}");
        }
        // Earlier rules keep their precedence: an interrupt is not a broken chain.
        let c = classify_text("chat interrupted: previous response with id 'r' not found");
        assert!(!c.is_chain_broken());
        assert!(!c.is_retryable());
        // The flag is internal: the wire form has exactly the seven documented fields.
        let c = classify(&previous_response_missing());
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v.as_object().map(serde_json::Map::len), Some(7));
        assert!(v.get("chain_broken").is_none());
        // It survives the operations a chat loop applies.
        assert!(c.with_provider("azure").is_chain_broken());
        let refused = previous_response_missing().with_header("x-should-retry", "false");
        let c = classify(&refused);
        assert!(c.is_chain_broken());
        assert!(!c.is_retryable());
        assert!(!ClassifiedError::default().is_chain_broken());
    }

    #[test]
    fn connect_failures_are_retryable_timeouts() {
        // (error, kind, retryable)
        let table: Vec<(ProviderError, ChatErrorKind, bool)> = vec![
            // The rule: no status, marked → timeout, retryable.
            (unreachable(), ChatErrorKind::Timeout, true),
            // The same text unmarked matches no pattern: terminal generic (Coder's result).
            (
                ProviderError::new(unreachable().message()).with_provider("openai"),
                ChatErrorKind::Generic,
                false,
            ),
            // Unmarking works.
            (
                unreachable().with_connect_failure(false),
                ChatErrorKind::Generic,
                false,
            ),
            // A status means a response came back: the status rules decide.
            (unreachable().with_status(401), ChatErrorKind::Auth, false),
            (
                unreachable().with_status(400),
                ChatErrorKind::Generic,
                false,
            ),
            // Config text still wins over the timeout signal, as for every transport signal.
            (
                ProviderError::new("unsupported model gpt-9").with_connect_failure(true),
                ChatErrorKind::Config,
                false,
            ),
            // Rules that come before the timeout rule keep their precedence.
            (
                ProviderError::new("rate limit exceeded").with_connect_failure(true),
                ChatErrorKind::RateLimit,
                true,
            ),
        ];
        for (err, kind, retryable) in table {
            let c = classify(&err);
            assert_eq!(c.kind(), Some(&kind), "{err:?}");
            assert_eq!(c.is_retryable(), retryable, "{err:?}");
        }
        let c = classify(&unreachable());
        assert_eq!(c.provider(), "openai");
        assert_eq!(c.message(), "OpenAI is temporarily unavailable.");
        assert!(c.detail().contains("dns error"), "{}", c.detail());
    }

    #[test]
    fn connect_failure_is_found_through_wrappers_and_yields_to_stronger_signals() {
        // Wrapped further, the first provider error in the chain still decides.
        let wrapped = std::io::Error::other(unreachable());
        let c = classify(&wrapped);
        assert_eq!(c.kind(), Some(&ChatErrorKind::Timeout));
        assert!(c.is_retryable());
        // The caller's own deadline spent: a timeout, but not retryable.
        let late = unreachable().with_source(DeadlineExceeded);
        let c = classify(&late);
        assert_eq!(c.kind(), Some(&ChatErrorKind::Timeout));
        assert!(!c.is_retryable());
        // The provider's own verdict that a retry cannot help.
        let refused = unreachable().with_header("x-should-retry", "false");
        assert!(!classify(&refused).is_retryable());
    }
}
