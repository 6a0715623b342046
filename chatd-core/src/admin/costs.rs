//! Cost reports: one user's spend in a window (`GET /chats/cost/{user}/summary`) and every
//! user's (`GET /chats/cost/users`), read from the messages' exact costs
//! ([`Store::cost_summary`](crate::store::Store::cost_summary),
//! [`Store::cost_by_user`](crate::store::Store::cost_by_user); docs/cost-reports.md).
//!
//! The window comes validated (`codersdk::parse_cost_window`, whose default end is the
//! caller's "now": a server reads it from [`Engine::clock`](crate::Engine::clock)).

use codersdk::{ChatCostSummary, ChatCostUsersResponse, CostUsersQuery, CostWindow};

use super::users::UserRef;
use super::{require_admin, Admin};
use crate::engine::Actor;
use crate::error::Result;

impl Admin {
    /// The cost summary of the user `user` names over `window`: totals, per model config,
    /// per root chat. Administrators read anyone's, others only their own
    /// ([`ErrorKind::Forbidden`](crate::ErrorKind::Forbidden), "Only administrators can
    /// view the chat costs of other users.", before any lookup, as Coder answers);
    /// [`USER_NOT_FOUND_MESSAGE`](crate::USER_NOT_FOUND_MESSAGE) (404) for a user who does
    /// not exist. `usage_limit` is the user's usage-limit status at `now` (the current
    /// period, whatever the window) when a limit applies to them; it is left out when none
    /// does, and when it cannot be read (logged): the report is still true without it.
    pub async fn cost_summary(
        &self,
        actor: &Actor,
        user: &UserRef,
        window: &CostWindow,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<ChatCostSummary> {
        self.require_self_or_admin(actor, user, "view the chat costs")
            .await?;
        let account = self.resolve(actor, user).await?;
        let summary = self
            .store()
            .cost_summary(account.id, window.start_micros(), window.end_micros())
            .await?;
        let usage_limit =
            match crate::engine::usage_limit_status_at(self.store(), account.id, now).await {
                // Left out while no limit applies, so a client shows a usage bar only when
                // there is a limit to show.
                Ok(status) => status.is_limited.then_some(status),
                Err(e) => {
                    tracing::warn!(
                        user_id = %account.id,
                        error = %e,
                        "the cost summary's usage-limit status could not be read"
                    );
                    None
                }
            };
        let totals = summary.totals;
        Ok(ChatCostSummary {
            start_date: window.start(),
            end_date: window.end(),
            total_cost_micros: totals.total_cost_micros,
            priced_message_count: totals.priced_message_count,
            unpriced_message_count: totals.unpriced_message_count,
            totals: totals.totals,
            by_model: summary.by_model,
            by_chat: summary.by_chat,
            usage_limit,
        })
    }

    /// One page of every user's spend over the query's window (administrators only,
    /// [`ErrorKind::Forbidden`](crate::ErrorKind::Forbidden)): users with usage in the
    /// window whose username or display name contains the filter, the biggest spender
    /// first, with how many matched.
    pub async fn cost_users(
        &self,
        actor: &Actor,
        query: &CostUsersQuery,
    ) -> Result<ChatCostUsersResponse> {
        require_admin(actor)?;
        let window = query.window;
        let page = self
            .store()
            .cost_by_user(
                window.start_micros(),
                window.end_micros(),
                query.username.as_deref(),
                query.limit,
                query.offset,
            )
            .await?;
        Ok(ChatCostUsersResponse {
            start_date: window.start(),
            end_date: window.end(),
            count: page.count,
            users: page.users,
        })
    }
}
