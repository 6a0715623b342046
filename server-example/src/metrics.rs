//! Observability: Prometheus metrics served at `GET /metrics`, and a tracing span per HTTP
//! request, both recorded by [`MetricsLayer`], a tower layer on the router.
//!
//! The metric names are those of Coder's chat scale test, so its dashboards and alerts work
//! unchanged:
//!
//! | Metric | Type | What it measures |
//! |---|---|---|
//! | `chat_create_latency_seconds` | histogram | successful `POST /chats` requests, arrival → answer ([`Observe::ChatCreate`]) |
//! | `chat_message_latency_seconds` | histogram | successful `POST /chats/{chat}/messages` requests ([`Observe::ChatMessage`]) |
//! | `chat_time_to_running_seconds` | histogram | request arrival → the turn's `running` status ([`Metrics::track_turn`]) |
//! | `chat_time_to_first_output_seconds` | histogram | request arrival → the turn's first `message_part` |
//! | `chat_time_to_terminal_status_seconds` | histogram | request arrival → `waiting`, `error` or `requires_action` |
//! | `chat_retry_events_total` | counter | `retry` stream events of tracked turns |
//! | `active_chat_streams` | gauge | open per-chat stream WebSockets |
//! | `chat_mcp_connect_seconds` | histogram | one MCP server's connect in a turn (a reused session counts near zero) ([`Metrics::observe_mcp_connect`]) |
//! | `chat_mcp_connects_total` | counter, label `outcome` | MCP server outcomes per turn: `connected`, `timeout`, `error`, `no_tools` |
//! | `chat_replica_running_chats` | gauge | turns this replica runs now |
//! | `chat_claims_total` | counter | chats this replica claimed |
//! | `chat_recoveries_total` | counter, label `cause` | chats of others this replica handed back to `pending`: `stale` (heartbeat too old), `dead_replica` (its liveness lock was free) |
//! | `chat_relay_lag_seconds` | histogram | another replica's relay batch: sent → received here (PostgreSQL) |
//! | `chat_notification_reconnects_total` | counter | times the `LISTEN` connection was lost and re-established (PostgreSQL) |
//! | `chat_config_changes_total` | counter | configuration changes announced by any replica |
//! | `chat_retention_sweeps_total` | counter | retention sweeps this replica ran (docs/retention.md) |
//! | `chat_retention_last_sweep_timestamp_seconds` | gauge | when this replica's last retention sweep started (Unix seconds, by the engine's clock) |
//! | `chat_retention_last_sweep_duration_seconds` | gauge | how long that sweep took |
//! | `chat_retention_archived_chats_total` | counter | chats the sweeps archived automatically (roots and sub-agents) |
//! | `chat_retention_purged_chats_total` | counter | archived chats the sweeps purged |
//! | `chat_retention_purged_debug_runs_total` | counter | debug runs the sweeps purged (docs/debug-runs.md) |
//! | `chat_retention_purged_files_total` | counter | unlinked files the sweeps purged |
//! | `chat_retention_purged_ai_gateway_interceptions_total` | counter | AI Gateway interception records the sweeps purged (docs/ai-gateway-records.md "Retention") |
//! | `chat_retention_failed_steps_total` | counter | sweep steps that failed (logged) |
//!
//! The values live in a `prometheus-client` registry per [`Metrics`] (no global state, so
//! several servers in one process keep their own), exposed in the OpenMetrics text format.
//! See docs/server-streams.md for the design decisions.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{Request, Response};
use axum::response::{IntoResponse, Response as HttpResponse};
use chatd_core::Engine;
use codersdk::{ChatStatus, ChatStreamEventType, Uuid};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use crate::state::AppState;

/// Upper bounds (seconds) of the latency histograms' buckets: 5 ms to 10 min, so both HTTP
/// handler latencies and whole turns land in a finite bucket.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Upper bounds (seconds) of `chat_relay_lag_seconds`: 100 µs to 10 s, since a relay batch
/// normally arrives within milliseconds.
pub const RELAY_LAG_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Default most turns [`Metrics::track_turn`] follows at once; beyond it new turns are not
/// tracked (their time-to-* histograms and retries are not recorded) rather than holding
/// an unbounded number of hub subscriptions.
pub const DEFAULT_MAX_TRACKED_TURNS: usize = 10_000;

/// Default longest time [`Metrics::track_turn`] follows one turn; a turn still going after
/// it records nothing more (no terminal-status observation).
pub const DEFAULT_TURN_TRACKING_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// `Content-Type` of the OpenMetrics text exposition format (what Prometheus negotiates).
pub const PROMETHEUS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The server's metrics. Cheap to clone: clones share the values.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Every metric below, registered once; rendered by [`Metrics::render`].
    registry: Registry,
    create_latency: Histogram,
    message_latency: Histogram,
    time_to_running: Histogram,
    time_to_first_output: Histogram,
    time_to_terminal: Histogram,
    retry_events: Counter,
    active_streams: Gauge,
    mcp_connect: Histogram,
    mcp_outcomes: Family<Vec<(String, String)>, Counter>,
    running_chats: Gauge,
    claims: Counter,
    recoveries: Family<Vec<(String, String)>, Counter>,
    relay_lag: Histogram,
    notification_reconnects: Counter,
    config_changes: Counter,
    retention: RetentionMetrics,
    aibridge: AibridgeMetrics,
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
        let latency = || Histogram::new(LATENCY_BUCKETS.iter().copied());
        let (create_latency, message_latency) = (latency(), latency());
        let (time_to_running, time_to_first_output, time_to_terminal) =
            (latency(), latency(), latency());
        let retry_events = Counter::default();
        let active_streams = Gauge::default();
        let mcp_connect = latency();
        let mcp_outcomes = Family::<Vec<(String, String)>, Counter>::default();
        let mut registry = Registry::default();
        // Help texts without a final period: the registry adds it.
        registry.register(
            "chat_create_latency_seconds",
            "Time a successful chat creation request took",
            create_latency.clone(),
        );
        registry.register(
            "chat_message_latency_seconds",
            "Time a successful send-message request took",
            message_latency.clone(),
        );
        registry.register(
            "chat_time_to_running_seconds",
            "Time from a create or send request to the turn's running status",
            time_to_running.clone(),
        );
        registry.register(
            "chat_time_to_first_output_seconds",
            "Time from a create or send request to the turn's first streamed part",
            time_to_first_output.clone(),
        );
        registry.register(
            "chat_time_to_terminal_status_seconds",
            "Time from a create or send request to waiting, error or requires_action",
            time_to_terminal.clone(),
        );
        // OpenMetrics names the counter family without `_total`; its sample is
        // `chat_retry_events_total`.
        registry.register(
            "chat_retry_events",
            "Model call retries of tracked turns",
            retry_events.clone(),
        );
        registry.register(
            "active_chat_streams",
            "Open per-chat stream WebSockets",
            active_streams.clone(),
        );
        registry.register(
            "chat_mcp_connect_seconds",
            "Time one MCP server took to connect (or be reused) in a turn",
            mcp_connect.clone(),
        );
        registry.register(
            "chat_mcp_connects",
            "MCP server outcomes in turns, by outcome",
            mcp_outcomes.clone(),
        );
        let running_chats = Gauge::default();
        let claims = Counter::default();
        let recoveries = Family::<Vec<(String, String)>, Counter>::default();
        let relay_lag = Histogram::new(RELAY_LAG_BUCKETS.iter().copied());
        let notification_reconnects = Counter::default();
        let config_changes = Counter::default();
        registry.register(
            "chat_replica_running_chats",
            "Turns this replica runs now",
            running_chats.clone(),
        );
        registry.register("chat_claims", "Chats this replica claimed", claims.clone());
        registry.register(
            "chat_recoveries",
            "Chats of other workers this replica handed back to pending, by cause",
            recoveries.clone(),
        );
        registry.register(
            "chat_relay_lag_seconds",
            "Time from another replica sending a relay batch to its arrival here",
            relay_lag.clone(),
        );
        registry.register(
            "chat_notification_reconnects",
            "Times the LISTEN connection was lost and re-established",
            notification_reconnects.clone(),
        );
        registry.register(
            "chat_config_changes",
            "Configuration changes announced by any replica",
            config_changes.clone(),
        );
        let retention = RetentionMetrics::register(&mut registry);
        let aibridge = AibridgeMetrics::register(&mut registry);
        Metrics {
            inner: Arc::new(Inner {
                retention,
                aibridge,
                running_chats,
                claims,
                recoveries,
                relay_lag,
                notification_reconnects,
                config_changes,
                registry,
                create_latency,
                message_latency,
                time_to_running,
                time_to_first_output,
                time_to_terminal,
                retry_events,
                active_streams,
                mcp_connect,
                mcp_outcomes,
                tracked_turns: AtomicUsize::new(0),
                max_tracked_turns,
                tracking_timeout,
            }),
        }
    }

    /// Records one MCP server's outcome in a turn (`chat_mcp_connect_seconds`,
    /// `chat_mcp_connects_total`); the engine's MCP connector calls it through
    /// [`Metrics::mcp_observer`].
    pub fn observe_mcp_connect(&self, report: &chatd_core::mcp::ConnectReport) {
        self.inner.mcp_connect.observe(report.elapsed.as_secs_f64());
        self.inner
            .mcp_outcomes
            .get_or_create(&vec![(
                "outcome".to_owned(),
                report.outcome.as_str().to_owned(),
            )])
            .inc();
    }

    /// An observer for [`chatd_core::mcp::McpConnector::with_observer`] that records into
    /// these metrics.
    pub fn mcp_observer(&self) -> chatd_core::mcp::ConnectObserver {
        let metrics = self.clone();
        Arc::new(move |report| metrics.observe_mcp_connect(report))
    }

    /// An observer for [`chatd_core::EngineConfig::with_observer`] that records claims,
    /// recoveries, the relay's lag, `LISTEN` reconnections, configuration changes and
    /// retention sweeps.
    pub fn engine_observer(&self) -> Arc<dyn chatd_core::EngineObserver> {
        Arc::new(EngineMetrics(self.clone()))
    }

    /// Sets the AI Gateway recorder's metrics from its counters
    /// (`aibridge_records_{recorded,dropped,write_failures}_total`,
    /// `aibridge_records_queued`); read at each scrape.
    pub fn set_aibridge_stats(&self, stats: chatd_core::aibridge::RecorderStats) {
        let m = &self.inner.aibridge;
        // The recorder's counters only grow: add what is new since the last scrape.
        for (counter, now) in [
            (&m.recorded, stats.recorded),
            (&m.dropped, stats.dropped),
            (&m.write_failures, stats.write_failures),
        ] {
            counter.inc_by(now.saturating_sub(counter.get()));
        }
        m.queued
            .set(i64::try_from(stats.queued).unwrap_or(i64::MAX));
    }

    /// Sets `chat_replica_running_chats` (read from the engine when scraped).
    pub fn set_running_chats(&self, running: usize) {
        self.inner
            .running_chats
            .set(i64::try_from(running).unwrap_or(i64::MAX));
    }

    /// Records how long a `POST /chats` request took (`chat_create_latency_seconds`).
    /// [`MetricsLayer`] calls it for routes tagged [`Observe::ChatCreate`].
    pub fn observe_create(&self, elapsed: Duration) {
        self.inner.create_latency.observe(elapsed.as_secs_f64());
    }

    /// Records how long a `POST /chats/{chat}/messages` request took
    /// (`chat_message_latency_seconds`). [`MetricsLayer`] calls it for routes tagged
    /// [`Observe::ChatMessage`].
    pub fn observe_message(&self, elapsed: Duration) {
        self.inner.message_latency.observe(elapsed.as_secs_f64());
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
        if let Some(tracking) = self.prepare_turn(engine, chat_id) {
            tracking.start(started_at, None);
        }
    }

    /// The first half of [`Metrics::track_turn`] for a turn that a request is about to
    /// start: subscribes to the chat's stream before the request commits, so every status
    /// after the commit arrives as an event and the status need not be read back (the
    /// request knows it). `None` when no tracking slot is free or the hub refuses.
    pub fn prepare_turn(&self, engine: &Engine, chat_id: Uuid) -> Option<TurnTracking> {
        let Some(slot) = TrackingSlot::take(&self.inner) else {
            tracing::debug!(%chat_id, "turn tracking limit reached; turn not tracked");
            return None;
        };
        let subscription = match engine.hub().subscribe(chat_id) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%chat_id, error = %e, "cannot follow turn for metrics");
                return None;
            }
        };
        let (_, live) = subscription.into_parts();
        Some(TurnTracking {
            slot,
            live,
            engine: engine.clone(),
            chat_id,
            inner: Arc::clone(&self.inner),
        })
    }

    /// Marks one per-chat stream WebSocket open (`active_chat_streams`) until the returned
    /// guard is dropped.
    pub fn stream_opened(&self) -> StreamGuard {
        self.inner.active_streams.inc();
        StreamGuard {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Open per-chat stream WebSockets.
    pub fn active_chat_streams(&self) -> i64 {
        self.inner.active_streams.get()
    }

    /// `retry` events seen on tracked turns.
    pub fn retry_events(&self) -> u64 {
        self.inner.retry_events.get()
    }

    /// Turns [`Metrics::track_turn`] is following right now.
    pub fn tracked_turns(&self) -> usize {
        self.inner.tracked_turns.load(Ordering::Relaxed)
    }

    /// The metrics in the OpenMetrics text exposition format (ending in `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a `String` cannot fail; an encoder error would be a bug of the crate,
        // and a partial exposition is better than none for a scrape.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry) {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

/// The AI Gateway recorder's counters, copied from its stats at each scrape.
#[derive(Debug)]
struct AibridgeMetrics {
    recorded: Counter,
    dropped: Counter,
    write_failures: Counter,
    queued: Gauge,
}

impl AibridgeMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = AibridgeMetrics {
            recorded: Counter::default(),
            dropped: Counter::default(),
            write_failures: Counter::default(),
            queued: Gauge::default(),
        };
        registry.register(
            "aibridge_records_recorded",
            "AI Gateway interception records written to the database",
            m.recorded.clone(),
        );
        registry.register(
            "aibridge_records_dropped",
            "AI Gateway interception records dropped because the recorder's queue was full",
            m.dropped.clone(),
        );
        registry.register(
            "aibridge_records_write_failures",
            "AI Gateway interception records lost to a failed database write",
            m.write_failures.clone(),
        );
        registry.register(
            "aibridge_records_queued",
            "AI Gateway interception records waiting for the database",
            m.queued.clone(),
        );
        m
    }
}

/// The engine's metrics hooks; see [`Metrics::engine_observer`].
#[derive(Debug)]
struct EngineMetrics(Metrics);

impl chatd_core::EngineObserver for EngineMetrics {
    fn claimed(&self, count: usize) {
        self.0.inner.claims.inc_by(count as u64);
    }

    fn recovered(&self, cause: chatd_core::RecoveryCause, count: usize) {
        self.0
            .inner
            .recoveries
            .get_or_create(&vec![("cause".to_owned(), cause.as_str().to_owned())])
            .inc_by(count as u64);
    }

    fn relay_lag(&self, lag: Duration) {
        self.0.inner.relay_lag.observe(lag.as_secs_f64());
    }

    fn notification_reconnected(&self) {
        self.0.inner.notification_reconnects.inc();
    }

    fn config_changed(&self, _change: &chatd_core::ConfigChange) {
        self.0.inner.config_changes.inc();
    }

    fn retention_swept(&self, sweep: &chatd_core::RetentionSweep) {
        self.0.inner.retention.record(sweep);
    }
}

/// The retention sweeps' metrics (the `chat_retention_*` rows of the table above).
#[derive(Debug, Default)]
struct RetentionMetrics {
    sweeps: Counter,
    last_sweep: Gauge,
    last_duration: Gauge<f64, std::sync::atomic::AtomicU64>,
    archived_chats: Counter,
    purged_chats: Counter,
    purged_debug_runs: Counter,
    purged_files: Counter,
    purged_interceptions: Counter,
    failed_steps: Counter,
}

impl RetentionMetrics {
    fn register(registry: &mut Registry) -> RetentionMetrics {
        let metrics = RetentionMetrics::default();
        registry.register(
            "chat_retention_sweeps",
            "Retention sweeps this replica ran",
            metrics.sweeps.clone(),
        );
        registry.register(
            "chat_retention_last_sweep_timestamp_seconds",
            "When this replica's last retention sweep started, Unix seconds",
            metrics.last_sweep.clone(),
        );
        registry.register(
            "chat_retention_last_sweep_duration_seconds",
            "How long this replica's last retention sweep took",
            metrics.last_duration.clone(),
        );
        registry.register(
            "chat_retention_archived_chats",
            "Chats the retention sweeps archived automatically",
            metrics.archived_chats.clone(),
        );
        registry.register(
            "chat_retention_purged_chats",
            "Archived chats the retention sweeps purged",
            metrics.purged_chats.clone(),
        );
        registry.register(
            "chat_retention_purged_debug_runs",
            "Debug runs the retention sweeps purged",
            metrics.purged_debug_runs.clone(),
        );
        registry.register(
            "chat_retention_purged_files",
            "Unlinked files the retention sweeps purged",
            metrics.purged_files.clone(),
        );
        registry.register(
            "chat_retention_purged_ai_gateway_interceptions",
            "AI Gateway interception records the retention sweeps purged",
            metrics.purged_interceptions.clone(),
        );
        registry.register(
            "chat_retention_failed_steps",
            "Retention sweep steps that failed",
            metrics.failed_steps.clone(),
        );
        metrics
    }

    fn record(&self, sweep: &chatd_core::RetentionSweep) {
        self.sweeps.inc();
        self.last_sweep.set(sweep.started_at.timestamp());
        self.last_duration.set(sweep.duration.as_secs_f64());
        self.archived_chats.inc_by(sweep.archived_chats);
        self.purged_chats.inc_by(sweep.purged_chats);
        self.purged_debug_runs.inc_by(sweep.purged_debug_runs);
        self.purged_files.inc_by(sweep.purged_files);
        self.purged_interceptions.inc_by(sweep.purged_interceptions);
        self.failed_steps.inc_by(u64::from(sweep.failed_steps));
    }
}

/// Keeps one stream counted in `active_chat_streams`; see [`Metrics::stream_opened`].
#[derive(Debug)]
pub struct StreamGuard {
    inner: Arc<Inner>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.inner.active_streams.dec();
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
                .observe(self.started_at.elapsed().as_secs_f64());
        }
    }

    fn output(&mut self) {
        // Output implies the turn runs, even if its `running` event was missed.
        self.running();
        if !self.output {
            self.output = true;
            self.inner
                .time_to_first_output
                .observe(self.started_at.elapsed().as_secs_f64());
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
                    .observe(self.started_at.elapsed().as_secs_f64());
                true
            }
            // `pending` (not started yet, or restarted by an edit) and statuses from newer
            // peers: keep following.
            _ => false,
        }
    }
}

/// `GET /metrics`: the Prometheus text. Unauthenticated, like Coder's Prometheus endpoint:
/// it carries only aggregate counts and latencies, no user data.
pub async fn serve(State(state): State<AppState>) -> HttpResponse {
    state
        .metrics()
        .set_running_chats(state.engine().active_turns());
    state
        .metrics()
        .set_aibridge_stats(state.interceptions().stats());
    (
        [(CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        state.metrics().render(),
    )
        .into_response()
}

/// When a request arrived, as [`MetricsLayer`] saw it; handlers that start a turn measure
/// its milestones from here ([`Metrics::track_turn`]). Without the layer it is the time the
/// handler extracted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestStart(pub Instant);

impl<S: Send + Sync> FromRequestParts<S> for RequestStart {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestStart>()
            .copied()
            .unwrap_or_else(|| RequestStart(Instant::now())))
    }
}

/// A request latency a route reports to [`MetricsLayer`]: put [`ObserveLayer`] on the
/// handler (`post(create_chat.layer(Observe::ChatCreate.layer()))`) and the layer records
/// the request's time, arrival to answer, when the answer is a success (2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Observe {
    /// `chat_create_latency_seconds`.
    ChatCreate,
    /// `chat_message_latency_seconds`.
    ChatMessage,
}

impl Observe {
    /// The layer that tags a route's answers with this latency.
    pub fn layer(self) -> ObserveLayer {
        ObserveLayer(self)
    }
}

/// Tags every answer of the wrapped service with an [`Observe`] (a response extension that
/// [`MetricsLayer`] reads and removes). See [`Observe::layer`].
#[derive(Debug, Clone, Copy)]
pub struct ObserveLayer(Observe);

impl<S> Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveService {
            inner,
            observe: self.0,
        }
    }
}

/// The service of [`ObserveLayer`].
#[derive(Debug, Clone)]
pub struct ObserveService<S> {
    inner: S,
    observe: Observe,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ObserveService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let observe = self.observe;
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            response.extensions_mut().insert(observe);
            Ok(response)
        })
    }
}

/// The request layer: for every request, a `request` span with the method, the route
/// template (`/api/experimental/chats/{chat}`, never the concrete path or query, which may
/// carry a `coder_session_token`), and once answered the status and latency; the
/// [`RequestStart`] handlers read; and the latency of routes tagged with [`Observe`].
/// Headers and bodies are never recorded.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Metrics,
}

impl MetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        MetricsLayer { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        request.extensions_mut().insert(RequestStart(started));
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
        let answer = span.in_scope(|| self.inner.call(request));
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let mut response = answer.instrument(span.clone()).await?;
            let elapsed = started.elapsed();
            if let Some(observe) = response.extensions_mut().remove::<Observe>() {
                if response.status().is_success() {
                    match observe {
                        Observe::ChatCreate => metrics.observe_create(elapsed),
                        Observe::ChatMessage => metrics.observe_message(elapsed),
                    }
                }
            }
            let status = response.status().as_u16();
            let latency_ms = elapsed.as_secs_f64() * 1e3;
            span.record("status", status);
            span.record("latency_ms", latency_ms);
            span.in_scope(|| tracing::debug!(status, latency_ms, "request answered"));
            Ok(response)
        })
    }
}

/// A turn [`Metrics::prepare_turn`] subscribed to; [`TurnTracking::start`] follows it.
/// Dropping it releases its slot.
pub struct TurnTracking {
    slot: TrackingSlot,
    live: chatd_core::HubReceiver<codersdk::ChatStreamEvent>,
    engine: Engine,
    chat_id: Uuid,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TurnTracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnTracking")
            .field("chat_id", &self.chat_id)
            .finish_non_exhaustive()
    }
}

impl TurnTracking {
    /// Follows the turn from `started_at`. `status` is the chat's status as the request
    /// committed it, when the subscription was made before the commit; `None` reads it.
    pub fn start(self, started_at: Instant, status: Option<ChatStatus>) {
        let TurnTracking {
            slot,
            mut live,
            engine,
            chat_id,
            inner,
        } = self;
        let timeout = inner.tracking_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let follow = async {
                let mut turn = TurnObservation::new(&inner, started_at);
                // Subscribed first, read second: a status committed before the subscription
                // is seen here, one committed after arrives as an event.
                let status = match status {
                    Some(status) => Some(status),
                    None => engine.chat_status(chat_id).await.ok().flatten(),
                };
                if let Some(status) = status {
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
                            inner.retry_events.inc();
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
        assert!(text.contains("chat_create_latency_seconds_bucket{le=\"600.0\"} 2\n"));
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
