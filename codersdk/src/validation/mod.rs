//! Request validation shared by the server and by clients (the choices the spec leaves open are written down in `docs/validation.md`).
//!
//! Every validator returns the standard [`Response`] on failure, with one
//! [`ValidationError`] per problem. Field names are JSON paths (`content[0].text`,
//! `unsafe_dynamic_tools[3].name`) or query parameter names (`limit`). Validators report
//! every problem they find rather than the first one, so a bot author fixes a request in
//! one round trip. No validator panics, whatever the input, and no message ever contains
//! a secret.
//!
//! One module per resource; this module holds only the helpers they share (the problem
//! collector, quoting of user input, the display-name rule) and re-exports their public
//! items, which the crate root re-exports in turn.

mod aibridge;
mod chat;
mod content;
mod costs;
mod dynamic_tools;
mod labels;
mod mcp;
mod messages;
mod models;
mod paging;
mod prompts;
mod providers;
mod retention;
#[cfg(test)]
mod test_support;
mod tool_results;
mod uploads;
mod urls;
mod usage;

pub use aibridge::*;
pub use chat::*;
pub use content::*;
pub use costs::*;
pub use dynamic_tools::*;
pub use labels::*;
pub use mcp::*;
pub use messages::*;
pub use models::*;
pub use paging::*;
pub use prompts::*;
pub use providers::*;
pub use retention::*;
pub use tool_results::*;
pub use uploads::*;
pub use urls::*;
pub use usage::*;

use crate::{Response, ValidationError};

/// Longest provider or model display name, in Unicode scalar values.
pub const MAX_DISPLAY_NAME_RUNES: usize = 256;

/// Collects problems so that one response lists all of them.
#[derive(Debug, Default)]
struct Problems(Vec<ValidationError>);

impl Problems {
    fn push(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.0.push(ValidationError::new(field, detail));
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn absorb(&mut self, response: Response) {
        self.0.extend(response.validations);
    }

    fn into_response(self, message: &str) -> Response {
        Response {
            message: message.to_owned(),
            detail: String::new(),
            validations: self.0,
        }
    }

    fn finish(self, message: &str) -> Result<(), Response> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.into_response(message))
        }
    }
}

/// A response with one validation problem.
fn single(message: &str, field: &str, detail: impl Into<String>) -> Response {
    Response::new(message).with_validation(field, detail)
}

/// Quotes user input for an error message: escaped (no raw control characters reach a
/// log line) and cut to 64 characters so a huge value cannot bloat the response.
fn quoted(s: &str) -> String {
    const MAX_ECHO_CHARS: usize = 64;
    let mut cut: String = s.chars().take(MAX_ECHO_CHARS).collect();
    if cut.len() < s.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Absent and empty query parameters mean the same thing, as with Go's `Query().Get`.
fn present(raw: Option<&str>) -> Option<&str> {
    raw.filter(|s| !s.is_empty())
}

/// Query parameter `name` as an RFC 3339 time; a bad one is a problem naming the field and
/// echoing the value; absent or empty is `None`.
fn query_time(name: &str, raw: Option<&str>, p: &mut Problems) -> Option<crate::Timestamp> {
    let raw = present(raw)?;
    match raw.parse::<crate::Timestamp>() {
        Ok(t) => Some(t),
        Err(_) => {
            p.push(
                name,
                format!(
                    "{name} must be an RFC 3339 date and time such as 2026-01-31T00:00:00Z, \
                     not {}.",
                    quoted(raw)
                ),
            );
            None
        }
    }
}

/// Lower-cased, trimmed form used for the case-insensitive enum comparisons of requests.
fn folded(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// Whether text holds NUL, which PostgreSQL rejects in `text` and `jsonb` columns.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Length in Unicode scalar values (Go's runes), the unit of the character limits.
fn rune_count(s: &str) -> usize {
    s.chars().count()
}

/// Checks a provider or model display name and returns it trimmed: at most
/// [`MAX_DISPLAY_NAME_RUNES`] characters, no control characters.
fn check_display_name(raw: &str, p: &mut Problems) -> String {
    let name = raw.trim();
    if rune_count(name) > MAX_DISPLAY_NAME_RUNES {
        p.push(
            "display_name",
            format!("display_name may be at most {MAX_DISPLAY_NAME_RUNES} characters."),
        );
    } else if name.chars().any(char::is_control) {
        p.push(
            "display_name",
            "display_name must not contain control characters.",
        );
    }
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_echo_is_bounded_and_escaped() {
        let long = "x".repeat(1000);
        let q = quoted(&long);
        assert!(q.chars().count() < 80, "{q}");
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
    }
}
