//! Usage limits (codersdk.md §13.3): the deployment's limit and period, the per-user and
//! per-group overrides, and the one statement the admission check reads
//! (docs/usage-limits.md).

use codersdk::{
    ChatUsageLimitConfig, ChatUsageLimitGroupOverride, ChatUsageLimitOverride,
    ChatUsageLimitPeriod, Timestamp, Uuid,
};
use sqlx::Row;

use super::groups::group_not_found;
use super::{finish_tx, get_time, get_uuid, now_micros, uuid_text, Store};
use crate::cluster::ConfigChange;
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// What the admission check reads for one user, in one statement
/// ([`Store::usage_limit_inputs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct UsageLimitInputs {
    /// The user's own override.
    pub user_limit_micros: Option<i64>,
    /// The smallest override of the user's groups.
    pub group_limit_micros: Option<i64>,
    /// The user's spend in the window asked for.
    pub spent_micros: i64,
}

/// The configuration when none was ever stored: limits off, monthly.
fn unset_config() -> ChatUsageLimitConfig {
    ChatUsageLimitConfig {
        spend_limit_micros: None,
        period: ChatUsageLimitPeriod::Month,
        updated_at: Timestamp::go_zero(),
    }
}

fn user_not_found(user_id: Uuid) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("No user has the id {user_id}."),
    )
}

impl Store {
    /// The deployment's usage-limit configuration (limits off and monthly when never set).
    pub async fn usage_limit_config(&self) -> Result<ChatUsageLimitConfig> {
        let row = sqlx::query(
            "SELECT spend_limit_micros, period, updated_at FROM chat_usage_limit_config \
             WHERE singleton = 1",
        )
        .fetch_optional(self.pool())
        .await
        .db()?;
        let Some(row) = row else {
            return Ok(unset_config());
        };
        let period: String = row.try_get("period").db()?;
        let period = match ChatUsageLimitPeriod::from_wire(&period) {
            ChatUsageLimitPeriod::Unknown(_) => {
                return Err(Error::new(
                    ErrorKind::CorruptRow,
                    "stored usage-limit period is unknown",
                ))
            }
            known => known,
        };
        Ok(ChatUsageLimitConfig {
            spend_limit_micros: row.try_get("spend_limit_micros").db()?,
            period,
            updated_at: get_time(&row, "updated_at")?,
        })
    }

    /// The configuration through the hot-config cache: what every admission check reads,
    /// so a deployment without limits pays no statement for them.
    pub(crate) async fn cached_usage_limit_config(&self) -> Result<ChatUsageLimitConfig> {
        self.config_cache()
            .usage_limits
            .get_or_load(&(), || self.usage_limit_config())
            .await
    }

    /// Stores the deployment's limit (`None`: limits off) and period; returns the stored
    /// configuration. The values must be validated
    /// (`codersdk::validate_usage_limit_config`).
    pub async fn set_usage_limit_config(
        &self,
        spend_limit_micros: Option<i64>,
        period: ChatUsageLimitPeriod,
    ) -> Result<ChatUsageLimitConfig> {
        let now = now_micros();
        let result = sqlx::query(
            "INSERT INTO chat_usage_limit_config (singleton, spend_limit_micros, period, \
             updated_at) VALUES (1, $1, $2, $3) ON CONFLICT (singleton) DO UPDATE SET \
             spend_limit_micros = excluded.spend_limit_micros, period = excluded.period, \
             updated_at = excluded.updated_at",
        )
        .bind(spend_limit_micros)
        .bind(period.as_str())
        .bind(now)
        .execute(self.writer())
        .await
        .db();
        self.changed(result, ConfigChange::UsageLimits)?;
        Ok(ChatUsageLimitConfig {
            spend_limit_micros,
            period,
            updated_at: super::timestamp_from_micros(now)?,
        })
    }

    /// The per-user overrides, by username.
    pub async fn list_user_usage_limits(&self) -> Result<Vec<ChatUsageLimitOverride>> {
        let rows = sqlx::query(
            "SELECT o.user_id, u.username, u.name, o.spend_limit_micros \
             FROM chat_usage_limit_user_overrides o JOIN users u ON u.id = o.user_id \
             ORDER BY u.username, u.id",
        )
        .fetch_all(self.pool())
        .await
        .db()?;
        rows.iter()
            .map(|row| {
                Ok(ChatUsageLimitOverride {
                    user_id: get_uuid(row, "user_id")?,
                    username: row.try_get("username").db()?,
                    name: row.try_get("name").db()?,
                    avatar_url: String::new(),
                    spend_limit_micros: row.try_get("spend_limit_micros").db()?,
                })
            })
            .collect()
    }

    /// The per-group overrides, by group name, with member counts.
    pub async fn list_group_usage_limits(&self) -> Result<Vec<ChatUsageLimitGroupOverride>> {
        let rows = sqlx::query(
            "SELECT o.group_id, g.name, g.display_name, g.avatar_url, o.spend_limit_micros, \
             (SELECT COUNT(*) FROM group_members gm WHERE gm.group_id = o.group_id) AS members \
             FROM chat_usage_limit_group_overrides o JOIN groups g ON g.id = o.group_id \
             ORDER BY g.name, g.id",
        )
        .fetch_all(self.pool())
        .await
        .db()?;
        rows.iter()
            .map(|row| {
                Ok(ChatUsageLimitGroupOverride {
                    group_id: get_uuid(row, "group_id")?,
                    group_name: row.try_get("name").db()?,
                    group_display_name: row.try_get("display_name").db()?,
                    group_avatar_url: row.try_get("avatar_url").db()?,
                    member_count: row.try_get("members").db()?,
                    spend_limit_micros: row.try_get("spend_limit_micros").db()?,
                })
            })
            .collect()
    }

    /// Sets user `user_id`'s override; [`ErrorKind::NotFound`] for an unknown user. The
    /// limit must be validated (`codersdk::validate_usage_limit_override`).
    pub async fn set_user_usage_limit(
        &self,
        user_id: Uuid,
        spend_limit_micros: i64,
    ) -> Result<ChatUsageLimitOverride> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            let row = sqlx::query("SELECT username, name FROM users WHERE id = $1")
                .bind(uuid_text(user_id))
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or_else(|| user_not_found(user_id))?;
            sqlx::query(
                "INSERT INTO chat_usage_limit_user_overrides (user_id, spend_limit_micros, \
                 created_at, updated_at) VALUES ($1, $2, $3, $3) ON CONFLICT (user_id) DO \
                 UPDATE SET spend_limit_micros = excluded.spend_limit_micros, \
                 updated_at = excluded.updated_at",
            )
            .bind(uuid_text(user_id))
            .bind(spend_limit_micros)
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
            Ok(ChatUsageLimitOverride {
                user_id,
                username: row.try_get("username").db()?,
                name: row.try_get("name").db()?,
                avatar_url: String::new(),
                spend_limit_micros,
            })
        }
        .await;
        finish_tx(tx, result).await
    }

    /// Removes user `user_id`'s override (none is fine); [`ErrorKind::NotFound`] for an
    /// unknown user.
    pub async fn delete_user_usage_limit(&self, user_id: Uuid) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let result = async {
            sqlx::query("SELECT id FROM users WHERE id = $1")
                .bind(uuid_text(user_id))
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or_else(|| user_not_found(user_id))?;
            sqlx::query("DELETE FROM chat_usage_limit_user_overrides WHERE user_id = $1")
                .bind(uuid_text(user_id))
                .execute(&mut *tx)
                .await
                .db()?;
            Ok(())
        }
        .await;
        finish_tx(tx, result).await
    }

    /// Sets group `group_id`'s override; [`ErrorKind::NotFound`] for an unknown group.
    pub async fn set_group_usage_limit(
        &self,
        group_id: Uuid,
        spend_limit_micros: i64,
    ) -> Result<ChatUsageLimitGroupOverride> {
        let now = now_micros();
        let result = sqlx::query(
            "INSERT INTO chat_usage_limit_group_overrides (group_id, spend_limit_micros, \
             created_at, updated_at) VALUES ($1, $2, $3, $3) ON CONFLICT (group_id) DO \
             UPDATE SET spend_limit_micros = excluded.spend_limit_micros, \
             updated_at = excluded.updated_at",
        )
        .bind(uuid_text(group_id))
        .bind(spend_limit_micros)
        .bind(now)
        .execute(self.writer())
        .await
        .db();
        match result {
            // The foreign key names the missing group.
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(group_not_found()),
            other => other?,
        };
        self.list_group_usage_limits()
            .await?
            .into_iter()
            .find(|o| o.group_id == group_id)
            .ok_or_else(group_not_found)
    }

    /// Removes group `group_id`'s override (none is fine); [`ErrorKind::NotFound`] for an
    /// unknown group.
    pub async fn delete_group_usage_limit(&self, group_id: Uuid) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let result = async {
            sqlx::query("SELECT id FROM groups WHERE id = $1")
                .bind(uuid_text(group_id))
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or_else(group_not_found)?;
            sqlx::query("DELETE FROM chat_usage_limit_group_overrides WHERE group_id = $1")
                .bind(uuid_text(group_id))
                .execute(&mut *tx)
                .await
                .db()?;
            Ok(())
        }
        .await;
        finish_tx(tx, result).await
    }

    /// Everything the admission check needs about `user_id` beside the cached
    /// configuration, in one statement: the user's override, the smallest override of the
    /// user's groups, and the user's spend in `[start_micros, end_micros)` (as
    /// [`Store::spend_micros`] sums it: chats and AI Gateway calls).
    pub async fn usage_limit_inputs(
        &self,
        user_id: Uuid,
        start_micros: i64,
        end_micros: i64,
    ) -> Result<UsageLimitInputs> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT \
             (SELECT o.spend_limit_micros FROM chat_usage_limit_user_overrides o \
              WHERE o.user_id = $1) AS user_limit, \
             (SELECT MIN(go.spend_limit_micros) FROM chat_usage_limit_group_overrides go \
              JOIN group_members gm ON gm.group_id = go.group_id WHERE gm.user_id = $1) \
              AS group_limit, \
             {} AS spent",
            super::costs::SPEND_EXPR
        )))
        .bind(uuid_text(user_id))
        .bind(start_micros)
        .bind(end_micros)
        .fetch_one(self.pool())
        .await
        .db()?;
        Ok(UsageLimitInputs {
            user_limit_micros: row.try_get("user_limit").db()?,
            group_limit_micros: row.try_get("group_limit").db()?,
            spent_micros: row.try_get("spent").db()?,
        })
    }
}
