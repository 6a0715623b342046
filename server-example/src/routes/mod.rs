//! The HTTP routes, one module per group.

pub mod chats;
pub mod config;
pub mod files;
pub mod mcp;
pub mod streams;
pub mod unsupported;
pub mod users;

use axum::Router;

use crate::state::AppState;

/// Routes under `/api/experimental`.
pub fn experimental() -> Router<AppState> {
    Router::new()
        .merge(chats::routes())
        .merge(streams::routes())
        .merge(files::routes())
        .merge(config::routes())
        .merge(mcp::routes())
        .merge(unsupported::routes())
}

/// Routes under `/api/v2` (Coder's user and token routes).
pub fn v2() -> Router<AppState> {
    users::routes()
}
