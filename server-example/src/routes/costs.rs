//! Cost reports under `/api/experimental/chats/cost`: one user's spend in a window
//! (`GET /chats/cost/{user}/summary`, the user themself or an administrator; `{user}` is
//! `me`, a user id or a username) and every user's (`GET /chats/cost/users`,
//! administrators). The rules are chatd-core's ([`chatd_core::Admin::cost_summary`],
//! [`chatd_core::Admin::cost_users`]) and codersdk's (the query: `parse_cost_window`,
//! `parse_cost_users_query`); the default window ends at the engine's clock.
//! Decisions: docs/cost-reports.md.

use axum::extract::State;
use codersdk::{ChatCostSummary, ChatCostUsersResponse, Timestamp};
use serde::Deserialize;

use super::config::Admin;
use super::Route;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Json};
use crate::extract::{Query, UserPath};
use crate::state::AppState;

/// The routes of this group.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/chats/cost/users", cost_users),
        Route::get("/chats/cost/{user}/summary", cost_summary),
    ]
}

/// "Now" as the engine's rules see it.
fn now(state: &AppState) -> Timestamp {
    Timestamp(state.engine().clock().now())
}

/// Query of `GET /chats/cost/{user}/summary`; the values are judged by
/// `codersdk::parse_cost_window`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryQuery {
    start_date: Option<String>,
    end_date: Option<String>,
}

async fn cost_summary(
    State(state): State<AppState>,
    caller: Caller,
    UserPath(user): UserPath,
    Query(query): Query<SummaryQuery>,
) -> ApiResult<Json<ChatCostSummary>> {
    let now = now(&state);
    let window =
        codersdk::parse_cost_window(query.start_date.as_deref(), query.end_date.as_deref(), now)
            .map_err(ApiError::validation)?;
    let summary = state
        .admin()
        .cost_summary(&caller.actor, &user, &window, now.0)
        .await?;
    Ok(Json(summary))
}

/// Query of `GET /chats/cost/users`; the values are judged by
/// `codersdk::parse_cost_users_query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    username: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

async fn cost_users(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<UsersQuery>,
) -> ApiResult<Json<ChatCostUsersResponse>> {
    let query = codersdk::parse_cost_users_query(
        query.start_date.as_deref(),
        query.end_date.as_deref(),
        query.username.as_deref(),
        query.limit.as_deref(),
        query.offset.as_deref(),
        now(&state),
    )
    .map_err(ApiError::validation)?;
    let page = state.admin().cost_users(&admin.0.actor, &query).await?;
    Ok(Json(page))
}
