//! Per-user MCP authentication in the store and the OAuth2 module, on both backends:
//! authorizations in flight expire after `MCP_OAUTH2_STATE_TTL`, are used once, are capped
//! per user at `MAX_MCP_OAUTH2_PENDING_STATES_PER_USER` and looked up only up to
//! `MAX_MCP_OAUTH2_STATE_LEN`; tokens are stored per server and user and go with either;
//! discovery reads at most `MAX_OAUTH2_RESPONSE_BYTES`, gives up after
//! `OAUTH2_HTTP_TIMEOUT`, follows no redirect, refuses metadata of another issuer and
//! servers without PKCE S256 (the end-to-end flow is in server-example's tests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chatd_core::mcp::oauth::{
    self, MAX_OAUTH2_RESPONSE_BYTES, OAUTH2_HTTP_TIMEOUT, PROTECTED_RESOURCE_PATH,
};
use chatd_core::store::{
    hash_oauth2_state, McpOAuth2Token, NewMcpOAuth2State, Store,
    MAX_MCP_OAUTH2_PENDING_STATES_PER_USER, MAX_MCP_OAUTH2_STATE_LEN,
    MCP_OAUTH2_STATE_EXPIRED_MESSAGE, MCP_OAUTH2_STATE_INVALID_MESSAGE, MCP_OAUTH2_STATE_TTL,
};
use chatd_core::{ErrorKind, Keyring, Role, SecretKey};
use chatd_test_support::db::*;
use chatd_test_support::replay::{Recorded, ReplayServer, Reply};
use codersdk::{CreateMCPServerConfigRequest, SecretString, Timestamp, Uuid};

fn keyring() -> Keyring {
    Keyring::new("k", SecretKey::generate().unwrap()).unwrap()
}

async fn server(store: &Store, keyring: &Keyring, slug: &str) -> Uuid {
    let request: CreateMCPServerConfigRequest = serde_json::from_value(serde_json::json!({
        "display_name": slug, "slug": slug, "transport": "streamable_http",
        "url": "https://mcp.example.com/mcp", "auth_type": "none", "availability": "default_on"
    }))
    .unwrap();
    store
        .create_mcp_server_config(&request, keyring)
        .await
        .unwrap()
        .id
}

async fn user(store: &Store, name: &str) -> Uuid {
    store
        .create_user(chatd_core::store::NewUser {
            username: name.into(),
            name: name.into(),
            role: Role::Member,
        })
        .await
        .unwrap()
        .id
}

async fn start(store: &Store, keyring: &Keyring, server: Uuid, user: Uuid, state: &str) {
    store
        .create_mcp_oauth2_state(
            NewMcpOAuth2State {
                server_id: server,
                user_id: user,
                state: &SecretString::from(state),
                pkce_verifier: &SecretString::from(format!("verifier-of-{state}")),
                redirect_uri: "http://127.0.0.1/callback",
                return_to: "/chats",
            },
            keyring,
        )
        .await
        .unwrap();
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn authorizations_in_flight_expire_are_used_once_and_are_capped() {
    on_each_backend(|store| async move {
        let keyring = keyring();
        let docs = server(&store, &keyring, "docs").await;
        let (alice, bob) = (user(&store, "alice").await, user(&store, "bob").await);

        // Stored by hash, expiring exactly one TTL after creation, used once.
        start(&store, &keyring, docs, alice, "state-one").await;
        let (created, expires): (i64, i64) = sqlx::query_as(
            "SELECT created_at, expires_at FROM mcp_oauth2_states WHERE state_hash = $1",
        )
        .bind(hash_oauth2_state("state-one"))
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(
            expires - created,
            i64::try_from(MCP_OAUTH2_STATE_TTL.as_micros()).unwrap()
        );
        let taken = store
            .consume_mcp_oauth2_state("state-one", &keyring)
            .await
            .unwrap();
        assert_eq!((taken.server_id, taken.user_id), (docs, alice));
        assert_eq!(taken.pkce_verifier.expose(), "verifier-of-state-one");
        assert_eq!(taken.redirect_uri, "http://127.0.0.1/callback");
        assert_eq!(taken.return_to, "/chats");
        let again = store
            .consume_mcp_oauth2_state("state-one", &keyring)
            .await
            .unwrap_err();
        assert_eq!(again.kind(), ErrorKind::InvalidArgument);
        assert_eq!(again.to_string(), MCP_OAUTH2_STATE_INVALID_MESSAGE);

        // Around the expiry: a second left is fine; a second late is "expired", and gone.
        for (state, offset, ok) in [("fresh", 1, true), ("stale", -1, false)] {
            start(&store, &keyring, docs, alice, state).await;
            let at = chrono::Utc::now().timestamp_micros() + offset * 1_000_000;
            sqlx::query("UPDATE mcp_oauth2_states SET expires_at = $1 WHERE state_hash = $2")
                .bind(at)
                .bind(hash_oauth2_state(state))
                .execute(store.pool())
                .await
                .unwrap();
            let result = store.consume_mcp_oauth2_state(state, &keyring).await;
            if ok {
                assert!(result.is_ok(), "{state}");
            } else {
                assert_eq!(
                    result.unwrap_err().to_string(),
                    MCP_OAUTH2_STATE_EXPIRED_MESSAGE
                );
            }
        }
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM mcp_oauth2_states").await,
            0
        );

        // The longest state looked up, and one byte more (never one of ours).
        let longest = "s".repeat(MAX_MCP_OAUTH2_STATE_LEN);
        let longer = "s".repeat(MAX_MCP_OAUTH2_STATE_LEN + 1);
        start(&store, &keyring, docs, alice, &longest).await;
        start(&store, &keyring, docs, alice, &longer).await;
        assert!(store
            .consume_mcp_oauth2_state(&longest, &keyring)
            .await
            .is_ok());
        assert_eq!(
            store
                .consume_mcp_oauth2_state(&longer, &keyring)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
        sqlx::query("DELETE FROM mcp_oauth2_states")
            .execute(store.pool())
            .await
            .unwrap();

        // Per user at most MAX in flight: the oldest is forgotten; other users unaffected.
        start(&store, &keyring, docs, bob, "bobs").await;
        for i in 0..MAX_MCP_OAUTH2_PENDING_STATES_PER_USER {
            start(&store, &keyring, docs, alice, &format!("s{i}")).await;
            // Distinct creation times, oldest first, whatever the clock's resolution.
            sqlx::query("UPDATE mcp_oauth2_states SET created_at = $1 WHERE state_hash = $2")
                .bind(i64::try_from(i).unwrap() + 1)
                .bind(hash_oauth2_state(&format!("s{i}")))
                .execute(store.pool())
                .await
                .unwrap();
        }
        let alices = format!("SELECT COUNT(*) FROM mcp_oauth2_states WHERE user_id = '{alice}'");
        let max = i64::try_from(MAX_MCP_OAUTH2_PENDING_STATES_PER_USER).unwrap();
        assert_eq!(count(&store, &alices).await, max);
        start(&store, &keyring, docs, alice, "one-more").await;
        assert_eq!(count(&store, &alices).await, max);
        assert!(
            store
                .consume_mcp_oauth2_state("s0", &keyring)
                .await
                .is_err(),
            "oldest gone"
        );
        assert!(store.consume_mcp_oauth2_state("s1", &keyring).await.is_ok());
        assert!(store
            .consume_mcp_oauth2_state("one-more", &keyring)
            .await
            .is_ok());

        // Expired authorizations of anyone are swept by the next one started.
        sqlx::query("UPDATE mcp_oauth2_states SET expires_at = 1 WHERE user_id = $1")
            .bind(bob.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        start(&store, &keyring, docs, alice, "sweeper").await;
        let bobs = format!("SELECT COUNT(*) FROM mcp_oauth2_states WHERE user_id = '{bob}'");
        assert_eq!(count(&store, &bobs).await, 0);

        // A verifier moved to another state does not open.
        start(&store, &keyring, docs, bob, "bob-2").await;
        sqlx::query(
            "UPDATE mcp_oauth2_states SET pkce_verifier_sealed = \
             (SELECT pkce_verifier_sealed FROM mcp_oauth2_states WHERE state_hash = $1) \
             WHERE state_hash = $2",
        )
        .bind(hash_oauth2_state("sweeper"))
        .bind(hash_oauth2_state("bob-2"))
        .execute(store.pool())
        .await
        .unwrap();
        let moved = store
            .consume_mcp_oauth2_state("bob-2", &keyring)
            .await
            .unwrap_err();
        assert_eq!(moved.kind(), ErrorKind::DecryptionFailed);
        // An unknown server or user is NotFound.
        let err = store
            .create_mcp_oauth2_state(
                NewMcpOAuth2State {
                    server_id: Uuid::new_v4(),
                    user_id: alice,
                    state: &SecretString::from("x"),
                    pkce_verifier: &SecretString::from("v"),
                    redirect_uri: "",
                    return_to: "",
                },
                &keyring,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    })
    .await;
}

#[tokio::test]
async fn tokens_belong_to_a_server_and_a_user_and_go_with_either() {
    on_each_backend(|store| async move {
        let keyring = keyring();
        let (docs, wiki) = (
            server(&store, &keyring, "docs").await,
            server(&store, &keyring, "wiki").await,
        );
        let (alice, bob) = (user(&store, "alice").await, user(&store, "bob").await);
        let token = McpOAuth2Token {
            access_token: SecretString::from("access-1"),
            refresh_token: None,
            token_type: "Bearer".into(),
            expires_at: Some(Timestamp(chrono::Utc::now())),
            scopes: "read".into(),
        };
        store
            .save_mcp_oauth2_token(docs, alice, &token, &keyring)
            .await
            .unwrap();
        let back = store
            .mcp_oauth2_token(docs, alice, &keyring)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back.access_token, token.access_token);
        assert_eq!(back.refresh_token, None);
        // Timestamps are stored to the microsecond.
        assert_eq!(
            back.expires_at.unwrap().0.timestamp_micros(),
            token.expires_at.unwrap().0.timestamp_micros()
        );
        assert!(store
            .mcp_oauth2_token(docs, bob, &keyring)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .mcp_oauth2_token(wiki, alice, &keyring)
            .await
            .unwrap()
            .is_none());
        assert!(store.has_mcp_oauth2_token(docs, alice).await.unwrap());
        assert_eq!(
            store.mcp_oauth2_connected_servers(alice).await.unwrap(),
            std::collections::HashSet::from([docs])
        );
        // Saving again replaces.
        let mut second = token.clone();
        second.access_token = SecretString::from("access-2");
        second.refresh_token = Some(SecretString::from("refresh-2"));
        second.expires_at = None;
        store
            .save_mcp_oauth2_token(docs, alice, &second, &keyring)
            .await
            .unwrap();
        let back = store
            .mcp_oauth2_token(docs, alice, &keyring)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, second);
        // Unknown server: NotFound (a server deleted during the sign-in).
        let err = store
            .save_mcp_oauth2_token(Uuid::new_v4(), alice, &token, &keyring)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        // Another keyring cannot open it.
        assert!(store
            .mcp_oauth2_token(docs, alice, &keyring_other())
            .await
            .is_err());

        // Rows go with the user (and with the server, see server-example's tests).
        store
            .save_mcp_oauth2_token(wiki, bob, &token, &keyring)
            .await
            .unwrap();
        start(&store, &keyring, wiki, bob, "bob-state").await;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(bob.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        assert!(store
            .mcp_oauth2_token(wiki, bob, &keyring)
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM mcp_oauth2_states").await,
            0
        );
        assert!(store.delete_mcp_oauth2_token(docs, alice).await.unwrap());
        assert!(!store.delete_mcp_oauth2_token(docs, alice).await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_header_updates_of_one_user_lose_nothing() {
    on_each_backend(|store| async move {
        let keyring = Arc::new(keyring());
        let names: Vec<String> = (0..8).map(|i| format!("X-Key-{i}")).collect();
        let request: CreateMCPServerConfigRequest = serde_json::from_value(serde_json::json!({
            "display_name": "Tracker", "slug": "tracker", "transport": "streamable_http",
            "url": "https://mcp.example.com/mcp", "auth_type": "custom_headers",
            "custom_headers_user_keys": names, "availability": "default_on"
        }))
        .unwrap();
        let id = store
            .create_mcp_server_config(&request, &keyring)
            .await
            .unwrap()
            .id;
        let alice = user(&store, "alice").await;
        // Each update sets one name; none may merge into a state another has not written.
        let updates = names.iter().map(|name| {
            let (store, keyring) = (store.clone(), Arc::clone(&keyring));
            let body: codersdk::UpdateMCPServerUserHeadersRequest =
                serde_json::from_value(serde_json::json!({"values": {name: format!("v-{name}")}}))
                    .unwrap();
            tokio::spawn(async move {
                store
                    .update_mcp_user_header_values(id, alice, &body, &keyring)
                    .await
                    .unwrap()
            })
        });
        for update in updates.collect::<Vec<_>>() {
            update.await.unwrap();
        }
        let values = store
            .mcp_user_header_values(id, alice, &keyring)
            .await
            .unwrap();
        assert_eq!(values.keys().cloned().collect::<Vec<_>>(), names);
        assert_eq!(store.mcp_user_header_names(id, alice).await.unwrap(), names);
    })
    .await;
}

fn keyring_other() -> Keyring {
    keyring()
}

// ---------------------------------------------------------------------------------------
// Discovery against a scripted metadata server
// ---------------------------------------------------------------------------------------

/// Answers discovery requests by path from `route` (the server's own base URL given).
async fn metadata_server(
    route: impl Fn(&str, &str) -> Option<Reply> + Send + Sync + 'static,
) -> ReplayServer {
    let base: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let known = Arc::clone(&base);
    let server = ReplayServer::start_with_responder(Vec::new(), move |r: &Recorded| {
        let base = known.get().cloned().unwrap_or_default();
        Some(route(&base, &r.path).unwrap_or_else(|| Reply::status(404, vec![], b"none".to_vec())))
    })
    .await;
    base.set(server.base_url.clone()).unwrap();
    server
}

fn json_reply(body: String) -> Reply {
    Reply::status(
        200,
        vec![("content-type".into(), "application/json".into())],
        body.into_bytes(),
    )
}

fn as_metadata(base: &str, issuer: &str) -> serde_json::Value {
    serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "code_challenge_methods_supported": ["S256"],
    })
}

/// `doc` padded with spaces to exactly `len` bytes.
fn padded(doc: &serde_json::Value, len: usize) -> String {
    let mut text = doc.to_string();
    assert!(text.len() <= len);
    text.push_str(&" ".repeat(len - text.len()));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_reads_bounded_answers() {
    let http = oauth::http_client().unwrap();
    for (len, ok) in [
        (MAX_OAUTH2_RESPONSE_BYTES, true),
        (MAX_OAUTH2_RESPONSE_BYTES + 1, false),
    ] {
        let server = metadata_server(move |base, path| {
            (path == "/.well-known/oauth-authorization-server")
                .then(|| json_reply(padded(&as_metadata(base, base), len)))
        })
        .await;
        let result = oauth::discover(&http, &server.url("/mcp")).await;
        if ok {
            let found = result.unwrap();
            assert_eq!(found.token_endpoint, server.url("/token"));
            assert!(found.scopes.is_empty());
            assert!(found.registration_endpoint.is_none());
        } else {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Upstream);
            let text = err.to_string();
            assert!(text.contains("more than 65536 bytes"), "{text}");
        }
        // The path-suffixed protected-resource URL is tried before the root one.
        let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
        assert_eq!(
            paths[..2],
            [
                format!("{PROTECTED_RESOURCE_PATH}/mcp"),
                PROTECTED_RESOURCE_PATH.to_owned()
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_gives_up_on_a_silent_server() {
    let http = oauth::http_client().unwrap();
    let server = metadata_server(|base, path| {
        (path == "/.well-known/oauth-authorization-server").then(|| {
            let mut reply = json_reply(as_metadata(base, base).to_string());
            reply.delay_first_byte = OAUTH2_HTTP_TIMEOUT + Duration::from_secs(2);
            reply
        })
    })
    .await;
    let started = Instant::now();
    let err = oauth::discover(&http, &server.url("/mcp"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    let text = err.to_string();
    assert!(text.contains("did not answer within 10s"), "{text}");
    assert!(took >= OAUTH2_HTTP_TIMEOUT, "{took:?}");
    assert!(
        took < OAUTH2_HTTP_TIMEOUT + Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_refuses_redirects_other_issuers_and_no_pkce() {
    let http = oauth::http_client().unwrap();
    // A redirecting metadata endpoint is not followed.
    let redirecting = metadata_server(|base, path| {
        (path == "/.well-known/oauth-authorization-server").then(|| {
            Reply::status(
                302,
                vec![("location".into(), format!("{base}/elsewhere"))],
                vec![],
            )
        })
    })
    .await;
    let text = oauth::discover(&http, &redirecting.url("/mcp"))
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("HTTP 302"), "{text}");
    assert!(redirecting
        .requests()
        .iter()
        .all(|r| r.path != "/elsewhere"));

    // The resource names an issuer whose metadata claims to be another one.
    let impostor = metadata_server(|base, path| match path {
        "/.well-known/oauth-protected-resource" => Some(json_reply(
            serde_json::json!({"authorization_servers": [format!("{base}/tenant")]}).to_string(),
        )),
        "/.well-known/oauth-authorization-server/tenant" => Some(json_reply(
            as_metadata(base, "https://evil.example").to_string(),
        )),
        _ => None,
    })
    .await;
    let text = oauth::discover(&http, &impostor.url("/mcp"))
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("another issuer"), "{text}");

    // An issuer with a path: RFC 8414 inserts the well-known part before it.
    let tenant = metadata_server(|base, path| match path {
        "/.well-known/oauth-protected-resource" => Some(json_reply(
            serde_json::json!({
                "authorization_servers": [format!("{base}/tenant")],
                "scopes_supported": ["files:read", "bad scope", ""]
            })
            .to_string(),
        )),
        "/.well-known/oauth-authorization-server/tenant" => Some(json_reply(
            as_metadata(base, &format!("{base}/tenant")).to_string(),
        )),
        _ => None,
    })
    .await;
    let found = oauth::discover(&http, &tenant.url("/mcp")).await.unwrap();
    assert_eq!(found.issuer, tenant.url("/tenant"));
    assert_eq!(found.scopes, ["files:read"]);

    // Without S256 there is no PKCE, and no flow.
    let plain = metadata_server(|base, path| {
        (path == "/.well-known/oauth-authorization-server").then(|| {
            let mut doc = as_metadata(base, base);
            doc["code_challenge_methods_supported"] = serde_json::json!(["plain"]);
            json_reply(doc.to_string())
        })
    })
    .await;
    let text = oauth::discover(&http, &plain.url("/mcp"))
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("PKCE"), "{text}");
}
