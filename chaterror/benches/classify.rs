//! Benchmarks of `classify`: a short text error, a 64 KiB JSON body (the largest that is
//! parsed), and a 1 MiB body (declined unparsed).
//!
//! Run: `cargo bench -p chaterror -- --warm-up-time 1 --measurement-time 3`

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use chaterror::{classify, classify_text, ProviderError, MAX_PARSED_BODY_BYTES};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A JSON error body of exactly `len` bytes whose message comes after the padding, so the
/// parser has to read all of it.
fn body_of_len(len: usize) -> String {
    let prefix = r#"{"type":"error","pad":""#;
    let suffix =
        r#"","error":{"type":"invalid_request_error","message":"Image exceeds 5 MB maximum."}}"#;
    let pad = "lorem ipsum dolor sit amet ".repeat(len / 27 + 1);
    let pad = &pad[..len - prefix.len() - suffix.len()];
    let body = format!("{prefix}{pad}{suffix}");
    assert_eq!(body.len(), len);
    body
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify");

    let text = "received status 429 from upstream";
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("short_text", |b| b.iter(|| classify_text(black_box(text))));

    let parsed = ProviderError::new("upstream failed")
        .with_status(400)
        .with_header("retry-after", "3")
        .with_body(body_of_len(MAX_PARSED_BODY_BYTES))
        .with_provider("anthropic");
    assert_eq!(classify(&parsed).detail(), "Image exceeds 5 MB maximum.");
    g.throughput(Throughput::Bytes(MAX_PARSED_BODY_BYTES as u64));
    g.bench_function("json_body_64KiB", |b| {
        b.iter(|| classify(black_box(&parsed)))
    });

    let declined = ProviderError::new("upstream failed")
        .with_status(400)
        .with_body(body_of_len(1024 * 1024));
    assert_eq!(classify(&declined).detail(), "upstream failed");
    g.throughput(Throughput::Bytes(1024 * 1024));
    g.bench_function("declined_body_1MiB", |b| {
        b.iter(|| classify(black_box(&declined)))
    });

    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
