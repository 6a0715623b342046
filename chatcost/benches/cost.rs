//! Speed of costing, normalization and price-book load/lookup.
//!
//! `cargo bench -p chatcost -- --warm-up-time 1 --measurement-time 3`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::str::FromStr;

use chatcost::{
    calculate_total_cost_micros, normalize, OpenAiChatUsage, PriceBook, EMBEDDED_PRICES_JSON,
};
use codersdk::{ChatMessageUsage, ModelCostConfig};
use criterion::{criterion_group, criterion_main, Criterion};
use rust_decimal::Decimal;

fn price(s: &str) -> Option<Decimal> {
    Some(Decimal::from_str(s).unwrap())
}

fn bench_cost(c: &mut Criterion) {
    let anthropic = ModelCostConfig {
        input_price_per_million_tokens: price("3"),
        output_price_per_million_tokens: price("15"),
        cache_read_price_per_million_tokens: price("0.3"),
        cache_write_price_per_million_tokens: price("3.75"),
    };
    let usage = ChatMessageUsage {
        input_tokens: Some(1000),
        output_tokens: Some(500),
        total_tokens: Some(24_500),
        reasoning_tokens: Some(100),
        cache_creation_tokens: Some(3000),
        cache_read_tokens: Some(20_000),
        context_limit: Some(200_000),
    };
    c.bench_function("calculate_total_cost_micros/4 buckets", |b| {
        b.iter(|| calculate_total_cost_micros(black_box(&usage), black_box(Some(&anthropic))))
    });
    let input_only = ChatMessageUsage {
        input_tokens: Some(1),
        ..Default::default()
    };
    let cent = ModelCostConfig {
        input_price_per_million_tokens: price("0.01"),
        ..Default::default()
    };
    c.bench_function("calculate_total_cost_micros/1 bucket", |b| {
        b.iter(|| calculate_total_cost_micros(black_box(&input_only), black_box(Some(&cent))))
    });
    // Worst case: 28-digit prices and huge counts force the split (no-u128-numerator) path.
    let long = ModelCostConfig {
        input_price_per_million_tokens: price("1.234567890123456789012345678"),
        output_price_per_million_tokens: price("9.876543210987654321098765432"),
        cache_read_price_per_million_tokens: price("0.1234567890123456789012345678"),
        cache_write_price_per_million_tokens: price("12345.67890123456789012345678"),
    };
    let huge = ChatMessageUsage {
        input_tokens: Some(i64::MAX / 8),
        output_tokens: Some(i64::MAX / 8),
        cache_read_tokens: Some(i64::MAX / 8),
        cache_creation_tokens: Some(123_456_789),
        ..Default::default()
    };
    c.bench_function("calculate_total_cost_micros/worst case", |b| {
        b.iter(|| calculate_total_cost_micros(black_box(&huge), black_box(Some(&long))))
    });
    c.bench_function("calculate_total_cost_micros/unpriced", |b| {
        b.iter(|| calculate_total_cost_micros(black_box(&usage), black_box(None)))
    });
}

fn bench_normalize(c: &mut Criterion) {
    let raw = r#"{"prompt_tokens":7112,"completion_tokens":463,"total_tokens":7575,
        "prompt_tokens_details":{"cached_tokens":3072},"completion_tokens_details":{"reasoning_tokens":64}}"#;
    let parsed: OpenAiChatUsage = serde_json::from_str(raw).unwrap();
    c.bench_function("normalize::openai_chat", |b| {
        b.iter(|| normalize::openai_chat(black_box(&parsed)))
    });
    c.bench_function("normalize::openai_chat incl. JSON parse", |b| {
        b.iter(|| {
            normalize::openai_chat(
                &serde_json::from_str::<OpenAiChatUsage>(black_box(raw)).unwrap(),
            )
        })
    });
}

const LOOKUPS: [(&str, &str); 8] = [
    ("openai", "gpt-4o"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("openai", "gpt-4.1-nano-2025-04-14"),
    ("OpenAI", "GPT-5.1-Codex-Max"),
    ("bedrock", "global.anthropic.claude-opus-4-8"),
    ("openrouter", "anthropic/claude-sonnet-4.5"),
    ("openai", "no-such-model"),
    ("openai-compat", "gpt-4o"),
];

fn thousand_lookups(book: &PriceBook) -> usize {
    let mut found = 0;
    for i in 0..1000 {
        let (p, m) = LOOKUPS[i % LOOKUPS.len()];
        found += usize::from(book.lookup(black_box(p), black_box(m)).is_some());
    }
    found
}

fn bench_price_book(c: &mut Criterion) {
    c.bench_function("PriceBook::from_json(embedded seed)", |b| {
        b.iter(|| PriceBook::from_json(black_box(EMBEDDED_PRICES_JSON)).unwrap())
    });
    let book = PriceBook::embedded();
    c.bench_function("PriceBook 1000 lookups (mixed)", |b| {
        b.iter(|| thousand_lookups(book))
    });
    c.bench_function("PriceBook load + 1000 lookups", |b| {
        b.iter(|| thousand_lookups(&PriceBook::from_json(black_box(EMBEDDED_PRICES_JSON)).unwrap()))
    });
}

criterion_group!(benches, bench_cost, bench_normalize, bench_price_book);
criterion_main!(benches);
