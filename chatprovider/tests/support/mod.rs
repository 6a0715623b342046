//! Test support for the streaming clients: a local HTTP server that replays recorded
//! provider responses (optionally re-chunked) and records the requests it receives, plus
//! loaders for the shared fixtures.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use chatprovider::sse::{SseDecoder, SseEvent};
use chatprovider::{StreamDecoder, StreamPart};

/// The recorded fixtures in `testdata/` at the repository root.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata"))
}

/// Raw bytes of a fixture file (path relative to `fixtures/`).
pub fn fixture_bytes(rel: &str) -> Vec<u8> {
    let path = fixtures_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A stream fixture as the SSE body the provider sent. `.sse` files are returned as-is;
/// `.jsonl` recordings are replayed as the fixtures README says: `data: <line>\n\n` per
/// line, with an `event: <type>` line first for Anthropic and OpenAI Responses, and a final
/// `data: [DONE]` for Chat Completions.
pub fn stream_body(name: &str) -> Vec<u8> {
    let raw = fixture_bytes(&format!("streams/{name}"));
    if name.ends_with(".sse") {
        return raw;
    }
    let text = String::from_utf8(raw).expect("jsonl is UTF-8");
    let with_event = name.starts_with("anthropic-") || name.starts_with("openai-responses-");
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if with_event {
            let v: serde_json::Value = serde_json::from_str(line).expect("jsonl line is JSON");
            if let Some(t) = v.get("type").and_then(|t| t.as_str()) {
                out.push_str(&format!("event: {t}\n"));
            }
        }
        out.push_str(&format!("data: {line}\n\n"));
    }
    if !with_event {
        out.push_str("data: [DONE]\n\n");
    }
    out.into_bytes()
}

/// A tiny deterministic PRNG (xorshift) so chunkings are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// Splits `body` into chunks: `None` = whole, `Some(0)` = random sizes 1..=64 from `seed`,
/// `Some(n)` = fixed size `n`.
pub fn chunk(body: &[u8], size: Option<usize>, seed: u64) -> Vec<Vec<u8>> {
    match size {
        None => vec![body.to_vec()],
        Some(0) => {
            let mut rng = Rng::new(seed);
            let mut out = Vec::new();
            let mut i = 0;
            while i < body.len() {
                let n = 1 + rng.below(64);
                let end = (i + n).min(body.len());
                out.push(body[i..end].to_vec());
                i = end;
            }
            out
        }
        Some(n) => body.chunks(n.max(1)).map(<[u8]>::to_vec).collect(),
    }
}

/// Runs `decoder` over `body` delivered in `chunks`, exactly as the HTTP path does.
pub fn decode_chunked<D: StreamDecoder>(
    mut decoder: D,
    chunks: &[Vec<u8>],
) -> Result<Vec<StreamPart>, chaterror::ProviderError> {
    let mut sse = SseDecoder::default();
    let mut out = Vec::new();
    let mut events: Vec<SseEvent> = Vec::new();
    for c in chunks {
        sse.push(c, &mut events).unwrap();
        for e in events.drain(..) {
            if !decoder.is_done() {
                decoder.on_event(&e, &mut out)?;
            }
        }
    }
    sse.finish(&mut events).unwrap();
    for e in events.drain(..) {
        if !decoder.is_done() {
            decoder.on_event(&e, &mut out)?;
        }
    }
    decoder.on_end(&mut out)?;
    Ok(out)
}

/// One canned HTTP answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub chunks: Vec<Vec<u8>>,
    /// Wait this long before sending the first body byte (startup-timeout tests).
    pub delay_first_byte: std::time::Duration,
}

impl Reply {
    /// A 200 SSE response with the body in the given chunks.
    pub fn sse(chunks: Vec<Vec<u8>>) -> Self {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks,
            delay_first_byte: std::time::Duration::ZERO,
        }
    }

    /// A response with a status, headers and a body.
    pub fn status(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        Reply {
            status,
            headers,
            chunks: vec![body],
            delay_first_byte: std::time::Duration::ZERO,
        }
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

#[derive(Default)]
struct Shared {
    replies: Mutex<std::collections::VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
}

/// A local server answering every request with the next queued [`Reply`] (404 when none
/// is left).
pub struct ReplayServer {
    pub base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplayServer {
    pub async fn start(replies: Vec<Reply>) -> Self {
        let shared = Arc::new(Shared::default());
        shared.replies.lock().unwrap().extend(replies);
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ReplayServer {
            base_url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: body.to_vec(),
    });
    let reply = shared.replies.lock().unwrap().pop_front();
    let Some(reply) = reply else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("no reply queued"))
            .unwrap();
    };
    let delay = reply.delay_first_byte;
    let chunks = reply.chunks.clone();
    let stream =
        futures_util::stream::unfold((0usize, chunks, delay), |(i, chunks, delay)| async move {
            if i == 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let c = chunks.get(i)?.clone();
            // Give the client a chance to read each chunk separately.
            tokio::task::yield_now().await;
            Some((
                Ok::<_, std::io::Error>(Bytes::from(c)),
                (i + 1, chunks, delay),
            ))
        });
    let mut builder = Response::builder().status(reply.status);
    for (n, v) in &reply.headers {
        builder = builder.header(n.as_str(), v.as_str());
    }
    builder.body(Body::from_stream(stream)).unwrap()
}
