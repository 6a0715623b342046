//! Detail extraction: the provider's own explanation of a failure,
//! taken from a response body or message, made safe to show and bounded in length.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Response bodies (or HTTP dumps) larger than this are never parsed for a detail.
///
/// A provider error body is a few hundred bytes; anything much larger is an HTML error page
/// or a misrouted payload, and parsing it would cost time and memory proportional to
/// something we would throw away. A body of exactly this size is still parsed.
pub const MAX_PARSED_BODY_BYTES: usize = 64 * 1024;

/// Details are cut to at most this many Unicode scalar values ("runes"), the last of which
/// is [`DETAIL_ELLIPSIS`] when text was dropped.
pub const MAX_DETAIL_RUNES: usize = 500;

/// Appended to a detail that was shortened to [`MAX_DETAIL_RUNES`].
pub const DETAIL_ELLIPSIS: char = '…';

/// Only this many runes of a detail are examined (URL-scrubbed) before it is cut to
/// [`MAX_DETAIL_RUNES`], so that a huge message costs no more than a long one. Scrubbing can
/// shorten text, so this leaves room for URLs to shrink while still filling the detail.
pub const MAX_DETAIL_SCAN_RUNES: usize = 8 * MAX_DETAIL_RUNES;

/// Longest provider error code (the `type` / `code` member of an error body, such as
/// `insufficient_quota`) that classification reads; longer values are not identifiers and
/// are ignored.
pub const MAX_ERROR_CODE_BYTES: usize = 64;

/// What a response body says about a failure.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct BodyFacts {
    /// The provider's message (nested `error.message`, else top-level `message`).
    pub(crate) message: Option<String>,
    /// The provider's error codes (`error.type`, `error.code`, top-level `type`, `code`),
    /// lowercased, one per line.
    pub(crate) codes: String,
}

/// Extracts the provider's message and error codes from a response body or HTTP dump.
///
/// Nothing is extracted when the dump is empty, larger than [`MAX_PARSED_BODY_BYTES`] or
/// not a JSON object.
pub(crate) fn from_body(dump: &[u8]) -> BodyFacts {
    if dump.is_empty() || dump.len() > MAX_PARSED_BODY_BYTES {
        return BodyFacts::default();
    }
    let Some(doc) = parse_error_document(body_of_dump(dump), Strictness::WholeInput) else {
        return BodyFacts::default();
    };
    BodyFacts {
        message: doc
            .message
            .map(|m| unwrap_transport_wrapper(&m).into_owned()),
        codes: doc.codes,
    }
}

/// The body part of an HTTP dump: after the first blank line (`\r\n\r\n`, else `\n\n`).
///
/// A bare JSON body (first non-space byte `{`) is used whole, so a pretty-printed body with
/// blank lines inside it is not cut in half.
fn body_of_dump(dump: &[u8]) -> &[u8] {
    if dump.trim_ascii_start().first() == Some(&b'{') {
        return dump;
    }
    if let Some(i) = find_bytes(dump, b"\r\n\r\n") {
        return dump.get(i + 4..).unwrap_or_default();
    }
    if let Some(i) = find_bytes(dump, b"\n\n") {
        return dump.get(i + 2..).unwrap_or_default();
    }
    dump
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether trailing text after the JSON value is tolerated.
#[derive(Clone, Copy)]
enum Strictness {
    /// The input must be exactly one JSON value (a response body).
    WholeInput,
    /// Text may follow the value (JSON embedded at the end of an SDK wrapper message).
    Prefix,
}

/// The parts of a JSON error document classification uses.
struct ErrorDocument {
    message: Option<String>,
    codes: String,
}

/// Reads a JSON error document: the message is the nested `error.message` if it is a
/// non-blank string, else the top-level `message`.
fn parse_error_document(json: &[u8], strictness: Strictness) -> Option<ErrorDocument> {
    let top: Members<'_> = match strictness {
        Strictness::WholeInput => serde_json::from_slice(json).ok()?,
        Strictness::Prefix => {
            let mut de = serde_json::Deserializer::from_slice(json);
            Members::deserialize(&mut de).ok()?
        }
    };
    let nested = top
        .error
        .and_then(|raw| serde_json::from_str::<Members<'_>>(raw.get()).ok());
    let mut codes = String::new();
    let code_fields = [
        nested.as_ref().and_then(|n| n.kind),
        nested.as_ref().and_then(|n| n.code),
        top.kind,
        top.code,
    ];
    for code in code_fields.into_iter().flatten().filter_map(raw_string) {
        if code.len() <= MAX_ERROR_CODE_BYTES {
            codes.push_str(&code.to_lowercase());
            codes.push('\n');
        }
    }
    let message = nested
        .and_then(|n| n.message)
        .and_then(raw_string)
        .or_else(|| top.message.and_then(raw_string));
    Some(ErrorDocument { message, codes })
}

/// The provider message inside a JSON error document.
fn json_message(json: &[u8], strictness: Strictness) -> Option<String> {
    parse_error_document(json, strictness)?.message
}

/// A JSON string's trimmed, non-blank contents; `None` for other JSON values.
fn raw_string(raw: &RawValue) -> Option<String> {
    let s: String = serde_json::from_str(raw.get()).ok()?;
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// The members of an error object we read, borrowed and unvalidated so that a wrongly
/// typed `error` (a string, say) cannot stop us reading `message`, and everything else is
/// skipped without allocating. Used for the document and for its nested `error` object.
#[derive(Default)]
struct Members<'a> {
    error: Option<&'a RawValue>,
    message: Option<&'a RawValue>,
    kind: Option<&'a RawValue>,
    code: Option<&'a RawValue>,
}

enum Field {
    Error,
    Message,
    Type,
    Code,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "error" => Field::Error,
                    "message" => Field::Message,
                    "type" => Field::Type,
                    "code" => Field::Code,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            // The last duplicate wins, as in most JSON decoders.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut m = Members::default();
                while let Some(field) = map.next_key::<Field>()? {
                    let slot = match field {
                        Field::Error => &mut m.error,
                        Field::Message => &mut m.message,
                        Field::Type => &mut m.kind,
                        Field::Code => &mut m.code,
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

/// Replaces an SDK transport wrapper such as
/// `POST "https://host/path": 400 Bad Request {"message":"…"}` by the message of the JSON
/// it carries. Text that is not such a wrapper, or whose JSON has no message, is returned
/// unchanged.
pub(crate) fn unwrap_transport_wrapper(text: &str) -> Cow<'_, str> {
    let Some(after_status) = transport_wrapper_tail(text) else {
        return Cow::Borrowed(text);
    };
    // Search for the JSON only after the status: the quoted URL may itself contain braces
    // (`/{resource}/`).
    let inner = after_status
        .find('{')
        .and_then(|i| after_status.get(i..))
        .and_then(|json| json_message(json.as_bytes(), Strictness::Prefix));
    match inner {
        Some(message) => Cow::Owned(message),
        None => Cow::Borrowed(text),
    }
}

/// Matches `^[A-Z]+ "[^"]+": \d{3} ` and returns the text after it.
fn transport_wrapper_tail(text: &str) -> Option<&str> {
    let method_len = text.bytes().take_while(u8::is_ascii_uppercase).count();
    if method_len == 0 {
        return None;
    }
    let rest = text.get(method_len..)?.strip_prefix(" \"")?;
    let quote = rest.find('"')?;
    if quote == 0 {
        return None;
    }
    let rest = rest.get(quote..)?.strip_prefix("\": ")?;
    let digits = rest.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.get(3..)?.strip_prefix(' ')
}

/// The raw-message fallback detail: the error text with whitespace runs
/// collapsed, or nothing when the text is blank or carries a URL (`://`), since URLs may
/// hold credentials or signed query strings.
pub(crate) fn from_raw_text(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() || t.contains("://") {
        return String::new();
    }
    // Key-shaped text goes before the text is cut, so no cut key can survive as a prefix.
    let redacted = crate::redact::redact(t);
    let t: &str = &redacted;
    let mut out = String::new();
    let mut runes = 0usize;
    for word in t.split_whitespace() {
        if runes > MAX_DETAIL_RUNES {
            break; // enough to know truncation is needed
        }
        if !out.is_empty() {
            out.push(' ');
            runes += 1;
        }
        for c in word.chars() {
            if runes > MAX_DETAIL_RUNES {
                break;
            }
            out.push(c);
            runes += 1;
        }
    }
    truncate(&out, false)
}

/// Normalizes a detail: trimmed, URLs reduced to `host/path`, key-shaped text redacted
/// ([`crate::redact()`]), at most [`MAX_DETAIL_RUNES`] runes. Idempotent.
pub(crate) fn normalize(detail: &str) -> String {
    let t = detail.trim();
    if t.is_empty() {
        return String::new();
    }
    let (head, cut) = match t.char_indices().nth(MAX_DETAIL_SCAN_RUNES) {
        Some((i, _)) => (t.get(..i).unwrap_or(t), true),
        None => (t, false),
    };
    let scrubbed = scrub_urls(head);
    // Redacted before the cut to MAX_DETAIL_RUNES: the scan head is far longer, so a key
    // cut at its end is dropped by the truncation below.
    let redacted = crate::redact::redact(&scrubbed);
    truncate(redacted.trim(), cut)
}

/// At most [`MAX_DETAIL_RUNES`] runes; longer text (or text known to have been cut before,
/// `already_cut`) ends in [`DETAIL_ELLIPSIS`].
fn truncate(s: &str, already_cut: bool) -> String {
    let keep = MAX_DETAIL_RUNES - 1;
    match s.char_indices().nth(keep) {
        // More than MAX runes, or exactly MAX but known to continue: keep MAX-1 plus "…".
        Some((i, _)) if already_cut || s.get(i..).is_some_and(|r| r.chars().nth(1).is_some()) => {
            let mut out = s.get(..i).unwrap_or_default().to_owned();
            out.push(DETAIL_ELLIPSIS);
            out
        }
        _ if already_cut => {
            let mut out = s.to_owned();
            out.push(DETAIL_ELLIPSIS);
            out
        }
        _ => s.to_owned(),
    }
}

/// Reduces every URL in `text` to `host/path`: scheme, user info, query and fragment are
/// removed, so no `://` survives. Provider messages often link to documentation, which is
/// worth keeping, but a URL can also carry an API key (`?key=`) or a signed query.
pub(crate) fn scrub_urls(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(sep) = rest.find("://") {
        let before = rest.get(..sep).unwrap_or_default();
        let scheme_start = before
            .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .len();
        out.push_str(before.get(..scheme_start).unwrap_or_default());
        let after = rest.get(sep + 3..).unwrap_or_default();
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(after.len());
        out.push_str(&host_and_path(after.get(..end).unwrap_or_default()));
        rest = after.get(end..).unwrap_or_default();
    }
    out.push_str(rest);
    Cow::Owned(break_scheme_separators(&out))
}

/// `authority/path?query#fragment` (the part of a URL after `://`) → `host/path`.
fn host_and_path(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match url.find('/') {
        Some(i) => (
            url.get(..i).unwrap_or_default(),
            url.get(i..).unwrap_or_default(),
        ),
        None => (url, ""),
    };
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{host}{path}")
}

/// Rewrites any remaining `:/` followed by more slashes as a single `:/`, so that text
/// joined around a removed URL cannot spell `://` again.
fn break_scheme_separators(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == ':' && chars.peek() == Some(&'/') {
            out.push('/');
            while chars.peek() == Some(&'/') {
                chars.next();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(json: &str) -> Vec<u8> {
        format!("HTTP/1.1 400 Bad Request\nContent-Type: application/json\n\n{json}").into_bytes()
    }

    fn message(body: &[u8]) -> Option<String> {
        from_body(body).message
    }

    #[test]
    fn nested_message_wins() {
        let d = message(&dump(
            r#"{"message":"top level","error":{"message":"nested wins"}}"#,
        ));
        assert_eq!(d.as_deref(), Some("nested wins"));
    }

    #[test]
    fn codes_are_collected() {
        let f = from_body(&dump(
            r#"{"type":"error","error":{"type":"Insufficient_Quota","code":null,"message":"m"}}"#,
        ));
        assert_eq!(f.codes, "insufficient_quota\nerror\n");
        let f = from_body(&dump(
            r#"{"type":"error","code":"rate_limit_exceeded","message":"m"}"#,
        ));
        assert_eq!(f.codes, "error\nrate_limit_exceeded\n");
        let long = "x".repeat(MAX_ERROR_CODE_BYTES + 1);
        let f = from_body(&dump(&format!(r#"{{"code":"{long}"}}"#)));
        assert_eq!(f.codes, "");
        let edge = "x".repeat(MAX_ERROR_CODE_BYTES);
        let f = from_body(&dump(&format!(r#"{{"code":"{edge}"}}"#)));
        assert_eq!(f.codes, format!("{edge}\n"));
    }

    #[test]
    fn non_object_error_does_not_hide_top_level() {
        let d = message(&dump(r#"{"message":"rate limited","error":"rate_limit"}"#));
        assert_eq!(d.as_deref(), Some("rate limited"));
        let d = message(&dump(r#"{"message":"m","error":{"message":42}}"#));
        assert_eq!(d.as_deref(), Some("m"));
        let d = message(&dump(r#"{"message":"m","error":{"message":"   "}}"#));
        assert_eq!(d.as_deref(), Some("m"));
        let d = message(&dump(r#"{"message":"first","message":"last"}"#));
        assert_eq!(d.as_deref(), Some("last"));
    }

    #[test]
    fn crlf_dump_and_bare_body() {
        let d = message(b"HTTP/1.1 500 X\r\nA: b\r\n\r\n{\"message\":\"crlf\"}");
        assert_eq!(d.as_deref(), Some("crlf"));
        let d = message(b"{\n\n\"message\": \"bare\"}");
        assert_eq!(d.as_deref(), Some("bare"));
    }

    #[test]
    fn body_size_limit_edge() {
        let prefix = r#"{"message":"fits","pad":""#;
        let suffix = r#""}"#;
        let pad = MAX_PARSED_BODY_BYTES - prefix.len() - suffix.len();
        let body = format!("{prefix}{}{suffix}", "x".repeat(pad));
        assert_eq!(body.len(), MAX_PARSED_BODY_BYTES);
        assert_eq!(message(body.as_bytes()).as_deref(), Some("fits"));
        let body = format!("{prefix}{}{suffix}", "x".repeat(pad + 1));
        assert_eq!(from_body(body.as_bytes()), BodyFacts::default());
    }

    #[test]
    fn bad_bodies_yield_nothing() {
        for body in [
            &b""[..],
            b"not-json",
            b"[1,2,3]",
            b"\"just a string\"",
            b"{\"message\": \"\xff\xfe\"}",
            b"{\"message\": \"unterminated",
            b"{\"message\":\"x\"} trailing",
        ] {
            assert_eq!(from_body(body), BodyFacts::default(), "{body:?}");
        }
        let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
        assert_eq!(
            from_body(format!("{{\"a\":{deep}}}").as_bytes()),
            BodyFacts::default()
        );
        // Skipped members are scanned iteratively, so depth costs no stack.
        let deep = format!("{{\"message\":\"m\",\"a\":{deep}}}");
        assert_eq!(message(deep.as_bytes()).as_deref(), Some("m"));
    }

    #[test]
    fn json_bombs_are_bounded() {
        let many_keys: String = (0..5000).map(|i| format!("\"k{i}\":{i},")).collect();
        let body = format!("{{{many_keys}\"message\":\"last\"}}");
        assert!(body.len() <= MAX_PARSED_BODY_BYTES);
        assert_eq!(message(body.as_bytes()).as_deref(), Some("last"));
        let dup: String = "\"message\":\"d\",".repeat(4000);
        let body = format!("{{{dup}\"message\":\"final\"}}");
        assert_eq!(message(body.as_bytes()).as_deref(), Some("final"));
        let escapes = "\\u0041".repeat(10_000);
        let body = format!("{{\"message\":\"{escapes}\"}}");
        assert_eq!(message(body.as_bytes()).map(|m| m.len()), Some(10_000));
        for body in [
            &br#"{"message":"m","n":1e999999999}"#[..],
            br#"{"message":"m","n":-0.0000000000000000000000001e-99999}"#,
            br#"{"message":"\ud800"}"#,
            br#"{"error":{"error":{"error":{"message":"deep"}}}}"#,
        ] {
            let _ = from_body(body); // no panic; the value does not matter
        }
    }

    #[test]
    fn transport_wrapper_unwrap() {
        let w = r#"POST "https://bedrock-runtime.eu-north-1.amazonaws.com/v1/messages": 400 Bad Request {"message":"The provided request is not valid"}"#;
        assert_eq!(
            unwrap_transport_wrapper(w),
            "The provided request is not valid"
        );
        let w = r#"POST "https://x/{resource}/y": 400 Bad Request {"message":"real error"}"#;
        assert_eq!(unwrap_transport_wrapper(w), "real error");
        let w = r#"POST "https://x/y": 400 Bad Request {"foo":"bar"}"#;
        assert_eq!(unwrap_transport_wrapper(w), w);
        let w = r#"POST "https://example.com/api": 500 Internal Server Error"#;
        assert_eq!(unwrap_transport_wrapper(w), w);
        for not_wrapper in [
            "Value {x} is not allowed.",
            "post \"u\": 400 {\"message\":\"m\"}",
            "POST \"\": 400 {}",
        ] {
            assert_eq!(unwrap_transport_wrapper(not_wrapper), not_wrapper);
        }
    }

    #[test]
    fn raw_fallback() {
        assert_eq!(from_raw_text("  a \n\t b  "), "a b");
        assert_eq!(from_raw_text("see https://x.example/?key=secret"), "");
        assert_eq!(from_raw_text("   "), "");
        let long = "y ".repeat(600);
        let d = from_raw_text(&long);
        assert_eq!(d.chars().count(), MAX_DETAIL_RUNES);
        assert!(d.ends_with(DETAIL_ELLIPSIS));
    }

    #[test]
    fn truncation_edges() {
        let exact = "x".repeat(MAX_DETAIL_RUNES);
        assert_eq!(normalize(&exact), exact);
        let over = "x".repeat(MAX_DETAIL_RUNES + 1);
        let want = format!("{}{}", "x".repeat(MAX_DETAIL_RUNES - 1), DETAIL_ELLIPSIS);
        assert_eq!(normalize(&over), want);
        assert_eq!(normalize(&"x".repeat(510)), want);
        // Multibyte runes count as one each.
        let wide = "é".repeat(MAX_DETAIL_RUNES + 3);
        assert_eq!(normalize(&wide).chars().count(), MAX_DETAIL_RUNES);
        // Idempotent.
        assert_eq!(normalize(&normalize(&over)), want);
        // Huge input is cut before scrubbing but still ends in an ellipsis.
        let huge = "z".repeat(10 * MAX_DETAIL_SCAN_RUNES);
        assert_eq!(normalize(&huge).chars().count(), MAX_DETAIL_RUNES);
    }

    #[test]
    fn urls_are_scrubbed() {
        for (input, want) in [
            (
                "read https://platform.openai.com/docs/x?y=1#z now",
                "read platform.openai.com/docs/x now",
            ),
            (
                r#"POST "https://example.com/api": 500"#,
                r#"POST "example.com/api": 500"#,
            ),
            ("u https://user:pw@host:8443/p", "u host:8443/p"),
            ("a://b://c", "b:/c"),
            (":////x", "//x"),
            ("x: ://y", "x: y"),
            ("no url here", "no url here"),
            ("://", ""),
        ] {
            let got = normalize(input);
            assert_eq!(got, want, "{input}");
            assert!(!got.contains("://"));
        }
    }
}
