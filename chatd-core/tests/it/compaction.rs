//! Context compaction end to end on SQLite and PostgreSQL, with a scripted model whose
//! replies report the usage that crosses (or does not cross) a small context window.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chatd_core::{
    Actor, ModelResolver, ModelSelection, ResolvedModel, TurnModelRequest,
    COMPACTION_SUMMARY_PREFIX, COMPACTION_TOOL_NAME, CONTEXT_STILL_TOO_LONG_MESSAGE,
};
use chatd_test_support::db::{fixture, on_each_backend, RawSql};
use chatd_test_support::scripted::{
    create_request, fast_settings, wait_status, Reply, ScriptedModel, SCRIPTED_COMPACTION_SUMMARY,
    SCRIPTED_COMPACTION_USAGE,
};
use chatprovider::{Part, Role};
use codersdk::{
    ChatError, ChatInputPart, ChatMessagePartType, ChatMessageRole, ChatMessageUsage, ChatStatus,
    CreateChatMessageRequest, Uuid,
};
use sqlx::Row;

use crate::engine::all_messages;

/// The context window of every chat here: small, so a scripted usage crosses 70 % of it.
const LIMIT: i64 = 1000;

/// Resolves every chat to one model config with a [`LIMIT`]-token window.
#[derive(Debug)]
struct SmallWindow {
    model_config_id: Uuid,
    model: Arc<ScriptedModel>,
}

#[async_trait::async_trait]
impl ModelResolver for SmallWindow {
    async fn select(&self, _selection: ModelSelection) -> chatd_core::Result<Uuid> {
        Ok(self.model_config_id)
    }

    async fn resolve(&self, _turn: TurnModelRequest) -> Result<ResolvedModel, ChatError> {
        Ok(ResolvedModel::new(self.model_config_id, self.model.clone())
            .with_context_limit(Some(LIMIT)))
    }
}

fn usage(input: i64) -> ChatMessageUsage {
    ChatMessageUsage {
        input_tokens: Some(input),
        output_tokens: Some(10),
        total_tokens: Some(input + 10),
        ..Default::default()
    }
}

/// The overflow refusal of OpenAI.
fn too_long() -> Reply {
    Reply::FailWith(
        400,
        r#"{"error":{"message":"This model's maximum context length is 1000 tokens. However, your messages resulted in 1400 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#.into(),
    )
}

async fn engine_on(
    store: &chatd_core::store::Store,
    model: Arc<ScriptedModel>,
    model_config_id: Uuid,
) -> chatd_core::Engine {
    let resolver = Arc::new(SmallWindow {
        model_config_id,
        model: model.clone(),
    });
    let config =
        chatd_core::EngineConfig::new(chatd_core::store::StoreOptions::new("unused"), resolver)
            .with_settings(fast_settings())
            .with_generated_titles(false)
            .with_turn_summaries(false);
    chatd_core::Engine::with_store(store.clone(), config)
        .await
        .unwrap()
}

/// A model config row the user threshold can name.
async fn insert_model_config(store: &chatd_core::store::Store) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO model_configs (id, provider, model, display_name, enabled, is_default, \
         context_limit, compression_threshold, model_config, created_at, updated_at, deleted) \
         VALUES ($1, 'openai', 'gpt-4o-mini', 'mini', 1, 0, 1000, 70, NULL, 0, 0, 0)",
    )
    .bind(id.to_string())
    .execute(store.pool())
    .await
    .unwrap();
    id
}

/// The text of a request message.
fn text_of(message: &chatprovider::Message) -> String {
    message
        .content
        .iter()
        .filter_map(|p| match p {
            Part::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Rows of the chat: (role, visibility, compressed, deleted, content).
async fn rows(
    store: &chatd_core::store::Store,
    chat: Uuid,
) -> Vec<(String, String, i64, i64, String)> {
    sqlx::query(
        "SELECT role, visibility, compressed, deleted, content FROM chat_messages \
         WHERE chat_id = $1 ORDER BY id",
    )
    .bind(chat.to_string())
    .fetch_all(store.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get::<String, _>("role"),
            r.get::<String, _>("visibility"),
            r.get::<i64, _>("compressed"),
            r.get::<i64, _>("deleted"),
            r.get::<String, _>("content"),
        )
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_over_the_threshold_compacts_and_the_next_prompt_starts_at_the_summary() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        // The first reply uses 80 % of the window: compaction runs after it, and the model
        // continues from the summary (one re-entry) with a small prompt.
        let model = ScriptedModel::new([
            Reply::TextWithUsage("first answer".into(), usage(800)),
            Reply::TextWithUsage("continued".into(), usage(120)),
            Reply::TextWithUsage("second answer".into(), usage(150)),
        ]);
        let engine = engine_on(&store, model.clone(), Uuid::new_v4()).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "do the long task"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert_eq!(model.compactions.load(Ordering::SeqCst), 1);
        assert_eq!(model.calls.load(Ordering::SeqCst), 2);

        // The three compressed rows, in order, with their visibilities.
        let all = rows(&store, chat.id).await;
        let compressed: Vec<_> = all.iter().filter(|r| r.2 == 1).collect();
        assert_eq!(compressed.len(), 3, "{all:?}");
        assert_eq!(
            (compressed[0].0.as_str(), compressed[0].1.as_str()),
            ("user", "model")
        );
        assert!(compressed[0].4.contains(COMPACTION_SUMMARY_PREFIX));
        assert!(compressed[0].4.contains(SCRIPTED_COMPACTION_SUMMARY));
        assert_eq!(
            (compressed[1].0.as_str(), compressed[1].1.as_str()),
            ("assistant", "user")
        );
        assert!(compressed[1].4.contains(COMPACTION_TOOL_NAME));
        assert_eq!(
            (compressed[2].0.as_str(), compressed[2].1.as_str()),
            ("tool", "both")
        );
        // The summary call's cost: a hidden usage row (deleted, model-only, no content).
        let hidden: Vec<_> = all.iter().filter(|r| r.3 == 1).collect();
        assert_eq!(hidden.len(), 1, "{all:?}");
        assert_eq!(
            (hidden[0].0.as_str(), hidden[0].1.as_str()),
            ("assistant", "model")
        );
        let (tokens,): (i64,) = sqlx::query_as(
            "SELECT input_tokens FROM chat_messages WHERE chat_id = $1 AND deleted = 1",
        )
        .bind(chat.id.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(Some(tokens), SCRIPTED_COMPACTION_USAGE.input_tokens);

        // What the user sees: the turn, the compaction as a tool call with its result, and
        // the continuation.
        let page = engine
            .list_messages(&actor, chat.id, &all_messages())
            .await
            .unwrap();
        let roles: Vec<_> = page.messages.iter().map(|m| m.role.clone()).collect();
        assert_eq!(
            roles,
            vec![
                ChatMessageRole::User,
                ChatMessageRole::Assistant,
                ChatMessageRole::Assistant,
                ChatMessageRole::Tool,
                ChatMessageRole::Assistant,
            ]
        );
        let result = &page.messages[3].content[0];
        assert_eq!(result.part_type, ChatMessagePartType::ToolResult);
        assert_eq!(result.tool_name, COMPACTION_TOOL_NAME);
        let body: serde_json::Value =
            serde_json::from_str(result.result.as_ref().unwrap().get()).unwrap();
        assert_eq!(body["summary"], SCRIPTED_COMPACTION_SUMMARY);
        assert_eq!(body["source"], "automatic");
        assert_eq!(body["threshold_percent"], 70);
        assert_eq!(body["context_tokens"], 800);
        assert_eq!(body["context_limit_tokens"], LIMIT);
        assert!((body["usage_percent"].as_f64().unwrap() - 80.0).abs() < 1e-9);

        // The re-entry's prompt starts at the summary: nothing before it is resent.
        let requests = model.requests.lock().unwrap().clone();
        let reentry = &requests[1];
        assert_eq!(reentry.messages.len(), 1, "{:?}", reentry.messages);
        assert_eq!(reentry.messages[0].role, Role::User);
        assert!(text_of(&reentry.messages[0]).starts_with(COMPACTION_SUMMARY_PREFIX));

        // The next turn: the summary, the continuation, the new message.
        engine
            .send_message(
                &actor,
                chat.id,
                CreateChatMessageRequest {
                    content: vec![ChatInputPart::text("and now?")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        let requests = model.requests.lock().unwrap().clone();
        let next: Vec<String> = requests[2].messages.iter().map(text_of).collect();
        assert_eq!(next.len(), 3, "{next:?}");
        assert!(next[0].starts_with(COMPACTION_SUMMARY_PREFIX));
        assert_eq!(next[1], "continued");
        assert_eq!(next[2], "and now?");
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_threshold_of_100_turns_compaction_off() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model_config = insert_model_config(&store).await;
        store
            .set_user_compaction_threshold(f.user, model_config, 100)
            .await
            .unwrap();
        let model = ScriptedModel::new([Reply::TextWithUsage("full".into(), usage(990))]);
        let engine = engine_on(&store, model.clone(), model_config).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "fill the window"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert_eq!(model.compactions.load(Ordering::SeqCst), 0);
        assert_eq!(model.calls.load(Ordering::SeqCst), 1);
        assert!(rows(&store, chat.id).await.iter().all(|r| r.2 == 0));

        // A lower threshold of the user's own applies where the default would not.
        store
            .set_user_compaction_threshold(f.user, model_config, 20)
            .await
            .unwrap();
        // 25 % of the window; the re-entry after the compaction reports 10 %.
        model.push(Reply::TextWithUsage("small".into(), usage(250)));
        engine
            .send_message(
                &actor,
                chat.id,
                CreateChatMessageRequest {
                    content: vec![ChatInputPart::text("again")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert_eq!(model.compactions.load(Ordering::SeqCst), 1);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_length_refusal_compacts_and_the_retried_step_keeps_the_unanswered_message() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([
            Reply::TextWithUsage("short".into(), usage(100)),
            too_long(),
            Reply::TextWithUsage("answered after all".into(), usage(200)),
        ]);
        let engine = engine_on(&store, model.clone(), Uuid::new_v4()).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "first"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        engine
            .send_message(
                &actor,
                chat.id,
                CreateChatMessageRequest {
                    content: vec![ChatInputPart::text("a huge paste")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let done = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(done.last_error.is_none(), "{:?}", done.last_error);
        assert_eq!(model.compactions.load(Ordering::SeqCst), 1);
        // The retried step reads the summary, then the message nobody answered yet.
        let requests = model.requests.lock().unwrap().clone();
        let retried: Vec<String> = requests[2].messages.iter().map(text_of).collect();
        assert_eq!(retried.len(), 2, "{retried:?}");
        assert!(retried[0].starts_with(COMPACTION_SUMMARY_PREFIX));
        assert_eq!(retried[1], "a huge paste");
        // Re-inserted model-only, uncompressed, after the three compressed rows; the user
        // still sees their message once.
        let all = rows(&store, chat.id).await;
        let again = all
            .iter()
            .rposition(|r| r.0 == "user" && r.1 == "model" && r.2 == 0)
            .unwrap();
        let last_compressed = all.iter().rposition(|r| r.2 == 1).unwrap();
        assert!(again > last_compressed);
        let page = engine
            .list_messages(&actor, chat.id, &all_messages())
            .await
            .unwrap();
        let pastes = page
            .messages
            .iter()
            .filter(|m| m.content.iter().any(|p| p.text == "a huge paste"))
            .count();
        assert_eq!(pastes, 1);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_entries_after_compaction_stop_at_three_per_turn() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        // Every reply fills 90 % of the window.
        let model = ScriptedModel::new(
            (0..6).map(|i| Reply::TextWithUsage(format!("reply {i}"), usage(900))),
        );
        let engine = engine_on(&store, model.clone(), Uuid::new_v4()).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "keep going"))
            .await
            .unwrap();
        let done = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(done.last_error.is_none());
        // The first step and three re-entries; each compacted.
        assert_eq!(
            model.calls.load(Ordering::SeqCst),
            1 + chatd_core::MAX_COMPACTION_REENTRIES as usize
        );
        assert_eq!(model.compactions.load(Ordering::SeqCst), 4);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_still_too_long_after_compacting_ends_the_turn_with_a_clear_error() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([too_long(), too_long(), too_long()]);
        let engine = engine_on(&store, model.clone(), Uuid::new_v4()).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "an enormous paste"))
            .await
            .unwrap();
        let done = wait_status(&engine, &actor, chat.id, ChatStatus::Error).await;
        let error = done.last_error.unwrap();
        assert_eq!(error.message, CONTEXT_STILL_TOO_LONG_MESSAGE);
        assert_eq!(error.kind, Some(codersdk::ChatErrorKind::Config));
        assert!(!error.retryable);
        // One compaction, one retry of the step, then the end: no loop.
        assert_eq!(model.compactions.load(Ordering::SeqCst), 1);
        assert_eq!(model.calls.load(Ordering::SeqCst), 2);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_compaction_summarizes_an_idle_chat_without_answering_again() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        // 10 % of the window: far below any automatic threshold.
        let model = ScriptedModel::new([Reply::TextWithUsage("hello".into(), usage(100))]);
        let engine = engine_on(&store, model.clone(), Uuid::new_v4()).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "hi"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert_eq!(model.compactions.load(Ordering::SeqCst), 0);

        let last_id = engine
            .list_messages(&actor, chat.id, &all_messages())
            .await
            .unwrap()
            .messages
            .last()
            .unwrap()
            .id;
        let mut stream = engine
            .subscribe(&actor, chat.id, Some(last_id))
            .await
            .unwrap();
        let requested = engine.compact_chat(&actor, chat.id).await.unwrap();
        assert_eq!(requested.status, ChatStatus::Pending);
        // The stream: "Summarizing…" (the chat_summarized call as a part), then the durable
        // call and result, then `waiting`.
        let mut seen = Vec::new();
        let mut ran = false;
        loop {
            let event = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
                .await
                .unwrap()
                .unwrap();
            if let Some(part) = &event.message_part {
                seen.push(format!(
                    "part {:?} {}",
                    part.part.part_type, part.part.tool_name
                ));
            }
            if let Some(message) = &event.message {
                seen.push(format!("message {:?}", message.role));
            }
            // The snapshot opens with the current status (`waiting`): the end is the
            // `waiting` after `running`.
            if let Some(status) = &event.status {
                ran |= status.status == ChatStatus::Running;
                if ran && status.status == ChatStatus::Waiting {
                    break;
                }
            }
        }
        let summarizing = format!(
            "part {:?} {COMPACTION_TOOL_NAME}",
            ChatMessagePartType::ToolCall
        );
        let at = seen
            .iter()
            .position(|s| *s == summarizing)
            .unwrap_or_else(|| panic!("no Summarizing part: {seen:?}"));
        assert_eq!(
            seen[at + 1..],
            ["message Assistant".to_owned(), "message Tool".to_owned()],
            "{seen:?}"
        );
        let done = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(done.last_error.is_none());
        assert_eq!(model.compactions.load(Ordering::SeqCst), 1);
        // No model step beyond the first turn's.
        assert_eq!(model.calls.load(Ordering::SeqCst), 1);
        let page = engine
            .list_messages(&actor, chat.id, &all_messages())
            .await
            .unwrap();
        let result = page.messages.last().unwrap();
        assert_eq!(result.role, ChatMessageRole::Tool);
        let body: serde_json::Value =
            serde_json::from_str(result.content[0].result.as_ref().unwrap().get()).unwrap();
        assert_eq!(body["source"], "manual");
        assert_eq!(body["context_tokens"], 100);

        // Only an idle chat: a busy (pending) one is refused and nothing changes.
        let flag: (i64,) = sqlx::query_as("SELECT compaction_requested FROM chats WHERE id = $1")
            .bind(chat.id.to_string())
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(flag.0, 0);
        sqlx::query("UPDATE chats SET status = 'running' WHERE id = $1")
            .bind(chat.id.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        let err = engine.compact_chat(&actor, chat.id).await.unwrap_err();
        assert_eq!(err.kind(), chatd_core::ErrorKind::Conflict);
        // Another user's chat does not exist for them.
        let bob = store
            .create_user(chatd_core::store::NewUser {
                username: "bob".into(),
                name: "Bob".into(),
                role: chatd_core::Role::Member,
            })
            .await
            .unwrap();
        let err = engine
            .compact_chat(&Actor::user(bob.id), chat.id)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), chatd_core::ErrorKind::NotFound);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tool_calls_are_never_cut_from_their_results_by_a_compaction() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model_config = insert_model_config(&store).await;
        // 5 %: every step crosses it, the scripted tool-call step (100 of 1 000 tokens)
        // included.
        store
            .set_user_compaction_threshold(f.user, model_config, 5)
            .await
            .unwrap();
        let model = ScriptedModel::new([
            Reply::ToolCalls(vec![(
                "call_1".into(),
                "get_weather".into(),
                r#"{"city":"Oslo"}"#.into(),
            )]),
            Reply::TextWithUsage("Sunny".into(), usage(20)),
        ]);
        let engine = engine_on(&store, model.clone(), model_config).await;
        let request = codersdk::CreateChatRequest {
            unsafe_dynamic_tools: vec![codersdk::DynamicTool {
                name: "get_weather".into(),
                description: "Weather of a city".into(),
                input_schema: codersdk::RawJson::from_json(r#"{"type":"object"}"#).unwrap(),
            }],
            ..create_request(f.org, "weather in Oslo?")
        };
        let chat = engine.create_chat(&actor, request).await.unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::RequiresAction).await;
        // The step waits for the client: nothing was summarized over its open call.
        assert_eq!(model.compactions.load(Ordering::SeqCst), 0);
        engine
            .submit_tool_results(
                &actor,
                chat.id,
                codersdk::SubmitToolResultsRequest {
                    results: vec![codersdk::ToolResult {
                        tool_call_id: "call_1".into(),
                        output: Some(codersdk::RawJson::from_json(r#""sunny""#).unwrap()),
                        is_error: false,
                    }],
                },
            )
            .await
            .unwrap();
        let done = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(done.last_error.is_none(), "{:?}", done.last_error);
        // The step after the results read the call and its result together.
        let requests = model.requests.lock().unwrap().clone();
        let roles: Vec<Role> = requests[1].messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::User, Role::Assistant, Role::Tool],
            "{roles:?}"
        );
        engine.shutdown().await;
    })
    .await;
}
