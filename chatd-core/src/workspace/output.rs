//! Bounded capture of a process's output: the first bytes and a ring buffer of the last
//! ones, so a command printing 100 MB costs a fixed amount of memory and the model still
//! sees how it started and how it ended.

use std::collections::VecDeque;

/// What a process printed on one stream, bounded: `head` holds the first bytes, `tail` the
/// last ones, and `total_bytes` counts everything, so `total_bytes - head - tail` bytes in
/// between were dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    /// The first bytes printed.
    pub head: Vec<u8>,
    /// The last bytes printed after `head` (none of them also in `head`).
    pub tail: Vec<u8>,
    /// Every byte printed.
    pub total_bytes: u64,
}

impl std::fmt::Debug for CapturedOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturedOutput")
            .field("head_len", &self.head.len())
            .field("tail_len", &self.tail.len())
            .field("total_bytes", &self.total_bytes)
            .finish()
    }
}

impl CapturedOutput {
    /// Output captured whole (tests and embedders' own implementations).
    pub fn complete(bytes: impl Into<Vec<u8>>) -> Self {
        let head = bytes.into();
        CapturedOutput {
            total_bytes: u64::try_from(head.len()).unwrap_or(u64::MAX),
            head,
            tail: Vec::new(),
        }
    }

    /// Bytes printed but not kept.
    pub fn dropped_bytes(&self) -> u64 {
        let kept = u64::try_from(self.head.len().saturating_add(self.tail.len())).unwrap_or(0);
        self.total_bytes.saturating_sub(kept)
    }

    /// The kept bytes in order (head then tail), whether or not some were dropped.
    pub fn kept(&self) -> Vec<u8> {
        let mut all = self.head.clone();
        all.extend_from_slice(&self.tail);
        all
    }
}

/// The live buffer behind a [`CapturedOutput`]: fills `head` first, then keeps the last
/// `tail_cap` bytes in a ring.
#[derive(Debug)]
pub(crate) struct OutputBuffer {
    head: Vec<u8>,
    head_cap: usize,
    tail: VecDeque<u8>,
    tail_cap: usize,
    total: u64,
}

impl OutputBuffer {
    pub(crate) fn new(head_cap: usize, tail_cap: usize) -> Self {
        OutputBuffer {
            head: Vec::new(),
            head_cap,
            tail: VecDeque::new(),
            tail_cap,
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        self.total = self
            .total
            .saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        let room = self.head_cap.saturating_sub(self.head.len());
        if room > 0 {
            let (first, rest) = bytes.split_at(room.min(bytes.len()));
            self.head.extend_from_slice(first);
            bytes = rest;
        }
        if self.tail_cap == 0 || bytes.is_empty() {
            return;
        }
        // Only the last `tail_cap` bytes of this chunk can survive.
        let keep = bytes.len().min(self.tail_cap);
        let (_, bytes) = bytes.split_at(bytes.len() - keep);
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow.min(self.tail.len()));
        self.tail.extend(bytes);
    }

    pub(crate) fn snapshot(&self) -> CapturedOutput {
        CapturedOutput {
            head: self.head.clone(),
            tail: self.tail.iter().copied().collect(),
            total_bytes: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn keeps_head_and_last_bytes_and_counts_everything() {
        let mut b = OutputBuffer::new(4, 6);
        b.push(b"abc");
        assert_eq!(b.snapshot(), CapturedOutput::complete(b"abc".to_vec()));
        b.push(b"defgh");
        let s = b.snapshot();
        assert_eq!(s.head, b"abcd");
        assert_eq!(s.tail, b"efgh");
        assert_eq!(s.dropped_bytes(), 0);
        // Exactly full: nothing dropped yet.
        b.push(b"ij");
        let s = b.snapshot();
        assert_eq!(s.tail, b"efghij");
        assert_eq!(s.dropped_bytes(), 0);
        // One byte over the edge: the oldest tail byte goes.
        b.push(b"k");
        let s = b.snapshot();
        assert_eq!(s.tail, b"fghijk");
        assert_eq!(s.total_bytes, 11);
        assert_eq!(s.dropped_bytes(), 1);
        // A chunk larger than the ring keeps only its end.
        b.push(&[b'x'; 100]);
        let s = b.snapshot();
        assert_eq!(s.head, b"abcd");
        assert_eq!(s.tail, b"xxxxxx");
        assert_eq!(s.total_bytes, 111);
        assert_eq!(s.kept().len(), 10);
    }

    #[test]
    fn a_hundred_megabytes_cost_the_caps_only() {
        let mut b = OutputBuffer::new(1024, 4096);
        let chunk = vec![b'y'; 64 * 1024];
        for _ in 0..1600 {
            b.push(&chunk);
        }
        let s = b.snapshot();
        assert_eq!(s.total_bytes, 1600 * 64 * 1024);
        assert_eq!(s.head.len(), 1024);
        assert_eq!(s.tail.len(), 4096);
    }
}
