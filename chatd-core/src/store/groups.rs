//! Groups: an organization's named sets of users, which usage limits apply to
//! (a group override limits each member; docs/usage-limits.md).

use std::collections::HashMap;

use codersdk::{CreateGroupRequest, Group, GroupMember, PatchGroupRequest, Uuid};
use sqlx::Row;

use super::{finish_tx, get_time, get_uuid, now_micros, uuid_text, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// The answer for a group that does not exist (HTTP 404).
pub const GROUP_NOT_FOUND_MESSAGE: &str = "Group not found.";

/// Most groups one organization may have: the list is read whole, and the admission
/// check takes the smallest limit over a user's groups.
pub const MAX_GROUPS_PER_ORGANIZATION: i64 = 1_000;

/// The message of a user added to a group of an organization they are not a member of.
pub const NOT_AN_ORGANIZATION_MEMBER_MESSAGE: &str =
    "Only members of the group's organization can join the group.";

/// The answer for an organization that does not exist (HTTP 404).
pub const ORGANIZATION_NOT_FOUND_MESSAGE: &str = "Organization not found.";

pub(crate) fn group_not_found() -> Error {
    Error::new(ErrorKind::NotFound, GROUP_NOT_FOUND_MESSAGE)
}

const GROUP_COLUMNS: &str = "g.id, g.name, g.display_name, g.organization_id, g.avatar_url, \
    g.created_at";

impl Store {
    /// Creates a group in `organization_id`. [`ErrorKind::Conflict`] when the organization
    /// has a group of that name; [`ErrorKind::NotFound`]
    /// ([`ORGANIZATION_NOT_FOUND_MESSAGE`]) when the organization does not exist; [`ErrorKind::InvalidArgument`] past [`MAX_GROUPS_PER_ORGANIZATION`].
    /// The request must be validated (`codersdk::validate_create_group_request`).
    pub async fn create_group(
        &self,
        organization_id: Uuid,
        new: &CreateGroupRequest,
    ) -> Result<Group> {
        let id = Uuid::new_v4();
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            require_organization(&mut tx, organization_id).await?;
            let count: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM groups WHERE organization_id = $1")
                    .bind(uuid_text(organization_id))
                    .fetch_one(&mut *tx)
                    .await
                    .db()?
                    .try_get("n")
                    .db()?;
            if count >= MAX_GROUPS_PER_ORGANIZATION {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "The organization has {count} groups, the most it may have \
                         ({MAX_GROUPS_PER_ORGANIZATION})."
                    ),
                ));
            }
            sqlx::query(
                "INSERT INTO groups (id, organization_id, name, display_name, avatar_url, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(uuid_text(id))
            .bind(uuid_text(organization_id))
            .bind(&new.name)
            .bind(&new.display_name)
            .bind(&new.avatar_url)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| name_conflict(Error::from_sqlx(e), &new.name))?;
            Ok(())
        }
        .await;
        finish_tx(tx, result).await?;
        self.get_group(id).await?.ok_or_else(group_not_found)
    }

    /// The group `id` with its members; `None` when there is none.
    pub async fn get_group(&self, id: Uuid) -> Result<Option<Group>> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM groups g WHERE g.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(id))
            .fetch_optional(self.pool())
            .await
            .db()?;
        let Some(row) = row else { return Ok(None) };
        let mut groups = vec![group_from_row(&row)?];
        self.fill_members(&mut groups, Some(id)).await?;
        Ok(groups.pop())
    }

    /// The groups of `organization_id` (all organizations when `None`), by name, with their
    /// members.
    /// [`ErrorKind::NotFound`] ([`ORGANIZATION_NOT_FOUND_MESSAGE`]) for an unknown
    /// organization.
    pub async fn list_groups(&self, organization_id: Option<Uuid>) -> Result<Vec<Group>> {
        if let Some(org) = organization_id {
            let mut conn = self.pool().acquire().await.db()?;
            require_organization(&mut conn, org).await?;
        }
        let sql = format!(
            "SELECT {GROUP_COLUMNS} FROM groups g \
             WHERE ($1 = '' OR g.organization_id = $1) ORDER BY g.name, g.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id.map(uuid_text).unwrap_or_default())
            .fetch_all(self.pool())
            .await
            .db()?;
        let mut groups = rows
            .iter()
            .map(group_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.fill_members(&mut groups, None).await?;
        if let Some(org) = organization_id {
            groups.retain(|g| g.organization_id == org);
        }
        Ok(groups)
    }

    /// Reads the members of `groups` (of group `only`, or of all groups) into them.
    async fn fill_members(&self, groups: &mut [Group], only: Option<Uuid>) -> Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT gm.group_id, u.id, u.username, u.name FROM group_members gm \
             JOIN users u ON u.id = gm.user_id \
             WHERE ($1 = '' OR gm.group_id = $1) ORDER BY u.username, u.id",
        )
        .bind(only.map(uuid_text).unwrap_or_default())
        .fetch_all(self.pool())
        .await
        .db()?;
        let mut by_group: HashMap<Uuid, Vec<GroupMember>> = HashMap::new();
        for row in &rows {
            by_group
                .entry(get_uuid(row, "group_id")?)
                .or_default()
                .push(GroupMember {
                    id: get_uuid(row, "id")?,
                    username: row.try_get("username").db()?,
                    name: row.try_get("name").db()?,
                });
        }
        for group in groups.iter_mut() {
            group.members = by_group.remove(&group.id).unwrap_or_default();
            group.total_member_count = i64::try_from(group.members.len()).unwrap_or(i64::MAX);
        }
        Ok(())
    }

    /// Changes group `id` as `patch` says, in one transaction: renames it, sets its display
    /// name and avatar, adds and removes members (adding a member twice and removing a
    /// non-member are no-ops). [`ErrorKind::NotFound`] for an unknown group or user;
    /// [`ErrorKind::InvalidArgument`] ([`NOT_AN_ORGANIZATION_MEMBER_MESSAGE`]) for a user
    /// outside the group's organization; [`ErrorKind::Conflict`] for a taken name. The
    /// request must be validated (`codersdk::validate_patch_group_request`).
    pub async fn patch_group(&self, id: Uuid, patch: &PatchGroupRequest) -> Result<Group> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            let org: String = sqlx::query("SELECT organization_id FROM groups WHERE id = $1")
                .bind(uuid_text(id))
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or_else(group_not_found)?
                .try_get("organization_id")
                .db()?;
            sqlx::query(
                "UPDATE groups SET name = CASE WHEN $2 = '' THEN name ELSE $2 END, \
                 display_name = COALESCE($3, display_name), \
                 avatar_url = COALESCE($4, avatar_url), updated_at = $5 WHERE id = $1",
            )
            .bind(uuid_text(id))
            .bind(&patch.name)
            .bind(patch.display_name.as_deref())
            .bind(patch.avatar_url.as_deref())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| name_conflict(Error::from_sqlx(e), &patch.name))?;
            for user in &patch.add_users {
                let member = sqlx::query(
                    "SELECT u.id, om.user_id AS member FROM users u \
                     LEFT JOIN organization_members om \
                       ON om.user_id = u.id AND om.organization_id = $2 \
                     WHERE u.id = $1",
                )
                .bind(uuid_text(*user))
                .bind(&org)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
                let Some(member) = member else {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("No user has the id {user}."),
                    ));
                };
                let in_org: Option<String> = member.try_get("member").db()?;
                if in_org.is_none() {
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        NOT_AN_ORGANIZATION_MEMBER_MESSAGE,
                    ));
                }
                sqlx::query(
                    "INSERT INTO group_members (group_id, user_id, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (group_id, user_id) DO NOTHING",
                )
                .bind(uuid_text(id))
                .bind(uuid_text(*user))
                .bind(now)
                .execute(&mut *tx)
                .await
                .db()?;
            }
            for user in &patch.remove_users {
                sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
                    .bind(uuid_text(id))
                    .bind(uuid_text(*user))
                    .execute(&mut *tx)
                    .await
                    .db()?;
            }
            Ok(())
        }
        .await;
        finish_tx(tx, result).await?;
        self.get_group(id).await?.ok_or_else(group_not_found)
    }

    /// Deletes group `id` with its memberships and usage-limit override;
    /// [`ErrorKind::NotFound`] when there is none.
    pub async fn delete_group(&self, id: Uuid) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let result = async {
            let deleted = sqlx::query("DELETE FROM groups WHERE id = $1")
                .bind(uuid_text(id))
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected();
            if deleted == 0 {
                return Err(group_not_found());
            }
            Ok(())
        }
        .await;
        finish_tx(tx, result).await
    }
}

/// [`ErrorKind::NotFound`] unless organization `id` exists.
async fn require_organization(conn: &mut sqlx::AnyConnection, id: Uuid) -> Result<()> {
    sqlx::query("SELECT id FROM organizations WHERE id = $1")
        .bind(uuid_text(id))
        .fetch_optional(&mut *conn)
        .await
        .db()?
        .map(|_| ())
        .ok_or_else(|| Error::new(ErrorKind::NotFound, ORGANIZATION_NOT_FOUND_MESSAGE))
}

/// A unique violation on a group's name as the API says it.
fn name_conflict(e: Error, name: &str) -> Error {
    if e.kind() == ErrorKind::Conflict {
        Error::new(
            ErrorKind::Conflict,
            format!("The organization already has a group named {name:?}."),
        )
    } else {
        e
    }
}

fn group_from_row(row: &sqlx::any::AnyRow) -> Result<Group> {
    Ok(Group {
        id: get_uuid(row, "id")?,
        name: row.try_get("name").db()?,
        display_name: row.try_get("display_name").db()?,
        organization_id: get_uuid(row, "organization_id")?,
        avatar_url: row.try_get("avatar_url").db()?,
        members: Vec::new(),
        total_member_count: 0,
        created_at: get_time(row, "created_at")?,
    })
}
