//! Users and API tokens: the minimal, Coder-compatible subset of `/api/v2/users` that a chat
//! server needs (`GET /users/me`, `POST /users`, `POST /users/{user}/keys`, the token
//! routes under `/users/{user}/keys/tokens`, …), and the validation of user and token
//! creation.
//!
//! The shapes follow Coder's `codersdk.User` (field names, order and presence rules), keeping
//! only what a chat deployment has: no avatars, no passwords, no themes.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::macros::string_enum;
use crate::serde_util::null_as_default;
use crate::{Response, SecretString, Timestamp};

/// Longest username, in bytes (Coder's limit).
pub const MAX_USERNAME_LEN: usize = 32;

/// Longest display name of a user, in Unicode scalar values, after trimming (Coder's
/// `user_real_name` limit).
pub const MAX_USER_REAL_NAME_CHARS: usize = 128;

/// Longest e-mail address, in bytes (the longest address SMTP can carry).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Usernames that can never be taken, because routes use them as aliases
/// (`/users/me/keys`).
pub const RESERVED_USERNAMES: &[&str] = &["me"];

/// Most organizations one user creation may name.
pub const MAX_CREATE_USER_ORGANIZATIONS: usize = 50;

string_enum! {
    /// Whether a user may sign in.
    pub enum UserStatus {
        /// May use the API.
        Active = "active",
        /// Inactive for a long time (Coder).
        Dormant = "dormant",
        /// Blocked by an administrator (Coder).
        Suspended = "suspended",
    }
}

string_enum! {
    /// How a user signs in.
    pub enum LoginType {
        /// Username and password (Coder).
        Password = "password",
        /// GitHub OAuth (Coder).
        Github = "github",
        /// OpenID Connect (Coder).
        Oidc = "oidc",
        /// An API token user (Coder).
        Token = "token",
        /// No interactive login: the user authenticates with API tokens only.
        None = "none",
    }
}

/// A role as listed on a [`User`] (Coder's `SlimRole`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SlimRole {
    /// Role name (`admin`, `member`).
    pub name: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: String,
    /// The organization of an organization role; omitted for site roles.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub organization_id: String,
}

/// A user (Coder's `codersdk.User`, minimal but field-compatible).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct User {
    /// User id.
    pub id: Uuid,
    /// Login name, unique case-insensitively.
    pub username: String,
    /// Avatar URL; omitted when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub avatar_url: String,
    /// Display name; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub name: String,
    /// E-mail address; empty when none was given.
    #[serde(default)]
    pub email: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change of the user record.
    pub updated_at: Timestamp,
    /// Last activity; omitted when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub last_seen_at: Option<Timestamp>,
    /// Account status.
    pub status: UserStatus,
    /// How the user signs in.
    pub login_type: LoginType,
    /// Organizations the user belongs to. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub organization_ids: Vec<Uuid>,
    /// Site roles. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<SlimRole>,
}

/// Body of `POST /api/v2/users` (admin). Coder clients send the same fields.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct CreateUserRequest {
    /// E-mail address (optional here; Coder requires it).
    #[serde(default)]
    pub email: String,
    /// Login name (required): ASCII letters and digits in groups joined by single hyphens,
    /// at most [`MAX_USERNAME_LEN`] bytes.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Accepted for compatibility and ignored: there is no password login, and it is never
    /// stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub password: Option<SecretString>,
    /// Accepted for compatibility and ignored: users authenticate with API tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub login_type: Option<LoginType>,
    /// Organizations to join; the server's default organization when empty.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub organization_ids: Vec<Uuid>,
}

/// A [`CreateUserRequest`] after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedCreateUser {
    /// The username as given (uniqueness is case-insensitive).
    pub username: String,
    /// Trimmed display name.
    pub name: String,
    /// Trimmed e-mail address; empty when none.
    pub email: String,
    /// Organizations to join, duplicates removed, in request order; empty means "the
    /// default organization".
    pub organization_ids: Vec<Uuid>,
}

/// Body of `PUT /api/v2/users/{user}/roles` (Coder's `UpdateRoles`).
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct UpdateRoles {
    /// The user's site roles; an empty list makes the user a plain member.
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<String>,
}

/// Response of `POST /api/v2/users/{user}/keys` (Coder's `GenerateAPIKeyResponse`): the new
/// API token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GenerateAPIKeyResponse {
    /// The token; send it as `Coder-Session-Token`.
    pub key: SecretString,
}

/// Longest API token name, in bytes.
pub const MAX_TOKEN_NAME_BYTES: usize = 64;

/// Longest lifetime a token may be given, in nanoseconds: 876 600 hours (100 years),
/// Coder's default `--max-token-lifetime`.
pub const MAX_TOKEN_LIFETIME_NANOS: i64 = 876_600 * 3_600 * 1_000_000_000;

/// Token scopes a request may name (Coder's `APIKeyScope`); this server has one.
pub const TOKEN_SCOPE_ALL: &str = "all";

/// Body of `POST /api/v2/users/{user}/keys/tokens` (Coder's `CreateTokenRequest`).
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct CreateTokenRequest {
    /// Lifetime in nanoseconds (Go's `time.Duration`); `0` or omitted: the token never
    /// expires. At most [`MAX_TOKEN_LIFETIME_NANOS`].
    #[serde(default)]
    pub lifetime: i64,
    /// `all` or empty (Coder's `application_connect` scope concerns workspaces, which this
    /// server does not have).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub scope: String,
    /// The token's name, unique among the user's tokens (case-insensitively); one is made
    /// up when empty.
    #[serde(default)]
    pub token_name: String,
}

/// A [`CreateTokenRequest`] after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedCreateToken {
    /// The trimmed name; `None` when the server picks one.
    pub token_name: Option<String>,
    /// The lifetime; `None` when the token never expires.
    pub lifetime: Option<std::time::Duration>,
}

/// Validates a token request: a name of at most [`MAX_TOKEN_NAME_BYTES`] bytes without
/// control characters, a lifetime of `0` (never expires) or between one second and
/// [`MAX_TOKEN_LIFETIME_NANOS`], scope `all` or empty. Every problem is reported, per
/// field.
pub fn validate_create_token_request(
    req: &CreateTokenRequest,
) -> Result<ValidatedCreateToken, Response> {
    let mut out = Response::new("Invalid token request.");
    let name = req.token_name.trim();
    if name.len() > MAX_TOKEN_NAME_BYTES {
        out = out.with_validation(
            "token_name",
            format!(
                "The token name is {} bytes long; it may be at most {MAX_TOKEN_NAME_BYTES}.",
                name.len()
            ),
        );
    } else if name.chars().any(char::is_control) {
        out = out.with_validation(
            "token_name",
            "The token name must not contain control characters.",
        );
    }
    const NANOS_PER_SECOND: i64 = 1_000_000_000;
    let lifetime = match req.lifetime {
        0 => None,
        n if n < 0 => {
            out = out.with_validation("lifetime", "The lifetime must not be negative.");
            None
        }
        n if n < NANOS_PER_SECOND => {
            out = out.with_validation(
                "lifetime",
                "The lifetime is in nanoseconds and must be at least one second.",
            );
            None
        }
        n if n > MAX_TOKEN_LIFETIME_NANOS => {
            out = out.with_validation(
                "lifetime",
                "The lifetime may be at most 876600 hours (100 years).",
            );
            None
        }
        n => u64::try_from(n).ok().map(std::time::Duration::from_nanos),
    };
    let scope = req.scope.trim();
    if !scope.is_empty() && scope != TOKEN_SCOPE_ALL {
        out = out.with_validation(
            "scope",
            format!("Only the {TOKEN_SCOPE_ALL:?} scope exists on this server."),
        );
    }
    if !out.validations.is_empty() {
        return Err(out);
    }
    Ok(ValidatedCreateToken {
        token_name: (!name.is_empty()).then(|| name.to_owned()),
        lifetime,
    })
}

/// An API token as listed (Coder's `APIKey`): never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct APIKey {
    /// The token's id (`DELETE /api/v2/users/{user}/keys/{id}` revokes it).
    pub id: Uuid,
    /// Whose token it is.
    pub user_id: Uuid,
    /// When the token last authenticated a request, to within a minute; Go's zero time
    /// (`0001-01-01T00:00:00Z`) when never.
    pub last_used: Timestamp,
    /// When the token stops working; `null` when it never expires (Coder's tokens always
    /// expire, so its clients read `null` as the zero time).
    pub expires_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change: the last use, else the creation.
    pub updated_at: Timestamp,
    /// Always `token`.
    pub login_type: LoginType,
    /// Always `all`.
    pub scope: String,
    /// The token's name, unique per user.
    pub token_name: String,
    /// The lifetime it was created with, in seconds; `0` when it never expires.
    pub lifetime_seconds: i64,
}

/// Response of `GET /api/v2/users` (Coder's `GetUsersResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct GetUsersResponse {
    /// One page of users. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<User>,
    /// How many users there are in all.
    pub count: i64,
}

/// Why `username` cannot be a username, or `None` when it can: 1 to
/// [`MAX_USERNAME_LEN`] bytes of ASCII letters and digits in groups joined by single
/// hyphens (Coder's rule), and not one of [`RESERVED_USERNAMES`].
pub fn username_problem(username: &str) -> Option<String> {
    if username.is_empty() {
        return Some("A username is required.".to_owned());
    }
    if username.len() > MAX_USERNAME_LEN {
        return Some(format!(
            "The username is {} bytes long; it may be at most {MAX_USERNAME_LEN}.",
            username.len()
        ));
    }
    let groups_ok = username
        .split('-')
        .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !groups_ok {
        return Some(
            "A username may contain only ASCII letters and digits, in groups joined by single \
             hyphens (no leading, trailing or doubled hyphens)."
                .to_owned(),
        );
    }
    if RESERVED_USERNAMES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(username))
    {
        return Some(format!("The username {username:?} is reserved."));
    }
    None
}

fn email_problem(email: &str) -> Option<String> {
    if email.len() > MAX_EMAIL_BYTES {
        return Some(format!(
            "The e-mail address is {} bytes long; it may be at most {MAX_EMAIL_BYTES}.",
            email.len()
        ));
    }
    let shape_ok = !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && email.matches('@').count() == 1;
    if !shape_ok {
        return Some("The e-mail address must look like name@example.com.".to_owned());
    }
    None
}

/// Validates `POST /api/v2/users`: a valid, unreserved `username` ([`username_problem`]); a
/// `name` of at most [`MAX_USER_REAL_NAME_CHARS`] characters without control characters
/// (trimmed); an optional `email` of the form `local@domain` (trimmed, at most
/// [`MAX_EMAIL_BYTES`]); at most [`MAX_CREATE_USER_ORGANIZATIONS`] organizations, none nil.
/// `password` and `login_type` are ignored. Every problem is reported, per field.
pub fn validate_create_user_request(
    req: &CreateUserRequest,
) -> Result<ValidatedCreateUser, Response> {
    let mut out = Response::new("Invalid user.");
    if let Some(problem) = username_problem(&req.username) {
        out = out.with_validation("username", problem);
    }
    let name = req.name.trim().to_owned();
    let name_chars = name.chars().count();
    if name_chars > MAX_USER_REAL_NAME_CHARS {
        out = out.with_validation(
            "name",
            format!(
                "The name is {name_chars} characters long; it may be at most \
                 {MAX_USER_REAL_NAME_CHARS}."
            ),
        );
    } else if name.chars().any(char::is_control) {
        out = out.with_validation("name", "The name must not contain control characters.");
    }
    let email = req.email.trim().to_owned();
    if !email.is_empty() {
        if let Some(problem) = email_problem(&email) {
            out = out.with_validation("email", problem);
        }
    }
    if req.organization_ids.len() > MAX_CREATE_USER_ORGANIZATIONS {
        out = out.with_validation(
            "organization_ids",
            format!(
                "{} organizations were given; at most {MAX_CREATE_USER_ORGANIZATIONS} are \
                 allowed.",
                req.organization_ids.len()
            ),
        );
    } else if req.organization_ids.iter().any(Uuid::is_nil) {
        out = out.with_validation("organization_ids", "Organization ids must not be nil.");
    }
    if !out.validations.is_empty() {
        return Err(out);
    }
    let mut seen = BTreeSet::new();
    let organization_ids = req
        .organization_ids
        .iter()
        .copied()
        .filter(|id| seen.insert(*id))
        .collect();
    Ok(ValidatedCreateUser {
        username: req.username.clone(),
        name,
        email,
        organization_ids,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn token(name: &str, lifetime: i64, scope: &str) -> Result<ValidatedCreateToken, Response> {
        validate_create_token_request(&CreateTokenRequest {
            lifetime,
            scope: scope.into(),
            token_name: name.into(),
        })
    }

    fn token_fields(r: Result<ValidatedCreateToken, Response>) -> Vec<String> {
        r.unwrap_err()
            .validations
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn token_requests_at_their_edges() {
        let ok = token("  ci  ", 0, "").unwrap();
        assert_eq!(ok.token_name.as_deref(), Some("ci"));
        assert_eq!(ok.lifetime, None);
        assert_eq!(token("", 0, "all").unwrap().token_name, None);
        let name = "n".repeat(MAX_TOKEN_NAME_BYTES);
        assert!(token(&name, 0, "").is_ok());
        assert_eq!(
            token_fields(token(&format!("{name}n"), 0, "")),
            ["token_name"]
        );
        assert_eq!(token_fields(token("a\nb", 0, "")), ["token_name"]);
        // Lifetimes: one second to 100 years, in nanoseconds.
        let second = 1_000_000_000;
        assert_eq!(
            token("x", second, "").unwrap().lifetime,
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(token_fields(token("x", second - 1, "")), ["lifetime"]);
        assert_eq!(token_fields(token("x", -1, "")), ["lifetime"]);
        assert!(token("x", MAX_TOKEN_LIFETIME_NANOS, "").is_ok());
        assert_eq!(
            token_fields(token("x", MAX_TOKEN_LIFETIME_NANOS + 1, "")),
            ["lifetime"]
        );
        assert_eq!(
            token_fields(token("a\u{0}", -5, "application_connect")),
            ["token_name", "lifetime", "scope"]
        );
        // Go's duration JSON is a bare integer of nanoseconds.
        let req: CreateTokenRequest =
            serde_json::from_str(r#"{"token_name":"ci","lifetime":86400000000000}"#).unwrap();
        assert_eq!(
            validate_create_token_request(&req).unwrap().lifetime,
            Some(std::time::Duration::from_secs(86_400))
        );
    }

    fn req(username: &str) -> CreateUserRequest {
        CreateUserRequest {
            username: username.into(),
            ..Default::default()
        }
    }

    #[test]
    fn usernames_follow_coders_rule() {
        for ok in [
            "a",
            "alice",
            "Alice-2",
            "a-b-c",
            &"x".repeat(MAX_USERNAME_LEN),
        ] {
            assert_eq!(username_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "a b",
            "a_b",
            "ä",
            "me",
            "ME",
            &"x".repeat(MAX_USERNAME_LEN + 1),
        ] {
            assert!(username_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn every_problem_is_reported_per_field() {
        let r = CreateUserRequest {
            username: "a--b".into(),
            name: "x".repeat(MAX_USER_REAL_NAME_CHARS + 1),
            email: "not an email".into(),
            organization_ids: vec![Uuid::nil()],
            ..Default::default()
        };
        let err = validate_create_user_request(&r).unwrap_err();
        let fields: Vec<_> = err.validations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["username", "name", "email", "organization_ids"]);
    }

    #[test]
    fn trims_and_dedups() {
        let org = Uuid::from_u128(7);
        let v = validate_create_user_request(&CreateUserRequest {
            username: "bob".into(),
            name: "  Bob  ".into(),
            email: " bob@example.com ".into(),
            organization_ids: vec![org, org],
            password: Some(SecretString::from("hunter2")),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(v.name, "Bob");
        assert_eq!(v.email, "bob@example.com");
        assert_eq!(v.organization_ids, vec![org]);
        let name_at_limit = CreateUserRequest {
            name: "é".repeat(MAX_USER_REAL_NAME_CHARS),
            ..req("bob")
        };
        assert!(validate_create_user_request(&name_at_limit).is_ok());
        let email_at_limit = CreateUserRequest {
            email: format!("{}@x", "a".repeat(MAX_EMAIL_BYTES - 2)),
            ..req("bob")
        };
        assert!(validate_create_user_request(&email_at_limit).is_ok());
        let email_over = CreateUserRequest {
            email: format!("{}@x", "a".repeat(MAX_EMAIL_BYTES - 1)),
            ..req("bob")
        };
        assert!(validate_create_user_request(&email_over).is_err());
        let orgs_over = CreateUserRequest {
            organization_ids: (1..=MAX_CREATE_USER_ORGANIZATIONS as u128 + 1)
                .map(Uuid::from_u128)
                .collect(),
            ..req("bob")
        };
        assert!(validate_create_user_request(&orgs_over).is_err());
    }

    #[test]
    fn user_json_matches_coders_shape() {
        let t: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let user = User {
            id: Uuid::from_u128(1),
            username: "bob".into(),
            avatar_url: String::new(),
            name: String::new(),
            email: "bob@example.com".into(),
            created_at: t,
            updated_at: t,
            last_seen_at: None,
            status: UserStatus::Active,
            login_type: LoginType::None,
            organization_ids: vec![Uuid::from_u128(2)],
            roles: vec![SlimRole {
                name: "member".into(),
                display_name: "Member".into(),
                organization_id: String::new(),
            }],
        };
        let json = serde_json::to_string(&user).unwrap();
        assert_eq!(
            json,
            r#"{"id":"00000000-0000-0000-0000-000000000001","username":"bob","email":"bob@example.com","created_at":"2026-03-01T10:00:00Z","updated_at":"2026-03-01T10:00:00Z","status":"active","login_type":"none","organization_ids":["00000000-0000-0000-0000-000000000002"],"roles":[{"name":"member","display_name":"Member"}]}"#
        );
        // A Coder server's user (extra fields, null arrays, an unknown status) still reads.
        let coder = r#"{"id":"00000000-0000-0000-0000-000000000001","username":"bob","email":"","created_at":"2026-03-01T10:00:00Z","updated_at":"2026-03-01T10:00:00Z","last_seen_at":"2026-03-01T10:00:00Z","status":"frozen","login_type":"","theme_preference":"dark","organization_ids":null,"roles":null}"#;
        let back: User = serde_json::from_str(coder).unwrap();
        assert!(back.status.is_unknown());
        assert!(back.organization_ids.is_empty());
        // The token response never prints the token in Debug output.
        let key = GenerateAPIKeyResponse {
            key: SecretString::from("chatd_secret"),
        };
        assert!(!format!("{key:?}").contains("chatd_secret"));
        assert_eq!(
            serde_json::to_string(&key).unwrap(),
            r#"{"key":"chatd_secret"}"#
        );
    }
}
