//! `chatd-server`: serve the chats API (`serve`, the default), or talk to a running
//! server (`chat "<prompt>"`).

mod chat_command;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chat_command::ChatArgs;
use chatd_core::workspace::{
    find_bwrap, LocalWorkspaceConfig, LocalWorkspaceProvider, Sandbox, WorkspaceProvider,
};
use chatd_core::{Keyring, SecretKey, SqliteSynchronous, StoreOptions};
use chatprovider::gateway::AddressPolicy;
use chatprovider::{Provider, ProviderApiKeys};
use clap::{Parser, Subcommand};
use codersdk::SecretString;
use server_example::serve;
use server_example::state::{self, AccessUrl, ServerOptions};

/// The reference chatd server: Coder's /api/experimental chats API.
#[derive(Debug, Parser)]
#[command(name = "chatd-server", version, after_help = environment_help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve(Box<ServeArgs>),
    /// Send a prompt to a running server (a new chat, or `--chat <id>` to continue one) and
    /// stream the reply to stdout.
    Chat(ChatArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CHATD_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The URL at which browsers reach this server, e.g. `https://chat.example.com`; MCP
    /// OAuth2 callback URLs are built from it. Default: `http://` and the listen address
    /// (loopback for 0.0.0.0 and ::). Set it behind a proxy or when users reach the server
    /// by another name (docs/mcp-auth.md).
    #[arg(long, env = "CHATD_ACCESS_URL", value_parser = parse_access_url)]
    access_url: Option<AccessUrl>,
    /// Database URL: a SQLite file (`sqlite://chatd.db`) or `postgres://…`.
    #[arg(long, env = "CHATD_DATABASE_URL", default_value = "sqlite://chatd.db")]
    database_url: String,
    /// PostgreSQL only: the schema to keep the tables in (it must exist); every replica of
    /// a deployment names the same one. Default: the connection's `search_path`.
    #[arg(long, env = "CHATD_DATABASE_SCHEMA", value_name = "SCHEMA")]
    database_schema: Option<String>,
    /// SQLite only: when a commit reaches the disk. `normal` syncs the write-ahead log at
    /// checkpoints: a process crash loses nothing committed, a power loss or OS crash may
    /// lose the last commits (the database stays consistent). `full` syncs every commit.
    #[arg(
        long,
        env = "CHATD_SQLITE_SYNCHRONOUS",
        value_enum,
        default_value = "normal"
    )]
    sqlite_synchronous: SynchronousArg,
    /// Keyring for stored secrets: `id=base64key[,id=base64key…]`, the first active.
    /// Generated and saved beside a SQLite database on first start when absent; required
    /// for PostgreSQL.
    #[arg(long, env = "CHATD_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
    /// Most open client connections; a new one beyond it closes the oldest idle one.
    #[arg(long, env = "CHATD_MAX_CONNECTIONS", default_value_t = serve::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Time a connection has to send a whole request head (seconds, or `500ms`, `2m`).
    #[arg(long, env = "CHATD_HEADER_READ_TIMEOUT", value_parser = parse_duration,
          default_value = "10s")]
    header_read_timeout: Duration,
    /// Time a connection may sit with no request in flight before it is closed.
    #[arg(long, env = "CHATD_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    idle_timeout: Duration,
    /// Time the whole body of a request may take to arrive (uploads: next flag).
    #[arg(long, env = "CHATD_REQUEST_BODY_TIMEOUT", value_parser = parse_duration,
          default_value = "30s")]
    request_body_timeout: Duration,
    /// Time the whole body of a file upload may take to arrive.
    #[arg(long, env = "CHATD_UPLOAD_BODY_TIMEOUT", value_parser = parse_duration,
          default_value = "300s")]
    upload_body_timeout: Duration,
    /// Most chat streams and watches one user may hold open at once.
    #[arg(long, env = "CHATD_MAX_WEBSOCKETS_PER_USER",
          default_value_t = server_example::sockets::DEFAULT_MAX_WEBSOCKETS_PER_USER)]
    max_websockets_per_user: usize,
    /// Give every chat a workspace: a directory under DIR (created when missing) where the
    /// model reads and writes files and runs commands. Off when unset (docs/workspaces.md).
    #[arg(long, env = "CHATD_WORKSPACES_DIR", value_name = "DIR")]
    workspaces_dir: Option<PathBuf>,
    /// Run workspace commands in a sandbox: `bwrap` (bubblewrap; only the workspace is
    /// writable) or `none`.
    #[arg(
        long,
        env = "CHATD_WORKSPACE_SANDBOX",
        value_enum,
        default_value = "none"
    )]
    workspace_sandbox: SandboxArg,
    /// Most root chats running at once across every replica on the database; more wait
    /// `pending` (docs/subagents.md).
    #[arg(long, env = "CHATD_MAX_RUNNING_CHATS",
          default_value_t = chatd_core::DEFAULT_MAX_RUNNING_ROOT_CHATS)]
    max_running_chats: usize,
    /// Most sub-agent chats running at once across every replica, counted apart from root
    /// chats so a flood of sub-agents cannot starve them.
    #[arg(long, env = "CHATD_MAX_RUNNING_SUBAGENTS",
          default_value_t = chatd_core::DEFAULT_MAX_RUNNING_SUBAGENTS)]
    max_running_subagents: usize,
    /// How often the engine looks for `pending` chats when no wake-up arrives (wake-ups
    /// from this and the other replicas are instant).
    #[arg(long, env = "CHATD_ACQUIRE_INTERVAL", value_parser = parse_duration, default_value = "1s")]
    acquire_interval: Duration,
    /// How often a replica refreshes the heartbeats of the chats it runs.
    #[arg(long, env = "CHATD_HEARTBEAT_INTERVAL", value_parser = parse_duration,
          default_value = "30s")]
    heartbeat_interval: Duration,
    /// A running chat whose heartbeat is older than this is handed back (the fallback when
    /// a replica is cut off without dying); must exceed the heartbeat interval.
    #[arg(long, env = "CHATD_STALE_AFTER", value_parser = parse_duration, default_value = "5m")]
    stale_after: Duration,
    /// How often stale recovery runs.
    #[arg(long, env = "CHATD_RECOVERY_INTERVAL", value_parser = parse_duration,
          default_value = "1m")]
    recovery_interval: Duration,
    /// PostgreSQL: how often a replica checks whether other replicas died (their
    /// liveness lock is free) and takes over their chats.
    #[arg(long, env = "CHATD_LIVENESS_INTERVAL", value_parser = parse_duration,
          default_value = "1s")]
    liveness_interval: Duration,
    /// On SIGTERM: how long running turns may finish before the rest is handed back to
    /// the other replicas (docs/replicas.md "Rolling restarts").
    #[arg(long, env = "CHATD_DRAIN_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    drain_timeout: Duration,
    /// Whether a root chat's completed turn gets a 2–5 word summary (shown in chat lists)
    /// from the title model: one more model call and a few statements after every turn.
    #[arg(long, env = "CHATD_TURN_SUMMARIES", default_value_t = true, action = clap::ArgAction::Set)]
    turn_summaries: bool,
    /// How long after a completed turn its summary is made; a chat that runs again by
    /// then gets none for that turn (`0s`: at once).
    #[arg(long, env = "CHATD_TURN_SUMMARY_DELAY", value_parser = parse_delay,
          default_value = "2s")]
    turn_summary_delay: Duration,
    /// Whether chat debug logging is forced on for every chat: each model call is recorded
    /// (secrets removed) and readable at `/chats/{chat}/debug/runs` (docs/debug-runs.md).
    #[arg(long, env = "CHATD_CHAT_DEBUG_LOGGING_FORCED", default_value_t = false,
          action = clap::ArgAction::Set)]
    chat_debug_logging_forced: bool,
    /// Whether AI Gateway callers may bring their own provider key (BYOK: the key in the
    /// provider's header, the chatd token in X-Coder-AI-Governance-Token); off answers
    /// such requests 403 (docs/ai-gateway.md).
    #[arg(long, env = "CHATD_AI_GATEWAY_ALLOW_BYOK", default_value_t = true,
          action = clap::ArgAction::Set)]
    ai_gateway_allow_byok: bool,
    /// Comma-separated CIDR ranges of private or reserved addresses (10.0.0.0/8, fd00::/8,
    /// 127.0.0.1/32, …) the AI Gateway may forward to; all others are refused at connect
    /// time (docs/ai-gateway.md "Upstream addresses").
    #[arg(long, env = "CHATD_AI_GATEWAY_ALLOWED_PRIVATE_CIDRS", value_parser = parse_cidrs,
          default_value = "")]
    ai_gateway_allowed_private_cidrs: AddressPolicy,
    /// Whether the AI Gateway stores and logs each call's last user prompt (bounded by
    /// `--ai-gateway-max-prompt-bytes`); off also silences `model_thought` log lines
    /// (docs/ai-gateway-records.md).
    #[arg(long, env = "CHATD_AI_GATEWAY_RECORD_PROMPTS", default_value_t = true,
          action = clap::ArgAction::Set)]
    ai_gateway_record_prompts: bool,
    /// Bytes of a user prompt the AI Gateway keeps (cut on a character boundary).
    #[arg(long, env = "CHATD_AI_GATEWAY_MAX_PROMPT_BYTES", value_parser = parse_prompt_bytes,
          default_value_t = chatd_core::aibridge::DEFAULT_MAX_PROMPT_BYTES)]
    ai_gateway_max_prompt_bytes: usize,
    /// AI Gateway records queued for the database before new ones are dropped (counted
    /// in `aibridge_records_dropped_total`); the proxy never waits for the database.
    #[arg(long, env = "CHATD_AI_GATEWAY_RECORD_QUEUE",
          value_parser = clap::value_parser!(u32).range(1..),
          default_value_t = chatd_core::aibridge::DEFAULT_RECORDER_QUEUE_CAPACITY as u32)]
    ai_gateway_record_queue: u32,
    /// Days the AI Gateway's interception records (calls, their tool usages and sessions)
    /// are kept, by each call's start, before the retention job purges them; `0` keeps them
    /// forever. 31 to 3650 otherwise: a shorter window would purge calls that still count
    /// toward a monthly usage limit (docs/ai-gateway-records.md "Retention").
    #[arg(long, env = "CHATD_AI_GATEWAY_RETENTION", value_name = "DAYS",
          value_parser = parse_ai_gateway_retention,
          default_value_t = chatd_core::DEFAULT_AI_GATEWAY_RETENTION_DAYS)]
    ai_gateway_retention: u32,
}

/// Parses `--ai-gateway-retention`: whole days (a trailing `d` is accepted: `60d`), 0 or
/// within `chatd_core::validate_ai_gateway_retention_days`'s bounds.
fn parse_ai_gateway_retention(value: &str) -> Result<u32, String> {
    let trimmed = value.trim();
    let digits = trimmed.strip_suffix('d').unwrap_or(trimmed);
    let days = digits.parse::<u32>().map_err(|_| {
        format!(
            "expected a number of days (0 keeps the records forever, else {} to {})",
            chatd_core::MIN_AI_GATEWAY_RETENTION_DAYS,
            chatd_core::MAX_AI_GATEWAY_RETENTION_DAYS
        )
    })?;
    chatd_core::validate_ai_gateway_retention_days(days)
}

/// Parses `--ai-gateway-max-prompt-bytes`: at most what the gateway takes from a request
/// (`chatprovider::gateway::MAX_PROMPT_BYTES`), so the setting always means what it says.
fn parse_prompt_bytes(value: &str) -> Result<usize, String> {
    let max = chatprovider::gateway::MAX_PROMPT_BYTES;
    match value.trim().parse::<usize>() {
        Ok(bytes) if bytes <= max => Ok(bytes),
        _ => Err(format!("expected a number of bytes from 0 to {max}")),
    }
}

/// Parses `--ai-gateway-allowed-private-cidrs`.
fn parse_cidrs(value: &str) -> Result<AddressPolicy, String> {
    AddressPolicy::parse_allow_list(value).map_err(|e| e.to_string())
}

/// The values of `--workspace-sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SandboxArg {
    /// Commands run as the server's user, unconfined.
    None,
    /// Commands run inside bubblewrap.
    Bwrap,
}

/// The values of `--sqlite-synchronous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SynchronousArg {
    /// `PRAGMA synchronous = NORMAL`: the log is synced at checkpoints.
    Normal,
    /// `PRAGMA synchronous = FULL`: every commit is synced.
    Full,
}

impl From<SynchronousArg> for SqliteSynchronous {
    fn from(arg: SynchronousArg) -> Self {
        match arg {
            SynchronousArg::Normal => SqliteSynchronous::Normal,
            SynchronousArg::Full => SqliteSynchronous::Full,
        }
    }
}

/// The workspace provider the flags ask for; `find_bwrap` locates bubblewrap (a parameter
/// so tests can pretend it is missing).
fn workspace_provider(
    args: &ServeArgs,
    find_bwrap: impl FnOnce() -> Option<PathBuf>,
) -> Result<Option<Arc<dyn WorkspaceProvider>>, BoxError> {
    let Some(dir) = &args.workspaces_dir else {
        if args.workspace_sandbox != SandboxArg::None {
            return Err(
                "--workspace-sandbox needs --workspaces-dir (CHATD_WORKSPACES_DIR): \
                        without workspaces there are no commands to sandbox"
                    .into(),
            );
        }
        return Ok(None);
    };
    let sandbox = match args.workspace_sandbox {
        SandboxArg::None => Sandbox::None,
        SandboxArg::Bwrap => Sandbox::Bubblewrap {
            program: find_bwrap().ok_or(
                "--workspace-sandbox bwrap: bubblewrap (`bwrap`) is not installed; install the \
                 `bubblewrap` package (e.g. `apt-get install bubblewrap`) or start without \
                 the sandbox",
            )?,
        },
    };
    let provider =
        LocalWorkspaceProvider::new(LocalWorkspaceConfig::new(dir).with_sandbox(sandbox))
            .map_err(|e| format!("--workspaces-dir: {e}"))?;
    Ok(Some(Arc::new(provider)))
}

impl ServeArgs {
    /// The database settings of the flags.
    fn store_options(&self) -> StoreOptions {
        let mut database = StoreOptions::new(&self.database_url);
        database.schema = self.database_schema.clone();
        database.sqlite_synchronous = self.sqlite_synchronous.into();
        database
    }

    /// The connection settings of the flags; everything else keeps its default.
    fn serve_settings(&self) -> serve::ServeSettings {
        let mut settings = serve::ServeSettings::default();
        settings.max_connections = self.max_connections;
        settings.header_read_timeout = self.header_read_timeout;
        settings.idle_timeout = self.idle_timeout;
        settings.request_body_timeout = self.request_body_timeout;
        settings.upload_body_timeout = self.upload_body_timeout;
        settings
    }
}

/// `--access-url`: checked and normalized ([`AccessUrl::parse`]).
fn parse_access_url(value: &str) -> Result<AccessUrl, String> {
    AccessUrl::parse(value)
}

/// A duration flag: whole seconds (`10`) or a number with a unit (`500ms`, `10s`, `2m`,
/// `1h`); zero allowed.
fn parse_delay(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{value}` is not a duration (e.g. 10, 10s, 500ms, 2m)"))?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => return Err(format!("`{value}`: the unit must be ms, s, m or h")),
    };
    Ok(duration)
}

/// [`parse_delay`] for settings that must be positive (intervals, timeouts).
fn parse_duration(value: &str) -> Result<Duration, String> {
    let duration = parse_delay(value)?;
    if duration.is_zero() {
        return Err("must be positive".to_owned());
    }
    Ok(duration)
}

/// jemalloc with background purging returns the memory a burst of connections took to the
/// system within seconds of its end; glibc's allocator kept it in per-thread arenas
/// (docs/hardening.md "Measured").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Administrator token variable: see [`ENVIRONMENT`].
const ADMIN_TOKEN_VAR: &str = "CHATD_ADMIN_TOKEN";

/// Log filter variable.
const LOG_VAR: &str = "CHATD_LOG";

/// The informal standard for turning colours off (<https://no-color.org>).
const NO_COLOR_VAR: &str = "NO_COLOR";

/// The provider keys and base URLs read from the environment: provider, key, base URL.
const PROVIDER_VARS: [(Provider, &str, &str); 2] = [
    (Provider::OpenAi, "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    (
        Provider::Anthropic,
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
    ),
];

/// Every environment variable the binary reads, with what it sets; `--help` lists them
/// (the flags' own `[env: …]` notes name only the flags' variables).
const ENVIRONMENT: &[(&str, &str)] = &[
    ("CHATD_LISTEN", "address to listen on (--listen)"),
    (
        "CHATD_ACCESS_URL",
        "URL at which browsers reach the server; MCP OAuth2 callbacks (--access-url)",
    ),
    ("CHATD_DATABASE_URL", "database URL (--database-url)"),
    (
        "CHATD_SQLITE_SYNCHRONOUS",
        "`normal` or `full`: when SQLite commits reach the disk (--sqlite-synchronous)",
    ),
    (
        "CHATD_ENCRYPTION_KEY",
        "keyring for stored secrets (--encryption-key)",
    ),
    (
        ADMIN_TOKEN_VAR,
        "API token of the `admin` user, created or added at start-up (also how to recover a \
         lost admin token)",
    ),
    (
        LOG_VAR,
        "log filter, e.g. `debug` or `chatd_core=debug` (default `info`; `warn` for chat)",
    ),
    (
        NO_COLOR_VAR,
        "set to anything to keep colour codes out of the logs",
    ),
    (
        "OPENAI_API_KEY",
        "OpenAI key for every user (ends the demo model)",
    ),
    (
        "OPENAI_BASE_URL",
        "OpenAI-compatible endpoint instead of api.openai.com",
    ),
    (
        "ANTHROPIC_API_KEY",
        "Anthropic key for every user (ends the demo model)",
    ),
    (
        "ANTHROPIC_BASE_URL",
        "Anthropic endpoint instead of api.anthropic.com",
    ),
    (
        "CHATD_MAX_CONNECTIONS",
        "most open client connections (--max-connections)",
    ),
    (
        "CHATD_HEADER_READ_TIMEOUT",
        "time to send a request head (--header-read-timeout)",
    ),
    (
        "CHATD_IDLE_TIMEOUT",
        "idle connection lifetime (--idle-timeout)",
    ),
    (
        "CHATD_REQUEST_BODY_TIMEOUT",
        "time to send a request body (--request-body-timeout)",
    ),
    (
        "CHATD_UPLOAD_BODY_TIMEOUT",
        "time to send an upload body (--upload-body-timeout)",
    ),
    (
        "CHATD_MAX_WEBSOCKETS_PER_USER",
        "most streams and watches per user (--max-websockets-per-user)",
    ),
    (
        "CHATD_WORKSPACES_DIR",
        "directory of the chats' workspaces; off when unset (--workspaces-dir)",
    ),
    (
        "CHATD_WORKSPACE_SANDBOX",
        "`bwrap` or `none`: how workspace commands are confined (--workspace-sandbox)",
    ),
    (
        "CHATD_MAX_RUNNING_CHATS",
        "most root chats running at once across replicas (--max-running-chats)",
    ),
    (
        "CHATD_MAX_RUNNING_SUBAGENTS",
        "most sub-agent chats running at once across replicas (--max-running-subagents)",
    ),
    (
        "CHATD_DATABASE_SCHEMA",
        "PostgreSQL schema of the tables (--database-schema)",
    ),
    (
        "CHATD_ACQUIRE_INTERVAL",
        "how often to look for pending chats (--acquire-interval)",
    ),
    (
        "CHATD_HEARTBEAT_INTERVAL",
        "how often running chats' heartbeats are refreshed (--heartbeat-interval)",
    ),
    (
        "CHATD_STALE_AFTER",
        "heartbeat age after which a running chat is handed back (--stale-after)",
    ),
    (
        "CHATD_RECOVERY_INTERVAL",
        "how often stale recovery runs (--recovery-interval)",
    ),
    (
        "CHATD_LIVENESS_INTERVAL",
        "how often dead replicas are looked for, PostgreSQL (--liveness-interval)",
    ),
    (
        "CHATD_DRAIN_TIMEOUT",
        "on SIGTERM, how long running turns may finish (--drain-timeout)",
    ),
    (
        "CHATD_TURN_SUMMARIES",
        "true|false: a 2-5 word summary after each turn (--turn-summaries)",
    ),
    (
        "CHATD_TURN_SUMMARY_DELAY",
        "how long after a turn its summary is made (--turn-summary-delay)",
    ),
    (
        "CHATD_CHAT_DEBUG_LOGGING_FORCED",
        "true|false: record every chat's model calls (--chat-debug-logging-forced)",
    ),
    (
        "CHATD_AI_GATEWAY_ALLOW_BYOK",
        "true|false: AI Gateway callers may bring their own key (--ai-gateway-allow-byok)",
    ),
    (
        "CHATD_AI_GATEWAY_ALLOWED_PRIVATE_CIDRS",
        "private ranges the AI Gateway may forward to (--ai-gateway-allowed-private-cidrs)",
    ),
    (
        "CHATD_AIBRIDGE_PROVIDER_<N>_{TYPE,NAME,KEY,BASE_URL,REGION,MODEL,SMALL_FAST_MODEL}",
        "an AI Gateway provider instance: openai|anthropic|bedrock, its name, key, base URL \
         and (bedrock) AWS region and model mapping",
    ),
    (
        "CHATD_AI_GATEWAY_RECORD_PROMPTS",
        "true|false: store and log AI Gateway user prompts (--ai-gateway-record-prompts)",
    ),
    (
        "CHATD_AI_GATEWAY_MAX_PROMPT_BYTES",
        "bytes of an AI Gateway prompt kept (--ai-gateway-max-prompt-bytes)",
    ),
    (
        "CHATD_AI_GATEWAY_RECORD_QUEUE",
        "AI Gateway records queued before drops (--ai-gateway-record-queue)",
    ),
    (
        "CHATD_AI_GATEWAY_RETENTION",
        "days AI Gateway records are kept, 0 forever (--ai-gateway-retention)",
    ),
    ("CHATD_URL", "server URL of `chat` (--url)"),
    ("CHATD_TOKEN", "API token of `chat` (--token)"),
];

/// The `Environment:` section of `--help`.
fn environment_help() -> String {
    let width = ENVIRONMENT
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let mut help = String::from("Environment:\n");
    for (name, what) in ENVIRONMENT {
        help.push_str(&format!("  {name:width$}  {what}\n"));
    }
    help.push_str("\nLogs go to stderr, without colour codes unless stderr is a terminal.");
    help
}

/// File name suffix of the generated keyring beside a SQLite database.
const KEY_FILE_SUFFIX: &str = ".key";

/// Id of a generated key.
const GENERATED_KEY_ID: &str = "k1";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr: stdout is the program's output (the admin token on a first start,
    // the reply of `chat`). `chat` logs warnings only by default.
    let default_filter = match &cli.command {
        Some(Command::Chat(_)) => "warn",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env(LOG_VAR)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(log_colours(
            std::io::stderr().is_terminal(),
            std::env::var_os(NO_COLOR_VAR).as_deref(),
        ))
        .init();
    let result = match cli.command {
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Chat(args)) => chat_command::run(args).await,
        None => serve(cli.serve).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatd-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error of the commands: printed once, then the process exits non-zero.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether log lines carry ANSI colour codes: only on a terminal, and not when `NO_COLOR`
/// is set to something (a log file or pipe would otherwise fill with escape codes).
fn log_colours(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    // Checked first: a missing sandbox must stop the start before anything is created.
    let workspaces = workspace_provider(&args, find_bwrap)?;
    let keyring = Arc::new(keyring(&args)?);
    // Bound before the state is built: the default access URL names the bound port (which
    // `--listen` may leave to the system with `:0`).
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // The bound address, which says the port when `--listen` asked for any (`:0`).
    let listen = listener.local_addr()?;
    let access_url = args
        .access_url
        .clone()
        .unwrap_or_else(|| AccessUrl::from_listen(listen));
    let database = args.store_options();
    let mut options = ServerOptions::new(database, keyring);
    options.access_url = Some(access_url.clone());
    options.workspaces = workspaces;
    options.engine.max_running_root_chats = args.max_running_chats;
    options.engine.max_running_subagents = args.max_running_subagents;
    options.engine.acquire_interval = args.acquire_interval;
    options.engine.heartbeat_interval = args.heartbeat_interval;
    options.engine.stale_after = args.stale_after;
    options.engine.recovery_interval = args.recovery_interval;
    options.engine.liveness_interval = args.liveness_interval;
    options.turn_summaries = args.turn_summaries;
    options.debug_logging_forced = args.chat_debug_logging_forced;
    options.ai_gateway_records = chatd_core::aibridge::RecorderSettings::default()
        .with_record_prompts(args.ai_gateway_record_prompts)
        .with_max_prompt_bytes(args.ai_gateway_max_prompt_bytes)
        .with_queue_capacity(usize::try_from(args.ai_gateway_record_queue).unwrap_or(usize::MAX));
    options.engine.turn_summary_delay = args.turn_summary_delay;
    // The engine's retention job purges the gateway's records (docs/ai-gateway-records.md
    // "Retention"), so the setting is the engine's.
    options.engine.ai_gateway_retention_days = args.ai_gateway_retention;
    options.deployment_keys = deployment_keys_from_env()?;
    options.ai_gateway.allow_byok = args.ai_gateway_allow_byok;
    options.ai_gateway.allowed_private = args.ai_gateway_allowed_private_cidrs.clone();
    // Variables that are not UTF-8 cannot be instance settings; `vars()` would panic.
    options.ai_gateway.instances = chatd_core::aibridge::instances_from_env(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    )?;
    options.admin_token = std::env::var(ADMIN_TOKEN_VAR)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let started = state::build(options).await?;
    if let Some(token) = &started.generated_admin_token {
        // Printed once, to the terminal of whoever started the server; never logged.
        println!(
            "Admin API token (shown once, store it now): {}",
            token.expose()
        );
        println!(
            "To chat: export CHATD_TOKEN=<that token>, then run `chatd-server chat \"What \
             time is it?\"` (from the repository: `cargo run -p server-example -- chat …`). \
             Lost the token? Restart with CHATD_ADMIN_TOKEN=<a new token>."
        );
    }
    if started.admin_token_refused {
        // A revoked token stays revoked when it is stored again at start-up.
        tracing::warn!(
            "{ADMIN_TOKEN_VAR} does not authenticate: it was revoked or belongs to another \
             user. Set a new value to get an administrator token."
        );
    }
    let state = started.state;
    state.sockets().set_limit(args.max_websockets_per_user);
    let settings = args.serve_settings();
    settings.validate()?;
    let app = server_example::router(state.clone());
    tracing::info!(%listen, %access_url, "chatd-server listening");
    // SIGTERM first drains (healthz 503, no new claims, running turns finish up to the
    // drain timeout) while HTTP keeps serving; then HTTP stops and the engine hands the
    // rest back to the other replicas and closes the streams with "reconnect".
    let draining = state.clone();
    let drain_timeout = args.drain_timeout;
    let stop = async move {
        shutdown_signal().await;
        draining.drain(drain_timeout).await;
    };
    serve::serve(listener, app, settings, stop).await?;
    state.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}

/// The keyring from `--encryption-key`, else the key file beside a SQLite database
/// (created on first start).
fn keyring(args: &ServeArgs) -> Result<Keyring, BoxError> {
    if let Some(spec) = &args.encryption_key {
        return Ok(Keyring::from_config(spec)?);
    }
    let Some(db_path) = sqlite_path(&args.database_url) else {
        return Err(
            "an encryption key is required for PostgreSQL: set --encryption-key or \
                    CHATD_ENCRYPTION_KEY (id=base64key; generate a key with `openssl rand \
                    -base64 32`)"
                .into(),
        );
    };
    let key_path = PathBuf::from(format!("{}{KEY_FILE_SUFFIX}", db_path.display()));
    if key_path.exists() {
        let spec = std::fs::read_to_string(&key_path)?;
        return Ok(Keyring::from_config(spec.trim())?);
    }
    let key = SecretKey::generate()?;
    let spec = format!("{GENERATED_KEY_ID}={}", key.to_base64().as_str());
    write_private(&key_path, &spec)?;
    tracing::info!(path = %key_path.display(), "generated the encryption key for stored secrets");
    Ok(Keyring::new(GENERATED_KEY_ID, key)?)
}

/// The file of a `sqlite:` URL (`sqlite://chatd.db`, `sqlite:chatd.db`, with or without
/// query parameters); `None` for other databases or in-memory SQLite.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Writes a new file readable and writable by its owner only
/// ([`chatd_core::PRIVATE_FILE_MODE`]), whatever the umask: the mode is set again
/// explicitly before anything is written, since the umask only ever narrows the one given
/// at creation.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(chatd_core::PRIVATE_FILE_MODE);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(
            chatd_core::PRIVATE_FILE_MODE,
        ))?;
    }
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

/// `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` (and their `*_BASE_URL`) as env-preset providers.
fn deployment_keys_from_env() -> Result<ProviderApiKeys, BoxError> {
    let mut keys = ProviderApiKeys::new();
    for (provider, key_var, url_var) in PROVIDER_VARS {
        if let Some(key) = std::env::var(key_var).ok().filter(|k| !k.trim().is_empty()) {
            keys.set_api_key(provider, SecretString::from(key.trim().to_owned()))?;
        }
        if let Some(url) = std::env::var(url_var).ok().filter(|u| !u.trim().is_empty()) {
            keys.set_base_url(provider, url.trim())?;
        }
    }
    Ok(keys)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_bound_may_reach_what_the_gateway_takes_and_no_further() {
        let max = chatprovider::gateway::MAX_PROMPT_BYTES;
        let at = Cli::try_parse_from([
            "chatd-server",
            "--ai-gateway-max-prompt-bytes",
            &max.to_string(),
        ])
        .unwrap();
        assert_eq!(at.serve.ai_gateway_max_prompt_bytes, max);
        let zero =
            Cli::try_parse_from(["chatd-server", "--ai-gateway-max-prompt-bytes", "0"]).unwrap();
        assert_eq!(zero.serve.ai_gateway_max_prompt_bytes, 0);
        assert!(Cli::try_parse_from([
            "chatd-server",
            "--ai-gateway-max-prompt-bytes",
            &(max + 1).to_string()
        ])
        .is_err());
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://chatd.db"),
            Some(PathBuf::from("chatd.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:/tmp/a.db?mode=rwc"),
            Some(PathBuf::from("/tmp/a.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }

    #[test]
    fn connection_flags_default_to_the_serve_settings_defaults() {
        let cli = Cli::try_parse_from(["chatd-server"]).unwrap();
        assert_eq!(cli.serve.serve_settings(), serve::ServeSettings::default());
        assert_eq!(
            cli.serve.max_websockets_per_user,
            server_example::sockets::DEFAULT_MAX_WEBSOCKETS_PER_USER
        );
        let cli = Cli::try_parse_from([
            "chatd-server",
            "--max-connections",
            "10",
            "--header-read-timeout",
            "500ms",
            "--idle-timeout",
            "2m",
        ])
        .unwrap();
        let settings = cli.serve.serve_settings();
        assert_eq!(settings.max_connections, 10);
        assert_eq!(settings.header_read_timeout, Duration::from_millis(500));
        assert_eq!(settings.idle_timeout, Duration::from_secs(120));
    }

    #[test]
    fn sqlite_synchronous_defaults_to_normal_and_takes_full() {
        let cli = Cli::try_parse_from(["chatd-server"]).unwrap();
        assert_eq!(
            cli.serve.store_options().sqlite_synchronous,
            SqliteSynchronous::Normal
        );
        let cli = Cli::try_parse_from(["chatd-server", "--sqlite-synchronous", "full"]).unwrap();
        assert_eq!(
            cli.serve.store_options().sqlite_synchronous,
            SqliteSynchronous::Full
        );
        assert!(Cli::try_parse_from(["chatd-server", "--sqlite-synchronous", "off"]).is_err());
    }

    #[test]
    fn durations_take_seconds_or_a_unit_and_refuse_zero_and_junk() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1ms"), Ok(Duration::from_millis(1)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        // A delay may be zero; an interval may not.
        assert_eq!(parse_delay("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("0s").is_err());
        for bad in [
            "0",
            "0ms",
            "",
            "s",
            "-1",
            "1.5s",
            "10 parsecs",
            "99999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn help_lists_every_environment_variable() {
        use clap::CommandFactory;
        let help = Cli::command().render_help().to_string();
        for (name, _) in ENVIRONMENT {
            assert!(
                help.contains(&format!("  {name} ")),
                "{name} missing from\n{help}"
            );
        }
        // Every variable the sources of the binary name is listed: flags' `env = "…"`,
        // the constants read with `std::env::var`, the provider table.
        let sources = [include_str!("main.rs"), include_str!("chat_command.rs")];
        let mut named = Vec::new();
        for source in sources {
            for (i, _) in source.match_indices('"') {
                let rest = source.get(i + 1..).unwrap_or_default();
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                let closed = rest.get(word.len()..).is_some_and(|r| r.starts_with('"'));
                // A whole name (not the prefixes and suffixes this test itself spells).
                let whole =
                    word.starts_with(|c: char| c.is_ascii_uppercase()) && !word.ends_with('_');
                let env_like = word.starts_with("CHATD_")
                    || word.ends_with("_API_KEY")
                    || word.ends_with("_BASE_URL")
                    || word == NO_COLOR_VAR;
                if closed && whole && env_like {
                    named.push(word);
                }
            }
        }
        assert!(named.len() >= ENVIRONMENT.len(), "{named:?}");
        for name in named {
            assert!(
                ENVIRONMENT.iter().any(|(listed, _)| *listed == name),
                "{name} is read but not listed in ENVIRONMENT"
            );
        }
        for (_, key, url) in PROVIDER_VARS {
            assert!(ENVIRONMENT.iter().any(|(listed, _)| *listed == key));
            assert!(ENVIRONMENT.iter().any(|(listed, _)| *listed == url));
        }
    }

    #[test]
    fn ai_gateway_record_flags() {
        let defaults = Cli::try_parse_from(["chatd-server"]).unwrap().serve;
        assert!(defaults.ai_gateway_record_prompts);
        assert_eq!(
            defaults.ai_gateway_max_prompt_bytes,
            chatd_core::aibridge::DEFAULT_MAX_PROMPT_BYTES
        );
        let off = Cli::try_parse_from([
            "chatd-server",
            "--ai-gateway-record-prompts",
            "false",
            "--ai-gateway-record-queue",
            "1",
        ])
        .unwrap()
        .serve;
        assert!(!off.ai_gateway_record_prompts);
        assert_eq!(off.ai_gateway_record_queue, 1);
        // A queue holds at least one record.
        assert!(Cli::try_parse_from(["chatd-server", "--ai-gateway-record-queue", "0"]).is_err());
    }

    #[test]
    fn ai_gateway_retention_flag() {
        let days = |args: &[&str]| {
            let mut argv = vec!["chatd-server"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).map(|c| c.serve.ai_gateway_retention)
        };
        assert_eq!(
            days(&[]).unwrap(),
            chatd_core::DEFAULT_AI_GATEWAY_RETENTION_DAYS
        );
        assert_eq!(days(&["--ai-gateway-retention", "0"]).unwrap(), 0);
        assert_eq!(days(&["--ai-gateway-retention", "31"]).unwrap(), 31);
        assert_eq!(days(&["--ai-gateway-retention", "90d"]).unwrap(), 90);
        assert_eq!(days(&["--ai-gateway-retention", "3650"]).unwrap(), 3650);
        for bad in ["30", "3651", "-1", "1.5", "60h", ""] {
            assert!(days(&["--ai-gateway-retention", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn workspace_flags() {
        let none = Cli::try_parse_from(["chatd-server"]).unwrap();
        assert!(workspace_provider(&none.serve, || None).unwrap().is_none());
        let dir = std::env::temp_dir().join(format!("chatd-main-test-{}", std::process::id()));
        let dir_text = dir.to_str().unwrap();
        let plain = Cli::try_parse_from(["chatd-server", "--workspaces-dir", dir_text]).unwrap();
        assert!(workspace_provider(&plain.serve, || None).unwrap().is_some());
        let sandboxed = Cli::try_parse_from([
            "chatd-server",
            "--workspaces-dir",
            dir_text,
            "--workspace-sandbox",
            "bwrap",
        ])
        .unwrap();
        // bubblewrap missing: a clear refusal at start.
        let err = workspace_provider(&sandboxed.serve, || None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("bubblewrap"), "{err}");
        assert!(err.contains("not installed"), "{err}");
        if let Some(bwrap) = find_bwrap() {
            assert!(workspace_provider(&sandboxed.serve, || Some(bwrap))
                .unwrap()
                .is_some());
        }
        // A sandbox without workspaces makes no sense.
        let alone = Cli::try_parse_from(["chatd-server", "--workspace-sandbox", "bwrap"]).unwrap();
        assert!(workspace_provider(&alone.serve, || None).is_err());
        assert!(Cli::try_parse_from(["chatd-server", "--workspace-sandbox", "docker"]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn access_url_flag() {
        let cli =
            Cli::try_parse_from(["chatd-server", "--access-url", "https://chat.example.com/"])
                .unwrap();
        assert_eq!(
            cli.serve.access_url.unwrap().as_str(),
            "https://chat.example.com"
        );
        for bad in [
            "ftp://chat.example.com",
            "https://chat.example.com/?a=1",
            "chat",
        ] {
            assert!(
                Cli::try_parse_from(["chatd-server", "--access-url", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(log_colours(true, None));
        assert!(log_colours(true, Some(OsStr::new(""))));
        assert!(!log_colours(true, Some(OsStr::new("1"))));
        assert!(!log_colours(false, None));
    }

    #[test]
    fn chat_arguments() {
        let cli =
            Cli::try_parse_from(["chatd-server", "chat", "--token", "t", "what", "time"]).unwrap();
        match cli.command {
            Some(Command::Chat(args)) => {
                assert_eq!(args.url, "http://127.0.0.1:3000");
                assert_eq!(args.prompt.join(" "), "what time");
                assert_eq!(args.chat, None);
            }
            other => panic!("{other:?}"),
        }
        // A prompt is required.
        assert!(Cli::try_parse_from(["chatd-server", "chat", "--token", "t"]).is_err());
    }
}
