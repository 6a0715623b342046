//! Observability: Prometheus metrics served at `GET /metrics`, and a tracing span per HTTP
//! request.
//!
//! The metric names are those of Coder's chat scale test, so its dashboards and alerts work
//! unchanged:
//!
//! | Metric | Type | What it measures |
//! |---|---|---|
//! | `chat_create_latency_seconds` | histogram | the `POST /chats` handler ([`Metrics::observe_create`]) |
//! | `chat_message_latency_seconds` | histogram | the `POST /chats/{chat}/messages` handler ([`Metrics::observe_message`]) |
//! | `chat_time_to_running_seconds` | histogram | request start → the turn's `running` status ([`Metrics::track_turn`]) |
//! | `chat_time_to_first_output_seconds` | histogram | request start → the turn's first `message_part` |
//! | `chat_time_to_terminal_status_seconds` | histogram | request start → `waiting`, `error` or `requires_action` |
//! | `chat_retry_events_total` | counter | `retry` stream events of tracked turns |
//! | `active_chat_streams` | gauge | open per-chat stream WebSockets |
//!
//! Everything is kept in atomics; the exposition text is written here (no metrics crate).
//! See docs/server-streams.md for the design decisions.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response as HttpResponse};
use chatd_core::Engine;
use codersdk::{ChatStatus, ChatStreamEventType, Uuid};
use tracing::Instrument;

use crate::state::AppState;

/// Upper bounds (seconds) of the latency histograms' buckets: 5 ms to 10 min, so both HTTP
/// handler latencies and whole turns land in a finite bucket.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Default most turns [`Metrics::track_turn`] follows at once; beyond it new turns are not
/// tracked (their time-to-* histograms and retries are not recorded) rather than holding
/// an unbounded number of hub subscriptions.
pub const DEFAULT_MAX_TRACKED_TURNS: usize = 10_000;

/// Default longest time [`Metrics::track_turn`] follows one turn; a turn still going after
/// it records nothing more (no terminal-status observation).
pub const DEFAULT_TURN_TRACKING_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// `Content-Type` of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The server's metrics. Cheap to clone: clones share the values.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    create_latency: Histogram,
    message_latency: Histogram,
    time_to_running: Histogram,
    time_to_first_output: Histogram,
    time_to_terminal: Histogram,
    retry_events: AtomicU64,
    active_streams: AtomicI64,
    tracked_turns: AtomicUsize,
    max_tracked_turns: usize,
    tracking_timeout: Duration,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_limits(DEFAULT_MAX_TRACKED_TURNS, DEFAULT_TURN_TRACKING_TIMEOUT)
    }
}

impl Metrics {
    /// Metrics whose turn tracking follows at most `max_tracked_turns` turns at once, each
    /// for at most `tracking_timeout`. [`Metrics::default`] uses
    /// [`DEFAULT_MAX_TRACKED_TURNS`] and [`DEFAULT_TURN_TRACKING_TIMEOUT`].
    pub fn with_limits(max_tracked_turns: usize, tracking_timeout: Duration) -> Self {
        Metrics {
            inner: Arc::new(Inner {
                create_latency: Histogram::new(),
                message_latency: Histogram::new(),
                time_to_running: Histogram::new(),
                time_to_first_output: Histogram::new(),
                time_to_terminal: Histogram::new(),
                retry_events: AtomicU64::new(0),
                active_streams: AtomicI64::new(0),
                tracked_turns: AtomicUsize::new(0),
                max_tracked_turns,
                tracking_timeout,
            }),
        }
    }

    /// Records how long a `POST /chats` handler took (`chat_create_latency_seconds`).
    pub fn observe_create(&self, elapsed: Duration) {
        self.inner.create_latency.observe(elapsed);
    }

    /// Records how long a `POST /chats/{chat}/messages` handler took
    /// (`chat_message_latency_seconds`).
    pub fn observe_message(&self, elapsed: Duration) {
        self.inner.message_latency.observe(elapsed);
    }

    /// Follows the turn a request just started on `chat_id` and records, measured from
    /// `started_at` (when the request arrived), the time to `running`, to the first
    /// `message_part` and to a terminal status (`waiting`, `error`, `requires_action`),
    /// counting the turn's `retry` events.
    ///
    /// Call it after a successful create, a send that was not queued, a tool-results
    /// submission or an edit. It subscribes to the chat's hub topic before returning and
    /// follows it on a small task (never blocking the engine: a tracker that falls behind is
    /// dropped by the hub like any slow subscriber). A turn that got further than
    /// `running` before the subscription (possible only when the worker claims the chat
    /// between the commit and this call) is observed late, giving an upper bound. At most
    /// [`DEFAULT_MAX_TRACKED_TURNS`] turns are followed at once, each for at most
    /// [`DEFAULT_TURN_TRACKING_TIMEOUT`]. Must be called within a Tokio runtime (any
    /// handler is).
    pub fn track_turn(&self, engine: &Engine, chat_id: Uuid, started_at: Instant) {
        let Some(slot) = TrackingSlot::take(&self.inner) else {
            tracing::debug!(%chat_id, "turn tracking limit reached; turn not tracked");
            return;
        };
        let subscription = match engine.hub().subscribe(chat_id) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%chat_id, error = %e, "cannot follow turn for metrics");
                return;
            }
        };
        let (_, mut live) = subscription.into_parts();
        let engine = engine.clone();
        let inner = Arc::clone(&self.inner);
        let timeout = self.inner.tracking_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let follow = async {
                let mut turn = TurnObservation::new(&inner, started_at);
                // Subscribed first, read second: a status committed before the subscription
                // is seen here, one committed after arrives as an event.
                if let Ok(Some(status)) = engine.chat_status(chat_id).await {
                    if turn.status(&status) {
                        return;
                    }
                }
                loop {
                    // Lagged or closed: stop following rather than guess.
                    let Ok(event) = live.recv().await else {
                        return;
                    };
                    let done = match &event.event_type {
                        ChatStreamEventType::Status => event
                            .status
                            .as_ref()
                            .is_some_and(|s| turn.status(&s.status)),
                        ChatStreamEventType::MessagePart => {
                            turn.output();
                            false
                        }
                        ChatStreamEventType::Retry => {
                            inner.retry_events.fetch_add(1, Ordering::Relaxed);
                            false
                        }
                        _ => false,
                    };
                    if done {
                        return;
                    }
                }
            };
            // A turn longer than the timeout simply stops being followed.
            let _ = tokio::time::timeout(timeout, follow).await;
        });
    }

    /// Marks one per-chat stream WebSocket open (`active_chat_streams`) until the returned
    /// guard is dropped.
    pub fn stream_opened(&self) -> StreamGuard {
        self.inner.active_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Open per-chat stream WebSockets.
    pub fn active_chat_streams(&self) -> i64 {
        self.inner.active_streams.load(Ordering::Relaxed)
    }

    /// `retry` events seen on tracked turns.
    pub fn retry_events(&self) -> u64 {
        self.inner.retry_events.load(Ordering::Relaxed)
    }

    /// Turns [`Metrics::track_turn`] is following right now.
    pub fn tracked_turns(&self) -> usize {
        self.inner.tracked_turns.load(Ordering::Relaxed)
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let inner = &self.inner;
        let mut out = String::with_capacity(4096);
        let histograms: [(&str, &str, &Histogram); 5] = [
            (
                "chat_create_latency_seconds",
                "Time the chat creation handler took.",
                &inner.create_latency,
            ),
            (
                "chat_message_latency_seconds",
                "Time the send-message handler took.",
                &inner.message_latency,
            ),
            (
                "chat_time_to_running_seconds",
                "Time from a create or send request to the turn's running status.",
                &inner.time_to_running,
            ),
            (
                "chat_time_to_first_output_seconds",
                "Time from a create or send request to the turn's first streamed part.",
                &inner.time_to_first_output,
            ),
            (
                "chat_time_to_terminal_status_seconds",
                "Time from a create or send request to waiting, error or requires_action.",
                &inner.time_to_terminal,
            ),
        ];
        for (name, help, histogram) in histograms {
            histogram.render(&mut out, name, help);
        }
        let _ = writeln!(
            out,
            "# HELP chat_retry_events_total Model call retries of tracked turns.\n\
             # TYPE chat_retry_events_total counter\n\
             chat_retry_events_total {}",
            inner.retry_events.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP active_chat_streams Open per-chat stream WebSockets.\n\
             # TYPE active_chat_streams gauge\n\
             active_chat_streams {}",
            inner.active_streams.load(Ordering::Relaxed)
        );
        out
    }
}

/// Keeps one stream counted in `active_chat_streams`; see [`Metrics::stream_opened`].
#[derive(Debug)]
pub struct StreamGuard {
    inner: Arc<Inner>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.inner.active_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One of the [`Inner::max_tracked_turns`] tracking slots, released on drop.
struct TrackingSlot {
    inner: Arc<Inner>,
}

impl TrackingSlot {
    fn take(inner: &Arc<Inner>) -> Option<TrackingSlot> {
        let taken = inner
            .tracked_turns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < inner.max_tracked_turns).then_some(n + 1)
            });
        taken.ok().map(|_| TrackingSlot {
            inner: Arc::clone(inner),
        })
    }
}

impl Drop for TrackingSlot {
    fn drop(&mut self) {
        self.inner.tracked_turns.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one tracked turn has shown so far; each milestone is recorded once.
struct TurnObservation<'a> {
    inner: &'a Inner,
    started_at: Instant,
    running: bool,
    output: bool,
}

impl<'a> TurnObservation<'a> {
    fn new(inner: &'a Inner, started_at: Instant) -> Self {
        TurnObservation {
            inner,
            started_at,
            running: false,
            output: false,
        }
    }

    fn running(&mut self) {
        if !self.running {
            self.running = true;
            self.inner
                .time_to_running
                .observe(self.started_at.elapsed());
        }
    }

    fn output(&mut self) {
        // Output implies the turn runs, even if its `running` event was missed.
        self.running();
        if !self.output {
            self.output = true;
            self.inner
                .time_to_first_output
                .observe(self.started_at.elapsed());
        }
    }

    /// Records a status; true when it ends the turn.
    fn status(&mut self, status: &ChatStatus) -> bool {
        match status {
            ChatStatus::Running => {
                self.running();
                false
            }
            ChatStatus::Waiting | ChatStatus::Error | ChatStatus::RequiresAction => {
                self.inner
                    .time_to_terminal
                    .observe(self.started_at.elapsed());
                true
            }
            // `pending` (not started yet, or restarted by an edit) and statuses from newer
            // peers: keep following.
            _ => false,
        }
    }
}

/// A histogram over [`LATENCY_BUCKETS`] in atomics.
#[derive(Debug)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last entry counts those above every
    /// bound.
    buckets: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: (0..=LATENCY_BUCKETS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = LATENCY_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        // The count is the sum of the buckets read here, so the cumulative buckets never
        // exceed it even while observations land concurrently.
        let mut cumulative = 0u64;
        for (le, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        if let Some(overflow) = self.buckets.last() {
            cumulative += overflow.load(Ordering::Relaxed);
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {cumulative}\n{name}_sum {sum}\n{name}_count {cumulative}"
        );
    }
}

/// `GET /metrics`: the Prometheus text. Unauthenticated, like Coder's Prometheus endpoint:
/// it carries only aggregate counts and latencies, no user data.
pub async fn serve(State(state): State<AppState>) -> HttpResponse {
    (
        [(CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        state.metrics().render(),
    )
        .into_response()
}

/// Middleware: one `request` span per HTTP request with the method, the route template
/// (`/api/experimental/chats/{chat}`, never the concrete path or query, which may carry a
/// `coder_session_token`), and once answered the status and latency. Headers and bodies
/// are never recorded.
pub async fn trace_request(request: Request, next: Next) -> HttpResponse {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    span.record("status", status);
    span.record("latency_ms", latency_ms);
    span.in_scope(|| tracing::debug!(status, latency_ms, "request answered"));
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_edges_inclusive() {
        let m = Metrics::default();
        // Exactly on a bound lands in that bound's bucket (Prometheus `le`).
        m.observe_create(Duration::from_millis(5));
        m.observe_create(Duration::from_millis(6));
        m.observe_create(Duration::from_secs(3600));
        let text = m.render();
        assert!(text.contains("chat_create_latency_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("chat_create_latency_seconds_bucket{le=\"0.01\"} 2\n"));
        assert!(text.contains("chat_create_latency_seconds_bucket{le=\"600\"} 2\n"));
        assert!(text.contains("chat_create_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("chat_create_latency_seconds_count 3\n"));
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("chat_create_latency_seconds_sum "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 3600.011).abs() < 1e-6, "{sum}");
        assert!(text.contains("chat_message_latency_seconds_count 0\n"));
    }

    #[test]
    fn stream_gauge_follows_guards() {
        let m = Metrics::default();
        let a = m.stream_opened();
        let b = m.stream_opened();
        assert_eq!(m.active_chat_streams(), 2);
        drop(a);
        assert!(m.render().contains("\nactive_chat_streams 1\n"));
        drop(b);
        assert_eq!(m.active_chat_streams(), 0);
    }

    #[test]
    fn tracking_slots_stop_at_the_limit() {
        let m = Metrics::with_limits(2, DEFAULT_TURN_TRACKING_TIMEOUT);
        let a = TrackingSlot::take(&m.inner).unwrap();
        let _b = TrackingSlot::take(&m.inner).unwrap();
        assert!(TrackingSlot::take(&m.inner).is_none());
        assert_eq!(m.tracked_turns(), 2);
        drop(a);
        assert!(TrackingSlot::take(&m.inner).is_some());
    }
}
