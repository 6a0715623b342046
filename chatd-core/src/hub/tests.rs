#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use codersdk::{ChatError, ChatMessagePart, Timestamp};

fn part(chat: Uuid, n: usize) -> ChatStreamEvent {
    ChatStreamEvent::message_part(chat, None, ChatMessagePart::text(n.to_string()))
}

/// The number a [`part`] carries.
fn n_of(event: &ChatStreamEvent) -> usize {
    event
        .message_part
        .as_ref()
        .unwrap()
        .part
        .text
        .parse()
        .unwrap()
}

fn numbers(events: &[Arc<HubEvent<ChatStreamEvent>>]) -> Vec<usize> {
    events.iter().map(|e| n_of(e)).collect()
}

fn drain<T>(rx: &mut HubReceiver<T>) -> (Vec<Arc<HubEvent<T>>>, Option<TryRecvError>) {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => out.push(e),
            Err(TryRecvError::Empty) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

fn retry(attempt: u32) -> ChatStreamRetry {
    ChatStreamRetry {
        attempt,
        delay_ms: 1000,
        error: "Anthropic is temporarily overloaded.".into(),
        kind: None,
        provider: "anthropic".into(),
        status_code: 529,
        retrying_at: Timestamp::now(),
    }
}

fn config(f: impl FnOnce(&mut HubConfig)) -> HubConfig {
    let mut c = HubConfig::default();
    f(&mut c);
    c
}

fn watch_event(owner: Uuid, title: &str) -> ChatWatchEvent {
    let chat = serde_json::json!({
        "id": Uuid::new_v4(), "organization_id": Uuid::new_v4(), "owner_id": owner,
        "last_model_config_id": Uuid::new_v4(), "title": title, "status": "running",
        "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z", "client_type": "api",
    });
    serde_json::from_value(serde_json::json!({"kind": "title_change", "chat": chat})).unwrap()
}

#[test]
fn defaults_match_the_spec() {
    let c = HubConfig::default();
    assert_eq!(c.part_buffer_capacity, 10_000);
    assert_eq!(c.subscriber_capacity, 128);
    assert_eq!(c.retain_grace, Duration::from_secs(5));
    assert_eq!(c.janitor_interval, Duration::from_secs(30));
    assert_eq!(c.drop_warn_interval, Duration::from_secs(10));
}

#[test]
fn parts_arrive_in_publish_order() {
    let hub = StreamHub::new(config(|c| c.subscriber_capacity = 1_000));
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    let mut sub = hub.subscribe(chat).unwrap();
    for n in 0..1_000 {
        hub.publish(part(chat, n));
    }
    let (events, end) = drain(&mut sub.receiver);
    assert_eq!(end, None);
    assert_eq!(numbers(&events), (0..1_000).collect::<Vec<_>>());
}

#[test]
fn late_subscriber_gets_buffer_then_live_without_gap_or_duplicate() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    for n in 0..50 {
        hub.publish(part(chat, n));
    }
    let mut sub = hub.subscribe(chat).unwrap();
    for n in 50..100 {
        hub.publish(part(chat, n));
    }
    assert_eq!(numbers(&sub.snapshot().parts), (0..50).collect::<Vec<_>>());
    let (live, _) = drain(&mut sub.receiver);
    assert_eq!(numbers(&live), (50..100).collect::<Vec<_>>());
}

/// Every subscriber gets the same shared event, so the first one to encode it encodes it
/// for all: the buffered part of a late subscriber too, and the watch events.
#[test]
fn subscribers_share_one_event_and_its_encoding() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    let mut first = hub.subscribe(chat).unwrap();
    let mut second = hub.subscribe(chat).unwrap();
    hub.publish(part(chat, 1));
    let late = hub.subscribe(chat).unwrap();
    let (a, _) = drain(&mut first.receiver);
    let (b, _) = drain(&mut second.receiver);
    let buffered = &late.snapshot().parts;
    assert!(Arc::ptr_eq(&a[0], &b[0]) && Arc::ptr_eq(&a[0], &buffered[0]));
    assert!(!b[0].is_encoded());
    let json = a[0].json().unwrap();
    assert!(b[0].is_encoded() && buffered[0].is_encoded());
    assert_eq!(b[0].json().unwrap().as_ptr(), json.as_ptr());

    let owner = Uuid::new_v4();
    let mut w1 = hub.watch(owner).unwrap();
    let mut w2 = hub.watch(owner).unwrap();
    hub.publish_watch(owner, watch_event(owner, "t"));
    let (x, _) = drain(&mut w1);
    let (y, _) = drain(&mut w2);
    assert!(Arc::ptr_eq(&x[0], &y[0]));
}

#[test]
fn subscribing_while_a_publisher_races_loses_and_repeats_nothing() {
    const N: usize = 20_000;
    let hub = StreamHub::new(config(|c| {
        c.part_buffer_capacity = N;
        c.subscriber_capacity = N;
    }));
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    let publisher = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            for n in 0..N {
                hub.publish(part(chat, n));
            }
        })
    };
    let mut subs = Vec::new();
    while subs.len() < 20 {
        subs.push(hub.subscribe(chat).unwrap());
        std::thread::yield_now();
    }
    publisher.join().unwrap();
    for mut sub in subs {
        let snapshot = sub.take_snapshot();
        let (live, end) = drain(&mut sub.receiver);
        assert_eq!(end, None);
        let mut all = numbers(&snapshot.parts);
        all.extend(numbers(&live));
        assert_eq!(all, (0..N).collect::<Vec<_>>());
    }
}

#[test]
fn retry_clears_the_buffer_and_is_kept_for_late_subscribers() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    hub.publish(part(chat, 0));
    hub.publish(part(chat, 1));
    let mut early = hub.subscribe(chat).unwrap();
    let first = retry(1);
    hub.publish(ChatStreamEvent::retry(chat, first.clone()));

    let late = hub.subscribe(chat).unwrap();
    assert_eq!(late.snapshot().retry, Some(first));
    assert!(
        late.snapshot().parts.is_empty(),
        "the failed attempt's preview is void"
    );
    let (live, _) = drain(&mut early.receiver);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].event_type, ChatStreamEventType::Retry);

    // A newer retry replaces the older one.
    hub.publish(ChatStreamEvent::retry(chat, retry(2)));
    assert_eq!(
        hub.subscribe(chat)
            .unwrap()
            .snapshot()
            .retry
            .as_ref()
            .unwrap()
            .attempt,
        2
    );

    // The next part clears it and starts a fresh buffer.
    hub.publish(part(chat, 7));
    let after = hub.subscribe(chat).unwrap();
    assert_eq!(after.snapshot().retry, None);
    assert_eq!(numbers(&after.snapshot().parts), [7]);
}

#[test]
fn retry_is_cleared_by_error_and_non_running_status_only() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    let has_retry = |hub: &StreamHub| hub.chat_stats(chat).is_some_and(|s| s.has_retry);

    hub.publish(ChatStreamEvent::retry(chat, retry(1)));
    hub.publish(ChatStreamEvent::status(chat, ChatStatus::Running));
    hub.publish(ChatStreamEvent::queue_update(chat, Vec::new()));
    assert!(has_retry(&hub));
    hub.publish(ChatStreamEvent::status(chat, ChatStatus::Error));
    assert!(!has_retry(&hub));

    hub.publish(ChatStreamEvent::retry(chat, retry(1)));
    hub.publish(ChatStreamEvent::error(chat, ChatError::generic("boom")));
    assert!(!has_retry(&hub));

    hub.publish(ChatStreamEvent::retry(chat, retry(1)));
    hub.clear_retry(chat);
    assert!(!has_retry(&hub));

    hub.publish(ChatStreamEvent::retry(chat, retry(1)));
    hub.end_turn(chat);
    assert!(!has_retry(&hub));
}

#[test]
fn retry_is_kept_even_with_nobody_subscribed() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    hub.publish(ChatStreamEvent::retry(chat, retry(3)));
    let sub = hub.subscribe(chat).unwrap();
    assert_eq!(sub.snapshot().retry.as_ref().unwrap().attempt, 3);
}

#[test]
fn durable_events_are_forwarded_not_buffered() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    let mut sub = hub.subscribe(chat).unwrap();
    hub.publish(ChatStreamEvent::status(chat, ChatStatus::Running));
    hub.publish(ChatStreamEvent::queue_update(chat, Vec::new()));
    hub.publish(ChatStreamEvent::action_required(chat, Vec::new()));
    let (live, _) = drain(&mut sub.receiver);
    assert_eq!(live.len(), 3);
    assert!(hub.subscribe(chat).unwrap().snapshot().parts.is_empty());
    // Events for a chat nobody follows are dropped without creating state.
    let other = Uuid::new_v4();
    hub.publish(ChatStreamEvent::status(other, ChatStatus::Waiting));
    hub.publish(part(other, 0));
    assert_eq!(hub.chat_stats(other), None);
}

#[test]
fn parts_outside_a_turn_are_forwarded_but_not_buffered() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    let mut sub = hub.subscribe(chat).unwrap();
    hub.publish(part(chat, 0));
    assert_eq!(drain(&mut sub.receiver).0.len(), 1);
    assert_eq!(hub.chat_stats(chat).unwrap().buffered_parts, 0);
    assert_eq!(hub.chat_stats(chat).unwrap().turn, TurnPhase::Idle);
}

#[test]
fn begin_turn_and_clear_parts_reset_the_buffer() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    hub.publish(part(chat, 0));
    hub.clear_parts(chat);
    hub.publish(part(chat, 1));
    assert_eq!(numbers(&hub.subscribe(chat).unwrap().snapshot().parts), [1]);
    hub.begin_turn(chat);
    assert!(hub.subscribe(chat).unwrap().snapshot().parts.is_empty());
    assert_eq!(hub.chat_stats(chat).unwrap().turn, TurnPhase::Active);
}

#[test]
fn buffer_drops_oldest_at_exactly_its_capacity() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    for n in 0..DEFAULT_PART_BUFFER_CAPACITY {
        hub.publish(part(chat, n));
    }
    let stats = hub.chat_stats(chat).unwrap();
    assert_eq!(stats.buffered_parts, 10_000);
    assert_eq!(stats.dropped_parts, 0);
    assert_eq!(stats.drop_warnings, 0);

    hub.publish(part(chat, 10_000));
    let stats = hub.chat_stats(chat).unwrap();
    assert_eq!(stats.buffered_parts, 10_000);
    assert_eq!(stats.dropped_parts, 1);
    assert_eq!(stats.drop_warnings, 1);
    let parts = hub.subscribe(chat).unwrap().take_snapshot().parts;
    assert_eq!(n_of(&parts[0]), 1);
    assert_eq!(n_of(parts.last().unwrap()), 10_000);
}

#[test]
fn zero_capacity_buffer_disables_buffering() {
    let hub = StreamHub::new(config(|c| c.part_buffer_capacity = 0));
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    hub.publish(part(chat, 0));
    let stats = hub.chat_stats(chat).unwrap();
    assert_eq!((stats.buffered_parts, stats.dropped_parts), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn drop_warnings_are_rate_limited_per_chat() {
    let hub = StreamHub::new(config(|c| c.part_buffer_capacity = 3));
    let chat = Uuid::new_v4();
    let other = Uuid::new_v4();
    hub.begin_turn(chat);
    hub.begin_turn(other);
    for n in 0..5 {
        hub.publish(part(chat, n));
    }
    let s = hub.chat_stats(chat).unwrap();
    assert_eq!(
        (s.dropped_parts, s.drop_warnings, s.unreported_drops),
        (2, 1, 1)
    );

    // Another chat has its own limiter.
    for n in 0..4 {
        hub.publish(part(other, n));
    }
    assert_eq!(hub.chat_stats(other).unwrap().drop_warnings, 1);

    tokio::time::advance(DEFAULT_DROP_WARN_INTERVAL - Duration::from_millis(1)).await;
    hub.publish(part(chat, 5));
    let s = hub.chat_stats(chat).unwrap();
    assert_eq!(
        (s.dropped_parts, s.drop_warnings, s.unreported_drops),
        (3, 1, 2)
    );

    tokio::time::advance(Duration::from_millis(1)).await;
    hub.publish(part(chat, 6));
    let s = hub.chat_stats(chat).unwrap();
    assert_eq!(
        (s.dropped_parts, s.drop_warnings, s.unreported_drops),
        (4, 2, 0)
    );
}

#[test]
fn slow_subscriber_lags_at_its_capacity_while_a_fast_one_keeps_up() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    let mut slow = hub.subscribe(chat).unwrap();
    let mut fast = hub.subscribe(chat).unwrap();
    let mut fast_seen = Vec::new();
    for n in 0..DEFAULT_SUBSCRIBER_CAPACITY {
        hub.publish(part(chat, n));
        fast_seen.extend(numbers(&drain(&mut fast.receiver).0));
    }
    // Exactly full: still connected.
    assert_eq!(hub.chat_stats(chat).unwrap().subscribers, 2);
    assert!(!slow.receiver.is_ended());

    for n in DEFAULT_SUBSCRIBER_CAPACITY..1_000 {
        hub.publish(part(chat, n));
        fast_seen.extend(numbers(&drain(&mut fast.receiver).0));
    }
    assert_eq!(fast_seen, (0..1_000).collect::<Vec<_>>());
    let stats = hub.chat_stats(chat).unwrap();
    assert_eq!((stats.subscribers, stats.lagged_subscribers), (1, 1));

    // The slow one gets what was queued before the gap, then a final Lagged.
    let (queued, end) = drain(&mut slow.receiver);
    assert_eq!(numbers(&queued), (0..128).collect::<Vec<_>>());
    assert_eq!(end, Some(TryRecvError::Lagged));
    assert_eq!(slow.try_recv(), Err(TryRecvError::Lagged));
    assert!(slow.receiver.is_ended());
}

#[tokio::test]
async fn lagged_is_reported_by_recv_and_is_final() {
    let hub = StreamHub::new(config(|c| c.subscriber_capacity = 2));
    let chat = Uuid::new_v4();
    let mut sub = hub.subscribe(chat).unwrap();
    for n in 0..3 {
        hub.publish(part(chat, n));
    }
    assert_eq!(n_of(&sub.recv().await.unwrap()), 0);
    assert_eq!(n_of(&sub.recv().await.unwrap()), 1);
    assert_eq!(sub.recv().await, Err(RecvError::Lagged));
    assert_eq!(sub.recv().await, Err(RecvError::Lagged));
    // A resubscription starts over.
    let mut again = hub.subscribe(chat).unwrap();
    hub.publish(part(chat, 9));
    assert_eq!(n_of(&again.recv().await.unwrap()), 9);
}

#[test]
fn zero_subscriber_capacity_lags_at_the_first_event() {
    let hub = StreamHub::new(config(|c| c.subscriber_capacity = 0));
    let chat = Uuid::new_v4();
    let mut sub = hub.subscribe(chat).unwrap();
    hub.publish(part(chat, 0));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Lagged));
}

#[test]
fn huge_subscriber_capacity_is_clamped() {
    let hub = StreamHub::new(config(|c| c.subscriber_capacity = usize::MAX));
    assert_eq!(hub.config().subscriber_capacity, MAX_SUBSCRIBER_CAPACITY);
    let chat = Uuid::new_v4();
    let mut sub = hub.subscribe(chat).unwrap();
    hub.publish(part(chat, 0));
    assert_eq!(n_of(&sub.try_recv().unwrap()), 0);
}

#[test]
fn publisher_never_blocks_on_a_subscriber_that_never_reads() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    let _never_reads = hub.subscribe(chat).unwrap();
    for n in 0..100_000 {
        hub.publish(part(chat, n));
    }
    let stats = hub.chat_stats(chat).unwrap();
    assert_eq!(stats.buffered_parts, DEFAULT_PART_BUFFER_CAPACITY);
    assert_eq!(stats.dropped_parts, 90_000);
    assert_eq!(stats.lagged_subscribers, 1);
    assert_eq!(stats.subscribers, 0);
}

#[tokio::test(start_paused = true)]
async fn ended_turn_keeps_parts_for_the_grace_then_drops_them() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    for n in 0..3 {
        hub.publish(part(chat, n));
    }
    hub.end_turn(chat);
    // Parts published after the end are not buffered.
    hub.publish(part(chat, 99));
    assert_eq!(hub.chat_stats(chat).unwrap().turn, TurnPhase::Retaining);

    tokio::time::advance(DEFAULT_RETAIN_GRACE - Duration::from_millis(1)).await;
    assert_eq!(
        numbers(&hub.subscribe(chat).unwrap().snapshot().parts),
        [0, 1, 2]
    );

    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(hub.subscribe(chat).unwrap().snapshot().parts.is_empty());
    // The subscription dropped above left nothing behind.
    assert_eq!(hub.chat_stats(chat), None);
}

#[tokio::test(start_paused = true)]
async fn janitor_releases_finished_buffers() {
    let hub = StreamHub::default();
    tokio::spawn(hub.janitor());
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    hub.publish(part(chat, 0));
    hub.end_turn(chat);

    // Before the first pass nothing is removed.
    tokio::time::sleep(DEFAULT_JANITOR_INTERVAL - Duration::from_millis(1)).await;
    assert!(hub.inner.chat_shard(chat).contains_key(&chat));
    // The first pass after the grace removes the entry (no subscriber, no turn).
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert!(!hub.inner.chat_shard(chat).contains_key(&chat));
}

#[test]
fn sweep_reports_what_it_released() {
    let hub = StreamHub::new(config(|c| c.retain_grace = Duration::ZERO));
    let chat = Uuid::new_v4();
    let _sub = hub.subscribe(chat).unwrap();
    hub.begin_turn(chat);
    hub.publish(part(chat, 0));
    hub.end_turn(chat);
    let stats = hub.sweep();
    assert_eq!(stats.buffers_released, 1);
    assert_eq!(stats.entries_removed, 0, "a subscriber is still there");
    assert_eq!(hub.chat_stats(chat).unwrap().turn, TurnPhase::Idle);
    assert_eq!(hub.sweep(), SweepStats::default());
}

#[tokio::test(start_paused = true)]
async fn janitor_stops_when_the_hub_is_dropped_and_tolerates_a_zero_interval() {
    let hub = StreamHub::new(config(|c| c.janitor_interval = Duration::ZERO));
    assert_eq!(hub.config().janitor_interval, MIN_JANITOR_INTERVAL);
    let task = tokio::spawn(hub.janitor());
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(hub);
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("janitor ends")
        .unwrap();
}

#[test]
fn dropped_subscribers_are_cleaned_up() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    let a = hub.subscribe(chat).unwrap();
    let b = hub.subscribe(chat).unwrap();
    assert_eq!(hub.chat_stats(chat).unwrap().subscribers, 2);
    drop(a);
    assert_eq!(hub.chat_stats(chat).unwrap().subscribers, 1);
    drop(b);
    assert_eq!(hub.chat_stats(chat), None);

    // With a turn in progress the entry stays, without subscribers.
    hub.begin_turn(chat);
    drop(hub.subscribe(chat).unwrap());
    assert_eq!(hub.chat_stats(chat).unwrap().subscribers, 0);
}

#[test]
fn subscriber_limit_per_chat_at_its_edge() {
    let hub = StreamHub::new(config(|c| c.max_subscribers_per_chat = 3));
    let chat = Uuid::new_v4();
    let mut subs: Vec<_> = (0..3).map(|_| hub.subscribe(chat).unwrap()).collect();
    let err = hub.subscribe(chat).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManySubscribers);
    // Other chats are unaffected.
    assert!(hub.subscribe(Uuid::new_v4()).is_ok());
    subs.pop();
    assert!(hub.subscribe(chat).is_ok());

    let none = StreamHub::new(config(|c| c.max_subscribers_per_chat = 0));
    assert!(none.subscribe(chat).is_err());
    assert_eq!(
        none.chat_stats(chat),
        None,
        "a refused subscribe leaves nothing behind"
    );
}

#[tokio::test]
async fn watch_fans_out_per_owner_only() {
    let hub = StreamHub::default();
    let alice = Uuid::new_v4();
    let bob = Uuid::new_v4();
    assert!(!hub.has_watchers());
    let mut a1 = hub.watch(alice).unwrap();
    let mut a2 = hub.watch(alice).unwrap();
    let mut b1 = hub.watch(bob).unwrap();
    assert_eq!(hub.watcher_count(alice), 2);
    assert!(hub.has_watchers());

    hub.publish_watch(alice, watch_event(alice, "for alice"));
    assert_eq!(a1.recv().await.unwrap().chat.title, "for alice");
    assert_eq!(a2.recv().await.unwrap().chat.title, "for alice");
    assert_eq!(b1.try_recv(), Err(TryRecvError::Empty));

    hub.publish_watch(bob, watch_event(bob, "for bob"));
    assert_eq!(b1.recv().await.unwrap().chat.title, "for bob");
    assert_eq!(a1.try_recv(), Err(TryRecvError::Empty));

    drop(a2);
    assert_eq!(hub.watcher_count(alice), 1);
    drop(a1);
    assert_eq!(hub.watcher_count(alice), 0);
    // Nobody watching: a no-op.
    hub.publish_watch(alice, watch_event(alice, "lost"));
    assert!(hub.has_watchers(), "bob still watches");
    drop(b1);
    assert!(!hub.has_watchers());
}

#[test]
fn watch_lags_and_limits_like_streams() {
    let hub = StreamHub::new(config(|c| {
        c.subscriber_capacity = 1;
        c.max_watchers_per_owner = 1;
    }));
    let owner = Uuid::new_v4();
    let mut w = hub.watch(owner).unwrap();
    assert_eq!(
        hub.watch(owner).unwrap_err().kind(),
        ErrorKind::TooManySubscribers
    );
    hub.publish_watch(owner, watch_event(owner, "1"));
    hub.publish_watch(owner, watch_event(owner, "2"));
    assert_eq!(w.try_recv().unwrap().chat.title, "1");
    assert_eq!(w.try_recv(), Err(TryRecvError::Lagged));
    assert_eq!(hub.watcher_count(owner), 0);
}

#[tokio::test]
async fn dropping_the_hub_closes_subscriptions() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    let owner = Uuid::new_v4();
    let mut sub = hub.subscribe(chat).unwrap();
    let mut watch = hub.watch(owner).unwrap();
    hub.publish(part(chat, 1));
    drop(hub);
    assert_eq!(n_of(&sub.recv().await.unwrap()), 1);
    assert_eq!(sub.recv().await, Err(RecvError::Closed));
    assert_eq!(watch.recv().await, Err(RecvError::Closed));
}

#[tokio::test]
async fn recv_wakes_on_publish() {
    let hub = StreamHub::default();
    let chat = Uuid::new_v4();
    let mut sub = hub.subscribe(chat).unwrap();
    let waiter = tokio::spawn(async move { sub.recv().await.map(|e| n_of(&e)) });
    tokio::task::yield_now().await;
    hub.publish(part(chat, 42));
    assert_eq!(waiter.await.unwrap(), Ok(42));
}

#[test]
fn hub_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<StreamHub>();
    assert_send_sync::<ChatSubscription>();
    assert_send_sync::<WatchSubscription>();
}

#[test]
fn shards_are_spread() {
    let mut seen = [false; SHARDS];
    for _ in 0..1_000 {
        seen[shard_index(Uuid::new_v4())] = true;
    }
    assert!(seen.iter().all(|s| *s));
}
