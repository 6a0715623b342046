//! The offline demo model and its tools.
//!
//! A server with no provider configured at all (no provider config, no model config, no
//! `OPENAI_API_KEY` / `ANTHROPIC_API_KEY`) runs every turn on [`DemoModel`], a built-in,
//! deterministic stand-in labelled `demo` everywhere: it streams a canned reply word by
//! word, and calls a tool first when the user's message asks for one (the time, a sum, or
//! any offered tool named in the message), so a newcomer sees a whole turn — streaming,
//! tool call, tool result, final answer — without an API key. As soon as anything is
//! configured, the stored configuration ([`StoreModelResolver`]) takes over; the check is
//! made on every chat creation and every turn, so configuring a provider needs no restart.
//!
//! The demo tools [`CURRENT_TIME_TOOL`] and [`ADD_TOOL`] (pure functions: the clock and
//! integer addition) come with the demo model ([`ResolvedModel::with_tools`]): they exist
//! only in turns the demo model serves, so a real model is never offered them, and they
//! rank below a chat's dynamic tools, so a bot's own tool of the same name always reaches
//! the bot.
//!
//! See docs/client.md ("The offline demo model") for the decisions.

use std::sync::Arc;
use std::time::Duration;

use chatd_core::tools::{parse_arguments, schema_for, Tool, ToolContext, ToolOutput, ToolRegistry};
use chatd_core::{
    Admin, ModelResolver, ModelSelection, ResolvedModel, StoreModelResolver, TurnModelRequest,
};
use chatprovider::{
    FinishReason, LanguageModel, Message, ModelRequest, ModelStream, Part, Provider, Role,
    StreamPart, ToolCall,
};
use codersdk::{
    ChatError, ChatModel, ChatModelProvider, Decimal, ModelCostConfig, RawJson, Timestamp, Uuid,
};
use futures_util::StreamExt;

/// Provider id of the demo model in the model catalogue (`GET /chats/models`).
pub const DEMO_PROVIDER: &str = "demo";

/// Model id of the demo model.
pub const DEMO_MODEL: &str = "demo";

/// Display name of the demo model: says what it is wherever a model name is shown.
pub const DEMO_DISPLAY_NAME: &str = "demo (offline, no provider configured)";

/// The model config id chats get while the demo model is in use. Fixed, so a chat created
/// in demo mode names the same "model" after a restart; no model config row has it.
pub const DEMO_MODEL_CONFIG_ID: Uuid = Uuid::from_u128(0xde70_0000_0000_4000_8000_0000_0000_0001);

/// Pause between two streamed words of a demo reply, so the reply visibly streams. The
/// load benchmark sets it to zero ([`resolver_with_word_delay`]).
pub const DEFAULT_DEMO_WORD_DELAY: Duration = Duration::from_millis(30);

/// Most characters of the user's message the demo reply quotes back (the rest is cut with
/// an ellipsis): a pasted log should not come back whole.
pub const DEMO_ECHO_MAX_CHARS: usize = 200;

/// Name of the demo clock tool.
pub const CURRENT_TIME_TOOL: &str = "current_time";

/// Name of the demo addition tool.
pub const ADD_TOOL: &str = "add";

/// The demo model's answer to every turn summary request: it cannot judge a turn, and a
/// fixed label shows where the chat list puts one.
pub const DEMO_TURN_SUMMARY: &str = "Demo turn finished";

/// The workspace tool the demo writes files with (when the chat has a workspace).
const WRITE_FILE_TOOL: &str = chatd_core::workspace::tools::WRITE_FILE_TOOL;

/// The workspace tool the demo reads files back with.
const READ_FILE_TOOL: &str = chatd_core::workspace::tools::READ_FILE_TOOL;

/// Where the server's models come from: the configuration behind `admin` once anything
/// is configured, else the demo model (with [`DEFAULT_DEMO_WORD_DELAY`]).
pub fn resolver(admin: Admin) -> Arc<dyn ModelResolver> {
    resolver_with_word_delay(admin, DEFAULT_DEMO_WORD_DELAY)
}

/// [`resolver`] whose demo model pauses `word_delay` between words (zero: no pauses).
pub fn resolver_with_word_delay(admin: Admin, word_delay: Duration) -> Arc<dyn ModelResolver> {
    Arc::new(DemoFallbackResolver {
        configured: admin.model_resolver(),
        admin,
        demo: Arc::new(DemoModel::new(word_delay)),
    })
}

/// Whether the demo model is in use: nothing is configured ([`Admin::is_configured`]: no
/// provider config, no model config — deleted ones do not count — and no provider key in
/// the environment).
pub async fn demo_active(admin: &Admin) -> chatd_core::Result<bool> {
    Ok(!admin.is_configured().await?)
}

/// The demo model as `GET /chats/models` should list it while [`demo_active`]: provider
/// [`DEMO_PROVIDER`], available, one model with id [`DEMO_MODEL_CONFIG_ID`].
pub fn catalog_entry() -> ChatModelProvider {
    ChatModelProvider {
        provider: DEMO_PROVIDER.to_owned(),
        available: true,
        unavailable_reason: None,
        models: vec![ChatModel {
            id: DEMO_MODEL_CONFIG_ID.to_string(),
            provider: DEMO_PROVIDER.to_owned(),
            model: DEMO_MODEL.to_owned(),
            display_name: DEMO_DISPLAY_NAME.to_owned(),
        }],
    }
}

/// The demo model when nothing is configured, the store's configuration otherwise.
pub struct DemoFallbackResolver {
    admin: Admin,
    configured: StoreModelResolver,
    demo: Arc<DemoModel>,
}

impl std::fmt::Debug for DemoFallbackResolver {
    // The deployment keys are secrets: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoFallbackResolver")
            .field("demo", &self.demo)
            .finish_non_exhaustive()
    }
}

impl DemoFallbackResolver {
    fn demo_model(&self) -> ResolvedModel {
        // The demo costs nothing: zero prices make its turns "free", not "unpriced".
        let free = ModelCostConfig {
            input_price_per_million_tokens: Some(Decimal::ZERO),
            output_price_per_million_tokens: Some(Decimal::ZERO),
            cache_read_price_per_million_tokens: Some(Decimal::ZERO),
            cache_write_price_per_million_tokens: Some(Decimal::ZERO),
        };
        ResolvedModel::new(DEMO_MODEL_CONFIG_ID, self.demo.clone())
            .with_cost(Some(free))
            .with_tools(demo_tools())
    }
}

#[async_trait::async_trait]
impl ModelResolver for DemoFallbackResolver {
    async fn select(&self, selection: ModelSelection) -> chatd_core::Result<Uuid> {
        let demo_requested = matches!(selection.requested, None | Some(DEMO_MODEL_CONFIG_ID));
        if demo_requested && demo_active(&self.admin).await? {
            return Ok(DEMO_MODEL_CONFIG_ID);
        }
        // Configured, or a model config was named: the store decides (and refuses unknown
        // ids with its usual 400).
        self.configured.select(selection).await
    }

    async fn check_new_chat(
        &self,
        selection: ModelSelection,
        model_config_id: Uuid,
    ) -> chatd_core::Result<()> {
        // The demo model needs no key; every configured model is the store's to check.
        if model_config_id == DEMO_MODEL_CONFIG_ID {
            return Ok(());
        }
        self.configured
            .check_new_chat(selection, model_config_id)
            .await
    }

    async fn resolve(&self, turn: TurnModelRequest) -> Result<ResolvedModel, ChatError> {
        match demo_active(&self.admin).await {
            Ok(true) => Ok(self.demo_model()),
            // A chat begun on the demo names DEMO_MODEL_CONFIG_ID, which no config has:
            // the store skips it and uses the default model.
            Ok(false) => self.configured.resolve(turn).await,
            Err(e) => {
                tracing::error!(error = %e, "checking for configured providers failed");
                Err(ChatError::generic("The chat's model could not be loaded."))
            }
        }
    }

    async fn title_model(&self, turn: TurnModelRequest) -> Option<ResolvedModel> {
        // The `title_generation` override names a model config, so it is only ever set
        // (and usable) once something is configured, when the demo is not in use.
        self.configured.title_model(turn).await
    }

    async fn compaction_model(&self, turn: TurnModelRequest) -> Option<ResolvedModel> {
        // Like titles: the `compaction` override exists only once something is configured.
        self.configured.compaction_model(turn).await
    }
}

/// What the demo model does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoReply {
    /// Streams this text.
    Text(String),
    /// Calls this tool with these JSON arguments.
    ToolCall {
        /// Tool name.
        name: String,
        /// Argument JSON text.
        arguments: String,
    },
}

/// The built-in deterministic model: the same request always gets the same reply.
///
/// - A title request ([`chatd_core::title::TITLE_SYSTEM_PROMPT`]) gets `Demo: ` and the
///   first words of the message; a turn summary request
///   ([`chatd_core::TURN_SUMMARY_SYSTEM_PROMPT`]) gets [`DEMO_TURN_SUMMARY`].
/// - After a successful `write_file` it reads the file back with `read_file`; after other
///   tool results it answers with what the tools returned.
/// - Otherwise, when the latest user message names an offered tool it calls it (with
///   `{}` as arguments); when it asks to create a file ("Create hello.txt saying hi") and
///   `write_file` is offered (the chat has a workspace) it calls that; when it says
///   `add`/`sum`/`plus` with two integers and `add` is offered it calls `add`; when it says
///   `time` and `current_time` is offered it calls that; else it explains that it is the
///   demo and quotes the message back.
#[derive(Debug, Clone)]
pub struct DemoModel {
    word_delay: Duration,
}

impl DemoModel {
    /// A demo model pausing `word_delay` between streamed words.
    pub fn new(word_delay: Duration) -> Self {
        DemoModel { word_delay }
    }

    /// The reply to `request`.
    pub fn reply(&self, request: &ModelRequest) -> DemoReply {
        let last_user_text = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(message_text)
            .unwrap_or_default();
        if request.system.first().map(String::as_str)
            == Some(chatd_core::title::TITLE_SYSTEM_PROMPT)
        {
            let title = chatd_core::title::fallback_title(&last_user_text);
            return DemoReply::Text(format!("Demo: {title}"));
        }
        if request.system.first().map(String::as_str)
            == Some(chatd_core::TURN_SUMMARY_SYSTEM_PROMPT)
        {
            return DemoReply::Text(DEMO_TURN_SUMMARY.to_owned());
        }
        match request.messages.last() {
            Some(last) if last.role == Role::Tool => {
                follow_up(request).unwrap_or_else(|| DemoReply::Text(summarize_results(last)))
            }
            _ => plan_for(&last_user_text, request),
        }
    }

    /// The parts a stream of `request` yields, each with whether to pause before it.
    fn parts(&self, request: &ModelRequest) -> Vec<(bool, StreamPart)> {
        let input_words: usize = request
            .messages
            .iter()
            .map(|m| message_text(m).split_whitespace().count())
            .sum();
        let mut out = vec![(
            false,
            StreamPart::ResponseMetadata {
                id: None,
                model: Some(DEMO_MODEL.to_owned()),
            },
        )];
        let (reason, output_words) = match self.reply(request) {
            DemoReply::Text(text) => {
                let words = word_deltas(&text);
                let count = words.len();
                out.extend(
                    words
                        .into_iter()
                        .enumerate()
                        .map(|(i, delta)| (i > 0, StreamPart::TextDelta { block: 0, delta })),
                );
                (FinishReason::Stop, count)
            }
            DemoReply::ToolCall { name, arguments } => {
                // Unique within the chat: the history only grows.
                let id = format!("call_demo_{}", request.messages.len());
                out.push((
                    false,
                    StreamPart::ToolCallStart {
                        block: 0,
                        id: id.clone(),
                        name: name.clone(),
                    },
                ));
                out.push((
                    false,
                    StreamPart::ToolCallDelta {
                        block: 0,
                        id: id.clone(),
                        delta: arguments.clone(),
                    },
                ));
                out.push((
                    false,
                    StreamPart::ToolCall(ToolCall {
                        id,
                        name,
                        arguments,
                        arguments_valid: true,
                        provider_executed: false,
                    }),
                ));
                (FinishReason::ToolCalls, 1)
            }
        };
        let tokens = |n: usize| Some(i64::try_from(n).unwrap_or(i64::MAX));
        out.push((
            false,
            StreamPart::Finish {
                reason,
                usage: codersdk::ChatMessageUsage {
                    input_tokens: tokens(input_words),
                    output_tokens: tokens(output_words),
                    total_tokens: tokens(input_words.saturating_add(output_words)),
                    ..Default::default()
                },
            },
        ));
        out
    }
}

#[async_trait::async_trait]
impl LanguageModel for DemoModel {
    fn provider(&self) -> Provider {
        // The engine needs a catalog provider for error attribution and price lookup;
        // "demo" is in no price book, and the resolver gives it zero prices anyway.
        Provider::OpenAiCompat
    }

    fn model_id(&self) -> &str {
        DEMO_MODEL
    }

    fn stream(&self, request: ModelRequest) -> ModelStream {
        let parts = self.parts(&request);
        let delay = self.word_delay;
        futures_util::stream::iter(parts)
            .then(move |(pause, part)| async move {
                if pause && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(part)
            })
            .boxed()
    }
}

/// The text parts of a message, joined by spaces.
fn message_text(message: &Message) -> String {
    message
        .content
        .iter()
        .filter_map(|p| match p {
            Part::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits text into word deltas that concatenate back to it (each word keeps the spaces
/// after it).
fn word_deltas(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if !c.is_whitespace() && current.ends_with(char::is_whitespace) {
            out.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The reply to a user message: a tool call when the message asks for one, else the
/// canned explanation.
fn plan_for(text: &str, request: &ModelRequest) -> DemoReply {
    let offered = |name: &str| request.tools.iter().any(|t| t.name == name);
    // Tool names are letters, digits, `_` and `-`: split on everything else.
    let names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let mentions = |word: &str| names.iter().any(|w| w == word);
    // Any other offered tool the message names (a bot's dynamic tool, say), by name.
    if let Some(tool) = request.tools.iter().find(|t| {
        t.name != ADD_TOOL
            && t.name != CURRENT_TIME_TOOL
            && names.iter().any(|w| w.eq_ignore_ascii_case(&t.name))
    }) {
        return DemoReply::ToolCall {
            name: tool.name.clone(),
            arguments: "{}".to_owned(),
        };
    }
    if offered(WRITE_FILE_TOOL) {
        if let Some((path, content)) = file_request(text) {
            return DemoReply::ToolCall {
                name: WRITE_FILE_TOOL.to_owned(),
                arguments: serde_json::json!({ "path": path, "content": content }).to_string(),
            };
        }
    }
    if offered(ADD_TOOL) && (mentions("add") || mentions("sum") || mentions("plus")) {
        let numbers: Vec<i64> = text
            .split(|c: char| !(c.is_ascii_digit() || c == '-'))
            .filter_map(|w| w.parse().ok())
            .collect();
        if let [a, b, ..] = numbers.as_slice() {
            return DemoReply::ToolCall {
                name: ADD_TOOL.to_owned(),
                arguments: serde_json::json!({ "a": a, "b": b }).to_string(),
            };
        }
    }
    if offered(CURRENT_TIME_TOOL) && mentions("time") {
        return DemoReply::ToolCall {
            name: CURRENT_TIME_TOOL.to_owned(),
            arguments: "{}".to_owned(),
        };
    }
    DemoReply::Text(canned_reply(text, offered(WRITE_FILE_TOOL)))
}

/// A request to create a file, as `(path, content)`: "Create hello.txt saying hi" (also
/// "write"/"make", and "containing"/"with the text"/"that says" for the content) gives
/// `("hello.txt", "hi\n")`. The file name is the first word after the verb that has a dot
/// in it; without a content phrase the file says "hello".
fn file_request(text: &str) -> Option<(String, String)> {
    let lower = text.to_ascii_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    let verb = words
        .iter()
        .position(|w| matches!(w.to_ascii_lowercase().as_str(), "create" | "write" | "make"))?;
    let path = words.iter().skip(verb + 1).find_map(|w| {
        let w = w.trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | ',' | ':' | ';'));
        let plausible = w.contains('.')
            && !w.ends_with('.')
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        plausible.then(|| w.to_owned())
    })?;
    let content = [" saying ", " containing ", " with the text ", " that says "]
        .iter()
        .find_map(|marker| lower.find(marker).map(|at| at + marker.len()))
        .and_then(|at| text.get(at..))
        .map(|c| {
            c.trim()
                .trim_matches(|ch: char| matches!(ch, '"' | '\'' | '`'))
                .to_owned()
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "hello".to_owned());
    Some((path, format!("{content}\n")))
}

/// The next step after tool results, when there is one: after a successful `write_file`,
/// read the file back with `read_file` (so a newcomer sees the file really is there).
fn follow_up(request: &ModelRequest) -> Option<DemoReply> {
    let offered = |name: &str| request.tools.iter().any(|t| t.name == name);
    let (results, calls) = match request.messages.as_slice() {
        [.., calls, results] if calls.role == Role::Assistant => (results, calls),
        _ => return None,
    };
    let wrote = results.content.iter().any(
        |p| matches!(p, Part::ToolResult { name, is_error: false, .. } if name == WRITE_FILE_TOOL),
    );
    if !wrote || !offered(READ_FILE_TOOL) {
        return None;
    }
    let path = calls.content.iter().find_map(|p| match p {
        Part::ToolCall {
            name, arguments, ..
        } if name == WRITE_FILE_TOOL => arguments
            .to_value()
            .get("path")
            .and_then(|p| p.as_str())
            .map(str::to_owned),
        _ => None,
    })?;
    Some(DemoReply::ToolCall {
        name: READ_FILE_TOOL.to_owned(),
        arguments: serde_json::json!({ "path": path }).to_string(),
    })
}

/// The demo's answer to a message that asks for no tool.
fn canned_reply(text: &str, workspace: bool) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let quoted = if text.is_empty() {
        "You sent no text.".to_owned()
    } else {
        let mut quote: String = text.chars().take(DEMO_ECHO_MAX_CHARS).collect();
        if text.chars().nth(DEMO_ECHO_MAX_CHARS).is_some() {
            quote.push('…');
        }
        format!("You wrote: \"{quote}\".")
    };
    format!(
        "Hello! I am the demo model of chatd: no AI provider is configured, so my replies \
         are canned. {quoted} Ask me what time it is, or to add 2 and 3,{files} to see a \
         tool call. Configure a provider (or set OPENAI_API_KEY or ANTHROPIC_API_KEY) to \
         chat with a real model.",
        files = if workspace {
            " or to create hello.txt saying hi,"
        } else {
            ""
        }
    )
}

/// The demo's answer after tool results: what each tool returned.
fn summarize_results(message: &Message) -> String {
    let sentences: Vec<String> = message
        .content
        .iter()
        .filter_map(|p| match p {
            Part::ToolResult {
                name,
                output,
                is_error,
                ..
            } => Some(result_sentence(name, output, *is_error)),
            _ => None,
        })
        .collect();
    if sentences.is_empty() {
        return "The tool returned nothing.".to_owned();
    }
    sentences.join(" ")
}

fn result_sentence(name: &str, output: &RawJson, is_error: bool) -> String {
    let value = output.to_value();
    // Strings read better without their JSON quotes.
    let shown = match &value {
        serde_json::Value::String(s) => s.clone(),
        _ => output.get().to_owned(),
    };
    match (name, is_error) {
        (_, true) => format!("The {name} tool failed: {shown}"),
        (CURRENT_TIME_TOOL, false) => {
            format!("The current time is {shown} (from the demo {CURRENT_TIME_TOOL} tool).")
        }
        (ADD_TOOL, false) => format!("The sum is {shown} (from the demo {ADD_TOOL} tool)."),
        (READ_FILE_TOOL, false) => {
            let path = value
                .get("path")
                .and_then(|p| p.as_str())
                .unwrap_or("the file");
            let content = value.get("content").and_then(|c| c.as_str()).unwrap_or("");
            // The numbered lines without their numbers: what the file holds.
            let text: Vec<&str> = content
                .lines()
                .map(|l| l.split_once('\t').map_or(l, |(_, rest)| rest))
                .collect();
            format!(
                "I wrote {path} in your workspace and read it back; it says:\n\n```\n{}\n```",
                text.join("\n")
            )
        }
        _ => format!("The {name} tool returned {shown}."),
    }
}

/// The demo model's tools: [`CURRENT_TIME_TOOL`] and [`ADD_TOOL`].
pub fn demo_tools() -> Vec<Arc<dyn Tool>> {
    vec![Arc::new(CurrentTime), Arc::new(Add)]
}

/// The demo tools as a registry, for embedders that want them as built-ins of every turn.
/// The server does not register them: they come with the demo model ([`demo_tools`]).
pub fn tools() -> ToolRegistry {
    let mut registry = ToolRegistry::new();
    for tool in demo_tools() {
        // The names are constants that pass the registry's rules; a failure here is a
        // programming error worth a log line, not a server that refuses to start.
        if let Err(e) = registry.register(tool) {
            tracing::error!(error = %e, "registering a built-in tool failed");
        }
    }
    registry
}

/// No arguments.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct NoArgs {}

/// `current_time`: the current UTC time as an RFC 3339 string.
#[derive(Debug)]
struct CurrentTime;

#[async_trait::async_trait]
impl Tool for CurrentTime {
    fn name(&self) -> &str {
        CURRENT_TIME_TOOL
    }

    fn description(&self) -> &str {
        "Returns the current date and time in UTC as an RFC 3339 timestamp."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<NoArgs>()
    }

    async fn run(&self, _ctx: ToolContext, _args: RawJson) -> ToolOutput {
        ToolOutput::json(&Timestamp::now())
    }
}

/// Arguments of `add`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// First addend.
    a: i64,
    /// Second addend.
    b: i64,
}

/// `add`: the sum of two 64-bit integers.
#[derive(Debug)]
struct Add;

#[async_trait::async_trait]
impl Tool for Add {
    fn name(&self) -> &str {
        ADD_TOOL
    }

    fn description(&self) -> &str {
        "Adds two integers and returns their sum."
    }

    fn parameters(&self) -> schemars::Schema {
        schema_for::<AddArgs>()
    }

    async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
        match parse_arguments::<AddArgs>(&args) {
            Ok(AddArgs { a, b }) => match a.checked_add(b) {
                Some(sum) => ToolOutput::json(&sum),
                None => ToolOutput::error("The sum does not fit in a 64-bit integer."),
            },
            Err(invalid) => invalid,
        }
    }
}
