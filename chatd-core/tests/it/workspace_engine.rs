//! Workspaces through the engine, on both backends: binding, the tools and prompt of a
//! turn, instruction files and skills injected once and re-derived later, the no-workspace
//! prompt, and processes stopped by interrupt and archive.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::MessageVisibility;
use chatd_core::workspace::context::NO_WORKSPACE_PROMPT;
use chatd_core::workspace::{
    ChatRelease, LocalWorkspaceConfig, LocalWorkspaceProvider, Workspace, WorkspaceChat,
    WorkspaceProvider, WorkspaceResult,
};
use chatd_core::{Actor, EngineConfig};
use chatd_test_support::db::{fixture, on_each_backend};
use chatd_test_support::scripted::{
    create_request, engine_with_config, fast_settings, wait_status, Reply, ScriptedModel,
};
use codersdk::{
    ChatInputPart, ChatMessagePartType, ChatMessageRole, ChatStatus, CreateChatMessageRequest,
    MessagePage, UpdateChatRequest, Uuid,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("chatd-wse-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The local provider, with an `AGENTS.md` and one skill put into every new workspace.
#[derive(Debug)]
struct Seeded(LocalWorkspaceProvider);

#[async_trait::async_trait]
impl WorkspaceProvider for Seeded {
    async fn workspace(&self, chat: &WorkspaceChat) -> WorkspaceResult<Arc<dyn Workspace>> {
        let ws = self.0.workspace(chat).await?;
        if chat.workspace_id.is_none() {
            let dir = PathBuf::from(ws.working_directory());
            std::fs::write(dir.join("AGENTS.md"), "Always answer in haiku.\n").unwrap();
            let skill = dir.join(".agents/skills/make-tea");
            std::fs::create_dir_all(&skill).unwrap();
            std::fs::write(
                skill.join("SKILL.md"),
                "---\nname: make-tea\ndescription: Brew a pot of tea\n---\nBoil water.\n",
            )
            .unwrap();
            std::fs::write(skill.join("recipe.txt"), "green, 80C\n").unwrap();
            // Skipped: the name is not the directory's.
            let bad = dir.join(".agents/skills/other");
            std::fs::create_dir_all(&bad).unwrap();
            std::fs::write(bad.join("SKILL.md"), "---\nname: nope\n---\n").unwrap();
        }
        Ok(ws)
    }

    async fn release(&self, chat_id: Uuid, event: ChatRelease) {
        self.0.release(chat_id, event).await;
    }

    async fn shutdown(&self) {
        self.0.shutdown().await;
    }
}

fn all() -> MessagePage {
    MessagePage {
        before_id: None,
        after_id: Some(0),
        limit: 200,
        ascending: true,
    }
}

fn text_message(text: &str) -> CreateChatMessageRequest {
    CreateChatMessageRequest {
        content: vec![ChatInputPart::text(text)],
        ..Default::default()
    }
}

fn call(id: &str, name: &str, args: serde_json::Value) -> Reply {
    Reply::ToolCalls(vec![(id.into(), name.into(), args.to_string())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_binds_the_workspace_injects_context_once_and_uses_the_tools() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let tmp = TempDir::new();
        let local = LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&tmp.0)).unwrap();
        let provider = Arc::new(Seeded(local.clone()));
        let model = ScriptedModel::new([
            call(
                "c1",
                "write_file",
                serde_json::json!({"path": "notes/a.txt", "content": "one\n"}),
            ),
            call("c2", "read_skill", serde_json::json!({"name": "make-tea"})),
            Reply::Text("done".into()),
        ]);
        let engine =
            engine_with_config(&store, model.clone(), fast_settings(), |c: EngineConfig| {
                c.with_generated_titles(false)
                    .with_workspaces(provider.clone())
            })
            .await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "write a note"))
            .await
            .unwrap();
        assert_eq!(chat.workspace_id, None);
        let chat = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let workspace_id = chat.workspace_id.expect("bound on the first turn");
        let dir = local.workspace_dir(workspace_id);
        assert_eq!(
            std::fs::read_to_string(dir.join("notes/a.txt")).unwrap(),
            "one\n"
        );
        // What was injected, as clients see it: the parts without their content.
        let kinds: Vec<_> = chat
            .last_injected_context
            .iter()
            .map(|p| p.part_type.clone())
            .collect();
        assert_eq!(
            kinds,
            [ChatMessagePartType::ContextFile, ChatMessagePartType::Skill]
        );
        assert!(chat.last_injected_context[0]
            .context_file_content
            .is_empty());
        assert_eq!(chat.last_injected_context[1].skill_name, "make-tea");

        let requests = model.requests.lock().unwrap().clone();
        let first = &requests[0];
        let system = first.system.join("\n\n");
        assert!(system.contains(dir.to_str().unwrap()), "{system}");
        assert!(system.contains("Always answer in haiku."), "{system}");
        assert!(system.contains("- make-tea: Brew a pot of tea"), "{system}");
        assert!(!system.contains(NO_WORKSPACE_PROMPT));
        let tools: Vec<&str> = first.tools.iter().map(|t| t.name.as_str()).collect();
        for name in [
            "read_file",
            "write_file",
            "edit_files",
            "execute",
            "process_output",
            "process_list",
            "process_signal",
            "attach_file",
            "read_skill",
            "read_skill_file",
        ] {
            assert!(tools.contains(&name), "{name} missing from {tools:?}");
        }
        // The skill loaded through the tool.
        let page = engine.list_messages(&actor, chat.id, &all()).await.unwrap();
        let skill_result = page
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .find(|p| p.tool_name == "read_skill" && p.result.is_some())
            .unwrap();
        let result = skill_result.result.as_ref().unwrap().to_value();
        assert_eq!(result["body"], "Boil water.");
        assert_eq!(
            result["files"],
            serde_json::json!(["SKILL.md", "recipe.txt"])
        );
        // The injected message: user role, shown to the user only (the model reads the
        // files in the system prompt).
        let injected: Vec<_> = page
            .messages
            .iter()
            .filter(|m| {
                m.content
                    .iter()
                    .any(|p| p.part_type == ChatMessagePartType::ContextFile)
            })
            .collect();
        assert_eq!(injected.len(), 1);
        assert_eq!(injected[0].role, ChatMessageRole::User);
        let stored = store.injected_context(chat.id).await.unwrap().unwrap();
        assert_eq!(stored[0].context_file_content, "Always answer in haiku.\n");
        let visibility: String = sqlx_visibility(&store, injected[0].id).await;
        assert_eq!(visibility, MessageVisibility::User.as_str());

        // The second turn re-derives the prompt from the parts: a changed AGENTS.md is not
        // re-read, and nothing is injected again.
        std::fs::write(dir.join("AGENTS.md"), "Answer in prose.\n").unwrap();
        model.push(Reply::Text("again".into()));
        engine
            .send_message(&actor, chat.id, text_message("once more"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let last = model.requests.lock().unwrap().last().unwrap().clone();
        let system = last.system.join("\n\n");
        assert!(system.contains("Always answer in haiku."), "{system}");
        assert!(!system.contains("Answer in prose."), "{system}");
        let page = engine.list_messages(&actor, chat.id, &all()).await.unwrap();
        let injected = page
            .messages
            .iter()
            .filter(|m| {
                m.content
                    .iter()
                    .any(|p| p.part_type == ChatMessagePartType::ContextFile)
            })
            .count();
        assert_eq!(injected, 1);
        let chat = engine.get_chat(&actor, chat.id).await.unwrap();
        assert_eq!(chat.workspace_id, Some(workspace_id));
        engine.shutdown().await;
    })
    .await;
}

async fn sqlx_visibility(store: &chatd_core::store::Store, message_id: i64) -> String {
    use chatd_test_support::db::RawSql;
    use sqlx::Row;
    sqlx::query("SELECT visibility FROM chat_messages WHERE id = $1")
        .bind(message_id)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get("visibility")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_there_are_no_workspace_tools_and_the_prompt_says_so() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([Reply::Text("ok".into())]);
        let engine =
            engine_with_config(&store, model.clone(), fast_settings(), |c: EngineConfig| {
                c.with_generated_titles(false)
                    .with_no_workspace_notice(true)
            })
            .await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "list my files"))
            .await
            .unwrap();
        let chat = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert_eq!(chat.workspace_id, None);
        assert!(chat.last_injected_context.is_empty());
        let request = model.requests.lock().unwrap()[0].clone();
        assert!(request.system.iter().any(|b| b == NO_WORKSPACE_PROMPT));
        assert!(request.tools.iter().all(|t| t.name != "read_file"));
        engine.shutdown().await;
        // An embedder without workspaces (and without the notice) gets no such block: it
        // may give the model file tools of its own.
        let model = ScriptedModel::new([Reply::Text("ok".into())]);
        let engine =
            engine_with_config(&store, model.clone(), fast_settings(), |c: EngineConfig| {
                c.with_generated_titles(false)
            })
            .await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "hello"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let request = model.requests.lock().unwrap()[0].clone();
        assert!(request.system.iter().all(|b| b != NO_WORKSPACE_PROMPT));
        engine.shutdown().await;
    })
    .await;
}

/// Whether any process's command line contains `marker`.
fn alive(marker: &str) -> bool {
    chatd_test_support::process::process_alive_with(marker)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_and_archive_stop_the_chats_background_processes() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let tmp = TempDir::new();
        let local = LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&tmp.0)).unwrap();
        let pid = std::process::id();
        let first = format!("sleep 7{pid}.1");
        let second = format!("sleep 7{pid}.2");
        let model = ScriptedModel::new([
            call(
                "c1",
                "execute",
                serde_json::json!({"command": first, "run_in_background": true}),
            ),
            Reply::Text("started".into()),
        ]);
        let engine =
            engine_with_config(&store, model.clone(), fast_settings(), |c: EngineConfig| {
                c.with_generated_titles(false)
                    .with_workspaces(Arc::new(local.clone()))
            })
            .await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "start a server"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(alive(&first), "the background process runs after the turn");
        engine.interrupt(&actor, chat.id).await.unwrap();
        eventually("interrupt stops it", || !alive(&first)).await;

        model.push(call(
            "c2",
            "execute",
            serde_json::json!({"command": second, "run_in_background": true}),
        ));
        model.push(Reply::Text("started again".into()));
        engine
            .send_message(&actor, chat.id, text_message("again"))
            .await
            .unwrap();
        eventually("the second process starts", || alive(&second)).await;
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        engine
            .update_chat(
                &actor,
                chat.id,
                UpdateChatRequest {
                    archived: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        eventually("archiving stops it", || !alive(&second)).await;
        engine.shutdown().await;
    })
    .await;
}
