//! Authentication: API tokens from the `Coder-Session-Token` header or `Authorization:
//! Bearer`, or on WebSocket upgrades and file downloads only the `coder_session_token` query
//! parameter, or on the MCP OAuth2 connect and callback pages only the `coder_session_token`
//! cookie (browsers cannot set headers there; docs/api-tokens.md) — or, for the chats API mounted inside another application with
//! [`Authentication::Upstream`], the identity that application's middleware attached to the
//! request ([`Authenticated`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use chatd_core::{Actor, TokenCheck, User};

use crate::error::ApiError;
use crate::state::AppState;

/// Header carrying the session token (Coder's name).
pub const SESSION_TOKEN_HEADER: &str = "coder-session-token";

/// Query parameter carrying the session token.
pub const SESSION_TOKEN_QUERY: &str = "coder_session_token";

/// Cookie carrying the session token (Coder's name), read only where
/// [`CookieTokenAllowed`] is.
pub const SESSION_TOKEN_COOKIE: &str = "coder_session_token";

/// How a router of this crate learns who is calling. The reference server
/// ([`crate::router`]) uses [`Authentication::Tokens`]; an application that mounts the chats
/// API behind its own authentication ([`crate::chats_router`]) uses
/// [`Authentication::Upstream`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Authentication {
    /// This server's API tokens (header, bearer, or the query parameter where allowed),
    /// looked up in the store on every request.
    #[default]
    Tokens,
    /// The embedding application authenticates: a middleware in front of the router
    /// inserts an [`Authenticated`] into the request's extensions. A request without one is
    /// 401; tokens are not consulted, so the API has exactly the embedding application's
    /// users and sessions.
    Upstream,
}

/// The identity an embedding application's middleware attaches to a request for
/// [`Authentication::Upstream`]: `request.extensions_mut().insert(Authenticated(actor))`.
/// The actor's `user_id` must name a user of the store (chats, files and keys belong to
/// users); its `admin` flag grants the administrator routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated(pub Actor);

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user.
    pub user: User,
    /// The engine's view of the caller.
    pub actor: Actor,
}

impl Caller {
    /// Whether the caller is an administrator.
    pub fn is_admin(&self) -> bool {
        self.actor.admin
    }

    /// 403 unless the caller is an administrator.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        Ok(self.actor.require_admin()?)
    }
}

/// Marks a route on which the session token may come as the [`SESSION_TOKEN_QUERY`]
/// parameter: WebSocket upgrades (browsers cannot set headers on them) and file downloads
/// (an `<img src>` cannot either). The route table installs it
/// ([`crate::routes::RouteKind`]); everywhere else the parameter is not read, so tokens stay
/// in headers and out of proxy and access logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryTokenAllowed;

/// Marks a route on which the session token may come as the [`SESSION_TOKEN_COOKIE`]
/// cookie: pages a browser navigates to by itself — the MCP OAuth2 connect link and the
/// callback the authorization server redirects to — which can carry neither a header nor,
/// without putting the token in an authorization server's logs and history, a query
/// parameter. The route table installs it ([`crate::routes::RouteKind::Browser`]); no other
/// route reads cookies, so a cross-site request elsewhere cannot ride on one. On these two
/// routes a forged request does no harm: connect only starts the caller's own sign-in, and
/// a callback is accepted only with a state the caller's own connect issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieTokenAllowed;

/// The token a request presents: the header, else a bearer token, else — on routes marked
/// [`QueryTokenAllowed`] only — the query parameter, else — on routes marked
/// [`CookieTokenAllowed`] only — the cookie.
pub fn presented_token(parts: &Parts) -> Option<String> {
    if let Some(v) = parts
        .headers
        .get(SESSION_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return Some(v.trim().to_owned());
    }
    if let Some(v) = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut it = v.splitn(2, ' ');
        if let (Some(scheme), Some(token)) = (it.next(), it.next()) {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some(token.trim().to_owned());
            }
        }
    }
    if parts.extensions.get::<QueryTokenAllowed>().is_some() {
        return query_token(parts);
    }
    if parts.extensions.get::<CookieTokenAllowed>().is_some() {
        return cookie_token(parts);
    }
    None
}

/// The [`SESSION_TOKEN_COOKIE`] cookie, from any `Cookie` header (HTTP/2 may split them).
fn cookie_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (name.trim() == SESSION_TOKEN_COOKIE).then(|| value.trim().trim_matches('"').to_owned())
        })
        .filter(|token| !token.is_empty())
}

/// The [`SESSION_TOKEN_QUERY`] parameter, wherever it is.
fn query_token(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == SESSION_TOKEN_QUERY)
        .map(|(_, token)| token.into_owned())
}

/// The 401 of a request without a usable token, saying why.
fn no_token(parts: &Parts) -> ApiError {
    if query_token(parts).is_some() {
        return ApiError::unauthorized().with_detail(format!(
            "The {SESSION_TOKEN_QUERY} query parameter is accepted only on WebSocket and file \
             download routes; send the token in the Coder-Session-Token header."
        ));
    }
    ApiError::unauthorized()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let authentication = parts
            .extensions
            .get::<Authentication>()
            .copied()
            .unwrap_or_default();
        if authentication == Authentication::Upstream {
            return upstream_caller(parts, state).await;
        }
        let token = presented_token(parts).ok_or_else(|| no_token(parts))?;
        let user = match state.admin().check_token(&token).await? {
            TokenCheck::Valid { user, .. } => user,
            TokenCheck::Expired { expired_at } => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    format!("Your API token expired at {expired_at}."),
                )
                .with_detail("Create a new token: POST /api/v2/users/me/keys/tokens."))
            }
            TokenCheck::Revoked => {
                return Err(
                    ApiError::new(StatusCode::UNAUTHORIZED, "Your API token was revoked.")
                        .with_detail("Create a new token: POST /api/v2/users/me/keys/tokens."),
                )
            }
            _ => return Err(ApiError::unauthorized()),
        };
        let actor = user.actor();
        Ok(Caller { user, actor })
    }
}

/// The caller an embedding application authenticated ([`Authentication::Upstream`]).
async fn upstream_caller(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let Some(Authenticated(actor)) = parts.extensions.get::<Authenticated>().copied() else {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "You must be logged in to do this.",
        ));
    };
    let Some(user) = state.admin().authenticated_user(actor.user_id).await? else {
        // The application's middleware named an id the store does not know: its user was
        // never created here (or was deleted).
        tracing::warn!(user_id = %actor.user_id, "authenticated user is not in the store");
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "Your account is not set up for chats.",
        ));
    };
    Ok(Caller { user, actor })
}
