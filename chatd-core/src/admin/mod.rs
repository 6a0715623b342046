//! The administration handle ([`Admin`]): the deployment's configuration, users and
//! tokens behind one type that authorizes every call.

mod aibridge;
mod catalogue;
mod config;
mod costs;
mod debug;
mod interceptions;
mod mcp;
mod mcp_auth;
mod usage_limits;
mod users;

use std::sync::Arc;

use chatprovider::ProviderApiKeys;
use codersdk::{SecretString, Uuid};

use crate::engine::{Actor, StoreModelResolver};
use crate::error::{Error, ErrorKind, Result};
use crate::role::Role;
use crate::secrets::Keyring;
use crate::store::{NewUser, Store, StoreOptions, TokenCheck, User};

pub use debug::{DEBUG_LOGGING_FORCED_MESSAGE, DEBUG_LOGGING_NOT_ALLOWED_MESSAGE};
pub use mcp::McpRedirectUri;
pub use mcp_auth::{McpOAuth2Callback, McpOAuth2Completed};
pub use usage_limits::is_unpriced_model;
pub use users::{AccountPage, IssuedToken, UserRef, USER_NOT_FOUND_MESSAGE};

/// The administration handle: everything a server does besides chats — the
/// deployment's configuration (providers, model configs, the model catalogue, prompts,
/// model overrides, MCP servers), users' own keys and prompts, users and their API tokens
/// — behind one type that takes the [`Actor`] asking, validates the request with the
/// shared `codersdk` / `chatprovider` validators, authorizes it, and holds the [`Keyring`]
/// that seals stored secrets.
///
/// Authorization, per operation group (docs/server-admin.md):
///
/// - **Administrators only** ([`ErrorKind::Forbidden`],
///   [`ADMIN_ONLY_MESSAGE`](crate::ADMIN_ONLY_MESSAGE)): provider configs, writing model
///   configs, the deployment system prompt, writing model overrides, writing MCP server
///   configs, creating and listing users, changing roles.
/// - **Every user, for themself**: their own provider keys, their personal prompt, their
///   MCP header values and OAuth2 connections (on the MCP servers they can see).
/// - **Every user, filtered**: model configs and MCP servers (members see enabled ones,
///   MCP configs redacted), the model catalogue (by the key policy as it applies to
///   them), the model overrides.
/// - **Administrators, or the user themself**: reading an account, issuing an API token,
///   the cost summary ([`Admin::cost_summary`]).
/// - **Administrators only**, reads: every user's spend ([`Admin::cost_users`]).
///
/// The handle is cheap to clone. It is built beside the [`Engine`](crate::Engine) on the
/// same database ([`Admin::connect`], then [`Engine::with_admin`](crate::Engine::with_admin)),
/// or over an open [`Store`] ([`Admin::new`]).
#[derive(Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    keyring: Arc<Keyring>,
    deployment_keys: ProviderApiKeys,
    /// The client of OAuth2 requests to MCP servers' authorization servers, built on first
    /// use ([`crate::mcp::oauth::http_client`]).
    oauth_http: std::sync::OnceLock<reqwest::Client>,
    /// Told of every committed configuration write ([`Admin::on_config_change`]).
    announcer: std::sync::RwLock<Option<ConfigAnnouncer>>,
}

/// A callback told of configuration changes; see [`Admin::on_config_change`].
pub type ConfigAnnouncer = Arc<dyn Fn(crate::cluster::ConfigChange) + Send + Sync>;

impl std::fmt::Debug for Admin {
    // The keyring and the deployment keys are secrets: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("dialect", &self.inner.store.dialect())
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// A handle over an open store. `keyring` seals and opens stored secrets;
    /// `deployment_keys` are the environment's provider keys (`OPENAI_API_KEY`, …), which
    /// stand in for unconfigured providers and missing central keys.
    pub fn new(store: Store, keyring: Arc<Keyring>, deployment_keys: ProviderApiKeys) -> Admin {
        Admin {
            inner: Arc::new(Inner {
                store,
                keyring,
                deployment_keys,
                oauth_http: std::sync::OnceLock::new(),
                announcer: std::sync::RwLock::new(None),
            }),
        }
    }

    /// Calls `announce` after every committed configuration write made through this
    /// handle (providers, keys, model configs, prompts, overrides, MCP servers): how a
    /// server hands changes to [`Engine::announce_config_change`](crate::Engine::announce_config_change),
    /// which tells every replica's caches. Replaces an earlier callback.
    pub fn on_config_change(&self, announce: ConfigAnnouncer) {
        let mut slot = self
            .inner
            .announcer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(announce);
    }

    /// Passes `result` on, announcing `change` when it is a success.
    pub(crate) fn announced<T>(
        &self,
        result: Result<T>,
        change: crate::cluster::ConfigChange,
    ) -> Result<T> {
        if result.is_ok() {
            let announcer = self
                .inner
                .announcer
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if let Some(announce) = announcer {
                announce(change);
            }
        }
        result
    }

    /// Opens the database (applying migrations) and returns a handle over it; start the
    /// engine beside it with [`Engine::with_admin`](crate::Engine::with_admin).
    pub async fn connect(
        database: StoreOptions,
        keyring: Arc<Keyring>,
        deployment_keys: ProviderApiKeys,
    ) -> Result<Admin> {
        let store = Store::connect_with(database).await?;
        Ok(Admin::new(store, keyring, deployment_keys))
    }

    /// The store underneath, for the engine built beside this handle.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    fn deployment_keys(&self) -> &ProviderApiKeys {
        &self.inner.deployment_keys
    }

    /// The OAuth2 HTTP client, built on first use.
    fn oauth_http(&self) -> Result<&reqwest::Client> {
        if let Some(client) = self.inner.oauth_http.get() {
            return Ok(client);
        }
        let client = crate::mcp::oauth::http_client()?;
        // Another caller may have won the race: either client will do.
        Ok(self.inner.oauth_http.get_or_init(|| client))
    }

    /// The model resolver over this handle's configuration: the engine's
    /// [`ModelResolver`](crate::ModelResolver) when models come from configured providers.
    pub fn model_resolver(&self) -> StoreModelResolver {
        StoreModelResolver::new(
            self.inner.store.clone(),
            Arc::clone(&self.inner.keyring),
            self.inner.deployment_keys.clone(),
        )
    }

    /// Closes the database cleanly, waiting for connections in use to be returned (on
    /// SQLite after checkpointing and truncating the write-ahead log, see
    /// [`Store::close`]): the last step of a graceful stop, after
    /// [`Engine::shutdown`](crate::Engine::shutdown). Every clone of this handle, and an
    /// engine built beside it, stops working.
    pub async fn close(&self) {
        self.inner.store.close().await;
    }

    /// Makes sure the deployment's first organization and administrator exist: the
    /// organization named `bootstrap.organization`, and a user named
    /// `bootstrap.admin_username` with [`Role::Admin`] who is a member of it. Safe to run on
    /// every start; an existing user of that name keeps their role.
    ///
    /// With [`Bootstrap::admin_token`] the administrator holds that token afterwards;
    /// without one, an administrator created now gets a fresh token, returned once in
    /// [`Bootstrapped::generated_admin_token`].
    pub async fn bootstrap(&self, bootstrap: &Bootstrap) -> Result<Bootstrapped> {
        let store = &self.inner.store;
        let org = match store
            .get_organization_by_name(&bootstrap.organization)
            .await?
        {
            Some(org) => org,
            None => store.create_organization(&bootstrap.organization).await?,
        };
        let (admin, created) = match store
            .get_user_by_username(&bootstrap.admin_username)
            .await?
        {
            Some(user) => (user, false),
            None => (
                store
                    .create_user(NewUser {
                        username: bootstrap.admin_username.clone(),
                        name: bootstrap.admin_name.clone(),
                        role: Role::Admin,
                    })
                    .await?,
                true,
            ),
        };
        store.add_member(org.id, admin.id).await?;
        let mut admin_token_refused = false;
        let generated_admin_token = match &bootstrap.admin_token {
            Some(token) => {
                let check = store.insert_api_token(admin.id, token.expose()).await?;
                admin_token_refused = !matches!(
                    check,
                    TokenCheck::Valid { ref user, .. } if user.id == admin.id
                );
                None
            }
            None if created => Some(store.create_api_token(admin.id).await?),
            None => None,
        };
        Ok(Bootstrapped {
            organization_id: org.id,
            admin_id: admin.id,
            generated_admin_token,
            admin_token_refused,
        })
    }

    /// Makes sure a user named `username` exists and belongs to `organization`, creating it
    /// with `role` when it does not: for an application that authenticates its own users
    /// and provisions them into chatd on first sign-in (chats, files and keys belong to
    /// users). Operator-level, like [`Admin::bootstrap`], so it takes no actor. An existing
    /// user keeps their name and role.
    pub async fn provision_user(
        &self,
        username: &str,
        name: &str,
        role: Role,
        organization: Uuid,
    ) -> Result<User> {
        let store = &self.inner.store;
        let user = match store.get_user_by_username(username).await? {
            Some(user) => user,
            None => {
                store
                    .create_user(NewUser {
                        username: username.to_owned(),
                        name: name.to_owned(),
                        role,
                    })
                    .await?
            }
        };
        store.add_member(organization, user.id).await?;
        Ok(user)
    }

    /// The user a presented API token belongs to; `None` for an unknown, empty or
    /// over-long token (at most [`MAX_API_TOKEN_LEN`](crate::store::MAX_API_TOKEN_LEN)
    /// bytes are hashed). The user's [`User::actor`] is who then asks.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>> {
        self.inner.store.authenticate_token(token).await
    }

    /// What a presented API token is: live (with its user), expired (and when), revoked,
    /// or unknown — so that a refusal can say why. Reads the database every time: a
    /// revocation holds at once on every server sharing it.
    pub async fn check_token(&self, token: &str) -> Result<TokenCheck> {
        self.inner.store.check_api_token(token).await
    }

    /// The user with this id, for an application that authenticated the caller itself
    /// (`None` when there is no such user). Like [`Admin::authenticate`], this is how a
    /// request learns who asks, so it takes no actor.
    pub async fn authenticated_user(&self, user_id: Uuid) -> Result<Option<User>> {
        self.inner.store.get_user(user_id).await
    }
}

/// What [`Admin::bootstrap`] makes sure exists.
#[derive(Clone)]
#[non_exhaustive]
pub struct Bootstrap {
    /// Name of the organization.
    pub organization: String,
    /// Username of the administrator.
    pub admin_username: String,
    /// Display name given to the administrator when created.
    pub admin_name: String,
    /// A token the operator chose for the administrator (for example from the
    /// environment); stored hashed.
    pub admin_token: Option<SecretString>,
}

impl std::fmt::Debug for Bootstrap {
    // The token is a secret: only whether there is one is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field("organization", &self.organization)
            .field("admin_username", &self.admin_username)
            .field("admin_name", &self.admin_name)
            .field("admin_token", &self.admin_token.is_some())
            .finish()
    }
}

impl Bootstrap {
    /// Organization `organization` with administrator `admin_username` (display name
    /// "Administrator"), no chosen token.
    pub fn new(organization: impl Into<String>, admin_username: impl Into<String>) -> Self {
        Bootstrap {
            organization: organization.into(),
            admin_username: admin_username.into(),
            admin_name: "Administrator".to_owned(),
            admin_token: None,
        }
    }

    /// Sets the administrator's token.
    pub fn with_admin_token(mut self, token: Option<SecretString>) -> Self {
        self.admin_token = token;
        self
    }
}

/// What [`Admin::bootstrap`] found or made.
#[derive(Debug)]
#[non_exhaustive]
pub struct Bootstrapped {
    /// The organization.
    pub organization_id: Uuid,
    /// The administrator.
    pub admin_id: Uuid,
    /// A token generated for an administrator created now without a chosen token; it is
    /// stored hashed only, so show it once.
    pub generated_admin_token: Option<SecretString>,
    /// The chosen [`Bootstrap::admin_token`] does not authenticate: it was revoked (a
    /// revoked token stays revoked when it is stored again) or belongs to another user.
    pub admin_token_refused: bool,
}

/// [`ErrorKind::Forbidden`] unless `actor` is an administrator.
fn require_admin(actor: &Actor) -> Result<()> {
    actor.require_admin()
}

/// A validator's refusal as this crate's error (HTTP 400 with the validator's body).
fn invalid(response: codersdk::Response) -> Error {
    Error::with_response(ErrorKind::InvalidArgument, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::engine::ADMIN_ONLY_MESSAGE;

    #[test]
    fn members_are_refused_admin_operations_with_one_message() {
        let member = Actor::user(Uuid::new_v4());
        let err = require_admin(&member).map_err(|e| (e.kind(), e.to_string()));
        assert_eq!(
            err,
            Err((ErrorKind::Forbidden, ADMIN_ONLY_MESSAGE.to_owned()))
        );
        assert!(require_admin(&Actor::admin(Uuid::new_v4())).is_ok());
    }

    #[test]
    fn bootstrap_debug_hides_the_token() {
        let b = Bootstrap::new("default", "admin")
            .with_admin_token(Some(SecretString::from("chatd_secret".to_owned())));
        let shown = format!("{b:?}");
        assert!(!shown.contains("chatd_secret"), "{shown}");
        assert!(shown.contains("admin_token: true"), "{shown}");
    }
}
