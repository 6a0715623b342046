//! Store tests of sending, the queue and worker leases. Every test runs on SQLite (a fresh
//! temp file) and, when `CHATD_TEST_DATABASE_URL` names a PostgreSQL database, also on
//! PostgreSQL (a fresh schema that is dropped afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashSet;

use chatd_core::store::{
    now_micros, timestamp_from_micros, HistoryRead, Lease, LeaseState, SendClaim, SendMessage,
    SendOutcome, Store, DYNAMIC_TOOL_TIMEOUT_MESSAGE, MAX_CLAIM_BATCH, MAX_QUEUED_MESSAGES,
};
use chatd_core::ErrorKind;
use codersdk::{ChatBusyBehavior, ChatMessagePart, ChatStatus, MessagePage, Uuid};
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

/// Forces a chat's status (and clears its worker), as another operation would have.
async fn set_status(store: &Store, chat: Uuid, status: ChatStatus) {
    sqlx::query("UPDATE chats SET status = $2, worker_id = NULL WHERE id = $1")
        .bind(chat.to_string())
        .bind(status.as_str())
        .execute(store.pool())
        .await
        .unwrap();
}

async fn status_of(store: &Store, chat: Uuid) -> ChatStatus {
    store.get_chat(chat).await.unwrap().unwrap().status
}

fn text_of(parts: &[ChatMessagePart]) -> String {
    serde_json::to_value(parts).unwrap()[0]["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn all_messages() -> MessagePage {
    MessagePage {
        before_id: None,
        after_id: Some(0),
        limit: 100,
        ascending: true,
    }
}

#[tokio::test]
async fn send_to_idle_chat_inserts_and_sets_pending() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        set_status(&store, chat.id, ChatStatus::Error).await;
        sqlx::query("UPDATE chats SET last_error = '{\"message\":\"x\"}' WHERE id = $1")
            .bind(chat.id.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        let sent = store
            .send_message(chat.id, send(&f, "second", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        assert_eq!(sent.transition.status, ChatStatus::Pending);
        assert!(sent.transition.queue.is_none(), "the queue is unchanged");
        assert_eq!(sent.transition.ended_turn, None, "no turn ran the chat");
        let SendOutcome::Inserted(message) = sent.outcome else {
            panic!("expected an inserted message");
        };
        let read = store.get_chat(chat.id).await.unwrap().unwrap();
        assert_eq!(read.status, ChatStatus::Pending);
        assert_eq!(read.last_error, None);
        assert!(read.updated_at >= chat.updated_at);
        let (messages, _) = store.list_messages(chat.id, &all_messages()).await.unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1], message);
        assert_eq!(sent.transition.messages, vec![message.clone()]);
        assert_eq!(text_of(&messages[1].content), "second");
        assert!(store.list_queue(chat.id).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn send_while_busy_queues_in_fifo_order() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        // A new chat is pending: busy.
        let (chat, _) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        let sent = store
            .send_message(chat.id, send(&f, "q1", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        assert_eq!(sent.transition.status, ChatStatus::Pending);
        let SendOutcome::Queued {
            queued,
            interrupted,
        } = sent.outcome
        else {
            panic!("expected a queued message");
        };
        assert!(!interrupted);
        assert_eq!(sent.transition.queue, Some(vec![queued.clone()]));
        // Idle but with a non-empty queue: still queued, to keep FIFO order.
        set_status(&store, chat.id, ChatStatus::Waiting).await;
        let sent = store
            .send_message(chat.id, send(&f, "q2", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        assert!(matches!(sent.outcome, SendOutcome::Queued { .. }));
        assert_eq!(sent.transition.status, ChatStatus::Waiting);
        let queue = store.list_queue(chat.id).await.unwrap();
        assert_eq!(Some(queue.clone()), sent.transition.queue);
        let texts: Vec<_> = queue.iter().map(|q| text_of(&q.content)).collect();
        assert_eq!(texts, ["q1", "q2"]);
        assert!(queue[0].id < queue[1].id);
        assert_eq!(queue[0], queued);
        // Nothing reached the history.
        let (messages, _) = store.list_messages(chat.id, &all_messages()).await.unwrap();
        assert_eq!(messages.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn queue_holds_exactly_the_cap() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        for i in 0..MAX_QUEUED_MESSAGES {
            store
                .send_message(chat.id, send(&f, &format!("m{i}"), ChatBusyBehavior::Queue))
                .await
                .unwrap();
        }
        let queue = store.list_queue(chat.id).await.unwrap();
        assert_eq!(queue.len() as i64, MAX_QUEUED_MESSAGES);
        for busy in [ChatBusyBehavior::Queue, ChatBusyBehavior::Interrupt] {
            let err = store
                .send_message(chat.id, send(&f, "one too many", busy))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::QueueFull);
        }
        // The refusal changed nothing, not even the status (interrupt is not applied).
        assert_eq!(store.list_queue(chat.id).await.unwrap(), queue);
        assert_eq!(status_of(&store, chat.id).await, ChatStatus::Pending);
    })
    .await;
}

#[tokio::test]
async fn interrupt_sets_waiting_but_never_over_pending() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        // Pending: queued, status kept.
        let sent = store
            .send_message(chat.id, send(&f, "a", ChatBusyBehavior::Interrupt))
            .await
            .unwrap();
        assert!(matches!(
            sent.outcome,
            SendOutcome::Queued {
                interrupted: false,
                ..
            }
        ));
        assert_eq!(sent.transition.status, ChatStatus::Pending);
        assert_eq!(status_of(&store, chat.id).await, ChatStatus::Pending);
        // Running: queued and interrupted, the worker cleared, the epoch kept.
        let worker = Uuid::new_v4();
        let leases = store.claim_pending(worker, 1).await.unwrap();
        assert_eq!(leases.len(), 1);
        let sent = store
            .send_message(chat.id, send(&f, "b", ChatBusyBehavior::Interrupt))
            .await
            .unwrap();
        assert!(matches!(
            sent.outcome,
            SendOutcome::Queued {
                interrupted: true,
                ..
            }
        ));
        assert_eq!(sent.transition.status, ChatStatus::Waiting);
        assert_eq!(sent.transition.ended_turn, Some(leases[0]));
        assert_eq!(status_of(&store, chat.id).await, ChatStatus::Waiting);
        assert_eq!(sent.transition.queue.map(|q| q.len()), Some(2));
        // The interrupted worker may still persist its partial step.
        let mut tx = store.begin_chat_tx(chat.id).await.unwrap();
        assert_eq!(
            tx.check_lease(&leases[0]).await.unwrap(),
            LeaseState::Interrupted
        );
        tx.rollback().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn archived_chat_refuses_send_and_promote() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        let sent = store
            .send_message(chat.id, send(&f, "q", ChatBusyBehavior::Queue))
            .await
            .unwrap();
        let SendOutcome::Queued { queued, .. } = sent.outcome else {
            panic!("expected a queued message");
        };
        sqlx::query("UPDATE chats SET archived = 1, status = 'waiting' WHERE id = $1")
            .bind(chat.id.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        let err = store
            .send_message(chat.id, send(&f, "x", ChatBusyBehavior::Queue))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let err = store.promote_queued(chat.id, queued.id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(store.list_queue(chat.id).await.unwrap().len(), 1);
        // Missing chats are not found.
        let missing = Uuid::new_v4();
        let err = store
            .send_message(missing, send(&f, "x", ChatBusyBehavior::Queue))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = store.list_queue(missing).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    })
    .await;
}

#[tokio::test]
async fn delete_and_promote_queued() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        for text in ["a", "b", "c"] {
            store
                .send_message(chat.id, send(&f, text, ChatBusyBehavior::Queue))
                .await
                .unwrap();
        }
        let queue = store.list_queue(chat.id).await.unwrap();
        let left = store.delete_queued(chat.id, queue[0].id).await.unwrap();
        assert_eq!(left.queue, Some(queue[1..].to_vec()));
        let err = store.delete_queued(chat.id, queue[0].id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);

        // Promote "c" while a worker runs: it becomes history, the chat pending, the
        // worker's lease lost.
        let leases = store.claim_pending(Uuid::new_v4(), 1).await.unwrap();
        assert_eq!(leases.len(), 1);
        let promoted = store.promote_queued(chat.id, queue[2].id).await.unwrap();
        assert_eq!(text_of(&promoted.message.content), "c");
        assert_eq!(promoted.message.created_by, Some(f.user));
        assert_eq!(promoted.transition.queue, Some(vec![queue[1].clone()]));
        assert_eq!(promoted.transition.ended_turn, Some(leases[0]));
        assert_eq!(status_of(&store, chat.id).await, ChatStatus::Pending);
        let (messages, _) = store.list_messages(chat.id, &all_messages()).await.unwrap();
        assert_eq!(messages.last(), Some(&promoted.message));
        let mut tx = store.begin_chat_tx(chat.id).await.unwrap();
        assert_eq!(tx.check_lease(&leases[0]).await.unwrap(), LeaseState::Lost);
        tx.rollback().await.unwrap();
        let err = store
            .promote_queued(chat.id, queue[2].id)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    })
    .await;
}

#[tokio::test]
async fn claim_respects_the_limit_and_skips_archived() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut ids = Vec::new();
        for i in 0..(MAX_CLAIM_BATCH + 3) {
            let (chat, _) = store
                .create_chat(new_chat(&f, &format!("c{i}")))
                .await
                .unwrap();
            ids.push(chat.id);
        }
        sqlx::query("UPDATE chats SET archived = 1 WHERE id = $1")
            .bind(ids[0].to_string())
            .execute(store.pool())
            .await
            .unwrap();
        let worker = Uuid::new_v4();
        assert!(store.claim_pending(worker, 0).await.unwrap().is_empty());
        let two = store.claim_pending(worker, 2).await.unwrap();
        assert_eq!(two.len(), 2);
        let rest = store.claim_pending(worker, 1000).await.unwrap();
        assert_eq!(rest.len(), MAX_CLAIM_BATCH);
        assert!(store.claim_pending(worker, 10).await.unwrap().is_empty());
        for lease in two.iter().chain(&rest) {
            assert_ne!(lease.chat_id, ids[0]);
            assert_eq!(lease.worker_id, worker);
            assert_eq!(lease.epoch, 1);
            assert_eq!(status_of(&store, lease.chat_id).await, ChatStatus::Running);
        }
        assert_eq!(status_of(&store, ids[0]).await, ChatStatus::Pending);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_never_share_a_chat() {
    const CHATS: usize = 15;
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        for i in 0..CHATS {
            store
                .create_chat(new_chat(&f, &format!("c{i}")))
                .await
                .unwrap();
        }
        let mut handles = Vec::new();
        for _ in 0..2 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                store
                    .claim_pending(Uuid::new_v4(), MAX_CLAIM_BATCH)
                    .await
                    .unwrap()
            }));
        }
        let mut claimed = Vec::new();
        for h in handles {
            let leases = h.await.unwrap();
            assert!(leases.len() <= MAX_CLAIM_BATCH);
            claimed.extend(leases);
        }
        let distinct: HashSet<_> = claimed.iter().map(|l| l.chat_id).collect();
        assert_eq!(claimed.len(), CHATS);
        assert_eq!(distinct.len(), CHATS);
    })
    .await;
}

#[tokio::test]
async fn heartbeat_returns_only_owned_leases() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        for i in 0..3 {
            store
                .create_chat(new_chat(&f, &format!("c{i}")))
                .await
                .unwrap();
        }
        let worker = Uuid::new_v4();
        let leases = store.claim_pending(worker, 3).await.unwrap();
        assert_eq!(leases.len(), 3);
        assert!(store.heartbeat(worker, &[]).await.unwrap().is_empty());
        let owned: HashSet<_> = store
            .heartbeat(worker, &leases)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(owned, leases.iter().copied().collect());
        // Lost: one interrupted, one with a wrong epoch; another worker owns none.
        set_status(&store, leases[0].chat_id, ChatStatus::Waiting).await;
        let mut stale = leases.clone();
        stale[1].epoch += 1;
        let owned = store.heartbeat(worker, &stale).await.unwrap();
        assert_eq!(owned, vec![leases[2]]);
        assert!(store
            .heartbeat(Uuid::new_v4(), &leases)
            .await
            .unwrap()
            .is_empty());
        // Graceful release returns the worker's running chats to pending.
        let released = store.release_all(worker).await.unwrap();
        assert!(released
            .iter()
            .all(|t| t.status == ChatStatus::Pending && t.ended_turn.is_some()));
        let mut released: Vec<_> = released.iter().map(|t| t.chat_id).collect();
        released.sort();
        let mut expected = vec![leases[1].chat_id, leases[2].chat_id];
        expected.sort();
        assert_eq!(released, expected);
        assert_eq!(
            status_of(&store, leases[2].chat_id).await,
            ChatStatus::Pending
        );
        assert_eq!(
            status_of(&store, leases[0].chat_id).await,
            ChatStatus::Waiting
        );
        assert!(store.heartbeat(worker, &leases).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn recovery_moves_stale_chats_and_nothing_else() {
    const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(300);
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut ids = Vec::new();
        for i in 0..4 {
            let (chat, _) = store
                .create_chat(new_chat(&f, &format!("c{i}")))
                .await
                .unwrap();
            ids.push(chat.id);
        }
        let worker = Uuid::new_v4();
        let leases = store.claim_pending(worker, 2).await.unwrap();
        assert_eq!(leases.len(), 2);
        let (stale, fresh) = (leases[0], leases[1]);
        let old = now_micros() - 2 * STALE_AFTER.as_micros() as i64;
        sqlx::query("UPDATE chats SET heartbeat_at = $2 WHERE id = $1")
            .bind(stale.chat_id.to_string())
            .bind(old)
            .execute(store.pool())
            .await
            .unwrap();
        // Two requires_action chats: one not updated for long, one recently.
        let waiting: Vec<_> = ids
            .iter()
            .copied()
            .filter(|id| *id != stale.chat_id && *id != fresh.chat_id)
            .collect();
        for (id, updated) in [(waiting[0], old), (waiting[1], now_micros())] {
            sqlx::query(
                "UPDATE chats SET status = 'requires_action', updated_at = $2 WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(updated)
            .execute(store.pool())
            .await
            .unwrap();
        }
        let now = timestamp_from_micros(now_micros()).unwrap();
        let recovered = store.recover_stale(now, STALE_AFTER).await.unwrap();
        assert_eq!(recovered.to_pending(), vec![stale.chat_id]);
        assert_eq!(recovered.timed_out(), vec![waiting[0]]);

        let row = sqlx::query("SELECT status, worker_id, lease_epoch FROM chats WHERE id = $1")
            .bind(stale.chat_id.to_string())
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(row.try_get::<String, _>("status").unwrap(), "pending");
        assert_eq!(row.try_get::<Option<String>, _>("worker_id").unwrap(), None);
        assert_eq!(row.try_get::<i64, _>("lease_epoch").unwrap(), stale.epoch);
        assert_eq!(status_of(&store, fresh.chat_id).await, ChatStatus::Running);
        assert_eq!(
            status_of(&store, waiting[1]).await,
            ChatStatus::RequiresAction
        );
        let timed_out = store.get_chat(waiting[0]).await.unwrap().unwrap();
        assert_eq!(timed_out.status, ChatStatus::Error);
        let error = timed_out.last_error.unwrap();
        assert_eq!(error.message, DYNAMIC_TOOL_TIMEOUT_MESSAGE);
        assert!(!error.retryable);
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            serde_json::json!({
                "message": "Dynamic tool execution timed out",
                "kind": "generic",
                "retryable": false
            })
        );
        assert_eq!(store.heartbeat(worker, &leases).await.unwrap(), vec![fresh]);
        // A second pass finds nothing.
        let again = store.recover_stale(now, STALE_AFTER).await.unwrap();
        assert!(again.to_pending().is_empty() && again.timed_out().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_stale_lease_of_the_same_worker_is_fenced_off() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        let worker = Uuid::new_v4();
        let first = store.claim_pending(worker, 1).await.unwrap()[0];
        let mut tx = store.begin_chat_tx(chat.id).await.unwrap();
        assert_eq!(tx.check_lease(&first).await.unwrap(), LeaseState::Owned);
        tx.rollback().await.unwrap();
        // Recovery (as if the heartbeat stopped), then the same worker claims again.
        let later = timestamp_from_micros(now_micros() + 3_600_000_000).unwrap();
        let recovered = store
            .recover_stale(later, std::time::Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(recovered.to_pending(), vec![chat.id]);
        let second = store.claim_pending(worker, 1).await.unwrap()[0];
        assert_eq!(second.worker_id, first.worker_id);
        assert_eq!(second.epoch, first.epoch + 1);
        let mut tx = store.begin_chat_tx(chat.id).await.unwrap();
        assert_eq!(tx.check_lease(&first).await.unwrap(), LeaseState::Lost);
        assert_eq!(tx.check_lease(&second).await.unwrap(), LeaseState::Owned);
        let other = Lease {
            chat_id: Uuid::new_v4(),
            ..second
        };
        assert_eq!(
            tx.check_lease(&other).await.unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        tx.rollback().await.unwrap();
        assert_eq!(store.heartbeat(worker, &[first]).await.unwrap(), vec![]);
        // Interrupted after a re-claim: the old lease stays lost, the new one may flush.
        set_status(&store, chat.id, ChatStatus::Waiting).await;
        let mut tx = store.begin_chat_tx(chat.id).await.unwrap();
        assert_eq!(tx.check_lease(&first).await.unwrap(), LeaseState::Lost);
        assert_eq!(
            tx.check_lease(&second).await.unwrap(),
            LeaseState::Interrupted
        );
        tx.rollback().await.unwrap();
    })
    .await;
}

fn claim_for(worker: Uuid, max_running_root_chats: usize) -> SendClaim {
    SendClaim {
        worker_id: worker,
        max_running_root_chats,
        known: None,
    }
}

#[tokio::test]
async fn a_send_to_an_idle_chat_claims_its_turn_when_there_is_room() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let worker = Uuid::new_v4();
        let (chat, _) = store.create_chat(new_chat(&f, "first")).await.unwrap();
        set_status(&store, chat.id, ChatStatus::Waiting).await;
        let before: i64 = sqlx::query_scalar("SELECT lease_epoch FROM chats WHERE id = $1")
            .bind(chat.id.to_string())
            .fetch_one(store.pool())
            .await
            .unwrap();
        let sent = store
            .send_and_claim(
                chat.id,
                Some(f.user),
                send(&f, "second", ChatBusyBehavior::Queue),
                claim_for(worker, 5),
            )
            .await
            .unwrap();
        let lease = sent.claimed.expect("the send claimed the turn");
        assert_eq!(lease.chat_id, chat.id);
        assert_eq!(lease.worker_id, worker);
        assert_eq!(lease.epoch, before + 1, "a claim bumps the epoch");
        assert!(matches!(sent.outcome, SendOutcome::Inserted(_)));
        assert_eq!(sent.transition.status, ChatStatus::Running);
        assert!(sent.transition.status_set);
        assert!(
            !sent.transition.wakes(),
            "nothing for the run loop to claim"
        );
        assert_eq!(store.lease_state(&lease).await.unwrap(), LeaseState::Owned);
        // The turn's start, read beside the commit (before or after it), is what the turn
        // would read now: the chat `running` under the lease, the history ending with the
        // message.
        let start = sent
            .turn_start
            .clone()
            .expect("a plain send hands its turn the start");
        assert_eq!(
            start,
            store.turn_start(&lease, None).await.unwrap().unwrap()
        );
        assert_eq!(start.lease, LeaseState::Owned);
        assert_eq!(start.inputs.chat.status, ChatStatus::Running);
        let HistoryRead::Full { messages, mark } = &start.history else {
            panic!("nothing held: the whole history");
        };
        let SendOutcome::Inserted(message) = &sent.outcome else {
            panic!("inserted");
        };
        assert_eq!(messages.last(), Some(message));
        assert_eq!(mark.unwrap().last_id, message.id);
        // Another user's chat is refused before anything is written.
        let err = store
            .send_and_claim(
                chat.id,
                Some(Uuid::new_v4()),
                send(&f, "third", ChatBusyBehavior::Queue),
                claim_for(worker, 5),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        // A running chat is busy: the next send queues and claims nothing.
        let queued = store
            .send_and_claim(
                chat.id,
                Some(f.user),
                send(&f, "fourth", ChatBusyBehavior::Queue),
                claim_for(worker, 5),
            )
            .await
            .unwrap();
        assert_eq!(queued.claimed, None);
        assert!(matches!(queued.outcome, SendOutcome::Queued { .. }));
        assert_eq!(store.lease_state(&lease).await.unwrap(), LeaseState::Owned);
    })
    .await;
}

#[tokio::test]
async fn a_send_leaves_its_chat_pending_at_the_limit_or_behind_a_waiting_chat() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let worker = Uuid::new_v4();
        let mut chats = Vec::new();
        for name in ["running", "target", "waiting"] {
            let (chat, _) = store.create_chat(new_chat(&f, name)).await.unwrap();
            set_status(&store, chat.id, ChatStatus::Waiting).await;
            chats.push(chat.id);
        }
        let (running, target, other) = (chats[0], chats[1], chats[2]);
        set_status(&store, running, ChatStatus::Running).await;
        // One root chat runs and the limit is one: no room.
        let full = store
            .send_and_claim(
                target,
                None,
                send(&f, "at the limit", ChatBusyBehavior::Queue),
                claim_for(worker, 1),
            )
            .await
            .unwrap();
        assert_eq!(full.claimed, None);
        assert_eq!(full.transition.status, ChatStatus::Pending);
        assert!(full.transition.wakes());
        assert_eq!(status_of(&store, target).await, ChatStatus::Pending);
        // Room again, but a root chat waits `pending`: the send does not overtake it.
        set_status(&store, running, ChatStatus::Waiting).await;
        let behind = store
            .send_and_claim(
                other,
                None,
                send(&f, "behind", ChatBusyBehavior::Queue),
                claim_for(worker, 5),
            )
            .await
            .unwrap();
        assert_eq!(behind.claimed, None);
        assert_eq!(status_of(&store, other).await, ChatStatus::Pending);
        // The run loop's claim takes them oldest first, as for any pending chat.
        let leases = store.claim_pending(worker, MAX_CLAIM_BATCH).await.unwrap();
        let claimed: HashSet<Uuid> = leases.iter().map(|l| l.chat_id).collect();
        assert_eq!(claimed, HashSet::from([target, other]));
    })
    .await;
}

#[tokio::test]
async fn a_sub_agent_chat_is_never_claimed_by_a_send() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (parent, _) = store.create_chat(new_chat(&f, "parent")).await.unwrap();
        let (child, _) = store.create_chat(new_chat(&f, "child")).await.unwrap();
        sqlx::query("UPDATE chats SET parent_chat_id = $2, root_chat_id = $2 WHERE id = $1")
            .bind(child.id.to_string())
            .bind(parent.id.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        set_status(&store, child.id, ChatStatus::Waiting).await;
        let sent = store
            .send_and_claim(
                child.id,
                None,
                send(&f, "to the child", ChatBusyBehavior::Queue),
                claim_for(Uuid::new_v4(), 5),
            )
            .await
            .unwrap();
        assert_eq!(sent.claimed, None);
        assert_eq!(status_of(&store, child.id).await, ChatStatus::Pending);
    })
    .await;
}
