//! codersdk's integration tests, one module per area, in one test binary: one link instead
//! of one per file, and one place that names them all. docs/testing.md says how the tests
//! are organised and how to add one.

// The typed client exists with the `client` feature only (`cargo test -p codersdk
// --features client`, or any workspace build: server-example turns it on).
#[cfg(feature = "client")]
mod client;
mod generated;
mod samples;
