//! Workspace state of chats (docs/workspaces.md): the bound workspace and the injected
//! instruction files and skills (files the model attaches are [`super::files`]'s).

use codersdk::{ChatMessagePart, ChatMessageRole, ChatStatus, Uuid};
use sqlx::Row;

use super::chats::json_text;
use super::{uuid_text, Lease, LeaseState, MessageVisibility, NewMessage, Store, Transition};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// What [`Store::inject_context`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectedContext {
    /// The parts now recorded as the chat's injected context (with their content): the
    /// ones given, or the ones an earlier turn recorded.
    pub parts: Vec<ChatMessagePart>,
    /// What this call committed, for the engine to publish: the message inserted to show
    /// the parts (visibility `user`), when it wrote one; the chat stays `running`.
    pub transition: Transition,
}

impl Store {
    /// Binds chat `chat_id` to workspace `workspace_id` (the chat's `workspace_id`),
    /// without touching `updated_at`. [`ErrorKind::NotFound`] when the chat does not exist.
    pub async fn bind_workspace(&self, chat_id: Uuid, workspace_id: Uuid) -> Result<()> {
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = sqlx::query("UPDATE chats SET workspace_id = $1 WHERE id = $2")
            .bind(uuid_text(workspace_id))
            .bind(uuid_text(chat_id))
            .execute(&mut *tx.conn())
            .await
            .db()
            .map(|_| ());
        tx.finish(result).await
    }

    /// The chat's injected context as recorded (parts with their content); `None` before
    /// the first turn with a workspace. [`ErrorKind::NotFound`] when the chat does not
    /// exist.
    pub async fn injected_context(&self, chat_id: Uuid) -> Result<Option<Vec<ChatMessagePart>>> {
        let row = sqlx::query("SELECT last_injected_context FROM chats WHERE id = $1")
            .bind(uuid_text(chat_id))
            .fetch_optional(self.pool())
            .await
            .db()?
            .ok_or_else(|| super::chat_not_found(chat_id))?;
        let text: Option<String> = row.try_get("last_injected_context").db()?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|_| {
                Error::new(
                    ErrorKind::CorruptRow,
                    "stored last_injected_context is malformed",
                )
            })
        })
        .transpose()
    }

    /// Records the instruction files and skills of the chat's first turn with a workspace
    ///, once, in one transaction under the chat lock fenced by the
    /// worker's `lease`: `last_injected_context` is set to `parts` (content included) and,
    /// when there are parts, a user-role message with them (visibility `user`: the model
    /// gets them through the system prompt, not twice) is appended. `updated_at` is not
    /// touched. When the context was recorded already nothing is written and the recorded
    /// parts are returned. [`ErrorKind::LeaseLost`] when the worker no longer holds the
    /// chat.
    pub async fn inject_context(
        &self,
        lease: &Lease,
        parts: Vec<ChatMessagePart>,
    ) -> Result<InjectedContext> {
        let mut tx = self.begin_chat_tx(lease.chat_id).await?;
        let result = async {
            if tx.check_lease(lease).await? != LeaseState::Owned {
                return Err(Error::new(
                    ErrorKind::LeaseLost,
                    format!("worker no longer holds chat {}", lease.chat_id),
                ));
            }
            let row = sqlx::query("SELECT last_injected_context FROM chats WHERE id = $1")
                .bind(uuid_text(lease.chat_id))
                .fetch_one(&mut *tx.conn())
                .await
                .db()?;
            if let Some(text) = row
                .try_get::<Option<String>, _>("last_injected_context")
                .db()?
            {
                let parts = serde_json::from_str(&text).map_err(|_| {
                    Error::new(
                        ErrorKind::CorruptRow,
                        "stored last_injected_context is malformed",
                    )
                })?;
                return Ok(InjectedContext {
                    parts,
                    transition: Transition::unchanged(lease.chat_id, ChatStatus::Running),
                });
            }
            let text = json_text(serde_json::to_string(&parts), "injected context")?;
            sqlx::query("UPDATE chats SET last_injected_context = $1 WHERE id = $2")
                .bind(text)
                .bind(uuid_text(lease.chat_id))
                .execute(&mut *tx.conn())
                .await
                .db()?;
            let mut transition = Transition::unchanged(lease.chat_id, ChatStatus::Running);
            if !parts.is_empty() {
                transition.messages.push(
                    tx.insert_message(NewMessage {
                        role: ChatMessageRole::User,
                        parts: parts.clone(),
                        visibility: MessageVisibility::User,
                        created_by: None,
                        model_config_id: None,
                        usage: None,
                    })
                    .await?,
                );
            }
            Ok(InjectedContext { parts, transition })
        }
        .await;
        tx.finish(result).await
    }
}
