//! Messages: [`ChatMessage`], the flat [`ChatMessagePart`], usage and the queue.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::macros::string_enum;
use crate::serde_util::is_false;
use crate::{RawJson, Timestamp};

string_enum! {
    /// Who authored a message.
    pub enum ChatMessageRole {
        /// System instructions.
        System = "system",
        /// The user.
        User = "user",
        /// The model.
        Assistant = "assistant",
        /// A tool result.
        Tool = "tool",
    }
}

string_enum! {
    /// The discriminator of a [`ChatMessagePart`].
    pub enum ChatMessagePartType {
        /// Text (`text` holds it; in stream deltas, the increment).
        Text = "text",
        /// Model reasoning.
        Reasoning = "reasoning",
        /// A tool call.
        ToolCall = "tool-call",
        /// A tool result.
        ToolResult = "tool-result",
        /// A cited source.
        Source = "source",
        /// A file (inline bytes or an uploaded file id).
        File = "file",
        /// A reference to lines of a file (a diff comment).
        FileReference = "file-reference",
        /// An instruction file loaded into context (e.g. AGENTS.md).
        ContextFile = "context-file",
        /// A skill discovered in the workspace.
        Skill = "skill",
    }
}

/// Token usage of one assistant step. Every field is optional and omitted when unknown.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct ChatMessageUsage {
    /// Input tokens not served from cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub input_tokens: Option<i64>,
    /// Output tokens, reasoning included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub output_tokens: Option<i64>,
    /// Total tokens: input + output + cache read + cache write as normalized (equal to the
    /// provider's own total wherever a provider reports one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub total_tokens: Option<i64>,
    /// Reasoning tokens (already inside `output_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reasoning_tokens: Option<i64>,
    /// Tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub cache_creation_tokens: Option<i64>,
    /// Tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub cache_read_tokens: Option<i64>,
    /// The model's context window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub context_limit: Option<i64>,
}

impl ChatMessageUsage {
    /// Whether every field is unknown (the message then omits `usage`).
    pub fn is_empty(&self) -> bool {
        *self == ChatMessageUsage::default()
    }
}

fn usage_is_empty(u: &Option<ChatMessageUsage>) -> bool {
    u.as_ref().is_none_or(ChatMessageUsage::is_empty)
}

/// One piece of message content: a single flat object discriminated by `type`.
///
/// The JSON is also the storage format, so it follows Coder byte for byte: a field that
/// some variant *requires* (`text`, `url`, `media_type`, `file_name`, `start_line`,
/// `end_line`, `content`, `context_file_path`, `skill_name`) is written on **every** part,
/// with its zero value when it does not apply; every other field is omitted when zero.
/// Build parts with the constructors ([`ChatMessagePart::text`], …) and call
/// [`ChatMessagePart::strip_internal`] before sending a part to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessagePart {
    /// The discriminator.
    #[serde(rename = "type")]
    pub part_type: ChatMessagePartType,
    /// Text content (`text`, `reasoning`); in stream deltas, the increment.
    #[serde(default)]
    pub text: String,
    /// Provider reasoning signature (internal).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
    /// Tool call id (`tool-call`, `tool-result`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_call_id: String,
    /// Tool name (`tool-call`, `tool-result`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_name: String,
    /// MCP server the tool came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_server_config_id: Option<Uuid>,
    /// Complete tool arguments (`tool-call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<RawJson>,
    /// Streaming chunk of argument JSON text (`tool-call`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub args_delta: String,
    /// Parsed shell commands of execute-style tools (`tool-call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parsed_commands: Option<Vec<Vec<String>>>,
    /// Tool output (`tool-result`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RawJson>,
    /// Streaming chunk of tool output.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub result_delta: String,
    /// The streamed result must be discarded.
    #[serde(default, skip_serializing_if = "is_false")]
    pub result_reset: bool,
    /// The tool result is an error.
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_error: bool,
    /// The tool result carries media rather than text.
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_media: bool,
    /// Source id (`source`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_id: String,
    /// Source URL (`source`, required).
    #[serde(default)]
    pub url: String,
    /// Source title (`source`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// MIME type (`file`, required).
    #[serde(default)]
    pub media_type: String,
    /// Original file name (`file`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Inline bytes, base64 (`file`); stripped from output when `file_id` is set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// Uploaded chat file (`file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<Uuid>,
    /// Path of the referenced file (`file-reference`, required).
    #[serde(default)]
    pub file_name: String,
    /// First line of the range (`file-reference`, required).
    #[serde(default)]
    pub start_line: i64,
    /// Last line of the range (`file-reference`, required).
    #[serde(default)]
    pub end_line: i64,
    /// The commented snippet (`file-reference`, required).
    #[serde(default)]
    pub content: String,
    /// Provider hints such as cache control (internal; stripped from output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<RawJson>,
    /// Executed by the provider itself (e.g. provider web search).
    #[serde(default, skip_serializing_if = "is_false")]
    pub provider_executed: bool,
    /// Tool arguments were rewritten by a hook.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hook_rewritten: bool,
    /// When the call, result or reasoning started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// When the reasoning finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    /// Absolute path of the instruction file (`context-file`, required).
    #[serde(default)]
    pub context_file_path: String,
    /// Instruction file content (internal; blanked in output).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context_file_content: String,
    /// The instruction file exceeded the 64 KiB limit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub context_file_truncated: bool,
    /// Workspace agent that provided the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_file_agent_id: Option<Uuid>,
    /// Operating system of the agent (internal; blanked in output).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context_file_os: String,
    /// Working directory of the agent (internal; blanked in output).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context_file_directory: String,
    /// Skill name (`skill`, required).
    #[serde(default)]
    pub skill_name: String,
    /// Skill description (`skill`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub skill_description: String,
    /// Skill directory (internal; stripped).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub skill_dir: String,
    /// Skill meta file (internal; stripped).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context_file_skill_meta_file: String,
}

impl ChatMessagePart {
    /// An empty part of the given type.
    pub fn new(part_type: ChatMessagePartType) -> Self {
        ChatMessagePart {
            part_type,
            text: String::new(),
            signature: String::new(),
            tool_call_id: String::new(),
            tool_name: String::new(),
            mcp_server_config_id: None,
            args: None,
            args_delta: String::new(),
            parsed_commands: None,
            result: None,
            result_delta: String::new(),
            result_reset: false,
            is_error: false,
            is_media: false,
            source_id: String::new(),
            url: String::new(),
            title: String::new(),
            media_type: String::new(),
            name: String::new(),
            data: String::new(),
            file_id: None,
            file_name: String::new(),
            start_line: 0,
            end_line: 0,
            content: String::new(),
            provider_metadata: None,
            provider_executed: false,
            hook_rewritten: false,
            created_at: None,
            completed_at: None,
            context_file_path: String::new(),
            context_file_content: String::new(),
            context_file_truncated: false,
            context_file_agent_id: None,
            context_file_os: String::new(),
            context_file_directory: String::new(),
            skill_name: String::new(),
            skill_description: String::new(),
            skill_dir: String::new(),
            context_file_skill_meta_file: String::new(),
        }
    }

    /// A `text` part.
    pub fn text(text: impl Into<String>) -> Self {
        ChatMessagePart {
            text: text.into(),
            ..Self::new(ChatMessagePartType::Text)
        }
    }

    /// A `reasoning` part.
    pub fn reasoning(text: impl Into<String>) -> Self {
        ChatMessagePart {
            text: text.into(),
            ..Self::new(ChatMessagePartType::Reasoning)
        }
    }

    /// A complete `tool-call` part.
    pub fn tool_call(id: impl Into<String>, name: impl Into<String>, args: RawJson) -> Self {
        ChatMessagePart {
            tool_call_id: id.into(),
            tool_name: name.into(),
            args: Some(args),
            ..Self::new(ChatMessagePartType::ToolCall)
        }
    }

    /// A `tool-result` part.
    pub fn tool_result(
        id: impl Into<String>,
        name: impl Into<String>,
        result: RawJson,
        is_error: bool,
    ) -> Self {
        ChatMessagePart {
            tool_call_id: id.into(),
            tool_name: name.into(),
            result: Some(result),
            is_error,
            ..Self::new(ChatMessagePartType::ToolResult)
        }
    }

    /// An error `tool-result` part: `result` is `{"error": message}` and `is_error` is set.
    /// The one shape the engine uses for every failure it reports in place of a tool's
    /// output (unknown tool, timeout, panic, interruption), so models and UIs see one form.
    pub fn tool_error(
        id: impl Into<String>,
        name: impl Into<String>,
        message: impl AsRef<str>,
    ) -> Self {
        // A one-key object of a string cannot fail to encode, nor exceed the depth limit.
        let result = RawJson::from_value(&serde_json::json!({ "error": message.as_ref() }))
            .unwrap_or_else(|_| RawJson::null());
        Self::tool_result(id, name, result, true)
    }

    /// A `source` part.
    pub fn source(url: impl Into<String>, title: impl Into<String>) -> Self {
        ChatMessagePart {
            url: url.into(),
            title: title.into(),
            ..Self::new(ChatMessagePartType::Source)
        }
    }

    /// A `file` part referencing an uploaded file.
    pub fn file(file_id: Uuid, media_type: impl Into<String>) -> Self {
        ChatMessagePart {
            file_id: Some(file_id),
            media_type: media_type.into(),
            ..Self::new(ChatMessagePartType::File)
        }
    }

    /// A `file-reference` part.
    pub fn file_reference(
        file_name: impl Into<String>,
        start_line: i64,
        end_line: i64,
        content: impl Into<String>,
    ) -> Self {
        ChatMessagePart {
            file_name: file_name.into(),
            start_line,
            end_line,
            content: content.into(),
            ..Self::new(ChatMessagePartType::FileReference)
        }
    }

    /// Applies the output stripping rule before a part leaves the server: drops
    /// provider metadata, drops inline `data` when `file_id` is set, and blanks
    /// context-file and skill internals. Deltas are kept.
    pub fn strip_internal(&mut self) {
        self.provider_metadata = None;
        if self.file_id.is_some() {
            self.data.clear();
        }
        self.context_file_content.clear();
        self.context_file_os.clear();
        self.context_file_directory.clear();
        self.skill_dir.clear();
        self.context_file_skill_meta_file.clear();
    }

    /// A stripped copy (see [`Self::strip_internal`]).
    pub fn stripped(&self) -> Self {
        let mut p = self.clone();
        p.strip_internal();
        p
    }
}

/// A persisted chat message as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ChatMessage {
    /// Monotonic 64-bit id; the paging cursor.
    pub id: i64,
    /// The chat.
    pub chat_id: Uuid,
    /// Author of a user message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub created_by: Option<Uuid>,
    /// Model config in effect for the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub model_config_id: Option<Uuid>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Author role.
    pub role: ChatMessageRole,
    /// Content parts; omitted when empty.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::serde_util::null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub content: Vec<ChatMessagePart>,
    /// Token usage; omitted when every field is unknown.
    #[serde(default, skip_serializing_if = "usage_is_empty")]
    #[ts(optional)]
    pub usage: Option<ChatMessageUsage>,
    /// Exact cost of the model call that wrote this message, in micro-USD; omitted when
    /// unknown (user and tool messages, unpriced models). chatd's addition to Coder's type
    /// (Coder keeps the column but reports cost only in aggregates), so a page can show
    /// what each reply cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub total_cost_micros: Option<i64>,
}

/// A message waiting in a chat's queue while the chat is busy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ChatQueuedMessage {
    /// Queue entry id (path parameter of delete / promote).
    pub id: i64,
    /// The chat.
    pub chat_id: Uuid,
    /// Model requested with the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub model_config_id: Option<Uuid>,
    /// Content, already converted from input parts. Never null.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub content: Vec<ChatMessagePart>,
    /// When it was queued.
    pub created_at: Timestamp,
}

/// Response of `GET /chats/{chat}/messages`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS)]
pub struct ChatMessagesResponse {
    /// The page of messages. Never null.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub messages: Vec<ChatMessage>,
    /// The queue (only when no cursor was given). Never null.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub queued_messages: Vec<ChatQueuedMessage>,
    /// More messages exist beyond this page.
    #[serde(default)]
    pub has_more: bool,
}

// ----- TypeScript: the flat part is described as Coder's generator describes it, a union
// of per-type interfaces discriminated on `type`. Fields another variant requires are
// still sent (with zero values) but, as in Coder's types, are not declared per variant.

macro_rules! ts_part_variant {
    ($ty:ident, $name:literal, $body:literal) => {
        struct $ty;
        impl ts_rs::TS for $ty {
            type WithoutGenerics = Self;
            type OptionInnerType = Self;
            fn name(_: &ts_rs::Config) -> String {
                $name.to_owned()
            }
            fn inline(_: &ts_rs::Config) -> String {
                $body.to_owned()
            }
            fn decl(_: &ts_rs::Config) -> String {
                format!("type {} = {};", $name, $body)
            }
            fn decl_concrete(cfg: &ts_rs::Config) -> String {
                <Self as ts_rs::TS>::decl(cfg)
            }
            fn output_path() -> Option<std::path::PathBuf> {
                Some(std::path::PathBuf::from(concat!($name, ".ts")))
            }
        }
    };
}

ts_part_variant!(TsText, "ChatTextPart", r#"{ type: "text", text: string, }"#);
ts_part_variant!(
    TsReasoning,
    "ChatReasoningPart",
    r#"{ type: "reasoning", text: string, created_at?: string, completed_at?: string, }"#
);
ts_part_variant!(
    TsToolCall,
    "ChatToolCallPart",
    r#"{ type: "tool-call", tool_call_id?: string, tool_name?: string, mcp_server_config_id?: string, args?: unknown, args_delta?: string, parsed_commands?: Array<Array<string>>, provider_executed?: boolean, hook_rewritten?: boolean, created_at?: string, }"#
);
ts_part_variant!(
    TsToolResult,
    "ChatToolResultPart",
    r#"{ type: "tool-result", tool_call_id?: string, tool_name?: string, mcp_server_config_id?: string, result?: unknown, result_delta?: string, result_reset?: boolean, is_error?: boolean, is_media?: boolean, provider_executed?: boolean, created_at?: string, }"#
);
ts_part_variant!(
    TsSource,
    "ChatSourcePart",
    r#"{ type: "source", url: string, source_id?: string, title?: string, }"#
);
ts_part_variant!(
    TsFile,
    "ChatFilePart",
    r#"{ type: "file", media_type: string, name?: string, data?: string, file_id?: string, }"#
);
ts_part_variant!(
    TsFileReference,
    "ChatFileReferencePart",
    r#"{ type: "file-reference", file_name: string, start_line: number, end_line: number, content: string, }"#
);
ts_part_variant!(
    TsContextFile,
    "ChatContextFilePart",
    r#"{ type: "context-file", context_file_path: string, context_file_truncated?: boolean, context_file_agent_id?: string, }"#
);
ts_part_variant!(
    TsSkill,
    "ChatSkillPart",
    r#"{ type: "skill", skill_name: string, skill_description?: string, }"#
);

const PART_VARIANTS: &str = "ChatTextPart | ChatReasoningPart | ChatToolCallPart | ChatToolResultPart | ChatSourcePart | ChatFilePart | ChatFileReferencePart | ChatContextFilePart | ChatSkillPart";

impl TS for ChatMessagePart {
    type WithoutGenerics = Self;
    type OptionInnerType = Self;
    fn docs() -> Option<String> {
        Some(
            "/**\n * One piece of message content, discriminated on `type`. On the wire every part also\n * carries the fields other variants require, with zero values.\n */\n"
                .to_owned(),
        )
    }
    fn name(_: &ts_rs::Config) -> String {
        "ChatMessagePart".to_owned()
    }
    fn inline(_: &ts_rs::Config) -> String {
        PART_VARIANTS.to_owned()
    }
    fn decl(_: &ts_rs::Config) -> String {
        format!("type ChatMessagePart = {PART_VARIANTS};")
    }
    fn decl_concrete(cfg: &ts_rs::Config) -> String {
        <Self as TS>::decl(cfg)
    }
    fn output_path() -> Option<std::path::PathBuf> {
        Some(std::path::PathBuf::from("ChatMessagePart.ts"))
    }
    fn visit_dependencies(v: &mut impl ts_rs::TypeVisitor)
    where
        Self: 'static,
    {
        v.visit::<TsText>();
        v.visit::<TsReasoning>();
        v.visit::<TsToolCall>();
        v.visit::<TsToolResult>();
        v.visit::<TsSource>();
        v.visit::<TsFile>();
        v.visit::<TsFileReference>();
        v.visit::<TsContextFile>();
        v.visit::<TsSkill>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_error_escapes_the_message_into_an_error_object() {
        let p = ChatMessagePart::tool_error("c1", "ls", "bad \"quote\"");
        assert!(p.is_error);
        assert_eq!(p.part_type, ChatMessagePartType::ToolResult);
        let result = p.result.map(|r| r.get().to_owned()).unwrap_or_default();
        assert_eq!(result, r#"{"error":"bad \"quote\""}"#);
    }

    #[test]
    fn required_fields_are_emitted_on_every_part() {
        let p = ChatMessagePart::tool_call("call_1", "ls", RawJson::empty_object());
        let json = serde_json::to_string(&p).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"type":"tool-call","text":"","tool_call_id":"call_1","tool_name":"ls","args":{},"url":"","media_type":"","file_name":"","start_line":0,"end_line":0,"content":"","context_file_path":"","skill_name":""}"#
        );
    }

    #[test]
    fn strip_rule() {
        let mut p = ChatMessagePart::file(Uuid::nil(), "image/png");
        p.data = "aGk=".into();
        p.provider_metadata = Some(RawJson::empty_object());
        p.strip_internal();
        assert!(p.data.is_empty());
        assert!(p.provider_metadata.is_none());
        let mut inline = ChatMessagePart::new(ChatMessagePartType::File);
        inline.data = "aGk=".into();
        inline.strip_internal();
        assert_eq!(inline.data, "aGk=", "inline data without file_id is kept");
    }

    #[test]
    fn unknown_part_type_is_kept() {
        let p: ChatMessagePart =
            serde_json::from_str(r#"{"type":"hook-notice","text":"x","future":1}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.part_type,
            ChatMessagePartType::Unknown("hook-notice".into())
        );
        assert_eq!(p.text, "x");
    }

    #[test]
    fn usage_omitted_when_all_null() {
        let m = ChatMessage {
            id: 1,
            chat_id: Uuid::nil(),
            created_by: None,
            model_config_id: None,
            created_at: "2026-01-01T00:00:00Z"
                .parse()
                .unwrap_or_else(|_| Timestamp::now()),
            role: ChatMessageRole::Assistant,
            content: vec![],
            usage: Some(ChatMessageUsage::default()),
            total_cost_micros: None,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap_or_default(),
            r#"{"id":1,"chat_id":"00000000-0000-0000-0000-000000000000","created_at":"2026-01-01T00:00:00Z","role":"assistant"}"#
        );
    }
}
