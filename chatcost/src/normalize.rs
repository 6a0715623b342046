//! Usage normalization: each provider's raw `usage` JSON to [`ChatMessageUsage`].
//!
//! Providers disagree on what their counters mean, and [`crate::calculate_total_cost_micros`]
//! prices each bucket as given, so every provider's rule is written down exactly once, here:
//!
//! | provider (raw type) | `input_tokens` | `cache_read_tokens` | `cache_creation_tokens` | `output_tokens` | `reasoning_tokens` |
//! |---|---|---|---|---|---|
//! | OpenAI Chat, Groq, OpenAI-compatible ([`OpenAiChatUsage`], [`openai_chat`]) | `prompt_tokens − cached − cache_write` | `prompt_tokens_details.cached_tokens` | `prompt_tokens_details.cache_write_tokens` if reported | `completion_tokens` | `completion_tokens_details.reasoning_tokens` if reported |
//! | OpenAI Responses, Azure ([`OpenAiResponsesUsage`], [`openai_responses`]) | `input_tokens − cached − cache_write` | `input_tokens_details.cached_tokens` | `input_tokens_details.cache_write_tokens` if reported | `output_tokens` | `output_tokens_details.reasoning_tokens` if reported |
//! | Anthropic, Bedrock ([`AnthropicUsage`], [`anthropic`], [`AnthropicUsageAccumulator`]) | `input_tokens` (already excludes cache) | `cache_read_input_tokens` | `cache_creation.ephemeral_5m + ephemeral_1h` if the breakdown is present, else `cache_creation_input_tokens` | `output_tokens` | not reported (`None`) |
//! | xAI ([`XaiUsage`], [`xai_chat`]) | `prompt_tokens − cached` | `prompt_tokens_details.cached_tokens` | if reported | `completion_tokens + reasoning_tokens` | `completion_tokens_details.reasoning_tokens` |
//! | DeepSeek ([`DeepSeekUsage`], [`deepseek_chat`]) | `prompt_cache_miss_tokens` | `prompt_cache_hit_tokens` | if reported | `completion_tokens` | `completion_tokens_details.reasoning_tokens` |
//! | Google Gemini ([`GeminiUsage`], [`gemini`]) | `promptTokenCount − cachedContentTokenCount + toolUsePromptTokenCount` | `cachedContentTokenCount` | not reported (`None`) | `candidatesTokenCount + thoughtsTokenCount` | `thoughtsTokenCount` if reported |
//!
//! Common rules:
//! - A usage object with no token counter at all normalizes to an empty
//!   [`ChatMessageUsage`] (cost `None`: nothing is known). Otherwise `input_tokens`,
//!   `output_tokens` and `cache_read_tokens` are always `Some` (an absent counter counts as
//!   0), while `cache_creation_tokens` and `reasoning_tokens` are `Some` only when the
//!   provider reports them.
//! - `total_tokens` is always computed as `input + output + cache_read + cache_creation`
//!   (saturating at `i64::MAX`): every token the call processed, each exactly once. It
//!   equals the provider's own total wherever one is reported (checked against every
//!   recorded stream), and it gives Anthropic, which reports none, the same meaning.
//! - `context_limit` is left `None`: it comes from the model, not the response.
//! - A negative counter is [`CostErrorKind::InvalidTokenCount`]; cached tokens exceeding the
//!   prompt total are [`CostErrorKind::InconsistentUsage`]; a billed sum above `i64::MAX`
//!   is [`CostErrorKind::Overflow`]. Nothing wraps, nothing panics.
//! - Streaming and non-streaming responses carry the same usage object (for Anthropic, the
//!   final one that [`AnthropicUsageAccumulator`] rebuilds), so they normalize identically.

use codersdk::ChatMessageUsage;
use serde::{Deserialize, Serialize};

use crate::error::{CostError, CostErrorKind};

/// Prompt-side breakdown of OpenAI-style usage: `prompt_tokens_details` (Chat Completions)
/// and `input_tokens_details` (Responses). Other fields (`audio_tokens`, …) are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenAiInputDetails {
    /// Prompt tokens served from the prompt cache (included in the prompt total).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<i64>,
    /// Prompt tokens written to the cache, reported by some gateways (GitHub Copilot,
    /// OpenRouter); taken to be included in the prompt total like `cached_tokens`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<i64>,
}

/// Completion-side breakdown of OpenAI-style usage: `completion_tokens_details` (Chat
/// Completions) and `output_tokens_details` (Responses). Other fields are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenAiOutputDetails {
    /// Reasoning tokens (inside `completion_tokens` for OpenAI, outside for xAI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<i64>,
}

/// OpenAI Chat Completions `usage` — also Groq's `usage` and `x_groq.usage`, and the shape
/// most OpenAI-compatible servers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenAiChatUsage {
    /// All prompt tokens, cached ones included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<i64>,
    /// Generated tokens, reasoning included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<i64>,
    /// Provider's total (not copied; see the module docs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<i64>,
    /// Prompt breakdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<OpenAiInputDetails>,
    /// Completion breakdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<OpenAiOutputDetails>,
}

/// OpenAI Responses API `usage` (also Azure OpenAI and Responses gateways), found in
/// `response.completed` events and in non-streaming responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenAiResponsesUsage {
    /// All input tokens, cached ones included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<i64>,
    /// Generated tokens, reasoning included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<i64>,
    /// Provider's total (not copied; see the module docs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<i64>,
    /// Input breakdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens_details: Option<OpenAiInputDetails>,
    /// Output breakdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OpenAiOutputDetails>,
}

/// Anthropic's cache-write breakdown by time to live (`usage.cache_creation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AnthropicCacheCreation {
    /// Tokens written with the 5-minute TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_5m_input_tokens: Option<i64>,
    /// Tokens written with the 1-hour TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_1h_input_tokens: Option<i64>,
}

impl AnthropicCacheCreation {
    fn is_reported(&self) -> bool {
        self.ephemeral_5m_input_tokens.is_some() || self.ephemeral_1h_input_tokens.is_some()
    }
}

/// Anthropic Messages `usage` (also Bedrock's Anthropic models): a non-streaming message's
/// usage, `message_start.message.usage`, or `message_delta.usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AnthropicUsage {
    /// Input tokens after the last cache breakpoint (cache reads and writes excluded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<i64>,
    /// Generated tokens, thinking included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<i64>,
    /// Tokens written to the cache (all TTLs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<i64>,
    /// Tokens read from the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<i64>,
    /// Cache writes by TTL; preferred over `cache_creation_input_tokens` when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<AnthropicCacheCreation>,
}

/// xAI Chat Completions `usage`: the OpenAI shape, but `completion_tokens` **excludes**
/// reasoning (`total_tokens = prompt + completion + reasoning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct XaiUsage {
    /// All prompt tokens, cached ones included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<i64>,
    /// Generated tokens **without** reasoning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<i64>,
    /// Provider's total (not copied; see the module docs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<i64>,
    /// Prompt breakdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<OpenAiInputDetails>,
    /// Completion breakdown (`reasoning_tokens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<OpenAiOutputDetails>,
    /// xAI's own price of the call in "USD ticks" (1 tick = 1e-10 USD, inferred: the
    /// recorded 1,497,500 ticks match the published grok-3-mini prices to the tick).
    /// Informational; never used for costing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_in_usd_ticks: Option<i64>,
}

/// DeepSeek Chat Completions `usage`: the OpenAI shape plus an explicit cache split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeepSeekUsage {
    /// All prompt tokens (`hit + miss`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<i64>,
    /// Generated tokens, reasoning included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<i64>,
    /// Provider's total (not copied; see the module docs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<i64>,
    /// Prompt tokens served from the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_hit_tokens: Option<i64>,
    /// Prompt tokens not served from the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_miss_tokens: Option<i64>,
    /// OpenAI-style prompt breakdown (DeepSeek repeats the hit count as `cached_tokens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<OpenAiInputDetails>,
    /// Completion breakdown (`reasoning_tokens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<OpenAiOutputDetails>,
}

/// Gemini `usageMetadata` (`generateContent` and every `streamGenerateContent` chunk).
///
/// `promptTokenCount` includes the cached tokens; `candidatesTokenCount` excludes the
/// thinking tokens, which Google bills at the output rate; `toolUsePromptTokenCount` counts
/// the prompt of built-in tools (search grounding) and is billed as input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GeminiUsage {
    /// All prompt tokens, cached ones included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_token_count: Option<i64>,
    /// Prompt tokens served from cached content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_content_token_count: Option<i64>,
    /// Generated tokens, thoughts excluded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates_token_count: Option<i64>,
    /// Thinking tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thoughts_token_count: Option<i64>,
    /// Prompt tokens of built-in tool use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_use_prompt_token_count: Option<i64>,
    /// Provider's total (not copied; see the module docs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_token_count: Option<i64>,
}

/// Gemini usage: `input = prompt − cached + tool_use_prompt`, `cache_read = cached`,
/// `output = candidates + thoughts`, `reasoning = thoughts` (when reported).
///
/// ```
/// let raw: chatcost::GeminiUsage = serde_json::from_str(
///     r#"{"promptTokenCount":100,"cachedContentTokenCount":40,"candidatesTokenCount":20,
///         "thoughtsTokenCount":30,"totalTokenCount":150}"#,
/// )?;
/// let u = chatcost::normalize::gemini(&raw)?;
/// assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens), (Some(60), Some(40), Some(50)));
/// assert_eq!((u.reasoning_tokens, u.total_tokens), (Some(30), Some(150)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gemini(usage: &GeminiUsage) -> Result<ChatMessageUsage, CostError> {
    let counters = [
        ("promptTokenCount", usage.prompt_token_count),
        ("cachedContentTokenCount", usage.cached_content_token_count),
        ("candidatesTokenCount", usage.candidates_token_count),
        ("thoughtsTokenCount", usage.thoughts_token_count),
        ("toolUsePromptTokenCount", usage.tool_use_prompt_token_count),
        ("totalTokenCount", usage.total_token_count),
    ];
    check_counters(&counters)?;
    if counters.iter().all(|(_, v)| v.is_none()) {
        return Ok(ChatMessageUsage::default());
    }
    let cached = usage.cached_content_token_count.unwrap_or(0);
    let input = prompt_minus(usage.prompt_token_count, cached, "cachedContentTokenCount")?
        .checked_add(usage.tool_use_prompt_token_count.unwrap_or(0))
        .ok_or_else(|| overflow("toolUsePromptTokenCount"))?;
    let output = usage
        .candidates_token_count
        .unwrap_or(0)
        .checked_add(usage.thoughts_token_count.unwrap_or(0))
        .ok_or_else(|| overflow("thoughtsTokenCount"))?;
    Ok(build(
        input,
        output,
        usage.thoughts_token_count,
        cached,
        None,
    ))
}

/// OpenAI Chat Completions usage (also Groq): `input = prompt − cached − cache_write`,
/// `output = completion` (reasoning already inside).
pub fn openai_chat(usage: &OpenAiChatUsage) -> Result<ChatMessageUsage, CostError> {
    chat_like(ChatCounters::from_openai(usage), ReasoningInOutput::Yes)
}

/// Usage from an OpenAI-compatible server of unknown vendor.
///
/// Like [`openai_chat`], except that when the reported total proves that
/// `completion_tokens` excludes reasoning (`reasoning > 0` and
/// `total == prompt + completion + reasoning`, as xAI reports) the reasoning tokens are
/// added to the output, as [`xai_chat`] does. Without a total, OpenAI semantics apply.
pub fn openai_compatible_chat(usage: &OpenAiChatUsage) -> Result<ChatMessageUsage, CostError> {
    let counters = ChatCounters::from_openai(usage);
    counters.check()?;
    let reasoning = counters.reasoning.unwrap_or(0);
    let excluded = reasoning > 0
        && match (counters.prompt, counters.completion, counters.total) {
            (Some(p), Some(c), Some(t)) => {
                p.checked_add(c).and_then(|pc| pc.checked_add(reasoning)) == Some(t)
            }
            _ => false,
        };
    let mode = if excluded {
        ReasoningInOutput::No
    } else {
        ReasoningInOutput::Yes
    };
    chat_like(counters, mode)
}

/// xAI usage: like OpenAI, but `output = completion + reasoning`, because xAI's
/// `completion_tokens` leave reasoning out while xAI bills it at the output rate.
pub fn xai_chat(usage: &XaiUsage) -> Result<ChatMessageUsage, CostError> {
    let counters = ChatCounters {
        prompt: usage.prompt_tokens,
        completion: usage.completion_tokens,
        total: usage.total_tokens,
        cached: usage.prompt_tokens_details.and_then(|d| d.cached_tokens),
        cache_write: usage
            .prompt_tokens_details
            .and_then(|d| d.cache_write_tokens),
        reasoning: usage
            .completion_tokens_details
            .and_then(|d| d.reasoning_tokens),
        names: CHAT_NAMES,
    };
    chat_like(counters, ReasoningInOutput::No)
}

/// DeepSeek usage: `input = prompt_cache_miss_tokens`, `cache_read =
/// prompt_cache_hit_tokens`, `output = completion` (reasoning inside).
///
/// When the split is missing, falls back to the OpenAI rule with
/// `prompt_tokens_details.cached_tokens`; when only one half is present, the other is
/// `prompt_tokens` minus it.
pub fn deepseek_chat(usage: &DeepSeekUsage) -> Result<ChatMessageUsage, CostError> {
    let details_cached = usage.prompt_tokens_details.and_then(|d| d.cached_tokens);
    let cache_write = usage
        .prompt_tokens_details
        .and_then(|d| d.cache_write_tokens);
    let reasoning = usage
        .completion_tokens_details
        .and_then(|d| d.reasoning_tokens);
    let counters = [
        ("prompt_tokens", usage.prompt_tokens),
        ("completion_tokens", usage.completion_tokens),
        ("total_tokens", usage.total_tokens),
        ("prompt_cache_hit_tokens", usage.prompt_cache_hit_tokens),
        ("prompt_cache_miss_tokens", usage.prompt_cache_miss_tokens),
        ("prompt_tokens_details.cached_tokens", details_cached),
        ("prompt_tokens_details.cache_write_tokens", cache_write),
        ("completion_tokens_details.reasoning_tokens", reasoning),
    ];
    check_counters(&counters)?;
    if counters.iter().all(|(_, v)| v.is_none()) {
        return Ok(ChatMessageUsage::default());
    }
    let (hit, miss) = match (
        usage.prompt_cache_hit_tokens,
        usage.prompt_cache_miss_tokens,
    ) {
        (Some(hit), Some(miss)) => (hit, miss),
        (Some(hit), None) => (
            hit,
            prompt_minus(usage.prompt_tokens, hit, "prompt_cache_hit_tokens")?,
        ),
        (None, Some(miss)) => (
            prompt_minus(usage.prompt_tokens, miss, "prompt_cache_miss_tokens")?,
            miss,
        ),
        (None, None) => {
            let hit = details_cached.unwrap_or(0);
            (
                hit,
                prompt_minus(
                    usage.prompt_tokens,
                    hit,
                    "prompt_tokens_details.cached_tokens",
                )?,
            )
        }
    };
    Ok(build(
        miss,
        usage.completion_tokens.unwrap_or(0),
        reasoning,
        hit,
        cache_write,
    ))
}

/// OpenAI Responses usage (also Azure): `input = input_tokens − cached − cache_write`,
/// `output = output_tokens` (reasoning already inside).
pub fn openai_responses(usage: &OpenAiResponsesUsage) -> Result<ChatMessageUsage, CostError> {
    let counters = ChatCounters {
        prompt: usage.input_tokens,
        completion: usage.output_tokens,
        total: usage.total_tokens,
        cached: usage.input_tokens_details.and_then(|d| d.cached_tokens),
        cache_write: usage
            .input_tokens_details
            .and_then(|d| d.cache_write_tokens),
        reasoning: usage.output_tokens_details.and_then(|d| d.reasoning_tokens),
        names: RESPONSES_NAMES,
    };
    chat_like(counters, ReasoningInOutput::Yes)
}

/// A complete Anthropic usage object (a non-streaming response, or the result of
/// [`AnthropicUsageAccumulator`]): `input = input_tokens`, `cache_read =
/// cache_read_input_tokens`, `cache_creation` = 5-minute + 1-hour buckets when the breakdown
/// is present, else `cache_creation_input_tokens`; reasoning is not reported.
pub fn anthropic(usage: &AnthropicUsage) -> Result<ChatMessageUsage, CostError> {
    let breakdown = usage
        .cache_creation
        .filter(AnthropicCacheCreation::is_reported);
    let counters = [
        ("input_tokens", usage.input_tokens),
        ("output_tokens", usage.output_tokens),
        (
            "cache_creation_input_tokens",
            usage.cache_creation_input_tokens,
        ),
        ("cache_read_input_tokens", usage.cache_read_input_tokens),
        (
            "cache_creation.ephemeral_5m_input_tokens",
            breakdown.and_then(|b| b.ephemeral_5m_input_tokens),
        ),
        (
            "cache_creation.ephemeral_1h_input_tokens",
            breakdown.and_then(|b| b.ephemeral_1h_input_tokens),
        ),
    ];
    check_counters(&counters)?;
    if counters.iter().all(|(_, v)| v.is_none()) {
        return Ok(ChatMessageUsage::default());
    }
    let cache_creation = match breakdown {
        Some(b) => b
            .ephemeral_5m_input_tokens
            .unwrap_or(0)
            .checked_add(b.ephemeral_1h_input_tokens.unwrap_or(0))
            .ok_or_else(|| overflow("cache_creation"))?,
        None => usage.cache_creation_input_tokens.unwrap_or(0),
    };
    Ok(build(
        usage.input_tokens.unwrap_or(0),
        usage.output_tokens.unwrap_or(0),
        None,
        usage.cache_read_input_tokens.unwrap_or(0),
        Some(cache_creation),
    ))
}

/// Rebuilds an Anthropic stream's final usage: `message_start` sets every counter, then
/// each `message_delta` overrides the counters it carries (non-null fields win; proxies
/// may correct `input_tokens` there).
///
/// The cache-creation breakdown is kept from `message_start` unless a delta carries a new
/// breakdown (merged field by field) or a `cache_creation_input_tokens` different from the
/// current one without a breakdown — then the old breakdown is stale and dropped, and the
/// flat count is used.
///
/// ```
/// use chatcost::{AnthropicUsage, AnthropicUsageAccumulator};
///
/// let start: AnthropicUsage = serde_json::from_str(r#"{"input_tokens":43,"output_tokens":1}"#)?;
/// let delta: AnthropicUsage = serde_json::from_str(r#"{"input_tokens":61,"output_tokens":2}"#)?;
/// let mut acc = AnthropicUsageAccumulator::new();
/// acc.message_start(&start);
/// acc.message_delta(&delta);
/// let usage = acc.finish()?;
/// assert_eq!((usage.input_tokens, usage.output_tokens), (Some(61), Some(2)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnthropicUsageAccumulator {
    usage: AnthropicUsage,
}

impl AnthropicUsageAccumulator {
    /// An accumulator that has seen nothing (normalizes to empty usage).
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `message_start.message.usage`, replacing everything seen before.
    pub fn message_start(&mut self, usage: &AnthropicUsage) {
        self.usage = *usage;
    }

    /// Applies a `message_delta.usage`: every non-null counter overrides the current one.
    pub fn message_delta(&mut self, delta: &AnthropicUsage) {
        let u = &mut self.usage;
        match delta
            .cache_creation
            .filter(AnthropicCacheCreation::is_reported)
        {
            Some(b) => {
                let cur = u
                    .cache_creation
                    .get_or_insert_with(AnthropicCacheCreation::default);
                overlay(
                    &mut cur.ephemeral_5m_input_tokens,
                    b.ephemeral_5m_input_tokens,
                );
                overlay(
                    &mut cur.ephemeral_1h_input_tokens,
                    b.ephemeral_1h_input_tokens,
                );
            }
            None => {
                if delta.cache_creation_input_tokens.is_some()
                    && delta.cache_creation_input_tokens != u.cache_creation_input_tokens
                {
                    u.cache_creation = None;
                }
            }
        }
        overlay(&mut u.input_tokens, delta.input_tokens);
        overlay(&mut u.output_tokens, delta.output_tokens);
        overlay(
            &mut u.cache_creation_input_tokens,
            delta.cache_creation_input_tokens,
        );
        overlay(
            &mut u.cache_read_input_tokens,
            delta.cache_read_input_tokens,
        );
    }

    /// The merged raw usage so far.
    pub fn usage(&self) -> &AnthropicUsage {
        &self.usage
    }

    /// Normalizes the merged usage with [`anthropic`].
    pub fn finish(&self) -> Result<ChatMessageUsage, CostError> {
        anthropic(&self.usage)
    }
}

fn overlay(dst: &mut Option<i64>, src: Option<i64>) {
    if src.is_some() {
        *dst = src;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReasoningInOutput {
    Yes,
    No,
}

/// JSON names of the counters, for error messages.
#[derive(Clone, Copy)]
struct Names {
    prompt: &'static str,
    completion: &'static str,
    total: &'static str,
    cached: &'static str,
    cache_write: &'static str,
    reasoning: &'static str,
}

const CHAT_NAMES: Names = Names {
    prompt: "prompt_tokens",
    completion: "completion_tokens",
    total: "total_tokens",
    cached: "prompt_tokens_details.cached_tokens",
    cache_write: "prompt_tokens_details.cache_write_tokens",
    reasoning: "completion_tokens_details.reasoning_tokens",
};

const RESPONSES_NAMES: Names = Names {
    prompt: "input_tokens",
    completion: "output_tokens",
    total: "total_tokens",
    cached: "input_tokens_details.cached_tokens",
    cache_write: "input_tokens_details.cache_write_tokens",
    reasoning: "output_tokens_details.reasoning_tokens",
};

/// The OpenAI-style counters shared by Chat Completions, Responses and xAI.
#[derive(Clone, Copy)]
struct ChatCounters {
    prompt: Option<i64>,
    completion: Option<i64>,
    total: Option<i64>,
    cached: Option<i64>,
    cache_write: Option<i64>,
    reasoning: Option<i64>,
    names: Names,
}

impl ChatCounters {
    fn from_openai(usage: &OpenAiChatUsage) -> Self {
        ChatCounters {
            prompt: usage.prompt_tokens,
            completion: usage.completion_tokens,
            total: usage.total_tokens,
            cached: usage.prompt_tokens_details.and_then(|d| d.cached_tokens),
            cache_write: usage
                .prompt_tokens_details
                .and_then(|d| d.cache_write_tokens),
            reasoning: usage
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens),
            names: CHAT_NAMES,
        }
    }

    fn list(&self) -> [(&'static str, Option<i64>); 6] {
        let n = self.names;
        [
            (n.prompt, self.prompt),
            (n.completion, self.completion),
            (n.total, self.total),
            (n.cached, self.cached),
            (n.cache_write, self.cache_write),
            (n.reasoning, self.reasoning),
        ]
    }

    fn check(&self) -> Result<(), CostError> {
        check_counters(&self.list())
    }
}

fn chat_like(c: ChatCounters, mode: ReasoningInOutput) -> Result<ChatMessageUsage, CostError> {
    c.check()?;
    if c.list().iter().all(|(_, v)| v.is_none()) {
        return Ok(ChatMessageUsage::default());
    }
    let cached = c.cached.unwrap_or(0);
    let write = c.cache_write.unwrap_or(0);
    let prompt = c.prompt.unwrap_or(0);
    let not_input = cached
        .checked_add(write)
        .ok_or_else(|| overflow(c.names.cached))?;
    let input = prompt
        .checked_sub(not_input)
        .filter(|v| *v >= 0)
        .ok_or_else(|| {
            CostError::new(
                CostErrorKind::InconsistentUsage,
                format!(
                    "{} ({prompt}) is less than {} + {} ({not_input})",
                    c.names.prompt, c.names.cached, c.names.cache_write
                ),
            )
            .with_field(c.names.cached)
        })?;
    let completion = c.completion.unwrap_or(0);
    let output = match mode {
        ReasoningInOutput::Yes => completion,
        ReasoningInOutput::No => completion
            .checked_add(c.reasoning.unwrap_or(0))
            .ok_or_else(|| overflow(c.names.completion))?,
    };
    Ok(build(input, output, c.reasoning, cached, c.cache_write))
}

fn prompt_minus(prompt: Option<i64>, part: i64, part_name: &'static str) -> Result<i64, CostError> {
    let prompt = prompt.unwrap_or(part);
    prompt.checked_sub(part).filter(|v| *v >= 0).ok_or_else(|| {
        CostError::new(
            CostErrorKind::InconsistentUsage,
            format!("prompt_tokens ({prompt}) is less than {part_name} ({part})"),
        )
        .with_field(part_name)
    })
}

fn check_counters(counters: &[(&'static str, Option<i64>)]) -> Result<(), CostError> {
    for (field, value) in counters {
        if let Some(v) = value {
            if *v < 0 {
                return Err(CostError::new(
                    CostErrorKind::InvalidTokenCount,
                    format!("provider usage field {field} is negative ({v})"),
                )
                .with_field(*field));
            }
        }
    }
    Ok(())
}

fn overflow(field: &'static str) -> CostError {
    CostError::new(
        CostErrorKind::Overflow,
        format!(
            "provider usage near {field} adds up to more than {} tokens",
            i64::MAX
        ),
    )
    .with_field(field)
}

fn build(
    input: i64,
    output: i64,
    reasoning: Option<i64>,
    cache_read: i64,
    cache_creation: Option<i64>,
) -> ChatMessageUsage {
    let total = input
        .saturating_add(output)
        .saturating_add(cache_read)
        .saturating_add(cache_creation.unwrap_or(0));
    ChatMessageUsage {
        input_tokens: Some(input),
        output_tokens: Some(output),
        total_tokens: Some(total),
        reasoning_tokens: reasoning,
        cache_creation_tokens: cache_creation,
        cache_read_tokens: Some(cache_read),
        context_limit: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod gemini_tests {
    use super::*;

    fn usage(json: &str) -> Result<ChatMessageUsage, CostError> {
        gemini(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn gemini_usage_rules() {
        let u = usage(
            r#"{"promptTokenCount":120,"cachedContentTokenCount":100,"candidatesTokenCount":7,
                "thoughtsTokenCount":5,"toolUsePromptTokenCount":3,"totalTokenCount":135}"#,
        )
        .unwrap();
        assert_eq!(u.input_tokens, Some(23));
        assert_eq!(u.cache_read_tokens, Some(100));
        assert_eq!(u.output_tokens, Some(12));
        assert_eq!(u.reasoning_tokens, Some(5));
        assert_eq!(u.cache_creation_tokens, None);
        assert_eq!(u.total_tokens, Some(135));
        // Without thoughts: no reasoning counter; nothing at all: empty usage.
        let u = usage(r#"{"promptTokenCount":4,"candidatesTokenCount":2}"#).unwrap();
        assert_eq!((u.output_tokens, u.reasoning_tokens), (Some(2), None));
        assert_eq!(usage("{}").unwrap(), ChatMessageUsage::default());
        // Cached above the prompt, and negative counters, are errors.
        let e = usage(r#"{"promptTokenCount":4,"cachedContentTokenCount":5}"#).unwrap_err();
        assert_eq!(e.kind(), CostErrorKind::InconsistentUsage);
        let e = usage(r#"{"thoughtsTokenCount":-1}"#).unwrap_err();
        assert_eq!(e.kind(), CostErrorKind::InvalidTokenCount);
        let e = usage(&format!(
            r#"{{"candidatesTokenCount":{},"thoughtsTokenCount":1}}"#,
            i64::MAX
        ))
        .unwrap_err();
        assert_eq!(e.kind(), CostErrorKind::Overflow);
    }
}
