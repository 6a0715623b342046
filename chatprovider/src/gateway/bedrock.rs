//! Bedrock-backed Anthropic: the gateway's `/v1/messages` answered by Claude on AWS Bedrock.
//!
//! The client speaks Anthropic's Messages API (its SDK, Claude Code, …) and never learns that
//! Bedrock answered; the gateway translates at both ends, as Coder's AI Gateway does when
//! Bedrock backs its Anthropic provider:
//!
//! - **Request** ([`bedrock_invocation`]): the model leaves the body for the path
//!   (`/model/{id}/invoke` or `/invoke-with-response-stream`), mapped by the instance's
//!   [`BedrockSettings`]; `stream` leaves the body; `anthropic_version` becomes
//!   [`BEDROCK_ANTHROPIC_VERSION`]; the `anthropic-beta` header joins the body's
//!   `anthropic_beta`, keeping only the flags Bedrock accepts ([`BEDROCK_BETAS`]). Every
//!   other field passes unchanged, each as the client wrote it (the body is not re-parsed
//!   below its top level).
//! - **Stream** ([`event_stream_to_sse`]): Bedrock's `application/vnd.amazon.eventstream`
//!   frames become the Anthropic server-sent events they carry, one event per frame, as
//!   each frame completes; an exception frame becomes Anthropic's `error` event and ends the
//!   stream.
//! - **Errors** ([`anthropic_error_body`]): an error status keeps its status code and
//!   `Retry-After`; the body (`{"message": …}` and `x-amzn-ErrorType`) is rewritten in
//!   Anthropic's error shape, so the client's SDK reads it like Anthropic's own.
//!
//! A non-streamed answer (`/invoke`) is Anthropic's message JSON already and passes byte
//! for byte.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use chaterror::ProviderError;
use futures_util::Stream;
use reqwest::header::HeaderMap;
use serde_json::value::RawValue;

use super::request::BadRequest;
use crate::bedrock::{
    bedrock_default_base_url, BedrockFramer, BEDROCK_ANTHROPIC_VERSION, BEDROCK_MAX_FRAME_BYTES,
};
use crate::sse::SseEvent;

/// Most bytes of a Bedrock model id, inference-profile id or ARN an instance may map to.
pub const MAX_BEDROCK_MODEL_ID_BYTES: usize = 2048;

/// Most bytes of an AWS region name (the longest today has 14).
pub const MAX_BEDROCK_REGION_BYTES: usize = 32;

/// The `anthropic-beta` flags forwarded to Bedrock, which answers `400 invalid beta flag`
/// to any other (Claude Code sends several Anthropic-only ones, such as
/// `claude-code-20250219`). The flags AWS documents for Claude on the Invoke API.
pub const BEDROCK_BETAS: &[&str] = &[
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
];

/// How a Bedrock instance reaches Bedrock and which model answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BedrockSettings {
    /// The AWS region: the default endpoint's (`bedrock-runtime.{region}.amazonaws.com`)
    /// and the one requests are signed for. `None`: the base URL must be set, and signed
    /// requests take the AWS chain's region.
    pub region: Option<String>,
    /// The Bedrock model (id, inference-profile id or ARN) every request is sent to, as
    /// Coder's `CODER_AIBRIDGE_BEDROCK_MODEL`. `None`: the client's `model` is sent as the
    /// Bedrock model id unchanged.
    pub model: Option<String>,
    /// The model requests for a "haiku" model go to instead (Claude Code's small, fast
    /// model for titles and summaries); `None`: [`BedrockSettings::model`].
    pub small_fast_model: Option<String>,
}

impl BedrockSettings {
    /// Settings with these values, each checked ([`validate_bedrock_region`],
    /// [`validate_bedrock_model_id`]); blank values count as absent.
    pub fn new(
        region: Option<&str>,
        model: Option<&str>,
        small_fast_model: Option<&str>,
    ) -> Result<Self, String> {
        fn given(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let region = given(region)
            .map(|r| validate_bedrock_region(r).map(|()| r.to_owned()))
            .transpose()?;
        let model = given(model)
            .map(|m| validate_bedrock_model_id(m).map(|()| m.to_owned()))
            .transpose()?;
        let small_fast_model = given(small_fast_model)
            .map(|m| validate_bedrock_model_id(m).map(|()| m.to_owned()))
            .transpose()?;
        if small_fast_model.is_some() && model.is_none() {
            return Err("a small, fast model needs a model to map the other requests to".into());
        }
        Ok(BedrockSettings {
            region,
            model,
            small_fast_model,
        })
    }

    /// The Bedrock model a request for `requested` is sent to: with a configured model,
    /// the small, fast one for a model whose name contains `haiku` (when configured) and
    /// the configured one otherwise; without one, `requested` itself.
    pub fn model_for<'a>(&'a self, requested: &'a str) -> &'a str {
        match (&self.model, &self.small_fast_model) {
            (Some(_), Some(small)) if requested.to_ascii_lowercase().contains("haiku") => small,
            (Some(model), _) => model,
            (None, _) => requested,
        }
    }

    /// The region's public endpoint, when a region is set.
    pub fn default_base_url(&self) -> Option<String> {
        self.region.as_deref().map(bedrock_default_base_url)
    }

    /// The models this instance maps to (for `GET /v1/models`), without repeats.
    pub fn configured_models(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for m in [&self.model, &self.small_fast_model].into_iter().flatten() {
            if !out.contains(&m.as_str()) {
                out.push(m);
            }
        }
        out
    }
}

/// Checks a region name: 1 to [`MAX_BEDROCK_REGION_BYTES`] lowercase letters, digits and
/// `-` (it becomes part of a host name).
pub fn validate_bedrock_region(region: &str) -> Result<(), String> {
    let ok = !region.is_empty()
        && region.len() <= MAX_BEDROCK_REGION_BYTES
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{region:.64?} is not an AWS region (1 to {MAX_BEDROCK_REGION_BYTES} lowercase \
             letters, digits and '-', e.g. us-east-1)"
        ))
    }
}

/// Checks a model id: 1 to [`MAX_BEDROCK_MODEL_ID_BYTES`] bytes, no whitespace or control
/// characters (ids and ARNs have none).
pub fn validate_bedrock_model_id(model: &str) -> Result<(), String> {
    if model.is_empty() || model.len() > MAX_BEDROCK_MODEL_ID_BYTES {
        return Err(format!(
            "a Bedrock model id has 1 to {MAX_BEDROCK_MODEL_ID_BYTES} bytes"
        ));
    }
    if model.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{model:.64?} is not a Bedrock model id: it has whitespace or control characters"
        ));
    }
    Ok(())
}

/// A Messages request rewritten for Bedrock's runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BedrockInvocation {
    /// The Bedrock model invoked (after the instance's mapping).
    pub model: String,
    /// Whether the streaming invocation is used (the client sent `stream: true`).
    pub stream: bool,
    /// The path below the instance's base URL: `/model/{id}/invoke` or
    /// `/model/{id}/invoke-with-response-stream`, the id one URL-encoded segment.
    pub path: String,
    /// The body sent.
    pub body: Bytes,
    /// `anthropic-beta` flags the client asked for that Bedrock does not accept, left out.
    pub dropped_betas: Vec<String>,
}

/// The path of an invocation of `model` (streamed or not).
pub fn bedrock_model_path(model: &str, stream: bool) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(model.as_bytes()).collect();
    let action = if stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    format!("/model/{encoded}/{action}")
}

/// Rewrites an Anthropic Messages request (`body` and the client's `headers`) for Bedrock
/// with `settings` (see the module docs). The body must be a JSON object with a string
/// `model`.
pub fn bedrock_invocation(
    body: &[u8],
    headers: &HeaderMap,
    settings: &BedrockSettings,
) -> Result<BedrockInvocation, BadRequest> {
    // The top level only: each value stays the client's raw text.
    let mut fields: BTreeMap<String, &RawValue> = serde_json::from_slice(body)
        .map_err(|e| BadRequest(format!("The request body is not a JSON object: {e}.")))?;
    let requested: String = fields
        .remove("model")
        .and_then(|m| serde_json::from_str(m.get()).ok())
        .filter(|m: &String| !m.trim().is_empty())
        .ok_or_else(|| BadRequest("The request has no model.".to_owned()))?;
    let stream = fields.remove("stream").is_some_and(|s| s.get() == "true");
    let model = settings.model_for(&requested).to_owned();
    validate_bedrock_model_id(&model).map_err(BadRequest)?;

    let mut wanted: Vec<String> = Vec::new();
    if let Some(raw) = fields.remove("anthropic_beta") {
        let listed: Vec<String> = serde_json::from_str(raw.get())
            .map_err(|_| BadRequest("anthropic_beta must be an array of strings.".to_owned()))?;
        wanted.extend(listed);
    }
    for value in headers.get_all("anthropic-beta") {
        if let Ok(text) = value.to_str() {
            wanted.extend(text.split(',').map(|f| f.trim().to_owned()));
        }
    }
    let mut betas: Vec<String> = Vec::new();
    let mut dropped_betas: Vec<String> = Vec::new();
    for flag in wanted.into_iter().filter(|f| !f.is_empty()) {
        let list = if BEDROCK_BETAS.contains(&flag.as_str()) {
            &mut betas
        } else {
            &mut dropped_betas
        };
        if !list.contains(&flag) {
            list.push(flag);
        }
    }

    let version = serde_json::to_string(BEDROCK_ANTHROPIC_VERSION).unwrap_or_default();
    let beta_json = serde_json::to_string(&betas).unwrap_or_default();
    let version_raw = RawValue::from_string(version)
        .map_err(|e| BadRequest(format!("anthropic_version cannot be written: {e}")))?;
    let beta_raw = RawValue::from_string(beta_json)
        .map_err(|e| BadRequest(format!("anthropic_beta cannot be written: {e}")))?;
    fields.insert("anthropic_version".to_owned(), &version_raw);
    if !betas.is_empty() {
        fields.insert("anthropic_beta".to_owned(), &beta_raw);
    }
    let body = serde_json::to_vec(&fields)
        .map_err(|e| BadRequest(format!("The request cannot be rewritten: {e}.")))?;
    Ok(BedrockInvocation {
        path: bedrock_model_path(&model, stream),
        model,
        stream,
        body: Bytes::from(body),
        dropped_betas,
    })
}

/// Anthropic's error `type` for an HTTP status.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// A Bedrock error response (`status`, its body and its `x-amzn-ErrorType` header) in
/// Anthropic's shape: `{"type":"error","error":{"type","message"}}`, the message Bedrock's
/// own with the exception's name before it.
pub fn anthropic_error_body(status: u16, bedrock_body: &[u8], error_type: Option<&str>) -> Bytes {
    #[derive(serde::Deserialize, Default)]
    struct Payload {
        #[serde(default, alias = "Message")]
        message: Option<String>,
    }
    let parsed: Payload = serde_json::from_slice(bedrock_body).unwrap_or_default();
    // `ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/`.
    let exception = error_type
        .and_then(|t| t.split(':').next())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let text = match (exception, parsed.message) {
        (Some(e), Some(m)) => format!("{e}: {m}"),
        (None, Some(m)) => m,
        (Some(e), None) => e.to_owned(),
        (None, None) => String::from_utf8_lossy(
            bedrock_body
                .get(..crate::transport::MAX_ERROR_BODY_BYTES)
                .unwrap_or(bedrock_body),
        )
        .trim()
        .to_owned(),
    };
    let text = if text.is_empty() {
        format!("Bedrock answered HTTP {status}.")
    } else {
        text
    };
    Bytes::from(
        serde_json::json!({
            "type": "error",
            "error": {"type": anthropic_error_type(status), "message": text},
        })
        .to_string(),
    )
}

/// The event's `type`: read straight off the front when the JSON starts with it (every
/// Anthropic event Bedrock relays does: `{"type":"content_block_delta",…`), else parsed.
fn event_type(data: &str) -> Option<&str> {
    if let Some(rest) = data.strip_prefix(r#"{"type":""#) {
        if let Some((kind, _)) = rest.split_once('"') {
            // A plain name (no escapes): what a type always is.
            if !kind.is_empty() && !kind.contains('\\') {
                return Some(kind);
            }
        }
    }
    #[derive(serde::Deserialize)]
    struct Typed<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<&'a str>,
    }
    serde_json::from_str::<Typed<'_>>(data).ok()?.kind
}

/// One server-sent event as Anthropic writes them: `event: <type>` (the JSON's `type`),
/// then the data, then a blank line.
fn write_sse(out: &mut BytesMut, data: &str) {
    if let Some(kind) = event_type(data) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\n");
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.trim_end_matches('\r').as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"\n");
}

/// Anthropic's `error` event for a failure in Bedrock's stream.
fn write_error(out: &mut BytesMut, error: &ProviderError) {
    let data = serde_json::json!({
        "type": "error",
        "error": {
            "type": anthropic_error_type(error.status().unwrap_or(500)),
            "message": error.message(),
        },
    })
    .to_string();
    write_sse(out, &data);
}

/// Bedrock's event stream as Anthropic's server-sent events (see [`event_stream_to_sse`]).
pub struct EventStreamToSse<S> {
    upstream: S,
    framer: BedrockFramer,
    events: Vec<SseEvent>,
    done: bool,
}

impl<S> std::fmt::Debug for EventStreamToSse<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStreamToSse")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Turns a Bedrock `invoke-with-response-stream` body into the Anthropic server-sent
/// events its `chunk` frames carry. Each upstream chunk yields the events of the frames it
/// completes, at once (nothing waits for more than a frame); a chunk that completes none
/// yields nothing. An exception frame, a broken frame or a body cut inside a frame yields
/// Anthropic's `error` event and ends the stream; an upstream read error passes as is.
pub fn event_stream_to_sse<S>(upstream: S) -> EventStreamToSse<S> {
    EventStreamToSse {
        upstream,
        framer: BedrockFramer::new(BEDROCK_MAX_FRAME_BYTES),
        events: Vec::new(),
        done: false,
    }
}

impl<S, E> Stream for EventStreamToSse<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let chunk = match Pin::new(&mut this.upstream).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(chunk))) => Some(chunk),
                Poll::Ready(None) => None,
            };
            this.events.clear();
            let framed = match &chunk {
                Some(chunk) => this.framer.push_bytes(chunk, &mut this.events),
                None => {
                    this.done = true;
                    this.framer.finish_body()
                }
            };
            let mut out = BytesMut::new();
            for event in &this.events {
                write_sse(&mut out, &event.data);
            }
            if let Err(e) = framed {
                write_error(&mut out, &e);
                this.done = true;
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out.freeze())));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::bedrock::{encode_chunk_frame, encode_exception_frame};
    use futures_util::StreamExt;

    fn settings(model: Option<&str>, small: Option<&str>) -> BedrockSettings {
        BedrockSettings::new(Some("us-east-1"), model, small).unwrap()
    }

    #[test]
    fn the_request_moves_model_and_stream_out_and_sets_the_version() {
        let body = br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,
            "messages":[{"role":"user","content":"hi \u00e9"}],"metadata":{"user_id":"u"}}"#;
        let inv = bedrock_invocation(body, &HeaderMap::new(), &settings(None, None)).unwrap();
        assert_eq!(inv.model, "claude-sonnet-4-5");
        assert!(inv.stream);
        assert_eq!(
            inv.path,
            "/model/claude-sonnet-4-5/invoke-with-response-stream"
        );
        let sent: serde_json::Value = serde_json::from_slice(&inv.body).unwrap();
        assert_eq!(sent["anthropic_version"], BEDROCK_ANTHROPIC_VERSION);
        assert!(sent.get("model").is_none() && sent.get("stream").is_none());
        assert_eq!(sent["max_tokens"], 1024);
        assert_eq!(sent["metadata"]["user_id"], "u");
        // Values pass as the client wrote them (escapes included).
        assert!(std::str::from_utf8(&inv.body)
            .unwrap()
            .contains(r#""content":"hi \u00e9""#));
        let unary = bedrock_invocation(
            br#"{"model":"arn:aws:bedrock:us-east-1:1:inference-profile/us.x"}"#,
            &HeaderMap::new(),
            &settings(None, None),
        )
        .unwrap();
        assert_eq!(
            unary.path,
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/invoke"
        );
    }

    #[test]
    fn models_map_by_the_small_fast_rule() {
        let s = settings(Some("us.anthropic.sonnet"), Some("us.anthropic.haiku"));
        assert_eq!(
            s.model_for("claude-haiku-4-5-20251001"),
            "us.anthropic.haiku"
        );
        assert_eq!(s.model_for("claude-3-5-HAIKU"), "us.anthropic.haiku");
        assert_eq!(s.model_for("claude-opus-4-1"), "us.anthropic.sonnet");
        let only = settings(Some("us.anthropic.sonnet"), None);
        assert_eq!(only.model_for("claude-haiku-4-5"), "us.anthropic.sonnet");
        assert_eq!(settings(None, None).model_for("x.y"), "x.y");
        assert_eq!(
            s.configured_models(),
            vec!["us.anthropic.sonnet", "us.anthropic.haiku"]
        );
        assert!(BedrockSettings::new(None, None, Some("h")).is_err());
    }

    #[test]
    fn betas_join_the_body_and_unsupported_ones_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "anthropic-beta",
            "claude-code-20250219, interleaved-thinking-2025-05-14"
                .parse()
                .unwrap(),
        );
        let body = br#"{"model":"m","anthropic_beta":["context-1m-2025-08-07","mcp-servers-2025-12-04","interleaved-thinking-2025-05-14"]}"#;
        let inv = bedrock_invocation(body, &headers, &settings(None, None)).unwrap();
        let sent: serde_json::Value = serde_json::from_slice(&inv.body).unwrap();
        assert_eq!(
            sent["anthropic_beta"],
            serde_json::json!(["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"])
        );
        assert_eq!(
            inv.dropped_betas,
            vec!["mcp-servers-2025-12-04", "claude-code-20250219"]
        );
        let none =
            bedrock_invocation(br#"{"model":"m"}"#, &headers, &settings(None, None)).unwrap();
        let sent: serde_json::Value = serde_json::from_slice(&none.body).unwrap();
        assert_eq!(
            sent["anthropic_beta"],
            serde_json::json!(["interleaved-thinking-2025-05-14"])
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        let h = HeaderMap::new();
        let s = settings(None, None);
        assert!(bedrock_invocation(b"[]", &h, &s).is_err());
        assert!(bedrock_invocation(b"{", &h, &s).is_err());
        assert!(bedrock_invocation(br#"{"max_tokens":1}"#, &h, &s).is_err());
        assert!(bedrock_invocation(br#"{"model":" "}"#, &h, &s).is_err());
        assert!(bedrock_invocation(br#"{"model":"a b"}"#, &h, &s).is_err());
        assert!(bedrock_invocation(br#"{"model":"m","anthropic_beta":"x"}"#, &h, &s).is_err());
        let long = format!(
            r#"{{"model":"{}"}}"#,
            "m".repeat(MAX_BEDROCK_MODEL_ID_BYTES + 1)
        );
        assert!(bedrock_invocation(long.as_bytes(), &h, &s).is_err());
    }

    #[test]
    fn settings_are_checked_at_their_edges() {
        let region = "a".repeat(MAX_BEDROCK_REGION_BYTES);
        assert!(validate_bedrock_region(&region).is_ok());
        assert!(validate_bedrock_region(&format!("{region}a")).is_err());
        assert!(validate_bedrock_region("US-EAST-1").is_err());
        assert!(validate_bedrock_region("us-east-1.evil.com").is_err());
        let id = "m".repeat(MAX_BEDROCK_MODEL_ID_BYTES);
        assert!(validate_bedrock_model_id(&id).is_ok());
        assert!(validate_bedrock_model_id(&format!("{id}m")).is_err());
        let s = BedrockSettings::new(Some(" eu-west-1 "), Some(""), None).unwrap();
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.model, None);
        assert_eq!(
            s.default_base_url().as_deref(),
            Some("https://bedrock-runtime.eu-west-1.amazonaws.com")
        );
    }

    #[test]
    fn errors_take_anthropics_shape() {
        let body = anthropic_error_body(
            429,
            br#"{"message":"Too many requests, please wait before trying again."}"#,
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(
            v["error"]["message"],
            "ThrottlingException: Too many requests, please wait before trying again."
        );
        let v: serde_json::Value =
            serde_json::from_slice(&anthropic_error_body(503, b"", None)).unwrap();
        assert_eq!(v["error"]["type"], "overloaded_error");
        assert_eq!(v["error"]["message"], "Bedrock answered HTTP 503.");
        let v: serde_json::Value =
            serde_json::from_slice(&anthropic_error_body(400, b"plain text", None)).unwrap();
        assert_eq!(v["error"]["message"], "plain text");
    }

    #[test]
    fn event_types_are_read_off_the_front_or_parsed() {
        assert_eq!(event_type(r#"{"type":"ping"}"#), Some("ping"));
        assert_eq!(
            event_type(r#"{ "index":0, "type": "content_block_stop"}"#),
            Some("content_block_stop")
        );
        assert_eq!(
            event_type(r#"{"type":"a\u0062"}"#),
            None,
            "escaped: parsed, not borrowed"
        );
        assert_eq!(event_type(r#"{"type":""}"#), Some(""));
        assert_eq!(event_type("not json"), None);
        assert_eq!(event_type(r#"{"index":0}"#), None);
    }

    fn frames(events: &[&str]) -> Vec<u8> {
        events.iter().flat_map(|e| encode_chunk_frame(e)).collect()
    }

    async fn convert(chunks: Vec<Vec<u8>>) -> (Vec<Bytes>, String) {
        let upstream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<Bytes, std::io::Error>(Bytes::from(c))),
        );
        let out: Vec<Bytes> = event_stream_to_sse(upstream)
            .map(|r| r.unwrap())
            .collect()
            .await;
        let text = out
            .iter()
            .map(|b| std::str::from_utf8(b).unwrap().to_owned())
            .collect();
        (out, text)
    }

    #[tokio::test]
    async fn frames_become_anthropic_events_as_they_complete() {
        let start = r#"{"type":"message_start","message":{"id":"msg_1","model":"claude"}}"#;
        let stop =
            r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3}}"#;
        let body = frames(&[start, stop]);
        // Split at every byte: the same events, never a partial one.
        for cut in 1..body.len() {
            let (chunks, text) = convert(vec![body[..cut].to_vec(), body[cut..].to_vec()]).await;
            assert!(chunks.len() <= 2);
            assert_eq!(
                text,
                format!(
                    "event: message_start\ndata: {start}\n\nevent: message_stop\ndata: {stop}\n\n"
                )
            );
        }
        // Each frame is yielded when it completes, not at the end.
        let first = encode_chunk_frame(start);
        let (chunks, _) = convert(vec![first.clone(), encode_chunk_frame(stop)]).await;
        assert_eq!(chunks.len(), 2);
    }

    #[tokio::test]
    async fn exceptions_and_broken_frames_end_with_an_error_event() {
        let start = r#"{"type":"message_start","message":{"id":"msg_1"}}"#;
        let mut body = encode_chunk_frame(start);
        body.extend(encode_exception_frame("throttlingException", "slow down"));
        body.extend(encode_chunk_frame(r#"{"type":"message_stop"}"#));
        let (_, text) = convert(vec![body]).await;
        assert!(text.starts_with("event: message_start\n"), "{text}");
        assert!(text.contains("event: error\ndata: {\"error\":{\"message\":\"bedrock stream error: throttlingException: slow down\",\"type\":\"rate_limit_error\"},\"type\":\"error\"}\n\n"), "{text}");
        assert!(
            !text.contains("message_stop"),
            "the stream ends at the exception: {text}"
        );

        let mut cut = encode_chunk_frame(start);
        cut.truncate(cut.len() - 3);
        let (_, text) = convert(vec![cut]).await;
        assert!(text.starts_with("event: error\n"), "{text}");
        assert!(text.contains("api_error"), "{text}");

        let mut corrupt = encode_chunk_frame(start);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let (_, text) = convert(vec![corrupt]).await;
        assert!(text.starts_with("event: error\n"), "{text}");
    }

    #[tokio::test]
    async fn upstream_read_errors_pass_through_and_end_the_stream() {
        let upstream = futures_util::stream::iter(vec![
            Ok(Bytes::from(encode_chunk_frame(r#"{"type":"ping"}"#))),
            Err(std::io::Error::other("reset")),
            Ok(Bytes::from(encode_chunk_frame(r#"{"type":"ping"}"#))),
        ]);
        let items: Vec<Result<Bytes, std::io::Error>> =
            event_stream_to_sse(upstream).collect().await;
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(items[1].is_err());
    }
}
