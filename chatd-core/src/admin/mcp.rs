//! MCP server configurations: administrators create, change and delete them and see every
//! field but the secrets; other users see enabled servers only, redacted.

use codersdk::{
    CreateMCPServerConfigRequest, MCPServerConfig, MCPServerTransport,
    UpdateMCPServerConfigRequest, Uuid,
};

use super::{require_admin, Admin};
use crate::engine::Actor;
use crate::error::{Error, ErrorKind, Result};
use crate::store::McpServerFilter;

/// What a user who is not an administrator sees: where the server is and how the
/// deployment authenticates to it are blanked — the URL (which may carry credentials), the
/// transport, the OAuth2 client and endpoints and scopes, the API-key header. Names,
/// descriptions, tool filters, availability and the header names users supply themselves
/// stay visible.
fn redact_for_member(mut config: MCPServerConfig) -> MCPServerConfig {
    config.url.clear();
    config.transport = MCPServerTransport::Unknown(String::new());
    config.oauth2_client_id.clear();
    config.oauth2_auth_url.clear();
    config.oauth2_token_url.clear();
    config.oauth2_scopes.clear();
    config.api_key_header.clear();
    config
}

fn view(actor: &Actor, config: MCPServerConfig) -> MCPServerConfig {
    if actor.admin {
        config
    } else {
        redact_for_member(config)
    }
}

impl Admin {
    /// The MCP server configurations `actor` may see, by slug: all of them for
    /// administrators, the enabled ones redacted for everyone else. Secrets are never
    /// returned, only `has_*` flags.
    pub async fn list_mcp_servers(&self, actor: &Actor) -> Result<Vec<MCPServerConfig>> {
        let filter = if actor.admin {
            McpServerFilter::All
        } else {
            McpServerFilter::Enabled
        };
        let list = self.store().list_mcp_server_configs(filter).await?;
        Ok(list.into_iter().map(|c| view(actor, c)).collect())
    }

    /// One MCP server configuration, redacted for members; a disabled one does not exist
    /// for them ([`ErrorKind::NotFound`], as in the listing).
    pub async fn get_mcp_server(&self, actor: &Actor, id: Uuid) -> Result<MCPServerConfig> {
        let config = self.store().get_mcp_server_config(id).await?;
        if !config.enabled && !actor.admin {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("MCP server config {id} not found"),
            ));
        }
        Ok(view(actor, config))
    }

    /// Creates an MCP server configuration (administrators): validated, secrets sealed with
    /// the handle's keyring.
    pub async fn create_mcp_server(
        &self,
        actor: &Actor,
        request: &CreateMCPServerConfigRequest,
    ) -> Result<MCPServerConfig> {
        require_admin(actor)?;
        self.store()
            .create_mcp_server_config(request, self.keyring())
            .await
    }

    /// Applies `PATCH /mcp/servers/{id}` (administrators).
    pub async fn update_mcp_server(
        &self,
        actor: &Actor,
        id: Uuid,
        request: &UpdateMCPServerConfigRequest,
    ) -> Result<MCPServerConfig> {
        require_admin(actor)?;
        self.store()
            .update_mcp_server_config(id, request, self.keyring())
            .await
    }

    /// Deletes an MCP server configuration and its sealed secrets (administrators).
    pub async fn delete_mcp_server(&self, actor: &Actor, id: Uuid) -> Result<()> {
        require_admin(actor)?;
        self.store().delete_mcp_server_config(id).await
    }
}
