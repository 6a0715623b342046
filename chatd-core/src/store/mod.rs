//! The durable store: one implementation over `sqlx`'s `Any` driver for SQLite and
//! PostgreSQL (see docs/engine-design.md).
//!
//! Every operation is one transaction. Column types are portable: ids are lowercase
//! hyphenated UUID text, timestamps `BIGINT` Unix microseconds, JSON `TEXT`, booleans
//! `BIGINT` 0/1 (the `Any` driver cannot decode a SQLite column declared `BOOLEAN`).
//! Per-chat writes go through [`Store::begin_chat_tx`], which serializes them (invariant 1).

mod accounts;
mod actions;
mod aibridge;
mod changes;
mod chats;
mod cluster;
mod compaction;
mod config;
mod costs;
mod debug_runs;
mod files;
mod groups;
mod history;
mod interceptions;
mod leases;
mod listing;
mod mcp;
mod mcp_auth;
mod queue;
mod retention;
mod subagents;
mod tokens;
mod transition;
mod turns;
mod usage;
mod usage_limits;
mod users;
mod workspaces;

use std::time::Duration;

use codersdk::{Timestamp, Uuid};
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row, Transaction};

use crate::error::{DbResultExt, Error, ErrorKind, Result};

pub use accounts::{Account, NewAccount, MAX_ACCOUNT_PAGE};
pub use actions::{
    EditMessage, Edited, NOT_AWAITING_TOOL_RESULTS_MESSAGE, ONLY_USER_MESSAGES_EDITABLE_MESSAGE,
    PARENT_ARCHIVED_MESSAGE,
};
pub use aibridge::{aibridge_key_aad, StoredAibridgeInstance, MAX_STORED_AIBRIDGE_INSTANCES};
pub use changes::TOOL_INTERRUPTED_MESSAGE;
pub use chats::{MessageVisibility, NewChat, NewMessage};
pub use compaction::{Compaction, COMPACTION_BUSY_MESSAGE};
pub use config::{
    provider_config_listing, provider_key_aad, user_key_aad, validate_user_prompt,
    DeletedModelConfig, DeletedProviderConfig, ModelConfigFilter, ModelConfigSource,
    ResolvedModelConfig, SecretColumn, SecretRotationFailure, SecretRotationReport,
    SystemPromptConfig, TurnModel, UnusableRequestedModel, DEFAULT_INCLUDE_DEFAULT_SYSTEM_PROMPT,
    INVALID_MODEL_CONFIG_MESSAGE, MAX_USER_PROMPT_CHARS, NO_DEFAULT_MODEL_CONFIG_MESSAGE,
};
pub use config::{
    INVALID_MODEL_OVERRIDE_CONTEXT_MESSAGE, INVALID_MODEL_OVERRIDE_MESSAGE,
    MODEL_OVERRIDE_KEY_PREFIX,
};
#[doc(hidden)]
pub use costs::cost_statements;
pub use costs::{
    CostSummary, CostTotals, CostUsersPage, GATEWAY_MODEL_DISPLAY_SUFFIX, MAX_COST_SUMMARY_CHATS,
    UNKNOWN_MODEL_DISPLAY_NAME,
};
pub use debug_runs::{
    cap_debug_document, DebugStepEnd, NewDebugRun, NewDebugStep, DEFAULT_DEBUG_RETENTION_DAYS,
    MAX_DEBUG_ATTEMPTS_PER_STEP, MAX_DEBUG_DOCUMENT_BYTES, MAX_DEBUG_PURGE_BATCH,
    MAX_DEBUG_RETENTION_DAYS, MAX_DEBUG_RUNS_LISTED, MAX_DEBUG_STEPS_PER_RUN,
};
pub use files::{
    file_link_error_warning, file_link_limit_warning, referenced_files, NewFile, StoredFile,
    MAX_FILES_PER_LOOKUP, MAX_FILE_BYTES, UNLINKED_FILE_GRACE,
};
pub use groups::{
    GROUP_NOT_FOUND_MESSAGE, MAX_GROUPS_PER_ORGANIZATION, NOT_AN_ORGANIZATION_MEMBER_MESSAGE,
    ORGANIZATION_NOT_FOUND_MESSAGE,
};
pub use history::{HistoryMark, HistoryRead, TurnInputs, TurnStart};
#[doc(hidden)]
pub use interceptions::session_page_statements;
pub use interceptions::{
    decode_session_cursor, InterceptionFilter, InterceptionPage, InterceptionPageRequest,
    NewInterception, NewToolUsage, PurgedInterceptions, SessionPage, ThreadLink,
    INVALID_SESSION_CURSOR_MESSAGE, MAX_INTERCEPTION_PAGE, MAX_INTERCEPTION_PURGE_BATCH,
    MAX_SESSION_CURSOR_BYTES, MAX_THREAD_LINK_CALL_IDS, MAX_TOOL_USAGES_PER_INTERCEPTION,
};
pub use leases::{
    ClaimLimits, Claimed, Lease, LeaseState, RecoveredChats, CLAIM_ADVISORY_LOCK_KEY,
    DYNAMIC_TOOL_TIMEOUT_MESSAGE, MAX_CLAIM_BATCH, MAX_LEASES_PER_HEARTBEAT_STATEMENT,
};
pub use listing::{
    normalize_turn_summary, ChatListQuery, TurnSummarySource, MAX_TURN_SUMMARY_RUNES,
};
pub use mcp::{
    mcp_secret_aad, McpSecretColumn, McpSecretRotationFailure, McpSecretRotationReport,
    McpServerFilter, McpServerSecrets, McpUserSecretRotationFailure, INVALID_MCP_SERVER_MESSAGE,
    MANUAL_OAUTH2_REQUIRED_MESSAGE, MAX_MCP_CUSTOM_HEADERS, MAX_MCP_CUSTOM_HEADERS_BYTES,
    MAX_MCP_DESCRIPTION_CHARS, MAX_MCP_HEADER_DESCRIPTION_CHARS, MAX_MCP_HEADER_NAME_BYTES,
    MAX_MCP_HEADER_VALUE_BYTES, MAX_MCP_OAUTH2_FIELD_BYTES, MAX_MCP_SECRET_BYTES, MAX_MCP_SLUG_LEN,
    MAX_MCP_TOOL_FILTER_ENTRIES, MAX_MCP_TOOL_NAME_BYTES, MAX_MCP_USER_HEADER_KEYS,
};
pub use mcp_auth::{
    hash_oauth2_state, mcp_oauth2_state_aad, mcp_user_secret_aad, McpOAuth2State, McpOAuth2Token,
    McpUserSecretColumn, NewMcpOAuth2State, MAX_MCP_OAUTH2_PENDING_STATES_PER_USER,
    MAX_MCP_OAUTH2_STATE_LEN, MCP_OAUTH2_STATE_EXPIRED_MESSAGE, MCP_OAUTH2_STATE_INVALID_MESSAGE,
    MCP_OAUTH2_STATE_TTL,
};
pub use queue::{Promoted, SendClaim, SendMessage, SendOutcome, SendResult, MAX_QUEUED_MESSAGES};
pub use retention::{PurgedChats, RetentionLease, RETENTION_ADVISORY_LOCK_KEY};
pub(crate) use subagents::is_running_state;
pub use subagents::{NewSubagent, SubagentInfo};
pub use tokens::{
    hash_api_token, ApiToken, NewApiToken, TokenCheck, API_TOKEN_BYTES, API_TOKEN_PREFIX,
    LAST_ADMIN_TOKEN_MESSAGE, LAST_USED_RESOLUTION, MAX_API_TOKEN_LEN, TOKEN_NOT_FOUND_MESSAGE,
};
pub use transition::Transition;
pub use turns::{PersistedStep, Step, TurnOutcome};
pub use usage::HiddenUsage;
pub use usage_limits::UsageLimitInputs;
pub use users::{NewUser, Organization, User};
pub use workspaces::InjectedContext;

/// How long a SQLite connection waits for the database write lock before failing with
/// "database is locked". The writers of this process queue for the one write connection
/// instead ([`SQLITE_WRITE_QUEUE_TIMEOUT`]), so this covers only another process holding
/// the lock (a second server or a `sqlite3` shell on the same file) and SQLite's own brief
/// locks (a checkpoint); waiting this long means something is wrong rather than busy.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a SQLite write waits in the process's write queue (for the one write
/// connection) before failing. The queue is first come, first served, so a writer waits
/// for the transactions ahead of it, each one short; the same bound as waiting for a
/// pooled read connection ([`DEFAULT_ACQUIRE_TIMEOUT`]).
pub const SQLITE_WRITE_QUEUE_TIMEOUT: Duration = DEFAULT_ACQUIRE_TIMEOUT;

/// SQLite connections in the write pool: one, so the process's writers queue for it in
/// order instead of sleeping in SQLite's busy handler (docs/engine-design.md).
const SQLITE_WRITE_CONNECTIONS: u32 = 1;

/// How often the store checkpoints SQLite's write-ahead log into the database file, in
/// the background (`PRAGMA wal_checkpoint(PASSIVE)` on a read connection). SQLite's own
/// automatic checkpoint (every 1 000 pages) runs inside the commit that crosses the mark
/// and syncs the database file there, one commit in a few hundred taking milliseconds; the
/// store turns it off and checkpoints beside the writer instead, so no commit waits for a
/// checkpoint. The log grows by at most what is written in this long before it is copied
/// back and reused.
pub const SQLITE_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// How long [`Store::close`] keeps trying its truncating WAL checkpoint while SQLite
/// answers "busy" at once. SQLite runs one checkpoint at a time and does not wait for
/// another connection's (another process's store checkpoints every
/// [`SQLITE_CHECKPOINT_INTERVAL`]): that one ends within milliseconds, so close tries again
/// every [`CLOSE_CHECKPOINT_RETRY`] until this much time has passed since its first try.
/// A reader holding the log makes a try wait in SQLite's busy handler instead (up to
/// [`SQLITE_BUSY_TIMEOUT`]); such a try is not repeated once the budget is spent, and the
/// `-wal` file stays (logged).
pub const CLOSE_CHECKPOINT_BUDGET: Duration = Duration::from_secs(1);

/// The pause between two tries of the checkpoint at close ([`CLOSE_CHECKPOINT_BUDGET`]).
pub const CLOSE_CHECKPOINT_RETRY: Duration = Duration::from_millis(10);

/// Default size of the connection pool.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// A pooled PostgreSQL connection idle for longer than this is pinged before it is handed
/// out (and replaced when the ping fails); one used more recently is handed out as it is.
/// sqlx's default pings on every acquire, one round trip more before every statement or
/// transaction of a hot path; a connection that broke less than this long ago fails its
/// statement instead (as a connection that breaks mid-use always does). SQLite connections
/// are never pinged: a local file does not go away under an open connection.
pub const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// How long acquiring a pooled connection may wait before failing.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest PostgreSQL schema name [`StoreOptions::schema`] accepts (PostgreSQL's identifier
/// limit).
pub const MAX_SCHEMA_NAME_LEN: usize = 63;

/// Which database a [`Store`] talks to; chosen from the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite (`sqlite:` URLs): one process, one writer at a time.
    Sqlite,
    /// PostgreSQL (`postgres://` or `postgresql://` URLs).
    Postgres,
}

impl Dialect {
    /// The dialect of a database URL, or [`ErrorKind::InvalidArgument`] for another scheme.
    pub fn from_url(url: &str) -> Result<Dialect> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            Err(Error::new(
                ErrorKind::InvalidArgument,
                "unsupported database URL: expected sqlite:, postgres:// or postgresql://",
            ))
        }
    }
}

/// SQLite's `synchronous` setting ([`StoreOptions::sqlite_synchronous`]): when a commit
/// reaches the disk. The store always runs SQLite in WAL mode, where both keep the database
/// consistent; they differ only in what a power loss can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SqliteSynchronous {
    /// `NORMAL` (the default): the WAL is synced at checkpoints, not at every commit. A
    /// committed transaction survives a crash of the process; the last commits before a
    /// power loss or an operating-system crash may be lost (rolled back, never corrupted).
    #[default]
    Normal,
    /// `FULL`: every commit is synced to disk before it returns (one fsync per commit), so
    /// a power loss loses nothing that was reported committed.
    Full,
}

impl SqliteSynchronous {
    /// The value of `PRAGMA synchronous` (`NORMAL` or `FULL`).
    pub fn as_sql(self) -> &'static str {
        match self {
            SqliteSynchronous::Normal => "NORMAL",
            SqliteSynchronous::Full => "FULL",
        }
    }

    /// The number `PRAGMA synchronous` reads back as (1 for `NORMAL`, 2 for `FULL`).
    pub fn pragma_value(self) -> i64 {
        match self {
            SqliteSynchronous::Normal => 1,
            SqliteSynchronous::Full => 2,
        }
    }
}

/// How to open a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Database URL: `sqlite:///path/to/chatd.db` (created when missing) or
    /// `postgres://user@host:port/db`. Not `sqlite::memory:`: each pooled connection would
    /// get its own empty database.
    pub url: String,
    /// PostgreSQL only: the schema to create tables in and read from (set as the
    /// connection's `search_path`). Letters, digits and `_`; must already exist.
    pub schema: Option<String>,
    /// Connection pool size. SQLite opens one write connection besides these, which every
    /// write of the process queues for.
    pub max_connections: u32,
    /// SQLite only: when commits reach the disk; [`SqliteSynchronous::Normal`] by default.
    pub sqlite_synchronous: SqliteSynchronous,
}

impl StoreOptions {
    /// Options for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions {
            url: url.into(),
            schema: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            sqlite_synchronous: SqliteSynchronous::default(),
        }
    }
}

/// Handle to the database. Cheap to clone: clones share one pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where writes go. SQLite: a pool of one connection, so the writers of this process
    /// wait in its first-come-first-served queue instead of in SQLite's busy handler, which
    /// sleeps and retries (a late writer can overtake an early one, and every wait costs a
    /// sleep). PostgreSQL: the same pool as `pool` (row locks, many writers at once).
    writer: AnyPool,
    dialect: Dialect,
    /// Where the pool connects: the cluster's dedicated PostgreSQL connections (LISTEN,
    /// the replica's liveness lock) open their own from it.
    url: ConnectUrl,
    /// The hot-config cache every clone shares ([`crate::configcache`]).
    config_cache: std::sync::Arc<crate::configcache::ConfigCache>,
    /// The deployment forces debug logging on ([`Store::debug_logging_forced`]), shared by
    /// every clone.
    debug_logging_forced: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// SQLite: stops the background checkpoints when the last clone goes
    /// ([`SQLITE_CHECKPOINT_INTERVAL`]).
    _checkpoints: Option<std::sync::Arc<StopOnDrop>>,
}

/// Cancels its token when dropped.
#[derive(Debug)]
struct StopOnDrop(tokio_util::sync::CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Checkpoints SQLite's write-ahead log every [`SQLITE_CHECKPOINT_INTERVAL`] until `stop`
/// is cancelled or the pool closes. A passive checkpoint copies what no reader still
/// needs and never waits for the writer; one that fails is retried at the next tick.
async fn checkpoint_sqlite(pool: AnyPool, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(SQLITE_CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if pool.is_closed() {
            return;
        }
        let done: std::result::Result<(i64, i64, i64), _> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await;
        if let Err(e) = done {
            if pool.is_closed() {
                return;
            }
            tracing::debug!(error = %e, "SQLite WAL checkpoint failed; retrying at the next tick");
        }
    }
}

/// A database URL kept for opening more connections. It may hold a password, so its
/// `Debug` shows nothing of it.
#[derive(Clone)]
pub(crate) struct ConnectUrl(std::sync::Arc<str>);

impl ConnectUrl {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ConnectUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectUrl(..)")
    }
}

/// An open transaction holding the lock on one chat (invariant 1). Dropping it without
/// [`ChatTx::commit`] rolls back.
#[derive(Debug)]
pub struct ChatTx {
    tx: Transaction<'static, Any>,
    chat_id: Uuid,
    /// The chat as the locking statement read it, when that statement read it.
    locked: Option<changes::LockedChat>,
}

impl ChatTx {
    /// The locked chat.
    pub fn chat_id(&self) -> Uuid {
        self.chat_id
    }

    /// The chat as it was locked, before any write of this transaction: what the locking
    /// statement read, else one read now. Call it before writing to the chat.
    /// The size and head of the locked chat's queue, read now under the lock. Call it
    /// before changing the queue.
    async fn queue_state(&mut self) -> Result<changes::QueueState> {
        changes::queue_state(&mut self.tx, self.chat_id).await
    }

    async fn locked_chat(&mut self) -> Result<changes::LockedChat> {
        match &self.locked {
            Some(chat) => Ok(chat.clone()),
            None => {
                let chat = changes::locked_chat(&mut self.tx, self.chat_id).await?;
                self.locked = Some(chat.clone());
                Ok(chat)
            }
        }
    }

    /// The transaction's connection, for queries under the lock.
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Commits and releases the lock.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await.db()
    }

    /// Rolls back and releases the lock.
    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await.db()
    }

    /// Commits when `result` is `Ok`, rolls back otherwise, and passes `result` on (a failed
    /// rollback does not mask the original error). An explicit rollback releases the lock
    /// now: a dropped transaction is rolled back only when its connection is next used,
    /// and until then PostgreSQL claims skip the still-locked row.
    pub(crate) async fn finish<T>(self, result: Result<T>) -> Result<T> {
        finish_tx(self.tx, result).await
    }
}

/// Commits `tx` when `result` is `Ok`, rolls it back otherwise, and passes `result` on: the
/// end of every store transaction. A failed rollback does not mask the original error (the
/// pool discards the connection), and the explicit rollback releases locks at once.
pub(crate) async fn finish_tx<T>(tx: Transaction<'static, Any>, result: Result<T>) -> Result<T> {
    match result {
        Ok(value) => {
            tx.commit().await.db()?;
            Ok(value)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

impl Store {
    /// Opens `url` with the default [`StoreOptions`]; see [`Store::connect_with`].
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with(StoreOptions::new(url)).await
    }

    /// Opens the database and applies the embedded migrations of its dialect.
    ///
    /// SQLite: the file is created when missing — readable and writable by its owner only
    /// ([`PRIVATE_FILE_MODE`], whatever the umask; SQLite gives the `-wal` and `-shm` files
    /// the database file's mode) —, switched to WAL, and every connection gets
    /// `foreign_keys=ON`, a [`SQLITE_BUSY_TIMEOUT`] and [`StoreOptions::sqlite_synchronous`];
    /// besides the pool of [`StoreOptions::max_connections`] there is one write connection
    /// that every write of the process queues for (`Store::begin_write`). PostgreSQL: with
    /// [`StoreOptions::schema`], every connection's `search_path` is that schema.
    pub async fn connect_with(options: StoreOptions) -> Result<Store> {
        Store::connect_with_timeouts(options, SQLITE_BUSY_TIMEOUT, SQLITE_WRITE_QUEUE_TIMEOUT).await
    }

    /// [`Store::connect_with`] with other SQLite busy and write-queue timeouts (tests set
    /// them near zero: the busy timeout to show that writers queue in the process rather
    /// than in the busy handler, the queue timeout to see a writer give up).
    async fn connect_with_timeouts(
        options: StoreOptions,
        busy_timeout: Duration,
        write_queue_timeout: Duration,
    ) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(&options.url)?;
        let url = match dialect {
            Dialect::Sqlite => {
                if let Some(path) = sqlite_file_path(&options.url) {
                    create_private_file(&path)?;
                }
                sqlite_url_creating_file(&options.url)
            }
            Dialect::Postgres => options.url.clone(),
        };
        let set_path = match (&options.schema, dialect) {
            (None, _) => None,
            (Some(schema), Dialect::Postgres) => {
                validate_schema_name(schema)?;
                Some(format!("SET search_path TO \"{schema}\""))
            }
            (Some(_), Dialect::Sqlite) => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "a schema can only be set for PostgreSQL",
                ))
            }
        };
        let setup = ConnectionSetup {
            dialect,
            set_path,
            busy_timeout,
            synchronous: options.sqlite_synchronous,
        };
        let pool = setup
            .pool_options(options.max_connections.max(1), DEFAULT_ACQUIRE_TIMEOUT)
            .connect(&url)
            .await
            .db()?;
        if dialect == Dialect::Sqlite {
            // Persistent in the file, so once suffices; WAL lets readers run beside the
            // single writer.
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                .fetch_one(&pool)
                .await
                .db()?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::new(
                    ErrorKind::Database,
                    format!("SQLite refused WAL mode (journal mode is {mode})"),
                ));
            }
        }
        match dialect {
            Dialect::Sqlite => sqlx::migrate!("migrations/sqlite")
                .run(&pool)
                .await
                .map_err(Error::from_migration)?,
            Dialect::Postgres => sqlx::migrate!("migrations/postgres")
                .run(&pool)
                .await
                .map_err(Error::from_migration)?,
        }
        let writer = match dialect {
            Dialect::Sqlite => setup
                .pool_options(SQLITE_WRITE_CONNECTIONS, write_queue_timeout)
                .connect(&url)
                .await
                .db()?,
            Dialect::Postgres => pool.clone(),
        };
        let checkpoints = match dialect {
            Dialect::Sqlite => {
                let stop = tokio_util::sync::CancellationToken::new();
                tokio::spawn(checkpoint_sqlite(pool.clone(), stop.clone()));
                Some(std::sync::Arc::new(StopOnDrop(stop)))
            }
            Dialect::Postgres => None,
        };
        Ok(Store {
            pool,
            writer,
            dialect,
            url: ConnectUrl(url.into()),
            config_cache: std::sync::Arc::default(),
            debug_logging_forced: std::sync::Arc::default(),
            _checkpoints: checkpoints,
        })
    }

    /// The database this store talks to.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The hot-config cache of this store and its clones ([`crate::configcache`]): what
    /// turns read of the configuration. Its writes keep it fresh in this process; the
    /// engine applies other replicas' changes to it.
    pub fn config_cache(&self) -> &crate::configcache::ConfigCache {
        &self.config_cache
    }

    /// The URL the pool connects to.
    pub(crate) fn url(&self) -> &ConnectUrl {
        &self.url
    }

    /// The connection pool, for reads that need no transaction.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool of writes that need no transaction of their own (one statement): on SQLite
    /// the write connection, so they queue behind the transactions of
    /// [`Store::begin_write`]; on PostgreSQL the pool. A task holding a write transaction
    /// must not write through this (on SQLite it would wait for its own connection); reads
    /// on [`Store::pool`] beside it are fine.
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Closes the pool, waiting for connections in use to be returned: the end of a clean
    /// shutdown. On SQLite the write-ahead log is first checkpointed into the database
    /// file and truncated (`PRAGMA wal_checkpoint(TRUNCATE)`), so no `-wal` file full of
    /// committed pages is left beside the database; a checkpoint that cannot finish (a
    /// reader in another process) is logged and the pool closed anyway. Every clone of
    /// this store stops working.
    pub async fn close(&self) {
        if self.dialect == Dialect::Sqlite && !self.pool.is_closed() {
            self.checkpoint_wal().await;
        }
        // On PostgreSQL both are one pool; closing it twice is harmless.
        self.writer.close().await;
        self.pool.close().await;
    }

    /// Checkpoints the SQLite write-ahead log and truncates it; see [`Store::close`]. Tried
    /// again while it is refused as busy, within [`CLOSE_CHECKPOINT_BUDGET`].
    async fn checkpoint_wal(&self) {
        let started = std::time::Instant::now();
        loop {
            // On the write connection: it waits for the queued writes instead of racing them.
            let outcome: std::result::Result<(i64, i64, i64), _> =
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(&self.writer)
                    .await;
            let again = started.elapsed() < CLOSE_CHECKPOINT_BUDGET;
            match outcome {
                Ok((0, _, _)) => return,
                Ok(_) if again => tokio::time::sleep(CLOSE_CHECKPOINT_RETRY).await,
                Ok((_, log_frames, checkpointed)) => {
                    tracing::warn!(
                        log_frames,
                        checkpointed,
                        "the SQLite WAL checkpoint at close was blocked; the -wal file stays"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the SQLite WAL checkpoint at close failed");
                    return;
                }
            }
        }
    }

    /// Starts a write transaction. On SQLite it first waits its turn for the write
    /// connection (the process's write queue, first come first served, at most
    /// [`SQLITE_WRITE_QUEUE_TIMEOUT`]), which it holds until commit, rollback or drop, and
    /// then takes the database write lock up front (`BEGIN IMMEDIATE`): a deferred
    /// transaction that reads and then writes can fail to upgrade its lock without waiting
    /// on the busy timeout. The task must not start another write before this one ends.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        let tx = match self.dialect {
            Dialect::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await.db()?,
            Dialect::Postgres => self.pool.begin().await.db()?,
        };
        Ok(tx)
    }

    /// Starts a transaction holding the lock on chat `chat_id` (invariant 1): PostgreSQL
    /// locks the row (`FOR UPDATE`), SQLite the whole database (`BEGIN IMMEDIATE`, one
    /// writer). Either way two such transactions on one chat never interleave.
    /// [`ErrorKind::NotFound`] when the chat does not exist.
    pub async fn begin_chat_tx(&self, chat_id: Uuid) -> Result<ChatTx> {
        self.begin_chat_tx_with(chat_id, false).await
    }

    /// [`Store::begin_chat_tx`] that, with `claim_lock` on PostgreSQL, also takes the
    /// claims' advisory lock ([`CLAIM_ADVISORY_LOCK_KEY`]) in the same statement, before
    /// the chat's row lock: what a send that may claim its turn needs, without a round trip
    /// of its own. The order (advisory lock, then row lock) is safe: claims take the
    /// advisory lock and then only skip locked rows, and nothing holding a chat's lock waits
    /// for the advisory lock.
    pub(crate) async fn begin_chat_tx_with(
        &self,
        chat_id: Uuid,
        claim_lock: bool,
    ) -> Result<ChatTx> {
        let claim_lock = claim_lock && self.dialect == Dialect::Postgres;
        let mut tx = self.begin_write().await?;
        // The lock and the chat's state (owner, lease, status) in one round trip.
        let sql = match self.dialect {
            Dialect::Sqlite => {
                format!(
                    "SELECT {} FROM chats WHERE id = $1",
                    changes::LOCKED_CHAT_COLUMNS
                )
            }
            // `pg_advisory_xact_lock` returns `void`, which the driver cannot decode: cast
            // to text (an empty string).
            Dialect::Postgres if claim_lock => format!(
                "SELECT {}, pg_advisory_xact_lock($2)::text AS claim_lock FROM chats \
                 WHERE id = $1 FOR UPDATE",
                changes::LOCKED_CHAT_COLUMNS
            ),
            Dialect::Postgres => format!(
                "SELECT {} FROM chats WHERE id = $1 FOR UPDATE",
                changes::LOCKED_CHAT_COLUMNS
            ),
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(uuid_text(chat_id));
        if claim_lock {
            query = query.bind(CLAIM_ADVISORY_LOCK_KEY);
        }
        let found = query.fetch_optional(&mut *tx).await.db()?;
        let Some(row) = found else {
            tx.rollback().await.db()?;
            return Err(chat_not_found(chat_id));
        };
        let locked = changes::LockedChat::from_row(&row)?;
        Ok(ChatTx {
            tx,
            chat_id,
            locked: Some(locked),
        })
    }
}

/// What every new connection of a store's pools is set up with.
#[derive(Clone)]
struct ConnectionSetup {
    dialect: Dialect,
    /// PostgreSQL: the `SET search_path` statement of [`StoreOptions::schema`].
    set_path: Option<String>,
    /// SQLite: `PRAGMA busy_timeout`.
    busy_timeout: Duration,
    /// SQLite: `PRAGMA synchronous` (a per-connection setting, unlike the journal mode).
    synchronous: SqliteSynchronous,
}

impl ConnectionSetup {
    /// Pool options of `size` connections, each set up by [`ConnectionSetup::apply`].
    fn pool_options(&self, size: u32, acquire_timeout: Duration) -> AnyPoolOptions {
        let setup = self.clone();
        let ping = self.dialect == Dialect::Postgres;
        AnyPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                Box::pin(async move {
                    if ping && meta.idle_for > PING_IDLE_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                let setup = setup.clone();
                Box::pin(async move { setup.apply(conn).await })
            })
    }

    async fn apply(&self, conn: &mut AnyConnection) -> std::result::Result<(), sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => {
                let busy = format!("PRAGMA busy_timeout = {}", self.busy_timeout.as_millis());
                conn.execute(sqlx::AssertSqlSafe(busy)).await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                let synchronous = format!("PRAGMA synchronous = {}", self.synchronous.as_sql());
                conn.execute(sqlx::AssertSqlSafe(synchronous)).await?;
                // Checkpoints run beside the writer (SQLITE_CHECKPOINT_INTERVAL), not in
                // the commit that crosses SQLite's automatic mark.
                conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
            }
            Dialect::Postgres => {
                if let Some(sql) = &self.set_path {
                    // The schema name was validated to identifier characters.
                    conn.execute(sqlx::AssertSqlSafe(sql.clone())).await?;
                }
            }
        }
        Ok(())
    }
}

/// `url` with `mode=rwc` (create the database file if missing) unless it sets a `mode`.
///
/// The parameters are read as sqlx reads them (everything after the first `?`, decoded as
/// `application/x-www-form-urlencoded`), so `mod%65=ro` counts as a mode too; the URL is
/// otherwise kept byte for byte, since sqlx percent-decodes the file name itself.
/// Mode of every file the store creates (and of the key file `chatd-server` writes beside
/// it): read and write for the owner only. The database holds every chat, and provider keys
/// sealed with a key that may sit next to it.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// The file a `sqlite:` URL opens (`sqlite://chatd.db`, `sqlite:chatd.db`, query parameters
/// ignored, percent-escapes decoded as SQLite's driver decodes them); `None` for other
/// databases, in-memory databases (`:memory:`, `mode=memory`) and read-only opens
/// (`mode=ro`), which create nothing.
pub fn sqlite_file_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (database, params) = match rest.split_once('?') {
        Some((d, p)) => (d, p),
        None => (rest, ""),
    };
    if database.is_empty() || database == ":memory:" {
        return None;
    }
    let creates = url::form_urlencoded::parse(params.as_bytes())
        .all(|(key, value)| key != "mode" || (value != "memory" && value != "ro"));
    if !creates {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(database)
        .decode_utf8()
        .ok()?;
    Some(std::path::PathBuf::from(decoded.into_owned()))
}

/// Creates `path` empty with [`PRIVATE_FILE_MODE`] when it does not exist, setting the mode
/// explicitly afterwards so the umask cannot widen or narrow it. An existing file is left
/// as it is (an operator may have chosen its mode), with a warning when others can read
/// it. A missing directory is left to the driver to report.
pub fn create_private_file(path: &std::path::Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(PRIVATE_FILE_MODE);
    }
    match options.open(path) {
        Ok(file) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Database,
                            format!("setting the mode of {}: {e}", path.display()),
                        )
                    })?;
            }
            drop(file);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(path) {
                    let mode = meta.permissions().mode() & 0o777;
                    if mode & 0o077 != 0 {
                        tracing::warn!(
                            path = %path.display(),
                            mode = format!("{mode:o}"),
                            "the database file is readable by other users; chmod 600 it"
                        );
                    }
                }
            }
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

fn sqlite_url_creating_file(url: &str) -> String {
    let has_mode = url.split_once('?').is_some_and(|(_, q)| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(key, _)| key == "mode")
    });
    if has_mode {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

fn validate_schema_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SCHEMA_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes().first().is_some_and(u8::is_ascii_digit);
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "schema name must be 1 to {MAX_SCHEMA_NAME_LEN} letters, digits or '_', not starting with a digit"
            ),
        ))
    }
}

/// [`ErrorKind::NotFound`] unless chat `chat_id` exists: the check of reads that would
/// otherwise answer an unknown chat with an empty result.
pub(crate) async fn ensure_chat_exists(conn: &mut AnyConnection, chat_id: Uuid) -> Result<()> {
    let exists = sqlx::query("SELECT id FROM chats WHERE id = $1")
        .bind(uuid_text(chat_id))
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    match exists {
        Some(_) => Ok(()),
        None => Err(chat_not_found(chat_id)),
    }
}

pub(crate) fn chat_not_found(chat_id: Uuid) -> Error {
    Error::new(ErrorKind::NotFound, format!("chat {chat_id} not found"))
}

/// The current instant truncated to whole microseconds, the store's time resolution, so a
/// value returned by a write equals the value read back.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A stored timestamp (Unix microseconds) as a [`Timestamp`]; [`ErrorKind::CorruptRow`]
/// when out of range.
pub fn timestamp_from_micros(micros: i64) -> Result<Timestamp> {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(Timestamp)
        .ok_or_else(|| Error::new(ErrorKind::CorruptRow, "stored timestamp is out of range"))
}

/// A [`Timestamp`] as stored (Unix microseconds; sub-microsecond digits are dropped).
pub fn timestamp_to_micros(t: Timestamp) -> i64 {
    t.0.timestamp_micros()
}

/// `$first, $first+1, …` for `n` bound parameters (an `IN (…)` list, a `VALUES` group):
/// values are always bound, never spliced into the SQL.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first.saturating_add(n))
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A UUID as stored: lowercase hyphenated text.
pub fn uuid_text(id: Uuid) -> String {
    id.as_hyphenated().to_string()
}

/// A stored UUID; [`ErrorKind::CorruptRow`] when it is not one.
pub fn parse_uuid(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::new(ErrorKind::CorruptRow, "stored id is not a UUID"))
}

fn parse_opt_uuid(text: Option<String>) -> Result<Option<Uuid>> {
    text.as_deref().map(parse_uuid).transpose()
}

fn get_uuid(row: &sqlx::any::AnyRow, col: &str) -> Result<Uuid> {
    parse_uuid(&row.try_get::<String, _>(col).db()?)
}

fn get_opt_uuid(row: &sqlx::any::AnyRow, col: &str) -> Result<Option<Uuid>> {
    parse_opt_uuid(row.try_get::<Option<String>, _>(col).db()?)
}

fn get_bool(row: &sqlx::any::AnyRow, col: &str) -> Result<bool> {
    Ok(row.try_get::<i64, _>(col).db()? != 0)
}

fn get_time(row: &sqlx::any::AnyRow, col: &str) -> Result<Timestamp> {
    timestamp_from_micros(row.try_get::<i64, _>(col).db()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_file_paths() {
        use std::path::PathBuf;
        let p = |u: &str| sqlite_file_path(u);
        assert_eq!(p("sqlite://chatd.db"), Some(PathBuf::from("chatd.db")));
        assert_eq!(
            p("sqlite:/tmp/a.db?mode=rwc"),
            Some(PathBuf::from("/tmp/a.db"))
        );
        assert_eq!(
            p("sqlite:///tmp/a%20b.db"),
            Some(PathBuf::from("/tmp/a b.db"))
        );
        assert_eq!(p("sqlite://x.db?mode=ro"), None);
        assert_eq!(p("sqlite://x.db?mode=memory"), None);
        assert_eq!(p("sqlite::memory:"), None);
        assert_eq!(p("sqlite://"), None);
        assert_eq!(p("postgres://h/db"), None);
    }

    #[test]
    fn dialect_from_url() {
        assert_eq!(
            Dialect::from_url("sqlite:///tmp/x.db").ok(),
            Some(Dialect::Sqlite)
        );
        assert_eq!(
            Dialect::from_url("postgresql://h/db").ok(),
            Some(Dialect::Postgres)
        );
        assert_eq!(
            Dialect::from_url("mysql://h/db")
                .map_err(|e| e.kind())
                .err(),
            Some(ErrorKind::InvalidArgument)
        );
    }

    #[test]
    fn sqlite_url_gets_create_mode_once() {
        assert_eq!(
            sqlite_url_creating_file("sqlite:///a.db"),
            "sqlite:///a.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url_creating_file("sqlite:///a.db?cache=shared"),
            "sqlite:///a.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            sqlite_url_creating_file("sqlite:///a.db?mode=ro"),
            "sqlite:///a.db?mode=ro"
        );
        // Decoded as sqlx decodes it: an encoded key is still the mode.
        assert_eq!(
            sqlite_url_creating_file("sqlite:///a.db?cache=shared&mod%65=ro"),
            "sqlite:///a.db?cache=shared&mod%65=ro"
        );
        // A parameter that only starts with "mode" is not the mode.
        assert_eq!(
            sqlite_url_creating_file("sqlite:///a.db?modest=1"),
            "sqlite:///a.db?modest=1&mode=rwc"
        );
        // The file name is left as given (sqlx decodes it).
        assert_eq!(
            sqlite_url_creating_file("sqlite:///my%20dir/a b.db"),
            "sqlite:///my%20dir/a b.db?mode=rwc"
        );
    }

    #[test]
    fn schema_names() {
        assert!(validate_schema_name("chatd_test_1").is_ok());
        for bad in ["", "1abc", "a-b", "a\"b", &"x".repeat(64)] {
            assert!(validate_schema_name(bad).is_err(), "{bad}");
        }
    }

    /// Runs `test` on a fresh SQLite file, then on a fresh PostgreSQL schema when
    /// `CHATD_TEST_DATABASE_URL` is set: the test kit's databases (removed afterwards, also
    /// on panic) under this crate's own `Store`, for the tests that need the store's
    /// crate-private parts. (The kit's `on_each_backend` hands out the `Store` of the
    /// chatd-core the kit links, a different type from this unit-test build's.)
    async fn on_each_backend<F, Fut>(test: F)
    where
        F: Fn(Store) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        on_each_backend_with(|_| {}, SQLITE_BUSY_TIMEOUT, test).await;
    }

    /// A write waits in the queue for at most its timeout, then fails instead of hanging;
    /// the queue serves the next writer once the holder finishes.
    #[tokio::test]
    async fn a_sqlite_writer_gives_up_after_the_queue_timeout() {
        let db = chatd_test_support::db::TestDatabase::sqlite();
        let store = Store::connect_with_timeouts(
            StoreOptions::new(db.url()),
            SQLITE_BUSY_TIMEOUT,
            // Long enough to open the write connection at start (the pool's first acquire
            // has the same bound), short enough to wait out below.
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        let held = store.begin_write().await.unwrap();
        let waiting = store.begin_write().await.map(|_| ()).map_err(|e| e.kind());
        assert_eq!(waiting, Err(ErrorKind::Database));
        // Reads do not queue behind the writer.
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(one, 1);
        finish_tx(held, Ok(())).await.unwrap();
        let next = store.begin_write().await.unwrap();
        finish_tx(next, Ok(())).await.unwrap();
        store.close().await;
        db.remove().await;
    }

    /// [`on_each_backend`] with the options changed by `adjust` and another SQLite busy
    /// timeout.
    async fn on_each_backend_with<F, Fut>(
        adjust: impl Fn(&mut StoreOptions),
        busy_timeout: Duration,
        test: F,
    ) where
        F: Fn(Store) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        for backend in chatd_test_support::db::backends() {
            let db = chatd_test_support::db::TestDatabase::create(backend).await;
            let mut options = StoreOptions::new(db.url());
            if let Some(schema) = db.schema() {
                options.schema = Some(schema.to_owned());
                options.max_connections = chatd_test_support::db::POSTGRES_TEST_MAX_CONNECTIONS;
            }
            adjust(&mut options);
            let store =
                Store::connect_with_timeouts(options, busy_timeout, SQLITE_WRITE_QUEUE_TIMEOUT)
                    .await
                    .unwrap();
            test(store.clone()).await;
            store.close().await;
            db.remove().await;
        }
    }

    /// A user, an organization and a chat of theirs.
    async fn one_chat(store: &Store) -> Uuid {
        let user = store
            .create_user(NewUser {
                username: "alice".into(),
                name: "Alice".into(),
                role: crate::Role::Member,
            })
            .await
            .unwrap();
        let org = store.create_organization("acme").await.unwrap();
        store.add_member(org.id, user.id).await.unwrap();
        let (chat, _) = store
            .create_chat(NewChat {
                organization_id: org.id,
                owner_id: user.id,
                title: "A chat".into(),
                model_config_id: Uuid::new_v4(),
                labels: Default::default(),
                mcp_server_ids: Vec::new(),
                dynamic_tools: Vec::new(),
                system_prompt: String::new(),
                client_type: codersdk::ChatClientType::Ui,
                plan_mode: None,
                first_message_parts: vec![codersdk::ChatMessagePart::text("x")],
                created_by: Some(user.id),
            })
            .await
            .unwrap();
        chat.id
    }

    #[tokio::test]
    async fn chat_lock_serializes_read_modify_write() {
        const TASKS: usize = 2;
        const ROUNDS: i64 = 50;
        on_each_backend(|store| async move {
            let chat = one_chat(&store).await;
            let mut handles = Vec::new();
            for _ in 0..TASKS {
                let store = store.clone();
                handles.push(tokio::spawn(async move {
                    for _ in 0..ROUNDS {
                        let mut tx = store.begin_chat_tx(chat).await.unwrap();
                        let row = sqlx::query("SELECT lease_epoch FROM chats WHERE id = $1")
                            .bind(chat.to_string())
                            .fetch_one(tx.conn())
                            .await
                            .unwrap();
                        let epoch: i64 = row.try_get("lease_epoch").unwrap();
                        // Give the other task every chance to interleave.
                        tokio::task::yield_now().await;
                        sqlx::query("UPDATE chats SET lease_epoch = $2 WHERE id = $1")
                            .bind(chat.to_string())
                            .bind(epoch + 1)
                            .execute(tx.conn())
                            .await
                            .unwrap();
                        tx.commit().await.unwrap();
                    }
                }));
            }
            for h in handles {
                h.await.unwrap();
            }
            let epoch: i64 = sqlx::query_scalar("SELECT lease_epoch FROM chats WHERE id = $1")
                .bind(chat.to_string())
                .fetch_one(store.pool())
                .await
                .unwrap();
            assert_eq!(epoch, ROUNDS * TASKS as i64);
        })
        .await;
    }

    /// Writers of every kind (chat transactions, other write transactions, one-statement
    /// writes) at once, with SQLite's busy handler off: none may fail with "database is
    /// locked", because the process's writers wait in the write queue, not in SQLite.
    #[tokio::test]
    async fn concurrent_writers_queue_instead_of_meeting_a_locked_database() {
        const TASKS: usize = 16;
        const ROUNDS: i64 = 10;
        on_each_backend_with(
            |_| {},
            Duration::ZERO,
            |store| async move {
                if store.dialect() == Dialect::Sqlite {
                    // The control: two write transactions beside each other, on two pooled
                    // connections and so outside the queue, do meet the lock at once.
                    let mut first = store.pool().acquire().await.unwrap();
                    let mut second = store.pool().acquire().await.unwrap();
                    first.execute("BEGIN IMMEDIATE").await.unwrap();
                    let locked = second.execute("BEGIN IMMEDIATE").await.unwrap_err();
                    assert!(locked.to_string().contains("locked"), "{locked}");
                    first.execute("ROLLBACK").await.unwrap();
                }
                let chat = one_chat(&store).await;
                let mut handles = Vec::new();
                for task in 0..TASKS {
                    let store = store.clone();
                    handles.push(tokio::spawn(async move {
                        for round in 0..ROUNDS {
                            match (task + round as usize) % 3 {
                                0 => {
                                    let mut tx = store.begin_chat_tx(chat).await.unwrap();
                                    sqlx::query(
                                    "UPDATE chats SET lease_epoch = lease_epoch + 1 WHERE id = $1",
                                )
                                .bind(chat.to_string())
                                .execute(tx.conn())
                                .await
                                .unwrap();
                                    tx.commit().await.unwrap();
                                }
                                1 => {
                                    // Dropped without a commit: rolled back, and the write
                                    // connection goes back to the queue all the same.
                                    let mut tx = store.begin_write().await.unwrap();
                                    sqlx::query(
                                    "UPDATE chats SET lease_epoch = lease_epoch + 1 WHERE id = $1",
                                )
                                .bind(chat.to_string())
                                .execute(&mut *tx)
                                .await
                                .unwrap();
                                    drop(tx);
                                }
                                _ => {
                                    sqlx::query(
                                    "UPDATE chats SET lease_epoch = lease_epoch + 1 WHERE id = $1",
                                )
                                .bind(chat.to_string())
                                .execute(store.writer())
                                .await
                                .unwrap();
                                }
                            }
                        }
                    }));
                }
                for h in handles {
                    h.await.unwrap();
                }
                let committed = (0..TASKS)
                    .flat_map(|task| (0..ROUNDS).map(move |round| (task + round as usize) % 3))
                    .filter(|kind| *kind != 1)
                    .count();
                let epoch: i64 = sqlx::query_scalar("SELECT lease_epoch FROM chats WHERE id = $1")
                    .bind(chat.to_string())
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
                assert_eq!(epoch, i64::try_from(committed).unwrap());
            },
        )
        .await;
    }

    /// `synchronous` is a per-connection setting: every pooled connection (all held at
    /// once, so none is reused) and the write connection read it back as set.
    #[tokio::test]
    async fn sqlite_synchronous_is_set_on_every_connection() {
        for synchronous in [SqliteSynchronous::Normal, SqliteSynchronous::Full] {
            on_each_backend_with(
                |options| options.sqlite_synchronous = synchronous,
                SQLITE_BUSY_TIMEOUT,
                |store| async move {
                    if store.dialect() != Dialect::Sqlite {
                        return;
                    }
                    let mut held = Vec::new();
                    for _ in 0..DEFAULT_MAX_CONNECTIONS {
                        let mut conn = store.pool().acquire().await.unwrap();
                        let value: i64 = sqlx::query_scalar("PRAGMA synchronous")
                            .fetch_one(&mut *conn)
                            .await
                            .unwrap();
                        assert_eq!(value, synchronous.pragma_value(), "{synchronous:?}");
                        held.push(conn);
                    }
                    let value: i64 = sqlx::query_scalar("PRAGMA synchronous")
                        .fetch_one(store.writer())
                        .await
                        .unwrap();
                    assert_eq!(value, synchronous.pragma_value(), "{synchronous:?}");
                },
            )
            .await;
        }
        assert_eq!(
            StoreOptions::new("sqlite://x.db").sqlite_synchronous,
            SqliteSynchronous::Normal
        );
    }

    #[test]
    fn time_round_trips_in_micros() {
        let now = now_micros();
        let t = timestamp_from_micros(now).map_err(|e| e.kind());
        assert_eq!(t.map(timestamp_to_micros), Ok(now));
        assert!(timestamp_from_micros(i64::MAX).is_err());
    }
}
