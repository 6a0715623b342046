//! What every handler shares, and how a server is put together from its options.

use std::sync::Arc;
use std::time::Duration;

use chatd_core::aibridge::{Recorder, RecorderSettings};
use chatd_core::mcp::{McpConnector, McpSettings, OidcTokenSource};
use chatd_core::workspace::WorkspaceProvider;
use chatd_core::{
    Admin, Bootstrap, Engine, EngineConfig, EngineSettings, Keyring, ModelResolver, StoreOptions,
};
use chatprovider::ProviderApiKeys;
use codersdk::Uuid;

use chatd_core::aibridge::InterceptionSink;

use crate::metrics::Metrics;
use crate::routes::aibridge::{Gateway, GatewayOptions};
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
    access_url: Option<AccessUrl>,
    /// The AI Gateway, once [`build_on`] (or an embedder) set it.
    gateway: std::sync::OnceLock<Arc<Gateway>>,
    interceptions: Recorder,
}

/// Path of an MCP server's OAuth2 callback under the access URL, `{id}` standing for the
/// server's id: the reference server's route (`routes::mcp`).
pub const MCP_OAUTH2_CALLBACK_PATH: &str = "/api/experimental/mcp/servers/{id}/oauth2/callback";

/// Most bytes of an access URL.
pub const MAX_ACCESS_URL_BYTES: usize = 1024;

/// The URL at which users' browsers and the authorization servers they visit reach this
/// server (`--access-url`): an `http` or `https` origin, optionally with a path prefix,
/// without query, fragment or credentials, kept without a trailing slash. MCP OAuth2
/// callback URLs are built from it ([`AccessUrl::mcp_oauth2_callback`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUrl(String);

impl AccessUrl {
    /// Parses and normalizes an access URL; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<AccessUrl, String> {
        let raw = raw.trim();
        if raw.len() > MAX_ACCESS_URL_BYTES {
            return Err(format!(
                "the access URL is longer than {MAX_ACCESS_URL_BYTES} bytes"
            ));
        }
        codersdk::validate_http_url(raw).map_err(|reason| format!("the access URL {reason}"))?;
        let url = url::Url::parse(raw).map_err(|e| format!("the access URL is invalid: {e}"))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err("the access URL must not have a query or a fragment".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the access URL must not carry credentials".to_owned());
        }
        Ok(AccessUrl(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The default access URL of a server listening on `addr`: `http://` and the address,
    /// with the loopback address in place of an unspecified one (`0.0.0.0`, `::`), which
    /// no browser can visit. Right for a server used from its own machine; behind a proxy
    /// or on another host set `--access-url`.
    pub fn from_listen(addr: std::net::SocketAddr) -> AccessUrl {
        let ip = match addr.ip() {
            std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            }
            ip => ip,
        };
        AccessUrl(format!(
            "http://{}",
            std::net::SocketAddr::new(ip, addr.port())
        ))
    }

    /// The URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The OAuth2 callback URL of MCP server `id` ([`MCP_OAUTH2_CALLBACK_PATH`]).
    pub fn mcp_oauth2_callback(&self, id: Uuid) -> String {
        format!(
            "{}{}",
            self.0,
            MCP_OAUTH2_CALLBACK_PATH.replace("{id}", &id.to_string())
        )
    }
}

impl std::fmt::Display for AccessUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("engine", &self.inner.engine)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over a running engine and the administration handle beside it, without an
    /// access URL (MCP OAuth2 is then unavailable: see [`AppState::with_access_url`]).
    pub fn new(engine: Engine, admin: Admin, default_organization: Uuid) -> Self {
        AppState::with_parts(
            engine,
            admin,
            default_organization,
            None,
            Metrics::default(),
        )
    }

    /// [`AppState::new`] with the URL at which browsers reach the server, from which MCP
    /// OAuth2 callback URLs are built.
    pub fn with_access_url(
        engine: Engine,
        admin: Admin,
        default_organization: Uuid,
        access_url: Option<AccessUrl>,
    ) -> Self {
        AppState::with_parts(
            engine,
            admin,
            default_organization,
            access_url,
            Metrics::default(),
        )
    }

    /// [`AppState::with_access_url`] recording into `metrics` (which the engine's MCP
    /// connector may already report to), with an AI Gateway recorder of default settings
    /// (started on the current Tokio runtime).
    pub fn with_parts(
        engine: Engine,
        admin: Admin,
        default_organization: Uuid,
        access_url: Option<AccessUrl>,
        metrics: Metrics,
    ) -> Self {
        let interceptions = Recorder::for_admin(&admin, RecorderSettings::default());
        AppState::with_recorder(
            engine,
            admin,
            default_organization,
            access_url,
            metrics,
            interceptions,
        )
    }

    /// [`AppState::with_parts`] with the AI Gateway's recorder given.
    pub fn with_recorder(
        engine: Engine,
        admin: Admin,
        default_organization: Uuid,
        access_url: Option<AccessUrl>,
        metrics: Metrics,
        interceptions: Recorder,
    ) -> Self {
        AppState {
            inner: Arc::new(StateInner {
                engine,
                admin,
                metrics,
                sockets: Arc::new(UserSockets::default()),
                default_organization,
                access_url,
                gateway: std::sync::OnceLock::new(),
                interceptions,
            }),
        }
    }

    /// The AI Gateway (`/api/v2/aibridge/…`), when it is set; without one those routes
    /// answer 404.
    pub fn gateway(&self) -> Option<Arc<Gateway>> {
        self.inner.gateway.get().cloned()
    }

    /// Sets the AI Gateway; `false` when one was set already (the first stays).
    pub fn set_gateway(&self, gateway: Gateway) -> bool {
        self.inner.gateway.set(Arc::new(gateway)).is_ok()
    }

    /// The AI Gateway's recorder: the [`chatd_core::aibridge::InterceptionSink`] the
    /// gateway's proxy hands its records to (stored, costed, logged off the request path;
    /// docs/ai-gateway-records.md).
    pub fn interceptions(&self) -> &Recorder {
        &self.inner.interceptions
    }

    /// The access URL, when one is configured.
    pub fn access_url(&self) -> Option<&AccessUrl> {
        self.inner.access_url.as_ref()
    }

    /// The OAuth2 callback URL of MCP server `id`, when an access URL is configured.
    pub fn mcp_oauth2_callback(&self, id: Uuid) -> Option<String> {
        self.access_url().map(|a| a.mcp_oauth2_callback(id))
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
        // The gateway's queued records first, while the database is open.
        self.inner.interceptions.shutdown().await;
        self.inner.engine.clone().shutdown().await;
        // The engine closed every stream and watch; their sockets now send their close
        // frames (1012, reconnect). Give them a moment before the process goes.
        let deadline = tokio::time::Instant::now() + SOCKET_CLOSE_GRACE;
        while self.inner.sockets.total() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.admin.close().await;
    }

    /// The start of a rolling restart (SIGTERM): `/healthz` answers 503 from now on so the
    /// load balancer sends new requests elsewhere, the engine claims no more chats, and
    /// running turns get up to `timeout` to finish; everything else keeps working. Then
    /// stop the HTTP server and call [`AppState::shutdown`], which hands the unfinished
    /// chats back to the other replicas. Returns how many turns were still running.
    pub async fn drain(&self, timeout: Duration) -> usize {
        let running = self.inner.engine.drain(timeout).await;
        if running > 0 {
            tracing::info!(running, "drain timeout reached; handing the rest back");
        }
        running
    }

    /// Whether [`AppState::drain`] started.
    pub fn is_draining(&self) -> bool {
        self.inner.engine.is_draining()
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
    /// The URL at which browsers reach the server (`--access-url`); MCP OAuth2 callback
    /// URLs are built from it. `None`: OAuth2 discovery and connections to MCP servers are
    /// unavailable (docs/mcp-auth.md).
    pub access_url: Option<AccessUrl>,
    /// Whether a root chat's completed turn gets a 2–5 word summary from the title model
    /// (`--turn-summaries`; one more model call per turn, docs/engine-design.md "Turn
    /// summaries").
    pub turn_summaries: bool,
    /// Whether the deployment forces chat debug logging on for every chat
    /// (`--chat-debug-logging-forced`; docs/debug-runs.md): every model call of every
    /// turn is recorded, and users cannot turn it off. Off by default.
    pub debug_logging_forced: bool,
    /// The AI Gateway's settings (`--ai-gateway-*`, `CHATD_AIBRIDGE_PROVIDER_<N>_*`;
    /// docs/ai-gateway.md).
    pub ai_gateway: GatewayOptions,
    /// Where the AI Gateway hands its interception records instead of the store-backed
    /// recorder [`build_on`] starts (an embedder's own sink, or a test's). `None`, the
    /// default: the [`Recorder`] with [`ServerOptions::ai_gateway_records`].
    pub interception_sink: Option<Arc<dyn InterceptionSink>>,
    /// The AI Gateway recorder's queue, batch and prompt settings
    /// (`--ai-gateway-record-prompts`, `--ai-gateway-record-queue`;
    /// docs/ai-gateway-records.md). How long the records are kept is the engine's
    /// (`engine.ai_gateway_retention_days`, `--ai-gateway-retention`): its retention job
    /// purges them (docs/ai-gateway-records.md "Retention").
    pub ai_gateway_records: RecorderSettings,
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
            access_url: None,
            turn_summaries: true,
            debug_logging_forced: false,
            ai_gateway: GatewayOptions::default(),
            interception_sink: None,
            ai_gateway_records: RecorderSettings::default(),
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
    // The AI Gateway's records go to the store-backed recorder (AppState::interceptions)
    // unless the options name another sink.
    let interceptions = Recorder::for_admin(&admin, options.ai_gateway_records.clone());
    let sink: Arc<dyn InterceptionSink> = match &options.interception_sink {
        Some(sink) => Arc::clone(sink),
        None => Arc::new(interceptions.clone()),
    };
    // The gateway's configuration is checked before the engine starts, so a refused
    // start leaves no engine running.
    let gateway = Gateway::new(options.ai_gateway.clone(), Some(sink)).map_err(|e| {
        chatd_core::Error::with_response(
            chatd_core::ErrorKind::InvalidArgument,
            codersdk::Response::new(format!("The AI Gateway cannot start: {e}")),
        )
    })?;
    // A name both in the environment and stored through the API is configured twice.
    admin
        .check_aibridge_instance_names(&options.ai_gateway.instances)
        .await?;
    // A flag of this process, shared by the engine and the Admin handle through the store.
    admin.set_debug_logging_forced(options.debug_logging_forced);
    let models = match options.models.clone() {
        Some(models) => models,
        None => crate::demo::resolver(admin.clone()),
    };
    // No built-in tools: the demo tools come with the demo model, for its turns only.
    let mut config = EngineConfig::new(options.database.clone(), models)
        .with_settings(options.engine.clone())
        .with_turn_summaries(options.turn_summaries);
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
    config = config.with_observer(metrics.engine_observer());
    let engine = Engine::with_admin(&admin, config).await?;
    // Configuration writes reach every replica's caches through the engine's relay (the
    // announcer holds the engine weakly: the demo resolver holds the admin handle, which
    // must not keep the engine alive).
    admin.on_config_change(engine.config_announcer());
    let state = AppState::with_recorder(
        engine,
        admin,
        boot.organization_id,
        options.access_url.clone(),
        metrics,
        interceptions,
    );
    state.set_gateway(gateway);
    Ok(Started {
        state,
        generated_admin_token: boot.generated_admin_token,
        admin_token_refused: boot.admin_token_refused,
    })
}

/// Longest [`AppState::shutdown`] waits for open WebSockets to send their close frames
/// after the engine closed their streams.
pub const SOCKET_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long graceful shutdown waits for in-flight HTTP requests.
pub const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn access_urls_are_origins_with_an_optional_prefix() {
        let a = AccessUrl::parse(" https://chat.example.com/ ").unwrap();
        assert_eq!(a.as_str(), "https://chat.example.com");
        let id = Uuid::nil();
        assert_eq!(
            a.mcp_oauth2_callback(id),
            format!("https://chat.example.com/api/experimental/mcp/servers/{id}/oauth2/callback")
        );
        let prefixed = AccessUrl::parse("http://10.0.0.1:8080/chatd/").unwrap();
        assert_eq!(prefixed.as_str(), "http://10.0.0.1:8080/chatd");
        for bad in [
            "",
            "chat.example.com",
            "ftp://chat.example.com",
            "https://chat.example.com/?x=1",
            "https://chat.example.com/#top",
            "https://user:pw@chat.example.com",
        ] {
            assert!(AccessUrl::parse(bad).is_err(), "{bad}");
        }
        let at = format!("https://e.com/{}", "a".repeat(MAX_ACCESS_URL_BYTES - 14));
        assert_eq!(at.len(), MAX_ACCESS_URL_BYTES);
        assert!(AccessUrl::parse(&at).is_ok());
        assert!(AccessUrl::parse(&format!("{at}a")).is_err());
    }

    #[test]
    fn the_default_access_url_is_the_listen_address_reachable() {
        let from = |s: &str| {
            AccessUrl::from_listen(s.parse().unwrap())
                .as_str()
                .to_owned()
        };
        assert_eq!(from("127.0.0.1:3000"), "http://127.0.0.1:3000");
        assert_eq!(from("0.0.0.0:8080"), "http://127.0.0.1:8080");
        assert_eq!(from("[::]:8080"), "http://[::1]:8080");
        assert_eq!(from("192.168.1.5:80"), "http://192.168.1.5:80");
    }
}
