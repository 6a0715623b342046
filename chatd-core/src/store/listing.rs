//! The chat list (`GET /chats`), read markers, and the metadata writes of
//! a chat: `PATCH /chats/{chat}` (pinning as docs/chat-list.md describes), titles and turn
//! summaries. docs/chat-list.md records the decisions.
//!
//! None of these writes bumps `updated_at`: the list is ordered by it, and only activity
//! (status changes, new messages) may move a chat ("updated_at discipline").

use std::collections::{BTreeMap, HashMap};

use codersdk::{
    parse_chat_list_page, parse_chat_search_query, parse_label_filters, validate_chat_title, Chat,
    ChatDiffStatus, ChatListPage, ChatPlanMode, ChatPrStatusFilter, ChatSearchQuery, Response,
    Uuid, ValidatedChatUpdate, DEFAULT_CHAT_LIST_LIMIT, MAX_CHAT_LABELS, MAX_CHAT_LIST_LIMIT,
    MAX_CHAT_LIST_OFFSET,
};
use sqlx::any::AnyArguments;
use sqlx::{Any, AnyConnection, Row};

use super::chats::{
    chat_from_row, load_labels, message_from_row, CHAT_COLUMNS, MESSAGE_COLUMNS, UNREAD_EXISTS,
};
use super::{chat_not_found, get_bool, get_opt_uuid, get_uuid, uuid_text, ChatTx, Dialect, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Longest turn summary [`Store::set_turn_summary_if`] stores, in Unicode scalar values; a
/// longer one is cut to this length. Summaries are 2–5 word status labels, so only a misbehaving model reaches it.
pub const MAX_TURN_SUMMARY_RUNES: usize = 200;

/// Sort key of unpinned chats: above every possible `pin_order` (an `i32`), so pinned chats
/// come first, by position.
const UNPINNED_SORT_KEY: i64 = 1 << 31;

/// The message of every refused chat update, as codersdk's request validation words it.
const INVALID_UPDATE: &str = "Invalid chat update request.";

/// The parameters of `GET /chats`, parsed: what [`Store::list_chats`] filters and pages by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatListQuery {
    /// The parsed `q` search (its default hides archived chats).
    pub search: ChatSearchQuery,
    /// Label filters: a chat matches when it carries every one of these pairs.
    pub labels: BTreeMap<String, String>,
    /// Page size, offset and `after_id` cursor.
    pub page: ChatListPage,
}

impl Default for ChatListQuery {
    /// The first page of unarchived chats with the default page size.
    fn default() -> Self {
        ChatListQuery {
            search: ChatSearchQuery::default(),
            labels: BTreeMap::new(),
            page: ChatListPage {
                limit: DEFAULT_CHAT_LIST_LIMIT,
                offset: 0,
                after_id: None,
            },
        }
    }
}

impl ChatListQuery {
    /// Parses the raw query parameters of `GET /chats`: `q`, the repeatable `label`, and
    /// `limit`, `offset`, `after_id`, with codersdk's rules. The first group that fails
    /// (in that order) is the error: [`ErrorKind::InvalidArgument`] (HTTP 400) carrying
    /// codersdk's `Response` with per-field validations.
    pub fn parse<I, S>(
        q: Option<&str>,
        labels: I,
        limit: Option<&str>,
        offset: Option<&str>,
        after_id: Option<&str>,
    ) -> Result<ChatListQuery>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let invalid = |r: Response| Error::with_response(ErrorKind::InvalidArgument, r);
        Ok(ChatListQuery {
            search: parse_chat_search_query(q.unwrap_or_default()).map_err(invalid)?,
            labels: parse_label_filters(labels).map_err(invalid)?,
            page: parse_chat_list_page(limit, offset, after_id).map_err(invalid)?,
        })
    }
}

/// Trims a turn summary and cuts it to [`MAX_TURN_SUMMARY_RUNES`]; blank becomes `None`.
/// This is the value [`Store::set_turn_summary_if`] stores.
pub fn normalize_turn_summary(summary: Option<&str>) -> Option<String> {
    let trimmed = summary?.trim();
    let cut = match trimmed.char_indices().nth(MAX_TURN_SUMMARY_RUNES) {
        Some((end, _)) => trimmed.get(..end).unwrap_or(trimmed).trim_end(),
        None => trimmed,
    };
    (!cut.is_empty()).then(|| cut.to_owned())
}

/// One bound value of a query assembled at run time.
enum Arg {
    Int(i64),
    Text(String),
}

/// Bound values with the `$n` placeholders that name them, for queries whose shape depends
/// on the filters. Only placeholders are formatted into SQL text; every value is bound.
#[derive(Default)]
struct Args(Vec<Arg>);

impl Args {
    fn push(&mut self, arg: Arg) -> String {
        self.0.push(arg);
        format!("${}", self.0.len())
    }

    fn int(&mut self, v: i64) -> String {
        self.push(Arg::Int(v))
    }

    fn text(&mut self, v: impl Into<String>) -> String {
        self.push(Arg::Text(v.into()))
    }

    fn bind<'q>(
        &self,
        mut query: sqlx::query::Query<'q, Any, AnyArguments>,
    ) -> sqlx::query::Query<'q, Any, AnyArguments> {
        for arg in &self.0 {
            query = match arg {
                Arg::Int(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }
}

/// A `LIKE` pattern matching `text` anywhere, with `\` as the escape character, so `%`
/// and `_` in the text are literal.
fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Case-insensitive "title contains" on the chat aliased `c`.
fn title_contains(args: &mut Args, text: &str) -> String {
    let p = args.text(contains_pattern(text));
    format!("LOWER(c.title) LIKE LOWER({p}) ESCAPE '\\'")
}

/// Never true: a filter on data this server does not keep (pull requests).
const MATCHES_NOTHING: &str = "1 = 0";

/// The list sort key of a chat: pinned chats by position, then every unpinned one.
fn pin_sort_key() -> String {
    format!("CASE WHEN c.pin_order > 0 THEN c.pin_order ELSE {UNPINNED_SORT_KEY} END")
}

/// The conditions `q` and the label filters put on a root chat.
fn filter_clauses(query: &ChatListQuery, args: &mut Args) -> Vec<String> {
    // Destructured without `..`, so a filter added to `ChatSearchQuery` fails to compile
    // here until it is applied.
    let ChatSearchQuery {
        archived,
        title,
        has_unread,
        status,
        pr_status,
        diff_url,
        pr,
        repo,
        pr_title,
        search,
    } = &query.search;
    let mut clauses = Vec::new();
    if let Some(archived) = archived.as_option() {
        clauses.push(format!("c.archived = {}", args.int(i64::from(archived))));
    }
    if let Some(title) = title {
        clauses.push(title_contains(args, title));
    }
    if let Some(unread) = has_unread {
        let not = if *unread { "" } else { "NOT " };
        clauses.push(format!("{not}{UNREAD_EXISTS}"));
    }
    if let Some(status) = status {
        clauses.push(format!("c.status = {}", args.text(status.as_str())));
    }
    // No chat has a pull request this server knows of: `pr_status:none` holds for every
    // chat, every other pull-request filter for none.
    if pr_status.is_some_and(|s| s != ChatPrStatusFilter::NoPullRequest)
        || diff_url.is_some()
        || pr.is_some()
        || repo.is_some()
        || pr_title.is_some()
    {
        clauses.push(MATCHES_NOTHING.to_owned());
    }
    if let Some(search) = search {
        // Full-text over what the server keeps of a chat's description: its title (the
        // pull-request fields it would also cover are never set). Every word must occur.
        for word in search.split_whitespace() {
            clauses.push(title_contains(args, word));
        }
    }
    for (key, value) in &query.labels {
        let k = args.text(key.as_str());
        let v = args.text(value.as_str());
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM chat_labels l WHERE l.chat_id = c.id \
             AND l.key = {k} AND l.value = {v})"
        ));
    }
    clauses
}

/// Where the `after_id` chat sits in the list order, read now.
struct Cursor {
    sort_key: i64,
    updated_at: i64,
    id: Uuid,
}

async fn cursor_of(conn: &mut AnyConnection, owner_id: Uuid, after: Uuid) -> Result<Cursor> {
    let row =
        sqlx::query("SELECT pin_order, updated_at FROM chats WHERE id = $1 AND owner_id = $2")
            .bind(uuid_text(after))
            .bind(uuid_text(owner_id))
            .fetch_optional(&mut *conn)
            .await
            .db()?;
    // Another user's chat gets the same answer as a missing one: its position would leak
    // when it was last active.
    let Some(row) = row else {
        return Err(Error::with_response(
            ErrorKind::InvalidArgument,
            Response::new("Invalid query parameters.").with_validation(
                "after_id",
                format!("after_id {after} is not one of your chats."),
            ),
        ));
    };
    let pin_order: i32 = row.try_get("pin_order").db()?;
    Ok(Cursor {
        sort_key: if pin_order > 0 {
            i64::from(pin_order)
        } else {
            UNPINNED_SORT_KEY
        },
        updated_at: row.try_get("updated_at").db()?,
        id: after,
    })
}

/// `IN (…)` placeholders for `ids`.
fn id_list(args: &mut Args, ids: &[Uuid]) -> String {
    ids.iter()
        .map(|id| args.text(uuid_text(*id)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What list endpoints return as a chat's diff status when nothing is cached: an
/// object with only `chat_id`.
fn empty_diff_status(chat_id: Uuid) -> Option<ChatDiffStatus> {
    Some(ChatDiffStatus {
        chat_id,
        ..ChatDiffStatus::default()
    })
}

async fn list_in_tx(
    conn: &mut AnyConnection,
    owner_id: Uuid,
    query: &ChatListQuery,
) -> Result<Vec<Chat>> {
    let limit = query.page.limit.clamp(1, MAX_CHAT_LIST_LIMIT);
    let offset = query.page.offset.clamp(0, MAX_CHAT_LIST_OFFSET);
    let cursor = match query.page.after_id {
        Some(after) => Some(cursor_of(conn, owner_id, after).await?),
        None => None,
    };
    let key = pin_sort_key();
    let mut args = Args::default();
    let mut clauses = vec![
        format!("c.owner_id = {}", args.text(uuid_text(owner_id))),
        "c.parent_chat_id IS NULL".to_owned(),
    ];
    clauses.extend(filter_clauses(query, &mut args));
    if let Some(cursor) = cursor {
        // Keyset: chats after the cursor's current position in the list order, so chats
        // that moved ahead of it (updated meanwhile) are not repeated and nothing behind it
        // shifts into or out of the page.
        let k = args.int(cursor.sort_key);
        let u = args.int(cursor.updated_at);
        let id = args.text(uuid_text(cursor.id));
        clauses.push(format!(
            "({key} > {k} OR ({key} = {k} AND (c.updated_at < {u} \
             OR (c.updated_at = {u} AND c.id < {id}))))"
        ));
    }
    let lim = args.int(limit);
    let off = args.int(offset);
    let sql = format!(
        "SELECT {CHAT_COLUMNS} FROM chats c WHERE {} \
         ORDER BY {key}, c.updated_at DESC, c.id DESC LIMIT {lim} OFFSET {off}",
        clauses.join(" AND ")
    );
    let rows = args
        .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let mut roots = rows.iter().map(chat_from_row).collect::<Result<Vec<_>>>()?;
    if roots.is_empty() {
        return Ok(roots);
    }
    let root_ids: Vec<Uuid> = roots.iter().map(|c| c.id).collect();

    // The page's family, root chats and their sub-agent chats alike: the owner's chats whose
    // root is on the page, under the same archived filter.
    let family = |args: &mut Args| {
        let mut sql = format!(
            "c.owner_id = {} AND c.root_chat_id IN ({})",
            args.text(uuid_text(owner_id)),
            id_list(args, &root_ids)
        );
        if let Some(archived) = query.search.archived.as_option() {
            sql.push_str(&format!(
                " AND c.archived = {}",
                args.int(i64::from(archived))
            ));
        }
        sql
    };
    let mut args = Args::default();
    let sql = format!(
        "SELECT {CHAT_COLUMNS} FROM chats c WHERE {} AND c.parent_chat_id IS NOT NULL \
         ORDER BY c.updated_at DESC, c.id DESC",
        family(&mut args)
    );
    let rows = args
        .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let children = rows.iter().map(chat_from_row).collect::<Result<Vec<_>>>()?;

    // Every label of the page in one query.
    let mut args = Args::default();
    let sql = format!(
        "SELECT l.chat_id, l.key, l.value FROM chat_labels l JOIN chats c ON c.id = l.chat_id \
         WHERE {}",
        family(&mut args)
    );
    let rows = args
        .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let mut labels: HashMap<Uuid, BTreeMap<String, String>> = HashMap::new();
    for row in &rows {
        labels
            .entry(get_uuid(row, "chat_id")?)
            .or_default()
            .insert(row.try_get("key").db()?, row.try_get("value").db()?);
    }

    let mut children_of: HashMap<Uuid, Vec<Chat>> = HashMap::new();
    for mut child in children {
        child.labels = labels.remove(&child.id).unwrap_or_default();
        child.diff_status = empty_diff_status(child.id);
        let root = child.root_chat_id.unwrap_or(child.id);
        children_of.entry(root).or_default().push(child);
    }
    for root in &mut roots {
        root.labels = labels.remove(&root.id).unwrap_or_default();
        root.diff_status = empty_diff_status(root.id);
        root.children = children_of.remove(&root.id).unwrap_or_default();
    }
    Ok(roots)
}

fn invalid_update(field: &str, detail: &str) -> Error {
    Error::with_response(
        ErrorKind::InvalidArgument,
        Response::new(INVALID_UPDATE).with_validation(field, detail),
    )
}

async fn read_chat(conn: &mut AnyConnection, chat_id: Uuid) -> Result<Chat> {
    let sql = format!("SELECT {CHAT_COLUMNS} FROM chats c WHERE c.id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid_text(chat_id))
        .fetch_one(&mut *conn)
        .await
        .db()?;
    let mut chat = chat_from_row(&row)?;
    chat.labels = load_labels(conn, chat_id).await?;
    Ok(chat)
}

async fn replace_labels(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    labels: &BTreeMap<String, String>,
) -> Result<()> {
    sqlx::query("DELETE FROM chat_labels WHERE chat_id = $1")
        .bind(uuid_text(chat_id))
        .execute(&mut *conn)
        .await
        .db()?;
    let pairs: Vec<(&String, &String)> = labels.iter().collect();
    // A validated map fits one statement; the chunks only bound the bind count of a map
    // that skipped validation.
    for chunk in pairs.chunks(MAX_CHAT_LABELS) {
        let mut args = Args::default();
        let chat = args.text(uuid_text(chat_id));
        let values = chunk
            .iter()
            .map(|(k, v)| {
                let k = args.text(k.as_str());
                let v = args.text(v.as_str());
                format!("({chat}, {k}, {v})")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO chat_labels (chat_id, key, value) VALUES {values}");
        args.bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .execute(&mut *conn)
            .await
            .db()?;
    }
    Ok(())
}

/// Pins, moves or unpins the locked chat and renumbers the owner's other
/// pinned, unarchived chats contiguously from 1 around it, in their current order. The
/// caller holds the owner lock, so no other numbering interleaves.
async fn set_pin(
    conn: &mut AnyConnection,
    owner_id: Uuid,
    chat_id: Uuid,
    current: i32,
    requested: i32,
) -> Result<()> {
    if requested == 0 && current == 0 {
        return Ok(());
    }
    let others: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM chats WHERE owner_id = $1 AND archived = 0 AND pin_order > 0 \
         AND id <> $2",
    )
    .bind(uuid_text(owner_id))
    .bind(uuid_text(chat_id))
    .fetch_one(&mut *conn)
    .await
    .db()?;
    let last = others.saturating_add(1);
    let target = match (current, requested) {
        (_, 0) => 0,
        // Pinning appends; the requested value is ignored.
        (0, _) => last,
        (_, r) => i64::from(r).clamp(1, last),
    };
    // Positions from `target` on move down one to make room; with no target (unpinning)
    // the others simply close up.
    sqlx::query(
        "UPDATE chats SET pin_order = r.n + CASE WHEN $3 > 0 AND r.n >= $3 THEN 1 ELSE 0 END \
         FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY pin_order, updated_at DESC, id DESC) AS n \
               FROM chats WHERE owner_id = $1 AND archived = 0 AND pin_order > 0 AND id <> $2) \
              AS r \
         WHERE chats.id = r.id \
         AND chats.pin_order <> r.n + CASE WHEN $3 > 0 AND r.n >= $3 THEN 1 ELSE 0 END",
    )
    .bind(uuid_text(owner_id))
    .bind(uuid_text(chat_id))
    .bind(target)
    .execute(&mut *conn)
    .await
    .db()?;
    sqlx::query("UPDATE chats SET pin_order = $2 WHERE id = $1")
        .bind(uuid_text(chat_id))
        .bind(i32::try_from(target).unwrap_or(i32::MAX))
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}

async fn update_in_tx(tx: &mut ChatTx, update: &ValidatedChatUpdate) -> Result<Chat> {
    let chat_id = tx.chat_id();
    let conn = tx.conn();
    let row = sqlx::query(
        "SELECT owner_id, parent_chat_id, archived, pin_order FROM chats WHERE id = $1",
    )
    .bind(uuid_text(chat_id))
    .fetch_one(&mut *conn)
    .await
    .db()?;
    let owner_id = get_uuid(&row, "owner_id")?;
    let is_child = get_opt_uuid(&row, "parent_chat_id")?.is_some();
    let archived = get_bool(&row, "archived")?;
    let pin_order: i32 = row.try_get("pin_order").db()?;

    if matches!(update.workspace_id, Some(Some(_))) {
        return Err(invalid_update(
            "workspace_id",
            "The server binds a chat to its workspace on the chat's first turn; workspace_id cannot be set.",
        ));
    }
    if let Some(requested) = update.pin_order {
        if requested < 0 {
            return Err(invalid_update(
                "pin_order",
                "pin_order must be 0 (unpin) or a positive position.",
            ));
        }
        if requested > 0 && archived {
            return Err(invalid_update(
                "pin_order",
                "Archived chats cannot be pinned.",
            ));
        }
        if requested > 0 && is_child {
            return Err(invalid_update(
                "pin_order",
                "Sub-agent chats cannot be pinned; pin their root chat instead.",
            ));
        }
    }

    if let Some(title) = &update.title {
        sqlx::query("UPDATE chats SET title = $2 WHERE id = $1")
            .bind(uuid_text(chat_id))
            .bind(title.as_str())
            .execute(&mut *conn)
            .await
            .db()?;
    }
    if let Some(plan) = update.plan_mode {
        let mode = if plan {
            ChatPlanMode::Plan.as_str()
        } else {
            ""
        };
        sqlx::query("UPDATE chats SET plan_mode = $2 WHERE id = $1")
            .bind(uuid_text(chat_id))
            .bind(mode)
            .execute(&mut *conn)
            .await
            .db()?;
    }
    if let Some(labels) = &update.labels {
        replace_labels(conn, chat_id, labels).await?;
    }
    if let Some(requested) = update.pin_order {
        set_pin(conn, owner_id, chat_id, pin_order, requested).await?;
    }
    read_chat(conn, chat_id).await
}

async fn mark_read_in_tx(tx: &mut ChatTx, up_to: Option<i64>) -> Result<()> {
    let chat_id = tx.chat_id();
    let conn = tx.conn();
    // Clamped to a message of the chat, so a marker never runs ahead of messages that do not
    // exist yet (which would hide them as read when they arrive).
    let target: Option<i64> =
        sqlx::query_scalar("SELECT MAX(id) FROM chat_messages WHERE chat_id = $1 AND id <= $2")
            .bind(uuid_text(chat_id))
            .bind(up_to.unwrap_or(i64::MAX))
            .fetch_one(&mut *conn)
            .await
            .db()?;
    if let Some(target) = target {
        sqlx::query(
            "UPDATE chats SET last_read_message_id = $2 \
             WHERE id = $1 AND last_read_message_id < $2",
        )
        .bind(uuid_text(chat_id))
        .bind(target)
        .execute(&mut *conn)
        .await
        .db()?;
    }
    Ok(())
}

/// Writes `title` unless it is already the title, or (with `expected`) the current title is
/// something else. Returns whether it was written.
async fn title_in_tx(tx: &mut ChatTx, expected: Option<&str>, title: &str) -> Result<bool> {
    let chat_id = uuid_text(tx.chat_id());
    let done = match expected {
        None => sqlx::query("UPDATE chats SET title = $2 WHERE id = $1 AND title <> $2")
            .bind(chat_id)
            .bind(title)
            .execute(&mut *tx.conn())
            .await
            .db()?,
        Some(expected) => {
            sqlx::query("UPDATE chats SET title = $2 WHERE id = $1 AND title <> $2 AND title = $3")
                .bind(chat_id)
                .bind(title)
                .bind(expected)
                .execute(&mut *tx.conn())
                .await
                .db()?
        }
    };
    Ok(done.rows_affected() > 0)
}

/// Writes `summary` when the chat's newest non-deleted message is still `as_of` and the
/// value differs, in one statement: the check and the write cannot be split by a message
/// committed in between. Returns whether it was written.
async fn summary_in_tx(
    tx: &mut ChatTx,
    dialect: Dialect,
    as_of: i64,
    summary: Option<String>,
) -> Result<bool> {
    // A null-safe "differs": blank (NULL) against NULL is no change.
    let differs = match dialect {
        Dialect::Sqlite => "last_turn_summary IS NOT $2",
        Dialect::Postgres => "last_turn_summary IS DISTINCT FROM $2",
    };
    let sql = format!(
        "UPDATE chats SET last_turn_summary = $2 WHERE id = $1 AND {differs} \
         AND (SELECT MAX(m.id) FROM chat_messages m WHERE m.chat_id = $1 AND m.deleted = 0) = $3"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid_text(tx.chat_id()))
        .bind(summary)
        .bind(as_of)
        .execute(&mut *tx.conn())
        .await
        .db()?;
    Ok(done.rows_affected() > 0)
}

fn checked_title(title: &str) -> Result<String> {
    validate_chat_title(title).map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))
}

impl Store {
    /// One page of `owner_id`'s chats (`GET /chats`), read from one
    /// snapshot.
    ///
    /// Only root chats are listed; each carries its sub-agent chats in `children` (newest
    /// activity first) under the same archived filter. The other filters of `q` and the
    /// label filters apply to the root chats. Order: pinned chats first by `pin_order`,
    /// then `updated_at` descending, then `id` descending. `after_id` returns the chats
    /// after that chat's current position in this order (keyset paging: chats updated
    /// meanwhile move ahead of the cursor and are not repeated; nothing behind it shifts);
    /// `offset` then skips rows after the cursor. An `after_id` that is not one of the
    /// owner's chats is [`ErrorKind::InvalidArgument`] (HTTP 400). `limit` and `offset` are
    /// clamped to codersdk's [`MAX_CHAT_LIST_LIMIT`] and [`MAX_CHAT_LIST_OFFSET`] (a limit
    /// below 1 reads 1).
    ///
    /// Every chat has its labels, `has_unread`, and the list's `diff_status` with only
    /// `chat_id` set; labels of the whole page come from one query. Pull-request filters
    /// see chats without pull requests (docs/chat-list.md).
    pub async fn list_chats(&self, owner_id: Uuid, query: &ChatListQuery) -> Result<Vec<Chat>> {
        // One snapshot, so a child archived or relabelled between the three reads cannot
        // give a page that never existed.
        let begin = match self.dialect() {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        let mut tx = self.pool().begin_with(begin).await.db()?;
        let result = list_in_tx(&mut tx, owner_id, query).await;
        super::finish_tx(tx, result).await
    }

    /// Applies a validated `PATCH /chats/{chat}` in one transaction and
    /// returns the chat as committed. `updated_at` is not bumped: none of these fields is
    /// activity.
    ///
    /// - `title` is stored as given (validated and trimmed by codersdk).
    /// - `labels` replaces the whole set (`{}` clears).
    /// - `plan_mode`: `true` enters plan mode, `false` leaves it.
    /// - `pin_order`: `0` unpins; a positive value pins an unpinned chat at
    ///   the end of the owner's pinned list (the value is ignored) or moves a pinned one to
    ///   that position, clamped to the list. The owner's other pinned, unarchived chats are
    ///   renumbered contiguously from 1 around it; archived chats take no position. Pinning
    ///   an archived or sub-agent chat is [`ErrorKind::InvalidArgument`] (HTTP 400). Pin
    ///   changes of one owner are serialized on the owner's row, so concurrent pins never
    ///   share a position.
    /// - `archived` is **ignored**: archiving cascades over the chat's family and interrupts
    ///   it, which `set_archived` does; the caller applies both.
    /// - `workspace_id`: unbinding is a no-op; binding is [`ErrorKind::InvalidArgument`]:
    ///   the engine binds a chat to the workspace its provider gives it (docs/workspaces.md).
    ///
    /// [`ErrorKind::NotFound`] when the chat does not exist.
    pub async fn update_chat(&self, chat_id: Uuid, update: &ValidatedChatUpdate) -> Result<Chat> {
        let mut tx = if update.pin_order.is_some() {
            self.begin_owner_chat_tx(chat_id).await?
        } else {
            self.begin_chat_tx(chat_id).await?
        };
        let result = update_in_tx(&mut tx, update).await;
        tx.finish(result).await
    }

    /// Moves the chat's read marker forward to message `up_to_message_id`, or to its newest
    /// message when `None`; the marker never moves backwards nor past the chat's newest
    /// message. `has_unread` is true while a non-deleted assistant message the user can see
    /// (visibility `user` or `both`) is newer than the marker. `updated_at` is not bumped.
    /// [`ErrorKind::NotFound`] when the chat does not exist.
    pub async fn mark_read(&self, chat_id: Uuid, up_to_message_id: Option<i64>) -> Result<()> {
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = mark_read_in_tx(&mut tx, up_to_message_id).await;
        tx.finish(result).await
    }

    /// Sets the title without bumping `updated_at` and returns whether it
    /// changed. The title is validated and trimmed like a user's (codersdk
    /// `validate_chat_title`: [`ErrorKind::InvalidArgument`] otherwise).
    /// [`ErrorKind::NotFound`] when the chat does not exist.
    pub async fn set_title(&self, chat_id: Uuid, title: &str) -> Result<bool> {
        let title = checked_title(title)?;
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = title_in_tx(&mut tx, None, &title).await;
        tx.finish(result).await
    }

    /// [`Store::set_title`] for a generated title: writes `new` only while the title is
    /// still `expected_current` (the one the generation started from), so a rename that
    /// landed meanwhile wins. Returns whether it was written.
    pub async fn set_title_if(
        &self,
        chat_id: Uuid,
        expected_current: &str,
        new: &str,
    ) -> Result<bool> {
        let title = checked_title(new)?;
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = title_in_tx(&mut tx, Some(expected_current), &title).await;
        tx.finish(result).await
    }

    /// What a turn summary starts from, in two statements and no separate existence
    /// check: the chat's owner, organization, parent, last model and status with the id of its
    /// newest non-deleted message (the guard of [`Store::set_turn_summary_if`], read
    /// first, so anything committed after it makes the write miss), then its newest `limit`
    /// user-visible messages, oldest first. `None` when the chat does not exist or has no
    /// message.
    pub async fn turn_summary_source(
        &self,
        chat_id: Uuid,
        limit: i64,
    ) -> Result<Option<TurnSummarySource>> {
        let mut conn = self.pool().acquire().await.db()?;
        let row = sqlx::query(
            "SELECT owner_id, organization_id, parent_chat_id, last_model_config_id, status, \
             (SELECT MAX(id) FROM chat_messages m WHERE m.chat_id = chats.id \
              AND m.deleted = 0) AS newest_id \
             FROM chats WHERE id = $1",
        )
        .bind(uuid_text(chat_id))
        .fetch_optional(&mut *conn)
        .await
        .db()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let Some(as_of) = row.try_get::<Option<i64>, _>("newest_id").db()? else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE chat_id = $1 \
             AND visibility IN ('user', 'both') AND deleted = 0 ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_text(chat_id))
            .bind(limit.max(0))
            .fetch_all(&mut *conn)
            .await
            .db()?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>>>()?;
        messages.reverse();
        Ok(Some(TurnSummarySource {
            owner_id: get_uuid(&row, "owner_id")?,
            organization_id: get_uuid(&row, "organization_id")?,
            parent_chat_id: get_opt_uuid(&row, "parent_chat_id")?,
            last_model_config_id: get_uuid(&row, "last_model_config_id")?,
            status: codersdk::ChatStatus::from_wire(&row.try_get::<String, _>("status").db()?),
            as_of,
            messages,
        }))
    }

    /// The id of the chat's newest message that is not deleted, whatever its visibility;
    /// `None` when it has none. Hidden usage rows are deleted from the start, so a model
    /// call's accounting never counts as a new message. The stale-write guard of
    /// [`Store::set_turn_summary_if`] compares against it.
    /// [`ErrorKind::NotFound`] when the chat does not exist.
    pub async fn newest_message_id(&self, chat_id: Uuid) -> Result<Option<i64>> {
        let mut conn = self.pool().acquire().await.db()?;
        super::ensure_chat_exists(&mut conn, chat_id).await?;
        sqlx::query_scalar("SELECT MAX(id) FROM chat_messages WHERE chat_id = $1 AND deleted = 0")
            .bind(uuid_text(chat_id))
            .fetch_one(&mut *conn)
            .await
            .db()
    }

    /// Stores the turn summary as [`normalize_turn_summary`] makes it (trimmed, cut to
    /// [`MAX_TURN_SUMMARY_RUNES`], blank → `NULL`) without bumping `updated_at`, but only
    /// while the chat's newest non-deleted message is still `as_of`
    /// ([`Store::newest_message_id`] read when the summary's generation started): a summary
    /// of an older state that arrives after a newer message (a send, an edit, the next
    /// turn's reply) is dropped instead of overwriting the newer state. Returns whether it
    /// was written (`false` also when the value is unchanged).
    /// [`ErrorKind::NotFound`] when the chat does not exist.
    ///
    /// The check and the write are one statement, run under the chat's row lock, so a
    /// message committed by another transaction is either seen by the check or waits for
    /// the write.
    pub async fn set_turn_summary_if(
        &self,
        chat_id: Uuid,
        as_of: i64,
        summary: Option<String>,
    ) -> Result<bool> {
        let summary = normalize_turn_summary(summary.as_deref());
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = summary_in_tx(&mut tx, self.dialect(), as_of, summary).await;
        tx.finish(result).await
    }

    /// [`Store::begin_chat_tx`] that first locks the chat's owner: operations that renumber
    /// the owner's other chats (pinning) serialize on it. The owner lock is always taken
    /// before any chat lock, so two of them cannot deadlock; PostgreSQL uses `FOR NO KEY
    /// UPDATE`, which does not block inserts referencing the user.
    async fn begin_owner_chat_tx(&self, chat_id: Uuid) -> Result<ChatTx> {
        let mut tx = self.begin_write().await?;
        match lock_owner_then_chat(&mut tx, self.dialect(), chat_id).await {
            Ok(true) => Ok(ChatTx {
                tx,
                chat_id,
                locked: None,
            }),
            Ok(false) => {
                tx.rollback().await.db()?;
                Err(chat_not_found(chat_id))
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

/// What [`Store::turn_summary_source`] reads.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TurnSummarySource {
    /// The chat's owner.
    pub owner_id: Uuid,
    /// The chat's organization.
    pub organization_id: Uuid,
    /// The parent of a sub-agent chat.
    pub parent_chat_id: Option<Uuid>,
    /// The chat's last model config.
    pub last_model_config_id: Uuid,
    /// The chat's status.
    pub status: codersdk::ChatStatus,
    /// The newest non-deleted message, whatever its visibility, when this was read.
    pub as_of: i64,
    /// The newest user-visible messages, oldest first.
    pub messages: Vec<codersdk::ChatMessage>,
}

/// Locks the owner of `chat_id`, then the chat; `false` when the chat does not exist.
async fn lock_owner_then_chat(
    conn: &mut AnyConnection,
    dialect: Dialect,
    chat_id: Uuid,
) -> Result<bool> {
    // The owner of a chat never changes, so reading it before the lock is safe.
    let owner: Option<String> = sqlx::query_scalar("SELECT owner_id FROM chats WHERE id = $1")
        .bind(uuid_text(chat_id))
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    let Some(owner) = owner else {
        return Ok(false);
    };
    if dialect == Dialect::Sqlite {
        // `BEGIN IMMEDIATE` already holds the database's single write lock.
        return Ok(true);
    }
    sqlx::query("SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE")
        .bind(owner)
        .execute(&mut *conn)
        .await
        .db()?;
    let found = sqlx::query("SELECT id FROM chats WHERE id = $1 FOR UPDATE")
        .bind(uuid_text(chat_id))
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    Ok(found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_pattern_escapes_wildcards() {
        assert_eq!(contains_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(contains_pattern(""), "%%");
    }

    #[test]
    fn turn_summary_is_trimmed_and_cut_at_the_limit() {
        assert_eq!(normalize_turn_summary(None), None);
        assert_eq!(normalize_turn_summary(Some(" \n\t ")), None);
        assert_eq!(
            normalize_turn_summary(Some("  Fixed the build \n")).as_deref(),
            Some("Fixed the build")
        );
        let at = "é".repeat(MAX_TURN_SUMMARY_RUNES);
        assert_eq!(normalize_turn_summary(Some(&at)), Some(at.clone()));
        let over = format!("{at}x");
        assert_eq!(normalize_turn_summary(Some(&over)), Some(at));
        // A cut that lands after a space does not leave trailing whitespace.
        let spaced = format!("{} tail", "a".repeat(MAX_TURN_SUMMARY_RUNES - 1));
        assert_eq!(
            normalize_turn_summary(Some(&spaced)),
            Some("a".repeat(MAX_TURN_SUMMARY_RUNES - 1))
        );
    }
}
