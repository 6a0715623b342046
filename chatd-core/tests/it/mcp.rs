//! Admin MCP servers in turns, on both backends: the real `server-everything` from npm over
//! streamable HTTP and legacy SSE (listing, calling, images as chat files), the governance
//! flags (allow/deny lists, `model_intent`, `force_on`, `default_on`, plan mode), the
//! credentials that reach a server, session reuse, and servers that misbehave.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatd_core::mcp::{ConnectOutcome, ConnectReport, McpConnector, McpSettings};
use chatd_core::store::Store;
use chatd_core::{Actor, EngineConfig, Keyring, SecretKey};
use chatd_test_support::db::{fixture, on_each_backend};
use chatd_test_support::mcp::{
    header, tool_json, Everything, EverythingTransport, HeaderProxy, Script, ScriptedMcp,
};
use chatd_test_support::scripted::{
    create_request, engine_with_config, fast_settings, wait_status, Reply, ScriptedModel,
};
use codersdk::{
    ChatMessage, ChatMessagePart, ChatMessagePartType, ChatStatus, CreateChatRequest, MessagePage,
    Uuid,
};
use serde_json::{json, Value};

fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::new("k", SecretKey::from_bytes([3; 32])).unwrap())
}

/// Creates an MCP server config from JSON fields over sensible defaults.
async fn server(store: &Store, keyring: &Keyring, fields: Value) -> Uuid {
    let mut body = json!({
        "display_name": "Everything", "slug": "everything", "transport": "streamable_http",
        "url": "http://127.0.0.1:1/mcp", "auth_type": "none",
        "availability": "default_off", "enabled": true,
    });
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    let request: codersdk::CreateMCPServerConfigRequest = serde_json::from_value(body).unwrap();
    store
        .create_mcp_server_config(&request, keyring)
        .await
        .unwrap()
        .id
}

fn call(id: &str, name: &str, args: Value) -> Reply {
    Reply::ToolCalls(vec![(id.into(), name.into(), args.to_string())])
}

/// An engine whose turns use `model` and connect through `mcp`, titles off.
async fn mcp_engine(
    store: &Store,
    model: &Arc<ScriptedModel>,
    mcp: &Arc<McpConnector>,
) -> chatd_core::Engine {
    let mcp = Arc::clone(mcp);
    engine_with_config(
        store,
        Arc::clone(model),
        fast_settings(),
        |c: EngineConfig| c.with_generated_titles(false).with_mcp(mcp),
    )
    .await
}

/// A connector that records every report.
fn connector(
    keyring: Arc<Keyring>,
    settings: McpSettings,
) -> (Arc<McpConnector>, Arc<Mutex<Vec<ConnectReport>>>) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    let c = McpConnector::new(keyring)
        .with_settings(settings)
        .with_observer(Arc::new(move |r: &ConnectReport| {
            sink.lock().unwrap().push(r.clone())
        }));
    (Arc::new(c), reports)
}

fn all() -> MessagePage {
    MessagePage {
        before_id: None,
        after_id: Some(0),
        limit: 200,
        ascending: true,
    }
}

async fn messages(engine: &chatd_core::Engine, actor: &Actor, chat: Uuid) -> Vec<ChatMessage> {
    engine
        .list_messages(actor, chat, &all())
        .await
        .unwrap()
        .messages
}

fn tool_results(messages: &[ChatMessage]) -> Vec<ChatMessagePart> {
    messages
        .iter()
        .flat_map(|m| m.content.iter())
        .filter(|p| p.part_type == ChatMessagePartType::ToolResult)
        .cloned()
        .collect()
}

fn result_json(part: &ChatMessagePart) -> Value {
    serde_json::from_str(part.result.as_ref().unwrap().get()).unwrap()
}

/// The tool names the model was offered in its `n`-th call.
fn offered(model: &ScriptedModel, n: usize) -> Vec<String> {
    model.requests.lock().unwrap()[n]
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect()
}

fn request_with(org: Uuid, text: &str, mcp: Vec<Uuid>) -> CreateChatRequest {
    CreateChatRequest {
        mcp_server_ids: Some(mcp),
        ..create_request(org, text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_lists_and_calls_server_everything_over_both_transports() {
    for transport in [
        EverythingTransport::StreamableHttp,
        EverythingTransport::Sse,
    ] {
        let everything = Everything::start(transport);
        let url = everything.url();
        on_each_backend(|store| {
            let url = url.clone();
            async move {
                let f = fixture(&store).await;
                let actor = Actor::user(f.user);
                let keys = keyring();
                let wire = match transport {
                    EverythingTransport::StreamableHttp => "streamable_http",
                    EverythingTransport::Sse => "sse",
                };
                let id = server(&store, &keys, json!({"url": url, "transport": wire})).await;
                let model = ScriptedModel::new([
                    Reply::ToolCalls(vec![
                        (
                            "c1".into(),
                            "everything__echo".into(),
                            json!({"message": "hi there"}).to_string(),
                        ),
                        (
                            "c2".into(),
                            "everything__get-sum".into(),
                            json!({"a": 2, "b": 3}).to_string(),
                        ),
                        (
                            "c3".into(),
                            "everything__get-tiny-image".into(),
                            "{}".into(),
                        ),
                    ]),
                    Reply::Text("done".into()),
                ]);
                let (mcp, reports) = connector(keys, McpSettings::default());
                let engine = mcp_engine(&store, &model, &mcp).await;
                let chat = engine
                    .create_chat(&actor, request_with(f.org, "use the tools", vec![id]))
                    .await
                    .unwrap();
                wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
                let names = offered(&model, 0);
                assert!(names.contains(&"everything__echo".to_owned()), "{names:?}");
                assert!(names.contains(&"everything__get-sum".to_owned()));
                let mut sorted = names.clone();
                sorted.sort();
                assert_eq!(names, sorted, "tools are offered sorted by name");
                let results = tool_results(&messages(&engine, &actor, chat.id).await);
                assert_eq!(results.len(), 3, "{results:?}");
                for r in &results {
                    assert_eq!(r.mcp_server_config_id, Some(id), "{r:?}");
                    assert!(!r.is_error, "{r:?}");
                }
                assert!(result_json(&results[0])
                    .as_str()
                    .unwrap()
                    .contains("hi there"));
                assert!(result_json(&results[1]).as_str().unwrap().contains('5'));
                // The image is a chat file, not base64 in the model's context.
                let image = result_json(&results[2]);
                let blocks = image["content"].as_array().unwrap();
                let stored: Vec<_> = blocks.iter().filter(|b| b["type"] == "image").collect();
                assert_eq!(stored.len(), 1, "{image}");
                let file_id: Uuid = stored[0]["file_id"].as_str().unwrap().parse().unwrap();
                let file = store.get_file(file_id).await.unwrap().unwrap();
                assert_eq!(file.metadata.mime_type, "image/png");
                assert!(
                    !image.to_string().contains("iVBOR"),
                    "no base64 in the result"
                );
                let reports = reports.lock().unwrap().clone();
                assert_eq!(reports.len(), 1);
                assert_eq!(reports[0].outcome, ConnectOutcome::Connected);
                assert!(reports[0].tools >= 3);
                engine.shutdown().await;
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_and_deny_lists_model_intent_and_force_on_shape_the_tool_set() {
    let everything = Everything::start(EverythingTransport::StreamableHttp);
    let url = everything.url();
    on_each_backend(|store| {
        let url = url.clone();
        async move {
            let f = fixture(&store).await;
            let actor = Actor::user(f.user);
            let keys = keyring();
            // Allow list wins over the deny list; model_intent wraps the schema.
            let allowed = server(
                &store,
                &keys,
                json!({
                    "url": url, "slug": "allowed", "tool_allow_list": ["echo"],
                    "tool_deny_list": ["echo"], "model_intent": true,
                }),
            )
            .await;
            // Deny list alone drops `echo`; force_on applies without being selected.
            server(
                &store,
                &keys,
                json!({
                    "url": url, "slug": "forced", "availability": "force_on",
                    "tool_deny_list": ["echo"],
                }),
            )
            .await;
            // Selected but disabled: never connected.
            server(
                &store,
                &keys,
                json!({"url": url, "slug": "off", "enabled": false}),
            )
            .await;
            let model = ScriptedModel::new([
                call(
                    "c1",
                    "allowed__echo",
                    json!({"model_intent": "say hi", "properties": {"message": "nested"}}),
                ),
                call(
                    "c2",
                    "allowed__echo",
                    json!({"model_intent": "flat", "message": "flat"}),
                ),
                Reply::Text("done".into()),
            ]);
            let (mcp, reports) = connector(keys, McpSettings::default());
            let engine = mcp_engine(&store, &model, &mcp).await;
            let chat = engine
                .create_chat(&actor, request_with(f.org, "go", vec![allowed]))
                .await
                .unwrap();
            wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
            let names = offered(&model, 0);
            let allowed_tools: Vec<_> = names
                .iter()
                .filter(|n| n.starts_with("allowed__"))
                .collect();
            assert_eq!(allowed_tools, ["allowed__echo"]);
            assert!(names.iter().any(|n| n == "forced__get-sum"), "{names:?}");
            assert!(!names.iter().any(|n| n == "forced__echo"));
            assert!(!names.iter().any(|n| n.starts_with("off__")));
            let definition = model.requests.lock().unwrap()[0]
                .tools
                .iter()
                .find(|t| t.name == "allowed__echo")
                .cloned()
                .unwrap();
            let schema: Value = serde_json::from_str(definition.input_schema.get()).unwrap();
            assert_eq!(schema["required"], json!(["model_intent", "properties"]));
            assert_eq!(
                schema["properties"]["properties"]["properties"]["message"]["type"],
                "string"
            );
            let results = tool_results(&messages(&engine, &actor, chat.id).await);
            assert_eq!(results.len(), 2);
            assert!(result_json(&results[0])
                .as_str()
                .unwrap()
                .contains("nested"));
            assert!(result_json(&results[1]).as_str().unwrap().contains("flat"));
            // The intent stays on the stored tool call for a UI to show.
            let calls: Vec<_> = messages(&engine, &actor, chat.id)
                .await
                .iter()
                .flat_map(|m| m.content.clone())
                .filter(|p| p.part_type == ChatMessagePartType::ToolCall)
                .collect();
            let args: Value = serde_json::from_str(calls[0].args.as_ref().unwrap().get()).unwrap();
            assert_eq!(args["model_intent"], "say hi");
            let slugs: Vec<_> = reports
                .lock()
                .unwrap()
                .iter()
                .map(|r| r.slug.clone())
                .collect();
            assert_eq!(slugs.len(), 2, "{slugs:?}");
            engine.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_and_custom_headers_reach_the_server() {
    let everything = Everything::start(EverythingTransport::StreamableHttp);
    let proxy = HeaderProxy::start(&everything.origin()).await;
    let url = format!("{}/mcp", proxy.origin());
    on_each_backend(|store| {
        let url = url.clone();
        let proxy = proxy.clone();
        async move {
            let f = fixture(&store).await;
            let actor = Actor::user(f.user);
            let keys = keyring();
            let keyed = server(
                &store,
                &keys,
                json!({
                    "url": url, "slug": "keyed", "auth_type": "api_key",
                    "api_key_header": "X-Api-Key", "api_key_value": "key-sekret-123",
                }),
            )
            .await;
            let headed = server(
                &store,
                &keys,
                json!({
                    "url": url, "slug": "headed", "auth_type": "custom_headers",
                    "custom_headers": {"X-Team": "team-sekret-456"},
                }),
            )
            .await;
            let model = ScriptedModel::new([
                call("c1", "keyed__echo", json!({"message": "k"})),
                Reply::Text("done".into()),
            ]);
            let (mcp, _) = connector(keys, McpSettings::default());
            let engine = mcp_engine(&store, &model, &mcp).await;
            let chat = engine
                .create_chat(&actor, request_with(f.org, "go", vec![keyed, headed]))
                .await
                .unwrap();
            wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
            let seen = proxy.requests();
            let initialize: Vec<_> = seen
                .iter()
                .filter(|r| r.rpc_method.as_deref() == Some("initialize"))
                .collect();
            let keys_sent: Vec<_> = initialize
                .iter()
                .filter_map(|r| header(r, "x-api-key"))
                .collect();
            let teams_sent: Vec<_> = initialize
                .iter()
                .filter_map(|r| header(r, "x-team"))
                .collect();
            assert!(keys_sent.contains(&"key-sekret-123".to_owned()), "{seen:?}");
            assert!(teams_sent.contains(&"team-sekret-456".to_owned()));
            // Each server gets only its own credential.
            for r in &initialize {
                assert!(!(header(r, "x-api-key").is_some() && header(r, "x-team").is_some()));
            }
            let call = seen
                .iter()
                .find(|r| r.rpc_method.as_deref() == Some("tools/call"))
                .unwrap();
            assert_eq!(header(call, "x-api-key").as_deref(), Some("key-sekret-123"));
            engine.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_reused_across_turns_and_renewed_when_the_config_changes() {
    on_each_backend(|store| async move {
        let scripted = ScriptedMcp::start(Script::Tools {
            tools: vec![tool_json("look")],
            result: json!({"content": [{"type": "text", "text": "seen"}]}),
        })
        .await;
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let keys = keyring();
        let id = server(&store, &keys, json!({"url": scripted.url(), "slug": "s"})).await;
        let model = ScriptedModel::new([
            call("c1", "s__look", json!({})),
            call("c2", "s__look", json!({})),
            Reply::Text("one".into()),
            Reply::Text("two".into()),
            Reply::Text("three".into()),
        ]);
        let (mcp, reports) = connector(keys.clone(), McpSettings::default());
        let engine = mcp_engine(&store, &model, &mcp).await;
        let chat = engine
            .create_chat(&actor, request_with(f.org, "first", vec![id]))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        engine
            .send_message(&actor, chat.id, text_message("second"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert_eq!(scripted.calls(), 2);
        assert_eq!(
            scripted.initializations(),
            1,
            "the second turn reused the session"
        );
        assert!(reports.lock().unwrap()[1].reused);
        // A changed config is a new session.
        let update: codersdk::UpdateMCPServerConfigRequest =
            serde_json::from_value(json!({"description": "changed"})).unwrap();
        store
            .update_mcp_server_config(id, &update, &keys)
            .await
            .unwrap();
        engine
            .send_message(&actor, chat.id, text_message("third"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert_eq!(scripted.initializations(), 2);
        assert!(!reports.lock().unwrap()[2].reused);
        engine.shutdown().await;
    })
    .await;
}

fn text_message(text: &str) -> codersdk::CreateChatMessageRequest {
    codersdk::CreateChatMessageRequest {
        content: vec![codersdk::ChatInputPart::text(text)],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_servers_become_outcomes_and_error_results_and_the_turn_goes_on() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let keys = keyring();
        let hang = ScriptedMcp::start(Script::HangOnInitialize).await;
        let crash = ScriptedMcp::start(Script::CloseMidCall {
            tools: vec![tool_json("boom")],
        })
        .await;
        let garbage = ScriptedMcp::start(Script::MalformedCall {
            tools: vec![tool_json("junk")],
        })
        .await;
        let huge = ScriptedMcp::start(Script::HugeResult {
            tools: vec![tool_json("big")],
            bytes: 50 * 1024 * 1024,
        })
        .await;
        let slow = ScriptedMcp::start(Script::SlowCall {
            tools: vec![tool_json("wait")],
            delay: Duration::from_secs(30),
        })
        .await;
        let mut many: Vec<Value> = (0..10_000)
            .map(|i| tool_json(&format!("t{i:05}")))
            .collect();
        // Two names that sanitize alike, and a schema that is not an object schema.
        many.push(tool_json("a.b"));
        many.push(tool_json("a b"));
        let crowded = ScriptedMcp::start(Script::Tools {
            tools: many,
            result: json!({"content": [{"type": "text", "text": "ok"}]}),
        })
        .await;
        // A schema that is JSON but not an object schema; its sibling stays usable.
        let odd = ScriptedMcp::start(Script::Tools {
            tools: vec![
                tool_json("fine"),
                json!({"name": "weird", "inputSchema": {"type": "string"}}),
            ],
            result: json!({"content": [{"type": "text", "text": "ok"}]}),
        })
        .await;
        let mut ids = Vec::new();
        for (slug, s) in [
            ("hang", &hang),
            ("crash", &crash),
            ("garbage", &garbage),
            ("huge", &huge),
            ("slow", &slow),
            ("crowded", &crowded),
            ("odd", &odd),
        ] {
            ids.push(server(&store, &keys, json!({"url": s.url(), "slug": slug})).await);
        }
        let model = ScriptedModel::new([
            Reply::ToolCalls(vec![
                ("c1".into(), "crash__boom".into(), "{}".into()),
                ("c2".into(), "garbage__junk".into(), "{}".into()),
                ("c3".into(), "huge__big".into(), "{}".into()),
                ("c4".into(), "slow__wait".into(), "{}".into()),
                ("c5".into(), "crowded__t00000".into(), "{}".into()),
            ]),
            Reply::Text("survived".into()),
        ]);
        let mut settings = McpSettings::default();
        settings.connect_timeout = Duration::from_millis(1500);
        settings.call_timeout = Duration::from_secs(2);
        settings.max_message_bytes = 4 * 1024 * 1024;
        let (mcp, reports) = connector(keys, settings);
        let engine = mcp_engine(&store, &model, &mcp).await;
        let chat = engine
            .create_chat(&actor, request_with(f.org, "go", ids))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let reports = reports.lock().unwrap().clone();
        let outcome = |slug: &str| reports.iter().find(|r| r.slug == slug).unwrap().outcome;
        assert_eq!(outcome("hang"), ConnectOutcome::Timeout);
        assert_eq!(outcome("crowded"), ConnectOutcome::Connected, "{reports:?}");
        let crowded_tools = reports.iter().find(|r| r.slug == "crowded").unwrap().tools;
        // The first 256 by name are kept; "a b" and "a.b" are among them and both become
        // `crowded__a_b`, of which one is reachable.
        assert_eq!(
            crowded_tools,
            chatd_core::mcp::DEFAULT_MAX_TOOLS_PER_SERVER - 1
        );
        let names = offered(&model, 0);
        assert_eq!(names.iter().filter(|n| *n == "crowded__a_b").count(), 1);
        assert!(!names.iter().any(|n| n == "crowded__t09999"));
        assert!(names.iter().any(|n| n == "odd__fine"), "{names:?}");
        assert!(!names.iter().any(|n| n == "odd__weird"));
        assert!(!names.iter().any(|n| n.starts_with("hang__")));
        let results = tool_results(&messages(&engine, &actor, chat.id).await);
        assert_eq!(results.len(), 5);
        for r in &results[..4] {
            assert!(r.is_error, "{} should fail: {r:?}", r.tool_name);
            assert!(r.mcp_server_config_id.is_some());
        }
        assert!(
            result_json(&results[3])
                .to_string()
                .contains("did not answer"),
            "{:?}",
            results[3]
        );
        assert!(!results[4].is_error);
        let last = messages(&engine, &actor, chat.id).await;
        let text: String = last
            .last()
            .unwrap()
            .content
            .iter()
            .map(|p| p.text.clone())
            .collect();
        assert_eq!(text, "survived");
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_server_that_cannot_be_prepared_fails_the_turn_closed() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        // Sealed with one key, opened with another: the secret cannot be read.
        let sealing = keyring();
        server(
            &store,
            &sealing,
            json!({
                "slug": "forced", "availability": "force_on", "auth_type": "api_key",
                "api_key_header": "X-Key", "api_key_value": "v",
            }),
        )
        .await;
        let other = Arc::new(Keyring::new("other", SecretKey::from_bytes([9; 32])).unwrap());
        let model = ScriptedModel::new([Reply::Text("never".into())]);
        let (mcp, _) = connector(other, McpSettings::default());
        let engine = mcp_engine(&store, &model, &mcp).await;
        let chat = engine
            .create_chat(&actor, request_with(f.org, "go", vec![]))
            .await
            .unwrap();
        let chat = wait_status(&engine, &actor, chat.id, ChatStatus::Error).await;
        let error = chat.last_error.unwrap();
        assert_eq!(
            error.message,
            chatd_core::mcp::FORCED_SERVER_UNAVAILABLE_MESSAGE
        );
        assert_eq!(model.calls.load(std::sync::atomic::Ordering::SeqCst), 0);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_turns_use_only_servers_allowed_in_plan_mode_and_new_chats_get_default_on() {
    on_each_backend(|store| async move {
        let scripted = ScriptedMcp::start(Script::Tools {
            tools: vec![tool_json("look")],
            result: json!({"content": [{"type": "text", "text": "seen"}]}),
        })
        .await;
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let keys = keyring();
        let planner = server(
            &store,
            &keys,
            json!({
                "url": scripted.url(), "slug": "planner", "allow_in_plan_mode": true,
                "availability": "default_on",
            }),
        )
        .await;
        let doer = server(
            &store,
            &keys,
            json!({
                "url": scripted.url(), "slug": "doer", "availability": "default_on",
            }),
        )
        .await;
        server(
            &store,
            &keys,
            json!({"url": scripted.url(), "slug": "optional"}),
        )
        .await;
        let model = ScriptedModel::new([Reply::Text("plan".into()), Reply::Text("act".into())]);
        let (mcp, _) = connector(keys, McpSettings::default());
        let engine = mcp_engine(&store, &model, &mcp).await;
        // No ids named: the default_on servers are pre-selected.
        let mut request = create_request(f.org, "plan it");
        request.plan_mode = Some(codersdk::ChatPlanMode::Plan);
        let chat = engine.create_chat(&actor, request).await.unwrap();
        let mut expected = vec![planner, doer];
        expected.sort();
        let mut got = chat.mcp_server_ids.clone();
        got.sort();
        assert_eq!(got, expected);
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let names = offered(&model, 0);
        assert!(names.contains(&"planner__look".to_owned()), "{names:?}");
        assert!(!names.contains(&"doer__look".to_owned()));
        // `[]` means none.
        let none = engine
            .create_chat(&actor, request_with(f.org, "none", vec![]))
            .await
            .unwrap();
        assert!(none.mcp_server_ids.is_empty());
        wait_status(&engine, &actor, none.id, ChatStatus::Waiting).await;
        assert!(!offered(&model, 1).iter().any(|n| n.contains("__look")));
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_mcp_json_stdio_server_runs_in_the_workspace_and_stops_with_its_session() {
    use chatd_core::workspace::{LocalWorkspaceConfig, LocalWorkspaceProvider};
    on_each_backend(|store| async move {
        let root = std::env::temp_dir().join(format!("chatd-wsmcp-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&root).unwrap();
        let provider =
            Arc::new(LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&root)).unwrap());
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let marker = format!("wsmcp-{}", Uuid::new_v4());
        let script = Everything::script();
        let mcp_json = json!({"mcpServers": {
            "ev": {"command": "node", "args": [script.to_str().unwrap(), "stdio", marker]},
            "broken": {"command": "/nonexistent/server"},
        }});
        let model = ScriptedModel::new([
            call(
                "c1",
                "write_file",
                json!({"path": ".mcp.json", "content": mcp_json.to_string()}),
            ),
            Reply::Text("written".into()),
            call("c2", "ev__echo", json!({"message": "from the workspace"})),
            Reply::Text("echoed".into()),
            Reply::Text("planned".into()),
        ]);
        let (mcp, _) = connector(keyring(), McpSettings::default());
        let engine =
            engine_with_config(&store, model.clone(), fast_settings(), |c: EngineConfig| {
                c.with_generated_titles(false)
                    .with_workspaces(provider.clone())
                    .with_mcp(mcp.clone())
            })
            .await;
        let chat = engine
            .create_chat(&actor, request_with(f.org, "set up", vec![]))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(!offered(&model, 0).iter().any(|n| n.starts_with("ev__")));
        engine
            .send_message(&actor, chat.id, text_message("echo"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let names = offered(&model, 2);
        assert!(names.contains(&"ev__echo".to_owned()), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("broken__")));
        let results = tool_results(&messages(&engine, &actor, chat.id).await);
        let echo = results.iter().find(|r| r.tool_name == "ev__echo").unwrap();
        assert!(!echo.is_error, "{echo:?}");
        assert_eq!(echo.mcp_server_config_id, None);
        assert!(result_json(echo)
            .as_str()
            .unwrap()
            .contains("from the workspace"));
        assert!(chatd_test_support::process::process_alive_with(&marker));
        // Plan turns do not offer workspace servers.
        let plan = codersdk::CreateChatMessageRequest {
            plan_mode: Some(codersdk::ChatPlanMode::Plan),
            ..text_message("plan")
        };
        engine.send_message(&actor, chat.id, plan).await.unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(!offered(&model, 4).iter().any(|n| n.starts_with("ev__")));
        // Deleting (archiving) the chat stops the server process.
        let archive: codersdk::UpdateChatRequest =
            serde_json::from_value(json!({"archived": true})).unwrap();
        engine.update_chat(&actor, chat.id, archive).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while chatd_test_support::process::process_alive_with(&marker) {
            assert!(
                std::time::Instant::now() < deadline,
                "the stdio server outlived its session"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        engine.shutdown().await;
        let _ = std::fs::remove_dir_all(&root);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_oauth2_token_and_header_values_reach_the_server_and_no_token_skips_it() {
    let everything = Everything::start(EverythingTransport::StreamableHttp);
    let proxy = HeaderProxy::start(&everything.origin()).await;
    let url = format!("{}/mcp", proxy.origin());
    on_each_backend(|store| {
        let url = url.clone();
        let proxy = proxy.clone();
        async move {
            let f = fixture(&store).await;
            let actor = Actor::user(f.user);
            let keys = keyring();
            let oauth = server(
                &store,
                &keys,
                json!({
                    "url": url, "slug": "oauthed", "auth_type": "oauth2",
                    "oauth2_client_id": "client-1", "oauth2_client_secret": "client-sekret",
                    "oauth2_auth_url": "http://127.0.0.1:1/authorize",
                    "oauth2_token_url": "http://127.0.0.1:1/token",
                }),
            )
            .await;
            let headed = server(
                &store,
                &keys,
                json!({
                    "url": url, "slug": "headed", "auth_type": "custom_headers",
                    "custom_headers": {"X-Org": "org-sekret"},
                    "custom_headers_user_keys": ["X-User-Key"],
                }),
            )
            .await;
            let token = chatd_core::store::McpOAuth2Token {
                access_token: codersdk::SecretString::new("user-access-token-77"),
                refresh_token: None,
                token_type: "Bearer".into(),
                expires_at: None,
                scopes: String::new(),
            };
            store
                .save_mcp_oauth2_token(oauth, f.user, &token, &keys)
                .await
                .unwrap();
            let values: codersdk::UpdateMCPServerUserHeadersRequest =
                serde_json::from_value(json!({"values": {"X-User-Key": "user-value-88"}})).unwrap();
            store
                .update_mcp_user_header_values(headed, f.user, &values, &keys)
                .await
                .unwrap();
            let model = ScriptedModel::new([
                call("c1", "oauthed__echo", json!({"message": "o"})),
                Reply::Text("done".into()),
                Reply::Text("again".into()),
            ]);
            let (mcp, reports) = connector(keys.clone(), McpSettings::default());
            let engine = mcp_engine(&store, &model, &mcp).await;
            let chat = engine
                .create_chat(&actor, request_with(f.org, "go", vec![oauth, headed]))
                .await
                .unwrap();
            wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
            let seen = proxy.requests();
            let call = seen
                .iter()
                .find(|r| r.rpc_method.as_deref() == Some("tools/call"))
                .unwrap();
            assert_eq!(
                header(call, "authorization").as_deref(),
                Some("Bearer user-access-token-77")
            );
            let initialize: Vec<_> = seen
                .iter()
                .filter(|r| r.rpc_method.as_deref() == Some("initialize"))
                .collect();
            assert!(initialize.iter().any(|r| {
                header(r, "x-org").as_deref() == Some("org-sekret")
                    && header(r, "x-user-key").as_deref() == Some("user-value-88")
            }));
            // Another user, without a token or values: the OAuth2 server is skipped, the
            // header server connects with the admin's header only.
            let other = store
                .create_user(chatd_core::store::NewUser {
                    username: "bob".into(),
                    name: "Bob".into(),
                    role: chatd_core::Role::Member,
                })
                .await
                .unwrap();
            store.add_member(f.org, other.id).await.unwrap();
            let bob = Actor::user(other.id);
            let before = proxy.requests().len();
            let chat = engine
                .create_chat(&bob, request_with(f.org, "go", vec![oauth, headed]))
                .await
                .unwrap();
            wait_status(&engine, &bob, chat.id, ChatStatus::Waiting).await;
            let names = offered(&model, 2);
            assert!(
                !names.iter().any(|n| n.starts_with("oauthed__")),
                "{names:?}"
            );
            assert!(names.iter().any(|n| n.starts_with("headed__")));
            let skipped = reports
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|r| r.slug == "oauthed")
                .cloned()
                .unwrap();
            assert_eq!(skipped.outcome, ConnectOutcome::Error);
            assert!(skipped.detail.unwrap().contains("not connected"));
            for r in &proxy.requests()[before..] {
                assert_eq!(header(r, "x-user-key"), None);
                assert_eq!(header(r, "authorization"), None);
            }
            engine.shutdown().await;
        }
    })
    .await;
}
