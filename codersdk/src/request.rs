//! Request and response bodies of the chat routes and dynamic tools.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::macros::string_enum;
use crate::serde_util::null_as_default;
use crate::{ChatClientType, ChatMessage, ChatPlanMode, ChatQueuedMessage, RawJson};

string_enum! {
    /// Type of a user input part. Requests compare it trimmed and case-insensitively
    /// (see [`crate::validate_input_parts`]).
    pub enum ChatInputPartType {
        /// Text.
        Text = "text",
        /// An uploaded file.
        File = "file",
        /// A reference to lines of a file.
        FileReference = "file-reference",
    }
}

/// One piece of user input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub struct ChatInputPart {
    /// `text`, `file` or `file-reference`.
    #[serde(rename = "type")]
    pub part_type: ChatInputPartType,
    /// Required (non-blank) for `text`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub text: String,
    /// Required for `file`: an uploaded chat file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub file_id: Option<Uuid>,
    /// Required for `file-reference`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub file_name: String,
    /// First line (`file-reference`).
    #[serde(default, skip_serializing_if = "crate::serde_util::is_zero_i64")]
    #[ts(as = "Option<_>", optional)]
    pub start_line: i64,
    /// Last line (`file-reference`).
    #[serde(default, skip_serializing_if = "crate::serde_util::is_zero_i64")]
    #[ts(as = "Option<_>", optional)]
    pub end_line: i64,
    /// The commented snippet (`file-reference`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub content: String,
}

impl ChatInputPart {
    /// A text input part.
    pub fn text(text: impl Into<String>) -> Self {
        ChatInputPart {
            part_type: ChatInputPartType::Text,
            text: text.into(),
            file_id: None,
            file_name: String::new(),
            start_line: 0,
            end_line: 0,
            content: String::new(),
        }
    }

    /// A file input part.
    pub fn file(file_id: Uuid) -> Self {
        ChatInputPart {
            part_type: ChatInputPartType::File,
            file_id: Some(file_id),
            ..ChatInputPart::text("")
        }
    }

    /// A file-reference input part.
    pub fn file_reference(
        file_name: impl Into<String>,
        start_line: i64,
        end_line: i64,
        content: impl Into<String>,
    ) -> Self {
        ChatInputPart {
            part_type: ChatInputPartType::FileReference,
            file_name: file_name.into(),
            start_line,
            end_line,
            content: content.into(),
            ..ChatInputPart::text("")
        }
    }
}

/// A client-executed tool declared at chat creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub struct DynamicTool {
    /// Unique, non-empty tool name.
    pub name: String,
    /// What the tool does, for the model.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub description: String,
    /// JSON Schema (an object) of the tool's arguments.
    #[ts(type = "Record<string, unknown>")]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub input_schema: RawJson,
}

/// Body of `POST /chats`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct CreateChatRequest {
    /// Owning organization. Older clients omit it; the server then uses the caller's only
    /// organization.
    /// An explicit nil UUID is rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(as = "Uuid")]
    pub organization_id: Option<Uuid>,
    /// The first message.
    #[serde(default, deserialize_with = "null_as_default")]
    pub content: Vec<ChatInputPart>,
    /// Per-chat system prompt (at most 10 000 characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub system_prompt: String,
    /// Workspace to bind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub workspace_id: Option<Uuid>,
    /// Model config; default: personal override, then deployment default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub model_config_id: Option<Uuid>,
    /// MCP servers to enable. Absent (or null): the enabled servers whose availability
    /// is `default_on`; `[]`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub mcp_server_ids: Option<Vec<Uuid>>,
    /// Labels.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub labels: BTreeMap<String, String>,
    /// Client-executed tools (at most 250, unique names).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub unsafe_dynamic_tools: Vec<DynamicTool>,
    /// `plan` to start in plan mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "\"plan\" | \"\"")]
    pub plan_mode: Option<ChatPlanMode>,
    /// `ui` or `api` (default `api`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub client_type: Option<ChatClientType>,
}

/// Body of `PATCH /chats/{chat}`. Absent fields are unchanged.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct UpdateChatRequest {
    /// New title (trimmed, 1–200 runes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub title: Option<String>,
    /// Archive or unarchive the whole chat tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub archived: Option<bool>,
    /// Rebind the workspace; the nil UUID unbinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub workspace_id: Option<Uuid>,
    /// 0 unpins; > 0 pins or moves (clamped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub pin_order: Option<i32>,
    /// Replaces all labels; `{}` clears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub labels: Option<BTreeMap<String, String>>,
    /// `plan` enters plan mode, `""` leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "\"plan\" | \"\"")]
    pub plan_mode: Option<ChatPlanMode>,
}

string_enum! {
    /// What to do with a message sent while the chat is busy.
    pub enum ChatBusyBehavior {
        /// Queue it (the default; `""` means this too).
        Queue = "queue",
        /// Queue it and interrupt the running turn.
        Interrupt = "interrupt",
    }
}

/// Body of `POST /chats/{chat}/messages`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct CreateChatMessageRequest {
    /// The message.
    #[serde(default, deserialize_with = "null_as_default")]
    pub content: Vec<ChatInputPart>,
    /// Switch model for this and later turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub model_config_id: Option<Uuid>,
    /// When present, replaces the chat's MCP selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub mcp_server_ids: Option<Vec<Uuid>>,
    /// `queue` (default) or `interrupt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub busy_behavior: Option<ChatBusyBehavior>,
    /// Toggle plan mode with the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "\"plan\" | \"\"")]
    pub plan_mode: Option<ChatPlanMode>,
}

/// Response of `POST /chats/{chat}/messages`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS)]
pub struct CreateChatMessageResponse {
    /// The inserted message (omitted when queued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub message: Option<ChatMessage>,
    /// The queue entry (omitted unless queued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub queued_message: Option<ChatQueuedMessage>,
    /// Whether the message was queued. Always present.
    #[serde(default)]
    pub queued: bool,
    /// Non-fatal problems.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::serde_util::null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub warnings: Vec<String>,
}

/// Body of `PATCH /chats/{chat}/messages/{message}`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct EditChatMessageRequest {
    /// The replacement content.
    #[serde(default, deserialize_with = "null_as_default")]
    pub content: Vec<ChatInputPart>,
}

/// Response of `PATCH /chats/{chat}/messages/{message}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct EditChatMessageResponse {
    /// The replacement message.
    pub message: ChatMessage,
    /// Non-fatal problems.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::serde_util::null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub warnings: Vec<String>,
}

/// The result of one dynamic tool call, submitted by the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub struct ToolResult {
    /// The call being answered.
    pub tool_call_id: String,
    /// The output: any JSON (a JSON string holding JSON is accepted too). Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(as = "RawJson")]
    #[schemars(with = "serde_json::Value")]
    pub output: Option<RawJson>,
    /// The tool failed.
    #[serde(default)]
    pub is_error: bool,
}

/// Body of `POST /chats/{chat}/tool-results`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct SubmitToolResultsRequest {
    /// One result per pending call.
    #[serde(default, deserialize_with = "null_as_default")]
    pub results: Vec<ToolResult>,
}

/// A pending dynamic tool call as clients receive it (`action_required`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub struct ChatStreamToolCall {
    /// Call id to answer in `tool-results`.
    pub tool_call_id: String,
    /// Tool name.
    pub tool_name: String,
    /// The arguments as a JSON text.
    pub args: String,
}

/// Coder's name for the same shape in its tool-call helpers.
pub type DynamicToolCall = ChatStreamToolCall;

/// A dynamic tool's answer in Coder's client helpers: text content and an error flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub struct DynamicToolResponse {
    /// The output text.
    pub content: String,
    /// The tool failed.
    pub is_error: bool,
}

/// Response of `POST /chats/{chat}/title/propose`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ProposeChatTitleResponse {
    /// The proposed title.
    pub title: String,
}
