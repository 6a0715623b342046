//! Groups of users (Coder's `codersdk.Group`, minimal): an organization's named sets of
//! users, which usage limits apply to (`/chats/usage-limits/group-overrides/{group}`).

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::serde_util::null_as_default;
use crate::{Response, Timestamp};

/// Longest group name, in bytes (the username rule: ASCII letters and digits in groups
/// joined by single hyphens).
pub const MAX_GROUP_NAME_LEN: usize = 36;

/// Longest group display name, in Unicode scalar values after trimming.
pub const MAX_GROUP_DISPLAY_NAME_CHARS: usize = 64;

/// Longest group avatar URL, in bytes.
pub const MAX_GROUP_AVATAR_URL_BYTES: usize = 2_048;

/// Most users one `PATCH /groups/{group}` may add or remove (each list).
pub const MAX_GROUP_PATCH_USERS: usize = 1_000;

/// Group names that can never be taken: `everyone` is Coder's implicit all-members group.
pub const RESERVED_GROUP_NAMES: &[&str] = &["everyone"];

/// A member as a group lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GroupMember {
    /// User id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Display name; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub name: String,
}

/// A group with its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Group {
    /// Group id.
    pub id: Uuid,
    /// Name, unique within the organization.
    pub name: String,
    /// Display name (may be empty).
    #[serde(default)]
    pub display_name: String,
    /// The organization.
    pub organization_id: Uuid,
    /// Avatar URL (may be empty).
    #[serde(default)]
    pub avatar_url: String,
    /// Members, by username. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub members: Vec<GroupMember>,
    /// How many members the group has.
    pub total_member_count: i64,
    /// Creation time.
    pub created_at: Timestamp,
}

/// Body of `POST /api/v2/organizations/{organization}/groups` (admin).
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct CreateGroupRequest {
    /// Name (required; the username rule).
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// Avatar URL.
    #[serde(default)]
    pub avatar_url: String,
}

/// Body of `PATCH /api/v2/groups/{group}` (admin): every field optional.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct PatchGroupRequest {
    /// Users to add (ids). Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub add_users: Vec<Uuid>,
    /// Users to remove (ids). Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub remove_users: Vec<Uuid>,
    /// New name; empty keeps it.
    #[serde(default)]
    pub name: String,
    /// New display name; absent keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub display_name: Option<String>,
    /// New avatar URL; absent keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub avatar_url: Option<String>,
}

/// Why `name` cannot name a group, or `None`.
pub fn group_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("A group name is required.".to_owned());
    }
    if name.len() > MAX_GROUP_NAME_LEN {
        return Some(format!(
            "The group name is {} bytes long; it may be at most {MAX_GROUP_NAME_LEN}.",
            name.len()
        ));
    }
    let parts_ok = name
        .split('-')
        .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !parts_ok {
        return Some(
            "A group name may contain only ASCII letters and digits, in groups joined by single \
             hyphens (no leading, trailing or doubled hyphens)."
                .to_owned(),
        );
    }
    if RESERVED_GROUP_NAMES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        return Some(format!("The group name {name:?} is reserved."));
    }
    None
}

fn display_name_problem(display_name: &str) -> Option<String> {
    let chars = display_name.trim().chars().count();
    if chars > MAX_GROUP_DISPLAY_NAME_CHARS {
        return Some(format!(
            "The display name is {chars} characters long; it may be at most \
             {MAX_GROUP_DISPLAY_NAME_CHARS}."
        ));
    }
    if display_name.chars().any(char::is_control) {
        return Some("The display name may not contain control characters.".to_owned());
    }
    None
}

fn avatar_url_problem(url: &str) -> Option<String> {
    if url.len() > MAX_GROUP_AVATAR_URL_BYTES {
        return Some(format!(
            "The avatar URL is {} bytes long; it may be at most {MAX_GROUP_AVATAR_URL_BYTES}.",
            url.len()
        ));
    }
    let web = url.starts_with("https://") || url.starts_with("http://");
    if !url.is_empty() && !web {
        return Some("The avatar URL must be an http(s) URL.".to_owned());
    }
    None
}

/// Validates `POST /organizations/{organization}/groups`; the trimmed display name.
pub fn validate_create_group_request(
    req: &CreateGroupRequest,
) -> Result<CreateGroupRequest, Response> {
    let mut out = Response::new("Invalid group.");
    if let Some(p) = group_name_problem(&req.name) {
        out = out.with_validation("name", p);
    }
    if let Some(p) = display_name_problem(&req.display_name) {
        out = out.with_validation("display_name", p);
    }
    if let Some(p) = avatar_url_problem(&req.avatar_url) {
        out = out.with_validation("avatar_url", p);
    }
    if !out.validations.is_empty() {
        return Err(out);
    }
    Ok(CreateGroupRequest {
        name: req.name.clone(),
        display_name: req.display_name.trim().to_owned(),
        avatar_url: req.avatar_url.clone(),
    })
}

/// Validates `PATCH /groups/{group}`: the fields given follow the create rules; at most
/// [`MAX_GROUP_PATCH_USERS`] ids per list, none nil, no id both added and removed.
pub fn validate_patch_group_request(
    req: &PatchGroupRequest,
) -> Result<PatchGroupRequest, Response> {
    let mut out = Response::new("Invalid group change.");
    if !req.name.is_empty() {
        if let Some(p) = group_name_problem(&req.name) {
            out = out.with_validation("name", p);
        }
    }
    if let Some(p) = req.display_name.as_deref().and_then(display_name_problem) {
        out = out.with_validation("display_name", p);
    }
    if let Some(p) = req.avatar_url.as_deref().and_then(avatar_url_problem) {
        out = out.with_validation("avatar_url", p);
    }
    for (field, ids) in [
        ("add_users", &req.add_users),
        ("remove_users", &req.remove_users),
    ] {
        if ids.len() > MAX_GROUP_PATCH_USERS {
            out = out.with_validation(
                field,
                format!(
                    "{} users were given; at most {MAX_GROUP_PATCH_USERS} may be changed at once.",
                    ids.len()
                ),
            );
        }
        if ids.iter().any(Uuid::is_nil) {
            out = out.with_validation(field, "The nil UUID names no user.");
        }
    }
    if req.add_users.iter().any(|id| req.remove_users.contains(id)) {
        out = out.with_validation(
            "remove_users",
            "A user cannot be added and removed in the same request.",
        );
    }
    if !out.validations.is_empty() {
        return Err(out);
    }
    Ok(PatchGroupRequest {
        display_name: req.display_name.as_deref().map(|d| d.trim().to_owned()),
        ..req.clone()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn group_names_follow_the_username_rule_at_its_edges() {
        assert!(group_name_problem("eng").is_none());
        assert!(group_name_problem("eng-team-2").is_none());
        assert!(group_name_problem(&"a".repeat(MAX_GROUP_NAME_LEN)).is_none());
        assert!(group_name_problem(&"a".repeat(MAX_GROUP_NAME_LEN + 1)).is_some());
        for bad in ["", "-eng", "eng-", "en--g", "en g", "Everyone"] {
            assert!(group_name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn create_and_patch_validation_name_the_fields() {
        let ok = validate_create_group_request(&CreateGroupRequest {
            name: "eng".into(),
            display_name: "  Engineering ".into(),
            avatar_url: String::new(),
        })
        .unwrap();
        assert_eq!(ok.display_name, "Engineering");
        let bad = validate_create_group_request(&CreateGroupRequest {
            name: "bad name".into(),
            display_name: "x".repeat(MAX_GROUP_DISPLAY_NAME_CHARS + 1),
            avatar_url: "javascript:alert(1)".into(),
        })
        .unwrap_err();
        let fields: Vec<&str> = bad.validations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["name", "display_name", "avatar_url"]);
        let id = Uuid::new_v4();
        let both = validate_patch_group_request(&PatchGroupRequest {
            add_users: vec![id],
            remove_users: vec![id],
            ..PatchGroupRequest::default()
        })
        .unwrap_err();
        assert_eq!(both.validations[0].field, "remove_users");
        let many = validate_patch_group_request(&PatchGroupRequest {
            add_users: (0..=MAX_GROUP_PATCH_USERS)
                .map(|_| Uuid::new_v4())
                .collect(),
            ..PatchGroupRequest::default()
        })
        .unwrap_err();
        assert_eq!(many.validations[0].field, "add_users");
        assert!(validate_patch_group_request(&PatchGroupRequest {
            add_users: (0..MAX_GROUP_PATCH_USERS).map(|_| Uuid::new_v4()).collect(),
            ..PatchGroupRequest::default()
        })
        .is_ok());
    }
}
