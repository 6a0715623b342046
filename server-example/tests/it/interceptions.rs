//! The AI Gateway record routes on both backends (docs/ai-gateway-records.md):
//! `GET /api/v2/aibridge/interceptions` and `GET /api/v2/aibridge/sessions` over records
//! handed to the server's recorder (`AppState::interceptions`, the gateway's sink):
//! members see their own, administrators everyone's; filters, paging; bad input answers
//! a `Response` naming the field; the recorder's counters on `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_core::aibridge::{
    CredentialKind, InterceptionRecord, InterceptionSink, InterceptionStart, WireApi,
};
use chatd_test_support::db::on_each_backend;
use chatd_test_support::request::assert_error_body;
use chatd_test_support::scripted::ScriptedModel;
use chatd_test_support::server::TestServer;
use codersdk::{
    AIBridgeListInterceptionsResponse, AIBridgeListSessionsResponse, ChatMessageUsage, Timestamp,
    Uuid, MAX_AIBRIDGE_PAGE_LIMIT,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;

fn record(user: Uuid, session: Option<&str>, secs_ago: i64) -> InterceptionRecord {
    let now = chrono::Utc::now();
    InterceptionRecord {
        start: InterceptionStart {
            id: Uuid::new_v4(),
            user_id: user,
            provider_name: "openai".into(),
            provider_type: "openai".into(),
            api: WireApi::ChatCompletions,
            model: "gpt-4o-mini".into(),
            streamed: false,
            credential_kind: CredentialKind::Byok,
            credential_hint: "sk-…1234".into(),
            client_session_id: session.map(str::to_owned),
            client: Some("codex".into()),
            correlation_id: None,
            tool_result_call_ids: Vec::new(),
            prompt: Some("hello".into()),
            started_at: Timestamp(now - chrono::Duration::seconds(secs_ago)),
        },
        model: "gpt-4o-mini".into(),
        ended_at: Timestamp(now - chrono::Duration::seconds(secs_ago - 1)),
        upstream_status: Some(200),
        error_kind: None,
        error_message: None,
        client_disconnected: false,
        usage: ChatMessageUsage {
            input_tokens: Some(1_000_000),
            output_tokens: Some(1_000_000),
            ..Default::default()
        },
        tool_calls: Vec::new(),
        thoughts: Vec::new(),
    }
}

async fn get(server: &TestServer, path: &str, token: &str) -> (StatusCode, Value) {
    let answer = server
        .request_v2(Method::GET, path)
        .token(Some(token))
        .send()
        .await;
    (answer.status, answer.json)
}

fn fields(body: &Value) -> Vec<String> {
    assert_error_body(body);
    body["validations"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_listed_to_their_owner_and_to_administrators() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        let carol = server.user("carol").await;
        let sink = server.state.interceptions().clone();
        let b1 = record(bob.id, Some("codex-1"), 30);
        let b2 = record(bob.id, Some("codex-1"), 20);
        let c1 = record(carol.id, None, 10);
        let (b2_id, c1_id) = (b2.start.id, c1.start.id);
        for r in [b1, b2, c1] {
            sink.started(&r.start);
            sink.finished(r);
        }
        sink.flush().await;

        let (s, body) = get(&server, "/aibridge/interceptions", &bob.token).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let page: AIBridgeListInterceptionsResponse = serde_json::from_value(body).unwrap();
        assert_eq!(page.results.len(), 2);
        assert_eq!(page.results[0].id, b2_id);
        // gpt-4o-mini: $0.15 + $0.60 per million.
        assert_eq!(page.results[0].total_cost_micros, Some(750_000));
        assert_eq!(page.results[0].credential_kind, "byok");
        assert_eq!(page.next_after_id, None);

        let (s, body) = get(
            &server,
            "/aibridge/interceptions?limit=1",
            &server.admin_token,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let page: AIBridgeListInterceptionsResponse = serde_json::from_value(body).unwrap();
        assert_eq!(page.results[0].id, c1_id);
        assert_eq!(page.next_after_id, Some(c1_id));

        let (s, body) = get(
            &server,
            "/aibridge/interceptions?initiator=carol",
            &bob.token,
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
        assert_error_body(&body);

        let (s, body) = get(&server, "/aibridge/sessions", &bob.token).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let sessions: AIBridgeListSessionsResponse = serde_json::from_value(body).unwrap();
        assert_eq!(sessions.sessions.len(), 1);
        assert_eq!(sessions.sessions[0].id, "codex-1");
        assert_eq!(sessions.sessions[0].interception_count, 2);
        assert_eq!(sessions.sessions[0].total_cost_micros, 1_500_000);
        assert_eq!(sessions.sessions[0].client.as_deref(), Some("codex"));

        let (s, body) = get(
            &server,
            "/aibridge/sessions?initiator=me",
            &server.admin_token,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let (s, body) = get(&server, "/aibridge/sessions", &server.admin_token).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let all: AIBridgeListSessionsResponse = serde_json::from_value(body).unwrap();
        assert_eq!(all.sessions.len(), 2);
        assert_eq!(all.sessions[0].id, c1_id.to_string());

        let metrics = server
            .http
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("aibridge_records_recorded_total 3"),
            "{metrics}"
        );
        assert!(
            metrics.contains("aibridge_records_dropped_total 0"),
            "{metrics}"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_name_the_parameter() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let token = server.admin_token.clone();
        let over = MAX_AIBRIDGE_PAGE_LIMIT + 1;
        for (path, field) in [
            (format!("/aibridge/interceptions?limit={over}"), "limit"),
            ("/aibridge/interceptions?limit=0".to_owned(), "limit"),
            ("/aibridge/interceptions?after_id=x".to_owned(), "after_id"),
            (
                "/aibridge/interceptions?started_after=yesterday".to_owned(),
                "started_after",
            ),
            (
                "/aibridge/sessions?started_after=2026-02-01T00:00:00Z\
                 &started_before=2026-01-01T00:00:00Z"
                    .to_owned(),
                "started_before",
            ),
        ] {
            let (s, body) = get(&server, &path, &token).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {body}");
            assert_eq!(fields(&body), [field], "{path}");
        }
        let (s, body) = get(
            &server,
            &format!("/aibridge/sessions?limit={MAX_AIBRIDGE_PAGE_LIMIT}"),
            &token,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        // Unknown parameters are refused by the strict query extractor.
        let (s, body) = get(&server, "/aibridge/sessions?provider=openai", &token).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        // A cursor the server did not give out.
        let (s, body) = get(&server, "/aibridge/sessions?cursor=bm9wZQ", &token).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_error_body(&body);
        // An after_id naming no interception.
        let (s, _) = get(
            &server,
            &format!("/aibridge/interceptions?after_id={}", Uuid::new_v4()),
            &token,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        server.stop().await;
    })
    .await;
}
