//! Chats and their messages.

use std::collections::BTreeMap;

use codersdk::{
    decode_message_content, encode_message_content, Chat, ChatClientType, ChatError, ChatMessage,
    ChatMessagePart, ChatMessageRole, ChatMessageUsage, ChatPlanMode, ChatStatus, DynamicTool,
    MessagePage, Uuid, CURRENT_CONTENT_VERSION,
};
use sqlx::any::AnyRow;
use sqlx::Row;
use sqlx::{Any, AnyConnection};

use super::{
    get_bool, get_opt_uuid, get_time, get_uuid, now_micros, timestamp_from_micros, uuid_text,
    ChatTx, Store,
};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Who sees a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageVisibility {
    /// Sent to the model only.
    Model,
    /// Shown to the user only.
    User,
    /// Sent to the model and shown to the user.
    Both,
}

impl MessageVisibility {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageVisibility::Model => "model",
            MessageVisibility::User => "user",
            MessageVisibility::Both => "both",
        }
    }
}

/// A chat to create with [`Store::create_chat`]. Inputs are assumed validated by the caller
/// (codersdk's request validators); the store only enforces what the schema does.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChat {
    /// Owning organization; must exist.
    pub organization_id: Uuid,
    /// Owner; must exist.
    pub owner_id: Uuid,
    /// Title.
    pub title: String,
    /// Model config of the first turn.
    pub model_config_id: Uuid,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// MCP servers enabled for the chat.
    pub mcp_server_ids: Vec<Uuid>,
    /// Client-executed tools declared at creation.
    pub dynamic_tools: Vec<DynamicTool>,
    /// Extra system prompt of the chat.
    pub system_prompt: String,
    /// `ui` or `api`.
    pub client_type: ChatClientType,
    /// Plan mode, when requested.
    pub plan_mode: Option<ChatPlanMode>,
    /// Content of the first user message.
    pub first_message_parts: Vec<ChatMessagePart>,
    /// Author of the first message (usually the owner).
    pub created_by: Option<Uuid>,
}

/// A message to append with [`ChatTx::insert_message`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Author role.
    pub role: ChatMessageRole,
    /// Content parts.
    pub parts: Vec<ChatMessagePart>,
    /// Who sees it.
    pub visibility: MessageVisibility,
    /// Author of a user message.
    pub created_by: Option<Uuid>,
    /// Model config in effect; when set it also becomes the chat's `last_model_config_id`.
    pub model_config_id: Option<Uuid>,
    /// Token usage of an assistant step.
    pub usage: Option<ChatMessageUsage>,
}

/// The unread rule as SQL over the chat aliased `c`: a non-deleted assistant message the
/// user can see, newer than the read marker. A macro so the column list below and
/// [`UNREAD_EXISTS`] are one text.
macro_rules! unread_exists {
    () => {
        "EXISTS (SELECT 1 FROM chat_messages m WHERE m.chat_id = c.id \
        AND m.role = 'assistant' AND m.deleted = 0 AND m.visibility IN ('user', 'both') \
        AND m.id > c.last_read_message_id)"
    };
}

/// `Chat.has_unread` as a condition on the chat aliased `c`, for list filters.
pub(super) const UNREAD_EXISTS: &str = unread_exists!();

pub(super) const CHAT_COLUMNS: &str = concat!(
    "c.id, c.organization_id, c.owner_id, c.workspace_id, \
    c.parent_chat_id, c.root_chat_id, c.last_model_config_id, c.title, c.status, c.plan_mode, \
    c.last_error, c.last_turn_summary, c.archived, c.pin_order, c.mcp_server_ids, \
    c.client_type, c.created_at, c.updated_at, \
    CASE WHEN ",
    unread_exists!(),
    " THEN 1 ELSE 0 END AS has_unread"
);

pub(super) const MESSAGE_COLUMNS: &str =
    "id, chat_id, created_by, model_config_id, role, content, \
    content_version, created_at, input_tokens, output_tokens, total_tokens, reasoning_tokens, \
    cache_creation_tokens, cache_read_tokens, context_limit, total_cost_micros";

pub(super) fn json_text(encoded: serde_json::Result<String>, what: &str) -> Result<String> {
    encoded.map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{what} could not be encoded"),
        )
    })
}

pub(super) fn content_text(parts: &[ChatMessagePart]) -> Result<String> {
    encode_message_content(parts).map_err(|e| Error::new(ErrorKind::InvalidArgument, e.to_string()))
}

impl Store {
    /// Creates a chat (status `pending`, its own root) with its labels and first user
    /// message (visibility `both`), in one transaction that also links the files the
    /// message references (the chat's `warnings` say when they could not be; its `files`
    /// stay empty: [`Store::linked_files`] reads them). [`ErrorKind::NotFound`] when the
    /// organization, owner or author does not exist.
    pub async fn create_chat(&self, new: NewChat) -> Result<(Chat, ChatMessage)> {
        let id = Uuid::new_v4();
        let now = now_micros();
        let mcp = json_text(serde_json::to_string(&new.mcp_server_ids), "mcp_server_ids")?;
        let dynamic_tools = if new.dynamic_tools.is_empty() {
            None
        } else {
            Some(json_text(
                serde_json::to_string(&new.dynamic_tools),
                "dynamic tools",
            )?)
        };
        let plan_mode = new
            .plan_mode
            .as_ref()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO chats (id, organization_id, owner_id, root_chat_id, \
             last_model_config_id, title, status, plan_mode, mcp_server_ids, client_type, \
             dynamic_tools, system_prompt, created_at, updated_at) \
             VALUES ($1, $2, $3, $1, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(uuid_text(id))
        .bind(uuid_text(new.organization_id))
        .bind(uuid_text(new.owner_id))
        .bind(uuid_text(new.model_config_id))
        .bind(&new.title)
        .bind(ChatStatus::Pending.as_str())
        .bind(&plan_mode)
        .bind(&mcp)
        .bind(new.client_type.as_str())
        .bind(dynamic_tools)
        .bind(&new.system_prompt)
        .bind(now)
        .execute(&mut *tx)
        .await
        .db()?;
        for (key, value) in &new.labels {
            sqlx::query("INSERT INTO chat_labels (chat_id, key, value) VALUES ($1, $2, $3)")
                .bind(uuid_text(id))
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        // The files the message references, linked before the message is: a batch refused
        // becomes a warning of the creation's answer, never its failure.
        let warnings =
            super::files::link_message_files(&mut tx, id, &new.first_message_parts).await?;
        let message = insert_message(
            &mut tx,
            id,
            now,
            NewMessage {
                role: ChatMessageRole::User,
                parts: new.first_message_parts,
                visibility: MessageVisibility::Both,
                created_by: new.created_by,
                model_config_id: Some(new.model_config_id),
                usage: None,
            },
        )
        .await?;
        tx.commit().await.db()?;
        let created = timestamp_from_micros(now)?;
        let chat = Chat {
            id,
            organization_id: new.organization_id,
            owner_id: new.owner_id,
            workspace_id: None,
            build_id: None,
            agent_id: None,
            parent_chat_id: None,
            root_chat_id: Some(id),
            last_model_config_id: new.model_config_id,
            title: new.title,
            status: ChatStatus::Pending,
            plan_mode: new.plan_mode,
            last_error: None,
            last_turn_summary: None,
            diff_status: None,
            created_at: created,
            updated_at: created,
            archived: false,
            pin_order: 0,
            mcp_server_ids: new.mcp_server_ids,
            labels: new.labels,
            files: Vec::new(),
            has_unread: false,
            last_injected_context: Vec::new(),
            warnings,
            client_type: new.client_type,
            children: Vec::new(),
        };
        Ok((chat, message))
    }

    /// The chat with `id`, with its labels; `None` when it does not exist.
    pub async fn get_chat(&self, id: Uuid) -> Result<Option<Chat>> {
        // One statement: the labels come along as one JSON object (a read on every
        // authorized request and every watch event; docs/turn-path.md).
        let sql = format!(
            "SELECT {CHAT_COLUMNS}, c.last_injected_context, {} AS labels_json \
             FROM chats c WHERE c.id = $1",
            labels_json_column(self.dialect())
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(id))
            .fetch_optional(self.pool())
            .await
            .db()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut chat = chat_from_row(&row)?;
        chat.last_injected_context = injected_context_for_output(&row)?;
        chat.labels = labels_from_json(&row)?;
        Ok(Some(chat))
    }

    /// One page of the messages a user sees (visibility `user` or `both`, not deleted) and
    /// whether more exist beyond it. Oldest first when the page has only `after_id`,
    /// newest first otherwise. [`ErrorKind::NotFound`] when the chat
    /// does not exist.
    pub async fn list_messages(
        &self,
        chat_id: Uuid,
        page: &MessagePage,
    ) -> Result<(Vec<ChatMessage>, bool)> {
        let mut conn = self.pool().acquire().await.db()?;
        super::ensure_chat_exists(&mut conn, chat_id).await?;
        let order = if page.ascending { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE chat_id = $1 \
             AND visibility IN ('user', 'both') AND deleted = 0 AND id > $2 AND id < $3 \
             ORDER BY id {order} LIMIT $4"
        );
        // Absent cursors become bounds no id reaches, so one SQL text serves every page.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(chat_id))
            .bind(page.after_id.unwrap_or(i64::MIN))
            .bind(page.before_id.unwrap_or(i64::MAX))
            .bind(page.fetch_limit())
            .fetch_all(&mut *conn)
            .await
            .db()?;
        let limit = usize::try_from(page.limit.max(0)).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        let messages = rows
            .iter()
            .take(limit)
            .map(message_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok((messages, has_more))
    }
}

impl ChatTx {
    /// Appends a message to the locked chat.
    pub async fn insert_message(&mut self, new: NewMessage) -> Result<ChatMessage> {
        let chat_id = self.chat_id();
        insert_message(self.conn(), chat_id, now_micros(), new).await
    }
}

pub(super) async fn insert_message(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    now: i64,
    new: NewMessage,
) -> Result<ChatMessage> {
    insert_message_with(conn, chat_id, now, new, &StepColumns::default()).await
}

/// Columns only an assistant step row carries; not part of
/// [`ChatMessage`], so they travel beside [`NewMessage`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct StepColumns {
    pub(super) total_cost_micros: Option<i64>,
    pub(super) runtime_ms: Option<i64>,
    pub(super) provider_response_id: Option<String>,
    /// Written by context compaction (`chat_messages.compressed`).
    pub(super) compressed: bool,
    /// Soft-deleted from the start: a hidden usage row ([`Store::record_hidden_usage`]).
    ///
    /// [`Store::record_hidden_usage`]: super::Store::record_hidden_usage
    pub(super) deleted: bool,
}

pub(super) async fn insert_message_with(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    now: i64,
    new: NewMessage,
    step: &StepColumns,
) -> Result<ChatMessage> {
    let model = new.model_config_id;
    let message = insert_message_row(conn, chat_id, now, new, step).await?;
    if let Some(model) = model {
        sqlx::query("UPDATE chats SET last_model_config_id = $2 WHERE id = $1")
            .bind(uuid_text(chat_id))
            .bind(uuid_text(model))
            .execute(&mut *conn)
            .await
            .db()?;
    }
    Ok(message)
}

/// Inserts the message row only; the caller keeps `chats.last_model_config_id` current
/// (step persistence folds it into its one chat update).
pub(super) async fn insert_message_row(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    now: i64,
    new: NewMessage,
    step: &StepColumns,
) -> Result<ChatMessage> {
    let sql = format!(
        "INSERT INTO chat_messages ({MESSAGE_INSERT_COLUMNS}) VALUES ({MESSAGE_INSERT_VALUES}) \
         RETURNING id"
    );
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    let content = content_text(&new.parts)?;
    let (id,): (i64,) = bind_message(query, chat_id, now, &new, content, step)
        .fetch_one(&mut *conn)
        .await
        .db()?;
    inserted_message(id, chat_id, now, new, step.total_cost_micros)
}

/// The columns of a message insert, bound by [`bind_message`] as `$1`–`$20`
/// ([`MESSAGE_INSERT_VALUES`]); `chat_id` is `$1` and `created_at` `$15`.
pub(super) const MESSAGE_INSERT_COLUMNS: &str =
    "chat_id, created_by, model_config_id, role, content, content_version, visibility, \
     input_tokens, output_tokens, total_tokens, reasoning_tokens, cache_creation_tokens, \
     cache_read_tokens, context_limit, created_at, total_cost_micros, runtime_ms, \
     provider_response_id, compressed, deleted";

/// The placeholders of [`MESSAGE_INSERT_COLUMNS`].
pub(super) const MESSAGE_INSERT_VALUES: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20";

/// Binds a message insert's parameters `$1`–`$20` ([`MESSAGE_INSERT_COLUMNS`]), with
/// `content` the parts as [`content_text`] stores them; further parameters are bound after.
pub(super) fn bind_message<'q, O>(
    query: sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments>,
    chat_id: Uuid,
    now: i64,
    new: &NewMessage,
    content: String,
    step: &StepColumns,
) -> sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments> {
    let usage = new.usage.unwrap_or_default();
    query
        .bind(uuid_text(chat_id))
        .bind(new.created_by.map(uuid_text))
        .bind(new.model_config_id.map(uuid_text))
        .bind(new.role.as_str().to_owned())
        .bind(content)
        .bind(i32::from(CURRENT_CONTENT_VERSION))
        .bind(new.visibility.as_str().to_owned())
        .bind(usage.input_tokens)
        .bind(usage.output_tokens)
        .bind(usage.total_tokens)
        .bind(usage.reasoning_tokens)
        .bind(usage.cache_creation_tokens)
        .bind(usage.cache_read_tokens)
        .bind(usage.context_limit)
        .bind(now)
        .bind(step.total_cost_micros)
        .bind(step.runtime_ms)
        .bind(step.provider_response_id.clone())
        .bind(i64::from(step.compressed))
        .bind(i64::from(step.deleted))
}

/// The message an insert of `new` made as row `id`, with the cost its step columns gave.
pub(super) fn inserted_message(
    id: i64,
    chat_id: Uuid,
    now: i64,
    new: NewMessage,
    total_cost_micros: Option<i64>,
) -> Result<ChatMessage> {
    Ok(ChatMessage {
        id,
        chat_id,
        created_by: new.created_by,
        model_config_id: new.model_config_id,
        created_at: timestamp_from_micros(now)?,
        role: new.role,
        content: new.parts,
        usage: new.usage.filter(|u| !u.is_empty()),
        total_cost_micros,
    })
}

pub(super) async fn load_labels(
    conn: &mut AnyConnection,
    chat_id: Uuid,
) -> Result<BTreeMap<String, String>> {
    let rows = sqlx::query("SELECT key, value FROM chat_labels WHERE chat_id = $1")
        .bind(uuid_text(chat_id))
        .fetch_all(&mut *conn)
        .await
        .db()?;
    rows.iter()
        .map(|r| Ok((r.try_get("key").db()?, r.try_get("value").db()?)))
        .collect()
}

/// A scalar subquery giving the labels of chat `c` as one JSON object (`{}` when none).
pub(super) fn labels_json_column(dialect: super::Dialect) -> &'static str {
    match dialect {
        super::Dialect::Sqlite => {
            "(SELECT COALESCE(json_group_object(l.key, l.value), '{}') \
             FROM chat_labels l WHERE l.chat_id = c.id)"
        }
        super::Dialect::Postgres => {
            "(SELECT COALESCE(json_object_agg(l.key, l.value), '{}')::text \
             FROM chat_labels l WHERE l.chat_id = c.id)"
        }
    }
}

/// The labels of a row read with [`labels_json_column`] as `labels_json`.
pub(super) fn labels_from_json(row: &AnyRow) -> Result<BTreeMap<String, String>> {
    let text: String = row.try_get("labels_json").db()?;
    serde_json::from_str(&text).map_err(|_| corrupt("labels"))
}

pub(super) fn corrupt(what: &str) -> Error {
    Error::new(ErrorKind::CorruptRow, format!("stored {what} is malformed"))
}

pub(super) fn chat_from_row(row: &AnyRow) -> Result<Chat> {
    let plan_mode: String = row.try_get("plan_mode").db()?;
    let last_error = row
        .try_get::<Option<String>, _>("last_error")
        .db()?
        .map(|s| serde_json::from_str::<ChatError>(&s).map_err(|_| corrupt("last_error")))
        .transpose()?;
    let mcp: String = row.try_get("mcp_server_ids").db()?;
    let mcp_server_ids: Vec<Uuid> =
        serde_json::from_str(&mcp).map_err(|_| corrupt("mcp_server_ids"))?;
    let id = get_uuid(row, "id")?;
    Ok(Chat {
        id,
        organization_id: get_uuid(row, "organization_id")?,
        owner_id: get_uuid(row, "owner_id")?,
        workspace_id: get_opt_uuid(row, "workspace_id")?,
        build_id: None,
        agent_id: None,
        parent_chat_id: get_opt_uuid(row, "parent_chat_id")?,
        root_chat_id: Some(get_uuid(row, "root_chat_id")?),
        last_model_config_id: get_uuid(row, "last_model_config_id")?,
        title: row.try_get("title").db()?,
        status: ChatStatus::from_wire(&row.try_get::<String, _>("status").db()?),
        plan_mode: (!plan_mode.is_empty()).then(|| ChatPlanMode::from_wire(&plan_mode)),
        last_error,
        last_turn_summary: row.try_get("last_turn_summary").db()?,
        diff_status: None,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        archived: get_bool(row, "archived")?,
        pin_order: row.try_get("pin_order").db()?,
        mcp_server_ids,
        labels: BTreeMap::new(),
        files: Vec::new(),
        has_unread: get_bool(row, "has_unread")?,
        last_injected_context: Vec::new(),
        warnings: Vec::new(),
        client_type: ChatClientType::from_wire(&row.try_get::<String, _>("client_type").db()?),
        children: Vec::new(),
    })
}

/// The injected context of a single-chat read, as clients see it: the parts without
/// their content (Coder strips the content of context-file parts on reads). Lists leave it out: it can be tens
/// of kilobytes per chat.
pub(super) fn injected_context_for_output(row: &AnyRow) -> Result<Vec<ChatMessagePart>> {
    let Some(text) = row
        .try_get::<Option<String>, _>("last_injected_context")
        .db()?
    else {
        return Ok(Vec::new());
    };
    let mut parts: Vec<ChatMessagePart> =
        serde_json::from_str(&text).map_err(|_| corrupt("last_injected_context"))?;
    for part in &mut parts {
        part.strip_internal();
    }
    Ok(parts)
}

pub(super) fn message_from_row(row: &AnyRow) -> Result<ChatMessage> {
    let version: i16 = row.try_get("content_version").db()?;
    let raw: String = row.try_get("content").db()?;
    let content = decode_message_content(version, &raw)
        .map_err(|e| Error::new(ErrorKind::CorruptRow, e.to_string()))?;
    let usage = ChatMessageUsage {
        input_tokens: row.try_get("input_tokens").db()?,
        output_tokens: row.try_get("output_tokens").db()?,
        total_tokens: row.try_get("total_tokens").db()?,
        reasoning_tokens: row.try_get("reasoning_tokens").db()?,
        cache_creation_tokens: row.try_get("cache_creation_tokens").db()?,
        cache_read_tokens: row.try_get("cache_read_tokens").db()?,
        context_limit: row.try_get("context_limit").db()?,
    };
    Ok(ChatMessage {
        id: row.try_get("id").db()?,
        chat_id: get_uuid(row, "chat_id")?,
        created_by: get_opt_uuid(row, "created_by")?,
        model_config_id: get_opt_uuid(row, "model_config_id")?,
        created_at: get_time(row, "created_at")?,
        role: ChatMessageRole::from_wire(&row.try_get::<String, _>("role").db()?),
        content,
        usage: (!usage.is_empty()).then_some(usage),
        total_cost_micros: row.try_get("total_cost_micros").db()?,
    })
}
