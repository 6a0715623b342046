//! One turn end to end through the real OpenAI Chat Completions client, against a local
//! server replaying recorded provider streams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::StoreOptions;
use chatd_core::{
    Actor, Engine, EngineConfig, EngineSettings, ModelResolver, ModelSelection, ResolvedModel,
    TurnModelRequest,
};
use chatd_test_support::db::{fixture, on_each_backend, RawSql};
use chatd_test_support::replay::ReplayServer;
use chatprovider::{ClientSettings, OpenAiChatModel, Provider};
use codersdk::{
    ChatError, ChatInputPart, ChatMessagePartType, ChatMessageRole, ChatStatus, CreateChatRequest,
    MessagePage, SecretString, Uuid,
};

/// Resolves every chat to `gpt-4o` at the replay server, without prices of its own so
/// the engine fills them from the embedded price book.
#[derive(Debug)]
struct OpenAiAt {
    base_url: String,
    model_config_id: Uuid,
}

#[async_trait::async_trait]
impl ModelResolver for OpenAiAt {
    async fn select(&self, _selection: ModelSelection) -> chatd_core::Result<Uuid> {
        Ok(self.model_config_id)
    }

    async fn resolve(&self, _turn: TurnModelRequest) -> Result<ResolvedModel, ChatError> {
        let model = OpenAiChatModel::new(
            Provider::OpenAi,
            "gpt-4o",
            Some(SecretString::from("sk-test-not-a-key")),
            Some(&self.base_url),
            ClientSettings::default(),
        )
        .map_err(|e| ChatError::generic(e.to_string()))?;
        Ok(ResolvedModel::new(self.model_config_id, Arc::new(model)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_openai_stream_becomes_a_priced_assistant_message() {
    on_each_backend(|store| async move {
        let replay = ReplayServer::recorded(&["openai-chat--text--usage.sse"]).await;
        let base_url = replay.url("/v1");
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let mut settings = EngineSettings::default();
        settings.acquire_interval = Duration::from_millis(50);
        let resolver = Arc::new(OpenAiAt {
            base_url,
            model_config_id: Uuid::new_v4(),
        });
        // Titles and turn summaries off: their requests would take the one recording.
        let config = EngineConfig::new(StoreOptions::new("unused"), resolver)
            .with_settings(settings)
            .with_generated_titles(false)
            .with_turn_summaries(false);
        let engine = Engine::with_store(store.clone(), config).await.unwrap();
        let chat = engine
            .create_chat(
                &actor,
                CreateChatRequest {
                    organization_id: Some(f.org),
                    content: vec![ChatInputPart::text("What can you do?")],
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
                replay.requests().len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let page = MessagePage {
            before_id: None,
            after_id: Some(0),
            limit: 10,
            ascending: true,
        };
        let messages = engine
            .list_messages(&actor, chat.id, &page)
            .await
            .unwrap()
            .messages;
        assert_eq!(messages.len(), 2);
        let reply = &messages[1];
        assert_eq!(reply.role, ChatMessageRole::Assistant);
        let text: String = reply
            .content
            .iter()
            .filter(|p| p.part_type == ChatMessagePartType::Text)
            .map(|p| p.text.as_str())
            .collect();
        assert!(text.ends_with("weather app."), "{text}");
        let usage = reply.usage.unwrap();
        assert_eq!(usage.input_tokens, Some(14));
        assert_eq!(usage.output_tokens, Some(30));
        // gpt-4o from the embedded price book: 14 × $2.50/M + 30 × $10/M = 335 µ$.
        let book = chatcost::PriceBook::embedded()
            .lookup("openai", "gpt-4o")
            .unwrap();
        let expected = chatcost::calculate_total_cost_micros(&usage, Some(&book));
        assert_eq!(expected, Some(335));
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT total_cost_micros FROM chat_messages WHERE id = $1")
                .bind(reply.id)
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(stored, Some(335));
        // The API carries it on the message; the user's message has none.
        assert_eq!(reply.total_cost_micros, Some(335));
        assert_eq!(messages[0].total_cost_micros, None);
        // What the client sent: the default system prompt, then the user's message, streamed.
        let requests: Vec<serde_json::Value> = replay
            .requests()
            .iter()
            .map(|r| {
                assert_eq!(
                    (r.method.as_str(), r.path.as_str()),
                    ("POST", "/v1/chat/completions")
                );
                r.json()
            })
            .collect();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0]["model"], "gpt-4o");
        assert_eq!(requests[0]["stream"], true);
        let messages = requests[0]["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], "system");
        assert_eq!(
            messages[0]["content"],
            chatd_core::prompt::DEFAULT_SYSTEM_PROMPT
        );
        assert_eq!(messages[1]["role"], "user");
        assert_eq!(messages.len(), 2);
        engine.shutdown().await;
    })
    .await;
}
