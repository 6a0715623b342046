//! Coder's user and token routes under `/api/v2`, the minimal subset a chat deployment
//! needs: who am I (`GET /users/me`, with `organization_ids`), create a user (admin), list
//! users (admin), change a user's role (admin), and issue an API token (admin, or the user
//! themself). `{user}` is `me`, a user id or a username (case-insensitive).
//!
//! Tokens are random, shown once in the `201` response, and stored only as a hash. There
//! are no passwords. Decisions: docs/server-admin.md.

use axum::extract::State;
use axum::http::StatusCode;
use chatd_core::{Account, Role};
use codersdk::{
    APIKey, CreateTokenRequest, CreateUserRequest, GenerateAPIKeyResponse, GetUsersResponse,
    LoginType, Response, SlimRole, UpdateRoles, User, UserStatus,
};
use serde::Deserialize;

use super::config::Admin;
use super::Route;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Json};
use crate::extract::{KeyId, NoQuery, Query, UserPath};
use crate::state::AppState;

/// Page size of `GET /api/v2/users` when `limit` is absent or `0`.
pub const DEFAULT_USER_PAGE_LIMIT: i64 = 50;

/// Largest page size of `GET /api/v2/users`.
pub const MAX_USER_PAGE_LIMIT: i64 = 200;

/// Largest `offset` of `GET /api/v2/users` (Coder's database parameter is 32-bit).
pub const MAX_USER_PAGE_OFFSET: i64 = i32::MAX as i64;

/// The routes of this group.
pub fn routes() -> Vec<Route> {
    use axum::http::Method;
    vec![
        Route::get("/users", list_users),
        Route::json::<CreateUserRequest, _, _>(Method::POST, "/users", create_user),
        Route::get("/users/{user}", get_user),
        Route::json::<UpdateRoles, _, _>(Method::PUT, "/users/{user}/roles", update_roles),
        Route::new(Method::POST, "/users/{user}/keys", create_token),
        Route::json::<CreateTokenRequest, _, _>(
            Method::POST,
            "/users/{user}/keys/tokens",
            create_named_token,
        ),
        Route::get("/users/{user}/keys/tokens", list_tokens),
        Route::get("/users/{user}/keys/{keyid}", get_token),
        Route::new(Method::DELETE, "/users/{user}/keys/{keyid}", revoke_token),
    ]
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
    admin: Admin,
    Query(query): Query<ListUsersQuery>,
) -> ApiResult<Json<GetUsersResponse>> {
    let limit = match page_param(query.limit.as_deref(), "limit", MAX_USER_PAGE_LIMIT)? {
        None | Some(0) => DEFAULT_USER_PAGE_LIMIT,
        Some(v) => v,
    };
    let offset = page_param(query.offset.as_deref(), "offset", MAX_USER_PAGE_OFFSET)?.unwrap_or(0);
    let page = state
        .admin()
        .list_users(&admin.0.actor, limit, offset)
        .await?;
    Ok(Json(GetUsersResponse {
        users: page.accounts.into_iter().map(user_view).collect(),
        count: page.count,
    }))
}

async fn create_user(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
    Json(req): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let account = state
        .admin()
        .create_user(&admin.0.actor, &req, state.default_organization())
        .await?;
    tracing::info!(user = %account.id, username = %account.username, "user created");
    Ok((StatusCode::CREATED, Json(user_view(account))))
}

async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    UserPath(user): UserPath,
    _: NoQuery,
) -> ApiResult<Json<User>> {
    let account = state.admin().get_user(&caller.actor, &user).await?;
    Ok(Json(user_view(account)))
}

async fn update_roles(
    State(state): State<AppState>,
    Admin(caller): Admin,
    UserPath(user): UserPath,
    _: NoQuery,
    Json(req): Json<UpdateRoles>,
) -> ApiResult<Json<User>> {
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
    // As in Coder, an administrator cannot change their own roles (400): nobody locks
    // themself out by accident.
    let account = state
        .admin()
        .set_user_role(&caller.actor, &user, role)
        .await?;
    tracing::info!(user = %account.id, role = %role, "user role changed");
    Ok(Json(user_view(account)))
}

async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    UserPath(user): UserPath,
    _: NoQuery,
) -> ApiResult<(StatusCode, Json<GenerateAPIKeyResponse>)> {
    let issued = state.admin().create_api_token(&caller.actor, &user).await?;
    // Who got a token and who asked; never the token.
    tracing::info!(user = %issued.user_id, by = %caller.user.id, "API token created");
    Ok((
        StatusCode::CREATED,
        Json(GenerateAPIKeyResponse { key: issued.token }),
    ))
}

/// `POST /users/{user}/keys/tokens` (Coder's `CreateTokenRequest`) → 201 `{"key": …}`.
async fn create_named_token(
    State(state): State<AppState>,
    caller: Caller,
    UserPath(user): UserPath,
    _: NoQuery,
    Json(req): Json<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<GenerateAPIKeyResponse>)> {
    let issued = state
        .admin()
        .create_named_api_token(&caller.actor, &user, &req)
        .await?;
    // Who got which token and who asked; never the token.
    tracing::info!(
        user = %issued.user_id,
        token_id = %issued.stored.id,
        token_name = %issued.stored.name,
        expires_at = ?issued.stored.expires_at,
        by = %caller.user.id,
        "API token created"
    );
    Ok((
        StatusCode::CREATED,
        Json(GenerateAPIKeyResponse { key: issued.token }),
    ))
}

/// `GET /users/{user}/keys/tokens`: the user's tokens (Coder's `APIKey`s), never secrets.
async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    UserPath(user): UserPath,
    _: NoQuery,
) -> ApiResult<Json<Vec<APIKey>>> {
    let tokens = state.admin().list_api_tokens(&caller.actor, &user).await?;
    Ok(Json(tokens.iter().map(|t| t.to_api_key()).collect()))
}

/// `GET /users/{user}/keys/{keyid}`.
async fn get_token(
    State(state): State<AppState>,
    caller: Caller,
    UserPath(user): UserPath,
    KeyId(id): KeyId,
    _: NoQuery,
) -> ApiResult<Json<APIKey>> {
    let token = state
        .admin()
        .get_api_token(&caller.actor, &user, id)
        .await?;
    Ok(Json(token.to_api_key()))
}

/// `DELETE /users/{user}/keys/{keyid}` → 204; the token is refused from the next request
/// on, on every server sharing the database.
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    UserPath(user): UserPath,
    KeyId(id): KeyId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .revoke_api_token(&caller.actor, &user, id)
        .await?;
    tracing::info!(token_id = %id, by = %caller.user.id, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}
