//! `GET/PUT /api/experimental/chats/config/model-override/{context}` on both backends:
//! read (every user), write (admin, 204), clear, the 400s (unknown context, bad or unusable
//! model config, bad bodies and queries), 403 and 401, the typed client against the server,
//! and the `general` override choosing the model of a chat created over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_core::store::MODEL_OVERRIDE_KEY_PREFIX;
use chatd_test_support::db::{on_each_backend, RawSql};
use chatd_test_support::request::validation_fields;
use chatd_test_support::scripted::ScriptedModel;
use chatd_test_support::server::{TestServer, ADMIN_TOKEN};
use codersdk::client::Client;
use codersdk::{
    ChatModelOverrideContext, CreateChatModelConfigRequest, CreateChatProviderConfigRequest,
    SecretString, UpdateChatModelOverrideRequest, Uuid,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PATH: &str = "/chats/config/model-override";

/// An `openai-compat` provider (its endpoint refuses connections: nothing here needs a
/// reply) and one model config per name, the first being the default. Returns their ids.
async fn models(server: &TestServer, names: &[&str]) -> Vec<Uuid> {
    let admin = Client::new(&server.base, ADMIN_TOKEN).unwrap();
    admin
        .create_chat_provider(&CreateChatProviderConfigRequest {
            provider: "openai-compat".into(),
            api_key: Some(SecretString::from("sk-test-not-a-key")),
            base_url: Some("http://127.0.0.1:9/v1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for name in names {
        let created = admin
            .create_chat_model_config(&CreateChatModelConfigRequest {
                provider: "openai-compat".into(),
                model: (*name).into(),
                context_limit: Some(128_000),
                ..Default::default()
            })
            .await
            .unwrap();
        ids.push(created.id);
    }
    ids
}

/// Sends a request; returns the status and the body as JSON (`Null` when empty). Every
/// non-empty body must be JSON.
async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let answer = server
        .request(method, path)
        .token(token)
        .json_opt(body.as_ref())
        .send()
        .await;
    (answer.status, answer.json)
}

async fn stored(server: &TestServer, context: &str) -> Value {
    call(
        server,
        Method::GET,
        &format!("{PATH}/{context}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await
    .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_set_and_clear_overrides_and_every_user_reads_them() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let ids = models(&server, &["gpt-4o", "gpt-4o-mini"]).await;
        let member = server.user("member").await;

        for context in ["general", "explore", "title_generation"] {
            let (status, body) = call(
                &server,
                Method::GET,
                &format!("{PATH}/{context}"),
                Some(&member.token),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(
                body,
                json!({"context": context, "model_config_id": "", "is_malformed": false})
            );
        }

        let (status, body) = call(
            &server,
            Method::PUT,
            &format!("{PATH}/title_generation"),
            Some(ADMIN_TOKEN),
            Some(json!({"model_config_id": ids[1].to_string()})),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(body, Value::Null);
        let expected = json!({
            "context": "title_generation",
            "model_config_id": ids[1].to_string(),
            "is_malformed": false,
        });
        assert_eq!(stored(&server, "title_generation").await, expected);
        let (_, as_member) = call(
            &server,
            Method::GET,
            &format!("{PATH}/title_generation"),
            Some(&member.token),
            None,
        )
        .await;
        assert_eq!(as_member, expected);
        // Other contexts are untouched.
        assert_eq!(stored(&server, "general").await["model_config_id"], "");

        // The session token parameter is tolerated as a query key, but authenticates only
        // WebSocket upgrades and file downloads: without a header this is a 401.
        let (status, _) = call(
            &server,
            Method::GET,
            &format!("{PATH}/explore?coder_session_token={}", member.token),
            None,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // "" clears.
        let (status, _) = call(
            &server,
            Method::PUT,
            &format!("{PATH}/title_generation"),
            Some(ADMIN_TOKEN),
            Some(json!({"model_config_id": ""})),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(
            stored(&server, "title_generation").await["model_config_id"],
            ""
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_client_matches_the_server() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let ids = models(&server, &["gpt-4o", "gpt-4.1"]).await;
        let admin = Client::new(&server.base, ADMIN_TOKEN).unwrap();
        let general = ChatModelOverrideContext::General;
        admin
            .update_chat_model_override(
                &general,
                &UpdateChatModelOverrideRequest {
                    model_config_id: ids[1].to_string(),
                },
            )
            .await
            .unwrap();
        let read = admin.chat_model_override(&general).await.unwrap();
        assert_eq!(read.context, general);
        assert_eq!(read.model_config_id, ids[1].to_string());
        assert!(!read.is_malformed);

        let err = admin
            .update_chat_model_override(
                &general,
                &UpdateChatModelOverrideRequest {
                    model_config_id: Uuid::new_v4().to_string(),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(400));
        let response = err.response().unwrap();
        assert_eq!(
            response.message,
            chatd_core::store::INVALID_MODEL_OVERRIDE_MESSAGE
        );
        let err = admin
            .chat_model_override(&ChatModelOverrideContext::from_wire("advisor"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(400));
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_json_errors_and_change_nothing() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let ids = models(&server, &["gpt-4o", "gpt-4o-mini", "gpt-4.1"]).await;
        let member = server.user("member").await;
        let general = format!("{PATH}/general");
        let (status, _) = call(
            &server,
            Method::PUT,
            &general,
            Some(ADMIN_TOKEN),
            Some(json!({"model_config_id": ids[0].to_string()})),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let before = stored(&server, "general").await;

        // Unknown contexts (newer Coder's included), for reads and writes.
        for context in ["advisor", "GENERAL", "x%20y"] {
            let path = format!("{PATH}/{context}");
            let (status, body) = call(&server, Method::GET, &path, Some(ADMIN_TOKEN), None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{context}: {body}");
            assert_eq!(validation_fields(&body), ["context"], "{body}");
            let (status, body) = call(
                &server,
                Method::PUT,
                &path,
                Some(ADMIN_TOKEN),
                Some(json!({"model_config_id": ids[1].to_string()})),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{context}: {body}");
            assert_eq!(validation_fields(&body), ["context"], "{body}");
        }

        // Not a UUID, unknown, disabled, deleted.
        let admin = Client::new(&server.base, ADMIN_TOKEN).unwrap();
        admin
            .update_chat_model_config(
                ids[1],
                &codersdk::UpdateChatModelConfigRequest {
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        admin.delete_chat_model_config(ids[2]).await.unwrap();
        for bad in [
            json!("not-a-uuid"),
            json!(Uuid::new_v4().to_string()),
            json!(ids[1].to_string()),
            json!(ids[2].to_string()),
        ] {
            let (status, body) = call(
                &server,
                Method::PUT,
                &general,
                Some(ADMIN_TOKEN),
                Some(json!({ "model_config_id": bad })),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert_eq!(validation_fields(&body), ["model_config_id"], "{body}");
        }

        // Bodies of the wrong shape, malformed JSON, the wrong content type.
        let (status, body) = call(
            &server,
            Method::PUT,
            &general,
            Some(ADMIN_TOKEN),
            Some(json!({"model_config_id": 42})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        for (content_type, raw, want) in [
            (
                "application/json",
                "{\"model_config_id\": \"",
                StatusCode::BAD_REQUEST,
            ),
            (
                "text/plain",
                "{\"model_config_id\": \"\"}",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
        ] {
            let resp = server
                .http
                .put(server.api(&general))
                .header("Coder-Session-Token", ADMIN_TOKEN)
                .header("Content-Type", content_type)
                .body(raw)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), want);
            let body: Value = resp.json().await.unwrap();
            assert!(body["message"].is_string(), "{body}");
        }

        // Unknown query parameters.
        let (status, body) = call(
            &server,
            Method::GET,
            &format!("{general}?verbose=1"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

        // Members may not write; nobody without a token may read or write.
        let (status, body) = call(
            &server,
            Method::PUT,
            &general,
            Some(&member.token),
            Some(json!({"model_config_id": ""})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body["message"].is_string());
        for (method, token) in [
            (Method::GET, None),
            (Method::PUT, None),
            (Method::GET, Some("chatd_not_a_real_token")),
        ] {
            let (status, body) = call(
                &server,
                method.clone(),
                &general,
                token,
                Some(json!({"model_config_id": ""})),
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {body}");
            assert!(body["message"].is_string());
        }

        // Other methods.
        let (status, body) = call(&server, Method::DELETE, &general, Some(ADMIN_TOKEN), None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");

        assert_eq!(stored(&server, "general").await, before);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_or_malformed_override_is_reported_and_chats_still_get_a_model() {
    on_each_backend(|store| async move {
        // The server's own resolver (the store's configuration), not a scripted one.
        let server = TestServer::builder(&store).own_models().start().await;
        let ids = models(&server, &["gpt-4o", "gpt-4.1"]).await;
        let admin = Client::new(&server.base, ADMIN_TOKEN).unwrap();
        let org = server.state.default_organization();
        let create = |text: &str| {
            json!({"organization_id": org.to_string(), "content": [{"type": "text", "text": text}]})
        };

        // The general override is the model of a chat that names none.
        let (status, _) = call(
            &server,
            Method::PUT,
            &format!("{PATH}/general"),
            Some(ADMIN_TOKEN),
            Some(json!({"model_config_id": ids[1].to_string()})),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, chat) = call(
            &server,
            Method::POST,
            "/chats",
            Some(ADMIN_TOKEN),
            Some(create("one")),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{chat}");
        assert_eq!(chat["last_model_config_id"], ids[1].to_string());

        // Its model deleted: the delete succeeds, GET still reports the override, and new
        // chats get the default.
        admin.delete_chat_model_config(ids[1]).await.unwrap();
        let view = stored(&server, "general").await;
        assert_eq!(view["model_config_id"], ids[1].to_string());
        let (status, chat) = call(
            &server,
            Method::POST,
            "/chats",
            Some(ADMIN_TOKEN),
            Some(create("two")),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{chat}");
        assert_eq!(chat["last_model_config_id"], ids[0].to_string());

        // A value that is not a UUID (written by hand) is flagged, and ignored.
        sqlx::query("UPDATE site_config SET value = $1 WHERE key = $2")
            .bind("gpt-4.1")
            .bind(format!("{MODEL_OVERRIDE_KEY_PREFIX}general"))
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(
            stored(&server, "general").await,
            json!({"context": "general", "model_config_id": "gpt-4.1", "is_malformed": true})
        );
        let (status, chat) = call(
            &server,
            Method::POST,
            "/chats",
            Some(ADMIN_TOKEN),
            Some(create("three")),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{chat}");
        assert_eq!(chat["last_model_config_id"], ids[0].to_string());
        server.stop().await;
    })
    .await;
}
