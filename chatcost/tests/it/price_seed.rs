//! The price-book seed: drift check against the models.dev snapshot, the generator's
//! vector and error cases (core.md §D.3–D.4), loader rules and lookups.
//!
//! Regenerate `data/prices.json` with
//! `CHATD_UPDATE_PRICES=1 cargo test -p chatcost --test it price_seed`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::str::FromStr;

use chatcost::{
    generate, render_seed, CostErrorKind, PriceBook, PriceRow, ProviderMapping,
    EMBEDDED_PRICES_JSON, MAX_UPSTREAM_JSON_BYTES, SEED_PROVIDERS,
};
use chatd_test_support::fixtures::read_testdata_string;
use codersdk::ModelCostConfig;
use rust_decimal::Decimal;

fn upstream_snapshot() -> String {
    read_testdata_string("pricing/models-dev-api.json")
}

fn row(provider: &str, model: &str, prices: [Option<i64>; 4]) -> PriceRow {
    PriceRow {
        provider: provider.into(),
        model: model.into(),
        input_price: prices[0],
        output_price: prices[1],
        cache_read_price: prices[2],
        cache_write_price: prices[3],
    }
}

fn usd(s: &str) -> Option<Decimal> {
    Some(Decimal::from_str(s).unwrap())
}

#[test]
fn seed_matches_regenerated_snapshot() {
    let generated = generate(&upstream_snapshot(), SEED_PROVIDERS).unwrap();
    let text = generated.to_json();
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/prices.json"));
    if std::env::var_os("CHATD_UPDATE_PRICES").is_some_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        eprintln!(
            "wrote {} prices for {} provider(s) to {}",
            generated.rows.len(),
            generated.provider_count(),
            path.display()
        );
        for w in &generated.warnings {
            eprintln!("warning: {w}");
        }
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(
        on_disk == text,
        "data/prices.json is stale: run CHATD_UPDATE_PRICES=1 cargo test -p chatcost --test it price_seed"
    );
    assert_eq!(
        EMBEDDED_PRICES_JSON, text,
        "rebuild: the embedded seed differs from the file"
    );
}

#[test]
fn seed_format_is_exact() {
    let value: serde_json::Value = serde_json::from_str(EMBEDDED_PRICES_JSON).unwrap();
    let rows = value.as_array().unwrap();
    assert!(rows.len() > 500, "{} rows", rows.len());
    let mut keys_seen = None;
    for r in rows {
        let obj = r.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys_seen.get_or_insert(keys.clone());
        assert_eq!(obj.len(), 6);
        for price in [
            "input_price",
            "output_price",
            "cache_read_price",
            "cache_write_price",
        ] {
            let v = &obj[price];
            assert!(v.is_null() || v.as_i64().is_some_and(|n| n >= 0), "{r}");
        }
    }
    // Field order as in the seed format, 2-space indentation, final newline.
    assert!(EMBEDDED_PRICES_JSON.starts_with("[\n  {\n    \"provider\": \""));
    assert!(EMBEDDED_PRICES_JSON.ends_with("  }\n]\n"));
    let first = EMBEDDED_PRICES_JSON.find("\"provider\"").unwrap();
    let order = [
        "\"model\"",
        "\"input_price\"",
        "\"output_price\"",
        "\"cache_read_price\"",
        "\"cache_write_price\"",
    ];
    let mut at = first;
    for key in order {
        let next = EMBEDDED_PRICES_JSON[at..].find(key).unwrap() + at;
        assert!(next > at);
        at = next;
    }
    // Sorted by provider then model, no duplicates.
    let book = PriceBook::embedded();
    assert_eq!(book.len(), rows.len());
    let pairs: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["provider"].as_str().unwrap(),
                r["model"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        pairs.windows(2).all(|w| w[0] < w[1]),
        "rows must be strictly sorted"
    );
}

#[test]
fn seed_covers_every_provider_and_spec_examples() {
    let book = PriceBook::embedded();
    for m in SEED_PROVIDERS {
        let n = book
            .rows()
            .iter()
            .filter(|r| r.provider == m.provider)
            .count();
        assert!(n > 0, "no rows for {}", m.provider);
    }
    assert!(!book
        .rows()
        .iter()
        .any(|r| r.provider == "amazon-bedrock" || r.provider == "openai-compat"));
    let find = |p: &str, m: &str| {
        book.rows()
            .iter()
            .find(|r| r.provider == p && r.model == m)
            .unwrap()
            .clone()
    };
    // core.md §D.3 example rows.
    assert_eq!(
        find("anthropic", "claude-opus-4-7"),
        row(
            "anthropic",
            "claude-opus-4-7",
            [
                Some(5_000_000),
                Some(25_000_000),
                Some(500_000),
                Some(6_250_000)
            ]
        )
    );
    assert_eq!(
        find("openai", "gpt-4o"),
        row(
            "openai",
            "gpt-4o",
            [Some(2_500_000), Some(10_000_000), Some(1_250_000), None]
        )
    );
    let turbo = find("openai", "gpt-3.5-turbo");
    assert_eq!(
        (turbo.cache_read_price, turbo.cache_write_price),
        (Some(0), None)
    );
    assert_eq!(
        find("openai", "text-embedding-3-small").output_price,
        Some(0)
    );
    // Bedrock rows come from models.dev's amazon-bedrock, regional ids kept distinct.
    assert_eq!(
        find("bedrock", "eu.anthropic.claude-opus-4-8").input_price,
        Some(5_500_000)
    );
    assert_eq!(
        find("bedrock", "global.anthropic.claude-opus-4-8").input_price,
        Some(5_000_000)
    );
    // Models without any price are skipped.
    assert!(!book
        .rows()
        .iter()
        .any(|r| r.provider == "xai" && r.model == "grok-imagine-image"));
}

#[test]
fn generator_vector() {
    // core.md §D.4 generator test vector.
    let upstream = r#"{
        "anthropic": {"models": {
            "claude-sonnet-4-7": {"cost": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75}},
            "claude-haiku": {"cost": {"input": 0.8, "output": 4}}
        }},
        "openai": {"models": {
            "gpt-4o": {"cost": {"input": 2.5, "output": 10, "cache_read": 1.25}},
            "gpt-no-prices": {}
        }},
        "alibaba": {"models": {"qwen": {"cost": {"input": 1, "output": 2}}}}
    }"#;
    let providers = [
        ProviderMapping::new("anthropic", "anthropic"),
        ProviderMapping::new("openai", "openai"),
    ];
    let seed = generate(upstream, &providers).unwrap();
    assert_eq!(
        seed.rows,
        vec![
            row(
                "anthropic",
                "claude-haiku",
                [Some(800_000), Some(4_000_000), None, None]
            ),
            row(
                "anthropic",
                "claude-sonnet-4-7",
                [
                    Some(3_000_000),
                    Some(15_000_000),
                    Some(300_000),
                    Some(3_750_000)
                ]
            ),
            row(
                "openai",
                "gpt-4o",
                [Some(2_500_000), Some(10_000_000), Some(1_250_000), None]
            ),
        ]
    );
    assert!(seed.warnings.is_empty());
    assert_eq!(seed.provider_count(), 2);
    let text = seed.to_json();
    assert_eq!(text, render_seed(&seed.rows));
    assert!(text.contains("\"cache_write_price\": null"));
    assert_eq!(
        serde_json::from_str::<Vec<PriceRow>>(&text).unwrap(),
        seed.rows
    );
}

#[test]
fn generator_reads_the_snapshot_wrapper_and_renames_providers() {
    let raw = r#"{"amazon-bedrock": {"models": {"m": {"cost": {"input": 1}}}}}"#;
    let wrapped = format!(r#"{{"origin": {{"repository": "x"}}, "providers": {raw}}}"#);
    let map = [ProviderMapping::new("bedrock", "amazon-bedrock")];
    let a = generate(raw, &map).unwrap();
    let b = generate(&wrapped, &map).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.rows,
        vec![row("bedrock", "m", [Some(1_000_000), None, None, None])]
    );
}

#[test]
fn generator_conversion_rules() {
    let upstream = r#"{"p": {"models": {
        "neg": {"cost": {"input": -1, "output": 2}},
        "nulls": {"cost": {"input": null, "output": 0}},
        "tiers-only": {"cost": {"tiers": [{"input": 1}]}},
        "no-cost": {"name": "x"},
        "exp": {"cost": {"input": 1e-7, "output": 1.5E-6, "cache_read": 0.0000005}},
        "float-noise": {"cost": {"input": 0.30000000000000004, "output": 0.075}}
    }}}"#;
    let seed = generate(upstream, &[ProviderMapping::new("p", "p")]).unwrap();
    assert_eq!(
        seed.rows,
        vec![
            row("p", "exp", [Some(0), Some(2), Some(1), None]),
            row(
                "p",
                "float-noise",
                [Some(300_000), Some(75_000), None, None]
            ),
            row("p", "neg", [None, Some(2_000_000), None, None]),
            row("p", "nulls", [None, Some(0), None, None]),
        ]
    );
    assert_eq!(seed.warnings.len(), 1);
    assert!(
        seed.warnings[0].contains("p/neg cost.input"),
        "{:?}",
        seed.warnings
    );
}

#[test]
fn generator_errors() {
    let one = [ProviderMapping::new("anthropic", "anthropic")];
    let two = [
        ProviderMapping::new("anthropic", "anthropic"),
        ProviderMapping::new("openai", "openai"),
    ];

    // Missing and empty providers are both reported, no partial seed.
    let err = generate(r#"{"anthropic": {"models": {}}}"#, &two).unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::MissingProviders);
    assert!(err.is_price_seed());
    assert_eq!(
        err.to_string(),
        "providers missing or empty in upstream: [anthropic, openai]"
    );
    let err = generate(r#"{"anthropic": {"name": "no models key"}}"#, &one).unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::MissingProviders);
    let err = generate(
        r#"{"anthropic": {"models": {"a": {"cost": {"input": 1}}}}}"#,
        &two,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "providers missing or empty in upstream: [openai]"
    );

    // No row with an input or output price.
    for upstream in [
        r#"{"anthropic": {"models": {"a": {"cost": {"cache_read": 1}}}}}"#,
        r#"{"anthropic": {"models": {"a": {"cost": {"input": -1}}}}}"#,
        r#"{"anthropic": {"models": {"a": {"name": "unpriced"}}}}"#,
    ] {
        let err = generate(upstream, &one).unwrap_err();
        assert_eq!(err.kind(), CostErrorKind::NoPricingData, "{upstream}");
        assert_eq!(
            err.to_string(),
            "converted rows have no pricing data; upstream schema may have changed"
        );
    }

    // Malformed input.
    for upstream in [
        "",
        "[]",
        "{",
        r#"{"anthropic": 3}"#,
        r#"{"anthropic": {"models": {"a": {"cost": 3}}}}"#,
    ] {
        let err = generate(upstream, &one).unwrap_err();
        assert_eq!(err.kind(), CostErrorKind::Json, "{upstream}");
        assert!(err.is_json());
        assert!(std::error::Error::source(&err).is_some());
    }

    // A price that is not a number, or too large for i64 micro-USD.
    for bad in [r#""3""#, "true", "[1]", "1e30", "9223372036854.775808"] {
        let upstream =
            format!(r#"{{"anthropic": {{"models": {{"a": {{"cost": {{"input": {bad}}}}}}}}}}}"#);
        let err = generate(&upstream, &one).unwrap_err();
        assert_eq!(err.kind(), CostErrorKind::InvalidPrice, "{bad}");
        assert_eq!(err.field(), Some("anthropic/a cost.input"));
    }

    // Two mappings writing the same provider id.
    let dup = [
        ProviderMapping::new("x", "a"),
        ProviderMapping::new("x", "b"),
    ];
    let upstream = r#"{"a": {"models": {"m": {"cost": {"input": 1}}}}, "b": {"models": {"m": {"cost": {"input": 2}}}}}"#;
    assert_eq!(
        generate(upstream, &dup).unwrap_err().kind(),
        CostErrorKind::InvalidPriceSeed
    );
}

#[test]
fn generator_size_limit() {
    let too_big = " ".repeat(MAX_UPSTREAM_JSON_BYTES + 1);
    let err = generate(&too_big, SEED_PROVIDERS).unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::UpstreamTooLarge);
    // At the limit the text is parsed (and here fails as JSON, not on size).
    let at_limit = " ".repeat(MAX_UPSTREAM_JSON_BYTES);
    assert_eq!(
        generate(&at_limit, SEED_PROVIDERS).unwrap_err().kind(),
        CostErrorKind::Json
    );
}

#[test]
fn loader_rules() {
    let err = PriceBook::from_json("[]").unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::InvalidPriceSeed);
    assert_eq!(err.to_string(), "price seed is empty");
    let err = PriceBook::from_json("[{").unwrap_err();
    assert!(err.to_string().starts_with("parse price seed: "), "{err}");
    let extra = r#"[{"provider":"p","model":"m","input_price":1,"output_price":null,"cache_read_price":null,"cache_write_price":null,"extra":1}]"#;
    assert!(PriceBook::from_json(extra).is_err());
    let fractional = r#"[{"provider":"p","model":"m","input_price":1.5,"output_price":null,"cache_read_price":null,"cache_write_price":null}]"#;
    assert!(PriceBook::from_json(fractional).is_err());

    let negative = vec![row("p", "m", [Some(-1), None, None, None])];
    let err = PriceBook::from_rows(negative).unwrap_err();
    assert_eq!(err.field(), Some("input_price"));
    let dup = vec![
        row("p", "m", [Some(1), None, None, None]),
        row("p", "m", [Some(2), None, None, None]),
    ];
    assert!(PriceBook::from_rows(dup)
        .unwrap_err()
        .to_string()
        .contains("duplicate price row p/m"));
    assert!(PriceBook::from_rows(vec![row("", "m", [Some(1), None, None, None])]).is_err());

    // Rows are kept sorted whatever the input order.
    let book = PriceBook::from_rows(vec![
        row("b", "x", [Some(1), None, None, None]),
        row("a", "y", [Some(2), None, None, None]),
    ])
    .unwrap();
    assert_eq!(book.rows()[0].provider, "a");
    assert!(!book.is_empty());
}

#[test]
fn lookup_rules() {
    let book = PriceBook::embedded();
    let gpt4o = ModelCostConfig {
        input_price_per_million_tokens: usd("2.5"),
        output_price_per_million_tokens: usd("10"),
        cache_read_price_per_million_tokens: usd("1.25"),
        cache_write_price_per_million_tokens: None,
    };
    assert_eq!(book.lookup("openai", "gpt-4o"), Some(gpt4o.clone()));
    // Provider ids are trimmed and lowercased.
    assert_eq!(book.lookup(" OpenAI ", "gpt-4o"), Some(gpt4o.clone()));
    // Case-insensitive model match.
    assert_eq!(book.lookup("openai", "GPT-4o"), Some(gpt4o.clone()));
    // Dated ids listed upstream match exactly and keep their own price…
    let may = book.lookup("openai", "gpt-4o-2024-05-13").unwrap();
    assert_eq!(may.input_price_per_million_tokens, usd("5"));
    // …and unlisted dated ids fall back to the undated alias.
    let nano = book.lookup("openai", "gpt-4.1-nano-2025-04-14").unwrap();
    assert_eq!(nano, book.lookup("openai", "gpt-4.1-nano").unwrap());
    assert_eq!(nano.input_price_per_million_tokens, usd("0.1"));
    assert_eq!(book.lookup("openai", "GPT-4.1-NANO-2025-04-14"), Some(nano));
    assert!(book.lookup("azure", "gpt-4o-2024-11-20").is_some());
    // models.dev's bedrock key is accepted; regional ids are never collapsed.
    let eu = book
        .lookup("amazon-bedrock", "eu.anthropic.claude-opus-4-8")
        .unwrap();
    assert_eq!(eu.input_price_per_million_tokens, usd("5.5"));
    assert!(book
        .lookup("bedrock", "ca.anthropic.claude-opus-4-8")
        .is_none());
    // openai-compat has no rows; unknown providers and models are unpriced.
    assert!(book.lookup("openai-compat", "gpt-4o").is_none());
    assert!(book.lookup("openai-compat", "deepseek-chat").is_none());
    assert!(book.lookup("deepseek", "deepseek-chat").is_some());
    assert!(book.lookup("nope", "gpt-4o").is_none());
    assert!(book.lookup("openai", "gpt-unknown").is_none());
    assert!(book.lookup("openai", "").is_none());
    // Explicit zero stays zero; null stays None.
    let turbo = book.lookup("openai", "gpt-3.5-turbo").unwrap();
    assert_eq!(
        turbo.cache_read_price_per_million_tokens,
        Some(Decimal::ZERO)
    );
    assert_eq!(turbo.cache_write_price_per_million_tokens, None);
    // lookup_row exposes the integers.
    assert_eq!(
        book.lookup_row("openai", "gpt-4o").unwrap().input_price,
        Some(2_500_000)
    );
}

#[test]
fn lookup_of_an_all_null_row_is_unpriced() {
    let book = PriceBook::from_rows(vec![row("p", "m", [None, None, None, None])]).unwrap();
    assert!(book.lookup_row("p", "m").is_some());
    assert!(book.lookup("p", "m").is_none());
}

#[test]
fn case_insensitive_matching_is_unambiguous_in_the_seed() {
    let mut seen = std::collections::HashSet::new();
    for r in PriceBook::embedded().rows() {
        assert!(
            seen.insert((r.provider.clone(), r.model.to_ascii_lowercase())),
            "{}/{}",
            r.provider,
            r.model
        );
    }
}

#[test]
fn fill_missing_keeps_configured_prices() {
    let book = PriceBook::embedded();
    let mut cost = Some(ModelCostConfig {
        input_price_per_million_tokens: usd("1"),
        ..Default::default()
    });
    assert!(book.fill_missing("anthropic", "claude-sonnet-4-5-20250929", &mut cost));
    let cost = cost.unwrap();
    assert_eq!(cost.input_price_per_million_tokens, usd("1"));
    assert_eq!(cost.output_price_per_million_tokens, usd("15"));
    assert_eq!(cost.cache_write_price_per_million_tokens, usd("3.75"));
    let mut none = None;
    assert!(!book.fill_missing("anthropic", "claude-unknown", &mut none));
    assert!(none.is_none());
}
