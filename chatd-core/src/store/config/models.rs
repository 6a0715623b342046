//! Model configs: exactly one default, soft delete, call config JSON.

use chatprovider::{Provider, ProviderApiKeys};
use codersdk::{
    ChatModelCallConfig, ChatModelConfig, Response, UpdateChatModelConfigRequest, Uuid,
    ValidatedModelConfig,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::super::chats::json_text;
use super::super::{get_bool, get_time, get_uuid, now_micros, uuid_text, Store};
use super::{bool_int, finish, invalid, lock_model_configs, model_config_not_found};
use crate::cluster::ConfigChange;
use crate::error::{DbResultExt, Error, ErrorKind, Result};

pub(super) const MODEL_COLUMNS: &str = "id, provider, model, display_name, enabled, \
    is_default, context_limit, compression_threshold, model_config, created_at, updated_at";

/// Which model configs [`Store::list_model_configs`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelConfigFilter {
    /// Every live config (administrators).
    All,
    /// Enabled configs whose provider is not disabled: what users may pick (non-admins see
    /// enabled ones only).
    Enabled,
}

/// The committed facts of [`Store::delete_model_config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedModelConfig {
    /// The deleted config.
    pub id: Uuid,
    /// The config that became the default because the deleted one was the default;
    /// `None` when the default did not change or no enabled config is left.
    pub new_default_model_config_id: Option<Uuid>,
}

pub(super) fn model_from_row(row: &AnyRow) -> Result<ChatModelConfig> {
    let call: Option<String> = row.try_get("model_config").db()?;
    let model_config = call
        .as_deref()
        .map(serde_json::from_str::<ChatModelCallConfig>)
        .transpose()
        .map_err(|_| {
            Error::new(
                ErrorKind::CorruptRow,
                "stored model_config is not a model call config",
            )
        })?;
    Ok(ChatModelConfig {
        id: get_uuid(row, "id")?,
        provider: row.try_get("provider").db()?,
        model: row.try_get("model").db()?,
        display_name: row.try_get("display_name").db()?,
        enabled: get_bool(row, "enabled")?,
        is_default: get_bool(row, "is_default")?,
        context_limit: row.try_get("context_limit").db()?,
        compression_threshold: row.try_get("compression_threshold").db()?,
        model_config,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

fn call_config_text(cfg: Option<&ChatModelCallConfig>) -> Result<Option<String>> {
    cfg.map(|c| json_text(serde_json::to_string(c), "model_config"))
        .transpose()
}

fn model_problem(field: &str, detail: impl Into<String>) -> Error {
    invalid(Response::new("Invalid model configuration.").with_validation(field, detail))
}

/// A model config needs its provider configured: a live provider config, or a provider
/// the deployment supplies keys for (an environment preset, Bedrock on ambient
/// credentials).
async fn check_provider_configured(
    conn: &mut AnyConnection,
    provider: &str,
    deployment_keys: &ProviderApiKeys,
) -> Result<()> {
    if Provider::parse(provider).is_none() {
        return Err(model_problem(
            "provider",
            format!("Unknown provider {provider:?}."),
        ));
    }
    if deployment_keys.has_provider(provider) {
        return Ok(());
    }
    let row = sqlx::query("SELECT id FROM provider_configs WHERE provider = $1 AND deleted = 0")
        .bind(provider)
        .fetch_optional(conn)
        .await
        .db()?;
    if row.is_none() {
        return Err(model_problem(
            "provider",
            format!(
                "Provider {provider} is not configured; configure it before adding its models."
            ),
        ));
    }
    Ok(())
}

async fn current_default(conn: &mut AnyConnection) -> Result<Option<Uuid>> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT id FROM model_configs WHERE is_default = 1 AND deleted = 0")
            .fetch_optional(conn)
            .await
            .db()?;
    id.as_deref().map(super::super::parse_uuid).transpose()
}

async fn clear_default(conn: &mut AnyConnection, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE model_configs SET is_default = 0, updated_at = $1 \
         WHERE is_default = 1 AND deleted = 0",
    )
    .bind(now)
    .execute(conn)
    .await
    .db()?;
    Ok(())
}

/// Makes another config the default when none is: the most recently updated enabled live
/// config, preferring those whose provider is not disabled. Returns it; `None` when there
/// is already a default or no enabled config is left.
pub(super) async fn reselect_default(conn: &mut AnyConnection, now: i64) -> Result<Option<Uuid>> {
    if current_default(&mut *conn).await?.is_some() {
        return Ok(None);
    }
    let id: Option<String> = sqlx::query_scalar(
        "SELECT m.id FROM model_configs m WHERE m.deleted = 0 AND m.enabled = 1 \
         ORDER BY CASE WHEN EXISTS (SELECT 1 FROM provider_configs p \
             WHERE p.provider = m.provider AND p.deleted = 0 AND p.enabled = 0) \
         THEN 1 ELSE 0 END, m.updated_at DESC, m.created_at DESC, m.id DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    let Some(id) = id else {
        return Ok(None);
    };
    sqlx::query("UPDATE model_configs SET is_default = 1, updated_at = $2 WHERE id = $1")
        .bind(&id)
        .bind(now)
        .execute(conn)
        .await
        .db()?;
    super::super::parse_uuid(&id).map(Some)
}

impl Store {
    /// Stores a validated model config (`codersdk::validate_create_model_config`).
    ///
    /// Its provider must be configured: a live provider config, or a provider
    /// `deployment_keys` has an entry for (an environment preset). It becomes the default
    /// when asked to, or when there is no default yet (the first enabled model), and then
    /// the old default is cleared in the same transaction.
    ///
    /// [`ErrorKind::InvalidArgument`] (with a `Response` naming the field) when the
    /// provider is not configured, or when a disabled config is to be the default.
    pub async fn create_model_config(
        &self,
        new: &ValidatedModelConfig,
        deployment_keys: &ProviderApiKeys,
    ) -> Result<ChatModelConfig> {
        if new.is_default && !new.enabled {
            return Err(model_problem(
                "is_default",
                "A disabled model cannot be the default.",
            ));
        }
        let call = call_config_text(new.model_config.as_ref())?;
        let id = Uuid::new_v4();
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            lock_model_configs(&mut tx, self.dialect()).await?;
            check_provider_configured(&mut tx, &new.provider, deployment_keys).await?;
            let make_default =
                new.is_default || (new.enabled && current_default(&mut tx).await?.is_none());
            if make_default {
                clear_default(&mut tx, now).await?;
            }
            sqlx::query(
                "INSERT INTO model_configs (id, provider, model, display_name, enabled, \
                 is_default, context_limit, compression_threshold, model_config, created_at, \
                 updated_at, deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 0)",
            )
            .bind(uuid_text(id))
            .bind(&new.provider)
            .bind(&new.model)
            .bind(&new.display_name)
            .bind(bool_int(new.enabled))
            .bind(bool_int(make_default))
            .bind(new.context_limit)
            .bind(new.compression_threshold)
            .bind(call)
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
            Ok(())
        }
        .await;
        let done = finish(tx, result).await;
        self.changed(done, ConfigChange::ModelConfig { id })?;
        self.get_model_config(id).await
    }

    /// The live model configs, by provider and model, newest first among equals.
    pub async fn list_model_configs(
        &self,
        filter: ModelConfigFilter,
    ) -> Result<Vec<ChatModelConfig>> {
        let condition = match filter {
            ModelConfigFilter::All => "",
            ModelConfigFilter::Enabled => {
                " AND m.enabled = 1 AND NOT EXISTS (SELECT 1 FROM provider_configs p \
                 WHERE p.provider = m.provider AND p.deleted = 0 AND p.enabled = 0)"
            }
        };
        let columns = MODEL_COLUMNS
            .split(", ")
            .map(|c| format!("m.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM model_configs m WHERE m.deleted = 0{condition} \
             ORDER BY m.provider, m.model, m.updated_at DESC, m.id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await
            .db()?;
        rows.iter().map(model_from_row).collect()
    }

    /// A live model config (enabled or not). [`ErrorKind::NotFound`] when it does not
    /// exist or was deleted.
    pub async fn get_model_config(&self, id: Uuid) -> Result<ChatModelConfig> {
        let sql =
            format!("SELECT {MODEL_COLUMNS} FROM model_configs WHERE id = $1 AND deleted = 0");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(id))
            .fetch_optional(self.pool())
            .await
            .db()?;
        match row {
            Some(row) => model_from_row(&row),
            None => Err(model_config_not_found(id)),
        }
    }

    /// The default model config, if there is one.
    pub async fn default_model_config(&self) -> Result<Option<ChatModelConfig>> {
        let sql = format!(
            "SELECT {MODEL_COLUMNS} FROM model_configs WHERE is_default = 1 AND deleted = 0"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_optional(self.pool())
            .await
            .db()?;
        row.as_ref().map(model_from_row).transpose()
    }

    /// Applies `PATCH /chats/model-configs/{id}` (normalized again with
    /// `codersdk::validate_update_model_config`: absent or blank fields are kept). A new
    /// `model_config` replaces the stored one whole.
    ///
    /// `is_default: true` makes this the default and clears the old one in the same
    /// transaction. The default can only be replaced, never unset or disabled, so that
    /// chats without a model always have one: [`ErrorKind::InvalidArgument`] for
    /// `is_default: false` on the default, and for a disabled default. A new provider must
    /// be configured (as for [`Store::create_model_config`]). [`ErrorKind::NotFound`] when
    /// the config does not exist or was deleted.
    pub async fn update_model_config(
        &self,
        id: Uuid,
        req: &UpdateChatModelConfigRequest,
        deployment_keys: &ProviderApiKeys,
    ) -> Result<ChatModelConfig> {
        let update = codersdk::validate_update_model_config(req).map_err(invalid)?;
        let call = call_config_text(update.model_config.as_ref())?;
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            lock_model_configs(&mut tx, self.dialect()).await?;
            let sql =
                format!("SELECT {MODEL_COLUMNS} FROM model_configs WHERE id = $1 AND deleted = 0");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(uuid_text(id))
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or_else(|| model_config_not_found(id))?;
            let current = model_from_row(&row)?;
            let stored_call: Option<String> = row.try_get("model_config").db()?;
            if current.is_default && update.is_default == Some(false) {
                return Err(model_problem(
                    "is_default",
                    "This is the default model; make another model the default instead.",
                ));
            }
            let enabled = update.enabled.unwrap_or(current.enabled);
            let is_default = update.is_default.unwrap_or(current.is_default);
            if is_default && !enabled {
                let field = if update.enabled == Some(false) {
                    "enabled"
                } else {
                    "is_default"
                };
                return Err(model_problem(
                    field,
                    "The default model cannot be disabled; make another model the default \
                     first.",
                ));
            }
            let provider = update.provider.as_deref().unwrap_or(&current.provider);
            if provider != current.provider {
                check_provider_configured(&mut tx, provider, deployment_keys).await?;
            }
            if is_default && !current.is_default {
                clear_default(&mut tx, now).await?;
            }
            sqlx::query(
                "UPDATE model_configs SET provider = $2, model = $3, display_name = $4, \
                 enabled = $5, is_default = $6, context_limit = $7, \
                 compression_threshold = $8, model_config = $9, updated_at = $10 \
                 WHERE id = $1",
            )
            .bind(uuid_text(id))
            .bind(provider)
            .bind(update.model.as_deref().unwrap_or(&current.model))
            .bind(
                update
                    .display_name
                    .as_deref()
                    .unwrap_or(&current.display_name),
            )
            .bind(bool_int(enabled))
            .bind(bool_int(is_default))
            .bind(update.context_limit.unwrap_or(current.context_limit))
            .bind(
                update
                    .compression_threshold
                    .unwrap_or(current.compression_threshold),
            )
            .bind(call.or(stored_call))
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
            Ok(())
        }
        .await;
        let done = finish(tx, result).await;
        self.changed(done, ConfigChange::ModelConfig { id })?;
        self.get_model_config(id).await
    }

    /// Soft-deletes a model config. When it was the default, the most recently updated
    /// enabled config (preferring providers that are not disabled) becomes the default in
    /// the same transaction. Chats that used it fall back at their next turn (see
    /// [`Store::resolve_model_config`]). [`ErrorKind::NotFound`] when it does not exist or
    /// was already deleted.
    pub async fn delete_model_config(&self, id: Uuid) -> Result<DeletedModelConfig> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            lock_model_configs(&mut tx, self.dialect()).await?;
            let was_default: Option<i64> = sqlx::query_scalar(
                "SELECT is_default FROM model_configs WHERE id = $1 AND deleted = 0",
            )
            .bind(uuid_text(id))
            .fetch_optional(&mut *tx)
            .await
            .db()?;
            let Some(was_default) = was_default else {
                return Err(model_config_not_found(id));
            };
            sqlx::query(
                "UPDATE model_configs SET deleted = 1, is_default = 0, updated_at = $2 \
                 WHERE id = $1",
            )
            .bind(uuid_text(id))
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
            let new_default = if was_default != 0 {
                reselect_default(&mut tx, now).await?
            } else {
                None
            };
            Ok(DeletedModelConfig {
                id,
                new_default_model_config_id: new_default,
            })
        }
        .await;
        let done = finish(tx, result).await;
        self.changed(done, ConfigChange::ModelConfig { id })
    }
}
