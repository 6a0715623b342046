//! A local HTTP server standing in for a model provider: it answers each request with the
//! next queued [`Reply`] (a recorded stream from `testdata/`, optionally re-chunked, or any
//! canned answer) and records every request it receives.
//!
//! A [`Responder`] may answer some requests aside without taking a queued reply — the
//! engine's automatic title requests, for instance, which would otherwise consume a
//! recording meant for a turn.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;

/// The status a [`ReplayServer`] answers with when no reply is queued (and no responder
/// answered): a test that sends more requests than it queued fails visibly.
pub const EXHAUSTED_STATUS: u16 = 404;

/// The largest chunk [`chunk`] cuts at random.
pub const MAX_RANDOM_CHUNK: usize = 64;

/// A tiny deterministic PRNG (xorshift) so chunkings are reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is taken as 1: xorshift never leaves 0).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let n = u64::try_from(n.max(1)).unwrap_or(u64::MAX);
        usize::try_from(self.0 % n).unwrap_or(0)
    }
}

/// Splits `body` into chunks: `None` = whole, `Some(0)` = random sizes
/// 1..=[`MAX_RANDOM_CHUNK`] from `seed`, `Some(n)` = fixed size `n`.
pub fn chunk(body: &[u8], size: Option<usize>, seed: u64) -> Vec<Vec<u8>> {
    match size {
        None => vec![body.to_vec()],
        Some(0) => {
            let mut rng = Rng::new(seed);
            let mut out = Vec::new();
            let mut rest = body;
            while !rest.is_empty() {
                let n = (1 + rng.below(MAX_RANDOM_CHUNK)).min(rest.len());
                let (head, tail) = rest.split_at(n);
                out.push(head.to_vec());
                rest = tail;
            }
            out
        }
        Some(n) => body.chunks(n.max(1)).map(<[u8]>::to_vec).collect(),
    }
}

/// One canned HTTP answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Response headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body, sent one chunk at a time.
    pub chunks: Vec<Vec<u8>>,
    /// Wait this long before sending the first body byte (startup-timeout tests).
    pub delay_first_byte: Duration,
}

impl Reply {
    /// A 200 SSE response with the body in the given chunks.
    pub fn sse(chunks: Vec<Vec<u8>>) -> Self {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks,
            delay_first_byte: Duration::ZERO,
        }
    }

    /// A response with a status, headers and a body.
    pub fn status(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        Reply {
            status,
            headers,
            chunks: vec![body],
            delay_first_byte: Duration::ZERO,
        }
    }

    /// The recorded stream `testdata/streams/<name>` as the provider sent it, whole (see
    /// [`crate::fixtures::stream_body`]).
    #[cfg(feature = "fixtures")]
    pub fn recorded(name: &str) -> Self {
        Reply::sse(vec![crate::fixtures::stream_body(name)])
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The method, e.g. `POST`.
    pub method: String,
    /// The path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// The headers, in order (values that are not text are empty).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json_or_null(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// Answers a request aside, before the queue is consulted: `Some` is sent and the queue
/// is left alone. The request is recorded either way.
pub type Responder = dyn Fn(&Recorded) -> Option<Reply> + Send + Sync;

struct Shared {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    responder: Option<Box<Responder>>,
}

/// Locks `mutex`, taking the data of a poisoned one: a panic elsewhere already fails the
/// test, and the recorded requests must stay readable for the assertion that reports it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A local server answering every request with the next queued [`Reply`]
/// ([`EXHAUSTED_STATUS`] when none is left). It stops when dropped.
pub struct ReplayServer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ReplayServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ReplayServer {
    /// Starts a server that answers with `replies`, in order.
    pub async fn start(replies: Vec<Reply>) -> Self {
        ReplayServer::spawn(replies, None).await
    }

    /// Starts a server that offers each request to `responder` first, then answers with
    /// `replies` in order.
    pub async fn start_with_responder(
        replies: Vec<Reply>,
        responder: impl Fn(&Recorded) -> Option<Reply> + Send + Sync + 'static,
    ) -> Self {
        ReplayServer::spawn(replies, Some(Box::new(responder))).await
    }

    /// Starts a server that answers the recorded streams `testdata/streams/<name>`, one per
    /// request, in order.
    #[cfg(feature = "fixtures")]
    pub async fn recorded(names: &[&str]) -> Self {
        ReplayServer::start(names.iter().map(|name| Reply::recorded(name)).collect()).await
    }

    async fn spawn(replies: Vec<Reply>, responder: Option<Box<Responder>>) -> Self {
        let shared = Arc::new(Shared {
            replies: Mutex::new(replies.into()),
            requests: Mutex::new(Vec::new()),
            responder,
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the replay server to a local port");
        let addr = listener
            .local_addr()
            .expect("the replay server's local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ReplayServer {
            base_url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// `base_url` + `path`, e.g. `url("/v1")` for an OpenAI base URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Queues one more reply.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.replies).push_back(reply);
    }

    /// Requests received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
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
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: body.to_vec(),
    };
    let aside = shared
        .responder
        .as_ref()
        .and_then(|responder| responder(&recorded));
    lock(&shared.requests).push(recorded);
    let reply = aside.or_else(|| lock(&shared.replies).pop_front());
    let Some(reply) = reply else {
        let mut response = Response::new(Body::from("no reply queued"));
        *response.status_mut() =
            StatusCode::from_u16(EXHAUSTED_STATUS).unwrap_or(StatusCode::NOT_FOUND);
        return response;
    };
    let delay = reply.delay_first_byte;
    let stream = futures_util::stream::unfold(
        (0usize, reply.chunks, delay),
        |(i, chunks, delay)| async move {
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
        },
    );
    let mut builder = Response::builder().status(reply.status);
    for (n, v) in &reply.headers {
        builder = builder.header(n.as_str(), v.as_str());
    }
    builder
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| panic!("a queued reply is not a valid response: {e}"))
}
