//! chaterror's integration tests, one module per area, in one test binary: one link
//! instead of one per file, and one place that names them all. docs/testing.md says how
//! the tests are organised and how to add one.
//!
//! `tests/alloc.rs` is a binary of its own: it measures allocations with a counting global
//! allocator, which other tests running in the same process would disturb.

mod classify_vectors;
mod common;
mod fixtures;
mod limits;
mod properties;
mod redaction;
mod retry_vectors;
