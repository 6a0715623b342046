//! The AI Gateway's records under `/api/v2/aibridge`: `GET /aibridge/interceptions` (one
//! record per proxied call, newest first, `after_id` paging) and `GET /aibridge/sessions`
//! (the calls grouped by client session, else thread, else call; an opaque `cursor`).
//! Administrators see every user's, members their own. The rules are chatd-core's
//! ([`chatd_core::Admin::list_aibridge_interceptions`],
//! [`chatd_core::Admin::list_aibridge_sessions`]) and codersdk's (the queries:
//! `parse_aibridge_interceptions_query`, `parse_aibridge_sessions_query`). Decisions:
//! docs/ai-gateway-records.md.

use axum::extract::State;
use codersdk::{AIBridgeListInterceptionsResponse, AIBridgeListSessionsResponse};
use serde::Deserialize;

use super::Route;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Json};
use crate::extract::Query;
use crate::state::AppState;

/// The routes of this group (under `/api/v2`).
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/aibridge/interceptions", list_interceptions),
        Route::get("/aibridge/sessions", list_sessions),
    ]
}

/// Query of `GET /aibridge/interceptions`; judged by
/// `codersdk::parse_aibridge_interceptions_query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InterceptionsQuery {
    initiator: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    started_after: Option<String>,
    started_before: Option<String>,
    after_id: Option<String>,
    limit: Option<String>,
}

async fn list_interceptions(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<InterceptionsQuery>,
) -> ApiResult<Json<AIBridgeListInterceptionsResponse>> {
    let query = codersdk::parse_aibridge_interceptions_query(
        q.initiator.as_deref(),
        q.provider.as_deref(),
        q.model.as_deref(),
        q.started_after.as_deref(),
        q.started_before.as_deref(),
        q.after_id.as_deref(),
        q.limit.as_deref(),
    )
    .map_err(ApiError::validation)?;
    let page = state
        .admin()
        .list_aibridge_interceptions(&caller.actor, &query)
        .await?;
    Ok(Json(page))
}

/// Query of `GET /aibridge/sessions`; judged by `codersdk::parse_aibridge_sessions_query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsQuery {
    initiator: Option<String>,
    started_after: Option<String>,
    started_before: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<SessionsQuery>,
) -> ApiResult<Json<AIBridgeListSessionsResponse>> {
    let query = codersdk::parse_aibridge_sessions_query(
        q.initiator.as_deref(),
        q.started_after.as_deref(),
        q.started_before.as_deref(),
        q.cursor.as_deref(),
        q.limit.as_deref(),
    )
    .map_err(ApiError::validation)?;
    let page = state
        .admin()
        .list_aibridge_sessions(&caller.actor, &query)
        .await?;
    Ok(Json(page))
}
