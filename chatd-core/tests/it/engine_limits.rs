//! Engine limits at their edges and terminal errors, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::StoreOptions;
use chatd_core::{Actor, Engine, EngineConfig, EngineSettings, ErrorKind};
use chatd_test_support::db::{fixture, on_each_backend};
use chatd_test_support::scripted::{
    create_request, engine_with, fast_settings, wait_status, Reply, ScriptedModel, ScriptedResolver,
};
use codersdk::{ChatErrorKind, ChatStatus, ChatStreamEventType, MessagePage};
use tokio::sync::Notify;

fn all() -> MessagePage {
    MessagePage {
        before_id: None,
        after_id: Some(0),
        limit: 200,
        ascending: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_retryable_provider_error_ends_the_turn_in_error_with_a_classified_last_error() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([Reply::Fail(401)]);
        let engine = engine_with(&store, model.clone(), fast_settings()).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "hi"))
            .await
            .unwrap();
        let mut stream = engine.subscribe(&actor, chat.id, None).await.unwrap();
        let failed = wait_status(&engine, &actor, chat.id, ChatStatus::Error).await;
        let last = failed.last_error.unwrap();
        assert_eq!(last.kind, Some(ChatErrorKind::Auth));
        assert!(!last.retryable);
        assert_eq!(last.status_code, 401);
        assert_eq!(
            model.calls.load(Ordering::SeqCst),
            1,
            "auth errors are not retried"
        );
        // The stream carried the error payload after the status.
        let mut saw_error = false;
        while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(200), stream.next()).await
        {
            saw_error |= e.event_type == ChatStreamEventType::Error;
        }
        assert!(saw_error);
        // Sending again clears the error and runs a new turn.
        model.push(Reply::Text("back".into()));
        engine
            .send_message(
                &actor,
                chat.id,
                codersdk::CreateChatMessageRequest {
                    content: vec![codersdk::ChatInputPart::text("retry")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let done = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(done.last_error.is_none());
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_stops_normally_at_the_step_limit() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([]);
        for i in 0..5 {
            model.push(Reply::ToolCalls(vec![(
                format!("c{i}"),
                "noop".into(),
                "{}".into(),
            )]));
        }
        let mut settings = fast_settings();
        settings.max_steps = 3;
        let engine = engine_with(&store, model.clone(), settings).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "loop forever"))
            .await
            .unwrap();
        let done = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(done.last_error.is_none());
        assert_eq!(
            model.calls.load(Ordering::SeqCst),
            3,
            "exactly max_steps model calls"
        );
        let page = engine.list_messages(&actor, chat.id, &all()).await.unwrap();
        // user + 3 × (assistant + tool result)
        assert_eq!(page.messages.len(), 7);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_runs_at_most_max_active_turns_at_once() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([
            Reply::Gated {
                before: vec!["a ".into()],
                gate: gate.clone(),
                after: vec!["b".into()],
            },
            Reply::Text("second".into()),
        ]);
        let mut settings = fast_settings();
        settings.max_active_turns = 1;
        let engine = engine_with(&store, model.clone(), settings).await;
        let one = engine
            .create_chat(&actor, create_request(f.org, "one"))
            .await
            .unwrap();
        wait_status(&engine, &actor, one.id, ChatStatus::Running).await;
        let two = engine
            .create_chat(&actor, create_request(f.org, "two"))
            .await
            .unwrap();
        // The only slot is taken: the second chat waits in `pending`.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            engine.get_chat(&actor, two.id).await.unwrap().status,
            ChatStatus::Pending
        );
        assert_eq!(engine.active_turns(), 1);
        gate.notify_one();
        wait_status(&engine, &actor, one.id, ChatStatus::Waiting).await;
        wait_status(&engine, &actor, two.id, ChatStatus::Waiting).await;
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_would_misbehave_are_refused_at_start() {
    on_each_backend(|store| async move {
        let model = ScriptedModel::new([]);
        type Adjust = Box<dyn Fn(&mut EngineSettings)>;
        let cases: Vec<(&str, Adjust)> = vec![
            (
                "zero acquire interval",
                Box::new(|s| s.acquire_interval = Duration::ZERO),
            ),
            (
                "heartbeat not shorter than stale_after",
                Box::new(|s| s.heartbeat_interval = s.stale_after),
            ),
            ("zero steps", Box::new(|s| s.max_steps = 0)),
            ("zero turns", Box::new(|s| s.max_active_turns = 0)),
        ];
        for (name, adjust) in cases {
            let mut settings = EngineSettings::default();
            adjust(&mut settings);
            let config = EngineConfig::new(
                StoreOptions::new("unused"),
                ScriptedResolver::new(model.clone()),
            )
            .with_settings(settings);
            let err = Engine::with_store(store.clone(), config).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{name}");
        }
        // One tick shorter than stale_after is fine.
        let mut settings = EngineSettings::default();
        settings.heartbeat_interval = settings.stale_after - Duration::from_millis(1);
        let config = EngineConfig::new(
            StoreOptions::new("unused"),
            ScriptedResolver::new(model.clone()),
        )
        .with_settings(settings);
        Engine::with_store(store.clone(), config)
            .await
            .unwrap()
            .shutdown()
            .await;
    })
    .await;
}
