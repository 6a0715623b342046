//! The tools a model can call during a turn.
//!
//! - A [`Tool`] is one server-side capability: a name, a description, a JSON Schema of its
//!   arguments ([`schema_for`] derives one from an args struct), and an async
//!   [`Tool::run`] that turns arguments into a [`ToolOutput`]. A tool may declare its own
//!   per-call timeout ([`DEFAULT_TOOL_TIMEOUT`] otherwise) and whether the turn ends after
//!   it ran ([`Tool::stops_turn`]).
//! - A [`ToolRegistry`] holds the process's tools by unique name, plus a [`ToolPolicy`]
//!   that decides per turn which of them are active.
//! - [`ToolRegistry::turn_tools`] builds the [`TurnTools`] of one turn from a
//!   [`TurnContext`]: the active registered tools, tools that exist only for this turn
//!   (skills, MCP servers) and the chat's client-executed dynamic tools. It yields the
//!   [`chatprovider::ToolDefinition`]s sent to the model and executes a step's calls.
//! - [`TurnTools::execute`] runs a step's calls concurrently and yields each result part in
//!   call order as soon as it and every earlier one are done ([`ToolExecution`]); unknown,
//!   inactive, failing, panicking, timed-out and interrupted calls all become error results
//!   of one shape ([`codersdk::ChatMessagePart::tool_error`]), and oversized outputs are
//!   truncated to [`MAX_TOOL_OUTPUT_BYTES`].
//!
//! See docs/tools.md for the decisions behind these rules.

mod execute;
mod registry;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use codersdk::{RawJson, Uuid};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use execute::{
    interrupted_result_part, timed_out_message, StepToolResults, ToolCallOutcome, ToolCallResult,
    ToolExecution, MAX_TOOL_OUTPUT_BYTES, TOOL_ARGUMENTS_INVALID_MESSAGE, TOOL_INTERRUPTED_MESSAGE,
    TOOL_NOT_ACTIVE_MESSAGE, TOOL_NOT_FOUND_MESSAGE, TOOL_PANICKED_MESSAGE,
};
pub use registry::{AllowAll, ToolPolicy, ToolRegistry, TurnContext, TurnTools, TurnToolsBuilder};

/// How long one call of a tool may run unless the tool declares otherwise
/// ([`Tool::timeout`]): 60 s, the budget of an MCP tool call.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// A capability the model can call, executed by the engine.
///
/// Implementations must be cheap to share (`Arc<dyn Tool>`); per-call state lives in
/// [`ToolContext`] and the arguments. When the turn is interrupted or the call times out,
/// the engine drops the `run` future and cancels [`ToolContext::cancel`]; a tool that
/// starts work outside its future (spawned tasks, child processes) must stop it on that
/// token. A tool that blocks its thread without awaiting cannot be stopped: use
/// `tokio::task::spawn_blocking` for blocking work.
///
/// ```
/// use chatd_core::tools::{parse_arguments, schema_for, Tool, ToolContext, ToolOutput};
/// use codersdk::RawJson;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct AddArgs {
///     /// First addend.
///     a: i64,
///     /// Second addend.
///     b: i64,
/// }
///
/// #[derive(Debug)]
/// struct Add;
///
/// #[async_trait::async_trait]
/// impl Tool for Add {
///     fn name(&self) -> &str {
///         "add"
///     }
///     fn description(&self) -> &str {
///         "Adds two integers."
///     }
///     fn parameters(&self) -> schemars::Schema {
///         schema_for::<AddArgs>()
///     }
///     async fn run(&self, _ctx: ToolContext, args: RawJson) -> ToolOutput {
///         match parse_arguments::<AddArgs>(&args) {
///             Ok(a) => ToolOutput::json(&a.a.saturating_add(a.b)),
///             Err(invalid) => invalid,
///         }
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Tool: Send + Sync + fmt::Debug {
    /// The name the model calls it by: 1 to 64 ASCII letters, digits, `_` and `-` (what
    /// every provider accepts), unique in a [`ToolRegistry`].
    fn name(&self) -> &str;

    /// What the tool does and when to use it, for the model.
    fn description(&self) -> &str;

    /// JSON Schema of the arguments: an object schema. [`schema_for`] derives it from a
    /// `schemars::JsonSchema` args struct.
    fn parameters(&self) -> schemars::Schema;

    /// Runs one call. `args` is the JSON the model sent (already checked to be valid
    /// JSON); [`parse_arguments`] decodes it into an args struct. Failures the model should
    /// read are returned as [`ToolOutput::error`], never as panics.
    async fn run(&self, ctx: ToolContext, args: RawJson) -> ToolOutput;

    /// How long one call may run before the engine gives up on it and answers with
    /// [`timed_out_message`]. Tools that wait on purpose (for a sub-agent, say) declare
    /// their own budget.
    fn timeout(&self) -> Duration {
        DEFAULT_TOOL_TIMEOUT
    }

    /// Whether a successful call ends the turn after the step: the
    /// model stops so the user can answer (`ask_user_question`) or approve
    /// (`propose_plan`).
    fn stops_turn(&self) -> bool {
        false
    }

    /// Whether the tool is available in this turn at all (its own mode rule, such as
    /// "only on plan turns"). The registry's [`ToolPolicy`] may restrict further.
    fn available(&self, turn: &TurnContext) -> bool {
        let _ = turn;
        true
    }

    /// The admin MCP server the tool comes from; copied onto its result parts so the UI
    /// can attribute them.
    fn mcp_server_config_id(&self) -> Option<Uuid> {
        None
    }
}

/// What a tool call gets besides its arguments.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ToolContext {
    /// The turn the call belongs to: chat, owner, mode.
    pub turn: Arc<TurnContext>,
    /// The model's id of this call.
    pub tool_call_id: String,
    /// Cancelled when the turn is interrupted or the call timed out; the call's future is
    /// dropped right after, so this matters for work the tool started on its own (spawned
    /// tasks, child processes).
    pub cancel: CancellationToken,
}

impl ToolContext {
    /// A context for one call (the engine makes these; tests of a tool may too).
    pub fn new(
        turn: Arc<TurnContext>,
        tool_call_id: impl Into<String>,
        cancel: CancellationToken,
    ) -> Self {
        ToolContext {
            turn,
            tool_call_id: tool_call_id.into(),
            cancel,
        }
    }

    /// The chat whose turn made the call.
    pub fn chat_id(&self) -> Uuid {
        self.turn.chat_id
    }

    /// The owner of that chat: the user the tool acts for.
    pub fn owner_id(&self) -> Uuid {
        self.turn.owner_id
    }
}

/// The result of one tool call: any JSON, and whether it reports a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// The result the model reads.
    pub result: RawJson,
    /// The call failed; the model reads `result` as the reason.
    pub is_error: bool,
}

impl ToolOutput {
    /// A successful result.
    pub fn ok(result: RawJson) -> Self {
        ToolOutput {
            result,
            is_error: false,
        }
    }

    /// A successful result serialized from `value`; a value that cannot be encoded as
    /// JSON (a map with non-string keys, say) becomes an error result that says so.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        match RawJson::from_value(value) {
            Ok(result) => ToolOutput::ok(result),
            Err(e) => ToolOutput::error(format!("The tool's output could not be encoded: {e}")),
        }
    }

    /// A successful result that is a JSON string.
    pub fn text(text: impl AsRef<str>) -> Self {
        ToolOutput::json(text.as_ref())
    }

    /// A failure: `{"error": message}` with `is_error` set, the same shape as the
    /// engine's own error results.
    pub fn error(message: impl AsRef<str>) -> Self {
        let part = codersdk::ChatMessagePart::tool_error("", "", message);
        ToolOutput {
            result: part.result.unwrap_or_else(RawJson::null),
            is_error: true,
        }
    }
}

/// Decodes a call's arguments into `T`, or an error [`ToolOutput`] that tells the model
/// what was wrong ("Invalid arguments: missing field `path` …") so it can call again.
pub fn parse_arguments<T: DeserializeOwned>(args: &RawJson) -> Result<T, ToolOutput> {
    args.parse()
        .map_err(|e| ToolOutput::error(format!("Invalid arguments: {e}")))
}

/// The JSON Schema of an args struct, in the shape model providers accept: no `$schema`
/// meta key and no root `title` (noise in every request), sub-schemas inlined where
/// possible (some providers do not resolve `$ref`). Doc comments on the fields become
/// their `description`s.
pub fn schema_for<T: schemars::JsonSchema>() -> schemars::Schema {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| {
            s.meta_schema = None;
            s.inline_subschemas = true;
        })
        .into_generator()
        .into_root_schema_for::<T>();
    schema.remove("title");
    schema
}
