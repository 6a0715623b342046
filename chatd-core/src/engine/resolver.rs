//! [`StoreModelResolver`]: models from the store's provider and model configs, with the
//! key policy applied and stored keys decrypted with the engine's keyring.

use std::sync::Arc;

use chaterror::ClassifiedError;
use chatprovider::{
    call_options, language_model, ClientSettings, OpenAiApi, Provider, ProviderApiKeys,
    ProviderCatalog, UnavailableReason,
};
use codersdk::{ChatError, ChatErrorKind, ChatModelOverrideContext, Response, Uuid};

use super::models::{ModelResolver, ModelSelection, ResolvedModel, TurnModelRequest};
use crate::error::{Error, ErrorKind, Result};
use crate::secrets::Keyring;
use crate::store::{Store, TurnModel, UnusableRequestedModel};

/// Resolves models from the store (docs/provider-config.md): the requested model config,
/// the chat's last one, then the default; credentials by the key policy (central key, the
/// user's own key, fallback, environment presets). The deployment's model overrides apply:
/// `general` picks the model of a new chat that names none, `title_generation` the model
/// that writes titles ([`ModelResolver::title_model`]).
#[derive(Clone)]
pub struct StoreModelResolver {
    store: Store,
    keyring: Arc<Keyring>,
    deployment_keys: ProviderApiKeys,
    client: ClientSettings,
}

impl std::fmt::Debug for StoreModelResolver {
    // The keyring and the deployment keys are secrets: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreModelResolver").finish_non_exhaustive()
    }
}

impl StoreModelResolver {
    /// A resolver over `store`, opening stored keys with `keyring`; `deployment_keys` are
    /// the environment presets (`OPENAI_API_KEY`, …) that stand in for unconfigured
    /// providers and missing central keys.
    pub fn new(store: Store, keyring: Arc<Keyring>, deployment_keys: ProviderApiKeys) -> Self {
        StoreModelResolver {
            store,
            keyring,
            deployment_keys,
            client: ClientSettings::default(),
        }
    }

    /// Replaces the HTTP client settings of the model clients it builds.
    pub fn with_client_settings(mut self, client: ClientSettings) -> Self {
        self.client = client;
        self
    }
}

/// A turn that cannot get a model fails with a non-retryable `config` error.
fn config_error(message: impl Into<String>) -> ChatError {
    ClassifiedError::builder(ChatErrorKind::Config)
        .message(message)
        .retryable(false)
        .build()
        .to_chat_error()
        .unwrap_or_else(|| ChatError::generic("The model is not configured correctly."))
}

/// Message of the refusal of a new chat whose model has no usable API key
/// ([`ModelResolver::check_new_chat`]); the validation entry on `model_config_id` says
/// which provider and which key.
pub const MODEL_KEY_MISSING_MESSAGE: &str =
    "The chat's model cannot be used: its provider has no API key.";

/// Message of the refusal of a new chat whose model's provider this build cannot stream
/// ([`chatprovider::streams`]).
pub const MODEL_NOT_SUPPORTED_MESSAGE: &str =
    "The selected model's provider is not supported by this version.";

/// The 400 of [`StoreModelResolver::check_new_chat`]: the provider, and the environment
/// variable or the personal key it lacks. Only names, never a value.
fn missing_key_error(provider: &str, reason: UnavailableReason) -> Error {
    let detail = match (reason, Provider::parse(provider).and_then(Provider::api_key_env_var)) {
        (UnavailableReason::UserApiKeyRequired, _) => format!(
            "Provider \"{provider}\" needs your own API key, and you have not added one."
        ),
        (_, Some(var)) => format!(
            "Provider \"{provider}\" has no API key: {var} is not set and no key is configured for the provider."
        ),
        (_, None) => format!("Provider \"{provider}\" has no API key configured."),
    };
    Error::with_response(
        ErrorKind::InvalidArgument,
        Response::new(MODEL_KEY_MISSING_MESSAGE).with_validation("model_config_id", detail),
    )
}

fn classified(err: &(dyn std::error::Error + 'static)) -> ChatError {
    chaterror::classify(err)
        .to_chat_error()
        .unwrap_or_else(|| config_error(err.to_string()))
}

impl StoreModelResolver {
    /// The opened secrets of the chat's MCP servers, so that a failure of the turn can never
    /// show one. A server that is gone or whose secrets cannot be opened adds nothing
    /// (nothing of it can reach a request either).
    async fn chat_mcp_secrets(&self, chat_id: Uuid) -> Vec<String> {
        // Only an enabled server is connected, so only its secrets can reach a request:
        // with none enabled (the cached list) there is nothing to read.
        match self.store.cached_enabled_mcp_servers().await {
            Ok(servers) if servers.is_empty() => return Vec::new(),
            _ => {}
        }
        let ids = match self.store.get_chat(chat_id).await {
            Ok(Some(chat)) => chat.mcp_server_ids,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::warn!(%chat_id, error = %e, "reading the chat's MCP servers failed");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for id in ids {
            match self.store.mcp_server_secrets(id, &self.keyring).await {
                Ok(secrets) => {
                    out.extend(secrets.oauth2_client_secret.map(|s| s.expose().to_owned()));
                    out.extend(secrets.api_key_value.map(|s| s.expose().to_owned()));
                    out.extend(
                        secrets
                            .custom_headers
                            .values()
                            .map(|s| s.expose().to_owned()),
                    );
                }
                Err(e) if e.kind().is_client_error() => {}
                Err(e) => {
                    tracing::warn!(%chat_id, mcp_server_id = %id, error = %e, "opening MCP secrets failed")
                }
            }
        }
        out
    }

    /// The client and settings of a resolved turn model.
    fn build(
        &self,
        model: &TurnModel,
        effort: Option<chatprovider::ReasoningEffort>,
    ) -> std::result::Result<ResolvedModel, ChatError> {
        let Some(provider) = model.provider() else {
            return Err(config_error(format!(
                "Provider \"{}\" is not supported.",
                model.model_config.provider
            )));
        };
        let credentials = model.credentials().map_err(|e| classified(&e))?;
        let config = &model.model_config;
        let options = call_options(
            provider,
            &config.model,
            Some(&model.call_config),
            effort.map(chatprovider::ReasoningEffort::as_str),
        );
        let api = options.use_responses_api.then_some(OpenAiApi::Responses);
        let api = api.or(Some(OpenAiApi::ChatCompletions));
        let client = language_model(&credentials, &config.model, api, self.client.clone())
            .map_err(|e| classified(&e))?;
        let store_response_id = options.use_responses_api
            && model
                .call_config
                .provider_options
                .as_ref()
                .and_then(|o| o.openai.as_ref())
                .and_then(|o| o.store)
                .unwrap_or(false);
        Ok(ResolvedModel::new(config.id, client)
            .with_settings(options.settings)
            .with_provider_options(options.provider_options)
            .with_cost(model.call_config.cost.clone())
            .with_context_limit((config.context_limit > 0).then_some(config.context_limit))
            .with_compression_threshold(Some(config.compression_threshold))
            .with_store_response_id(store_response_id))
    }
}

#[async_trait::async_trait]
impl ModelResolver for StoreModelResolver {
    /// The requested model config; with none requested, the `general` model override when
    /// it can be used, else the default.
    async fn select(&self, selection: ModelSelection) -> Result<Uuid> {
        if selection.requested.is_none() {
            if let Some(config) = self
                .store
                .usable_model_override(&ChatModelOverrideContext::General)
                .await?
            {
                return Ok(config.id);
            }
        }
        let resolved = self
            .store
            .resolve_model_config(selection.requested, None, UnusableRequestedModel::Reject)
            .await?;
        Ok(resolved.config.id)
    }

    /// Refuses a new chat whose model's provider has no key for the owner (an environment
    /// key that is no longer set, no central key, or a personal key required and missing):
    /// [`ErrorKind::InvalidArgument`] naming the provider and the missing key or variable.
    async fn check_new_chat(&self, selection: ModelSelection, model_config_id: Uuid) -> Result<()> {
        let model = self
            .store
            .resolve_turn_model(
                selection.owner_id,
                Some(model_config_id),
                None,
                &self.keyring,
                &self.deployment_keys,
            )
            .await?;
        match model.unavailable_reason() {
            Some(
                reason @ (UnavailableReason::MissingApiKey | UnavailableReason::UserApiKeyRequired),
            ) => Err(missing_key_error(&model.model_config.provider, reason)),
            Some(UnavailableReason::NotSupported) => Err(Error::with_response(
                ErrorKind::InvalidArgument,
                Response::new(MODEL_NOT_SUPPORTED_MESSAGE).with_validation(
                    "model_config_id",
                    format!(
                        "Provider \"{}\" cannot be used with this version of chatd.",
                        model.model_config.provider
                    ),
                ),
            )),
            _ => Ok(()),
        }
    }

    async fn resolve(
        &self,
        turn: TurnModelRequest,
    ) -> std::result::Result<ResolvedModel, ChatError> {
        let model = self
            .store
            .resolve_turn_model(
                turn.owner_id,
                turn.requested,
                Some(turn.last),
                &self.keyring,
                &self.deployment_keys,
            )
            .await
            .map_err(|e| {
                if e.kind().is_client_error() {
                    config_error(e.to_string())
                } else {
                    tracing::error!(error = %e, "resolving the turn's model failed");
                    config_error("The chat's model could not be loaded.")
                }
            })?;
        let resolved = self.build(&model, turn.reasoning_effort)?;
        Ok(resolved.with_secrets(self.chat_mcp_secrets(turn.chat_id).await))
    }

    /// The `title_generation` model override, built like a turn's model with the key
    /// policy of the chat's owner; `None` when no usable override is set or the owner
    /// cannot use it (no key, disabled provider), so titles fall back to the chat's model.
    async fn title_model(&self, turn: TurnModelRequest) -> Option<ResolvedModel> {
        self.override_model(ChatModelOverrideContext::TitleGeneration, turn)
            .await
    }

    /// The `compaction` model override, like [`StoreModelResolver::title_model`]: `None`
    /// (the turn's model summarizes) when unset or unusable for the chat's owner.
    async fn compaction_model(&self, turn: TurnModelRequest) -> Option<ResolvedModel> {
        self.override_model(ChatModelOverrideContext::Compaction, turn)
            .await
    }
}

impl StoreModelResolver {
    /// The deployment's model override for `context`, built like a turn's model with the
    /// key policy of the chat's owner; `None` when unset, unusable, or unusable for this
    /// owner (the caller then uses the chat's own model). Never fails: a side model is not
    /// worth failing a turn or a title over.
    async fn override_model(
        &self,
        context: ChatModelOverrideContext,
        turn: TurnModelRequest,
    ) -> Option<ResolvedModel> {
        let config = match self.store.usable_model_override(&context).await {
            Ok(Some(config)) => config,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(context = %context.as_str(), error = %e, "reading a model override failed");
                return None;
            }
        };
        let model = match self
            .store
            .resolve_turn_model(
                turn.owner_id,
                Some(config.id),
                None,
                &self.keyring,
                &self.deployment_keys,
            )
            .await
        {
            Ok(model) => model,
            Err(e) => {
                tracing::warn!(context = %context.as_str(), error = %e, "resolving a model override failed");
                return None;
            }
        };
        // Deleted or disabled between the two reads: the store fell back to the default,
        // which is not the override; the chat's own model is the fallback.
        if model.model_config.id != config.id {
            return None;
        }
        match self.build(&model, None) {
            Ok(resolved) => Some(resolved),
            Err(e) => {
                tracing::debug!(
                    chat_id = %turn.chat_id,
                    context = %context.as_str(),
                    reason = %e.message,
                    "the model override cannot be used for this chat; using the chat's model"
                );
                None
            }
        }
    }
}
