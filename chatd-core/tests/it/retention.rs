//! Chat file links and retention (docs/retention.md), on SQLite and PostgreSQL: files
//! linked on create, send (also queued) and edit with the 20-file limit and its warning;
//! `Chat::files`; the purge of old archived families and unlinked files; automatic
//! archiving by UTC date with a controllable clock; batches; the sweep's lease.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::{
    file_link_error_warning, file_link_limit_warning, NewFile, NewSubagent, SendMessage,
    SendOutcome, Store, UNLINKED_FILE_GRACE,
};
use chatd_core::subagents::SubagentType;
use chatd_core::{
    Actor, Clock, Engine, EngineSettings, FileUpload, ManualClock, RetentionSweep,
    RETENTION_BATCH_SIZE,
};
use chatd_test_support::db::{fixture, new_chat, on_each_backend, Fixture, RawSql};
use chatd_test_support::scripted::{
    create_request, deltas, engine_with_config, fast_settings, wait_status, Reply, ScriptedModel,
};
use chrono::{DateTime, Utc};
use codersdk::{
    ChatInputPart, ChatMessagePart, ChatStatus, ChatWatchEventKind, CreateChatMessageRequest,
    EditChatMessageRequest, Uuid, MAX_CHAT_FILE_LINKS,
};
use tokio::sync::Notify;

const DAY_MICROS: i64 = 24 * 60 * 60 * 1_000_000;

/// Fast settings without the background job (sweeps run when the test says) and without
/// stale recovery (tests set statuses by hand).
fn settings() -> EngineSettings {
    let mut s = fast_settings();
    s.retention_interval = None;
    s.recovery_interval = Duration::from_secs(3600);
    s.stale_after = Duration::from_secs(7200);
    s
}

async fn engine_at(store: &Store, model: Arc<ScriptedModel>, clock: &ManualClock) -> Engine {
    let clock = Arc::new(clock.clone());
    engine_with_config(store, model, settings(), move |c| {
        c.with_clock(clock).with_generated_titles(false)
    })
    .await
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn micros(text: &str) -> i64 {
    at(text).timestamp_micros()
}

async fn upload(engine: &Engine, actor: &Actor, org: Uuid, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let upload = FileUpload::new(org, "text/plain", format!("file {i}").into_bytes())
            .with_name(format!("f{i}.txt"));
        ids.push(engine.upload_file(actor, upload).await.unwrap().id);
    }
    ids
}

fn with_files(text: &str, files: &[Uuid]) -> Vec<ChatInputPart> {
    std::iter::once(ChatInputPart::text(text))
        .chain(files.iter().map(|id| ChatInputPart::file(*id)))
        .collect()
}

fn all() -> codersdk::MessagePage {
    codersdk::MessagePage {
        before_id: None,
        after_id: Some(0),
        limit: 200,
        ascending: true,
    }
}

fn ids(files: &[codersdk::ChatFileMetadata]) -> BTreeSet<Uuid> {
    files.iter().map(|f| f.id).collect()
}

async fn linked(store: &Store, chat: Uuid) -> BTreeSet<Uuid> {
    ids(&store.linked_files(chat).await.unwrap())
}

async fn count(store: &Store, sql: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(id.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Runs `sql` with `$1` the chat (or file) `id`.
async fn exec1(store: &Store, sql: &str, id: Uuid) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
}

/// Runs `sql` with `$1` the chat (or file) `id` and `$2` a number.
async fn exec(store: &Store, sql: &str, id: Uuid, value: i64) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(id.to_string())
        .bind(value)
        .execute(store.pool())
        .await
        .unwrap();
}

async fn sweep(engine: &Engine) -> RetentionSweep {
    let report = engine.run_retention_sweep().await.unwrap().unwrap();
    assert_eq!(report.failed_steps, 0, "{report:?}");
    report
}

/// A root chat of the fixture's user with `children` sub-agents, every member `waiting`
/// (made through the store, so no engine runs them).
async fn family(store: &Store, f: &Fixture, children: usize) -> (Uuid, Vec<Uuid>) {
    let (root, _) = store.create_chat(new_chat(f, "root")).await.unwrap();
    let mut kids = Vec::new();
    for i in 0..children {
        let (child, _) = store
            .create_subagent(NewSubagent::new(
                root.id,
                SubagentType::General,
                format!("child {i}"),
                Uuid::new_v4(),
                vec![ChatMessagePart::text("go")],
            ))
            .await
            .unwrap();
        kids.push(child.id);
    }
    exec1(
        store,
        "UPDATE chats SET status = 'waiting' WHERE root_chat_id = $1",
        root.id,
    )
    .await;
    (root.id, kids)
}

/// Makes every member of `root`'s family last active at `when`: chats updated then, their
/// messages written then.
async fn idle_since(store: &Store, root: Uuid, when: i64) {
    exec(
        store,
        "UPDATE chats SET updated_at = $2 WHERE root_chat_id = $1",
        root,
        when,
    )
    .await;
    exec(
        store,
        "UPDATE chat_messages SET created_at = $2 \
         WHERE chat_id IN (SELECT id FROM chats WHERE root_chat_id = $1)",
        root,
        when,
    )
    .await;
}

async fn is_archived(store: &Store, chat: Uuid) -> bool {
    store.get_chat(chat).await.unwrap().unwrap().archived
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_linked_on_create_send_and_edit_up_to_the_limit() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let clock = ManualClock::new(Utc::now());
        let model = ScriptedModel::new([]);
        let engine = engine_at(&store, Arc::clone(&model), &clock).await;
        let files = upload(&engine, &actor, f.org, MAX_CHAT_FILE_LINKS + 3).await;
        let mut watch = engine.watch(&actor).unwrap();

        // Create: the message's files are linked and listed in the answer; the watch event
        // carries no files.
        let mut request = create_request(f.org, "two files");
        request.content = with_files("two files", &files[..2]);
        let chat = engine.create_chat(&actor, request).await.unwrap();
        assert_eq!(ids(&chat.files), files[..2].iter().copied().collect());
        assert!(chat.warnings.is_empty(), "{:?}", chat.warnings);
        let created = tokio::time::timeout(Duration::from_secs(5), watch.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(created.kind, ChatWatchEventKind::Created);
        assert!(created.chat.files.is_empty() && created.chat.warnings.is_empty());
        let got = engine.get_chat(&actor, chat.id).await.unwrap();
        assert_eq!(ids(&got.files), ids(&chat.files));
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;

        // Send: one already linked and new ones up to exactly the limit.
        let send = |content: Vec<ChatInputPart>| CreateChatMessageRequest {
            content,
            ..Default::default()
        };
        let sent = engine
            .send_message(
                &actor,
                chat.id,
                send(with_files("more", &files[1..MAX_CHAT_FILE_LINKS])),
            )
            .await
            .unwrap();
        assert!(sent.warnings.is_empty(), "{:?}", sent.warnings);
        assert_eq!(linked(&store, chat.id).await.len(), MAX_CHAT_FILE_LINKS);
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;

        // One more is over the limit: the message is sent, the file not linked, and the
        // answer says so in codersdk's words.
        let over = &files[MAX_CHAT_FILE_LINKS..MAX_CHAT_FILE_LINKS + 1];
        let sent = engine
            .send_message(&actor, chat.id, send(with_files("over", over)))
            .await
            .unwrap();
        assert!(sent.message.is_some());
        assert_eq!(
            sent.warnings,
            ["file linking skipped: batch of 1 file(s) would exceed limit of 20"]
        );
        assert_eq!(sent.warnings, [file_link_limit_warning(1)]);
        assert_eq!(linked(&store, chat.id).await.len(), MAX_CHAT_FILE_LINKS);
        let got = engine.get_chat(&actor, chat.id).await.unwrap();
        assert_eq!(got.files.len(), MAX_CHAT_FILE_LINKS);
        assert!(!ids(&got.files).contains(&over[0]));
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;

        // Edit: the replacement's files are a batch too (refused here, the chat is full).
        let first = engine
            .list_messages(&actor, chat.id, &all())
            .await
            .unwrap()
            .messages
            .into_iter()
            .map(|m| m.id)
            .min()
            .unwrap();
        let edited = engine
            .edit_message(
                &actor,
                chat.id,
                first,
                EditChatMessageRequest {
                    content: with_files("edited", &files[MAX_CHAT_FILE_LINKS..]),
                },
            )
            .await
            .unwrap();
        assert_eq!(edited.warnings, [file_link_limit_warning(3)]);
        wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;

        // A second chat: a message queued behind a running turn links its files when it is
        // queued, and an edit links the replacement's.
        let gate = Arc::new(Notify::new());
        model.push(Reply::Gated {
            before: deltas("working "),
            gate: Arc::clone(&gate),
            after: deltas("done"),
        });
        let other = engine
            .create_chat(&actor, create_request(f.org, "no files"))
            .await
            .unwrap();
        assert!(other.files.is_empty() && other.warnings.is_empty());
        wait_status(&engine, &actor, other.id, ChatStatus::Running).await;
        let queued = engine
            .send_message(&actor, other.id, send(with_files("queued", &files[..1])))
            .await
            .unwrap();
        assert!(queued.queued, "{queued:?}");
        assert!(queued.warnings.is_empty());
        assert_eq!(
            linked(&store, other.id).await,
            files[..1].iter().copied().collect()
        );
        gate.notify_one();
        wait_status(&engine, &actor, other.id, ChatStatus::Waiting).await;
        let first = engine
            .list_messages(&actor, other.id, &all())
            .await
            .unwrap()
            .messages
            .into_iter()
            .map(|m| m.id)
            .min()
            .unwrap();
        let edited = engine
            .edit_message(
                &actor,
                other.id,
                first,
                EditChatMessageRequest {
                    content: with_files("edited", &files[MAX_CHAT_FILE_LINKS..]),
                },
            )
            .await
            .unwrap();
        assert!(edited.warnings.is_empty(), "{:?}", edited.warnings);
        let expected: BTreeSet<Uuid> = files[..1]
            .iter()
            .chain(&files[MAX_CHAT_FILE_LINKS..])
            .copied()
            .collect();
        assert_eq!(
            ids(&engine.get_chat(&actor, other.id).await.unwrap().files),
            expected
        );
        // The same file in two chats is linked to both.
        assert!(linked(&store, chat.id).await.contains(&files[0]));
        engine.shutdown().await;
    })
    .await;
}

/// A link statement that fails (here: a file that no longer exists) undoes the message's
/// whole batch under its savepoint and becomes a warning; the message is stored all the
/// same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_to_link_is_a_warning_and_the_message_is_still_stored() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = family(&store, &f, 0).await;
        let present = store
            .create_file(NewFile {
                owner_id: f.user,
                organization_id: f.org,
                name: "a.txt".into(),
                mime_type: "text/plain".into(),
                data: b"a".to_vec(),
            })
            .await
            .unwrap();
        let gone = Uuid::new_v4();
        let sent = store
            .send_message(
                chat,
                SendMessage {
                    parts: vec![
                        ChatMessagePart::text("two files"),
                        ChatMessagePart::file(present.id, "text/plain"),
                        ChatMessagePart::file(gone, "text/plain"),
                    ],
                    created_by: Some(f.user),
                    model_config_id: None,
                    busy_behavior: codersdk::ChatBusyBehavior::Queue,
                    plan_mode: None,
                    mcp_server_ids: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(sent.warnings, [file_link_error_warning(2)]);
        assert_eq!(
            sent.warnings,
            ["2 file(s) could not be linked due to a server error"]
        );
        let SendOutcome::Inserted(message) = sent.outcome else {
            panic!("inserted: {:?}", sent.outcome)
        };
        assert!(store.linked_files(chat).await.unwrap().is_empty());
        let sql = "SELECT COUNT(*) FROM chat_messages WHERE chat_id = $1";
        assert_eq!(count(&store, sql, chat).await, 2, "{message:?}");
        assert_eq!(
            store.get_chat(chat).await.unwrap().unwrap().status,
            ChatStatus::Pending
        );
        // The next message links its file: the transaction went on after the savepoint.
        let sent = store
            .send_message(
                chat,
                SendMessage {
                    parts: vec![ChatMessagePart::file(present.id, "text/plain")],
                    created_by: Some(f.user),
                    model_config_id: None,
                    busy_behavior: codersdk::ChatBusyBehavior::Queue,
                    plan_mode: None,
                    mcp_server_ids: None,
                },
            )
            .await
            .unwrap();
        assert!(sent.warnings.is_empty());
        assert!(matches!(sent.outcome, SendOutcome::Queued { .. }));
        assert_eq!(
            linked(&store, chat).await,
            [present.id].into_iter().collect()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_archived_families_and_unlinked_files_are_purged() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        let now = Utc::now();
        let clock = ManualClock::new(now);
        let engine = engine_at(&store, ScriptedModel::new([]), &clock).await;
        let files = upload(&engine, &actor, f.org, 5).await;
        let (shared, only_old, old_unlinked, fresh_unlinked, kept_chat_file) =
            (files[0], files[1], files[2], files[3], files[4]);
        let old = now.timestamp_micros() - 30 * DAY_MICROS;

        // The old archived family: a root with a child, labels, a queued message and
        // links to two files (one also linked to a chat that stays).
        let (old_root, old_kids) = family(&store, &f, 1).await;
        sqlx::query("INSERT INTO chat_labels (chat_id, key, value) VALUES ($1, 'k', 'v')")
            .bind(old_root.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO chat_queued_messages (chat_id, content, created_at) \
             VALUES ($1, '[]', 0)",
        )
        .bind(old_root.to_string())
        .execute(store.pool())
        .await
        .unwrap();
        for (chat, file) in [(old_root, shared), (old_kids[0], only_old)] {
            sqlx::query("INSERT INTO chat_file_links (chat_id, file_id) VALUES ($1, $2)")
                .bind(chat.to_string())
                .bind(file.to_string())
                .execute(store.pool())
                .await
                .unwrap();
        }
        // Chats that stay: archived recently, never archived (but idle as long), and an
        // old archived family with a running member.
        let (recent_root, _) = family(&store, &f, 0).await;
        let (live_root, _) = family(&store, &f, 0).await;
        let (busy_root, busy_kids) = family(&store, &f, 1).await;
        for chat in [live_root, recent_root] {
            sqlx::query("INSERT INTO chat_file_links (chat_id, file_id) VALUES ($1, $2)")
                .bind(chat.to_string())
                .bind(
                    if chat == live_root {
                        shared
                    } else {
                        kept_chat_file
                    }
                    .to_string(),
                )
                .execute(store.pool())
                .await
                .unwrap();
        }
        for root in [old_root, recent_root, busy_root] {
            let changed = store.set_archived(root, true).await.unwrap();
            assert!(!changed.is_empty());
        }
        for root in [old_root, busy_root] {
            exec(
                &store,
                "UPDATE chats SET archived_at = $2 WHERE root_chat_id = $1",
                root,
                old,
            )
            .await;
        }
        idle_since(&store, live_root, old).await;
        exec1(
            &store,
            "UPDATE chats SET status = 'running' WHERE id = $1",
            busy_kids[0],
        )
        .await;
        // Every file but the fresh one is older than the grace period.
        for file in [shared, only_old, old_unlinked, kept_chat_file] {
            exec(
                &store,
                "UPDATE chat_files SET created_at = $2 WHERE id = $1",
                file,
                old,
            )
            .await;
        }

        // Off (0) by default: nothing is purged.
        let report = sweep(&engine).await;
        assert_eq!(
            (report.purged_families, report.purged_files),
            (0, 0),
            "{report:?}"
        );
        store.set_retention_days(7).await.unwrap();
        let report = sweep(&engine).await;
        assert_eq!(report.retention_days, 7);
        assert_eq!(report.purged_families, 1, "{report:?}");
        assert_eq!(report.purged_chats, 2);
        assert_eq!(report.purged_files, 2);
        assert_eq!(report.archived_families, 0);
        for chat in [old_root, old_kids[0]] {
            assert!(store.get_chat(chat).await.unwrap().is_none());
            for table in [
                "chat_messages",
                "chat_queued_messages",
                "chat_labels",
                "chat_file_links",
            ] {
                let sql = format!("SELECT COUNT(*) FROM {table} WHERE chat_id = $1");
                assert_eq!(count(&store, &sql, chat).await, 0, "{table}");
            }
        }
        for chat in [recent_root, live_root, busy_root, busy_kids[0]] {
            assert!(store.get_chat(chat).await.unwrap().is_some(), "{chat}");
        }
        let sql = "SELECT COUNT(*) FROM chat_files WHERE id = $1";
        for (file, kept) in [
            (shared, true),
            (only_old, false),
            (old_unlinked, false),
            (fresh_unlinked, true),
            (kept_chat_file, true),
        ] {
            assert_eq!(count(&store, sql, file).await, i64::from(kept), "{file}");
        }
        // The fresh file goes once it is older than the grace period; the recently archived
        // family once its archive is older than the window.
        let grace = chrono::TimeDelta::from_std(UNLINKED_FILE_GRACE).unwrap();
        clock.set(now + grace + chrono::TimeDelta::seconds(1));
        let report = sweep(&engine).await;
        assert_eq!(report.purged_files, 2, "{report:?}");
        assert_eq!(report.purged_families, 1, "{report:?}");
        assert_eq!(count(&store, sql, fresh_unlinked).await, 0);
        assert!(store.get_chat(recent_root).await.unwrap().is_none());
        assert_eq!(count(&store, sql, kept_chat_file).await, 0);
        // Still never the busy family, however old.
        assert!(store.get_chat(busy_root).await.unwrap().is_some());
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_families_are_archived_by_utc_date_all_of_a_day_in_one_sweep() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let actor = Actor::user(f.user);
        // Families made before the engine starts: it must not run them.
        let (early, early_kids) = family(&store, &f, 1).await;
        let (late, _) = family(&store, &f, 0).await;
        let (next_day, _) = family(&store, &f, 0).await;
        let (child_active, child_active_kids) = family(&store, &f, 1).await;
        let (message_later, _) = family(&store, &f, 0).await;
        let (busy, busy_kids) = family(&store, &f, 1).await;
        let (pinned, _) = family(&store, &f, 0).await;
        for root in [early, child_active, busy, pinned, message_later] {
            idle_since(&store, root, micros("2026-01-10T00:00:01Z")).await;
        }
        idle_since(&store, late, micros("2026-01-10T23:59:59.999999Z")).await;
        idle_since(&store, next_day, micros("2026-01-11T00:00:00Z")).await;
        exec(
            &store,
            "UPDATE chats SET updated_at = $2 WHERE id = $1",
            child_active_kids[0],
            micros("2026-01-11T08:00:00Z"),
        )
        .await;
        exec(
            &store,
            "UPDATE chat_messages SET created_at = $2 WHERE chat_id = $1",
            message_later,
            micros("2026-01-11T12:00:00Z"),
        )
        .await;
        exec1(
            &store,
            "UPDATE chats SET status = 'running' WHERE id = $1",
            busy_kids[0],
        )
        .await;
        exec1(
            &store,
            "UPDATE chats SET pin_order = 1 WHERE id = $1",
            pinned,
        )
        .await;
        let clock = ManualClock::new(at("2026-01-11T00:00:00Z"));
        let engine = engine_at(&store, ScriptedModel::new([]), &clock).await;
        store.set_auto_archive_days(1).await.unwrap();
        let mut watch = engine.watch(&actor).unwrap();

        // All through the day after, nothing is due: a day's idle chats wait for midnight.
        for now in ["2026-01-11T00:00:00Z", "2026-01-11T23:59:59.999Z"] {
            clock.set(at(now));
            let report = sweep(&engine).await;
            assert_eq!(report.archived_families, 0, "{now}: {report:?}");
        }
        // The first sweep after midnight archives the whole day's families at once, with
        // their sub-agents.
        clock.set(at("2026-01-12T00:00:00Z"));
        let report = sweep(&engine).await;
        assert_eq!(report.auto_archive_days, 1);
        assert_eq!(report.archived_families, 2, "{report:?}");
        assert_eq!(report.archived_chats, 3);
        for chat in [early, early_kids[0], late] {
            assert!(is_archived(&store, chat).await, "{chat}");
        }
        for chat in [
            next_day,
            child_active,
            message_later,
            busy,
            busy_kids[0],
            pinned,
        ] {
            assert!(!is_archived(&store, chat).await, "{chat}");
        }
        // The watch heard each archived chat go, as for a user's archive.
        let mut deleted = BTreeSet::new();
        while deleted.len() < 3 {
            let event = tokio::time::timeout(Duration::from_secs(5), watch.recv())
                .await
                .expect("a deleted event per archived chat")
                .unwrap();
            if event.kind == ChatWatchEventKind::Deleted {
                assert!(event.chat.archived);
                deleted.insert(event.chat.id);
            }
        }
        assert_eq!(deleted, [early, early_kids[0], late].into_iter().collect());
        // Later that day: nothing more.
        clock.set(at("2026-01-12T18:00:00Z"));
        assert_eq!(sweep(&engine).await.archived_families, 0);
        // The next midnight takes the next day's: activity anywhere in the family counts.
        clock.set(at("2026-01-13T00:00:01Z"));
        let report = sweep(&engine).await;
        assert_eq!(report.archived_families, 3, "{report:?}");
        for chat in [next_day, child_active, child_active_kids[0], message_later] {
            assert!(is_archived(&store, chat).await, "{chat}");
        }
        // Never a family with a running member, never a pinned chat.
        clock.set(at("2026-03-01T00:00:00Z"));
        assert_eq!(sweep(&engine).await.archived_families, 0);
        for chat in [busy, busy_kids[0], pinned] {
            assert!(!is_archived(&store, chat).await, "{chat}");
        }
        assert_eq!(
            store.get_chat(busy_kids[0]).await.unwrap().unwrap().status,
            ChatStatus::Running
        );
        // Once idle and unpinned they qualify, unless archiving is off (0).
        exec1(
            &store,
            "UPDATE chats SET status = 'waiting' WHERE root_chat_id = $1",
            busy,
        )
        .await;
        exec1(
            &store,
            "UPDATE chats SET pin_order = 0 WHERE id = $1",
            pinned,
        )
        .await;
        store.set_auto_archive_days(0).await.unwrap();
        assert_eq!(sweep(&engine).await.archived_families, 0);
        store.set_auto_archive_days(1).await.unwrap();
        assert_eq!(sweep(&engine).await.archived_families, 2);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_a_batch_is_swept_over_successive_batches() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let n = RETENTION_BATCH_SIZE + 3;
        let old = micros("2026-01-01T00:00:00Z");
        let mut to_archive = Vec::new();
        let mut to_purge = Vec::new();
        for i in 0..2 * n {
            let (root, _) = family(&store, &f, 0).await;
            idle_since(&store, root, old).await;
            if i % 2 == 0 {
                to_archive.push(root);
            } else {
                to_purge.push(root);
            }
        }
        for root in &to_purge {
            store.set_archived(*root, true).await.unwrap();
            exec(
                &store,
                "UPDATE chats SET archived_at = $2 WHERE id = $1",
                *root,
                old,
            )
            .await;
        }
        // Unlinked old files: more than a batch too.
        for i in 0..n {
            let id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO chat_files (id, owner_id, organization_id, name, mime_type, data, \
                 size_bytes, created_at) VALUES ($1, $2, $3, $4, 'text/plain', $5, 1, $6)",
            )
            .bind(id.to_string())
            .bind(f.user.to_string())
            .bind(f.org.to_string())
            .bind(format!("{i}.txt"))
            .bind(b"x".to_vec())
            .bind(old)
            .execute(store.pool())
            .await
            .unwrap();
        }
        let clock = ManualClock::new(at("2026-02-01T12:00:00Z"));
        let engine = engine_at(&store, ScriptedModel::new([]), &clock).await;
        store.set_auto_archive_days(7).await.unwrap();
        store.set_retention_days(7).await.unwrap();
        let report = sweep(&engine).await;
        let n = u64::try_from(n).unwrap();
        assert_eq!(report.archived_families, n, "{report:?}");
        assert_eq!(report.purged_families, n, "{report:?}");
        assert_eq!(report.purged_files, n, "{report:?}");
        for root in &to_archive {
            assert!(is_archived(&store, *root).await);
        }
        for root in &to_purge {
            assert!(store.get_chat(*root).await.unwrap().is_none());
        }
        // Nothing left for the next sweep (what it archived was archived just now).
        let report = sweep(&engine).await;
        assert_eq!(
            (
                report.archived_families,
                report.purged_families,
                report.purged_files
            ),
            (0, 0, 0)
        );
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_at_a_time_sweeps() {
    on_each_backend(|store| async move {
        let clock = ManualClock::new(Utc::now());
        let engine = engine_at(&store, ScriptedModel::new([]), &clock).await;
        let held = store.try_retention_lease().await.unwrap().unwrap();
        let other = engine.run_retention_sweep().await.unwrap();
        match store.dialect() {
            // Another replica holds the lease: this one skips its sweep.
            chatd_core::store::Dialect::Postgres => assert!(other.is_none()),
            // One process: no lease to wait for.
            chatd_core::store::Dialect::Sqlite => assert!(other.is_some()),
        }
        held.release().await.unwrap();
        let report = engine.run_retention_sweep().await.unwrap().unwrap();
        assert_eq!(report.started_at, clock.now());
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_sweeps_on_its_own_at_its_interval() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (root, _) = family(&store, &f, 0).await;
        idle_since(&store, root, micros("2026-01-01T00:00:00Z")).await;
        store.set_auto_archive_days(1).await.unwrap();
        let clock = Arc::new(ManualClock::new(at("2026-02-01T00:00:00Z")));
        let mut s = settings();
        s.retention_interval = Some(Duration::from_millis(50));
        let engine = engine_with_config(&store, ScriptedModel::new([]), s, move |c| {
            c.with_clock(clock).with_generated_titles(false)
        })
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !is_archived(&store, root).await {
            assert!(tokio::time::Instant::now() < deadline, "never archived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        engine.shutdown().await;
    })
    .await;
}

/// A measurement, not a check (docs/retention.md "Measurements"): how long purging a
/// backlog of archived families takes, each with messages, and how long one batch's
/// transaction holds the database. Run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (docs/retention.md); run with --ignored --nocapture"]
async fn measure_purging_a_backlog_of_archived_families() {
    const FAMILIES: usize = 1000;
    const MESSAGES: usize = 20;
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let old = micros("2026-01-01T00:00:00Z");
        for _ in 0..FAMILIES {
            let (root, _) = family(&store, &f, 0).await;
            for _ in 1..MESSAGES {
                sqlx::query(
                    "INSERT INTO chat_messages (chat_id, role, content, content_version, \
                     visibility, created_at) VALUES ($1, 'assistant', $2, 1, 'both', 0)",
                )
                .bind(root.to_string())
                .bind(format!(
                    r#"[{{"type":"text","text":"{}"}}]"#,
                    "x".repeat(500)
                ))
                .execute(store.pool())
                .await
                .unwrap();
            }
            exec(
                &store,
                "UPDATE chats SET archived = 1, archived_at = $2 WHERE id = $1",
                root,
                old,
            )
            .await;
        }
        let clock = ManualClock::new(at("2026-02-01T00:00:00Z"));
        let engine = engine_at(&store, ScriptedModel::new([]), &clock).await;
        store.set_retention_days(7).await.unwrap();
        let cutoff = micros("2026-01-20T00:00:00Z");
        let started = std::time::Instant::now();
        let batch = store
            .purge_archived_chats(cutoff, RETENTION_BATCH_SIZE)
            .await
            .unwrap();
        let one_batch = started.elapsed();
        let report = sweep(&engine).await;
        println!(
            "{:?}: one batch of {} families ({} messages each) in {:?}; the rest ({} families) \
             in one sweep of {:?}",
            store.dialect(),
            batch.families,
            MESSAGES,
            one_batch,
            report.purged_families,
            report.duration
        );
        assert_eq!(
            batch.families + report.purged_families,
            u64::try_from(FAMILIES).unwrap()
        );
        engine.shutdown().await;
    })
    .await;
}

/// Debug runs last written before the debug retention window (default 30 days) are purged
/// by the sweep; newer ones stay; a window of 0 keeps them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_purges_debug_runs_older_than_the_debug_retention() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let now = at("2026-12-07T12:00:00Z");
        let clock = ManualClock::new(now);
        let engine = engine_at(&store, ScriptedModel::new([]), &clock).await;
        let (chat, _) = store.create_chat(new_chat(&f, "debugged")).await.unwrap();
        let run = |started_at: i64| chatd_core::store::NewDebugRun {
            id: Uuid::new_v4(),
            chat_id: chat.id,
            root_chat_id: None,
            parent_chat_id: None,
            model_config_id: None,
            trigger_message_id: None,
            history_tip_message_id: None,
            kind: codersdk::ChatDebugRunKind::ChatTurn,
            provider: None,
            model: None,
            started_at,
        };
        let now_micros = now.timestamp_micros();
        let old = run(now_micros - 30 * DAY_MICROS - 1);
        let edge = run(now_micros - 30 * DAY_MICROS);
        let fresh = run(now_micros - DAY_MICROS);
        for r in [&old, &edge, &fresh] {
            store.insert_debug_run(r).await.unwrap();
        }
        store.set_debug_retention_days(0).await.unwrap();
        let report = sweep(&engine).await;
        assert_eq!(
            (report.debug_retention_days, report.purged_debug_runs),
            (0, 0)
        );
        store.set_debug_retention_days(30).await.unwrap();
        let report = sweep(&engine).await;
        assert_eq!(
            (report.debug_retention_days, report.purged_debug_runs),
            (30, 1)
        );
        let left: BTreeSet<Uuid> = store
            .list_debug_runs(chat.id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(left, BTreeSet::from([edge.id, fresh.id]));
        engine.shutdown().await;
    })
    .await;
}
