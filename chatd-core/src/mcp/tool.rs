//! One MCP server tool as a [`Tool`] of a turn: its model-facing name and schema, the call
//! with its timeout, and the conversion of the server's result into what the model reads.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use codersdk::{RawJson, Uuid};
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, ResourceContents};
use serde_json::{json, Map, Value};

use super::intent::{unwrap_arguments, wrap_schema};
use super::session::Session;
use crate::store::NewFile;
use crate::tools::{Tool, ToolContext, ToolOutput, TurnContext};
use crate::workspace::tools::Attachments;

/// A tool of an MCP server (an admin's, or one from the workspace's `.mcp.json`), for one
/// turn.
#[derive(Debug)]
pub struct McpTool {
    name: String,
    description: String,
    parameters: schemars::Schema,
    original_name: String,
    server_id: Option<Uuid>,
    allow_in_plan_mode: bool,
    model_intent: bool,
    timeout: Duration,
    session: Arc<Session>,
    media: Attachments,
}

impl McpTool {
    /// `tool` of the server behind `session`, called `name` by the model.
    pub(crate) fn new(
        name: String,
        tool: &rmcp::model::Tool,
        session: Arc<Session>,
        timeout: Duration,
        media: Attachments,
    ) -> Self {
        let identity = session.identity();
        let schema = if identity.model_intent {
            wrap_schema(&tool.input_schema)
        } else {
            (*tool.input_schema).clone()
        };
        let mut description = tool
            .description
            .as_deref()
            .or(tool.title.as_deref())
            .unwrap_or_default()
            .to_owned();
        if description.is_empty() {
            description = format!(
                "The {} tool of the {} MCP server.",
                tool.name, identity.display_name
            );
        }
        McpTool {
            name,
            description,
            parameters: schemars::Schema::from(schema),
            original_name: tool.name.to_string(),
            server_id: identity.config_id,
            allow_in_plan_mode: identity.allow_in_plan_mode,
            model_intent: identity.model_intent,
            timeout,
            session,
            media,
        }
    }

    /// The tool's name on its server.
    pub fn original_name(&self) -> &str {
        &self.original_name
    }
}

#[async_trait::async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> schemars::Schema {
        self.parameters.clone()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn available(&self, turn: &TurnContext) -> bool {
        // Plan turns: only servers an admin allowed there, and never in a sub-agent. An
        // explore sub-agent gets its parent's snapshot, not the live servers.
        if turn.explore {
            return false;
        }
        if turn.plan_mode {
            return self.allow_in_plan_mode && !turn.is_subagent();
        }
        true
    }

    fn mcp_server_config_id(&self) -> Option<Uuid> {
        self.server_id
    }

    async fn run(&self, ctx: ToolContext, args: RawJson) -> ToolOutput {
        let arguments = match args.parse::<Value>() {
            Ok(Value::Object(map)) => map,
            Ok(Value::Null) => Map::new(),
            Ok(_) => return ToolOutput::error("Invalid arguments: expected a JSON object."),
            Err(e) => return ToolOutput::error(format!("Invalid arguments: {e}")),
        };
        let arguments = if self.model_intent {
            unwrap_arguments(arguments).arguments
        } else {
            arguments
        };
        let mut params = CallToolRequestParams::new(self.original_name.clone());
        params.arguments = Some(arguments);
        let call = self.session.call(params);
        let result = tokio::select! {
            r = tokio::time::timeout(self.timeout, call) => r,
            () = ctx.cancel.cancelled() => return ToolOutput::error("The call was cancelled."),
        };
        let output = match result {
            Ok(Ok(result)) => convert_result(result, &self.media, &ctx).await,
            Ok(Err(e)) => ToolOutput::error(format!(
                "The MCP server {} failed the call: {e}",
                self.session.slug()
            )),
            Err(_) => ToolOutput::error(format!(
                "The MCP server {} did not answer within {} s.",
                self.session.slug(),
                self.timeout.as_secs()
            )),
        };
        redact_output(output, &self.session.redactor)
    }
}

/// `output` without the session's credentials, should the server have echoed them.
fn redact_output(output: ToolOutput, redactor: &chaterror::Redactor) -> ToolOutput {
    if redactor.is_empty() {
        return output;
    }
    let text = output.result.get();
    match redactor.redact(text) {
        std::borrow::Cow::Borrowed(_) => output,
        std::borrow::Cow::Owned(redacted) => match RawJson::from_json(&redacted) {
            Ok(result) => ToolOutput {
                result,
                is_error: output.is_error,
            },
            Err(_) => ToolOutput::error(
                "The MCP server's result contained a credential and was withheld.",
            ),
        },
    }
}

/// What the model reads of a result: a server's text alone is the result string; anything
/// else becomes `{"content": [...]}` with one entry per block — text as is, images and
/// binary resources stored as chat files (referenced by `file_id`, so the model's context
/// holds no base64 and a UI can show them), embedded text resources with their URI, links
/// as links — plus `structured_content` when the server sent it. `isError` results are
/// error results with the server's text.
pub(crate) async fn convert_result(
    result: CallToolResult,
    media: &Attachments,
    ctx: &ToolContext,
) -> ToolOutput {
    let is_error = result.is_error.unwrap_or(false);
    let only_text = result
        .content
        .iter()
        .all(|c| matches!(c, ContentBlock::Text(_)));
    if is_error || (only_text && result.structured_content.is_none()) {
        let text = result
            .content
            .iter()
            .filter_map(|c| match c {
                ContentBlock::Text(t) => Some(t.text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n");
        return if is_error {
            ToolOutput::error(if text.is_empty() {
                "The MCP server reported an error without a message.".to_owned()
            } else {
                text
            })
        } else {
            ToolOutput::text(text)
        };
    }
    let mut blocks = Vec::with_capacity(result.content.len());
    for block in result.content {
        blocks.push(match block {
            ContentBlock::Text(t) => json!({"type": "text", "text": t.text}),
            ContentBlock::Image(i) => store_media("image", &i.mime_type, &i.data, None, media, ctx).await,
            ContentBlock::Audio(a) => store_media("audio", &a.mime_type, &a.data, None, media, ctx).await,
            ContentBlock::Resource(r) => match r.resource {
                ResourceContents::TextResourceContents {
                    uri, mime_type, text, ..
                } => json!({"type": "resource", "uri": uri, "mime_type": mime_type, "text": text}),
                ResourceContents::BlobResourceContents {
                    uri, mime_type, blob, ..
                } => {
                    let mime = mime_type.unwrap_or_else(|| "application/octet-stream".to_owned());
                    store_media("resource", &mime, &blob, Some(uri), media, ctx).await
                }
                _ => json!({"type": "resource", "error": "A resource of a kind this client does not read."}),
            },
            ContentBlock::ResourceLink(l) => json!({
                "type": "resource_link",
                "uri": l.uri,
                "name": l.name,
                "description": l.description,
                "mime_type": l.mime_type,
            }),
            _ => json!({"type": "unknown", "error": "A content block of a kind this client does not read."}),
        });
    }
    let mut out = json!({ "content": blocks });
    if let (Some(structured), Value::Object(map)) = (result.structured_content, &mut out) {
        map.insert("structured_content".to_owned(), structured);
    }
    ToolOutput::json(&out)
}

/// Stores base64 `data` as a chat file; the entry names the file, or says why it could not
/// be stored (bad base64, a type or size the file store refuses).
async fn store_media(
    kind: &str,
    declared_mime: &str,
    data: &str,
    uri: Option<String>,
    media: &Attachments,
    ctx: &ToolContext,
) -> Value {
    let mut entry = json!({"type": kind, "mime_type": declared_mime});
    if let (Some(uri), Value::Object(map)) = (uri, &mut entry) {
        map.insert("uri".to_owned(), Value::from(uri));
    }
    let set = |entry: &mut Value, key: &str, value: Value| {
        if let Value::Object(map) = entry {
            map.insert(key.to_owned(), value);
        }
    };
    let bytes = match base64::engine::general_purpose::STANDARD.decode(data.trim()) {
        Ok(b) => b,
        Err(_) => {
            set(
                &mut entry,
                "error",
                Value::from("The server sent data that is not valid base64."),
            );
            return entry;
        }
    };
    set(&mut entry, "size_bytes", Value::from(bytes.len()));
    let mime = match codersdk::check_upload(declared_mime, &bytes) {
        Ok(m) => m.to_owned(),
        Err(response) => {
            set(
                &mut entry,
                "error",
                Value::from(format!("Not stored as a chat file: {}", response.message)),
            );
            return entry;
        }
    };
    let file = NewFile {
        owner_id: ctx.owner_id(),
        organization_id: media.organization_id,
        name: format!("{kind}-{}", ctx.tool_call_id),
        mime_type: mime,
        data: bytes,
    };
    match media.store.attach_file(ctx.chat_id(), file).await {
        Ok(meta) => set(&mut entry, "file_id", Value::from(meta.id.to_string())),
        Err(e) if e.kind().is_client_error() => {
            set(
                &mut entry,
                "error",
                Value::from(format!("Not stored as a chat file: {e}")),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "storing an MCP tool's media failed");
            set(
                &mut entry,
                "error",
                Value::from("Not stored as a chat file because of an internal error."),
            );
        }
    }
    entry
}
