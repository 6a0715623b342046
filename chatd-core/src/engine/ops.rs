//! The operations of the chats API: validate, one store transaction, then
//! publish.

use std::collections::HashMap;

use codersdk::{
    input_parts_to_message_parts, referenced_file_ids, validate_create_chat_message_request,
    validate_create_chat_request, validate_edit_chat_message_request,
    validate_submit_tool_results_request, validate_update_chat_request, Chat, ChatMessagePart,
    ChatMessagesResponse, ChatQueuedMessage, ChatWatchEventKind, CreateChatMessageRequest,
    CreateChatMessageResponse, CreateChatRequest, EditChatMessageRequest, EditChatMessageResponse,
    MessagePage, ResolvedChatFile, SubmitToolResultsRequest, UpdateChatRequest, Uuid,
    ValidatedInputPart,
};

use super::models::ModelSelection;
use super::{Actor, Engine, Inner};
use crate::error::{Error, ErrorKind, Result};
use crate::prompt::{compose_system_prompt, SystemPromptInput};
use crate::store::{ChatListQuery, EditMessage, NewChat, SendMessage, SendOutcome, TurnInputs};

/// Validation detail of an `mcp_server_ids` entry that names no enabled MCP server
/// configuration (HTTP 400 on chat creation and on sending a message); the id precedes it.
pub const UNUSABLE_MCP_SERVER_DETAIL: &str = "no such MCP server configuration, or it is disabled.";

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

    /// Creates a chat with its first message and queues its first turn.
    ///
    /// `organization_id` may be omitted when the actor belongs to exactly one organization.
    /// An empty title gets the fallback title (the first words of the message); the
    /// model-written title follows asynchronously as a `title_change` watch event. A dynamic
    /// tool whose name a registered tool has is named in the answer's `warnings`
    /// ([`ToolRegistry::dynamic_tool_warnings`](crate::tools::ToolRegistry::dynamic_tool_warnings)),
    /// as are files the message references that could not be linked to the chat
    /// ([`file_link_limit_warning`](crate::store::file_link_limit_warning)); the answer's
    /// `files` are the chat's linked files.
    pub async fn create_chat(&self, actor: &Actor, request: CreateChatRequest) -> Result<Chat> {
        let valid = validate_create_chat_request(&request)
            .map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
        // The first turn makes the model work: the owner must be under their limit.
        self.inner.admit(actor.user_id).await?;
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
        // Named servers must be usable; naming none pre-selects the `default_on` ones.
        let mcp_server_ids = match valid.mcp_server_ids {
            Some(ids) => {
                self.check_mcp_server_ids(&ids, "Invalid chat creation request.")
                    .await?;
                ids
            }
            None => self.inner.store.default_on_mcp_server_ids().await?,
        };
        let parts = self.message_parts(actor, &valid.content).await?;
        let has_files = !crate::store::referenced_files(&parts).is_empty();
        let selection = ModelSelection::new(actor.user_id, organization_id, valid.model_config_id);
        let model_config_id = self.inner.models.select(selection).await?;
        self.inner
            .models
            .check_new_chat(selection, model_config_id)
            .await?;
        let title = crate::title::fallback_title(&first_text(&parts));
        let warnings = self.inner.tools.dynamic_tool_warnings(&valid.dynamic_tools);
        let (mut chat, _message) = self
            .inner
            .store
            .create_chat(NewChat {
                organization_id,
                owner_id: actor.user_id,
                title,
                model_config_id,
                labels: valid.labels,
                mcp_server_ids,
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
        self.inner.announce_pending();
        // The answer lists the chat's files (a new chat has those its message linked) and,
        // after the store's file-linking warnings, the tool-name warnings; neither is
        // stored with the chat nor in the watch event.
        if has_files {
            chat.files = self.inner.store.linked_files(chat.id).await?;
        }
        chat.warnings.extend(warnings);
        Ok(chat)
    }

    /// The chat (`GET /chats/{chat}`).
    pub async fn get_chat(&self, actor: &Actor, chat_id: Uuid) -> Result<Chat> {
        let mut chat = self.authorized_chat(actor, chat_id, Access::Read).await?;
        // The chat's linked files: uploads its messages reference, files the model attached.
        chat.files = self.inner.store.linked_files(chat_id).await?;
        Ok(chat)
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

    /// Sends a message: an idle chat starts a turn; a busy one queues it,
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
        // Queued or not, the message will make the model work. Only the owner can send, so
        // the sender's spend is the owner's (another user's send fails below).
        self.inner.admit(actor.user_id).await?;
        // A plain message (no model, mode or MCP change, no file) needs nothing of the chat
        // before the send: the send's locking statement checks the owner, saving a read on
        // the hot path (docs/turn-path.md). Anything else is checked first, as before.
        let plain = valid.model_config_id.is_none()
            && valid.plan_mode.is_none()
            && valid.mcp_server_ids.is_none()
            && referenced_file_ids(&valid.content).is_empty();
        let chat = if plain {
            None
        } else {
            Some(self.authorized_chat(actor, chat_id, Access::Write).await?)
        };
        if valid.plan_mode.is_some() || valid.mcp_server_ids.is_some() {
            self.refuse_explore_change(chat_id).await?;
        }
        if let Some(ids) = &valid.mcp_server_ids {
            self.check_mcp_server_ids(ids, "Invalid message request.")
                .await?;
        }
        let parts = self.message_parts(actor, &valid.content).await?;
        let model_config_id = match (valid.model_config_id, &chat) {
            (Some(requested), Some(chat)) => Some(
                self.inner
                    .models
                    .select(ModelSelection::new(
                        chat.owner_id,
                        chat.organization_id,
                        Some(requested),
                    ))
                    .await?,
            ),
            _ => None,
        };
        let send = SendMessage {
            parts,
            created_by: Some(actor.user_id),
            model_config_id,
            busy_behavior: valid.busy_behavior,
            plan_mode: valid.plan_mode,
            mcp_server_ids: valid.mcp_server_ids,
        };
        let owner = plain.then_some(actor.user_id);
        let (sent, warnings) = match self.inner.send_and_publish(chat_id, owner, send).await {
            Ok(sent) => sent,
            // Not the owner's (or gone): the full check gives the caller's answer (an
            // admin may see the chat but not write to it).
            Err(e) if plain && e.kind() == ErrorKind::NotFound => {
                self.authorized_chat(actor, chat_id, Access::Write).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        Ok(match sent {
            SendOutcome::Inserted(message) => CreateChatMessageResponse {
                message: Some(message),
                queued_message: None,
                queued: false,
                warnings,
            },
            SendOutcome::Queued { queued, .. } => CreateChatMessageResponse {
                message: None,
                queued_message: Some(queued),
                queued: true,
                warnings,
            },
        })
    }

    /// The chat's queue, oldest first.
    pub async fn list_queue(&self, actor: &Actor, chat_id: Uuid) -> Result<Vec<ChatQueuedMessage>> {
        self.authorized_chat(actor, chat_id, Access::Read).await?;
        self.inner.store.list_queue(chat_id).await
    }

    /// Deletes a queued message and publishes the new queue.
    pub async fn delete_queued(&self, actor: &Actor, chat_id: Uuid, queued_id: i64) -> Result<()> {
        self.authorized_chat(actor, chat_id, Access::Write).await?;
        let deleted = self.inner.store.delete_queued(chat_id, queued_id).await?;
        self.inner.publish(deleted).await;
        Ok(())
    }

    /// Promotes a queued message to run next: a running turn stops and its partial
    /// output is discarded.
    pub async fn promote_queued(
        &self,
        actor: &Actor,
        chat_id: Uuid,
        queued_id: i64,
    ) -> Result<codersdk::ChatMessage> {
        let chat = self.authorized_chat(actor, chat_id, Access::Write).await?;
        self.inner.admit(chat.owner_id).await?;
        let promoted = self.inner.store.promote_queued(chat_id, queued_id).await?;
        self.inner.publish(promoted.transition).await;
        Ok(promoted.message)
    }

    /// Stops the chat's turn: a running turn keeps its partial output; a
    /// chat waiting for client tool results gets "Tool execution interrupted by user"
    /// results; the queue head, if any, runs next. The chat's busy sub-agents are
    /// interrupted too. Returns the chat afterwards.
    pub async fn interrupt(&self, actor: &Actor, chat_id: Uuid) -> Result<Chat> {
        self.authorized_chat(actor, chat_id, Access::Write).await?;
        // The user wants the chat to stop acting: its workspace commands stop too.
        super::subagents::interrupt_chat(&self.inner, chat_id).await?;
        // And so does the work it delegated: its busy sub-agents.
        super::subagents::interrupt_children(&self.inner, chat_id).await;
        self.authorized_chat(actor, chat_id, Access::Read).await
    }

    /// Summarizes the chat's conversation now, whatever its context usage (context
    /// compaction's manual trigger; Coder's newest `POST /chats/{chat}/compact`). The chat
    /// must be idle (`waiting` or `error`, not archived), else [`ErrorKind::Conflict`]: it
    /// becomes `pending`, and the worker that claims it writes the summary — streaming
    /// "Summarizing…" like an automatic compaction, with `source: "manual"` in the result —
    /// and goes back to `waiting` without calling the model otherwise. Owner (or
    /// administrator) only. A summary that cannot be made ends in `error` with
    /// [`COMPACTION_FAILED_MESSAGE`](crate::COMPACTION_FAILED_MESSAGE).
    pub async fn compact_chat(&self, actor: &Actor, chat_id: Uuid) -> Result<Chat> {
        self.authorized_chat(actor, chat_id, Access::Write).await?;
        let requested = self.inner.store.request_compaction(chat_id).await?;
        // The answer is the chat as the request left it: a run loop's acquire tick may
        // claim the chat between the commit and this read (the publication's wake-up is
        // not the only way a worker finds it), so the status is the one the request wrote.
        let status = requested.status.clone();
        let chat = self
            .authorized_chat(actor, chat_id, Access::Read)
            .await
            .map(|mut chat| {
                chat.status = status;
                chat
            });
        self.inner.publish(requested).await;
        chat
    }

    /// Replaces a user message and everything after it: later messages
    /// are soft-deleted, the queue is cleared, a running turn stops and its partial output
    /// is discarded, and the chat runs again from the edited message.
    pub async fn edit_message(
        &self,
        actor: &Actor,
        chat_id: Uuid,
        message_id: i64,
        request: EditChatMessageRequest,
    ) -> Result<EditChatMessageResponse> {
        let content = validate_edit_chat_message_request(&request)
            .map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
        let chat = self.authorized_chat(actor, chat_id, Access::Write).await?;
        self.inner.admit(chat.owner_id).await?;
        let parts = self.message_parts(actor, &content).await?;
        let edited = self
            .inner
            .store
            .edit_message(
                chat_id,
                message_id,
                EditMessage {
                    parts,
                    created_by: Some(actor.user_id),
                    model_config_id: None,
                },
            )
            .await?;
        // The preview of a stopped turn is void (the transition says so): clients drop it on
        // the status change and re-read the history, whose tail the edit replaced.
        self.inner.publish(edited.transition).await;
        Ok(EditChatMessageResponse {
            message: edited.message,
            warnings: edited.warnings,
        })
    }

    /// Accepts the client's results for the pending dynamic tool calls
    /// and resumes the chat. 409 when the chat is not waiting for results; 400 for
    /// duplicate, missing, unexpected or non-JSON results (nothing is written).
    pub async fn submit_tool_results(
        &self,
        actor: &Actor,
        chat_id: Uuid,
        request: SubmitToolResultsRequest,
    ) -> Result<()> {
        let results = validate_submit_tool_results_request(&request)
            .map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
        self.authorized_chat(actor, chat_id, Access::Write).await?;
        let submitted = self
            .inner
            .store
            .submit_tool_results(chat_id, results)
            .await?;
        self.inner.publish(submitted).await;
        Ok(())
    }

    /// Applies `PATCH /chats/{chat}`: title, labels, pin order, plan
    /// mode, and archiving (of the whole family, which stops busy chats).
    pub async fn update_chat(
        &self,
        actor: &Actor,
        chat_id: Uuid,
        request: UpdateChatRequest,
    ) -> Result<Chat> {
        let update = validate_update_chat_request(&request)
            .map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
        let before = self.authorized_chat(actor, chat_id, Access::Write).await?;
        if update.plan_mode.is_some() {
            self.refuse_explore_change(chat_id).await?;
        }
        if let Some(archived) = update.archived {
            if archived == before.archived {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    if archived {
                        "Chat is already archived."
                    } else {
                        "Chat is not archived."
                    },
                ));
            }
        }
        // Unarchive first so the other fields apply to a live chat (pinning an archived
        // chat is refused); archive last for the same reason.
        if update.archived == Some(false) {
            self.apply_archive(chat_id, false).await?;
        }
        let chat = self.inner.store.update_chat(chat_id, &update).await?;
        if update.title.is_some() && chat.title != before.title {
            self.inner
                .publish_watch(ChatWatchEventKind::TitleChange, chat.clone(), None);
        }
        if update.archived == Some(true) {
            self.apply_archive(chat_id, true).await?;
        }
        self.authorized_chat(actor, chat_id, Access::Read).await
    }

    async fn apply_archive(&self, chat_id: Uuid, archived: bool) -> Result<()> {
        let changed = self.inner.store.set_archived(chat_id, archived).await?;
        publish_archive(&self.inner, changed, archived).await;
        Ok(())
    }

    /// The actor's chats: `q` filters, label filters, cursor paging.
    pub async fn list_chats(&self, actor: &Actor, query: &ChatListQuery) -> Result<Vec<Chat>> {
        self.inner.store.list_chats(actor.user_id, query).await
    }

    /// Marks the chat read up to its newest message (what opening and closing the chat
    /// stream does in Coder). Only the owner's reads count.
    pub async fn mark_read(&self, actor: &Actor, chat_id: Uuid) -> Result<()> {
        let chat = self.authorized_chat(actor, chat_id, Access::Read).await?;
        if chat.owner_id == actor.user_id {
            self.inner.store.mark_read(chat_id, None).await?;
        }
        Ok(())
    }

    /// [`ErrorKind::InvalidArgument`] with `message` and one `mcp_server_ids` entry per id
    /// that names no enabled MCP server configuration ([`UNUSABLE_MCP_SERVER_DETAIL`]).
    /// Checked before the write: a configuration deleted in between leaves an id no server
    /// resolves, which is what deleting one a chat already names does too.
    async fn check_mcp_server_ids(&self, ids: &[Uuid], message: &str) -> Result<()> {
        let unusable = self.inner.store.unusable_mcp_server_ids(ids).await?;
        if unusable.is_empty() {
            return Ok(());
        }
        let response = unusable
            .iter()
            .fold(codersdk::Response::new(message), |response, id| {
                response.with_validation(
                    "mcp_server_ids",
                    format!("MCP server {id}: {UNUSABLE_MCP_SERVER_DETAIL}"),
                )
            });
        Err(Error::with_response(ErrorKind::InvalidArgument, response))
    }

    /// [`ErrorKind::InvalidArgument`] ([`EXPLORE_SETTINGS_FIXED_MESSAGE`]) when the chat
    /// is an explore sub-agent: its mode and MCP servers were fixed at its spawn. A chat's
    /// kind never changes, so reading it before the write's transaction is safe.
    ///
    /// [`EXPLORE_SETTINGS_FIXED_MESSAGE`]: crate::subagents::EXPLORE_SETTINGS_FIXED_MESSAGE
    async fn refuse_explore_change(&self, chat_id: Uuid) -> Result<()> {
        let explore = self
            .inner
            .store
            .subagent_info(chat_id)
            .await?
            .is_some_and(|s| s.subagent_type == crate::subagents::SubagentType::Explore);
        if explore {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                crate::subagents::EXPLORE_SETTINGS_FIXED_MESSAGE,
            ));
        }
        Ok(())
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

/// Publishes what archiving (or unarchiving) a family committed, member by member: its
/// status changes and watch events (`deleted` / `created`); an archived member is deleted
/// for its user, so its workspace commands stop. Shared by `PATCH /chats/{chat}` and the
/// retention sweep's automatic archiving, which publish the same.
pub(crate) async fn publish_archive(
    inner: &Inner,
    changed: Vec<crate::store::Transition>,
    archived: bool,
) {
    for member in changed {
        let id = member.chat_id;
        inner.publish(member).await;
        if archived {
            super::workspace::release(inner, id, crate::workspace::ChatRelease::Deleted).await;
        }
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

/// The system prompt blocks of a turn, composed from the current
/// deployment and personal settings each turn, so an administrator's change reaches
/// existing chats. `plan_file_path` is the chat's plan file when the turn has a workspace.
pub(crate) async fn system_prompt(
    inner: &Inner,
    inputs: &TurnInputs,
    context_blocks: &[String],
    plan_file_path: Option<&str>,
) -> Result<Vec<String>> {
    // Through the hot-config cache: a warm turn reads none of these.
    let deployment = inner.store.cached_system_prompt_config().await?;
    let personal = inner.store.cached_user_prompt(inputs.chat.owner_id).await?;
    let turn = crate::tools::TurnContext::for_chat(&inputs.chat);
    let root_plan_turn = crate::plan::is_root_plan_turn(&turn);
    // Read only when it is used: most turns are not plan turns.
    let plan_mode_instructions = if root_plan_turn {
        inner.store.cached_plan_mode_instructions().await?
    } else {
        String::new()
    };
    // A sub-agent's instruction block comes first among the turn's blocks (engine.md §4.3).
    let blocks: Vec<String> = inputs
        .subagent
        .as_ref()
        .map(|s| crate::prompt::subagent_instructions(s.subagent_type, s.parent_chat_id))
        .into_iter()
        .chain(context_blocks.iter().cloned())
        .collect();
    Ok(compose_system_prompt(&SystemPromptInput {
        deployment_prompt: &deployment.system_prompt,
        include_default_prompt: deployment.include_default_system_prompt,
        chat_prompt: &inputs.system_prompt,
        context_blocks: &blocks,
        user_prompt: &personal,
        plan_mode: turn.plan_mode,
        root_plan_turn,
        plan_mode_instructions: &plan_mode_instructions,
        plan_file_path,
    }))
}
