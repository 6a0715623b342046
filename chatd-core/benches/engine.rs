//! Engine benchmarks: send → `running` latency, engine overhead per step, database
//! statements per step, and memory per idle subscriber.
//!
//! Run: `cargo bench -p chatd-core --bench engine` (SQLite in a temp file). With
//! `CHATD_BENCH_DATABASE_URL=postgres://…` it also runs on PostgreSQL (in a fresh schema,
//! dropped afterwards). docs/engine-benchmarks.md records the numbers.
//!
//! The model is scripted and answers at once, so every measured millisecond is the
//! engine's and the database's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::alloc::System;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatd_core::store::{Lease, Step, Store, StoreOptions};
use chatd_core::Actor;
use chatd_test_support::db::TestDatabase;
use chatd_test_support::scripted::{
    self, create_request, engine, wait_status, Reply, ScriptedModel,
};
use codersdk::{
    ChatInputPart, ChatMessagePart, ChatStatus, ChatStreamEventType, CreateChatMessageRequest, Uuid,
};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Counts the statements sqlx logs (target `sqlx::query`) while switched on.
struct StatementCounter {
    on: AtomicBool,
    count: AtomicU64,
}

static COUNTER: StatementCounter = StatementCounter {
    on: AtomicBool::new(false),
    count: AtomicU64::new(0),
};

struct Counting;

impl tracing::Subscriber for Counting {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("sqlx::query")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if COUNTER.on.load(Ordering::SeqCst) && event.metadata().target().starts_with("sqlx::query")
        {
            COUNTER.count.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "  {name}: n={} p50={:.3} ms p90={:.3} ms p99={:.3} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.9).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
    );
}

async fn fixture(store: &Store) -> (Uuid, Uuid) {
    let user = store
        .create_user(chatd_core::store::NewUser {
            username: format!("bench-{}", Uuid::new_v4().simple()),
            name: "Bench".into(),
            role: chatd_core::Role::Member,
        })
        .await
        .unwrap();
    let org = store
        .create_organization(&format!("bench-{}", Uuid::new_v4().simple()))
        .await
        .unwrap();
    store.add_member(org.id, user.id).await.unwrap();
    (org.id, user.id)
}

/// Send → `running` as a subscriber sees it, on an idle chat, with the wake signal.
async fn send_to_running(store: &Store) {
    let (org, user) = fixture(store).await;
    let actor = Actor::user(user);
    let mut settings = scripted::fast_settings();
    // The ticker must not be what starts turns: make it slow so only the wake counts.
    settings.acquire_interval = Duration::from_secs(60);
    let engine = scripted::engine_with(store, ScriptedModel::new([]), settings).await;
    let chat = engine
        .create_chat(&actor, create_request(org, "warm up"))
        .await
        .unwrap();
    wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
    let mut samples = Vec::new();
    for i in 0..200 {
        let mut stream = engine
            .subscribe(&actor, chat.id, Some(i64::MAX))
            .await
            .unwrap();
        while stream.pending_snapshot() > 0 {
            stream.next().await.unwrap();
        }
        let started = Instant::now();
        engine
            .send_message(
                &actor,
                chat.id,
                CreateChatMessageRequest {
                    content: vec![ChatInputPart::text(format!("message {i}"))],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        loop {
            let e = stream.next().await.unwrap();
            if e.event_type == ChatStreamEventType::Status
                && e.status.as_ref().unwrap().status == ChatStatus::Running
            {
                samples.push(started.elapsed());
                break;
            }
        }
        loop {
            let e = stream.next().await.unwrap();
            if e.event_type == ChatStreamEventType::Status
                && e.status.as_ref().unwrap().status == ChatStatus::Waiting
            {
                break;
            }
        }
    }
    report("send → running (wake signal)", samples);
    engine.shutdown().await;
}

/// Per-step time of a turn of many tool steps with an instant model, next to the time of
/// the step write alone; and the statements each steady-state step issues.
async fn per_step(store: &Store) {
    const STEPS: usize = 200;
    let (org, user) = fixture(store).await;
    let actor = Actor::user(user);
    let model = ScriptedModel::new([]);
    for i in 0..STEPS {
        model.push(Reply::ToolCalls(vec![(
            format!("call_{i}"),
            "noop".into(),
            "{}".into(),
        )]));
    }
    model.push(Reply::Text("done".into()));
    let engine = engine(store, model.clone()).await;
    COUNTER.count.store(0, Ordering::SeqCst);
    let chat = engine
        .create_chat(&actor, create_request(org, "loop"))
        .await
        .unwrap();
    let mut stream = engine.subscribe(&actor, chat.id, None).await.unwrap();
    let mut running_at = None;
    let mut messages = 0usize;
    let mut step_marks = Vec::new();
    loop {
        let e = stream.next().await.unwrap();
        match e.event_type {
            ChatStreamEventType::Status => {
                let s = e.status.as_ref().unwrap().status.clone();
                if s == ChatStatus::Running {
                    running_at = Some(Instant::now());
                    COUNTER.on.store(true, Ordering::SeqCst);
                }
                if s == ChatStatus::Waiting {
                    COUNTER.on.store(false, Ordering::SeqCst);
                    break;
                }
            }
            ChatStreamEventType::Message => {
                messages += 1;
                // Each tool step commits an assistant and a tool message.
                if messages > 1 && messages % 2 == 1 {
                    step_marks.push(Instant::now());
                }
            }
            _ => {}
        }
    }
    let total = running_at.unwrap().elapsed();
    let statements = COUNTER.count.load(Ordering::SeqCst);
    let mut gaps: Vec<Duration> = step_marks.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    println!(
        "  turn of {STEPS} tool steps + 1 text step: {:.1} ms, {:.3} ms per step",
        total.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3 / (STEPS + 1) as f64
    );
    report("step to step (model instant, incl. commit)", gaps);
    println!(
        "  statements logged by sqlx during the turn: {statements} ({:.2} per step; \
         the claim, turn set-up and finish are included in the total)",
        statements as f64 / (STEPS + 1) as f64
    );
    engine.shutdown().await;

    // The step write alone, on a chat this process owns.
    let chat = store
        .create_chat(chatd_core::store::NewChat {
            organization_id: org,
            owner_id: user,
            title: "persist".into(),
            model_config_id: Uuid::new_v4(),
            labels: Default::default(),
            mcp_server_ids: Vec::new(),
            dynamic_tools: Vec::new(),
            system_prompt: String::new(),
            client_type: codersdk::ChatClientType::Api,
            plan_mode: None,
            first_message_parts: vec![ChatMessagePart::text("x")],
            created_by: Some(user),
        })
        .await
        .unwrap()
        .0;
    let worker = Uuid::new_v4();
    let leases: Vec<Lease> = store.claim_pending(worker, 10).await.unwrap();
    let lease = *leases.iter().find(|l| l.chat_id == chat.id).unwrap();
    let mut samples = Vec::new();
    COUNTER.count.store(0, Ordering::SeqCst);
    COUNTER.on.store(true, Ordering::SeqCst);
    for i in 0..STEPS {
        let step = Step {
            assistant_parts: vec![ChatMessagePart::tool_call(
                format!("c{i}"),
                "noop",
                codersdk::RawJson::empty_object(),
            )],
            usage: None,
            total_cost_micros: Some(1),
            runtime_ms: 1,
            provider_response_id: None,
            model_config_id: Some(Uuid::new_v4()),
            tool_results: vec![vec![ChatMessagePart::tool_error(
                format!("c{i}"),
                "noop",
                "x",
            )]],
        };
        let started = Instant::now();
        store.persist_step(&lease, step).await.unwrap();
        samples.push(started.elapsed());
    }
    COUNTER.on.store(false, Ordering::SeqCst);
    println!(
        "  statements per persisted step (assistant + 1 tool row): {:.2}",
        COUNTER.count.load(Ordering::SeqCst) as f64 / STEPS as f64
    );
    report("persist_step alone (the commit)", samples);
}

/// Net heap bytes of idle stream subscribers (snapshot consumed).
async fn idle_subscribers(store: &Store) {
    const SUBSCRIBERS: usize = 100;
    let (org, user) = fixture(store).await;
    let actor = Actor::user(user);
    let engine = engine(store, ScriptedModel::new([])).await;
    let chat = engine
        .create_chat(&actor, create_request(org, "idle"))
        .await
        .unwrap();
    wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
    drop(engine.subscribe(&actor, chat.id, None).await.unwrap());
    let mut subs = Vec::with_capacity(SUBSCRIBERS);
    let region = Region::new(GLOBAL);
    for _ in 0..SUBSCRIBERS {
        let mut s = engine.subscribe(&actor, chat.id, None).await.unwrap();
        while s.pending_snapshot() > 0 {
            s.next().await.unwrap();
        }
        subs.push(s);
    }
    let change = region.change();
    let net = change
        .bytes_allocated
        .saturating_sub(change.bytes_deallocated);
    println!(
        "  idle chat subscribers: {} bytes each (ChatStream + hub registration; {} subscribers)",
        net / SUBSCRIBERS,
        SUBSCRIBERS
    );
    drop(subs);
    engine.shutdown().await;
}

async fn run_all(label: &str, store: Store) {
    println!("{label}:");
    send_to_running(&store).await;
    per_step(&store).await;
    idle_subscribers(&store).await;
    store.close().await;
}

/// A store on `db` with the default pool size, as a deployment would have it.
async fn open(db: &TestDatabase) -> Store {
    let mut options = StoreOptions::new(db.url());
    options.schema = db.schema().map(str::to_owned);
    Store::connect_with(options).await.unwrap()
}

fn main() {
    tracing::subscriber::set_global_default(Counting).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The test kit's throw-away databases: removed afterwards, also if a run panics.
        let db = TestDatabase::sqlite();
        run_all("SQLite", open(&db).await).await;
        db.remove().await;
        if let Ok(url) = std::env::var("CHATD_BENCH_DATABASE_URL") {
            let db = TestDatabase::postgres(&url).await;
            run_all("PostgreSQL", open(&db).await).await;
            db.remove().await;
        }
    });
}
