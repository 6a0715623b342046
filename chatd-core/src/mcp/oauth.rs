//! OAuth2 for MCP servers (docs/mcp-auth.md): finding a server's authorization server,
//! registering chatd as a client, the authorization-code flow with PKCE, and keeping each
//! user's token fresh.
//!
//! - **Discovery** ([`discover`]): the protected-resource metadata of the MCP server
//!   (RFC 9728, `/.well-known/oauth-protected-resource` with the server URL's path appended,
//!   then without), which names the authorization server; then that server's metadata
//!   (RFC 8414 `/.well-known/oauth-authorization-server`, falling back to OpenID Connect's
//!   `/.well-known/openid-configuration`). Without protected-resource metadata the MCP
//!   server's own origin is taken as the authorization server, as early MCP servers expect.
//! - **Registration** ([`register_client`], RFC 7591) when no client id is configured:
//!   [`discover_and_register`] is what creating an `oauth2` server without endpoints runs.
//! - **Authorization** ([`begin_authorization`], [`complete_authorization`]): a random
//!   `state` bound to the server and the user (stored only as a hash, single use,
//!   [`crate::store::MCP_OAUTH2_STATE_TTL`]), PKCE with S256, the code exchanged for a token
//!   that is sealed at rest.
//! - **Refresh** ([`access_token`]): what the MCP client calls before connecting.
//!
//! Every request is bounded by [`OAUTH2_HTTP_TIMEOUT`] and every answer read up to
//! [`MAX_OAUTH2_RESPONSE_BYTES`]. Nothing an upstream server says is copied into an error:
//! errors carry chatd's summary (the status and a registered OAuth2 error code at most), and
//! the upstream's description goes to the debug log only after the request's secrets have
//! been redacted from it ([`chaterror::Redactor`]).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use codersdk::{
    validate_http_url, MCPServerAuthType, MCPServerConfig, SecretString, Timestamp, Uuid,
    MAX_MCP_OAUTH2_FIELD_BYTES, MAX_MCP_SECRET_BYTES,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};
use crate::store::{McpOAuth2State, McpOAuth2Token, NewMcpOAuth2State, Store};
use crate::Keyring;

/// Longest any one request to a metadata, registration or token endpoint may take, from
/// connecting to the last byte of the answer.
pub const OAUTH2_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of any answer read from a metadata, registration or token endpoint; a
/// longer one is refused. Metadata documents and token answers are a few kilobytes.
pub const MAX_OAUTH2_RESPONSE_BYTES: usize = 64 * 1024;

/// A token that expires within this long is refreshed before use (when it can be), so it
/// does not expire while a turn's MCP connection is being set up.
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(10);

/// Random bytes of a PKCE code verifier: 43 characters of base64url, RFC 7636's minimum
/// length, with 256 bits of entropy.
pub const PKCE_VERIFIER_BYTES: usize = 32;

/// Random bytes of an OAuth2 `state` (256 bits, 43 characters of base64url).
pub const STATE_BYTES: usize = 32;

/// Longest access or refresh token accepted from a token endpoint, in bytes. Tokens —
/// JWTs included — are far shorter; the access token is sent in a header.
pub const MAX_OAUTH2_TOKEN_BYTES: usize = 16 * 1024;

/// Longest authorization code a callback may carry, in bytes.
pub const MAX_OAUTH2_CODE_BYTES: usize = 4096;

/// Longest token lifetime taken from `expires_in`; a larger value is read as this.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// Longest OAuth2 error code quoted in a message (RFC 6749 codes are short words).
pub const MAX_OAUTH2_ERROR_CODE_CHARS: usize = 64;

/// Most characters of an upstream error description written to the debug log (after
/// redaction).
pub const MAX_LOGGED_DESCRIPTION_CHARS: usize = 200;

/// Path of RFC 9728 protected-resource metadata.
pub const PROTECTED_RESOURCE_PATH: &str = "/.well-known/oauth-protected-resource";

/// Path of RFC 8414 authorization-server metadata.
pub const AUTHORIZATION_SERVER_PATH: &str = "/.well-known/oauth-authorization-server";

/// Path of OpenID Connect discovery, the fallback for authorization-server metadata.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

/// An HTTP client for OAuth2 requests: no redirects are followed (a metadata or token
/// endpoint that redirects is misconfigured, and following could carry credentials
/// elsewhere) and every request is bounded by [`OAUTH2_HTTP_TIMEOUT`].
pub fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(OAUTH2_HTTP_TIMEOUT)
        .connect_timeout(OAUTH2_HTTP_TIMEOUT)
        .build()
        .map_err(|e| {
            Error::new(ErrorKind::Upstream, "cannot build the OAuth2 HTTP client")
                .with_source(e.without_url())
        })
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

/// An answer, read whole (up to [`MAX_OAUTH2_RESPONSE_BYTES`]).
struct Fetched {
    status: u16,
    form: bool,
    body: Vec<u8>,
}

fn upstream(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Upstream, message.into())
}

/// Sends `request` (bounded by [`OAUTH2_HTTP_TIMEOUT`] whatever the client's settings) and
/// reads its answer. `what` names the endpoint in messages ("the token endpoint").
async fn send(request: reqwest::RequestBuilder, what: &str) -> Result<Fetched> {
    let mut response = request
        .timeout(OAUTH2_HTTP_TIMEOUT)
        .send()
        .await
        .map_err(|e| transport_error(what, e))?;
    let status = response.status().as_u16();
    let form = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let too_large = || {
        upstream(format!(
            "{what} answered with more than {MAX_OAUTH2_RESPONSE_BYTES} bytes"
        ))
    };
    let cap = u64::try_from(MAX_OAUTH2_RESPONSE_BYTES).unwrap_or(u64::MAX);
    if response.content_length().is_some_and(|len| len > cap) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(what, e))?
    {
        if body.len().saturating_add(chunk.len()) > MAX_OAUTH2_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { status, form, body })
}

fn transport_error(what: &str, e: reqwest::Error) -> Error {
    let how = if e.is_timeout() {
        format!("did not answer within {}s", OAUTH2_HTTP_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "could not be reached".to_owned()
    } else if e.is_redirect() {
        "redirected (redirects are not followed)".to_owned()
    } else {
        "failed".to_owned()
    };
    // The URL stays out: a configured endpoint's query could hold anything.
    upstream(format!("{what} {how}")).with_source(e.without_url())
}

/// `url`'s scheme, host and port: how messages name a server (never a path or query, which
/// may carry credentials).
fn origin_of(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

fn parse_http_url(raw: &str, what: &str) -> Result<url::Url> {
    validate_http_url(raw)
        .map_err(|reason| upstream(format!("{what} is not a usable URL: it {reason}")))?;
    url::Url::parse(raw).map_err(|_| upstream(format!("{what} is not a usable URL")))
}

// ---------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------

/// What discovery found for an MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Metadata {
    /// The authorization server's issuer.
    pub issuer: String,
    /// Where users authorize.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens become tokens.
    pub token_endpoint: String,
    /// Where clients register (RFC 7591), when offered.
    pub registration_endpoint: Option<String>,
    /// The scopes the MCP server's protected-resource metadata lists (none without it).
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
struct ProtectedResourceMetadata {
    #[serde(default)]
    authorization_servers: Vec<serde_json::Value>,
    #[serde(default)]
    scopes_supported: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct AuthorizationServerMetadata {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    registration_endpoint: Option<String>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<serde_json::Value>>,
}

/// `origin` + `well_known` + `path` (RFC 8414 §3.1 / RFC 9728 §3.1: the well-known part
/// goes between the host and the path).
fn well_known(base: &url::Url, well_known: &str, path: &str) -> String {
    let path = path.trim_end_matches('/');
    format!("{}{well_known}{path}", origin_of(base))
}

/// GETs a JSON metadata document: `Ok(None)` when there is none at `url` (any answer but a
/// 200 with a JSON object), with what happened added to `tried`.
async fn metadata<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    tried: &mut Vec<String>,
) -> Result<Option<T>> {
    let path = url::Url::parse(url)
        .map(|u| u.path().to_owned())
        .unwrap_or_default();
    let fetched = match send(
        http.get(url)
            .header(reqwest::header::ACCEPT, "application/json"),
        "the metadata endpoint",
    )
    .await
    {
        Ok(f) => f,
        Err(e) => {
            tried.push(format!("{path}: {e}"));
            return Ok(None);
        }
    };
    if fetched.status != 200 {
        tried.push(format!("{path}: HTTP {}", fetched.status));
        return Ok(None);
    }
    match serde_json::from_slice::<T>(&fetched.body) {
        Ok(doc) => Ok(Some(doc)),
        Err(_) => {
            tried.push(format!("{path}: not a metadata document"));
            Ok(None)
        }
    }
}

/// Finds the authorization server of the MCP server at `server_url` and its endpoints
/// (see the module documentation for the order). [`ErrorKind::Upstream`] saying what was
/// tried when nothing usable was found.
pub async fn discover(http: &reqwest::Client, server_url: &str) -> Result<OAuth2Metadata> {
    let server = parse_http_url(server_url, "the MCP server URL")?;
    let mut tried = Vec::new();
    let mut candidates = Vec::new();
    if !server.path().trim_end_matches('/').is_empty() {
        candidates.push(well_known(&server, PROTECTED_RESOURCE_PATH, server.path()));
    }
    candidates.push(well_known(&server, PROTECTED_RESOURCE_PATH, ""));
    let mut resource = None;
    for url in &candidates {
        if let Some(doc) = metadata::<ProtectedResourceMetadata>(http, url, &mut tried).await? {
            resource = Some(doc);
            break;
        }
    }
    let scopes: Vec<String> = resource
        .as_ref()
        .map(|r| {
            r.scopes_supported
                .iter()
                .filter_map(|s| s.as_str())
                .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // The protected resource names its authorization server; without metadata the MCP
    // server's origin is its own authorization server (MCP 2025-03-26).
    let named = resource
        .as_ref()
        .and_then(|r| r.authorization_servers.iter().find_map(|s| s.as_str()))
        .map(str::to_owned);
    let issuer = match &named {
        Some(issuer) => parse_http_url(issuer, "the authorization server the MCP server names")?,
        None => parse_http_url(&origin_of(&server), "the MCP server URL")?,
    };
    let issuer_path = issuer.path().trim_end_matches('/').to_owned();
    let mut candidates = vec![
        well_known(&issuer, AUTHORIZATION_SERVER_PATH, &issuer_path),
        well_known(&issuer, OPENID_CONFIGURATION_PATH, &issuer_path),
    ];
    if !issuer_path.is_empty() {
        // OpenID Connect appends its well-known path to the issuer instead.
        candidates.push(format!(
            "{}{issuer_path}{OPENID_CONFIGURATION_PATH}",
            origin_of(&issuer)
        ));
    }
    for url in &candidates {
        let Some(doc) = metadata::<AuthorizationServerMetadata>(http, url, &mut tried).await?
        else {
            continue;
        };
        return endpoints(doc, &issuer, named.is_some(), scopes);
    }
    Err(upstream(format!(
        "no OAuth2 metadata was found for {} ({})",
        origin_of(&issuer),
        tried.join("; ")
    )))
}

/// The endpoints of an authorization-server metadata document, checked.
fn endpoints(
    doc: AuthorizationServerMetadata,
    issuer: &url::Url,
    issuer_named: bool,
    scopes: Vec<String>,
) -> Result<OAuth2Metadata> {
    let issuer_text = issuer.as_str().trim_end_matches('/').to_owned();
    // RFC 8414 §3.3: metadata for another issuer must not be used. When the issuer was only
    // guessed from the MCP server's origin there is nothing to compare with.
    if issuer_named {
        if let Some(claimed) = &doc.issuer {
            // Compared as URLs (scheme and host case, default ports), not as text.
            let same = url::Url::parse(claimed)
                .is_ok_and(|c| c.as_str().trim_end_matches('/') == issuer_text);
            if !same {
                return Err(upstream(format!(
                    "the authorization server metadata of {} names another issuer",
                    origin_of(issuer)
                )));
            }
        }
    }
    if let Some(methods) = &doc.code_challenge_methods_supported {
        if !methods.iter().any(|m| m.as_str() == Some("S256")) {
            return Err(upstream(format!(
                "the authorization server {} does not support PKCE with S256",
                origin_of(issuer)
            )));
        }
    }
    let endpoint = |value: Option<String>, what: &str| -> Result<String> {
        let value = value.ok_or_else(|| {
            upstream(format!(
                "the authorization server metadata of {} has no {what}",
                origin_of(issuer)
            ))
        })?;
        parse_http_url(&value, what)?;
        Ok(value)
    };
    let authorization_endpoint = endpoint(doc.authorization_endpoint, "authorization endpoint")?;
    let token_endpoint = endpoint(doc.token_endpoint, "token endpoint")?;
    let registration_endpoint = doc
        .registration_endpoint
        .map(|r| endpoint(Some(r), "registration endpoint"))
        .transpose()?;
    Ok(OAuth2Metadata {
        issuer: issuer_text,
        authorization_endpoint,
        token_endpoint,
        registration_endpoint,
        scopes,
    })
}

// ---------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------

/// A client registered with an authorization server. `Debug` shows no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    /// The client id.
    pub client_id: String,
    /// The client secret, when the server issued one (a confidential client).
    pub client_secret: Option<SecretString>,
}

#[derive(Deserialize)]
struct RegistrationResponse {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
}

/// Registers chatd as a client (RFC 7591) at `registration_endpoint`: the authorization
/// code and refresh token grants, `redirect_uri` as the only redirect URI, a client secret
/// sent with HTTP Basic (the method every server must support), `scopes` when not empty.
pub async fn register_client(
    http: &reqwest::Client,
    registration_endpoint: &str,
    redirect_uri: &str,
    client_name: &str,
    scopes: &str,
) -> Result<RegisteredClient> {
    let mut body = serde_json::json!({
        "client_name": client_name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    if !scopes.is_empty() {
        if let Some(object) = body.as_object_mut() {
            object.insert("scope".to_owned(), serde_json::Value::from(scopes));
        }
    }
    let fetched = send(
        http.post(registration_endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body),
        "the registration endpoint",
    )
    .await?;
    if !(200..300).contains(&fetched.status) {
        let code = error_code(&fetched);
        return Err(upstream(format!(
            "the registration endpoint refused to register a client (HTTP {}{})",
            fetched.status,
            code.map(|c| format!(", error {c:?}")).unwrap_or_default()
        )));
    }
    let answer: RegistrationResponse = serde_json::from_slice(&fetched.body)
        .map_err(|_| upstream("the registration endpoint's answer is not a registration"))?;
    let client_id = answer
        .client_id
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_MCP_OAUTH2_FIELD_BYTES
                && !id.chars().any(char::is_control)
        })
        .ok_or_else(|| upstream("the registration endpoint issued no usable client id"))?;
    let client_secret = match answer.client_secret.filter(|s| !s.is_empty()) {
        None => None,
        Some(secret) => {
            if secret.len() > MAX_MCP_SECRET_BYTES || secret.chars().any(char::is_control) {
                return Err(upstream(
                    "the registration endpoint issued a client secret chatd cannot store",
                ));
            }
            Some(SecretString::from(secret))
        }
    };
    Ok(RegisteredClient {
        client_id,
        client_secret,
    })
}

/// What creating an `oauth2` MCP server without endpoints fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredClient {
    /// The registered client id.
    pub client_id: String,
    /// The client secret, when one was issued.
    pub client_secret: Option<SecretString>,
    /// The authorization endpoint.
    pub authorization_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The scopes to ask for: the ones given, else the ones the MCP server lists.
    pub scopes: String,
}

/// [`discover`] then [`register_client`] for the MCP server at `server_url`, whose
/// callback is `redirect_uri`. `scopes` (space-separated, may be empty) are the ones the
/// administrator chose; when empty, the MCP server's `scopes_supported` are asked for.
pub async fn discover_and_register(
    http: &reqwest::Client,
    server_url: &str,
    redirect_uri: &str,
    client_name: &str,
    scopes: &str,
) -> Result<DiscoveredClient> {
    let found = discover(http, server_url).await?;
    let registration = found.registration_endpoint.as_deref().ok_or_else(|| {
        upstream("the authorization server does not offer dynamic client registration")
    })?;
    let scopes = if scopes.is_empty() {
        found.scopes.join(" ")
    } else {
        scopes.to_owned()
    };
    let client = register_client(http, registration, redirect_uri, client_name, &scopes).await?;
    Ok(DiscoveredClient {
        client_id: client.client_id,
        client_secret: client.client_secret,
        authorization_endpoint: found.authorization_endpoint,
        token_endpoint: found.token_endpoint,
        scopes,
    })
}

// ---------------------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------------------

fn random_text(bytes: usize) -> Result<SecretString> {
    let mut buf = vec![0u8; bytes];
    crate::secrets::fill_random(&mut buf)?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(&buf)))
}

/// A PKCE pair (RFC 7636, S256). `Debug` shows no verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkce {
    /// The code verifier: kept (sealed) until the code is exchanged.
    pub verifier: SecretString,
    /// The code challenge sent with the authorization request.
    pub challenge: String,
}

impl Pkce {
    /// A fresh pair from [`PKCE_VERIFIER_BYTES`] random bytes.
    pub fn generate() -> Result<Pkce> {
        let verifier = random_text(PKCE_VERIFIER_BYTES)?;
        let challenge = pkce_challenge(verifier.expose());
        Ok(Pkce {
            verifier,
            challenge,
        })
    }
}

/// The S256 challenge of `verifier`: base64url (no padding) of its SHA-256.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn require_oauth2(server: &MCPServerConfig) -> Result<()> {
    if server.auth_type != MCPServerAuthType::Oauth2 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "The MCP server {:?} does not use OAuth2; there is nothing to connect.",
                server.display_name
            ),
        ));
    }
    if server.oauth2_client_id.is_empty()
        || server.oauth2_auth_url.is_empty()
        || server.oauth2_token_url.is_empty()
    {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "The MCP server's OAuth2 client is not configured.",
        ));
    }
    Ok(())
}

/// The URL that sends a user to `server`'s authorization endpoint: the authorization-code
/// flow with `state` and the S256 `challenge`, `redirect_uri` as the callback, the
/// configured scopes.
pub fn authorization_url(
    server: &MCPServerConfig,
    redirect_uri: &str,
    state: &SecretString,
    challenge: &str,
) -> Result<String> {
    require_oauth2(server)?;
    let mut url = url::Url::parse(&server.oauth2_auth_url).map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            "The MCP server's OAuth2 authorization URL is not a URL.",
        )
    })?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &server.oauth2_client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state.expose())
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        if !server.oauth2_scopes.is_empty() {
            query.append_pair("scope", &server.oauth2_scopes);
        }
    }
    Ok(url.into())
}

/// Starts user `user_id`'s authorization at `server` (its stored, unredacted
/// configuration): a fresh `state` and PKCE pair, recorded with
/// [`Store::create_mcp_oauth2_state`] (state hashed, verifier sealed), and the URL to send
/// the user to. `return_to` is where the callback sends the browser afterwards (`""`:
/// nowhere; the caller checks it is a same-origin path).
pub async fn begin_authorization(
    store: &Store,
    keyring: &Keyring,
    server: &MCPServerConfig,
    user_id: Uuid,
    redirect_uri: &str,
    return_to: &str,
) -> Result<String> {
    require_oauth2(server)?;
    let state = random_text(STATE_BYTES)?;
    let pkce = Pkce::generate()?;
    let url = authorization_url(server, redirect_uri, &state, &pkce.challenge)?;
    store
        .create_mcp_oauth2_state(
            NewMcpOAuth2State {
                server_id: server.id,
                user_id,
                state: &state,
                pkce_verifier: &pkce.verifier,
                redirect_uri,
                return_to,
            },
            keyring,
        )
        .await?;
    Ok(url)
}

/// Whether `code` can be an authorization code: 1 to [`MAX_OAUTH2_CODE_BYTES`] bytes
/// without control characters.
fn usable_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= MAX_OAUTH2_CODE_BYTES && !code.chars().any(char::is_control)
}

/// Finishes an authorization: takes the state (single use; unknown, used or expired →
/// [`ErrorKind::InvalidArgument`]), checks that it was issued for this `server` **and this
/// user** — a callback carrying someone else's state is refused, so nobody can bind their
/// sign-in to another user's account — exchanges `code` with the verifier, and stores the
/// token sealed. Returns the authorization that was in flight (for its `return_to`).
/// [`ErrorKind::Upstream`] when the token endpoint fails or refuses.
pub async fn complete_authorization(
    store: &Store,
    keyring: &Keyring,
    http: &reqwest::Client,
    server: &MCPServerConfig,
    user_id: Uuid,
    code: &str,
    state: &str,
) -> Result<McpOAuth2State> {
    let pending = store.consume_mcp_oauth2_state(state, keyring).await?;
    if pending.server_id != server.id || pending.user_id != user_id {
        tracing::warn!(
            server_id = %server.id,
            user_id = %user_id,
            "OAuth2 callback with a state issued for another server or user; refused"
        );
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            crate::store::MCP_OAUTH2_STATE_INVALID_MESSAGE,
        ));
    }
    require_oauth2(server)?;
    if !usable_code(code) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "The OAuth2 callback carries no usable authorization code.",
        ));
    }
    let secrets = store.mcp_server_secrets(server.id, keyring).await?;
    let secret = secrets.oauth2_client_secret.as_ref();
    let redactor = chaterror::Redactor::new()
        .with_secret(code)
        .with_secret(pending.pkce_verifier.expose())
        .with_secrets(secret.map(SecretString::expose));
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", pending.redirect_uri.as_str()),
        ("code_verifier", pending.pkce_verifier.expose()),
    ];
    let answer = token_request(http, server, secret, &params, &redactor).await?;
    let token = answer.into_token(&server.oauth2_scopes)?;
    store
        .save_mcp_oauth2_token(server.id, user_id, &token, keyring)
        .await?;
    Ok(pending)
}

// ---------------------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------------------

/// A token endpoint's successful answer (RFC 6749 §5.1), checked.
struct TokenAnswer {
    access_token: SecretString,
    refresh_token: Option<SecretString>,
    token_type: String,
    expires_in: Option<i64>,
    scope: Option<String>,
}

impl TokenAnswer {
    /// The token to store; scopes default to `requested` when the answer names none (RFC
    /// 6749: the granted scopes are then the requested ones).
    fn into_token(self, requested: &str) -> Result<McpOAuth2Token> {
        let expires_at = match self.expires_in {
            None => None,
            Some(seconds) => {
                let max = i64::try_from(MAX_TOKEN_LIFETIME.as_secs()).unwrap_or(i64::MAX);
                let lifetime = chrono::Duration::seconds(seconds.clamp(0, max));
                Some(Timestamp(chrono::Utc::now() + lifetime))
            }
        };
        Ok(McpOAuth2Token {
            access_token: self.access_token,
            refresh_token: self.refresh_token,
            token_type: self.token_type,
            expires_at,
            scopes: self.scope.unwrap_or_else(|| requested.to_owned()),
        })
    }
}

#[derive(Deserialize)]
struct RawTokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
}

/// The body of a token endpoint answer as fields: JSON, or form-encoded when the server
/// says so (some answer that way unless asked otherwise).
fn token_fields(fetched: &Fetched) -> Option<RawTokenAnswer> {
    if fetched.form {
        let mut raw = RawTokenAnswer {
            access_token: None,
            refresh_token: None,
            token_type: None,
            expires_in: None,
            scope: None,
        };
        for (key, value) in url::form_urlencoded::parse(&fetched.body) {
            let value = value.into_owned();
            match key.as_ref() {
                "access_token" => raw.access_token = Some(value),
                "refresh_token" => raw.refresh_token = Some(value),
                "token_type" => raw.token_type = Some(value),
                "expires_in" => raw.expires_in = Some(serde_json::Value::String(value)),
                "scope" => raw.scope = Some(value),
                _ => {}
            }
        }
        return Some(raw);
    }
    serde_json::from_slice(&fetched.body).ok()
}

fn usable_token(value: String) -> Option<SecretString> {
    let ok = !value.is_empty()
        && value.len() <= MAX_OAUTH2_TOKEN_BYTES
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    ok.then(|| SecretString::from(value))
}

fn parse_token_answer(fetched: &Fetched) -> Result<TokenAnswer> {
    let raw = token_fields(fetched)
        .ok_or_else(|| upstream("the token endpoint's answer is not a token"))?;
    let access_token = raw
        .access_token
        .and_then(usable_token)
        .ok_or_else(|| upstream("the token endpoint issued no usable access token"))?;
    let refresh_token = match raw.refresh_token.filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(
            usable_token(r)
                .ok_or_else(|| upstream("the token endpoint issued an unusable refresh token"))?,
        ),
    };
    let token_type = raw
        .token_type
        .filter(|t| t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .unwrap_or_default();
    let expires_in = match raw.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    // Scopes are informational: an unusable list is dropped, not fatal.
    let scope = raw
        .scope
        .filter(|s| s.len() <= MAX_MCP_OAUTH2_FIELD_BYTES && !s.chars().any(char::is_control));
    Ok(TokenAnswer {
        access_token,
        refresh_token,
        token_type,
        expires_in,
        scope,
    })
}

/// The OAuth2 `error` code of an error answer, when it is one (RFC 6749 §5.2 limits the
/// characters; anything else is not quoted).
fn error_code(fetched: &Fetched) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorAnswer {
        #[serde(default)]
        error: Option<String>,
    }
    let code = if fetched.form {
        url::form_urlencoded::parse(&fetched.body)
            .find(|(k, _)| k == "error")
            .map(|(_, v)| v.into_owned())
    } else {
        serde_json::from_slice::<ErrorAnswer>(&fetched.body)
            .ok()
            .and_then(|e| e.error)
    }?;
    is_error_code(&code).then_some(code)
}

/// Whether `code` looks like an OAuth2 error code: RFC 6749's characters (printable ASCII
/// without `"` and `\`), at most [`MAX_OAUTH2_ERROR_CODE_CHARS`].
pub fn is_error_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_OAUTH2_ERROR_CODE_CHARS
        && code
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

/// The `error_description` of an error answer, redacted and cut, for the debug log.
fn logged_description(fetched: &Fetched, redactor: &chaterror::Redactor) -> String {
    let text = String::from_utf8_lossy(&fetched.body);
    let redacted = redactor.redact(&text);
    redacted
        .chars()
        .take(MAX_LOGGED_DESCRIPTION_CHARS)
        .collect()
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    /// HTTP Basic (RFC 6749 §2.3.1; every server supports it).
    Basic,
    /// Id and secret in the form body, for servers that accept only that.
    Body,
}

fn form_body(params: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        form.append_pair(k, v);
    }
    form.finish()
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn post_token(
    http: &reqwest::Client,
    server: &MCPServerConfig,
    secret: Option<&SecretString>,
    params: &[(&str, &str)],
    auth: ClientAuth,
) -> Result<Fetched> {
    let mut all: Vec<(&str, &str)> = params.to_vec();
    let mut request = http
        .post(&server.oauth2_token_url)
        .header(reqwest::header::ACCEPT, "application/json")
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
    match (secret, auth) {
        (Some(secret), ClientAuth::Basic) => {
            request = request.basic_auth(
                form_encode(&server.oauth2_client_id),
                Some(form_encode(secret.expose())),
            );
        }
        (Some(secret), ClientAuth::Body) => {
            all.push(("client_id", &server.oauth2_client_id));
            all.push(("client_secret", secret.expose()));
        }
        // A public client identifies itself in the body.
        (None, _) => all.push(("client_id", &server.oauth2_client_id)),
    }
    send(request.body(form_body(&all)), "the token endpoint").await
}

/// A token request (code exchange or refresh) with `params`, authenticated as the server's
/// client: HTTP Basic first, then — when the server refuses the client that way — the
/// credentials in the body (what OAuth2 libraries do when the method is not known; a
/// refused client authentication does not spend the code). Failures are
/// [`ErrorKind::Upstream`] with the status and error code; the redacted description goes
/// to the debug log.
async fn token_request(
    http: &reqwest::Client,
    server: &MCPServerConfig,
    secret: Option<&SecretString>,
    params: &[(&str, &str)],
    redactor: &chaterror::Redactor,
) -> Result<TokenAnswer> {
    let mut fetched = post_token(http, server, secret, params, ClientAuth::Basic).await?;
    if secret.is_some() && fetched.status != 200 {
        let code = error_code(&fetched);
        if fetched.status == 401 || code.as_deref() == Some("invalid_client") {
            fetched = post_token(http, server, secret, params, ClientAuth::Body).await?;
        }
    }
    if fetched.status == 200 {
        return parse_token_answer(&fetched);
    }
    let code = error_code(&fetched);
    tracing::debug!(
        server_id = %server.id,
        status = fetched.status,
        error = code.as_deref().unwrap_or(""),
        body = %logged_description(&fetched, redactor),
        "the MCP server's token endpoint refused a request"
    );
    Err(upstream(format!(
        "The authorization server's token endpoint refused the request (HTTP {}{}).",
        fetched.status,
        code.map(|c| format!(", error {c:?}")).unwrap_or_default()
    )))
}

// ---------------------------------------------------------------------------------------
// Refresh
// ---------------------------------------------------------------------------------------

/// Whether `token` must be refreshed before use at `now`: it expires within
/// [`TOKEN_REFRESH_MARGIN`] (or has expired). A token without an expiry never is.
pub fn needs_refresh(token: &McpOAuth2Token, now: chrono::DateTime<chrono::Utc>) -> bool {
    let margin = chrono::Duration::from_std(TOKEN_REFRESH_MARGIN).unwrap_or_default();
    token
        .expires_at
        .is_some_and(|expires| expires.0 <= now + margin)
}

/// Refreshes `token` at `server`'s token endpoint: the new token, keeping the old refresh
/// token when the server issues none and the old scopes when it names none.
pub async fn refresh(
    http: &reqwest::Client,
    server: &MCPServerConfig,
    client_secret: Option<&SecretString>,
    token: &McpOAuth2Token,
) -> Result<McpOAuth2Token> {
    require_oauth2(server)?;
    let refresh_token = token
        .refresh_token
        .as_ref()
        .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "the token cannot be refreshed"))?;
    let redactor = chaterror::Redactor::new()
        .with_secret(refresh_token.expose())
        .with_secret(token.access_token.expose())
        .with_secrets(client_secret.map(SecretString::expose));
    let params = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
    ];
    let answer = token_request(http, server, client_secret, &params, &redactor).await?;
    let mut fresh = answer.into_token(&token.scopes)?;
    if fresh.refresh_token.is_none() {
        fresh.refresh_token = token.refresh_token.clone();
    }
    Ok(fresh)
}

/// The access token to send to `server` for user `user_id`, for the MCP client to call
/// before connecting (engine.md §8.5). `None` when the user holds no token.
///
/// A token that expires within [`TOKEN_REFRESH_MARGIN`] and has a refresh token is
/// refreshed first (client id and secret from the server's configuration) and the new one
/// saved, keeping the old refresh token when none is returned. When the refresh fails, a
/// warning (without secrets) is logged and the token at hand is returned: the server may
/// still accept it, and if not the connection fails as it would have — unless another turn
/// or process refreshed it meanwhile (a rotating refresh token is then already spent),
/// whose token is used instead.
pub async fn access_token(
    store: &Store,
    keyring: &Keyring,
    http: &reqwest::Client,
    server: &MCPServerConfig,
    user_id: Uuid,
) -> Result<Option<SecretString>> {
    let Some(token) = store.mcp_oauth2_token(server.id, user_id, keyring).await? else {
        return Ok(None);
    };
    if token.refresh_token.is_none() || !needs_refresh(&token, chrono::Utc::now()) {
        return Ok(Some(token.access_token));
    }
    let refreshed = match store.mcp_server_secrets(server.id, keyring).await {
        Ok(secrets) => refresh(http, server, secrets.oauth2_client_secret.as_ref(), &token).await,
        Err(e) => Err(e),
    };
    match refreshed {
        Ok(fresh) => {
            if let Err(e) = store
                .save_mcp_oauth2_token(server.id, user_id, &fresh, keyring)
                .await
            {
                tracing::warn!(
                    server_id = %server.id,
                    user_id = %user_id,
                    error = %e,
                    "a refreshed MCP OAuth2 token could not be saved; it is used for now"
                );
            }
            Ok(Some(fresh.access_token))
        }
        Err(e) => {
            if let Ok(Some(current)) = store.mcp_oauth2_token(server.id, user_id, keyring).await {
                if current.access_token != token.access_token {
                    return Ok(Some(current.access_token));
                }
            }
            tracing::warn!(
                server_id = %server.id,
                user_id = %user_id,
                error = %e,
                "refreshing an MCP OAuth2 token failed; the stored token is used"
            );
            Ok(Some(token.access_token))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pkce_follows_rfc_7636() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::generate().unwrap();
        assert_eq!(
            p.verifier.len(),
            43,
            "the shortest verifier RFC 7636 allows"
        );
        assert_eq!(p.challenge, pkce_challenge(p.verifier.expose()));
        assert_ne!(Pkce::generate().unwrap().verifier, p.verifier);
        assert!(!format!("{p:?}").contains(p.verifier.expose()));
    }

    #[test]
    fn well_known_urls_go_between_host_and_path() {
        let u = url::Url::parse("https://user:pw@mcp.example.com:8443/v1/mcp/?x=1").unwrap();
        assert_eq!(
            well_known(&u, PROTECTED_RESOURCE_PATH, u.path()),
            "https://mcp.example.com:8443/.well-known/oauth-protected-resource/v1/mcp"
        );
        assert_eq!(
            well_known(&u, AUTHORIZATION_SERVER_PATH, ""),
            "https://mcp.example.com:8443/.well-known/oauth-authorization-server"
        );
    }

    #[test]
    fn issuers_are_compared_as_urls() {
        let doc = |issuer: &str| AuthorizationServerMetadata {
            issuer: Some(issuer.to_owned()),
            authorization_endpoint: Some("https://auth.example.com/authorize".to_owned()),
            token_endpoint: Some("https://auth.example.com/token".to_owned()),
            registration_endpoint: None,
            code_challenge_methods_supported: None,
        };
        let named = url::Url::parse("https://auth.example.com/").unwrap();
        for same in ["https://AUTH.example.com:443", "https://auth.example.com/"] {
            assert!(endpoints(doc(same), &named, true, vec![]).is_ok(), "{same}");
        }
        for other in [
            "https://auth.example.org",
            "not a url",
            "http://auth.example.com",
        ] {
            assert!(
                endpoints(doc(other), &named, true, vec![]).is_err(),
                "{other}"
            );
        }
        // An issuer only guessed from the MCP server's origin is not compared.
        assert!(endpoints(doc("https://elsewhere.example"), &named, false, vec![]).is_ok());
        // Endpoints must be http(s) URLs.
        let mut bad = doc("https://auth.example.com");
        bad.token_endpoint = Some("javascript:alert(1)".to_owned());
        assert!(endpoints(bad, &named, true, vec![]).is_err());
    }

    #[test]
    fn codes_are_bounded() {
        assert!(usable_code(&"c".repeat(MAX_OAUTH2_CODE_BYTES)));
        assert!(!usable_code(&"c".repeat(MAX_OAUTH2_CODE_BYTES + 1)));
        assert!(!usable_code(""));
        assert!(!usable_code("a\nb"));
    }

    #[test]
    fn logged_bodies_are_redacted_and_cut() {
        let body = format!(
            r#"{{"error":"invalid_grant","error_description":"bad secret s3cr3t-value {}"}}"#,
            "x".repeat(500)
        );
        let redactor = chaterror::Redactor::new().with_secret("s3cr3t-value");
        let logged = logged_description(&fetched(&body, false), &redactor);
        assert!(!logged.contains("s3cr3t-value"), "{logged}");
        assert_eq!(logged.chars().count(), MAX_LOGGED_DESCRIPTION_CHARS);
        let short = logged_description(&fetched("short", false), &redactor);
        assert_eq!(short, "short");
    }

    #[test]
    fn error_codes_are_quoted_only_when_they_are_codes() {
        assert!(is_error_code("invalid_grant"));
        assert!(!is_error_code(""));
        assert!(!is_error_code("a\"b"));
        assert!(!is_error_code("line\nbreak"));
        assert!(is_error_code(&"e".repeat(MAX_OAUTH2_ERROR_CODE_CHARS)));
        assert!(!is_error_code(&"e".repeat(MAX_OAUTH2_ERROR_CODE_CHARS + 1)));
    }

    fn fetched(body: &str, form: bool) -> Fetched {
        Fetched {
            status: 200,
            form,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn token_answers_in_json_and_form_encoding() {
        let a = parse_token_answer(&fetched(
            r#"{"access_token":"at","token_type":"Bearer","expires_in":"60","refresh_token":""}"#,
            false,
        ))
        .unwrap();
        assert_eq!(a.access_token.expose(), "at");
        assert_eq!(a.expires_in, Some(60));
        assert!(a.refresh_token.is_none(), "an empty refresh token is none");
        let a = parse_token_answer(&fetched(
            "access_token=at2&token_type=bearer&scope=repo+user&expires_in=5",
            true,
        ))
        .unwrap();
        assert_eq!(a.access_token.expose(), "at2");
        assert_eq!(a.scope.as_deref(), Some("repo user"));
        // Tokens at the size limit pass, one byte over fails; control characters fail.
        let at = "t".repeat(MAX_OAUTH2_TOKEN_BYTES);
        let body = format!(r#"{{"access_token":"{at}"}}"#);
        assert!(parse_token_answer(&fetched(&body, false)).is_ok());
        let body = format!(r#"{{"access_token":"{at}t"}}"#);
        assert!(parse_token_answer(&fetched(&body, false)).is_err());
        assert!(parse_token_answer(&fetched(r#"{"access_token":"a\nb"}"#, false)).is_err());
        assert!(parse_token_answer(&fetched(r#"{"token_type":"Bearer"}"#, false)).is_err());
    }

    #[test]
    fn lifetimes_are_clamped_and_refresh_has_a_margin() {
        let answer = |expires_in| TokenAnswer {
            access_token: "a".into(),
            refresh_token: None,
            token_type: String::new(),
            expires_in,
            scope: None,
        };
        let now = chrono::Utc::now();
        let t = answer(Some(-5)).into_token("s").unwrap();
        assert!(t.expires_at.unwrap().0 <= chrono::Utc::now());
        assert_eq!(t.scopes, "s", "scopes default to the requested ones");
        let t = answer(Some(i64::MAX)).into_token("").unwrap();
        let max = chrono::Duration::from_std(MAX_TOKEN_LIFETIME).unwrap();
        assert!(t.expires_at.unwrap().0 <= chrono::Utc::now() + max);
        assert!(answer(None).into_token("").unwrap().expires_at.is_none());

        let margin = chrono::Duration::from_std(TOKEN_REFRESH_MARGIN).unwrap();
        let mut t = answer(None).into_token("").unwrap();
        assert!(!needs_refresh(&t, now), "no expiry: never refreshed");
        t.expires_at = Some(Timestamp(now + margin));
        assert!(needs_refresh(&t, now), "expiring exactly at the margin");
        t.expires_at = Some(Timestamp(now + margin + chrono::Duration::seconds(1)));
        assert!(!needs_refresh(&t, now));
    }
}
