//! Classification must not allocate in proportion to response bodies it declines to parse
//! (over `MAX_PARSED_BODY_BYTES`), nor to huge error texts (cut at `MAX_ERROR_TEXT_BYTES`).
//!
//! A counting global allocator measures the bytes allocated while classifying. This file
//! holds a single test so that no other test allocates concurrently in the measured region,
//! and it stays a test binary of its own (outside `tests/it`) for the same reason: the
//! allocator is process-wide.
//! (`stats_alloc` provides the allocator because the workspace forbids `unsafe`, which a
//! hand-written `GlobalAlloc` needs.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::alloc::System;

use chaterror::{
    classify, ChatErrorKind, ProviderError, MAX_ERROR_TEXT_BYTES, MAX_PARSED_BODY_BYTES,
};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// An error whose body is a JSON document of exactly `len` bytes with a short message.
fn with_body(len: usize) -> ProviderError {
    let prefix = r#"{"error":{"message":"Image exceeds 5 MB maximum.","type":"invalid_request_error"},"pad":""#;
    let suffix = r#""}"#;
    let pad = len - prefix.len() - suffix.len();
    let body = format!("{prefix}{}{suffix}", "p".repeat(pad));
    assert_eq!(body.len(), len);
    ProviderError::new("upstream failed")
        .with_status(400)
        .with_body(body)
}

/// Bytes allocated while classifying `err`.
fn bytes_allocated(err: &ProviderError) -> usize {
    let region = Region::new(GLOBAL);
    let c = classify(err);
    let bytes = region.change().bytes_allocated;
    assert_eq!(c.kind(), Some(&ChatErrorKind::Generic));
    bytes
}

#[test]
fn allocation_does_not_follow_declined_bodies() {
    let just_over = with_body(MAX_PARSED_BODY_BYTES + 1);
    let huge = with_body(16 * 1024 * 1024);
    let parsed = with_body(MAX_PARSED_BODY_BYTES);
    let _ = bytes_allocated(&parsed); // warm up any lazy state

    let over = bytes_allocated(&just_over);
    let huge_bytes = bytes_allocated(&huge);
    // Declined: identical work whatever the size, and small.
    assert_eq!(
        over, huge_bytes,
        "a declined body must cost the same whatever its size"
    );
    assert!(
        over < 4096,
        "declined body classification allocated {over} bytes"
    );

    // Parsed at the limit: the body is read in place; only the message is copied.
    let at_limit = bytes_allocated(&parsed);
    assert!(at_limit < 4096, "a 64 KiB body allocated {at_limit} bytes");
    assert_eq!(classify(&parsed).detail(), "Image exceeds 5 MB maximum.");
    assert_eq!(classify(&just_over).detail(), "upstream failed");

    // A huge message (8 MiB) is cut before it is copied, lowercased and scanned.
    let long = ProviderError::new("x".repeat(8 * 1024 * 1024)).with_status(400);
    let region = Region::new(GLOBAL);
    let c = classify(&long);
    let text_bytes = region.change().bytes_allocated;
    drop(c);
    assert!(
        text_bytes < 16 * MAX_ERROR_TEXT_BYTES,
        "a huge message allocated {text_bytes} bytes"
    );
    println!("bytes allocated: declined body {over}, 64 KiB parsed body {at_limit}, 8 MiB message {text_bytes}");
}
