//! The sub-agent tools (docs/subagents.md): `spawn_subagent`, `wait_agent`,
//! `message_agent` and `close_agent`. They act on the engine (create chats, send, wait on
//! status events, interrupt), so they are built per turn beside the engine's state rather
//! than registered in the process's [`ToolRegistry`](crate::tools::ToolRegistry), and only
//! for root chats that are not explore sub-agents: the tree is one level deep.

use std::sync::Arc;
use std::time::Duration;

use codersdk::{
    Chat, ChatBusyBehavior, ChatMessagePart, ChatStatus, ChatStreamEventType, ChatWatchEventKind,
    MCPServerAvailability, RawJson, Uuid,
};
use serde::{Deserialize, Serialize};

use super::Inner;
use crate::store::{is_running_state, NewSubagent, SendMessage, SendOutcome};
use crate::subagents::{
    SubagentType, CLOSE_AGENT_TOOL, COMPUTER_USE_UNAVAILABLE_MESSAGE, DEFAULT_WAIT_AGENT_TIMEOUT,
    MAX_SUBAGENT_MESSAGE_BYTES, MAX_SUBAGENT_TITLE_RUNES, MAX_WAIT_AGENT_TIMEOUT,
    MESSAGE_AGENT_TOOL, NOT_A_CHILD_MESSAGE, SPAWN_SUBAGENT_TOOL, WAIT_AGENT_POLL_INTERVAL,
    WAIT_AGENT_TOOL,
};
use crate::tools::{parse_arguments, schema_for, Tool, ToolContext, ToolOutput, TurnContext};

/// The sub-agent tools of a turn of `chat`: none for a sub-agent (or an explore chat).
pub(crate) fn tools(inner: &Arc<Inner>, chat: &Chat, turn: &TurnContext) -> Vec<Arc<dyn Tool>> {
    if !inner.subagents || !root_tools_allowed(turn) {
        return Vec::new();
    }
    let family = Family {
        inner: Arc::clone(inner),
        parent_chat_id: chat.id,
    };
    vec![
        Arc::new(SpawnSubagent(family.clone())),
        Arc::new(WaitAgent(family.clone())),
        Arc::new(MessageAgent(family.clone())),
        Arc::new(CloseAgent(family)),
    ]
}

/// Only root chats that are not explore sub-agents manage sub-agents.
fn root_tools_allowed(turn: &TurnContext) -> bool {
    !turn.is_subagent() && !turn.explore
}

/// What every sub-agent tool shares: the engine and the parent chat running the turn.
#[derive(Clone)]
struct Family {
    inner: Arc<Inner>,
    parent_chat_id: Uuid,
}

impl std::fmt::Debug for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family")
            .field("parent_chat_id", &self.parent_chat_id)
            .finish_non_exhaustive()
    }
}

/// A child of the calling chat, checked.
struct Child {
    chat: Chat,
    subagent_type: SubagentType,
}

impl Family {
    /// The child `chat_id` of this family's parent, or the error result every tool gives
    /// for a chat that is not one ([`NOT_A_CHILD_MESSAGE`]).
    async fn child(&self, chat_id: Uuid) -> Result<Child, ToolOutput> {
        let not_a_child = || ToolOutput::error(format!("{NOT_A_CHILD_MESSAGE} {chat_id}."));
        let store = &self.inner.store;
        let info = store
            .subagent_info(chat_id)
            .await
            .map_err(|e| internal(&e))?
            .filter(|i| i.parent_chat_id == self.parent_chat_id)
            .ok_or_else(not_a_child)?;
        let chat = store
            .get_chat(chat_id)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(not_a_child)?;
        Ok(Child {
            chat,
            subagent_type: info.subagent_type,
        })
    }

    /// The parent as stored now.
    async fn parent(&self) -> Result<Chat, ToolOutput> {
        self.inner
            .store
            .get_chat(self.parent_chat_id)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| ToolOutput::error("This chat no longer exists."))
    }
}

/// A store failure inside a tool: logged in full, reported without detail.
fn internal(e: &crate::Error) -> ToolOutput {
    tracing::warn!(error = %e, "a sub-agent tool failed on the store");
    ToolOutput::error("The sub-agent operation failed because of an internal error.")
}

/// The text of a message to a child, checked: not blank, at most
/// [`MAX_SUBAGENT_MESSAGE_BYTES`].
fn message_text(text: &str, what: &str) -> Result<String, ToolOutput> {
    if text.trim().is_empty() {
        return Err(ToolOutput::error(format!("The {what} is empty.")));
    }
    if text.len() > MAX_SUBAGENT_MESSAGE_BYTES {
        return Err(ToolOutput::error(format!(
            "The {what} is {} bytes long; at most {MAX_SUBAGENT_MESSAGE_BYTES} are allowed.",
            text.len()
        )));
    }
    Ok(text.to_owned())
}

/// `spawn_subagent`'s schema: `subagent_type` lists only the types that can run here.
#[allow(dead_code)] // Only its schema is used; calls decode into `SpawnArgs`.
#[derive(schemars::JsonSchema)]
struct SpawnSchema {
    /// The kind of sub-agent: "general" (the full tool set, for a self-contained task) or
    /// "explore" (read-only investigation that reports findings).
    subagent_type: AdvertisedType,
    /// The task, complete and self-contained: the sub-agent sees nothing of this chat.
    prompt: String,
    /// A short title; the first words of the prompt when omitted.
    title: Option<String>,
    /// The model config to run it on; by default the deployment's explore model (explore)
    /// or this chat's model.
    model_config_id: Option<Uuid>,
    /// Reasoning effort: none, minimal, low, medium, high, xhigh or max.
    reasoning_effort: Option<String>,
}

#[allow(dead_code)] // Only its schema is used.
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum AdvertisedType {
    General,
    Explore,
}

#[derive(Deserialize)]
struct SpawnArgs {
    subagent_type: String,
    prompt: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    model_config_id: Option<Uuid>,
    #[serde(default)]
    reasoning_effort: Option<String>,
}

#[derive(Serialize)]
struct Spawned {
    chat_id: Uuid,
    subagent_type: &'static str,
    title: String,
}

#[derive(Debug)]
struct SpawnSubagent(Family);

#[async_trait::async_trait]
impl Tool for SpawnSubagent {
    fn name(&self) -> &str {
        SPAWN_SUBAGENT_TOOL
    }

    fn description(&self) -> &str {
        "Starts a sub-agent: a new chat that works on one task in this chat's workspace and \
         runs in the background. Use \"explore\" for read-only investigation (reading files, \
         running inspecting commands) and \"general\" for a self-contained task that may \
         change files. Give it a complete prompt: it sees nothing of this conversation. Then \
         call wait_agent with the returned chat_id to get its report. Several sub-agents can \
         run at once."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<SpawnSchema>()
    }

    fn available(&self, turn: &TurnContext) -> bool {
        root_tools_allowed(turn)
    }

    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args: SpawnArgs = match parse_arguments(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        match self.spawn(args).await {
            Ok(out) | Err(out) => out,
        }
    }
}

impl SpawnSubagent {
    async fn spawn(&self, args: SpawnArgs) -> Result<ToolOutput, ToolOutput> {
        let family = &self.0;
        let inner = &family.inner;
        let kind = match SubagentType::parse(args.subagent_type.trim()) {
            Some(SubagentType::ComputerUse) => {
                return Err(ToolOutput::error(COMPUTER_USE_UNAVAILABLE_MESSAGE))
            }
            Some(kind) => kind,
            None => {
                return Err(ToolOutput::error(format!(
                    "Unknown sub-agent type {:?}; use \"general\" or \"explore\".",
                    args.subagent_type
                )))
            }
        };
        let prompt = message_text(&args.prompt, "prompt")?;
        let effort = match args.reasoning_effort.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => match chatprovider::ReasoningEffort::parse_exact(text) {
                Some(effort) => Some(effort.as_str().to_owned()),
                None => {
                    return Err(ToolOutput::error(format!(
                        "Unknown reasoning effort {text:?}; use one of none, minimal, low, \
                         medium, high, xhigh, max."
                    )))
                }
            },
        };
        let parent = family.parent().await?;
        let model_config_id = self.model(&parent, kind, args.model_config_id).await?;
        let mcp_server_ids = match kind {
            SubagentType::Explore => self.mcp_snapshot(&parent).await?,
            _ => parent.mcp_server_ids.clone(),
        };
        let title = match args.title.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => t.chars().take(MAX_SUBAGENT_TITLE_RUNES).collect(),
            _ => crate::title::fallback_title(&prompt),
        };
        let new = NewSubagent::new(
            parent.id,
            kind,
            title,
            model_config_id,
            vec![ChatMessagePart::text(prompt)],
        )
        .with_reasoning_effort(effort)
        .with_mcp_server_ids(mcp_server_ids);
        let (child, _message) = match inner.store.create_subagent(new).await {
            Ok(created) => created,
            Err(e) if e.kind().is_client_error() => return Err(ToolOutput::error(e.to_string())),
            Err(e) => return Err(internal(&e)),
        };
        // Like any chat's creation: the owner's list learns of it, and a worker picks it up.
        inner.publish_watch(ChatWatchEventKind::Created, child.clone(), None);
        inner.announce_pending();
        Ok(ToolOutput::json(&Spawned {
            chat_id: child.id,
            subagent_type: kind.as_str(),
            title: child.title,
        }))
    }

    /// The child's model: the one asked for (if the owner may use it), else for explore
    /// the deployment's `explore` model override when one is usable, else the parent's
    /// current model.
    async fn model(
        &self,
        parent: &Chat,
        kind: SubagentType,
        requested: Option<Uuid>,
    ) -> Result<Uuid, ToolOutput> {
        let inner = &self.0.inner;
        if let Some(requested) = requested {
            let selection = super::ModelSelection::new(
                parent.owner_id,
                parent.organization_id,
                Some(requested),
            );
            return inner.models.select(selection).await.map_err(|e| {
                ToolOutput::error(format!("Model config {requested} cannot be used: {e}"))
            });
        }
        if kind == SubagentType::Explore {
            match inner
                .store
                .usable_model_override(&codersdk::ChatModelOverrideContext::Explore)
                .await
            {
                Ok(Some(config)) => return Ok(config.id),
                Ok(None) => {}
                // The override is a preference: the parent's model still works.
                Err(e) => tracing::warn!(error = %e, "reading the explore model override failed"),
            }
        }
        Ok(parent.last_model_config_id)
    }

    /// The MCP servers an explore child keeps for its life: the parent's selection plus
    /// the enabled `force_on` servers its turns get, as the parent's mode allows them
    /// (only servers allowed in plan mode when the parent plans).
    async fn mcp_snapshot(&self, parent: &Chat) -> Result<Vec<Uuid>, ToolOutput> {
        let configs = self
            .0
            .inner
            .store
            .cached_enabled_mcp_servers()
            .await
            .map_err(|e| internal(&e))?;
        let planning = parent.plan_mode == Some(codersdk::ChatPlanMode::Plan);
        let mut ids: Vec<Uuid> = configs
            .iter()
            .filter(|c| c.enabled)
            .filter(|c| {
                parent.mcp_server_ids.contains(&c.id)
                    || c.availability == MCPServerAvailability::ForceOn
            })
            .filter(|c| !planning || c.allow_in_plan_mode)
            .map(|c| c.id)
            .collect();
        ids.sort();
        Ok(ids)
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
struct WaitArgs {
    /// The sub-agent's chat id (from spawn_subagent).
    chat_id: Uuid,
    /// How long to wait, in seconds: 300 by default, at most 1800.
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

#[derive(Serialize)]
struct Waited {
    chat_id: Uuid,
    subagent_type: &'static str,
    status: ChatStatus,
    /// The child's last assistant text; `null` when it has written none.
    report: Option<String>,
    /// The wait ended because the timeout passed while the child still ran.
    timed_out: bool,
}

/// How long `wait_agent` may wait for a call asking `requested` seconds.
fn wait_budget(requested: Option<u64>) -> Duration {
    requested
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WAIT_AGENT_TIMEOUT)
        .min(MAX_WAIT_AGENT_TIMEOUT)
}

/// Slack above the longest wait in `wait_agent`'s own [`Tool::timeout`], so its own
/// timeout (which answers with the child's status) always comes first.
const WAIT_AGENT_TIMEOUT_SLACK: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct WaitAgent(Family);

#[async_trait::async_trait]
impl Tool for WaitAgent {
    fn name(&self) -> &str {
        WAIT_AGENT_TOOL
    }

    fn description(&self) -> &str {
        "Waits until a sub-agent of this chat stops working (or the timeout passes) and \
         returns its status and report: its last message. A timeout is not a failure: the \
         sub-agent keeps running and you can wait again."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<WaitArgs>()
    }

    fn available(&self, turn: &TurnContext) -> bool {
        root_tools_allowed(turn)
    }

    fn timeout(&self) -> Duration {
        MAX_WAIT_AGENT_TIMEOUT + WAIT_AGENT_TIMEOUT_SLACK
    }

    async fn run(&self, ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args: WaitArgs = match parse_arguments(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        match self.wait(&ctx, args).await {
            Ok(out) | Err(out) => out,
        }
    }
}

impl WaitAgent {
    async fn wait(&self, ctx: &ToolContext, args: WaitArgs) -> Result<ToolOutput, ToolOutput> {
        let family = &self.0;
        let child = family.child(args.chat_id).await?;
        let deadline = tokio::time::Instant::now() + wait_budget(args.timeout_seconds);
        // Subscribe first, then read: a status published in between is not missed. The
        // subscription is a hint (a full hub or a lag leaves only the poll); every wake-up
        // re-reads the committed status.
        let mut events = family.inner.hub.subscribe(child.chat.id).ok();
        let mut status = child.chat.status.clone();
        let mut timed_out = false;
        loop {
            if !is_running_state(&status) {
                break;
            }
            let poll = tokio::time::sleep(WAIT_AGENT_POLL_INTERVAL);
            tokio::select! {
                () = ctx.cancel.cancelled() => {
                    return Err(ToolOutput::error("The wait was interrupted."));
                }
                () = tokio::time::sleep_until(deadline) => {
                    timed_out = true;
                }
                event = next_status_event(&mut events) => {
                    if !event {
                        events = None;
                    }
                }
                () = poll => {}
            }
            status = family
                .inner
                .store
                .get_chat(child.chat.id)
                .await
                .map_err(|e| internal(&e))?
                .map(|c| c.status)
                .ok_or_else(|| ToolOutput::error("The sub-agent's chat no longer exists."))?;
            if timed_out {
                break;
            }
        }
        let timed_out = timed_out && is_running_state(&status);
        let report = family
            .inner
            .store
            .last_assistant_text(child.chat.id)
            .await
            .map_err(|e| internal(&e))?;
        Ok(ToolOutput::json(&Waited {
            chat_id: child.chat.id,
            subagent_type: child.subagent_type.as_str(),
            status,
            report,
            timed_out,
        }))
    }
}

/// Waits for the next `status` event of the subscription; `false` when the subscription
/// ended (lagged or closed), so the caller falls back to polling. Without a subscription
/// it never returns.
async fn next_status_event(events: &mut Option<crate::hub::ChatSubscription>) -> bool {
    let Some(subscription) = events else {
        return std::future::pending().await;
    };
    loop {
        match subscription.recv().await {
            Ok(event) if event.event_type == ChatStreamEventType::Status => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
struct MessageArgs {
    /// The sub-agent's chat id.
    chat_id: Uuid,
    /// The message.
    message: String,
    /// Stop what the sub-agent is doing so it reads the message now; otherwise the
    /// message waits until its current work is done.
    #[serde(default)]
    interrupt: bool,
}

#[derive(Serialize)]
struct Messaged {
    chat_id: Uuid,
    subagent_type: &'static str,
    /// The message waits in the sub-agent's queue (it was busy).
    queued: bool,
}

#[derive(Debug)]
struct MessageAgent(Family);

#[async_trait::async_trait]
impl Tool for MessageAgent {
    fn name(&self) -> &str {
        MESSAGE_AGENT_TOOL
    }

    fn description(&self) -> &str {
        "Sends a message to a sub-agent of this chat: more instructions, a correction or a \
         follow-up question. It is queued while the sub-agent works, unless interrupt is \
         true. Call wait_agent afterwards for the answer."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<MessageArgs>()
    }

    fn available(&self, turn: &TurnContext) -> bool {
        // Not on plan turns (engine.md §8.2): a planning chat spawns and waits only.
        root_tools_allowed(turn) && !turn.plan_mode
    }

    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args: MessageArgs = match parse_arguments(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        match self.send(args).await {
            Ok(out) | Err(out) => out,
        }
    }
}

impl MessageAgent {
    async fn send(&self, args: MessageArgs) -> Result<ToolOutput, ToolOutput> {
        let family = &self.0;
        let child = family.child(args.chat_id).await?;
        let text = message_text(&args.message, "message")?;
        let sent = family
            .inner
            .store
            .send_message(
                child.chat.id,
                SendMessage {
                    parts: vec![ChatMessagePart::text(text)],
                    created_by: Some(child.chat.owner_id),
                    model_config_id: None,
                    busy_behavior: if args.interrupt {
                        ChatBusyBehavior::Interrupt
                    } else {
                        ChatBusyBehavior::Queue
                    },
                    plan_mode: None,
                    mcp_server_ids: None,
                },
            )
            .await;
        let sent = match sent {
            Ok(sent) => sent,
            Err(e) if e.kind().is_client_error() => return Err(ToolOutput::error(e.to_string())),
            Err(e) => return Err(internal(&e)),
        };
        let queued = matches!(sent.outcome, SendOutcome::Queued { .. });
        family.inner.publish(sent.transition).await;
        Ok(ToolOutput::json(&Messaged {
            chat_id: child.chat.id,
            subagent_type: child.subagent_type.as_str(),
            queued,
        }))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
struct CloseArgs {
    /// The sub-agent's chat id.
    chat_id: Uuid,
}

#[derive(Serialize)]
struct Closed {
    chat_id: Uuid,
    subagent_type: &'static str,
    status: ChatStatus,
}

#[derive(Debug)]
struct CloseAgent(Family);

#[async_trait::async_trait]
impl Tool for CloseAgent {
    fn name(&self) -> &str {
        CLOSE_AGENT_TOOL
    }

    fn description(&self) -> &str {
        "Stops a sub-agent of this chat: its current work is interrupted (what it wrote so \
         far is kept) and its commands stop. It can be messaged again later."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<CloseArgs>()
    }

    fn available(&self, turn: &TurnContext) -> bool {
        root_tools_allowed(turn) && !turn.plan_mode
    }

    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args: CloseArgs = match parse_arguments(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        let family = &self.0;
        let child = match family.child(args.chat_id).await {
            Ok(child) => child,
            Err(out) => return out,
        };
        let status = match interrupt_chat(&family.inner, child.chat.id).await {
            Ok(status) => status,
            Err(e) => return internal(&e),
        };
        ToolOutput::json(&Closed {
            chat_id: child.chat.id,
            subagent_type: child.subagent_type.as_str(),
            status,
        })
    }
}

/// Interrupts chat `chat_id` as the interrupt operation does (its workspace commands stop,
/// then the transition is published) and returns its status afterwards.
pub(crate) async fn interrupt_chat(inner: &Inner, chat_id: Uuid) -> crate::Result<ChatStatus> {
    let done = inner.store.interrupt(chat_id).await?;
    let status = done.status.clone();
    super::workspace::release(inner, chat_id, crate::workspace::ChatRelease::Interrupted).await;
    inner.publish(done).await;
    Ok(status)
}

/// Interrupts the busy children of `parent_chat_id` (interrupting a parent stops the work
/// it delegated). Failures are logged: the parent's own interrupt already happened.
pub(crate) async fn interrupt_children(inner: &Inner, parent_chat_id: Uuid) {
    let children = match inner.store.busy_children(parent_chat_id).await {
        Ok(children) => children,
        Err(e) => {
            tracing::warn!(%parent_chat_id, error = %e, "listing sub-agents to interrupt failed");
            return;
        }
    };
    for child in children {
        if let Err(e) = interrupt_chat(inner, child).await {
            tracing::warn!(%parent_chat_id, chat_id = %child, error = %e, "interrupting a sub-agent failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn wait_budget_defaults_and_clamps_at_the_maximum() {
        assert_eq!(wait_budget(None), DEFAULT_WAIT_AGENT_TIMEOUT);
        assert_eq!(wait_budget(Some(0)), Duration::ZERO);
        let max = MAX_WAIT_AGENT_TIMEOUT.as_secs();
        assert_eq!(wait_budget(Some(max)), MAX_WAIT_AGENT_TIMEOUT);
        assert_eq!(wait_budget(Some(max + 1)), MAX_WAIT_AGENT_TIMEOUT);
        assert_eq!(wait_budget(Some(u64::MAX)), MAX_WAIT_AGENT_TIMEOUT);
    }

    #[test]
    fn messages_are_bounded_at_the_limit() {
        assert!(message_text(&"a".repeat(MAX_SUBAGENT_MESSAGE_BYTES), "prompt").is_ok());
        let err = message_text(&"a".repeat(MAX_SUBAGENT_MESSAGE_BYTES + 1), "prompt").unwrap_err();
        assert!(err.is_error);
        assert!(message_text(" \n", "prompt").unwrap_err().is_error);
    }

    #[test]
    fn the_spawn_schema_advertises_only_available_types() {
        let schema = serde_json::to_value(schema_for::<SpawnSchema>()).unwrap();
        let types = &schema["properties"]["subagent_type"]["enum"];
        assert_eq!(types, &serde_json::json!(["general", "explore"]));
        let required = schema["required"].as_array().unwrap();
        assert!(required.contains(&serde_json::json!("subagent_type")));
        assert!(required.contains(&serde_json::json!("prompt")));
        assert!(!required.contains(&serde_json::json!("title")));
    }
}
