//! Usage limits over HTTP on both backends: the admin configuration and overrides (with
//! groups), their bad input, the caller's status, and the 409 a member over the limit gets
//! with its exact body.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_core::store::HiddenUsage;
use chatd_test_support::db::on_each_backend;
use chatd_test_support::request::{assert_error_body, validation_fields};
use chatd_test_support::scripted::{Reply, ScriptedModel};
use chatd_test_support::server::TestServer;
use codersdk::{ChatUsageLimitPeriod, Timestamp, Uuid, MAX_USAGE_LIMIT_MICROS};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let answer = server
        .request(method, path)
        .token(Some(token))
        .json_opt(body.as_ref())
        .send()
        .await;
    (answer.status, answer.json)
}

async fn call_v2(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let answer = server
        .request_v2(method, path)
        .token(Some(token))
        .json_opt(body.as_ref())
        .send()
        .await;
    (answer.status, answer.json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_overrides_and_groups_are_administered_over_http() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = server.admin_token.clone();
        let bob = server.user("bob").await;
        let org = server.state.default_organization();

        // The defaults: off, monthly, nothing overridden, nothing unpriced.
        let (s, config) = call(&server, Method::GET, "/chats/usage-limits", &admin, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(config["spend_limit_micros"], Value::Null);
        assert_eq!(config["period"], "month");
        assert_eq!(config["unpriced_model_count"], 0);
        assert_eq!(config["overrides"], json!([]));
        assert_eq!(config["group_overrides"], json!([]));

        // Members may neither read nor write the configuration.
        for (method, body) in [
            (Method::GET, None),
            (Method::PUT, Some(json!({"spend_limit_micros": 1}))),
        ] {
            let (s, body) = call(&server, method, "/chats/usage-limits", &bob.token, body).await;
            assert_eq!(s, StatusCode::FORBIDDEN);
            assert_error_body(&body);
        }

        // Bad input: 400 naming the field; nothing stored.
        for (body, field) in [
            (json!({"spend_limit_micros": 0}), "spend_limit_micros"),
            (json!({"spend_limit_micros": -5}), "spend_limit_micros"),
            (
                json!({"spend_limit_micros": MAX_USAGE_LIMIT_MICROS + 1}),
                "spend_limit_micros",
            ),
            (json!({"spend_limit_micros": 5, "period": "year"}), "period"),
        ] {
            let (s, answer) = call(
                &server,
                Method::PUT,
                "/chats/usage-limits",
                &admin,
                Some(body.clone()),
            )
            .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(validation_fields(&answer), [field], "{body}");
        }
        let (s, _) = call(
            &server,
            Method::PUT,
            "/chats/usage-limits",
            &admin,
            Some(json!({"spend_limit_micros": "lots"})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);

        // A limit at the largest allowed value, then a real one; the period defaults to a month.
        let (s, set) = call(
            &server,
            Method::PUT,
            "/chats/usage-limits",
            &admin,
            Some(json!({"spend_limit_micros": MAX_USAGE_LIMIT_MICROS, "period": "Week"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(set["period"], "week");
        let (s, set) = call(
            &server,
            Method::PUT,
            "/chats/usage-limits",
            &admin,
            Some(json!({"spend_limit_micros": 2_000_000})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            (set["spend_limit_micros"].as_i64(), set["period"].as_str()),
            (Some(2_000_000), Some("month"))
        );

        // User overrides: by username, id or `me`; unknown users 404; bad bodies 400.
        let (s, o) = call(
            &server,
            Method::PUT,
            "/chats/usage-limits/overrides/bob",
            &admin,
            Some(json!({"spend_limit_micros": 5_000_000})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(o["user_id"], bob.id.to_string());
        assert_eq!(o["username"], "bob");
        assert_eq!(o["spend_limit_micros"], 5_000_000);
        let (s, _) = call(
            &server,
            Method::PUT,
            "/chats/usage-limits/overrides/nobody",
            &admin,
            Some(json!({"spend_limit_micros": 5})),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        for body in [json!({}), json!({"spend_limit_micros": 0})] {
            let (s, answer) = call(
                &server,
                Method::PUT,
                &format!("/chats/usage-limits/overrides/{}", bob.id),
                &admin,
                Some(body),
            )
            .await;
            assert_eq!(s, StatusCode::BAD_REQUEST);
            assert_eq!(validation_fields(&answer), ["spend_limit_micros"]);
        }
        let (s, _) = call(
            &server,
            Method::PUT,
            "/chats/usage-limits/overrides/bob",
            &bob.token,
            Some(json!({"spend_limit_micros": 9})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        // Groups: created in the organization, bob added, then a group override.
        let (s, group) = call_v2(
            &server,
            Method::POST,
            &format!("/organizations/{org}/groups"),
            &admin,
            Some(json!({"name": "eng", "display_name": "Engineering"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{group}");
        let group_id = group["id"].as_str().unwrap().to_owned();
        let (s, _) = call_v2(
            &server,
            Method::POST,
            &format!("/organizations/{org}/groups"),
            &admin,
            Some(json!({"name": "eng"})),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, answer) = call_v2(
            &server,
            Method::POST,
            &format!("/organizations/{org}/groups"),
            &admin,
            Some(json!({"name": "not a name"})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(validation_fields(&answer), ["name"]);
        let (s, _) = call_v2(&server, Method::GET, "/groups", &bob.token, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, patched) = call_v2(
            &server,
            Method::PATCH,
            &format!("/groups/{group_id}"),
            &admin,
            Some(json!({"add_users": [bob.id]})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(patched["total_member_count"], 1);
        assert_eq!(patched["members"][0]["username"], "bob");
        let (s, _) = call_v2(
            &server,
            Method::PATCH,
            &format!("/groups/{group_id}"),
            &admin,
            Some(json!({"add_users": [Uuid::new_v4()]})),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, listed) = call_v2(
            &server,
            Method::GET,
            &format!("/organizations/{org}/groups"),
            &admin,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(listed.as_array().unwrap().len(), 1);

        let (s, go) = call(
            &server,
            Method::PUT,
            &format!("/chats/usage-limits/group-overrides/{group_id}"),
            &admin,
            Some(json!({"spend_limit_micros": 3_000_000})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            (
                go["group_name"].as_str(),
                go["member_count"].as_i64(),
                go["spend_limit_micros"].as_i64()
            ),
            (Some("eng"), Some(1), Some(3_000_000))
        );
        let (s, answer) = call(
            &server,
            Method::PUT,
            "/chats/usage-limits/group-overrides/not-a-uuid",
            &admin,
            Some(json!({"spend_limit_micros": 1})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_error_body(&answer);
        for method in [Method::PUT, Method::DELETE] {
            let (s, _) = call(
                &server,
                method.clone(),
                &format!("/chats/usage-limits/group-overrides/{}", Uuid::new_v4()),
                &admin,
                Some(json!({"spend_limit_micros": 1})),
            )
            .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{method}");
        }

        // The configuration lists both overrides.
        let (_, config) = call(&server, Method::GET, "/chats/usage-limits", &admin, None).await;
        assert_eq!(config["overrides"][0]["username"], "bob");
        assert_eq!(config["group_overrides"][0]["group_id"], group_id);

        // Deleting: 204, also when there is nothing to delete; the group goes with its
        // override.
        for _ in 0..2 {
            let (s, _) = call(
                &server,
                Method::DELETE,
                "/chats/usage-limits/overrides/bob",
                &admin,
                None,
            )
            .await;
            assert_eq!(s, StatusCode::NO_CONTENT);
        }
        let (s, _) = call_v2(
            &server,
            Method::DELETE,
            &format!("/groups/{group_id}"),
            &admin,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, config) = call(&server, Method::GET, "/chats/usage-limits", &admin, None).await;
        assert_eq!(
            (
                config["overrides"].clone(),
                config["group_overrides"].clone()
            ),
            (json!([]), json!([]))
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpriced_enabled_models_are_counted() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = server.admin_token.clone();
        let (s, _) = call(
            &server,
            Method::POST,
            "/chats/providers",
            &admin,
            Some(json!({"provider": "openai", "api_key": "sk-test-unpriced"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        for (model, cost) in [
            ("gpt-4o", None),
            ("in-house-model", None),
            (
                "in-house-priced",
                Some(json!({"cost": {"input_price_per_million_tokens": "1"}})),
            ),
        ] {
            let mut body = json!({"provider": "openai", "model": model, "context_limit": 100000});
            if let Some(cost) = cost {
                body["model_config"] = cost;
            }
            let (s, answer) = call(
                &server,
                Method::POST,
                "/chats/model-configs",
                &admin,
                Some(body),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{answer}");
        }
        let (_, config) = call(&server, Method::GET, "/chats/usage-limits", &admin, None).await;
        // gpt-4o is in the price book; the priced in-house model has its own price.
        assert_eq!(config["unpriced_model_count"], 1);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_over_the_limit_gets_409_and_a_true_status() {
    on_each_backend(|store| async move {
        // Every model call is refused, so once the first turn failed nothing (no title,
        // no turn summary) adds to the spend while the test reads it.
        let refusals = ScriptedModel::new((0..20).map(|_| Reply::Fail(401)));
        let server = TestServer::start(&store, refusals).await;
        let admin = server.admin_token.clone();
        let bob = server.user("bob").await;

        // Off: Coder's disabled status, with the spend and period bounds written.
        let (s, status) = call(
            &server,
            Method::GET,
            "/chats/usage-limits/status",
            &bob.token,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            status,
            json!({
                "is_limited": false,
                "current_spend": 0,
                "period_start": "0001-01-01T00:00:00Z",
                "period_end": "0001-01-01T00:00:00Z"
            })
        );

        let (s, _) = call(
            &server,
            Method::PUT,
            "/chats/usage-limits",
            &admin,
            Some(json!({"spend_limit_micros": 1_000, "period": "day"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, chat) = call(
            &server,
            Method::POST,
            "/chats",
            &bob.token,
            Some(json!({"content": [{"type": "text", "text": "hello"}]})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{chat}");
        let chat_id: Uuid = chat["id"].as_str().unwrap().parse().unwrap();
        // The first turn is over before the figures are read.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (_, now) = call(
                &server,
                Method::GET,
                &format!("/chats/{chat_id}"),
                &bob.token,
                None,
            )
            .await;
            if now["status"] == "error" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the first turn did not finish: {now}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // What the failed turn recorded (the scripted model reports usage on its refusal).
        let (_, before) = call(
            &server,
            Method::GET,
            "/chats/usage-limits/status",
            &bob.token,
            None,
        )
        .await;
        let before = before["current_spend"].as_i64().unwrap();
        server
            .state
            .engine()
            .store()
            .record_hidden_usage(
                chat_id,
                HiddenUsage {
                    model_config_id: None,
                    usage: codersdk::ChatMessageUsage {
                        input_tokens: Some(1),
                        ..Default::default()
                    },
                    total_cost_micros: Some(5_000),
                    runtime_ms: 1,
                },
            )
            .await
            .unwrap();

        // The status tells bob the truth.
        let (_, status) = call(
            &server,
            Method::GET,
            "/chats/usage-limits/status",
            &bob.token,
            None,
        )
        .await;
        let spent = before + 5_000;
        let (start, end) =
            chatd_core::usage_limits::period_window(&ChatUsageLimitPeriod::Day, chrono::Utc::now());
        assert_eq!(
            status,
            json!({
                "is_limited": true,
                "period": "day",
                "spend_limit_micros": 1_000,
                "current_spend": spent,
                "period_start": Timestamp(start),
                "period_end": Timestamp(end),
            })
        );

        // Every model-invoking route answers 409 with the figures.
        let want = json!({
            "message": "Chat usage limit exceeded.",
            "spent_micros": spent,
            "limit_micros": 1_000,
            "resets_at": Timestamp(end),
        });
        let text = json!({"content": [{"type": "text", "text": "more"}]});
        for (method, path, body) in [
            (Method::POST, "/chats".to_owned(), Some(text.clone())),
            (
                Method::POST,
                format!("/chats/{chat_id}/messages"),
                Some(text.clone()),
            ),
            (
                Method::POST,
                format!("/chats/{chat_id}/title/regenerate"),
                None,
            ),
            (
                Method::POST,
                format!("/chats/{chat_id}/title/propose"),
                None,
            ),
        ] {
            let (s, answer) = call(&server, method, &path, &bob.token, body).await;
            assert_eq!(s, StatusCode::CONFLICT, "{path}: {answer}");
            assert_eq!(answer, want, "{path}");
        }

        // The admin is not limited by bob's spend.
        let (_, status) = call(
            &server,
            Method::GET,
            "/chats/usage-limits/status",
            &admin,
            None,
        )
        .await;
        assert_eq!(status["current_spend"], 0);
        server.stop().await;
    })
    .await;
}
