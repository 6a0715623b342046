//! Deployment model overrides (`/chats/config/model-override/{context}`):
//! one model config per context, stored in `site_config` under
//! [`MODEL_OVERRIDE_KEY_PREFIX`]`<context>`.
//!
//! A write names a live, enabled model config (checked under the model-config write lock,
//! so it cannot be deleted or disabled between the check and the write). Deleting or
//! disabling that config later leaves the override in place: reads still report it, and
//! [`Store::usable_model_override`] ignores it, so every use falls back to what it would do
//! without an override. Nothing ever fails because an override went stale.

use codersdk::{ChatModelConfig, ChatModelOverrideContext, ChatModelOverrideResponse, Response};
use sqlx::AnyConnection;

use super::super::{now_micros, uuid_text, Store};
use super::{finish, invalid, lock_model_configs};
use crate::cluster::ConfigChange;
use crate::error::{DbResultExt, Error, Result};

/// Prefix of the `site_config` key holding a context's override (`model_override:general`,
/// …). The value is the model config id; no row means no override.
pub const MODEL_OVERRIDE_KEY_PREFIX: &str = "model_override:";

/// Message of the 400 for a context this server does not know.
pub const INVALID_MODEL_OVERRIDE_CONTEXT_MESSAGE: &str = "Invalid model override context.";

/// Message of the 400 for an override naming a model config that is not a UUID, does not
/// exist, was deleted or is disabled.
pub const INVALID_MODEL_OVERRIDE_MESSAGE: &str = "Invalid model override.";

/// The `site_config` key of `context`; [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) for a context this
/// version does not know (a key is only ever built from a known context).
fn override_key(context: &ChatModelOverrideContext) -> Result<String> {
    if context.is_unknown() {
        let known: Vec<&str> = ChatModelOverrideContext::ALL
            .iter()
            .map(ChatModelOverrideContext::as_str)
            .collect();
        // The unknown value is cut: it comes from the request path.
        let shown: String = context.as_str().chars().take(64).collect();
        return Err(invalid(
            Response::new(INVALID_MODEL_OVERRIDE_CONTEXT_MESSAGE).with_validation(
                "context",
                format!("{shown:?} is not one of {}.", known.join(", ")),
            ),
        ));
    }
    Ok(format!("{MODEL_OVERRIDE_KEY_PREFIX}{}", context.as_str()))
}

fn invalid_override(detail: String) -> Error {
    invalid(
        Response::new(INVALID_MODEL_OVERRIDE_MESSAGE).with_validation("model_config_id", detail),
    )
}

/// The wire view of a stored value: empty when unset, malformed when not a UUID.
fn override_view(
    context: &ChatModelOverrideContext,
    stored: Option<String>,
) -> ChatModelOverrideResponse {
    let model_config_id = stored.unwrap_or_default();
    let is_malformed =
        !model_config_id.is_empty() && codersdk::Uuid::parse_str(&model_config_id).is_err();
    ChatModelOverrideResponse {
        context: context.clone(),
        model_config_id,
        is_malformed,
    }
}

async fn read_override(conn: &mut AnyConnection, key: &str) -> Result<Option<String>> {
    sqlx::query_scalar("SELECT value FROM site_config WHERE key = $1")
        .bind(key)
        .fetch_optional(conn)
        .await
        .db()
}

impl Store {
    /// The deployment override of `context` as stored (`GET
    /// /chats/config/model-override/{context}`): `model_config_id` empty when unset,
    /// `is_malformed` when the stored value is not a UUID. A model config that was deleted
    /// or disabled since is still reported; whether it is used is
    /// [`Store::usable_model_override`]'s question. [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
    /// ([`INVALID_MODEL_OVERRIDE_CONTEXT_MESSAGE`]) for an unknown context.
    pub async fn model_override(
        &self,
        context: &ChatModelOverrideContext,
    ) -> Result<ChatModelOverrideResponse> {
        let key = override_key(context)?;
        let mut conn = self.pool().acquire().await.db()?;
        let stored = read_override(&mut conn, &key).await?;
        Ok(override_view(context, stored))
    }

    /// Sets the deployment override of `context` (`PUT
    /// /chats/config/model-override/{context}`): `model_config_id` must name a live,
    /// enabled model config; `""` clears the override. Returns the stored override.
    ///
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) for an unknown context
    /// ([`INVALID_MODEL_OVERRIDE_CONTEXT_MESSAGE`]) and for an id that is not a UUID or
    /// names no usable model config ([`INVALID_MODEL_OVERRIDE_MESSAGE`], the field
    /// `model_config_id`); nothing is written then.
    pub async fn set_model_override(
        &self,
        context: &ChatModelOverrideContext,
        model_config_id: &str,
    ) -> Result<ChatModelOverrideResponse> {
        let key = override_key(context)?;
        if model_config_id.is_empty() {
            let done = sqlx::query("DELETE FROM site_config WHERE key = $1")
                .bind(&key)
                .execute(self.writer())
                .await
                .db();
            self.changed(done, ConfigChange::Deployment)?;
            return Ok(override_view(context, None));
        }
        let id = codersdk::Uuid::parse_str(model_config_id).map_err(|_| {
            let shown: String = model_config_id.chars().take(64).collect();
            invalid_override(format!(
                "{shown:?} is not a UUID; send \"\" to clear the override."
            ))
        })?;
        // Stored in the canonical form, whatever form of UUID was sent.
        let value = uuid_text(id);
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            // Serialized with model-config writers: the config cannot be deleted or
            // disabled between this check and the write.
            lock_model_configs(&mut tx, self.dialect()).await?;
            let usable: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM model_configs WHERE id = $1 AND deleted = 0 AND enabled = 1",
            )
            .bind(&value)
            .fetch_optional(&mut *tx)
            .await
            .db()?;
            if usable.is_none() {
                return Err(invalid_override(format!(
                    "Model config {id} does not exist or is disabled."
                )));
            }
            sqlx::query(
                "INSERT INTO site_config (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
            )
            .bind(&key)
            .bind(&value)
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
            Ok(())
        }
        .await;
        let done = finish(tx, result).await;
        self.changed(done, ConfigChange::Deployment)?;
        Ok(override_view(context, Some(value)))
    }

    /// The model config the override of `context` names, when it can be used: set, a
    /// UUID, and a live, enabled config. `None` otherwise (no override, a malformed value,
    /// a config deleted or disabled since it was chosen), so that callers fall back as if
    /// no override were set. Whether the config's provider is usable is the turn
    /// credentials' concern, as for every other model choice. [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
    /// for an unknown context.
    ///
    /// The override and the model config come from the hot-config cache
    /// ([`crate::configcache`]).
    pub async fn usable_model_override(
        &self,
        context: &ChatModelOverrideContext,
    ) -> Result<Option<ChatModelConfig>> {
        let key = override_key(context)?;
        let Some(stored) = self.cached_override_value(&key).await? else {
            return Ok(None);
        };
        let Ok(id) = codersdk::Uuid::parse_str(&stored) else {
            tracing::warn!(
                context = context.as_str(),
                "the stored model override is not a UUID; ignoring it"
            );
            return Ok(None);
        };
        Ok(self
            .cached_model_config(id)
            .await?
            .filter(|config| config.enabled))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn keys_name_known_contexts_only() {
        assert_eq!(
            override_key(&ChatModelOverrideContext::TitleGeneration).unwrap(),
            "model_override:title_generation"
        );
        assert_eq!(
            override_key(&ChatModelOverrideContext::Compaction).unwrap(),
            "model_override:compaction"
        );
        let err = override_key(&ChatModelOverrideContext::from_wire("advisor")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn views_report_unset_and_malformed_values() {
        let general = ChatModelOverrideContext::General;
        let unset = override_view(&general, None);
        assert_eq!(unset.model_config_id, "");
        assert!(!unset.is_malformed);
        let bad = override_view(&general, Some("not-a-uuid".into()));
        assert_eq!(bad.model_config_id, "not-a-uuid");
        assert!(bad.is_malformed);
        let id = codersdk::Uuid::new_v4().to_string();
        let good = override_view(&general, Some(id.clone()));
        assert_eq!(good.model_config_id, id);
        assert!(!good.is_malformed);
    }
}
