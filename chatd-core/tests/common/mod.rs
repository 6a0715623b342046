//! The two-backend harness shared by the store tests: every test runs on SQLite (a fresh
//! temp file) and, when `CHATD_TEST_DATABASE_URL` names a PostgreSQL database, also on
//! PostgreSQL (a fresh schema that is dropped afterwards).
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

pub const DATABASE_URL_ENV: &str = "CHATD_TEST_DATABASE_URL";

/// A store on a throw-away database, and how to throw it away.
pub struct TestDb {
    pub store: Store,
    pub cleanup: Cleanup,
}

pub enum Cleanup {
    File(PathBuf),
    Schema { url: String, schema: String },
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let path = std::env::temp_dir().join(format!("chatd-store-test-{}.db", Uuid::new_v4()));
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        TestDb {
            store,
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
            cleanup: Cleanup::Schema {
                url: url.to_owned(),
                schema,
            },
        }
    }

    async fn finish(self) {
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
    test(db.store.clone()).await;
    db.finish().await;
    if let Some(url) = std::env::var(DATABASE_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
    {
        let db = TestDb::postgres(&url).await;
        test(db.store.clone()).await;
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
