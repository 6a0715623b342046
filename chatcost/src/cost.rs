//! Per-message cost: exact decimal products, one ceiling, integer microdollars
//!.

use codersdk::{ChatMessageUsage, ModelCostConfig};
use rust_decimal::Decimal;

use crate::error::{CostError, CostErrorKind};

/// Largest cost a call can have, in microdollars (`i64::MAX`, about 9.2 trillion USD).
///
/// [`try_calculate_total_cost_micros`] reports a larger exact result as
/// [`CostErrorKind::Overflow`]; [`calculate_total_cost_micros`] saturates to this value, so
/// absurd usage never looks cheap.
pub const MAX_COST_MICROS: i64 = i64::MAX;

/// Exact cost of one model call in microdollars (1e-6 USD), Coder's rule.
///
/// Returns `None` ("unpriced") when `cost` is absent or sets no price, when `usage` has none
/// of the input, output, reasoning, cache-creation and cache-read counts (`total_tokens` and
/// `context_limit` do not count), or when no category has both a token count and a price.
/// Otherwise returns
/// `ceil(input × input_price + output × output_price + cache_read × cache_read_price +
/// cache_creation × cache_write_price)`, computed exactly and rounded **once**, up, after
/// summing; a missing count or price contributes 0. Prices are USD per million tokens, so
/// each product is already in microdollars. `reasoning_tokens` are never added: they are
/// inside `output_tokens`. `Some(0)` means priced and free.
///
/// This function never panics and never fails:
/// - invalid input (a negative price, or a negative count in one of the five token fields
///   above) gives `None`, because such a call cannot be priced; use
///   [`try_calculate_total_cost_micros`] to get the reason;
/// - a result above [`MAX_COST_MICROS`] saturates to [`MAX_COST_MICROS`].
///
/// ```
/// use chatcost::calculate_total_cost_micros;
/// use codersdk::{ChatMessageUsage, ModelCostConfig};
///
/// let usage = ChatMessageUsage { input_tokens: Some(1), ..Default::default() };
/// let cost: ModelCostConfig = serde_json::from_str(r#"{"input_price_per_million_tokens":"0.01"}"#)?;
/// // 0.01 microdollars rounds up to 1.
/// assert_eq!(calculate_total_cost_micros(&usage, Some(&cost)), Some(1));
/// assert_eq!(calculate_total_cost_micros(&usage, None), None);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn calculate_total_cost_micros(
    usage: &ChatMessageUsage,
    cost: Option<&ModelCostConfig>,
) -> Option<i64> {
    match try_calculate_total_cost_micros(usage, cost) {
        Ok(micros) => micros,
        Err(e) if e.is_overflow() => Some(MAX_COST_MICROS),
        Err(_) => None,
    }
}

/// [`calculate_total_cost_micros`] that reports invalid input instead of hiding it.
///
/// Inputs are validated before any `None` rule applies, so garbage is reported even for an
/// unpriced model:
/// - a negative price ⇒ [`CostErrorKind::InvalidPrice`] (see [`validate_cost_config`]);
/// - a negative `input_tokens`, `output_tokens`, `reasoning_tokens`,
///   `cache_creation_tokens` or `cache_read_tokens` ⇒ [`CostErrorKind::InvalidTokenCount`]
///   (`total_tokens` and `context_limit` are not read);
/// - an exact result above [`MAX_COST_MICROS`] ⇒ [`CostErrorKind::Overflow`].
pub fn try_calculate_total_cost_micros(
    usage: &ChatMessageUsage,
    cost: Option<&ModelCostConfig>,
) -> Result<Option<i64>, CostError> {
    let counts = [
        ("input_tokens", usage.input_tokens),
        ("output_tokens", usage.output_tokens),
        ("reasoning_tokens", usage.reasoning_tokens),
        ("cache_creation_tokens", usage.cache_creation_tokens),
        ("cache_read_tokens", usage.cache_read_tokens),
    ];
    for (field, count) in counts {
        check_count(field, count)?;
    }
    let Some(cost) = cost else {
        return Ok(None);
    };
    validate_cost_config(cost)?;
    if cost.is_empty() || counts.iter().all(|(_, count)| count.is_none()) {
        return Ok(None);
    }
    let pairs = [
        (usage.input_tokens, cost.input_price_per_million_tokens),
        (usage.output_tokens, cost.output_price_per_million_tokens),
        (
            usage.cache_read_tokens,
            cost.cache_read_price_per_million_tokens,
        ),
        (
            usage.cache_creation_tokens,
            cost.cache_write_price_per_million_tokens,
        ),
    ];
    let mut terms = [Term::ZERO; 4];
    let mut priced = 0;
    for (tokens, price) in pairs {
        if let (Some(tokens), Some(price), Some(slot)) = (tokens, price, terms.get_mut(priced)) {
            *slot = Term::new(tokens, price)?;
            priced += 1;
        }
    }
    if priced == 0 {
        // Usage only in unpriced categories stays distinguishable from "priced at zero".
        return Ok(None);
    }
    let terms = terms.get(..priced).unwrap_or(&[]);
    let micros = ceil_sum_fast(terms)
        .or_else(|| ceil_sum_split(terms))
        .ok_or_else(overflow)?;
    i64::try_from(micros).map(Some).map_err(|_| overflow())
}

/// Checks that no price of `cost` is negative.
///
/// A negative price is never meaningful (the price book's columns are `CHECK ≥ 0`); `0` is
/// valid and means free. The error's [`CostError::field`] is the JSON name of the first
/// offending price.
pub fn validate_cost_config(cost: &ModelCostConfig) -> Result<(), CostError> {
    for (field, price) in cost.prices() {
        if let Some(price) = price {
            check_price(field, price)?;
        }
    }
    Ok(())
}

/// Checks that no token count of `usage` (all seven fields, `total_tokens` and
/// `context_limit` included) is negative.
pub fn validate_usage(usage: &ChatMessageUsage) -> Result<(), CostError> {
    let fields = [
        ("input_tokens", usage.input_tokens),
        ("output_tokens", usage.output_tokens),
        ("total_tokens", usage.total_tokens),
        ("reasoning_tokens", usage.reasoning_tokens),
        ("cache_creation_tokens", usage.cache_creation_tokens),
        ("cache_read_tokens", usage.cache_read_tokens),
        ("context_limit", usage.context_limit),
    ];
    for (field, count) in fields {
        check_count(field, count)?;
    }
    Ok(())
}

/// Parses one price (USD per million tokens) from text: plain (`"3.75"`) or scientific
/// (`"1e-7"`), surrounding whitespace allowed, exactly, never through `f64`.
///
/// Rejects blank or non-numeric text, values that would need rounding (more than
/// [`codersdk::MAX_DECIMAL_DIGITS`] significant digits, text longer than
/// [`codersdk::MAX_DECIMAL_TEXT_LEN`]) and negative values, all as
/// [`CostErrorKind::InvalidPrice`] with the parse error as source.
pub fn parse_price(text: &str) -> Result<Decimal, CostError> {
    let price = codersdk::parse_decimal(text).map_err(|e| {
        CostError::new(CostErrorKind::InvalidPrice, format!("invalid price: {e}")).with_source(e)
    })?;
    check_price("price", price)?;
    Ok(price)
}

/// Parses a [`ModelCostConfig`] from JSON text and validates it.
///
/// Prices may be JSON numbers or decimal strings (`3.75`, `"0.0000003"`, `1e-7`); they are
/// read from their text, never through `f64`. Unknown fields are ignored. Malformed JSON is
/// [`CostErrorKind::Json`]; a price that is not a number, is inexact or is negative is
/// [`CostErrorKind::InvalidPrice`].
pub fn parse_cost_config(json: &str) -> Result<ModelCostConfig, CostError> {
    let cost: ModelCostConfig = serde_json::from_str(json).map_err(|e| {
        // Every data-level failure of this type is a price that failed to parse.
        let kind = if e.is_data() {
            CostErrorKind::InvalidPrice
        } else {
            CostErrorKind::Json
        };
        CostError::new(kind, format!("invalid cost config: {e}")).with_source(e)
    })?;
    validate_cost_config(&cost)?;
    Ok(cost)
}

/// Fills the prices `dst` lacks from `defaults` (`MergeMissingModelCostConfig`).
///
/// `defaults` absent ⇒ no change; `dst` absent ⇒ `dst` becomes a copy of `defaults`;
/// otherwise each price missing in `dst` is taken from `defaults`. A price `dst` sets,
/// `0` included, is never replaced.
pub fn merge_missing_model_cost_config(
    dst: &mut Option<ModelCostConfig>,
    defaults: Option<&ModelCostConfig>,
) {
    let Some(defaults) = defaults else {
        return;
    };
    match dst {
        Some(dst) => dst.fill_missing_from(defaults),
        None => *dst = Some(defaults.clone()),
    }
}

fn check_count(field: &'static str, count: Option<i64>) -> Result<(), CostError> {
    match count {
        Some(n) if n < 0 => Err(CostError::new(
            CostErrorKind::InvalidTokenCount,
            format!("token count {field} must not be negative (got {n})"),
        )
        .with_field(field)),
        _ => Ok(()),
    }
}

fn check_price(field: &'static str, price: Decimal) -> Result<(), CostError> {
    // Sign and zero tests read flags only; `-0` is zero, not negative.
    if price.is_sign_negative() && !price.is_zero() {
        return Err(CostError::new(
            CostErrorKind::InvalidPrice,
            format!("{field} must not be negative (got {price})"),
        )
        .with_field(field));
    }
    Ok(())
}

fn overflow() -> CostError {
    CostError::new(
        CostErrorKind::Overflow,
        format!("total cost exceeds {MAX_COST_MICROS} microdollars"),
    )
}

/// One priced bucket: `tokens × mantissa / 10^scale` microdollars, all non-negative.
#[derive(Clone, Copy)]
struct Term {
    tokens: u128,
    mantissa: u128,
    scale: u32,
}

impl Term {
    const ZERO: Term = Term {
        tokens: 0,
        mantissa: 0,
        scale: 0,
    };

    fn new(tokens: i64, price: Decimal) -> Result<Term, CostError> {
        // Both were validated non-negative; the conversions only fail on a bug, which is
        // then reported instead of wrapping.
        let tokens = u128::try_from(tokens).map_err(|_| overflow())?;
        let mantissa = u128::try_from(price.mantissa()).map_err(|_| overflow())?;
        Ok(Term {
            tokens,
            mantissa,
            scale: price.scale(),
        })
    }
}

/// Powers of ten up to 10^28, the largest [`Decimal`] scale.
// Evaluated at compile time: a bad index would fail the build, not panic at run time.
#[allow(clippy::indexing_slicing)]
const POW10: [u128; 29] = {
    let mut table = [1u128; 29];
    let mut i = 1;
    while i < 29 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

fn pow10(exp: u32) -> Option<u128> {
    POW10.get(usize::try_from(exp).ok()?).copied()
}

/// Ceiling of the exact sum when everything fits one `u128` numerator over the largest
/// scale — always the case for realistic token counts and prices. `None` if it does not fit.
fn ceil_sum_fast(terms: &[Term]) -> Option<u128> {
    let scale = terms.iter().map(|t| t.scale).max().unwrap_or(0);
    let mut numerator: u128 = 0;
    for t in terms {
        let widen = pow10(scale.checked_sub(t.scale)?)?;
        let v = t.tokens.checked_mul(t.mantissa)?.checked_mul(widen)?;
        numerator = numerator.checked_add(v)?;
    }
    if scale == 0 {
        return Some(numerator);
    }
    let denominator = pow10(scale)?;
    let whole = numerator / denominator;
    // One 128-bit division instead of two: the remainder is what `whole` leaves over.
    let exact = whole.checked_mul(denominator)? == numerator;
    // `whole < u128::MAX` whenever there is a remainder (denominator ≥ 2), so +1 is safe.
    Some(if exact { whole } else { whole + 1 })
}

/// Ceiling of the exact sum for any non-negative `i64` token count and any [`Decimal`]
/// price, without a numerator wider than `u128`: each price is split into its integer
/// part and a 28-digit fraction, and the fraction into two 14-digit halves so that every
/// product stays below 10^33. `None` only when the result exceeds `u128`, which is far
/// above [`MAX_COST_MICROS`].
fn ceil_sum_split(terms: &[Term]) -> Option<u128> {
    const HALF: u128 = 100_000_000_000_000; // 10^14
    const ONE: u128 = HALF * HALF; // 10^28: the fraction's denominator
    let mut whole: u128 = 0;
    // Sum of fractional remainders, scaled by 10^28; below 4 × 2 × 10^28.
    let mut fraction: u128 = 0;
    for t in terms {
        let unit = pow10(t.scale)?;
        let integer = t.mantissa / unit;
        let frac28 = (t.mantissa % unit).checked_mul(pow10(28u32.checked_sub(t.scale)?)?)?;
        let (hi, lo) = (frac28 / HALF, frac28 % HALF);
        // tokens < 2^63 and hi, lo < 10^14, so these products are below 10^33.
        let x = t.tokens.checked_mul(hi)?;
        let y = t.tokens.checked_mul(lo)?;
        whole = whole
            .checked_add(t.tokens.checked_mul(integer)?)?
            .checked_add(x / HALF)?
            .checked_add(y / ONE)?;
        fraction = fraction
            .checked_add((x % HALF).checked_mul(HALF)?)?
            .checked_add(y % ONE)?;
    }
    whole = whole.checked_add(fraction / ONE)?;
    if fraction % ONE != 0 {
        whole = whole.checked_add(1)?;
    }
    Some(whole)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn term(tokens: i64, price: &str) -> Term {
        Term::new(tokens, d(price)).unwrap()
    }

    #[test]
    fn pow10_table_is_exact_to_the_largest_scale() {
        assert_eq!(pow10(0), Some(1));
        assert_eq!(pow10(28), Some(10u128.pow(28)));
        assert_eq!(pow10(29), None);
    }

    #[test]
    fn both_paths_agree_on_small_values() {
        let terms = [
            term(101, "1.23"),
            term(201, "4.56"),
            term(1005, "0.7"),
            term(33, "7.89"),
        ];
        assert_eq!(ceil_sum_fast(&terms), Some(2005));
        assert_eq!(ceil_sum_split(&terms), Some(2005));
    }

    #[test]
    fn split_path_carries_every_fraction_half() {
        // Fraction only in the high 14 digits, only in the low 14, and both.
        for (terms, want) in [
            (vec![term(1, "0.5")], 1),
            (vec![term(1, "0.5"), term(1, "0.5")], 1),
            (vec![term(3, "0.00000000000000000000000001")], 1),
            (
                vec![term(1, "0.99999999999999"), term(1, "0.00000000000001")],
                1,
            ),
            (
                vec![term(1, "0.99999999999999"), term(1, "0.000000000000009")],
                1,
            ),
            (
                vec![term(1, "0.99999999999999"), term(1, "0.000000000000011")],
                2,
            ),
            (vec![term(7, "0.1428571428571428571428571428")], 1),
        ] {
            assert_eq!(ceil_sum_split(&terms), Some(want), "{:?}", terms.len());
            assert_eq!(ceil_sum_fast(&terms), Some(want));
        }
    }

    proptest::proptest! {
        #[test]
        fn split_and_fast_paths_agree(
            parts in proptest::collection::vec((0i64..i64::MAX, 0i64..i64::MAX, 0u32..=28), 1..=4)
        ) {
            let terms: Vec<Term> = parts
                .iter()
                .map(|&(t, m, s)| Term::new(t, Decimal::new(m, s.min(28))).unwrap())
                .collect();
            if let Some(fast) = ceil_sum_fast(&terms) {
                proptest::prop_assert_eq!(ceil_sum_split(&terms), Some(fast));
            }
            let small: Vec<Term> = parts
                .iter()
                .map(|&(t, m, s)| Term::new(t % 1_000_000, Decimal::new(m % 1_000_000, s % 21)).unwrap())
                .collect();
            // Below 10^12 × 10^20 per term the fast path always applies.
            let fast = ceil_sum_fast(&small);
            proptest::prop_assert!(fast.is_some());
            proptest::prop_assert_eq!(ceil_sum_split(&small), fast);
        }
    }

    #[test]
    fn split_path_is_exact_where_decimal_multiplication_rounds() {
        // 9_000_000_000_000_000_001 × 0.1234567890123456789 has 38 significant digits;
        // rust_decimal rounds the product, the split path does not.
        let t = term(9_000_000_000_000_000_001, "0.1234567890123456789");
        // exact: 1111111101111111110.2234567890123456789
        assert_eq!(ceil_sum_split(&[t]), Some(1_111_111_101_111_111_111));
        // A product whose only non-zero digit is the 29th fractional one still rounds up.
        let t = term(i64::MAX, "0.0000000000000000000000000001");
        assert_eq!(ceil_sum_split(&[t]), Some(1));
        assert_eq!(ceil_sum_fast(&[t]), Some(1));
    }

    #[test]
    fn the_largest_inputs_never_wrap() {
        let max = Decimal::MAX.mantissa() as u128;
        // ≈ 7.3e47 micros: beyond u128, reported as None (then as overflow), never wrapped.
        let t = Term {
            tokens: i64::MAX as u128,
            mantissa: max,
            scale: 0,
        };
        assert_eq!(ceil_sum_fast(&[t]), None);
        assert_eq!(ceil_sum_split(&[t]), None);
        // ≈ 7.3e19 micros per term: fits u128 through the split path only.
        let t = Term {
            tokens: i64::MAX as u128,
            mantissa: max,
            scale: 28,
        };
        assert_eq!(ceil_sum_fast(&[t]), None);
        let one = ceil_sum_split(&[t]).unwrap();
        assert_eq!(one, 73_075_081_866_545_145_903);
        // The four fractions (0.2614… each) sum to 1.0457…, so the exact total is
        // …609.0457… and one ceiling gives …610; ceiling each term first would give …612.
        assert_eq!(
            ceil_sum_split(&[t, t, t, t]),
            Some(292_300_327_466_180_583_610)
        );
    }
}
