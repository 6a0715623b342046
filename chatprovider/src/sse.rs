//! An incremental Server-Sent Events decoder for provider streams.
//!
//! Written for this crate (rather than taken from `eventsource-stream`) because provider
//! streams need two guarantees the general-purpose crates do not give: each byte is scanned
//! once however the body is chunked (a multi-megabyte event arriving one byte at a time
//! stays linear), and an event larger than a limit is an error instead of unbounded memory.
//! `benches/sse.rs` measures it against `eventsource-stream`; the numbers are in
//! `docs/sse-benchmark.md`.

use std::fmt;

/// Default largest event accepted: 16 MiB of `data`.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Buffered bytes that are already processed are dropped once they exceed this and half
/// the buffer, so compaction costs amortized O(1) per byte.
const COMPACT_THRESHOLD: usize = 64 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; empty when absent (the SSE default type "message").
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, when present.
    pub id: Option<String>,
}

/// The stream broke the decoder's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SseError {
    /// One event (or one line) exceeded the maximum size.
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => {
                write!(f, "stream event exceeds the maximum size of {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}

/// Incremental decoder: feed body chunks with [`SseDecoder::push`], call
/// [`SseDecoder::finish`] at the end of the body.
///
/// Lenient where providers are sloppy: `data:` with or without a space, `\n`, `\r\n` or `\r`
/// line ends, comment lines, a byte-order mark, and a last event without its terminating
/// blank line (dispatched at end of body; strict SSE would drop it, but one recorded
/// Anthropic body ends that way).
#[derive(Debug)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Start of the current (incomplete) line in `buf`.
    line_start: usize,
    /// Bytes before this index were searched for a line end already.
    scanned: usize,
    /// The previous line ended with `\r`; a `\n` right after it is part of that line end.
    after_cr: bool,
    // Kept apart from `buf` so a line can be read in place while the event is updated.
    event: PendingEvent,
}

/// The event being assembled from its lines.
#[derive(Debug)]
struct PendingEvent {
    at_stream_start: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
    max_event_bytes: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    /// A decoder that rejects events with more than `max_event_bytes` of data.
    pub fn new(max_event_bytes: usize) -> Self {
        SseDecoder {
            buf: Vec::new(),
            line_start: 0,
            scanned: 0,
            after_cr: false,
            event: PendingEvent {
                at_stream_start: true,
                event: String::new(),
                data: String::new(),
                has_data: false,
                id: None,
                max_event_bytes,
            },
        }
    }

    /// Feeds one chunk and appends every event it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.buf.extend_from_slice(chunk);
        loop {
            let rest = self.buf.get(self.scanned..).unwrap_or_default();
            let Some(offset) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.scanned = self.buf.len();
                break;
            };
            let end = self.scanned + offset;
            let terminator = self.buf.get(end).copied().unwrap_or(b'\n');
            if terminator == b'\n' && self.after_cr && end == self.line_start {
                // The `\n` of a `\r\n` split across chunks (or lines): not a new line.
                self.after_cr = false;
                self.line_start = end + 1;
                self.scanned = end + 1;
                continue;
            }
            self.after_cr = terminator == b'\r';
            let line = self.buf.get(self.line_start..end).unwrap_or_default();
            self.event.process_line(line, out)?;
            self.line_start = end + 1;
            self.scanned = end + 1;
        }
        let pending = self.buf.len() - self.line_start;
        if self.event.data.len() + pending > self.event.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.event.max_event_bytes,
            });
        }
        if self.line_start >= COMPACT_THRESHOLD && self.line_start * 2 >= self.buf.len() {
            self.buf.drain(..self.line_start);
            self.scanned -= self.line_start;
            self.line_start = 0;
        }
        Ok(())
    }

    /// Ends the body: a trailing line and a pending event are dispatched.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.line_start < self.buf.len() {
            let line = self.buf.get(self.line_start..).unwrap_or_default();
            self.event.process_line(line, out)?;
            self.line_start = self.buf.len();
            self.scanned = self.buf.len();
        }
        self.event.dispatch(out);
        self.buf.clear();
        self.line_start = 0;
        self.scanned = 0;
        Ok(())
    }
}

impl PendingEvent {
    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut line = line;
        if self.at_stream_start {
            self.at_stream_start = false;
            line = line.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line.first() == Some(&b':') {
            return Ok(()); // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = line.get(i + 1..).unwrap_or_default();
                let value = value.strip_prefix(b" ").unwrap_or(value);
                (line.get(..i).unwrap_or_default(), value)
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                // Measured after decoding: each invalid byte becomes U+FFFD, three bytes of
                // UTF-8, so the raw length would let an event grow to three times the limit.
                let text = String::from_utf8_lossy(value);
                if self.data.len() + text.len() + 1 > self.max_event_bytes {
                    return Err(SseError::EventTooLarge {
                        limit: self.max_event_bytes,
                    });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&text);
                self.has_data = true;
            }
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            b"id" => self.id = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // `retry:` and unknown fields are ignored
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
                id: self.id.take(),
            });
        }
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn decode_in_chunks(body: &[u8], chunk: usize) -> Vec<SseEvent> {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for c in body.chunks(chunk.max(1)) {
            d.push(c, &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn basic_events_any_chunking() {
        let body = b"event: a\ndata: {\"x\":1}\n\n: keep-alive\ndata:no-space\ndata: second line\n\r\nid: 7\ndata: last\r\n\r\n";
        let want = vec![
            SseEvent {
                event: "a".into(),
                data: "{\"x\":1}".into(),
                id: None,
            },
            SseEvent {
                event: String::new(),
                data: "no-space\nsecond line".into(),
                id: None,
            },
            SseEvent {
                event: String::new(),
                data: "last".into(),
                id: Some("7".into()),
            },
        ];
        for n in [1, 2, 3, 5, 7, 64, 4096] {
            assert_eq!(decode_in_chunks(body, n), want, "chunk size {n}");
        }
    }

    #[test]
    fn cr_only_line_ends_and_bom() {
        let body = b"\xEF\xBB\xBFdata: a\r\rdata: b\r\r";
        for n in [1, 2, 100] {
            let got = decode_in_chunks(body, n);
            assert_eq!(
                got.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
                ["a", "b"],
                "{n}"
            );
        }
    }

    #[test]
    fn last_event_without_blank_line_is_dispatched_at_end() {
        let got = decode_in_chunks(b"event: message_stop\ndata: {\"type\":\"message_stop\"}", 3);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event, "message_stop");
    }

    #[test]
    fn event_size_limit_edge() {
        let mut d = SseDecoder::new(10);
        let mut out = Vec::new();
        // Exactly 10 bytes of data (plus the separator accounting) is accepted…
        d.push(b"data: 123456789\n\n", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        // …11 is not, whether the line is complete or still arriving.
        let mut d = SseDecoder::new(10);
        assert_eq!(
            d.push(b"data: 12345678901\n\n", &mut out),
            Err(SseError::EventTooLarge { limit: 10 })
        );
        let mut d = SseDecoder::new(10);
        assert!(d.push(b"data: 1234567890123", &mut out).is_err());
    }

    #[test]
    fn invalid_utf8_counts_against_the_limit_as_decoded() {
        // Found by the sse_decoder fuzz target: 4 invalid bytes are 4 raw bytes but 12 bytes
        // of decoded text (U+FFFD each), so a raw-length check let the event exceed the limit.
        let mut out = Vec::new();
        let mut d = SseDecoder::new(10);
        assert_eq!(
            d.push(b"data: \xFF\xFF\xFF\xFF\n\n", &mut out),
            Err(SseError::EventTooLarge { limit: 10 })
        );
        assert!(out.is_empty());
        // Three of them decode to 9 bytes, which fits.
        let mut d = SseDecoder::new(10);
        d.push(b"data: \xFF\xFF\xFF\n\n", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, "\u{FFFD}\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn one_byte_chunks_of_a_large_event_stay_linear() {
        // 2 MiB in one event, fed one byte at a time: finishes quickly only if nothing is
        // rescanned or moved per byte.
        let payload = "x".repeat(2 * 1024 * 1024);
        let body = format!("data: {payload}\n\n");
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for b in body.as_bytes() {
            d.push(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data.len(), payload.len());
    }
}
