//! The deployment's retention settings (`/chats/config/retention-days`,
//! `/chats/config/auto-archive-days`; docs/retention.md), stored in `site_config`.

use super::super::{now_micros, Store};
use super::{finish, invalid};
use crate::cluster::ConfigChange;
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// The `site_config` key of the retention window in days.
const RETENTION_DAYS_KEY: &str = "retention_days";
/// The `site_config` key of the auto-archive window in days.
const AUTO_ARCHIVE_DAYS_KEY: &str = "auto_archive_days";

impl Store {
    /// How many days archived chats are kept before the retention sweep purges them; `0`
    /// (also before an administrator sets it) keeps them forever.
    pub async fn retention_days(&self) -> Result<i32> {
        self.days_setting(RETENTION_DAYS_KEY).await
    }

    /// Sets [`Store::retention_days`] after `codersdk::validate_retention_days` (0 to
    /// [`codersdk::MAX_CHAT_RETENTION_DAYS`]); [`ErrorKind::InvalidArgument`] with the
    /// validator's `Response` outside it.
    pub async fn set_retention_days(&self, days: i32) -> Result<i32> {
        let days = codersdk::validate_retention_days(days).map_err(invalid)?;
        self.set_days_setting(RETENTION_DAYS_KEY, days).await
    }

    /// After how many whole idle days (UTC dates) a root chat's family is archived by the
    /// retention sweep; `0` (also before an administrator sets it) never archives.
    pub async fn auto_archive_days(&self) -> Result<i32> {
        self.days_setting(AUTO_ARCHIVE_DAYS_KEY).await
    }

    /// Sets [`Store::auto_archive_days`] after `codersdk::validate_auto_archive_days` (0 to
    /// [`codersdk::MAX_CHAT_RETENTION_DAYS`]); [`ErrorKind::InvalidArgument`] with the
    /// validator's `Response` outside it.
    pub async fn set_auto_archive_days(&self, days: i32) -> Result<i32> {
        let days = codersdk::validate_auto_archive_days(days).map_err(invalid)?;
        self.set_days_setting(AUTO_ARCHIVE_DAYS_KEY, days).await
    }

    async fn days_setting(&self, key: &str) -> Result<i32> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT value FROM site_config WHERE key = $1")
                .bind(key)
                .fetch_optional(self.pool())
                .await
                .db()?;
        match text {
            None => Ok(0),
            Some(text) => text
                .parse::<i32>()
                .ok()
                .filter(|days| (0..=codersdk::MAX_CHAT_RETENTION_DAYS).contains(days))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::CorruptRow,
                        format!("stored {key} is not a number of days"),
                    )
                }),
        }
    }

    async fn set_days_setting(&self, key: &str, days: i32) -> Result<i32> {
        let mut tx = self.begin_write().await?;
        let result = super::prompts::put_site_config(&mut tx, key, &days.to_string(), now_micros())
            .await
            .map(|()| days);
        let done = finish(tx, result).await;
        self.changed(done, ConfigChange::Deployment)
    }
}
