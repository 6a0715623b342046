//! The test kit of the chatd workspace: one copy of what the crates' integration tests
//! share, each part behind a feature so a crate builds only what it uses.
//!
//! | Feature | Module | What |
//! |---|---|---|
//! | `fixtures` | `fixtures` | paths into `testdata/` at the repository root, the SSE form of a recorded stream |
//! | `db` | `db` | throw-away databases on SQLite and PostgreSQL, removed on drop (also when the test panics); `db::on_each_backend`; raw SQL beside the store; store fixtures |
//! | `scripted` | `scripted` | a `LanguageModel` answering from a script, its resolver, engine helpers |
//! | `replay` | `replay` | a local HTTP server answering from a queue of canned or recorded replies, recording what it receives |
//! | `responses` | `responses` | a local OpenAI Responses server: stored responses, `previous_response_id` chaining (400 when unknown, forgettable), usage growing with the conversation, recorded requests with the tokens each sent |
//! | `oauth` | `oauth` | a local OAuth2 authorization server (and MCP server origin): metadata, registration, an approving `/authorize`, a PKCE-checking `/token`, failures on demand |
//! | `request` | `request` | a typed HTTP request helper: status, text and JSON of an answer, secrets that must not appear |
//! | `server` | `server` | the reference server on a random local port over a test database |
//! | (always) | `process` | live processes' command lines from `/proc`, to see that a killed process is gone |
//! | `mcp` | `mcp` | the real `server-everything` MCP server from npm, a header-recording proxy, a misbehaving scripted MCP server |
//! | `replicas` | `replicas` | `chatd-server` processes on one PostgreSQL schema, a mock OpenAI provider that tells them apart, the cluster that configures them |
//!
//! A module exists only with its feature on, so this page (built without features) lists
//! none; build the documentation with `--all-features` to read them.
//!
//! The kit is a dev-dependency only and never published. It panics where a test should
//! fail: every failure message names what was being done.
//!
//! docs/testing.md describes how the tests are organised and how to add one.

// A test kit reports failure by panicking, with a message saying what failed; that is the
// behaviour a test wants from `expect`, so the workspace's ban on it does not fit here.
#![allow(clippy::expect_used)]

#[cfg(feature = "db")]
pub mod db;
#[cfg(feature = "fixtures")]
pub mod fixtures;
#[cfg(feature = "mcp")]
pub mod mcp;
#[cfg(feature = "oauth")]
pub mod oauth;
pub mod process;
#[cfg(feature = "replay")]
pub mod replay;
#[cfg(feature = "replicas")]
pub mod replicas;
#[cfg(feature = "request")]
pub mod request;
#[cfg(feature = "responses")]
pub mod responses;
#[cfg(feature = "scripted")]
pub mod scripted;
#[cfg(feature = "server")]
pub mod server;
