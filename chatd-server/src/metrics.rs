//! Prometheus metrics served at `/metrics`.

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {}
