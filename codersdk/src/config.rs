//! Bodies of the `/chats/config/…` endpoints and the debug-run types.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::macros::string_enum;
use crate::serde_util::null_as_default;
use crate::{RawJson, Timestamp};

/// Response of `GET /chats/config/system-prompt` (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatSystemPromptResponse {
    /// The deployment's custom prompt.
    pub system_prompt: String,
    /// Whether the built-in default prompt is included before it.
    pub include_default_system_prompt: bool,
    /// The built-in default prompt.
    pub default_system_prompt: String,
}

/// Body of `PUT /chats/config/system-prompt`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct UpdateChatSystemPromptRequest {
    /// The custom prompt (at most 128 KiB).
    pub system_prompt: String,
    /// Include the built-in default prompt (unchanged when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub include_default_system_prompt: Option<bool>,
}

/// `GET /chats/config/plan-mode-instructions`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct ChatPlanModeInstructionsResponse {
    /// Text appended to the prompt in plan mode.
    pub plan_mode_instructions: String,
}

/// Body of `PUT /chats/config/plan-mode-instructions`.
pub type UpdateChatPlanModeInstructionsRequest = ChatPlanModeInstructionsResponse;

/// `GET/PUT /chats/config/desktop-enabled`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct ChatDesktopEnabledResponse {
    /// Desktop (computer use) is enabled.
    pub enable_desktop: bool,
}

/// Body of `PUT /chats/config/desktop-enabled`.
pub type UpdateChatDesktopEnabledRequest = ChatDesktopEnabledResponse;

string_enum! {
    /// Provider used for computer use.
    pub enum ChatComputerUseProvider {
        /// Anthropic.
        Anthropic = "anthropic",
        /// OpenAI.
        Openai = "openai",
    }
}

/// `GET/PUT /chats/config/computer-use-provider`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub struct ChatComputerUseProviderResponse {
    /// The provider.
    pub provider: ChatComputerUseProvider,
}

/// Body of `PUT /chats/config/computer-use-provider`.
pub type UpdateChatComputerUseProviderRequest = ChatComputerUseProviderResponse;

/// `GET /chats/config/debug-logging` (admin).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct ChatDebugLoggingAdminSettings {
    /// Users may turn on debug logging for themselves.
    pub allow_users: bool,
    /// The deployment forces debug logging on.
    pub forced_by_deployment: bool,
}

/// Body of `PUT /chats/config/debug-logging`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct UpdateChatDebugLoggingAllowUsersRequest {
    /// Users may turn on debug logging.
    pub allow_users: bool,
}

/// `GET /chats/config/user-debug-logging`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct UserChatDebugLoggingSettings {
    /// Debug logging is on for the caller.
    pub debug_logging_enabled: bool,
    /// The caller may toggle it.
    pub user_toggle_allowed: bool,
    /// The deployment forces it on.
    pub forced_by_deployment: bool,
}

/// Body of `PUT /chats/config/user-debug-logging`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct UpdateUserChatDebugLoggingRequest {
    /// Turn it on or off.
    pub debug_logging_enabled: bool,
}

/// `GET/PUT /chats/config/advisor`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct AdvisorConfig {
    /// The advisor is enabled.
    pub enabled: bool,
    /// Calls per run.
    pub max_uses_per_run: i64,
    /// Output token cap per call.
    pub max_output_tokens: i64,
    /// Model used (empty = default).
    #[serde(default)]
    pub model_config_id: String,
    /// `""`, `low`, `medium` or `high`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub reasoning_effort: String,
}

/// Body of `PUT /chats/config/advisor`.
pub type UpdateAdvisorConfigRequest = AdvisorConfig;

/// `GET/PUT /chats/config/user-prompt`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct UserChatCustomPrompt {
    /// The user's personal prompt.
    pub custom_prompt: String,
}

/// One per-model compaction threshold of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct UserChatCompactionThreshold {
    /// Model config.
    pub model_config_id: Uuid,
    /// Percent of the context limit (0–100).
    pub threshold_percent: i32,
}

/// `GET /chats/config/user-compaction-thresholds`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct UserChatCompactionThresholds {
    /// Thresholds. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub thresholds: Vec<UserChatCompactionThreshold>,
}

/// Body of `PUT /chats/config/user-compaction-thresholds/{modelConfig}`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct UpdateUserChatCompactionThresholdRequest {
    /// Percent (0–100).
    pub threshold_percent: i32,
}

/// `GET/PUT /chats/config/workspace-ttl`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct ChatWorkspaceTTLResponse {
    /// 0 = disabled, else 1 minute … 30 days, in milliseconds.
    pub workspace_ttl_ms: i64,
}

/// Body of `PUT /chats/config/workspace-ttl`.
pub type UpdateChatWorkspaceTTLRequest = ChatWorkspaceTTLResponse;

/// `GET/PUT /chats/config/retention-days`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct ChatRetentionDaysResponse {
    /// 0–3650; 0 keeps forever.
    pub retention_days: i32,
}

/// Body of `PUT /chats/config/retention-days`.
pub type UpdateChatRetentionDaysRequest = ChatRetentionDaysResponse;

/// `GET/PUT /chats/config/debug-retention-days`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct ChatDebugRetentionDaysResponse {
    /// 0–3650 (default 30).
    pub debug_retention_days: i32,
}

/// Body of `PUT /chats/config/debug-retention-days`.
pub type UpdateChatDebugRetentionDaysRequest = ChatDebugRetentionDaysResponse;

/// `GET/PUT /chats/config/auto-archive-days`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct ChatAutoArchiveDaysResponse {
    /// 0–3650; 0 disables.
    pub auto_archive_days: i32,
}

/// Body of `PUT /chats/config/auto-archive-days`.
pub type UpdateChatAutoArchiveDaysRequest = ChatAutoArchiveDaysResponse;

/// `GET/PUT /chats/config/template-allowlist`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct ChatTemplateAllowlist {
    /// Allowed template ids. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub template_ids: Vec<Uuid>,
}

/// Body of `PUT /chats/config/template-allowlist`.
pub type UpdateChatTemplateAllowlistRequest = ChatTemplateAllowlist;

string_enum! {
    /// Kind of a debug run.
    pub enum ChatDebugRunKind {
        /// A chat turn.
        ChatTurn = "chat_turn",
        /// Title generation.
        TitleGeneration = "title_generation",
        /// A quick generation (summary, label).
        Quickgen = "quickgen",
        /// Context compaction.
        Compaction = "compaction",
    }
}

string_enum! {
    /// Status of a debug run or step.
    pub enum ChatDebugStatus {
        /// Still running.
        InProgress = "in_progress",
        /// Finished.
        Completed = "completed",
        /// Failed.
        Error = "error",
        /// Interrupted.
        Interrupted = "interrupted",
    }
}

string_enum! {
    /// Model operation of a debug step.
    pub enum ChatDebugStepOperation {
        /// Streaming call.
        Stream = "stream",
        /// Non-streaming call.
        Generate = "generate",
    }
}

/// Summary of a debug run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatDebugRunSummary {
    /// Run id.
    pub id: Uuid,
    /// The chat.
    pub chat_id: Uuid,
    /// Kind.
    pub kind: ChatDebugRunKind,
    /// Status.
    pub status: ChatDebugStatus,
    /// Provider id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub provider: Option<String>,
    /// Model id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub model: Option<String>,
    /// Free-form summary object.
    #[ts(type = "Record<string, unknown>")]
    pub summary: RawJson,
    /// Start.
    pub started_at: Timestamp,
    /// Last update.
    pub updated_at: Timestamp,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub finished_at: Option<Timestamp>,
}

/// One model call of a debug run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatDebugStep {
    /// Step id.
    pub id: Uuid,
    /// Run id.
    pub run_id: Uuid,
    /// The chat.
    pub chat_id: Uuid,
    /// 1-based step number.
    pub step_number: i32,
    /// Operation.
    pub operation: ChatDebugStepOperation,
    /// Status.
    pub status: ChatDebugStatus,
    /// Newest message in the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub history_tip_message_id: Option<i64>,
    /// Assistant message produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub assistant_message_id: Option<i64>,
    /// Provider-neutral request.
    #[ts(type = "Record<string, unknown>")]
    pub normalized_request: RawJson,
    /// Provider-neutral response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "Record<string, unknown>")]
    pub normalized_response: Option<RawJson>,
    /// Usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "Record<string, unknown>")]
    pub usage: Option<RawJson>,
    /// Attempts (retries). Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    #[ts(type = "Array<Record<string, unknown>>")]
    pub attempts: Vec<RawJson>,
    /// Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "Record<string, unknown>")]
    pub error: Option<RawJson>,
    /// Metadata.
    #[ts(type = "Record<string, unknown>")]
    pub metadata: RawJson,
    /// Start.
    pub started_at: Timestamp,
    /// Last update.
    pub updated_at: Timestamp,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub finished_at: Option<Timestamp>,
}

/// A debug run with its steps (the summary fields, then the run's links and steps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatDebugRun {
    /// Run id.
    pub id: Uuid,
    /// The chat.
    pub chat_id: Uuid,
    /// Root chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub root_chat_id: Option<Uuid>,
    /// Parent chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub parent_chat_id: Option<Uuid>,
    /// Model config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub model_config_id: Option<Uuid>,
    /// Message that triggered the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub trigger_message_id: Option<i64>,
    /// Newest message in the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub history_tip_message_id: Option<i64>,
    /// Kind.
    pub kind: ChatDebugRunKind,
    /// Status.
    pub status: ChatDebugStatus,
    /// Provider id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub provider: Option<String>,
    /// Model id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub model: Option<String>,
    /// Free-form summary object.
    #[ts(type = "Record<string, unknown>")]
    pub summary: RawJson,
    /// Start.
    pub started_at: Timestamp,
    /// Last update.
    pub updated_at: Timestamp,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub finished_at: Option<Timestamp>,
    /// Steps. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub steps: Vec<ChatDebugStep>,
}
