//! MCP server configurations: administrators create, change and delete them and see every
//! field but the secrets; other users see enabled servers only, redacted. `auth_connected`
//! is the caller's: whether they hold a token for an OAuth2 server.

use codersdk::{
    CreateMCPServerConfigRequest, MCPServerAuthType, MCPServerConfig, MCPServerTransport,
    McpDraftSecret, McpServerDraft, Response, UpdateMCPServerConfigRequest, Uuid,
    MANUAL_OAUTH2_REQUIRED_MESSAGE,
};

use super::{invalid, require_admin, Admin};
use crate::engine::Actor;
use crate::error::{Error, ErrorKind, Result};
use crate::store::McpServerFilter;

/// The callback URL of MCP server `id` on the HTTP server in front of chatd-core, which
/// alone knows its address and routes (`<access URL>/api/experimental/mcp/servers/{id}/
/// oauth2/callback` on the reference server). An OAuth2 client registered for a server
/// names it, and every authorization request repeats it.
pub type McpRedirectUri<'a> = &'a (dyn Fn(Uuid) -> String + Send + Sync);

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

/// The 400 of an OAuth2 server whose endpoints could not be discovered: the administrator
/// must configure them. `why` is chatd's summary of what failed (no upstream text).
fn manual_oauth2_required(why: &str) -> Error {
    invalid(
        Response::new(MANUAL_OAUTH2_REQUIRED_MESSAGE).with_detail(format!(
            "Automatic OAuth2 discovery and client registration failed: {why}. Set \
         oauth2_client_id, oauth2_auth_url and oauth2_token_url."
        )),
    )
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
        let connected = self
            .store()
            .mcp_oauth2_connected_servers(actor.user_id)
            .await?;
        Ok(list
            .into_iter()
            .map(|mut c| {
                c.auth_connected =
                    c.auth_type != MCPServerAuthType::Oauth2 || connected.contains(&c.id);
                view(actor, c)
            })
            .collect())
    }

    /// `config` as `actor` sees it: `auth_connected` for them, redacted for members.
    async fn for_caller(
        &self,
        actor: &Actor,
        mut config: MCPServerConfig,
    ) -> Result<MCPServerConfig> {
        config.auth_connected = self
            .store()
            .mcp_auth_connected(&config, actor.user_id)
            .await?;
        Ok(view(actor, config))
    }

    /// The stored (unredacted) configuration of a server `actor` may see: any for
    /// administrators, enabled ones for everyone else ([`ErrorKind::NotFound`] otherwise).
    pub(super) async fn visible_mcp_server(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<MCPServerConfig> {
        let config = self.store().get_mcp_server_config(id).await?;
        if !config.enabled && !actor.admin {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("MCP server config {id} not found"),
            ));
        }
        Ok(config)
    }

    /// One MCP server configuration, redacted for members; a disabled one does not exist
    /// for them ([`ErrorKind::NotFound`], as in the listing).
    pub async fn get_mcp_server(&self, actor: &Actor, id: Uuid) -> Result<MCPServerConfig> {
        let config = self.visible_mcp_server(actor, id).await?;
        self.for_caller(actor, config).await
    }

    /// Creates an MCP server configuration (administrators): validated, secrets sealed with
    /// the handle's keyring.
    ///
    /// An `oauth2` server given none of client id, authorization URL and token URL is
    /// completed first when `redirect_uri` is given: the rest of the request is checked,
    /// then the endpoints are discovered from the server URL and a client is registered for
    /// the server's callback URL ([`crate::mcp::oauth::discover_and_register`]), and the
    /// client id, the sealed client secret, the endpoints and (unless given) the scopes
    /// are stored. When that fails, or without `redirect_uri`, the answer is a 400 with
    /// [`MANUAL_OAUTH2_REQUIRED_MESSAGE`] whose detail says what failed.
    pub async fn create_mcp_server(
        &self,
        actor: &Actor,
        request: &CreateMCPServerConfigRequest,
        redirect_uri: Option<McpRedirectUri<'_>>,
    ) -> Result<MCPServerConfig> {
        require_admin(actor)?;
        let mut draft = McpServerDraft::from_create(request);
        let id = Uuid::new_v4();
        let discovering = draft.needs_oauth2_discovery();
        if discovering {
            draft.check_before_discovery().map_err(invalid)?;
            let Some(redirect_uri) = redirect_uri else {
                return Err(manual_oauth2_required(
                    "this server has no callback URL to register",
                ));
            };
            let found = crate::mcp::oauth::discover_and_register(
                self.oauth_http()?,
                &draft.url,
                &redirect_uri(id),
                &format!("chatd: {}", draft.display_name),
                &draft.oauth2_scopes,
            )
            .await
            .map_err(|e| manual_oauth2_required(&e.to_string()))?;
            draft.oauth2_client_id = found.client_id;
            draft.oauth2_client_secret = found
                .client_secret
                .map_or(McpDraftSecret::None, McpDraftSecret::New);
            draft.oauth2_auth_url = found.authorization_endpoint;
            draft.oauth2_token_url = found.token_endpoint;
            draft.oauth2_scopes = found.scopes;
            tracing::info!(
                server_id = %id,
                "MCP server OAuth2 endpoints discovered and a client registered"
            );
        }
        // After discovery only what was discovered can fail here: the rest was checked.
        let validated = draft.validate().map_err(|r| {
            if discovering {
                manual_oauth2_required("the discovered configuration is not usable")
            } else {
                invalid(r)
            }
        })?;
        let mut created = self
            .store()
            .insert_mcp_server_config(id, &validated, self.keyring())
            .await?;
        created.auth_connected = created.auth_type != MCPServerAuthType::Oauth2;
        self.announced(Ok(created), crate::cluster::ConfigChange::McpServers)
    }

    /// Applies `PATCH /mcp/servers/{id}` (administrators).
    pub async fn update_mcp_server(
        &self,
        actor: &Actor,
        id: Uuid,
        request: &UpdateMCPServerConfigRequest,
    ) -> Result<MCPServerConfig> {
        require_admin(actor)?;
        let updated = self
            .store()
            .update_mcp_server_config(id, request, self.keyring())
            .await?;
        let updated = self.announced(Ok(updated), crate::cluster::ConfigChange::McpServers)?;
        self.for_caller(actor, updated).await
    }

    /// Deletes an MCP server configuration and its sealed secrets (administrators), and
    /// with it every user's header values and OAuth2 token for it.
    pub async fn delete_mcp_server(&self, actor: &Actor, id: Uuid) -> Result<()> {
        require_admin(actor)?;
        let result = self.store().delete_mcp_server_config(id).await;
        self.announced(result, crate::cluster::ConfigChange::McpServers)
    }
}
