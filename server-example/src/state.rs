//! What every handler shares, and how a server is put together from its options.

use std::sync::Arc;
use std::time::Duration;

use chatd_core::mcp::{McpConnector, McpSettings, OidcTokenSource};
use chatd_core::workspace::WorkspaceProvider;
use chatd_core::{
    Admin, Bootstrap, Engine, EngineConfig, EngineSettings, Keyring, ModelResolver, StoreOptions,
};
use chatprovider::ProviderApiKeys;
use codersdk::Uuid;

use crate::metrics::Metrics;
use crate::sockets::UserSockets;

/// Name of the organization every server has; users created through the API join it.
pub const DEFAULT_ORGANIZATION_NAME: &str = "default";

/// Username of the administrator created for `CHATD_ADMIN_TOKEN` or on first start.
pub const ADMIN_USERNAME: &str = "admin";

/// The handlers' shared state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    engine: Engine,
    admin: Admin,
    metrics: Metrics,
    sockets: Arc<UserSockets>,
    default_organization: Uuid,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("engine", &self.inner.engine)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over a running engine and the administration handle beside it.
    pub fn new(engine: Engine, admin: Admin, default_organization: Uuid) -> Self {
        AppState::with_metrics(engine, admin, default_organization, Metrics::default())
    }

    /// [`AppState::new`] recording into `metrics` (which the engine's MCP connector may
    /// already report to).
    pub fn with_metrics(
        engine: Engine,
        admin: Admin,
        default_organization: Uuid,
        metrics: Metrics,
    ) -> Self {
        AppState {
            inner: Arc::new(StateInner {
                engine,
                admin,
                metrics,
                sockets: Arc::new(UserSockets::default()),
                default_organization,
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The administration handle: configuration, users and tokens.
    pub fn admin(&self) -> &Admin {
        &self.inner.admin
    }

    /// The Prometheus metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Each user's open WebSockets and their limit
    /// ([`crate::sockets::DEFAULT_MAX_WEBSOCKETS_PER_USER`] unless changed with
    /// [`UserSockets::set_limit`]).
    pub fn sockets(&self) -> &Arc<UserSockets> {
        &self.inner.sockets
    }

    /// The organization every user belongs to.
    pub fn default_organization(&self) -> Uuid {
        self.inner.default_organization
    }

    /// The end of a graceful stop, once the HTTP server has drained: shuts the engine down
    /// (running turns hand their chats back) and closes the database cleanly, which on
    /// SQLite checkpoints and truncates the write-ahead log.
    pub async fn shutdown(&self) {
        self.inner.engine.clone().shutdown().await;
        self.inner.admin.close().await;
    }
}

/// Everything needed to build a server's state.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// The database.
    pub database: StoreOptions,
    /// Seals stored secrets.
    pub keyring: Arc<Keyring>,
    /// Provider keys from the environment.
    pub deployment_keys: ProviderApiKeys,
    /// When set, an `admin` user holding this token exists after start-up.
    pub admin_token: Option<String>,
    /// Engine intervals and limits.
    pub engine: EngineSettings,
    /// Overrides where models come from (tests script them); `None` uses the store's
    /// configuration with the demo model as a fallback.
    pub models: Option<Arc<dyn ModelResolver>>,
    /// Where chats' workspaces come from (`--workspaces-dir`); `None`: chats have no
    /// workspace and no workspace tools (docs/workspaces.md).
    pub workspaces: Option<Arc<dyn WorkspaceProvider>>,
    /// MCP connect and call limits (docs/mcp.md).
    pub mcp: McpSettings,
    /// Where `user_oidc` MCP servers get a user's OIDC access token. The reference server
    /// has no OIDC login, so it has none: such servers get no `Authorization` header and
    /// will likely answer 401. Embedders that log users in with OIDC plug theirs in.
    pub oidc_tokens: Option<Arc<dyn OidcTokenSource>>,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("database", &self.database.url)
            .finish_non_exhaustive()
    }
}

impl ServerOptions {
    /// Options with default engine settings, no admin token and no override.
    pub fn new(database: StoreOptions, keyring: Arc<Keyring>) -> Self {
        ServerOptions {
            database,
            keyring,
            deployment_keys: ProviderApiKeys::new(),
            admin_token: None,
            engine: EngineSettings::default(),
            models: None,
            workspaces: None,
            mcp: McpSettings::default(),
            oidc_tokens: None,
        }
    }
}

/// What [`build`] did on the way.
#[derive(Debug)]
#[non_exhaustive]
pub struct Started {
    /// The state to serve.
    pub state: AppState,
    /// A token generated for a freshly created admin (first start without
    /// `CHATD_ADMIN_TOKEN`); print it once.
    pub generated_admin_token: Option<codersdk::SecretString>,
    /// The chosen admin token does not authenticate (it was revoked, or belongs to another
    /// user); the binary warns.
    pub admin_token_refused: bool,
}

/// Connects, migrates, makes sure the default organization and the admin exist, and starts
/// the engine.
pub async fn build(options: ServerOptions) -> chatd_core::Result<Started> {
    let admin = Admin::connect(
        options.database.clone(),
        Arc::clone(&options.keyring),
        options.deployment_keys.clone(),
    )
    .await?;
    build_on(admin, options).await
}

/// [`build`] over an open administration handle, whose database, keyring and deployment
/// keys are used (`options.database`, `options.keyring` and `options.deployment_keys` are
/// not): how tests and embedders share one database with the server.
pub async fn build_on(admin: Admin, options: ServerOptions) -> chatd_core::Result<Started> {
    let bootstrap = Bootstrap::new(DEFAULT_ORGANIZATION_NAME, ADMIN_USERNAME).with_admin_token(
        options
            .admin_token
            .clone()
            .map(codersdk::SecretString::from),
    );
    let boot = admin.bootstrap(&bootstrap).await?;
    let models = match options.models.clone() {
        Some(models) => models,
        None => crate::demo::resolver(admin.clone()),
    };
    // No built-in tools: the demo tools come with the demo model, for its turns only.
    let mut config =
        EngineConfig::new(options.database.clone(), models).with_settings(options.engine.clone());
    match options.workspaces.clone() {
        Some(workspaces) => config = config.with_workspaces(workspaces),
        // Workspaces off: the model is told it cannot act on files or run commands.
        None => config = config.with_no_workspace_notice(true),
    }
    // Admin MCP servers: connected per turn with the same keyring that seals their
    // secrets; each server's outcome is counted in the metrics.
    let metrics = Metrics::default();
    let mcp = McpConnector::new(Arc::clone(&options.keyring))
        .with_settings(options.mcp.clone())
        .with_observer(metrics.mcp_observer());
    let mcp = match options.oidc_tokens.clone() {
        Some(source) => mcp.with_oidc_token_source(source),
        None => mcp,
    };
    config = config.with_mcp(Arc::new(mcp));
    let engine = Engine::with_admin(&admin, config).await?;
    Ok(Started {
        state: AppState::with_metrics(engine, admin, boot.organization_id, metrics),
        generated_admin_token: boot.generated_admin_token,
        admin_token_refused: boot.admin_token_refused,
    })
}

/// How long graceful shutdown waits for in-flight HTTP requests.
pub const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
