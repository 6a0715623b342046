//! Two engines on one PostgreSQL schema, as two replicas would be (docs/engine-design.md
//! "Several replicas on PostgreSQL"): the relay carries streams, watches, wake-ups, stops
//! and configuration changes; a dead engine's chats are taken over at once; a lost
//! `LISTEN` connection is re-established and re-read. PostgreSQL only: SQLite serves one
//! process. The same behaviours between real server processes are tested in
//! server-example's `replicas` tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatd_core::store::Store;
use chatd_core::{
    Actor, ConfigChange, Engine, EngineObserver, EngineSettings, HubEvent, RecoveryCause,
};
use chatd_test_support::db::{fixture, on_postgres, RawSql};
use chatd_test_support::scripted::{
    create_request, deltas, engine_with_config, fast_settings, Reply, ScriptedModel,
};
use codersdk::{
    ChatBusyBehavior, ChatStatus, ChatStreamEvent, ChatStreamEventType, ChatWatchEventKind,
    CreateChatMessageRequest,
};
use tokio::sync::Notify;

use crate::engine::{all_messages, say, until};

/// Counts what an engine reports.
#[derive(Debug, Default)]
struct Counts {
    claims: AtomicUsize,
    dead_replica: AtomicUsize,
    reconnects: AtomicUsize,
    lags: AtomicUsize,
}

impl EngineObserver for Counts {
    fn claimed(&self, count: usize) {
        self.claims.fetch_add(count, Ordering::SeqCst);
    }
    fn recovered(&self, cause: RecoveryCause, count: usize) {
        if cause == RecoveryCause::DeadReplica {
            self.dead_replica.fetch_add(count, Ordering::SeqCst);
        }
    }
    fn relay_lag(&self, _lag: Duration) {
        self.lags.fetch_add(1, Ordering::SeqCst);
    }
    fn notification_reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::SeqCst);
    }
}

/// Intervals that leave everything to the cluster: no ticker claims within a test and no
/// stale recovery, so what happens fast happens through the relay and the liveness locks.
fn cluster_settings() -> EngineSettings {
    let mut s = fast_settings();
    s.acquire_interval = Duration::from_secs(600);
    s.stale_after = Duration::from_secs(600);
    s.recovery_interval = Duration::from_secs(600);
    s.heartbeat_interval = Duration::from_secs(300);
    s.liveness_interval = Duration::from_millis(100);
    s
}

async fn replica(store: &Store, model: Arc<ScriptedModel>, counts: Arc<Counts>) -> Engine {
    engine_with_config(store, model, cluster_settings(), move |c| {
        c.with_generated_titles(false).with_observer(counts)
    })
    .await
}

/// The next event within 10 s.
async fn next(stream: &mut chatd_core::ChatStream) -> Arc<HubEvent<ChatStreamEvent>> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
}

/// The events until (and with) the chat's `status` event of `status`.
async fn events_until(
    stream: &mut chatd_core::ChatStream,
    status: ChatStatus,
) -> Vec<Arc<HubEvent<ChatStreamEvent>>> {
    let mut events = Vec::new();
    loop {
        let event = next(stream).await;
        let done = event.event_type == ChatStreamEventType::Status
            && event.status.as_ref().is_some_and(|s| s.status == status);
        events.push(event);
        if done {
            return events;
        }
    }
}

/// A compact view of a stream: type and text of each event.
fn shape(events: &[Arc<HubEvent<ChatStreamEvent>>]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.event_type {
            ChatStreamEventType::MessagePart => format!(
                "part:{}",
                e.message_part.as_ref().map_or("", |p| p.part.text.as_str())
            ),
            ChatStreamEventType::Message => {
                format!("message:{}", e.message.as_ref().map_or(0, |m| m.id))
            }
            ChatStreamEventType::Status => {
                format!("status:{:?}", e.status.as_ref().map(|s| s.status.clone()))
            }
            other => format!("{other:?}"),
        })
        .collect()
}

/// A stream on the other engine sees what a stream on the running engine sees, the
/// buffered parts of the step in flight included, even when that engine started mid-turn:
/// the relay mirrors the worker's hub, and a replica that missed the turn's start asks the
/// worker's replica for its parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_another_replica_sees_the_same_events_in_order() {
    on_postgres(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([Reply::Gated {
            before: deltas("one two "),
            gate: gate.clone(),
            after: deltas("three four five"),
        }]);
        let a = replica(&store, model.clone(), Arc::default()).await;
        let chat = a
            .create_chat(&actor, create_request(f.org, "count"))
            .await
            .unwrap();
        until("the turn streams on A", || {
            a.hub()
                .chat_stats(chat.id)
                .is_some_and(|s| s.buffered_parts >= 2)
        })
        .await;
        // B starts while the step is in flight: it learns the parts through the relay from
        // now on, so it subscribes after one more relayed event shows the mirror is live.
        let b = replica(&store, ScriptedModel::new([]), Arc::default()).await;
        let mut on_a = a.subscribe(&actor, chat.id, None).await.unwrap();
        let mut on_b = b.subscribe(&actor, chat.id, None).await.unwrap();
        gate.notify_one();
        let seen_a = shape(&events_until(&mut on_a, ChatStatus::Waiting).await);
        let seen_b = shape(&events_until(&mut on_b, ChatStatus::Waiting).await);
        // B started after the first parts were relayed to nobody; subscribing, it asked A
        // for the step's parts: both subscribers see the same sequence from the start.
        assert!(seen_b.contains(&"part:one ".to_owned()), "{seen_b:?}");
        assert_eq!(seen_a, seen_b);
        let messages = |s: &[String]| s.iter().filter(|e| e.starts_with("message:")).count();
        assert_eq!(
            messages(&seen_b),
            2,
            "user + assistant once each: {seen_b:?}"
        );

        // A second turn with B subscribed from the start: whichever replica runs it, B's
        // subscriber sees it start, stream, persist and end, each message once.
        let mut on_b = b.subscribe(&actor, chat.id, None).await.unwrap();
        for _ in 0..on_b.pending_snapshot() {
            next(&mut on_b).await;
        }
        a.send_message(&actor, chat.id, say("more")).await.unwrap();
        let seen = shape(&events_until(&mut on_b, ChatStatus::Waiting).await);
        let running = seen.iter().position(|e| e == "status:Some(Running)");
        let part = seen.iter().position(|e| e.starts_with("part:"));
        let messages: Vec<_> = seen.iter().filter(|e| e.starts_with("message:")).collect();
        assert!(running.is_some() && running < part, "{seen:?}");
        assert_eq!(messages.len(), 2, "{seen:?}");
        assert_ne!(messages[0], messages[1], "{seen:?}");
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

/// An interrupt sent through B stops the turn A runs within the relay's latency (not at
/// A's next heartbeat, five minutes away here), keeping the partial answer; an
/// interrupting send through B then runs its message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_through_another_replica_stops_the_turn_at_once() {
    on_postgres(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let model = ScriptedModel::new([
            Reply::Gated {
                before: deltas("half "),
                gate: Arc::new(Notify::new()),
                after: deltas("never"),
            },
            Reply::Gated {
                before: deltas("again "),
                gate: Arc::new(Notify::new()),
                after: deltas("never"),
            },
        ]);
        let a = replica(&store, model.clone(), Arc::default()).await;
        let chat = a
            .create_chat(&actor, create_request(f.org, "start"))
            .await
            .unwrap();
        until("the turn streams on A", || {
            a.hub()
                .chat_stats(chat.id)
                .is_some_and(|s| s.buffered_parts >= 1)
        })
        .await;
        let b = replica(&store, ScriptedModel::new([]), Arc::default()).await;
        let started = Instant::now();
        b.interrupt(&actor, chat.id).await.unwrap();
        until("A's turn stops", || a.active_turns() == 0).await;
        let stopped = started.elapsed();
        assert!(stopped < Duration::from_secs(1), "took {stopped:?}");
        let page = b
            .list_messages(&actor, chat.id, &all_messages())
            .await
            .unwrap();
        let last = page.messages.last().unwrap();
        assert_eq!(last.role, codersdk::ChatMessageRole::Assistant);
        assert_eq!(last.content[0].text, "half ");

        // The next turn on A too (B, draining, claims nothing but still takes requests);
        // an interrupting send through B stops it and its message runs next.
        b.drain(Duration::ZERO).await;
        a.send_message(&actor, chat.id, say("go on")).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(model.calls.load(Ordering::SeqCst) == 2
            && a.hub()
                .chat_stats(chat.id)
                .is_some_and(|s| s.buffered_parts >= 1))
        {
            assert!(
                Instant::now() < deadline,
                "A's second turn never streamed: status {:?}, calls {}, active a={} b={}, {:?}",
                a.chat_status(chat.id).await.unwrap(),
                model.calls.load(Ordering::SeqCst),
                a.active_turns(),
                b.active_turns(),
                a.hub().chat_stats(chat.id)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sent = b
            .send_message(
                &actor,
                chat.id,
                CreateChatMessageRequest {
                    busy_behavior: Some(ChatBusyBehavior::Interrupt),
                    ..say("next")
                },
            )
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let page = b
                .list_messages(&actor, chat.id, &all_messages())
                .await
                .unwrap();
            let texts: Vec<_> = page
                .messages
                .iter()
                .map(|m| m.content[0].text.clone())
                .collect();
            if b.chat_status(chat.id).await.unwrap() == Some(ChatStatus::Waiting)
                && texts.len() == 6
            {
                assert_eq!(texts, ["start", "half ", "go on", "again ", "next", "ok"]);
                assert!(page.queued_messages.is_empty());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "queued={} status={:?} active a={} b={} calls={} {:?}",
                sent.queued,
                b.chat_status(chat.id).await.unwrap(),
                a.active_turns(),
                b.active_turns(),
                model.calls.load(Ordering::SeqCst),
                page.messages
                    .iter()
                    .map(|m| m.content[0].text.clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

/// A chat made `pending` through one replica wakes the other at once (its acquire ticker
/// is ten minutes here), and a watcher on the other replica sees the status changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_and_watch_events_cross_replicas() {
    on_postgres(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        // B does the work; A only takes the request.
        let b_counts = Arc::new(Counts::default());
        let b = replica(&store, ScriptedModel::new([]), b_counts.clone()).await;
        let mut watch = b.watch(&actor).unwrap();
        let a = replica(&store, ScriptedModel::new([]), Arc::default()).await;
        // Make A's run loop unable to claim: drain it (no new claims), so the created chat
        // can only run on B, woken through the relay.
        a.drain(Duration::ZERO).await;
        let chat = a
            .create_chat(&actor, create_request(f.org, "hello"))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut kinds = Vec::new();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), watch.recv())
                .await
                .expect("a watch event")
                .unwrap();
            if event.chat.id == chat.id {
                kinds.push((event.kind.clone(), event.chat.status.clone()));
                if event.chat.status == ChatStatus::Waiting
                    && event.kind == ChatWatchEventKind::StatusChange
                {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "{kinds:?}");
        }
        // The relayed `created` reaches B's watcher, though not always first: on a loaded
        // machine B's own start-up claim can find the chat in the database and publish its
        // `running` locally before A's relay batch arrives (events of two replicas are
        // ordered per replica, not across them).
        assert!(
            kinds.iter().any(|k| k.0 == ChatWatchEventKind::Created),
            "{kinds:?}"
        );
        assert!(b_counts.claims.load(Ordering::SeqCst) >= 1);
        assert!(b_counts.lags.load(Ordering::SeqCst) >= 1);
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

/// An engine that dies (its tasks aborted and connections dropped, as a killed process's
/// are) holds no liveness lock any more: the survivor hands its chats back and runs them
/// within a liveness interval or so, not after the stale threshold (ten minutes here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replicas_chats_are_taken_over_at_once() {
    on_postgres(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gates: Vec<_> = (0..5).map(|_| Arc::new(Notify::new())).collect();
        let model = ScriptedModel::new(gates.iter().map(|gate| Reply::Gated {
            before: deltas("partial "),
            gate: gate.clone(),
            after: deltas("never"),
        }));
        let a = replica(&store, model.clone(), Arc::default()).await;
        let mut chats = Vec::new();
        for i in 0..5 {
            let chat = a
                .create_chat(&actor, create_request(f.org, &format!("chat {i}")))
                .await
                .unwrap();
            chats.push(chat.id);
        }
        until("A runs all five", || {
            model.calls.load(Ordering::SeqCst) == 5
        })
        .await;
        let counts = Arc::new(Counts::default());
        let b = replica(&store, ScriptedModel::new([]), counts.clone()).await;
        let killed = Instant::now();
        drop(a);
        for chat in &chats {
            let deadline = Instant::now() + Duration::from_secs(10);
            while b.chat_status(*chat).await.unwrap() != Some(ChatStatus::Waiting) {
                assert!(Instant::now() < deadline, "chat {chat} not taken over");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let took = killed.elapsed();
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert_eq!(counts.dead_replica.load(Ordering::SeqCst), 5);
        for chat in &chats {
            let page = b
                .list_messages(&actor, *chat, &all_messages())
                .await
                .unwrap();
            let replies = page
                .messages
                .iter()
                .filter(|m| m.role == codersdk::ChatMessageRole::Assistant)
                .count();
            assert_eq!(replies, 1, "answered once: {:?}", page.messages);
        }
        b.shutdown().await;
    })
    .await;
}

/// A configuration change announced on one replica reaches the others' receivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_changes_reach_every_replica() {
    on_postgres(|store| async move {
        let a = replica(&store, ScriptedModel::new([]), Arc::default()).await;
        let b = replica(&store, ScriptedModel::new([]), Arc::default()).await;
        let mut on_b = b.config_changes();
        let mut on_a = a.config_changes();
        let id = codersdk::Uuid::new_v4();
        a.announce_config_change(ConfigChange::ModelConfig { id });
        let got = tokio::time::timeout(Duration::from_secs(5), on_b.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, ConfigChange::ModelConfig { id });
        // The announcing replica's own receivers hear it too, once.
        assert_eq!(on_a.recv().await.unwrap(), ConfigChange::ModelConfig { id });
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

/// The `LISTEN` connection terminated by the database: the replica reconnects, re-reads
/// what it serves, and its stream subscriber still gets the durable end of a turn that
/// ran on the other replica meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listen_connection_is_reestablished_and_re_read() {
    on_postgres(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([Reply::Gated {
            before: deltas("before "),
            gate: gate.clone(),
            after: deltas("after"),
        }]);
        let a = replica(&store, model.clone(), Arc::default()).await;
        let chat = a
            .create_chat(&actor, create_request(f.org, "go"))
            .await
            .unwrap();
        until("A streams", || model.calls.load(Ordering::SeqCst) == 1).await;
        let counts = Arc::new(Counts::default());
        let b = replica(&store, ScriptedModel::new([]), counts.clone()).await;
        let mut on_b = b.subscribe(&actor, chat.id, None).await.unwrap();
        // Terminate the LISTEN connections of this schema's channel (A's and B's), not
        // those of tests running beside this one.
        let channel = b.notification_channel().unwrap();
        let terminated: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
        )
        .bind(format!("LISTEN \"{channel}\""))
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert!(!terminated.is_empty());
        // The turn ends while B may be reconnecting: B re-reads after reconnecting.
        gate.notify_one();
        let seen = shape(&events_until(&mut on_b, ChatStatus::Waiting).await);
        assert!(
            seen.iter().filter(|e| e.starts_with("message:")).count() >= 2,
            "{seen:?}"
        );
        until("B reconnected", || {
            counts.reconnects.load(Ordering::SeqCst) >= 1
        })
        .await;
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

/// Parts larger than a notification can carry (PostgreSQL refuses payloads of 8 000 bytes)
/// travel through `relay_blobs`, and bursts of small ones are split across notifications,
/// in order: B's subscriber gets exactly A's parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_parts_and_bursts_cross_replicas_intact() {
    on_postgres(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(Notify::new());
        let big = "y".repeat(3 * chatd_core::cluster::MAX_NOTIFY_PAYLOAD_BYTES);
        let mut after = vec![format!("{big} ")];
        after.extend((0..500).map(|i| format!("w{i} ")));
        after.push("end".to_owned());
        let model = ScriptedModel::new([Reply::Gated {
            before: deltas("start "),
            gate: gate.clone(),
            after,
        }]);
        // The scripted model emits its 500 parts without pausing, faster than any provider
        // streams; room for all of them in the subscribers' queues keeps this test about
        // the relay, not about back-pressure (the hub's own tests cover that).
        let roomy = |model| {
            engine_with_config(&store, model, cluster_settings(), |mut c| {
                c.hub.subscriber_capacity = 4_096;
                c.with_generated_titles(false)
            })
        };
        let a = roomy(model.clone()).await;
        let b = roomy(ScriptedModel::new([])).await;
        b.drain(Duration::ZERO).await;
        let chat = a
            .create_chat(&actor, create_request(f.org, "big"))
            .await
            .unwrap();
        until("A streams", || {
            a.hub()
                .chat_stats(chat.id)
                .is_some_and(|s| s.buffered_parts >= 1)
        })
        .await;
        let mut on_a = a.subscribe(&actor, chat.id, None).await.unwrap();
        let mut on_b = b.subscribe(&actor, chat.id, None).await.unwrap();
        gate.notify_one();
        let parts = |events: &[Arc<HubEvent<ChatStreamEvent>>]| -> Vec<String> {
            events
                .iter()
                .filter_map(|e| e.message_part.as_ref().map(|p| p.part.text.clone()))
                .collect()
        };
        // Both read at once: 500 parts are more than a subscriber may leave unread.
        let (events_a, events_b) = tokio::join!(
            events_until(&mut on_a, ChatStatus::Waiting),
            events_until(&mut on_b, ChatStatus::Waiting)
        );
        let (seen_a, seen_b) = (parts(&events_a), parts(&events_b));
        assert_eq!(seen_a.len(), 503);
        assert!(seen_b.contains(&format!("{big} ")));
        assert_eq!(seen_a, seen_b);
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}
