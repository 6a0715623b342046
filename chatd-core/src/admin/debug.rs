//! Debug-logging settings (`/chats/config/debug-logging`, `user-debug-logging`,
//! `debug-retention-days`; docs/debug-runs.md). The runs themselves are read through the
//! engine ([`Engine::list_debug_runs`](crate::Engine::list_debug_runs)), which checks who
//! may read the chat.

use codersdk::{
    ChatDebugLoggingAdminSettings, ChatDebugRetentionDaysResponse,
    UpdateChatDebugLoggingAllowUsersRequest, UpdateChatDebugRetentionDaysRequest,
    UpdateUserChatDebugLoggingRequest, UserChatDebugLoggingSettings,
};

use super::{require_admin, Admin};
use crate::cluster::ConfigChange;
use crate::engine::Actor;
use crate::error::{Error, ErrorKind, Result};

/// Message of the 409 a user's toggle gets while the deployment forces debug logging on.
pub const DEBUG_LOGGING_FORCED_MESSAGE: &str =
    "Debug logging is forced on by the deployment; it cannot be turned off.";

/// Message of the 403 a user's toggle gets while users may not turn debug logging on.
pub const DEBUG_LOGGING_NOT_ALLOWED_MESSAGE: &str =
    "Users may not change debug logging on this deployment.";

impl Admin {
    /// Forces debug logging on (or not) for every chat of this process: the deployment's
    /// flag (the server's `--chat-debug-logging-forced`), held in memory and shared with
    /// the engine over the same store; each replica sets it from its own flag.
    pub fn set_debug_logging_forced(&self, forced: bool) {
        self.store().set_debug_logging_forced(forced);
    }

    /// The deployment's debug-logging settings: whether users may turn it on for their own
    /// chats, and whether the deployment forces it on. Any user may read them.
    pub async fn debug_logging(&self, _actor: &Actor) -> Result<ChatDebugLoggingAdminSettings> {
        Ok(ChatDebugLoggingAdminSettings {
            allow_users: self.store().debug_logging_allow_users().await?,
            forced_by_deployment: self.store().debug_logging_forced(),
        })
    }

    /// Allows (or forbids) users to turn debug logging on (administrators).
    pub async fn set_debug_logging(
        &self,
        actor: &Actor,
        request: &UpdateChatDebugLoggingAllowUsersRequest,
    ) -> Result<()> {
        require_admin(actor)?;
        let result = self
            .store()
            .set_debug_logging_allow_users(request.allow_users)
            .await;
        self.announced(result, ConfigChange::Deployment)
    }

    /// Whether debug logging is on for `actor`'s chats, and whether they may change it.
    pub async fn user_debug_logging(&self, actor: &Actor) -> Result<UserChatDebugLoggingSettings> {
        let forced = self.store().debug_logging_forced();
        let allowed = self.store().debug_logging_allow_users().await?;
        let own = if allowed {
            self.store().user_debug_logging(actor.user_id).await?
        } else {
            false
        };
        Ok(UserChatDebugLoggingSettings {
            debug_logging_enabled: forced || own,
            user_toggle_allowed: allowed && !forced,
            forced_by_deployment: forced,
        })
    }

    /// Sets `actor`'s own toggle. [`ErrorKind::Conflict`] while the deployment forces
    /// debug logging on; [`ErrorKind::Forbidden`] while users may not turn it on.
    pub async fn set_user_debug_logging(
        &self,
        actor: &Actor,
        request: &UpdateUserChatDebugLoggingRequest,
    ) -> Result<()> {
        if self.store().debug_logging_forced() {
            return Err(Error::new(
                ErrorKind::Conflict,
                DEBUG_LOGGING_FORCED_MESSAGE,
            ));
        }
        if !self.store().debug_logging_allow_users().await? {
            return Err(Error::new(
                ErrorKind::Forbidden,
                DEBUG_LOGGING_NOT_ALLOWED_MESSAGE,
            ));
        }
        let result = self
            .store()
            .set_user_debug_logging(actor.user_id, request.debug_logging_enabled)
            .await;
        self.announced(
            result,
            ConfigChange::UserDebugLogging {
                user_id: actor.user_id,
            },
        )
    }

    /// How many days debug runs are kept (default
    /// [`DEFAULT_DEBUG_RETENTION_DAYS`](crate::store::DEFAULT_DEBUG_RETENTION_DAYS)). Any
    /// user may read it.
    pub async fn debug_retention_days(
        &self,
        _actor: &Actor,
    ) -> Result<ChatDebugRetentionDaysResponse> {
        Ok(ChatDebugRetentionDaysResponse {
            debug_retention_days: self.store().debug_retention_days().await?,
        })
    }

    /// Sets the retention window (administrators): 0 to
    /// [`MAX_DEBUG_RETENTION_DAYS`](crate::store::MAX_DEBUG_RETENTION_DAYS) days, else 400
    /// naming `debug_retention_days`.
    pub async fn set_debug_retention_days(
        &self,
        actor: &Actor,
        request: &UpdateChatDebugRetentionDaysRequest,
    ) -> Result<()> {
        require_admin(actor)?;
        let result = self
            .store()
            .set_debug_retention_days(request.debug_retention_days)
            .await;
        self.announced(result, ConfigChange::Deployment)
    }
}
