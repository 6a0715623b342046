//! Groups under `/api/v2` (Coder's group routes, minimal; docs/usage-limits.md): what
//! group usage-limit overrides name. Administrators only.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use codersdk::{CreateGroupRequest, Group, PatchGroupRequest};

use super::config::Admin;
use super::Route;
use crate::error::{ApiResult, Json};
use crate::extract::{GroupId, NoQuery, OrganizationId};
use crate::state::AppState;

/// The routes of this group.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/groups", list_all),
        Route::get("/organizations/{organization}/groups", list_in_organization),
        Route::json::<CreateGroupRequest, _, _>(
            Method::POST,
            "/organizations/{organization}/groups",
            create,
        ),
        Route::get("/groups/{group}", get),
        Route::json::<PatchGroupRequest, _, _>(Method::PATCH, "/groups/{group}", patch),
        Route::new(Method::DELETE, "/groups/{group}", delete),
    ]
}

async fn list_all(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
) -> ApiResult<Json<Vec<Group>>> {
    Ok(Json(state.admin().list_groups(&admin.0.actor, None).await?))
}

async fn list_in_organization(
    State(state): State<AppState>,
    admin: Admin,
    OrganizationId(organization): OrganizationId,
    _: NoQuery,
) -> ApiResult<Json<Vec<Group>>> {
    Ok(Json(
        state
            .admin()
            .list_groups(&admin.0.actor, Some(organization))
            .await?,
    ))
}

async fn create(
    State(state): State<AppState>,
    admin: Admin,
    OrganizationId(organization): OrganizationId,
    _: NoQuery,
    Json(req): Json<CreateGroupRequest>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    let group = state
        .admin()
        .create_group(&admin.0.actor, organization, &req)
        .await?;
    tracing::info!(group = %group.id, name = %group.name, "group created");
    Ok((StatusCode::CREATED, Json(group)))
}

async fn get(
    State(state): State<AppState>,
    admin: Admin,
    GroupId(group): GroupId,
    _: NoQuery,
) -> ApiResult<Json<Group>> {
    Ok(Json(state.admin().get_group(&admin.0.actor, group).await?))
}

async fn patch(
    State(state): State<AppState>,
    admin: Admin,
    GroupId(group): GroupId,
    _: NoQuery,
    Json(req): Json<PatchGroupRequest>,
) -> ApiResult<Json<Group>> {
    Ok(Json(
        state
            .admin()
            .patch_group(&admin.0.actor, group, &req)
            .await?,
    ))
}

async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    GroupId(group): GroupId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    state.admin().delete_group(&admin.0.actor, group).await?;
    Ok(StatusCode::NO_CONTENT)
}
