//! Users and their API tokens: creating users, listing them, reading an account, changing
//! a role; issuing, listing, reading and revoking tokens. Tokens are random, returned once,
//! and stored only as a hash (docs/api-tokens.md).

use codersdk::{CreateTokenRequest, CreateUserRequest, SecretString, Uuid};

use super::{invalid, require_admin, Admin};
use crate::engine::Actor;
use crate::error::{Error, ErrorKind, Result};
use crate::role::Role;
use crate::store::{Account, ApiToken, NewAccount, NewApiToken, TOKEN_NOT_FOUND_MESSAGE};

/// The answer for a user that does not exist (HTTP 404).
pub const USER_NOT_FOUND_MESSAGE: &str = "User not found.";

/// Which user an operation names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UserRef {
    /// The actor themself.
    Me,
    /// The user with this id.
    Id(Uuid),
    /// The user with this username, compared case-insensitively.
    Username(String),
}

/// One page of accounts and how many users there are in all.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountPage {
    /// The accounts, by username (case-insensitively).
    pub accounts: Vec<Account>,
    /// Users in all.
    pub count: i64,
}

/// A token [`Admin::create_api_token`] issued.
#[derive(Debug)]
#[non_exhaustive]
pub struct IssuedToken {
    /// Whose token it is.
    pub user_id: Uuid,
    /// The token; stored only as a hash, so it cannot be shown again.
    pub token: SecretString,
    /// What is stored of it.
    pub stored: ApiToken,
}

fn user_not_found() -> Error {
    Error::new(ErrorKind::NotFound, USER_NOT_FOUND_MESSAGE)
}

impl Admin {
    /// Whether `user` names `actor`. Decided without looking the named user up (only the
    /// actor's own name is read), so that the answer to someone else's name is the same
    /// whether that user exists or not.
    async fn names_actor(&self, actor: &Actor, user: &UserRef) -> Result<bool> {
        Ok(match user {
            UserRef::Me => true,
            UserRef::Id(id) => *id == actor.user_id,
            UserRef::Username(name) => self
                .store()
                .get_account(actor.user_id)
                .await?
                .is_some_and(|me| me.username.eq_ignore_ascii_case(name)),
        })
    }

    /// [`ErrorKind::Forbidden`] ("Only administrators can {what} of other users.") unless
    /// `actor` is an administrator or `user` names them.
    pub(super) async fn require_self_or_admin(
        &self,
        actor: &Actor,
        user: &UserRef,
        what: &str,
    ) -> Result<()> {
        if actor.admin || self.names_actor(actor, user).await? {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Forbidden,
                format!("Only administrators can {what} of other users."),
            ))
        }
    }

    /// The account `user` names, without authorization; [`USER_NOT_FOUND_MESSAGE`].
    pub(super) async fn resolve(&self, actor: &Actor, user: &UserRef) -> Result<Account> {
        let store = self.store();
        let found = match user {
            UserRef::Me => store.get_account(actor.user_id).await?,
            UserRef::Id(id) => store.get_account(*id).await?,
            UserRef::Username(name) => store.find_account_by_username(name).await?,
        };
        found.ok_or_else(user_not_found)
    }

    /// Creates a member (administrators), validated with
    /// `codersdk::validate_create_user_request`; they join the request's organizations, or
    /// `default_organization` when it names none. [`ErrorKind::Conflict`] for a taken
    /// username or e-mail address.
    pub async fn create_user(
        &self,
        actor: &Actor,
        request: &CreateUserRequest,
        default_organization: Uuid,
    ) -> Result<Account> {
        require_admin(actor)?;
        let valid = codersdk::validate_create_user_request(request).map_err(invalid)?;
        let organization_ids = if valid.organization_ids.is_empty() {
            vec![default_organization]
        } else {
            valid.organization_ids
        };
        self.store()
            .create_account(&NewAccount {
                username: valid.username,
                name: valid.name,
                email: valid.email,
                role: Role::Member,
                organization_ids,
            })
            .await
    }

    /// One page of accounts (administrators); see
    /// [`Store::list_accounts`](crate::store::Store::list_accounts) for the clamping.
    pub async fn list_users(&self, actor: &Actor, limit: i64, offset: i64) -> Result<AccountPage> {
        require_admin(actor)?;
        let (accounts, count) = self.store().list_accounts(limit, offset).await?;
        Ok(AccountPage { accounts, count })
    }

    /// The account `user` names: administrators read anyone, others only themselves
    /// ([`ErrorKind::Forbidden`] before any lookup).
    pub async fn get_user(&self, actor: &Actor, user: &UserRef) -> Result<Account> {
        self.require_self_or_admin(actor, user, "view the accounts")
            .await?;
        self.resolve(actor, user).await
    }

    /// Sets the site role of the user `user` names (administrators). Nobody changes their
    /// own roles ([`ErrorKind::InvalidArgument`], so an administrator cannot lock themself
    /// out by accident), and the last administrator keeps the role
    /// ([`ErrorKind::Conflict`]).
    pub async fn set_user_role(
        &self,
        actor: &Actor,
        user: &UserRef,
        role: Role,
    ) -> Result<Account> {
        require_admin(actor)?;
        let target = self.resolve(actor, user).await?;
        if target.id == actor.user_id {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "You cannot change your own roles.",
            ));
        }
        self.store().set_user_role(target.id, role).await
    }

    /// Issues a new API token for the user `user` names: administrators for anyone, others
    /// for themselves ([`ErrorKind::Forbidden`] before any lookup).
    pub async fn create_api_token(&self, actor: &Actor, user: &UserRef) -> Result<IssuedToken> {
        self.issue_token(actor, user, NewApiToken::default()).await
    }

    /// Issues a token as `request` asks (`POST /users/{user}/keys/tokens`): a name (made
    /// up when empty; [`ErrorKind::Conflict`] when the user has one of that name) and a
    /// lifetime (none: until revoked), validated with
    /// `codersdk::validate_create_token_request`. Administrators for anyone, others for
    /// themselves.
    pub async fn create_named_api_token(
        &self,
        actor: &Actor,
        user: &UserRef,
        request: &CreateTokenRequest,
    ) -> Result<IssuedToken> {
        self.require_self_or_admin(actor, user, "create API tokens")
            .await?;
        let valid = codersdk::validate_create_token_request(request).map_err(invalid)?;
        self.issue_token(
            actor,
            user,
            NewApiToken::new(valid.token_name, valid.lifetime),
        )
        .await
    }

    async fn issue_token(
        &self,
        actor: &Actor,
        user: &UserRef,
        new: NewApiToken,
    ) -> Result<IssuedToken> {
        self.require_self_or_admin(actor, user, "create API tokens")
            .await?;
        let target = self.resolve(actor, user).await?;
        let (stored, token) = self.store().issue_api_token(target.id, new).await?;
        Ok(IssuedToken {
            user_id: target.id,
            token,
            stored,
        })
    }

    /// The tokens of the user `user` names, never their secrets, expired ones included
    /// (revoked ones are gone): administrators for anyone, others for themselves.
    pub async fn list_api_tokens(&self, actor: &Actor, user: &UserRef) -> Result<Vec<ApiToken>> {
        self.require_self_or_admin(actor, user, "list the API tokens")
            .await?;
        let target = self.resolve(actor, user).await?;
        self.store().list_api_tokens(target.id).await
    }

    /// Token `id` of the user `user` names; [`ErrorKind::NotFound`] when that user has no
    /// such token.
    pub async fn get_api_token(&self, actor: &Actor, user: &UserRef, id: Uuid) -> Result<ApiToken> {
        self.require_self_or_admin(actor, user, "read the API tokens")
            .await?;
        let target = self.resolve(actor, user).await?;
        self.store()
            .get_api_token(target.id, id)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, TOKEN_NOT_FOUND_MESSAGE))
    }

    /// Revokes token `id` of the user `user` names: it stops authenticating at once, on
    /// every server sharing the database. [`ErrorKind::NotFound`] when that user has no
    /// such token; [`ErrorKind::Conflict`] when it is the last live token of any
    /// administrator (create another first). Administrators for anyone, others for
    /// themselves.
    pub async fn revoke_api_token(&self, actor: &Actor, user: &UserRef, id: Uuid) -> Result<()> {
        self.require_self_or_admin(actor, user, "revoke the API tokens")
            .await?;
        let target = self.resolve(actor, user).await?;
        self.store().revoke_api_token(target.id, id).await
    }
}
