//! Site roles: what a user may do beyond their own chats and settings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// A user's site role, stored with the user and carried by the [`Actor`](crate::Actor).
///
/// On the wire and in the database it is its lowercase name ([`Role::as_str`]); any other
/// text is refused when parsed ([`Role::from_str`], serde), so an unknown role is a 400 at
/// an API edge and a [`ErrorKind::CorruptRow`] when read back from the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// Administrators: the deployment's configuration (providers, models, prompts,
    /// overrides, MCP servers), every user, and read access to every chat.
    Admin,
    /// Everyone else: their own chats, keys, prompt and tokens.
    Member,
}

impl Role {
    /// Every role, most privileged first.
    pub const ALL: [Role; 2] = [Role::Admin, Role::Member];

    /// The role's name: `admin` or `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// The name shown to people: `Administrator` or `Member`.
    pub fn display_name(self) -> &'static str {
        match self {
            Role::Admin => "Administrator",
            Role::Member => "Member",
        }
    }

    /// Whether the role administers the deployment.
    pub fn is_admin(self) -> bool {
        self == Role::Admin
    }

    /// The names of every role as a sentence fragment: `"admin" and "member"`.
    pub fn names() -> String {
        let quoted: Vec<String> = Role::ALL
            .iter()
            .map(|r| format!("{:?}", r.as_str()))
            .collect();
        match quoted.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            Some((last, _)) => last.clone(),
            None => String::new(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    /// The role named exactly `s` ([`Role::as_str`]); [`ErrorKind::InvalidArgument`]
    /// otherwise, quoting at most 64 characters of `s`.
    fn from_str(s: &str) -> Result<Role, Error> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let shown: String = s.chars().take(64).collect();
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("{shown:?} is not a role; the roles are {}.", Role::names()),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
        for bad in ["owner", "Admin", "", " admin"] {
            let err = bad.parse::<Role>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(serde_json::from_str::<Role>(&format!("{bad:?}")).is_err());
        }
        assert_eq!(
            "owner".parse::<Role>().unwrap_err().to_string(),
            "\"owner\" is not a role; the roles are \"admin\" and \"member\"."
        );
        assert!(Role::Admin.is_admin() && !Role::Member.is_admin());
        assert_eq!(Role::Admin.display_name(), "Administrator");
    }
}
