//! Model options: from a model config's call options and per-provider blocks
//! (the `codersdk` wire types) to the normalized options a provider client sends.

use std::collections::BTreeMap;

use codersdk::{
    ChatModelAnthropicProviderOptions, ChatModelCallConfig, ChatModelGoogleProviderOptions,
    ChatModelOpenAICompatProviderOptions, ChatModelOpenAIConfig, ChatModelOpenAIProviderOptions,
    ChatModelOpenRouterProvider, ChatModelOpenRouterProviderOptions, ChatModelProviderOptions,
    ChatModelReasoningOptions, ChatModelVercelGatewayProviderOptions,
    ChatModelVercelProviderOptions, JsonObject,
};

use crate::catalog::Provider;
use crate::reasoning::{
    anthropic_effort, openai_effort, openai_search_context_size, openai_service_tier,
    openai_text_verbosity, openrouter_effort, requested_reasoning_effort, vercel_effort,
};
use crate::resolve::is_openai_reasoning_model;

/// The `include` value every Responses request carries, so reasoning can be replayed.
pub const OPENAI_INCLUDE_REASONING_ENCRYPTED_CONTENT: &str = "reasoning.encrypted_content";

/// The `include` values the Responses API accepts from a model config.
pub const OPENAI_RESPONSES_INCLUDES: [&str; 3] = [
    OPENAI_INCLUDE_REASONING_ENCRYPTED_CONTENT,
    "file_search_call.results",
    "message.output_text.logprobs",
];

/// OpenAI models that predate the `gpt-4` generation but speak the Responses API, and
/// Responses-only ids without a `gpt-<generation>` or reasoning-id shape.
const OPENAI_RESPONSES_EXTRA_MODELS: [&str; 5] = [
    "gpt-3.5-turbo",
    "gpt-3.5-turbo-0125",
    "gpt-3.5-turbo-1106",
    "codex-mini-latest",
    "gpt-oss-120b",
];

/// Whether an OpenAI model id is served through the Responses API: reasoning ids (`o1`,
/// `o3-mini`, …), every `gpt-<n>` generation from 4 to 99 anywhere in the id (`gpt-4o`,
/// `gpt-4.1`, `gpt-5.2`, `chatgpt-4o-latest`, `gpt-10`, an Azure deployment named
/// `prod-gpt-4o`; but not Azure's `gpt-35-turbo`), and a few older ids (`gpt-3.5-turbo`,
/// `codex-mini-latest`, `gpt-oss-120b`). Case-insensitive.
pub fn is_openai_responses_model(model: &str) -> bool {
    let lower = model.trim().to_lowercase();
    if is_openai_reasoning_model(&lower) || OPENAI_RESPONSES_EXTRA_MODELS.contains(&lower.as_str())
    {
        return true;
    }
    lower.match_indices("gpt-").any(|(at, m)| {
        let rest = lower.get(at + m.len()..).unwrap_or_default();
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let generation = rest.get(..digits).unwrap_or_default();
        if generation.starts_with('0') || generation.len() > 2 {
            return false;
        }
        // "35" is Azure's name for GPT-3.5, not a 35th generation.
        generation.parse::<u8>().is_ok_and(|n| n >= 4 && n != 35)
    })
}

/// Whether calls to `model` on `provider` use OpenAI's Responses API (else Chat
/// Completions): only OpenAI and Azure do; an explicit `use_responses_api` in the model
/// config wins, otherwise [`is_openai_responses_model`] decides.
pub fn uses_openai_responses_api(
    provider: Provider,
    model: &str,
    openai_config: Option<&ChatModelOpenAIConfig>,
) -> bool {
    if !matches!(provider, Provider::OpenAi | Provider::Azure) {
        return false;
    }
    openai_config
        .and_then(|c| c.use_responses_api)
        .unwrap_or_else(|| is_openai_responses_model(model))
}

/// Options of one model call, ready for a provider client: the [`ModelRequest`] fields
/// `settings` and `provider_options`, plus which OpenAI API to use.
///
/// [`ModelRequest`]: crate::ModelRequest
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallOptions {
    /// Sampling and length settings.
    pub settings: crate::CallSettings,
    /// Whether an OpenAI or Azure client uses the Responses API
    /// ([`uses_openai_responses_api`]).
    pub use_responses_api: bool,
    /// Provider-specific options; `None` when there are none.
    pub provider_options: Option<ProviderRequestOptions>,
}

/// Builds the options of one call to `model` on `provider` from a model config and the
/// chat's requested reasoning effort.
///
/// Call-level numbers are copied. Provider blocks are converted by
/// [`provider_request_options`]. The effort is [`requested_reasoning_effort`] (the model's
/// Era C bounds applied when it has them) and is set by [`apply_reasoning_effort`].
pub fn call_options(
    provider: Provider,
    model: &str,
    config: Option<&ChatModelCallConfig>,
    requested_effort: Option<&str>,
) -> CallOptions {
    let responses = uses_openai_responses_api(
        provider,
        model,
        config.and_then(|c| c.openai_config.as_ref()),
    );
    let mut provider_options = config
        .and_then(|c| c.provider_options.as_ref())
        .and_then(|o| provider_request_options(o, responses));
    if let Some(effort) = requested_reasoning_effort(requested_effort, config) {
        apply_reasoning_effort(&mut provider_options, provider, responses, &effort);
        // Google: the effort is a Gemini 3+ thinking level (mapped and clamped to the model by
        // `gemini_thinking_level` when the request is built); an explicit budget still wins
        // there, and earlier models take none.
        if provider == Provider::Google
            && crate::gemini::gemini_thinking_level(model, &effort).is_some()
        {
            provider_options
                .get_or_insert_with(ProviderRequestOptions::default)
                .google
                .get_or_insert_with(GoogleRequestOptions::default)
                .thinking
                .get_or_insert_with(GoogleThinkingOptions::default)
                .level = Some(effort.trim().to_ascii_lowercase());
        }
    }
    CallOptions {
        settings: config.map(crate::CallSettings::from).unwrap_or_default(),
        use_responses_api: responses,
        provider_options,
    }
}

/// Normalized per-provider options, one entry per block of the model config. A client
/// reads its own entry: OpenAI and Azure read `openai`, Anthropic and Bedrock read
/// `anthropic`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProviderRequestOptions {
    /// OpenAI / Azure.
    pub openai: Option<OpenAiRequestOptions>,
    /// Anthropic / Bedrock.
    pub anthropic: Option<AnthropicRequestOptions>,
    /// Google.
    pub google: Option<GoogleRequestOptions>,
    /// OpenAI Compatible.
    pub openai_compat: Option<OpenAiCompatRequestOptions>,
    /// OpenRouter.
    pub openrouter: Option<OpenRouterRequestOptions>,
    /// Vercel AI Gateway.
    pub vercel: Option<VercelRequestOptions>,
}

impl ProviderRequestOptions {
    /// Whether no entry is present.
    pub fn is_empty(&self) -> bool {
        self.openai.is_none()
            && self.anthropic.is_none()
            && self.google.is_none()
            && self.openai_compat.is_none()
            && self.openrouter.is_none()
            && self.vercel.is_none()
    }
}

/// OpenAI options for one of its two APIs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OpenAiRequestOptions {
    /// Responses API.
    Responses(OpenAiResponsesOptions),
    /// Chat Completions API.
    ChatCompletions(OpenAiChatOptions),
}

impl OpenAiRequestOptions {
    fn reasoning_effort_mut(&mut self) -> &mut Option<String> {
        match self {
            OpenAiRequestOptions::Responses(o) => &mut o.reasoning_effort,
            OpenAiRequestOptions::ChatCompletions(o) => &mut o.reasoning_effort,
        }
    }

    /// The reasoning effort, whichever the API.
    pub fn reasoning_effort(&self) -> Option<&str> {
        match self {
            OpenAiRequestOptions::Responses(o) => o.reasoning_effort.as_deref(),
            OpenAiRequestOptions::ChatCompletions(o) => o.reasoning_effort.as_deref(),
        }
    }
}

/// `logprobs` of a Responses request: a flag, or a number of top log probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenAiLogprobs {
    /// Return (or not) log probabilities.
    Enabled(bool),
    /// Return this many top log probabilities.
    Top(i64),
}

/// Settings of the OpenAI web-search tool.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenAiWebSearchOptions {
    /// `low`, `medium` or `high`.
    pub search_context_size: Option<String>,
    /// Domains search may use; empty for any.
    pub allowed_domains: Vec<String>,
}

/// OpenAI Responses API options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OpenAiResponsesOptions {
    /// Known include values; always contains
    /// [`OPENAI_INCLUDE_REASONING_ENCRYPTED_CONTENT`].
    pub include: Vec<String>,
    /// Instructions.
    pub instructions: Option<String>,
    /// Log probabilities (`top_log_probs` wins over `log_probs`).
    pub logprobs: Option<OpenAiLogprobs>,
    /// Maximum tool calls.
    pub max_tool_calls: Option<i64>,
    /// Request metadata.
    pub metadata: Option<JsonObject>,
    /// Parallel tool calls.
    pub parallel_tool_calls: Option<bool>,
    /// Prompt cache key.
    pub prompt_cache_key: Option<String>,
    /// Reasoning effort (OpenAI allow-list).
    pub reasoning_effort: Option<String>,
    /// Reasoning summary mode.
    pub reasoning_summary: Option<String>,
    /// Safety identifier.
    pub safety_identifier: Option<String>,
    /// Service tier (normalized).
    pub service_tier: Option<String>,
    /// Store the response server-side; defaults to `true`.
    pub store: bool,
    /// Strict JSON schema.
    pub strict_json_schema: Option<bool>,
    /// Text verbosity (normalized).
    pub text_verbosity: Option<String>,
    /// End-user id.
    pub user: Option<String>,
    /// Web search, when enabled.
    pub web_search: Option<OpenAiWebSearchOptions>,
}

/// OpenAI Chat Completions options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OpenAiChatOptions {
    /// Token id → bias.
    pub logit_bias: Option<BTreeMap<String, i64>>,
    /// Return log probabilities.
    pub log_probs: Option<bool>,
    /// Top log probabilities.
    pub top_log_probs: Option<i64>,
    /// Parallel tool calls.
    pub parallel_tool_calls: Option<bool>,
    /// End-user id.
    pub user: Option<String>,
    /// Reasoning effort (OpenAI allow-list).
    pub reasoning_effort: Option<String>,
    /// Maximum completion tokens.
    pub max_completion_tokens: Option<i64>,
    /// Text verbosity (normalized).
    pub text_verbosity: Option<String>,
    /// Predicted output.
    pub prediction: Option<JsonObject>,
    /// Store the completion; defaults to `true`.
    pub store: bool,
    /// Request metadata.
    pub metadata: Option<JsonObject>,
    /// Prompt cache key.
    pub prompt_cache_key: Option<String>,
    /// Safety identifier.
    pub safety_identifier: Option<String>,
    /// Service tier (normalized).
    pub service_tier: Option<String>,
    /// Structured outputs.
    pub structured_outputs: Option<bool>,
}

/// Settings of the Anthropic web-search tool.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnthropicWebSearchOptions {
    /// Domains search may use; empty for any.
    pub allowed_domains: Vec<String>,
    /// Domains search must not use.
    pub blocked_domains: Vec<String>,
}

/// Anthropic (and Bedrock) options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnthropicRequestOptions {
    /// Send reasoning back to the model.
    pub send_reasoning: Option<bool>,
    /// Extended-thinking budget; thinking is on only when set.
    pub thinking_budget_tokens: Option<i64>,
    /// Effort (Anthropic allow-list).
    pub effort: Option<String>,
    /// Thinking display mode.
    pub thinking_display: Option<String>,
    /// Disable parallel tool use.
    pub disable_parallel_tool_use: Option<bool>,
    /// Web search, when enabled.
    pub web_search: Option<AnthropicWebSearchOptions>,
    /// Ask for the 1M-token context window.
    pub context_1m: Option<bool>,
}

/// Google thinking settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GoogleThinkingOptions {
    /// Thinking token budget.
    pub budget: Option<i64>,
    /// Thinking level.
    pub level: Option<String>,
    /// Include thoughts in the response.
    pub include_thoughts: Option<bool>,
}

/// One Google safety setting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GoogleSafetySetting {
    /// Harm category (trimmed).
    pub category: String,
    /// Block threshold (trimmed).
    pub threshold: String,
}

/// Google options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GoogleRequestOptions {
    /// Thinking settings.
    pub thinking: Option<GoogleThinkingOptions>,
    /// Cached content name.
    pub cached_content: Option<String>,
    /// Safety settings, copied in order.
    pub safety_settings: Option<Vec<GoogleSafetySetting>>,
    /// Default block threshold.
    pub threshold: Option<String>,
    /// Enable Google search grounding.
    pub web_search: Option<bool>,
}

/// OpenAI Compatible options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenAiCompatRequestOptions {
    /// End-user id.
    pub user: Option<String>,
    /// Reasoning effort (OpenAI allow-list).
    pub reasoning_effort: Option<String>,
}

/// Reasoning settings of OpenRouter and Vercel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReasoningRequestOptions {
    /// Enable reasoning.
    pub enabled: Option<bool>,
    /// Exclude reasoning from the response.
    pub exclude: Option<bool>,
    /// Reasoning token budget.
    pub max_tokens: Option<i64>,
    /// Effort (the provider's allow-list).
    pub effort: Option<String>,
}

/// OpenRouter options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OpenRouterRequestOptions {
    /// Reasoning.
    pub reasoning: Option<ReasoningRequestOptions>,
    /// Extra body fields.
    pub extra_body: Option<JsonObject>,
    /// Ask for usage in the stream.
    pub include_usage: Option<bool>,
    /// Token id → bias.
    pub logit_bias: Option<BTreeMap<String, i64>>,
    /// Log probabilities.
    pub log_probs: Option<bool>,
    /// Parallel tool calls.
    pub parallel_tool_calls: Option<bool>,
    /// End-user id.
    pub user: Option<String>,
    /// Provider routing (strings trimmed, blanks unset).
    pub provider: Option<ChatModelOpenRouterProvider>,
}

/// Vercel AI Gateway options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VercelRequestOptions {
    /// Reasoning.
    pub reasoning: Option<ReasoningRequestOptions>,
    /// Gateway routing.
    pub gateway: Option<ChatModelVercelGatewayProviderOptions>,
    /// End-user id.
    pub user: Option<String>,
    /// Token id → bias.
    pub logit_bias: Option<BTreeMap<String, i64>>,
    /// Log probabilities.
    pub logprobs: Option<bool>,
    /// Top log probabilities.
    pub top_logprobs: Option<i64>,
    /// Parallel tool calls.
    pub parallel_tool_calls: Option<bool>,
    /// Extra body fields.
    pub extra_body: Option<JsonObject>,
}

fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn list(values: &Option<Vec<String>>) -> Vec<String> {
    values
        .iter()
        .flatten()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

fn owned(value: Option<&'static str>) -> Option<String> {
    value.map(str::to_owned)
}

/// Converts the model config's provider blocks. Absent blocks give no
/// entry; the result is `None` when no entry remains. Strings are trimmed and blank ones
/// unset; efforts, verbosity and service tier are normalized (unknown values unset).
/// `responses` picks the OpenAI API ([`uses_openai_responses_api`]); both default `store`
/// to `true`.
pub fn provider_request_options(
    options: &ChatModelProviderOptions,
    responses: bool,
) -> Option<ProviderRequestOptions> {
    let result = ProviderRequestOptions {
        openai: options
            .openai
            .as_ref()
            .map(|o| openai_options(o, responses)),
        anthropic: options.anthropic.as_ref().map(anthropic_options),
        google: options.google.as_ref().map(google_options),
        openai_compat: options.openaicompat.as_ref().map(openai_compat_options),
        openrouter: options.openrouter.as_ref().map(openrouter_options),
        vercel: options.vercel.as_ref().map(vercel_options),
    };
    (!result.is_empty()).then_some(result)
}

fn openai_options(o: &ChatModelOpenAIProviderOptions, responses: bool) -> OpenAiRequestOptions {
    let effort = owned(openai_effort(o.reasoning_effort.as_deref()));
    let verbosity = owned(openai_text_verbosity(o.text_verbosity.as_deref()));
    let tier = owned(openai_service_tier(o.service_tier.as_deref()));
    if !responses {
        return OpenAiRequestOptions::ChatCompletions(OpenAiChatOptions {
            logit_bias: o.logit_bias.clone(),
            log_probs: o.log_probs,
            top_log_probs: o.top_log_probs,
            parallel_tool_calls: o.parallel_tool_calls,
            user: text(&o.user),
            reasoning_effort: effort,
            max_completion_tokens: o.max_completion_tokens,
            text_verbosity: verbosity,
            prediction: o.prediction.clone(),
            store: o.store.unwrap_or(true),
            metadata: o.metadata.clone(),
            prompt_cache_key: text(&o.prompt_cache_key),
            safety_identifier: text(&o.safety_identifier),
            service_tier: tier,
            structured_outputs: o.structured_outputs,
        });
    }
    let mut include: Vec<String> = Vec::new();
    for value in o.include.iter().flatten() {
        let value = value.trim();
        if OPENAI_RESPONSES_INCLUDES.contains(&value) && !include.iter().any(|i| i == value) {
            include.push(value.to_owned());
        }
    }
    if !include
        .iter()
        .any(|i| i == OPENAI_INCLUDE_REASONING_ENCRYPTED_CONTENT)
    {
        include.push(OPENAI_INCLUDE_REASONING_ENCRYPTED_CONTENT.to_owned());
    }
    let logprobs = match (o.top_log_probs, o.log_probs) {
        (Some(n), _) => Some(OpenAiLogprobs::Top(n)),
        (None, Some(b)) => Some(OpenAiLogprobs::Enabled(b)),
        (None, None) => None,
    };
    OpenAiRequestOptions::Responses(OpenAiResponsesOptions {
        include,
        instructions: text(&o.instructions),
        logprobs,
        max_tool_calls: o.max_tool_calls,
        metadata: o.metadata.clone(),
        parallel_tool_calls: o.parallel_tool_calls,
        prompt_cache_key: text(&o.prompt_cache_key),
        reasoning_effort: effort,
        reasoning_summary: text(&o.reasoning_summary),
        safety_identifier: text(&o.safety_identifier),
        service_tier: tier,
        store: o.store.unwrap_or(true),
        strict_json_schema: o.strict_json_schema,
        text_verbosity: verbosity,
        user: text(&o.user),
        web_search: (o.web_search_enabled == Some(true)).then(|| OpenAiWebSearchOptions {
            search_context_size: owned(openai_search_context_size(
                o.search_context_size.as_deref(),
            )),
            allowed_domains: list(&o.allowed_domains),
        }),
    })
}

fn anthropic_options(o: &ChatModelAnthropicProviderOptions) -> AnthropicRequestOptions {
    AnthropicRequestOptions {
        send_reasoning: o.send_reasoning,
        thinking_budget_tokens: o.thinking.as_ref().and_then(|t| t.budget_tokens),
        effort: owned(anthropic_effort(o.effort.as_deref())),
        thinking_display: text(&o.thinking_display),
        disable_parallel_tool_use: o.disable_parallel_tool_use,
        web_search: (o.web_search_enabled == Some(true)).then(|| AnthropicWebSearchOptions {
            allowed_domains: list(&o.allowed_domains),
            blocked_domains: list(&o.blocked_domains),
        }),
        context_1m: o.context_1m_enabled,
    }
}

fn google_options(o: &ChatModelGoogleProviderOptions) -> GoogleRequestOptions {
    GoogleRequestOptions {
        thinking: o.thinking_config.as_ref().map(|t| GoogleThinkingOptions {
            budget: t.thinking_budget,
            level: text(&t.thinking_level),
            include_thoughts: t.include_thoughts,
        }),
        cached_content: text(&o.cached_content),
        safety_settings: o.safety_settings.as_ref().map(|settings| {
            settings
                .iter()
                .map(|s| GoogleSafetySetting {
                    category: s.category.as_deref().unwrap_or_default().trim().to_owned(),
                    threshold: s.threshold.as_deref().unwrap_or_default().trim().to_owned(),
                })
                .collect()
        }),
        threshold: text(&o.threshold),
        web_search: o.web_search_enabled,
    }
}

fn openai_compat_options(o: &ChatModelOpenAICompatProviderOptions) -> OpenAiCompatRequestOptions {
    OpenAiCompatRequestOptions {
        user: text(&o.user),
        reasoning_effort: owned(openai_effort(o.reasoning_effort.as_deref())),
    }
}

fn reasoning_options(
    r: &ChatModelReasoningOptions,
    effort: fn(Option<&str>) -> Option<&'static str>,
) -> ReasoningRequestOptions {
    ReasoningRequestOptions {
        enabled: r.enabled,
        exclude: r.exclude,
        max_tokens: r.max_tokens,
        effort: owned(effort(r.effort.as_deref())),
    }
}

fn openrouter_options(o: &ChatModelOpenRouterProviderOptions) -> OpenRouterRequestOptions {
    OpenRouterRequestOptions {
        reasoning: o
            .reasoning
            .as_ref()
            .map(|r| reasoning_options(r, openrouter_effort)),
        extra_body: o.extra_body.clone(),
        include_usage: o.include_usage,
        logit_bias: o.logit_bias.clone(),
        log_probs: o.log_probs,
        parallel_tool_calls: o.parallel_tool_calls,
        user: text(&o.user),
        provider: o.provider.as_ref().map(|p| ChatModelOpenRouterProvider {
            order: p.order.clone(),
            allow_fallbacks: p.allow_fallbacks,
            require_parameters: p.require_parameters,
            data_collection: text(&p.data_collection),
            only: p.only.clone(),
            ignore: p.ignore.clone(),
            quantizations: p.quantizations.clone(),
            sort: text(&p.sort),
        }),
    }
}

fn vercel_options(o: &ChatModelVercelProviderOptions) -> VercelRequestOptions {
    VercelRequestOptions {
        reasoning: o
            .reasoning
            .as_ref()
            .map(|r| reasoning_options(r, vercel_effort)),
        gateway: o.provider_options.clone(),
        user: text(&o.user),
        logit_bias: o.logit_bias.clone(),
        logprobs: o.logprobs,
        top_logprobs: o.top_logprobs,
        parallel_tool_calls: o.parallel_tool_calls,
        extra_body: o.extra_body.clone(),
    }
}

/// Sets a reasoning effort on converted options (Coder's `ApplyReasoningEffortToOptions`).
///
/// A blank effort changes nothing. When the model's own entry is missing and accepts the
/// effort, an empty one is added first (OpenAI and Azure: `openai`, Responses or Chat per
/// `responses`; Anthropic and Bedrock: `anthropic`; OpenAI Compatible, OpenRouter, Vercel:
/// their own; Google: none). Then every present entry whose allow-list accepts the effort
/// takes it (`openai` and `openai_compat` share OpenAI's list; OpenRouter and Vercel set
/// `reasoning.effort`, creating the reasoning block); entries that do not accept it keep
/// their value.
pub fn apply_reasoning_effort(
    options: &mut Option<ProviderRequestOptions>,
    provider: Provider,
    responses: bool,
    effort: &str,
) {
    if effort.trim().is_empty() {
        return;
    }
    let effort = Some(effort);
    let o = options.get_or_insert_with(ProviderRequestOptions::default);
    match provider {
        Provider::OpenAi | Provider::Azure
            if o.openai.is_none() && openai_effort(effort).is_some() =>
        {
            o.openai = Some(openai_options(
                &ChatModelOpenAIProviderOptions::default(),
                responses,
            ));
        }
        Provider::Anthropic | Provider::Bedrock
            if o.anthropic.is_none() && anthropic_effort(effort).is_some() =>
        {
            o.anthropic = Some(AnthropicRequestOptions::default());
        }
        Provider::OpenAiCompat if o.openai_compat.is_none() && openai_effort(effort).is_some() => {
            o.openai_compat = Some(OpenAiCompatRequestOptions::default());
        }
        Provider::OpenRouter if o.openrouter.is_none() && openrouter_effort(effort).is_some() => {
            o.openrouter = Some(OpenRouterRequestOptions::default());
        }
        Provider::Vercel if o.vercel.is_none() && vercel_effort(effort).is_some() => {
            o.vercel = Some(VercelRequestOptions::default());
        }
        _ => {}
    }
    if let (Some(entry), Some(e)) = (o.openai.as_mut(), openai_effort(effort)) {
        *entry.reasoning_effort_mut() = Some(e.to_owned());
    }
    if let (Some(entry), Some(e)) = (o.anthropic.as_mut(), anthropic_effort(effort)) {
        entry.effort = Some(e.to_owned());
    }
    if let (Some(entry), Some(e)) = (o.openai_compat.as_mut(), openai_effort(effort)) {
        entry.reasoning_effort = Some(e.to_owned());
    }
    if let (Some(entry), Some(e)) = (o.openrouter.as_mut(), openrouter_effort(effort)) {
        entry.reasoning.get_or_insert_with(Default::default).effort = Some(e.to_owned());
    }
    if let (Some(entry), Some(e)) = (o.vercel.as_mut(), vercel_effort(effort)) {
        entry.reasoning.get_or_insert_with(Default::default).effort = Some(e.to_owned());
    }
    if o.is_empty() {
        *options = None;
    }
}

fn fill<T: Clone>(dst: &mut Option<T>, src: &Option<T>) {
    if dst.is_none() {
        dst.clone_from(src);
    }
}

/// Blank strings count as unset, as they do when options are converted.
fn fill_text(dst: &mut Option<String>, src: &Option<String>) {
    if dst.as_deref().is_none_or(|v| v.trim().is_empty()) && src.is_some() {
        dst.clone_from(src);
    }
}

fn fill_block<T: Clone>(dst: &mut Option<T>, src: &Option<T>, fields: impl FnOnce(&mut T, &T)) {
    match (dst.as_mut(), src) {
        (None, _) => dst.clone_from(src),
        (Some(d), Some(s)) => fields(d, s),
        (Some(_), None) => {}
    }
}

/// Fills every option `dst` leaves unset from `defaults`, nested blocks field by field
/// (Coder's `MergeMissingProviderOptions`). Blank strings count as unset; lists and maps
/// that are present (even empty) are kept.
pub fn merge_missing_provider_options(
    dst: &mut Option<ChatModelProviderOptions>,
    defaults: Option<&ChatModelProviderOptions>,
) {
    let Some(defaults) = defaults else {
        return;
    };
    let Some(d) = dst.as_mut() else {
        *dst = Some(defaults.clone());
        return;
    };
    fill_block(&mut d.openai, &defaults.openai, |d, s| {
        fill(&mut d.include, &s.include);
        fill_text(&mut d.instructions, &s.instructions);
        fill(&mut d.logit_bias, &s.logit_bias);
        fill(&mut d.log_probs, &s.log_probs);
        fill(&mut d.top_log_probs, &s.top_log_probs);
        fill(&mut d.max_tool_calls, &s.max_tool_calls);
        fill(&mut d.parallel_tool_calls, &s.parallel_tool_calls);
        fill_text(&mut d.user, &s.user);
        fill_text(&mut d.reasoning_effort, &s.reasoning_effort);
        fill_text(&mut d.reasoning_summary, &s.reasoning_summary);
        fill(&mut d.max_completion_tokens, &s.max_completion_tokens);
        fill_text(&mut d.text_verbosity, &s.text_verbosity);
        fill(&mut d.prediction, &s.prediction);
        fill(&mut d.store, &s.store);
        fill(&mut d.metadata, &s.metadata);
        fill_text(&mut d.prompt_cache_key, &s.prompt_cache_key);
        fill_text(&mut d.safety_identifier, &s.safety_identifier);
        fill_text(&mut d.service_tier, &s.service_tier);
        fill(&mut d.structured_outputs, &s.structured_outputs);
        fill(&mut d.strict_json_schema, &s.strict_json_schema);
        fill(&mut d.web_search_enabled, &s.web_search_enabled);
        fill_text(&mut d.search_context_size, &s.search_context_size);
        fill(&mut d.allowed_domains, &s.allowed_domains);
    });
    fill_block(&mut d.anthropic, &defaults.anthropic, |d, s| {
        fill(&mut d.send_reasoning, &s.send_reasoning);
        fill_block(&mut d.thinking, &s.thinking, |d, s| {
            fill(&mut d.budget_tokens, &s.budget_tokens);
        });
        fill_text(&mut d.effort, &s.effort);
        fill_text(&mut d.thinking_display, &s.thinking_display);
        fill(
            &mut d.disable_parallel_tool_use,
            &s.disable_parallel_tool_use,
        );
        fill(&mut d.web_search_enabled, &s.web_search_enabled);
        fill(&mut d.allowed_domains, &s.allowed_domains);
        fill(&mut d.blocked_domains, &s.blocked_domains);
        fill(&mut d.context_1m_enabled, &s.context_1m_enabled);
    });
    fill_block(&mut d.google, &defaults.google, |d, s| {
        fill_block(&mut d.thinking_config, &s.thinking_config, |d, s| {
            fill(&mut d.thinking_budget, &s.thinking_budget);
            fill_text(&mut d.thinking_level, &s.thinking_level);
            fill(&mut d.include_thoughts, &s.include_thoughts);
        });
        fill_text(&mut d.cached_content, &s.cached_content);
        fill(&mut d.safety_settings, &s.safety_settings);
        fill_text(&mut d.threshold, &s.threshold);
        fill(&mut d.web_search_enabled, &s.web_search_enabled);
    });
    fill_block(&mut d.openaicompat, &defaults.openaicompat, |d, s| {
        fill_text(&mut d.user, &s.user);
        fill_text(&mut d.reasoning_effort, &s.reasoning_effort);
    });
    fill_block(&mut d.openrouter, &defaults.openrouter, |d, s| {
        fill_block(&mut d.reasoning, &s.reasoning, fill_reasoning);
        fill(&mut d.extra_body, &s.extra_body);
        fill(&mut d.include_usage, &s.include_usage);
        fill(&mut d.logit_bias, &s.logit_bias);
        fill(&mut d.log_probs, &s.log_probs);
        fill(&mut d.parallel_tool_calls, &s.parallel_tool_calls);
        fill_text(&mut d.user, &s.user);
        fill_block(&mut d.provider, &s.provider, |d, s| {
            fill(&mut d.order, &s.order);
            fill(&mut d.allow_fallbacks, &s.allow_fallbacks);
            fill(&mut d.require_parameters, &s.require_parameters);
            fill_text(&mut d.data_collection, &s.data_collection);
            fill(&mut d.only, &s.only);
            fill(&mut d.ignore, &s.ignore);
            fill(&mut d.quantizations, &s.quantizations);
            fill_text(&mut d.sort, &s.sort);
        });
    });
    fill_block(&mut d.vercel, &defaults.vercel, |d, s| {
        fill_block(&mut d.reasoning, &s.reasoning, fill_reasoning);
        fill_block(&mut d.provider_options, &s.provider_options, |d, s| {
            fill(&mut d.order, &s.order);
            fill(&mut d.models, &s.models);
        });
        fill_text(&mut d.user, &s.user);
        fill(&mut d.logit_bias, &s.logit_bias);
        fill(&mut d.logprobs, &s.logprobs);
        fill(&mut d.top_logprobs, &s.top_logprobs);
        fill(&mut d.parallel_tool_calls, &s.parallel_tool_calls);
        fill(&mut d.extra_body, &s.extra_body);
    });
}

fn fill_reasoning(d: &mut ChatModelReasoningOptions, s: &ChatModelReasoningOptions) {
    fill(&mut d.enabled, &s.enabled);
    fill(&mut d.exclude, &s.exclude);
    fill(&mut d.max_tokens, &s.max_tokens);
    fill_text(&mut d.effort, &s.effort);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ChatModelProviderOptions {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn responses_model_classification() {
        let yes = [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4",
            "gpt-4-turbo",
            "gpt-4.5-preview",
            "gpt-5",
            "gpt-5.2-codex",
            "GPT-5.1",
            "chatgpt-4o-latest",
            "gpt-5-chat-latest",
            "o1",
            "o3-mini",
            "o4-mini-2025-04-16",
            "codex-mini-latest",
            "gpt-oss-120b",
            "gpt-3.5-turbo",
            "gpt-10",
            "gpt-12-preview",
            "my-gpt-4o-deployment",
        ];
        for m in yes {
            assert!(is_openai_responses_model(m), "{m}");
        }
        let no = [
            "gpt-35-turbo",
            "gpt-3.5-turbo-instruct",
            "gpt-3",
            "davinci-002",
            "text-embedding-3",
            "gpt-",
            "gpt-0",
            "gpt-05",
            "llama-3",
            "",
            "o",
            "claude-sonnet-4",
        ];
        for m in no {
            assert!(!is_openai_responses_model(m), "{m}");
        }
        let on = ChatModelOpenAIConfig {
            use_responses_api: Some(true),
        };
        let off = ChatModelOpenAIConfig {
            use_responses_api: Some(false),
        };
        assert!(uses_openai_responses_api(Provider::OpenAi, "gpt-4o", None));
        assert!(uses_openai_responses_api(Provider::Azure, "gpt-5", None));
        assert!(!uses_openai_responses_api(
            Provider::OpenAi,
            "gpt-4o",
            Some(&off)
        ));
        assert!(uses_openai_responses_api(
            Provider::Azure,
            "my-deploy",
            Some(&on)
        ));
        assert!(!uses_openai_responses_api(
            Provider::OpenAiCompat,
            "gpt-4o",
            Some(&on)
        ));
        assert!(!uses_openai_responses_api(
            Provider::OpenRouter,
            "openai/gpt-5",
            None
        ));
    }

    #[test]
    fn absent_blocks_give_nothing() {
        assert_eq!(
            provider_request_options(&ChatModelProviderOptions::default(), true),
            None
        );
        let o = provider_request_options(&parse(r#"{"google":{}}"#), true).unwrap();
        assert_eq!(o.google, Some(GoogleRequestOptions::default()));
        assert!(o.openai.is_none() && o.anthropic.is_none());
    }

    #[test]
    fn openai_responses_conversion() {
        let o = parse(
            r#"{"openai":{"include":[" file_search_call.results ","bogus","file_search_call.results"],
                "instructions":"  be brief ","log_probs":true,"top_log_probs":3,
                "reasoning_effort":" HIGH ","reasoning_summary":" auto ","text_verbosity":"LOW",
                "service_tier":"Flex","user":"   ","prompt_cache_key":"k","max_tool_calls":4,
                "web_search_enabled":true,"search_context_size":"huge",
                "allowed_domains":[" docs.rs ",""]}}"#,
        );
        let got = provider_request_options(&o, true).unwrap().openai.unwrap();
        let OpenAiRequestOptions::Responses(r) = got else {
            panic!("expected Responses options");
        };
        assert_eq!(
            r.include,
            ["file_search_call.results", "reasoning.encrypted_content"]
        );
        assert_eq!(r.instructions.as_deref(), Some("be brief"));
        assert_eq!(r.logprobs, Some(OpenAiLogprobs::Top(3)));
        assert_eq!(r.reasoning_effort.as_deref(), Some("high"));
        assert_eq!(r.reasoning_summary.as_deref(), Some("auto"));
        assert_eq!(r.text_verbosity.as_deref(), Some("low"));
        assert_eq!(r.service_tier.as_deref(), Some("flex"));
        assert_eq!(r.user, None);
        assert!(r.store, "store defaults to true");
        assert_eq!(r.max_tool_calls, Some(4));
        assert_eq!(
            r.web_search,
            Some(OpenAiWebSearchOptions {
                search_context_size: None,
                allowed_domains: vec!["docs.rs".into()],
            })
        );
        let o = parse(r#"{"openai":{"log_probs":false,"store":false,"reasoning_effort":"max"}}"#);
        let Some(OpenAiRequestOptions::Responses(r)) =
            provider_request_options(&o, true).unwrap().openai
        else {
            panic!("expected Responses options");
        };
        assert_eq!(r.logprobs, Some(OpenAiLogprobs::Enabled(false)));
        assert!(!r.store);
        assert_eq!(r.reasoning_effort, None, "max is not an OpenAI effort");
        assert_eq!(r.include, [OPENAI_INCLUDE_REASONING_ENCRYPTED_CONTENT]);
        assert_eq!(r.web_search, None);
    }

    #[test]
    fn openai_chat_conversion() {
        let o = parse(
            r#"{"openai":{"logit_bias":{"50256":-100},"log_probs":true,"top_log_probs":2,
                "max_completion_tokens":100,"prediction":{"type":"content"},"service_tier":"auto",
                "text_verbosity":"loud","structured_outputs":true,"include":["x"]}}"#,
        );
        let Some(OpenAiRequestOptions::ChatCompletions(c)) =
            provider_request_options(&o, false).unwrap().openai
        else {
            panic!("expected Chat options");
        };
        assert_eq!(c.logit_bias.unwrap().get("50256"), Some(&-100));
        assert_eq!((c.log_probs, c.top_log_probs), (Some(true), Some(2)));
        assert_eq!(c.max_completion_tokens, Some(100));
        assert!(c.prediction.is_some());
        assert!(c.store);
        assert_eq!(c.service_tier.as_deref(), Some("auto"));
        assert_eq!(c.text_verbosity, None);
        assert_eq!(c.structured_outputs, Some(true));
    }

    #[test]
    fn other_provider_conversions() {
        let o = parse(
            r#"{"anthropic":{"send_reasoning":true,"thinking":{},"effort":" Max ",
                    "web_search_enabled":true,"blocked_domains":["x.com"]},
                "google":{"thinking_config":{"thinking_budget":512,"include_thoughts":true},
                    "cached_content":"  ","threshold":" BLOCK_NONE ",
                    "safety_settings":[{"category":" HARM_CATEGORY_HATE_SPEECH ","threshold":"BLOCK_LOW"}]},
                "openaicompat":{"user":" u1 ","reasoning_effort":"xhigh"},
                "openrouter":{"reasoning":{"effort":"xhigh","max_tokens":10},"include_usage":true,
                    "provider":{"order":["a"],"sort":" price ","data_collection":" "}},
                "vercel":{"reasoning":{"effort":"none"},"providerOptions":{"order":["b"]},"top_logprobs":1}}"#,
        );
        let got = provider_request_options(&o, false).unwrap();
        let a = got.anthropic.unwrap();
        assert_eq!(a.send_reasoning, Some(true));
        assert_eq!(
            a.thinking_budget_tokens, None,
            "thinking only with a budget"
        );
        assert_eq!(a.effort.as_deref(), Some("max"));
        assert_eq!(a.web_search.unwrap().blocked_domains, ["x.com"]);
        let g = got.google.unwrap();
        assert_eq!(
            g.thinking,
            Some(GoogleThinkingOptions {
                budget: Some(512),
                level: None,
                include_thoughts: Some(true)
            })
        );
        assert_eq!(g.cached_content, None);
        assert_eq!(g.threshold.as_deref(), Some("BLOCK_NONE"));
        assert_eq!(
            g.safety_settings.unwrap(),
            [GoogleSafetySetting {
                category: "HARM_CATEGORY_HATE_SPEECH".into(),
                threshold: "BLOCK_LOW".into()
            }]
        );
        let c = got.openai_compat.unwrap();
        assert_eq!(
            (c.user.as_deref(), c.reasoning_effort.as_deref()),
            (Some("u1"), Some("xhigh"))
        );
        let r = got.openrouter.unwrap();
        let reasoning = r.reasoning.unwrap();
        assert_eq!((reasoning.effort, reasoning.max_tokens), (None, Some(10)));
        let routing = r.provider.unwrap();
        assert_eq!(routing.sort.as_deref(), Some("price"));
        assert_eq!(routing.data_collection, None);
        let v = got.vercel.unwrap();
        assert_eq!(v.reasoning.unwrap().effort.as_deref(), Some("none"));
        assert_eq!(v.gateway.unwrap().order.unwrap(), ["b"]);
        assert_eq!(v.top_logprobs, Some(1));
        let with_budget = parse(r#"{"anthropic":{"thinking":{"budget_tokens":2048}}}"#);
        let a = provider_request_options(&with_budget, false)
            .unwrap()
            .anthropic
            .unwrap();
        assert_eq!(a.thinking_budget_tokens, Some(2048));
    }

    #[test]
    fn applying_reasoning_effort() {
        // Seeds the model's own entry.
        let table: [(Provider, bool, &str, &str); 6] = [
            (Provider::OpenAi, true, "high", "openai"),
            (Provider::Azure, false, "minimal", "openai"),
            (Provider::Anthropic, false, "max", "anthropic"),
            (Provider::Bedrock, false, "xhigh", "anthropic"),
            (Provider::OpenAiCompat, false, "low", "openai_compat"),
            (Provider::OpenRouter, false, "medium", "openrouter"),
        ];
        for (p, responses, effort, entry) in table {
            let mut o = None;
            apply_reasoning_effort(&mut o, p, responses, effort);
            let o = o.unwrap();
            let got = match entry {
                "openai" => o
                    .openai
                    .as_ref()
                    .and_then(|e| e.reasoning_effort())
                    .map(str::to_owned),
                "anthropic" => o.anthropic.and_then(|e| e.effort),
                "openai_compat" => o.openai_compat.and_then(|e| e.reasoning_effort),
                _ => o
                    .openrouter
                    .and_then(|e| e.reasoning)
                    .and_then(|r| r.effort),
            };
            assert_eq!(got.as_deref(), Some(effort), "{p}");
        }
        let mut o = None;
        apply_reasoning_effort(&mut o, Provider::OpenAi, true, "high");
        assert!(matches!(
            o.and_then(|o| o.openai),
            Some(OpenAiRequestOptions::Responses(_))
        ));
        // Google takes none; blank and unaccepted values change nothing.
        for (p, effort) in [
            (Provider::Google, "high"),
            (Provider::OpenAi, "  "),
            (Provider::OpenRouter, "xhigh"),
            (Provider::Vercel, "max"),
        ] {
            let mut o = None;
            apply_reasoning_effort(&mut o, p, false, effort);
            assert_eq!(o, None, "{p} {effort}");
        }
        // Every present entry that accepts the value takes it; the others keep theirs.
        let mut o = provider_request_options(
            &parse(
                r#"{"openai":{"reasoning_effort":"low"},"anthropic":{"effort":"low"},
                    "openrouter":{},"vercel":{"reasoning":{"effort":"low","max_tokens":5}}}"#,
            ),
            false,
        );
        apply_reasoning_effort(&mut o, Provider::Vercel, false, "xhigh");
        let o = o.unwrap();
        assert_eq!(o.openai.unwrap().reasoning_effort(), Some("xhigh"));
        assert_eq!(o.anthropic.unwrap().effort.as_deref(), Some("xhigh"));
        assert_eq!(
            o.openrouter.unwrap().reasoning,
            None,
            "openrouter has no xhigh"
        );
        let vr = o.vercel.unwrap().reasoning.unwrap();
        assert_eq!(
            (vr.effort.as_deref(), vr.max_tokens),
            (Some("xhigh"), Some(5))
        );
    }

    #[test]
    fn call_options_end_to_end() {
        let config: ChatModelCallConfig = serde_json::from_str(
            r#"{"max_output_tokens":1000,"temperature":0.2,"top_p":0.9,"top_k":40,
                "presence_penalty":0.1,"frequency_penalty":0.3,
                "reasoning_effort":{"default":"medium","max":"high"},
                "openai_config":{"use_responses_api":false},
                "provider_options":{"openai":{"user":"u"}}}"#,
        )
        .unwrap();
        let c = call_options(Provider::OpenAi, "gpt-5", Some(&config), Some("xhigh"));
        let settings = &c.settings;
        assert_eq!(settings.max_output_tokens, Some(1000));
        assert_eq!(
            (settings.temperature, settings.top_p, settings.top_k),
            (Some(0.2), Some(0.9), Some(40))
        );
        assert_eq!(
            (settings.presence_penalty, settings.frequency_penalty),
            (Some(0.1), Some(0.3))
        );
        assert!(!c.use_responses_api);
        let Some(OpenAiRequestOptions::ChatCompletions(chat)) =
            c.provider_options.and_then(|o| o.openai)
        else {
            panic!("expected Chat options");
        };
        assert_eq!(
            chat.reasoning_effort.as_deref(),
            Some("high"),
            "clamped to max"
        );
        assert_eq!(chat.user.as_deref(), Some("u"));

        let bare = call_options(Provider::Google, "gemini-2.5-pro", None, Some("high"));
        assert_eq!(bare, CallOptions::default());
        // With a reasoning-effort config, a Gemini 3 model gets the effort as its thinking
        // level; a Gemini 2.5 model gets nothing.
        let effort_config: ChatModelCallConfig = serde_json::from_str(
            r#"{"reasoning_effort":{"default":"medium","max":"high"},
                "provider_options":{"google":{"thinking_config":{"thinking_level":"low"}}}}"#,
        )
        .unwrap();
        let g3 = call_options(
            Provider::Google,
            "gemini-3-flash",
            Some(&effort_config),
            Some("high"),
        );
        let thinking = g3
            .provider_options
            .and_then(|o| o.google)
            .and_then(|g| g.thinking)
            .unwrap();
        assert_eq!(thinking.level.as_deref(), Some("high"));
        let g25 = call_options(
            Provider::Google,
            "gemini-2.5-flash",
            Some(&effort_config),
            Some("high"),
        );
        let thinking = g25
            .provider_options
            .and_then(|o| o.google)
            .and_then(|g| g.thinking)
            .unwrap();
        assert_eq!(thinking.level.as_deref(), Some("low"), "left as configured");
        let plain = call_options(Provider::Anthropic, "claude-sonnet-4", None, Some(" HIGH "));
        assert_eq!(
            plain
                .provider_options
                .and_then(|o| o.anthropic)
                .and_then(|a| a.effort)
                .as_deref(),
            Some("high")
        );
    }

    #[test]
    fn merge_missing() {
        let mut none = None;
        merge_missing_provider_options(&mut none, None);
        assert_eq!(none, None);
        let defaults = parse(
            r#"{"openai":{"store":false,"user":"d-user","reasoning_effort":"low","include":["a"]},
                "anthropic":{"thinking":{"budget_tokens":1024},"effort":"high"},
                "google":{"thinking_config":{"thinking_budget":9,"include_thoughts":true},"cached_content":"c"},
                "openaicompat":{"user":"cu"},
                "openrouter":{"reasoning":{"effort":"low","exclude":true},"provider":{"sort":"price","order":["x"]}},
                "vercel":{"reasoning":{"max_tokens":7},"providerOptions":{"models":["m"]},"user":"vu"}}"#,
        );
        let mut dst = None;
        merge_missing_provider_options(&mut dst, Some(&defaults));
        assert_eq!(dst.as_ref(), Some(&defaults));

        let mut dst = Some(parse(
            r#"{"openai":{"user":"  ","store":true,"include":[]},
                "anthropic":{"thinking":{}},
                "google":{"thinking_config":{"thinking_budget":1},"cached_content":" "},
                "openrouter":{"reasoning":{"effort":"high"},"provider":{"order":[]}},
                "vercel":{"reasoning":{"enabled":true}}}"#,
        ));
        merge_missing_provider_options(&mut dst, Some(&defaults));
        let d = dst.unwrap();
        let openai = d.openai.unwrap();
        assert_eq!(
            openai.user.as_deref(),
            Some("d-user"),
            "blank counts as unset"
        );
        assert_eq!(openai.store, Some(true), "set values are kept");
        assert_eq!(openai.include, Some(vec![]), "present lists are kept");
        assert_eq!(openai.reasoning_effort.as_deref(), Some("low"));
        let anthropic = d.anthropic.unwrap();
        assert_eq!(anthropic.thinking.unwrap().budget_tokens, Some(1024));
        assert_eq!(anthropic.effort.as_deref(), Some("high"));
        let google = d.google.unwrap();
        let t = google.thinking_config.unwrap();
        assert_eq!(
            (t.thinking_budget, t.include_thoughts),
            (Some(1), Some(true))
        );
        assert_eq!(google.cached_content.as_deref(), Some("c"));
        assert_eq!(d.openaicompat.unwrap().user.as_deref(), Some("cu"));
        let or = d.openrouter.unwrap();
        let r = or.reasoning.unwrap();
        assert_eq!((r.effort.as_deref(), r.exclude), (Some("high"), Some(true)));
        let p = or.provider.unwrap();
        assert_eq!((p.order, p.sort.as_deref()), (Some(vec![]), Some("price")));
        let v = d.vercel.unwrap();
        let vr = v.reasoning.unwrap();
        assert_eq!((vr.enabled, vr.max_tokens), (Some(true), Some(7)));
        assert_eq!(v.provider_options.unwrap().models.unwrap(), ["m"]);
        assert_eq!(v.user.as_deref(), Some("vu"));
    }
}
