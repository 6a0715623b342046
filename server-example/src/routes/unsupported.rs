//! Routes of Coder's chats API for Coder-platform features this server does not build
//! (workspaces, templates, desktops, git watchers): each answers a JSON 501 `Response` to authenticated callers, never a hang or a
//! plain-text error. The list, with the reason for each, is in docs/server-admin.md.
//!
//! The settings of some of these features are read by Coder's frontend whenever its chat
//! pages open. Their reads answer 200 with the truthful value — the feature is off — so a
//! page loads instead of showing an error; only their writes are 501 ([`OFF_SETTINGS`]).

use axum::http::{Method, StatusCode};
use codersdk::ChatPersonalModelOverridesAdminSettings;

use super::config::Admin;
use super::{Route, RouteKind};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Json};
use crate::extract::NoQuery;

/// Every route answered with 501: path (under `/api/experimental`), methods, and the
/// feature named in the response.
pub const UNSUPPORTED_ROUTES: &[(&str, &[&str], &str)] = &[
    (
        "/chats/insights/pull-requests",
        &["GET"],
        "Pull-request insights",
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
    ("/chats/config/advisor", &["GET", "PUT"], "The advisor"),
    ("/chats/config/workspace-ttl", &["GET", "PUT"], "Workspaces"),
    (
        "/chats/config/template-allowlist",
        &["GET", "PUT"],
        "Workspace templates",
    ),
    (
        "/chats/config/personal-model-overrides",
        &["PUT"],
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
];

/// Settings of unbuilt features whose reads answer "off" (200) while their writes are in
/// [`UNSUPPORTED_ROUTES`]: path (under `/api/experimental`) and whether only
/// administrators may read it (as in Coder).
pub const OFF_SETTINGS: &[(&str, bool)] = &[("/chats/config/personal-model-overrides", true)];

/// The routes of this group.
pub fn routes() -> Vec<Route> {
    let mut routes = Vec::new();
    for (path, methods, feature) in UNSUPPORTED_ROUTES {
        for method in *methods {
            let method = method.parse().unwrap_or(Method::GET);
            routes.push(
                Route::new(method, path, not_implemented(feature)).kind(RouteKind::Unsupported),
            );
        }
    }
    // The reads of the same paths: axum merges these GETs with the 501 writes above.
    routes.extend([Route::get(
        "/chats/config/personal-model-overrides",
        personal_model_overrides,
    )]);
    routes
}

/// `GET /chats/config/personal-model-overrides` (admin): users may not pick their own
/// models; chats use the deployment's model overrides.
async fn personal_model_overrides(
    _admin: Admin,
    _: NoQuery,
) -> ApiResult<Json<ChatPersonalModelOverridesAdminSettings>> {
    Ok(Json(ChatPersonalModelOverridesAdminSettings {
        allow_users: false,
    }))
}

/// The 501 handler of `feature`. The caller must still be authenticated: without a token
/// the answer is 401, as on every other route, so the route table is not an anonymous
/// probe.
fn not_implemented(
    feature: &'static str,
) -> impl Fn(Caller) -> std::future::Ready<ApiError> + Clone + Send + Sync + 'static {
    move |_caller: Caller| std::future::ready(ApiError::not_implemented(feature))
}

/// A JSON 405 for a known path with a method it does not serve (axum's default is an
/// empty body). Routers of this crate install it with `method_not_allowed_fallback`.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "This route does not support this method.",
    )
}
