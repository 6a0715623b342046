//! chatcost's integration tests, one module per area, in one test binary: one link
//! instead of one per file, and one place that names them all. docs/testing.md says how
//! the tests are organised and how to add one.

mod context_limits;
mod cost_rules;
mod normalize_usage;
mod price_seed;
