//! AI Gateway provider instances managed through the admin API
//! (`aibridge_provider_instances`): name, type, base URL, the sealed central key and, for
//! `bedrock` instances, the region and model mapping.

use codersdk::Uuid;
use sqlx::Row;

use super::{get_uuid, now_micros, uuid_text, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Most instances the admin API may store.
pub const MAX_STORED_AIBRIDGE_INSTANCES: i64 = 256;

/// A stored instance; the key stays sealed until the gateway opens it.
#[derive(Clone)]
pub struct StoredAibridgeInstance {
    /// Row id (the key's associated data names it).
    pub id: Uuid,
    /// The name.
    pub name: String,
    /// `openai`, `anthropic` or `bedrock`.
    pub instance_type: String,
    /// The base URL.
    pub base_url: String,
    /// The central key, sealed with the keyring ([`aibridge_key_aad`]).
    pub api_key_sealed: Option<String>,
    /// A `bedrock` instance's AWS region.
    pub bedrock_region: Option<String>,
    /// A `bedrock` instance's model every request goes to.
    pub bedrock_model: Option<String>,
    /// A `bedrock` instance's model for "haiku" requests.
    pub bedrock_small_fast_model: Option<String>,
}

impl std::fmt::Debug for StoredAibridgeInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAibridgeInstance")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("instance_type", &self.instance_type)
            .field("base_url", &self.base_url)
            .field("has_api_key", &self.api_key_sealed.is_some())
            .field("bedrock_region", &self.bedrock_region)
            .field("bedrock_model", &self.bedrock_model)
            .field("bedrock_small_fast_model", &self.bedrock_small_fast_model)
            .finish()
    }
}

/// Associated data sealing an instance's key (`aibridge_provider_instances.api_key:<id>`):
/// a sealed key copied to another row does not open.
pub fn aibridge_key_aad(id: Uuid) -> String {
    format!("aibridge_provider_instances.api_key:{}", uuid_text(id))
}

const COLUMNS: &str = "id, name, instance_type, base_url, api_key_sealed, bedrock_region, \
                       bedrock_model, bedrock_small_fast_model";

fn from_row(row: &sqlx::any::AnyRow) -> Result<StoredAibridgeInstance> {
    Ok(StoredAibridgeInstance {
        id: get_uuid(row, "id")?,
        name: row.try_get("name").db()?,
        instance_type: row.try_get("instance_type").db()?,
        base_url: row.try_get("base_url").db()?,
        api_key_sealed: row.try_get("api_key_sealed").db()?,
        bedrock_region: row.try_get("bedrock_region").db()?,
        bedrock_model: row.try_get("bedrock_model").db()?,
        bedrock_small_fast_model: row.try_get("bedrock_small_fast_model").db()?,
    })
}

impl Store {
    /// Every stored instance, by name.
    pub async fn list_aibridge_instances(&self) -> Result<Vec<StoredAibridgeInstance>> {
        let sql = format!("SELECT {COLUMNS} FROM aibridge_provider_instances ORDER BY name");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await
            .db()?
            .iter()
            .map(from_row)
            .collect()
    }

    /// The stored instance named `name`.
    pub async fn get_aibridge_instance(
        &self,
        name: &str,
    ) -> Result<Option<StoredAibridgeInstance>> {
        let sql = format!("SELECT {COLUMNS} FROM aibridge_provider_instances WHERE name = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .db()?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    /// Stores a new instance (already validated, its key sealed for `instance.id`).
    /// Conflict when the name is taken; invalid when [`MAX_STORED_AIBRIDGE_INSTANCES`]
    /// are stored already.
    pub async fn insert_aibridge_instance(&self, instance: &StoredAibridgeInstance) -> Result<()> {
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM aibridge_provider_instances")
            .fetch_one(self.pool())
            .await
            .db()?
            .try_get("n")
            .db()?;
        if count >= MAX_STORED_AIBRIDGE_INSTANCES {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{count} AI Gateway instances are stored, the most there may be \
                     ({MAX_STORED_AIBRIDGE_INSTANCES})."
                ),
            ));
        }
        let now = now_micros();
        sqlx::query(
            "INSERT INTO aibridge_provider_instances (id, name, instance_type, base_url, \
             api_key_sealed, bedrock_region, bedrock_model, bedrock_small_fast_model, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(uuid_text(instance.id))
        .bind(&instance.name)
        .bind(&instance.instance_type)
        .bind(&instance.base_url)
        .bind(instance.api_key_sealed.as_deref())
        .bind(instance.bedrock_region.as_deref())
        .bind(instance.bedrock_model.as_deref())
        .bind(instance.bedrock_small_fast_model.as_deref())
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(|e| {
            let e = Error::from_sqlx(e);
            if e.kind() == ErrorKind::Conflict {
                Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "An AI Gateway instance is already named {:?}.",
                        instance.name
                    ),
                )
            } else {
                e
            }
        })?;
        Ok(())
    }

    /// Replaces a stored instance's base URL, sealed key and Bedrock settings; `false` when
    /// there is none of that id.
    pub async fn update_aibridge_instance(
        &self,
        instance: &StoredAibridgeInstance,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE aibridge_provider_instances SET base_url = $1, api_key_sealed = $2, \
             bedrock_region = $3, bedrock_model = $4, bedrock_small_fast_model = $5, \
             updated_at = $6 WHERE id = $7",
        )
        .bind(&instance.base_url)
        .bind(instance.api_key_sealed.as_deref())
        .bind(instance.bedrock_region.as_deref())
        .bind(instance.bedrock_model.as_deref())
        .bind(instance.bedrock_small_fast_model.as_deref())
        .bind(now_micros())
        .bind(uuid_text(instance.id))
        .execute(self.pool())
        .await
        .db()?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes the stored instance named `name`; `false` when there is none.
    pub async fn delete_aibridge_instance(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM aibridge_provider_instances WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await
            .db()?;
        Ok(done.rows_affected() > 0)
    }
}
