//! Text heuristics: substring patterns tested on the lowercased error text,
//! and best-effort extraction of an HTTP status from free text.

pub(crate) const OVERLOADED: &[&str] = &["overloaded"];

pub(crate) const RATE_LIMIT: &[&str] = &[
    "rate limit",
    "rate_limit",
    "rate limited",
    "rate-limited",
    "too many requests",
];

pub(crate) const TIMEOUT: &[&str] = &[
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
    // Flattened HTTP/2 RST_STREAM texts whose typed form is retryable.
    "internal_error; received from peer",
    "refused_stream; received from peer",
    "cancel; received from peer",
    "enhance_your_calm; received from peer",
    "no_error; received from peer",
];

pub(crate) const AUTH_STRONG: &[&str] = &[
    "authentication",
    "unauthorized",
    "invalid api key",
    "invalid_api_key",
    "api key not valid",
    "api key expired",
];

/// Auth patterns also looked for in the provider's own error message (the body's
/// detail): Gemini answers a bad key with a 400 `INVALID_ARGUMENT` whose message is "API key
/// not valid. Please pass a valid API key." (an expired key: "API key expired. …"), so the
/// status alone reads as a bad request.
pub(crate) const AUTH_STRONG_DETAIL: &[&str] = &["api key not valid", "api key expired"];

pub(crate) const AUTH_WEAK: &[&str] = &["forbidden"];

/// Usage patterns that lose to an HTTP 429 (a 429 mentioning "quota" is a rate limit).
pub(crate) const USAGE_LIMIT: &[&str] = &["quota", "billing", "payment required"];

/// Usage patterns that win whatever the status.
pub(crate) const USAGE_LIMIT_ANY_STATUS: &[&str] = &["insufficient_quota"];

pub(crate) const CONFIG: &[&str] = &[
    "invalid model",
    "model not found",
    "model_not_found",
    "unsupported model",
    "context length exceeded",
    "context_exceeded",
    "maximum context length",
    "malformed config",
    "malformed configuration",
];

pub(crate) const GENERIC_RETRYABLE: &[&str] = &["server error", "internal server error"];

pub(crate) const INTERRUPTED: &[&str] = &[
    "chat interrupted",
    "request interrupted",
    "operation interrupted",
];

pub(crate) const PROVIDER_DISABLED: &[&str] = &["provider_disabled"];

pub(crate) const DEADLINE: &str = "context deadline exceeded";

pub(crate) const ANTHROPIC_STREAM_INCOMPLETE: &str = "anthropic stream closed before message_stop";
pub(crate) const OPENAI_STREAM_INCOMPLETE: &str =
    "openai responses stream closed before terminal event";

pub(crate) const RESPONSES_TOOL_OUTPUT_MISSING: &str = "no tool output found for function call";
pub(crate) const RESPONSES_REASONING_MISSING: &str =
    "was provided without its required 'reasoning' item";

/// Both halves of OpenAI's answer to a `previous_response_id` it no longer has ("Previous
/// response with id 'resp_…' not found."): the id sits between them, so they are matched
/// separately.
pub(crate) const RESPONSES_CHAIN_BROKEN: [&str; 2] = ["previous response with id", "not found"];

/// Whether `lower` contains any of `patterns`.
pub(crate) fn contains_any(lower: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| lower.contains(p))
}

/// Statuses recognised when they stand alone in text without a `status`/`http` prefix.
const STANDALONE_STATUSES: &[u16] = &[401, 403, 408, 429, 500, 502, 503, 504, 529];

/// Extracts an HTTP status from lowercased text; `0` when none is found.
///
/// First a status introduced by `status`, `status code` or `http` (optionally followed by
/// `:` or `=`) is taken whatever its value. Otherwise the first word-bounded well-known
/// status wins, skipping numbers that are ports (`host:503`) or HTTP/2 stream ids
/// (`stream ID 401`). Phrases such as "too many requests" never produce a status.
pub(crate) fn status_from_text(lower: &str) -> u16 {
    prefixed_status(lower).unwrap_or_else(|| standalone_status(lower).unwrap_or(0))
}

fn prefixed_status(lower: &str) -> Option<u16> {
    // The earliest prefix whose status parses wins, as with a leftmost regex match. At a
    // `status` position the longer `status code` is tried first.
    let at_status = lower.match_indices("status").filter_map(|(i, _)| {
        let rest = lower.get(i..)?.as_bytes();
        let code = rest
            .strip_prefix(b"status code")
            .and_then(status_after_prefix)
            .or_else(|| rest.strip_prefix(b"status").and_then(status_after_prefix))?;
        Some((i, code))
    });
    let at_http = lower.match_indices("http").filter_map(|(i, _)| {
        let rest = lower.get(i..)?.as_bytes().strip_prefix(b"http")?;
        Some((i, status_after_prefix(rest)?))
    });
    at_status
        .chain(at_http)
        .min_by_key(|(i, _)| *i)
        .map(|(_, code)| code)
}

/// Reads `\s*[:=]?\s*\d{3}` (not followed by a further digit) from the start of `s`.
fn status_after_prefix(s: &[u8]) -> Option<u16> {
    let s = skip_ascii_space(s);
    let s = match s.first() {
        Some(b':' | b'=') => s.get(1..).unwrap_or_default(),
        _ => s,
    };
    let s = skip_ascii_space(s);
    three_digits(s)
}

fn skip_ascii_space(mut s: &[u8]) -> &[u8] {
    while let Some((first, rest)) = s.split_first() {
        if !first.is_ascii_whitespace() {
            break;
        }
        s = rest;
    }
    s
}

/// Exactly three ASCII digits at the start of `s`, not followed by a fourth.
fn three_digits(s: &[u8]) -> Option<u16> {
    match s {
        [a, b, c, rest @ ..]
            if a.is_ascii_digit()
                && b.is_ascii_digit()
                && c.is_ascii_digit()
                && !rest.first().is_some_and(u8::is_ascii_digit) =>
        {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

fn standalone_status(lower: &str) -> Option<u16> {
    let bytes = lower.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        if !bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
            continue;
        }
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        // Word boundary on both sides: a digit run must not touch letters or `_`.
        let before = start.checked_sub(1).and_then(|p| bytes.get(p)).copied();
        let after = bytes.get(i).copied();
        let bounded = !before.is_some_and(is_word_byte) && !after.is_some_and(is_word_byte);
        if !bounded || i - start != 3 {
            continue;
        }
        let Some(code) = bytes.get(start..i).and_then(three_digits) else {
            continue;
        };
        if !STANDALONE_STATUSES.contains(&code) {
            continue;
        }
        if before == Some(b':') {
            continue; // host:port
        }
        let preceding = lower.get(..start).unwrap_or_default();
        if is_stream_id_prefix(preceding) {
            continue;
        }
        return Some(code);
    }
    None
}

/// ASCII word characters, as in a regular-expression `\b`.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether the text before a number ends with `stream id` (spaces, then `:`/`=`, then
/// spaces allowed in between), as in `stream ID 401;` or `stream ID: 503;`.
fn is_stream_id_prefix(preceding: &str) -> bool {
    let t = preceding.trim_end();
    let t = t.strip_suffix([':', '=']).unwrap_or(t);
    t.trim_end().ends_with("stream id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_status_vectors() {
        for (text, want) in [
            ("received status 429 from upstream", 429),
            ("status code: 503", 503),
            ("http 502 bad gateway", 502),
            ("got 504 from upstream", 504),
            ("retrying 503 after 429", 503),
            ("http 503 bad gateway", 503),
            ("dial tcp 10.0.0.1:503: connection refused", 0),
            ("proxy.internal:502 unreachable", 0),
            ("dial tcp 172.16.0.5:429: refused", 0),
            ("proxy at 10.0.0.1:500 returned 503", 503),
            (
                "stream error: stream id 401; internal_error; received from peer",
                0,
            ),
            (
                "stream error: stream id: 503; protocol_error; received from peer",
                0,
            ),
            ("stream error: stream id 455; status 503 from upstream", 503),
            ("anthropic overloaded_error", 0),
            ("too many requests", 0),
            ("bad gateway", 0),
            ("service unavailable", 0),
            ("boom", 0),
            // Prefixed statuses may be any value.
            ("status=418", 418),
            ("status 200 but empty", 200),
            // Digit runs longer than three are not statuses.
            ("status 5000", 0),
            ("id 40123", 0),
            ("http2: 401 unauthorized", 401),
            ("http2: server error 429 too many requests", 429),
            ("", 0),
            ("ünïcödé 503 ✓", 503),
            ("x503", 0),
            ("é503", 503),
        ] {
            assert_eq!(status_from_text(text), want, "{text}");
        }
    }
}
