//! The OpenAI Chat Completions streaming client, used for OpenAI Compatible servers,
//! OpenRouter, the Vercel AI Gateway, and OpenAI or Azure models configured not to use the
//! Responses API.
//!
//! [`OpenAiChatModel`] builds `POST {base_url}/chat/completions` with `stream: true` and
//! `stream_options.include_usage`, and [`OpenAiChatDecoder`] turns the SSE chunks into
//! [`StreamPart`]s. `docs/clients/openai-chat.md` documents the request mapping, the
//! decoding rules and every leniency; the short version:
//!
//! - Text comes from `delta.content` (a string, or an array of `text` parts) and
//!   `delta.refusal`; reasoning from `delta.reasoning_content` (DeepSeek, xAI, vLLM) or, when
//!   that is absent, `delta.reasoning` (OpenRouter).
//! - Tool-call deltas are merged by `index`; id and name are taken from the first delta
//!   that carries them, argument fragments are concatenated. Complete [`ToolCall`]s are
//!   emitted at the end, just before the one [`StreamPart::Finish`].
//! - Usage may arrive in a `choices: []` chunk, with the `finish_reason` chunk, or under
//!   `x_groq.usage`; the last usage object seen wins and is normalized with `chatcost`'s
//!   rule for the vendor ([`OpenAiChatUsageRule`]).
//! - The stream is complete at `data: [DONE]`, or when the body ends cleanly after a
//!   `finish_reason`. A body that ends before any `finish_reason` is the retryable timeout
//!   [`OPENAI_CHAT_STREAM_CLOSED_ERROR`]; an `{"error": …}` chunk is a [`ProviderError`]
//!   whose body is that JSON, so `chaterror` classifies it.

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use chatcost::normalize;
use chaterror::{ClassifiedError, ProviderError};
use codersdk::{ChatErrorKind, ChatMessageUsage, JsonObject, RawJson, SecretString};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{json, Map, Value};

use crate::catalog::{parse_http_url, Provider, ProviderCatalog};
use crate::error::{Error, ErrorKind};
use crate::keys::ProviderCredentials;
use crate::language_model::{
    decode_body, decode_events, LanguageModel, ModelStream, StreamDecoder,
};
use crate::options::{
    OpenAiChatOptions, OpenAiCompatRequestOptions, OpenAiRequestOptions, OpenRouterRequestOptions,
    ReasoningRequestOptions, VercelRequestOptions,
};
use crate::request::{Message, ModelRequest, Part, Role, ToolChoice, ToolDefinition};
use crate::resolve::is_openai_reasoning_model;
use crate::response::{FinishReason, StreamPart, ToolCall};
use crate::sse::SseError;
use crate::sse::SseEvent;
use crate::transport::{
    send, sse_events, startup_deadline, startup_timeout_error, transport_error,
    with_common_headers, ClientSettings, MAX_ERROR_BODY_BYTES,
};

/// Path segments appended to the base URL: `{base_url}/chat/completions`.
pub const OPENAI_CHAT_COMPLETIONS_PATH: [&str; 2] = ["chat", "completions"];

/// Text of the error for a body that ended before any choice reported a `finish_reason`
/// (and before `data: [DONE]`). It is pre-classified as a retryable `timeout`, as Coder
/// does for the other APIs' "stream closed before its terminal event" (step 9).
pub const OPENAI_CHAT_STREAM_CLOSED_ERROR: &str = "openai chat stream closed before finish_reason";

/// Most distinct tool calls accepted in one response; more is an error rather than
/// unbounded state.
pub const OPENAI_CHAT_MAX_TOOL_CALLS: usize = 256;

/// Most bytes of argument text accepted for one tool call (the SSE limit bounds one event,
/// this bounds the sum of a call's fragments).
pub const OPENAI_CHAT_MAX_TOOL_ARGUMENT_BYTES: usize = 16 * 1024 * 1024;

/// Most characters of an in-stream error message copied into the error text (the whole
/// error JSON is kept as the error body, up to [`MAX_ERROR_BODY_BYTES`]).
pub const OPENAI_CHAT_MAX_ERROR_MESSAGE_CHARS: usize = 1024;

/// Top-level request fields that an OpenRouter or Vercel `extra_body` may not replace:
/// replacing them would break the conversation, the tools or the streaming contract.
pub const OPENAI_CHAT_PROTECTED_BODY_FIELDS: [&str; 5] =
    ["model", "messages", "stream", "stream_options", "tools"];

/// The `data` of the event that ends a Chat Completions stream.
const DONE_MARKER: &str = "[DONE]";

/// Prefix of the error text of an in-stream error chunk.
const STREAM_ERROR_PREFIX: &str = "openai chat stream error";

/// Which `chatcost` rule normalizes a Chat Completions `usage` object (see
/// `docs/cost.md`): vendors disagree on whether `completion_tokens` include reasoning and
/// on how cached prompt tokens are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpenAiChatUsageRule {
    /// OpenAI and Azure: [`chatcost::normalize::openai_chat`].
    OpenAi,
    /// A server of unknown vendor (OpenAI Compatible, OpenRouter, Vercel):
    /// [`chatcost::normalize::deepseek_chat`] when the usage carries DeepSeek's
    /// `prompt_cache_hit_tokens`/`prompt_cache_miss_tokens`, otherwise
    /// [`chatcost::normalize::openai_compatible_chat`] (which detects xAI-style totals).
    OpenAiCompatible,
    /// xAI (`*.x.ai`): [`chatcost::normalize::xai_chat`] — reasoning is outside
    /// `completion_tokens` and is added to the output.
    Xai,
    /// DeepSeek (`*.deepseek.com`): [`chatcost::normalize::deepseek_chat`].
    DeepSeek,
}

impl OpenAiChatUsageRule {
    /// The rule for a provider reached at `base_url`: OpenAI and Azure use OpenAI's;
    /// OpenAI Compatible uses the vendor of the base URL
    /// ([`chatcost::openai_compat_vendor`]) and falls back to
    /// [`OpenAiChatUsageRule::OpenAiCompatible`]; gateways (OpenRouter, Vercel) use
    /// [`OpenAiChatUsageRule::OpenAiCompatible`].
    pub fn for_endpoint(provider: Provider, base_url: &str) -> Self {
        match provider {
            Provider::OpenAi | Provider::Azure => OpenAiChatUsageRule::OpenAi,
            Provider::OpenAiCompat => match chatcost::openai_compat_vendor(base_url) {
                Some("xai") => OpenAiChatUsageRule::Xai,
                Some("deepseek") => OpenAiChatUsageRule::DeepSeek,
                _ => OpenAiChatUsageRule::OpenAiCompatible,
            },
            _ => OpenAiChatUsageRule::OpenAiCompatible,
        }
    }

    /// Normalizes a raw `usage` object. Usage that does not parse or that `chatcost`
    /// rejects (negative or inconsistent counters) gives empty usage — the call then stays
    /// visibly unpriced instead of failing a response whose content is fine.
    pub fn normalize(self, usage: &Value) -> ChatMessageUsage {
        let result = match self {
            OpenAiChatUsageRule::OpenAi => {
                parse_usage(usage).and_then(|u| normalize::openai_chat(&u).ok())
            }
            OpenAiChatUsageRule::OpenAiCompatible if has_deepseek_cache_split(usage) => {
                parse_usage(usage).and_then(|u| normalize::deepseek_chat(&u).ok())
            }
            OpenAiChatUsageRule::OpenAiCompatible => {
                parse_usage(usage).and_then(|u| normalize::openai_compatible_chat(&u).ok())
            }
            OpenAiChatUsageRule::Xai => {
                parse_usage(usage).and_then(|u| normalize::xai_chat(&u).ok())
            }
            OpenAiChatUsageRule::DeepSeek => {
                parse_usage(usage).and_then(|u| normalize::deepseek_chat(&u).ok())
            }
        };
        result.unwrap_or_default()
    }
}

fn parse_usage<T: serde::de::DeserializeOwned>(usage: &Value) -> Option<T> {
    T::deserialize(usage).ok()
}

fn has_deepseek_cache_split(usage: &Value) -> bool {
    usage
        .get("prompt_cache_hit_tokens")
        .is_some_and(|v| !v.is_null())
        || usage
            .get("prompt_cache_miss_tokens")
            .is_some_and(|v| !v.is_null())
}

/// A model served through the OpenAI Chat Completions API.
///
/// `Debug` never shows the API key (only whether one is set), nor the base URL's user
/// info or query.
#[derive(Clone)]
pub struct OpenAiChatModel {
    provider: Provider,
    model_id: String,
    api_key: Option<SecretString>,
    endpoint: url::Url,
    usage_rule: OpenAiChatUsageRule,
    settings: ClientSettings,
    redactor: chaterror::Redactor,
}

impl OpenAiChatModel {
    /// A model `model_id` of `provider`, reached at `base_url` (or the provider's
    /// [`ProviderCatalog::default_base_url`](crate::ProviderCatalog::default_base_url) when `None` or blank), authenticated with `api_key`
    /// as `Authorization: Bearer` (Azure: the `api-key` header; no header when `None` or
    /// empty).
    ///
    /// Fails when the model id is blank, when no base URL is given for a provider without
    /// a default (Azure), or when the base URL is not an absolute `http(s)` URL.
    pub fn new(
        provider: Provider,
        model_id: impl Into<String>,
        api_key: Option<SecretString>,
        base_url: Option<&str>,
        settings: ClientSettings,
    ) -> Result<Self, Error> {
        let model_id = model_id.into().trim().to_owned();
        if model_id.is_empty() {
            return Err(Error::model_required());
        }
        let base = match base_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => url,
            None => provider
                .default_base_url()
                .ok_or_else(|| Error::missing_base_url(provider))?,
        };
        let mut endpoint = parse_http_url(base).map_err(|e| e.with_provider(provider))?;
        match endpoint.path_segments_mut() {
            Ok(mut segments) => {
                segments.pop_if_empty().extend(OPENAI_CHAT_COMPLETIONS_PATH);
            }
            Err(()) => {
                return Err(
                    Error::new(ErrorKind::InvalidBaseUrl, "base URL cannot carry a path")
                        .with_provider(provider),
                )
            }
        }
        let api_key = api_key.filter(|k| !k.is_empty());
        let redactor = crate::transport::client_redactor(
            api_key.as_ref().map(SecretString::expose),
            Some(&endpoint),
            &settings,
        );
        Ok(OpenAiChatModel {
            provider,
            model_id,
            api_key,
            redactor,
            endpoint,
            usage_rule: OpenAiChatUsageRule::for_endpoint(provider, base),
            settings,
        })
    }

    /// A model built from resolved credentials
    /// ([`ProviderApiKeys::client_credentials`](crate::ProviderApiKeys::client_credentials)).
    pub fn from_credentials(
        credentials: &ProviderCredentials<'_>,
        model_id: impl Into<String>,
        settings: ClientSettings,
    ) -> Result<Self, Error> {
        OpenAiChatModel::new(
            credentials.provider(),
            model_id,
            credentials.api_key().map(SecretString::from),
            credentials.base_url(),
            settings,
        )
    }

    /// Replaces the usage rule chosen from the provider and base URL (for example
    /// [`OpenAiChatUsageRule::Xai`] for an xAI model behind a proxy).
    pub fn with_usage_rule(mut self, rule: OpenAiChatUsageRule) -> Self {
        self.usage_rule = rule;
        self
    }

    /// The usage rule in effect.
    pub fn usage_rule(&self) -> OpenAiChatUsageRule {
        self.usage_rule
    }

    /// The full URL requests are sent to (`…/chat/completions`). It keeps any user info
    /// or query of the configured base URL, which may be credentials: do not log it
    /// (`Debug` strips them).
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// The JSON body sent for `request` (see `docs/clients/openai-chat.md`).
    pub fn request_body(&self, request: &ModelRequest) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), Value::String(self.model_id.clone()));
        body.insert(
            "messages".into(),
            Value::Array(convert_messages(&request.system, &request.messages)),
        );
        let options = request.provider_options.as_ref();
        let openai = match self.provider {
            Provider::OpenAi | Provider::Azure => match options.and_then(|o| o.openai.as_ref()) {
                Some(OpenAiRequestOptions::ChatCompletions(o)) => Some(o),
                _ => None,
            },
            _ => None,
        };
        let has_tools = !request.tools.is_empty();
        if has_tools {
            let strict = openai.and_then(|o| o.structured_outputs) == Some(true);
            body.insert(
                "tools".into(),
                Value::Array(request.tools.iter().map(|t| tool_json(t, strict)).collect()),
            );
            if let Some(choice) = &request.tool_choice {
                body.insert("tool_choice".into(), tool_choice_json(choice));
            }
        }
        body.insert("stream".into(), Value::Bool(true));
        body.insert("stream_options".into(), json!({ "include_usage": true }));

        let settings = &request.settings;
        match openai.and_then(|o| o.max_completion_tokens) {
            Some(n) => {
                body.insert("max_completion_tokens".into(), json!(n));
            }
            None => {
                if let Some(n) = settings.max_output_tokens {
                    let field = if self.uses_max_completion_tokens() {
                        "max_completion_tokens"
                    } else {
                        "max_tokens"
                    };
                    body.insert(field.into(), json!(n));
                }
            }
        }
        insert_opt(&mut body, "temperature", settings.temperature);
        insert_opt(&mut body, "top_p", settings.top_p);
        insert_opt(&mut body, "presence_penalty", settings.presence_penalty);
        insert_opt(&mut body, "frequency_penalty", settings.frequency_penalty);
        if matches!(self.provider, Provider::OpenRouter | Provider::OpenAiCompat) {
            insert_opt(&mut body, "top_k", settings.top_k);
        }

        match self.provider {
            Provider::OpenAi | Provider::Azure => {
                if let Some(o) = openai {
                    apply_openai_options(&mut body, o, has_tools);
                }
            }
            Provider::OpenAiCompat => {
                if let Some(o) = options.and_then(|o| o.openai_compat.as_ref()) {
                    apply_openai_compat_options(&mut body, o);
                }
            }
            Provider::OpenRouter => {
                if let Some(o) = options.and_then(|o| o.openrouter.as_ref()) {
                    apply_openrouter_options(&mut body, o, has_tools);
                }
            }
            Provider::Vercel => {
                if let Some(o) = options.and_then(|o| o.vercel.as_ref()) {
                    apply_vercel_options(&mut body, o, has_tools);
                }
            }
            _ => {}
        }
        Value::Object(body)
    }

    /// OpenAI deprecated `max_tokens` and its reasoning models reject it, while every
    /// OpenAI chat model accepts `max_completion_tokens`. Azure deployments have arbitrary
    /// names and older API versions, so there only ids that look like reasoning models
    /// switch. Other servers keep the widely supported `max_tokens`.
    fn uses_max_completion_tokens(&self) -> bool {
        match self.provider {
            Provider::OpenAi => true,
            Provider::Azure => looks_like_openai_reasoning_model(&self.model_id),
            _ => false,
        }
    }

    fn build_http_request(&self, request: &ModelRequest) -> reqwest::RequestBuilder {
        let body = self.request_body(request);
        let mut req = self.settings.http.post(self.endpoint.clone());
        if let Some(key) = &self.api_key {
            // Azure authenticates API keys with its own header (as the Responses client does);
            // everyone else takes a bearer token.
            req = if self.provider == Provider::Azure {
                req.header("api-key", key.expose())
            } else {
                req.bearer_auth(key.expose())
            };
        }
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::ACCEPT,
                "text/event-stream, application/json",
            );
        // A `Value` has string keys only, so serialization cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        with_common_headers(req, &self.settings, &request.correlation).body(bytes)
    }
}

/// `o1`, `o3-mini`, `gpt-5`, `gpt-5.1-codex`, … but not `gpt-5-chat-latest`.
fn looks_like_openai_reasoning_model(model: &str) -> bool {
    let lower = model.trim().to_ascii_lowercase();
    is_openai_reasoning_model(&lower)
        || (lower.starts_with("gpt-5") && !lower.starts_with("gpt-5-chat"))
}

impl fmt::Debug for OpenAiChatModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.endpoint.clone();
        // User info and query strings can carry credentials.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        shown.set_query(None);
        f.debug_struct("OpenAiChatModel")
            .field("provider", &self.provider)
            .field("model_id", &self.model_id)
            .field("endpoint", &shown.as_str())
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("usage_rule", &self.usage_rule)
            .field("user_agent", &self.settings.user_agent)
            .field("startup_timeout", &self.settings.startup_timeout)
            .field("max_event_bytes", &self.settings.max_event_bytes)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl LanguageModel for OpenAiChatModel {
    fn provider(&self) -> Provider {
        self.provider
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn stream(&self, request: ModelRequest) -> ModelStream {
        let req = self.build_http_request(&request);
        let settings = self.settings.clone();
        let provider = self.provider;
        let decoder = OpenAiChatDecoder::new(provider).with_usage_rule(self.usage_rule);
        let start = async move {
            let name = provider.as_str();
            let deadline = startup_deadline(&settings);
            let resp = send(req, name, &settings, deadline).await?;
            if is_json_response(&resp) {
                let body = read_json_body(resp, &settings, name, deadline).await?;
                return Ok(decode_whole_json(decoder, body, settings.max_event_bytes));
            }
            Ok::<_, ProviderError>(decode_events(
                sse_events(resp, &settings, name, deadline),
                decoder,
            ))
        };
        crate::language_model::redact_errors(
            Box::pin(futures_util::stream::once(start).try_flatten()),
            self.redactor.clone(),
        )
    }

    fn redactor(&self) -> chaterror::Redactor {
        self.redactor.clone()
    }
}

/// Whether a successful response is a plain JSON document rather than an event stream:
/// a server that ignores `stream: true`, or one that reports an error with status 200.
fn is_json_response(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

/// Reads a JSON response body, at most `settings.max_event_bytes` of it (the whole
/// document is one event), with the first byte due before the startup deadline.
async fn read_json_body(
    resp: reqwest::Response,
    settings: &ClientSettings,
    provider: &str,
    deadline: tokio::time::Instant,
) -> Result<String, ProviderError> {
    let mut chunks = resp.bytes_stream();
    let mut body: Vec<u8> = Vec::new();
    let mut started = false;
    loop {
        let next = if started {
            chunks.next().await
        } else {
            tokio::time::timeout_at(deadline, chunks.next())
                .await
                .map_err(|_| startup_timeout_error(provider, settings.startup_timeout))?
        };
        match next {
            None => break,
            Some(Err(e)) => return Err(transport_error(provider, "read response", e)),
            Some(Ok(chunk)) => {
                started = true;
                if body.len().saturating_add(chunk.len()) > settings.max_event_bytes {
                    let e = SseError::EventTooLarge {
                        limit: settings.max_event_bytes,
                    };
                    return Err(ProviderError::new(e.to_string())
                        .with_provider(provider)
                        .with_source(e));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Decodes a non-streaming completion (or error) as one chunk followed by the end of the
/// body: `choices[].message` is read like a delta. A body that is not JSON but looks like
/// an event stream (a server that mislabels its stream) is decoded as one.
fn decode_whole_json(
    mut decoder: OpenAiChatDecoder,
    body: String,
    max_event_bytes: usize,
) -> ModelStream {
    let is_json = serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok();
    let looks_like_sse = body.trim_start().starts_with("data:") || body.contains("\ndata:");
    let result = if !is_json && looks_like_sse {
        decode_body(decoder, body.as_bytes(), max_event_bytes)
    } else {
        let event = SseEvent {
            data: body,
            ..SseEvent::default()
        };
        let mut out = Vec::new();
        decoder
            .on_event(&event, &mut out)
            .and_then(|()| decoder.on_end(&mut out))
            .map(|()| out)
    };
    let items: Vec<Result<StreamPart, ProviderError>> = match result {
        Ok(parts) => parts.into_iter().map(Ok).collect(),
        Err(e) => vec![Err(e)],
    };
    Box::pin(futures_util::stream::iter(items))
}

fn insert_opt<T: serde::Serialize>(body: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        if let Ok(v) = serde_json::to_value(v) {
            body.insert(key.to_owned(), v);
        }
    }
}

fn insert_text(body: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
        body.insert(key.to_owned(), Value::String(v.to_owned()));
    }
}

fn object(value: &JsonObject) -> Value {
    Value::Object(value.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn apply_openai_options(body: &mut Map<String, Value>, o: &OpenAiChatOptions, has_tools: bool) {
    if let Some(bias) = &o.logit_bias {
        insert_opt(body, "logit_bias", Some(bias));
    }
    insert_opt(body, "logprobs", o.log_probs);
    if let Some(n) = o.top_log_probs {
        body.insert("top_logprobs".into(), json!(n));
        // OpenAI rejects `top_logprobs` unless `logprobs` is on.
        if o.log_probs.is_none() {
            body.insert("logprobs".into(), Value::Bool(true));
        }
    }
    if has_tools {
        insert_opt(body, "parallel_tool_calls", o.parallel_tool_calls);
    }
    insert_text(body, "user", &o.user);
    insert_text(body, "reasoning_effort", &o.reasoning_effort);
    insert_text(body, "verbosity", &o.text_verbosity);
    if let Some(p) = &o.prediction {
        body.insert("prediction".into(), object(p));
    }
    body.insert("store".into(), Value::Bool(o.store));
    if let Some(m) = &o.metadata {
        body.insert("metadata".into(), object(m));
    }
    insert_text(body, "prompt_cache_key", &o.prompt_cache_key);
    insert_text(body, "safety_identifier", &o.safety_identifier);
    insert_text(body, "service_tier", &o.service_tier);
}

fn apply_openai_compat_options(body: &mut Map<String, Value>, o: &OpenAiCompatRequestOptions) {
    insert_text(body, "user", &o.user);
    insert_text(body, "reasoning_effort", &o.reasoning_effort);
}

fn reasoning_json(r: &ReasoningRequestOptions) -> Option<Value> {
    let mut m = Map::new();
    insert_opt(&mut m, "enabled", r.enabled);
    insert_opt(&mut m, "exclude", r.exclude);
    insert_opt(&mut m, "max_tokens", r.max_tokens);
    insert_text(&mut m, "effort", &r.effort);
    (!m.is_empty()).then_some(Value::Object(m))
}

fn merge_extra_body(body: &mut Map<String, Value>, extra: &Option<JsonObject>) {
    for (key, value) in extra.iter().flatten() {
        if !OPENAI_CHAT_PROTECTED_BODY_FIELDS.contains(&key.as_str()) {
            body.insert(key.clone(), value.clone());
        }
    }
}

fn apply_openrouter_options(
    body: &mut Map<String, Value>,
    o: &OpenRouterRequestOptions,
    has_tools: bool,
) {
    if let Some(r) = o.reasoning.as_ref().and_then(reasoning_json) {
        body.insert("reasoning".into(), r);
    }
    if let Some(include) = o.include_usage {
        body.insert("usage".into(), json!({ "include": include }));
    }
    if let Some(bias) = &o.logit_bias {
        insert_opt(body, "logit_bias", Some(bias));
    }
    insert_opt(body, "logprobs", o.log_probs);
    if has_tools {
        insert_opt(body, "parallel_tool_calls", o.parallel_tool_calls);
    }
    insert_text(body, "user", &o.user);
    if let Some(routing) = &o.provider {
        if let Ok(v) = serde_json::to_value(routing) {
            if v.as_object().is_some_and(|m| !m.is_empty()) {
                body.insert("provider".into(), v);
            }
        }
    }
    merge_extra_body(body, &o.extra_body);
}

fn apply_vercel_options(body: &mut Map<String, Value>, o: &VercelRequestOptions, has_tools: bool) {
    if let Some(r) = o.reasoning.as_ref().and_then(reasoning_json) {
        body.insert("reasoning".into(), r);
    }
    if let Some(gateway) = &o.gateway {
        if let Ok(v) = serde_json::to_value(gateway) {
            if v.as_object().is_some_and(|m| !m.is_empty()) {
                body.insert("providerOptions".into(), json!({ "gateway": v }));
            }
        }
    }
    insert_text(body, "user", &o.user);
    if let Some(bias) = &o.logit_bias {
        insert_opt(body, "logit_bias", Some(bias));
    }
    insert_opt(body, "logprobs", o.logprobs);
    insert_opt(body, "top_logprobs", o.top_logprobs);
    if has_tools {
        insert_opt(body, "parallel_tool_calls", o.parallel_tool_calls);
    }
    merge_extra_body(body, &o.extra_body);
}

fn tool_json(tool: &ToolDefinition, strict: bool) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), Value::String(tool.name.clone()));
    if !tool.description.trim().is_empty() {
        function.insert(
            "description".into(),
            Value::String(tool.description.clone()),
        );
    }
    let parameters = if tool.input_schema.is_object() {
        tool.input_schema.to_value()
    } else {
        // The API requires an object schema; a tool without arguments still needs one.
        json!({ "type": "object", "properties": {} })
    };
    function.insert("parameters".into(), parameters);
    if strict {
        function.insert("strict".into(), Value::Bool(true));
    }
    json!({ "type": "function", "function": function })
}

fn tool_choice_json(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Tool(name) => json!({ "type": "function", "function": { "name": name } }),
    }
}

/// One item of user content before it is known whether plain-string content suffices.
enum UserItem {
    Text(String),
    Part(Value),
}

fn convert_messages(system: &[String], messages: &[Message]) -> Vec<Value> {
    let mut out = Vec::new();
    let system_text = system
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n\n");
    if !system_text.is_empty() {
        out.push(json!({ "role": "system", "content": system_text }));
    }
    // Calls the provider executed itself have no place in Chat Completions, and neither
    // have their results.
    let provider_executed: HashSet<&str> = messages
        .iter()
        .flat_map(|m| &m.content)
        .filter_map(|p| match p {
            Part::ToolCall {
                id,
                provider_executed: true,
                ..
            } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    for message in messages {
        let tool_results = message.content.iter().filter_map(|p| match p {
            Part::ToolResult {
                tool_call_id,
                output,
                ..
            } if !provider_executed.contains(tool_call_id.as_str()) => Some(json!({
                "role": "tool",
                "tool_call_id": tool_call_id,
                "content": tool_result_text(output),
            })),
            _ => None,
        });
        match message.role {
            Role::Assistant => {
                if let Some(m) = assistant_message(&message.content) {
                    out.push(m);
                }
                out.extend(tool_results);
            }
            Role::User => {
                out.extend(tool_results);
                if let Some(content) = user_content(&message.content) {
                    out.push(json!({ "role": "user", "content": content }));
                }
            }
            Role::Tool => out.extend(tool_results),
        }
    }
    out
}

fn tool_result_text(output: &RawJson) -> String {
    output
        .parse::<String>()
        .unwrap_or_else(|_| output.get().to_owned())
}

fn assistant_message(parts: &[Part]) -> Option<Value> {
    let text = parts
        .iter()
        .filter_map(|p| match p {
            Part::Text { text } if !text.is_empty() => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    let calls: Vec<Value> = parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall {
                id,
                name,
                arguments,
                provider_executed: false,
                ..
            } => Some(json!({
                "id": id,
                "type": "function",
                "function": { "name": name, "arguments": arguments.get() },
            })),
            _ => None,
        })
        .collect();
    if text.is_empty() && calls.is_empty() {
        return None;
    }
    let mut m = Map::new();
    m.insert("role".into(), json!("assistant"));
    m.insert("content".into(), Value::String(text));
    if !calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    Some(Value::Object(m))
}

fn user_content(parts: &[Part]) -> Option<Value> {
    let items: Vec<UserItem> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Text { text } => Some(UserItem::Text(text.clone())),
            Part::File {
                media_type,
                data,
                filename,
            } => Some(file_item(media_type, data, filename.as_deref())),
            _ => None,
        })
        .collect();
    if items.is_empty() {
        return None;
    }
    if items.iter().all(|i| matches!(i, UserItem::Text(_))) {
        // Plain-string content: several OpenAI-compatible servers accept nothing else.
        let text = items
            .iter()
            .filter_map(|i| match i {
                UserItem::Text(t) => Some(t.as_str()),
                UserItem::Part(_) => None,
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        return Some(Value::String(text));
    }
    Some(Value::Array(
        items
            .into_iter()
            .map(|i| match i {
                UserItem::Text(text) => json!({ "type": "text", "text": text }),
                UserItem::Part(part) => part,
            })
            .collect(),
    ))
}

/// Media types (besides `text/*`, `*+json`, `*+xml`) whose bytes are text worth inlining.
const TEXTUAL_MEDIA_TYPES: [&str; 10] = [
    "application/json",
    "application/xml",
    "application/yaml",
    "application/x-yaml",
    "application/toml",
    "application/javascript",
    "application/x-sh",
    "application/sql",
    "application/x-ndjson",
    "application/csv",
];

fn file_item(media_type: &str, data: &[u8], filename: Option<&str>) -> UserItem {
    let lower = media_type.trim().to_ascii_lowercase();
    let base = lower.split(';').next().unwrap_or_default().trim();
    let b64 = || base64::engine::general_purpose::STANDARD.encode(data);
    let name = filename
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("file")
        .replace('"', "'");
    if base.starts_with("image/") {
        return UserItem::Part(json!({
            "type": "image_url",
            "image_url": { "url": format!("data:{base};base64,{}", b64()) },
        }));
    }
    if base == "application/pdf" {
        let filename = if filename.is_some() {
            name
        } else {
            "document.pdf".to_owned()
        };
        return UserItem::Part(json!({
            "type": "file",
            "file": { "filename": filename, "file_data": format!("data:application/pdf;base64,{}", b64()) },
        }));
    }
    let audio = match base {
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => Some("wav"),
        "audio/mpeg" | "audio/mp3" => Some("mp3"),
        _ => None,
    };
    if let Some(format) = audio {
        return UserItem::Part(json!({
            "type": "input_audio",
            "input_audio": { "data": b64(), "format": format },
        }));
    }
    let textual = base.starts_with("text/")
        || base.ends_with("+json")
        || base.ends_with("+xml")
        || TEXTUAL_MEDIA_TYPES.contains(&base);
    if textual {
        return UserItem::Text(format!(
            "<file name=\"{name}\" media_type=\"{base}\">\n{}\n</file>",
            String::from_utf8_lossy(data)
        ));
    }
    UserItem::Text(format!(
        "[file \"{name}\" ({base}, {} bytes) was not sent: the Chat Completions API cannot carry this file type]",
        data.len()
    ))
}

/// Which kind of content a streamed block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Reasoning,
}

/// A tool call being assembled from its deltas.
#[derive(Debug)]
struct PendingCall {
    index: u64,
    block: u32,
    id: Option<String>,
    name: String,
    arguments: String,
    started: bool,
}

/// Decodes an OpenAI Chat Completions SSE stream into [`StreamPart`]s (a pure state
/// machine; see the module docs and `docs/clients/openai-chat.md` for the rules).
///
/// Only choice `0` is read (chatd never asks for `n > 1`). Blocks are numbered in order of
/// first appearance: each run of text or reasoning is one block, each tool call its own.
#[derive(Debug)]
pub struct OpenAiChatDecoder {
    provider: Provider,
    usage_rule: OpenAiChatUsageRule,
    metadata_sent: bool,
    response_id: Option<String>,
    open: Option<(BlockKind, u32)>,
    next_block: u32,
    calls: Vec<PendingCall>,
    finish_reason: Option<String>,
    refused: bool,
    usage: Option<Value>,
    done: bool,
}

impl OpenAiChatDecoder {
    /// A decoder for `provider`'s stream, normalizing usage with
    /// [`OpenAiChatUsageRule::for_endpoint`] at the provider's default endpoint (use
    /// [`OpenAiChatDecoder::with_usage_rule`] for a vendor behind OpenAI Compatible).
    pub fn new(provider: Provider) -> Self {
        OpenAiChatDecoder {
            provider,
            usage_rule: OpenAiChatUsageRule::for_endpoint(
                provider,
                provider.default_base_url().unwrap_or_default(),
            ),
            metadata_sent: false,
            response_id: None,
            open: None,
            next_block: 0,
            calls: Vec::new(),
            finish_reason: None,
            refused: false,
            usage: None,
            done: false,
        }
    }

    /// Sets the usage rule.
    pub fn with_usage_rule(mut self, rule: OpenAiChatUsageRule) -> Self {
        self.usage_rule = rule;
        self
    }

    fn alloc_block(&mut self) -> u32 {
        let block = self.next_block;
        self.next_block = self.next_block.saturating_add(1);
        block
    }

    /// Ends the open text or reasoning block; a reasoning block announces its end.
    fn close_open(&mut self, out: &mut Vec<StreamPart>) {
        if let Some((BlockKind::Reasoning, block)) = self.open.take() {
            out.push(StreamPart::ReasoningEnd {
                block,
                signature: None,
                redacted_data: None,
                item_id: None,
                encrypted_content: None,
            });
        }
    }

    fn block(&mut self, kind: BlockKind, out: &mut Vec<StreamPart>) -> u32 {
        if let Some((open_kind, block)) = self.open {
            if open_kind == kind {
                return block;
            }
        }
        self.close_open(out);
        let block = self.alloc_block();
        self.open = Some((kind, block));
        block
    }

    fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<StreamPart>) -> Result<(), ProviderError> {
        if !self.metadata_sent {
            let id = non_empty_str(chunk.get("id")).map(str::to_owned);
            let model = non_empty_str(chunk.get("model")).map(str::to_owned);
            if id.is_some() || model.is_some() {
                self.metadata_sent = true;
                self.response_id.clone_from(&id);
                out.push(StreamPart::ResponseMetadata { id, model });
            }
        }
        let usage = chunk.get("usage").filter(|u| u.is_object()).or_else(|| {
            chunk
                .get("x_groq")
                .and_then(|x| x.get("usage"))
                .filter(|u| u.is_object())
        });
        if let Some(usage) = usage {
            self.usage = Some(usage.clone());
        }
        for choice in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            let delta = choice
                .get("delta")
                .filter(|d| d.is_object())
                .or_else(|| choice.get("message").filter(|m| m.is_object()));
            if let Some(delta) = delta {
                self.on_delta(delta, out)?;
            }
            let reason = non_empty_str(choice.get("finish_reason")).map(str::trim);
            if let Some(reason) = reason.filter(|r| !r.is_empty()) {
                self.finish_reason = Some(reason.to_owned());
            }
        }
        Ok(())
    }

    fn on_delta(&mut self, delta: &Value, out: &mut Vec<StreamPart>) -> Result<(), ProviderError> {
        // Some servers mirror one into the other; reading both would duplicate the text.
        let reasoning = non_empty_str(delta.get("reasoning_content"))
            .or_else(|| non_empty_str(delta.get("reasoning")));
        if let Some(text) = reasoning {
            let block = self.block(BlockKind::Reasoning, out);
            out.push(StreamPart::ReasoningDelta {
                block,
                delta: text.to_owned(),
            });
        }
        if let Some(text) = content_text(delta.get("content")) {
            let block = self.block(BlockKind::Text, out);
            out.push(StreamPart::TextDelta { block, delta: text });
        }
        if let Some(text) = non_empty_str(delta.get("refusal")) {
            self.refused = true;
            let block = self.block(BlockKind::Text, out);
            out.push(StreamPart::TextDelta {
                block,
                delta: text.to_owned(),
            });
        }
        for entry in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.on_tool_delta(entry, out)?;
        }
        Ok(())
    }

    /// The call a delta without `index` belongs to: a new call when it brings an id not
    /// seen before, else the most recent call.
    fn implicit_index(&self, id: Option<&str>) -> u64 {
        if let Some(id) = id {
            if let Some(call) = self.calls.iter().find(|c| c.id.as_deref() == Some(id)) {
                return call.index;
            }
            return self
                .calls
                .iter()
                .map(|c| c.index)
                .max()
                .map_or(0, |m| m.saturating_add(1));
        }
        self.calls.last().map_or(0, |c| c.index)
    }

    fn on_tool_delta(
        &mut self,
        entry: &Value,
        out: &mut Vec<StreamPart>,
    ) -> Result<(), ProviderError> {
        let id = non_empty_str(entry.get("id"));
        let function = entry.get("function");
        let name = non_empty_str(function.and_then(|f| f.get("name")));
        let fragment = match function.and_then(|f| f.get("arguments")) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            // Non-standard servers send the arguments as a JSON value.
            Some(v @ (Value::Object(_) | Value::Array(_))) => Some(v.to_string()),
            _ => None,
        };
        let index = match entry.get("index").and_then(Value::as_u64) {
            Some(i) => i,
            None => self.implicit_index(id),
        };
        self.close_open(out);
        let position = match self.calls.iter().position(|c| c.index == index) {
            Some(p) => p,
            None => {
                if self.calls.len() >= OPENAI_CHAT_MAX_TOOL_CALLS {
                    return Err(self.limit_error(format!(
                        "openai chat stream has more than {OPENAI_CHAT_MAX_TOOL_CALLS} tool calls"
                    )));
                }
                let block = self.alloc_block();
                self.calls.push(PendingCall {
                    index,
                    block,
                    id: None,
                    name: String::new(),
                    arguments: String::new(),
                    started: false,
                });
                self.calls.len().saturating_sub(1)
            }
        };
        let grown = self.calls.get(position).map_or(0, |c| c.arguments.len());
        if grown.saturating_add(fragment.as_ref().map_or(0, String::len))
            > OPENAI_CHAT_MAX_TOOL_ARGUMENT_BYTES
        {
            return Err(self.limit_error(format!(
                "openai chat tool call arguments exceed {OPENAI_CHAT_MAX_TOOL_ARGUMENT_BYTES} bytes"
            )));
        }
        let synthetic_id = synthetic_call_id(self.response_id.as_deref(), index);
        let Some(call) = self.calls.get_mut(position) else {
            return Ok(());
        };
        if call.id.is_none() {
            call.id = id.map(str::to_owned);
        }
        if call.name.is_empty() {
            if let Some(name) = name {
                call.name = name.to_owned();
            }
        }
        if let Some(f) = &fragment {
            call.arguments.push_str(f);
        }
        if !call.started {
            if !call.name.is_empty() {
                call.started = true;
                let id = call.id.get_or_insert(synthetic_id).clone();
                out.push(StreamPart::ToolCallStart {
                    block: call.block,
                    id: id.clone(),
                    name: call.name.clone(),
                });
                if !call.arguments.is_empty() {
                    out.push(StreamPart::ToolCallDelta {
                        block: call.block,
                        id,
                        delta: call.arguments.clone(),
                    });
                }
            }
        } else if let Some(delta) = fragment {
            out.push(StreamPart::ToolCallDelta {
                block: call.block,
                id: call.id.clone().unwrap_or(synthetic_id),
                delta,
            });
        }
        Ok(())
    }

    fn limit_error(&self, message: String) -> ProviderError {
        ProviderError::new(message).with_provider(self.provider.as_str())
    }

    /// Completes the response: closes the open block, emits every tool call and the
    /// finish part.
    fn finish(&mut self, out: &mut Vec<StreamPart>) {
        self.close_open(out);
        let calls = std::mem::take(&mut self.calls);
        let has_calls = !calls.is_empty();
        for call in calls {
            let id = call
                .id
                .unwrap_or_else(|| synthetic_call_id(self.response_id.as_deref(), call.index));
            if !call.started {
                out.push(StreamPart::ToolCallStart {
                    block: call.block,
                    id: id.clone(),
                    name: call.name.clone(),
                });
                if !call.arguments.is_empty() {
                    out.push(StreamPart::ToolCallDelta {
                        block: call.block,
                        id: id.clone(),
                        delta: call.arguments.clone(),
                    });
                }
            }
            let arguments = if call.arguments.trim().is_empty() {
                "{}".to_owned()
            } else {
                call.arguments
            };
            let arguments_valid = RawJson::from_json(&arguments).is_ok();
            out.push(StreamPart::ToolCall(ToolCall {
                id,
                name: call.name,
                arguments,
                arguments_valid,
                provider_executed: false,
            }));
        }
        let reason = map_finish_reason(self.finish_reason.as_deref(), self.refused, has_calls);
        let usage = self
            .usage
            .as_ref()
            .map(|u| self.usage_rule.normalize(u))
            .unwrap_or_default();
        out.push(StreamPart::Finish { reason, usage });
        self.done = true;
    }

    fn stream_error(&self, data: &str, error: Option<&Value>) -> ProviderError {
        let message = match error {
            Some(Value::String(s)) => s.as_str(),
            Some(e) => e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error"),
            None => data,
        };
        let message: String = message
            .trim()
            .chars()
            .take(OPENAI_CHAT_MAX_ERROR_MESSAGE_CHARS)
            .collect();
        let body = data
            .as_bytes()
            .get(..data.len().min(MAX_ERROR_BODY_BYTES))
            .unwrap_or_default();
        let mut err = ProviderError::new(format!("{STREAM_ERROR_PREFIX}: {message}"))
            .with_provider(self.provider.as_str())
            .with_body(body);
        // OpenRouter and Google's compatibility layer put the HTTP status in `code`.
        let status = error
            .and_then(|e| e.get("code"))
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (400..=599).contains(c));
        if let Some(status) = status {
            err = err.with_status(status);
        }
        err
    }
}

impl StreamDecoder for OpenAiChatDecoder {
    fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamPart>,
    ) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == DONE_MARKER {
            self.finish(out);
            return Ok(());
        }
        let parsed: Result<Value, _> = serde_json::from_str(data);
        if event.event.eq_ignore_ascii_case("error") {
            let error = parsed.as_ref().ok().map(|v| match v.get("error") {
                Some(e) if !e.is_null() => e,
                _ => v,
            });
            return Err(self.stream_error(data, error));
        }
        let chunk = parsed.map_err(|e| {
            ProviderError::new(format!(
                "openai chat stream sent a chunk that is not JSON: {e}"
            ))
            .with_provider(self.provider.as_str())
        })?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            return Err(self.stream_error(data, Some(error)));
        }
        self.on_chunk(&chunk, out)
    }

    fn on_end(&mut self, out: &mut Vec<StreamPart>) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        if self.finish_reason.is_some() {
            // Some OpenAI-compatible servers never send `[DONE]`; a clean end after the
            // finish reason is a complete response.
            self.finish(out);
            return Ok(());
        }
        Err(stream_closed_error(self.provider))
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

fn non_empty_str(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `delta.content` as text: a string, or the `text` of an array of content parts
/// (Mistral-style); other part types are not text and are skipped.
fn content_text(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Array(parts) => {
            let text: String = parts
                .iter()
                .filter(|p| {
                    p.get("type")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t == "text")
                })
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!text.is_empty()).then_some(text)
        }
        _ => None,
    }
}

/// An id for a call whose server sent none, unique within the response (and across
/// responses when the response has an id).
fn synthetic_call_id(response_id: Option<&str>, index: u64) -> String {
    match response_id {
        Some(id) => format!("{id}-call-{index}"),
        None => format!("call-{index}"),
    }
}

fn map_finish_reason(raw: Option<&str>, refused: bool, has_calls: bool) -> FinishReason {
    let Some(raw) = raw else {
        // `[DONE]` without any finish_reason: infer what the stream showed.
        return if has_calls {
            FinishReason::ToolCalls
        } else if refused {
            FinishReason::ContentFilter
        } else {
            FinishReason::Stop
        };
    };
    match raw.to_ascii_lowercase().as_str() {
        "stop" if refused => FinishReason::ContentFilter,
        "stop" => FinishReason::Stop,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other(raw.to_owned()),
    }
}

/// The retryable error for a body that ended before any `finish_reason`.
fn stream_closed_error(provider: Provider) -> ProviderError {
    let classified = ClassifiedError::builder(ChatErrorKind::Timeout)
        .provider(provider.as_str())
        .retryable(true)
        .message(format!(
            "{} stream closed unexpectedly before the response completed.",
            provider.display_name()
        ))
        .build();
    ProviderError::new(OPENAI_CHAT_STREAM_CLOSED_ERROR)
        .with_provider(provider.as_str())
        .with_source(chaterror::with_classification(
            OPENAI_CHAT_STREAM_CLOSED_ERROR,
            classified,
        ))
}
