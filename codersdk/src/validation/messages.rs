//! Message bodies: `POST /chats/{chat}/messages`, `PATCH /chats/{chat}/messages/{message}`
//! and the message id path parameter.

use uuid::Uuid;

use super::chat::{dedup_ids, plan_mode_change};
use super::content::{check_content, content_message, validate_input_parts, ValidatedInputPart};
use super::{quoted, single, Problems};
use crate::{ChatBusyBehavior, CreateChatMessageRequest, EditChatMessageRequest, Response};

/// Resolves `busy_behavior`: absent or `""` means queue.
fn busy_behavior(value: Option<&ChatBusyBehavior>) -> Result<ChatBusyBehavior, String> {
    let Some(value) = value else {
        return Ok(ChatBusyBehavior::Queue);
    };
    match value.as_str() {
        "" | "queue" => Ok(ChatBusyBehavior::Queue),
        "interrupt" => Ok(ChatBusyBehavior::Interrupt),
        _ => Err(format!(
            "Unknown busy_behavior {}; use \"queue\" or \"interrupt\".",
            quoted(value.as_str())
        )),
    }
}

/// A [`CreateChatMessageRequest`] after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedChatMessage {
    /// The message.
    pub content: Vec<ValidatedInputPart>,
    /// Switch to this model config.
    pub model_config_id: Option<Uuid>,
    /// When present, the new MCP selection (duplicates removed).
    pub mcp_server_ids: Option<Vec<Uuid>>,
    /// Queue (default) or interrupt.
    pub busy_behavior: ChatBusyBehavior,
    /// `None` = unchanged, `Some(true)` = enter plan mode, `Some(false)` = leave it.
    pub plan_mode: Option<bool>,
}

/// Validates the body of `POST /chats/{chat}/messages`.
pub fn validate_create_chat_message_request(
    req: &CreateChatMessageRequest,
) -> Result<ValidatedChatMessage, Response> {
    let mut p = Problems::default();
    let content = check_content(&req.content, &mut p).unwrap_or_default();
    if req.model_config_id.is_some_and(|id| id.is_nil()) {
        p.push(
            "model_config_id",
            "model_config_id must not be the nil UUID; omit it to keep the model.",
        );
    }
    let busy = busy_behavior(req.busy_behavior.as_ref()).unwrap_or_else(|detail| {
        p.push("busy_behavior", detail);
        ChatBusyBehavior::Queue
    });
    let plan_mode = plan_mode_change(req.plan_mode.as_ref()).unwrap_or_else(|detail| {
        p.push("plan_mode", detail);
        None
    });
    if !p.is_empty() {
        return Err(p.into_response(content_message(&req.content, "Invalid message request.")));
    }
    Ok(ValidatedChatMessage {
        content,
        model_config_id: req.model_config_id,
        mcp_server_ids: req.mcp_server_ids.as_deref().map(dedup_ids),
        busy_behavior: busy,
        plan_mode,
    })
}

/// Validates the body of `PATCH /chats/{chat}/messages/{message}` and returns the
/// replacement content.
pub fn validate_edit_chat_message_request(
    req: &EditChatMessageRequest,
) -> Result<Vec<ValidatedInputPart>, Response> {
    validate_input_parts(&req.content)
}

/// Parses the `{message}` path parameter of message edits: a positive 64-bit
/// integer.
pub fn parse_message_id(raw: &str) -> Result<i64, Response> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(single(
            "Invalid message ID.",
            "message",
            format!("Message ID {} must be a positive integer.", quoted(raw)),
        )),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::type_complexity
)]
mod tests {
    use super::*;
    use crate::validation::test_support::*;
    use crate::*;
    use proptest::prelude::*;

    #[test]
    fn create_message_busy_behavior() {
        let b = |s: &str| Some(ChatBusyBehavior::from_wire(s));
        let cases: &[(Option<ChatBusyBehavior>, Option<ChatBusyBehavior>)] = &[
            (None, Some(ChatBusyBehavior::Queue)),
            (b(""), Some(ChatBusyBehavior::Queue)),
            (b("queue"), Some(ChatBusyBehavior::Queue)),
            (b("interrupt"), Some(ChatBusyBehavior::Interrupt)),
            (b(" Interrupt "), None),
            (b("later"), None),
        ];
        for (input, want) in cases {
            let req = CreateChatMessageRequest {
                content: vec![ChatInputPart::text("hi")],
                busy_behavior: input.clone(),
                ..Default::default()
            };
            match (validate_create_chat_message_request(&req), want) {
                (Ok(v), Some(want)) => assert_eq!(&v.busy_behavior, want),
                (Err(r), None) => assert_eq!(fields(&r), vec!["busy_behavior"]),
                (got, want) => panic!("{input:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn create_message_plan_mode_and_ids() {
        let id = Uuid::from_u128(3);
        let req = CreateChatMessageRequest {
            content: vec![ChatInputPart::text("hi")],
            plan_mode: Some(ChatPlanMode::from_wire("")),
            mcp_server_ids: Some(vec![id, id]),
            ..Default::default()
        };
        let v = validate_create_chat_message_request(&req).unwrap();
        assert_eq!(v.plan_mode, Some(false));
        assert_eq!(v.mcp_server_ids, Some(vec![id]));
        let req = CreateChatMessageRequest {
            content: vec![ChatInputPart::text("hi")],
            model_config_id: Some(Uuid::nil()),
            ..Default::default()
        };
        assert_eq!(
            fields(&validate_create_chat_message_request(&req).unwrap_err()),
            vec!["model_config_id"]
        );
        let empty = CreateChatMessageRequest::default();
        assert_eq!(
            validate_create_chat_message_request(&empty)
                .unwrap_err()
                .message,
            "Content is required."
        );
    }

    #[test]
    fn message_id_param() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1", Some(1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775808", None),
            ("0", None),
            ("-1", None),
            ("abc", None),
            ("", None),
            (" 1", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_message_id(raw).ok(), *want, "{raw:?}");
        }
    }

    proptest! {
        #[test]
        fn message_id_parser_never_panics(s in any::<String>()) {
            let _ = parse_message_id(&s);
        }
    }
}
