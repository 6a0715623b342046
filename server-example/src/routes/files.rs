//! Chat file uploads and downloads.
//!
//! `POST /chats/files?organization=<uuid>` takes the raw file as the body (at most
//! [`MAX_UPLOAD_BYTES`], its own limit above the server-wide one), checks the declared
//! `Content-Type` against the sniffed content and the allow-list (`codersdk::check_upload`),
//! and answers 201 `{id}`. `GET /chats/files/{file}` returns the bytes to their uploader
//! only; everyone else, administrators included, gets the same 404 as for a missing file.

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use bytes::Bytes;
use chatd_core::FileUpload;
use codersdk::{Response, UploadChatFileResponse, Uuid};
use serde::Deserialize;

use super::{Route, RouteBody, RouteKind};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Json};
use crate::extract::{FileId, NoQuery, Query};
use crate::state::AppState;

/// Largest upload body, in bytes: codersdk's 10 MiB attachment cap. Larger bodies are
/// refused with 413 while being read, before anything is stored.
pub const MAX_UPLOAD_BYTES: usize = chatd_core::MAX_FILE_BYTES;

/// Longest file name kept from `Content-Disposition`, in bytes; longer names are cut at a
/// character boundary.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// `Cache-Control` of downloads: a file never changes once uploaded.
pub const FILE_CACHE_CONTROL: &str = "private, max-age=31536000, immutable";

/// Types a browser may render in place (`Content-Disposition: inline`): raster images and
/// plain text, which cannot run script. Everything else (PDF, JSON, CSV, Markdown) is
/// served as an `attachment`.
pub const INLINE_MEDIA_TYPES: &[&str] = &[
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/plain",
];

/// The routes of this group.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new(axum::http::Method::POST, "/chats/files", upload).body(RouteBody::Upload {
            limit: MAX_UPLOAD_BYTES,
        }),
        Route::get("/chats/files/{file}", download).kind(RouteKind::Download),
    ]
}

/// Query of `POST /chats/files`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    organization: Option<String>,
}

/// `POST /chats/files?organization=<uuid>`.
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<UploadChatFileResponse>)> {
    let organization_id = match query.organization.as_deref().map(str::trim) {
        None | Some("") => {
            return Err(invalid_organization(
                "The organization query parameter is required.",
            ))
        }
        Some(raw) => Uuid::parse_str(raw)
            .map_err(|_| invalid_organization("The organization must be a UUID."))?,
    };
    let body = body.map_err(body_error)?;
    let declared = match headers.get(CONTENT_TYPE) {
        None => "",
        Some(v) => v.to_str().map_err(|_| {
            ApiError::validation(
                Response::new("Unsupported file type.")
                    .with_validation("Content-Type", "The Content-Type header is not valid text."),
            )
        })?,
    };
    let name = headers
        .get(CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(disposition_filename)
        .map(|n| clean_file_name(&n))
        .unwrap_or_default();
    // Membership (403), the size cap (413) and the type checks (400) are the engine's.
    let upload = FileUpload::new(organization_id, declared, Vec::from(body)).with_name(name);
    let file = state.engine().upload_file(&caller.actor, upload).await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadChatFileResponse { id: file.id }),
    ))
}

/// `GET /chats/files/{file}`.
async fn download(
    State(state): State<AppState>,
    caller: Caller,
    FileId(id): FileId,
    _: NoQuery,
) -> ApiResult<HttpResponse> {
    // Another user's file is indistinguishable from a missing one (404 either way).
    let file = state.engine().get_file(&caller.actor, id).await?;
    let mime = file.metadata.mime_type.as_str();
    let disposition = if INLINE_MEDIA_TYPES.contains(&mime) {
        "inline"
    } else {
        "attachment"
    };
    let disposition = if file.metadata.name.is_empty() {
        disposition.to_owned()
    } else {
        format!(
            "{disposition}; filename*=UTF-8''{}",
            percent_encode_attr(&file.metadata.name)
        )
    };
    let headers = [
        (
            CONTENT_TYPE,
            HeaderValue::from_str(mime)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        ),
        (
            CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
        ),
        (CACHE_CONTROL, HeaderValue::from_static(FILE_CACHE_CONTROL)),
        // The stored type is authoritative: a browser must not sniff text into HTML.
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    Ok((headers, file.data).into_response())
}

fn invalid_organization(detail: &str) -> ApiError {
    ApiError::validation(
        Response::new("Invalid organization.").with_validation("organization", detail),
    )
}

/// The body could not be read: 413 over [`MAX_UPLOAD_BYTES`], else axum's status.
fn body_error(rejection: BytesRejection) -> ApiError {
    if crate::serve::is_body_deadline(&rejection) {
        return ApiError::body_timeout();
    }
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "The file is too large.").with_detail(format!(
            "Uploads may be at most {MAX_UPLOAD_BYTES} bytes (10 MiB)."
        ))
    } else {
        ApiError::new(status, "The request body could not be read.")
            .with_detail(rejection.body_text())
    }
}

/// The file name of a `Content-Disposition` value: `filename*` (RFC 5987, UTF-8) when
/// present and decodable, else `filename` (quoted or a token). `None` when neither is there.
/// Malformed values are ignored rather than refused, like Coder.
pub fn disposition_filename(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for (key, val) in disposition_params(value) {
        if key.eq_ignore_ascii_case("filename*") {
            extended = extended.or_else(|| decode_ext_value(&val));
        } else if key.eq_ignore_ascii_case("filename") {
            plain = plain.or(Some(val));
        }
    }
    extended.or(plain).filter(|n| !n.is_empty())
}

/// The `key=value` parameters after the disposition type; quoted values unescaped.
fn disposition_params(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    // Skip the disposition type.
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
    }
    loop {
        let mut key = String::new();
        let mut has_value = false;
        for c in chars.by_ref() {
            match c {
                '=' => {
                    has_value = true;
                    break;
                }
                ';' => break,
                c => key.push(c),
            }
        }
        let key = key.trim().to_owned();
        let mut val = String::new();
        if has_value {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                val.push(escaped);
                            }
                        }
                        '"' => break,
                        c => val.push(c),
                    }
                }
                // Anything between the closing quote and the next `;` is junk.
                for c in chars.by_ref() {
                    if c == ';' {
                        break;
                    }
                }
            } else {
                for c in chars.by_ref() {
                    if c == ';' {
                        break;
                    }
                    val.push(c);
                }
                val = val.trim().to_owned();
            }
        }
        if !key.is_empty() {
            out.push((key, val));
        }
        if chars.peek().is_none() {
            return out;
        }
    }
}

/// Decodes an RFC 5987 `charset'language'pct-encoded` value; only UTF-8 (and its ASCII
/// subset) is accepted.
fn decode_ext_value(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let charset = parts.next()?;
    let _language = parts.next()?;
    let encoded = parts.next()?;
    if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("us-ascii") {
        return None;
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A stored file name: the last path component, without control characters, trimmed, at
/// most [`MAX_FILE_NAME_BYTES`].
pub fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim();
    let mut end = cleaned.len().min(MAX_FILE_NAME_BYTES);
    while !cleaned.is_char_boundary(end) {
        end -= 1;
    }
    cleaned.get(..end).unwrap_or_default().trim_end().to_owned()
}

/// Percent-encodes everything outside RFC 5987's `attr-char` set.
fn percent_encode_attr(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_content_disposition() {
        let name = |v: &str| disposition_filename(v);
        assert_eq!(
            name("attachment; filename=\"a b.png\""),
            Some("a b.png".into())
        );
        assert_eq!(name("inline; filename=plain.txt"), Some("plain.txt".into()));
        assert_eq!(
            name(r#"attachment; filename="q\"uote;d.txt"; size=3"#),
            Some("q\"uote;d.txt".into())
        );
        // The extended form wins over the fallback.
        assert_eq!(
            name("attachment; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt"),
            Some("€ rates.txt".into())
        );
        // Undecodable extended values fall back to the plain name.
        assert_eq!(
            name("attachment; filename*=ISO-8859-1''x.txt; filename=y.txt"),
            Some("y.txt".into())
        );
        assert_eq!(name("attachment; filename*=UTF-8''%ZZ"), None);
        assert_eq!(name("attachment"), None);
        assert_eq!(name("attachment; filename="), None);
    }

    #[test]
    fn stored_names_are_base_names_within_the_cap() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\Users\\me\\a.txt"), "a.txt");
        assert_eq!(clean_file_name(" tab\tbed\n.txt "), "tabbed.txt");
        let at = "a".repeat(MAX_FILE_NAME_BYTES);
        assert_eq!(clean_file_name(&at), at);
        assert_eq!(clean_file_name(&format!("{at}b")), at);
        // A multi-byte character straddling the cap is dropped whole.
        let straddle = format!("{}é", "a".repeat(MAX_FILE_NAME_BYTES - 1));
        assert_eq!(
            clean_file_name(&straddle),
            "a".repeat(MAX_FILE_NAME_BYTES - 1)
        );
    }

    #[test]
    fn attr_encoding_round_trips() {
        let encoded = percent_encode_attr("€ a\"b.txt");
        assert_eq!(encoded, "%E2%82%AC%20a%22b.txt");
        assert_eq!(
            decode_ext_value(&format!("UTF-8''{encoded}")).unwrap(),
            "€ a\"b.txt"
        );
    }
}
