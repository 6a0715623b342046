//! MCP server configurations under `/api/experimental/mcp/servers`. Administrators
//! create, change and delete them and see every field but the secrets; other users see
//! enabled servers only, redacted (the rules live in [`chatd_core::Admin`]).
//!
//! Per user (docs/mcp-auth.md): the values of the headers a server asks users for
//! (`…/user-headers`, never returned), and the OAuth2 connection (`…/oauth2/connect`,
//! `…/oauth2/callback`, `…/oauth2/disconnect`). Connect and callback are pages a browser
//! navigates to ([`RouteKind::Browser`]: the session cookie authenticates there too);
//! `auth_connected` in the listing says whether the caller holds a token.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use codersdk::{
    CreateMCPServerConfigRequest, MCPServerConfig, MCPServerUserHeaders,
    UpdateMCPServerConfigRequest, UpdateMCPServerUserHeadersRequest, Uuid,
};

use super::config::Admin;
use super::{Route, RouteKind};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Json};
use crate::extract::{ConnectQuery, McpServerId, NoQuery, OAuth2CallbackQuery, Query};
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
        Route::get("/mcp/servers/{mcpServer}/user-headers", get_user_headers),
        Route::json::<UpdateMCPServerUserHeadersRequest, _, _>(
            Method::PUT,
            "/mcp/servers/{mcpServer}/user-headers",
            put_user_headers,
        ),
        Route::new(
            Method::DELETE,
            "/mcp/servers/{mcpServer}/user-headers",
            delete_user_headers,
        ),
        Route::get("/mcp/servers/{mcpServer}/oauth2/connect", oauth2_connect)
            .kind(RouteKind::Browser),
        Route::get("/mcp/servers/{mcpServer}/oauth2/callback", oauth2_callback)
            .kind(RouteKind::Browser),
        Route::new(
            Method::DELETE,
            "/mcp/servers/{mcpServer}/oauth2/disconnect",
            oauth2_disconnect,
        ),
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
    // The callback URL a registered OAuth2 client names; without an access URL, discovery
    // is not attempted.
    let callback = |id: Uuid| state.mcp_oauth2_callback(id).unwrap_or_default();
    let redirect_uri: Option<chatd_core::McpRedirectUri<'_>> = state
        .access_url()
        .map(|_| &callback as chatd_core::McpRedirectUri<'_>);
    let created = state
        .admin()
        .create_mcp_server(&admin.0.actor, &req, redirect_uri)
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

async fn get_user_headers(
    State(state): State<AppState>,
    caller: Caller,
    McpServerId(id): McpServerId,
    _: NoQuery,
) -> ApiResult<Json<MCPServerUserHeaders>> {
    Ok(Json(
        state.admin().mcp_user_headers(&caller.actor, id).await?,
    ))
}

async fn put_user_headers(
    State(state): State<AppState>,
    caller: Caller,
    McpServerId(id): McpServerId,
    _: NoQuery,
    Json(req): Json<UpdateMCPServerUserHeadersRequest>,
) -> ApiResult<Json<MCPServerUserHeaders>> {
    Ok(Json(
        state
            .admin()
            .update_mcp_user_headers(&caller.actor, id, &req)
            .await?,
    ))
}

async fn delete_user_headers(
    State(state): State<AppState>,
    caller: Caller,
    McpServerId(id): McpServerId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .delete_mcp_user_headers(&caller.actor, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Headers of every answer of the browser pages: nothing cached (the pages carry one-time
/// codes and states), no `Referer` sent onwards (the callback URL holds the code).
const PAGE_HEADERS: [(header::HeaderName, &str); 2] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// A 302 to `location`.
fn found(location: &str) -> ApiResult<Response> {
    let location = HeaderValue::from_str(location).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The redirect URL is not a valid header value.",
        )
    })?;
    let mut response = (StatusCode::FOUND, PAGE_HEADERS).into_response();
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// `GET …/oauth2/connect[?redirect=/path]`: 302 to the authorization server with a fresh
/// state and PKCE challenge. 400 when the server does not use OAuth2.
async fn oauth2_connect(
    State(state): State<AppState>,
    caller: Caller,
    McpServerId(id): McpServerId,
    Query(query): Query<ConnectQuery>,
) -> ApiResult<Response> {
    let Some(callback) = state.mcp_oauth2_callback(id) else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "This server has no access URL, so it cannot receive OAuth2 callbacks.",
        )
        .with_detail("Start the server with --access-url (CHATD_ACCESS_URL)."));
    };
    let return_to = query.redirect.as_ref().map_or("", |r| r.as_str());
    let url = state
        .admin()
        .connect_mcp_oauth2(&caller.actor, id, &callback, return_to)
        .await?;
    found(&url)
}

/// `GET …/oauth2/callback?code&state` (or `?error=…`): the token is exchanged and stored,
/// then a 302 to the connect's `redirect`, or a page saying the server is connected.
async fn oauth2_callback(
    State(state): State<AppState>,
    caller: Caller,
    McpServerId(id): McpServerId,
    callback: OAuth2CallbackQuery,
) -> ApiResult<Response> {
    let done = state
        .admin()
        .complete_mcp_oauth2(&caller.actor, id, callback.as_callback())
        .await?;
    if !done.return_to.is_empty() {
        return found(&done.return_to);
    }
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Connected</title></head><body><p>{} is connected. You can close this \
         window.</p></body></html>\n",
        escape_html(&done.display_name)
    );
    let mut response = (StatusCode::OK, PAGE_HEADERS, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The page runs nothing and loads nothing.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    Ok(response)
}

/// `DELETE …/oauth2/disconnect`: the caller's token is forgotten. 204.
async fn oauth2_disconnect(
    State(state): State<AppState>,
    caller: Caller,
    McpServerId(id): McpServerId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .disconnect_mcp_oauth2(&caller.actor, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Text for HTML: the five characters that could start markup or end an attribute.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_html;

    #[test]
    fn display_names_cannot_become_markup() {
        assert_eq!(
            escape_html("<b>\"A&B'</b>"),
            "&lt;b&gt;&quot;A&amp;B&#39;&lt;/b&gt;"
        );
    }
}
