//! Several `chatd-server` processes (replicas) on one PostgreSQL schema, for the tests of
//! the multi-replica deployment: a mock OpenAI provider that tells its callers apart, one
//! [`Replica`] per process (started, killed, terminated, its logs kept), and a [`Cluster`]
//! that owns the schema, the shared secrets and the provider configuration.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use chatd_test_support::replicas::{Cluster, ClusterOptions};
//!
//! // An integration test of server-example passes env!("CARGO_BIN_EXE_chatd-server").
//! let options = ClusterOptions::new("target/debug/chatd-server")
//!     .chunk_delay(Duration::from_millis(50));
//! // `None` without CHATD_TEST_DATABASE_URL: the test returns early.
//! let Some(cluster) = Cluster::start(options).await else { return };
//! let a = cluster.replica().await;
//! let b = cluster.replica().await;
//! let alice = cluster.user(&a, "alice").await;
//! // Created through B, visible through A: one database.
//! let chat = alice.client(&b).create_chat(&Default::default()).await.unwrap();
//! let seen = alice.client(&a).chat(chat.id).await.unwrap();
//! assert_eq!(seen.id, chat.id);
//! # }
//! ```
//!
//! Which replica ran a turn is visible at the mock: each replica gets an OpenAI key of its
//! own through `OPENAI_API_KEY` (the provider configuration stores no key, so the
//! deployment's key is used), and the mock records the key of every call.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chatd_core::SecretKey;
use codersdk::client::{Client, CreateUserRequest};
use codersdk::{
    ChatModelCallConfig, ChatModelOpenAIConfig, CreateChatModelConfigRequest,
    CreateChatProviderConfigRequest,
};
use serde_json::{json, Value};
use sqlx::AnyPool;

use crate::db::{postgres_url, TestDatabase, DATABASE_URL_ENV};

// ---------------------------------------------------------------------------------------
// The mock provider

/// Text chunks in a mock reply unless a [`Script`] says otherwise.
pub const DEFAULT_REPLY_CHUNKS: usize = 10;

/// The model name the cluster configures (and the mock echoes).
pub const MOCK_MODEL: &str = "gpt-4o";

/// The title the mock answers the engine's automatic title requests with.
pub const MOCK_TITLE: &str = "Replica test";

/// The label the mock answers the engine's turn summary requests with.
pub const MOCK_SUMMARY: &str = "Replica turn done";

/// Prompt tokens the mock reports in every reply's usage.
pub const MOCK_PROMPT_TOKENS: u64 = 10;

/// How a reply to one user message is streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    /// Text chunks (at least one).
    pub chunks: usize,
    /// Pause before each chunk after the first.
    pub chunk_delay: Duration,
}

/// What the mock saw of the calls answering one user message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Calls received.
    pub calls: usize,
    /// Calls whose stream is still being sent.
    pub in_flight: usize,
    /// Calls whose whole stream (up to `[DONE]`) was handed to the connection.
    pub completed: usize,
    /// Text chunks sent, over every call.
    pub chunks_sent: usize,
    /// The API key of each call, in arrival order (which replica called).
    pub keys: Vec<String>,
}

impl CallStats {
    /// Calls made with `key`.
    pub fn calls_with(&self, key: &str) -> usize {
        self.keys.iter().filter(|k| *k == key).count()
    }
}

struct MockShared {
    /// The default pause between chunks, in microseconds (changeable while running).
    chunk_delay_micros: AtomicU64,
    chunks: usize,
    scripts: Mutex<HashMap<String, Script>>,
    stats: Mutex<HashMap<String, CallStats>>,
    titles: AtomicUsize,
    summaries: AtomicUsize,
    calls: AtomicUsize,
}

/// Locks `mutex`, taking the data of a poisoned one: a panic elsewhere already fails the
/// test, and the counters must stay readable for the assertion that reports it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A local OpenAI-compatible Chat Completions server. Every `POST /v1/chat/completions`
/// is answered with a streamed reply naming the request's last user message
/// ([`reply_text`]), chunk by chunk with a pause between chunks, usage in a final chunk.
/// The engine's title requests (system prompt [`chatd_core::title::TITLE_SYSTEM_PROMPT`])
/// and turn summary requests ([`chatd_core::TURN_SUMMARY_SYSTEM_PROMPT`]) are answered at
/// once with [`MOCK_TITLE`] and [`MOCK_SUMMARY`] and counted apart. It stops when dropped.
pub struct MockOpenAi {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    shared: Arc<MockShared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for MockOpenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockOpenAi")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The text chunks of the mock's reply to `user_text` in `chunks` chunks.
pub fn reply_chunks(user_text: &str, chunks: usize) -> Vec<String> {
    let mut out = vec![format!("Reply to [{user_text}]:")];
    out.extend((1..chunks.max(1)).map(|i| format!(" part {i}")));
    out
}

/// The whole text of the mock's reply to `user_text` in `chunks` chunks.
pub fn reply_text(user_text: &str, chunks: usize) -> String {
    reply_chunks(user_text, chunks).concat()
}

impl MockOpenAi {
    /// Starts a mock replying in [`DEFAULT_REPLY_CHUNKS`] chunks, `chunk_delay` apart.
    pub async fn start(chunk_delay: Duration) -> MockOpenAi {
        MockOpenAi::with_chunks(DEFAULT_REPLY_CHUNKS, chunk_delay).await
    }

    /// Starts a mock replying in `chunks` chunks, `chunk_delay` apart.
    pub async fn with_chunks(chunks: usize, chunk_delay: Duration) -> MockOpenAi {
        let shared = Arc::new(MockShared {
            chunk_delay_micros: AtomicU64::new(micros(chunk_delay)),
            chunks: chunks.max(1),
            scripts: Mutex::new(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
            titles: AtomicUsize::new(0),
            summaries: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(completions))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mock provider to a local port");
        let addr = listener
            .local_addr()
            .expect("the mock provider's local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockOpenAi {
            base_url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// The OpenAI base URL: `base_url` + `/v1`.
    pub fn url(&self) -> String {
        format!("{}/v1", self.base_url)
    }

    /// Changes the default pause between chunks, for calls that start from now on.
    pub fn set_chunk_delay(&self, delay: Duration) {
        self.shared
            .chunk_delay_micros
            .store(micros(delay), Ordering::Relaxed);
    }

    /// Replies to `user_text` follow `script` instead of the defaults.
    pub fn script(&self, user_text: &str, script: Script) {
        lock(&self.shared.scripts).insert(user_text.to_owned(), script);
    }

    /// The chunks of the reply to `user_text` (its script's, else the default).
    pub fn chunks_for(&self, user_text: &str) -> usize {
        lock(&self.shared.scripts)
            .get(user_text)
            .map_or(self.shared.chunks, |s| s.chunks.max(1))
    }

    /// The full reply to `user_text`.
    pub fn reply_to(&self, user_text: &str) -> String {
        reply_text(user_text, self.chunks_for(user_text))
    }

    /// What the mock saw for `user_text` (all zero when nothing).
    pub fn stats(&self, user_text: &str) -> CallStats {
        lock(&self.shared.stats)
            .get(user_text)
            .cloned()
            .unwrap_or_default()
    }

    /// Calls answering `user_text`.
    pub fn calls(&self, user_text: &str) -> usize {
        self.stats(user_text).calls
    }

    /// Every user message's stats.
    pub fn all_stats(&self) -> HashMap<String, CallStats> {
        lock(&self.shared.stats).clone()
    }

    /// Turn calls received (titles and summaries not counted).
    pub fn total_calls(&self) -> usize {
        self.shared.calls.load(Ordering::Relaxed)
    }

    /// Streams being sent right now, over every user message.
    pub fn in_flight(&self) -> usize {
        lock(&self.shared.stats).values().map(|s| s.in_flight).sum()
    }

    /// Title requests answered.
    pub fn title_calls(&self) -> usize {
        self.shared.titles.load(Ordering::Relaxed)
    }

    /// Turn summary requests answered.
    pub fn summary_calls(&self) -> usize {
        self.shared.summaries.load(Ordering::Relaxed)
    }
}

impl Drop for MockOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The text of a Chat Completions message's `content` (a string or an array of parts).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The bearer token of a request (empty without one).
fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned()
}

/// One SSE event carrying a Chat Completions chunk.
fn sse(chunk: &Value) -> Bytes {
    Bytes::from(format!("data: {chunk}\n\n"))
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MOCK_MODEL,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    })
}

fn sse_response(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap_or_else(|e| panic!("the mock's SSE response is invalid: {e}"))
}

/// Decrements a user message's `in_flight` when the stream ends or the client goes away
/// (the body stream is dropped either way), and counts completions.
struct InFlight {
    shared: Arc<MockShared>,
    text: String,
    completed: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut stats = lock(&self.shared.stats);
        let s = stats.entry(self.text.clone()).or_default();
        s.in_flight = s.in_flight.saturating_sub(1);
        if self.completed {
            s.completed += 1;
        }
    }
}

async fn completions(
    State(shared): State<Arc<MockShared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        let mut response = Response::new(Body::from("the body is not JSON"));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let role = |m: &Value| m.get("role").and_then(Value::as_str).map(str::to_owned);
    let content = |m: &Value| m.get("content").map(content_text).unwrap_or_default();
    let system = messages
        .first()
        .filter(|m| role(m).as_deref() == Some("system"))
        .map(content);
    let aside = match system.as_deref() {
        Some(chatd_core::title::TITLE_SYSTEM_PROMPT) => Some((&shared.titles, MOCK_TITLE)),
        Some(chatd_core::TURN_SUMMARY_SYSTEM_PROMPT) => Some((&shared.summaries, MOCK_SUMMARY)),
        _ => None,
    };
    if let Some((counter, label)) = aside {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        out.extend_from_slice(&sse(&chunk(json!({ "content": label }), Some("stop"))));
        out.extend_from_slice(b"data: [DONE]\n\n");
        return sse_response(Body::from(out));
    }
    let text = messages
        .iter()
        .rev()
        .find(|m| role(m).as_deref() == Some("user"))
        .map(content)
        .unwrap_or_default();
    let script = lock(&shared.scripts).get(&text).copied();
    let delay = script.map_or_else(
        || Duration::from_micros(shared.chunk_delay_micros.load(Ordering::Relaxed)),
        |s| s.chunk_delay,
    );
    let chunks = reply_chunks(&text, script.map_or(shared.chunks, |s| s.chunks));
    shared.calls.fetch_add(1, Ordering::Relaxed);
    {
        let mut stats = lock(&shared.stats);
        let s = stats.entry(text.clone()).or_default();
        s.calls += 1;
        s.in_flight += 1;
        s.keys.push(bearer(&headers));
    }
    let guard = InFlight {
        shared: shared.clone(),
        text,
        completed: false,
    };
    let completion_tokens = chunks.len();
    // The events in order: the role, each text chunk (paused before all but the first),
    // the finish reason, the usage (`stream_options.include_usage`), `[DONE]`.
    let stream = futures_util::stream::unfold(
        (0usize, chunks, guard),
        move |(i, chunks, mut guard)| async move {
            let event = if i == 0 {
                sse(&chunk(json!({ "role": "assistant", "content": "" }), None))
            } else if let Some(text) = chunks.get(i - 1) {
                if i > 1 && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                {
                    let mut stats = lock(&guard.shared.stats);
                    stats.entry(guard.text.clone()).or_default().chunks_sent += 1;
                }
                sse(&chunk(json!({ "content": text }), None))
            } else if i == chunks.len() + 1 {
                sse(&chunk(json!({}), Some("stop")))
            } else if i == chunks.len() + 2 {
                sse(&json!({
                    "id": "chatcmpl-mock",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": MOCK_MODEL,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": MOCK_PROMPT_TOKENS,
                        "completion_tokens": completion_tokens,
                        "total_tokens": MOCK_PROMPT_TOKENS + u64::try_from(completion_tokens).unwrap_or(0),
                    },
                }))
            } else if i == chunks.len() + 3 {
                guard.completed = true;
                Bytes::from_static(b"data: [DONE]\n\n")
            } else {
                return None;
            };
            Some((Ok::<_, std::io::Error>(event), (i + 1, chunks, guard)))
        },
    );
    sse_response(Body::from_stream(stream))
}

// ---------------------------------------------------------------------------------------
// Metrics

/// One sample of an OpenMetrics text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (`…_total`, `…_bucket`, …).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// The samples of a `/metrics` answer.
#[derive(Debug, Clone, Default)]
pub struct MetricsText {
    /// The text as received.
    pub text: String,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

/// A histogram's cumulative buckets, sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// `(le, cumulative count)`, in increasing `le` (the last is `+Inf`).
    pub buckets: Vec<(f64, f64)>,
    /// The sum of the observations.
    pub sum: f64,
    /// The number of observations.
    pub count: f64,
}

impl HistogramSnapshot {
    /// Adds `other`'s observations (same bucket bounds expected; others are added by
    /// bound).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (le, n) in &other.buckets {
            match self.buckets.iter_mut().find(|(l, _)| l == le) {
                Some((_, m)) => *m += n,
                None => self.buckets.push((*le, *n)),
            }
        }
        self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.sum += other.sum;
        self.count += other.count;
    }

    /// The upper bound of the bucket holding the `q` quantile (0 < q ≤ 1); `None` without
    /// observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        self.buckets
            .iter()
            .find(|(_, n)| *n >= rank)
            .map(|(le, _)| *le)
    }
}

impl MetricsText {
    /// Parses the OpenMetrics (or Prometheus) text format: `name{labels} value`, comment
    /// lines skipped, exemplars and timestamps ignored.
    pub fn parse(text: &str) -> MetricsText {
        let samples = text.lines().filter_map(parse_sample).collect();
        MetricsText {
            text: text.to_owned(),
            samples,
        }
    }

    /// Samples called `name` carrying every label of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
    }

    /// The first sample called `name` with `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels).next().map(|s| s.value)
    }

    /// The sum of the samples called `name` with `labels` (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The histogram `name` (its `_bucket`, `_sum` and `_count` samples), when present.
    pub fn histogram(&self, name: &str) -> Option<HistogramSnapshot> {
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|s| s.name == bucket)
            .filter_map(|s| Some((s.labels.get("le")?.parse::<f64>().ok()?, s.value)))
            .collect();
        if buckets.is_empty() {
            return None;
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(HistogramSnapshot {
            buckets,
            sum: self.value(&format!("{name}_sum"), &[]).unwrap_or(0.0),
            count: self.value(&format!("{name}_count"), &[]).unwrap_or(0.0),
        })
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = line.get(..name_end)?.to_owned();
    let mut rest = line.get(name_end..)?;
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        // Label values are quoted with `\"`, `\\` and `\n` escapes.
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => break i,
                ',' | ' ' => {}
                '=' => {
                    let (_, quote) = chars.next()?;
                    if quote != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        };
        rest = inner.get(end + 1..)?;
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

// ---------------------------------------------------------------------------------------
// One replica

/// Longest wait for a replica to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How often waits on a replica look again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Log lines a replica keeps (the oldest are dropped beyond it): enough for a failure
/// message, bounded for the soak's long runs.
pub const MAX_LOG_LINES: usize = 20_000;

/// Timeout of the kit's own HTTP requests to a replica (`/metrics`, `/healthz`).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Set (to anything) to print every replica log line as it arrives, prefixed with the
/// replica's name: for debugging a failing test.
pub const ECHO_ENV: &str = "CHATD_TEST_REPLICA_ECHO";

/// The replicas' `CHATD_LOG` filter; [`DEFAULT_REPLICA_LOG`] when unset.
pub const LOG_ENV: &str = "CHATD_TEST_REPLICA_LOG";

/// The replicas' default log filter: the start line the kit waits for is at `info`.
pub const DEFAULT_REPLICA_LOG: &str = "info";

/// Prefixes of the variables a replica must not inherit from the test's environment.
pub const SCRUBBED_ENV_PREFIXES: &[&str] = &["CHATD_", "OPENAI_", "ANTHROPIC_", "NO_COLOR"];

/// How one replica is started: what the [`Cluster`] hands [`Replica::start`].
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// The replica's name in log echoes and failure messages, e.g. `r0`.
    pub name: String,
    /// The `chatd-server` binary.
    pub binary: PathBuf,
    /// `CHATD_DATABASE_URL`.
    pub database_url: String,
    /// `--database-schema`.
    pub schema: String,
    /// `CHATD_ENCRYPTION_KEY`.
    pub encryption_key: String,
    /// `CHATD_ADMIN_TOKEN`.
    pub admin_token: String,
    /// `OPENAI_API_KEY`: which replica called is told by it at the mock.
    pub openai_key: String,
    /// `OPENAI_BASE_URL`.
    pub openai_base_url: String,
    /// More `serve` arguments.
    pub args: Vec<String>,
    /// More environment variables.
    pub env: Vec<(String, String)>,
}

type Log = Arc<Mutex<VecDeque<String>>>;

/// A running `chatd-server serve` process. Dropping it kills it.
#[derive(Debug)]
pub struct Replica {
    name: String,
    base: String,
    openai_key: String,
    application_name: String,
    child: Child,
    log: Log,
    exited: Option<ExitStatus>,
    http: reqwest::Client,
}

impl Replica {
    /// Starts the process on `127.0.0.1:0` and waits until it listens (its log says the
    /// address). Panics with the log when it exits or does not listen within
    /// [`START_TIMEOUT`].
    pub async fn start(config: &ReplicaConfig) -> Replica {
        let mut command = Command::new(&config.binary);
        for (var, _) in std::env::vars_os() {
            let name = var.to_string_lossy();
            if SCRUBBED_ENV_PREFIXES.iter().any(|p| name.starts_with(p)) {
                command.env_remove(&var);
            }
        }
        let log_filter = std::env::var(LOG_ENV).unwrap_or_else(|_| DEFAULT_REPLICA_LOG.into());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database-schema"])
            .arg(&config.schema)
            .args(&config.args)
            .env("CHATD_DATABASE_URL", &config.database_url)
            .env("CHATD_ENCRYPTION_KEY", &config.encryption_key)
            .env("CHATD_ADMIN_TOKEN", &config.admin_token)
            .env("OPENAI_API_KEY", &config.openai_key)
            .env("OPENAI_BASE_URL", &config.openai_base_url)
            .env("CHATD_LOG", log_filter)
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", config.binary.display()));
        let log: Log = Arc::new(Mutex::new(VecDeque::new()));
        let echo = std::env::var_os(ECHO_ENV).is_some();
        if let Some(out) = child.stdout.take() {
            collect(out, log.clone(), format!("{} stdout", config.name), echo);
        }
        if let Some(err) = child.stderr.take() {
            collect(err, log.clone(), config.name.clone(), echo);
        }
        let mut replica = Replica {
            name: config.name.clone(),
            base: String::new(),
            openai_key: config.openai_key.clone(),
            application_name: application_name_of(&config.database_url).unwrap_or_default(),
            child,
            log,
            exited: None,
            http: reqwest::Client::builder()
                .timeout(HTTP_TIMEOUT)
                .build()
                .expect("an HTTP client for the replica"),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let listening = lock(&replica.log)
                .iter()
                .find(|l| l.contains("chatd-server listening"))
                .cloned();
            if let Some(line) = listening {
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("listen="))
                    .unwrap_or_else(|| panic!("no address in {line:?}"));
                replica.base = format!("http://{addr}");
                return replica;
            }
            if let Some(status) = replica.try_wait() {
                panic!(
                    "replica {} exited ({status}) before listening:\n{}",
                    replica.name,
                    replica.log_tail(usize::MAX)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "replica {} did not listen within {START_TIMEOUT:?}:\n{}",
                    replica.name,
                    replica.log_tail(usize::MAX)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The replica's name (`r0`, `r1`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The OpenAI key this replica calls the provider with (see [`CallStats::keys`]).
    pub fn openai_key(&self) -> &str {
        &self.openai_key
    }

    /// The `application_name` of the replica's PostgreSQL connections (one per replica,
    /// so a test can find them in `pg_stat_activity`).
    pub fn application_name(&self) -> &str {
        &self.application_name
    }

    /// A typed client of this replica with `token`.
    pub fn client(&self, token: &str) -> Client {
        Client::new(&self.base, token).expect("a client for the replica")
    }

    /// SIGKILL, then reaps the process. Nothing of the replica runs afterwards.
    pub fn kill(&mut self) {
        if self.exited.is_some() {
            return;
        }
        // An error means it is gone already; the wait below reaps it either way.
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.exited = Some(status);
        }
    }

    /// SIGTERM (the graceful shutdown); [`Replica::wait`] for the exit.
    pub fn terminate(&self) {
        // std has no portable SIGTERM and the workspace forbids `unsafe` (libc::kill):
        // kill(1) sends it.
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("run kill -TERM for replica {}: {e}", self.name));
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// The exit status, without waiting; `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Waits up to `timeout` for the process to exit; `None` when it still runs.
    pub async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// `GET /metrics`, parsed.
    pub async fn metrics(&self) -> MetricsText {
        let url = format!("{}/metrics", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} on replica {}: {e}", self.name));
        assert!(
            response.status().is_success(),
            "GET {url} on replica {}: {}",
            self.name,
            response.status()
        );
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("read {url}: {e}"));
        MetricsText::parse(&text)
    }

    /// The status of `GET /healthz`; `None` when the request fails (not listening).
    pub async fn healthz(&self) -> Option<u16> {
        self.http
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// Every log line kept so far (stdout lines are prefixed with `stdout:`).
    pub fn log_lines(&self) -> Vec<String> {
        lock(&self.log).iter().cloned().collect()
    }

    /// The log lines kept that contain `needle` (searched in place: cheaper than
    /// [`Replica::log_lines`] for a test that looks often).
    pub fn log_lines_containing(&self, needle: &str) -> Vec<String> {
        lock(&self.log)
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// The last `n` log lines, one per line, for a failure message.
    pub fn log_tail(&self, n: usize) -> String {
        let log = lock(&self.log);
        let skip = log.len().saturating_sub(n);
        log.iter()
            .skip(skip)
            .map(|l| format!("[{}] {l}", self.name))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Replica {
    /// A failing test leaves no process behind.
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `pipe` line by line into `log` until it closes (the process exited).
fn collect(pipe: impl Read + Send + 'static, log: Log, name: String, echo: bool) {
    let stdout = name.ends_with("stdout");
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            line.clear();
            if echo {
                eprintln!("[{name}] {text}");
            }
            let text = if stdout {
                format!("stdout: {text}")
            } else {
                text
            };
            let mut log = lock(&log);
            if log.len() >= MAX_LOG_LINES {
                log.pop_front();
            }
            log.push_back(text);
        }
    });
}

/// The `application_name` query parameter of a PostgreSQL URL.
fn application_name_of(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("application_name="))
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------------
// The cluster

/// The admin token every replica of a cluster is given.
pub const CLUSTER_ADMIN_TOKEN: &str = "chatd_replicas_test_admin_token";

/// The id of the cluster's encryption key.
pub const CLUSTER_KEY_ID: &str = "k1";

/// How a [`Cluster`] is set up.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    binary: PathBuf,
    chunks: usize,
    chunk_delay: Duration,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ClusterOptions {
    /// A cluster of `binary` (an integration test has it as
    /// `env!("CARGO_BIN_EXE_chatd-server")`), with [`DEFAULT_REPLY_CHUNKS`]-chunk replies
    /// sent at once and no extra arguments.
    pub fn new(binary: impl Into<PathBuf>) -> ClusterOptions {
        ClusterOptions {
            binary: binary.into(),
            chunks: DEFAULT_REPLY_CHUNKS,
            chunk_delay: Duration::ZERO,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The mock's default pause between chunks.
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// The mock's default chunks per reply.
    pub fn chunks(mut self, chunks: usize) -> Self {
        self.chunks = chunks;
        self
    }

    /// An environment variable every replica gets: a setting a test may still override
    /// with its flag for one replica (clap refuses a flag given twice, but a flag wins
    /// over its variable).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `serve` arguments every replica gets (before those of [`Cluster::replica_with`]).
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self
    }
}

/// A user of the cluster with an API token.
#[derive(Debug, Clone)]
pub struct ClusterUser {
    /// The username.
    pub username: String,
    /// Its token.
    pub token: String,
}

impl ClusterUser {
    /// A typed client of `replica` as this user.
    pub fn client(&self, replica: &Replica) -> Client {
        replica.client(&self.token)
    }
}

/// A fresh PostgreSQL schema for replicas, the mock provider they call, and what they
/// share (encryption key, admin token). The first replica started configures the OpenAI
/// provider (no stored key: each replica's own `OPENAI_API_KEY`) and a default model
/// config through the admin API. Dropping the cluster drops the schema: drop (or kill) the
/// replicas first, which declaring them after the cluster does.
#[derive(Debug)]
pub struct Cluster {
    /// The mock provider.
    pub mock: MockOpenAi,
    db: TestDatabase,
    base_url: String,
    options: ClusterOptions,
    encryption_key: String,
    next: AtomicUsize,
    configured: AtomicBool,
}

impl Cluster {
    /// A new schema and mock; `None` (with a note on stderr) when [`DATABASE_URL_ENV`] is
    /// unset, so a PostgreSQL-only test can return early.
    pub async fn start(options: ClusterOptions) -> Option<Cluster> {
        let Some(base_url) = postgres_url() else {
            eprintln!("skipped: the replica tests need PostgreSQL ({DATABASE_URL_ENV} is unset)");
            return None;
        };
        let db = TestDatabase::postgres(&base_url).await;
        let mock = MockOpenAi::with_chunks(options.chunks, options.chunk_delay).await;
        let key = SecretKey::generate().expect("generate the cluster's encryption key");
        let encryption_key = format!("{CLUSTER_KEY_ID}={}", key.to_base64().as_str());
        Some(Cluster {
            mock,
            db,
            base_url,
            options,
            encryption_key,
            next: AtomicUsize::new(0),
            configured: AtomicBool::new(false),
        })
    }

    /// The schema the replicas share.
    pub fn schema(&self) -> &str {
        self.db.schema().unwrap_or_default()
    }

    /// The test database (its raw pool reads the schema directly).
    pub fn database(&self) -> &TestDatabase {
        &self.db
    }

    /// A small pool on the schema for SQL the test runs itself.
    pub async fn raw_pool(&self) -> AnyPool {
        self.db.raw_pool().await
    }

    /// The admin's token on every replica.
    pub fn admin_token(&self) -> &str {
        CLUSTER_ADMIN_TOKEN
    }

    /// The admin's client on `replica`.
    pub fn admin(&self, replica: &Replica) -> Client {
        replica.client(CLUSTER_ADMIN_TOKEN)
    }

    /// How the next replica would be started (with `extra` arguments), for a caller that
    /// starts it itself.
    pub fn replica_config(&self, extra: &[&str]) -> ReplicaConfig {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("r{index}");
        let separator = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        // A connection name per replica (PostgreSQL keeps 63 bytes; the schema name is 43).
        let database_url = format!(
            "{}{separator}application_name={}_{name}",
            self.base_url,
            self.schema()
        );
        let mut args = self.options.args.clone();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        ReplicaConfig {
            openai_key: format!("sk-replica-{name}"),
            name,
            binary: self.options.binary.clone(),
            database_url,
            schema: self.schema().to_owned(),
            encryption_key: self.encryption_key.clone(),
            admin_token: CLUSTER_ADMIN_TOKEN.to_owned(),
            openai_base_url: self.mock.url(),
            args,
            env: self.options.env.clone(),
        }
    }

    /// Starts a replica with the cluster's arguments.
    pub async fn replica(&self) -> Replica {
        self.replica_with(&[]).await
    }

    /// Starts a replica with the cluster's arguments and `extra`; the first one configures
    /// the provider and the default model.
    pub async fn replica_with(&self, extra: &[&str]) -> Replica {
        let replica = Replica::start(&self.replica_config(extra)).await;
        if !self.configured.swap(true, Ordering::SeqCst) {
            self.configure(&replica).await;
        }
        replica
    }

    /// Starts `n` replicas one after the other (the first migrates the schema; starting
    /// them together would race on it).
    pub async fn replicas(&self, n: usize) -> Vec<Replica> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.replica().await);
        }
        out
    }

    /// The OpenAI provider without a stored key or base URL (each replica's environment
    /// supplies them), and the default model on Chat Completions.
    async fn configure(&self, replica: &Replica) {
        let admin = self.admin(replica);
        admin
            .create_chat_provider(&CreateChatProviderConfigRequest {
                provider: "openai".into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "configure the OpenAI provider: {e}\n{}",
                    replica.log_tail(50)
                )
            });
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
            .unwrap_or_else(|e| {
                panic!("configure the default model: {e}\n{}", replica.log_tail(50))
            });
    }

    /// A new member user with a token, created through `replica`.
    pub async fn user(&self, replica: &Replica, username: &str) -> ClusterUser {
        let admin = self.admin(replica);
        admin
            .create_user(&CreateUserRequest {
                username: username.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("create the user {username}: {e}"));
        let token = admin
            .create_token(username)
            .await
            .unwrap_or_else(|e| panic!("create a token for {username}: {e}"));
        ClusterUser {
            username: username.into(),
            token: token.key.expose().to_owned(),
        }
    }

    /// Ends `replica`'s LISTEN connection (`pg_terminate_backend`), as a network failure or
    /// a database restart would; returns how many connections were ended (0 when it has
    /// none yet).
    pub async fn terminate_listen_connection(&self, replica: &Replica) -> i64 {
        let pool = self.raw_pool().await;
        let ended: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN%' AND application_name = $1",
        )
        .bind(replica.application_name())
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("terminate the LISTEN connection of {}: {e}", replica.name));
        pool.close().await;
        ended
    }
}
