//! API token lifecycle on both backends (docs/api-tokens.md): named tokens with a lifetime,
//! the list and the single read never showing a secret, last use written at most once per
//! `LAST_USED_RESOLUTION`, expiry and revocation answered 401 with a clear message at once
//! — also by a second server on the same database —, the bootstrap admin token revocable
//! once another administrator token exists (never the last one), a revoked operator token
//! staying revoked across restarts, and the query-parameter token accepted on WebSocket
//! upgrades and file downloads only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use chatd_core::store::{Store, StoreOptions};
use chatd_core::{Keyring, SecretKey, LAST_ADMIN_TOKEN_MESSAGE};
use chatd_test_support::db::on_each_backend;
use chatd_test_support::db::RawSql;
use chatd_test_support::scripted::ScriptedModel;
use chatd_test_support::server::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use server_example::state::{build_on, ServerOptions};

async fn call(
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, String) {
    let http = reqwest::Client::new();
    let mut req = http.request(method, format!("{base}/api/v2{path}"));
    if let Some(t) = token {
        req = req.header("Coder-Session-Token", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, value, text)
}

/// A second store on the same database: what another replica of the server opens.
async fn replica(store: &Store) -> Store {
    let pool = store.pool();
    if pool.connect_options().database_url.scheme() == "sqlite" {
        let row: (i64, String, String) = sqlx::query_as("PRAGMA database_list")
            .fetch_one(pool)
            .await
            .unwrap();
        Store::connect(&format!("sqlite://{}", row.2))
            .await
            .unwrap()
    } else {
        let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(pool)
            .await
            .unwrap();
        let url = std::env::var(chatd_test_support::db::DATABASE_URL_ENV).unwrap();
        let mut options = StoreOptions::new(&url);
        options.schema = Some(schema);
        Store::connect_with(options).await.unwrap()
    }
}

/// A server over `store` with its own HTTP listener; returns its base URL.
async fn serve(store: &Store) -> String {
    let keyring = Arc::new(Keyring::new("test", SecretKey::generate().unwrap()).unwrap());
    let mut options = ServerOptions::new(StoreOptions::new("unused"), keyring);
    options.admin_token = Some(chatd_test_support::server::ADMIN_TOKEN.to_owned());
    options.engine = chatd_test_support::scripted::fast_settings();
    options.models = Some(chatd_test_support::scripted::ScriptedResolver::new(
        ScriptedModel::new([]),
    ));
    let state = build_on(
        chatd_test_support::server::admin_over(store, &options),
        options,
    )
    .await
    .unwrap()
    .state;
    let app = server_example::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_tokens_are_listed_expire_and_are_revoked_everywhere_at_once() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let base = server.base.clone();
        let bob = server.user("bob").await;
        let carol = server.user("carol").await;

        // Create: a name and a lifetime of one day in nanoseconds (Go's duration).
        let (s, body, _) = call(
            &base,
            Method::POST,
            "/users/me/keys/tokens",
            Some(&bob.token),
            Some(json!({"token_name": "ci", "lifetime": 86_400_000_000_000_i64})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let ci = body["key"].as_str().unwrap().to_owned();
        assert!(ci.starts_with(chatd_core::store::API_TOKEN_PREFIX));
        // The new token works.
        let (s, me, _) = call(&base, Method::GET, "/users/me", Some(&ci), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(me["username"], "bob");

        // The list: every token, never a secret.
        let (s, list, raw) = call(
            &base,
            Method::GET,
            "/users/bob/keys/tokens",
            Some(&bob.token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(!raw.contains(&ci) && !raw.contains(&bob.token), "{raw}");
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 2, "{list:?}");
        let ci_row = list.iter().find(|t| t["token_name"] == "ci").unwrap();
        for field in ["id", "token_name", "created_at", "last_used", "expires_at"] {
            assert!(ci_row.get(field).is_some(), "{field} in {ci_row}");
        }
        assert_eq!(ci_row["lifetime_seconds"], 86_400);
        assert_eq!(ci_row["login_type"], "token");
        assert_eq!(ci_row["scope"], "all");
        assert_ne!(ci_row["last_used"], "0001-01-01T00:00:00Z", "used once");
        let ci_id = ci_row["id"].as_str().unwrap().to_owned();
        // The unnamed token (from `POST /users/{user}/keys`) got a name and never expires.
        let other = list.iter().find(|t| t["token_name"] != "ci").unwrap();
        assert!(other["token_name"].as_str().unwrap().starts_with("token-"));
        assert_eq!(other["expires_at"], Value::Null);
        assert_eq!(other["lifetime_seconds"], 0);

        // One token; someone else's tokens are 403 (before any lookup), an unknown id 404.
        let (s, one, raw) = call(
            &base,
            Method::GET,
            &format!("/users/me/keys/{ci_id}"),
            Some(&bob.token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(one["token_name"], "ci");
        assert!(!raw.contains(&ci));
        for (method, path) in [
            (Method::GET, format!("/users/bob/keys/{ci_id}")),
            (Method::DELETE, format!("/users/bob/keys/{ci_id}")),
            (Method::GET, "/users/bob/keys/tokens".to_owned()),
        ] {
            let (s, _, _) = call(&base, method, &path, Some(&carol.token), None).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
        }
        let (s, _, _) = call(
            &base,
            Method::GET,
            &format!("/users/carol/keys/{ci_id}"),
            Some(&carol.token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "bob's token is not carol's");
        // Administrators read anyone's.
        let (s, _, _) = call(
            &base,
            Method::GET,
            &format!("/users/{}/keys/{ci_id}", bob.id),
            Some(&server.admin_token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);

        // Names are unique per user, case-insensitively; requests are validated.
        let (s, body, _) = call(
            &base,
            Method::POST,
            "/users/me/keys/tokens",
            Some(&bob.token),
            Some(json!({"token_name": "CI"})),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "{body}");
        assert!(body["message"].as_str().unwrap().contains("already exists"));
        for bad in [
            json!({"lifetime": -1}),
            json!({"lifetime": 5}),
            json!({"token_name": "x".repeat(codersdk::MAX_TOKEN_NAME_BYTES + 1)}),
            json!({"scope": "application_connect"}),
        ] {
            let (s, body, _) = call(
                &base,
                Method::POST,
                "/users/me/keys/tokens",
                Some(&bob.token),
                Some(bad.clone()),
            )
            .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }

        // Expiry: a token past its expiry is a 401 that says so.
        let (_, body, _) = call(
            &base,
            Method::POST,
            "/users/me/keys/tokens",
            Some(&bob.token),
            Some(json!({"token_name": "short", "lifetime": 1_000_000_000})),
        )
        .await;
        let short = body["key"].as_str().unwrap().to_owned();
        sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE token_name = 'short'")
            .execute(store.pool())
            .await
            .unwrap();
        let (s, body, _) = call(&base, Method::GET, "/users/me", Some(&short), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(
            body["message"].as_str().unwrap().contains("expired"),
            "{body}"
        );
        // A real one-second lifetime runs out too.
        let (_, body, _) = call(
            &base,
            Method::POST,
            "/users/me/keys/tokens",
            Some(&bob.token),
            Some(json!({"token_name": "second", "lifetime": 1_000_000_000})),
        )
        .await;
        let second = body["key"].as_str().unwrap().to_owned();
        assert_eq!(
            call(&base, Method::GET, "/users/me", Some(&second), None)
                .await
                .0,
            StatusCode::OK
        );
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(
            call(&base, Method::GET, "/users/me", Some(&second), None)
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );

        // Revocation holds at once, here and on another server sharing the database.
        let other_store = replica(&store).await;
        let other = serve(&other_store).await;
        assert_eq!(
            call(&other, Method::GET, "/users/me", Some(&ci), None)
                .await
                .0,
            StatusCode::OK
        );
        let (s, _, raw) = call(
            &base,
            Method::DELETE,
            &format!("/users/me/keys/{ci_id}"),
            Some(&bob.token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert!(raw.is_empty());
        for server_base in [&base, &other] {
            let (s, body, _) = call(server_base, Method::GET, "/users/me", Some(&ci), None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
            assert!(
                body["message"].as_str().unwrap().contains("revoked"),
                "{body}"
            );
        }
        // Gone from the list; a second revocation is 404.
        let (_, list, _) = call(
            &base,
            Method::GET,
            "/users/me/keys/tokens",
            Some(&bob.token),
            None,
        )
        .await;
        assert!(list
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != ci_id.as_str()));
        let (s, _, _) = call(
            &base,
            Method::DELETE,
            &format!("/users/me/keys/{ci_id}"),
            Some(&bob.token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        other_store.close().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_use_is_written_at_most_once_per_resolution() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        let last_used = || async {
            sqlx::query_scalar::<_, Option<i64>>(
                "SELECT t.last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE u.username = 'bob'",
            )
            .fetch_one(store.pool())
            .await
            .unwrap()
        };
        assert_eq!(last_used().await, None, "never used");
        let me = |token: String| {
            let base = server.base.clone();
            async move {
                call(&base, Method::GET, "/users/me", Some(&token), None)
                    .await
                    .0
            }
        };
        assert_eq!(me(bob.token.clone()).await, StatusCode::OK);
        let first = last_used().await.expect("written on first use");
        for _ in 0..5 {
            assert_eq!(me(bob.token.clone()).await, StatusCode::OK);
        }
        assert_eq!(
            last_used().await,
            Some(first),
            "not rewritten within the resolution"
        );
        // Older than the resolution: the next use writes it again.
        let resolution = i64::try_from(chatd_core::LAST_USED_RESOLUTION.as_micros()).unwrap();
        let old = first - resolution - 1;
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE last_used_at = $2")
            .bind(old)
            .bind(first)
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(me(bob.token.clone()).await, StatusCode::OK);
        assert!(last_used().await.unwrap() > old);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_admin_token_is_revocable_once_another_admin_token_exists() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let base = server.base.clone();
        let admin = server.admin_token.clone();
        let (_, list, _) = call(
            &base,
            Method::GET,
            "/users/me/keys/tokens",
            Some(&admin),
            None,
        )
        .await;
        let list = list.as_array().unwrap().clone();
        assert_eq!(list.len(), 1, "the bootstrap token");
        let bootstrap_id = list[0]["id"].as_str().unwrap().to_owned();

        // The only administrator token cannot go.
        let (s, body, _) = call(
            &base,
            Method::DELETE,
            &format!("/users/me/keys/{bootstrap_id}"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(body["message"], LAST_ADMIN_TOKEN_MESSAGE);
        // A member's token does not count as an administrator token.
        let bob = server.user("bob").await;
        let (s, _, _) = call(
            &base,
            Method::DELETE,
            &format!("/users/me/keys/{bootstrap_id}"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
        // An expired administrator token does not count either.
        let (_, body, _) = call(
            &base,
            Method::POST,
            "/users/me/keys/tokens",
            Some(&admin),
            Some(json!({"token_name": "stale", "lifetime": 1_000_000_000})),
        )
        .await;
        assert!(body["key"].is_string());
        sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE token_name = 'stale'")
            .execute(store.pool())
            .await
            .unwrap();
        let (s, _, _) = call(
            &base,
            Method::DELETE,
            &format!("/users/me/keys/{bootstrap_id}"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);

        // With a second live administrator token, the bootstrap token can be revoked.
        let (_, body, _) = call(
            &base,
            Method::POST,
            "/users/me/keys/tokens",
            Some(&admin),
            Some(json!({"token_name": "ops"})),
        )
        .await;
        let ops = body["key"].as_str().unwrap().to_owned();
        let (s, _, _) = call(
            &base,
            Method::DELETE,
            &format!("/users/me/keys/{bootstrap_id}"),
            Some(&ops),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert_eq!(
            call(&base, Method::GET, "/users/me", Some(&admin), None)
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        // And now "ops" is the last one.
        let (_, list, _) = call(
            &base,
            Method::GET,
            "/users/me/keys/tokens",
            Some(&ops),
            None,
        )
        .await;
        let ops_id = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["token_name"] == "ops")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (s, _, _) = call(
            &base,
            Method::DELETE,
            &format!("/users/me/keys/{ops_id}"),
            Some(&ops),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
        // Members revoke their own tokens freely.
        let (_, list, _) = call(
            &base,
            Method::GET,
            "/users/me/keys/tokens",
            Some(&bob.token),
            None,
        )
        .await;
        let bob_id = list[0]["id"].as_str().unwrap().to_owned();
        let (s, _, _) = call(
            &base,
            Method::DELETE,
            &format!("/users/me/keys/{bob_id}"),
            Some(&bob.token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);

        // The operator's token stays revoked when the server starts again with it.
        let keyring = Arc::new(Keyring::new("test", SecretKey::generate().unwrap()).unwrap());
        let mut options = ServerOptions::new(StoreOptions::new("unused"), keyring);
        options.admin_token = Some(chatd_test_support::server::ADMIN_TOKEN.to_owned());
        let started = build_on(
            chatd_test_support::server::admin_over(&store, &options),
            options,
        )
        .await
        .unwrap();
        assert!(started.admin_token_refused);
        assert_eq!(
            call(&base, Method::GET, "/users/me", Some(&admin), None)
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        started.state.engine().clone().shutdown().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_token_works_on_websockets_and_downloads_only() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        // A file to download.
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01".to_vec();
        let file: Value = server
            .http
            .post(server.api(&format!(
                "/chats/files?organization={}",
                server.state.default_organization()
            )))
            .header("Coder-Session-Token", &bob.token)
            .header("Content-Type", "image/png")
            .body(png.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let file_id = file["id"].as_str().unwrap();
        let download = server
            .http
            .get(server.api(&format!(
                "/chats/files/{file_id}?coder_session_token={}",
                bob.token
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(download.status(), StatusCode::OK);
        assert_eq!(download.bytes().await.unwrap().to_vec(), png);
        // A WebSocket upgrade.
        let ws = format!(
            "{}/api/experimental/chats/watch?coder_session_token={}",
            server.base.replacen("http://", "ws://", 1),
            bob.token
        );
        let (socket, response) = tokio_tungstenite::connect_async(ws).await.unwrap();
        assert_eq!(response.status(), 101);
        drop(socket);
        // Anywhere else: 401, saying where the token goes.
        for path in ["/chats", "/chats/models"] {
            let r = server
                .http
                .get(server.api(&format!("{path}?coder_session_token={}", bob.token)))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
            let body: codersdk::Response = r.json().await.unwrap();
            assert!(body.detail.contains("Coder-Session-Token"), "{body:?}");
        }
        // A revoked token is refused on the WebSocket too.
        let (_, list, _) = call(
            &server.base,
            Method::GET,
            "/users/me/keys/tokens",
            Some(&bob.token),
            None,
        )
        .await;
        let id = list[0]["id"].as_str().unwrap().to_owned();
        let (_, body, _) = call(
            &server.base,
            Method::POST,
            "/users/me/keys/tokens",
            Some(&bob.token),
            Some(json!({"token_name": "second"})),
        )
        .await;
        let second = body["key"].as_str().unwrap().to_owned();
        let (s, _, _) = call(
            &server.base,
            Method::DELETE,
            &format!("/users/me/keys/{id}"),
            Some(&second),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let ws = format!(
            "{}/api/experimental/chats/watch?coder_session_token={}",
            server.base.replacen("http://", "ws://", 1),
            bob.token
        );
        assert!(tokio_tungstenite::connect_async(ws).await.is_err());
        server.stop().await;
    })
    .await;
}
