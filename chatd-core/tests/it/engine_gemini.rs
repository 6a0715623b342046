//! A two-step tool loop end to end through the real `StoreModelResolver` and the real
//! Gemini client, against a local server speaking Gemini's SSE: the model calls a built-in
//! tool, the engine runs it and sends the result back with the call's thought signature,
//! and the answer is stored, priced from the embedded price book, on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::StoreOptions;
use chatd_core::tools::{Tool, ToolContext, ToolOutput, ToolRegistry};
use chatd_core::{
    Actor, Engine, EngineConfig, EngineSettings, Keyring, SecretKey, StoreModelResolver,
};
use chatd_test_support::db::{fixture, on_each_backend, RawSql};
use chatd_test_support::replay::{ReplayServer, Reply};
use chatprovider::ProviderApiKeys;
use codersdk::{
    ChatInputPart, ChatMessagePartType, ChatMessageRole, ChatStatus, CreateChatModelConfigRequest,
    CreateChatProviderConfigRequest, CreateChatRequest, MessagePage, RawJson, SecretString,
};
use serde_json::{json, Value};

const KEY: &str = "AIzaSy-engine-test-key-0123456789";
const SIGNATURE: &str = "CiQBVKhc7-step-one-signature";

/// A built-in tool that echoes its arguments.
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
        ToolOutput::ok(args)
    }
}

fn sse(events: &[Value]) -> Vec<u8> {
    events
        .iter()
        .map(|e| format!("data: {e}\r\n\r\n"))
        .collect::<String>()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_tool_loop_runs_through_the_engine() {
    on_each_backend(|store| async move {
        let step1 = sse(&[
            json!({"candidates":[{"content":{"role":"model","parts":[
                {"text":"I should echo the city.","thought":true}]},"index":0}],
                "responseId":"resp-step-1","modelVersion":"gemini-2.5-flash"}),
            json!({"candidates":[{"content":{"role":"model","parts":[
                {"functionCall":{"name":"echo","args":{"city":"Paris"}},"thoughtSignature":SIGNATURE}]},
                "finishReason":"STOP","index":0}],
                "usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":10,"thoughtsTokenCount":20,"totalTokenCount":130},
                "responseId":"resp-step-1","modelVersion":"gemini-2.5-flash"}),
        ]);
        let step2 = sse(&[json!({"candidates":[{"content":{"role":"model","parts":[
                {"text":"Echoed Paris."}]},"finishReason":"STOP","index":0}],
                "usageMetadata":{"promptTokenCount":150,"cachedContentTokenCount":50,"candidatesTokenCount":4,"totalTokenCount":154},
                "responseId":"resp-step-2","modelVersion":"gemini-2.5-flash"})]);
        let provider =
            ReplayServer::start(vec![Reply::sse(vec![step1]), Reply::sse(vec![step2])]).await;

        let keyring = Arc::new(Keyring::new("k1", SecretKey::from_bytes([7; 32])).unwrap());
        let keys = ProviderApiKeys::new();
        let req = CreateChatProviderConfigRequest {
            provider: "google".into(),
            api_key: Some(SecretString::new(KEY)),
            base_url: Some(provider.url("/v1beta")),
            ..Default::default()
        };
        let valid = chatprovider::validate_create_provider_request(&req, &keys).unwrap();
        store
            .create_provider_config(&valid, &keyring)
            .await
            .unwrap();
        let req = CreateChatModelConfigRequest {
            provider: "google".into(),
            model: "gemini-2.5-flash".into(),
            context_limit: Some(1_000_000),
            ..Default::default()
        };
        let valid = codersdk::validate_create_model_config(&req).unwrap();
        store.create_model_config(&valid, &keys).await.unwrap();

        let resolver = StoreModelResolver::new(store.clone(), keyring, keys);
        let mut settings = EngineSettings::default();
        settings.acquire_interval = Duration::from_millis(50);
        let config = EngineConfig::new(StoreOptions::new("unused"), Arc::new(resolver))
            .with_settings(settings)
            .with_tools(ToolRegistry::new().with_tool(Arc::new(Echo)).unwrap())
            .with_generated_titles(false)
            .with_turn_summaries(false)
            .with_subagents(false);
        let engine = Engine::with_store(store.clone(), config).await.unwrap();
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);

        let chat = engine
            .create_chat(
                &actor,
                CreateChatRequest {
                    organization_id: Some(f.org),
                    content: vec![ChatInputPart::text("Echo Paris, please.")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while engine.get_chat(&actor, chat.id).await.unwrap().status != ChatStatus::Waiting {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?} on {:?}; requests {}",
                engine.get_chat(&actor, chat.id).await.unwrap(),
                store.dialect(),
                provider.requests().len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // The wire: two streaming calls with the key header; the second replays the call
        // with its signature and answers it in a user turn.
        let requests = provider.requests();
        assert_eq!(requests.len(), 2);
        for r in &requests {
            assert_eq!(
                r.path,
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
            );
            assert_eq!(r.query.as_deref(), Some("alt=sse"));
            assert_eq!(r.header("x-goog-api-key"), Some(KEY));
        }
        let first = requests[0].json();
        assert_eq!(
            first["systemInstruction"]["parts"][0]["text"],
            chatd_core::prompt::DEFAULT_SYSTEM_PROMPT
        );
        let declared: Vec<&str> = first["tools"][0]["functionDeclarations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert!(declared.contains(&"echo"), "{declared:?}");
        let contents = requests[1].json()["contents"].clone();
        let contents = contents.as_array().unwrap();
        assert_eq!(contents.len(), 3, "{contents:?}");
        assert_eq!(contents[0]["role"], "user");
        assert_eq!(contents[1]["role"], "model");
        assert_eq!(
            contents[1]["parts"],
            json!([{"functionCall":{"id":"resp-step-1:call:0","name":"echo","args":{"city":"Paris"}},
                    "thoughtSignature":SIGNATURE}])
        );
        assert_eq!(contents[2]["role"], "user");
        let response = &contents[2]["parts"][0]["functionResponse"];
        assert_eq!(response["id"], "resp-step-1:call:0");
        assert_eq!(response["name"], "echo");
        assert_eq!(response["response"]["city"], "Paris");

        // The history: user, assistant (thought + call, signature kept), tool, assistant.
        let page = MessagePage {
            before_id: None,
            after_id: Some(0),
            limit: 50,
            ascending: true,
        };
        let messages = engine
            .list_messages(&actor, chat.id, &page)
            .await
            .unwrap()
            .messages;
        let roles: Vec<ChatMessageRole> = messages.iter().map(|m| m.role.clone()).collect();
        assert_eq!(
            roles,
            [
                ChatMessageRole::User,
                ChatMessageRole::Assistant,
                ChatMessageRole::Tool,
                ChatMessageRole::Assistant
            ]
        );
        let call = messages[1]
            .content
            .iter()
            .find(|p| p.part_type == ChatMessagePartType::ToolCall)
            .unwrap();
        assert_eq!(call.tool_call_id, "resp-step-1:call:0");
        assert!(messages[1]
            .content
            .iter()
            .any(|p| p.part_type == ChatMessagePartType::Reasoning
                && p.text == "I should echo the city."));
        let answer: String = messages[3]
            .content
            .iter()
            .filter(|p| p.part_type == ChatMessagePartType::Text)
            .map(|p| p.text.as_str())
            .collect();
        assert_eq!(answer, "Echoed Paris.");

        // Usage normalized (output = candidates + thoughts; input without the cache) and
        // priced from the embedded price book.
        let book = chatcost::PriceBook::embedded()
            .lookup("google", "gemini-2.5-flash")
            .unwrap();
        let u1 = messages[1].usage.unwrap();
        assert_eq!(
            (u1.input_tokens, u1.output_tokens, u1.reasoning_tokens),
            (Some(100), Some(30), Some(20))
        );
        let u2 = messages[3].usage.unwrap();
        assert_eq!(
            (u2.input_tokens, u2.cache_read_tokens, u2.output_tokens),
            (Some(100), Some(50), Some(4))
        );
        for (m, u) in [(&messages[1], u1), (&messages[3], u2)] {
            let expected = chatcost::calculate_total_cost_micros(&u, Some(&book));
            assert!(expected.is_some_and(|c| c > 0));
            let stored: Option<i64> =
                sqlx::query_scalar("SELECT total_cost_micros FROM chat_messages WHERE id = $1")
                    .bind(m.id)
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
            assert_eq!(stored, expected);
        }
        engine.shutdown().await;
    })
    .await;
}
