//! Chat file uploads: the media-type allow-list, content sniffing and the size limit.

use super::{folded, quoted, single};
use crate::{Response, CHAT_ATTACHMENT_MEDIA_TYPES, MAX_CHAT_FILE_SIZE_BYTES};

/// The essence of a media type: parameters (`; charset=utf-8`) removed, trimmed,
/// lower-cased.
pub fn normalize_media_type(value: &str) -> String {
    let essence = value.split(';').next().unwrap_or_default();
    folded(essence)
}

fn allowed_media_type(normalized: &str) -> Option<&'static str> {
    CHAT_ATTACHMENT_MEDIA_TYPES
        .iter()
        .copied()
        .find(|t| *t == normalized)
}

fn allowed_list() -> String {
    CHAT_ATTACHMENT_MEDIA_TYPES.join(", ")
}

/// Checks a declared `Content-Type` against [`CHAT_ATTACHMENT_MEDIA_TYPES`] (parameters
/// ignored, case-insensitive) and returns the canonical allow-list entry.
pub fn validate_attachment_media_type(declared: &str) -> Result<&'static str, Response> {
    let normalized = normalize_media_type(declared);
    allowed_media_type(&normalized).ok_or_else(|| {
        single(
            "Unsupported file type.",
            "Content-Type",
            format!(
                "{} is not supported; upload one of: {}.",
                quoted(&normalized),
                allowed_list()
            ),
        )
    })
}

/// Whether bytes are text: valid UTF-8 without the control bytes that mark binary data
/// (NUL and friends; tab, newline, form feed, carriage return and escape are fine).
fn is_text(bytes: &[u8]) -> bool {
    let binary = |b: &u8| matches!(*b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F);
    std::str::from_utf8(bytes).is_ok() && !bytes.iter().any(binary)
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Whether bytes are one complete JSON document (any value).
fn parses_as_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(strip_bom(bytes)).is_ok()
}

/// Detects the media type of file content for the attachment allow-list.
///
/// Magic numbers identify PNG, JPEG, GIF, WebP and PDF. Other content is
/// `application/json` when it is text holding a JSON object or array, `text/plain` when it
/// is otherwise text (empty content included), and `application/octet-stream` else. Text
/// is valid UTF-8 (an optional byte-order mark allowed) without binary control bytes.
/// CSV and Markdown cannot be told apart from plain text, so they sniff as `text/plain`.
pub fn sniff_media_type(bytes: &[u8]) -> &'static str {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xFF\xD8\xFF", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
    ];
    if let Some((_, media_type)) = MAGIC.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return media_type;
    }
    if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP".as_slice()) {
        return "image/webp";
    }
    if !is_text(bytes) {
        return "application/octet-stream";
    }
    let body = strip_bom(bytes);
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'{' | b'[')) && parses_as_json(body) {
        return "application/json";
    }
    "text/plain"
}

/// Checks an upload's size against [`MAX_CHAT_FILE_SIZE_BYTES`]. The server answers a
/// failure with 413 (every other upload problem is a 400).
pub fn validate_upload_size(len: u64) -> Result<(), Response> {
    if len > MAX_CHAT_FILE_SIZE_BYTES {
        return Err(Response::new("The file is too large.").with_detail(format!(
            "The file is {len} bytes; uploads may be at most {MAX_CHAT_FILE_SIZE_BYTES} bytes \
             (10 MiB)."
        )));
    }
    Ok(())
}

/// Checks an upload and returns the media type to store.
///
/// Rules, in order: the size passes [`validate_upload_size`] (call that first yourself to
/// answer 413); the file is not empty; a `Content-Type` is given. A declared
/// `application/octet-stream` is replaced by the sniffed type ([`sniff_media_type`]),
/// which must be on the allow-list. Otherwise the declared type must be on the allow-list
/// and match the content: images and PDF must sniff as exactly that type,
/// `application/json` must parse as JSON, and `text/plain`, `text/csv` and
/// `text/markdown` must be text (JSON text included, since JSON is text).
pub fn check_upload(declared_content_type: &str, bytes: &[u8]) -> Result<&'static str, Response> {
    validate_upload_size(u64::try_from(bytes.len()).unwrap_or(u64::MAX))?;
    if bytes.is_empty() {
        return Err(Response::new("The uploaded file is empty.")
            .with_detail("Send the file's bytes as the request body."));
    }
    let declared = normalize_media_type(declared_content_type);
    if declared.is_empty() {
        return Err(single(
            "Unsupported file type.",
            "Content-Type",
            format!(
                "A Content-Type header is required; upload one of: {}.",
                allowed_list()
            ),
        ));
    }
    let sniffed = sniff_media_type(bytes);
    if declared == "application/octet-stream" {
        return allowed_media_type(sniffed).ok_or_else(|| {
            single(
                "Unsupported file type.",
                "Content-Type",
                format!(
                    "The content was not recognized as a supported type; upload one of: {}.",
                    allowed_list()
                ),
            )
        });
    }
    let canonical = validate_attachment_media_type(&declared)?;
    let matches = match canonical {
        "application/json" => is_text(bytes) && parses_as_json(bytes),
        "text/plain" | "text/csv" | "text/markdown" => is_text(bytes),
        other => sniffed == other,
    };
    if !matches {
        return Err(single(
            "File content does not match its Content-Type.",
            "Content-Type",
            format!(
                "The Content-Type is {canonical} but the content looks like {sniffed}. Send \
                 the correct type, or application/octet-stream to have it detected."
            ),
        ));
    }
    Ok(canonical)
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
    use proptest::prelude::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF";
    const WEBP: &[u8] = b"RIFF\x24\0\0\0WEBPVP8 ";

    #[test]
    fn media_type_normalization() {
        assert_eq!(
            normalize_media_type(" Text/Plain ; charset=UTF-8"),
            "text/plain"
        );
        assert_eq!(normalize_media_type(""), "");
        assert_eq!(
            validate_attachment_media_type("IMAGE/PNG").unwrap(),
            "image/png"
        );
        assert_eq!(
            validate_attachment_media_type("text/markdown; charset=utf-8").unwrap(),
            "text/markdown"
        );
        for bad in ["image/svg+xml", "text/html", "", "application/octet-stream"] {
            assert!(validate_attachment_media_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sniff_table() {
        let cases: &[(&[u8], &str)] = &[
            (PNG, "image/png"),
            (JPEG, "image/jpeg"),
            (b"GIF87a....", "image/gif"),
            (b"GIF89a....", "image/gif"),
            (WEBP, "image/webp"),
            (b"RIFF\x24\0\0\0WAVEfmt ", "application/octet-stream"),
            (b"RIFF", "text/plain"),
            (b"%PDF-1.7\n", "application/pdf"),
            (br#"{"a": [1, 2]}"#, "application/json"),
            (b"  [1, 2]\n", "application/json"),
            (b"\xEF\xBB\xBF{\"a\":1}", "application/json"),
            (b"{not json", "text/plain"),
            (b"42", "text/plain"),
            (b"a,b\n1,2\n", "text/plain"),
            (b"# Title\n\ttext\x0c\x1b[0m\r\n", "text/plain"),
            (b"", "text/plain"),
            (b"\0\x01\x02", "application/octet-stream"),
            (b"text\0", "application/octet-stream"),
            (b"\xFF\xFE", "application/octet-stream"),
            (b"caf\xC3\xA9", "text/plain"),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff_media_type(bytes), *want, "{bytes:?}");
        }
    }

    #[test]
    fn check_upload_table() {
        let cases: &[(&str, &[u8], Result<&str, &str>)] = &[
            ("image/png", PNG, Ok("image/png")),
            ("IMAGE/PNG; q=1", PNG, Ok("image/png")),
            (
                "image/png",
                JPEG,
                Err("File content does not match its Content-Type."),
            ),
            ("application/octet-stream", PNG, Ok("image/png")),
            ("application/octet-stream", b"hello", Ok("text/plain")),
            (
                "application/octet-stream",
                b"{\"a\":1}",
                Ok("application/json"),
            ),
            (
                "application/octet-stream",
                b"\0\x01",
                Err("Unsupported file type."),
            ),
            ("text/csv", b"a,b\n1,2", Ok("text/csv")),
            ("text/markdown", b"# hi", Ok("text/markdown")),
            ("text/plain; charset=utf-8", b"hi", Ok("text/plain")),
            ("text/plain", b"{\"a\":1}", Ok("text/plain")),
            (
                "text/plain",
                b"\0bin",
                Err("File content does not match its Content-Type."),
            ),
            (
                "text/plain",
                PNG,
                Err("File content does not match its Content-Type."),
            ),
            ("application/json", b"42", Ok("application/json")),
            ("application/json", b"\"s\"", Ok("application/json")),
            (
                "application/json",
                b"hello",
                Err("File content does not match its Content-Type."),
            ),
            ("application/pdf", b"%PDF-1.4", Ok("application/pdf")),
            (
                "application/pdf",
                b"hello",
                Err("File content does not match its Content-Type."),
            ),
            ("image/webp", WEBP, Ok("image/webp")),
            ("image/svg+xml", b"<svg/>", Err("Unsupported file type.")),
            ("", PNG, Err("Unsupported file type.")),
            ("text/plain", b"", Err("The uploaded file is empty.")),
        ];
        for (declared, bytes, want) in cases {
            match (check_upload(declared, bytes), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{declared}"),
                (Err(r), Err(msg)) => assert_eq!(r.message, *msg, "{declared} {bytes:?}"),
                (got, want) => panic!("{declared} {bytes:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn upload_size_edge() {
        assert!(validate_upload_size(MAX_CHAT_FILE_SIZE_BYTES).is_ok());
        assert!(validate_upload_size(MAX_CHAT_FILE_SIZE_BYTES + 1).is_err());
        let at = vec![b'a'; usize::try_from(MAX_CHAT_FILE_SIZE_BYTES).unwrap()];
        assert_eq!(check_upload("text/plain", &at).unwrap(), "text/plain");
        let over = vec![b'a'; usize::try_from(MAX_CHAT_FILE_SIZE_BYTES).unwrap() + 1];
        assert_eq!(
            check_upload("text/plain", &over).unwrap_err().message,
            "The file is too large."
        );
    }

    proptest! {
        #[test]
        fn media_type_validators_never_panic(s in any::<String>()) {
            let _ = normalize_media_type(&s);
            let _ = validate_attachment_media_type(&s);
        }

        #[test]
        fn uploads_never_panic(declared in any::<String>(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let sniffed = sniff_media_type(&bytes);
            if let Ok(t) = check_upload(&declared, &bytes) {
                prop_assert!(CHAT_ATTACHMENT_MEDIA_TYPES.contains(&t));
            }
            if !bytes.is_empty() && CHAT_ATTACHMENT_MEDIA_TYPES.contains(&sniffed) {
                prop_assert_eq!(check_upload("application/octet-stream", &bytes).ok(), Some(sniffed));
            }
        }
    }
}
