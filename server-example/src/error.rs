//! Errors as HTTP answers: every failure is a JSON `codersdk::Response` with the status
//! its kind maps to.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use codersdk::Response;
use serde::de::DeserializeOwned;

/// An error answer: status + `Response` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: Response,
}

/// `Result` of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: Response::new(message),
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
        }
    }

    /// 401: no or an unknown session token.
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "You must be logged in to do this. Send an API token in the Coder-Session-Token \
             header, as Authorization: Bearer, or in the coder_session_token query parameter.",
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

    /// 501 for a Coder-platform feature this server does not build (DECISIONS §7).
    pub fn not_implemented(feature: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_IMPLEMENTED,
            body: Response::new(format!("{feature} is not available on this server."))
                .with_detail("chatd implements the chats API without Coder workspaces, templates or the rest of the Coder platform."),
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
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> HttpResponse {
        (self.status, axum::Json(self.body)).into_response()
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
/// type, 413 over the body limit).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Json(value))
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
