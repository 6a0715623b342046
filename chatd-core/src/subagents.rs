//! Sub-agents (docs/subagents.md): the kinds of child chat a root chat can spawn, the names
//! of the four subagent tools, and their limits.
//!
//! The tools themselves run inside the engine (they create, message, wait on and interrupt
//! chats); this module holds what embedders and clients may want to name: the tool names
//! (a contract, DECISIONS.md §6), the types, the wait budget and the refusal messages.

use std::time::Duration;

/// Name of the tool that creates a child chat.
pub const SPAWN_SUBAGENT_TOOL: &str = "spawn_subagent";
/// Name of the tool that waits for a child to stop running and returns its report.
pub const WAIT_AGENT_TOOL: &str = "wait_agent";
/// Name of the tool that sends a child a message (queued, or interrupting it).
pub const MESSAGE_AGENT_TOOL: &str = "message_agent";
/// Name of the tool that interrupts a child.
pub const CLOSE_AGENT_TOOL: &str = "close_agent";

/// How long `wait_agent` waits when the call names no `timeout_seconds`: 5 minutes
/// (engine.md §8.3).
pub const DEFAULT_WAIT_AGENT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The longest wait a `wait_agent` call may ask for: 30 minutes. Larger values are clamped
/// to it, so one call cannot hold its parent's turn (and its root-chat slot) for hours.
pub const MAX_WAIT_AGENT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How often `wait_agent` re-reads the child's status besides the status events it
/// listens to: a slow safety net for events this process never sees (the child runs on
/// another replica) or a subscription that lagged.
pub const WAIT_AGENT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Most bytes of a `spawn_subagent` prompt or a `message_agent` message: 64 KiB. The text
/// becomes a user message of the child; a longer one is refused with an error result.
pub const MAX_SUBAGENT_MESSAGE_BYTES: usize = 64 * 1024;

/// Most runes of a `spawn_subagent` title given by the model; a longer one is cut (the
/// fallback title of the prompt has the same bound).
pub const MAX_SUBAGENT_TITLE_RUNES: usize = crate::title::MAX_TITLE_RUNES;

/// Error result of `spawn_subagent` asked for a `computer_use` child.
pub const COMPUTER_USE_UNAVAILABLE_MESSAGE: &str = "Sub-agent type \"computer_use\" is not \
available: it needs a computer-use capable provider and a desktop, which this deployment \
does not have. Use \"general\" or \"explore\".";

/// Refusal of a spawn by a chat that is itself a sub-agent: the tree is one level deep.
pub const NESTED_SUBAGENT_MESSAGE: &str =
    "Sub-agents cannot spawn sub-agents; only a root chat can.";

/// Refusal of a spawn under an archived chat.
pub const ARCHIVED_PARENT_MESSAGE: &str = "An archived chat cannot spawn sub-agents.";

/// Error result of `wait_agent`, `message_agent` and `close_agent` for a chat that is not
/// a child of the calling chat (or does not exist); the id follows it.
pub const NOT_A_CHILD_MESSAGE: &str = "No sub-agent of this chat has the id";

/// Refusal of a change of an explore sub-agent's plan mode or MCP servers: they are fixed
/// when it is spawned.
pub const EXPLORE_SETTINGS_FIXED_MESSAGE: &str =
    "An explore sub-agent's mode and MCP servers are fixed when it is spawned.";

/// The kind of a sub-agent chat (`subagent_type` of `spawn_subagent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubagentType {
    /// A general helper: the full tool set of a chat in its workspace, minus the
    /// root-only tools (no sub-agents of its own).
    General,
    /// Read-only investigation: `read_file`, `execute`, `process_output`, the skill tools
    /// and a snapshot of its parent's MCP servers; its mode cannot change.
    Explore,
    /// A desktop-driving agent. Never offered: it needs a computer-use provider and a
    /// desktop, which this project does not have; asking for it is an error result.
    ComputerUse,
}

impl SubagentType {
    /// The wire and stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            SubagentType::General => "general",
            SubagentType::Explore => "explore",
            SubagentType::ComputerUse => "computer_use",
        }
    }

    /// The type named `text`; `None` for anything else.
    pub fn parse(text: &str) -> Option<SubagentType> {
        match text {
            "general" => Some(SubagentType::General),
            "explore" => Some(SubagentType::Explore),
            "computer_use" => Some(SubagentType::ComputerUse),
            _ => None,
        }
    }

    /// The types `spawn_subagent` advertises and accepts.
    pub const AVAILABLE: [SubagentType; 2] = [SubagentType::General, SubagentType::Explore];
}

impl std::fmt::Display for SubagentType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn types_round_trip_and_unknown_names_are_none() {
        for t in [
            SubagentType::General,
            SubagentType::Explore,
            SubagentType::ComputerUse,
        ] {
            assert_eq!(SubagentType::parse(t.as_str()), Some(t));
        }
        assert_eq!(SubagentType::parse("Explore"), None);
        assert_eq!(SubagentType::parse(""), None);
        assert!(!SubagentType::AVAILABLE.contains(&SubagentType::ComputerUse));
    }
}
