//! The AI Gateway's provider instances: the defaults from the chat providers'
//! configuration, and those managed through the admin API (stored, key sealed).

use chatprovider::{Provider, ProviderCatalog};
use codersdk::{
    AIBridgeProviderInstance, CreateAIBridgeProviderInstanceRequest, Response, SecretString,
    UpdateAIBridgeProviderInstanceRequest, Uuid,
};

use super::Admin;
use crate::aibridge::{
    bedrock_settings, normalize_base_url, validate_instance_name, BedrockSettings, InstanceSource,
    InstanceType, ProviderInstance, DEFAULT_ANTHROPIC_INSTANCE, DEFAULT_OPENAI_INSTANCE,
};
use crate::engine::Actor;
use crate::error::{Error, ErrorKind, Result};
use crate::store::{aibridge_key_aad, StoredAibridgeInstance};

fn invalid(field: &str, detail: impl Into<String>) -> Error {
    let detail = detail.into();
    Error::with_response(
        ErrorKind::InvalidArgument,
        Response::new(format!("Invalid AI Gateway instance: {detail}"))
            .with_validation(field, detail),
    )
}

fn is_default_name(name: &str) -> bool {
    name == DEFAULT_OPENAI_INSTANCE || name == DEFAULT_ANTHROPIC_INSTANCE
}

/// A usable key, or `None` for an empty one; the error never repeats the key.
fn checked_key(key: &SecretString) -> Result<Option<String>> {
    let key = key.expose().trim();
    if key.is_empty() {
        return Ok(None);
    }
    if key.len() > chatprovider::MAX_API_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(invalid(
            "api_key",
            format!(
                "the key is longer than {} bytes or has control characters",
                chatprovider::MAX_API_KEY_BYTES
            ),
        ));
    }
    Ok(Some(key.to_owned()))
}

fn wire(instance: &ProviderInstance) -> AIBridgeProviderInstance {
    AIBridgeProviderInstance {
        name: instance.name.clone(),
        provider_type: instance.instance_type.as_str().to_owned(),
        base_url: instance.base_url.clone(),
        has_api_key: instance.api_key.is_some(),
        source: match instance.source {
            InstanceSource::Default => "default",
            InstanceSource::Environment => "environment",
            _ => "database",
        }
        .to_owned(),
        read_only: instance.source != InstanceSource::Database,
        bedrock_region: instance.bedrock.region.clone(),
        bedrock_model: instance.bedrock.model.clone(),
        bedrock_small_fast_model: instance.bedrock.small_fast_model.clone(),
    }
}

fn stored_wire(row: &StoredAibridgeInstance) -> AIBridgeProviderInstance {
    AIBridgeProviderInstance {
        name: row.name.clone(),
        provider_type: row.instance_type.clone(),
        base_url: row.base_url.clone(),
        has_api_key: row.api_key_sealed.is_some(),
        source: "database".to_owned(),
        read_only: false,
        bedrock_region: row.bedrock_region.clone(),
        bedrock_model: row.bedrock_model.clone(),
        bedrock_small_fast_model: row.bedrock_small_fast_model.clone(),
    }
}

/// The Bedrock settings of an instance of `instance_type`, as a 400 naming the field.
fn checked_bedrock(
    instance_type: InstanceType,
    region: Option<&str>,
    model: Option<&str>,
    small_fast_model: Option<&str>,
) -> Result<BedrockSettings> {
    bedrock_settings(instance_type, region, model, small_fast_model).map_err(|(field, e)| {
        let field = match field {
            "REGION" => "bedrock_region",
            "MODEL" => "bedrock_model",
            _ => "bedrock_small_fast_model",
        };
        invalid(field, e)
    })
}

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
            .or(instance_type.default_base_url())
            .unwrap_or_default()
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
            bedrock: BedrockSettings::default(),
        }))
    }
}

impl Admin {
    /// The stored instance named `name` with its key opened, for the gateway; `None` when
    /// there is none.
    pub async fn aibridge_stored_instance(&self, name: &str) -> Result<Option<ProviderInstance>> {
        let Some(row) = self.store().get_aibridge_instance(name).await? else {
            return Ok(None);
        };
        let Some(instance_type) = InstanceType::parse(&row.instance_type) else {
            return Err(Error::new(
                ErrorKind::CorruptRow,
                format!("AI Gateway instance {name:?} has an unknown type"),
            ));
        };
        let api_key = row
            .api_key_sealed
            .as_deref()
            .map(|sealed| {
                self.keyring()
                    .decrypt_secret(sealed, aibridge_key_aad(row.id).as_bytes())
            })
            .transpose()?;
        let bedrock = checked_bedrock(
            instance_type,
            row.bedrock_region.as_deref(),
            row.bedrock_model.as_deref(),
            row.bedrock_small_fast_model.as_deref(),
        )
        .map_err(|e| {
            Error::new(
                ErrorKind::CorruptRow,
                format!("AI Gateway instance {name:?} has invalid Bedrock settings: {e}"),
            )
        })?;
        Ok(Some(ProviderInstance {
            name: row.name,
            instance_type,
            base_url: row.base_url,
            api_key,
            source: InstanceSource::Database,
            bedrock,
        }))
    }

    /// Every instance (admin): the defaults, then `environment`'s (the server's, from
    /// `CHATD_AIBRIDGE_PROVIDER_<N>_*`), then the stored ones. Keys are never returned.
    pub async fn list_aibridge_instances(
        &self,
        actor: &Actor,
        environment: &[ProviderInstance],
    ) -> Result<Vec<AIBridgeProviderInstance>> {
        actor.require_admin()?;
        let mut out = Vec::new();
        for name in [DEFAULT_OPENAI_INSTANCE, DEFAULT_ANTHROPIC_INSTANCE] {
            if let Some(i) = self.aibridge_default_instance(name).await? {
                out.push(wire(&i));
            }
        }
        out.extend(environment.iter().map(wire));
        out.extend(
            self.store()
                .list_aibridge_instances()
                .await?
                .iter()
                .map(stored_wire),
        );
        Ok(out)
    }

    /// Stores a new instance (admin). Its name must be free among the defaults, the
    /// environment's and the stored ones (409 otherwise); its key is sealed with the
    /// keyring.
    pub async fn create_aibridge_instance(
        &self,
        actor: &Actor,
        environment: &[ProviderInstance],
        request: &CreateAIBridgeProviderInstanceRequest,
    ) -> Result<AIBridgeProviderInstance> {
        actor.require_admin()?;
        let name = request.name.trim();
        validate_instance_name(name).map_err(|e| invalid("name", e))?;
        let instance_type = InstanceType::parse(&request.provider_type)
            .ok_or_else(|| invalid("type", "the type is openai, anthropic or bedrock"))?;
        let bedrock = checked_bedrock(
            instance_type,
            request.bedrock_region.as_deref(),
            request.bedrock_model.as_deref(),
            request.bedrock_small_fast_model.as_deref(),
        )?;
        let base_url = instance_type
            .base_url(request.base_url.as_deref(), &bedrock)
            .map_err(|e| invalid("base_url", e))?;
        if is_default_name(name) || environment.iter().any(|i| i.name == name) {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "The AI Gateway instance {name:?} is configured by the deployment \
                     (a default or an environment instance)."
                ),
            ));
        }
        let id = Uuid::new_v4();
        let api_key_sealed = match request
            .api_key
            .as_ref()
            .map(checked_key)
            .transpose()?
            .flatten()
        {
            Some(key) => Some(
                self.keyring()
                    .encrypt(key.as_bytes(), aibridge_key_aad(id).as_bytes())?,
            ),
            None => None,
        };
        let row = StoredAibridgeInstance {
            id,
            name: name.to_owned(),
            instance_type: instance_type.as_str().to_owned(),
            base_url,
            api_key_sealed,
            bedrock_region: bedrock.region,
            bedrock_model: bedrock.model,
            bedrock_small_fast_model: bedrock.small_fast_model,
        };
        self.store().insert_aibridge_instance(&row).await?;
        Ok(stored_wire(&row))
    }

    /// Changes a stored instance's base URL, key or Bedrock settings (admin). The defaults
    /// and the environment's are read-only here (403); an unknown name is 404.
    pub async fn update_aibridge_instance(
        &self,
        actor: &Actor,
        environment: &[ProviderInstance],
        name: &str,
        request: &UpdateAIBridgeProviderInstanceRequest,
    ) -> Result<AIBridgeProviderInstance> {
        actor.require_admin()?;
        let mut row = self.stored_for_change(environment, name).await?;
        if let Some(raw) = request.base_url.as_deref() {
            row.base_url = normalize_base_url(raw).map_err(|e| invalid("base_url", e))?;
        }
        let old_region = row.bedrock_region.clone();
        let changed = |new: &Option<String>, old: Option<String>| match new {
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(v.trim().to_owned()),
            None => old,
        };
        let instance_type = InstanceType::parse(&row.instance_type).ok_or_else(|| {
            Error::new(
                ErrorKind::CorruptRow,
                format!("AI Gateway instance {name:?} has an unknown type"),
            )
        })?;
        let bedrock = checked_bedrock(
            instance_type,
            changed(&request.bedrock_region, row.bedrock_region.take()).as_deref(),
            changed(&request.bedrock_model, row.bedrock_model.take()).as_deref(),
            changed(
                &request.bedrock_small_fast_model,
                row.bedrock_small_fast_model.take(),
            )
            .as_deref(),
        )?;
        // A base URL that was the old region's endpoint follows the region.
        let old_endpoint = old_region
            .as_deref()
            .map(chatprovider::bedrock_default_base_url);
        if request.base_url.is_none() && old_endpoint.as_deref() == Some(row.base_url.as_str()) {
            if let Some(endpoint) = bedrock.default_base_url() {
                row.base_url = endpoint;
            }
        }
        row.bedrock_region = bedrock.region;
        row.bedrock_model = bedrock.model;
        row.bedrock_small_fast_model = bedrock.small_fast_model;
        if let Some(key) = &request.api_key {
            row.api_key_sealed = match checked_key(key)? {
                Some(key) => Some(
                    self.keyring()
                        .encrypt(key.as_bytes(), aibridge_key_aad(row.id).as_bytes())?,
                ),
                None => None,
            };
        }
        if !self.store().update_aibridge_instance(&row).await? {
            return Err(not_found(name));
        }
        Ok(stored_wire(&row))
    }

    /// Deletes a stored instance (admin); read-only and unknown ones as for updates.
    pub async fn delete_aibridge_instance(
        &self,
        actor: &Actor,
        environment: &[ProviderInstance],
        name: &str,
    ) -> Result<()> {
        actor.require_admin()?;
        self.stored_for_change(environment, name).await?;
        if !self.store().delete_aibridge_instance(name).await? {
            return Err(not_found(name));
        }
        Ok(())
    }

    /// Start-up check: no environment instance may share a stored instance's name (a name
    /// configured twice).
    pub async fn check_aibridge_instance_names(
        &self,
        environment: &[ProviderInstance],
    ) -> Result<()> {
        for stored in self.store().list_aibridge_instances().await? {
            if environment.iter().any(|i| i.name == stored.name) || is_default_name(&stored.name) {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "the AI Gateway instance name {:?} is configured twice: in the \
                         environment and through the admin API",
                        stored.name
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn stored_for_change(
        &self,
        environment: &[ProviderInstance],
        name: &str,
    ) -> Result<StoredAibridgeInstance> {
        if is_default_name(name) || environment.iter().any(|i| i.name == name) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!(
                    "The AI Gateway instance {name:?} is configured by the deployment and is \
                     read-only through the API."
                ),
            ));
        }
        self.store()
            .get_aibridge_instance(name)
            .await?
            .ok_or_else(|| not_found(name))
    }
}

fn not_found(name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("No AI Gateway instance is named {name:?}."),
    )
}
