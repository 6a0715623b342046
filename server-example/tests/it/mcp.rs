//! MCP server configuration routes on both backends: admin CRUD with sealed, write-only
//! secrets; validation (400), slug conflicts (409), nothing stored on failure; what other
//! users see (enabled only, redacted, 404 for disabled ones, 403 for writes); secrets
//! re-sealed by key rotation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use chatd_core::store::{McpSecretColumn, Store, MANUAL_OAUTH2_REQUIRED_MESSAGE, MAX_MCP_SLUG_LEN};
use chatd_core::{ErrorKind, Keyring, SecretKey};
use chatd_test_support::db::{on_each_backend, RawSql};
use chatd_test_support::request::validation_fields as fields;
use chatd_test_support::scripted::ScriptedModel;
use chatd_test_support::server::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const API_KEY: &str = "mcp-api-KEY-never-shown-5d1e";
const CLIENT_SECRET: &str = "oauth-client-SECRET-never-shown-a8c2";
const HEADER_VALUE: &str = "Bearer header-VALUE-never-shown-02fb";
const NEW_API_KEY: &str = "mcp-api-KEY-rotated-never-shown-77aa";

/// A server like `TestServer::start`, sealing secrets with `keyring`.
async fn start_with_keyring(store: &Store, keyring: Arc<Keyring>) -> TestServer {
    TestServer::builder(store).keyring(keyring).start().await
}

/// Sends a request; returns status and JSON body (`Null` when empty). Fails the test when
/// any secret appears in the response.
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
        .never_showing(&[API_KEY, CLIENT_SECRET, HEADER_VALUE, NEW_API_KEY])
        .send()
        .await;
    (answer.status, answer.json)
}

fn api_key_server(slug: &str) -> Value {
    json!({
        "display_name": "Issue tracker",
        "slug": slug,
        "description": "Tickets",
        "transport": "streamable_http",
        "url": "https://mcp.example.com/mcp?tenant=acme",
        "auth_type": "api_key",
        "api_key_header": "X-Api-Key",
        "api_key_value": API_KEY,
        "tool_allow_list": ["search", "search", "get_issue"],
        "availability": "default_on"
    })
}

fn oauth_server(slug: &str) -> Value {
    json!({
        "display_name": "GitHub",
        "slug": slug,
        "transport": "sse",
        "url": "https://github-mcp.example.com/sse",
        "auth_type": "oauth2",
        "oauth2_client_id": "client-123",
        "oauth2_client_secret": CLIENT_SECRET,
        "oauth2_auth_url": "https://github.example.com/login/oauth/authorize",
        "oauth2_token_url": "https://github.example.com/login/oauth/access_token",
        "oauth2_scopes": "repo read:org",
        "availability": "force_on"
    })
}

async fn count(server: &TestServer) -> usize {
    let (_, list) = call(
        server,
        Method::GET,
        "/mcp/servers",
        Some(&server.admin_token),
        None,
    )
    .await;
    list.as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_servers_whose_secrets_are_write_only() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        let (s, created) = call(
            &server,
            Method::POST,
            "/mcp/servers",
            admin,
            Some(api_key_server("tracker")),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        assert_eq!(created["has_api_key"], true);
        assert_eq!(created["api_key_header"], "X-Api-Key");
        assert_eq!(created["url"], "https://mcp.example.com/mcp?tenant=acme");
        assert_eq!(created["enabled"], true, "enabled by default");
        assert_eq!(created["auth_connected"], true);
        assert_eq!(created["tool_allow_list"], json!(["search", "get_issue"]));
        assert_eq!(created["tool_deny_list"], json!([]));
        assert_eq!(created["custom_headers_user_keys"], json!([]));
        assert_eq!(created["custom_headers_user_key_descriptions"], json!({}));
        let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
        // Sealed at rest, bound to the row, and opened intact for the future MCP client.
        let sealed: String =
            sqlx::query_scalar("SELECT api_key_sealed FROM mcp_server_configs WHERE id = $1")
                .bind(id.to_string())
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert!(!sealed.contains(API_KEY));
        let secrets = store.mcp_server_secrets(id, &server.keyring).await.unwrap();
        assert_eq!(secrets.api_key_value.unwrap().expose(), API_KEY);
        assert!(!format!(
            "{:?}",
            store.mcp_server_secrets(id, &server.keyring).await.unwrap()
        )
        .contains(API_KEY));

        let (s, list) = call(&server, Method::GET, "/mcp/servers", admin, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), 1);
        let (s, got) = call(
            &server,
            Method::GET,
            &format!("/mcp/servers/{id}"),
            admin,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(got, created);

        // PATCH: absent fields kept (the key stays), given ones replaced, `""` clears.
        let (s, updated) = call(
            &server,
            Method::PATCH,
            &format!("/mcp/servers/{id}"),
            admin,
            Some(json!({
                "display_name": "Tracker",
                "description": "",
                "enabled": false,
                "forward_coder_headers": true,
                "allow_in_plan_mode": true
            })),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{updated}");
        assert_eq!(updated["forward_coder_headers"], true);
        assert_eq!(updated["allow_in_plan_mode"], true);
        assert_eq!(updated["model_intent"], false);
        assert_eq!(updated["availability"], "default_on");
        assert_eq!(updated["display_name"], "Tracker");
        assert_eq!(updated["description"], "");
        assert_eq!(updated["enabled"], false);
        assert_eq!(updated["has_api_key"], true);
        let secrets = store.mcp_server_secrets(id, &server.keyring).await.unwrap();
        assert_eq!(secrets.api_key_value.unwrap().expose(), API_KEY);
        let (s, _) = call(
            &server,
            Method::PATCH,
            &format!("/mcp/servers/{id}"),
            admin,
            Some(json!({"api_key_value": NEW_API_KEY})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let secrets = store.mcp_server_secrets(id, &server.keyring).await.unwrap();
        assert_eq!(secrets.api_key_value.unwrap().expose(), NEW_API_KEY);
        // Switching to auth type none erases the key: no secret outlives its use.
        let (s, updated) = call(
            &server,
            Method::PATCH,
            &format!("/mcp/servers/{id}"),
            admin,
            Some(json!({"auth_type": "none"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(updated["has_api_key"], false);
        assert!(updated.get("api_key_header").is_none());
        let secrets = store.mcp_server_secrets(id, &server.keyring).await.unwrap();
        assert!(secrets.api_key_value.is_none());

        // DELETE: 204, then 404 everywhere.
        let (s, body) = call(
            &server,
            Method::DELETE,
            &format!("/mcp/servers/{id}"),
            admin,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert_eq!(body, Value::Null);
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            let (s, err) = call(
                &server,
                method,
                &format!("/mcp/servers/{id}"),
                admin,
                Some(json!({})),
            )
            .await;
            assert_eq!(s, StatusCode::NOT_FOUND);
            assert!(err["message"].is_string());
        }
        assert_eq!(
            store
                .mcp_server_secrets(id, &server.keyring)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configs_and_taken_slugs_store_nothing() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        let (s, first) = call(
            &server,
            Method::POST,
            "/mcp/servers",
            admin,
            Some(api_key_server("tracker")),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, second) = call(
            &server,
            Method::POST,
            "/mcp/servers",
            admin,
            Some(oauth_server("github")),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{second}");
        assert_eq!(second["has_oauth2_secret"], true);
        assert_eq!(
            second["auth_connected"], false,
            "nobody has connected through OAuth2"
        );

        // The slug is unique: on create and on update.
        let (s, err) = call(
            &server,
            Method::POST,
            "/mcp/servers",
            admin,
            Some(api_key_server("tracker")),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert!(err["message"].as_str().unwrap().contains("tracker"));
        let (s, _) = call(
            &server,
            Method::PATCH,
            &format!("/mcp/servers/{}", second["id"].as_str().unwrap()),
            admin,
            Some(json!({"slug": "tracker"})),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);

        // Every problem reported per field; secrets never quoted (checked by `call`).
        let (s, err) = call(
            &server,
            Method::POST,
            "/mcp/servers",
            admin,
            Some(json!({
                "display_name": " ",
                "slug": "Not_A_Slug",
                "transport": "websocket",
                "url": "ftp://example.com",
                "auth_type": "api_key",
                "api_key_value": format!("{API_KEY}\n"),
                "availability": "always"
            })),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(
            fields(&err),
            [
                "display_name",
                "slug",
                "transport",
                "url",
                "availability",
                "api_key_header"
            ]
        );
        let mut long_slug = api_key_server(&"a".repeat(MAX_MCP_SLUG_LEN + 1));
        let (s, err) = call(
            &server,
            Method::POST,
            "/mcp/servers",
            admin,
            Some(long_slug.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["slug"]);
        long_slug["slug"] = json!("a".repeat(MAX_MCP_SLUG_LEN));
        let (s, _) = call(
            &server,
            Method::POST,
            "/mcp/servers",
            admin,
            Some(long_slug),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "a slug at the limit is fine");
        // OAuth2 without endpoints: no discovery here, so manual configuration is required;
        // a partial set names what is missing.
        let mut oauth = oauth_server("oauth-bare");
        for k in ["oauth2_client_id", "oauth2_auth_url", "oauth2_token_url"] {
            oauth.as_object_mut().unwrap().remove(k);
        }
        let (s, err) = call(
            &server,
            Method::POST,
            "/mcp/servers",
            admin,
            Some(oauth.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(err["message"], MANUAL_OAUTH2_REQUIRED_MESSAGE);
        oauth["oauth2_client_id"] = json!("client");
        let (s, err) = call(&server, Method::POST, "/mcp/servers", admin, Some(oauth)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["oauth2_auth_url", "oauth2_token_url"]);
        // An update is validated against what is stored: clearing the key of an API-key
        // server is refused.
        let (s, err) = call(
            &server,
            Method::PATCH,
            &format!("/mcp/servers/{}", first["id"].as_str().unwrap()),
            admin,
            Some(json!({"api_key_value": ""})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["api_key_value"]);
        // Malformed bodies and ids.
        let raw = server
            .http
            .post(server.api("/mcp/servers"))
            .header("Coder-Session-Token", &server.admin_token)
            .header("Content-Type", "application/json")
            .body("{\"slug\":")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
        let _: codersdk::Response = raw.json().await.unwrap();
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            let (s, err) = call(&server, method, "/mcp/servers/nope", admin, Some(json!({}))).await;
            assert_eq!(s, StatusCode::BAD_REQUEST);
            assert_eq!(fields(&err), ["mcpServer"]);
        }
        assert_eq!(count(&server).await, 3, "failed requests stored nothing");
        let (s, _) = call(
            &server,
            Method::GET,
            "/mcp/servers?enabled=true",
            admin,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_enabled_servers_redacted_and_cannot_write() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        let bob = server.user("bob").await;
        let member = Some(bob.token.as_str());
        let (_, oauth) = call(
            &server,
            Method::POST,
            "/mcp/servers",
            admin,
            Some(oauth_server("github")),
        )
        .await;
        let mut hidden = api_key_server("hidden");
        hidden["enabled"] = json!(false);
        let (_, hidden) = call(&server, Method::POST, "/mcp/servers", admin, Some(hidden)).await;
        let mut headers = api_key_server("headers");
        headers["auth_type"] = json!("custom_headers");
        headers["custom_headers"] = json!({"Authorization": HEADER_VALUE});
        headers["custom_headers_user_keys"] = json!(["X-User-Token"]);
        headers["custom_headers_user_key_descriptions"] = json!({"X-User-Token": "Your token"});
        let (s, headers) = call(&server, Method::POST, "/mcp/servers", admin, Some(headers)).await;
        assert_eq!(s, StatusCode::CREATED, "{headers}");
        assert_eq!(headers["has_custom_headers"], true);
        assert_eq!(
            headers["has_api_key"], false,
            "api-key fields dropped for custom_headers"
        );

        let (s, list) = call(&server, Method::GET, "/mcp/servers", member, None).await;
        assert_eq!(s, StatusCode::OK);
        let slugs: Vec<_> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["slug"].as_str().unwrap())
            .collect();
        assert_eq!(slugs, ["github", "headers"], "enabled only, by slug");
        let github = &list[0];
        assert_eq!(github["url"], "");
        assert_eq!(github["transport"], "");
        for redacted in [
            "oauth2_client_id",
            "oauth2_auth_url",
            "oauth2_token_url",
            "oauth2_scopes",
            "api_key_header",
        ] {
            assert!(
                github.get(redacted).is_none(),
                "{redacted} shown to a member"
            );
        }
        assert_eq!(github["display_name"], "GitHub");
        assert_eq!(github["auth_connected"], false);
        // User-supplied header names stay visible: users must know what to supply.
        assert_eq!(list[1]["custom_headers_user_keys"], json!(["X-User-Token"]));
        assert_eq!(list[1]["url"], "");
        let (s, one) = call(
            &server,
            Method::GET,
            &format!("/mcp/servers/{}", oauth["id"].as_str().unwrap()),
            member,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(&one, github);
        // A disabled server does not exist for members.
        let hidden_path = format!("/mcp/servers/{}", hidden["id"].as_str().unwrap());
        let (s, _) = call(&server, Method::GET, &hidden_path, member, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // Writes are for administrators (403 even for a malformed body); 401 anonymously.
        for (method, path, body) in [
            (
                Method::POST,
                "/mcp/servers".to_owned(),
                Some(oauth_server("mine")),
            ),
            (
                Method::PATCH,
                hidden_path.clone(),
                Some(json!({"enabled": true})),
            ),
            (Method::DELETE, hidden_path.clone(), None),
        ] {
            let (s, err) = call(&server, method.clone(), &path, member, body.clone()).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}");
            assert!(err["message"].is_string());
            let (s, _) = call(&server, method, &path, None, body).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
        }
        let forbidden = server
            .http
            .post(server.api("/mcp/servers"))
            .header("Coder-Session-Token", &bob.token)
            .header("Content-Type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(count(&server).await, 3);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_are_sealed_and_user_keys_never_clash_with_them() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let admin = Some(server.admin_token.as_str());
        let mut body = api_key_server("headers");
        body["auth_type"] = json!("custom_headers");
        body["custom_headers"] = json!({"Authorization": HEADER_VALUE, "X-Team": "core"});
        let (s, created) = call(&server, Method::POST, "/mcp/servers", admin, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED);
        let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
        let secrets = store.mcp_server_secrets(id, &server.keyring).await.unwrap();
        assert_eq!(secrets.custom_headers.len(), 2);
        assert_eq!(
            secrets.custom_headers["Authorization"].expose(),
            HEADER_VALUE
        );
        let path = format!("/mcp/servers/{id}");
        // Adding user keys later: the stored (sealed) admin header names are checked too.
        let (s, err) = call(
            &server,
            Method::PATCH,
            &path,
            admin,
            Some(json!({"custom_headers_user_keys": ["AUTHORIZATION"]})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["custom_headers_user_keys"]);
        let (s, updated) = call(
            &server,
            Method::PATCH,
            &path,
            admin,
            Some(json!({"custom_headers_user_keys": ["X-User-Token"]})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(updated["custom_headers_user_keys"], json!(["X-User-Token"]));
        assert_eq!(
            updated["has_custom_headers"], true,
            "the sealed headers are kept"
        );
        // Replacing the headers with an empty map leaves only user-supplied ones; removing
        // those too leaves no header at all, which is refused.
        let (s, updated) = call(
            &server,
            Method::PATCH,
            &path,
            admin,
            Some(json!({"custom_headers": {}})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(updated["has_custom_headers"], false);
        let (s, err) = call(
            &server,
            Method::PATCH,
            &path,
            admin,
            Some(json!({"custom_headers_user_keys": []})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["custom_headers"]);
        // A header value with a line break could inject headers: refused, never quoted.
        let (s, err) = call(
            &server,
            Method::PATCH,
            &path,
            admin,
            Some(json!({"custom_headers": {"X-A": format!("{HEADER_VALUE}\r\nX-Evil: 1")}})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(fields(&err), ["custom_headers"]);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_reseals_mcp_secrets_under_the_new_key() {
    on_each_backend(|store| async move {
        let old = SecretKey::generate().unwrap();
        let old_copy = SecretKey::from_base64(old.to_base64().as_str()).unwrap();
        let server = start_with_keyring(&store, Arc::new(Keyring::new("old", old).unwrap())).await;
        let admin = Some(server.admin_token.as_str());
        let (_, a) = call(
            &server,
            Method::POST,
            "/mcp/servers",
            admin,
            Some(api_key_server("tracker")),
        )
        .await;
        let (_, b) = call(
            &server,
            Method::POST,
            "/mcp/servers",
            admin,
            Some(oauth_server("github")),
        )
        .await;
        let mut headers = api_key_server("headers");
        headers["auth_type"] = json!("custom_headers");
        headers["custom_headers"] = json!({"Authorization": HEADER_VALUE});
        let (_, c) = call(&server, Method::POST, "/mcp/servers", admin, Some(headers)).await;

        // New active key, old one still present: every secret is re-sealed once.
        let new = SecretKey::generate().unwrap();
        let new_copy = SecretKey::from_base64(new.to_base64().as_str()).unwrap();
        let mut rotated = Keyring::new("new", new).unwrap();
        rotated.add_key("old", old_copy).unwrap();
        let report = store.rotate_mcp_secrets(&rotated).await.unwrap();
        assert_eq!(report.rotated, 3);
        assert!(report.is_complete());
        let again = store.rotate_mcp_secrets(&rotated).await.unwrap();
        assert_eq!((again.rotated, again.already_current), (0, 3));
        // Without the old key the new seals still open.
        rotated.remove_key("old").unwrap();
        let id = |v: &Value| -> uuid::Uuid { v["id"].as_str().unwrap().parse().unwrap() };
        let s = store.mcp_server_secrets(id(&a), &rotated).await.unwrap();
        assert_eq!(s.api_key_value.unwrap().expose(), API_KEY);
        let s = store.mcp_server_secrets(id(&b), &rotated).await.unwrap();
        assert_eq!(s.oauth2_client_secret.unwrap().expose(), CLIENT_SECRET);
        let s = store.mcp_server_secrets(id(&c), &rotated).await.unwrap();
        assert_eq!(s.custom_headers["Authorization"].expose(), HEADER_VALUE);
        // A sealed value moved to another row and column does not open, and the next
        // rotation reports it instead of failing or skipping it silently.
        let sealed: String =
            sqlx::query_scalar("SELECT api_key_sealed FROM mcp_server_configs WHERE id = $1")
                .bind(id(&a).to_string())
                .fetch_one(store.pool())
                .await
                .unwrap();
        sqlx::query("UPDATE mcp_server_configs SET oauth2_client_secret_sealed = $1 WHERE id = $2")
            .bind(&sealed)
            .bind(id(&b).to_string())
            .execute(store.pool())
            .await
            .unwrap();
        let err = store
            .mcp_server_secrets(id(&b), &rotated)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DecryptionFailed);
        let mut newer = Keyring::new("newer", SecretKey::generate().unwrap()).unwrap();
        newer.add_key("new", new_copy).unwrap();
        let report = store.rotate_mcp_secrets(&newer).await.unwrap();
        assert_eq!(report.rotated, 2);
        assert_eq!(report.failures.len(), 1);
        let failure = &report.failures[0];
        assert_eq!(failure.server_id, id(&b));
        assert_eq!(failure.column, McpSecretColumn::OAuth2ClientSecret);
        assert_eq!(failure.kind, ErrorKind::DecryptionFailed);
        server.stop().await;
    })
    .await;
}
