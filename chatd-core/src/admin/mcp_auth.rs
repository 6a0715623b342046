//! Per-user MCP authentication (docs/mcp-auth.md): a user's values for the headers a server
//! asks users for, and a user's OAuth2 connection to a server. Every user may manage their
//! own on the servers they can see (administrators: all; others: enabled ones); nobody
//! manages another user's, and no value or token is ever returned.

use codersdk::{MCPServerUserHeaders, UpdateMCPServerUserHeadersRequest, Uuid};

use super::Admin;
use crate::engine::Actor;
use crate::error::{Error, ErrorKind, Result};
use crate::mcp::oauth;

/// What an OAuth2 callback carries, as the HTTP layer parsed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpOAuth2Callback<'a> {
    /// The user granted access: the authorization code and the state.
    Granted {
        /// `code`.
        code: &'a str,
        /// `state`.
        state: &'a str,
    },
    /// The authorization server reports an error (`error=access_denied`, …).
    Refused {
        /// `error`.
        error: &'a str,
        /// `state`, when given: the authorization is forgotten.
        state: Option<&'a str>,
    },
}

/// A finished OAuth2 connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpOAuth2Completed {
    /// The server's display name, to tell the user what was connected.
    pub display_name: String,
    /// Where the connect asked the browser to go afterwards (`""`: nowhere).
    pub return_to: String,
}

impl Admin {
    /// Which of the headers `server` asks users for `actor` has set a value for: every name
    /// of `custom_headers_user_keys` → whether set (an empty map when the server asks for
    /// none). Values are never returned.
    pub async fn mcp_user_headers(
        &self,
        actor: &Actor,
        server: Uuid,
    ) -> Result<MCPServerUserHeaders> {
        let config = self.visible_mcp_server(actor, server).await?;
        let set = self
            .store()
            .mcp_user_header_names(server, actor.user_id)
            .await?;
        Ok(header_status(
            &config.custom_headers_user_keys,
            server,
            &set,
        ))
    }

    /// Sets or clears `actor`'s values for headers `server` asks users for (names must be
    /// listed in `custom_headers_user_keys`; `""` clears one; names not given keep their
    /// value), sealed with the handle's keyring. [`ErrorKind::InvalidArgument`] with the
    /// validation `Response`.
    pub async fn update_mcp_user_headers(
        &self,
        actor: &Actor,
        server: Uuid,
        request: &UpdateMCPServerUserHeadersRequest,
    ) -> Result<MCPServerUserHeaders> {
        let config = self.visible_mcp_server(actor, server).await?;
        let set = self
            .store()
            .update_mcp_user_header_values(server, actor.user_id, request, self.keyring())
            .await?;
        Ok(header_status(
            &config.custom_headers_user_keys,
            server,
            &set,
        ))
    }

    /// Deletes all of `actor`'s header values for `server`.
    pub async fn delete_mcp_user_headers(&self, actor: &Actor, server: Uuid) -> Result<()> {
        self.visible_mcp_server(actor, server).await?;
        self.store()
            .delete_mcp_user_header_values(server, actor.user_id)
            .await?;
        Ok(())
    }

    /// Starts `actor`'s OAuth2 connection to `server`: the URL of the authorization
    /// server to send the user's browser to ([`oauth::begin_authorization`]).
    /// `redirect_uri` is the server's callback URL (see [`super::McpRedirectUri`]);
    /// `return_to`, a same-origin path the HTTP layer checked, is where the callback sends
    /// the browser afterwards (`""`: it shows a page instead). [`ErrorKind::InvalidArgument`]
    /// when the server does not use OAuth2.
    pub async fn connect_mcp_oauth2(
        &self,
        actor: &Actor,
        server: Uuid,
        redirect_uri: &str,
        return_to: &str,
    ) -> Result<String> {
        let config = self.visible_mcp_server(actor, server).await?;
        oauth::begin_authorization(
            self.store(),
            self.keyring(),
            &config,
            actor.user_id,
            redirect_uri,
            return_to,
        )
        .await
    }

    /// Finishes `actor`'s OAuth2 connection to `server` from its callback: the state must
    /// be one `actor` started for `server`, unexpired and unused; the code is exchanged and
    /// the token stored sealed ([`oauth::complete_authorization`]). A refusal by the
    /// authorization server forgets the authorization and is an
    /// [`ErrorKind::InvalidArgument`] naming its error code.
    pub async fn complete_mcp_oauth2(
        &self,
        actor: &Actor,
        server: Uuid,
        callback: McpOAuth2Callback<'_>,
    ) -> Result<McpOAuth2Completed> {
        let config = self.visible_mcp_server(actor, server).await?;
        match callback {
            McpOAuth2Callback::Refused { error, state } => {
                if let Some(state) = state {
                    // Forget the authorization: the outcome is an error either way.
                    let _ = self
                        .store()
                        .consume_mcp_oauth2_state(state, self.keyring())
                        .await;
                }
                let shown = if oauth::is_error_code(error) {
                    format!(" ({error:?})")
                } else {
                    String::new()
                };
                Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "The authorization server did not grant access to {:?}{shown}.",
                        config.display_name
                    ),
                ))
            }
            McpOAuth2Callback::Granted { code, state } => {
                let pending = oauth::complete_authorization(
                    self.store(),
                    self.keyring(),
                    self.oauth_http()?,
                    &config,
                    actor.user_id,
                    code,
                    state,
                )
                .await?;
                tracing::info!(server_id = %server, user_id = %actor.user_id, "MCP server connected with OAuth2");
                Ok(McpOAuth2Completed {
                    display_name: config.display_name,
                    return_to: pending.return_to,
                })
            }
        }
    }

    /// Forgets `actor`'s OAuth2 token for `server` (the server is not told).
    pub async fn disconnect_mcp_oauth2(&self, actor: &Actor, server: Uuid) -> Result<()> {
        self.visible_mcp_server(actor, server).await?;
        self.store()
            .delete_mcp_oauth2_token(server, actor.user_id)
            .await?;
        Ok(())
    }
}

fn header_status(keys: &[String], server: Uuid, set: &[String]) -> MCPServerUserHeaders {
    MCPServerUserHeaders {
        mcp_server_config_id: server,
        has_values: keys.iter().map(|k| (k.clone(), set.contains(k))).collect(),
    }
}
