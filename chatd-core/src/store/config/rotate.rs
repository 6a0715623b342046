//! Re-sealing every stored secret under the keyring's active key (docs/secrets.md,
//! "Rotating a key", step 2).

use codersdk::Uuid;
use sqlx::Row;

use super::super::{get_uuid, uuid_text, Store};
use super::{provider_key_aad, user_key_aad};
use crate::error::{DbResultExt, ErrorKind, Result};
use crate::Keyring;

/// A column that holds sealed secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretColumn {
    /// `provider_configs.api_key_sealed`: a provider's central key.
    ProviderApiKey,
    /// `user_provider_keys.api_key_sealed`: a user's own key.
    UserProviderKey,
}

/// A stored secret [`Store::rotate_secrets`] could not re-seal. It is left as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRotationFailure {
    /// Where the secret is.
    pub column: SecretColumn,
    /// The provider config of the row.
    pub provider_config_id: Uuid,
    /// The user of a [`SecretColumn::UserProviderKey`] row.
    pub user_id: Option<Uuid>,
    /// Why: [`ErrorKind::UnknownKeyId`] (the sealing key is not in the keyring),
    /// [`ErrorKind::KeyMismatch`], [`ErrorKind::DecryptionFailed`] (altered, or moved
    /// from another row), [`ErrorKind::MalformedCiphertext`], ….
    pub kind: ErrorKind,
    /// The key id the failure names, when there is one.
    pub key_id: Option<String>,
}

/// What [`Store::rotate_secrets`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretRotationReport {
    /// Secrets re-sealed under the active key.
    pub rotated: u64,
    /// Secrets the active key had already sealed (not decrypted).
    pub already_current: u64,
    /// Secrets changed or erased by a concurrent write between the scan and the re-seal;
    /// the concurrent write won (and sealed under the active key).
    pub changed_concurrently: u64,
    /// Secrets that could not be re-sealed; fix or clear them before removing old keys.
    pub failures: Vec<SecretRotationFailure>,
}

impl SecretRotationReport {
    /// Whether every stored secret is now sealed by the active key.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One sealed value found by the scan.
struct Pending {
    column: SecretColumn,
    provider_config_id: Uuid,
    user_id: Option<Uuid>,
    sealed: String,
}

impl Pending {
    fn aad(&self) -> String {
        match self.user_id {
            Some(user) => user_key_aad(user, self.provider_config_id),
            None => provider_key_aad(self.provider_config_id),
        }
    }
}

impl Store {
    /// Re-seals every stored secret (provider central keys and users' own keys) under the
    /// keyring's active key, for rotation step 2 of docs/secrets.md.
    ///
    /// Each value goes through `Keyring::rotate` with its row's associated data; values
    /// the active key already sealed are counted and left alone without decrypting, so
    /// re-running is cheap. Each re-sealed value is written in its own transaction, one
    /// compare-and-swap statement on the old text, so a concurrent update of that row wins
    /// and nothing is held locked across the scan. Values that cannot be opened are
    /// reported in [`SecretRotationReport::failures`], never skipped silently. Only a
    /// database failure is an error.
    pub async fn rotate_secrets(&self, keyring: &Keyring) -> Result<SecretRotationReport> {
        let mut pending = Vec::new();
        let rows = sqlx::query(
            "SELECT id, api_key_sealed FROM provider_configs WHERE api_key_sealed IS NOT NULL \
             ORDER BY id",
        )
        .fetch_all(self.pool())
        .await
        .db()?;
        for row in &rows {
            pending.push(Pending {
                column: SecretColumn::ProviderApiKey,
                provider_config_id: get_uuid(row, "id")?,
                user_id: None,
                sealed: row.try_get("api_key_sealed").db()?,
            });
        }
        let rows = sqlx::query(
            "SELECT user_id, provider_config_id, api_key_sealed FROM user_provider_keys \
             ORDER BY user_id, provider_config_id",
        )
        .fetch_all(self.pool())
        .await
        .db()?;
        for row in &rows {
            pending.push(Pending {
                column: SecretColumn::UserProviderKey,
                provider_config_id: get_uuid(row, "provider_config_id")?,
                user_id: Some(get_uuid(row, "user_id")?),
                sealed: row.try_get("api_key_sealed").db()?,
            });
        }

        let mut report = SecretRotationReport::default();
        for item in pending {
            let resealed = match keyring.rotate(&item.sealed, item.aad().as_bytes()) {
                Ok(Some(text)) => text,
                Ok(None) => {
                    report.already_current += 1;
                    continue;
                }
                Err(e) => {
                    report.failures.push(SecretRotationFailure {
                        column: item.column,
                        provider_config_id: item.provider_config_id,
                        user_id: item.user_id,
                        kind: e.kind(),
                        key_id: e.key_id().map(str::to_owned),
                    });
                    continue;
                }
            };
            let swapped = match item.user_id {
                None => sqlx::query(
                    "UPDATE provider_configs SET api_key_sealed = $2 \
                         WHERE id = $1 AND api_key_sealed = $3",
                )
                .bind(uuid_text(item.provider_config_id))
                .bind(&resealed)
                .bind(&item.sealed)
                .execute(self.writer())
                .await
                .db()?,
                Some(user) => sqlx::query(
                    "UPDATE user_provider_keys SET api_key_sealed = $3 \
                         WHERE user_id = $1 AND provider_config_id = $2 AND api_key_sealed = $4",
                )
                .bind(uuid_text(user))
                .bind(uuid_text(item.provider_config_id))
                .bind(&resealed)
                .bind(&item.sealed)
                .execute(self.writer())
                .await
                .db()?,
            };
            if swapped.rows_affected() == 1 {
                report.rotated += 1;
            } else {
                report.changed_concurrently += 1;
            }
        }
        // Cached keys are sealed: re-sealed ones are read again (the old key still opens
        // the cached text meanwhile; removing it from a keyring takes a restart).
        self.config_cache()
            .apply(&crate::cluster::ConfigChange::Providers);
        Ok(report)
    }
}
