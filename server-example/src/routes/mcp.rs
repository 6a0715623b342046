//! MCP server configurations under `/api/experimental/mcp/servers`: stored configuration only. Administrators create, change and delete them and
//! see every field but the secrets; other users see enabled servers only, redacted (the
//! rules live in [`chatd_core::Admin`]).
//! OAuth2 connections and per-user header values are not built yet (501, see
//! `unsupported.rs`), so `auth_connected` is false for every OAuth2 server.

use axum::extract::State;
use axum::http::StatusCode;
use codersdk::{CreateMCPServerConfigRequest, MCPServerConfig, UpdateMCPServerConfigRequest};

use super::config::Admin;
use super::Route;
use crate::auth::Caller;
use crate::error::{ApiResult, Json};
use crate::extract::{McpServerId, NoQuery};
use crate::state::AppState;

/// The routes of this group.
pub fn routes() -> Vec<Route> {
    use axum::http::Method;
    vec![
        Route::get("/mcp/servers", list_servers),
        Route::json::<CreateMCPServerConfigRequest, _, _>(
            Method::POST,
            "/mcp/servers",
            create_server,
        ),
        Route::get("/mcp/servers/{mcpServer}", get_server),
        Route::json::<UpdateMCPServerConfigRequest, _, _>(
            Method::PATCH,
            "/mcp/servers/{mcpServer}",
            update_server,
        ),
        Route::new(Method::DELETE, "/mcp/servers/{mcpServer}", delete_server),
    ]
}

async fn list_servers(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<Vec<MCPServerConfig>>> {
    Ok(Json(state.admin().list_mcp_servers(&caller.actor).await?))
}

async fn get_server(
    State(state): State<AppState>,
    caller: Caller,
    McpServerId(id): McpServerId,
    _: NoQuery,
) -> ApiResult<Json<MCPServerConfig>> {
    Ok(Json(state.admin().get_mcp_server(&caller.actor, id).await?))
}

async fn create_server(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
    Json(req): Json<CreateMCPServerConfigRequest>,
) -> ApiResult<(StatusCode, Json<MCPServerConfig>)> {
    let created = state
        .admin()
        .create_mcp_server(&admin.0.actor, &req)
        .await?;
    tracing::info!(slug = %created.slug, id = %created.id, "MCP server config created");
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update_server(
    State(state): State<AppState>,
    admin: Admin,
    McpServerId(id): McpServerId,
    _: NoQuery,
    Json(req): Json<UpdateMCPServerConfigRequest>,
) -> ApiResult<Json<MCPServerConfig>> {
    let updated = state
        .admin()
        .update_mcp_server(&admin.0.actor, id, &req)
        .await?;
    Ok(Json(updated))
}

async fn delete_server(
    State(state): State<AppState>,
    admin: Admin,
    McpServerId(id): McpServerId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    state.admin().delete_mcp_server(&admin.0.actor, id).await?;
    tracing::info!(%id, "MCP server config deleted");
    Ok(StatusCode::NO_CONTENT)
}
