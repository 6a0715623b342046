//! The two-backend harness shared by the store tests: every test runs on SQLite (a fresh
//! temp file) and, when `CHATD_TEST_DATABASE_URL` names a PostgreSQL database, also on
//! PostgreSQL (a fresh schema that is dropped afterwards).
//!
//! Tests that read or write rows directly get a pool of their own on the same database
//! through [`RawSql::pool`] (`store.pool()` with the trait in scope): the store's own pool
//! is not part of chatd-core's API, which keeps sqlx's types out of it.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use chatd_core::store::{NewChat, NewUser, Store, StoreOptions};
use codersdk::{ChatClientType, ChatMessagePart, Uuid};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

pub const DATABASE_URL_ENV: &str = "CHATD_TEST_DATABASE_URL";

/// A store on a throw-away database, a raw pool on the same database, and how to throw
/// them away.
pub struct TestDb {
    pub store: Store,
    pub raw: &'static AnyPool,
    pub cleanup: Cleanup,
}

tokio::task_local! {
    /// The raw pool of the database the running `on_each_backend` test uses.
    static RAW_POOL: &'static AnyPool;
}

/// Direct SQL access for tests, beside the store's API.
pub trait RawSql {
    /// A pool on the store's database, for SQL the test runs itself. Works inside
    /// [`on_each_backend`], which opened the database.
    fn pool(&self) -> &'static AnyPool;
}

impl RawSql for Store {
    fn pool(&self) -> &'static AnyPool {
        RAW_POOL
            .try_with(|pool| *pool)
            .expect("raw SQL is available inside on_each_backend only")
    }
}

/// A small pool on `url` (with `schema` as the search path on PostgreSQL, and foreign keys
/// on for SQLite, like the store's own connections). Leaked so tests can borrow it for
/// `'static`; [`TestDb::finish`] closes it.
async fn raw_pool(url: &str, schema: Option<String>) -> &'static AnyPool {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let pool = AnyPoolOptions::new()
        .max_connections(2)
        .after_connect(move |conn, _meta| {
            let schema = schema.clone();
            Box::pin(async move {
                if sqlite {
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                } else if let Some(schema) = schema {
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "SET search_path TO \"{schema}\""
                    )))
                    .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .unwrap();
    Box::leak(Box::new(pool))
}

pub enum Cleanup {
    File(PathBuf),
    Schema { url: String, schema: String },
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let path = std::env::temp_dir().join(format!("chatd-store-test-{}.db", Uuid::new_v4()));
        let url = format!("sqlite://{}", path.display());
        let store = Store::connect(&url).await.unwrap();
        TestDb {
            store,
            raw: raw_pool(&url, None).await,
            cleanup: Cleanup::File(path),
        }
    }

    async fn postgres(url: &str) -> TestDb {
        sqlx::any::install_default_drivers();
        let schema = format!("chatd_test_{}", Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let mut options = StoreOptions::new(url);
        options.schema = Some(schema.clone());
        options.max_connections = 4;
        let store = Store::connect_with(options).await.unwrap();
        TestDb {
            store,
            raw: raw_pool(url, Some(schema.clone())).await,
            cleanup: Cleanup::Schema {
                url: url.to_owned(),
                schema,
            },
        }
    }

    async fn finish(self) {
        self.raw.close().await;
        self.store.close().await;
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::Schema { url, schema } => {
                if let Ok(admin) = sqlx::AnyPool::connect(&url).await {
                    let _ =
                        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                            .execute(&admin)
                            .await;
                    admin.close().await;
                }
            }
        }
    }
}

/// Runs `test` on SQLite, then on PostgreSQL when configured.
pub async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TestDb::sqlite().await;
    RAW_POOL.scope(db.raw, test(db.store.clone())).await;
    db.finish().await;
    if let Some(url) = std::env::var(DATABASE_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
    {
        let db = TestDb::postgres(&url).await;
        RAW_POOL.scope(db.raw, test(db.store.clone())).await;
        db.finish().await;
    }
}

pub struct Fixture {
    pub org: Uuid,
    pub user: Uuid,
}

pub async fn fixture(store: &Store) -> Fixture {
    let user = store
        .create_user(NewUser {
            username: "alice".into(),
            name: "Alice".into(),
            role: chatd_core::Role::Member,
        })
        .await
        .unwrap();
    let org = store.create_organization("acme").await.unwrap();
    store.add_member(org.id, user.id).await.unwrap();
    Fixture {
        org: org.id,
        user: user.id,
    }
}

pub fn new_chat(f: &Fixture, text: &str) -> NewChat {
    NewChat {
        organization_id: f.org,
        owner_id: f.user,
        title: "A chat".into(),
        model_config_id: Uuid::new_v4(),
        labels: BTreeMap::new(),
        mcp_server_ids: Vec::new(),
        dynamic_tools: Vec::new(),
        system_prompt: String::new(),
        client_type: ChatClientType::Ui,
        plan_mode: None,
        first_message_parts: vec![ChatMessagePart::text(text)],
        created_by: Some(f.user),
    }
}
