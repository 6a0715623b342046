//! API tokens: random secrets handed to a user once, stored only as a SHA-256 hash, with a
//! name, a creation time, a last-use time kept to within [`LAST_USED_RESOLUTION`], an
//! optional expiry and revocation (docs/api-tokens.md).

use std::time::Duration;

use codersdk::{SecretString, Timestamp, Uuid};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{
    get_time, get_uuid, now_micros, timestamp_from_micros, uuid_text, Dialect, Store, User,
};
use crate::error::{DbResultExt, Error, ErrorKind, Result};
use crate::role::Role;

/// A token's last use is written at most once per this interval: authentication reads
/// the token on every request, but writing on every request would turn every read into a
/// write. Listings show the last use to within this.
pub const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// The answer for a token id the user does not have (HTTP 404).
pub const TOKEN_NOT_FOUND_MESSAGE: &str = "API token not found.";

/// The answer for revoking the last token of the administrators (HTTP 409).
pub const LAST_ADMIN_TOKEN_MESSAGE: &str =
    "This is the last API token of an administrator; create another administrator token \
     before revoking it.";

/// An API token as stored, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiToken {
    /// The token's id.
    pub id: Uuid,
    /// Whose token it is.
    pub user_id: Uuid,
    /// Its name, unique per user case-insensitively.
    pub name: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last authentication, to within [`LAST_USED_RESOLUTION`]; `None` when never used.
    pub last_used_at: Option<Timestamp>,
    /// When it stops working; `None` when never.
    pub expires_at: Option<Timestamp>,
}

impl ApiToken {
    /// The wire form (Coder's `APIKey`).
    pub fn to_api_key(&self) -> codersdk::APIKey {
        let lifetime_seconds = self
            .expires_at
            .map(|e| (e.0 - self.created_at.0).num_seconds())
            .unwrap_or(0);
        codersdk::APIKey {
            id: self.id,
            user_id: self.user_id,
            last_used: self.last_used_at.unwrap_or_else(Timestamp::go_zero),
            expires_at: self.expires_at,
            created_at: self.created_at,
            updated_at: self.last_used_at.unwrap_or(self.created_at),
            login_type: codersdk::LoginType::Token,
            scope: codersdk::TOKEN_SCOPE_ALL.to_owned(),
            token_name: self.name.clone(),
            lifetime_seconds,
        }
    }
}

/// What a new token is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewApiToken {
    /// Its name; `None`: `token-` and the first characters of its id.
    pub name: Option<String>,
    /// How long it works; `None`: until revoked.
    pub lifetime: Option<Duration>,
}

impl NewApiToken {
    /// A token named `name` (or a made-up name) living for `lifetime` (or for ever).
    pub fn new(name: Option<String>, lifetime: Option<Duration>) -> Self {
        NewApiToken { name, lifetime }
    }
}

/// What a presented token is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenCheck {
    /// A live token of `user`.
    Valid {
        /// Its owner.
        user: User,
        /// The token's id.
        token_id: Uuid,
    },
    /// A token whose expiry has passed.
    Expired {
        /// When it expired.
        expired_at: Timestamp,
    },
    /// A revoked token.
    Revoked,
    /// Not a token of this server (or empty, or over [`MAX_API_TOKEN_LEN`]).
    Unknown,
}

/// The name a token gets when none is given.
fn default_token_name(id: Uuid) -> String {
    let text = uuid_text(id);
    format!("token-{}", text.get(..8).unwrap_or(&text))
}

fn token_from_row(row: &sqlx::any::AnyRow) -> Result<ApiToken> {
    let opt_time = |col: &str| -> Result<Option<Timestamp>> {
        row.try_get::<Option<i64>, _>(col)
            .db()?
            .map(timestamp_from_micros)
            .transpose()
    };
    Ok(ApiToken {
        id: get_uuid(row, "id")?,
        user_id: get_uuid(row, "user_id")?,
        name: row.try_get("token_name").db()?,
        created_at: get_time(row, "created_at")?,
        last_used_at: opt_time("last_used_at")?,
        expires_at: opt_time("expires_at")?,
    })
}

const TOKEN_COLUMNS: &str = "id, user_id, token_name, created_at, last_used_at, expires_at";

/// Prefix of every token this store issues, so a leaked token is recognizable in logs and
/// secret scanners.
pub const API_TOKEN_PREFIX: &str = "chatd_";

/// Random bytes in a token (256 bits).
pub const API_TOKEN_BYTES: usize = 32;

/// Longest presented token [`Store::authenticate_token`] hashes; longer input is refused
/// without hashing so a client cannot make the server hash megabytes per request.
pub const MAX_API_TOKEN_LEN: usize = 256;

/// The stored form of a token: lowercase hex SHA-256 of its text.
pub fn hash_api_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

impl Store {
    /// Issues a new API token for `user_id` that never expires, with a made-up name, and
    /// returns it; only its hash is stored, so it cannot be shown again.
    /// [`crate::ErrorKind::NotFound`] when the user does not exist.
    pub async fn create_api_token(&self, user_id: Uuid) -> Result<SecretString> {
        Ok(self
            .issue_api_token(user_id, NewApiToken::default())
            .await?
            .1)
    }

    /// Issues a new API token for `user_id` as `new` describes; returns what is stored and
    /// the secret, shown once. [`ErrorKind::Conflict`] when the user already has a token
    /// of that name (compared case-insensitively), [`ErrorKind::NotFound`] when the user
    /// does not exist.
    pub async fn issue_api_token(
        &self,
        user_id: Uuid,
        new: NewApiToken,
    ) -> Result<(ApiToken, SecretString)> {
        let mut bytes = [0u8; API_TOKEN_BYTES];
        crate::secrets::fill_random(&mut bytes)?;
        let mut token = String::from(API_TOKEN_PREFIX);
        for byte in bytes {
            token.push_str(&format!("{byte:02x}"));
        }
        let id = Uuid::new_v4();
        let name = new.name.unwrap_or_else(|| default_token_name(id));
        let now = now_micros();
        let expires_at = match new.lifetime {
            None => None,
            Some(lifetime) => {
                let micros = i64::try_from(lifetime.as_micros()).ok();
                Some(micros.and_then(|m| now.checked_add(m)).ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        "The token lifetime is too long.",
                    )
                })?)
            }
        };
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT id FROM api_tokens WHERE user_id = $1 AND lower(token_name) = lower($2)",
        )
        .bind(uuid_text(user_id))
        .bind(&name)
        .fetch_optional(self.pool())
        .await
        .db()?;
        if taken.is_some() {
            return Err(name_taken(&name));
        }
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, token_hash, created_at, token_name, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid_text(id))
        .bind(uuid_text(user_id))
        .bind(hash_api_token(&token))
        .bind(now)
        .bind(&name)
        .bind(expires_at)
        .execute(self.writer())
        .await
        .db()
        .map_err(|e| match e.kind() {
            // Another request took the name between the check and the insert.
            ErrorKind::Conflict => name_taken(&name),
            _ => e,
        })?;
        let stored = ApiToken {
            id,
            user_id,
            name,
            created_at: timestamp_from_micros(now)?,
            last_used_at: None,
            expires_at: expires_at.map(timestamp_from_micros).transpose()?,
        };
        Ok((stored, SecretString::from(token)))
    }

    /// Stores a token chosen by the operator (for example the admin token from the
    /// environment), hashed, never expiring. Storing the same token again is a no-op, and
    /// a revoked one stays revoked; returns what the token is afterwards.
    pub async fn insert_api_token(&self, user_id: Uuid, token: &str) -> Result<TokenCheck> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, token_hash, created_at, token_name) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(uuid_text(id))
        .bind(uuid_text(user_id))
        .bind(hash_api_token(token))
        .bind(now_micros())
        .bind(default_token_name(id))
        .execute(self.writer())
        .await
        .db()?;
        self.check_api_token(token).await
    }

    /// The user a presented token belongs to; `None` for an unknown, empty, over-long,
    /// expired or revoked token ([`Store::check_api_token`] says which).
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<User>> {
        Ok(match self.check_api_token(token).await? {
            TokenCheck::Valid { user, .. } => Some(user),
            _ => None,
        })
    }

    /// What a presented token is. Every call reads the database, so a revocation or an
    /// expiry holds at once on every server sharing it. A live token's last use is
    /// written when the stored one is older than [`LAST_USED_RESOLUTION`] (conditionally,
    /// so concurrent requests and other servers write it once).
    pub async fn check_api_token(&self, token: &str) -> Result<TokenCheck> {
        if token.is_empty() || token.len() > MAX_API_TOKEN_LEN {
            return Ok(TokenCheck::Unknown);
        }
        let row = sqlx::query(
            "SELECT t.id AS token_id, t.last_used_at, t.expires_at, t.revoked_at, \
             u.id, u.username, u.name, u.role, u.created_at FROM api_tokens t \
             JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(hash_api_token(token))
        .fetch_optional(self.pool())
        .await
        .db()?;
        let Some(row) = row else {
            return Ok(TokenCheck::Unknown);
        };
        if row.try_get::<Option<i64>, _>("revoked_at").db()?.is_some() {
            return Ok(TokenCheck::Revoked);
        }
        let now = now_micros();
        if let Some(expires_at) = row.try_get::<Option<i64>, _>("expires_at").db()? {
            if expires_at <= now {
                return Ok(TokenCheck::Expired {
                    expired_at: timestamp_from_micros(expires_at)?,
                });
            }
        }
        let token_id = get_uuid(&row, "token_id")?;
        let resolution = i64::try_from(LAST_USED_RESOLUTION.as_micros()).unwrap_or(i64::MAX);
        let stale_before = now.saturating_sub(resolution);
        let last_used = row.try_get::<Option<i64>, _>("last_used_at").db()?;
        if last_used.is_none_or(|t| t < stale_before) {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 \
                 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(uuid_text(token_id))
            .bind(now)
            .bind(stale_before)
            .execute(self.writer())
            .await
            .db()?;
        }
        Ok(TokenCheck::Valid {
            user: user_from_row(&row)?,
            token_id,
        })
    }

    /// The live (not revoked) tokens of `user_id`, expired ones included, oldest first.
    pub async fn list_api_tokens(&self, user_id: Uuid) -> Result<Vec<ApiToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL \
             ORDER BY created_at, id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(user_id))
            .fetch_all(self.pool())
            .await
            .db()?
            .iter()
            .map(token_from_row)
            .collect()
    }

    /// Token `id` of `user_id`; `None` when the user has no such (unrevoked) token.
    pub async fn get_api_token(&self, user_id: Uuid, id: Uuid) -> Result<Option<ApiToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens \
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(id))
            .bind(uuid_text(user_id))
            .fetch_optional(self.pool())
            .await
            .db()?
            .map(|r| token_from_row(&r))
            .transpose()
    }

    /// Revokes token `id` of `user_id`: from the next request on, on every server sharing
    /// the database, it authenticates nothing. [`ErrorKind::NotFound`]
    /// ([`TOKEN_NOT_FOUND_MESSAGE`]) when the user has no such token;
    /// [`ErrorKind::Conflict`] ([`LAST_ADMIN_TOKEN_MESSAGE`]) when it is the last live
    /// token of any administrator, which would lock every administrator out. The
    /// administrators' tokens are locked while this is decided, so two revocations cannot
    /// both take the last two.
    pub async fn revoke_api_token(&self, user_id: Uuid, id: Uuid) -> Result<()> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            let lock = match self.dialect() {
                Dialect::Sqlite => "",
                Dialect::Postgres => " FOR UPDATE OF t",
            };
            let sql = format!(
                "SELECT t.id FROM api_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE u.role = $1 AND t.revoked_at IS NULL \
                 AND (t.expires_at IS NULL OR t.expires_at > $2) ORDER BY t.id{lock}"
            );
            let admin_tokens: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(Role::Admin.as_str())
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .db()?;
            let lock = match self.dialect() {
                Dialect::Sqlite => "",
                Dialect::Postgres => " FOR UPDATE",
            };
            let sql = format!(
                "SELECT id FROM api_tokens WHERE id = $1 AND user_id = $2 \
                 AND revoked_at IS NULL{lock}"
            );
            let found: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(uuid_text(id))
                .bind(uuid_text(user_id))
                .fetch_optional(&mut *tx)
                .await
                .db()?;
            let Some(found) = found else {
                return Err(Error::new(ErrorKind::NotFound, TOKEN_NOT_FOUND_MESSAGE));
            };
            if admin_tokens.len() == 1 && admin_tokens.contains(&found) {
                return Err(Error::new(ErrorKind::Conflict, LAST_ADMIN_TOKEN_MESSAGE));
            }
            sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1")
                .bind(uuid_text(id))
                .bind(now)
                .execute(&mut *tx)
                .await
                .db()?;
            Ok(())
        }
        .await;
        super::finish_tx(tx, result).await
    }

    /// The user with `id`; `None` when it does not exist.
    pub async fn get_user(&self, id: Uuid) -> Result<Option<User>> {
        let row =
            sqlx::query("SELECT id, username, name, role, created_at FROM users WHERE id = $1")
                .bind(uuid_text(id))
                .fetch_optional(self.pool())
                .await
                .db()?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    /// The user named `username`; `None` when there is none.
    pub async fn get_user_by_username(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT id, username, name, role, created_at FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(self.pool())
        .await
        .db()?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    /// The organization named `name`; `None` when there is none.
    pub async fn get_organization_by_name(
        &self,
        name: &str,
    ) -> Result<Option<super::Organization>> {
        let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .db()?;
        row.map(|r| {
            Ok(super::Organization {
                id: get_uuid(&r, "id")?,
                name: r.try_get("name").db()?,
                created_at: get_time(&r, "created_at")?,
            })
        })
        .transpose()
    }
}

fn name_taken(name: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("An API token named {name:?} already exists."),
    )
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<User> {
    Ok(User {
        id: get_uuid(row, "id")?,
        username: row.try_get("username").db()?,
        name: row.try_get("name").db()?,
        role: super::users::parse_role(&row.try_get::<String, _>("role").db()?)?,
        created_at: get_time(row, "created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hash_api_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
