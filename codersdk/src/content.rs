//! Stored message content: decoding every `content_version` a database
//! may hold, and encoding the current one.
//!
//! Version 1 is a JSON array of [`ChatMessagePart`], the format the API also uses; it is
//! decoded strictly. Version 0 is whatever older writers stored (a plain string, one part
//! object, an array of parts, parts wrapped in `{type, data}` envelopes, camelCase field
//! names, or text that is not JSON at all); it is decoded heuristically and never fails on
//! input within the size limit: anything unrecognized is kept as a text part, so no
//! content is lost silently.

use serde_json::{Map, Value};

use crate::{ChatMessagePart, MAX_RAW_JSON_DEPTH};

/// The content version every writer uses.
pub const CURRENT_CONTENT_VERSION: i16 = 1;

/// Largest stored content accepted for decoding, in bytes (64 MiB). Inline file data is
/// base64 (4/3 of a 10 MiB upload) and a message may hold several tool results, so the
/// bound is generous; it exists to refuse corrupt rows before parsing them.
pub const MAX_MESSAGE_CONTENT_BYTES: usize = 64 * 1024 * 1024;

/// Deepest JSON nesting accepted in stored content: the content array and the part object
/// around raw fields (tool arguments, results) that may themselves nest
/// [`MAX_RAW_JSON_DEPTH`] levels.
pub const MAX_CONTENT_JSON_DEPTH: usize = MAX_RAW_JSON_DEPTH + 2;

/// Why stored content could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// The row's `content_version` is neither 0 nor 1 (written by a newer server).
    #[error("message content version {0} is not supported; this version reads 0 and 1")]
    UnknownVersion(i16),
    /// Larger than [`MAX_MESSAGE_CONTENT_BYTES`].
    #[error(
        "message content is {len} bytes; at most {MAX_MESSAGE_CONTENT_BYTES} bytes are decoded"
    )]
    TooLarge {
        /// The content's size in bytes.
        len: usize,
    },
    /// Version-1 content nested deeper than [`MAX_CONTENT_JSON_DEPTH`].
    #[error("message content is nested deeper than {MAX_CONTENT_JSON_DEPTH} levels")]
    TooDeep,
    /// Version-1 content that is not a JSON array of parts. The text says where, never
    /// what (content may be private and large).
    #[error("version-1 message content is not a JSON array of parts: {0}")]
    Invalid(String),
    /// Parts that could not be serialized (not expected to happen).
    #[error("message content could not be encoded: {0}")]
    Encode(String),
}

/// Encodes parts as version-1 content ([`CURRENT_CONTENT_VERSION`]): a JSON array.
pub fn encode_message_content(parts: &[ChatMessagePart]) -> Result<String, ContentError> {
    serde_json::to_string(parts).map_err(|e| ContentError::Encode(describe(&e)))
}

/// Decodes stored content of the given `content_version`.
///
/// Blank content and JSON `null` (a NULL column read as text) decode to no parts in every
/// known version. Version 1 must be a JSON array of part objects, each with a `type`
/// (unknown types are kept as [`crate::ChatMessagePartType::Unknown`]). Version 0 is
/// decoded heuristically and only fails when too large; see the module documentation.
pub fn decode_message_content(
    version: i16,
    raw: &str,
) -> Result<Vec<ChatMessagePart>, ContentError> {
    if raw.len() > MAX_MESSAGE_CONTENT_BYTES {
        return Err(ContentError::TooLarge { len: raw.len() });
    }
    match version {
        1 => decode_v1(raw),
        0 => Ok(decode_legacy(raw)),
        other => Err(ContentError::UnknownVersion(other)),
    }
}

fn decode_v1(raw: &str) -> Result<Vec<ChatMessagePart>, ContentError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed == "null" {
        return Ok(Vec::new());
    }
    if !depth_within(trimmed, MAX_CONTENT_JSON_DEPTH) {
        return Err(ContentError::TooDeep);
    }
    serde_json::from_str(trimmed).map_err(|e| ContentError::Invalid(describe(&e)))
}

/// A serde error reduced to its category and position: serde's own text quotes the
/// offending value, which may be private content.
fn describe(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "unexpected JSON shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    if e.line() == 0 {
        what.to_owned()
    } else {
        format!("{what} at line {} column {}", e.line(), e.column())
    }
}

/// Whether JSON text nests at most `max` arrays/objects deep. Iterative, so it is safe on
/// any input; brackets inside strings do not count. Text that is not JSON may pass: the
/// parser rejects it afterwards.
fn depth_within(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in text.bytes() {
        if escaped {
            escaped = false;
        } else if in_string {
            match b {
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return false;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// Version 0
// ---------------------------------------------------------------------------------------

fn decode_legacy(raw: &str) -> Vec<ChatMessagePart> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    // Text that is not JSON, or JSON too deep to parse safely, is the message itself.
    let parsed = depth_within(trimmed, MAX_CONTENT_JSON_DEPTH)
        .then(|| serde_json::from_str::<Value>(trimmed).ok())
        .flatten();
    match parsed {
        None => vec![ChatMessagePart::text(raw)],
        Some(Value::Bool(_) | Value::Number(_)) => vec![ChatMessagePart::text(trimmed)],
        Some(value) => {
            let mut out = Vec::new();
            legacy_value(value, &mut out);
            out
        }
    }
}

/// Appends the parts a legacy JSON value stands for. Recursion is bounded by the depth
/// check done before parsing.
fn legacy_value(value: Value, out: &mut Vec<ChatMessagePart>) {
    match value {
        Value::Null => {}
        Value::String(s) => {
            if !s.is_empty() {
                out.push(ChatMessagePart::text(s));
            }
        }
        Value::Array(items) => {
            for item in items {
                legacy_value(item, out);
            }
        }
        Value::Object(map) => legacy_object(map, out),
        other @ (Value::Bool(_) | Value::Number(_)) => {
            out.push(ChatMessagePart::text(other.to_string()))
        }
    }
}

fn legacy_object(mut map: Map<String, Value>, out: &mut Vec<ChatMessagePart>) {
    let has_type = matches!(map.get("type"), Some(Value::String(_)));
    if !has_type {
        // A whole message object ({role, content}) or a bare {text}.
        for key in ["content", "parts"] {
            if matches!(map.get(key), Some(Value::Array(_) | Value::String(_))) {
                if let Some(inner) = map.remove(key) {
                    legacy_value(inner, out);
                }
                return;
            }
        }
        if matches!(map.get("text"), Some(Value::String(_))) {
            map.insert("type".to_owned(), Value::String("text".to_owned()));
        }
    }
    let fallback = Value::Object(map.clone()).to_string();
    match legacy_part(map) {
        Some(part) => out.push(part),
        None => out.push(ChatMessagePart::text(fallback)),
    }
}

/// Normalizes an old part object to the current field names and decodes it.
fn legacy_part(mut map: Map<String, Value>) -> Option<ChatMessagePart> {
    // `{type, data: {...}}` envelopes: the payload's fields belong to the part. A string
    // `data` is a file part's inline bytes and stays.
    if matches!(map.get("data"), Some(Value::Object(_))) {
        if let Some(Value::Object(data)) = map.remove("data") {
            for (k, v) in data {
                map.entry(k).or_insert(v);
            }
        }
    }
    let mut current = Vec::with_capacity(map.len());
    let mut aliased = Vec::new();
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        let snake = snake_case(&key);
        match legacy_key(&snake) {
            Some(new_key) => aliased.push((new_key.to_owned(), value)),
            None => current.push((snake, value)),
        }
    }
    let mut part = Map::with_capacity(current.len() + aliased.len());
    // A field under its current name wins over an older name that maps onto it.
    for (key, value) in current.into_iter().chain(aliased) {
        let value = match (key.as_str(), value) {
            ("type", Value::String(t)) => Value::String(snake_case(&t).replace('_', "-")),
            ("args" | "result", Value::String(s)) => unwrap_json_text(s),
            (_, v) => v,
        };
        part.entry(key).or_insert(value);
    }
    if !matches!(part.get("type"), Some(Value::String(_))) {
        return None;
    }
    let text = Value::Object(part).to_string();
    serde_json::from_str::<ChatMessagePart>(&text).ok()
}

/// The current name of an older part field (after camelCase is turned into snake_case).
fn legacy_key(key: &str) -> Option<&'static str> {
    match key {
        "input" => Some("args"),
        "output" => Some("result"),
        "mime_type" => Some("media_type"),
        "filename" => Some("name"),
        "provider_options" => Some("provider_metadata"),
        _ => None,
    }
}

/// `toolCallId` → `tool_call_id`; snake_case and kebab-case are left alone.
fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Tool arguments and results were sometimes stored as JSON text inside a string.
fn unwrap_json_text(s: String) -> Value {
    match serde_json::from_str::<Value>(&s) {
        Ok(inner) => inner,
        Err(_) => Value::String(s),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::type_complexity
)]
mod tests {
    use super::*;
    use crate::{ChatMessagePartType, RawJson};
    use proptest::prelude::*;
    use uuid::Uuid;

    fn text(s: &str) -> ChatMessagePart {
        ChatMessagePart::text(s)
    }

    #[test]
    fn version_1_table() {
        let call =
            ChatMessagePart::tool_call("c1", "ls", RawJson::from_json(r#"{"a":1}"#).unwrap());
        let ok: Vec<(&str, Vec<ChatMessagePart>)> = vec![
            ("", vec![]),
            ("  ", vec![]),
            ("null", vec![]),
            ("[]", vec![]),
            (r#"[{"type":"text","text":"hi"}]"#, vec![text("hi")]),
            (
                r#" [{"type":"text","text":"a"},{"type":"tool-call","tool_call_id":"c1","tool_name":"ls","args":{"a":1},"future":true}] "#,
                vec![text("a"), call],
            ),
        ];
        for (raw, want) in ok {
            assert_eq!(decode_message_content(1, raw).unwrap(), want, "{raw}");
        }
        let bad = [
            r#"{"type":"text","text":"hi"}"#,
            r#""hello""#,
            "[1]",
            r#"[{"text":"no type"}]"#,
            r#"[{"type":"text","text":5}]"#,
            "[{",
            "hello",
            "[] []",
        ];
        for raw in bad {
            assert!(
                matches!(
                    decode_message_content(1, raw),
                    Err(ContentError::Invalid(_))
                ),
                "{raw}"
            );
        }
    }

    #[test]
    fn invalid_error_does_not_quote_content() {
        let e = decode_message_content(1, r#""private words""#).unwrap_err();
        assert!(!e.to_string().contains("private"), "{e}");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn unknown_part_types_are_kept() {
        let parts = decode_message_content(1, r#"[{"type":"hook-notice","text":"x"}]"#).unwrap();
        assert_eq!(
            parts[0].part_type,
            ChatMessagePartType::Unknown("hook-notice".into())
        );
    }

    #[test]
    fn unknown_versions() {
        for v in [2, -1, i16::MAX, i16::MIN] {
            assert_eq!(
                decode_message_content(v, "[]"),
                Err(ContentError::UnknownVersion(v))
            );
        }
    }

    #[test]
    fn depth_edge() {
        let nested = |raw_depth: usize| {
            format!(
                r#"[{{"type":"tool-call","tool_call_id":"c","args":{}{}}}]"#,
                "[".repeat(raw_depth),
                "]".repeat(raw_depth)
            )
        };
        let at = nested(MAX_RAW_JSON_DEPTH);
        assert_eq!(decode_message_content(1, &at).unwrap().len(), 1);
        let over = nested(MAX_RAW_JSON_DEPTH + 1);
        assert_eq!(decode_message_content(1, &over), Err(ContentError::TooDeep));
        let huge = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
        assert_eq!(decode_message_content(1, &huge), Err(ContentError::TooDeep));
        // Legacy content that is too deep for JSON is kept as text rather than lost.
        assert_eq!(decode_message_content(0, &huge).unwrap(), vec![text(&huge)]);
    }

    #[test]
    fn size_edge() {
        let at = " ".repeat(MAX_MESSAGE_CONTENT_BYTES);
        assert_eq!(decode_message_content(1, &at).unwrap(), vec![]);
        let over = " ".repeat(MAX_MESSAGE_CONTENT_BYTES + 1);
        assert_eq!(
            decode_message_content(0, &over),
            Err(ContentError::TooLarge {
                len: MAX_MESSAGE_CONTENT_BYTES + 1
            })
        );
    }

    #[test]
    fn version_0_table() {
        let mut tool_call =
            ChatMessagePart::tool_call("c1", "ls", RawJson::from_json(r#"{"a":1}"#).unwrap());
        tool_call.provider_executed = true;
        let file_id = Uuid::from_u128(3);
        let mut file = ChatMessagePart::file(file_id, "image/png");
        file.name = "s.png".into();
        let cases: Vec<(String, Vec<ChatMessagePart>)> = vec![
            (String::new(), vec![]),
            ("null".into(), vec![]),
            (r#""hello""#.into(), vec![text("hello")]),
            (r#""""#.into(), vec![]),
            ("hello world".into(), vec![text("hello world")]),
            ("  not json {  ".into(), vec![text("  not json {  ")]),
            ("42".into(), vec![text("42")]),
            (" true ".into(), vec![text("true")]),
            (r#"{"type":"text","text":"hi"}"#.into(), vec![text("hi")]),
            (r#"[{"type":"text","text":"a"},"b",null,{"text":"c"}]"#.into(), vec![text("a"), text("b"), text("c")]),
            (r#"{"type":"reasoning","text":"hmm","signature":null}"#.into(), vec![ChatMessagePart::reasoning("hmm")]),
            (
                r#"{"type":"tool_call","data":{"toolCallId":"c1","toolName":"ls","input":"{\"a\":1}","providerExecuted":true}}"#.into(),
                vec![tool_call.clone()],
            ),
            (
                r#"{"type":"toolCall","tool_call_id":"c1","tool_name":"ls","args":{"a":1},"input":{"ignored":1},"provider_executed":true}"#.into(),
                vec![tool_call],
            ),
            (
                r#"{"type":"tool-result","toolCallId":"c1","toolName":"ls","output":"plain text","isError":true}"#.into(),
                vec![ChatMessagePart::tool_result("c1", "ls", RawJson::from_json(r#""plain text""#).unwrap(), true)],
            ),
            (
                format!(r#"{{"type":"file","fileId":"{file_id}","mimeType":"image/png","filename":"s.png"}}"#),
                vec![file],
            ),
            (
                r#"{"type":"file_reference","fileName":"a.rs","startLine":1,"endLine":2,"content":"x"}"#.into(),
                vec![ChatMessagePart::file_reference("a.rs", 1, 2, "x")],
            ),
            (r#"{"role":"user","content":"hi there"}"#.into(), vec![text("hi there")]),
            (r#"{"role":"assistant","parts":[{"type":"text","text":"x"}]}"#.into(), vec![text("x")]),
            (r#"[["a"],["b"]]"#.into(), vec![text("a"), text("b")]),
            (r#"{"foo":1}"#.into(), vec![text(r#"{"foo":1}"#)]),
            (r#"{"type":"text","text":5}"#.into(), vec![text(r#"{"text":5,"type":"text"}"#)]),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_message_content(0, &raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn encode_is_version_1_and_round_trips() {
        let parts = vec![
            text("hi"),
            ChatMessagePart::tool_result("c", "t", RawJson::from_json("[1,2]").unwrap(), false),
            ChatMessagePart::file_reference("a", 1, 1, ""),
        ];
        let encoded = encode_message_content(&parts).unwrap();
        assert!(encoded.starts_with('['));
        assert_eq!(
            decode_message_content(CURRENT_CONTENT_VERSION, &encoded).unwrap(),
            parts
        );
        assert_eq!(encode_message_content(&[]).unwrap(), "[]");
    }

    proptest! {
        #[test]
        fn never_panics(raw in any::<String>(), version in -2i16..4) {
            let _ = decode_message_content(version, &raw);
        }

        #[test]
        fn legacy_never_fails(raw in any::<String>()) {
            let parts = decode_message_content(0, &raw);
            prop_assert!(parts.is_ok());
            // Text that is not JSON is never dropped.
            if serde_json::from_str::<serde_json::Value>(&raw).is_err() && !raw.trim().is_empty() {
                prop_assert_eq!(parts.ok(), Some(vec![text(&raw)]));
            }
        }

        #[test]
        fn legacy_never_panics_on_json_like_text(raw in r#"[\[\]{}",:a-zA-Z0-9 \\]{0,40}"#) {
            let _ = decode_message_content(0, &raw);
            let _ = decode_message_content(1, &raw);
        }

        #[test]
        fn text_parts_round_trip(texts in proptest::collection::vec(any::<String>(), 0..5)) {
            let parts: Vec<ChatMessagePart> = texts.iter().map(|t| text(t)).collect();
            let encoded = encode_message_content(&parts).unwrap();
            prop_assert_eq!(decode_message_content(1, &encoded).unwrap(), parts);
        }
    }
}
