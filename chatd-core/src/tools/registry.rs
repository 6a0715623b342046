//! The process's tools ([`ToolRegistry`]) and the tool set of one turn ([`TurnTools`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chatprovider::ToolDefinition;
use codersdk::{Chat, ChatPlanMode, DynamicTool, RawJson, Uuid};

use super::Tool;
use crate::error::{Error, ErrorKind, Result};

/// What a turn's tool selection depends on: whose chat it is and which mode it runs in.
///
/// Built by the engine once per turn (usually with [`TurnContext::for_chat`]) and shared
/// with every tool call of the turn through [`super::ToolContext::turn`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnContext {
    /// The chat running the turn.
    pub chat_id: Uuid,
    /// Its owner: the user the tools act for.
    pub owner_id: Uuid,
    /// The parent of a sub-agent chat; `None` for a root chat.
    pub parent_chat_id: Option<Uuid>,
    /// The workspace the chat is bound to.
    pub workspace_id: Option<Uuid>,
    /// The chat is in plan mode.
    pub plan_mode: bool,
    /// The chat is an explore sub-agent: read-only investigation.
    pub explore: bool,
}

impl TurnContext {
    /// A root chat's turn in normal mode.
    pub fn new(chat_id: Uuid, owner_id: Uuid) -> Self {
        TurnContext {
            chat_id,
            owner_id,
            parent_chat_id: None,
            workspace_id: None,
            plan_mode: false,
            explore: false,
        }
    }

    /// The turn context of `chat` as stored: its ids, workspace, parent and plan mode.
    pub fn for_chat(chat: &Chat) -> Self {
        TurnContext {
            chat_id: chat.id,
            owner_id: chat.owner_id,
            parent_chat_id: chat.parent_chat_id,
            workspace_id: chat.workspace_id,
            plan_mode: chat.plan_mode == Some(ChatPlanMode::Plan),
            explore: false,
        }
    }

    /// Sets plan mode.
    pub fn with_plan_mode(mut self, plan_mode: bool) -> Self {
        self.plan_mode = plan_mode;
        self
    }

    /// Makes this an explore sub-agent's turn (read-only tools).
    pub fn with_explore(mut self, explore: bool) -> Self {
        self.explore = explore;
        self
    }

    /// Makes this a sub-agent turn of `parent`.
    pub fn with_parent_chat(mut self, parent: Uuid) -> Self {
        self.parent_chat_id = Some(parent);
        self
    }

    /// Binds the turn to a workspace.
    pub fn with_workspace(mut self, workspace: Uuid) -> Self {
        self.workspace_id = Some(workspace);
        self
    }

    /// Whether this is a sub-agent chat's turn.
    pub fn is_subagent(&self) -> bool {
        self.parent_chat_id.is_some()
    }
}

/// Decides, per turn, which tools are active: the hook where modes (plan, explore,
/// sub-agent) restrict the tool set without the loop knowing about them.
///
/// A tool that a policy rejects stays known: the model is not offered it, and a call to
/// it is answered "Tool not active in this turn" rather than "Tool not found".
pub trait ToolPolicy: Send + Sync + fmt::Debug {
    /// Whether `tool` (already [`Tool::available`] for `turn`) is active in `turn`.
    fn allows(&self, tool: &dyn Tool, turn: &TurnContext) -> bool;

    /// Whether the chat's client-executed dynamic tools are offered in `turn`. They are
    /// never offered in plan mode or to explore sub-agents, whatever this says.
    fn allows_dynamic_tools(&self, turn: &TurnContext) -> bool {
        let _ = turn;
        true
    }
}

/// The policy that restricts nothing beyond each tool's own [`Tool::available`]; the
/// default of a [`ToolRegistry`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl ToolPolicy for AllowAll {
    fn allows(&self, _tool: &dyn Tool, _turn: &TurnContext) -> bool {
        true
    }
}

/// A tool with its definition computed and checked once.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) tool: Arc<dyn Tool>,
    pub(super) definition: ToolDefinition,
}

impl Entry {
    /// Checks the name and schema with the rules dynamic tools follow (what providers
    /// accept) and computes the model-facing definition.
    fn new(tool: Arc<dyn Tool>) -> Result<Self> {
        let name = tool.name().to_owned();
        let invalid = |detail: String| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("tool {name:?} cannot be registered: {detail}"),
            )
        };
        let input_schema = RawJson::from_value(tool.parameters().as_value())
            .map_err(|e| invalid(format!("its parameters schema is unusable: {e}")))?;
        let definition = ToolDefinition {
            name: name.clone(),
            description: tool.description().to_owned(),
            input_schema,
        };
        let as_declared = DynamicTool {
            name: definition.name.clone(),
            description: definition.description.clone(),
            input_schema: definition.input_schema.clone(),
        };
        if let Err(response) = codersdk::validate_dynamic_tools(std::slice::from_ref(&as_declared))
        {
            let detail = response
                .validations
                .into_iter()
                .map(|v| v.detail)
                .collect::<Vec<_>>()
                .join(" ");
            return Err(invalid(detail));
        }
        Ok(Entry { tool, definition })
    }
}

/// The server-side tools of a process, by unique name, and the [`ToolPolicy`] that picks
/// each turn's active ones.
///
/// Built once at start-up; cheap to clone (tools are shared).
#[derive(Debug, Clone)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Entry>,
    policy: Arc<dyn ToolPolicy>,
}

impl Default for ToolRegistry {
    fn default() -> Self {
        ToolRegistry {
            tools: BTreeMap::new(),
            policy: Arc::new(AllowAll),
        }
    }
}

impl ToolRegistry {
    /// An empty registry with the [`AllowAll`] policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool.
    ///
    /// Errors: [`ErrorKind::Conflict`] when a tool of that name is registered already;
    /// [`ErrorKind::InvalidArgument`] when the name is not 1 to 64 ASCII letters, digits,
    /// `_` and `-`, or the parameters schema is not an object schema.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<()> {
        if self.tools.contains_key(tool.name()) {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("a tool named {:?} is registered already", tool.name()),
            ));
        }
        let entry = Entry::new(tool)?;
        self.tools.insert(entry.definition.name.clone(), entry);
        Ok(())
    }

    /// [`register`](Self::register) for building a registry in one expression.
    pub fn with_tool(mut self, tool: Arc<dyn Tool>) -> Result<Self> {
        self.register(tool)?;
        Ok(self)
    }

    /// Replaces the policy that decides each turn's active tools.
    pub fn with_policy(mut self, policy: Arc<dyn ToolPolicy>) -> Self {
        self.policy = policy;
        self
    }

    /// The tool named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name).map(|e| &e.tool)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// How many tools are registered.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// Whether no tool is registered.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Starts the tool set of one turn.
    pub fn turn_tools(&self, turn: TurnContext) -> TurnToolsBuilder<'_> {
        TurnToolsBuilder {
            registry: self,
            turn,
            extra: Vec::new(),
            dynamic: Vec::new(),
            model: Vec::new(),
        }
    }

    /// What a chat's creation answer says about its dynamic tools: one warning for each
    /// tool whose name a registered tool has. The registered tool wins every such clash
    /// (the dynamic one is never offered, and a call of that name runs on the server), so
    /// the client is told rather than left to wonder why its tool is never called.
    pub fn dynamic_tool_warnings(&self, dynamic: &[DynamicTool]) -> Vec<String> {
        dynamic
            .iter()
            .filter(|t| self.tools.contains_key(&t.name))
            .map(|t| {
                format!(
                    "Dynamic tool {:?} will not be offered: the server has a built-in tool \
                     of that name, which takes precedence.",
                    t.name
                )
            })
            .collect()
    }
}

/// Assembles a turn's tools: registered tools first, then the turn's own
/// tools in the order given (skills before admin MCP before workspace MCP), then the
/// chat's dynamic tools, then the tools the turn's model brings. An earlier name wins
/// every clash.
#[derive(Debug)]
#[must_use = "call build() to get the turn's tools"]
pub struct TurnToolsBuilder<'a> {
    registry: &'a ToolRegistry,
    turn: TurnContext,
    extra: Vec<Arc<dyn Tool>>,
    dynamic: Vec<DynamicTool>,
    model: Vec<Arc<dyn Tool>>,
}

impl TurnToolsBuilder<'_> {
    /// Adds tools that exist only for this turn (skill tools, MCP servers' tools). A tool
    /// whose name is taken already, or whose name or schema is unusable, is left out with
    /// a warning in the log: a third-party server must not break the turn.
    pub fn with_tools(mut self, tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        self.extra.extend(tools);
        self
    }

    /// Adds the chat's client-executed tools. One whose name a server-side
    /// tool already has is ignored (the server-side tool wins); in plan mode all of them
    /// are inactive.
    pub fn with_dynamic_tools(mut self, tools: impl IntoIterator<Item = DynamicTool>) -> Self {
        self.dynamic.extend(tools);
        self
    }

    /// Adds the tools that come with the turn's model
    /// ([`ResolvedModel::tools`](crate::ResolvedModel::tools), such as a stand-in model's
    /// demo tools). They rank last: one whose name any other tool of the turn has —
    /// registered, the turn's own, or the chat's dynamic tools — is left out, so a model's
    /// tools never shadow a client's.
    pub fn with_model_tools(mut self, tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        self.model.extend(tools);
        self
    }

    /// The turn's tool set.
    pub fn build(self) -> TurnTools {
        let TurnToolsBuilder {
            registry,
            turn,
            extra,
            dynamic,
            model,
        } = self;
        let policy = &*registry.policy;
        let is_active = |tool: &dyn Tool| tool.available(&turn) && policy.allows(tool, &turn);
        let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
        for (name, entry) in &registry.tools {
            let slot = if is_active(&*entry.tool) {
                Slot::Active(entry.clone())
            } else {
                Slot::Inactive
            };
            slots.insert(name.clone(), slot);
        }
        for tool in extra {
            if slots.contains_key(tool.name()) {
                tracing::warn!(
                    chat_id = %turn.chat_id,
                    tool = tool.name(),
                    "turn tool left out: an earlier tool has its name"
                );
                continue;
            }
            match Entry::new(tool) {
                Ok(entry) => {
                    let name = entry.definition.name.clone();
                    let slot = if is_active(&*entry.tool) {
                        Slot::Active(entry)
                    } else {
                        Slot::Inactive
                    };
                    slots.insert(name, slot);
                }
                Err(e) => {
                    tracing::warn!(chat_id = %turn.chat_id, error = %e, "turn tool left out");
                }
            }
        }
        // Plan turns and explore sub-agents never get client-executed tools (engine.md §8.2).
        let dynamic_on = !turn.plan_mode && !turn.explore && policy.allows_dynamic_tools(&turn);
        for tool in dynamic {
            if slots.contains_key(&tool.name) {
                continue;
            }
            let slot = if dynamic_on {
                Slot::Dynamic(ToolDefinition {
                    name: tool.name.clone(),
                    description: tool.description,
                    input_schema: tool.input_schema,
                })
            } else {
                Slot::Inactive
            };
            slots.insert(tool.name, slot);
        }
        for tool in model {
            if slots.contains_key(tool.name()) {
                continue;
            }
            match Entry::new(tool) {
                Ok(entry) => {
                    let name = entry.definition.name.clone();
                    let slot = if is_active(&*entry.tool) {
                        Slot::Active(entry)
                    } else {
                        Slot::Inactive
                    };
                    slots.insert(name, slot);
                }
                Err(e) => {
                    tracing::warn!(chat_id = %turn.chat_id, error = %e, "model tool left out");
                }
            }
        }
        TurnTools {
            turn: Arc::new(turn),
            slots,
        }
    }
}

/// What a name means in one turn.
#[derive(Debug, Clone)]
pub(super) enum Slot {
    /// A server-side tool the model may call.
    Active(Entry),
    /// A known tool that this turn's mode switched off.
    Inactive,
    /// A client-executed tool: offered to the model, never run by the engine.
    Dynamic(ToolDefinition),
}

/// The tools of one turn: what the model is offered ([`definitions`](Self::definitions))
/// and how each name is handled when called ([`execute`](Self::execute)).
#[derive(Debug, Clone)]
pub struct TurnTools {
    pub(super) turn: Arc<TurnContext>,
    pub(super) slots: BTreeMap<String, Slot>,
}

impl TurnTools {
    /// The turn these tools belong to.
    pub fn turn(&self) -> &Arc<TurnContext> {
        &self.turn
    }

    /// The definitions to send to the model: active server-side tools and dynamic tools,
    /// sorted by name so the request (and the provider's prompt cache) is the same for the
    /// same tool set.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.slots
            .values()
            .filter_map(|slot| match slot {
                Slot::Active(entry) => Some(entry.definition.clone()),
                Slot::Dynamic(def) => Some(def.clone()),
                Slot::Inactive => None,
            })
            .collect()
    }

    /// Whether `name` is a server-side tool the model may call in this turn.
    pub fn is_active(&self, name: &str) -> bool {
        matches!(self.slots.get(name), Some(Slot::Active(_)))
    }

    /// Whether `name` is a client-executed tool offered in this turn.
    pub fn is_dynamic(&self, name: &str) -> bool {
        matches!(self.slots.get(name), Some(Slot::Dynamic(_)))
    }

    /// Whether `name` is known but switched off in this turn.
    pub fn is_inactive(&self, name: &str) -> bool {
        matches!(self.slots.get(name), Some(Slot::Inactive))
    }
}
