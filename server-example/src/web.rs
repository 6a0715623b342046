//! The chat page: a single-page application (Preact, built with esbuild from
//! `server-example/web/`) embedded in the binary, so the server needs no Node.js at run
//! time. docs/web.md describes the page, the build and the headers.
//!
//! The page is answered on `/` and on the page's own paths ([`PAGE_PATHS`]), so a reload
//! or a shared link of `/chats/<id>` opens that view. Its script and stylesheet are served
//! under [`ASSETS_PREFIX`] with content-hashed names: a file never changes under its name,
//! so it is cached for a year, while `index.html` is revalidated on every load and names
//! the current ones.
//!
//! The page is public (it holds no data; the user pastes an API token, which the page sends
//! in the `Coder-Session-Token` header, and in the `coder_session_token` query parameter
//! only to the two WebSocket routes). Every answer carries a strict
//! Content-Security-Policy ([`content_security_policy`]): no inline script, no `eval`,
//! connections only to this origin.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::routes::{Route, RouteKind};
use crate::state::AppState;

// `INDEX_HTML` and `ASSETS`, written by `web/build.mjs` next to the files they embed.
include!("../web/dist/manifest.rs");

/// Where the hashed assets are served.
pub const ASSETS_PREFIX: &str = "/assets";

/// The page's own paths besides `/`: the server answers `index.html` on each, and the page
/// shows the view the path names.
pub const PAGE_PATHS: &[&str] = &["/chats/{chat}", "/admin"];

/// `Cache-Control` of `index.html`: revalidated on every load, so a new build's asset
/// names are picked up at once.
pub const INDEX_CACHE_CONTROL: &str = "no-cache";

/// `Cache-Control` of a hashed asset: its name changes with its content.
pub const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// `Referrer-Policy` of the page: no address of this server leaves with a link click.
pub const REFERRER_POLICY: &str = "no-referrer";

/// The page's routes for the route table: `/`, [`PAGE_PATHS`] and `/assets/{file}`, all
/// [`RouteKind::Public`].
pub fn routes() -> Vec<Route> {
    let mut routes = vec![Route::get("/", index).kind(RouteKind::Public)];
    routes.extend(
        PAGE_PATHS
            .iter()
            .map(|path| Route::get(path, index).kind(RouteKind::Public)),
    );
    routes.push(Route::get(&format!("{ASSETS_PREFIX}/{{file}}"), asset).kind(RouteKind::Public));
    routes
}

/// The Content-Security-Policy of the page and its assets. Script and styles only from this
/// origin (so no inline script and no `eval`), no plugins, no framing, no `<base>`, images
/// from this origin or `data:` (the empty favicon), and connections to this origin; the
/// WebSocket origin of `access_url` is named as well, since browsers older than CSP 3 do
/// not count `ws:`/`wss:` as `'self'`.
pub fn content_security_policy(access_url: Option<&str>) -> String {
    let socket_origin = access_url
        .and_then(|url| {
            url.strip_prefix("https://")
                .map(|rest| format!("wss://{rest}"))
                .or_else(|| {
                    url.strip_prefix("http://")
                        .map(|rest| format!("ws://{rest}"))
                })
        })
        .map(|origin| {
            // The origin only: the access URL may carry a path.
            let end = origin
                .char_indices()
                .filter(|(_, c)| *c == '/')
                .nth(2)
                .map_or(origin.len(), |(i, _)| i);
            format!(" {}", origin.get(..end).unwrap_or(&origin))
        })
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{socket_origin}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'; object-src 'none'"
    )
}

/// The headers every page answer carries.
fn secured(state: &AppState, mut response: Response) -> Response {
    let csp = content_security_policy(state.access_url().map(|u| u.to_string()).as_deref());
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static(REFERRER_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// `GET /` and the page paths: `index.html`.
async fn index(State(state): State<AppState>) -> Response {
    let response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, INDEX_CACHE_CONTROL),
        ],
        INDEX_HTML,
    )
        .into_response();
    secured(&state, response)
}

/// `GET /assets/{file}`: a hashed asset, or 404 JSON.
async fn asset(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return ApiError::not_found("No such asset.").into_response();
    };
    let response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, ASSET_CACHE_CONTROL),
        ],
        *bytes,
    )
        .into_response();
    secured(&state, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_socket_origin_of_the_access_url() {
        let csp = content_security_policy(Some("https://chat.example.com/base"));
        assert!(
            csp.contains("connect-src 'self' wss://chat.example.com;"),
            "{csp}"
        );
        let csp = content_security_policy(Some("http://127.0.0.1:3000"));
        assert!(
            csp.contains("connect-src 'self' ws://127.0.0.1:3000;"),
            "{csp}"
        );
        let csp = content_security_policy(None);
        assert!(csp.contains("connect-src 'self';"), "{csp}");
        assert!(
            csp.contains("script-src 'self';") && !csp.contains("unsafe"),
            "{csp}"
        );
    }

    #[test]
    fn the_manifest_lists_a_script_and_a_stylesheet_named_by_their_hash() {
        let html = std::str::from_utf8(INDEX_HTML).unwrap_or_default();
        for (name, content_type, bytes) in ASSETS {
            assert!(!bytes.is_empty(), "{name}");
            assert!(name.starts_with("app-"), "{name}");
            assert!(html.contains(&format!("{ASSETS_PREFIX}/{name}")), "{name}");
            assert!(content_type.ends_with("charset=utf-8"), "{content_type}");
        }
        assert_eq!(ASSETS.len(), 2);
    }
}
