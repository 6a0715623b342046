//! The minimal Coder user and token bodies the client reads and writes (`/api/v2/users/me`,
//! `POST /api/v2/users`, `POST /api/v2/users/{user}/keys`).
//!
//! Only the fields a chat client needs are modelled; everything else Coder's `User` carries
//! is ignored when reading, so the client works against Coder and chatd alike.

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::{SecretString, Timestamp};

/// A user as `GET /api/v2/users/me` and `POST /api/v2/users` return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub id: Uuid,
    /// Unique login name.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// E-mail address (empty when the server has none).
    #[serde(default)]
    pub email: String,
    /// `active`, `suspended`, … (empty when the server does not say).
    #[serde(default)]
    pub status: String,
    /// Site-wide roles (`admin`, `member`; Coder also uses `owner`).
    #[serde(default, deserialize_with = "roles")]
    pub roles: Vec<Role>,
    /// Organizations the user belongs to. Never null.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub organization_ids: Vec<Uuid>,
    /// Creation time, when the server sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
}

impl User {
    /// Whether one of the user's roles is `admin` (chatd) or `owner` (Coder's site owner).
    pub fn is_admin(&self) -> bool {
        self.roles
            .iter()
            .any(|r| r.name == "admin" || r.name == "owner")
    }
}

/// A role of a [`User`]. Coder sends objects (`{"name": "owner", "display_name": …}`);
/// servers that send bare role names are read too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Role name.
    pub name: String,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
}

fn roles<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Role>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneRole {
        Name(String),
        Full(Role),
    }
    let list: Option<Vec<OneRole>> = Option::deserialize(d)?;
    Ok(list
        .unwrap_or_default()
        .into_iter()
        .map(|r| match r {
            OneRole::Name(name) => Role {
                name,
                display_name: String::new(),
            },
            OneRole::Full(role) => role,
        })
        .collect())
}

/// Body of `POST /api/v2/users` (administrators).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CreateUserRequest {
    /// Unique login name.
    pub username: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// Password, for servers with password logins (chatd uses API tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
    /// Organizations to join; servers put the user in their default organization when
    /// empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organization_ids: Vec<Uuid>,
}

/// Response of `POST /api/v2/users/{user}/keys`: a new API token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateApiKeyResponse {
    /// The token; send it as `Coder-Session-Token`.
    pub key: SecretString,
}
