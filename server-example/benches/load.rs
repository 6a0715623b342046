//! Load benchmark: N concurrent chats creating, sending and streaming over HTTP and
//! WebSockets through the typed client, against the demo model with no word delay.
//!
//! ```text
//! cargo bench -p server-example --bench load -- [--chats N] [--turns T] [--prompt TEXT]
//!     [--database-url postgres://…/db] [--url http://host:port --token TOKEN]
//! ```
//!
//! Without `--url` it starts an in-process server the way the test harness does (SQLite in
//! a temp file, or a fresh schema of the PostgreSQL database given, dropped afterwards),
//! with the demo model's word delay set to zero so that the numbers are the server's and
//! the engine's own cost. With `--url` it drives a running server instead (whatever model
//! that server has). Each chat is one task: create the chat (turn 1) or send a message
//! (turns 2..T), and read the chat's stream until the chat is `waiting` again.
//!
//! Reported: time to first output (request sent → first assistant `message_part` on the
//! stream, or the first assistant message when the turn beat the subscription), turn time
//! (request sent → `waiting`), create/send request latency, and turns per second over the
//! whole run. Results in docs/server-load.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatd_core::store::{Store, StoreOptions};
use chatd_core::{Keyring, SecretKey};
use chatd_test_support::db::{Backend, TestDatabase};
use chatd_test_support::server::serve;
use chatprovider::ProviderApiKeys;
use codersdk::client::{ChatEventStream, Client};
use codersdk::{
    ChatInputPart, ChatMessageRole, ChatStatus, ChatStreamEventType, CreateChatMessageRequest,
    CreateChatRequest,
};
use futures_util::StreamExt;
use server_example::state::{build_on, ServerOptions};

/// How long one turn may take before the run is declared broken.
const TURN_TIMEOUT: Duration = Duration::from_secs(60);

const ADMIN_TOKEN: &str = "chatd_bench_admin_token";

struct Args {
    chats: usize,
    turns: usize,
    prompt: String,
    database_url: Option<String>,
    url: Option<String>,
    token: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        chats: 50,
        turns: 5,
        prompt: "hello".into(),
        database_url: None,
        url: None,
        token: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--chats" => args.chats = value().parse().expect("--chats N"),
            "--turns" => args.turns = value().parse().expect("--turns T"),
            "--prompt" => args.prompt = value(),
            "--database-url" => args.database_url = Some(value()),
            "--url" => args.url = Some(value()),
            "--token" => args.token = Some(value()),
            // `cargo bench` passes `--bench` to harness-less benches.
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    assert!(
        args.chats > 0 && args.turns > 0,
        "--chats and --turns must be positive"
    );
    args
}

/// A store for the in-process server on a throw-away database (the test kit's: removed
/// when dropped, also if the run panics), the database, and the backend's name.
async fn open_store(database_url: Option<&str>) -> (Store, TestDatabase, &'static str) {
    let db = match database_url {
        Some(url) if url.starts_with("postgres") => TestDatabase::postgres(url).await,
        Some(other) => panic!("--database-url must be a postgres:// URL, not {other:?}"),
        None => TestDatabase::sqlite(),
    };
    // The store's default pool size, as a deployment would have it (not the tests' size).
    let mut options = StoreOptions::new(db.url());
    options.schema = db.schema().map(str::to_owned);
    let store = Store::connect_with(options).await.unwrap();
    let backend = match db.backend() {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    (store, db, backend)
}

/// One turn's measurements.
struct Turn {
    request: Duration,
    first_output: Duration,
    done: Duration,
}

/// Reads `events` until the turn started at `started` is over. With `skip_to_start`, events
/// before the turn's `pending`/`running` status are left-overs of the previous turn's
/// snapshot and are skipped.
async fn follow_turn(
    events: &mut ChatEventStream,
    started: Instant,
    mut skip_to_start: bool,
) -> (Duration, Duration) {
    let mut first_output = None;
    // The snapshot of a stream opened after the turn ended starts with `waiting`, before
    // the messages: the turn is over once its output has been seen.
    let mut saw_waiting = false;
    loop {
        let event = tokio::time::timeout(TURN_TIMEOUT, events.next())
            .await
            .expect("the turn finishes in time")
            .expect("the stream stays open")
            .expect("stream events decode");
        if skip_to_start {
            let status = event.status.as_ref().map(|s| &s.status);
            skip_to_start = !matches!(status, Some(ChatStatus::Pending | ChatStatus::Running));
            continue;
        }
        let assistant_output = match event.event_type {
            ChatStreamEventType::MessagePart => event
                .message_part
                .as_ref()
                .is_some_and(|p| p.role == Some(ChatMessageRole::Assistant)),
            ChatStreamEventType::Message => event
                .message
                .as_ref()
                .is_some_and(|m| m.role == ChatMessageRole::Assistant),
            _ => false,
        };
        if assistant_output && first_output.is_none() {
            first_output = Some(started.elapsed());
        }
        let status = event.status.as_ref().map(|s| &s.status);
        match status {
            Some(ChatStatus::Waiting) => saw_waiting = true,
            Some(ChatStatus::Error | ChatStatus::RequiresAction) => {
                panic!("the turn ended in {status:?}")
            }
            _ => {}
        }
        if let (true, Some(first)) = (saw_waiting, first_output) {
            // Live turns: the final message precedes `waiting`, so this is the status.
            if status.is_some() || event.event_type == ChatStreamEventType::Message {
                return (first, started.elapsed());
            }
        }
    }
}

/// One chat: `turns` turns, one after the other.
async fn run_chat(client: Client, prompt: String, turns: usize) -> Vec<Turn> {
    let mut out = Vec::with_capacity(turns);
    let started = Instant::now();
    let chat = client
        .create_chat(&CreateChatRequest {
            content: vec![ChatInputPart::text(&prompt)],
            ..Default::default()
        })
        .await
        .unwrap();
    let request = started.elapsed();
    let mut events = client.stream(chat.id, None).await.unwrap();
    let (first_output, done) = follow_turn(&mut events, started, false).await;
    out.push(Turn {
        request,
        first_output,
        done,
    });
    for _ in 1..turns {
        let started = Instant::now();
        client
            .send_message(
                chat.id,
                &CreateChatMessageRequest {
                    content: vec![ChatInputPart::text(&prompt)],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let request = started.elapsed();
        let (first_output, done) = follow_turn(&mut events, started, true).await;
        out.push(Turn {
            request,
            first_output,
            done,
        });
    }
    out
}

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn report(name: &str, mut values: Vec<Duration>) {
    values.sort();
    println!(
        "{name:<22} p50 {:>10}  p90 {:>10}  p99 {:>10}  max {:>10}",
        ms(percentile(&values, 50.0)),
        ms(percentile(&values, 90.0)),
        ms(percentile(&values, 99.0)),
        ms(*values.last().unwrap()),
    );
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let mut cleanup = None;
    let mut engine = None;
    let (base, token, backend) = match (&args.url, &args.token) {
        (Some(url), Some(token)) => (url.clone(), token.clone(), "external server"),
        (Some(_), None) => panic!("--url needs --token"),
        _ => {
            let (store, db, backend) = open_store(args.database_url.as_deref()).await;
            let keyring = Arc::new(Keyring::new("bench", SecretKey::generate().unwrap()).unwrap());
            let mut options = ServerOptions::new(StoreOptions::new("unused"), keyring.clone());
            options.admin_token = Some(ADMIN_TOKEN.to_owned());
            options.engine.max_active_turns = options.engine.max_active_turns.max(args.chats);
            // Every chat of the run may be running at once: the deployment-wide root
            // limit must not throttle what the benchmark measures.
            options.engine.max_running_root_chats =
                options.engine.max_running_root_chats.max(args.chats);
            // The demo fallback exactly as the server builds it, minus the word delay.
            let admin = chatd_core::Admin::new(store, keyring, ProviderApiKeys::new());
            options.models = Some(server_example::demo::resolver_with_word_delay(
                admin.clone(),
                Duration::ZERO,
            ));
            let started = build_on(admin, options).await.unwrap();
            engine = Some(started.state.engine().clone());
            let base = serve(server_example::router(started.state)).await;
            cleanup = Some(db);
            (base, ADMIN_TOKEN.to_owned(), backend)
        }
    };
    let client = Client::new(&base, token).unwrap();
    client.health().await.unwrap();

    println!(
        "chatd load: {} chats x {} turns, prompt {:?}, {backend}",
        args.chats, args.turns, args.prompt
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.chats)
        .map(|_| tokio::spawn(run_chat(client.clone(), args.prompt.clone(), args.turns)))
        .collect();
    let mut turns = Vec::new();
    for task in tasks {
        turns.extend(task.await.unwrap());
    }
    let wall = started.elapsed();

    println!(
        "{} turns in {:.2} s: {:.1} turns/s",
        turns.len(),
        wall.as_secs_f64(),
        turns.len() as f64 / wall.as_secs_f64()
    );
    report(
        "time to first output",
        turns.iter().map(|t| t.first_output).collect(),
    );
    report("turn (to waiting)", turns.iter().map(|t| t.done).collect());
    report(
        "create/send request",
        turns.iter().map(|t| t.request).collect(),
    );

    if let Some(engine) = engine {
        engine.shutdown().await;
    }
    if let Some(db) = cleanup {
        db.remove().await;
    }
}
