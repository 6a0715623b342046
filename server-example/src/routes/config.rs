//! Administrator configuration under `/api/experimental/chats` (codersdk.md §12, §15,
//! §16.4): providers, model configs, users' own keys (BYOK), the model catalogue, the
//! deployment model overrides, the deployment system prompt and users' personal prompts.
//!
//! Handlers validate with the shared validators, call the store, and map its errors through
//! [`ApiError`]. Keys are sealed by the store; no response carries one (views have
//! `has_api_key` / `has_user_api_key` only). Decisions: docs/server-admin.md.

use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, patch, put};
use axum::Router;
use chatd_core::store::{provider_config_listing, ModelConfigFilter};
use chatprovider::ConfiguredModel;
use codersdk::{
    ChatModelConfig, ChatModelOverrideResponse, ChatModelsResponse, ChatProviderConfig,
    ChatSystemPromptResponse, ChatUsageLimitStatus, CreateChatModelConfigRequest,
    CreateChatProviderConfigRequest, CreateUserChatProviderKeyRequest,
    UpdateChatModelConfigRequest, UpdateChatModelOverrideRequest, UpdateChatProviderConfigRequest,
    UpdateChatSystemPromptRequest, UserChatCustomPrompt, UserChatProviderConfig,
};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Json};
use crate::extract::{ModelConfigId, NoQuery, OverrideContext, ProviderConfigId};
use crate::state::AppState;

/// Body limit of `PUT /chats/config/system-prompt`: a prompt at
/// `codersdk::MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES` fits however JSON escapes it (at most
/// six bytes per byte, `\u00XX`), plus room for the rest of the body. The server-wide
/// limit (`MAX_BODY_BYTES`) would refuse some valid prompts with 413.
pub const SYSTEM_PROMPT_BODY_BYTES: usize = 6 * codersdk::MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES + 1024;

/// The routes of this group.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/chats/providers",
            get(list_providers).post(create_provider),
        )
        .route(
            "/chats/providers/{providerConfig}",
            patch(update_provider).delete(delete_provider),
        )
        .route(
            "/chats/model-configs",
            get(list_model_configs).post(create_model_config),
        )
        .route(
            "/chats/model-configs/{modelConfig}",
            patch(update_model_config).delete(delete_model_config),
        )
        .route(
            "/chats/user-provider-configs",
            get(list_user_provider_configs),
        )
        .route(
            "/chats/user-provider-configs/{providerConfig}",
            put(set_user_provider_key).delete(delete_user_provider_key),
        )
        .route("/chats/models", get(list_models))
        .route("/chats/usage-limits/status", get(usage_limit_status))
        .route(
            "/chats/config/system-prompt",
            get(get_system_prompt)
                .put(put_system_prompt.layer(DefaultBodyLimit::max(SYSTEM_PROMPT_BODY_BYTES))),
        )
        .route(
            "/chats/config/user-prompt",
            get(get_user_prompt).put(put_user_prompt),
        )
        .route(
            "/chats/config/model-override/{context}",
            get(get_model_override).put(put_model_override),
        )
        .method_not_allowed_fallback(super::unsupported::method_not_allowed)
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
    _admin: Admin,
    _: NoQuery,
) -> ApiResult<Json<Vec<ChatProviderConfig>>> {
    let stored = state.store().list_provider_configs().await?;
    Ok(Json(provider_config_listing(
        &stored,
        state.deployment_keys(),
    )))
}

async fn create_provider(
    State(state): State<AppState>,
    _admin: Admin,
    _: NoQuery,
    Json(req): Json<CreateChatProviderConfigRequest>,
) -> ApiResult<(StatusCode, Json<ChatProviderConfig>)> {
    let valid = chatprovider::validate_create_provider_request(&req, state.deployment_keys())
        .map_err(ApiError::validation)?;
    let created = state
        .store()
        .create_provider_config(&valid, state.keyring())
        .await?;
    tracing::info!(provider = %created.provider, id = %created.id, "provider config created");
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update_provider(
    State(state): State<AppState>,
    _admin: Admin,
    ProviderConfigId(id): ProviderConfigId,
    _: NoQuery,
    Json(req): Json<UpdateChatProviderConfigRequest>,
) -> ApiResult<Json<ChatProviderConfig>> {
    let updated = state
        .store()
        .update_provider_config(id, &req, state.deployment_keys(), state.keyring())
        .await?;
    Ok(Json(updated))
}

async fn delete_provider(
    State(state): State<AppState>,
    _admin: Admin,
    ProviderConfigId(id): ProviderConfigId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    let deleted = state.store().delete_provider_config(id).await?;
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
    let filter = if caller.is_admin() {
        ModelConfigFilter::All
    } else {
        ModelConfigFilter::Enabled
    };
    Ok(Json(state.store().list_model_configs(filter).await?))
}

async fn create_model_config(
    State(state): State<AppState>,
    _admin: Admin,
    _: NoQuery,
    Json(req): Json<CreateChatModelConfigRequest>,
) -> ApiResult<(StatusCode, Json<ChatModelConfig>)> {
    let valid = codersdk::validate_create_model_config(&req).map_err(ApiError::validation)?;
    let created = state
        .store()
        .create_model_config(&valid, state.deployment_keys())
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update_model_config(
    State(state): State<AppState>,
    _admin: Admin,
    ModelConfigId(id): ModelConfigId,
    _: NoQuery,
    Json(req): Json<UpdateChatModelConfigRequest>,
) -> ApiResult<Json<ChatModelConfig>> {
    let updated = state
        .store()
        .update_model_config(id, &req, state.deployment_keys())
        .await?;
    Ok(Json(updated))
}

async fn delete_model_config(
    State(state): State<AppState>,
    _admin: Admin,
    ModelConfigId(id): ModelConfigId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    state.store().delete_model_config(id).await?;
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
            .store()
            .list_user_provider_configs(caller.user.id, state.deployment_keys())
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
        .store()
        .set_user_provider_key(
            caller.user.id,
            id,
            &req.api_key,
            state.keyring(),
            state.deployment_keys(),
        )
        .await?;
    Ok(Json(view))
}

async fn delete_user_provider_key(
    State(state): State<AppState>,
    caller: Caller,
    ProviderConfigId(id): ProviderConfigId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    // An unknown provider config is a 404; deleting a key that is not there is a success
    // (the caller's goal, "no key of mine is stored", holds).
    state.store().get_provider_config(id).await?;
    state
        .store()
        .delete_user_provider_key(caller.user.id, id)
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
    let store = state.store();
    // The key policy as it applies to the caller: central keys, their own keys, the
    // deployment's environment keys. Keys are opened only to decide availability.
    let mut configured = store.configured_providers(state.keyring()).await?;
    // A provider the deployment has a key for (an environment preset) counts as configured
    // with the defaults of a new config — central key, no user keys — as it is listed by
    // `GET /chats/providers` and served by turns; a stored config replaces it.
    for p in state.deployment_keys().providers() {
        if !configured
            .iter()
            .any(|c| chatprovider::Provider::parse(&c.provider) == Some(p))
        {
            configured.push(chatprovider::ConfiguredProvider {
                provider: p.as_str().to_owned(),
                ..Default::default()
            });
        }
    }
    let user_keys = store
        .user_provider_keys(caller.user.id, state.keyring())
        .await?;
    let resolved =
        chatprovider::resolve_user_provider_keys(state.deployment_keys(), &configured, &user_keys);
    let models: Vec<ConfiguredModel> = store
        .list_model_configs(ModelConfigFilter::Enabled)
        .await?
        .into_iter()
        .map(|m| ConfiguredModel {
            provider: m.provider,
            model: m.model,
            display_name: m.display_name,
        })
        .collect();
    let catalogue = chatprovider::list_configured_models(&configured, &models, &resolved)
        .unwrap_or_else(|| chatprovider::list_provider_availability(&configured, &resolved));
    let mut catalogue = catalogue;
    // With nothing configured, chats run on the offline demo model: list it first so a
    // client's model picker shows what will answer.
    if crate::demo::demo_active(store, state.deployment_keys()).await? {
        catalogue.providers.insert(0, crate::demo::catalog_entry());
    }
    Ok(Json(catalogue))
}

/// `GET /chats/usage-limits/status` (any user): this server enforces no spend limits, so
/// nobody is limited — a true answer, unlike a 501, for clients that poll it before sending.
async fn usage_limit_status(_caller: Caller, _: NoQuery) -> ApiResult<Json<ChatUsageLimitStatus>> {
    Ok(Json(ChatUsageLimitStatus {
        is_limited: false,
        period: None,
        spend_limit_micros: None,
        current_spend: None,
        period_start: None,
        period_end: None,
    }))
}

// ---------------------------------------------------------------------------------------
// Prompts
// ---------------------------------------------------------------------------------------

async fn get_system_prompt(
    State(state): State<AppState>,
    _admin: Admin,
    _: NoQuery,
) -> ApiResult<Json<ChatSystemPromptResponse>> {
    let config = state.store().system_prompt_config().await?;
    Ok(Json(ChatSystemPromptResponse {
        system_prompt: config.system_prompt,
        include_default_system_prompt: config.include_default_system_prompt,
        default_system_prompt: chatd_core::prompt::DEFAULT_SYSTEM_PROMPT.to_owned(),
    }))
}

async fn put_system_prompt(
    State(state): State<AppState>,
    _admin: Admin,
    _: NoQuery,
    Json(req): Json<UpdateChatSystemPromptRequest>,
) -> ApiResult<StatusCode> {
    state
        .store()
        .set_system_prompt_config(&req.system_prompt, req.include_default_system_prompt)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_user_prompt(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<UserChatCustomPrompt>> {
    Ok(Json(UserChatCustomPrompt {
        custom_prompt: state.store().user_prompt(caller.user.id).await?,
    }))
}

async fn put_user_prompt(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
    Json(req): Json<UserChatCustomPrompt>,
) -> ApiResult<Json<UserChatCustomPrompt>> {
    let stored = state
        .store()
        .set_user_prompt(caller.user.id, &req.custom_prompt)
        .await?;
    Ok(Json(UserChatCustomPrompt {
        custom_prompt: stored,
    }))
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
    _caller: Caller,
    OverrideContext(context): OverrideContext,
    _: NoQuery,
) -> ApiResult<Json<ChatModelOverrideResponse>> {
    Ok(Json(state.store().model_override(&context).await?))
}

/// `PUT /chats/config/model-override/{context}` (admin) → 204: `model_config_id` names a
/// live, enabled model config, `""` clears. 400 for an unknown context, an id that is not a
/// UUID, or a model config that does not exist, was deleted or is disabled.
async fn put_model_override(
    State(state): State<AppState>,
    _admin: Admin,
    OverrideContext(context): OverrideContext,
    _: NoQuery,
    Json(req): Json<UpdateChatModelOverrideRequest>,
) -> ApiResult<StatusCode> {
    let stored = state
        .store()
        .set_model_override(&context, &req.model_config_id)
        .await?;
    tracing::info!(
        context = %stored.context,
        model_config_id = %stored.model_config_id,
        "model override set"
    );
    Ok(StatusCode::NO_CONTENT)
}
