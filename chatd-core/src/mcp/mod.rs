//! MCP servers from the engine's side: per-user OAuth2 ([`oauth`]).

pub mod oauth;
