//! Users' own compaction thresholds per model config
//! (`/chats/config/user-compaction-thresholds`): the percent of the context limit at which
//! the engine summarizes a chat of theirs running on that model. Without one, the model
//! config's `compression_threshold` applies.

use codersdk::{UserChatCompactionThreshold, Uuid};
use sqlx::Row;

use super::super::{get_uuid, now_micros, uuid_text, Store};
use super::{invalid, model_config_not_found};
use crate::cluster::ConfigChange;
use crate::error::{DbResultExt, Result};

impl Store {
    /// `user_id`'s thresholds on model configs that still exist, ordered by model config
    /// id.
    pub async fn user_compaction_thresholds(
        &self,
        user_id: Uuid,
    ) -> Result<Vec<UserChatCompactionThreshold>> {
        let rows = sqlx::query(
            "SELECT t.model_config_id, t.threshold_percent FROM user_compaction_thresholds t \
             JOIN model_configs m ON m.id = t.model_config_id AND m.deleted = 0 \
             WHERE t.user_id = $1 ORDER BY t.model_config_id",
        )
        .bind(uuid_text(user_id))
        .fetch_all(self.pool())
        .await
        .db()?;
        rows.iter()
            .map(|row| {
                Ok(UserChatCompactionThreshold {
                    model_config_id: get_uuid(row, "model_config_id")?,
                    threshold_percent: row.try_get::<i32, _>("threshold_percent").db()?,
                })
            })
            .collect()
    }

    /// `user_id`'s threshold on `model_config_id`, when they set one. Through the
    /// hot-config cache ([`crate::configcache`]), which holds all of a user's thresholds
    /// (one read for every model config of theirs).
    pub async fn user_compaction_threshold(
        &self,
        user_id: Uuid,
        model_config_id: Uuid,
    ) -> Result<Option<i32>> {
        Ok(self
            .cached_user_thresholds(user_id)
            .await?
            .get(&model_config_id)
            .copied())
    }

    /// Sets `user_id`'s threshold on `model_config_id` (0–100; 100 turns automatic
    /// compaction off). [`crate::ErrorKind::InvalidArgument`] out of range (the validation
    /// names `threshold_percent`); [`crate::ErrorKind::NotFound`] when the model config
    /// does not exist (or was deleted).
    pub async fn set_user_compaction_threshold(
        &self,
        user_id: Uuid,
        model_config_id: Uuid,
        threshold_percent: i32,
    ) -> Result<UserChatCompactionThreshold> {
        let threshold_percent =
            codersdk::validate_compression_threshold(threshold_percent, "threshold_percent")
                .map_err(invalid)?;
        // One statement: the insert selects from the live model config, so a deleted or
        // unknown one inserts nothing (and a concurrent delete cascades the row away).
        let done = sqlx::query(
            "INSERT INTO user_compaction_thresholds \
             (user_id, model_config_id, threshold_percent, updated_at) \
             SELECT $1, id, $3, $4 FROM model_configs WHERE id = $2 AND deleted = 0 \
             ON CONFLICT (user_id, model_config_id) DO UPDATE SET \
             threshold_percent = excluded.threshold_percent, updated_at = excluded.updated_at",
        )
        .bind(uuid_text(user_id))
        .bind(uuid_text(model_config_id))
        .bind(threshold_percent)
        .bind(now_micros())
        .execute(self.writer())
        .await
        .db();
        let done = self.changed(done, ConfigChange::UserCompactionThresholds { user_id })?;
        if done.rows_affected() == 0 {
            return Err(model_config_not_found(model_config_id));
        }
        Ok(UserChatCompactionThreshold {
            model_config_id,
            threshold_percent,
        })
    }

    /// Removes `user_id`'s threshold on `model_config_id`; the model config's own applies
    /// again. Removing one that is not set is not an error; naming a model config that
    /// does not exist (or was deleted) is [`crate::ErrorKind::NotFound`]. Returns whether
    /// one was set.
    pub async fn delete_user_compaction_threshold(
        &self,
        user_id: Uuid,
        model_config_id: Uuid,
    ) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM user_compaction_thresholds WHERE user_id = $1 AND model_config_id = $2",
        )
        .bind(uuid_text(user_id))
        .bind(uuid_text(model_config_id))
        .execute(self.writer())
        .await
        .db();
        let done = self.changed(done, ConfigChange::UserCompactionThresholds { user_id })?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        let live: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM model_configs WHERE id = $1 AND deleted = 0")
                .bind(uuid_text(model_config_id))
                .fetch_optional(self.pool())
                .await
                .db()?;
        match live {
            Some(_) => Ok(false),
            None => Err(model_config_not_found(model_config_id)),
        }
    }
}
