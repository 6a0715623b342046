//! Users' own API keys (bring your own key), sealed per user and
//! provider config.

use chatprovider::{ConfiguredProvider, Provider, ProviderApiKeys, UserProviderKey};
use codersdk::{CreateUserChatProviderKeyRequest, SecretString, UserChatProviderConfig, Uuid};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::super::{get_bool, get_uuid, now_micros, uuid_text, Store};
use super::providers::{catalog_rank, CONFIGURED_COLUMNS};
use super::{finish, for_share, invalid, provider_config_not_found, user_key_aad};
use crate::cluster::ConfigChange;
use crate::error::{DbResultExt, Result};
use crate::Keyring;

/// Whether a user without their own key is still served by the deployment: the central
/// key is enabled and used as a fallback, and there is a central credential (a stored
/// key, a deployment key, or ambient credentials).
fn central_fallback(row: &AnyRow, deployment_keys: &ProviderApiKeys) -> Result<bool> {
    let provider: String = row.try_get("provider").db()?;
    let has_stored: bool = get_bool(row, "has_api_key")?;
    let credential = has_stored
        || deployment_keys.api_key(&provider).is_some()
        || Provider::parse(&provider).is_some_and(Provider::allows_ambient_credentials);
    Ok(get_bool(row, "central_api_key_enabled")?
        && get_bool(row, "allow_central_api_key_fallback")?
        && credential)
}

fn user_view(row: &AnyRow, deployment_keys: &ProviderApiKeys) -> Result<UserChatProviderConfig> {
    let provider: String = row.try_get("provider").db()?;
    let stored_name: String = row.try_get("display_name").db()?;
    let display_name = if stored_name.is_empty() {
        Provider::parse(&provider)
            .map(|p| p.display_name().to_owned())
            .unwrap_or_else(|| provider.clone())
    } else {
        stored_name
    };
    Ok(UserChatProviderConfig {
        provider_id: get_uuid(row, "id")?,
        display_name,
        has_user_api_key: get_bool(row, "has_user_api_key")?,
        has_central_api_key_fallback: central_fallback(row, deployment_keys)?,
        provider,
    })
}

const USER_VIEW_SQL: &str = "SELECT p.id, p.provider, p.display_name, \
    p.central_api_key_enabled, p.allow_central_api_key_fallback, \
    CASE WHEN p.api_key_sealed IS NULL THEN 0 ELSE 1 END AS has_api_key, \
    CASE WHEN k.user_id IS NULL THEN 0 ELSE 1 END AS has_user_api_key \
    FROM provider_configs p LEFT JOIN user_provider_keys k \
    ON k.provider_config_id = p.id AND k.user_id = $1 \
    WHERE p.deleted = 0 AND p.enabled = 1 AND p.allow_user_api_key = 1";

impl Store {
    /// Stores (or replaces) `user_id`'s own key for provider config `provider_config_id`
    /// (`PUT /chats/user-provider-configs/{id}`), sealed with `keyring` under
    /// [`user_key_aad`].
    ///
    /// The provider is checked under a lock on its row with
    /// `chatprovider::validate_user_provider_key_request`, which also checks the key:
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) (HTTP 400, with
    /// its `Response`) when the provider is disabled, does not accept user keys, or the key
    /// is blank, too long or has control characters. [`ErrorKind::NotFound`](crate::ErrorKind::NotFound)
    /// when the provider config does not exist or was deleted, or the user does not exist.
    /// `deployment_keys` only feeds the returned view's `has_central_api_key_fallback`.
    pub async fn set_user_provider_key(
        &self,
        user_id: Uuid,
        provider_config_id: Uuid,
        api_key: &SecretString,
        keyring: &Keyring,
        deployment_keys: &ProviderApiKeys,
    ) -> Result<UserChatProviderConfig> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            let sql = format!(
                "SELECT {CONFIGURED_COLUMNS} FROM provider_configs WHERE id = $1 \
                 AND deleted = 0{}",
                for_share(self.dialect())
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(uuid_text(provider_config_id))
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or_else(|| provider_config_not_found(provider_config_id))?;
            // The policy fields only: the central key is not needed, so it is not opened.
            let provider = ConfiguredProvider {
                id: provider_config_id,
                provider: row.try_get("provider").db()?,
                api_key: SecretString::default(),
                base_url: row.try_get("base_url").db()?,
                enabled: get_bool(&row, "enabled")?,
                central_api_key_enabled: get_bool(&row, "central_api_key_enabled")?,
                allow_user_api_key: get_bool(&row, "allow_user_api_key")?,
                allow_central_api_key_fallback: get_bool(&row, "allow_central_api_key_fallback")?,
            };
            let request = CreateUserChatProviderKeyRequest {
                api_key: api_key.clone(),
            };
            let key = chatprovider::validate_user_provider_key_request(&provider, &request)
                .map_err(invalid)?;
            let sealed = keyring.encrypt(
                key.expose().as_bytes(),
                user_key_aad(user_id, provider_config_id).as_bytes(),
            )?;
            sqlx::query(
                "INSERT INTO user_provider_keys (user_id, provider_config_id, api_key_sealed, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (user_id, provider_config_id) DO UPDATE SET \
                 api_key_sealed = excluded.api_key_sealed, updated_at = excluded.updated_at",
            )
            .bind(uuid_text(user_id))
            .bind(uuid_text(provider_config_id))
            .bind(sealed)
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
            let sql = format!("{USER_VIEW_SQL} AND p.id = $2");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(uuid_text(user_id))
                .bind(uuid_text(provider_config_id))
                .fetch_one(&mut *tx)
                .await
                .db()?;
            user_view(&row, deployment_keys)
        }
        .await;
        let done = finish(tx, result).await;
        self.changed(done, ConfigChange::UserProviderKeys { user_id })
    }

    /// Erases `user_id`'s own key for provider config `provider_config_id`
    /// (`DELETE /chats/user-provider-configs/{id}`). Returns whether there was one.
    pub async fn delete_user_provider_key(
        &self,
        user_id: Uuid,
        provider_config_id: Uuid,
    ) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM user_provider_keys WHERE user_id = $1 AND provider_config_id = $2",
        )
        .bind(uuid_text(user_id))
        .bind(uuid_text(provider_config_id))
        .execute(self.writer())
        .await
        .db();
        let done = self.changed(done, ConfigChange::UserProviderKeys { user_id })?;
        Ok(done.rows_affected() > 0)
    }

    /// The providers `user_id` may bring a key for (`GET /chats/user-provider-configs`):
    /// live, enabled, accepting user keys; in catalog order. `has_central_api_key_fallback`
    /// says whether the user is served without a key of their own, which needs the
    /// central fallback enabled and a central credential — a stored key, one in
    /// `deployment_keys`, or Bedrock's ambient credentials. Keys are never returned.
    pub async fn list_user_provider_configs(
        &self,
        user_id: Uuid,
        deployment_keys: &ProviderApiKeys,
    ) -> Result<Vec<UserChatProviderConfig>> {
        let rows = sqlx::query(USER_VIEW_SQL)
            .bind(uuid_text(user_id))
            .fetch_all(self.pool())
            .await
            .db()?;
        let mut list = rows
            .iter()
            .map(|row| user_view(row, deployment_keys))
            .collect::<Result<Vec<_>>>()?;
        list.sort_by_key(|p| catalog_rank(&p.provider));
        Ok(list)
    }

    /// `user_id`'s own keys, opened, for the key policy
    /// (`chatprovider::resolve_user_provider_keys`). For the engine's use only. Keys for
    /// deleted provider configs do not exist (deleting a provider erases them); keys for
    /// providers that no longer accept user keys are returned and ignored by the policy.
    /// A key that cannot be opened is an error, never treated as absent.
    pub async fn user_provider_keys(
        &self,
        user_id: Uuid,
        keyring: &Keyring,
    ) -> Result<Vec<UserProviderKey>> {
        let rows = sqlx::query(
            "SELECT provider_config_id, api_key_sealed FROM user_provider_keys \
             WHERE user_id = $1 ORDER BY provider_config_id",
        )
        .bind(uuid_text(user_id))
        .fetch_all(self.pool())
        .await
        .db()?;
        rows.iter()
            .map(|row| open_user_key(row, user_id, keyring))
            .collect()
    }
}

pub(super) fn open_user_key(
    row: &AnyRow,
    user_id: Uuid,
    keyring: &Keyring,
) -> Result<UserProviderKey> {
    let provider_config_id = get_uuid(row, "provider_config_id")?;
    let sealed: String = row.try_get("api_key_sealed").db()?;
    Ok(UserProviderKey {
        provider_config_id,
        api_key: keyring.decrypt_secret(
            &sealed,
            user_key_aad(user_id, provider_config_id).as_bytes(),
        )?,
    })
}
