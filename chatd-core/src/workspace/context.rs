//! Instruction files and skills of a workspace: found on the
//! first turn with a workspace, persisted once as `context-file` and `skill` parts, and
//! turned into system prompt blocks on every turn from those parts.

use std::time::Duration;

use codersdk::{ChatMessagePart, ChatMessagePartType};

use super::{FileKind, Workspace, WorkspaceError, WorkspaceErrorKind, WorkspaceResult};

/// The instruction file read from the workspace directory (and the home directory).
pub const CONTEXT_FILE_NAME: &str = "AGENTS.md";

/// Bytes of an instruction file kept (64 KiB); the part says when the file
/// was longer (`context_file_truncated`).
pub const MAX_CONTEXT_FILE_BYTES: u64 = 64 * 1024;

/// Where skills live, relative to the workspace directory.
pub const SKILLS_DIR: &str = ".agents/skills";

/// The meta file of a skill.
pub const SKILL_META_FILE: &str = "SKILL.md";

/// Bytes of a skill's meta file read (64 KB); longer files are cut.
pub const MAX_SKILL_META_BYTES: u64 = 64 * 1024;

/// Most skills discovered in a workspace (in name order); more are ignored.
pub const MAX_SKILLS: usize = 64;

/// Longest skill description kept, in characters (the index shows one line per skill).
pub const MAX_SKILL_DESCRIPTION_CHARS: usize = 500;

/// How long finding the instruction files and skills may take (the home
/// lookup's 5 s); a slow workspace then gets what was found in time.
pub const CONTEXT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The tag of the instruction-files block of the system prompt.
pub const INSTRUCTIONS_TAG: &str = "workspace-instructions";

/// The tag of the skills index of the system prompt.
pub const SKILLS_TAG: &str = "available-skills";

/// What the model is told when the chat has no workspace.
pub const NO_WORKSPACE_PROMPT: &str = "\
No workspace is available in this chat: there are no tools to read or write files or to \
run commands. If the user asks for that, say plainly that it is not possible here instead \
of pretending.";

/// A skill as the index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    /// The skill's name (kebab-case, equal to its directory's name).
    pub name: String,
    /// Its one-line summary.
    pub description: String,
    /// Its directory, relative to the workspace directory.
    pub dir: String,
}

/// A skill's meta file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillMeta {
    /// `name` of the frontmatter.
    pub name: String,
    /// `description` of the frontmatter.
    pub description: String,
    /// The markdown after the frontmatter.
    pub body: String,
}

/// The system block that tells the model about its workspace.
pub fn workspace_prompt(working_directory: &str) -> String {
    format!(
        "You have a workspace: the directory {working_directory} on a machine you can act \
         on. Read and change files with read_file, write_file and edit_files (paths relative \
         to that directory), and run shell commands there with execute (bash). Commands \
         started with run_in_background keep running between turns until they exit or are \
         stopped; check them with process_output."
    )
}

/// The system block for a turn whose workspace could not be opened.
pub fn workspace_unavailable_prompt(error: &str) -> String {
    format!(
        "The chat's workspace could not be opened in this turn ({error}), so there are no \
         tools to read or write files or to run commands. Tell the user if they ask for that."
    )
}

/// Text without HTML comments (`<!-- … -->`); an unterminated comment runs to the end.
fn strip_html_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(rest.get(..start).unwrap_or_default());
        match rest.get(start + 4..).and_then(|after| after.find("-->")) {
            Some(end) => rest = rest.get(start + 4 + end + 3..).unwrap_or_default(),
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Whether `name` is kebab-case: lowercase letters and digits in groups joined by single
/// hyphens.
pub fn is_kebab_case(name: &str) -> bool {
    !name.is_empty()
        && name.split('-').all(|group| {
            !group.is_empty()
                && group
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Parses a skill's meta file: HTML comments stripped, the frontmatter between leading
/// `---` lines as simple `key: value` lines (quotes around values removed), the rest as
/// the body. `None` without frontmatter.
pub fn parse_skill_meta(text: &str) -> Option<SkillMeta> {
    let text = strip_html_comments(text.trim_start_matches('\u{feff}'));
    let mut lines = text.trim_start().lines();
    if lines.next()?.trim_end() != "---" {
        return None;
    }
    let mut name = String::new();
    let mut description = String::new();
    let mut closed = false;
    for line in lines.by_ref() {
        if line.trim_end() == "---" {
            closed = true;
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        match key.trim() {
            "name" => name = value.to_owned(),
            "description" => description = value.to_owned(),
            _ => {}
        }
    }
    if !closed {
        return None;
    }
    let body = lines.collect::<Vec<_>>().join("\n").trim().to_owned();
    Some(SkillMeta {
        name,
        description,
        body,
    })
}

/// Reads and parses the meta file of the skill in `dir` (relative to the workspace).
pub async fn read_skill_meta(ws: &dyn Workspace, dir: &str) -> WorkspaceResult<SkillMeta> {
    let path = format!("{dir}/{SKILL_META_FILE}");
    let read = ws.read_file(&path, 0, MAX_SKILL_META_BYTES).await?;
    let text = String::from_utf8_lossy(&read.data);
    parse_skill_meta(&text).ok_or_else(|| {
        WorkspaceError::new(
            WorkspaceErrorKind::InvalidPath,
            format!("{path} has no frontmatter (a block between --- lines)."),
        )
    })
}

/// The files of a skill directory, recursively, as paths relative to it (directories end
/// in `/`; hidden entries are left out), at most `limit`.
pub async fn list_skill_files(
    ws: &dyn Workspace,
    dir: &str,
    limit: usize,
) -> WorkspaceResult<Vec<String>> {
    let mut out = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(sub) = pending.pop() {
        let path = if sub.is_empty() {
            dir.to_owned()
        } else {
            format!("{dir}/{sub}")
        };
        let listing = ws.list_directory(&path, limit).await?;
        for entry in listing.entries {
            if entry.name.starts_with('.') {
                continue;
            }
            if out.len() >= limit {
                return Ok(out);
            }
            let relative = if sub.is_empty() {
                entry.name.clone()
            } else {
                format!("{sub}/{}", entry.name)
            };
            if entry.kind == FileKind::Directory {
                out.push(format!("{relative}/"));
                pending.push(relative);
            } else {
                out.push(relative);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The path rules of `read_skill_file`: not empty, not absolute, no `..`
/// component, no hidden (dot-prefixed) component.
pub fn check_skill_file_path(path: &str) -> Result<(), String> {
    if path.trim().is_empty() {
        return Err("path is empty; name a file inside the skill's directory.".to_owned());
    }
    if path.contains('\0') {
        return Err("path contains a NUL byte.".to_owned());
    }
    if path.starts_with('/') || path.starts_with('\\') {
        return Err(format!(
            "{path}: absolute paths are not allowed; give a path inside the skill's directory."
        ));
    }
    for component in path.split(['/', '\\']) {
        if component == ".." {
            return Err(format!("{path}: `..` is not allowed in skill file paths."));
        }
        if component.starts_with('.') && component != "." {
            return Err(format!(
                "{path}: hidden files and directories are not readable."
            ));
        }
    }
    Ok(())
}

/// The instruction files and skills of `ws` as the parts to persist: one `context-file`
/// part per `AGENTS.md` found (home directory first, then the workspace directory), then
/// one `skill` part per valid skill. Whatever is not found in
/// [`CONTEXT_LOOKUP_TIMEOUT`] is left out.
pub async fn discover(ws: &dyn Workspace) -> Vec<ChatMessagePart> {
    let mut parts = Vec::new();
    let work = async {
        let working = ws.working_directory().trim_end_matches('/').to_owned();
        let mut places = Vec::new();
        if let Some(home) = ws.home_directory() {
            let home = home.trim_end_matches('/');
            if home != working {
                places.push(format!("{home}/{CONTEXT_FILE_NAME}"));
            }
        }
        places.push(format!("{working}/{CONTEXT_FILE_NAME}"));
        for path in places {
            if let Some(part) = context_file_part(ws, &path).await {
                parts.push(part);
            }
        }
        for skill in discover_skills(ws).await {
            let mut part = ChatMessagePart::new(ChatMessagePartType::Skill);
            part.skill_name = skill.name;
            part.skill_description = skill.description;
            part.skill_dir = skill.dir;
            part.context_file_skill_meta_file = SKILL_META_FILE.to_owned();
            parts.push(part);
        }
    };
    if tokio::time::timeout(CONTEXT_LOOKUP_TIMEOUT, work)
        .await
        .is_err()
    {
        tracing::warn!(
            workspace_id = %ws.id(),
            "finding instruction files and skills took too long; using what was found"
        );
    }
    parts
}

async fn context_file_part(ws: &dyn Workspace, path: &str) -> Option<ChatMessagePart> {
    match ws.stat(path).await {
        Ok(stat) if stat.kind == FileKind::File => {}
        _ => return None,
    }
    let read = ws.read_file(path, 0, MAX_CONTEXT_FILE_BYTES).await.ok()?;
    let truncated = read.size > MAX_CONTEXT_FILE_BYTES;
    let mut data = read.data;
    // The cut may split the last character: drop its first bytes rather than show a
    // replacement character.
    if let Err(e) = std::str::from_utf8(&data) {
        if truncated && e.error_len().is_none() {
            data.truncate(e.valid_up_to());
        }
    }
    let content = String::from_utf8_lossy(&data).into_owned();
    if content.trim().is_empty() {
        return None;
    }
    let mut part = ChatMessagePart::new(ChatMessagePartType::ContextFile);
    part.context_file_path = path.to_owned();
    part.context_file_content = content;
    part.context_file_truncated = truncated;
    part.context_file_directory = ws.working_directory().to_owned();
    Some(part)
}

/// The valid skills under [`SKILLS_DIR`], in name order, at most [`MAX_SKILLS`]. A
/// directory without a meta file, without frontmatter, or whose `name` is missing, not
/// kebab-case or not the directory's name is skipped (with a log line); the first
/// occurrence of a name wins.
pub async fn discover_skills(ws: &dyn Workspace) -> Vec<Skill> {
    let Ok(listing) = ws
        .list_directory(SKILLS_DIR, MAX_SKILLS.saturating_mul(4))
        .await
    else {
        return Vec::new();
    };
    let mut skills: Vec<Skill> = Vec::new();
    for entry in listing.entries {
        if skills.len() >= MAX_SKILLS {
            break;
        }
        let dir = format!("{SKILLS_DIR}/{}", entry.name);
        let is_dir = match entry.kind {
            FileKind::Directory => true,
            FileKind::Symlink => ws
                .stat(&dir)
                .await
                .is_ok_and(|s| s.kind == FileKind::Directory),
            _ => false,
        };
        if !is_dir || entry.name.starts_with('.') {
            continue;
        }
        let meta = match read_skill_meta(ws, &dir).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == WorkspaceErrorKind::NotFound => continue,
            Err(e) => {
                tracing::info!(skill = %entry.name, error = %e, "skill skipped");
                continue;
            }
        };
        if meta.name != entry.name || !is_kebab_case(&meta.name) {
            tracing::info!(
                skill = %entry.name,
                name = %meta.name,
                "skill skipped: its name must be kebab-case and equal its directory's name"
            );
            continue;
        }
        if skills.iter().any(|s| s.name == meta.name) {
            continue;
        }
        let line = meta.description.lines().next().unwrap_or_default().trim();
        let description: String = line.chars().take(MAX_SKILL_DESCRIPTION_CHARS).collect();
        skills.push(Skill {
            name: meta.name,
            description,
            dir,
        });
    }
    skills
}

/// The skills recorded in persisted parts.
pub fn skills_from_parts(parts: &[ChatMessagePart]) -> Vec<Skill> {
    parts
        .iter()
        .filter(|p| p.part_type == ChatMessagePartType::Skill && !p.skill_name.is_empty())
        .map(|p| Skill {
            name: p.skill_name.clone(),
            description: p.skill_description.clone(),
            dir: if p.skill_dir.is_empty() {
                format!("{SKILLS_DIR}/{}", p.skill_name)
            } else {
                p.skill_dir.clone()
            },
        })
        .collect()
}

/// The system blocks re-derived from persisted parts: the instruction files (when any),
/// then the skills index (when any), in the order the system prompt places them after the
/// base prompt.
pub fn prompt_blocks(parts: &[ChatMessagePart]) -> Vec<String> {
    let mut blocks = Vec::new();
    let files: Vec<&ChatMessagePart> = parts
        .iter()
        .filter(|p| p.part_type == ChatMessagePartType::ContextFile)
        .filter(|p| !p.context_file_content.trim().is_empty())
        .collect();
    if !files.is_empty() {
        let mut block = format!(
            "<{INSTRUCTIONS_TAG}>\nInstruction files of the workspace. Follow them unless \
             the user says otherwise.\n"
        );
        for file in files {
            block.push_str(&format!(
                "\n<file path=\"{}\"{}>\n{}\n</file>\n",
                file.context_file_path,
                if file.context_file_truncated {
                    " truncated=\"true\""
                } else {
                    ""
                },
                file.context_file_content.trim_end()
            ));
        }
        block.push_str(&format!("</{INSTRUCTIONS_TAG}>"));
        blocks.push(block);
    }
    let skills = skills_from_parts(parts);
    if !skills.is_empty() {
        let mut block = format!(
            "<{SKILLS_TAG}>\nSkills are instructions for particular tasks. Before following \
             a skill, load it with read_skill; read its supporting files with \
             read_skill_file.\n"
        );
        for skill in skills {
            block.push_str(&format!("- {}: {}\n", skill.name, skill.description));
        }
        block.push_str(&format!("</{SKILLS_TAG}>"));
        blocks.push(block);
    }
    blocks
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn kebab_case_names() {
        for ok in ["a", "pdf", "make-release", "v2-notes", "a1-b2-c3"] {
            assert!(is_kebab_case(ok), "{ok}");
        }
        for bad in ["", "A", "a_b", "a--b", "-a", "a-", "a b", "ä", "a.b"] {
            assert!(!is_kebab_case(bad), "{bad}");
        }
    }

    #[test]
    fn frontmatter_comments_and_body() {
        let meta = parse_skill_meta(
            "<!-- generated -->\n---\nname: make-release\ndescription: \"Cut a release\"\n\
             other: x\n---\n\n# Steps\n<!-- hidden\nnote -->1. tag\n",
        )
        .unwrap();
        assert_eq!(meta.name, "make-release");
        assert_eq!(meta.description, "Cut a release");
        assert_eq!(meta.body, "# Steps\n1. tag");
        assert_eq!(parse_skill_meta("# no frontmatter"), None);
        assert_eq!(parse_skill_meta("---\nname: x\n"), None);
    }

    #[test]
    fn skill_file_paths() {
        assert!(check_skill_file_path("scripts/run.sh").is_ok());
        assert!(check_skill_file_path("./notes.md").is_ok());
        for bad in [
            "",
            " ",
            "/etc/passwd",
            "../x",
            "a/../../x",
            ".env",
            "a/.git/config",
            "a\0b",
        ] {
            assert!(check_skill_file_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn blocks_from_parts() {
        let mut file = ChatMessagePart::new(ChatMessagePartType::ContextFile);
        file.context_file_path = "/w/AGENTS.md".into();
        file.context_file_content = "Use tabs.\n".into();
        let mut skill = ChatMessagePart::new(ChatMessagePartType::Skill);
        skill.skill_name = "deploy".into();
        skill.skill_description = "Ship it".into();
        let blocks = prompt_blocks(&[file, skill]);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[0].starts_with("<workspace-instructions>"));
        assert!(blocks[0].contains("<file path=\"/w/AGENTS.md\">\nUse tabs.\n</file>"));
        assert!(blocks[1].starts_with("<available-skills>"));
        assert!(blocks[1].contains("read_skill"));
        assert!(blocks[1].contains("- deploy: Ship it\n</available-skills>"));
        assert!(prompt_blocks(&[]).is_empty());
    }
}
