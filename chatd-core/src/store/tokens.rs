//! API tokens: random secrets handed to a user once, stored only as a SHA-256 hash.

use codersdk::{SecretString, Uuid};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{get_time, get_uuid, now_micros, uuid_text, Store, User};
use crate::error::{DbResultExt, Result};

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
    /// Issues a new API token for `user_id` and returns it; only its hash is stored, so it
    /// cannot be shown again. [`crate::ErrorKind::NotFound`] when the user does not exist.
    pub async fn create_api_token(&self, user_id: Uuid) -> Result<SecretString> {
        let mut bytes = [0u8; API_TOKEN_BYTES];
        crate::secrets::fill_random(&mut bytes)?;
        let mut token = String::from(API_TOKEN_PREFIX);
        for byte in bytes {
            token.push_str(&format!("{byte:02x}"));
        }
        self.insert_api_token(user_id, &token).await?;
        Ok(SecretString::from(token))
    }

    /// Stores a token chosen by the operator (for example the admin token from the
    /// environment), hashed. Storing the same token again is a no-op.
    pub async fn insert_api_token(&self, user_id: Uuid, token: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, token_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(uuid_text(Uuid::new_v4()))
        .bind(uuid_text(user_id))
        .bind(hash_api_token(token))
        .bind(now_micros())
        .execute(self.pool())
        .await
        .db()?;
        Ok(())
    }

    /// The user a presented token belongs to; `None` for an unknown, empty or over-long
    /// token.
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<User>> {
        if token.is_empty() || token.len() > MAX_API_TOKEN_LEN {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT u.id, u.username, u.name, u.role, u.created_at FROM api_tokens t \
             JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(hash_api_token(token))
        .fetch_optional(self.pool())
        .await
        .db()?;
        row.map(|r| user_from_row(&r)).transpose()
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
