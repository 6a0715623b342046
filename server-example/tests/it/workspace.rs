//! Workspaces through the HTTP server, on both backends: a scripted model writes, edits,
//! runs `cat` on and reads back a file; the chat shows its `workspace_id`; and the demo
//! model's "Create hello.txt saying hi" turn.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::{Store, StoreOptions};
use chatd_core::workspace::{LocalWorkspaceConfig, LocalWorkspaceProvider};
use chatd_core::{Keyring, SecretKey};
use chatd_test_support::db::on_each_backend;
use chatd_test_support::scripted::{Reply, ScriptedModel, ScriptedResolver};
use codersdk::Uuid;
use serde_json::{json, Value};
use server_example::state::{build_on, ServerOptions};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("chatd-srv-ws-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server on `store` with workspaces under `root`; `model` scripts the turns, or the
/// demo model runs them when `None`.
async fn start(
    store: &Store,
    root: &std::path::Path,
    model: Option<Arc<ScriptedModel>>,
) -> (String, server_example::AppState, LocalWorkspaceProvider) {
    let keyring = Arc::new(Keyring::new("test", SecretKey::generate().unwrap()).unwrap());
    let mut options = ServerOptions::new(StoreOptions::new("unused"), keyring);
    options.admin_token = Some(chatd_test_support::server::ADMIN_TOKEN.to_owned());
    options.engine = chatd_test_support::scripted::fast_settings();
    options.models = model.map(|m| ScriptedResolver::new(m) as Arc<dyn chatd_core::ModelResolver>);
    let provider = LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(root)).unwrap();
    options.workspaces = Some(Arc::new(provider.clone()));
    let started = build_on(
        chatd_test_support::server::admin_over(store, &options),
        options,
    )
    .await
    .unwrap();
    let state = started.state;
    let app = server_example::router(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/api/experimental"), state, provider)
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> Value {
    let response = http
        .post(url)
        .header(
            "Coder-Session-Token",
            chatd_test_support::server::ADMIN_TOKEN,
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    let response = http
        .get(url)
        .header(
            "Coder-Session-Token",
            chatd_test_support::server::ADMIN_TOKEN,
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// Polls the chat over HTTP until it is `waiting`.
async fn wait_waiting(http: &reqwest::Client, api: &str, chat: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let chat = get(http, format!("{api}/chats/{chat}")).await;
        if chat["status"] == "waiting" {
            return chat;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chat stayed {}",
            chat["status"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The chat's messages, oldest first (the API pages newest first).
async fn messages(http: &reqwest::Client, api: &str, chat: &str) -> Vec<Value> {
    let page = get(http, format!("{api}/chats/{chat}/messages?limit=100")).await;
    let mut messages = page["messages"].as_array().unwrap().clone();
    messages.sort_by_key(|m| m["id"].as_i64().unwrap());
    messages
}

/// The results of the chat's tool calls, by tool name, in order.
async fn tool_results(http: &reqwest::Client, api: &str, chat: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for message in &messages(http, api, chat).await {
        for part in message["content"].as_array().unwrap() {
            if part["type"] == "tool-result" {
                out.push((
                    part["tool_name"].as_str().unwrap().to_owned(),
                    part["result"].clone(),
                ));
            }
        }
    }
    out
}

fn call(id: &str, name: &str, args: Value) -> Reply {
    Reply::ToolCalls(vec![(id.into(), name.into(), args.to_string())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_model_writes_edits_runs_cat_and_reads_back_over_http() {
    on_each_backend(|store| async move {
        let tmp = TempDir::new();
        let model = ScriptedModel::new([
            call(
                "c1",
                "write_file",
                json!({"path": "src/greeting.txt", "content": "hello world\n"}),
            ),
            call(
                "c2",
                "edit_files",
                json!({"files": [{"path": "src/greeting.txt",
                    "edits": [{"search": "world", "replace": "workspace"}]}]}),
            ),
            call("c3", "execute", json!({"command": "cat src/greeting.txt"})),
            call("c4", "read_file", json!({"path": "src/greeting.txt"})),
            Reply::Text("The file says hello workspace.".into()),
        ]);
        let (api, state, provider) = start(&store, &tmp.0, Some(model.clone())).await;
        let http = reqwest::Client::new();
        let chat = post(
            &http,
            format!("{api}/chats"),
            json!({"content": [{"type": "text", "text": "Make a greeting file"}]}),
        )
        .await;
        let id = chat["id"].as_str().unwrap().to_owned();
        let done = wait_waiting(&http, &api, &id).await;
        // The binding is on the wire.
        let workspace_id: Uuid = done["workspace_id"].as_str().unwrap().parse().unwrap();
        let file = provider
            .workspace_dir(workspace_id)
            .join("src/greeting.txt");
        assert_eq!(std::fs::read_to_string(file).unwrap(), "hello workspace\n");
        let results = tool_results(&http, &api, &id).await;
        let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["write_file", "edit_files", "execute", "read_file"]);
        assert_eq!(results[0].1["created"], true);
        assert_eq!(results[1].1["files"][0]["replacements"], 1);
        assert_eq!(results[2].1["exit_code"], 0);
        assert_eq!(results[2].1["stdout"], "hello workspace\n");
        assert_eq!(results[3].1["content"], "     1\thello workspace\n");
        for (_, result) in &results {
            assert!(result.get("error").is_none(), "{result}");
        }
        state.engine().clone().shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_model_creates_hello_txt_with_write_file_then_read_file() {
    on_each_backend(|store| async move {
        let tmp = TempDir::new();
        let (api, state, provider) = start(&store, &tmp.0, None).await;
        let http = reqwest::Client::new();
        let chat = post(
            &http,
            format!("{api}/chats"),
            json!({"content": [{"type": "text", "text": "Create hello.txt saying hi"}]}),
        )
        .await;
        let id = chat["id"].as_str().unwrap().to_owned();
        let done = wait_waiting(&http, &api, &id).await;
        let workspace_id: Uuid = done["workspace_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            std::fs::read_to_string(provider.workspace_dir(workspace_id).join("hello.txt"))
                .unwrap(),
            "hi\n"
        );
        let results = tool_results(&http, &api, &id).await;
        let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["write_file", "read_file"]);
        assert_eq!(results[1].1["content"], "     1\thi\n");
        // The final answer says what the file holds.
        let last = messages(&http, &api, &id).await.last().unwrap().clone();
        let text = last["content"][0]["text"].as_str().unwrap().to_owned();
        assert!(text.contains("hello.txt"), "{text}");
        assert!(text.contains("hi"), "{text}");
        state.engine().clone().shutdown().await;
    })
    .await;
}

#[test]
fn the_demo_asks_for_write_file_only_when_a_workspace_offers_it() {
    use chatprovider::{Message, ModelRequest, ToolDefinition};
    use server_example::demo::{DemoModel, DemoReply};
    let demo = DemoModel::new(Duration::ZERO);
    let ask = |text: &str, tools: &[&str]| {
        demo.reply(&ModelRequest {
            messages: vec![Message::user_text(text)],
            tools: tools
                .iter()
                .map(|t| ToolDefinition {
                    name: (*t).to_owned(),
                    description: String::new(),
                    input_schema: codersdk::RawJson::empty_object(),
                })
                .collect(),
            ..Default::default()
        })
    };
    let workspace = ["read_file", "write_file"];
    assert_eq!(
        ask("Create hello.txt saying hi", &workspace),
        DemoReply::ToolCall {
            name: "write_file".into(),
            arguments: r#"{"content":"hi\n","path":"hello.txt"}"#.into(),
        }
    );
    assert_eq!(
        ask(
            "please write notes/todo.md containing \"buy milk\"",
            &workspace
        ),
        DemoReply::ToolCall {
            name: "write_file".into(),
            arguments: r#"{"content":"buy milk\n","path":"notes/todo.md"}"#.into(),
        }
    );
    // No file name, or no workspace: the canned answer (which mentions files only when a
    // workspace is there).
    match ask("Create something nice", &workspace) {
        DemoReply::Text(text) => assert!(text.contains("hello.txt"), "{text}"),
        other => panic!("{other:?}"),
    }
    match ask("Create hello.txt saying hi", &[]) {
        DemoReply::Text(text) => assert!(!text.contains("or to create hello.txt"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_workspaces_the_server_tells_the_model_it_has_none() {
    on_each_backend(|store| async move {
        let model = ScriptedModel::new([Reply::Text("I cannot.".into())]);
        let server = chatd_test_support::server::TestServer::start(&store, model.clone()).await;
        let chat = post(
            &server.http,
            server.api("/chats"),
            json!({"content": [{"type": "text", "text": "run ls"}]}),
        )
        .await;
        let id = chat["id"].as_str().unwrap().to_owned();
        let done = wait_waiting(&server.http, &server.api(""), &id).await;
        assert!(done.get("workspace_id").is_none(), "{done}");
        let request = model.requests.lock().unwrap()[0].clone();
        assert!(request
            .system
            .iter()
            .any(|b| b == chatd_core::workspace::context::NO_WORKSPACE_PROMPT));
        assert!(request.tools.iter().all(|t| t.name != "execute"));
        server.stop().await;
    })
    .await;
}
