//! Exact cost accounting for LLM calls: integer microdollars computed in decimal,
//! per-provider usage normalization, and a price book seeded from models.dev.
//!
//! Spend limits, cost dashboards and billing all rest on one number per model call,
//! `total_cost_micros`. This crate computes it the way Coder does: every bucket's tokens times its USD-per-million price, summed **exactly**, then
//! rounded **once**, up, to a whole microdollar. `None` means *unpriced* (no price, or no
//! usage in a priced category) and is never confused with `Some(0)`, *free*. Prices are
//! [`rust_decimal::Decimal`]s read from their JSON text, never through `f64`.
//!
//! The crate has three parts:
//! - **Costing**: [`calculate_total_cost_micros`] (never fails) and
//!   [`try_calculate_total_cost_micros`] (reports invalid input), [`validate_cost_config`],
//!   [`parse_price`], [`merge_missing_model_cost_config`].
//! - **Usage normalization** ([`normalize`]): typed serde structs for each provider's raw
//!   `usage` JSON and one function per provider that turns it into a
//!   [`codersdk::ChatMessageUsage`] whose buckets mean the same thing everywhere
//!   (`input_tokens` excludes cache reads and writes, `output_tokens` includes reasoning).
//! - **Price book** ([`PriceBook`]): micro-USD-per-million prices for `anthropic`, `azure`,
//!   `bedrock`, `deepseek`, `google`, `openai`, `openrouter`, `vercel` and `xai`, embedded
//!   at build time and generated from models.dev data by [`generate`].
//!
//! The crate does no I/O and never panics on input.
//!
//! # Example
//!
//! ```
//! use chatcost::{calculate_total_cost_micros, normalize, OpenAiChatUsage, PriceBook};
//!
//! // The usage object of an OpenAI Chat Completions response.
//! let raw: OpenAiChatUsage = serde_json::from_str(
//!     r#"{"prompt_tokens":149,"completion_tokens":60,"total_tokens":209,
//!         "prompt_tokens_details":{"cached_tokens":0}}"#,
//! )?;
//! let usage = normalize::openai_chat(&raw)?;
//!
//! // Prices the model config leaves unset come from the embedded price book.
//! let mut cost = None;
//! PriceBook::embedded().fill_missing("openai", "gpt-4o-2024-08-06", &mut cost);
//!
//! // 149 × 2.5 + 60 × 10 = 972.5 microdollars, rounded up once.
//! assert_eq!(calculate_total_cost_micros(&usage, cost.as_ref()), Some(973));
//! // Without prices the call is unpriced, not free.
//! assert_eq!(calculate_total_cost_micros(&usage, None), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! None.

mod cost;
mod error;
pub mod normalize;
mod pricebook;

pub use cost::{
    calculate_total_cost_micros, merge_missing_model_cost_config, parse_cost_config, parse_price,
    try_calculate_total_cost_micros, validate_cost_config, validate_usage, MAX_COST_MICROS,
};
pub use error::{CostError, CostErrorKind};
pub use normalize::{
    AnthropicCacheCreation, AnthropicUsage, AnthropicUsageAccumulator, DeepSeekUsage,
    OpenAiChatUsage, OpenAiInputDetails, OpenAiOutputDetails, OpenAiResponsesUsage, XaiUsage,
};
pub use pricebook::{
    generate, openai_compat_vendor, render_seed, GeneratedSeed, PriceBook, PriceRow,
    ProviderMapping, EMBEDDED_PRICES_JSON, MAX_UPSTREAM_JSON_BYTES, SEED_PROVIDERS,
};
