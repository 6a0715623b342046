//! Throw-away databases on both backends.
//!
//! Every database test runs on SQLite (a fresh file in the temporary directory) and, when
//! [`DATABASE_URL_ENV`] names a PostgreSQL database, also on PostgreSQL (a fresh schema in
//! that database). A [`TestDatabase`] removes what it created when it is dropped — also
//! when the test panics — so a failing test leaves no file or schema behind.
//!
//! [`on_each_backend`] is the usual entry point: it hands the test a migrated
//! [`Store`] on each backend in turn. Tests that read or write rows directly get a pool of
//! their own on the same database through [`RawSql::pool`] (`store.pool()` with the trait
//! in scope): the store's own pool is not part of chatd-core's API, which keeps sqlx's
//! types out of it.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};

use chatd_core::store::{NewChat, NewUser, Store, StoreOptions};
use codersdk::{ChatClientType, ChatMessagePart, Uuid};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

/// The environment variable naming the PostgreSQL database the tests may use, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`. Unset or empty: SQLite only.
pub const DATABASE_URL_ENV: &str = "CHATD_TEST_DATABASE_URL";

/// The pool size of a PostgreSQL test store: enough for the engine's concurrent work, few
/// enough that many tests in parallel stay under the server's connection limit.
pub const POSTGRES_TEST_MAX_CONNECTIONS: u32 = 4;

/// The pool size of [`TestDatabase::raw_pool`]: tests run one statement at a time.
pub const RAW_POOL_MAX_CONNECTIONS: u32 = 2;

/// How long dropping a test schema waits for a lock before it gives up: the test's own
/// connections are ended first, so waiting means something else holds the schema.
pub const CLEANUP_LOCK_TIMEOUT_SECS: u32 = 10;

/// A database backend the tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh schema in the database [`DATABASE_URL_ENV`] names.
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// The PostgreSQL URL from [`DATABASE_URL_ENV`], when set and not empty.
pub fn postgres_url() -> Option<String> {
    std::env::var(DATABASE_URL_ENV)
        .ok()
        .filter(|url| !url.is_empty())
}

/// The backends this run tests: SQLite, then PostgreSQL when [`DATABASE_URL_ENV`] is set.
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    if postgres_url().is_some() {
        out.push(Backend::Postgres);
    }
    out
}

/// What a [`TestDatabase`] removes.
#[derive(Debug)]
enum Cleanup {
    /// The SQLite file and its `-wal`, `-shm` and `-journal` companions.
    File(PathBuf),
    /// The schema, dropped over `admin_url` (the URL without this database's
    /// `application_name`, so the cleanup never ends its own connection).
    Schema { admin_url: String, schema: String },
    /// Already removed.
    Done,
}

/// A database that exists for one test: a temporary SQLite file, or a fresh PostgreSQL
/// schema. [`TestDatabase::remove`] deletes it; dropping it without that (a panicking
/// test) deletes it too.
#[derive(Debug)]
pub struct TestDatabase {
    backend: Backend,
    url: String,
    schema: Option<String>,
    cleanup: Cleanup,
}

impl TestDatabase {
    /// A database on `backend`. Panics for PostgreSQL when [`DATABASE_URL_ENV`] is unset.
    pub async fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => TestDatabase::sqlite(),
            Backend::Postgres => {
                let url = postgres_url().unwrap_or_else(|| {
                    panic!("a PostgreSQL test database needs {DATABASE_URL_ENV}")
                });
                TestDatabase::postgres(&url).await
            }
        }
    }

    /// A path for a new SQLite file in the temporary directory; the store creates the file.
    pub fn sqlite() -> TestDatabase {
        let path = std::env::temp_dir().join(format!("chatd-test-{}.db", Uuid::new_v4()));
        TestDatabase {
            backend: Backend::Sqlite,
            url: format!("sqlite://{}", path.display()),
            schema: None,
            cleanup: Cleanup::File(path),
        }
    }

    /// A new, empty schema in the PostgreSQL database at `url`. Connections opened with
    /// [`TestDatabase::url`] carry the schema's name as their `application_name`, which
    /// lets the cleanup end the ones a failed test left open.
    pub async fn postgres(url: &str) -> TestDatabase {
        sqlx::any::install_default_drivers();
        let schema = format!("chatd_test_{}", Uuid::new_v4().simple());
        let mut admin = AnyConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect to the PostgreSQL test database: {e}"));
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .await
            .unwrap_or_else(|e| panic!("create the test schema {schema}: {e}"));
        let _ = admin.close().await;
        let separator = if url.contains('?') { '&' } else { '?' };
        TestDatabase {
            backend: Backend::Postgres,
            url: format!("{url}{separator}application_name={schema}"),
            schema: Some(schema.clone()),
            cleanup: Cleanup::Schema {
                admin_url: url.to_owned(),
                schema,
            },
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL to connect to (`sqlite:///tmp/…` or the PostgreSQL URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// PostgreSQL: the schema every connection must use as its `search_path`.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// SQLite: the database file.
    pub fn path(&self) -> Option<&Path> {
        match &self.cleanup {
            Cleanup::File(path) => Some(path),
            _ => None,
        }
    }

    /// Options for a store on this database.
    pub fn store_options(&self) -> StoreOptions {
        let mut options = StoreOptions::new(self.url.clone());
        if let Some(schema) = &self.schema {
            options.schema = Some(schema.clone());
            options.max_connections = POSTGRES_TEST_MAX_CONNECTIONS;
        }
        options
    }

    /// A store on this database, migrated.
    pub async fn connect_store(&self) -> Store {
        Store::connect_with(self.store_options())
            .await
            .unwrap_or_else(|e| panic!("open a store on {}: {e}", self.backend))
    }

    /// A small pool on this database for SQL the test runs itself, set up like the store's
    /// connections (foreign keys on for SQLite, the schema as `search_path` on PostgreSQL).
    pub async fn raw_pool(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        let backend = self.backend;
        let schema = self.schema.clone();
        AnyPoolOptions::new()
            .max_connections(RAW_POOL_MAX_CONNECTIONS)
            .after_connect(move |conn, _meta| {
                let schema = schema.clone();
                Box::pin(async move {
                    match (backend, schema) {
                        (Backend::Sqlite, _) => {
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                        }
                        (Backend::Postgres, Some(schema)) => {
                            conn.execute(sqlx::AssertSqlSafe(format!(
                                "SET search_path TO \"{schema}\""
                            )))
                            .await?;
                        }
                        (Backend::Postgres, None) => {}
                    }
                    Ok(())
                })
            })
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open a raw pool on {}: {e}", self.backend))
    }

    /// Deletes the database. Close the stores and pools on it first: a PostgreSQL
    /// connection still open is ended, a SQLite file still open is unlinked under it.
    pub async fn remove(mut self) {
        let cleanup = std::mem::replace(&mut self.cleanup, Cleanup::Done);
        if let Err(e) = remove(cleanup).await {
            panic!("remove the {} test database: {e}", self.backend);
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let cleanup = std::mem::replace(&mut self.cleanup, Cleanup::Done);
        if matches!(cleanup, Cleanup::Done) {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "the test failed on {} ({}); removing its database",
                self.backend,
                self.schema.as_deref().unwrap_or(&self.url)
            );
        }
        // Drop cannot await, and the test's runtime may be unwinding: the cleanup gets a
        // thread and a runtime of its own, and the drop waits for it so the test binary
        // does not exit before the schema is gone.
        let worker = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(remove(cleanup)).map_err(|e| e.to_string())
        });
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not remove a test database: {e}"),
            Err(_) => eprintln!("removing a test database panicked"),
        }
    }
}

/// Deletes what `cleanup` names.
async fn remove(cleanup: Cleanup) -> Result<(), sqlx::Error> {
    match cleanup {
        Cleanup::Done => Ok(()),
        Cleanup::File(path) => {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                // Missing companions are normal (no WAL after a clean close).
                let _ = std::fs::remove_file(file);
            }
            Ok(())
        }
        Cleanup::Schema { admin_url, schema } => {
            sqlx::any::install_default_drivers();
            let mut conn = AnyConnection::connect(&admin_url).await?;
            conn.execute(sqlx::AssertSqlSafe(format!(
                "SET lock_timeout = '{CLEANUP_LOCK_TIMEOUT_SECS}s'"
            )))
            .await?;
            // Connections the test left open (an engine not shut down, a pool a panic
            // abandoned) may hold locks in the schema: end them first. The result set
            // (one boolean per connection) is not needed.
            let _ = sqlx::query(
                "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity \
                 WHERE application_name = $1 AND pid <> pg_backend_pid()",
            )
            .bind(schema.as_str())
            .fetch_all(&mut conn)
            .await;
            conn.execute(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .await?;
            conn.close().await
        }
    }
}

tokio::task_local! {
    /// The raw pool of the database the running [`on_each_backend`] test uses.
    static RAW_POOL: &'static AnyPool;
}

/// Direct SQL access for tests, beside the store's API.
pub trait RawSql {
    /// A pool on the store's database, for SQL the test runs itself. Works inside
    /// [`on_each_backend`], which opened the database; panics elsewhere.
    fn pool(&self) -> &'static AnyPool;
}

impl RawSql for Store {
    fn pool(&self) -> &'static AnyPool {
        RAW_POOL
            .try_with(|pool| *pool)
            .expect("raw SQL is available inside on_each_backend only")
    }
}

/// Runs `test` with a fresh store on SQLite, then on PostgreSQL when
/// [`DATABASE_URL_ENV`] is set. Each database is removed afterwards, also when `test`
/// panics.
pub async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends() {
        let db = TestDatabase::create(backend).await;
        let store = db.connect_store().await;
        // Leaked so `RawSql::pool` can lend it for `'static` (sqlx executes on `&AnyPool`);
        // closed below, a few hundred bytes per test.
        let raw: &'static AnyPool = Box::leak(Box::new(db.raw_pool().await));
        RAW_POOL.scope(raw, test(store.clone())).await;
        raw.close().await;
        store.close().await;
        db.remove().await;
    }
}

/// Runs `test` with a fresh store on PostgreSQL when [`DATABASE_URL_ENV`] is set, and
/// only there: for what only PostgreSQL does (several replicas on one database). Without
/// the variable it prints a note and runs nothing.
pub async fn on_postgres<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    if postgres_url().is_none() {
        eprintln!("{DATABASE_URL_ENV} is not set: this PostgreSQL-only test ran nothing");
        return;
    }
    let db = TestDatabase::create(Backend::Postgres).await;
    let store = db.connect_store().await;
    let raw: &'static AnyPool = Box::leak(Box::new(db.raw_pool().await));
    RAW_POOL.scope(raw, test(store.clone())).await;
    raw.close().await;
    store.close().await;
    db.remove().await;
}

/// A member of an organization: what most store tests start from.
#[derive(Debug, Clone, Copy)]
pub struct Fixture {
    /// The organization `acme`.
    pub org: Uuid,
    /// The member `alice`.
    pub user: Uuid,
}

/// Creates the user `alice`, the organization `acme`, and her membership.
pub async fn fixture(store: &Store) -> Fixture {
    let user = store
        .create_user(NewUser {
            username: "alice".into(),
            name: "Alice".into(),
            role: chatd_core::Role::Member,
        })
        .await
        .expect("create the fixture user");
    let org = store
        .create_organization("acme")
        .await
        .expect("create the fixture organization");
    store
        .add_member(org.id, user.id)
        .await
        .expect("add the fixture user to the organization");
    Fixture {
        org: org.id,
        user: user.id,
    }
}

/// A chat of the fixture's user, titled "A chat", whose first message is `text`.
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
