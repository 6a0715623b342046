//! Chat debug logging over HTTP on both backends (docs/debug-runs.md): the settings' reads
//! and writes with their status codes (admin-only writes, 403 / 409 on a user's toggle,
//! 400 out of range), and a chat's runs (the owner and administrators read them, another
//! member and an unknown run get 404), with a pasted key absent from every answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use chatd_test_support::db::on_each_backend;
use chatd_test_support::request::validation_fields as fields;
use chatd_test_support::scripted::ScriptedModel;
use chatd_test_support::server::{TestServer, ADMIN_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Key-shaped text a member pastes into a message.
const PASTED_KEY: &str = "sk-live-pastedKEYmustNEVERappear0123456789";

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    // The chat itself shows what its owner wrote (its title, its messages); what the
    // debug routes answer never does.
    let secrets: &[&str] = if path.contains("/debug/") {
        &[PASTED_KEY]
    } else {
        &[]
    };
    let answer = server
        .request(method, path)
        .token(token)
        .json_opt(body.as_ref())
        .never_showing(secrets)
        .send()
        .await;
    (answer.status, answer.json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logging_settings_follow_their_rules() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        let bob = Some(bob.token.as_str());
        let admin = Some(ADMIN_TOKEN);
        const ADMIN_PATH: &str = "/chats/config/debug-logging";
        const USER_PATH: &str = "/chats/config/user-debug-logging";
        const DAYS_PATH: &str = "/chats/config/debug-retention-days";

        // Defaults: off, not allowed, 30 days; any user reads them.
        for token in [admin, bob] {
            let (s, body) = call(&server, Method::GET, ADMIN_PATH, token, None).await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(body, json!({"allow_users": false, "forced_by_deployment": false}));
            let (s, body) = call(&server, Method::GET, DAYS_PATH, token, None).await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(body, json!({"debug_retention_days": 30}));
        }
        let (_, body) = call(&server, Method::GET, USER_PATH, bob, None).await;
        assert_eq!(
            body,
            json!({"debug_logging_enabled": false, "user_toggle_allowed": false, "forced_by_deployment": false})
        );
        let _: codersdk::UserChatDebugLoggingSettings = serde_json::from_value(body).unwrap();
        for path in [ADMIN_PATH, USER_PATH, DAYS_PATH] {
            let (s, _) = call(&server, Method::GET, path, None, None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        }

        // A user may not turn it on before users are allowed: 403.
        let on = json!({"debug_logging_enabled": true});
        let (s, _) = call(&server, Method::PUT, USER_PATH, bob, Some(on.clone())).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Only administrators write the deployment's settings.
        let allow = json!({"allow_users": true});
        let (s, _) = call(&server, Method::PUT, ADMIN_PATH, bob, Some(allow.clone())).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = call(&server, Method::PUT, ADMIN_PATH, admin, Some(allow)).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, body) = call(&server, Method::GET, ADMIN_PATH, bob, None).await;
        assert_eq!(body, json!({"allow_users": true, "forced_by_deployment": false}));
        let (_, body) = call(&server, Method::GET, USER_PATH, bob, None).await;
        assert_eq!(body["user_toggle_allowed"], true);
        assert_eq!(body["debug_logging_enabled"], false);
        let (s, _) = call(&server, Method::PUT, USER_PATH, bob, Some(on.clone())).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, body) = call(&server, Method::GET, USER_PATH, bob, None).await;
        assert_eq!(body["debug_logging_enabled"], true);
        // The administrator's own toggle is theirs alone.
        let (_, body) = call(&server, Method::GET, USER_PATH, admin, None).await;
        assert_eq!(body["debug_logging_enabled"], false);

        // Forced by the deployment: on for everyone, and a toggle is a 409.
        store.set_debug_logging_forced(true);
        let (_, body) = call(&server, Method::GET, USER_PATH, admin, None).await;
        assert_eq!(
            body,
            json!({"debug_logging_enabled": true, "user_toggle_allowed": false, "forced_by_deployment": true})
        );
        let off = json!({"debug_logging_enabled": false});
        let (s, err) = call(&server, Method::PUT, USER_PATH, bob, Some(off)).await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(err["message"], chatd_core::DEBUG_LOGGING_FORCED_MESSAGE);
        store.set_debug_logging_forced(false);

        // Retention: 0 and 3650 are the edges; beyond them 400 naming the field.
        for days in [0, 3650] {
            let body = json!({"debug_retention_days": days});
            let (s, _) = call(&server, Method::PUT, DAYS_PATH, admin, Some(body)).await;
            assert_eq!(s, StatusCode::NO_CONTENT);
            let (_, body) = call(&server, Method::GET, DAYS_PATH, bob, None).await;
            assert_eq!(body, json!({"debug_retention_days": days}));
        }
        for days in [-1, 3651] {
            let body = json!({"debug_retention_days": days});
            let (s, err) = call(&server, Method::PUT, DAYS_PATH, admin, Some(body)).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{days}");
            assert_eq!(fields(&err), ["debug_retention_days"]);
        }
        let body = json!({"debug_retention_days": 7});
        let (s, _) = call(&server, Method::PUT, DAYS_PATH, bob, Some(body)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        server.stop().await;
    })
    .await;
}

async fn wait_waiting(server: &TestServer, token: &str, chat: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = call(
            server,
            Method::GET,
            &format!("/chats/{chat}"),
            Some(token),
            None,
        )
        .await;
        if body["status"] == "waiting" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chat stayed {}",
            body["status"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chats_runs_are_listed_and_exported_to_its_owner_and_administrators() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let org = server.state.default_organization();
        let admin = Some(ADMIN_TOKEN);
        let allow = json!({"allow_users": true});
        let (s, _) = call(
            &server,
            Method::PUT,
            "/chats/config/debug-logging",
            admin,
            Some(allow),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let on = json!({"debug_logging_enabled": true});
        let (s, _) = call(
            &server,
            Method::PUT,
            "/chats/config/user-debug-logging",
            Some(&alice.token),
            Some(on),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);

        let create = json!({
            "organization_id": org,
            "content": [{"type": "text", "text": format!("my key is {PASTED_KEY}")}],
        });
        let (s, chat) = call(
            &server,
            Method::POST,
            "/chats",
            Some(&alice.token),
            Some(create),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        let chat = chat["id"].as_str().unwrap().to_owned();
        wait_waiting(&server, &alice.token, &chat).await;

        let list_path = format!("/chats/{chat}/debug/runs");
        let (s, runs) = call(&server, Method::GET, &list_path, Some(&alice.token), None).await;
        assert_eq!(s, StatusCode::OK);
        let list: Vec<codersdk::ChatDebugRunSummary> =
            serde_json::from_value(runs.clone()).unwrap();
        // The turn's run (its title's and summary's runs come on their own schedule).
        assert!(!list.is_empty() && list.len() <= 3, "{runs}");
        let run = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "chat_turn")
            .unwrap();
        assert_eq!(run["chat_id"], chat.as_str());
        assert_eq!(run["status"], "completed");
        assert!(run["started_at"].is_string());
        assert!(run["finished_at"].is_string());
        assert!(run["summary"].is_object());
        let run_id = run["id"].as_str().unwrap().to_owned();

        let one_path = format!("/chats/{chat}/debug/runs/{run_id}");
        let (s, one) = call(&server, Method::GET, &one_path, Some(&alice.token), None).await;
        assert_eq!(s, StatusCode::OK);
        let parsed: codersdk::ChatDebugRun = serde_json::from_value(one.clone()).unwrap();
        assert_eq!(parsed.steps.len(), 1);
        let step = &one["steps"][0];
        assert_eq!(step["operation"], "stream");
        assert_eq!(step["status"], "completed");
        assert_eq!(step["step_number"], 1);
        assert!(step["attempts"].as_array().unwrap().is_empty());
        let sent = step["normalized_request"]["messages"][0]["content"][0]["text"]
            .as_str()
            .unwrap();
        assert_eq!(sent, "my key is [REDACTED]");

        // Administrators read it; another member and unknown runs are 404.
        let (s, _) = call(&server, Method::GET, &one_path, admin, None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = call(&server, Method::GET, &list_path, admin, None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = call(&server, Method::GET, &list_path, Some(&bob.token), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = call(&server, Method::GET, &one_path, Some(&bob.token), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let unknown = format!("/chats/{chat}/debug/runs/{}", uuid::Uuid::new_v4());
        let (s, _) = call(&server, Method::GET, &unknown, Some(&alice.token), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, err) = call(
            &server,
            Method::GET,
            &format!("/chats/{chat}/debug/runs/nope"),
            Some(&alice.token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["run"]);
        let (s, _) = call(
            &server,
            Method::GET,
            &format!("{list_path}?limit=5"),
            Some(&alice.token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = call(&server, Method::GET, &list_path, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);

        // Bob's chats are not recorded: his toggle is off.
        let create = json!({
            "organization_id": org,
            "content": [{"type": "text", "text": "hello"}],
        });
        let (_, chat) = call(
            &server,
            Method::POST,
            "/chats",
            Some(&bob.token),
            Some(create),
        )
        .await;
        let chat = chat["id"].as_str().unwrap().to_owned();
        wait_waiting(&server, &bob.token, &chat).await;
        let (s, runs) = call(
            &server,
            Method::GET,
            &format!("/chats/{chat}/debug/runs"),
            Some(&bob.token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(runs, json!([]));
        server.stop().await;
    })
    .await;
}
