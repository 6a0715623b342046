//! A typed HTTP request helper for server tests.
//!
//! ```no_run
//! # async fn demo(http: reqwest::Client, base: &str, token: &str) {
//! use chatd_test_support::request::Request;
//! use reqwest::{Method, StatusCode};
//!
//! let answer = Request::new(&http, Method::POST, format!("{base}/api/experimental/chats"))
//!     .token(Some(token))
//!     .json(&serde_json::json!({"content": [{"type": "text", "text": "hi"}]}))
//!     .never_showing(&["sk-secret"])
//!     .send()
//!     .await;
//! assert_eq!(answer.status, StatusCode::CREATED);
//! let chat: codersdk::Chat = answer.body();
//! # }
//! ```

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The header the server reads session tokens from (Coder's name).
pub const SESSION_TOKEN_HEADER: &str = "Coder-Session-Token";

/// A request being built: method and URL, optionally a session token, a JSON body, and
/// secrets the answer must not contain.
#[derive(Debug)]
pub struct Request {
    builder: reqwest::RequestBuilder,
    what: String,
    secrets: Vec<String>,
}

impl Request {
    /// `method` on `url` with `http`.
    pub fn new(http: &reqwest::Client, method: Method, url: impl Into<String>) -> Request {
        let url = url.into();
        Request {
            what: format!("{method} {url}"),
            builder: http.request(method, url),
            secrets: Vec::new(),
        }
    }

    /// Sends `token` in [`SESSION_TOKEN_HEADER`]; `None` sends no token.
    pub fn token(mut self, token: Option<&str>) -> Request {
        if let Some(token) = token {
            self.builder = self.builder.header(SESSION_TOKEN_HEADER, token);
        }
        self
    }

    /// Sends `token` in the `coder_session_token` cookie, as a browser does.
    pub fn cookie_token(mut self, token: &str) -> Request {
        self.builder = self
            .builder
            .header("Cookie", format!("theme=dark; coder_session_token={token}"));
        self
    }

    /// `body` as the JSON body.
    pub fn json(mut self, body: &impl Serialize) -> Request {
        self.builder = self.builder.json(body);
        self
    }

    /// `body`, when there is one, as the JSON body.
    pub fn json_opt(self, body: Option<&Value>) -> Request {
        match body {
            Some(body) => self.json(body),
            None => self,
        }
    }

    /// Fails the test when the answer's body contains any of `secrets`.
    pub fn never_showing(mut self, secrets: &[&str]) -> Request {
        self.secrets
            .extend(secrets.iter().map(|secret| (*secret).to_owned()));
        self
    }

    /// Sends the request and reads the whole answer. Panics when the request cannot be
    /// sent, when a non-empty body is not JSON, or when a secret appears in it.
    pub async fn send(self) -> Answer {
        self.send_checked(true).await
    }

    /// [`Request::send`] for answers that need not be JSON (an HTML page, a redirect):
    /// `json` is `Null` unless the body is JSON. Secrets are checked in the body and in
    /// every header.
    pub async fn send_page(self) -> Answer {
        self.send_checked(false).await
    }

    async fn send_checked(self, json_only: bool) -> Answer {
        let what = self.what;
        let response = self
            .builder
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = response.status();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
        for secret in &self.secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret leaked from {what}: {text}"
            );
            for (name, value) in &headers {
                assert!(
                    !value.contains(secret.as_str()),
                    "a secret leaked from {what} in header {name}: {value}"
                );
            }
        }
        let json = if text.is_empty() {
            Value::Null
        } else if json_only {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Answer {
            status,
            headers,
            text,
            json,
        }
    }
}

/// A whole answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The headers, in order (values read lossily as text).
    pub headers: Vec<(String, String)>,
    /// The body as sent (to search for what must not be there).
    pub text: String,
    /// The body as JSON; `Null` when empty.
    pub json: Value,
}

impl Answer {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as `T` (a `codersdk` type); panics naming the status and body when it is
    /// not one.
    pub fn body<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.json.clone()).unwrap_or_else(|e| {
            panic!(
                "the {} answer is not a {}: {e}: {}",
                self.status,
                std::any::type_name::<T>(),
                self.text
            )
        })
    }

    /// The body as the standard error `Response`, after checking it has a message.
    pub fn error(&self) -> codersdk::Response {
        assert_error_body(&self.json);
        self.body()
    }

    /// The `field`s of the error body's `validations`, in order.
    pub fn validation_fields(&self) -> Vec<String> {
        validation_fields(&self.json)
    }
}

/// The `field`s of an error body's `validations`, in order (none when it has none).
pub fn validation_fields(body: &Value) -> Vec<String> {
    body["validations"]
        .as_array()
        .map(|validations| {
            validations
                .iter()
                .map(|v| {
                    v["field"]
                        .as_str()
                        .unwrap_or_else(|| panic!("a validation without a field: {v}"))
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts `body` is a `codersdk::Response` error body: a non-empty `message`.
#[track_caller]
pub fn assert_error_body(body: &Value) {
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error body is a codersdk Response: {body}"
    );
}
