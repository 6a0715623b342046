//! A clean shutdown leaves no SQLite write-ahead log behind: the engine that opened the
//! database closes it, and closing checkpoints and truncates the log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use chatd_core::store::{Store, StoreOptions};
use chatd_core::{Actor, Engine, EngineConfig};
use chatd_test_support::db::{fixture, TestDatabase};
use chatd_test_support::scripted::{
    create_request, fast_settings, wait_status, Reply, ScriptedModel, ScriptedResolver,
};
use codersdk::ChatStatus;

/// The size of the database's `-wal` file; `None` when there is none.
fn wal_len(db: &Path) -> Option<u64> {
    let mut wal = db.to_path_buf().into_os_string();
    wal.push("-wal");
    std::fs::metadata(wal).ok().map(|m| m.len())
}

/// A fresh SQLite database (removed when dropped, also if the test panics), its file and
/// its URL.
fn temp_db() -> (TestDatabase, PathBuf, String) {
    let db = TestDatabase::sqlite();
    let path = db
        .path()
        .expect("a SQLite database has a file")
        .to_path_buf();
    let url = db.url().to_owned();
    (db, path, url)
}

#[tokio::test]
async fn engine_shutdown_checkpoints_the_sqlite_wal() {
    let (db, path, url) = temp_db();
    let model = ScriptedModel::new([Reply::Text("hello there".into())]);
    let config = EngineConfig::new(StoreOptions::new(&url), ScriptedResolver::new(model))
        .with_settings(fast_settings())
        .with_generated_titles(false);
    let engine = Engine::start(config).await.unwrap();
    let f = fixture(engine.store()).await;
    let actor = Actor::user(f.user);
    let chat = engine
        .create_chat(&actor, create_request(f.org, "hi"))
        .await
        .unwrap();
    wait_status(&engine, &actor, chat.id, ChatStatus::Waiting).await;
    // The turn's writes are in the log, not yet in the database file.
    assert!(
        wal_len(&path).unwrap_or(0) > 0,
        "the writes went to the WAL"
    );
    engine.shutdown().await;
    assert_eq!(
        wal_len(&path).unwrap_or(0),
        0,
        "a clean shutdown leaves no WAL content"
    );
    // Everything committed is in the database file.
    let store = Store::connect(&url).await.unwrap();
    let stored = store.get_chat(chat.id).await.unwrap().unwrap();
    assert_eq!(stored.status, ChatStatus::Waiting);
    store.close().await;
    assert_eq!(wal_len(&path).unwrap_or(0), 0);
    db.remove().await;
}

#[tokio::test]
async fn an_engine_given_a_store_leaves_it_open_for_its_owner() {
    let (db, path, url) = temp_db();
    let store = Store::connect(&url).await.unwrap();
    let engine = chatd_test_support::scripted::engine(&store, ScriptedModel::new([])).await;
    let f = fixture(&store).await;
    engine.shutdown().await;
    // The store still works after the engine is gone...
    assert!(store.is_member(f.org, f.user).await.unwrap());
    assert!(wal_len(&path).unwrap_or(0) > 0);
    // ...until its owner closes it, cleanly.
    store.close().await;
    assert_eq!(wal_len(&path).unwrap_or(0), 0);
    db.remove().await;
}

#[tokio::test]
async fn closing_truncates_the_wal_while_another_process_keeps_the_database_open() {
    let (db, path, url) = temp_db();
    // Another process's connections: SQLite deletes the log only when its last
    // connection closes, so here only the checkpoint at close empties it.
    let other = Store::connect(&url).await.unwrap();
    let store = Store::connect(&url).await.unwrap();
    let f = fixture(&store).await;
    assert!(other.is_member(f.org, f.user).await.unwrap());
    assert!(wal_len(&path).unwrap_or(0) > 0);
    store.close().await;
    assert_eq!(wal_len(&path).unwrap_or(0), 0);
    // The other process still sees everything.
    assert!(other.is_member(f.org, f.user).await.unwrap());
    other.close().await;
    db.remove().await;
}

/// Another connection checkpointing at the moment of close (another process's store runs a
/// background checkpoint every `SQLITE_CHECKPOINT_INTERVAL`) makes the truncating
/// checkpoint answer "busy" at once — SQLite runs one checkpoint at a time — so close tries
/// again within `CLOSE_CHECKPOINT_BUDGET` and still leaves no log. Without the retry this
/// failed about one run in three on a loaded machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_truncates_the_wal_while_another_connection_keeps_checkpointing() {
    use sqlx::{Connection, Executor};

    for _ in 0..5 {
        let (db, path, url) = temp_db();
        let store = Store::connect(&url).await.unwrap();
        fixture(&store).await;
        let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let checkpoints = tokio::spawn(async move {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                other
                    .execute("PRAGMA wal_checkpoint(PASSIVE)")
                    .await
                    .unwrap();
            }
            other
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        store.close().await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        checkpoints.await.unwrap().close().await.unwrap();
        assert_eq!(wal_len(&path).unwrap_or(0), 0);
        db.remove().await;
    }
}
