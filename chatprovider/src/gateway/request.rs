//! What the gateway reads from a request before forwarding it unchanged: the model, whether
//! a stream was asked for, the client's session id, the last user prompt, and the ids of
//! the tool calls whose results the request carries.

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::headers::header_text;
use super::WireApi;

/// Most bytes of the user prompt taken from a request for its record (cut at a character
/// boundary). The recorder keeps at most its own setting of these (the reference server's
/// `--ai-gateway-max-prompt-bytes`, 16 KiB by default, which may not exceed this bound).
pub const MAX_PROMPT_BYTES: usize = 64 * 1024;

/// Most bytes of a client session id kept; a longer one is ignored (it is a key for
/// grouping, not free text).
pub const MAX_SESSION_ID_BYTES: usize = 256;

/// Most tool-result call ids read from one request.
pub const MAX_TOOL_RESULT_IDS: usize = 256;

/// Session headers read, in order: Claude Code's, then Codex's (`session_id`, then
/// `conversation_id`), then a generic one.
pub const SESSION_HEADERS: &[&str] = &[
    "x-claude-code-session-id",
    "session_id",
    "session-id",
    "conversation_id",
    "x-session-id",
];

/// What the gateway read from one request body and its headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestFacts {
    /// The `model` field; empty when absent.
    pub model: String,
    /// Whether `stream: true` was sent.
    pub stream: bool,
    /// The client's session id (headers first, then Anthropic's `metadata.user_id`).
    pub client_session_id: Option<String>,
    /// The text of the last user message, at most [`MAX_PROMPT_BYTES`].
    pub prompt: Option<String>,
    /// Ids of earlier tool calls whose results this request carries (the trailing tool
    /// results of the conversation).
    pub tool_result_call_ids: Vec<String>,
}

/// Why a request body could not be read. The gateway answers 400 in the provider's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

impl std::fmt::Display for BadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadRequest {}

/// The top-level fields the gateway reads, each kept as its raw JSON text: the body is
/// scanned once, without building a tree of it (a coding agent's request carries the whole
/// conversation, often megabytes); only the few messages the record needs are parsed.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(default, borrow)]
    model: Option<&'a RawValue>,
    #[serde(default, borrow)]
    stream: Option<&'a RawValue>,
    #[serde(default, borrow)]
    metadata: Option<&'a RawValue>,
    #[serde(default, borrow)]
    messages: Option<&'a RawValue>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
}

/// Reads the facts of a request to `api`. The body must be a JSON object (the providers
/// refuse anything else too; the gateway refuses it before spending an upstream call).
pub fn inspect_request(
    api: WireApi,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<RequestFacts, BadRequest> {
    let text = std::str::from_utf8(body).map_err(|_| {
        BadRequest("The request body is not valid JSON: it is not UTF-8.".to_owned())
    })?;
    if !text.trim_start().starts_with('{') {
        // Also catches an empty body, which serde reports less clearly.
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|e| BadRequest(format!("The request body is not valid JSON: {e}.")))?;
        return Err(BadRequest(
            "The request body must be a JSON object.".to_owned(),
        ));
    }
    let head: Head<'_> = serde_json::from_str(text)
        .map_err(|e| BadRequest(format!("The request body is not valid JSON: {e}.")))?;
    let model = head
        .model
        .and_then(|m| serde_json::from_str::<String>(m.get()).ok())
        .unwrap_or_default();
    let stream = head.stream.is_some_and(|s| s.get() == "true");
    let client_session_id = session_from_headers(headers).or_else(|| {
        (api == WireApi::Messages)
            .then_some(head.metadata)
            .flatten()
            .and_then(|m| serde_json::from_str::<Value>(m.get()).ok())
            .and_then(|m| {
                m.get("user_id")
                    .and_then(Value::as_str)
                    .and_then(session_from_claude_user_id)
            })
    });
    let (prompt, tool_result_call_ids) = match api {
        WireApi::ChatCompletions => chat_completions_turn(&items(head.messages)),
        WireApi::Responses => match head.input {
            Some(raw) if raw.get().starts_with('"') => {
                (serde_json::from_str::<String>(raw.get()).ok(), Vec::new())
            }
            other => responses_turn(&items(other)),
        },
        _ => messages_turn(&items(head.messages)),
    };
    Ok(RequestFacts {
        model,
        stream,
        client_session_id,
        prompt: prompt.map(|p| bounded(&p, MAX_PROMPT_BYTES)),
        tool_result_call_ids,
    })
}

/// The elements of a JSON array, each still raw text; empty when it is not an array.
fn items(raw: Option<&RawValue>) -> Vec<&RawValue> {
    raw.and_then(|r| serde_json::from_str::<Vec<&RawValue>>(r.get()).ok())
        .unwrap_or_default()
}

/// One element parsed (only the ones the record needs are).
fn parse(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

fn usable_session(id: &str) -> Option<String> {
    let id = id.trim();
    (!id.is_empty() && id.len() <= MAX_SESSION_ID_BYTES && !id.chars().any(char::is_control))
        .then(|| id.to_owned())
}

fn session_from_headers(headers: &HeaderMap) -> Option<String> {
    SESSION_HEADERS
        .iter()
        .find_map(|h| header_text(headers, h).and_then(usable_session))
}

/// The session in Claude Code's `metadata.user_id`: before v2.1.78 the text
/// `user_<hash>_account_<uuid>_session_<uuid>`, since then a JSON object in a string
/// with a `session_id` field.
pub fn session_from_claude_user_id(user_id: &str) -> Option<String> {
    let trimmed = user_id.trim();
    if trimmed.starts_with('{') {
        let json: Value = serde_json::from_str(trimmed).ok()?;
        return json
            .get("session_id")
            .and_then(Value::as_str)
            .and_then(usable_session);
    }
    let (_, session) = trimmed.rsplit_once("_session_")?;
    usable_session(session)
}

fn bounded(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

/// The text of a `content` that is a string or an array of text parts (`text`,
/// `input_text`).
fn content_text(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| {
                    matches!(
                        p.get("type").and_then(Value::as_str),
                        Some("text") | Some("input_text")
                    )
                })
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

fn role(v: &Value) -> Option<&str> {
    v.get("role").and_then(Value::as_str)
}

fn push_id(ids: &mut Vec<String>, id: Option<&Value>) {
    if let Some(id) = id.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        if ids.len() < MAX_TOOL_RESULT_IDS {
            ids.push(id.to_owned());
        }
    }
}

/// The text of the last user message with text, parsing from the end.
fn last_user_text(items: &[&RawValue]) -> Option<String> {
    items.iter().rev().find_map(|raw| {
        let m = parse(raw);
        if role(&m) == Some("user") {
            content_text(m.get("content"))
        } else {
            None
        }
    })
}

fn chat_completions_turn(messages: &[&RawValue]) -> (Option<String>, Vec<String>) {
    let mut ids = Vec::new();
    for m in messages.iter().rev().map(|raw| parse(raw)) {
        if role(&m) != Some("tool") {
            break;
        }
        push_id(&mut ids, m.get("tool_call_id"));
    }
    ids.reverse();
    (last_user_text(messages), ids)
}

fn responses_turn(items: &[&RawValue]) -> (Option<String>, Vec<String>) {
    let mut ids = Vec::new();
    for item in items.iter().rev().map(|raw| parse(raw)) {
        if !matches!(
            item.get("type").and_then(Value::as_str),
            Some("function_call_output") | Some("custom_tool_call_output")
        ) {
            break;
        }
        push_id(&mut ids, item.get("call_id"));
    }
    ids.reverse();
    (last_user_text(items), ids)
}

fn messages_turn(messages: &[&RawValue]) -> (Option<String>, Vec<String>) {
    let mut ids = Vec::new();
    if let Some(last) = messages
        .last()
        .map(|raw| parse(raw))
        .filter(|m| role(m) == Some("user"))
    {
        for block in last
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if block.get("type").and_then(Value::as_str) == Some("tool_result") {
                push_id(&mut ids, block.get("tool_use_id"));
            }
        }
    }
    (last_user_text(messages), ids)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};
    use serde_json::json;

    fn facts(api: WireApi, headers: &[(&str, &str)], body: Value) -> RequestFacts {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        inspect_request(api, &map, body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn chat_completions_facts() {
        let f = facts(
            WireApi::ChatCompletions,
            &[("session_id", "codex-1"), ("conversation_id", "conv-1")],
            json!({"model": "gpt-4o", "stream": true, "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
                {"role": "assistant", "tool_calls": [{"id": "call_1"}, {"id": "call_2"}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": "rain"}
            ]}),
        );
        assert_eq!(f.model, "gpt-4o");
        assert!(f.stream);
        assert_eq!(f.client_session_id.as_deref(), Some("codex-1"));
        assert_eq!(f.prompt.as_deref(), Some("weather?"));
        assert_eq!(f.tool_result_call_ids, ["call_1", "call_2"]);
    }

    #[test]
    fn responses_facts() {
        let f = facts(
            WireApi::Responses,
            &[],
            json!({"model": "gpt-5", "input": "hi"}),
        );
        assert_eq!(f.prompt.as_deref(), Some("hi"));
        assert!(!f.stream);
        assert_eq!(f.client_session_id, None);
        let f = facts(
            WireApi::Responses,
            &[("conversation_id", "c-9")],
            json!({"model": "gpt-5", "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "list files"}]},
                {"type": "function_call", "call_id": "call_a", "name": "ls", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_a", "output": "x"}
            ]}),
        );
        assert_eq!(f.prompt.as_deref(), Some("list files"));
        assert_eq!(f.tool_result_call_ids, ["call_a"]);
        assert_eq!(f.client_session_id.as_deref(), Some("c-9"));
    }

    #[test]
    fn messages_facts_and_claude_code_sessions() {
        let body = |user_id: &str| {
            json!({"model": "claude-sonnet-4-5", "stream": true,
            "metadata": {"user_id": user_id},
            "messages": [
                {"role": "user", "content": "read main.rs"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "read", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "fn main"},
                    {"type": "text", "text": "and explain it"}
                ]}
            ]})
        };
        let legacy = facts(
            WireApi::Messages,
            &[],
            body("user_abc123_account_4f1e_session_9d2c-77"),
        );
        assert_eq!(legacy.client_session_id.as_deref(), Some("9d2c-77"));
        assert_eq!(legacy.prompt.as_deref(), Some("and explain it"));
        assert_eq!(legacy.tool_result_call_ids, ["toolu_1"]);
        let json_form = facts(
            WireApi::Messages,
            &[],
            body(r#"{"device_id":"d","account_uuid":"","session_id":"s-42"}"#),
        );
        assert_eq!(json_form.client_session_id.as_deref(), Some("s-42"));
        let header_wins = facts(
            WireApi::Messages,
            &[("x-claude-code-session-id", "h-1")],
            body(r#"{"session_id":"s-42"}"#),
        );
        assert_eq!(header_wins.client_session_id.as_deref(), Some("h-1"));
        assert_eq!(
            facts(WireApi::Messages, &[], body("user_only")).client_session_id,
            None
        );
    }

    #[test]
    fn limits_and_bad_bodies() {
        let long = "é".repeat(MAX_PROMPT_BYTES);
        let f = facts(
            WireApi::Responses,
            &[("session_id", &"s".repeat(MAX_SESSION_ID_BYTES + 1))],
            json!({"model": "m", "input": long}),
        );
        let prompt = f.prompt.unwrap();
        assert!((MAX_PROMPT_BYTES - 1..=MAX_PROMPT_BYTES).contains(&prompt.len()));
        assert_eq!(
            f.client_session_id, None,
            "an over-long session id is ignored"
        );
        let at_limit = facts(
            WireApi::Responses,
            &[("session_id", &"s".repeat(MAX_SESSION_ID_BYTES))],
            json!({"model": "m", "input": "x"}),
        );
        assert!(at_limit.client_session_id.is_some());
        let empty = HeaderMap::new();
        assert!(inspect_request(WireApi::Messages, &empty, b"[1]").is_err());
        assert!(inspect_request(WireApi::Messages, &empty, b"{").is_err());
        let many: Vec<Value> = (0..MAX_TOOL_RESULT_IDS + 5)
            .map(|i| json!({"role": "tool", "tool_call_id": format!("c{i}")}))
            .collect();
        let f = facts(
            WireApi::ChatCompletions,
            &[],
            json!({"model": "m", "messages": many}),
        );
        assert_eq!(f.tool_result_call_ids.len(), MAX_TOOL_RESULT_IDS);
    }
}
