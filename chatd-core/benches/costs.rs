//! Cost report benchmark on PostgreSQL: the usage-limit spend query, the cost summary and
//! the users rollup over a generated table of 1 000 000 messages, with their `EXPLAIN
//! (ANALYZE, BUFFERS)` plans, timed with the indexes of migration 0014 and then without
//! them (the baseline of the same run), beside a full-table aggregate.
//!
//! Run: `CHATD_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p
//! chatd-core --bench costs` (a fresh schema, dropped afterwards). Flags:
//! `--messages N` (default 1 000 000), `--users N` (1 000), `--chats-per-user N` (20),
//! `--runs N` (timed calls per query, 30), `--plans` (print every plan in full).
//! docs/cost-reports.md records the numbers. Without the variable it prints a note and
//! measures nothing (the queries are PostgreSQL's; SQLite runs the same SQL in the tests).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

#[path = "support/timing.rs"]
mod timing;
use timing::time;

use std::time::Instant;

use chatd_core::store::{cost_statements, Store, StoreOptions, MAX_COST_SUMMARY_CHATS};
use chatd_test_support::db::TestDatabase;
use codersdk::Uuid;
use sqlx::{AnyPool, Row};

struct Args {
    messages: i64,
    users: i64,
    chats_per_user: i64,
    runs: usize,
    plans: bool,
}

fn args() -> Args {
    let mut a = Args {
        messages: 1_000_000,
        users: 1_000,
        chats_per_user: 20,
        runs: 30,
        plans: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = || it.next().and_then(|v| v.parse::<i64>().ok());
        match flag.as_str() {
            "--messages" => a.messages = num().expect("--messages N"),
            "--users" => a.users = num().expect("--users N"),
            "--chats-per-user" => a.chats_per_user = num().expect("--chats-per-user N"),
            "--runs" => a.runs = usize::try_from(num().expect("--runs N")).unwrap(),
            "--plans" => a.plans = true,
            // `cargo bench` passes `--bench`.
            _ => {}
        }
    }
    a
}

const DAY: i64 = 86_400_000_000;

/// Chats of the heavy user.
const HEAVY_CHATS: i64 = 10;

async fn exec(pool: &AnyPool, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
}

/// Users, one organization, three model configs, `chats_per_user` chats each (every fifth
/// a sub-agent child of the chat before it), and the messages: chat k's rows a minute
/// apart from a random start in the last year, inserted in time order as a live table
/// grows, alternating user and assistant rows;
/// assistant rows carry usage, nine in ten a cost, one in seventeen soft-deleted. Beside
/// them a heavy user with a twentieth of the rows in [`HEAVY_CHATS`] chats as old as the
/// year.
async fn fill(pool: &AnyPool, a: &Args, now: i64) {
    let started = Instant::now();
    let org = Uuid::new_v4();
    exec(
        pool,
        &format!("INSERT INTO organizations (id, name, created_at) VALUES ('{org}', 'bench', 0)"),
    )
    .await;
    exec(
        pool,
        &format!(
            "INSERT INTO users (id, username, name, role, created_at) \
             SELECT gen_random_uuid()::text, 'user' || i, 'User ' || i, 'member', 0 \
             FROM generate_series(1, {}) i",
            a.users
        ),
    )
    .await;
    exec(
        pool,
        "INSERT INTO model_configs (id, provider, model, display_name, created_at, updated_at) \
         SELECT gen_random_uuid()::text, 'openai', 'model-' || i, 'Model ' || i, 0, 0 \
         FROM generate_series(0, 2) i",
    )
    .await;
    exec(
        pool,
        &format!(
            "CREATE TABLE bench_chats AS \
             SELECT row_number() OVER () AS idx, gen_random_uuid()::text AS id, u.id AS owner, \
             n, {now} - {hour} - CAST(random() * {year} AS BIGINT) AS base \
             FROM users u CROSS JOIN generate_series(1, {per}) n",
            year = 365 * DAY,
            hour = DAY / 24,
            per = a.chats_per_user
        ),
    )
    .await;
    exec(pool, "CREATE UNIQUE INDEX ON bench_chats (idx)").await;
    exec(
        pool,
        &format!(
            "INSERT INTO chats (id, organization_id, owner_id, root_chat_id, \
             last_model_config_id, title, status, client_type, created_at, updated_at) \
             SELECT b.id, '{org}', b.owner, b.id, '{org}', 'chat ' || b.idx, 'waiting', 'api', \
             b.base, b.base FROM bench_chats b"
        ),
    )
    .await;
    exec(
        pool,
        "UPDATE chats c SET parent_chat_id = p.id, root_chat_id = p.id \
         FROM bench_chats b JOIN bench_chats p ON p.owner = b.owner AND p.n = b.n - 1 \
         WHERE c.id = b.id AND b.n % 5 = 0",
    )
    .await;
    // The heavy user: HEAVY_CHATS long chats whose rows spread evenly over the year, a
    // twentieth of all messages.
    exec(
        pool,
        "INSERT INTO users (id, username, name, role, created_at) \
         VALUES (gen_random_uuid()::text, 'heavy', 'Heavy User', 'member', 0)",
    )
    .await;
    exec(
        pool,
        &format!(
            "CREATE TABLE bench_heavy AS SELECT n AS idx, gen_random_uuid()::text AS id, \
             (SELECT id FROM users WHERE username = 'heavy') AS owner \
             FROM generate_series(1, {HEAVY_CHATS}) n"
        ),
    )
    .await;
    exec(
        pool,
        &format!(
            "INSERT INTO chats (id, organization_id, owner_id, root_chat_id, \
             last_model_config_id, title, status, client_type, created_at, updated_at) \
             SELECT h.id, '{org}', h.owner, h.id, '{org}', 'long chat ' || h.idx, 'waiting', \
             'api', 0, 0 FROM bench_heavy h"
        ),
    )
    .await;
    let chats = a.users * a.chats_per_user;
    let heavy = a.messages / 20;
    // One row's columns from its number `s.i`, chat `chat` and time `at`.
    let columns = |chat: &str, at: &str| {
        format!(
            "{chat} AS chat_id, CASE WHEN s.i % 2 = 1 THEN mc.id END AS model_config_id, \
             CASE WHEN s.i % 2 = 1 THEN 'assistant' ELSE 'user' END AS role, \
             CASE WHEN s.i % 17 = 0 THEN 1 ELSE 0 END AS deleted, \
             CASE WHEN s.i % 2 = 1 THEN 1000 + s.i % 500 END AS input_tokens, \
             CASE WHEN s.i % 2 = 1 THEN 100 + s.i % 50 END AS output_tokens, \
             CASE WHEN s.i % 2 = 1 THEN s.i % 300 END AS cache_read_tokens, \
             CASE WHEN s.i % 2 = 1 AND s.i % 10 <> 3 \
                  THEN (1000 + s.i % 500) * 3 + (100 + s.i % 50) * 15 END AS total_cost_micros, \
             CASE WHEN s.i % 2 = 1 THEN 500 + s.i % 1000 END AS runtime_ms, {at} AS created_at"
        )
    };
    let models =
        "JOIN (SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM model_configs) mc \
                  ON mc.k = (s.i / 2) % 3";
    let per_heavy_chat = (heavy / HEAVY_CHATS).max(1);
    exec(
        pool,
        &format!(
            "INSERT INTO chat_messages (chat_id, model_config_id, role, deleted, input_tokens, \
             output_tokens, cache_read_tokens, total_cost_micros, runtime_ms, created_at, \
             content, content_version, visibility) \
             SELECT x.*, '[]', 1, 'both' FROM ( \
               SELECT {general} FROM generate_series(CAST(0 AS BIGINT), {last}) s(i) \
               JOIN bench_chats b ON b.idx = s.i % {chats} + 1 {models} \
               UNION ALL \
               SELECT {long} FROM generate_series(CAST(0 AS BIGINT), {heavy_last}) s(i) \
               JOIN bench_heavy h ON h.idx = s.i % {HEAVY_CHATS} + 1 {models} \
             ) x ORDER BY x.created_at",
            general = columns("b.id", &format!("b.base + (s.i / {chats}) * 60000000")),
            long = columns(
                "h.id",
                &format!(
                    "{now} - {hour} - {year} + (s.i / {HEAVY_CHATS}) * {step}",
                    hour = DAY / 24,
                    year = 365 * DAY,
                    step = 365 * DAY / per_heavy_chat
                )
            ),
            last = a.messages - heavy - 1,
            heavy_last = heavy - 1,
        ),
    )
    .await;
    exec(pool, "ANALYZE").await;
    println!(
        "generated {} users and a heavy one, {} chats, {} messages in {:.1} s",
        a.users,
        chats + HEAVY_CHATS,
        a.messages,
        started.elapsed().as_secs_f64()
    );
}

/// The plan of `name`'s statement with the benchmark's parameters.
async fn explain(
    pool: &AnyPool,
    name: &str,
    sql: &str,
    owner: &str,
    start: i64,
    end: i64,
) -> String {
    let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {sql}");
    let q = sqlx::query(sqlx::AssertSqlSafe(sql));
    let q = if name == "by_user" {
        q.bind(start).bind(end).bind("").bind(10_i64).bind(0_i64)
    } else {
        let q = q.bind(owner.to_owned()).bind(start).bind(end);
        if name == "by_chat" {
            q.bind(MAX_COST_SUMMARY_CHATS)
        } else {
            q
        }
    };
    let rows = q.fetch_all(pool).await.unwrap();
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// p50 / p90 of one user's calls.
struct PerUser {
    spend: (f64, f64),
    summary: (f64, f64),
}

struct Measured {
    users: Vec<PerUser>,
    users_30: (f64, f64),
    users_366: (f64, f64),
}

async fn measure(
    label: &str,
    store: &Store,
    pool: &AnyPool,
    a: &Args,
    owners: &[(&str, Uuid)],
    now: i64,
) -> Measured {
    let (start, end) = (now - 30 * DAY, now);
    println!("\n## {label}");
    for (i, (who, owner)) in owners.iter().enumerate() {
        println!("\n### Plans for the {who} user\n");
        let owner_text = owner.to_string();
        for (name, sql) in cost_statements() {
            // The rollup does not depend on the user: once.
            if name == "by_user" && i > 0 {
                continue;
            }
            let plan = explain(pool, name, &sql, &owner_text, start, end).await;
            let seq = plan
                .lines()
                .any(|l| l.contains("Seq Scan on chat_messages"));
            let exec_time = plan
                .lines()
                .find(|l| l.starts_with("Execution Time"))
                .unwrap_or("")
                .to_owned();
            println!(
                "- `{name}`: {exec_time}; sequential scan of chat_messages: {}",
                if seq { "YES" } else { "no" }
            );
            if a.plans {
                println!("\n```\n{plan}\n```\n");
            }
        }
    }
    let mut users = Vec::new();
    for (_, owner) in owners {
        let owner = *owner;
        users.push(PerUser {
            spend: time(a.runs, || store.spend_micros(owner, start, end)).await,
            summary: time(a.runs, || store.cost_summary(owner, start, end)).await,
        });
    }
    let m = Measured {
        users,
        users_30: time(a.runs, || store.cost_by_user(start, end, None, 10, 0)).await,
        users_366: time(a.runs.min(5), || {
            store.cost_by_user(now - 366 * DAY, end, None, 10, 0)
        })
        .await,
    };
    println!("\n| call | p50 ms | p90 ms |\n|---|---|---|");
    for ((who, _), u) in owners.iter().zip(&m.users) {
        println!(
            "| `spend_micros` ({who} user, 30 days) | {:.2} | {:.2} |\n\
             | `cost_summary` ({who} user, 30 days: 3 statements, one snapshot) | {:.2} | {:.2} |",
            u.spend.0, u.spend.1, u.summary.0, u.summary.1
        );
    }
    println!(
        "| `cost_by_user` (all users, 30 days, first page) | {:.2} | {:.2} |\n\
         | `cost_by_user` (all users, 366 days) | {:.2} | {:.2} |",
        m.users_30.0, m.users_30.1, m.users_366.0, m.users_366.1
    );
    m
}

/// Messages of `owner` in all and in the last 30 days.
async fn rows_of(pool: &AnyPool, owner: Uuid, now: i64) -> (i64, i64) {
    let row = sqlx::query(
        "SELECT COUNT(*) AS all_rows, \
         COUNT(CASE WHEN m.created_at >= $2 AND m.created_at < $3 THEN 1 END) AS recent \
         FROM chat_messages m JOIN chats c ON c.id = m.chat_id WHERE c.owner_id = $1",
    )
    .bind(owner.to_string())
    .bind(now - 30 * DAY)
    .bind(now)
    .fetch_one(pool)
    .await
    .unwrap();
    (
        row.try_get("all_rows").unwrap(),
        row.try_get("recent").unwrap(),
    )
}

fn main() {
    let a = args();
    let Ok(url) = std::env::var("CHATD_BENCH_DATABASE_URL") else {
        eprintln!(
            "CHATD_BENCH_DATABASE_URL is not set: the cost benchmark runs on PostgreSQL only"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = TestDatabase::postgres(&url).await;
        let mut options = StoreOptions::new(db.url());
        options.schema = db.schema().map(str::to_owned);
        let store = Store::connect_with(options).await.unwrap();
        let pool = db.raw_pool().await;
        let now = chrono::Utc::now().timestamp_micros();
        fill(&pool, &a, now).await;
        // The busiest ordinary user of the last 30 days: the summary's worst case among them.
        let owner: String = sqlx::query_scalar(
            "SELECT c.owner_id FROM chat_messages m JOIN chats c ON c.id = m.chat_id \
             JOIN users u ON u.id = c.owner_id \
             WHERE m.created_at >= $1 AND m.created_at < $2 AND u.username <> 'heavy' \
             GROUP BY c.owner_id ORDER BY COUNT(*) DESC, c.owner_id LIMIT 1",
        )
        .bind(now - 30 * DAY)
        .bind(now)
        .fetch_one(&pool)
        .await
        .unwrap();
        let typical = Uuid::parse_str(&owner).unwrap();
        let heavy: String = sqlx::query_scalar("SELECT id FROM users WHERE username = 'heavy'")
            .fetch_one(&pool)
            .await
            .unwrap();
        let heavy = Uuid::parse_str(&heavy).unwrap();
        let owners = [("typical", typical), ("heavy", heavy)];
        for (who, owner) in owners {
            let (all, recent) = rows_of(&pool, owner, now).await;
            println!(
                "{who} user: {all} of {} messages, {recent} in the last 30 days",
                a.messages
            );
        }

        let full = time(a.runs.min(5), || {
            sqlx::query("SELECT CAST(COALESCE(SUM(total_cost_micros), 0) AS BIGINT) FROM chat_messages")
                .fetch_one(&pool)
        })
        .await;
        println!("full-table aggregate (Σ cost of every message): p50 {:.2} ms", full.0);

        let with = measure("With the indexes of migration 0014", &store, &pool, &a, &owners, now).await;
        exec(&pool, "DROP INDEX chat_messages_chat_created_idx").await;
        exec(&pool, "DROP INDEX chat_messages_created_idx").await;
        exec(&pool, "ANALYZE chat_messages").await;
        // The store's prepared statements were planned with the indexes: a new store.
        store.close().await;
        let mut options = StoreOptions::new(db.url());
        options.schema = db.schema().map(str::to_owned);
        let store = Store::connect_with(options).await.unwrap();
        let without = measure("Baseline: without them (chat_messages (chat_id, id) only)", &store, &pool, &a, &owners, now).await;
        println!(
            "\n| call | with (p50 ms) | without (p50 ms) | without / with | full-table aggregate / with |\n|---|---|---|---|---|"
        );
        let mut rows = Vec::new();
        for (i, (who, _)) in owners.iter().enumerate() {
            let (w, wo) = (&with.users[i], &without.users[i]);
            rows.push((format!("spend_micros, {who} user"), w.spend, wo.spend));
            rows.push((format!("cost_summary, {who} user"), w.summary, wo.summary));
        }
        rows.push(("cost_by_user 30 days".to_owned(), with.users_30, without.users_30));
        rows.push(("cost_by_user 366 days".to_owned(), with.users_366, without.users_366));
        for (name, w, wo) in rows {
            println!(
                "| {name} | {:.2} | {:.2} | {:.1}× | {:.1}× |",
                w.0,
                wo.0,
                wo.0 / w.0,
                full.0 / w.0
            );
        }
        store.close().await;
        pool.close().await;
        db.remove().await;
    });
}
