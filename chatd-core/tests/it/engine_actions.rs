//! Engine operations around a running or waiting turn: client-executed tools, built-in
//! tools, interrupt, edit, archive, titles and access rules, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use chatd_core::tools::{Tool, ToolContext, ToolOutput, ToolRegistry};
use chatd_core::{Actor, Engine, ErrorKind};
use chatd_test_support::db::{fixture, on_each_backend, RawSql};
use chatd_test_support::scripted::{
    create_request, deltas, engine, engine_with_config, fast_settings, wait_status, Reply,
    ScriptedModel,
};
use codersdk::{
    ChatInputPart, ChatMessage, ChatMessagePartType, ChatMessageRole, ChatStatus,
    ChatStreamEventType, ChatWatchEventKind, CreateChatRequest, DynamicTool,
    EditChatMessageRequest, MessagePage, RawJson, SubmitToolResultsRequest, ToolResult,
    UpdateChatRequest, Uuid,
};
use tokio::sync::Notify;

fn all() -> MessagePage {
    MessagePage {
        before_id: None,
        after_id: Some(0),
        limit: 200,
        ascending: true,
    }
}

async fn history(engine: &Engine, actor: &Actor, chat: Uuid) -> Vec<ChatMessage> {
    engine
        .list_messages(actor, chat, &all())
        .await
        .unwrap()
        .messages
}

fn text_of(m: &ChatMessage) -> String {
    m.content
        .iter()
        .filter(|p| p.part_type == ChatMessagePartType::Text)
        .map(|p| p.text.as_str())
        .collect()
}

fn weather_tool() -> DynamicTool {
    DynamicTool {
        name: "get_weather".into(),
        description: "Weather of a city".into(),
        input_schema: RawJson::from_json(
            r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
        )
        .unwrap(),
    }
}

fn with_tools(org: Uuid, text: &str) -> CreateChatRequest {
    CreateChatRequest {
        unsafe_dynamic_tools: vec![weather_tool()],
        ..create_request(org, text)
    }
}

/// A built-in tool that echoes its arguments, or panics when asked to.
#[derive(Debug)]
struct Echo;

#[async_trait::async_trait]
impl Tool for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    fn description(&self) -> &str {
        "Echoes its arguments"
    }
    fn parameters(&self) -> schemars::Schema {
        schemars::json_schema!({"type": "object"})
    }
    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        if args.get().contains("panic") {
            panic!("echo was asked to panic");
        }
        ToolOutput::ok(args)
    }
}

async fn wait_for_parts(engine: &Engine, chat: Uuid, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while engine
        .hub()
        .chat_stats(chat)
        .map_or(0, |s| s.buffered_parts)
        < n
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "parts never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_tool_call_waits_for_results_then_the_turn_continues() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([
            Reply::ToolCalls(vec![(
                "call_1".into(),
                "get_weather".into(),
                r#"{"city":"Paris"}"#.into(),
            )]),
            Reply::Text("It is sunny in Paris".into()),
        ]);
        // Without the sub-agent tools: the client's tool is the turn's only one.
        let engine = engine_with_config(&store, model.clone(), fast_settings(), |c| {
            c.with_generated_titles(false).with_subagents(false)
        })
        .await;
        let mut watch = engine.watch(&actor).unwrap();
        let chat = engine
            .create_chat(&actor, with_tools(f.org, "weather in Paris?"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::RequiresAction).await;

        // The model saw the client tool as an ordinary function tool.
        let first = model.requests.lock().unwrap()[0].clone();
        assert_eq!(first.tools.len(), 1);
        assert_eq!(first.tools[0].name, "get_weather");

        // A late subscriber learns the pending call from the snapshot.
        let mut stream = engine.subscribe(&actor, chat.id, None).await.unwrap();
        let mut pending = None;
        while stream.pending_snapshot() > 0 {
            let e = stream.next().await.unwrap();
            if e.event_type == ChatStreamEventType::ActionRequired {
                pending = e.action_required.clone();
            }
        }
        let pending = pending.expect("snapshot has action_required").tool_calls;
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].tool_call_id, "call_1");
        assert_eq!(pending[0].args, r#"{"city":"Paris"}"#);

        // The watch stream announced it too, with the calls.
        // (It is published after the commit, so wait for it rather than race it.)
        let action = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let e = watch.recv().await.unwrap();
                if e.kind == ChatWatchEventKind::ActionRequired {
                    break e;
                }
            }
        })
        .await
        .expect("action_required on the watch stream");
        assert_eq!(
            action.tool_calls.as_ref().unwrap()[0].tool_name,
            "get_weather"
        );

        // Wrong ids are refused and change nothing; a JSON string holding JSON is accepted.
        let wrong = SubmitToolResultsRequest {
            results: vec![ToolResult {
                tool_call_id: "call_2".into(),
                output: Some(RawJson::from_json("1").unwrap()),
                is_error: false,
            }],
        };
        let err = engine
            .submit_tool_results(&actor, chat.id, wrong)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let right = SubmitToolResultsRequest {
            results: vec![ToolResult {
                tool_call_id: "call_1".into(),
                output: Some(RawJson::from_json(r#""{\"temp_c\":21}""#).unwrap()),
                is_error: false,
            }],
        };
        engine
            .submit_tool_results(&actor, chat.id, right.clone())
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        // A repeated submission is a conflict, not a second result.
        let again = engine
            .submit_tool_results(&actor, chat.id, right)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(again.kind(), ErrorKind::Conflict);
        assert_eq!(again.http_status(), 409);

        let h = history(&engine, &actor, chat.id).await;
        let roles: Vec<_> = h.iter().map(|m| m.role.clone()).collect();
        assert_eq!(
            roles,
            vec![
                ChatMessageRole::User,
                ChatMessageRole::Assistant,
                ChatMessageRole::Tool,
                ChatMessageRole::Assistant
            ]
        );
        let result = h[2].content[0].result.as_ref().unwrap().get().to_owned();
        assert_eq!(result, r#"{"temp_c":21}"#, "the JSON string was unwrapped");
        assert_eq!(text_of(&h[3]), "It is sunny in Paris");
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_tools_run_in_the_same_step_as_client_tools_and_panics_become_results() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([
            Reply::ToolCalls(vec![
                ("c1".into(), "echo".into(), r#"{"say":"hi"}"#.into()),
                (
                    "c2".into(),
                    "get_weather".into(),
                    r#"{"city":"Oslo"}"#.into(),
                ),
                ("c3".into(), "nope".into(), "{}".into()),
                ("c4".into(), "echo".into(), r#"{"panic":true}"#.into()),
            ]),
            Reply::Text("done".into()),
        ]);
        let registry = ToolRegistry::new().with_tool(Arc::new(Echo)).unwrap();
        let engine = engine_with_config(&store, model.clone(), fast_settings(), |c| {
            c.with_tools(registry).with_generated_titles(false)
        })
        .await;
        let chat = engine
            .create_chat(&actor, with_tools(f.org, "mixed"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::RequiresAction).await;
        let h = history(&engine, &actor, chat.id).await;
        // user, assistant with four calls, three tool rows in call order; the client's
        // call stays open.
        assert_eq!(h.len(), 5);
        let results: Vec<(String, bool)> = h[2..]
            .iter()
            .map(|m| {
                let p = &m.content[0];
                (p.tool_call_id.clone(), p.is_error)
            })
            .collect();
        assert_eq!(
            results,
            vec![
                ("c1".into(), false),
                ("c3".into(), true),
                ("c4".into(), true)
            ]
        );
        assert_eq!(
            h[2].content[0].result.as_ref().unwrap().get(),
            r#"{"say":"hi"}"#
        );
        assert!(h[3].content[0]
            .result
            .as_ref()
            .unwrap()
            .get()
            .contains("Tool not found"));
        let pending = store.pending_tool_calls(chat.id).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].tool_call_id, "c2");
        engine
            .submit_tool_results(
                &actor,
                chat.id,
                SubmitToolResultsRequest {
                    results: vec![ToolResult {
                        tool_call_id: "c2".into(),
                        output: Some(RawJson::from_json(r#"{"temp_c":3}"#).unwrap()),
                        is_error: false,
                    }],
                },
            )
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        // The second model call saw every result.
        let second = model.requests.lock().unwrap()[1].clone();
        let tool_messages = second
            .messages
            .iter()
            .filter(|m| m.role == chatprovider::Role::Tool)
            .count();
        assert!(tool_messages >= 1);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_keeps_partial_output_and_edit_discards_it() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate1 = Arc::new(Notify::new());
        let gate2 = Arc::new(Notify::new());
        let model = ScriptedModel::new([
            Reply::Gated {
                before: deltas("kept words "),
                gate: gate1.clone(),
                after: deltas("never"),
            },
            Reply::Gated {
                before: deltas("dropped words "),
                gate: gate2.clone(),
                after: deltas("never"),
            },
            Reply::Text("fresh answer".into()),
        ]);
        let engine = engine(&store, model.clone()).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "first question"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Running).await;
        wait_for_parts(&engine, chat.id, 2).await;
        let after = engine.interrupt(&actor, chat.id).await.unwrap();
        assert_eq!(after.status, ChatStatus::Waiting);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let h = loop {
            let h = history(&engine, &actor, chat.id).await;
            if h.len() == 2 {
                break h;
            }
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(text_of(&h[1]), "kept words ");

        // A new message starts the second (gated) reply; the edit of the first message
        // replaces everything after it, and the partial "dropped words" never lands.
        engine
            .send_message(
                &actor,
                chat.id,
                codersdk::CreateChatMessageRequest {
                    content: vec![ChatInputPart::text("second question")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Running).await;
        wait_for_parts(&engine, chat.id, 2).await;
        let first_id = h[0].id;
        let edited = engine
            .edit_message(
                &actor,
                chat.id,
                first_id,
                EditChatMessageRequest {
                    content: vec![ChatInputPart::text("better question")],
                },
            )
            .await
            .unwrap();
        assert!(edited.message.id > first_id);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let h = loop {
            let h = history(&engine, &actor, chat.id).await;
            let chat = engine.get_chat(&actor, chat.id).await.unwrap();
            if chat.status == ChatStatus::Waiting && h.len() == 2 {
                break h;
            }
            assert!(tokio::time::Instant::now() < deadline, "{h:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(text_of(&h[0]), "better question");
        assert_eq!(text_of(&h[1]), "fresh answer");
        // Nothing of the discarded turn was written, even hidden.
        let all_rows: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM chat_messages WHERE chat_id = $1 AND content LIKE '%dropped%'",
        )
        .bind(chat.id.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(all_rows, 0);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupting_a_chat_waiting_for_client_tools_writes_interrupted_results() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([Reply::ToolCalls(vec![(
            "call_9".into(),
            "get_weather".into(),
            "{}".into(),
        )])]);
        let engine = engine(&store, model).await;
        let chat = engine
            .create_chat(&actor, with_tools(f.org, "weather"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::RequiresAction).await;
        let chat = engine.interrupt(&actor, chat.id).await.unwrap();
        assert_eq!(chat.status, ChatStatus::Waiting);
        let h = history(&engine, &actor, chat.id).await;
        let last = &h.last().unwrap().content[0];
        assert_eq!(last.tool_call_id, "call_9");
        assert!(last.is_error);
        assert!(last
            .result
            .as_ref()
            .unwrap()
            .get()
            .contains("Tool execution interrupted by user"));
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_a_running_chat_stops_it_and_announces_the_removal() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([Reply::Gated {
            before: deltas("partial "),
            gate,
            after: deltas("never"),
        }]);
        let engine = engine(&store, model).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "archive me"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Running).await;
        wait_for_parts(&engine, chat.id, 1).await;
        let mut watch = engine.watch(&actor).unwrap();
        let archived = engine
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
        assert!(archived.archived);
        assert_eq!(archived.status, ChatStatus::Waiting);
        let again = engine
            .update_chat(
                &actor,
                chat.id,
                UpdateChatRequest {
                    archived: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(again.http_status(), 400);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut kinds = Vec::new();
        while !kinds.contains(&ChatWatchEventKind::Deleted) {
            assert!(tokio::time::Instant::now() < deadline, "{kinds:?}");
            if let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(100), watch.recv()).await
            {
                kinds.push(e.kind.clone());
            }
        }
        // The turn's worker stopped and kept its partial output (archive interrupts).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while engine.active_turns() > 0 {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let h = history(&engine, &actor, chat.id).await;
        assert_eq!(h.len(), 2, "{h:#?} {:?}", store.get_chat(chat.id).await);
        assert_eq!(text_of(&h[1]), "partial ");
        // Sending to an archived chat is refused.
        let refused = engine
            .send_message(
                &actor,
                chat.id,
                codersdk::CreateChatMessageRequest {
                    content: vec![ChatInputPart::text("hello?")],
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(refused.http_status(), 400);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_see_nothing_and_admins_may_read_but_not_write() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let owner = Actor::user(f.user);
        let other = store
            .create_user(chatd_core::store::NewUser {
                username: "mallory".into(),
                name: String::new(),
                role: chatd_core::Role::Member,
            })
            .await
            .unwrap();
        let engine = engine(&store, ScriptedModel::new([])).await;
        let chat = engine
            .create_chat(&owner, create_request(f.org, "private"))
            .await
            .unwrap();
        let stranger = Actor::user(other.id);
        let e = engine.get_chat(&stranger, chat.id).await.unwrap_err();
        assert_eq!(e.http_status(), 404);
        let e = engine
            .subscribe(&stranger, chat.id, None)
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), 404);
        let admin = Actor::admin(other.id);
        assert_eq!(engine.get_chat(&admin, chat.id).await.unwrap().id, chat.id);
        let e = engine.interrupt(&admin, chat.id).await.unwrap_err();
        assert_eq!(e.http_status(), 403);
        // Not a member of the organization: creating a chat there is refused.
        let e = engine
            .create_chat(&stranger, create_request(f.org, "sneaky"))
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), 400);
        // Omitting the organization works when the user has exactly one.
        let chat = engine
            .create_chat(
                &owner,
                CreateChatRequest {
                    organization_id: None,
                    ..create_request(f.org, "implicit org")
                },
            )
            .await
            .unwrap();
        assert_eq!(chat.organization_id, f.org);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_turn_replaces_the_fallback_title_with_a_generated_one() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let engine =
            engine_with_config(&store, ScriptedModel::new([]), fast_settings(), |c| c).await;
        let mut watch = engine.watch(&actor).unwrap();
        let chat = engine
            .create_chat(
                &actor,
                create_request(f.org, "tell me about the weather in Paris today"),
            )
            .await
            .unwrap();
        assert_eq!(chat.title, "tell me about the weather in…");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let chat = engine.get_chat(&actor, chat.id).await.unwrap();
            if chat.title == "Scripted Title" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "title stayed {:?}",
                chat.title
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The watch event follows the commit; wait for it rather than race it.
        let saw = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let e = watch.recv().await.unwrap();
                if e.kind == ChatWatchEventKind::TitleChange && e.chat.title == "Scripted Title" {
                    break;
                }
            }
        })
        .await;
        assert!(
            saw.is_ok(),
            "a title_change watch event carries the new title"
        );
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_tool_a_built_in_shadows_is_named_in_the_creation_warnings() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([Reply::Text("ok".into())]);
        let registry = ToolRegistry::new().with_tool(Arc::new(Echo)).unwrap();
        let engine = engine_with_config(&store, model.clone(), fast_settings(), |c| {
            c.with_tools(registry).with_generated_titles(false)
        })
        .await;
        let echo = DynamicTool {
            name: "echo".into(),
            ..weather_tool()
        };
        let request = CreateChatRequest {
            unsafe_dynamic_tools: vec![echo, weather_tool()],
            ..create_request(f.org, "hi")
        };
        let chat = engine.create_chat(&actor, request).await.unwrap();
        // The built-in wins (spec), and the answer says so instead of dropping it silently.
        assert_eq!(chat.warnings.len(), 1, "{:?}", chat.warnings);
        assert!(chat.warnings[0].contains("\"echo\""), "{:?}", chat.warnings);
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let offered = model.requests.lock().unwrap()[0].tools.clone();
        let echo_def = offered.iter().find(|t| t.name == "echo").unwrap();
        assert_eq!(echo_def.description, "Echoes its arguments");
        assert!(offered.iter().any(|t| t.name == "get_weather"));
        // A chat without a clash gets no warning; warnings are not stored with the chat.
        let clean = engine
            .create_chat(&actor, with_tools(f.org, "hi"))
            .await
            .unwrap();
        assert!(clean.warnings.is_empty());
        assert!(engine
            .get_chat(&actor, chat.id)
            .await
            .unwrap()
            .warnings
            .is_empty());
        engine.shutdown().await;
    })
    .await;
}

/// An MCP server configuration named `slug`, enabled or not.
async fn mcp_server(store: &chatd_core::store::Store, slug: &str, enabled: bool) -> Uuid {
    let keyring =
        chatd_core::Keyring::new("k", chatd_core::SecretKey::generate().unwrap()).unwrap();
    let request: codersdk::CreateMCPServerConfigRequest =
        serde_json::from_value(serde_json::json!({
            "display_name": slug, "slug": slug, "transport": "streamable_http",
            "url": "https://mcp.example.com/mcp", "auth_type": "none",
            "availability": "default_on", "enabled": enabled,
        }))
        .unwrap();
    store
        .create_mcp_server_config(&request, &keyring)
        .await
        .unwrap()
        .id
}

fn message(text: &str) -> codersdk::CreateChatMessageRequest {
    codersdk::CreateChatMessageRequest {
        content: vec![ChatInputPart::text(text)],
        ..Default::default()
    }
}

/// The `mcp_server_ids` validation details of a refusal.
fn mcp_details(err: &chatd_core::Error) -> Vec<String> {
    err.to_response()
        .validations
        .iter()
        .filter(|v| v.field == "mcp_server_ids")
        .map(|v| v.detail.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_carries_plan_mode_and_the_mcp_selection_to_the_chat() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([Reply::Text("first".into())]);
        let engine = engine(&store, model.clone()).await;
        let on = mcp_server(&store, "on", true).await;
        let other = mcp_server(&store, "other", true).await;
        // `[]`: no servers (naming none at all would pre-select the default_on ones).
        let chat = engine
            .create_chat(
                &actor,
                codersdk::CreateChatRequest {
                    mcp_server_ids: Some(Vec::new()),
                    ..create_request(f.org, "hi")
                },
            )
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert_eq!(chat.plan_mode, None);
        assert!(chat.mcp_server_ids.is_empty());

        // Idle chat: the message is inserted, and the settings change with it, so the turn
        // it starts already runs in plan mode.
        model.push(Reply::Gated {
            before: deltas("planning "),
            gate: gate.clone(),
            after: deltas("done"),
        });
        let sent = engine
            .send_message(
                &actor,
                chat.id,
                codersdk::CreateChatMessageRequest {
                    plan_mode: Some(codersdk::ChatPlanMode::Plan),
                    mcp_server_ids: Some(vec![on, other, on]),
                    ..message("plan it")
                },
            )
            .await
            .unwrap();
        assert!(!sent.queued);
        let now = engine.get_chat(&actor, chat.id).await.unwrap();
        assert_eq!(now.plan_mode, Some(codersdk::ChatPlanMode::Plan));
        assert_eq!(now.mcp_server_ids, vec![on, other], "duplicates removed");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while model.requests.lock().unwrap().len() < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the turn never called the model"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let system = model.requests.lock().unwrap()[1].system.join("\n");
        assert!(system.contains(chatd_core::prompt::PLAN_MODE_PROMPT));

        // Busy chat: the message is queued and the settings still change at once (the
        // running turn keeps the mode it started with; the next one uses the new one).
        let queued = engine
            .send_message(
                &actor,
                chat.id,
                codersdk::CreateChatMessageRequest {
                    plan_mode: Some(codersdk::ChatPlanMode::from_wire("")),
                    mcp_server_ids: Some(Vec::new()),
                    ..message("now build it")
                },
            )
            .await
            .unwrap();
        assert!(queued.queued);
        let now = engine.get_chat(&actor, chat.id).await.unwrap();
        assert_eq!(now.plan_mode, None);
        assert!(now.mcp_server_ids.is_empty());
        gate.notify_one();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let requests = model.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 3, "the queued message ran");
        assert!(!requests[2]
            .system
            .join("\n")
            .contains(chatd_core::prompt::PLAN_MODE_PROMPT));

        // Absent fields change nothing.
        engine
            .send_message(
                &actor,
                chat.id,
                codersdk::CreateChatMessageRequest {
                    plan_mode: Some(codersdk::ChatPlanMode::Plan),
                    mcp_server_ids: Some(vec![other]),
                    ..message("again")
                },
            )
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        engine
            .send_message(&actor, chat.id, message("plain"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let now = engine.get_chat(&actor, chat.id).await.unwrap();
        assert_eq!(now.plan_mode, Some(codersdk::ChatPlanMode::Plan));
        assert_eq!(now.mcp_server_ids, vec![other]);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_server_ids_must_name_enabled_configurations() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([]);
        let engine = engine(&store, model.clone()).await;
        let on = mcp_server(&store, "on", true).await;
        let off = mcp_server(&store, "off", false).await;
        let missing = Uuid::new_v4();

        // Creation: every offending id is named; nothing is stored.
        let err = engine
            .create_chat(
                &actor,
                CreateChatRequest {
                    mcp_server_ids: Some(vec![on, off, missing]),
                    ..create_request(f.org, "hi")
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.http_status(), 400);
        let details = mcp_details(&err);
        assert_eq!(details.len(), 2, "{details:?}");
        assert!(details[0].contains(&off.to_string()), "{details:?}");
        assert!(details[1].contains(&missing.to_string()), "{details:?}");
        assert!(details
            .iter()
            .all(|d| d.ends_with(chatd_core::UNUSABLE_MCP_SERVER_DETAIL)));
        assert!(!details.iter().any(|d| d.contains(&on.to_string())));
        let listed = engine
            .list_chats(&actor, &chatd_core::store::ChatListQuery::default())
            .await
            .unwrap();
        assert!(listed.is_empty(), "a refused chat is not stored");

        // Enabled ids are accepted.
        let chat = engine
            .create_chat(
                &actor,
                CreateChatRequest {
                    mcp_server_ids: Some(vec![on]),
                    ..create_request(f.org, "hi")
                },
            )
            .await
            .unwrap();
        assert_eq!(chat.mcp_server_ids, vec![on]);
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;

        // Sending: refused before anything is written, the selection kept.
        for bad in [off, missing] {
            let err = engine
                .send_message(
                    &actor,
                    chat.id,
                    codersdk::CreateChatMessageRequest {
                        mcp_server_ids: Some(vec![on, bad]),
                        plan_mode: Some(codersdk::ChatPlanMode::Plan),
                        ..message("switch")
                    },
                )
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            let details = mcp_details(&err);
            assert_eq!(details.len(), 1, "{details:?}");
            assert!(details[0].contains(&bad.to_string()), "{details:?}");
        }
        let after = engine.get_chat(&actor, chat.id).await.unwrap();
        assert_eq!(after.mcp_server_ids, vec![on]);
        assert_eq!(after.plan_mode, None, "a refused message changes nothing");
        assert_eq!(after.status, ChatStatus::Waiting);
        assert_eq!(history(&engine, &actor, chat.id).await.len(), 2);
        engine.shutdown().await;
    })
    .await;
}

/// The engine holds a chat's prompt history between turns and reads only the rows after
/// it; an edit changes rows in place, so the next turn must see the edited history, not
/// the held one with the new rows appended (docs/turn-path.md "History").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_after_an_edit_sends_the_edited_history_not_the_held_one() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([
            Reply::Text("first answer".into()),
            Reply::Text("second answer".into()),
            Reply::Text("answer after the edit".into()),
        ]);
        let engine = engine(&store, model.clone()).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "first question"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        engine
            .send_message(&actor, chat.id, message("second question"))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while history(&engine, &actor, chat.id).await.len() < 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the second turn did not end"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        // The second turn was sent the first exchange and the new question: the held
        // history was extended.
        let texts = |request: &chatprovider::ModelRequest| -> Vec<String> {
            request
                .messages
                .iter()
                .map(|m| format!("{m:?}"))
                .collect::<Vec<_>>()
        };
        let second = model.requests.lock().unwrap()[1].clone();
        assert_eq!(second.messages.len(), 3, "{:?}", texts(&second));
        let first_id = history(&engine, &actor, chat.id).await[0].id;
        engine
            .edit_message(
                &actor,
                chat.id,
                first_id,
                EditChatMessageRequest {
                    content: vec![ChatInputPart::text("edited question")],
                },
            )
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while model.requests.lock().unwrap().len() < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no turn after the edit"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let third = model.requests.lock().unwrap()[2].clone();
        let sent = texts(&third);
        assert_eq!(
            third.messages.len(),
            1,
            "only the edited question: {sent:?}"
        );
        assert!(sent[0].contains("edited question"), "{sent:?}");
        assert!(
            !sent
                .iter()
                .any(|m| m.contains("first question") || m.contains("second")),
            "{sent:?}"
        );
        engine.shutdown().await;
    })
    .await;
}
