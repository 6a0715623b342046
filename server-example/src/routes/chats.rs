//! The chat routes under `/api/experimental` (codersdk.md §5, §16.1–16.4): list, create,
//! read and change chats; read, send and edit messages; interrupt; client tool results;
//! the queue; titles on request.
//!
//! Handlers only parse and check the request (path ids, query keys, the JSON body) and call
//! the engine, which validates with codersdk's rules, authorizes (another user's chat is a
//! 404, an admin may read but not change it: 403) and answers with codersdk types. Every
//! failure is a JSON `Response` (see [`crate::error`]). docs/server-chats.md records the
//! choices.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use axum::Router;
use chatd_core::ChatListQuery;
use codersdk::{
    parse_message_id, parse_message_page, parse_workspace_ids, Chat, ChatMessage,
    ChatMessagesResponse, CreateChatMessageRequest, CreateChatMessageResponse, CreateChatRequest,
    EditChatMessageRequest, EditChatMessageResponse, ProposeChatTitleResponse, Response,
    SubmitToolResultsRequest, UpdateChatRequest, Uuid,
};

use crate::auth::{Caller, SESSION_TOKEN_QUERY};
use crate::error::{no_content, query_pairs, ApiError, ApiResult, Json};
use crate::state::AppState;

/// Most bytes of a `POST /chats` body (codersdk.md §1: chat creation reads at most 256 KiB
/// of JSON). Set on the route itself so it holds whatever the server-wide default becomes.
pub const MAX_CREATE_CHAT_BODY_BYTES: usize = 256 * 1024;

/// Query keys of `GET /chats` (§16.1). `label` repeats; the others may appear once.
const LIST_CHATS_KEYS: &[&str] = &[
    "q",
    "label",
    "limit",
    "offset",
    "after_id",
    SESSION_TOKEN_QUERY,
];

/// Query keys of `GET /chats/{chat}/messages` (§16.2).
const LIST_MESSAGES_KEYS: &[&str] = &["before_id", "after_id", "limit", SESSION_TOKEN_QUERY];

/// Query keys of `GET /chats/by-workspace` (§16.3).
const BY_WORKSPACE_KEYS: &[&str] = &["workspace_ids", SESSION_TOKEN_QUERY];

/// Query keys of every route that takes no parameters: only the token may be there.
const NO_KEYS: &[&str] = &[SESSION_TOKEN_QUERY];

/// The routes of this group.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/chats",
            get(list_chats)
                .post(create_chat)
                .layer(DefaultBodyLimit::max(MAX_CREATE_CHAT_BODY_BYTES)),
        )
        .route("/chats/by-workspace", get(chats_by_workspace))
        .route("/chats/{chat}", get(get_chat).patch(update_chat))
        .route(
            "/chats/{chat}/messages",
            get(list_messages).post(send_message),
        )
        .route("/chats/{chat}/messages/{message}", patch(edit_message))
        .route("/chats/{chat}/interrupt", post(interrupt))
        .route("/chats/{chat}/tool-results", post(submit_tool_results))
        .route(
            "/chats/{chat}/queue/{queued_message}",
            delete(delete_queued),
        )
        .route(
            "/chats/{chat}/queue/{queued_message}/promote",
            post(promote_queued),
        )
        .route("/chats/{chat}/title/regenerate", post(regenerate_title))
        .route("/chats/{chat}/title/propose", post(propose_title))
        .route("/chats/{chat}/diff", get(chat_diff))
}

/// `GET /chats`: the caller's root chats, filtered by `q` and `label`, paged by `limit`,
/// `offset` and `after_id`.
async fn list_chats(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Chat>>> {
    let pairs = query_pairs(raw.as_deref(), LIST_CHATS_KEYS)?;
    let labels = pairs
        .iter()
        .filter(|(k, _)| k == "label")
        .map(|(_, v)| v.as_str());
    let query = ChatListQuery::parse(
        once(&pairs, "q")?,
        labels,
        once(&pairs, "limit")?,
        once(&pairs, "offset")?,
        once(&pairs, "after_id")?,
    )?;
    let chats = state.engine().list_chats(&caller.actor, &query).await?;
    Ok(Json(chats))
}

/// `POST /chats` → 201 with the new chat, whose first turn is queued.
async fn create_chat(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    Json(request): Json<CreateChatRequest>,
) -> ApiResult<(StatusCode, Json<Chat>)> {
    query_pairs(raw.as_deref(), NO_KEYS)?;
    let started = std::time::Instant::now();
    let chat = state.engine().create_chat(&caller.actor, request).await?;
    state.metrics().observe_create(started.elapsed());
    state.metrics().track_turn(state.engine(), chat.id, started);
    Ok((StatusCode::CREATED, Json(chat)))
}

/// `GET /chats/by-workspace`: this server binds no chat to a workspace (DECISIONS §7), so
/// a valid lookup is the empty map; malformed ids or more than
/// [`codersdk::MAX_WORKSPACE_IDS_PER_LOOKUP`] are 400 as in Coder.
async fn chats_by_workspace(
    _caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<BTreeMap<Uuid, Uuid>>> {
    let pairs = query_pairs(raw.as_deref(), BY_WORKSPACE_KEYS)?;
    parse_workspace_ids(once(&pairs, "workspace_ids")?.unwrap_or_default())
        .map_err(ApiError::validation)?;
    Ok(Json(BTreeMap::new()))
}

/// `GET /chats/{chat}`.
async fn get_chat(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Chat>> {
    let chat_id = chat_id(path)?;
    query_pairs(raw.as_deref(), NO_KEYS)?;
    Ok(Json(state.engine().get_chat(&caller.actor, chat_id).await?))
}

/// `PATCH /chats/{chat}` → 204. A rename while this server regenerates the title is 409
/// (codersdk.md §5.3).
async fn update_chat(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    Json(request): Json<UpdateChatRequest>,
) -> ApiResult<StatusCode> {
    let chat_id = chat_id(path)?;
    query_pairs(raw.as_deref(), NO_KEYS)?;
    let engine = state.engine();
    if request.title.is_some() && engine.is_regenerating_title(chat_id) {
        // Only the owner learns about the regeneration: others get the engine's 404 or
        // 403 below.
        let chat = engine.get_chat(&caller.actor, chat_id).await?;
        if chat.owner_id == caller.actor.user_id {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "The chat's title is being regenerated; try again when it is done.",
            ));
        }
    }
    engine.update_chat(&caller.actor, chat_id, request).await?;
    Ok(no_content())
}

/// `GET /chats/{chat}/messages`: a page of messages (newest first unless only `after_id`
/// is given), with the queue on the first page.
async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<ChatMessagesResponse>> {
    let chat_id = chat_id(path)?;
    let pairs = query_pairs(raw.as_deref(), LIST_MESSAGES_KEYS)?;
    let page = parse_message_page(
        once(&pairs, "before_id")?,
        once(&pairs, "after_id")?,
        once(&pairs, "limit")?,
    )
    .map_err(ApiError::validation)?;
    let messages = state
        .engine()
        .list_messages(&caller.actor, chat_id, &page)
        .await?;
    Ok(Json(messages))
}

/// `POST /chats/{chat}/messages` → 200: the message, or the queue entry when the chat is
/// busy (429 when the queue is full).
async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    Json(request): Json<CreateChatMessageRequest>,
) -> ApiResult<Json<CreateChatMessageResponse>> {
    let chat_id = chat_id(path)?;
    query_pairs(raw.as_deref(), NO_KEYS)?;
    let started = std::time::Instant::now();
    let sent = state
        .engine()
        .send_message(&caller.actor, chat_id, request)
        .await?;
    state.metrics().observe_message(started.elapsed());
    // A queued message runs when the current turn ends; only a send that starts a turn
    // measures time to running and first output from this request.
    if !sent.queued {
        state.metrics().track_turn(state.engine(), chat_id, started);
    }
    Ok(Json(sent))
}

/// `PATCH /chats/{chat}/messages/{message}` → 200: replaces a user message and everything
/// after it.
async fn edit_message(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    Json(request): Json<EditChatMessageRequest>,
) -> ApiResult<Json<EditChatMessageResponse>> {
    let Path((chat, message)) = path.map_err(path_error)?;
    let chat_id = parse_chat_id(&chat)?;
    let message_id = parse_message_id(&message).map_err(ApiError::validation)?;
    query_pairs(raw.as_deref(), NO_KEYS)?;
    let edited = state
        .engine()
        .edit_message(&caller.actor, chat_id, message_id, request)
        .await?;
    Ok(Json(edited))
}

/// `POST /chats/{chat}/interrupt` → 200 with the chat afterwards.
async fn interrupt(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Chat>> {
    let chat_id = chat_id(path)?;
    query_pairs(raw.as_deref(), NO_KEYS)?;
    Ok(Json(
        state.engine().interrupt(&caller.actor, chat_id).await?,
    ))
}

/// `POST /chats/{chat}/tool-results` → 204; 409 when the chat waits for no results.
async fn submit_tool_results(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    Json(request): Json<SubmitToolResultsRequest>,
) -> ApiResult<StatusCode> {
    let chat_id = chat_id(path)?;
    query_pairs(raw.as_deref(), NO_KEYS)?;
    state
        .engine()
        .submit_tool_results(&caller.actor, chat_id, request)
        .await?;
    Ok(no_content())
}

/// `DELETE /chats/{chat}/queue/{queuedMessage}` → 204.
async fn delete_queued(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    let (chat_id, queued_id) = queue_path(path)?;
    query_pairs(raw.as_deref(), NO_KEYS)?;
    state
        .engine()
        .delete_queued(&caller.actor, chat_id, queued_id)
        .await?;
    Ok(no_content())
}

/// `POST /chats/{chat}/queue/{queuedMessage}/promote` → 200 with the user message the
/// entry became.
async fn promote_queued(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<ChatMessage>> {
    let (chat_id, queued_id) = queue_path(path)?;
    query_pairs(raw.as_deref(), NO_KEYS)?;
    let message = state
        .engine()
        .promote_queued(&caller.actor, chat_id, queued_id)
        .await?;
    Ok(Json(message))
}

/// `POST /chats/{chat}/title/regenerate` → 200 with the chat under its new title.
async fn regenerate_title(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Chat>> {
    let chat_id = chat_id(path)?;
    query_pairs(raw.as_deref(), NO_KEYS)?;
    let chat = state
        .engine()
        .regenerate_title(&caller.actor, chat_id)
        .await?;
    Ok(Json(chat))
}

/// `POST /chats/{chat}/title/propose` → 200 `{title}`; nothing is saved.
async fn propose_title(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<ProposeChatTitleResponse>> {
    let chat_id = chat_id(path)?;
    query_pairs(raw.as_deref(), NO_KEYS)?;
    let title = state.engine().propose_title(&caller.actor, chat_id).await?;
    Ok(Json(ProposeChatTitleResponse { title }))
}

/// `GET /chats/{chat}/diff`: git diffs come from Coder workspaces, which this server does
/// not have (DECISIONS §7): 501 for a chat the caller can see, 404 otherwise.
async fn chat_diff(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Infallible> {
    let chat_id = chat_id(path)?;
    query_pairs(raw.as_deref(), NO_KEYS)?;
    state.engine().get_chat(&caller.actor, chat_id).await?;
    Err(ApiError::not_implemented("Chat diffs"))
}

/// The `{chat}` path parameter.
fn chat_id(path: Result<Path<String>, PathRejection>) -> ApiResult<Uuid> {
    let Path(raw) = path.map_err(path_error)?;
    parse_chat_id(&raw)
}

fn parse_chat_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::validation(
            Response::new("Invalid chat ID.").with_validation("chat", "Chat ID must be a UUID."),
        )
    })
}

/// The `{chat}` and `{queuedMessage}` path parameters; a queue entry id is a positive
/// 64-bit integer.
fn queue_path(path: Result<Path<(String, String)>, PathRejection>) -> ApiResult<(Uuid, i64)> {
    let Path((chat, queued)) = path.map_err(path_error)?;
    let chat_id = parse_chat_id(&chat)?;
    match queued.parse::<i64>() {
        Ok(id) if id > 0 => Ok((chat_id, id)),
        _ => Err(ApiError::validation(
            Response::new("Invalid queued message ID.").with_validation(
                "queuedMessage",
                "Queued message ID must be a positive integer.",
            ),
        )),
    }
}

/// Path segments axum could not decode (percent-encoding that is not UTF-8).
fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::bad_request("Invalid path parameter.").with_detail(rejection.body_text())
}

/// The value of a query key that may appear at most once: a repeat is 400 rather than a
/// silent choice between the two values.
fn once<'a>(pairs: &'a [(String, String)], key: &str) -> ApiResult<Option<&'a str>> {
    let mut values = pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::validation(
            Response::new("Invalid query parameters.")
                .with_validation(key, format!("Query parameter {key:?} may be given once.")),
        ));
    }
    Ok(first.map(String::as_str))
}
