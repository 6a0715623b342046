//! Small serde helpers for Go-compatible presence rules.

use serde::{Deserialize, Deserializer};

/// Reads `null` as the type's default. Go writes a nil slice or map as `null`; we promise
/// our own output never does, and tolerate it on input.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Reads a timestamp; `null` is Go's zero time ([`crate::Timestamp::go_zero`]), which is
/// also what an absent field means (pair with `default = "Timestamp::go_zero"`).
pub(crate) fn null_as_go_zero<'de, D>(d: D) -> Result<crate::Timestamp, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<crate::Timestamp>::deserialize(d)?.unwrap_or_else(crate::Timestamp::go_zero))
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

pub(crate) fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

/// Writes `Option<f64>` the way Go's `encoding/json` writes a float64: plain decimal
/// (`1`, `0.7`, `0.000001`) for magnitudes in [1e-6, 1e21), exponent form (`1e-7`, `1e+21`)
/// outside, shortest digits that round-trip. Non-finite values are an error, as in Go.
pub(crate) mod go_float {
    use serde::Serializer;

    /// Formats a finite float like Go; `None` for NaN and infinities.
    pub(crate) fn format(f: f64) -> Option<String> {
        if !f.is_finite() {
            return None;
        }
        let abs = f.abs();
        if abs == 0.0 || (1e-6..1e21).contains(&abs) {
            // Rust's Display writes the shortest round-trip digits without an exponent.
            return Some(format!("{f}"));
        }
        let e = format!("{f:e}");
        Some(match e.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => e,
        })
    }

    pub(crate) fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(f) => {
                let text = format(*f).ok_or_else(|| {
                    serde::ser::Error::custom(format!("cannot encode {f} as a JSON number"))
                })?;
                let raw = serde_json::value::RawValue::from_string(text)
                    .map_err(serde::ser::Error::custom)?;
                serde::Serialize::serialize(&raw, s)
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn matches_go() {
            for (f, want) in [
                (1.0, "1"),
                (0.7, "0.7"),
                (0.000001, "0.000001"),
                (1e-7, "1e-7"),
                (1.5e-7, "1.5e-7"),
                (1e20, "100000000000000000000"),
                (1e21, "1e+21"),
                (-2.0, "-2"),
                (0.0, "0"),
                (123456789.125, "123456789.125"),
            ] {
                assert_eq!(super::format(f).as_deref(), Some(want), "{f}");
            }
            assert_eq!(super::format(f64::NAN), None);
            assert_eq!(super::format(f64::INFINITY), None);
        }
    }
}

/// Reads an optional enum where `""` means absent (Go omits empty enum strings on output,
/// so an empty string must not come back as an unknown value).
pub(crate) fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}
