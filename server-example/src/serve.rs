//! Serving connections with bounds: a cap on open connections, a header-read timeout
//! (which is also the keep-alive idle timeout of HTTP/1), an idle timeout for every
//! connection, a total deadline on reading a request body, a cap on header bytes, and
//! `TCP_NODELAY`. docs/hardening.md explains each setting and its default.
//!
//! `axum::serve` has none of these knobs, so a few thousand sockets that never send a
//! request exhaust the process's file descriptors. Here each accepted socket takes a
//! permit of [`ServeSettings::max_connections`]; at the cap, the oldest connection that has
//! no request in flight is closed to make room, so idle and slow-header clients can never
//! lock out a new one (a health check still answers while thousands of idle sockets are
//! open). A permit lives as long as the socket, WebSocket upgrades included.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Most connections open at once (WebSockets included). At the cap, the oldest connection
/// without a request in flight is closed for each new one.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// How long a client may take to send a request's headers, counted from the moment the
/// connection is open or idle; hyper closes the connection when it runs out. For HTTP/1
/// this is also the keep-alive idle timeout.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request in flight for this long is closed (HTTP/1 and HTTP/2).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long reading a whole request body may take, for every route but uploads.
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long reading a whole file upload may take (10 MiB at ~35 KB/s).
pub const DEFAULT_UPLOAD_BODY_TIMEOUT: Duration = Duration::from_secs(300);
/// Most bytes of a request's start line and headers (hyper's read buffer); larger heads
/// are refused with 431.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// hyper refuses a read buffer below this size.
pub const MIN_MAX_HEADER_BYTES: usize = 8192;
/// How long a graceful shutdown waits for in-flight requests.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause after `accept` fails (e.g. the process ran out of file descriptors), so the loop
/// does not spin while the condition lasts.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Connection limits and timeouts of [`serve`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeSettings {
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`DEFAULT_REQUEST_BODY_TIMEOUT`].
    pub request_body_timeout: Duration,
    /// See [`DEFAULT_UPLOAD_BODY_TIMEOUT`].
    pub upload_body_timeout: Duration,
    /// See [`DEFAULT_MAX_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// See [`DEFAULT_SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            request_body_timeout: DEFAULT_REQUEST_BODY_TIMEOUT,
            upload_body_timeout: DEFAULT_UPLOAD_BODY_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// A setting [`serve`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid serve setting {setting}: {reason}")]
pub struct InvalidSetting {
    /// The field.
    pub setting: &'static str,
    /// Why.
    pub reason: &'static str,
}

impl ServeSettings {
    /// Checks the settings: positive durations and counts, header bytes ≥ hyper's minimum.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let durations = [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("request_body_timeout", self.request_body_timeout),
            ("upload_body_timeout", self.upload_body_timeout),
        ];
        if let Some((setting, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return Err(InvalidSetting {
                setting,
                reason: "must be positive",
            });
        }
        if self.max_connections == 0 {
            return Err(InvalidSetting {
                setting: "max_connections",
                reason: "must be positive",
            });
        }
        if self.max_header_bytes < MIN_MAX_HEADER_BYTES {
            return Err(InvalidSetting {
                setting: "max_header_bytes",
                reason: "must be at least 8192",
            });
        }
        Ok(())
    }
}

/// Counters of a running [`serve`] loop (for tests, metrics and the benchmark).
#[derive(Debug, Default)]
pub struct ServeStats {
    open: AtomicUsize,
    accepted: AtomicU64,
    evicted: AtomicU64,
    accept_errors: AtomicU64,
}

impl ServeStats {
    /// Connections open now (WebSockets included).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
    /// Idle connections closed to make room at the cap.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
    /// `accept` failures (e.g. out of file descriptors).
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }
}

/// One open connection as the eviction scan sees it.
struct Conn {
    /// Requests whose handler has not returned yet.
    in_flight: AtomicUsize,
    /// Cancelled to close the connection (eviction or idle timeout).
    close: CancellationToken,
    /// Set by the first byte the client sends. Until then hyper's automatic HTTP/1-or-2
    /// detection is still reading the preface and its HTTP/1 header-read timer has not
    /// started, so the connection loop applies the header-read timeout itself.
    spoke: AtomicBool,
}

/// The open connections that may be evicted: a connection leaves the table when hyper is
/// done with it (after an upgrade its socket lives on in the WebSocket handler, which is
/// never evicted).
#[derive(Default)]
struct Table {
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Table {
    /// A new connection, closed by `parent` too (the server's stop token).
    fn insert(&self, parent: &CancellationToken) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            close: parent.child_token(),
            spoke: AtomicBool::new(false),
        });
        lock(&self.conns).insert(id, Arc::clone(&conn));
        (id, conn)
    }

    fn remove(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }

    /// Closes the oldest connection with no request in flight (ids grow with time).
    fn evict_oldest_idle(&self) -> bool {
        let victim = {
            let conns = lock(&self.conns);
            conns
                .iter()
                .filter(|(_, c)| {
                    c.in_flight.load(Ordering::Acquire) == 0 && !c.close.is_cancelled()
                })
                .min_by_key(|(id, _)| **id)
                .map(|(_, c)| Arc::clone(c))
        };
        match victim {
            Some(conn) => {
                conn.close.cancel();
                true
            }
            None => false,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A socket that holds its connection permit for as long as it is open.
struct CountedIo {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
    stats: Arc<ServeStats>,
    conn: Arc<Conn>,
}

impl Drop for CountedIo {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl tokio::io::AsyncRead for CountedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before && !self.conn.spoke.load(Ordering::Relaxed) {
            self.conn.spoke.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl tokio::io::AsyncWrite for CountedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A running server: its address, counters and a way to stop it.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    stats: Arc<ServeStats>,
    stop: CancellationToken,
}

impl ServerHandle {
    /// The counters.
    pub fn stats(&self) -> &ServeStats {
        &self.stats
    }
    /// Stops accepting, lets in-flight requests finish (up to the grace period), then
    /// closes what is left.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

/// Serves `app` on `listener` until `shutdown` completes (or [`ServerHandle::shutdown`]),
/// then drains: no new connections, idle ones closed at once, in-flight requests given
/// [`ServeSettings::shutdown_grace`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (handle, task) = spawn(listener, app, settings)?;
    let stop = handle.stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.cancel();
    });
    task.await.map_err(std::io::Error::other)
}

/// Starts serving in a background task; the handle stops it and reads its counters.
pub fn spawn(
    listener: TcpListener,
    app: Router,
    settings: ServeSettings,
) -> std::io::Result<(ServerHandle, tokio::task::JoinHandle<()>)> {
    settings
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let stats = Arc::new(ServeStats::default());
    let stop = CancellationToken::new();
    let handle = ServerHandle {
        stats: Arc::clone(&stats),
        stop: stop.clone(),
    };
    let app = app.layer(axum::middleware::from_fn_with_state(
        BodyDeadlines {
            default: settings.request_body_timeout,
            upload: settings.upload_body_timeout,
        },
        body_deadline,
    ));
    let task = tokio::spawn(accept_loop(listener, app, settings, stats, stop));
    Ok((handle, task))
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    settings: ServeSettings,
    stats: Arc<ServeStats>,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let table = Arc::new(Table::default());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let socket = match accepted {
            Ok((socket, _peer)) => socket,
            Err(e) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the cap: make room by closing the oldest idle connection, then wait
                // for its permit. When every connection is busy, this one waits (and the
                // ones behind it stay in the kernel's accept queue) until a request ends.
                if table.evict_oldest_idle() {
                    stats.evicted.fetch_add(1, Ordering::Relaxed);
                }
                let acquired = tokio::select! {
                    _ = stop.cancelled() => break,
                    p = Arc::clone(&permits).acquire_owned() => p,
                };
                match acquired {
                    Ok(permit) => permit,
                    Err(_) => break,
                }
            }
        };
        prepare_accepted(&socket);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let (id, conn) = table.insert(&stop);
        let io = CountedIo {
            io: socket,
            _permit: permit,
            stats: Arc::clone(&stats),
            conn: Arc::clone(&conn),
        };
        let service = ConnService {
            app: app.clone(),
            conn: Arc::clone(&conn),
        };
        let builder = Arc::clone(&builder);
        let table = Arc::clone(&table);
        let idle_timeout = settings.idle_timeout;
        let header_read_timeout = settings.header_read_timeout;
        tracker.spawn(async move {
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned();
            tokio::pin!(connection);
            let opened = tokio::time::Instant::now();
            let mut idle_since = opened;
            let mut closing = false;
            loop {
                // A client that has not sent a byte gets the header-read timeout from the
                // moment it connected; after that, hyper's timer and the idle timeout rule.
                let silent = !conn.spoke.load(Ordering::Relaxed);
                let idle_deadline = if silent {
                    opened + header_read_timeout.min(idle_timeout)
                } else {
                    idle_since + idle_timeout
                };
                tokio::select! {
                    _ = &mut connection => break,
                    _ = conn.close.cancelled(), if !closing => {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    _ = tokio::time::sleep_until(idle_deadline), if !closing => {
                        // Still silent, or idle since its last request: close. A client
                        // that spoke while the silent deadline ran gets a fresh idle period.
                        let still_silent = !conn.spoke.load(Ordering::Relaxed);
                        if conn.in_flight.load(Ordering::Acquire) == 0 && silent == still_silent {
                            closing = true;
                            connection.as_mut().graceful_shutdown();
                        } else {
                            idle_since = tokio::time::Instant::now();
                        }
                    }
                }
            }
            table.remove(id);
        });
    }
    // Stop accepting; `stop` (cancelled by now) asks every connection to close once its
    // in-flight requests are answered.
    drop(listener);
    tracker.close();
    if tokio::time::timeout(settings.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}

/// Sets up an accepted socket: `TCP_NODELAY`, so every response and stream frame leaves
/// when written. With Nagle's algorithm a small write waits for the ACK of the previous
/// one, which a client delaying its ACKs holds back for up to ~40 ms: a turn's second
/// stream frame would arrive that much late. Chat frames are small and latency matters
/// more than packet count. A failure (the peer already gone) is left to the first read.
pub fn prepare_accepted(socket: &TcpStream) {
    if let Err(e) = socket.set_nodelay(true) {
        tracing::debug!(error = %e, "setting TCP_NODELAY on an accepted socket failed");
    }
}

/// The app as hyper's per-connection service, counting the requests in flight.
#[derive(Clone)]
struct ConnService {
    app: Router,
    conn: Arc<Conn>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let app = self.app.clone();
        let guard = InFlight::new(Arc::clone(&self.conn));
        Box::pin(async move {
            let response = app.oneshot(req.map(Body::new)).await;
            drop(guard);
            response
        })
    }
}

/// Counts one request in flight on its connection until dropped (also when the request's
/// future is dropped mid-way).
struct InFlight(Arc<Conn>);

impl InFlight {
    fn new(conn: Arc<Conn>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The body deadlines by route class.
#[derive(Debug, Clone, Copy)]
struct BodyDeadlines {
    default: Duration,
    upload: Duration,
}

/// Whether a request uploads a file (`POST …/chats/files`), which gets the long deadline.
fn is_upload(req: &Request) -> bool {
    req.method() == axum::http::Method::POST && req.uri().path().ends_with("/chats/files")
}

async fn body_deadline(
    axum::extract::State(deadlines): axum::extract::State<BodyDeadlines>,
    req: Request,
    next: Next,
) -> Response {
    let timeout = if is_upload(&req) {
        deadlines.upload
    } else {
        deadlines.default
    };
    let (parts, body) = req.into_parts();
    let body = Body::new(DeadlineBody::new(body, timeout));
    next.run(Request::from_parts(parts, body)).await
}

/// The error a request body yields when its deadline passes before its end; the JSON
/// extractors turn it into a 408 answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body was not received within {0:?}")]
pub struct BodyDeadlineExceeded(pub Duration);

/// A body that fails once its total deadline has passed. tower-http's `TimeoutBody` bounds
/// only the time between two frames, so a client dripping one byte per interval would
/// hold the request open for ever; this one bounds the whole read.
struct DeadlineBody {
    inner: Body,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Body, timeout: Duration) -> Self {
        DeadlineBody {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.inner.is_end_stream() {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let timeout = self.timeout;
            return Poll::Ready(Some(Err(Box::new(BodyDeadlineExceeded(timeout)))));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(axum::BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `err` (a body or extraction error) comes from a body deadline.
pub fn is_body_deadline(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<BodyDeadlineExceeded>() {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_values_are_refused() {
        assert_eq!(ServeSettings::default().validate(), Ok(()));
        let refused = |s: ServeSettings| s.validate().err().map(|e| e.setting);
        assert_eq!(
            refused(ServeSettings {
                max_connections: 0,
                ..Default::default()
            }),
            Some("max_connections")
        );
        assert_eq!(
            refused(ServeSettings {
                header_read_timeout: Duration::ZERO,
                ..Default::default()
            }),
            Some("header_read_timeout")
        );
        assert_eq!(
            refused(ServeSettings {
                max_header_bytes: MIN_MAX_HEADER_BYTES - 1,
                ..Default::default()
            }),
            Some("max_header_bytes")
        );
        assert_eq!(
            refused(ServeSettings {
                max_header_bytes: MIN_MAX_HEADER_BYTES,
                ..Default::default()
            }),
            None
        );
    }

    #[tokio::test]
    async fn accepted_sockets_get_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (socket, _) = listener.accept().await.unwrap();
        // Off by default, so the check below shows the function's work.
        assert!(!socket.nodelay().unwrap());
        prepare_accepted(&socket);
        assert!(socket.nodelay().unwrap());
    }

    #[test]
    fn upload_route_is_recognised() {
        let up = Request::post("/api/experimental/chats/files")
            .body(Body::empty())
            .unwrap();
        assert!(is_upload(&up));
        let get = Request::get("/api/experimental/chats/files")
            .body(Body::empty())
            .unwrap();
        assert!(!is_upload(&get));
        let other = Request::post("/api/experimental/chats")
            .body(Body::empty())
            .unwrap();
        assert!(!is_upload(&other));
    }
}
