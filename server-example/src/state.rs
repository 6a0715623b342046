//! What every handler shares, and how a server is put together from its options.

use std::sync::Arc;
use std::time::Duration;

use chatd_core::store::{NewUser, Store, StoreOptions};
use chatd_core::{Engine, EngineConfig, EngineSettings, Keyring, ModelResolver};
use chatprovider::ProviderApiKeys;
use codersdk::Uuid;

use crate::metrics::Metrics;

/// Name of the organization every server has; users created through the API join it.
pub const DEFAULT_ORGANIZATION_NAME: &str = "default";

/// Username of the administrator created for `CHATD_ADMIN_TOKEN` or on first start.
pub const ADMIN_USERNAME: &str = "admin";

/// The handlers' shared state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    engine: Engine,
    keyring: Arc<Keyring>,
    deployment_keys: ProviderApiKeys,
    metrics: Metrics,
    default_organization: Uuid,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("engine", &self.inner.engine)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over a running engine.
    pub fn new(
        engine: Engine,
        keyring: Arc<Keyring>,
        deployment_keys: ProviderApiKeys,
        default_organization: Uuid,
    ) -> Self {
        AppState {
            inner: Arc::new(StateInner {
                engine,
                keyring,
                deployment_keys,
                metrics: Metrics::default(),
                default_organization,
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.inner.engine.store()
    }

    /// The keyring that seals stored secrets.
    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// Provider keys from the environment (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`).
    pub fn deployment_keys(&self) -> &ProviderApiKeys {
        &self.inner.deployment_keys
    }

    /// The Prometheus metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The organization every user belongs to.
    pub fn default_organization(&self) -> Uuid {
        self.inner.default_organization
    }
}

/// Everything needed to build a server's state.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// The database.
    pub database: StoreOptions,
    /// Seals stored secrets.
    pub keyring: Arc<Keyring>,
    /// Provider keys from the environment.
    pub deployment_keys: ProviderApiKeys,
    /// When set, an `admin` user holding this token exists after start-up.
    pub admin_token: Option<String>,
    /// Engine intervals and limits.
    pub engine: EngineSettings,
    /// Overrides where models come from (tests script them); `None` uses the store's
    /// configuration with the demo model as a fallback.
    pub models: Option<Arc<dyn ModelResolver>>,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("database", &self.database.url)
            .finish_non_exhaustive()
    }
}

impl ServerOptions {
    /// Options with default engine settings, no admin token and no override.
    pub fn new(database: StoreOptions, keyring: Arc<Keyring>) -> Self {
        ServerOptions {
            database,
            keyring,
            deployment_keys: ProviderApiKeys::new(),
            admin_token: None,
            engine: EngineSettings::default(),
            models: None,
        }
    }
}

/// What [`build`] did on the way.
#[derive(Debug)]
#[non_exhaustive]
pub struct Started {
    /// The state to serve.
    pub state: AppState,
    /// A token generated for a freshly created admin (first start without
    /// `CHATD_ADMIN_TOKEN`); print it once.
    pub generated_admin_token: Option<codersdk::SecretString>,
}

/// Connects, migrates, makes sure the default organization and the admin exist, and starts
/// the engine.
pub async fn build(options: ServerOptions) -> chatd_core::Result<Started> {
    let store = Store::connect_with(options.database.clone()).await?;
    build_on(store, options).await
}

/// [`build`] on an open store.
pub async fn build_on(store: Store, options: ServerOptions) -> chatd_core::Result<Started> {
    let org = match store
        .get_organization_by_name(DEFAULT_ORGANIZATION_NAME)
        .await?
    {
        Some(org) => org,
        None => store.create_organization(DEFAULT_ORGANIZATION_NAME).await?,
    };
    let admin = match store.get_user_by_username(ADMIN_USERNAME).await? {
        Some(user) => (user, false),
        None => (
            store
                .create_user(NewUser {
                    username: ADMIN_USERNAME.into(),
                    name: "Administrator".into(),
                    role: chatd_core::Role::Admin,
                })
                .await?,
            true,
        ),
    };
    store.add_member(org.id, admin.0.id).await?;
    let generated_admin_token = match &options.admin_token {
        Some(token) => {
            store.insert_api_token(admin.0.id, token).await?;
            None
        }
        None if admin.1 => Some(store.create_api_token(admin.0.id).await?),
        None => None,
    };
    let models = match options.models.clone() {
        Some(models) => models,
        None => crate::demo::resolver(
            store.clone(),
            Arc::clone(&options.keyring),
            options.deployment_keys.clone(),
        ),
    };
    let config = EngineConfig::new(options.database.clone(), models)
        .with_settings(options.engine.clone())
        .with_tools(crate::demo::tools());
    let engine = Engine::with_store(store, config).await?;
    Ok(Started {
        state: AppState::new(engine, options.keyring, options.deployment_keys, org.id),
        generated_admin_token,
    })
}

/// How long graceful shutdown waits for in-flight HTTP requests.
pub const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
