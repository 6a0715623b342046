//! Turn-path benchmark: the same zero-delay mock model, the same client and the same
//! workloads against (a) the mock directly, (b) `chatd-server` on SQLite and on PostgreSQL,
//! and optionally (c) the LiteLLM proxy and (d) `chatd-server`'s AI Gateway (plain
//! Chat Completions calls forwarded to the mock, records kept on SQLite), each system a
//! process of its own, in interleaved rounds. A manual tool (never run by CI); how to run
//! it and the numbers are in docs/turn-path-benchmark.md and (the gateway against LiteLLM)
//! docs/ai-gateway-benchmark.md.
//!
//! ```text
//! cargo bench -p server-example --bench turn_path -- [--rounds R]
//!     [--workloads 1x200,100x10] [--systems direct,sqlite,postgres[,litellm][,gateway]]
//!     [--database-url postgres://postgres@127.0.0.1:5432/test] [--chunks K]
//!     [--litellm /tmp/litellm/bin/litellm] [--json FILE]
//! ```
//!
//! The mock is this binary run as `turn_path mock`: it answers every
//! `POST /v1/chat/completions` at once with a streamed reply of K text chunks and the
//! usage in the last chunk. The client is this process: it measures, per turn, the time
//! from the request to the first output (the first content delta; for chatd the first
//! assistant `message_part` on the chat's stream) and to the end of the turn (`[DONE]`; for
//! chatd the chat's `waiting` status), and reads every process's CPU time from
//! `/proc/<pid>/stat` before and after each measured round.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chatd_core::SecretKey;
use chatd_test_support::db::TestDatabase;
use codersdk::client::{ChatEventStream, Client, CreateUserRequest};
use codersdk::{
    ChatInputPart, ChatMessageRole, ChatModelCallConfig, ChatModelOpenAIConfig, ChatStatus,
    ChatStreamEventType, CreateChatMessageRequest, CreateChatModelConfigRequest,
    CreateChatProviderConfigRequest, CreateChatRequest,
};
use futures_util::StreamExt;
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

/// How long one turn may take before the run is declared broken.
const TURN_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest wait for a started process (mock, server, LiteLLM) to listen.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How often a start-up wait looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Log lines kept per started process, for error messages.
const LOG_LINES: usize = 200;

/// The admin token the servers are started with (a throw-away server each run).
const ADMIN_TOKEN: &str = "chatd_turn_path_bench_admin";

/// The OpenAI key chatd and LiteLLM send to the mock (the mock ignores it).
const MOCK_API_KEY: &str = "sk-turn-path-bench";

/// The model name chatd is configured with (one the OpenAI provider knows).
const MOCK_MODEL: &str = "gpt-4o";

/// LiteLLM's master key: the proxy refuses to start without one, and the client sends it.
const LITELLM_MASTER_KEY: &str = "sk-turn-path-bench-master-0123456789abcdef";

/// The model name LiteLLM exposes for the mock.
const LITELLM_MODEL: &str = "bench-mock";

/// The prompt of every turn.
const PROMPT: &str = "hello";

/// The default PostgreSQL database (a fresh schema in it per run, dropped afterwards).
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Prompt tokens the mock reports in its usage chunk.
const MOCK_PROMPT_TOKENS: usize = 10;

// ---------------------------------------------------------------------------------------
// Arguments

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum System {
    Direct,
    Sqlite,
    Postgres,
    Litellm,
    /// `chatd-server`'s AI Gateway (SQLite, records kept) forwarding to the mock.
    Gateway,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Direct => "direct (mock)",
            System::Sqlite => "chatd SQLite",
            System::Postgres => "chatd PostgreSQL",
            System::Litellm => "LiteLLM proxy",
            System::Gateway => "chatd AI Gateway",
        }
    }

    fn key(self) -> &'static str {
        match self {
            System::Direct => "direct",
            System::Sqlite => "sqlite",
            System::Postgres => "postgres",
            System::Litellm => "litellm",
            System::Gateway => "gateway",
        }
    }

    fn parse(s: &str) -> Result<System> {
        Ok(match s {
            "direct" => System::Direct,
            "sqlite" => System::Sqlite,
            "postgres" => System::Postgres,
            "litellm" => System::Litellm,
            "gateway" => System::Gateway,
            other => {
                return Err(format!(
                    "unknown system {other:?} (direct, sqlite, postgres, litellm, gateway)"
                )
                .into())
            }
        })
    }
}

/// `C x N`: C concurrent chats, N turns each.
#[derive(Debug, Clone, Copy)]
struct Workload {
    chats: usize,
    turns: usize,
}

impl Workload {
    fn label(self) -> String {
        format!("{} x {}", self.chats, self.turns)
    }
}

#[derive(Debug)]
struct Args {
    rounds: usize,
    workloads: Vec<Workload>,
    systems: Vec<System>,
    database_url: String,
    chunks: usize,
    litellm: Option<PathBuf>,
    json: Option<PathBuf>,
    server_bin: PathBuf,
    server_args: Vec<String>,
}

const USAGE: &str = "\
usage: cargo bench -p server-example --bench turn_path -- [options]
  --rounds R              measured rounds per workload, systems interleaved (default 5)
  --workloads CxN[,CxN]   C concurrent chats, N turns each (default 1x200,100x10)
  --systems LIST          direct,sqlite,postgres[,litellm][,gateway] (default:
                          direct,sqlite,postgres, plus litellm when --litellm is given);
                          gateway = OpenAI calls through chatd's AI Gateway (SQLite)
  --database-url URL      PostgreSQL database for a fresh schema (default
                          postgres://postgres@127.0.0.1:5432/test)
  --chunks K              text chunks per mock reply (default 5)
  --litellm PATH          the `litellm` executable of a throw-away venv
  --json FILE             also write every sample summary as JSON
  --server-bin PATH       chatd-server binary (default: the one cargo built with the bench)
  --server-arg ARG        one more `chatd-server serve` argument (repeatable)";

fn parse_workloads(s: &str) -> Result<Vec<Workload>> {
    s.split(',')
        .map(|w| {
            let (c, n) = w
                .split_once(['x', 'X'])
                .ok_or_else(|| format!("workload {w:?} is not CxN"))?;
            let chats: usize = c.trim().parse().map_err(|_| format!("bad C in {w:?}"))?;
            let turns: usize = n.trim().parse().map_err(|_| format!("bad N in {w:?}"))?;
            if chats == 0 || turns == 0 {
                return Err(format!("workload {w:?}: C and N must be positive").into());
            }
            Ok(Workload { chats, turns })
        })
        .collect()
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let mut rounds = 5;
    let mut workloads = parse_workloads("1x200,100x10")?;
    let mut systems = None;
    let mut database_url = DEFAULT_DATABASE_URL.to_owned();
    let mut chunks = 5;
    let mut litellm = None;
    let mut json = None;
    let mut server_bin = PathBuf::from(env!("CARGO_BIN_EXE_chatd-server"));
    let mut server_args = Vec::new();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => rounds = value()?.parse().map_err(|_| "--rounds R")?,
            "--workloads" => workloads = parse_workloads(&value()?)?,
            "--systems" => {
                systems = Some(
                    value()?
                        .split(',')
                        .map(System::parse)
                        .collect::<Result<Vec<_>>>()?,
                )
            }
            "--database-url" => database_url = value()?,
            "--chunks" => chunks = value()?.parse().map_err(|_| "--chunks K")?,
            "--litellm" => litellm = Some(PathBuf::from(value()?)),
            "--json" => json = Some(PathBuf::from(value()?)),
            "--server-bin" => server_bin = PathBuf::from(value()?),
            "--server-arg" => server_args.push(value()?),
            // `cargo bench` passes `--bench` to harness-less benches.
            "--bench" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    let systems = systems.unwrap_or_else(|| {
        let mut s = vec![System::Direct, System::Sqlite, System::Postgres];
        if litellm.is_some() {
            s.push(System::Litellm);
        }
        s
    });
    if systems.contains(&System::Litellm) && litellm.is_none() {
        return Err("the litellm system needs --litellm PATH (docs/turn-path-benchmark.md)".into());
    }
    if rounds == 0 || chunks == 0 {
        return Err("--rounds and --chunks must be positive".into());
    }
    Ok(Args {
        rounds,
        workloads,
        systems,
        database_url,
        chunks,
        litellm,
        json,
        server_bin,
        server_args,
    })
}

// ---------------------------------------------------------------------------------------
// The mock provider (`turn_path mock --chunks K`)

struct MockState {
    /// The whole SSE body of a reply, built once.
    body: bytes::Bytes,
    calls: AtomicU64,
}

/// One Chat Completions chunk event.
fn sse(chunk: &Value) -> String {
    format!("data: {chunk}\n\n")
}

fn mock_body(chunks: usize) -> String {
    let event = |delta: Value, finish: Option<&str>| {
        json!({
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": MOCK_MODEL,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    };
    let mut body = sse(&event(json!({ "role": "assistant", "content": "" }), None));
    for i in 0..chunks {
        body.push_str(&sse(&event(
            json!({ "content": format!("word{i} ") }),
            None,
        )));
    }
    body.push_str(&sse(&event(json!({}), Some("stop"))));
    body.push_str(&sse(&json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MOCK_MODEL,
        "choices": [],
        "usage": {
            "prompt_tokens": MOCK_PROMPT_TOKENS,
            "completion_tokens": chunks,
            "total_tokens": MOCK_PROMPT_TOKENS + chunks,
        },
    })));
    body.push_str("data: [DONE]\n\n");
    body
}

async fn mock_completions(
    axum::extract::State(state): axum::extract::State<Arc<MockState>>,
    _body: bytes::Bytes,
) -> axum::response::Response {
    state.calls.fetch_add(1, Ordering::Relaxed);
    axum::response::Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(axum::body::Body::from(state.body.clone()))
        .unwrap_or_default()
}

async fn mock_calls(axum::extract::State(state): axum::extract::State<Arc<MockState>>) -> String {
    state.calls.load(Ordering::Relaxed).to_string()
}

/// Serves the mock until stdin closes (the parent exited, however it ended).
async fn run_mock(mut it: impl Iterator<Item = String>) -> Result<()> {
    let mut chunks = 5;
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--chunks" => {
                chunks = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("mock: --chunks K")?
            }
            "--bench" => {}
            other => return Err(format!("mock: unknown argument {other:?}").into()),
        }
    }
    let state = Arc::new(MockState {
        body: bytes::Bytes::from(mock_body(chunks)),
        calls: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            axum::routing::post(mock_completions),
        )
        .route("/calls", axum::routing::get(mock_calls))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("mock listening http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    // The parent holds our stdin: EOF means it is gone, and so should we be.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Processes and CPU

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid` in ticks (its threads included, exited children not); `None`
/// when the process is gone.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are utime and stime; `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The parent pid of `pid`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `pid` and all its descendants.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            if let Some(p) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                if let Some(parent) = parent_of(p) {
                    parents.entry(parent).or_default().push(p);
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while let Some(p) = out.get(i).copied() {
        out.extend(parents.get(&p).into_iter().flatten().copied());
        i += 1;
    }
    out
}

/// CPU ticks per pid of a set of processes.
fn snapshot(pids: &[u32]) -> HashMap<u32, u64> {
    pids.iter()
        .filter_map(|p| cpu_ticks(*p).map(|t| (*p, t)))
        .collect()
}

/// Ticks spent between two snapshots (a process new in `after` counts from zero).
fn spent(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(p, t)| t.saturating_sub(before.get(p).copied().unwrap_or(0)))
        .sum()
}

type Log = Arc<Mutex<VecDeque<String>>>;

/// A started process in a process group of its own (Ctrl-C reaches only this tool, which
/// then ends the group). Dropping it kills the group.
struct Proc {
    name: String,
    child: Child,
    log: Log,
}

impl Proc {
    fn spawn(name: &str, mut command: Command) -> Result<Proc> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("start {name} ({:?}): {e}", command.get_program()))?;
        let log: Log = Arc::default();
        if let Some(out) = child.stdout.take() {
            collect(out, log.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, log.clone());
        }
        Ok(Proc {
            name: name.to_owned(),
            child,
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.iter()
            .map(|l| format!("  [{}] {l}", self.name))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until a log line contains `needle` and returns it; fails with the log when
    /// the process exits or [`START_TIMEOUT`] passes.
    async fn wait_for_line(&mut self, needle: &str) -> Result<String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let found = {
                let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
                log.iter().find(|l| l.contains(needle)).cloned()
            };
            if let Some(line) = found {
                return Ok(line);
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not print {needle:?} within {START_TIMEOUT:?}:\n{}",
                    self.name,
                    self.log_tail()
                )
                .into());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(format!("{} exited ({status}):\n{}", self.name, self.log_tail()).into());
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The whole group: LiteLLM may have started workers.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(pipe: impl Read + Send + 'static, log: Log) {
    std::thread::spawn(move || {
        let reader = BufReader::new(pipe);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            if log.len() >= LOG_LINES {
                log.pop_front();
            }
            log.push_back(line);
        }
    });
}

fn scrubbed(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if ["CHATD_", "OPENAI_", "ANTHROPIC_", "LITELLM_"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            command.env_remove(&var);
        }
    }
    command
}

// ---------------------------------------------------------------------------------------
// The systems

struct Mock {
    proc: Proc,
    base: String,
    http: reqwest::Client,
}

impl Mock {
    async fn start(chunks: usize) -> Result<Mock> {
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        command.args(["mock", "--chunks", &chunks.to_string()]);
        let mut proc = Proc::spawn("mock", command)?;
        let line = proc.wait_for_line("mock listening").await?;
        let base = line
            .split_whitespace()
            .last()
            .ok_or("the mock printed no address")?
            .to_owned();
        Ok(Mock {
            proc,
            base,
            http: reqwest::Client::new(),
        })
    }

    /// The OpenAI base URL.
    fn v1(&self) -> String {
        format!("{}/v1", self.base)
    }

    async fn calls(&self) -> Result<u64> {
        let text = self
            .http
            .get(format!("{}/calls", self.base))
            .send()
            .await?
            .text()
            .await?;
        Ok(text.trim().parse()?)
    }
}

/// A `chatd-server` process with its users.
struct Chatd {
    proc: Proc,
    base: String,
    /// API tokens of the simulated users.
    tokens: Vec<String>,
    /// PostgreSQL: the connection name of the server's backends.
    application_name: Option<String>,
    _sqlite_dir: Option<TempDir>,
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Chatd {
    async fn start(
        args: &Args,
        mock: &Mock,
        users: usize,
        postgres: Option<&TestDatabase>,
    ) -> Result<Chatd> {
        if !args.server_bin.exists() {
            return Err(format!(
                "{} does not exist: build it with `cargo build --release -p server-example`",
                args.server_bin.display()
            )
            .into());
        }
        let key = SecretKey::generate()?;
        let mut command = scrubbed(&args.server_bin);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--max-running-chats", &users.max(1).to_string()])
            .args(&args.server_args)
            .env(
                "CHATD_ENCRYPTION_KEY",
                format!("k1={}", key.to_base64().as_str()),
            )
            .env("CHATD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("OPENAI_API_KEY", MOCK_API_KEY)
            .env("OPENAI_BASE_URL", mock.v1())
            .env("NO_COLOR", "1")
            // The mock listens on loopback, which the AI Gateway refuses unless allowed.
            .env("CHATD_AI_GATEWAY_ALLOWED_PRIVATE_CIDRS", "127.0.0.0/8")
            // Warnings, and the start line that says the address.
            .env("CHATD_LOG", "warn,chatd_server=info");
        let (name, sqlite_dir, application_name) = match postgres {
            Some(db) => {
                let schema = db.schema().ok_or("the PostgreSQL database has no schema")?;
                command
                    .args(["--database-schema", schema])
                    .env("CHATD_DATABASE_URL", db.url());
                ("chatd-server (PostgreSQL)", None, Some(schema.to_owned()))
            }
            None => {
                let dir =
                    std::env::temp_dir().join(format!("chatd-bench-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&dir)?;
                command.env(
                    "CHATD_DATABASE_URL",
                    format!("sqlite://{}", dir.join("chatd.db").display()),
                );
                ("chatd-server (SQLite)", Some(TempDir(dir)), None)
            }
        };
        let mut proc = Proc::spawn(name, command)?;
        let line = proc.wait_for_line("chatd-server listening").await?;
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("listen="))
            .ok_or_else(|| format!("no address in {line:?}"))?;
        let base = format!("http://{addr}");
        let admin = Client::new(&base, ADMIN_TOKEN)?;
        let context = |what: &str, e: codersdk::client::Error, proc: &Proc| -> Error {
            format!("{what}: {e}\n{}", proc.log_tail()).into()
        };
        admin
            .create_chat_provider(&CreateChatProviderConfigRequest {
                provider: "openai".into(),
                ..Default::default()
            })
            .await
            .map_err(|e| context("configure the OpenAI provider", e, &proc))?;
        admin
            .create_chat_model_config(&CreateChatModelConfigRequest {
                provider: "openai".into(),
                model: MOCK_MODEL.into(),
                is_default: Some(true),
                context_limit: Some(128_000),
                model_config: Some(ChatModelCallConfig {
                    openai_config: Some(ChatModelOpenAIConfig {
                        // The mock speaks Chat Completions.
                        use_responses_api: Some(false),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .map_err(|e| context("configure the default model", e, &proc))?;
        let mut tokens = Vec::with_capacity(users);
        for i in 0..users {
            let username = format!("bench{i}");
            admin
                .create_user(&CreateUserRequest {
                    username: username.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|e| context("create a user", e, &proc))?;
            let token = admin
                .create_token(&username)
                .await
                .map_err(|e| context("create a token", e, &proc))?;
            tokens.push(token.key.expose().to_owned());
        }
        Ok(Chatd {
            proc,
            base,
            tokens,
            application_name,
            _sqlite_dir: sqlite_dir,
        })
    }
}

/// The LiteLLM proxy forwarding one model to the mock.
struct Litellm {
    proc: Proc,
    base: String,
    version: String,
    _dir: TempDir,
}

impl Litellm {
    async fn start(program: &Path, mock: &Mock) -> Result<Litellm> {
        let dir = std::env::temp_dir().join(format!("litellm-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let dir = TempDir(dir);
        let config = dir.0.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "model_list:\n  - model_name: {LITELLM_MODEL}\n    litellm_params:\n      \
                 model: openai/{MOCK_MODEL}\n      api_base: {}\n      api_key: {MOCK_API_KEY}\n",
                mock.v1()
            ),
        )?;
        let port = free_port()?;
        let mut command = scrubbed(program);
        command
            .args(["--config"])
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--num_workers", "1"])
            // No network here: the bundled cost map, no telemetry.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_TELEMETRY", "False")
            .env("LITELLM_LOG", "ERROR")
            .env("LITELLM_MASTER_KEY", LITELLM_MASTER_KEY);
        let version = litellm_version(program);
        let mut proc = Proc::spawn("litellm", command)?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = http
                .get(format!("{base}/health/liveliness"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            proc.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "LiteLLM did not answer within {START_TIMEOUT:?}:\n{}",
                    proc.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Litellm {
            proc,
            base,
            version,
            _dir: dir,
        })
    }
}

/// The installed litellm package's version, from the venv's own Python.
fn litellm_version(program: &Path) -> String {
    let python = program.with_file_name("python");
    Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------
// The clients

/// One turn's measurements.
#[derive(Debug, Clone, Copy)]
struct Turn {
    first_output: Duration,
    done: Duration,
}

/// One streamed Chat Completions call to `url`: request → first non-empty content delta,
/// request → `[DONE]`.
async fn openai_turn(http: &reqwest::Client, url: &str, model: &str, key: &str) -> Result<Turn> {
    let started = Instant::now();
    let response = http
        .post(url)
        .bearer_auth(key)
        .json(&json!({
            "model": model,
            "stream": true,
            "stream_options": { "include_usage": true },
            "messages": [{ "role": "user", "content": PROMPT }],
        }))
        .send()
        .await?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(format!("{url}: {status}: {body}").into());
    }
    let mut body = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut first_output = None;
    loop {
        let Some(chunk) = tokio::time::timeout(TURN_TIMEOUT, body.next()).await? else {
            return Err(format!("{url}: the stream ended before [DONE]").into());
        };
        buffer.extend_from_slice(&chunk?);
        // Complete lines only; the rest waits for the next chunk.
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Some(data) = line.strip_prefix(b"data: ") else {
                continue;
            };
            let data = data.trim_ascii();
            if data == b"[DONE]" {
                return Ok(Turn {
                    first_output: first_output.ok_or("no content before [DONE]")?,
                    done: started.elapsed(),
                });
            }
            if first_output.is_none() {
                let event: Value = serde_json::from_slice(data)?;
                let content = event
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !content.is_empty() {
                    first_output = Some(started.elapsed());
                }
            }
        }
    }
}

/// Reads `events` until the turn started at `started` is over: skips what precedes the
/// turn's `pending`/`running` status (the end of the previous turn), then returns at the
/// first assistant `message_part` (first output) and the `waiting` status (done).
async fn follow_turn(events: &mut ChatEventStream, started: Instant) -> Result<Turn> {
    let mut started_seen = false;
    let mut first_output = None;
    loop {
        let event = tokio::time::timeout(TURN_TIMEOUT, events.next())
            .await
            .map_err(|_| format!("no turn event within {TURN_TIMEOUT:?}"))?
            .ok_or("the chat's stream closed")??;
        let status = event.status.as_ref().map(|s| &s.status);
        if !started_seen {
            started_seen = matches!(status, Some(ChatStatus::Pending | ChatStatus::Running));
            if !started_seen {
                continue;
            }
        }
        let assistant_output = match event.event_type {
            ChatStreamEventType::MessagePart => event
                .message_part
                .as_ref()
                .is_some_and(|p| p.role == Some(ChatMessageRole::Assistant)),
            ChatStreamEventType::Message => event
                .message
                .as_ref()
                .is_some_and(|m| m.role == ChatMessageRole::Assistant),
            _ => false,
        };
        if assistant_output && first_output.is_none() {
            first_output = Some(started.elapsed());
        }
        match status {
            Some(ChatStatus::Waiting) => {
                return Ok(Turn {
                    first_output: first_output.ok_or("the turn ended without output")?,
                    done: started.elapsed(),
                })
            }
            Some(ChatStatus::Error | ChatStatus::RequiresAction) => {
                return Err(format!("the turn ended in {status:?}").into())
            }
            _ => {}
        }
    }
}

/// Sends the prompt to `chat` and follows the turn.
async fn chatd_turn(
    client: &Client,
    chat: uuid::Uuid,
    events: &mut ChatEventStream,
) -> Result<Turn> {
    let started = Instant::now();
    client
        .send_message(
            chat,
            &CreateChatMessageRequest {
                content: vec![ChatInputPart::text(PROMPT)],
                ..Default::default()
            },
        )
        .await?;
    follow_turn(events, started).await
}

/// A chat ready for measured turns: created with a first (unmeasured) turn done, its
/// stream open.
async fn prepare_chat(
    base: String,
    token: String,
) -> Result<(Client, uuid::Uuid, ChatEventStream)> {
    let client = Client::new(&base, token)?;
    let chat = client
        .create_chat(&CreateChatRequest {
            content: vec![ChatInputPart::text(PROMPT)],
            ..Default::default()
        })
        .await?;
    let mut events = client.stream(chat.id, None).await?;
    // The first turn (title generation included) is setup, not measured: wait for it.
    wait_idle(&mut events).await?;
    Ok((client, chat.id, events))
}

/// Reads `events` until both the chat's `waiting` status and an assistant output were
/// seen: live, the output comes first; the snapshot of a stream opened after the turn
/// ended starts with the status, before the messages.
async fn wait_idle(events: &mut ChatEventStream) -> Result<()> {
    let mut output = false;
    let mut waiting = false;
    loop {
        let event = tokio::time::timeout(TURN_TIMEOUT, events.next())
            .await
            .map_err(|_| "the first turn did not end in time")?
            .ok_or("the chat's stream closed")??;
        output |= matches!(
            event.event_type,
            ChatStreamEventType::MessagePart | ChatStreamEventType::Message
        ) && (event
            .message_part
            .as_ref()
            .is_some_and(|p| p.role == Some(ChatMessageRole::Assistant))
            || event
                .message
                .as_ref()
                .is_some_and(|m| m.role == ChatMessageRole::Assistant));
        match event.status.as_ref().map(|s| &s.status) {
            Some(ChatStatus::Waiting) => waiting = true,
            Some(s @ (ChatStatus::Error | ChatStatus::RequiresAction)) => {
                return Err(format!("the first turn ended in {s:?}").into())
            }
            _ => {}
        }
        if waiting && output {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rounds

/// What one measured round of one system produced.
#[derive(Debug, Default, Clone)]
struct Sample {
    turns: Vec<Turn>,
    wall: Duration,
    /// CPU ticks per process role.
    cpu: BTreeMap<&'static str, u64>,
    mock_calls: u64,
}

/// The processes of a round whose CPU is read: role → pids (looked up again at the end
/// for PostgreSQL, whose backends come and go).
struct Watched<'a> {
    roles: Vec<(&'static str, Vec<u32>)>,
    postgres: Option<(&'a sqlx::AnyPool, String)>,
}

/// PostgreSQL processes whose CPU is counted: the server's backends (not this tool's own
/// connection), and apart the shared background processes (WAL writer, checkpointer,
/// autovacuum, …), which also work for any other client of the database.
async fn postgres_pids(
    pool: &sqlx::AnyPool,
    application_name: &str,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let own: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 \
         AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
    )
    .bind(application_name)
    .fetch_all(pool)
    .await?;
    let background: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'",
    )
    .fetch_all(pool)
    .await?;
    let pids = |v: Vec<i32>| -> Vec<u32> {
        v.into_iter()
            .filter_map(|p| u32::try_from(p).ok())
            .collect()
    };
    Ok((pids(own), pids(background)))
}

async fn cpu_snapshot(watched: &Watched<'_>) -> Result<BTreeMap<&'static str, HashMap<u32, u64>>> {
    let mut out = BTreeMap::new();
    for (role, pids) in &watched.roles {
        let mut all = Vec::new();
        for pid in pids {
            all.extend(process_tree(*pid));
        }
        out.insert(*role, snapshot(&all));
    }
    if let Some((pool, name)) = &watched.postgres {
        let (own, background) = postgres_pids(pool, name).await?;
        let mut all = own;
        all.extend(&background);
        out.insert("database", snapshot(&all));
        out.insert("db background", snapshot(&background));
    }
    Ok(out)
}

async fn measure<F, Fut>(watched: &Watched<'_>, mock: &Mock, run: F) -> Result<Sample>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Turn>>>,
{
    let calls_before = mock.calls().await?;
    let before = cpu_snapshot(watched).await?;
    let client_before = cpu_ticks(std::process::id()).unwrap_or(0);
    let started = Instant::now();
    let turns = run().await?;
    let wall = started.elapsed();
    let client_after = cpu_ticks(std::process::id()).unwrap_or(0);
    let after = cpu_snapshot(watched).await?;
    let mut cpu = BTreeMap::new();
    for (role, snap) in &after {
        let empty = HashMap::new();
        cpu.insert(*role, spent(before.get(role).unwrap_or(&empty), snap));
    }
    cpu.insert("client", client_after.saturating_sub(client_before));
    let mock_calls = mock.calls().await?.saturating_sub(calls_before);
    Ok(Sample {
        turns,
        wall,
        cpu,
        mock_calls,
    })
}

/// `workload` against an OpenAI-compatible endpoint (the mock or LiteLLM).
async fn round_openai(
    url: String,
    model: &'static str,
    key: &'static str,
    workload: Workload,
) -> Result<Vec<Turn>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(workload.chats)
        .build()?;
    let tasks: Vec<_> = (0..workload.chats)
        .map(|_| {
            let http = http.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(workload.turns);
                for _ in 0..workload.turns {
                    out.push(openai_turn(&http, &url, model, key).await?);
                }
                Ok::<_, Error>(out)
            })
        })
        .collect();
    let mut turns = Vec::new();
    for task in tasks {
        turns.extend(task.await??);
    }
    Ok(turns)
}

/// One round against a chatd server: the chats are prepared (created, first turn done,
/// streams open) before the measurement starts.
async fn round_chatd(
    chatd: &Chatd,
    watched: &Watched<'_>,
    mock: &Mock,
    workload: Workload,
) -> Result<Sample> {
    let prepared: Vec<_> = futures_util::future::join_all(
        chatd
            .tokens
            .iter()
            .take(workload.chats)
            .map(|t| prepare_chat(chatd.base.clone(), t.clone())),
    )
    .await
    .into_iter()
    .collect::<Result<_>>()
    .map_err(|e| format!("prepare the chats: {e}\n{}", chatd.proc.log_tail()))?;
    let sample = measure(watched, mock, || async move {
        let tasks: Vec<_> = prepared
            .into_iter()
            .map(|(client, chat, mut events)| {
                tokio::spawn(async move {
                    let mut out = Vec::with_capacity(workload.turns);
                    for _ in 0..workload.turns {
                        out.push(chatd_turn(&client, chat, &mut events).await?);
                    }
                    Ok::<_, Error>(out)
                })
            })
            .collect();
        let mut turns = Vec::new();
        for task in tasks {
            turns.extend(task.await??);
        }
        Ok(turns)
    })
    .await
    .map_err(|e| format!("{e}\n{}", chatd.proc.log_tail()))?;
    Ok(sample)
}

// ---------------------------------------------------------------------------------------
// Report

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Debug, Default)]
struct Summary {
    turns: usize,
    turns_per_s: f64,
    ttfo_p50: f64,
    ttfo_p99: f64,
    turn_p50: f64,
    turn_p99: f64,
    /// CPU milliseconds per turn per role.
    cpu_ms_per_turn: BTreeMap<&'static str, f64>,
    mock_calls_per_turn: f64,
    /// turns/s of each round.
    round_rates: Vec<f64>,
}

fn summarize(samples: &[Sample], tick: f64) -> Summary {
    let mut ttfo: Vec<Duration> = samples
        .iter()
        .flat_map(|s| s.turns.iter().map(|t| t.first_output))
        .collect();
    let mut done: Vec<Duration> = samples
        .iter()
        .flat_map(|s| s.turns.iter().map(|t| t.done))
        .collect();
    ttfo.sort();
    done.sort();
    let turns = done.len();
    let wall: f64 = samples.iter().map(|s| s.wall.as_secs_f64()).sum();
    let mut cpu: BTreeMap<&'static str, u64> = BTreeMap::new();
    for s in samples {
        for (role, t) in &s.cpu {
            *cpu.entry(role).or_default() += t;
        }
    }
    let per_turn = |x: f64| if turns == 0 { 0.0 } else { x / turns as f64 };
    Summary {
        turns,
        turns_per_s: if wall > 0.0 { turns as f64 / wall } else { 0.0 },
        ttfo_p50: ms(percentile(&ttfo, 50.0)),
        ttfo_p99: ms(percentile(&ttfo, 99.0)),
        turn_p50: ms(percentile(&done, 50.0)),
        turn_p99: ms(percentile(&done, 99.0)),
        cpu_ms_per_turn: cpu
            .into_iter()
            .map(|(role, t)| (role, per_turn(t as f64 / tick * 1000.0)))
            .collect(),
        mock_calls_per_turn: per_turn(samples.iter().map(|s| s.mock_calls as f64).sum()),
        round_rates: samples
            .iter()
            .map(|s| s.turns.len() as f64 / s.wall.as_secs_f64().max(1e-9))
            .collect(),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Main

async fn run(args: Args) -> Result<()> {
    let tick = clock_ticks();
    let max_chats = args.workloads.iter().map(|w| w.chats).max().unwrap_or(1);
    println!("# chatd turn-path benchmark");
    println!();
    println!(
        "- started {} UTC, commit {}, {} CPUs, load average {}",
        command_output("date", &["-u", "+%Y-%m-%d %H:%M"]),
        command_output("git", &["rev-parse", "--short", "HEAD"]),
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average()
    );
    println!(
        "- rounds {}, workloads {}, mock reply {} text chunks, systems {}",
        args.rounds,
        args.workloads
            .iter()
            .map(|w| w.label())
            .collect::<Vec<_>>()
            .join(", "),
        args.chunks,
        args.systems
            .iter()
            .map(|s| s.key())
            .collect::<Vec<_>>()
            .join(",")
    );

    let mock = Mock::start(args.chunks).await?;
    let postgres_db = if args.systems.contains(&System::Postgres) {
        // Checked first for a clear message (the test kit's database panics instead).
        sqlx::any::install_default_drivers();
        let conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&args.database_url)
            .await
            .map_err(|e| {
                format!(
                    "connect to PostgreSQL at {}: {e} (start it, pass --database-url, or \
                     leave postgres out with --systems)",
                    args.database_url
                )
            })?;
        let _ = sqlx::Connection::close(conn).await;
        Some(
            tokio::time::timeout(START_TIMEOUT, TestDatabase::postgres(&args.database_url))
                .await
                .map_err(|_| format!("PostgreSQL at {} did not answer", args.database_url))?,
        )
    } else {
        None
    };
    let postgres_pool = match &postgres_db {
        Some(db) => Some(db.raw_pool().await),
        None => None,
    };
    if let Some(pool) = &postgres_pool {
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(pool)
            .await?;
        println!("- PostgreSQL {version}");
    }
    let mut sqlite = None;
    let mut postgres = None;
    let mut litellm = None;
    let mut gateway = None;
    for system in &args.systems {
        match system {
            System::Direct => {}
            System::Sqlite => sqlite = Some(Chatd::start(&args, &mock, max_chats, None).await?),
            System::Postgres => {
                postgres = Some(Chatd::start(&args, &mock, max_chats, postgres_db.as_ref()).await?)
            }
            System::Gateway => gateway = Some(Chatd::start(&args, &mock, 1, None).await?),
            System::Litellm => {
                let program = args.litellm.as_deref().ok_or("--litellm PATH")?;
                let l = Litellm::start(program, &mock).await?;
                println!("- LiteLLM {}", l.version);
                litellm = Some(l);
            }
        }
    }
    println!("- chatd-server {}", args.server_bin.display());
    println!();

    let mut results: BTreeMap<(usize, System), Vec<Sample>> = BTreeMap::new();
    let mut loads = Vec::new();
    for (w, workload) in args.workloads.iter().enumerate() {
        // One warm-up round per system (connections, caches), not counted.
        for round in 0..=args.rounds {
            loads.push(load_average());
            for system in &args.systems {
                let mock_role = ("mock", vec![mock.proc.pid()]);
                let sample = match system {
                    System::Direct => {
                        let watched = Watched {
                            roles: vec![mock_role],
                            postgres: None,
                        };
                        measure(&watched, &mock, || {
                            round_openai(
                                format!("{}/chat/completions", mock.v1()),
                                MOCK_MODEL,
                                MOCK_API_KEY,
                                *workload,
                            )
                        })
                        .await?
                    }
                    System::Litellm => {
                        let l = litellm.as_ref().ok_or("LiteLLM is not running")?;
                        let watched = Watched {
                            roles: vec![mock_role, ("server", vec![l.proc.pid()])],
                            postgres: None,
                        };
                        measure(&watched, &mock, || {
                            round_openai(
                                format!("{}/v1/chat/completions", l.base),
                                LITELLM_MODEL,
                                LITELLM_MASTER_KEY,
                                *workload,
                            )
                        })
                        .await
                        .map_err(|e| format!("LiteLLM: {e}\n{}", l.proc.log_tail()))?
                    }
                    System::Gateway => {
                        let g = gateway
                            .as_ref()
                            .ok_or("the gateway server is not running")?;
                        let watched = Watched {
                            roles: vec![mock_role, ("server", vec![g.proc.pid()])],
                            postgres: None,
                        };
                        measure(&watched, &mock, || {
                            round_openai(
                                format!("{}/api/v2/aibridge/openai/v1/chat/completions", g.base),
                                MOCK_MODEL,
                                ADMIN_TOKEN,
                                *workload,
                            )
                        })
                        .await
                        .map_err(|e| format!("gateway: {e}\n{}", g.proc.log_tail()))?
                    }
                    System::Sqlite => {
                        let c = sqlite.as_ref().ok_or("the SQLite server is not running")?;
                        let watched = Watched {
                            roles: vec![mock_role, ("server", vec![c.proc.pid()])],
                            postgres: None,
                        };
                        round_chatd(c, &watched, &mock, *workload).await?
                    }
                    System::Postgres => {
                        let c = postgres
                            .as_ref()
                            .ok_or("the PostgreSQL server is not running")?;
                        let pool = postgres_pool.as_ref().ok_or("no PostgreSQL pool")?;
                        let name = c.application_name.clone().unwrap_or_default();
                        let watched = Watched {
                            roles: vec![mock_role, ("server", vec![c.proc.pid()])],
                            postgres: Some((pool, name)),
                        };
                        round_chatd(c, &watched, &mock, *workload).await?
                    }
                };
                let s = summarize(std::slice::from_ref(&sample), tick);
                eprintln!(
                    "{} round {round}{} {:<17} {:>7.1} turns/s  TTFO p50 {:.2} ms  \
                     turn p50 {:.2} ms p99 {:.2} ms  load {}",
                    workload.label(),
                    if round == 0 { " (warm-up)" } else { "" },
                    system.name(),
                    s.turns_per_s,
                    s.ttfo_p50,
                    s.turn_p50,
                    s.turn_p99,
                    load_average()
                );
                if round > 0 {
                    results.entry((w, *system)).or_default().push(sample);
                }
            }
        }
    }
    loads.push(load_average());

    println!(
        "Load average (1/5/15 min) at each round's start and at the end: {}",
        loads.join("; ")
    );
    println!();
    let mut json_out = Vec::new();
    for (w, workload) in args.workloads.iter().enumerate() {
        println!(
            "## {} chats x {} turns ({} rounds)",
            workload.chats, workload.turns, args.rounds
        );
        println!();
        println!(
            "| System | Turns | Turns/s | TTFO p50 | TTFO p99 | Turn p50 | Turn p99 | p99/p50 | \
             TTFO p50 over direct | CPU ms/turn: server | database | (of which db background) | mock | \
             client | mock calls/turn |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let direct = results
            .get(&(w, System::Direct))
            .map(|s| summarize(s, tick));
        for system in &args.systems {
            let Some(samples) = results.get(&(w, *system)) else {
                continue;
            };
            let s = summarize(samples, tick);
            let cpu = |role: &str| {
                s.cpu_ms_per_turn
                    .get(role)
                    .map_or("—".to_owned(), |v| format!("{v:.3}"))
            };
            let overhead = match (&direct, system) {
                (
                    Some(d),
                    System::Sqlite | System::Postgres | System::Litellm | System::Gateway,
                ) => {
                    format!("{:+.2} ms", s.ttfo_p50 - d.ttfo_p50)
                }
                _ => "—".into(),
            };
            println!(
                "| {} | {} | {:.1} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} | {} | {} | {} | {} | {} | {} | {:.2} |",
                system.name(),
                s.turns,
                s.turns_per_s,
                s.ttfo_p50,
                s.ttfo_p99,
                s.turn_p50,
                s.turn_p99,
                s.turn_p99 / s.turn_p50.max(1e-9),
                overhead,
                cpu("server"),
                cpu("database"),
                cpu("db background"),
                cpu("mock"),
                cpu("client"),
                s.mock_calls_per_turn,
            );
            json_out.push(json!({
                "workload": { "chats": workload.chats, "turns": workload.turns },
                "system": system.key(),
                "turns": s.turns,
                "turns_per_s": s.turns_per_s,
                "round_turns_per_s": s.round_rates,
                "ttfo_ms": { "p50": s.ttfo_p50, "p99": s.ttfo_p99 },
                "turn_ms": { "p50": s.turn_p50, "p99": s.turn_p99 },
                "cpu_ms_per_turn": s.cpu_ms_per_turn,
                "mock_calls_per_turn": s.mock_calls_per_turn,
            }));
        }
        println!();
    }
    if let Some(path) = &args.json {
        let doc = json!({
            "loads": loads,
            "litellm_version": litellm.as_ref().map(|l| l.version.clone()),
            "results": json_out,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .map_err(|e| format!("write {}: {e}", path.display()))?;
    }

    // Servers first (they hold connections to the schema), then the schema.
    drop(sqlite);
    drop(postgres);
    drop(litellm);
    drop(gateway);
    if let Some(pool) = postgres_pool {
        pool.close().await;
    }
    if let Some(db) = postgres_db {
        db.remove().await;
    }
    drop(mock);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut argv = std::env::args().skip(1).peekable();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("turn_path: a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = if argv.peek().map(String::as_str) == Some("mock") {
        argv.next();
        runtime.block_on(run_mock(argv))
    } else {
        match parse_args(argv) {
            Ok(args) => runtime.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                // Interrupted: `run` is dropped, which kills the processes and drops the
                // schema (the test kit's database removes itself when dropped).
                tokio::select! {
                    r = run(args) => r,
                    _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
                    _ = term.recv() => Err("terminated".into()),
                }
            }),
            Err(e) => Err(e),
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("turn_path: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
