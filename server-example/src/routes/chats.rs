//! The chat routes under `/api/experimental`: list, create,
//! read and change chats; read, send and edit messages; interrupt; client tool results;
//! the queue; titles on request.
//!
//! Handlers only parse and check the request (path ids, query keys, the JSON body) and call
//! the engine, which validates with codersdk's rules, authorizes (another user's chat is a
//! 404, an admin may read but not change it: 403) and answers with codersdk types. Every
//! failure is a JSON `Response` (see [`crate::error`]). docs/server-chats.md records the
//! choices.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::handler::Handler;
use axum::http::StatusCode;
use chatd_core::ChatListQuery;
use codersdk::{
    parse_message_page, parse_workspace_ids, Chat, ChatDiffContents, ChatMessage,
    ChatMessagesResponse, CreateChatMessageRequest, CreateChatMessageResponse, CreateChatRequest,
    EditChatMessageRequest, EditChatMessageResponse, ProposeChatTitleResponse,
    SubmitToolResultsRequest, UpdateChatRequest, Uuid,
};
use serde::Deserialize;

use super::Route;
use crate::auth::Caller;
use crate::error::{no_content, ApiError, ApiResult, Json};
use crate::extract::{ChatId, MessageId, NoQuery, Query, QueuedMessageId};
use crate::metrics::{Observe, RequestStart};
use crate::state::AppState;

/// Most bytes of a `POST /chats` body (chat creation reads at most 256 KiB
/// of JSON). Set on the route itself so it holds whatever the server-wide default becomes.
pub const MAX_CREATE_CHAT_BODY_BYTES: usize = 256 * 1024;

/// Query of `GET /chats`. `label` repeats; the others may appear once. Values stay
/// text here: the engine's parser judges them (and names the key in its 400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListChatsQuery {
    q: Option<String>,
    #[serde(default)]
    label: Vec<String>,
    limit: Option<String>,
    offset: Option<String>,
    after_id: Option<String>,
}

/// Query of `GET /chats/{chat}/messages`, judged by codersdk's parser.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListMessagesQuery {
    before_id: Option<String>,
    after_id: Option<String>,
    limit: Option<String>,
}

/// Query of `GET /chats/by-workspace`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ByWorkspaceQuery {
    workspace_ids: Option<String>,
}

/// The routes of this group.
pub fn routes() -> Vec<Route> {
    use axum::http::Method;
    vec![
        Route::get("/chats", list_chats),
        Route::json::<CreateChatRequest, _, _>(
            Method::POST,
            "/chats",
            create_chat.layer(Observe::ChatCreate.layer()),
        )
        .limit(MAX_CREATE_CHAT_BODY_BYTES),
        Route::get("/chats/by-workspace", chats_by_workspace),
        Route::get("/chats/{chat}", get_chat),
        Route::json::<UpdateChatRequest, _, _>(Method::PATCH, "/chats/{chat}", update_chat),
        Route::get("/chats/{chat}/messages", list_messages),
        Route::json::<CreateChatMessageRequest, _, _>(
            Method::POST,
            "/chats/{chat}/messages",
            send_message.layer(Observe::ChatMessage.layer()),
        ),
        Route::json::<EditChatMessageRequest, _, _>(
            Method::PATCH,
            "/chats/{chat}/messages/{message}",
            edit_message,
        ),
        Route::new(Method::POST, "/chats/{chat}/interrupt", interrupt),
        Route::new(Method::POST, "/chats/{chat}/compact", compact),
        Route::json::<SubmitToolResultsRequest, _, _>(
            Method::POST,
            "/chats/{chat}/tool-results",
            submit_tool_results,
        ),
        Route::new(
            Method::DELETE,
            "/chats/{chat}/queue/{queuedMessage}",
            delete_queued,
        ),
        Route::new(
            Method::POST,
            "/chats/{chat}/queue/{queuedMessage}/promote",
            promote_queued,
        ),
        Route::new(
            Method::POST,
            "/chats/{chat}/title/regenerate",
            regenerate_title,
        ),
        Route::new(Method::POST, "/chats/{chat}/title/propose", propose_title),
        Route::get("/chats/{chat}/diff", chat_diff),
    ]
}

/// `GET /chats`: the caller's root chats, filtered by `q` and `label`, paged by `limit`,
/// `offset` and `after_id`.
async fn list_chats(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListChatsQuery>,
) -> ApiResult<Json<Vec<Chat>>> {
    let query = ChatListQuery::parse(
        query.q.as_deref(),
        &query.label,
        query.limit.as_deref(),
        query.offset.as_deref(),
        query.after_id.as_deref(),
    )?;
    let chats = state.engine().list_chats(&caller.actor, &query).await?;
    Ok(Json(chats))
}

/// `POST /chats` → 201 with the new chat, whose first turn is queued. Its latency is
/// recorded by the metrics layer ([`Observe::ChatCreate`]); the turn's milestones are
/// measured from the request's arrival.
async fn create_chat(
    State(state): State<AppState>,
    RequestStart(started): RequestStart,
    caller: Caller,
    _: NoQuery,
    Json(request): Json<CreateChatRequest>,
) -> ApiResult<(StatusCode, Json<Chat>)> {
    let chat = state.engine().create_chat(&caller.actor, request).await?;
    state.metrics().track_turn(state.engine(), chat.id, started);
    Ok((StatusCode::CREATED, Json(chat)))
}

/// `GET /chats/by-workspace`: this server binds no chat to a workspace, so
/// a valid lookup is the empty map; malformed ids or more than
/// [`codersdk::MAX_WORKSPACE_IDS_PER_LOOKUP`] are 400 as in Coder.
async fn chats_by_workspace(
    _caller: Caller,
    Query(query): Query<ByWorkspaceQuery>,
) -> ApiResult<Json<BTreeMap<Uuid, Uuid>>> {
    parse_workspace_ids(query.workspace_ids.as_deref().unwrap_or_default())
        .map_err(ApiError::validation)?;
    Ok(Json(BTreeMap::new()))
}

/// `GET /chats/{chat}`.
async fn get_chat(
    State(state): State<AppState>,
    caller: Caller,
    ChatId(chat_id): ChatId,
    _: NoQuery,
) -> ApiResult<Json<Chat>> {
    Ok(Json(state.engine().get_chat(&caller.actor, chat_id).await?))
}

/// `PATCH /chats/{chat}` → 204. A rename while this server regenerates the title is 409
///.
async fn update_chat(
    State(state): State<AppState>,
    caller: Caller,
    ChatId(chat_id): ChatId,
    _: NoQuery,
    Json(request): Json<UpdateChatRequest>,
) -> ApiResult<StatusCode> {
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
    ChatId(chat_id): ChatId,
    Query(query): Query<ListMessagesQuery>,
) -> ApiResult<Json<ChatMessagesResponse>> {
    let page = parse_message_page(
        query.before_id.as_deref(),
        query.after_id.as_deref(),
        query.limit.as_deref(),
    )
    .map_err(ApiError::validation)?;
    let messages = state
        .engine()
        .list_messages(&caller.actor, chat_id, &page)
        .await?;
    Ok(Json(messages))
}

/// `POST /chats/{chat}/messages` → 200: the message, or the queue entry when the chat is
/// busy (429 when the queue is full). Latency: [`Observe::ChatMessage`].
async fn send_message(
    State(state): State<AppState>,
    RequestStart(started): RequestStart,
    caller: Caller,
    ChatId(chat_id): ChatId,
    _: NoQuery,
    Json(request): Json<CreateChatMessageRequest>,
) -> ApiResult<Json<CreateChatMessageResponse>> {
    // Subscribed before the send commits, so the turn's statuses arrive as events and the
    // chat need not be read back for the metrics.
    let tracking = state.metrics().prepare_turn(state.engine(), chat_id);
    let sent = state
        .engine()
        .send_message(&caller.actor, chat_id, request)
        .await?;
    // A queued message runs when the current turn ends; only a send that starts a turn
    // measures time to running and first output from this request.
    if let (false, Some(tracking)) = (sent.queued, tracking) {
        tracking.start(started, Some(codersdk::ChatStatus::Pending));
    }
    Ok(Json(sent))
}

/// `PATCH /chats/{chat}/messages/{message}` → 200: replaces a user message and everything
/// after it.
async fn edit_message(
    State(state): State<AppState>,
    caller: Caller,
    ChatId(chat_id): ChatId,
    MessageId(message_id): MessageId,
    _: NoQuery,
    Json(request): Json<EditChatMessageRequest>,
) -> ApiResult<Json<EditChatMessageResponse>> {
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
    ChatId(chat_id): ChatId,
    _: NoQuery,
) -> ApiResult<Json<Chat>> {
    Ok(Json(
        state.engine().interrupt(&caller.actor, chat_id).await?,
    ))
}

/// `POST /chats/{chat}/compact` → 202 with the chat, now `pending`: a worker summarizes the
/// conversation whatever its context usage (`Engine::compact_chat`). 409 unless the chat
/// is idle (`waiting` or `error`, not archived).
async fn compact(
    State(state): State<AppState>,
    caller: Caller,
    ChatId(chat_id): ChatId,
    _: NoQuery,
) -> ApiResult<(StatusCode, Json<Chat>)> {
    let chat = state.engine().compact_chat(&caller.actor, chat_id).await?;
    Ok((StatusCode::ACCEPTED, Json(chat)))
}

/// `POST /chats/{chat}/tool-results` → 204; 409 when the chat waits for no results.
async fn submit_tool_results(
    State(state): State<AppState>,
    caller: Caller,
    ChatId(chat_id): ChatId,
    _: NoQuery,
    Json(request): Json<SubmitToolResultsRequest>,
) -> ApiResult<StatusCode> {
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
    ChatId(chat_id): ChatId,
    QueuedMessageId(queued_id): QueuedMessageId,
    _: NoQuery,
) -> ApiResult<StatusCode> {
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
    ChatId(chat_id): ChatId,
    QueuedMessageId(queued_id): QueuedMessageId,
    _: NoQuery,
) -> ApiResult<Json<ChatMessage>> {
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
    ChatId(chat_id): ChatId,
    _: NoQuery,
) -> ApiResult<Json<Chat>> {
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
    ChatId(chat_id): ChatId,
    _: NoQuery,
) -> ApiResult<Json<ProposeChatTitleResponse>> {
    let title = state.engine().propose_title(&caller.actor, chat_id).await?;
    Ok(Json(ProposeChatTitleResponse { title }))
}

/// `GET /chats/{chat}/diff`: git diffs come from Coder workspaces, which this server does
/// not have, so a chat the caller may see has no diff: 200 with only
/// `chat_id` (no provider, branch, pull request or diff text). Another user's chat is the
/// engine's 404, as everywhere.
async fn chat_diff(
    State(state): State<AppState>,
    caller: Caller,
    ChatId(chat_id): ChatId,
    _: NoQuery,
) -> ApiResult<Json<ChatDiffContents>> {
    state.engine().get_chat(&caller.actor, chat_id).await?;
    Ok(Json(ChatDiffContents {
        chat_id,
        ..Default::default()
    }))
}
