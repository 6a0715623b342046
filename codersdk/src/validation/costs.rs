//! Query parameters of the cost reports: the report window of `GET /chats/cost/{user}/summary`
//! and `GET /chats/cost/users`, and the paging and filter of the latter.

use chrono::{DateTime, Duration, Utc};

use super::{present, query_time, quoted, Problems};
use crate::{Response, Timestamp};

/// Length of the report window when `start_date` is absent: the 30 days before `end_date`.
pub const DEFAULT_COST_WINDOW_DAYS: i64 = 30;

/// Longest report window, in days (a leap year). A longer window is refused rather than
/// cut: a report must not silently cover less than it says.
pub const MAX_COST_WINDOW_DAYS: i64 = 366;

/// Page size of `GET /chats/cost/users` when `limit` is absent, empty or `0` (Coder's).
pub const DEFAULT_COST_USERS_LIMIT: i64 = 10;

/// Largest page size of `GET /chats/cost/users`.
pub const MAX_COST_USERS_LIMIT: i64 = 100;

/// Largest `offset` of `GET /chats/cost/users`: Coder's database parameter is 32-bit.
pub const MAX_COST_USERS_OFFSET: i64 = i32::MAX as i64;

/// Longest `username` filter of `GET /chats/cost/users`, in Unicode scalar values.
pub const MAX_COST_USERNAME_FILTER_CHARS: usize = 128;

const MSG_QUERY: &str = "Invalid query parameters.";

/// A validated report window: `[start, end)`, `start < end`, at most
/// [`MAX_COST_WINDOW_DAYS`] long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostWindow {
    start: Timestamp,
    end: Timestamp,
}

impl CostWindow {
    /// The window `[start, end)`, checked like [`parse_cost_window`] checks the parsed
    /// dates (`start_date` / `end_date` name the problems).
    pub fn new(start: Timestamp, end: Timestamp) -> Result<CostWindow, Response> {
        let mut p = Problems::default();
        check_order(start, end, &mut p);
        p.finish(MSG_QUERY)?;
        Ok(CostWindow { start, end })
    }

    /// Start (inclusive).
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// End (exclusive).
    pub fn end(&self) -> Timestamp {
        self.end
    }

    /// Start in Unix microseconds, rounded up: a row stamped at microsecond `t` is inside
    /// exactly when `start_micros() <= t < end_micros()`, also for bounds with nanoseconds.
    pub fn start_micros(&self) -> i64 {
        ceil_micros(self.start.as_datetime())
    }

    /// End in Unix microseconds, rounded up (see [`CostWindow::start_micros`]).
    pub fn end_micros(&self) -> i64 {
        ceil_micros(self.end.as_datetime())
    }
}

/// Microseconds since the epoch, rounded towards +∞. Years 0000–9999 (all a [`Timestamp`]
/// holds) are far inside `i64` microseconds.
fn ceil_micros(t: DateTime<Utc>) -> i64 {
    let nanos = i64::from(t.timestamp_subsec_nanos());
    let whole = t
        .timestamp()
        .saturating_mul(1_000_000)
        .saturating_add(nanos / 1000);
    if nanos % 1000 == 0 {
        whole
    } else {
        whole.saturating_add(1)
    }
}

fn check_order(start: Timestamp, end: Timestamp, p: &mut Problems) {
    if end <= start {
        p.push(
            "end_date",
            format!("end_date ({end}) must be after start_date ({start})."),
        );
    } else if end.as_datetime() - start.as_datetime() > Duration::days(MAX_COST_WINDOW_DAYS) {
        p.push(
            "end_date",
            format!(
                "The report window may be at most {MAX_COST_WINDOW_DAYS} days long; \
                 {start} to {end} is longer."
            ),
        );
    }
}

fn window(
    start_date: Option<&str>,
    end_date: Option<&str>,
    now: Timestamp,
    p: &mut Problems,
) -> Option<CostWindow> {
    let start = query_time("start_date", start_date, p);
    let end = query_time("end_date", end_date, p);
    if (present(start_date).is_some() && start.is_none())
        || (present(end_date).is_some() && end.is_none())
    {
        return None;
    }
    let end = end.unwrap_or(now);
    let start = start.unwrap_or_else(|| {
        Timestamp(
            end.as_datetime()
                .checked_sub_signed(Duration::days(DEFAULT_COST_WINDOW_DAYS))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        )
    });
    let before = p.0.len();
    check_order(start, end, p);
    (p.0.len() == before).then_some(CostWindow { start, end })
}

/// Parses `start_date` and `end_date` of the cost reports: RFC 3339 (any offset, read as
/// UTC). An absent or empty `end_date` is `now`; an absent or empty `start_date` is
/// [`DEFAULT_COST_WINDOW_DAYS`] before the end. The end must be after the start and the
/// window at most [`MAX_COST_WINDOW_DAYS`] long.
pub fn parse_cost_window(
    start_date: Option<&str>,
    end_date: Option<&str>,
    now: Timestamp,
) -> Result<CostWindow, Response> {
    let mut p = Problems::default();
    let w = window(start_date, end_date, now, &mut p);
    p.finish(MSG_QUERY)?;
    w.ok_or_else(|| Response::new(MSG_QUERY))
}

/// A validated query of `GET /chats/cost/users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostUsersQuery {
    /// The report window.
    pub window: CostWindow,
    /// Case-insensitive substring of the username or display name; `None` lists every
    /// user with usage in the window.
    pub username: Option<String>,
    /// Page size, 1 to [`MAX_COST_USERS_LIMIT`].
    pub limit: i64,
    /// Users skipped, 0 to [`MAX_COST_USERS_OFFSET`].
    pub offset: i64,
}

fn page_number(name: &str, raw: Option<&str>, max: i64, p: &mut Problems) -> Option<i64> {
    let raw = present(raw)?;
    match raw.parse::<i64>() {
        Ok(v) if (0..=max).contains(&v) => Some(v),
        _ => {
            p.push(
                name,
                format!(
                    "{name} must be a whole number from 0 to {max}, not {}.",
                    quoted(raw)
                ),
            );
            None
        }
    }
}

/// Parses the query of `GET /chats/cost/users`: the window as [`parse_cost_window`];
/// `username` trimmed (empty: no filter), at most [`MAX_COST_USERNAME_FILTER_CHARS`]
/// characters without control characters; `limit` 0 to [`MAX_COST_USERS_LIMIT`] (absent,
/// empty or `0`: [`DEFAULT_COST_USERS_LIMIT`]); `offset` 0 to [`MAX_COST_USERS_OFFSET`]
/// (default 0). Every problem is reported at once.
pub fn parse_cost_users_query(
    start_date: Option<&str>,
    end_date: Option<&str>,
    username: Option<&str>,
    limit: Option<&str>,
    offset: Option<&str>,
    now: Timestamp,
) -> Result<CostUsersQuery, Response> {
    let mut p = Problems::default();
    let window = window(start_date, end_date, now, &mut p);
    let username = username.map(str::trim).filter(|s| !s.is_empty());
    if let Some(name) = username {
        if name.chars().count() > MAX_COST_USERNAME_FILTER_CHARS {
            p.push(
                "username",
                format!("username may be at most {MAX_COST_USERNAME_FILTER_CHARS} characters."),
            );
        } else if name.chars().any(char::is_control) {
            p.push("username", "username must not contain control characters.");
        }
    }
    let limit = match page_number("limit", limit, MAX_COST_USERS_LIMIT, &mut p) {
        None | Some(0) => DEFAULT_COST_USERS_LIMIT,
        Some(v) => v,
    };
    let offset = page_number("offset", offset, MAX_COST_USERS_OFFSET, &mut p).unwrap_or(0);
    p.finish(MSG_QUERY)?;
    let window = window.ok_or_else(|| Response::new(MSG_QUERY))?;
    Ok(CostUsersQuery {
        window,
        username: username.map(str::to_owned),
        limit,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|_| Timestamp::go_zero())
    }

    fn fields(r: &Response) -> Vec<&str> {
        r.validations.iter().map(|v| v.field.as_str()).collect()
    }

    const NOW: &str = "2026-03-12T10:00:00Z";

    #[test]
    fn defaults_are_the_thirty_days_before_now() {
        let w = parse_cost_window(None, Some(""), ts(NOW)).unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(w.end(), ts(NOW));
        assert_eq!(w.start(), ts("2026-02-10T10:00:00Z"));
        // Only an end: the 30 days before it.
        let w = parse_cost_window(None, Some("2025-01-31T00:00:00Z"), ts(NOW))
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(w.start(), ts("2025-01-01T00:00:00Z"));
    }

    #[test]
    fn dates_must_be_rfc3339_and_name_their_field() {
        let err = parse_cost_window(Some("2026-01-01"), Some("yesterday"), ts(NOW))
            .err()
            .unwrap_or_else(|| Response::new(""));
        assert_eq!(fields(&err), ["start_date", "end_date"]);
        assert_eq!(err.message, MSG_QUERY);
        // Offsets are read and converted to UTC.
        let w = parse_cost_window(
            Some("2026-01-01T02:00:00+02:00"),
            Some("2026-01-02T00:00:00Z"),
            ts(NOW),
        )
        .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(w.start(), ts("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn the_end_must_follow_the_start_within_the_longest_window() {
        let start = "2025-01-01T00:00:00Z";
        for end in ["2025-01-01T00:00:00Z", "2024-12-31T23:59:59Z"] {
            let err = parse_cost_window(Some(start), Some(end), ts(NOW))
                .err()
                .unwrap_or_else(|| Response::new(""));
            assert_eq!(fields(&err), ["end_date"], "{end}");
        }
        // Exactly MAX_COST_WINDOW_DAYS is accepted, one microsecond more is not.
        let max_end = "2026-01-02T00:00:00Z";
        assert!(parse_cost_window(Some(start), Some(max_end), ts(NOW)).is_ok());
        let err = parse_cost_window(Some(start), Some("2026-01-02T00:00:00.000001Z"), ts(NOW))
            .err()
            .unwrap_or_else(|| Response::new(""));
        assert_eq!(fields(&err), ["end_date"]);
        assert!(CostWindow::new(ts(start), ts(max_end)).is_ok());
        assert!(CostWindow::new(ts(max_end), ts(start)).is_err());
    }

    #[test]
    fn micro_bounds_round_up_so_rows_compare_exactly() {
        let w = parse_cost_window(
            Some("1970-01-01T00:00:01.0000005Z"),
            Some("1970-01-01T00:00:02Z"),
            ts(NOW),
        )
        .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(w.start_micros(), 1_000_001);
        assert_eq!(w.end_micros(), 2_000_000);
        let w = parse_cost_window(
            Some("1969-12-31T23:59:59.9999995Z"),
            Some("1970-01-01T00:00:00Z"),
            ts(NOW),
        )
        .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(w.start_micros(), 0);
    }

    #[test]
    fn users_query_defaults_and_edges() {
        let q = parse_cost_users_query(None, None, Some("  "), None, None, ts(NOW))
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(q.username, None);
        assert_eq!((q.limit, q.offset), (DEFAULT_COST_USERS_LIMIT, 0));
        let q = parse_cost_users_query(None, None, Some(" Al "), Some("0"), Some("5"), ts(NOW))
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(q.username.as_deref(), Some("Al"));
        assert_eq!((q.limit, q.offset), (DEFAULT_COST_USERS_LIMIT, 5));
        let max = MAX_COST_USERS_LIMIT.to_string();
        let q = parse_cost_users_query(None, None, None, Some(&max), None, ts(NOW))
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(q.limit, MAX_COST_USERS_LIMIT);
        let max_offset = MAX_COST_USERS_OFFSET.to_string();
        assert!(parse_cost_users_query(None, None, None, None, Some(&max_offset), ts(NOW)).is_ok());
    }

    #[test]
    fn users_query_reports_every_problem() {
        let over = (MAX_COST_USERS_LIMIT + 1).to_string();
        let over_offset = (MAX_COST_USERS_OFFSET + 1).to_string();
        let long = "x".repeat(MAX_COST_USERNAME_FILTER_CHARS + 1);
        let err = parse_cost_users_query(
            Some("nope"),
            None,
            Some(&long),
            Some(&over),
            Some(&over_offset),
            ts(NOW),
        )
        .err()
        .unwrap_or_else(|| Response::new(""));
        assert_eq!(fields(&err), ["start_date", "username", "limit", "offset"]);
        for (limit, offset) in [("-1", "0"), ("ten", "0"), ("1", "-1"), ("1", "1.5")] {
            assert!(
                parse_cost_users_query(None, None, None, Some(limit), Some(offset), ts(NOW))
                    .is_err(),
                "{limit} {offset}"
            );
        }
        let exact = "x".repeat(MAX_COST_USERNAME_FILTER_CHARS);
        assert!(parse_cost_users_query(None, None, Some(&exact), None, None, ts(NOW)).is_ok());
        let err = parse_cost_users_query(None, None, Some("a\u{0}b"), None, None, ts(NOW))
            .err()
            .unwrap_or_else(|| Response::new(""));
        assert_eq!(fields(&err), ["username"]);
    }
}
