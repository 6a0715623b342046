//! Coder's user and token routes under `/api/v2`, the minimal subset a chat deployment
//! needs: who am I (`GET /users/me`, with `organization_ids`), create a user (admin), list
//! users (admin), change a user's role (admin), and issue an API token (admin, or the user
//! themself). `{user}` is `me`, a user id or a username (case-insensitive).
//!
//! Tokens are random, shown once in the `201` response, and stored only as a hash. There
//! are no passwords. Decisions: docs/server-admin.md.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;
use chatd_core::store::{Account, NewAccount};
use codersdk::{
    CreateUserRequest, GenerateAPIKeyResponse, GetUsersResponse, LoginType, Response, SlimRole,
    UpdateRoles, User, UserStatus,
};

use serde::Deserialize;

use super::config::Admin;
use crate::auth::{Caller, ROLE_ADMIN, ROLE_MEMBER};
use crate::error::{ApiError, ApiResult, Json};
use crate::extract::{NoQuery, Query, UserRef};
use crate::state::AppState;

/// Page size of `GET /api/v2/users` when `limit` is absent or `0`.
pub const DEFAULT_USER_PAGE_LIMIT: i64 = 50;

/// Largest page size of `GET /api/v2/users`.
pub const MAX_USER_PAGE_LIMIT: i64 = 200;

/// Largest `offset` of `GET /api/v2/users` (Coder's database parameter is 32-bit).
pub const MAX_USER_PAGE_OFFSET: i64 = i32::MAX as i64;

/// The `{user}` alias for the caller.
pub const ME: &str = UserRef::ME;

/// The routes of this group.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{user}", get(get_user))
        .route("/users/{user}/roles", put(update_roles))
        .route("/users/{user}/keys", post(create_token))
        .method_not_allowed_fallback(super::unsupported::method_not_allowed)
}

fn slim_role(role: &str) -> SlimRole {
    let display_name = match role {
        ROLE_ADMIN => "Administrator",
        ROLE_MEMBER => "Member",
        other => other,
    };
    SlimRole {
        name: role.to_owned(),
        display_name: display_name.to_owned(),
        organization_id: String::new(),
    }
}

/// The wire form of an account: active, token-only login (`login_type: none`), its one
/// site role.
pub fn user_view(account: Account) -> User {
    User {
        id: account.id,
        username: account.username,
        avatar_url: String::new(),
        name: account.name,
        email: account.email,
        created_at: account.created_at,
        updated_at: account.updated_at,
        last_seen_at: None,
        status: UserStatus::Active,
        login_type: LoginType::None,
        organization_ids: account.organization_ids,
        roles: vec![slim_role(&account.role)],
    }
}

/// Whether `{user}` names the caller, decided without a lookup so that the answer to
/// someone else's name (403) is the same whether that user exists or not.
fn names_caller(user: &UserRef, caller: &Caller) -> bool {
    user.names(caller.user.id, &caller.user.username)
}

/// The account `{user}` names; 404 when there is none.
async fn resolve(state: &AppState, caller: &Caller, user: &UserRef) -> ApiResult<Account> {
    let found = match user {
        UserRef::Me => state.store().get_account(caller.user.id).await?,
        UserRef::Id(id) => state.store().get_account(*id).await?,
        UserRef::Username(name) => state.store().find_account_by_username(name).await?,
    };
    found.ok_or_else(|| ApiError::not_found("User not found."))
}

/// 403 unless the caller is an administrator or `{user}` names the caller.
fn require_self_or_admin(user: &UserRef, caller: &Caller, what: &str) -> ApiResult<()> {
    if caller.is_admin() || names_caller(user, caller) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "Only administrators can {what} of other users."
        )))
    }
}

fn page_param(raw: Option<&str>, name: &str, max: i64) -> ApiResult<Option<i64>> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.parse::<i64>() {
        Ok(v) if (0..=max).contains(&v) => Ok(Some(v)),
        _ => Err(ApiError::validation(
            Response::new("Invalid query parameters.")
                .with_validation(name, format!("{name} must be an integer from 0 to {max}.")),
        )),
    }
}

/// Query of `GET /api/v2/users`; the values are judged by [`page_param`] for its messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListUsersQuery {
    limit: Option<String>,
    offset: Option<String>,
}

async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<ListUsersQuery>,
) -> ApiResult<Json<GetUsersResponse>> {
    let limit = match page_param(query.limit.as_deref(), "limit", MAX_USER_PAGE_LIMIT)? {
        None | Some(0) => DEFAULT_USER_PAGE_LIMIT,
        Some(v) => v,
    };
    let offset = page_param(query.offset.as_deref(), "offset", MAX_USER_PAGE_OFFSET)?.unwrap_or(0);
    let (accounts, count) = state.store().list_accounts(limit, offset).await?;
    Ok(Json(GetUsersResponse {
        users: accounts.into_iter().map(user_view).collect(),
        count,
    }))
}

async fn create_user(
    State(state): State<AppState>,
    _admin: Admin,
    _: NoQuery,
    Json(req): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let valid = codersdk::validate_create_user_request(&req).map_err(ApiError::validation)?;
    let organization_ids = if valid.organization_ids.is_empty() {
        vec![state.default_organization()]
    } else {
        valid.organization_ids
    };
    let account = state
        .store()
        .create_account(&NewAccount {
            username: valid.username,
            name: valid.name,
            email: valid.email,
            role: ROLE_MEMBER.to_owned(),
            organization_ids,
        })
        .await?;
    tracing::info!(user = %account.id, username = %account.username, "user created");
    Ok((StatusCode::CREATED, Json(user_view(account))))
}

async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    user: UserRef,
    _: NoQuery,
) -> ApiResult<Json<User>> {
    require_self_or_admin(&user, &caller, "view the accounts")?;
    Ok(Json(user_view(resolve(&state, &caller, &user).await?)))
}

async fn update_roles(
    State(state): State<AppState>,
    Admin(caller): Admin,
    user: UserRef,
    _: NoQuery,
    Json(req): Json<UpdateRoles>,
) -> ApiResult<Json<User>> {
    let mut admin = false;
    for role in &req.roles {
        match role.as_str() {
            ROLE_ADMIN => admin = true,
            ROLE_MEMBER => {}
            other => {
                return Err(ApiError::validation(
                    Response::new("Invalid roles.").with_validation(
                        "roles",
                        format!(
                            "{:?} is not a role; the roles are {ROLE_ADMIN:?} and \
                             {ROLE_MEMBER:?}.",
                            other.chars().take(64).collect::<String>()
                        ),
                    ),
                ))
            }
        }
    }
    let target = resolve(&state, &caller, &user).await?;
    // As in Coder: an administrator cannot lock themself out by accident.
    if target.id == caller.user.id {
        return Err(ApiError::bad_request("You cannot change your own roles."));
    }
    let role = if admin { ROLE_ADMIN } else { ROLE_MEMBER };
    let account = state
        .store()
        .set_user_role(target.id, role, ROLE_ADMIN)
        .await?;
    tracing::info!(user = %account.id, role, "user role changed");
    Ok(Json(user_view(account)))
}

async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    user: UserRef,
    _: NoQuery,
) -> ApiResult<(StatusCode, Json<GenerateAPIKeyResponse>)> {
    require_self_or_admin(&user, &caller, "create API tokens")?;
    let target = resolve(&state, &caller, &user).await?;
    let key = state.store().create_api_token(target.id).await?;
    // Who got a token and who asked; never the token.
    tracing::info!(user = %target.id, by = %caller.user.id, "API token created");
    Ok((StatusCode::CREATED, Json(GenerateAPIKeyResponse { key })))
}
