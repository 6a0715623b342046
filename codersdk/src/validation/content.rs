//! Message content: the input parts of chat creation, sent and edited messages, and
//! their conversion into stored message parts.

use std::collections::HashSet;

use uuid::Uuid;

use super::{folded, has_nul, quoted, Problems};
use crate::{ChatFileMetadata, ChatInputPart, ChatInputPartType, ChatMessagePart, Response};

/// Most input parts in one message.
///
/// The spec sets no limit; 100 is far above what the web UI sends (a text part, a few
/// attachments and diff comments) and keeps the per-part error list short.
pub const MAX_CHAT_INPUT_PARTS: usize = 100;

/// Most text in one message, in bytes: the sum of every `text`, and of every
/// file-reference `file_name` and `content`.
///
/// Equal to the 256 KiB body cap of chat creation, so any message that fits the
/// creation body also passes here; sending a message applies the same bound.
pub const MAX_CHAT_MESSAGE_TEXT_BYTES: usize = 256 * 1024;

/// Longest `file_name` of a file-reference part, in bytes (a generous `PATH_MAX`).
pub const MAX_FILE_REFERENCE_NAME_BYTES: usize = 4096;

/// One user input part after validation: the type is resolved and the required fields
/// are known to be present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidatedInputPart {
    /// Non-blank text, kept exactly as sent (leading whitespace can matter in code).
    Text(String),
    /// An uploaded chat file. The server still has to check that it exists and that the
    /// caller may read it; [`input_parts_to_message_parts`] takes its metadata.
    File(Uuid),
    /// A reference to lines of a file (a diff comment).
    FileReference {
        /// Path of the file, trimmed.
        file_name: String,
        /// First line, 1-based; 0 together with `end_line` 0 means "no line range".
        start_line: i64,
        /// Last line, inclusive; at least `start_line`.
        end_line: i64,
        /// The commented snippet (may be empty).
        content: String,
    },
}

/// Resolves the `type` of an input part: trimmed and case-insensitive.
fn input_part_kind(t: &ChatInputPartType) -> Option<ChatInputPartType> {
    match folded(t.as_str()).as_str() {
        "text" => Some(ChatInputPartType::Text),
        "file" => Some(ChatInputPartType::File),
        "file-reference" => Some(ChatInputPartType::FileReference),
        _ => None,
    }
}

fn check_input_part(
    index: usize,
    part: &ChatInputPart,
    p: &mut Problems,
) -> Option<ValidatedInputPart> {
    let at = |name: &str| format!("content[{index}].{name}");
    let Some(kind) = input_part_kind(&part.part_type) else {
        p.push(
            at("type"),
            format!(
                "Unsupported part type {}; use \"text\", \"file\" or \"file-reference\".",
                quoted(part.part_type.as_str())
            ),
        );
        return None;
    };
    match kind {
        ChatInputPartType::Text => {
            if part.text.trim().is_empty() {
                p.push(at("text"), "Text parts need non-blank text.");
                None
            } else if has_nul(&part.text) {
                p.push(at("text"), "Text must not contain NUL characters.");
                None
            } else {
                Some(ValidatedInputPart::Text(part.text.clone()))
            }
        }
        ChatInputPartType::File => match part.file_id {
            None => {
                p.push(
                    at("file_id"),
                    "File parts need the file_id of an uploaded chat file.",
                );
                None
            }
            Some(id) if id.is_nil() => {
                p.push(at("file_id"), "file_id must not be the nil UUID.");
                None
            }
            Some(id) => Some(ValidatedInputPart::File(id)),
        },
        _ => check_file_reference(part, &at, p),
    }
}

fn check_file_reference(
    part: &ChatInputPart,
    at: &dyn Fn(&str) -> String,
    p: &mut Problems,
) -> Option<ValidatedInputPart> {
    let before = p.0.len();
    let file_name = part.file_name.trim();
    if file_name.is_empty() {
        p.push(at("file_name"), "File-reference parts need a file_name.");
    } else if file_name.len() > MAX_FILE_REFERENCE_NAME_BYTES {
        p.push(
            at("file_name"),
            format!("file_name may be at most {MAX_FILE_REFERENCE_NAME_BYTES} bytes."),
        );
    } else if file_name.chars().any(char::is_control) {
        p.push(
            at("file_name"),
            "file_name must not contain control characters.",
        );
    }
    let (start, end) = (part.start_line, part.end_line);
    if start < 0 {
        p.push(at("start_line"), "start_line must not be negative.");
    }
    if end < 0 {
        p.push(at("end_line"), "end_line must not be negative.");
    }
    if start >= 0 && end >= 0 && !(start == 0 && end == 0) {
        if start == 0 {
            p.push(
                at("start_line"),
                "Lines are numbered from 1; start_line must be at least 1.",
            );
        } else if end < start {
            p.push(
                at("end_line"),
                format!("end_line ({end}) must not be before start_line ({start})."),
            );
        }
    }
    if has_nul(&part.content) {
        p.push(at("content"), "content must not contain NUL characters.");
    }
    if p.0.len() != before {
        return None;
    }
    Some(ValidatedInputPart::FileReference {
        file_name: file_name.to_owned(),
        start_line: start,
        end_line: end,
        content: part.content.clone(),
    })
}

fn text_bytes(parts: &[ChatInputPart]) -> usize {
    parts.iter().fold(0usize, |sum, part| {
        sum.saturating_add(part.text.len())
            .saturating_add(part.file_name.len())
            .saturating_add(part.content.len())
    })
}

/// Checks `content` of a message request; `None` when `content` is empty (which the
/// callers report with the exact message "Content is required.").
pub(super) fn check_content(
    parts: &[ChatInputPart],
    p: &mut Problems,
) -> Option<Vec<ValidatedInputPart>> {
    if parts.is_empty() {
        p.push("content", "Send at least one content part.");
        return None;
    }
    if parts.len() > MAX_CHAT_INPUT_PARTS {
        p.push(
            "content",
            format!(
                "{} content parts were given; a message may have at most \
                 {MAX_CHAT_INPUT_PARTS}.",
                parts.len()
            ),
        );
        return Some(Vec::new());
    }
    let total = text_bytes(parts);
    if total > MAX_CHAT_MESSAGE_TEXT_BYTES {
        p.push(
            "content",
            format!(
                "The message text is {total} bytes long; a message may hold at most \
                 {MAX_CHAT_MESSAGE_TEXT_BYTES} bytes of text. Upload long text as a file."
            ),
        );
    }
    Some(
        parts
            .iter()
            .enumerate()
            .filter_map(|(i, part)| check_input_part(i, part, p))
            .collect(),
    )
}

pub(super) fn content_message(parts: &[ChatInputPart], fallback: &'static str) -> &'static str {
    if parts.is_empty() {
        "Content is required."
    } else {
        fallback
    }
}

/// Validates the `content` of a chat or message request.
///
/// `type` is compared trimmed and case-insensitively; `text` needs non-blank text, `file`
/// a `file_id`, `file-reference` a `file_name` and a sane line range (both 0 for no range,
/// otherwise `1 ≤ start_line ≤ end_line`). At most [`MAX_CHAT_INPUT_PARTS`] parts and
/// [`MAX_CHAT_MESSAGE_TEXT_BYTES`] bytes of text. An empty array fails with the message
/// "Content is required.". On success the parts come back in order, one per input part.
pub fn validate_input_parts(parts: &[ChatInputPart]) -> Result<Vec<ValidatedInputPart>, Response> {
    let mut p = Problems::default();
    let validated = check_content(parts, &mut p);
    if !p.is_empty() {
        return Err(p.into_response(content_message(parts, "Invalid message content.")));
    }
    Ok(validated.unwrap_or_default())
}

/// What the server knows about an uploaded file when it turns a `file` input part into a
/// message part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedChatFile {
    /// The stored MIME type.
    pub media_type: String,
    /// The original file name (may be empty).
    pub name: String,
}

impl From<&ChatFileMetadata> for ResolvedChatFile {
    fn from(file: &ChatFileMetadata) -> Self {
        ResolvedChatFile {
            media_type: file.mime_type.clone(),
            name: file.name.clone(),
        }
    }
}

/// The distinct file ids that validated parts reference, in first-use order, so the server
/// can load their metadata in one query before calling [`input_parts_to_message_parts`].
pub fn referenced_file_ids(parts: &[ValidatedInputPart]) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    parts
        .iter()
        .filter_map(|part| match part {
            ValidatedInputPart::File(id) if seen.insert(*id) => Some(*id),
            _ => None,
        })
        .collect()
}

/// Turns validated input parts into the message parts that are stored.
///
/// Text and file-reference parts convert directly. A `file` part needs the file's MIME
/// type: `resolve_file` returns it, or `None` when the file does not exist or the caller
/// may not read it, which fails with a 400 naming `content[i].file_id`. The lookup is a
/// plain closure so the server can fetch every id of [`referenced_file_ids`] at once and
/// answer from a map.
pub fn input_parts_to_message_parts<F>(
    parts: &[ValidatedInputPart],
    mut resolve_file: F,
) -> Result<Vec<ChatMessagePart>, Response>
where
    F: FnMut(Uuid) -> Option<ResolvedChatFile>,
{
    let mut p = Problems::default();
    let mut out = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        match part {
            ValidatedInputPart::Text(text) => out.push(ChatMessagePart::text(text.clone())),
            ValidatedInputPart::FileReference {
                file_name,
                start_line,
                end_line,
                content,
            } => {
                out.push(ChatMessagePart::file_reference(
                    file_name.clone(),
                    *start_line,
                    *end_line,
                    content.clone(),
                ));
            }
            ValidatedInputPart::File(id) => match resolve_file(*id) {
                Some(file) => {
                    let mut message_part = ChatMessagePart::file(*id, file.media_type);
                    message_part.name = file.name;
                    out.push(message_part);
                }
                None => p.push(
                    format!("content[{index}].file_id"),
                    format!("File {id} does not exist or you may not read it. Upload it first."),
                ),
            },
        }
    }
    p.finish("Invalid message content.")?;
    Ok(out)
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
    use crate::validation::test_support::*;
    use crate::*;
    use proptest::prelude::*;

    #[test]
    fn input_part_table() {
        let id = Uuid::from_u128(7);
        type Case = (ChatInputPart, Result<ValidatedInputPart, &'static str>);
        let cases: Vec<Case> = vec![
            (
                ChatInputPart::text("hi"),
                Ok(ValidatedInputPart::Text("hi".into())),
            ),
            (
                ChatInputPart::text("  hi "),
                Ok(ValidatedInputPart::Text("  hi ".into())),
            ),
            (
                typed(" TEXT ", ChatInputPart::text("x")),
                Ok(ValidatedInputPart::Text("x".into())),
            ),
            (
                typed("File", ChatInputPart::file(id)),
                Ok(ValidatedInputPart::File(id)),
            ),
            (ChatInputPart::text(" \n\t"), Err("content[0].text")),
            (ChatInputPart::text("nul\0"), Err("content[0].text")),
            (
                typed("file", ChatInputPart::text("")),
                Err("content[0].file_id"),
            ),
            (ChatInputPart::file(Uuid::nil()), Err("content[0].file_id")),
            (
                typed("image", ChatInputPart::text("x")),
                Err("content[0].type"),
            ),
            (typed("", ChatInputPart::text("x")), Err("content[0].type")),
            (
                ChatInputPart::file_reference(" src/a.rs ", 0, 0, ""),
                Ok(ValidatedInputPart::FileReference {
                    file_name: "src/a.rs".into(),
                    start_line: 0,
                    end_line: 0,
                    content: String::new(),
                }),
            ),
            (
                typed(
                    "FILE-REFERENCE",
                    ChatInputPart::file_reference("a", 3, 3, "x"),
                ),
                Ok(ValidatedInputPart::FileReference {
                    file_name: "a".into(),
                    start_line: 3,
                    end_line: 3,
                    content: "x".into(),
                }),
            ),
            (
                ChatInputPart::file_reference("a", 1, 9, "x").clone(),
                Ok(ValidatedInputPart::FileReference {
                    file_name: "a".into(),
                    start_line: 1,
                    end_line: 9,
                    content: "x".into(),
                }),
            ),
            (
                ChatInputPart::file_reference("  ", 1, 1, ""),
                Err("content[0].file_name"),
            ),
            (
                ChatInputPart::file_reference("a\nb", 1, 1, ""),
                Err("content[0].file_name"),
            ),
            (
                ChatInputPart::file_reference("a", 3, 2, ""),
                Err("content[0].end_line"),
            ),
            (
                ChatInputPart::file_reference("a", 0, 5, ""),
                Err("content[0].start_line"),
            ),
            (
                ChatInputPart::file_reference("a", -1, 0, ""),
                Err("content[0].start_line"),
            ),
            (
                ChatInputPart::file_reference("a", 1, -1, ""),
                Err("content[0].end_line"),
            ),
        ];
        for (part, want) in cases {
            let got = validate_input_parts(std::slice::from_ref(&part));
            match (got, want) {
                (Ok(parts), Ok(want)) => assert_eq!(parts, vec![want], "{part:?}"),
                (Err(r), Err(field)) => {
                    assert_eq!(r.message, "Invalid message content.");
                    assert_eq!(fields(&r), vec![field], "{part:?}");
                }
                (got, want) => panic!("{part:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn file_reference_name_edge() {
        let at = "a".repeat(MAX_FILE_REFERENCE_NAME_BYTES);
        assert!(validate_input_parts(&[ChatInputPart::file_reference(at, 1, 1, "")]).is_ok());
        let over = "a".repeat(MAX_FILE_REFERENCE_NAME_BYTES + 1);
        assert!(validate_input_parts(&[ChatInputPart::file_reference(over, 1, 1, "")]).is_err());
    }

    #[test]
    fn empty_content_message_is_exact() {
        let r = validate_input_parts(&[]).unwrap_err();
        assert_eq!(r.message, "Content is required.");
        assert_eq!(fields(&r), vec!["content"]);
        let r = validate_edit_chat_message_request(&EditChatMessageRequest::default()).unwrap_err();
        assert_eq!(r.message, "Content is required.");
    }

    #[test]
    fn every_bad_part_is_reported() {
        let parts = vec![
            ChatInputPart::text(""),
            ChatInputPart::text("ok"),
            typed("video", ChatInputPart::text("x")),
        ];
        let r = validate_input_parts(&parts).unwrap_err();
        assert_eq!(fields(&r), vec!["content[0].text", "content[2].type"]);
    }

    #[test]
    fn part_count_and_text_size_edges() {
        let at = vec![ChatInputPart::text("x"); MAX_CHAT_INPUT_PARTS];
        assert_eq!(
            validate_input_parts(&at).unwrap().len(),
            MAX_CHAT_INPUT_PARTS
        );
        let over = vec![ChatInputPart::text("x"); MAX_CHAT_INPUT_PARTS + 1];
        assert_eq!(
            validate_input_parts(&over).unwrap_err().validations.len(),
            1
        );

        let at = ChatInputPart::text("a".repeat(MAX_CHAT_MESSAGE_TEXT_BYTES));
        assert!(validate_input_parts(&[at]).is_ok());
        let over = [
            ChatInputPart::text("a".repeat(MAX_CHAT_MESSAGE_TEXT_BYTES - 1)),
            ChatInputPart::file_reference("ab", 1, 1, ""),
        ];
        assert_eq!(
            fields(&validate_input_parts(&over).unwrap_err()),
            vec!["content"]
        );
    }

    #[test]
    fn conversion_to_message_parts() {
        let known = Uuid::from_u128(1);
        let unknown = Uuid::from_u128(2);
        let parts = validate_input_parts(&[
            ChatInputPart::text("look"),
            ChatInputPart::file(known),
            ChatInputPart::file_reference("a.rs", 1, 2, "fn a()"),
            ChatInputPart::file(known),
        ])
        .unwrap();
        assert_eq!(referenced_file_ids(&parts), vec![known]);
        let resolve = |id: Uuid| {
            (id == known).then(|| ResolvedChatFile {
                media_type: "image/png".into(),
                name: "s.png".into(),
            })
        };
        let out = input_parts_to_message_parts(&parts, resolve).unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], ChatMessagePart::text("look"));
        let mut file = ChatMessagePart::file(known, "image/png");
        file.name = "s.png".into();
        assert_eq!(out[1], file);
        assert_eq!(
            out[2],
            ChatMessagePart::file_reference("a.rs", 1, 2, "fn a()")
        );

        let parts = vec![
            ValidatedInputPart::Text("x".into()),
            ValidatedInputPart::File(unknown),
        ];
        let r = input_parts_to_message_parts(&parts, resolve).unwrap_err();
        assert_eq!(fields(&r), vec!["content[1].file_id"]);
    }

    fn any_part() -> impl Strategy<Value = ChatInputPart> {
        (
            any::<String>(),
            any::<String>(),
            any::<Option<u128>>(),
            any::<String>(),
            any::<i64>(),
            any::<i64>(),
            any::<String>(),
        )
            .prop_map(|(t, text, id, file_name, start_line, end_line, content)| {
                ChatInputPart {
                    part_type: ChatInputPartType::from_wire(&t),
                    text,
                    file_id: id.map(Uuid::from_u128),
                    file_name,
                    start_line,
                    end_line,
                    content,
                }
            })
    }

    proptest! {
        #[test]
        fn input_parts_never_panic(parts in proptest::collection::vec(any_part(), 0..8)) {
            if let Ok(valid) = validate_input_parts(&parts) {
                prop_assert_eq!(valid.len(), parts.len());
                let converted = input_parts_to_message_parts(&valid, |_| None);
                prop_assert_eq!(converted.is_ok(), referenced_file_ids(&valid).is_empty());
            }
            let req = CreateChatMessageRequest { content: parts, ..Default::default() };
            let _ = validate_create_chat_message_request(&req);
        }
    }
}
