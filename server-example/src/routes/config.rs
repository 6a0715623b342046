//! Administrator configuration under `/api/experimental/chats`: providers, model configs, users' own keys (BYOK), the model catalogue, the
//! deployment model overrides, the deployment system prompt, the plan-mode instructions,
//! users' personal prompts and the retention settings.
//!
//! Handlers parse the request and call the administration handle ([`chatd_core::Admin`]),
//! which validates with the shared validators, authorizes and seals keys; its errors map
//! through [`ApiError`]. No response carries a key (views have `has_api_key` /
//! `has_user_api_key` only). Decisions: docs/server-admin.md.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use codersdk::{
    ChatAutoArchiveDaysResponse, ChatModelConfig, ChatModelOverrideResponse, ChatModelsResponse,
    ChatPlanModeInstructionsResponse, ChatProviderConfig, ChatRetentionDaysResponse,
    ChatSystemPromptResponse, CreateChatModelConfigRequest, CreateChatProviderConfigRequest,
    CreateUserChatProviderKeyRequest, UpdateChatModelConfigRequest, UpdateChatModelOverrideRequest,
    UpdateChatPlanModeInstructionsRequest, UpdateChatProviderConfigRequest,
    UpdateChatSystemPromptRequest, UpdateUserChatCompactionThresholdRequest,
    UserChatCompactionThreshold, UserChatCompactionThresholds, UserChatCustomPrompt,
    UserChatProviderConfig,
};

use super::Route;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Json};
use crate::extract::{ModelConfigId, NoQuery, OverrideContext, ProviderConfigId};
use crate::state::AppState;

/// Body limit of `PUT /chats/config/system-prompt`: a prompt at
/// `codersdk::MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES` fits however JSON escapes it (at most
/// six bytes per byte, `\u00XX`), plus room for the rest of the body. The server-wide
/// limit (`MAX_BODY_BYTES`) would refuse some valid prompts with 413.
pub const SYSTEM_PROMPT_BODY_BYTES: usize = 6 * codersdk::MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES + 1024;

/// Body limit of `PUT /chats/config/plan-mode-instructions`, sized like
/// [`SYSTEM_PROMPT_BODY_BYTES`] for `codersdk::MAX_PLAN_MODE_INSTRUCTIONS_BYTES`.
pub const PLAN_MODE_INSTRUCTIONS_BODY_BYTES: usize =
    6 * codersdk::MAX_PLAN_MODE_INSTRUCTIONS_BYTES + 1024;

/// The routes of this group.
pub fn routes() -> Vec<Route> {
    use axum::http::Method;
    vec![
        Route::get("/chats/providers", list_providers),
        Route::json::<CreateChatProviderConfigRequest, _, _>(
            Method::POST,
            "/chats/providers",
            create_provider,
        ),
        Route::json::<UpdateChatProviderConfigRequest, _, _>(
            Method::PATCH,
            "/chats/providers/{providerConfig}",
            update_provider,
        ),
        Route::new(
            Method::DELETE,
            "/chats/providers/{providerConfig}",
            delete_provider,
        ),
        Route::get("/chats/model-configs", list_model_configs),
        Route::json::<CreateChatModelConfigRequest, _, _>(
            Method::POST,
            "/chats/model-configs",
            create_model_config,
        ),
        Route::json::<UpdateChatModelConfigRequest, _, _>(
            Method::PATCH,
            "/chats/model-configs/{modelConfig}",
            update_model_config,
        ),
        Route::new(
            Method::DELETE,
            "/chats/model-configs/{modelConfig}",
            delete_model_config,
        ),
        Route::get("/chats/user-provider-configs", list_user_provider_configs),
        Route::json::<CreateUserChatProviderKeyRequest, _, _>(
            Method::PUT,
            "/chats/user-provider-configs/{providerConfig}",
            set_user_provider_key,
        ),
        Route::new(
            Method::DELETE,
            "/chats/user-provider-configs/{providerConfig}",
            delete_user_provider_key,
        ),
        Route::get("/chats/models", list_models),
        Route::get("/chats/config/system-prompt", get_system_prompt),
        Route::json::<UpdateChatSystemPromptRequest, _, _>(
            Method::PUT,
            "/chats/config/system-prompt",
            put_system_prompt,
        )
        .limit(SYSTEM_PROMPT_BODY_BYTES),
        Route::get(
            "/chats/config/plan-mode-instructions",
            get_plan_mode_instructions,
        ),
        Route::json::<UpdateChatPlanModeInstructionsRequest, _, _>(
            Method::PUT,
            "/chats/config/plan-mode-instructions",
            put_plan_mode_instructions,
        )
        .limit(PLAN_MODE_INSTRUCTIONS_BODY_BYTES),
        Route::get("/chats/config/user-prompt", get_user_prompt),
        Route::json::<UserChatCustomPrompt, _, _>(
            Method::PUT,
            "/chats/config/user-prompt",
            put_user_prompt,
        ),
        Route::get(
            "/chats/config/user-compaction-thresholds",
            get_compaction_thresholds,
        ),
        Route::json::<UpdateUserChatCompactionThresholdRequest, _, _>(
            Method::PUT,
            "/chats/config/user-compaction-thresholds/{modelConfig}",
            put_compaction_threshold,
        ),
        Route::new(
            Method::DELETE,
            "/chats/config/user-compaction-thresholds/{modelConfig}",
            delete_compaction_threshold,
        ),
        Route::get("/chats/config/retention-days", get_retention_days),
        Route::json::<ChatRetentionDaysResponse, _, _>(
            Method::PUT,
            "/chats/config/retention-days",
            put_retention_days,
        ),
        Route::get("/chats/config/auto-archive-days", get_auto_archive_days),
        Route::json::<ChatAutoArchiveDaysResponse, _, _>(
            Method::PUT,
            "/chats/config/auto-archive-days",
            put_auto_archive_days,
        ),
        Route::get("/chats/config/model-override/{context}", get_model_override),
        Route::json::<UpdateChatModelOverrideRequest, _, _>(
            Method::PUT,
            "/chats/config/model-override/{context}",
            put_model_override,
        ),
    ]
}

/// An authenticated administrator: 401 without a valid token, 403 for other users. As a
/// parts extractor it runs before the body is read, so a non-administrator learns nothing
/// from how their body would have been judged.
#[derive(Debug, Clone)]
pub(crate) struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_admin()?;
        Ok(Admin(caller))
    }
}

// ---------------------------------------------------------------------------------------
// Providers (admin)
// ---------------------------------------------------------------------------------------

async fn list_providers(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
) -> ApiResult<Json<Vec<ChatProviderConfig>>> {
    Ok(Json(state.admin().list_providers(&admin.0.actor).await?))
}

async fn create_provider(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
    Json(req): Json<CreateChatProviderConfigRequest>,
) -> ApiResult<(StatusCode, Json<ChatProviderConfig>)> {
    let created = state.admin().create_provider(&admin.0.actor, &req).await?;
    tracing::info!(provider = %created.provider, id = %created.id, "provider config created");
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update_provider(
    State(state): State<AppState>,
    admin: Admin,
    ProviderConfigId(id): ProviderConfigId,
    _: NoQuery,
    Json(req): Json<UpdateChatProviderConfigRequest>,
) -> ApiResult<Json<ChatProviderConfig>> {
    let updated = state
        .admin()
        .update_provider(&admin.0.actor, id, &req)
        .await?;
    Ok(Json(updated))
}

async fn delete_provider(
    State(state): State<AppState>,
    admin: Admin,
    ProviderConfigId(id): ProviderConfigId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    let deleted = state.admin().delete_provider(&admin.0.actor, id).await?;
    tracing::info!(
        provider = %deleted.provider,
        id = %deleted.id,
        model_configs = deleted.deleted_model_config_ids.len(),
        user_keys = deleted.deleted_user_keys,
        "provider config deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Model configs (read: everyone, enabled only for non-admins; write: admin)
// ---------------------------------------------------------------------------------------

async fn list_model_configs(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<Vec<ChatModelConfig>>> {
    Ok(Json(state.admin().list_model_configs(&caller.actor).await?))
}

async fn create_model_config(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
    Json(req): Json<CreateChatModelConfigRequest>,
) -> ApiResult<(StatusCode, Json<ChatModelConfig>)> {
    let created = state
        .admin()
        .create_model_config(&admin.0.actor, &req)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update_model_config(
    State(state): State<AppState>,
    admin: Admin,
    ModelConfigId(id): ModelConfigId,
    _: NoQuery,
    Json(req): Json<UpdateChatModelConfigRequest>,
) -> ApiResult<Json<ChatModelConfig>> {
    let updated = state
        .admin()
        .update_model_config(&admin.0.actor, id, &req)
        .await?;
    Ok(Json(updated))
}

async fn delete_model_config(
    State(state): State<AppState>,
    admin: Admin,
    ModelConfigId(id): ModelConfigId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .delete_model_config(&admin.0.actor, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Users' own keys (BYOK): every user, for themself
// ---------------------------------------------------------------------------------------

async fn list_user_provider_configs(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<Vec<UserChatProviderConfig>>> {
    Ok(Json(
        state
            .admin()
            .list_user_provider_configs(&caller.actor)
            .await?,
    ))
}

async fn set_user_provider_key(
    State(state): State<AppState>,
    caller: Caller,
    ProviderConfigId(id): ProviderConfigId,
    _: NoQuery,
    Json(req): Json<CreateUserChatProviderKeyRequest>,
) -> ApiResult<Json<UserChatProviderConfig>> {
    let view = state
        .admin()
        .set_user_provider_key(&caller.actor, id, &req)
        .await?;
    Ok(Json(view))
}

async fn delete_user_provider_key(
    State(state): State<AppState>,
    caller: Caller,
    ProviderConfigId(id): ProviderConfigId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    // An unknown provider config is a 404; deleting a key that is not there is a success.
    state
        .admin()
        .delete_user_provider_key(&caller.actor, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// The model catalogue
// ---------------------------------------------------------------------------------------

async fn list_models(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<ChatModelsResponse>> {
    let mut catalogue = state.admin().list_models(&caller.actor).await?;
    // With nothing configured, chats run on the offline demo model: list it first so a
    // client's model picker shows what will answer.
    if crate::demo::demo_active(state.admin()).await? {
        catalogue.providers.insert(0, crate::demo::catalog_entry());
    }
    Ok(Json(catalogue))
}

// ---------------------------------------------------------------------------------------
// Prompts
// ---------------------------------------------------------------------------------------

async fn get_system_prompt(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
) -> ApiResult<Json<ChatSystemPromptResponse>> {
    Ok(Json(state.admin().system_prompt(&admin.0.actor).await?))
}

async fn put_system_prompt(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
    Json(req): Json<UpdateChatSystemPromptRequest>,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .set_system_prompt(&admin.0.actor, &req)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Any user may read the plan-mode instructions (as in Coder); only administrators set
/// them.
async fn get_plan_mode_instructions(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<ChatPlanModeInstructionsResponse>> {
    Ok(Json(
        state.admin().plan_mode_instructions(&caller.actor).await?,
    ))
}

async fn put_plan_mode_instructions(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
    Json(req): Json<UpdateChatPlanModeInstructionsRequest>,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .set_plan_mode_instructions(&admin.0.actor, &req)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_user_prompt(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<UserChatCustomPrompt>> {
    Ok(Json(state.admin().user_prompt(&caller.actor).await?))
}

async fn put_user_prompt(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
    Json(req): Json<UserChatCustomPrompt>,
) -> ApiResult<Json<UserChatCustomPrompt>> {
    Ok(Json(
        state.admin().set_user_prompt(&caller.actor, &req).await?,
    ))
}

/// `GET /chats/config/user-compaction-thresholds`: the caller's own thresholds.
async fn get_compaction_thresholds(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<UserChatCompactionThresholds>> {
    Ok(Json(
        state
            .admin()
            .user_compaction_thresholds(&caller.actor)
            .await?,
    ))
}

/// `PUT /chats/config/user-compaction-thresholds/{modelConfig}` → 200 with the stored
/// threshold; 400 outside 0–100, 404 for an unknown model config.
async fn put_compaction_threshold(
    State(state): State<AppState>,
    caller: Caller,
    ModelConfigId(id): ModelConfigId,
    _: NoQuery,
    Json(req): Json<UpdateUserChatCompactionThresholdRequest>,
) -> ApiResult<Json<UserChatCompactionThreshold>> {
    Ok(Json(
        state
            .admin()
            .set_user_compaction_threshold(&caller.actor, id, &req)
            .await?,
    ))
}

/// `DELETE /chats/config/user-compaction-thresholds/{modelConfig}` → 204, also when none
/// was set; 404 for an unknown model config.
async fn delete_compaction_threshold(
    State(state): State<AppState>,
    caller: Caller,
    ModelConfigId(id): ModelConfigId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .delete_user_compaction_threshold(&caller.actor, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Deployment model overrides (read: every user; write: admin)
// ---------------------------------------------------------------------------------------

/// `GET /chats/config/model-override/{context}`: any signed-in user may read it. The value
/// is a model config id, no secret: members already list the enabled model configs, and the
/// `general` override is the model their new chats get, which a client's model picker
/// should be able to show (Coder shows members the deployment defaults too). An unknown
/// context is a 400.
async fn get_model_override(
    State(state): State<AppState>,
    caller: Caller,
    OverrideContext(context): OverrideContext,
    _: NoQuery,
) -> ApiResult<Json<ChatModelOverrideResponse>> {
    Ok(Json(
        state
            .admin()
            .model_override(&caller.actor, &context)
            .await?,
    ))
}

/// `PUT /chats/config/model-override/{context}` (admin) → 204: `model_config_id` names a
/// live, enabled model config, `""` clears. 400 for an unknown context, an id that is not a
/// UUID, or a model config that does not exist, was deleted or is disabled.
async fn put_model_override(
    State(state): State<AppState>,
    admin: Admin,
    OverrideContext(context): OverrideContext,
    _: NoQuery,
    Json(req): Json<UpdateChatModelOverrideRequest>,
) -> ApiResult<StatusCode> {
    let stored = state
        .admin()
        .set_model_override(&admin.0.actor, &context, &req)
        .await?;
    tracing::info!(
        context = %stored.context,
        model_config_id = %stored.model_config_id,
        "model override set"
    );
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Retention (read: every user; write: admin; docs/retention.md)
// ---------------------------------------------------------------------------------------

/// `GET /chats/config/retention-days`: any signed-in user (how long their archived chats
/// are kept; 0 = forever).
async fn get_retention_days(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<ChatRetentionDaysResponse>> {
    Ok(Json(state.admin().retention_days(&caller.actor).await?))
}

/// `PUT /chats/config/retention-days` (admin) → 204; 400 outside 0–3650 (a non-integer is
/// refused by the body's parsing, also a 400).
async fn put_retention_days(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
    Json(req): Json<ChatRetentionDaysResponse>,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .set_retention_days(&admin.0.actor, &req)
        .await?;
    tracing::info!(retention_days = req.retention_days, "chat retention set");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /chats/config/auto-archive-days`: any signed-in user (0 = never).
async fn get_auto_archive_days(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<ChatAutoArchiveDaysResponse>> {
    Ok(Json(state.admin().auto_archive_days(&caller.actor).await?))
}

/// `PUT /chats/config/auto-archive-days` (admin) → 204; 400 outside 0–3650 or not an
/// integer.
async fn put_auto_archive_days(
    State(state): State<AppState>,
    admin: Admin,
    _: NoQuery,
    Json(req): Json<ChatAutoArchiveDaysResponse>,
) -> ApiResult<StatusCode> {
    state
        .admin()
        .set_auto_archive_days(&admin.0.actor, &req)
        .await?;
    tracing::info!(
        auto_archive_days = req.auto_archive_days,
        "chat auto-archive set"
    );
    Ok(StatusCode::NO_CONTENT)
}
