//! A workspace tool call through the real OpenAI Chat Completions client: a local server
//! replays the recorded single-tool-call stream (`openai-chat--tool-call--single.sse`,
//! with the tool renamed to `read_file` and its argument to `path`), the engine runs
//! `read_file` on a real workspace, and the recorded text stream answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::StoreOptions;
use chatd_core::workspace::{
    ChatRelease, LocalWorkspaceConfig, LocalWorkspaceProvider, Workspace, WorkspaceChat,
    WorkspaceProvider, WorkspaceResult,
};
use chatd_core::{
    Actor, Engine, EngineConfig, EngineSettings, ModelResolver, ModelSelection, ResolvedModel,
    TurnModelRequest,
};
use chatd_test_support::db::{fixture, on_each_backend};
use chatd_test_support::fixtures::stream_fixture as stream;
use chatd_test_support::replay::{ReplayServer, Reply};
use chatprovider::{ClientSettings, OpenAiChatModel, Provider};
use codersdk::{
    ChatError, ChatInputPart, ChatMessagePartType, ChatStatus, CreateChatRequest, MessagePage,
    SecretString, Uuid,
};

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

/// The local provider with the file the recorded call names put into new workspaces.
#[derive(Debug)]
struct WithCityFile(LocalWorkspaceProvider);

#[async_trait::async_trait]
impl WorkspaceProvider for WithCityFile {
    async fn workspace(&self, chat: &WorkspaceChat) -> WorkspaceResult<Arc<dyn Workspace>> {
        let ws = self.0.workspace(chat).await?;
        let dir = PathBuf::from(ws.working_directory());
        std::fs::write(dir.join("New York City"), "Sunny, 22 degrees.\n").unwrap();
        Ok(ws)
    }

    async fn release(&self, chat_id: Uuid, event: ChatRelease) {
        self.0.release(chat_id, event).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_openai_tool_call_runs_read_file_on_the_workspace() {
    on_each_backend(|store| async move {
        let recorded = String::from_utf8(stream("openai-chat--tool-call--single.sse")).unwrap();
        let renamed = recorded
            .replace(r#""name":"get_weather""#, r#""name":"read_file""#)
            .replace(r#""arguments":"city""#, r#""arguments":"path""#);
        assert_ne!(renamed, recorded);
        let replay = ReplayServer::start(vec![
            Reply::sse(vec![renamed.into_bytes()]),
            Reply::sse(vec![stream("openai-chat--text--usage.sse")]),
        ])
        .await;

        let tmp = std::env::temp_dir().join(format!("chatd-wso-test-{}", Uuid::new_v4()));
        let provider = Arc::new(WithCityFile(
            LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(&tmp)).unwrap(),
        ));
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let mut settings = EngineSettings::default();
        settings.acquire_interval = Duration::from_millis(50);
        let resolver = Arc::new(OpenAiAt {
            base_url: replay.url("/v1"),
            model_config_id: Uuid::new_v4(),
        });
        // No titles or turn summaries: the replay holds the turn's two replies only.
        let config = EngineConfig::new(StoreOptions::new("unused"), resolver)
            .with_settings(settings)
            .with_generated_titles(false)
            .with_turn_summaries(false)
            .with_workspaces(provider);
        let engine = Engine::with_store(store.clone(), config).await.unwrap();
        let chat = engine
            .create_chat(
                &actor,
                CreateChatRequest {
                    organization_id: Some(f.org),
                    content: vec![ChatInputPart::text("What's the weather in New York City?")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while engine.get_chat(&actor, chat.id).await.unwrap().status != ChatStatus::Waiting {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let page = MessagePage {
            before_id: None,
            after_id: Some(0),
            limit: 20,
            ascending: true,
        };
        let messages = engine
            .list_messages(&actor, chat.id, &page)
            .await
            .unwrap()
            .messages;
        let result = messages
            .iter()
            .flat_map(|m| &m.content)
            .find(|p| p.part_type == ChatMessagePartType::ToolResult)
            .unwrap();
        assert_eq!(result.tool_name, "read_file");
        assert!(!result.is_error);
        let value = result.result.as_ref().unwrap().to_value();
        assert_eq!(value["content"], "     1\tSunny, 22 degrees.\n");
        // The client sent the tool's definition, then its result back to the provider.
        let requests: Vec<serde_json::Value> = replay.requests().iter().map(|r| r.json()).collect();
        assert_eq!(requests.len(), 2);
        let offered: Vec<&str> = requests[0]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert!(offered.contains(&"read_file"), "{offered:?}");
        let sent = requests[1]["messages"].as_array().unwrap();
        let tool_message = sent.iter().find(|m| m["role"] == "tool").unwrap();
        assert!(
            tool_message["content"]
                .as_str()
                .unwrap()
                .contains("Sunny, 22 degrees."),
            "{tool_message}"
        );
        engine.shutdown().await;
        let _ = std::fs::remove_dir_all(&tmp);
    })
    .await;
}
