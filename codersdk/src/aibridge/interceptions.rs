//! Recorded interceptions of the AI Gateway and the sessions grouping them, named after
//! Coder's AI Bridge types (`AIBridgeInterception`, `AIBridgeSession`, …); chatd's records
//! carry more than Coder's (exact cost, the credential kind, the thread links), documented
//! in docs/ai-gateway-records.md.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::serde_util::null_as_default;
use crate::Timestamp;

/// The user a record is attributed to (Coder's `MinimalUser`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AIBridgeInitiator {
    /// User id.
    pub id: Uuid,
    /// Username.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Avatar URL (accounts have none here: always empty).
    #[serde(default)]
    pub avatar_url: String,
}

/// The tokens one interception used, normalized like chat usage (input excludes cache
/// reads and writes; reasoning is inside output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AIBridgeTokenUsage {
    /// The interception.
    pub interception_id: Uuid,
    /// Input tokens not served from cache.
    #[serde(default)]
    pub input_tokens: i64,
    /// Output tokens, reasoning included.
    #[serde(default)]
    pub output_tokens: i64,
    /// Tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: i64,
    /// Tokens written to the prompt cache.
    #[serde(default)]
    pub cache_creation_input_tokens: i64,
    /// Reasoning tokens (already inside `output_tokens`).
    #[serde(default)]
    pub reasoning_tokens: i64,
    /// When the usage was recorded (the end of the response).
    pub created_at: Timestamp,
}

/// The last user prompt of an interception's request, bounded (recorded unless the
/// deployment turned prompt recording off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AIBridgeUserPrompt {
    /// The interception.
    pub interception_id: Uuid,
    /// The prompt, cut at the deployment's bound on a character boundary.
    pub prompt: String,
    /// When the request arrived.
    pub created_at: Timestamp,
}

/// A tool call the model made in an interception's response (the arguments themselves are
/// not recorded, only their size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AIBridgeToolUsage {
    /// The interception.
    pub interception_id: Uuid,
    /// The provider's id of the call (`call_…`, `toolu_…`); empty when it gave none.
    #[serde(default)]
    pub call_id: String,
    /// The tool's name.
    pub tool: String,
    /// Size in bytes of the arguments the model sent.
    #[serde(default)]
    pub argument_bytes: i64,
    /// When the response ended.
    pub created_at: Timestamp,
}

/// How an interception failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AIBridgeInterceptionError {
    /// The classified kind (`rate_limit`, `auth`, …; chaterror's kinds).
    pub kind: String,
    /// The message, redacted.
    #[serde(default)]
    pub message: String,
}

/// One proxied LLM call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AIBridgeInterception {
    /// The interception's id.
    pub id: Uuid,
    /// Who made the call.
    pub initiator: AIBridgeInitiator,
    /// The provider instance's type (`openai`, `anthropic`).
    pub provider: String,
    /// The provider instance's name (the `{provider}` path segment).
    pub provider_name: String,
    /// The API called: `chat_completions`, `responses` or `messages`.
    pub api: String,
    /// The model the provider says answered (the requested one when it said nothing).
    pub model: String,
    /// The client, as named by its `User-Agent`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub client: Option<String>,
    /// The client's own session id, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub client_session_id: Option<String>,
    /// The session this call is grouped in (`GET /aibridge/sessions`).
    pub session_id: String,
    /// The interception whose tool calls this request answered, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub thread_parent_id: Option<Uuid>,
    /// The first interception of the thread (this one's own id when it has no parent).
    pub thread_root_id: Uuid,
    /// When the request arrived.
    pub started_at: Timestamp,
    /// When the response ended (last byte, failure or client disconnect).
    pub ended_at: Timestamp,
    /// The upstream's HTTP status; absent when no upstream answer arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub status: Option<i64>,
    /// The failure, when the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<AIBridgeInterceptionError>,
    /// Whether the client went away before the response ended.
    #[serde(default)]
    pub client_disconnected: bool,
    /// Whether the request asked for a stream.
    #[serde(default)]
    pub streamed: bool,
    /// `central` (the instance's key) or `byok` (the client's own key).
    pub credential_kind: String,
    /// A masked hint of the credential used upstream, never the key.
    #[serde(default)]
    pub credential_hint: String,
    /// `X-Coder-AI-Governance-Request-Id`, when the client sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub correlation_id: Option<String>,
    /// Exact cost in micro-USD from the price book; `null` when the model is unpriced.
    pub total_cost_micros: Option<i64>,
    /// Token usage (one entry when the provider reported usage). Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub token_usages: Vec<AIBridgeTokenUsage>,
    /// The user prompt (one entry when recorded). Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub user_prompts: Vec<AIBridgeUserPrompt>,
    /// Tool calls the model made, in order. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub tool_usages: Vec<AIBridgeToolUsage>,
}

/// Response of `GET /api/v2/aibridge/interceptions`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AIBridgeListInterceptionsResponse {
    /// The page. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub results: Vec<AIBridgeInterception>,
    /// Pass as `after_id` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub next_after_id: Option<Uuid>,
}

/// Token totals of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct AIBridgeSessionTokenUsageSummary {
    /// Σ input tokens (cache excluded).
    #[serde(default)]
    pub input_tokens: i64,
    /// Σ output tokens.
    #[serde(default)]
    pub output_tokens: i64,
    /// Σ cache-read tokens.
    #[serde(default)]
    pub cache_read_input_tokens: i64,
    /// Σ cache-write tokens.
    #[serde(default)]
    pub cache_creation_input_tokens: i64,
    /// Σ reasoning tokens.
    #[serde(default)]
    pub reasoning_tokens: i64,
}

/// The interceptions of one session: those sharing the client's session id, else one
/// thread (a call and the calls that answered its tool calls), else a single call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AIBridgeSession {
    /// The session id: the client's session id, or the thread root's interception id.
    pub id: String,
    /// Who made the calls.
    pub initiator: AIBridgeInitiator,
    /// Provider instance names used, sorted. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub providers: Vec<String>,
    /// Models that answered, sorted. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub models: Vec<String>,
    /// A client seen in the session (the greatest name when several), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub client: Option<String>,
    /// The first call's start.
    pub started_at: Timestamp,
    /// The last call's end.
    pub ended_at: Timestamp,
    /// Interceptions in the session.
    pub interception_count: i64,
    /// Distinct threads (thread roots) in the session.
    pub threads: i64,
    /// Tool calls made in the session.
    pub tool_call_count: i64,
    /// Token totals.
    pub token_usage_summary: AIBridgeSessionTokenUsageSummary,
    /// Σ exact cost in micro-USD of the priced calls.
    pub total_cost_micros: i64,
    /// Calls whose model had no price (not in `total_cost_micros`).
    #[serde(default)]
    pub unpriced_count: i64,
    /// The newest recorded user prompt, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub last_prompt: Option<String>,
}

/// Response of `GET /api/v2/aibridge/sessions`: the sessions that started most recently
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AIBridgeListSessionsResponse {
    /// The page. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sessions: Vec<AIBridgeSession>,
    /// An opaque cursor: pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub next_cursor: Option<String>,
}
