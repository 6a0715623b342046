//! Several `chatd-server` processes (replicas) on one PostgreSQL schema behave as one:
//! streams and watches on one replica see turns run by another, an interrupt sent to one
//! stops the turn on another, a SIGKILLed replica's chats are re-run by the survivors, a
//! SIGTERMed one drains and hands its chats back, and a lost LISTEN connection is
//! re-established without losing durable events. Real processes on loopback, a mock
//! OpenAI provider that tells the replicas apart by their API keys.
//!
//! PostgreSQL only: every test returns early (with a note) when `CHATD_TEST_DATABASE_URL`
//! is unset. `soak_three_replicas_with_kills` is ignored in the normal run
//! (scripts/soak_replicas.sh runs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatd_test_support::replicas::{
    Cluster, ClusterOptions, ClusterUser, HistogramSnapshot, MetricsText, Replica, Script,
};
use codersdk::client::Client;
use codersdk::{
    ChatBusyBehavior, ChatInputPart, ChatMessage, ChatMessageRole, ChatStatus, ChatStreamEvent,
    ChatStreamEventType, ChatWatchEventKind, CreateChatMessageRequest, CreateChatRequest, Uuid,
};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// The server binary cargo built for these tests.
const BINARY: &str = env!("CARGO_BIN_EXE_chatd-server");

/// Short engine intervals for every replica, as environment variables so a test can still
/// override one with its flag (clap refuses a flag given twice).
const FAST_ENV: &[(&str, &str)] = &[
    ("CHATD_MAX_RUNNING_CHATS", "200"),
    ("CHATD_ACQUIRE_INTERVAL", "200ms"),
    ("CHATD_HEARTBEAT_INTERVAL", "1s"),
    ("CHATD_STALE_AFTER", "10s"),
    ("CHATD_RECOVERY_INTERVAL", "2s"),
];

/// Longest wait for anything a test expects to happen.
const WAIT: Duration = Duration::from_secs(30);

/// How often waits look again.
const POLL: Duration = Duration::from_millis(10);

/// Log lines of each replica a failure message shows.
const LOG_TAIL: usize = 40;

/// An interrupt sent to another replica must stop the turn within this (the brief's
/// target: milliseconds; a second leaves headroom).
const INTERRUPT_TARGET: Duration = Duration::from_secs(1);

/// A killed replica's chats must all run again on a survivor within this (the target is
/// 5 s; the assertion leaves CI headroom and the actual time is printed).
const RECOVERY_ASSERT: Duration = Duration::from_secs(10);

/// Chats in flight on the replica test (d) kills.
const KILL_CHATS: usize = 50;

/// Chat creations in flight at once when a test creates many.
const CREATE_CONCURRENCY: usize = 10;

/// `--drain-timeout` of the drained replica in test (e).
const DRAIN_TIMEOUT: &str = "1s";

/// Longest a drained replica may take to exit after SIGTERM (drain timeout plus the
/// hand-back and shutdown).
const DRAIN_EXIT_LIMIT: Duration = Duration::from_secs(10);

/// The WebSocket close code of a draining replica: 1012, service restart.
const CLOSE_SERVICE_RESTART: u16 = 1012;

/// A cluster whose replicas get [`FAST_ENV`] and whose mock streams `chunks` chunks
/// `delay` apart; `None` without PostgreSQL.
async fn cluster(chunks: usize, delay: Duration) -> Option<Cluster> {
    let mut options = ClusterOptions::new(BINARY)
        .chunks(chunks)
        .chunk_delay(delay);
    for (k, v) in FAST_ENV {
        options = options.env(k, v);
    }
    Cluster::start(options).await
}

/// Polls `check` every [`POLL`] until it answers `Some`, panicking after `timeout` with
/// `what()` (which may read logs at that moment).
async fn wait_for<T>(
    timeout: Duration,
    what: impl Fn() -> String,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {}",
            what()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The log tails of `replicas`, for failure messages.
fn logs(replicas: &[&Replica]) -> String {
    replicas
        .iter()
        .map(|r| r.log_tail(LOG_TAIL))
        .collect::<Vec<_>>()
        .join("\n")
}

fn create(text: &str) -> CreateChatRequest {
    CreateChatRequest {
        content: vec![ChatInputPart::text(text)],
        ..Default::default()
    }
}

/// The chat's user and assistant messages, oldest first.
async fn messages(client: &Client, chat: Uuid) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = client
        .chat_messages(chat, &Default::default())
        .await
        .unwrap()
        .messages
        .into_iter()
        .filter(|m| matches!(m.role, ChatMessageRole::User | ChatMessageRole::Assistant))
        .collect();
    out.sort_by_key(|m| m.id);
    out
}

fn text_of(m: &ChatMessage) -> String {
    m.content.iter().map(|p| p.text.as_str()).collect()
}

/// `(role, text)` of each message, for comparisons and failure messages.
fn transcript(messages: &[ChatMessage]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| (m.role.to_string(), text_of(m)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// A chat stream recorded frame by frame

/// How a recorded stream ended.
#[derive(Debug, Clone, PartialEq)]
enum Ended {
    /// A close frame with this code and reason.
    Close(u16, String),
    /// A close without a frame, or the connection simply ended.
    Gone,
    /// A transport error.
    Error(String),
}

/// A per-chat stream WebSocket read in the background, every frame kept (the first is
/// the snapshot).
struct Recorder {
    frames: Arc<Mutex<Vec<Vec<ChatStreamEvent>>>>,
    ended: Arc<Mutex<Option<Ended>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn open(replica: &Replica, token: &str, chat: Uuid) -> Recorder {
        let url = format!(
            "{}/api/experimental/chats/{chat}/stream?{}={token}",
            replica.base().replacen("http://", "ws://", 1),
            codersdk::client::SESSION_TOKEN_QUERY
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("open the stream on {}: {e}", replica.name()));
        let frames: Arc<Mutex<Vec<Vec<ChatStreamEvent>>>> = Arc::default();
        let ended: Arc<Mutex<Option<Ended>>> = Arc::default();
        let (f, e) = (frames.clone(), ended.clone());
        let task = tokio::spawn(async move {
            let end = loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let events: Vec<ChatStreamEvent> = serde_json::from_str(text.as_str())
                            .unwrap_or_else(|err| panic!("a stream frame: {err}: {text}"));
                        f.lock().unwrap().push(events);
                    }
                    Some(Ok(Message::Close(Some(frame)))) => {
                        break Ended::Close(u16::from(frame.code), frame.reason.to_string());
                    }
                    Some(Ok(Message::Close(None))) | None => break Ended::Gone,
                    Some(Ok(_)) => {}
                    Some(Err(err)) => break Ended::Error(err.to_string()),
                }
            };
            *e.lock().unwrap() = Some(end);
        });
        Recorder {
            frames,
            ended,
            task,
        }
    }

    fn frames(&self) -> Vec<Vec<ChatStreamEvent>> {
        self.frames.lock().unwrap().clone()
    }

    fn events(&self) -> Vec<ChatStreamEvent> {
        self.frames().into_iter().flatten().collect()
    }

    /// The first frame.
    fn snapshot(&self) -> Vec<ChatStreamEvent> {
        self.frames().into_iter().next().unwrap_or_default()
    }

    /// Every frame after the first.
    fn live(&self) -> Vec<ChatStreamEvent> {
        self.frames().into_iter().skip(1).flatten().collect()
    }

    fn ended(&self) -> Option<Ended> {
        self.ended.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the events so far.
    async fn wait(
        &self,
        what: &str,
        logs: impl Fn() -> String,
        done: impl Fn(&[ChatStreamEvent]) -> bool,
    ) {
        wait_for(
            WAIT,
            || {
                format!(
                    "{what}; events {:#?}; ended {:?}\n{}",
                    summary(&self.events()),
                    self.ended(),
                    logs()
                )
            },
            async || done(&self.events()).then_some(()),
        )
        .await;
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_status(e: &ChatStreamEvent, status: &ChatStatus) -> bool {
    e.event_type == ChatStreamEventType::Status
        && e.status.as_ref().is_some_and(|s| &s.status == status)
}

fn has_status(events: &[ChatStreamEvent], status: &ChatStatus) -> bool {
    events.iter().any(|e| is_status(e, status))
}

/// The texts of the `message_part` events.
fn parts(events: &[ChatStreamEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event_type == ChatStreamEventType::MessagePart)
        .filter_map(|e| e.message_part.as_ref().map(|p| p.part.text.clone()))
        .collect()
}

/// The `message` events' messages.
fn stream_messages(events: &[ChatStreamEvent]) -> Vec<ChatMessage> {
    events.iter().filter_map(|e| e.message.clone()).collect()
}

/// An event without its bulk, for comparisons and failure messages: parts by text,
/// messages by id and role, statuses, queue lengths.
fn key(e: &ChatStreamEvent) -> String {
    match &e.event_type {
        ChatStreamEventType::MessagePart => format!(
            "part {:?}",
            e.message_part.as_ref().map(|p| p.part.text.as_str())
        ),
        ChatStreamEventType::Message => e.message.as_ref().map_or_else(
            || "message ?".into(),
            |m| format!("message {} {}", m.id, m.role),
        ),
        ChatStreamEventType::Status => format!(
            "status {}",
            e.status
                .as_ref()
                .map(|s| s.status.to_string())
                .unwrap_or_default()
        ),
        ChatStreamEventType::QueueUpdate => {
            format!("queue {}", e.queued_messages.as_ref().map_or(0, Vec::len))
        }
        other => other.to_string(),
    }
}

fn summary(events: &[ChatStreamEvent]) -> Vec<String> {
    events.iter().map(key).collect()
}

/// The durable events after the last part, with repeats of a whole-value event (status,
/// queue) that directly follow themselves removed: the contract lets a replica repeat
/// them.
fn durable_tail(events: &[ChatStreamEvent]) -> Vec<String> {
    let last_part = events
        .iter()
        .rposition(|e| e.event_type == ChatStreamEventType::MessagePart)
        .map_or(0, |i| i + 1);
    let mut out: Vec<String> = Vec::new();
    for e in &events[last_part..] {
        let k = key(e);
        if out.last() != Some(&k) {
            out.push(k);
        }
    }
    out
}

/// Message ids that appear in more than one `message` event.
fn duplicated_message_ids(events: &[ChatStreamEvent]) -> Vec<i64> {
    let mut seen = HashSet::new();
    stream_messages(events)
        .iter()
        .filter(|m| !seen.insert(m.id))
        .map(|m| m.id)
        .collect()
}

// ---------------------------------------------------------------------------------------
// The harness itself (needs only the schema flag of the feature)

/// Two replicas start on one fresh schema, share users and the provider configuration,
/// and a turn runs on one of them with the mock and streams on that same replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_starts_two_replicas_on_one_schema_and_streams_a_turn() {
    let Some(cluster) = cluster(20, Duration::from_millis(50)).await else {
        return;
    };
    let a = cluster.replica().await;
    let b = cluster.replica().await;
    let alice = cluster.user(&a, "alice").await;
    // One database: the user made through A authenticates on B.
    assert_eq!(alice.client(&b).me().await.unwrap().username, "alice");

    let text = "hello replicas";
    let chat = alice.client(&b).create_chat(&create(text)).await.unwrap();
    // Whichever replica claimed it called the mock with its own key.
    let key = wait_for(
        WAIT,
        || format!("no model call for the chat\n{}", logs(&[&a, &b])),
        async || cluster.mock.stats(text).keys.first().cloned(),
    )
    .await;
    let runner = [&a, &b]
        .into_iter()
        .find(|r| r.openai_key() == key)
        .unwrap_or_else(|| panic!("unknown key {key}"));
    let stream = Recorder::open(runner, &alice.token, chat.id).await;
    stream
        .wait(
            "the turn's end",
            || logs(&[&a, &b]),
            |e| {
                has_status(e, &ChatStatus::Waiting)
                    && stream_messages(e)
                        .iter()
                        .any(|m| m.role == ChatMessageRole::Assistant)
            },
        )
        .await;
    let events = stream.events();
    let expected = cluster.mock.reply_to(text);
    // The snapshot's buffered parts and the live ones make the whole reply.
    assert_eq!(parts(&events).concat(), expected, "{:#?}", summary(&events));
    let reply = stream_messages(&events)
        .into_iter()
        .find(|m| m.role == ChatMessageRole::Assistant)
        .unwrap();
    assert_eq!(text_of(&reply), expected);
    assert_eq!(cluster.mock.calls(text), 1);
    assert!(duplicated_message_ids(&events).is_empty());
    // Both replicas serve metrics.
    for r in [&a, &b] {
        assert!(!r.metrics().await.samples.is_empty());
    }
    println!(
        "harness: turn ran on {}, {} events streamed, {} title call(s)",
        runner.name(),
        events.len(),
        cluster.mock.title_calls()
    );
}

// ---------------------------------------------------------------------------------------
// (a) streams across replicas

/// Waits for the end of the turn of `text` on both recorders, then checks that B's
/// stream (subscribed mid-turn) is A's: the parts so far in its snapshot, the rest live,
/// the same parts in the same order, the same durable events after them, the final
/// message once. `label` names the case in the printed numbers.
async fn assert_same_stream(
    cluster: &Cluster,
    (a, b): (&Replica, &Replica),
    text: &str,
    (on_a, on_b): (&Recorder, &Recorder),
    label: &str,
) {
    let done = |e: &[ChatStreamEvent]| {
        has_status(e, &ChatStatus::Waiting)
            && stream_messages(e)
                .iter()
                .any(|m| m.role == ChatMessageRole::Assistant)
    };
    on_b.wait("the end of the turn on B", || logs(&[a, b]), done)
        .await;
    on_a.wait("the end of the turn on A", || logs(&[a, b]), done)
        .await;

    let stats = cluster.mock.stats(text);
    assert_eq!(
        stats.keys,
        vec![a.openai_key().to_owned()],
        "ran on A, once"
    );
    let (events_a, events_b) = (on_a.events(), on_b.events());
    println!(
        "{label}: B's snapshot held {} parts, {} came live; A streamed {} parts; {} events \
         on A, {} on B",
        parts(&on_b.snapshot()).len(),
        parts(&on_b.live()).len(),
        parts(&events_a).len(),
        events_a.len(),
        events_b.len()
    );
    let context = || {
        format!(
            "A: {:#?}\nB snapshot: {:#?}\nB live: {:#?}",
            summary(&events_a),
            summary(&on_b.snapshot()),
            summary(&on_b.live())
        )
    };
    let expected = cluster.mock.reply_to(text);
    assert_eq!(parts(&events_a).concat(), expected, "{}", context());
    // B subscribed mid-turn: the parts so far come in its snapshot, the rest live.
    assert!(
        !parts(&on_b.snapshot()).is_empty(),
        "no buffered parts in B's snapshot: {}",
        context()
    );
    assert!(
        !parts(&on_b.live()).is_empty(),
        "no live parts on B: {}",
        context()
    );
    assert_eq!(
        parts(&events_b),
        parts(&events_a),
        "B's parts differ from A's: {}",
        context()
    );
    // After the parts, the same durable events.
    assert_eq!(
        durable_tail(&events_b),
        durable_tail(&events_a),
        "{}",
        context()
    );
    // The final message once on each, with the whole reply.
    for (name, events) in [("A", &events_a), ("B", &events_b)] {
        assert!(
            duplicated_message_ids(events).is_empty(),
            "{name}: {}",
            context()
        );
        let replies: Vec<ChatMessage> = stream_messages(events)
            .into_iter()
            .filter(|m| m.role == ChatMessageRole::Assistant)
            .collect();
        assert_eq!(replies.len(), 1, "{name}: {}", context());
        assert_eq!(text_of(&replies[0]), expected);
    }
}

/// B starts while A's turn is already streaming (a replica added or restarted mid-turn),
/// then a client subscribes on B: its snapshot must still hold the parts A streamed so
/// far, then the live parts follow, the final message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_b_sees_every_part_of_a_turn_run_on_a() {
    let Some(cluster) = cluster(30, Duration::from_millis(100)).await else {
        return;
    };
    // A alone: the turn can only run there.
    let a = cluster.replica().await;
    let alice = cluster.user(&a, "alice").await;
    let text = "stream me across replicas";
    let chat = alice.client(&a).create_chat(&create(text)).await.unwrap();
    let on_a = Recorder::open(&a, &alice.token, chat.id).await;
    on_a.wait("parts on A", || logs(&[&a]), |e| parts(e).len() >= 2)
        .await;

    // B joins mid-turn and subscribes.
    let b = cluster.replica().await;
    let on_b = Recorder::open(&b, &alice.token, chat.id).await;
    assert_same_stream(
        &cluster,
        (&a, &b),
        text,
        (&on_a, &on_b),
        "(a) B started mid-turn",
    )
    .await;
}

/// B runs from before the turn starts on A; a client subscribes on B mid-turn. A runs
/// the turn because an anchor chat keeps the deployment at B's `--max-running-chats 1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_subscriber_on_b_sees_every_part_of_a_turn_run_on_a() {
    let Some(cluster) = cluster(30, Duration::from_millis(100)).await else {
        return;
    };
    let a = cluster.replica().await;
    let alice = cluster.user(&a, "alice").await;
    let anchor_chat = start_anchor(&cluster, &a, &alice).await;
    let b = cluster.replica_with(&["--max-running-chats", "1"]).await;

    let text = "stream me to a late subscriber";
    let chat = alice.client(&a).create_chat(&create(text)).await.unwrap();
    let on_a = Recorder::open(&a, &alice.token, chat.id).await;
    on_a.wait("parts on A", || logs(&[&a, &b]), |e| parts(e).len() >= 5)
        .await;
    let on_b = Recorder::open(&b, &alice.token, chat.id).await;
    assert_same_stream(
        &cluster,
        (&a, &b),
        text,
        (&on_a, &on_b),
        "(a2) B up before the turn",
    )
    .await;
    alice.client(&b).interrupt_chat(anchor_chat).await.unwrap();
}

/// The text of the anchor chat: a turn long enough to outlast a test.
const ANCHOR: &str = "anchor turn";

/// Starts a long turn on `a` (alone so far) and waits until it streams: while it runs,
/// a replica started with `--max-running-chats 1` claims nothing (the limit counts the
/// running root chats of the whole deployment), so every other chat runs on `a`.
async fn start_anchor(cluster: &Cluster, a: &Replica, user: &ClusterUser) -> Uuid {
    cluster.mock.script(
        ANCHOR,
        Script {
            chunks: 600,
            chunk_delay: Duration::from_millis(50),
        },
    );
    let chat = user.client(a).create_chat(&create(ANCHOR)).await.unwrap();
    wait_for(
        WAIT,
        || format!("the anchor never streamed\n{}", logs(&[a])),
        async || (cluster.mock.stats(ANCHOR).in_flight == 1).then_some(()),
    )
    .await;
    chat.id
}

// ---------------------------------------------------------------------------------------
// (b) watch across replicas

/// A watcher on B sees `status_change` running then waiting of a chat run by A. B runs
/// with `--max-running-chats 1` while an anchor chat runs on A, so the deployment-wide
/// limit keeps B from claiming the watched chat: it can only run on A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_on_b_sees_status_changes_of_a_chat_run_on_a() {
    let Some(cluster) = cluster(10, Duration::from_millis(100)).await else {
        return;
    };
    let a = cluster.replica().await;
    let alice = cluster.user(&a, "alice").await;
    let anchor_chat = start_anchor(&cluster, &a, &alice).await;
    let b = cluster.replica_with(&["--max-running-chats", "1"]).await;
    let mut watch = alice.client(&b).watch().await.unwrap();

    let text = "watched from B";
    let chat = alice.client(&a).create_chat(&create(text)).await.unwrap();
    let mut statuses = Vec::new();
    let deadline = Instant::now() + WAIT;
    while statuses.last() != Some(&ChatStatus::Waiting) {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, watch.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no waiting on B's watch; statuses so far {statuses:?}\n{}",
                    logs(&[&a, &b])
                )
            })
            .expect("the watch ended")
            .expect("a watch event");
        if event.chat.id == chat.id && event.kind == ChatWatchEventKind::StatusChange {
            statuses.push(event.chat.status.clone());
        }
    }
    let running = statuses.iter().position(|s| *s == ChatStatus::Running);
    assert!(
        running.is_some_and(|i| i + 1 < statuses.len()),
        "running then waiting on B's watch: {statuses:?}"
    );
    assert_eq!(
        cluster.mock.stats(text).keys,
        vec![a.openai_key().to_owned()],
        "the watched chat ran on A"
    );
    println!("(b) statuses of A's chat on B's watch: {statuses:?}");
    alice.client(&b).interrupt_chat(anchor_chat).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// (c) interrupts across replicas

/// An interrupt sent to B stops A's turn within [`INTERRUPT_TARGET`], keeping the partial
/// answer; a message sent to B with `busy_behavior: interrupt` stops A's turn and runs at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_sent_to_b_stops_the_turn_on_a_at_once() {
    let Some(cluster) = cluster(10, Duration::ZERO).await else {
        return;
    };
    let long = Script {
        chunks: 200,
        chunk_delay: Duration::from_millis(50),
    };
    let (first, second, follow_up) = ("interrupt me", "interrupt me by sending", "follow up");
    cluster.mock.script(first, long);
    cluster.mock.script(second, long);
    let a = cluster.replica().await;
    let alice = cluster.user(&a, "alice").await;
    let chat1 = alice.client(&a).create_chat(&create(first)).await.unwrap();
    let chat2 = alice.client(&a).create_chat(&create(second)).await.unwrap();
    wait_for(
        WAIT,
        || format!("the turns never streamed on A\n{}", logs(&[&a])),
        async || {
            [first, second]
                .iter()
                .all(|t| cluster.mock.stats(t).chunks_sent >= 5)
                .then_some(())
        },
    )
    .await;
    let b = cluster.replica().await;
    let on_b = alice.client(&b);

    // 1. POST /interrupt to B.
    let start = Instant::now();
    on_b.interrupt_chat(chat1.id).await.unwrap();
    wait_for(
        WAIT,
        || format!("A's model stream never stopped\n{}", logs(&[&a, &b])),
        async || (cluster.mock.stats(first).in_flight == 0).then_some(()),
    )
    .await;
    let stream_stopped = start.elapsed();
    let partial = wait_for(
        WAIT,
        || format!("no partial answer\n{}", logs(&[&a, &b])),
        async || {
            let chat = on_b.chat(chat1.id).await.unwrap();
            let ms = messages(&on_b, chat1.id).await;
            (chat.status == ChatStatus::Waiting && ms.len() == 2).then_some(ms)
        },
    )
    .await;
    let kept = start.elapsed();
    println!(
        "(c) interrupt via B: A's model stream stopped after {stream_stopped:?}, chat waiting \
         with the partial answer after {kept:?}"
    );
    let full = cluster.mock.reply_to(first);
    let answer = text_of(&partial[1]);
    assert_eq!(partial[1].role, ChatMessageRole::Assistant);
    assert!(
        full.starts_with(&answer) && !answer.is_empty() && answer.len() < full.len(),
        "a partial answer: {answer:?}"
    );
    assert!(stream_stopped < INTERRUPT_TARGET, "{stream_stopped:?}");
    assert!(kept < INTERRUPT_TARGET, "{kept:?}");
    assert_eq!(cluster.mock.calls(first), 1, "not re-run");

    // 2. A send with busy_behavior interrupt to B.
    cluster.mock.script(
        follow_up,
        Script {
            chunks: 10,
            chunk_delay: Duration::ZERO,
        },
    );
    let start = Instant::now();
    on_b.send_message(
        chat2.id,
        &CreateChatMessageRequest {
            content: vec![ChatInputPart::text(follow_up)],
            busy_behavior: Some(ChatBusyBehavior::Interrupt),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    wait_for(
        WAIT,
        || format!("the follow-up never reached the model\n{}", logs(&[&a, &b])),
        async || (cluster.mock.calls(follow_up) == 1).then_some(()),
    )
    .await;
    let promoted = start.elapsed();
    let done = wait_for(
        WAIT,
        || format!("the follow-up was not answered\n{}", logs(&[&a, &b])),
        async || {
            let chat = on_b.chat(chat2.id).await.unwrap();
            let ms = messages(&on_b, chat2.id).await;
            (chat.status == ChatStatus::Waiting && ms.len() == 4).then_some(ms)
        },
    )
    .await;
    println!(
        "(c) busy_behavior interrupt via B: the follow-up reached the model after {promoted:?}"
    );
    let roles: Vec<ChatMessageRole> = done.iter().map(|m| m.role.clone()).collect();
    assert_eq!(
        roles,
        [
            ChatMessageRole::User,
            ChatMessageRole::Assistant,
            ChatMessageRole::User,
            ChatMessageRole::Assistant
        ],
        "{:#?}",
        transcript(&done)
    );
    assert!(cluster
        .mock
        .reply_to(second)
        .starts_with(&text_of(&done[1])));
    assert_eq!(text_of(&done[2]), follow_up);
    assert_eq!(text_of(&done[3]), cluster.mock.reply_to(follow_up));
    assert!(promoted < INTERRUPT_TARGET, "{promoted:?}");
    assert_eq!(cluster.mock.stats(second).in_flight, 0);
}

// ---------------------------------------------------------------------------------------
// (d) SIGKILL

/// A replica SIGKILLed with [`KILL_CHATS`] turns streaming: the survivor re-runs every
/// one of them within [`RECOVERY_ASSERT`], each chat ends with exactly one (whole) answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_replicas_chats_all_complete_on_the_survivor() {
    let Some(cluster) = cluster(100, Duration::from_millis(100)).await else {
        return;
    };
    let mut a = cluster.replica().await;
    let alice = cluster.user(&a, "alice").await;
    let texts: Vec<String> = (0..KILL_CHATS).map(|i| format!("kill chat {i}")).collect();
    let on_a = alice.client(&a);
    let chats: Vec<Uuid> = futures_util::stream::iter(texts.iter())
        .map(|t| {
            let on_a = on_a.clone();
            async move { on_a.create_chat(&create(t)).await.unwrap().id }
        })
        .buffered(CREATE_CONCURRENCY)
        .collect()
        .await;
    wait_for(
        WAIT,
        || {
            format!(
                "not every turn streaming on A: {} in flight\n{}",
                cluster.mock.in_flight(),
                logs(&[&a])
            )
        },
        async || (cluster.mock.in_flight() == KILL_CHATS).then_some(()),
    )
    .await;
    let b = cluster.replica().await;
    // The re-runs go fast; the turns in flight on A keep their pace.
    cluster.mock.set_chunk_delay(Duration::from_millis(5));
    assert_eq!(
        cluster.mock.in_flight(),
        KILL_CHATS,
        "A's turns still streaming"
    );

    let killed = Instant::now();
    a.kill();
    let b_key = b.openai_key().to_owned();
    let mut rerun_at: HashMap<&str, Duration> = HashMap::new();
    wait_for(
        WAIT,
        || {
            let missing: Vec<&String> = texts
                .iter()
                .filter(|t| cluster.mock.stats(t).calls_with(&b_key) == 0)
                .collect();
            format!("not re-run on B: {missing:?}\n{}", logs(&[&b]))
        },
        async || {
            for t in &texts {
                if !rerun_at.contains_key(t.as_str())
                    && cluster.mock.stats(t).calls_with(&b_key) > 0
                {
                    rerun_at.insert(t, killed.elapsed());
                }
            }
            (rerun_at.len() == texts.len()).then_some(())
        },
    )
    .await;
    let mut times: Vec<Duration> = rerun_at.values().copied().collect();
    times.sort();
    let recovery = times.last().copied().unwrap_or_default();
    println!(
        "(d) SIGKILL with {KILL_CHATS} turns in flight: first re-run on B after {:?}, \
         all {KILL_CHATS} after {recovery:?}",
        times.first().copied().unwrap_or_default()
    );

    let on_b = alice.client(&b);
    for (chat, text) in chats.iter().zip(&texts) {
        wait_for(
            WAIT,
            || format!("{text} not finished\n{}", logs(&[&b])),
            async || {
                let c = on_b.chat(*chat).await.unwrap();
                (c.status == ChatStatus::Waiting).then_some(())
            },
        )
        .await;
        let messages = messages(&on_b, *chat).await;
        assert_eq!(
            transcript(&messages),
            vec![
                ("user".to_owned(), text.clone()),
                ("assistant".to_owned(), cluster.mock.reply_to(text)),
            ],
            "{text}: one whole answer"
        );
        assert!(cluster.mock.calls(text) >= 1);
    }
    let total: usize = texts.iter().map(|t| cluster.mock.calls(t)).sum();
    let metrics = b.metrics().await;
    let dead = metrics.sum("chat_recoveries_total", &[("cause", "dead_replica")]);
    println!(
        "(d) {total} model calls for {KILL_CHATS} chats; B: chat_recoveries_total{{cause=\"dead_replica\"}} {dead}, \
         chat_claims_total {}",
        metrics.sum("chat_claims_total", &[])
    );
    assert!(dead >= 1.0, "B counted no dead-replica recovery");
    assert!(recovery <= RECOVERY_ASSERT, "recovery took {recovery:?}");
}

// ---------------------------------------------------------------------------------------
// (e) SIGTERM

/// SIGTERM drains A: `/healthz` answers 503, its stream closes with 1012 and a reason
/// telling the client to reconnect, the process exits 0 after `--drain-timeout`, and B
/// completes the unfinished turn at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_hands_the_unfinished_turn_to_another_replica() {
    let Some(cluster) = cluster(100, Duration::from_millis(100)).await else {
        return;
    };
    let mut a = cluster
        .replica_with(&["--drain-timeout", DRAIN_TIMEOUT])
        .await;
    let alice = cluster.user(&a, "alice").await;
    let text = "drain me";
    let chat = alice.client(&a).create_chat(&create(text)).await.unwrap();
    let on_a = Recorder::open(&a, &alice.token, chat.id).await;
    on_a.wait("parts on A", || logs(&[&a]), |e| parts(e).len() >= 2)
        .await;
    let b = cluster.replica().await;
    // B's re-run goes fast.
    cluster.mock.set_chunk_delay(Duration::ZERO);
    assert_eq!(
        cluster.mock.stats(text).in_flight,
        1,
        "still streaming on A"
    );

    let terminated = Instant::now();
    a.terminate();
    let mut health = Vec::new();
    let status = loop {
        if let Some(status) = a.try_wait() {
            break status;
        }
        let h = a.healthz().await;
        if health.last() != Some(&h) {
            health.push(h);
        }
        assert!(
            terminated.elapsed() < DRAIN_EXIT_LIMIT,
            "A still running {DRAIN_EXIT_LIMIT:?} after SIGTERM; healthz {health:?}\n{}",
            logs(&[&a])
        );
        tokio::time::sleep(POLL).await;
    };
    let exited = terminated.elapsed();
    let b_key = b.openai_key().to_owned();
    let taken = wait_for(
        WAIT,
        || format!("B never took the chat\n{}", logs(&[&a, &b])),
        async || (cluster.mock.stats(text).calls_with(&b_key) > 0).then(|| terminated.elapsed()),
    )
    .await;
    println!(
        "(e) SIGTERM: healthz {health:?}, exit {status} after {exited:?}, B took the turn \
         {taken:?} after SIGTERM; A's stream ended {:?}",
        on_a.ended()
    );
    assert!(
        health.contains(&Some(503)),
        "healthz while draining: {health:?}"
    );
    assert!(status.success(), "exit status {status}\n{}", logs(&[&a]));
    wait_for(
        WAIT,
        || format!("A's stream did not end: {:?}", on_a.ended()),
        async || on_a.ended(),
    )
    .await;
    match on_a.ended() {
        Some(Ended::Close(code, reason)) => {
            assert_eq!(code, CLOSE_SERVICE_RESTART, "close reason {reason:?}");
            assert!(
                reason.to_lowercase().contains("reconnect"),
                "the reason tells the client to reconnect: {reason:?}"
            );
        }
        other => panic!("A's stream ended without a close frame: {other:?}"),
    }
    let on_b = alice.client(&b);
    let done = wait_for(
        WAIT,
        || format!("the chat was not completed\n{}", logs(&[&b])),
        async || {
            let c = on_b.chat(chat.id).await.unwrap();
            let ms = messages(&on_b, chat.id).await;
            (c.status == ChatStatus::Waiting
                && ms.iter().any(|m| m.role == ChatMessageRole::Assistant))
            .then_some(ms)
        },
    )
    .await;
    assert_eq!(
        transcript(&done),
        vec![
            ("user".to_owned(), text.to_owned()),
            ("assistant".to_owned(), cluster.mock.reply_to(text)),
        ]
    );
    // "At once": within the drain timeout plus a little, not a stale-lease recovery.
    assert!(
        taken < Duration::from_secs(3),
        "B took the handed-back turn {taken:?} after SIGTERM"
    );
}

// ---------------------------------------------------------------------------------------
// (f) LISTEN connection lost

/// B's LISTEN connection is terminated by PostgreSQL while a chat runs on A with a
/// subscriber on B: B reconnects, re-reads, and the subscriber still gets the final
/// message and `waiting`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_listen_connection_is_reestablished_without_losing_events() {
    let Some(cluster) = cluster(40, Duration::from_millis(100)).await else {
        return;
    };
    let a = cluster.replica().await;
    let alice = cluster.user(&a, "alice").await;
    let text = "listen through a reconnect";
    let chat = alice.client(&a).create_chat(&create(text)).await.unwrap();
    wait_for(
        WAIT,
        || format!("no stream on A\n{}", logs(&[&a])),
        async || (cluster.mock.stats(text).chunks_sent >= 2).then_some(()),
    )
    .await;
    let b = cluster.replica().await;
    let on_b = Recorder::open(&b, &alice.token, chat.id).await;
    on_b.wait("B's snapshot", || logs(&[&b]), |e| !e.is_empty())
        .await;
    let ended = wait_for(
        WAIT,
        || format!("B has no LISTEN connection\n{}", logs(&[&b])),
        async || {
            let n = cluster.terminate_listen_connection(&b).await;
            (n > 0).then_some(n)
        },
    )
    .await;
    on_b.wait(
        "the final message and waiting on B",
        || logs(&[&a, &b]),
        |e| {
            has_status(e, &ChatStatus::Waiting)
                && stream_messages(e)
                    .iter()
                    .any(|m| m.role == ChatMessageRole::Assistant)
        },
    )
    .await;
    let events = on_b.events();
    let reply = stream_messages(&events)
        .into_iter()
        .find(|m| m.role == ChatMessageRole::Assistant)
        .unwrap();
    assert_eq!(text_of(&reply), cluster.mock.reply_to(text));
    assert!(duplicated_message_ids(&events).is_empty());
    assert_eq!(
        cluster.mock.stats(text).keys,
        vec![a.openai_key().to_owned()]
    );
    let reconnects = b
        .metrics()
        .await
        .sum("chat_notification_reconnects_total", &[]);
    println!("(f) ended {ended} LISTEN connection(s) of B; B reconnected {reconnects} time(s)");
    assert!(
        reconnects >= 1.0,
        "chat_notification_reconnects_total {reconnects}"
    );
}

// ---------------------------------------------------------------------------------------
// The soak

/// Chats of the soak's first phase.
const SOAK_CHATS: usize = 1_000;
/// Turns per chat (the first message, then two queued behind it).
const SOAK_TURNS: usize = 3;
/// Replicas of the first phase.
const SOAK_REPLICAS: usize = 3;
/// One replica is SIGKILLed and restarted this often during the first phase.
const SOAK_KILL_INTERVAL: Duration = Duration::from_secs(5);
/// Chats of each throughput phase (3 replicas without kills, then 1 replica).
const THROUGHPUT_CHATS: usize = 300;
/// Client requests in flight at once.
const SOAK_CONCURRENCY: usize = 32;
/// Longest a phase may take.
const SOAK_PHASE_LIMIT: Duration = Duration::from_secs(900);
/// How often the soak reads the database for progress and recovery.
const SOAK_POLL: Duration = Duration::from_millis(50);
/// Longest a kill's recovery may take before it is reported as not recovered.
const SOAK_RECOVERY_LIMIT: Duration = Duration::from_secs(60);
/// Chunks of the soak's (zero-delay) replies.
const SOAK_REPLY_CHUNKS: usize = 5;

/// A replica slot: requests hold the read side, the killer takes the write side, so a
/// kill never cuts a client request (the kill is about the turns, not the client's
/// retries) and no request goes to a replica being restarted.
type Slot = tokio::sync::RwLock<Option<Live>>;

/// A replica in a slot and the soak user's client of it (made once: a client per request
/// would build a connection pool and TLS configuration each time, and connect anew).
struct Live {
    replica: Replica,
    client: Client,
}

impl Live {
    fn new(replica: Replica, user: &ClusterUser) -> Live {
        let client = user.client(&replica);
        Live { replica, client }
    }
}

/// Runs `request` on some live replica, starting the search at `start`.
async fn on_some_replica<T>(slots: &[Slot], start: usize, request: impl AsyncFn(&Live) -> T) -> T {
    let mut i = start;
    loop {
        for _ in 0..slots.len() {
            let slot = &slots[i % slots.len()];
            i += 1;
            if let Ok(guard) = slot.try_read() {
                if let Some(live) = guard.as_ref() {
                    return request(live).await;
                }
            }
        }
        tokio::time::sleep(SOAK_POLL).await;
    }
}

/// What one phase measured.
#[derive(Debug, Default)]
struct PhaseReport {
    name: String,
    replicas: usize,
    chats: usize,
    turns: usize,
    completed_turns: usize,
    lost: usize,
    duplicated: usize,
    wrong_text: usize,
    elapsed: Duration,
    kills: usize,
    /// Kills with at least one chat of the killed replica running (all chats, when the
    /// killed replica's are not known); the recovery times are theirs.
    kills_with_running: usize,
    /// Of those, the kills whose killed replica's chats were known.
    attributed: usize,
    recoveries: Vec<Duration>,
    unrecovered: usize,
    /// Chats handed back by survivors' liveness checks, from the replicas' logs.
    handed_back_dead: usize,
    /// Chats handed back by stale recovery, from the replicas' logs.
    handed_back_stale: usize,
    model_calls: usize,
}

impl PhaseReport {
    fn throughput(&self) -> f64 {
        self.completed_turns as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The text strings of a stored message's content (the encoding is the engine's; its
/// text parts carry `"text"`).
fn stored_text(content: &str) -> String {
    fn walk(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                if map.get("type").and_then(|t| t.as_str()) == Some("text") {
                    if let Some(t) = map.get("text").and_then(|t| t.as_str()) {
                        out.push_str(t);
                    }
                }
                for (k, v) in map {
                    if k != "text" {
                        walk(v, out);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(content) {
        walk(&v, &mut out);
    }
    out
}

/// `(chat, worker, epoch)` of every running chat: a chat has "moved on" from a kill when
/// its triple is gone (another lease, or no longer running).
async fn running_leases(pool: &sqlx::AnyPool) -> HashSet<(String, String, i64)> {
    sqlx::query_as::<_, (String, String, i64)>(
        "SELECT id, COALESCE(worker_id, ''), lease_epoch FROM chats WHERE status = 'running'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// The ids of the `pending` chats.
async fn pending_chats(pool: &sqlx::AnyPool) -> HashSet<String> {
    sqlx::query_scalar::<_, String>("SELECT id FROM chats WHERE status = 'pending'")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// The survivors' log line of a dead-replica hand-back (`worker=… chats=…`).
const HANDBACK_LINE: &str = "a replica died; handed its chats back";

/// The log line of a stale-lease recovery.
const STALE_LINE: &str = "recovered a chat from a stale worker";

/// The value of `name=` in a log line.
fn log_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
}

/// What `replica` logged handing chats back: `(chats of dead replicas, stale chats)`.
fn handbacks(replica: &Replica) -> (usize, usize) {
    let dead = replica
        .log_lines_containing(HANDBACK_LINE)
        .iter()
        .filter_map(|l| log_field(l, "chats")?.parse::<usize>().ok())
        .sum();
    (dead, replica.log_lines_containing(STALE_LINE).len())
}

/// The dead workers the live replicas have logged handing chats back from.
fn handed_back_workers(slots: &[Slot]) -> HashSet<String> {
    let mut out = HashSet::new();
    for slot in slots {
        // A slot being restarted is skipped: its new replica has handed nothing back yet.
        let Ok(guard) = slot.try_read() else {
            continue;
        };
        if let Some(live) = guard.as_ref() {
            for line in live.replica.log_lines_containing(HANDBACK_LINE) {
                if let Some(w) = log_field(&line, "worker") {
                    out.insert(w.to_lowercase());
                }
            }
        }
    }
    out
}

/// One kill's recovery.
#[derive(Debug, Clone, Copy)]
struct Recovery {
    /// Chats running in the deployment at the kill.
    running: usize,
    /// Of those, the killed replica's: known once a survivor logs handing its worker's
    /// chats back (its worker id is nowhere else to be seen); `None` when none did.
    killed: Option<usize>,
    /// Kill → every one of the killed replica's chats (all of `running` when it is not
    /// known) running again under another lease or finished; `None` when that took longer
    /// than [`SOAK_RECOVERY_LIMIT`].
    time: Option<Duration>,
}

/// Times the recovery from the kill at `killed_at` of `running` (the running leases read
/// just before).
async fn watch_recovery(
    pool: sqlx::AnyPool,
    slots: Arc<Vec<Slot>>,
    running: HashSet<(String, String, i64)>,
    killed_at: Instant,
) -> Recovery {
    let workers: HashSet<String> = running.iter().map(|(_, w, _)| w.to_lowercase()).collect();
    let mut victim: Option<String> = None;
    loop {
        if victim.is_none() {
            victim = handed_back_workers(&slots)
                .into_iter()
                .find(|w| workers.contains(w));
        }
        let theirs: Vec<&(String, String, i64)> = running
            .iter()
            .filter(|(_, w, _)| victim.as_ref().is_none_or(|v| *v == w.to_lowercase()))
            .collect();
        let (now, pending) = (running_leases(&pool).await, pending_chats(&pool).await);
        let waiting = theirs
            .iter()
            .filter(|lease| now.contains(**lease) || pending.contains(&lease.0))
            .count();
        let elapsed = killed_at.elapsed();
        let done = waiting == 0;
        if done || elapsed > SOAK_RECOVERY_LIMIT {
            return Recovery {
                running: running.len(),
                killed: victim.as_ref().map(|_| theirs.len()),
                time: done.then_some(elapsed),
            };
        }
        tokio::time::sleep(SOAK_POLL).await;
    }
}

/// Runs one phase: `chats` chats of [`SOAK_TURNS`] turns labelled `phase`, spread over the
/// live replicas, killing and restarting one every [`SOAK_KILL_INTERVAL`] when `kills`;
/// then checks every chat's transcript in the database.
async fn soak_phase(
    cluster: &Arc<Cluster>,
    slots: &Arc<Vec<Slot>>,
    user: &ClusterUser,
    pool: &sqlx::AnyPool,
    phase: &str,
    chats: usize,
    kills: bool,
) -> PhaseReport {
    let live = {
        let mut n = 0;
        for s in slots.iter() {
            n += usize::from(s.read().await.is_some());
        }
        n
    };
    let text = |chat: usize, turn: usize| format!("{phase} chat {chat} turn {turn}");
    let started = Instant::now();
    let calls_before = cluster.mock.total_calls();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The killer: every interval, one replica (in turn) is SIGKILLed after the running
    // chats are read, and a recovery watcher times how long until each of those chats
    // has moved on (another lease or no longer running); then the slot gets a new replica.
    let handed = Arc::new(Mutex::new((0usize, 0usize)));
    let killer = kills.then(|| {
        let (cluster, slots, stop) = (cluster.clone(), slots.clone(), stop.clone());
        let (handed, user) = (handed.clone(), user.clone());
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut watchers = Vec::new();
            let mut victim = 0usize;
            loop {
                tokio::time::sleep(SOAK_KILL_INTERVAL).await;
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let slot = &slots[victim % slots.len()];
                victim += 1;
                let mut guard = slot.write().await;
                let running = running_leases(&pool).await;
                let killed_at = Instant::now();
                if let Some(Live { mut replica, .. }) = guard.take() {
                    replica.kill();
                    println!(
                        "soak: SIGKILLed {} with {} chats running in the deployment",
                        replica.name(),
                        running.len()
                    );
                    // Its log dies with it: count the hand-backs it did first.
                    let (dead, stale) = handbacks(&replica);
                    let mut h = handed.lock().unwrap();
                    h.0 += dead;
                    h.1 += stale;
                }
                let (pool, slots) = (pool.clone(), slots.clone());
                watchers.push(tokio::spawn(watch_recovery(
                    pool, slots, running, killed_at,
                )));
                *guard = Some(Live::new(cluster.replica().await, &user));
            }
            let mut out = Vec::new();
            for w in watchers {
                out.push(w.await.unwrap());
            }
            out
        })
    });

    // The load: each chat is created with its first message, the next two are queued
    // behind it (or start a turn when it is already idle).
    futures_util::stream::iter(0..chats)
        .map(|c| {
            let slots = slots.clone();
            let texts: Vec<String> = (1..=SOAK_TURNS).map(|t| text(c, t)).collect();
            async move {
                let labels = BTreeMap::from([("phase".to_owned(), phase.to_owned())]);
                let chat = on_some_replica(&slots, c, async |r: &Live| {
                    r.client
                        .create_chat(&CreateChatRequest {
                            content: vec![ChatInputPart::text(&texts[0])],
                            labels: labels.clone(),
                            ..Default::default()
                        })
                        .await
                        .unwrap_or_else(|e| panic!("create on {}: {e}", r.replica.name()))
                })
                .await;
                for (i, t) in texts.iter().enumerate().skip(1) {
                    on_some_replica(&slots, c + i, async |r: &Live| {
                        r.client
                            .send_message(
                                chat.id,
                                &CreateChatMessageRequest {
                                    content: vec![ChatInputPart::text(t)],
                                    ..Default::default()
                                },
                            )
                            .await
                            .unwrap_or_else(|e| panic!("send on {}: {e}", r.replica.name()))
                    })
                    .await;
                }
            }
        })
        .buffer_unordered(SOAK_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;

    // Done when every turn of the phase is answered and nothing is busy or queued.
    let expected_turns = chats * SOAK_TURNS;
    loop {
        let (answered, busy): (i64, i64) = sqlx::query_as(
            "SELECT \
               (SELECT COUNT(*) FROM chat_messages m JOIN chat_labels l ON l.chat_id = m.chat_id \
                 WHERE l.key = 'phase' AND l.value = $1 AND m.role = 'assistant' AND m.deleted = 0), \
               (SELECT COUNT(*) FROM chats c JOIN chat_labels l ON l.chat_id = c.id \
                 WHERE l.key = 'phase' AND l.value = $1 AND c.status <> 'waiting') \
               + (SELECT COUNT(*) FROM chat_queued_messages q JOIN chat_labels l ON l.chat_id = q.chat_id \
                 WHERE l.key = 'phase' AND l.value = $1)",
        )
        .bind(phase)
        .fetch_one(pool)
        .await
        .unwrap();
        if usize::try_from(answered).unwrap() >= expected_turns && busy == 0 {
            break;
        }
        if started.elapsed() > SOAK_PHASE_LIMIT {
            println!("soak {phase}: gave up after {SOAK_PHASE_LIMIT:?}: {answered} answered, {busy} busy");
            break;
        }
        tokio::time::sleep(SOAK_POLL).await;
    }
    let elapsed = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let recoveries = match killer {
        Some(k) => k.await.unwrap(),
        None => Vec::new(),
    };

    // Every chat's transcript: user t1, assistant, user t2, assistant, user t3, assistant.
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT m.chat_id, m.role, m.content FROM chat_messages m \
         JOIN chat_labels l ON l.chat_id = m.chat_id \
         WHERE l.key = 'phase' AND l.value = $1 AND m.deleted = 0 \
           AND m.role IN ('user', 'assistant') \
         ORDER BY m.chat_id, m.id",
    )
    .bind(phase)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut by_chat: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (chat, role, content) in rows {
        by_chat
            .entry(chat)
            .or_default()
            .push((role, stored_text(&content)));
    }
    let mut report = PhaseReport {
        name: phase.to_owned(),
        replicas: live,
        chats,
        turns: expected_turns,
        elapsed,
        ..Default::default()
    };
    for transcript in by_chat.values() {
        let answers = transcript.iter().filter(|(r, _)| r == "assistant").count();
        report.completed_turns += answers.min(SOAK_TURNS);
        report.lost += SOAK_TURNS.saturating_sub(answers);
        report.duplicated += answers.saturating_sub(SOAK_TURNS);
        for pair in transcript.windows(2) {
            if let [(r1, question), (r2, answer)] = pair {
                if r1 == "user" && r2 == "assistant" && *answer != cluster.mock.reply_to(question) {
                    report.wrong_text += 1;
                }
            }
        }
    }
    // Chats with no message at all would be missing from the rows.
    report.lost += chats.saturating_sub(by_chat.len()) * SOAK_TURNS;
    report.kills = recoveries.len();
    for r in &recoveries {
        println!(
            "soak {phase}: kill with {} chats running, {} of the killed replica, recovered in {}",
            r.running,
            r.killed
                .map_or("? (not attributed)".to_owned(), |n| n.to_string()),
            r.time
                .map_or("—".to_owned(), |t| format!("{:.2} s", t.as_secs_f64()))
        );
    }
    // A kill with nothing of the killed replica running has nothing to recover: it would
    // only add zeros.
    let recoveries: Vec<Recovery> = recoveries
        .into_iter()
        .filter(|r| r.killed.unwrap_or(r.running) > 0)
        .collect();
    report.kills_with_running = recoveries.len();
    report.attributed = recoveries.iter().filter(|r| r.killed.is_some()).count();
    report.unrecovered = recoveries.iter().filter(|r| r.time.is_none()).count();
    report.recoveries = recoveries.iter().filter_map(|r| r.time).collect();
    report.recoveries.sort();
    if kills {
        // The live replicas' hand-backs, beside those of the replicas killed on the way.
        for slot in slots.iter() {
            if let Some(live) = slot.read().await.as_ref() {
                let (dead, stale) = handbacks(&live.replica);
                let mut h = handed.lock().unwrap();
                h.0 += dead;
                h.1 += stale;
            }
        }
    }
    (report.handed_back_dead, report.handed_back_stale) = *handed.lock().unwrap();
    report.model_calls = cluster.mock.total_calls() - calls_before;
    report
}

/// The relay-lag histogram and counters of the live replicas, merged.
async fn soak_metrics(slots: &[Slot]) -> (HistogramSnapshot, BTreeMap<String, f64>) {
    let mut lag = HistogramSnapshot::default();
    let mut counters = BTreeMap::new();
    for slot in slots {
        let guard = slot.read().await;
        let Some(live) = guard.as_ref() else {
            continue;
        };
        let m: MetricsText = live.replica.metrics().await;
        if let Some(h) = m.histogram("chat_relay_lag_seconds") {
            lag.merge(&h);
        }
        for (name, labels) in [
            ("chat_claims_total", vec![]),
            ("chat_recoveries_total", vec![("cause", "stale")]),
            ("chat_recoveries_total", vec![("cause", "dead_replica")]),
            ("chat_notification_reconnects_total", vec![]),
        ] {
            let key = if labels.is_empty() {
                name.to_owned()
            } else {
                format!("{name}{{cause={}}}", labels[0].1)
            };
            *counters.entry(key).or_insert(0.0) += m.sum(name, &labels);
        }
    }
    (lag, counters)
}

/// 3 replicas, 1 000 chats × 3 turns against the zero-delay mock, one replica SIGKILLed
/// and restarted every [`SOAK_KILL_INTERVAL`]; then the throughput of 3 replicas and of 1
/// on the same database. Prints a summary; fails on any lost, duplicated or wrong answer
/// and on a kill never recovered from.
///
/// A kill's recovery time runs from the SIGKILL until every chat the killed replica was
/// running is running again under another lease or finished (`pending` does not count).
/// Which chats those were is learnt from the survivors' hand-back log line, which names
/// the dead worker (worker ids are not exposed otherwise); a kill no survivor logged is
/// measured over every chat running at the kill instead (an upper bound) and shown as not
/// attributed. Kills with nothing to recover are counted but left out of the
/// percentiles. The relay lag and counters come from the replicas
/// alive at the end of the kill phase (a killed replica's metrics die with it); the
/// hand-back counts come from every replica's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of a few minutes: scripts/soak_replicas.sh"]
async fn soak_three_replicas_with_kills() {
    let Some(cluster) = cluster(SOAK_REPLY_CHUNKS, Duration::ZERO).await else {
        return;
    };
    let cluster = Arc::new(cluster);
    let first = cluster.replica().await;
    let user = cluster.user(&first, "soak").await;
    let mut replicas = vec![first];
    replicas.extend(cluster.replicas(SOAK_REPLICAS - 1).await);
    let slots: Arc<Vec<Slot>> = Arc::new(
        replicas
            .into_iter()
            .map(|r| tokio::sync::RwLock::new(Some(Live::new(r, &user))))
            .collect(),
    );
    let pool = cluster.raw_pool().await;

    let kills = soak_phase(&cluster, &slots, &user, &pool, "kills", SOAK_CHATS, true).await;
    let (lag, counters) = soak_metrics(&slots).await;
    let three = soak_phase(
        &cluster,
        &slots,
        &user,
        &pool,
        "three",
        THROUGHPUT_CHATS,
        false,
    )
    .await;
    // One replica left for the last phase.
    for slot in slots.iter().skip(1) {
        if let Some(Live { mut replica, .. }) = slot.write().await.take() {
            replica.terminate();
            replica.wait(WAIT).await;
        }
    }
    let one = soak_phase(
        &cluster,
        &slots,
        &user,
        &pool,
        "one",
        THROUGHPUT_CHATS,
        false,
    )
    .await;

    println!();
    println!("| phase | replicas | chats × turns | completed | lost | duplicated | wrong text | time | turns/s | model calls | kills (with chats to recover / attributed) | recovery p50 | recovery p99 | recovery max | unrecovered | handed back (dead / stale) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in [&kills, &three, &one] {
        let p = |q| {
            percentile(&r.recoveries, q)
                .map_or("-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
        };
        println!(
            "| {} | {} | {} × {SOAK_TURNS} | {}/{} | {} | {} | {} | {:.1} s | {:.1} | {} | {} ({} / {}) | {} | {} | {} | {} | {} / {} |",
            r.name,
            r.replicas,
            r.chats,
            r.completed_turns,
            r.turns,
            r.lost,
            r.duplicated,
            r.wrong_text,
            r.elapsed.as_secs_f64(),
            r.throughput(),
            r.model_calls,
            r.kills,
            r.kills_with_running,
            r.attributed,
            p(0.5),
            p(0.99),
            p(1.0),
            r.unrecovered,
            r.handed_back_dead,
            r.handed_back_stale
        );
    }
    println!();
    let q = |x| {
        lag.quantile(x)
            .map_or("-".to_owned(), |v| format!("≤ {v} s"))
    };
    println!(
        "relay lag (live replicas after the kill phase, {} observations): p50 {}, p99 {}",
        lag.count,
        q(0.5),
        q(0.99)
    );
    println!("counters of the live replicas after the kill phase: {counters:?}");
    println!(
        "throughput 3 replicas / 1 replica: {:.2}",
        three.throughput() / one.throughput().max(f64::EPSILON)
    );
    for r in [&kills, &three, &one] {
        assert_eq!(
            (r.lost, r.duplicated, r.wrong_text),
            (0, 0, 0),
            "{}: lost, duplicated, wrong answers",
            r.name
        );
        assert_eq!(r.unrecovered, 0, "{}: kills never recovered from", r.name);
    }
    drop(pool);
}

// ---------------------------------------------------------------------------------------
// Configuration changes reach every replica

/// An administrator's configuration write through A is announced, after its commit, to B
/// (the invalidation channel of the hot-config cache): B's `chat_config_changes_total`
/// grows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_write_on_a_is_announced_on_b() {
    let Some(cluster) = cluster(1, Duration::ZERO).await else {
        return;
    };
    let a = cluster.replica().await;
    let b = cluster.replica().await;
    let changes = async |r: &Replica| {
        r.metrics()
            .await
            .value("chat_config_changes_total", &[])
            .unwrap_or(0.0)
    };
    let before = changes(&b).await;
    cluster
        .admin(&a)
        .update_chat_system_prompt(&codersdk::UpdateChatSystemPromptRequest {
            system_prompt: "Answer briefly.".to_owned(),
            include_default_system_prompt: None,
        })
        .await
        .unwrap();
    wait_for(
        WAIT,
        || format!("B never heard of the change\n{}", logs(&[&a, &b])),
        async || (changes(&b).await > before).then_some(()),
    )
    .await;
    assert!(changes(&a).await >= 1.0, "A announced it too");
}
