//! Plan mode's own tools (docs/plan-mode.md): `ask_user_question` and `propose_plan`.
//!
//! A *plan turn* is a root chat's turn with plan mode on ([`is_root_plan_turn`]). Both tools
//! are offered only there, and both end the turn after a successful call
//! ([`Tool::stops_turn`]): the user answers the questions, or reviews the plan, in their
//! next message. The other tools' plan-turn rules live with those tools (the plan-file-only
//! writes in [`crate::workspace::tools::PlanFileOnly`], the process and attachment tools'
//! `available`, MCP in [`crate::mcp`], dynamic tools in the registry).
//!
//! Every refusal is an error result the model can act on; nothing here fails a turn.

use std::path::Path;
use std::sync::Arc;

use codersdk::RawJson;
use serde::Deserialize;
use serde_json::json;

use crate::store::NewFile;
use crate::tools::{parse_arguments, schema_for, Tool, ToolContext, ToolOutput, TurnContext};
use crate::workspace::tools::{check_plan_path, Attachments};
use crate::workspace::{FileKind, Workspace};

/// Name of the tool that asks the user structured questions.
pub const ASK_USER_QUESTION_TOOL: &str = "ask_user_question";
/// Name of the tool that presents the plan.
pub const PROPOSE_PLAN_TOOL: &str = "propose_plan";

/// Fewest options one question of `ask_user_question` may offer: a choice needs two.
pub const MIN_QUESTION_OPTIONS: usize = 2;
/// Most options one question may offer (a UI adds its own "Other" choice besides them).
pub const MAX_QUESTION_OPTIONS: usize = 4;

/// Largest plan `propose_plan` accepts, file or text: 32 KiB of UTF-8. A plan is read by
/// a person before they approve it; a longer one belongs in several files the plan names.
pub const MAX_PLAN_BYTES: usize = 32 * 1024;

/// The `kind` of `propose_plan`'s result.
pub const PLAN_KIND: &str = "plan";

/// Media type of the stored plan.
const PLAN_MEDIA_TYPE: &str = "text/markdown";

/// What `ask_user_question` answers: the questions are on screen and the answer comes as
/// the user's next message.
pub const QUESTIONS_SHOWN_MESSAGE: &str = "The questions were shown to the user. The user \
will answer in their next message; end your turn now and continue when they have answered.";

/// Whether `turn` is a plan turn: a root chat's turn in plan mode (not a sub-agent's, not
/// an explore sub-agent's).
pub fn is_root_plan_turn(turn: &TurnContext) -> bool {
    turn.plan_mode && !turn.is_subagent() && !turn.explore
}

/// The plan-mode tools of a turn: [`AskUserQuestion`] and [`ProposePlan`]. Both are
/// always part of the turn's tool set so that a call on another turn is answered "not
/// active" rather than "not found"; their [`Tool::available`] offers them on root plan
/// turns only.
pub fn plan_tools(
    attachments: Attachments,
    workspace: Option<Arc<dyn Workspace>>,
) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(AskUserQuestion),
        Arc::new(ProposePlan::new(attachments, workspace)),
    ]
}

// ---------------------------------------------------------------------------------------
// ask_user_question

/// Arguments of `ask_user_question`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AskArgs {
    /// The questions, at least one, in the order the user should read them.
    questions: Vec<Question>,
}

/// One question.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Question {
    /// A short label for the question (a few words), shown as its heading.
    header: String,
    /// The question itself, as a full sentence.
    question: String,
    /// The answers to choose from: 2 to 4. The user may also answer in their own words.
    options: Vec<QuestionOption>,
}

/// One answer to choose from.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct QuestionOption {
    /// The answer, in a few words.
    label: String,
    /// What choosing it means (consequences, trade-offs).
    // Rendered by the UI from the tool-call part; the engine only checks the shape.
    #[allow(dead_code)]
    description: String,
}

/// Why the questions cannot be shown, naming the first offending one.
fn check_questions(questions: &[Question]) -> Result<(), String> {
    if questions.is_empty() {
        return Err("questions is empty; ask at least one question.".to_owned());
    }
    for (i, q) in questions.iter().enumerate() {
        if q.header.trim().is_empty() {
            return Err(format!(
                "questions[{i}].header is empty; give a short label."
            ));
        }
        if q.question.trim().is_empty() {
            return Err(format!(
                "questions[{i}].question is empty; write the question."
            ));
        }
        let n = q.options.len();
        if !(MIN_QUESTION_OPTIONS..=MAX_QUESTION_OPTIONS).contains(&n) {
            return Err(format!(
                "questions[{i}] has {n} options; each question needs \
                 {MIN_QUESTION_OPTIONS} to {MAX_QUESTION_OPTIONS} options."
            ));
        }
        for (j, option) in q.options.iter().enumerate() {
            if option.label.trim().is_empty() {
                return Err(format!(
                    "questions[{i}].options[{j}].label is empty; name the answer."
                ));
            }
        }
    }
    Ok(())
}

/// `ask_user_question`: shows structured questions to the user and ends the turn. The
/// tool-call part (with its arguments) is what a UI renders; the result only tells the
/// model to wait for the answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct AskUserQuestion;

#[async_trait::async_trait]
impl Tool for AskUserQuestion {
    fn name(&self) -> &str {
        ASK_USER_QUESTION_TOOL
    }

    fn description(&self) -> &str {
        "Asks the user one or more multiple-choice questions when something essential to \
         the plan is unclear. Each question has a short header, the question, and 2 to 4 \
         options (label and description); the user may also answer in their own words. \
         The turn ends after this call: the answers arrive as the user's next message."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<AskArgs>()
    }

    fn stops_turn(&self) -> bool {
        true
    }

    fn available(&self, turn: &TurnContext) -> bool {
        is_root_plan_turn(turn)
    }

    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args = match parse_arguments::<AskArgs>(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        if let Err(message) = check_questions(&args.questions) {
            return ToolOutput::error(message);
        }
        ToolOutput::json(&json!({
            "ok": true,
            "questions": args.questions.len(),
            "message": QUESTIONS_SHOWN_MESSAGE,
        }))
    }
}

// ---------------------------------------------------------------------------------------
// propose_plan

/// Arguments of `propose_plan`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProposeArgs {
    /// The plan file (with a workspace): the chat's plan path, which is also the default.
    #[serde(default)]
    path: Option<String>,
    /// The plan as Markdown text: only when the chat has no workspace.
    #[serde(default)]
    plan: Option<String>,
}

/// `propose_plan`: presents the plan for the user's approval and ends the turn. With a
/// workspace it reads the chat's plan file; without one it takes the plan's text. The plan
/// is stored as a chat file linked to the chat (as `attach_file` does) and the result is
/// `{ok: true, path, kind: "plan", file_id}`.
#[derive(Debug, Clone)]
pub struct ProposePlan {
    attachments: Attachments,
    workspace: Option<Arc<dyn Workspace>>,
}

impl ProposePlan {
    /// The tool storing into `attachments`, reading the plan file from `workspace` (or
    /// taking the plan's text when there is none).
    pub fn new(attachments: Attachments, workspace: Option<Arc<dyn Workspace>>) -> Self {
        ProposePlan {
            attachments,
            workspace,
        }
    }

    /// The plan file's content and its path, or the refusal.
    async fn read_plan_file(
        &self,
        ws: &dyn Workspace,
        ctx: &ToolContext,
        args: &ProposeArgs,
    ) -> Result<(String, Vec<u8>), String> {
        if args.plan.is_some() {
            return Err(
                "This chat has a workspace: write the plan to the plan file with write_file \
                 and call propose_plan without plan."
                    .to_owned(),
            );
        }
        let plan_path = crate::workspace::tools::plan_file_path(ws, ctx.chat_id());
        let path = args.path.clone().unwrap_or_else(|| plan_path.clone());
        if !is_markdown(&path) {
            return Err(format!(
                "{path} is not a Markdown file; the plan must be the .md file {plan_path}."
            ));
        }
        let path = check_plan_path(ws, ctx.chat_id(), PROPOSE_PLAN_TOOL, &path).await?;
        let stat = ws.stat(&path).await.map_err(|e| {
            format!(
                "{} Write the plan to {path} with write_file first.",
                e.message()
            )
        })?;
        if stat.kind != FileKind::File {
            return Err(format!("{path} is not a regular file."));
        }
        let max = u64::try_from(MAX_PLAN_BYTES).unwrap_or(u64::MAX);
        if stat.size > max {
            return Err(too_large(stat.size));
        }
        let read = ws
            .read_file(&path, 0, max + 1)
            .await
            .map_err(|e| e.message().to_owned())?;
        Ok((path, read.data))
    }
}

fn is_markdown(path: &str) -> bool {
    Path::new(path)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("md"))
}

fn too_large(size: u64) -> String {
    format!(
        "The plan is {size} bytes; a plan may be at most {MAX_PLAN_BYTES} bytes (32 KiB). \
         Shorten it."
    )
}

/// The plan's bytes checked: at most [`MAX_PLAN_BYTES`], UTF-8 text, not blank.
fn check_plan_text(data: &[u8]) -> Result<(), String> {
    if data.len() > MAX_PLAN_BYTES {
        return Err(too_large(u64::try_from(data.len()).unwrap_or(u64::MAX)));
    }
    let text = std::str::from_utf8(data)
        .map_err(|_| "The plan is not UTF-8 text; write it as Markdown.".to_owned())?;
    if text.contains('\0') {
        return Err("The plan is not text (it holds a NUL byte); write it as Markdown.".to_owned());
    }
    if text.trim().is_empty() {
        return Err("The plan is empty; write the plan before proposing it.".to_owned());
    }
    Ok(())
}

#[async_trait::async_trait]
impl Tool for ProposePlan {
    fn name(&self) -> &str {
        PROPOSE_PLAN_TOOL
    }

    fn description(&self) -> &str {
        "Presents the finished plan to the user for approval and ends the turn. With a \
         workspace, write the plan to the chat's plan file first (write_file) and call this \
         without arguments (or with that path). Without a workspace, pass the plan's \
         Markdown in plan. At most 32 KiB."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<ProposeArgs>()
    }

    fn stops_turn(&self) -> bool {
        true
    }

    fn available(&self, turn: &TurnContext) -> bool {
        is_root_plan_turn(turn)
    }

    async fn run(&self, ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args = match parse_arguments::<ProposeArgs>(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        let read = match &self.workspace {
            Some(ws) => self.read_plan_file(&**ws, &ctx, &args).await,
            None => match (&args.path, args.plan) {
                (Some(_), _) => Err(
                    "This chat has no workspace, so there is no plan file: pass the plan's \
                     Markdown in plan and leave out path."
                        .to_owned(),
                ),
                (None, None) => {
                    Err("This chat has no workspace: pass the plan's Markdown in plan.".to_owned())
                }
                (None, Some(text)) => Ok((format!("PLAN-{}.md", ctx.chat_id()), text.into_bytes())),
            },
        };
        let (path, data) = match read {
            Ok(r) => r,
            Err(message) => return ToolOutput::error(message),
        };
        if let Err(message) = check_plan_text(&data) {
            return ToolOutput::error(message);
        }
        let media_type = match codersdk::check_upload(PLAN_MEDIA_TYPE, &data) {
            Ok(t) => t,
            Err(response) => return ToolOutput::error(response.message),
        };
        let name = Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.clone());
        let file = NewFile {
            owner_id: ctx.owner_id(),
            organization_id: self.attachments.organization_id,
            name,
            mime_type: media_type.to_owned(),
            data,
        };
        match self
            .attachments
            .store
            .attach_file(ctx.chat_id(), file)
            .await
        {
            Ok(meta) => ToolOutput::json(&json!({
                "ok": true,
                "path": path,
                "kind": PLAN_KIND,
                "file_id": meta.id,
            })),
            Err(e) if e.kind().is_client_error() => ToolOutput::error(e.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "storing a proposed plan failed");
                ToolOutput::error("The plan could not be stored because of an internal error.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use codersdk::Uuid;

    #[test]
    fn plan_turns_are_root_turns_in_plan_mode() {
        let root = TurnContext::new(Uuid::new_v4(), Uuid::new_v4());
        assert!(!is_root_plan_turn(&root));
        assert!(is_root_plan_turn(&root.clone().with_plan_mode(true)));
        let sub = root.with_parent_chat(Uuid::new_v4()).with_plan_mode(true);
        assert!(!is_root_plan_turn(&sub));
        assert!(!is_root_plan_turn(&sub.with_explore(true)));
    }

    #[test]
    fn plan_text_limits_at_their_edges() {
        assert!(check_plan_text(&vec![b'a'; MAX_PLAN_BYTES]).is_ok());
        assert!(check_plan_text(&vec![b'a'; MAX_PLAN_BYTES + 1])
            .unwrap_err()
            .contains("at most"));
        assert!(check_plan_text(b" \n\t").unwrap_err().contains("empty"));
        assert!(check_plan_text(&[0xff, 0xfe]).is_err());
        assert!(is_markdown("a/PLAN.md") && is_markdown("x.MD"));
        assert!(!is_markdown("plan.txt") && !is_markdown("md"));
    }
}
