//! The AI Gateway's records for the API: `GET /api/v2/aibridge/interceptions` and
//! `GET /api/v2/aibridge/sessions` (docs/ai-gateway-records.md). Administrators see every
//! user's records; members only their own — asking for another user's is
//! [`ErrorKind::Forbidden`](crate::ErrorKind::Forbidden) before any lookup, as the cost
//! summary answers.

use codersdk::{
    AIBridgeInterceptionsQuery, AIBridgeListInterceptionsResponse, AIBridgeListSessionsResponse,
    AIBridgeSessionsQuery, Uuid,
};

use super::users::UserRef;
use super::Admin;
use crate::engine::Actor;
use crate::error::Result;
use crate::store::{timestamp_to_micros, InterceptionFilter, InterceptionPageRequest};

/// `initiator` as the user reference the handle resolves: `me`, a user id or a username.
fn user_ref(raw: &str) -> UserRef {
    if raw == "me" {
        UserRef::Me
    } else if let Ok(id) = Uuid::parse_str(raw) {
        UserRef::Id(id)
    } else {
        UserRef::Username(raw.to_owned())
    }
}

impl Admin {
    /// Whose records `initiator` asks for, as `actor` may see them: a member without a
    /// filter sees their own, an administrator without one everyone's.
    async fn interception_owner(
        &self,
        actor: &Actor,
        initiator: Option<&str>,
    ) -> Result<Option<Uuid>> {
        match initiator {
            None if actor.admin => Ok(None),
            None => Ok(Some(actor.user_id)),
            Some(raw) => {
                let user = user_ref(raw);
                self.require_self_or_admin(actor, &user, "view the AI Gateway records")
                    .await?;
                Ok(Some(self.resolve(actor, &user).await?.id))
            }
        }
    }

    /// One page of AI Gateway interceptions, newest first, filtered by `query`
    /// (validated by `codersdk::parse_aibridge_interceptions_query`).
    pub async fn list_aibridge_interceptions(
        &self,
        actor: &Actor,
        query: &AIBridgeInterceptionsQuery,
    ) -> Result<AIBridgeListInterceptionsResponse> {
        let user_id = self
            .interception_owner(actor, query.initiator.as_deref())
            .await?;
        let filter = InterceptionFilter {
            user_id,
            provider_name: query.provider.clone(),
            model: query.model.clone(),
            started_after: query.started_after.map(timestamp_to_micros),
            started_before: query.started_before.map(timestamp_to_micros),
        };
        let page = self
            .store()
            .list_interceptions(
                &filter,
                InterceptionPageRequest {
                    after_id: query.after_id,
                    limit: query.limit,
                },
            )
            .await?;
        let next_after_id = if page.more {
            page.results.last().map(|r| r.id)
        } else {
            None
        };
        Ok(AIBridgeListInterceptionsResponse {
            results: page.results,
            next_after_id,
        })
    }

    /// One page of AI Gateway sessions, the most recently started first (validated by
    /// `codersdk::parse_aibridge_sessions_query`); a cursor that is not one the server
    /// gave out is [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument).
    pub async fn list_aibridge_sessions(
        &self,
        actor: &Actor,
        query: &AIBridgeSessionsQuery,
    ) -> Result<AIBridgeListSessionsResponse> {
        let user_id = self
            .interception_owner(actor, query.initiator.as_deref())
            .await?;
        let page = self
            .store()
            .list_interception_sessions(
                user_id,
                query.started_after.map(timestamp_to_micros),
                query.started_before.map(timestamp_to_micros),
                query.cursor.as_deref(),
                query.limit,
            )
            .await?;
        Ok(AIBridgeListSessionsResponse {
            sessions: page.sessions,
            next_cursor: page.next_cursor,
        })
    }
}
