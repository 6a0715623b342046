//! The engine end to end on SQLite and PostgreSQL, with a scripted model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chatd_core::Actor;
use chatd_test_support::db::{fixture, on_each_backend};
use chatd_test_support::scripted::{
    create_request, deltas, engine, wait_status, Reply, ScriptedModel,
};
use codersdk::{
    ChatBusyBehavior, ChatInputPart, ChatMessagePartType, ChatMessageRole, ChatStatus,
    ChatStreamEventType, CreateChatMessageRequest, MessagePage,
};
use tokio::sync::Notify;

fn all_messages() -> MessagePage {
    MessagePage {
        before_id: None,
        after_id: Some(0),
        limit: 200,
        ascending: true,
    }
}

fn texts(messages: &[codersdk::ChatMessage]) -> Vec<(ChatMessageRole, String)> {
    messages
        .iter()
        .map(|m| {
            let text = m
                .content
                .iter()
                .filter(|p| p.part_type == ChatMessagePartType::Text)
                .map(|p| p.text.as_str())
                .collect::<String>();
            (m.role.clone(), text)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_streams_parts_persists_the_reply_and_waits() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([Reply::Text("Hello there, friend".into())]);
        let engine = engine(&store, model.clone()).await;
        let chat = engine
            .create_chat(
                &actor,
                create_request(f.org, "say hello to me please now today"),
            )
            .await
            .unwrap();
        assert_eq!(chat.status, ChatStatus::Pending);
        assert_eq!(chat.title, "say hello to me please now…");
        let mut stream = engine.subscribe(&actor, chat.id, None).await.unwrap();
        let done = wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert!(done.last_error.is_none());

        let page = engine
            .list_messages(&actor, chat.id, &all_messages())
            .await
            .unwrap();
        assert_eq!(
            texts(&page.messages),
            vec![
                (
                    ChatMessageRole::User,
                    "say hello to me please now today".into()
                ),
                (ChatMessageRole::Assistant, "Hello there, friend".into()),
            ]
        );
        let assistant = &page.messages[1];
        let usage = assistant.usage.unwrap();
        assert_eq!(usage.input_tokens, Some(100));
        assert_eq!(usage.context_limit, Some(128_000));

        // The stream: snapshot status, the first message, then the turn live.
        let mut kinds = Vec::new();
        let mut streamed = String::new();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .unwrap()
                .unwrap();
            kinds.push(event.event_type.clone());
            if let Some(part) = &event.message_part {
                streamed.push_str(&part.part.text);
            }
            if event.event_type == ChatStreamEventType::Status
                && event.status.as_ref().unwrap().status == ChatStatus::Waiting
            {
                break;
            }
        }
        assert_eq!(streamed, "Hello there, friend");
        let messages = kinds
            .iter()
            .filter(|k| **k == ChatStreamEventType::Message)
            .count();
        assert_eq!(
            messages, 2,
            "user message once, assistant message once: {kinds:?}"
        );
        assert_eq!(model.calls.load(Ordering::SeqCst), 1);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_twice_then_succeeds_with_retry_events_and_no_stale_preview() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([
            Reply::Fail(429),
            Reply::Fail(429),
            Reply::Text("Finally here".into()),
        ]);
        let engine = engine(&store, model.clone()).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "hi"))
            .await
            .unwrap();
        let mut stream = engine.subscribe(&actor, chat.id, None).await.unwrap();
        let mut retries = Vec::new();
        let mut final_text = None;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .unwrap()
                .unwrap();
            match event.event_type {
                ChatStreamEventType::Retry => retries.push(event.retry.clone().unwrap()),
                ChatStreamEventType::Message
                    if event.message.as_ref().unwrap().role == ChatMessageRole::Assistant =>
                {
                    final_text = Some(texts(&[event.message.clone().unwrap()])[0].1.clone());
                }
                ChatStreamEventType::Status
                    if event.status.as_ref().unwrap().status == ChatStatus::Waiting =>
                {
                    break
                }
                _ => {}
            }
        }
        assert_eq!(retries.len(), 2);
        assert_eq!(retries[0].attempt, 1);
        assert_eq!(retries[1].attempt, 2);
        assert_eq!(retries[0].delay_ms, 1000);
        assert_eq!(retries[1].delay_ms, 2000);
        assert_eq!(retries[0].status_code, 429);
        assert_eq!(final_text.as_deref(), Some("Finally here"));
        assert_eq!(model.calls.load(Ordering::SeqCst), 3);
        // Nothing of the turn is left in the preview buffer.
        let late = engine.subscribe(&actor, chat.id, None).await.unwrap();
        assert_eq!(late.pending_snapshot(), 3, "status + two messages only");
        let page = engine
            .list_messages(&actor, chat.id, &all_messages())
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 2);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_joining_mid_step_gets_the_buffered_parts_then_the_rest_live() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([Reply::Gated {
            before: deltas("one two three "),
            gate: gate.clone(),
            after: deltas("four five"),
        }]);
        let engine = engine(&store, model.clone()).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "count"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Running).await;
        // Wait for the three parts before the gate to be buffered.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while engine
            .hub()
            .chat_stats(chat.id)
            .map_or(0, |s| s.buffered_parts)
            < 3
        {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut stream = engine.subscribe(&actor, chat.id, None).await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..5 {
            let e = stream.next().await.unwrap();
            seen.push(e.event_type.clone());
        }
        // status, three buffered parts, the user message.
        assert_eq!(
            seen,
            vec![
                ChatStreamEventType::Status,
                ChatStreamEventType::MessagePart,
                ChatStreamEventType::MessagePart,
                ChatStreamEventType::MessagePart,
                ChatStreamEventType::Message,
            ]
        );
        gate.notify_one();
        let mut text = String::new();
        loop {
            let e = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .unwrap()
                .unwrap();
            match e.event_type {
                ChatStreamEventType::MessagePart => {
                    text.push_str(&e.message_part.as_ref().unwrap().part.text)
                }
                ChatStreamEventType::Message => {
                    let m = e.message.as_ref().unwrap();
                    assert_eq!(m.role, ChatMessageRole::Assistant);
                    assert_eq!(
                        texts(std::slice::from_ref(m))[0].1,
                        "one two three four five"
                    );
                }
                ChatStreamEventType::Status
                    if e.status.as_ref().unwrap().status == ChatStatus::Waiting =>
                {
                    break
                }
                _ => {}
            }
        }
        assert_eq!(
            text, "four five",
            "live parts continue where the snapshot ended"
        );
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_by_send_keeps_the_partial_reply_and_runs_the_new_message_next() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([
            Reply::Gated {
                before: deltas("partial answer "),
                gate: gate.clone(),
                after: deltas("never streamed"),
            },
            Reply::Text("second answer".into()),
        ]);
        let engine = engine(&store, model.clone()).await;
        let chat = engine
            .create_chat(&actor, create_request(f.org, "first"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Running).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while engine
            .hub()
            .chat_stats(chat.id)
            .map_or(0, |s| s.buffered_parts)
            < 2
        {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sent = engine
            .send_message(
                &actor,
                chat.id,
                CreateChatMessageRequest {
                    content: vec![ChatInputPart::text("second")],
                    busy_behavior: Some(ChatBusyBehavior::Interrupt),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(sent.queued);
        // The interrupted turn keeps "partial answer", the queue head runs next.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let page = loop {
            let page = engine
                .list_messages(&actor, chat.id, &all_messages())
                .await
                .unwrap();
            if page.messages.len() == 4 {
                break page;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                texts(&page.messages)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        assert_eq!(
            texts(&page.messages),
            vec![
                (ChatMessageRole::User, "first".into()),
                (ChatMessageRole::Assistant, "partial answer ".into()),
                (ChatMessageRole::User, "second".into()),
                (ChatMessageRole::Assistant, "second answer".into()),
            ]
        );
        assert!(engine.list_queue(&actor, chat.id).await.unwrap().is_empty());
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_recovered_by_a_second_engine_which_completes_the_chat() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(Notify::new());
        let first = ScriptedModel::new([Reply::Gated {
            before: deltas("lost "),
            gate: gate.clone(),
            after: deltas("never"),
        }]);
        let engine1 = engine(&store, first.clone()).await;
        let chat = engine1
            .create_chat(&actor, create_request(f.org, "survive"))
            .await
            .unwrap();
        wait_status(&engine1, &actor, chat.id, ChatStatus::Running).await;
        // Crash: drop without shutdown. The chat stays `running` under a dead heartbeat.
        drop(engine1);
        let second = ScriptedModel::new([Reply::Text("recovered".into())]);
        let engine2 = engine(&store, second.clone()).await;
        wait_status(&engine2, &actor, chat.id, ChatStatus::Waiting).await;
        let page = engine2
            .list_messages(&actor, chat.id, &all_messages())
            .await
            .unwrap();
        assert_eq!(
            texts(&page.messages),
            vec![
                (ChatMessageRole::User, "survive".into()),
                (ChatMessageRole::Assistant, "recovered".into()),
            ]
        );
        assert_eq!(second.calls.load(Ordering::SeqCst), 1);
        engine2.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_hands_running_chats_back_as_pending() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([Reply::Gated {
            before: deltas("half "),
            gate,
            after: deltas("never"),
        }]);
        let engine1 = engine(&store, model).await;
        let chat = engine1
            .create_chat(&actor, create_request(f.org, "stop me"))
            .await
            .unwrap();
        wait_status(&engine1, &actor, chat.id, ChatStatus::Running).await;
        engine1.shutdown().await;
        let chat = store.get_chat(chat.id).await.unwrap().unwrap();
        assert_eq!(chat.status, ChatStatus::Pending);
        // The partial step of a shutdown is discarded: the next engine redoes the step.
        let page = store
            .list_messages(chat.id, &all_messages())
            .await
            .unwrap()
            .0;
        assert_eq!(page.len(), 1);
        let engine2 = engine(&store, ScriptedModel::new([Reply::Text("done".into())])).await;
        wait_status(&engine2, &actor, chat.id, ChatStatus::Waiting).await;
        engine2.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_chats_times_three_turns_lose_and_duplicate_nothing() {
    const CHATS: usize = 200;
    const TURNS: usize = 3;
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let engine = engine(&store, ScriptedModel::new([])).await;
        let mut ids = Vec::with_capacity(CHATS);
        for i in 0..CHATS {
            let chat = engine
                .create_chat(&actor, create_request(f.org, &format!("chat {i} turn 0")))
                .await
                .unwrap();
            ids.push(chat.id);
        }
        for turn in 1..TURNS {
            // Every chat sends its next message while possibly still busy: it queues and
            // is promoted when the turn ends, so nothing may be lost either way.
            let sends = ids.iter().enumerate().map(|(i, id)| {
                let engine = engine.clone();
                async move {
                    engine
                        .send_message(
                            &actor,
                            *id,
                            CreateChatMessageRequest {
                                content: vec![ChatInputPart::text(format!("chat {i} turn {turn}"))],
                                ..Default::default()
                            },
                        )
                        .await
                        .unwrap();
                }
            });
            futures_util::future::join_all(sends).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        for (i, id) in ids.iter().enumerate() {
            loop {
                let chat = engine.get_chat(&actor, *id).await.unwrap();
                let page = engine
                    .list_messages(&actor, *id, &all_messages())
                    .await
                    .unwrap();
                if chat.status == ChatStatus::Waiting && page.messages.len() == 2 * TURNS {
                    let got = texts(&page.messages);
                    for turn in 0..TURNS {
                        assert_eq!(
                            got[2 * turn],
                            (ChatMessageRole::User, format!("chat {i} turn {turn}"))
                        );
                        assert_eq!(got[2 * turn + 1], (ChatMessageRole::Assistant, "ok".into()));
                    }
                    assert!(page.queued_messages.is_empty());
                    break;
                }
                assert!(
                    page.messages.len() <= 2 * TURNS,
                    "chat {i} has duplicates: {:?}",
                    texts(&page.messages)
                );
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "chat {i} did not finish"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        engine.shutdown().await;
    })
    .await;
}

/// A worker that persisted its last step but died before finishing leaves a chat whose
/// reply is already stored: recovery must finish it, not answer twice; and a step with
/// open client tool calls must come back as `requires_action`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_after_the_last_step_finishes_without_answering_twice() {
    use chatd_core::store::Step;
    use codersdk::{ChatMessagePart, DynamicTool, RawJson};
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let mut plain = chatd_test_support::db::new_chat(&f, "answered already");
        plain.title = "plain".into();
        let (answered, _) = store.create_chat(plain).await.unwrap();
        let mut with_tool = chatd_test_support::db::new_chat(&f, "needs the client");
        with_tool.dynamic_tools = vec![DynamicTool {
            name: "ask_user".into(),
            description: String::new(),
            input_schema: RawJson::from_json(r#"{"type":"object"}"#).unwrap(),
        }];
        let (waiting_on_client, _) = store.create_chat(with_tool).await.unwrap();
        // A worker claims both, persists each chat's last step, and dies before finishing.
        let dead = codersdk::Uuid::new_v4();
        let leases = store.claim_pending(dead, 10).await.unwrap();
        for lease in &leases {
            let parts = if lease.chat_id == answered.id {
                vec![ChatMessagePart::text("the stored reply")]
            } else {
                vec![ChatMessagePart::tool_call(
                    "call_1",
                    "ask_user",
                    RawJson::empty_object(),
                )]
            };
            store
                .persist_step(
                    lease,
                    Step {
                        assistant_parts: parts,
                        runtime_ms: 1,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
        }
        let model = ScriptedModel::new([]);
        let engine = engine(&store, model.clone()).await;
        wait_status(&engine, &actor, answered.id, ChatStatus::Waiting).await;
        wait_status(
            &engine,
            &actor,
            waiting_on_client.id,
            ChatStatus::RequiresAction,
        )
        .await;
        assert_eq!(model.calls.load(Ordering::SeqCst), 0, "no second answer");
        let page = engine
            .list_messages(&actor, answered.id, &all_messages())
            .await
            .unwrap();
        assert_eq!(
            texts(&page.messages),
            vec![
                (ChatMessageRole::User, "answered already".into()),
                (ChatMessageRole::Assistant, "the stored reply".into()),
            ]
        );
        let pending = store
            .pending_tool_calls(waiting_on_client.id)
            .await
            .unwrap();
        assert_eq!(pending.len(), 1);
        engine.shutdown().await;
    })
    .await;
}
