//! The hot-config cache (engine.md §12, docs/engine-design.md "The hot-config cache"): the
//! configuration every turn reads at set-up — providers and their keys, model configs, the
//! default model config, the deployment prompt settings and model overrides, the owner's
//! personal prompt, own keys and compaction thresholds — kept in memory for a few seconds,
//! so that a warm turn reads none of it from the database.
//!
//! One [`ConfigCache`] belongs to each [`Store`](crate::store::Store) and is shared by all
//! its clones: the engine, the [`Admin`](crate::Admin) handle and every model resolver built
//! over the same store read through the same entries.
//!
//! Freshness:
//!
//! - **Invalidation after commit.** Every configuration write of the store drops what it
//!   changed from its own store's cache once its transaction committed
//!   ([`ConfigCache::apply`]), so a process reads its own writes at once, whoever wrote
//!   (the [`Admin`](crate::Admin) handle, a route calling the store, a test). Other
//!   replicas hear of the change through the engine's relay
//!   ([`Engine::announce_config_change`](crate::Engine::announce_config_change)) and drop
//!   the same entries; a gap in the relay clears the whole cache.
//! - **Time to live.** An entry is used for at most its TTL ([`PROVIDERS_TTL`], …) after it
//!   was loaded: the bound on staleness when a notification is lost, and for writes made
//!   behind the store's back (SQL by hand).
//! - **Generations.** Each map counts its invalidations. A load remembers the count when it
//!   starts and stores its result only if no invalidation happened meanwhile: a load that
//!   read the database before a write committed cannot put the old value back after the
//!   write's invalidation. (Its caller still gets the value it read, as an uncached read
//!   started at that moment would have.)
//! - **Single flight.** Concurrent misses of one key make one database read; the others
//!   wait for it and take its result from the cache.
//!
//! Secrets stay sealed: providers' central keys and users' own keys are cached as the
//! sealed text stored in the database and opened with the keyring at each use, only the
//! turn's provider's, exactly as an uncached read did. Nothing here prints a key, sealed or
//! not: the `Debug` output shows entry counts only.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use codersdk::{ChatModelConfig, ChatProviderConfig, Uuid};
use tokio::time::Instant;

use crate::cluster::ConfigChange;
use crate::error::Result;
use crate::store::SystemPromptConfig;

/// How long the provider configs (with their sealed central keys) are used before they
/// are read again (engine.md §12: 10 s).
pub const PROVIDERS_TTL: Duration = Duration::from_secs(10);

/// How long a model config (by id), the default model config and "is any model config
/// configured" are used (engine.md §12: 10 s).
pub const MODEL_CONFIG_TTL: Duration = Duration::from_secs(10);

/// How long the deployment's prompt settings, plan-mode instructions and model overrides
/// are used: deployment-wide settings like the providers, so the providers' 10 s.
pub const DEPLOYMENT_CONFIG_TTL: Duration = Duration::from_secs(10);

/// How long a user's personal prompt is used (engine.md §12: 5 s).
pub const USER_PROMPT_TTL: Duration = Duration::from_secs(5);

/// How long a user's own (sealed) provider keys are used: keys go with the providers
/// (engine.md §12 "providers (+ keys)"), so 10 s.
pub const USER_KEYS_TTL: Duration = Duration::from_secs(10);

/// How long a user's own compaction thresholds are used: a personal setting like the
/// personal prompt, so 5 s.
pub const USER_THRESHOLDS_TTL: Duration = Duration::from_secs(5);

/// How long a user's own debug-logging toggle is used: a personal setting like the
/// personal prompt, so 5 s.
pub const USER_DEBUG_LOGGING_TTL: Duration = Duration::from_secs(5);

/// Most users whose personal prompt, own keys or own thresholds each per-user map holds.
/// Past it, a new entry first drops the expired ones, then the one loaded longest ago:
/// memory stays bounded however many users chat, and the active ones stay warm.
pub const MAX_CACHED_USERS: usize = 4_096;

/// Most model configs (by id) the cache holds, the same way. Ids come from requests
/// (a message may name any id, and unknown ones are remembered as unknown), so the map
/// needs a bound although deployments have few model configs.
pub const MAX_CACHED_MODEL_CONFIGS: usize = 1_024;

/// Locks a std mutex, recovering from poisoning: every critical section here leaves the
/// map consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A map of values loaded from the database, each used for `ttl` after its load, with
/// single-flight loads and a generation counter (see the module docs).
pub(crate) struct TtlMap<K, V> {
    ttl: Duration,
    max_entries: usize,
    state: Mutex<MapState<K, V>>,
    /// Answers from the cache.
    hits: AtomicU64,
    /// Loads started (database reads).
    loads: AtomicU64,
}

struct MapState<K, V> {
    /// Bumped by every invalidation; a load stores its result only when it is unchanged.
    generation: u64,
    /// Values and when they expire.
    entries: HashMap<K, (V, Instant)>,
    /// One gate per key being loaded: the loader holds it, concurrent misses wait on it.
    loads: HashMap<K, Arc<tokio::sync::Mutex<()>>>,
}

impl<K, V> TtlMap<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    /// An empty map whose entries live `ttl` and that holds at most `max_entries`.
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Self {
        TtlMap {
            ttl,
            max_entries: max_entries.max(1),
            state: Mutex::new(MapState {
                generation: 0,
                entries: HashMap::new(),
                loads: HashMap::new(),
            }),
            hits: AtomicU64::new(0),
            loads: AtomicU64::new(0),
        }
    }

    /// The value of `key` when it is cached and fresh.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let state = lock(&self.state);
        fresh(&state, key)
    }

    /// The cached value of `key`, else the result of `load` (cached when no invalidation
    /// happened while it ran). Concurrent callers missing the same key wait for one load.
    /// Errors are returned to the loader's caller and not cached: the next caller loads
    /// again.
    pub(crate) async fn get_or_load<F, Fut>(&self, key: &K, load: F) -> Result<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        let gate = {
            let mut state = lock(&self.state);
            if let Some(value) = fresh(&state, key) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(value);
            }
            Arc::clone(state.loads.entry(key.clone()).or_default())
        };
        // Declared before the permit, so dropped after it: the gate leaves the map once
        // nobody holds or waits for it, also when this future is dropped mid-load.
        let gate = LoadGate {
            map: self,
            key,
            gate,
        };
        let _permit = gate.gate.lock().await;
        let generation = {
            let state = lock(&self.state);
            // Whoever held the gate before may have loaded it.
            if let Some(value) = fresh(&state, key) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(value);
            }
            state.generation
        };
        self.loads.fetch_add(1, Ordering::Relaxed);
        let value = load().await?;
        self.store(key, value.clone(), generation);
        Ok(value)
    }

    /// Stores `value` for `key`, unless the map was invalidated since `generation`.
    fn store(&self, key: &K, value: V, generation: u64) {
        let mut state = lock(&self.state);
        if state.generation != generation {
            return;
        }
        let now = Instant::now();
        if !state.entries.contains_key(key) && state.entries.len() >= self.max_entries {
            state.entries.retain(|_, (_, expires)| *expires > now);
            if state.entries.len() >= self.max_entries {
                let oldest = state
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    state.entries.remove(&oldest);
                }
            }
        }
        state.entries.insert(key.clone(), (value, now + self.ttl));
    }

    /// Drops `key`; loads in flight will not store their result.
    pub(crate) fn invalidate(&self, key: &K) {
        let mut state = lock(&self.state);
        state.generation = state.generation.wrapping_add(1);
        state.entries.remove(key);
    }

    /// Drops everything; loads in flight will not store their result.
    pub(crate) fn clear(&self) {
        let mut state = lock(&self.state);
        state.generation = state.generation.wrapping_add(1);
        state.entries.clear();
    }

    /// How many entries are held (fresh or not yet dropped).
    pub(crate) fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }

    fn stats(&self) -> ConfigCacheStats {
        ConfigCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
        }
    }
}

fn fresh<K: Eq + Hash, V: Clone>(state: &MapState<K, V>, key: &K) -> Option<V> {
    state
        .entries
        .get(key)
        .filter(|(_, expires)| *expires > Instant::now())
        .map(|(value, _)| value.clone())
}

/// A key's load gate, removed from the map when its last holder is done.
struct LoadGate<'a, K: Eq + Hash + Clone, V: Clone> {
    map: &'a TtlMap<K, V>,
    key: &'a K,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Drop for LoadGate<'_, K, V> {
    fn drop(&mut self) {
        let mut state = lock(&self.map.state);
        // The map's reference and this one: nobody else waits for this key.
        if Arc::strong_count(&self.gate) <= 2 {
            let ours = state
                .loads
                .get(self.key)
                .is_some_and(|g| Arc::ptr_eq(g, &self.gate));
            if ours {
                state.loads.remove(self.key);
            }
        }
    }
}

/// A provider config as the cache holds it: the view without secrets, and the central
/// key still sealed (opened at each use with the keyring, under the row's associated
/// data).
#[derive(Clone)]
pub(crate) struct CachedProvider {
    /// The live provider config.
    pub(crate) config: ChatProviderConfig,
    /// `provider_configs.api_key_sealed`, as stored.
    pub(crate) sealed_key: Option<String>,
}

/// A user's own key as the cache holds it: sealed, as stored.
#[derive(Clone)]
pub(crate) struct SealedUserKey {
    /// The provider config it is for.
    pub(crate) provider_config_id: Uuid,
    /// `user_provider_keys.api_key_sealed`, as stored.
    pub(crate) sealed: String,
}

/// The hot-config cache of one store (see the module docs). Cheap to share: the store
/// holds it behind an `Arc`.
pub struct ConfigCache {
    /// Every live provider config, with its sealed key ([`PROVIDERS_TTL`]).
    pub(crate) providers: TtlMap<(), Arc<[CachedProvider]>>,
    /// Live model configs by id, enabled or not; `None`: no live config has the id
    /// ([`MODEL_CONFIG_TTL`], at most [`MAX_CACHED_MODEL_CONFIGS`]).
    pub(crate) model_configs: TtlMap<Uuid, Option<ChatModelConfig>>,
    /// The default model config ([`MODEL_CONFIG_TTL`]).
    pub(crate) default_model_config: TtlMap<(), Option<ChatModelConfig>>,
    /// Whether any live model config exists ([`MODEL_CONFIG_TTL`]).
    pub(crate) any_model_config: TtlMap<(), bool>,
    /// The deployment's system prompt settings ([`DEPLOYMENT_CONFIG_TTL`]).
    pub(crate) system_prompt: TtlMap<(), SystemPromptConfig>,
    /// The deployment's plan-mode instructions ([`DEPLOYMENT_CONFIG_TTL`]).
    pub(crate) plan_mode_instructions: TtlMap<(), String>,
    /// The stored value of each model override by `site_config` key
    /// ([`DEPLOYMENT_CONFIG_TTL`]).
    pub(crate) model_overrides: TtlMap<String, Option<String>>,
    /// Personal prompts by user ([`USER_PROMPT_TTL`], at most [`MAX_CACHED_USERS`]).
    pub(crate) user_prompts: TtlMap<Uuid, String>,
    /// Users' own keys, sealed, by user ([`USER_KEYS_TTL`], at most [`MAX_CACHED_USERS`]).
    pub(crate) user_keys: TtlMap<Uuid, Arc<[SealedUserKey]>>,
    /// Users' own compaction thresholds by user, then model config
    /// ([`USER_THRESHOLDS_TTL`], at most [`MAX_CACHED_USERS`]).
    pub(crate) user_thresholds: TtlMap<Uuid, Arc<HashMap<Uuid, i32>>>,
    /// The enabled MCP server configs ([`DEPLOYMENT_CONFIG_TTL`]): every turn lists them
    /// to connect its servers (their secrets are read when connecting, never cached).
    pub(crate) enabled_mcp_servers: TtlMap<(), Arc<[codersdk::MCPServerConfig]>>,
    /// The deployment's usage-limit configuration ([`DEPLOYMENT_CONFIG_TTL`]): every
    /// admission check reads it, so a deployment without limits pays no statement.
    pub(crate) usage_limits: TtlMap<(), codersdk::ChatUsageLimitConfig>,
    /// Whether users may turn debug logging on ([`DEPLOYMENT_CONFIG_TTL`]): every turn
    /// asks (docs/debug-runs.md).
    pub(crate) debug_logging_allow_users: TtlMap<(), bool>,
    /// Users' own debug-logging toggles ([`USER_DEBUG_LOGGING_TTL`], at most
    /// [`MAX_CACHED_USERS`]); read only while users are allowed.
    pub(crate) user_debug_logging: TtlMap<Uuid, bool>,
}

/// How many model overrides can be held: one per context the server knows (unknown
/// contexts are refused before the cache is asked), with room for contexts added later.
const MAX_CACHED_OVERRIDES: usize = 64;

impl Default for ConfigCache {
    fn default() -> Self {
        ConfigCache::new()
    }
}

impl ConfigCache {
    /// An empty cache.
    pub fn new() -> Self {
        ConfigCache {
            providers: TtlMap::new(PROVIDERS_TTL, 1),
            model_configs: TtlMap::new(MODEL_CONFIG_TTL, MAX_CACHED_MODEL_CONFIGS),
            default_model_config: TtlMap::new(MODEL_CONFIG_TTL, 1),
            any_model_config: TtlMap::new(MODEL_CONFIG_TTL, 1),
            system_prompt: TtlMap::new(DEPLOYMENT_CONFIG_TTL, 1),
            plan_mode_instructions: TtlMap::new(DEPLOYMENT_CONFIG_TTL, 1),
            model_overrides: TtlMap::new(DEPLOYMENT_CONFIG_TTL, MAX_CACHED_OVERRIDES),
            user_prompts: TtlMap::new(USER_PROMPT_TTL, MAX_CACHED_USERS),
            user_keys: TtlMap::new(USER_KEYS_TTL, MAX_CACHED_USERS),
            user_thresholds: TtlMap::new(USER_THRESHOLDS_TTL, MAX_CACHED_USERS),
            enabled_mcp_servers: TtlMap::new(DEPLOYMENT_CONFIG_TTL, 1),
            usage_limits: TtlMap::new(DEPLOYMENT_CONFIG_TTL, 1),
            debug_logging_allow_users: TtlMap::new(DEPLOYMENT_CONFIG_TTL, 1),
            user_debug_logging: TtlMap::new(USER_DEBUG_LOGGING_TTL, MAX_CACHED_USERS),
        }
    }

    /// Drops what `change` may have made stale:
    ///
    /// - `providers`: the providers, every user's own keys, and every model config and
    ///   the default (deleting a provider deletes its model configs and may re-select the
    ///   default);
    /// - `model_config`: every model config (not only the named one: a new default clears
    ///   the old one's `is_default`, a deleted default makes another the default), the
    ///   default, and whether any exists;
    /// - `user_prompt`, `user_provider_keys`, `user_compaction_thresholds`: that user's
    ///   entry;
    /// - `mcp_servers`: the enabled MCP server configs;
    /// - `user_debug_logging`: that user's debug-logging toggle;
    /// - `deployment`: the prompt settings, plan-mode instructions, model overrides and
    ///   whether users may turn debug logging on;
    /// - `usage_limits`: the usage-limit configuration.
    pub fn apply(&self, change: &ConfigChange) {
        match change {
            ConfigChange::Providers => {
                self.providers.clear();
                self.user_keys.clear();
                self.clear_model_configs();
            }
            ConfigChange::ModelConfig { .. } => self.clear_model_configs(),
            ConfigChange::UserPrompt { user_id } => self.user_prompts.invalidate(user_id),
            ConfigChange::UserProviderKeys { user_id } => self.user_keys.invalidate(user_id),
            ConfigChange::UserCompactionThresholds { user_id } => {
                self.user_thresholds.invalidate(user_id)
            }
            ConfigChange::UserDebugLogging { user_id } => {
                self.user_debug_logging.invalidate(user_id)
            }
            ConfigChange::Deployment => {
                self.system_prompt.clear();
                self.plan_mode_instructions.clear();
                self.model_overrides.clear();
                self.debug_logging_allow_users.clear();
            }
            ConfigChange::McpServers => self.enabled_mcp_servers.clear(),
            ConfigChange::UsageLimits => self.usage_limits.clear(),
        }
    }

    fn clear_model_configs(&self) {
        self.model_configs.clear();
        self.default_model_config.clear();
        self.any_model_config.clear();
    }

    /// Drops everything: after a gap in the relay (changes may have been missed).
    pub fn clear(&self) {
        self.providers.clear();
        self.user_keys.clear();
        self.clear_model_configs();
        self.system_prompt.clear();
        self.plan_mode_instructions.clear();
        self.model_overrides.clear();
        self.user_prompts.clear();
        self.user_thresholds.clear();
        self.enabled_mcp_servers.clear();
        self.usage_limits.clear();
        self.debug_logging_allow_users.clear();
        self.user_debug_logging.clear();
    }

    /// How many entries the cache holds, over all its maps (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.providers.len()
            + self.model_configs.len()
            + self.default_model_config.len()
            + self.any_model_config.len()
            + self.system_prompt.len()
            + self.plan_mode_instructions.len()
            + self.model_overrides.len()
            + self.user_prompts.len()
            + self.user_keys.len()
            + self.user_thresholds.len()
            + self.enabled_mcp_servers.len()
            + self.usage_limits.len()
            + self.debug_logging_allow_users.len()
            + self.user_debug_logging.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How often it answered from memory and how often it read the database, over all its
    /// maps since it was made: what a test or a metric checks a warm turn against.
    pub fn stats(&self) -> ConfigCacheStats {
        [
            self.providers.stats(),
            self.model_configs.stats(),
            self.default_model_config.stats(),
            self.any_model_config.stats(),
            self.system_prompt.stats(),
            self.plan_mode_instructions.stats(),
            self.model_overrides.stats(),
            self.user_prompts.stats(),
            self.user_keys.stats(),
            self.user_thresholds.stats(),
            self.enabled_mcp_servers.stats(),
            self.usage_limits.stats(),
            self.debug_logging_allow_users.stats(),
            self.user_debug_logging.stats(),
        ]
        .into_iter()
        .fold(ConfigCacheStats::default(), |a, b| ConfigCacheStats {
            hits: a.hits + b.hits,
            loads: a.loads + b.loads,
        })
    }
}

/// Counters of a [`ConfigCache`] ([`ConfigCache::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigCacheStats {
    /// Reads answered from memory.
    pub hits: u64,
    /// Reads that went to the database (each one query, the deployment's prompt settings
    /// two).
    pub loads: u64,
}

impl std::fmt::Debug for ConfigCache {
    // Entry counts only: the entries hold sealed keys and users' prompts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigCache")
            .field("providers", &self.providers.len())
            .field("model_configs", &self.model_configs.len())
            .field("user_prompts", &self.user_prompts.len())
            .field("user_keys", &self.user_keys.len())
            .field("user_thresholds", &self.user_thresholds.len())
            .field("usage_limits", &self.usage_limits.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for CachedProvider {
    // The sealed key is left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedProvider")
            .field("config", &self.config)
            .field("has_sealed_key", &self.sealed_key.is_some())
            .finish()
    }
}

impl std::fmt::Debug for SealedUserKey {
    // The sealed key is left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedUserKey")
            .field("provider_config_id", &self.provider_config_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::error::{Error, ErrorKind};

    fn counted(loads: &AtomicUsize, value: &str) -> Result<String> {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok(value.to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_lives_exactly_its_ttl() {
        let map: TtlMap<u32, String> = TtlMap::new(USER_PROMPT_TTL, 8);
        let loads = AtomicUsize::new(0);
        let v = map
            .get_or_load(&1, || async { counted(&loads, "a") })
            .await
            .unwrap();
        assert_eq!(v, "a");
        tokio::time::advance(USER_PROMPT_TTL - Duration::from_millis(1)).await;
        let v = map
            .get_or_load(&1, || async { counted(&loads, "b") })
            .await
            .unwrap();
        assert_eq!(v, "a", "fresh one millisecond before the TTL");
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(map.get(&1), None, "expired at the TTL");
        let v = map
            .get_or_load(&1, || async { counted(&loads, "b") })
            .await
            .unwrap();
        assert_eq!(v, "b");
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_ttls_are_those_of_the_spec() {
        // engine.md §12: providers + keys and model configs 10 s, the user prompt 5 s.
        assert_eq!(PROVIDERS_TTL, Duration::from_secs(10));
        assert_eq!(MODEL_CONFIG_TTL, Duration::from_secs(10));
        assert_eq!(USER_PROMPT_TTL, Duration::from_secs(5));
        let cache = ConfigCache::new();
        let user = Uuid::new_v4();
        cache
            .user_prompts
            .get_or_load(&user, || async { Ok("mine".to_owned()) })
            .await
            .unwrap();
        cache
            .providers
            .get_or_load(&(), || async { Ok(Arc::from(Vec::new())) })
            .await
            .unwrap();
        tokio::time::advance(USER_PROMPT_TTL).await;
        assert_eq!(cache.user_prompts.get(&user), None);
        assert!(cache.providers.get(&()).is_some());
        tokio::time::advance(PROVIDERS_TTL - USER_PROMPT_TTL).await;
        assert!(cache.providers.get(&()).is_none());
    }

    #[tokio::test]
    async fn concurrent_misses_make_one_load() {
        let map: Arc<TtlMap<u32, String>> = Arc::new(TtlMap::new(PROVIDERS_TTL, 8));
        let loads = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let map = Arc::clone(&map);
            let loads = Arc::clone(&loads);
            let mut released = released.clone();
            tasks.push(tokio::spawn(async move {
                map.get_or_load(&7, || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    released.wait_for(|r| *r).await.unwrap();
                    Ok("loaded".to_owned())
                })
                .await
            }));
        }
        // Every task is either loading or waiting on the gate.
        while loads.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), "loaded");
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(lock(&map.state).loads.is_empty(), "gates are removed");
        assert_eq!(map.stats(), ConfigCacheStats { hits: 7, loads: 1 });
    }

    #[tokio::test]
    async fn a_failed_load_is_not_cached_and_the_next_caller_loads() {
        let map: TtlMap<u32, String> = TtlMap::new(PROVIDERS_TTL, 8);
        let err = map
            .get_or_load(&1, || async {
                Err(Error::new(ErrorKind::Database, "down"))
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Database);
        assert_eq!(map.len(), 0);
        let v = map
            .get_or_load(&1, || async { Ok("up".to_owned()) })
            .await
            .unwrap();
        assert_eq!(v, "up");
        assert!(lock(&map.state).loads.is_empty());
    }

    /// The race the generation counter closes: a load reads the old value, a write
    /// commits and invalidates, then the load finishes. The old value must not be stored.
    #[tokio::test]
    async fn a_load_racing_an_invalidation_does_not_store_its_value() {
        let map: Arc<TtlMap<u32, String>> = Arc::new(TtlMap::new(PROVIDERS_TTL, 8));
        let (read_done, mut read) = tokio::sync::mpsc::channel::<()>(1);
        let (finish, finishing) = tokio::sync::oneshot::channel::<()>();
        let loader = {
            let map = Arc::clone(&map);
            tokio::spawn(async move {
                map.get_or_load(&1, || async move {
                    // "SELECT": the old value is read here.
                    read_done.send(()).await.unwrap();
                    finishing.await.unwrap();
                    Ok("old".to_owned())
                })
                .await
            })
        };
        read.recv().await.unwrap();
        // The write commits and invalidates while the load is still in flight.
        map.invalidate(&1);
        finish.send(()).unwrap();
        assert_eq!(
            loader.await.unwrap().unwrap(),
            "old",
            "its caller gets what it read"
        );
        assert_eq!(map.get(&1), None, "but the stale value is not cached");
        let v = map
            .get_or_load(&1, || async { Ok("new".to_owned()) })
            .await
            .unwrap();
        assert_eq!(v, "new");
        // Whole-map clears count too.
        let (finish, finishing) = tokio::sync::oneshot::channel::<()>();
        let map2 = Arc::clone(&map);
        let loader = tokio::spawn(async move {
            map2.get_or_load(&2, || async move {
                finishing.await.unwrap();
                Ok("old".to_owned())
            })
            .await
        });
        while lock(&map.state).loads.is_empty() {
            tokio::task::yield_now().await;
        }
        map.clear();
        finish.send(()).unwrap();
        loader.await.unwrap().unwrap();
        assert_eq!(map.get(&2), None);
    }

    #[tokio::test]
    async fn a_cancelled_load_lets_the_next_caller_load() {
        let map: Arc<TtlMap<u32, String>> = Arc::new(TtlMap::new(PROVIDERS_TTL, 8));
        let map2 = Arc::clone(&map);
        let stuck = tokio::spawn(async move {
            map2.get_or_load(&1, std::future::pending::<Result<String>>)
                .await
        });
        while lock(&map.state).loads.is_empty() {
            tokio::task::yield_now().await;
        }
        stuck.abort();
        let _ = stuck.await;
        assert!(lock(&map.state).loads.is_empty(), "the gate went with it");
        let v = map
            .get_or_load(&1, || async { Ok("x".to_owned()) })
            .await
            .unwrap();
        assert_eq!(v, "x");
    }

    #[tokio::test(start_paused = true)]
    async fn per_user_maps_hold_at_most_max_cached_users() {
        let map: TtlMap<Uuid, String> = TtlMap::new(USER_PROMPT_TTL, MAX_CACHED_USERS);
        let first = Uuid::new_v4();
        map.get_or_load(&first, || async { Ok("first".to_owned()) })
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(1)).await;
        for _ in 1..MAX_CACHED_USERS {
            map.get_or_load(&Uuid::new_v4(), || async { Ok(String::new()) })
                .await
                .unwrap();
        }
        assert_eq!(map.len(), MAX_CACHED_USERS, "full, nothing dropped yet");
        assert!(map.get(&first).is_some());
        let newcomer = Uuid::new_v4();
        map.get_or_load(&newcomer, || async { Ok("new".to_owned()) })
            .await
            .unwrap();
        assert_eq!(map.len(), MAX_CACHED_USERS, "one past the bound drops one");
        assert_eq!(map.get(&first), None, "the one loaded longest ago");
        assert!(map.get(&newcomer).is_some());
        // Expired entries go first.
        tokio::time::advance(USER_PROMPT_TTL).await;
        let later = Uuid::new_v4();
        map.get_or_load(&later, || async { Ok(String::new()) })
            .await
            .unwrap();
        assert_eq!(map.len(), 1);
    }

    #[tokio::test]
    async fn changes_drop_what_they_name() {
        let cache = ConfigCache::new();
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        for user in [alice, bob] {
            cache
                .user_prompts
                .get_or_load(&user, || async { Ok("p".to_owned()) })
                .await
                .unwrap();
            cache
                .user_keys
                .get_or_load(&user, || async { Ok(Arc::from(Vec::new())) })
                .await
                .unwrap();
            cache
                .user_thresholds
                .get_or_load(&user, || async { Ok(Arc::new(HashMap::new())) })
                .await
                .unwrap();
        }
        cache
            .system_prompt
            .get_or_load(&(), || async {
                Ok(SystemPromptConfig {
                    system_prompt: String::new(),
                    include_default_system_prompt: true,
                })
            })
            .await
            .unwrap();
        cache
            .default_model_config
            .get_or_load(&(), || async { Ok(None) })
            .await
            .unwrap();
        cache.apply(&ConfigChange::UserPrompt { user_id: alice });
        assert!(cache.user_prompts.get(&alice).is_none());
        assert!(cache.user_prompts.get(&bob).is_some());
        cache.apply(&ConfigChange::UserProviderKeys { user_id: bob });
        assert!(cache.user_keys.get(&bob).is_none());
        assert!(cache.user_keys.get(&alice).is_some());
        cache.apply(&ConfigChange::UserCompactionThresholds { user_id: alice });
        assert!(cache.user_thresholds.get(&alice).is_none());
        assert!(cache.user_thresholds.get(&bob).is_some());
        cache.apply(&ConfigChange::McpServers);
        assert!(cache.system_prompt.get(&()).is_some());
        cache.apply(&ConfigChange::ModelConfig { id: Uuid::new_v4() });
        assert!(cache.default_model_config.get(&()).is_none());
        assert!(cache.system_prompt.get(&()).is_some());
        cache.apply(&ConfigChange::Deployment);
        assert!(cache.system_prompt.get(&()).is_none());
        cache.apply(&ConfigChange::Providers);
        assert!(cache.user_keys.get(&alice).is_none());
        assert!(cache.user_prompts.get(&bob).is_some());
        cache.clear();
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn debug_never_shows_a_key_or_a_prompt() {
        let cache = ConfigCache::new();
        let id = Uuid::new_v4();
        let provider = CachedProvider {
            config: ChatProviderConfig {
                id,
                provider: "openai".into(),
                display_name: "OpenAI".into(),
                enabled: true,
                has_api_key: true,
                central_api_key_enabled: true,
                allow_user_api_key: true,
                allow_central_api_key_fallback: false,
                base_url: String::new(),
                source: codersdk::ChatProviderConfigSource::Database,
                created_at: None,
                updated_at: None,
            },
            sealed_key: Some("v1:SEALED-CENTRAL-KEY".into()),
        };
        cache
            .providers
            .get_or_load(&(), || async { Ok(Arc::from(vec![provider])) })
            .await
            .unwrap();
        let user = Uuid::new_v4();
        let key = SealedUserKey {
            provider_config_id: id,
            sealed: "v1:SEALED-USER-KEY".into(),
        };
        cache
            .user_keys
            .get_or_load(&user, || async { Ok(Arc::from(vec![key])) })
            .await
            .unwrap();
        cache
            .user_prompts
            .get_or_load(&user, || async { Ok("PRIVATE PROMPT".to_owned()) })
            .await
            .unwrap();
        let shown = format!("{cache:?} {:?}", cache.providers.get(&()).unwrap()[0]);
        for secret in ["SEALED-CENTRAL-KEY", "SEALED-USER-KEY", "PRIVATE PROMPT"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("providers: 1"), "{shown}");
    }
}
