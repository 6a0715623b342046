//! Store tests. Every test runs on SQLite (a fresh temp file) and, when
//! `CHATD_TEST_DATABASE_URL` names a PostgreSQL database, also on PostgreSQL (a fresh schema
//! that is dropped afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use chatd_core::store::{Dialect, MessageVisibility, NewMessage, NewUser, Store, StoreOptions};
use chatd_core::ErrorKind;
use codersdk::{
    ChatClientType, ChatMessagePart, ChatMessageRole, ChatMessageUsage, ChatPlanMode, ChatStatus,
    DynamicTool, MessagePage, RawJson, Uuid,
};

use chatd_test_support::db::*;

fn page(before_id: Option<i64>, after_id: Option<i64>, limit: i64) -> MessagePage {
    MessagePage {
        before_id,
        after_id,
        limit,
        ascending: after_id.is_some() && before_id.is_none(),
    }
}

#[tokio::test]
async fn migrations_apply_and_pragmas_hold() {
    on_each_backend(|store| async move {
        let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chats")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(tables, 0);
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(store.pool())
            .await
            .unwrap();
        // Every embedded migration of this backend ran (the two backends ship the same set).
        let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
            })
            .count();
        assert!(shipped >= 2, "{shipped}");
        assert_eq!(applied, i64::try_from(shipped).unwrap());
        if store.dialect() == Dialect::Sqlite {
            let mut conn = store.pool().acquire().await.unwrap();
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(fk, 1);
            let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(busy, 5000);
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
        }
    })
    .await;
}

#[tokio::test]
async fn reopening_an_sqlite_store_keeps_data_and_migrations() {
    let db = TestDatabase::sqlite();
    let url = db.url().to_owned();
    let store = Store::connect(&url).await.unwrap();
    let f = fixture(&store).await;
    store.close().await;
    let store = Store::connect(&url).await.unwrap();
    let (chat, _) = store.create_chat(new_chat(&f, "hi")).await.unwrap();
    assert!(store.get_chat(chat.id).await.unwrap().is_some());
    store.close().await;
    db.remove().await;
}

#[tokio::test]
async fn unique_and_foreign_keys_are_enforced() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let dup = store
            .create_user(NewUser {
                username: "alice".into(),
                name: String::new(),
                role: chatd_core::Role::Member,
            })
            .await
            .unwrap_err();
        assert_eq!(dup.kind(), ErrorKind::Conflict);
        let dup = store.create_organization("acme").await.unwrap_err();
        assert_eq!(dup.kind(), ErrorKind::Conflict);
        // Adding a member twice is a no-op.
        store.add_member(f.org, f.user).await.unwrap();
        let missing = store.add_member(f.org, Uuid::new_v4()).await.unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        let mut chat = new_chat(&f, "x");
        chat.owner_id = Uuid::new_v4();
        let err = store.create_chat(chat).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    })
    .await;
}

#[tokio::test]
async fn create_and_get_round_trip() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut input = new_chat(&f, "hello");
        input.labels = BTreeMap::from([
            ("env".to_owned(), "prod".to_owned()),
            ("team".to_owned(), "core".to_owned()),
        ]);
        input.mcp_server_ids = vec![Uuid::new_v4(), Uuid::new_v4()];
        input.dynamic_tools = vec![DynamicTool {
            name: "lookup".into(),
            description: "Looks things up".into(),
            input_schema: RawJson::from_value(&serde_json::json!({"type": "object"})).unwrap(),
        }];
        input.system_prompt = "Be brief.".into();
        input.client_type = ChatClientType::Api;
        input.plan_mode = Some(ChatPlanMode::Plan);
        let model = input.model_config_id;
        let (chat, first) = store.create_chat(input).await.unwrap();

        assert_eq!(chat.status, ChatStatus::Pending);
        assert_eq!(chat.root_chat_id, Some(chat.id));
        assert_eq!(chat.last_model_config_id, model);
        assert_eq!(chat.labels.len(), 2);
        assert_eq!(first.chat_id, chat.id);
        assert_eq!(first.role, ChatMessageRole::User);
        assert_eq!(first.created_by, Some(f.user));
        assert_eq!(first.content, vec![ChatMessagePart::text("hello")]);
        assert!(first.id > 0);

        let got = store.get_chat(chat.id).await.unwrap().unwrap();
        assert_eq!(got, chat);
        // Never-null arrays stay arrays on the wire.
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(json["mcp_server_ids"].as_array().unwrap().len(), 2);
        assert!(json["children"].as_array().unwrap().is_empty());
        assert_eq!(json["labels"]["env"], "prod");
        assert_eq!(json["plan_mode"], "plan");
        assert!(json["last_turn_summary"].is_null());

        let stored: Option<String> =
            sqlx::query_scalar("SELECT dynamic_tools FROM chats WHERE id = $1")
                .bind(chat.id.to_string())
                .fetch_one(store.pool())
                .await
                .unwrap();
        let tools: Vec<DynamicTool> = serde_json::from_str(&stored.unwrap()).unwrap();
        assert_eq!(tools[0].name, "lookup");

        let (messages, has_more) = store
            .list_messages(chat.id, &page(None, None, 50))
            .await
            .unwrap();
        assert_eq!(messages, vec![first]);
        assert!(!has_more);

        assert_eq!(store.get_chat(Uuid::new_v4()).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn minimal_chat_has_empty_collections_and_no_plan_mode() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "x")).await.unwrap();
        let got = store.get_chat(chat.id).await.unwrap().unwrap();
        assert_eq!(got, chat);
        assert!(got.labels.is_empty() && got.mcp_server_ids.is_empty());
        assert_eq!(got.plan_mode, None);
        assert!(!got.archived && !got.has_unread);
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(json["labels"], serde_json::json!({}));
        assert_eq!(json["mcp_server_ids"], serde_json::json!([]));
    })
    .await;
}

#[tokio::test]
async fn list_messages_pages_and_filters() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, first) = store.create_chat(new_chat(&f, "m0")).await.unwrap();
        let mut visible = vec![first.id];
        let mut tx = store.begin_chat_tx(chat.id).await.unwrap();
        for i in 1..=6 {
            let m = tx
                .insert_message(NewMessage {
                    role: ChatMessageRole::Assistant,
                    parts: vec![ChatMessagePart::text(format!("m{i}"))],
                    visibility: MessageVisibility::Both,
                    created_by: None,
                    model_config_id: None,
                    usage: Some(ChatMessageUsage {
                        input_tokens: Some(10),
                        output_tokens: Some(i),
                        ..Default::default()
                    }),
                })
                .await
                .unwrap();
            visible.push(m.id);
            // Model-only messages are never listed.
            tx.insert_message(NewMessage {
                role: ChatMessageRole::System,
                parts: vec![ChatMessagePart::text("hidden")],
                visibility: MessageVisibility::Model,
                created_by: None,
                model_config_id: None,
                usage: None,
            })
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        // Deleted messages are never listed.
        sqlx::query("UPDATE chat_messages SET deleted = 1 WHERE id = $1")
            .bind(visible[3])
            .execute(store.pool())
            .await
            .unwrap();
        visible.remove(3);
        let ids = |ms: &[codersdk::ChatMessage]| ms.iter().map(|m| m.id).collect::<Vec<_>>();
        let newest_first: Vec<i64> = visible.iter().rev().copied().collect();

        // No cursor: newest first.
        let (ms, more) = store
            .list_messages(chat.id, &page(None, None, 3))
            .await
            .unwrap();
        assert_eq!(ids(&ms), newest_first[..3]);
        assert!(more);
        assert_eq!(ms[0].usage.as_ref().unwrap().output_tokens, Some(6));

        // before_id continues backwards.
        let (ms, more) = store
            .list_messages(chat.id, &page(Some(newest_first[2]), None, 3))
            .await
            .unwrap();
        assert_eq!(ids(&ms), newest_first[3..6]);
        assert!(!more);

        // Exactly the remaining rows: no more.
        let (ms, more) = store
            .list_messages(chat.id, &page(None, None, 6))
            .await
            .unwrap();
        assert_eq!(ms.len(), 6);
        assert!(!more);

        // after_id only: oldest first.
        let (ms, more) = store
            .list_messages(chat.id, &page(None, Some(visible[0]), 2))
            .await
            .unwrap();
        assert_eq!(ids(&ms), visible[1..3]);
        assert!(more);
        assert_eq!(ms[0].content, vec![ChatMessagePart::text("m1")]);

        // Both cursors: newest first between them.
        let (ms, more) = store
            .list_messages(chat.id, &page(Some(visible[4]), Some(visible[0]), 10))
            .await
            .unwrap();
        let expected: Vec<i64> = visible[1..4].iter().rev().copied().collect();
        assert_eq!(ids(&ms), expected);
        assert!(!more);

        // The first message has no usage; it is omitted rather than all-None.
        let (ms, _) = store
            .list_messages(chat.id, &page(Some(visible[1]), None, 10))
            .await
            .unwrap();
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].usage, None);

        let err = store
            .list_messages(Uuid::new_v4(), &page(None, None, 10))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);

        // The assistant messages are newer than the (zero) read marker.
        assert!(store.get_chat(chat.id).await.unwrap().unwrap().has_unread);
    })
    .await;
}

// `chat_lock_serializes_read_modify_write` runs raw SQL on the locked transaction's
// connection, which is crate-private: it is a unit test in `src/store/mod.rs`.

#[tokio::test]
async fn chat_lock_on_missing_chat_is_not_found() {
    on_each_backend(|store| async move {
        let err = store.begin_chat_tx(Uuid::new_v4()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        // The failed attempt released its lock: another writer gets through.
        fixture(&store).await;
    })
    .await;
}

#[tokio::test]
async fn rolled_back_chat_tx_writes_nothing() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "x")).await.unwrap();
        let mut tx = store.begin_chat_tx(chat.id).await.unwrap();
        assert_eq!(tx.chat_id(), chat.id);
        tx.insert_message(NewMessage {
            role: ChatMessageRole::Assistant,
            parts: vec![ChatMessagePart::text("never")],
            visibility: MessageVisibility::Both,
            created_by: None,
            model_config_id: Some(Uuid::new_v4()),
            usage: None,
        })
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        let (ms, _) = store
            .list_messages(chat.id, &page(None, None, 10))
            .await
            .unwrap();
        assert_eq!(ms.len(), 1);
        assert_eq!(store.get_chat(chat.id).await.unwrap().unwrap(), chat);
    })
    .await;
}

#[tokio::test]
async fn bad_urls_and_schemas_are_rejected() {
    let err = Store::connect("mysql://localhost/x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let mut options = StoreOptions::new("postgres://127.0.0.1:1/x");
    options.schema = Some("bad name".into());
    let err = Store::connect_with(options).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let mut options = StoreOptions::new("sqlite:///tmp/never-created.db");
    options.schema = Some("s".into());
    let err = Store::connect_with(options).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn both_backends_ship_the_same_migrations() {
    let names = |dir: &str| {
        let mut v: Vec<String> =
            std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        v.sort();
        v
    };
    assert_eq!(names("sqlite"), names("postgres"));
}

#[tokio::test]
async fn api_tokens_are_stored_hashed_and_authenticate_their_user() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let token = store.create_api_token(f.user).await.unwrap();
        let token = token.expose().to_owned();
        assert!(token.starts_with(chatd_core::store::API_TOKEN_PREFIX));
        let user = store.authenticate_token(&token).await.unwrap().unwrap();
        assert_eq!(user.id, f.user);
        // Only the hash is stored.
        let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_eq!(stored, vec![chatd_core::store::hash_api_token(&token)]);
        assert!(!stored[0].contains(&token));
        assert!(store
            .authenticate_token("chatd_wrong")
            .await
            .unwrap()
            .is_none());
        assert!(store.authenticate_token("").await.unwrap().is_none());
        let long = "x".repeat(chatd_core::store::MAX_API_TOKEN_LEN + 1);
        assert!(store.authenticate_token(&long).await.unwrap().is_none());
        // An operator-chosen token, stored twice, still authenticates once.
        store
            .insert_api_token(f.user, "chatd_admin_fixed")
            .await
            .unwrap();
        store
            .insert_api_token(f.user, "chatd_admin_fixed")
            .await
            .unwrap();
        assert!(store
            .authenticate_token("chatd_admin_fixed")
            .await
            .unwrap()
            .is_some());
    })
    .await;
}

/// A pooled PostgreSQL connection whose server side went away while it sat idle for more
/// than `PING_IDLE_AFTER` is pinged, found broken and replaced before use: the statement
/// succeeds. (One used more recently is handed out without the ping's round trip.)
#[tokio::test]
async fn a_connection_broken_while_idle_is_replaced_before_use() {
    let Some(url) = postgres_url() else {
        eprintln!("CHATD_TEST_DATABASE_URL is not set: this PostgreSQL-only test ran nothing");
        return;
    };
    let db = TestDatabase::postgres(&url).await;
    let store = db.connect_store().await;
    // Open a connection and return it to the pool.
    store.get_chat(Uuid::new_v4()).await.unwrap();
    // End the store's connections from outside, as a database restart or a proxy would.
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let ended: Vec<String> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity \
         WHERE application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db.schema().unwrap())
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ended.is_empty(), "the store had a connection open");
    tokio::time::sleep(chatd_core::store::PING_IDLE_AFTER + std::time::Duration::from_millis(200))
        .await;
    assert_eq!(store.get_chat(Uuid::new_v4()).await.unwrap(), None);
    store.close().await;
    db.remove().await;
}

/// SQLite's write-ahead log is checkpointed in the background (`SQLITE_CHECKPOINT_INTERVAL`),
/// not by the commit that crosses SQLite's automatic mark: a second batch of writes after a
/// quiet moment reuses the log from its start instead of growing it (the batches stay under
/// the automatic mark of 1 000 pages, so without the background checkpoint the log would
/// hold both).
#[tokio::test]
async fn sqlite_checkpoints_its_log_beside_the_writer() {
    let db = TestDatabase::sqlite();
    let store = db.connect_store().await;
    // The test's own writer never checkpoints either, so only the store's checkpoints can
    // reset the log.
    let mut raw = <sqlx::AnyConnection as sqlx::Connection>::connect(db.url())
        .await
        .unwrap();
    sqlx::query("PRAGMA wal_autocheckpoint = 0")
        .execute(&mut raw)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE wal_probe (x TEXT)")
        .execute(&mut raw)
        .await
        .unwrap();
    let wal = {
        let mut path = db.path().unwrap().as_os_str().to_owned();
        path.push("-wal");
        std::path::PathBuf::from(path)
    };
    async fn batch(raw: &mut sqlx::AnyConnection) {
        for _ in 0..200 {
            sqlx::query("INSERT INTO wal_probe (x) VALUES ($1)")
                .bind("x".repeat(3000))
                .execute(&mut *raw)
                .await
                .unwrap();
        }
    }
    batch(&mut raw).await;
    let first = std::fs::metadata(&wal).unwrap().len();
    tokio::time::sleep(chatd_core::store::SQLITE_CHECKPOINT_INTERVAL * 3).await;
    batch(&mut raw).await;
    let second = std::fs::metadata(&wal).unwrap().len();
    assert!(
        second < first + first / 2,
        "the log was reused after the checkpoint: {first} then {second} bytes"
    );
    sqlx::Connection::close(raw).await.unwrap();
    store.close().await;
    db.remove().await;
}
