//! server-example's integration tests, one module per area, in one test binary: one link
//! instead of one per file, and one place that names them all. docs/testing.md says how
//! the tests are organised and how to add one.
//!
//! `tests/metrics.rs` is a binary of its own: it installs a process-wide tracing
//! subscriber that records every span, which would capture the spans of every other test
//! here (and let them match its assertions).

mod aibridge;
mod aibridge_bedrock;
mod api_tokens;
mod bad_inputs;
mod bot_openai;
mod chats;
mod cli;
mod config;
mod connections;
mod costs;
mod debug_runs;
mod demo;
mod embed;
mod files;
mod interceptions;
mod mcp;
mod mcp_auth;
mod mcp_tools;
mod model_overrides;
mod replicas;
mod secrets_e2e;
mod smoke;
mod streams;
mod subagents;
mod usage_limits;
mod users;
mod web;
mod workspace;
