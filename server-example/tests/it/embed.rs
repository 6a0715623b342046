//! The chats API mounted inside another axum application (`examples/embed_router.rs`,
//! compiled in here), behind that application's authentication, on both backends: the
//! application's middleware decides who calls, chatd's own tokens are not consulted, the
//! actor's admin flag grants the administrator routes, and codersdk's typed client works
//! with the mount point as its base URL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../../examples/embed_router.rs"]
#[allow(dead_code)]
mod embed_router;

use std::sync::Arc;

use chatd_core::store::NewUser;
use chatd_core::Actor;
use chatd_test_support::db::on_each_backend;
use chatd_test_support::scripted::{Reply, ScriptedModel};
use chatd_test_support::server::{serve, TestServer, ADMIN_TOKEN};
use codersdk::{ChatInputPart, ChatStatus, CreateChatRequest};
use reqwest::StatusCode;
use server_example::{chats_router, AppState, Authenticated, Authentication};

async fn state(store: &chatd_core::store::Store, model: Arc<ScriptedModel>) -> AppState {
    TestServer::builder(store).model(model).start().await.state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_application_authenticates_the_chats_api_itself() {
    on_each_backend(|store| async move {
        let state = state(&store, ScriptedModel::new([Reply::Text("hi alice".into())])).await;
        let users = embed_router::register_users(&state, &[("alice", false), ("root", true)])
            .await
            .unwrap();
        // Registering again finds the same users.
        embed_router::register_users(&state, &[("alice", false)])
            .await
            .unwrap();
        let base = serve(embed_router::app(state.clone(), users)).await;
        let http = reqwest::Client::new();
        let chats = format!("{base}/ai/api/experimental/chats");

        // The application's own route, and its own 401 for strangers.
        let r = http.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "my application");
        let r = http.get(&chats).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.text().await.unwrap(), "sign in to my application first");
        // chatd's own admin token means nothing here.
        let r = http
            .get(&chats)
            .header("Coder-Session-Token", ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

        // codersdk's typed client, with the mount point as its base URL and the
        // application's credential as a default header.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-demo-user", "alice".parse().unwrap());
        let alice_http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        let client =
            codersdk::client::Client::with_http_client(&format!("{base}/ai"), "unused", alice_http)
                .unwrap();
        let chat = client
            .create_chat(&CreateChatRequest {
                content: vec![ChatInputPart::text("hello")],
                ..Default::default()
            })
            .await
            .unwrap();
        let alice = store.get_user_by_username("alice").await.unwrap().unwrap();
        assert_eq!(chat.owner_id, alice.id);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while client.chat(chat.id).await.unwrap().status != ChatStatus::Waiting {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the turn never ended"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let listed = client.chats(&Default::default()).await.unwrap();
        assert_eq!(listed.len(), 1);
        // The request layer records the embedded API's latencies in the state's metrics.
        assert!(state
            .metrics()
            .render()
            .contains("chat_create_latency_seconds_count 1\n"));

        // The actor's admin flag decides the administrator routes.
        let providers = format!("{base}/ai/api/experimental/chats/providers");
        let r = http
            .get(&providers)
            .header("x-demo-user", "alice")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = http
            .get(&providers)
            .header("x-demo-user", "root")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // Unknown chats API paths are the API's JSON 404.
        let r = http
            .get(format!("{base}/ai/api/experimental/nope"))
            .header("x-demo-user", "alice")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let _: codersdk::Response = r.json().await.unwrap();
        let r = http
            .delete(&chats)
            .header("x-demo-user", "alice")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        let _: codersdk::Response = r.json().await.unwrap();
        state.engine().clone().shutdown().await;
    })
    .await;
}

/// Without the application's middleware (or when it lets a request through without an
/// `Authenticated`), the upstream-authenticated API refuses it, token or not; an actor the
/// store does not know is refused too. `Authentication::Tokens` keeps chatd's tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_authentication_needs_an_authenticated_known_user() {
    on_each_backend(|store| async move {
        let state = state(&store, ScriptedModel::new([])).await;
        let bob = store
            .create_user(NewUser {
                username: "bob".into(),
                name: "Bob".into(),
                role: chatd_core::Role::Member,
            })
            .await
            .unwrap();
        let http = reqwest::Client::new();

        let bare = serve(chats_router(state.clone(), Authentication::Upstream)).await;
        let r = http
            .get(format!("{bare}/chats"))
            .header("Coder-Session-Token", ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let _: codersdk::Response = r.json().await.unwrap();

        // A middleware that names a user id, known or not.
        let as_actor = |actor: Actor| {
            chats_router(state.clone(), Authentication::Upstream).layer(axum::middleware::from_fn(
                move |mut request: axum::extract::Request, next: axum::middleware::Next| {
                    request.extensions_mut().insert(Authenticated(actor));
                    next.run(request)
                },
            ))
        };
        let known = serve(as_actor(Actor::user(bob.id))).await;
        let r = http.get(format!("{known}/chats")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let unknown = serve(as_actor(Actor::user(codersdk::Uuid::new_v4()))).await;
        let r = http.get(format!("{unknown}/chats")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let body: codersdk::Response = r.json().await.unwrap();
        assert!(body.message.contains("not set up"), "{body:?}");

        // The same router with chatd's tokens.
        let tokens = serve(chats_router(state.clone(), Authentication::Tokens)).await;
        let r = http
            .get(format!("{tokens}/chats"))
            .header("Coder-Session-Token", ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = http.get(format!("{tokens}/chats")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        state.engine().clone().shutdown().await;
    })
    .await;
}
