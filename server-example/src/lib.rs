//! The reference HTTP server of chatd: Coder's `/api/experimental` chats API over
//! [`chatd_core`], with users, API tokens and an offline demo model.
//!
//! The server is thin: routing, authentication, HTTP framing and configuration. Every chat
//! rule lives in the engine. [`router`] builds the axum application from an [`AppState`],
//! which [`state::build`] assembles from [`ServerOptions`].
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
pub mod state;

use axum::routing::get;
use axum::Router;

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

/// The whole application.
pub fn router(state: AppState) -> Router {
    let metrics = metrics::MetricsLayer::new(state.metrics().clone());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::serve))
        .nest("/api/experimental", routes::experimental())
        .nest("/api/v2", routes::v2())
        .fallback(not_found)
        .method_not_allowed_fallback(routes::unsupported::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(metrics)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn not_found() -> ApiError {
    ApiError::not_found("No such route.")
}
