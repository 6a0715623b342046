//! One intercepted call: its start, its complete record, and the sink both go to.

use chatprovider::gateway::WireApi;
use codersdk::{ChatMessageUsage, Timestamp};
use uuid::Uuid;

/// How the request was authenticated towards the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// The instance's own (the organization's) key replaced the client's chatd token.
    Central,
    /// The client's own provider key was passed through (never stored).
    Byok,
}

impl CredentialKind {
    /// The name stored and shown: `central` or `byok`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Central => "central",
            CredentialKind::Byok => "byok",
        }
    }
}

/// A tool call the model made in its response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolUsage {
    /// The provider's id of the call (`call_…`, `toolu_…`), empty when it gave none.
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// Size in bytes of the arguments the model sent (the arguments themselves are not
    /// recorded).
    pub argument_bytes: u64,
}

/// What is known when a call starts, before the upstream answers.
#[derive(Clone, Debug)]
pub struct InterceptionStart {
    /// The interception's id (the record's id).
    pub id: Uuid,
    /// The chatd user the call is attributed to.
    pub user_id: Uuid,
    /// The provider instance's name (the `{provider}` path segment).
    pub provider_name: String,
    /// The instance's type: `openai` or `anthropic`.
    pub provider_type: String,
    /// The API called.
    pub api: WireApi,
    /// The model the request asked for.
    pub model: String,
    /// Whether the request asked for a stream.
    pub streamed: bool,
    /// Central key or the client's own.
    pub credential_kind: CredentialKind,
    /// A masked hint of the credential used upstream (`sk-a…wxyz`), never the key.
    pub credential_hint: String,
    /// The client's session id (from its session header or the body's metadata).
    pub client_session_id: Option<String>,
    /// The client, as named by its `User-Agent` (`claude-code`, `codex`, …), if known.
    pub client: Option<String>,
    /// `X-Coder-AI-Governance-Request-Id`, for log correlation.
    pub correlation_id: Option<String>,
    /// Ids of earlier tool calls whose results this request carries: the recorder links the
    /// interception to the one that made them (its thread parent and root).
    pub tool_result_call_ids: Vec<String>,
    /// The last user prompt, bounded; `None` when prompt recording is off or there is none.
    pub prompt: Option<String>,
    /// When the request arrived.
    pub started_at: Timestamp,
}

/// One proxied call, complete: written once, after the response ended (or failed).
#[derive(Clone, Debug)]
pub struct InterceptionRecord {
    /// What was known at the start.
    pub start: InterceptionStart,
    /// The model the provider says answered (falls back to the requested one).
    pub model: String,
    /// When the response ended (last byte, error or client disconnect).
    pub ended_at: Timestamp,
    /// The HTTP status the upstream answered; `None` when no upstream answer arrived.
    pub upstream_status: Option<u16>,
    /// The classified failure (`rate_limit`, `auth`, …) when the call failed, upstream or
    /// on the way; `None` on success.
    pub error_kind: Option<codersdk::ChatErrorKind>,
    /// The failure's message, redacted; `None` on success.
    pub error_message: Option<String>,
    /// Whether the client went away before the response ended.
    pub client_disconnected: bool,
    /// Usage, normalized like the chat engine's (input excludes cache reads and writes).
    pub usage: ChatMessageUsage,
    /// Tool calls the model made.
    pub tool_calls: Vec<ToolUsage>,
    /// Reasoning ("thinking") text the model streamed, bounded; logged as `model_thought`.
    pub thoughts: Vec<String>,
}

/// Where the gateway hands its records. Implementations must return at once: a slow
/// database must never slow a stream.
pub trait InterceptionSink: Send + Sync + std::fmt::Debug {
    /// A call started (logged as `interception_start`).
    fn started(&self, start: &InterceptionStart);
    /// A call ended: persist it (cost from the price book, thread links), log the end,
    /// usage, prompt, tool and thought records.
    fn finished(&self, record: InterceptionRecord);
}
