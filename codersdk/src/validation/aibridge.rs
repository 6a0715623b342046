//! Query parameters of the AI Gateway's listings: `GET /api/v2/aibridge/interceptions` and
//! `GET /api/v2/aibridge/sessions` (docs/ai-gateway-records.md).

use uuid::Uuid;

use super::{present, query_time, quoted, Problems};
use crate::{Response, Timestamp};

/// Page size of both listings when `limit` is absent or empty (Coder's default).
pub const DEFAULT_AIBRIDGE_PAGE_LIMIT: i64 = 100;

/// Largest page size of both listings (Coder's).
pub const MAX_AIBRIDGE_PAGE_LIMIT: i64 = 1000;

/// Longest `initiator`, `provider` or `model` filter, in bytes.
pub const MAX_AIBRIDGE_FILTER_BYTES: usize = 512;

/// Longest session `cursor`, in bytes.
pub const MAX_AIBRIDGE_CURSOR_BYTES: usize = 2048;

const MSG_QUERY: &str = "Invalid query parameters.";

/// A validated query of `GET /api/v2/aibridge/interceptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AIBridgeInterceptionsQuery {
    /// `me`, a user id or a username; `None`: every visible user.
    pub initiator: Option<String>,
    /// Provider instance name.
    pub provider: Option<String>,
    /// Model that answered.
    pub model: Option<String>,
    /// Started at or after.
    pub started_after: Option<Timestamp>,
    /// Started before.
    pub started_before: Option<Timestamp>,
    /// The last interception of the previous page.
    pub after_id: Option<Uuid>,
    /// Page size, 1 to [`MAX_AIBRIDGE_PAGE_LIMIT`].
    pub limit: i64,
}

/// A validated query of `GET /api/v2/aibridge/sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AIBridgeSessionsQuery {
    /// `me`, a user id or a username; `None`: every visible user.
    pub initiator: Option<String>,
    /// Sessions whose first call started at or after.
    pub started_after: Option<Timestamp>,
    /// Sessions whose first call started before.
    pub started_before: Option<Timestamp>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to [`MAX_AIBRIDGE_PAGE_LIMIT`].
    pub limit: i64,
}

fn text(name: &str, raw: Option<&str>, max: usize, p: &mut Problems) -> Option<String> {
    let raw = present(raw)?;
    if raw.len() > max || raw.chars().any(char::is_control) {
        p.push(
            name,
            format!("{name} must be at most {max} bytes without control characters."),
        );
        return None;
    }
    Some(raw.to_owned())
}

fn limit(raw: Option<&str>, p: &mut Problems) -> i64 {
    let Some(raw) = present(raw) else {
        return DEFAULT_AIBRIDGE_PAGE_LIMIT;
    };
    match raw.parse::<i64>() {
        Ok(v) if (1..=MAX_AIBRIDGE_PAGE_LIMIT).contains(&v) => v,
        _ => {
            p.push(
                "limit",
                format!(
                    "limit must be a whole number from 1 to {MAX_AIBRIDGE_PAGE_LIMIT}, not {}.",
                    quoted(raw)
                ),
            );
            DEFAULT_AIBRIDGE_PAGE_LIMIT
        }
    }
}

fn window(
    after: Option<&str>,
    before: Option<&str>,
    p: &mut Problems,
) -> (Option<Timestamp>, Option<Timestamp>) {
    let after = query_time("started_after", after, p);
    let before = query_time("started_before", before, p);
    if let (Some(a), Some(b)) = (after, before) {
        if b <= a {
            p.push(
                "started_before",
                format!("started_before ({b}) must be after started_after ({a})."),
            );
        }
    }
    (after, before)
}

/// Parses the query of `GET /api/v2/aibridge/interceptions`. Absent and empty parameters
/// are the same; `limit` defaults to [`DEFAULT_AIBRIDGE_PAGE_LIMIT`].
#[allow(clippy::too_many_arguments)]
pub fn parse_aibridge_interceptions_query(
    initiator: Option<&str>,
    provider: Option<&str>,
    model: Option<&str>,
    started_after: Option<&str>,
    started_before: Option<&str>,
    after_id: Option<&str>,
    limit_raw: Option<&str>,
) -> Result<AIBridgeInterceptionsQuery, Response> {
    let mut p = Problems::default();
    let initiator = text("initiator", initiator, MAX_AIBRIDGE_FILTER_BYTES, &mut p);
    let provider = text("provider", provider, MAX_AIBRIDGE_FILTER_BYTES, &mut p);
    let model = text("model", model, MAX_AIBRIDGE_FILTER_BYTES, &mut p);
    let (started_after, started_before) = window(started_after, started_before, &mut p);
    let after_id = match present(after_id) {
        None => None,
        Some(raw) => match Uuid::parse_str(raw) {
            Ok(id) => Some(id),
            Err(_) => {
                p.push(
                    "after_id",
                    format!("after_id must be an interception ID, not {}.", quoted(raw)),
                );
                None
            }
        },
    };
    let limit = limit(limit_raw, &mut p);
    p.finish(MSG_QUERY)?;
    Ok(AIBridgeInterceptionsQuery {
        initiator,
        provider,
        model,
        started_after,
        started_before,
        after_id,
        limit,
    })
}

/// Parses the query of `GET /api/v2/aibridge/sessions`. Absent and empty parameters are
/// the same; `limit` defaults to [`DEFAULT_AIBRIDGE_PAGE_LIMIT`].
pub fn parse_aibridge_sessions_query(
    initiator: Option<&str>,
    started_after: Option<&str>,
    started_before: Option<&str>,
    cursor: Option<&str>,
    limit_raw: Option<&str>,
) -> Result<AIBridgeSessionsQuery, Response> {
    let mut p = Problems::default();
    let initiator = text("initiator", initiator, MAX_AIBRIDGE_FILTER_BYTES, &mut p);
    let (started_after, started_before) = window(started_after, started_before, &mut p);
    let cursor = text("cursor", cursor, MAX_AIBRIDGE_CURSOR_BYTES, &mut p);
    let limit = limit(limit_raw, &mut p);
    p.finish(MSG_QUERY)?;
    Ok(AIBridgeSessionsQuery {
        initiator,
        started_after,
        started_before,
        cursor,
        limit,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_are_bounded() {
        let q = parse_aibridge_sessions_query(None, None, None, None, None).unwrap();
        assert_eq!(q.limit, DEFAULT_AIBRIDGE_PAGE_LIMIT);
        let max = MAX_AIBRIDGE_PAGE_LIMIT.to_string();
        let q = parse_aibridge_sessions_query(None, None, None, None, Some(&max)).unwrap();
        assert_eq!(q.limit, MAX_AIBRIDGE_PAGE_LIMIT);
        let over = (MAX_AIBRIDGE_PAGE_LIMIT + 1).to_string();
        let e = parse_aibridge_sessions_query(None, None, None, None, Some(&over)).unwrap_err();
        assert_eq!(e.validations[0].field, "limit");
        assert!(parse_aibridge_sessions_query(None, None, None, None, Some("0")).is_err());
    }

    #[test]
    fn filters_are_checked() {
        let q = parse_aibridge_interceptions_query(
            Some("me"),
            Some("anthropic-corp"),
            Some("claude"),
            Some("2026-01-01T00:00:00Z"),
            Some("2026-02-01T00:00:00Z"),
            Some("00000000-0000-0000-0000-000000000001"),
            Some("5"),
        )
        .unwrap();
        assert_eq!(q.initiator.as_deref(), Some("me"));
        assert_eq!(q.limit, 5);
        let e = parse_aibridge_interceptions_query(
            None,
            None,
            None,
            Some("2026-02-01T00:00:00Z"),
            Some("2026-01-01T00:00:00Z"),
            Some("nope"),
            None,
        )
        .unwrap_err();
        let fields: Vec<_> = e.validations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["started_before", "after_id"]);
        let long = "x".repeat(MAX_AIBRIDGE_FILTER_BYTES + 1);
        assert!(parse_aibridge_interceptions_query(
            None,
            Some(&long),
            None,
            None,
            None,
            None,
            None
        )
        .is_err());
        let edge = "x".repeat(MAX_AIBRIDGE_FILTER_BYTES);
        assert!(parse_aibridge_interceptions_query(
            None,
            Some(&edge),
            None,
            None,
            None,
            None,
            None
        )
        .is_ok());
    }
}
