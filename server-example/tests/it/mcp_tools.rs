//! MCP tools through the reference server, on both backends: an admin configures the real
//! `server-everything` (from npm) over HTTP, a member's chat selects it, the scripted model
//! calls its tools, the results come back attributed to the server with the credential
//! never shown, and `/metrics` counts the connect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use chatd_test_support::db::on_each_backend;
use chatd_test_support::mcp::{header, Everything, EverythingTransport, HeaderProxy};
use chatd_test_support::scripted::{Reply, ScriptedModel};
use chatd_test_support::server::{TestServer, ADMIN_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const API_KEY: &str = "everything-KEY-never-shown-41c9";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_uses_server_everything_tools_configured_over_the_api() {
    let everything = Everything::start(EverythingTransport::StreamableHttp);
    let proxy = HeaderProxy::start(&everything.origin()).await;
    let url = format!("{}/mcp", proxy.origin());
    on_each_backend(|store| {
        let url = url.clone();
        let proxy = proxy.clone();
        async move {
            let model = ScriptedModel::new([
                Reply::ToolCalls(vec![
                    (
                        "c1".into(),
                        "everything__echo".into(),
                        json!({"message": "from chat"}).to_string(),
                    ),
                    (
                        "c2".into(),
                        "everything__get-sum".into(),
                        json!({"a": 40, "b": 2}).to_string(),
                    ),
                ]),
                Reply::Text("done".into()),
            ]);
            let server = TestServer::start(&store, model.clone()).await;
            let created = server
                .request(Method::POST, "/mcp/servers")
                .token(Some(ADMIN_TOKEN))
                .json(&json!({
                    "display_name": "Everything", "slug": "everything",
                    "transport": "streamable_http", "url": url,
                    "auth_type": "api_key", "api_key_header": "X-Api-Key",
                    "api_key_value": API_KEY, "availability": "default_off", "enabled": true,
                }))
                .never_showing(&[API_KEY])
                .send()
                .await;
            assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
            let id = created.json["id"].as_str().unwrap().to_owned();
            let member = server.user("mia").await;
            let chat = server
                .request(Method::POST, "/chats")
                .token(Some(&member.token))
                .json(&json!({
                    "content": [{"type": "text", "text": "use everything"}],
                    "mcp_server_ids": [id],
                }))
                .send()
                .await;
            assert_eq!(chat.status, StatusCode::CREATED, "{}", chat.text);
            let chat_id = chat.json["id"].as_str().unwrap().to_owned();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let c = server
                    .request(Method::GET, &format!("/chats/{chat_id}"))
                    .token(Some(&member.token))
                    .send()
                    .await;
                if c.json["status"] == "waiting" {
                    break;
                }
                assert_ne!(c.json["status"], "error", "{}", c.text);
                assert!(tokio::time::Instant::now() < deadline, "{}", c.text);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            let page = server
                .request(Method::GET, &format!("/chats/{chat_id}/messages?limit=50"))
                .token(Some(&member.token))
                .never_showing(&[API_KEY])
                .send()
                .await;
            let results: Vec<Value> = page.json["messages"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|m| m["content"].as_array().unwrap().clone())
                .filter(|p| p["type"] == "tool-result")
                .collect();
            assert_eq!(results.len(), 2, "{}", page.text);
            for r in &results {
                assert_eq!(r["mcp_server_config_id"], json!(id));
                assert!(r.get("is_error").is_none() || r["is_error"] == false, "{r}");
            }
            let texts: Vec<String> = results.iter().map(|r| r["result"].to_string()).collect();
            assert!(texts.iter().any(|t| t.contains("from chat")), "{texts:?}");
            assert!(texts.iter().any(|t| t.contains("42")), "{texts:?}");
            // The key reached the server, and only there.
            assert!(proxy
                .requests()
                .iter()
                .any(|r| header(r, "x-api-key").as_deref() == Some(API_KEY)));
            let metrics = reqwest::get(format!("{}/metrics", server.base))
                .await
                .unwrap();
            let text = metrics.text().await.unwrap();
            assert!(
                text.contains("chat_mcp_connects_total{outcome=\"connected\"}"),
                "{text}"
            );
            assert!(text.contains("chat_mcp_connect_seconds_count"));
            server.stop().await;
        }
    })
    .await;
}
