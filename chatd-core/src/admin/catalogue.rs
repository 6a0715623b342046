//! The model catalogue (`GET /chats/models`) and whether anything is configured at all.

use chatprovider::ConfiguredModel;
use codersdk::ChatModelsResponse;

use super::Admin;
use crate::engine::Actor;
use crate::error::Result;
use crate::store::ModelConfigFilter;

impl Admin {
    /// The models `actor` can chat with, by provider, with why a provider is unavailable
    /// to them. The key policy applies as it does to their turns: central keys, their own
    /// keys, the deployment's environment keys (keys are opened only to decide
    /// availability, never returned).
    ///
    /// A provider the deployment has an environment key for counts as configured with the
    /// defaults of a new config (central key, no user keys), as `GET /chats/providers`
    /// lists it and turns use it; a stored config replaces it.
    pub async fn list_models(&self, actor: &Actor) -> Result<ChatModelsResponse> {
        let store = self.store();
        let mut configured = store.configured_providers(self.keyring()).await?;
        for p in self.deployment_keys().providers() {
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
            .user_provider_keys(actor.user_id, self.keyring())
            .await?;
        let resolved = chatprovider::resolve_user_provider_keys(
            self.deployment_keys(),
            &configured,
            &user_keys,
        );
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
        Ok(
            chatprovider::list_configured_models(&configured, &models, &resolved).unwrap_or_else(
                || chatprovider::list_provider_availability(&configured, &resolved),
            ),
        )
    }

    /// Whether any model source is configured: a provider key in the environment, a model
    /// config (deleted ones do not count) or a provider config. A server may run a
    /// stand-in model while nothing is. Through the hot-config cache (a server asks at
    /// every turn).
    pub async fn is_configured(&self) -> Result<bool> {
        if self.deployment_keys().providers().next().is_some() {
            return Ok(true);
        }
        let store = self.store();
        if store.cached_any_model_config().await? {
            return Ok(true);
        }
        Ok(!store.cached_providers().await?.is_empty())
    }
}
