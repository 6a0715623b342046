//! The offline demo model: its deterministic replies and tool calls, and whole turns on a
//! server that has no provider configured (the real fallback of `demo::resolver`, built
//! with `ServerOptions.models = None`), on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::Store;
use chatd_core::tools::{ToolContext, TurnContext};
use chatd_core::Actor;
use chatd_test_support::db::on_each_backend;
use chatd_test_support::server::{serve, TestServer, ADMIN_TOKEN};
use chatprovider::{
    LanguageModel, Message, ModelRequest, Part, Provider, ProviderApiKeys, Role, StreamPart,
    ToolDefinition,
};
use codersdk::{
    ChatErrorKind, ChatInputPart, ChatMessagePartType, ChatMessageRole, ChatStatus,
    ChatStreamEventType, CreateChatMessageRequest, CreateChatRequest, DynamicTool, RawJson,
    SubmitToolResultsRequest, ToolResult,
};
use futures_util::StreamExt;
use server_example::demo::{
    self, DemoModel, DemoReply, ADD_TOOL, CURRENT_TIME_TOOL, DEMO_ECHO_MAX_CHARS,
    DEMO_MODEL_CONFIG_ID,
};
use server_example::AppState;
use tokio_util::sync::CancellationToken;

// ----- the model on its own

fn tool(name: &str) -> ToolDefinition {
    ToolDefinition {
        name: name.into(),
        description: String::new(),
        input_schema: RawJson::empty_object(),
    }
}

fn ask(text: &str, tools: &[&str]) -> ModelRequest {
    ModelRequest {
        messages: vec![Message::user_text(text)],
        tools: tools.iter().map(|t| tool(t)).collect(),
        ..Default::default()
    }
}

fn call(name: &str, arguments: &str) -> DemoReply {
    DemoReply::ToolCall {
        name: name.into(),
        arguments: arguments.into(),
    }
}

const BUILT_IN: &[&str] = &[CURRENT_TIME_TOOL, ADD_TOOL];

#[test]
fn the_demo_calls_a_tool_when_asked_and_otherwise_explains_itself() {
    let demo = DemoModel::new(Duration::ZERO);
    let reply = |text: &str, tools: &[&str]| demo.reply(&ask(text, tools));

    assert_eq!(
        reply("What TIME is it?", BUILT_IN),
        call("current_time", "{}")
    );
    assert_eq!(
        reply("please add 2 and -40", BUILT_IN),
        call("add", r#"{"a":2,"b":-40}"#)
    );
    assert_eq!(
        reply("sum of 7, 8", BUILT_IN),
        call("add", r#"{"a":7,"b":8}"#)
    );
    // A tool the message names (a bot's dynamic tool) is called by name.
    assert_eq!(
        reply(
            "Where is order 42? Use lookup_order.",
            &["lookup_order", ADD_TOOL]
        ),
        call("lookup_order", "{}")
    );
    // "add" with one number, or tools that are not offered: no call.
    let DemoReply::Text(text) = reply("add 2", BUILT_IN) else {
        panic!("expected text")
    };
    assert!(text.contains("You wrote: \"add 2\"."), "{text}");
    assert!(matches!(reply("what time is it", &[]), DemoReply::Text(_)));
    let DemoReply::Text(text) = reply("  hello \n world ", BUILT_IN) else {
        panic!("expected text")
    };
    assert!(
        text.starts_with("Hello! I am the demo model of chatd"),
        "{text}"
    );
    assert!(text.contains("You wrote: \"hello world\"."), "{text}");
    // Deterministic: the same request, the same reply.
    assert_eq!(
        reply("hello world", BUILT_IN),
        reply("hello world", BUILT_IN)
    );

    // After tool results it reports them.
    let mut after = ask("what time is it", BUILT_IN);
    after.messages.push(Message {
        role: Role::Tool,
        content: vec![Part::ToolResult {
            tool_call_id: "call_demo_1".into(),
            name: CURRENT_TIME_TOOL.into(),
            output: RawJson::from_json(r#""2026-01-02T03:04:05Z""#).unwrap(),
            is_error: false,
        }],
    });
    assert_eq!(
        demo.reply(&after),
        DemoReply::Text(
            "The current time is 2026-01-02T03:04:05Z (from the demo current_time tool).".into()
        )
    );
    after.messages.last_mut().unwrap().content = vec![Part::ToolResult {
        tool_call_id: "c".into(),
        name: "lookup_order".into(),
        output: RawJson::from_json(r#"{"status":"shipped"}"#).unwrap(),
        is_error: true,
    }];
    assert_eq!(
        demo.reply(&after),
        DemoReply::Text(r#"The lookup_order tool failed: {"status":"shipped"}"#.into())
    );

    // Title requests get a title, never a tool call.
    let title = ModelRequest {
        system: vec![chatd_core::title::TITLE_SYSTEM_PROMPT.to_owned()],
        ..ask("what time is it in Paris", BUILT_IN)
    };
    assert_eq!(
        demo.reply(&title),
        DemoReply::Text("Demo: what time is it in Paris".into())
    );
    // Turn summary requests get the fixed label, never a tool call either.
    let summary = ModelRequest {
        system: vec![chatd_core::TURN_SUMMARY_SYSTEM_PROMPT.to_owned()],
        ..ask("what time is it in Paris", BUILT_IN)
    };
    assert_eq!(
        demo.reply(&summary),
        DemoReply::Text(server_example::demo::DEMO_TURN_SUMMARY.into())
    );
}

#[test]
fn the_echo_is_capped_at_its_limit() {
    let demo = DemoModel::new(Duration::ZERO);
    let text_of = |input: &str| match demo.reply(&ask(input, &[])) {
        DemoReply::Text(t) => t,
        other => panic!("{other:?}"),
    };
    let at_cap = "x".repeat(DEMO_ECHO_MAX_CHARS);
    assert!(text_of(&at_cap).contains(&format!("\"{at_cap}\".")));
    let over = "y".repeat(DEMO_ECHO_MAX_CHARS + 1);
    let reply = text_of(&over);
    assert!(reply.contains(&format!("\"{}…\".", &over[..DEMO_ECHO_MAX_CHARS])));
    assert!(!reply.contains(&over));
}

async fn collect(model: &DemoModel, request: ModelRequest) -> Vec<StreamPart> {
    model
        .stream(request)
        .map(|p| p.unwrap())
        .collect::<Vec<_>>()
        .await
}

#[tokio::test(start_paused = true)]
async fn the_demo_streams_word_by_word_with_its_delay() {
    let delay = Duration::from_millis(25);
    let slow = DemoModel::new(delay);
    assert_eq!(slow.model_id(), "demo");
    let started = tokio::time::Instant::now();
    let parts = collect(&slow, ask("hello there", BUILT_IN)).await;
    let elapsed = started.elapsed();
    let deltas: Vec<&str> = parts
        .iter()
        .filter_map(|p| match p {
            StreamPart::TextDelta { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    let DemoReply::Text(text) = slow.reply(&ask("hello there", BUILT_IN)) else {
        panic!()
    };
    // Word-sized deltas that add up to the reply, one pause between two words.
    assert_eq!(deltas.concat(), text);
    assert_eq!(deltas.len(), text.split_whitespace().count());
    assert!(deltas.iter().all(|d| d.trim().split(' ').count() == 1));
    assert_eq!(elapsed, delay * (deltas.len() as u32 - 1));
    assert!(matches!(
        parts.first(),
        Some(StreamPart::ResponseMetadata { .. })
    ));
    match parts.last() {
        Some(StreamPart::Finish { reason, usage }) => {
            assert_eq!(reason.as_str(), "stop");
            assert_eq!(usage.output_tokens, Some(deltas.len() as i64));
            assert_eq!(usage.input_tokens, Some(2));
        }
        other => panic!("{other:?}"),
    }

    // Zero delay: no pause at all; a tool call streams start, arguments, the call.
    let fast = DemoModel::new(Duration::ZERO);
    let started = tokio::time::Instant::now();
    let parts = collect(&fast, ask("add 1 and 2", BUILT_IN)).await;
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(matches!(&parts[1], StreamPart::ToolCallStart { name, .. } if name == "add"));
    assert!(
        matches!(&parts[2], StreamPart::ToolCallDelta { delta, .. } if delta == r#"{"a":1,"b":2}"#)
    );
    match &parts[3] {
        StreamPart::ToolCall(c) => {
            assert_eq!((c.name.as_str(), c.id.as_str()), ("add", "call_demo_1"));
            assert!(c.arguments_valid && !c.provider_executed);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&parts[4], StreamPart::Finish { reason, .. } if reason.as_str() == "tool_calls")
    );
}

#[tokio::test]
async fn the_demo_tools_compute() {
    let registry = demo::tools();
    assert_eq!(registry.len(), 2);
    let ctx = || {
        ToolContext::new(
            Arc::new(TurnContext::new(
                codersdk::Uuid::nil(),
                codersdk::Uuid::nil(),
            )),
            "c1",
            CancellationToken::new(),
        )
    };
    let add = registry.get(ADD_TOOL).unwrap();
    let out = add
        .run(ctx(), RawJson::from_json(r#"{"a":2,"b":40}"#).unwrap())
        .await;
    assert_eq!((out.result.get(), out.is_error), ("42", false));
    let out = add
        .run(
            ctx(),
            RawJson::from_json(&format!(r#"{{"a":{},"b":1}}"#, i64::MAX)).unwrap(),
        )
        .await;
    assert!(out.is_error);
    assert!(out.result.get().contains("does not fit"), "{}", out.result);
    let out = add
        .run(ctx(), RawJson::from_json(r#"{"a":"two"}"#).unwrap())
        .await;
    assert!(out.is_error && out.result.get().contains("Invalid arguments"));
    let schema = serde_json::to_value(add.parameters()).unwrap();
    assert_eq!(schema["required"], serde_json::json!(["a", "b"]));

    let clock = registry.get(CURRENT_TIME_TOOL).unwrap();
    let before = chrono::Utc::now();
    let out = clock.run(ctx(), RawJson::empty_object()).await;
    assert!(!out.is_error);
    let text: String = out.result.parse().unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(&text).unwrap();
    assert!(at >= before && at <= chrono::Utc::now(), "{text}");
    assert!(text.ends_with('Z'), "UTC: {text}");
}

// ----- whole turns on a server without providers

async fn server(store: &Store, deployment_keys: ProviderApiKeys) -> (AppState, Actor) {
    // The server's own resolver, i.e. the demo fallback.
    let started = TestServer::builder(store)
        .own_models()
        .deployment_keys(deployment_keys)
        .start()
        .await;
    let admin = store
        .get_user_by_username(server_example::state::ADMIN_USERNAME)
        .await
        .unwrap()
        .unwrap();
    (started.state, Actor::admin(admin.id))
}

fn ask_request(text: &str) -> CreateChatRequest {
    CreateChatRequest {
        content: vec![ChatInputPart::text(text)],
        ..Default::default()
    }
}

async fn wait_status(state: &AppState, actor: &Actor, chat: codersdk::Uuid, want: ChatStatus) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = state.engine().get_chat(actor, chat).await.unwrap();
        if got.status == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chat stayed {:?}, wanted {want:?}",
            got.status
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn messages(
    state: &AppState,
    actor: &Actor,
    chat: codersdk::Uuid,
) -> Vec<codersdk::ChatMessage> {
    let page = codersdk::parse_message_page(None, None, Some("200")).unwrap();
    let mut list = state
        .engine()
        .list_messages(actor, chat, &page)
        .await
        .unwrap()
        .messages;
    list.reverse();
    list
}

fn text_of(message: &codersdk::ChatMessage) -> String {
    message
        .content
        .iter()
        .filter(|p| p.part_type == ChatMessagePartType::Text)
        .map(|p| p.text.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_turn_runs_on_the_demo_model_without_any_provider() {
    on_each_backend(|store| async move {
        let (state, admin) = server(&store, ProviderApiKeys::new()).await;
        assert!(demo::demo_active(state.admin()).await.unwrap());
        let engine = state.engine();
        let chat = engine
            .create_chat(&admin, ask_request("What time is it?"))
            .await
            .unwrap();
        assert_eq!(chat.last_model_config_id, DEMO_MODEL_CONFIG_ID);

        // Follow the stream like a client: the tool call, its result, the streamed text.
        let mut stream = engine.subscribe(&admin, chat.id, None).await.unwrap();
        let mut seen = Vec::new();
        let mut streamed = String::new();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("the turn finishes")
                .unwrap();
            match (&event.event_type, &event.message_part, &event.status) {
                (ChatStreamEventType::MessagePart, Some(mp), _) => {
                    let part = &mp.part;
                    match part.part_type {
                        ChatMessagePartType::Text => streamed.push_str(&part.text),
                        ChatMessagePartType::ToolCall if part.args.is_some() => {
                            seen.push(format!("call {}", part.tool_name));
                        }
                        ChatMessagePartType::ToolResult => {
                            seen.push(format!("result {}", part.tool_name));
                        }
                        _ => {}
                    }
                }
                (ChatStreamEventType::Status, _, Some(s)) if s.status == ChatStatus::Waiting => {
                    break
                }
                (ChatStreamEventType::Status, _, Some(s)) => {
                    assert_ne!(s.status, ChatStatus::Error, "{event:?}");
                }
                _ => {}
            }
        }
        assert_eq!(seen, vec!["call current_time", "result current_time"]);
        assert!(
            streamed.starts_with("The current time is ") && streamed.contains("current_time"),
            "{streamed}"
        );

        let list = messages(&state, &admin, chat.id).await;
        let roles: Vec<_> = list.iter().map(|m| m.role.clone()).collect();
        assert_eq!(
            roles,
            vec![
                ChatMessageRole::User,
                ChatMessageRole::Assistant,
                ChatMessageRole::Tool,
                ChatMessageRole::Assistant
            ]
        );
        assert_eq!(text_of(&list[3]), streamed);
        assert_eq!(list[3].model_config_id, Some(DEMO_MODEL_CONFIG_ID));

        // A second turn: plain text, the canned explanation.
        engine
            .send_message(
                &admin,
                chat.id,
                CreateChatMessageRequest {
                    content: vec![ChatInputPart::text("thanks")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        wait_status(&state, &admin, chat.id, ChatStatus::Waiting).await;
        let list = messages(&state, &admin, chat.id).await;
        let last = text_of(list.last().unwrap());
        assert!(last.contains("You wrote: \"thanks\"."), "{last}");

        // The generated title comes from the demo too, without taking a turn.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let chat = engine.get_chat(&admin, chat.id).await.unwrap();
            if chat.title == "Demo: What time is it?" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "title {:?}",
                chat.title
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        engine.clone().shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_with_a_dynamic_tool_completes_on_the_demo_model() {
    on_each_backend(|store| async move {
        let (state, admin) = server(&store, ProviderApiKeys::new()).await;
        let engine = state.engine();
        let chat = engine
            .create_chat(
                &admin,
                CreateChatRequest {
                    unsafe_dynamic_tools: vec![DynamicTool {
                        name: "lookup_order".into(),
                        description: "Looks up an order.".into(),
                        input_schema: RawJson::from_json(r#"{"type":"object"}"#).unwrap(),
                    }],
                    ..ask_request("Where is order 42? Use lookup_order.")
                },
            )
            .await
            .unwrap();
        wait_status(&state, &admin, chat.id, ChatStatus::RequiresAction).await;
        let list = messages(&state, &admin, chat.id).await;
        let call = list[1]
            .content
            .iter()
            .find(|p| p.part_type == ChatMessagePartType::ToolCall)
            .unwrap();
        assert_eq!(call.tool_name, "lookup_order");
        engine
            .submit_tool_results(
                &admin,
                chat.id,
                SubmitToolResultsRequest {
                    results: vec![ToolResult {
                        tool_call_id: call.tool_call_id.clone(),
                        // A JSON string that contains JSON, as some bots send it.
                        output: Some(RawJson::from_json(r#""{\"status\":\"shipped\"}""#).unwrap()),
                        is_error: false,
                    }],
                },
            )
            .await
            .unwrap();
        wait_status(&state, &admin, chat.id, ChatStatus::Waiting).await;
        let list = messages(&state, &admin, chat.id).await;
        let reply = text_of(list.last().unwrap());
        assert!(
            reply.starts_with("The lookup_order tool returned "),
            "{reply}"
        );
        assert!(reply.contains("shipped"), "{reply}");
        engine.clone().shutdown().await;
    })
    .await;
}

fn bot_tool(name: &str) -> DynamicTool {
    DynamicTool {
        name: name.into(),
        description: format!("The bot's own {name}."),
        input_schema: RawJson::from_json(r#"{"type":"object"}"#).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bots_own_current_time_tool_wins_over_the_demo_tool() {
    on_each_backend(|store| async move {
        let (state, admin) = server(&store, ProviderApiKeys::new()).await;
        let engine = state.engine();
        let chat = engine
            .create_chat(
                &admin,
                CreateChatRequest {
                    unsafe_dynamic_tools: vec![bot_tool(CURRENT_TIME_TOOL)],
                    ..ask_request("What time is it?")
                },
            )
            .await
            .unwrap();
        // The demo tools are no built-ins: nothing to warn about.
        assert!(chat.warnings.is_empty(), "{:?}", chat.warnings);
        // The demo model calls `current_time`, which is the bot's: it waits for the bot.
        wait_status(&state, &admin, chat.id, ChatStatus::RequiresAction).await;
        let pending = state
            .engine()
            .store()
            .pending_tool_calls(chat.id)
            .await
            .unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].tool_name, CURRENT_TIME_TOOL);
        engine.clone().shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_model_is_never_offered_the_demo_tools() {
    use chatd_test_support::scripted::{create_request, Reply, ScriptedModel};

    on_each_backend(|store| async move {
        // A server whose turns run on a (scripted) real model, not the demo.
        let model = ScriptedModel::new([
            Reply::Text("plain".into()),
            Reply::ToolCalls(vec![(
                "call_1".into(),
                CURRENT_TIME_TOOL.into(),
                "{}".into(),
            )]),
        ]);
        let server = TestServer::start(&store, model.clone()).await;
        let alice = server.user("alice").await;
        let actor = Actor::user(alice.id);
        let engine = server.state.engine();
        let org = server.state.default_organization();
        let plain = engine
            .create_chat(&actor, create_request(org, "hello"))
            .await
            .unwrap();
        wait_status(&server.state, &actor, plain.id, ChatStatus::Waiting).await;
        // A bot's client-executed `current_time` reaches the bot.
        let bot = engine
            .create_chat(
                &actor,
                CreateChatRequest {
                    unsafe_dynamic_tools: vec![bot_tool(CURRENT_TIME_TOOL)],
                    ..create_request(org, "what time is it?")
                },
            )
            .await
            .unwrap();
        assert!(bot.warnings.is_empty(), "{:?}", bot.warnings);
        wait_status(&server.state, &actor, bot.id, ChatStatus::RequiresAction).await;
        let requests = model.requests.lock().unwrap().clone();
        // The engine's own sub-agent tools (docs/subagents.md) are not the demo's.
        let subagent_tools = [
            chatd_core::subagents::SPAWN_SUBAGENT_TOOL,
            chatd_core::subagents::WAIT_AGENT_TOOL,
            chatd_core::subagents::MESSAGE_AGENT_TOOL,
            chatd_core::subagents::CLOSE_AGENT_TOOL,
        ];
        let offered = |i: usize| -> Vec<(String, String)> {
            requests[i]
                .tools
                .iter()
                .filter(|t| !subagent_tools.contains(&t.name.as_str()))
                .map(|t| (t.name.clone(), t.description.clone()))
                .collect()
        };
        assert_eq!(offered(0), vec![], "no demo tools for a real model");
        assert_eq!(
            offered(1),
            vec![(
                CURRENT_TIME_TOOL.to_owned(),
                format!("The bot's own {CURRENT_TIME_TOOL}.")
            )]
        );
        assert!(requests
            .iter()
            .all(|r| r.tools.iter().all(|t| t.name != ADD_TOOL)));
        let list = messages(&server.state, &actor, bot.id).await;
        assert!(
            list.iter().all(|m| m.role != ChatMessageRole::Tool),
            "the server ran no current_time of its own"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuring_anything_turns_the_demo_off() {
    on_each_backend(|store| async move {
        // An environment key alone: the store's configuration applies, which has no
        // model yet (a 400 that says so), not the demo.
        let env = ProviderApiKeys::new()
            .with_api_key(Provider::OpenAi, "sk-test-not-used")
            .unwrap();
        {
            let (state, admin) = server(&store, env.clone()).await;
            assert!(!demo::demo_active(state.admin()).await.unwrap());
            let err = state
                .engine()
                .create_chat(&admin, ask_request("hello"))
                .await
                .unwrap_err();
            assert_eq!(err.http_status(), 400, "{err}");
            state.engine().clone().shutdown().await;
        }

        // Demo first; then an administrator configures a (disabled) provider and a model.
        let (state, admin) = server(&store, ProviderApiKeys::new()).await;
        let engine = state.engine();
        let chat = engine
            .create_chat(&admin, ask_request("hello"))
            .await
            .unwrap();
        wait_status(&state, &admin, chat.id, ChatStatus::Waiting).await;

        state
            .admin()
            .create_provider(
                &admin,
                &codersdk::CreateChatProviderConfigRequest {
                    provider: "openai".into(),
                    api_key: Some("sk-test-not-used".into()),
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // A provider config alone already ends the demo.
        assert!(!demo::demo_active(state.admin()).await.unwrap());
        let model =
            codersdk::validate_create_model_config(&codersdk::CreateChatModelConfigRequest {
                provider: "openai".into(),
                model: "gpt-4o-mini".into(),
                context_limit: Some(128_000),
                ..Default::default()
            })
            .unwrap();
        let model = store
            .create_model_config(&model, &ProviderApiKeys::new())
            .await
            .unwrap();

        // New chats get the configured default model...
        let configured = engine
            .create_chat(&admin, ask_request("hello again"))
            .await
            .unwrap();
        assert_eq!(configured.last_model_config_id, model.id);
        // ...and the demo chat's next turn runs on it too: the disabled provider fails it
        // (before any network call) instead of the demo answering.
        engine
            .send_message(
                &admin,
                chat.id,
                CreateChatMessageRequest {
                    content: vec![ChatInputPart::text("still there?")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        wait_status(&state, &admin, chat.id, ChatStatus::Error).await;
        let failed = engine.get_chat(&admin, chat.id).await.unwrap();
        assert_eq!(
            failed.last_error.and_then(|e| e.kind),
            Some(ChatErrorKind::ProviderDisabled)
        );
        engine.clone().shutdown().await;
    })
    .await;
}

#[test]
fn the_catalog_entry_is_labelled_demo() {
    let entry = demo::catalog_entry();
    assert_eq!(entry.provider, "demo");
    assert!(entry.available && entry.unavailable_reason.is_none());
    assert_eq!(entry.models.len(), 1);
    assert_eq!(entry.models[0].id, DEMO_MODEL_CONFIG_ID.to_string());
    assert_eq!(entry.models[0].model, "demo");
    assert!(entry.models[0].display_name.starts_with("demo"));
}

/// `chatd-server chat` against a server on the demo model: the reply on stdout as it
/// streams, the tool call and the chat id on stderr, exit 0; `--chat <id>` continues that
/// chat (token from `CHATD_TOKEN`) and prints only the new reply; a failed turn exits
/// non-zero with the stored error's message and kind; a wrong token exits non-zero with the
/// 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_command_runs_a_demo_turn_end_to_end() {
    on_each_backend(|store| async move {
        let (state, admin) = server(&store, ProviderApiKeys::new()).await;
        let base = serve(server_example::router(state.clone())).await;
        // Runs the binary with `args` after `chat --url <base>`, the token in CHATD_TOKEN.
        let run = |token: &str, args: &[&str]| {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chatd-server"));
            command
                .args(["chat", "--url", &base])
                .args(args)
                .env("CHATD_TOKEN", token)
                .env_remove("CHATD_URL")
                .env_remove("CHATD_LOG");
            tokio::task::spawn_blocking(move || command.output().unwrap())
        };
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();

        // The token as a flag overrides the environment.
        let out = run("wrong-token", &["--token", ADMIN_TOKEN, "What time is it?"])
            .await
            .unwrap();
        let (stdout, stderr) = (text(out.stdout), text(out.stderr));
        assert!(
            out.status.success(),
            "{:?}: {stdout} / {stderr}",
            out.status
        );
        assert!(stdout.starts_with("The current time is "), "{stdout}");
        assert!(
            stdout.ends_with("(from the demo current_time tool).\n"),
            "{stdout}"
        );
        assert!(stderr.contains("[calling current_time({})]"), "{stderr}");
        // The chat id is on stderr, with how to continue.
        let chat_id: codersdk::Uuid = stderr
            .lines()
            .find_map(|l| l.strip_prefix("[chat ")?.split(';').next())
            .unwrap_or_else(|| panic!("no chat id in {stderr}"))
            .parse()
            .unwrap();
        assert!(stderr.contains(&format!("continue it with --chat {chat_id}]")));
        let chats = state.engine().get_chat(&admin, chat_id).await.unwrap();
        assert_eq!(chats.status, ChatStatus::Waiting);

        // A follow-up in the same chat: only the new turn is printed.
        let out = run(
            ADMIN_TOKEN,
            &["--chat", &chat_id.to_string(), "Please add 2 and 40"],
        )
        .await
        .unwrap();
        let (stdout, stderr) = (text(out.stdout), text(out.stderr));
        assert!(out.status.success(), "{stdout} / {stderr}");
        assert_eq!(stdout, "The sum is 42 (from the demo add tool).\n");
        assert!(stderr.contains("[calling add("), "{stderr}");
        assert!(
            !stderr.contains("current_time"),
            "history replayed: {stderr}"
        );
        assert!(stderr.contains(&format!("[chat {chat_id};")), "{stderr}");
        let history = messages(&state, &admin, chat_id).await;
        let users = history
            .iter()
            .filter(|m| m.role == ChatMessageRole::User)
            .count();
        assert_eq!(users, 2, "both prompts are in the one chat");

        // An unknown chat is the server's 404, with a hint.
        let out = run(
            ADMIN_TOKEN,
            &["--chat", &codersdk::Uuid::new_v4().to_string(), "hi"],
        )
        .await
        .unwrap();
        let stderr = text(out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("HTTP 404") && stderr.contains("--chat"),
            "{stderr}"
        );

        // A turn that fails: configuring a disabled provider ends the demo, and the chat's
        // next turn fails before any network call. The exit says why, with the kind.
        state
            .admin()
            .create_provider(
                &admin,
                &codersdk::CreateChatProviderConfigRequest {
                    provider: "openai".into(),
                    api_key: Some("sk-test-not-used".into()),
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        state
            .admin()
            .create_model_config(
                &admin,
                &codersdk::CreateChatModelConfigRequest {
                    provider: "openai".into(),
                    model: "gpt-4o-mini".into(),
                    context_limit: Some(128_000),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let out = run(
            ADMIN_TOKEN,
            &["--chat", &chat_id.to_string(), "still there?"],
        )
        .await
        .unwrap();
        let stderr = text(out.stderr);
        assert!(!out.status.success(), "{stderr}");
        let stored = state
            .engine()
            .get_chat(&admin, chat_id)
            .await
            .unwrap()
            .last_error
            .unwrap();
        assert_eq!(stored.kind, Some(ChatErrorKind::ProviderDisabled));
        assert!(
            stderr.contains(&format!("the turn failed: {}", stored.message)),
            "{stderr}"
        );
        assert!(stderr.contains("[kind provider_disabled"), "{stderr}");
        assert!(
            !stderr.contains("sk-test-not-used"),
            "a key leaked: {stderr}"
        );

        let out = run("wrong-token", &["hi"]).await.unwrap();
        let stderr = text(out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("HTTP 401"), "{stderr}");
        assert!(stderr.contains("CHATD_TOKEN"), "{stderr}");
        state.engine().clone().shutdown().await;
    })
    .await;
}
