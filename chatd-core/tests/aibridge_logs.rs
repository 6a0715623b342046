//! The AI Gateway's structured logs (docs/ai-gateway-records.md): every `record_type`
//! under one message and target, with its fields, on SQLite and PostgreSQL; with prompts
//! off neither prompts nor thoughts are logged. A binary of its own: it installs a
//! process-wide subscriber that would capture every other test's events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chatd_core::aibridge::{
    CredentialKind, InterceptionRecord, InterceptionSink, InterceptionStart, Recorder,
    RecorderSettings, ToolUsage, WireApi, LOG_MESSAGE,
};
use chatd_test_support::db::{fixture, on_each_backend};
use chrono::{TimeZone, Utc};
use codersdk::{ChatMessageUsage, Timestamp, Uuid};

/// 1000 input × $3/M + 500 output × $15/M.
const COST: i64 = 3_000 + 7_500;

fn record(user: Uuid, secs: i64) -> InterceptionRecord {
    let at = |s: i64| Timestamp(Utc.timestamp_opt(1_767_225_600 + s, 0).unwrap());
    InterceptionRecord {
        start: InterceptionStart {
            id: Uuid::new_v4(),
            user_id: user,
            provider_name: "anthropic".into(),
            provider_type: "anthropic".into(),
            api: WireApi::Messages,
            model: "claude-sonnet-4-5".into(),
            streamed: true,
            credential_kind: CredentialKind::Central,
            credential_hint: "sk-a…wxyz".into(),
            client_session_id: None,
            client: Some("claude-code".into()),
            correlation_id: None,
            tool_result_call_ids: Vec::new(),
            prompt: Some(format!("prompt at {secs}")),
            started_at: at(secs),
        },
        model: "claude-sonnet-4-5".into(),
        ended_at: at(secs + 1),
        upstream_status: Some(200),
        error_kind: None,
        error_message: None,
        client_disconnected: false,
        usage: ChatMessageUsage {
            input_tokens: Some(1000),
            output_tokens: Some(500),
            ..Default::default()
        },
        tool_calls: Vec::new(),
        thoughts: Vec::new(),
    }
}

fn tool(call_id: &str, name: &str, bytes: u64) -> ToolUsage {
    ToolUsage {
        call_id: call_id.into(),
        name: name.into(),
        argument_bytes: bytes,
    }
}

/// Every event the recorder logs, as field maps.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        fields.insert("target".into(), event.metadata().target().to_owned());
        self.0.lock().unwrap().push(fields);
    }
}

#[tokio::test]
async fn every_record_type_is_logged_under_one_message() {
    use tracing_subscriber::layer::SubscriberExt;
    let captured = Captured::default();
    // Process-wide: this binary has this one test, and a thread-local default would race
    // with the callsite interest cache.
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(captured.clone()))
        .unwrap();
    on_each_backend(|store| {
        let captured = captured.clone();
        async move {
            captured.0.lock().unwrap().clear();
            let f = fixture(&store).await;
            let recorder = Recorder::start(store.clone(), RecorderSettings::default());
            let mut r = record(f.user, 0);
            r.start.correlation_id = Some("req-1".into());
            r.tool_calls = vec![tool("c1", "read", 10), tool("c2", "write", 20)];
            r.thoughts = vec!["first".into(), "second".into()];
            let id = r.start.id.to_string();
            recorder.started(&r.start);
            recorder.finished(r);
            recorder.flush().await;
            let lines: Vec<_> = captured
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.get("interception_id") == Some(&id))
                .cloned()
                .collect();
            let types: Vec<_> = lines.iter().map(|l| l["record_type"].as_str()).collect();
            assert_eq!(
                types,
                [
                    "interception_start",
                    "interception_end",
                    "token_usage",
                    "prompt_usage",
                    "tool_usage",
                    "tool_usage",
                    "model_thought",
                    "model_thought"
                ]
            );
            for l in &lines {
                assert_eq!(l["message"], LOG_MESSAGE);
                assert_eq!(l["target"], "chatd::aibridge");
            }
            assert_eq!(lines[0]["credential_hint"], "sk-a…wxyz");
            assert_eq!(lines[0]["correlation_id"], "req-1");
            assert_eq!(lines[1]["cost_micros"], COST.to_string());
            assert_eq!(lines[1]["thread_root_id"], id);
            assert_eq!(lines[1]["stored"], "true");
            assert_eq!(lines[2]["input_tokens"], "1000");
            assert_eq!(lines[3]["prompt"], "prompt at 0");
            assert_eq!(lines[5]["tool"], "write");
            assert_eq!(lines[5]["argument_bytes"], "20");
            assert_eq!(lines[7]["thought"], "second");
            // With prompts off, neither the prompt nor the thoughts are logged.
            captured.0.lock().unwrap().clear();
            let quiet = Recorder::start(
                store.clone(),
                RecorderSettings::default().with_record_prompts(false),
            );
            let mut r = record(f.user, 5);
            r.thoughts = vec!["secret plans".into()];
            quiet.finished(r);
            quiet.shutdown().await;
            let types: Vec<String> = captured
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.get("message").map(String::as_str) == Some(LOG_MESSAGE))
                .map(|l| l["record_type"].clone())
                .collect();
            assert_eq!(types, ["interception_end", "token_usage"]);
            recorder.shutdown().await;
        }
    })
    .await;
}
