//! The context-limit table beside the price book: drift check against the models.dev
//! snapshot, the generator's skip rules and errors, loader rules and lookups.
//!
//! The drift check's name contains `price_seed` on purpose, so that the price seed's
//! regenerate command, `CHATD_UPDATE_PRICES=1 cargo test -p chatcost --test it price_seed`,
//! rewrites `data/context_limits.json` too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;

use chatcost::{
    generate, generate_context_limits, render_context_limits, ContextLimitRow, ContextLimits,
    CostErrorKind, PriceBook, ProviderMapping, EMBEDDED_CONTEXT_LIMITS_JSON,
    MAX_CONTEXT_LIMIT_TOKENS, MAX_UPSTREAM_JSON_BYTES, MIN_CONTEXT_LIMIT_TOKENS, SEED_PROVIDERS,
};
use chatd_test_support::fixtures::read_testdata_string;

fn upstream_snapshot() -> String {
    read_testdata_string("pricing/models-dev-api.json")
}

fn row(provider: &str, model: &str, context: i64) -> ContextLimitRow {
    ContextLimitRow {
        provider: provider.into(),
        model: model.into(),
        context,
    }
}

#[test]
fn price_seed_drift_check_of_context_limits() {
    let generated = generate_context_limits(&upstream_snapshot(), SEED_PROVIDERS).unwrap();
    let text = generated.to_json();
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/context_limits.json"
    ));
    if std::env::var_os("CHATD_UPDATE_PRICES").is_some_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        eprintln!(
            "wrote {} context limits for {} provider(s) to {}",
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
        "data/context_limits.json is stale: run CHATD_UPDATE_PRICES=1 cargo test -p chatcost --test it price_seed"
    );
    assert_eq!(
        EMBEDDED_CONTEXT_LIMITS_JSON, text,
        "rebuild: the embedded context limits differ from the file"
    );
    // The snapshot has no malformed windows; zeros and absent limits are skipped silently.
    assert!(generated.warnings.is_empty(), "{:?}", generated.warnings);
}

#[test]
fn table_format_is_exact() {
    let value: serde_json::Value = serde_json::from_str(EMBEDDED_CONTEXT_LIMITS_JSON).unwrap();
    let rows = value.as_array().unwrap();
    assert!(rows.len() > 500, "{} rows", rows.len());
    for r in rows {
        let obj = r.as_object().unwrap();
        assert_eq!(obj.len(), 3, "{r}");
        let context = obj["context"].as_i64().unwrap();
        assert!(
            (MIN_CONTEXT_LIMIT_TOKENS..=MAX_CONTEXT_LIMIT_TOKENS).contains(&context),
            "{r}"
        );
    }
    assert!(EMBEDDED_CONTEXT_LIMITS_JSON.starts_with(
        "[\n  {\n    \"provider\": \"anthropic\",\n    \"model\": \"claude-3-5-sonnet-20240620\",\n    \"context\": 200000\n  },\n"
    ));
    assert!(EMBEDDED_CONTEXT_LIMITS_JSON.ends_with("  }\n]\n"));
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
    let limits = ContextLimits::embedded();
    assert_eq!(limits.len(), rows.len());
    assert!(!limits.is_empty());
}

#[test]
fn table_uses_the_seed_providers() {
    let limits = ContextLimits::embedded();
    for m in SEED_PROVIDERS {
        assert!(
            limits.rows().iter().any(|r| r.provider == m.provider),
            "no rows for {}",
            m.provider
        );
    }
    // Renamed like the price seed: models.dev's `amazon-bedrock` is our `bedrock`.
    assert!(!limits
        .rows()
        .iter()
        .any(|r| r.provider == "amazon-bedrock" || r.provider == "openai-compat"));
    assert_eq!(
        limits.lookup_row("bedrock", "meta.llama4-scout-17b-instruct-v1:0"),
        Some(&row(
            "bedrock",
            "meta.llama4-scout-17b-instruct-v1:0",
            3_500_000
        ))
    );
    // Every provider id in the table is one the price seed also writes.
    let seed = generate(&upstream_snapshot(), SEED_PROVIDERS).unwrap();
    for r in limits.rows() {
        assert!(
            seed.rows.iter().any(|p| p.provider == r.provider),
            "{}",
            r.provider
        );
    }
}

#[test]
fn known_windows_from_the_snapshot() {
    let limits = ContextLimits::embedded();
    assert_eq!(
        limits.lookup("anthropic", "claude-sonnet-4-5"),
        Some(200_000)
    );
    assert_eq!(
        limits.lookup("anthropic", "claude-opus-4-7"),
        Some(1_000_000)
    );
    assert_eq!(limits.lookup("openai", "gpt-4o"), Some(128_000));
    assert_eq!(limits.lookup("openai", "gpt-4.1"), Some(1_047_576));
    assert_eq!(limits.lookup("openai", "gpt-3.5-turbo"), Some(16_385));
    assert_eq!(limits.lookup("deepseek", "deepseek-chat"), Some(1_000_000));
}

#[test]
fn lookup_matches_names_like_the_price_book() {
    let limits = ContextLimits::embedded();
    let book = PriceBook::embedded();
    // Dated ids listed upstream match exactly…
    assert!(limits
        .rows()
        .iter()
        .any(|r| r.model == "claude-sonnet-4-5-20250929"));
    assert_eq!(
        limits.lookup("anthropic", "claude-sonnet-4-5-20250929"),
        Some(200_000)
    );
    assert_eq!(limits.lookup("openai", "gpt-4o-2024-05-13"), Some(128_000));
    // …and unlisted ones resolve through their undated alias, as prices do.
    assert!(!limits
        .rows()
        .iter()
        .any(|r| r.model == "gpt-4.1-nano-2025-04-14"));
    assert_eq!(
        limits.lookup("openai", "gpt-4.1-nano-2025-04-14"),
        Some(1_047_576)
    );
    assert_eq!(
        limits.lookup_row("openai", "gpt-4.1-nano-2025-04-14"),
        limits.lookup_row("openai", "gpt-4.1-nano")
    );
    assert_eq!(
        limits.lookup("openai", "gpt-4.1-nano-20250414"),
        Some(1_047_576)
    );
    // Provider and model spelling are forgiven the same way.
    assert_eq!(limits.lookup(" OpenAI ", "GPT-4o"), Some(128_000));
    assert_eq!(
        limits.lookup("amazon-bedrock", "meta.llama4-scout-17b-instruct-v1:0"),
        Some(3_500_000)
    );
    // Every spelling that finds a price row finds the same model's window, if it has one.
    for (provider, model) in [
        ("anthropic", "claude-sonnet-4-5-20250929"),
        ("anthropic", "CLAUDE-OPUS-4-1"),
        ("openai", "gpt-4.1-nano-2025-04-14"),
        ("openai", "gpt-4o-2024-05-13"),
        (" OpenAI ", "GPT-4o"),
        ("deepseek", "deepseek-chat"),
    ] {
        let price = book.lookup_row(provider, model).unwrap();
        let limit = limits.lookup_row(provider, model).unwrap();
        assert_eq!(
            (&price.provider, &price.model),
            (&limit.provider, &limit.model),
            "{provider}/{model}"
        );
    }
}

#[test]
fn models_without_a_usable_window_are_absent() {
    let limits = ContextLimits::embedded();
    // Unknown models and providers.
    assert_eq!(limits.lookup("openai", "gpt-unknown"), None);
    assert_eq!(limits.lookup("openai", ""), None);
    assert_eq!(limits.lookup("nope", "gpt-4o"), None);
    assert_eq!(limits.lookup("openai-compat", "gpt-4o"), None);
    // Priced, but upstream lists no `limit.context` (`gpt-image-2`) or none at all (`gpt-5`).
    assert!(PriceBook::embedded()
        .lookup("openai", "gpt-image-2")
        .is_some());
    assert_eq!(limits.lookup("openai", "gpt-image-2"), None);
    assert_eq!(limits.lookup("openai", "gpt-5"), None);
    // A context of 0 (image models) is no window.
    assert_eq!(limits.lookup("openai", "gpt-image-1-mini"), None);
}

#[test]
fn generator_skips_unusable_windows() {
    let max = MAX_CONTEXT_LIMIT_TOKENS;
    let upstream = format!(
        r#"{{"origin": {{}}, "providers": {{"amazon-bedrock": {{"models": {{
        "ok": {{"limit": {{"context": 200000, "output": 8192}}}},
        "min": {{"limit": {{"context": 1}}}},
        "max": {{"limit": {{"context": {max}}}}},
        "no-limit": {{"cost": {{"input": 1}}}},
        "null-limit": {{"limit": null}},
        "no-context": {{"limit": {{"output": 4096}}}},
        "null-context": {{"limit": {{"context": null}}}},
        "zero": {{"limit": {{"context": 0}}}},
        "negative": {{"limit": {{"context": -5}}}},
        "fractional": {{"limit": {{"context": 128000.5}}}},
        "float": {{"limit": {{"context": 1e6}}}},
        "string": {{"limit": {{"context": "128000"}}}},
        "absurd": {{"limit": {{"context": {}}}}},
        "huge": {{"limit": {{"context": 99999999999999999999999}}}}
    }}}}}}}}"#,
        max + 1
    );
    let map = [ProviderMapping::new("bedrock", "amazon-bedrock")];
    let generated = generate_context_limits(&upstream, &map).unwrap();
    assert_eq!(
        generated.rows,
        vec![
            row("bedrock", "max", max),
            row("bedrock", "min", 1),
            row("bedrock", "ok", 200_000),
        ]
    );
    assert_eq!(generated.provider_count(), 1);
    let warned: Vec<&str> = generated
        .warnings
        .iter()
        .map(|w| w.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        warned,
        [
            "amazon-bedrock/absurd",
            "amazon-bedrock/float",
            "amazon-bedrock/fractional",
            "amazon-bedrock/huge",
            "amazon-bedrock/negative",
            "amazon-bedrock/string",
        ]
    );
    assert!(
        generated.warnings[0].ends_with(&format!(
            "limit.context: {} is not an integer from 1 to {max}; skipped",
            max + 1
        )),
        "{}",
        generated.warnings[0]
    );
    // Price fields are not read: a model without `cost` still gets its window.
    let text = generated.to_json();
    assert_eq!(text, render_context_limits(&generated.rows));
    assert_eq!(
        serde_json::from_str::<Vec<ContextLimitRow>>(&text).unwrap(),
        generated.rows
    );
}

#[test]
fn generator_errors() {
    let one = [ProviderMapping::new("anthropic", "anthropic")];
    // Provider checks are the price seed's.
    let err = generate_context_limits(r#"{"anthropic": {"models": {}}}"#, &one).unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::MissingProviders);
    assert_eq!(
        err.to_string(),
        "providers missing or empty in upstream: [anthropic]"
    );
    // No usable window anywhere: the upstream schema changed.
    let err = generate_context_limits(
        r#"{"anthropic": {"models": {"a": {"limit": {"context": 0}}, "b": {"cost": {"input": 1}}}}}"#,
        &one,
    )
    .unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::NoContextLimits);
    assert!(err.is_price_seed());
    // Malformed documents, including a `limit` that is not an object.
    for upstream in [
        "",
        "{",
        r#"{"anthropic": 3}"#,
        r#"{"anthropic": {"models": {"a": {"limit": 3}}}}"#,
    ] {
        let err = generate_context_limits(upstream, &one).unwrap_err();
        assert_eq!(err.kind(), CostErrorKind::Json, "{upstream}");
    }
    // Each generator reads only its own fields: a malformed `cost` does not concern the
    // context limits, nor a malformed `limit` the price seed.
    let upstream = r#"{"anthropic": {"models": {"a": {"cost": "x", "limit": {"context": 8}}}}}"#;
    assert_eq!(
        generate_context_limits(upstream, &one).unwrap().rows,
        vec![row("anthropic", "a", 8)]
    );
    let upstream = r#"{"anthropic": {"models": {"a": {"limit": "x", "cost": {"input": 1}}}}}"#;
    assert_eq!(generate(upstream, &one).unwrap().rows.len(), 1);
    // Two mappings writing the same provider id.
    let dup = [
        ProviderMapping::new("x", "a"),
        ProviderMapping::new("x", "b"),
    ];
    let upstream = r#"{"a": {"models": {"m": {"limit": {"context": 1}}}}, "b": {"models": {"m": {"limit": {"context": 2}}}}}"#;
    let err = generate_context_limits(upstream, &dup).unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::InvalidContextLimits);
    assert_eq!(
        err.to_string(),
        "duplicate context-limit row x/m (two mappings share a provider id)"
    );
    // The upstream size cap is the price seed's.
    let too_big = " ".repeat(MAX_UPSTREAM_JSON_BYTES + 1);
    assert_eq!(
        generate_context_limits(&too_big, SEED_PROVIDERS)
            .unwrap_err()
            .kind(),
        CostErrorKind::UpstreamTooLarge
    );
}

#[test]
fn loader_rules() {
    let err = ContextLimits::from_json("[]").unwrap_err();
    assert_eq!(err.kind(), CostErrorKind::InvalidContextLimits);
    assert_eq!(err.to_string(), "context-limit table is empty");
    let err = ContextLimits::from_json("[{").unwrap_err();
    assert!(
        err.to_string().starts_with("parse context limits: "),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
    for bad in [
        r#"[{"provider":"p","model":"m","context":1,"extra":1}]"#,
        r#"[{"provider":"p","model":"m","context":1.5}]"#,
        r#"[{"provider":"p","model":"m","context":null}]"#,
        r#"[{"provider":"p","model":"m"}]"#,
    ] {
        let err = ContextLimits::from_json(bad).unwrap_err();
        assert_eq!(err.kind(), CostErrorKind::InvalidContextLimits, "{bad}");
    }
    for context in [0, -1, MAX_CONTEXT_LIMIT_TOKENS + 1] {
        let err = ContextLimits::from_rows(vec![row("p", "m", context)]).unwrap_err();
        assert_eq!(err.kind(), CostErrorKind::InvalidContextLimits);
        assert_eq!(err.field(), Some("context"));
    }
    let err = ContextLimits::from_rows(vec![row("p", "m", 1), row("p", "m", 2)]).unwrap_err();
    assert_eq!(err.to_string(), "duplicate context-limit row p/m");
    assert!(ContextLimits::from_rows(vec![row("", "m", 1)]).is_err());
    // Rows are kept sorted whatever the input order.
    let limits = ContextLimits::from_rows(vec![row("b", "x", 1), row("a", "y", 2)]).unwrap();
    assert_eq!(limits.rows()[0], row("a", "y", 2));
    assert_eq!(limits.lookup("B", "X"), Some(1));
}
