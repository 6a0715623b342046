//! Store tests of a worker's turn writes: step persistence, the finish routine and retry
//! state. Every test runs on SQLite (a fresh temp file) and, when `CHATD_TEST_DATABASE_URL`
//! names a PostgreSQL database, also on PostgreSQL (a fresh schema dropped afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_core::store::{
    now_micros, timestamp_from_micros, Lease, LeaseState, SendMessage, SendOutcome, Step, Store,
    TurnOutcome,
};
use chatd_core::ErrorKind;
use codersdk::{
    ChatBusyBehavior, ChatError, ChatMessagePart, ChatMessageRole, ChatMessageUsage, ChatStatus,
    ChatStreamRetry, MessagePage, RawJson, Uuid,
};
use sqlx::Row;

use chatd_test_support::db::*;

fn send(f: &Fixture, text: &str, busy: ChatBusyBehavior) -> SendMessage {
    SendMessage {
        parts: vec![ChatMessagePart::text(text)],
        created_by: Some(f.user),
        model_config_id: None,
        busy_behavior: busy,
        plan_mode: None,
        mcp_server_ids: None,
    }
}

fn step(text: &str, tools: usize, model: Uuid) -> Step {
    let args = RawJson::from_json("{}").unwrap();
    let mut parts = vec![ChatMessagePart::text(text)];
    let mut tool_results = Vec::new();
    for i in 0..tools {
        let id = format!("call-{i}");
        parts.push(ChatMessagePart::tool_call(&id, "echo", args.clone()));
        let result = RawJson::from_json(&format!("{{\"n\":{i}}}")).unwrap();
        tool_results.push(vec![ChatMessagePart::tool_result(
            &id, "echo", result, false,
        )]);
    }
    Step {
        assistant_parts: parts,
        usage: Some(ChatMessageUsage {
            input_tokens: Some(10),
            output_tokens: Some(5),
            total_tokens: Some(15),
            context_limit: Some(1000),
            ..ChatMessageUsage::default()
        }),
        total_cost_micros: Some(42),
        runtime_ms: 1234,
        provider_response_id: Some("resp_1".into()),
        model_config_id: Some(model),
        tool_results,
    }
}

fn all_messages() -> MessagePage {
    MessagePage {
        before_id: None,
        after_id: Some(0),
        limit: 100,
        ascending: true,
    }
}

async fn message_count(store: &Store, chat: Uuid) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM chat_messages WHERE chat_id = $1")
        .bind(chat.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Worker fields, `last_error` and `retry_state` as stored.
struct RawChat {
    worker_id: Option<String>,
    started_at: Option<i64>,
    heartbeat_at: Option<i64>,
    lease_epoch: i64,
    last_error: Option<String>,
    retry_state: Option<String>,
    updated_at: i64,
}

async fn raw_chat(store: &Store, chat: Uuid) -> RawChat {
    let row = sqlx::query(
        "SELECT worker_id, started_at, heartbeat_at, lease_epoch, last_error, retry_state, \
         updated_at FROM chats WHERE id = $1",
    )
    .bind(chat.to_string())
    .fetch_one(store.pool())
    .await
    .unwrap();
    RawChat {
        worker_id: row.try_get("worker_id").unwrap(),
        started_at: row.try_get("started_at").unwrap(),
        heartbeat_at: row.try_get("heartbeat_at").unwrap(),
        lease_epoch: row.try_get("lease_epoch").unwrap(),
        last_error: row.try_get("last_error").unwrap(),
        retry_state: row.try_get("retry_state").unwrap(),
        updated_at: row.try_get("updated_at").unwrap(),
    }
}

/// A chat claimed by a fresh worker.
async fn claimed(store: &Store, f: &Fixture) -> (Uuid, Lease) {
    let (chat, _) = store.create_chat(new_chat(f, "first")).await.unwrap();
    let lease = store.claim_pending(Uuid::new_v4(), 1).await.unwrap()[0];
    assert_eq!(lease.chat_id, chat.id);
    (chat.id, lease)
}

async fn status_of(store: &Store, chat: Uuid) -> ChatStatus {
    store.get_chat(chat).await.unwrap().unwrap().status
}

#[tokio::test]
async fn persisted_step_then_completion_leaves_waiting_history() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, lease) = claimed(&store, &f).await;
        let before = raw_chat(&store, chat).await.updated_at;
        let model = Uuid::new_v4();
        let persisted = store
            .persist_step(&lease, step("answer", 2, model))
            .await
            .unwrap();
        assert_eq!(persisted.lease, LeaseState::Owned);
        let roles: Vec<_> = persisted
            .transition
            .messages
            .iter()
            .map(|m| m.role.clone())
            .collect();
        assert_eq!(
            roles,
            vec![
                ChatMessageRole::Assistant,
                ChatMessageRole::Tool,
                ChatMessageRole::Tool
            ]
        );
        assert!(persisted.transition.preview_reset);
        let assistant = &persisted.transition.messages[0];
        assert_eq!(assistant.model_config_id, Some(model));
        assert_eq!(assistant.usage.as_ref().unwrap().total_tokens, Some(15));
        // The message the step's subscribers see carries its cost; the tool results none.
        assert_eq!(assistant.total_cost_micros, Some(42));
        assert_eq!(persisted.transition.messages[1].total_cost_micros, None);
        let row = sqlx::query(
            "SELECT visibility, total_cost_micros, runtime_ms, provider_response_id, \
             context_limit FROM chat_messages WHERE id = $1",
        )
        .bind(assistant.id)
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(row.try_get::<String, _>("visibility").unwrap(), "both");
        assert_eq!(
            row.try_get::<Option<i64>, _>("total_cost_micros").unwrap(),
            Some(42)
        );
        assert_eq!(
            row.try_get::<Option<i64>, _>("runtime_ms").unwrap(),
            Some(1234)
        );
        assert_eq!(
            row.try_get::<Option<String>, _>("provider_response_id")
                .unwrap()
                .as_deref(),
            Some("resp_1")
        );
        assert_eq!(
            row.try_get::<Option<i64>, _>("context_limit").unwrap(),
            Some(1000)
        );
        let read = store.get_chat(chat).await.unwrap().unwrap();
        assert_eq!(read.last_model_config_id, model);
        assert_eq!(read.status, ChatStatus::Running);
        assert!(raw_chat(&store, chat).await.updated_at >= before);

        let finished = store
            .finish_turn(&lease, TurnOutcome::Completed)
            .await
            .unwrap();
        assert!(finished.changed() && finished.status_set);
        assert_eq!(finished.status, ChatStatus::Waiting);
        assert!(finished.user_message().is_none());
        assert!(finished.queue.is_none(), "the queue is unchanged");
        assert!(store.list_queue(chat).await.unwrap().is_empty());
        assert_eq!(status_of(&store, chat).await, ChatStatus::Waiting);
        let raw = raw_chat(&store, chat).await;
        assert_eq!(raw.worker_id, None);
        assert_eq!(raw.started_at, None);
        assert_eq!(raw.heartbeat_at, None);
        // Finishing retires the lease.
        assert_eq!(raw.lease_epoch, lease.epoch + 1);
        let (messages, _) = store.list_messages(chat, &all_messages()).await.unwrap();
        let roles: Vec<_> = messages.iter().map(|m| m.role.clone()).collect();
        assert_eq!(
            roles,
            vec![
                ChatMessageRole::User,
                ChatMessageRole::Assistant,
                ChatMessageRole::Tool,
                ChatMessageRole::Tool
            ]
        );
        assert_eq!(&messages[1..], &persisted.transition.messages[..]);
    })
    .await;
}

#[tokio::test]
async fn partial_step_after_an_interrupt_is_kept() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, lease) = claimed(&store, &f).await;
        let sent = store
            .send_message(chat, send(&f, "stop", ChatBusyBehavior::Interrupt))
            .await
            .unwrap();
        assert_eq!(sent.transition.status, ChatStatus::Waiting);
        let persisted = store
            .persist_step(&lease, step("partial", 1, Uuid::new_v4()))
            .await
            .unwrap();
        assert_eq!(persisted.lease, LeaseState::Interrupted);
        assert_eq!(persisted.transition.messages.len(), 2);
        assert_eq!(message_count(&store, chat).await, 3);
        // Retry state is only for a running turn.
        let err = store.record_retry(&lease, None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LeaseLost);
        // The finish promotes the interrupting message, which was queued.
        let finished = store
            .finish_turn(&lease, TurnOutcome::Interrupted)
            .await
            .unwrap();
        assert!(finished.changed() && finished.status_set);
        assert_eq!(finished.status, ChatStatus::Pending);
        assert_eq!(finished.queue, Some(Vec::new()));
        let promoted = finished.user_message().cloned().unwrap();
        assert_eq!(promoted.role, ChatMessageRole::User);
        assert!(promoted.id > persisted.transition.messages[1].id);
        assert_eq!(status_of(&store, chat).await, ChatStatus::Pending);
    })
    .await;
}

#[tokio::test]
async fn step_after_a_promote_is_refused_and_writes_nothing() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, lease) = claimed(&store, &f).await;
        let sent = store
            .send_message(chat, send(&f, "next", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        let SendOutcome::Queued { queued, .. } = sent.outcome else {
            panic!("expected a queued message");
        };
        store.promote_queued(chat, queued.id).await.unwrap();
        let before = message_count(&store, chat).await;
        let err = store
            .persist_step(&lease, step("late", 1, Uuid::new_v4()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LeaseLost);
        assert_eq!(message_count(&store, chat).await, before);
        // The finish leaves the pending chat for the next claim.
        let finished = store
            .finish_turn(&lease, TurnOutcome::Interrupted)
            .await
            .unwrap();
        assert!(!finished.changed());
        assert_eq!(finished.status, ChatStatus::Pending);
        assert_eq!(status_of(&store, chat).await, ChatStatus::Pending);
    })
    .await;
}

#[tokio::test]
async fn stale_lease_after_recovery_and_reclaim_is_refused() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, first) = claimed(&store, &f).await;
        let later = timestamp_from_micros(now_micros() + 3_600_000_000).unwrap();
        let recovered = store
            .recover_stale(later, std::time::Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(recovered.to_pending(), vec![chat]);
        let second = store.claim_pending(first.worker_id, 1).await.unwrap()[0];
        assert_eq!(second.epoch, first.epoch + 1);
        let before = message_count(&store, chat).await;
        let err = store
            .persist_step(&first, step("stale", 0, Uuid::new_v4()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LeaseLost);
        assert_eq!(message_count(&store, chat).await, before);
        // The current lease still writes.
        store
            .persist_step(&second, step("fresh", 0, Uuid::new_v4()))
            .await
            .unwrap();
        assert_eq!(message_count(&store, chat).await, before + 1);
    })
    .await;
}

#[tokio::test]
async fn completion_with_a_queue_promotes_its_head() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, lease) = claimed(&store, &f).await;
        let model = Uuid::new_v4();
        let mut first = send(&f, "one", ChatBusyBehavior::Queue);
        first.model_config_id = Some(model);
        store.send_message(chat, first).await.unwrap();
        store
            .send_message(chat, send(&f, "two", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        store.record_retry(&lease, Some(retry())).await.unwrap();
        let finished = store
            .finish_turn(&lease, TurnOutcome::Completed)
            .await
            .unwrap();
        assert!(finished.changed() && finished.status_set);
        assert_eq!(finished.status, ChatStatus::Pending);
        let promoted = finished.user_message().cloned().unwrap();
        assert_eq!(promoted.role, ChatMessageRole::User);
        assert_eq!(promoted.model_config_id, Some(model));
        assert_eq!(promoted.created_by, Some(f.user));
        assert_eq!(promoted.content, vec![ChatMessagePart::text("one")]);
        let queue = finished.queue.clone().unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(queue[0].content, vec![ChatMessagePart::text("two")]);
        assert_eq!(store.list_queue(chat).await.unwrap(), queue);
        let read = store.get_chat(chat).await.unwrap().unwrap();
        assert_eq!(read.status, ChatStatus::Pending);
        assert_eq!(read.last_model_config_id, model);
        let raw = raw_chat(&store, chat).await;
        assert_eq!(raw.worker_id, None);
        assert_eq!(raw.retry_state, None);
        let (messages, _) = store.list_messages(chat, &all_messages()).await.unwrap();
        assert_eq!(messages.last(), Some(&promoted));
        // The next claim runs the promoted message.
        let next = store.claim_pending(Uuid::new_v4(), 1).await.unwrap();
        assert_eq!(next.len(), 1);
        // One bump retired the finished lease, one more made the new claim.
        assert_eq!(next[0].epoch, lease.epoch + 2);
    })
    .await;
}

#[tokio::test]
async fn archived_chat_is_not_auto_promoted() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, lease) = claimed(&store, &f).await;
        store
            .send_message(chat, send(&f, "queued", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        sqlx::query("UPDATE chats SET archived = 1 WHERE id = $1")
            .bind(chat.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        let finished = store
            .finish_turn(&lease, TurnOutcome::Completed)
            .await
            .unwrap();
        assert!(finished.changed() && finished.status_set);
        assert_eq!(finished.status, ChatStatus::Waiting);
        assert!(finished.user_message().is_none());
        assert!(finished.queue.is_none(), "the queue is unchanged");
        assert_eq!(store.list_queue(chat).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn failure_stores_last_error_until_the_next_send() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, lease) = claimed(&store, &f).await;
        store
            .send_message(chat, send(&f, "queued", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        let finished = store
            .finish_turn(&lease, TurnOutcome::Failed(ChatError::generic("boom")))
            .await
            .unwrap();
        assert!(finished.changed() && finished.status_set);
        // An error turn does not auto-promote.
        assert_eq!(finished.status, ChatStatus::Error);
        assert_eq!(finished.error, Some(ChatError::generic("boom")));
        assert!(finished.user_message().is_none());
        assert!(finished.queue.is_none(), "the queue is unchanged");
        let queue = store.list_queue(chat).await.unwrap();
        assert_eq!(queue.len(), 1);
        let read = store.get_chat(chat).await.unwrap().unwrap();
        assert_eq!(read.status, ChatStatus::Error);
        assert_eq!(read.last_error.unwrap().message, "boom");
        assert_eq!(raw_chat(&store, chat).await.worker_id, None);
        // Idle (error) with an empty queue: the send inserts and clears the error.
        let id = queue[0].id;
        store.delete_queued(chat, id).await.unwrap();
        let sent = store
            .send_message(chat, send(&f, "again", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        assert_eq!(sent.transition.status, ChatStatus::Pending);
        let read = store.get_chat(chat).await.unwrap().unwrap();
        assert_eq!(read.last_error, None);
        assert_eq!(raw_chat(&store, chat).await.last_error, None);
    })
    .await;
}

#[tokio::test]
async fn pending_dynamic_calls_require_action() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, lease) = claimed(&store, &f).await;
        store
            .persist_step(&lease, step("call the client", 0, Uuid::new_v4()))
            .await
            .unwrap();
        let finished = store
            .finish_turn(&lease, TurnOutcome::RequiresAction)
            .await
            .unwrap();
        assert!(finished.changed() && finished.status_set);
        assert_eq!(finished.status, ChatStatus::RequiresAction);
        assert_eq!(status_of(&store, chat).await, ChatStatus::RequiresAction);
        let raw = raw_chat(&store, chat).await;
        assert_eq!(raw.worker_id, None);
        assert_eq!(raw.last_error, None);
    })
    .await;
}

#[tokio::test]
async fn shutdown_returns_the_chat_to_pending() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, lease) = claimed(&store, &f).await;
        let finished = store
            .finish_turn(&lease, TurnOutcome::Shutdown)
            .await
            .unwrap();
        assert!(finished.changed() && finished.status_set);
        assert_eq!(finished.status, ChatStatus::Pending);
        assert_eq!(raw_chat(&store, chat).await.worker_id, None);
        assert_eq!(
            store.claim_pending(Uuid::new_v4(), 1).await.unwrap().len(),
            1
        );
    })
    .await;
}

#[tokio::test]
async fn finish_by_a_non_owner_writes_nothing() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, lease) = claimed(&store, &f).await;
        let before = raw_chat(&store, chat).await;
        let stranger = Lease {
            worker_id: Uuid::new_v4(),
            ..lease
        };
        let finished = store
            .finish_turn(&stranger, TurnOutcome::Failed(ChatError::generic("no")))
            .await
            .unwrap();
        assert!(!finished.changed());
        assert_eq!(finished.status, ChatStatus::Running);
        let after = raw_chat(&store, chat).await;
        assert_eq!(after.worker_id, before.worker_id);
        assert_eq!(after.last_error, None);
        assert_eq!(after.updated_at, before.updated_at);
        let stale = Lease {
            epoch: lease.epoch - 1,
            ..lease
        };
        assert!(!store
            .finish_turn(&stale, TurnOutcome::Completed)
            .await
            .unwrap()
            .changed());
        assert_eq!(status_of(&store, chat).await, ChatStatus::Running);
        let err = store
            .persist_step(&stranger, step("x", 0, Uuid::new_v4()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LeaseLost);
    })
    .await;
}

fn retry() -> ChatStreamRetry {
    ChatStreamRetry {
        attempt: 1,
        delay_ms: 2000,
        error: "overloaded".into(),
        kind: None,
        provider: "anthropic".into(),
        status_code: 529,
        retrying_at: timestamp_from_micros(now_micros()).unwrap(),
    }
}

#[tokio::test]
async fn retry_state_is_set_and_cleared_only_by_the_owner() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, lease) = claimed(&store, &f).await;
        let before = raw_chat(&store, chat).await.updated_at;
        let state = retry();
        store
            .record_retry(&lease, Some(state.clone()))
            .await
            .unwrap();
        let raw = raw_chat(&store, chat).await;
        let stored: ChatStreamRetry =
            serde_json::from_str(raw.retry_state.as_deref().unwrap()).unwrap();
        assert_eq!(stored, state);
        assert_eq!(raw.updated_at, before);
        store.record_retry(&lease, None).await.unwrap();
        assert_eq!(raw_chat(&store, chat).await.retry_state, None);
        // Lost after recovery: refused, nothing written.
        let later = timestamp_from_micros(now_micros() + 3_600_000_000).unwrap();
        store
            .recover_stale(later, std::time::Duration::from_secs(60))
            .await
            .unwrap();
        let err = store.record_retry(&lease, Some(state)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LeaseLost);
        assert_eq!(raw_chat(&store, chat).await.retry_state, None);
    })
    .await;
}

#[tokio::test]
async fn a_finished_lease_can_write_nothing_more() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, lease) = claimed(&store, &f).await;
        let finished = store
            .finish_turn(&lease, TurnOutcome::Completed)
            .await
            .unwrap();
        assert!(finished.changed() && finished.status_set);
        let count = message_count(&store, chat).await;
        // A stale copy of the lease (a duplicated finish, a late step) is refused.
        let err = store
            .persist_step(&lease, step("late", 1, Uuid::new_v4()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LeaseLost);
        assert_eq!(message_count(&store, chat).await, count);
        let again = store
            .finish_turn(
                &lease,
                TurnOutcome::Failed(codersdk::ChatError::generic("late")),
            )
            .await
            .unwrap();
        assert!(!again.changed());
        assert_eq!(status_of(&store, chat).await, ChatStatus::Waiting);
        assert!(store
            .get_chat(chat)
            .await
            .unwrap()
            .unwrap()
            .last_error
            .is_none());
    })
    .await;
}
