//! MCP servers a workspace declares in its `.mcp.json`: stdio commands run inside the
//! workspace (through [`Workspace::spawn_stdio`], so in its sandbox), and HTTP or SSE
//! servers. Their tools are `<name>__<tool>`, offered on normal turns of root chats and
//! sub-agents, never on plan turns or to explore sub-agents.
//!
//! The file uses the common shape:
//!
//! ```json
//! {"mcpServers": {
//!   "files": {"command": "npx", "args": ["-y", "some-mcp-server"], "env": {"LEVEL": "1"}},
//!   "docs":  {"type": "http", "url": "http://127.0.0.1:8080/mcp", "headers": {"X-Team": "a"}},
//!   "old":   {"type": "sse", "url": "http://127.0.0.1:8081/sse"}
//! }}
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use codersdk::MCPServerTransport;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use super::session::Endpoint;
use crate::workspace::Workspace;

/// The file, at the workspace's working directory.
pub const MCP_CONFIG_FILE: &str = ".mcp.json";

/// The largest `.mcp.json` read; a bigger one is ignored with a warning.
pub const MAX_MCP_CONFIG_BYTES: u64 = 64 * 1024;

/// Servers taken from one file (the first by name).
pub const MAX_WORKSPACE_SERVERS: usize = 16;

/// How long reading the file may take: a workspace that does not answer must not hold the
/// turn.
pub const WORKSPACE_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
struct McpJson {
    #[serde(rename = "mcpServers", default)]
    servers: BTreeMap<String, Entry>,
}

/// One server of the file, as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
struct Entry {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// A server of the file, checked: what to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Declared {
    /// A shell command line (the command and its arguments quoted, the environment set).
    Stdio(String),
    /// An HTTP server.
    Http {
        url: String,
        transport: MCPServerTransport,
        headers: BTreeMap<String, String>,
    },
}

impl Declared {
    /// The endpoint to open. Stdio servers are started here.
    pub(crate) async fn endpoint(&self, ws: &dyn Workspace) -> Result<Endpoint, String> {
        match self {
            Declared::Stdio(command) => ws
                .spawn_stdio(command)
                .await
                .map(Endpoint::Stdio)
                .map_err(|e| e.message().to_owned()),
            Declared::Http {
                url,
                transport,
                headers,
            } => {
                let mut map = HeaderMap::new();
                for (name, value) in headers {
                    let name = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| format!("{name:?} is not a valid header name"))?;
                    let mut value = HeaderValue::from_str(value)
                        .map_err(|_| format!("the value of header {name} is not valid"))?;
                    value.set_sensitive(true);
                    map.insert(name, value);
                }
                Ok(Endpoint::Http {
                    url: url.clone(),
                    transport: transport.clone(),
                    headers: map,
                    bearer: None,
                })
            }
        }
    }

    /// A stable text of the declaration, for the session fingerprint.
    pub(crate) fn fingerprint_text(&self) -> String {
        format!("{self:?}")
    }
}

/// The servers `ws` declares, by name (at most [`MAX_WORKSPACE_SERVERS`]), with a warning
/// per entry that cannot be used. No file, or an unreadable one, is no servers.
pub(crate) async fn discover(ws: &dyn Workspace) -> Vec<(String, Declared)> {
    let read = tokio::time::timeout(
        WORKSPACE_DISCOVERY_TIMEOUT,
        ws.read_file(MCP_CONFIG_FILE, 0, MAX_MCP_CONFIG_BYTES + 1),
    )
    .await;
    let data = match read {
        Ok(Ok(read)) if read.size > MAX_MCP_CONFIG_BYTES => {
            tracing::warn!(
                size = read.size,
                "workspace .mcp.json is too large; ignored"
            );
            return Vec::new();
        }
        Ok(Ok(read)) => read.data,
        Ok(Err(_)) => return Vec::new(),
        Err(_) => {
            tracing::warn!("reading the workspace's .mcp.json timed out");
            return Vec::new();
        }
    };
    parse(&data)
}

/// The usable servers of a `.mcp.json` text.
pub(crate) fn parse(data: &[u8]) -> Vec<(String, Declared)> {
    let file: McpJson = match serde_json::from_slice(data) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "workspace .mcp.json is not valid; ignored");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (name, entry) in file.servers {
        if out.len() >= MAX_WORKSPACE_SERVERS {
            tracing::warn!(
                max = MAX_WORKSPACE_SERVERS,
                "workspace .mcp.json declares more servers than are used"
            );
            break;
        }
        match check(&entry) {
            Ok(declared) => out.push((name, declared)),
            Err(why) => tracing::warn!(server = %name, why, "workspace MCP server ignored"),
        }
    }
    out
}

fn check(entry: &Entry) -> Result<Declared, String> {
    let kind = entry.kind.as_deref().unwrap_or_default();
    match (kind, &entry.command, &entry.url) {
        ("" | "stdio", Some(command), None) => {
            if command.trim().is_empty() {
                return Err("empty command".into());
            }
            let mut line = String::from("exec env --");
            for (name, value) in &entry.env {
                let valid = name.chars().enumerate().all(|(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                });
                if name.is_empty() || !valid {
                    return Err(format!("{name:?} is not an environment variable name"));
                }
                line.push(' ');
                line.push_str(&shell_quote(&format!("{name}={value}")));
            }
            for word in std::iter::once(command).chain(entry.args.iter()) {
                if word.contains('\0') {
                    return Err("a NUL byte in the command".into());
                }
                line.push(' ');
                line.push_str(&shell_quote(word));
            }
            Ok(Declared::Stdio(line))
        }
        (kind, None, Some(url))
            if matches!(
                kind,
                "" | "http" | "streamable_http" | "streamable-http" | "sse"
            ) =>
        {
            let parsed = url::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err("the URL must be http or https".into());
            }
            let transport = if kind == "sse" {
                MCPServerTransport::Sse
            } else {
                MCPServerTransport::StreamableHttp
            };
            Ok(Declared::Http {
                url: url.clone(),
                transport,
                headers: entry.headers.clone(),
            })
        }
        _ => Err(format!(
            "needs either a command (stdio) or a url (http, sse); type {kind:?}"
        )),
    }
}

/// `word` in single quotes for `sh`, with embedded quotes escaped.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn stdio_http_and_sse_entries_parse_and_bad_ones_are_skipped() {
        let text = br#"{"mcpServers": {
            "files": {"command": "npx", "args": ["-y", "it's"], "env": {"LEVEL": "a b"}},
            "docs": {"type": "http", "url": "http://127.0.0.1:1/mcp", "headers": {"X-A": "1"}},
            "old": {"type": "sse", "url": "https://example.com/sse"},
            "both": {"command": "x", "url": "http://a/"},
            "ftp": {"url": "ftp://a/"},
            "badenv": {"command": "x", "env": {"1A": "x"}}
        }}"#;
        let servers = parse(text);
        let names: Vec<_> = servers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["docs", "files", "old"]);
        assert_eq!(
            servers[1].1,
            Declared::Stdio(r#"exec env -- 'LEVEL=a b' 'npx' '-y' 'it'\''s'"#.into())
        );
        assert!(matches!(
            &servers[2].1,
            Declared::Http {
                transport: MCPServerTransport::Sse,
                ..
            }
        ));
        assert!(parse(b"not json").is_empty());
        assert!(parse(b"{}").is_empty());
    }

    #[test]
    fn at_most_the_limit_of_servers_is_taken() {
        let servers: BTreeMap<String, serde_json::Value> = (0..MAX_WORKSPACE_SERVERS + 3)
            .map(|i| (format!("s{i:02}"), serde_json::json!({"command": "true"})))
            .collect();
        let text = serde_json::to_vec(&serde_json::json!({"mcpServers": servers})).unwrap();
        assert_eq!(parse(&text).len(), MAX_WORKSPACE_SERVERS);
    }
}
