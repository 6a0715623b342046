//! Store tests of spend and the cost reports (`Store::spend_micros`, `Store::cost_summary`,
//! `Store::cost_by_user`) against sums computed by hand, in micro-dollars: priced and
//! unpriced rows, hidden usage rows (soft-deleted from the start), sub-agent chats rolled
//! into their root, rows without usage left out, and the window's edges (start inclusive,
//! end exclusive). Every test runs on SQLite and, with `CHATD_TEST_DATABASE_URL`, on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_core::store::{
    HiddenUsage, NewSubagent, NewUser, Step, Store, MAX_COST_SUMMARY_CHATS,
    UNKNOWN_MODEL_DISPLAY_NAME,
};
use chatd_core::subagents::SubagentType;
use codersdk::{
    ChatCostChatBreakdown, ChatCostModelBreakdown, ChatCostTotals, ChatCostUserRollup,
    ChatMessagePart, ChatMessageUsage, Uuid,
};

use chatd_test_support::db::*;

/// The window of the tests: `[T0, T1)`, ten days.
const T0: i64 = 1_700_000_000_000_000;
const T1: i64 = T0 + 10 * 86_400_000_000;

/// A model config row as the admin API would leave it (only what the reports read).
async fn model_config(store: &Store, provider: &str, model: &str, display_name: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO model_configs (id, provider, model, display_name, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 0, 0)",
    )
    .bind(id.to_string())
    .bind(provider)
    .bind(model)
    .bind(display_name)
    .execute(store.pool())
    .await
    .unwrap();
    id
}

async fn user(store: &Store, f: &Fixture, username: &str, name: &str) -> Uuid {
    let u = store
        .create_user(NewUser {
            username: username.into(),
            name: name.into(),
            role: chatd_core::Role::Member,
        })
        .await
        .unwrap();
    store.add_member(f.org, u.id).await.unwrap();
    u.id
}

async fn chat_of(store: &Store, f: &Fixture, owner: Uuid, title: &str) -> Uuid {
    let mut new = new_chat(f, "hello");
    new.owner_id = owner;
    new.created_by = Some(owner);
    new.title = title.into();
    store.create_chat(new).await.unwrap().0.id
}

fn usage(input: Option<i64>, output: Option<i64>) -> ChatMessageUsage {
    ChatMessageUsage {
        input_tokens: input,
        output_tokens: output,
        ..ChatMessageUsage::default()
    }
}

/// A hidden usage row of `chat` stamped at `at`.
async fn hidden(
    store: &Store,
    chat: Uuid,
    model: Option<Uuid>,
    usage: ChatMessageUsage,
    cost: Option<i64>,
    runtime_ms: i64,
    at: i64,
) -> i64 {
    let id = store
        .record_hidden_usage(
            chat,
            HiddenUsage {
                model_config_id: model,
                usage,
                total_cost_micros: cost,
                runtime_ms,
            },
        )
        .await
        .unwrap();
    stamp(store, id, at).await;
    id
}

async fn stamp(store: &Store, message: i64, at: i64) {
    sqlx::query("UPDATE chat_messages SET created_at = $1 WHERE id = $2")
        .bind(at)
        .bind(message)
        .execute(store.pool())
        .await
        .unwrap();
}

fn totals(
    input: i64,
    output: i64,
    cache_read: i64,
    cache_creation: i64,
    runtime: i64,
) -> ChatCostTotals {
    ChatCostTotals {
        total_input_tokens: input,
        total_output_tokens: output,
        total_cache_read_tokens: cache_read,
        total_cache_creation_tokens: cache_creation,
        total_runtime_ms: runtime,
    }
}

/// Alice's rows of the hand-computed example (docs/cost-reports.md "Tests"):
///
/// | # | chat | model | input | output | cache r/w | cost | runtime | at | counted |
/// |---|---|---|---|---|---|---|---|---|---|
/// | 1 | A (step) | M1 | 10 | 5 | – | 42 | 1234 | T0 | yes (start inclusive) |
/// | 2 | A hidden | M1 | 100 | 50 | 7 / 3 | 1 000 003 | 10 | T0+1 | yes |
/// | 3 | A1 (child of A) hidden | M2 | 1000 | 0 | – | unpriced | 20 | T0+2 | yes, into A |
/// | 4 | B hidden | none | 1 | 2 | – | 5 | 0 | T0+3 | yes |
/// | 5 | B hidden | M2 | 3 | – | – | 7 | 4 | T1−1 | yes |
/// | 6 | B hidden | M2 | total 50 only | | | unpriced | 30 | T0+5 | yes |
/// | 7 | B hidden | M1 | 9 | – | – | 999 | 1 | T1 | no (end exclusive) |
/// | 8 | B hidden | M1 | 9 | – | – | 888 | 1 | T0−1 | no (before) |
/// | 9 | A assistant, no usage | M1 | – | – | – | – | 77 | T0+6 | no (no usage) |
///
/// plus the step's tool row and the chats' first user messages (not assistant rows).
struct Example {
    alice: Uuid,
    bob: Uuid,
    carol: Uuid,
    m1: Uuid,
    m2: Uuid,
    root_a: Uuid,
    root_b: Uuid,
}

async fn example(store: &Store) -> Example {
    let f = fixture(store).await;
    let alice = f.user;
    let bob = user(store, &f, "bob", "Bob").await;
    let carol = user(store, &f, "carol", "Carol").await;
    let _dave = user(store, &f, "dave", "Dave").await;
    let m1 = model_config(store, "openai", "gpt-4o", "GPT Four").await;
    let m2 = model_config(store, "anthropic", "claude-x", "").await;

    // Row 1: a real step of chat A under a lease, with a tool row beside it.
    let root_a = chat_of(store, &f, alice, "Root A").await;
    let lease = store.claim_pending(Uuid::new_v4(), 1).await.unwrap()[0];
    assert_eq!(lease.chat_id, root_a);
    let persisted = store
        .persist_step(
            &lease,
            Step {
                assistant_parts: vec![ChatMessagePart::text("answer")],
                usage: Some(ChatMessageUsage {
                    total_tokens: Some(15),
                    context_limit: Some(1000),
                    ..usage(Some(10), Some(5))
                }),
                total_cost_micros: Some(42),
                runtime_ms: 1234,
                provider_response_id: None,
                model_config_id: Some(m1),
                tool_results: vec![vec![ChatMessagePart::tool_result(
                    "call-1",
                    "echo",
                    codersdk::RawJson::from_json("{}").unwrap(),
                    false,
                )]],
            },
        )
        .await
        .unwrap();
    for m in &persisted.transition.messages {
        stamp(store, m.id, T0).await;
    }
    // Row 2: hidden (deleted from the start) with cache tokens.
    let cached = ChatMessageUsage {
        cache_read_tokens: Some(7),
        cache_creation_tokens: Some(3),
        ..usage(Some(100), Some(50))
    };
    hidden(store, root_a, Some(m1), cached, Some(1_000_003), 10, T0 + 1).await;
    // Row 3: a sub-agent's unpriced call rolls into its root.
    let (child, _) = store
        .create_subagent(NewSubagent::new(
            root_a,
            SubagentType::General,
            "child",
            m2,
            vec![ChatMessagePart::text("go")],
        ))
        .await
        .unwrap();
    hidden(
        store,
        child.id,
        Some(m2),
        usage(Some(1000), Some(0)),
        None,
        20,
        T0 + 2,
    )
    .await;
    // Rows 4–8 in chat B.
    let root_b = chat_of(store, &f, alice, "Root B").await;
    hidden(
        store,
        root_b,
        None,
        usage(Some(1), Some(2)),
        Some(5),
        0,
        T0 + 3,
    )
    .await;
    hidden(
        store,
        root_b,
        Some(m2),
        usage(Some(3), None),
        Some(7),
        4,
        T1 - 1,
    )
    .await;
    let only_total = ChatMessageUsage {
        total_tokens: Some(50),
        ..ChatMessageUsage::default()
    };
    hidden(store, root_b, Some(m2), only_total, None, 30, T0 + 5).await;
    hidden(
        store,
        root_b,
        Some(m1),
        usage(Some(9), None),
        Some(999),
        1,
        T1,
    )
    .await;
    hidden(
        store,
        root_b,
        Some(m1),
        usage(Some(9), None),
        Some(888),
        1,
        T0 - 1,
    )
    .await;
    // Row 9: an assistant row with no usage (an interrupted step before usage arrived).
    let no_usage = hidden(
        store,
        root_a,
        Some(m1),
        ChatMessageUsage::default(),
        None,
        77,
        T0 + 6,
    )
    .await;
    sqlx::query("UPDATE chat_messages SET deleted = 0, visibility = 'both' WHERE id = $1")
        .bind(no_usage)
        .execute(store.pool())
        .await
        .unwrap();
    // Every other message (first user messages) inside the window too.
    sqlx::query("UPDATE chat_messages SET created_at = $1 WHERE role = 'user'")
        .bind(T0 + 7)
        .execute(store.pool())
        .await
        .unwrap();

    // Bob and Carol spend the same; Dave nothing.
    let c = chat_of(store, &f, bob, "Bob's").await;
    hidden(
        store,
        c,
        Some(m1),
        usage(Some(10), None),
        Some(500),
        1,
        T0 + 2,
    )
    .await;
    let d = chat_of(store, &f, carol, "Carol's").await;
    hidden(
        store,
        d,
        Some(m1),
        usage(Some(1), None),
        Some(500),
        2,
        T0 + 4,
    )
    .await;
    Example {
        alice,
        bob,
        carol,
        m1,
        m2,
        root_a,
        root_b,
    }
}

#[tokio::test]
async fn summary_sums_match_the_hand_computed_example() {
    on_each_backend(|store| async move {
        let e = example(&store).await;
        let s = store.cost_summary(e.alice, T0, T1).await.unwrap();
        // Rows 1–6: 42 + 1 000 003 + 5 + 7; rows 3 and 6 unpriced.
        assert_eq!(s.totals.total_cost_micros, 1_000_057);
        assert_eq!(s.totals.priced_message_count, 4);
        assert_eq!(s.totals.unpriced_message_count, 2);
        assert_eq!(
            s.totals.totals,
            totals(
                10 + 100 + 1000 + 1 + 3,
                5 + 50 + 2,
                7,
                3,
                1234 + 10 + 20 + 4 + 30
            )
        );
        assert_eq!(
            s.by_model,
            vec![
                ChatCostModelBreakdown {
                    model_config_id: e.m1,
                    display_name: "GPT Four".into(),
                    provider: "openai".into(),
                    model: "gpt-4o".into(),
                    total_cost_micros: 1_000_045,
                    message_count: 2,
                    totals: totals(110, 55, 7, 3, 1244),
                },
                ChatCostModelBreakdown {
                    model_config_id: e.m2,
                    // No display name: the model id.
                    display_name: "claude-x".into(),
                    provider: "anthropic".into(),
                    model: "claude-x".into(),
                    total_cost_micros: 7,
                    message_count: 3,
                    totals: totals(1003, 0, 0, 0, 54),
                },
                ChatCostModelBreakdown {
                    model_config_id: Uuid::nil(),
                    display_name: UNKNOWN_MODEL_DISPLAY_NAME.into(),
                    provider: String::new(),
                    model: String::new(),
                    total_cost_micros: 5,
                    message_count: 1,
                    totals: totals(1, 2, 0, 0, 0),
                },
            ]
        );
        assert_eq!(
            s.by_chat,
            vec![
                ChatCostChatBreakdown {
                    root_chat_id: e.root_a,
                    chat_title: "Root A".into(),
                    total_cost_micros: 1_000_045,
                    message_count: 3,
                    totals: totals(1110, 55, 7, 3, 1264),
                },
                ChatCostChatBreakdown {
                    root_chat_id: e.root_b,
                    chat_title: "Root B".into(),
                    total_cost_micros: 12,
                    message_count: 3,
                    totals: totals(4, 2, 0, 0, 34),
                },
            ]
        );
        // Both breakdowns add up to the totals.
        let cost: i64 = s.by_model.iter().map(|m| m.total_cost_micros).sum();
        let count: i64 = s.by_chat.iter().map(|c| c.message_count).sum();
        assert_eq!(cost, s.totals.total_cost_micros);
        assert_eq!(
            count,
            s.totals.priced_message_count + s.totals.unpriced_message_count
        );
        // The usage limit's spend reads the same priced rows.
        assert_eq!(
            store.spend_micros(e.alice, T0, T1).await.unwrap(),
            1_000_057
        );
    })
    .await;
}

#[tokio::test]
async fn window_edges_are_start_inclusive_and_end_exclusive() {
    on_each_backend(|store| async move {
        let e = example(&store).await;
        // Row 8 at T0 − 1 alone.
        let before = store.cost_summary(e.alice, T0 - 1, T0).await.unwrap();
        assert_eq!(before.totals.total_cost_micros, 888);
        assert_eq!(before.totals.priced_message_count, 1);
        // One past the end takes row 7 in.
        let wider = store.cost_summary(e.alice, T0, T1 + 1).await.unwrap();
        assert_eq!(wider.totals.total_cost_micros, 1_000_057 + 999);
        // Row 1 sits on T0 exactly: a window starting one later loses it.
        let later = store.cost_summary(e.alice, T0 + 1, T1).await.unwrap();
        assert_eq!(later.totals.total_cost_micros, 1_000_057 - 42);
        assert_eq!(
            store.spend_micros(e.alice, T0 + 1, T1).await.unwrap(),
            1_000_057 - 42
        );
        // Row 5 sits on T1 − 1.
        let earlier = store.cost_summary(e.alice, T0, T1 - 1).await.unwrap();
        assert_eq!(earlier.totals.total_cost_micros, 1_000_057 - 7);
        // An empty window, or a user with nothing: zeros and empty lists.
        let none = store.cost_summary(e.alice, T1 + 1, T1 + 2).await.unwrap();
        assert_eq!(none.totals, Default::default());
        assert!(none.by_model.is_empty() && none.by_chat.is_empty());
        let stranger = store.cost_summary(Uuid::new_v4(), T0, T1).await.unwrap();
        assert_eq!(stranger.totals.priced_message_count, 0);
    })
    .await;
}

#[tokio::test]
async fn deleted_rows_count_and_rows_without_usage_do_not() {
    on_each_backend(|store| async move {
        let e = example(&store).await;
        let before = store.cost_summary(e.alice, T0, T1).await.unwrap();
        // An edit soft-deletes the step (row 1): it was paid for, so it still counts.
        sqlx::query("UPDATE chat_messages SET deleted = 1 WHERE role = 'assistant'")
            .execute(store.pool())
            .await
            .unwrap();
        let after = store.cost_summary(e.alice, T0, T1).await.unwrap();
        assert_eq!(before, after);
        // Row 9 (no usage, runtime 77) is in no count and no total.
        assert_eq!(after.totals.totals.total_runtime_ms, 1298);
        assert_eq!(after.by_chat[0].message_count, 3);
    })
    .await;
}

#[tokio::test]
async fn users_rollup_pages_filters_and_counts() {
    on_each_backend(|store| async move {
        let e = example(&store).await;
        let page = store.cost_by_user(T0, T1, None, 10, 0).await.unwrap();
        assert_eq!(page.count, 3, "dave has no usage and is not listed");
        let ids: Vec<Uuid> = page.users.iter().map(|u| u.user_id).collect();
        // Alice spends most; Bob and Carol tie and go by username.
        assert_eq!(ids, [e.alice, e.bob, e.carol]);
        assert_eq!(
            page.users[0],
            ChatCostUserRollup {
                user_id: e.alice,
                username: "alice".into(),
                name: "Alice".into(),
                avatar_url: String::new(),
                total_cost_micros: 1_000_057,
                message_count: 6,
                chat_count: 2,
                totals: totals(1114, 57, 7, 3, 1298),
            }
        );
        assert_eq!(
            (
                page.users[1].total_cost_micros,
                page.users[1].message_count,
                page.users[1].chat_count
            ),
            (500, 1, 1)
        );
        // Paging: the count is of all matches, also past the last page.
        let second = store.cost_by_user(T0, T1, None, 1, 1).await.unwrap();
        assert_eq!((second.count, second.users.len()), (3, 1));
        assert_eq!(second.users[0].user_id, e.bob);
        let past = store.cost_by_user(T0, T1, None, 10, 5).await.unwrap();
        assert_eq!((past.count, past.users.len()), (3, 0));
        // The filter: a case-insensitive substring of the username or the display name;
        // LIKE's wildcards are plain characters.
        let names = |p: chatd_core::store::CostUsersPage| {
            (
                p.count,
                p.users.into_iter().map(|u| u.username).collect::<Vec<_>>(),
            )
        };
        let by = |needle: &'static str| {
            let store = store.clone();
            async move {
                names(
                    store
                        .cost_by_user(T0, T1, Some(needle), 10, 0)
                        .await
                        .unwrap(),
                )
            }
        };
        assert_eq!(by("AR").await, (1, vec!["carol".to_owned()]));
        assert_eq!(by("lic").await, (1, vec!["alice".to_owned()]));
        assert_eq!(by("%").await, (0, vec![]));
        assert_eq!(by("_").await, (0, vec![]));
        assert_eq!(by("dave").await, (0, vec![]));
        // The window bounds the rollup like the summary.
        let early = store.cost_by_user(T0, T0 + 3, None, 10, 0).await.unwrap();
        let early: Vec<(Uuid, i64)> = early
            .users
            .iter()
            .map(|u| (u.user_id, u.total_cost_micros))
            .collect();
        assert_eq!(early, [(e.alice, 1_000_045), (e.bob, 500)]);
    })
    .await;
}

#[tokio::test]
async fn by_chat_keeps_the_most_expensive_chats() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        // MAX_COST_SUMMARY_CHATS + 1 chats, chat i costing i + 1: the cheapest is left out
        // of by_chat but not of the totals. Rows are written directly: the cap is the
        // point, not the write path.
        let n = MAX_COST_SUMMARY_CHATS + 1;
        let mut tx = store.pool().begin().await.unwrap();
        let org = f.org.to_string();
        let owner = f.user.to_string();
        let model = Uuid::new_v4().to_string();
        let mut cheapest = None;
        for i in 0..n {
            let id = Uuid::new_v4();
            if i == 0 {
                cheapest = Some(id);
            }
            sqlx::query(
                "INSERT INTO chats (id, organization_id, owner_id, root_chat_id, \
                 last_model_config_id, title, status, client_type, created_at, updated_at) \
                 VALUES ($1, $2, $3, $1, $4, $5, 'waiting', 'ui', 0, 0)",
            )
            .bind(id.to_string())
            .bind(&org)
            .bind(&owner)
            .bind(&model)
            .bind(format!("chat {i}"))
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO chat_messages (chat_id, role, content, content_version, \
                 visibility, deleted, total_cost_micros, created_at) \
                 VALUES ($1, 'assistant', '[]', 1, 'model', 1, $2, $3)",
            )
            .bind(id.to_string())
            .bind(i + 1)
            .bind(T0)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let s = store.cost_summary(f.user, T0, T1).await.unwrap();
        assert_eq!(
            s.by_chat.len(),
            usize::try_from(MAX_COST_SUMMARY_CHATS).unwrap()
        );
        assert_eq!(s.by_chat[0].total_cost_micros, n);
        assert!(s.by_chat.iter().all(|c| Some(c.root_chat_id) != cheapest));
        assert_eq!(s.totals.total_cost_micros, n * (n + 1) / 2);
        assert_eq!(s.totals.priced_message_count, n);
    })
    .await;
}

/// The administration handle over the example: the default window ends at the engine's
/// clock (a `ManualClock` here), and who may read what.
#[tokio::test]
async fn admin_reports_follow_the_engine_clock_and_authorize() {
    use std::sync::Arc;

    use chatd_core::{Actor, Admin, ErrorKind, Keyring, ManualClock, SecretKey, UserRef};
    use chatd_test_support::scripted::{engine_with_config, fast_settings, ScriptedModel};

    on_each_backend(|store| async move {
        let e = example(&store).await;
        let at = |micros: i64| chrono::DateTime::from_timestamp_micros(micros).unwrap();
        let clock = ManualClock::new(at(T1));
        let engine = engine_with_config(&store, ScriptedModel::new([]), fast_settings(), |c| {
            c.with_clock(Arc::new(clock.clone()))
        })
        .await;
        let keyring = Arc::new(Keyring::new("k", SecretKey::generate().unwrap()).unwrap());
        let admin = Admin::new(store.clone(), keyring, Default::default());
        let alice = Actor::user(e.alice);
        let window = || {
            codersdk::parse_cost_window(None, None, codersdk::Timestamp(engine.clock().now()))
                .unwrap()
        };
        // The 30 days before T1: rows 1–6 and row 8 (T0 − 1), not row 7 (at T1).
        let w = window();
        assert_eq!(w.end_micros(), T1);
        let s = admin
            .cost_summary(&alice, &UserRef::Me, &w, engine.clock().now())
            .await
            .unwrap();
        assert_eq!(s.total_cost_micros, 1_000_057 + 888);
        // Limits off: no status to show.
        assert_eq!(s.usage_limit, None);
        assert_eq!((s.start_date, s.end_date), (w.start(), w.end()));
        // Moving the engine's clock moves the default window: row 7 comes in.
        clock.set(at(T1 + 1));
        let s = admin
            .cost_summary(&alice, &UserRef::Me, &window(), engine.clock().now())
            .await
            .unwrap();
        assert_eq!(s.total_cost_micros, 1_000_057 + 888 + 999);

        // With a limit, the summary carries the user's status in the current period at the
        // engine's clock, whatever the report's window.
        store
            .set_usage_limit_config(Some(10), codersdk::ChatUsageLimitPeriod::Month)
            .await
            .unwrap();
        let (start, end) = chatd_core::usage_limits::period_window(
            &codersdk::ChatUsageLimitPeriod::Month,
            engine.clock().now(),
        );
        let spent = store
            .spend_micros(e.alice, start.timestamp_micros(), end.timestamp_micros())
            .await
            .unwrap();
        let s = admin
            .cost_summary(&alice, &UserRef::Me, &window(), engine.clock().now())
            .await
            .unwrap();
        let status = s.usage_limit.unwrap();
        assert!(status.is_limited);
        assert_eq!(
            (
                status.spend_limit_micros,
                status.current_spend,
                status.period_end.0
            ),
            (Some(10), spent, end)
        );
        assert!(spent > 0);

        // Alice may not read Bob's, by id or name, nor someone who does not exist; an
        // administrator may, and learns who does not exist.
        let w = window();
        for user in [
            UserRef::Id(e.bob),
            UserRef::Username("BOB".into()),
            UserRef::Id(Uuid::new_v4()),
        ] {
            let err = admin
                .cost_summary(&alice, &user, &w, engine.clock().now())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Forbidden, "{user:?}");
        }
        let root = Actor::admin(e.carol);
        let bob = admin
            .cost_summary(
                &root,
                &UserRef::Username("BOB".into()),
                &w,
                engine.clock().now(),
            )
            .await
            .unwrap();
        assert_eq!(bob.total_cost_micros, 500);
        let err = admin
            .cost_summary(
                &root,
                &UserRef::Id(Uuid::new_v4()),
                &w,
                engine.clock().now(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        // The rollup is for administrators.
        let query =
            codersdk::parse_cost_users_query(None, None, None, None, None, w.end()).unwrap();
        let err = admin.cost_users(&alice, &query).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        let page = admin.cost_users(&root, &query).await.unwrap();
        assert_eq!(page.count, 3);
        assert_eq!(page.users[0].user_id, e.alice);
        engine.shutdown().await;
    })
    .await;
}
