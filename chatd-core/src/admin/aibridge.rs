//! The AI Gateway's default provider instances, from the chat providers' configuration.

use chatprovider::{Provider, ProviderCatalog};

use super::Admin;
use crate::aibridge::{
    InstanceSource, InstanceType, ProviderInstance, DEFAULT_ANTHROPIC_INSTANCE,
    DEFAULT_OPENAI_INSTANCE,
};
use crate::error::Result;

impl Admin {
    /// The default gateway instance named `name` (`openai` or `anthropic`): the chat
    /// provider's stored central key and base URL, else the environment's
    /// (`OPENAI_API_KEY`, `ANTHROPIC_BASE_URL`, …), else the public endpoint without a key.
    /// `None` for another name, or when the provider's configuration is disabled (an
    /// administrator turned that provider off). Keys are opened at each call from the
    /// hot-config cache, so a key rotated through the API applies at once.
    pub async fn aibridge_default_instance(&self, name: &str) -> Result<Option<ProviderInstance>> {
        let instance_type = match name {
            DEFAULT_OPENAI_INSTANCE => InstanceType::OpenAi,
            DEFAULT_ANTHROPIC_INSTANCE => InstanceType::Anthropic,
            _ => return Ok(None),
        };
        let provider: Provider = instance_type.provider();
        let stored = self
            .store()
            .cached_configured_provider(provider.as_str(), self.keyring())
            .await?;
        if stored.as_ref().is_some_and(|p| !p.enabled) {
            return Ok(None);
        }
        let merged =
            chatprovider::ProviderApiKeys::merged(self.deployment_keys(), stored.as_slice());
        let base_url = merged
            .base_url(provider.as_str())
            .or(provider.default_base_url())
            .unwrap_or(instance_type.default_base_url())
            .trim_end_matches('/')
            .to_owned();
        Ok(Some(ProviderInstance {
            name: name.to_owned(),
            instance_type,
            base_url,
            api_key: merged
                .api_key(provider.as_str())
                .map(|k| codersdk::SecretString::from(k.to_owned())),
            source: InstanceSource::Default,
        }))
    }
}
