//! Users and organizations: the identities chats belong to.

use codersdk::{Timestamp, Uuid};

use super::{now_micros, timestamp_from_micros, uuid_text, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};
use crate::role::Role;

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Login name; unique.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Site role.
    pub role: Role,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Site role.
    pub role: Role,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A stored organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// Organization id.
    pub id: Uuid,
    /// Name; unique.
    pub name: String,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A stored role; [`ErrorKind::CorruptRow`] for a name this version does not know.
pub(super) fn parse_role(stored: &str) -> Result<Role> {
    stored
        .parse()
        .map_err(|_| Error::new(ErrorKind::CorruptRow, "stored user role is unknown"))
}

impl User {
    /// The engine's view of this user as the caller of an operation.
    pub fn actor(&self) -> crate::Actor {
        crate::Actor::new(self.id, self.role)
    }
}

impl Store {
    /// Creates a user. [`crate::ErrorKind::Conflict`] when the username is taken.
    pub async fn create_user(&self, new: NewUser) -> Result<User> {
        let id = Uuid::new_v4();
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, username, name, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(uuid_text(id))
        .bind(&new.username)
        .bind(&new.name)
        .bind(new.role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()?;
        Ok(User {
            id,
            username: new.username,
            name: new.name,
            role: new.role,
            created_at: timestamp_from_micros(now)?,
        })
    }

    /// Creates an organization. [`crate::ErrorKind::Conflict`] when the name is taken.
    pub async fn create_organization(&self, name: &str) -> Result<Organization> {
        let id = Uuid::new_v4();
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(uuid_text(id))
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()?;
        Ok(Organization {
            id,
            name: name.to_owned(),
            created_at: timestamp_from_micros(now)?,
        })
    }

    /// Makes a user a member of an organization; adding an existing member is a no-op.
    /// [`crate::ErrorKind::NotFound`] when either does not exist.
    pub async fn add_member(&self, organization_id: Uuid, user_id: Uuid) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO organization_members (organization_id, user_id, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (organization_id, user_id) DO NOTHING",
        )
        .bind(uuid_text(organization_id))
        .bind(uuid_text(user_id))
        .bind(now_micros())
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()?;
        Ok(())
    }
}

impl Store {
    /// Whether `user_id` is a member of `organization_id`.
    pub async fn is_member(&self, organization_id: Uuid, user_id: Uuid) -> Result<bool> {
        let row = sqlx::query(
            "SELECT user_id FROM organization_members WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(uuid_text(organization_id))
        .bind(uuid_text(user_id))
        .fetch_optional(self.pool())
        .await
        .db()?;
        Ok(row.is_some())
    }

    /// The organizations `user_id` belongs to, oldest membership first.
    pub async fn organizations_of(&self, user_id: Uuid) -> Result<Vec<Uuid>> {
        let rows = sqlx::query(
            "SELECT organization_id FROM organization_members WHERE user_id = $1 \
             ORDER BY created_at, organization_id",
        )
        .bind(uuid_text(user_id))
        .fetch_all(self.pool())
        .await
        .db()?;
        rows.iter()
            .map(|row| super::get_uuid(row, "organization_id"))
            .collect()
    }
}
