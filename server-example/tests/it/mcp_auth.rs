//! Per-user MCP authentication end to end, on both backends, against a local OAuth2
//! authorization server (`chatd_test_support::oauth`): creating an `oauth2` server without
//! endpoints discovers them and registers a client; connect redirects with a state and an
//! S256 challenge; the callback exchanges the code (the test server checks the verifier)
//! and stores the token sealed; `auth_connected` is per caller; the state is single use,
//! expires, and belongs to one server and one user; `access_token` refreshes a token that
//! is about to expire and keeps the one it has when the refresh fails; disconnect forgets
//! the token. User header values: write-only, per user, only listed names, `""` clears,
//! sealed at rest. Rotation re-seals every per-user secret. No token, secret or verifier
//! appears in any answer, the logs or the database in clear.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chatd_core::mcp::oauth;
use chatd_core::store::{
    McpUserSecretColumn, Store, MANUAL_OAUTH2_REQUIRED_MESSAGE, MCP_OAUTH2_STATE_EXPIRED_MESSAGE,
    MCP_OAUTH2_STATE_INVALID_MESSAGE,
};
use chatd_core::{ErrorKind, Keyring, SecretKey};
use chatd_test_support::db::{on_each_backend, RawSql};
use chatd_test_support::oauth::{form_pairs, s256, OAuthServer, ResourceMetadata, ServerMetadata};
use chatd_test_support::request::{Answer, Request};
use chatd_test_support::server::{TestServer, TestUser};
use codersdk::{MCPServerConfig, MCPServerUserHeaders, Uuid};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::secrets_e2e::{assert_clean, database_text, log_buffer};

const HEADER_SECRET: &str = "user-HEADER-value-never-shown-93ad";
const TEAM_SECRET: &str = "team-HEADER-value-never-shown-11c7";

/// A client that does not follow redirects, as a test of where they point needs.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn oauth_config(slug: &str, url: &str) -> Value {
    json!({
        "display_name": format!("Docs <{slug}>"),
        "slug": slug,
        "transport": "streamable_http",
        "url": url,
        "auth_type": "oauth2",
        "availability": "default_on"
    })
}

/// Every secret the authorization server handed out or was sent so far.
fn issued_secrets(auth: &OAuthServer) -> Vec<String> {
    auth.secrets()
}

async fn create(server: &TestServer, body: Value) -> Answer {
    server
        .request(Method::POST, "/mcp/servers")
        .token(Some(&server.admin_token))
        .json(&body)
        .send()
        .await
}

fn id_of(answer: &Answer) -> Uuid {
    answer.json["id"].as_str().unwrap().parse().unwrap()
}

/// Connect as `user` (cookie only, like a browser): the 302 to the authorization server.
async fn connect(server: &TestServer, id: Uuid, token: &str, query: &str) -> Answer {
    Request::new(
        &browser(),
        Method::GET,
        format!(
            "{}/api/experimental/mcp/servers/{id}/oauth2/connect{query}",
            server.base
        ),
    )
    .cookie_token(token)
    .send_page()
    .await
}

/// Follows a connect's 302 to the authorization server, which approves (or refuses) and
/// redirects back: the callback URL it sends the browser to.
async fn authorize(location: &str) -> String {
    let answer = browser().get(location).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND, "{location}");
    answer.headers()["location"].to_str().unwrap().to_owned()
}

/// Opens a callback URL as `token`'s user (cookie only).
async fn callback(url: &str, token: &str, secrets: &[String]) -> Answer {
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    Request::new(&browser(), Method::GET, url)
        .cookie_token(token)
        .never_showing(&secrets)
        .send_page()
        .await
}

/// The whole flow for `user`: connect, authorize, callback. Returns the callback's answer.
async fn sign_in(server: &TestServer, auth: &OAuthServer, id: Uuid, token: &str) -> Answer {
    let started = connect(server, id, token, "").await;
    assert_eq!(started.status, StatusCode::FOUND, "{}", started.text);
    let back = authorize(started.header("location").unwrap()).await;
    callback(&back, token, &issued_secrets(auth)).await
}

fn query_of(url: &str) -> HashMap<String, String> {
    form_pairs(
        url.split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default()
            .as_bytes(),
    )
}

async fn listed(server: &TestServer, token: &str, id: Uuid) -> MCPServerConfig {
    let list: Vec<MCPServerConfig> = server
        .request(Method::GET, "/mcp/servers")
        .token(Some(token))
        .send()
        .await
        .body();
    list.into_iter().find(|c| c.id == id).unwrap()
}

async fn got(server: &TestServer, token: &str, id: Uuid) -> MCPServerConfig {
    server
        .request(Method::GET, &format!("/mcp/servers/{id}"))
        .token(Some(token))
        .send()
        .await
        .body()
}

async fn count(store: &Store, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn assert_logs_clean(secrets: &[String]) {
    let logs = String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_clean("the logs", &logs, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_registers_a_client_and_a_user_connects() {
    log_buffer();
    on_each_backend(|store| async move {
        let auth = OAuthServer::start().await;
        let server = TestServer::builder(&store).start().await;
        let admin = server.admin_token.clone();
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;

        // Creation without endpoints: discovered, registered, filled in.
        let created = create(&server, oauth_config("docs", &auth.mcp_url())).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let id = id_of(&created);
        let config: MCPServerConfig = created.body();
        assert!(config.oauth2_client_id.starts_with("client-"));
        assert!(config.has_oauth2_secret);
        assert_eq!(config.oauth2_auth_url, auth.url("/authorize"));
        assert_eq!(config.oauth2_token_url, auth.url("/token"));
        assert_eq!(config.oauth2_scopes, "mcp:read mcp:write");
        assert!(!config.auth_connected);
        let callback_url = format!(
            "{}/api/experimental/mcp/servers/{id}/oauth2/callback",
            server.base
        );
        let registered = &auth.requests_to("/register")[0];
        assert_eq!(registered.json()["redirect_uris"], json!([callback_url]));
        assert_eq!(registered.json()["scope"], "mcp:read mcp:write");
        let client = &auth.clients()[&config.oauth2_client_id];
        let secret = client.secret.clone().unwrap();
        let sealed: String = sqlx::query_scalar(
            "SELECT oauth2_client_secret_sealed FROM mcp_server_configs WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert!(!sealed.contains(&secret));
        assert!(!created.text.contains(&secret));

        // Connect: a 302 with the state and an S256 challenge, nothing cached.
        let started = connect(&server, id, &alice.token, "").await;
        assert_eq!(started.status, StatusCode::FOUND, "{}", started.text);
        assert_eq!(started.header("cache-control"), Some("no-store"));
        let location = started.header("location").unwrap().to_owned();
        assert!(location.starts_with(&auth.url("/authorize?")), "{location}");
        let q = query_of(&location);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], config.oauth2_client_id);
        assert_eq!(q["redirect_uri"], callback_url);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"].len(), 43);
        assert_eq!(q["scope"], "mcp:read mcp:write");
        assert!(q["state"].len() >= 43);
        // The state is stored only as its hash.
        let stored: Vec<String> = sqlx::query_scalar("SELECT state_hash FROM mcp_oauth2_states")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_eq!(stored, [chatd_core::store::hash_oauth2_state(&q["state"])]);

        // The authorization server approves and sends the browser back; the callback
        // exchanges the code with the verifier the challenge was made from.
        let back = authorize(&location).await;
        assert!(back.starts_with(&callback_url), "{back}");
        let done = callback(&back, &alice.token, &issued_secrets(&auth)).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        assert!(
            done.text.contains("Docs &lt;docs&gt; is connected"),
            "{}",
            done.text
        );
        assert_eq!(
            done.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(done.header("referrer-policy"), Some("no-referrer"));
        let exchange = &auth.requests_to("/token")[0];
        let form = form_pairs(&exchange.body);
        assert_eq!(form["grant_type"], "authorization_code");
        assert_eq!(s256(&form["code_verifier"]), q["code_challenge"]);
        assert!(exchange
            .header("authorization")
            .unwrap()
            .starts_with("Basic "));
        assert_eq!(count(&store, "mcp_oauth2_states").await, 0, "used once");

        // Sealed at rest, opened intact for the MCP client, and per user.
        let access = auth.access_tokens()[0].clone();
        let db = database_text(&store).await;
        assert_clean(
            "the database",
            &db,
            &[
                access.as_str(),
                secret.as_str(),
                q["state"].as_str(),
                form["code_verifier"].as_str(),
            ],
        );
        let keyring = &server.keyring;
        let token = store
            .mcp_oauth2_token(id, alice.id, keyring)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(token.access_token.expose(), access);
        assert_eq!(token.token_type, "Bearer");
        assert_eq!(token.scopes, "mcp:read mcp:write");
        assert!(token.refresh_token.is_some());
        assert!(!format!("{token:?}").contains(&access));
        assert!(listed(&server, &alice.token, id).await.auth_connected);
        assert!(got(&server, &alice.token, id).await.auth_connected);
        assert!(!listed(&server, &bob.token, id).await.auth_connected);
        assert!(!got(&server, &admin, id).await.auth_connected);
        let stored = store.get_mcp_server_config(id).await.unwrap();
        let http = oauth::http_client().unwrap();
        let now = oauth::access_token(&store, keyring, &http, &stored, alice.id)
            .await
            .unwrap();
        assert_eq!(now.unwrap().expose(), access, "fresh: no refresh");
        assert_eq!(auth.requests_to("/token").len(), 1);
        assert!(oauth::access_token(&store, keyring, &http, &stored, bob.id)
            .await
            .unwrap()
            .is_none());

        // The same callback again: the state is spent.
        let again = callback(&back, &alice.token, &issued_secrets(&auth)).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        assert_eq!(again.json["message"], MCP_OAUTH2_STATE_INVALID_MESSAGE);

        // Disconnect forgets the token.
        let gone = server
            .request(
                Method::DELETE,
                &format!("/mcp/servers/{id}/oauth2/disconnect"),
            )
            .token(Some(&alice.token))
            .send()
            .await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT);
        assert!(!listed(&server, &alice.token, id).await.auth_connected);
        assert!(
            oauth::access_token(&store, keyring, &http, &stored, alice.id)
                .await
                .unwrap()
                .is_none()
        );

        // Connected again, then the server is deleted: the token goes with it.
        let done = sign_in(&server, &auth, id, &alice.token).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        connect(&server, id, &bob.token, "").await;
        assert_eq!(count(&store, "mcp_user_oauth2_tokens").await, 1);
        assert_eq!(count(&store, "mcp_oauth2_states").await, 1);
        let deleted = server
            .request(Method::DELETE, &format!("/mcp/servers/{id}"))
            .token(Some(&admin))
            .send()
            .await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        assert_eq!(count(&store, "mcp_user_oauth2_tokens").await, 0);
        assert_eq!(count(&store, "mcp_oauth2_states").await, 0);
        assert_logs_clean(&issued_secrets(&auth));
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_belongs_to_one_server_and_one_user_and_is_used_once() {
    on_each_backend(|store| async move {
        let auth = OAuthServer::start().await;
        let server = TestServer::builder(&store).start().await;
        let alice = server.user("alice").await;
        let mallory = server.user("mallory").await;
        let docs = id_of(&create(&server, oauth_config("docs", &auth.mcp_url())).await);
        let wiki = id_of(&create(&server, oauth_config("wiki", &auth.mcp_url())).await);

        // Mallory starts a flow and gets Alice's browser to complete it: the callback
        // arrives with Alice's session and Mallory's state — refused, so Mallory's
        // account is never bound to Alice's grant (nor the reverse).
        let started = connect(&server, docs, &mallory.token, "").await;
        let back = authorize(started.header("location").unwrap()).await;
        let refused = callback(&back, &alice.token, &issued_secrets(&auth)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
        assert_eq!(refused.json["message"], MCP_OAUTH2_STATE_INVALID_MESSAGE);
        assert_eq!(
            auth.requests_to("/token").len(),
            0,
            "the code was never exchanged"
        );
        // The state was spent by the attempt: Mallory cannot use it afterwards either.
        let late = callback(&back, &mallory.token, &issued_secrets(&auth)).await;
        assert_eq!(late.status, StatusCode::BAD_REQUEST);
        assert_eq!(count(&store, "mcp_user_oauth2_tokens").await, 0);

        // A state issued for one server does not complete another.
        let started = connect(&server, docs, &alice.token, "").await;
        let back = authorize(started.header("location").unwrap()).await;
        let elsewhere = back.replace(&docs.to_string(), &wiki.to_string());
        let refused = callback(&elsewhere, &alice.token, &issued_secrets(&auth)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);

        // An unknown state, a missing code, no session at all.
        let q = query_of(&back);
        let base = format!(
            "{}/api/experimental/mcp/servers/{docs}/oauth2/callback",
            server.base
        );
        let unknown = callback(
            &format!("{base}?code=x&state=not-a-state"),
            &alice.token,
            &[],
        )
        .await;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
        let no_code = callback(&format!("{base}?state={}", q["state"]), &alice.token, &[]).await;
        assert_eq!(no_code.status, StatusCode::BAD_REQUEST);
        assert_eq!(no_code.validation_fields(), ["code"]);
        let anonymous = browser().get(&back).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        // Cookies count only on the two browser pages.
        let listing = Request::new(&browser(), Method::GET, server.api("/mcp/servers"))
            .cookie_token(&alice.token)
            .send()
            .await;
        assert_eq!(listing.status, StatusCode::UNAUTHORIZED);
        // A session token in the query is not accepted there either.
        let queried = browser()
            .get(format!("{back}&coder_session_token={}", alice.token))
            .send()
            .await
            .unwrap();
        assert_eq!(queried.status(), StatusCode::UNAUTHORIZED);

        // Expired: refused with its own message, and gone.
        let started = connect(&server, docs, &alice.token, "").await;
        let back = authorize(started.header("location").unwrap()).await;
        sqlx::query("UPDATE mcp_oauth2_states SET expires_at = 1")
            .execute(store.pool())
            .await
            .unwrap();
        let expired = callback(&back, &alice.token, &issued_secrets(&auth)).await;
        assert_eq!(expired.status, StatusCode::BAD_REQUEST);
        assert_eq!(expired.json["message"], MCP_OAUTH2_STATE_EXPIRED_MESSAGE);
        assert_eq!(count(&store, "mcp_oauth2_states").await, 0);

        // The authorization server refuses: a clear 400, the state forgotten.
        auth.configure(|c| c.deny_authorization = true);
        let started = connect(&server, docs, &alice.token, "").await;
        let back = authorize(started.header("location").unwrap()).await;
        assert!(back.contains("error=access_denied"), "{back}");
        let denied = callback(&back, &alice.token, &[]).await;
        assert_eq!(denied.status, StatusCode::BAD_REQUEST);
        let message = denied.json["message"].as_str().unwrap();
        assert!(message.contains("did not grant access"), "{message}");
        assert!(message.contains("access_denied"), "{message}");
        assert_eq!(count(&store, "mcp_oauth2_states").await, 0);
        auth.configure(|c| c.deny_authorization = false);

        // The flow still works for Alice, and `redirect` sends her back to a page here.
        let started = connect(
            &server,
            docs,
            &alice.token,
            "?redirect=%2Fchats%3Fmcp%3Ddocs",
        )
        .await;
        let back = authorize(started.header("location").unwrap()).await;
        let done = callback(&back, &alice.token, &issued_secrets(&auth)).await;
        assert_eq!(done.status, StatusCode::FOUND, "{}", done.text);
        assert_eq!(done.header("location"), Some("/chats?mcp=docs"));
        assert!(listed(&server, &alice.token, docs).await.auth_connected);
        assert!(!listed(&server, &mallory.token, docs).await.auth_connected);
        for bad in [
            "?redirect=%2F%2Fevil.example",
            "?redirect=https%3A%2F%2Fevil.example",
            "?other=1",
        ] {
            let refused = connect(&server, docs, &alice.token, bad).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_needs_a_visible_oauth2_server_and_a_session() {
    on_each_backend(|store| async move {
        let auth = OAuthServer::start().await;
        let server = TestServer::builder(&store).start().await;
        let alice = server.user("alice").await;
        let plain = create(
            &server,
            json!({"display_name": "Plain", "slug": "plain", "transport": "sse",
                   "url": "https://mcp.example.com/sse", "auth_type": "none",
                   "availability": "default_off"}),
        )
        .await;
        let not_oauth = connect(&server, id_of(&plain), &alice.token, "").await;
        assert_eq!(not_oauth.status, StatusCode::BAD_REQUEST);
        assert!(not_oauth.json["message"]
            .as_str()
            .unwrap()
            .contains("does not use OAuth2"));

        let mut disabled = oauth_config("hidden", &auth.mcp_url());
        disabled["enabled"] = json!(false);
        let hidden = id_of(&create(&server, disabled).await);
        let missing = connect(&server, hidden, &alice.token, "").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        for path in ["user-headers", "oauth2/disconnect"] {
            let method = if path == "user-headers" {
                Method::GET
            } else {
                Method::DELETE
            };
            let answer = server
                .request(method, &format!("/mcp/servers/{hidden}/{path}"))
                .token(Some(&alice.token))
                .send()
                .await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        }
        // Administrators may use disabled servers (to try them before enabling them).
        let admin = connect(&server, hidden, &server.admin_token, "").await;
        assert_eq!(admin.status, StatusCode::FOUND);
        let unknown = connect(&server, Uuid::new_v4(), &alice.token, "").await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        // No session: 401, a JSON body, no state stored.
        let before = count(&store, "mcp_oauth2_states").await;
        let anonymous = browser()
            .get(server.api(&format!("/mcp/servers/{hidden}/oauth2/connect")))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(count(&store, "mcp_oauth2_states").await, before);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_forms_and_failures() {
    on_each_backend(|store| async move {
        let auth = OAuthServer::start().await;
        let server = TestServer::builder(&store).start().await;

        // Protected-resource metadata only at the path-suffixed URL, tried first.
        auth.configure(|c| c.resource_metadata = ResourceMetadata::PathSuffixed);
        let a = create(&server, oauth_config("suffixed", &auth.mcp_url())).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let paths: Vec<String> = auth.requests().iter().map(|r| r.path.clone()).collect();
        assert_eq!(
            paths[..3],
            [
                "/.well-known/oauth-protected-resource/mcp",
                "/.well-known/oauth-authorization-server",
                "/register"
            ]
        );

        // No protected-resource metadata and only OpenID Connect discovery: the origin is
        // taken as the authorization server, and the OIDC document is found.
        auth.configure(|c| {
            c.resource_metadata = ResourceMetadata::None;
            c.server_metadata = ServerMetadata::OpenIdOnly;
        });
        let b = create(&server, oauth_config("openid", &auth.mcp_url())).await;
        assert_eq!(b.status, StatusCode::CREATED, "{}", b.text);
        assert_eq!(b.json["oauth2_token_url"], auth.url("/token"));
        assert!(
            b.json.get("oauth2_scopes").is_none(),
            "no scopes without resource metadata"
        );

        // Scopes the administrator chose are kept.
        let mut scoped = oauth_config("scoped", &auth.mcp_url());
        scoped["oauth2_scopes"] = json!("read");
        let c = create(&server, scoped).await;
        assert_eq!(c.json["oauth2_scopes"], "read");

        // Nothing to discover, or no registration: the manual-configuration 400, with a
        // detail saying what failed; nothing stored.
        let stored = count(&store, "mcp_server_configs").await;
        auth.configure(|c| c.server_metadata = ServerMetadata::None);
        let none = create(&server, oauth_config("nothing", &auth.mcp_url())).await;
        assert_eq!(none.status, StatusCode::BAD_REQUEST);
        assert_eq!(none.json["message"], MANUAL_OAUTH2_REQUIRED_MESSAGE);
        let detail = none.json["detail"].as_str().unwrap();
        assert!(detail.contains("no OAuth2 metadata"), "{detail}");
        assert!(detail.contains("HTTP 404"), "{detail}");
        auth.configure(|c| {
            c.server_metadata = ServerMetadata::OAuth;
            c.registration = false;
        });
        let unregistered = create(&server, oauth_config("noreg", &auth.mcp_url())).await;
        assert_eq!(unregistered.status, StatusCode::BAD_REQUEST);
        assert!(unregistered.json["detail"]
            .as_str()
            .unwrap()
            .contains("dynamic client registration"));
        let unreachable = create(&server, oauth_config("gone", "http://127.0.0.1:9/mcp")).await;
        assert_eq!(unreachable.status, StatusCode::BAD_REQUEST);
        assert_eq!(unreachable.json["message"], MANUAL_OAUTH2_REQUIRED_MESSAGE);
        assert_eq!(count(&store, "mcp_server_configs").await, stored);

        // Other problems are reported before anything is discovered; a partial set is the
        // administrator's 400, never completed.
        let requests = auth.requests().len();
        let mut bad = oauth_config("Bad Slug", &auth.mcp_url());
        bad["oauth2_scopes"] = json!("a\u{7}b");
        let refused = create(&server, bad).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.validation_fields(), ["slug", "oauth2_scopes"]);
        let mut partial = oauth_config("partial", &auth.mcp_url());
        partial["oauth2_client_id"] = json!("mine");
        let refused = create(&server, partial).await;
        assert_eq!(
            refused.validation_fields(),
            ["oauth2_auth_url", "oauth2_token_url"]
        );
        assert_eq!(
            auth.requests().len(),
            requests,
            "no request for a refused creation"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_tokens_are_refreshed_and_kept_when_the_refresh_fails() {
    log_buffer();
    on_each_backend(|store| async move {
        let auth = OAuthServer::start().await;
        // Tokens live 5 s: inside the 10 s margin, so every use refreshes first.
        auth.configure(|c| c.expires_in = Some(5));
        let server = TestServer::builder(&store).start().await;
        let alice = server.user("alice").await;
        let id = id_of(&create(&server, oauth_config("docs", &auth.mcp_url())).await);
        let done = sign_in(&server, &auth, id, &alice.token).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        let keyring = &server.keyring;
        let config = store.get_mcp_server_config(id).await.unwrap();
        let http = oauth::http_client().unwrap();
        let first = store
            .mcp_oauth2_token(id, alice.id, keyring)
            .await
            .unwrap()
            .unwrap();
        let refresh = first.refresh_token.clone().unwrap();

        // Refreshed: a new access token, saved; the refresh token kept (none was issued).
        let got = oauth::access_token(&store, keyring, &http, &config, alice.id)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(got, first.access_token);
        assert_eq!(got.expose(), auth.access_tokens()[1]);
        let grant = form_pairs(&auth.requests_to("/token")[1].body);
        assert_eq!(grant["grant_type"], "refresh_token");
        assert_eq!(grant["refresh_token"], refresh.expose());
        let saved = store
            .mcp_oauth2_token(id, alice.id, keyring)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(saved.access_token, got);
        assert_eq!(saved.refresh_token.as_ref(), Some(&refresh));
        assert!(saved.expires_at.unwrap().0 >= first.expires_at.unwrap().0);

        // A rotating server's new refresh token replaces the old one.
        auth.configure(|c| c.rotate_refresh_tokens = true);
        oauth::access_token(&store, keyring, &http, &config, alice.id)
            .await
            .unwrap();
        let rotated = store
            .mcp_oauth2_token(id, alice.id, keyring)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(rotated.refresh_token.as_ref(), Some(&refresh));
        assert!(rotated.refresh_token.is_some());

        // The token endpoint fails (echoing what it was sent): the token at hand is
        // returned, the stored one untouched, and nothing secret is logged.
        auth.configure(|c| c.fail_token_requests = true);
        let kept = oauth::access_token(&store, keyring, &http, &config, alice.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept, rotated.access_token);
        let after = store
            .mcp_oauth2_token(id, alice.id, keyring)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after, rotated);
        let failed = auth.requests_to("/token").last().cloned().unwrap();
        assert_eq!(
            form_pairs(&failed.body)["refresh_token"],
            rotated.refresh_token.as_ref().unwrap().expose()
        );

        // A token that is not about to expire is used as it is.
        auth.configure(|c| c.fail_token_requests = false);
        sqlx::query("UPDATE mcp_user_oauth2_tokens SET expires_at = $1")
            .bind((chrono::Utc::now() + chrono::Duration::minutes(5)).timestamp_micros())
            .execute(store.pool())
            .await
            .unwrap();
        let calls = auth.requests_to("/token").len();
        let same = oauth::access_token(&store, keyring, &http, &config, alice.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(same, rotated.access_token);
        assert_eq!(auth.requests_to("/token").len(), calls);

        // A failing code exchange is a 502 that does not repeat the server's words.
        auth.configure(|c| c.fail_token_requests = true);
        let failed = sign_in(&server, &auth, id, &alice.token).await;
        assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.text);
        let message = failed.json["message"].as_str().unwrap();
        assert!(message.contains("invalid_grant"), "{message}");
        assert!(!message.contains("refused client_secret"), "{message}");

        let secrets = issued_secrets(&auth);
        assert!(secrets.iter().any(|s| s == refresh.expose()));
        let db = database_text(&store).await;
        let all: Vec<&str> = secrets.iter().map(String::as_str).collect();
        assert_clean("the database", &db, &all);
        assert_logs_clean(&secrets);
        server.stop().await;
    })
    .await;
}

fn headers_config(slug: &str) -> Value {
    json!({
        "display_name": "Tracker",
        "slug": slug,
        "transport": "streamable_http",
        "url": "https://mcp.example.com/mcp",
        "auth_type": "custom_headers",
        "custom_headers": {"X-Org": "admin-set"},
        "custom_headers_user_keys": ["X-User-Token", "X-Team"],
        "custom_headers_user_key_descriptions": {"X-User-Token": "Your personal token"},
        "availability": "default_on"
    })
}

async fn headers(
    server: &TestServer,
    method: Method,
    id: Uuid,
    user: &TestUser,
    body: Option<Value>,
) -> Answer {
    server
        .request(method, &format!("/mcp/servers/{id}/user-headers"))
        .token(Some(&user.token))
        .json_opt(body.as_ref())
        .never_showing(&[HEADER_SECRET, TEAM_SECRET])
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_header_values_are_write_only_per_user_and_sealed() {
    on_each_backend(|store| async move {
        let server = TestServer::builder(&store).start().await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let created = create(&server, headers_config("tracker")).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let id = id_of(&created);
        let keyring = &server.keyring;
        let status = |answer: &Answer| -> MCPServerUserHeaders { answer.body() };

        let empty = headers(&server, Method::GET, id, &alice, None).await;
        assert_eq!(empty.status, StatusCode::OK);
        assert_eq!(
            empty.json,
            json!({"mcp_server_config_id": id, "has_values": {"X-Team": false, "X-User-Token": false}})
        );
        // Names match ignoring case; unlisted names keep their values.
        let set = headers(&server, Method::PUT, id, &alice, Some(json!({"values": {"x-user-token": HEADER_SECRET}}))).await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.text);
        assert!(status(&set).has_values["X-User-Token"]);
        assert!(!status(&set).has_values["X-Team"]);
        let set = headers(&server, Method::PUT, id, &alice, Some(json!({"values": {"X-Team": TEAM_SECRET}}))).await;
        assert_eq!(
            status(&set).has_values,
            BTreeMap::from([("X-Team".to_owned(), true), ("X-User-Token".to_owned(), true)])
        );
        let values = store.mcp_user_header_values(id, alice.id, keyring).await.unwrap();
        assert_eq!(values["X-User-Token"].expose(), HEADER_SECRET);
        assert_eq!(values["X-Team"].expose(), TEAM_SECRET);
        assert!(!format!("{values:?}").contains(HEADER_SECRET));
        // Per user.
        let bobs = headers(&server, Method::GET, id, &bob, None).await;
        assert!(!status(&bobs).has_values["X-User-Token"]);
        assert!(store.mcp_user_header_values(id, bob.id, keyring).await.unwrap().is_empty());
        // Sealed at rest.
        let db = database_text(&store).await;
        assert_clean("the database", &db, &[HEADER_SECRET, TEAM_SECRET]);

        // Names the server does not ask for (the admin-set one included) and bad values:
        // 400, nothing changed.
        for body in [
            json!({"values": {"X-Other": "v"}}),
            json!({"values": {"X-Org": "v"}}),
            json!({"values": {"X-Team": "line\nbreak"}}),
            json!({"values": {"X-Team": "v".repeat(codersdk::MAX_MCP_HEADER_VALUE_BYTES + 1)}}),
        ] {
            let refused = headers(&server, Method::PUT, id, &alice, Some(body)).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
            assert_eq!(refused.validation_fields(), ["values"]);
        }
        assert_eq!(store.mcp_user_header_values(id, alice.id, keyring).await.unwrap(), values);

        // "" clears one value.
        let cleared = headers(&server, Method::PUT, id, &alice, Some(json!({"values": {"X-Team": ""}}))).await;
        assert!(!status(&cleared).has_values["X-Team"]);
        assert!(status(&cleared).has_values["X-User-Token"]);
        // A name the administrator stops listing is no longer sent (nor shown).
        let patched = server
            .request(Method::PATCH, &format!("/mcp/servers/{id}"))
            .token(Some(&server.admin_token))
            .json(&json!({"custom_headers_user_keys": ["X-Team"], "custom_headers_user_key_descriptions": {}}))
            .send()
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
        assert!(store.mcp_user_header_values(id, alice.id, keyring).await.unwrap().is_empty());
        let shown = headers(&server, Method::GET, id, &alice, None).await;
        assert_eq!(shown.json["has_values"], json!({"X-Team": false}));

        // DELETE removes them all.
        headers(&server, Method::PUT, id, &alice, Some(json!({"values": {"X-Team": TEAM_SECRET}}))).await;
        let deleted = headers(&server, Method::DELETE, id, &alice, None).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        assert!(store.mcp_user_header_values(id, alice.id, keyring).await.unwrap().is_empty());
        assert_eq!(count(&store, "mcp_user_header_values").await, 0);

        // Values go with the server.
        headers(&server, Method::PUT, id, &bob, Some(json!({"values": {"X-Team": TEAM_SECRET}}))).await;
        assert_eq!(count(&store, "mcp_user_header_values").await, 1);
        server
            .request(Method::DELETE, &format!("/mcp/servers/{id}"))
            .token(Some(&server.admin_token))
            .send()
            .await;
        assert_eq!(count(&store, "mcp_user_header_values").await, 0);
        let gone = headers(&server, Method::GET, id, &alice, None).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_reseals_every_per_user_secret() {
    on_each_backend(|store| async move {
        let old = SecretKey::generate().unwrap();
        let old_copy = SecretKey::from_base64(old.to_base64().as_str()).unwrap();
        let keyring = Arc::new(Keyring::new("old", old).unwrap());
        let auth = OAuthServer::start().await;
        let server = TestServer::builder(&store).keyring(keyring).start().await;
        let alice = server.user("alice").await;
        let docs = id_of(&create(&server, oauth_config("docs", &auth.mcp_url())).await);
        let tracker = id_of(&create(&server, headers_config("tracker")).await);
        assert_eq!(
            sign_in(&server, &auth, docs, &alice.token).await.status,
            StatusCode::OK
        );
        let pending = connect(&server, docs, &alice.token, "").await;
        let state = query_of(pending.header("location").unwrap())["state"].clone();
        headers(
            &server,
            Method::PUT,
            tracker,
            &alice,
            Some(json!({"values": {"X-Team": TEAM_SECRET}})),
        )
        .await;

        let new = SecretKey::generate().unwrap();
        let new_copy = SecretKey::from_base64(new.to_base64().as_str()).unwrap();
        let mut rotated = Keyring::new("new", new).unwrap();
        rotated.add_key("old", old_copy).unwrap();
        let report = store.rotate_mcp_secrets(&rotated).await.unwrap();
        // Config: the client secret and the admin headers; per user: header values, access
        // and refresh tokens, the verifier in flight.
        assert_eq!(report.rotated, 6, "{report:?}");
        assert!(report.is_complete());
        let again = store.rotate_mcp_secrets(&rotated).await.unwrap();
        assert_eq!((again.rotated, again.already_current), (0, 6));
        rotated.remove_key("old").unwrap();
        let values = store
            .mcp_user_header_values(tracker, alice.id, &rotated)
            .await
            .unwrap();
        assert_eq!(values["X-Team"].expose(), TEAM_SECRET);
        let token = store
            .mcp_oauth2_token(docs, alice.id, &rotated)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(token.access_token.expose(), auth.access_tokens()[0]);
        let taken = store
            .consume_mcp_oauth2_state(&state, &rotated)
            .await
            .unwrap();
        assert_eq!((taken.server_id, taken.user_id), (docs, alice.id));

        // A sealed value moved to another column does not open and is reported.
        let sealed: String =
            sqlx::query_scalar("SELECT access_token_sealed FROM mcp_user_oauth2_tokens")
                .fetch_one(store.pool())
                .await
                .unwrap();
        sqlx::query("UPDATE mcp_user_oauth2_tokens SET refresh_token_sealed = $1")
            .bind(&sealed)
            .execute(store.pool())
            .await
            .unwrap();
        let err = store
            .mcp_oauth2_token(docs, alice.id, &rotated)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DecryptionFailed);
        let mut newer = Keyring::new("newer", SecretKey::generate().unwrap()).unwrap();
        newer.add_key("new", new_copy).unwrap();
        let report = store.rotate_mcp_secrets(&newer).await.unwrap();
        assert!(!report.is_complete());
        assert_eq!(report.user_failures.len(), 1);
        let failure = &report.user_failures[0];
        assert_eq!((failure.server_id, failure.user_id), (docs, alice.id));
        assert_eq!(failure.column, McpUserSecretColumn::RefreshToken);
        assert_eq!(failure.kind, ErrorKind::DecryptionFailed);
        server.stop().await;
    })
    .await;
}
