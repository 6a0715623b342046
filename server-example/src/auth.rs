//! Authentication: API tokens from the `Coder-Session-Token` header, `Authorization:
//! Bearer`, or the `coder_session_token` query parameter (browsers cannot set headers on
//! WebSockets).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chatd_core::{Actor, User};

use crate::error::ApiError;
use crate::state::AppState;

/// Header carrying the session token (Coder's name).
pub const SESSION_TOKEN_HEADER: &str = "coder-session-token";

/// Query parameter carrying the session token.
pub const SESSION_TOKEN_QUERY: &str = "coder_session_token";

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

/// The token a request presents, in the order header, bearer, query parameter.
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
    parts.uri.query().and_then(|q| {
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == SESSION_TOKEN_QUERY).then(|| v.to_owned())
        })
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = presented_token(parts).ok_or_else(ApiError::unauthorized)?;
        let user = state
            .admin()
            .authenticate(&token)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        let actor = user.actor();
        Ok(Caller { user, actor })
    }
}
