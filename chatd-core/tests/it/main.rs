//! chatd-core's integration tests, one module per area, in one test binary: one link
//! instead of one per file, and one place that names them all. docs/testing.md says how
//! the tests are organised and how to add one.

mod admin;
mod aibridge_records;
mod aibridge_retention;
mod cluster;
mod compaction;
mod configcache;
mod debug_runs;
mod engine;
mod engine_actions;
mod engine_bedrock;
mod engine_chain;
mod engine_gemini;
mod engine_limits;
mod engine_openai;
mod engine_overrides;
mod engine_summary;
mod mcp;
mod mcp_auth;
mod migrations;
mod plan;
mod retention;
mod shutdown;
mod store;
mod store_actions;
mod store_config;
mod store_costs;
mod store_files;
mod store_listing;
mod store_overrides;
mod store_queue;
mod store_tokens;
mod store_turns;
mod subagents;
mod tools;
mod usage_limits;
mod workspace_context;
mod workspace_engine;
mod workspace_local;
mod workspace_openai;
mod workspace_tools;
