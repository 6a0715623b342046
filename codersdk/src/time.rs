//! [`Timestamp`]: an RFC 3339 UTC instant formatted exactly as Coder's Go server does.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant on the wire: RFC 3339, UTC, with sub-second precision.
///
/// It writes what Go's `time.Time` JSON writes (`RFC3339Nano`: `Z` suffix, fractional
/// seconds with trailing zeros removed), so a value read from a Coder server is written
/// back byte-for-byte. It reads any RFC 3339 offset and converts it to UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

/// Seconds from the Unix epoch back to Go's zero `time.Time`, 0001-01-01T00:00:00Z.
const GO_ZERO_UNIX_SECONDS: i64 = -62_135_596_800;

impl Timestamp {
    /// Go's zero `time.Time`, `0001-01-01T00:00:00Z`: what Coder writes for a time field it
    /// has no value for when the field cannot be omitted (a struct-typed field ignores
    /// `omitempty` in Go's encoder).
    pub fn go_zero() -> Self {
        // The constant is within chrono's range, so the fallback is never taken.
        Timestamp(
            DateTime::from_timestamp(GO_ZERO_UNIX_SECONDS, 0).unwrap_or(DateTime::<Utc>::MIN_UTC),
        )
    }

    /// Whether this is [`Timestamp::go_zero`].
    pub fn is_go_zero(&self) -> bool {
        self.0.timestamp() == GO_ZERO_UNIX_SECONDS && self.0.timestamp_subsec_nanos() == 0
    }

    /// The current instant.
    pub fn now() -> Self {
        Timestamp(Utc::now())
    }

    /// The wrapped `chrono` value.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// From milliseconds since the Unix epoch; `None` when out of range.
    pub fn from_unix_millis(ms: i64) -> Option<Self> {
        DateTime::from_timestamp_millis(ms).map(Timestamp)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp(t)
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> Self {
        t.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Nanosecond precision, then trim trailing zeros like Go's RFC3339Nano.
        let s = self.0.to_rfc3339_opts(SecondsFormat::Nanos, true);
        let Some(body) = s.strip_suffix('Z') else {
            return f.write_str(&s);
        };
        match body.split_once('.') {
            Some((secs, frac)) => {
                let frac = frac.trim_end_matches('0');
                if frac.is_empty() {
                    write!(f, "{secs}Z")
                } else {
                    write!(f, "{secs}.{frac}Z")
                }
            }
            None => write!(f, "{body}Z"),
        }
    }
}

/// A string that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp: {0}")]
pub struct TimestampParseError(String);

impl FromStr for Timestamp {
    type Err = TimestampParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| TimestampParseError(e.to_string()))?;
        // RFC 3339 (and Go) only has four-digit years. An offset can push a valid local
        // time outside them in UTC, which we could then not write back.
        if !(0..=9999).contains(&t.year()) {
            return Err(TimestampParseError(format!(
                "year {} is outside 0000-9999 in UTC",
                t.year()
            )));
        }
        Ok(Timestamp(t))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl ts_rs::TS for Timestamp {
    type WithoutGenerics = Self;
    type OptionInnerType = Self;
    fn name(_: &ts_rs::Config) -> String {
        "string".to_owned()
    }
    fn inline(_: &ts_rs::Config) -> String {
        "string".to_owned()
    }
}

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        for (input, want) in [
            ("2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z"),
            ("2026-03-01T12:00:00.5Z", "2026-03-01T12:00:00.5Z"),
            ("2026-03-01T12:00:00.123456Z", "2026-03-01T12:00:00.123456Z"),
            ("2026-03-01T12:00:00.100000000Z", "2026-03-01T12:00:00.1Z"),
            ("2026-03-01T14:00:00.25+02:00", "2026-03-01T12:00:00.25Z"),
        ] {
            let t: Timestamp = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(t.to_string(), want, "{input}");
        }
    }

    #[test]
    fn go_zero_time() {
        let zero = Timestamp::go_zero();
        assert_eq!(zero.to_string(), "0001-01-01T00:00:00Z");
        assert!(zero.is_go_zero());
        assert_eq!("0001-01-01T00:00:00Z".parse::<Timestamp>(), Ok(zero));
        let later: Timestamp = "0001-01-01T00:00:00.000000001Z".parse().unwrap_or(zero);
        assert!(!later.is_go_zero());
        assert!(!Timestamp::now().is_go_zero());
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!("yesterday".parse::<Timestamp>().is_err());
        assert!(serde_json::from_str::<Timestamp>("12").is_err());
        assert!(serde_json::from_str::<Timestamp>("\"2026-13-01T00:00:00Z\"").is_err());
        // Valid locally, but outside four-digit years in UTC.
        assert!("9999-12-31T23:00:00-05:00".parse::<Timestamp>().is_err());
        assert!("0000-01-01T00:00:00+01:00".parse::<Timestamp>().is_err());
        assert!("9999-12-31T23:59:59.999999999Z"
            .parse::<Timestamp>()
            .is_ok());
    }
}
