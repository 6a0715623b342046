//! A third-party bot against the server, using only HTTP and WebSockets (through the typed
//! client), with the real OpenAI client as the provider behind the server, talking to a
//! local server that replays recorded OpenAI streams. On both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chatd_core::store::StoreOptions;
use chatd_core::{Keyring, SecretKey};
use codersdk::client::{Client, ListChatsOptions};
use codersdk::{
    ChatInputPart, ChatStatus, ChatWatchEventKind, CreateChatModelConfigRequest,
    CreateChatProviderConfigRequest, CreateChatRequest, DynamicTool, RawJson, SecretString,
    SubmitToolResultsRequest, ToolResult,
};
use common::on_each_backend;
use futures_util::StreamExt;
use server_example::state::{build_on, ServerOptions};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata"))
}

/// Serves the queued recordings, one per request, and keeps the request bodies.
#[derive(Default)]
struct Replay {
    bodies: Mutex<VecDeque<Vec<u8>>>,
    requests: Mutex<Vec<serde_json::Value>>,
}

async fn replay(State(replay): State<Arc<Replay>>, body: Bytes) -> Response {
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    // Title requests (the chat's automatic title) are answered aside so they never take a
    // recording meant for the turn.
    let is_title = json["messages"][0]["content"]
        .as_str()
        .is_some_and(|s| s == chatd_core::title::TITLE_SYSTEM_PROMPT);
    if is_title {
        let sse = "data: {\"id\":\"t\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Paris weather\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        return ([(header::CONTENT_TYPE, "text/event-stream")], sse).into_response();
    }
    replay.requests.lock().unwrap().push(json);
    match replay.bodies.lock().unwrap().pop_front() {
        Some(body) => ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "no more recordings").into_response(),
    }
}

async fn start_replay(files: &[&str]) -> (String, Arc<Replay>) {
    let state = Arc::new(Replay::default());
    for f in files {
        let body = std::fs::read(fixtures_dir().join("streams").join(f)).unwrap();
        state.bodies.lock().unwrap().push_back(body);
    }
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(replay))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/v1"), state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_answers_a_client_tool_call_over_http_with_openai_replayed_behind_the_server() {
    on_each_backend(|store| async move {
        let (provider_url, recorded) = start_replay(&[
            "openai-chat--tool-call--single.sse",
            "openai-chat--text--usage.sse",
        ])
        .await;
        // The real server, with its own store-backed model resolution.
        let keyring = Arc::new(Keyring::new("test", SecretKey::generate().unwrap()).unwrap());
        let mut options = ServerOptions::new(StoreOptions::new("unused"), keyring);
        options.admin_token = Some(common::ADMIN_TOKEN.to_owned());
        options.engine = common::scripted::fast_settings();
        let state = build_on(common::admin_over(&store, &options), options)
            .await
            .unwrap()
            .state;
        let app = server_example::router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });

        // The administrator configures OpenAI (key sealed at rest) pointing at the replay.
        let admin = Client::new(&base, common::ADMIN_TOKEN).unwrap();
        admin
            .create_chat_provider(&CreateChatProviderConfigRequest {
                provider: "openai".into(),
                api_key: Some(SecretString::from("sk-test-replay")),
                base_url: Some(provider_url),
                ..Default::default()
            })
            .await
            .unwrap();
        admin
            .create_chat_model_config(&CreateChatModelConfigRequest {
                provider: "openai".into(),
                model: "gpt-4o".into(),
                is_default: Some(true),
                context_limit: Some(128_000),
                // The recordings are Chat Completions streams.
                model_config: Some(codersdk::ChatModelCallConfig {
                    openai_config: Some(codersdk::ChatModelOpenAIConfig {
                        use_responses_api: Some(false),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        let bot_user = admin
            .create_user(&codersdk::client::CreateUserRequest {
                username: "weather-bot".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let token = admin.create_token(&bot_user.username).await.unwrap();
        let bot = Client::new(&base, token.key.expose()).unwrap();

        // The bot watches its chats, then creates one with labels and a client tool.
        let mut watch = bot.watch().await.unwrap();
        let labels = BTreeMap::from([("source".to_owned(), "weather-bot".to_owned())]);
        let chat = bot
            .create_chat(&CreateChatRequest {
                content: vec![ChatInputPart::text("What's the weather in Paris?")],
                labels: labels.clone(),
                unsafe_dynamic_tools: vec![DynamicTool {
                    name: "get_weather".into(),
                    description: "Current weather of a city".into(),
                    input_schema: RawJson::from_json(
                        r#"{"type":"object","properties":{"city":{"type":"string"}}}"#,
                    )
                    .unwrap(),
                }],
                ..Default::default()
            })
            .await
            .unwrap();

        // action_required arrives on the watch stream with the recorded call.
        let call = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let event = watch.next().await.unwrap().unwrap();
                if event.kind == ChatWatchEventKind::ActionRequired && event.chat.id == chat.id {
                    break event.tool_calls.unwrap().remove(0);
                }
            }
        })
        .await;
        let Ok(call) = call else {
            panic!(
                "no action_required: {:?}; provider requests {:?}",
                bot.chat(chat.id).await,
                recorded.requests.lock().unwrap()
            );
        };
        assert_eq!(call.tool_name, "get_weather");
        assert!(call.args.contains("city"), "{}", call.args);

        // The output is sent as a JSON string that contains JSON.
        bot.submit_tool_results(
            chat.id,
            &SubmitToolResultsRequest {
                results: vec![ToolResult {
                    tool_call_id: call.tool_call_id.clone(),
                    output: Some(
                        RawJson::from_json(r#""{\"temp_c\":18,\"sky\":\"clear\"}""#).unwrap(),
                    ),
                    is_error: false,
                }],
            },
        )
        .await
        .unwrap();

        // The chat finishes in `waiting`, seen on the watch stream.
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let event = watch.next().await.unwrap().unwrap();
                if event.kind == ChatWatchEventKind::StatusChange
                    && event.chat.id == chat.id
                    && event.chat.status == ChatStatus::Waiting
                {
                    break;
                }
            }
        })
        .await
        .expect("status_change to waiting on the watch stream");

        // The provider got the tool result back as structured JSON, under the call's id.
        let requests = recorded.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 2);
        let second = requests[1]["messages"].as_array().unwrap();
        let tool = second.iter().find(|m| m["role"] == "tool").unwrap();
        assert_eq!(tool["tool_call_id"], call.tool_call_id.as_str());
        assert!(tool["content"].as_str().unwrap().contains("temp_c"));

        // The reply is stored, and the chat is found again by its label.
        let found = bot
            .chats(&ListChatsOptions {
                labels,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            found.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![chat.id]
        );
        let messages = bot
            .chat_messages(chat.id, &Default::default())
            .await
            .unwrap()
            .messages;
        let reply = messages
            .iter()
            .find(|m| {
                m.role == codersdk::ChatMessageRole::Assistant
                    && m.usage.is_some_and(|u| u.output_tokens == Some(30))
            })
            .expect("the recorded text reply");
        assert!(reply.content.iter().any(|p| p.text.contains("weather app")));
        state.engine().clone().shutdown().await;
    })
    .await;
}
