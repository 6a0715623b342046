//! Debug runs (docs/debug-runs.md) on SQLite and PostgreSQL: when the model calls of a turn
//! are recorded (off by default, forced by the deployment, or allowed and turned on by the
//! owner), what a step holds (request, response, usage, retried attempts, error), that no
//! secret reaches the store or the API, the listing limit, and the purge window.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use chatd_core::store::{
    DebugStepEnd, NewDebugRun, NewDebugStep, Store, StoreOptions, MAX_DEBUG_PURGE_BATCH,
    MAX_DEBUG_RETENTION_DAYS, MAX_DEBUG_RUNS_LISTED, MAX_DEBUG_STEPS_PER_RUN,
};
use chatd_core::{
    Actor, Engine, EngineConfig, ErrorKind, ModelResolver, ModelSelection, ResolvedModel,
    TurnModelRequest, DEFAULT_DEBUG_RETENTION_DAYS,
};
use chatd_test_support::db::{fixture, on_each_backend, RawSql};
use chatd_test_support::scripted::{
    create_request, engine, fast_settings, wait_status, Reply, ScriptedModel,
};
use codersdk::{
    ChatDebugRunKind, ChatDebugStatus, ChatDebugStepOperation, ChatError, ChatInputPart,
    ChatStatus, CreateChatMessageRequest, RawJson, Uuid,
};

/// The provider key of the resolver in [`secrets_never_reach_the_stored_run`]: not
/// key-shaped, so only the model's own redactor knows it is a secret.
const PROVIDER_KEY: &str = "provider-central-key-0123456789";

/// Key-shaped text a user pastes into a message.
const PASTED_KEY: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";

async fn runs_in_table(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM chat_debug_runs")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// The chat's runs of its turns (a turn summary's `quickgen` run follows a root turn on
/// its own schedule).
async fn turn_runs(
    engine: &Engine,
    actor: &Actor,
    chat: Uuid,
) -> Vec<codersdk::ChatDebugRunSummary> {
    let mut runs = engine.list_debug_runs(actor, chat).await.unwrap();
    runs.retain(|r| r.kind == ChatDebugRunKind::ChatTurn);
    runs
}

async fn run_turn(engine: &Engine, actor: &Actor, org: Uuid, text: &str) -> Uuid {
    let chat = engine
        .create_chat(actor, create_request(org, text))
        .await
        .unwrap();
    wait_status(engine, actor, chat.id, ChatStatus::Waiting).await;
    chat.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_recorded_until_debug_logging_is_on() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        assert!(!store.debug_logging_forced());
        assert!(!store.debug_logging_allow_users().await.unwrap());
        assert!(!store.user_debug_logging(f.user).await.unwrap());
        let engine = engine(&store, ScriptedModel::new([])).await;
        let chat = run_turn(&engine, &actor, f.org, "hello").await;
        assert!(engine
            .list_debug_runs(&actor, chat)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(runs_in_table(&store).await, 0);
        // The owner's toggle alone records nothing while users are not allowed.
        store.set_user_debug_logging(f.user, true).await.unwrap();
        let chat = run_turn(&engine, &actor, f.org, "again").await;
        assert!(engine
            .list_debug_runs(&actor, chat)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(runs_in_table(&store).await, 0);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_deployment_records_every_model_call_of_a_turn() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        store.set_debug_logging_forced(true);
        // A rate-limited attempt (retried), a tool call, then the answer: two steps.
        let model = ScriptedModel::new([
            Reply::Fail(429),
            Reply::ToolCalls(vec![(
                "call_1".into(),
                "no_such_tool".into(),
                "{\"q\":1}".into(),
            )]),
            Reply::Text("All done".into()),
        ]);
        let engine = engine(&store, model).await;
        let chat = run_turn(&engine, &actor, f.org, "please use a tool").await;
        let runs = turn_runs(&engine, &actor, chat).await;
        assert_eq!(runs.len(), 1);
        let summary = &runs[0];
        assert_eq!(summary.kind, ChatDebugRunKind::ChatTurn);
        assert_eq!(summary.status, ChatDebugStatus::Completed);
        assert_eq!(summary.provider.as_deref(), Some("openai"));
        assert!(summary.finished_at.is_some());
        let s = summary.summary.to_value();
        assert_eq!(s["step_count"], 2);
        assert_eq!(s["steps_dropped"], 0);
        assert_eq!(s["usage"]["input_tokens"], 200);

        let run = engine.debug_run(&actor, chat, summary.id).await.unwrap();
        assert!(run.trigger_message_id.is_some());
        assert!(run.model_config_id.is_some());
        assert_eq!(run.steps.len(), 2);
        let first = &run.steps[0];
        assert_eq!(first.step_number, 1);
        assert_eq!(first.operation, ChatDebugStepOperation::Stream);
        assert_eq!(first.status, ChatDebugStatus::Completed);
        // The retried attempt, classified.
        assert_eq!(first.attempts.len(), 1);
        let attempt = first.attempts[0].to_value();
        assert_eq!(attempt["attempt"], 1);
        assert_eq!(attempt["status_code"], 429);
        assert_eq!(attempt["kind"], "rate_limit");
        // The request shape and the response.
        let request = first.normalized_request.to_value();
        assert_eq!(request["messages"][0]["role"], "user");
        assert_eq!(
            request["messages"][0]["content"][0]["text"],
            "please use a tool"
        );
        assert!(request["system"].as_array().is_some_and(|s| !s.is_empty()));
        let response = first.normalized_response.as_ref().unwrap().to_value();
        assert_eq!(response["tool_calls"][0]["name"], "no_such_tool");
        assert_eq!(response["finish_reason"], "tool_calls");
        assert_eq!(
            first.usage.as_ref().unwrap().to_value()["output_tokens"],
            20
        );
        assert!(first.assistant_message_id.is_some());
        assert!(first.finished_at.is_some());
        assert!(first.metadata.to_value()["duration_ms"].is_i64());
        let second = &run.steps[1];
        assert_eq!(second.step_number, 2);
        assert!(second.attempts.is_empty());
        assert_eq!(
            second.normalized_response.as_ref().unwrap().to_value()["text"],
            "All done"
        );
        // The second request carries the tool result of the first step.
        let request = second.normalized_request.to_value();
        let messages = request["messages"].as_array().unwrap();
        assert_eq!(messages.last().unwrap()["role"], "tool");
        assert!(second.assistant_message_id > first.assistant_message_id);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_toggle_records_while_users_are_allowed() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let engine = engine(&store, ScriptedModel::new([])).await;
        store.set_debug_logging_allow_users(true).await.unwrap();
        // Allowed, but the owner has not turned it on.
        let chat = run_turn(&engine, &actor, f.org, "one").await;
        assert!(engine
            .list_debug_runs(&actor, chat)
            .await
            .unwrap()
            .is_empty());
        store.set_user_debug_logging(f.user, true).await.unwrap();
        assert!(store.debug_logging_on(f.user).await.unwrap());
        let chat = run_turn(&engine, &actor, f.org, "two").await;
        let runs = turn_runs(&engine, &actor, chat).await;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, ChatDebugStatus::Completed);
        // A second turn of the same chat is a second run, listed first.
        engine
            .send_message(
                &actor,
                chat,
                CreateChatMessageRequest {
                    content: vec![ChatInputPart::text("three")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        wait_status(&engine, &actor, chat, ChatStatus::Waiting).await;
        let later = turn_runs(&engine, &actor, chat).await;
        assert_eq!(later.len(), 2);
        assert_eq!(later[1].id, runs[0].id);
        assert!(later[0].started_at >= later[1].started_at);
        // Forbidding users stops the recording; the toggle is kept.
        store.set_debug_logging_allow_users(false).await.unwrap();
        assert!(!store.debug_logging_on(f.user).await.unwrap());
        assert!(store.user_debug_logging(f.user).await.unwrap());
        let chat = run_turn(&engine, &actor, f.org, "four").await;
        assert!(engine
            .list_debug_runs(&actor, chat)
            .await
            .unwrap()
            .is_empty());
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_is_recorded_with_its_error() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        store.set_debug_logging_forced(true);
        let engine = engine(&store, ScriptedModel::new([Reply::Fail(401)])).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "hello"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Error).await;
        let runs = turn_runs(&engine, &actor, chat.id).await;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, ChatDebugStatus::Error);
        let summary = runs[0].summary.to_value();
        assert_eq!(summary["error"]["kind"], "auth");
        let run = engine.debug_run(&actor, chat.id, runs[0].id).await.unwrap();
        assert_eq!(run.steps.len(), 1);
        let step = &run.steps[0];
        assert_eq!(step.status, ChatDebugStatus::Error);
        assert!(step.normalized_response.is_none());
        assert!(step.assistant_message_id.is_none());
        let error = step.error.as_ref().unwrap().to_value();
        assert_eq!(error["kind"], "auth");
        assert_eq!(error["status_code"], 401);
        assert!(step.finished_at.is_some());
        engine.shutdown().await;
    })
    .await;
}

/// A resolver like the kit's, whose model carries a provider key: the key is a secret the
/// model's redactor knows.
#[derive(Debug)]
struct KeyedResolver {
    model_config_id: Uuid,
    model: Arc<ScriptedModel>,
}

#[async_trait::async_trait]
impl ModelResolver for KeyedResolver {
    async fn select(&self, selection: ModelSelection) -> chatd_core::Result<Uuid> {
        Ok(selection.requested.unwrap_or(self.model_config_id))
    }

    async fn resolve(&self, _turn: TurnModelRequest) -> Result<ResolvedModel, ChatError> {
        Ok(ResolvedModel::new(self.model_config_id, self.model.clone())
            .with_secrets([PROVIDER_KEY])
            .with_context_limit(Some(128_000)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_stored_run() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        store.set_debug_logging_forced(true);
        // The model echoes the provider key back, and fails once with it in the body.
        let model = ScriptedModel::new([
            Reply::FailWith(
                429,
                format!("{{\"error\":{{\"message\":\"rate limited for key {PROVIDER_KEY}\"}}}}"),
            ),
            Reply::Text(format!("your key {PASTED_KEY} and mine {PROVIDER_KEY}")),
        ]);
        let resolver = Arc::new(KeyedResolver {
            model_config_id: Uuid::new_v4(),
            model,
        });
        let config = EngineConfig::new(StoreOptions::new("unused"), resolver)
            .with_settings(fast_settings())
            .with_generated_titles(true);
        let engine = Engine::with_store(store.clone(), config).await.unwrap();
        let text = format!("here is {PASTED_KEY} and also {PROVIDER_KEY}, keep them");
        let chat = run_turn(&engine, &actor, f.org, &text).await;
        // The turn, its title and its summary: all three read the keys.
        let kinds = [
            ChatDebugRunKind::ChatTurn,
            ChatDebugRunKind::TitleGeneration,
            ChatDebugRunKind::Quickgen,
        ];
        let runs = wait_for_kinds(&engine, &actor, chat, &kinds).await;
        let turn = runs
            .iter()
            .find(|r| r.kind == ChatDebugRunKind::ChatTurn)
            .unwrap();
        let run = engine.debug_run(&actor, chat, turn.id).await.unwrap();
        assert_eq!(run.steps.len(), 1);
        assert_eq!(run.steps[0].attempts.len(), 1);
        // What the API answers, every run.
        let mut answered = serde_json::to_string(&runs).unwrap();
        for summary in &runs {
            let one = engine.debug_run(&actor, chat, summary.id).await.unwrap();
            answered += &serde_json::to_string(&one).unwrap();
        }
        // What the database holds, every column of both tables.
        let mut stored = String::new();
        for table in ["chat_debug_runs", "chat_debug_steps"] {
            let sql = match table {
                "chat_debug_runs" => "SELECT summary || COALESCE(provider, '') || COALESCE(model, '') AS t FROM chat_debug_runs",
                _ => "SELECT normalized_request || COALESCE(normalized_response, '') || COALESCE(usage, '') || attempts || COALESCE(error, '') || metadata AS t FROM chat_debug_steps",
            };
            let rows: Vec<String> = sqlx::query_scalar(sql)
                .fetch_all(store.pool())
                .await
                .unwrap();
            stored.extend(rows);
        }
        for (what, text) in [("API", &answered), ("database", &stored)] {
            assert!(!text.contains(PROVIDER_KEY), "the provider key in the {what}: {text}");
            assert!(!text.contains(PASTED_KEY), "the pasted key in the {what}: {text}");
            assert!(!text.contains("abcdefghijklmnopqrstuvwxyz"), "a piece of a key in the {what}");
            assert!(text.contains("[REDACTED]"), "{what}");
        }
        // The rest of the text is kept.
        let request = run.steps[0].normalized_request.to_value();
        let sent = request["messages"][0]["content"][0]["text"].as_str().unwrap();
        assert_eq!(sent, "here is [REDACTED] and also [REDACTED], keep them");
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_read_by_the_owner_and_administrators_only() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        store.set_debug_logging_forced(true);
        let engine = engine(&store, ScriptedModel::new([])).await;
        let chat = run_turn(&engine, &actor, f.org, "mine").await;
        let runs = turn_runs(&engine, &actor, chat).await;
        assert_eq!(runs.len(), 1);
        let bob = store
            .create_user(chatd_core::store::NewUser {
                username: "bob".into(),
                name: "Bob".into(),
                role: chatd_core::Role::Member,
            })
            .await
            .unwrap();
        let bob = Actor::user(bob.id);
        let err = engine.list_debug_runs(&bob, chat).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = engine.debug_run(&bob, chat, runs[0].id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let admin = Actor::admin(Uuid::new_v4());
        assert_eq!(turn_runs(&engine, &admin, chat).await, runs);
        assert_eq!(
            engine.debug_run(&admin, chat, runs[0].id).await.unwrap().id,
            runs[0].id
        );
        let err = engine
            .debug_run(&actor, chat, Uuid::new_v4())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        // A run is found only under its own chat.
        let other = run_turn(&engine, &actor, f.org, "other").await;
        let err = engine
            .debug_run(&actor, other, runs[0].id)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        engine.shutdown().await;
    })
    .await;
}

fn new_run(chat_id: Uuid, started_at: i64) -> NewDebugRun {
    NewDebugRun {
        id: Uuid::new_v4(),
        chat_id,
        root_chat_id: None,
        parent_chat_id: None,
        model_config_id: None,
        trigger_message_id: None,
        history_tip_message_id: None,
        kind: ChatDebugRunKind::ChatTurn,
        provider: Some("openai".into()),
        model: Some("gpt".into()),
        started_at,
    }
}

fn new_step(run: &NewDebugRun, number: i32) -> NewDebugStep {
    NewDebugStep {
        id: Uuid::new_v4(),
        run_id: run.id,
        chat_id: run.chat_id,
        step_number: number,
        operation: ChatDebugStepOperation::Stream,
        history_tip_message_id: None,
        normalized_request: RawJson::from_json("{\"messages\":[]}").unwrap(),
        started_at: run.started_at,
    }
}

async fn a_chat(store: &Store) -> Uuid {
    let f = fixture(store).await;
    store
        .create_chat(chatd_test_support::db::new_chat(&f, "hi"))
        .await
        .unwrap()
        .0
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_holds_the_newest_runs_up_to_its_limit() {
    on_each_backend(|store| async move {
        let chat = a_chat(&store).await;
        let mut ids = Vec::new();
        for i in 0..=MAX_DEBUG_RUNS_LISTED {
            let run = new_run(chat, 1_000_000 + i64::try_from(i).unwrap());
            store.insert_debug_run(&run).await.unwrap();
            ids.push(run.id);
        }
        let listed = store.list_debug_runs(chat).await.unwrap();
        assert_eq!(listed.len(), MAX_DEBUG_RUNS_LISTED);
        // Newest first; the oldest is the one left out.
        let expected: Vec<Uuid> = ids
            .iter()
            .rev()
            .take(MAX_DEBUG_RUNS_LISTED)
            .copied()
            .collect();
        assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
        assert!(listed
            .iter()
            .all(|r| r.status == ChatDebugStatus::InProgress));
        assert!(listed
            .iter()
            .all(|r| r.summary.to_value() == serde_json::json!({})));
        // Another chat lists nothing.
        assert!(store
            .list_debug_runs(Uuid::new_v4())
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_past_the_limit_are_not_stored_and_documents_are_capped() {
    on_each_backend(|store| async move {
        let chat = a_chat(&store).await;
        let run = new_run(chat, 5_000_000);
        store.insert_debug_run(&run).await.unwrap();
        assert!(!store.insert_debug_step(&new_step(&run, 0)).await.unwrap());
        assert!(store
            .insert_debug_step(&new_step(&run, MAX_DEBUG_STEPS_PER_RUN))
            .await
            .unwrap());
        assert!(!store
            .insert_debug_step(&new_step(&run, MAX_DEBUG_STEPS_PER_RUN + 1))
            .await
            .unwrap());
        // A response past the document cap is stored as a truncation marker.
        let mut big = new_step(&run, 1);
        big.normalized_request = RawJson::from_value(&serde_json::json!({
            "text": "x".repeat(chatd_core::MAX_DEBUG_DOCUMENT_BYTES),
        }))
        .unwrap();
        store.insert_debug_step(&big).await.unwrap();
        let end = DebugStepEnd {
            status: ChatDebugStatus::Completed,
            assistant_message_id: Some(7),
            normalized_response: Some(
                RawJson::from_value(&serde_json::json!({"text": "ok"})).unwrap(),
            ),
            usage: None,
            attempts: vec![
                RawJson::empty_object();
                chatd_core::store::MAX_DEBUG_ATTEMPTS_PER_STEP + 3
            ],
            error: None,
            metadata: RawJson::empty_object(),
            finished_at: 5_000_100,
        };
        store.finish_debug_step(big.id, &end).await.unwrap();
        let got = store.debug_run(chat, run.id).await.unwrap().unwrap();
        assert_eq!(got.steps.len(), 2);
        let first = &got.steps[0];
        assert_eq!(first.step_number, 1);
        assert_eq!(first.status, ChatDebugStatus::Completed);
        assert_eq!(first.assistant_message_id, Some(7));
        assert_eq!(
            first.attempts.len(),
            chatd_core::store::MAX_DEBUG_ATTEMPTS_PER_STEP
        );
        let request = first.normalized_request.to_value();
        assert_eq!(request["truncated"], true);
        assert!(first.normalized_request.get().len() <= chatd_core::MAX_DEBUG_DOCUMENT_BYTES);
        assert_eq!(got.steps[1].step_number, MAX_DEBUG_STEPS_PER_RUN);
        assert_eq!(got.steps[1].status, ChatDebugStatus::InProgress);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_deletes_runs_older_than_the_window_in_bounded_batches() {
    on_each_backend(|store| async move {
        let chat = a_chat(&store).await;
        let cutoff = 10_000_000;
        // Three finished before the cutoff (one with a step), one left in progress before
        // it (its process died), one finished exactly at it, one still running after it.
        let mut old = Vec::new();
        for at in [1_000_000, 2_000_000, 3_000_000] {
            let run = new_run(chat, at);
            store.insert_debug_run(&run).await.unwrap();
            store
                .finish_debug_run(
                    run.id,
                    &ChatDebugStatus::Completed,
                    &RawJson::empty_object(),
                    at + 10,
                )
                .await
                .unwrap();
            old.push(run);
        }
        store
            .insert_debug_step(&new_step(&old[0], 1))
            .await
            .unwrap();
        let abandoned = new_run(chat, 4_000_000);
        store.insert_debug_run(&abandoned).await.unwrap();
        let edge = new_run(chat, cutoff - 100);
        store.insert_debug_run(&edge).await.unwrap();
        store
            .finish_debug_run(
                edge.id,
                &ChatDebugStatus::Error,
                &RawJson::empty_object(),
                cutoff,
            )
            .await
            .unwrap();
        let live = new_run(chat, cutoff + 1);
        store.insert_debug_run(&live).await.unwrap();

        assert_eq!(store.purge_debug_runs(cutoff, 0).await.unwrap(), 0);
        assert_eq!(store.purge_debug_runs(cutoff, 3).await.unwrap(), 3);
        assert_eq!(store.purge_debug_runs(cutoff, 3).await.unwrap(), 1);
        assert_eq!(
            store
                .purge_debug_runs(cutoff, MAX_DEBUG_PURGE_BATCH + 5)
                .await
                .unwrap(),
            0
        );
        let left: Vec<Uuid> = store
            .list_debug_runs(chat)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(left, vec![live.id, edge.id]);
        // The steps went with their run.
        let steps: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chat_debug_steps")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(steps, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_are_stored_and_validated() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        assert_eq!(
            store.debug_retention_days().await.unwrap(),
            DEFAULT_DEBUG_RETENTION_DAYS
        );
        assert_eq!(DEFAULT_DEBUG_RETENTION_DAYS, 30);
        for days in [0, 1, MAX_DEBUG_RETENTION_DAYS] {
            store.set_debug_retention_days(days).await.unwrap();
            assert_eq!(store.debug_retention_days().await.unwrap(), days);
        }
        for days in [-1, MAX_DEBUG_RETENTION_DAYS + 1] {
            let err = store.set_debug_retention_days(days).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            let response = err.to_response();
            assert_eq!(response.validations[0].field, "debug_retention_days");
        }
        assert_eq!(
            store.debug_retention_days().await.unwrap(),
            MAX_DEBUG_RETENTION_DAYS
        );
        store.set_debug_logging_allow_users(true).await.unwrap();
        assert!(store.debug_logging_allow_users().await.unwrap());
        store.set_user_debug_logging(f.user, true).await.unwrap();
        assert!(store.user_debug_logging(f.user).await.unwrap());
        store.set_user_debug_logging(f.user, false).await.unwrap();
        assert!(!store.user_debug_logging(f.user).await.unwrap());
        // Forced: on for everyone, whatever the other settings say.
        store.set_debug_logging_allow_users(false).await.unwrap();
        store.set_debug_logging_forced(true);
        assert!(store.clone().debug_logging_forced());
        assert!(store.debug_logging_on(Uuid::new_v4()).await.unwrap());
        store.set_debug_logging_forced(false);
        assert!(!store.debug_logging_on(f.user).await.unwrap());
    })
    .await;
}

/// Polls until `chat` has a finished run of each of `kinds` (or panics after 10 s).
async fn wait_for_kinds(
    engine: &Engine,
    actor: &Actor,
    chat: Uuid,
    kinds: &[ChatDebugRunKind],
) -> Vec<codersdk::ChatDebugRunSummary> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let runs = engine.list_debug_runs(actor, chat).await.unwrap();
        let done = kinds.iter().all(|k| {
            runs.iter()
                .any(|r| &r.kind == k && r.status != ChatDebugStatus::InProgress)
        });
        if done {
            return runs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runs of {kinds:?} missing: {runs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn titles_summaries_and_compactions_are_runs_of_their_own() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        store.set_debug_logging_forced(true);
        // Titles and turn summaries on: the scripted model answers both without using
        // its script.
        let model = ScriptedModel::new([Reply::Text("The answer".into())]);
        let engine =
            chatd_test_support::scripted::engine_with_config(&store, model, fast_settings(), |c| {
                c.with_generated_titles(true).with_turn_summaries(true)
            })
            .await;
        let chat = run_turn(&engine, &actor, f.org, "explain the login flow to me").await;
        let runs = wait_for_kinds(
            &engine,
            &actor,
            chat,
            &[
                ChatDebugRunKind::ChatTurn,
                ChatDebugRunKind::TitleGeneration,
                ChatDebugRunKind::Quickgen,
            ],
        )
        .await;
        for kind in [
            ChatDebugRunKind::TitleGeneration,
            ChatDebugRunKind::Quickgen,
        ] {
            let summary = runs.iter().find(|r| r.kind == kind).unwrap();
            assert_eq!(summary.status, ChatDebugStatus::Completed, "{kind:?}");
            let run = engine.debug_run(&actor, chat, summary.id).await.unwrap();
            assert_eq!(run.steps.len(), 1, "{kind:?}");
            let step = &run.steps[0];
            assert_eq!(step.operation, ChatDebugStepOperation::Generate);
            assert_eq!(step.status, ChatDebugStatus::Completed);
            let text = step.normalized_response.as_ref().unwrap().to_value()["text"]
                .as_str()
                .unwrap()
                .to_owned();
            let expected = match kind {
                ChatDebugRunKind::TitleGeneration => chatd_test_support::scripted::SCRIPTED_TITLE,
                _ => chatd_test_support::scripted::SCRIPTED_SUMMARY,
            };
            assert_eq!(text, expected);
        }
        let title = runs
            .iter()
            .find(|r| r.kind == ChatDebugRunKind::TitleGeneration)
            .unwrap();
        let title = engine.debug_run(&actor, chat, title.id).await.unwrap();
        assert!(title.trigger_message_id.is_some());
        // Regenerating the title is a second `title_generation` run.
        engine.regenerate_title(&actor, chat).await.unwrap();
        let titles = engine
            .list_debug_runs(&actor, chat)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == ChatDebugRunKind::TitleGeneration)
            .collect::<Vec<_>>();
        assert_eq!(titles.len(), 2);
        assert!(titles
            .iter()
            .all(|r| r.status == ChatDebugStatus::Completed));

        // A manual compaction: a `compaction` run with the summary call.
        engine.compact_chat(&actor, chat).await.unwrap();
        let runs = wait_for_kinds(&engine, &actor, chat, &[ChatDebugRunKind::Compaction]).await;
        let summary = runs
            .iter()
            .find(|r| r.kind == ChatDebugRunKind::Compaction)
            .unwrap();
        assert_eq!(summary.status, ChatDebugStatus::Completed);
        let run = engine.debug_run(&actor, chat, summary.id).await.unwrap();
        assert_eq!(run.steps.len(), 1);
        let step = &run.steps[0];
        assert_eq!(step.operation, ChatDebugStepOperation::Generate);
        assert_eq!(
            step.normalized_response.as_ref().unwrap().to_value()["text"],
            chatd_test_support::scripted::SCRIPTED_COMPACTION_SUMMARY
        );
        assert_eq!(step.normalized_request.to_value()["tool_choice"], "none");
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_turn_keeps_what_streamed_in_an_interrupted_run() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        store.set_debug_logging_forced(true);
        let gate = Arc::new(tokio::sync::Notify::new());
        let model = ScriptedModel::new([Reply::Gated {
            before: chatd_test_support::scripted::deltas("partial words "),
            gate,
            after: chatd_test_support::scripted::deltas("never"),
        }]);
        let engine = engine(&store, model.clone()).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "start and stop"))
            .await
            .unwrap();
        // The model call started and streamed its first words.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while model.calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        engine.interrupt(&actor, chat.id).await.unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let runs = loop {
            let runs = turn_runs(&engine, &actor, chat.id).await;
            if runs.len() == 1 && runs[0].status != ChatDebugStatus::InProgress {
                break runs;
            }
            assert!(tokio::time::Instant::now() < deadline, "{runs:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(runs[0].status, ChatDebugStatus::Interrupted);
        let run = engine.debug_run(&actor, chat.id, runs[0].id).await.unwrap();
        assert_eq!(run.steps.len(), 1);
        let step = &run.steps[0];
        assert_eq!(step.status, ChatDebugStatus::Interrupted);
        let response = step.normalized_response.as_ref().unwrap().to_value();
        assert_eq!(response["text"], "partial words ");
        assert!(step.error.is_none());
        assert!(step.finished_at.is_some());
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_debug_write_never_fails_the_turn() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        store.set_debug_logging_forced(true);
        // Every step write fails from now on.
        sqlx::query("DROP TABLE chat_debug_steps")
            .execute(store.pool())
            .await
            .unwrap();
        let engine = engine(&store, ScriptedModel::new([Reply::Text("fine".into())])).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "hello"))
            .await
            .unwrap();
        let done = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(done.last_error.is_none());
        // The run itself was written and finished, without its steps.
        let runs = turn_runs(&engine, &actor, chat.id).await;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, ChatDebugStatus::Completed);
        assert_eq!(runs[0].summary.to_value()["step_count"], 1);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stores_at_most_its_step_limit_and_counts_the_rest() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        store.set_debug_logging_forced(true);
        // Two model calls past the limit: tool calls answered (with an error result) each
        // time, then the answer.
        let over = usize::try_from(MAX_DEBUG_STEPS_PER_RUN).unwrap() + 1;
        let mut replies: Vec<Reply> = (0..over)
            .map(|i| {
                Reply::ToolCalls(vec![(
                    format!("call_{i}"),
                    "no_such_tool".into(),
                    "{}".into(),
                )])
            })
            .collect();
        replies.push(Reply::Text("done".into()));
        let engine = engine(&store, ScriptedModel::new(replies)).await;
        let chat = run_turn(&engine, &actor, f.org, "loop a while").await;
        let runs = turn_runs(&engine, &actor, chat).await;
        assert_eq!(runs.len(), 1);
        let summary = runs[0].summary.to_value();
        assert_eq!(summary["step_count"], MAX_DEBUG_STEPS_PER_RUN);
        assert_eq!(summary["steps_dropped"], 2);
        let run = engine.debug_run(&actor, chat, runs[0].id).await.unwrap();
        let numbers: Vec<i32> = run.steps.iter().map(|s| s.step_number).collect();
        assert_eq!(numbers, (1..=MAX_DEBUG_STEPS_PER_RUN).collect::<Vec<_>>());
        assert!(run
            .steps
            .iter()
            .all(|s| s.status == ChatDebugStatus::Completed));
        engine.shutdown().await;
    })
    .await;
}

/// The `Admin` rules of the settings (403 / 409 on a user's toggle, administrators'
/// writes), what each write announces to the other replicas, and the cache every turn
/// reads through: a change made behind the store's back is seen once the announced change
/// is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_rules_announcements_and_cache() {
    use chatd_core::{Admin, ConfigChange, Keyring, SecretKey};
    use codersdk::{
        UpdateChatDebugLoggingAllowUsersRequest, UpdateChatDebugRetentionDaysRequest,
        UpdateUserChatDebugLoggingRequest,
    };
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let keyring = Arc::new(Keyring::new("test", SecretKey::generate().unwrap()).unwrap());
        let admin = Admin::new(store.clone(), keyring, chatprovider::ProviderApiKeys::new());
        let heard: Arc<std::sync::Mutex<Vec<ConfigChange>>> = Arc::default();
        let sink = Arc::clone(&heard);
        admin.on_config_change(Arc::new(move |c| sink.lock().unwrap().push(c)));
        let take = || std::mem::take(&mut *heard.lock().unwrap());
        let user = Actor::user(f.user);
        let root = Actor::admin(Uuid::new_v4());
        let on = UpdateUserChatDebugLoggingRequest {
            debug_logging_enabled: true,
        };
        let allow = |allow_users| UpdateChatDebugLoggingAllowUsersRequest { allow_users };

        let err = admin.set_user_debug_logging(&user, &on).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        let err = admin
            .set_debug_logging(&user, &allow(true))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        let days = UpdateChatDebugRetentionDaysRequest {
            debug_retention_days: 9,
        };
        let err = admin
            .set_debug_retention_days(&user, &days)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        assert_eq!(take(), Vec::new());

        admin.set_debug_logging(&root, &allow(true)).await.unwrap();
        admin.set_debug_retention_days(&root, &days).await.unwrap();
        assert_eq!(take(), vec![ConfigChange::Deployment; 2]);
        assert_eq!(
            admin
                .debug_retention_days(&user)
                .await
                .unwrap()
                .debug_retention_days,
            9
        );
        admin.set_user_debug_logging(&user, &on).await.unwrap();
        assert_eq!(
            take(),
            vec![ConfigChange::UserDebugLogging { user_id: f.user }]
        );
        let mine = admin.user_debug_logging(&user).await.unwrap();
        assert!(mine.debug_logging_enabled && mine.user_toggle_allowed);
        assert!(!mine.forced_by_deployment);
        assert!(store.debug_logging_on(f.user).await.unwrap());

        // Behind the store's back: the cached answer stands until the change is applied.
        sqlx::query("UPDATE user_chat_debug_logging SET enabled = 0")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(store.debug_logging_on(f.user).await.unwrap());
        store
            .config_cache()
            .apply(&ConfigChange::UserDebugLogging { user_id: f.user });
        assert!(!store.debug_logging_on(f.user).await.unwrap());
        sqlx::query("UPDATE user_chat_debug_logging SET enabled = 1")
            .execute(store.pool())
            .await
            .unwrap();
        store
            .config_cache()
            .apply(&ConfigChange::UserDebugLogging { user_id: f.user });
        sqlx::query(
            "UPDATE site_config SET value = 'false' WHERE key = 'chat_debug_logging_allow_users'",
        )
        .execute(store.pool())
        .await
        .unwrap();
        assert!(store.debug_logging_on(f.user).await.unwrap());
        store.config_cache().apply(&ConfigChange::Deployment);
        assert!(!store.debug_logging_on(f.user).await.unwrap());

        // Forced: a toggle is a conflict, whatever users may do.
        admin.set_debug_logging_forced(true);
        let err = admin.set_user_debug_logging(&user, &on).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let settings = admin.debug_logging(&user).await.unwrap();
        assert!(settings.forced_by_deployment && !settings.allow_users);
        assert!(store.debug_logging_forced());
        assert_eq!(take(), Vec::new());
    })
    .await;
}
