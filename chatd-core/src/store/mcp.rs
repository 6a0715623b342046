//! MCP server configurations: what administrators store. The engine's MCP client
//! (`crate::mcp`, docs/mcp.md) reads them and their opened secrets at turn time.
//!
//! What may be stored is codersdk's decision: a request becomes a
//! [`codersdk::ValidatedMcpServerConfig`] there (shape, URLs, slug, authentication rules,
//! headers, tool lists; fields of other authentication types cleared). This module keeps the
//! SQL, the row mapping and the sealing. The administrator's secrets (OAuth2 client secret,
//! API key value, custom header values) are write-only: they are sealed with the [`Keyring`]
//! under associated data naming their row and column ([`mcp_secret_aad`]), and API views
//! carry only `has_*` flags. Updates are validated against the row as locked, like provider
//! updates, because the rules ("`api_key` needs a header and a value") depend on what is
//! already stored; a kept secret stays sealed as it is and is never opened for that.

use std::collections::BTreeMap;

use codersdk::{
    validate_create_mcp_server_config, CreateMCPServerConfigRequest, MCPServerAuthType,
    MCPServerAvailability, MCPServerConfig, MCPServerTransport, McpDraftHeaders, McpDraftSecret,
    McpServerDraft, SecretString, UpdateMCPServerConfigRequest, Uuid, ValidatedMcpServerConfig,
};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::finish_tx as finish;
use super::{get_bool, get_time, get_uuid, now_micros, parse_uuid, uuid_text, Dialect, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};
use crate::Keyring;

// The limits and messages of MCP validation, which moved to codersdk; re-exported so that
// `chatd_core::store::MAX_MCP_SLUG_LEN` and friends keep working.
pub use codersdk::{
    INVALID_MCP_SERVER_MESSAGE, MANUAL_OAUTH2_REQUIRED_MESSAGE, MAX_MCP_CUSTOM_HEADERS,
    MAX_MCP_CUSTOM_HEADERS_BYTES, MAX_MCP_DESCRIPTION_CHARS, MAX_MCP_HEADER_DESCRIPTION_CHARS,
    MAX_MCP_HEADER_NAME_BYTES, MAX_MCP_HEADER_VALUE_BYTES, MAX_MCP_OAUTH2_FIELD_BYTES,
    MAX_MCP_SECRET_BYTES, MAX_MCP_SLUG_LEN, MAX_MCP_TOOL_FILTER_ENTRIES, MAX_MCP_TOOL_NAME_BYTES,
    MAX_MCP_USER_HEADER_KEYS,
};

/// Which configurations [`Store::list_mcp_server_configs`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum McpServerFilter {
    /// Every configuration (administrators).
    All,
    /// Enabled ones only (what other users see).
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

/// A per-user secret [`Store::rotate_mcp_secrets`] could not re-seal; it is left as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpUserSecretRotationFailure {
    /// The server.
    pub server_id: Uuid,
    /// The user.
    pub user_id: Uuid,
    /// The column.
    pub column: super::McpUserSecretColumn,
    /// Why (the kinds of `Keyring::decrypt`).
    pub kind: ErrorKind,
    /// The key id the failure names, when there is one.
    pub key_id: Option<String>,
}

/// What [`Store::rotate_mcp_secrets`] did, over the configurations' secrets and the
/// per-user ones (header values, OAuth2 tokens, verifiers of authorizations in flight).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpSecretRotationReport {
    /// Secrets re-sealed under the active key.
    pub rotated: u64,
    /// Secrets the active key had already sealed (not decrypted).
    pub already_current: u64,
    /// Secrets changed by a concurrent write between the scan and the re-seal.
    pub changed_concurrently: u64,
    /// Configuration secrets that could not be re-sealed.
    pub failures: Vec<McpSecretRotationFailure>,
    /// Per-user secrets that could not be re-sealed.
    pub user_failures: Vec<McpUserSecretRotationFailure>,
}

impl McpSecretRotationReport {
    /// Whether every MCP secret is now sealed by the active key.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty() && self.user_failures.is_empty()
    }
}

// ---------------------------------------------------------------------------------------
// Row mapping
// ---------------------------------------------------------------------------------------

/// The sealed secrets of a stored row: what a draft's [`McpDraftSecret::Stored`] and
/// [`McpDraftHeaders::Stored`] stand for. None for a configuration being created.
#[derive(Debug, Clone, Default)]
struct Sealed {
    oauth2_client_secret: Option<String>,
    api_key: Option<String>,
    custom_headers: Option<String>,
}

impl Sealed {
    fn get(&self, column: McpSecretColumn) -> Option<&str> {
        match column {
            McpSecretColumn::OAuth2ClientSecret => self.oauth2_client_secret.as_deref(),
            McpSecretColumn::ApiKey => self.api_key.as_deref(),
            McpSecretColumn::CustomHeaders => self.custom_headers.as_deref(),
        }
    }
}

/// A stored row as a draft (secrets kept, header names not opened) and its sealed texts.
fn draft_from_row(row: &AnyRow) -> Result<(McpServerDraft, Sealed)> {
    let sealed_column = |col: McpSecretColumn| -> Result<Option<String>> {
        row.try_get::<Option<String>, _>(col.sql()).db()
    };
    let sealed = Sealed {
        oauth2_client_secret: sealed_column(McpSecretColumn::OAuth2ClientSecret)?,
        api_key: sealed_column(McpSecretColumn::ApiKey)?,
        custom_headers: sealed_column(McpSecretColumn::CustomHeaders)?,
    };
    let kept = |s: &Option<String>| {
        if s.is_some() {
            McpDraftSecret::Stored
        } else {
            McpDraftSecret::None
        }
    };
    let draft = McpServerDraft {
        display_name: row.try_get("display_name").db()?,
        slug: row.try_get("slug").db()?,
        description: row.try_get("description").db()?,
        icon_url: row.try_get("icon_url").db()?,
        transport: MCPServerTransport::from_wire(&row.try_get::<String, _>("transport").db()?),
        url: row.try_get("url").db()?,
        auth_type: MCPServerAuthType::from_wire(&row.try_get::<String, _>("auth_type").db()?),
        oauth2_client_id: row.try_get("oauth2_client_id").db()?,
        oauth2_client_secret: kept(&sealed.oauth2_client_secret),
        oauth2_auth_url: row.try_get("oauth2_auth_url").db()?,
        oauth2_token_url: row.try_get("oauth2_token_url").db()?,
        oauth2_scopes: row.try_get("oauth2_scopes").db()?,
        api_key_header: row.try_get("api_key_header").db()?,
        api_key_value: kept(&sealed.api_key),
        custom_headers: if sealed.custom_headers.is_some() {
            McpDraftHeaders::Stored { names: None }
        } else {
            McpDraftHeaders::None
        },
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
    };
    Ok((draft, sealed))
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
// Rows
// ---------------------------------------------------------------------------------------

const MCP_COLUMNS: &str = "id, display_name, slug, description, icon_url, transport, url, \
    auth_type, oauth2_client_id, oauth2_client_secret_sealed, oauth2_auth_url, \
    oauth2_token_url, oauth2_scopes, api_key_header, api_key_sealed, custom_headers_sealed, \
    custom_headers_user_keys, custom_headers_user_key_descriptions, tool_allow_list, \
    tool_deny_list, availability, enabled, model_intent, allow_in_plan_mode, \
    forward_coder_headers, created_at, updated_at";

fn config_from_row(row: &AnyRow) -> Result<MCPServerConfig> {
    let (d, _) = draft_from_row(row)?;
    Ok(MCPServerConfig {
        id: get_uuid(row, "id")?,
        // OAuth2 tokens are per user: `Admin` sets this for the caller. Other types need no
        // connection.
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

/// The sealed text a kept secret stands for; a draft that keeps a secret the row does not
/// have is refused rather than written without it.
fn kept(sealed: &Sealed, column: McpSecretColumn) -> Result<Option<String>> {
    match sealed.get(column) {
        Some(text) => Ok(Some(text.to_owned())),
        None => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "MCP server config keeps its stored {} but none is stored",
                column.aad_name()
            ),
        )),
    }
}

/// The sealed form of a draft secret: kept, sealed anew, or none.
fn seal_secret(
    secret: &McpDraftSecret,
    sealed: &Sealed,
    keyring: &Keyring,
    id: Uuid,
    column: McpSecretColumn,
) -> Result<Option<String>> {
    match secret {
        McpDraftSecret::None => Ok(None),
        McpDraftSecret::Stored => kept(sealed, column),
        McpDraftSecret::New(value) => Ok(Some(keyring.encrypt(
            value.expose().as_bytes(),
            mcp_secret_aad(id, column).as_bytes(),
        )?)),
    }
}

fn seal_headers(
    headers: &McpDraftHeaders,
    sealed: &Sealed,
    keyring: &Keyring,
    id: Uuid,
) -> Result<Option<String>> {
    match headers {
        McpDraftHeaders::None => Ok(None),
        McpDraftHeaders::Stored { .. } => kept(sealed, McpSecretColumn::CustomHeaders),
        McpDraftHeaders::New(map) => {
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

fn row_values(
    d: &ValidatedMcpServerConfig,
    sealed: &Sealed,
    keyring: &Keyring,
    id: Uuid,
) -> Result<RowValues> {
    Ok(RowValues {
        oauth2_client_secret: seal_secret(
            &d.oauth2_client_secret,
            sealed,
            keyring,
            id,
            McpSecretColumn::OAuth2ClientSecret,
        )?,
        api_key: seal_secret(
            &d.api_key_value,
            sealed,
            keyring,
            id,
            McpSecretColumn::ApiKey,
        )?,
        custom_headers: seal_headers(&d.custom_headers, sealed, keyring, id)?,
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
    /// Creates an MCP server configuration (`POST /mcp/servers`): validated by
    /// [`codersdk::validate_create_mcp_server_config`] (every problem reported per field,
    /// secrets never quoted, fields of other authentication types dropped), secrets sealed
    /// with `keyring`.
    ///
    /// [`ErrorKind::InvalidArgument`] with the validation `Response`;
    /// [`ErrorKind::Conflict`] when the slug is taken.
    pub async fn create_mcp_server_config(
        &self,
        req: &CreateMCPServerConfigRequest,
        keyring: &Keyring,
    ) -> Result<MCPServerConfig> {
        let draft = validate_create_mcp_server_config(req)
            .map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
        let created = self
            .insert_mcp_server_config(Uuid::new_v4(), &draft, keyring)
            .await;
        self.changed(created, crate::cluster::ConfigChange::McpServers)
    }

    /// Stores a validated configuration under `id` (chosen by the caller, because an
    /// OAuth2 client registered for the server names its callback URL, which holds the id).
    /// [`ErrorKind::Conflict`] when the slug or the id is taken.
    pub async fn insert_mcp_server_config(
        &self,
        id: Uuid,
        draft: &ValidatedMcpServerConfig,
        keyring: &Keyring,
    ) -> Result<MCPServerConfig> {
        let v = row_values(draft, &Sealed::default(), keyring, id)?;
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
            bind_row(sqlx::query(sqlx::AssertSqlSafe(sql)), id, draft, &v, now)
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
    /// flags; `auth_connected` is false for OAuth2 servers, because it is per user: the
    /// `Admin` handle sets it for the caller ([`Store::mcp_oauth2_connected_servers`]).
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

    /// The enabled servers whose availability is `default_on`, by slug: what a new chat
    /// uses when its request names no servers.
    pub async fn default_on_mcp_server_ids(&self) -> Result<Vec<Uuid>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM mcp_server_configs \
             WHERE enabled = 1 AND availability = 'default_on' ORDER BY slug",
        )
        .fetch_all(self.pool())
        .await
        .db()?;
        ids.iter().map(|id| parse_uuid(id)).collect()
    }

    /// The ids among `ids` that name no enabled MCP server configuration (never created,
    /// deleted or disabled), in the order given: what a chat's `mcp_server_ids` may not
    /// hold when a request sets it. Reads the enabled ids only (an administrator's short
    /// list), so a long request list costs no bind parameters.
    pub async fn unusable_mcp_server_ids(&self, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let enabled: Vec<String> =
            sqlx::query_scalar("SELECT id FROM mcp_server_configs WHERE enabled = 1")
                .fetch_all(self.pool())
                .await
                .db()?;
        let enabled: std::collections::HashSet<String> = enabled.into_iter().collect();
        Ok(ids
            .iter()
            .copied()
            .filter(|id| !enabled.contains(&uuid_text(*id)))
            .collect())
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
    /// `""` clears optional strings and secrets, lists and header maps are replaced whole
    /// ([`codersdk::McpServerDraft::apply_update`]); then the result is validated like a
    /// creation ([`codersdk::McpServerDraft::validate`]). Secrets not given are kept sealed as
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
            let (mut draft, sealed) = draft_from_row(&row)?;
            draft.apply_update(req);
            if draft.needs_stored_header_names() {
                if let Some(text) = &sealed.custom_headers {
                    draft.set_stored_header_names(open_headers(text, keyring, id)?.into_keys());
                }
            }
            let draft = draft
                .validate()
                .map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
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
            let v = row_values(&draft, &sealed, keyring, id)?;
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
        let committed = finish(tx, result).await;
        self.changed(committed, crate::cluster::ConfigChange::McpServers)?;
        self.get_mcp_server_config(id).await
    }

    /// Deletes an MCP server configuration and with it its sealed secrets, and (by the
    /// foreign keys' cascade) every user's header values, OAuth2 token and authorization in
    /// flight for it. Chats that name
    /// it in `mcp_server_ids` keep the id; whoever connects to servers skips unknown ones.
    /// [`ErrorKind::NotFound`] when it does not exist.
    pub async fn delete_mcp_server_config(&self, id: Uuid) -> Result<()> {
        let done = sqlx::query("DELETE FROM mcp_server_configs WHERE id = $1")
            .bind(uuid_text(id))
            .execute(self.writer())
            .await
            .db()?;
        if done.rows_affected() == 0 {
            return Err(mcp_not_found(id));
        }
        self.changed(Ok(()), crate::cluster::ConfigChange::McpServers)
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
    /// docs/secrets.md, next to `Store::rotate_secrets`) — the configurations' secrets and
    /// the per-user ones (header values, access and refresh tokens, verifiers of
    /// authorizations in flight; failures of those in `user_failures`): values the active key already
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
                    .execute(self.writer())
                    .await
                    .db()?;
                if swapped.rows_affected() == 1 {
                    report.rotated += 1;
                } else {
                    report.changed_concurrently += 1;
                }
            }
        }
        self.rotate_mcp_user_secrets(keyring, &mut report).await?;
        Ok(report)
    }
}

/// Binds a configuration row as `$1` (id) … `$26` (time), the order the insert's column
/// list and the update's assignments share.
fn bind_row<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    id: Uuid,
    draft: &'q ValidatedMcpServerConfig,
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sealed_headers_fit_the_keyring_however_escaped() {
        // Every value byte a quote doubles when written as JSON: still far below the cap.
        let keyring = Keyring::new("k", crate::SecretKey::generate().unwrap()).unwrap();
        let mut map = BTreeMap::new();
        let per = MAX_MCP_CUSTOM_HEADERS_BYTES / 2;
        map.insert("A".to_owned(), SecretString::from("\"".repeat(per - 1)));
        map.insert("B".to_owned(), SecretString::from("\\".repeat(per - 1)));
        let id = Uuid::new_v4();
        let sealed = seal_headers(
            &McpDraftHeaders::New(map.clone()),
            &Sealed::default(),
            &keyring,
            id,
        )
        .unwrap()
        .unwrap();
        assert_eq!(open_headers(&sealed, &keyring, id).unwrap(), map);
        // Bound to its row: another id cannot open it.
        assert!(open_headers(&sealed, &keyring, Uuid::new_v4()).is_err());
    }

    #[test]
    fn kept_secrets_are_written_back_sealed_as_they_were() {
        let keyring = Keyring::new("k", crate::SecretKey::generate().unwrap()).unwrap();
        let id = Uuid::new_v4();
        let stored = Sealed {
            api_key: Some("sealed-api-key".to_owned()),
            custom_headers: Some("sealed-headers".to_owned()),
            ..Sealed::default()
        };
        let column = McpSecretColumn::ApiKey;
        assert_eq!(
            seal_secret(&McpDraftSecret::Stored, &stored, &keyring, id, column).unwrap(),
            Some("sealed-api-key".to_owned())
        );
        let headers = McpDraftHeaders::Stored { names: None };
        assert_eq!(
            seal_headers(&headers, &stored, &keyring, id).unwrap(),
            Some("sealed-headers".to_owned())
        );
        // Keeping a secret the row does not have is refused, never written as none.
        let column = McpSecretColumn::OAuth2ClientSecret;
        let err = seal_secret(&McpDraftSecret::Stored, &stored, &keyring, id, column).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            seal_secret(&McpDraftSecret::None, &stored, &keyring, id, column).unwrap(),
            None
        );
        // A new secret is sealed under this row and column.
        let new = McpDraftSecret::New(SecretString::from("s3cret"));
        let text = seal_secret(&new, &stored, &keyring, id, column)
            .unwrap()
            .unwrap();
        let aad = mcp_secret_aad(id, column);
        let opened = keyring.decrypt_secret(&text, aad.as_bytes()).unwrap();
        assert_eq!(opened.expose(), "s3cret");
    }
}
