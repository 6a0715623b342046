//! The tools of one turn: which the model may call, and running a step's calls.

use chatprovider::{ToolCall, ToolDefinition};
use codersdk::{ChatMessagePart, ChatStreamToolCall, DynamicTool, Uuid};
use tokio_util::sync::CancellationToken;

use super::Inner;
use crate::store::TurnInputs;

/// Result text of a call to a tool the turn does not know (engine.md §4.5).
pub const TOOL_NOT_FOUND_MESSAGE: &str = "Tool not found";

/// What a tool call runs with.
#[derive(Debug, Clone)]
pub(crate) struct ToolContext {
    pub(crate) chat_id: Uuid,
    pub(crate) owner_id: Uuid,
    pub(crate) cancel: CancellationToken,
}

impl ToolContext {
    pub(crate) fn new(chat_id: Uuid, owner_id: Uuid, cancel: CancellationToken) -> Self {
        ToolContext {
            chat_id,
            owner_id,
            cancel,
        }
    }
}

/// The executed half of a step's tool calls.
#[derive(Debug, Default)]
pub(crate) struct Executed {
    /// One result per executed call, in call order.
    pub(crate) results: Vec<ChatMessagePart>,
    /// Dynamic calls left for the client.
    pub(crate) pending: Vec<ChatStreamToolCall>,
    /// A stop-after tool ran: the turn ends after this step.
    pub(crate) stop_after: bool,
}

/// The tool set of one turn.
#[derive(Debug)]
pub(crate) struct TurnTools {
    dynamic: Vec<DynamicTool>,
}

impl TurnTools {
    pub(crate) fn for_turn(_inner: &Inner, inputs: &TurnInputs) -> Self {
        TurnTools {
            dynamic: inputs.dynamic_tools.clone(),
        }
    }

    pub(crate) fn definitions(&self) -> Vec<ToolDefinition> {
        self.dynamic
            .iter()
            .map(|t| ToolDefinition {
                name: t.name.clone(),
                description: t.description.clone(),
                input_schema: t.input_schema.clone(),
            })
            .collect()
    }

    pub(crate) async fn execute<F>(
        &self,
        calls: &[ToolCall],
        _ctx: ToolContext,
        mut on_result: F,
    ) -> Executed
    where
        F: FnMut(usize, &ChatMessagePart),
    {
        let mut out = Executed::default();
        for call in calls {
            if self.dynamic.iter().any(|t| t.name == call.name) {
                out.pending.push(ChatStreamToolCall {
                    tool_call_id: call.id.clone(),
                    tool_name: call.name.clone(),
                    args: call.arguments.clone(),
                });
                continue;
            }
            let part = ChatMessagePart::tool_error(&call.id, &call.name, TOOL_NOT_FOUND_MESSAGE);
            on_result(out.results.len(), &part);
            out.results.push(part);
        }
        out
    }
}
