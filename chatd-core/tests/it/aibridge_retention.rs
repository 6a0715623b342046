//! Retention of the AI Gateway's records (docs/ai-gateway-records.md "Retention") on SQLite
//! and PostgreSQL: the retention sweep purges the calls that started before the window
//! (one exactly at the boundary stays) with their tool usages; sessions follow the calls
//! that remain, in the listings and in spend; a backlog goes in bounded batches; 0 keeps
//! everything; the engine refuses a window outside its bounds; on PostgreSQL a session
//! written during the purge keeps its row.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::sync::Arc;

use chatd_core::store::{
    InterceptionFilter, InterceptionPageRequest, NewInterception, NewToolUsage, NewUser, Store,
    MAX_INTERCEPTION_PURGE_BATCH,
};
use chatd_core::{
    EngineConfig, EngineSettings, ErrorKind, ManualClock, RetentionSweep, Role,
    DEFAULT_AI_GATEWAY_RETENTION_DAYS, RETENTION_BATCH_SIZE,
};
use chatd_test_support::db::{fixture, on_each_backend, RawSql};
use chatd_test_support::scripted::{
    engine_with_config, fast_settings, ScriptedModel, ScriptedResolver,
};
use chrono::{DateTime, Utc};
use codersdk::Uuid;

const DAY_MICROS: i64 = 24 * 60 * 60 * 1_000_000;

/// When the tests' sweeps run.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Fast settings with the given gateway retention and no background job.
fn settings(days: u32) -> EngineSettings {
    let mut s = fast_settings();
    s.retention_interval = None;
    s.ai_gateway_retention_days = days;
    s
}

async fn sweep_with(store: &Store, days: u32) -> RetentionSweep {
    let clock = Arc::new(ManualClock::new(now()));
    let engine = engine_with_config(store, ScriptedModel::new([]), settings(days), move |c| {
        c.with_clock(clock).with_generated_titles(false)
    })
    .await;
    let report = engine.run_retention_sweep().await.unwrap().unwrap();
    engine.shutdown().await;
    assert_eq!(report.failed_steps, 0, "{report:?}");
    assert_eq!(report.ai_gateway_retention_days, days);
    report
}

/// A priced call of `user` started at `started_at` (Unix microseconds), in `session`
/// (the client's session id) when given, with `tools` tool calls.
fn call(
    user: Uuid,
    started_at: i64,
    session: Option<&str>,
    tools: usize,
    cost: i64,
) -> NewInterception {
    let mut r = NewInterception::new(Uuid::new_v4(), user, "anthropic", "anthropic");
    r.model = "claude-sonnet-4-5".into();
    r.requested_model = r.model.clone();
    r.started_at = started_at;
    r.ended_at = started_at + 1_000_000;
    r.cost_micros = Some(cost);
    r.usage.input_tokens = Some(10);
    r.client_session_id = session.map(str::to_owned);
    r.tool_calls = (0..tools)
        .map(|i| NewToolUsage {
            call_id: format!("{}-{i}", r.id),
            name: "read".into(),
            argument_bytes: 3,
        })
        .collect();
    r
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn listed(store: &Store) -> BTreeSet<Uuid> {
    store
        .list_interceptions(
            &InterceptionFilter::default(),
            InterceptionPageRequest {
                after_id: None,
                limit: 1000,
            },
        )
        .await
        .unwrap()
        .results
        .into_iter()
        .map(|r| r.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_purges_gateway_records_older_than_the_window_with_their_dependents() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let other = store
            .create_user(NewUser {
                username: "other".into(),
                name: "Other".into(),
                role: Role::Member,
            })
            .await
            .unwrap();
        let days = DEFAULT_AI_GATEWAY_RETENTION_DAYS;
        let cutoff = now().timestamp_micros() - i64::from(days) * DAY_MICROS;
        // Session s1: one call just too old, one exactly at the boundary.
        let old = call(f.user, cutoff - 1, Some("s1"), 2, 100);
        let edge = call(f.user, cutoff, Some("s1"), 1, 200);
        // Session s2: only an old call.
        let gone = call(f.user, cutoff - 10 * DAY_MICROS, Some("s2"), 0, 400);
        // A recent call in a session of its own.
        let fresh = call(f.user, now().timestamp_micros() - DAY_MICROS, None, 1, 300);
        // Another user's old call under the same client session id: their own session.
        let others = call(other.id, cutoff - DAY_MICROS, Some("s1"), 3, 800);
        store
            .record_interceptions(&[
                gone.clone(),
                others.clone(),
                old.clone(),
                edge.clone(),
                fresh.clone(),
            ])
            .await
            .unwrap();
        let everything = BTreeSet::from([old.id, edge.id, gone.id, fresh.id, others.id]);
        assert_eq!(listed(&store).await, everything);

        // 0 keeps everything.
        let report = sweep_with(&store, 0).await;
        assert_eq!(report.purged_interceptions, 0);
        assert_eq!(listed(&store).await, everything);
        assert_eq!(
            count(
                &store,
                "SELECT CAST(COUNT(*) AS BIGINT) FROM aibridge_sessions"
            )
            .await,
            4
        );

        let report = sweep_with(&store, days).await;
        assert_eq!(
            (
                report.purged_interceptions,
                report.purged_interception_tool_usages,
                report.purged_interception_sessions
            ),
            (3, 5, 2),
            "{report:?}"
        );
        assert_eq!(listed(&store).await, BTreeSet::from([edge.id, fresh.id]));
        // The purged calls' tool usages went with them; the others' stay.
        assert_eq!(
            count(
                &store,
                "SELECT CAST(COUNT(*) AS BIGINT) FROM aibridge_tool_usages"
            )
            .await,
            2
        );
        // Sessions: s2 and the other user's s1 are gone; s1 now starts at its remaining call.
        let sessions = store
            .list_interception_sessions(None, None, None, None, 100)
            .await
            .unwrap();
        let mut seen: Vec<(Uuid, String, i64, i64)> = sessions
            .sessions
            .iter()
            .map(|s| {
                (
                    s.initiator.id,
                    s.id.clone(),
                    s.interception_count,
                    s.total_cost_micros,
                )
            })
            .collect();
        seen.sort();
        let mut expected = vec![
            (f.user, "s1".to_owned(), 1, 200),
            (f.user, fresh.id.to_string(), 1, 300),
        ];
        expected.sort();
        assert_eq!(seen, expected);
        let s1_start: i64 = sqlx::query_scalar(
            "SELECT started_at FROM aibridge_sessions WHERE user_id = $1 AND session_key = 's1'",
        )
        .bind(f.user.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(s1_start, cutoff);
        // A session filter on the first call's start sees the session where it now starts.
        let before_edge = store
            .list_interception_sessions(Some(f.user), None, Some(cutoff), None, 100)
            .await
            .unwrap();
        assert!(before_edge.sessions.is_empty(), "{before_edge:?}");
        // Spend and cost reports count what remains.
        assert_eq!(store.spend_micros(f.user, 0, i64::MAX).await.unwrap(), 500);
        assert_eq!(store.spend_micros(other.id, 0, i64::MAX).await.unwrap(), 0);
        let summary = store.cost_summary(f.user, 0, i64::MAX).await.unwrap();
        assert_eq!(summary.totals.total_cost_micros, 500);
        assert_eq!(summary.totals.priced_message_count, 2);

        // Nothing more is due.
        let report = sweep_with(&store, days).await;
        assert_eq!(report.purged_interceptions, 0);
        assert_eq!(listed(&store).await, BTreeSet::from([edge.id, fresh.id]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_purged_oldest_first_in_bounded_batches() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let cutoff = now().timestamp_micros() - 60 * DAY_MICROS;
        // More than the largest batch plus one sweep batch and one: 1000 + 100 + 1.
        let backlog = MAX_INTERCEPTION_PURGE_BATCH + RETENTION_BATCH_SIZE + 1;
        let old: Vec<NewInterception> = (0..backlog)
            .map(|i| {
                let at = cutoff - 1 - i64::try_from(backlog - i).unwrap() * 1_000_000;
                call(f.user, at, Some(&format!("s{}", i / 10)), 1, 1)
            })
            .collect();
        store.record_interceptions(&old).await.unwrap();
        // A recent call in the backlog's last session, which the sweep's second batch empties
        // of its old call.
        let fresh = call(f.user, cutoff + 1, Some("s110"), 1, 1);
        store
            .record_interceptions(std::slice::from_ref(&fresh))
            .await
            .unwrap();
        let calls = "SELECT CAST(COUNT(*) AS BIGINT) FROM aibridge_interceptions";

        // A limit of 0 deletes nothing; any larger limit is capped at the largest batch.
        let none = store.purge_interceptions(cutoff, 0).await.unwrap();
        assert_eq!(none.interceptions, 0);
        let first = store.purge_interceptions(cutoff, usize::MAX).await.unwrap();
        assert_eq!(first.interceptions, MAX_INTERCEPTION_PURGE_BATCH as u64);
        assert_eq!(first.tool_usages, MAX_INTERCEPTION_PURGE_BATCH as u64);
        assert_eq!(first.sessions, (MAX_INTERCEPTION_PURGE_BATCH / 10) as u64);
        assert_eq!(
            count(&store, calls).await,
            i64::try_from(RETENTION_BATCH_SIZE + 2).unwrap()
        );
        // The oldest went first: what remains is the newest of the backlog.
        let oldest_left: i64 =
            sqlx::query_scalar("SELECT MIN(started_at) FROM aibridge_interceptions")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(oldest_left, old[MAX_INTERCEPTION_PURGE_BATCH].started_at);

        // The sweep takes the rest in batches of RETENTION_BATCH_SIZE: 100, then 1.
        let report = sweep_with(&store, 60).await;
        assert_eq!(
            report.purged_interceptions,
            u64::try_from(RETENTION_BATCH_SIZE + 1).unwrap()
        );
        assert_eq!(listed(&store).await, BTreeSet::from([fresh.id]));
        // Session s110 lost its old call and kept the fresh one.
        assert_eq!(
            count(
                &store,
                "SELECT CAST(COUNT(*) AS BIGINT) FROM aibridge_sessions"
            )
            .await,
            1
        );
    })
    .await;
}

#[tokio::test]
async fn the_engine_refuses_a_gateway_retention_outside_its_bounds() {
    on_each_backend(|store| async move {
        for (days, ok) in [
            (0, true),
            (30, false),
            (31, true),
            (3650, true),
            (3651, false),
        ] {
            let config = EngineConfig::new(
                chatd_core::StoreOptions::new("unused"),
                ScriptedResolver::new(ScriptedModel::new([])),
            )
            .with_settings(settings(days));
            match chatd_core::Engine::with_store(store.clone(), config).await {
                Ok(engine) => {
                    assert!(ok, "{days}");
                    engine.shutdown().await;
                }
                Err(e) => {
                    assert!(!ok, "{days}: {e}");
                    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                    assert!(e.to_string().contains("31 to 3650"), "{e}");
                }
            }
        }
    })
    .await;
}

/// PostgreSQL: a call written into a session while the purge empties that session of its
/// old calls. The writer holds the session row (as the recorder's upsert does); the purge
/// waits for it and then sees the new call, so the session stays, starting at the new call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_written_during_the_purge_stays_with_its_new_call() {
    on_each_backend(|store| async move {
        if store.dialect() != chatd_core::store::Dialect::Postgres {
            return;
        }
        let f = fixture(&store).await;
        let cutoff = now().timestamp_micros() - 60 * DAY_MICROS;
        let old = call(f.user, cutoff - 1, Some("s"), 0, 1);
        store.record_interceptions(&[old]).await.unwrap();
        let new_start = cutoff + DAY_MICROS;
        let mut writer = store.pool().begin().await.unwrap();
        sqlx::query(
            "INSERT INTO aibridge_interceptions (id, user_id, provider_name, provider_type, \
             api, requested_model, model, session_key, thread_root_id, started_at, ended_at, \
             client_disconnected, streamed, credential_kind, credential_hint) \
             VALUES ($1, $2, 'anthropic', 'anthropic', 'messages', 'm', 'm', 's', $1, $3, $3, \
             0, 0, 'central', '')",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(f.user.to_string())
        .bind(new_start)
        .execute(&mut *writer)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO aibridge_sessions (user_id, session_key, started_at, last_started_at) \
             VALUES ($1, 's', $2, $2) ON CONFLICT (user_id, session_key) DO UPDATE SET \
             last_started_at = excluded.last_started_at",
        )
        .bind(f.user.to_string())
        .bind(new_start)
        .execute(&mut *writer)
        .await
        .unwrap();
        let purging = tokio::spawn({
            let store = store.clone();
            async move { store.purge_interceptions(cutoff, 100).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !purging.is_finished(),
            "the purge did not wait for the session row"
        );
        writer.commit().await.unwrap();
        let purged = purging.await.unwrap().unwrap();
        assert_eq!((purged.interceptions, purged.sessions), (1, 0));
        let start: i64 = sqlx::query_scalar(
            "SELECT started_at FROM aibridge_sessions WHERE user_id = $1 AND session_key = 's'",
        )
        .bind(f.user.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(start, new_start);
        let sessions = store
            .list_interception_sessions(Some(f.user), None, None, None, 10)
            .await
            .unwrap();
        assert_eq!(sessions.sessions.len(), 1);
        assert_eq!(sessions.sessions[0].interception_count, 1);
    })
    .await;
}

/// Not a check: how long one batch and a whole backlog take (docs/ai-gateway-records.md
/// "Retention"). `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement"]
async fn measure_purging_a_gateway_backlog() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let cutoff = now().timestamp_micros() - 60 * DAY_MICROS;
        let total = 20_000_usize;
        for chunk in 0..total / 1000 {
            let calls: Vec<NewInterception> = (0..1000)
                .map(|i| {
                    let n = chunk * 1000 + i;
                    let at = cutoff - 1 - i64::try_from(total - n).unwrap() * 1_000_000;
                    call(f.user, at, Some(&format!("s{}", n / 20)), 2, 1)
                })
                .collect();
            store.record_interceptions(&calls).await.unwrap();
        }
        let started = std::time::Instant::now();
        let one = store
            .purge_interceptions(cutoff, RETENTION_BATCH_SIZE)
            .await
            .unwrap();
        let batch = started.elapsed();
        assert_eq!(one.interceptions, RETENTION_BATCH_SIZE as u64);
        let started = std::time::Instant::now();
        let report = sweep_with(&store, 60).await;
        let rest = started.elapsed();
        assert_eq!(
            report.purged_interceptions,
            (total - RETENTION_BATCH_SIZE) as u64
        );
        println!(
            "{:?}: one batch of {RETENTION_BATCH_SIZE} calls {batch:?}; the other {} in one \
             sweep {rest:?}",
            store.dialect(),
            total - RETENTION_BATCH_SIZE
        );
    })
    .await;
}
