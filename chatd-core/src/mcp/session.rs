//! One open MCP client session: the server's config as it was when connected, the `rmcp`
//! client over streamable HTTP or legacy SSE, and the tools it listed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use codersdk::{MCPServerConfig, MCPServerTransport, Uuid};
use reqwest::header::HeaderMap;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use url::Url;

use super::sse::LegacySseTransport;
use crate::workspace::StdioProcess;

/// Who a session talks to, as its tools need it.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The tool-name prefix: an admin server's slug, a workspace server's name.
    pub(crate) slug: String,
    /// For descriptions.
    pub(crate) display_name: String,
    /// The admin config's id (`None` for workspace servers).
    pub(crate) config_id: Option<Uuid>,
    /// Wrap schemas with `model_intent`.
    pub(crate) model_intent: bool,
    /// Offered on root plan turns.
    pub(crate) allow_in_plan_mode: bool,
}

impl Identity {
    /// An admin server's identity.
    pub(crate) fn admin(config: &MCPServerConfig) -> Self {
        Identity {
            slug: config.slug.clone(),
            display_name: config.display_name.clone(),
            config_id: Some(config.id),
            model_intent: config.model_intent,
            allow_in_plan_mode: config.allow_in_plan_mode,
        }
    }
}

/// Where a session connects.
pub(crate) enum Endpoint {
    /// An HTTP server: streamable HTTP (the default) or legacy SSE, with `headers` on every
    /// request and `bearer` as `Authorization`.
    Http {
        url: String,
        transport: MCPServerTransport,
        headers: HeaderMap,
        bearer: Option<String>,
    },
    /// A process speaking the protocol over its stdin and stdout.
    Stdio(StdioProcess),
}

/// An open session.
pub struct Session {
    identity: Identity,
    client: RunningService<RoleClient, ClientConfig>,
    tools: Vec<rmcp::model::Tool>,
    /// What the session was opened with (config version and credentials); a different one
    /// means the cached session is stale.
    pub(crate) fingerprint: [u8; 32],
    pub(crate) opened: Instant,
    /// A call failed at the transport: the session is not reused.
    broken: AtomicBool,
    /// The credentials sent to the server: never in what the model or a user reads, even
    /// when the server echoes them back.
    pub(crate) redactor: chaterror::Redactor,
    /// Keeps a stdio server's process alive; dropping the session stops it.
    _process: Option<Box<dyn Send + Sync>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.identity.slug)
            .field("tools", &self.tools.len())
            .field("opened", &self.opened)
            .finish_non_exhaustive()
    }
}

/// Why opening a session failed, in words safe to log and show (no header values).
#[derive(Debug)]
pub(crate) struct OpenError(pub(crate) String);

/// The limits of one session's messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageLimits {
    pub(crate) max_message_bytes: usize,
}

impl Session {
    /// Connects to `endpoint`, initializes, and lists every tool. The caller bounds the
    /// time.
    pub(crate) async fn open(
        http: reqwest::Client,
        identity: Identity,
        endpoint: Endpoint,
        limits: MessageLimits,
        fingerprint: [u8; 32],
    ) -> Result<Self, OpenError> {
        let mut redactor = chaterror::Redactor::new();
        if let Endpoint::Http {
            headers, bearer, ..
        } = &endpoint
        {
            for value in headers.values() {
                if let Ok(v) = value.to_str() {
                    redactor.add_secret(v);
                }
            }
            if let Some(token) = bearer {
                redactor.add_secret(token);
            }
        }
        let fail = |text: String| OpenError(redactor.redact(&text).into_owned());
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("chatd", env!("CARGO_PKG_VERSION")),
        );
        let mut process = None;
        let client = match endpoint {
            Endpoint::Stdio(stdio) => {
                process = Some(stdio.guard);
                let transport = AsyncRwTransport::new_client(stdio.stdout, stdio.stdin)
                    .with_max_line_length(limits.max_message_bytes);
                info.serve(transport)
                    .await
                    .map_err(|e| fail(format!("initialize failed: {e}")))?
            }
            Endpoint::Http {
                url,
                transport: MCPServerTransport::Sse,
                mut headers,
                bearer,
            } => {
                let url = Url::parse(&url).map_err(|e| OpenError(format!("bad URL: {e}")))?;
                if let Some(token) = &bearer {
                    let mut value =
                        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                            .map_err(|_| {
                                fail("the access token is not a valid header value".into())
                            })?;
                    value.set_sensitive(true);
                    headers.insert(reqwest::header::AUTHORIZATION, value);
                }
                let transport =
                    LegacySseTransport::connect(http, url, headers, limits.max_message_bytes)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                info.serve(transport)
                    .await
                    .map_err(|e| fail(format!("initialize failed: {e}")))?
            }
            // Streamable HTTP is the default, and what an unknown future transport value
            // is tried with.
            Endpoint::Http {
                url,
                headers,
                bearer,
                ..
            } => {
                let url = Url::parse(&url).map_err(|e| OpenError(format!("bad URL: {e}")))?;
                let mut custom = std::collections::HashMap::new();
                for (name, value) in &headers {
                    custom.insert(name.clone(), value.clone());
                }
                let mut transport_config =
                    StreamableHttpClientTransportConfig::with_uri(url.as_str())
                        .custom_headers(custom)
                        .max_sse_event_size(limits.max_message_bytes)
                        .max_json_response_size(limits.max_message_bytes);
                if let Some(token) = bearer {
                    transport_config = transport_config.auth_header(token);
                }
                let transport = StreamableHttpClientTransport::with_client(http, transport_config);
                info.serve(transport)
                    .await
                    .map_err(|e| fail(format!("initialize failed: {e}")))?
            }
        };
        let tools = client
            .peer()
            .list_all_tools()
            .await
            .map_err(|e| fail(format!("listing tools failed: {e}")))?;
        Ok(Session {
            identity,
            client,
            tools,
            fingerprint,
            opened: Instant::now(),
            broken: AtomicBool::new(false),
            redactor,
            _process: process,
        })
    }

    /// Who the session talks to.
    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The server's name in tool names and messages.
    pub fn slug(&self) -> &str {
        &self.identity.slug
    }

    /// Every tool the server listed.
    pub fn tools(&self) -> &[rmcp::model::Tool] {
        &self.tools
    }

    /// Whether the session may serve another turn.
    pub(crate) fn usable(&self) -> bool {
        !self.broken.load(Ordering::Relaxed) && !self.client.is_closed()
    }

    /// Calls a tool. A transport failure marks the session broken, so the next turn
    /// connects afresh.
    pub(crate) async fn call(
        &self,
        params: CallToolRequestParams,
    ) -> Result<CallToolResult, ServiceError> {
        let result = self.client.peer().call_tool(params).await;
        if let Err(e) = &result {
            if !matches!(e, ServiceError::McpError(_)) {
                self.broken.store(true, Ordering::Relaxed);
            }
        }
        result
    }
}
