//! Administrator configuration (docs/provider-config.md): providers with their central API
//! keys, model configs with exactly one default, users' own keys (BYOK), the deployment
//! and personal prompts, the retention settings; the model and credentials a turn runs
//! with; re-sealing every stored secret under the keyring's active key.
//!
//! Secrets are sealed with the [`Keyring`](crate::Keyring) before they reach SQL, with
//! associated data naming their row and column ([`provider_key_aad`], [`user_key_aad`]), so
//! a sealed value copied into another row fails to open. Nothing here returns a key to an
//! API caller: the `codersdk` views carry `has_api_key` / `has_user_api_key` only, and the
//! decrypted forms ([`Store::configured_providers`], [`Store::user_provider_keys`],
//! [`TurnModel`]) are for the engine's own use.
//!
//! The reads a turn makes go through the store's hot-config cache
//! ([`crate::configcache`]); every write here drops what it changed from it after commit.
//!
//! Configuration writes are not chat mutations: they run in an ordinary write transaction
//! ([`Store::begin_write`]). Every model-config write (and a provider delete, which deletes
//! model configs) first takes the model-config write lock, so "clear the old default, set
//! the new one" and "re-select a default" never interleave.

mod cached;
mod models;
mod overrides;
mod prompts;
mod providers;
mod resolve;
mod retention;
mod rotate;
mod thresholds;
mod user_keys;

use codersdk::{Response, Uuid};
use sqlx::AnyConnection;

use super::finish_tx as finish;
use super::{uuid_text, Dialect};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

pub use models::{DeletedModelConfig, ModelConfigFilter};
pub use overrides::{
    INVALID_MODEL_OVERRIDE_CONTEXT_MESSAGE, INVALID_MODEL_OVERRIDE_MESSAGE,
    MODEL_OVERRIDE_KEY_PREFIX,
};
pub use prompts::{
    validate_user_prompt, SystemPromptConfig, DEFAULT_INCLUDE_DEFAULT_SYSTEM_PROMPT,
    MAX_USER_PROMPT_CHARS,
};
pub use providers::{provider_config_listing, DeletedProviderConfig};
pub use resolve::{
    ModelConfigSource, ResolvedModelConfig, TurnModel, UnusableRequestedModel,
    INVALID_MODEL_CONFIG_MESSAGE, NO_DEFAULT_MODEL_CONFIG_MESSAGE,
};
pub use rotate::{SecretColumn, SecretRotationFailure, SecretRotationReport};

/// Associated data sealing the central API key of provider config `id`
/// (`provider_configs.api_key:<id>`).
pub fn provider_key_aad(provider_config_id: Uuid) -> String {
    format!("provider_configs.api_key:{}", uuid_text(provider_config_id))
}

/// Associated data sealing a user's own key for a provider config
/// (`user_provider_keys.api_key:<user>:<provider config>`).
pub fn user_key_aad(user_id: Uuid, provider_config_id: Uuid) -> String {
    format!(
        "user_provider_keys.api_key:{}:{}",
        uuid_text(user_id),
        uuid_text(provider_config_id)
    )
}

/// Serializes model-config writers. SQLite's `BEGIN IMMEDIATE` already admits one writer;
/// PostgreSQL takes a table lock that conflicts with itself but not with readers, so the
/// default switch of one writer is committed before the next one reads which row is the
/// default.
async fn lock_model_configs(conn: &mut AnyConnection, dialect: Dialect) -> Result<()> {
    if dialect == Dialect::Postgres {
        sqlx::query("LOCK TABLE model_configs IN SHARE ROW EXCLUSIVE MODE")
            .execute(conn)
            .await
            .db()?;
    }
    Ok(())
}

/// ` FOR UPDATE` on PostgreSQL (row lock until commit), nothing on SQLite (the transaction
/// already holds the database write lock).
fn for_update(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    }
}

/// ` FOR SHARE` on PostgreSQL: the row cannot be changed or deleted until commit.
fn for_share(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR SHARE",
    }
}

fn bool_int(v: bool) -> i64 {
    i64::from(v)
}

fn invalid(response: Response) -> Error {
    Error::with_response(ErrorKind::InvalidArgument, response)
}

fn provider_config_not_found(id: Uuid) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("provider config {id} not found"),
    )
}

fn model_config_not_found(id: Uuid) -> Error {
    Error::new(ErrorKind::NotFound, format!("model config {id} not found"))
}
