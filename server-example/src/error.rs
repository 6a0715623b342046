//! Errors as HTTP answers: every failure is a JSON `codersdk::Response` with the status
//! its kind maps to.

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use bytes::Bytes;
use codersdk::Response;
use serde::de::DeserializeOwned;

/// An error answer: status + `Response` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: Response,
    /// A usage-limit refusal's figures: the body is then a
    /// `ChatUsageLimitExceededResponse` (the `Response` fields plus `spent_micros`,
    /// `limit_micros`, `resets_at`).
    pub usage_limit: Option<Box<codersdk::ChatUsageLimitExceededResponse>>,
}

/// `Result` of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: Response::new(message),
            usage_limit: None,
        }
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 with the body a codersdk validator returned.
    pub fn validation(body: Response) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body,
            usage_limit: None,
        }
    }

    /// 401: no or an unknown session token.
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "You must be logged in to do this. Send an API token in the Coder-Session-Token \
             header or as Authorization: Bearer (WebSockets and file downloads also take the \
             coder_session_token query parameter).",
        )
    }

    /// 403 with a message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 501 for a Coder-platform feature this server does not build.
    pub fn not_implemented(feature: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_IMPLEMENTED,
            body: Response::new(format!("{feature} is not available on this server."))
                .with_detail("chatd implements the chats API without Coder workspaces, templates or the rest of the Coder platform."),
            usage_limit: None,
        }
    }

    /// Adds a detail sentence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.body.detail = detail.into();
        self
    }
}

impl From<chatd_core::Error> for ApiError {
    fn from(e: chatd_core::Error) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            // The body is generic; the log keeps what happened (never secrets: the
            // engine's messages carry none).
            tracing::error!(kind = %e.kind(), error = %e, "request failed");
        }
        ApiError {
            status,
            body: e.to_response(),
            usage_limit: e.usage_limit_exceeded().cloned().map(Box::new),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> HttpResponse {
        match self.usage_limit {
            Some(exceeded) => (self.status, axum::Json(*exceeded)).into_response(),
            None => (self.status, axum::Json(self.body)).into_response(),
        }
    }
}

impl ApiError {
    /// 408: the request body did not arrive before its deadline
    /// ([`crate::serve::ServeSettings::request_body_timeout`]).
    pub fn body_timeout() -> Self {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "The request body was not received in time.",
        )
        .with_detail("Send the whole body promptly; slow uploads get a longer deadline.")
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if crate::serve::is_body_deadline(&r) {
            return ApiError::body_timeout();
        }
        // Coder answers a body of the wrong shape (a missing or mistyped field) with 400;
        // axum's 422 for that case is not part of the API.
        let status = match r.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        let message = match &r {
            JsonRejection::MissingJsonContentType(_) => {
                "Request body must be JSON (Content-Type: application/json).".to_owned()
            }
            JsonRejection::JsonSyntaxError(_) => "Request body is not valid JSON.".to_owned(),
            JsonRejection::JsonDataError(_) => {
                "Request body does not match the expected shape.".to_owned()
            }
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "Request body is too large.".to_owned(),
            _ => "Request body could not be read.".to_owned(),
        };
        ApiError::new(status, message).with_detail(r.body_text())
    }
}

/// `axum::Json` whose rejections are JSON `Response`s (400 malformed, 415 wrong content
/// type, 413 over the body limit), for bodies that are JSON **objects**: every request body
/// of the API is one.
///
/// A body that is valid JSON but not an object (`[]`, `"x"`, `1`, `null`) is 400. serde
/// would otherwise read a struct from an array of its fields in order, and a struct whose
/// fields all have defaults from `[]`: `PUT /users/{id}/roles` with `[]` demoted the user.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// The message of a body that is JSON but not an object.
pub const NOT_AN_OBJECT: &str = "Request body must be a JSON object.";

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Request body must be JSON (Content-Type: application/json).",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_read_error)?;
        match validate_json(&bytes) {
            Ok(JsonShape::Object) => {}
            Ok(JsonShape::Other) => {
                return Err(ApiError::bad_request(NOT_AN_OBJECT)
                    .with_detail("The body is valid JSON of another type."));
            }
            Err(e) => {
                return Err(ApiError::bad_request("Request body is not valid JSON.")
                    .with_detail(e.to_string()));
            }
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Json(value))
    }
}

/// The top-level type of a JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonShape {
    Object,
    Other,
}

/// Checks the **whole** document before it is read into a request type: serde skips the
/// members a type does not declare without checking them, so without this a body with an
/// unknown member holding invalid UTF-8, a lone surrogate (`"\ud800"`) or arrays nested
/// 100 000 deep would be accepted as if it were JSON. Nesting is bounded by serde_json's
/// recursion limit ([`MAX_JSON_DEPTH`]); strings are borrowed, so this allocates little.
fn validate_json(bytes: &[u8]) -> Result<JsonShape, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let shape = <Validate as serde::Deserialize>::deserialize(&mut de)?.0;
    de.end()?;
    Ok(shape)
}

/// Deepest nesting of arrays and objects a request body may have (the top-level object
/// counts as one): serde_json's recursion limit of 128 refuses the 128th level.
pub const MAX_JSON_DEPTH: usize = 127;

/// Visits every value of a document (see [`validate_json`]).
struct Validate(JsonShape);

impl<'de> serde::Deserialize<'de> for Validate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValidateVisitor)
    }
}

struct ValidateVisitor;

impl<'de> serde::de::Visitor<'de> for ValidateVisitor {
    type Value = Validate;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Validate, E> {
        Ok(Validate(JsonShape::Other))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Validate, E> {
        Ok(Validate(JsonShape::Other))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Validate, E> {
        Ok(Validate(JsonShape::Other))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Validate, E> {
        Ok(Validate(JsonShape::Other))
    }
    fn visit_str<E>(self, _: &str) -> Result<Validate, E> {
        Ok(Validate(JsonShape::Other))
    }
    fn visit_unit<E>(self) -> Result<Validate, E> {
        Ok(Validate(JsonShape::Other))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Validate, A::Error> {
        while seq.next_element::<Validate>()?.is_some() {}
        Ok(Validate(JsonShape::Other))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Validate, A::Error> {
        while map.next_key::<Validate>()?.is_some() {
            map.next_value::<Validate>()?;
        }
        Ok(Validate(JsonShape::Object))
    }
}

/// Whether the request says its body is JSON: `application/json` or any `+json` type, as
/// axum's own `Json` decides.
fn has_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind == "application" && (subtype == "json" || subtype.ends_with("+json"))
}

/// A body that could not be read: 408 past its deadline, 413 over the limit, else 400.
fn body_read_error(r: BytesRejection) -> ApiError {
    if crate::serve::is_body_deadline(&r) {
        return ApiError::body_timeout();
    }
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large.")
                .with_detail(r.body_text())
        }
        status if status.is_client_error() => {
            ApiError::new(status, "Request body could not be read.").with_detail(r.body_text())
        }
        _ => ApiError::bad_request("Request body could not be read.").with_detail(r.body_text()),
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> HttpResponse {
        axum::Json(self.0).into_response()
    }
}

/// The status of an empty success (`204 No Content`).
pub fn no_content() -> StatusCode {
    StatusCode::NO_CONTENT
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An object whose member `a` nests `depth - 1` arrays: `depth` levels in all.
    fn nested(depth: usize) -> Vec<u8> {
        format!(
            "{{\"a\":{}{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
        .into_bytes()
    }

    #[test]
    fn only_whole_valid_json_objects_pass() {
        assert_eq!(validate_json(b" {} ").unwrap(), JsonShape::Object);
        for other in [&b"[]"[..], b"[{}]", b"\"x\"", b"1", b"null", b"true"] {
            assert_eq!(validate_json(other).unwrap(), JsonShape::Other);
        }
        for bad in [
            &b""[..],
            b"{",
            b"{}}",
            b"{\"a\":\"\xff\"}",
            br#"{"a":"\ud800"}"#,
            br#"{"a":[1,]}"#,
        ] {
            assert!(
                validate_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // The depth limit at its edge.
        assert!(validate_json(&nested(MAX_JSON_DEPTH)).is_ok());
        assert!(validate_json(&nested(MAX_JSON_DEPTH + 1)).is_err());
        // Far beyond it: refused without exhausting the stack.
        assert!(validate_json(&nested(200_000)).is_err());
    }

    #[tokio::test]
    async fn the_extractor_refuses_non_objects_and_wrong_content_types() {
        #[derive(Debug, serde::Deserialize)]
        struct Roles {
            #[serde(default)]
            #[allow(dead_code)]
            roles: Vec<String>,
        }
        let request = |ct: Option<&str>, body: &'static str| {
            let mut b = axum::http::Request::builder().method("PUT").uri("/");
            if let Some(ct) = ct {
                b = b.header("content-type", ct);
            }
            b.body(axum::body::Body::from(body)).unwrap()
        };
        // `[]` reads as a struct with defaults to serde; here it is 400.
        let err = Json::<Roles>::from_request(request(Some("application/json"), "[]"), &())
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.body.message, NOT_AN_OBJECT);
        let err = Json::<Roles>::from_request(request(None, "{}"), &())
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let ok = Json::<Roles>::from_request(
            request(Some("application/vnd.api+json; charset=utf-8"), "{}"),
            &(),
        )
        .await;
        assert!(ok.is_ok());
        let err = Json::<Roles>::from_request(
            request(Some("application/json"), r#"{"roles":"admin"}"#),
            &(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            err.body.message,
            "Request body does not match the expected shape."
        );
    }

    #[test]
    fn core_errors_keep_their_status_and_hide_internals() {
        let e: ApiError = chatd_core::Error::with_response(
            chatd_core::ErrorKind::QueueFull,
            Response::new("Message queue is full."),
        )
        .into();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.body.message, "Message queue is full.");
    }
}
