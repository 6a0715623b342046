//! Which servers a turn uses, their credentials, the session cache, and the turn's tools.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codersdk::{
    Chat, ChatError, ChatErrorKind, MCPServerAuthType, MCPServerAvailability, MCPServerConfig,
    SecretString, Uuid,
};
use futures_util::future::join_all;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use super::naming::{order_and_dedupe, passes_filters, prefixed_name, NamedTool};
use super::session::{Endpoint, Identity, MessageLimits, OpenError, Session};
use super::tool::McpTool;
use crate::engine::lock;
use crate::secrets::Keyring;
use crate::store::Store;
use crate::tools::{Tool, TurnContext};
use crate::workspace::tools::Attachments;

/// How long connecting to one server may take: transport, initialize and listing its
/// tools. A slower server is skipped for the turn.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long starting and connecting one workspace `.mcp.json` server may take: a stdio
/// server started with `npx` may have to download its package first.
pub const DEFAULT_WORKSPACE_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connect slower than this is logged as a warning (it still counts).
pub const DEFAULT_CONNECT_WARN_AFTER: Duration = Duration::from_secs(5);

/// How long one tool call may take.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an open session is reused by later turns of the same user before it is closed
/// and opened afresh (which also picks up a changed tool list).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(5 * 60);

/// Open sessions kept at most; the oldest are closed first.
pub const DEFAULT_MAX_CACHED_SESSIONS: usize = 256;

/// Largest JSON-RPC message (one SSE event or one JSON body) accepted from a server: a
/// bigger tool result is an error result, never unbounded memory.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Tools kept per server (the first by name); a server listing more is cut, with a warning.
pub const DEFAULT_MAX_TOOLS_PER_SERVER: usize = 256;

/// The error of a turn whose `force_on` server cannot be used.
pub const FORCED_SERVER_UNAVAILABLE_MESSAGE: &str =
    "A required MCP server could not be prepared for this chat.";

/// Limits and timeouts of a [`McpConnector`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct McpSettings {
    /// See [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// See [`DEFAULT_CONNECT_WARN_AFTER`].
    pub connect_warn_after: Duration,
    /// See [`DEFAULT_WORKSPACE_CONNECT_TIMEOUT`].
    pub workspace_connect_timeout: Duration,
    /// See [`DEFAULT_CALL_TIMEOUT`].
    pub call_timeout: Duration,
    /// See [`DEFAULT_SESSION_TTL`]; zero turns reuse off.
    pub session_ttl: Duration,
    /// See [`DEFAULT_MAX_CACHED_SESSIONS`].
    pub max_cached_sessions: usize,
    /// See [`DEFAULT_MAX_MESSAGE_BYTES`].
    pub max_message_bytes: usize,
    /// See [`DEFAULT_MAX_TOOLS_PER_SERVER`].
    pub max_tools_per_server: usize,
}

impl Default for McpSettings {
    fn default() -> Self {
        McpSettings {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            connect_warn_after: DEFAULT_CONNECT_WARN_AFTER,
            workspace_connect_timeout: DEFAULT_WORKSPACE_CONNECT_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            session_ttl: DEFAULT_SESSION_TTL,
            max_cached_sessions: DEFAULT_MAX_CACHED_SESSIONS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_tools_per_server: DEFAULT_MAX_TOOLS_PER_SERVER,
        }
    }
}

/// Where the `user_oidc` auth mode gets a user's OIDC access token: the embedding
/// application's login. Without one (or when it has no token for the user) no
/// `Authorization` header is sent, and the server will likely refuse.
#[async_trait::async_trait]
pub trait OidcTokenSource: Send + Sync + std::fmt::Debug {
    /// The user's current OIDC access token, if any.
    async fn access_token(&self, user_id: Uuid) -> Option<SecretString>;
}

/// How connecting to one server went in a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectOutcome {
    /// Connected (or an open session reused) with at least one tool.
    Connected,
    /// The connect did not finish in time.
    Timeout,
    /// The connect failed, or the user's credentials could not be prepared.
    Error,
    /// Connected, but no tool was left after the allow and deny lists.
    NoTools,
}

impl ConnectOutcome {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectOutcome::Connected => "connected",
            ConnectOutcome::Timeout => "timeout",
            ConnectOutcome::Error => "error",
            ConnectOutcome::NoTools => "no_tools",
        }
    }
}

/// One server's outcome in one turn.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectReport {
    /// The server's config id.
    pub server_id: Uuid,
    /// Its slug.
    pub slug: String,
    /// What happened.
    pub outcome: ConnectOutcome,
    /// How long it took (near zero for a reused session).
    pub elapsed: Duration,
    /// An open session was reused.
    pub reused: bool,
    /// Tools the turn got from the server.
    pub tools: usize,
    /// Why it failed, without credentials.
    pub detail: Option<String>,
}

/// Called with every [`ConnectReport`] (the reference server counts them in metrics).
pub type ConnectObserver = Arc<dyn Fn(&ConnectReport) + Send + Sync>;

/// The MCP side of one turn.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct TurnMcp {
    /// The servers' tools, ordered by name.
    pub tools: Vec<Arc<dyn Tool>>,
    /// One report per server that applied.
    pub reports: Vec<ConnectReport>,
}

/// Connects chats' turns to admin MCP servers; one per engine, shared by every turn.
pub struct McpConnector {
    keyring: Arc<Keyring>,
    http: reqwest::Client,
    settings: McpSettings,
    oidc: Option<Arc<dyn OidcTokenSource>>,
    observer: Option<ConnectObserver>,
    /// Open sessions by (server, user).
    sessions: Mutex<HashMap<(Uuid, Uuid), Arc<Session>>>,
    /// Open sessions of workspace `.mcp.json` servers by (workspace, name).
    workspace_sessions: Mutex<HashMap<(Uuid, String), Arc<Session>>>,
    /// For token refreshes: follows no redirect, so a token endpoint cannot forward a
    /// refresh token or client secret elsewhere. Built on first use.
    oauth_http: std::sync::OnceLock<reqwest::Client>,
}

impl std::fmt::Debug for McpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpConnector")
            .field("settings", &self.settings)
            .field("oidc", &self.oidc)
            .field("sessions", &lock(&self.sessions).len())
            .finish_non_exhaustive()
    }
}

/// The credentials of one server for one user.
struct Credentials {
    headers: HeaderMap,
    bearer: Option<SecretString>,
}

impl McpConnector {
    /// A connector that opens the servers' secrets with `keyring`.
    pub fn new(keyring: Arc<Keyring>) -> Self {
        McpConnector {
            keyring,
            // Redirects only within the server's origin: credentials in custom headers
            // (which HTTP clients do not strip on a cross-origin redirect, unlike
            // `Authorization`) must never reach another host. The provider clients' policy.
            http: chatprovider::default_http_client(),
            settings: McpSettings::default(),
            oidc: None,
            observer: None,
            sessions: Mutex::new(HashMap::new()),
            workspace_sessions: Mutex::new(HashMap::new()),
            oauth_http: std::sync::OnceLock::new(),
        }
    }

    /// Replaces the limits and timeouts.
    pub fn with_settings(mut self, settings: McpSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Uses `http` for every connection (proxies, TLS roots).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Where `user_oidc` servers get the user's token.
    pub fn with_oidc_token_source(mut self, source: Arc<dyn OidcTokenSource>) -> Self {
        self.oidc = Some(source);
        self
    }

    /// Calls `observer` with each server's outcome in each turn.
    pub fn with_observer(mut self, observer: ConnectObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The settings.
    pub fn settings(&self) -> &McpSettings {
        &self.settings
    }

    /// Open sessions, admin and workspace servers' (for tests and diagnostics).
    pub fn open_sessions(&self) -> usize {
        lock(&self.sessions).len() + lock(&self.workspace_sessions).len()
    }

    /// Closes the sessions of workspace `workspace_id`'s `.mcp.json` servers (stopping
    /// its stdio servers): the engine calls it when the workspace's root chat is deleted.
    pub fn release_workspace(&self, workspace_id: Uuid) {
        lock(&self.workspace_sessions).retain(|(w, _), _| *w != workspace_id);
    }

    /// Closes every open session (stopping workspace stdio servers).
    pub fn close_all(&self) {
        lock(&self.sessions).clear();
        lock(&self.workspace_sessions).clear();
    }

    /// The tools of the servers `ws` declares in its `.mcp.json`, for `turn`: none on plan
    /// turns and for explore sub-agents. Servers that fail are skipped with a warning; this
    /// never fails the turn. Sessions are reused while the declaration is unchanged, for
    /// [`McpSettings::session_ttl`].
    pub async fn workspace_tools(
        &self,
        store: &Store,
        chat: &Chat,
        ws: &Arc<dyn crate::workspace::Workspace>,
        turn: &TurnContext,
    ) -> Vec<Arc<dyn Tool>> {
        if turn.plan_mode || turn.explore {
            return Vec::new();
        }
        let declared = super::workspace::discover(&**ws).await;
        if declared.is_empty() {
            return Vec::new();
        }
        let workspace_id = ws.id();
        {
            let ttl = self.settings.session_ttl;
            let names: HashSet<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
            // Servers removed from the file, and expired sessions, are closed.
            lock(&self.workspace_sessions).retain(|(w, name), s| {
                (*w != workspace_id || names.contains(name.as_str()))
                    && s.opened.elapsed() < ttl
                    && s.usable()
            });
        }
        let opens = declared
            .into_iter()
            .map(|(name, d)| self.workspace_session(ws, workspace_id, name, d));
        let mut named = Vec::new();
        for opened in join_all(opens).await {
            let Some(session) = opened else { continue };
            let mut tools: Vec<&rmcp::model::Tool> = session.tools().iter().collect();
            tools.sort_by(|a, b| a.name.cmp(&b.name));
            tools.truncate(self.settings.max_tools_per_server);
            for tool in tools {
                named.push(NamedTool {
                    name: prefixed_name(session.slug(), &tool.name),
                    server_id: Uuid::nil(),
                    tool: (Arc::clone(&session), tool.clone()),
                });
            }
        }
        let (kept, dropped) = order_and_dedupe(named);
        for d in dropped {
            tracing::warn!(tool = %d.name, "workspace MCP tool left out: a duplicate name");
        }
        let media = Attachments {
            store: store.clone(),
            organization_id: chat.organization_id,
        };
        kept.into_iter()
            .map(|k| {
                let (session, tool) = k.tool;
                Arc::new(McpTool::new(
                    k.name,
                    &tool,
                    session,
                    self.settings.call_timeout,
                    media.clone(),
                )) as Arc<dyn Tool>
            })
            .collect()
    }

    async fn workspace_session(
        &self,
        ws: &Arc<dyn crate::workspace::Workspace>,
        workspace_id: Uuid,
        name: String,
        declared: super::workspace::Declared,
    ) -> Option<Arc<Session>> {
        let mut h = Sha256::new();
        h.update(declared.fingerprint_text().as_bytes());
        let fingerprint: [u8; 32] = h.finalize().into();
        let key = (workspace_id, name.clone());
        {
            let sessions = lock(&self.workspace_sessions);
            if let Some(s) = sessions.get(&key) {
                if s.fingerprint == fingerprint && s.usable() {
                    return Some(Arc::clone(s));
                }
            }
        }
        let started = Instant::now();
        let identity = Identity {
            slug: name.clone(),
            display_name: name.clone(),
            config_id: None,
            model_intent: false,
            allow_in_plan_mode: false,
        };
        let limits = MessageLimits {
            max_message_bytes: self.settings.max_message_bytes,
        };
        let open = async {
            let endpoint = declared.endpoint(&**ws).await.map_err(OpenError)?;
            Session::open(self.http.clone(), identity, endpoint, limits, fingerprint).await
        };
        match tokio::time::timeout(self.settings.workspace_connect_timeout, open).await {
            Ok(Ok(session)) => {
                let session = Arc::new(session);
                tracing::info!(
                    %workspace_id,
                    server = %name,
                    tools = session.tools().len(),
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "workspace MCP server ready"
                );
                lock(&self.workspace_sessions).insert(key, Arc::clone(&session));
                Some(session)
            }
            Ok(Err(OpenError(detail))) => {
                tracing::warn!(%workspace_id, server = %name, detail, "workspace MCP server skipped");
                None
            }
            Err(_) => {
                tracing::warn!(%workspace_id, server = %name, "workspace MCP server did not start in time");
                None
            }
        }
    }

    /// The MCP tools of a turn of `chat`. Servers that fail to connect are skipped and
    /// reported; an error means a `force_on` server could not be prepared (its secrets do
    /// not open, or the user's credentials cannot be read), and the turn must fail closed.
    pub async fn turn_tools(
        &self,
        store: &Store,
        chat: &Chat,
        turn: &TurnContext,
    ) -> Result<TurnMcp, ChatError> {
        let configs = match store.cached_enabled_mcp_servers().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(chat_id = %chat.id, error = %e, "listing MCP servers failed");
                return Err(ChatError::generic(
                    "The chat could not be processed because of an internal error.",
                ));
            }
        };
        let selected: HashSet<Uuid> = chat.mcp_server_ids.iter().copied().collect();
        // An explore sub-agent's selection is the snapshot of its parent's servers taken
        // at spawn (forced ones included), so nothing is added to it at turn time.
        let applicable: Vec<MCPServerConfig> = configs
            .iter()
            .filter(|c| {
                c.enabled
                    && (selected.contains(&c.id)
                        || (!turn.explore && c.availability == MCPServerAvailability::ForceOn))
            })
            .filter(|c| applies_in_mode(c, turn))
            .cloned()
            .collect();
        if applicable.is_empty() {
            return Ok(TurnMcp::default());
        }
        self.evict_expired();
        let media = Attachments {
            store: store.clone(),
            organization_id: chat.organization_id,
        };
        let connects = applicable
            .into_iter()
            .map(|config| self.session_for(store, config, chat.owner_id));
        let mut sessions = Vec::new();
        let mut reports = Vec::new();
        for (config, result) in join_all(connects).await {
            match result {
                SessionResult::Ready(session, report) => {
                    sessions.push((config, session));
                    reports.push(report);
                }
                SessionResult::Failed(report) => reports.push(report),
                SessionResult::ForcedUnavailable(report) => {
                    self.report(&report);
                    return Err(ChatError {
                        detail: format!(
                            "MCP server {}: {}",
                            report.slug,
                            report.detail.unwrap_or_default()
                        ),
                        kind: Some(ChatErrorKind::Config),
                        ..ChatError::generic(FORCED_SERVER_UNAVAILABLE_MESSAGE)
                    });
                }
            }
        }
        let mut named = Vec::new();
        let mut per_server: HashMap<Uuid, usize> = HashMap::new();
        for (config, session) in &sessions {
            let mut tools: Vec<&rmcp::model::Tool> = session
                .tools()
                .iter()
                .filter(|t| {
                    passes_filters(&t.name, &config.tool_allow_list, &config.tool_deny_list)
                })
                .collect();
            tools.sort_by(|a, b| a.name.cmp(&b.name));
            if tools.len() > self.settings.max_tools_per_server {
                tracing::warn!(
                    server = %config.slug,
                    listed = tools.len(),
                    kept = self.settings.max_tools_per_server,
                    "MCP server lists more tools than a turn takes; the rest are left out"
                );
                tools.truncate(self.settings.max_tools_per_server);
            }
            for tool in tools {
                named.push(NamedTool {
                    name: prefixed_name(&config.slug, &tool.name),
                    server_id: config.id,
                    tool: (Arc::clone(session), tool.clone()),
                });
            }
        }
        let (kept, dropped) = order_and_dedupe(named);
        for d in dropped {
            tracing::warn!(
                chat_id = %chat.id,
                tool = %d.name,
                server = %d.tool.0.slug(),
                original = %d.tool.1.name,
                "MCP tool left out: another tool has the same name after sanitizing"
            );
        }
        let mut tools: Vec<Arc<dyn Tool>> = Vec::with_capacity(kept.len());
        for k in kept {
            *per_server.entry(k.server_id).or_default() += 1;
            let (session, tool) = k.tool;
            tools.push(Arc::new(McpTool::new(
                k.name,
                &tool,
                session,
                self.settings.call_timeout,
                media.clone(),
            )));
        }
        for report in &mut reports {
            if report.outcome == ConnectOutcome::Connected {
                report.tools = per_server.get(&report.server_id).copied().unwrap_or(0);
                if report.tools == 0 {
                    report.outcome = ConnectOutcome::NoTools;
                    // A server with nothing to offer is closed rather than kept.
                    lock(&self.sessions).remove(&(report.server_id, chat.owner_id));
                }
            }
            self.report(report);
        }
        Ok(TurnMcp { tools, reports })
    }

    fn report(&self, report: &ConnectReport) {
        let elapsed_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX);
        match report.outcome {
            ConnectOutcome::Connected => tracing::info!(
                server = %report.slug,
                outcome = report.outcome.as_str(),
                elapsed_ms,
                reused = report.reused,
                tools = report.tools,
                "MCP server ready"
            ),
            _ => tracing::warn!(
                server = %report.slug,
                outcome = report.outcome.as_str(),
                elapsed_ms,
                detail = report.detail.as_deref().unwrap_or_default(),
                "MCP server skipped"
            ),
        }
        if report.elapsed > self.settings.connect_warn_after && !report.reused {
            tracing::warn!(server = %report.slug, elapsed_ms, "MCP connect was slow");
        }
        if let Some(observer) = &self.observer {
            observer(report);
        }
    }

    /// An open session for `config` and `user`: the cached one when it is fresh and was
    /// opened with the same config and credentials, a new one otherwise.
    async fn session_for(
        &self,
        store: &Store,
        config: MCPServerConfig,
        user: Uuid,
    ) -> (MCPServerConfig, SessionResult) {
        let result = self.open_for(store, &config, user).await;
        (config, result)
    }

    async fn open_for(&self, store: &Store, config: &MCPServerConfig, user: Uuid) -> SessionResult {
        let started = Instant::now();
        let forced = config.availability == MCPServerAvailability::ForceOn;
        let base = ConnectReport {
            server_id: config.id,
            slug: config.slug.clone(),
            outcome: ConnectOutcome::Error,
            elapsed: Duration::ZERO,
            reused: false,
            tools: 0,
            detail: None,
        };
        let credentials = match self.credentials(store, config, user).await {
            Ok(c) => c,
            Err(detail) => {
                let report = ConnectReport {
                    elapsed: started.elapsed(),
                    detail: Some(detail),
                    ..base
                };
                return if forced {
                    SessionResult::ForcedUnavailable(report)
                } else {
                    SessionResult::Failed(report)
                };
            }
        };
        let fingerprint = fingerprint(config, &credentials);
        let key = (config.id, user);
        if let Some(session) = self.cached(key, &fingerprint) {
            let report = ConnectReport {
                outcome: ConnectOutcome::Connected,
                elapsed: started.elapsed(),
                reused: true,
                ..base
            };
            return SessionResult::Ready(session, report);
        }
        let limits = MessageLimits {
            max_message_bytes: self.settings.max_message_bytes,
        };
        let bearer = credentials.bearer.as_ref().map(|b| b.expose().to_owned());
        let endpoint = Endpoint::Http {
            url: config.url.clone(),
            transport: config.transport.clone(),
            headers: credentials.headers,
            bearer,
        };
        let open = Session::open(
            self.http.clone(),
            Identity::admin(config),
            endpoint,
            limits,
            fingerprint,
        );
        match tokio::time::timeout(self.settings.connect_timeout, open).await {
            Ok(Ok(session)) => {
                let session = Arc::new(session);
                self.store_session(key, Arc::clone(&session));
                let report = ConnectReport {
                    outcome: ConnectOutcome::Connected,
                    elapsed: started.elapsed(),
                    ..base
                };
                SessionResult::Ready(session, report)
            }
            Ok(Err(OpenError(detail))) => SessionResult::Failed(ConnectReport {
                elapsed: started.elapsed(),
                detail: Some(detail),
                ..base
            }),
            Err(_) => SessionResult::Failed(ConnectReport {
                outcome: ConnectOutcome::Timeout,
                elapsed: started.elapsed(),
                detail: Some(format!(
                    "no answer within {} s",
                    self.settings.connect_timeout.as_secs()
                )),
                ..base
            }),
        }
    }

    fn cached(&self, key: (Uuid, Uuid), fingerprint: &[u8; 32]) -> Option<Arc<Session>> {
        let mut sessions = lock(&self.sessions);
        let session = sessions.get(&key)?;
        if &session.fingerprint == fingerprint
            && session.opened.elapsed() < self.settings.session_ttl
            && session.usable()
        {
            return Some(Arc::clone(session));
        }
        // Stale: dropping the last handle closes it (the SDK closes a dropped session in
        // the background); a turn still using it keeps it until that turn ends.
        sessions.remove(&key);
        None
    }

    fn store_session(&self, key: (Uuid, Uuid), session: Arc<Session>) {
        if self.settings.session_ttl.is_zero() || self.settings.max_cached_sessions == 0 {
            return;
        }
        let mut sessions = lock(&self.sessions);
        sessions.insert(key, session);
        while sessions.len() > self.settings.max_cached_sessions {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.opened)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    sessions.remove(&k);
                }
                None => break,
            }
        }
    }

    fn evict_expired(&self) {
        let ttl = self.settings.session_ttl;
        lock(&self.sessions).retain(|_, s| s.opened.elapsed() < ttl && s.usable());
    }

    /// The headers and bearer token `user` sends to `config`'s server. An error says why
    /// they cannot be prepared, without any value.
    async fn credentials(
        &self,
        store: &Store,
        config: &MCPServerConfig,
        user: Uuid,
    ) -> Result<Credentials, String> {
        let secrets = store
            .mcp_server_secrets(config.id, &self.keyring)
            .await
            .map_err(|e| {
                format!(
                    "the server's secrets could not be opened ({})",
                    e.kind().as_str()
                )
            })?;
        let mut headers = HeaderMap::new();
        let mut bearer = None;
        match config.auth_type {
            MCPServerAuthType::ApiKey => {
                let value = secrets
                    .api_key_value
                    .ok_or_else(|| "no API key is stored".to_owned())?;
                insert_header(&mut headers, &config.api_key_header, &value)?;
            }
            MCPServerAuthType::CustomHeaders => {
                for (name, value) in &secrets.custom_headers {
                    insert_header(&mut headers, name, value)?;
                }
                let user_values = store
                    .mcp_user_header_values(config.id, user, &self.keyring)
                    .await
                    .map_err(|e| {
                        format!(
                            "the user's header values could not be read ({})",
                            e.kind().as_str()
                        )
                    })?;
                for (name, value) in &user_values {
                    // Only the header names the admin lets users set; a stale value of a
                    // name since removed is not sent.
                    if config
                        .custom_headers_user_keys
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(name))
                    {
                        insert_header(&mut headers, name, value)?;
                    }
                }
            }
            MCPServerAuthType::Oauth2 => {
                let http = match self.oauth_http.get() {
                    Some(h) => h.clone(),
                    None => {
                        let h = super::oauth::http_client().map_err(|e| {
                            format!("no HTTP client for token refresh ({})", e.kind().as_str())
                        })?;
                        let _ = self.oauth_http.set(h.clone());
                        h
                    }
                };
                bearer = super::oauth::access_token(store, &self.keyring, &http, config, user)
                    .await
                    .map_err(|e| {
                        format!(
                            "the user's OAuth2 token could not be read ({})",
                            e.kind().as_str()
                        )
                    })?;
                if bearer.is_none() {
                    return Err("the user has not connected this server (OAuth2)".to_owned());
                }
            }
            MCPServerAuthType::UserOidc => {
                if let Some(source) = &self.oidc {
                    bearer = source.access_token(user).await;
                }
                bearer = bearer.filter(|t| !t.expose().is_empty());
            }
            // `none`, and auth types added later (sent without credentials).
            _ => {}
        }
        Ok(Credentials { headers, bearer })
    }
}

enum SessionResult {
    Ready(Arc<Session>, ConnectReport),
    Failed(ConnectReport),
    ForcedUnavailable(ConnectReport),
}

/// Whether `config`'s tools can be offered in `turn` at all: an explore sub-agent gets
/// every server of its snapshot (its parent's servers when it was spawned; the snapshot
/// already applied the parent's mode, and the child's mode cannot change); plan turns only
/// servers allowed there, and never in a sub-agent.
fn applies_in_mode(config: &MCPServerConfig, turn: &TurnContext) -> bool {
    if turn.explore {
        return true;
    }
    if turn.plan_mode {
        return config.allow_in_plan_mode && !turn.is_subagent();
    }
    true
}

fn insert_header(headers: &mut HeaderMap, name: &str, value: &SecretString) -> Result<(), String> {
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    let mut value = HeaderValue::from_str(value.expose())
        .map_err(|_| format!("the value of header {name} is not a valid header value"))?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

/// A digest of what a session is opened with: the config's identity and version, and every
/// credential. Values are hashed, never kept in clear beside the session.
fn fingerprint(config: &MCPServerConfig, credentials: &Credentials) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(config.id.as_bytes());
    h.update(config.updated_at.to_string().as_bytes());
    h.update(config.url.as_bytes());
    let mut pairs: Vec<(&str, &[u8])> = credentials
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    pairs.sort();
    for (k, v) in pairs {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v);
        h.update([0]);
    }
    if let Some(b) = &credentials.bearer {
        h.update(b"bearer");
        h.update(b.expose().as_bytes());
    }
    h.finalize().into()
}
