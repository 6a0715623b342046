//! Chat bodies: `POST /chats`, `PATCH /chats/{chat}` and chat titles.

use std::collections::BTreeMap;
use std::collections::HashSet;

use uuid::Uuid;

use super::content::{check_content, content_message, ValidatedInputPart};
use super::dynamic_tools::check_dynamic_tools;
use super::labels::check_labels;
use super::prompts::validate_chat_system_prompt;
use super::{quoted, rune_count, single, Problems};
use crate::{
    ChatClientType, ChatPlanMode, CreateChatRequest, DynamicTool, Response, UpdateChatRequest,
};

/// Longest chat title, in Unicode scalar values ("runes"), after trimming.
pub const MAX_CHAT_TITLE_RUNES: usize = 200;

pub(super) fn title_problem(title: &str) -> Result<String, String> {
    let trimmed = title.trim();
    if trimmed.is_empty() {
        return Err("The title must not be empty.".to_owned());
    }
    let runes = rune_count(trimmed);
    if runes > MAX_CHAT_TITLE_RUNES {
        return Err(format!(
            "The title is {runes} characters long; titles may be at most \
             {MAX_CHAT_TITLE_RUNES} characters."
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("The title must be a single line without control characters.".to_owned());
    }
    Ok(trimmed.to_owned())
}

/// Validates a chat title and returns it trimmed: non-empty, at most
/// [`MAX_CHAT_TITLE_RUNES`] characters, one line without control characters.
pub fn validate_chat_title(title: &str) -> Result<String, Response> {
    title_problem(title).map_err(|detail| single("Invalid chat title.", "title", detail))
}

/// `None` = unchanged, `Some(true)` = enter plan mode, `Some(false)` = leave it.
pub(super) fn plan_mode_change(mode: Option<&ChatPlanMode>) -> Result<Option<bool>, String> {
    let Some(mode) = mode else {
        return Ok(None);
    };
    match mode.as_str() {
        "plan" => Ok(Some(true)),
        "" => Ok(Some(false)),
        _ => Err(format!(
            "Unknown plan_mode {}; use \"plan\" to plan or \"\" for normal mode.",
            quoted(mode.as_str())
        )),
    }
}

fn client_type(value: Option<&ChatClientType>) -> Result<ChatClientType, String> {
    let Some(value) = value else {
        return Ok(ChatClientType::Api);
    };
    match value.as_str() {
        "" | "api" => Ok(ChatClientType::Api),
        "ui" => Ok(ChatClientType::Ui),
        _ => Err(format!(
            "Unknown client_type {}; use \"ui\" or \"api\".",
            quoted(value.as_str())
        )),
    }
}

pub(super) fn dedup_ids(ids: &[Uuid]) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

/// Detail of the one `workspace_id` rule of chat creation and update.
pub const WORKSPACE_ID_ASSIGNED_BY_SERVER: &str =
    "Workspaces are assigned by the server; a client cannot choose one. Omit workspace_id \
     (null and the nil UUID mean none).";

/// The `workspace_id` rule, the same for `POST /chats` and `PATCH /chats/{chat}`: absent,
/// `null` and the nil UUID (Go's zero value) mean "no workspace"; any other id is refused,
/// because workspaces are the server's to assign. Returns whether the nil UUID was sent.
fn check_workspace_id(id: Option<Uuid>, p: &mut Problems) -> bool {
    match id {
        None => false,
        Some(id) if id.is_nil() => true,
        Some(_) => {
            p.push("workspace_id", WORKSPACE_ID_ASSIGNED_BY_SERVER);
            false
        }
    }
}

/// A [`CreateChatRequest`] after validation, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedCreateChat {
    /// The organization; `None` when an older client omitted it.
    pub organization_id: Option<Uuid>,
    /// The first message.
    pub content: Vec<ValidatedInputPart>,
    /// The sanitized per-chat system prompt; empty when none.
    pub system_prompt: String,
    /// Explicit model config.
    pub model_config_id: Option<Uuid>,
    /// MCP servers, duplicates removed, in request order; `None` when the request named
    /// none (the `default_on` servers apply).
    pub mcp_server_ids: Option<Vec<Uuid>>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Client-executed tools.
    pub dynamic_tools: Vec<DynamicTool>,
    /// Start in plan mode.
    pub plan_mode: bool,
    /// `ui` or `api` (default `api`).
    pub client_type: ChatClientType,
}

/// Validates the body of `POST /chats` and applies its defaults.
pub fn validate_create_chat_request(
    req: &CreateChatRequest,
) -> Result<ValidatedCreateChat, Response> {
    let mut p = Problems::default();
    if req.organization_id.is_some_and(|id| id.is_nil()) {
        p.push(
            "organization_id",
            "organization_id must not be the nil UUID.",
        );
    }
    let content = check_content(&req.content, &mut p).unwrap_or_default();
    let system_prompt = validate_chat_system_prompt(&req.system_prompt).unwrap_or_else(|r| {
        p.absorb(r);
        String::new()
    });
    if req.model_config_id.is_some_and(|id| id.is_nil()) {
        p.push(
            "model_config_id",
            "model_config_id must not be the nil UUID; omit it for the default model.",
        );
    }
    check_workspace_id(req.workspace_id, &mut p);
    check_labels(&req.labels, "labels", &mut p);
    check_dynamic_tools(&req.unsafe_dynamic_tools, &mut p);
    let plan_mode = plan_mode_change(req.plan_mode.as_ref()).unwrap_or_else(|detail| {
        p.push("plan_mode", detail);
        None
    });
    let client_type = client_type(req.client_type.as_ref()).unwrap_or_else(|detail| {
        p.push("client_type", detail);
        ChatClientType::Api
    });
    if !p.is_empty() {
        return Err(p.into_response(content_message(
            &req.content,
            "Invalid chat creation request.",
        )));
    }
    Ok(ValidatedCreateChat {
        organization_id: req.organization_id,
        content,
        system_prompt,
        model_config_id: req.model_config_id,
        mcp_server_ids: req.mcp_server_ids.as_deref().map(dedup_ids),
        labels: req.labels.clone(),
        dynamic_tools: req.unsafe_dynamic_tools.clone(),
        plan_mode: plan_mode.unwrap_or(false),
        client_type,
    })
}

/// An [`UpdateChatRequest`] after validation. `None` always means "unchanged".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidatedChatUpdate {
    /// The new title, trimmed.
    pub title: Option<String>,
    /// Archive (`true`) or unarchive.
    pub archived: Option<bool>,
    /// `Some(None)`: the nil UUID was sent, which unbinds (nothing to do while chats are
    /// never bound). Validation never yields `Some(Some(_))`: a client cannot bind a
    /// workspace ([`WORKSPACE_ID_ASSIGNED_BY_SERVER`]).
    pub workspace_id: Option<Option<Uuid>>,
    /// 0 unpins; > 0 pins or moves.
    pub pin_order: Option<i32>,
    /// The whole new label map (`{}` clears).
    pub labels: Option<BTreeMap<String, String>>,
    /// `Some(true)` enters plan mode, `Some(false)` leaves it.
    pub plan_mode: Option<bool>,
}

impl ValidatedChatUpdate {
    /// Whether the request changes nothing (it still succeeds, as in Coder).
    pub fn is_empty(&self) -> bool {
        *self == ValidatedChatUpdate::default()
    }
}

/// Validates the body of `PATCH /chats/{chat}`. State-dependent rules (already
/// archived, pinning a child chat, …) are the server's.
pub fn validate_update_chat_request(
    req: &UpdateChatRequest,
) -> Result<ValidatedChatUpdate, Response> {
    let mut p = Problems::default();
    let title = req.title.as_deref().and_then(|t| match title_problem(t) {
        Ok(clean) => Some(clean),
        Err(detail) => {
            p.push("title", detail);
            None
        }
    });
    if req.pin_order.is_some_and(|o| o < 0) {
        p.push(
            "pin_order",
            "pin_order must be 0 (unpin) or a positive position.",
        );
    }
    if let Some(labels) = &req.labels {
        check_labels(labels, "labels", &mut p);
    }
    let unbind = check_workspace_id(req.workspace_id, &mut p);
    let plan_mode = plan_mode_change(req.plan_mode.as_ref()).unwrap_or_else(|detail| {
        p.push("plan_mode", detail);
        None
    });
    p.finish("Invalid chat update request.")?;
    Ok(ValidatedChatUpdate {
        title,
        archived: req.archived,
        workspace_id: unbind.then_some(None),
        pin_order: req.pin_order,
        labels: req.labels.clone(),
        plan_mode,
    })
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
    fn title_rules() {
        let at = "é".repeat(MAX_CHAT_TITLE_RUNES);
        let over = "é".repeat(MAX_CHAT_TITLE_RUNES + 1);
        let cases: &[(&str, Option<&str>)] = &[
            ("  My chat  ", Some("My chat")),
            (&at, Some(&at)),
            (&format!("  {at}  "), Some(&at)),
            (&over, None),
            ("", None),
            ("   ", None),
            ("two\nlines", None),
            ("tab\there", None),
        ];
        for (input, want) in cases {
            match (validate_chat_title(input), want) {
                (Ok(got), Some(want)) => assert_eq!(&got, want),
                (Err(r), None) => assert_eq!(fields(&r), vec!["title"]),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn create(content: Vec<ChatInputPart>) -> CreateChatRequest {
        CreateChatRequest {
            content,
            ..Default::default()
        }
    }

    #[test]
    fn create_chat_defaults_and_normalization() {
        let mcp = Uuid::from_u128(5);
        let req = CreateChatRequest {
            workspace_id: Some(Uuid::nil()),
            mcp_server_ids: Some(vec![mcp, mcp]),
            system_prompt: "  be brief \0".into(),
            ..create(vec![ChatInputPart::text("hi")])
        };
        // The nil UUID is "no workspace", accepted like an absent one.
        let v = validate_create_chat_request(&req).unwrap();
        assert_eq!(v.client_type, ChatClientType::Api);
        assert!(!v.plan_mode);
        assert_eq!(v.mcp_server_ids, Some(vec![mcp]));
        assert_eq!(v.system_prompt, "be brief");
    }

    #[test]
    fn workspace_id_one_rule_for_create_and_update() {
        let ws = Uuid::from_u128(9);
        // Absent, null (both `None`) and the nil UUID mean "no workspace".
        for id in [None, Some(Uuid::nil())] {
            let create = CreateChatRequest {
                workspace_id: id,
                ..create(vec![ChatInputPart::text("hi")])
            };
            assert!(validate_create_chat_request(&create).is_ok(), "{id:?}");
            let update = UpdateChatRequest {
                workspace_id: id,
                ..Default::default()
            };
            let v = validate_update_chat_request(&update).unwrap();
            assert_eq!(v.workspace_id, id.map(|_| None), "{id:?}");
        }
        let json: CreateChatRequest = serde_json::from_str(
            r#"{"content":[{"type":"text","text":"hi"}],"workspace_id":null}"#,
        )
        .unwrap();
        assert!(validate_create_chat_request(&json).is_ok());
        // Any other id is refused, with the same detail, on both routes.
        let create = CreateChatRequest {
            workspace_id: Some(ws),
            ..create(vec![ChatInputPart::text("hi")])
        };
        let r = validate_create_chat_request(&create).unwrap_err();
        assert_eq!(r.message, "Invalid chat creation request.");
        assert_eq!(fields(&r), vec!["workspace_id"]);
        assert_eq!(r.validations[0].detail, WORKSPACE_ID_ASSIGNED_BY_SERVER);
        let update = UpdateChatRequest {
            workspace_id: Some(ws),
            title: Some("fine".into()),
            ..Default::default()
        };
        let r = validate_update_chat_request(&update).unwrap_err();
        assert_eq!(fields(&r), vec!["workspace_id"]);
        assert_eq!(r.validations[0].detail, WORKSPACE_ID_ASSIGNED_BY_SERVER);
    }

    #[test]
    fn create_chat_enums() {
        type Case = (
            Option<ChatPlanMode>,
            Option<ChatClientType>,
            Result<(bool, ChatClientType), Vec<&'static str>>,
        );
        let u = |s: &str| ChatPlanMode::from_wire(s);
        let c = |s: &str| ChatClientType::from_wire(s);
        let cases: Vec<Case> = vec![
            (None, None, Ok((false, ChatClientType::Api))),
            (
                Some(u("plan")),
                Some(c("ui")),
                Ok((true, ChatClientType::Ui)),
            ),
            (Some(u("")), Some(c("")), Ok((false, ChatClientType::Api))),
            (Some(u(" PLAN ")), None, Err(vec!["plan_mode"])),
            (None, Some(c("API")), Err(vec!["client_type"])),
            (Some(u("build")), None, Err(vec!["plan_mode"])),
            (None, Some(c("cli")), Err(vec!["client_type"])),
            (
                Some(u("x")),
                Some(c("y")),
                Err(vec!["plan_mode", "client_type"]),
            ),
        ];
        for (plan_mode, client_type, want) in cases {
            let req = CreateChatRequest {
                plan_mode: plan_mode.clone(),
                client_type: client_type.clone(),
                ..create(vec![ChatInputPart::text("hi")])
            };
            match (validate_create_chat_request(&req), want) {
                (Ok(v), Ok((plan, client))) => {
                    assert_eq!((v.plan_mode, v.client_type), (plan, client));
                }
                (Err(r), Err(f)) => assert_eq!(fields(&r), f),
                (got, want) => panic!("{plan_mode:?} {client_type:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn create_chat_reports_everything_at_once() {
        let req = CreateChatRequest {
            organization_id: Some(Uuid::nil()),
            model_config_id: Some(Uuid::nil()),
            labels: labels(&[("bad key", "v")]),
            unsafe_dynamic_tools: vec![tool("", "{}")],
            ..create(vec![])
        };
        let r = validate_create_chat_request(&req).unwrap_err();
        assert_eq!(r.message, "Content is required.");
        assert_eq!(
            fields(&r),
            vec![
                "organization_id",
                "content",
                "model_config_id",
                "labels",
                "unsafe_dynamic_tools[0].name"
            ]
        );
        let req = CreateChatRequest {
            labels: labels(&[("k", "")]),
            ..create(vec![ChatInputPart::text("x")])
        };
        assert_eq!(
            validate_create_chat_request(&req).unwrap_err().message,
            "Invalid chat creation request."
        );
    }

    #[test]
    fn update_chat_rules() {
        let ws = Uuid::from_u128(9);
        let ok = UpdateChatRequest {
            title: Some("  New  ".into()),
            workspace_id: Some(Uuid::nil()),
            pin_order: Some(0),
            labels: Some(BTreeMap::new()),
            plan_mode: Some(ChatPlanMode::Plan),
            archived: Some(true),
        };
        let v = validate_update_chat_request(&ok).unwrap();
        assert_eq!(v.title.as_deref(), Some("New"));
        assert_eq!(v.workspace_id, Some(None));
        assert_eq!(v.plan_mode, Some(true));
        assert_eq!(v.labels, Some(BTreeMap::new()));
        // A client cannot bind a workspace: the server assigns them (one rule with creation).
        let r = validate_update_chat_request(&UpdateChatRequest {
            workspace_id: Some(ws),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(r.message, "Invalid chat update request.");
        assert_eq!(fields(&r), vec!["workspace_id"]);
        assert_eq!(r.validations[0].detail, WORKSPACE_ID_ASSIGNED_BY_SERVER);
        assert!(validate_update_chat_request(&UpdateChatRequest::default())
            .unwrap()
            .is_empty());

        let bad = UpdateChatRequest {
            title: Some(" ".into()),
            pin_order: Some(-1),
            labels: Some(labels(&[("", "v")])),
            plan_mode: Some(ChatPlanMode::from_wire("nope")),
            ..Default::default()
        };
        let r = validate_update_chat_request(&bad).unwrap_err();
        assert_eq!(
            fields(&r),
            vec!["title", "pin_order", "labels", "plan_mode"]
        );
        let pinned = UpdateChatRequest {
            pin_order: Some(i32::MAX),
            ..Default::default()
        };
        assert!(validate_update_chat_request(&pinned).is_ok());
    }

    proptest! {
        #[test]
        fn title_validator_never_panics(s in any::<String>()) {
            let _ = validate_chat_title(&s);
        }
    }
}
