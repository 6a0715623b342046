//! Plan mode (docs/plan-mode.md), on both backends: a root plan turn end to end through
//! the engine (ask_user_question stops the turn, the user answers, the model writes the
//! plan file and proposes it, the plan is a linked chat file), the administrator's
//! instructions in the system prompt, the tools offered on plan turns and normal turns,
//! propose_plan without a workspace, and each tool's refusals at the limits' edges.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::Arc;

use chatd_core::plan::{
    plan_tools, MAX_PLAN_BYTES, MAX_QUESTION_OPTIONS, MIN_QUESTION_OPTIONS, QUESTIONS_SHOWN_MESSAGE,
};
use chatd_core::prompt::{plan_path_block, NO_WORKSPACE_PLAN_PROMPT, ROOT_PLAN_PROMPT};
use chatd_core::store::Store;
use chatd_core::tools::{Tool, ToolContext, TurnContext};
use chatd_core::workspace::tools::{plan_file_path, Attachments};
use chatd_core::workspace::{
    LocalWorkspaceConfig, LocalWorkspaceProvider, Workspace, WorkspaceChat, WorkspaceProvider,
};
use chatd_core::{Actor, EngineConfig};
use chatd_test_support::db::{fixture, new_chat, on_each_backend, Fixture};
use chatd_test_support::scripted::{
    create_request, engine_with_config, fast_settings, wait_status, Reply, ScriptedModel,
};
use codersdk::{
    ChatMessagePart, ChatPlanMode, ChatStatus, CreateChatMessageRequest, MessagePage, RawJson, Uuid,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("chatd-plan-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn call(id: &str, name: &str, args: Value) -> Reply {
    Reply::ToolCalls(vec![(id.into(), name.into(), args.to_string())])
}

fn message(text: &str, plan_mode: Option<ChatPlanMode>) -> CreateChatMessageRequest {
    CreateChatMessageRequest {
        content: vec![codersdk::ChatInputPart::text(text)],
        plan_mode,
        ..Default::default()
    }
}

fn questions(options_per_question: &[usize]) -> Value {
    let questions: Vec<Value> = options_per_question
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let options: Vec<Value> = (0..*n)
                .map(|j| json!({"label": format!("option {j}"), "description": "what it means"}))
                .collect();
            json!({"header": format!("Q{i}"), "question": "Which one?", "options": options})
        })
        .collect();
    json!({ "questions": questions })
}

/// The names of the tools offered in the model's `n`th request, sorted.
fn offered(model: &ScriptedModel, n: usize) -> Vec<String> {
    let mut names: Vec<String> = model.requests.lock().unwrap()[n]
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect();
    names.sort();
    names
}

/// The tool-result parts of the chat, in order.
async fn tool_results(
    engine: &chatd_core::Engine,
    actor: &Actor,
    chat: Uuid,
) -> Vec<ChatMessagePart> {
    let page = MessagePage {
        before_id: None,
        after_id: Some(0),
        limit: 200,
        ascending: true,
    };
    engine
        .list_messages(actor, chat, &page)
        .await
        .unwrap()
        .messages
        .into_iter()
        .flat_map(|m| m.content)
        .filter(|p| p.result.is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_turn_asks_then_writes_and_proposes_the_plan() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        store
            .set_plan_mode_instructions("  Name an owner for every step.\r\n")
            .await
            .unwrap();
        let tmp = TempDir::new();
        let local = LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&tmp.0)).unwrap();
        // Had the turn gone on after ask_user_question, the empty script would answer "ok"
        // and count a second call.
        let model = ScriptedModel::new([call("q1", "ask_user_question", questions(&[2, 4]))]);
        let engine = engine_with_config(&store, model.clone(), fast_settings(), {
            let local = local.clone();
            move |c: EngineConfig| {
                c.with_generated_titles(false)
                    .with_workspaces(Arc::new(local))
            }
        })
        .await;
        let mut request = create_request(f.org, "plan the database migration");
        request.plan_mode = Some(ChatPlanMode::Plan);
        let chat = engine.create_chat(&actor, request).await.unwrap();
        let chat = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert_eq!(
            model.calls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "ask_user_question stops the turn"
        );
        let results = tool_results(&engine, &actor, chat.id).await;
        assert_eq!(results.len(), 1);
        assert!(!results[0].is_error, "{:?}", results[0]);
        let shown = results[0].result.as_ref().unwrap().to_value();
        assert_eq!(shown["ok"], true);
        assert_eq!(shown["message"], QUESTIONS_SHOWN_MESSAGE);

        // What a root plan turn offers and says.
        // Root plan turns may also delegate: spawn and wait, but not message or close
        // (engine.md's availability table).
        assert_eq!(
            offered(&model, 0),
            [
                "ask_user_question",
                "edit_files",
                "execute",
                "process_output",
                "propose_plan",
                "read_file",
                "spawn_subagent",
                "wait_agent",
                "write_file"
            ]
        );
        let ws_dir = local.workspace_dir(chat.workspace_id.unwrap());
        let plan_path = format!(
            "{}/.coder/plans/PLAN-{}.md",
            ws_dir.to_str().unwrap(),
            chat.id
        );
        let system = model.requests.lock().unwrap()[0].system.clone();
        let overlay = system
            .iter()
            .find(|b| b.contains(ROOT_PLAN_PROMPT))
            .unwrap();
        assert!(
            overlay.ends_with("Name an owner for every step."),
            "{overlay}"
        );
        assert_eq!(system.last().unwrap(), &plan_path_block(&plan_path));

        // The user answers; the model writes the plan file and proposes it.
        let plan_text = "# Migration plan\n\n1. Back up (owner: Ann).\n";
        model.requests.lock().unwrap().clear();
        model.calls.store(0, std::sync::atomic::Ordering::SeqCst);
        model.push(call(
            "w1",
            "write_file",
            json!({"path": plan_path, "content": plan_text}),
        ));
        model.push(call("p1", "propose_plan", json!({})));
        engine
            .send_message(&actor, chat.id, message("Use PostgreSQL 16.", None))
            .await
            .unwrap();
        let chat = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert_eq!(model.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        let results = tool_results(&engine, &actor, chat.id).await;
        let proposed = results.last().unwrap();
        assert_eq!(proposed.tool_name, "propose_plan");
        assert!(!proposed.is_error, "{proposed:?}");
        let proposed = proposed.result.as_ref().unwrap().to_value();
        assert_eq!(proposed["ok"], true);
        assert_eq!(proposed["kind"], "plan");
        assert_eq!(proposed["path"], plan_path.as_str());
        let file_id: Uuid = proposed["file_id"].as_str().unwrap().parse().unwrap();
        let stored = store.get_file(file_id).await.unwrap().unwrap();
        assert_eq!(stored.data, plan_text.as_bytes());
        assert_eq!(stored.metadata.mime_type, "text/markdown");
        assert_eq!(stored.metadata.owner_id, f.user);
        let linked = store.linked_files(chat.id).await.unwrap();
        assert_eq!(linked.iter().map(|l| l.id).collect::<Vec<_>>(), [file_id]);
        assert!(chat.files.iter().any(|file| file.id == file_id));

        // Leaving plan mode takes effect for the next turn: the full tool set, no plan
        // instructions.
        engine
            .send_message(
                &actor,
                chat.id,
                message("Go ahead.", Some(ChatPlanMode::from_wire(""))),
            )
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let normal = offered(&model, 2);
        for name in [
            "attach_file",
            "process_list",
            "process_signal",
            "write_file",
        ] {
            assert!(
                normal.contains(&name.to_owned()),
                "{name} missing: {normal:?}"
            );
        }
        for name in ["ask_user_question", "propose_plan"] {
            assert!(
                !normal.contains(&name.to_owned()),
                "{name} offered: {normal:?}"
            );
        }
        let system = model.requests.lock().unwrap()[2].system.join("\n\n");
        assert!(!system.contains("Name an owner"), "{system}");
        assert!(!system.contains(ROOT_PLAN_PROMPT));
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propose_plan_without_a_workspace_stores_the_plan_text() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([
            call("p0", "propose_plan", json!({})),
            call(
                "p1",
                "propose_plan",
                json!({"plan": "# Plan\n\nShip it.\n"}),
            ),
        ]);
        let engine = engine_with_config(&store, model.clone(), fast_settings(), |c| {
            c.with_generated_titles(false)
        })
        .await;
        let mut request = create_request(f.org, "plan a trip");
        request.plan_mode = Some(ChatPlanMode::Plan);
        let chat = engine.create_chat(&actor, request).await.unwrap();
        let chat = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        // No workspace: no file tools, the plan tools, the "no plan file" block.
        assert_eq!(
            offered(&model, 0),
            [
                "ask_user_question",
                "propose_plan",
                "spawn_subagent",
                "wait_agent"
            ]
        );
        let system = model.requests.lock().unwrap()[0].system.clone();
        assert_eq!(system.last().unwrap(), NO_WORKSPACE_PLAN_PROMPT);
        let results = tool_results(&engine, &actor, chat.id).await;
        assert_eq!(results.len(), 2, "a refused call does not stop the turn");
        assert!(results[0].is_error);
        let refused = results[0].result.as_ref().unwrap().to_value();
        assert!(
            refused["error"]
                .as_str()
                .unwrap()
                .contains("pass the plan's Markdown in plan"),
            "{refused}"
        );
        assert!(!results[1].is_error, "{:?}", results[1]);
        let proposed = results[1].result.as_ref().unwrap().to_value();
        assert_eq!(proposed["path"], format!("PLAN-{}.md", chat.id));
        let file_id: Uuid = proposed["file_id"].as_str().unwrap().parse().unwrap();
        let stored = store.get_file(file_id).await.unwrap().unwrap();
        assert_eq!(stored.data, b"# Plan\n\nShip it.\n");
        assert_eq!(store.linked_files(chat.id).await.unwrap()[0].id, file_id);
        assert_eq!(model.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        engine.shutdown().await;
    })
    .await;
}

/// The plan tools of `chat` over `workspace`, called directly on a root plan turn.
struct Tools {
    tools: Vec<Arc<dyn Tool>>,
    turn: Arc<TurnContext>,
}

impl Tools {
    fn new(store: &Store, f: &Fixture, chat: Uuid, workspace: Option<Arc<dyn Workspace>>) -> Self {
        let attachments = Attachments {
            store: store.clone(),
            organization_id: f.org,
        };
        Tools {
            tools: plan_tools(attachments, workspace),
            turn: Arc::new(TurnContext::new(chat, f.user).with_plan_mode(true)),
        }
    }

    async fn call(&self, name: &str, args: Value) -> (Value, bool) {
        let tool = self.tools.iter().find(|t| t.name() == name).unwrap();
        let ctx = ToolContext::new(Arc::clone(&self.turn), "c", CancellationToken::new());
        let out = tool.run(ctx, RawJson::from_value(&args).unwrap()).await;
        (out.result.to_value(), out.is_error)
    }

    async fn error(&self, name: &str, args: Value) -> String {
        let (out, is_error) = self.call(name, args).await;
        assert!(is_error, "{name} should fail: {out}");
        out["error"].as_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_user_question_checks_its_questions_at_the_edges() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "hi")).await.unwrap();
        let t = Tools::new(&store, &f, chat.id, None);
        let e = t.error("ask_user_question", json!({"questions": []})).await;
        assert!(e.contains("at least one question"), "{e}");
        for n in [MIN_QUESTION_OPTIONS - 1, MAX_QUESTION_OPTIONS + 1] {
            let e = t.error("ask_user_question", questions(&[2, n])).await;
            assert!(e.starts_with("questions[1] has"), "{e}");
            assert!(e.contains("2 to 4 options"), "{e}");
        }
        for n in [MIN_QUESTION_OPTIONS, MAX_QUESTION_OPTIONS] {
            let (out, is_error) = t.call("ask_user_question", questions(&[n])).await;
            assert!(!is_error, "{out}");
        }
        let e = t
            .error(
                "ask_user_question",
                json!({"questions": [{"header": " ", "question": "Q?", "options": []}]}),
            )
            .await;
        assert!(e.contains("header is empty"), "{e}");
        let e = t
            .error("ask_user_question", json!({"questions": "x"}))
            .await;
        assert!(e.starts_with("Invalid arguments"), "{e}");
        // Offered and stopping only on root plan turns.
        let ask = &t.tools[0];
        assert!(ask.stops_turn());
        let root = TurnContext::new(chat.id, f.user);
        assert!(!ask.available(&root));
        assert!(ask.available(&root.clone().with_plan_mode(true)));
        let sub = root.with_parent_chat(Uuid::new_v4()).with_plan_mode(true);
        assert!(!ask.available(&sub));
        assert!(!t.tools[1].available(&sub));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propose_plan_refuses_bad_plans_and_paths() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "hi")).await.unwrap();
        let tmp = TempDir::new();
        let provider = LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&tmp.0)).unwrap();
        let ws = provider
            .workspace(&WorkspaceChat::new(chat.id, f.user))
            .await
            .unwrap();
        let plan = plan_file_path(&*ws, chat.id);
        let t = Tools::new(&store, &f, chat.id, Some(Arc::clone(&ws)));
        // Missing, then empty.
        let e = t.error("propose_plan", json!({})).await;
        assert!(e.contains("write_file first"), "{e}");
        std::fs::create_dir_all(PathBuf::from(&plan).parent().unwrap()).unwrap();
        std::fs::write(&plan, " \n").unwrap();
        let e = t.error("propose_plan", json!({})).await;
        assert!(e.contains("empty"), "{e}");
        // The size limit at its edge.
        std::fs::write(&plan, "a".repeat(MAX_PLAN_BYTES + 1)).unwrap();
        let e = t.error("propose_plan", json!({})).await;
        assert!(e.contains("at most 32768 bytes"), "{e}");
        std::fs::write(&plan, "a".repeat(MAX_PLAN_BYTES)).unwrap();
        let (out, is_error) = t.call("propose_plan", json!({"path": plan})).await;
        assert!(!is_error, "{out}");
        assert_eq!(out["path"], plan.as_str());
        // Other paths: not Markdown, or Markdown elsewhere; plan text with a workspace.
        std::fs::write(tmp.0.join("notes.txt"), "x").unwrap();
        let e = t.error("propose_plan", json!({"path": "notes.txt"})).await;
        assert!(e.contains("not a Markdown file"), "{e}");
        let e = t.error("propose_plan", json!({"path": "README.md"})).await;
        assert_eq!(
            e,
            format!("during plan turns, propose_plan is restricted to {plan}")
        );
        let e = t.error("propose_plan", json!({"plan": "# P"})).await;
        assert!(e.contains("has a workspace"), "{e}");
        // A symbolic link at the plan path is refused (it would read another file).
        let elsewhere = PathBuf::from(ws.working_directory()).join("secret.md");
        std::fs::write(&elsewhere, "# not the plan\n").unwrap();
        std::fs::remove_file(&plan).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &plan).unwrap();
        let e = t.error("propose_plan", json!({})).await;
        assert!(e.contains("is a symbolic link"), "{e}");
        // Without a workspace: the text's limits, and no path.
        let t = Tools::new(&store, &f, chat.id, None);
        let e = t.error("propose_plan", json!({"plan": ""})).await;
        assert!(e.contains("empty"), "{e}");
        let e = t
            .error(
                "propose_plan",
                json!({"plan": "a".repeat(MAX_PLAN_BYTES + 1)}),
            )
            .await;
        assert!(e.contains("at most"), "{e}");
        let e = t
            .error("propose_plan", json!({"plan": "# P", "path": "PLAN.md"}))
            .await;
        assert!(e.contains("no workspace"), "{e}");
        let (out, is_error) = t
            .call("propose_plan", json!({"plan": "a".repeat(MAX_PLAN_BYTES)}))
            .await;
        assert!(!is_error, "{out}");
        // Both stored plans are linked to the chat.
        assert_eq!(store.linked_files(chat.id).await.unwrap().len(), 2);
        provider.shutdown().await;
    })
    .await;
}
