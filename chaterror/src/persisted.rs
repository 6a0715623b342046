//! Reading persisted errors back: a chat's `last_error`
//! column holds structured [`ChatError`] JSON, or plain text in rows written before errors
//! were structured.

use codersdk::{ChatError, ChatErrorKind};

use crate::messages::FAILED_UNEXPECTEDLY;

/// Decodes a chat's `last_error` column: `None` (SQL NULL) stays `None`, anything else
/// decodes with [`decode_chat_error`].
pub fn decode_last_error(raw: Option<&[u8]>) -> Option<ChatError> {
    raw.map(decode_chat_error)
}

/// Decodes a persisted error, never failing.
///
/// - Structured JSON: fields are trimmed, a blank kind becomes `generic`, a blank message
///   becomes "The chat request failed unexpectedly.".
/// - A legacy plain-text row: `{message: <text>, kind: "generic", retryable: false}`.
/// - Empty input, JSON `null`, or corrupt JSON (text starting with `{` or `[` that does not
///   decode): the fallback `{message: "The chat request failed unexpectedly.", kind:
///   "generic"}`.
///
/// ```
/// use chaterror::{decode_chat_error, ChatErrorKind};
/// let e = decode_chat_error(b"upstream exploded");
/// assert_eq!(e.message, "upstream exploded");
/// assert_eq!(e.kind, Some(ChatErrorKind::Generic));
/// let e = decode_chat_error(br#"{"message":" x ","kind":"stream_silence_timeout","retryable":true}"#);
/// assert_eq!((e.message.as_str(), e.kind), ("x", Some(ChatErrorKind::StartupTimeout)));
/// ```
pub fn decode_chat_error(raw: &[u8]) -> ChatError {
    let trimmed = raw.trim_ascii();
    if trimmed.is_empty() || trimmed == b"null" {
        return ChatError::generic(FAILED_UNEXPECTEDLY);
    }
    if let Ok(e) = serde_json::from_slice::<ChatError>(trimmed) {
        return normalize(e);
    }
    if matches!(trimmed.first(), Some(b'{' | b'[')) {
        return ChatError::generic(FAILED_UNEXPECTEDLY);
    }
    let text = String::from_utf8_lossy(trimmed);
    ChatError::generic(text.trim())
}

/// The text of a persisted error: its JSON `message` when that decodes and is not blank,
/// else the raw bytes as text.
pub fn persisted_error_text(raw: &[u8]) -> String {
    serde_json::from_slice::<ChatError>(raw)
        .ok()
        .map(|e| e.message.trim().to_owned())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned())
}

fn normalize(mut e: ChatError) -> ChatError {
    e.message = e.message.trim().to_owned();
    if e.message.is_empty() {
        e.message = FAILED_UNEXPECTEDLY.to_owned();
    }
    e.detail = e.detail.trim().to_owned();
    e.provider = e.provider.trim().to_owned();
    e.kind = Some(match e.kind {
        Some(ChatErrorKind::Unknown(s)) if s.trim().is_empty() => ChatErrorKind::Generic,
        Some(ChatErrorKind::Unknown(s)) => ChatErrorKind::from_wire(s.trim()),
        Some(kind) => kind,
        None => ChatErrorKind::Generic,
    });
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fallback() -> ChatError {
        ChatError::generic(FAILED_UNEXPECTEDLY)
    }

    #[test]
    fn null_stays_none() {
        assert_eq!(decode_last_error(None), None);
        assert_eq!(decode_last_error(Some(b"")), Some(fallback()));
    }

    #[test]
    fn decodes_rows() {
        for (raw, want) in [
            (&b""[..], fallback()),
            (b"   ", fallback()),
            (b"null", fallback()),
            (b"{not json", fallback()),
            (b"[1,2]", fallback()),
            (br#"{"message":5}"#, fallback()),
            (br#"{"message":"  "}"#, fallback()),
            (b"legacy failure text\n", ChatError::generic("legacy failure text")),
            (b"\xffbad utf8", ChatError::generic("\u{fffd}bad utf8")),
            (
                br#"{"message":" m ","detail":" d ","kind":" rate_limit ","provider":" openai ","retryable":true,"status_code":429,"extra":1}"#,
                ChatError {
                    message: "m".into(),
                    detail: "d".into(),
                    kind: Some(ChatErrorKind::RateLimit),
                    provider: "openai".into(),
                    retryable: true,
                    status_code: 429,
                },
            ),
            (br#"{"message":"m","kind":""}"#, ChatError::generic("m")),
            (br#"{"message":"m"}"#, ChatError::generic("m")),
            (
                br#"{"message":"m","kind":"hook_denied"}"#,
                ChatError { kind: Some(ChatErrorKind::Unknown("hook_denied".into())), ..ChatError::generic("m") },
            ),
        ] {
            assert_eq!(decode_chat_error(raw), want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn raw_text() {
        assert_eq!(
            persisted_error_text(br#"{"message":"from json"}"#),
            "from json"
        );
        assert_eq!(
            persisted_error_text(br#"{"message":""}"#),
            r#"{"message":""}"#
        );
        assert_eq!(persisted_error_text(b"plain"), "plain");
    }
}
