//! The test kit's own tests, in one binary like every crate's (docs/testing.md). They need
//! the kit's features, which a workspace build turns on (`cargo test -p
//! chatd-test-support --all-features` alone).

#[cfg(feature = "db")]
mod cleanup;
