//! The reference server for tests: a real `server-example` router on a random local port,
//! over a test store (see [`crate::db::on_each_backend`]), with a scripted model or the
//! server's own model resolution.
//!
//! ```no_run
//! # async fn demo(store: chatd_core::store::Store) {
//! use chatd_test_support::scripted::{Reply, ScriptedModel};
//! use chatd_test_support::server::TestServer;
//! use reqwest::Method;
//!
//! let server = TestServer::builder(&store)
//!     .model(ScriptedModel::new([Reply::Text("hello".into())]))
//!     .start()
//!     .await;
//! let alice = server.user("alice").await;
//! let chats = server
//!     .request(Method::GET, "/chats")
//!     .token(Some(&alice.token))
//!     .send()
//!     .await;
//! assert_eq!(chats.status, 200);
//! server.stop().await;
//! # }
//! ```

use std::sync::Arc;

use chatd_core::aibridge::InterceptionSink;
use chatd_core::store::{NewUser, Store, StoreOptions};
use chatd_core::{Admin, EngineSettings, Keyring, SecretKey};
use chatprovider::ProviderApiKeys;
use codersdk::Uuid;
use reqwest::Method;
use server_example::routes::aibridge::GatewayOptions;
use server_example::state::{build_on, AccessUrl, ServerOptions};
use server_example::AppState;

use crate::request::Request;
use crate::scripted::{fast_settings, ScriptedModel, ScriptedResolver};

/// The admin's API token on every test server.
pub const ADMIN_TOKEN: &str = "chatd_test_admin_token";

/// The name of the keys in a test server's keyring.
pub const TEST_KEY_ID: &str = "test";

/// A running server.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The admin's API token.
    pub admin_token: String,
    /// The server's state (engine, administration handle).
    pub state: AppState,
    /// The keyring sealing the server's secrets.
    pub keyring: Arc<Keyring>,
    /// The model every turn uses (unused when the server resolves its own models).
    pub model: Arc<ScriptedModel>,
    /// A plain HTTP client.
    pub http: reqwest::Client,
}

/// A user with a token.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// The user's id.
    pub id: Uuid,
    /// An API token of the user.
    pub token: String,
}

/// A fresh keyring with one generated key.
pub fn test_keyring() -> Arc<Keyring> {
    let key = SecretKey::generate().expect("generate a test key");
    Arc::new(Keyring::new(TEST_KEY_ID, key).expect("a keyring with the test key"))
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

/// Serves `app` on a random local port until the test's runtime ends; returns
/// `http://127.0.0.1:port`.
pub async fn serve(app: axum::Router) -> String {
    let (listener, base) = bind().await;
    serve_on(listener, app);
    base
}

/// A listener on a random local port and its `http://127.0.0.1:port`.
pub async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let base = format!(
        "http://{}",
        listener.local_addr().expect("the listener's address")
    );
    (listener, base)
}

/// Serves `app` on `listener` until the test's runtime ends. Accepted sockets are set up
/// as the server's own accept loop sets them up (`TCP_NODELAY`), so latencies measured
/// against it (the load benchmark) are the server's, not Nagle's algorithm's.
pub fn serve_on(listener: tokio::net::TcpListener, app: axum::Router) {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| server_example::serve::prepare_accepted(tcp));
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the test server stopped with an error");
    });
}

/// How a [`TestServer`] is built; [`TestServer::builder`].
#[derive(Debug)]
pub struct TestServerBuilder {
    store: Store,
    model: Arc<ScriptedModel>,
    scripted: bool,
    keyring: Option<Arc<Keyring>>,
    deployment_keys: ProviderApiKeys,
    settings: EngineSettings,
    turn_summaries: bool,
    ai_gateway: GatewayOptions,
    interception_sink: Option<Arc<dyn InterceptionSink>>,
}

impl TestServerBuilder {
    /// Turns use `model` (the default is a [`ScriptedModel`] with an empty script, which
    /// answers "ok").
    pub fn model(mut self, model: Arc<ScriptedModel>) -> Self {
        self.model = model;
        self.scripted = true;
        self
    }

    /// Models come from the server's own resolution (the store's configuration, the demo
    /// model as a fallback) instead of a scripted model.
    pub fn own_models(mut self) -> Self {
        self.scripted = false;
        self
    }

    /// Secrets are sealed with `keyring` (the default is a fresh one).
    pub fn keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Provider keys as if from the deployment's environment.
    pub fn deployment_keys(mut self, keys: ProviderApiKeys) -> Self {
        self.deployment_keys = keys;
        self
    }

    /// Engine settings (the default is [`fast_settings`]).
    pub fn settings(mut self, settings: EngineSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Whether completed root turns get a turn summary (the default: yes, as the server).
    pub fn turn_summaries(mut self, on: bool) -> Self {
        self.turn_summaries = on;
        self
    }

    /// The AI Gateway's settings (the default: BYOK on, no private upstreams, no named
    /// instances).
    pub fn ai_gateway(mut self, options: GatewayOptions) -> Self {
        self.ai_gateway = options;
        self
    }

    /// Where the AI Gateway hands its interception records (the default: nowhere).
    pub fn interception_sink(mut self, sink: Arc<dyn InterceptionSink>) -> Self {
        self.interception_sink = Some(sink);
        self
    }

    /// Builds the server over the store, with [`ADMIN_TOKEN`] as the admin's token, and
    /// serves it on a random local port, which is also its access URL (MCP OAuth2
    /// callbacks come back to it).
    pub async fn start(self) -> TestServer {
        let keyring = self.keyring.unwrap_or_else(test_keyring);
        let (listener, base) = bind().await;
        let mut options = ServerOptions::new(StoreOptions::new("unused"), Arc::clone(&keyring));
        options.access_url =
            Some(AccessUrl::parse(&base).expect("the test server's address is an access URL"));
        options.admin_token = Some(ADMIN_TOKEN.to_owned());
        options.engine = self.settings;
        options.deployment_keys = self.deployment_keys;
        options.turn_summaries = self.turn_summaries;
        options.ai_gateway = self.ai_gateway;
        options.interception_sink = self.interception_sink;
        if self.scripted {
            options.models = Some(ScriptedResolver::new(self.model.clone()));
        }
        let started = build_on(admin_over(&self.store, &options), options)
            .await
            .expect("build the test server");
        let state = started.state;
        serve_on(listener, server_example::router(state.clone()));
        TestServer {
            base,
            admin_token: ADMIN_TOKEN.to_owned(),
            state,
            keyring,
            model: self.model,
            http: reqwest::Client::new(),
        }
    }
}

impl TestServer {
    /// Starts a server on `store` whose turns use `model`.
    pub async fn start(store: &Store, model: Arc<ScriptedModel>) -> TestServer {
        TestServer::builder(store).model(model).start().await
    }

    /// A builder for a server on `store`: a scripted model with an empty script, a fresh
    /// keyring, no deployment keys, [`fast_settings`].
    pub fn builder(store: &Store) -> TestServerBuilder {
        TestServerBuilder {
            store: store.clone(),
            model: ScriptedModel::new([]),
            scripted: true,
            keyring: None,
            deployment_keys: ProviderApiKeys::new(),
            settings: fast_settings(),
            turn_summaries: true,
            ai_gateway: GatewayOptions::default(),
            interception_sink: None,
        }
    }

    /// `base` + `/api/experimental` + `path`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/experimental{path}", self.base)
    }

    /// `base` + `/api/v2` + `path`.
    pub fn api_v2(&self, path: &str) -> String {
        format!("{}/api/v2{path}", self.base)
    }

    /// A request to [`TestServer::api`]`(path)`.
    pub fn request(&self, method: Method, path: &str) -> Request {
        Request::new(&self.http, method, self.api(path))
    }

    /// A request to [`TestServer::api_v2`]`(path)`.
    pub fn request_v2(&self, method: Method, path: &str) -> Request {
        Request::new(&self.http, method, self.api_v2(path))
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
            .expect("create a test user");
        store
            .add_member(self.state.default_organization(), user.id)
            .await
            .expect("add the test user to the default organization");
        let token = store
            .create_api_token(user.id)
            .await
            .expect("create the test user's token");
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
