//! Which model config a send or a turn uses, and the credentials a
//! turn runs with.

use chatprovider::{
    resolve_user_provider_keys, CredentialSource, Provider, ProviderApiKeys, ProviderCredentials,
    ResolvedProviderKeys, UnavailableReason,
};
use codersdk::{ChatModelCallConfig, ChatModelConfig, ChatProviderConfig, Response, Uuid};

use super::super::Store;
use super::cached::{configured_from_cached, open_cached_user_key};
use crate::error::{Error, ErrorKind, Result};
use crate::Keyring;

/// Message of the error for a requested model config that does not exist, was deleted or
/// is disabled (HTTP 400).
pub const INVALID_MODEL_CONFIG_MESSAGE: &str = "invalid model config";

/// Message of [`ErrorKind::NoDefaultModelConfig`].
pub const NO_DEFAULT_MODEL_CONFIG_MESSAGE: &str = "no default model config";

/// What [`Store::resolve_model_config`] does with a requested model config that cannot
/// be used (missing, deleted or disabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnusableRequestedModel {
    /// Refuse with [`INVALID_MODEL_CONFIG_MESSAGE`] ([`ErrorKind::InvalidArgument`], HTTP
    /// 400): the caller named it just now and should hear that it is wrong. For sends,
    /// edits and chat creation.
    Reject,
    /// Skip it and go on with the chat's last model, then the default. For turns and
    /// auto-promotion, where the id was stored earlier and the model may have been deleted
    /// or disabled since: failing the turn would strand a message nobody can resend.
    FallBack,
}

/// Which rule picked the model config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelConfigSource {
    /// The id named on the message or request.
    Requested,
    /// The chat's `last_model_config_id`.
    ChatLast,
    /// The deployment default.
    Default,
}

/// A model config chosen by [`Store::resolve_model_config`].
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModelConfig {
    /// The config (live and enabled).
    pub config: ChatModelConfig,
    /// Which rule chose it.
    pub source: ModelConfigSource,
}

/// Everything a turn needs to call its model: the model config, its call options and
/// prices, the provider config, and the credentials the key policy chose for the chat's
/// owner. `Debug` never shows a key.
#[derive(Debug, Clone)]
pub struct TurnModel {
    /// The model config.
    pub model_config: ChatModelConfig,
    /// Its call options and prices (`model_config.model_config`, or all defaults when the
    /// config has none), exactly as stored. Prices it lacks are not filled from a price
    /// book here.
    pub call_config: ChatModelCallConfig,
    /// Which rule chose the model config.
    pub source: ModelConfigSource,
    /// The live provider config of the model's provider; `None` when the provider is only
    /// supplied by the deployment (an environment preset).
    pub provider_config: Option<ChatProviderConfig>,
    keys: ResolvedProviderKeys,
}

impl TurnModel {
    /// The model's provider; `None` for a provider id this version does not know.
    pub fn provider(&self) -> Option<Provider> {
        Provider::parse(&self.model_config.provider)
    }

    /// What the provider client connects with: key (or ambient credentials) and endpoint.
    ///
    /// The error is chatprovider's, pre-classified for `chaterror::classify`: kind
    /// `provider_disabled` when an administrator disabled the provider, `missing_key` when
    /// the policy left no key (no central key, or the user must bring one and has not),
    /// `config` for an unusable endpoint or an unknown provider. The engine fails the turn
    /// with that classification; none of these is retryable.
    pub fn credentials(&self) -> std::result::Result<ProviderCredentials<'_>, chatprovider::Error> {
        self.keys.client_credentials(&self.model_config.provider)
    }

    /// Where the credential comes from (central, the user's own, ambient), with a key
    /// hint for audit logs; `None` when the provider is unavailable.
    pub fn credential_source(&self) -> Option<CredentialSource> {
        self.keys.credential(&self.model_config.provider)
    }

    /// Why the provider cannot be used (`provider_not_supported` when this build cannot
    /// stream it, `missing_api_key`, `user_api_key_required`, `provider_disabled`); `None`
    /// when it can.
    pub fn unavailable_reason(&self) -> Option<UnavailableReason> {
        if let Some(p) = chatprovider::Provider::parse(&self.model_config.provider) {
            if !chatprovider::streams(p) && self.provider_config.is_none() {
                return Some(UnavailableReason::NotSupported);
            }
        }
        if self.provider_config.is_none() {
            // Only configured providers are in the policy's availability map; a
            // deployment-supplied provider is available exactly when it has credentials.
            return (!self.keys.keys().is_usable(&self.model_config.provider))
                .then_some(UnavailableReason::MissingApiKey);
        }
        chatprovider::unavailable_reason(&self.keys, &self.model_config.provider)
    }

    /// The keys the policy resolved for the owner (the model's provider and the
    /// deployment's keys of providers without a config).
    pub fn keys(&self) -> &ResolvedProviderKeys {
        &self.keys
    }
}

fn invalid_model_config(id: Uuid) -> Error {
    Error::with_response(
        ErrorKind::InvalidArgument,
        Response::new(INVALID_MODEL_CONFIG_MESSAGE).with_validation(
            "model_config_id",
            format!("Model config {id} does not exist or is disabled."),
        ),
    )
}

impl Store {
    /// A live, enabled model config; `None` otherwise. Through the hot-config cache.
    async fn usable_model_config(&self, id: Uuid) -> Result<Option<ChatModelConfig>> {
        Ok(self
            .cached_model_config(id)
            .await?
            .filter(|config| config.enabled))
    }

    /// Picks the model config of a send or a turn: the `requested`
    /// id, then the chat's last model `chat_last`, then the default. Only live, enabled
    /// configs are used; whether their provider is enabled and has a key is the
    /// credentials' concern ([`TurnModel::credentials`]), so that a disabled provider is
    /// reported as such instead of silently switching models.
    ///
    /// A requested config that cannot be used is refused or skipped as `on_unusable`
    /// says. An unusable `chat_last` is always skipped. [`ErrorKind::NoDefaultModelConfig`]
    /// ([`NO_DEFAULT_MODEL_CONFIG_MESSAGE`]) when it comes to the default and there is
    /// none.
    ///
    /// The model configs come from the hot-config cache ([`crate::configcache`]): this
    /// store's writes are seen at once, another replica's once its change notification
    /// arrived, and writes behind the store's back within
    /// [`MODEL_CONFIG_TTL`](crate::configcache::MODEL_CONFIG_TTL).
    pub async fn resolve_model_config(
        &self,
        requested: Option<Uuid>,
        chat_last: Option<Uuid>,
        on_unusable: UnusableRequestedModel,
    ) -> Result<ResolvedModelConfig> {
        if let Some(id) = requested {
            match self.usable_model_config(id).await? {
                Some(config) => {
                    return Ok(ResolvedModelConfig {
                        config,
                        source: ModelConfigSource::Requested,
                    })
                }
                None if on_unusable == UnusableRequestedModel::Reject => {
                    return Err(invalid_model_config(id))
                }
                None => {}
            }
        }
        if let Some(id) = chat_last {
            if let Some(config) = self.usable_model_config(id).await? {
                return Ok(ResolvedModelConfig {
                    config,
                    source: ModelConfigSource::ChatLast,
                });
            }
        }
        match self.cached_default_model_config().await? {
            Some(config) if config.enabled => Ok(ResolvedModelConfig {
                config,
                source: ModelConfigSource::Default,
            }),
            _ => Err(Error::new(
                ErrorKind::NoDefaultModelConfig,
                NO_DEFAULT_MODEL_CONFIG_MESSAGE,
            )),
        }
    }

    /// The model and credentials of a turn of a chat owned by `owner_id`: the model config
    /// as [`Store::resolve_model_config`] picks it with
    /// [`UnusableRequestedModel::FallBack`] (`requested` is the model named on the
    /// triggering message, `chat_last` the chat's `last_model_config_id`), then its
    /// provider's configs and the owner's own keys for them, opened with `keyring`, through
    /// `chatprovider::resolve_user_provider_keys` with `fallback_keys` (the deployment's
    /// keys, e.g. environment presets) as the central fallback.
    ///
    /// Only the model's provider's secrets are opened: a broken key of another provider
    /// cannot fail this turn. A secret of this provider that cannot be opened is an error
    /// (the keyring's kinds), never treated as absent, which could silently move the user
    /// onto the central key. Policy outcomes (disabled provider, missing key, user key
    /// required) are not errors here: [`TurnModel::credentials`] reports them.
    ///
    /// Everything it reads comes from the hot-config cache ([`crate::configcache`]); the
    /// cached keys are sealed and opened here, at each call.
    pub async fn resolve_turn_model(
        &self,
        owner_id: Uuid,
        requested: Option<Uuid>,
        chat_last: Option<Uuid>,
        keyring: &Keyring,
        fallback_keys: &ProviderApiKeys,
    ) -> Result<TurnModel> {
        let resolved = self
            .resolve_model_config(requested, chat_last, UnusableRequestedModel::FallBack)
            .await?;
        // At most one live config per provider (a partial unique index); the owner's
        // keys are read only when the provider has one, and only this provider's secrets
        // are opened.
        let providers = self.cached_providers().await?;
        let rows: Vec<_> = providers
            .iter()
            .filter(|p| p.config.provider == resolved.config.provider)
            .collect();
        let mut configured = Vec::with_capacity(rows.len());
        let mut user_keys = Vec::new();
        if !rows.is_empty() {
            let own = self.cached_user_keys(owner_id).await?;
            for row in &rows {
                configured.push(configured_from_cached(row, keyring)?);
                if let Some(key) = own.iter().find(|k| k.provider_config_id == row.config.id) {
                    user_keys.push(open_cached_user_key(key, owner_id, keyring)?);
                }
            }
        }
        let provider_config = rows.first().map(|row| row.config.clone());
        Ok(TurnModel {
            call_config: resolved.config.model_config.clone().unwrap_or_default(),
            model_config: resolved.config,
            source: resolved.source,
            provider_config,
            keys: resolve_user_provider_keys(fallback_keys, &configured, &user_keys),
        })
    }

    /// The key policy for `owner_id` over every configured provider (for the model
    /// catalogue, `chatprovider::list_configured_models`): every provider config and the
    /// owner's own keys opened with `keyring`, `fallback_keys` as the deployment's keys.
    /// A secret that cannot be opened is an error.
    pub async fn resolve_provider_keys(
        &self,
        owner_id: Uuid,
        keyring: &Keyring,
        fallback_keys: &ProviderApiKeys,
    ) -> Result<ResolvedProviderKeys> {
        let configured = self.configured_providers(keyring).await?;
        let user_keys = self.user_provider_keys(owner_id, keyring).await?;
        Ok(resolve_user_provider_keys(
            fallback_keys,
            &configured,
            &user_keys,
        ))
    }
}
