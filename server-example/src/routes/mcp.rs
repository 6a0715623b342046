//! MCP server configurations under `/api/experimental/mcp/servers` (codersdk.md §14,
//! §16.5): stored configuration only. Administrators create, change and delete them and
//! see every field but the secrets; other users see enabled servers only, redacted.
//! OAuth2 connections and per-user header values are not built yet (501, see
//! `unsupported.rs`), so `auth_connected` is false for every OAuth2 server.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chatd_core::store::McpServerFilter;
use codersdk::{
    CreateMCPServerConfigRequest, MCPServerConfig, MCPServerTransport, UpdateMCPServerConfigRequest,
};

use super::config::Admin;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Json};
use crate::extract::{McpServerId, NoQuery};
use crate::state::AppState;

/// The routes of this group.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mcp/servers", get(list_servers).post(create_server))
        .route(
            "/mcp/servers/{mcpServer}",
            get(get_server).patch(update_server).delete(delete_server),
        )
        .method_not_allowed_fallback(super::unsupported::method_not_allowed)
}

/// What a user who is not an administrator sees (codersdk.md §14.1, "Visibility"): where
/// the server is and how the deployment authenticates to it are blanked — the URL (which
/// may carry credentials), the transport, the OAuth2 client and endpoints and scopes, the
/// API-key header. Names, descriptions, tool filters, availability and the header names
/// users supply themselves stay visible.
pub fn redact_for_member(mut config: MCPServerConfig) -> MCPServerConfig {
    config.url.clear();
    config.transport = MCPServerTransport::Unknown(String::new());
    config.oauth2_client_id.clear();
    config.oauth2_auth_url.clear();
    config.oauth2_token_url.clear();
    config.oauth2_scopes.clear();
    config.api_key_header.clear();
    config
}

fn view(caller: &Caller, config: MCPServerConfig) -> MCPServerConfig {
    if caller.is_admin() {
        config
    } else {
        redact_for_member(config)
    }
}

async fn list_servers(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<Vec<MCPServerConfig>>> {
    let filter = if caller.is_admin() {
        McpServerFilter::All
    } else {
        McpServerFilter::Enabled
    };
    let list = state.store().list_mcp_server_configs(filter).await?;
    Ok(Json(list.into_iter().map(|c| view(&caller, c)).collect()))
}

async fn get_server(
    State(state): State<AppState>,
    caller: Caller,
    McpServerId(id): McpServerId,
    _: NoQuery,
) -> ApiResult<Json<MCPServerConfig>> {
    let config = state.store().get_mcp_server_config(id).await?;
    // A disabled server does not exist for other users, like in the listing.
    if !config.enabled && !caller.is_admin() {
        return Err(ApiError::not_found(format!(
            "MCP server config {id} not found"
        )));
    }
    Ok(Json(view(&caller, config)))
}

async fn create_server(
    State(state): State<AppState>,
    _admin: Admin,
    _: NoQuery,
    Json(req): Json<CreateMCPServerConfigRequest>,
) -> ApiResult<(StatusCode, Json<MCPServerConfig>)> {
    let created = state
        .store()
        .create_mcp_server_config(&req, state.keyring())
        .await?;
    tracing::info!(slug = %created.slug, id = %created.id, "MCP server config created");
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update_server(
    State(state): State<AppState>,
    _admin: Admin,
    McpServerId(id): McpServerId,
    _: NoQuery,
    Json(req): Json<UpdateMCPServerConfigRequest>,
) -> ApiResult<Json<MCPServerConfig>> {
    let updated = state
        .store()
        .update_mcp_server_config(id, &req, state.keyring())
        .await?;
    Ok(Json(updated))
}

async fn delete_server(
    State(state): State<AppState>,
    _admin: Admin,
    McpServerId(id): McpServerId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    state.store().delete_mcp_server_config(id).await?;
    tracing::info!(%id, "MCP server config deleted");
    Ok(StatusCode::NO_CONTENT)
}
