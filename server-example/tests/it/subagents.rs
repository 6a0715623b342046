//! Sub-agents end to end over HTTP, on both backends: a parent chat writes two files into
//! its workspace (a local directory), spawns two explore sub-agents that each read one,
//! waits for both, and summarises their reports; the children are listed under the parent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::StoreOptions;
use chatd_core::workspace::{LocalWorkspaceConfig, LocalWorkspaceProvider};
use chatd_core::{Keyring, SecretKey};
use chatd_test_support::db::on_each_backend;
use chatd_test_support::scripted::{results_of, spawned, Reply, RoutedModel, RoutedResolver, Step};
use codersdk::Uuid;
use serde_json::{json, Value};
use server_example::state::{build_on, ServerOptions};

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method, url).header(
        "Coder-Session-Token",
        chatd_test_support::server::ADMIN_TOKEN,
    );
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

fn calls(list: &[(&str, &str, Value)]) -> Reply {
    Reply::ToolCalls(
        list.iter()
            .map(|(id, name, args)| ((*id).to_owned(), (*name).to_owned(), args.to_string()))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_spawns_two_explore_children_that_read_its_workspace_and_summarises() {
    on_each_backend(|store| async move {
        let tmp = TempDir(std::env::temp_dir().join(format!("chatd-srv-sub-{}", Uuid::new_v4())));
        std::fs::create_dir_all(&tmp.0).unwrap();
        let model = RoutedModel::new();
        model.script(
            "parent",
            vec![
                Step::Fixed(calls(&[
                    ("p1", "write_file", json!({"path": "alpha.txt", "content": "alpha is 1\n"})),
                    ("p2", "write_file", json!({"path": "beta.txt", "content": "beta is 2\n"})),
                ])),
                Step::Fixed(calls(&[
                    ("s1", "spawn_subagent", json!({"subagent_type": "explore", "prompt": "alpha: what does alpha.txt say?"})),
                    ("s2", "spawn_subagent", json!({"subagent_type": "explore", "prompt": "beta: what does beta.txt say?"})),
                ])),
                Step::Computed(Box::new(|r| {
                    let ids = spawned(r);
                    assert_eq!(ids.len(), 2, "{:?}", r.messages.last());
                    calls(&[
                        ("w1", "wait_agent", json!({"chat_id": ids[0]})),
                        ("w2", "wait_agent", json!({"chat_id": ids[1]})),
                    ])
                })),
                // The summary is built from the reports the parent received.
                Step::Computed(Box::new(|r| {
                    let reports: Vec<String> = results_of(r, "wait_agent")
                        .iter()
                        .map(|w| w["report"].as_str().unwrap().to_owned())
                        .collect();
                    Reply::Text(format!("Summary: {}", reports.join(" / ")))
                })),
            ],
        );
        for (key, file) in [("alpha:", "alpha.txt"), ("beta:", "beta.txt")] {
            model.script(
                key,
                vec![
                    Step::Fixed(calls(&[("r1", "read_file", json!({"path": file}))])),
                    Step::Computed(Box::new(|r| {
                        let read = results_of(r, "read_file");
                        let content = read[0]["content"].as_str().unwrap_or_default().trim().to_owned();
                        Reply::Text(format!("the file says {content}"))
                    })),
                ],
            );
        }
        let keyring = Arc::new(Keyring::new("test", SecretKey::generate().unwrap()).unwrap());
        let mut options = ServerOptions::new(StoreOptions::new("unused"), keyring);
        options.admin_token = Some(chatd_test_support::server::ADMIN_TOKEN.to_owned());
        options.engine = chatd_test_support::scripted::fast_settings();
        options.models = Some(RoutedResolver::new(model.clone()));
        let provider = LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&tmp.0)).unwrap();
        options.workspaces = Some(Arc::new(provider.clone()));
        let started = build_on(chatd_test_support::server::admin_over(&store, &options), options)
            .await
            .unwrap();
        let state = started.state;
        let (listener, base) = chatd_test_support::server::bind().await;
        chatd_test_support::server::serve_on(listener, server_example::router(state.clone()));
        let api = format!("{base}/api/experimental");
        let http = reqwest::Client::new();

        let chat = call(
            &http,
            reqwest::Method::POST,
            format!("{api}/chats"),
            Some(json!({"content": [{"type": "text", "text": "parent investigate both files"}]})),
        )
        .await;
        let id = chat["id"].as_str().unwrap().to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let chat = loop {
            let chat = call(&http, reqwest::Method::GET, format!("{api}/chats/{id}"), None).await;
            if chat["status"] == "waiting" {
                break chat;
            }
            assert!(tokio::time::Instant::now() < deadline, "parent stayed {}", chat["status"]);
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(chat["root_chat_id"], json!(id));

        // The parent's last message summarises both children's reports.
        let page = call(&http, reqwest::Method::GET, format!("{api}/chats/{id}/messages?limit=100"), None).await;
        let newest = &page["messages"][0];
        let text: String = newest["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] == "text")
            .map(|p| p["text"].as_str().unwrap().to_owned())
            .collect();
        // read_file numbers the lines it returns.
        assert_eq!(
            text,
            "Summary: the file says 1\talpha is 1 / the file says 1\tbeta is 2"
        );

        // GET /chats lists the parent only, its children under it.
        let list = call(&http, reqwest::Method::GET, format!("{api}/chats"), None).await;
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 1);
        let children = list[0]["children"].as_array().unwrap();
        assert_eq!(children.len(), 2);
        for child in children {
            assert_eq!(child["parent_chat_id"], json!(id));
            assert_eq!(child["root_chat_id"], json!(id));
            assert_eq!(child["workspace_id"], chat["workspace_id"]);
            assert_eq!(child["status"], "waiting");
        }
        // The explore children were offered the read-only tools only.
        for key in ["alpha:", "beta:"] {
            let mut names: Vec<String> = model.requests_of(key)[0].tools.iter().map(|t| t.name.clone()).collect();
            names.sort();
            assert_eq!(names, ["execute", "process_output", "read_file"]);
        }
        state.shutdown().await;
    })
    .await;
}
