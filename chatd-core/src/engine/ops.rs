//! The operations of the chats API (engine.md §6): validate, one store transaction, then
//! publish.

use std::collections::HashMap;

use codersdk::{
    input_parts_to_message_parts, referenced_file_ids, validate_create_chat_message_request,
    validate_create_chat_request, Chat, ChatMessagePart, ChatMessagesResponse, ChatQueuedMessage,
    ChatStatus, ChatStreamEvent, ChatWatchEventKind, CreateChatMessageRequest,
    CreateChatMessageResponse, CreateChatRequest, MessagePage, ResolvedChatFile, Uuid,
    ValidatedInputPart,
};

use super::models::ModelSelection;
use super::{Actor, Engine, Inner};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{NewChat, SendMessage, SendOutcome, TurnInputs};

/// Whether an operation only reads the chat or changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

impl Engine {
    /// The chat, if `actor` may see it: another user's chat is [`ErrorKind::NotFound`]
    /// (its existence is not revealed) unless the actor is an admin, who may read it but
    /// not change it ([`ErrorKind::Forbidden`]).
    pub(crate) async fn authorized_chat(
        &self,
        actor: &Actor,
        chat_id: Uuid,
        access: Access,
    ) -> Result<Chat> {
        let chat = self
            .inner
            .store
            .get_chat(chat_id)
            .await?
            .ok_or_else(|| not_found(chat_id))?;
        if chat.owner_id == actor.user_id {
            return Ok(chat);
        }
        if !actor.admin {
            return Err(not_found(chat_id));
        }
        match access {
            Access::Read => Ok(chat),
            Access::Write => Err(Error::new(
                ErrorKind::Forbidden,
                "Only the chat's owner can change it.",
            )),
        }
    }

    /// Creates a chat with its first message (codersdk.md §5.2) and queues its first turn.
    ///
    /// `organization_id` may be omitted when the actor belongs to exactly one organization.
    /// An empty title gets the fallback title (the first words of the message); the
    /// model-written title follows asynchronously as a `title_change` watch event.
    pub async fn create_chat(&self, actor: &Actor, request: CreateChatRequest) -> Result<Chat> {
        let valid = validate_create_chat_request(&request)
            .map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
        let organization_id = match valid.organization_id {
            Some(org) => {
                if !self.inner.store.is_member(org, actor.user_id).await? {
                    return Err(Error::with_response(
                        ErrorKind::InvalidArgument,
                        codersdk::Response::new("Invalid chat creation request.").with_validation(
                            "organization_id",
                            "You are not a member of this organization.",
                        ),
                    ));
                }
                org
            }
            None => self.only_organization(actor).await?,
        };
        let parts = self.message_parts(actor, &valid.content).await?;
        let model_config_id = self
            .inner
            .models
            .select(ModelSelection::new(
                actor.user_id,
                organization_id,
                valid.model_config_id,
            ))
            .await?;
        let title = fallback_title(&first_text(&parts));
        let (chat, _message) = self
            .inner
            .store
            .create_chat(NewChat {
                organization_id,
                owner_id: actor.user_id,
                title,
                model_config_id,
                labels: valid.labels,
                mcp_server_ids: valid.mcp_server_ids,
                dynamic_tools: valid.dynamic_tools,
                system_prompt: valid.system_prompt,
                client_type: valid.client_type,
                plan_mode: valid.plan_mode.then_some(codersdk::ChatPlanMode::Plan),
                first_message_parts: parts,
                created_by: Some(actor.user_id),
            })
            .await?;
        self.inner
            .publish_watch(ChatWatchEventKind::Created, chat.clone(), None);
        self.inner.wake();
        Ok(chat)
    }

    /// The chat (codersdk.md §16.4 `GET /chats/{chat}`).
    pub async fn get_chat(&self, actor: &Actor, chat_id: Uuid) -> Result<Chat> {
        self.authorized_chat(actor, chat_id, Access::Read).await
    }

    /// One page of a chat's messages; the queue comes with the first page (no cursor).
    pub async fn list_messages(
        &self,
        actor: &Actor,
        chat_id: Uuid,
        page: &MessagePage,
    ) -> Result<ChatMessagesResponse> {
        self.authorized_chat(actor, chat_id, Access::Read).await?;
        let (messages, has_more) = self.inner.store.list_messages(chat_id, page).await?;
        let queued_messages = if page.has_cursor() {
            Vec::new()
        } else {
            self.inner.store.list_queue(chat_id).await?
        };
        Ok(ChatMessagesResponse {
            messages,
            queued_messages,
            has_more,
        })
    }

    /// Sends a message (engine.md §6.1): an idle chat starts a turn; a busy one queues it,
    /// and with `busy_behavior: interrupt` also stops the running turn, keeping its partial
    /// output, so the message runs next.
    pub async fn send_message(
        &self,
        actor: &Actor,
        chat_id: Uuid,
        request: CreateChatMessageRequest,
    ) -> Result<CreateChatMessageResponse> {
        let valid = validate_create_chat_message_request(&request)
            .map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
        let chat = self.authorized_chat(actor, chat_id, Access::Write).await?;
        let parts = self.message_parts(actor, &valid.content).await?;
        let model_config_id = match valid.model_config_id {
            Some(requested) => Some(
                self.inner
                    .models
                    .select(ModelSelection::new(
                        chat.owner_id,
                        chat.organization_id,
                        Some(requested),
                    ))
                    .await?,
            ),
            None => None,
        };
        let sent = self
            .inner
            .store
            .send_message(
                chat_id,
                SendMessage {
                    parts,
                    created_by: Some(actor.user_id),
                    model_config_id,
                    busy_behavior: valid.busy_behavior,
                },
            )
            .await?;
        let inner = &self.inner;
        let response = match sent.outcome {
            SendOutcome::Inserted(message) => {
                inner
                    .hub
                    .publish(ChatStreamEvent::message(chat_id, message.clone()));
                CreateChatMessageResponse {
                    message: Some(message),
                    queued_message: None,
                    queued: false,
                    warnings: Vec::new(),
                }
            }
            SendOutcome::Queued { queued, .. } => {
                inner
                    .hub
                    .publish(ChatStreamEvent::queue_update(chat_id, sent.queue.clone()));
                CreateChatMessageResponse {
                    message: None,
                    queued_message: Some(queued),
                    queued: true,
                    warnings: Vec::new(),
                }
            }
        };
        if sent.status != chat.status {
            inner.signal_status(chat_id, &sent.status);
            inner.publish_status(chat_id, sent.status).await;
        }
        Ok(response)
    }

    /// The chat's queue, oldest first.
    pub async fn list_queue(&self, actor: &Actor, chat_id: Uuid) -> Result<Vec<ChatQueuedMessage>> {
        self.authorized_chat(actor, chat_id, Access::Read).await?;
        self.inner.store.list_queue(chat_id).await
    }

    /// Deletes a queued message (§6.3) and publishes the new queue.
    pub async fn delete_queued(&self, actor: &Actor, chat_id: Uuid, queued_id: i64) -> Result<()> {
        self.authorized_chat(actor, chat_id, Access::Write).await?;
        let queue = self.inner.store.delete_queued(chat_id, queued_id).await?;
        self.inner
            .hub
            .publish(ChatStreamEvent::queue_update(chat_id, queue));
        Ok(())
    }

    /// Promotes a queued message to run next (§6.3): a running turn stops and its partial
    /// output is discarded.
    pub async fn promote_queued(
        &self,
        actor: &Actor,
        chat_id: Uuid,
        queued_id: i64,
    ) -> Result<codersdk::ChatMessage> {
        self.authorized_chat(actor, chat_id, Access::Write).await?;
        let promoted = self.inner.store.promote_queued(chat_id, queued_id).await?;
        let inner = &self.inner;
        inner.signal_status(chat_id, &ChatStatus::Pending);
        inner
            .hub
            .publish(ChatStreamEvent::message(chat_id, promoted.message.clone()));
        inner
            .hub
            .publish(ChatStreamEvent::queue_update(chat_id, promoted.queue));
        inner.publish_status(chat_id, ChatStatus::Pending).await;
        Ok(promoted.message)
    }

    /// The actor's only organization, for requests that omit it.
    async fn only_organization(&self, actor: &Actor) -> Result<Uuid> {
        let orgs = self.inner.store.organizations_of(actor.user_id).await?;
        match orgs.as_slice() {
            [only] => Ok(*only),
            [] => Err(Error::with_response(
                ErrorKind::InvalidArgument,
                codersdk::Response::new("Invalid chat creation request.").with_validation(
                    "organization_id",
                    "You are not a member of any organization.",
                ),
            )),
            _ => Err(Error::with_response(
                ErrorKind::InvalidArgument,
                codersdk::Response::new("Invalid chat creation request.").with_validation(
                    "organization_id",
                    "You belong to several organizations; name one.",
                ),
            )),
        }
    }

    /// Message parts from validated input: `file` parts must name files the actor uploaded.
    async fn message_parts(
        &self,
        actor: &Actor,
        content: &[ValidatedInputPart],
    ) -> Result<Vec<ChatMessagePart>> {
        let ids = referenced_file_ids(content);
        let files: HashMap<Uuid, ResolvedChatFile> = if ids.is_empty() {
            HashMap::new()
        } else {
            self.inner
                .store
                .files_by_ids(&ids)
                .await?
                .iter()
                .filter(|f| f.owner_id == actor.user_id)
                .map(|f| (f.id, ResolvedChatFile::from(f)))
                .collect()
        };
        input_parts_to_message_parts(content, |id| files.get(&id).cloned())
            .map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))
    }
}

fn not_found(chat_id: Uuid) -> Error {
    Error::new(ErrorKind::NotFound, format!("Chat {chat_id} not found."))
}

/// The text of the first text part, for the fallback title.
fn first_text(parts: &[ChatMessagePart]) -> String {
    parts
        .iter()
        .find(|p| p.part_type == codersdk::ChatMessagePartType::Text && !p.text.trim().is_empty())
        .map(|p| p.text.clone())
        .unwrap_or_default()
}

/// The system prompt blocks of a turn (engine.md §4.3).
pub(crate) async fn system_prompt(_inner: &Inner, inputs: &TurnInputs) -> Vec<String> {
    let mut blocks = Vec::new();
    if !inputs.system_prompt.trim().is_empty() {
        blocks.push(inputs.system_prompt.clone());
    }
    blocks
}

/// MERGE(tools): replaced by crate::title::fallback_title.
pub fn fallback_title(text: &str) -> String {
    text.split_whitespace()
        .take(6)
        .collect::<Vec<_>>()
        .join(" ")
}
