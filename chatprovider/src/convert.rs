//! Conversions between stored chat content (`codersdk` message parts) and the
//! provider-neutral [`Message`]s a [`crate::LanguageModel`] takes, and back from a finished
//! [`ModelResponse`] to parts that can be stored.
//!
//! Replay data that only one provider understands (OpenAI reasoning item ids and encrypted
//! content, Anthropic redacted thinking) travels in the part's `provider_metadata`, which
//! the API never shows to clients:
//!
//! ```json
//! {"openai": {"item_id": "rs_…", "encrypted_content": "…"}, "anthropic": {"redacted_data": "…"}}
//! ```
//!
//! Gemini's thought signatures belong to the tool call they came with and are kept on that
//! `tool-call` part: `{"google": {"thought_signature": "…"}}`.

use base64::Engine as _;
use codersdk::{ChatMessagePart, ChatMessagePartType, ChatMessageRole, RawJson};
use serde::{Deserialize, Serialize};

use crate::request::{Message, Part, Role};
use crate::response::{ModelResponse, ReasoningBlock};

/// Provider replay data kept in a part's `provider_metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayMetadata {
    /// OpenAI Responses reasoning item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai: Option<OpenAiReplay>,
    /// Anthropic thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic: Option<AnthropicReplay>,
    /// Google Gemini (on `tool-call` parts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<GoogleReplay>,
}

/// Google Gemini replay data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoogleReplay {
    /// The thought signature of a function call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

/// OpenAI Responses reasoning item replay data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAiReplay {
    /// Reasoning item id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    /// Encrypted reasoning content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<String>,
}

/// Anthropic replay data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnthropicReplay {
    /// Redacted thinking data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_data: Option<String>,
}

impl ReplayMetadata {
    fn from_part(part: &ChatMessagePart) -> Self {
        part.provider_metadata
            .as_ref()
            .and_then(|m| m.parse().ok())
            .unwrap_or_default()
    }

    fn is_empty(&self) -> bool {
        self.openai.is_none() && self.anthropic.is_none() && self.google.is_none()
    }
}

/// The role a stored message plays in a model request; `None` for system messages, whose
/// text belongs in [`crate::ModelRequest::system`].
pub fn request_role(role: &ChatMessageRole) -> Option<Role> {
    match role {
        ChatMessageRole::User => Some(Role::User),
        ChatMessageRole::Assistant => Some(Role::Assistant),
        ChatMessageRole::Tool => Some(Role::Tool),
        _ => None,
    }
}

/// Converts one stored message into a request message. Parts that carry nothing a model
/// can use (empty text, stream-only deltas, unknown types) are dropped; `None` when nothing
/// is left or the role is `system`.
///
/// `file-reference` parts become text quoting the referenced lines; inline `file` parts
/// become files (parts that only reference an uploaded file must be resolved to bytes by
/// the caller first); context files and skills become text the model can read.
pub fn message_from_parts(role: &ChatMessageRole, parts: &[ChatMessagePart]) -> Option<Message> {
    let role = request_role(role)?;
    let content: Vec<Part> = parts
        .iter()
        .filter_map(|p| part_to_request(role, p))
        .collect();
    if content.is_empty() {
        None
    } else {
        Some(Message { role, content })
    }
}

fn part_to_request(role: Role, p: &ChatMessagePart) -> Option<Part> {
    match &p.part_type {
        ChatMessagePartType::Text if !p.text.is_empty() => Some(Part::Text {
            text: p.text.clone(),
        }),
        ChatMessagePartType::Reasoning if role == Role::Assistant => {
            let meta = ReplayMetadata::from_part(p);
            let openai = meta.openai.unwrap_or_default();
            Some(Part::Reasoning {
                text: p.text.clone(),
                signature: Some(p.signature.clone()).filter(|s| !s.is_empty()),
                redacted_data: meta.anthropic.and_then(|a| a.redacted_data),
                item_id: openai.item_id,
                encrypted_content: openai.encrypted_content,
            })
        }
        ChatMessagePartType::ToolCall if !p.tool_call_id.is_empty() => Some(Part::ToolCall {
            id: p.tool_call_id.clone(),
            name: p.tool_name.clone(),
            arguments: p.args.clone().unwrap_or_else(RawJson::empty_object),
            provider_executed: p.provider_executed,
            thought_signature: ReplayMetadata::from_part(p)
                .google
                .and_then(|g| g.thought_signature),
        }),
        ChatMessagePartType::ToolResult if !p.tool_call_id.is_empty() => Some(Part::ToolResult {
            tool_call_id: p.tool_call_id.clone(),
            name: p.tool_name.clone(),
            output: p.result.clone().unwrap_or_else(RawJson::null),
            is_error: p.is_error,
        }),
        ChatMessagePartType::File if !p.data.is_empty() => {
            let data = base64::engine::general_purpose::STANDARD
                .decode(p.data.as_bytes())
                .ok()?;
            Some(Part::File {
                media_type: p.media_type.clone(),
                data,
                filename: Some(p.name.clone()).filter(|n| !n.is_empty()),
            })
        }
        ChatMessagePartType::FileReference => Some(Part::Text {
            text: format!(
                "{}:{}-{}\n```\n{}\n```",
                p.file_name, p.start_line, p.end_line, p.content
            ),
        }),
        ChatMessagePartType::ContextFile if !p.context_file_content.is_empty() => {
            Some(Part::Text {
                text: format!("{}:\n{}", p.context_file_path, p.context_file_content),
            })
        }
        ChatMessagePartType::Skill if !p.skill_name.is_empty() => Some(Part::Text {
            text: format!("Skill {}: {}", p.skill_name, p.skill_description),
        }),
        _ => None,
    }
}

/// The parts of the assistant message to store for a finished response: reasoning blocks
/// (with replay data in `provider_metadata`), the text, then one `tool-call` part per call.
/// Calls whose arguments were cut off keep their raw text under `args` as a JSON string, so
/// the history stays valid JSON.
pub fn response_to_parts(resp: &ModelResponse) -> Vec<ChatMessagePart> {
    let mut parts = Vec::new();
    for block in &resp.reasoning_blocks {
        parts.push(reasoning_part(block));
    }
    if !resp.text.is_empty() {
        parts.push(ChatMessagePart::text(resp.text.clone()));
    }
    for call in &resp.tool_calls {
        let args = call
            .arguments_json()
            .unwrap_or_else(|| RawJson::from(serde_json::Value::String(call.arguments.clone())));
        let mut part = ChatMessagePart::tool_call(call.id.clone(), call.name.clone(), args);
        part.provider_executed = call.provider_executed;
        let signature = resp
            .thought_signatures
            .iter()
            .find(|(id, _)| *id == call.id)
            .map(|(_, s)| s.clone());
        if let Some(signature) = signature {
            let meta = ReplayMetadata {
                google: Some(GoogleReplay {
                    thought_signature: Some(signature),
                }),
                ..Default::default()
            };
            part.provider_metadata = RawJson::from_value(&meta).ok();
        }
        parts.push(part);
    }
    for (url, title) in &resp.sources {
        parts.push(ChatMessagePart::source(
            url.clone(),
            title.clone().unwrap_or_default(),
        ));
    }
    parts
}

fn reasoning_part(block: &ReasoningBlock) -> ChatMessagePart {
    let mut part = ChatMessagePart::reasoning(block.text.clone());
    part.signature = block.signature.clone().unwrap_or_default();
    let meta = ReplayMetadata {
        openai: (block.item_id.is_some() || block.encrypted_content.is_some()).then(|| {
            OpenAiReplay {
                item_id: block.item_id.clone(),
                encrypted_content: block.encrypted_content.clone(),
            }
        }),
        anthropic: block.redacted_data.clone().map(|d| AnthropicReplay {
            redacted_data: Some(d),
        }),
        google: None,
    };
    if !meta.is_empty() {
        part.provider_metadata = RawJson::from_value(&meta).ok();
    }
    part
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::response::ToolCall;

    #[test]
    fn response_round_trips_through_stored_parts() {
        let resp = ModelResponse {
            text: "Checking.".into(),
            reasoning: "think".into(),
            reasoning_blocks: vec![ReasoningBlock {
                text: "think".into(),
                signature: Some("sig".into()),
                item_id: Some("rs_1".into()),
                encrypted_content: Some("enc".into()),
                ..Default::default()
            }],
            tool_calls: vec![
                ToolCall {
                    id: "call_1".into(),
                    name: "ls".into(),
                    arguments: "{\"path\":\"/\"}".into(),
                    arguments_valid: true,
                    provider_executed: false,
                },
                ToolCall {
                    id: "call_2".into(),
                    name: "write".into(),
                    arguments: "{\"text\":\"cut".into(),
                    arguments_valid: false,
                    provider_executed: false,
                },
            ],
            ..Default::default()
        };
        let parts = response_to_parts(&resp);
        assert_eq!(parts.len(), 4);
        assert_eq!(
            parts[3].args.as_ref().unwrap().get(),
            "\"{\\\"text\\\":\\\"cut\""
        );
        let msg = message_from_parts(&ChatMessageRole::Assistant, &parts).unwrap();
        assert_eq!(msg.role, Role::Assistant);
        match &msg.content[0] {
            Part::Reasoning {
                signature,
                item_id,
                encrypted_content,
                ..
            } => {
                assert_eq!(signature.as_deref(), Some("sig"));
                assert_eq!(item_id.as_deref(), Some("rs_1"));
                assert_eq!(encrypted_content.as_deref(), Some("enc"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&msg.content[2], Part::ToolCall { id, .. } if id == "call_1"));
    }

    #[test]
    fn thought_signatures_stay_on_their_tool_call() {
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "ls".into(),
            arguments: "{}".into(),
            arguments_valid: true,
            provider_executed: false,
        };
        let resp = ModelResponse {
            tool_calls: vec![call("c1"), call("c2")],
            thought_signatures: vec![("c2".into(), "sig-2".into())],
            ..Default::default()
        };
        let parts = response_to_parts(&resp);
        assert!(parts[0].provider_metadata.is_none());
        assert_eq!(
            parts[1].provider_metadata.as_ref().unwrap().get(),
            r#"{"google":{"thought_signature":"sig-2"}}"#
        );
        let msg = message_from_parts(&ChatMessageRole::Assistant, &parts).unwrap();
        let sigs: Vec<_> = msg
            .content
            .iter()
            .map(|p| match p {
                Part::ToolCall {
                    thought_signature, ..
                } => thought_signature.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sigs, [None, Some("sig-2".to_owned())]);
    }

    #[test]
    fn drops_what_a_model_cannot_use() {
        let mut delta = ChatMessagePart::new(ChatMessagePartType::ToolCall);
        delta.args_delta = "{\"a".into();
        let parts = [ChatMessagePart::text(""), delta];
        assert!(message_from_parts(&ChatMessageRole::User, &parts).is_none());
        assert!(
            message_from_parts(&ChatMessageRole::System, &[ChatMessagePart::text("x")]).is_none()
        );
    }

    #[test]
    fn inline_files_decode_and_bad_base64_is_dropped() {
        let mut file = ChatMessagePart::new(ChatMessagePartType::File);
        file.media_type = "image/png".into();
        file.data = "aGk=".into();
        let mut bad = file.clone();
        bad.data = "!!!".into();
        let msg = message_from_parts(&ChatMessageRole::User, &[file, bad]).unwrap();
        assert_eq!(msg.content.len(), 1);
        assert!(matches!(&msg.content[0], Part::File { data, .. } if data == b"hi"));
    }
}
