//! The system prompt of a turn: which instructions the model gets, in
//! which order.
//!
//! [`compose_system_prompt`] is a pure function of a [`SystemPromptInput`]; the engine
//! calls it at every turn and sends the blocks as [`chatprovider::ModelRequest::system`]
//! (providers that take one system text join them with a blank line). Nothing of it is
//! stored in the chat's history, so an administrator's prompt change applies to every
//! chat from its next turn on. See docs/tools.md.

use codersdk::sanitize_system_prompt;

/// The built-in system prompt: what every chat gets unless the administrator's custom
/// deployment prompt replaces it ([`deployment_system_prompt`]). Also the
/// `default_system_prompt` of `GET /chats/config/system-prompt`.
pub const DEFAULT_SYSTEM_PROMPT: &str = "\
You are a capable assistant for software engineering and general questions, working in a \
chat with one user.

- Be direct and concise: lead with the answer, then the detail that matters.
- When tools are available, use them to look things up and to act instead of guessing. \
Read before you change anything, and check the result afterwards.
- Prefer the smallest change that solves the problem, follow the conventions of the code \
at hand, and say so before doing anything destructive or hard to undo.
- If a request is ambiguous, state the assumption you make, or ask one focused question.
- Say plainly when you are unsure or when something failed. Never invent file contents, \
command output or results.
- Write answers in Markdown; put code, commands and paths in code blocks or backticks.";

/// The overlay added on plan-mode turns: investigate and plan, change
/// nothing but the plan.
pub const PLAN_MODE_PROMPT: &str = "\
You are in plan mode. Investigate and design, but do not change anything: do not edit \
files other than the plan file, do not run commands that modify state, and take no \
irreversible action.

Read what you need to understand the task, then write a plan: the goal, the components \
and files involved, the changes in order, the risks, and how the result will be verified. \
If something essential is unclear, ask the user before you settle on the plan. When the \
plan is ready, present it for approval and stop.";

/// Added to the plan overlay on a root chat's plan turns: how the plan tools work. A
/// planning sub-agent gets the overlay alone (it has neither tool).
pub const ROOT_PLAN_PROMPT: &str = "\
Write the plan as Markdown. With a workspace, write it to the plan file named below with \
write_file (edit it with edit_files); it is the only file you may change in plan mode. When \
a decision only the user can make blocks the plan, call ask_user_question with one or more \
questions of 2 to 4 options each, then stop: the answers come in the user's next message. \
When the plan is complete, call propose_plan (without a workspace, pass the plan's text in \
plan) and stop: the user reviews it and tells you whether to go ahead.";

/// The plan path block of a root plan turn without a workspace.
pub const NO_WORKSPACE_PLAN_PROMPT: &str = "\
This chat has no workspace, so there is no plan file: pass the plan's Markdown to \
propose_plan in its plan argument.";

/// The plan path block of a root plan turn with a workspace: where the plan file is.
pub fn plan_path_block(path: &str) -> String {
    format!("The plan file of this chat is {path}. Write the plan there; propose_plan reads it.")
}

/// The instruction block of a general sub-agent (engine.md §4.3, item 1): its role, whom
/// it works for and how it reports. [`subagent_instructions`] adds the parent's id.
pub const SUBAGENT_PROMPT: &str = "\
You are a sub-agent: another agent (your parent) started you to do one task and is \
waiting for your result. Your first message is the parent's instructions; nobody else \
will read your answer before the parent does.

- Work on that task only, on your own: do not ask questions, since nobody will answer \
them. When something is ambiguous, make a reasonable assumption and state it.
- You work in the same workspace as your parent; coordinate through your report, not by \
leaving notes in files.
- When you are done, end with a final report as your last message: what you did, what \
you found (with file paths and line numbers where they matter), and anything that failed \
or remains open. That last message is all your parent receives.";

/// The instruction block of an explore sub-agent: [`SUBAGENT_PROMPT`]'s contract plus the
/// read-only rule its tool set enforces.
pub const EXPLORE_SUBAGENT_PROMPT: &str = "\
You are an explore sub-agent: another agent (your parent) started you to investigate one \
question and is waiting for your findings. Your first message is the parent's question; \
nobody else will read your answer before the parent does.

- You are read-only: read files and run commands that inspect, but change nothing \
(no edits, no installs, no commands that write or delete). Your tools are limited to \
that on purpose.
- Work on your own: do not ask questions, since nobody will answer them. When something \
is ambiguous, make a reasonable assumption and state it.
- When you are done, end with a final report as your last message: the answer, the \
evidence (file paths, line numbers, command output that matters), and what you could \
not determine. That last message is all your parent receives.";

/// The instruction block of a sub-agent of `kind` spawned by `parent_chat_id`: the
/// first context block of each of its turns.
pub fn subagent_instructions(
    kind: crate::subagents::SubagentType,
    parent_chat_id: codersdk::Uuid,
) -> String {
    let body = match kind {
        crate::subagents::SubagentType::Explore => EXPLORE_SUBAGENT_PROMPT,
        _ => SUBAGENT_PROMPT,
    };
    format!("<subagent type=\"{kind}\" parent_chat_id=\"{parent_chat_id}\">\n{body}\n</subagent>")
}

/// The tag that wraps the user's personal instructions, so the model can tell them from
/// the deployment's and the chat's.
pub const USER_INSTRUCTIONS_TAG: &str = "user-instructions";

/// Everything the system prompt of a turn is made of. Texts are used as given after
/// [`sanitize_system_prompt`]; an empty (or whitespace-only) text contributes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemPromptInput<'a> {
    /// The administrator's custom deployment prompt.
    pub deployment_prompt: &'a str,
    /// Whether the built-in [`DEFAULT_SYSTEM_PROMPT`] precedes the custom prompt.
    pub include_default_prompt: bool,
    /// The chat's own `system_prompt` (set at creation).
    pub chat_prompt: &'a str,
    /// Blocks the engine derives for this turn, in order: a sub-agent's instruction
    /// block, the workspace's instruction files, the skills index (items
    /// 1–3).
    pub context_blocks: &'a [String],
    /// The user's personal prompt, wrapped in `<user-instructions>` tags.
    pub user_prompt: &'a str,
    /// The chat is in plan mode: the plan overlay is added.
    pub plan_mode: bool,
    /// The turn is a root chat's plan turn ([`crate::plan::is_root_plan_turn`]): the
    /// overlay is followed by [`ROOT_PLAN_PROMPT`] and the administrator's plan-mode
    /// instructions, and the plan path block comes last. Ignored outside plan mode.
    pub root_plan_turn: bool,
    /// The administrator's plan-mode instructions
    /// (`/chats/config/plan-mode-instructions`), appended on root plan turns.
    pub plan_mode_instructions: &'a str,
    /// The chat's plan file, when the turn has a workspace; the plan path block names it
    /// (or says there is no plan file).
    pub plan_file_path: Option<&'a str>,
}

/// The deployment prompt from the administrator's settings: the custom prompt alone when
/// "include default" is off, [`DEFAULT_SYSTEM_PROMPT`], a blank line and the custom prompt
/// when it is on, and the default alone whenever the custom prompt is empty (a chat never
/// runs without instructions because an administrator cleared a field).
pub fn deployment_system_prompt(custom: &str, include_default: bool) -> String {
    let custom = sanitize_system_prompt(custom);
    if custom.is_empty() {
        DEFAULT_SYSTEM_PROMPT.to_owned()
    } else if include_default {
        format!("{DEFAULT_SYSTEM_PROMPT}\n\n{custom}")
    } else {
        custom
    }
}

/// The system blocks of a turn, in order:
///
/// 1. the deployment prompt ([`deployment_system_prompt`]);
/// 2. the chat's own prompt;
/// 3. the context blocks, in the order given;
/// 4. the user's personal prompt inside `<user-instructions>` tags;
/// 5. in plan mode, [`PLAN_MODE_PROMPT`]; on a root plan turn followed by
///    [`ROOT_PLAN_PROMPT`] and the administrator's plan-mode instructions;
/// 6. on a root plan turn, the plan path block ([`plan_path_block`] or
///    [`NO_WORKSPACE_PLAN_PROMPT`]).
///
/// Broad rules come first and the most specific last, where models weigh them most.
/// Empty parts are left out; the result always holds the deployment prompt.
pub fn compose_system_prompt(input: &SystemPromptInput<'_>) -> Vec<String> {
    let mut blocks = vec![deployment_system_prompt(
        input.deployment_prompt,
        input.include_default_prompt,
    )];
    let mut push = |text: &str| {
        let clean = sanitize_system_prompt(text);
        if !clean.is_empty() {
            blocks.push(clean);
        }
    };
    push(input.chat_prompt);
    for block in input.context_blocks {
        push(block);
    }
    let user = sanitize_system_prompt(input.user_prompt);
    if !user.is_empty() {
        blocks.push(format!(
            "<{USER_INSTRUCTIONS_TAG}>\n{user}\n</{USER_INSTRUCTIONS_TAG}>"
        ));
    }
    if input.plan_mode {
        if input.root_plan_turn {
            let mut overlay = format!("{PLAN_MODE_PROMPT}\n\n{ROOT_PLAN_PROMPT}");
            let extra = sanitize_system_prompt(input.plan_mode_instructions);
            if !extra.is_empty() {
                overlay.push_str("\n\n");
                overlay.push_str(&extra);
            }
            blocks.push(overlay);
            blocks.push(match input.plan_file_path {
                Some(path) => plan_path_block(path),
                None => NO_WORKSPACE_PLAN_PROMPT.to_owned(),
            });
        } else {
            blocks.push(PLAN_MODE_PROMPT.to_owned());
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn include_default_toggle_and_empty_custom_prompt() {
        // Off: the administrator's prompt replaces the default.
        assert_eq!(deployment_system_prompt("Be terse.", false), "Be terse.");
        // On: default, blank line, custom.
        assert_eq!(
            deployment_system_prompt("Be terse.", true),
            format!("{DEFAULT_SYSTEM_PROMPT}\n\nBe terse.")
        );
        // Empty or blank custom prompt: the default, whatever the toggle says.
        for include in [false, true] {
            assert_eq!(deployment_system_prompt("", include), DEFAULT_SYSTEM_PROMPT);
            assert_eq!(
                deployment_system_prompt(" \r\n\t", include),
                DEFAULT_SYSTEM_PROMPT
            );
        }
    }

    #[test]
    fn custom_prompt_is_sanitized() {
        assert_eq!(
            deployment_system_prompt("  line one\r\nline\0 two  ", false),
            "line one\nline two"
        );
    }

    #[test]
    fn minimal_input_is_the_default_prompt_alone() {
        assert_eq!(
            compose_system_prompt(&SystemPromptInput::default()),
            vec![DEFAULT_SYSTEM_PROMPT.to_owned()]
        );
    }

    #[test]
    fn blocks_come_in_order_from_broad_to_specific() {
        let context = vec![
            "<instructions>AGENTS.md</instructions>".to_owned(),
            " ".to_owned(),
        ];
        let blocks = compose_system_prompt(&SystemPromptInput {
            deployment_prompt: "Deployment rules.",
            include_default_prompt: false,
            chat_prompt: "Answer in French.",
            context_blocks: &context,
            user_prompt: "I prefer Rust.\r\n",
            plan_mode: true,
            root_plan_turn: true,
            plan_mode_instructions: "Plans go in PLAN.md.",
            plan_file_path: Some("/w/.coder/plans/PLAN-1.md"),
        });
        assert_eq!(
            blocks,
            vec![
                "Deployment rules.".to_owned(),
                "Answer in French.".to_owned(),
                "<instructions>AGENTS.md</instructions>".to_owned(),
                "<user-instructions>\nI prefer Rust.\n</user-instructions>".to_owned(),
                format!("{PLAN_MODE_PROMPT}\n\n{ROOT_PLAN_PROMPT}\n\nPlans go in PLAN.md."),
                plan_path_block("/w/.coder/plans/PLAN-1.md"),
            ]
        );
    }

    #[test]
    fn plan_overlay_only_in_plan_mode() {
        let input = SystemPromptInput {
            plan_mode_instructions: "Plans go in PLAN.md.",
            ..Default::default()
        };
        let normal = compose_system_prompt(&input);
        assert!(!normal.iter().any(|b| b.contains("plan mode")));
        assert!(!normal.iter().any(|b| b.contains("PLAN.md")));
        // A planning sub-agent: the overlay alone, without the administrator's text.
        let sub = compose_system_prompt(&SystemPromptInput {
            plan_mode: true,
            ..input
        });
        assert_eq!(sub.last().unwrap(), PLAN_MODE_PROMPT);
        // A root plan turn without a workspace: the plan tools and "no plan file".
        let root = compose_system_prompt(&SystemPromptInput {
            plan_mode: true,
            root_plan_turn: true,
            plan_mode_instructions: "",
            ..input
        });
        assert_eq!(
            root[root.len() - 2],
            format!("{PLAN_MODE_PROMPT}\n\n{ROOT_PLAN_PROMPT}")
        );
        assert_eq!(root.last().unwrap(), NO_WORKSPACE_PLAN_PROMPT);
        // Root plan turn flags do nothing outside plan mode.
        let off = compose_system_prompt(&SystemPromptInput {
            root_plan_turn: true,
            ..input
        });
        assert_eq!(off, normal);
    }

    #[test]
    fn blank_user_prompt_adds_no_empty_tags() {
        let blocks = compose_system_prompt(&SystemPromptInput {
            user_prompt: "  \n ",
            chat_prompt: "\u{7}",
            ..Default::default()
        });
        assert_eq!(blocks.len(), 1);
    }
}
