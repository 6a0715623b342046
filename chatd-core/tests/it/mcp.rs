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
    ChatMessage, ChatMessagePart, ChatMessagePartType, ChatStatus, CreateChatRequest,
    MessagePage, Uuid,
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

/// A connector that records every report.
fn connector(keyring: Arc<Keyring>, settings: McpSettings) -> (Arc<McpConnector>, Arc<Mutex<Vec<ConnectReport>>>) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    let c = McpConnector::new(keyring)
        .with_settings(settings)
        .with_observer(Arc::new(move |r: &ConnectReport| sink.lock().unwrap().push(r.clone())));
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
    engine.list_messages(actor, chat, &all()).await.unwrap().messages
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
    for transport in [EverythingTransport::StreamableHttp, EverythingTransport::Sse] {
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
                        ("c1".into(), "everything__echo".into(), json!({"message": "hi there"}).to_string()),
                        ("c2".into(), "everything__get-sum".into(), json!({"a": 2, "b": 3}).to_string()),
                        ("c3".into(), "everything__get-tiny-image".into(), "{}".into()),
                    ]),
                    Reply::Text("done".into()),
                ]);
                let (mcp, reports) = connector(keys, McpSettings::default());
                let engine = engine_with_config(&store, model.clone(), fast_settings(), |c: EngineConfig| {
                    c.with_generated_titles(false).with_mcp(mcp.clone())
                })
                .await;
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
                assert!(result_json(&results[0]).as_str().unwrap().contains("hi there"));
                assert!(result_json(&results[1]).as_str().unwrap().contains('5'));
                // The image is a chat file, not base64 in the model's context.
                let image = result_json(&results[2]);
                let blocks = image["content"].as_array().unwrap();
                let stored: Vec<_> = blocks.iter().filter(|b| b["type"] == "image").collect();
                assert_eq!(stored.len(), 1, "{image}");
                let file_id: Uuid = stored[0]["file_id"].as_str().unwrap().parse().unwrap();
                let file = store.get_file(file_id).await.unwrap().unwrap();
                assert_eq!(file.metadata.mime_type, "image/png");
                assert!(!image.to_string().contains("iVBOR"), "no base64 in the result");
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
