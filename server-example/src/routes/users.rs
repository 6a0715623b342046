//! Coder's user and token routes under `/api/v2`, the minimal subset a chat deployment
//! needs: who am I (`GET /users/me`, with `organization_ids`), create a user (admin), list
//! users (admin), change a user's role (admin), and issue an API token (admin, or the user
//! themself). `{user}` is `me`, a user id or a username (case-insensitive).
//!
//! Tokens are random, shown once in the `201` response, and stored only as a hash. There
//! are no passwords. Decisions: docs/server-admin.md.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;
use chatd_core::store::{Account, NewAccount};
use chatd_core::Role;
use codersdk::{
    CreateUserRequest, GenerateAPIKeyResponse, GetUsersResponse, LoginType, Response, SlimRole,
    UpdateRoles, User, UserStatus, Uuid,
};

use super::config::{no_query, Admin};
use crate::auth::{Caller, SESSION_TOKEN_QUERY};
use crate::error::{query_pairs, query_value, ApiError, ApiResult, Json};
use crate::state::AppState;

/// Page size of `GET /api/v2/users` when `limit` is absent or `0`.
pub const DEFAULT_USER_PAGE_LIMIT: i64 = 50;

/// Largest page size of `GET /api/v2/users`.
pub const MAX_USER_PAGE_LIMIT: i64 = 200;

/// Largest `offset` of `GET /api/v2/users` (Coder's database parameter is 32-bit).
pub const MAX_USER_PAGE_OFFSET: i64 = i32::MAX as i64;

/// The `{user}` alias for the caller.
pub const ME: &str = "me";

/// The routes of this group.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{user}", get(get_user))
        .route("/users/{user}/roles", put(update_roles))
        .route("/users/{user}/keys", post(create_token))
        .method_not_allowed_fallback(super::unsupported::method_not_allowed)
}

fn slim_role(role: Role) -> SlimRole {
    SlimRole {
        name: role.as_str().to_owned(),
        display_name: role.display_name().to_owned(),
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
        roles: vec![slim_role(account.role)],
    }
}

/// Whether `{user}` names the caller, decided without a lookup so that the answer to
/// someone else's name (403) is the same whether that user exists or not.
fn names_caller(raw: &str, caller: &Caller) -> bool {
    raw == ME
        || Uuid::parse_str(raw).is_ok_and(|id| id == caller.user.id)
        || raw.eq_ignore_ascii_case(&caller.user.username)
}

/// The account `{user}` names; 404 when there is none.
async fn resolve(state: &AppState, caller: &Caller, raw: &str) -> ApiResult<Account> {
    let found = if raw == ME {
        state.store().get_account(caller.user.id).await?
    } else if let Ok(id) = Uuid::parse_str(raw) {
        state.store().get_account(id).await?
    } else {
        state.store().find_account_by_username(raw).await?
    };
    found.ok_or_else(|| ApiError::not_found("User not found."))
}

/// 403 unless the caller is an administrator or `{user}` names the caller.
fn require_self_or_admin(raw: &str, caller: &Caller, what: &str) -> ApiResult<()> {
    if caller.is_admin() || names_caller(raw, caller) {
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

async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<GetUsersResponse>> {
    let pairs = query_pairs(q.as_deref(), &["limit", "offset", SESSION_TOKEN_QUERY])?;
    let limit = match page_param(query_value(&pairs, "limit"), "limit", MAX_USER_PAGE_LIMIT)? {
        None | Some(0) => DEFAULT_USER_PAGE_LIMIT,
        Some(v) => v,
    };
    let offset = page_param(
        query_value(&pairs, "offset"),
        "offset",
        MAX_USER_PAGE_OFFSET,
    )?
    .unwrap_or(0);
    let (accounts, count) = state.store().list_accounts(limit, offset).await?;
    Ok(Json(GetUsersResponse {
        users: accounts.into_iter().map(user_view).collect(),
        count,
    }))
}

async fn create_user(
    State(state): State<AppState>,
    _admin: Admin,
    RawQuery(q): RawQuery,
    Json(req): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    no_query(q.as_deref())?;
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
            role: Role::Member,
            organization_ids,
        })
        .await?;
    tracing::info!(user = %account.id, username = %account.username, "user created");
    Ok((StatusCode::CREATED, Json(user_view(account))))
}

async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<User>> {
    require_self_or_admin(&user, &caller, "view the accounts")?;
    no_query(q.as_deref())?;
    Ok(Json(user_view(resolve(&state, &caller, &user).await?)))
}

async fn update_roles(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(user): Path<String>,
    RawQuery(q): RawQuery,
    Json(req): Json<UpdateRoles>,
) -> ApiResult<Json<User>> {
    no_query(q.as_deref())?;
    // An unknown role is the request's fault: 400 naming the field.
    let roles = req
        .roles
        .iter()
        .map(|name| name.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ApiError::validation(
                Response::new("Invalid roles.").with_validation("roles", e.to_string()),
            )
        })?;
    // A user has one site role: administrator when named, else member.
    let role = if roles.contains(&Role::Admin) {
        Role::Admin
    } else {
        Role::Member
    };
    let target = resolve(&state, &caller, &user).await?;
    // As in Coder: an administrator cannot lock themself out by accident.
    if target.id == caller.user.id {
        return Err(ApiError::bad_request("You cannot change your own roles."));
    }
    let account = state.store().set_user_role(target.id, role).await?;
    tracing::info!(user = %account.id, role = %role, "user role changed");
    Ok(Json(user_view(account)))
}

async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<(StatusCode, Json<GenerateAPIKeyResponse>)> {
    require_self_or_admin(&user, &caller, "create API tokens")?;
    no_query(q.as_deref())?;
    let target = resolve(&state, &caller, &user).await?;
    let key = state.store().create_api_token(target.id).await?;
    // Who got a token and who asked; never the token.
    tracing::info!(user = %target.id, by = %caller.user.id, "API token created");
    Ok((StatusCode::CREATED, Json(GenerateAPIKeyResponse { key })))
}
