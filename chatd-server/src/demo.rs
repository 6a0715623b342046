//! The offline demo provider and the server's built-in tools.

use std::sync::Arc;

use chatd_core::store::Store;
use chatd_core::tools::ToolRegistry;
use chatd_core::{Keyring, ModelResolver, StoreModelResolver};
use chatprovider::ProviderApiKeys;

/// Where the server's models come from.
pub fn resolver(
    store: Store,
    keyring: Arc<Keyring>,
    deployment_keys: ProviderApiKeys,
) -> Arc<dyn ModelResolver> {
    Arc::new(StoreModelResolver::new(store, keyring, deployment_keys))
}

/// The built-in tools.
pub fn tools() -> ToolRegistry {
    ToolRegistry::new()
}
