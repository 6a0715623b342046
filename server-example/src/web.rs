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
//!
//! The build writes gzip and Brotli variants of `index.html` and the assets next to them,
//! all embedded; each answer is the variant the request's `Accept-Encoding` prefers
//! ([`accept_encoding`]), with `Content-Encoding` and, compressed or not,
//! `Vary: Accept-Encoding`. Nothing is compressed per request.

pub mod accept_encoding;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::routes::{Route, RouteKind};
use crate::state::AppState;
use accept_encoding::{AcceptEncoding, ContentCoding};

// `INDEX_HTML` and `ASSETS`, written by `web/build.mjs` next to the files they embed.
include!("../web/dist/manifest.rs");

/// One file of the page as embedded: its bytes and the precompressed variants the build
/// wrote (none where compressing did not make it smaller).
pub(crate) struct EmbeddedFile {
    /// The file name (the last segment of its URL for an asset).
    pub(crate) name: &'static str,
    /// Its `Content-Type`, whichever coding it is sent in.
    pub(crate) content_type: &'static str,
    /// The file itself.
    pub(crate) identity: &'static [u8],
    /// The file compressed with Brotli.
    pub(crate) br: Option<&'static [u8]>,
    /// The file compressed with gzip.
    pub(crate) gzip: Option<&'static [u8]>,
}

impl EmbeddedFile {
    /// The compressed codings the file has.
    fn offered(&self) -> Vec<ContentCoding> {
        [
            (ContentCoding::Brotli, self.br),
            (ContentCoding::Gzip, self.gzip),
        ]
        .into_iter()
        .filter_map(|(coding, bytes)| bytes.map(|_| coding))
        .collect()
    }

    /// The bytes of the file in `coding`, if it has them. (No wildcard arm: a coding added
    /// to [`ContentCoding`] must say where its bytes are, or it would send others.)
    fn variant(&self, coding: ContentCoding) -> Option<&'static [u8]> {
        match coding {
            ContentCoding::Brotli => self.br,
            ContentCoding::Gzip => self.gzip,
            ContentCoding::Identity => Some(self.identity),
        }
    }

    /// The file as answer to a request accepting `accepted`: the chosen variant, its
    /// `Content-Encoding`, `Vary: Accept-Encoding` (caches must key on it whichever variant
    /// this one is) and `cache_control`. Axum answers `HEAD` with the same headers.
    fn response(&self, accepted: &AcceptEncoding, cache_control: &'static str) -> Response {
        let chosen = accepted.choose(&self.offered());
        let (coding, bytes) = self
            .variant(chosen)
            .map_or((ContentCoding::Identity, self.identity), |bytes| {
                (chosen, bytes)
            });
        let mut response = (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, self.content_type),
                (header::CACHE_CONTROL, cache_control),
                (header::VARY, header::ACCEPT_ENCODING.as_str()),
            ],
            bytes,
        )
            .into_response();
        if let Some(encoding) = coding.content_encoding() {
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        response
    }
}

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
async fn index(State(state): State<AppState>, accepted: AcceptEncoding) -> Response {
    secured(&state, INDEX_HTML.response(&accepted, INDEX_CACHE_CONTROL))
}

/// `GET /assets/{file}`: a hashed asset, or 404 JSON. Only the assets' own names are
/// served: their compressed variants (`app-<hash>.js.gz`) are not assets of their own.
async fn asset(
    State(state): State<AppState>,
    accepted: AcceptEncoding,
    Path(file): Path<String>,
) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == file) else {
        return ApiError::not_found("No such asset.").into_response();
    };
    secured(&state, asset.response(&accepted, ASSET_CACHE_CONTROL))
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
        let html = std::str::from_utf8(INDEX_HTML.identity).unwrap_or_default();
        assert_eq!(INDEX_HTML.content_type, "text/html; charset=utf-8");
        for asset in ASSETS {
            let name = asset.name;
            assert!(!asset.identity.is_empty(), "{name}");
            assert!(name.starts_with("app-"), "{name}");
            assert!(html.contains(&format!("{ASSETS_PREFIX}/{name}")), "{name}");
            assert!(asset.content_type.ends_with("charset=utf-8"), "{name}");
        }
        assert_eq!(ASSETS.len(), 2);
    }

    #[test]
    fn every_served_file_has_smaller_brotli_and_gzip_variants() {
        for file in ASSETS.iter().chain([&INDEX_HTML]) {
            let name = file.name;
            let (Some(br), Some(gzip)) = (file.br, file.gzip) else {
                panic!("{name} has no br or no gzip variant");
            };
            assert!(br.len() < file.identity.len(), "{name}");
            assert!(gzip.len() < file.identity.len(), "{name}");
            // The formats' magic: gzip's two bytes and deflate method; Brotli has none, so
            // at least not gzip.
            assert_eq!(gzip.get(..3), Some(&[0x1f, 0x8b, 8][..]), "{name}");
            assert_ne!(br.get(..2), Some(&[0x1f, 0x8b][..]), "{name}");
        }
    }
}
