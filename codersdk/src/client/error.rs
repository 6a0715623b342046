//! The client's [`Error`]: an HTTP status with the server's [`Response`] body, or a
//! transport, decoding or WebSocket failure.

use std::fmt;

use crate::{ChatUsageLimitExceededResponse, Response};

/// Most bytes of an error body the client reads. Error bodies are short JSON
/// `Response`s; a proxy's HTML page or a misbehaving server's endless body is cut here, so
/// a failing call never buffers more than this.
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Most characters of a non-JSON error body kept in the synthesized
/// [`Response::detail`] (the rest is dropped with an ellipsis).
pub const MAX_ERROR_DETAIL_CHARS: usize = 500;

/// `Result` of every client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong with a call.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a non-success status. `response` is its JSON body, or, when
    /// the body was not a `Response` (a proxy's page, say), a `Response` whose message is
    /// the status text and whose detail is the start of the body.
    Api {
        /// The HTTP status code.
        status: u16,
        /// The body.
        response: Response,
        /// The raw body (at most [`MAX_ERROR_BODY_BYTES`]), for bodies with extra fields
        /// such as the usage-limit 409 ([`Error::usage_limit`]).
        body: Vec<u8>,
    },
    /// The request could not be sent or its answer not read (connection refused, timeout,
    /// TLS).
    Transport(reqwest::Error),
    /// A success body, a stream frame or a watch frame was not the JSON the API promises.
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The WebSocket failed (handshake, protocol, I/O).
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    /// The server closed a WebSocket with a code other than a normal closure (1000) or
    /// going away (1001) — for example a stream subscriber that fell too far behind.
    Closed {
        /// The close code.
        code: u16,
        /// The reason the server gave.
        reason: String,
    },
    /// The base URL, or a URL built from it, is unusable.
    InvalidUrl(String),
    /// A body exceeded a limit of the client.
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// The limit, in bytes.
        limit: u64,
    },
}

impl Error {
    /// The HTTP status of an [`Error::Api`]; `None` for other failures.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `Response` body of an [`Error::Api`]; `None` for other failures.
    pub fn response(&self) -> Option<&Response> {
        match self {
            Error::Api { response, .. } => Some(response),
            _ => None,
        }
    }

    /// The body of a usage-limit 409 (`spent_micros`, `limit_micros`, `resets_at`), when
    /// this is one.
    pub fn usage_limit(&self) -> Option<ChatUsageLimitExceededResponse> {
        match self {
            Error::Api {
                status: 409, body, ..
            } => serde_json::from_slice(body).ok(),
            _ => None,
        }
    }

    fn has_status(&self, code: u16) -> bool {
        self.status() == Some(code)
    }

    /// 400: the request was invalid (see [`Response::validations`]).
    pub fn is_bad_request(&self) -> bool {
        self.has_status(400)
    }

    /// 401: no token, or an unknown one.
    pub fn is_unauthorized(&self) -> bool {
        self.has_status(401)
    }

    /// 403: authenticated but not allowed (not the owner, not an administrator).
    pub fn is_forbidden(&self) -> bool {
        self.has_status(403)
    }

    /// 404: no such resource, or one the caller may not see.
    pub fn is_not_found(&self) -> bool {
        self.has_status(404)
    }

    /// 409: a conflict (duplicate, wrong state, usage limit).
    pub fn is_conflict(&self) -> bool {
        self.has_status(409)
    }

    /// 413: the body was over the server's cap.
    pub fn is_payload_too_large(&self) -> bool {
        self.has_status(413)
    }

    /// 415: the body's content type was refused.
    pub fn is_unsupported_media_type(&self) -> bool {
        self.has_status(415)
    }

    /// 429: too many requests (a full message queue).
    pub fn is_too_many_requests(&self) -> bool {
        self.has_status(429)
    }

    /// 501: the server does not build this feature (Coder-platform routes).
    pub fn is_not_implemented(&self) -> bool {
        self.has_status(501)
    }

    /// Any 5xx.
    pub fn is_server_error(&self) -> bool {
        self.status().is_some_and(|s| (500..600).contains(&s))
    }

    /// Builds an [`Error::Api`] from a status and the (possibly cut) body.
    pub(crate) fn api(status: u16, body: Vec<u8>) -> Error {
        let response = serde_json::from_slice::<Response>(&body)
            .ok()
            .filter(|r| !r.message.is_empty())
            .unwrap_or_else(|| synthesized_response(status, &body));
        Error::Api {
            status,
            response,
            body,
        }
    }
}

/// A `Response` for a body that is not one: the status text, and the start of the body.
fn synthesized_response(status: u16, body: &[u8]) -> Response {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unexpected status");
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut detail: String = text.chars().take(MAX_ERROR_DETAIL_CHARS).collect();
    if text.chars().nth(MAX_ERROR_DETAIL_CHARS).is_some() {
        detail.push('…');
    }
    Response::new(format!("{reason} (HTTP {status})")).with_detail(detail)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api {
                status, response, ..
            } => write!(f, "HTTP {status}: {response}"),
            Error::Transport(e) => write!(f, "request failed: {e}"),
            Error::Decode { what, source } => write!(f, "could not decode {what}: {source}"),
            Error::WebSocket(e) => write!(f, "WebSocket failed: {e}"),
            Error::Closed { code, reason } if reason.is_empty() => {
                write!(f, "the server closed the WebSocket (code {code})")
            }
            Error::Closed { code, reason } => {
                write!(f, "the server closed the WebSocket (code {code}): {reason}")
            }
            Error::InvalidUrl(m) => write!(f, "invalid URL: {m}"),
            Error::TooLarge { what, limit } => {
                write!(
                    f,
                    "{what} is larger than the client's limit of {limit} bytes"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Transport(e) => Some(e),
            Error::Decode { source, .. } => Some(source),
            Error::WebSocket(e) => Some(e.as_ref()),
            Error::Api { response, .. } => Some(response),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Error::Transport(e)
    }
}
