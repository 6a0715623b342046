//! Walking an error's source chain, boundedly.

use std::error::Error as StdError;
use std::fmt::{self, Write as _};

use crate::markers::{Canceled, DeadlineExceeded};

/// At most this many errors of a source chain are examined (an `std::io::Error` that
/// carries another error counts as a link of its own).
///
/// Real chains are a handful of links; the cap keeps a pathological or cyclic chain from
/// costing unbounded time.
pub const MAX_CHAIN_DEPTH: usize = 64;

/// The error text classification reads is cut to this many bytes.
///
/// Patterns and statuses sit near the start of real error texts; the cap keeps an error
/// whose `Display` embeds a whole response body from costing time and memory proportional
/// to that body.
pub const MAX_ERROR_TEXT_BYTES: usize = 16 * 1024;

/// The errors of a source chain, outermost first, with transparent carriers (an
/// `std::io::Error` holding a custom error) replaced by what they carry.
pub(crate) struct Chain<'a> {
    next: Option<&'a (dyn StdError + 'static)>,
    remaining: usize,
}

impl<'a> Chain<'a> {
    pub(crate) fn new(err: &'a (dyn StdError + 'static)) -> Self {
        Chain {
            next: Some(err),
            remaining: MAX_CHAIN_DEPTH,
        }
    }
}

impl<'a> Iterator for Chain<'a> {
    type Item = &'a (dyn StdError + 'static);

    fn next(&mut self) -> Option<Self::Item> {
        let mut node = self.next.take()?;
        loop {
            if self.remaining == 0 {
                return None;
            }
            self.remaining -= 1;
            match carried(node) {
                Some(inner) => node = inner,
                None => break,
            }
        }
        self.next = node.source();
        Some(node)
    }
}

/// What a transparent carrier holds. `std::io::Error::other(e)` shows `e`'s text but its
/// `source()` skips `e`, which would hide a `ProviderError` or a marker from a plain walk.
fn carried<'a>(node: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    if let Some(io) = node.downcast_ref::<std::io::Error>() {
        return io.get_ref().map(|e| e as &(dyn StdError + 'static));
    }
    None
}

pub(crate) fn is_canceled_node(node: &(dyn StdError + 'static)) -> bool {
    node.is::<Canceled>()
        || node
            .downcast_ref::<tokio::task::JoinError>()
            .is_some_and(tokio::task::JoinError::is_cancelled)
}

pub(crate) fn is_deadline_node(node: &(dyn StdError + 'static)) -> bool {
    node.is::<DeadlineExceeded>() || node.is::<tokio::time::error::Elapsed>()
}

/// The full text of an error chain, as Go's `err.Error()` would give it: each link's text
/// joined with `": "`, skipping a link whose text the chain already shows (Rust wrappers
/// differ on whether `Display` repeats the source). At most [`MAX_ERROR_TEXT_BYTES`].
pub(crate) fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut text = String::new();
    let mut piece = String::new();
    for node in Chain::new(err) {
        piece.clear();
        let _ = write!(
            Capped {
                out: &mut piece,
                cap: MAX_ERROR_TEXT_BYTES
            },
            "{node}"
        );
        if piece.trim().is_empty() || text.contains(piece.as_str()) {
            continue;
        }
        if !text.is_empty() {
            push_capped(&mut text, ": ");
        }
        push_capped(&mut text, &piece);
        if text.len() >= MAX_ERROR_TEXT_BYTES {
            break;
        }
    }
    text
}

fn push_capped(out: &mut String, s: &str) {
    let room = MAX_ERROR_TEXT_BYTES.saturating_sub(out.len());
    out.push_str(prefix_within(s, room));
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
pub(crate) fn prefix_within(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// A `fmt::Write` that keeps at most `cap` bytes and then stops the formatter, so a huge
/// `Display` is never rendered in full.
struct Capped<'a> {
    out: &'a mut String,
    cap: usize,
}

impl fmt::Write for Capped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.cap.saturating_sub(self.out.len());
        let part = prefix_within(s, room);
        self.out.push_str(part);
        if part.len() < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Link {
        text: String,
        source: Option<Box<dyn StdError + Send + Sync>>,
    }

    impl fmt::Display for Link {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.text)
        }
    }

    impl StdError for Link {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.source
                .as_deref()
                .map(|e| e as &(dyn StdError + 'static))
        }
    }

    fn link(text: &str, source: Option<Box<dyn StdError + Send + Sync>>) -> Link {
        Link {
            text: text.to_owned(),
            source,
        }
    }

    #[test]
    fn text_joins_and_dedupes() {
        let e = link(
            "outer",
            Some(Box::new(link("middle", Some(Box::new(Canceled))))),
        );
        assert_eq!(chain_text(&e), "outer: middle: context canceled");
        let e = link("request failed: boom", Some(Box::new(link("boom", None))));
        assert_eq!(chain_text(&e), "request failed: boom");
        let e = link("", Some(Box::new(link("inner", None))));
        assert_eq!(chain_text(&e), "inner");
    }

    #[test]
    fn text_is_capped() {
        let e = link(&"é".repeat(MAX_ERROR_TEXT_BYTES), None);
        let t = chain_text(&e);
        assert!(t.len() <= MAX_ERROR_TEXT_BYTES);
        assert!(t.len() > MAX_ERROR_TEXT_BYTES - 4);
        let exact = link(&"a".repeat(MAX_ERROR_TEXT_BYTES), None);
        assert_eq!(chain_text(&exact).len(), MAX_ERROR_TEXT_BYTES);
    }

    fn nested(depth: usize) -> Link {
        let mut e = link("level", Some(Box::new(Canceled)));
        for _ in 1..depth {
            e = link("level", Some(Box::new(e)));
        }
        e
    }

    #[test]
    fn depth_limit_edge() {
        // `depth` Link levels then the marker at position depth+1.
        assert!(Chain::new(&nested(MAX_CHAIN_DEPTH - 1)).any(is_canceled_node));
        assert!(!Chain::new(&nested(MAX_CHAIN_DEPTH)).any(is_canceled_node));
        assert_eq!(
            Chain::new(&nested(10 * MAX_CHAIN_DEPTH)).count(),
            MAX_CHAIN_DEPTH
        );
    }

    #[test]
    fn carriers_are_looked_into() {
        let io = std::io::Error::other(link("inside io", Some(Box::new(Canceled))));
        let texts: Vec<String> = Chain::new(&io).map(ToString::to_string).collect();
        assert_eq!(texts, ["inside io", "context canceled"]);
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(Chain::new(&plain).count(), 1);
    }
}
