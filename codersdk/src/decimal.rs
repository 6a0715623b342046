//! Exact decimal prices on the wire.
//!
//! Coder writes prices as decimal strings (`"3.75"`); older clients and hand-written
//! configs send JSON numbers (`3.75`, `1e-7`). Both are read from their source text, never
//! through `f64`, so `0.0000003` stays exactly `0.0000003`.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::value::RawValue;

/// Most significant digits an exact price may have (the precision of [`Decimal`]).
pub const MAX_DECIMAL_DIGITS: usize = 28;

/// Longest decimal text accepted, in bytes. Longer input is rejected before parsing.
pub const MAX_DECIMAL_TEXT_LEN: usize = 128;

/// Why a text is not an exact decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecimalError {
    /// Empty or blank.
    #[error("decimal is empty")]
    Empty,
    /// Longer than [`MAX_DECIMAL_TEXT_LEN`].
    #[error("decimal text is longer than {MAX_DECIMAL_TEXT_LEN} characters")]
    TooLong,
    /// Not a number.
    #[error("{0:?} is not a decimal number")]
    Invalid(String),
    /// More significant digits than [`MAX_DECIMAL_DIGITS`], or out of range.
    #[error("{0:?} cannot be represented exactly (more than {MAX_DECIMAL_DIGITS} significant digits or out of range)")]
    Inexact(String),
}

/// Parses a decimal from text: plain (`"3.75"`) or scientific (`"1e-7"`), surrounding
/// whitespace allowed. Never rounds: input that would need rounding is an error.
pub fn parse_decimal(text: &str) -> Result<Decimal, DecimalError> {
    if text.len() > MAX_DECIMAL_TEXT_LEN {
        return Err(DecimalError::TooLong);
    }
    let t = text.trim();
    if t.is_empty() {
        return Err(DecimalError::Empty);
    }
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let unsigned = mantissa.strip_prefix(['-', '+']).unwrap_or(mantissa);
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(DecimalError::Invalid(t.to_owned()));
    }
    let exp: i64 = match exponent {
        Some(e) => e.parse().map_err(|_| DecimalError::Invalid(t.to_owned()))?,
        None => 0,
    };
    // Significant digits: strip leading zeros of the whole digit string and trailing zeros.
    let digits: String = format!("{int_part}{frac_part}");
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if significant.len() > MAX_DECIMAL_DIGITS {
        return Err(DecimalError::Inexact(t.to_owned()));
    }
    if significant.is_empty() {
        // Zero with any exponent is zero; the scaling loops below would otherwise run once
        // per unit of a huge exponent without ever overflowing.
        return Ok(Decimal::ZERO);
    }
    // Scale after applying the exponent: fractional digits minus exponent. A non-zero
    // value overflows i128 (or runs out of zeros) within a few dozen steps either way.
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| DecimalError::TooLong)?;
    let scale = frac_len
        .checked_sub(exp)
        .ok_or_else(|| DecimalError::Inexact(t.to_owned()))?;
    let negative = mantissa.starts_with('-');
    let mut value: i128 = 0;
    for b in digits.trim_start_matches('0').bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or_else(|| DecimalError::Inexact(t.to_owned()))?;
    }
    // Normalise the scale into [0, 28] by multiplying or dropping only zeros.
    let mut scale = scale;
    while scale < 0 {
        value = value
            .checked_mul(10)
            .ok_or_else(|| DecimalError::Inexact(t.to_owned()))?;
        scale += 1;
    }
    while scale > 28 {
        if value % 10 != 0 {
            return Err(DecimalError::Inexact(t.to_owned()));
        }
        value /= 10;
        scale -= 1;
    }
    if negative {
        value = -value;
    }
    let scale = u32::try_from(scale).map_err(|_| DecimalError::Inexact(t.to_owned()))?;
    Decimal::try_from_i128_with_scale(value, scale)
        .map(|d| d.normalize())
        .map_err(|_| DecimalError::Inexact(t.to_owned()))
}

/// Writes a decimal as Coder does: a string, no exponent, no trailing zeros.
pub fn format_decimal(d: &Decimal) -> String {
    d.normalize().to_string()
}

fn decimal_from_raw<E: serde::de::Error>(raw: &RawValue) -> Result<Decimal, E> {
    let text = raw.get().trim();
    if text.starts_with('"') {
        // A JSON string: decode escapes properly, then parse.
        let s: String = serde_json::from_str(text).map_err(E::custom)?;
        parse_decimal(&s).map_err(E::custom)
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        parse_decimal(text).map_err(E::custom)
    } else {
        Err(E::custom(format!(
            "expected a decimal number or decimal string, found {}",
            text.chars().take(32).collect::<String>()
        )))
    }
}

/// serde helpers for `Option<Decimal>` fields: read numbers or strings, write strings.
pub mod option {
    use super::*;

    /// Writes `Some` as a decimal string and `None` as `null`.
    pub fn serialize<S: Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&format_decimal(d)),
            None => s.serialize_none(),
        }
    }

    /// Reads `null`, a JSON number or a decimal string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let raw = Option::<Box<RawValue>>::deserialize(d)?;
        match raw {
            None => Ok(None),
            Some(r) if r.get().trim() == "null" => Ok(None),
            Some(r) => decimal_from_raw(&r).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        parse_decimal(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_exactly() {
        assert_eq!(format_decimal(&d("0.0000003")), "0.0000003");
        assert_eq!(format_decimal(&d("1e-7")), "0.0000001");
        assert_eq!(format_decimal(&d("1E+3")), "1000");
        assert_eq!(format_decimal(&d(" 3.750 ")), "3.75");
        assert_eq!(format_decimal(&d("-2.5")), "-2.5");
        assert_eq!(format_decimal(&d(".5")), "0.5");
        assert_eq!(format_decimal(&d("0")), "0");
        assert_eq!(
            format_decimal(&d("0.1000000000000000000000000000000000")),
            "0.1"
        );
        assert_eq!(
            format_decimal(&d("1234567890123456789012345678")),
            "1234567890123456789012345678"
        );
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(parse_decimal(""), Err(DecimalError::Empty));
        assert_eq!(parse_decimal("  "), Err(DecimalError::Empty));
        assert!(matches!(
            parse_decimal("abc"),
            Err(DecimalError::Invalid(_))
        ));
        assert!(matches!(
            parse_decimal("1.2.3"),
            Err(DecimalError::Invalid(_))
        ));
        assert!(matches!(
            parse_decimal("NaN"),
            Err(DecimalError::Invalid(_))
        ));
        assert!(matches!(parse_decimal("1e"), Err(DecimalError::Invalid(_))));
        assert!(matches!(parse_decimal("."), Err(DecimalError::Invalid(_))));
        // 29 significant digits cannot be exact.
        assert!(matches!(
            parse_decimal("1.2345678901234567890123456789"),
            Err(DecimalError::Inexact(_))
        ));
        assert!(matches!(
            parse_decimal("1e100"),
            Err(DecimalError::Inexact(_))
        ));
        assert!(matches!(
            parse_decimal("1e-40"),
            Err(DecimalError::Inexact(_))
        ));
        assert!(matches!(
            parse_decimal("1e999999999999999999999"),
            Err(DecimalError::Invalid(_))
        ));
        assert_eq!(parse_decimal(&"1".repeat(300)), Err(DecimalError::TooLong));
        assert!(matches!(
            parse_decimal("1e-9223372036854775808"),
            Err(DecimalError::Inexact(_))
        ));
        assert!(matches!(
            parse_decimal("1e9223372036854775807"),
            Err(DecimalError::Inexact(_))
        ));
    }

    #[test]
    fn zero_with_huge_exponent_is_zero_at_once() {
        assert_eq!(parse_decimal("0e-999999999999"), Ok(Decimal::ZERO));
        assert_eq!(parse_decimal("0.000e999999999999999999"), Ok(Decimal::ZERO));
        assert_eq!(parse_decimal("-0"), Ok(Decimal::ZERO));
    }

    #[derive(serde::Deserialize, serde::Serialize)]
    struct P {
        #[serde(default, with = "option")]
        p: Option<Decimal>,
    }

    #[test]
    fn serde_reads_numbers_and_strings_writes_strings() {
        for (input, want) in [
            (r#"{"p":3.75}"#, r#"{"p":"3.75"}"#),
            (r#"{"p":"3.75"}"#, r#"{"p":"3.75"}"#),
            (r#"{"p":1e-7}"#, r#"{"p":"0.0000001"}"#),
            (r#"{"p":0.0000003}"#, r#"{"p":"0.0000003"}"#),
            (r#"{"p":null}"#, r#"{"p":null}"#),
            (r#"{}"#, r#"{"p":null}"#),
        ] {
            let v: P = serde_json::from_str(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                serde_json::to_string(&v).unwrap_or_default(),
                want,
                "{input}"
            );
        }
        for bad in [
            r#"{"p":true}"#,
            r#"{"p":"x"}"#,
            r#"{"p":[1]}"#,
            r#"{"p":"1e"}"#,
        ] {
            assert!(serde_json::from_str::<P>(bad).is_err(), "{bad}");
        }
    }
}
