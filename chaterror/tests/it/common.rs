//! Helpers shared by the integration tests: the Rust stand-ins for the Go error shapes the
//! spec's vectors use (`errors.New`, `fmt.Errorf("…: %w")`, HTTP dumps).

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::error::Error as StdError;
use std::fmt;

use chaterror::{BoxError, ClassifiedError};

/// `errors.New(text)`: an error that is only text.
#[derive(Debug)]
pub struct Text(pub String);

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Text {}

pub fn e(text: &str) -> Text {
    Text(text.to_owned())
}

/// `fmt.Errorf("<context>: %w", source)`: context text plus a source.
#[derive(Debug)]
pub struct Wrap {
    pub context: String,
    pub source: BoxError,
}

impl fmt::Display for Wrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

impl StdError for Wrap {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

pub fn wrap(context: &str, source: impl Into<BoxError>) -> Wrap {
    Wrap {
        context: context.to_owned(),
        source: source.into(),
    }
}

/// The spec's convention for a JSON body: a dump of a 400 response.
pub fn dump(json: &str) -> String {
    format!("HTTP/1.1 400 Bad Request\nContent-Type: application/json\n\n{json}")
}

/// Expected columns of a vector; `None` = the spec leaves the column blank.
#[derive(Debug, Default, Clone)]
pub struct Want {
    pub kind: Option<&'static str>,
    pub retryable: Option<bool>,
    pub status: Option<u16>,
    pub provider: Option<&'static str>,
    pub message: Option<String>,
    pub detail: Option<String>,
}

impl Want {
    pub fn kind(kind: &'static str, retryable: bool) -> Self {
        Want {
            kind: Some(kind),
            retryable: Some(retryable),
            ..Default::default()
        }
    }
    pub fn any() -> Self {
        Want::default()
    }
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
    pub fn provider(mut self, provider: &'static str) -> Self {
        self.provider = Some(provider);
        self
    }
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    pub fn no_detail(self) -> Self {
        self.detail("")
    }

    #[track_caller]
    pub fn check(&self, name: &str, c: &ClassifiedError) {
        if let Some(kind) = self.kind {
            assert_eq!(
                c.kind().map(|k| k.as_str()),
                Some(kind),
                "{name}: kind of {c:?}"
            );
        }
        if let Some(r) = self.retryable {
            assert_eq!(c.is_retryable(), r, "{name}: retryable of {c:?}");
        }
        if let Some(s) = self.status {
            assert_eq!(c.status_code(), s, "{name}: status of {c:?}");
        }
        if let Some(p) = self.provider {
            assert_eq!(c.provider(), p, "{name}: provider of {c:?}");
        }
        if let Some(m) = &self.message {
            assert_eq!(c.message(), m, "{name}: message of {c:?}");
        }
        if let Some(d) = &self.detail {
            assert_eq!(c.detail(), d, "{name}: detail of {c:?}");
        }
    }
}

pub const AUTH_MSG: &str =
    "Authentication with the AI provider failed. Check the API key and permissions.";
pub const CONFIG_MSG: &str =
    "The AI provider rejected the model configuration. Check the selected model and provider settings.";
pub const UNAVAILABLE_MSG: &str = "The AI provider is temporarily unavailable.";
pub const CANCELED_MSG: &str = "The request was canceled before it completed.";
pub const CONTINUITY_MSG: &str =
    "The chat continuation failed due to an internal state mismatch. This is not a configuration or billing issue.";
