//! The model's built-in tools over a [`Workspace`]: `read_file`,
//! `write_file`, `edit_files`, `execute`, `process_output`, `process_list`,
//! `process_signal` and `attach_file`, plus the skill tools `read_skill` and
//! `read_skill_file`.
//!
//! Every failure is a JSON object with an `error` field (the tool result is marked as an
//! error), never a failed turn. Each tool decides its availability per mode from the
//! [`TurnContext`]; writes go through a [`WritePolicy`], the hook plan mode uses to limit
//! writes to the plan file.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use codersdk::{RawJson, Uuid};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::context::Skill;
use super::{
    CapturedOutput, CommandRequest, ExitReason, FileKind, ProcessInfo, ProcessOutput,
    ProcessSignal, ProcessState, Workspace, WorkspaceError, WorkspaceErrorKind,
};
use crate::store::{NewFile, Store, MAX_FILE_BYTES};
use crate::tools::{parse_arguments, schema_for, Tool, ToolContext, ToolOutput, TurnContext};

/// Name of the file-reading tool.
pub const READ_FILE_TOOL: &str = "read_file";
/// Name of the whole-file writing tool.
pub const WRITE_FILE_TOOL: &str = "write_file";
/// Name of the search/replace editing tool.
pub const EDIT_FILES_TOOL: &str = "edit_files";
/// Name of the command tool.
pub const EXECUTE_TOOL: &str = "execute";
/// Name of the tool that reads a background process's output.
pub const PROCESS_OUTPUT_TOOL: &str = "process_output";
/// Name of the tool that lists background processes.
pub const PROCESS_LIST_TOOL: &str = "process_list";
/// Name of the tool that signals a background process.
pub const PROCESS_SIGNAL_TOOL: &str = "process_signal";
/// Name of the tool that attaches a workspace file to the chat.
pub const ATTACH_FILE_TOOL: &str = "attach_file";
/// Name of the tool that loads a skill.
pub const READ_SKILL_TOOL: &str = "read_skill";
/// Name of the tool that reads a file of a skill.
pub const READ_SKILL_FILE_TOOL: &str = "read_skill_file";

/// Largest file `read_file` and `edit_files` read whole: 4 MiB. Bigger files are refused
/// with a hint to read parts of them with `execute` (`head`, `sed -n`, `grep`).
pub const MAX_READ_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Largest content `write_file` writes, and largest file `edit_files` leaves: 4 MiB.
pub const MAX_WRITE_FILE_BYTES: usize = 4 * 1024 * 1024;

/// Lines `read_file` returns when the call gives no `limit`.
pub const DEFAULT_READ_LINES: u64 = 2000;

/// Longest line `read_file` shows, in characters; longer lines are cut with a marker.
pub const MAX_LINE_CHARS: usize = 2000;

/// Budget of a `read_file` result's `content`, in bytes of JSON text: the result stays
/// under the engine's 64 KiB tool-output cap, so a long file is paged (`next_offset`)
/// instead of being cut by the engine.
pub const MAX_READ_RESULT_BYTES: usize = 48 * 1024;

/// Bytes `read_file` inspects to tell a binary file (a NUL byte) from text.
pub const BINARY_SNIFF_BYTES: usize = 8 * 1024;

/// A foreground command's timeout when the call gives none.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest timeout a foreground command may ask for; larger values are lowered to it.
/// Longer work belongs in the background (`run_in_background`).
pub const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// Budget of the `stdout` and `stderr` of one result together, in bytes of JSON text
/// (under the engine's 64 KiB tool-output cap).
pub const MAX_COMMAND_OUTPUT_BYTES: usize = 48 * 1024;

/// Share of [`MAX_COMMAND_OUTPUT_BYTES`] `stderr` may take when `stdout` needs the rest.
pub const STDERR_OUTPUT_BYTES: usize = 16 * 1024;

/// Most files one `edit_files` call may change.
pub const MAX_EDIT_FILES: usize = 32;

/// Largest file `read_skill_file` returns (512 KB).
pub const MAX_SKILL_FILE_BYTES: u64 = 512 * 1024;

/// Entries `read_skill` lists from a skill directory at most.
pub const MAX_SKILL_DIR_ENTRIES: usize = 200;

/// Decides whether the model may write a path in a turn: the hook plan mode uses to limit
/// writes to the plan file. `write_file` and `edit_files` ask it before
/// writing anything.
#[async_trait::async_trait]
pub trait WritePolicy: Send + Sync + fmt::Debug {
    /// `Err(message)` refuses the write; the message is the tool's `error`.
    async fn check_write(
        &self,
        turn: &TurnContext,
        workspace: &dyn Workspace,
        tool: &str,
        path: &str,
    ) -> Result<(), String>;
}

/// The default [`WritePolicy`]: writes anywhere in the workspace, except on plan turns,
/// where only the chat's plan file may be written ([`plan_file_path`]), and only while it
/// resolves to itself ([`check_plan_path`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanFileOnly;

/// The plan file of a chat in a workspace:
/// `<home or working directory>/.coder/plans/PLAN-<chat id>.md`.
pub fn plan_file_path(workspace: &dyn Workspace, chat_id: Uuid) -> String {
    format!("{}/{}", plan_home(workspace), plan_file_relative(chat_id))
}

/// The directory the plan file is under: the home directory, else the working directory.
fn plan_home(workspace: &dyn Workspace) -> &str {
    workspace
        .home_directory()
        .unwrap_or_else(|| workspace.working_directory())
        .trim_end_matches('/')
}

/// The plan file below [`plan_home`].
fn plan_file_relative(chat_id: Uuid) -> String {
    format!(".coder/plans/PLAN-{chat_id}.md")
}

/// Checks that `path` (as the model wrote it) is chat `chat_id`'s plan file and that the
/// plan path resolves to itself: neither the file nor a directory between the home
/// directory and it (`.coder`, `.coder/plans`) is a symbolic link, so a link planted at
/// the plan path cannot redirect a plan-turn write (or `propose_plan`'s read) to another
/// file. Parts that do not exist yet are fine: the write creates them as directories and
/// a file.
///
/// `Err` is the refusal for the model: "during plan turns, `<tool>` is restricted to
/// `<plan path>`", followed by the reason when the path was right but resolves elsewhere.
/// `Ok` is the plan path.
pub async fn check_plan_path(
    workspace: &dyn Workspace,
    chat_id: Uuid,
    tool: &str,
    path: &str,
) -> Result<String, String> {
    let plan = plan_file_path(workspace, chat_id);
    let refusal = format!("during plan turns, {tool} is restricted to {plan}");
    let absolute = Path::new(workspace.working_directory()).join(path);
    if normalize(&absolute) != normalize(Path::new(&plan)) {
        return Err(refusal);
    }
    let mut current = plan_home(workspace).to_owned();
    for component in plan_file_relative(chat_id).split('/') {
        current = format!("{current}/{component}");
        match workspace.entry_kind(&current).await {
            Ok(FileKind::Symlink) => {
                return Err(format!(
                    "{refusal}, and {current} is a symbolic link: the plan path must resolve \
                     to itself. Remove the link and write the plan file there."
                ))
            }
            Ok(_) => {}
            // Nothing below a missing part exists either.
            Err(e) if e.kind() == WorkspaceErrorKind::NotFound => break,
            Err(e) => return Err(format!("{refusal}: {}", e.message())),
        }
    }
    Ok(plan)
}

#[async_trait::async_trait]
impl WritePolicy for PlanFileOnly {
    async fn check_write(
        &self,
        turn: &TurnContext,
        workspace: &dyn Workspace,
        tool: &str,
        path: &str,
    ) -> Result<(), String> {
        if !turn.plan_mode {
            return Ok(());
        }
        check_plan_path(workspace, turn.chat_id, tool, path)
            .await
            .map(|_| ())
    }
}

/// `path` with `.` components dropped and `..` applied lexically (for comparing spellings
/// of one path, not for confinement).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Where `attach_file` stores files: the chat files of the chat's organization.
#[derive(Debug, Clone)]
pub struct Attachments {
    /// The store of chat files.
    pub store: Store,
    /// The organization of the chat (the file's organization).
    pub organization_id: Uuid,
}

/// What the workspace tools of a turn share.
#[derive(Debug, Clone)]
pub struct WorkspaceTools {
    workspace: Arc<dyn Workspace>,
    policy: Arc<dyn WritePolicy>,
    attachments: Option<Attachments>,
    skills: Vec<Skill>,
}

impl WorkspaceTools {
    /// The tools over `workspace`, with the [`PlanFileOnly`] policy, no `attach_file` and no
    /// skills.
    pub fn new(workspace: Arc<dyn Workspace>) -> Self {
        WorkspaceTools {
            workspace,
            policy: Arc::new(PlanFileOnly),
            attachments: None,
            skills: Vec::new(),
        }
    }

    /// Replaces the write policy.
    pub fn with_write_policy(mut self, policy: Arc<dyn WritePolicy>) -> Self {
        self.policy = policy;
        self
    }

    /// Offers `attach_file`, storing into `attachments`.
    pub fn with_attachments(mut self, attachments: Attachments) -> Self {
        self.attachments = Some(attachments);
        self
    }

    /// Offers `read_skill` and `read_skill_file` over `skills` (when there are any).
    pub fn with_skills(mut self, skills: Vec<Skill>) -> Self {
        self.skills = skills;
        self
    }

    /// The tools.
    pub fn tools(self) -> Vec<Arc<dyn Tool>> {
        let shared = Arc::new(self);
        let mut tools: Vec<Arc<dyn Tool>> = vec![
            Arc::new(ReadFile(Arc::clone(&shared))),
            Arc::new(WriteFile(Arc::clone(&shared))),
            Arc::new(EditFiles(Arc::clone(&shared))),
            Arc::new(Execute(Arc::clone(&shared))),
            Arc::new(ProcessOutputTool(Arc::clone(&shared))),
            Arc::new(ProcessList(Arc::clone(&shared))),
            Arc::new(ProcessSignalTool(Arc::clone(&shared))),
        ];
        if shared.attachments.is_some() {
            tools.push(Arc::new(AttachFile(Arc::clone(&shared))));
        }
        if !shared.skills.is_empty() {
            tools.push(Arc::new(ReadSkill(Arc::clone(&shared))));
            tools.push(Arc::new(ReadSkillFile(Arc::clone(&shared))));
        }
        tools
    }
}

/// Writing tools are off for read-only turns: explore sub-agents and sub-agents of a
/// planning parent.
fn writes_allowed(turn: &TurnContext) -> bool {
    !(turn.explore || (turn.plan_mode && turn.is_subagent()))
}

/// `attach_file`, `process_list` and `process_signal` only outside plan and explore turns.
fn full_mode(turn: &TurnContext) -> bool {
    !(turn.explore || turn.plan_mode)
}

fn error_output(e: &WorkspaceError) -> ToolOutput {
    ToolOutput::error(e.message())
}

/// An error result that also carries data (`{"error": …, more fields}`).
fn error_with(message: impl Into<String>, mut fields: Map<String, Value>) -> ToolOutput {
    fields.insert("error".to_owned(), Value::String(message.into()));
    let mut out = ToolOutput::json(&Value::Object(fields));
    out.is_error = true;
    out
}

// ---------------------------------------------------------------------------------------
// Text helpers

/// Bytes `c` takes in JSON text (escapes included).
fn json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

fn json_len_str(s: &str) -> usize {
    s.chars().map(json_len).sum()
}

/// The longest prefix of `s` whose JSON text fits `budget` bytes.
fn prefix_within(s: &str, budget: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += json_len(c);
        if used > budget {
            return s.get(..i).unwrap_or_default();
        }
    }
    s
}

/// The longest suffix of `s` whose JSON text fits `budget` bytes.
fn suffix_within(s: &str, budget: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices().rev() {
        used += json_len(c);
        if used > budget {
            return s.get(i + c.len_utf8()..).unwrap_or_default();
        }
    }
    s
}

/// Text of bytes that may have been cut anywhere: `None` when they hold a NUL byte or
/// invalid UTF-8 other than a character cut at either end (binary data).
fn cut_text(bytes: &[u8], cut_at_start: bool) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    let mut start = 0;
    if cut_at_start {
        while start < 3 && bytes.get(start).is_some_and(|b| b & 0xC0 == 0x80) {
            start += 1;
        }
    }
    let bytes = bytes.get(start..).unwrap_or_default();
    match std::str::from_utf8(bytes) {
        Ok(s) => Some(s),
        // Cut in the middle of the last character.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(bytes.get(..e.valid_up_to()).unwrap_or_default()).ok()
        }
        Err(_) => None,
    }
}

/// What a process printed on one stream as text for the model, at most `budget` bytes
/// of JSON: whole when it fits, else the beginning, a marker saying how much was left
/// out, and the end. Binary output is replaced by a note.
fn render_output(out: &CapturedOutput, budget: usize) -> String {
    let head = cut_text(&out.head, false);
    let tail = cut_text(&out.tail, true);
    let (Some(head), Some(tail)) = (head, tail) else {
        return format!("[binary output: {} bytes not shown]", out.total_bytes);
    };
    let complete = out.dropped_bytes() == 0;
    if complete && json_len_str(head) + json_len_str(tail) <= budget {
        return format!("{head}{tail}");
    }
    // Room for the marker; the rest is a quarter for the beginning and the remainder for
    // the end, where errors and results usually are.
    let marker_room = 64;
    let room = budget.saturating_sub(marker_room);
    let (first, last) = if tail.is_empty() {
        let first = prefix_within(head, room / 4);
        let last = suffix_within(head.get(first.len()..).unwrap_or_default(), room - room / 4);
        (first, last)
    } else {
        let first = prefix_within(head, room / 4);
        let used = json_len_str(first);
        (first, suffix_within(tail, room.saturating_sub(used)))
    };
    let shown = u64::try_from(first.len() + last.len()).unwrap_or(u64::MAX);
    let omitted = out.total_bytes.saturating_sub(shown);
    format!("{first}\n[… {omitted} bytes of output omitted …]\n{last}")
}

// ---------------------------------------------------------------------------------------
// read_file

/// Arguments of `read_file`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReadFileArgs {
    /// Path of the file, relative to the workspace directory (or absolute inside it).
    path: String,
    /// First line to return, counting from 1 (default 1).
    #[serde(default)]
    offset: Option<u64>,
    /// Most lines to return (default 2000).
    #[serde(default)]
    limit: Option<u64>,
}

#[derive(Debug)]
struct ReadFile(Arc<WorkspaceTools>);

/// A text file of at most [`MAX_READ_FILE_BYTES`], or the error result for the model.
async fn read_text(ws: &dyn Workspace, path: &str) -> Result<String, ToolOutput> {
    let stat = ws.stat(path).await.map_err(|e| error_output(&e))?;
    match stat.kind {
        FileKind::Directory => {
            return Err(ToolOutput::error(format!(
                "{path} is a directory, not a file."
            )))
        }
        FileKind::File => {}
        _ => return Err(ToolOutput::error(format!("{path} is not a regular file."))),
    }
    if stat.size > MAX_READ_FILE_BYTES {
        return Err(ToolOutput::error(format!(
            "{path} is {} bytes, larger than the {MAX_READ_FILE_BYTES} bytes this tool reads; \
             read parts of it with execute (head, tail, sed -n, grep).",
            stat.size
        )));
    }
    let read = ws
        .read_file(path, 0, MAX_READ_FILE_BYTES + 1)
        .await
        .map_err(|e| error_output(&e))?;
    if u64::try_from(read.data.len()).unwrap_or(u64::MAX) > MAX_READ_FILE_BYTES {
        return Err(ToolOutput::error(format!(
            "{path} grew past {MAX_READ_FILE_BYTES} bytes while it was read."
        )));
    }
    let sniff = read.data.get(..BINARY_SNIFF_BYTES).unwrap_or(&read.data);
    if sniff.contains(&0) {
        return Err(ToolOutput::error(format!(
            "{path} is a binary file ({} bytes); only text files can be read.",
            read.data.len()
        )));
    }
    String::from_utf8(read.data).map_err(|e| {
        ToolOutput::error(format!(
            "{path} is not UTF-8 text (invalid byte at offset {}); only text files can be read.",
            e.utf8_error().valid_up_to()
        ))
    })
}

#[async_trait::async_trait]
impl Tool for ReadFile {
    fn name(&self) -> &str {
        READ_FILE_TOOL
    }

    fn description(&self) -> &str {
        "Reads a text file of the workspace and returns its lines, each prefixed with its \
         line number and a tab. Use offset and limit to page through long files; the \
         result says the total number of lines and, when more follow, the next offset."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<ReadFileArgs>()
    }

    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args = match parse_arguments::<ReadFileArgs>(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        let text = match read_text(&*self.0.workspace, &args.path).await {
            Ok(t) => t,
            Err(e) => return e,
        };
        let lines: Vec<&str> = text.lines().collect();
        let total = u64::try_from(lines.len()).unwrap_or(u64::MAX);
        let offset = args.offset.unwrap_or(1).max(1);
        let limit = args.limit.unwrap_or(DEFAULT_READ_LINES).max(1);
        if offset > total && !(offset == 1 && total == 0) {
            return ToolOutput::error(format!(
                "offset {offset} is past the end of {} ({total} lines).",
                args.path
            ));
        }
        let mut content = String::new();
        let mut used = 0;
        let mut end = offset.saturating_sub(1);
        let mut budget_hit = false;
        let skip = usize::try_from(offset.saturating_sub(1)).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        for (i, line) in lines.iter().enumerate().skip(skip).take(take) {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let shown = match line.char_indices().nth(MAX_LINE_CHARS) {
                Some((cut, _)) => format!(
                    "{}… [line truncated at {MAX_LINE_CHARS} characters]",
                    line.get(..cut).unwrap_or_default()
                ),
                None => line.to_owned(),
            };
            let numbered = format!("{:>6}\t{shown}\n", i + 1);
            let cost = json_len_str(&numbered);
            if used + cost > MAX_READ_RESULT_BYTES && !content.is_empty() {
                budget_hit = true;
                break;
            }
            used += cost;
            content.push_str(&numbered);
            end = u64::try_from(i + 1).unwrap_or(u64::MAX);
        }
        let more = end < total;
        let mut result = json!({
            "path": args.path,
            "content": content,
            "start_line": offset,
            "end_line": end,
            "total_lines": total,
            "more": more,
        });
        if more {
            if let Some(map) = result.as_object_mut() {
                map.insert("next_offset".into(), json!(end + 1));
                if budget_hit {
                    map.insert(
                        "note".into(),
                        json!("The result size limit was reached; continue at next_offset."),
                    );
                }
            }
        }
        ToolOutput::json(&result)
    }
}

// ---------------------------------------------------------------------------------------
// write_file

/// Arguments of `write_file`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct WriteFileArgs {
    /// Path of the file, relative to the workspace directory (or absolute inside it).
    /// Missing parent directories are created.
    path: String,
    /// The whole new content of the file.
    content: String,
}

#[derive(Debug)]
struct WriteFile(Arc<WorkspaceTools>);

#[async_trait::async_trait]
impl Tool for WriteFile {
    fn name(&self) -> &str {
        WRITE_FILE_TOOL
    }

    fn description(&self) -> &str {
        "Writes a whole file in the workspace, replacing it if it exists and creating \
         missing parent directories. To change part of an existing file, use edit_files."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<WriteFileArgs>()
    }

    fn available(&self, turn: &TurnContext) -> bool {
        writes_allowed(turn)
    }

    async fn run(&self, ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args = match parse_arguments::<WriteFileArgs>(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        let tools = &self.0;
        if args.content.len() > MAX_WRITE_FILE_BYTES {
            return ToolOutput::error(format!(
                "The content is {} bytes; write_file writes at most {MAX_WRITE_FILE_BYTES} \
                 bytes. Write large files in parts with execute, or generate them with a \
                 command.",
                args.content.len()
            ));
        }
        if let Err(refused) = tools
            .policy
            .check_write(&ctx.turn, &*tools.workspace, WRITE_FILE_TOOL, &args.path)
            .await
        {
            return ToolOutput::error(refused);
        }
        let existed = tools.workspace.stat(&args.path).await.is_ok();
        match tools
            .workspace
            .write_file(&args.path, args.content.as_bytes())
            .await
        {
            Ok(()) => ToolOutput::json(&json!({
                "path": args.path,
                "bytes_written": args.content.len(),
                "created": !existed,
            })),
            Err(e) => error_output(&e),
        }
    }
}

// ---------------------------------------------------------------------------------------
// edit_files

/// Arguments of `edit_files`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct EditFilesArgs {
    /// The files to change, each with its edits.
    files: Vec<FileEdits>,
}

/// The edits of one file.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct FileEdits {
    /// Path of the file, relative to the workspace directory (or absolute inside it).
    path: String,
    /// Applied in order, each to the result of the previous one.
    edits: Vec<Edit>,
}

/// One exact search/replace.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Edit {
    /// The exact text to find (whitespace and line breaks included). It must occur
    /// exactly once unless replace_all is set.
    search: String,
    /// The text to put in its place.
    replace: String,
    /// Replace every occurrence instead of requiring exactly one.
    #[serde(default)]
    replace_all: bool,
}

#[derive(Debug)]
struct EditFiles(Arc<WorkspaceTools>);

/// `content` with the edits of `file` applied, and the number of replacements; the error
/// names the edit that cannot be applied.
fn apply_edits(
    file: &FileEdits,
    file_index: usize,
    mut content: String,
) -> Result<(String, usize), String> {
    let mut replacements = 0;
    for (j, edit) in file.edits.iter().enumerate() {
        let which = format!("files[{file_index}].edits[{j}] ({})", file.path);
        if edit.search.is_empty() {
            return Err(format!(
                "{which}: search is empty; give the exact text to replace."
            ));
        }
        let count = content.matches(edit.search.as_str()).count();
        match count {
            0 => {
                return Err(format!(
                    "{which}: the search text was not found. It must match the file exactly, \
                     whitespace included; read the file again to copy it."
                ))
            }
            1 => {}
            n if !edit.replace_all => {
                return Err(format!(
                    "{which}: the search text occurs {n} times; include more surrounding lines \
                     so it occurs once, or set replace_all to replace every occurrence."
                ))
            }
            _ => {}
        }
        content = content.replace(edit.search.as_str(), &edit.replace);
        replacements += count;
    }
    Ok((content, replacements))
}

#[async_trait::async_trait]
impl Tool for EditFiles {
    fn name(&self) -> &str {
        EDIT_FILES_TOOL
    }

    fn description(&self) -> &str {
        "Changes existing files of the workspace by exact search and replace. Each search \
         text must occur exactly once in its file (or set replace_all). All edits of a call \
         are applied together or none is: if one cannot be applied, no file is changed."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<EditFilesArgs>()
    }

    fn available(&self, turn: &TurnContext) -> bool {
        writes_allowed(turn)
    }

    async fn run(&self, ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args = match parse_arguments::<EditFilesArgs>(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        let tools = &self.0;
        let ws = &*tools.workspace;
        if args.files.is_empty() {
            return ToolOutput::error("files is empty; name at least one file to edit.");
        }
        if args.files.len() > MAX_EDIT_FILES {
            return ToolOutput::error(format!(
                "{} files in one call; edit_files changes at most {MAX_EDIT_FILES} at once.",
                args.files.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for file in &args.files {
            let key = normalize(&Path::new(ws.working_directory()).join(&file.path));
            if !seen.insert(key) {
                return ToolOutput::error(format!(
                    "{} is listed twice; put all edits of a file in one entry.",
                    file.path
                ));
            }
            if let Err(refused) = tools
                .policy
                .check_write(&ctx.turn, ws, EDIT_FILES_TOOL, &file.path)
                .await
            {
                return ToolOutput::error(refused);
            }
        }
        // Everything is computed before anything is written.
        let mut planned = Vec::with_capacity(args.files.len());
        for (i, file) in args.files.iter().enumerate() {
            let original = match read_text(ws, &file.path).await {
                Ok(t) => t,
                Err(e) => return e,
            };
            let (changed, replacements) = match apply_edits(file, i, original.clone()) {
                Ok(done) => done,
                Err(message) => {
                    return ToolOutput::error(format!("{message} No file was changed."))
                }
            };
            if changed.len() > MAX_WRITE_FILE_BYTES {
                return ToolOutput::error(format!(
                    "{}: the edited file would be {} bytes, over the {MAX_WRITE_FILE_BYTES}-byte \
                     limit. No file was changed.",
                    file.path,
                    changed.len()
                ));
            }
            planned.push((file.path.as_str(), original, changed, replacements));
        }
        for (k, (path, _, changed, _)) in planned.iter().enumerate() {
            if let Err(e) = ws.write_file(path, changed.as_bytes()).await {
                // Put back what was written already.
                let mut restored = true;
                for (path, original, _, _) in planned.iter().take(k) {
                    restored &= ws.write_file(path, original.as_bytes()).await.is_ok();
                }
                let what = if restored {
                    "No file was changed."
                } else {
                    "Restoring the files written before it failed too: check them."
                };
                return ToolOutput::error(format!("{} {what}", e.message()));
            }
        }
        let files: Vec<Value> = planned
            .iter()
            .map(|(path, _, _, n)| json!({"path": path, "replacements": n}))
            .collect();
        ToolOutput::json(&json!({ "files": files }))
    }
}

// ---------------------------------------------------------------------------------------
// execute and the process tools

/// Arguments of `execute`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExecuteArgs {
    /// The shell command (run with bash -c in the workspace directory).
    command: String,
    /// Seconds the command may run before it is killed (default 60, at most 600). In the
    /// background: its longest lifetime.
    #[serde(default)]
    timeout_seconds: Option<u64>,
    /// Start the command in the background and return its process_id at once (for
    /// servers and long builds); read its output with process_output.
    #[serde(default)]
    run_in_background: bool,
}

#[derive(Debug)]
struct Execute(Arc<WorkspaceTools>);

fn state_fields(info: &ProcessInfo, map: &mut Map<String, Value>) {
    match info.state {
        ProcessState::Running => {
            map.insert("status".into(), json!("running"));
        }
        ProcessState::Exited {
            code,
            signal,
            reason,
        } => {
            map.insert("status".into(), json!("exited"));
            map.insert("exit_code".into(), json!(code));
            if let Some(signal) = signal {
                map.insert("signal".into(), json!(signal));
            }
            map.insert("reason".into(), json!(reason.as_str()));
        }
    }
}

fn output_fields(out: &ProcessOutput, map: &mut Map<String, Value>) {
    let stderr = render_output(&out.stderr, STDERR_OUTPUT_BYTES);
    let stdout = render_output(
        &out.stdout,
        MAX_COMMAND_OUTPUT_BYTES.saturating_sub(json_len_str(&stderr)),
    );
    map.insert("stdout".into(), Value::String(stdout));
    map.insert("stderr".into(), Value::String(stderr));
}

/// Why a command did not end on its own, for the model; `None` when it did.
fn stop_message(reason: ExitReason, timeout: Duration) -> Option<String> {
    match reason {
        ExitReason::Exited => None,
        ExitReason::TimedOut => Some(format!(
            "The command timed out after {}s and was killed, with every process it started. \
             Use a longer timeout_seconds (at most {}) or run_in_background.",
            timeout.as_secs(),
            MAX_COMMAND_TIMEOUT.as_secs()
        )),
        ExitReason::ProcessLimit => Some(
            "The command started too many processes at once and was killed, with every \
             process it started."
                .to_owned(),
        ),
        ExitReason::Signalled => Some("The command was stopped by a signal.".to_owned()),
        ExitReason::Interrupted => Some("The command was interrupted.".to_owned()),
        ExitReason::Deleted => Some("The command was stopped: the chat was deleted.".to_owned()),
        ExitReason::Shutdown => {
            Some("The command was stopped: the server is shutting down.".to_owned())
        }
    }
}

#[async_trait::async_trait]
impl Tool for Execute {
    fn name(&self) -> &str {
        EXECUTE_TOOL
    }

    fn description(&self) -> &str {
        "Runs a shell command (bash -c) in the workspace directory and returns its exit \
         code, stdout and stderr (long output is shortened in the middle). The command and \
         every process it starts are killed at the timeout. For servers, watchers and long \
         builds set run_in_background and follow it with process_output."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<ExecuteArgs>()
    }

    fn timeout(&self) -> Duration {
        // The command's own timeout answers first, with its output.
        MAX_COMMAND_TIMEOUT + Duration::from_secs(30)
    }

    async fn run(&self, ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args = match parse_arguments::<ExecuteArgs>(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        if args.command.trim().is_empty() {
            return ToolOutput::error("command is empty.");
        }
        if args.command.contains('\0') {
            return ToolOutput::error("command contains a NUL byte.");
        }
        let ws = &*self.0.workspace;
        if args.run_in_background {
            let timeout = args
                .timeout_seconds
                .map_or(Duration::MAX, |s| Duration::from_secs(s.max(1)));
            let request = CommandRequest {
                command: args.command,
                timeout,
                chat_id: ctx.chat_id(),
            };
            return match ws.start(request).await {
                Ok(info) => {
                    let mut map = Map::new();
                    map.insert("process_id".into(), json!(info.id));
                    map.insert("command".into(), json!(info.command));
                    state_fields(&info, &mut map);
                    ToolOutput::json(&Value::Object(map))
                }
                Err(e) => error_output(&e),
            };
        }
        let timeout = args
            .timeout_seconds
            .map_or(DEFAULT_COMMAND_TIMEOUT, Duration::from_secs)
            .clamp(Duration::from_secs(1), MAX_COMMAND_TIMEOUT);
        let request = CommandRequest {
            command: args.command,
            timeout,
            chat_id: ctx.chat_id(),
        };
        let out = match ws.run(request, ctx.cancel.clone()).await {
            Ok(out) => out,
            Err(e) => return error_output(&e),
        };
        let mut map = Map::new();
        let reason = match out.info.state {
            ProcessState::Exited {
                code,
                signal,
                reason,
            } => {
                map.insert("exit_code".into(), json!(code));
                if let Some(signal) = signal {
                    map.insert("signal".into(), json!(signal));
                }
                reason
            }
            ProcessState::Running => ExitReason::Exited,
        };
        output_fields(&out, &mut map);
        match stop_message(reason, timeout) {
            Some(message) => error_with(message, map),
            None => ToolOutput::json(&Value::Object(map)),
        }
    }
}

/// Arguments naming a background process.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProcessIdArgs {
    /// The process_id execute returned.
    process_id: String,
}

#[derive(Debug)]
struct ProcessOutputTool(Arc<WorkspaceTools>);

#[async_trait::async_trait]
impl Tool for ProcessOutputTool {
    fn name(&self) -> &str {
        PROCESS_OUTPUT_TOOL
    }

    fn description(&self) -> &str {
        "Returns the status and output so far of a background process started with \
         execute (run_in_background)."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<ProcessIdArgs>()
    }

    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args = match parse_arguments::<ProcessIdArgs>(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        match self.0.workspace.process_output(&args.process_id).await {
            Ok(out) => {
                let mut map = Map::new();
                map.insert("process_id".into(), json!(out.info.id));
                map.insert("command".into(), json!(out.info.command));
                state_fields(&out.info, &mut map);
                output_fields(&out, &mut map);
                ToolOutput::json(&Value::Object(map))
            }
            Err(e) => error_output(&e),
        }
    }
}

/// No arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct NoArgs {}

#[derive(Debug)]
struct ProcessList(Arc<WorkspaceTools>);

#[async_trait::async_trait]
impl Tool for ProcessList {
    fn name(&self) -> &str {
        PROCESS_LIST_TOOL
    }

    fn description(&self) -> &str {
        "Lists the workspace's background processes: running ones and recently finished \
         ones, oldest first."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<NoArgs>()
    }

    fn available(&self, turn: &TurnContext) -> bool {
        full_mode(turn)
    }

    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        if let Err(invalid) = parse_arguments::<NoArgs>(&args) {
            return invalid;
        }
        match self.0.workspace.list_processes().await {
            Ok(list) => {
                let processes: Vec<Value> = list
                    .iter()
                    .map(|info| {
                        let mut map = Map::new();
                        map.insert("process_id".into(), json!(info.id));
                        map.insert("command".into(), json!(info.command));
                        state_fields(info, &mut map);
                        map.insert("started_at".into(), json!(info.started_at));
                        if let Some(done) = info.finished_at {
                            map.insert("finished_at".into(), json!(done));
                        }
                        Value::Object(map)
                    })
                    .collect();
                ToolOutput::json(&json!({ "processes": processes }))
            }
            Err(e) => error_output(&e),
        }
    }
}

/// The signals the model may send.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum SignalName {
    /// SIGTERM: ask the process to stop.
    Terminate,
    /// SIGKILL: stop it now.
    Kill,
}

/// Arguments of `process_signal`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProcessSignalArgs {
    /// The process_id execute returned.
    process_id: String,
    /// "terminate" (SIGTERM) or "kill" (SIGKILL); sent to the process and every process
    /// it started.
    signal: SignalName,
}

#[derive(Debug)]
struct ProcessSignalTool(Arc<WorkspaceTools>);

#[async_trait::async_trait]
impl Tool for ProcessSignalTool {
    fn name(&self) -> &str {
        PROCESS_SIGNAL_TOOL
    }

    fn description(&self) -> &str {
        "Stops a background process and every process it started: signal \"terminate\" \
         (SIGTERM, lets it clean up) or \"kill\" (SIGKILL)."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<ProcessSignalArgs>()
    }

    fn available(&self, turn: &TurnContext) -> bool {
        full_mode(turn)
    }

    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args = match parse_arguments::<ProcessSignalArgs>(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        let signal = match args.signal {
            SignalName::Terminate => ProcessSignal::Terminate,
            SignalName::Kill => ProcessSignal::Kill,
        };
        match self
            .0
            .workspace
            .signal_process(&args.process_id, signal)
            .await
        {
            Ok(info) => {
                let mut map = Map::new();
                map.insert("process_id".into(), json!(info.id));
                state_fields(&info, &mut map);
                ToolOutput::json(&Value::Object(map))
            }
            Err(e) => error_output(&e),
        }
    }
}

// ---------------------------------------------------------------------------------------
// attach_file

/// Arguments of `attach_file`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AttachFileArgs {
    /// Path of the file to attach, relative to the workspace directory (or absolute
    /// inside it).
    path: String,
}

#[derive(Debug)]
struct AttachFile(Arc<WorkspaceTools>);

#[async_trait::async_trait]
impl Tool for AttachFile {
    fn name(&self) -> &str {
        ATTACH_FILE_TOOL
    }

    fn description(&self) -> &str {
        "Attaches a file of the workspace to the chat, so the user can open or download it \
         (images, PDF, text, Markdown, CSV or JSON, at most 10 MiB)."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<AttachFileArgs>()
    }

    fn available(&self, turn: &TurnContext) -> bool {
        full_mode(turn)
    }

    async fn run(&self, ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args = match parse_arguments::<AttachFileArgs>(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        let Some(attachments) = &self.0.attachments else {
            return ToolOutput::error("Attaching files is not available here.");
        };
        let ws = &*self.0.workspace;
        let max = u64::try_from(MAX_FILE_BYTES).unwrap_or(u64::MAX);
        let stat = match ws.stat(&args.path).await {
            Ok(s) => s,
            Err(e) => return error_output(&e),
        };
        if stat.kind != FileKind::File {
            return ToolOutput::error(format!("{} is not a regular file.", args.path));
        }
        if stat.size > max {
            return ToolOutput::error(format!(
                "{} is {} bytes; attached files may be at most {max} bytes (10 MiB).",
                args.path, stat.size
            ));
        }
        let data = match ws.read_file(&args.path, 0, max + 1).await {
            Ok(read) => read.data,
            Err(e) => return error_output(&e),
        };
        let media_type = match codersdk::check_upload("application/octet-stream", &data) {
            Ok(t) => t,
            Err(response) => {
                let detail = response
                    .validations
                    .first()
                    .map(|v| v.detail.clone())
                    .or_else(|| Some(response.detail.clone()).filter(|d| !d.is_empty()))
                    .unwrap_or_default();
                return ToolOutput::error(format!(
                    "{} cannot be attached: {} {detail}",
                    args.path, response.message
                ));
            }
        };
        let name = Path::new(&args.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| args.path.clone());
        let file = NewFile {
            owner_id: ctx.owner_id(),
            organization_id: attachments.organization_id,
            name,
            mime_type: media_type.to_owned(),
            data,
        };
        match attachments.store.attach_file(ctx.chat_id(), file).await {
            Ok(meta) => ToolOutput::json(&json!({
                "file_id": meta.id,
                "name": meta.name,
                "media_type": meta.mime_type,
                "size_bytes": meta.size_bytes,
            })),
            Err(e) if e.kind().is_client_error() => ToolOutput::error(e.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "storing an attached file failed");
                ToolOutput::error("The file could not be stored because of an internal error.")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// read_skill and read_skill_file

/// Arguments of `read_skill`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReadSkillArgs {
    /// The skill's name, as the skills index lists it.
    name: String,
}

/// Arguments of `read_skill_file`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReadSkillFileArgs {
    /// The skill's name.
    name: String,
    /// Path of the file inside the skill's directory (relative, no `..`, no hidden
    /// components).
    path: String,
}

impl WorkspaceTools {
    fn skill(&self, name: &str) -> Result<&Skill, ToolOutput> {
        self.skills.iter().find(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.skills.iter().map(|s| s.name.as_str()).collect();
            ToolOutput::error(format!(
                "No skill named {name:?}; the skills are: {}.",
                names.join(", ")
            ))
        })
    }
}

#[derive(Debug)]
struct ReadSkill(Arc<WorkspaceTools>);

#[async_trait::async_trait]
impl Tool for ReadSkill {
    fn name(&self) -> &str {
        READ_SKILL_TOOL
    }

    fn description(&self) -> &str {
        "Loads a skill of the workspace: its instructions (the body of its SKILL.md) and the \
         files in its directory. Load a skill before following it."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<ReadSkillArgs>()
    }

    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args = match parse_arguments::<ReadSkillArgs>(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        let skill = match self.0.skill(&args.name) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let ws = &*self.0.workspace;
        let meta = match super::context::read_skill_meta(ws, &skill.dir).await {
            Ok(m) => m,
            Err(e) => return error_output(&e),
        };
        let files =
            match super::context::list_skill_files(ws, &skill.dir, MAX_SKILL_DIR_ENTRIES).await {
                Ok(f) => f,
                Err(e) => return error_output(&e),
            };
        ToolOutput::json(&json!({
            "name": skill.name,
            "description": skill.description,
            "body": meta.body,
            "files": files,
        }))
    }
}

#[derive(Debug)]
struct ReadSkillFile(Arc<WorkspaceTools>);

#[async_trait::async_trait]
impl Tool for ReadSkillFile {
    fn name(&self) -> &str {
        READ_SKILL_FILE_TOOL
    }

    fn description(&self) -> &str {
        "Reads a supporting file of a skill (a path inside the skill's directory, as \
         read_skill lists it)."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<ReadSkillFileArgs>()
    }

    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        let args = match parse_arguments::<ReadSkillFileArgs>(&args) {
            Ok(a) => a,
            Err(invalid) => return invalid,
        };
        let skill = match self.0.skill(&args.name) {
            Ok(s) => s,
            Err(e) => return e,
        };
        if let Err(message) = super::context::check_skill_file_path(&args.path) {
            return ToolOutput::error(message);
        }
        let ws = &*self.0.workspace;
        let path = format!("{}/{}", skill.dir, args.path);
        let read = match ws.read_file(&path, 0, MAX_SKILL_FILE_BYTES + 1).await {
            Ok(r) => r,
            Err(e) => return error_output(&e),
        };
        if read.size > MAX_SKILL_FILE_BYTES {
            return ToolOutput::error(format!(
                "{} is {} bytes; skill files are read up to {MAX_SKILL_FILE_BYTES} bytes.",
                args.path, read.size
            ));
        }
        match String::from_utf8(read.data) {
            Ok(content) if !content.contains('\0') => ToolOutput::json(&json!({
                "name": skill.name,
                "path": args.path,
                "content": content,
            })),
            _ => ToolOutput::error(format!("{} is not a text file.", args.path)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn json_budgets_count_escapes() {
        assert_eq!(json_len_str("a\"\n\u{1b}é"), 1 + 2 + 2 + 6 + 2);
        assert_eq!(prefix_within("abcdef", 3), "abc");
        assert_eq!(suffix_within("abcdef", 3), "def");
        assert_eq!(prefix_within("\n\n\n", 5), "\n\n");
        assert_eq!(suffix_within("ééé", 5), "éé");
    }

    #[test]
    fn output_is_shortened_in_the_middle_and_binary_is_replaced() {
        let small = CapturedOutput::complete(b"hello\n".to_vec());
        assert_eq!(render_output(&small, 100), "hello\n");
        let big = CapturedOutput {
            head: b"BEGIN".repeat(100),
            tail: b"END".repeat(100),
            total_bytes: 10_000,
        };
        let shown = render_output(&big, 400);
        assert!(shown.starts_with("BEGIN"), "{shown}");
        assert!(shown.ends_with("END"), "{shown}");
        assert!(shown.contains("bytes of output omitted"), "{shown}");
        assert!(json_len_str(&shown) <= 400, "{}", shown.len());
        // Complete but over budget: the same shape.
        let long = CapturedOutput::complete(b"x".repeat(1000));
        let shown = render_output(&long, 200);
        assert!(json_len_str(&shown) <= 200);
        assert!(shown.contains("omitted"));
        let binary = CapturedOutput::complete(vec![0x7f, 0x45, 0x4c, 0x46, 0, 1, 2]);
        assert_eq!(
            render_output(&binary, 100),
            "[binary output: 7 bytes not shown]"
        );
        let invalid = CapturedOutput::complete(vec![b'a', 0xff, b'b']);
        assert!(render_output(&invalid, 100).starts_with("[binary output"));
        // A character cut by the ring buffer is not binary.
        let cut = CapturedOutput {
            head: "aé".as_bytes()[..2].to_vec(),
            tail: "éz".as_bytes()[1..].to_vec(),
            total_bytes: 50,
        };
        assert!(!render_output(&cut, 100).starts_with("[binary"));
    }

    #[test]
    fn edits_apply_in_order_and_refuse_missing_or_ambiguous_text() {
        let file = FileEdits {
            path: "a.txt".into(),
            edits: vec![
                Edit {
                    search: "one".into(),
                    replace: "two".into(),
                    replace_all: false,
                },
                Edit {
                    search: "two".into(),
                    replace: "three".into(),
                    replace_all: true,
                },
            ],
        };
        assert_eq!(
            apply_edits(&file, 0, "one two".into()).unwrap(),
            ("three three".into(), 3)
        );
        let err = apply_edits(&file, 2, "nothing".into()).unwrap_err();
        assert!(err.starts_with("files[2].edits[0] (a.txt)"), "{err}");
        assert!(err.contains("not found"), "{err}");
        let twice = FileEdits {
            path: "b".into(),
            edits: vec![Edit {
                search: "x".into(),
                replace: "y".into(),
                replace_all: false,
            }],
        };
        let err = apply_edits(&twice, 0, "x x".into()).unwrap_err();
        assert!(err.contains("occurs 2 times"), "{err}");
    }

    #[test]
    fn modes_decide_which_tools_exist() {
        let root = TurnContext::new(Uuid::new_v4(), Uuid::new_v4());
        let sub = root.clone().with_parent_chat(Uuid::new_v4());
        let plan_root = root.clone().with_plan_mode(true);
        let plan_sub = sub.clone().with_plan_mode(true);
        let explore = sub.clone().with_explore(true);
        assert!(writes_allowed(&root) && writes_allowed(&sub) && writes_allowed(&plan_root));
        assert!(!writes_allowed(&plan_sub) && !writes_allowed(&explore));
        assert!(full_mode(&root) && full_mode(&sub));
        assert!(!full_mode(&plan_root) && !full_mode(&plan_sub) && !full_mode(&explore));
    }
}
