//! The OpenAI Responses API client (`POST {base}/responses`, streamed), used for OpenAI and
//! Azure OpenAI: [`OpenAiResponsesModel`] builds and sends the request,
//! [`OpenAiResponsesDecoder`] turns the event stream into [`StreamPart`]s.
//!
//! `docs/clients/openai-responses.md` describes the request mapping, the decoding rules and
//! every choice made where the API or the spec left room.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use chatcost::normalize::{self, OpenAiResponsesUsage};
use chaterror::ProviderError;
use codersdk::{ChatMessageUsage, RawJson};
use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::catalog::{azure_base_url, parse_http_url, Provider, ProviderCatalog};
use crate::error::{Error, ErrorKind};
use crate::keys::ProviderCredentials;
use crate::language_model::{LanguageModel, ModelStream, StreamDecoder};
use crate::options::{
    OpenAiLogprobs, OpenAiRequestOptions, OpenAiResponsesOptions, ProviderRequestOptions,
    OPENAI_INCLUDE_REASONING_ENCRYPTED_CONTENT,
};
use crate::request::{Message, ModelRequest, Part, Role, ToolChoice};
use crate::resolve::is_openai_reasoning_model;
use crate::response::{FinishReason, StreamPart, ToolCall};
use crate::sse::SseEvent;
use crate::transport::{self, ClientSettings};

/// The error text of a Responses stream whose body ended before `response.completed`,
/// `response.incomplete`, `response.failed` or `error`. `chaterror` recognises it and
/// classifies a retryable `timeout` (step 9).
pub const OPENAI_RESPONSES_STREAM_CLOSED: &str =
    "openai responses stream closed before terminal event";

/// The tool name reported for OpenAI's own web search (`web_search_call` output items).
pub const OPENAI_WEB_SEARCH_TOOL_NAME: &str = "web_search";

/// Most output items one response may open. Items are tracked by `output_index`, an
/// integer the provider controls; a stream announcing more is refused rather than allowed
/// to grow the decoder without bound.
pub const MAX_RESPONSE_OUTPUT_ITEMS: usize = 4096;

/// Most bytes of argument text one function call may stream. The decoder must keep the
/// arguments until the call is complete; a larger call ends the stream with an error.
pub const MAX_TOOL_CALL_ARGUMENT_BYTES: usize = 16 * 1024 * 1024;

/// Most [`StreamPart::Source`]s one response reports; further citations are dropped
/// (they are informational, so losing the tail beats failing the turn).
pub const MAX_RESPONSE_SOURCES: usize = 1024;

/// Largest `top_logprobs` the Responses API accepts.
const MAX_TOP_LOGPROBS: i64 = 20;

/// The `include` value that asks for output-text log probabilities.
const INCLUDE_OUTPUT_TEXT_LOGPROBS: &str = "message.output_text.logprobs";

/// Inserted between two summary parts of one reasoning item, which the API streams as
/// separate paragraphs without a separator of their own.
const SUMMARY_PART_SEPARATOR: &str = "\n\n";

/// Path of the Responses endpoint below the base URL.
const RESPONSES_PATH: &str = "responses";

/// Azure OpenAI's API-key header. Azure also accepts `Authorization: Bearer`, but there a
/// bearer value is read as a Microsoft Entra ID token first; the key header is what
/// Azure's own clients (and fantasy, through openai-go's `azure.WithAPIKey`) send.
const AZURE_API_KEY_HEADER: &str = "api-key";

/// A model served through OpenAI's Responses API, on OpenAI or Azure OpenAI.
///
/// ```
/// use chatprovider::{ClientSettings, OpenAiResponsesModel, Provider};
///
/// let model = OpenAiResponsesModel::new(
///     Provider::Azure,
///     "gpt-5.1",
///     "azure-key-0123456789",
///     Some("my-resource.cognitiveservices.azure.com"),
///     ClientSettings::default(),
/// )?;
/// assert_eq!(model.endpoint(), "https://my-resource.openai.azure.com/openai/v1/responses");
/// assert!(!format!("{model:?}").contains("azure-key-0123456789"));
/// # Ok::<(), chatprovider::Error>(())
/// ```
pub struct OpenAiResponsesModel {
    provider: Provider,
    model_id: String,
    endpoint: String,
    auth_name: HeaderName,
    auth_value: HeaderValue,
    settings: ClientSettings,
    redactor: chaterror::Redactor,
}

impl OpenAiResponsesModel {
    /// A model of `provider` (OpenAI or Azure) called `model_id` (for Azure: the deployment
    /// name), authenticated with `api_key`.
    ///
    /// `base_url` defaults to `https://api.openai.com/v1` for OpenAI. Azure requires one; it
    /// is passed through [`azure_base_url`] (idempotent, so an already rewritten URL is
    /// kept) and the key is sent in the `api-key` header; OpenAI gets
    /// `Authorization: Bearer`. Requests go to `{base_url}/responses`, any query string of
    /// the base URL kept.
    ///
    /// Errors (all classified `config`, except a blank key: `missing_key`): another
    /// provider, a blank model id or key, a key that is not a valid header value, a base
    /// URL that is not an absolute http(s) URL, Azure without a base URL.
    pub fn new(
        provider: Provider,
        model_id: impl Into<String>,
        api_key: impl Into<String>,
        base_url: Option<&str>,
        settings: ClientSettings,
    ) -> Result<Self, Error> {
        if !matches!(provider, Provider::OpenAi | Provider::Azure) {
            return Err(Error::unsupported_provider(provider.as_str()));
        }
        let model_id = model_id.into().trim().to_owned();
        if model_id.is_empty() {
            return Err(Error::model_required());
        }
        let api_key = api_key.into();
        let api_key = api_key.trim();
        if api_key.is_empty() {
            return Err(Error::missing_key(provider));
        }
        let base = match (provider, base_url.map(str::trim).filter(|u| !u.is_empty())) {
            (Provider::Azure, raw) => azure_base_url(raw.unwrap_or_default())?,
            (_, Some(raw)) => raw.to_owned(),
            (_, None) => provider
                .default_base_url()
                .unwrap_or("https://api.openai.com/v1")
                .to_owned(),
        };
        let mut url = parse_http_url(&base).map_err(|e| e.with_provider(provider))?;
        let path = format!("{}/{RESPONSES_PATH}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        let (auth_name, auth_text) = match provider {
            Provider::Azure => (
                HeaderName::from_static(AZURE_API_KEY_HEADER),
                api_key.to_owned(),
            ),
            _ => (AUTHORIZATION, format!("Bearer {api_key}")),
        };
        let mut auth_value = HeaderValue::from_str(&auth_text).map_err(|_| {
            Error::new(
                ErrorKind::InvalidApiKey,
                "API key contains characters not allowed in an HTTP header",
            )
            .with_provider(provider)
        })?;
        auth_value.set_sensitive(true);
        let redactor = crate::transport::client_redactor(Some(api_key), Some(&url), &settings);
        Ok(OpenAiResponsesModel {
            provider,
            model_id,
            endpoint: url.to_string(),
            auth_name,
            auth_value,
            settings,
            redactor,
        })
    }

    /// A model built from resolved credentials
    /// ([`ResolvedProviderKeys::client_credentials`](crate::ResolvedProviderKeys)).
    pub fn from_credentials(
        credentials: &ProviderCredentials<'_>,
        model_id: impl Into<String>,
        settings: ClientSettings,
    ) -> Result<Self, Error> {
        let provider = credentials.provider();
        let key = credentials
            .api_key()
            .ok_or_else(|| Error::missing_key(provider))?;
        Self::new(provider, model_id, key, credentials.base_url(), settings)
    }

    /// The URL requests are posted to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The JSON body [`LanguageModel::stream`] posts for `request` (for inspection and
    /// tests; the docs list the mapping).
    pub fn request_body(&self, request: &ModelRequest) -> Value {
        build_request_body(&self.model_id, request)
    }
}

impl fmt::Debug for OpenAiResponsesModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is never shown, and of the endpoint only the origin: a gateway URL may
        // carry credentials in its user info or query.
        let origin = url::Url::parse(&self.endpoint)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        f.debug_struct("OpenAiResponsesModel")
            .field("provider", &self.provider)
            .field("model_id", &self.model_id)
            .field("endpoint_origin", &origin)
            .field("api_key", &"[redacted]")
            .field("user_agent", &self.settings.user_agent)
            .field("startup_timeout", &self.settings.startup_timeout)
            .field("max_event_bytes", &self.settings.max_event_bytes)
            .finish()
    }
}

#[async_trait::async_trait]
impl LanguageModel for OpenAiResponsesModel {
    fn provider(&self) -> Provider {
        self.provider
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn stream(&self, request: ModelRequest) -> ModelStream {
        let body = build_request_body(&self.model_id, &request);
        let req = self
            .settings
            .http
            .post(&self.endpoint)
            .header(self.auth_name.clone(), self.auth_value.clone())
            .header(ACCEPT, "text/event-stream")
            .json(&body);
        let req = transport::with_common_headers(req, &self.settings, &request.correlation);
        crate::language_model::redact_errors(
            transport::stream_sse(
                Ok(req),
                self.provider.as_str(),
                self.settings.clone(),
                OpenAiResponsesDecoder::new(self.provider),
            ),
            self.redactor.clone(),
        )
    }

    fn redactor(&self) -> chaterror::Redactor {
        self.redactor.clone()
    }
}

// ---------------------------------------------------------------------------------------
// Request

/// What the client knows about a model id's reasoning support. Azure deployment names are
/// free text, so "unknown" is common and means: send what was configured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ModelFamily {
    /// o-series, gpt-5 (except the chat variants), codex, gpt-oss, computer-use: the API
    /// rejects `temperature` and `top_p`.
    Reasoning,
    /// gpt-4*, gpt-3.5, chatgpt-4o, gpt-5-chat: the API rejects a `reasoning` block.
    NonReasoning,
    /// Anything else.
    Unknown,
}

fn model_family(model_id: &str) -> ModelFamily {
    let lower = model_id.trim().to_ascii_lowercase();
    // Gateways prefix vendors ("openai/gpt-5"); the family is in the last segment.
    let base = lower.rsplit('/').next().unwrap_or(&lower);
    let non_reasoning = ["gpt-5-chat", "gpt-4", "gpt-3.5", "gpt-35", "chatgpt-4o"];
    if non_reasoning.iter().any(|p| base.contains(p)) {
        return ModelFamily::NonReasoning;
    }
    let reasoning = [
        "gpt-5",
        "codex",
        "gpt-oss",
        "computer-use",
        "-o1",
        "-o3",
        "-o4",
    ];
    if is_openai_reasoning_model(base) || reasoning.iter().any(|p| base.contains(p)) {
        return ModelFamily::Reasoning;
    }
    ModelFamily::Unknown
}

/// The Responses options of a request: its own, the shared subset of Chat Completions
/// options when the config was built for the other OpenAI API, or the defaults (`store`
/// true, as Coder does, so `previous_response_id` chaining works).
fn responses_options(options: Option<&ProviderRequestOptions>) -> OpenAiResponsesOptions {
    match options.and_then(|o| o.openai.as_ref()) {
        Some(OpenAiRequestOptions::Responses(o)) => o.clone(),
        Some(OpenAiRequestOptions::ChatCompletions(c)) => OpenAiResponsesOptions {
            logprobs: match (c.top_log_probs, c.log_probs) {
                (Some(n), _) => Some(OpenAiLogprobs::Top(n)),
                (None, Some(b)) => Some(OpenAiLogprobs::Enabled(b)),
                (None, None) => None,
            },
            metadata: c.metadata.clone(),
            parallel_tool_calls: c.parallel_tool_calls,
            prompt_cache_key: c.prompt_cache_key.clone(),
            reasoning_effort: c.reasoning_effort.clone(),
            safety_identifier: c.safety_identifier.clone(),
            service_tier: c.service_tier.clone(),
            store: c.store,
            text_verbosity: c.text_verbosity.clone(),
            user: c.user.clone(),
            ..OpenAiResponsesOptions::default()
        },
        None => OpenAiResponsesOptions {
            store: true,
            ..OpenAiResponsesOptions::default()
        },
    }
}

fn non_blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn build_request_body(model_id: &str, request: &ModelRequest) -> Value {
    let opts = responses_options(request.provider_options.as_ref());
    let family = model_family(model_id);
    let mut body = Map::new();
    body.insert("model".into(), model_id.into());

    // System blocks travel as `instructions`, not as input items: instructions are not
    // carried over by `previous_response_id`, so re-sending them each chained turn (as
    // the engine does) does not pile copies into the stored conversation.
    let instructions: Vec<&str> = non_blank(&opts.instructions)
        .into_iter()
        .chain(
            request
                .system
                .iter()
                .map(String::as_str)
                .filter(|s| !s.trim().is_empty()),
        )
        .collect();
    if !instructions.is_empty() {
        body.insert("instructions".into(), instructions.join("\n\n").into());
    }
    body.insert(
        "input".into(),
        Value::Array(input_items(&request.messages, opts.store)),
    );
    body.insert("stream".into(), true.into());
    body.insert("store".into(), opts.store.into());
    if let Some(id) = non_blank(&request.previous_response_id) {
        body.insert("previous_response_id".into(), id.into());
    }

    let mut include: Vec<String> = Vec::new();
    let mut add_include = |value: &str| {
        if !include.iter().any(|i| i == value) {
            include.push(value.to_owned());
        }
    };
    for value in &opts.include {
        add_include(value);
    }
    add_include(OPENAI_INCLUDE_REASONING_ENCRYPTED_CONTENT);
    match opts.logprobs {
        Some(OpenAiLogprobs::Top(n)) => {
            add_include(INCLUDE_OUTPUT_TEXT_LOGPROBS);
            body.insert("top_logprobs".into(), n.clamp(0, MAX_TOP_LOGPROBS).into());
        }
        Some(OpenAiLogprobs::Enabled(true)) => add_include(INCLUDE_OUTPUT_TEXT_LOGPROBS),
        _ => {}
    }
    body.insert("include".into(), include.into());

    let tools = tools(request, &opts);
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &request.tool_choice {
            let choice = match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool(name) => json!({"type": "function", "name": name}),
            };
            body.insert("tool_choice".into(), choice);
        }
        if let Some(parallel) = opts.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), parallel.into());
        }
        if let Some(max) = opts.max_tool_calls {
            body.insert("max_tool_calls".into(), max.into());
        }
    }

    let s = &request.settings;
    if let Some(max) = s.max_output_tokens {
        body.insert("max_output_tokens".into(), max.into());
    }
    // Reasoning models reject sampling settings outright (fantasy drops them too);
    // top_k and the penalties do not exist in the Responses API.
    if family != ModelFamily::Reasoning {
        if let Some(t) = s.temperature {
            body.insert("temperature".into(), t.into());
        }
        if let Some(p) = s.top_p {
            body.insert("top_p".into(), p.into());
        }
    }
    if family != ModelFamily::NonReasoning {
        let mut reasoning = Map::new();
        if let Some(effort) = non_blank(&opts.reasoning_effort) {
            reasoning.insert("effort".into(), effort.into());
        }
        if let Some(summary) = non_blank(&opts.reasoning_summary) {
            reasoning.insert("summary".into(), summary.into());
        }
        if !reasoning.is_empty() {
            body.insert("reasoning".into(), Value::Object(reasoning));
        }
    }
    if let Some(verbosity) = non_blank(&opts.text_verbosity) {
        body.insert("text".into(), json!({ "verbosity": verbosity }));
    }
    let strings = [
        ("service_tier", &opts.service_tier),
        ("user", &opts.user),
        ("prompt_cache_key", &opts.prompt_cache_key),
        ("safety_identifier", &opts.safety_identifier),
    ];
    for (name, value) in strings {
        if let Some(v) = non_blank(value) {
            body.insert(name.into(), v.into());
        }
    }
    if let Some(metadata) = opts.metadata.as_ref().filter(|m| !m.is_empty()) {
        // The API takes string values only; a number or flag is sent as its JSON text
        // rather than dropped.
        let metadata: Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), Value::String(text))
            })
            .collect();
        body.insert("metadata".into(), Value::Object(metadata));
    }
    Value::Object(body)
}

fn tools(request: &ModelRequest, opts: &OpenAiResponsesOptions) -> Vec<Value> {
    let mut out: Vec<Value> = request
        .tools
        .iter()
        .map(|t| {
            let mut tool = Map::new();
            tool.insert("type".into(), "function".into());
            tool.insert("name".into(), t.name.clone().into());
            if !t.description.is_empty() {
                tool.insert("description".into(), t.description.clone().into());
            }
            tool.insert("parameters".into(), t.input_schema.to_value());
            if let Some(strict) = opts.strict_json_schema {
                tool.insert("strict".into(), strict.into());
            }
            Value::Object(tool)
        })
        .collect();
    if let Some(ws) = &opts.web_search {
        let mut tool = Map::new();
        tool.insert("type".into(), "web_search".into());
        if let Some(size) = non_blank(&ws.search_context_size) {
            tool.insert("search_context_size".into(), size.into());
        }
        if !ws.allowed_domains.is_empty() {
            tool.insert(
                "filters".into(),
                json!({ "allowed_domains": ws.allowed_domains }),
            );
        }
        out.push(Value::Object(tool));
    }
    out
}

/// The conversation as Responses input items, in order. Message content is grouped into
/// `message` items; reasoning, function calls and their outputs become items of their own
/// at the position they had in the message.
fn input_items(messages: &[Message], store: bool) -> Vec<Value> {
    let mut items = Vec::new();
    // Calls OpenAI ran itself are not replayed, so neither are results answering them
    // (a `function_call_output` without its call is a 400).
    let mut skipped_calls: BTreeSet<&str> = BTreeSet::new();
    for message in messages {
        let assistant = message.role == Role::Assistant;
        let role = if assistant { "assistant" } else { "user" };
        let mut content: Vec<Value> = Vec::new();
        let flush = |content: &mut Vec<Value>, items: &mut Vec<Value>| {
            if !content.is_empty() {
                items.push(json!({
                    "type": "message",
                    "role": role,
                    "content": std::mem::take(content),
                }));
            }
        };
        for part in &message.content {
            match part {
                Part::Text { text } => {
                    if text.is_empty() {
                        continue;
                    }
                    let kind = if assistant {
                        "output_text"
                    } else {
                        "input_text"
                    };
                    content.push(json!({ "type": kind, "text": text }));
                }
                Part::File {
                    media_type,
                    data,
                    filename,
                } => {
                    // The API has no way to replay a file as model output.
                    if !assistant {
                        content.push(file_content(media_type, data, filename.as_deref()));
                    }
                }
                Part::Reasoning {
                    text,
                    item_id,
                    encrypted_content,
                    ..
                } => {
                    flush(&mut content, &mut items);
                    if let Some(item) = reasoning_item(
                        text,
                        item_id.as_deref(),
                        encrypted_content.as_deref(),
                        store,
                    ) {
                        items.push(item);
                    }
                }
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                    provider_executed,
                    ..
                } => {
                    flush(&mut content, &mut items);
                    if *provider_executed {
                        skipped_calls.insert(id.as_str());
                        continue;
                    }
                    items.push(json!({
                        "type": "function_call",
                        "call_id": id,
                        "name": name,
                        "arguments": arguments.get(),
                    }));
                }
                Part::ToolResult {
                    tool_call_id,
                    output,
                    ..
                } => {
                    flush(&mut content, &mut items);
                    if skipped_calls.contains(tool_call_id.as_str()) {
                        continue;
                    }
                    // A JSON string result is sent as its text; anything else as JSON.
                    let output = output
                        .parse::<String>()
                        .unwrap_or_else(|_| output.get().to_owned());
                    items.push(json!({
                        "type": "function_call_output",
                        "call_id": tool_call_id,
                        "output": output,
                    }));
                }
            }
        }
        flush(&mut content, &mut items);
    }
    items
}

fn file_content(media_type: &str, data: &[u8], filename: Option<&str>) -> Value {
    let media_type = match media_type.trim() {
        "" => "application/octet-stream",
        m => m,
    };
    let url = format!(
        "data:{media_type};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(data)
    );
    if media_type.starts_with("image/") {
        json!({ "type": "input_image", "image_url": url })
    } else {
        let filename = filename
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .unwrap_or("file");
        json!({ "type": "input_file", "filename": filename, "file_data": url })
    }
}

/// A reasoning item to replay, if it can be: it needs its item id, and either its
/// encrypted content (always usable) or a stored response to resolve the id against.
fn reasoning_item(
    text: &str,
    item_id: Option<&str>,
    encrypted_content: Option<&str>,
    store: bool,
) -> Option<Value> {
    let id = item_id.map(str::trim).filter(|i| !i.is_empty())?;
    match encrypted_content.filter(|e| !e.is_empty()) {
        Some(encrypted) => {
            let summary = if text.is_empty() {
                json!([])
            } else {
                json!([{ "type": "summary_text", "text": text }])
            };
            Some(json!({
                "type": "reasoning",
                "id": id,
                "encrypted_content": encrypted,
                "summary": summary,
            }))
        }
        None if store => Some(json!({ "type": "item_reference", "id": id })),
        None => None,
    }
}

// ---------------------------------------------------------------------------------------
// Stream decoding

/// Decodes a Responses API event stream into [`StreamPart`]s.
///
/// State is keyed by `output_index` only: gateways (GitHub Copilot) rotate `item_id` on
/// every event. Blocks are output indexes. Terminal events are `response.completed`,
/// `response.incomplete`, `response.failed` and `error`; a body that ends before one is
/// the error [`OPENAI_RESPONSES_STREAM_CLOSED`].
#[derive(Debug)]
pub struct OpenAiResponsesDecoder {
    provider: Provider,
    items: BTreeMap<u32, Item>,
    /// The output index of the last item opened, for the rare event without one.
    last_index: u32,
    /// The response id and model last reported.
    announced: Option<(Option<String>, Option<String>)>,
    called_function: bool,
    refused: bool,
    sources: usize,
    done: bool,
}

#[derive(Debug)]
enum Item {
    Message {
        /// URLs already reported as sources for this message.
        cited: BTreeSet<String>,
    },
    Reasoning {
        item_id: Option<String>,
        encrypted_content: Option<String>,
        /// (stream, part index) of the last delta: summary = 0, raw reasoning text = 1.
        last_part: Option<(u8, u64)>,
        ended: bool,
    },
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
        finished: bool,
    },
    WebSearch {
        id: String,
        finished: bool,
    },
    Other,
}

impl Default for OpenAiResponsesDecoder {
    fn default() -> Self {
        Self::new(Provider::OpenAi)
    }
}

impl OpenAiResponsesDecoder {
    /// A decoder whose errors name `provider` (OpenAI or Azure).
    pub fn new(provider: Provider) -> Self {
        OpenAiResponsesDecoder {
            provider,
            items: BTreeMap::new(),
            last_index: 0,
            announced: None,
            called_function: false,
            refused: false,
            sources: 0,
            done: false,
        }
    }

    fn error(&self, message: impl Into<String>) -> ProviderError {
        provider_error(self.provider, message)
    }

    fn index(&self, event: &Value) -> u32 {
        index_field(event, "output_index").unwrap_or(self.last_index)
    }

    /// The item at `index`, opened as `make()` when the stream never announced it.
    fn item_mut(
        &mut self,
        index: u32,
        make: impl FnOnce() -> Item,
    ) -> Result<&mut Item, ProviderError> {
        if !self.items.contains_key(&index) && self.items.len() >= MAX_RESPONSE_OUTPUT_ITEMS {
            return Err(self.error(format!(
                "openai responses stream opened more than {MAX_RESPONSE_OUTPUT_ITEMS} output items"
            )));
        }
        self.last_index = index;
        Ok(self.items.entry(index).or_insert_with(make))
    }

    fn announce(&mut self, response: Option<&Value>, out: &mut Vec<StreamPart>) {
        let Some(response) = response else { return };
        let id = str_field(response, "id").map(str::to_owned);
        let model = str_field(response, "model").map(str::to_owned);
        if id.is_none() && model.is_none() {
            return;
        }
        let next = Some((id.clone(), model.clone()));
        if self.announced != next {
            self.announced = next;
            out.push(StreamPart::ResponseMetadata { id, model });
        }
    }

    fn item_added(
        &mut self,
        event: &Value,
        out: &mut Vec<StreamPart>,
    ) -> Result<(), ProviderError> {
        let index = self.index(event);
        let item = event.get("item").unwrap_or(&Value::Null);
        let id = str_field(item, "id").unwrap_or_default().to_owned();
        let state = match str_field(item, "type").unwrap_or_default() {
            "message" => Item::Message {
                cited: BTreeSet::new(),
            },
            "reasoning" => Item::Reasoning {
                item_id: (!id.is_empty()).then_some(id),
                encrypted_content: str_field(item, "encrypted_content").map(str::to_owned),
                last_part: None,
                ended: false,
            },
            "function_call" => {
                let call_id = str_field(item, "call_id").map_or(id, str::to_owned);
                let name = str_field(item, "name").unwrap_or_default().to_owned();
                out.push(StreamPart::ToolCallStart {
                    block: index,
                    id: call_id.clone(),
                    name: name.clone(),
                });
                Item::FunctionCall {
                    call_id,
                    name,
                    arguments: str_field(item, "arguments").unwrap_or_default().to_owned(),
                    finished: false,
                }
            }
            "web_search_call" => {
                out.push(StreamPart::ToolCallStart {
                    block: index,
                    id: id.clone(),
                    name: OPENAI_WEB_SEARCH_TOOL_NAME.to_owned(),
                });
                Item::WebSearch {
                    id,
                    finished: false,
                }
            }
            _ => Item::Other,
        };
        let slot = self.item_mut(index, || Item::Other)?;
        *slot = state;
        Ok(())
    }

    fn item_done(&mut self, event: &Value, out: &mut Vec<StreamPart>) -> Result<(), ProviderError> {
        let index = self.index(event);
        let item = event.get("item").unwrap_or(&Value::Null);
        match str_field(item, "type").unwrap_or_default() {
            "reasoning" => {
                let state = self.item_mut(index, || Item::Reasoning {
                    item_id: None,
                    encrypted_content: None,
                    last_part: None,
                    ended: false,
                })?;
                if let Item::Reasoning {
                    item_id,
                    encrypted_content,
                    ended,
                    ..
                } = state
                {
                    if !*ended {
                        *ended = true;
                        // The finished item is authoritative; the opening one may lack the
                        // final encrypted content.
                        out.push(StreamPart::ReasoningEnd {
                            block: index,
                            signature: None,
                            redacted_data: None,
                            item_id: str_field(item, "id")
                                .map(str::to_owned)
                                .or_else(|| item_id.clone()),
                            encrypted_content: str_field(item, "encrypted_content")
                                .map(str::to_owned)
                                .or_else(|| encrypted_content.clone()),
                        });
                    }
                }
            }
            "function_call" => {
                if !matches!(self.items.get(&index), Some(Item::FunctionCall { .. })) {
                    // Done without a start (a gateway that skips `output_item.added`).
                    let call_id = str_field(item, "call_id")
                        .or_else(|| str_field(item, "id"))
                        .unwrap_or_default()
                        .to_owned();
                    let name = str_field(item, "name").unwrap_or_default().to_owned();
                    out.push(StreamPart::ToolCallStart {
                        block: index,
                        id: call_id.clone(),
                        name: name.clone(),
                    });
                    let slot = self.item_mut(index, || Item::Other)?;
                    *slot = Item::FunctionCall {
                        call_id,
                        name,
                        arguments: String::new(),
                        finished: false,
                    };
                }
                self.finish_call(index, str_field(item, "arguments"), out);
            }
            "web_search_call" => {
                let id = match self.items.get(&index) {
                    Some(Item::WebSearch { finished: true, .. }) => return Ok(()),
                    Some(Item::WebSearch { id, .. }) if !id.is_empty() => id.clone(),
                    _ => str_field(item, "id").unwrap_or_default().to_owned(),
                };
                let slot = self.item_mut(index, || Item::Other)?;
                *slot = Item::WebSearch {
                    id: id.clone(),
                    finished: true,
                };
                let action = item.get("action").filter(|a| a.is_object());
                let arguments = action.map_or_else(|| "{}".to_owned(), Value::to_string);
                let status = str_field(item, "status").unwrap_or("completed");
                let mut result = Map::new();
                result.insert("status".into(), status.into());
                if let Some(action) = action {
                    result.insert("action".into(), action.clone());
                }
                out.push(StreamPart::ToolCall(ToolCall {
                    id: id.clone(),
                    name: OPENAI_WEB_SEARCH_TOOL_NAME.to_owned(),
                    arguments,
                    arguments_valid: true,
                    provider_executed: true,
                }));
                out.push(StreamPart::ProviderToolResult {
                    tool_call_id: id,
                    name: OPENAI_WEB_SEARCH_TOOL_NAME.to_owned(),
                    result: RawJson::from_value(&Value::Object(result))
                        .unwrap_or_else(|_| RawJson::empty_object()),
                    is_error: status == "failed",
                });
            }
            "message" => {
                // Citations normally arrive as `annotation.added` events; the finished
                // message repeats them, and is the only place some gateways put them.
                let annotations: Vec<&Value> = item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.get("annotations").and_then(Value::as_array))
                    .flatten()
                    .collect();
                for annotation in annotations {
                    self.cite(index, annotation, out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Reports a function call once, with the final argument text when the provider sent
    /// it, else what was streamed; no arguments at all become `{}`.
    fn finish_call(
        &mut self,
        index: u32,
        final_arguments: Option<&str>,
        out: &mut Vec<StreamPart>,
    ) {
        let Some(Item::FunctionCall {
            call_id,
            name,
            arguments,
            finished,
        }) = self.items.get_mut(&index)
        else {
            return;
        };
        if *finished {
            return;
        }
        *finished = true;
        self.called_function = true;
        let text = match final_arguments.filter(|a| !a.trim().is_empty()) {
            Some(a) => a.to_owned(),
            None => std::mem::take(arguments),
        };
        let text = if text.trim().is_empty() {
            "{}".to_owned()
        } else {
            text
        };
        let valid = serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
        out.push(StreamPart::ToolCall(ToolCall {
            id: call_id.clone(),
            name: name.clone(),
            arguments: text,
            arguments_valid: valid,
            provider_executed: false,
        }));
    }

    fn arguments_delta(
        &mut self,
        event: &Value,
        out: &mut Vec<StreamPart>,
    ) -> Result<(), ProviderError> {
        let index = self.index(event);
        let provider = self.provider;
        let delta = str_field(event, "delta").unwrap_or_default();
        let Some(Item::FunctionCall {
            call_id,
            arguments,
            finished: false,
            ..
        }) = self.items.get_mut(&index)
        else {
            // Arguments of a call never announced cannot be attributed to one.
            return Ok(());
        };
        if arguments.len().saturating_add(delta.len()) > MAX_TOOL_CALL_ARGUMENT_BYTES {
            return Err(provider_error(
                provider,
                format!(
                    "openai responses tool call arguments exceed {MAX_TOOL_CALL_ARGUMENT_BYTES} bytes"
                ),
            ));
        }
        arguments.push_str(delta);
        let id = call_id.clone();
        if !delta.is_empty() {
            out.push(StreamPart::ToolCallDelta {
                block: index,
                id,
                delta: delta.to_owned(),
            });
        }
        Ok(())
    }

    fn reasoning_delta(
        &mut self,
        event: &Value,
        stream: u8,
        part_field: &str,
        out: &mut Vec<StreamPart>,
    ) -> Result<(), ProviderError> {
        let index = self.index(event);
        let delta = str_field(event, "delta").unwrap_or_default();
        let part = event.get(part_field).and_then(Value::as_u64).unwrap_or(0);
        let state = self.item_mut(index, || Item::Reasoning {
            item_id: None,
            encrypted_content: None,
            last_part: None,
            ended: false,
        })?;
        if let Item::Reasoning { last_part, .. } = state {
            if last_part.is_some_and(|last| last != (stream, part)) {
                out.push(StreamPart::ReasoningDelta {
                    block: index,
                    delta: SUMMARY_PART_SEPARATOR.to_owned(),
                });
            }
            *last_part = Some((stream, part));
        }
        if !delta.is_empty() {
            out.push(StreamPart::ReasoningDelta {
                block: index,
                delta: delta.to_owned(),
            });
        }
        Ok(())
    }

    /// Reports a `url_citation` annotation as a source, once per URL and message.
    fn cite(
        &mut self,
        index: u32,
        annotation: &Value,
        out: &mut Vec<StreamPart>,
    ) -> Result<(), ProviderError> {
        if str_field(annotation, "type") != Some("url_citation") {
            return Ok(());
        }
        let Some(url) = str_field(annotation, "url").filter(|u| !u.is_empty()) else {
            return Ok(());
        };
        if self.sources >= MAX_RESPONSE_SOURCES {
            return Ok(());
        }
        let state = self.item_mut(index, || Item::Message {
            cited: BTreeSet::new(),
        })?;
        let Item::Message { cited } = state else {
            return Ok(());
        };
        if !cited.insert(url.to_owned()) {
            return Ok(());
        }
        out.push(StreamPart::Source {
            id: format!("source-{}", self.sources),
            url: url.to_owned(),
            title: str_field(annotation, "title").map(str::to_owned),
        });
        self.sources += 1;
        Ok(())
    }

    /// Reports what a finished response left open: calls whose `done` never came (with
    /// the streamed arguments) and reasoning items never closed.
    fn flush_open_items(&mut self, out: &mut Vec<StreamPart>) {
        let open_calls: Vec<u32> = self
            .items
            .iter()
            .filter(|(_, item)| {
                matches!(
                    item,
                    Item::FunctionCall {
                        finished: false,
                        ..
                    }
                )
            })
            .map(|(index, _)| *index)
            .collect();
        for index in open_calls {
            self.finish_call(index, None, out);
        }
        for (index, item) in &mut self.items {
            if let Item::Reasoning {
                item_id,
                encrypted_content,
                ended: ended @ false,
                ..
            } = item
            {
                *ended = true;
                out.push(StreamPart::ReasoningEnd {
                    block: *index,
                    signature: None,
                    redacted_data: None,
                    item_id: item_id.clone(),
                    encrypted_content: encrypted_content.clone(),
                });
            }
        }
    }

    fn finish(&mut self, event: &Value, incomplete: bool, out: &mut Vec<StreamPart>) {
        let response = event.get("response");
        self.announce(response, out);
        self.flush_open_items(out);
        let reason = if incomplete {
            let reason = response
                .and_then(|r| r.get("incomplete_details"))
                .and_then(|d| str_field(d, "reason"))
                .unwrap_or_default();
            match reason {
                "max_output_tokens" | "max_tokens" => FinishReason::Length,
                "content_filter" => FinishReason::ContentFilter,
                "" => FinishReason::Other("incomplete".to_owned()),
                other => FinishReason::Other(other.to_owned()),
            }
        } else if self.called_function {
            FinishReason::ToolCalls
        } else if self.refused {
            FinishReason::ContentFilter
        } else {
            FinishReason::Stop
        };
        out.push(StreamPart::Finish {
            reason,
            usage: usage(response),
        });
    }

    /// An in-stream `error` event, flat (`{"type":"error","code",…}`) or nested
    /// (`{"type":"error","error":{…}}`). The event itself is the body, so classification
    /// reads its message and codes as it would an HTTP error body.
    fn error_event(&self, data: &str, event: &Value) -> ProviderError {
        let inner = event
            .get("error")
            .filter(|e| e.is_object())
            .unwrap_or(event);
        let code = str_field(inner, "code")
            .or_else(|| str_field(inner, "type").filter(|t| *t != "error"))
            .unwrap_or_default();
        let message = str_field(inner, "message").unwrap_or("error event");
        let text = if code.is_empty() {
            format!("openai responses stream error: {message}")
        } else {
            format!("openai responses stream error ({code}): {message}")
        };
        self.error(text).with_body(data.as_bytes().to_vec())
    }

    /// `response.failed`: the body handed to classification is `{"error": response.error}`,
    /// the shape of an HTTP error body.
    fn failed(&self, event: &Value) -> ProviderError {
        let error = event
            .get("response")
            .and_then(|r| r.get("error"))
            .filter(|e| e.is_object());
        let Some(error) = error else {
            return self.error("openai responses response failed without an error");
        };
        let code = str_field(error, "code").unwrap_or_default();
        let message = str_field(error, "message").unwrap_or("response failed");
        let text = if code.is_empty() {
            format!("openai responses response failed: {message}")
        } else {
            format!("openai responses response failed ({code}): {message}")
        };
        self.error(text)
            .with_body(json!({ "error": error }).to_string().into_bytes())
    }
}

impl StreamDecoder for OpenAiResponsesDecoder {
    fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamPart>,
    ) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let value: Value = serde_json::from_str(data).map_err(|e| {
            self.error(format!(
                "openai responses stream sent an event that is not JSON: {e}"
            ))
            .with_source(e)
        })?;
        // The JSON `type` is authoritative; some servers omit the SSE `event:` line.
        let kind = str_field(&value, "type")
            .filter(|t| !t.is_empty())
            .unwrap_or(event.event.as_str());
        match kind {
            "response.created" | "response.in_progress" | "response.queued" => {
                self.announce(value.get("response"), out);
            }
            "response.output_item.added" => self.item_added(&value, out)?,
            "response.output_item.done" => self.item_done(&value, out)?,
            "response.output_text.delta" | "response.refusal.delta" => {
                if kind == "response.refusal.delta" {
                    self.refused = true;
                }
                let delta = str_field(&value, "delta").unwrap_or_default();
                if !delta.is_empty() {
                    out.push(StreamPart::TextDelta {
                        block: self.index(&value),
                        delta: delta.to_owned(),
                    });
                }
            }
            "response.reasoning_summary_text.delta" => {
                self.reasoning_delta(&value, 0, "summary_index", out)?;
            }
            "response.reasoning_text.delta" => {
                self.reasoning_delta(&value, 1, "content_index", out)?;
            }
            "response.function_call_arguments.delta" => self.arguments_delta(&value, out)?,
            "response.function_call_arguments.done" => {
                let index = self.index(&value);
                self.finish_call(index, str_field(&value, "arguments"), out);
            }
            "response.output_text.annotation.added" => {
                if let Some(annotation) = value.get("annotation") {
                    let index = self.index(&value);
                    self.cite(index, annotation, out)?;
                }
            }
            "response.completed" => {
                self.done = true;
                self.finish(&value, false, out);
            }
            "response.incomplete" => {
                self.done = true;
                self.finish(&value, true, out);
            }
            "response.failed" => {
                self.done = true;
                return Err(self.failed(&value));
            }
            "error" => {
                self.done = true;
                return Err(self.error_event(data, &value));
            }
            _ => {}
        }
        Ok(())
    }

    fn on_end(&mut self, _out: &mut Vec<StreamPart>) -> Result<(), ProviderError> {
        if self.done {
            Ok(())
        } else {
            self.done = true;
            Err(self.error(OPENAI_RESPONSES_STREAM_CLOSED))
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

fn provider_error(provider: Provider, message: impl Into<String>) -> ProviderError {
    ProviderError::new(message).with_provider(provider.as_str())
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn index_field(value: &Value, key: &str) -> Option<u32> {
    value
        .get(key)
        .and_then(Value::as_u64)
        .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
}

/// The response's usage, normalized with `chatcost`'s Responses rules. Missing or
/// inconsistent usage gives the empty usage (unpriced) rather than failing a response
/// that otherwise completed.
fn usage(response: Option<&Value>) -> ChatMessageUsage {
    response
        .and_then(|r| r.get("usage"))
        .filter(|u| u.is_object())
        .and_then(|u| OpenAiResponsesUsage::deserialize(u).ok())
        .and_then(|u| normalize::openai_responses(&u).ok())
        .unwrap_or_default()
}
