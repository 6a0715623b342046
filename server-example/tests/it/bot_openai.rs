//! A third-party bot against the server, using only HTTP and WebSockets (through the typed
//! client), with the real OpenAI client as the provider behind the server, talking to a
//! local server that replays recorded OpenAI streams. On both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::time::Duration;

use chatd_test_support::db::on_each_backend;
use chatd_test_support::replay::{Recorded, ReplayServer, Reply};
use chatd_test_support::server::{TestServer, ADMIN_TOKEN};
use codersdk::client::{Client, ListChatsOptions};
use codersdk::{
    ChatInputPart, ChatStatus, ChatWatchEventKind, CreateChatModelConfigRequest,
    CreateChatProviderConfigRequest, CreateChatRequest, DynamicTool, RawJson, SecretString,
    SubmitToolResultsRequest, ToolResult,
};
use futures_util::StreamExt;

/// The label the engine's aside request asks for: the chat's automatic title or the turn
/// summary; `None` for a turn request.
fn aside_label(request: &Recorded) -> Option<&'static str> {
    match request.json_or_null()["messages"][0]["content"].as_str() {
        Some(chatd_core::title::TITLE_SYSTEM_PROMPT) => Some("Paris weather"),
        Some(chatd_core::TURN_SUMMARY_SYSTEM_PROMPT) => Some("Reported the weather"),
        _ => None,
    }
}

/// Whether `request` asks for a title or a turn summary, not a turn's reply.
fn is_aside(request: &Recorded) -> bool {
    aside_label(request).is_some()
}

/// Title and turn summary requests are answered aside so they never take a recording meant
/// for the turn.
fn answer_aside(request: &Recorded) -> Option<Reply> {
    aside_label(request).map(|label| {
        let chunk = serde_json::json!({
            "id": "t",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": label}, "finish_reason": "stop"}],
        });
        let sse = format!("data: {chunk}\n\ndata: [DONE]\n\n");
        Reply::sse(vec![sse.into_bytes()])
    })
}

/// The turn requests the provider received (titles and summaries left out), as JSON; each must have
/// been a Chat Completions request.
fn turn_requests(provider: &ReplayServer) -> Vec<serde_json::Value> {
    provider
        .requests()
        .iter()
        .filter(|r| !is_aside(r))
        .map(|r| {
            assert_eq!(
                (r.method.as_str(), r.path.as_str()),
                ("POST", "/v1/chat/completions")
            );
            r.json()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_answers_a_client_tool_call_over_http_with_openai_replayed_behind_the_server() {
    on_each_backend(|store| async move {
        let recorded = ReplayServer::start_with_responder(
            vec![
                Reply::recorded("openai-chat--tool-call--single.sse"),
                Reply::recorded("openai-chat--text--usage.sse"),
            ],
            answer_aside,
        )
        .await;
        let provider_url = recorded.url("/v1");
        // The real server, with its own store-backed model resolution.
        let server = TestServer::builder(&store).own_models().start().await;
        let (base, state) = (server.base.clone(), server.state.clone());

        // The administrator configures OpenAI (key sealed at rest) pointing at the replay.
        let admin = Client::new(&base, ADMIN_TOKEN).unwrap();
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
                recorded.requests()
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
        let requests = turn_requests(&recorded);
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
