//! Providers, model configs, call options, prices, BYOK keys and model overrides.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::macros::string_enum;
use crate::{SecretString, Timestamp};

fn price_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Non-negative exact decimal, USD per million tokens. A decimal string (preferred) or a JSON number.",
        "anyOf": [
            { "type": "string", "pattern": "^\\s*[+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?\\s*$" },
            { "type": "number", "minimum": 0 },
            { "type": "null" }
        ]
    })
}

/// Prices of a model in USD per million tokens, as exact decimals.
///
/// A missing price means "not priced" and differs from `"0"` (free). Read from decimal
/// strings or JSON numbers without passing through `f64`; written as decimal strings.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct ModelCostConfig {
    /// Input (non-cached prompt) tokens.
    #[serde(
        default,
        with = "crate::decimal::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(as = "Option<String>", optional)]
    #[schemars(schema_with = "price_schema")]
    pub input_price_per_million_tokens: Option<Decimal>,
    /// Output tokens (reasoning included).
    #[serde(
        default,
        with = "crate::decimal::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(as = "Option<String>", optional)]
    #[schemars(schema_with = "price_schema")]
    pub output_price_per_million_tokens: Option<Decimal>,
    /// Tokens read from the prompt cache.
    #[serde(
        default,
        with = "crate::decimal::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(as = "Option<String>", optional)]
    #[schemars(schema_with = "price_schema")]
    pub cache_read_price_per_million_tokens: Option<Decimal>,
    /// Tokens written to the prompt cache (cache creation).
    #[serde(
        default,
        with = "crate::decimal::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(as = "Option<String>", optional)]
    #[schemars(schema_with = "price_schema")]
    pub cache_write_price_per_million_tokens: Option<Decimal>,
}

impl ModelCostConfig {
    /// Whether no price is set at all (the model is unpriced).
    pub fn is_empty(&self) -> bool {
        self.input_price_per_million_tokens.is_none()
            && self.output_price_per_million_tokens.is_none()
            && self.cache_read_price_per_million_tokens.is_none()
            && self.cache_write_price_per_million_tokens.is_none()
    }

    /// Fills every price this config lacks from `defaults`.
    pub fn fill_missing_from(&mut self, defaults: &ModelCostConfig) {
        let fill = |dst: &mut Option<Decimal>, src: Option<Decimal>| {
            if dst.is_none() {
                *dst = src;
            }
        };
        fill(
            &mut self.input_price_per_million_tokens,
            defaults.input_price_per_million_tokens,
        );
        fill(
            &mut self.output_price_per_million_tokens,
            defaults.output_price_per_million_tokens,
        );
        fill(
            &mut self.cache_read_price_per_million_tokens,
            defaults.cache_read_price_per_million_tokens,
        );
        fill(
            &mut self.cache_write_price_per_million_tokens,
            defaults.cache_write_price_per_million_tokens,
        );
    }

    /// The prices with their JSON field names, in declaration order.
    pub fn prices(&self) -> [(&'static str, Option<Decimal>); 4] {
        [
            (
                "input_price_per_million_tokens",
                self.input_price_per_million_tokens,
            ),
            (
                "output_price_per_million_tokens",
                self.output_price_per_million_tokens,
            ),
            (
                "cache_read_price_per_million_tokens",
                self.cache_read_price_per_million_tokens,
            ),
            (
                "cache_write_price_per_million_tokens",
                self.cache_write_price_per_million_tokens,
            ),
        ]
    }
}

/// Reasoning-effort bounds of a model config (later experimental versions).
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct ChatModelReasoningEffortConfig {
    /// Effort used when a chat does not ask for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Highest effort a chat may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

/// OpenAI API selection of a model config.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct ChatModelOpenAIConfig {
    /// Use the Responses API (`true`) or Chat Completions (`false`); unset = by model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_responses_api: Option<bool>,
}

/// Call options and pricing of a model config (`model_config`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, TS, schemars::JsonSchema)]
#[ts(optional_fields)]
pub struct ChatModelCallConfig {
    /// Maximum output tokens per step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<i64>,
    /// Sampling temperature (0–2).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::serde_util::go_float::serialize"
    )]
    #[schemars(with = "Option<f64>")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::serde_util::go_float::serialize"
    )]
    #[schemars(with = "Option<f64>")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    /// Presence penalty.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::serde_util::go_float::serialize"
    )]
    #[schemars(with = "Option<f64>")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::serde_util::go_float::serialize"
    )]
    #[schemars(with = "Option<f64>")]
    pub frequency_penalty: Option<f64>,
    /// Reasoning-effort bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ChatModelReasoningEffortConfig>,
    /// OpenAI API selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai_config: Option<ChatModelOpenAIConfig>,
    /// Prices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<ModelCostConfig>,
    /// Provider-specific options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_options: Option<ChatModelProviderOptions>,
}

impl<'de> Deserialize<'de> for ChatModelCallConfig {
    /// Also accepts the legacy layout with the four price keys at the top level; they
    /// fill only the prices that `cost` lacks.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            max_output_tokens: Option<i64>,
            #[serde(default)]
            temperature: Option<f64>,
            #[serde(default)]
            top_p: Option<f64>,
            #[serde(default)]
            top_k: Option<i64>,
            #[serde(default)]
            presence_penalty: Option<f64>,
            #[serde(default)]
            frequency_penalty: Option<f64>,
            #[serde(default)]
            reasoning_effort: Option<ChatModelReasoningEffortConfig>,
            #[serde(default)]
            openai_config: Option<ChatModelOpenAIConfig>,
            #[serde(default)]
            cost: Option<ModelCostConfig>,
            #[serde(default)]
            provider_options: Option<ChatModelProviderOptions>,
            // Listed one by one: `flatten` would buffer the numbers as f64.
            #[serde(default, with = "crate::decimal::option")]
            input_price_per_million_tokens: Option<Decimal>,
            #[serde(default, with = "crate::decimal::option")]
            output_price_per_million_tokens: Option<Decimal>,
            #[serde(default, with = "crate::decimal::option")]
            cache_read_price_per_million_tokens: Option<Decimal>,
            #[serde(default, with = "crate::decimal::option")]
            cache_write_price_per_million_tokens: Option<Decimal>,
        }
        let w = Wire::deserialize(d)?;
        let legacy = ModelCostConfig {
            input_price_per_million_tokens: w.input_price_per_million_tokens,
            output_price_per_million_tokens: w.output_price_per_million_tokens,
            cache_read_price_per_million_tokens: w.cache_read_price_per_million_tokens,
            cache_write_price_per_million_tokens: w.cache_write_price_per_million_tokens,
        };
        let cost = match (w.cost, legacy.is_empty()) {
            (c, true) => c,
            (None, false) => Some(legacy),
            (Some(mut c), false) => {
                c.fill_missing_from(&legacy);
                Some(c)
            }
        };
        Ok(ChatModelCallConfig {
            max_output_tokens: w.max_output_tokens,
            temperature: w.temperature,
            top_p: w.top_p,
            top_k: w.top_k,
            presence_penalty: w.presence_penalty,
            frequency_penalty: w.frequency_penalty,
            reasoning_effort: w.reasoning_effort,
            openai_config: w.openai_config,
            cost,
            provider_options: w.provider_options,
        })
    }
}

/// Per-provider option blocks (`model_config.provider_options`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[ts(optional_fields)]
pub struct ChatModelProviderOptions {
    /// OpenAI (and Azure) options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai: Option<ChatModelOpenAIProviderOptions>,
    /// Anthropic options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic: Option<ChatModelAnthropicProviderOptions>,
    /// Google options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<ChatModelGoogleProviderOptions>,
    /// OpenAI-compatible options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openaicompat: Option<ChatModelOpenAICompatProviderOptions>,
    /// OpenRouter options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openrouter: Option<ChatModelOpenRouterProviderOptions>,
    /// Vercel AI Gateway options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vercel: Option<ChatModelVercelProviderOptions>,
}

/// Arbitrary JSON object (Go `map[string]any`); keys sorted as Go writes them.
pub type JsonObject = BTreeMap<String, serde_json::Value>;

/// OpenAI options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[ts(optional_fields)]
pub struct ChatModelOpenAIProviderOptions {
    /// Extra output to include (Responses API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// Instructions (Responses API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Token id → bias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<BTreeMap<String, i64>>,
    /// Return log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_probs: Option<bool>,
    /// Number of top log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_log_probs: Option<i64>,
    /// Maximum tool calls per response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tool_calls: Option<i64>,
    /// Allow parallel tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// End-user identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Reasoning effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// Reasoning summary mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_summary: Option<String>,
    /// Maximum completion tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<i64>,
    /// Text verbosity (`low`, `medium`, `high`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_verbosity: Option<String>,
    /// Predicted output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(as = "Option<BTreeMap<String, serde_json::Value>>")]
    pub prediction: Option<JsonObject>,
    /// Store the response server-side (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Request metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Prompt cache key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
    /// Safety identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<String>,
    /// Service tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Structured outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_outputs: Option<bool>,
    /// Strict JSON schema for tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_json_schema: Option<bool>,
    /// Enable provider web search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search_enabled: Option<bool>,
    /// Web search context size (`low`, `medium`, `high`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_context_size: Option<String>,
    /// Domains web search may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<String>>,
}

/// Anthropic extended-thinking options.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct ChatModelAnthropicThinkingOptions {
    /// Thinking token budget; thinking is enabled only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<i64>,
}

/// Anthropic options.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct ChatModelAnthropicProviderOptions {
    /// Send reasoning back to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_reasoning: Option<bool>,
    /// Extended thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ChatModelAnthropicThinkingOptions>,
    /// Effort (`low`, `medium`, `high`, `max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// Thinking display mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_display: Option<String>,
    /// Disable parallel tool use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
    /// Enable provider web search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search_enabled: Option<bool>,
    /// Domains web search may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<String>>,
    /// Domains web search must not use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_domains: Option<Vec<String>>,
    /// Enable the 1M-token context window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_1m_enabled: Option<bool>,
}

/// Google thinking options.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct ChatModelGoogleThinkingConfig {
    /// Thinking token budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<i64>,
    /// Thinking level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<String>,
    /// Include thoughts in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_thoughts: Option<bool>,
}

/// One Google safety setting.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct ChatModelGoogleSafetySetting {
    /// Harm category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Block threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
}

/// Google options.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct ChatModelGoogleProviderOptions {
    /// Thinking configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ChatModelGoogleThinkingConfig>,
    /// Cached content name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_content: Option<String>,
    /// Safety settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_settings: Option<Vec<ChatModelGoogleSafetySetting>>,
    /// Default block threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    /// Enable provider web search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search_enabled: Option<bool>,
}

/// OpenAI-compatible options.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct ChatModelOpenAICompatProviderOptions {
    /// End-user identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Reasoning effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
}

/// Reasoning options of OpenRouter and Vercel.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct ChatModelReasoningOptions {
    /// Enable reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Exclude reasoning from the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<bool>,
    /// Reasoning token budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    /// Reasoning effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
}

/// OpenRouter provider routing.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct ChatModelOpenRouterProvider {
    /// Provider order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Vec<String>>,
    /// Allow fallbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_fallbacks: Option<bool>,
    /// Require providers to support every parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_parameters: Option<bool>,
    /// Data collection policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_collection: Option<String>,
    /// Only these providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<Vec<String>>,
    /// Never these providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<Vec<String>>,
    /// Allowed quantizations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantizations: Option<Vec<String>>,
    /// Sort order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
}

/// OpenRouter options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[ts(optional_fields)]
pub struct ChatModelOpenRouterProviderOptions {
    /// Reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ChatModelReasoningOptions>,
    /// Extra request body fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_body: Option<JsonObject>,
    /// Ask for usage in the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Token id → bias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<BTreeMap<String, i64>>,
    /// Return log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_probs: Option<bool>,
    /// Allow parallel tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// End-user identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Provider routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ChatModelOpenRouterProvider>,
}

/// Vercel AI Gateway routing.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct ChatModelVercelGatewayProviderOptions {
    /// Provider order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Vec<String>>,
    /// Fallback models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
}

/// Vercel AI Gateway options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[ts(optional_fields)]
pub struct ChatModelVercelProviderOptions {
    /// Reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ChatModelReasoningOptions>,
    /// Gateway routing (camelCase on the wire, as Coder has it).
    #[serde(
        default,
        rename = "providerOptions",
        skip_serializing_if = "Option::is_none"
    )]
    pub provider_options: Option<ChatModelVercelGatewayProviderOptions>,
    /// End-user identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Token id → bias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<BTreeMap<String, i64>>,
    /// Return log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// Number of top log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<i64>,
    /// Allow parallel tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Extra request body fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_body: Option<JsonObject>,
}

string_enum! {
    /// Where a provider entry comes from.
    pub enum ChatProviderConfigSource {
        /// Stored by an administrator.
        Database = "database",
        /// From the server's environment (e.g. `OPENAI_API_KEY`).
        EnvPreset = "env_preset",
        /// Supported but not configured.
        Supported = "supported",
    }
}

/// A provider as administrators see it. The key itself is never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatProviderConfig {
    /// Id; the nil UUID for supported-but-unconfigured providers.
    pub id: Uuid,
    /// Provider id (`openai`, `anthropic`, …).
    pub provider: String,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// Whether the provider may be used.
    #[serde(default)]
    pub enabled: bool,
    /// Whether a central key is stored.
    #[serde(default)]
    pub has_api_key: bool,
    /// The deployment key is used for users.
    #[serde(default)]
    pub central_api_key_enabled: bool,
    /// Users may bring their own key.
    #[serde(default)]
    pub allow_user_api_key: bool,
    /// Use the central key when a user has none.
    #[serde(default)]
    pub allow_central_api_key_fallback: bool,
    /// Custom endpoint; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub base_url: String,
    /// Where the entry comes from.
    pub source: ChatProviderConfigSource,
    /// Creation time (absent for unconfigured providers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub created_at: Option<Timestamp>,
    /// Last update (absent for unconfigured providers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub updated_at: Option<Timestamp>,
}

/// Body of `POST /chats/providers`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct CreateChatProviderConfigRequest {
    /// Provider id.
    pub provider: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Central API key (write-only, at most 10 KB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretString>,
    /// Custom endpoint (absolute http/https URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub central_api_key_enabled: Option<bool>,
    /// Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_user_api_key: Option<bool>,
    /// Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_central_api_key_fallback: Option<bool>,
}

/// Body of `PATCH /chats/providers/{providerConfig}`; absent = unchanged, `api_key: ""` clears.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct UpdateChatProviderConfigRequest {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Central API key; `""` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretString>,
    /// Custom endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Central key mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub central_api_key_enabled: Option<bool>,
    /// User keys allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_user_api_key: Option<bool>,
    /// Central key as fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_central_api_key_fallback: Option<bool>,
}

/// A provider as a user sees it for bring-your-own-key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct UserChatProviderConfig {
    /// Provider config id.
    pub provider_id: Uuid,
    /// Provider id.
    pub provider: String,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// The user stored a key.
    #[serde(default)]
    pub has_user_api_key: bool,
    /// The central key is used when the user has none.
    #[serde(default)]
    pub has_central_api_key_fallback: bool,
}

/// Body of `PUT /chats/user-provider-configs/{providerConfig}`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct CreateUserChatProviderKeyRequest {
    /// The user's API key (write-only).
    pub api_key: SecretString,
}

/// A model configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ChatModelConfig {
    /// Id.
    pub id: Uuid,
    /// Provider id.
    pub provider: String,
    /// Provider model id.
    pub model: String,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// Whether the model may be used.
    #[serde(default)]
    pub enabled: bool,
    /// The deployment default model (exactly one).
    #[serde(default)]
    pub is_default: bool,
    /// Context window in tokens (> 0).
    pub context_limit: i64,
    /// Percent of the context limit at which compaction triggers (0–100).
    #[serde(default)]
    pub compression_threshold: i32,
    /// Call options and pricing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub model_config: Option<ChatModelCallConfig>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update.
    pub updated_at: Timestamp,
}

/// Default compaction threshold of a model config, in percent.
pub const DEFAULT_COMPRESSION_THRESHOLD: i32 = 70;

/// Body of `POST /chats/model-configs`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[ts(optional_fields)]
pub struct CreateChatModelConfigRequest {
    /// Provider id (must be configured).
    pub provider: String,
    /// Provider model id (required).
    pub model: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Make this the default model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    /// Context window in tokens (> 0, required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_limit: Option<i64>,
    /// Compaction threshold, percent (default 70).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_threshold: Option<i32>,
    /// Call options and pricing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_config: Option<ChatModelCallConfig>,
}

/// Body of `PATCH /chats/model-configs/{modelConfig}`; absent or `""` = unchanged.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[ts(optional_fields)]
pub struct UpdateChatModelConfigRequest {
    /// Provider id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Provider model id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Make this the default model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    /// Context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_limit: Option<i64>,
    /// Compaction threshold, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_threshold: Option<i32>,
    /// Call options and pricing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_config: Option<ChatModelCallConfig>,
}

string_enum! {
    /// Why a provider's models cannot be used.
    pub enum ChatModelProviderUnavailableReason {
        /// No usable API key.
        MissingApiKey = "missing_api_key",
        /// The model list could not be fetched.
        FetchFailed = "fetch_failed",
        /// The user must bring their own key.
        UserApiKeyRequired = "user_api_key_required",
    }
}

/// One model of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatModel {
    /// Model config id.
    pub id: String,
    /// Provider id.
    pub provider: String,
    /// Provider model id.
    pub model: String,
    /// Display name.
    pub display_name: String,
}

/// One provider of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatModelProvider {
    /// Provider id.
    pub provider: String,
    /// Whether the caller can use it.
    pub available: bool,
    /// Why not; omitted when available.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::serde_util::empty_as_none"
    )]
    #[ts(optional)]
    pub unavailable_reason: Option<ChatModelProviderUnavailableReason>,
    /// Its models. Never null.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub models: Vec<ChatModel>,
}

/// Response of `GET /chats/models`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct ChatModelsResponse {
    /// Providers and their models. Never null.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub providers: Vec<ChatModelProvider>,
}

string_enum! {
    /// Where a deployment model override applies.
    pub enum ChatModelOverrideContext {
        /// Root chats.
        General = "general",
        /// Explore sub-agents.
        Explore = "explore",
        /// Title generation.
        TitleGeneration = "title_generation",
        /// Context compaction: the model that writes a long chat's summary.
        Compaction = "compaction",
    }
}

/// Response of `GET /chats/config/model-override/{context}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatModelOverrideResponse {
    /// The context.
    pub context: ChatModelOverrideContext,
    /// The model config id; empty when unset.
    #[serde(default)]
    pub model_config_id: String,
    /// The stored value is not a valid id.
    #[serde(default)]
    pub is_malformed: bool,
}

/// Body of `PUT /chats/config/model-override/{context}`; `""` clears.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct UpdateChatModelOverrideRequest {
    /// The model config id, or `""`.
    #[serde(default)]
    pub model_config_id: String,
}

/// Admin switch for personal model overrides.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct ChatPersonalModelOverridesAdminSettings {
    /// Users may pick their own models.
    pub allow_users: bool,
}

/// Body of `PUT /chats/config/personal-model-overrides`.
pub type UpdateChatPersonalModelOverridesAdminSettingsRequest =
    ChatPersonalModelOverridesAdminSettings;

string_enum! {
    /// Slot of a personal model override.
    pub enum ChatPersonalModelOverrideContext {
        /// New root chats.
        Root = "root",
        /// General sub-agents.
        General = "general",
        /// Explore sub-agents.
        Explore = "explore",
    }
}

string_enum! {
    /// How a personal override slot resolves.
    pub enum ChatPersonalModelOverrideMode {
        /// Use the deployment default.
        DeploymentDefault = "deployment_default",
        /// Use the chat's model.
        ChatDefault = "chat_default",
        /// Use a specific model.
        Model = "model",
    }
}

/// One personal override slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatPersonalModelOverride {
    /// The slot.
    pub context: ChatPersonalModelOverrideContext,
    /// How it resolves.
    pub mode: ChatPersonalModelOverrideMode,
    /// The model config id for mode `model`; empty otherwise.
    #[serde(default)]
    pub model_config_id: String,
    /// The user set this slot.
    #[serde(default)]
    pub is_set: bool,
    /// The stored value is malformed.
    #[serde(default)]
    pub is_malformed: bool,
}

/// Deployment defaults shown beside personal overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatPersonalModelOverrideDeploymentDefaults {
    /// General context.
    pub general: ChatModelOverrideResponse,
    /// Explore context.
    pub explore: ChatModelOverrideResponse,
}

/// Response of `GET /chats/config/user-personal-model-overrides`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct UserChatPersonalModelOverridesResponse {
    /// Personal overrides are allowed.
    pub enabled: bool,
    /// Root slot.
    pub root: ChatPersonalModelOverride,
    /// General slot.
    pub general: ChatPersonalModelOverride,
    /// Explore slot.
    pub explore: ChatPersonalModelOverride,
    /// Deployment defaults.
    pub deployment_defaults: ChatPersonalModelOverrideDeploymentDefaults,
}

/// Body of `PUT /chats/config/user-personal-model-overrides/{context}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub struct UpdateUserChatPersonalModelOverrideRequest {
    /// How the slot resolves (`root` cannot be `deployment_default`).
    pub mode: ChatPersonalModelOverrideMode,
    /// Required for mode `model`.
    #[serde(default)]
    pub model_config_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_top_level_prices_fill_cost() {
        let c: ChatModelCallConfig = serde_json::from_str(
            r#"{"temperature":0.5,"input_price_per_million_tokens":"3","cost":{"output_price_per_million_tokens":15,"input_price_per_million_tokens":"2"}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let cost = c.cost.unwrap_or_default();
        assert_eq!(
            cost.input_price_per_million_tokens,
            Some(Decimal::from(2)),
            "cost wins"
        );
        assert_eq!(
            cost.output_price_per_million_tokens,
            Some(Decimal::from(15))
        );
        let legacy_only: ChatModelCallConfig =
            serde_json::from_str(r#"{"cache_read_price_per_million_tokens":"0.3"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            serde_json::to_string(&legacy_only).unwrap_or_default(),
            r#"{"cost":{"cache_read_price_per_million_tokens":"0.3"}}"#
        );
    }
}
