//! Provider configs: one live row per provider, central keys sealed.

use chatprovider::{ConfiguredProvider, Provider, ProviderApiKeys, SUPPORTED_PROVIDERS};
use codersdk::{
    ApiKeyChange, ChatProviderConfig, ChatProviderConfigSource, SecretString,
    UpdateChatProviderConfigRequest, Uuid, ValidatedProviderConfig,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::super::{get_bool, get_time, get_uuid, now_micros, uuid_text, Store};
use super::{
    bool_int, finish, for_update, invalid, lock_model_configs, provider_config_not_found,
    provider_key_aad,
};
use crate::cluster::ConfigChange;
use crate::error::{DbResultExt, Error, ErrorKind, Result};
use crate::Keyring;

const PROVIDER_COLUMNS: &str = "id, provider, display_name, base_url, enabled, \
    central_api_key_enabled, allow_user_api_key, allow_central_api_key_fallback, \
    CASE WHEN api_key_sealed IS NULL THEN 0 ELSE 1 END AS has_api_key, created_at, updated_at";

/// The columns of both [`provider_from_row`] and [`configured_from_row`].
pub(super) const FULL_PROVIDER_COLUMNS: &str = "id, provider, display_name, base_url, enabled, \
    central_api_key_enabled, allow_user_api_key, allow_central_api_key_fallback, \
    CASE WHEN api_key_sealed IS NULL THEN 0 ELSE 1 END AS has_api_key, created_at, updated_at, \
    api_key_sealed";

/// The committed facts of [`Store::delete_provider_config`], for the caller to publish
/// (config-cache invalidation of the provider and of every model config named here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedProviderConfig {
    /// The deleted provider config.
    pub id: Uuid,
    /// Its provider id.
    pub provider: String,
    /// The model configs of that provider, soft-deleted with it.
    pub deleted_model_config_ids: Vec<Uuid>,
    /// How many users' own keys for it were erased.
    pub deleted_user_keys: u64,
    /// The model config that became the default because the old default was among the
    /// deleted ones; `None` when the default did not change or no enabled model is left.
    pub new_default_model_config_id: Option<Uuid>,
}

/// The name shown for a provider: the administrator's, else the catalog's, else the id.
fn shown_name(provider: &str, stored: &str) -> String {
    if !stored.is_empty() {
        return stored.to_owned();
    }
    Provider::parse(provider)
        .map(|p| p.display_name().to_owned())
        .unwrap_or_else(|| provider.to_owned())
}

pub(super) fn provider_from_row(row: &AnyRow) -> Result<ChatProviderConfig> {
    let provider: String = row.try_get("provider").db()?;
    let display_name: String = row.try_get("display_name").db()?;
    Ok(ChatProviderConfig {
        id: get_uuid(row, "id")?,
        display_name: shown_name(&provider, &display_name),
        provider,
        enabled: get_bool(row, "enabled")?,
        has_api_key: get_bool(row, "has_api_key")?,
        central_api_key_enabled: get_bool(row, "central_api_key_enabled")?,
        allow_user_api_key: get_bool(row, "allow_user_api_key")?,
        allow_central_api_key_fallback: get_bool(row, "allow_central_api_key_fallback")?,
        base_url: row.try_get("base_url").db()?,
        source: ChatProviderConfigSource::Database,
        created_at: Some(get_time(row, "created_at")?),
        updated_at: Some(get_time(row, "updated_at")?),
    })
}

/// Catalog position of a provider id; unknown ids (a newer version's) sort last.
pub(super) fn catalog_rank(provider: &str) -> usize {
    SUPPORTED_PROVIDERS
        .iter()
        .position(|p| p.as_str() == provider)
        .unwrap_or(SUPPORTED_PROVIDERS.len())
}

fn already_configured(provider: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "Provider {provider} is already configured; update or delete the existing \
             configuration."
        ),
    )
}

fn seal(keyring: &Keyring, key: &SecretString, id: Uuid) -> Result<String> {
    keyring.encrypt(key.expose().as_bytes(), provider_key_aad(id).as_bytes())
}

/// Opens a provider row's sealed key; an empty key when it has none.
pub(super) fn open_provider_key(
    keyring: &Keyring,
    id: Uuid,
    sealed: Option<&str>,
) -> Result<SecretString> {
    match sealed {
        None => Ok(SecretString::default()),
        Some(sealed) => keyring.decrypt_secret(sealed, provider_key_aad(id).as_bytes()),
    }
}

/// A stored row as the key policy sees it, the sealed central key opened.
pub(super) fn configured_from_row(row: &AnyRow, keyring: &Keyring) -> Result<ConfiguredProvider> {
    let id = get_uuid(row, "id")?;
    let sealed: Option<String> = row.try_get("api_key_sealed").db()?;
    Ok(ConfiguredProvider {
        id,
        provider: row.try_get("provider").db()?,
        api_key: open_provider_key(keyring, id, sealed.as_deref())?,
        base_url: row.try_get("base_url").db()?,
        enabled: get_bool(row, "enabled")?,
        central_api_key_enabled: get_bool(row, "central_api_key_enabled")?,
        allow_user_api_key: get_bool(row, "allow_user_api_key")?,
        allow_central_api_key_fallback: get_bool(row, "allow_central_api_key_fallback")?,
    })
}

pub(super) const CONFIGURED_COLUMNS: &str = "id, provider, api_key_sealed, base_url, enabled, \
    central_api_key_enabled, allow_user_api_key, allow_central_api_key_fallback";

impl Store {
    /// Stores a validated provider config (`codersdk::validate_create_provider_config` or
    /// `chatprovider::validate_create_provider_request`), its central key sealed with
    /// `keyring` under [`provider_key_aad`].
    ///
    /// [`ErrorKind::Conflict`] (HTTP 409) when the provider already has a live config;
    /// [`ErrorKind::InvalidArgument`] for a provider id this version does not know.
    pub async fn create_provider_config(
        &self,
        new: &ValidatedProviderConfig,
        keyring: &Keyring,
    ) -> Result<ChatProviderConfig> {
        let Some(provider) = Provider::parse(&new.provider) else {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("unknown provider {:?}", new.provider),
            ));
        };
        let provider = provider.as_str();
        let id = Uuid::new_v4();
        let sealed = new
            .api_key
            .as_ref()
            .map(|k| seal(keyring, k, id))
            .transpose()?;
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            let taken =
                sqlx::query("SELECT id FROM provider_configs WHERE provider = $1 AND deleted = 0")
                    .bind(provider)
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
            if taken.is_some() {
                return Err(already_configured(provider));
            }
            sqlx::query(
                "INSERT INTO provider_configs (id, provider, display_name, api_key_sealed, \
                 base_url, enabled, central_api_key_enabled, allow_user_api_key, \
                 allow_central_api_key_fallback, created_at, updated_at, deleted) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 0)",
            )
            .bind(uuid_text(id))
            .bind(provider)
            .bind(&new.display_name)
            .bind(sealed.as_deref())
            .bind(&new.base_url)
            .bind(bool_int(new.enabled))
            .bind(bool_int(new.central_api_key_enabled))
            .bind(bool_int(new.allow_user_api_key))
            .bind(bool_int(new.allow_central_api_key_fallback))
            .bind(now)
            .execute(&mut *tx)
            .await
            // A concurrent create won the partial unique index.
            .map_err(|e| match Error::from_sqlx(e) {
                e if e.kind() == ErrorKind::Conflict => already_configured(provider).with_source(e),
                e => e,
            })?;
            Ok(())
        }
        .await;
        let done = finish(tx, result).await;
        self.changed(done, ConfigChange::Providers)?;
        self.get_provider_config(id).await
    }

    /// The live provider configs, in catalog order. Keys are never returned, only
    /// `has_api_key`. See [`provider_config_listing`] for the full listing of
    /// `GET /chats/providers`.
    pub async fn list_provider_configs(&self) -> Result<Vec<ChatProviderConfig>> {
        let sql = format!("SELECT {PROVIDER_COLUMNS} FROM provider_configs WHERE deleted = 0");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await
            .db()?;
        let mut list = rows
            .iter()
            .map(provider_from_row)
            .collect::<Result<Vec<_>>>()?;
        list.sort_by(|a, b| {
            (catalog_rank(&a.provider), &a.provider).cmp(&(catalog_rank(&b.provider), &b.provider))
        });
        Ok(list)
    }

    /// A live provider config. [`ErrorKind::NotFound`] when it does not exist or was
    /// deleted.
    pub async fn get_provider_config(&self, id: Uuid) -> Result<ChatProviderConfig> {
        let sql = format!(
            "SELECT {PROVIDER_COLUMNS} FROM provider_configs WHERE id = $1 AND deleted = 0"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(id))
            .fetch_optional(self.pool())
            .await
            .db()?;
        match row {
            Some(row) => provider_from_row(&row),
            None => Err(provider_config_not_found(id)),
        }
    }

    /// Applies `PATCH /chats/providers/{id}`. The request is validated here, under the row
    /// lock, against the row as it is now (`chatprovider::validate_update_provider_request`
    /// with `deployment_keys` for the "central key may come from the deployment" waiver),
    /// so two concurrent updates cannot together produce a state neither validated. A new
    /// key is sealed with `keyring`; `api_key: ""` erases the stored one.
    ///
    /// [`ErrorKind::InvalidArgument`] with the validator's `Response` (per-field
    /// validations) when the result would break a key-policy rule;
    /// [`ErrorKind::NotFound`] when the config does not exist or was deleted.
    pub async fn update_provider_config(
        &self,
        id: Uuid,
        req: &UpdateChatProviderConfigRequest,
        deployment_keys: &ProviderApiKeys,
        keyring: &Keyring,
    ) -> Result<ChatProviderConfig> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            let sql = format!(
                "SELECT {PROVIDER_COLUMNS} FROM provider_configs WHERE id = $1 AND deleted = 0{}",
                for_update(self.dialect())
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(uuid_text(id))
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or_else(|| provider_config_not_found(id))?;
            let stored_name: String = row.try_get("display_name").db()?;
            let current = provider_from_row(&row)?;
            let update =
                chatprovider::validate_update_provider_request(&current, req, deployment_keys)
                    .map_err(invalid)?;
            sqlx::query(
                "UPDATE provider_configs SET display_name = $2, base_url = $3, enabled = $4, \
                 central_api_key_enabled = $5, allow_user_api_key = $6, \
                 allow_central_api_key_fallback = $7, updated_at = $8 WHERE id = $1",
            )
            .bind(uuid_text(id))
            .bind(update.display_name.as_deref().unwrap_or(&stored_name))
            .bind(update.base_url.as_deref().unwrap_or(&current.base_url))
            .bind(bool_int(update.enabled.unwrap_or(current.enabled)))
            .bind(bool_int(update.central_api_key_enabled))
            .bind(bool_int(update.allow_user_api_key))
            .bind(bool_int(update.allow_central_api_key_fallback))
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
            let sealed = match &update.api_key {
                ApiKeyChange::Keep => return Ok(()),
                ApiKeyChange::Clear => None,
                ApiKeyChange::Set(key) => Some(seal(keyring, key, id)?),
            };
            sqlx::query("UPDATE provider_configs SET api_key_sealed = $2 WHERE id = $1")
                .bind(uuid_text(id))
                .bind(sealed)
                .execute(&mut *tx)
                .await
                .db()?;
            Ok(())
        }
        .await;
        let done = finish(tx, result).await;
        self.changed(done, ConfigChange::Providers)?;
        self.get_provider_config(id).await
    }

    /// Deletes a provider config (`DELETE /chats/providers/{id}`), in one transaction: the
    /// row is soft-deleted (freeing the provider for a new config) and its sealed key
    /// erased, users' own keys for it are erased, the provider's model configs are
    /// soft-deleted, and when the default model was among them another one becomes the
    /// default (see [`Store::delete_model_config`]).
    ///
    /// [`ErrorKind::NotFound`] when the config does not exist or was already deleted.
    pub async fn delete_provider_config(&self, id: Uuid) -> Result<DeletedProviderConfig> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            lock_model_configs(&mut tx, self.dialect()).await?;
            let sql = format!(
                "SELECT provider FROM provider_configs WHERE id = $1 AND deleted = 0{}",
                for_update(self.dialect())
            );
            let provider: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(uuid_text(id))
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or_else(|| provider_config_not_found(id))?;
            sqlx::query(
                "UPDATE provider_configs SET deleted = 1, api_key_sealed = NULL, \
                 updated_at = $2 WHERE id = $1",
            )
            .bind(uuid_text(id))
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
            let keys = sqlx::query("DELETE FROM user_provider_keys WHERE provider_config_id = $1")
                .bind(uuid_text(id))
                .execute(&mut *tx)
                .await
                .db()?;
            let (deleted, new_default) = delete_models_of_provider(&mut tx, &provider, now).await?;
            Ok(DeletedProviderConfig {
                id,
                provider,
                deleted_model_config_ids: deleted,
                deleted_user_keys: keys.rows_affected(),
                new_default_model_config_id: new_default,
            })
        }
        .await;
        let done = finish(tx, result).await;
        self.changed(done, ConfigChange::Providers)
    }

    /// Every live provider config with its central key opened, for the key policy
    /// (`chatprovider::resolve_user_provider_keys`). For the engine's use only: the keys
    /// are in clear (`SecretString` never prints them).
    ///
    /// A key that cannot be opened (kinds of [`Keyring::decrypt`]) is an error, never
    /// treated as absent: that could silently move users onto another credential.
    pub async fn configured_providers(&self, keyring: &Keyring) -> Result<Vec<ConfiguredProvider>> {
        let sql = format!("SELECT {CONFIGURED_COLUMNS} FROM provider_configs WHERE deleted = 0");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await
            .db()?;
        let mut list = rows
            .iter()
            .map(|row| configured_from_row(row, keyring))
            .collect::<Result<Vec<_>>>()?;
        list.sort_by_key(|p| catalog_rank(&p.provider));
        Ok(list)
    }
}

/// Soft-deletes the live model configs of `provider` and re-selects the default when it
/// was one of them. Returns the deleted ids and the new default.
async fn delete_models_of_provider(
    conn: &mut AnyConnection,
    provider: &str,
    now: i64,
) -> Result<(Vec<Uuid>, Option<Uuid>)> {
    let had_default = sqlx::query(
        "SELECT id FROM model_configs WHERE provider = $1 AND deleted = 0 AND is_default = 1",
    )
    .bind(provider)
    .fetch_optional(&mut *conn)
    .await
    .db()?
    .is_some();
    let rows = sqlx::query(
        "UPDATE model_configs SET deleted = 1, is_default = 0, updated_at = $2 \
         WHERE provider = $1 AND deleted = 0 RETURNING id",
    )
    .bind(provider)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let ids = rows
        .iter()
        .map(|row| get_uuid(row, "id"))
        .collect::<Result<Vec<_>>>()?;
    let new_default = if had_default {
        super::models::reselect_default(conn, now).await?
    } else {
        None
    };
    Ok((ids, new_default))
}

/// The listing of `GET /chats/providers`: one entry per supported
/// provider, in catalog order: its stored config (`source: database`); else, for an
/// environment-preset provider (OpenAI, Anthropic) that `deployment_keys` has a key for,
/// an `env_preset` entry (nil id, enabled, central key in use); else a `supported` entry
/// (nil id, disabled, no key, every toggle off). Stored configs of providers this version
/// does not know follow at the end.
pub fn provider_config_listing(
    stored: &[ChatProviderConfig],
    deployment_keys: &ProviderApiKeys,
) -> Vec<ChatProviderConfig> {
    let mut out = Vec::with_capacity(SUPPORTED_PROVIDERS.len());
    for p in SUPPORTED_PROVIDERS {
        if let Some(row) = stored.iter().find(|r| r.provider == p.as_str()) {
            out.push(row.clone());
            continue;
        }
        let preset = p.is_env_preset() && deployment_keys.api_key(p.as_str()).is_some();
        out.push(ChatProviderConfig {
            id: Uuid::nil(),
            provider: p.as_str().to_owned(),
            display_name: p.display_name().to_owned(),
            enabled: preset,
            has_api_key: preset,
            central_api_key_enabled: preset,
            allow_user_api_key: false,
            allow_central_api_key_fallback: false,
            base_url: if preset {
                deployment_keys
                    .base_url(p.as_str())
                    .unwrap_or_default()
                    .to_owned()
            } else {
                String::new()
            },
            source: if preset {
                ChatProviderConfigSource::EnvPreset
            } else {
                ChatProviderConfigSource::Supported
            },
            created_at: None,
            updated_at: None,
        });
    }
    out.extend(
        stored
            .iter()
            .filter(|r| Provider::parse(&r.provider).is_none())
            .cloned(),
    );
    out
}
