//! `/api/v2` users and tokens on both backends: the three token transports and 401s, the
//! Coder `User` shape, user creation (admin, 409 on taken names, nothing stored on
//! failure), token issuance (admin or self; 403 otherwise), role changes and listing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_core::ErrorKind;
use chatd_test_support::db::{on_each_backend, RawSql};
use chatd_test_support::request::assert_error_body as assert_response;
use chatd_test_support::scripted::ScriptedModel;
use chatd_test_support::server::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use server_example::routes::users::{DEFAULT_USER_PAGE_LIMIT, MAX_USER_PAGE_LIMIT};

/// Sends a request with an optional session token and JSON body; returns status and body.
async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let answer = server
        .request_v2(method, path)
        .token(token)
        .json_opt(body.as_ref())
        .send()
        .await;
    (answer.status, answer.json)
}

async fn user_count(server: &TestServer) -> i64 {
    let (s, body) = call(
        server,
        Method::GET,
        "/users",
        Some(&server.admin_token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    body["count"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_accepted_in_header_bearer_and_query() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let bob = server.user("bob").await;
        let me = format!("{}/api/v2/users/me", server.base);
        let header = server
            .http
            .get(&me)
            .header("Coder-Session-Token", &bob.token)
            .send()
            .await
            .unwrap();
        let bearer = server
            .http
            .get(&me)
            .bearer_auth(&bob.token)
            .send()
            .await
            .unwrap();
        for resp in [header, bearer] {
            assert_eq!(resp.status(), StatusCode::OK);
            let user: codersdk::User = resp.json().await.unwrap();
            assert_eq!(user.id, bob.id);
            assert_eq!(user.username, "bob");
        }
        // The query parameter authenticates WebSocket upgrades and file downloads only
        // (docs/api-tokens.md): here even a valid token in it is a 401 that says so.
        let query = server
            .http
            .get(format!("{me}?coder_session_token={}", bob.token))
            .send()
            .await
            .unwrap();
        assert_eq!(query.status(), StatusCode::UNAUTHORIZED);
        let body: codersdk::Response = query.json().await.unwrap();
        assert!(body.detail.contains("coder_session_token"), "{body:?}");

        // Missing, unknown, over-long and wrongly-schemed tokens are JSON 401s.
        let missing = server.http.get(&me).send().await.unwrap();
        let unknown = server
            .http
            .get(&me)
            .header("Coder-Session-Token", "chatd_nope")
            .send()
            .await
            .unwrap();
        let huge = server
            .http
            .get(&me)
            .header("Coder-Session-Token", "x".repeat(10_000))
            .send()
            .await
            .unwrap();
        let basic = server
            .http
            .get(&me)
            .header("Authorization", format!("Basic {}", bob.token))
            .send()
            .await
            .unwrap();
        let wrong_query = server
            .http
            .get(format!("{me}?coder_session_token=wrong"))
            .send()
            .await
            .unwrap();
        for resp in [missing, unknown, huge, basic, wrong_query] {
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            let body: codersdk::Response = resp.json().await.unwrap();
            assert!(body.message.contains("logged in"));
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_is_a_coder_user_with_its_organization_and_role() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let org = server.state.default_organization();
        let bob = server.user("bob").await;
        let (s, me) = call(&server, Method::GET, "/users/me", Some(&bob.token), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(me["id"], json!(bob.id));
        assert_eq!(me["status"], "active");
        assert_eq!(me["login_type"], "none");
        assert_eq!(me["email"], "");
        assert_eq!(me["organization_ids"], json!([org]));
        assert_eq!(
            me["roles"],
            json!([{"name": "member", "display_name": "Member"}])
        );
        assert!(me["created_at"].is_string() && me["updated_at"].is_string());
        // Omitted-when-empty fields follow Coder's presence rules.
        assert!(me.get("avatar_url").is_none() && me.get("last_seen_at").is_none());

        let (s, admin) = call(
            &server,
            Method::GET,
            "/users/me",
            Some(&server.admin_token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(admin["username"], "admin");
        assert_eq!(admin["roles"][0]["name"], "admin");
        assert_eq!(admin["organization_ids"], json!([org]));
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_create_users_who_join_the_default_organization() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        let org = server.state.default_organization();
        let (s, user) = call(
            &server,
            Method::POST,
            "/users",
            admin,
            Some(json!({
                "username": "Carol-1",
                "name": "  Carol  ",
                "email": "carol@example.com",
                "password": "ignored-and-never-stored",
                "login_type": "password"
            })),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{user}");
        assert_eq!(user["username"], "Carol-1");
        assert_eq!(user["name"], "Carol");
        assert_eq!(user["email"], "carol@example.com");
        assert_eq!(user["organization_ids"], json!([org]));
        assert_eq!(user["roles"][0]["name"], "member");
        assert!(
            !user.to_string().contains("ignored-and-never-stored"),
            "passwords are never echoed"
        );
        let id = user["id"].as_str().unwrap().to_owned();
        // The admin can read the new user by id and by username (any case).
        for key in [id.as_str(), "carol-1", "CAROL-1"] {
            let (s, got) = call(&server, Method::GET, &format!("/users/{key}"), admin, None).await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(got["id"], json!(id));
        }
        let before = user_count(&server).await;

        // Taken usernames (case-insensitively) and e-mail addresses are 409s.
        for body in [
            json!({"username": "carol-1"}),
            json!({"username": "dave", "email": "CAROL@example.com"}),
        ] {
            let (s, err) = call(&server, Method::POST, "/users", admin, Some(body)).await;
            assert_eq!(s, StatusCode::CONFLICT, "{err}");
            assert_response(&err);
        }
        // Invalid fields are 400s naming every field; an unknown organization too.
        let (s, err) = call(
            &server,
            Method::POST,
            "/users",
            admin,
            Some(json!({"username": "me", "email": "no-at-sign"})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let fields: Vec<_> = err["validations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["field"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(fields, ["username", "email"]);
        let (s, err) = call(
            &server,
            Method::POST,
            "/users",
            admin,
            Some(json!({"username": "erin", "organization_ids": [uuid::Uuid::new_v4()]})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(err["validations"][0]["field"], "organization_ids");
        // Malformed JSON, a wrong content type and a body over the cap.
        let raw = server
            .http
            .post(format!("{}/api/v2/users", server.base))
            .header("Coder-Session-Token", &server.admin_token)
            .header("Content-Type", "application/json")
            .body(r#"{"username": "frank""#)
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
        let _: codersdk::Response = raw.json().await.unwrap();
        let text = server
            .http
            .post(format!("{}/api/v2/users", server.base))
            .header("Coder-Session-Token", &server.admin_token)
            .header("Content-Type", "text/plain")
            .body(r#"{"username": "frank"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let _: codersdk::Response = text.json().await.unwrap();
        let big = format!(
            r#"{{"username": "frank", "name": "{}"}}"#,
            "x".repeat(server_example::MAX_BODY_BYTES)
        );
        let big = server
            .http
            .post(format!("{}/api/v2/users", server.base))
            .header("Coder-Session-Token", &server.admin_token)
            .header("Content-Type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let _: codersdk::Response = big.json().await.unwrap();
        // Nothing of the failed requests was stored.
        assert_eq!(user_count(&server).await, before);

        // Only administrators create users: 403 for a member (before the body is judged),
        // 401 without a token.
        let bob = server.user("bob").await;
        let (s, err) = call(
            &server,
            Method::POST,
            "/users",
            Some(&bob.token),
            Some(json!({"username": "mallory"})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_response(&err);
        let forbidden_before_body = server
            .http
            .post(format!("{}/api/v2/users", server.base))
            .header("Coder-Session-Token", &bob.token)
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(forbidden_before_body.status(), StatusCode::FORBIDDEN);
        let (s, _) = call(
            &server,
            Method::POST,
            "/users",
            None,
            Some(json!({"username": "mallory"})),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(store
            .get_user_by_username("mallory")
            .await
            .unwrap()
            .is_none());
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_issued_to_admins_and_to_the_user_themself() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        let bob = server.user("bob").await;
        let carol = server.user("carol").await;

        // The user themself, named as `me`, by id or by username.
        for key in ["me".to_owned(), bob.id.to_string(), "BOB".to_owned()] {
            let (s, body) = call(
                &server,
                Method::POST,
                &format!("/users/{key}/keys"),
                Some(&bob.token),
                None,
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{body}");
            let key = body["key"].as_str().unwrap();
            assert!(key.starts_with(chatd_core::store::API_TOKEN_PREFIX));
            let (s, me) = call(&server, Method::GET, "/users/me", Some(key), None).await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(me["id"], json!(bob.id));
        }
        // The token is stored hashed: its text is nowhere in the database.
        let (_, body) = call(
            &server,
            Method::POST,
            "/users/me/keys",
            Some(&bob.token),
            None,
        )
        .await;
        let key = body["key"].as_str().unwrap().to_owned();
        let hashes: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert!(hashes.contains(&chatd_core::store::hash_api_token(&key)));
        assert!(hashes.iter().all(|h| !h.contains(&key)));

        // Another user's tokens: 403 for a member, whether that user exists or not (the
        // answer does not reveal who exists); an administrator may.
        for target in [carol.id.to_string(), "carol".into(), "nobody".into()] {
            let (s, err) = call(
                &server,
                Method::POST,
                &format!("/users/{target}/keys"),
                Some(&bob.token),
                None,
            )
            .await;
            assert_eq!(s, StatusCode::FORBIDDEN);
            assert_response(&err);
        }
        let (s, body) = call(&server, Method::POST, "/users/carol/keys", admin, None).await;
        assert_eq!(s, StatusCode::CREATED);
        let (_, me) = call(
            &server,
            Method::GET,
            "/users/me",
            body["key"].as_str(),
            None,
        )
        .await;
        assert_eq!(me["id"], json!(carol.id));
        // Unknown users are 404s for administrators; no token is 401.
        for target in [uuid::Uuid::new_v4().to_string(), "nobody".into()] {
            let (s, err) = call(
                &server,
                Method::POST,
                &format!("/users/{target}/keys"),
                admin,
                None,
            )
            .await;
            assert_eq!(s, StatusCode::NOT_FOUND);
            assert_response(&err);
        }
        let (s, _) = call(&server, Method::POST, "/users/me/keys", None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // Members read only themselves.
        let (s, _) = call(&server, Method::GET, "/users/carol", Some(&bob.token), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = call(&server, Method::GET, "/users/bob", Some(&bob.token), None).await;
        assert_eq!(s, StatusCode::OK);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_change_roles_but_never_their_own_or_the_last_admins() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        let bob = server.user("bob").await;

        // A member cannot change roles, nor create users before being promoted.
        let (s, _) = call(
            &server,
            Method::PUT,
            "/users/bob/roles",
            Some(&bob.token),
            Some(json!({"roles": ["admin"]})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, user) = call(
            &server,
            Method::PUT,
            "/users/bob/roles",
            admin,
            Some(json!({"roles": ["admin"]})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(user["roles"][0]["name"], "admin");
        let (s, _) = call(
            &server,
            Method::POST,
            "/users",
            Some(&bob.token),
            Some(json!({"username": "dave"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "the promotion takes effect at once");

        // Unknown roles are 400s; one's own roles cannot be changed.
        let (s, err) = call(
            &server,
            Method::PUT,
            "/users/bob/roles",
            admin,
            Some(json!({"roles": ["owner"]})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(err["validations"][0]["field"], "roles");
        let (s, err) = call(
            &server,
            Method::PUT,
            "/users/me/roles",
            Some(&bob.token),
            Some(json!({"roles": []})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_response(&err);
        let (s, _) = call(
            &server,
            Method::PUT,
            "/users/nobody/roles",
            admin,
            Some(json!({"roles": []})),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Bob demotes the first admin; then Bob is the last one. Through HTTP nobody can
        // demote him (only he is an admin, and not himself); the store refuses it anyway,
        // which is what decides when two admins demote each other at once.
        let (s, user) = call(
            &server,
            Method::PUT,
            "/users/admin/roles",
            Some(&bob.token),
            Some(json!({"roles": ["member"]})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(user["roles"][0]["name"], "member");
        let time = |k: &str| -> codersdk::Timestamp { user[k].as_str().unwrap().parse().unwrap() };
        assert!(time("updated_at") > time("created_at"));
        let err = store
            .set_user_role(bob.id, chatd_core::Role::Member)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let (s, _) = call(
            &server,
            Method::POST,
            "/users",
            admin,
            Some(json!({"username": "erin"})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "the demoted admin lost the role");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_users_in_pages() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        for name in ["dave", "Bob", "carol"] {
            server.user(name).await;
        }
        let (s, page) = call(&server, Method::GET, "/users", admin, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(page["count"], 4);
        let names: Vec<_> = page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            ["admin", "Bob", "carol", "dave"],
            "by username, any case"
        );
        assert!(page["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["organization_ids"].as_array().unwrap().len() == 1));
        let (s, page) = call(&server, Method::GET, "/users?limit=2&offset=1", admin, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(page["count"], 4);
        assert_eq!(page["users"][0]["username"], "Bob");
        assert_eq!(page["users"].as_array().unwrap().len(), 2);
        // Without a limit, or with 0, a page holds DEFAULT_USER_PAGE_LIMIT users; the
        // maximum limit is accepted, one more is not.
        for i in 0..DEFAULT_USER_PAGE_LIMIT {
            server.user(&format!("user{i}")).await;
        }
        for path in ["/users", "/users?limit=0"] {
            let (s, page) = call(&server, Method::GET, path, admin, None).await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(page["count"], DEFAULT_USER_PAGE_LIMIT + 4);
            assert_eq!(
                page["users"].as_array().unwrap().len() as i64,
                DEFAULT_USER_PAGE_LIMIT
            );
        }
        let max = format!("/users?limit={MAX_USER_PAGE_LIMIT}");
        assert_eq!(
            call(&server, Method::GET, &max, admin, None).await.0,
            StatusCode::OK
        );
        for bad in [
            format!("/users?limit={}", MAX_USER_PAGE_LIMIT + 1),
            "/users?limit=-1".to_owned(),
            "/users?limit=ten".to_owned(),
            "/users?offset=-1".to_owned(),
            "/users?offset=99999999999".to_owned(),
            "/users?q=bob".to_owned(),
        ] {
            let (s, err) = call(&server, Method::GET, &bad, admin, None).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
            assert_response(&err);
        }
        let bob = server.user("erin").await;
        let (s, _) = call(&server, Method::GET, "/users", Some(&bob.token), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // A method the route does not serve is a JSON 405.
        let (s, err) = call(&server, Method::DELETE, "/users", admin, None).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_response(&err);
        server.stop().await;
    })
    .await;
}
