//! MCP server configurations (codersdk.md §14): stored configuration only — connecting to
//! the servers is a later feature.
//!
//! The administrator's secrets (OAuth2 client secret, API key value, custom header values)
//! are write-only: they are validated, sealed with the [`Keyring`] under associated data
//! naming their row and column ([`mcp_secret_aad`]), and API views carry only `has_*`
//! flags. Fields that belong to another authentication type than the server's are cleared
//! on every write, so no secret is kept that nothing uses. Updates are validated against the
//! row as locked, like provider updates, because the rules ("`api_key` needs a header and a
//! value") depend on what is already stored.

use std::collections::{BTreeMap, BTreeSet};

use codersdk::{
    CreateMCPServerConfigRequest, MCPServerAuthType, MCPServerAvailability, MCPServerConfig,
    MCPServerTransport, Response, SecretString, UpdateMCPServerConfigRequest, Uuid,
};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::finish_tx as finish;
use super::{get_bool, get_time, get_uuid, now_micros, uuid_text, Dialect, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};
use crate::Keyring;

/// Longest slug, in bytes.
pub const MAX_MCP_SLUG_LEN: usize = 32;

/// Longest description, in Unicode scalar values after trimming.
pub const MAX_MCP_DESCRIPTION_CHARS: usize = 4096;

/// Longest OAuth2 client secret or API key value, in bytes after trimming (the provider
/// key limit, `codersdk::MAX_PROVIDER_API_KEY_BYTES`).
pub const MAX_MCP_SECRET_BYTES: usize = codersdk::MAX_PROVIDER_API_KEY_BYTES;

/// Longest OAuth2 client id or scope list, in bytes.
pub const MAX_MCP_OAUTH2_FIELD_BYTES: usize = 1024;

/// Most admin-set custom headers on one server.
pub const MAX_MCP_CUSTOM_HEADERS: usize = 50;

/// Most header names users supply values for on one server.
pub const MAX_MCP_USER_HEADER_KEYS: usize = 50;

/// Longest header name, in bytes.
pub const MAX_MCP_HEADER_NAME_BYTES: usize = 256;

/// Longest custom header value, in bytes (a common HTTP server limit per header line).
pub const MAX_MCP_HEADER_VALUE_BYTES: usize = 8 * 1024;

/// Most bytes of all admin-set custom header names and values together. They are sealed
/// as one JSON object, which must stay under the keyring's `MAX_PLAINTEXT_LEN` however
/// the values are escaped.
pub const MAX_MCP_CUSTOM_HEADERS_BYTES: usize = 16 * 1024;

/// Longest description of a user-supplied header, in Unicode scalar values.
pub const MAX_MCP_HEADER_DESCRIPTION_CHARS: usize = 1024;

/// Most entries of `tool_allow_list` or of `tool_deny_list` (the dynamic-tool limit).
pub const MAX_MCP_TOOL_FILTER_ENTRIES: usize = codersdk::MAX_DYNAMIC_TOOLS;

/// Longest tool name in a tool filter, in bytes (the MCP specification's name length).
pub const MAX_MCP_TOOL_NAME_BYTES: usize = 128;

/// Message of every validation failure of an MCP server configuration.
pub const INVALID_MCP_SERVER_MESSAGE: &str = "Invalid MCP server configuration.";

/// Message when `oauth2` is chosen without client id, authorization URL and token URL.
/// Coder then tries discovery and dynamic client registration; this server does not
/// reach out to MCP servers, so the endpoints must be configured by hand.
pub const MANUAL_OAUTH2_REQUIRED_MESSAGE: &str = "Manual OAuth2 configuration is required.";

/// Which configurations [`Store::list_mcp_server_configs`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum McpServerFilter {
    /// Every configuration (administrators).
    All,
    /// Enabled ones only (what other users see, codersdk.md §16.5).
    Enabled,
}

/// A sealed column of `mcp_server_configs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum McpSecretColumn {
    /// `oauth2_client_secret_sealed`.
    OAuth2ClientSecret,
    /// `api_key_sealed`.
    ApiKey,
    /// `custom_headers_sealed`: the admin-set headers as one JSON object.
    CustomHeaders,
}

impl McpSecretColumn {
    /// Every sealed column.
    pub const ALL: [McpSecretColumn; 3] = [
        McpSecretColumn::OAuth2ClientSecret,
        McpSecretColumn::ApiKey,
        McpSecretColumn::CustomHeaders,
    ];

    fn sql(self) -> &'static str {
        match self {
            McpSecretColumn::OAuth2ClientSecret => "oauth2_client_secret_sealed",
            McpSecretColumn::ApiKey => "api_key_sealed",
            McpSecretColumn::CustomHeaders => "custom_headers_sealed",
        }
    }

    fn aad_name(self) -> &'static str {
        match self {
            McpSecretColumn::OAuth2ClientSecret => "oauth2_client_secret",
            McpSecretColumn::ApiKey => "api_key",
            McpSecretColumn::CustomHeaders => "custom_headers",
        }
    }
}

/// Associated data sealing secret `column` of MCP server config `id`
/// (`mcp_server_configs.<column>:<id>`), so a sealed value copied to another row or column
/// fails to open.
pub fn mcp_secret_aad(id: Uuid, column: McpSecretColumn) -> String {
    format!("mcp_server_configs.{}:{}", column.aad_name(), uuid_text(id))
}

/// A server's secrets, opened, for the component that will connect to it. `Debug` shows no
/// value ([`SecretString`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpServerSecrets {
    /// The OAuth2 client secret.
    pub oauth2_client_secret: Option<SecretString>,
    /// The API key value (sent in the server's `api_key_header`).
    pub api_key_value: Option<SecretString>,
    /// The admin-set custom headers.
    pub custom_headers: BTreeMap<String, SecretString>,
}

/// A secret [`Store::rotate_mcp_secrets`] could not re-seal; it is left as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpSecretRotationFailure {
    /// The server.
    pub server_id: Uuid,
    /// The column.
    pub column: McpSecretColumn,
    /// Why (the kinds of `Keyring::decrypt`).
    pub kind: ErrorKind,
    /// The key id the failure names, when there is one.
    pub key_id: Option<String>,
}

/// What [`Store::rotate_mcp_secrets`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpSecretRotationReport {
    /// Secrets re-sealed under the active key.
    pub rotated: u64,
    /// Secrets the active key had already sealed (not decrypted).
    pub already_current: u64,
    /// Secrets changed by a concurrent write between the scan and the re-seal.
    pub changed_concurrently: u64,
    /// Secrets that could not be re-sealed.
    pub failures: Vec<McpSecretRotationFailure>,
}

impl McpSecretRotationReport {
    /// Whether every MCP secret is now sealed by the active key.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

// ---------------------------------------------------------------------------------------
// The configuration being written
// ---------------------------------------------------------------------------------------

/// A secret of a configuration being written.
#[derive(Debug, Clone)]
enum Secret {
    None,
    /// Kept as stored (sealed text).
    Stored(String),
    /// Given in this request (trimmed).
    New(SecretString),
}

impl Secret {
    fn from_request(value: Option<&SecretString>) -> Secret {
        match value.map(|s| s.expose().trim()) {
            None | Some("") => Secret::None,
            Some(v) => Secret::New(SecretString::from(v)),
        }
    }

    fn is_some(&self) -> bool {
        !matches!(self, Secret::None)
    }
}

/// The admin-set headers of a configuration being written.
#[derive(Debug, Clone)]
enum Headers {
    None,
    /// Kept as stored; the names are read (by opening the seal) only when a rule needs them.
    Stored {
        sealed: String,
        names: Option<Vec<String>>,
    },
    /// Given in this request (names and values trimmed).
    New(BTreeMap<String, SecretString>),
}

impl Headers {
    fn from_request(map: &BTreeMap<String, SecretString>) -> Headers {
        if map.is_empty() {
            return Headers::None;
        }
        Headers::New(
            map.iter()
                .map(|(k, v)| (k.trim().to_owned(), SecretString::from(v.expose().trim())))
                .collect(),
        )
    }

    fn is_some(&self) -> bool {
        !matches!(self, Headers::None)
    }
}

#[derive(Debug, Clone)]
struct Draft {
    display_name: String,
    slug: String,
    description: String,
    icon_url: String,
    transport: MCPServerTransport,
    url: String,
    auth_type: MCPServerAuthType,
    oauth2_client_id: String,
    oauth2_client_secret: Secret,
    oauth2_auth_url: String,
    oauth2_token_url: String,
    oauth2_scopes: String,
    api_key_header: String,
    api_key_value: Secret,
    custom_headers: Headers,
    custom_headers_user_keys: Vec<String>,
    custom_headers_user_key_descriptions: BTreeMap<String, String>,
    tool_allow_list: Vec<String>,
    tool_deny_list: Vec<String>,
    availability: MCPServerAvailability,
    enabled: bool,
    model_intent: bool,
    allow_in_plan_mode: bool,
    forward_coder_headers: bool,
}

fn trimmed_list(list: &[String]) -> Vec<String> {
    list.iter().map(|s| s.trim().to_owned()).collect()
}

fn trimmed_map(map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

impl Draft {
    fn from_create(req: &CreateMCPServerConfigRequest) -> Draft {
        Draft {
            display_name: req.display_name.trim().to_owned(),
            slug: req.slug.trim().to_owned(),
            description: req.description.trim().to_owned(),
            icon_url: req.icon_url.trim().to_owned(),
            transport: req.transport.clone(),
            url: req.url.trim().to_owned(),
            auth_type: req.auth_type.clone(),
            oauth2_client_id: req.oauth2_client_id.trim().to_owned(),
            oauth2_client_secret: Secret::from_request(req.oauth2_client_secret.as_ref()),
            oauth2_auth_url: req.oauth2_auth_url.trim().to_owned(),
            oauth2_token_url: req.oauth2_token_url.trim().to_owned(),
            oauth2_scopes: req.oauth2_scopes.trim().to_owned(),
            api_key_header: req.api_key_header.trim().to_owned(),
            api_key_value: Secret::from_request(req.api_key_value.as_ref()),
            custom_headers: Headers::from_request(&req.custom_headers),
            custom_headers_user_keys: trimmed_list(&req.custom_headers_user_keys),
            custom_headers_user_key_descriptions: trimmed_map(
                &req.custom_headers_user_key_descriptions,
            ),
            tool_allow_list: trimmed_list(&req.tool_allow_list),
            tool_deny_list: trimmed_list(&req.tool_deny_list),
            availability: req.availability.clone(),
            enabled: req.enabled.unwrap_or(true),
            model_intent: req.model_intent.unwrap_or(false),
            allow_in_plan_mode: req.allow_in_plan_mode.unwrap_or(false),
            forward_coder_headers: req.forward_coder_headers.unwrap_or(false),
        }
    }

    fn from_row(row: &AnyRow) -> Result<Draft> {
        let secret = |col: McpSecretColumn| -> Result<Secret> {
            let sealed: Option<String> = row.try_get(col.sql()).db()?;
            Ok(sealed.map_or(Secret::None, Secret::Stored))
        };
        let sealed_headers: Option<String> =
            row.try_get(McpSecretColumn::CustomHeaders.sql()).db()?;
        Ok(Draft {
            display_name: row.try_get("display_name").db()?,
            slug: row.try_get("slug").db()?,
            description: row.try_get("description").db()?,
            icon_url: row.try_get("icon_url").db()?,
            transport: MCPServerTransport::from_wire(&row.try_get::<String, _>("transport").db()?),
            url: row.try_get("url").db()?,
            auth_type: MCPServerAuthType::from_wire(&row.try_get::<String, _>("auth_type").db()?),
            oauth2_client_id: row.try_get("oauth2_client_id").db()?,
            oauth2_client_secret: secret(McpSecretColumn::OAuth2ClientSecret)?,
            oauth2_auth_url: row.try_get("oauth2_auth_url").db()?,
            oauth2_token_url: row.try_get("oauth2_token_url").db()?,
            oauth2_scopes: row.try_get("oauth2_scopes").db()?,
            api_key_header: row.try_get("api_key_header").db()?,
            api_key_value: secret(McpSecretColumn::ApiKey)?,
            custom_headers: sealed_headers.map_or(Headers::None, |sealed| Headers::Stored {
                sealed,
                names: None,
            }),
            custom_headers_user_keys: json_column(row, "custom_headers_user_keys")?,
            custom_headers_user_key_descriptions: json_column(
                row,
                "custom_headers_user_key_descriptions",
            )?,
            tool_allow_list: json_column(row, "tool_allow_list")?,
            tool_deny_list: json_column(row, "tool_deny_list")?,
            availability: MCPServerAvailability::from_wire(
                &row.try_get::<String, _>("availability").db()?,
            ),
            enabled: get_bool(row, "enabled")?,
            model_intent: get_bool(row, "model_intent")?,
            allow_in_plan_mode: get_bool(row, "allow_in_plan_mode")?,
            forward_coder_headers: get_bool(row, "forward_coder_headers")?,
        })
    }

    /// Applies a PATCH: absent fields are kept; `""` clears optional strings and secrets
    /// (required ones then fail validation); lists, maps and headers are replaced whole.
    fn apply(&mut self, req: &UpdateMCPServerConfigRequest) {
        fn set(field: &mut String, value: &Option<String>) {
            if let Some(v) = value {
                *field = v.trim().to_owned();
            }
        }
        set(&mut self.display_name, &req.display_name);
        set(&mut self.slug, &req.slug);
        set(&mut self.description, &req.description);
        set(&mut self.icon_url, &req.icon_url);
        set(&mut self.url, &req.url);
        set(&mut self.oauth2_client_id, &req.oauth2_client_id);
        set(&mut self.oauth2_auth_url, &req.oauth2_auth_url);
        set(&mut self.oauth2_token_url, &req.oauth2_token_url);
        set(&mut self.oauth2_scopes, &req.oauth2_scopes);
        set(&mut self.api_key_header, &req.api_key_header);
        if let Some(v) = &req.transport {
            self.transport = v.clone();
        }
        if let Some(v) = &req.auth_type {
            self.auth_type = v.clone();
        }
        if let Some(v) = &req.availability {
            self.availability = v.clone();
        }
        if req.oauth2_client_secret.is_some() {
            self.oauth2_client_secret = Secret::from_request(req.oauth2_client_secret.as_ref());
        }
        if req.api_key_value.is_some() {
            self.api_key_value = Secret::from_request(req.api_key_value.as_ref());
        }
        if let Some(map) = &req.custom_headers {
            self.custom_headers = Headers::from_request(map);
        }
        if let Some(v) = &req.custom_headers_user_keys {
            self.custom_headers_user_keys = trimmed_list(v);
        }
        if let Some(v) = &req.custom_headers_user_key_descriptions {
            self.custom_headers_user_key_descriptions = trimmed_map(v);
        }
        if let Some(v) = &req.tool_allow_list {
            self.tool_allow_list = trimmed_list(v);
        }
        if let Some(v) = &req.tool_deny_list {
            self.tool_deny_list = trimmed_list(v);
        }
        for (field, value) in [
            (&mut self.enabled, req.enabled),
            (&mut self.model_intent, req.model_intent),
            (&mut self.allow_in_plan_mode, req.allow_in_plan_mode),
            (&mut self.forward_coder_headers, req.forward_coder_headers),
        ] {
            if let Some(v) = value {
                *field = v;
            }
        }
    }

    /// Clears what the authentication type does not use, and removes duplicate tool names
    /// (order kept).
    fn normalize(&mut self) {
        if self.auth_type != MCPServerAuthType::Oauth2 {
            self.oauth2_client_id.clear();
            self.oauth2_client_secret = Secret::None;
            self.oauth2_auth_url.clear();
            self.oauth2_token_url.clear();
            self.oauth2_scopes.clear();
        }
        if self.auth_type != MCPServerAuthType::ApiKey {
            self.api_key_header.clear();
            self.api_key_value = Secret::None;
        }
        if self.auth_type != MCPServerAuthType::CustomHeaders {
            self.custom_headers = Headers::None;
            self.custom_headers_user_keys.clear();
            self.custom_headers_user_key_descriptions.clear();
        }
        for list in [&mut self.tool_allow_list, &mut self.tool_deny_list] {
            let mut seen = BTreeSet::new();
            list.retain(|name| seen.insert(name.clone()));
        }
    }

    /// Whether a rule needs the names of stored headers that have not been opened yet.
    fn needs_stored_header_names(&self) -> bool {
        matches!(self.custom_headers, Headers::Stored { names: None, .. })
            && !self.custom_headers_user_keys.is_empty()
    }
}

fn json_column<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T> {
    let text: String = row.try_get(col).db()?;
    serde_json::from_str(&text).map_err(|_| {
        Error::new(
            ErrorKind::CorruptRow,
            format!("stored mcp_server_configs.{col} is not valid JSON"),
        )
    })
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|_| Error::new(ErrorKind::InvalidArgument, "value cannot be stored as JSON"))
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

/// User input for a message: escaped (no raw control characters reach a log line) and cut
/// to 64 characters so a huge value cannot bloat the response. Never used for secrets.
fn quoted(s: &str) -> String {
    const MAX_ECHO_CHARS: usize = 64;
    let mut cut: String = s.chars().take(MAX_ECHO_CHARS).collect();
    if cut.len() < s.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Characters of an HTTP header name (RFC 9110 `token`).
fn header_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("Header names must not be empty.".to_owned());
    }
    if name.len() > MAX_MCP_HEADER_NAME_BYTES {
        return Some(format!(
            "A header name is {} bytes long; names may be at most {MAX_MCP_HEADER_NAME_BYTES} \
             bytes.",
            name.len()
        ));
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        return Some(format!(
            "{} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~).",
            quoted(name)
        ));
    }
    None
}

/// A secret's problem, without ever quoting it.
fn secret_problem(secret: &SecretString, max: usize) -> Option<String> {
    if secret.len() > max {
        return Some(format!(
            "The value is {} bytes long; it may be at most {max} bytes.",
            secret.len()
        ));
    }
    if secret.expose().chars().any(|c| c.is_control() && c != '\t') {
        return Some("The value must not contain control characters or line breaks.".to_owned());
    }
    None
}

fn plain_problem(value: &str, max_bytes: usize) -> Option<String> {
    if value.len() > max_bytes {
        return Some(format!(
            "The value is {} bytes long; it may be at most {max_bytes} bytes.",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return Some("The value must not contain control characters.".to_owned());
    }
    None
}

fn slug_problem(slug: &str) -> Option<String> {
    if slug.is_empty() {
        return Some("A slug is required.".to_owned());
    }
    if slug.len() > MAX_MCP_SLUG_LEN {
        return Some(format!(
            "The slug is {} bytes long; it may be at most {MAX_MCP_SLUG_LEN}.",
            slug.len()
        ));
    }
    let ok = slug.split('-').all(|g| {
        !g.is_empty()
            && g.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if !ok {
        return Some(
            "A slug may contain only lowercase ASCII letters and digits, in groups joined by \
             single hyphens."
                .to_owned(),
        );
    }
    None
}

fn url_problem(field: &str, url: &str, r: &mut Response) {
    if let Err(reason) = codersdk::validate_http_url(url) {
        r.validations.push(codersdk::ValidationError::new(
            field,
            format!("The URL {reason}."),
        ));
    }
}

fn tool_list_problems(field: &str, list: &[String], r: &mut Response) {
    if list.len() > MAX_MCP_TOOL_FILTER_ENTRIES {
        r.validations.push(codersdk::ValidationError::new(
            field,
            format!(
                "{} tool names were given; at most {MAX_MCP_TOOL_FILTER_ENTRIES} are allowed.",
                list.len()
            ),
        ));
        return;
    }
    for name in list {
        let bad = name.is_empty()
            || name.len() > MAX_MCP_TOOL_NAME_BYTES
            || name.chars().any(|c| c.is_whitespace() || c.is_control());
        if bad {
            r.validations.push(codersdk::ValidationError::new(
                field,
                format!(
                    "Tool names must be 1 to {MAX_MCP_TOOL_NAME_BYTES} bytes without spaces or \
                     control characters."
                ),
            ));
            return;
        }
    }
}

fn push(r: &mut Response, field: &str, detail: impl Into<String>) {
    r.validations
        .push(codersdk::ValidationError::new(field, detail));
}

/// Checks a normalized draft; every problem is reported. Secrets are never quoted.
fn validate(d: &Draft) -> std::result::Result<(), Response> {
    let mut r = Response::new(INVALID_MCP_SERVER_MESSAGE);
    let name_chars = d.display_name.chars().count();
    if d.display_name.is_empty() {
        push(&mut r, "display_name", "A display name is required.");
    } else if name_chars > codersdk::MAX_DISPLAY_NAME_RUNES {
        push(
            &mut r,
            "display_name",
            format!(
                "The display name is {name_chars} characters long; it may be at most {}.",
                codersdk::MAX_DISPLAY_NAME_RUNES
            ),
        );
    } else if d.display_name.chars().any(char::is_control) {
        push(
            &mut r,
            "display_name",
            "The display name must not contain control characters.",
        );
    }
    if let Some(p) = slug_problem(&d.slug) {
        push(&mut r, "slug", p);
    }
    let desc_chars = d.description.chars().count();
    if desc_chars > MAX_MCP_DESCRIPTION_CHARS {
        push(
            &mut r,
            "description",
            format!(
                "The description is {desc_chars} characters long; it may be at most \
                 {MAX_MCP_DESCRIPTION_CHARS}."
            ),
        );
    } else if d.description.contains('\0') {
        push(
            &mut r,
            "description",
            "The description must not contain NUL characters.",
        );
    }
    // Icons may be site-relative paths (`/icon/github.svg`), so only the shape is checked.
    if d.icon_url.len() > codersdk::MAX_URL_BYTES
        || d.icon_url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        push(
            &mut r,
            "icon_url",
            format!(
                "The icon URL must be at most {} bytes without spaces or control characters.",
                codersdk::MAX_URL_BYTES
            ),
        );
    }
    if d.transport.is_unknown() {
        push(
            &mut r,
            "transport",
            "The transport must be \"streamable_http\" or \"sse\".",
        );
    }
    url_problem("url", &d.url, &mut r);
    if d.availability.is_unknown() {
        push(
            &mut r,
            "availability",
            "The availability must be \"force_on\", \"default_on\" or \"default_off\".",
        );
    }
    tool_list_problems("tool_allow_list", &d.tool_allow_list, &mut r);
    tool_list_problems("tool_deny_list", &d.tool_deny_list, &mut r);
    match &d.auth_type {
        MCPServerAuthType::None | MCPServerAuthType::UserOidc => {}
        MCPServerAuthType::Oauth2 => validate_oauth2(d, &mut r)?,
        MCPServerAuthType::ApiKey => {
            if d.api_key_header.is_empty() {
                push(
                    &mut r,
                    "api_key_header",
                    "API key authentication needs the header that carries the key.",
                );
            } else if let Some(p) = header_name_problem(&d.api_key_header) {
                push(&mut r, "api_key_header", p);
            }
            match &d.api_key_value {
                Secret::None => push(
                    &mut r,
                    "api_key_value",
                    "API key authentication needs the key.",
                ),
                Secret::New(v) => {
                    if let Some(p) = secret_problem(v, MAX_MCP_SECRET_BYTES) {
                        push(&mut r, "api_key_value", p);
                    }
                }
                Secret::Stored(_) => {}
            }
        }
        MCPServerAuthType::CustomHeaders => validate_headers(d, &mut r),
        _ => push(
            &mut r,
            "auth_type",
            "The authentication type must be one of \"none\", \"oauth2\", \"api_key\", \
             \"custom_headers\" and \"user_oidc\".",
        ),
    }
    if r.validations.is_empty() {
        Ok(())
    } else {
        Err(r)
    }
}

fn validate_oauth2(d: &Draft, r: &mut Response) -> std::result::Result<(), Response> {
    let given = [
        !d.oauth2_client_id.is_empty(),
        !d.oauth2_auth_url.is_empty(),
        !d.oauth2_token_url.is_empty(),
    ];
    if given.iter().all(|g| !g) {
        return Err(Response::new(MANUAL_OAUTH2_REQUIRED_MESSAGE).with_detail(
            "This server does not discover OAuth2 endpoints or register clients \
             automatically; set oauth2_client_id, oauth2_auth_url and oauth2_token_url.",
        ));
    }
    if d.oauth2_client_id.is_empty() {
        push(
            r,
            "oauth2_client_id",
            "OAuth2 needs a client id together with the authorization and token URLs.",
        );
    } else if let Some(p) = plain_problem(&d.oauth2_client_id, MAX_MCP_OAUTH2_FIELD_BYTES) {
        push(r, "oauth2_client_id", p);
    }
    for (field, url) in [
        ("oauth2_auth_url", &d.oauth2_auth_url),
        ("oauth2_token_url", &d.oauth2_token_url),
    ] {
        if url.is_empty() {
            push(
                r,
                field,
                "OAuth2 needs the authorization and token URLs together with the client id.",
            );
        } else {
            url_problem(field, url, r);
        }
    }
    if let Some(p) = plain_problem(&d.oauth2_scopes, MAX_MCP_OAUTH2_FIELD_BYTES) {
        push(r, "oauth2_scopes", p);
    }
    if let Secret::New(v) = &d.oauth2_client_secret {
        if let Some(p) = secret_problem(v, MAX_MCP_SECRET_BYTES) {
            push(r, "oauth2_client_secret", p);
        }
    }
    Ok(())
}

fn validate_headers(d: &Draft, r: &mut Response) {
    if !d.custom_headers.is_some() && d.custom_headers_user_keys.is_empty() {
        push(
            r,
            "custom_headers",
            "Custom header authentication needs at least one header (set by the administrator \
             or supplied by each user).",
        );
        return;
    }
    let admin_names: Vec<String> = match &d.custom_headers {
        Headers::New(map) => {
            if map.len() > MAX_MCP_CUSTOM_HEADERS {
                push(
                    r,
                    "custom_headers",
                    format!(
                        "{} headers were given; at most {MAX_MCP_CUSTOM_HEADERS} are allowed.",
                        map.len()
                    ),
                );
                return;
            }
            let total: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
            if total > MAX_MCP_CUSTOM_HEADERS_BYTES {
                push(
                    r,
                    "custom_headers",
                    format!(
                        "The headers take {total} bytes; names and values together may take at \
                         most {MAX_MCP_CUSTOM_HEADERS_BYTES} bytes."
                    ),
                );
            }
            let mut seen = BTreeSet::new();
            for (name, value) in map {
                if let Some(p) = header_name_problem(name) {
                    push(r, "custom_headers", p);
                } else if !seen.insert(name.to_ascii_lowercase()) {
                    push(
                        r,
                        "custom_headers",
                        format!(
                            "The header {} is given twice (names ignore case).",
                            quoted(name)
                        ),
                    );
                }
                if value.is_empty() {
                    push(
                        r,
                        "custom_headers",
                        format!("The header {} has an empty value.", quoted(name)),
                    );
                } else if let Some(p) = secret_problem(value, MAX_MCP_HEADER_VALUE_BYTES) {
                    push(r, "custom_headers", format!("Header {}: {p}", quoted(name)));
                }
            }
            map.keys().cloned().collect()
        }
        Headers::Stored { names, .. } => names.clone().unwrap_or_default(),
        Headers::None => Vec::new(),
    };
    let keys = &d.custom_headers_user_keys;
    if keys.len() > MAX_MCP_USER_HEADER_KEYS {
        push(
            r,
            "custom_headers_user_keys",
            format!(
                "{} header names were given; at most {MAX_MCP_USER_HEADER_KEYS} are allowed.",
                keys.len()
            ),
        );
        return;
    }
    let admin_folded: BTreeSet<String> =
        admin_names.iter().map(|n| n.to_ascii_lowercase()).collect();
    let mut seen = BTreeSet::new();
    for key in keys {
        if let Some(p) = header_name_problem(key) {
            push(r, "custom_headers_user_keys", p);
            continue;
        }
        let folded = key.to_ascii_lowercase();
        if !seen.insert(folded.clone()) {
            push(
                r,
                "custom_headers_user_keys",
                format!(
                    "The header {} is listed twice (names ignore case).",
                    quoted(key)
                ),
            );
        } else if admin_folded.contains(&folded) {
            push(
                r,
                "custom_headers_user_keys",
                format!(
                    "The header {} is also set by the administrator; a header is either \
                     admin-set or user-supplied.",
                    quoted(key)
                ),
            );
        }
    }
    if d.custom_headers_user_key_descriptions.len() > keys.len() {
        push(
            r,
            "custom_headers_user_key_descriptions",
            "There are more descriptions than user-supplied headers; describe only headers \
             listed in custom_headers_user_keys.",
        );
        return;
    }
    for (key, description) in &d.custom_headers_user_key_descriptions {
        if !keys.iter().any(|k| k == key) {
            push(
                r,
                "custom_headers_user_key_descriptions",
                format!("{} is not one of custom_headers_user_keys.", quoted(key)),
            );
        }
        let chars = description.chars().count();
        if chars > MAX_MCP_HEADER_DESCRIPTION_CHARS || description.contains('\0') {
            push(
                r,
                "custom_headers_user_key_descriptions",
                format!(
                    "Descriptions may be at most {MAX_MCP_HEADER_DESCRIPTION_CHARS} characters \
                     without NUL characters."
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------

const MCP_COLUMNS: &str = "id, display_name, slug, description, icon_url, transport, url, \
    auth_type, oauth2_client_id, oauth2_client_secret_sealed, oauth2_auth_url, \
    oauth2_token_url, oauth2_scopes, api_key_header, api_key_sealed, custom_headers_sealed, \
    custom_headers_user_keys, custom_headers_user_key_descriptions, tool_allow_list, \
    tool_deny_list, availability, enabled, model_intent, allow_in_plan_mode, \
    forward_coder_headers, created_at, updated_at";

fn config_from_row(row: &AnyRow) -> Result<MCPServerConfig> {
    let d = Draft::from_row(row)?;
    Ok(MCPServerConfig {
        id: get_uuid(row, "id")?,
        // OAuth2 tokens are per user and not stored yet; other types need no connection.
        auth_connected: d.auth_type != MCPServerAuthType::Oauth2,
        display_name: d.display_name,
        slug: d.slug,
        description: d.description,
        icon_url: d.icon_url,
        transport: d.transport,
        url: d.url,
        auth_type: d.auth_type,
        oauth2_client_id: d.oauth2_client_id,
        has_oauth2_secret: d.oauth2_client_secret.is_some(),
        oauth2_auth_url: d.oauth2_auth_url,
        oauth2_token_url: d.oauth2_token_url,
        oauth2_scopes: d.oauth2_scopes,
        api_key_header: d.api_key_header,
        has_api_key: d.api_key_value.is_some(),
        has_custom_headers: d.custom_headers.is_some(),
        custom_headers_user_keys: d.custom_headers_user_keys,
        custom_headers_user_key_descriptions: d.custom_headers_user_key_descriptions,
        tool_allow_list: d.tool_allow_list,
        tool_deny_list: d.tool_deny_list,
        availability: d.availability,
        enabled: d.enabled,
        model_intent: d.model_intent,
        allow_in_plan_mode: d.allow_in_plan_mode,
        forward_coder_headers: d.forward_coder_headers,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

fn mcp_not_found(id: Uuid) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("MCP server config {id} not found"),
    )
}

fn slug_taken(slug: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("An MCP server with the slug {slug:?} already exists."),
    )
}

/// The sealed form of a draft secret: kept, sealed anew, or none.
fn seal_secret(
    secret: &Secret,
    keyring: &Keyring,
    id: Uuid,
    column: McpSecretColumn,
) -> Result<Option<String>> {
    match secret {
        Secret::None => Ok(None),
        Secret::Stored(sealed) => Ok(Some(sealed.clone())),
        Secret::New(value) => Ok(Some(keyring.encrypt(
            value.expose().as_bytes(),
            mcp_secret_aad(id, column).as_bytes(),
        )?)),
    }
}

fn seal_headers(headers: &Headers, keyring: &Keyring, id: Uuid) -> Result<Option<String>> {
    match headers {
        Headers::None => Ok(None),
        Headers::Stored { sealed, .. } => Ok(Some(sealed.clone())),
        Headers::New(map) => {
            let plain: BTreeMap<&str, &str> =
                map.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
            // Zeroized when dropped: the JSON holds every header value in clear.
            let json = crate::Zeroizing::new(json_text(&plain)?);
            Ok(Some(keyring.encrypt(
                json.as_bytes(),
                mcp_secret_aad(id, McpSecretColumn::CustomHeaders).as_bytes(),
            )?))
        }
    }
}

fn open_headers(
    sealed: &str,
    keyring: &Keyring,
    id: Uuid,
) -> Result<BTreeMap<String, SecretString>> {
    let bytes = keyring.decrypt(
        sealed,
        mcp_secret_aad(id, McpSecretColumn::CustomHeaders).as_bytes(),
    )?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| {
        Error::new(
            ErrorKind::CorruptRow,
            "stored MCP custom headers are not a JSON object of strings",
        )
    })?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, SecretString::from(v)))
        .collect())
}

/// The values bound by INSERT and UPDATE, in [`MCP_COLUMNS`] order after `id`, up to and
/// without the timestamps.
struct RowValues {
    oauth2_client_secret: Option<String>,
    api_key: Option<String>,
    custom_headers: Option<String>,
    user_keys: String,
    user_key_descriptions: String,
    allow: String,
    deny: String,
}

fn row_values(d: &Draft, keyring: &Keyring, id: Uuid) -> Result<RowValues> {
    Ok(RowValues {
        oauth2_client_secret: seal_secret(
            &d.oauth2_client_secret,
            keyring,
            id,
            McpSecretColumn::OAuth2ClientSecret,
        )?,
        api_key: seal_secret(&d.api_key_value, keyring, id, McpSecretColumn::ApiKey)?,
        custom_headers: seal_headers(&d.custom_headers, keyring, id)?,
        user_keys: json_text(&d.custom_headers_user_keys)?,
        user_key_descriptions: json_text(&d.custom_headers_user_key_descriptions)?,
        allow: json_text(&d.tool_allow_list)?,
        deny: json_text(&d.tool_deny_list)?,
    })
}

fn for_update(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    }
}

impl Store {
    /// Creates an MCP server configuration (`POST /mcp/servers`): validated (every problem
    /// reported per field, secrets never quoted), fields of other authentication types
    /// dropped, secrets sealed with `keyring`.
    ///
    /// [`ErrorKind::InvalidArgument`] with the validation `Response`;
    /// [`ErrorKind::Conflict`] when the slug is taken.
    pub async fn create_mcp_server_config(
        &self,
        req: &CreateMCPServerConfigRequest,
        keyring: &Keyring,
    ) -> Result<MCPServerConfig> {
        let mut draft = Draft::from_create(req);
        draft.normalize();
        validate(&draft).map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
        let id = Uuid::new_v4();
        let v = row_values(&draft, keyring, id)?;
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            let taken = sqlx::query("SELECT id FROM mcp_server_configs WHERE slug = $1")
                .bind(&draft.slug)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
            if taken.is_some() {
                return Err(slug_taken(&draft.slug));
            }
            let sql = format!(
                "INSERT INTO mcp_server_configs ({MCP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, \
                 $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
                 $22, $23, $24, $25, $26, $26)"
            );
            bind_row(sqlx::query(sqlx::AssertSqlSafe(sql)), id, &draft, &v, now)
                .execute(&mut *tx)
                .await
                // A concurrent create won the unique index after our check.
                .map_err(|e| match Error::from_sqlx(e) {
                    e if e.kind() == ErrorKind::Conflict => slug_taken(&draft.slug).with_source(e),
                    e => e,
                })?;
            Ok(())
        }
        .await;
        finish(tx, result).await?;
        self.get_mcp_server_config(id).await
    }

    /// The MCP server configurations, by slug. Secrets are never returned, only `has_*`
    /// flags; `auth_connected` is false for OAuth2 servers (no user has a token yet).
    pub async fn list_mcp_server_configs(
        &self,
        filter: McpServerFilter,
    ) -> Result<Vec<MCPServerConfig>> {
        let condition = match filter {
            McpServerFilter::All => "",
            McpServerFilter::Enabled => " WHERE enabled = 1",
        };
        let sql = format!("SELECT {MCP_COLUMNS} FROM mcp_server_configs{condition} ORDER BY slug");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await
            .db()?;
        rows.iter().map(config_from_row).collect()
    }

    /// One MCP server configuration. [`ErrorKind::NotFound`] when it does not exist.
    pub async fn get_mcp_server_config(&self, id: Uuid) -> Result<MCPServerConfig> {
        let sql = format!("SELECT {MCP_COLUMNS} FROM mcp_server_configs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(id))
            .fetch_optional(self.pool())
            .await
            .db()?;
        match row {
            Some(row) => config_from_row(&row),
            None => Err(mcp_not_found(id)),
        }
    }

    /// Applies `PATCH /mcp/servers/{id}` under a lock on the row: absent fields are kept,
    /// `""` clears optional strings and secrets, lists and header maps are replaced whole;
    /// then the result is validated like a creation. Secrets not given are kept sealed as
    /// they are (the stored headers are opened only when their names are needed to check
    /// that user-supplied header names do not clash with them).
    ///
    /// [`ErrorKind::InvalidArgument`] with the validation `Response`;
    /// [`ErrorKind::Conflict`] when the new slug is taken; [`ErrorKind::NotFound`].
    pub async fn update_mcp_server_config(
        &self,
        id: Uuid,
        req: &UpdateMCPServerConfigRequest,
        keyring: &Keyring,
    ) -> Result<MCPServerConfig> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            let sql = format!(
                "SELECT {MCP_COLUMNS} FROM mcp_server_configs WHERE id = $1{}",
                for_update(self.dialect())
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(uuid_text(id))
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or_else(|| mcp_not_found(id))?;
            let mut draft = Draft::from_row(&row)?;
            draft.apply(req);
            draft.normalize();
            if draft.needs_stored_header_names() {
                if let Headers::Stored { sealed, names } = &mut draft.custom_headers {
                    *names = Some(open_headers(sealed, keyring, id)?.into_keys().collect());
                }
            }
            validate(&draft).map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
            let taken =
                sqlx::query("SELECT id FROM mcp_server_configs WHERE slug = $1 AND id <> $2")
                    .bind(&draft.slug)
                    .bind(uuid_text(id))
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
            if taken.is_some() {
                return Err(slug_taken(&draft.slug));
            }
            let v = row_values(&draft, keyring, id)?;
            let update = sqlx::query(
                "UPDATE mcp_server_configs SET display_name = $2, slug = $3, description = $4, \
                 icon_url = $5, transport = $6, url = $7, auth_type = $8, \
                 oauth2_client_id = $9, oauth2_client_secret_sealed = $10, \
                 oauth2_auth_url = $11, oauth2_token_url = $12, oauth2_scopes = $13, \
                 api_key_header = $14, api_key_sealed = $15, custom_headers_sealed = $16, \
                 custom_headers_user_keys = $17, custom_headers_user_key_descriptions = $18, \
                 tool_allow_list = $19, tool_deny_list = $20, availability = $21, \
                 enabled = $22, model_intent = $23, allow_in_plan_mode = $24, \
                 forward_coder_headers = $25, updated_at = $26 WHERE id = $1",
            );
            bind_row(update, id, &draft, &v, now)
                .execute(&mut *tx)
                .await
                .map_err(|e| match Error::from_sqlx(e) {
                    e if e.kind() == ErrorKind::Conflict => slug_taken(&draft.slug).with_source(e),
                    e => e,
                })?;
            Ok(())
        }
        .await;
        finish(tx, result).await?;
        self.get_mcp_server_config(id).await
    }

    /// Deletes an MCP server configuration and with it its sealed secrets. Chats that name
    /// it in `mcp_server_ids` keep the id; whoever connects to servers skips unknown ones.
    /// [`ErrorKind::NotFound`] when it does not exist.
    pub async fn delete_mcp_server_config(&self, id: Uuid) -> Result<()> {
        let done = sqlx::query("DELETE FROM mcp_server_configs WHERE id = $1")
            .bind(uuid_text(id))
            .execute(self.pool())
            .await
            .db()?;
        if done.rows_affected() == 0 {
            return Err(mcp_not_found(id));
        }
        Ok(())
    }

    /// The secrets of MCP server `id`, opened with `keyring`, for the component that
    /// connects to it; never for an API response. A secret that cannot be opened is an
    /// error, never "none". [`ErrorKind::NotFound`] when the server does not exist.
    pub async fn mcp_server_secrets(
        &self,
        id: Uuid,
        keyring: &Keyring,
    ) -> Result<McpServerSecrets> {
        let row = sqlx::query(
            "SELECT oauth2_client_secret_sealed, api_key_sealed, custom_headers_sealed \
             FROM mcp_server_configs WHERE id = $1",
        )
        .bind(uuid_text(id))
        .fetch_optional(self.pool())
        .await
        .db()?
        .ok_or_else(|| mcp_not_found(id))?;
        let open = |col: McpSecretColumn| -> Result<Option<SecretString>> {
            let sealed: Option<String> = row.try_get(col.sql()).db()?;
            sealed
                .map(|s| keyring.decrypt_secret(&s, mcp_secret_aad(id, col).as_bytes()))
                .transpose()
        };
        let headers: Option<String> = row.try_get(McpSecretColumn::CustomHeaders.sql()).db()?;
        Ok(McpServerSecrets {
            oauth2_client_secret: open(McpSecretColumn::OAuth2ClientSecret)?,
            api_key_value: open(McpSecretColumn::ApiKey)?,
            custom_headers: headers
                .map(|s| open_headers(&s, keyring, id))
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// Re-seals every MCP secret under the keyring's active key (step 2 of the rotation in
    /// docs/secrets.md, next to `Store::rotate_secrets`): values the active key already
    /// sealed are counted without decrypting; each re-sealed value is written back with a
    /// compare-and-swap on the old text, so a concurrent update wins; values that cannot be
    /// opened are listed in the report and left alone. Only a database failure is an error.
    pub async fn rotate_mcp_secrets(&self, keyring: &Keyring) -> Result<McpSecretRotationReport> {
        let mut report = McpSecretRotationReport::default();
        for column in McpSecretColumn::ALL {
            let col = column.sql();
            let sql = format!(
                "SELECT id, {col} AS sealed FROM mcp_server_configs WHERE {col} IS NOT NULL \
                 ORDER BY id"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(self.pool())
                .await
                .db()?;
            for row in &rows {
                let id = get_uuid(row, "id")?;
                let sealed: String = row.try_get("sealed").db()?;
                let resealed = match keyring.rotate(&sealed, mcp_secret_aad(id, column).as_bytes())
                {
                    Ok(Some(text)) => text,
                    Ok(None) => {
                        report.already_current += 1;
                        continue;
                    }
                    Err(e) => {
                        report.failures.push(McpSecretRotationFailure {
                            server_id: id,
                            column,
                            kind: e.kind(),
                            key_id: e.key_id().map(str::to_owned),
                        });
                        continue;
                    }
                };
                let sql = format!(
                    "UPDATE mcp_server_configs SET {col} = $2 WHERE id = $1 AND {col} = $3"
                );
                let swapped = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(uuid_text(id))
                    .bind(&resealed)
                    .bind(&sealed)
                    .execute(self.pool())
                    .await
                    .db()?;
                if swapped.rows_affected() == 1 {
                    report.rotated += 1;
                } else {
                    report.changed_concurrently += 1;
                }
            }
        }
        Ok(report)
    }
}

/// Commits when `result` is `Ok`, rolls back otherwise (a failed rollback does not mask the
/// original error).
/// Binds a configuration row as `$1` (id) … `$26` (time), the order the insert's column
/// list and the update's assignments share.
fn bind_row<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    id: Uuid,
    draft: &'q Draft,
    v: &'q RowValues,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(uuid_text(id))
        .bind(&draft.display_name)
        .bind(&draft.slug)
        .bind(&draft.description)
        .bind(&draft.icon_url)
        .bind(draft.transport.as_str())
        .bind(&draft.url)
        .bind(draft.auth_type.as_str())
        .bind(&draft.oauth2_client_id)
        .bind(v.oauth2_client_secret.as_deref())
        .bind(&draft.oauth2_auth_url)
        .bind(&draft.oauth2_token_url)
        .bind(&draft.oauth2_scopes)
        .bind(&draft.api_key_header)
        .bind(v.api_key.as_deref())
        .bind(v.custom_headers.as_deref())
        .bind(&v.user_keys)
        .bind(&v.user_key_descriptions)
        .bind(&v.allow)
        .bind(&v.deny)
        .bind(draft.availability.as_str())
        .bind(i64::from(draft.enabled))
        .bind(i64::from(draft.model_intent))
        .bind(i64::from(draft.allow_in_plan_mode))
        .bind(i64::from(draft.forward_coder_headers))
        .bind(now)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn base() -> CreateMCPServerConfigRequest {
        serde_json::from_str(
            r#"{"display_name":"GitHub","slug":"github","transport":"streamable_http",
                "url":"https://mcp.example.com/mcp","auth_type":"none","availability":"default_on"}"#,
        )
        .unwrap()
    }

    fn check(req: &CreateMCPServerConfigRequest) -> std::result::Result<Draft, Response> {
        let mut d = Draft::from_create(req);
        d.normalize();
        validate(&d).map(|()| d)
    }

    fn fields(r: &Response) -> Vec<&str> {
        r.validations.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn slugs() {
        for ok in ["a", "github", "my-server-2", &"a".repeat(MAX_MCP_SLUG_LEN)] {
            assert_eq!(slug_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "GitHub",
            "a_b",
            "-a",
            "a-",
            "a--b",
            &"a".repeat(MAX_MCP_SLUG_LEN + 1),
        ] {
            assert!(slug_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn auth_type_rules() {
        assert!(check(&base()).is_ok());
        // api_key needs both header and value.
        let mut r = base();
        r.auth_type = MCPServerAuthType::ApiKey;
        assert_eq!(
            fields(&check(&r).unwrap_err()),
            ["api_key_header", "api_key_value"]
        );
        r.api_key_header = "X-Api-Key".into();
        r.api_key_value = Some("k".into());
        assert!(check(&r).is_ok());
        r.api_key_value = Some("line\nsupersecretvalue".into());
        let err = check(&r).unwrap_err();
        assert_eq!(fields(&err), ["api_key_value"]);
        assert!(
            !err.to_string().contains("supersecret"),
            "secrets are never quoted"
        );
        // oauth2: none of the three → manual configuration required; a partial set → 400.
        let mut r = base();
        r.auth_type = MCPServerAuthType::Oauth2;
        assert_eq!(
            check(&r).unwrap_err().message,
            MANUAL_OAUTH2_REQUIRED_MESSAGE
        );
        r.oauth2_client_id = "client".into();
        assert_eq!(
            fields(&check(&r).unwrap_err()),
            ["oauth2_auth_url", "oauth2_token_url"]
        );
        r.oauth2_auth_url = "https://idp.example.com/authorize".into();
        r.oauth2_token_url = "not a url".into();
        assert_eq!(fields(&check(&r).unwrap_err()), ["oauth2_token_url"]);
        r.oauth2_token_url = "https://idp.example.com/token".into();
        assert!(check(&r).is_ok());
        // custom_headers: at least one; names valid; user keys disjoint from admin names.
        let mut r = base();
        r.auth_type = MCPServerAuthType::CustomHeaders;
        assert_eq!(fields(&check(&r).unwrap_err()), ["custom_headers"]);
        r.custom_headers
            .insert("Authorization".into(), "Bearer x".into());
        r.custom_headers_user_keys = vec!["authorization".into()];
        assert_eq!(
            fields(&check(&r).unwrap_err()),
            ["custom_headers_user_keys"]
        );
        r.custom_headers_user_keys = vec!["X-User-Token".into()];
        r.custom_headers_user_key_descriptions
            .insert("X-Other".into(), "?".into());
        assert_eq!(
            fields(&check(&r).unwrap_err()),
            ["custom_headers_user_key_descriptions"]
        );
        r.custom_headers_user_key_descriptions.clear();
        r.custom_headers.insert("Bad Name".into(), "v".into());
        assert_eq!(fields(&check(&r).unwrap_err()), ["custom_headers"]);
    }

    #[test]
    fn echoed_input_is_bounded() {
        let mut r = base();
        r.auth_type = MCPServerAuthType::CustomHeaders;
        r.custom_headers_user_keys = vec!["X-User".into()];
        r.custom_headers_user_key_descriptions
            .insert("k".repeat(100_000), "d".into());
        let err = check(&r).unwrap_err();
        assert_eq!(fields(&err), ["custom_headers_user_key_descriptions"]);
        assert!(err.to_string().len() < 500, "{}", err.to_string().len());
        // More descriptions than keys: one problem, not one per entry.
        r.custom_headers_user_key_descriptions = (0..1000)
            .map(|i| (format!("X-{i}"), "d".to_owned()))
            .collect();
        assert_eq!(check(&r).unwrap_err().validations.len(), 1);
    }

    #[test]
    fn other_auth_types_fields_are_dropped() {
        let mut r = base();
        r.api_key_value = Some("secret".into());
        r.oauth2_client_id = "id".into();
        r.custom_headers.insert("X-A".into(), "b".into());
        let d = check(&r).unwrap();
        assert!(!d.api_key_value.is_some());
        assert!(d.oauth2_client_id.is_empty());
        assert!(!d.custom_headers.is_some());
    }

    #[test]
    fn limits_at_their_edges() {
        let mut r = base();
        r.auth_type = MCPServerAuthType::ApiKey;
        r.api_key_header = "X-Key".into();
        r.api_key_value = Some("k".repeat(MAX_MCP_SECRET_BYTES).as_str().into());
        assert!(check(&r).is_ok());
        r.api_key_value = Some("k".repeat(MAX_MCP_SECRET_BYTES + 1).as_str().into());
        assert!(check(&r).is_err());

        let mut r = base();
        r.tool_allow_list = (0..MAX_MCP_TOOL_FILTER_ENTRIES)
            .map(|i| format!("t{i}"))
            .collect();
        r.tool_deny_list = vec!["x".repeat(MAX_MCP_TOOL_NAME_BYTES)];
        assert!(check(&r).is_ok());
        r.tool_allow_list.push("one-more".into());
        r.tool_deny_list = vec!["x".repeat(MAX_MCP_TOOL_NAME_BYTES + 1)];
        assert_eq!(
            fields(&check(&r).unwrap_err()),
            ["tool_allow_list", "tool_deny_list"]
        );

        let mut r = base();
        r.auth_type = MCPServerAuthType::CustomHeaders;
        for i in 0..MAX_MCP_CUSTOM_HEADERS {
            r.custom_headers.insert(format!("X-H{i:02}"), "v".into());
        }
        assert!(check(&r).is_ok());
        r.custom_headers.insert("X-Extra".into(), "v".into());
        assert!(check(&r).is_err());

        // Names and values together: exactly at the cap passes, one byte over fails.
        let mut r = base();
        r.auth_type = MCPServerAuthType::CustomHeaders;
        let per = MAX_MCP_CUSTOM_HEADERS_BYTES / 2;
        r.custom_headers
            .insert("A".into(), "v".repeat(per - 1).as_str().into());
        r.custom_headers
            .insert("B".into(), "v".repeat(per - 1).as_str().into());
        assert!(check(&r).is_ok());
        r.custom_headers
            .insert("B".into(), "v".repeat(per).as_str().into());
        assert!(check(&r).is_err());

        let mut r = base();
        r.description = "d".repeat(MAX_MCP_DESCRIPTION_CHARS);
        assert!(check(&r).is_ok());
        r.description.push('d');
        assert!(check(&r).is_err());
    }

    #[test]
    fn sealed_headers_fit_the_keyring_however_escaped() {
        // Every value byte a quote doubles when written as JSON: still far below the cap.
        let keyring = Keyring::new("k", crate::SecretKey::generate().unwrap()).unwrap();
        let mut map = BTreeMap::new();
        let per = MAX_MCP_CUSTOM_HEADERS_BYTES / 2;
        map.insert("A".to_owned(), SecretString::from("\"".repeat(per - 1)));
        map.insert("B".to_owned(), SecretString::from("\\".repeat(per - 1)));
        let id = Uuid::new_v4();
        let sealed = seal_headers(&Headers::New(map.clone()), &keyring, id)
            .unwrap()
            .unwrap();
        assert_eq!(open_headers(&sealed, &keyring, id).unwrap(), map);
        // Bound to its row: another id cannot open it.
        assert!(open_headers(&sealed, &keyring, Uuid::new_v4()).is_err());
    }

    #[test]
    fn update_merges_and_clears() {
        let mut d = Draft::from_create(&base());
        d.apply(
            &serde_json::from_str(
                r#"{"auth_type":"api_key","api_key_header":"X-Key","api_key_value":"v","description":" d "}"#,
            )
            .unwrap(),
        );
        d.normalize();
        assert!(validate(&d).is_ok());
        assert_eq!(d.description, "d");
        d.apply(&serde_json::from_str(r#"{"api_key_value":""}"#).unwrap());
        d.normalize();
        assert_eq!(fields(&validate(&d).unwrap_err()), ["api_key_value"]);
        d.apply(&serde_json::from_str(r#"{"display_name":"","slug":"Bad"}"#).unwrap());
        assert_eq!(
            fields(&validate(&d).unwrap_err()),
            ["display_name", "slug", "api_key_value"]
        );
    }
}
