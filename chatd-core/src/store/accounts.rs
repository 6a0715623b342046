//! User accounts as the `/api/v2/users` routes see them: a [`User`](super::User) with its
//! e-mail address, last change and organizations; creation with memberships in one
//! transaction, case-insensitive lookup, paging, and role changes that never remove the
//! last administrator.

use std::collections::BTreeMap;

use codersdk::{Timestamp, Uuid};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{get_time, get_uuid, now_micros, timestamp_from_micros, uuid_text, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};
use crate::role::Role;

/// Largest page [`Store::list_accounts`] returns.
pub const MAX_ACCOUNT_PAGE: i64 = 1000;

/// An account to create ([`Store::create_account`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// Login name; unique case-insensitively.
    pub username: String,
    /// Display name.
    pub name: String,
    /// E-mail address; empty for none, else unique case-insensitively.
    pub email: String,
    /// Site role.
    pub role: Role,
    /// Organizations to join; each must exist.
    pub organization_ids: Vec<Uuid>,
}

/// A user with everything `GET /users/{user}` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// E-mail address; empty when none.
    pub email: String,
    /// Site role.
    pub role: Role,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change of the record (the creation time until one).
    pub updated_at: Timestamp,
    /// Organizations, oldest membership first.
    pub organization_ids: Vec<Uuid>,
}

const ACCOUNT_COLUMNS: &str = "id, username, name, email, role, created_at, \
    CASE WHEN updated_at > created_at THEN updated_at ELSE created_at END AS updated_at";

fn account_from_row(row: &AnyRow) -> Result<Account> {
    Ok(Account {
        id: get_uuid(row, "id")?,
        username: row.try_get("username").db()?,
        name: row.try_get("name").db()?,
        email: row.try_get("email").db()?,
        role: super::users::parse_role(&row.try_get::<String, _>("role").db()?)?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        organization_ids: Vec::new(),
    })
}

fn username_taken(username: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("The username {username:?} is already taken."),
    )
}

fn email_taken() -> Error {
    Error::new(
        ErrorKind::Conflict,
        "Another user already has this e-mail address.",
    )
}

fn user_not_found(id: Uuid) -> Error {
    Error::new(ErrorKind::NotFound, format!("user {id} not found"))
}

impl Store {
    /// Creates a user with an e-mail address and organization memberships, in one
    /// transaction: nothing is stored when any part fails.
    ///
    /// [`ErrorKind::Conflict`] when the username or the e-mail address is taken (compared
    /// case-insensitively); [`ErrorKind::InvalidArgument`] naming an organization that does
    /// not exist.
    pub async fn create_account(&self, new: &NewAccount) -> Result<Account> {
        let id = Uuid::new_v4();
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            let taken = sqlx::query("SELECT id FROM users WHERE lower(username) = lower($1)")
                .bind(&new.username)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
            if taken.is_some() {
                return Err(username_taken(&new.username));
            }
            if !new.email.is_empty() {
                let taken = sqlx::query("SELECT id FROM users WHERE lower(email) = lower($1)")
                    .bind(&new.email)
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
                if taken.is_some() {
                    return Err(email_taken());
                }
            }
            for org in &new.organization_ids {
                let found = sqlx::query("SELECT id FROM organizations WHERE id = $1")
                    .bind(uuid_text(*org))
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
                if found.is_none() {
                    return Err(Error::with_response(
                        ErrorKind::InvalidArgument,
                        codersdk::Response::new("Invalid user.").with_validation(
                            "organization_ids",
                            format!("Organization {org} does not exist."),
                        ),
                    ));
                }
            }
            sqlx::query(
                "INSERT INTO users (id, username, name, role, created_at, email, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $5)",
            )
            .bind(uuid_text(id))
            .bind(&new.username)
            .bind(&new.name)
            .bind(new.role.as_str())
            .bind(now)
            .bind(&new.email)
            .execute(&mut *tx)
            .await
            // A concurrent create won one of the unique indexes after our checks.
            .map_err(|e| match Error::from_sqlx(e) {
                e if e.kind() == ErrorKind::Conflict => Error::new(
                    ErrorKind::Conflict,
                    "The username or e-mail address is already taken.",
                )
                .with_source(e),
                e => e,
            })?;
            for org in &new.organization_ids {
                sqlx::query(
                    "INSERT INTO organization_members (organization_id, user_id, created_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(uuid_text(*org))
                .bind(uuid_text(id))
                .bind(now)
                .execute(&mut *tx)
                .await
                .db()?;
            }
            Ok(())
        }
        .await;
        super::finish_tx(tx, result).await?;
        let created_at = timestamp_from_micros(now)?;
        Ok(Account {
            id,
            username: new.username.clone(),
            name: new.name.clone(),
            email: new.email.clone(),
            role: new.role,
            created_at,
            updated_at: created_at,
            organization_ids: new.organization_ids.clone(),
        })
    }

    /// The account of user `id`; `None` when there is none.
    pub async fn get_account(&self, id: Uuid) -> Result<Option<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(id))
            .fetch_optional(self.pool())
            .await
            .db()?;
        self.with_organizations(row.as_ref().map(account_from_row).transpose()?)
            .await
    }

    /// The account named `username`, compared case-insensitively; `None` when there is
    /// none.
    pub async fn find_account_by_username(&self, username: &str) -> Result<Option<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE lower(username) = lower($1)");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(username)
            .fetch_optional(self.pool())
            .await
            .db()?;
        self.with_organizations(row.as_ref().map(account_from_row).transpose()?)
            .await
    }

    async fn with_organizations(&self, account: Option<Account>) -> Result<Option<Account>> {
        match account {
            None => Ok(None),
            Some(mut a) => {
                a.organization_ids = self.organizations_of(a.id).await?;
                Ok(Some(a))
            }
        }
    }

    /// One page of accounts ordered by username (case-insensitively), and the number of
    /// users in all. `limit` is clamped to 1..=[`MAX_ACCOUNT_PAGE`] and `offset` to ≥ 0.
    pub async fn list_accounts(&self, limit: i64, offset: i64) -> Result<(Vec<Account>, i64)> {
        let limit = limit.clamp(1, MAX_ACCOUNT_PAGE);
        let offset = offset.max(0);
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM users ORDER BY lower(username), id LIMIT $1 OFFSET $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await
            .db()?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await
            .db()?;
        let mut accounts = rows
            .iter()
            .map(account_from_row)
            .collect::<Result<Vec<_>>>()?;
        if accounts.is_empty() {
            return Ok((accounts, count));
        }
        // Every membership of the page in one query (ids are bound, never spliced).
        let placeholders = super::placeholders(1, accounts.len());
        let sql = format!(
            "SELECT user_id, organization_id FROM organization_members \
             WHERE user_id IN ({placeholders}) ORDER BY created_at, organization_id"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in &accounts {
            query = query.bind(uuid_text(a.id));
        }
        let mut orgs: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
        for row in query.fetch_all(self.pool()).await.db()? {
            orgs.entry(get_uuid(&row, "user_id")?)
                .or_default()
                .push(get_uuid(&row, "organization_id")?);
        }
        for a in &mut accounts {
            a.organization_ids = orgs.remove(&a.id).unwrap_or_default();
        }
        Ok((accounts, count))
    }

    /// Sets user `id`'s site role. Demoting an administrator is refused
    /// ([`ErrorKind::Conflict`]) when no other user is one, so a deployment never loses its
    /// last administrator. The administrators are locked in id order first, so two
    /// concurrent demotions cannot both pass the check. [`ErrorKind::NotFound`] when the
    /// user does not exist.
    pub async fn set_user_role(&self, id: Uuid, role: Role) -> Result<Account> {
        let required_role = Role::Admin;
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            let lock = match self.dialect() {
                super::Dialect::Sqlite => "",
                super::Dialect::Postgres => " FOR UPDATE",
            };
            let sql = format!("SELECT id FROM users WHERE role = $1 ORDER BY id{lock}");
            let holders: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(required_role.as_str())
                .fetch_all(&mut *tx)
                .await
                .db()?;
            let sql = format!("SELECT role FROM users WHERE id = $1{lock}");
            let current: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(uuid_text(id))
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or_else(|| user_not_found(id))?;
            let current = super::users::parse_role(&current)?;
            if current == required_role && role != required_role && holders.len() <= 1 {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "At least one user must keep the {:?} role.",
                        required_role.as_str()
                    ),
                ));
            }
            if current != role {
                sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
                    .bind(uuid_text(id))
                    .bind(role.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .db()?;
            }
            Ok(())
        }
        .await;
        super::finish_tx(tx, result).await?;
        self.get_account(id)
            .await?
            .ok_or_else(|| user_not_found(id))
    }
}
