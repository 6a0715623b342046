//! Sub-agent chats (docs/subagents.md): a child created under its root chat, what kind of
//! child a chat is, its report (the last assistant text), and a parent's busy children.

use codersdk::{
    Chat, ChatMessage, ChatMessagePart, ChatMessagePartType, ChatMessageRole, ChatStatus, Uuid,
};
use sqlx::Row;

use super::chats::{insert_message, json_text, message_from_row, MESSAGE_COLUMNS};
use super::{get_bool, get_opt_uuid, now_micros, uuid_text, MessageVisibility, NewMessage, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};
use crate::subagents::{SubagentType, ARCHIVED_PARENT_MESSAGE, NESTED_SUBAGENT_MESSAGE};

/// A child chat to create with [`Store::create_subagent`]. Organization, owner, workspace
/// and client type come from the parent, under its lock.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewSubagent {
    /// The root chat spawning it.
    pub parent_chat_id: Uuid,
    /// `general` or `explore` (`computer_use` is refused).
    pub subagent_type: SubagentType,
    /// Title.
    pub title: String,
    /// Model config of its turns.
    pub model_config_id: Uuid,
    /// Reasoning effort for its turns, when the parent asked for one.
    pub reasoning_effort: Option<String>,
    /// Its MCP server selection (an explore child's is its parent's snapshot).
    pub mcp_server_ids: Vec<Uuid>,
    /// Its first user message: the parent's instructions.
    pub prompt_parts: Vec<ChatMessagePart>,
}

impl NewSubagent {
    /// A child of `parent_chat_id` of `subagent_type`, running `model_config_id`, whose
    /// first message is `prompt_parts`; no reasoning effort, no MCP servers.
    pub fn new(
        parent_chat_id: Uuid,
        subagent_type: SubagentType,
        title: impl Into<String>,
        model_config_id: Uuid,
        prompt_parts: Vec<ChatMessagePart>,
    ) -> Self {
        NewSubagent {
            parent_chat_id,
            subagent_type,
            title: title.into(),
            model_config_id,
            reasoning_effort: None,
            mcp_server_ids: Vec::new(),
            prompt_parts,
        }
    }

    /// Sets the reasoning effort.
    pub fn with_reasoning_effort(mut self, effort: Option<String>) -> Self {
        self.reasoning_effort = effort;
        self
    }

    /// Sets the MCP server selection.
    pub fn with_mcp_server_ids(mut self, ids: Vec<Uuid>) -> Self {
        self.mcp_server_ids = ids;
        self
    }
}

/// What makes a chat a sub-agent, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubagentInfo {
    /// Its parent.
    pub parent_chat_id: Uuid,
    /// Its kind.
    pub subagent_type: SubagentType,
    /// The reasoning effort its turns request, if any.
    pub reasoning_effort: Option<String>,
}

/// The statuses a child is "running" in for `wait_agent`: it has work ahead of it.
pub(crate) fn is_running_state(status: &ChatStatus) -> bool {
    matches!(status, ChatStatus::Pending | ChatStatus::Running)
}

/// The stored `mode` text of a child of `kind`.
fn mode_text(kind: SubagentType) -> &'static str {
    kind.as_str()
}

/// The sub-agent facts of a row carrying `parent_chat_id`, `mode` and `reasoning_effort`;
/// `None` for a root chat.
pub(super) fn subagent_from_row(row: &sqlx::any::AnyRow) -> Result<Option<SubagentInfo>> {
    let Some(parent_chat_id) = get_opt_uuid(row, "parent_chat_id")? else {
        return Ok(None);
    };
    let mode: String = row.try_get("mode").db()?;
    // A child stored before it had a mode (none exist: children came with this column) or
    // with a mode this version does not know runs as a general helper, the least special.
    let subagent_type = match SubagentType::parse(&mode) {
        Some(SubagentType::Explore) => SubagentType::Explore,
        _ => SubagentType::General,
    };
    Ok(Some(SubagentInfo {
        parent_chat_id,
        subagent_type,
        reasoning_effort: row.try_get("reasoning_effort").db()?,
    }))
}

impl Store {
    /// Creates a child of `new.parent_chat_id` in one transaction under the parent's lock:
    /// status `pending`, `parent_chat_id` and `root_chat_id` the parent, the parent's
    /// organization, owner, workspace and client type, and the first user message
    /// (visibility `both`, authored by the owner). A general child of a planning parent
    /// plans too (read-only, engine.md §8.2); an explore child never does.
    ///
    /// Refusals: [`ErrorKind::NotFound`] when the parent does not exist;
    /// [`ErrorKind::InvalidArgument`] when it is a sub-agent itself
    /// ([`NESTED_SUBAGENT_MESSAGE`]), archived ([`ARCHIVED_PARENT_MESSAGE`]), or the type is
    /// `computer_use`.
    pub async fn create_subagent(&self, new: NewSubagent) -> Result<(Chat, ChatMessage)> {
        if new.subagent_type == SubagentType::ComputerUse {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                crate::subagents::COMPUTER_USE_UNAVAILABLE_MESSAGE,
            ));
        }
        let id = Uuid::new_v4();
        let now = now_micros();
        let mcp = json_text(serde_json::to_string(&new.mcp_server_ids), "mcp_server_ids")?;
        let mut tx = self.begin_chat_tx(new.parent_chat_id).await?;
        let result = async {
            let parent = sqlx::query(
                "SELECT owner_id, parent_chat_id, archived FROM chats WHERE id = $1",
            )
            .bind(uuid_text(new.parent_chat_id))
            .fetch_one(tx.conn())
            .await
            .db()?;
            if get_opt_uuid(&parent, "parent_chat_id")?.is_some() {
                return Err(Error::new(ErrorKind::InvalidArgument, NESTED_SUBAGENT_MESSAGE));
            }
            if get_bool(&parent, "archived")? {
                return Err(Error::new(ErrorKind::InvalidArgument, ARCHIVED_PARENT_MESSAGE));
            }
            let owner: String = parent.try_get("owner_id").db()?;
            // Everything the child shares with its parent is copied by the statement itself,
            // from the row this transaction holds locked.
            sqlx::query(
                "INSERT INTO chats (id, organization_id, owner_id, workspace_id, parent_chat_id, \
                 root_chat_id, last_model_config_id, title, status, plan_mode, mcp_server_ids, \
                 client_type, dynamic_tools, system_prompt, mode, reasoning_effort, created_at, \
                 updated_at) \
                 SELECT $1, organization_id, owner_id, workspace_id, id, id, $3, $4, $5, \
                 CASE WHEN $7 = 'explore' THEN '' ELSE plan_mode END, $6, client_type, NULL, '', $7, $8, $9, $9 FROM chats WHERE id = $2",
            )
            .bind(uuid_text(id))
            .bind(uuid_text(new.parent_chat_id))
            .bind(uuid_text(new.model_config_id))
            .bind(&new.title)
            .bind(ChatStatus::Pending.as_str())
            .bind(&mcp)
            .bind(mode_text(new.subagent_type))
            .bind(new.reasoning_effort.as_deref())
            .bind(now)
            .execute(tx.conn())
            .await
            .db()?;
            insert_message(
                tx.conn(),
                id,
                now,
                NewMessage {
                    role: ChatMessageRole::User,
                    parts: new.prompt_parts,
                    visibility: MessageVisibility::Both,
                    created_by: Some(super::parse_uuid(&owner)?),
                    model_config_id: Some(new.model_config_id),
                    usage: None,
                },
            )
            .await
        }
        .await;
        let message = tx.finish(result).await?;
        let chat = self
            .get_chat(id)
            .await?
            .ok_or_else(|| super::chat_not_found(id))?;
        Ok((chat, message))
    }

    /// What makes chat `chat_id` a sub-agent; `None` for a root chat or no such chat.
    pub async fn subagent_info(&self, chat_id: Uuid) -> Result<Option<SubagentInfo>> {
        let row =
            sqlx::query("SELECT parent_chat_id, mode, reasoning_effort FROM chats WHERE id = $1")
                .bind(uuid_text(chat_id))
                .fetch_optional(self.pool())
                .await
                .db()?;
        match row {
            Some(row) => subagent_from_row(&row),
            None => Ok(None),
        }
    }

    /// The report of chat `chat_id`: the text parts of its newest assistant message (not
    /// deleted), joined by blank lines; `None` when it has no assistant message yet. A
    /// newest message with tool calls only reports `Some("")`: the child stopped before it
    /// wrote an answer.
    pub async fn last_assistant_text(&self, chat_id: Uuid) -> Result<Option<String>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE chat_id = $1 AND role = $2 \
             AND deleted = 0 ORDER BY id DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(chat_id))
            .bind(ChatMessageRole::Assistant.as_str())
            .fetch_optional(self.pool())
            .await
            .db()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let message = message_from_row(&row)?;
        let text = message
            .content
            .iter()
            .filter(|p| p.part_type == ChatMessagePartType::Text)
            .map(|p| p.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n");
        Ok(Some(text))
    }

    /// The children of `parent_chat_id` that have work in progress (`pending`, `running`
    /// or `requires_action`), in id order: what interrupting the parent interrupts.
    pub async fn busy_children(&self, parent_chat_id: Uuid) -> Result<Vec<Uuid>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM chats WHERE parent_chat_id = $1 AND status IN ($2, $3, $4) \
             ORDER BY id",
        )
        .bind(uuid_text(parent_chat_id))
        .bind(ChatStatus::Pending.as_str())
        .bind(ChatStatus::Running.as_str())
        .bind(ChatStatus::RequiresAction.as_str())
        .fetch_all(self.pool())
        .await
        .db()?;
        rows.iter().map(|id| super::parse_uuid(id)).collect()
    }
}
