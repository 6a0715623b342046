//! Routes (being built).

use axum::Router;

use crate::state::AppState;

/// The routes of this group.
pub fn routes() -> Router<AppState> {
    Router::new()
}
