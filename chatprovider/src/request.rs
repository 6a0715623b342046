//! The provider-neutral model request: what the engine asks any [`crate::LanguageModel`].

use codersdk::RawJson;

use crate::options::ProviderRequestOptions;

/// One call to a model: the conversation so far, the tools it may call, and sampling
/// settings. Each client translates it into its provider's wire format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelRequest {
    /// System prompt blocks, in order (default prompt, deployment prompt, chat prompt,
    /// user prompt…). Clients that support several system blocks send them separately;
    /// the others join them with a blank line.
    pub system: Vec<String>,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<ToolDefinition>,
    /// How the model must use the tools; `None` = provider default (auto).
    pub tool_choice: Option<ToolChoice>,
    /// Sampling and length settings.
    pub settings: CallSettings,
    /// Provider-specific options, already normalized from the model config.
    pub provider_options: Option<ProviderRequestOptions>,
    /// OpenAI Responses: continue from a stored response instead of resending history.
    pub previous_response_id: Option<String>,
    /// Correlation headers sent with the request.
    pub correlation: CorrelationHeaders,
}

/// Sampling and length settings from the model call config.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallSettings {
    /// Maximum output tokens.
    pub max_output_tokens: Option<i64>,
    /// Temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling.
    pub top_k: Option<i64>,
    /// Presence penalty.
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f64>,
}

impl From<&codersdk::ChatModelCallConfig> for CallSettings {
    fn from(c: &codersdk::ChatModelCallConfig) -> Self {
        CallSettings {
            max_output_tokens: c.max_output_tokens,
            temperature: c.temperature,
            top_p: c.top_p,
            top_k: c.top_k,
            presence_penalty: c.presence_penalty,
            frequency_penalty: c.frequency_penalty,
        }
    }
}

/// Headers that let a provider (or gateway) attribute a request to a chat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorrelationHeaders {
    /// `X-Coder-Owner-Id`: the chat owner.
    pub owner_id: Option<String>,
    /// `X-Coder-Chat-Id`: the root chat.
    pub chat_id: Option<String>,
    /// `X-Coder-Subchat-Id`: the sub-agent chat, when not the root.
    pub subchat_id: Option<String>,
    /// `X-Coder-Workspace-Id`: the bound workspace.
    pub workspace_id: Option<String>,
}

impl CorrelationHeaders {
    /// The headers that are set, as `(name, value)` pairs.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        let fields = [
            ("X-Coder-Owner-Id", &self.owner_id),
            ("X-Coder-Chat-Id", &self.chat_id),
            ("X-Coder-Subchat-Id", &self.subchat_id),
            ("X-Coder-Workspace-Id", &self.workspace_id),
        ];
        for (name, value) in fields {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                out.push((name, v));
            }
        }
        out
    }
}

/// Who speaks a [`Message`]. System instructions travel in [`ModelRequest::system`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// The user.
    User,
    /// The model.
    Assistant,
    /// Results of tool calls, answering the preceding assistant message.
    Tool,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Content, in order.
    pub content: Vec<Part>,
}

impl Message {
    /// A user message with one text part.
    pub fn user_text(text: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: vec![Part::Text { text: text.into() }],
        }
    }

    /// An assistant message with one text part.
    pub fn assistant_text(text: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: vec![Part::Text { text: text.into() }],
        }
    }
}

/// A piece of message content.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Part {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// A file (image, PDF, text) sent inline.
    File {
        /// MIME type.
        media_type: String,
        /// Raw bytes.
        data: Vec<u8>,
        /// Original file name, when known.
        filename: Option<String>,
    },
    /// Reasoning the model produced earlier, replayed so it can continue it.
    Reasoning {
        /// Reasoning text or summary.
        text: String,
        /// Anthropic: the signature of a thinking block.
        signature: Option<String>,
        /// Anthropic: redacted thinking data.
        redacted_data: Option<String>,
        /// OpenAI Responses: the reasoning item id.
        item_id: Option<String>,
        /// OpenAI Responses: the encrypted reasoning content.
        encrypted_content: Option<String>,
    },
    /// A tool call the model made.
    ToolCall {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments (a JSON object).
        arguments: RawJson,
        /// Executed by the provider itself (e.g. web search).
        provider_executed: bool,
        /// Gemini: the thought signature the API attached to this call, sent back with it.
        thought_signature: Option<String>,
    },
    /// The result of a tool call.
    ToolResult {
        /// The call answered.
        tool_call_id: String,
        /// Tool name.
        name: String,
        /// Output (any JSON; a string is sent as text).
        output: RawJson,
        /// The tool failed.
        is_error: bool,
    },
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    /// Name (unique in the request).
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the arguments (an object).
    pub input_schema: RawJson,
}

/// How the model must use the tools.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This tool.
    Tool(String),
}
