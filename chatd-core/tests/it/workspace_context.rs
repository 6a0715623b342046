//! Instruction files and skills on a real workspace: discovery rules, caps at their edges,
//! and the skill tools' path rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatd_core::tools::{Tool, ToolContext, TurnContext};
use chatd_core::workspace::context::{
    discover, prompt_blocks, skills_from_parts, MAX_CONTEXT_FILE_BYTES, MAX_SKILLS,
};
use chatd_core::workspace::tools::{WorkspaceTools, MAX_SKILL_FILE_BYTES};
use chatd_core::workspace::{
    LocalWorkspaceConfig, LocalWorkspaceProvider, Workspace, WorkspaceChat, WorkspaceProvider,
};
use codersdk::{ChatMessagePartType, RawJson, Uuid};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn workspace() -> (TempDir, Arc<dyn Workspace>, PathBuf) {
    let tmp = TempDir(std::env::temp_dir().join(format!("chatd-wsc-test-{}", Uuid::new_v4())));
    let provider = LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&tmp.0)).unwrap();
    let ws = provider
        .workspace(&WorkspaceChat::new(Uuid::new_v4(), Uuid::new_v4()))
        .await
        .unwrap();
    let dir = PathBuf::from(ws.working_directory());
    (tmp, ws, dir)
}

fn skill(dir: &Path, folder: &str, meta: &str) {
    let path = dir.join(".agents/skills").join(folder);
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("SKILL.md"), meta).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_follow_the_frontmatter_rules() {
    let (_tmp, ws, dir) = workspace().await;
    skill(
        &dir,
        "deploy",
        "<!-- note -->\n---\nname: deploy\ndescription: Ship to production\nsecond line\n---\nSteps.",
    );
    skill(&dir, "no-front", "# just text");
    skill(&dir, "Upper", "---\nname: Upper\n---\n");
    skill(&dir, "mismatch", "---\nname: other\n---\n");
    skill(&dir, "no-name", "---\ndescription: nameless\n---\n");
    std::fs::create_dir_all(dir.join(".agents/skills/empty-dir")).unwrap();
    std::fs::write(dir.join(".agents/skills/loose-file.md"), "x").unwrap();
    let parts = discover(&*ws).await;
    let skills = skills_from_parts(&parts);
    assert_eq!(skills.len(), 1, "{skills:?}");
    assert_eq!(skills[0].name, "deploy");
    assert_eq!(skills[0].description, "Ship to production");
    assert_eq!(skills[0].dir, ".agents/skills/deploy");
    assert!(parts
        .iter()
        .all(|p| p.part_type == ChatMessagePartType::Skill));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_skills_are_indexed() {
    let (_tmp, ws, dir) = workspace().await;
    for i in 0..=MAX_SKILLS {
        let name = format!("s{i:03}");
        skill(
            &dir,
            &name,
            &format!("---\nname: {name}\ndescription: d\n---\n"),
        );
    }
    let skills = skills_from_parts(&discover(&*ws).await);
    assert_eq!(skills.len(), MAX_SKILLS);
    assert_eq!(skills[0].name, "s000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_md_is_capped_at_64_kib_and_marked_truncated() {
    let (_tmp, ws, dir) = workspace().await;
    let cap = usize::try_from(MAX_CONTEXT_FILE_BYTES).unwrap();
    std::fs::write(dir.join("AGENTS.md"), "a".repeat(cap)).unwrap();
    let parts = discover(&*ws).await;
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].context_file_content.len(), cap);
    assert!(!parts[0].context_file_truncated);
    assert_eq!(
        parts[0].context_file_path,
        format!("{}/AGENTS.md", ws.working_directory())
    );
    std::fs::write(dir.join("AGENTS.md"), "a".repeat(cap + 1)).unwrap();
    let parts = discover(&*ws).await;
    assert_eq!(parts[0].context_file_content.len(), cap);
    assert!(parts[0].context_file_truncated);
    let blocks = prompt_blocks(&parts);
    assert!(blocks[0].contains("truncated=\"true\""));
    // An empty file adds nothing; no file, nothing.
    std::fs::write(dir.join("AGENTS.md"), "\n\n").unwrap();
    assert!(discover(&*ws).await.is_empty());
    std::fs::remove_file(dir.join("AGENTS.md")).unwrap();
    assert!(discover(&*ws).await.is_empty());
}

async fn call(tools: &[Arc<dyn Tool>], name: &str, args: Value) -> (Value, bool) {
    let tool = tools.iter().find(|t| t.name() == name).unwrap();
    let turn = Arc::new(TurnContext::new(Uuid::new_v4(), Uuid::new_v4()));
    let out = tool
        .run(
            ToolContext::new(turn, "c", CancellationToken::new()),
            RawJson::from_value(&args).unwrap(),
        )
        .await;
    (out.result.to_value(), out.is_error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skill_tools_read_the_skill_and_refuse_paths_outside_it() {
    let (_tmp, ws, dir) = workspace().await;
    skill(
        &dir,
        "release",
        "---\nname: release\ndescription: Cut a release\n---\n1. Tag.\n",
    );
    let root = dir.join(".agents/skills/release");
    std::fs::create_dir_all(root.join("scripts")).unwrap();
    std::fs::write(root.join("scripts/tag.sh"), "git tag v1\n").unwrap();
    std::fs::write(root.join(".secret"), "hidden").unwrap();
    std::fs::write(dir.join("outside.txt"), "not the skill's").unwrap();
    let cap = usize::try_from(MAX_SKILL_FILE_BYTES).unwrap();
    std::fs::write(root.join("at-cap.txt"), "b".repeat(cap)).unwrap();
    std::fs::write(root.join("over-cap.txt"), "b".repeat(cap + 1)).unwrap();
    let skills = skills_from_parts(&discover(&*ws).await);
    // Without skills there are no skill tools.
    let plain = WorkspaceTools::new(Arc::clone(&ws)).tools();
    assert!(plain.iter().all(|t| t.name() != "read_skill"));
    let tools = WorkspaceTools::new(Arc::clone(&ws))
        .with_skills(skills)
        .tools();

    let (out, is_error) = call(&tools, "read_skill", json!({"name": "release"})).await;
    assert!(!is_error, "{out}");
    assert_eq!(out["body"], "1. Tag.");
    assert_eq!(
        out["files"],
        json!([
            "SKILL.md",
            "at-cap.txt",
            "over-cap.txt",
            "scripts/",
            "scripts/tag.sh"
        ])
    );
    let (out, is_error) = call(&tools, "read_skill", json!({"name": "nope"})).await;
    assert!(is_error);
    assert!(out["error"].as_str().unwrap().contains("release"), "{out}");

    let (out, is_error) = call(
        &tools,
        "read_skill_file",
        json!({"name": "release", "path": "scripts/tag.sh"}),
    )
    .await;
    assert!(!is_error, "{out}");
    assert_eq!(out["content"], "git tag v1\n");
    let (_, is_error) = call(
        &tools,
        "read_skill_file",
        json!({"name": "release", "path": "at-cap.txt"}),
    )
    .await;
    assert!(!is_error);
    let (out, is_error) = call(
        &tools,
        "read_skill_file",
        json!({"name": "release", "path": "over-cap.txt"}),
    )
    .await;
    assert!(is_error);
    assert!(out["error"].as_str().unwrap().contains("up to"), "{out}");
    for bad in [
        "",
        "/etc/passwd",
        "../../../outside.txt",
        "scripts/../../x",
        ".secret",
    ] {
        let (out, is_error) = call(
            &tools,
            "read_skill_file",
            json!({"name": "release", "path": bad}),
        )
        .await;
        assert!(is_error, "{bad:?}: {out}");
    }
}
