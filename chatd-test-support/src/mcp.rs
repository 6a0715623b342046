//! MCP servers for the MCP client's tests.
//!
//! - [`Everything`]: the MCP project's reference server `@modelcontextprotocol/server-everything`
//!   (a real third-party server, pinned in `mcp-everything/package.json`; `npm ci` there, which
//!   `scripts/test.sh` and `.ci/run` do), over streamable HTTP or legacy SSE.
//! - [`HeaderProxy`]: forwards every request to another server and records the headers that
//!   reached it, so a test can assert what credentials were sent.
//! - [`ScriptedMcp`]: a minimal streamable-HTTP MCP server of our own that misbehaves on
//!   purpose (hangs, huge or malformed answers, odd tool lists) — what no well-behaved
//!   third-party server can be asked to do.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

/// How long a spawned server may take to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A free loopback port: bind, read, release.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// The transport [`Everything`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EverythingTransport {
    /// Streamable HTTP at `/mcp`.
    StreamableHttp,
    /// Legacy HTTP+SSE at `/sse`.
    Sse,
}

/// `@modelcontextprotocol/server-everything` in a child process, killed on drop.
#[derive(Debug)]
pub struct Everything {
    child: Child,
    port: u16,
    transport: EverythingTransport,
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Everything {
    /// The server's script (`node <script> stdio` speaks MCP over stdio). Panics with the
    /// fix when the npm package is not installed.
    pub fn script() -> PathBuf {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/mcp-everything"));
        let entry = dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        assert!(
            entry.exists(),
            "server-everything is not installed: run `npm ci` in {} (scripts/test.sh does)",
            dir.display()
        );
        entry
    }

    /// Starts the server and waits until it listens. Panics with the fix when the npm
    /// package is not installed.
    pub fn start(transport: EverythingTransport) -> Everything {
        let entry = Everything::script();
        let port = free_port();
        let mode = match transport {
            EverythingTransport::StreamableHttp => "streamableHttp",
            EverythingTransport::Sse => "sse",
        };
        let child = Command::new("node")
            .arg(&entry)
            .arg(mode)
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start node (is Node.js installed?): {e}"));
        let deadline = Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "server-everything did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Everything {
            child,
            port,
            transport,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The MCP endpoint: `/mcp` (streamable HTTP) or `/sse`.
    pub fn url(&self) -> String {
        match self.transport {
            EverythingTransport::StreamableHttp => format!("{}/mcp", self.origin()),
            EverythingTransport::Sse => format!("{}/sse", self.origin()),
        }
    }
}

/// One request a [`HeaderProxy`] or [`ScriptedMcp`] received.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// Headers as received.
    pub headers: HeaderMap,
    /// The JSON-RPC method of a POST body, when there is one.
    pub rpc_method: Option<String>,
}

/// A forwarding proxy on a random port that records each request's headers.
#[derive(Debug, Clone)]
pub struct HeaderProxy {
    origin: String,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

#[derive(Clone)]
struct ProxyState {
    target: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl HeaderProxy {
    /// Starts a proxy to `target_origin` (`http://host:port`).
    pub async fn start(target_origin: &str) -> HeaderProxy {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState {
            target: target_origin.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            seen: Arc::clone(&seen),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let origin = serve(app).await;
        HeaderProxy { origin, seen }
    }

    /// `http://127.0.0.1:<port>`; append the target's path.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.seen).clone()
    }
}

async fn forward(
    State(state): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    lock(&state.seen).push(SeenRequest {
        method: method.clone(),
        uri: path.to_owned(),
        headers: headers.clone(),
        rpc_method: rpc_method(&body),
    });
    let mut request = state
        .http
        .request(method, format!("{}{path}", state.target))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let upstream = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(format!("proxy: {e}")))
                .unwrap_or_default()
        }
    };
    let mut response = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(upstream.bytes_stream()))
        .unwrap_or_default()
}

fn rpc_method(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("method")?.as_str().map(str::to_owned)
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local addr: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// How a [`ScriptedMcp`] behaves.
#[derive(Debug, Clone)]
pub enum Script {
    /// Lists these tools (raw JSON objects) and answers every call with `result`.
    Tools {
        /// The `tools` array of `tools/list`.
        tools: Vec<Value>,
        /// The `result` of every `tools/call`.
        result: Value,
    },
    /// Never answers `initialize`.
    HangOnInitialize,
    /// Lists `tools`, and answers calls after `delay`.
    SlowCall {
        /// The `tools` array.
        tools: Vec<Value>,
        /// How long a call takes.
        delay: Duration,
    },
    /// Lists `tools`; a call's answer starts and then the connection breaks.
    CloseMidCall {
        /// The `tools` array.
        tools: Vec<Value>,
    },
    /// Lists `tools`; a call is answered with bytes that are not JSON-RPC.
    MalformedCall {
        /// The `tools` array.
        tools: Vec<Value>,
    },
    /// Lists `tools`; a call is answered with a text result of `bytes` bytes.
    HugeResult {
        /// The `tools` array.
        tools: Vec<Value>,
        /// Size of the text.
        bytes: usize,
    },
}

/// A tool definition for a [`Script`]: `name`, a description, an object schema.
pub fn tool_json(name: &str) -> Value {
    json!({
        "name": name,
        "description": format!("The {name} tool."),
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
    })
}

/// A scripted streamable-HTTP MCP server at `<origin>/mcp`.
#[derive(Debug, Clone)]
pub struct ScriptedMcp {
    origin: String,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

#[derive(Clone)]
struct ScriptState {
    script: Arc<Script>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl ScriptedMcp {
    /// Starts a server following `script`.
    pub async fn start(script: Script) -> ScriptedMcp {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = ScriptState {
            script: Arc::new(script),
            seen: Arc::clone(&seen),
        };
        let app = axum::Router::new().fallback(scripted).with_state(state);
        let origin = serve(app).await;
        ScriptedMcp { origin, seen }
    }

    /// The MCP endpoint.
    pub fn url(&self) -> String {
        format!("{}/mcp", self.origin)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.seen).clone()
    }

    /// How many `tools/call` requests arrived.
    pub fn calls(&self) -> usize {
        lock(&self.seen)
            .iter()
            .filter(|r| r.rpc_method.as_deref() == Some("tools/call"))
            .count()
    }

    /// How many `initialize` requests arrived (one per session opened).
    pub fn initializations(&self) -> usize {
        lock(&self.seen)
            .iter()
            .filter(|r| r.rpc_method.as_deref() == Some("initialize"))
            .count()
    }
}

const SESSION_ID: &str = "scripted-session";

fn json_response(value: &Value) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("mcp-session-id", SESSION_ID)
        .body(Body::from(value.to_string()))
        .unwrap_or_default()
}

async fn scripted(
    State(state): State<ScriptState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rpc: Option<Value> = serde_json::from_slice(&body).ok();
    let rpc_name = rpc
        .as_ref()
        .and_then(|v| v.get("method"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    lock(&state.seen).push(SeenRequest {
        method: method.clone(),
        uri: uri.to_string(),
        headers,
        rpc_method: rpc_name.clone(),
    });
    if method == Method::GET {
        // No server-initiated stream.
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    if method == Method::DELETE {
        return Response::builder()
            .status(StatusCode::OK)
            .body(Body::empty())
            .unwrap_or_default();
    }
    let Some(rpc) = rpc else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Body::empty())
            .unwrap_or_default();
    };
    let id = rpc.get("id").cloned();
    let Some(id) = id else {
        // A notification.
        return Response::builder()
            .status(StatusCode::ACCEPTED)
            .header("mcp-session-id", SESSION_ID)
            .body(Body::empty())
            .unwrap_or_default();
    };
    let script = &*state.script;
    let tools = match script {
        Script::Tools { tools, .. }
        | Script::SlowCall { tools, .. }
        | Script::CloseMidCall { tools }
        | Script::MalformedCall { tools }
        | Script::HugeResult { tools, .. } => tools.clone(),
        Script::HangOnInitialize => Vec::new(),
    };
    match rpc_name.as_deref() {
        Some("initialize") => {
            if matches!(script, Script::HangOnInitialize) {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            let version = rpc
                .pointer("/params/protocolVersion")
                .cloned()
                .unwrap_or_else(|| json!("2025-06-18"));
            json_response(&json!({
                "jsonrpc": "2.0", "id": id,
                "result": {
                    "protocolVersion": version,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "scripted", "version": "1"},
                },
            }))
        }
        Some("tools/list") => json_response(&json!({
            "jsonrpc": "2.0", "id": id, "result": {"tools": tools},
        })),
        Some("tools/call") => match script {
            Script::Tools { result, .. } => {
                json_response(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
            }
            Script::SlowCall { delay, .. } => {
                tokio::time::sleep(*delay).await;
                json_response(&json!({
                    "jsonrpc": "2.0", "id": id,
                    "result": {"content": [{"type": "text", "text": "late"}]},
                }))
            }
            Script::CloseMidCall { .. } => {
                let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                    Ok(Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"id\":")),
                    Err(std::io::Error::other("connection dropped")),
                ];
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .header("mcp-session-id", SESSION_ID)
                    .body(Body::from_stream(futures_util::stream::iter(chunks)))
                    .unwrap_or_default()
            }
            Script::MalformedCall { .. } => Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("mcp-session-id", SESSION_ID)
                .body(Body::from("{\"jsonrpc\": \"2.0\", \"id\": oops"))
                .unwrap_or_default(),
            Script::HugeResult { bytes, .. } => json_response(&json!({
                "jsonrpc": "2.0", "id": id,
                "result": {"content": [{"type": "text", "text": "x".repeat(*bytes)}]},
            })),
            Script::HangOnInitialize => json_response(&json!({
                "jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no"},
            })),
        },
        Some("ping") => json_response(&json!({"jsonrpc": "2.0", "id": id, "result": {}})),
        _ => json_response(&json!({
            "jsonrpc": "2.0", "id": id,
            "error": {"code": -32601, "message": "method not found"},
        })),
    }
}

/// A header's value as text, if the request had it.
pub fn header(request: &SeenRequest, name: &str) -> Option<String> {
    request
        .headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_owned)
}
