//! Chat debug logging under `/api/experimental/chats` (docs/debug-runs.md): the
//! deployment's setting (`config/debug-logging`), each user's toggle
//! (`config/user-debug-logging`), the retention window (`config/debug-retention-days`),
//! and a chat's recorded runs (`{chat}/debug/runs[/{run}]`).
//!
//! Reads of the settings are open to every authenticated user; writes of the deployment's
//! are administrators' (204). A user's toggle answers 409 while the deployment forces
//! debug logging on and 403 while users may not change it. Runs are read by the chat's
//! owner and administrators; another user's chat, or a run the chat does not have, is 404.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use codersdk::{
    ChatDebugLoggingAdminSettings, ChatDebugRetentionDaysResponse, ChatDebugRun,
    ChatDebugRunSummary, UpdateChatDebugLoggingAllowUsersRequest,
    UpdateChatDebugRetentionDaysRequest, UpdateUserChatDebugLoggingRequest,
    UserChatDebugLoggingSettings,
};

use super::config::Admin;
use super::Route;
use crate::auth::Caller;
use crate::error::{ApiResult, Json};
use crate::extract::{ChatId, DebugRunId, NoQuery};
use crate::state::AppState;

/// The routes of this group.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/chats/config/debug-logging", get_debug_logging),
        Route::json::<UpdateChatDebugLoggingAllowUsersRequest, _, _>(
            Method::PUT,
            "/chats/config/debug-logging",
            put_debug_logging,
        ),
        Route::get("/chats/config/user-debug-logging", get_user_debug_logging),
        Route::json::<UpdateUserChatDebugLoggingRequest, _, _>(
            Method::PUT,
            "/chats/config/user-debug-logging",
            put_user_debug_logging,
        ),
        Route::get("/chats/config/debug-retention-days", get_retention_days),
        Route::json::<UpdateChatDebugRetentionDaysRequest, _, _>(
            Method::PUT,
            "/chats/config/debug-retention-days",
            put_retention_days,
        ),
        Route::get("/chats/{chat}/debug/runs", list_runs),
        Route::get("/chats/{chat}/debug/runs/{run}", get_run),
    ]
}

/// `GET /chats/config/debug-logging`: whether users may turn debug logging on, and
/// whether the deployment forces it.
async fn get_debug_logging(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<ChatDebugLoggingAdminSettings>> {
    Ok(Json(state.admin().debug_logging(&caller.actor).await?))
}

/// `PUT /chats/config/debug-logging` (administrators) → 204.
async fn put_debug_logging(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
    Json(req): Json<UpdateChatDebugLoggingAllowUsersRequest>,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .set_debug_logging(&admin.0.actor, &req)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /chats/config/user-debug-logging`: the caller's own setting.
async fn get_user_debug_logging(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<UserChatDebugLoggingSettings>> {
    Ok(Json(state.admin().user_debug_logging(&caller.actor).await?))
}

/// `PUT /chats/config/user-debug-logging` → 204; 409 when forced, 403 when not allowed.
async fn put_user_debug_logging(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
    Json(req): Json<UpdateUserChatDebugLoggingRequest>,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .set_user_debug_logging(&caller.actor, &req)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /chats/config/debug-retention-days`.
async fn get_retention_days(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<ChatDebugRetentionDaysResponse>> {
    Ok(Json(
        state.admin().debug_retention_days(&caller.actor).await?,
    ))
}

/// `PUT /chats/config/debug-retention-days` (administrators) → 204; 400 outside 0–3650.
async fn put_retention_days(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
    Json(req): Json<UpdateChatDebugRetentionDaysRequest>,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .set_debug_retention_days(&admin.0.actor, &req)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /chats/{chat}/debug/runs`: the newest runs (at most
/// `chatd_core::MAX_DEBUG_RUNS_LISTED`), newest first.
async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    ChatId(chat_id): ChatId,
    _: NoQuery,
) -> ApiResult<Json<Vec<ChatDebugRunSummary>>> {
    Ok(Json(
        state
            .engine()
            .list_debug_runs(&caller.actor, chat_id)
            .await?,
    ))
}

/// `GET /chats/{chat}/debug/runs/{run}`: one run with its steps.
async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    ChatId(chat_id): ChatId,
    DebugRunId(run_id): DebugRunId,
    _: NoQuery,
) -> ApiResult<Json<ChatDebugRun>> {
    Ok(Json(
        state
            .engine()
            .debug_run(&caller.actor, chat_id, run_id)
            .await?,
    ))
}
