//! The reference HTTP server of chatd: Coder's `/api/experimental` chats API over
//! [`chatd_core`], with users, API tokens and an offline demo model.
//!
//! The server is thin: routing, authentication, HTTP framing and configuration. Every chat
//! rule lives in the engine. [`router`] builds the axum application from an [`AppState`],
//! which [`state::build`] assembles from [`ServerOptions`].
//!
//! To serve the chats API from your own axum application, behind your own authentication,
//! nest [`chats_router`] with [`Authentication::Upstream`] and have your middleware attach
//! an [`Authenticated`] actor to each request (`examples/embed_router.rs`;
//! docs/server-embedding.md).
//!
//! # Feature flags
//!
//! None.

pub mod auth;
pub mod demo;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod routes;
pub mod serve;
pub mod sockets;
pub mod state;
pub mod web;

use axum::Router;

pub use auth::{Authenticated, Authentication};
pub use error::{ApiError, ApiResult};
pub use state::{AppState, ServerOptions, Started};

/// Most bytes of any request body not given its own limit (the chat creation limit).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The Rust snippets of the repository README, compiled (and run unless marked `no_run`) as
/// doctests so the quick start cannot rot. They live here because this crate enables
/// codersdk's `client` feature, which the client snippet needs.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The whole reference server: `/healthz`, `/metrics`, the chat page at `/` ([`web`]),
/// the chats API under `/api/experimental` and the user and token routes under `/api/v2`,
/// authenticated with this server's API tokens.
pub fn router(state: AppState) -> Router {
    let metrics = metrics::MetricsLayer::new(state.metrics().clone());
    // One table builds the router and is what the bad-input suite walks.
    routes::build(routes::table())
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(metrics)
        .with_state(state)
}

/// The chats API alone — the routes the reference server serves under `/api/experimental`
/// (`/chats…`, `/mcp/servers…`), unprefixed — for mounting in another axum application:
/// `Router::new().nest("/api/experimental", chats_router(state, Authentication::Upstream))`.
/// Nesting it at `/api/experimental` below some prefix keeps codersdk's typed client usable
/// with that prefix as its base URL.
///
/// With [`Authentication::Upstream`], put your authentication middleware on the returned
/// router (or outside it) and insert an [`Authenticated`] into every request it admits;
/// requests without one are 401. With [`Authentication::Tokens`] the API authenticates
/// this server's API tokens, as [`router`] does (the `/api/v2` routes that issue them are
/// not part of this router).
///
/// The router carries the JSON error bodies, the body limits and the request layer
/// ([`metrics::MetricsLayer`]: spans and the create/send latencies recorded in the state's
/// metrics); serve [`metrics::serve`] yourself if you want the Prometheus endpoint.
pub fn chats_router(state: AppState, authentication: Authentication) -> Router {
    let metrics = metrics::MetricsLayer::new(state.metrics().clone());
    routes::experimental()
        .fallback(not_found)
        .method_not_allowed_fallback(routes::unsupported::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::Extension(authentication))
        .layer(metrics)
        .with_state(state)
}

/// `GET /healthz`: `ok`, or 503 `draining` once a rolling restart began (SIGTERM), so a
/// load balancer stops sending new requests here while running turns finish.
pub(crate) async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, &'static str) {
    if state.is_draining() {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        (axum::http::StatusCode::OK, "ok")
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("No such route.")
}
