//! MCP server configurations: the shape of `POST /mcp/servers` and
//! `PATCH /mcp/servers/{id}`, the server URL, the slug, the rules of each authentication
//! type, header names and values, and the tool allow and deny lists.
//!
//! A configuration is validated as a whole, as it will be written: [`McpServerDraft`] is
//! built from a creation request, or from the stored row with a PATCH applied to it, and
//! [`McpServerDraft::validate`] turns it into a [`ValidatedMcpServerConfig`], the only value
//! a store should write. The rules depend on the final state (an `api_key` server needs a
//! header and a key, whether the key is new or kept), which is why an update is checked
//! after merging and not field by field.
//!
//! The administrator's secrets (OAuth2 client secret, API key value, custom header values)
//! are write-only. A draft holds a new secret as a [`SecretString`] and a kept one only as
//! [`McpDraftSecret::Stored`], without its value: validation never needs a stored secret,
//! and no message ever repeats one.

use std::collections::{BTreeMap, BTreeSet};

use super::{quoted, Problems, MAX_DISPLAY_NAME_RUNES};
use crate::{
    validate_http_url, CreateMCPServerConfigRequest, MCPServerAuthType, MCPServerAvailability,
    MCPServerTransport, Response, SecretString, UpdateMCPServerConfigRequest,
    UpdateMCPServerUserHeadersRequest, MAX_DYNAMIC_TOOLS, MAX_PROVIDER_API_KEY_BYTES,
    MAX_URL_BYTES,
};

/// Longest slug, in bytes.
pub const MAX_MCP_SLUG_LEN: usize = 32;

/// Longest description, in Unicode scalar values after trimming.
pub const MAX_MCP_DESCRIPTION_CHARS: usize = 4096;

/// Longest OAuth2 client secret or API key value, in bytes after trimming (the provider
/// key limit, [`MAX_PROVIDER_API_KEY_BYTES`]).
pub const MAX_MCP_SECRET_BYTES: usize = MAX_PROVIDER_API_KEY_BYTES;

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

/// Most bytes of all admin-set custom header names and values together. A store seals
/// them as one JSON object, which must stay well under its encryption limit however the
/// values are escaped.
pub const MAX_MCP_CUSTOM_HEADERS_BYTES: usize = 16 * 1024;

/// Longest description of a user-supplied header, in Unicode scalar values.
pub const MAX_MCP_HEADER_DESCRIPTION_CHARS: usize = 1024;

/// Most entries of `tool_allow_list` or of `tool_deny_list` (the dynamic-tool limit,
/// [`MAX_DYNAMIC_TOOLS`]).
pub const MAX_MCP_TOOL_FILTER_ENTRIES: usize = MAX_DYNAMIC_TOOLS;

/// Longest tool name in a tool filter, in bytes (the MCP specification's name length).
pub const MAX_MCP_TOOL_NAME_BYTES: usize = 128;

/// Message of every validation failure of an MCP server configuration.
pub const INVALID_MCP_SERVER_MESSAGE: &str = "Invalid MCP server configuration.";

/// Message when `oauth2` is chosen without client id, authorization URL and token URL and
/// the endpoints could not be found for it: the server first tries discovery and dynamic
/// client registration ([`McpServerDraft::needs_oauth2_discovery`]); when that fails, or
/// when a draft without endpoints is validated without trying, the endpoints must be
/// configured by hand.
pub const MANUAL_OAUTH2_REQUIRED_MESSAGE: &str = "Manual OAuth2 configuration is required.";

/// Message of every validation failure of a user's MCP header values
/// (`PUT /mcp/servers/{id}/user-headers`).
pub const INVALID_MCP_USER_HEADERS_MESSAGE: &str = "Invalid MCP server header values.";

/// Most bytes of one user's header names and values for one server together, after the
/// update is merged with what is stored. A store seals them as one JSON object, which must
/// stay well under its encryption limit however the values are escaped (the admin-set
/// headers' limit, [`MAX_MCP_CUSTOM_HEADERS_BYTES`]).
pub const MAX_MCP_USER_HEADER_VALUES_BYTES: usize = MAX_MCP_CUSTOM_HEADERS_BYTES;

/// A secret of an MCP server configuration being written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum McpDraftSecret {
    /// No secret.
    #[default]
    None,
    /// The stored secret is kept as it is. Its value is not part of the draft: the store
    /// that holds it (sealed) writes it back unchanged.
    Stored,
    /// A secret given in this request, trimmed.
    New(SecretString),
}

impl McpDraftSecret {
    /// A secret as a request gives it: absent or blank means none, anything else is new
    /// and trimmed.
    pub fn from_request(value: Option<&SecretString>) -> McpDraftSecret {
        match value.map(|s| s.expose().trim()) {
            None | Some("") => McpDraftSecret::None,
            Some(v) => McpDraftSecret::New(SecretString::from(v)),
        }
    }

    /// Whether there is a secret (new or kept).
    pub fn is_some(&self) -> bool {
        !matches!(self, McpDraftSecret::None)
    }
}

/// The admin-set custom headers of a configuration being written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum McpDraftHeaders {
    /// No headers.
    #[default]
    None,
    /// The stored headers are kept as they are. Their values are not part of the draft;
    /// their `names` are, once the store has opened them, which it does only when
    /// [`McpServerDraft::needs_stored_header_names`] says a rule needs them.
    Stored {
        /// The stored header names, `None` while not opened.
        names: Option<Vec<String>>,
    },
    /// Headers given in this request (names and values trimmed).
    New(BTreeMap<String, SecretString>),
}

impl McpDraftHeaders {
    /// Headers as a request gives them: an empty map means none.
    pub fn from_request(map: &BTreeMap<String, SecretString>) -> McpDraftHeaders {
        if map.is_empty() {
            return McpDraftHeaders::None;
        }
        McpDraftHeaders::New(
            map.iter()
                .map(|(k, v)| (k.trim().to_owned(), SecretString::from(v.expose().trim())))
                .collect(),
        )
    }

    /// Whether there are headers (new or kept).
    pub fn is_some(&self) -> bool {
        !matches!(self, McpDraftHeaders::None)
    }
}

/// An MCP server configuration as it will be written: strings trimmed, defaults applied,
/// the fields of other authentication types cleared and duplicate tool names removed.
///
/// Build it with [`McpServerDraft::from_create`], or from the stored row (the store fills
/// the fields, with [`McpDraftSecret::Stored`] and [`McpDraftHeaders::Stored`] for sealed
/// secrets) followed by [`McpServerDraft::apply_update`]; then
/// [`McpServerDraft::validate`] it. `Debug` shows no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServerDraft {
    /// Display name.
    pub display_name: String,
    /// Unique slug.
    pub slug: String,
    /// Description.
    pub description: String,
    /// Icon URL or site-relative path.
    pub icon_url: String,
    /// Transport.
    pub transport: MCPServerTransport,
    /// Server URL.
    pub url: String,
    /// Authentication type.
    pub auth_type: MCPServerAuthType,
    /// OAuth2 client id.
    pub oauth2_client_id: String,
    /// OAuth2 client secret.
    pub oauth2_client_secret: McpDraftSecret,
    /// OAuth2 authorization URL.
    pub oauth2_auth_url: String,
    /// OAuth2 token URL.
    pub oauth2_token_url: String,
    /// OAuth2 scopes.
    pub oauth2_scopes: String,
    /// Header carrying the API key.
    pub api_key_header: String,
    /// The API key.
    pub api_key_value: McpDraftSecret,
    /// Admin-set headers.
    pub custom_headers: McpDraftHeaders,
    /// Header names each user supplies a value for.
    pub custom_headers_user_keys: Vec<String>,
    /// Descriptions of the user-supplied headers, by name.
    pub custom_headers_user_key_descriptions: BTreeMap<String, String>,
    /// Tools offered (empty = all).
    pub tool_allow_list: Vec<String>,
    /// Tools hidden.
    pub tool_deny_list: Vec<String>,
    /// Availability.
    pub availability: MCPServerAvailability,
    /// Enabled (default true).
    pub enabled: bool,
    /// Model intent (default false).
    pub model_intent: bool,
    /// Allowed in plan mode (default false).
    pub allow_in_plan_mode: bool,
    /// Forward Coder headers (default false).
    pub forward_coder_headers: bool,
}

fn trimmed_list(list: &[String]) -> Vec<String> {
    list.iter().map(|s| s.trim().to_owned()).collect()
}

fn trimmed_map(map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

impl McpServerDraft {
    /// The configuration a creation request describes, normalized (not yet validated).
    pub fn from_create(req: &CreateMCPServerConfigRequest) -> McpServerDraft {
        let mut draft = McpServerDraft {
            display_name: req.display_name.trim().to_owned(),
            slug: req.slug.trim().to_owned(),
            description: req.description.trim().to_owned(),
            icon_url: req.icon_url.trim().to_owned(),
            transport: req.transport.clone(),
            url: req.url.trim().to_owned(),
            auth_type: req.auth_type.clone(),
            oauth2_client_id: req.oauth2_client_id.trim().to_owned(),
            oauth2_client_secret: McpDraftSecret::from_request(req.oauth2_client_secret.as_ref()),
            oauth2_auth_url: req.oauth2_auth_url.trim().to_owned(),
            oauth2_token_url: req.oauth2_token_url.trim().to_owned(),
            oauth2_scopes: req.oauth2_scopes.trim().to_owned(),
            api_key_header: req.api_key_header.trim().to_owned(),
            api_key_value: McpDraftSecret::from_request(req.api_key_value.as_ref()),
            custom_headers: McpDraftHeaders::from_request(&req.custom_headers),
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
        };
        draft.normalize();
        draft
    }

    /// Applies a PATCH and normalizes the result: absent fields are kept; `""` clears
    /// optional strings and secrets (required ones then fail validation); lists, maps and
    /// headers are replaced whole.
    pub fn apply_update(&mut self, req: &UpdateMCPServerConfigRequest) {
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
            self.oauth2_client_secret =
                McpDraftSecret::from_request(req.oauth2_client_secret.as_ref());
        }
        if req.api_key_value.is_some() {
            self.api_key_value = McpDraftSecret::from_request(req.api_key_value.as_ref());
        }
        if let Some(map) = &req.custom_headers {
            self.custom_headers = McpDraftHeaders::from_request(map);
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
        self.normalize();
    }

    /// Clears what the authentication type does not use, so no secret is kept that nothing
    /// uses, and removes duplicate tool names (order kept).
    fn normalize(&mut self) {
        if self.auth_type != MCPServerAuthType::Oauth2 {
            self.oauth2_client_id.clear();
            self.oauth2_client_secret = McpDraftSecret::None;
            self.oauth2_auth_url.clear();
            self.oauth2_token_url.clear();
            self.oauth2_scopes.clear();
        }
        if self.auth_type != MCPServerAuthType::ApiKey {
            self.api_key_header.clear();
            self.api_key_value = McpDraftSecret::None;
        }
        if self.auth_type != MCPServerAuthType::CustomHeaders {
            self.custom_headers = McpDraftHeaders::None;
            self.custom_headers_user_keys.clear();
            self.custom_headers_user_key_descriptions.clear();
        }
        for list in [&mut self.tool_allow_list, &mut self.tool_deny_list] {
            let mut seen = BTreeSet::new();
            list.retain(|name| seen.insert(name.clone()));
        }
    }

    /// Whether validation needs the names of stored headers that have not been opened yet:
    /// user-supplied header names must not repeat an admin-set one. Pass them with
    /// [`McpServerDraft::set_stored_header_names`]; unopened names count as none.
    pub fn needs_stored_header_names(&self) -> bool {
        matches!(self.custom_headers, McpDraftHeaders::Stored { names: None })
            && !self.custom_headers_user_keys.is_empty()
    }

    /// Records the names of the stored headers (a no-op unless they are kept).
    pub fn set_stored_header_names(&mut self, stored: impl IntoIterator<Item = String>) {
        if let McpDraftHeaders::Stored { names } = &mut self.custom_headers {
            *names = Some(stored.into_iter().collect());
        }
    }

    /// Checks the whole configuration; every problem is reported, under the message
    /// [`INVALID_MCP_SERVER_MESSAGE`], except an OAuth2 server without any endpoint, which
    /// fails alone with [`MANUAL_OAUTH2_REQUIRED_MESSAGE`] (a server that can discover the
    /// endpoints does so before validating, see [`McpServerDraft::needs_oauth2_discovery`]).
    /// Secrets are never quoted.
    pub fn validate(self) -> Result<ValidatedMcpServerConfig, Response> {
        check(&self, Oauth2Endpoints::Required)?;
        Ok(ValidatedMcpServerConfig(self))
    }

    /// Whether this is an OAuth2 server with none of client id, authorization URL and
    /// token URL: the case in which a server tries to find them itself (protected-resource
    /// and authorization-server metadata, dynamic client registration) before validating.
    /// A partial set is never completed that way: it is the administrator's mistake.
    pub fn needs_oauth2_discovery(&self) -> bool {
        self.auth_type == MCPServerAuthType::Oauth2
            && self.oauth2_client_id.is_empty()
            && self.oauth2_auth_url.is_empty()
            && self.oauth2_token_url.is_empty()
    }

    /// Checks everything [`McpServerDraft::validate`] checks except that the OAuth2
    /// endpoints are present, so that a request with other problems is refused before the
    /// server reaches out to discover them. Validate the completed draft afterwards.
    pub fn check_before_discovery(&self) -> Result<(), Response> {
        check(self, Oauth2Endpoints::Pending)
    }
}

/// An MCP server configuration that passed [`McpServerDraft::validate`]: what a store
/// writes. Read its fields through [`ValidatedMcpServerConfig::draft`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedMcpServerConfig(McpServerDraft);

impl ValidatedMcpServerConfig {
    /// The validated configuration.
    pub fn draft(&self) -> &McpServerDraft {
        &self.0
    }

    /// The validated configuration, by value.
    pub fn into_draft(self) -> McpServerDraft {
        self.0
    }
}

impl std::ops::Deref for ValidatedMcpServerConfig {
    type Target = McpServerDraft;

    fn deref(&self) -> &McpServerDraft {
        &self.0
    }
}

/// Validates `POST /mcp/servers`: the request normalized as
/// [`McpServerDraft::from_create`] does, then checked as [`McpServerDraft::validate`] does.
pub fn validate_create_mcp_server_config(
    req: &CreateMCPServerConfigRequest,
) -> Result<ValidatedMcpServerConfig, Response> {
    McpServerDraft::from_create(req).validate()
}

/// A user's header values for one server, checked against the server's
/// `custom_headers_user_keys`: what `PUT /mcp/servers/{id}/user-headers` changes. Names
/// are spelt as the configuration lists them. `Debug` shows no value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpUserHeaderUpdate {
    /// Values to set, trimmed and non-empty.
    pub set: BTreeMap<String, SecretString>,
    /// Headers whose value is cleared (given as `""`).
    pub clear: BTreeSet<String>,
}

impl McpUserHeaderUpdate {
    /// The user's values after this update: given values replace stored ones, cleared ones
    /// go, others stay — except values of headers `user_keys` no longer lists (the
    /// administrator removed them), which are dropped.
    pub fn apply(
        &self,
        stored: BTreeMap<String, SecretString>,
        user_keys: &[String],
    ) -> BTreeMap<String, SecretString> {
        let mut merged: BTreeMap<String, SecretString> = stored
            .into_iter()
            .filter(|(name, _)| user_keys.contains(name) && !self.clear.contains(name))
            .collect();
        for (name, value) in &self.set {
            merged.insert(name.clone(), value.clone());
        }
        merged
    }
}

/// Validates `PUT /mcp/servers/{id}/user-headers` against the server's
/// `custom_headers_user_keys`: every name must be one of them (compared ignoring case, as
/// header names are, and kept in the listed spelling; a name given twice that way is
/// refused), and every value a header value (at most [`MAX_MCP_HEADER_VALUE_BYTES`] bytes
/// after trimming, no control characters); `""` clears a value. Values are never quoted.
/// The total after merging is checked by [`check_mcp_user_header_total`].
pub fn validate_mcp_user_header_values(
    user_keys: &[String],
    req: &UpdateMCPServerUserHeadersRequest,
) -> Result<McpUserHeaderUpdate, Response> {
    let mut p = Problems::default();
    let mut update = McpUserHeaderUpdate::default();
    if req.values.len() > MAX_MCP_USER_HEADER_KEYS {
        p.push(
            "values",
            format!(
                "{} header values were given; a server asks for at most \
                 {MAX_MCP_USER_HEADER_KEYS}.",
                req.values.len()
            ),
        );
        return p.finish(INVALID_MCP_USER_HEADERS_MESSAGE).map(|()| update);
    }
    for (name, value) in &req.values {
        let Some(listed) = user_keys
            .iter()
            .find(|k| k.eq_ignore_ascii_case(name.trim()))
        else {
            p.push(
                "values",
                format!(
                    "{} is not a header this server asks users for.",
                    quoted(name)
                ),
            );
            continue;
        };
        if update.set.contains_key(listed) || update.clear.contains(listed) {
            p.push(
                "values",
                format!(
                    "The header {} is given twice (names ignore case).",
                    quoted(listed)
                ),
            );
            continue;
        }
        let value = value.expose().trim();
        if value.is_empty() {
            update.clear.insert(listed.clone());
            continue;
        }
        let value = SecretString::from(value);
        if let Some(problem) = secret_problem(&value, MAX_MCP_HEADER_VALUE_BYTES) {
            p.push("values", format!("Header {}: {problem}", quoted(listed)));
            continue;
        }
        update.set.insert(listed.clone(), value);
    }
    p.finish(INVALID_MCP_USER_HEADERS_MESSAGE).map(|()| update)
}

/// Checks a user's merged header values ([`McpUserHeaderUpdate::apply`]) against
/// [`MAX_MCP_USER_HEADER_VALUES_BYTES`].
pub fn check_mcp_user_header_total(
    values: &BTreeMap<String, SecretString>,
) -> Result<(), Response> {
    let total: usize = values.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_MCP_USER_HEADER_VALUES_BYTES {
        return Err(
            Response::new(INVALID_MCP_USER_HEADERS_MESSAGE).with_validation(
                "values",
                format!(
                    "The header values take {total} bytes with their names; together they may \
                 take at most {MAX_MCP_USER_HEADER_VALUES_BYTES} bytes."
                ),
            ),
        );
    }
    Ok(())
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

/// Slugs: lowercase ASCII letters and digits in groups joined by single hyphens, at most
/// [`MAX_MCP_SLUG_LEN`] bytes.
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

fn url_problem(field: &str, url: &str, p: &mut Problems) {
    if let Err(reason) = validate_http_url(url) {
        p.push(field, format!("The URL {reason}."));
    }
}

fn tool_list_problems(field: &str, list: &[String], p: &mut Problems) {
    if list.len() > MAX_MCP_TOOL_FILTER_ENTRIES {
        p.push(
            field,
            format!(
                "{} tool names were given; at most {MAX_MCP_TOOL_FILTER_ENTRIES} are allowed.",
                list.len()
            ),
        );
        return;
    }
    for name in list {
        let bad = name.is_empty()
            || name.len() > MAX_MCP_TOOL_NAME_BYTES
            || name.chars().any(|c| c.is_whitespace() || c.is_control());
        if bad {
            p.push(
                field,
                format!(
                    "Tool names must be 1 to {MAX_MCP_TOOL_NAME_BYTES} bytes without spaces or \
                     control characters."
                ),
            );
            return;
        }
    }
}

/// Whether a draft without any OAuth2 endpoint is refused ([`McpServerDraft::validate`])
/// or still waiting for discovery ([`McpServerDraft::check_before_discovery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Oauth2Endpoints {
    Required,
    Pending,
}

/// Checks a normalized draft; every problem is reported. Secrets are never quoted.
fn check(d: &McpServerDraft, endpoints: Oauth2Endpoints) -> Result<(), Response> {
    let mut p = Problems::default();
    let name_chars = d.display_name.chars().count();
    if d.display_name.is_empty() {
        p.push("display_name", "A display name is required.");
    } else if name_chars > MAX_DISPLAY_NAME_RUNES {
        p.push(
            "display_name",
            format!(
                "The display name is {name_chars} characters long; it may be at most \
                 {MAX_DISPLAY_NAME_RUNES}."
            ),
        );
    } else if d.display_name.chars().any(char::is_control) {
        p.push(
            "display_name",
            "The display name must not contain control characters.",
        );
    }
    if let Some(problem) = slug_problem(&d.slug) {
        p.push("slug", problem);
    }
    let desc_chars = d.description.chars().count();
    if desc_chars > MAX_MCP_DESCRIPTION_CHARS {
        p.push(
            "description",
            format!(
                "The description is {desc_chars} characters long; it may be at most \
                 {MAX_MCP_DESCRIPTION_CHARS}."
            ),
        );
    } else if d.description.contains('\0') {
        p.push(
            "description",
            "The description must not contain NUL characters.",
        );
    }
    // Icons may be site-relative paths (`/icon/github.svg`), so only the shape is checked.
    if d.icon_url.len() > MAX_URL_BYTES
        || d.icon_url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        p.push(
            "icon_url",
            format!(
                "The icon URL must be at most {MAX_URL_BYTES} bytes without spaces or control \
                 characters."
            ),
        );
    }
    if d.transport.is_unknown() {
        p.push(
            "transport",
            "The transport must be \"streamable_http\" or \"sse\".",
        );
    }
    url_problem("url", &d.url, &mut p);
    if d.availability.is_unknown() {
        p.push(
            "availability",
            "The availability must be \"force_on\", \"default_on\" or \"default_off\".",
        );
    }
    tool_list_problems("tool_allow_list", &d.tool_allow_list, &mut p);
    tool_list_problems("tool_deny_list", &d.tool_deny_list, &mut p);
    match &d.auth_type {
        MCPServerAuthType::None | MCPServerAuthType::UserOidc => {}
        MCPServerAuthType::Oauth2 => check_oauth2(d, endpoints, &mut p)?,
        MCPServerAuthType::ApiKey => {
            if d.api_key_header.is_empty() {
                p.push(
                    "api_key_header",
                    "API key authentication needs the header that carries the key.",
                );
            } else if let Some(problem) = header_name_problem(&d.api_key_header) {
                p.push("api_key_header", problem);
            }
            match &d.api_key_value {
                McpDraftSecret::None => {
                    p.push("api_key_value", "API key authentication needs the key.");
                }
                McpDraftSecret::New(v) => {
                    if let Some(problem) = secret_problem(v, MAX_MCP_SECRET_BYTES) {
                        p.push("api_key_value", problem);
                    }
                }
                McpDraftSecret::Stored => {}
            }
        }
        MCPServerAuthType::CustomHeaders => check_headers(d, &mut p),
        _ => p.push(
            "auth_type",
            "The authentication type must be one of \"none\", \"oauth2\", \"api_key\", \
             \"custom_headers\" and \"user_oidc\".",
        ),
    }
    p.finish(INVALID_MCP_SERVER_MESSAGE)
}

/// OAuth2 needs client id, authorization URL and token URL together. None of them at all
/// is its own failure ([`MANUAL_OAUTH2_REQUIRED_MESSAGE`]), which replaces every other
/// problem of the request — unless discovery is still to come, when only the scopes and
/// the secret are checked.
fn check_oauth2(
    d: &McpServerDraft,
    endpoints: Oauth2Endpoints,
    p: &mut Problems,
) -> Result<(), Response> {
    if d.needs_oauth2_discovery() {
        if endpoints == Oauth2Endpoints::Required {
            return Err(Response::new(MANUAL_OAUTH2_REQUIRED_MESSAGE).with_detail(
                "The OAuth2 endpoints were not discovered; set oauth2_client_id, \
                 oauth2_auth_url and oauth2_token_url.",
            ));
        }
        check_oauth2_extras(d, p);
        return Ok(());
    }
    if d.oauth2_client_id.is_empty() {
        p.push(
            "oauth2_client_id",
            "OAuth2 needs a client id together with the authorization and token URLs.",
        );
    } else if let Some(problem) = plain_problem(&d.oauth2_client_id, MAX_MCP_OAUTH2_FIELD_BYTES) {
        p.push("oauth2_client_id", problem);
    }
    for (field, url) in [
        ("oauth2_auth_url", &d.oauth2_auth_url),
        ("oauth2_token_url", &d.oauth2_token_url),
    ] {
        if url.is_empty() {
            p.push(
                field,
                "OAuth2 needs the authorization and token URLs together with the client id.",
            );
        } else {
            url_problem(field, url, p);
        }
    }
    check_oauth2_extras(d, p);
    Ok(())
}

/// The OAuth2 fields besides the endpoints: the scopes and a new client secret.
fn check_oauth2_extras(d: &McpServerDraft, p: &mut Problems) {
    if let Some(problem) = plain_problem(&d.oauth2_scopes, MAX_MCP_OAUTH2_FIELD_BYTES) {
        p.push("oauth2_scopes", problem);
    }
    if let McpDraftSecret::New(v) = &d.oauth2_client_secret {
        if let Some(problem) = secret_problem(v, MAX_MCP_SECRET_BYTES) {
            p.push("oauth2_client_secret", problem);
        }
    }
}

/// Custom headers: at least one header, admin-set or user-supplied; names are HTTP
/// tokens, unique ignoring case, and a header is either admin-set or user-supplied.
fn check_headers(d: &McpServerDraft, p: &mut Problems) {
    if !d.custom_headers.is_some() && d.custom_headers_user_keys.is_empty() {
        p.push(
            "custom_headers",
            "Custom header authentication needs at least one header (set by the administrator \
             or supplied by each user).",
        );
        return;
    }
    let admin_names: Vec<String> = match &d.custom_headers {
        McpDraftHeaders::New(map) => {
            if map.len() > MAX_MCP_CUSTOM_HEADERS {
                p.push(
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
                p.push(
                    "custom_headers",
                    format!(
                        "The headers take {total} bytes; names and values together may take at \
                         most {MAX_MCP_CUSTOM_HEADERS_BYTES} bytes."
                    ),
                );
            }
            let mut seen = BTreeSet::new();
            for (name, value) in map {
                if let Some(problem) = header_name_problem(name) {
                    p.push("custom_headers", problem);
                } else if !seen.insert(name.to_ascii_lowercase()) {
                    p.push(
                        "custom_headers",
                        format!(
                            "The header {} is given twice (names ignore case).",
                            quoted(name)
                        ),
                    );
                }
                if value.is_empty() {
                    p.push(
                        "custom_headers",
                        format!("The header {} has an empty value.", quoted(name)),
                    );
                } else if let Some(problem) = secret_problem(value, MAX_MCP_HEADER_VALUE_BYTES) {
                    p.push(
                        "custom_headers",
                        format!("Header {}: {problem}", quoted(name)),
                    );
                }
            }
            map.keys().cloned().collect()
        }
        McpDraftHeaders::Stored { names } => names.clone().unwrap_or_default(),
        McpDraftHeaders::None => Vec::new(),
    };
    let keys = &d.custom_headers_user_keys;
    if keys.len() > MAX_MCP_USER_HEADER_KEYS {
        p.push(
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
        if let Some(problem) = header_name_problem(key) {
            p.push("custom_headers_user_keys", problem);
            continue;
        }
        let folded = key.to_ascii_lowercase();
        if !seen.insert(folded.clone()) {
            p.push(
                "custom_headers_user_keys",
                format!(
                    "The header {} is listed twice (names ignore case).",
                    quoted(key)
                ),
            );
        } else if admin_folded.contains(&folded) {
            p.push(
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
        p.push(
            "custom_headers_user_key_descriptions",
            "There are more descriptions than user-supplied headers; describe only headers \
             listed in custom_headers_user_keys.",
        );
        return;
    }
    for (key, description) in &d.custom_headers_user_key_descriptions {
        if !keys.iter().any(|k| k == key) {
            p.push(
                "custom_headers_user_key_descriptions",
                format!("{} is not one of custom_headers_user_keys.", quoted(key)),
            );
        }
        let chars = description.chars().count();
        if chars > MAX_MCP_HEADER_DESCRIPTION_CHARS || description.contains('\0') {
            p.push(
                "custom_headers_user_key_descriptions",
                format!(
                    "Descriptions may be at most {MAX_MCP_HEADER_DESCRIPTION_CHARS} characters \
                     without NUL characters."
                ),
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::validation::test_support::fields;
    use proptest::prelude::*;

    fn base() -> CreateMCPServerConfigRequest {
        serde_json::from_str(
            r#"{"display_name":"GitHub","slug":"github","transport":"streamable_http",
                "url":"https://mcp.example.com/mcp","auth_type":"none","availability":"default_on"}"#,
        )
        .unwrap()
    }

    fn check(req: &CreateMCPServerConfigRequest) -> Result<McpServerDraft, Response> {
        validate_create_mcp_server_config(req).map(ValidatedMcpServerConfig::into_draft)
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
        assert_eq!(err.message, INVALID_MCP_SERVER_MESSAGE);
        assert!(
            !err.to_string().contains("supersecret"),
            "secrets are never quoted"
        );
        assert!(!format!("{err:?}").contains("supersecret"));
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
    fn oauth2_without_endpoints_waits_for_discovery() {
        let mut r = base();
        r.auth_type = MCPServerAuthType::Oauth2;
        let d = McpServerDraft::from_create(&r);
        assert!(d.needs_oauth2_discovery());
        assert!(d.check_before_discovery().is_ok());
        // Validating without discovering is still refused as before.
        assert_eq!(
            d.clone().validate().unwrap_err().message,
            MANUAL_OAUTH2_REQUIRED_MESSAGE
        );
        // Other problems are reported before anything is discovered.
        r.url = "not a url".into();
        r.oauth2_scopes = "a\u{7}b".into();
        let d = McpServerDraft::from_create(&r);
        let err = d.check_before_discovery().unwrap_err();
        assert_eq!(err.message, INVALID_MCP_SERVER_MESSAGE);
        assert_eq!(fields(&err), ["url", "oauth2_scopes"]);
        // A partial set is never discovered: it stays the administrator's 400.
        let mut r = base();
        r.auth_type = MCPServerAuthType::Oauth2;
        r.oauth2_token_url = "https://idp.example.com/token".into();
        let d = McpServerDraft::from_create(&r);
        assert!(!d.needs_oauth2_discovery());
        assert_eq!(
            fields(&d.check_before_discovery().unwrap_err()),
            ["oauth2_client_id", "oauth2_auth_url"]
        );
        // Other authentication types never need it.
        assert!(!McpServerDraft::from_create(&base()).needs_oauth2_discovery());
    }

    fn header_update(values: &[(&str, &str)]) -> UpdateMCPServerUserHeadersRequest {
        UpdateMCPServerUserHeadersRequest {
            values: values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), SecretString::from(*v)))
                .collect(),
        }
    }

    #[test]
    fn user_header_values() {
        let keys = vec!["X-User-Token".to_owned(), "X-Team".to_owned()];
        // Names match ignoring case and take the listed spelling; "" clears.
        let u = validate_mcp_user_header_values(
            &keys,
            &header_update(&[("x-user-token", "  secret-1  "), ("X-Team", "")]),
        )
        .unwrap();
        assert_eq!(u.set.keys().collect::<Vec<_>>(), ["X-User-Token"]);
        assert_eq!(u.set["X-User-Token"].expose(), "secret-1");
        assert_eq!(u.clear.iter().collect::<Vec<_>>(), ["X-Team"]);
        // Merge: unlisted names stay, cleared ones go, names no longer listed are dropped.
        let stored = BTreeMap::from([
            ("X-Team".to_owned(), SecretString::from("a")),
            ("X-Gone".to_owned(), SecretString::from("b")),
        ]);
        let merged = u.apply(stored.clone(), &keys);
        assert_eq!(merged.keys().collect::<Vec<_>>(), ["X-User-Token"]);
        let none = McpUserHeaderUpdate::default().apply(stored, &keys);
        assert_eq!(none.keys().collect::<Vec<_>>(), ["X-Team"]);
        // Names the server does not ask for, twice-given names and bad values: 400s that
        // never quote a value.
        let err = validate_mcp_user_header_values(
            &keys,
            &header_update(&[
                ("X-Other", "v"),
                ("X-TEAM", "v"),
                ("x-team", "v"),
                ("X-User-Token", "line\nsupersecretvalue"),
            ]),
        )
        .unwrap_err();
        assert_eq!(err.message, INVALID_MCP_USER_HEADERS_MESSAGE);
        assert_eq!(fields(&err), ["values", "values", "values"]);
        assert!(!err.to_string().contains("supersecret"));
        assert!(validate_mcp_user_header_values(&[], &header_update(&[("X-A", "v")])).is_err());
        // A value at the limit passes, one byte over fails.
        let at = "v".repeat(MAX_MCP_HEADER_VALUE_BYTES);
        assert!(validate_mcp_user_header_values(&keys, &header_update(&[("X-Team", &at)])).is_ok());
        let over = "v".repeat(MAX_MCP_HEADER_VALUE_BYTES + 1);
        assert!(
            validate_mcp_user_header_values(&keys, &header_update(&[("X-Team", &over)])).is_err()
        );
        // More names than a server may ask for: one problem.
        let many: Vec<(String, String)> = (0..=MAX_MCP_USER_HEADER_KEYS)
            .map(|i| (format!("X-{i}"), "v".to_owned()))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let err = validate_mcp_user_header_values(&keys, &header_update(&many)).unwrap_err();
        assert_eq!(err.validations.len(), 1);
    }

    #[test]
    fn user_header_total_at_its_edge() {
        let name = "X-A".to_owned();
        let at = MAX_MCP_USER_HEADER_VALUES_BYTES - name.len();
        let values = BTreeMap::from([(name.clone(), SecretString::from("v".repeat(at)))]);
        assert!(check_mcp_user_header_total(&values).is_ok());
        let values = BTreeMap::from([(name, SecretString::from("v".repeat(at + 1)))]);
        let err = check_mcp_user_header_total(&values).unwrap_err();
        assert_eq!(fields(&err), ["values"]);
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
    fn defaults_trimming_and_duplicate_tools() {
        let mut r = base();
        r.display_name = "  GitHub  ".into();
        r.tool_allow_list = vec![" a ".into(), "b".into(), "a".into()];
        let d = check(&r).unwrap();
        assert_eq!(d.display_name, "GitHub");
        assert_eq!(d.tool_allow_list, ["a", "b"]);
        assert!(d.enabled && !d.model_intent && !d.allow_in_plan_mode);
        assert!(!d.forward_coder_headers);
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
    fn update_merges_and_clears() {
        let mut d = McpServerDraft::from_create(&base());
        d.apply_update(
            &serde_json::from_str(
                r#"{"auth_type":"api_key","api_key_header":"X-Key","api_key_value":"v","description":" d "}"#,
            )
            .unwrap(),
        );
        assert!(d.clone().validate().is_ok());
        assert_eq!(d.description, "d");
        d.apply_update(&serde_json::from_str(r#"{"api_key_value":""}"#).unwrap());
        assert_eq!(
            fields(&d.clone().validate().unwrap_err()),
            ["api_key_value"]
        );
        d.apply_update(&serde_json::from_str(r#"{"display_name":"","slug":"Bad"}"#).unwrap());
        assert_eq!(
            fields(&d.clone().validate().unwrap_err()),
            ["display_name", "slug", "api_key_value"]
        );
    }

    #[test]
    fn kept_secrets_and_stored_header_names() {
        // A kept API key satisfies "needs the key" without the draft ever holding it.
        let mut d = McpServerDraft::from_create(&base());
        d.auth_type = MCPServerAuthType::ApiKey;
        d.api_key_header = "X-Key".into();
        d.api_key_value = McpDraftSecret::Stored;
        assert!(d.clone().validate().is_ok());

        // Kept admin headers: their names are needed only when users supply headers too.
        let mut d = McpServerDraft::from_create(&base());
        d.auth_type = MCPServerAuthType::CustomHeaders;
        d.custom_headers = McpDraftHeaders::Stored { names: None };
        assert!(!d.needs_stored_header_names());
        assert!(d.clone().validate().is_ok());
        d.apply_update(
            &serde_json::from_str(r#"{"custom_headers_user_keys":["x-admin"]}"#).unwrap(),
        );
        assert!(d.needs_stored_header_names());
        d.set_stored_header_names(["X-Admin".to_owned()]);
        assert!(!d.needs_stored_header_names());
        assert_eq!(
            fields(&d.clone().validate().unwrap_err()),
            ["custom_headers_user_keys"]
        );
        d.apply_update(
            &serde_json::from_str(r#"{"custom_headers_user_keys":["X-User"]}"#).unwrap(),
        );
        assert!(d.validate().is_ok());
    }

    proptest! {
        #[test]
        fn mcp_validator_never_panics(s in any::<String>(), t in any::<String>(), auth in 0usize..6) {
            let mut r = base();
            r.display_name = s.clone();
            r.slug = t.clone();
            r.url = s.clone();
            r.icon_url = t.clone();
            r.auth_type = MCPServerAuthType::from_wire(["none", "oauth2", "api_key", "custom_headers", "user_oidc", &s][auth]);
            r.oauth2_client_id = t.clone();
            r.oauth2_auth_url = s.clone();
            r.api_key_header = s.clone();
            r.api_key_value = Some(t.as_str().into());
            r.custom_headers.insert(s.clone(), t.as_str().into());
            r.custom_headers_user_keys = vec![t.clone()];
            r.custom_headers_user_key_descriptions.insert(t.clone(), s.clone());
            r.tool_allow_list = vec![s.clone()];
            if let Err(e) = validate_create_mcp_server_config(&r) {
                prop_assert!(e.message == INVALID_MCP_SERVER_MESSAGE || e.message == MANUAL_OAUTH2_REQUIRED_MESSAGE);
            }
        }
    }
}
