//! A test database is gone after the test, whether the test passed or panicked — on
//! PostgreSQL even when the test left a transaction open holding a lock in its schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use chatd_test_support::db::{fixture, postgres_url, TestDatabase, DATABASE_URL_ENV};
use sqlx::{AnyConnection, Connection};

/// The database file and its companions.
fn sqlite_files(path: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| {
            let mut file = path.to_path_buf().into_os_string();
            file.push(suffix);
            PathBuf::from(file)
        })
        .collect()
}

/// Whether `schema` exists, and how many connections are named after it.
async fn postgres_leftovers(url: &str, schema: &str) -> (i64, i64) {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url).await.unwrap();
    let schemas: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = $1",
    )
    .bind(schema)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let connections: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1")
            .bind(schema)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    (schemas, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_is_removed_after_a_pass_and_after_a_panic() {
    let passed = TestDatabase::sqlite();
    let path = passed.path().unwrap().to_path_buf();
    let store = passed.connect_store().await;
    fixture(&store).await;
    assert!(path.exists());
    store.close().await;
    passed.remove().await;
    assert!(sqlite_files(&path).iter().all(|f| !f.exists()));

    let failed = TestDatabase::sqlite();
    let path = failed.path().unwrap().to_path_buf();
    // The panic unwinds through the task, which drops the database with the store open.
    let task = tokio::spawn(async move {
        let store = failed.connect_store().await;
        fixture(&store).await;
        assert!(failed.path().unwrap().exists());
        panic!("the test fails with its store open");
    });
    assert!(task.await.unwrap_err().is_panic());
    assert!(sqlite_files(&path).iter().all(|f| !f.exists()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_schema_is_dropped_after_a_pass_and_after_a_panic_under_a_held_lock() {
    let Some(url) = postgres_url() else {
        eprintln!("skipped: set {DATABASE_URL_ENV} to test the PostgreSQL cleanup");
        return;
    };
    let passed = TestDatabase::postgres(&url).await;
    let schema = passed.schema().unwrap().to_owned();
    let store = passed.connect_store().await;
    fixture(&store).await;
    assert_eq!(postgres_leftovers(&url, &schema).await.0, 1);
    store.close().await;
    passed.remove().await;
    assert_eq!(postgres_leftovers(&url, &schema).await, (0, 0));

    let failed = TestDatabase::postgres(&url).await;
    let schema = failed.schema().unwrap().to_owned();
    let (task_url, task_schema) = (url.clone(), schema.clone());
    let task = tokio::spawn(async move {
        let store = failed.connect_store().await;
        fixture(&store).await;
        // A transaction the failing test left open, locking a table of the schema: DROP
        // SCHEMA would wait for it for as long as its connection lives.
        let raw = failed.raw_pool().await;
        let mut tx = raw.begin().await.unwrap();
        sqlx::query("LOCK TABLE chats IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .unwrap();
        // Never given back: a dropped transaction would be rolled back by the pool as the
        // task unwinds, and the lock must outlive the test like an abandoned one does.
        std::mem::forget(tx);
        let (schemas, connections) = postgres_leftovers(&task_url, &task_schema).await;
        assert_eq!(schemas, 1);
        assert!(
            connections >= 2,
            "{connections} connections named {task_schema}"
        );
        panic!("the test fails holding a lock");
    });
    assert!(task.await.unwrap_err().is_panic());
    // The schema is gone when the drop returns; ended connections leave pg_stat_activity
    // a moment after they are told to.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (schemas, connections) = postgres_leftovers(&url, &schema).await;
        assert_eq!(schemas, 0, "the schema {schema} was dropped");
        if connections == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{connections} connections named {schema} still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
