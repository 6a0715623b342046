//! The database statements of one one-step turn, counted on both backends (issue 19,
//! docs/turn-path.md): a member sends a message over HTTP (token authentication included)
//! to a chat whose stream and watch sockets are open, a configured OpenAI provider answers
//! with one recorded text stream, and the chat goes back to `waiting`. Every statement the
//! server sends to the database in that window is counted from sqlx's own per-statement
//! events (on PostgreSQL `COMMIT` is one; `BEGIN` travels with its transaction's first
//! statement and costs no round trip of its own), so a new query anywhere on the path —
//! the engine's background work after the turn included — is caught.
//!
//! A test binary of its own, with a single test: the counter is a process-wide tracing
//! subscriber (SQLite runs statements on its own worker threads, so a thread-local one would
//! miss them), and any other test running beside it would add its statements.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chatd_core::EngineSettings;
use chatd_test_support::db::on_each_backend;
use chatd_test_support::replay::{Recorded, ReplayServer, Reply};
use chatd_test_support::server::{TestServer, ADMIN_TOKEN};
use codersdk::client::Client;
use codersdk::{
    ChatInputPart, ChatStatus, ChatStreamEvent, ChatStreamEventType, ChatWatchEventKind,
    CreateChatMessageRequest, CreateChatModelConfigRequest, CreateChatProviderConfigRequest,
    CreateChatRequest, SecretString, Uuid,
};
use futures_util::StreamExt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// The most statements a one-step turn may send to the database, authentication of the
/// send request included: what it costs on PostgreSQL now (issue 19's target was 20), so
/// that a statement added to the path is a decision that changes this number. The turn
/// summary that follows a root turn is counted separately ([`MAX_SUMMARY_STATEMENTS`]).
const MAX_TURN_STATEMENTS: usize = 14;

/// The most statements the turn summary after a root turn may add (a model call outside
/// the turn's path; docs/turn-path.md).
const MAX_SUMMARY_STATEMENTS: usize = 5;

/// Turns run before counting, so pooled connections are open and caches warm.
const WARM_UP_TURNS: usize = 3;

/// Turns counted; each is held to the limit.
const COUNTED_TURNS: usize = 3;

const WAIT: Duration = Duration::from_secs(20);

/// Every statement seen while recording, by its text.
#[derive(Default)]
struct Recorder {
    on: bool,
    statements: Vec<String>,
}

fn recorder() -> &'static Mutex<Recorder> {
    static RECORDER: OnceLock<Mutex<Recorder>> = OnceLock::new();
    RECORDER.get_or_init(Mutex::default)
}

struct StatementLayer;

/// The statement of the store's background WAL checkpoints on SQLite.
const BACKGROUND_CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

#[derive(Default)]
struct StatementText {
    summary: String,
    full: String,
}

impl Visit for StatementText {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.full = value.trim().to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

impl<S: Subscriber> Layer<S> for StatementLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut text = StatementText::default();
        event.record(&mut text);
        let sql = if text.full.is_empty() {
            text.summary
        } else {
            text.full
        };
        // SQLite's WAL checkpoints run on a timer beside everything else
        // (`SQLITE_CHECKPOINT_INTERVAL`), not on the turn's behalf.
        if sql.starts_with(BACKGROUND_CHECKPOINT) {
            return;
        }
        let mut recorder = recorder().lock().unwrap();
        if recorder.on {
            recorder
                .statements
                .push(sql.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
}

fn start_recording() {
    let mut r = recorder().lock().unwrap();
    r.on = true;
    r.statements.clear();
}

fn stop_recording() -> Vec<String> {
    let mut r = recorder().lock().unwrap();
    r.on = false;
    std::mem::take(&mut r.statements)
}

/// Settings whose background loops stay quiet during the count: claims come from wake-ups
/// (a send wakes the engine), heartbeats and recovery wait far beyond the test.
fn quiet_settings() -> EngineSettings {
    let mut s = EngineSettings::default();
    let long = Duration::from_secs(3600);
    s.acquire_interval = long;
    s.heartbeat_interval = long;
    s.recovery_interval = long;
    s.liveness_interval = long;
    s.stale_after = long * 2;
    s.shutdown_timeout = Duration::from_secs(5);
    s.turn_summary_delay = Duration::ZERO;
    s
}

fn is_summary_request(request: &Recorded) -> bool {
    request.json_or_null()["messages"][0]["content"].as_str()
        == Some(chatd_core::TURN_SUMMARY_SYSTEM_PROMPT)
}

fn is_title_request(request: &Recorded) -> bool {
    request.json_or_null()["messages"][0]["content"].as_str()
        == Some(chatd_core::title::TITLE_SYSTEM_PROMPT)
}

fn sse_text(text: &str) -> Reply {
    let chunk = serde_json::json!({
        "id": "t",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}],
    });
    Reply::sse(vec![
        format!("data: {chunk}\n\ndata: [DONE]\n\n").into_bytes()
    ])
}

/// Titles and summaries are answered aside; every turn gets a recorded text stream.
fn answer(request: &Recorded) -> Option<Reply> {
    if is_title_request(request) {
        Some(sse_text("Counting statements"))
    } else if is_summary_request(request) {
        Some(sse_text("Said hello"))
    } else {
        Some(Reply::recorded("openai-chat--text--usage.sse"))
    }
}

async fn wait_for_waiting(stream: &mut codersdk::client::ChatEventStream) {
    tokio::time::timeout(WAIT, async {
        loop {
            let event: ChatStreamEvent = stream.next().await.unwrap().unwrap();
            if event.event_type == ChatStreamEventType::Status
                && event
                    .status
                    .as_ref()
                    .is_some_and(|s| s.status == ChatStatus::Waiting)
            {
                return;
            }
        }
    })
    .await
    .expect("the chat went back to waiting");
}

/// Waits until the provider has received `n` summary requests and the summary's write had
/// time to land: the summary runs after `waiting` is published.
async fn wait_for_summaries(provider: &ReplayServer, n: usize) {
    tokio::time::timeout(WAIT, async {
        while provider
            .requests()
            .iter()
            .filter(|r| is_summary_request(r))
            .count()
            < n
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        let firsts: Vec<String> = provider
            .requests()
            .iter()
            .map(|r| {
                let body = r.json_or_null();
                let first: String = body["messages"][0].to_string().chars().take(120).collect();
                format!("{} {first}", r.path)
            })
            .collect();
        panic!("no turn summary was requested; the provider saw {firsts:#?}")
    });
}

/// Waits until no statement arrived for a while: the summary's writes are done.
async fn settle() {
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = recorder().lock().unwrap().statements.len();
        if now == last {
            return;
        }
        last = now;
    }
}

fn report(label: &str, statements: &[String]) -> String {
    let mut out = format!("{label}: {} statements\n", statements.len());
    for (i, s) in statements.iter().enumerate() {
        let short: String = s.chars().take(160).collect();
        out.push_str(&format!("  {:>2}. {short}\n", i + 1));
    }
    out
}

/// Configures OpenAI (Chat Completions) at `provider` and a default `gpt-4o` model with
/// `context_limit`, as an administrator would.
async fn configure_openai(admin: &Client, provider: &ReplayServer, context_limit: i64) {
    admin
        .create_chat_provider(&CreateChatProviderConfigRequest {
            provider: "openai".into(),
            api_key: Some(SecretString::from("sk-test-count")),
            base_url: Some(provider.url("/v1")),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .create_chat_model_config(&CreateChatModelConfigRequest {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            is_default: Some(true),
            context_limit: Some(context_limit),
            model_config: Some(codersdk::ChatModelCallConfig {
                openai_config: Some(codersdk::ChatModelOpenAIConfig {
                    use_responses_api: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Starts a server on `store` (the OpenAI provider pointing at `provider` is configured
/// once per store), a member with a chat that answered its first message, its stream and
/// watch sockets open; then runs [`WARM_UP_TURNS`] + [`COUNTED_TURNS`] turns and returns the
/// statements of each counted turn, from the send to the moment nothing more arrives.
async fn count_turns(
    store: &chatd_core::store::Store,
    provider: &ReplayServer,
    keyring: &std::sync::Arc<chatd_core::Keyring>,
    summaries: bool,
    username: &str,
) -> Vec<Vec<String>> {
    let server = TestServer::builder(store)
        .own_models()
        .keyring(std::sync::Arc::clone(keyring))
        .settings(quiet_settings())
        .turn_summaries(summaries)
        .start()
        .await;
    let admin = Client::new(&server.base, ADMIN_TOKEN).unwrap();
    if admin.chat_model_configs().await.unwrap().is_empty() {
        configure_openai(&admin, provider, 128_000).await;
    }
    let member = server.user(username).await;
    let client = Client::new(&server.base, member.token.as_str()).unwrap();
    let mut watch = client.watch().await.unwrap();
    let mut asked = summary_requests(provider);
    let chat = client
        .create_chat(&CreateChatRequest {
            content: vec![ChatInputPart::text("hello")],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut stream = client.stream(chat.id, None).await.unwrap();
    wait_for_waiting(&mut stream).await;
    if summaries {
        asked += 1;
        wait_for_summaries(provider, asked).await;
    }
    settle().await;
    // The watch socket is read in the background so it never applies backpressure.
    let drain = tokio::spawn(async move {
        while let Some(Ok(event)) = watch.next().await {
            let _ = event.kind == ChatWatchEventKind::StatusChange;
        }
    });
    let mut counted = Vec::new();
    for turn in 0..WARM_UP_TURNS + COUNTED_TURNS {
        start_recording();
        client
            .send_message(
                chat.id,
                &CreateChatMessageRequest {
                    content: vec![ChatInputPart::text(format!("hello {turn}"))],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        wait_for_waiting(&mut stream).await;
        if summaries {
            asked += 1;
            wait_for_summaries(provider, asked).await;
        }
        settle().await;
        let statements = stop_recording();
        if turn >= WARM_UP_TURNS {
            counted.push(statements);
        }
    }
    drain.abort();
    // Every turn was answered by the configured provider (not the demo model).
    let page = client
        .chat_messages(chat.id, &codersdk::client::ChatMessagesOptions::default())
        .await
        .unwrap();
    let newest = page.messages.first().expect("the chat has messages");
    assert_eq!(newest.role, codersdk::ChatMessageRole::Assistant);
    assert_eq!(
        newest.model_config_id,
        admin
            .chat_model_configs()
            .await
            .unwrap()
            .first()
            .map(|m| m.id),
        "answered by the configured model"
    );
    server.stop().await;
    counted
}

fn summary_requests(provider: &ReplayServer) -> usize {
    provider
        .requests()
        .iter()
        .filter(|r| is_summary_request(r))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_step_turn_stays_within_its_statement_budget() {
    let subscriber = tracing_subscriber::registry()
        .with(
            StatementLayer.with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("sqlx::query", tracing::Level::TRACE),
            ),
        )
        // Warnings of the server and the engine, for a failure's diagnosis.
        .with(
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_target("chatd_core", tracing::Level::WARN)
                        .with_target("server_example", tracing::Level::WARN),
                ),
        );
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per process");

    on_each_backend(|store| async move {
        let backend = format!("{:?}", store.dialect());
        let provider = ReplayServer::start_with_responder(Vec::new(), answer).await;
        // Both servers seal and open the provider key with the same keyring.
        let keyring = chatd_test_support::server::test_keyring();
        let turns = count_turns(&store, &provider, &keyring, false, "alice").await;
        let with_summaries = count_turns(&store, &provider, &keyring, true, "bob").await;
        let most = turns.iter().map(Vec::len).max().unwrap_or(0);
        for (turn, with_summary) in turns.iter().zip(&with_summaries) {
            eprintln!(
                "{}{}",
                report(&format!("{backend}: a one-step turn"), turn),
                report(&format!("{backend}: with its turn summary"), with_summary)
            );
        }
        for turn in &turns {
            assert!(
                turn.len() <= MAX_TURN_STATEMENTS,
                "{}",
                report(&format!("{backend}: a one-step turn"), turn)
            );
        }
        for with_summary in &with_summaries {
            assert!(
                with_summary.len() <= most + MAX_SUMMARY_STATEMENTS,
                "{}",
                report(&format!("{backend}: a turn with its summary"), with_summary)
            );
        }
    })
    .await;
}

/// Turns of the long chat in [`first_output_at_turn_400_against_turn_2`].
const LONG_CHAT_TURNS: usize = 400;

/// First output at the 400th turn of one chat against the 2nd (docs/turn-path.md
/// "History"), and the history read itself at turn 400: whole against appended. A
/// measurement, not a check: run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (docs/turn-path.md); run with --ignored --nocapture"]
async fn first_output_at_turn_400_against_turn_2() {
    on_each_backend(|store| async move {
        let backend = format!("{:?}", store.dialect());
        let provider = ReplayServer::start_with_responder(Vec::new(), answer).await;
        let keyring = chatd_test_support::server::test_keyring();
        let server = TestServer::builder(&store)
            .own_models()
            .keyring(keyring)
            .settings(quiet_settings())
            .turn_summaries(false)
            .start()
            .await;
        let admin = Client::new(&server.base, ADMIN_TOKEN).unwrap();
        configure_openai(&admin, &provider, 10_000_000).await;
        let chat = admin
            .create_chat(&CreateChatRequest {
                content: vec![ChatInputPart::text("hello")],
                ..Default::default()
            })
            .await
            .unwrap();
        let mut stream = admin.stream(chat.id, None).await.unwrap();
        wait_for_waiting(&mut stream).await;
        let mut first_output = Vec::new();
        for turn in 2..=LONG_CHAT_TURNS {
            let started = std::time::Instant::now();
            admin
                .send_message(
                    chat.id,
                    &CreateChatMessageRequest {
                        content: vec![ChatInputPart::text(format!("turn {turn}"))],
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let mut output = None;
            tokio::time::timeout(WAIT, async {
                loop {
                    let event: ChatStreamEvent = stream.next().await.unwrap().unwrap();
                    if event.event_type == ChatStreamEventType::MessagePart && output.is_none() {
                        output = Some(started.elapsed());
                    }
                    if event.event_type == ChatStreamEventType::Status
                        && event
                            .status
                            .as_ref()
                            .is_some_and(|s| s.status == ChatStatus::Waiting)
                    {
                        return;
                    }
                }
            })
            .await
            .expect("the turn ended");
            first_output.push(output.unwrap_or_else(|| started.elapsed()));
        }
        let median = |d: &[Duration]| {
            let mut d = d.to_vec();
            d.sort();
            d[d.len() / 2]
        };
        let early = median(&first_output[..10]);
        let late = median(&first_output[first_output.len() - 10..]);
        // The history read at the last turn: whole, against the rows after a known mark.
        let engine_store = server.state.engine().store().clone();
        let lease = chatd_core::store::Lease {
            chat_id: chat.id,
            worker_id: Uuid::nil(),
            epoch: 0,
        };
        let timed = |known| {
            let store = engine_store.clone();
            async move {
                let rounds = 20;
                let started = std::time::Instant::now();
                for _ in 0..rounds {
                    store.turn_start(&lease, known).await.unwrap().unwrap();
                }
                started.elapsed() / rounds
            }
        };
        let whole = timed(None).await;
        let full = engine_store.prompt_history(chat.id).await.unwrap();
        let last_id = full.last().map(|m| m.id).unwrap();
        let mark = match engine_store
            .turn_start(&lease, None)
            .await
            .unwrap()
            .unwrap()
            .history
        {
            chatd_core::store::HistoryRead::Full { mark, .. } => mark,
            other => panic!("a first read is whole: {other:?}"),
        };
        assert_eq!(mark.map(|m| m.last_id), Some(last_id));
        // As at a turn's start: the last exchange (a user message and its answer) is new.
        let before_last_exchange = full[full.len() - 3].id;
        let appended = timed(mark.map(|m| chatd_core::store::HistoryMark {
            last_id: before_last_exchange,
            ..m
        }))
        .await;
        eprintln!(
            "{backend}: {} history rows; first output (median of 10) at turns 2-11 {early:?}, \
             at turns {}-{} {late:?}; turn set-up reads at turn {}: whole history {whole:?}, \
             appended {appended:?}",
            full.len(),
            LONG_CHAT_TURNS - 9,
            LONG_CHAT_TURNS,
            LONG_CHAT_TURNS,
        );
        server.stop().await;
    })
    .await;
}
