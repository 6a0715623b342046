//! The engine: a handle over the store, the stream hub and this process's workers.
//!
//! [`Engine::start`] connects to the database and starts the run loop (acquisition,
//! heartbeats, stale recovery). Its methods mirror the HTTP operations of
//! `/api/experimental/chats` and return `codersdk` types. Every method that changes a chat
//! commits first and then publishes (stream events, watch events, the wake signal), so a
//! subscriber never sees a state the database does not hold.

mod admission;
pub(crate) use admission::usage_limit_status_at;
mod autotitle;
mod chain;
mod compaction;
mod debug;
mod files;
mod histories;
mod models;
mod ops;
mod publish;
mod replicas;
mod resolver;
mod retention;
mod runner;
mod stream;
mod subagents;
mod summary;
mod titles;
mod turn;
mod usage;
mod workspace;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use codersdk::{ChatStatus, Uuid};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cluster::{ConfigChange, EngineObserver};
use crate::error::{Error, ErrorKind, Result};
use crate::hub::{HubConfig, StreamHub};
use crate::mcp::McpConnector;
use crate::role::Role;
use crate::store::{Lease, Store, StoreOptions};
use crate::tools::ToolRegistry;
use crate::workspace::tools::{PlanFileOnly, WritePolicy};
use crate::workspace::WorkspaceProvider;

pub use compaction::{
    context_tokens, COMPACTION_DISABLED_THRESHOLD, COMPACTION_FAILED_MESSAGE,
    COMPACTION_SUMMARY_PREFIX, COMPACTION_SUMMARY_PROMPT, COMPACTION_TIMEOUT, COMPACTION_TOOL_NAME,
    CONTEXT_STILL_TOO_LONG_MESSAGE, FALLBACK_CONTEXT_LIMIT, MAX_COMPACTION_REENTRIES,
};
pub use files::{FileUpload, FILE_NOT_FOUND_MESSAGE, NOT_A_MEMBER_MESSAGE};
pub use histories::MAX_CACHED_HISTORY_MESSAGES;
pub use models::{ModelResolver, ModelSelection, ResolvedModel, TurnModelRequest};
pub use ops::UNUSABLE_MCP_SERVER_DETAIL;
#[doc(hidden)]
pub use publish::{HookPoint, TestHook};
pub use resolver::{StoreModelResolver, MODEL_KEY_MISSING_MESSAGE, MODEL_NOT_SUPPORTED_MESSAGE};
pub use retention::{
    auto_archive_cutoff, retention_cutoff, validate_ai_gateway_retention_days, RetentionSweep,
    DEFAULT_AI_GATEWAY_RETENTION_DAYS, DEFAULT_RETENTION_INTERVAL, MAX_AI_GATEWAY_RETENTION_DAYS,
    MIN_AI_GATEWAY_RETENTION_DAYS, RETENTION_BATCH_SIZE, RETENTION_MIDNIGHT_SLACK,
};
pub use runner::CONTENDED_CLAIM_RETRY;
pub use stream::ChatStream;
pub use summary::{
    MAX_TURN_SUMMARY_WORDS, TURN_SUMMARY_CONTEXT_MESSAGES, TURN_SUMMARY_REPLY_MAX_RUNES,
    TURN_SUMMARY_SYSTEM_PROMPT, TURN_SUMMARY_TIMEOUT, TURN_SUMMARY_USER_MAX_RUNES,
};
pub use titles::{
    CONVERSATION_TITLE_SYSTEM_PROMPT, TITLE_CONTEXT_MESSAGES, TITLE_CONVERSATION_MAX_RUNES,
    TITLE_RECENT_TURNS,
};
pub use turn::{FINISH_ATTEMPTS, FINISH_RETRY_DELAY};

/// How often the run loop looks for `pending` chats when no wake signal arrives
///.
pub const DEFAULT_ACQUIRE_INTERVAL: Duration = Duration::from_secs(1);
/// How often a worker refreshes the heartbeats of the chats it runs.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// A `running` chat whose heartbeat is older than this, or a `requires_action` chat not
/// updated for this long, is recovered.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(5 * 60);
/// How often stale recovery runs (also once at start-up).
pub const DEFAULT_RECOVERY_INTERVAL: Duration = Duration::from_secs(60);
/// Most model steps in one turn; reaching it ends the turn normally.
pub const DEFAULT_MAX_STEPS: u32 = 1200;
/// Most turns one engine runs at once; `pending` chats beyond it wait for a free slot (or
/// for another process).
pub const DEFAULT_MAX_ACTIVE_TURNS: usize = 64;
/// Most root chats `running` at once in the whole deployment (every process on the
/// database), enforced by the claim ([`Store::claim_pending_within`]); more wait `pending`.
pub const DEFAULT_MAX_RUNNING_ROOT_CHATS: usize = 5;
/// Most sub-agent chats `running` at once in the whole deployment, counted apart from root
/// chats so that sub-agents never take a root chat's place (engine.md §8.3).
pub const DEFAULT_MAX_RUNNING_SUBAGENTS: usize = 10;
/// Output token limit of a model call whose model config sets none.
pub const DEFAULT_MAX_OUTPUT_TOKENS: i64 = 32_000;
/// How long after a completed turn its summary (engine.md §10.3) is generated: a chat that
/// moved on meanwhile (the user answered at once, so it runs again) gets no label for that
/// turn — it would describe a state the chat already left — and the model call is saved;
/// the label follows the next turn that completes and stays completed this long.
pub const DEFAULT_TURN_SUMMARY_DELAY: Duration = Duration::from_secs(2);
/// How long [`Engine::shutdown`] waits for running turns to hand their chats back.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Engine::drain`] lets running turns finish before handing the rest back (the
/// reference server's `--drain-timeout`).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Configuration changes buffered per [`Engine::config_changes`] receiver; a receiver that
/// falls further behind is told it lagged (and should drop everything it caches).
pub const CONFIG_CHANGE_CAPACITY: usize = 256;

/// Intervals and limits of an [`Engine`]. Every field has a `DEFAULT_*` constant; tests
/// shrink the intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineSettings {
    /// See [`DEFAULT_ACQUIRE_INTERVAL`].
    pub acquire_interval: Duration,
    /// See [`DEFAULT_HEARTBEAT_INTERVAL`].
    pub heartbeat_interval: Duration,
    /// See [`DEFAULT_STALE_AFTER`].
    pub stale_after: Duration,
    /// See [`DEFAULT_RECOVERY_INTERVAL`].
    pub recovery_interval: Duration,
    /// See [`DEFAULT_MAX_STEPS`].
    pub max_steps: u32,
    /// See [`DEFAULT_MAX_ACTIVE_TURNS`].
    pub max_active_turns: usize,
    /// See [`DEFAULT_MAX_RUNNING_ROOT_CHATS`].
    pub max_running_root_chats: usize,
    /// See [`DEFAULT_MAX_RUNNING_SUBAGENTS`].
    pub max_running_subagents: usize,
    /// See [`DEFAULT_MAX_OUTPUT_TOKENS`].
    pub default_max_output_tokens: i64,
    /// See [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub shutdown_timeout: Duration,
    /// See [`DEFAULT_TURN_SUMMARY_DELAY`]; zero generates the summary at once.
    pub turn_summary_delay: Duration,
    /// Whether a send to an idle chat claims its turn for this process when it has a free
    /// turn slot, so the turn starts without waiting for the run loop (on by default;
    /// docs/turn-path.md "The send claims its own turn"). Off: every turn is claimed by a
    /// run loop, so which replica runs a turn does not depend on which one received the
    /// request.
    pub claim_on_send: bool,
    /// See [`DEFAULT_LIVENESS_INTERVAL`](crate::cluster::DEFAULT_LIVENESS_INTERVAL)
    /// (PostgreSQL only).
    pub liveness_interval: Duration,
    /// How often the retention job sweeps (auto-archive, purges; docs/retention.md):
    /// [`DEFAULT_RETENTION_INTERVAL`] by default, and just after each UTC midnight. `None`
    /// runs no job: sweeps happen only through [`Engine::run_retention_sweep`] (tests, or an
    /// embedder that schedules them itself).
    pub retention_interval: Option<Duration>,
    /// How many days the retention job keeps AI Gateway interception records (by their
    /// start) before purging them with their tool usages (docs/ai-gateway-records.md
    /// "Retention"): [`DEFAULT_AI_GATEWAY_RETENTION_DAYS`] by default; 0 keeps them
    /// forever; otherwise [`MIN_AI_GATEWAY_RETENTION_DAYS`] to
    /// [`MAX_AI_GATEWAY_RETENTION_DAYS`] ([`Engine::start`] refuses anything else). A
    /// deployment setting, not a `site_config` one: Coder's `CODER_AIBRIDGE_RETENTION` is
    /// a server flag too.
    pub ai_gateway_retention_days: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            acquire_interval: DEFAULT_ACQUIRE_INTERVAL,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            stale_after: DEFAULT_STALE_AFTER,
            recovery_interval: DEFAULT_RECOVERY_INTERVAL,
            max_steps: DEFAULT_MAX_STEPS,
            max_active_turns: DEFAULT_MAX_ACTIVE_TURNS,
            max_running_root_chats: DEFAULT_MAX_RUNNING_ROOT_CHATS,
            max_running_subagents: DEFAULT_MAX_RUNNING_SUBAGENTS,
            default_max_output_tokens: DEFAULT_MAX_OUTPUT_TOKENS,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            turn_summary_delay: DEFAULT_TURN_SUMMARY_DELAY,
            claim_on_send: true,
            liveness_interval: crate::cluster::DEFAULT_LIVENESS_INTERVAL,
            retention_interval: Some(DEFAULT_RETENTION_INTERVAL),
            ai_gateway_retention_days: DEFAULT_AI_GATEWAY_RETENTION_DAYS,
        }
    }
}

impl EngineSettings {
    fn validate(&self) -> Result<()> {
        let zero = [
            ("acquire_interval", self.acquire_interval),
            ("heartbeat_interval", self.heartbeat_interval),
            ("stale_after", self.stale_after),
            ("recovery_interval", self.recovery_interval),
            ("liveness_interval", self.liveness_interval),
            (
                "retention_interval",
                self.retention_interval
                    .unwrap_or(DEFAULT_RETENTION_INTERVAL),
            ),
        ]
        .into_iter()
        .find(|(_, d)| d.is_zero());
        if let Some((name, _)) = zero {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("engine setting {name} must be positive"),
            ));
        }
        retention::validate_ai_gateway_retention_days(self.ai_gateway_retention_days)
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("engine setting {e}")))?;
        if self.heartbeat_interval >= self.stale_after {
            // A worker would be declared stale between two of its own heartbeats.
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "engine setting heartbeat_interval must be shorter than stale_after",
            ));
        }
        if self.max_steps == 0
            || self.max_active_turns == 0
            || self.max_running_root_chats == 0
            || self.max_running_subagents == 0
            || self.default_max_output_tokens <= 0
        {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "engine settings max_steps, max_active_turns, max_running_root_chats, \
                 max_running_subagents and default_max_output_tokens must be positive",
            ));
        }
        Ok(())
    }
}

/// Everything [`Engine::start`] needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// The database.
    pub database: StoreOptions,
    /// Where models come from.
    pub models: Arc<dyn ModelResolver>,
    /// Intervals and limits.
    pub settings: EngineSettings,
    /// Stream hub limits.
    pub hub: HubConfig,
    /// This process's worker id; a fresh random one when `None`.
    pub worker_id: Option<Uuid>,
    /// The built-in tools and the policy that picks each turn's active set.
    pub tools: Arc<ToolRegistry>,
    /// Whether a model-written title replaces the fallback title after the first turn
    /// starts.
    pub generate_titles: bool,
    /// Whether a completed turn of a root chat gets a model-written 2–5 word status label
    /// in `last_turn_summary` (engine.md §10.3; one small model call per turn, recorded as
    /// spend). On by default.
    pub turn_summaries: bool,
    /// A test hook; see [`EngineConfig::with_test_hook`].
    hook: Option<TestHook>,
    /// Where chats' workspaces come from; `None`: no workspace tools, and the prompt says
    /// so (docs/workspaces.md).
    pub workspaces: Option<Arc<dyn WorkspaceProvider>>,
    /// Which writes `write_file` and `edit_files` may do ([`PlanFileOnly`] by default:
    /// anywhere, except only the plan file on plan turns).
    pub workspace_write_policy: Arc<dyn WritePolicy>,
    /// Without [`workspaces`](Self::workspaces): tell the model that the chat has no
    /// workspace (no files, no commands). Off by default: an embedder without workspaces
    /// may well give the model file tools of its own; the reference server turns it on when
    /// `--workspaces-dir` is unset.
    pub announce_no_workspace: bool,
    /// Connects turns to admin MCP servers; `None`: MCP server configs are stored but no
    /// turn uses them (docs/mcp.md).
    pub mcp: Option<Arc<McpConnector>>,
    /// Whether root chats get the sub-agent tools (`spawn_subagent`, `wait_agent`,
    /// `message_agent`, `close_agent`; docs/subagents.md). On by default.
    pub subagents: bool,
    /// Told about claims, recoveries, the relay's lag and reconnections, and configuration
    /// changes (for metrics); [`NoObserver`](crate::cluster::NoObserver) by default.
    pub observer: Arc<dyn EngineObserver>,
    /// What calendar rules read as now (usage-limit periods, retention, auto-archive);
    /// [`SystemClock`](crate::SystemClock) by default ([`crate::clock`]).
    pub clock: Arc<dyn crate::Clock>,
}

impl EngineConfig {
    /// A configuration with default settings.
    pub fn new(database: StoreOptions, models: Arc<dyn ModelResolver>) -> Self {
        EngineConfig {
            database,
            models,
            settings: EngineSettings::default(),
            hub: HubConfig::default(),
            worker_id: None,
            tools: Arc::new(ToolRegistry::new()),
            generate_titles: true,
            turn_summaries: true,
            workspaces: None,
            workspace_write_policy: Arc::new(PlanFileOnly),
            announce_no_workspace: false,
            mcp: None,
            subagents: true,
            observer: Arc::new(crate::cluster::NoObserver),
            clock: Arc::new(crate::SystemClock),
            hook: None,
        }
    }

    /// Reads calendar time from `clock` instead of the system clock (tests of periods and
    /// retention windows use a [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(mut self, clock: Arc<dyn crate::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Reports claims, recoveries, relay lag and reconnections to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn EngineObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Turns the sub-agent tools of root chats on or off (on by default).
    pub fn with_subagents(mut self, on: bool) -> Self {
        self.subagents = on;
        self
    }

    /// Gives turns the tools of the admin MCP servers that apply to them.
    pub fn with_mcp(mut self, connector: Arc<McpConnector>) -> Self {
        self.mcp = Some(connector);
        self
    }

    /// Installs a hook the engine awaits at each [`HookPoint`], so a test can hold it
    /// there and force an interleaving. Not part of the supported API; an engine without
    /// a hook pays one branch per publication.
    #[doc(hidden)]
    pub fn with_test_hook(mut self, hook: TestHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Tells the model, when there is no workspace provider, that the chat has no
    /// workspace (see [`EngineConfig::announce_no_workspace`]).
    pub fn with_no_workspace_notice(mut self, on: bool) -> Self {
        self.announce_no_workspace = on;
        self
    }

    /// Gives chats workspaces from `provider` (and the workspace tools with them).
    pub fn with_workspaces(mut self, provider: Arc<dyn WorkspaceProvider>) -> Self {
        self.workspaces = Some(provider);
        self
    }

    /// Replaces the policy deciding which writes the workspace tools may do.
    pub fn with_workspace_write_policy(mut self, policy: Arc<dyn WritePolicy>) -> Self {
        self.workspace_write_policy = policy;
        self
    }

    /// Turns automatic titles on or off (on by default).
    pub fn with_generated_titles(mut self, on: bool) -> Self {
        self.generate_titles = on;
        self
    }

    /// Turns turn summaries (`last_turn_summary`) on or off (on by default).
    pub fn with_turn_summaries(mut self, on: bool) -> Self {
        self.turn_summaries = on;
        self
    }

    /// Replaces the tool registry.
    pub fn with_tools(mut self, tools: ToolRegistry) -> Self {
        self.tools = Arc::new(tools);
        self
    }

    /// Replaces the settings.
    pub fn with_settings(mut self, settings: EngineSettings) -> Self {
        self.settings = settings;
        self
    }
}

/// Who is asking: engine methods check that the caller may see or change the chat, and
/// the [`Admin`](crate::Admin) handle that they may read or change the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Actor {
    /// The user.
    pub user_id: Uuid,
    /// Whether the user holds [`Role::Admin`]: admins may read every chat (changing a chat
    /// is for its owner only) and administer the deployment.
    pub admin: bool,
}

impl Actor {
    /// A user acting with `role`.
    pub fn new(user_id: Uuid, role: Role) -> Self {
        Actor {
            user_id,
            admin: role.is_admin(),
        }
    }

    /// A member.
    pub fn user(user_id: Uuid) -> Self {
        Actor::new(user_id, Role::Member)
    }

    /// An admin.
    pub fn admin(user_id: Uuid) -> Self {
        Actor::new(user_id, Role::Admin)
    }

    /// The actor's role.
    pub fn role(&self) -> Role {
        if self.admin {
            Role::Admin
        } else {
            Role::Member
        }
    }

    /// [`ErrorKind::Forbidden`] ([`ADMIN_ONLY_MESSAGE`]) unless the actor is an admin: the
    /// check of every administrator-only operation.
    pub fn require_admin(&self) -> Result<()> {
        if self.admin {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::Forbidden, ADMIN_ONLY_MESSAGE))
        }
    }
}

/// The refusal of an administrator-only operation to anyone else (HTTP 403).
pub const ADMIN_ONLY_MESSAGE: &str = "Only administrators can do this.";

/// Why a running turn is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopCause {
    /// Interrupt (the chat is `waiting`): keep the partial step, then finish.
    Interrupted,
    /// Edit or promote (the chat is `pending` again): discard the partial step.
    Superseded,
    /// The engine is shutting down: discard the partial step, hand the chat back.
    Shutdown,
    /// The heartbeat found the lease gone: stop without writing.
    LeaseLost,
}

/// The in-process control of one running turn.
#[derive(Debug)]
pub(crate) struct TurnControl {
    pub(crate) lease: Lease,
    pub(crate) cancel: CancellationToken,
    cause: Mutex<Option<StopCause>>,
}

impl TurnControl {
    fn new(lease: Lease) -> Self {
        TurnControl {
            lease,
            cancel: CancellationToken::new(),
            cause: Mutex::new(None),
        }
    }

    /// Stops the turn; the first cause wins.
    pub(crate) fn stop(&self, cause: StopCause) {
        {
            let mut slot = lock(&self.cause);
            if slot.is_none() {
                *slot = Some(cause);
            }
        }
        self.cancel.cancel();
    }

    pub(crate) fn cause(&self) -> Option<StopCause> {
        *lock(&self.cause)
    }
}

/// Locks a std mutex, recovering from poisoning: every critical section here leaves the
/// data consistent, so a panic elsewhere must not wedge the engine.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) hub: StreamHub,
    pub(crate) models: Arc<dyn ModelResolver>,
    pub(crate) tools: Arc<ToolRegistry>,
    pub(crate) workspaces: Option<Arc<dyn WorkspaceProvider>>,
    pub(crate) workspace_write_policy: Arc<dyn WritePolicy>,
    pub(crate) announce_no_workspace: bool,
    pub(crate) mcp: Option<Arc<McpConnector>>,
    pub(crate) subagents: bool,
    pub(crate) generate_titles: bool,
    pub(crate) turn_summaries: bool,
    pub(crate) settings: EngineSettings,
    /// Calendar time ([`EngineConfig::clock`]).
    pub(crate) clock: Arc<dyn crate::Clock>,
    pub(crate) worker_id: Uuid,
    pub(crate) wake: Notify,
    /// Whether `pending` chats may be waiting that the last claim left (it was full, or
    /// held back by free slots or the deployment's running limits): a finishing turn then
    /// claims again. After a claim that found fewer chats than it could take, nothing waits
    /// that a wake-up or the acquire interval would not bring (docs/turn-path.md).
    pub(crate) claim_more: std::sync::atomic::AtomicBool,
    /// Turn slots reserved by sends that may claim their own turn
    /// ([`Inner::reserve_send_slot`]), counted with `active` against `max_active_turns`.
    pub(crate) send_slots: std::sync::atomic::AtomicUsize,
    /// The newest turn summary scheduled per chat (a counter): a summary still waiting for
    /// its delay when a later turn of the chat scheduled its own is dropped.
    pub(crate) summaries: Mutex<HashMap<Uuid, u64>>,
    /// The prompt histories of chats this engine ran, for the next turn's appended read.
    pub(crate) histories: histories::Histories,
    /// This process's running turns, by lease: two turns of one chat may overlap (one
    /// winding down after its lease ended while the next claim runs), and each removes
    /// only its own entry.
    pub(crate) active: Mutex<HashMap<Lease, Arc<TurnControl>>>,
    /// The test hook, if any ([`EngineConfig::with_test_hook`]).
    pub(crate) hook: Option<TestHook>,
    /// Every task the engine spawned; aborted when the last [`Engine`] handle is dropped.
    pub(crate) tasks: Arc<Mutex<JoinSet<()>>>,
    /// Cancelled by [`Engine::shutdown`]: no new claims, no new work.
    pub(crate) shutdown: CancellationToken,
    /// The engine opened the database itself ([`Engine::start`]), so its shutdown closes
    /// it; a store handed in belongs to whoever opened it.
    pub(crate) owns_store: bool,
    /// Cancelled by [`Engine::drain`] (and shutdown): no new claims.
    pub(crate) draining: CancellationToken,
    /// PostgreSQL: the relay to the other replicas; `None` on SQLite.
    pub(crate) cluster: Option<Arc<replicas::Cluster>>,
    /// Metrics hooks.
    pub(crate) observer: Arc<dyn EngineObserver>,
    /// Configuration changes of every replica, for caches ([`Engine::config_changes`]).
    pub(crate) config_changes: tokio::sync::broadcast::Sender<ConfigChange>,
}

impl Inner {
    /// Tells the run loop that a chat became `pending`.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut tasks = lock(&self.tasks);
        // Reap finished tasks so the set does not grow with every turn.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }
}

/// Aborts the engine's tasks when the last handle goes away without
/// [`Engine::shutdown`]: like a crashed process, the chats it ran stay `running` until
/// stale recovery (of this or another engine) hands them back.
struct AbortOnDrop {
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        lock(&self.tasks).abort_all();
    }
}

/// The durable chat engine: cheap to clone. [`Engine::start`] connects and starts the run
/// loop; the methods mirror the chats API and publish only after their transaction commits.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
    _guard: Arc<AbortOnDrop>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("worker_id", &self.inner.worker_id)
            .field("dialect", &self.inner.store.dialect())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Connects to the database (running migrations) and starts the run loop.
    pub async fn start(config: EngineConfig) -> Result<Engine> {
        config.settings.validate()?;
        let store = Store::connect_with(config.database.clone()).await?;
        Engine::build(store, config, true).await
    }

    /// Starts an engine on an open store (several engines may share one database, as
    /// several processes would). `config.database` is ignored.
    pub async fn with_store(store: Store, config: EngineConfig) -> Result<Engine> {
        Engine::build(store, config, false).await
    }

    async fn build(store: Store, config: EngineConfig, owns_store: bool) -> Result<Engine> {
        config.settings.validate()?;
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let worker_id = config.worker_id.unwrap_or_else(Uuid::new_v4);
        let spawner = Arc::clone(&tasks);
        let cluster = replicas::start(&store, worker_id, move |task| {
            lock(&spawner).spawn(task);
        })
        .await?;
        let (cluster, liveness_lock) = match cluster {
            Some(started) => (Some(started.cluster), Some(started.lock)),
            None => (None, None),
        };
        let inner = Arc::new(Inner {
            store,
            hub: StreamHub::new(config.hub),
            models: config.models,
            tools: config.tools,
            workspaces: config.workspaces,
            workspace_write_policy: config.workspace_write_policy,
            announce_no_workspace: config.announce_no_workspace,
            mcp: config.mcp,
            subagents: config.subagents,
            generate_titles: config.generate_titles,
            turn_summaries: config.turn_summaries,
            settings: config.settings,
            clock: config.clock,
            worker_id,
            wake: Notify::new(),
            claim_more: std::sync::atomic::AtomicBool::new(true),
            send_slots: std::sync::atomic::AtomicUsize::new(0),
            summaries: Mutex::new(HashMap::new()),
            histories: histories::Histories::default(),
            active: Mutex::new(HashMap::new()),
            hook: config.hook,
            tasks: Arc::clone(&tasks),
            shutdown: CancellationToken::new(),
            owns_store,
            draining: CancellationToken::new(),
            cluster,
            observer: config.observer,
            config_changes: tokio::sync::broadcast::channel(CONFIG_CHANGE_CAPACITY).0,
        });
        // Made before anything awaits below: a start abandoned half-way (its future
        // dropped) aborts what it spawned instead of leaking tasks that keep each other
        // alive.
        let guard = Arc::new(AbortOnDrop {
            tasks: Arc::clone(&tasks),
        });
        inner.spawn(inner.hub.janitor());
        if let Some(liveness_lock) = liveness_lock {
            // Held on its own connection for the engine's life; released when the engine
            // stops (or the process dies, which is the point).
            let interval = inner.settings.liveness_interval;
            // Not stopped by the shutdown token: the lock must outlive the hand-back of this
            // engine's chats; the final abort drops its connection.
            inner.spawn(liveness_lock.hold(interval, CancellationToken::new()));
            let (ready, listening) = tokio::sync::oneshot::channel();
            inner.spawn(replicas::listen(Arc::clone(&inner), ready));
            inner.spawn(replicas::liveness(Arc::clone(&inner)));
            // Started means hearing the other replicas.
            if tokio::time::timeout(replicas::LISTEN_READY_TIMEOUT, listening)
                .await
                .is_err()
            {
                tracing::warn!("the relay listener is not connected yet; starting anyway");
            }
        }
        inner.spawn(runner::run(Arc::clone(&inner)));
        inner.spawn(runner::heartbeats(Arc::clone(&inner)));
        inner.spawn(retention::run(Arc::clone(&inner)));
        Ok(Engine {
            inner,
            _guard: guard,
        })
    }

    /// Starts an engine beside an administration handle, on its database (`config.database`
    /// is ignored): how a server gets both from one connection pool.
    pub async fn with_admin(admin: &crate::Admin, config: EngineConfig) -> Result<Engine> {
        Engine::with_store(admin.store().clone(), config).await
    }

    /// The store underneath: the low-level seam for embedders and tests that need what
    /// neither the engine nor the [`Admin`](crate::Admin) handle offers. It checks no
    /// caller's rights; a server should not need it.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The status of chat `chat_id` as committed, whoever owns it; `None` when there is
    /// no such chat. For observers that follow chats without acting for a user (metrics,
    /// tests); it checks no caller's rights, so never answer a user with it.
    pub async fn chat_status(&self, chat_id: Uuid) -> Result<Option<ChatStatus>> {
        Ok(self
            .inner
            .store
            .get_chat(chat_id)
            .await?
            .map(|chat| chat.status))
    }

    /// The stream hub of this process.
    pub fn hub(&self) -> &StreamHub {
        &self.inner.hub
    }

    /// The calendar time the engine's rules read ([`EngineConfig::clock`]): what a server
    /// takes "now" from for defaults such as the cost report window, so that a test moving
    /// the engine's clock moves them too.
    pub fn clock(&self) -> &dyn crate::Clock {
        &*self.inner.clock
    }

    /// This process's worker id.
    pub fn worker_id(&self) -> Uuid {
        self.inner.worker_id
    }

    /// How many turns this engine is running now.
    pub fn active_turns(&self) -> usize {
        lock(&self.inner.active).len()
    }

    /// The first step of a rolling restart: stops claiming chats and waits until the
    /// running turns have finished, at most `timeout` (e.g. [`DEFAULT_DRAIN_TIMEOUT`]).
    /// Streams and every other operation keep working meanwhile; turns still running
    /// after it are handed back by [`Engine::shutdown`], which should follow. Returns
    /// how many turns were still running at the end.
    pub async fn drain(&self, timeout: Duration) -> usize {
        let inner = &self.inner;
        inner.draining.cancel();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let running = lock(&inner.active).len();
            if running == 0 || tokio::time::Instant::now() >= deadline {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether [`Engine::drain`] (or shutdown) started: the engine claims no more chats.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.is_cancelled()
    }

    /// The PostgreSQL notification channel this engine's relay uses (one per schema), for
    /// operators looking at `pg_stat_activity`; `None` on SQLite.
    pub fn notification_channel(&self) -> Option<String> {
        self.inner
            .cluster
            .as_ref()
            .map(|c| c.namespace.channel.clone())
    }

    /// Whether this engine shares its database with other replicas through the relay
    /// (PostgreSQL); false on SQLite.
    pub fn is_clustered(&self) -> bool {
        self.inner.cluster.is_some()
    }

    /// Announces a committed configuration change to every replica's
    /// [`Engine::config_changes`] receivers (through the relay on PostgreSQL): what an
    /// administration path calls after its write, so caches drop the entries.
    pub fn announce_config_change(&self, change: ConfigChange) {
        self.inner.announce_config(change);
    }

    /// A callback announcing configuration changes through this engine, for
    /// [`Admin::on_config_change`](crate::Admin::on_config_change). It holds the engine
    /// weakly: an administration handle kept alive elsewhere (a model resolver may hold one)
    /// does not keep the engine's tasks alive, and announcements after the engine is gone
    /// do nothing.
    pub fn config_announcer(&self) -> crate::ConfigAnnouncer {
        let engine = Arc::downgrade(&self.inner);
        Arc::new(move |change| {
            if let Some(inner) = engine.upgrade() {
                inner.announce_config(change);
            }
        })
    }

    /// Receives the configuration changes announced by any replica from now on. A
    /// receiver more than [`CONFIG_CHANGE_CAPACITY`] changes behind gets
    /// `RecvError::Lagged` and should drop everything it caches.
    pub fn config_changes(&self) -> tokio::sync::broadcast::Receiver<ConfigChange> {
        self.inner.config_changes.subscribe()
    }

    /// Stops taking work, stops every running turn and hands its chat back as `pending`
    /// (discarding the partial step, as a crash would), waiting up to
    /// [`EngineSettings::shutdown_timeout`]; then aborts what is left. An engine that opened
    /// its database ([`Engine::start`]) then closes it ([`Store::close`], which checkpoints
    /// SQLite's write-ahead log); one given a store or built beside an
    /// [`Admin`](crate::Admin) leaves that to its owner ([`Admin::close`](crate::Admin::close)).
    pub async fn shutdown(self) {
        let inner = &self.inner;
        inner.draining.cancel();
        inner.shutdown.cancel();
        let controls: Vec<_> = lock(&inner.active).values().cloned().collect();
        for control in &controls {
            control.stop(StopCause::Shutdown);
        }
        let deadline = tokio::time::Instant::now() + inner.settings.shutdown_timeout;
        while !lock(&inner.active).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Turns that did not finish in time: release their chats in one statement.
        match inner.store.release_all(inner.worker_id).await {
            Ok(released) => {
                for transition in released {
                    inner.end_turn(transition.chat_id);
                    inner.publish(transition).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "releasing chats at shutdown failed"),
        }
        // The other replicas hear of the handed-back chats (and claim them) before this
        // one goes.
        inner.flush_relay().await;
        // Subscribers of this process are told the server is going (their streams end
        // with `RecvError::Closed`), so they reconnect elsewhere.
        inner.hub.close_all();
        lock(&inner.tasks).abort_all();
        // Commands the workspaces still run belong to this process: they stop with it.
        if let Some(workspaces) = &inner.workspaces {
            workspaces.shutdown().await;
        }
        if inner.owns_store {
            inner.store.close().await;
        }
    }
}
