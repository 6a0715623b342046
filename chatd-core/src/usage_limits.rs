//! The calendar and precedence rules of usage limits (codersdk.md §13.3, engine.md §6.5;
//! docs/usage-limits.md): which window a period is at a given time, and which limit
//! applies to a user.
//!
//! Windows are UTC calendar units, start inclusive and end exclusive: a day from
//! midnight, a week from Monday midnight, a month from the first at midnight. The end of
//! the window is when the limit resets (`resets_at`).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use codersdk::ChatUsageLimitPeriod;

/// The window of `period` that contains `now`: `[start, end)` in UTC. An unknown period
/// (a newer server's) is read as a month, the default.
pub fn period_window(
    period: &ChatUsageLimitPeriod,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.date_naive();
    let (start, end) = match period {
        ChatUsageLimitPeriod::Day => (today, today + Duration::days(1)),
        ChatUsageLimitPeriod::Week => {
            let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
            (monday, monday + Duration::days(7))
        }
        _ => {
            let first = today.with_day(1).unwrap_or(today);
            (first, first_of_next_month(first))
        }
    };
    (midnight(start), midnight(end))
}

/// The first day of the month after the one `first` starts.
fn first_of_next_month(first: NaiveDate) -> NaiveDate {
    let (year, month) = if first.month() == 12 {
        (first.year() + 1, 1)
    } else {
        (first.year(), first.month() + 1)
    };
    // Only fails past year 262 143; 31 days on is in the next month either way.
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(first + Duration::days(31))
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
}

/// The limit that applies to a user, micro-dollars, or `None` when none does: nothing
/// while limits are off (`deployment_limit` is `None`), else the user's own override,
/// else the smallest override of the user's groups, else the deployment's limit.
pub fn effective_limit(
    deployment_limit: Option<i64>,
    user_override: Option<i64>,
    smallest_group_override: Option<i64>,
) -> Option<i64> {
    deployment_limit?;
    user_override
        .or(smallest_group_override)
        .or(deployment_limit)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn day_windows_turn_at_utc_midnight() {
        let w = period_window(
            &ChatUsageLimitPeriod::Day,
            at("2026-03-08T23:59:59.999999Z"),
        );
        assert_eq!(w, (at("2026-03-08T00:00:00Z"), at("2026-03-09T00:00:00Z")));
        let w = period_window(&ChatUsageLimitPeriod::Day, at("2026-03-09T00:00:00Z"));
        assert_eq!(w, (at("2026-03-09T00:00:00Z"), at("2026-03-10T00:00:00Z")));
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-12-06 is a Sunday, 2026-12-07 a Monday.
        let sunday = period_window(&ChatUsageLimitPeriod::Week, at("2026-12-06T12:00:00Z"));
        assert_eq!(
            sunday,
            (at("2026-11-30T00:00:00Z"), at("2026-12-07T00:00:00Z"))
        );
        let monday = period_window(&ChatUsageLimitPeriod::Week, at("2026-12-07T00:00:00Z"));
        assert_eq!(
            monday,
            (at("2026-12-07T00:00:00Z"), at("2026-12-14T00:00:00Z"))
        );
        // Across a year end.
        let w = period_window(&ChatUsageLimitPeriod::Week, at("2027-01-01T08:00:00Z"));
        assert_eq!(w, (at("2026-12-28T00:00:00Z"), at("2027-01-04T00:00:00Z")));
    }

    #[test]
    fn months_run_first_to_first_including_february_and_december() {
        let feb = period_window(&ChatUsageLimitPeriod::Month, at("2028-02-29T23:00:00Z"));
        assert_eq!(
            feb,
            (at("2028-02-01T00:00:00Z"), at("2028-03-01T00:00:00Z"))
        );
        let dec = period_window(&ChatUsageLimitPeriod::Month, at("2026-12-31T23:59:59Z"));
        assert_eq!(
            dec,
            (at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z"))
        );
        let jan = period_window(&ChatUsageLimitPeriod::Month, at("2027-01-01T00:00:00Z"));
        assert_eq!(
            jan,
            (at("2027-01-01T00:00:00Z"), at("2027-02-01T00:00:00Z"))
        );
        let unknown = ChatUsageLimitPeriod::from_wire("fortnight");
        assert_eq!(period_window(&unknown, at("2027-01-15T00:00:00Z")), jan);
    }

    #[test]
    fn precedence_is_user_then_smallest_group_then_default_and_off_wins() {
        assert_eq!(effective_limit(None, Some(5), Some(7)), None);
        assert_eq!(effective_limit(Some(100), Some(500), Some(7)), Some(500));
        assert_eq!(effective_limit(Some(100), None, Some(7)), Some(7));
        assert_eq!(effective_limit(Some(100), None, Some(700)), Some(700));
        assert_eq!(effective_limit(Some(100), None, None), Some(100));
    }
}
