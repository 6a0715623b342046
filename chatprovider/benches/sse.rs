//! SSE decoding + JSON parsing: `chatprovider::sse::SseDecoder` against the
//! `eventsource-stream` crate on the same bytes, delivered as the same chunks.
//!
//! Shapes (all inputs are built in memory and deterministic):
//!
//! * `small_deltas`: 5 000 OpenAI-Chat-shaped `chat.completion.chunk` events plus
//!   `data: [DONE]`, delivered in 16 KiB chunks (an HTTP/2 DATA frame) and as one chunk.
//! * `big_event_4MiB`: one `data:` line of ~4 MiB JSON (a tool call whose `arguments`
//!   string is a large escaped JSON document), in 16 KiB chunks and as one chunk.
//! * `small_deltas_256KiB/1B_chunks`: the first ~256 KiB of `small_deltas` (cut at an
//!   event boundary), one byte per chunk.
//! * `big_event_{16,64}KiB/1B_chunks`: the big-event shape at smaller sizes, one byte per
//!   chunk. `eventsource-stream` re-parses the pending line from its start on every chunk,
//!   so this is quadratic for it (about a minute at ~200 KB; 4 MiB would take hours), hence
//!   the small sizes, which also show the growth rate.
//! * `big_event_4MiB/1B_chunks`: the full 4 MiB event one byte per chunk, ours only, to
//!   show that our decoder stays linear.
//!
//! Both sides consume a `futures_util::stream::iter` of `Ok::<Bytes, Infallible>` chunks on
//! a current-thread tokio runtime and, in the `sse+json` groups, parse every event's data
//! (except `[DONE]`) into a `serde_json::Value`. The `sse_only` groups skip the JSON step to
//! isolate the framing cost. Before timing, each shape asserts that both decoders yield the
//! same events with the same data.
//!
//! Run: `cargo bench -p chatprovider --bench sse`; results are in `docs/sse-benchmark.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use chatprovider::sse::SseDecoder;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use tokio::runtime::Runtime;

const DONE: &str = "[DONE]";
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

/// Small deterministic generator (64-bit LCG) so the inputs are identical on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "the ",
    "model ",
    "streams ",
    "tokens ",
    "one ",
    "delta ",
    "at ",
    "a ",
    "time, ",
    "and ",
    "each ",
    "chunk ",
    "is ",
    "small. ",
    "Über ",
    "naïve ",
    "café ",
    "\\\"quoted\\\" ",
    "\\n",
    "日本語 ",
    "🙂 ",
    "word ",
];

/// `n` OpenAI Chat Completions stream chunks, each a small content delta, then `[DONE]`.
fn small_deltas_body(n: usize) -> String {
    let mut rng = Lcg(0x5EED_0001);
    let mut body = String::new();
    body.push_str(
        "data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\
         \"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\
         \"system_fingerprint\":\"fp_b376dfbbd5\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\
         \"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    );
    for _ in 1..n {
        let word = rng.pick(WORDS);
        body.push_str(
            "data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\
             \"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\
             \"system_fingerprint\":\"fp_b376dfbbd5\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"",
        );
        body.push_str(word);
        body.push_str("\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    }
    body.push_str("data: [DONE]\n\n");
    body
}

/// The first events of `small_deltas_body` that fit in `limit` bytes (whole events only).
fn small_deltas_prefix(limit: usize) -> String {
    let full = small_deltas_body(5_000);
    let mut end = 0;
    for (i, _) in full.match_indices("\n\n") {
        if i + 2 > limit {
            break;
        }
        end = i + 2;
    }
    full[..end].to_owned()
}

/// One `data:` line of about `target` bytes: a streamed tool call whose `arguments` string
/// is itself a JSON document (a file to write), so it is full of escapes. Ends with a blank
/// line.
fn big_event_body(target: usize) -> String {
    let mut rng = Lcg(0x5EED_0002);
    const CODE: &[&str] = &[
        "fn main() {\n",
        "    let x = \"hello\";\n",
        "    println!(\"{x}\\t{}\", 42);\n",
        "}\n",
        "// comment with ünïcödé and a tab\t\n",
        "    if a < b && c > d { return; }\n",
        "    let path = \"C:\\\\Users\\\\bench\";\n",
        "\n",
    ];
    // Escaping twice (content in `arguments`, `arguments` in the event) grows the raw
    // content by about 1.3x.
    let mut content = String::new();
    while content.len() < target * 10 / 13 {
        content.push_str(rng.pick(CODE));
    }
    let arguments = serde_json::json!({
        "path": "src/generated.rs",
        "content": content,
        "overwrite": true,
    })
    .to_string();
    let event = serde_json::json!({
        "id": "chatcmpl-big",
        "object": "chat.completion.chunk",
        "created": 1_741_569_952,
        "model": "gpt-4.1-2025-04-14",
        "choices": [{
            "index": 0,
            "delta": {"tool_calls": [{
                "index": 0,
                "id": "call_abc123",
                "type": "function",
                "function": {"name": "write_file", "arguments": arguments},
            }]},
            "finish_reason": null,
        }],
    })
    .to_string();
    assert!(!event.contains('\n') && !event.contains('\r'));
    format!("data: {event}\n\n")
}

/// Shared, never-freed input so chunks are `Bytes::from_static` (cloning one is free, so
/// neither side pays for producing chunks).
fn leak(body: String) -> &'static [u8] {
    Box::leak(body.into_bytes().into_boxed_slice())
}

fn chunked(body: &'static [u8], size: usize) -> Vec<Bytes> {
    body.chunks(size).map(Bytes::from_static).collect()
}

// ---------------------------------------------------------------------------------------
// The two decoders
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Decode SSE and parse each event's data into a `serde_json::Value`.
    Json,
    /// Decode SSE only.
    SseOnly,
}

/// What a consumer does with one event's data. Returns 1 when the event was consumed.
#[inline]
fn consume(data: &str, mode: Mode) -> usize {
    if data == DONE {
        return 0;
    }
    if mode == Mode::Json {
        let value: serde_json::Value = serde_json::from_str(data).unwrap();
        black_box(&value);
    } else {
        black_box(data);
    }
    1
}

fn body_stream(
    chunks: &[Bytes],
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Unpin + '_ {
    futures_util::stream::iter(chunks.iter().cloned().map(Ok::<Bytes, Infallible>))
}

/// `chatprovider::sse::SseDecoder`, driven the way `transport::sse_events` drives it.
fn run_ours(rt: &Runtime, chunks: &[Bytes], mode: Mode, mut sink: impl FnMut(&str)) -> usize {
    rt.block_on(async {
        let mut body = body_stream(chunks);
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        let mut consumed = 0;
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk;
            decoder.push(&chunk, &mut out).unwrap();
            for event in out.drain(..) {
                sink(&event.data);
                consumed += consume(&event.data, mode);
            }
        }
        decoder.finish(&mut out).unwrap();
        for event in out.drain(..) {
            sink(&event.data);
            consumed += consume(&event.data, mode);
        }
        consumed
    })
}

/// `eventsource_stream::Eventsource` over the same chunks.
fn run_theirs(rt: &Runtime, chunks: &[Bytes], mode: Mode, mut sink: impl FnMut(&str)) -> usize {
    rt.block_on(async {
        let mut events = body_stream(chunks).eventsource();
        let mut consumed = 0;
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            sink(&event.data);
            consumed += consume(&event.data, mode);
        }
        consumed
    })
}

// ---------------------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------------------

struct Shape {
    name: String,
    body: &'static [u8],
    chunk_size: usize,
    /// Expected events, `[DONE]` included.
    events: usize,
    /// Iterations take long enough that criterion's default 100 linear samples would run
    /// for minutes.
    slow: bool,
    /// Also run the `sse_only` group.
    sse_only: bool,
    /// Also run `eventsource-stream` (false only where it would take hours).
    theirs: bool,
}

fn shapes() -> Vec<Shape> {
    let deltas = leak(small_deltas_body(5_000));
    let big = leak(big_event_body(4 * MIB));
    let deltas_256k = leak(small_deltas_prefix(256 * KIB));
    let deltas_256k_events = deltas_256k.windows(2).filter(|w| w == b"\n\n").count();
    let mut shapes = vec![
        Shape {
            name: "small_deltas/16KiB_chunks".into(),
            body: deltas,
            chunk_size: 16 * KIB,
            events: 5_001,
            slow: false,
            sse_only: true,
            theirs: true,
        },
        Shape {
            name: "small_deltas/one_chunk".into(),
            body: deltas,
            chunk_size: deltas.len(),
            events: 5_001,
            slow: true,
            sse_only: true,
            theirs: true,
        },
        Shape {
            name: "big_event_4MiB/16KiB_chunks".into(),
            body: big,
            chunk_size: 16 * KIB,
            events: 1,
            slow: true,
            sse_only: true,
            theirs: true,
        },
        Shape {
            name: "big_event_4MiB/one_chunk".into(),
            body: big,
            chunk_size: big.len(),
            events: 1,
            slow: true,
            sse_only: true,
            theirs: true,
        },
        Shape {
            name: "small_deltas_256KiB/1B_chunks".into(),
            body: deltas_256k,
            chunk_size: 1,
            events: deltas_256k_events,
            slow: true,
            sse_only: true,
            theirs: true,
        },
    ];
    for kib in [16, 64] {
        shapes.push(Shape {
            name: format!("big_event_{kib}KiB/1B_chunks"),
            body: leak(big_event_body(kib * KIB)),
            chunk_size: 1,
            events: 1,
            slow: true,
            sse_only: false,
            theirs: true,
        });
    }
    // The full 4 MiB event one byte at a time: ours only. `eventsource-stream` takes about
    // a minute at ~200 KB already and grows quadratically.
    shapes.push(Shape {
        name: "big_event_4MiB/1B_chunks".into(),
        body: big,
        chunk_size: 1,
        events: 1,
        slow: true,
        sse_only: false,
        theirs: false,
    });
    shapes
}

/// Outside any timed loop: both decoders see the same events with the same data.
fn check_same_events(rt: &Runtime, shape: &Shape, chunks: &[Bytes]) {
    let mut ours = Vec::new();
    let parsed_ours = run_ours(rt, chunks, Mode::Json, |d| ours.push(d.to_owned()));
    assert_eq!(ours.len(), shape.events, "{}: our event count", shape.name);
    if !shape.theirs {
        return;
    }
    let mut theirs = Vec::new();
    let parsed_theirs = run_theirs(rt, chunks, Mode::Json, |d| theirs.push(d.to_owned()));
    assert_eq!(
        theirs.len(),
        shape.events,
        "{}: their event count",
        shape.name
    );
    assert_eq!(parsed_ours, parsed_theirs, "{}: parsed events", shape.name);
    assert!(ours == theirs, "{}: event data differs", shape.name);
}

fn bench_sse(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for shape in shapes() {
        let chunks = chunked(shape.body, shape.chunk_size);
        check_same_events(&rt, &shape, &chunks);
        let modes: &[(Mode, &str)] = if shape.sse_only {
            &[(Mode::Json, "sse+json"), (Mode::SseOnly, "sse_only")]
        } else {
            &[(Mode::Json, "sse+json")]
        };
        for &(mode, prefix) in modes {
            let mut group = c.benchmark_group(format!("{prefix}/{}", shape.name));
            group.throughput(Throughput::Bytes(shape.body.len() as u64));
            if shape.slow {
                group.sample_size(10);
                group.sampling_mode(SamplingMode::Flat);
            }
            group.bench_function(BenchmarkId::from_parameter("ours"), |b| {
                b.iter(|| run_ours(&rt, black_box(&chunks), mode, |_| {}))
            });
            if shape.theirs {
                group.bench_function(BenchmarkId::from_parameter("eventsource-stream"), |b| {
                    b.iter(|| run_theirs(&rt, black_box(&chunks), mode, |_| {}))
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, bench_sse);
criterion_main!(benches);
