//! Usage limits on SQLite and PostgreSQL: the stored configuration, overrides and groups;
//! the precedence of limits; admission at every point that makes the model work, with the
//! exact figures of the refusal; period windows at UTC midnight and month ends (with a
//! paused clock); and the check failing open.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use chatd_core::store::{HiddenUsage, Store};
use chatd_core::{Actor, Clock, Engine, ErrorKind, ManualClock};
use chatd_test_support::db::{fixture, on_each_backend, Fixture, RawSql};
use chatd_test_support::scripted::{
    create_request, engine_with_config, fast_settings, wait_status, Reply, ScriptedModel,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use codersdk::{
    ChatInputPart, ChatStatus, ChatUsageLimitPeriod, CreateChatMessageRequest, CreateGroupRequest,
    EditChatMessageRequest, PatchGroupRequest, Uuid, USAGE_LIMIT_EXCEEDED_MESSAGE,
};
use tokio::sync::Notify;

async fn engine_at(store: &Store, model: Arc<ScriptedModel>, clock: &ManualClock) -> Engine {
    let clock: Arc<dyn chatd_core::Clock> = Arc::new(clock.clone());
    engine_with_config(store, model, fast_settings(), |c| {
        c.with_generated_titles(false)
            .with_turn_summaries(false)
            .with_clock(clock)
    })
    .await
}

/// Records `micros` of spend (a hidden usage row, as a title call writes) on `chat`.
async fn spend(store: &Store, chat: Uuid, micros: Option<i64>) {
    store
        .record_hidden_usage(
            chat,
            HiddenUsage {
                model_config_id: None,
                usage: codersdk::ChatMessageUsage {
                    input_tokens: Some(10),
                    output_tokens: Some(5),
                    ..Default::default()
                },
                total_cost_micros: micros,
                runtime_ms: 3,
            },
        )
        .await
        .unwrap();
}

fn text(t: &str) -> CreateChatMessageRequest {
    CreateChatMessageRequest {
        content: vec![ChatInputPart::text(t)],
        ..Default::default()
    }
}

fn midnight_after(t: DateTime<Utc>) -> DateTime<Utc> {
    let day = t.date_naive() + Duration::days(1);
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
}

async fn group_with(store: &Store, f: &Fixture, name: &str, limit: i64) -> Uuid {
    let group = store
        .create_group(
            f.org,
            &CreateGroupRequest {
                name: name.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .patch_group(
            group.id,
            &PatchGroupRequest {
                add_users: vec![f.user],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store.set_group_usage_limit(group.id, limit).await.unwrap();
    group.id
}

#[tokio::test]
async fn configuration_overrides_and_groups_are_stored() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let unset = store.usage_limit_config().await.unwrap();
        assert_eq!(unset.spend_limit_micros, None);
        assert_eq!(unset.period, ChatUsageLimitPeriod::Month);
        let set = store
            .set_usage_limit_config(Some(5_000_000), ChatUsageLimitPeriod::Week)
            .await
            .unwrap();
        assert_eq!(store.usage_limit_config().await.unwrap(), set);
        store
            .set_usage_limit_config(None, ChatUsageLimitPeriod::Day)
            .await
            .unwrap();
        assert_eq!(
            store.usage_limit_config().await.unwrap().spend_limit_micros,
            None
        );

        // User overrides: upsert, list, delete; unknown users are NotFound.
        let o = store.set_user_usage_limit(f.user, 7).await.unwrap();
        assert_eq!((o.username.as_str(), o.spend_limit_micros), ("alice", 7));
        store.set_user_usage_limit(f.user, 9).await.unwrap();
        let listed = store.list_user_usage_limits().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].spend_limit_micros, 9);
        let nobody = Uuid::new_v4();
        assert_eq!(
            store
                .set_user_usage_limit(nobody, 1)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            store
                .delete_user_usage_limit(nobody)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
        store.delete_user_usage_limit(f.user).await.unwrap();
        store.delete_user_usage_limit(f.user).await.unwrap();
        assert!(store.list_user_usage_limits().await.unwrap().is_empty());

        // Groups: names are unique per organization; members must belong to it.
        let eng = group_with(&store, &f, "eng", 40).await;
        let dup = store
            .create_group(
                f.org,
                &CreateGroupRequest {
                    name: "eng".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(dup.kind(), ErrorKind::Conflict);
        let outsider = store
            .create_user(chatd_core::store::NewUser {
                username: "olga".into(),
                name: String::new(),
                role: chatd_core::Role::Member,
            })
            .await
            .unwrap();
        let refused = store
            .patch_group(
                eng,
                &PatchGroupRequest {
                    add_users: vec![outsider.id],
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidArgument);
        let unknown = store
            .patch_group(
                eng,
                &PatchGroupRequest {
                    add_users: vec![Uuid::new_v4()],
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(unknown.kind(), ErrorKind::NotFound);
        let group = store.get_group(eng).await.unwrap().unwrap();
        assert_eq!(
            group.total_member_count, 1,
            "a refused patch changed nothing"
        );
        assert_eq!(group.members[0].username, "alice");
        let overrides = store.list_group_usage_limits().await.unwrap();
        assert_eq!(
            (
                overrides[0].group_name.as_str(),
                overrides[0].member_count,
                overrides[0].spend_limit_micros
            ),
            ("eng", 1, 40)
        );
        assert_eq!(
            store
                .set_group_usage_limit(Uuid::new_v4(), 1)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
        // Deleting the group takes its override and memberships with it.
        store.delete_group(eng).await.unwrap();
        assert!(store.list_group_usage_limits().await.unwrap().is_empty());
        assert_eq!(
            store.delete_group(eng).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    })
    .await;
}

#[tokio::test]
async fn precedence_is_user_then_smallest_group_then_default_and_off_disables_all() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let clock = ManualClock::new(Utc::now());
        let engine = engine_at(&store, ScriptedModel::new([]), &clock).await;
        let actor = Actor::user(f.user);
        // Off: not limited, with Coder's zero figures.
        let status = engine.usage_limit_status(&actor).await.unwrap();
        assert_eq!(status, codersdk::ChatUsageLimitStatus::default());
        store.set_user_usage_limit(f.user, 900).await.unwrap();
        let status = engine.usage_limit_status(&actor).await.unwrap();
        assert!(
            !status.is_limited,
            "overrides do nothing while limits are off"
        );

        store
            .set_usage_limit_config(Some(100), ChatUsageLimitPeriod::Month)
            .await
            .unwrap();
        let limit = |s: codersdk::ChatUsageLimitStatus| s.spend_limit_micros;
        assert_eq!(
            limit(engine.usage_limit_status(&actor).await.unwrap()),
            Some(900)
        );
        store.delete_user_usage_limit(f.user).await.unwrap();
        assert_eq!(
            limit(engine.usage_limit_status(&actor).await.unwrap()),
            Some(100)
        );
        group_with(&store, &f, "big", 5_000).await;
        group_with(&store, &f, "small", 300).await;
        assert_eq!(
            limit(engine.usage_limit_status(&actor).await.unwrap()),
            Some(300),
            "the smallest group limit, even above the default"
        );
        store.set_user_usage_limit(f.user, 10_000).await.unwrap();
        assert_eq!(
            limit(engine.usage_limit_status(&actor).await.unwrap()),
            Some(10_000),
            "the user's own override, even above the groups'"
        );
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admission_point_refuses_a_user_over_the_limit() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([Reply::Gated {
            before: vec!["working ".into()],
            gate: gate.clone(),
            after: vec!["done".into()],
        }]);
        let clock = ManualClock::new(Utc::now());
        let engine = engine_at(&store, model.clone(), &clock).await;
        store
            .set_usage_limit_config(Some(100), ChatUsageLimitPeriod::Month)
            .await
            .unwrap();
        // Under the limit: the chat starts, and a message queues behind its turn.
        let chat = engine
            .create_chat(&actor, create_request(f.org, "first"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Running).await;
        // The turn's first step is streaming (it passed its own check before the spend
        // below exists): `running` alone is set before the turn reaches its first step.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while model.calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the first step never started"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let queued = engine
            .send_message(&actor, chat.id, text("queued"))
            .await
            .unwrap();
        let queued_id = queued.queued_message.unwrap().id;
        // Spend reaches the limit exactly (spend ≥ limit refuses): hidden usage rows count,
        // unpriced ones add nothing.
        spend(&store, chat.id, Some(60)).await;
        spend(&store, chat.id, None).await;
        spend(&store, chat.id, Some(40)).await;
        let status = engine.usage_limit_status(&actor).await.unwrap();
        assert_eq!(
            (status.current_spend, status.spend_limit_micros),
            (100, Some(100))
        );
        let (_, period_end) =
            chatd_core::usage_limits::period_window(&ChatUsageLimitPeriod::Month, clock.now());

        let check = |e: chatd_core::Error| {
            assert_eq!(e.kind(), ErrorKind::UsageLimit);
            assert_eq!(e.http_status(), 409);
            let figures = e.usage_limit_exceeded().expect("figures").clone();
            assert_eq!(figures.message, USAGE_LIMIT_EXCEEDED_MESSAGE);
            assert_eq!((figures.spent_micros, figures.limit_micros), (100, 100));
            assert_eq!(figures.resets_at.0, period_end);
        };
        check(
            engine
                .create_chat(&actor, create_request(f.org, "another"))
                .await
                .unwrap_err(),
        );
        check(
            engine
                .send_message(&actor, chat.id, text("more"))
                .await
                .unwrap_err(),
        );
        check(
            engine
                .promote_queued(&actor, chat.id, queued_id)
                .await
                .unwrap_err(),
        );
        let first = engine
            .list_messages(
                &actor,
                chat.id,
                &codersdk::MessagePage {
                    before_id: None,
                    after_id: Some(0),
                    limit: 10,
                    ascending: true,
                },
            )
            .await
            .unwrap()
            .messages
            .into_iter()
            .find(|m| m.role == codersdk::ChatMessageRole::User)
            .unwrap();
        check(
            engine
                .edit_message(
                    &actor,
                    chat.id,
                    first.id,
                    EditChatMessageRequest {
                        content: vec![ChatInputPart::text("edited")],
                    },
                )
                .await
                .unwrap_err(),
        );
        check(engine.propose_title(&actor, chat.id).await.unwrap_err());
        check(engine.regenerate_title(&actor, chat.id).await.unwrap_err());
        // Nothing was written by the refusals: the queue still holds the one message.
        assert_eq!(engine.list_queue(&actor, chat.id).await.unwrap().len(), 1);

        // The running turn is not cut off: its streaming step finishes. The queued message
        // (admitted when it was sent) is promoted, but its turn stops before its first step:
        // no model step starts while the owner is at the limit.
        let calls_before = model.calls.load(std::sync::atomic::Ordering::SeqCst);
        gate.notify_one();
        let stopped = wait_status(&engine, &actor, chat.id, ChatStatus::Error).await;
        let last = stopped.last_error.unwrap();
        assert_eq!(last.kind, Some(codersdk::ChatErrorKind::UsageLimit));
        assert!(!last.retryable);
        assert!(
            last.message.starts_with(USAGE_LIMIT_EXCEEDED_MESSAGE),
            "{}",
            last.message
        );
        assert_eq!(
            model.calls.load(std::sync::atomic::Ordering::SeqCst),
            calls_before,
            "the promoted turn made no model call"
        );
        assert!(engine.list_queue(&actor, chat.id).await.unwrap().is_empty());

        // Raising the user's own limit lets them go on at once (the turns that ran spent
        // a little more: the scripted model's calls are priced).
        store.set_user_usage_limit(f.user, 1_000_000).await.unwrap();
        model.push(Reply::Text("ok".into()));
        engine
            .send_message(&actor, chat.id, text("again"))
            .await
            .unwrap();
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn periods_roll_over_at_utc_midnight_and_at_the_month_end() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let clock = ManualClock::new(Utc::now());
        // Every call fails before any usage: only the rows written here are spend.
        let refusals = ScriptedModel::new([Reply::Fail(401), Reply::Fail(401), Reply::Fail(401)]);
        let engine = engine_at(&store, refusals, &clock).await;
        let (chat, _) = store
            .create_chat(chatd_test_support::db::new_chat(&f, "hi"))
            .await
            .unwrap();
        spend(&store, chat.id, Some(500)).await;
        let made = store.get_chat(chat.id).await.unwrap().unwrap().created_at.0;
        let tomorrow = midnight_after(made);

        // Months: the last microsecond of the spend's month, then the first of the next.
        store
            .set_usage_limit_config(Some(500), ChatUsageLimitPeriod::Month)
            .await
            .unwrap();
        let (_, month_end) =
            chatd_core::usage_limits::period_window(&ChatUsageLimitPeriod::Month, made);
        clock.set(month_end - Duration::microseconds(1));
        let status = engine.usage_limit_status(&actor).await.unwrap();
        assert_eq!(
            (status.current_spend, status.period_end.0),
            (500, month_end)
        );
        clock.set(month_end);
        let status = engine.usage_limit_status(&actor).await.unwrap();
        assert_eq!(status.current_spend, 0);
        store
            .set_usage_limit_config(Some(500), ChatUsageLimitPeriod::Day)
            .await
            .unwrap();
        // The last microsecond of the spend's day: still that day's window.
        clock.set(tomorrow - Duration::microseconds(1));
        let status = engine.usage_limit_status(&actor).await.unwrap();
        assert_eq!(status.current_spend, 500);
        assert_eq!(status.period_end.0, tomorrow);
        let e = engine
            .create_chat(&actor, create_request(f.org, "x"))
            .await
            .unwrap_err();
        assert_eq!(e.usage_limit_exceeded().unwrap().resets_at.0, tomorrow);
        // Midnight UTC: a new day, nothing spent in it.
        clock.set(tomorrow);
        let status = engine.usage_limit_status(&actor).await.unwrap();
        assert_eq!(status.current_spend, 0);
        assert_eq!(status.period_start.0, tomorrow);
        engine
            .create_chat(&actor, create_request(f.org, "a new day"))
            .await
            .unwrap();

        engine.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_check_fails_open_when_it_cannot_be_made() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let clock = ManualClock::new(Utc::now());
        let engine = engine_at(
            &store,
            ScriptedModel::new([Reply::Text("ok".into())]),
            &clock,
        )
        .await;
        let (chat, _) = store
            .create_chat(chatd_test_support::db::new_chat(&f, "hi"))
            .await
            .unwrap();
        spend(&store, chat.id, Some(1_000)).await;
        store
            .set_usage_limit_config(Some(10), ChatUsageLimitPeriod::Month)
            .await
            .unwrap();
        assert!(engine
            .create_chat(&actor, create_request(f.org, "refused"))
            .await
            .is_err());
        // The overrides table is gone: the check cannot read, so the request goes through.
        sqlx::query("DROP TABLE chat_usage_limit_user_overrides")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(engine.usage_limit_status(&actor).await.is_err());
        engine
            .create_chat(&actor, create_request(f.org, "admitted"))
            .await
            .unwrap();
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_stops_at_the_step_boundary_where_its_own_spend_reached_the_limit() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        // The first step asks for a tool; its own (priced) call reaches the 1-micro-dollar
        // limit, so the step that would answer with the tool's result never starts.
        let model = ScriptedModel::new([
            Reply::ToolCalls(vec![("c1".into(), "noop".into(), "{}".into())]),
            Reply::Text("never streamed".into()),
        ]);
        let clock = ManualClock::new(Utc::now());
        let engine = engine_at(&store, model.clone(), &clock).await;
        store
            .set_usage_limit_config(Some(1), ChatUsageLimitPeriod::Month)
            .await
            .unwrap();
        let chat = engine
            .create_chat(&actor, create_request(f.org, "use a tool"))
            .await
            .unwrap();
        let stopped = wait_status(&engine, &actor, chat.id, ChatStatus::Error).await;
        assert_eq!(
            stopped.last_error.unwrap().kind,
            Some(codersdk::ChatErrorKind::UsageLimit)
        );
        assert_eq!(model.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        let spent = engine
            .usage_limit_status(&actor)
            .await
            .unwrap()
            .current_spend;
        assert!(spent >= 1, "the first step was priced: {spent}");
        // Its step was kept whole: the assistant's tool call and the tool's result.
        let messages = engine
            .list_messages(
                &actor,
                chat.id,
                &codersdk::MessagePage {
                    before_id: None,
                    after_id: Some(0),
                    limit: 10,
                    ascending: true,
                },
            )
            .await
            .unwrap()
            .messages;
        let roles: Vec<_> = messages.iter().map(|m| m.role.clone()).collect();
        assert_eq!(
            roles,
            [
                codersdk::ChatMessageRole::User,
                codersdk::ChatMessageRole::Assistant,
                codersdk::ChatMessageRole::Tool
            ]
        );
        engine.shutdown().await;
    })
    .await;
}
