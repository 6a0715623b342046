//! MCP: the tools of admin-configured MCP servers in a chat's turns.
//!
//! Per turn, [`McpConnector::turn_tools`] picks the servers that apply (the chat's
//! `mcp_server_ids`, every enabled `force_on` server, the plan-mode rule), builds each
//! server's credentials for the chat's owner (API key, admin and per-user headers, the
//! user's OAuth2 token, the user's OIDC token), connects to them in parallel — each connect
//! bounded by [`McpSettings::connect_timeout`], failures skipped and reported — and yields
//! their tools as [`crate::tools::Tool`]s named `<slug>__<tool>`. Sessions are kept for
//! [`McpSettings::session_ttl`] and reused while the server's config and the user's
//! credentials are unchanged, so a busy chat does not handshake every step.
//!
//! docs/mcp.md has the decisions; the `rmcp` crate (the official Rust SDK) speaks the
//! protocol, over streamable HTTP, or over the legacy SSE transport of [`sse`].

pub mod intent;
pub mod naming;
pub mod oauth;
pub mod sse;
pub mod workspace;

mod connector;
mod session;
mod tool;

pub use connector::{
    ConnectObserver, ConnectOutcome, ConnectReport, McpConnector, McpSettings, OidcTokenSource,
    TurnMcp, DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_CONNECT_WARN_AFTER,
    DEFAULT_MAX_CACHED_SESSIONS, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_TOOLS_PER_SERVER,
    DEFAULT_SESSION_TTL, DEFAULT_WORKSPACE_CONNECT_TIMEOUT, FORCED_SERVER_UNAVAILABLE_MESSAGE,
};
pub use session::Session;
pub use tool::McpTool;
