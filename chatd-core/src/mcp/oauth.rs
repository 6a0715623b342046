//! INTERIM (replaced by the OAuth2 work being merged): no per-user tokens yet.
use codersdk::{MCPServerConfig, SecretString, Uuid};

use crate::secrets::Keyring;
use crate::store::Store;

/// INTERIM.
pub async fn access_token(
    _store: &Store,
    _keyring: &Keyring,
    _http: &reqwest::Client,
    _server: &MCPServerConfig,
    _user_id: Uuid,
) -> crate::Result<Option<SecretString>> {
    Ok(None)
}

impl Store {
    /// INTERIM.
    pub async fn mcp_user_header_values(
        &self,
        _server_id: Uuid,
        _user_id: Uuid,
        _keyring: &Keyring,
    ) -> crate::Result<std::collections::BTreeMap<String, SecretString>> {
        Ok(Default::default())
    }
}
