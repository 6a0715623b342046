//! The server test harness: a real server on a random local port, on SQLite and (when
//! `CHATD_TEST_DATABASE_URL` is set) PostgreSQL, with a scripted model.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

#[path = "../../../chatd-core/tests/common/mod.rs"]
pub mod core;
#[path = "../../../chatd-core/tests/common/engine.rs"]
pub mod scripted;

use std::sync::Arc;

use chatd_core::store::{NewUser, Store, StoreOptions};
use chatd_core::{Admin, Keyring, SecretKey};
use codersdk::Uuid;
use scripted::{ScriptedModel, ScriptedResolver};
use server_example::state::{build_on, ServerOptions};
use server_example::AppState;

pub use self::core::on_each_backend;

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The admin's API token.
    pub admin_token: String,
    /// The server's state (engine, store).
    pub state: AppState,
    /// The keyring sealing the server's secrets.
    pub keyring: Arc<Keyring>,
    /// The model every turn uses.
    pub model: Arc<ScriptedModel>,
    /// A plain HTTP client.
    pub http: reqwest::Client,
}

/// An administration handle over `store` with the keyring and deployment keys of
/// `options`, for `build_on`.
pub fn admin_over(store: &Store, options: &ServerOptions) -> Admin {
    Admin::new(
        store.clone(),
        Arc::clone(&options.keyring),
        options.deployment_keys.clone(),
    )
}

/// A user with a token.
pub struct TestUser {
    pub id: Uuid,
    pub token: String,
}

pub const ADMIN_TOKEN: &str = "chatd_test_admin_token";

impl TestServer {
    /// Starts a server on `store` whose turns use `model`.
    pub async fn start(store: &Store, model: Arc<ScriptedModel>) -> TestServer {
        let keyring = Arc::new(Keyring::new("test", SecretKey::generate().unwrap()).unwrap());
        let mut options = ServerOptions::new(StoreOptions::new("unused"), keyring);
        options.admin_token = Some(ADMIN_TOKEN.to_owned());
        options.engine = scripted::fast_settings();
        options.models = Some(ScriptedResolver::new(model.clone()));
        let keyring = Arc::clone(&options.keyring);
        let started = build_on(admin_over(store, &options), options)
            .await
            .unwrap();
        let state = started.state;
        let app = server_example::router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer {
            base: format!("http://{addr}"),
            admin_token: ADMIN_TOKEN.to_owned(),
            state,
            keyring,
            model,
            http: reqwest::Client::new(),
        }
    }

    /// `base` + `/api/experimental` + `path`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/experimental{path}", self.base)
    }

    /// A member of the default organization, with a token.
    pub async fn user(&self, username: &str) -> TestUser {
        let store = self.state.engine().store();
        let user = store
            .create_user(NewUser {
                username: username.into(),
                name: username.into(),
                role: chatd_core::Role::Member,
            })
            .await
            .unwrap();
        store
            .add_member(self.state.default_organization(), user.id)
            .await
            .unwrap();
        let token = store.create_api_token(user.id).await.unwrap();
        TestUser {
            id: user.id,
            token: token.expose().to_owned(),
        }
    }

    /// Stops the engine (the HTTP listener dies with the test runtime).
    pub async fn stop(self) {
        self.state.engine().clone().shutdown().await;
    }
}
