//! Sub-agents through the engine, on both backends: spawning each type (computer_use
//! refused), the children's tools, prompts and fixed mode, `wait_agent` on a child that
//! finishes, times out or fails, `message_agent` and `close_agent`, the parent's interrupt
//! reaching its children, and the running limits per kind.
//!
//! Parent and children share one model here, the kit's `RoutedModel`: it routes each call
//! by the first word of the chat's first user message (the parent's "parent …", a child's
//! prompt), and the parent's later replies are computed from the tool results it has seen
//! (the children's ids are only known once spawned).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::{ClaimLimits, NewSubagent};
use chatd_core::subagents::{
    SubagentType, COMPUTER_USE_UNAVAILABLE_MESSAGE, EXPLORE_SETTINGS_FIXED_MESSAGE,
    NOT_A_CHILD_MESSAGE,
};
use chatd_core::workspace::{LocalWorkspaceConfig, LocalWorkspaceProvider};
use chatd_core::{Actor, EngineConfig, EngineSettings, ErrorKind};
use chatd_test_support::db::{fixture, on_each_backend};
use chatd_test_support::scripted::{
    create_request, engine_with_config, fast_settings, spawned, wait_status, Reply, RoutedModel,
    RoutedResolver, ScriptedModel, Step,
};
use chatprovider::ModelRequest;
use codersdk::{
    ChatInputPart, ChatMessagePart, ChatPlanMode, ChatStatus, ChatWatchEventKind,
    CreateChatMessageRequest, MessagePage, UpdateChatRequest, Uuid,
};

async fn brain_engine(
    store: &chatd_core::store::Store,
    brain: &Arc<RoutedModel>,
    settings: EngineSettings,
    adjust: impl FnOnce(EngineConfig) -> EngineConfig,
) -> chatd_core::Engine {
    let resolver = Arc::new(RoutedResolver {
        model_config_id: Uuid::new_v4(),
        model: Arc::clone(brain),
    });
    engine_with_config(store, ScriptedModel::new([]), settings, |c| {
        let mut c = adjust(c.with_generated_titles(false));
        c.models = resolver;
        c
    })
    .await
}

fn calls(calls: &[(&str, &str, serde_json::Value)]) -> Reply {
    Reply::ToolCalls(
        calls
            .iter()
            .map(|(id, name, args)| ((*id).to_owned(), (*name).to_owned(), args.to_string()))
            .collect(),
    )
}

fn all() -> MessagePage {
    MessagePage {
        before_id: None,
        after_id: Some(0),
        limit: 200,
        ascending: true,
    }
}

/// Every tool result part of the chat, by call id.
async fn tool_results(
    engine: &chatd_core::Engine,
    actor: &Actor,
    chat_id: Uuid,
) -> HashMap<String, ChatMessagePart> {
    engine
        .list_messages(actor, chat_id, &all())
        .await
        .unwrap()
        .messages
        .into_iter()
        .flat_map(|m| m.content)
        .filter(|p| p.part_type == codersdk::ChatMessagePartType::ToolResult)
        .map(|p| (p.tool_call_id.clone(), p))
        .collect()
}

fn result_json(part: &ChatMessagePart) -> serde_json::Value {
    part.result.as_ref().unwrap().parse().unwrap()
}

fn tool_names(request: &ModelRequest) -> Vec<String> {
    request.tools.iter().map(|t| t.name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_chat_spawns_general_and_explore_children_and_gets_their_reports() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let brain = RoutedModel::new();
        brain.script(
            "parent",
            vec![
                Step::Fixed(calls(&[
                    (
                        "c0",
                        "spawn_subagent",
                        serde_json::json!({"subagent_type": "computer_use", "prompt": "click"}),
                    ),
                    (
                        "c1",
                        "spawn_subagent",
                        serde_json::json!({"subagent_type": "general", "prompt": "gen write a summary of the repo please", "title": "General helper"}),
                    ),
                    (
                        "c2",
                        "spawn_subagent",
                        serde_json::json!({"subagent_type": "explore", "prompt": "exp find where the config is loaded", "reasoning_effort": "low"}),
                    ),
                ])),
                Step::Computed(Box::new(|r| {
                    let ids = spawned(r);
                    calls(&[
                        ("w1", "wait_agent", serde_json::json!({"chat_id": ids[0]})),
                        ("w2", "wait_agent", serde_json::json!({"chat_id": ids[1]})),
                    ])
                })),
                Step::Fixed(Reply::Text("Both reported.".into())),
            ],
        );
        brain.script("gen", vec![Step::Fixed(Reply::Text("general report".into()))]);
        brain.script("exp", vec![Step::Fixed(Reply::Text("explore report".into()))]);
        let engine = brain_engine(&store, &brain, fast_settings(), |c| c).await;
        let mut watch = engine.watch(&actor).unwrap();
        let parent = engine
            .create_chat(&actor, create_request(f.org, "parent delegate two tasks"))
            .await
            .unwrap();
        wait_status(&engine, &actor, parent.id, ChatStatus::Waiting).await;

        let results = tool_results(&engine, &actor, parent.id).await;
        let refused = &results["c0"];
        assert!(refused.is_error);
        assert!(result_json(refused).to_string().contains("computer_use"));
        assert_eq!(
            result_json(refused)["error"],
            serde_json::json!(COMPUTER_USE_UNAVAILABLE_MESSAGE)
        );
        let general = result_json(&results["c1"]);
        assert_eq!(general["subagent_type"], "general");
        assert_eq!(general["title"], "General helper");
        let explore = result_json(&results["c2"]);
        assert_eq!(explore["subagent_type"], "explore");
        // The fallback title: the prompt's first six words.
        assert_eq!(explore["title"], "exp find where the config is…");
        let waited = result_json(&results["w1"]);
        assert_eq!(waited["status"], "waiting");
        assert_eq!(waited["report"], "general report");
        assert_eq!(waited["subagent_type"], "general");
        assert_eq!(waited["timed_out"], false);
        assert_eq!(result_json(&results["w2"])["report"], "explore report");

        // The children: parent, root, owner and organization from the parent.
        let general_id: Uuid = general["chat_id"].as_str().unwrap().parse().unwrap();
        let explore_id: Uuid = explore["chat_id"].as_str().unwrap().parse().unwrap();
        for id in [general_id, explore_id] {
            let child = engine.get_chat(&actor, id).await.unwrap();
            assert_eq!(child.parent_chat_id, Some(parent.id));
            assert_eq!(child.root_chat_id, Some(parent.id));
            assert_eq!(child.owner_id, f.user);
            assert_eq!(child.organization_id, f.org);
            assert_eq!(child.status, ChatStatus::Waiting);
        }
        let info = store.subagent_info(explore_id).await.unwrap().unwrap();
        assert_eq!(info.subagent_type, SubagentType::Explore);
        assert_eq!(info.reasoning_effort.as_deref(), Some("low"));
        assert_eq!(store.subagent_info(parent.id).await.unwrap(), None);

        // Listed under the parent only.
        let listed = engine
            .list_chats(&actor, &chatd_core::ChatListQuery::default())
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        let mut children: Vec<Uuid> = listed[0].children.iter().map(|c| c.id).collect();
        children.sort();
        let mut expected = vec![general_id, explore_id];
        expected.sort();
        assert_eq!(children, expected);

        // Tools and prompts: the parent manages sub-agents, children do not.
        let parent_tools = tool_names(&brain.requests_of("parent")[0]);
        for name in ["spawn_subagent", "wait_agent", "message_agent", "close_agent"] {
            assert!(parent_tools.iter().any(|t| t == name), "{name} missing");
        }
        let schema = brain.requests_of("parent")[0]
            .tools
            .iter()
            .find(|t| t.name == "spawn_subagent")
            .unwrap()
            .input_schema
            .parse::<serde_json::Value>()
            .unwrap();
        assert_eq!(
            schema["properties"]["subagent_type"]["enum"],
            serde_json::json!(["general", "explore"])
        );
        for key in ["gen", "exp"] {
            let request = &brain.requests_of(key)[0];
            assert!(!tool_names(request).iter().any(|t| t.ends_with("_agent")
                || t == "spawn_subagent"));
        }
        let gen_system = brain.requests_of("gen")[0].system.join("\n");
        assert!(gen_system.contains(chatd_core::prompt::SUBAGENT_PROMPT));
        assert!(gen_system.contains(&parent.id.to_string()));
        let exp_system = brain.requests_of("exp")[0].system.join("\n");
        assert!(exp_system.contains(chatd_core::prompt::EXPLORE_SUBAGENT_PROMPT));
        assert!(!brain.requests_of("parent")[0]
            .system
            .join("\n")
            .contains("<subagent"));

        // The owner's watch saw both children created.
        let mut created = Vec::new();
        while let Ok(event) = watch.try_recv() {
            if event.kind == ChatWatchEventKind::Created {
                created.push(event.chat.id);
            }
        }
        assert!(created.contains(&general_id) && created.contains(&explore_id));

        // An explore child's mode and MCP servers are fixed; a general child's are not.
        let err = engine
            .update_chat(
                &actor,
                explore_id,
                UpdateChatRequest {
                    plan_mode: Some(ChatPlanMode::Plan),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.to_string(), EXPLORE_SETTINGS_FIXED_MESSAGE);
        let err = engine
            .send_message(
                &actor,
                explore_id,
                CreateChatMessageRequest {
                    content: vec![ChatInputPart::text("exp again")],
                    mcp_server_ids: Some(Vec::new()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        engine
            .update_chat(
                &actor,
                general_id,
                UpdateChatRequest {
                    plan_mode: Some(ChatPlanMode::Plan),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        engine.shutdown().await;
    })
    .await;
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("chatd-sub-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_children_get_the_read_only_tools_in_the_parents_workspace() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let tmp = TempDir::new();
        let local = LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&tmp.0)).unwrap();
        let brain = RoutedModel::new();
        brain.script(
            "parent",
            vec![
                Step::Fixed(calls(&[(
                    "c1",
                    "write_file",
                    serde_json::json!({"path": "notes.txt", "content": "the answer is 42\n"}),
                )])),
                Step::Fixed(calls(&[
                    (
                        "c2",
                        "spawn_subagent",
                        serde_json::json!({"subagent_type": "explore", "prompt": "exp read notes.txt"}),
                    ),
                    (
                        "c3",
                        "spawn_subagent",
                        serde_json::json!({"subagent_type": "general", "prompt": "gen tidy up"}),
                    ),
                ])),
                Step::Computed(Box::new(|r| {
                    let ids = spawned(r);
                    calls(&[
                        ("w1", "wait_agent", serde_json::json!({"chat_id": ids[0]})),
                        ("w2", "wait_agent", serde_json::json!({"chat_id": ids[1]})),
                    ])
                })),
                Step::Fixed(Reply::Text("done".into())),
            ],
        );
        brain.script(
            "exp",
            vec![
                Step::Fixed(calls(&[
                    ("e1", "read_file", serde_json::json!({"path": "notes.txt"})),
                    // Not offered: refused as not active in this turn.
                    ("e2", "write_file", serde_json::json!({"path": "x.txt", "content": "no"})),
                ])),
                Step::Fixed(Reply::Text("The note says 42.".into())),
            ],
        );
        let engine = brain_engine(&store, &brain, fast_settings(), |c| {
            c.with_workspaces(Arc::new(local.clone()))
        })
        .await;
        let parent = engine
            .create_chat(&actor, create_request(f.org, "parent look around"))
            .await
            .unwrap();
        let parent = wait_status(&engine, &actor, parent.id, ChatStatus::Waiting).await;
        let results = tool_results(&engine, &actor, parent.id).await;
        assert_eq!(result_json(&results["w1"])["report"], "The note says 42.");

        let mut explore_tools = tool_names(&brain.requests_of("exp")[0]);
        explore_tools.sort();
        assert_eq!(explore_tools, ["execute", "process_output", "read_file"]);
        let general_tools = tool_names(&brain.requests_of("gen")[0]);
        assert!(general_tools.iter().any(|t| t == "write_file"));
        assert!(!general_tools.iter().any(|t| t == "spawn_subagent"));

        // The explore child read the parent's file and could not write.
        let explore_id: Uuid = result_json(&results["c2"])["chat_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let child_results = tool_results(&engine, &actor, explore_id).await;
        assert!(!child_results["e1"].is_error);
        assert!(result_json(&child_results["e1"]).to_string().contains("42"));
        assert!(child_results["e2"].is_error);
        let dir = local.workspace_dir(parent.workspace_id.unwrap());
        assert!(!dir.join("x.txt").exists());
        let child = engine.get_chat(&actor, explore_id).await.unwrap();
        assert_eq!(child.workspace_id, parent.workspace_id);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_times_out_reports_failures_and_message_and_close_reach_the_child() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(tokio::sync::Notify::new());
        let brain = RoutedModel::new();
        brain.script(
            "parent",
            vec![
                Step::Fixed(calls(&[
                    (
                        "c1",
                        "spawn_subagent",
                        serde_json::json!({"subagent_type": "general", "prompt": "slow work"}),
                    ),
                    (
                        "c2",
                        "spawn_subagent",
                        serde_json::json!({"subagent_type": "general", "prompt": "bad work"}),
                    ),
                ])),
                Step::Computed(Box::new(|r| {
                    let ids = spawned(r);
                    calls(&[
                        (
                            "w1",
                            "wait_agent",
                            serde_json::json!({"chat_id": ids[0], "timeout_seconds": 0}),
                        ),
                        ("w2", "wait_agent", serde_json::json!({"chat_id": ids[1]})),
                        // The parent itself is not its own child.
                        ("w3", "wait_agent", serde_json::json!({"chat_id": Uuid::new_v4()})),
                    ])
                })),
                Step::Computed(Box::new(|r| {
                    let ids = spawned(r);
                    calls(&[(
                        "m1",
                        "message_agent",
                        serde_json::json!({"chat_id": ids[0], "message": "slow also check the tests"}),
                    )])
                })),
                Step::Computed(Box::new(|r| {
                    let ids = spawned(r);
                    calls(&[("x1", "close_agent", serde_json::json!({"chat_id": ids[0]}))])
                })),
                Step::Fixed(Reply::Text("done".into())),
            ],
        );
        brain.script(
            "slow",
            vec![
                Step::Fixed(Reply::Gated {
                    before: vec!["working ".into()],
                    gate: Arc::clone(&gate),
                    after: vec!["never".into()],
                }),
                Step::Fixed(Reply::Text("checked the tests".into())),
            ],
        );
        brain.script("bad", vec![Step::Fixed(Reply::Fail(401))]);
        let engine = brain_engine(&store, &brain, fast_settings(), |c| c).await;
        let parent = engine
            .create_chat(&actor, create_request(f.org, "parent run two"))
            .await
            .unwrap();
        wait_status(&engine, &actor, parent.id, ChatStatus::Waiting).await;
        let results = tool_results(&engine, &actor, parent.id).await;
        let timed_out = result_json(&results["w1"]);
        assert_eq!(timed_out["timed_out"], true);
        assert!(["pending", "running"].contains(&timed_out["status"].as_str().unwrap()));
        assert!(!results["w1"].is_error);
        let failed = result_json(&results["w2"]);
        assert_eq!(failed["status"], "error");
        assert_eq!(failed["report"], serde_json::Value::Null);
        assert!(results["w3"].is_error);
        assert!(result_json(&results["w3"]).to_string().contains(NOT_A_CHILD_MESSAGE));
        let messaged = result_json(&results["m1"]);
        assert_eq!(messaged["queued"], true);
        assert_eq!(messaged["subagent_type"], "general");
        let closed = result_json(&results["x1"]);
        assert_eq!(closed["subagent_type"], "general");
        // Closing interrupted the gated turn; the queued message then ran.
        let slow_id: Uuid = result_json(&results["c1"])["chat_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // The interrupted turn finishes first, promoting the queued message, which runs.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.last_assistant_text(slow_id).await.unwrap().as_deref()
            != Some("checked the tests")
        {
            assert!(tokio::time::Instant::now() < deadline, "the message never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        wait_status(&engine, &actor, slow_id, ChatStatus::Waiting).await;
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupting_the_parent_interrupts_its_running_children() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(tokio::sync::Notify::new());
        let brain = RoutedModel::new();
        brain.script(
            "parent",
            vec![
                Step::Fixed(calls(&[(
                    "c1",
                    "spawn_subagent",
                    serde_json::json!({"subagent_type": "explore", "prompt": "slow look"}),
                )])),
                Step::Computed(Box::new(|r| {
                    let ids = spawned(r);
                    calls(&[("w1", "wait_agent", serde_json::json!({"chat_id": ids[0]}))])
                })),
            ],
        );
        brain.script(
            "slow",
            vec![Step::Fixed(Reply::Gated {
                before: vec!["looking ".into()],
                gate: Arc::clone(&gate),
                after: vec!["never".into()],
            })],
        );
        let engine = brain_engine(&store, &brain, fast_settings(), |c| c).await;
        let parent = engine
            .create_chat(&actor, create_request(f.org, "parent wait for it"))
            .await
            .unwrap();
        // The child is running and the parent is blocked in wait_agent.
        let child_id = loop {
            let listed = engine
                .list_chats(&actor, &chatd_core::ChatListQuery::default())
                .await
                .unwrap();
            if let Some(child) = listed
                .iter()
                .flat_map(|c| c.children.iter())
                .find(|c| c.status == ChatStatus::Running)
            {
                break child.id;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        engine.interrupt(&actor, parent.id).await.unwrap();
        wait_status(&engine, &actor, parent.id, ChatStatus::Waiting).await;
        wait_status(&engine, &actor, child_id, ChatStatus::Waiting).await;
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_subagents_stay_within_their_limit_and_leave_root_chats_their_places() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(tokio::sync::Notify::new());
        let brain = RoutedModel::new();
        let spawn = |i: usize| {
            (
                "c",
                "spawn_subagent",
                serde_json::json!({"subagent_type": "general", "prompt": format!("slow number {i}")}),
            )
        };
        brain.script(
            "parent",
            vec![
                Step::Fixed(Reply::ToolCalls(
                    (0..3)
                        .map(|i| {
                            let (_, name, args) = spawn(i);
                            (format!("c{i}"), name.to_owned(), args.to_string())
                        })
                        .collect(),
                )),
                Step::Fixed(Reply::Text("spawned".into())),
            ],
        );
        let gated = || {
            Step::Fixed(Reply::Gated {
                before: vec!["busy ".into()],
                gate: Arc::clone(&gate),
                after: vec!["done".into()],
            })
        };
        brain.script("slow", vec![gated(), gated(), gated()]);
        let mut settings = fast_settings();
        settings.max_running_subagents = 1;
        settings.max_running_root_chats = 1;
        let engine = brain_engine(&store, &brain, settings, |c| c).await;
        let parent = engine
            .create_chat(&actor, create_request(f.org, "parent fan out"))
            .await
            .unwrap();
        wait_status(&engine, &actor, parent.id, ChatStatus::Waiting).await;
        // A second root chat runs beside the running child: roots have their own place.
        let other = engine
            .create_chat(&actor, create_request(f.org, "other root"))
            .await
            .unwrap();
        wait_status(&engine, &actor, other.id, ChatStatus::Waiting).await;
        let count = |status: ChatStatus| {
            let engine = engine.clone();
            async move {
                engine
                    .list_chats(&actor, &chatd_core::ChatListQuery::default())
                    .await
                    .unwrap()
                    .iter()
                    .flat_map(|c| c.children.iter())
                    .filter(|c| c.status == status)
                    .count()
            }
        };
        // One child at a time: each release lets the next one run.
        for left in (0..3).rev() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while count(ChatStatus::Running).await != 1 {
                assert!(tokio::time::Instant::now() < deadline, "no child runs");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // A few acquire intervals pass without a second child starting.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(count(ChatStatus::Running).await, 1);
            assert_eq!(count(ChatStatus::Pending).await, left);
            gate.notify_one();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while count(ChatStatus::Waiting).await != 3 - left {
                assert!(tokio::time::Instant::now() < deadline, "the child did not finish");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        engine.shutdown().await;
    })
    .await;
}

/// What a claim says it left behind decides whether a finishing turn claims again: chats
/// held back by the batch or a limit are reported, a claim that took every pending chat is
/// not, and a pending chat locked by another transaction (PostgreSQL skips it) is reported
/// as contended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_reports_the_chats_it_left_pending_and_the_locked_ones() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let worker = Uuid::new_v4();
        let unlimited = ClaimLimits {
            root_chats: 100,
            subagents: 100,
        };
        // Nothing pending: nothing left, nothing contended.
        let none = store
            .claim_pending_counted(worker, 10, unlimited)
            .await
            .unwrap();
        assert!(none.leases.is_empty() && !none.left_pending && !none.contended);
        for i in 0..3 {
            store
                .create_chat(chatd_test_support::db::new_chat(&f, &format!("chat {i}")))
                .await
                .unwrap();
        }
        // A batch of 2 over 3 pending: one left.
        let two = store
            .claim_pending_counted(worker, 2, unlimited)
            .await
            .unwrap();
        assert_eq!(two.leases.len(), 2);
        assert!(two.left_pending && !two.contended);
        // The last one with room to spare: nothing left.
        let last = store
            .claim_pending_counted(worker, 10, unlimited)
            .await
            .unwrap();
        assert_eq!(last.leases.len(), 1);
        assert!(!last.left_pending && !last.contended);
        // A running limit that holds one back: left, not contended.
        let held = store
            .create_chat(chatd_test_support::db::new_chat(&f, "held back"))
            .await
            .unwrap()
            .0;
        let full = ClaimLimits {
            root_chats: 3,
            subagents: 100,
        };
        let at_limit = store.claim_pending_counted(worker, 10, full).await.unwrap();
        assert!(at_limit.leases.is_empty());
        assert!(at_limit.left_pending && !at_limit.contended);
        if store.dialect() == chatd_core::store::Dialect::Postgres {
            // The chat's row locked by another transaction: skipped, and said so.
            let tx = store.begin_chat_tx(held.id).await.unwrap();
            let locked = store
                .claim_pending_counted(worker, 10, unlimited)
                .await
                .unwrap();
            assert!(locked.leases.is_empty());
            assert!(locked.left_pending && locked.contended);
            tx.rollback().await.unwrap();
            let free = store
                .claim_pending_counted(worker, 10, unlimited)
                .await
                .unwrap();
            assert_eq!(free.leases.len(), 1);
            assert!(!free.left_pending && !free.contended);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_counts_running_roots_and_subagents_apart_at_their_limits() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let worker = Uuid::new_v4();
        let root = store
            .create_chat(chatd_test_support::db::new_chat(&f, "root one"))
            .await
            .unwrap()
            .0;
        // Take the first root out of the way: it runs.
        let first = store.claim_pending(worker, 1).await.unwrap();
        assert_eq!(first[0].chat_id, root.id);
        let roots = [
            store
                .create_chat(chatd_test_support::db::new_chat(&f, "root two"))
                .await
                .unwrap()
                .0,
            store
                .create_chat(chatd_test_support::db::new_chat(&f, "root three"))
                .await
                .unwrap()
                .0,
        ];
        let mut children = Vec::new();
        for i in 0..3 {
            let (child, _) = store
                .create_subagent(NewSubagent::new(
                    root.id,
                    SubagentType::General,
                    format!("child {i}"),
                    root.last_model_config_id,
                    vec![ChatMessagePart::text("go")],
                ))
                .await
                .unwrap();
            children.push(child.id);
        }
        // Roots at their limit (1 running of 1): only sub-agents, up to theirs (2).
        let limits = ClaimLimits {
            root_chats: 1,
            subagents: 2,
        };
        let claimed = store
            .claim_pending_within(worker, 10, limits)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(claimed.iter().all(|l| children.contains(&l.chat_id)));
        // Both at their limits: nothing, and everything else stays pending.
        assert!(store
            .claim_pending_within(worker, 10, limits)
            .await
            .unwrap()
            .is_empty());
        // One more place for roots: exactly one root, before any further child.
        let claimed = store
            .claim_pending_within(
                worker,
                10,
                ClaimLimits {
                    root_chats: 2,
                    subagents: 2,
                },
            )
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(roots.iter().any(|r| r.id == claimed[0].chat_id));
        // A sub-agent cannot spawn, nor can a child be made under an archived parent.
        let err = store
            .create_subagent(NewSubagent::new(
                children[0],
                SubagentType::Explore,
                "nested",
                root.last_model_config_id,
                vec![ChatMessagePart::text("go")],
            ))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            store.busy_children(root.id).await.unwrap().len(),
            children.len()
        );
    })
    .await;
}
