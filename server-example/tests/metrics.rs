//! Prometheus metrics at `/metrics` and tracing spans, on both backends: every scale-test
//! metric is exposed with its type, turn tracking records its milestones and retries (and
//! stops at its limits), the stream gauge follows open sockets, and request spans carry the
//! route template, status and latency but never the query (which may hold a token).
//!
//! A test binary of its own, outside `tests/it`: the span test installs a process-wide
//! tracing subscriber that records every span, so in a shared binary it would record the
//! other tests' spans too, and their requests could satisfy its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chatd_core::Actor;
use chatd_test_support::db::{on_each_backend, RawSql};
use chatd_test_support::scripted::{create_request, wait_status, Reply, ScriptedModel};
use chatd_test_support::server::{TestServer, TestUser};
use codersdk::{ChatStatus, Uuid};
use server_example::metrics::{Metrics, PROMETHEUS_CONTENT_TYPE};
use tokio::sync::Notify;
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

const WAIT: Duration = Duration::from_secs(10);

const HISTOGRAMS: [&str; 5] = [
    "chat_create_latency_seconds",
    "chat_message_latency_seconds",
    "chat_time_to_running_seconds",
    "chat_time_to_first_output_seconds",
    "chat_time_to_terminal_status_seconds",
];

async fn scrape(server: &TestServer) -> String {
    // Unauthenticated on purpose, like Coder's Prometheus endpoint.
    let r = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], PROMETHEUS_CONTENT_TYPE);
    r.text().await.unwrap()
}

/// The value of the sample named exactly `sample` (no labels).
fn sample(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {sample} in\n{text}"))
        .parse()
        .unwrap()
}

async fn until_sample(server: &TestServer, name: &str, value: f64) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = scrape(server).await;
        if sample(&text, name) == value {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {value}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create(server: &TestServer, user: &TestUser) -> Uuid {
    server
        .state
        .engine()
        .create_chat(
            &Actor::user(user.id),
            create_request(server.state.default_organization(), "hi"),
        )
        .await
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scale_test_metric_is_exposed_with_its_type() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let text = scrape(&server).await;
        for name in HISTOGRAMS {
            assert!(
                text.contains(&format!("# TYPE {name} histogram\n")),
                "{name}"
            );
            assert_eq!(sample(&text, &format!("{name}_count")), 0.0);
            assert!(text.contains(&format!("{name}_bucket{{le=\"+Inf\"}} 0\n")));
        }
        // OpenMetrics: the counter family is named without `_total`, its sample with it.
        assert!(text.contains("# TYPE chat_retry_events counter\n"));
        assert_eq!(sample(&text, "chat_retry_events_total"), 0.0);
        assert!(text.contains("# TYPE active_chat_streams gauge\n"));
        assert_eq!(sample(&text, "active_chat_streams"), 0.0);
        assert!(text.ends_with("# EOF\n"), "{text}");

        // The handler-latency histograms move when the handlers report.
        server
            .state
            .metrics()
            .observe_create(Duration::from_millis(30));
        server
            .state
            .metrics()
            .observe_message(Duration::from_millis(70));
        let text = scrape(&server).await;
        assert_eq!(sample(&text, "chat_create_latency_seconds_count"), 1.0);
        assert!(text.contains("chat_create_latency_seconds_bucket{le=\"0.025\"} 0\n"));
        assert!(text.contains("chat_create_latency_seconds_bucket{le=\"0.05\"} 1\n"));
        assert_eq!(sample(&text, "chat_message_latency_seconds_count"), 1.0);
        assert!((sample(&text, "chat_message_latency_seconds_sum") - 0.07).abs() < 1e-9);
        server.stop().await;
    })
    .await;
}

/// The request layer records the create and send latencies of successful requests only,
/// and the turns those requests start are tracked from the request's arrival.
/// The engine's retention sweeps (docs/retention.md) are exported: how many ran, when the
/// last one started and what they archived and purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_sweeps_are_counted_with_their_last_run() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let text = scrape(&server).await;
        for counter in [
            "chat_retention_sweeps",
            "chat_retention_archived_chats",
            "chat_retention_purged_chats",
            "chat_retention_purged_files",
            "chat_retention_purged_ai_gateway_interceptions",
            "chat_retention_failed_steps",
        ] {
            assert!(
                text.contains(&format!("# TYPE {counter} counter\n")),
                "{counter}"
            );
        }
        for gauge in [
            "chat_retention_last_sweep_timestamp_seconds",
            "chat_retention_last_sweep_duration_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE {gauge} gauge\n")), "{gauge}");
        }
        // The engine sweeps once as it starts.
        let text = until_sample(&server, "chat_retention_sweeps_total", 1.0).await;
        let before = unix_now_secs();
        assert!(sample(&text, "chat_retention_last_sweep_timestamp_seconds") > 0.0);
        // An archived chat older than the window: the next sweep purges it.
        let bob = server.user("bob").await;
        let chat = create(&server, &bob).await;
        let engine = server.state.engine();
        engine
            .update_chat(
                &Actor::user(bob.id),
                chat,
                codersdk::UpdateChatRequest {
                    archived: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        sqlx::query("UPDATE chats SET archived_at = 0 WHERE id = $1")
            .bind(chat.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        store.set_retention_days(1).await.unwrap();
        // And an AI Gateway call older than the default 60-day retention.
        let mut call = chatd_core::store::NewInterception::new(
            codersdk::Uuid::new_v4(),
            bob.id,
            "anthropic",
            "anthropic",
        );
        call.started_at = 1_000_000;
        call.ended_at = 2_000_000;
        store.record_interceptions(&[call]).await.unwrap();
        let report = engine.run_retention_sweep().await.unwrap().unwrap();
        assert_eq!(report.purged_chats, 1, "{report:?}");
        assert_eq!(report.purged_interceptions, 1, "{report:?}");
        let text = scrape(&server).await;
        assert_eq!(sample(&text, "chat_retention_sweeps_total"), 2.0);
        assert_eq!(sample(&text, "chat_retention_purged_chats_total"), 1.0);
        assert_eq!(
            sample(
                &text,
                "chat_retention_purged_ai_gateway_interceptions_total"
            ),
            1.0
        );
        assert_eq!(sample(&text, "chat_retention_archived_chats_total"), 0.0);
        assert_eq!(sample(&text, "chat_retention_failed_steps_total"), 0.0);
        let last = sample(&text, "chat_retention_last_sweep_timestamp_seconds");
        assert!(last >= before - 1.0, "{last} {before}");
        server.stop().await;
    })
    .await;
}

fn unix_now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_layer_records_create_and_send_latency() {
    on_each_backend(|store| async move {
        let model = ScriptedModel::new([Reply::Text("one".into()), Reply::Text("two".into())]);
        let server = TestServer::start(&store, model).await;
        let alice = server.user("alice").await;
        let post = |path: String, body: serde_json::Value| {
            server
                .http
                .post(server.api(&path))
                .header("Coder-Session-Token", &alice.token)
                .json(&body)
                .send()
        };
        let text = serde_json::json!({"content": [{"type": "text", "text": "hi"}]});
        // A refused request is not a latency sample.
        let r = post("/chats".into(), serde_json::json!({"content": []}))
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = post("/chats".into(), text.clone()).await.unwrap();
        assert_eq!(r.status(), 201);
        let chat: codersdk::Chat = r.json().await.unwrap();
        let scraped =
            until_sample(&server, "chat_time_to_terminal_status_seconds_count", 1.0).await;
        assert_eq!(sample(&scraped, "chat_create_latency_seconds_count"), 1.0);
        assert_eq!(sample(&scraped, "chat_message_latency_seconds_count"), 0.0);
        let r = post(format!("/chats/{}/messages", chat.id), text.clone())
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = post(format!("/chats/{}/messages", Uuid::new_v4()), text)
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let scraped =
            until_sample(&server, "chat_time_to_terminal_status_seconds_count", 2.0).await;
        assert_eq!(sample(&scraped, "chat_message_latency_seconds_count"), 1.0);
        assert_eq!(sample(&scraped, "chat_create_latency_seconds_count"), 1.0);
        assert_eq!(sample(&scraped, "chat_time_to_running_seconds_count"), 2.0);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_turns_record_milestones_and_retries() {
    on_each_backend(|store| async move {
        // A retryable failure first (one `retry` event, 1 s back-off), then a reply; then a
        // terminal failure for a second chat.
        let model = ScriptedModel::new([Reply::Fail(503), Reply::Text("hello there".into())]);
        let server = TestServer::start(&store, model).await;
        let alice = server.user("alice").await;
        let metrics = server.state.metrics();
        let engine = server.state.engine();

        let started = Instant::now();
        let chat_id = create(&server, &alice).await;
        metrics.track_turn(engine, chat_id, started);
        assert_eq!(metrics.tracked_turns(), 1);
        wait_status(engine, &Actor::user(alice.id), chat_id, ChatStatus::Waiting).await;
        let text = until_sample(&server, "chat_time_to_terminal_status_seconds_count", 1.0).await;
        assert_eq!(sample(&text, "chat_time_to_running_seconds_count"), 1.0);
        assert_eq!(
            sample(&text, "chat_time_to_first_output_seconds_count"),
            1.0
        );
        assert_eq!(sample(&text, "chat_retry_events_total"), 1.0);
        let running = sample(&text, "chat_time_to_running_seconds_sum");
        let output = sample(&text, "chat_time_to_first_output_seconds_sum");
        let terminal = sample(&text, "chat_time_to_terminal_status_seconds_sum");
        assert!(
            running <= output && output <= terminal,
            "{running} {output} {terminal}"
        );
        // The first output came after the retry's back-off.
        assert!(
            output >= 0.9,
            "first output after the 1 s back-off: {output}"
        );
        assert!(terminal <= started.elapsed().as_secs_f64());
        let deadline = Instant::now() + WAIT;
        while metrics.tracked_turns() != 0 {
            assert!(Instant::now() < deadline, "the tracker never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // A turn that fails without output reaches a terminal status with no first output.
        server.model.push(Reply::Fail(401));
        let started = Instant::now();
        let failed = create(&server, &alice).await;
        metrics.track_turn(engine, failed, started);
        wait_status(engine, &Actor::user(alice.id), failed, ChatStatus::Error).await;
        let text = until_sample(&server, "chat_time_to_terminal_status_seconds_count", 2.0).await;
        assert_eq!(
            sample(&text, "chat_time_to_first_output_seconds_count"),
            1.0
        );
        assert_eq!(sample(&text, "chat_retry_events_total"), 1.0);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_stops_at_its_limits() {
    on_each_backend(|store| async move {
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([Reply::Gated {
            before: vec!["held ".into()],
            gate: gate.clone(),
            after: vec!["done".into()],
        }]);
        let server = TestServer::start(&store, model).await;
        let alice = server.user("alice").await;
        let engine = server.state.engine();
        let actor = Actor::user(alice.id);
        // At most one turn followed, for at most two seconds.
        let timeout = Duration::from_secs(2);
        let metrics = Metrics::with_limits(1, timeout);

        let held = create(&server, &alice).await;
        metrics.track_turn(engine, held, Instant::now());
        let tracked_at = Instant::now();
        wait_status(engine, &actor, held, ChatStatus::Running).await;
        // The held turn streams (so it, not the next chat's turn, took the gated reply).
        let deadline = Instant::now() + WAIT;
        while !metrics
            .render()
            .contains("chat_time_to_first_output_seconds_count 1\n")
        {
            assert!(Instant::now() < deadline, "the held turn never streamed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The second turn is over the limit: not followed, nothing recorded for it.
        let other = create(&server, &alice).await;
        metrics.track_turn(engine, other, Instant::now());
        assert_eq!(metrics.tracked_turns(), 1);
        wait_status(engine, &actor, other, ChatStatus::Waiting).await;
        // The held turn's milestones so far are recorded (its tracker runs on its own task).
        let deadline = Instant::now() + WAIT;
        loop {
            let text = metrics.render();
            if text.contains("chat_time_to_running_seconds_count 1\n")
                && text.contains("chat_time_to_first_output_seconds_count 1\n")
            {
                break;
            }
            assert!(Instant::now() < deadline, "held turn not observed:\n{text}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let text = metrics.render();
        assert!(
            text.contains("chat_time_to_running_seconds_count 1\n"),
            "the untracked turn is not observed: {text}"
        );
        assert!(text.contains("chat_time_to_terminal_status_seconds_count 0\n"));

        // The held turn outlives the tracking timeout: its tracker ends at the timeout...
        let deadline = tracked_at + timeout + Duration::from_secs(3);
        while metrics.tracked_turns() != 0 {
            assert!(
                Instant::now() < deadline,
                "the tracker outlived its timeout"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(tracked_at.elapsed() >= timeout - Duration::from_millis(100));
        // ...and the turn's end is not recorded.
        gate.notify_one();
        wait_status(engine, &actor, held, ChatStatus::Waiting).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(metrics
            .render()
            .contains("chat_time_to_terminal_status_seconds_count 0\n"));
        // A slot is free again.
        let again = create(&server, &alice).await;
        metrics.track_turn(engine, again, Instant::now());
        wait_status(engine, &actor, again, ChatStatus::Waiting).await;
        let deadline = Instant::now() + WAIT;
        while !metrics
            .render()
            .contains("chat_time_to_terminal_status_seconds_count 1\n")
        {
            assert!(Instant::now() < deadline, "the freed slot was not used");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_chat_streams_counts_open_stream_sockets() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let chat_id = create(&server, &alice).await;
        let ws = |path: String| {
            format!(
                "{}/api/experimental{path}?coder_session_token={}",
                server.base.replacen("http://", "ws://", 1),
                alice.token
            )
        };
        let (first, _) = tokio_tungstenite::connect_async(ws(format!("/chats/{chat_id}/stream")))
            .await
            .unwrap();
        let (second, _) = tokio_tungstenite::connect_async(ws(format!("/chats/{chat_id}/stream")))
            .await
            .unwrap();
        // Watch sockets are not chat streams.
        let (watch, _) = tokio_tungstenite::connect_async(ws("/chats/watch".into()))
            .await
            .unwrap();
        until_sample(&server, "active_chat_streams", 2.0).await;
        drop(first);
        until_sample(&server, "active_chat_streams", 1.0).await;
        drop(second);
        until_sample(&server, "active_chat_streams", 0.0).await;
        drop(watch);
        server.stop().await;
    })
    .await;
}

/// Spans closed so far: name and recorded fields (values as text).
type Spans = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

struct Capture(Spans);

struct Fields(HashMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields(HashMap::new());
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            let fields = span
                .extensions_mut()
                .remove::<Fields>()
                .map(|f| f.0)
                .unwrap_or_default();
            self.0
                .lock()
                .unwrap()
                .push((span.name().to_owned(), fields));
        }
    }
}

/// Installs the capturing subscriber once for this test binary.
fn captured_spans() -> Spans {
    static SPANS: OnceLock<Spans> = OnceLock::new();
    SPANS
        .get_or_init(|| {
            let spans = Spans::default();
            let subscriber = tracing_subscriber::registry().with(Capture(spans.clone()));
            tracing::subscriber::set_global_default(subscriber).unwrap();
            spans
        })
        .clone()
}

async fn span_where(
    spans: &Spans,
    name: &str,
    pred: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = spans
            .lock()
            .unwrap()
            .iter()
            .find(|(n, f)| n == name && pred(f))
            .map(|(_, f)| f.clone());
        if let Some(fields) = found {
            return fields;
        }
        assert!(Instant::now() < deadline, "no {name} span matched");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_per_request_and_per_turn() {
    let spans = captured_spans();
    on_each_backend(|store| {
        let spans = spans.clone();
        async move {
            let server = TestServer::start(&store, ScriptedModel::new([])).await;
            let alice = server.user("alice").await;
            let chat_id = create(&server, &alice).await;
            wait_status(
                server.state.engine(),
                &Actor::user(alice.id),
                chat_id,
                ChatStatus::Waiting,
            )
            .await;
            let turn = span_where(&spans, "turn", |f| {
                f.get("chat_id") == Some(&chat_id.to_string())
            })
            .await;
            assert_eq!(
                turn.get("worker"),
                Some(&server.state.engine().worker_id().to_string())
            );

            // A request with the token in the query: the span has the template only.
            let r = server
                .http
                .get(server.api(&format!(
                    "/chats/{chat_id}/stream?after_id=bad&coder_session_token={}",
                    alice.token
                )))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400);
            let request = span_where(&spans, "request", |f| {
                f.get("route").map(String::as_str) == Some("/api/experimental/chats/{chat}/stream")
                    && f.get("status").map(String::as_str) == Some("400")
            })
            .await;
            assert_eq!(request.get("method").map(String::as_str), Some("GET"));
            let latency: f64 = request["latency_ms"].parse().unwrap();
            assert!(latency >= 0.0);
            for (_, fields) in spans.lock().unwrap().iter() {
                for value in fields.values() {
                    assert!(!value.contains(&alice.token), "a token leaked into a span");
                }
            }
            // Unmatched paths are not recorded verbatim either.
            let r = server
                .http
                .get(server.api("/secret-looking/path"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404);
            span_where(&spans, "request", |f| {
                f.get("route").map(String::as_str) == Some("<unmatched>")
                    && f.get("status").map(String::as_str) == Some("404")
            })
            .await;
            server.stop().await;
        }
    })
    .await;
}
