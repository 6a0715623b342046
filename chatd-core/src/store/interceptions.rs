//! The AI Gateway's records (migration 0018, docs/ai-gateway-records.md): interceptions
//! written in batches by the recorder ([`crate::aibridge::Recorder`]), the listing with a
//! keyset cursor, and the sessions listing, which pages the session rows first and then
//! reads only the page's calls.
//!
//! A session is keyed per user by `session_key`: the client's session id, else the
//! session of the call whose tool calls this one answered (its thread), else the call's
//! own id. The writer keeps one `aibridge_sessions` row per key (first and last start), so
//! a page of sessions is one indexed range read whatever the table holds.
//!
//! The retention purge ([`Store::purge_interceptions`], run by the engine's retention
//! sweep) deletes calls that started before a cutoff in bounded batches, with their tool
//! usages, and keeps the session rows true to the calls that remain.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use codersdk::{
    AIBridgeInitiator, AIBridgeInterception, AIBridgeInterceptionError, AIBridgeSession,
    AIBridgeSessionTokenUsageSummary, AIBridgeTokenUsage, AIBridgeToolUsage, AIBridgeUserPrompt,
    ChatMessageUsage, Uuid,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{
    finish_tx, get_bool, get_opt_uuid, get_uuid, placeholders, timestamp_from_micros, uuid_text,
    Dialect, Store,
};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Most tool-result call ids one record is linked by: the first this many of a request
/// are looked up (a request answering more calls than this is linked by its first ones).
pub const MAX_THREAD_LINK_CALL_IDS: usize = 64;

/// Most tool usages stored per interception; the rest are counted in the logs only.
pub const MAX_TOOL_USAGES_PER_INTERCEPTION: usize = 256;

/// Most interceptions or sessions one listing page holds.
pub const MAX_INTERCEPTION_PAGE: i64 = 1000;

/// Most interceptions one [`Store::purge_interceptions`] call deletes, whatever `limit` it
/// is given: the batch's ids and sessions are statement parameters (two per session), and
/// a batch is one transaction that must stay short. The retention sweep asks for
/// [`RETENTION_BATCH_SIZE`](crate::RETENTION_BATCH_SIZE).
pub const MAX_INTERCEPTION_PURGE_BATCH: usize = 1000;

/// What one [`Store::purge_interceptions`] batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgedInterceptions {
    /// Interceptions (calls) deleted.
    pub interceptions: u64,
    /// Their tool usages.
    pub tool_usages: u64,
    /// Session rows left without any call, deleted.
    pub sessions: u64,
}

/// One tool call of a [`NewInterception`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToolUsage {
    /// The provider's call id (empty when it gave none).
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// The size of its arguments in bytes.
    pub argument_bytes: i64,
}

/// One interception as the recorder writes it: the gateway's record with its cost
/// computed and its prompt bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewInterception {
    /// The record's id.
    pub id: Uuid,
    /// The user the call is attributed to.
    pub user_id: Uuid,
    /// The provider instance's name.
    pub provider_name: String,
    /// The instance's type.
    pub provider_type: String,
    /// The API called (`chat_completions`, …).
    pub api: String,
    /// The model the request asked for.
    pub requested_model: String,
    /// The model that answered.
    pub model: String,
    /// The client, from its `User-Agent`.
    pub client: Option<String>,
    /// The client's session id.
    pub client_session_id: Option<String>,
    /// Unix microseconds.
    pub started_at: i64,
    /// Unix microseconds.
    pub ended_at: i64,
    /// The upstream's HTTP status.
    pub upstream_status: Option<i64>,
    /// The classified failure's kind.
    pub error_kind: Option<String>,
    /// The failure's message, redacted.
    pub error_message: Option<String>,
    /// Whether the client went away first.
    pub client_disconnected: bool,
    /// Whether the request asked for a stream.
    pub streamed: bool,
    /// Normalized usage.
    pub usage: ChatMessageUsage,
    /// Exact cost; `None` when unpriced.
    pub cost_micros: Option<i64>,
    /// `central` or `byok`.
    pub credential_kind: String,
    /// The masked credential hint.
    pub credential_hint: String,
    /// The bounded prompt, when recorded.
    pub prompt: Option<String>,
    /// The client's correlation id.
    pub correlation_id: Option<String>,
    /// The model's tool calls (at most [`MAX_TOOL_USAGES_PER_INTERCEPTION`] are stored).
    pub tool_calls: Vec<NewToolUsage>,
    /// Call ids whose results the request carried (the thread link).
    pub tool_result_call_ids: Vec<String>,
}

impl NewInterception {
    /// A record with the given identity and everything else empty, for tests and the
    /// recorder to fill in.
    pub fn new(id: Uuid, user_id: Uuid, provider_name: &str, provider_type: &str) -> Self {
        NewInterception {
            id,
            user_id,
            provider_name: provider_name.to_owned(),
            provider_type: provider_type.to_owned(),
            api: String::new(),
            requested_model: String::new(),
            model: String::new(),
            client: None,
            client_session_id: None,
            started_at: 0,
            ended_at: 0,
            upstream_status: None,
            error_kind: None,
            error_message: None,
            client_disconnected: false,
            streamed: false,
            usage: ChatMessageUsage::default(),
            cost_micros: None,
            credential_kind: String::new(),
            credential_hint: String::new(),
            prompt: None,
            correlation_id: None,
            tool_calls: Vec::new(),
            tool_result_call_ids: Vec::new(),
        }
    }
}

/// Where a written interception sits: its thread and session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThreadLink {
    /// The interception whose tool calls it answered.
    pub parent: Option<Uuid>,
    /// The thread's first interception (its own id without a parent).
    pub root: Uuid,
    /// The session key.
    pub session_key: String,
}

/// The listing's filters; every one optional ([`Store::list_interceptions`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InterceptionFilter {
    /// Only this user's calls.
    pub user_id: Option<Uuid>,
    /// Only calls through this provider instance.
    pub provider_name: Option<String>,
    /// Only calls answered by this model.
    pub model: Option<String>,
    /// Started at or after (Unix microseconds).
    pub started_after: Option<i64>,
    /// Started before (Unix microseconds).
    pub started_before: Option<i64>,
}

/// A page asked of [`Store::list_interceptions`]: after which interception, how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterceptionPageRequest {
    /// The last interception of the previous page.
    pub after_id: Option<Uuid>,
    /// Page size, clamped to `1..=`[`MAX_INTERCEPTION_PAGE`].
    pub limit: i64,
}

/// One page of interceptions, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct InterceptionPage {
    /// The page.
    pub results: Vec<AIBridgeInterception>,
    /// Whether more follow (the last result is the next cursor).
    pub more: bool,
}

/// One page of sessions, the most recently started first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SessionPage {
    /// The page.
    pub sessions: Vec<AIBridgeSession>,
    /// The cursor of the next page, when more follow.
    pub next_cursor: Option<String>,
}

/// A parameter of a statement built at run time.
enum Arg {
    Text(String),
    Int(i64),
}

/// A `WHERE` clause built from optional filters, numbering its parameters.
#[derive(Default)]
struct Clause {
    parts: Vec<String>,
    args: Vec<Arg>,
}

impl Clause {
    fn next(&self) -> usize {
        self.args.len().saturating_add(1)
    }
    fn push_text(&mut self, sql: impl FnOnce(usize) -> String, value: String) {
        let n = self.next();
        self.parts.push(sql(n));
        self.args.push(Arg::Text(value));
    }
    fn push_int(&mut self, sql: impl FnOnce(usize) -> String, value: i64) {
        let n = self.next();
        self.parts.push(sql(n));
        self.args.push(Arg::Int(value));
    }
    fn sql(&self) -> String {
        if self.parts.is_empty() {
            "TRUE".to_owned()
        } else {
            self.parts.join(" AND ")
        }
    }
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for arg in args {
        query = match arg {
            Arg::Text(t) => query.bind(t),
            Arg::Int(i) => query.bind(i),
        };
    }
    query
}

/// The session cursor: `<started_at>:<user id>:<session key>` in URL-safe base64, opaque to
/// clients.
fn encode_session_cursor(started_at: i64, user_id: Uuid, key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{started_at}:{user_id}:{key}"))
}

/// Most bytes of a session cursor (a session key is bounded by the client session id the
/// gateway accepts; this leaves room for any).
pub const MAX_SESSION_CURSOR_BYTES: usize = 2048;

/// The message of a cursor that is not one this server gave out.
pub const INVALID_SESSION_CURSOR_MESSAGE: &str = "The cursor is not one this server returned.";

/// The parts of a session cursor; [`ErrorKind::InvalidArgument`] for anything else.
pub fn decode_session_cursor(cursor: &str) -> Result<(i64, Uuid, String)> {
    use base64::Engine as _;
    let invalid = || Error::new(ErrorKind::InvalidArgument, INVALID_SESSION_CURSOR_MESSAGE);
    if cursor.len() > MAX_SESSION_CURSOR_BYTES {
        return Err(invalid());
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    let (started, rest) = text.split_once(':').ok_or_else(invalid)?;
    let (user, key) = rest.split_once(':').ok_or_else(invalid)?;
    let started = started.parse::<i64>().map_err(|_| invalid())?;
    let user = Uuid::parse_str(user).map_err(|_| invalid())?;
    Ok((started, user, key.to_owned()))
}

impl Store {
    /// Writes `batch` in one transaction, in order: each record is linked to the latest
    /// earlier interception of the same user that made one of the tool calls it answers
    /// (earlier records of the batch first), its tool usages are stored, and its session
    /// row is created or widened. Multi-row inserts: a handful of statements per batch,
    /// plus one lookup per record answering calls made outside the batch. Returns each
    /// record's thread link.
    pub async fn record_interceptions(&self, batch: &[NewInterception]) -> Result<Vec<ThreadLink>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let result = record_batch(&mut tx, batch).await;
        finish_tx(tx, result).await
    }

    /// Deletes, in one transaction, up to `limit` (at most [`MAX_INTERCEPTION_PURGE_BATCH`];
    /// 0 deletes nothing) interceptions that started before `started_before` (Unix microseconds; a call
    /// starting exactly then stays), oldest first, with their tool usages. Their sessions
    /// follow what remains: a session left without calls is deleted, the others get the
    /// first and last start of their remaining calls, so the sessions listing pages and
    /// filters by calls that still exist. Thread links of later calls that name a purged
    /// call as their parent or root are kept as they are (they are ids, not references).
    ///
    /// On PostgreSQL the batch's session rows are locked first, in the order the recorder
    /// locks them (user, then key: no deadlock with a batch being written), and the
    /// session statements run after the locks: a call of the same session written at the
    /// same moment either commits first (the session stays, its start recomputed) or waits
    /// and then recreates the session row. On SQLite the write transaction holds the
    /// database.
    pub async fn purge_interceptions(
        &self,
        started_before: i64,
        limit: usize,
    ) -> Result<PurgedInterceptions> {
        let limit = limit.min(MAX_INTERCEPTION_PURGE_BATCH);
        if limit == 0 {
            return Ok(PurgedInterceptions::default());
        }
        let dialect = self.dialect();
        let mut tx = self.begin_write().await?;
        let result = purge_batch(&mut tx, dialect, started_before, limit).await;
        finish_tx(tx, result).await
    }

    /// One page of interceptions matching `filter`, newest first (by start, then id),
    /// after `page.after_id` when given (an id that is not in the filtered set is
    /// [`ErrorKind::InvalidArgument`]). Two statements: the page (one indexed range read,
    /// `limit + 1` rows) and its tool usages.
    pub async fn list_interceptions(
        &self,
        filter: &InterceptionFilter,
        page: InterceptionPageRequest,
    ) -> Result<InterceptionPage> {
        let limit = page.limit.clamp(1, MAX_INTERCEPTION_PAGE);
        let mut clause = Clause::default();
        if let Some(user) = filter.user_id {
            clause.push_text(|n| format!("i.user_id = ${n}"), uuid_text(user));
        }
        if let Some(provider) = &filter.provider_name {
            clause.push_text(|n| format!("i.provider_name = ${n}"), provider.clone());
        }
        if let Some(model) = &filter.model {
            clause.push_text(|n| format!("i.model = ${n}"), model.clone());
        }
        if let Some(after) = filter.started_after {
            clause.push_int(|n| format!("i.started_at >= ${n}"), after);
        }
        if let Some(before) = filter.started_before {
            clause.push_int(|n| format!("i.started_at < ${n}"), before);
        }
        if let Some(after_id) = page.after_id {
            // Only an interception the caller may list is a cursor: another user's id is
            // as unknown as a made-up one.
            let row = sqlx::query(
                "SELECT started_at FROM aibridge_interceptions WHERE id = $1 \
                 AND ($2 = '' OR user_id = $2)",
            )
            .bind(uuid_text(after_id))
            .bind(filter.user_id.map(uuid_text).unwrap_or_default())
            .fetch_optional(self.pool())
            .await
            .db()?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    "after_id names no interception.",
                )
            })?;
            let at: i64 = row.try_get("started_at").db()?;
            let t = clause.next();
            clause.parts.push(format!(
                "(i.started_at < ${t} OR (i.started_at = ${t} AND i.id < ${}))",
                t.saturating_add(1)
            ));
            clause.args.push(Arg::Int(at));
            clause.args.push(Arg::Text(uuid_text(after_id)));
        }
        let n = clause.next();
        let sql = format!(
            "SELECT i.*, u.username AS username, u.name AS user_name \
             FROM aibridge_interceptions i JOIN users u ON u.id = i.user_id \
             WHERE {} ORDER BY i.started_at DESC, i.id DESC LIMIT ${n}",
            clause.sql()
        );
        let mut args = clause.args;
        args.push(Arg::Int(limit.saturating_add(1)));
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), args)
            .fetch_all(self.pool())
            .await
            .db()?;
        let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > limit;
        let mut results = rows
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(interception_from_row)
            .collect::<Result<Vec<_>>>()?;
        if !results.is_empty() {
            let ids: Vec<String> = results.iter().map(|r| uuid_text(r.id)).collect();
            let placeholders = placeholders(1, ids.len());
            let sql = format!(
                "SELECT interception_id, call_id, name, argument_bytes \
                 FROM aibridge_tool_usages WHERE interception_id IN ({placeholders}) \
                 ORDER BY interception_id, ordinal"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in ids {
                query = query.bind(id);
            }
            let rows = query.fetch_all(self.pool()).await.db()?;
            let mut by_id: HashMap<Uuid, Vec<(String, String, i64)>> = HashMap::new();
            for row in &rows {
                by_id
                    .entry(get_uuid(row, "interception_id")?)
                    .or_default()
                    .push((
                        row.try_get("call_id").db()?,
                        row.try_get("name").db()?,
                        row.try_get("argument_bytes").db()?,
                    ));
            }
            for result in &mut results {
                if let Some(calls) = by_id.remove(&result.id) {
                    result.tool_usages = calls
                        .into_iter()
                        .map(|(call_id, tool, argument_bytes)| AIBridgeToolUsage {
                            interception_id: result.id,
                            call_id,
                            tool,
                            argument_bytes,
                            created_at: result.ended_at,
                        })
                        .collect();
                }
            }
        }
        Ok(InterceptionPage { results, more })
    }

    /// One page of sessions, the most recently started first (by first start, then user
    /// and key), of `user_id` or everyone, started in `[started_after, started_before)`
    /// when given, after `cursor` (from an earlier page). Paginates the session rows first
    /// (one indexed range read of `limit + 1` rows), then enriches only the page's
    /// sessions from their calls (four statements bounded by the page's calls), all in
    /// one read snapshot.
    pub async fn list_interception_sessions(
        &self,
        user_id: Option<Uuid>,
        started_after: Option<i64>,
        started_before: Option<i64>,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<SessionPage> {
        let limit = limit.clamp(1, MAX_INTERCEPTION_PAGE);
        let cursor = cursor.map(decode_session_cursor).transpose()?;
        let mut tx = self.pool().begin_with(self.snapshot_begin()).await.db()?;
        let result = sessions_in_tx(
            &mut tx,
            user_id,
            started_after,
            started_before,
            cursor,
            limit,
        )
        .await;
        finish_tx(tx, result).await
    }
}

/// The statements of the sessions listing's first step and of the spend, for `EXPLAIN` in
/// the benchmark (`benches/interceptions.rs`): name, SQL. `sessions_page` takes `$1` the
/// limit; `sessions_page_user` `$1` the user, `$2` the limit.
#[doc(hidden)]
pub fn session_page_statements() -> Vec<(&'static str, String)> {
    vec![
        ("sessions_page", session_page_sql(&Clause::default(), 1)),
        ("sessions_page_user", {
            let mut c = Clause::default();
            c.push_text(|n| format!("s.user_id = ${n}"), String::new());
            session_page_sql(&c, 2)
        }),
    ]
}

fn session_page_sql(clause: &Clause, limit_param: usize) -> String {
    format!(
        "SELECT s.user_id AS user_id, s.session_key AS session_key, s.started_at AS started_at, \
         u.username AS username, u.name AS user_name \
         FROM aibridge_sessions s JOIN users u ON u.id = s.user_id WHERE {} \
         ORDER BY s.started_at DESC, s.user_id DESC, s.session_key DESC LIMIT ${limit_param}",
        clause.sql()
    )
}

async fn sessions_in_tx(
    conn: &mut AnyConnection,
    user_id: Option<Uuid>,
    started_after: Option<i64>,
    started_before: Option<i64>,
    cursor: Option<(i64, Uuid, String)>,
    limit: i64,
) -> Result<SessionPage> {
    let mut clause = Clause::default();
    if let Some(user) = user_id {
        clause.push_text(|n| format!("s.user_id = ${n}"), uuid_text(user));
    }
    if let Some(after) = started_after {
        clause.push_int(|n| format!("s.started_at >= ${n}"), after);
    }
    if let Some(before) = started_before {
        clause.push_int(|n| format!("s.started_at < ${n}"), before);
    }
    if let Some((at, user, key)) = cursor {
        let t = clause.next();
        let u = t.saturating_add(1);
        let k = t.saturating_add(2);
        clause.parts.push(format!(
            "(s.started_at < ${t} OR (s.started_at = ${t} AND (s.user_id < ${u} \
             OR (s.user_id = ${u} AND s.session_key < ${k}))))"
        ));
        clause.args.push(Arg::Int(at));
        clause.args.push(Arg::Text(uuid_text(user)));
        clause.args.push(Arg::Text(key));
    }
    let sql = session_page_sql(&clause, clause.next());
    let mut args = clause.args;
    args.push(Arg::Int(limit.saturating_add(1)));
    let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), args)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let page_len = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > page_len;
    struct Key {
        user: Uuid,
        key: String,
        started_at: i64,
        initiator: AIBridgeInitiator,
    }
    let keys = rows
        .iter()
        .take(page_len)
        .map(|row| {
            let user = get_uuid(row, "user_id")?;
            Ok(Key {
                user,
                key: row.try_get("session_key").db()?,
                started_at: row.try_get("started_at").db()?,
                initiator: AIBridgeInitiator {
                    id: user,
                    username: row.try_get("username").db()?,
                    name: row.try_get("user_name").db()?,
                    avatar_url: String::new(),
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() {
        return Ok(SessionPage::default());
    }
    // The page's sessions, each term one range of the (user_id, session_key) index.
    let terms = session_terms("i", keys.len());
    let bind_keys = |sql: String| {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for k in &keys {
            query = query.bind(uuid_text(k.user)).bind(k.key.clone());
        }
        query
    };
    type SessionId = (Uuid, String);
    let mut sums: HashMap<SessionId, AIBridgeSession> = HashMap::new();
    let rows = bind_keys(format!(
        "SELECT i.user_id AS user_id, i.session_key AS session_key, \
         CAST(COUNT(*) AS BIGINT) AS calls, \
         CAST(COUNT(DISTINCT i.thread_root_id) AS BIGINT) AS threads, \
         MIN(i.started_at) AS first_start, MAX(i.ended_at) AS last_end, MAX(i.client) AS client, \
         CAST(COALESCE(SUM(i.input_tokens), 0) AS BIGINT) AS input_tokens, \
         CAST(COALESCE(SUM(i.output_tokens), 0) AS BIGINT) AS output_tokens, \
         CAST(COALESCE(SUM(i.cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens, \
         CAST(COALESCE(SUM(i.cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
         CAST(COALESCE(SUM(i.reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens, \
         CAST(COALESCE(SUM(i.cost_micros), 0) AS BIGINT) AS cost, \
         CAST(COUNT(i.cost_micros) AS BIGINT) AS priced \
         FROM aibridge_interceptions i WHERE {terms} GROUP BY i.user_id, i.session_key"
    ))
    .fetch_all(&mut *conn)
    .await
    .db()?;
    for row in &rows {
        let id: SessionId = (get_uuid(row, "user_id")?, row.try_get("session_key").db()?);
        let calls: i64 = row.try_get("calls").db()?;
        let priced: i64 = row.try_get("priced").db()?;
        sums.insert(
            id.clone(),
            AIBridgeSession {
                id: id.1.clone(),
                initiator: AIBridgeInitiator {
                    id: id.0,
                    username: String::new(),
                    name: String::new(),
                    avatar_url: String::new(),
                },
                providers: Vec::new(),
                models: Vec::new(),
                client: row.try_get("client").db()?,
                started_at: timestamp_from_micros(row.try_get("first_start").db()?)?,
                ended_at: timestamp_from_micros(row.try_get("last_end").db()?)?,
                interception_count: calls,
                threads: row.try_get("threads").db()?,
                tool_call_count: 0,
                token_usage_summary: AIBridgeSessionTokenUsageSummary {
                    input_tokens: row.try_get("input_tokens").db()?,
                    output_tokens: row.try_get("output_tokens").db()?,
                    cache_read_input_tokens: row.try_get("cache_read_tokens").db()?,
                    cache_creation_input_tokens: row.try_get("cache_write_tokens").db()?,
                    reasoning_tokens: row.try_get("reasoning_tokens").db()?,
                },
                total_cost_micros: row.try_get("cost").db()?,
                unpriced_count: calls.saturating_sub(priced),
                last_prompt: None,
            },
        );
    }
    // Distinct (provider, model) pairs per session.
    let rows = bind_keys(format!(
        "SELECT DISTINCT i.user_id AS user_id, i.session_key AS session_key, \
         i.provider_name AS provider_name, i.model AS model \
         FROM aibridge_interceptions i WHERE {terms}"
    ))
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let mut sets: HashMap<SessionId, (BTreeSet<String>, BTreeSet<String>)> = HashMap::new();
    for row in &rows {
        let id: SessionId = (get_uuid(row, "user_id")?, row.try_get("session_key").db()?);
        let entry = sets.entry(id).or_default();
        entry.0.insert(row.try_get("provider_name").db()?);
        entry.1.insert(row.try_get("model").db()?);
    }
    // Tool calls per session.
    let rows = bind_keys(format!(
        "SELECT i.user_id AS user_id, i.session_key AS session_key, \
         CAST(COUNT(*) AS BIGINT) AS tools \
         FROM aibridge_tool_usages t JOIN aibridge_interceptions i ON i.id = t.interception_id \
         WHERE {terms} GROUP BY i.user_id, i.session_key"
    ))
    .fetch_all(&mut *conn)
    .await
    .db()?;
    for row in &rows {
        let id: SessionId = (get_uuid(row, "user_id")?, row.try_get("session_key").db()?);
        if let Some(s) = sums.get_mut(&id) {
            s.tool_call_count = row.try_get("tools").db()?;
        }
    }
    // The newest recorded prompt per session.
    let rows = bind_keys(format!(
        "SELECT user_id, session_key, prompt FROM (SELECT i.user_id AS user_id, \
         i.session_key AS session_key, i.prompt AS prompt, ROW_NUMBER() OVER \
         (PARTITION BY i.user_id, i.session_key ORDER BY i.started_at DESC, i.id DESC) AS rn \
         FROM aibridge_interceptions i WHERE ({terms}) AND i.prompt IS NOT NULL) p \
         WHERE p.rn = 1"
    ))
    .fetch_all(&mut *conn)
    .await
    .db()?;
    for row in &rows {
        let id: SessionId = (get_uuid(row, "user_id")?, row.try_get("session_key").db()?);
        if let Some(s) = sums.get_mut(&id) {
            s.last_prompt = row.try_get("prompt").db()?;
        }
    }
    let next_cursor = if more {
        keys.last()
            .map(|k| encode_session_cursor(k.started_at, k.user, &k.key))
    } else {
        None
    };
    let mut sessions = Vec::with_capacity(keys.len());
    for k in keys {
        let id = (k.user, k.key);
        // A session row without calls cannot happen (both are written in one
        // transaction, and calls go only with their user); skip rather than invent.
        let Some(mut s) = sums.remove(&id) else {
            continue;
        };
        s.initiator = k.initiator;
        if let Some((providers, models)) = sets.remove(&id) {
            s.providers = providers.into_iter().collect();
            s.models = models.into_iter().collect();
        }
        sessions.push(s);
    }
    Ok(SessionPage {
        sessions,
        next_cursor,
    })
}

/// `(alias.user_id = $1 AND alias.session_key = $2) OR …` for `n` sessions, bound as
/// user id then key: each term one range of the (user_id, session_key) index.
fn session_terms(alias: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            let a = i.saturating_mul(2).saturating_add(1);
            format!(
                "({alias}.user_id = ${a} AND {alias}.session_key = ${})",
                a.saturating_add(1)
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// [`Store::purge_interceptions`] inside `conn`'s transaction.
async fn purge_batch(
    conn: &mut AnyConnection,
    dialect: Dialect,
    started_before: i64,
    limit: usize,
) -> Result<PurgedInterceptions> {
    // Oldest first through the (started_at, id) index: each batch reads only what it
    // deletes. Calls are never updated after they are written, so they need no lock.
    let rows = sqlx::query(
        "SELECT id, user_id, session_key FROM aibridge_interceptions WHERE started_at < $1 \
         ORDER BY started_at, id LIMIT $2",
    )
    .bind(started_before)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .db()?;
    if rows.is_empty() {
        return Ok(PurgedInterceptions::default());
    }
    let mut ids = Vec::with_capacity(rows.len());
    // Text order of (user id, key) is the recorder's (Uuid, key) order: a lowercase
    // hyphenated UUID sorts as its bytes.
    let mut sessions: BTreeSet<(String, String)> = BTreeSet::new();
    for row in &rows {
        ids.push(row.try_get::<String, _>("id").db()?);
        sessions.insert((
            row.try_get("user_id").db()?,
            row.try_get("session_key").db()?,
        ));
    }
    if dialect == Dialect::Postgres {
        for (user, key) in &sessions {
            sqlx::query(
                "SELECT 1 FROM aibridge_sessions WHERE user_id = $1 AND session_key = $2 \
                 FOR UPDATE",
            )
            .bind(user)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
        }
    }
    let in_ids = placeholders(1, ids.len());
    let bind_ids = |sql: String| {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(id.clone());
        }
        q
    };
    // Explicitly rather than by cascade: SQLite does not count the rows a cascade deletes.
    let tool_usages = bind_ids(format!(
        "DELETE FROM aibridge_tool_usages WHERE interception_id IN ({in_ids})"
    ))
    .execute(&mut *conn)
    .await
    .db()?
    .rows_affected();
    let interceptions = bind_ids(format!(
        "DELETE FROM aibridge_interceptions WHERE id IN ({in_ids})"
    ))
    .execute(&mut *conn)
    .await
    .db()?
    .rows_affected();
    let terms = session_terms("aibridge_sessions", sessions.len());
    let bind_sessions = |sql: String| {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (user, key) in &sessions {
            q = q.bind(user.clone()).bind(key.clone());
        }
        q
    };
    let calls_of_session = "FROM aibridge_interceptions i \
         WHERE i.user_id = aibridge_sessions.user_id \
         AND i.session_key = aibridge_sessions.session_key";
    let emptied = bind_sessions(format!(
        "DELETE FROM aibridge_sessions WHERE ({terms}) \
         AND NOT EXISTS (SELECT 1 {calls_of_session})"
    ))
    .execute(&mut *conn)
    .await
    .db()?
    .rows_affected();
    // The sessions that keep calls start (and last started) where those calls do.
    bind_sessions(format!(
        "UPDATE aibridge_sessions SET \
         started_at = (SELECT MIN(i.started_at) {calls_of_session}), \
         last_started_at = (SELECT MAX(i.started_at) {calls_of_session}) \
         WHERE ({terms}) AND EXISTS (SELECT 1 {calls_of_session})"
    ))
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(PurgedInterceptions {
        interceptions,
        tool_usages,
        sessions: emptied,
    })
}

/// Rows per multi-row `INSERT` of interceptions (29 parameters each: 1 856 per statement,
/// under SQLite's and PostgreSQL's parameter limits).
const INTERCEPTION_ROWS_PER_INSERT: usize = 64;

/// Rows per multi-row `INSERT` of tool usages and of session rows.
const SMALL_ROWS_PER_INSERT: usize = 256;

/// Where the interception that made a call sits: its place in the batch, id, thread root
/// and session key.
type CallSite = (usize, Uuid, Uuid, String);

/// A call made earlier in the batch, by (user, call id).
type BatchCall = ((Uuid, String), CallSite);

/// The thread parent of `r`: a call of an earlier record of the batch first (the newest),
/// else the newest stored interception of the same user that made one of the calls.
async fn find_parent(
    conn: &mut AnyConnection,
    r: &NewInterception,
    batch_calls: &HashMap<(Uuid, String), CallSite>,
) -> Result<Option<(Uuid, Uuid, String)>> {
    let call_ids: Vec<&str> = r
        .tool_result_call_ids
        .iter()
        .map(String::as_str)
        .filter(|id| !id.is_empty())
        .take(MAX_THREAD_LINK_CALL_IDS)
        .collect();
    if call_ids.is_empty() {
        return Ok(None);
    }
    // The latest record of the batch that made one of the calls.
    let in_batch = call_ids
        .iter()
        .filter_map(|id| batch_calls.get(&(r.user_id, (*id).to_owned())))
        .max_by_key(|site| site.0);
    if let Some((_, id, root, session)) = in_batch {
        return Ok(Some((*id, *root, session.clone())));
    }
    let placeholders = placeholders(2, call_ids.len());
    let sql = format!(
        "SELECT i.id AS id, i.thread_root_id AS root, i.session_key AS session_key \
         FROM aibridge_tool_usages t JOIN aibridge_interceptions i ON i.id = t.interception_id \
         WHERE i.user_id = $1 AND t.call_id IN ({placeholders}) \
         ORDER BY i.started_at DESC, i.id DESC LIMIT 1"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(uuid_text(r.user_id));
    for id in &call_ids {
        query = query.bind((*id).to_owned());
    }
    match query.fetch_optional(&mut *conn).await.db()? {
        Some(row) => Ok(Some((
            get_uuid(&row, "id")?,
            get_uuid(&row, "root")?,
            row.try_get::<String, _>("session_key").db()?,
        ))),
        None => Ok(None),
    }
}

/// `(${n}, ${n+1}, …)` groups for `rows` rows of `cols` parameters each.
fn value_groups(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let first = r.saturating_mul(cols).saturating_add(1);
            format!("({})", placeholders(first, cols))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes a batch inside `conn`'s transaction: thread links (one lookup per record that
/// answers calls not made in the batch), then multi-row inserts of the interceptions, their
/// tool usages and the sessions (widened once per session of the batch).
async fn record_batch(
    conn: &mut AnyConnection,
    batch: &[NewInterception],
) -> Result<Vec<ThreadLink>> {
    let mut links = Vec::with_capacity(batch.len());
    let mut batch_calls: HashMap<(Uuid, String), CallSite> = HashMap::new();
    for (index, r) in batch.iter().enumerate() {
        let link = match find_parent(conn, r, &batch_calls).await? {
            Some((parent, root, session)) => ThreadLink {
                parent: Some(parent),
                root,
                session_key: r.client_session_id.clone().unwrap_or(session),
            },
            None => ThreadLink {
                parent: None,
                root: r.id,
                session_key: r
                    .client_session_id
                    .clone()
                    .unwrap_or_else(|| uuid_text(r.id)),
            },
        };
        let calls: Vec<BatchCall> = r
            .tool_calls
            .iter()
            .filter(|c| !c.call_id.is_empty())
            .map(|c| {
                (
                    (r.user_id, c.call_id.clone()),
                    (index, r.id, link.root, link.session_key.clone()),
                )
            })
            .collect();
        batch_calls.extend(calls);
        links.push(link);
    }
    let rows: Vec<(&NewInterception, &ThreadLink)> = batch.iter().zip(&links).collect();
    for chunk in rows.chunks(INTERCEPTION_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO aibridge_interceptions (id, user_id, provider_name, provider_type, \
             api, requested_model, model, client, client_session_id, session_key, \
             thread_parent_id, thread_root_id, started_at, ended_at, upstream_status, \
             error_kind, error_message, client_disconnected, streamed, input_tokens, \
             output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, \
             cost_micros, credential_kind, credential_hint, prompt, correlation_id) VALUES {}",
            value_groups(chunk.len(), 29)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (r, link) in chunk {
            q = q
                .bind(uuid_text(r.id))
                .bind(uuid_text(r.user_id))
                .bind(r.provider_name.clone())
                .bind(r.provider_type.clone())
                .bind(r.api.clone())
                .bind(r.requested_model.clone())
                .bind(r.model.clone())
                .bind(r.client.clone())
                .bind(r.client_session_id.clone())
                .bind(link.session_key.clone())
                .bind(link.parent.map(uuid_text))
                .bind(uuid_text(link.root))
                .bind(r.started_at)
                .bind(r.ended_at)
                .bind(r.upstream_status)
                .bind(r.error_kind.clone())
                .bind(r.error_message.clone())
                .bind(i64::from(r.client_disconnected))
                .bind(i64::from(r.streamed))
                .bind(r.usage.input_tokens)
                .bind(r.usage.output_tokens)
                .bind(r.usage.cache_read_tokens)
                .bind(r.usage.cache_creation_tokens)
                .bind(r.usage.reasoning_tokens)
                .bind(r.cost_micros)
                .bind(r.credential_kind.clone())
                .bind(r.credential_hint.clone())
                .bind(r.prompt.clone())
                .bind(r.correlation_id.clone());
        }
        q.execute(&mut *conn).await.db()?;
    }
    let tools: Vec<(Uuid, i64, &NewToolUsage)> = batch
        .iter()
        .flat_map(|r| {
            r.tool_calls
                .iter()
                .take(MAX_TOOL_USAGES_PER_INTERCEPTION)
                .enumerate()
                .map(move |(i, c)| (r.id, i64::try_from(i).unwrap_or(i64::MAX), c))
        })
        .collect();
    for chunk in tools.chunks(SMALL_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO aibridge_tool_usages (interception_id, ordinal, call_id, name, \
             argument_bytes) VALUES {}",
            value_groups(chunk.len(), 5)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, ordinal, call) in chunk {
            q = q
                .bind(uuid_text(*id))
                .bind(*ordinal)
                .bind(call.call_id.clone())
                .bind(call.name.clone())
                .bind(call.argument_bytes);
        }
        q.execute(&mut *conn).await.db()?;
    }
    // One row per session of the batch (a multi-row upsert may not touch a row twice).
    let mut sessions: BTreeMap<(Uuid, String), (i64, i64)> = BTreeMap::new();
    for (r, link) in &rows {
        let span = sessions
            .entry((r.user_id, link.session_key.clone()))
            .or_insert((r.started_at, r.started_at));
        span.0 = span.0.min(r.started_at);
        span.1 = span.1.max(r.started_at);
    }
    let sessions: Vec<_> = sessions.into_iter().collect();
    for chunk in sessions.chunks(SMALL_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO aibridge_sessions (user_id, session_key, started_at, last_started_at) \
             VALUES {} ON CONFLICT (user_id, session_key) DO UPDATE SET \
             started_at = CASE WHEN excluded.started_at < aibridge_sessions.started_at \
               THEN excluded.started_at ELSE aibridge_sessions.started_at END, \
             last_started_at = CASE \
               WHEN excluded.last_started_at > aibridge_sessions.last_started_at \
               THEN excluded.last_started_at ELSE aibridge_sessions.last_started_at END",
            value_groups(chunk.len(), 4)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((user, key), (first, last)) in chunk {
            q = q
                .bind(uuid_text(*user))
                .bind(key.clone())
                .bind(*first)
                .bind(*last);
        }
        q.execute(&mut *conn).await.db()?;
    }
    Ok(links)
}

fn interception_from_row(row: &AnyRow) -> Result<AIBridgeInterception> {
    let id = get_uuid(row, "id")?;
    let user = get_uuid(row, "user_id")?;
    let started_at = timestamp_from_micros(row.try_get("started_at").db()?)?;
    let ended_at = timestamp_from_micros(row.try_get("ended_at").db()?)?;
    let input: Option<i64> = row.try_get("input_tokens").db()?;
    let output: Option<i64> = row.try_get("output_tokens").db()?;
    let cache_read: Option<i64> = row.try_get("cache_read_tokens").db()?;
    let cache_write: Option<i64> = row.try_get("cache_write_tokens").db()?;
    let reasoning: Option<i64> = row.try_get("reasoning_tokens").db()?;
    let any_usage = [input, output, cache_read, cache_write, reasoning]
        .iter()
        .any(Option::is_some);
    let token_usages = if any_usage {
        vec![AIBridgeTokenUsage {
            interception_id: id,
            input_tokens: input.unwrap_or(0),
            output_tokens: output.unwrap_or(0),
            cache_read_input_tokens: cache_read.unwrap_or(0),
            cache_creation_input_tokens: cache_write.unwrap_or(0),
            reasoning_tokens: reasoning.unwrap_or(0),
            created_at: ended_at,
        }]
    } else {
        Vec::new()
    };
    let prompt: Option<String> = row.try_get("prompt").db()?;
    let error_kind: Option<String> = row.try_get("error_kind").db()?;
    let error_message: Option<String> = row.try_get("error_message").db()?;
    Ok(AIBridgeInterception {
        id,
        initiator: AIBridgeInitiator {
            id: user,
            username: row.try_get("username").db()?,
            name: row.try_get("user_name").db()?,
            avatar_url: String::new(),
        },
        provider: row.try_get("provider_type").db()?,
        provider_name: row.try_get("provider_name").db()?,
        api: row.try_get("api").db()?,
        model: row.try_get("model").db()?,
        client: row.try_get("client").db()?,
        client_session_id: row.try_get("client_session_id").db()?,
        session_id: row.try_get("session_key").db()?,
        thread_parent_id: get_opt_uuid(row, "thread_parent_id")?,
        thread_root_id: get_uuid(row, "thread_root_id")?,
        started_at,
        ended_at,
        status: row.try_get("upstream_status").db()?,
        error: error_kind.map(|kind| AIBridgeInterceptionError {
            kind,
            message: error_message.unwrap_or_default(),
        }),
        client_disconnected: get_bool(row, "client_disconnected")?,
        streamed: get_bool(row, "streamed")?,
        credential_kind: row.try_get("credential_kind").db()?,
        credential_hint: row.try_get("credential_hint").db()?,
        correlation_id: row.try_get("correlation_id").db()?,
        total_cost_micros: row.try_get("cost_micros").db()?,
        token_usages,
        user_prompts: prompt
            .map(|prompt| AIBridgeUserPrompt {
                interception_id: id,
                prompt,
                created_at: started_at,
            })
            .into_iter()
            .collect(),
        tool_usages: Vec::new(),
    })
}
