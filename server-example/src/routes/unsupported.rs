//! Routes of codersdk.md §16.4–16.5 for features this server does not build (DECISIONS
//! §7): each answers a JSON 501 `Response` to authenticated callers, never a hang or a
//! plain-text error. The list, with the reason for each, is in docs/server-admin.md.

use axum::http::StatusCode;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Every route answered with 501: path (under `/api/experimental`), methods, and the
/// feature named in the response.
pub const UNSUPPORTED_ROUTES: &[(&str, &[&str], &str)] = &[
    ("/chats/cost/users", &["GET"], "Chat cost reports"),
    ("/chats/cost/{user}/summary", &["GET"], "Chat cost reports"),
    (
        "/chats/insights/pull-requests",
        &["GET"],
        "Pull-request insights",
    ),
    ("/chats/usage-limits", &["GET", "PUT"], "Chat usage limits"),
    (
        "/chats/usage-limits/overrides/{user}",
        &["PUT", "DELETE"],
        "Chat usage limits",
    ),
    (
        "/chats/usage-limits/group-overrides/{group}",
        &["PUT", "DELETE"],
        "Chat usage limits",
    ),
    (
        "/chats/config/plan-mode-instructions",
        &["GET", "PUT"],
        "Plan-mode instructions",
    ),
    (
        "/chats/config/desktop-enabled",
        &["GET", "PUT"],
        "Workspace desktops",
    ),
    (
        "/chats/config/computer-use-provider",
        &["GET", "PUT"],
        "Computer use",
    ),
    (
        "/chats/config/debug-logging",
        &["GET", "PUT"],
        "Chat debug logging",
    ),
    (
        "/chats/config/user-debug-logging",
        &["GET", "PUT"],
        "Chat debug logging",
    ),
    ("/chats/config/advisor", &["GET", "PUT"], "The advisor"),
    (
        "/chats/config/user-compaction-thresholds",
        &["GET"],
        "Context compaction",
    ),
    (
        "/chats/config/user-compaction-thresholds/{modelConfig}",
        &["PUT", "DELETE"],
        "Context compaction",
    ),
    ("/chats/config/workspace-ttl", &["GET", "PUT"], "Workspaces"),
    (
        "/chats/config/retention-days",
        &["GET", "PUT"],
        "Chat retention",
    ),
    (
        "/chats/config/debug-retention-days",
        &["GET", "PUT"],
        "Chat debug logging",
    ),
    (
        "/chats/config/auto-archive-days",
        &["GET", "PUT"],
        "Automatic archiving",
    ),
    (
        "/chats/config/template-allowlist",
        &["GET", "PUT"],
        "Workspace templates",
    ),
    (
        "/chats/config/personal-model-overrides",
        &["GET", "PUT"],
        "Model overrides",
    ),
    (
        "/chats/config/user-personal-model-overrides",
        &["GET"],
        "Model overrides",
    ),
    (
        "/chats/config/user-personal-model-overrides/{context}",
        &["PUT"],
        "Model overrides",
    ),
    ("/chats/{chat}/debug/runs", &["GET"], "Chat debug runs"),
    (
        "/chats/{chat}/debug/runs/{run}",
        &["GET"],
        "Chat debug runs",
    ),
    (
        "/mcp/servers/{mcpServer}/oauth2/connect",
        &["GET"],
        "MCP OAuth2 connections",
    ),
    (
        "/mcp/servers/{mcpServer}/oauth2/callback",
        &["GET"],
        "MCP OAuth2 connections",
    ),
    (
        "/mcp/servers/{mcpServer}/oauth2/disconnect",
        &["DELETE"],
        "MCP OAuth2 connections",
    ),
    (
        "/mcp/servers/{mcpServer}/user-headers",
        &["GET", "PUT", "DELETE"],
        "Per-user MCP header values",
    ),
];

/// The routes of this group.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for (path, methods, feature) in UNSUPPORTED_ROUTES {
        router = router.route(path, not_implemented(methods, feature));
    }
    router.method_not_allowed_fallback(method_not_allowed)
}

fn not_implemented(methods: &[&str], feature: &'static str) -> MethodRouter<AppState> {
    let filter = methods
        .iter()
        .map(|m| match *m {
            "GET" => MethodFilter::GET,
            "PUT" => MethodFilter::PUT,
            "POST" => MethodFilter::POST,
            "PATCH" => MethodFilter::PATCH,
            _ => MethodFilter::DELETE,
        })
        .fold(None::<MethodFilter>, |acc, f| {
            Some(acc.map_or(f, |a| a.or(f)))
        })
        .unwrap_or(MethodFilter::GET);
    // The caller must still be authenticated: without a token the answer is 401, as on
    // every other route, so the route table is not an anonymous probe.
    on(filter, move |_caller: Caller| async move {
        ApiError::not_implemented(feature)
    })
}

/// A JSON 405 for a known path with a method it does not serve (axum's default is an
/// empty body). Routers of this crate install it with `method_not_allowed_fallback`.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "This route does not support this method.",
    )
}
