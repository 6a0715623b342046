//! MCP server configurations. Secrets are write-only: responses carry `has_*` flags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::macros::string_enum;
use crate::serde_util::null_as_default;
use crate::{SecretString, Timestamp};

string_enum! {
    /// How the server is reached.
    pub enum MCPServerTransport {
        /// Streamable HTTP.
        StreamableHttp = "streamable_http",
        /// Server-sent events.
        Sse = "sse",
    }
}

string_enum! {
    /// How requests to the server authenticate.
    pub enum MCPServerAuthType {
        /// No authentication.
        None = "none",
        /// Per-user OAuth2.
        Oauth2 = "oauth2",
        /// A static API key header.
        ApiKey = "api_key",
        /// Admin- and user-set custom headers.
        CustomHeaders = "custom_headers",
        /// The user's OIDC token is forwarded.
        UserOidc = "user_oidc",
    }
}

string_enum! {
    /// Whether the server is offered to chats.
    pub enum MCPServerAvailability {
        /// Always on.
        ForceOn = "force_on",
        /// On for new chats unless deselected.
        DefaultOn = "default_on",
        /// Opt-in.
        DefaultOff = "default_off",
    }
}

/// An MCP server configuration as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct MCPServerConfig {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub display_name: String,
    /// Unique slug.
    pub slug: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Icon URL.
    #[serde(default)]
    pub icon_url: String,
    /// Transport (blanked for non-admins).
    pub transport: MCPServerTransport,
    /// Server URL (blanked for non-admins).
    #[serde(default)]
    pub url: String,
    /// Authentication.
    pub auth_type: MCPServerAuthType,
    /// OAuth2 client id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub oauth2_client_id: String,
    /// A client secret is stored.
    #[serde(default)]
    pub has_oauth2_secret: bool,
    /// OAuth2 authorization URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub oauth2_auth_url: String,
    /// OAuth2 token URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub oauth2_token_url: String,
    /// OAuth2 scopes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub oauth2_scopes: String,
    /// Header carrying the API key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub api_key_header: String,
    /// An API key is stored.
    #[serde(default)]
    pub has_api_key: bool,
    /// Admin-set custom headers are stored.
    #[serde(default)]
    pub has_custom_headers: bool,
    /// Header names each user supplies. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub custom_headers_user_keys: Vec<String>,
    /// Descriptions of the user-supplied headers. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub custom_headers_user_key_descriptions: BTreeMap<String, String>,
    /// Only these tools are offered (empty = all). Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub tool_allow_list: Vec<String>,
    /// These tools are never offered. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub tool_deny_list: Vec<String>,
    /// Availability for new chats.
    pub availability: MCPServerAvailability,
    /// Enabled.
    #[serde(default)]
    pub enabled: bool,
    /// Ask the model to state intent for tool calls.
    #[serde(default)]
    pub model_intent: bool,
    /// Offered in plan mode.
    #[serde(default)]
    pub allow_in_plan_mode: bool,
    /// Forward the `X-Coder-*` identity headers to this server.
    #[serde(default)]
    pub forward_coder_headers: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update.
    pub updated_at: Timestamp,
    /// For the caller: OAuth2 token present (always true for other auth types).
    #[serde(default)]
    pub auth_connected: bool,
}

/// Body of `POST /mcp/servers` (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub struct CreateMCPServerConfigRequest {
    /// Display name (required).
    pub display_name: String,
    /// Unique slug (required).
    pub slug: String,
    /// Description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub description: String,
    /// Icon URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub icon_url: String,
    /// Transport (required).
    pub transport: MCPServerTransport,
    /// Server URL (required).
    pub url: String,
    /// Authentication (required).
    pub auth_type: MCPServerAuthType,
    /// OAuth2 client id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub oauth2_client_id: String,
    /// OAuth2 client secret (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub oauth2_client_secret: Option<SecretString>,
    /// OAuth2 authorization URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub oauth2_auth_url: String,
    /// OAuth2 token URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub oauth2_token_url: String,
    /// OAuth2 scopes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub oauth2_scopes: String,
    /// Header carrying the API key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[ts(as = "Option<_>", optional)]
    pub api_key_header: String,
    /// API key value (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub api_key_value: Option<SecretString>,
    /// Admin-set headers (write-only values).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[ts(as = "Option<BTreeMap<String, String>>", optional)]
    pub custom_headers: BTreeMap<String, SecretString>,
    /// Header names each user supplies.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub custom_headers_user_keys: Vec<String>,
    /// Descriptions of the user-supplied headers.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub custom_headers_user_key_descriptions: BTreeMap<String, String>,
    /// Tool allow-list.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub tool_allow_list: Vec<String>,
    /// Tool deny-list.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[ts(as = "Option<_>", optional)]
    pub tool_deny_list: Vec<String>,
    /// Availability (required).
    pub availability: MCPServerAvailability,
    /// Enabled (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub enabled: Option<bool>,
    /// Ask the model to state intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub model_intent: Option<bool>,
    /// Offered in plan mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub allow_in_plan_mode: Option<bool>,
    /// Forward the identity headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub forward_coder_headers: Option<bool>,
}

/// Body of `PATCH /mcp/servers/{mcpServer}`: every field optional; absent = unchanged.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[ts(optional_fields)]
pub struct UpdateMCPServerConfigRequest {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Icon URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    /// Transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<MCPServerTransport>,
    /// URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<MCPServerAuthType>,
    /// OAuth2 client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_client_id: Option<String>,
    /// OAuth2 client secret (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_client_secret: Option<SecretString>,
    /// OAuth2 authorization URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_auth_url: Option<String>,
    /// OAuth2 token URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_token_url: Option<String>,
    /// OAuth2 scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_scopes: Option<String>,
    /// API key header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_header: Option<String>,
    /// API key value (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_value: Option<SecretString>,
    /// Admin-set headers (write-only values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(as = "Option<BTreeMap<String, String>>")]
    pub custom_headers: Option<BTreeMap<String, SecretString>>,
    /// Header names each user supplies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_headers_user_keys: Option<Vec<String>>,
    /// Descriptions of the user-supplied headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_headers_user_key_descriptions: Option<BTreeMap<String, String>>,
    /// Tool allow-list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_allow_list: Option<Vec<String>>,
    /// Tool deny-list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_deny_list: Option<Vec<String>>,
    /// Availability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<MCPServerAvailability>,
    /// Enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Ask the model to state intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_intent: Option<bool>,
    /// Offered in plan mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_in_plan_mode: Option<bool>,
    /// Forward the identity headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_coder_headers: Option<bool>,
}

/// Response of `GET/PUT /mcp/servers/{mcpServer}/user-headers`; values are never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct MCPServerUserHeaders {
    /// The server.
    pub mcp_server_config_id: Uuid,
    /// Header name → whether the caller set a value. Never null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub has_values: BTreeMap<String, bool>,
}

/// Body of `PUT /mcp/servers/{mcpServer}/user-headers`; `""` clears one value.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
pub struct UpdateMCPServerUserHeadersRequest {
    /// Header name → value (write-only).
    #[serde(default, deserialize_with = "null_as_default")]
    #[ts(as = "BTreeMap<String, String>")]
    pub values: BTreeMap<String, SecretString>,
}
