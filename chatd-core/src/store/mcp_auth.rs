//! Per-user MCP authentication at rest: each user's values for the headers a server's
//! configuration asks users for, each user's OAuth2 token for a server, and the OAuth2
//! authorizations in flight (docs/mcp-auth.md).
//!
//! Every secret — header values, access and refresh tokens, PKCE verifiers — is sealed with
//! the [`Keyring`] under associated data that names its table, column, server and user
//! ([`mcp_user_secret_aad`], [`mcp_oauth2_state_aad`]), so a sealed value copied to another
//! row fails to open. The `state` of an authorization is never stored: its row is keyed by
//! the SHA-256 of it, and [`Store::consume_mcp_oauth2_state`] deletes the row as it reads it
//! (single use). Rows go with the server configuration and with the user (foreign keys
//! with `ON DELETE CASCADE`, migration `0008_mcp_user_auth.sql`).
//!
//! This module checks no caller's rights: `Admin` decides who may see which server.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use codersdk::{
    check_mcp_user_header_total, validate_mcp_user_header_values, MCPServerAuthType, SecretString,
    Timestamp, UpdateMCPServerUserHeadersRequest, Uuid,
};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::finish_tx as finish;
use super::mcp::{McpSecretRotationReport, McpUserSecretRotationFailure};
use super::{get_uuid, now_micros, timestamp_from_micros, uuid_text, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};
use crate::Keyring;

/// How long an OAuth2 authorization may take, from the connect that created its state to
/// the callback that consumes it. The user signs in at the authorization server in
/// between; ten minutes is ample for that and short enough that a leaked state is soon
/// worthless.
pub const MCP_OAUTH2_STATE_TTL: Duration = Duration::from_secs(10 * 60);

/// Most OAuth2 authorizations one user may have in flight. A connect beyond it forgets the
/// user's oldest one (its callback will be refused), so repeated connects — a user
/// clicking twice, or a script — cannot grow the table without bound, and the user is
/// never locked out.
pub const MAX_MCP_OAUTH2_PENDING_STATES_PER_USER: usize = 10;

/// Longest `state` parameter [`Store::consume_mcp_oauth2_state`] looks up, in bytes. The
/// states this crate issues are far shorter; a longer one cannot be ours.
pub const MAX_MCP_OAUTH2_STATE_LEN: usize = 512;

/// Message of a callback whose `state` is unknown, already used, or another flow's.
pub const MCP_OAUTH2_STATE_INVALID_MESSAGE: &str =
    "The OAuth2 sign-in is unknown or was already used; connect to the MCP server again.";

/// Message of a callback whose `state` expired ([`MCP_OAUTH2_STATE_TTL`]).
pub const MCP_OAUTH2_STATE_EXPIRED_MESSAGE: &str =
    "The OAuth2 sign-in took too long and expired; connect to the MCP server again.";

/// A sealed column of the per-user tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum McpUserSecretColumn {
    /// `mcp_user_header_values.values_sealed`: one user's header values as a JSON object.
    HeaderValues,
    /// `mcp_user_oauth2_tokens.access_token_sealed`.
    AccessToken,
    /// `mcp_user_oauth2_tokens.refresh_token_sealed`.
    RefreshToken,
    /// `mcp_oauth2_states.pkce_verifier_sealed` (bound to its state as well, see
    /// [`mcp_oauth2_state_aad`]).
    PkceVerifier,
}

impl McpUserSecretColumn {
    /// Every sealed column of the per-user tables.
    pub const ALL: [McpUserSecretColumn; 4] = [
        McpUserSecretColumn::HeaderValues,
        McpUserSecretColumn::AccessToken,
        McpUserSecretColumn::RefreshToken,
        McpUserSecretColumn::PkceVerifier,
    ];

    fn table(self) -> &'static str {
        match self {
            McpUserSecretColumn::HeaderValues => "mcp_user_header_values",
            McpUserSecretColumn::AccessToken | McpUserSecretColumn::RefreshToken => {
                "mcp_user_oauth2_tokens"
            }
            McpUserSecretColumn::PkceVerifier => "mcp_oauth2_states",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            McpUserSecretColumn::HeaderValues => "values_sealed",
            McpUserSecretColumn::AccessToken => "access_token_sealed",
            McpUserSecretColumn::RefreshToken => "refresh_token_sealed",
            McpUserSecretColumn::PkceVerifier => "pkce_verifier_sealed",
        }
    }

    fn aad_name(self) -> &'static str {
        match self {
            McpUserSecretColumn::HeaderValues => "values",
            McpUserSecretColumn::AccessToken => "access_token",
            McpUserSecretColumn::RefreshToken => "refresh_token",
            McpUserSecretColumn::PkceVerifier => "pkce_verifier",
        }
    }
}

/// Associated data sealing secret `column` of user `user_id`'s row for MCP server
/// `server_id` (`<table>.<column>:<server>:<user>`). The verifier of an authorization in
/// flight is bound to its state too: [`mcp_oauth2_state_aad`].
pub fn mcp_user_secret_aad(server_id: Uuid, user_id: Uuid, column: McpUserSecretColumn) -> String {
    format!(
        "{}.{}:{}:{}",
        column.table(),
        column.aad_name(),
        uuid_text(server_id),
        uuid_text(user_id)
    )
}

/// Associated data sealing the PKCE verifier of the authorization whose state hashes to
/// `state_hash`, started by `user_id` for `server_id`.
pub fn mcp_oauth2_state_aad(state_hash: &str, server_id: Uuid, user_id: Uuid) -> String {
    format!(
        "{}:{state_hash}",
        mcp_user_secret_aad(server_id, user_id, McpUserSecretColumn::PkceVerifier)
    )
}

/// The stored form of an OAuth2 `state`: lowercase hex SHA-256.
pub fn hash_oauth2_state(state: &str) -> String {
    Sha256::digest(state.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A user's OAuth2 token for one MCP server. `Debug` shows no token ([`SecretString`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpOAuth2Token {
    /// The access token, sent as `Authorization: <type> <token>`.
    pub access_token: SecretString,
    /// The refresh token, when the authorization server gave one.
    pub refresh_token: Option<SecretString>,
    /// The token type the server named (`Bearer`; may be empty).
    pub token_type: String,
    /// When the access token expires, when the server said.
    pub expires_at: Option<Timestamp>,
    /// The scopes granted, space-separated (may be empty).
    pub scopes: String,
}

/// A new OAuth2 authorization in flight, for [`Store::create_mcp_oauth2_state`].
#[derive(Debug, Clone, Copy)]
pub struct NewMcpOAuth2State<'a> {
    /// The server.
    pub server_id: Uuid,
    /// The user who connects; only this user's callback may consume the state.
    pub user_id: Uuid,
    /// The `state` parameter (stored only as its hash).
    pub state: &'a SecretString,
    /// The PKCE code verifier (sealed).
    pub pkce_verifier: &'a SecretString,
    /// The callback URL named in the authorization request.
    pub redirect_uri: &'a str,
    /// Where to send the browser after the callback (`""` = nowhere).
    pub return_to: &'a str,
}

/// An OAuth2 authorization that was in flight, as [`Store::consume_mcp_oauth2_state`]
/// returns it (the row is gone). `Debug` shows no verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpOAuth2State {
    /// The server the authorization is for.
    pub server_id: Uuid,
    /// The user who started it.
    pub user_id: Uuid,
    /// The PKCE code verifier.
    pub pkce_verifier: SecretString,
    /// The callback URL the authorization request named.
    pub redirect_uri: String,
    /// Where to send the browser afterwards (`""` = nowhere).
    pub return_to: String,
    /// When it was started.
    pub created_at: Timestamp,
}

fn server_not_found(id: Uuid) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("MCP server config {id} not found"),
    )
}

fn micros_after(now: i64, d: Duration) -> i64 {
    now.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn seal_values(
    values: &BTreeMap<String, SecretString>,
    keyring: &Keyring,
    server_id: Uuid,
    user_id: Uuid,
) -> Result<String> {
    let plain: BTreeMap<&str, &str> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    // Zeroized when dropped: the JSON holds every value in clear.
    let json = crate::Zeroizing::new(serde_json::to_string(&plain).map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            "header values cannot be stored as JSON",
        )
    })?);
    keyring.encrypt(
        json.as_bytes(),
        mcp_user_secret_aad(server_id, user_id, McpUserSecretColumn::HeaderValues).as_bytes(),
    )
}

fn open_values(
    sealed: &str,
    keyring: &Keyring,
    server_id: Uuid,
    user_id: Uuid,
) -> Result<BTreeMap<String, SecretString>> {
    let bytes = keyring.decrypt(
        sealed,
        mcp_user_secret_aad(server_id, user_id, McpUserSecretColumn::HeaderValues).as_bytes(),
    )?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| {
        Error::new(
            ErrorKind::CorruptRow,
            "stored MCP user header values are not a JSON object of strings",
        )
    })?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, SecretString::from(v)))
        .collect())
}

fn json_list(text: &str, what: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|_| {
        Error::new(
            ErrorKind::CorruptRow,
            format!("stored {what} is not a JSON list of strings"),
        )
    })
}

impl Store {
    // -----------------------------------------------------------------------------------
    // Header values
    // -----------------------------------------------------------------------------------

    /// The names of the headers user `user_id` has a value for on server `server_id`, as
    /// stored (no secret is opened). Empty when none.
    pub async fn mcp_user_header_names(
        &self,
        server_id: Uuid,
        user_id: Uuid,
    ) -> Result<Vec<String>> {
        let names: Option<String> = sqlx::query_scalar(
            "SELECT header_names FROM mcp_user_header_values \
             WHERE mcp_server_config_id = $1 AND user_id = $2",
        )
        .bind(uuid_text(server_id))
        .bind(uuid_text(user_id))
        .fetch_optional(self.pool())
        .await
        .db()?;
        names
            .map(|n| json_list(&n, "mcp_user_header_values.header_names"))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Applies `PUT /mcp/servers/{id}/user-headers` for user `user_id`, under a lock on
    /// the server's row: the request is validated against the server's
    /// `custom_headers_user_keys` as they are now ([`codersdk::validate_mcp_user_header_values`]),
    /// merged with the stored values (given ones replace, `""` clears, others stay; values of
    /// headers no longer listed are dropped), checked against
    /// [`codersdk::MAX_MCP_USER_HEADER_VALUES_BYTES`] and sealed again — or the row is deleted
    /// when nothing is left. Returns the names that now have a value.
    ///
    /// [`ErrorKind::InvalidArgument`] with the validation `Response`;
    /// [`ErrorKind::NotFound`] when the server does not exist.
    pub async fn update_mcp_user_header_values(
        &self,
        server_id: Uuid,
        user_id: Uuid,
        request: &UpdateMCPServerUserHeadersRequest,
        keyring: &Keyring,
    ) -> Result<Vec<String>> {
        let now = now_micros();
        // SQLite's write transaction is exclusive. On PostgreSQL the server's row is locked:
        // two updates of one user (whose row may not exist yet, so it cannot be locked
        // itself) must not each merge into what the other has not written, and an
        // administrator's change of the listed names must not slip in between.
        let lock = match self.dialect() {
            super::Dialect::Sqlite => "",
            super::Dialect::Postgres => " FOR UPDATE",
        };
        let mut tx = self.begin_write().await?;
        let result = async {
            let sql = format!(
                "SELECT custom_headers_user_keys FROM mcp_server_configs WHERE id = $1{lock}"
            );
            let keys: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(uuid_text(server_id))
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or_else(|| server_not_found(server_id))?;
            let keys = json_list(&keys, "mcp_server_configs.custom_headers_user_keys")?;
            let update = validate_mcp_user_header_values(&keys, request)
                .map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
            let sql = "SELECT values_sealed FROM mcp_user_header_values \
                 WHERE mcp_server_config_id = $1 AND user_id = $2";
            let stored: Option<String> = sqlx::query_scalar(sql)
                .bind(uuid_text(server_id))
                .bind(uuid_text(user_id))
                .fetch_optional(&mut *tx)
                .await
                .db()?;
            let stored = match stored {
                Some(sealed) => open_values(&sealed, keyring, server_id, user_id)?,
                None => BTreeMap::new(),
            };
            let merged = update.apply(stored, &keys);
            check_mcp_user_header_total(&merged)
                .map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
            let names: Vec<String> = merged.keys().cloned().collect();
            if merged.is_empty() {
                sqlx::query(
                    "DELETE FROM mcp_user_header_values \
                     WHERE mcp_server_config_id = $1 AND user_id = $2",
                )
                .bind(uuid_text(server_id))
                .bind(uuid_text(user_id))
                .execute(&mut *tx)
                .await
                .db()?;
                return Ok(names);
            }
            let sealed = seal_values(&merged, keyring, server_id, user_id)?;
            let names_json = serde_json::to_string(&names).map_err(|_| {
                Error::new(ErrorKind::InvalidArgument, "header names cannot be stored")
            })?;
            sqlx::query(
                "INSERT INTO mcp_user_header_values (mcp_server_config_id, user_id, \
                 header_names, values_sealed, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (mcp_server_config_id, user_id) DO UPDATE SET \
                 header_names = excluded.header_names, values_sealed = excluded.values_sealed, \
                 updated_at = excluded.updated_at",
            )
            .bind(uuid_text(server_id))
            .bind(uuid_text(user_id))
            .bind(&names_json)
            .bind(&sealed)
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
            Ok(names)
        }
        .await;
        finish(tx, result).await
    }

    /// Deletes user `user_id`'s header values for server `server_id`; whether there were
    /// any.
    pub async fn delete_mcp_user_header_values(
        &self,
        server_id: Uuid,
        user_id: Uuid,
    ) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM mcp_user_header_values WHERE mcp_server_config_id = $1 AND user_id = $2",
        )
        .bind(uuid_text(server_id))
        .bind(uuid_text(user_id))
        .execute(self.writer())
        .await
        .db()?;
        Ok(done.rows_affected() > 0)
    }

    /// User `user_id`'s header values for server `server_id`, opened with `keyring`, for
    /// the MCP client that sends them; never for an API response. Only headers the server's
    /// configuration lists now are returned (a value for a header the administrator has
    /// since removed stays unsent); empty when the user set none or the server does not
    /// exist. A value that cannot be opened is an error, never "none".
    pub async fn mcp_user_header_values(
        &self,
        server_id: Uuid,
        user_id: Uuid,
        keyring: &Keyring,
    ) -> Result<BTreeMap<String, SecretString>> {
        let row = sqlx::query(
            "SELECT v.values_sealed, c.custom_headers_user_keys \
             FROM mcp_user_header_values v \
             JOIN mcp_server_configs c ON c.id = v.mcp_server_config_id \
             WHERE v.mcp_server_config_id = $1 AND v.user_id = $2",
        )
        .bind(uuid_text(server_id))
        .bind(uuid_text(user_id))
        .fetch_optional(self.pool())
        .await
        .db()?;
        let Some(row) = row else {
            return Ok(BTreeMap::new());
        };
        let sealed: String = row.try_get("values_sealed").db()?;
        let keys: String = row.try_get("custom_headers_user_keys").db()?;
        let keys = json_list(&keys, "mcp_server_configs.custom_headers_user_keys")?;
        let mut values = open_values(&sealed, keyring, server_id, user_id)?;
        values.retain(|name, _| keys.contains(name));
        Ok(values)
    }

    // -----------------------------------------------------------------------------------
    // OAuth2 tokens
    // -----------------------------------------------------------------------------------

    /// Stores user `user_id`'s token for server `server_id`, replacing any, sealed with
    /// `keyring`. [`ErrorKind::NotFound`] when the server or the user does not exist (any
    /// more: a server deleted during the sign-in).
    pub async fn save_mcp_oauth2_token(
        &self,
        server_id: Uuid,
        user_id: Uuid,
        token: &McpOAuth2Token,
        keyring: &Keyring,
    ) -> Result<()> {
        let seal = |column: McpUserSecretColumn, value: &SecretString| {
            keyring.encrypt(
                value.expose().as_bytes(),
                mcp_user_secret_aad(server_id, user_id, column).as_bytes(),
            )
        };
        let access = seal(McpUserSecretColumn::AccessToken, &token.access_token)?;
        let refresh = token
            .refresh_token
            .as_ref()
            .map(|r| seal(McpUserSecretColumn::RefreshToken, r))
            .transpose()?;
        let now = now_micros();
        sqlx::query(
            "INSERT INTO mcp_user_oauth2_tokens (mcp_server_config_id, user_id, \
             access_token_sealed, refresh_token_sealed, token_type, expires_at, scopes, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (mcp_server_config_id, user_id) DO UPDATE SET \
             access_token_sealed = excluded.access_token_sealed, \
             refresh_token_sealed = excluded.refresh_token_sealed, \
             token_type = excluded.token_type, expires_at = excluded.expires_at, \
             scopes = excluded.scopes, updated_at = excluded.updated_at",
        )
        .bind(uuid_text(server_id))
        .bind(uuid_text(user_id))
        .bind(&access)
        .bind(refresh.as_deref())
        .bind(&token.token_type)
        .bind(token.expires_at.map(super::timestamp_to_micros))
        .bind(&token.scopes)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(Error::from_sqlx)?;
        Ok(())
    }

    /// User `user_id`'s token for server `server_id`, opened with `keyring`; `None` when
    /// the user has none. For the component that connects; never for an API response.
    pub async fn mcp_oauth2_token(
        &self,
        server_id: Uuid,
        user_id: Uuid,
        keyring: &Keyring,
    ) -> Result<Option<McpOAuth2Token>> {
        let row = sqlx::query(
            "SELECT access_token_sealed, refresh_token_sealed, token_type, expires_at, scopes \
             FROM mcp_user_oauth2_tokens WHERE mcp_server_config_id = $1 AND user_id = $2",
        )
        .bind(uuid_text(server_id))
        .bind(uuid_text(user_id))
        .fetch_optional(self.pool())
        .await
        .db()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let open = |column: McpUserSecretColumn, sealed: &str| {
            keyring.decrypt_secret(
                sealed,
                mcp_user_secret_aad(server_id, user_id, column).as_bytes(),
            )
        };
        let access: String = row.try_get("access_token_sealed").db()?;
        let refresh: Option<String> = row.try_get("refresh_token_sealed").db()?;
        let expires_at: Option<i64> = row.try_get("expires_at").db()?;
        Ok(Some(McpOAuth2Token {
            access_token: open(McpUserSecretColumn::AccessToken, &access)?,
            refresh_token: refresh
                .map(|r| open(McpUserSecretColumn::RefreshToken, &r))
                .transpose()?,
            token_type: row.try_get("token_type").db()?,
            expires_at: expires_at.map(timestamp_from_micros).transpose()?,
            scopes: row.try_get("scopes").db()?,
        }))
    }

    /// Deletes user `user_id`'s token for server `server_id`; whether there was one.
    pub async fn delete_mcp_oauth2_token(&self, server_id: Uuid, user_id: Uuid) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM mcp_user_oauth2_tokens WHERE mcp_server_config_id = $1 AND user_id = $2",
        )
        .bind(uuid_text(server_id))
        .bind(uuid_text(user_id))
        .execute(self.writer())
        .await
        .db()?;
        Ok(done.rows_affected() > 0)
    }

    /// The servers user `user_id` holds an OAuth2 token for: what `auth_connected` says
    /// for OAuth2 servers in that user's listing.
    pub async fn mcp_oauth2_connected_servers(&self, user_id: Uuid) -> Result<HashSet<Uuid>> {
        let rows = sqlx::query(
            "SELECT mcp_server_config_id FROM mcp_user_oauth2_tokens WHERE user_id = $1",
        )
        .bind(uuid_text(user_id))
        .fetch_all(self.pool())
        .await
        .db()?;
        rows.iter()
            .map(|row| get_uuid(row, "mcp_server_config_id"))
            .collect()
    }

    /// Whether user `user_id` holds an OAuth2 token for server `server_id`.
    pub async fn has_mcp_oauth2_token(&self, server_id: Uuid, user_id: Uuid) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM mcp_user_oauth2_tokens WHERE mcp_server_config_id = $1 AND user_id = $2",
        )
        .bind(uuid_text(server_id))
        .bind(uuid_text(user_id))
        .fetch_optional(self.pool())
        .await
        .db()?;
        Ok(found.is_some())
    }

    /// `auth_connected` of `config` for user `user_id`: true unless it is an OAuth2 server
    /// the user holds no token for.
    pub(crate) async fn mcp_auth_connected(
        &self,
        config: &codersdk::MCPServerConfig,
        user_id: Uuid,
    ) -> Result<bool> {
        if config.auth_type != MCPServerAuthType::Oauth2 {
            return Ok(true);
        }
        self.has_mcp_oauth2_token(config.id, user_id).await
    }

    // -----------------------------------------------------------------------------------
    // Authorizations in flight
    // -----------------------------------------------------------------------------------

    /// Records an OAuth2 authorization in flight, expiring after
    /// [`MCP_OAUTH2_STATE_TTL`]: the state's hash, the sealed verifier, the callback URL.
    /// In the same transaction, expired authorizations of every user are deleted and the
    /// user's oldest ones beyond [`MAX_MCP_OAUTH2_PENDING_STATES_PER_USER`] are forgotten.
    /// [`ErrorKind::NotFound`] when the server or the user does not exist.
    pub async fn create_mcp_oauth2_state(
        &self,
        new: NewMcpOAuth2State<'_>,
        keyring: &Keyring,
    ) -> Result<()> {
        let hash = hash_oauth2_state(new.state.expose());
        let sealed = keyring.encrypt(
            new.pkce_verifier.expose().as_bytes(),
            mcp_oauth2_state_aad(&hash, new.server_id, new.user_id).as_bytes(),
        )?;
        let now = now_micros();
        let keep = i64::try_from(MAX_MCP_OAUTH2_PENDING_STATES_PER_USER.saturating_sub(1))
            .unwrap_or(i64::MAX);
        let mut tx = self.begin_write().await?;
        let result = async {
            sqlx::query("DELETE FROM mcp_oauth2_states WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await
                .db()?;
            sqlx::query(
                "DELETE FROM mcp_oauth2_states WHERE user_id = $1 AND state_hash NOT IN \
                 (SELECT state_hash FROM mcp_oauth2_states WHERE user_id = $1 \
                 ORDER BY created_at DESC, state_hash LIMIT $2)",
            )
            .bind(uuid_text(new.user_id))
            .bind(keep)
            .execute(&mut *tx)
            .await
            .db()?;
            sqlx::query(
                "INSERT INTO mcp_oauth2_states (state_hash, mcp_server_config_id, user_id, \
                 pkce_verifier_sealed, redirect_uri, return_to, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&hash)
            .bind(uuid_text(new.server_id))
            .bind(uuid_text(new.user_id))
            .bind(&sealed)
            .bind(new.redirect_uri)
            .bind(new.return_to)
            .bind(now)
            .bind(micros_after(now, MCP_OAUTH2_STATE_TTL))
            .execute(&mut *tx)
            .await
            .map_err(Error::from_sqlx)?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    /// Takes the authorization whose state is `state`: deletes its row and returns it, in
    /// one statement, so a state is used at most once even by concurrent callbacks. The
    /// caller checks that it belongs to the server and the user of the callback.
    ///
    /// [`ErrorKind::InvalidArgument`] with [`MCP_OAUTH2_STATE_INVALID_MESSAGE`] when no such
    /// authorization is in flight (never issued, used, forgotten, or longer than
    /// [`MAX_MCP_OAUTH2_STATE_LEN`]), with [`MCP_OAUTH2_STATE_EXPIRED_MESSAGE`] when it
    /// expired (it is deleted all the same).
    pub async fn consume_mcp_oauth2_state(
        &self,
        state: &str,
        keyring: &Keyring,
    ) -> Result<McpOAuth2State> {
        let invalid = || Error::new(ErrorKind::InvalidArgument, MCP_OAUTH2_STATE_INVALID_MESSAGE);
        if state.is_empty() || state.len() > MAX_MCP_OAUTH2_STATE_LEN {
            return Err(invalid());
        }
        let hash = hash_oauth2_state(state);
        let row = sqlx::query(
            "DELETE FROM mcp_oauth2_states WHERE state_hash = $1 RETURNING \
             mcp_server_config_id, user_id, pkce_verifier_sealed, redirect_uri, return_to, \
             created_at, expires_at",
        )
        .bind(&hash)
        .fetch_optional(self.writer())
        .await
        .db()?
        .ok_or_else(invalid)?;
        let expires_at: i64 = row.try_get("expires_at").db()?;
        if expires_at <= now_micros() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                MCP_OAUTH2_STATE_EXPIRED_MESSAGE,
            ));
        }
        let server_id = get_uuid(&row, "mcp_server_config_id")?;
        let user_id = get_uuid(&row, "user_id")?;
        let sealed: String = row.try_get("pkce_verifier_sealed").db()?;
        Ok(McpOAuth2State {
            server_id,
            user_id,
            pkce_verifier: keyring.decrypt_secret(
                &sealed,
                mcp_oauth2_state_aad(&hash, server_id, user_id).as_bytes(),
            )?,
            redirect_uri: row.try_get("redirect_uri").db()?,
            return_to: row.try_get("return_to").db()?,
            created_at: timestamp_from_micros(row.try_get("created_at").db()?)?,
        })
    }

    // -----------------------------------------------------------------------------------
    // Rotation
    // -----------------------------------------------------------------------------------

    /// Re-seals every per-user MCP secret under the keyring's active key, into `report`
    /// (the second half of [`Store::rotate_mcp_secrets`], with its contract).
    pub(super) async fn rotate_mcp_user_secrets(
        &self,
        keyring: &Keyring,
        report: &mut McpSecretRotationReport,
    ) -> Result<()> {
        for column in McpUserSecretColumn::ALL {
            let (table, col) = (column.table(), column.sql());
            let state = column == McpUserSecretColumn::PkceVerifier;
            let key = if state { ", state_hash" } else { "" };
            let sql = format!(
                "SELECT mcp_server_config_id, user_id{key}, {col} AS sealed FROM {table} \
                 WHERE {col} IS NOT NULL ORDER BY mcp_server_config_id, user_id"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(self.pool())
                .await
                .db()?;
            for row in &rows {
                let server_id = get_uuid(row, "mcp_server_config_id")?;
                let user_id = get_uuid(row, "user_id")?;
                let state_hash: Option<String> = if state {
                    Some(row.try_get("state_hash").db()?)
                } else {
                    None
                };
                let aad = match &state_hash {
                    Some(hash) => mcp_oauth2_state_aad(hash, server_id, user_id),
                    None => mcp_user_secret_aad(server_id, user_id, column),
                };
                let sealed: String = row.try_get("sealed").db()?;
                let resealed = match keyring.rotate(&sealed, aad.as_bytes()) {
                    Ok(Some(text)) => text,
                    Ok(None) => {
                        report.already_current += 1;
                        continue;
                    }
                    Err(e) => {
                        report.user_failures.push(McpUserSecretRotationFailure {
                            server_id,
                            user_id,
                            column,
                            kind: e.kind(),
                            key_id: e.key_id().map(str::to_owned),
                        });
                        continue;
                    }
                };
                let swapped = match &state_hash {
                    Some(hash) => {
                        let sql = format!(
                            "UPDATE {table} SET {col} = $2 WHERE state_hash = $1 AND {col} = $3"
                        );
                        sqlx::query(sqlx::AssertSqlSafe(sql))
                            .bind(hash)
                            .bind(&resealed)
                            .bind(&sealed)
                            .execute(self.writer())
                            .await
                            .db()?
                    }
                    None => {
                        let sql = format!(
                            "UPDATE {table} SET {col} = $3 WHERE mcp_server_config_id = $1 \
                             AND user_id = $2 AND {col} = $4"
                        );
                        sqlx::query(sqlx::AssertSqlSafe(sql))
                            .bind(uuid_text(server_id))
                            .bind(uuid_text(user_id))
                            .bind(&resealed)
                            .bind(&sealed)
                            .execute(self.writer())
                            .await
                            .db()?
                    }
                };
                if swapped.rows_affected() == 1 {
                    report.rotated += 1;
                } else {
                    report.changed_concurrently += 1;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn state_hashes_are_hex_sha256_and_aad_names_the_row() {
        let h = hash_oauth2_state("abc");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (s, u) = (Uuid::new_v4(), Uuid::new_v4());
        let aad = mcp_user_secret_aad(s, u, McpUserSecretColumn::AccessToken);
        assert_eq!(aad, format!("mcp_user_oauth2_tokens.access_token:{s}:{u}"));
        assert_ne!(
            aad,
            mcp_user_secret_aad(u, s, McpUserSecretColumn::AccessToken),
            "server and user are not interchangeable"
        );
        assert!(mcp_oauth2_state_aad(&h, s, u).ends_with(&h));
    }

    #[test]
    fn sealed_values_open_only_for_their_row() {
        let keyring = Keyring::new("k", crate::SecretKey::generate().unwrap()).unwrap();
        let (s, u) = (Uuid::new_v4(), Uuid::new_v4());
        let values = BTreeMap::from([("X-Token".to_owned(), SecretString::from("v\"\\"))]);
        let sealed = seal_values(&values, &keyring, s, u).unwrap();
        assert_eq!(open_values(&sealed, &keyring, s, u).unwrap(), values);
        assert!(open_values(&sealed, &keyring, s, Uuid::new_v4()).is_err());
    }
}
