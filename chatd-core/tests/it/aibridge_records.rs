//! The AI Gateway's records (docs/ai-gateway-records.md) on SQLite and PostgreSQL: records
//! handed to the recorder land with their exact cost (NULL unpriced), thread links and
//! sessions; the listings' filters, paging and permissions; the queue-full edge; prompt
//! opt-out; gateway spend in usage limits and cost reports; the flush at shutdown. The
//! structured logs are tested in `tests/aibridge_logs.rs`, a binary of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chatd_core::aibridge::{
    CredentialKind, InterceptionRecord, InterceptionSink, InterceptionStart, Recorder,
    RecorderSettings, ToolUsage, WireApi,
};
use chatd_core::store::{NewUser, Store, GATEWAY_MODEL_DISPLAY_SUFFIX};
use chatd_core::{Actor, Admin, ErrorKind, Keyring, Role, SecretKey};
use chatd_test_support::db::{fixture, on_each_backend, Fixture};
use chatd_test_support::scripted::{create_request, engine_with_config, fast_settings};
use chatd_test_support::scripted::{Reply, ScriptedModel};
use chatprovider::ProviderApiKeys;
use chrono::{TimeZone, Utc};
use codersdk::{
    parse_aibridge_interceptions_query, parse_aibridge_sessions_query, ChatMessageUsage,
    ChatUsageLimitPeriod, Timestamp, Uuid,
};

/// 2026-01-01T00:00:00Z plus `secs` seconds.
fn at(secs: i64) -> Timestamp {
    Timestamp(Utc.timestamp_opt(1_767_225_600 + secs, 0).unwrap())
}

fn usage(input: i64, output: i64) -> ChatMessageUsage {
    ChatMessageUsage {
        input_tokens: Some(input),
        output_tokens: Some(output),
        total_tokens: Some(input + output),
        ..Default::default()
    }
}

/// A record of `user`'s call to the `anthropic` instance at `secs`, model
/// `claude-sonnet-4-5` ($3 / $15 per million tokens).
fn record(user: Uuid, secs: i64) -> InterceptionRecord {
    let start = InterceptionStart {
        id: Uuid::new_v4(),
        user_id: user,
        provider_name: "anthropic".into(),
        provider_type: "anthropic".into(),
        api: WireApi::Messages,
        model: "claude-sonnet-4-5".into(),
        streamed: true,
        credential_kind: CredentialKind::Central,
        credential_hint: "sk-a…wxyz".into(),
        client_session_id: None,
        client: Some("claude-code".into()),
        correlation_id: None,
        tool_result_call_ids: Vec::new(),
        prompt: Some(format!("prompt at {secs}")),
        started_at: at(secs),
    };
    InterceptionRecord {
        model: "claude-sonnet-4-5".into(),
        ended_at: at(secs + 1),
        upstream_status: Some(200),
        error_kind: None,
        error_message: None,
        client_disconnected: false,
        usage: usage(1000, 500),
        tool_calls: Vec::new(),
        thoughts: Vec::new(),
        start,
    }
}

/// 1000 input × $3/M + 500 output × $15/M.
const COST: i64 = 3_000 + 7_500;

fn tool(call_id: &str, name: &str, bytes: u64) -> ToolUsage {
    ToolUsage {
        call_id: call_id.into(),
        name: name.into(),
        argument_bytes: bytes,
    }
}

async fn member(store: &Store, f: &Fixture, username: &str) -> Uuid {
    let u = store
        .create_user(NewUser {
            username: username.into(),
            name: username.to_uppercase(),
            role: Role::Member,
        })
        .await
        .unwrap();
    store.add_member(f.org, u.id).await.unwrap();
    u.id
}

fn admin_of(store: &Store) -> Admin {
    let keyring = Keyring::new("test", SecretKey::generate().unwrap()).unwrap();
    Admin::new(store.clone(), Arc::new(keyring), ProviderApiKeys::new())
}

fn all(admin: bool) -> Actor {
    Actor {
        user_id: Uuid::new_v4(),
        admin,
    }
}

async fn list(
    admin: &Admin,
    actor: &Actor,
    q: &[(&str, &str)],
) -> codersdk::AIBridgeListInterceptionsResponse {
    let get = |k: &str| q.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let query = parse_aibridge_interceptions_query(
        get("initiator"),
        get("provider"),
        get("model"),
        get("started_after"),
        get("started_before"),
        get("after_id"),
        get("limit"),
    )
    .unwrap();
    admin
        .list_aibridge_interceptions(actor, &query)
        .await
        .unwrap()
}

#[tokio::test]
async fn records_land_with_exact_cost_and_null_when_unpriced() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let recorder = Recorder::start(store.clone(), RecorderSettings::default());
        let priced = record(f.user, 0);
        let mut unpriced = record(f.user, 10);
        unpriced.model = "no-such-model-anywhere".into();
        let mut no_usage = record(f.user, 20);
        no_usage.usage = ChatMessageUsage::default();
        no_usage.upstream_status = Some(429);
        no_usage.error_kind = Some(codersdk::ChatErrorKind::RateLimit);
        no_usage.error_message = Some("slow down".into());
        let ids = [priced.start.id, unpriced.start.id, no_usage.start.id];
        for r in [priced, unpriced, no_usage] {
            recorder.started(&r.start);
            recorder.finished(r);
        }
        recorder.flush().await;
        assert_eq!(recorder.stats().recorded, 3);
        let admin = admin_of(&store);
        let page = list(&admin, &Actor::user(f.user), &[]).await;
        let by_id: BTreeMap<Uuid, _> = page.results.iter().map(|r| (r.id, r)).collect();
        let p = by_id[&ids[0]];
        assert_eq!(p.total_cost_micros, Some(COST));
        assert_eq!(p.token_usages[0].input_tokens, 1000);
        assert_eq!(p.token_usages[0].output_tokens, 500);
        assert_eq!(p.credential_kind, "central");
        assert_eq!(p.credential_hint, "sk-a…wxyz");
        assert_eq!(p.provider, "anthropic");
        assert_eq!(p.api, "messages");
        assert_eq!(p.status, Some(200));
        assert_eq!(p.user_prompts[0].prompt, "prompt at 0");
        assert_eq!(p.initiator.username, "alice");
        assert_eq!(by_id[&ids[1]].total_cost_micros, None);
        assert_eq!(by_id[&ids[1]].model, "no-such-model-anywhere");
        let failed = by_id[&ids[2]];
        assert_eq!(failed.total_cost_micros, None);
        assert!(failed.token_usages.is_empty());
        assert_eq!(failed.status, Some(429));
        let err = failed.error.as_ref().unwrap();
        assert_eq!(
            (err.kind.as_str(), err.message.as_str()),
            ("rate_limit", "slow down")
        );
        recorder.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn tool_results_link_threads_to_the_call_that_made_them() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let bob = member(&store, &f, "bob").await;
        let recorder = Recorder::start(store.clone(), RecorderSettings::default());
        let mut a = record(f.user, 0);
        a.tool_calls = vec![tool("call_1", "read_file", 42), tool("call_2", "ls", 2)];
        let mut b = record(f.user, 10);
        b.start.tool_result_call_ids = vec!["call_2".into()];
        b.tool_calls = vec![tool("call_3", "edit", 7)];
        // a and b go in one batch (b linked to a inside it); c and the other user's call
        // in a later one (linked through the stored rows).
        let (a_id, b_id) = (a.start.id, b.start.id);
        recorder.finished(a);
        recorder.finished(b);
        recorder.flush().await;
        let mut c = record(f.user, 20);
        c.start.tool_result_call_ids = vec!["unknown".into(), "call_3".into()];
        // Another user's request naming the same call id is not linked to alice's thread.
        let mut other = record(bob, 30);
        other.start.tool_result_call_ids = vec!["call_1".into()];
        let (c_id, other_id) = (c.start.id, other.start.id);
        recorder.finished(c);
        recorder.finished(other);
        recorder.flush().await;
        let admin = admin_of(&store);
        let page = list(&admin, &all(true), &[]).await;
        let by_id: BTreeMap<Uuid, _> = page.results.iter().map(|r| (r.id, r)).collect();
        assert_eq!(by_id[&a_id].thread_parent_id, None);
        assert_eq!(by_id[&a_id].thread_root_id, a_id);
        assert_eq!(by_id[&b_id].thread_parent_id, Some(a_id));
        assert_eq!(by_id[&b_id].thread_root_id, a_id);
        assert_eq!(by_id[&c_id].thread_parent_id, Some(b_id));
        assert_eq!(by_id[&c_id].thread_root_id, a_id);
        assert_eq!(by_id[&other_id].thread_parent_id, None);
        assert_eq!(by_id[&other_id].thread_root_id, other_id);
        // One thread, one session, keyed by its root.
        assert_eq!(by_id[&c_id].session_id, a_id.to_string());
        let tools: Vec<_> = by_id[&a_id]
            .tool_usages
            .iter()
            .map(|t| (t.call_id.as_str(), t.tool.as_str(), t.argument_bytes))
            .collect();
        assert_eq!(tools, [("call_1", "read_file", 42), ("call_2", "ls", 2)]);
        recorder.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn sessions_group_by_client_session_then_thread_and_page_first() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let recorder = Recorder::start(store.clone(), RecorderSettings::default());
        // Session "s1": two calls, one with a tool call, the second also unpriced.
        let mut s1a = record(f.user, 0);
        s1a.start.client_session_id = Some("s1".into());
        s1a.tool_calls = vec![tool("t1", "grep", 3)];
        let mut s1b = record(f.user, 100);
        s1b.start.client_session_id = Some("s1".into());
        s1b.model = "unpriced-model".into();
        s1b.start.prompt = Some("the last".into());
        // A thread without a client session: root then child.
        let mut root = record(f.user, 200);
        root.tool_calls = vec![tool("t2", "ls", 1)];
        let mut child = record(f.user, 300);
        child.start.tool_result_call_ids = vec!["t2".into()];
        child.start.prompt = None;
        // A lone call.
        let lone = record(f.user, 400);
        let (root_id, lone_id) = (root.start.id, lone.start.id);
        for r in [s1a, s1b, root] {
            recorder.finished(r);
        }
        recorder.flush().await;
        recorder.finished(child);
        recorder.finished(lone);
        recorder.flush().await;
        let admin = admin_of(&store);
        let actor = Actor::user(f.user);
        let q = parse_aibridge_sessions_query(None, None, None, None, Some("2")).unwrap();
        let first = admin.list_aibridge_sessions(&actor, &q).await.unwrap();
        let ids: Vec<_> = first.sessions.iter().map(|s| s.id.clone()).collect();
        assert_eq!(ids, [lone_id.to_string(), root_id.to_string()]);
        let thread = &first.sessions[1];
        assert_eq!(thread.interception_count, 2);
        assert_eq!(thread.threads, 1);
        assert_eq!(thread.tool_call_count, 1);
        assert_eq!(thread.total_cost_micros, 2 * COST);
        assert_eq!(thread.started_at, at(200));
        assert_eq!(thread.ended_at, at(301));
        assert_eq!(thread.last_prompt.as_deref(), Some("prompt at 200"));
        let cursor = first.next_cursor.clone().unwrap();
        let q = parse_aibridge_sessions_query(None, None, None, Some(&cursor), Some("2")).unwrap();
        let second = admin.list_aibridge_sessions(&actor, &q).await.unwrap();
        assert_eq!(second.sessions.len(), 1);
        assert_eq!(second.next_cursor, None);
        let s1 = &second.sessions[0];
        assert_eq!(s1.id, "s1");
        assert_eq!(s1.interception_count, 2);
        assert_eq!(s1.unpriced_count, 1);
        assert_eq!(s1.total_cost_micros, COST);
        assert_eq!(s1.models, ["claude-sonnet-4-5", "unpriced-model"]);
        assert_eq!(s1.providers, ["anthropic"]);
        assert_eq!(s1.token_usage_summary.input_tokens, 2000);
        assert_eq!(s1.last_prompt.as_deref(), Some("the last"));
        assert_eq!(s1.initiator.username, "alice");
        // The time window applies to the session's first call.
        let q = parse_aibridge_sessions_query(None, Some(&at(150).to_string()), None, None, None)
            .unwrap();
        let late = admin.list_aibridge_sessions(&actor, &q).await.unwrap();
        assert_eq!(late.sessions.len(), 2);
        // A cursor the server did not give out is a 400.
        let q = parse_aibridge_sessions_query(None, None, None, Some("bm90LWEtY3Vyc29y"), None)
            .unwrap();
        let err = admin.list_aibridge_sessions(&actor, &q).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        recorder.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_listing_filters_pages_and_keeps_members_to_their_own() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let bob = member(&store, &f, "bob").await;
        let recorder = Recorder::start(store.clone(), RecorderSettings::default());
        let mut ids = Vec::new();
        for i in 0..5 {
            let mut r = record(f.user, i * 10);
            if i == 4 {
                r.start.provider_name = "anthropic-corp".into();
                r.model = "claude-haiku-4-5".into();
            }
            ids.push(r.start.id);
            recorder.finished(r);
        }
        let bobs = record(bob, 5);
        let bob_id = bobs.start.id;
        recorder.finished(bobs);
        recorder.flush().await;
        let admin = admin_of(&store);
        let alice = Actor::user(f.user);
        // A member sees only their own, newest first.
        let page = list(&admin, &alice, &[]).await;
        let got: Vec<_> = page.results.iter().map(|r| r.id).collect();
        let mut want = ids.clone();
        want.reverse();
        assert_eq!(got, want);
        // Asking for another user's is forbidden, before any lookup.
        let q = parse_aibridge_interceptions_query(Some("bob"), None, None, None, None, None, None)
            .unwrap();
        let err = admin
            .list_aibridge_interceptions(&alice, &q)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        // Another user's interception is no cursor for a member.
        let bob_text = bob_id.to_string();
        let q =
            parse_aibridge_interceptions_query(None, None, None, None, None, Some(&bob_text), None)
                .unwrap();
        let err = admin
            .list_aibridge_interceptions(&alice, &q)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        // Administrators see everyone, and filter by user, provider, model and time.
        let everyone = list(&admin, &all(true), &[]).await;
        assert_eq!(everyone.results.len(), 6);
        let bobs = list(&admin, &all(true), &[("initiator", "bob")]).await;
        assert_eq!(
            bobs.results.iter().map(|r| r.id).collect::<Vec<_>>(),
            [bob_id]
        );
        let corp = list(&admin, &all(true), &[("provider", "anthropic-corp")]).await;
        assert_eq!(corp.results.len(), 1);
        let haiku = list(&admin, &all(true), &[("model", "claude-haiku-4-5")]).await;
        assert_eq!(haiku.results[0].id, ids[4]);
        let (a, b) = (at(10).to_string(), at(30).to_string());
        let window = list(
            &admin,
            &alice,
            &[("started_after", &a), ("started_before", &b)],
        )
        .await;
        assert_eq!(
            window.results.iter().map(|r| r.id).collect::<Vec<_>>(),
            [ids[2], ids[1]]
        );
        // Paging by after_id: 2 + 2 + 1, the last page without a cursor.
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q = vec![("limit", "2")];
            if let Some(a) = after.as_deref() {
                q.push(("after_id", a));
            }
            let page = list(&admin, &alice, &q).await;
            seen.extend(page.results.iter().map(|r| r.id));
            match page.next_after_id {
                Some(id) => after = Some(id.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, want);
        recorder.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_blocking() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let recorder = Recorder::start(
            store.clone(),
            RecorderSettings::default().with_queue_capacity(1),
        );
        // The test's runtime runs one task at a time: the writer cannot take the first
        // record before the second arrives, so the second finds the queue full. `finished`
        // is synchronous, so it cannot wait for room.
        let first = record(f.user, 0);
        let first_id = first.start.id;
        recorder.finished(first);
        recorder.finished(record(f.user, 1));
        let stats = recorder.stats();
        assert_eq!((stats.dropped, stats.queued), (1, 1));
        recorder.flush().await;
        let stats = recorder.stats();
        assert_eq!((stats.recorded, stats.dropped, stats.queued), (1, 1, 0));
        let page = list(&admin_of(&store), &Actor::user(f.user), &[]).await;
        assert_eq!(
            page.results.iter().map(|r| r.id).collect::<Vec<_>>(),
            [first_id]
        );
        recorder.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn prompts_are_bounded_and_can_be_turned_off() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let bounded = Recorder::start(
            store.clone(),
            RecorderSettings::default().with_max_prompt_bytes(4),
        );
        let mut long = record(f.user, 0);
        long.start.prompt = Some("héllo".into());
        let long_id = long.start.id;
        bounded.finished(long);
        bounded.shutdown().await;
        let off = Recorder::start(
            store.clone(),
            RecorderSettings::default().with_record_prompts(false),
        );
        let quiet = record(f.user, 10);
        let quiet_id = quiet.start.id;
        off.finished(quiet);
        off.shutdown().await;
        let page = list(&admin_of(&store), &Actor::user(f.user), &[]).await;
        let by_id: BTreeMap<Uuid, _> = page.results.iter().map(|r| (r.id, r)).collect();
        // Four bytes, cut before the two-byte "é" would be split.
        assert_eq!(by_id[&long_id].user_prompts[0].prompt, "hél");
        assert!(by_id[&quiet_id].user_prompts.is_empty());
    })
    .await;
}

#[tokio::test]
async fn shutdown_writes_what_is_queued_and_drops_what_comes_after() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let recorder = Recorder::start(
            store.clone(),
            RecorderSettings::default().with_batch_size(3),
        );
        for i in 0..10 {
            recorder.finished(record(f.user, i));
        }
        recorder.shutdown().await;
        assert_eq!(recorder.stats().recorded, 10);
        recorder.finished(record(f.user, 99));
        assert_eq!(recorder.stats().dropped, 1);
        // A flush after shutdown returns at once.
        recorder.flush().await;
        let page = list(&admin_of(&store), &Actor::user(f.user), &[("limit", "100")]).await;
        assert_eq!(page.results.len(), 10);
    })
    .await;
}

#[tokio::test]
async fn gateway_spend_counts_toward_the_usage_limit_and_the_cost_reports() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let recorder = Recorder::start(store.clone(), RecorderSettings::default());
        let now = Utc::now();
        let mut r = record(f.user, 0);
        r.start.started_at = Timestamp(now - chrono::Duration::seconds(5));
        r.ended_at = Timestamp(now - chrono::Duration::seconds(4));
        recorder.finished(r);
        let mut unpriced = record(f.user, 0);
        unpriced.start.started_at = Timestamp(now - chrono::Duration::seconds(3));
        unpriced.ended_at = Timestamp(now - chrono::Duration::seconds(2));
        unpriced.model = "unpriced-model".into();
        recorder.finished(unpriced);
        recorder.flush().await;
        let start = (now - chrono::Duration::days(1)).timestamp_micros();
        let end = (now + chrono::Duration::days(1)).timestamp_micros();
        assert_eq!(store.spend_micros(f.user, start, end).await.unwrap(), COST);
        let inputs = store.usage_limit_inputs(f.user, start, end).await.unwrap();
        assert_eq!(inputs.spent_micros, COST);
        // The cost summary: totals and one by_model entry per (instance, model).
        let summary = store.cost_summary(f.user, start, end).await.unwrap();
        assert_eq!(summary.totals.total_cost_micros, COST);
        assert_eq!(summary.totals.priced_message_count, 1);
        assert_eq!(summary.totals.unpriced_message_count, 1);
        assert_eq!(summary.totals.totals.total_input_tokens, 2000);
        assert_eq!(summary.totals.totals.total_runtime_ms, 2000);
        let models: Vec<_> = summary
            .by_model
            .iter()
            .map(|m| {
                (
                    m.display_name.clone(),
                    m.provider.clone(),
                    m.total_cost_micros,
                    m.model_config_id,
                )
            })
            .collect();
        assert_eq!(
            models,
            [
                (
                    format!("claude-sonnet-4-5{GATEWAY_MODEL_DISPLAY_SUFFIX} (anthropic)"),
                    "anthropic".to_owned(),
                    COST,
                    Uuid::nil()
                ),
                (
                    format!("unpriced-model{GATEWAY_MODEL_DISPLAY_SUFFIX} (anthropic)"),
                    "anthropic".to_owned(),
                    0,
                    Uuid::nil()
                ),
            ]
        );
        assert!(summary.by_chat.is_empty());
        let users = store.cost_by_user(start, end, None, 10, 0).await.unwrap();
        assert_eq!(users.count, 1);
        assert_eq!(users.users[0].total_cost_micros, COST);
        assert_eq!(users.users[0].message_count, 2);
        assert_eq!(users.users[0].chat_count, 0);
        // Admission: a limit below the gateway spend refuses new chats.
        store
            .set_usage_limit_config(Some(COST - 1), ChatUsageLimitPeriod::Month)
            .await
            .unwrap();
        let engine = engine_with_config(
            &store,
            ScriptedModel::new([Reply::Text("ok".into())]),
            fast_settings(),
            |c| c.with_generated_titles(false).with_turn_summaries(false),
        )
        .await;
        let err = engine
            .create_chat(&Actor::user(f.user), create_request(f.org, "over"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UsageLimit);
        engine.shutdown().await;
        recorder.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_large_batch_spans_several_multi_row_inserts() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let recorder = Recorder::start(store.clone(), RecorderSettings::default());
        // 150 records in one batch (the writer cannot run before the flush): three
        // interception inserts of up to 64 rows, two tool-usage inserts of up to 256, the
        // sessions of 30 client sessions, and links inside the batch.
        let mut ids = Vec::new();
        for i in 0..150_i64 {
            let mut r = record(f.user, i);
            r.start.client_session_id = Some(format!("s{}", i / 5));
            r.tool_calls = vec![
                tool(&format!("c{i}a"), "read", 1),
                tool(&format!("c{i}b"), "write", 2),
            ];
            if i > 0 {
                r.start.tool_result_call_ids = vec![format!("c{}b", i - 1)];
            }
            ids.push(r.start.id);
            recorder.finished(r);
        }
        recorder.flush().await;
        assert_eq!(recorder.stats().recorded, 150);
        let page = list(
            &admin_of(&store),
            &Actor::user(f.user),
            &[("limit", "1000")],
        )
        .await;
        assert_eq!(page.results.len(), 150);
        let by_id: BTreeMap<Uuid, _> = page.results.iter().map(|r| (r.id, r)).collect();
        for (i, id) in ids.iter().enumerate() {
            let r = by_id[id];
            assert_eq!(r.tool_usages.len(), 2);
            assert_eq!(r.thread_root_id, ids[0], "{i}");
            assert_eq!(r.thread_parent_id, i.checked_sub(1).map(|p| ids[p]), "{i}");
        }
        let q = parse_aibridge_sessions_query(None, None, None, None, Some("1000")).unwrap();
        let sessions = admin_of(&store)
            .list_aibridge_sessions(&Actor::user(f.user), &q)
            .await
            .unwrap();
        assert_eq!(sessions.sessions.len(), 30);
        assert!(sessions.sessions.iter().all(|s| s.interception_count == 5));
        recorder.shutdown().await;
    })
    .await;
}
