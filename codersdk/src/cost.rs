//! Spend reporting and usage limits.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::macros::string_enum;
use crate::serde_util::{null_as_default, null_as_go_zero};
use crate::{Timestamp, ValidationError};

/// Token and runtime totals shared by the cost breakdowns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct ChatCostTotals {
    /// Σ input tokens.
    #[serde(default)]
    pub total_input_tokens: i64,
    /// Σ output tokens.
    #[serde(default)]
    pub total_output_tokens: i64,
    /// Σ cache-read tokens.
    #[serde(default)]
    pub total_cache_read_tokens: i64,
    /// Σ cache-creation tokens.
    #[serde(default)]
    pub total_cache_creation_tokens: i64,
    /// Σ step runtime in milliseconds.
    #[serde(default)]
    pub total_runtime_ms: i64,
}

/// Spend of one model in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatCostModelBreakdown {
    /// Model config.
    pub model_config_id: Uuid,
    /// Display name (falls back to the model id).
    pub display_name: String,
    /// Provider id.
    pub provider: String,
    /// Provider model id.
    pub model: String,
    /// Σ cost in micro-USD (priced messages only).
    pub total_cost_micros: i64,
    /// Assistant messages counted.
    pub message_count: i64,
    /// Token and runtime totals.
    #[serde(flatten)]
    #[ts(flatten)]
    pub totals: ChatCostTotals,
}

/// Spend of one root chat (children roll up into their root) in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatCostChatBreakdown {
    /// Root chat.
    pub root_chat_id: Uuid,
    /// Its title.
    pub chat_title: String,
    /// Σ cost in micro-USD.
    pub total_cost_micros: i64,
    /// Assistant messages counted.
    pub message_count: i64,
    /// Token and runtime totals.
    #[serde(flatten)]
    #[ts(flatten)]
    pub totals: ChatCostTotals,
}

/// Response of `GET /chats/cost/{user}/summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatCostSummary {
    /// Period start (inclusive).
    pub start_date: Timestamp,
    /// Period end (exclusive).
    pub end_date: Timestamp,
    /// Σ cost in micro-USD of priced messages.
    pub total_cost_micros: i64,
    /// Messages with a cost.
    pub priced_message_count: i64,
    /// Messages whose model had no price (cost NULL).
    pub unpriced_message_count: i64,
    /// Token and runtime totals.
    #[serde(flatten)]
    #[ts(flatten)]
    pub totals: ChatCostTotals,
    /// Per model. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub by_model: Vec<ChatCostModelBreakdown>,
    /// Per root chat. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub by_chat: Vec<ChatCostChatBreakdown>,
    /// The user's usage limit status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub usage_limit: Option<ChatUsageLimitStatus>,
}

/// One user's spend in `GET /chats/cost/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatCostUserRollup {
    /// User.
    pub user_id: Uuid,
    /// Username.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Avatar URL.
    #[serde(default)]
    pub avatar_url: String,
    /// Σ cost in micro-USD.
    pub total_cost_micros: i64,
    /// Assistant messages counted.
    pub message_count: i64,
    /// Chats with spend.
    pub chat_count: i64,
    /// Token and runtime totals.
    #[serde(flatten)]
    #[ts(flatten)]
    pub totals: ChatCostTotals,
}

/// Response of `GET /chats/cost/users` (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatCostUsersResponse {
    /// Period start.
    pub start_date: Timestamp,
    /// Period end.
    pub end_date: Timestamp,
    /// Users matching the filter (before paging).
    pub count: i64,
    /// The page. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<ChatCostUserRollup>,
}

/// Spend of one chat tree (Coder's newer per-chat cost shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatCost {
    /// The chat.
    pub chat_id: Uuid,
    /// Σ cost in micro-USD.
    pub total_cost_micros: i64,
    /// Model calls counted.
    pub request_count: i64,
    /// Model calls without a price.
    pub unpriced_request_count: i64,
}

string_enum! {
    /// Usage-limit period (UTC; weeks start on Monday).
    pub enum ChatUsageLimitPeriod {
        /// Calendar day.
        Day = "day",
        /// ISO week, Monday first.
        Week = "week",
        /// Calendar month (the default).
        Month = "month",
    }
}

/// Deployment usage-limit configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub struct ChatUsageLimitConfig {
    /// Limit per period in micro-USD; `null` disables limits.
    pub spend_limit_micros: Option<i64>,
    /// Period (default `month`).
    pub period: ChatUsageLimitPeriod,
    /// Last change (ignored on input).
    #[serde(default = "Timestamp::now")]
    #[schemars(skip)]
    pub updated_at: Timestamp,
}

/// A per-user limit override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatUsageLimitOverride {
    /// User.
    pub user_id: Uuid,
    /// Username.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Avatar URL.
    #[serde(default)]
    pub avatar_url: String,
    /// Limit in micro-USD.
    pub spend_limit_micros: i64,
}

/// A per-group limit override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatUsageLimitGroupOverride {
    /// Group.
    pub group_id: Uuid,
    /// Group name.
    pub group_name: String,
    /// Display name.
    #[serde(default)]
    pub group_display_name: String,
    /// Avatar URL.
    #[serde(default)]
    pub group_avatar_url: String,
    /// Members.
    pub member_count: i64,
    /// Limit in micro-USD.
    pub spend_limit_micros: i64,
}

/// Response of the admin `GET /chats/usage-limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatUsageLimitConfigResponse {
    /// The configuration.
    #[serde(flatten)]
    #[ts(flatten)]
    pub config: ChatUsageLimitConfig,
    /// Enabled models without a price (their spend is invisible to limits).
    pub unpriced_model_count: i64,
    /// Per-user overrides. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub overrides: Vec<ChatUsageLimitOverride>,
    /// Per-group overrides. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub group_overrides: Vec<ChatUsageLimitGroupOverride>,
}

/// Response of `GET /chats/usage-limits/status`.
///
/// `current_spend`, `period_start` and `period_end` are always written, as Coder writes them:
/// when no limit applies they are `0` and Go's zero time (`0001-01-01T00:00:00Z`,
/// [`Timestamp::go_zero`]), so the disabled status is
/// `{"is_limited":false,"current_spend":0,"period_start":"0001-01-01T00:00:00Z","period_end":"0001-01-01T00:00:00Z"}`
/// ([`ChatUsageLimitStatus::default`]). Reading is lenient: absent or `null` values read as
/// those zeros, so the short `{"is_limited":false}` of older servers still reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(optional_fields)]
pub struct ChatUsageLimitStatus {
    /// A limit applies to the caller.
    pub is_limited: bool,
    /// Period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<ChatUsageLimitPeriod>,
    /// Effective limit in micro-USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_limit_micros: Option<i64>,
    /// Spend so far in the period, micro-USD; 0 when no limit applies.
    #[serde(default, deserialize_with = "null_as_default")]
    pub current_spend: i64,
    /// Period start; Go's zero time when no limit applies.
    #[serde(default = "Timestamp::go_zero", deserialize_with = "null_as_go_zero")]
    pub period_start: Timestamp,
    /// Period end (exclusive); Go's zero time when no limit applies.
    #[serde(default = "Timestamp::go_zero", deserialize_with = "null_as_go_zero")]
    pub period_end: Timestamp,
}

impl Default for ChatUsageLimitStatus {
    /// Not limited: no period or limit, nothing spent, Go's zero time for both bounds.
    fn default() -> Self {
        ChatUsageLimitStatus {
            is_limited: false,
            period: None,
            spend_limit_micros: None,
            current_spend: 0,
            period_start: Timestamp::go_zero(),
            period_end: Timestamp::go_zero(),
        }
    }
}

/// Body of the user and group override `PUT`s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub struct UpsertChatUsageLimitOverrideRequest {
    /// Limit in micro-USD (> 0).
    pub spend_limit_micros: i64,
}

/// Body of the group override `PUT` (same shape as the user override).
pub type UpsertChatUsageLimitGroupOverrideRequest = UpsertChatUsageLimitOverrideRequest;

/// 409 body when a model-invoking request is over the caller's limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatUsageLimitExceededResponse {
    /// "Chat usage limit exceeded."
    pub message: String,
    /// More detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub detail: String,
    /// Per-field problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub validations: Vec<ValidationError>,
    /// Spend in the period, micro-USD.
    pub spent_micros: i64,
    /// The limit, micro-USD.
    pub limit_micros: i64,
    /// When the period resets.
    pub resets_at: Timestamp,
}

/// Message of the usage-limit 409.
pub const USAGE_LIMIT_EXCEEDED_MESSAGE: &str = "Chat usage limit exceeded.";
