//! AI Gateway record benchmark on PostgreSQL (docs/ai-gateway-records.md): a page of the
//! sessions listing, of the interceptions listing and one user's spend, at 200 and at
//! 200 000 stored interceptions (the baseline of the same run), with the `EXPLAIN
//! (ANALYZE, BUFFERS)` plan of the sessions page; then the recorder's write rate (records
//! handed to the sink until flushed, batched transactions).
//!
//! Run: `CHATD_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p
//! chatd-core --bench interceptions` (fresh schemas, dropped afterwards). Flags: `--sizes
//! a,b,…` (default 200,200000), `--users N` (1: every page full at both sizes), `--runs N` (timed calls per query, 30),
//! `--writes N` (records for the write rate, 20 000), `--plans` (print the plans in full).
//! Without the variable it prints a note and measures nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

#[path = "support/timing.rs"]
mod timing;
use timing::{ms, time};

use std::time::{Duration, Instant};

use chatd_core::aibridge::{
    CredentialKind, InterceptionRecord, InterceptionSink, InterceptionStart, Recorder,
    RecorderSettings, ToolUsage, WireApi,
};
use chatd_core::store::{
    session_page_statements, InterceptionFilter, InterceptionPageRequest, Store, StoreOptions,
};
use chatd_test_support::db::TestDatabase;
use codersdk::{ChatMessageUsage, Timestamp, Uuid};
use sqlx::{AnyPool, Row};

struct Args {
    sizes: Vec<i64>,
    users: i64,
    runs: usize,
    writes: usize,
    plans: bool,
}

fn args() -> Args {
    let mut a = Args {
        sizes: vec![200, 200_000],
        users: 1,
        runs: 30,
        writes: 20_000,
        plans: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--sizes" => {
                a.sizes = it
                    .next()
                    .expect("--sizes a,b")
                    .split(',')
                    .map(|s| s.parse().expect("a number"))
                    .collect()
            }
            "--users" => a.users = it.next().and_then(|v| v.parse().ok()).expect("--users N"),
            "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--writes" => a.writes = it.next().and_then(|v| v.parse().ok()).expect("--writes N"),
            "--plans" => a.plans = true,
            _ => {}
        }
    }
    a
}

const SECOND: i64 = 1_000_000;

async fn exec(pool: &AnyPool, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
}

/// `users` users and `n` interceptions a second apart ending now, runs of five calls
/// round-robin over the users; even runs share a client session, the rest are their own
/// session; every third call made two tool calls; nine in ten are priced. Session rows as
/// the recorder keeps them.
async fn fill(pool: &AnyPool, users: i64, n: i64, now: i64) {
    let started = Instant::now();
    exec(
        pool,
        &format!(
            "INSERT INTO users (id, username, name, role, created_at) \
             SELECT gen_random_uuid()::text, 'user' || i, 'User ' || i, 'member', 0 \
             FROM generate_series(1, {users}) i"
        ),
    )
    .await;
    exec(
        pool,
        "CREATE TABLE bench_users AS SELECT row_number() OVER (ORDER BY id) - 1 AS k, id \
         FROM users",
    )
    .await;
    exec(
        pool,
        &format!(
            "INSERT INTO aibridge_interceptions (id, user_id, provider_name, provider_type, api, \
             requested_model, model, client, client_session_id, session_key, thread_parent_id, \
             thread_root_id, started_at, ended_at, upstream_status, client_disconnected, \
             streamed, input_tokens, output_tokens, cost_micros, credential_kind, \
             credential_hint, prompt) \
             SELECT x.id, x.user_id, 'anthropic', 'anthropic', 'messages', 'claude-sonnet-4-5', \
             'claude-sonnet-4-5', 'claude-code', x.client_session, \
             COALESCE(x.client_session, x.id), NULL, x.id, x.at, x.at + 800000, 200, 0, 1, \
             1000 + x.i % 500, 100 + x.i % 50, \
             CASE WHEN x.i % 10 <> 3 THEN (1000 + x.i % 500) * 3 + (100 + x.i % 50) * 15 END, \
             'central', 'sk-a…wxyz', 'prompt ' || x.i \
             FROM (SELECT s.i, gen_random_uuid()::text AS id, u.id AS user_id, \
                   CASE WHEN (s.i / 5) % 2 = 0 THEN 'session-' || (s.i / 5) END AS client_session, \
                   {now} - ({n} - s.i) * {SECOND} AS at \
                   FROM generate_series(CAST(0 AS BIGINT), {last}) s(i) \
                   JOIN bench_users u ON u.k = (s.i / 5) % {users}) x ORDER BY x.at",
            last = n - 1
        ),
    )
    .await;
    exec(
        pool,
        "INSERT INTO aibridge_tool_usages (interception_id, ordinal, call_id, name, \
         argument_bytes) SELECT i.id, o, 'call_' || i.id || '_' || o, 'read_file', 100 \
         FROM aibridge_interceptions i CROSS JOIN generate_series(0, 1) o \
         WHERE i.input_tokens % 3 = 0",
    )
    .await;
    exec(
        pool,
        "INSERT INTO aibridge_sessions (user_id, session_key, started_at, last_started_at) \
         SELECT user_id, session_key, MIN(started_at), MAX(started_at) \
         FROM aibridge_interceptions GROUP BY user_id, session_key",
    )
    .await;
    exec(pool, "ANALYZE").await;
    let sessions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM aibridge_sessions")
        .fetch_one(pool)
        .await
        .unwrap();
    println!(
        "generated {n} interceptions of {users} users in {sessions} sessions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn explain(pool: &AnyPool, sql: &str, user: Option<&str>, limit: i64) -> String {
    let q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, BUFFERS) {sql}"
    )));
    let q = match user {
        Some(u) => q.bind(u.to_owned()).bind(limit),
        None => q.bind(limit),
    };
    q.fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn measure(url: &str, a: &Args, n: i64) -> Vec<(String, (f64, f64))> {
    let db = TestDatabase::postgres(url).await;
    let mut options = StoreOptions::new(db.url());
    options.schema = db.schema().map(str::to_owned);
    let store = Store::connect_with(options).await.unwrap();
    let pool = db.raw_pool().await;
    let now = chrono::Utc::now().timestamp_micros();
    fill(&pool, a.users, n, now).await;
    let user: String = sqlx::query_scalar("SELECT id FROM users ORDER BY id LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let user_id = Uuid::parse_str(&user).unwrap();
    println!("\n## {n} interceptions\n");
    for (name, sql) in session_page_statements() {
        let plan = explain(
            &pool,
            &sql,
            (name == "sessions_page_user").then_some(user.as_str()),
            101,
        )
        .await;
        let exec_time = plan
            .lines()
            .find(|l| l.starts_with("Execution Time"))
            .unwrap_or("")
            .to_owned();
        let seq = plan.lines().any(|l| l.contains("Seq Scan on aibridge"));
        println!(
            "- `{name}`: {exec_time}; sequential scan: {}",
            if seq { "YES" } else { "no" }
        );
        if a.plans {
            println!("\n```\n{plan}\n```\n");
        }
    }
    let limit = 100;
    // The cursor five pages deep, for a later page's cost.
    let mut cursor = None;
    for _ in 0..5 {
        let page = store
            .list_interception_sessions(None, None, None, cursor.as_deref(), limit)
            .await
            .unwrap();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut out = Vec::new();
    out.push((
        "sessions, first page of 100 (all users)".to_owned(),
        time(a.runs, || {
            store.list_interception_sessions(None, None, None, None, limit)
        })
        .await,
    ));
    out.push((
        "sessions, sixth page of 100 (all users, cursor)".to_owned(),
        time(a.runs, || {
            store.list_interception_sessions(None, None, None, cursor.as_deref(), limit)
        })
        .await,
    ));
    out.push((
        "sessions, first page of 100 (one user)".to_owned(),
        time(a.runs, || {
            store.list_interception_sessions(Some(user_id), None, None, None, limit)
        })
        .await,
    ));
    let filter = InterceptionFilter::default();
    out.push((
        "interceptions, first page of 100 (all users)".to_owned(),
        time(a.runs, || {
            store.list_interceptions(
                &filter,
                InterceptionPageRequest {
                    after_id: None,
                    limit,
                },
            )
        })
        .await,
    ));
    out.push((
        "spend_micros (one user, 30 days: chats + gateway)".to_owned(),
        time(a.runs, || {
            store.spend_micros(user_id, now - 30 * 86_400 * SECOND, now + SECOND)
        })
        .await,
    ));
    drop(pool);
    store.close().await;
    db.remove().await;
    out
}

fn record(user: Uuid, i: usize) -> InterceptionRecord {
    let now = Timestamp::now();
    InterceptionRecord {
        start: InterceptionStart {
            id: Uuid::new_v4(),
            user_id: user,
            provider_name: "anthropic".into(),
            provider_type: "anthropic".into(),
            api: WireApi::Messages,
            model: "claude-sonnet-4-5".into(),
            streamed: true,
            credential_kind: CredentialKind::Central,
            credential_hint: "sk-a…wxyz".into(),
            client_session_id: Some(format!("s{}", i / 10)),
            client: Some("claude-code".into()),
            correlation_id: None,
            tool_result_call_ids: if i % 2 == 1 {
                vec![format!("call_{}", i - 1)]
            } else {
                Vec::new()
            },
            prompt: Some("write the tests".into()),
            started_at: now,
        },
        model: "claude-sonnet-4-5".into(),
        ended_at: now,
        upstream_status: Some(200),
        error_kind: None,
        error_message: None,
        client_disconnected: false,
        usage: ChatMessageUsage {
            input_tokens: Some(1000),
            output_tokens: Some(100),
            ..Default::default()
        },
        tool_calls: vec![ToolUsage {
            call_id: format!("call_{i}"),
            name: "read_file".into(),
            argument_bytes: 40,
        }],
        thoughts: Vec::new(),
    }
}

/// Records handed to a recorder as fast as the loop goes (drops counted), then flushed.
async fn write_rate(url: &str, writes: usize) {
    let db = TestDatabase::postgres(url).await;
    let mut options = StoreOptions::new(db.url());
    options.schema = db.schema().map(str::to_owned);
    let store = Store::connect_with(options).await.unwrap();
    let pool = db.raw_pool().await;
    exec(
        &pool,
        "INSERT INTO users (id, username, name, role, created_at) \
         VALUES (gen_random_uuid()::text, 'writer', 'Writer', 'member', 0)",
    )
    .await;
    let user: String = sqlx::query_scalar("SELECT id FROM users LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let user = Uuid::parse_str(&user).unwrap();
    let recorder = Recorder::start(
        store.clone(),
        RecorderSettings::default().with_queue_capacity(writes),
    );
    let records: Vec<_> = (0..writes).map(|i| record(user, i)).collect();
    let t = Instant::now();
    let mut slowest = Duration::ZERO;
    for r in records {
        let call = Instant::now();
        recorder.finished(r);
        slowest = slowest.max(call.elapsed());
    }
    let handed = t.elapsed();
    recorder.flush().await;
    let total = t.elapsed();
    let stats = recorder.stats();
    println!(
        "\n## Recorder\n\n{writes} records: handed to the sink in {:.1} ms (slowest `finished` \
         {:.1} µs), all written after {:.0} ms: {:.0} records/s; recorded {}, dropped {}",
        ms(handed),
        slowest.as_secs_f64() * 1e6,
        ms(total),
        writes as f64 / total.as_secs_f64(),
        stats.recorded,
        stats.dropped
    );
    recorder.shutdown().await;
    drop(pool);
    store.close().await;
    db.remove().await;
}

fn main() {
    let a = args();
    let Ok(url) = std::env::var("CHATD_BENCH_DATABASE_URL") else {
        eprintln!(
            "CHATD_BENCH_DATABASE_URL is not set: the AI Gateway record benchmark runs on \
             PostgreSQL only"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut results = Vec::new();
        for &n in &a.sizes {
            results.push((n, measure(&url, &a, n).await));
        }
        print!("\n| call |");
        for (n, _) in &results {
            print!(" {n}: p50 ms | p90 ms |");
        }
        print!("\n|---|");
        for _ in &results {
            print!("---|---|");
        }
        println!();
        for row in 0..results[0].1.len() {
            print!("| {} |", results[0].1[row].0);
            for (_, r) in &results {
                print!(" {:.2} | {:.2} |", r[row].1 .0, r[row].1 .1);
            }
            println!();
        }
        write_rate(&url, a.writes).await;
    });
}
