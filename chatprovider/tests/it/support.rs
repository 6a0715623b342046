//! Helpers of the streaming-client tests that need chatprovider's own decoders (the rest —
//! the replay server, chunking, fixtures — is the test kit's).
#![allow(clippy::expect_used)]

use chatprovider::sse::{SseDecoder, SseEvent};
use chatprovider::{StreamDecoder, StreamPart};

/// Runs `decoder` over `body` delivered in `chunks`, exactly as the HTTP path does.
pub fn decode_chunked<D: StreamDecoder>(
    mut decoder: D,
    chunks: &[Vec<u8>],
) -> Result<Vec<StreamPart>, chaterror::ProviderError> {
    let mut sse = SseDecoder::default();
    let mut out = Vec::new();
    let mut events: Vec<SseEvent> = Vec::new();
    for c in chunks {
        sse.push(c, &mut events)
            .expect("the recorded stream is valid SSE");
        for e in events.drain(..) {
            if !decoder.is_done() {
                decoder.on_event(&e, &mut out)?;
            }
        }
    }
    sse.finish(&mut events)
        .expect("the recorded stream ends as valid SSE");
    for e in events.drain(..) {
        if !decoder.is_done() {
            decoder.on_event(&e, &mut out)?;
        }
    }
    decoder.on_end(&mut out)?;
    Ok(out)
}
