//! Usage-limit admission (engine.md §6.5; docs/usage-limits.md): before an operation that
//! makes the model work — creating a chat, sending (also when the message is queued),
//! editing, promoting a queued message, generating or proposing a title — the owner's
//! spend in the current period is compared with the limit that applies to them.
//!
//! The deployment configuration comes from the hot-config cache, so a deployment without
//! limits pays nothing; with limits on, one statement reads the overrides and the spend.
//! The check fails open: when it cannot be made (the database failed), the request goes
//! through and a warning is logged — a broken accounting read must not stop every chat.
//!
//! The same check runs before every model step of a turn ([`turn_stopped_by_limit`]): a
//! turn admitted under the limit (or a queued message promoted after the spend crossed
//! it, or a sub-agent's turn) stops at the next step boundary once its owner is at the
//! limit, never mid-step. So the spend can pass the limit by at most the steps already
//! streaming when it was crossed (one per running turn of the owner) and the title,
//! summary and compaction calls that follow them (docs/usage-limits.md "Overshoot").

use codersdk::{
    ChatError, ChatErrorKind, ChatUsageLimitExceededResponse, ChatUsageLimitStatus, Timestamp,
    Uuid, USAGE_LIMIT_EXCEEDED_MESSAGE,
};

use chrono::{DateTime, Utc};

use super::{Actor, Engine, Inner};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::usage_limits::{effective_limit, period_window};

/// `user_id`'s usage-limit status at `now`: `is_limited` with the period, the limit, the
/// spend and the window when a limit applies, else the not-limited status. What the
/// admission check, the status route and the cost summary all read.
pub(crate) async fn usage_limit_status_at(
    store: &Store,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<ChatUsageLimitStatus> {
    let config = store.cached_usage_limit_config().await?;
    if config.spend_limit_micros.is_none() {
        return Ok(ChatUsageLimitStatus::default());
    }
    let (start, end) = period_window(&config.period, now);
    let inputs = store
        .usage_limit_inputs(user_id, start.timestamp_micros(), end.timestamp_micros())
        .await?;
    let Some(limit) = effective_limit(
        config.spend_limit_micros,
        inputs.user_limit_micros,
        inputs.group_limit_micros,
    ) else {
        return Ok(ChatUsageLimitStatus::default());
    };
    Ok(ChatUsageLimitStatus {
        is_limited: true,
        period: Some(config.period),
        spend_limit_micros: Some(limit),
        current_spend: inputs.spent_micros,
        period_start: Timestamp(start),
        period_end: Timestamp(end),
    })
}

impl Inner {
    /// `user_id`'s usage-limit status now ([`usage_limit_status_at`] at the engine's clock).
    pub(crate) async fn usage_limit_status(&self, user_id: Uuid) -> Result<ChatUsageLimitStatus> {
        usage_limit_status_at(&self.store, user_id, self.clock.now()).await
    }

    /// [`ErrorKind::UsageLimit`](crate::ErrorKind::UsageLimit) when `owner_id` has spent
    /// their limit for the period (spend ≥ limit), with the figures of the 409 body.
    /// Fails open: a check that cannot be made is logged and lets the request through.
    pub(crate) async fn admit(&self, owner_id: Uuid) -> Result<()> {
        let status = match self.usage_limit_status(owner_id).await {
            Ok(status) => status,
            Err(e) => {
                tracing::warn!(
                    user_id = %owner_id,
                    error = %e,
                    "the usage-limit check failed; letting the request through"
                );
                return Ok(());
            }
        };
        match status.spend_limit_micros {
            Some(limit) if status.is_limited && status.current_spend >= limit => {
                Err(Error::usage_limit(ChatUsageLimitExceededResponse {
                    message: USAGE_LIMIT_EXCEEDED_MESSAGE.to_owned(),
                    detail: String::new(),
                    validations: Vec::new(),
                    spent_micros: status.current_spend,
                    limit_micros: limit,
                    resets_at: status.period_end,
                }))
            }
            _ => Ok(()),
        }
    }
}

/// The error a turn ends with when its owner reached the usage limit before one of its
/// steps: kind `usage_limit`, not retryable (a retry would meet the same limit), with the
/// figures in the message. The chat ends in `error`; a message sent once the limit reset
/// or was raised runs again.
pub(crate) fn turn_stopped_by_limit(refusal: &Error) -> ChatError {
    let message = match refusal.usage_limit_exceeded() {
        Some(f) => format!(
            "{USAGE_LIMIT_EXCEEDED_MESSAGE} {} of {} micro-dollars spent in this period; it \
             resets at {}.",
            f.spent_micros,
            f.limit_micros,
            f.resets_at
                .as_datetime()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => USAGE_LIMIT_EXCEEDED_MESSAGE.to_owned(),
    };
    let mut error = ChatError::generic(message);
    error.kind = Some(ChatErrorKind::UsageLimit);
    error.retryable = false;
    error
}

impl Engine {
    /// The actor's own usage-limit status (`GET /chats/usage-limits/status`): whether a
    /// limit applies, and if so which, over which window, and how much of it is spent.
    pub async fn usage_limit_status(&self, actor: &Actor) -> Result<ChatUsageLimitStatus> {
        self.inner.usage_limit_status(actor.user_id).await
    }

    /// The usage-limit status of `user_id`, for reports an administrator or the user reads
    /// (the caller authorizes).
    pub async fn usage_limit_status_of(&self, user_id: Uuid) -> Result<ChatUsageLimitStatus> {
        self.inner.usage_limit_status(user_id).await
    }
}

impl Engine {
    /// The usage-limit admission check for work that does not go through a chat (the AI
    /// Gateway's proxied calls): `Err` with kind
    /// [`ErrorKind::UsageLimit`](crate::ErrorKind::UsageLimit) and the figures
    /// ([`Error::usage_limit_exceeded`]) when `user_id` has spent their limit for the
    /// period. Fails open like the chats' check: a check that cannot be made is logged and
    /// lets the call through.
    pub async fn check_usage_limit(&self, user_id: Uuid) -> Result<()> {
        self.inner.admit(user_id).await
    }
}
