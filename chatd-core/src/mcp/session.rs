//! One open MCP client session: the server's config as it was when connected, the `rmcp`
//! client over streamable HTTP or legacy SSE, and the tools it listed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use codersdk::{MCPServerConfig, MCPServerTransport};
use reqwest::header::HeaderMap;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use url::Url;

use super::sse::LegacySseTransport;

/// An open session.
pub struct Session {
    config: MCPServerConfig,
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
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.config.slug)
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
    /// Connects to `config`'s server with `headers` (and `bearer` as `Authorization`),
    /// initializes, and lists every tool. The caller bounds the time.
    pub(crate) async fn open(
        http: reqwest::Client,
        config: MCPServerConfig,
        headers: HeaderMap,
        bearer: Option<String>,
        limits: MessageLimits,
        fingerprint: [u8; 32],
    ) -> Result<Self, OpenError> {
        let mut redactor = chaterror::Redactor::new();
        for value in headers.values() {
            if let Ok(v) = value.to_str() {
                redactor.add_secret(v);
            }
        }
        if let Some(token) = &bearer {
            redactor.add_secret(token);
        }
        let fail = |text: String| OpenError(redactor.redact(&text).into_owned());
        let url = Url::parse(&config.url).map_err(|e| OpenError(format!("bad URL: {e}")))?;
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("chatd", env!("CARGO_PKG_VERSION")),
        );
        let client = match config.transport {
            MCPServerTransport::Sse => {
                let mut headers = headers;
                if let Some(token) = &bearer {
                    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                        .map_err(|_| fail("the access token is not a valid header value".into()))?;
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
            _ => {
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
            config,
            client,
            tools,
            fingerprint,
            opened: Instant::now(),
            broken: AtomicBool::new(false),
            redactor,
        })
    }

    /// The server's config when the session opened.
    pub fn config(&self) -> &MCPServerConfig {
        &self.config
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
