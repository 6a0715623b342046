//! Usage limits: the deployment limit and per-user and per-group overrides.

use super::{folded, quoted, Problems};
use crate::{ChatUsageLimitPeriod, Response};

/// Period of a usage limit when the request leaves it empty.
pub const DEFAULT_USAGE_LIMIT_PERIOD: ChatUsageLimitPeriod = ChatUsageLimitPeriod::Month;

/// Largest spend limit a limit or override may set: 10^15 micro-dollars (one billion
/// dollars per period). Far above any real budget, and far below where sums of spend
/// near `i64::MAX` (so a limit is always a number a period's spend can reach).
pub const MAX_USAGE_LIMIT_MICROS: i64 = 1_000_000_000_000_000;

/// The deployment usage limit after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedUsageLimitConfig {
    /// Spend limit in micro-dollars; `None` disables limits.
    pub spend_limit_micros: Option<i64>,
    /// A known period (never [`ChatUsageLimitPeriod::Unknown`]).
    pub period: ChatUsageLimitPeriod,
}

fn check_spend_limit(v: i64, p: &mut Problems) {
    if v <= 0 {
        p.push(
            "spend_limit_micros",
            "spend_limit_micros must be a positive amount in micro-dollars (1 USD = 1000000); \
             send null to disable the limit.",
        );
    } else if v > MAX_USAGE_LIMIT_MICROS {
        p.push(
            "spend_limit_micros",
            format!(
                "spend_limit_micros may be at most {MAX_USAGE_LIMIT_MICROS} micro-dollars \
                 (1 000 000 000 USD)."
            ),
        );
    }
}

/// Validates `PUT /chats/usage-limits`: a `null` limit disables limits, otherwise
/// it must be > 0; the period is a known [`ChatUsageLimitPeriod`] (trimmed,
/// case-insensitive), [`DEFAULT_USAGE_LIMIT_PERIOD`] when absent or empty.
pub fn validate_usage_limit_config(
    spend_limit_micros: Option<i64>,
    period: Option<&str>,
) -> Result<ValidatedUsageLimitConfig, Response> {
    let mut p = Problems::default();
    if let Some(v) = spend_limit_micros {
        check_spend_limit(v, &mut p);
    }
    let folded_period = folded(period.unwrap_or_default());
    let period = if folded_period.is_empty() {
        DEFAULT_USAGE_LIMIT_PERIOD
    } else {
        match ChatUsageLimitPeriod::from_wire(&folded_period) {
            ChatUsageLimitPeriod::Unknown(_) => {
                let known: Vec<&str> = ChatUsageLimitPeriod::ALL
                    .iter()
                    .map(|x| x.as_str())
                    .collect();
                p.push(
                    "period",
                    format!(
                        "Unknown period {}; use one of: {}.",
                        quoted(&folded_period),
                        known.join(", ")
                    ),
                );
                DEFAULT_USAGE_LIMIT_PERIOD
            }
            known => known,
        }
    };
    p.finish("Invalid usage limit.")?;
    Ok(ValidatedUsageLimitConfig {
        spend_limit_micros,
        period,
    })
}

/// Validates the body of a user or group override: `spend_limit_micros` is
/// required and > 0 (delete the override to remove it).
pub fn validate_usage_limit_override(spend_limit_micros: Option<i64>) -> Result<i64, Response> {
    let mut p = Problems::default();
    match spend_limit_micros {
        Some(v) => check_spend_limit(v, &mut p),
        None => p.push(
            "spend_limit_micros",
            "spend_limit_micros is required; delete the override to remove it.",
        ),
    }
    p.finish("Invalid usage limit.")?;
    Ok(spend_limit_micros.unwrap_or_default())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::type_complexity
)]
mod tests {
    use super::*;
    use crate::validation::test_support::*;
    use proptest::prelude::*;

    #[test]
    fn usage_limit_table() {
        let cases: &[(
            Option<i64>,
            Option<&str>,
            Result<(Option<i64>, &str), Vec<&str>>,
        )] = &[
            (None, None, Ok((None, "month"))),
            (None, Some(""), Ok((None, "month"))),
            (Some(1), Some("week"), Ok((Some(1), "week"))),
            (
                Some(MAX_USAGE_LIMIT_MICROS),
                Some(" DAY "),
                Ok((Some(MAX_USAGE_LIMIT_MICROS), "day")),
            ),
            (
                Some(MAX_USAGE_LIMIT_MICROS + 1),
                None,
                Err(vec!["spend_limit_micros"]),
            ),
            (Some(i64::MAX), None, Err(vec!["spend_limit_micros"])),
            (Some(0), None, Err(vec!["spend_limit_micros"])),
            (
                Some(-5),
                Some("year"),
                Err(vec!["spend_limit_micros", "period"]),
            ),
            (None, Some("year"), Err(vec!["period"])),
        ];
        for (limit, period, want) in cases {
            match (validate_usage_limit_config(*limit, *period), want) {
                (Ok(v), Ok((l, p))) => {
                    assert_eq!((v.spend_limit_micros, v.period.as_str()), (*l, *p))
                }
                (Err(r), Err(f)) => assert_eq!(&fields(&r), f),
                (got, want) => panic!("{limit:?} {period:?}: {got:?} vs {want:?}"),
            }
        }
        assert_eq!(validate_usage_limit_override(Some(1)).unwrap(), 1);
        assert!(validate_usage_limit_override(Some(0)).is_err());
        assert!(validate_usage_limit_override(None).is_err());
    }

    proptest! {
        #[test]
        fn usage_limit_validator_never_panics(s in any::<String>()) {
            let _ = validate_usage_limit_config(Some(1), Some(&s));
        }
    }
}
