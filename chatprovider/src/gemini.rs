//! The Google Gemini streaming client: [`GeminiModel`] (request building and HTTP) and
//! [`GeminiDecoder`] (SSE events to [`StreamPart`]s).
//!
//! The request is `POST {base}/models/{model}:streamGenerateContent?alt=sse` with the key in
//! `x-goog-api-key`; every SSE event is a whole `GenerateContentResponse` carrying the next
//! parts of the (single) candidate, and the body simply ends after the chunk with a
//! `finishReason`. `docs/providers.md` (Google) lists the mapping rules; the important ones:
//!
//! - Consecutive messages of the same wire role are merged (`user` for user messages and
//!   tool results, `model` for the assistant): Gemini wants the answers to parallel function
//!   calls together in one `user` content, in the order of the calls.
//! - Thought parts (`"thought": true`) become reasoning; thoughts are never replayed (the API
//!   does not need them back), but a function call's `thoughtSignature` is
//!   ([`StreamPart::ThoughtSignature`], kept on the stored `tool-call` part). A call replayed
//!   to a Gemini 3 model without a signature (made by another model) carries the documented
//!   placeholder [`GEMINI_SKIP_THOUGHT_SIGNATURE`], which Gemini 3 requires.
//! - Function calls arrive whole; Gemini may give no call id, so ids are generated stably
//!   from the response id and the call's position ([`GeminiDecoder`]).
//! - Safety stops (`SAFETY`, `PROHIBITED_CONTENT`, `BLOCKLIST`, `SPII`, `RECITATION`,
//!   `IMAGE_SAFETY`) and a prompt blocked by `promptFeedback.blockReason` finish with
//!   [`FinishReason::ContentFilter`].
//! - A body that ends before any `finishReason` fails with [`GEMINI_STREAM_CLOSED_ERROR`],
//!   pre-classified as a retryable timeout; an `{"error": …}` event becomes a
//!   [`ProviderError`] with the error's HTTP `code` as status and the event as body (so a
//!   `RetryInfo.retryDelay` in it is honoured, see [`chaterror::parse_google_retry_delay`]).

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use chatcost::GeminiUsage;
use chaterror::{ClassifiedError, ProviderError};
use codersdk::{ChatErrorKind, RawJson};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::catalog::Provider;
use crate::language_model::{LanguageModel, ModelStream, StreamDecoder};
use crate::options::GoogleRequestOptions;
use crate::request::{Message, ModelRequest, Part, Role, ToolChoice};
use crate::response::{FinishReason, StreamPart, ToolCall};
use crate::sse::SseEvent;
use crate::transport::{self, ClientSettings, MAX_ERROR_BODY_BYTES};

/// The Gemini API's default base URL.
pub const GEMINI_DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

/// The streaming method appended to `{base}/models/{model}`, with the SSE query.
pub const GEMINI_STREAM_METHOD: &str = ":streamGenerateContent?alt=sse";

/// The header carrying the API key.
pub const GEMINI_API_KEY_HEADER: &str = "x-goog-api-key";

/// The thought signature Google documents for function calls a Gemini 3 model must accept
/// without one (calls made by another model, or history written by hand): Gemini 3 rejects
/// a replayed function call that has no signature at all.
pub const GEMINI_SKIP_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

/// The error text of a stream that ended before any `finishReason` (classified as a
/// retryable timeout).
pub const GEMINI_STREAM_CLOSED_ERROR: &str = "gemini stream closed before finish reason";

/// Most characters of an in-stream error message repeated in the [`ProviderError`]
/// message (the whole event is kept as the body).
pub const GEMINI_MAX_ERROR_MESSAGE_CHARS: usize = 1024;

/// Most function calls one response may make. A stream exceeding it fails instead of
/// growing without bound.
pub const GEMINI_MAX_TOOL_CALLS: usize = 1024;

const PROVIDER: &str = "google";

/// A Gemini model served by the Gemini API (`generativelanguage.googleapis.com`).
///
/// Cheap to clone (the HTTP client is shared). `Debug` never shows the API key, which is
/// sent as `x-goog-api-key` to the configured base URL only.
#[derive(Clone)]
pub struct GeminiModel {
    model: String,
    endpoint: transport::KeyedEndpoint,
}

impl fmt::Debug for GeminiModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiModel")
            .field("model", &self.model)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl GeminiModel {
    /// A model `model` (e.g. `gemini-2.5-flash`; a leading `models/` is dropped) reached
    /// with `api_key` at `base_url` (blank or `None`: [`GEMINI_DEFAULT_BASE_URL`]; a trailing
    /// `/` is ignored).
    pub fn new(
        model: impl Into<String>,
        api_key: impl Into<String>,
        base_url: Option<&str>,
        settings: ClientSettings,
    ) -> Self {
        let endpoint = transport::KeyedEndpoint::new(
            api_key.into(),
            base_url,
            GEMINI_DEFAULT_BASE_URL,
            settings,
        );
        let model: String = model.into();
        let model = model.trim();
        GeminiModel {
            model: model.strip_prefix("models/").unwrap_or(model).to_owned(),
            endpoint,
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.endpoint.base_url
    }

    /// The full streaming endpoint URL.
    pub fn stream_url(&self) -> String {
        format!(
            "{}/models/{}{GEMINI_STREAM_METHOD}",
            self.endpoint.base_url,
            urlencoding_path(&self.model)
        )
    }

    /// The JSON body this client sends for `request` (exposed for tests).
    pub fn request_json(&self, request: &ModelRequest) -> Result<String, ProviderError> {
        let body = build_request(&self.model, request);
        serde_json::to_string(&body).map_err(|e| {
            ProviderError::new(format!("encode gemini request: {e}"))
                .with_provider(PROVIDER)
                .with_source(e)
        })
    }

    fn build_http_request(
        &self,
        request: &ModelRequest,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let body = self.request_json(request)?;
        let key = self.endpoint.key_header(PROVIDER)?;
        let req = self
            .endpoint
            .settings
            .http
            .post(self.stream_url())
            .header(GEMINI_API_KEY_HEADER, key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream");
        Ok(
            transport::with_common_headers(req, &self.endpoint.settings, &request.correlation)
                .body(body),
        )
    }
}

/// Escapes what a model id could contain that does not belong in a URL path segment.
fn urlencoding_path(model: &str) -> String {
    let mut out = String::with_capacity(model.len());
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait::async_trait]
impl LanguageModel for GeminiModel {
    fn provider(&self) -> Provider {
        Provider::Google
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
                GeminiDecoder::new(),
            ),
            self.endpoint.redactor.clone(),
        )
    }

    fn redactor(&self) -> chaterror::Redactor {
        self.endpoint.redactor.clone()
    }
}

fn google_options(request: &ModelRequest) -> Option<&GoogleRequestOptions> {
    request
        .provider_options
        .as_ref()
        .and_then(|o| o.google.as_ref())
}

/// Whether `model` is Gemini 3 or later (`gemini-3-pro-preview`, `gemini-3.1-flash`, …),
/// the generation that takes thinking levels and strictly validates thought signatures.
pub fn is_gemini_3_or_later(model: &str) -> bool {
    let lower = model.trim().to_ascii_lowercase();
    let lower = lower.strip_prefix("models/").unwrap_or(&lower);
    let Some(rest) = lower.strip_prefix("gemini-") else {
        return false;
    };
    let major: String = rest.chars().take_while(char::is_ascii_digit).collect();
    major.parse::<u32>().is_ok_and(|m| m >= 3)
}

// ---------------------------------------------------------------------------------------
// Request mapping
// ---------------------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    contents: Vec<WireContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<WireSystem<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<WireToolConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<WireGenerationConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    safety_settings: Vec<WireSafetySetting<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_content: Option<&'a str>,
}

#[derive(Serialize)]
struct WireSystem<'a> {
    parts: Vec<WirePart<'a>>,
}

#[derive(Serialize)]
struct WireContent<'a> {
    role: &'static str,
    parts: Vec<WirePart<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WirePart<'a> {
    Text {
        text: Cow<'a, str>,
    },
    InlineData {
        #[serde(rename = "inlineData")]
        inline_data: WireBlob,
    },
    FunctionCall {
        #[serde(rename = "functionCall")]
        function_call: WireFunctionCall<'a>,
        #[serde(rename = "thoughtSignature", skip_serializing_if = "Option::is_none")]
        thought_signature: Option<&'a str>,
    },
    FunctionResponse {
        #[serde(rename = "functionResponse")]
        function_response: WireFunctionResponse<'a>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireBlob {
    mime_type: String,
    data: String,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    args: Cow<'a, RawJson>,
}

#[derive(Serialize)]
struct WireFunctionResponse<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    response: RawJson,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireTool<'a> {
    Functions {
        #[serde(rename = "functionDeclarations")]
        function_declarations: Vec<WireFunctionDeclaration<'a>>,
    },
    GoogleSearch {
        #[serde(rename = "googleSearch")]
        google_search: serde_json::Map<String, serde_json::Value>,
    },
}

#[derive(Serialize)]
struct WireFunctionDeclaration<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    #[serde(
        rename = "parametersJsonSchema",
        skip_serializing_if = "Option::is_none"
    )]
    parameters: Option<&'a RawJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireToolConfig<'a> {
    function_calling_config: WireFunctionCallingConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireFunctionCallingConfig<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_function_names: Option<[&'a str; 1]>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireGenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<WireThinkingConfig>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireThinkingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_budget: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_level: Option<&'static str>,
    include_thoughts: bool,
}

#[derive(Serialize)]
struct WireSafetySetting<'a> {
    category: &'a str,
    threshold: &'a str,
}

/// The Gemini `thinkingLevel` for a configured level or a reasoning effort, clamped up to
/// what `model` supports (Coder's rules): `none`/`minimal` ⇒ `MINIMAL`, `low` ⇒ `LOW`,
/// `medium` ⇒ `MEDIUM`, `high`/`xhigh`/`max` ⇒ `HIGH`; Flash models take all four, image
/// models `HIGH` (Flash image also `MINIMAL`), `gemini-3-pro` `LOW`/`HIGH`, later Pro models
/// `LOW`/`MEDIUM`/`HIGH`, unknown Gemini 3+ models `LOW`/`HIGH`. `None` for models before
/// Gemini 3 (they take a budget only) and for unknown values (case-insensitive, trimmed).
///
/// ```
/// use chatprovider::gemini_thinking_level;
/// assert_eq!(gemini_thinking_level("gemini-3-flash-preview", "minimal"), Some("MINIMAL"));
/// assert_eq!(gemini_thinking_level("gemini-3-pro-preview", "medium"), Some("HIGH"));
/// assert_eq!(gemini_thinking_level("gemini-3.1-pro-preview", "medium"), Some("MEDIUM"));
/// assert_eq!(gemini_thinking_level("gemini-3-pro-preview", "none"), Some("LOW"));
/// assert_eq!(gemini_thinking_level("gemini-2.5-pro", "high"), None);
/// ```
pub fn gemini_thinking_level(model: &str, value: &str) -> Option<&'static str> {
    if !is_gemini_3_or_later(model) {
        return None;
    }
    const ORDER: [&str; 4] = ["MINIMAL", "LOW", "MEDIUM", "HIGH"];
    let wanted = match value.trim().to_ascii_lowercase().as_str() {
        "none" | "minimal" => 0,
        "low" => 1,
        "medium" => 2,
        "high" | "xhigh" | "max" => 3,
        _ => return None,
    };
    let lower = model.trim().to_ascii_lowercase();
    let supported: &[usize] = if lower.contains("image") {
        if lower.contains("flash") {
            &[0, 3]
        } else {
            &[3]
        }
    } else if lower.contains("flash") {
        &[0, 1, 2, 3]
    } else if lower.starts_with("gemini-3-pro") || lower.starts_with("models/gemini-3-pro") {
        &[1, 3]
    } else if lower.contains("pro") {
        &[1, 2, 3]
    } else {
        &[1, 3]
    };
    let level = supported
        .iter()
        .copied()
        .find(|l| *l >= wanted)
        .or_else(|| supported.last().copied())?;
    ORDER.get(level).copied()
}

fn build_request<'a>(model: &'a str, request: &'a ModelRequest) -> WireRequest<'a> {
    let opts = google_options(request);
    let settings = &request.settings;

    let system: Vec<WirePart<'a>> = request
        .system
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| WirePart::Text {
            text: Cow::Borrowed(s.as_str()),
        })
        .collect();

    let thinking = opts.and_then(|o| o.thinking.as_ref()).and_then(|t| {
        // An explicit budget wins over a level; levels exist from Gemini 3 on only.
        let budget = t.budget;
        let level = if budget.is_none() {
            t.level
                .as_deref()
                .and_then(|l| gemini_thinking_level(model, l))
        } else {
            None
        };
        let include = t.include_thoughts.unwrap_or(true);
        (budget.is_some() || level.is_some() || t.include_thoughts.is_some()).then_some(
            WireThinkingConfig {
                thinking_budget: budget,
                thinking_level: level,
                include_thoughts: include,
            },
        )
    });
    let generation_config = WireGenerationConfig {
        max_output_tokens: settings.max_output_tokens.filter(|m| *m > 0),
        temperature: settings.temperature,
        top_p: settings.top_p,
        top_k: settings.top_k,
        presence_penalty: settings.presence_penalty,
        frequency_penalty: settings.frequency_penalty,
        thinking_config: thinking,
    };
    let has_generation_config = generation_config.max_output_tokens.is_some()
        || generation_config.temperature.is_some()
        || generation_config.top_p.is_some()
        || generation_config.top_k.is_some()
        || generation_config.presence_penalty.is_some()
        || generation_config.frequency_penalty.is_some()
        || generation_config.thinking_config.is_some();

    let mut safety_settings: Vec<WireSafetySetting<'a>> = opts
        .and_then(|o| o.safety_settings.as_ref())
        .map(|list| {
            list.iter()
                .filter(|s| !s.category.is_empty() && !s.threshold.is_empty())
                .map(|s| WireSafetySetting {
                    category: &s.category,
                    threshold: &s.threshold,
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(threshold) = opts.and_then(|o| o.threshold.as_deref()) {
        // `threshold` is the default for every category the list does not name.
        for category in GEMINI_HARM_CATEGORIES {
            if !safety_settings.iter().any(|s| s.category == category) {
                safety_settings.push(WireSafetySetting {
                    category,
                    threshold,
                });
            }
        }
    }

    let (tools, tool_config) = build_tools(request, opts);

    WireRequest {
        contents: build_contents(model, &request.messages),
        system_instruction: (!system.is_empty()).then_some(WireSystem { parts: system }),
        tools,
        tool_config,
        generation_config: has_generation_config.then_some(generation_config),
        safety_settings,
        cached_content: opts.and_then(|o| o.cached_content.as_deref()),
    }
}

/// The harm categories a default `threshold` applies to.
const GEMINI_HARM_CATEGORIES: [&str; 5] = [
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
];

fn build_tools<'a>(
    request: &'a ModelRequest,
    opts: Option<&'a GoogleRequestOptions>,
) -> (Vec<WireTool<'a>>, Option<WireToolConfig<'a>>) {
    let mut tools = Vec::new();
    if !request.tools.is_empty() {
        tools.push(WireTool::Functions {
            function_declarations: request
                .tools
                .iter()
                .map(|t| WireFunctionDeclaration {
                    name: &t.name,
                    description: &t.description,
                    // A tool without an object schema takes no arguments.
                    parameters: t.input_schema.is_object().then_some(&t.input_schema),
                })
                .collect(),
        });
    }
    if opts.and_then(|o| o.web_search) == Some(true) {
        tools.push(WireTool::GoogleSearch {
            google_search: serde_json::Map::new(),
        });
    }
    let config = if request.tools.is_empty() {
        None
    } else {
        request.tool_choice.as_ref().map(|choice| {
            let (mode, allowed) = match choice {
                ToolChoice::Auto => ("AUTO", None),
                ToolChoice::None => ("NONE", None),
                ToolChoice::Required => ("ANY", None),
                ToolChoice::Tool(name) => ("ANY", Some([name.as_str()])),
            };
            WireToolConfig {
                function_calling_config: WireFunctionCallingConfig {
                    mode,
                    allowed_function_names: allowed,
                },
            }
        })
    };
    (tools, config)
}

fn wire_role(role: Role) -> &'static str {
    match role {
        Role::Assistant => "model",
        Role::User | Role::Tool => "user",
    }
}

fn build_contents<'a>(model: &str, messages: &'a [Message]) -> Vec<WireContent<'a>> {
    let strict_signatures = is_gemini_3_or_later(model);
    let mut out: Vec<WireContent<'a>> = Vec::with_capacity(messages.len());
    for message in messages {
        let parts = message_parts(message, strict_signatures);
        if parts.is_empty() {
            continue;
        }
        let role = wire_role(message.role);
        match out.last_mut() {
            Some(prev) if prev.role == role => prev.parts.extend(parts),
            _ => out.push(WireContent { role, parts }),
        }
    }
    out
}

fn message_parts(message: &Message, strict_signatures: bool) -> Vec<WirePart<'_>> {
    let assistant = message.role == Role::Assistant;
    let mut parts = Vec::with_capacity(message.content.len());
    let mut first_call = true;
    for part in &message.content {
        match part {
            Part::Text { text } => {
                if !text.is_empty() {
                    parts.push(WirePart::Text {
                        text: Cow::Borrowed(text.as_str()),
                    });
                }
            }
            Part::File {
                media_type,
                data,
                filename,
            } => {
                if assistant {
                    continue;
                }
                parts.push(file_part(media_type, data, filename.as_deref()));
            }
            // Thought summaries are not replayed: the API does not take them back, and the
            // signatures that matter travel on the function calls.
            Part::Reasoning { .. } => {}
            Part::ToolCall {
                id,
                name,
                arguments,
                provider_executed,
                thought_signature,
            } => {
                if !assistant || *provider_executed {
                    continue;
                }
                let args = if arguments.is_object() {
                    Cow::Borrowed(arguments)
                } else {
                    Cow::Owned(RawJson::empty_object())
                };
                let mut signature = thought_signature.as_deref().filter(|s| !s.is_empty());
                if signature.is_none() && strict_signatures && first_call {
                    signature = Some(GEMINI_SKIP_THOUGHT_SIGNATURE);
                }
                first_call = false;
                parts.push(WirePart::FunctionCall {
                    function_call: WireFunctionCall {
                        id: Some(id.as_str()).filter(|i| !i.is_empty()),
                        name,
                        args,
                    },
                    thought_signature: signature,
                });
            }
            Part::ToolResult {
                tool_call_id,
                name,
                output,
                is_error,
            } => {
                if assistant {
                    continue;
                }
                parts.push(WirePart::FunctionResponse {
                    function_response: WireFunctionResponse {
                        id: Some(tool_call_id.as_str()).filter(|i| !i.is_empty()),
                        name,
                        response: function_response(output, *is_error),
                    },
                });
            }
        }
    }
    parts
}

/// The `response` object of a function response: Gemini documents `output` for the result
/// and `error` for a failure; an object result is sent as it is.
fn function_response(output: &RawJson, is_error: bool) -> RawJson {
    let value: serde_json::Value =
        serde_json::from_str(output.get()).unwrap_or(serde_json::Value::Null);
    let wrapped = if is_error {
        serde_json::json!({ "error": value })
    } else if value.is_object() {
        value
    } else {
        serde_json::json!({ "output": value })
    };
    RawJson::from(wrapped)
}

fn file_part<'a>(media_type: &str, data: &[u8], filename: Option<&str>) -> WirePart<'a> {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence.starts_with("image/") || essence == "application/pdf" {
        return WirePart::InlineData {
            inline_data: WireBlob {
                mime_type: essence,
                data: base64::engine::general_purpose::STANDARD.encode(data),
            },
        };
    }
    if essence.starts_with("text/") {
        return WirePart::Text {
            text: Cow::Owned(String::from_utf8_lossy(data).into_owned()),
        };
    }
    let name = filename.unwrap_or("attachment");
    // Tell the model something was attached rather than silently dropping it.
    WirePart::Text {
        text: Cow::Owned(format!(
            "[attachment {name} ({essence}) omitted: Gemini is sent images, PDF and text files]"
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Stream decoding
// ---------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct InResponse {
    candidates: Vec<InCandidate>,
    prompt_feedback: Option<InPromptFeedback>,
    usage_metadata: Option<GeminiUsage>,
    model_version: Option<String>,
    response_id: Option<String>,
    error: Option<InError>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct InCandidate {
    content: Option<InContent>,
    finish_reason: Option<String>,
    grounding_metadata: Option<InGrounding>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InContent {
    parts: Vec<InPart>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct InPart {
    text: Option<String>,
    thought: Option<bool>,
    thought_signature: Option<String>,
    function_call: Option<InFunctionCall>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InFunctionCall {
    id: Option<String>,
    name: Option<String>,
    args: Option<Box<RawValue>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct InPromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct InGrounding {
    grounding_chunks: Vec<InGroundingChunk>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InGroundingChunk {
    web: Option<InWeb>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InWeb {
    uri: Option<String>,
    title: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InError {
    code: Option<u16>,
    message: Option<String>,
    status: Option<String>,
}

/// What the current content block is (Gemini has no blocks: a run of parts of one kind
/// makes one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text,
    Thought,
}

/// Decodes a Gemini `streamGenerateContent?alt=sse` body into [`StreamPart`]s.
///
/// Pure and incremental: the parts come out identical however the body was chunked. Block
/// indices count runs of text, runs of thought text and function calls, in order. A call
/// without an `id` gets `{responseId}:call:{n}` (`gemini:call:{n}` when the response has no
/// id), `n` counting the response's calls from 0: stable, so a re-decoded stream yields the
/// same ids.
///
/// ```
/// use chatprovider::{decode_body, FinishReason, GeminiDecoder, StreamPart};
///
/// let body = concat!(
///     r#"data: {"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"}}],"responseId":"r1","modelVersion":"gemini-2.5-flash"}"#,
///     "\n\n",
///     r#"data: {"candidates":[{"content":{"parts":[{"text":"!"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":2,"totalTokenCount":5}}"#,
///     "\n\n",
/// );
/// let parts = decode_body(GeminiDecoder::new(), body.as_bytes(), 1 << 20)?;
/// assert_eq!(parts[1], StreamPart::TextDelta { block: 0, delta: "Hi".into() });
/// let StreamPart::Finish { reason, usage } = parts.last().unwrap() else { unreachable!() };
/// assert_eq!(*reason, FinishReason::Stop);
/// assert_eq!((usage.input_tokens, usage.output_tokens), (Some(3), Some(2)));
/// # Ok::<(), chaterror::ProviderError>(())
/// ```
#[derive(Debug)]
pub struct GeminiDecoder {
    done: bool,
    response_id: Option<String>,
    metadata_sent: bool,
    usage: Option<GeminiUsage>,
    finish_reason: Option<String>,
    blocked: bool,
    open: Open,
    block: u32,
    started: bool,
    calls: usize,
    sources: usize,
}

impl Default for GeminiDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl GeminiDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        GeminiDecoder {
            done: false,
            response_id: None,
            metadata_sent: false,
            usage: None,
            finish_reason: None,
            blocked: false,
            open: Open::None,
            block: 0,
            started: false,
            calls: 0,
            sources: 0,
        }
    }

    /// The block index for a new block of kind `kind`, closing the open one.
    fn enter(&mut self, kind: Open, out: &mut Vec<StreamPart>) -> u32 {
        if self.open == kind && kind != Open::None {
            return self.block;
        }
        self.close(out);
        if self.started {
            self.block = self.block.saturating_add(1);
        }
        self.started = true;
        self.open = kind;
        self.block
    }

    fn close(&mut self, out: &mut Vec<StreamPart>) {
        if self.open == Open::Thought {
            out.push(StreamPart::ReasoningEnd {
                block: self.block,
                signature: None,
                redacted_data: None,
                item_id: None,
                encrypted_content: None,
            });
        }
        self.open = Open::None;
    }

    fn part(&mut self, part: InPart, out: &mut Vec<StreamPart>) -> Result<(), ProviderError> {
        if let Some(call) = part.function_call {
            return self.function_call(call, part.thought_signature, out);
        }
        let Some(text) = part.text.filter(|t| !t.is_empty()) else {
            // A part with only a signature (Gemini may end a thinking response with one):
            // text signatures are optional to replay and are not kept.
            return Ok(());
        };
        if part.thought == Some(true) {
            let block = self.enter(Open::Thought, out);
            out.push(StreamPart::ReasoningDelta { block, delta: text });
        } else {
            let block = self.enter(Open::Text, out);
            out.push(StreamPart::TextDelta { block, delta: text });
        }
        Ok(())
    }

    fn function_call(
        &mut self,
        call: InFunctionCall,
        signature: Option<String>,
        out: &mut Vec<StreamPart>,
    ) -> Result<(), ProviderError> {
        if self.calls >= GEMINI_MAX_TOOL_CALLS {
            return Err(ProviderError::new(format!(
                "gemini stream made more than {GEMINI_MAX_TOOL_CALLS} function calls"
            ))
            .with_provider(PROVIDER));
        }
        let n = self.calls;
        self.calls += 1;
        let id = call.id.filter(|i| !i.trim().is_empty()).unwrap_or_else(|| {
            format!(
                "{}:call:{n}",
                self.response_id.as_deref().unwrap_or("gemini")
            )
        });
        let name = call.name.unwrap_or_default();
        let arguments = call
            .args
            .map(|a| a.get().to_owned())
            .unwrap_or_else(|| "{}".to_owned());
        let block = self.enter(Open::None, out);
        // Another part after the call starts a new block.
        self.open = Open::None;
        out.push(StreamPart::ToolCallStart {
            block,
            id: id.clone(),
            name: name.clone(),
        });
        out.push(StreamPart::ToolCallDelta {
            block,
            id: id.clone(),
            delta: arguments.clone(),
        });
        if let Some(signature) = signature.filter(|s| !s.is_empty()) {
            out.push(StreamPart::ThoughtSignature {
                tool_call_id: id.clone(),
                signature,
            });
        }
        let arguments_valid = RawJson::from_json(&arguments).is_ok();
        out.push(StreamPart::ToolCall(ToolCall {
            id,
            name,
            arguments,
            arguments_valid,
            provider_executed: false,
        }));
        Ok(())
    }

    fn grounding(&mut self, grounding: InGrounding, out: &mut Vec<StreamPart>) {
        for chunk in grounding.grounding_chunks {
            let Some(web) = chunk.web else { continue };
            let Some(url) = web.uri.filter(|u| !u.is_empty()) else {
                continue;
            };
            self.sources += 1;
            let id = format!(
                "{}:source:{}",
                self.response_id.as_deref().unwrap_or("gemini"),
                self.sources
            );
            out.push(StreamPart::Source {
                id,
                url,
                title: web.title,
            });
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamPart>) {
        self.close(out);
        let reason = if self.blocked {
            FinishReason::ContentFilter
        } else {
            finish_reason(self.finish_reason.as_deref(), self.calls > 0)
        };
        // Usage that cannot be normalized (a negative counter) is reported as unknown
        // rather than failing a response that was otherwise received in full.
        let usage = self
            .usage
            .as_ref()
            .and_then(|u| chatcost::normalize::gemini(u).ok())
            .unwrap_or_default();
        out.push(StreamPart::Finish { reason, usage });
        self.done = true;
    }
}

/// Maps Gemini's `finishReason`. `STOP` after function calls is a tool-call stop (Gemini
/// has no reason of its own for it).
fn finish_reason(reason: Option<&str>, made_calls: bool) -> FinishReason {
    match reason {
        Some("STOP") if made_calls => FinishReason::ToolCalls,
        Some("STOP") => FinishReason::Stop,
        Some("MAX_TOKENS") => FinishReason::Length,
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION",
        ) => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
        None => FinishReason::Other(String::new()),
    }
}

fn stream_closed_error() -> ProviderError {
    let classified = ClassifiedError::builder(ChatErrorKind::Timeout)
        .provider(PROVIDER)
        .retryable(true)
        .message("Google stream closed unexpectedly before the response completed.")
        .build();
    ProviderError::new(GEMINI_STREAM_CLOSED_ERROR)
        .with_provider(PROVIDER)
        .with_source(chaterror::with_classification(
            GEMINI_STREAM_CLOSED_ERROR,
            classified,
        ))
}

fn stream_error(data: &str, error: InError) -> ProviderError {
    let status = error.status.unwrap_or_default();
    let message: String = error
        .message
        .unwrap_or_default()
        .chars()
        .take(GEMINI_MAX_ERROR_MESSAGE_CHARS)
        .collect();
    let text = match (status.is_empty(), message.is_empty()) {
        (false, false) => format!("gemini stream error: {status}: {message}"),
        (false, true) => format!("gemini stream error: {status}"),
        (true, false) => format!("gemini stream error: {message}"),
        (true, true) => "gemini stream error".to_owned(),
    };
    let body = data.as_bytes();
    let body = body.get(..MAX_ERROR_BODY_BYTES).unwrap_or(body);
    let mut err = ProviderError::new(text)
        .with_provider(PROVIDER)
        .with_body(body.to_vec());
    if let Some(code) = error.code.filter(|c| (400..=599).contains(c)) {
        err = err.with_status(code);
    }
    err
}

impl StreamDecoder for GeminiDecoder {
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
        let parsed: InResponse = serde_json::from_str(data).map_err(|e| {
            if e.is_eof() {
                // A half-received last event: the stream was cut, not nonsense.
                return stream_closed_error();
            }
            ProviderError::new(format!("gemini stream event is not valid JSON: {e}"))
                .with_provider(PROVIDER)
                .with_source(e)
        })?;
        if let Some(error) = parsed.error {
            return Err(stream_error(data, error));
        }
        if self.response_id.is_none() {
            self.response_id.clone_from(&parsed.response_id);
        }
        if !self.metadata_sent && (parsed.response_id.is_some() || parsed.model_version.is_some()) {
            self.metadata_sent = true;
            out.push(StreamPart::ResponseMetadata {
                id: parsed.response_id,
                model: parsed.model_version,
            });
        }
        if parsed.usage_metadata.is_some() {
            // Each chunk repeats the running totals; the last one is the response's usage.
            self.usage = parsed.usage_metadata;
        }
        if let Some(reason) = parsed.prompt_feedback.and_then(|f| f.block_reason) {
            if !reason.is_empty() && reason != "BLOCK_REASON_UNSPECIFIED" {
                self.blocked = true;
                self.finish_reason = Some(reason);
            }
        }
        // Only one candidate is asked for; any other is ignored.
        if let Some(candidate) = parsed.candidates.into_iter().next() {
            for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                self.part(part, out)?;
            }
            if let Some(grounding) = candidate.grounding_metadata {
                self.grounding(grounding, out);
            }
            if let Some(reason) = candidate.finish_reason.filter(|r| !r.is_empty()) {
                self.finish_reason = Some(reason);
            }
        }
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<StreamPart>) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        if self.finish_reason.is_none() {
            return Err(stream_closed_error());
        }
        // Gemini may send the usage in a chunk after the finish reason, so the response is
        // finished only when the body ends.
        self.finish(out);
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn generation_detection_and_levels() {
        for (model, want) in [
            ("gemini-3-pro-preview", true),
            ("models/gemini-3.1-flash", true),
            ("Gemini-10-ultra", true),
            ("gemini-2.5-flash", false),
            ("gemini-exp", false),
            ("gemma-3", false),
        ] {
            assert_eq!(is_gemini_3_or_later(model), want, "{model}");
        }
        let l = gemini_thinking_level;
        assert_eq!(l("gemini-3-flash", "none"), Some("MINIMAL"));
        assert_eq!(l("gemini-3-flash", "medium"), Some("MEDIUM"));
        assert_eq!(l("gemini-3-pro-preview", "minimal"), Some("LOW"));
        assert_eq!(l("gemini-3-pro-preview", "xhigh"), Some("HIGH"));
        assert_eq!(l("gemini-3.1-pro", "low"), Some("LOW"));
        assert_eq!(l("gemini-3-pro-image-preview", "low"), Some("HIGH"));
        assert_eq!(l("gemini-3-flash-image", "minimal"), Some("MINIMAL"));
        assert_eq!(l("gemini-3-flash-image", "low"), Some("HIGH"));
        assert_eq!(l("gemini-3-ultra", "medium"), Some("HIGH"));
        assert_eq!(l("gemini-3-flash", " HIGH "), Some("HIGH"));
        assert_eq!(l("gemini-3-flash", "extreme"), None);
        assert_eq!(l("gemini-2.5-flash", "low"), None);
    }

    #[test]
    fn model_path_is_escaped() {
        let m = GeminiModel::new("models/gemini x/y", "k", None, ClientSettings::default());
        assert_eq!(
            m.stream_url(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini%20x%2Fy:streamGenerateContent?alt=sse"
        );
        let dbg = format!("{m:?}");
        assert!(!dbg.contains("\"k\""), "{dbg}");
    }
}
