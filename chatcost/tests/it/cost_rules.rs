//! Costing: every vector of core.md §C.3 and of Coder's test (fixtures/cost), bad input,
//! limits, and properties against an independent exact computation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::str::FromStr;

use chatcost::{
    calculate_total_cost_micros, merge_missing_model_cost_config, parse_cost_config, parse_price,
    try_calculate_total_cost_micros, validate_cost_config, validate_usage, CostErrorKind,
    MAX_COST_MICROS,
};
use chatd_test_support::fixtures::read_testdata_string;
use codersdk::{ChatMessageUsage, ModelCostConfig};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Prices in the order input, output, cache_read, cache_write.
fn prices(p: [Option<&str>; 4]) -> ModelCostConfig {
    let get = |s: Option<&str>| s.map(|s| parse_price(s).unwrap());
    ModelCostConfig {
        input_price_per_million_tokens: get(p[0]),
        output_price_per_million_tokens: get(p[1]),
        cache_read_price_per_million_tokens: get(p[2]),
        cache_write_price_per_million_tokens: get(p[3]),
    }
}

#[derive(Default, Clone, Copy)]
struct U {
    input: Option<i64>,
    output: Option<i64>,
    total: Option<i64>,
    reasoning: Option<i64>,
    cache_creation: Option<i64>,
    cache_read: Option<i64>,
    ctx: Option<i64>,
}

fn usage(u: U) -> ChatMessageUsage {
    ChatMessageUsage {
        input_tokens: u.input,
        output_tokens: u.output,
        total_tokens: u.total,
        reasoning_tokens: u.reasoning,
        cache_creation_tokens: u.cache_creation,
        cache_read_tokens: u.cache_read,
        context_limit: u.ctx,
    }
}

#[test]
fn core_md_c3_vectors() {
    let full = U {
        input: Some(101),
        output: Some(201),
        reasoning: Some(52),
        cache_read: Some(1005),
        cache_creation: Some(33),
        total: Some(1391),
        ctx: Some(4096),
    };
    let partial = U {
        input: Some(1234),
        output: Some(999),
        reasoning: Some(111),
        cache_read: Some(500),
        cache_creation: Some(250),
        ..U::default()
    };
    let cases: Vec<(U, Option<ModelCostConfig>, Option<i64>)> = vec![
        (
            U {
                input: Some(1000),
                ..U::default()
            },
            None,
            None,
        ),
        (
            U {
                total: Some(1234),
                ctx: Some(8192),
                ..U::default()
            },
            Some(prices([Some("3"), None, None, None])),
            None,
        ),
        (
            U {
                input: Some(1),
                ..U::default()
            },
            Some(prices([Some("0.01"), None, None, None])),
            Some(1),
        ),
        (
            U {
                input: Some(1000),
                ..U::default()
            },
            Some(prices([Some("3"), None, None, None])),
            Some(3000),
        ),
        (
            U {
                output: Some(500),
                ..U::default()
            },
            Some(prices([None, Some("15"), None, None])),
            Some(7500),
        ),
        (
            U {
                output: Some(500),
                reasoning: Some(200),
                ..U::default()
            },
            Some(prices([None, Some("15"), None, None])),
            Some(7500),
        ),
        (
            U {
                cache_read: Some(10000),
                ..U::default()
            },
            Some(prices([None, None, Some("0.3"), None])),
            Some(3000),
        ),
        (
            U {
                cache_creation: Some(5000),
                ..U::default()
            },
            Some(prices([None, None, None, Some("3.75")])),
            Some(18750),
        ),
        (
            full,
            Some(prices([
                Some("1.23"),
                Some("4.56"),
                Some("0.7"),
                Some("7.89"),
            ])),
            Some(2005),
        ),
        (
            partial,
            Some(prices([Some("2.5"), None, None, None])),
            Some(3085),
        ),
        (
            U {
                input: Some(0),
                ..U::default()
            },
            Some(prices([Some("3"), None, None, None])),
            Some(0),
        ),
        (
            U {
                input: Some(1000),
                ..U::default()
            },
            Some(prices([None, Some("15"), None, None])),
            None,
        ),
        (
            U {
                input: Some(42),
                ..U::default()
            },
            Some(ModelCostConfig::default()),
            None,
        ),
    ];
    assert_eq!(cases.len(), 13);
    for (i, (u, cost, want)) in cases.into_iter().enumerate() {
        let got = calculate_total_cost_micros(&usage(u), cost.as_ref());
        assert_eq!(got, want, "case {i}");
        assert_eq!(
            try_calculate_total_cost_micros(&usage(u), cost.as_ref()).unwrap(),
            want,
            "case {i}"
        );
    }
}

#[test]
fn coder_test_vectors_fixture() {
    let text = read_testdata_string("cost/coder-chatcost-vectors.json");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 13);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let u: ChatMessageUsage = serde_json::from_value(case["usage"].clone()).unwrap();
        let cost = match &case["cost"] {
            serde_json::Value::Null => None,
            serde_json::Value::Object(o) => {
                let get = |k: &str| o.get(k).map(|v| parse_price(v.as_str().unwrap()).unwrap());
                Some(ModelCostConfig {
                    input_price_per_million_tokens: get("input"),
                    output_price_per_million_tokens: get("output"),
                    cache_read_price_per_million_tokens: get("cache_read"),
                    cache_write_price_per_million_tokens: get("cache_write"),
                })
            }
            other => panic!("{name}: cost {other}"),
        };
        let want = case["want_micros"].as_i64();
        assert_eq!(
            calculate_total_cost_micros(&u, cost.as_ref()),
            want,
            "{name}"
        );
        // The exact sum before the one ceiling, where the fixture gives it.
        if let (Some(exact), Some(cost)) =
            (case.get("exact_micros").and_then(|v| v.as_str()), &cost)
        {
            let sum = [
                (u.input_tokens, cost.input_price_per_million_tokens),
                (u.output_tokens, cost.output_price_per_million_tokens),
                (
                    u.cache_read_tokens,
                    cost.cache_read_price_per_million_tokens,
                ),
                (
                    u.cache_creation_tokens,
                    cost.cache_write_price_per_million_tokens,
                ),
            ]
            .into_iter()
            .map(|(t, p)| Decimal::from(t.unwrap_or(0)) * p.unwrap_or_default())
            .sum::<Decimal>();
            assert_eq!(sum, d(exact), "{name}");
        }
    }
}

#[test]
fn rounding_happens_once_after_summing() {
    // Three terms of 0.4 micros each: per-term ceiling would give 3, one ceiling gives 2.
    let u = usage(U {
        input: Some(4),
        output: Some(4),
        cache_read: Some(4),
        ..U::default()
    });
    let c = prices([Some("0.1"), Some("0.1"), Some("0.1"), None]);
    assert_eq!(calculate_total_cost_micros(&u, Some(&c)), Some(2));
    // Ceiling, not half-away-from-zero (Coder's older rule): 2.1 → 3.
    let u = usage(U {
        input: Some(21),
        ..U::default()
    });
    assert_eq!(
        calculate_total_cost_micros(&u, Some(&prices([Some("0.1"), None, None, None]))),
        Some(3)
    );
    // Exact: 3 × 0.0000003 is 0.0000009, not 9.000000000000001e-7.
    let u = usage(U {
        input: Some(3),
        ..U::default()
    });
    let c = prices([Some("0.0000003"), None, None, None]);
    assert_eq!(calculate_total_cost_micros(&u, Some(&c)), Some(1));
    let u = usage(U {
        input: Some(10_000_000),
        ..U::default()
    });
    let c = prices([Some("1e-7"), None, None, None]);
    assert_eq!(calculate_total_cost_micros(&u, Some(&c)), Some(1));
}

#[test]
fn unpriced_is_not_free() {
    let zero = prices([Some("0"), Some("0"), None, None]);
    let u = usage(U {
        input: Some(1000),
        output: Some(10),
        ..U::default()
    });
    assert_eq!(calculate_total_cost_micros(&u, Some(&zero)), Some(0));
    assert_eq!(calculate_total_cost_micros(&u, None), None);
    assert_eq!(
        calculate_total_cost_micros(&ChatMessageUsage::default(), Some(&zero)),
        None
    );
    // Reasoning alone is usage (rule 3) but never priced (rule 4).
    let r = usage(U {
        reasoning: Some(10),
        ..U::default()
    });
    assert_eq!(calculate_total_cost_micros(&r, Some(&zero)), None);
}

#[test]
fn negative_input_is_rejected_or_unpriced() {
    let c = prices([Some("3"), None, None, None]);
    for (field, u) in [
        (
            "input_tokens",
            U {
                input: Some(-1),
                ..U::default()
            },
        ),
        (
            "output_tokens",
            U {
                input: Some(1),
                output: Some(-5),
                ..U::default()
            },
        ),
        (
            "reasoning_tokens",
            U {
                input: Some(1),
                reasoning: Some(i64::MIN),
                ..U::default()
            },
        ),
        (
            "cache_creation_tokens",
            U {
                cache_creation: Some(-1),
                ..U::default()
            },
        ),
        (
            "cache_read_tokens",
            U {
                cache_read: Some(-1),
                ..U::default()
            },
        ),
    ] {
        let err = try_calculate_total_cost_micros(&usage(u), Some(&c)).unwrap_err();
        assert_eq!(err.kind(), CostErrorKind::InvalidTokenCount, "{field}");
        assert_eq!(err.field(), Some(field));
        assert!(err.is_invalid_usage());
        assert!(err.to_string().contains("must not be negative"), "{err}");
        assert_eq!(calculate_total_cost_micros(&usage(u), Some(&c)), None);
        // Rejected even when the model is unpriced.
        assert!(try_calculate_total_cost_micros(&usage(u), None).is_err());
    }
    // total_tokens and context_limit are not read by costing, but validate_usage checks them.
    let u = usage(U {
        input: Some(1),
        total: Some(-1),
        ctx: Some(-1),
        ..U::default()
    });
    assert_eq!(
        try_calculate_total_cost_micros(&u, Some(&c)).unwrap(),
        Some(3)
    );
    assert_eq!(
        validate_usage(&u).unwrap_err().field(),
        Some("total_tokens")
    );
    let u = usage(U {
        ctx: Some(-1),
        ..U::default()
    });
    assert_eq!(
        validate_usage(&u).unwrap_err().field(),
        Some("context_limit")
    );
    assert!(validate_usage(&usage(U {
        input: Some(0),
        ctx: Some(i64::MAX),
        ..U::default()
    }))
    .is_ok());

    let neg = ModelCostConfig {
        output_price_per_million_tokens: Some(d("-0.5")),
        ..Default::default()
    };
    let err = try_calculate_total_cost_micros(
        &usage(U {
            input: Some(1),
            ..U::default()
        }),
        Some(&neg),
    )
    .unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::InvalidPrice);
    assert_eq!(err.field(), Some("output_price_per_million_tokens"));
    assert_eq!(
        err.to_string(),
        "output_price_per_million_tokens must not be negative (got -0.5)"
    );
    assert_eq!(
        calculate_total_cost_micros(
            &usage(U {
                input: Some(1),
                ..U::default()
            }),
            Some(&neg)
        ),
        None
    );
    assert!(validate_cost_config(&neg).is_err());
    // Negative zero is zero.
    let negzero = ModelCostConfig {
        input_price_per_million_tokens: Some(-Decimal::ZERO),
        ..Default::default()
    };
    assert!(validate_cost_config(&negzero).is_ok());
    assert_eq!(
        calculate_total_cost_micros(
            &usage(U {
                input: Some(5),
                ..U::default()
            }),
            Some(&negzero)
        ),
        Some(0)
    );
}

#[test]
fn max_cost_micros_edge() {
    let one = prices([Some("1"), Some("1"), Some("1"), Some("1")]);
    let at = usage(U {
        input: Some(MAX_COST_MICROS),
        ..U::default()
    });
    assert_eq!(
        try_calculate_total_cost_micros(&at, Some(&one)).unwrap(),
        Some(MAX_COST_MICROS)
    );
    let over = usage(U {
        input: Some(MAX_COST_MICROS),
        output: Some(1),
        ..U::default()
    });
    let err = try_calculate_total_cost_micros(&over, Some(&one)).unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::Overflow);
    assert!(err.is_overflow());
    assert_eq!(
        calculate_total_cost_micros(&over, Some(&one)),
        Some(MAX_COST_MICROS)
    );
    // A fraction above the limit also overflows: MAX + 0.5 rounds up past it.
    let half = prices([Some("1"), Some("0.5"), None, None]);
    let u = usage(U {
        input: Some(MAX_COST_MICROS),
        output: Some(1),
        ..U::default()
    });
    assert!(try_calculate_total_cost_micros(&u, Some(&half))
        .unwrap_err()
        .is_overflow());
    // MAX − 1 + 0.5 rounds up exactly to the limit.
    let u = usage(U {
        input: Some(MAX_COST_MICROS - 1),
        output: Some(1),
        ..U::default()
    });
    assert_eq!(
        try_calculate_total_cost_micros(&u, Some(&half)).unwrap(),
        Some(MAX_COST_MICROS)
    );
    // Absurd counts with absurd prices in every bucket: reported, never wrapped.
    let huge = ModelCostConfig {
        input_price_per_million_tokens: Some(Decimal::MAX),
        output_price_per_million_tokens: Some(Decimal::MAX),
        cache_read_price_per_million_tokens: Some(Decimal::MAX),
        cache_write_price_per_million_tokens: Some(Decimal::MAX),
    };
    let all = usage(U {
        input: Some(i64::MAX),
        output: Some(i64::MAX),
        cache_read: Some(i64::MAX),
        cache_creation: Some(i64::MAX),
        ..U::default()
    });
    assert!(try_calculate_total_cost_micros(&all, Some(&huge))
        .unwrap_err()
        .is_overflow());
    assert_eq!(
        calculate_total_cost_micros(&all, Some(&huge)),
        Some(MAX_COST_MICROS)
    );
    // Huge counts at realistic prices are exact.
    let u = usage(U {
        input: Some(i64::MAX),
        ..U::default()
    });
    let tiny = prices([Some("0.000001"), None, None, None]);
    assert_eq!(
        calculate_total_cost_micros(&u, Some(&tiny)),
        Some(9_223_372_036_855)
    );
}

#[test]
fn price_text_is_parsed_exactly_or_rejected() {
    for (text, want) in [
        ("0.0000003", "0.0000003"),
        ("1e-7", "0.0000001"),
        ("3.75", "3.75"),
        (" 3.75 ", "3.75"),
        ("\t2.5\n", "2.5"),
        ("1E+2", "100"),
        ("0", "0"),
        ("0.000", "0"),
        (
            "1234567890123456789012345678",
            "1234567890123456789012345678",
        ),
    ] {
        assert_eq!(parse_price(text).unwrap(), d(want), "{text:?}");
    }
    for text in [
        "", "  ", "abc", "NaN", "inf", "1.2.3", "1e", "--1", "0x10", "1,5", "$3",
    ] {
        let err = parse_price(text).unwrap_err();
        assert_eq!(err.kind(), CostErrorKind::InvalidPrice, "{text:?}");
        assert!(std::error::Error::source(&err).is_some(), "{text:?}");
    }
    let err = parse_price("-1").unwrap_err();
    assert!(err.to_string().contains("must not be negative"), "{err}");
    // Hundreds of digits: rejected by length, not rounded and not a panic.
    let long = format!("0.{}", "3".repeat(300));
    assert!(parse_price(&long).unwrap_err().is_invalid_price());
    assert!(parse_price(&"9".repeat(300))
        .unwrap_err()
        .is_invalid_price());
    // 29 significant digits need rounding: rejected. 28 are fine (MAX_DECIMAL_DIGITS).
    assert!(parse_price("1.2345678901234567890123456789").is_err());
    assert!(parse_price("1.234567890123456789012345678").is_ok());
    assert_eq!(codersdk::MAX_DECIMAL_DIGITS, 28);
    // Text length edge (codersdk::MAX_DECIMAL_TEXT_LEN counts the untrimmed text).
    let max = codersdk::MAX_DECIMAL_TEXT_LEN;
    let at_limit = format!("{}1", " ".repeat(max - 1));
    assert_eq!(parse_price(&at_limit).unwrap(), Decimal::ONE);
    let over = format!("{}1", " ".repeat(max));
    assert!(parse_price(&over).unwrap_err().is_invalid_price());
    // Exponents out of range.
    assert!(parse_price("1e100").is_err());
    assert!(parse_price("1e-100").is_err());
    assert!(parse_price("1e99999999999999999999").is_err());
}

#[test]
fn cost_config_json_is_exact_and_validated() {
    let c = parse_cost_config(
        r#"{"input_price_per_million_tokens": 0.0000003, "output_price_per_million_tokens": "1e-7",
            "cache_read_price_per_million_tokens": 3.75, "cache_write_price_per_million_tokens": null,
            "unknown": true}"#,
    )
    .unwrap();
    assert_eq!(c.input_price_per_million_tokens, Some(d("0.0000003")));
    assert_eq!(c.output_price_per_million_tokens, Some(d("0.0000001")));
    assert_eq!(c.cache_read_price_per_million_tokens, Some(d("3.75")));
    assert_eq!(c.cache_write_price_per_million_tokens, None);
    for (json, kind) in [
        (
            r#"{"input_price_per_million_tokens": -1}"#,
            CostErrorKind::InvalidPrice,
        ),
        (
            r#"{"input_price_per_million_tokens": "-0.1"}"#,
            CostErrorKind::InvalidPrice,
        ),
        (
            r#"{"input_price_per_million_tokens": "abc"}"#,
            CostErrorKind::InvalidPrice,
        ),
        (
            r#"{"input_price_per_million_tokens": true}"#,
            CostErrorKind::InvalidPrice,
        ),
        (
            r#"{"input_price_per_million_tokens": 1e400}"#,
            CostErrorKind::InvalidPrice,
        ),
        (
            r#"{"input_price_per_million_tokens": 1"#,
            CostErrorKind::Json,
        ),
        ("", CostErrorKind::Json),
    ] {
        assert_eq!(parse_cost_config(json).unwrap_err().kind(), kind, "{json}");
    }
    let err = parse_cost_config(r#"{"output_price_per_million_tokens": -2}"#).unwrap_err();
    assert_eq!(err.field(), Some("output_price_per_million_tokens"));
}

#[test]
fn merge_missing_rules() {
    let defaults = prices([Some("1"), Some("2"), Some("0.1"), Some("1.25")]);
    // defaults absent: no-op.
    let mut dst = None;
    merge_missing_model_cost_config(&mut dst, None);
    assert_eq!(dst, None);
    let mut dst = Some(prices([Some("5"), None, None, None]));
    merge_missing_model_cost_config(&mut dst, None);
    assert_eq!(dst, Some(prices([Some("5"), None, None, None])));
    // dst absent: a copy of defaults.
    let mut dst = None;
    merge_missing_model_cost_config(&mut dst, Some(&defaults));
    assert_eq!(dst, Some(defaults.clone()));
    // Otherwise fill only missing prices; an explicit 0 is kept.
    let mut dst = Some(prices([Some("0"), None, Some("0.2"), None]));
    merge_missing_model_cost_config(&mut dst, Some(&defaults));
    assert_eq!(
        dst,
        Some(prices([Some("0"), Some("2"), Some("0.2"), Some("1.25")]))
    );
    // An empty dst config is filled completely.
    let mut dst = Some(ModelCostConfig::default());
    merge_missing_model_cost_config(&mut dst, Some(&defaults));
    assert_eq!(dst, Some(defaults));
}

// ---------------------------------------------------------------------------------------
// Properties.

/// Minimal non-negative big integer (base 2^32 limbs, little-endian) for the reference.
#[derive(Clone, Debug)]
struct Big(Vec<u32>);

impl Big {
    fn from_u128(mut v: u128) -> Big {
        let mut limbs = Vec::new();
        while v > 0 {
            limbs.push(v as u32);
            v >>= 32;
        }
        Big(limbs)
    }
    fn mul(&self, other: &Big) -> Big {
        let mut out = vec![0u64; self.0.len() + other.0.len() + 1];
        for (i, &a) in self.0.iter().enumerate() {
            let mut carry = 0u64;
            for (j, &b) in other.0.iter().enumerate() {
                let cur = out[i + j] + u64::from(a) * u64::from(b) + carry;
                out[i + j] = cur & 0xffff_ffff;
                carry = cur >> 32;
            }
            let mut k = i + other.0.len();
            while carry > 0 {
                let cur = out[k] + carry;
                out[k] = cur & 0xffff_ffff;
                carry = cur >> 32;
                k += 1;
            }
        }
        Big(out.into_iter().map(|v| v as u32).collect()).trim()
    }
    fn add(&self, other: &Big) -> Big {
        let n = self.0.len().max(other.0.len()) + 1;
        let mut out = Vec::with_capacity(n);
        let mut carry = 0u64;
        for i in 0..n {
            let cur = u64::from(*self.0.get(i).unwrap_or(&0))
                + u64::from(*other.0.get(i).unwrap_or(&0))
                + carry;
            out.push(cur as u32);
            carry = cur >> 32;
        }
        Big(out).trim()
    }
    /// Divides by a small number; returns whether the remainder was non-zero.
    fn div_small(&mut self, by: u32) -> bool {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / u64::from(by)) as u32;
            rem = cur % u64::from(by);
        }
        *self = Big(std::mem::take(&mut self.0)).trim();
        rem != 0
    }
    fn trim(mut self) -> Big {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
        self
    }
    fn to_u128(&self) -> Option<u128> {
        if self.0.len() > 4 {
            return None;
        }
        Some(
            self.0
                .iter()
                .rev()
                .fold(0u128, |acc, &l| (acc << 32) | u128::from(l)),
        )
    }
}

/// Independent exact reference: Σ tokens × mantissa × 10^(S − scale), divided by 10^S with
/// a ceiling, as a big integer.
fn reference(u: &ChatMessageUsage, c: &ModelCostConfig) -> Option<Option<i64>> {
    let pairs = [
        (u.input_tokens, c.input_price_per_million_tokens),
        (u.output_tokens, c.output_price_per_million_tokens),
        (u.cache_read_tokens, c.cache_read_price_per_million_tokens),
        (
            u.cache_creation_tokens,
            c.cache_write_price_per_million_tokens,
        ),
    ];
    let any_usage = [
        u.input_tokens,
        u.output_tokens,
        u.reasoning_tokens,
        u.cache_creation_tokens,
        u.cache_read_tokens,
    ]
    .iter()
    .any(Option::is_some);
    let priced: Vec<(i64, Decimal)> = pairs
        .iter()
        .filter_map(|(t, p)| Some(((*t)?, (*p)?)))
        .collect();
    if c.is_empty() || !any_usage || priced.is_empty() {
        return Some(None);
    }
    let scale = priced.iter().map(|(_, p)| p.scale()).max().unwrap();
    let mut sum = Big(Vec::new());
    for (t, p) in &priced {
        let mut term = Big::from_u128(*t as u128).mul(&Big::from_u128(p.mantissa() as u128));
        for _ in p.scale()..scale {
            term = term.mul(&Big::from_u128(10));
        }
        sum = sum.add(&term);
    }
    let mut inexact = false;
    for _ in 0..scale {
        inexact |= sum.div_small(10);
    }
    let mut whole = sum;
    if inexact {
        whole = whole.add(&Big::from_u128(1));
    }
    let v = whole.to_u128()?;
    Some(Some(i64::try_from(v).ok()?))
}

fn any_price() -> impl Strategy<Value = Option<Decimal>> {
    let max = Decimal::MAX.mantissa();
    prop_oneof![
        1 => Just(None),
        2 => (0i128..=max, 0u32..=28).prop_map(|(m, s)| Some(Decimal::from_i128_with_scale(m, s))),
        2 => (0i64..100_000_000, 0u32..=12).prop_map(|(m, s)| Some(Decimal::new(m, s))),
        1 => (-max..=max, 0u32..=28).prop_map(|(m, s)| Some(Decimal::from_i128_with_scale(m, s))),
    ]
}

fn any_count() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        1 => Just(None),
        3 => (0i64..10_000_000).prop_map(Some),
        1 => any::<i64>().prop_map(Some),
        1 => (i64::MAX - 1000..=i64::MAX).prop_map(Some),
    ]
}

fn any_usage() -> impl Strategy<Value = ChatMessageUsage> {
    (
        any_count(),
        any_count(),
        any_count(),
        any_count(),
        any_count(),
        any_count(),
        any_count(),
    )
        .prop_map(
            |(input, output, total, reasoning, cache_creation, cache_read, ctx)| ChatMessageUsage {
                input_tokens: input,
                output_tokens: output,
                total_tokens: total,
                reasoning_tokens: reasoning,
                cache_creation_tokens: cache_creation,
                cache_read_tokens: cache_read,
                context_limit: ctx,
            },
        )
}

fn any_cost() -> impl Strategy<Value = Option<ModelCostConfig>> {
    prop_oneof![
        1 => Just(None),
        6 => (any_price(), any_price(), any_price(), any_price()).prop_map(|(i, o, r, w)| Some(ModelCostConfig {
            input_price_per_million_tokens: i,
            output_price_per_million_tokens: o,
            cache_read_price_per_million_tokens: r,
            cache_write_price_per_million_tokens: w,
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn matches_the_big_integer_reference(u in any_usage(), c in any_cost()) {
        let tried = try_calculate_total_cost_micros(&u, c.as_ref());
        let plain = calculate_total_cost_micros(&u, c.as_ref());
        let counts_ok = [u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cache_creation_tokens, u.cache_read_tokens]
            .iter().all(|t| t.is_none_or(|t| t >= 0));
        let prices_ok = c.as_ref().is_none_or(|c| c.prices().iter().all(|(_, p)| p.is_none_or(|p| p >= Decimal::ZERO)));
        if !counts_ok || (c.is_some() && !prices_ok) {
            let err = tried.unwrap_err();
            prop_assert!(err.is_invalid_usage() || err.is_invalid_price());
            prop_assert_eq!(plain, None);
            return Ok(());
        }
        match c.as_ref().map(|c| reference(&u, c)) {
            None => prop_assert_eq!(tried.unwrap(), None),
            Some(Some(want)) => {
                prop_assert_eq!(tried.unwrap(), want);
                prop_assert_eq!(plain, want);
            }
            Some(None) => {
                prop_assert!(tried.unwrap_err().is_overflow());
                prop_assert_eq!(plain, Some(MAX_COST_MICROS));
            }
        }
    }

    #[test]
    fn realistic_values_match_i128_arithmetic(
        tokens in proptest::array::uniform4(0i64..1_000_000_000),
        units in proptest::array::uniform4(0i64..1_000_000_000_000_000),
    ) {
        // Prices in units of 1e-12 USD per million tokens (up to 1,000,000 USD/M).
        let c = ModelCostConfig {
            input_price_per_million_tokens: Some(Decimal::new(units[0], 12)),
            output_price_per_million_tokens: Some(Decimal::new(units[1], 12)),
            cache_read_price_per_million_tokens: Some(Decimal::new(units[2], 12)),
            cache_write_price_per_million_tokens: Some(Decimal::new(units[3], 12)),
        };
        let u = ChatMessageUsage {
            input_tokens: Some(tokens[0]),
            output_tokens: Some(tokens[1]),
            cache_read_tokens: Some(tokens[2]),
            cache_creation_tokens: Some(tokens[3]),
            ..Default::default()
        };
        let scaled: i128 = tokens.iter().zip(units.iter()).map(|(&t, &p)| i128::from(t) * i128::from(p)).sum();
        let scale = 1_000_000_000_000i128;
        let want = (scaled + scale - 1) / scale;
        prop_assert_eq!(calculate_total_cost_micros(&u, Some(&c)), Some(i64::try_from(want).unwrap()));
    }

    #[test]
    fn price_parsing_never_panics(text in "\\PC{0,200}") {
        let _ = parse_price(&text);
        let _ = parse_cost_config(&format!(r#"{{"input_price_per_million_tokens": {text}}}"#));
        let _ = parse_cost_config(&text);
    }

    #[test]
    fn price_parsing_of_numbers_is_exact(mantissa in 0i64..i64::MAX, scale in 0u32..=18) {
        let p = Decimal::new(mantissa, scale);
        prop_assert_eq!(parse_price(&p.to_string()).unwrap(), p);
        let json = format!(r#"{{"input_price_per_million_tokens": {p}}}"#);
        prop_assert_eq!(parse_cost_config(&json).unwrap().input_price_per_million_tokens, Some(p));
    }
}
