//! Usage limits under `/api/experimental/chats/usage-limits` (codersdk.md §13.3;
//! docs/usage-limits.md): the deployment's limit and period, per-user and per-group
//! overrides (administrators), and each caller's own status.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use codersdk::{
    ChatUsageLimitConfig, ChatUsageLimitConfigResponse, ChatUsageLimitGroupOverride,
    ChatUsageLimitOverride, ChatUsageLimitStatus, UpsertChatUsageLimitOverrideRequest,
};
use serde::Deserialize;

use super::config::Admin;
use super::Route;
use crate::auth::Caller;
use crate::error::{ApiResult, Json};
use crate::extract::{GroupId, NoQuery, UserPath};
use crate::state::AppState;

/// The routes of this group.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/chats/usage-limits", get_config),
        Route::json::<ChatUsageLimitConfig, _, _>(Method::PUT, "/chats/usage-limits", put_config),
        Route::get("/chats/usage-limits/status", status),
        Route::json::<UpsertChatUsageLimitOverrideRequest, _, _>(
            Method::PUT,
            "/chats/usage-limits/overrides/{user}",
            put_user_override,
        ),
        Route::new(
            Method::DELETE,
            "/chats/usage-limits/overrides/{user}",
            delete_user_override,
        ),
        Route::json::<UpsertChatUsageLimitOverrideRequest, _, _>(
            Method::PUT,
            "/chats/usage-limits/group-overrides/{group}",
            put_group_override,
        ),
        Route::new(
            Method::DELETE,
            "/chats/usage-limits/group-overrides/{group}",
            delete_group_override,
        ),
    ]
}

/// The body of `PUT /chats/usage-limits` as read: Coder's `ChatUsageLimitConfig`, where a
/// missing or `null` limit turns limits off, a missing period is a month, and
/// `updated_at` is ignored. The period is read as text so that an unknown one gets the
/// validator's 400 naming the known ones, not a shape error.
#[derive(Debug, Deserialize)]
struct ConfigBody {
    #[serde(default)]
    spend_limit_micros: Option<i64>,
    #[serde(default)]
    period: Option<String>,
}

/// The body of the override `PUT`s as read: a missing limit gets the validator's 400.
#[derive(Debug, Deserialize)]
struct OverrideBody {
    #[serde(default)]
    spend_limit_micros: Option<i64>,
}

async fn get_config(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
) -> ApiResult<Json<ChatUsageLimitConfigResponse>> {
    Ok(Json(
        state.admin().usage_limit_config(&admin.0.actor).await?,
    ))
}

async fn put_config(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
    Json(body): Json<ConfigBody>,
) -> ApiResult<Json<ChatUsageLimitConfig>> {
    let config = state
        .admin()
        .set_usage_limit_config(
            &admin.0.actor,
            body.spend_limit_micros,
            body.period.as_deref(),
        )
        .await?;
    tracing::info!(
        limit_micros = ?config.spend_limit_micros,
        period = %config.period.as_str(),
        "usage limit changed"
    );
    Ok(Json(config))
}

/// `GET /chats/usage-limits/status` (any user): the caller's own status, as the admission
/// check sees it now.
async fn status(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<ChatUsageLimitStatus>> {
    Ok(Json(
        state.engine().usage_limit_status(&caller.actor).await?,
    ))
}

async fn put_user_override(
    State(state): State<AppState>,
    admin: Admin,
    UserPath(user): UserPath,
    _: NoQuery,
    Json(body): Json<OverrideBody>,
) -> ApiResult<Json<ChatUsageLimitOverride>> {
    Ok(Json(
        state
            .admin()
            .set_user_usage_limit(&admin.0.actor, &user, body.spend_limit_micros)
            .await?,
    ))
}

async fn delete_user_override(
    State(state): State<AppState>,
    admin: Admin,
    UserPath(user): UserPath,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .delete_user_usage_limit(&admin.0.actor, &user)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_group_override(
    State(state): State<AppState>,
    admin: Admin,
    GroupId(group): GroupId,
    _: NoQuery,
    Json(body): Json<OverrideBody>,
) -> ApiResult<Json<ChatUsageLimitGroupOverride>> {
    Ok(Json(
        state
            .admin()
            .set_group_usage_limit(&admin.0.actor, group, body.spend_limit_micros)
            .await?,
    ))
}

async fn delete_group_override(
    State(state): State<AppState>,
    admin: Admin,
    GroupId(group): GroupId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .delete_group_usage_limit(&admin.0.actor, group)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
