//! Request validation shared by the server and by clients (codersdk.md §5, §9, §10, §12,
//! §13, §16; the choices the spec leaves open are written down in `docs/validation.md`).
//!
//! Every validator returns the standard [`Response`] on failure, with one
//! [`ValidationError`] per problem. Field names are JSON paths (`content[0].text`,
//! `unsafe_dynamic_tools[3].name`) or query parameter names (`limit`). Validators report
//! every problem they find rather than the first one, so a bot author fixes a request in
//! one round trip. No validator panics, whatever the input, and no message ever contains
//! a secret.

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

use crate::{
    ChatBusyBehavior, ChatClientType, ChatFileMetadata, ChatInputPart, ChatInputPartType,
    ChatMessagePart, ChatModelCallConfig, ChatPlanMode, ChatProviderConfig, ChatUsageLimitPeriod,
    CreateChatMessageRequest, CreateChatModelConfigRequest, CreateChatProviderConfigRequest,
    CreateChatRequest, CreateUserChatProviderKeyRequest, DynamicTool, EditChatMessageRequest,
    RawJson, Response, SecretString, SubmitToolResultsRequest, ToolResult,
    UpdateChatModelConfigRequest, UpdateChatProviderConfigRequest, UpdateChatRequest,
    ValidationError, CHAT_ATTACHMENT_MEDIA_TYPES, DEFAULT_COMPRESSION_THRESHOLD,
    MAX_CHAT_FILE_SIZE_BYTES,
};

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

/// Most labels one chat may carry (§10).
pub const MAX_CHAT_LABELS: usize = 50;

/// Longest label key, in bytes (§10).
pub const MAX_LABEL_KEY_BYTES: usize = 64;

/// Longest label value, in bytes (§10).
pub const MAX_LABEL_VALUE_BYTES: usize = 256;

/// Longest chat title, in Unicode scalar values ("runes"), after trimming (§5.3).
pub const MAX_CHAT_TITLE_RUNES: usize = 200;

/// Longest per-chat system prompt, in Unicode scalar values, after sanitizing (§5.2).
pub const MAX_CHAT_SYSTEM_PROMPT_CHARS: usize = 10_000;

/// Longest deployment system prompt, in bytes of UTF-8, after sanitizing (§15).
pub const MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES: usize = 128 * 1024;

/// Most input parts in one message.
///
/// The spec sets no limit; 100 is far above what the web UI sends (a text part, a few
/// attachments and diff comments) and keeps the per-part error list short.
pub const MAX_CHAT_INPUT_PARTS: usize = 100;

/// Most text in one message, in bytes: the sum of every `text`, and of every
/// file-reference `file_name` and `content`.
///
/// Equal to the 256 KiB body cap of chat creation (§1), so any message that fits the
/// creation body also passes here; sending a message applies the same bound.
pub const MAX_CHAT_MESSAGE_TEXT_BYTES: usize = 256 * 1024;

/// Longest `file_name` of a file-reference part, in bytes (a generous `PATH_MAX`).
pub const MAX_FILE_REFERENCE_NAME_BYTES: usize = 4096;

/// Most client-executed tools one chat may declare (§5.6).
pub const MAX_DYNAMIC_TOOLS: usize = 250;

/// Longest dynamic tool name, in bytes. OpenAI and Anthropic both reject tool names
/// outside `^[a-zA-Z0-9_-]{1,64}$`, so a longer name would fail every model call.
pub const MAX_DYNAMIC_TOOL_NAME_BYTES: usize = 64;

/// Page size of `GET /chats/{chat}/messages` when `limit` is absent (§16.2).
pub const DEFAULT_MESSAGE_PAGE_LIMIT: i64 = 50;

/// Largest page size of `GET /chats/{chat}/messages` (§16.2).
pub const MAX_MESSAGE_PAGE_LIMIT: i64 = 200;

/// Page size of `GET /chats` when `limit` is absent or `0` (§16.1).
pub const DEFAULT_CHAT_LIST_LIMIT: i64 = 50;

/// Largest page size of `GET /chats`. The spec leaves the maximum open; every root chat
/// carries its children, so pages are kept to the same bound as message pages.
pub const MAX_CHAT_LIST_LIMIT: i64 = 200;

/// Largest `offset` of `GET /chats`: Coder's database parameter is a 32-bit integer.
pub const MAX_CHAT_LIST_OFFSET: i64 = i32::MAX as i64;

/// Most workspace ids in one `GET /chats/by-workspace` lookup (§16.3).
pub const MAX_WORKSPACE_IDS_PER_LOOKUP: usize = 25;

/// Largest central or user provider API key, in bytes ("10 KB" in §12.1, read as KiB).
pub const MAX_PROVIDER_API_KEY_BYTES: usize = 10 * 1024;

/// Longest URL accepted anywhere (provider base URLs, `diff_url` searches), in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// Longest provider or model display name, in Unicode scalar values.
pub const MAX_DISPLAY_NAME_RUNES: usize = 256;

/// Longest provider model identifier (`model`), in bytes.
pub const MAX_MODEL_NAME_BYTES: usize = 256;

/// Highest compaction threshold, in percent of the context limit (§12.3); the lowest is 0.
pub const MAX_COMPRESSION_THRESHOLD_PERCENT: i32 = 100;

/// Lowest sampling temperature (§12.3).
pub const MIN_MODEL_TEMPERATURE: f64 = 0.0;

/// Highest sampling temperature (§12.3).
pub const MAX_MODEL_TEMPERATURE: f64 = 2.0;

/// Highest nucleus-sampling `top_p`; the lowest is 0. It is a probability mass.
pub const MAX_MODEL_TOP_P: f64 = 1.0;

/// Bound of `presence_penalty` and `frequency_penalty`: both lie in `[-2, 2]`, the range
/// OpenAI-style APIs accept.
pub const MAX_MODEL_PENALTY: f64 = 2.0;

/// Period of a usage limit when the request leaves it empty (§13.3).
pub const DEFAULT_USAGE_LIMIT_PERIOD: ChatUsageLimitPeriod = ChatUsageLimitPeriod::Month;

const MSG_QUERY: &str = "Invalid query parameters.";

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// Collects problems so that one response lists all of them.
#[derive(Debug, Default)]
struct Problems(Vec<ValidationError>);

impl Problems {
    fn push(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.0.push(ValidationError::new(field, detail));
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn absorb(&mut self, response: Response) {
        self.0.extend(response.validations);
    }

    fn into_response(self, message: &str) -> Response {
        Response {
            message: message.to_owned(),
            detail: String::new(),
            validations: self.0,
        }
    }

    fn finish(self, message: &str) -> Result<(), Response> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.into_response(message))
        }
    }
}

fn single(message: &str, field: &str, detail: impl Into<String>) -> Response {
    Response::new(message).with_validation(field, detail)
}

/// Quotes user input for an error message: escaped (no raw control characters reach a
/// log line) and cut to 64 characters so a huge value cannot bloat the response.
fn quoted(s: &str) -> String {
    const MAX_ECHO_CHARS: usize = 64;
    let mut cut: String = s.chars().take(MAX_ECHO_CHARS).collect();
    if cut.len() < s.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Lower-cased, trimmed form used for the case-insensitive enum comparisons of requests.
fn folded(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

fn rune_count(s: &str) -> usize {
    s.chars().count()
}

// ---------------------------------------------------------------------------------------
// Labels (§10)
// ---------------------------------------------------------------------------------------

fn label_key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("Label keys must not be empty.".to_owned());
    }
    if key.len() > MAX_LABEL_KEY_BYTES {
        return Some(format!(
            "Label key {} is {} bytes long; keys may be at most {MAX_LABEL_KEY_BYTES} bytes.",
            quoted(key),
            key.len()
        ));
    }
    let mut chars = key.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
    if !(first_ok && rest_ok) {
        return Some(format!(
            "Label key {} is invalid: it must start with an ASCII letter or digit and contain \
             only ASCII letters, digits, '.', '_', '/' and '-'.",
            quoted(key)
        ));
    }
    None
}

fn label_value_problem(key: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return Some(format!(
            "Label {} has an empty value; values must not be empty.",
            quoted(key)
        ));
    }
    if value.len() > MAX_LABEL_VALUE_BYTES {
        return Some(format!(
            "The value of label {} is {} bytes long; values may be at most \
             {MAX_LABEL_VALUE_BYTES} bytes.",
            quoted(key),
            value.len()
        ));
    }
    if has_nul(value) {
        return Some(format!(
            "The value of label {} must not contain NUL characters.",
            quoted(key)
        ));
    }
    None
}

fn check_labels(labels: &BTreeMap<String, String>, field: &str, p: &mut Problems) {
    if labels.len() > MAX_CHAT_LABELS {
        p.push(
            field,
            format!(
                "{} labels were given; a chat may have at most {MAX_CHAT_LABELS}.",
                labels.len()
            ),
        );
        return;
    }
    for (key, value) in labels {
        if let Some(problem) = label_key_problem(key) {
            p.push(field, problem);
        } else if let Some(problem) = label_value_problem(key, value) {
            p.push(field, problem);
        }
    }
}

/// Validates a chat's label map (§10): at most [`MAX_CHAT_LABELS`] entries, keys and
/// values as §10 describes. Every problem is reported under the field `labels`.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), Response> {
    let mut p = Problems::default();
    check_labels(labels, "labels", &mut p);
    p.finish("Invalid chat labels.")
}

/// Parses the repeatable `label=key:value` filter of `GET /chats` (§16.1) into the map
/// that every matching chat must contain.
///
/// Each value is split on its **first** colon (so values may contain colons); a value
/// without a colon is rejected. Keys and values follow the label rules of §10, because a
/// filter that breaks them can never match. Giving the same key twice with the same value
/// is harmless and merged; with different values it can never match and is rejected. At
/// most [`MAX_CHAT_LABELS`] filters are accepted. Problems are reported under `label`.
pub fn parse_label_filters<I, S>(values: I) -> Result<BTreeMap<String, String>, Response>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut p = Problems::default();
    let mut out = BTreeMap::new();
    for (count, raw) in values.into_iter().enumerate() {
        if count >= MAX_CHAT_LABELS {
            p.push(
                "label",
                format!("At most {MAX_CHAT_LABELS} label filters may be given."),
            );
            break;
        }
        let raw = raw.as_ref();
        let Some((key, value)) = raw.split_once(':') else {
            p.push(
                "label",
                format!("Label filter {} must have the form key:value.", quoted(raw)),
            );
            continue;
        };
        if let Some(problem) = label_key_problem(key).or_else(|| label_value_problem(key, value)) {
            p.push("label", problem);
            continue;
        }
        match out.get(key) {
            Some(existing) if existing != value => p.push(
                "label",
                format!(
                    "Label {} is filtered on two different values; no chat can match both.",
                    quoted(key)
                ),
            ),
            Some(_) => {}
            None => {
                out.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    p.finish("Invalid label filter.")?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Title and system prompts
// ---------------------------------------------------------------------------------------

fn title_problem(title: &str) -> Result<String, String> {
    let trimmed = title.trim();
    if trimmed.is_empty() {
        return Err("The title must not be empty.".to_owned());
    }
    let runes = rune_count(trimmed);
    if runes > MAX_CHAT_TITLE_RUNES {
        return Err(format!(
            "The title is {runes} characters long; titles may be at most \
             {MAX_CHAT_TITLE_RUNES} characters."
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("The title must be a single line without control characters.".to_owned());
    }
    Ok(trimmed.to_owned())
}

/// Validates a chat title (§5.3) and returns it trimmed: non-empty, at most
/// [`MAX_CHAT_TITLE_RUNES`] characters, one line without control characters.
pub fn validate_chat_title(title: &str) -> Result<String, Response> {
    title_problem(title).map_err(|detail| single("Invalid chat title.", "title", detail))
}

/// Cleans a system prompt before it is stored: line endings become `\n`, control
/// characters other than tab and newline are removed (databases reject NUL, and the
/// others are invisible noise to a model), and surrounding whitespace is trimmed.
pub fn sanitize_system_prompt(prompt: &str) -> String {
    let mut out = String::with_capacity(prompt.len());
    let mut chars = prompt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.trim().to_owned()
}

/// Validates the per-chat `system_prompt` of chat creation (§5.2): sanitized as
/// [`sanitize_system_prompt`] does, then at most [`MAX_CHAT_SYSTEM_PROMPT_CHARS`]
/// characters. Returns the sanitized prompt (empty when none was given).
pub fn validate_chat_system_prompt(prompt: &str) -> Result<String, Response> {
    let clean = sanitize_system_prompt(prompt);
    let chars = rune_count(&clean);
    if chars > MAX_CHAT_SYSTEM_PROMPT_CHARS {
        return Err(single(
            "Invalid system prompt.",
            "system_prompt",
            format!(
                "The system prompt is {chars} characters long; it may be at most \
                 {MAX_CHAT_SYSTEM_PROMPT_CHARS} characters."
            ),
        ));
    }
    Ok(clean)
}

/// Validates the deployment system prompt of `PUT /chats/config/system-prompt` (§15):
/// sanitized as [`sanitize_system_prompt`] does, then at most
/// [`MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES`] bytes. Returns the sanitized prompt.
pub fn validate_deployment_system_prompt(prompt: &str) -> Result<String, Response> {
    let clean = sanitize_system_prompt(prompt);
    if clean.len() > MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES {
        return Err(single(
            "Invalid system prompt.",
            "system_prompt",
            format!(
                "The system prompt is {} bytes long; it may be at most \
                 {MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES} bytes (128 KiB).",
                clean.len()
            ),
        ));
    }
    Ok(clean)
}

// ---------------------------------------------------------------------------------------
// Input parts (§5.1)
// ---------------------------------------------------------------------------------------

/// One user input part after validation: the type is resolved and the required fields
/// are known to be present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidatedInputPart {
    /// Non-blank text, kept exactly as sent (leading whitespace can matter in code).
    Text(String),
    /// An uploaded chat file. The server still has to check that it exists and that the
    /// caller may read it; [`input_parts_to_message_parts`] takes its metadata.
    File(Uuid),
    /// A reference to lines of a file (a diff comment).
    FileReference {
        /// Path of the file, trimmed.
        file_name: String,
        /// First line, 1-based; 0 together with `end_line` 0 means "no line range".
        start_line: i64,
        /// Last line, inclusive; at least `start_line`.
        end_line: i64,
        /// The commented snippet (may be empty).
        content: String,
    },
}

/// Resolves the `type` of an input part: trimmed and case-insensitive (§5.1).
fn input_part_kind(t: &ChatInputPartType) -> Option<ChatInputPartType> {
    match folded(t.as_str()).as_str() {
        "text" => Some(ChatInputPartType::Text),
        "file" => Some(ChatInputPartType::File),
        "file-reference" => Some(ChatInputPartType::FileReference),
        _ => None,
    }
}

fn check_input_part(
    index: usize,
    part: &ChatInputPart,
    p: &mut Problems,
) -> Option<ValidatedInputPart> {
    let at = |name: &str| format!("content[{index}].{name}");
    let Some(kind) = input_part_kind(&part.part_type) else {
        p.push(
            at("type"),
            format!(
                "Unsupported part type {}; use \"text\", \"file\" or \"file-reference\".",
                quoted(part.part_type.as_str())
            ),
        );
        return None;
    };
    match kind {
        ChatInputPartType::Text => {
            if part.text.trim().is_empty() {
                p.push(at("text"), "Text parts need non-blank text.");
                None
            } else if has_nul(&part.text) {
                p.push(at("text"), "Text must not contain NUL characters.");
                None
            } else {
                Some(ValidatedInputPart::Text(part.text.clone()))
            }
        }
        ChatInputPartType::File => match part.file_id {
            None => {
                p.push(
                    at("file_id"),
                    "File parts need the file_id of an uploaded chat file.",
                );
                None
            }
            Some(id) if id.is_nil() => {
                p.push(at("file_id"), "file_id must not be the nil UUID.");
                None
            }
            Some(id) => Some(ValidatedInputPart::File(id)),
        },
        _ => check_file_reference(part, &at, p),
    }
}

fn check_file_reference(
    part: &ChatInputPart,
    at: &dyn Fn(&str) -> String,
    p: &mut Problems,
) -> Option<ValidatedInputPart> {
    let before = p.0.len();
    let file_name = part.file_name.trim();
    if file_name.is_empty() {
        p.push(at("file_name"), "File-reference parts need a file_name.");
    } else if file_name.len() > MAX_FILE_REFERENCE_NAME_BYTES {
        p.push(
            at("file_name"),
            format!("file_name may be at most {MAX_FILE_REFERENCE_NAME_BYTES} bytes."),
        );
    } else if file_name.chars().any(char::is_control) {
        p.push(
            at("file_name"),
            "file_name must not contain control characters.",
        );
    }
    let (start, end) = (part.start_line, part.end_line);
    if start < 0 {
        p.push(at("start_line"), "start_line must not be negative.");
    }
    if end < 0 {
        p.push(at("end_line"), "end_line must not be negative.");
    }
    if start >= 0 && end >= 0 && !(start == 0 && end == 0) {
        if start == 0 {
            p.push(
                at("start_line"),
                "Lines are numbered from 1; start_line must be at least 1.",
            );
        } else if end < start {
            p.push(
                at("end_line"),
                format!("end_line ({end}) must not be before start_line ({start})."),
            );
        }
    }
    if has_nul(&part.content) {
        p.push(at("content"), "content must not contain NUL characters.");
    }
    if p.0.len() != before {
        return None;
    }
    Some(ValidatedInputPart::FileReference {
        file_name: file_name.to_owned(),
        start_line: start,
        end_line: end,
        content: part.content.clone(),
    })
}

fn text_bytes(parts: &[ChatInputPart]) -> usize {
    parts.iter().fold(0usize, |sum, part| {
        sum.saturating_add(part.text.len())
            .saturating_add(part.file_name.len())
            .saturating_add(part.content.len())
    })
}

/// Checks `content` of a message request; `None` when `content` is empty (which the
/// callers report with the exact message "Content is required.").
fn check_content(parts: &[ChatInputPart], p: &mut Problems) -> Option<Vec<ValidatedInputPart>> {
    if parts.is_empty() {
        p.push("content", "Send at least one content part.");
        return None;
    }
    if parts.len() > MAX_CHAT_INPUT_PARTS {
        p.push(
            "content",
            format!(
                "{} content parts were given; a message may have at most \
                 {MAX_CHAT_INPUT_PARTS}.",
                parts.len()
            ),
        );
        return Some(Vec::new());
    }
    let total = text_bytes(parts);
    if total > MAX_CHAT_MESSAGE_TEXT_BYTES {
        p.push(
            "content",
            format!(
                "The message text is {total} bytes long; a message may hold at most \
                 {MAX_CHAT_MESSAGE_TEXT_BYTES} bytes of text. Upload long text as a file."
            ),
        );
    }
    Some(
        parts
            .iter()
            .enumerate()
            .filter_map(|(i, part)| check_input_part(i, part, p))
            .collect(),
    )
}

fn content_message(parts: &[ChatInputPart], fallback: &'static str) -> &'static str {
    if parts.is_empty() {
        "Content is required."
    } else {
        fallback
    }
}

/// Validates the `content` of a chat or message request (§5.1).
///
/// `type` is compared trimmed and case-insensitively; `text` needs non-blank text, `file`
/// a `file_id`, `file-reference` a `file_name` and a sane line range (both 0 for no range,
/// otherwise `1 ≤ start_line ≤ end_line`). At most [`MAX_CHAT_INPUT_PARTS`] parts and
/// [`MAX_CHAT_MESSAGE_TEXT_BYTES`] bytes of text. An empty array fails with the message
/// "Content is required.". On success the parts come back in order, one per input part.
pub fn validate_input_parts(parts: &[ChatInputPart]) -> Result<Vec<ValidatedInputPart>, Response> {
    let mut p = Problems::default();
    let validated = check_content(parts, &mut p);
    if !p.is_empty() {
        return Err(p.into_response(content_message(parts, "Invalid message content.")));
    }
    Ok(validated.unwrap_or_default())
}

/// What the server knows about an uploaded file when it turns a `file` input part into a
/// message part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedChatFile {
    /// The stored MIME type.
    pub media_type: String,
    /// The original file name (may be empty).
    pub name: String,
}

impl From<&ChatFileMetadata> for ResolvedChatFile {
    fn from(file: &ChatFileMetadata) -> Self {
        ResolvedChatFile {
            media_type: file.mime_type.clone(),
            name: file.name.clone(),
        }
    }
}

/// The distinct file ids that validated parts reference, in first-use order, so the server
/// can load their metadata in one query before calling [`input_parts_to_message_parts`].
pub fn referenced_file_ids(parts: &[ValidatedInputPart]) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    parts
        .iter()
        .filter_map(|part| match part {
            ValidatedInputPart::File(id) if seen.insert(*id) => Some(*id),
            _ => None,
        })
        .collect()
}

/// Turns validated input parts into the message parts that are stored (§5.1).
///
/// Text and file-reference parts convert directly. A `file` part needs the file's MIME
/// type: `resolve_file` returns it, or `None` when the file does not exist or the caller
/// may not read it, which fails with a 400 naming `content[i].file_id`. The lookup is a
/// plain closure so the server can fetch every id of [`referenced_file_ids`] at once and
/// answer from a map.
pub fn input_parts_to_message_parts<F>(
    parts: &[ValidatedInputPart],
    mut resolve_file: F,
) -> Result<Vec<ChatMessagePart>, Response>
where
    F: FnMut(Uuid) -> Option<ResolvedChatFile>,
{
    let mut p = Problems::default();
    let mut out = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        match part {
            ValidatedInputPart::Text(text) => out.push(ChatMessagePart::text(text.clone())),
            ValidatedInputPart::FileReference {
                file_name,
                start_line,
                end_line,
                content,
            } => {
                out.push(ChatMessagePart::file_reference(
                    file_name.clone(),
                    *start_line,
                    *end_line,
                    content.clone(),
                ));
            }
            ValidatedInputPart::File(id) => match resolve_file(*id) {
                Some(file) => {
                    let mut message_part = ChatMessagePart::file(*id, file.media_type);
                    message_part.name = file.name;
                    out.push(message_part);
                }
                None => p.push(
                    format!("content[{index}].file_id"),
                    format!("File {id} does not exist or you may not read it. Upload it first."),
                ),
            },
        }
    }
    p.finish("Invalid message content.")?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Dynamic tools (§5.6)
// ---------------------------------------------------------------------------------------

fn check_dynamic_tools(tools: &[DynamicTool], p: &mut Problems) {
    if tools.len() > MAX_DYNAMIC_TOOLS {
        p.push(
            "unsafe_dynamic_tools",
            format!(
                "{} dynamic tools were declared; a chat may declare at most {MAX_DYNAMIC_TOOLS}.",
                tools.len()
            ),
        );
        return;
    }
    let mut seen = HashSet::new();
    for (i, tool) in tools.iter().enumerate() {
        let name_field = format!("unsafe_dynamic_tools[{i}].name");
        let name = tool.name.as_str();
        if name.is_empty() {
            p.push(name_field, "Tool names must not be empty.");
        } else if name.len() > MAX_DYNAMIC_TOOL_NAME_BYTES
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            p.push(
                name_field,
                format!(
                    "Tool name {} is invalid: model providers accept only 1 to \
                     {MAX_DYNAMIC_TOOL_NAME_BYTES} ASCII letters, digits, '_' and '-'.",
                    quoted(name)
                ),
            );
        } else if !seen.insert(name) {
            p.push(
                name_field,
                format!(
                    "Tool name {} is declared more than once; names must be unique.",
                    quoted(name)
                ),
            );
        }
        if let Some(problem) = input_schema_problem(&tool.input_schema) {
            p.push(format!("unsafe_dynamic_tools[{i}].input_schema"), problem);
        }
    }
}

fn input_schema_problem(schema: &RawJson) -> Option<&'static str> {
    if !schema.is_object() {
        return Some("input_schema must be a JSON Schema object, e.g. {\"type\":\"object\"}.");
    }
    match schema.to_value().get("type") {
        None => None,
        Some(serde_json::Value::String(t)) if t == "object" => None,
        Some(_) => Some(
            "input_schema must describe an object: model providers pass tool arguments as a \
             JSON object, so \"type\" must be \"object\" when present.",
        ),
    }
}

/// Validates the client-executed tools of chat creation (§5.6): at most
/// [`MAX_DYNAMIC_TOOLS`], names unique and matching `^[a-zA-Z0-9_-]{1,64}$`, and every
/// `input_schema` a JSON object whose `type`, when present, is `"object"`.
pub fn validate_dynamic_tools(tools: &[DynamicTool]) -> Result<(), Response> {
    let mut p = Problems::default();
    check_dynamic_tools(tools, &mut p);
    p.finish("Invalid dynamic tools.")
}

// ---------------------------------------------------------------------------------------
// Enumerations inside request bodies
// ---------------------------------------------------------------------------------------

/// `None` = unchanged, `Some(true)` = enter plan mode, `Some(false)` = leave it.
fn plan_mode_change(mode: Option<&ChatPlanMode>) -> Result<Option<bool>, String> {
    let Some(mode) = mode else {
        return Ok(None);
    };
    match mode.as_str() {
        "plan" => Ok(Some(true)),
        "" => Ok(Some(false)),
        _ => Err(format!(
            "Unknown plan_mode {}; use \"plan\" to plan or \"\" for normal mode.",
            quoted(mode.as_str())
        )),
    }
}

fn client_type(value: Option<&ChatClientType>) -> Result<ChatClientType, String> {
    let Some(value) = value else {
        return Ok(ChatClientType::Api);
    };
    match value.as_str() {
        "" | "api" => Ok(ChatClientType::Api),
        "ui" => Ok(ChatClientType::Ui),
        _ => Err(format!(
            "Unknown client_type {}; use \"ui\" or \"api\".",
            quoted(value.as_str())
        )),
    }
}

/// Resolves `busy_behavior` (§3.5): absent or `""` means queue.
fn busy_behavior(value: Option<&ChatBusyBehavior>) -> Result<ChatBusyBehavior, String> {
    let Some(value) = value else {
        return Ok(ChatBusyBehavior::Queue);
    };
    match value.as_str() {
        "" | "queue" => Ok(ChatBusyBehavior::Queue),
        "interrupt" => Ok(ChatBusyBehavior::Interrupt),
        _ => Err(format!(
            "Unknown busy_behavior {}; use \"queue\" or \"interrupt\".",
            quoted(value.as_str())
        )),
    }
}

fn dedup_ids(ids: &[Uuid]) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

// ---------------------------------------------------------------------------------------
// Whole request bodies
// ---------------------------------------------------------------------------------------

/// A [`CreateChatRequest`] after validation, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedCreateChat {
    /// The organization; `None` when an older client omitted it.
    pub organization_id: Option<Uuid>,
    /// The first message.
    pub content: Vec<ValidatedInputPart>,
    /// The sanitized per-chat system prompt; empty when none.
    pub system_prompt: String,
    /// Workspace to bind; an explicit nil UUID is read as "none".
    pub workspace_id: Option<Uuid>,
    /// Explicit model config.
    pub model_config_id: Option<Uuid>,
    /// MCP servers, duplicates removed, in request order.
    pub mcp_server_ids: Vec<Uuid>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Client-executed tools.
    pub dynamic_tools: Vec<DynamicTool>,
    /// Start in plan mode.
    pub plan_mode: bool,
    /// `ui` or `api` (default `api`).
    pub client_type: ChatClientType,
}

/// Validates the body of `POST /chats` (§5.2) and applies its defaults.
pub fn validate_create_chat_request(
    req: &CreateChatRequest,
) -> Result<ValidatedCreateChat, Response> {
    let mut p = Problems::default();
    if req.organization_id.is_some_and(|id| id.is_nil()) {
        p.push(
            "organization_id",
            "organization_id must not be the nil UUID.",
        );
    }
    let content = check_content(&req.content, &mut p).unwrap_or_default();
    let system_prompt = validate_chat_system_prompt(&req.system_prompt).unwrap_or_else(|r| {
        p.absorb(r);
        String::new()
    });
    if req.model_config_id.is_some_and(|id| id.is_nil()) {
        p.push(
            "model_config_id",
            "model_config_id must not be the nil UUID; omit it for the default model.",
        );
    }
    check_labels(&req.labels, "labels", &mut p);
    check_dynamic_tools(&req.unsafe_dynamic_tools, &mut p);
    let plan_mode = plan_mode_change(req.plan_mode.as_ref()).unwrap_or_else(|detail| {
        p.push("plan_mode", detail);
        None
    });
    let client_type = client_type(req.client_type.as_ref()).unwrap_or_else(|detail| {
        p.push("client_type", detail);
        ChatClientType::Api
    });
    if !p.is_empty() {
        return Err(p.into_response(content_message(
            &req.content,
            "Invalid chat creation request.",
        )));
    }
    Ok(ValidatedCreateChat {
        organization_id: req.organization_id,
        content,
        system_prompt,
        workspace_id: req.workspace_id.filter(|id| !id.is_nil()),
        model_config_id: req.model_config_id,
        mcp_server_ids: dedup_ids(&req.mcp_server_ids),
        labels: req.labels.clone(),
        dynamic_tools: req.unsafe_dynamic_tools.clone(),
        plan_mode: plan_mode.unwrap_or(false),
        client_type,
    })
}

/// A [`CreateChatMessageRequest`] after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedChatMessage {
    /// The message.
    pub content: Vec<ValidatedInputPart>,
    /// Switch to this model config.
    pub model_config_id: Option<Uuid>,
    /// When present, the new MCP selection (duplicates removed).
    pub mcp_server_ids: Option<Vec<Uuid>>,
    /// Queue (default) or interrupt.
    pub busy_behavior: ChatBusyBehavior,
    /// `None` = unchanged, `Some(true)` = enter plan mode, `Some(false)` = leave it.
    pub plan_mode: Option<bool>,
}

/// Validates the body of `POST /chats/{chat}/messages` (§5.4).
pub fn validate_create_chat_message_request(
    req: &CreateChatMessageRequest,
) -> Result<ValidatedChatMessage, Response> {
    let mut p = Problems::default();
    let content = check_content(&req.content, &mut p).unwrap_or_default();
    if req.model_config_id.is_some_and(|id| id.is_nil()) {
        p.push(
            "model_config_id",
            "model_config_id must not be the nil UUID; omit it to keep the model.",
        );
    }
    let busy = busy_behavior(req.busy_behavior.as_ref()).unwrap_or_else(|detail| {
        p.push("busy_behavior", detail);
        ChatBusyBehavior::Queue
    });
    let plan_mode = plan_mode_change(req.plan_mode.as_ref()).unwrap_or_else(|detail| {
        p.push("plan_mode", detail);
        None
    });
    if !p.is_empty() {
        return Err(p.into_response(content_message(&req.content, "Invalid message request.")));
    }
    Ok(ValidatedChatMessage {
        content,
        model_config_id: req.model_config_id,
        mcp_server_ids: req.mcp_server_ids.as_deref().map(dedup_ids),
        busy_behavior: busy,
        plan_mode,
    })
}

/// Validates the body of `PATCH /chats/{chat}/messages/{message}` (§5.5) and returns the
/// replacement content.
pub fn validate_edit_chat_message_request(
    req: &EditChatMessageRequest,
) -> Result<Vec<ValidatedInputPart>, Response> {
    validate_input_parts(&req.content)
}

/// Parses the `{message}` path parameter of message edits (§5.5): a positive 64-bit
/// integer.
pub fn parse_message_id(raw: &str) -> Result<i64, Response> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(single(
            "Invalid message ID.",
            "message",
            format!("Message ID {} must be a positive integer.", quoted(raw)),
        )),
    }
}

/// An [`UpdateChatRequest`] after validation. `None` always means "unchanged".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidatedChatUpdate {
    /// The new title, trimmed.
    pub title: Option<String>,
    /// Archive (`true`) or unarchive.
    pub archived: Option<bool>,
    /// `Some(Some(id))` rebinds, `Some(None)` unbinds (the nil UUID on the wire).
    pub workspace_id: Option<Option<Uuid>>,
    /// 0 unpins; > 0 pins or moves.
    pub pin_order: Option<i32>,
    /// The whole new label map (`{}` clears).
    pub labels: Option<BTreeMap<String, String>>,
    /// `Some(true)` enters plan mode, `Some(false)` leaves it.
    pub plan_mode: Option<bool>,
}

impl ValidatedChatUpdate {
    /// Whether the request changes nothing (it still succeeds, as in Coder).
    pub fn is_empty(&self) -> bool {
        *self == ValidatedChatUpdate::default()
    }
}

/// Validates the body of `PATCH /chats/{chat}` (§5.3). State-dependent rules (already
/// archived, pinning a child chat, …) are the server's.
pub fn validate_update_chat_request(
    req: &UpdateChatRequest,
) -> Result<ValidatedChatUpdate, Response> {
    let mut p = Problems::default();
    let title = req.title.as_deref().and_then(|t| match title_problem(t) {
        Ok(clean) => Some(clean),
        Err(detail) => {
            p.push("title", detail);
            None
        }
    });
    if req.pin_order.is_some_and(|o| o < 0) {
        p.push(
            "pin_order",
            "pin_order must be 0 (unpin) or a positive position.",
        );
    }
    if let Some(labels) = &req.labels {
        check_labels(labels, "labels", &mut p);
    }
    let plan_mode = plan_mode_change(req.plan_mode.as_ref()).unwrap_or_else(|detail| {
        p.push("plan_mode", detail);
        None
    });
    p.finish("Invalid chat update request.")?;
    Ok(ValidatedChatUpdate {
        title,
        archived: req.archived,
        workspace_id: req.workspace_id.map(|id| (!id.is_nil()).then_some(id)),
        pin_order: req.pin_order,
        labels: req.labels.clone(),
        plan_mode,
    })
}

// ---------------------------------------------------------------------------------------
// Tool results (§5.6, engine.md §7.3)
// ---------------------------------------------------------------------------------------

/// One tool result after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedToolResult {
    /// The call being answered (kept exactly as sent: ids are opaque).
    pub tool_call_id: String,
    /// The output, with a JSON string holding JSON unwrapped (see [`unwrap_json_string`]).
    pub output: RawJson,
    /// The tool failed.
    pub is_error: bool,
}

/// Unwraps "a JSON string containing JSON": when `value` is a JSON string whose content
/// is itself valid JSON (within [`crate::MAX_RAW_JSON_DEPTH`]), the parsed inner value is
/// returned; any other value comes back unchanged. Clients often double-encode tool
/// output; the model should see the structure, not an escaped string.
pub fn unwrap_json_string(value: &RawJson) -> RawJson {
    if !value.get().starts_with('"') {
        return value.clone();
    }
    match value.parse::<String>() {
        Ok(inner) => RawJson::from_json(&inner).unwrap_or_else(|_| value.clone()),
        Err(_) => value.clone(),
    }
}

/// Validates the body of `POST /chats/{chat}/tool-results` without knowing which calls
/// are pending: at least one result, every `tool_call_id` non-empty and unique, every
/// `output` present (JSON `null` counts as missing). Outputs are unwrapped with
/// [`unwrap_json_string`]. Pair it with [`validate_tool_results_against`].
pub fn validate_submit_tool_results_request(
    req: &SubmitToolResultsRequest,
) -> Result<Vec<ValidatedToolResult>, Response> {
    if req.results.is_empty() {
        return Err(single(
            "At least one tool result is required.",
            "results",
            "Send one result for every pending tool call.",
        ));
    }
    let mut p = Problems::default();
    let duplicates =
        duplicate_problems(req.results.iter().map(|r| r.tool_call_id.as_str()), &mut p);
    let mut out = Vec::with_capacity(req.results.len());
    for (i, result) in req.results.iter().enumerate() {
        if result.tool_call_id.is_empty() {
            p.push(
                format!("results[{i}].tool_call_id"),
                "tool_call_id must not be empty.",
            );
        }
        match &result.output {
            Some(output) if !output.is_null() => out.push(ValidatedToolResult {
                tool_call_id: result.tool_call_id.clone(),
                output: unwrap_json_string(output),
                is_error: result.is_error,
            }),
            _ => p.push(
                format!("results[{i}].output"),
                "output is required: send the tool's output as JSON (a JSON string for plain text).",
            ),
        }
    }
    let message = if duplicates {
        "Duplicate tool_call_id in results."
    } else {
        "Invalid tool results."
    };
    p.finish(message)?;
    Ok(out)
}

/// Reports every id given more than once; returns whether there was any.
fn duplicate_problems<'a>(ids: impl Iterator<Item = &'a str>, p: &mut Problems) -> bool {
    let mut seen = HashSet::new();
    let mut any = false;
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            any = true;
            p.push(
                format!("results[{i}].tool_call_id"),
                format!("tool_call_id {} appears more than once.", quoted(id)),
            );
        }
    }
    any
}

/// Ids of a request's results, for [`validate_tool_results_against`].
pub fn tool_result_ids(results: &[ToolResult]) -> impl Iterator<Item = &str> {
    results.iter().map(|r| r.tool_call_id.as_str())
}

/// Checks submitted result ids against the pending dynamic tool calls (engine.md §7.3):
/// no duplicates ("Duplicate tool_call_id in results."), every pending call answered
/// ("Missing tool result."), no answer for a call that is not pending ("Unexpected tool
/// result."). The message names the first failing check in that order; `validations`
/// lists every problem.
pub fn validate_tool_results_against<P, R>(pending_ids: P, result_ids: R) -> Result<(), Response>
where
    P: IntoIterator,
    P::Item: AsRef<str>,
    R: IntoIterator,
    R::Item: AsRef<str>,
{
    let pending: Vec<P::Item> = pending_ids.into_iter().collect();
    let results: Vec<R::Item> = result_ids.into_iter().collect();
    let pending_set: HashSet<&str> = pending.iter().map(AsRef::as_ref).collect();
    let answered: HashSet<&str> = results.iter().map(AsRef::as_ref).collect();

    let mut p = Problems::default();
    let duplicates = duplicate_problems(results.iter().map(AsRef::as_ref), &mut p);
    let mut missing = false;
    let mut reported = HashSet::new();
    for id in pending.iter().map(AsRef::as_ref) {
        if !answered.contains(id) && reported.insert(id) {
            missing = true;
            p.push(
                "results",
                format!("No result for pending tool call {}.", quoted(id)),
            );
        }
    }
    let mut unexpected = false;
    for (i, id) in results.iter().map(AsRef::as_ref).enumerate() {
        if !pending_set.contains(id) {
            unexpected = true;
            p.push(
                format!("results[{i}].tool_call_id"),
                format!("Tool call {} is not waiting for a result.", quoted(id)),
            );
        }
    }
    let message = if duplicates {
        "Duplicate tool_call_id in results."
    } else if missing {
        "Missing tool result."
    } else if unexpected {
        "Unexpected tool result."
    } else {
        return Ok(());
    };
    Err(p.into_response(message))
}

// ---------------------------------------------------------------------------------------
// Query parameters (§16)
// ---------------------------------------------------------------------------------------

/// Absent and empty query parameters mean the same thing, as with Go's `Query().Get`.
fn present(raw: Option<&str>) -> Option<&str> {
    raw.filter(|s| !s.is_empty())
}

fn positive_id(name: &str, raw: Option<&str>, p: &mut Problems) -> Option<i64> {
    let raw = present(raw)?;
    match raw.parse::<i64>() {
        Ok(v) if v > 0 => Some(v),
        _ => {
            p.push(
                name,
                format!(
                    "{name} must be a positive integer message ID, not {}.",
                    quoted(raw)
                ),
            );
            None
        }
    }
}

/// A validated page request of `GET /chats/{chat}/messages` (§16.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagePage {
    /// Only messages with a smaller id.
    pub before_id: Option<i64>,
    /// Only messages with a larger id.
    pub after_id: Option<i64>,
    /// Page size, 1 to [`MAX_MESSAGE_PAGE_LIMIT`].
    pub limit: i64,
    /// Oldest first (only `after_id` given); otherwise newest first.
    pub ascending: bool,
}

impl MessagePage {
    /// Rows to read: one more than the page, to compute `has_more`.
    pub fn fetch_limit(&self) -> i64 {
        self.limit.saturating_add(1)
    }

    /// Whether a cursor was given; `queued_messages` is filled only without one.
    pub fn has_cursor(&self) -> bool {
        self.before_id.is_some() || self.after_id.is_some()
    }
}

/// Parses `before_id`, `after_id` and `limit` of `GET /chats/{chat}/messages` (§16.2):
/// cursors are positive integers, `limit` is 1–[`MAX_MESSAGE_PAGE_LIMIT`] (default
/// [`DEFAULT_MESSAGE_PAGE_LIMIT`]), and `after_id` must be below `before_id`. Empty
/// parameters count as absent.
pub fn parse_message_page(
    before_id: Option<&str>,
    after_id: Option<&str>,
    limit: Option<&str>,
) -> Result<MessagePage, Response> {
    let mut p = Problems::default();
    let before = positive_id("before_id", before_id, &mut p);
    let after = positive_id("after_id", after_id, &mut p);
    let limit = match present(limit) {
        None => DEFAULT_MESSAGE_PAGE_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Ok(v) if (1..=MAX_MESSAGE_PAGE_LIMIT).contains(&v) => v,
            _ => {
                p.push(
                    "limit",
                    format!(
                        "limit must be a whole number from 1 to {MAX_MESSAGE_PAGE_LIMIT}, not {}.",
                        quoted(raw)
                    ),
                );
                DEFAULT_MESSAGE_PAGE_LIMIT
            }
        },
    };
    if let (Some(b), Some(a)) = (before, after) {
        if a >= b {
            p.push(
                "after_id",
                format!("after_id ({a}) must be smaller than before_id ({b})."),
            );
        }
    }
    p.finish(MSG_QUERY)?;
    Ok(MessagePage {
        before_id: before,
        after_id: after,
        limit,
        ascending: after.is_some() && before.is_none(),
    })
}

/// Parses the `after_id` query parameter of the per-chat stream (§8.1): any 64-bit
/// integer, or absent.
pub fn parse_stream_after_id(raw: Option<&str>) -> Result<Option<i64>, Response> {
    let Some(raw) = present(raw) else {
        return Ok(None);
    };
    raw.parse::<i64>().map(Some).map_err(|_| {
        single(
            MSG_QUERY,
            "after_id",
            format!(
                "after_id must be an integer message ID, not {}.",
                quoted(raw)
            ),
        )
    })
}

/// A validated page request of `GET /chats` (§16.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatListPage {
    /// Page size, 1 to [`MAX_CHAT_LIST_LIMIT`].
    pub limit: i64,
    /// Rows to skip, 0 to [`MAX_CHAT_LIST_OFFSET`].
    pub offset: i64,
    /// Return chats that sort after this chat.
    pub after_id: Option<Uuid>,
}

/// Parses `limit`, `offset` and `after_id` of `GET /chats`. `limit` absent or `0` means
/// [`DEFAULT_CHAT_LIST_LIMIT`] (Go clients send the zero value for "unset"), otherwise
/// 1–[`MAX_CHAT_LIST_LIMIT`]; `offset` is 0–[`MAX_CHAT_LIST_OFFSET`]; `after_id` is a
/// UUID, the nil UUID meaning "none" as in Coder's pagination.
pub fn parse_chat_list_page(
    limit: Option<&str>,
    offset: Option<&str>,
    after_id: Option<&str>,
) -> Result<ChatListPage, Response> {
    let mut p = Problems::default();
    let limit = match present(limit) {
        None => DEFAULT_CHAT_LIST_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Ok(0) => DEFAULT_CHAT_LIST_LIMIT,
            Ok(v) if (1..=MAX_CHAT_LIST_LIMIT).contains(&v) => v,
            _ => {
                p.push(
                    "limit",
                    format!(
                        "limit must be a whole number from 1 to {MAX_CHAT_LIST_LIMIT}, not {}.",
                        quoted(raw)
                    ),
                );
                DEFAULT_CHAT_LIST_LIMIT
            }
        },
    };
    let offset = match present(offset) {
        None => 0,
        Some(raw) => match raw.parse::<i64>() {
            Ok(v) if (0..=MAX_CHAT_LIST_OFFSET).contains(&v) => v,
            _ => {
                p.push(
                    "offset",
                    format!(
                        "offset must be a whole number from 0 to {MAX_CHAT_LIST_OFFSET}, not {}.",
                        quoted(raw)
                    ),
                );
                0
            }
        },
    };
    let after_id = match present(after_id) {
        None => None,
        Some(raw) => match Uuid::parse_str(raw) {
            Ok(id) => (!id.is_nil()).then_some(id),
            Err(_) => {
                p.push(
                    "after_id",
                    format!("after_id must be a chat UUID, not {}.", quoted(raw)),
                );
                None
            }
        },
    };
    p.finish(MSG_QUERY)?;
    Ok(ChatListPage {
        limit,
        offset,
        after_id,
    })
}

/// Parses `workspace_ids` of `GET /chats/by-workspace` (§16.3): comma-separated UUIDs, at
/// most [`MAX_WORKSPACE_IDS_PER_LOOKUP`], duplicates removed. Blank items are skipped.
pub fn parse_workspace_ids(raw: &str) -> Result<Vec<Uuid>, Response> {
    let mut p = Problems::default();
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Uuid::parse_str(item) {
            Ok(id) => {
                if seen.insert(id) {
                    ids.push(id);
                }
            }
            Err(_) => p.push(
                "workspace_ids",
                format!("{} is not a workspace UUID.", quoted(item)),
            ),
        }
        if ids.len() > MAX_WORKSPACE_IDS_PER_LOOKUP {
            p.push(
                "workspace_ids",
                format!("At most {MAX_WORKSPACE_IDS_PER_LOOKUP} workspace IDs may be given."),
            );
            break;
        }
    }
    p.finish(MSG_QUERY)?;
    Ok(ids)
}

// ---------------------------------------------------------------------------------------
// Attachments (§9)
// ---------------------------------------------------------------------------------------

/// The essence of a media type: parameters (`; charset=utf-8`) removed, trimmed,
/// lower-cased.
pub fn normalize_media_type(value: &str) -> String {
    let essence = value.split(';').next().unwrap_or_default();
    folded(essence)
}

fn allowed_media_type(normalized: &str) -> Option<&'static str> {
    CHAT_ATTACHMENT_MEDIA_TYPES
        .iter()
        .copied()
        .find(|t| *t == normalized)
}

fn allowed_list() -> String {
    CHAT_ATTACHMENT_MEDIA_TYPES.join(", ")
}

/// Checks a declared `Content-Type` against [`CHAT_ATTACHMENT_MEDIA_TYPES`] (parameters
/// ignored, case-insensitive) and returns the canonical allow-list entry.
pub fn validate_attachment_media_type(declared: &str) -> Result<&'static str, Response> {
    let normalized = normalize_media_type(declared);
    allowed_media_type(&normalized).ok_or_else(|| {
        single(
            "Unsupported file type.",
            "Content-Type",
            format!(
                "{} is not supported; upload one of: {}.",
                quoted(&normalized),
                allowed_list()
            ),
        )
    })
}

/// Whether bytes are text: valid UTF-8 without the control bytes that mark binary data
/// (NUL and friends; tab, newline, form feed, carriage return and escape are fine).
fn is_text(bytes: &[u8]) -> bool {
    let binary = |b: &u8| matches!(*b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F);
    std::str::from_utf8(bytes).is_ok() && !bytes.iter().any(binary)
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Whether bytes are one complete JSON document (any value).
fn parses_as_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(strip_bom(bytes)).is_ok()
}

/// Detects the media type of file content for the attachment allow-list (§9).
///
/// Magic numbers identify PNG, JPEG, GIF, WebP and PDF. Other content is
/// `application/json` when it is text holding a JSON object or array, `text/plain` when it
/// is otherwise text (empty content included), and `application/octet-stream` else. Text
/// is valid UTF-8 (an optional byte-order mark allowed) without binary control bytes.
/// CSV and Markdown cannot be told apart from plain text, so they sniff as `text/plain`.
pub fn sniff_media_type(bytes: &[u8]) -> &'static str {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xFF\xD8\xFF", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
    ];
    if let Some((_, media_type)) = MAGIC.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return media_type;
    }
    if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP".as_slice()) {
        return "image/webp";
    }
    if !is_text(bytes) {
        return "application/octet-stream";
    }
    let body = strip_bom(bytes);
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'{' | b'[')) && parses_as_json(body) {
        return "application/json";
    }
    "text/plain"
}

/// Checks an upload's size against [`MAX_CHAT_FILE_SIZE_BYTES`]. The server answers a
/// failure with 413 (every other upload problem is a 400).
pub fn validate_upload_size(len: u64) -> Result<(), Response> {
    if len > MAX_CHAT_FILE_SIZE_BYTES {
        return Err(Response::new("The file is too large.").with_detail(format!(
            "The file is {len} bytes; uploads may be at most {MAX_CHAT_FILE_SIZE_BYTES} bytes \
             (10 MiB)."
        )));
    }
    Ok(())
}

/// Checks an upload and returns the media type to store (§9).
///
/// Rules, in order: the size passes [`validate_upload_size`] (call that first yourself to
/// answer 413); the file is not empty; a `Content-Type` is given. A declared
/// `application/octet-stream` is replaced by the sniffed type ([`sniff_media_type`]),
/// which must be on the allow-list. Otherwise the declared type must be on the allow-list
/// and match the content: images and PDF must sniff as exactly that type,
/// `application/json` must parse as JSON, and `text/plain`, `text/csv` and
/// `text/markdown` must be text (JSON text included, since JSON is text).
pub fn check_upload(declared_content_type: &str, bytes: &[u8]) -> Result<&'static str, Response> {
    validate_upload_size(u64::try_from(bytes.len()).unwrap_or(u64::MAX))?;
    if bytes.is_empty() {
        return Err(Response::new("The uploaded file is empty.")
            .with_detail("Send the file's bytes as the request body."));
    }
    let declared = normalize_media_type(declared_content_type);
    if declared.is_empty() {
        return Err(single(
            "Unsupported file type.",
            "Content-Type",
            format!(
                "A Content-Type header is required; upload one of: {}.",
                allowed_list()
            ),
        ));
    }
    let sniffed = sniff_media_type(bytes);
    if declared == "application/octet-stream" {
        return allowed_media_type(sniffed).ok_or_else(|| {
            single(
                "Unsupported file type.",
                "Content-Type",
                format!(
                    "The content was not recognized as a supported type; upload one of: {}.",
                    allowed_list()
                ),
            )
        });
    }
    let canonical = validate_attachment_media_type(&declared)?;
    let matches = match canonical {
        "application/json" => is_text(bytes) && parses_as_json(bytes),
        "text/plain" | "text/csv" | "text/markdown" => is_text(bytes),
        other => sniffed == other,
    };
    if !matches {
        return Err(single(
            "File content does not match its Content-Type.",
            "Content-Type",
            format!(
                "The Content-Type is {canonical} but the content looks like {sniffed}. Send \
                 the correct type, or application/octet-stream to have it detected."
            ),
        ));
    }
    Ok(canonical)
}

// ---------------------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------------------

/// Checks that `raw` is an absolute `http://` or `https://` URL with a host: at most
/// [`MAX_URL_BYTES`], no whitespace or control characters, a host of letters, digits,
/// `.`, `-`, `_` (or a bracketed IPv6 address) and an optional port 1–65535. The reason
/// is a sentence fragment that never repeats the URL, because URLs can carry credentials.
pub fn validate_http_url(raw: &str) -> Result<(), &'static str> {
    if raw.is_empty() {
        return Err("must not be empty");
    }
    if raw.len() > MAX_URL_BYTES {
        return Err("is longer than the 2048-byte limit");
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Err("must be an absolute URL starting with http:// or https://");
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err("must start with http:// or https://");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = if let Some(v6) = host_port.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err("has an unterminated IPv6 address");
        };
        let v6_ok = addr.contains(':')
            && addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        if !v6_ok {
            return Err("has an invalid IPv6 address");
        }
        match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err("has an invalid host"),
            },
        }
    } else {
        let (host, port) = match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        };
        if host.is_empty() {
            return Err("must name a host");
        }
        if !host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err("has an invalid host");
        }
        port
    };
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !valid {
            return Err("has an invalid port");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Providers (§12.1, core.md §E)
// ---------------------------------------------------------------------------------------

fn normalize_provider(raw: &str) -> Option<&'static str> {
    let folded = folded(raw);
    crate::CHAT_PROVIDER_IDS
        .iter()
        .copied()
        .find(|p| *p == folded)
}

fn check_provider_id(raw: &str, p: &mut Problems) -> Option<&'static str> {
    let provider = normalize_provider(raw);
    if provider.is_none() {
        p.push(
            "provider",
            format!(
                "Unknown provider {}; use one of: {}.",
                quoted(raw.trim()),
                crate::CHAT_PROVIDER_IDS.join(", ")
            ),
        );
    }
    provider
}

/// Checks a key and returns it trimmed; `Ok(None)` when blank. Never echoes the key.
fn check_api_key(key: &SecretString, field: &str, p: &mut Problems) -> Option<SecretString> {
    let trimmed = key.expose().trim();
    if trimmed.is_empty() {
        return None;
    }
    if trimmed.len() > MAX_PROVIDER_API_KEY_BYTES {
        p.push(
            field,
            format!(
                "The API key is {} bytes long; keys may be at most {MAX_PROVIDER_API_KEY_BYTES} \
                 bytes.",
                trimmed.len()
            ),
        );
        return None;
    }
    if trimmed.chars().any(char::is_control) {
        p.push(
            field,
            "The API key must not contain control characters such as newlines.",
        );
        return None;
    }
    Some(SecretString::new(trimmed))
}

fn check_base_url(raw: &str, p: &mut Problems) -> String {
    let url = raw.trim();
    if url.is_empty() {
        return String::new();
    }
    if let Err(reason) = validate_http_url(url) {
        p.push("base_url", format!("base_url {reason}."));
    }
    url.to_owned()
}

fn check_display_name(raw: &str, p: &mut Problems) -> String {
    let name = raw.trim();
    if rune_count(name) > MAX_DISPLAY_NAME_RUNES {
        p.push(
            "display_name",
            format!("display_name may be at most {MAX_DISPLAY_NAME_RUNES} characters."),
        );
    } else if name.chars().any(char::is_control) {
        p.push(
            "display_name",
            "display_name must not contain control characters.",
        );
    }
    name.to_owned()
}

/// Key-policy rules of §12.1 on the final state of a provider.
fn check_key_policy(
    provider: &str,
    central: bool,
    user: bool,
    fallback: bool,
    has_key: bool,
    allows_ambient_credentials: bool,
    p: &mut Problems,
) {
    if !central && !user {
        p.push(
            "central_api_key_enabled",
            "Enable the central API key, user API keys, or both; otherwise nobody can use the \
             provider.",
        );
    }
    if fallback && !(central && user) {
        p.push(
            "allow_central_api_key_fallback",
            "The central key fallback needs both central_api_key_enabled and \
             allow_user_api_key.",
        );
    }
    if central && !has_key && !allows_ambient_credentials {
        p.push(
            "api_key",
            format!(
                "Provider {provider} uses the central API key but none is stored; send api_key \
                 or disable central_api_key_enabled."
            ),
        );
    }
}

/// A [`CreateChatProviderConfigRequest`] after validation, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedProviderConfig {
    /// Normalized provider id.
    pub provider: String,
    /// Trimmed display name; empty means "use the provider's default name".
    pub display_name: String,
    /// Trimmed central key; `None` when none was given.
    pub api_key: Option<SecretString>,
    /// Trimmed base URL; empty for the provider's default endpoint.
    pub base_url: String,
    /// Default true.
    pub enabled: bool,
    /// Default true.
    pub central_api_key_enabled: bool,
    /// Default false.
    pub allow_user_api_key: bool,
    /// Default false.
    pub allow_central_api_key_fallback: bool,
}

/// Validates `POST /chats/providers` (§12.1, core.md §E.3).
///
/// The provider must be a known id (trimmed, case-insensitive). At least one of central
/// key and user keys must be enabled; the fallback needs both; central mode needs a key
/// unless `allows_ambient_credentials` (pass `true` for Bedrock, and when the deployment
/// already supplies a key for the provider, e.g. from its environment). Keys are trimmed,
/// at most [`MAX_PROVIDER_API_KEY_BYTES`], without control characters. Azure needs a
/// `base_url`. No message ever contains the key.
pub fn validate_create_provider_config(
    req: &CreateChatProviderConfigRequest,
    allows_ambient_credentials: bool,
) -> Result<ValidatedProviderConfig, Response> {
    let mut p = Problems::default();
    let provider = check_provider_id(&req.provider, &mut p);
    let display_name = check_display_name(req.display_name.as_deref().unwrap_or_default(), &mut p);
    let api_key = req
        .api_key
        .as_ref()
        .and_then(|k| check_api_key(k, "api_key", &mut p));
    let key_rejected = req
        .api_key
        .as_ref()
        .is_some_and(|k| !k.expose().trim().is_empty())
        && api_key.is_none();
    let base_url = check_base_url(req.base_url.as_deref().unwrap_or_default(), &mut p);
    let central = req.central_api_key_enabled.unwrap_or(true);
    let user = req.allow_user_api_key.unwrap_or(false);
    let fallback = req.allow_central_api_key_fallback.unwrap_or(false);
    if let Some(provider) = provider {
        if provider == "azure" && base_url.is_empty() {
            p.push(
                "base_url",
                "Azure OpenAI needs base_url: your resource's endpoint URL.",
            );
        }
        // A rejected key was reported already; do not also say that none is stored.
        let has_key = api_key.is_some() || key_rejected;
        check_key_policy(
            provider,
            central,
            user,
            fallback,
            has_key,
            allows_ambient_credentials,
            &mut p,
        );
    }
    p.finish("Invalid provider configuration.")?;
    Ok(ValidatedProviderConfig {
        provider: provider.unwrap_or_default().to_owned(),
        display_name,
        api_key,
        base_url,
        enabled: req.enabled.unwrap_or(true),
        central_api_key_enabled: central,
        allow_user_api_key: user,
        allow_central_api_key_fallback: fallback,
    })
}

/// What an update does to the stored central key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ApiKeyChange {
    /// `api_key` absent: keep the stored key.
    #[default]
    Keep,
    /// `api_key: ""`: delete the stored key.
    Clear,
    /// Store this (trimmed) key.
    Set(SecretString),
}

/// An [`UpdateChatProviderConfigRequest`] after validation against the current provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedProviderConfigUpdate {
    /// New display name (`Some("")` resets it to the default); `None` = unchanged.
    pub display_name: Option<String>,
    /// What happens to the central key.
    pub api_key: ApiKeyChange,
    /// New base URL (`Some("")` clears it); `None` = unchanged.
    pub base_url: Option<String>,
    /// New enabled flag; `None` = unchanged.
    pub enabled: Option<bool>,
    /// The resulting central-key toggle.
    pub central_api_key_enabled: bool,
    /// The resulting user-key toggle.
    pub allow_user_api_key: bool,
    /// The resulting fallback toggle.
    pub allow_central_api_key_fallback: bool,
}

/// Validates `PATCH /chats/providers/{providerConfig}` (§12.1) against the provider's
/// current state: the key-policy rules of [`validate_create_provider_config`] apply to the
/// state **after** the update. `api_key: ""` (or blank) clears the stored key.
pub fn validate_update_provider_config(
    current: &ChatProviderConfig,
    req: &UpdateChatProviderConfigRequest,
    allows_ambient_credentials: bool,
) -> Result<ValidatedProviderConfigUpdate, Response> {
    let mut p = Problems::default();
    let display_name = req
        .display_name
        .as_deref()
        .map(|n| check_display_name(n, &mut p));
    let api_key = match &req.api_key {
        None => ApiKeyChange::Keep,
        Some(key) if key.expose().trim().is_empty() => ApiKeyChange::Clear,
        Some(key) => match check_api_key(key, "api_key", &mut p) {
            Some(clean) => ApiKeyChange::Set(clean),
            // Rejected and reported; keep the policy check quiet about it.
            None => ApiKeyChange::Keep,
        },
    };
    let base_url = req.base_url.as_deref().map(|u| check_base_url(u, &mut p));
    let central = req
        .central_api_key_enabled
        .unwrap_or(current.central_api_key_enabled);
    let user = req.allow_user_api_key.unwrap_or(current.allow_user_api_key);
    let fallback = req
        .allow_central_api_key_fallback
        .unwrap_or(current.allow_central_api_key_fallback);
    let has_key = match &api_key {
        ApiKeyChange::Keep => current.has_api_key || req.api_key.is_some(),
        ApiKeyChange::Clear => false,
        ApiKeyChange::Set(_) => true,
    };
    let provider = normalize_provider(&current.provider).unwrap_or_default();
    if provider == "azure" && base_url.as_deref().unwrap_or(&current.base_url).is_empty() {
        p.push(
            "base_url",
            "Azure OpenAI needs base_url: your resource's endpoint URL.",
        );
    }
    let shown = if provider.is_empty() {
        current.provider.as_str()
    } else {
        provider
    };
    check_key_policy(
        shown,
        central,
        user,
        fallback,
        has_key,
        allows_ambient_credentials,
        &mut p,
    );
    p.finish("Invalid provider configuration.")?;
    Ok(ValidatedProviderConfigUpdate {
        display_name,
        api_key,
        base_url,
        enabled: req.enabled,
        central_api_key_enabled: central,
        allow_user_api_key: user,
        allow_central_api_key_fallback: fallback,
    })
}

/// Validates `PUT /chats/user-provider-configs/{providerConfig}` (§12.2): a non-blank key
/// within the limits of [`MAX_PROVIDER_API_KEY_BYTES`]; returns it trimmed. Whether the
/// provider accepts user keys is the server's check.
pub fn validate_user_provider_key(
    req: &CreateUserChatProviderKeyRequest,
) -> Result<SecretString, Response> {
    let mut p = Problems::default();
    let key = check_api_key(&req.api_key, "api_key", &mut p);
    if key.is_none() && p.is_empty() {
        p.push("api_key", "api_key is required.");
    }
    p.finish("Invalid API key.")?;
    key.ok_or_else(|| Response::new("Invalid API key."))
}

// ---------------------------------------------------------------------------------------
// Model configs (§12.3)
// ---------------------------------------------------------------------------------------

fn check_model_name(raw: &str, p: &mut Problems) -> String {
    let model = raw.trim();
    if model.is_empty() {
        p.push(
            "model",
            "model is required: the provider's model identifier, e.g. gpt-4o.",
        );
    } else if model.len() > MAX_MODEL_NAME_BYTES {
        p.push(
            "model",
            format!("model may be at most {MAX_MODEL_NAME_BYTES} bytes."),
        );
    } else if model.chars().any(|c| c.is_control() || c.is_whitespace()) {
        p.push(
            "model",
            "model must not contain spaces or control characters.",
        );
    }
    model.to_owned()
}

fn check_context_limit(v: i64, p: &mut Problems) {
    if v <= 0 {
        p.push(
            "context_limit",
            "context_limit must be a positive number of tokens.",
        );
    }
}

fn check_threshold(v: i32, field: &str, p: &mut Problems) {
    if !(0..=MAX_COMPRESSION_THRESHOLD_PERCENT).contains(&v) {
        p.push(
            field,
            format!("{field} must be a percentage from 0 to {MAX_COMPRESSION_THRESHOLD_PERCENT}."),
        );
    }
}

/// Validates a compaction threshold in percent (0–[`MAX_COMPRESSION_THRESHOLD_PERCENT`]),
/// e.g. `threshold_percent` of the per-user thresholds (§15), reported under `field`.
pub fn validate_compression_threshold(value: i32, field: &str) -> Result<i32, Response> {
    let mut p = Problems::default();
    check_threshold(value, field, &mut p);
    p.finish("Invalid compression threshold.")?;
    Ok(value)
}

fn check_range(value: Option<f64>, field: &str, min: f64, max: f64, p: &mut Problems) {
    if let Some(v) = value {
        if !(v.is_finite() && (min..=max).contains(&v)) {
            p.push(
                format!("model_config.{field}"),
                format!("{field} must be from {min} to {max}."),
            );
        }
    }
}

fn check_call_config(cfg: &ChatModelCallConfig, p: &mut Problems) {
    if cfg.max_output_tokens.is_some_and(|v| v <= 0) {
        p.push(
            "model_config.max_output_tokens",
            "max_output_tokens must be a positive number of tokens.",
        );
    }
    check_range(
        cfg.temperature,
        "temperature",
        MIN_MODEL_TEMPERATURE,
        MAX_MODEL_TEMPERATURE,
        p,
    );
    check_range(cfg.top_p, "top_p", 0.0, MAX_MODEL_TOP_P, p);
    if cfg.top_k.is_some_and(|v| v <= 0) {
        p.push("model_config.top_k", "top_k must be a positive number.");
    }
    check_range(
        cfg.presence_penalty,
        "presence_penalty",
        -MAX_MODEL_PENALTY,
        MAX_MODEL_PENALTY,
        p,
    );
    check_range(
        cfg.frequency_penalty,
        "frequency_penalty",
        -MAX_MODEL_PENALTY,
        MAX_MODEL_PENALTY,
        p,
    );
    if let Some(cost) = &cfg.cost {
        for (name, price) in cost.prices() {
            if price.is_some_and(|v| v.is_sign_negative() && !v.is_zero()) {
                p.push(
                    format!("model_config.cost.{name}"),
                    format!("{name} must not be negative (USD per million tokens)."),
                );
            }
        }
    }
}

/// Validates the call options and prices of a model config (`model_config`, §12.3):
/// positive `max_output_tokens` and `top_k`, `temperature` in
/// [[`MIN_MODEL_TEMPERATURE`], [`MAX_MODEL_TEMPERATURE`]], `top_p` in [0,
/// [`MAX_MODEL_TOP_P`]], penalties in ±[`MAX_MODEL_PENALTY`], and non-negative prices.
/// Provider-specific options are passed through unchecked.
pub fn validate_model_call_config(cfg: &ChatModelCallConfig) -> Result<(), Response> {
    let mut p = Problems::default();
    check_call_config(cfg, &mut p);
    p.finish("Invalid model configuration.")
}

/// A [`CreateChatModelConfigRequest`] after validation, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedModelConfig {
    /// Normalized provider id (whether it is configured is the server's check).
    pub provider: String,
    /// Trimmed model id.
    pub model: String,
    /// Trimmed display name; the model id when none was given.
    pub display_name: String,
    /// Default true.
    pub enabled: bool,
    /// Default false (the server makes the first model the default anyway).
    pub is_default: bool,
    /// Context window in tokens.
    pub context_limit: i64,
    /// Default [`DEFAULT_COMPRESSION_THRESHOLD`].
    pub compression_threshold: i32,
    /// Call options and pricing.
    pub model_config: Option<ChatModelCallConfig>,
}

/// Validates `POST /chats/model-configs` (§12.3): known provider, `model` required,
/// `context_limit` required and > 0, `compression_threshold` 0–100, and the call options
/// of [`validate_model_call_config`].
pub fn validate_create_model_config(
    req: &CreateChatModelConfigRequest,
) -> Result<ValidatedModelConfig, Response> {
    let mut p = Problems::default();
    let provider = check_provider_id(&req.provider, &mut p);
    let model = check_model_name(&req.model, &mut p);
    let display_name = check_display_name(req.display_name.as_deref().unwrap_or_default(), &mut p);
    match req.context_limit {
        Some(v) => check_context_limit(v, &mut p),
        None => p.push(
            "context_limit",
            "context_limit is required: the model's context window in tokens.",
        ),
    }
    let threshold = req
        .compression_threshold
        .unwrap_or(DEFAULT_COMPRESSION_THRESHOLD);
    check_threshold(threshold, "compression_threshold", &mut p);
    if let Some(cfg) = &req.model_config {
        check_call_config(cfg, &mut p);
    }
    p.finish("Invalid model configuration.")?;
    Ok(ValidatedModelConfig {
        provider: provider.unwrap_or_default().to_owned(),
        display_name: if display_name.is_empty() {
            model.clone()
        } else {
            display_name
        },
        model,
        enabled: req.enabled.unwrap_or(true),
        is_default: req.is_default.unwrap_or(false),
        context_limit: req.context_limit.unwrap_or_default(),
        compression_threshold: threshold,
        model_config: req.model_config.clone(),
    })
}

/// Validates `PATCH /chats/model-configs/{modelConfig}` (§12.3) and returns it normalized:
/// blank strings become `None` ("keep"), other strings are trimmed, the provider id is
/// normalized, and the numeric rules of [`validate_create_model_config`] apply to every
/// field that is present.
pub fn validate_update_model_config(
    req: &UpdateChatModelConfigRequest,
) -> Result<UpdateChatModelConfigRequest, Response> {
    let mut p = Problems::default();
    let non_blank = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let provider =
        non_blank(&req.provider).and_then(|raw| check_provider_id(&raw, &mut p).map(str::to_owned));
    let model = non_blank(&req.model).map(|m| check_model_name(&m, &mut p));
    let display_name = non_blank(&req.display_name).map(|n| check_display_name(&n, &mut p));
    if let Some(v) = req.context_limit {
        check_context_limit(v, &mut p);
    }
    if let Some(v) = req.compression_threshold {
        check_threshold(v, "compression_threshold", &mut p);
    }
    if let Some(cfg) = &req.model_config {
        check_call_config(cfg, &mut p);
    }
    p.finish("Invalid model configuration.")?;
    Ok(UpdateChatModelConfigRequest {
        provider,
        model,
        display_name,
        enabled: req.enabled,
        is_default: req.is_default,
        context_limit: req.context_limit,
        compression_threshold: req.compression_threshold,
        model_config: req.model_config.clone(),
    })
}

// ---------------------------------------------------------------------------------------
// Usage limits (§13.3)
// ---------------------------------------------------------------------------------------

/// The deployment usage limit after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedUsageLimitConfig {
    /// Spend limit in micro-dollars; `None` disables limits.
    pub spend_limit_micros: Option<i64>,
    /// A known period (never [`ChatUsageLimitPeriod::Unknown`]).
    pub period: ChatUsageLimitPeriod,
}

fn check_spend_limit(v: i64, p: &mut Problems) {
    if v <= 0 {
        p.push(
            "spend_limit_micros",
            "spend_limit_micros must be a positive amount in micro-dollars (1 USD = 1000000); \
             send null to disable the limit.",
        );
    }
}

/// Validates `PUT /chats/usage-limits` (§13.3): a `null` limit disables limits, otherwise
/// it must be > 0; the period is a known [`ChatUsageLimitPeriod`] (trimmed,
/// case-insensitive), [`DEFAULT_USAGE_LIMIT_PERIOD`] when absent or empty.
pub fn validate_usage_limit_config(
    spend_limit_micros: Option<i64>,
    period: Option<&str>,
) -> Result<ValidatedUsageLimitConfig, Response> {
    let mut p = Problems::default();
    if let Some(v) = spend_limit_micros {
        check_spend_limit(v, &mut p);
    }
    let folded_period = folded(period.unwrap_or_default());
    let period = if folded_period.is_empty() {
        DEFAULT_USAGE_LIMIT_PERIOD
    } else {
        match ChatUsageLimitPeriod::from_wire(&folded_period) {
            ChatUsageLimitPeriod::Unknown(_) => {
                let known: Vec<&str> = ChatUsageLimitPeriod::ALL
                    .iter()
                    .map(|x| x.as_str())
                    .collect();
                p.push(
                    "period",
                    format!(
                        "Unknown period {}; use one of: {}.",
                        quoted(&folded_period),
                        known.join(", ")
                    ),
                );
                DEFAULT_USAGE_LIMIT_PERIOD
            }
            known => known,
        }
    };
    p.finish("Invalid usage limit.")?;
    Ok(ValidatedUsageLimitConfig {
        spend_limit_micros,
        period,
    })
}

/// Validates the body of a user or group override (§13.3): `spend_limit_micros` is
/// required and > 0 (delete the override to remove it).
pub fn validate_usage_limit_override(spend_limit_micros: Option<i64>) -> Result<i64, Response> {
    let mut p = Problems::default();
    match spend_limit_micros {
        Some(v) => check_spend_limit(v, &mut p),
        None => p.push(
            "spend_limit_micros",
            "spend_limit_micros is required; delete the override to remove it.",
        ),
    }
    p.finish("Invalid usage limit.")?;
    Ok(spend_limit_micros.unwrap_or_default())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::type_complexity
)]
mod tests {
    use super::*;
    use crate::{ChatProviderConfigSource, ModelCostConfig};
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn fields(r: &Response) -> Vec<&str> {
        r.validations.iter().map(|v| v.field.as_str()).collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn typed(part_type: &str, base: ChatInputPart) -> ChatInputPart {
        ChatInputPart {
            part_type: ChatInputPartType::from_wire(part_type),
            ..base
        }
    }

    fn tool(name: &str, schema: &str) -> DynamicTool {
        DynamicTool {
            name: name.to_owned(),
            description: String::new(),
            input_schema: RawJson::from_json(schema).unwrap(),
        }
    }

    // ----- labels -----

    #[test]
    fn label_rules() {
        let k64 = "k".repeat(MAX_LABEL_KEY_BYTES);
        let k65 = "k".repeat(MAX_LABEL_KEY_BYTES + 1);
        let v256 = "v".repeat(MAX_LABEL_VALUE_BYTES);
        let v257 = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        let cases: &[(&str, &str, bool)] = &[
            ("env", "prod", true),
            ("a.b_c/d-e", "x", true),
            ("9lives", "x", true),
            (&k64, "x", true),
            ("k", &v256, true),
            (&k65, "x", false),
            ("k", &v257, false),
            ("", "x", false),
            ("k", "", false),
            ("-k", "x", false),
            (".k", "x", false),
            ("has space", "x", false),
            ("ключ", "x", false),
            ("k", "nul\0", false),
            ("k", "any value: ünïcode, spaces, colons", true),
        ];
        for (k, v, ok) in cases {
            let r = validate_labels(&labels(&[(k, v)]));
            assert_eq!(r.is_ok(), *ok, "{k:?}={v:?}");
            if let Err(r) = r {
                assert_eq!(fields(&r), vec!["labels"]);
            }
        }
    }

    #[test]
    fn label_count_edge() {
        let at: BTreeMap<String, String> = (0..MAX_CHAT_LABELS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        assert!(validate_labels(&at).is_ok());
        let over: BTreeMap<String, String> = (0..=MAX_CHAT_LABELS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        let r = validate_labels(&over).unwrap_err();
        assert_eq!(r.validations.len(), 1);
    }

    #[test]
    fn label_filters() {
        let ok: &[(&[&str], &[(&str, &str)])] = &[
            (&[], &[]),
            (&["a:b"], &[("a", "b")]),
            (&["a:b:c"], &[("a", "b:c")]),
            (&["a:b", "a:b"], &[("a", "b")]),
            (&["a:1", "b:2"], &[("a", "1"), ("b", "2")]),
        ];
        for (input, want) in ok {
            assert_eq!(
                parse_label_filters(input.iter()).unwrap(),
                labels(want),
                "{input:?}"
            );
        }
        let bad: &[&[&str]] = &[&["ab"], &["a:"], &[":b"], &["a:1", "a:2"], &["bad key:x"]];
        for input in bad {
            let r = parse_label_filters(input.iter()).unwrap_err();
            assert_eq!(fields(&r), vec!["label"], "{input:?}");
        }
        let at: Vec<String> = (0..MAX_CHAT_LABELS).map(|i| format!("k{i}:v")).collect();
        assert_eq!(parse_label_filters(&at).unwrap().len(), MAX_CHAT_LABELS);
        let over: Vec<String> = (0..=MAX_CHAT_LABELS).map(|i| format!("k{i}:v")).collect();
        assert!(parse_label_filters(&over).is_err());
    }

    // ----- title and prompts -----

    #[test]
    fn title_rules() {
        let at = "é".repeat(MAX_CHAT_TITLE_RUNES);
        let over = "é".repeat(MAX_CHAT_TITLE_RUNES + 1);
        let cases: &[(&str, Option<&str>)] = &[
            ("  My chat  ", Some("My chat")),
            (&at, Some(&at)),
            (&format!("  {at}  "), Some(&at)),
            (&over, None),
            ("", None),
            ("   ", None),
            ("two\nlines", None),
            ("tab\there", None),
        ];
        for (input, want) in cases {
            match (validate_chat_title(input), want) {
                (Ok(got), Some(want)) => assert_eq!(&got, want),
                (Err(r), None) => assert_eq!(fields(&r), vec!["title"]),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn system_prompt_sanitizing_and_limits() {
        assert_eq!(
            sanitize_system_prompt("  a\r\nb\rc\0d\u{7}\te\n  "),
            "a\nb\ncd\te"
        );
        assert_eq!(validate_chat_system_prompt("   ").unwrap(), "");
        let at = "é".repeat(MAX_CHAT_SYSTEM_PROMPT_CHARS);
        assert_eq!(validate_chat_system_prompt(&at).unwrap(), at);
        let over = "é".repeat(MAX_CHAT_SYSTEM_PROMPT_CHARS + 1);
        assert_eq!(
            fields(&validate_chat_system_prompt(&over).unwrap_err()),
            vec!["system_prompt"]
        );
        // Removed characters do not count.
        let padded = format!("{at}\0\0");
        assert!(validate_chat_system_prompt(&padded).is_ok());

        let at = "a".repeat(MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES);
        assert!(validate_deployment_system_prompt(&at).is_ok());
        let over = "a".repeat(MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES + 1);
        assert!(validate_deployment_system_prompt(&over).is_err());
    }

    // ----- input parts -----

    #[test]
    fn input_part_table() {
        let id = Uuid::from_u128(7);
        type Case = (ChatInputPart, Result<ValidatedInputPart, &'static str>);
        let cases: Vec<Case> = vec![
            (
                ChatInputPart::text("hi"),
                Ok(ValidatedInputPart::Text("hi".into())),
            ),
            (
                ChatInputPart::text("  hi "),
                Ok(ValidatedInputPart::Text("  hi ".into())),
            ),
            (
                typed(" TEXT ", ChatInputPart::text("x")),
                Ok(ValidatedInputPart::Text("x".into())),
            ),
            (
                typed("File", ChatInputPart::file(id)),
                Ok(ValidatedInputPart::File(id)),
            ),
            (ChatInputPart::text(" \n\t"), Err("content[0].text")),
            (ChatInputPart::text("nul\0"), Err("content[0].text")),
            (
                typed("file", ChatInputPart::text("")),
                Err("content[0].file_id"),
            ),
            (ChatInputPart::file(Uuid::nil()), Err("content[0].file_id")),
            (
                typed("image", ChatInputPart::text("x")),
                Err("content[0].type"),
            ),
            (typed("", ChatInputPart::text("x")), Err("content[0].type")),
            (
                ChatInputPart::file_reference(" src/a.rs ", 0, 0, ""),
                Ok(ValidatedInputPart::FileReference {
                    file_name: "src/a.rs".into(),
                    start_line: 0,
                    end_line: 0,
                    content: String::new(),
                }),
            ),
            (
                typed(
                    "FILE-REFERENCE",
                    ChatInputPart::file_reference("a", 3, 3, "x"),
                ),
                Ok(ValidatedInputPart::FileReference {
                    file_name: "a".into(),
                    start_line: 3,
                    end_line: 3,
                    content: "x".into(),
                }),
            ),
            (
                ChatInputPart::file_reference("a", 1, 9, "x").clone(),
                Ok(ValidatedInputPart::FileReference {
                    file_name: "a".into(),
                    start_line: 1,
                    end_line: 9,
                    content: "x".into(),
                }),
            ),
            (
                ChatInputPart::file_reference("  ", 1, 1, ""),
                Err("content[0].file_name"),
            ),
            (
                ChatInputPart::file_reference("a\nb", 1, 1, ""),
                Err("content[0].file_name"),
            ),
            (
                ChatInputPart::file_reference("a", 3, 2, ""),
                Err("content[0].end_line"),
            ),
            (
                ChatInputPart::file_reference("a", 0, 5, ""),
                Err("content[0].start_line"),
            ),
            (
                ChatInputPart::file_reference("a", -1, 0, ""),
                Err("content[0].start_line"),
            ),
            (
                ChatInputPart::file_reference("a", 1, -1, ""),
                Err("content[0].end_line"),
            ),
        ];
        for (part, want) in cases {
            let got = validate_input_parts(std::slice::from_ref(&part));
            match (got, want) {
                (Ok(parts), Ok(want)) => assert_eq!(parts, vec![want], "{part:?}"),
                (Err(r), Err(field)) => {
                    assert_eq!(r.message, "Invalid message content.");
                    assert_eq!(fields(&r), vec![field], "{part:?}");
                }
                (got, want) => panic!("{part:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn file_reference_name_edge() {
        let at = "a".repeat(MAX_FILE_REFERENCE_NAME_BYTES);
        assert!(validate_input_parts(&[ChatInputPart::file_reference(at, 1, 1, "")]).is_ok());
        let over = "a".repeat(MAX_FILE_REFERENCE_NAME_BYTES + 1);
        assert!(validate_input_parts(&[ChatInputPart::file_reference(over, 1, 1, "")]).is_err());
    }

    #[test]
    fn empty_content_message_is_exact() {
        let r = validate_input_parts(&[]).unwrap_err();
        assert_eq!(r.message, "Content is required.");
        assert_eq!(fields(&r), vec!["content"]);
        let r = validate_edit_chat_message_request(&EditChatMessageRequest::default()).unwrap_err();
        assert_eq!(r.message, "Content is required.");
    }

    #[test]
    fn every_bad_part_is_reported() {
        let parts = vec![
            ChatInputPart::text(""),
            ChatInputPart::text("ok"),
            typed("video", ChatInputPart::text("x")),
        ];
        let r = validate_input_parts(&parts).unwrap_err();
        assert_eq!(fields(&r), vec!["content[0].text", "content[2].type"]);
    }

    #[test]
    fn part_count_and_text_size_edges() {
        let at = vec![ChatInputPart::text("x"); MAX_CHAT_INPUT_PARTS];
        assert_eq!(
            validate_input_parts(&at).unwrap().len(),
            MAX_CHAT_INPUT_PARTS
        );
        let over = vec![ChatInputPart::text("x"); MAX_CHAT_INPUT_PARTS + 1];
        assert_eq!(
            validate_input_parts(&over).unwrap_err().validations.len(),
            1
        );

        let at = ChatInputPart::text("a".repeat(MAX_CHAT_MESSAGE_TEXT_BYTES));
        assert!(validate_input_parts(&[at]).is_ok());
        let over = [
            ChatInputPart::text("a".repeat(MAX_CHAT_MESSAGE_TEXT_BYTES - 1)),
            ChatInputPart::file_reference("ab", 1, 1, ""),
        ];
        assert_eq!(
            fields(&validate_input_parts(&over).unwrap_err()),
            vec!["content"]
        );
    }

    #[test]
    fn conversion_to_message_parts() {
        let known = Uuid::from_u128(1);
        let unknown = Uuid::from_u128(2);
        let parts = validate_input_parts(&[
            ChatInputPart::text("look"),
            ChatInputPart::file(known),
            ChatInputPart::file_reference("a.rs", 1, 2, "fn a()"),
            ChatInputPart::file(known),
        ])
        .unwrap();
        assert_eq!(referenced_file_ids(&parts), vec![known]);
        let resolve = |id: Uuid| {
            (id == known).then(|| ResolvedChatFile {
                media_type: "image/png".into(),
                name: "s.png".into(),
            })
        };
        let out = input_parts_to_message_parts(&parts, resolve).unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], ChatMessagePart::text("look"));
        let mut file = ChatMessagePart::file(known, "image/png");
        file.name = "s.png".into();
        assert_eq!(out[1], file);
        assert_eq!(
            out[2],
            ChatMessagePart::file_reference("a.rs", 1, 2, "fn a()")
        );

        let parts = vec![
            ValidatedInputPart::Text("x".into()),
            ValidatedInputPart::File(unknown),
        ];
        let r = input_parts_to_message_parts(&parts, resolve).unwrap_err();
        assert_eq!(fields(&r), vec!["content[1].file_id"]);
    }

    // ----- dynamic tools -----

    #[test]
    fn dynamic_tool_rules() {
        let n64 = "n".repeat(MAX_DYNAMIC_TOOL_NAME_BYTES);
        let n65 = "n".repeat(MAX_DYNAMIC_TOOL_NAME_BYTES + 1);
        let cases: Vec<(Vec<DynamicTool>, Vec<&str>)> = vec![
            (vec![], vec![]),
            (vec![tool("get_weather", "{}")], vec![]),
            (
                vec![tool("a-b_C9", r#"{"type":"object","properties":{}}"#)],
                vec![],
            ),
            (vec![tool(&n64, "{}")], vec![]),
            (vec![tool(&n65, "{}")], vec!["unsafe_dynamic_tools[0].name"]),
            (vec![tool("", "{}")], vec!["unsafe_dynamic_tools[0].name"]),
            (
                vec![tool("has space", "{}")],
                vec!["unsafe_dynamic_tools[0].name"],
            ),
            (
                vec![tool("dot.name", "{}")],
                vec!["unsafe_dynamic_tools[0].name"],
            ),
            (
                vec![tool("x", "{}"), tool("x", "{}")],
                vec!["unsafe_dynamic_tools[1].name"],
            ),
            (
                vec![tool("x", "[]")],
                vec!["unsafe_dynamic_tools[0].input_schema"],
            ),
            (
                vec![tool("x", "null")],
                vec!["unsafe_dynamic_tools[0].input_schema"],
            ),
            (
                vec![tool("x", r#"{"type":"string"}"#)],
                vec!["unsafe_dynamic_tools[0].input_schema"],
            ),
        ];
        for (tools, want) in cases {
            match validate_dynamic_tools(&tools) {
                Ok(()) => assert!(want.is_empty(), "{tools:?}"),
                Err(r) => assert_eq!(fields(&r), want, "{tools:?}"),
            }
        }
    }

    #[test]
    fn dynamic_tool_count_edge() {
        let at: Vec<DynamicTool> = (0..MAX_DYNAMIC_TOOLS)
            .map(|i| tool(&format!("t{i}"), "{}"))
            .collect();
        assert!(validate_dynamic_tools(&at).is_ok());
        let over: Vec<DynamicTool> = (0..=MAX_DYNAMIC_TOOLS)
            .map(|i| tool(&format!("t{i}"), "{}"))
            .collect();
        assert_eq!(
            fields(&validate_dynamic_tools(&over).unwrap_err()),
            vec!["unsafe_dynamic_tools"]
        );
    }

    // ----- whole bodies -----

    fn create(content: Vec<ChatInputPart>) -> CreateChatRequest {
        CreateChatRequest {
            content,
            ..Default::default()
        }
    }

    #[test]
    fn create_chat_defaults_and_normalization() {
        let mcp = Uuid::from_u128(5);
        let req = CreateChatRequest {
            workspace_id: Some(Uuid::nil()),
            mcp_server_ids: vec![mcp, mcp],
            system_prompt: "  be brief \0".into(),
            ..create(vec![ChatInputPart::text("hi")])
        };
        let v = validate_create_chat_request(&req).unwrap();
        assert_eq!(v.client_type, ChatClientType::Api);
        assert!(!v.plan_mode);
        assert_eq!(v.workspace_id, None);
        assert_eq!(v.mcp_server_ids, vec![mcp]);
        assert_eq!(v.system_prompt, "be brief");
    }

    #[test]
    fn create_chat_enums() {
        type Case = (
            Option<ChatPlanMode>,
            Option<ChatClientType>,
            Result<(bool, ChatClientType), Vec<&'static str>>,
        );
        let u = |s: &str| ChatPlanMode::from_wire(s);
        let c = |s: &str| ChatClientType::from_wire(s);
        let cases: Vec<Case> = vec![
            (None, None, Ok((false, ChatClientType::Api))),
            (
                Some(u("plan")),
                Some(c("ui")),
                Ok((true, ChatClientType::Ui)),
            ),
            (Some(u("")), Some(c("")), Ok((false, ChatClientType::Api))),
            (Some(u(" PLAN ")), None, Err(vec!["plan_mode"])),
            (None, Some(c("API")), Err(vec!["client_type"])),
            (Some(u("build")), None, Err(vec!["plan_mode"])),
            (None, Some(c("cli")), Err(vec!["client_type"])),
            (
                Some(u("x")),
                Some(c("y")),
                Err(vec!["plan_mode", "client_type"]),
            ),
        ];
        for (plan_mode, client_type, want) in cases {
            let req = CreateChatRequest {
                plan_mode: plan_mode.clone(),
                client_type: client_type.clone(),
                ..create(vec![ChatInputPart::text("hi")])
            };
            match (validate_create_chat_request(&req), want) {
                (Ok(v), Ok((plan, client))) => {
                    assert_eq!((v.plan_mode, v.client_type), (plan, client));
                }
                (Err(r), Err(f)) => assert_eq!(fields(&r), f),
                (got, want) => panic!("{plan_mode:?} {client_type:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn create_chat_reports_everything_at_once() {
        let req = CreateChatRequest {
            organization_id: Some(Uuid::nil()),
            model_config_id: Some(Uuid::nil()),
            labels: labels(&[("bad key", "v")]),
            unsafe_dynamic_tools: vec![tool("", "{}")],
            ..create(vec![])
        };
        let r = validate_create_chat_request(&req).unwrap_err();
        assert_eq!(r.message, "Content is required.");
        assert_eq!(
            fields(&r),
            vec![
                "organization_id",
                "content",
                "model_config_id",
                "labels",
                "unsafe_dynamic_tools[0].name"
            ]
        );
        let req = CreateChatRequest {
            labels: labels(&[("k", "")]),
            ..create(vec![ChatInputPart::text("x")])
        };
        assert_eq!(
            validate_create_chat_request(&req).unwrap_err().message,
            "Invalid chat creation request."
        );
    }

    #[test]
    fn create_message_busy_behavior() {
        let b = |s: &str| Some(ChatBusyBehavior::from_wire(s));
        let cases: &[(Option<ChatBusyBehavior>, Option<ChatBusyBehavior>)] = &[
            (None, Some(ChatBusyBehavior::Queue)),
            (b(""), Some(ChatBusyBehavior::Queue)),
            (b("queue"), Some(ChatBusyBehavior::Queue)),
            (b("interrupt"), Some(ChatBusyBehavior::Interrupt)),
            (b(" Interrupt "), None),
            (b("later"), None),
        ];
        for (input, want) in cases {
            let req = CreateChatMessageRequest {
                content: vec![ChatInputPart::text("hi")],
                busy_behavior: input.clone(),
                ..Default::default()
            };
            match (validate_create_chat_message_request(&req), want) {
                (Ok(v), Some(want)) => assert_eq!(&v.busy_behavior, want),
                (Err(r), None) => assert_eq!(fields(&r), vec!["busy_behavior"]),
                (got, want) => panic!("{input:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn create_message_plan_mode_and_ids() {
        let id = Uuid::from_u128(3);
        let req = CreateChatMessageRequest {
            content: vec![ChatInputPart::text("hi")],
            plan_mode: Some(ChatPlanMode::from_wire("")),
            mcp_server_ids: Some(vec![id, id]),
            ..Default::default()
        };
        let v = validate_create_chat_message_request(&req).unwrap();
        assert_eq!(v.plan_mode, Some(false));
        assert_eq!(v.mcp_server_ids, Some(vec![id]));
        let req = CreateChatMessageRequest {
            content: vec![ChatInputPart::text("hi")],
            model_config_id: Some(Uuid::nil()),
            ..Default::default()
        };
        assert_eq!(
            fields(&validate_create_chat_message_request(&req).unwrap_err()),
            vec!["model_config_id"]
        );
        let empty = CreateChatMessageRequest::default();
        assert_eq!(
            validate_create_chat_message_request(&empty)
                .unwrap_err()
                .message,
            "Content is required."
        );
    }

    #[test]
    fn update_chat_rules() {
        let ws = Uuid::from_u128(9);
        let ok = UpdateChatRequest {
            title: Some("  New  ".into()),
            workspace_id: Some(Uuid::nil()),
            pin_order: Some(0),
            labels: Some(BTreeMap::new()),
            plan_mode: Some(ChatPlanMode::Plan),
            archived: Some(true),
        };
        let v = validate_update_chat_request(&ok).unwrap();
        assert_eq!(v.title.as_deref(), Some("New"));
        assert_eq!(v.workspace_id, Some(None));
        assert_eq!(v.plan_mode, Some(true));
        assert_eq!(v.labels, Some(BTreeMap::new()));
        let v = validate_update_chat_request(&UpdateChatRequest {
            workspace_id: Some(ws),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(v.workspace_id, Some(Some(ws)));
        assert!(validate_update_chat_request(&UpdateChatRequest::default())
            .unwrap()
            .is_empty());

        let bad = UpdateChatRequest {
            title: Some(" ".into()),
            pin_order: Some(-1),
            labels: Some(labels(&[("", "v")])),
            plan_mode: Some(ChatPlanMode::from_wire("nope")),
            ..Default::default()
        };
        let r = validate_update_chat_request(&bad).unwrap_err();
        assert_eq!(
            fields(&r),
            vec!["title", "pin_order", "labels", "plan_mode"]
        );
        let pinned = UpdateChatRequest {
            pin_order: Some(i32::MAX),
            ..Default::default()
        };
        assert!(validate_update_chat_request(&pinned).is_ok());
    }

    #[test]
    fn message_id_param() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1", Some(1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775808", None),
            ("0", None),
            ("-1", None),
            ("abc", None),
            ("", None),
            (" 1", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_message_id(raw).ok(), *want, "{raw:?}");
        }
    }

    // ----- tool results -----

    fn result(id: &str, output: Option<&str>) -> ToolResult {
        ToolResult {
            tool_call_id: id.to_owned(),
            output: output.map(|o| RawJson::from_json(o).unwrap()),
            is_error: false,
        }
    }

    #[test]
    fn unwrap_json_string_table() {
        let cases: &[(&str, &str)] = &[
            (r#"{"a":1}"#, r#"{"a":1}"#),
            (r#""{\"a\":1}""#, r#"{"a":1}"#),
            (r#""[1, 2]""#, "[1,2]"),
            (r#""hello""#, r#""hello""#),
            (r#""""#, r#""""#),
            (r#""42""#, "42"),
            (r#""{broken""#, r#""{broken""#),
            ("7", "7"),
        ];
        for (input, want) in cases {
            let got = unwrap_json_string(&RawJson::from_json(input).unwrap());
            assert_eq!(got.get(), *want, "{input}");
        }
        let deep = format!(
            "\"{}{}\"",
            "[".repeat(crate::MAX_RAW_JSON_DEPTH + 1),
            "]".repeat(crate::MAX_RAW_JSON_DEPTH + 1)
        );
        let raw = RawJson::from_json(&deep).unwrap();
        assert_eq!(
            unwrap_json_string(&raw),
            raw,
            "too deep to unwrap: kept as a string"
        );
    }

    #[test]
    fn submit_tool_results_table() {
        type Case = (
            Vec<ToolResult>,
            Result<usize, (&'static str, Vec<&'static str>)>,
        );
        let cases: Vec<Case> = vec![
            (
                vec![result("a", Some("{}")), result("b", Some(r#""text""#))],
                Ok(2),
            ),
            (
                vec![],
                Err(("At least one tool result is required.", vec!["results"])),
            ),
            (
                vec![result("a", None)],
                Err(("Invalid tool results.", vec!["results[0].output"])),
            ),
            (
                vec![result("a", Some("null"))],
                Err(("Invalid tool results.", vec!["results[0].output"])),
            ),
            (
                vec![result("", Some("1"))],
                Err(("Invalid tool results.", vec!["results[0].tool_call_id"])),
            ),
            (
                vec![result("a", Some("1")), result("a", Some("2"))],
                Err((
                    "Duplicate tool_call_id in results.",
                    vec!["results[1].tool_call_id"],
                )),
            ),
        ];
        for (results, want) in cases {
            let req = SubmitToolResultsRequest {
                results: results.clone(),
            };
            match (validate_submit_tool_results_request(&req), want) {
                (Ok(v), Ok(n)) => assert_eq!(v.len(), n),
                (Err(r), Err((msg, f))) => {
                    assert_eq!(r.message, msg);
                    assert_eq!(fields(&r), f);
                }
                (got, want) => panic!("{results:?}: {got:?} vs {want:?}"),
            }
        }
        let req = SubmitToolResultsRequest {
            results: vec![result("a", Some(r#""{\"ok\":true}""#))],
        };
        assert_eq!(
            validate_submit_tool_results_request(&req).unwrap()[0]
                .output
                .get(),
            r#"{"ok":true}"#
        );
    }

    #[test]
    fn tool_results_against_pending() {
        let pending = ["a", "b"];
        let cases: &[(&[&str], Option<&str>, usize)] = &[
            (&["a", "b"], None, 0),
            (&["b", "a"], None, 0),
            (&["a"], Some("Missing tool result."), 1),
            (&["a", "b", "c"], Some("Unexpected tool result."), 1),
            (
                &["a", "a", "b"],
                Some("Duplicate tool_call_id in results."),
                1,
            ),
            (&["a", "c"], Some("Missing tool result."), 2),
            (&[], Some("Missing tool result."), 2),
        ];
        for (ids, message, count) in cases {
            match (validate_tool_results_against(pending, ids.iter()), message) {
                (Ok(()), None) => {}
                (Err(r), Some(m)) => {
                    assert_eq!(&r.message, m, "{ids:?}");
                    assert_eq!(r.validations.len(), *count, "{ids:?}");
                }
                (got, want) => panic!("{ids:?}: {got:?} vs {want:?}"),
            }
        }
        let results = vec![result("a", Some("1")), result("b", Some("2"))];
        assert!(validate_tool_results_against(
            &["a".to_owned(), "b".to_owned()],
            tool_result_ids(&results)
        )
        .is_ok());
    }

    // ----- query parameters -----

    #[test]
    fn message_page_table() {
        type Case = (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            Result<MessagePage, Vec<&'static str>>,
        );
        let page = |before_id, after_id, limit, ascending| MessagePage {
            before_id,
            after_id,
            limit,
            ascending,
        };
        let cases: Vec<Case> = vec![
            (None, None, None, Ok(page(None, None, 50, false))),
            (
                Some(""),
                Some(""),
                Some(""),
                Ok(page(None, None, 50, false)),
            ),
            (None, Some("5"), None, Ok(page(None, Some(5), 50, true))),
            (Some("10"), None, None, Ok(page(Some(10), None, 50, false))),
            (
                Some("10"),
                Some("5"),
                Some("7"),
                Ok(page(Some(10), Some(5), 7, false)),
            ),
            (None, None, Some("1"), Ok(page(None, None, 1, false))),
            (None, None, Some("200"), Ok(page(None, None, 200, false))),
            (None, None, Some("201"), Err(vec!["limit"])),
            (None, None, Some("0"), Err(vec!["limit"])),
            (None, None, Some("-3"), Err(vec!["limit"])),
            (None, None, Some("ten"), Err(vec!["limit"])),
            (Some("5"), Some("5"), None, Err(vec!["after_id"])),
            (Some("5"), Some("6"), None, Err(vec!["after_id"])),
            (Some("0"), None, None, Err(vec!["before_id"])),
            (Some("-1"), None, None, Err(vec!["before_id"])),
            (None, Some("1.5"), None, Err(vec!["after_id"])),
            (
                Some("x"),
                Some("y"),
                Some("z"),
                Err(vec!["before_id", "after_id", "limit"]),
            ),
            (
                Some("99999999999999999999"),
                None,
                None,
                Err(vec!["before_id"]),
            ),
        ];
        for (before, after, limit, want) in cases {
            match (parse_message_page(before, after, limit), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(r), Err(f)) => {
                    assert_eq!(r.message, "Invalid query parameters.");
                    assert_eq!(fields(&r), f, "{before:?} {after:?} {limit:?}");
                }
                (got, want) => panic!("{before:?} {after:?} {limit:?}: {got:?} vs {want:?}"),
            }
        }
        let p = parse_message_page(None, None, Some("200")).unwrap();
        assert_eq!(p.fetch_limit(), 201);
        assert!(!p.has_cursor());
        assert!(parse_message_page(Some("3"), None, None)
            .unwrap()
            .has_cursor());
    }

    #[test]
    fn stream_after_id() {
        assert_eq!(parse_stream_after_id(None).unwrap(), None);
        assert_eq!(parse_stream_after_id(Some("")).unwrap(), None);
        assert_eq!(parse_stream_after_id(Some("0")).unwrap(), Some(0));
        assert_eq!(parse_stream_after_id(Some("42")).unwrap(), Some(42));
        assert_eq!(
            fields(&parse_stream_after_id(Some("4x")).unwrap_err()),
            vec!["after_id"]
        );
    }

    #[test]
    fn chat_list_page_table() {
        let id = Uuid::from_u128(77);
        let id_text = id.to_string();
        let nil_text = Uuid::nil().to_string();
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Result<ChatListPage, Vec<&'static str>>,
        );
        let page = |limit, offset, after_id| ChatListPage {
            limit,
            offset,
            after_id,
        };
        let cases: Vec<Case> = vec![
            (None, None, None, Ok(page(50, 0, None))),
            (Some("0"), Some("0"), Some(""), Ok(page(50, 0, None))),
            (Some("1"), None, None, Ok(page(1, 0, None))),
            (
                Some("200"),
                Some("2147483647"),
                Some(&id_text),
                Ok(page(200, MAX_CHAT_LIST_OFFSET, Some(id))),
            ),
            (None, None, Some(&nil_text), Ok(page(50, 0, None))),
            (Some("201"), None, None, Err(vec!["limit"])),
            (Some("-1"), None, None, Err(vec!["limit"])),
            (None, Some("2147483648"), None, Err(vec!["offset"])),
            (None, Some("-1"), None, Err(vec!["offset"])),
            (None, None, Some("not-a-uuid"), Err(vec!["after_id"])),
        ];
        for (limit, offset, after, want) in cases {
            match (parse_chat_list_page(limit, offset, after), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(r), Err(f)) => assert_eq!(fields(&r), f),
                (got, want) => panic!("{limit:?} {offset:?} {after:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn workspace_ids_param() {
        let ids: Vec<Uuid> = (1..=30).map(Uuid::from_u128).collect();
        let join = |n: usize| {
            ids.iter()
                .take(n)
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            parse_workspace_ids(&join(MAX_WORKSPACE_IDS_PER_LOOKUP))
                .unwrap()
                .len(),
            25
        );
        assert!(parse_workspace_ids(&join(MAX_WORKSPACE_IDS_PER_LOOKUP + 1)).is_err());
        assert_eq!(parse_workspace_ids("").unwrap(), Vec::<Uuid>::new());
        let one = ids[0].to_string();
        assert_eq!(
            parse_workspace_ids(&format!(" {one} ,,{one}")).unwrap(),
            vec![ids[0]]
        );
        assert_eq!(
            fields(&parse_workspace_ids("nope").unwrap_err()),
            vec!["workspace_ids"]
        );
    }

    // ----- attachments -----

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF";
    const WEBP: &[u8] = b"RIFF\x24\0\0\0WEBPVP8 ";

    #[test]
    fn media_type_normalization() {
        assert_eq!(
            normalize_media_type(" Text/Plain ; charset=UTF-8"),
            "text/plain"
        );
        assert_eq!(normalize_media_type(""), "");
        assert_eq!(
            validate_attachment_media_type("IMAGE/PNG").unwrap(),
            "image/png"
        );
        assert_eq!(
            validate_attachment_media_type("text/markdown; charset=utf-8").unwrap(),
            "text/markdown"
        );
        for bad in ["image/svg+xml", "text/html", "", "application/octet-stream"] {
            assert!(validate_attachment_media_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sniff_table() {
        let cases: &[(&[u8], &str)] = &[
            (PNG, "image/png"),
            (JPEG, "image/jpeg"),
            (b"GIF87a....", "image/gif"),
            (b"GIF89a....", "image/gif"),
            (WEBP, "image/webp"),
            (b"RIFF\x24\0\0\0WAVEfmt ", "application/octet-stream"),
            (b"RIFF", "text/plain"),
            (b"%PDF-1.7\n", "application/pdf"),
            (br#"{"a": [1, 2]}"#, "application/json"),
            (b"  [1, 2]\n", "application/json"),
            (b"\xEF\xBB\xBF{\"a\":1}", "application/json"),
            (b"{not json", "text/plain"),
            (b"42", "text/plain"),
            (b"a,b\n1,2\n", "text/plain"),
            (b"# Title\n\ttext\x0c\x1b[0m\r\n", "text/plain"),
            (b"", "text/plain"),
            (b"\0\x01\x02", "application/octet-stream"),
            (b"text\0", "application/octet-stream"),
            (b"\xFF\xFE", "application/octet-stream"),
            (b"caf\xC3\xA9", "text/plain"),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff_media_type(bytes), *want, "{bytes:?}");
        }
    }

    #[test]
    fn check_upload_table() {
        let cases: &[(&str, &[u8], Result<&str, &str>)] = &[
            ("image/png", PNG, Ok("image/png")),
            ("IMAGE/PNG; q=1", PNG, Ok("image/png")),
            (
                "image/png",
                JPEG,
                Err("File content does not match its Content-Type."),
            ),
            ("application/octet-stream", PNG, Ok("image/png")),
            ("application/octet-stream", b"hello", Ok("text/plain")),
            (
                "application/octet-stream",
                b"{\"a\":1}",
                Ok("application/json"),
            ),
            (
                "application/octet-stream",
                b"\0\x01",
                Err("Unsupported file type."),
            ),
            ("text/csv", b"a,b\n1,2", Ok("text/csv")),
            ("text/markdown", b"# hi", Ok("text/markdown")),
            ("text/plain; charset=utf-8", b"hi", Ok("text/plain")),
            ("text/plain", b"{\"a\":1}", Ok("text/plain")),
            (
                "text/plain",
                b"\0bin",
                Err("File content does not match its Content-Type."),
            ),
            (
                "text/plain",
                PNG,
                Err("File content does not match its Content-Type."),
            ),
            ("application/json", b"42", Ok("application/json")),
            ("application/json", b"\"s\"", Ok("application/json")),
            (
                "application/json",
                b"hello",
                Err("File content does not match its Content-Type."),
            ),
            ("application/pdf", b"%PDF-1.4", Ok("application/pdf")),
            (
                "application/pdf",
                b"hello",
                Err("File content does not match its Content-Type."),
            ),
            ("image/webp", WEBP, Ok("image/webp")),
            ("image/svg+xml", b"<svg/>", Err("Unsupported file type.")),
            ("", PNG, Err("Unsupported file type.")),
            ("text/plain", b"", Err("The uploaded file is empty.")),
        ];
        for (declared, bytes, want) in cases {
            match (check_upload(declared, bytes), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{declared}"),
                (Err(r), Err(msg)) => assert_eq!(r.message, *msg, "{declared} {bytes:?}"),
                (got, want) => panic!("{declared} {bytes:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn upload_size_edge() {
        assert!(validate_upload_size(MAX_CHAT_FILE_SIZE_BYTES).is_ok());
        assert!(validate_upload_size(MAX_CHAT_FILE_SIZE_BYTES + 1).is_err());
        let at = vec![b'a'; usize::try_from(MAX_CHAT_FILE_SIZE_BYTES).unwrap()];
        assert_eq!(check_upload("text/plain", &at).unwrap(), "text/plain");
        let over = vec![b'a'; usize::try_from(MAX_CHAT_FILE_SIZE_BYTES).unwrap() + 1];
        assert_eq!(
            check_upload("text/plain", &over).unwrap_err().message,
            "The file is too large."
        );
    }

    // ----- URLs -----

    #[test]
    fn http_url_table() {
        let at = format!("https://a.com/{}", "x".repeat(MAX_URL_BYTES - 14));
        let over = format!("{at}x");
        assert_eq!(at.len(), MAX_URL_BYTES);
        let cases: &[(&str, bool)] = &[
            ("http://a", true),
            ("https://api.openai.com/v1", true),
            ("HTTPS://EXAMPLE.COM", true),
            ("https://user:pw@host:8080/x?y=1#z", true),
            ("http://[::1]:3000/", true),
            ("http://[2001:db8::1]", true),
            ("http://localhost:65535", true),
            ("http://127.0.0.1:1", true),
            ("https://bücher.example/", true),
            (&at, true),
            (&over, false),
            ("", false),
            ("ftp://a", false),
            ("example.com", false),
            ("//example.com", false),
            ("http://", false),
            ("http:///path", false),
            ("http://:80", false),
            ("http://a:0", false),
            ("http://a:65536", false),
            ("http://a:", false),
            ("http://a:80:90", false),
            ("http://a b", false),
            ("http://a\n", false),
            ("http://[::1", false),
            ("http://[zz]", false),
            ("http://[::1]x", false),
            ("http://ex%ample.com", false),
        ];
        for (url, ok) in cases {
            assert_eq!(validate_http_url(url).is_ok(), *ok, "{url}");
        }
    }

    // ----- providers -----

    fn provider_req(provider: &str, key: Option<&str>) -> CreateChatProviderConfigRequest {
        CreateChatProviderConfigRequest {
            provider: provider.to_owned(),
            api_key: key.map(SecretString::from),
            ..Default::default()
        }
    }

    #[test]
    fn create_provider_table() {
        type Case = (CreateChatProviderConfigRequest, bool, Vec<&'static str>);
        let toggles =
            |c: bool, u: bool, f: bool, key: Option<&str>| CreateChatProviderConfigRequest {
                central_api_key_enabled: Some(c),
                allow_user_api_key: Some(u),
                allow_central_api_key_fallback: Some(f),
                ..provider_req("openai", key)
            };
        let cases: Vec<Case> = vec![
            (provider_req("openai", Some("sk-1")), false, vec![]),
            (provider_req(" OpenAI ", Some("sk-1")), false, vec![]),
            (provider_req("openai", None), false, vec!["api_key"]),
            (provider_req("openai", Some("   ")), false, vec!["api_key"]),
            (provider_req("bedrock", None), true, vec![]),
            (provider_req("foo", Some("k")), false, vec!["provider"]),
            (provider_req("", Some("k")), false, vec!["provider"]),
            (
                toggles(false, false, false, Some("k")),
                false,
                vec!["central_api_key_enabled"],
            ),
            (toggles(false, true, false, None), false, vec![]),
            (
                toggles(false, true, true, None),
                false,
                vec!["allow_central_api_key_fallback"],
            ),
            (
                toggles(true, false, true, Some("k")),
                false,
                vec!["allow_central_api_key_fallback"],
            ),
            (toggles(true, true, true, Some("k")), false, vec![]),
            (toggles(true, true, true, None), true, vec![]),
            (
                provider_req("openai", Some("sk\n1")),
                false,
                vec!["api_key"],
            ),
            (
                CreateChatProviderConfigRequest {
                    base_url: Some("ftp://x".into()),
                    ..provider_req("openai", Some("k"))
                },
                false,
                vec!["base_url"],
            ),
            (provider_req("azure", Some("k")), false, vec!["base_url"]),
            (
                CreateChatProviderConfigRequest {
                    base_url: Some("https://r.openai.azure.com".into()),
                    ..provider_req("azure", Some("k"))
                },
                false,
                vec![],
            ),
        ];
        for (req, ambient, want) in cases {
            match validate_create_provider_config(&req, ambient) {
                Ok(_) => assert!(want.is_empty(), "{req:?}"),
                Err(r) => assert_eq!(fields(&r), want, "{req:?}"),
            }
        }
        let v = validate_create_provider_config(&provider_req(" OpenAI ", Some("  sk-1\n")), false)
            .unwrap();
        assert_eq!(v.provider, "openai");
        assert_eq!(v.api_key.as_ref().map(SecretString::expose), Some("sk-1"));
        assert!(v.enabled && v.central_api_key_enabled && !v.allow_user_api_key);
    }

    #[test]
    fn provider_key_limits_never_echo_the_key() {
        let at = "k".repeat(MAX_PROVIDER_API_KEY_BYTES);
        assert!(validate_create_provider_config(&provider_req("openai", Some(&at)), false).is_ok());
        let secret = format!("sk-SECRET{}", "k".repeat(MAX_PROVIDER_API_KEY_BYTES));
        let r = validate_create_provider_config(&provider_req("openai", Some(&secret)), false)
            .unwrap_err();
        assert_eq!(fields(&r), vec!["api_key"]);
        let control = "sk-SECRET\u{7}x";
        let r2 = validate_create_provider_config(&provider_req("openai", Some(control)), false)
            .unwrap_err();
        for r in [r, r2] {
            let text = serde_json::to_string(&r).unwrap() + &r.to_string();
            assert!(!text.contains("SECRET"), "{text}");
        }
        assert!(
            validate_user_provider_key(&CreateUserChatProviderKeyRequest {
                api_key: at.as_str().into()
            })
            .is_ok()
        );
        let r = validate_user_provider_key(&CreateUserChatProviderKeyRequest {
            api_key: secret.as_str().into(),
        })
        .unwrap_err();
        assert!(!r.to_string().contains("SECRET"));
        let r = validate_user_provider_key(&CreateUserChatProviderKeyRequest {
            api_key: " ".into(),
        })
        .unwrap_err();
        assert_eq!(fields(&r), vec!["api_key"]);
        let k = validate_user_provider_key(&CreateUserChatProviderKeyRequest {
            api_key: " sk ".into(),
        })
        .unwrap();
        assert_eq!(k.expose(), "sk");
    }

    fn current(provider: &str, has_key: bool, c: bool, u: bool, f: bool) -> ChatProviderConfig {
        ChatProviderConfig {
            id: Uuid::from_u128(1),
            provider: provider.to_owned(),
            display_name: String::new(),
            enabled: true,
            has_api_key: has_key,
            central_api_key_enabled: c,
            allow_user_api_key: u,
            allow_central_api_key_fallback: f,
            base_url: String::new(),
            source: ChatProviderConfigSource::Database,
            created_at: None,
            updated_at: None,
        }
    }

    #[test]
    fn update_provider_table() {
        let key = |k: &str| Some(SecretString::from(k));
        type Case = (
            ChatProviderConfig,
            UpdateChatProviderConfigRequest,
            bool,
            Result<ApiKeyChange, Vec<&'static str>>,
        );
        let cases: Vec<Case> = vec![
            (
                current("openai", true, true, false, false),
                Default::default(),
                false,
                Ok(ApiKeyChange::Keep),
            ),
            (
                current("openai", true, true, false, false),
                UpdateChatProviderConfigRequest {
                    api_key: key(""),
                    ..Default::default()
                },
                false,
                Err(vec!["api_key"]),
            ),
            (
                current("bedrock", true, true, false, false),
                UpdateChatProviderConfigRequest {
                    api_key: key(""),
                    ..Default::default()
                },
                true,
                Ok(ApiKeyChange::Clear),
            ),
            (
                current("openai", true, true, false, false),
                UpdateChatProviderConfigRequest {
                    api_key: key(""),
                    central_api_key_enabled: Some(false),
                    allow_user_api_key: Some(true),
                    ..Default::default()
                },
                false,
                Ok(ApiKeyChange::Clear),
            ),
            (
                current("openai", false, false, true, false),
                UpdateChatProviderConfigRequest {
                    central_api_key_enabled: Some(true),
                    ..Default::default()
                },
                false,
                Err(vec!["api_key"]),
            ),
            (
                current("openai", false, false, true, false),
                UpdateChatProviderConfigRequest {
                    central_api_key_enabled: Some(true),
                    api_key: key(" sk-new "),
                    ..Default::default()
                },
                false,
                Ok(ApiKeyChange::Set(SecretString::from("sk-new"))),
            ),
            (
                current("openai", true, true, true, false),
                UpdateChatProviderConfigRequest {
                    allow_user_api_key: Some(false),
                    allow_central_api_key_fallback: Some(true),
                    ..Default::default()
                },
                false,
                Err(vec!["allow_central_api_key_fallback"]),
            ),
            (
                current("openai", true, true, false, false),
                UpdateChatProviderConfigRequest {
                    api_key: key("bad\0key"),
                    ..Default::default()
                },
                false,
                Err(vec!["api_key"]),
            ),
            (
                current("openai", true, true, false, false),
                UpdateChatProviderConfigRequest {
                    base_url: Some("nope".into()),
                    ..Default::default()
                },
                false,
                Err(vec!["base_url"]),
            ),
            (
                current("azure", true, true, false, false),
                UpdateChatProviderConfigRequest {
                    base_url: Some(String::new()),
                    ..Default::default()
                },
                false,
                Err(vec!["base_url"]),
            ),
        ];
        for (cur, req, ambient, want) in cases {
            match (validate_update_provider_config(&cur, &req, ambient), want) {
                (Ok(v), Ok(change)) => assert_eq!(v.api_key, change, "{req:?}"),
                (Err(r), Err(f)) => assert_eq!(fields(&r), f, "{req:?}"),
                (got, want) => panic!("{cur:?} {req:?}: {got:?} vs {want:?}"),
            }
        }
        let req = UpdateChatProviderConfigRequest {
            base_url: Some(" ".into()),
            display_name: Some(" Mine ".into()),
            ..Default::default()
        };
        let v = validate_update_provider_config(
            &current("openai", true, true, false, false),
            &req,
            false,
        )
        .unwrap();
        assert_eq!(v.base_url.as_deref(), Some(""));
        assert_eq!(v.display_name.as_deref(), Some("Mine"));
    }

    #[test]
    fn display_name_edge() {
        let at = "é".repeat(MAX_DISPLAY_NAME_RUNES);
        let req = CreateChatProviderConfigRequest {
            display_name: Some(at),
            ..provider_req("openai", Some("k"))
        };
        assert!(validate_create_provider_config(&req, false).is_ok());
        let over = "é".repeat(MAX_DISPLAY_NAME_RUNES + 1);
        let req = CreateChatProviderConfigRequest {
            display_name: Some(over),
            ..provider_req("openai", Some("k"))
        };
        assert_eq!(
            fields(&validate_create_provider_config(&req, false).unwrap_err()),
            vec!["display_name"]
        );
    }

    // ----- model configs -----

    fn model_req() -> CreateChatModelConfigRequest {
        CreateChatModelConfigRequest {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            context_limit: Some(128_000),
            ..Default::default()
        }
    }

    fn with_call(cfg: ChatModelCallConfig) -> CreateChatModelConfigRequest {
        CreateChatModelConfigRequest {
            model_config: Some(cfg),
            ..model_req()
        }
    }

    #[test]
    fn create_model_table() {
        let call = ChatModelCallConfig::default;
        let price = |v: i64| ModelCostConfig {
            output_price_per_million_tokens: Some(Decimal::from(v)),
            ..Default::default()
        };
        let cases: Vec<(CreateChatModelConfigRequest, Vec<&str>)> = vec![
            (model_req(), vec![]),
            (
                CreateChatModelConfigRequest {
                    model: " ".into(),
                    ..model_req()
                },
                vec!["model"],
            ),
            (
                CreateChatModelConfigRequest {
                    model: "a b".into(),
                    ..model_req()
                },
                vec!["model"],
            ),
            (
                CreateChatModelConfigRequest {
                    model: "m".repeat(MAX_MODEL_NAME_BYTES),
                    ..model_req()
                },
                vec![],
            ),
            (
                CreateChatModelConfigRequest {
                    model: "m".repeat(MAX_MODEL_NAME_BYTES + 1),
                    ..model_req()
                },
                vec!["model"],
            ),
            (
                CreateChatModelConfigRequest {
                    provider: "nope".into(),
                    ..model_req()
                },
                vec!["provider"],
            ),
            (
                CreateChatModelConfigRequest {
                    context_limit: None,
                    ..model_req()
                },
                vec!["context_limit"],
            ),
            (
                CreateChatModelConfigRequest {
                    context_limit: Some(0),
                    ..model_req()
                },
                vec!["context_limit"],
            ),
            (
                CreateChatModelConfigRequest {
                    context_limit: Some(1),
                    ..model_req()
                },
                vec![],
            ),
            (
                CreateChatModelConfigRequest {
                    compression_threshold: Some(0),
                    ..model_req()
                },
                vec![],
            ),
            (
                CreateChatModelConfigRequest {
                    compression_threshold: Some(100),
                    ..model_req()
                },
                vec![],
            ),
            (
                CreateChatModelConfigRequest {
                    compression_threshold: Some(101),
                    ..model_req()
                },
                vec!["compression_threshold"],
            ),
            (
                CreateChatModelConfigRequest {
                    compression_threshold: Some(-1),
                    ..model_req()
                },
                vec!["compression_threshold"],
            ),
            (
                with_call(ChatModelCallConfig {
                    temperature: Some(0.0),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    temperature: Some(2.0),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    temperature: Some(2.0001),
                    ..call()
                }),
                vec!["model_config.temperature"],
            ),
            (
                with_call(ChatModelCallConfig {
                    temperature: Some(-0.1),
                    ..call()
                }),
                vec!["model_config.temperature"],
            ),
            (
                with_call(ChatModelCallConfig {
                    temperature: Some(f64::NAN),
                    ..call()
                }),
                vec!["model_config.temperature"],
            ),
            (
                with_call(ChatModelCallConfig {
                    top_p: Some(1.0),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    top_p: Some(0.0),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    top_p: Some(-0.01),
                    ..call()
                }),
                vec!["model_config.top_p"],
            ),
            (
                with_call(ChatModelCallConfig {
                    top_p: Some(1.01),
                    ..call()
                }),
                vec!["model_config.top_p"],
            ),
            (
                with_call(ChatModelCallConfig {
                    top_k: Some(1),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    top_k: Some(0),
                    ..call()
                }),
                vec!["model_config.top_k"],
            ),
            (
                with_call(ChatModelCallConfig {
                    max_output_tokens: Some(1),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    max_output_tokens: Some(0),
                    ..call()
                }),
                vec!["model_config.max_output_tokens"],
            ),
            (
                with_call(ChatModelCallConfig {
                    presence_penalty: Some(-2.0),
                    frequency_penalty: Some(2.0),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    presence_penalty: Some(-2.01),
                    frequency_penalty: Some(2.01),
                    ..call()
                }),
                vec![
                    "model_config.presence_penalty",
                    "model_config.frequency_penalty",
                ],
            ),
            (
                with_call(ChatModelCallConfig {
                    cost: Some(price(0)),
                    ..call()
                }),
                vec![],
            ),
            (
                with_call(ChatModelCallConfig {
                    cost: Some(price(-1)),
                    ..call()
                }),
                vec!["model_config.cost.output_price_per_million_tokens"],
            ),
        ];
        for (req, want) in cases {
            match validate_create_model_config(&req) {
                Ok(_) => assert!(want.is_empty(), "{req:?}"),
                Err(r) => assert_eq!(fields(&r), want, "{req:?}"),
            }
        }
        let v = validate_create_model_config(&CreateChatModelConfigRequest {
            provider: " OpenAI".into(),
            ..model_req()
        })
        .unwrap();
        assert_eq!(
            (v.provider.as_str(), v.display_name.as_str()),
            ("openai", "gpt-4o")
        );
        assert_eq!(v.compression_threshold, DEFAULT_COMPRESSION_THRESHOLD);
        assert!(v.enabled);
    }

    #[test]
    fn update_model_normalizes_blanks() {
        let req = UpdateChatModelConfigRequest {
            provider: Some(" ".into()),
            model: Some(" gpt-5 ".into()),
            display_name: Some(String::new()),
            ..Default::default()
        };
        let v = validate_update_model_config(&req).unwrap();
        assert_eq!(
            (v.provider, v.model, v.display_name),
            (None, Some("gpt-5".into()), None)
        );
        let bad = UpdateChatModelConfigRequest {
            provider: Some("nope".into()),
            context_limit: Some(0),
            compression_threshold: Some(101),
            ..Default::default()
        };
        let r = validate_update_model_config(&bad).unwrap_err();
        assert_eq!(
            fields(&r),
            vec!["provider", "context_limit", "compression_threshold"]
        );
        assert!(validate_compression_threshold(100, "threshold_percent").is_ok());
        assert_eq!(
            fields(&validate_compression_threshold(101, "threshold_percent").unwrap_err()),
            vec!["threshold_percent"]
        );
        assert!(validate_model_call_config(&ChatModelCallConfig::default()).is_ok());
    }

    // ----- usage limits -----

    #[test]
    fn usage_limit_table() {
        let cases: &[(
            Option<i64>,
            Option<&str>,
            Result<(Option<i64>, &str), Vec<&str>>,
        )] = &[
            (None, None, Ok((None, "month"))),
            (None, Some(""), Ok((None, "month"))),
            (Some(1), Some("week"), Ok((Some(1), "week"))),
            (Some(i64::MAX), Some(" DAY "), Ok((Some(i64::MAX), "day"))),
            (Some(0), None, Err(vec!["spend_limit_micros"])),
            (
                Some(-5),
                Some("year"),
                Err(vec!["spend_limit_micros", "period"]),
            ),
            (None, Some("year"), Err(vec!["period"])),
        ];
        for (limit, period, want) in cases {
            match (validate_usage_limit_config(*limit, *period), want) {
                (Ok(v), Ok((l, p))) => {
                    assert_eq!((v.spend_limit_micros, v.period.as_str()), (*l, *p))
                }
                (Err(r), Err(f)) => assert_eq!(&fields(&r), f),
                (got, want) => panic!("{limit:?} {period:?}: {got:?} vs {want:?}"),
            }
        }
        assert_eq!(validate_usage_limit_override(Some(1)).unwrap(), 1);
        assert!(validate_usage_limit_override(Some(0)).is_err());
        assert!(validate_usage_limit_override(None).is_err());
    }

    #[test]
    fn quoted_echo_is_bounded_and_escaped() {
        let long = "x".repeat(1000);
        let q = quoted(&long);
        assert!(q.chars().count() < 80, "{q}");
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
    }

    // ----- never panic -----

    fn any_part() -> impl Strategy<Value = ChatInputPart> {
        (
            any::<String>(),
            any::<String>(),
            any::<Option<u128>>(),
            any::<String>(),
            any::<i64>(),
            any::<i64>(),
            any::<String>(),
        )
            .prop_map(|(t, text, id, file_name, start_line, end_line, content)| {
                ChatInputPart {
                    part_type: ChatInputPartType::from_wire(&t),
                    text,
                    file_id: id.map(Uuid::from_u128),
                    file_name,
                    start_line,
                    end_line,
                    content,
                }
            })
    }

    proptest! {
        #[test]
        fn string_validators_never_panic(s in any::<String>(), t in any::<String>()) {
            let _ = validate_labels(&labels(&[(s.as_str(), t.as_str())]));
            let _ = parse_label_filters([s.as_str(), t.as_str()]);
            let _ = validate_chat_title(&s);
            let _ = validate_chat_system_prompt(&s);
            let _ = validate_deployment_system_prompt(&s);
            let _ = parse_message_id(&s);
            let _ = parse_stream_after_id(Some(&s));
            let _ = parse_workspace_ids(&s);
            let _ = normalize_media_type(&s);
            let _ = validate_attachment_media_type(&s);
            let _ = validate_http_url(&s);
            let _ = validate_usage_limit_config(Some(1), Some(&s));
            let _ = validate_create_provider_config(
                &CreateChatProviderConfigRequest { base_url: Some(t.clone()), display_name: Some(t.clone()), ..provider_req(&s, Some(&t)) },
                false,
            );
            let _ = validate_create_model_config(&CreateChatModelConfigRequest { provider: s.clone(), model: t.clone(), ..model_req() });
        }

        #[test]
        fn page_parsers_never_panic(a in any::<Option<String>>(), b in any::<Option<String>>(), c in any::<Option<String>>()) {
            if let Ok(p) = parse_message_page(a.as_deref(), b.as_deref(), c.as_deref()) {
                prop_assert!((1..=MAX_MESSAGE_PAGE_LIMIT).contains(&p.limit));
                if let (Some(before), Some(after)) = (p.before_id, p.after_id) {
                    prop_assert!(after < before);
                }
            }
            if let Ok(p) = parse_chat_list_page(a.as_deref(), b.as_deref(), c.as_deref()) {
                prop_assert!((1..=MAX_CHAT_LIST_LIMIT).contains(&p.limit));
                prop_assert!((0..=MAX_CHAT_LIST_OFFSET).contains(&p.offset));
            }
        }

        #[test]
        fn numeric_page_params_round_trip(before in 1i64.., after in 1i64.., limit in -5i64..300) {
            let r = parse_message_page(Some(&before.to_string()), Some(&after.to_string()), Some(&limit.to_string()));
            prop_assert_eq!(r.is_ok(), after < before && (1..=MAX_MESSAGE_PAGE_LIMIT).contains(&limit));
        }

        #[test]
        fn uploads_never_panic(declared in any::<String>(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let sniffed = sniff_media_type(&bytes);
            if let Ok(t) = check_upload(&declared, &bytes) {
                prop_assert!(CHAT_ATTACHMENT_MEDIA_TYPES.contains(&t));
            }
            if !bytes.is_empty() && CHAT_ATTACHMENT_MEDIA_TYPES.contains(&sniffed) {
                prop_assert_eq!(check_upload("application/octet-stream", &bytes).ok(), Some(sniffed));
            }
        }

        #[test]
        fn input_parts_never_panic(parts in proptest::collection::vec(any_part(), 0..8)) {
            if let Ok(valid) = validate_input_parts(&parts) {
                prop_assert_eq!(valid.len(), parts.len());
                let converted = input_parts_to_message_parts(&valid, |_| None);
                prop_assert_eq!(converted.is_ok(), referenced_file_ids(&valid).is_empty());
            }
            let req = CreateChatMessageRequest { content: parts, ..Default::default() };
            let _ = validate_create_chat_message_request(&req);
        }

        #[test]
        fn tool_validators_never_panic(names in proptest::collection::vec(any::<String>(), 0..6), schema in any::<String>()) {
            let schema = RawJson::from_json(&schema).unwrap_or_else(|_| RawJson::empty_object());
            let tools: Vec<DynamicTool> = names.iter().map(|n| DynamicTool {
                name: n.clone(),
                description: String::new(),
                input_schema: schema.clone(),
            }).collect();
            let _ = validate_dynamic_tools(&tools);
            let _ = unwrap_json_string(&schema);
            let _ = validate_tool_results_against(&names, names.iter().rev());
            let req = SubmitToolResultsRequest {
                results: names.iter().map(|n| ToolResult { tool_call_id: n.clone(), output: Some(schema.clone()), is_error: false }).collect(),
            };
            let _ = validate_submit_tool_results_request(&req);
        }

        #[test]
        fn json_string_unwrap_of_any_text(s in any::<String>()) {
            let raw = RawJson::from_value(&s).unwrap();
            let out = unwrap_json_string(&raw);
            match RawJson::from_json(&s) {
                Ok(inner) => prop_assert_eq!(out, inner),
                Err(_) => prop_assert_eq!(out, raw),
            }
        }
    }
}
