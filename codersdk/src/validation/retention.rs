//! The retention settings: `retention_days` and `auto_archive_days` (codersdk.md §15).

use super::single;
use crate::Response;

/// Largest number of days the retention settings accept (ten years); `0` turns the setting
/// off (keep forever, never archive).
pub const MAX_CHAT_RETENTION_DAYS: i32 = 3650;

fn check_days(field: &str, days: i32) -> Result<i32, Response> {
    if (0..=MAX_CHAT_RETENTION_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(single(
            "Invalid retention setting.",
            field,
            format!(
                "{field} must be between 0 and {MAX_CHAT_RETENTION_DAYS} days (0 turns it off); \
                 got {days}."
            ),
        ))
    }
}

/// Validates `PUT /chats/config/retention-days`: 0 to [`MAX_CHAT_RETENTION_DAYS`].
pub fn validate_retention_days(days: i32) -> Result<i32, Response> {
    check_days("retention_days", days)
}

/// Validates `PUT /chats/config/auto-archive-days`: 0 to [`MAX_CHAT_RETENTION_DAYS`].
pub fn validate_auto_archive_days(days: i32) -> Result<i32, Response> {
    check_days("auto_archive_days", days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_checked_at_both_edges() {
        for days in [0, 1, MAX_CHAT_RETENTION_DAYS] {
            assert_eq!(validate_retention_days(days), Ok(days));
            assert_eq!(validate_auto_archive_days(days), Ok(days));
        }
        for days in [-1, MAX_CHAT_RETENTION_DAYS + 1, i32::MIN, i32::MAX] {
            let refused = validate_retention_days(days).err();
            let fields: Vec<_> = refused
                .iter()
                .flat_map(|r| r.validations.iter().map(|v| v.field.as_str()))
                .collect();
            assert_eq!(fields, ["retention_days"], "{days}");
            let refused = validate_auto_archive_days(days).err();
            assert!(
                refused
                    .is_some_and(|r| r.validations.iter().any(|v| v.field == "auto_archive_days")),
                "{days}"
            );
        }
    }
}
