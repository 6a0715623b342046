//! The configuration reads of a turn, through the store's hot-config cache
//! ([`crate::configcache`]): the loaders of each cached item, and the invalidation every
//! configuration write of the store makes after it committed.

use std::collections::HashMap;
use std::sync::Arc;

use chatprovider::{ConfiguredProvider, UserProviderKey};
use codersdk::{ChatModelConfig, Uuid};
use sqlx::Row;

use super::super::{get_uuid, uuid_text, Store};
use super::models::{model_from_row, MODEL_COLUMNS};
use super::prompts::SystemPromptConfig;
use super::providers::{open_provider_key, provider_from_row, FULL_PROVIDER_COLUMNS};
use super::user_key_aad;
use crate::cluster::ConfigChange;
use crate::configcache::{CachedProvider, SealedUserKey};
use crate::error::{DbResultExt, Result};
use crate::Keyring;

impl Store {
    /// Passes `result` on; when it is a success (the write committed), drops what `change`
    /// made stale from this store's cache, so this process reads its own write at once.
    pub(in crate::store) fn changed<T>(
        &self,
        result: Result<T>,
        change: ConfigChange,
    ) -> Result<T> {
        if result.is_ok() {
            self.config_cache().apply(&change);
        }
        result
    }

    /// The enabled MCP server configs (no secrets), cached: what every turn connects.
    pub(crate) async fn cached_enabled_mcp_servers(
        &self,
    ) -> Result<Arc<[codersdk::MCPServerConfig]>> {
        self.config_cache()
            .enabled_mcp_servers
            .get_or_load(&(), || async {
                self.list_mcp_server_configs(crate::store::McpServerFilter::Enabled)
                    .await
                    .map(Arc::from)
            })
            .await
    }

    /// Every live provider config with its sealed central key, cached.
    pub(crate) async fn cached_providers(&self) -> Result<Arc<[CachedProvider]>> {
        self.config_cache()
            .providers
            .get_or_load(&(), || async {
                let sql = format!(
                    "SELECT {FULL_PROVIDER_COLUMNS} FROM provider_configs WHERE deleted = 0"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(self.pool())
                    .await
                    .db()?;
                rows.iter()
                    .map(|row| {
                        Ok(CachedProvider {
                            config: provider_from_row(row)?,
                            sealed_key: row.try_get("api_key_sealed").db()?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Arc::from)
            })
            .await
    }

    /// The live model config `id` (enabled or not), cached; `None` when there is none.
    pub(crate) async fn cached_model_config(&self, id: Uuid) -> Result<Option<ChatModelConfig>> {
        self.config_cache()
            .model_configs
            .get_or_load(&id, || async {
                let sql = format!(
                    "SELECT {MODEL_COLUMNS} FROM model_configs WHERE id = $1 AND deleted = 0"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(uuid_text(id))
                    .fetch_optional(self.pool())
                    .await
                    .db()?;
                row.as_ref().map(model_from_row).transpose()
            })
            .await
    }

    /// The default model config, cached.
    pub(crate) async fn cached_default_model_config(&self) -> Result<Option<ChatModelConfig>> {
        self.config_cache()
            .default_model_config
            .get_or_load(&(), || self.default_model_config())
            .await
    }

    /// Whether any live model config exists, cached.
    pub(crate) async fn cached_any_model_config(&self) -> Result<bool> {
        self.config_cache()
            .any_model_config
            .get_or_load(&(), || async {
                let one: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM model_configs WHERE deleted = 0 LIMIT 1")
                        .fetch_optional(self.pool())
                        .await
                        .db()?;
                Ok(one.is_some())
            })
            .await
    }

    /// `user_id`'s own keys, sealed, cached.
    pub(crate) async fn cached_user_keys(&self, user_id: Uuid) -> Result<Arc<[SealedUserKey]>> {
        self.config_cache()
            .user_keys
            .get_or_load(&user_id, || async {
                let rows = sqlx::query(
                    "SELECT provider_config_id, api_key_sealed FROM user_provider_keys \
                     WHERE user_id = $1 ORDER BY provider_config_id",
                )
                .bind(uuid_text(user_id))
                .fetch_all(self.pool())
                .await
                .db()?;
                rows.iter()
                    .map(|row| {
                        Ok(SealedUserKey {
                            provider_config_id: get_uuid(row, "provider_config_id")?,
                            sealed: row.try_get("api_key_sealed").db()?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Arc::from)
            })
            .await
    }

    /// `user_id`'s own compaction thresholds by model config, cached.
    pub(crate) async fn cached_user_thresholds(
        &self,
        user_id: Uuid,
    ) -> Result<Arc<HashMap<Uuid, i32>>> {
        self.config_cache()
            .user_thresholds
            .get_or_load(&user_id, || async {
                let rows = sqlx::query(
                    "SELECT model_config_id, threshold_percent FROM user_compaction_thresholds \
                     WHERE user_id = $1",
                )
                .bind(uuid_text(user_id))
                .fetch_all(self.pool())
                .await
                .db()?;
                rows.iter()
                    .map(|row| {
                        Ok((
                            get_uuid(row, "model_config_id")?,
                            row.try_get::<i32, _>("threshold_percent").db()?,
                        ))
                    })
                    .collect::<Result<HashMap<_, _>>>()
                    .map(Arc::new)
            })
            .await
    }

    /// `user_id`'s personal prompt as a turn reads it: [`Store::user_prompt`] through the
    /// cache ([`USER_PROMPT_TTL`](crate::configcache::USER_PROMPT_TTL)).
    pub async fn cached_user_prompt(&self, user_id: Uuid) -> Result<String> {
        self.config_cache()
            .user_prompts
            .get_or_load(&user_id, || self.user_prompt(user_id))
            .await
    }

    /// The deployment's system prompt settings as a turn reads them:
    /// [`Store::system_prompt_config`] through the cache.
    pub async fn cached_system_prompt_config(&self) -> Result<SystemPromptConfig> {
        self.config_cache()
            .system_prompt
            .get_or_load(&(), || self.system_prompt_config())
            .await
    }

    /// The deployment's plan-mode instructions as a turn reads them:
    /// [`Store::plan_mode_instructions`] through the cache.
    pub async fn cached_plan_mode_instructions(&self) -> Result<String> {
        self.config_cache()
            .plan_mode_instructions
            .get_or_load(&(), || self.plan_mode_instructions())
            .await
    }

    /// The stored value of the `site_config` row `key` of a model override, cached.
    pub(super) async fn cached_override_value(&self, key: &str) -> Result<Option<String>> {
        self.config_cache()
            .model_overrides
            .get_or_load(&key.to_owned(), || async {
                sqlx::query_scalar("SELECT value FROM site_config WHERE key = $1")
                    .bind(key)
                    .fetch_optional(self.pool())
                    .await
                    .db()
            })
            .await
    }
}

/// A cached provider as the key policy sees it, its sealed key opened with `keyring`.
pub(super) fn configured_from_cached(
    cached: &CachedProvider,
    keyring: &Keyring,
) -> Result<ConfiguredProvider> {
    let p = &cached.config;
    Ok(ConfiguredProvider {
        id: p.id,
        provider: p.provider.clone(),
        api_key: open_provider_key(keyring, p.id, cached.sealed_key.as_deref())?,
        base_url: p.base_url.clone(),
        enabled: p.enabled,
        central_api_key_enabled: p.central_api_key_enabled,
        allow_user_api_key: p.allow_user_api_key,
        allow_central_api_key_fallback: p.allow_central_api_key_fallback,
    })
}

/// A user's cached key, opened with `keyring`.
pub(super) fn open_cached_user_key(
    key: &SealedUserKey,
    user_id: Uuid,
    keyring: &Keyring,
) -> Result<UserProviderKey> {
    Ok(UserProviderKey {
        provider_config_id: key.provider_config_id,
        api_key: keyring.decrypt_secret(
            &key.sealed,
            user_key_aad(user_id, key.provider_config_id).as_bytes(),
        )?,
    })
}

impl Store {
    /// The live configuration of chat provider `provider` with its central key opened,
    /// from the hot-config cache; `None` when the provider has none. The AI Gateway's
    /// default instances (`openai`, `anthropic`) read their key and base URL here at
    /// every request, so a key rotated through the API applies at once.
    pub(crate) async fn cached_configured_provider(
        &self,
        provider: &str,
        keyring: &Keyring,
    ) -> Result<Option<ConfiguredProvider>> {
        let providers = self.cached_providers().await?;
        providers
            .iter()
            .find(|p| p.config.provider == provider)
            .map(|p| configured_from_cached(p, keyring))
            .transpose()
    }
}
