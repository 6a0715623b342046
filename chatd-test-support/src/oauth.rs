//! A local OAuth2 authorization server for the MCP OAuth2 tests, which also plays the MCP
//! server's origin: it serves protected-resource metadata (RFC 9728) for `/mcp`,
//! authorization-server metadata (RFC 8414, or only OpenID Connect discovery), dynamic
//! client registration (RFC 7591), an `/authorize` that approves at once (or refuses, when
//! told) and redirects back with a code and the state, and a `/token` endpoint that checks
//! the client, the redirect URI and the PKCE verifier against the recorded S256 challenge,
//! issues access and refresh tokens with a lifetime the test chooses, refreshes them, and
//! fails on demand with an error body that echoes the request's secrets (to check that
//! chatd never repeats them). Every request is recorded.
//!
//! ```no_run
//! # async fn demo() {
//! use chatd_test_support::oauth::OAuthServer;
//!
//! let auth = OAuthServer::start().await;
//! auth.configure(|c| c.expires_in = Some(5));
//! // Create an `oauth2` MCP server config with `"url": auth.mcp_url()` and no client id:
//! // discovery finds this server and registers a client.
//! assert!(auth.requests().is_empty());
//! # }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::replay::Recorded;

/// Path of the MCP server this server stands in for (its protected-resource metadata is
/// served for it).
pub const MCP_PATH: &str = "/mcp";

/// Which protected-resource metadata the server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceMetadata {
    /// At `/.well-known/oauth-protected-resource` only.
    Root,
    /// At `/.well-known/oauth-protected-resource/mcp` only (the path-suffixed form).
    PathSuffixed,
    /// None: discovery falls back to the origin as the authorization server.
    None,
}

/// Which authorization-server metadata the server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMetadata {
    /// RFC 8414 `/.well-known/oauth-authorization-server`.
    OAuth,
    /// Only OpenID Connect's `/.well-known/openid-configuration`.
    OpenIdOnly,
    /// None.
    None,
}

/// What the server does; change it with [`OAuthServer::configure`].
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Protected-resource metadata (default [`ResourceMetadata::Root`]).
    pub resource_metadata: ResourceMetadata,
    /// Authorization-server metadata (default [`ServerMetadata::OAuth`]).
    pub server_metadata: ServerMetadata,
    /// Whether the metadata offers registration (default true).
    pub registration: bool,
    /// The scopes the protected-resource metadata lists (default `mcp:read mcp:write`).
    pub scopes_supported: Vec<String>,
    /// `expires_in` of issued tokens (default 3600 s; `None` = no lifetime).
    pub expires_in: Option<i64>,
    /// Whether a refresh issues a new refresh token (default false: the old one stays).
    pub rotate_refresh_tokens: bool,
    /// Whether `/token` refuses every request (400 `invalid_grant`, with a description
    /// quoting the client secret, the code, the verifier and the refresh token it got).
    pub fail_token_requests: bool,
    /// Whether `/authorize` refuses (redirects back with `error=access_denied`).
    pub deny_authorization: bool,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            resource_metadata: ResourceMetadata::Root,
            server_metadata: ServerMetadata::OAuth,
            registration: true,
            scopes_supported: vec!["mcp:read".to_owned(), "mcp:write".to_owned()],
            expires_in: Some(3600),
            rotate_refresh_tokens: false,
            fail_token_requests: false,
            deny_authorization: false,
        }
    }
}

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The secret, when confidential.
    pub secret: Option<String>,
    /// The registered redirect URIs.
    pub redirect_uris: Vec<String>,
}

/// A code issued by `/authorize`, as it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The client.
    pub client_id: String,
    /// The redirect URI named.
    pub redirect_uri: String,
    /// The PKCE challenge.
    pub code_challenge: String,
    /// The scope asked for.
    pub scope: String,
}

#[derive(Default)]
struct Tokens {
    clients: HashMap<String, Client>,
    codes: HashMap<String, Grant>,
    /// Refresh token → (client id, scope).
    refresh: HashMap<String, (String, String)>,
    /// Every grant ever issued, in order (codes are removed when used; these stay).
    grants: Vec<Grant>,
    /// Every access token issued, in order.
    access: Vec<String>,
    /// Every code and refresh token issued, in order.
    other_secrets: Vec<String>,
}

struct Shared {
    base: String,
    config: Mutex<OAuthConfig>,
    tokens: Mutex<Tokens>,
    requests: Mutex<Vec<Recorded>>,
    counter: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The server. It stops when dropped.
pub struct OAuthServer {
    /// `http://127.0.0.1:<port>`: the issuer, and the MCP server's origin.
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthServer")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl OAuthServer {
    /// Starts a server with the default [`OAuthConfig`] on a random local port.
    pub async fn start() -> OAuthServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OAuth2 test server to a local port");
        let addr = listener
            .local_addr()
            .expect("the OAuth2 test server's address");
        let base = format!("http://{addr}");
        let shared = Arc::new(Shared {
            base: base.clone(),
            config: Mutex::new(OAuthConfig::default()),
            tokens: Mutex::new(Tokens::default()),
            requests: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OAuthServer { base, shared, task }
    }

    /// The URL of the MCP server this server stands in for (`base` + [`MCP_PATH`]).
    pub fn mcp_url(&self) -> String {
        format!("{}{MCP_PATH}", self.base)
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Changes what the server does from now on.
    pub fn configure(&self, change: impl FnOnce(&mut OAuthConfig)) {
        change(&mut lock(&self.shared.config));
    }

    /// Registers a client by hand (for configurations that name their client).
    pub fn add_client(&self, client_id: &str, secret: Option<&str>, redirect_uri: &str) {
        lock(&self.shared.tokens).clients.insert(
            client_id.to_owned(),
            Client {
                secret: secret.map(str::to_owned),
                redirect_uris: vec![redirect_uri.to_owned()],
            },
        );
    }

    /// The registered clients.
    pub fn clients(&self) -> HashMap<String, Client> {
        lock(&self.shared.tokens).clients.clone()
    }

    /// Every code grant `/authorize` issued, in order.
    pub fn grants(&self) -> Vec<Grant> {
        lock(&self.shared.tokens).grants.clone()
    }

    /// Every access token issued, in order.
    pub fn access_tokens(&self) -> Vec<String> {
        lock(&self.shared.tokens).access.clone()
    }

    /// Every secret the server issued or was sent: client secrets, codes, access and
    /// refresh tokens, and the states and PKCE verifiers of the requests it received — what
    /// must never appear in chatd's answers, logs or database in clear.
    pub fn secrets(&self) -> Vec<String> {
        let tokens = lock(&self.shared.tokens);
        let mut secrets: Vec<String> = tokens
            .clients
            .values()
            .filter_map(|c| c.secret.clone())
            .collect();
        secrets.extend(tokens.access.iter().cloned());
        secrets.extend(tokens.other_secrets.iter().cloned());
        drop(tokens);
        for request in self.requests() {
            let mut fields = form_pairs(request.query.as_deref().unwrap_or_default().as_bytes());
            fields.extend(form_pairs(&request.body));
            for key in ["state", "code_verifier", "code_challenge"] {
                if let Some(v) = fields.remove(key) {
                    secrets.push(v);
                }
            }
        }
        secrets.retain(|s| !s.is_empty());
        secrets
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// The requests received so far to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The S256 PKCE challenge of `verifier`.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The key → value pairs of a query string or form body (the last of a repeated key).
pub fn form_pairs(text: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(text)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Sets `key` of a JSON object (a no-op on anything else).
fn set(doc: &mut serde_json::Value, key: &str, value: impl Into<serde_json::Value>) {
    if let Some(object) = doc.as_object_mut() {
        object.insert(key.to_owned(), value.into());
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

fn redirect(location: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

impl Shared {
    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        format!("{n}-{}", uuid::Uuid::new_v4().simple())
    }

    fn server_metadata(&self, registration: bool) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "issuer": self.base,
            "authorization_endpoint": format!("{}/authorize", self.base),
            "token_endpoint": format!("{}/token", self.base),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
        });
        if registration {
            set(
                &mut doc,
                "registration_endpoint",
                format!("{}/register", self.base),
            );
        }
        doc
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: body.to_vec(),
    };
    lock(&shared.requests).push(recorded.clone());
    let config = lock(&shared.config).clone();
    let resource = serde_json::json!({
        "resource": format!("{}{MCP_PATH}", shared.base),
        "authorization_servers": [shared.base],
        "scopes_supported": config.scopes_supported,
    });
    match (method.as_str(), uri.path()) {
        ("GET", "/.well-known/oauth-protected-resource")
            if config.resource_metadata == ResourceMetadata::Root =>
        {
            json(StatusCode::OK, resource)
        }
        ("GET", "/.well-known/oauth-protected-resource/mcp")
            if config.resource_metadata == ResourceMetadata::PathSuffixed =>
        {
            json(StatusCode::OK, resource)
        }
        ("GET", "/.well-known/oauth-authorization-server")
            if config.server_metadata == ServerMetadata::OAuth =>
        {
            json(StatusCode::OK, shared.server_metadata(config.registration))
        }
        ("GET", "/.well-known/openid-configuration")
            if config.server_metadata == ServerMetadata::OpenIdOnly =>
        {
            json(StatusCode::OK, shared.server_metadata(config.registration))
        }
        ("POST", "/register") if config.registration => register(&shared, &body),
        ("GET", "/authorize") => authorize(&shared, &config, uri.query().unwrap_or_default()),
        ("POST", "/token") => token(&shared, &config, &headers, &body),
        _ => not_found(),
    }
}

fn register(shared: &Shared, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_client_metadata"}),
        );
    };
    let redirect_uris: Vec<String> = request
        .get("redirect_uris")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if redirect_uris.is_empty() {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_redirect_uri"}),
        );
    }
    let client_id = format!("client-{}", shared.next());
    let secret = format!("client-secret-{}", shared.next());
    lock(&shared.tokens).clients.insert(
        client_id.clone(),
        Client {
            secret: Some(secret.clone()),
            redirect_uris: redirect_uris.clone(),
        },
    );
    json(
        StatusCode::CREATED,
        serde_json::json!({
            "client_id": client_id,
            "client_secret": secret,
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": "client_secret_basic",
        }),
    )
}

fn authorize(shared: &Shared, config: &OAuthConfig, query: &str) -> Response {
    let q = form_pairs(query.as_bytes());
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    let (client_id, redirect_uri, state) =
        (field("client_id"), field("redirect_uri"), field("state"));
    let mut tokens = lock(&shared.tokens);
    let known = tokens
        .clients
        .get(&client_id)
        .is_some_and(|c| c.redirect_uris.contains(&redirect_uri));
    if !known {
        return (StatusCode::BAD_REQUEST, "unknown client or redirect URI").into_response();
    }
    let joiner = if redirect_uri.contains('?') { '&' } else { '?' };
    let encode = |v: &str| -> String { form_urlencoded::byte_serialize(v.as_bytes()).collect() };
    if config.deny_authorization {
        return redirect(format!(
            "{redirect_uri}{joiner}error=access_denied&state={}",
            encode(&state)
        ));
    }
    if field("response_type") != "code"
        || field("code_challenge_method") != "S256"
        || field("code_challenge").is_empty()
    {
        return redirect(format!(
            "{redirect_uri}{joiner}error=invalid_request&state={}",
            encode(&state)
        ));
    }
    let code = format!("code-{}", shared.next());
    let grant = Grant {
        client_id,
        redirect_uri: redirect_uri.clone(),
        code_challenge: field("code_challenge"),
        scope: field("scope"),
    };
    tokens.codes.insert(code.clone(), grant.clone());
    tokens.other_secrets.push(code.clone());
    tokens.grants.push(grant);
    redirect(format!(
        "{redirect_uri}{joiner}code={}&state={}",
        encode(&code),
        encode(&state)
    ))
}

/// The client a token request authenticates as: HTTP Basic (form-encoded id and secret)
/// or `client_id` / `client_secret` in the body.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(String, Option<String>)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = STANDARD.decode(basic.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        let decode = |s: &str| -> String {
            form_urlencoded::parse(format!("v={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return Some((decode(id), Some(decode(secret))));
    }
    let id = form.get("client_id")?.clone();
    Some((id, form.get("client_secret").cloned()))
}

fn token_error(status: StatusCode, error: &str) -> Response {
    json(status, serde_json::json!({"error": error}))
}

fn token(shared: &Shared, config: &OAuthConfig, headers: &HeaderMap, body: &[u8]) -> Response {
    let form = form_pairs(body);
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let Some((client_id, secret)) = client_credentials(headers, &form) else {
        return token_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let mut tokens = lock(&shared.tokens);
    let client_ok = tokens
        .clients
        .get(&client_id)
        .is_some_and(|c| c.secret.is_none() || c.secret == secret);
    if !client_ok {
        return token_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if config.fail_token_requests {
        // An unhelpful server that repeats what it was sent.
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({
                "error": "invalid_grant",
                "error_description": format!(
                    "refused client_secret={} code={} code_verifier={} refresh_token={}",
                    secret.unwrap_or_default(),
                    field("code"),
                    field("code_verifier"),
                    field("refresh_token"),
                ),
            }),
        );
    }
    let scope = match field("grant_type").as_str() {
        "authorization_code" => {
            let Some(grant) = tokens.codes.remove(&field("code")) else {
                return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let verified = grant.client_id == client_id
                && grant.redirect_uri == field("redirect_uri")
                && s256(&field("code_verifier")) == grant.code_challenge;
            if !verified {
                return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            grant.scope
        }
        "refresh_token" => {
            let old = field("refresh_token");
            match tokens.refresh.get(&old) {
                Some((owner, scope)) if *owner == client_id => {
                    let scope = scope.clone();
                    if config.rotate_refresh_tokens {
                        tokens.refresh.remove(&old);
                    }
                    scope
                }
                _ => return token_error(StatusCode::BAD_REQUEST, "invalid_grant"),
            }
        }
        _ => return token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    };
    let refreshing = field("grant_type") == "refresh_token";
    let access = format!("mcp-access-{}", shared.next());
    tokens.access.push(access.clone());
    let mut answer = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "scope": scope,
    });
    if let Some(expires_in) = config.expires_in {
        set(&mut answer, "expires_in", expires_in);
    }
    if !refreshing || config.rotate_refresh_tokens {
        let refresh = format!("mcp-refresh-{}", shared.next());
        tokens
            .refresh
            .insert(refresh.clone(), (client_id, scope.clone()));
        tokens.other_secrets.push(refresh.clone());
        set(&mut answer, "refresh_token", refresh);
    }
    json(StatusCode::OK, answer)
}
