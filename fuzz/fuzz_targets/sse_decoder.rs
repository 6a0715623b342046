//! The SSE framer of every provider stream: arbitrary bytes, delivered in arbitrary
//! chunks (the first byte picks the chunk size), must never panic, and an event never
//! exceeds the decoder's size limit.
#![no_main]

use chatprovider::sse::SseDecoder;
use libfuzzer_sys::fuzz_target;

/// Small on purpose, so the size limit is reached by the fuzzer's inputs.
const MAX_EVENT_BYTES: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split).max(1);
    let mut decoder = SseDecoder::new(MAX_EVENT_BYTES);
    let mut events = Vec::new();
    for piece in body.chunks(chunk) {
        if decoder.push(piece, &mut events).is_err() {
            return;
        }
    }
    if decoder.finish(&mut events).is_err() {
        return;
    }
    for event in &events {
        assert!(event.data.len() <= MAX_EVENT_BYTES);
    }
});
