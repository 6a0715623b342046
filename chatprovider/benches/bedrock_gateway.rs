//! What the AI Gateway's Bedrock translation costs per call: one streamed Claude answer
//! handled the way the gateway handles it for an `anthropic` instance (Anthropic's
//! server-sent events forwarded as they are, a copy decoded by the `Observer`) against the
//! way it handles it for a `bedrock` instance (Bedrock's event-stream frames turned into the
//! same events by `event_stream_to_sse`, then observed the same way).
//!
//! Shapes (built in memory, deterministic): a Claude answer of `N` text deltas
//! (`message_start`, a text block of `N` deltas, `message_delta` with usage,
//! `message_stop`), for N = 50 (a short reply) and N = 2 000 (a long one), delivered in
//! 16 KiB chunks (an HTTP/2 DATA frame). Before timing, both paths must yield an
//! observation with the same usage, and the Bedrock path the same events as the Anthropic
//! bytes.
//!
//! Run: `cargo bench -p chatprovider --bench bedrock_gateway`; results in
//! `docs/ai-gateway-benchmark.md` ("Bedrock translation").

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use chatprovider::gateway::{event_stream_to_sse, Observation, Observer, WireApi};
use chatprovider::{encode_chunk_frame, sse::SseDecoder};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use tokio::runtime::Runtime;

const CHUNK: usize = 16 * 1024;

/// The Anthropic events of one answer with `n` text deltas, as JSON texts.
fn events(n: usize) -> Vec<String> {
    let mut out = vec![
        r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1200,"cache_creation_input_tokens":0,"cache_read_input_tokens":800,"output_tokens":1}}}"#.to_owned(),
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_owned(),
    ];
    for i in 0..n {
        out.push(format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"word {i} of a long and careful answer, "}}}}"#
        ));
    }
    out.push(r#"{"type":"content_block_stop","index":0}"#.to_owned());
    out.push(format!(
        r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{}}}}}"#,
        n * 9
    ));
    out.push(r#"{"type":"message_stop"}"#.to_owned());
    out
}

fn event_type(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["type"].as_str().unwrap().to_owned()
}

/// The answer as Anthropic sends it.
fn anthropic_body(events: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!("event: {}\ndata: {e}\n\n", event_type(e)));
    }
    out.into_bytes()
}

/// The answer as Bedrock sends it.
fn bedrock_body(events: &[String]) -> Vec<u8> {
    events.iter().flat_map(|e| encode_chunk_frame(e)).collect()
}

fn chunked(body: &[u8]) -> Vec<Bytes> {
    body.chunks(CHUNK).map(Bytes::copy_from_slice).collect()
}

fn observer() -> Observer {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "text/event-stream".parse().unwrap());
    Observer::new(WireApi::Messages, 200, &headers, chaterror::Redactor::new())
}

/// The `anthropic` instance's work: each chunk passes and is observed.
fn pass_through(rt: &Runtime, chunks: &[Bytes]) -> (usize, Observation) {
    rt.block_on(async {
        let mut observer = observer();
        let mut body = futures_util::stream::iter(chunks.iter().cloned().map(Ok::<_, Infallible>));
        let mut bytes = 0;
        while let Some(Ok(chunk)) = body.next().await {
            observer.observe(&chunk);
            bytes += black_box(chunk).len();
        }
        (bytes, observer.finish(true))
    })
}

/// The `bedrock` instance's work: each chunk's frames become events, which pass and are
/// observed.
fn translated(rt: &Runtime, chunks: &[Bytes]) -> (Vec<u8>, Observation) {
    rt.block_on(async {
        let mut observer = observer();
        let upstream = futures_util::stream::iter(chunks.iter().cloned().map(Ok::<_, Infallible>));
        let mut body = event_stream_to_sse(upstream);
        let mut out = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            observer.observe(&chunk);
            out.extend_from_slice(&black_box(chunk));
        }
        (out, observer.finish(true))
    })
}

fn sse_events(body: &[u8]) -> Vec<(String, String)> {
    let mut decoder = SseDecoder::new(usize::MAX);
    let mut out = Vec::new();
    decoder.push(body, &mut out).unwrap();
    decoder.finish(&mut out).unwrap();
    out.into_iter().map(|e| (e.event, e.data)).collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("gateway_stream");
    for n in [50usize, 2_000] {
        let events = events(n);
        let anthropic = anthropic_body(&events);
        let bedrock = bedrock_body(&events);
        let (a_chunks, b_chunks) = (chunked(&anthropic), chunked(&bedrock));
        let (_, a_seen) = pass_through(&rt, &a_chunks);
        let (b_out, b_seen) = translated(&rt, &b_chunks);
        assert!(!a_seen.usage.is_empty());
        assert_eq!(
            a_seen.usage, b_seen.usage,
            "both paths observe the same usage"
        );
        assert_eq!(
            sse_events(&b_out),
            sse_events(&anthropic),
            "the same events"
        );
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::new("anthropic_pass_through", n),
            &a_chunks,
            |b, chunks| b.iter(|| pass_through(&rt, chunks)),
        );
        group.bench_with_input(
            BenchmarkId::new("bedrock_translated", n),
            &b_chunks,
            |b, chunks| b.iter(|| translated(&rt, chunks)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
