//! The Anthropic Messages streaming client: [`AnthropicModel`] (request building and HTTP)
//! and [`AnthropicDecoder`] (SSE events to [`StreamPart`]s).
//!
//! The request is `POST {base}/v1/messages` with `stream: true`; the stream is Anthropic's
//! `message_start`, `content_block_*`, `message_delta`, `message_stop` event sequence.
//! `docs/clients/anthropic.md` lists every mapping rule and the reasons behind them; the
//! most important ones:
//!
//! - Prompt caching: an ephemeral `cache_control` marker on the last system block and on
//!   the last cacheable block of each of the final two non-empty messages.
//! - Consecutive messages of the same wire role are merged (tool results travel as
//!   `tool_result` blocks of a user message, placed before other user content); thinking
//!   blocks are replayed first in an assistant message.
//! - A tool input cut off by `max_tokens` is reported as a [`ToolCall`] with
//!   `arguments_valid: false`, never dropped; the finish reason is then
//!   [`FinishReason::Length`].
//! - A body that ends before `message_stop` fails with
//!   [`ANTHROPIC_STREAM_CLOSED_MESSAGE`], which `chaterror` classifies as a retryable
//!   timeout; an in-stream `error` event becomes a [`ProviderError`] carrying the event JSON
//!   as its body and the HTTP status Anthropic documents for the error type.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use chatcost::{AnthropicUsage, AnthropicUsageAccumulator};
use chaterror::ProviderError;
use codersdk::RawJson;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::catalog::Provider;
use crate::image::{check_inline_image, InlineAttachment};
use crate::language_model::{LanguageModel, ModelStream, StreamDecoder};
use crate::options::AnthropicRequestOptions;
use crate::request::{Message, ModelRequest, Part, Role, ToolChoice, ToolDefinition};
use crate::response::{FinishReason, StreamPart, ToolCall};
use crate::sse::SseEvent;
use crate::transport::{self, ClientSettings, MAX_ERROR_BODY_BYTES};

/// The Anthropic API's default base URL.
pub const ANTHROPIC_DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// Path of the Messages endpoint, appended to the base URL.
pub const ANTHROPIC_MESSAGES_PATH: &str = "/v1/messages";

/// Value of the `anthropic-version` header every request carries.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` sent when the call settings set no positive maximum (the API requires the
/// field; 4096 is what Coder's Anthropic client sends by default).
pub const ANTHROPIC_DEFAULT_MAX_TOKENS: i64 = 4096;

/// `anthropic-beta` flag sent when the model options ask for the 1M-token context window.
pub const ANTHROPIC_CONTEXT_1M_BETA: &str = "context-1m-2025-08-07";

/// Tool type of Anthropic's server-side web search.
pub const ANTHROPIC_WEB_SEARCH_TOOL_TYPE: &str = "web_search_20250305";

/// Name of Anthropic's server-side web search tool.
pub const ANTHROPIC_WEB_SEARCH_TOOL_NAME: &str = "web_search";

/// The error text of a stream that ended before `message_stop` (step 9:
/// classified as a retryable timeout).
pub const ANTHROPIC_STREAM_CLOSED_MESSAGE: &str = "anthropic stream closed before message_stop";

/// Most bytes accumulated for one content block (a tool's input JSON or a thinking
/// signature). A stream exceeding it fails instead of growing without bound.
pub const ANTHROPIC_MAX_BLOCK_BYTES: usize = 32 * 1024 * 1024;

/// Most content blocks open at the same time (started, not yet stopped). Anthropic streams
/// one block at a time; the cap only bounds what a broken or hostile stream can make the
/// decoder hold.
pub const ANTHROPIC_MAX_OPEN_BLOCKS: usize = 1024;

/// Most characters of a provider's in-stream error message repeated in the
/// [`ProviderError`] message (the full event JSON is kept as the body).
pub const ANTHROPIC_MAX_ERROR_MESSAGE_CHARS: usize = 1024;

const PROVIDER: &str = "anthropic";

/// A Claude model served by the Anthropic Messages API.
///
/// Cheap to clone (the HTTP client is shared). `Debug` never shows the API key.
///
/// The key is sent as `x-api-key` to the configured base URL only. `reqwest` strips only
/// `Authorization`-like headers on a cross-host redirect, so the `reqwest::Client` in
/// [`ClientSettings::http`] must not follow redirects to other hosts (see
/// `docs/clients/anthropic.md`). This client is for the direct API: AWS Bedrock must not
/// use it, since Bedrock requests must not carry `x-api-key` or `anthropic-version`.
#[derive(Clone)]
pub struct AnthropicModel {
    model: String,
    endpoint: transport::KeyedEndpoint,
}

impl fmt::Debug for AnthropicModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicModel")
            .field("model", &self.model)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl AnthropicModel {
    /// A model `model` (e.g. `claude-sonnet-4-5`) reached with `api_key` at `base_url`
    /// (blank or `None`: [`ANTHROPIC_DEFAULT_BASE_URL`]; a trailing `/` is ignored, and
    /// [`ANTHROPIC_MESSAGES_PATH`] is appended).
    pub fn new(
        model: impl Into<String>,
        api_key: impl Into<String>,
        base_url: Option<&str>,
        settings: ClientSettings,
    ) -> Self {
        let endpoint = transport::KeyedEndpoint::new(
            api_key.into(),
            base_url,
            ANTHROPIC_DEFAULT_BASE_URL,
            settings,
        );
        AnthropicModel {
            model: model.into(),
            endpoint,
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.endpoint.base_url
    }

    /// The full Messages endpoint URL.
    pub fn messages_url(&self) -> String {
        format!("{}{ANTHROPIC_MESSAGES_PATH}", self.endpoint.base_url)
    }

    /// The JSON body this client sends for `request` (exposed for tests and for clients of
    /// Anthropic-compatible endpoints that reuse the mapping).
    ///
    /// Fails only when an inline image is at or above the Anthropic cap (a pre-classified
    /// `config` error) or the body cannot be serialized.
    pub fn request_json(&self, request: &ModelRequest) -> Result<String, ProviderError> {
        request_body(Dialect::Direct { model: &self.model }, request, PROVIDER)
    }

    /// The `anthropic-beta` flags `request` needs, comma-joined; empty when none.
    pub fn beta_flags(&self, request: &ModelRequest) -> String {
        beta_flag_list(request).join(",")
    }

    fn build_http_request(
        &self,
        request: &ModelRequest,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let body = self.request_json(request)?;
        let key = self.endpoint.key_header(PROVIDER)?;
        let mut req = self
            .endpoint
            .settings
            .http
            .post(self.messages_url())
            .header("x-api-key", key)
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let betas = self.beta_flags(request);
        if !betas.is_empty() {
            req = req.header("anthropic-beta", betas);
        }
        Ok(
            transport::with_common_headers(req, &self.endpoint.settings, &request.correlation)
                .body(body),
        )
    }
}

#[async_trait::async_trait]
impl LanguageModel for AnthropicModel {
    fn provider(&self) -> Provider {
        Provider::Anthropic
    }

    fn model_id(&self) -> &str {
        &self.model
    }

    fn stream(&self, request: ModelRequest) -> ModelStream {
        crate::language_model::redact_errors(
            transport::stream_sse(
                self.build_http_request(&request),
                PROVIDER,
                self.endpoint.settings.clone(),
                AnthropicDecoder::new(),
            ),
            self.endpoint.redactor.clone(),
        )
    }

    fn redactor(&self) -> chaterror::Redactor {
        self.endpoint.redactor.clone()
    }
}

fn anthropic_options(request: &ModelRequest) -> Option<&AnthropicRequestOptions> {
    request
        .provider_options
        .as_ref()
        .and_then(|o| o.anthropic.as_ref())
}

// ---------------------------------------------------------------------------------------
// Request mapping
// ---------------------------------------------------------------------------------------

#[derive(Serialize)]
struct WireRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    /// Bedrock only: the Anthropic API version goes in the body, not a header.
    #[serde(skip_serializing_if = "Option::is_none")]
    anthropic_version: Option<&'static str>,
    /// Bedrock only: the `anthropic-beta` flags go in the body, not a header.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    anthropic_beta: Vec<&'static str>,
    max_tokens: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<OutBlock<'a>>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<WireThinking<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<WireOutputConfig<'a>>,
    /// Direct API only: Bedrock picks streaming by its endpoint and rejects the field.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<OutBlock<'a>>,
}

#[derive(Serialize, Clone, Copy)]
struct CacheControl {
    #[serde(rename = "type")]
    kind: &'static str,
}

const EPHEMERAL: CacheControl = CacheControl { kind: "ephemeral" };

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutBlock<'a> {
    Text {
        text: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Image {
        source: OutSource<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Document {
        source: OutSource<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Cow<'a, RawJson>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    ServerToolUse {
        id: &'a str,
        name: &'a str,
        input: Cow<'a, RawJson>,
    },
    WebSearchToolResult {
        tool_use_id: &'a str,
        content: &'a RawJson,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
}

impl OutBlock<'_> {
    /// Puts a cache marker on this block; `false` for block types that cannot carry one
    /// (thinking blocks, provider tool blocks).
    fn mark_cached(&mut self) -> bool {
        match self {
            OutBlock::Text { cache_control, .. }
            | OutBlock::Image { cache_control, .. }
            | OutBlock::Document { cache_control, .. }
            | OutBlock::ToolUse { cache_control, .. }
            | OutBlock::ToolResult { cache_control, .. } => {
                *cache_control = Some(EPHEMERAL);
                true
            }
            OutBlock::Thinking { .. }
            | OutBlock::RedactedThinking { .. }
            | OutBlock::ServerToolUse { .. }
            | OutBlock::WebSearchToolResult { .. } => false,
        }
    }

    fn is_tool_result(&self) -> bool {
        matches!(self, OutBlock::ToolResult { .. })
    }

    fn is_reasoning(&self) -> bool {
        matches!(
            self,
            OutBlock::Thinking { .. } | OutBlock::RedactedThinking { .. }
        )
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutSource<'a> {
    Base64 {
        media_type: String,
        data: String,
    },
    Text {
        media_type: &'static str,
        data: Cow<'a, str>,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireTool<'a> {
    Function {
        name: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        description: &'a str,
        input_schema: Cow<'a, RawJson>,
    },
    WebSearch {
        #[serde(rename = "type")]
        kind: &'static str,
        name: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        allowed_domains: Option<&'a [String]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        blocked_domains: Option<&'a [String]>,
    },
}

#[derive(Serialize)]
struct WireToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Serialize)]
struct WireThinking<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    budget_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'a str>,
}

#[derive(Serialize)]
struct WireOutputConfig<'a> {
    effort: &'a str,
}

fn non_blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Where a Messages body is sent: the two differ only in where the model, the API version
/// and the beta flags travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect<'a> {
    /// `POST {base}/v1/messages`: `model` and `stream` in the body, version and betas in
    /// headers.
    Direct { model: &'a str },
    /// Bedrock's `InvokeModelWithResponseStream`: the model is in the URL, the version and
    /// the betas in the body, no `stream` field.
    Bedrock,
}

/// The `anthropic-beta` flags `request` needs.
pub(crate) fn beta_flag_list(request: &ModelRequest) -> Vec<&'static str> {
    let mut flags = Vec::new();
    if anthropic_options(request).and_then(|o| o.context_1m) == Some(true) {
        flags.push(ANTHROPIC_CONTEXT_1M_BETA);
    }
    flags
}

/// The JSON body of a Messages call for `request` in `dialect` (shared by
/// [`AnthropicModel`] and [`BedrockModel`](crate::BedrockModel)).
pub(crate) fn request_body(
    dialect: Dialect<'_>,
    request: &ModelRequest,
    provider: &'static str,
) -> Result<String, ProviderError> {
    let mut body = build_request(request)?;
    match dialect {
        Dialect::Direct { model } => {
            body.model = Some(model);
            body.stream = Some(true);
        }
        Dialect::Bedrock => {
            body.anthropic_version = Some(crate::bedrock::BEDROCK_ANTHROPIC_VERSION);
            body.anthropic_beta = beta_flag_list(request);
        }
    }
    serde_json::to_string(&body).map_err(|e| {
        ProviderError::new(format!("encode {provider} request: {e}"))
            .with_provider(provider)
            .with_source(e)
    })
}

fn build_request<'a>(request: &'a ModelRequest) -> Result<WireRequest<'a>, ProviderError> {
    let opts = anthropic_options(request);
    let send_reasoning = opts.and_then(|o| o.send_reasoning).unwrap_or(true);
    let effort = opts.and_then(|o| non_blank(&o.effort));
    let budget = opts
        .and_then(|o| o.thinking_budget_tokens)
        .filter(|b| *b > 0);
    let display = opts.and_then(|o| non_blank(&o.thinking_display));

    // An explicit budget wins over adaptive thinking; effort alone turns on adaptive
    // thinking, as Coder's client does.
    let thinking = match (budget, effort) {
        (Some(b), _) => Some(WireThinking {
            kind: "enabled",
            budget_tokens: Some(b),
            display,
        }),
        (None, Some(_)) => Some(WireThinking {
            kind: "adaptive",
            budget_tokens: None,
            display,
        }),
        (None, None) => None,
    };

    let mut max_tokens = request
        .settings
        .max_output_tokens
        .filter(|m| *m > 0)
        .unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS);
    if let Some(b) = budget {
        // The API rejects a budget that does not leave room for the answer.
        if max_tokens <= b {
            max_tokens = b.saturating_add(ANTHROPIC_DEFAULT_MAX_TOKENS);
        }
    }

    // Anthropic rejects sampling changes while thinking; dropping them keeps the call
    // working instead of failing every turn of a misconfigured model.
    let sampling = thinking.is_none();
    let settings = &request.settings;

    let mut system: Vec<OutBlock<'a>> = request
        .system
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| OutBlock::Text {
            text: Cow::Borrowed(s.as_str()),
            cache_control: None,
        })
        .collect();
    if let Some(last) = system.last_mut() {
        last.mark_cached();
    }

    let (tools, tool_choice) = build_tools(request, opts);

    Ok(WireRequest {
        model: None,
        anthropic_version: None,
        anthropic_beta: Vec::new(),
        max_tokens,
        system,
        messages: build_messages(&request.messages, send_reasoning)?,
        tools,
        tool_choice,
        temperature: settings.temperature.filter(|_| sampling),
        top_p: settings.top_p.filter(|_| sampling),
        top_k: settings.top_k.filter(|_| sampling),
        thinking,
        output_config: effort.map(|effort| WireOutputConfig { effort }),
        stream: None,
    })
}

fn build_tools<'a>(
    request: &'a ModelRequest,
    opts: Option<&'a AnthropicRequestOptions>,
) -> (Vec<WireTool<'a>>, Option<WireToolChoice<'a>>) {
    let mut tools: Vec<WireTool<'a>> = request.tools.iter().map(function_tool).collect();
    if let Some(ws) = opts.and_then(|o| o.web_search.as_ref()) {
        // The API refuses both lists in one tool; the allow-list is the stricter intent.
        let allowed = (!ws.allowed_domains.is_empty()).then_some(ws.allowed_domains.as_slice());
        let blocked = if allowed.is_none() && !ws.blocked_domains.is_empty() {
            Some(ws.blocked_domains.as_slice())
        } else {
            None
        };
        tools.push(WireTool::WebSearch {
            kind: ANTHROPIC_WEB_SEARCH_TOOL_TYPE,
            name: ANTHROPIC_WEB_SEARCH_TOOL_NAME,
            allowed_domains: allowed,
            blocked_domains: blocked,
        });
    }
    if tools.is_empty() {
        // `tool_choice` without tools is rejected by the API.
        return (tools, None);
    }
    let parallel = opts.and_then(|o| o.disable_parallel_tool_use);
    let choice = match &request.tool_choice {
        None => parallel.filter(|d| *d).map(|d| WireToolChoice {
            kind: "auto",
            name: None,
            disable_parallel_tool_use: Some(d),
        }),
        Some(ToolChoice::Auto) => Some(WireToolChoice {
            kind: "auto",
            name: None,
            disable_parallel_tool_use: parallel,
        }),
        Some(ToolChoice::Required) => Some(WireToolChoice {
            kind: "any",
            name: None,
            disable_parallel_tool_use: parallel,
        }),
        Some(ToolChoice::Tool(name)) => Some(WireToolChoice {
            kind: "tool",
            name: Some(name.as_str()),
            disable_parallel_tool_use: parallel,
        }),
        Some(ToolChoice::None) => Some(WireToolChoice {
            kind: "none",
            name: None,
            disable_parallel_tool_use: None,
        }),
    };
    (tools, choice)
}

fn function_tool(tool: &ToolDefinition) -> WireTool<'_> {
    let schema = if tool.input_schema.is_object() {
        Cow::Borrowed(&tool.input_schema)
    } else {
        // The API requires an object schema; a tool without one takes no arguments.
        Cow::Owned(RawJson::from(
            serde_json::json!({"type": "object", "properties": {}}),
        ))
    };
    WireTool::Function {
        name: &tool.name,
        description: &tool.description,
        input_schema: schema,
    }
}

fn wire_role(role: Role) -> &'static str {
    match role {
        Role::Assistant => "assistant",
        Role::User | Role::Tool => "user",
    }
}

fn build_messages(
    messages: &[Message],
    send_reasoning: bool,
) -> Result<Vec<WireMessage<'_>>, ProviderError> {
    let mut converted: Vec<(&'static str, Vec<OutBlock<'_>>)> = Vec::with_capacity(messages.len());
    for message in messages {
        let blocks = message_blocks(message, send_reasoning)?;
        if !blocks.is_empty() {
            converted.push((wire_role(message.role), blocks));
        }
    }
    // Prompt caching: the final two messages each get one marker, on
    // their last block that can carry one.
    for (_, blocks) in converted.iter_mut().rev().take(2) {
        for block in blocks.iter_mut().rev() {
            if block.mark_cached() {
                break;
            }
        }
    }
    let mut out: Vec<WireMessage<'_>> = Vec::with_capacity(converted.len());
    for (role, blocks) in converted {
        match out.last_mut() {
            Some(prev) if prev.role == role => prev.content.extend(blocks),
            _ => out.push(WireMessage {
                role,
                content: blocks,
            }),
        }
    }
    for message in &mut out {
        // The API wants tool results first in a user turn and thinking first in an
        // assistant turn; a stable sort keeps everything else in order.
        if message.role == "user" {
            message.content.sort_by_key(|b| !b.is_tool_result());
        } else {
            message.content.sort_by_key(|b| !b.is_reasoning());
        }
    }
    Ok(out)
}

fn message_blocks(
    message: &Message,
    send_reasoning: bool,
) -> Result<Vec<OutBlock<'_>>, ProviderError> {
    let mut blocks = Vec::with_capacity(message.content.len());
    let assistant = message.role == Role::Assistant;
    for part in &message.content {
        match part {
            Part::Text { text } => {
                if !text.is_empty() {
                    blocks.push(OutBlock::Text {
                        text: Cow::Borrowed(text.as_str()),
                        cache_control: None,
                    });
                }
            }
            Part::File {
                media_type,
                data,
                filename,
            } => {
                if !assistant {
                    blocks.push(file_block(media_type, data, filename.as_deref())?);
                }
            }
            Part::Reasoning {
                text,
                signature,
                redacted_data,
                ..
            } => {
                if !assistant || !send_reasoning {
                    continue;
                }
                // Only signed thinking can be replayed; reasoning from another provider
                // (no signature) would be rejected.
                if let Some(signature) = signature.as_deref().filter(|s| !s.is_empty()) {
                    blocks.push(OutBlock::Thinking {
                        thinking: text,
                        signature,
                    });
                } else if let Some(data) = redacted_data.as_deref().filter(|d| !d.is_empty()) {
                    blocks.push(OutBlock::RedactedThinking { data });
                }
            }
            Part::ToolCall {
                id,
                name,
                arguments,
                provider_executed,
                ..
            } => {
                if !assistant {
                    continue;
                }
                let input = if arguments.is_object() {
                    Cow::Borrowed(arguments)
                } else {
                    Cow::Owned(RawJson::empty_object())
                };
                blocks.push(if *provider_executed {
                    OutBlock::ServerToolUse { id, name, input }
                } else {
                    OutBlock::ToolUse {
                        id,
                        name,
                        input,
                        cache_control: None,
                    }
                });
            }
            Part::ToolResult {
                tool_call_id,
                name,
                output,
                is_error,
            } => {
                if assistant {
                    // In an assistant turn a result can only be a provider-executed one.
                    if name == ANTHROPIC_WEB_SEARCH_TOOL_NAME {
                        blocks.push(OutBlock::WebSearchToolResult {
                            tool_use_id: tool_call_id,
                            content: output,
                        });
                    }
                    continue;
                }
                let content = match output.parse::<String>() {
                    Ok(text) => Cow::Owned(text),
                    Err(_) => Cow::Borrowed(output.get()),
                };
                blocks.push(OutBlock::ToolResult {
                    tool_use_id: tool_call_id,
                    content,
                    is_error: is_error.then_some(true),
                    cache_control: None,
                });
            }
        }
    }
    Ok(blocks)
}

fn file_block<'a>(
    media_type: &'a str,
    data: &'a [u8],
    filename: Option<&'a str>,
) -> Result<OutBlock<'a>, ProviderError> {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let name = filename.unwrap_or("attachment");
    if essence.starts_with("image/") {
        let size = u64::try_from(data.len()).unwrap_or(u64::MAX);
        check_inline_image(
            PROVIDER,
            &InlineAttachment {
                name,
                media_type,
                size_bytes: size,
            },
        )
        .map_err(|e| {
            ProviderError::new(e.to_string())
                .with_provider(PROVIDER)
                .with_source(e)
        })?;
        return Ok(OutBlock::Image {
            source: OutSource::Base64 {
                media_type: essence,
                data: base64::engine::general_purpose::STANDARD.encode(data),
            },
            cache_control: None,
        });
    }
    if essence == "application/pdf" {
        return Ok(OutBlock::Document {
            source: OutSource::Base64 {
                media_type: essence,
                data: base64::engine::general_purpose::STANDARD.encode(data),
            },
            title: filename,
            cache_control: None,
        });
    }
    if essence.starts_with("text/") {
        return Ok(OutBlock::Document {
            source: OutSource::Text {
                media_type: "text/plain",
                data: String::from_utf8_lossy(data),
            },
            title: filename,
            cache_control: None,
        });
    }
    // Tell the model something was attached rather than silently dropping it.
    Ok(OutBlock::Text {
        text: Cow::Owned(format!(
            "[attachment {name} ({essence}) omitted: Anthropic accepts images, PDF and text files]"
        )),
        cache_control: None,
    })
}

// ---------------------------------------------------------------------------------------
// Stream decoding
// ---------------------------------------------------------------------------------------

/// One event of the stream. Every field is optional so that a new or missing field never
/// breaks decoding; the event type comes from the JSON `type` (the SSE `event:` name is the
/// fallback, since some proxies send unnamed events and some omit `type`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct InEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
    index: Option<u32>,
    message: Option<InMessage>,
    content_block: Option<InBlock>,
    delta: Option<InDelta>,
    usage: Option<AnthropicUsage>,
    error: Option<InError>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InMessage {
    id: Option<String>,
    model: Option<String>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InBlock {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    name: Option<String>,
    text: Option<String>,
    thinking: Option<String>,
    signature: Option<String>,
    data: Option<String>,
    input: Option<Box<RawValue>>,
    tool_use_id: Option<String>,
    content: Option<Box<RawValue>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InDelta {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    thinking: Option<String>,
    signature: Option<String>,
    partial_json: Option<String>,
    citation: Option<InCitation>,
    stop_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InCitation {
    url: Option<String>,
    title: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InError {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InSearchResult {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
    title: Option<String>,
}

#[derive(Debug)]
enum Block {
    Text,
    Thinking {
        signature: String,
    },
    Redacted {
        data: String,
    },
    Tool {
        id: String,
        name: String,
        json: String,
        /// The `input` of `content_block_start` when it is not the usual empty object
        /// (a proxy may send the whole input there instead of streaming it).
        initial: Option<String>,
        provider_executed: bool,
    },
    Other,
}

/// Decodes an Anthropic Messages event stream into [`StreamPart`]s.
///
/// Pure and incremental: feed SSE events in order; the parts come out identical however
/// the body was chunked. See the module docs for the rules.
///
/// ```
/// use chatprovider::{decode_body, AnthropicDecoder, FinishReason, StreamPart};
///
/// let body = concat!(
///     "event: message_start\n",
///     r#"data: {"type":"message_start","message":{"id":"msg_1","model":"claude-x","usage":{"input_tokens":5,"output_tokens":1}}}"#,
///     "\n\n",
///     r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
///     "\n\n",
///     r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}   "#,
///     "\n\n",
///     r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#,
///     "\n\n",
///     r#"data: {"type":"message_stop"}"#,
/// );
/// let parts = decode_body(AnthropicDecoder::new(), body.as_bytes(), 1 << 20)?;
/// assert_eq!(parts[1], StreamPart::TextDelta { block: 0, delta: "Hi".into() });
/// let StreamPart::Finish { reason, usage } = &parts[2] else { unreachable!() };
/// assert_eq!(*reason, FinishReason::Stop);
/// assert_eq!((usage.input_tokens, usage.output_tokens), (Some(5), Some(2)));
///
/// // Without `message_stop` the stream is incomplete: a retryable timeout for chaterror.
/// let cut = body.rfind("data: {\"type\":\"message_stop").unwrap();
/// let err = decode_body(AnthropicDecoder::new(), body[..cut].as_bytes(), 1 << 20).unwrap_err();
/// assert_eq!(err.to_string(), chatprovider::ANTHROPIC_STREAM_CLOSED_MESSAGE);
/// # Ok::<(), chaterror::ProviderError>(())
/// ```
#[derive(Debug, Default)]
pub struct AnthropicDecoder {
    done: bool,
    message_id: Option<String>,
    usage: AnthropicUsageAccumulator,
    stop_reason: Option<String>,
    blocks: BTreeMap<u32, Block>,
    sources: u64,
}

impl AnthropicDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    fn next_source_id(&mut self) -> String {
        self.sources = self.sources.saturating_add(1);
        match &self.message_id {
            Some(id) => format!("{id}:source:{}", self.sources),
            None => format!("source:{}", self.sources),
        }
    }

    fn source(&mut self, url: String, title: Option<String>, out: &mut Vec<StreamPart>) {
        let id = self.next_source_id();
        out.push(StreamPart::Source { id, url, title });
    }

    fn block_start(
        &mut self,
        index: u32,
        mut block: InBlock,
        out: &mut Vec<StreamPart>,
    ) -> Result<(), ProviderError> {
        if !self.blocks.contains_key(&index) && self.blocks.len() >= ANTHROPIC_MAX_OPEN_BLOCKS {
            return Err(limit_error(format!(
                "anthropic stream opened more than {ANTHROPIC_MAX_OPEN_BLOCKS} content blocks"
            )));
        }
        let kind = block.kind.take().unwrap_or_default();
        let state = match kind.as_str() {
            "text" => {
                if let Some(text) = block.text.filter(|t| !t.is_empty()) {
                    out.push(StreamPart::TextDelta {
                        block: index,
                        delta: text,
                    });
                }
                Block::Text
            }
            "thinking" => {
                if let Some(text) = block.thinking.filter(|t| !t.is_empty()) {
                    out.push(StreamPart::ReasoningDelta {
                        block: index,
                        delta: text,
                    });
                }
                let signature = block.signature.unwrap_or_default();
                check_block_size(signature.len())?;
                Block::Thinking { signature }
            }
            "redacted_thinking" => Block::Redacted {
                data: block.data.unwrap_or_default(),
            },
            "tool_use" | "server_tool_use" => {
                let id = block.id.unwrap_or_default();
                let name = block.name.unwrap_or_default();
                let initial = block
                    .input
                    .map(|raw| raw.get().trim().to_owned())
                    .filter(|raw| !is_empty_object(raw));
                out.push(StreamPart::ToolCallStart {
                    block: index,
                    id: id.clone(),
                    name: name.clone(),
                });
                Block::Tool {
                    id,
                    name,
                    json: String::new(),
                    initial,
                    provider_executed: kind == "server_tool_use",
                }
            }
            other => {
                if let Some(tool) = other.strip_suffix("_tool_result") {
                    self.provider_tool_result(tool, block, out);
                }
                Block::Other
            }
        };
        self.blocks.insert(index, state);
        Ok(())
    }

    /// A `*_tool_result` block: the complete result of a tool the provider ran (web
    /// search results arrive whole in `content_block_start`).
    fn provider_tool_result(&mut self, tool: &str, block: InBlock, out: &mut Vec<StreamPart>) {
        let content = block
            .content
            .and_then(|raw| RawJson::from_json(raw.get()).ok())
            .unwrap_or_else(RawJson::null);
        let value = content.to_value();
        let is_error = value
            .get("type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.ends_with("_error"));
        out.push(StreamPart::ProviderToolResult {
            tool_call_id: block.tool_use_id.unwrap_or_default(),
            name: tool.to_owned(),
            result: content,
            is_error,
        });
        if let serde_json::Value::Array(items) = value {
            for item in items {
                let Ok(result) = serde_json::from_value::<InSearchResult>(item) else {
                    continue;
                };
                if result.kind.as_deref() != Some("web_search_result") {
                    continue;
                }
                if let Some(url) = result.url.filter(|u| !u.is_empty()) {
                    self.source(url, result.title, out);
                }
            }
        }
    }

    fn block_delta(
        &mut self,
        index: u32,
        delta: InDelta,
        out: &mut Vec<StreamPart>,
    ) -> Result<(), ProviderError> {
        match delta.kind.as_deref().unwrap_or_default() {
            "text_delta" => {
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    out.push(StreamPart::TextDelta {
                        block: index,
                        delta: text,
                    });
                }
            }
            "thinking_delta" => {
                if let Some(text) = delta.thinking.filter(|t| !t.is_empty()) {
                    out.push(StreamPart::ReasoningDelta {
                        block: index,
                        delta: text,
                    });
                }
            }
            "signature_delta" => {
                if let Some(Block::Thinking { signature }) = self.blocks.get_mut(&index) {
                    let add = delta.signature.unwrap_or_default();
                    check_block_size(signature.len().saturating_add(add.len()))?;
                    signature.push_str(&add);
                }
            }
            "input_json_delta" => {
                let chunk = delta.partial_json.unwrap_or_default();
                if let Some(Block::Tool { id, json, .. }) = self.blocks.get_mut(&index) {
                    if chunk.is_empty() {
                        return Ok(());
                    }
                    check_block_size(json.len().saturating_add(chunk.len()))?;
                    json.push_str(&chunk);
                    out.push(StreamPart::ToolCallDelta {
                        block: index,
                        id: id.clone(),
                        delta: chunk,
                    });
                }
            }
            "citations_delta" => {
                if let Some(citation) = delta.citation {
                    // Document citations (char/page locations) carry no URL to show.
                    if let Some(url) = citation.url.filter(|u| !u.is_empty()) {
                        self.source(url, citation.title, out);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn block_stop(&mut self, index: u32, out: &mut Vec<StreamPart>) {
        if let Some(block) = self.blocks.remove(&index) {
            finish_block(index, block, out);
        }
    }

    fn message_stop(&mut self, out: &mut Vec<StreamPart>) {
        // Blocks never stopped (a tool input cut off by max_tokens) are still reported.
        for (index, block) in std::mem::take(&mut self.blocks) {
            finish_block(index, block, out);
        }
        // Usage that cannot be normalized (a negative counter) is reported as unknown
        // rather than failing a response that was otherwise received in full.
        let usage = self.usage.finish().unwrap_or_default();
        out.push(StreamPart::Finish {
            reason: finish_reason(self.stop_reason.as_deref()),
            usage,
        });
        self.done = true;
    }
}

fn finish_block(index: u32, block: Block, out: &mut Vec<StreamPart>) {
    match block {
        Block::Thinking { signature } => out.push(StreamPart::ReasoningEnd {
            block: index,
            signature: (!signature.is_empty()).then_some(signature),
            redacted_data: None,
            item_id: None,
            encrypted_content: None,
        }),
        Block::Redacted { data } => out.push(StreamPart::ReasoningEnd {
            block: index,
            signature: None,
            redacted_data: Some(data),
            item_id: None,
            encrypted_content: None,
        }),
        Block::Tool {
            id,
            name,
            json,
            initial,
            provider_executed,
        } => {
            let arguments = if !json.trim().is_empty() {
                json
            } else {
                initial.unwrap_or_else(|| "{}".to_owned())
            };
            let arguments_valid = RawJson::from_json(&arguments).is_ok();
            out.push(StreamPart::ToolCall(ToolCall {
                id,
                name,
                arguments,
                arguments_valid,
                provider_executed,
            }));
        }
        Block::Text | Block::Other => {}
    }
}

fn is_empty_object(raw: &str) -> bool {
    raw.strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(|inner| inner.trim().is_empty())
}

fn check_block_size(len: usize) -> Result<(), ProviderError> {
    if len > ANTHROPIC_MAX_BLOCK_BYTES {
        return Err(limit_error(format!(
            "anthropic stream content block exceeds {ANTHROPIC_MAX_BLOCK_BYTES} bytes"
        )));
    }
    Ok(())
}

fn limit_error(message: String) -> ProviderError {
    ProviderError::new(message).with_provider(PROVIDER)
}

/// Maps Anthropic's `stop_reason`.
fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("tool_use") => FinishReason::ToolCalls,
        // Both mean the output was cut short by a token limit.
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("refusal") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
        None => FinishReason::Other(String::new()),
    }
}

/// The HTTP status Anthropic documents for an error type, so an error that arrives inside
/// a 200 stream classifies like the same error returned before streaming.
fn status_for_error_type(kind: &str) -> Option<u16> {
    Some(match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => return None,
    })
}

fn stream_error(data: &str, error: Option<InError>) -> ProviderError {
    let error = error.unwrap_or_default();
    let kind = error.kind.unwrap_or_default();
    let message: String = error
        .message
        .unwrap_or_default()
        .chars()
        .take(ANTHROPIC_MAX_ERROR_MESSAGE_CHARS)
        .collect();
    let text = match (kind.is_empty(), message.is_empty()) {
        (false, false) => format!("anthropic stream error: {kind}: {message}"),
        (false, true) => format!("anthropic stream error: {kind}"),
        (true, false) => format!("anthropic stream error: {message}"),
        (true, true) => "anthropic stream error".to_owned(),
    };
    let body = data.as_bytes();
    let body = body.get(..MAX_ERROR_BODY_BYTES).unwrap_or(body);
    let mut err = ProviderError::new(text)
        .with_provider(PROVIDER)
        .with_body(body.to_vec());
    if let Some(status) = status_for_error_type(&kind) {
        err = err.with_status(status);
    }
    err
}

impl StreamDecoder for AnthropicDecoder {
    fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamPart>,
    ) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        // Recorded streams pad data lines with trailing spaces.
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let parsed: InEvent = serde_json::from_str(data).map_err(|e| {
            if e.is_eof() {
                // The SSE layer dispatches a half-received last event when the body ends
                // early: that is a stream cut short, not a provider speaking nonsense.
                return ProviderError::new(format!(
                    "{ANTHROPIC_STREAM_CLOSED_MESSAGE} (last event truncated)"
                ))
                .with_provider(PROVIDER);
            }
            ProviderError::new(format!("anthropic stream event is not valid JSON: {e}"))
                .with_provider(PROVIDER)
                .with_source(e)
        })?;
        let kind = parsed.kind.as_deref().unwrap_or(event.event.as_str());
        let index = parsed.index.unwrap_or(0);
        match kind {
            "message_start" => {
                let message = parsed.message.unwrap_or_default();
                if let Some(usage) = &message.usage {
                    self.usage.message_start(usage);
                }
                self.message_id.clone_from(&message.id);
                out.push(StreamPart::ResponseMetadata {
                    id: message.id,
                    model: message.model,
                });
            }
            "content_block_start" => {
                self.block_start(index, parsed.content_block.unwrap_or_default(), out)?;
            }
            "content_block_delta" => {
                self.block_delta(index, parsed.delta.unwrap_or_default(), out)?;
            }
            "content_block_stop" => self.block_stop(index, out),
            "message_delta" => {
                if let Some(reason) = parsed.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason);
                }
                if let Some(usage) = &parsed.usage {
                    self.usage.message_delta(usage);
                }
            }
            "message_stop" => self.message_stop(out),
            "error" => return Err(stream_error(data, parsed.error)),
            // `ping` and event types added after this client was written.
            _ => {}
        }
        Ok(())
    }

    fn on_end(&mut self, _out: &mut Vec<StreamPart>) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        Err(ProviderError::new(ANTHROPIC_STREAM_CLOSED_MESSAGE).with_provider(PROVIDER))
    }

    fn is_done(&self) -> bool {
        self.done
    }
}
