//! The per-chat stream and the chat-list watch WebSockets, and the
//! auxiliary desktop and git streams, which need Coder workspaces (501).
//!
//! Both sockets are server → client: each per-chat frame is a JSON array of
//! `ChatStreamEvent`s (at most [`codersdk::MAX_STREAM_EVENTS_PER_FRAME`]), each watch frame
//! one `ChatWatchEvent`. Client messages are read (to answer pings and notice closes) and
//! otherwise ignored. The engine is never blocked by a client: the hub disconnects a
//! subscriber that falls [`chatd_core::DEFAULT_SUBSCRIBER_CAPACITY`] events behind, and a
//! frame the client does not accept within [`STREAM_WRITE_TIMEOUT`] ends the connection.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response as HttpResponse;
use bytes::Bytes;
use chatd_core::{Actor, ChatStream, Engine, RecvError, WatchSubscription};
use codersdk::{ChatStreamEvent, ChatStreamEventType, Uuid, MAX_STREAM_EVENTS_PER_FRAME};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use tracing::Instrument;

use super::{Route, RouteKind};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ChatId, NoQuery, Query};
use crate::state::AppState;

/// How often a WebSocket ping keeps an idle stream or watch alive through proxies.
pub const STREAM_PING_INTERVAL: Duration = Duration::from_secs(15);

/// Longest a frame (or ping, or close) may wait for the client to accept it; a client that
/// stops reading is disconnected after it instead of holding a task and a socket forever.
pub const STREAM_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest message a client may send on a stream or watch socket. Clients have nothing to
/// say (their messages are ignored), so this only bounds what the server buffers.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;

/// Close code sent when the hub disconnected the socket for falling behind: 1013 "try
/// again later" — reconnect (with `after_id` on a chat stream) to resume.
pub const CLOSE_CODE_LAGGED: u16 = close_code::AGAIN;

/// Close code sent when the server shuts down: 1012 "service restart" — reconnect (the
/// load balancer sends the new connection to another replica; a chat stream resumes with
/// `after_id`).
pub const CLOSE_CODE_SHUTDOWN: u16 = close_code::RESTART;

/// The routes of this group.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/chats/watch", watch).kind(RouteKind::WebSocket),
        Route::get("/chats/{chat}/stream", stream).kind(RouteKind::WebSocket),
        Route::get("/chats/{chat}/stream/desktop", desktop).kind(RouteKind::Unsupported),
        Route::get("/chats/{chat}/stream/git", git).kind(RouteKind::Unsupported),
    ]
}

/// Query of `GET /chats/{chat}/stream`, judged by codersdk's parser.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    after_id: Option<String>,
}

/// `GET /chats/{chat}/stream?after_id=`: the chat's snapshot, then live events.
async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    ChatId(chat_id): ChatId,
    Query(query): Query<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<HttpResponse> {
    let after_id =
        codersdk::parse_stream_after_id(query.after_id.as_deref()).map_err(ApiError::validation)?;
    let upgrade = upgrade.map_err(upgrade_error)?;
    let permit = state.sockets().acquire(caller.actor.user_id)?;
    // Subscribing before the upgrade answers a missing or foreign chat with a JSON 404 and
    // takes the snapshot at request time.
    let events = state
        .engine()
        .subscribe(&caller.actor, chat_id, after_id)
        .await?;
    let span = tracing::info_span!("chat_stream", %chat_id, user_id = %caller.actor.user_id);
    Ok(limit(upgrade).on_upgrade(move |socket| async move {
        // Held for as long as the socket's task runs.
        let _permit = permit;
        run_stream(socket, state, caller.actor, chat_id, events)
            .instrument(span)
            .await
    }))
}

/// `GET /chats/watch`: the caller's chat-list events, one per frame.
async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<HttpResponse> {
    let upgrade = upgrade.map_err(upgrade_error)?;
    let permit = state.sockets().acquire(caller.actor.user_id)?;
    let events = state.engine().watch(&caller.actor)?;
    let span = tracing::info_span!("chat_watch", user_id = %caller.actor.user_id);
    Ok(limit(upgrade).on_upgrade(move |socket| async move {
        // Held for as long as the socket's task runs.
        let _permit = permit;
        run_watch(socket, events).instrument(span).await
    }))
}

/// `GET /chats/{chat}/stream/desktop`: a workspace's VNC desktop; not built.
async fn desktop(_caller: Caller) -> ApiError {
    ApiError::not_implemented("The workspace desktop stream")
}

/// `GET /chats/{chat}/stream/git`: a workspace agent's git watcher; not built.
async fn git(_caller: Caller) -> ApiError {
    ApiError::not_implemented("The workspace git stream")
}

/// A request that is not a WebSocket handshake gets a JSON answer with axum's status
/// (400, or 426 Upgrade Required) instead of axum's plain-text rejection.
fn upgrade_error(rejection: WebSocketUpgradeRejection) -> ApiError {
    ApiError::new(
        rejection.status(),
        "This endpoint is a WebSocket: connect with a WebSocket client.",
    )
    .with_detail(rejection.body_text())
}

fn limit(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
}

/// Why a socket loop ended.
enum End {
    /// The client closed, vanished, or did not accept a write in time.
    Client,
    /// The subscription ended.
    Hub(RecvError),
}

async fn run_stream(
    socket: WebSocket,
    state: AppState,
    actor: Actor,
    chat_id: Uuid,
    mut events: ChatStream,
) {
    let _open = state.metrics().stream_opened();
    let engine = state.engine();
    mark_read(engine, &actor, chat_id).await;
    let (mut sink, mut incoming) = socket.split();
    let mut ping = keepalive();
    let mut last_message_id = None;
    let end = loop {
        tokio::select! {
            first = events.next() => {
                // Batch whatever else is ready right now, without waiting for more.
                let mut batch = Vec::new();
                let mut ended = None;
                match first {
                    Ok(event) => batch.push(event),
                    Err(e) => ended = Some(e),
                }
                while ended.is_none() && batch.len() < MAX_STREAM_EVENTS_PER_FRAME {
                    match events.next().now_or_never() {
                        Some(Ok(event)) => batch.push(event),
                        Some(Err(e)) => ended = Some(e),
                        None => break,
                    }
                }
                if !batch.is_empty() {
                    last_message_id = batch
                        .iter()
                        .rev()
                        .find(|e| e.event_type == ChatStreamEventType::Message)
                        .and_then(|e| e.message.as_ref().map(|m| m.id))
                        .or(last_message_id);
                    let frame: Vec<&ChatStreamEvent> = batch.iter().map(AsRef::as_ref).collect();
                    if !send_json(&mut sink, &frame).await {
                        break End::Client;
                    }
                }
                if let Some(e) = ended {
                    break End::Hub(e);
                }
            }
            alive = client_alive(&mut incoming) => if !alive {
                break End::Client;
            },
            _ = ping.tick() => if !send(&mut sink, Message::Ping(Bytes::new())).await {
                break End::Client;
            },
        }
    };
    if let End::Hub(e) = end {
        let reason = match (e, last_message_id) {
            (RecvError::Lagged, Some(id)) => {
                format!("stream fell behind; reconnect with after_id={id} to resume")
            }
            (RecvError::Lagged, None) => "stream fell behind; reconnect to resume".to_owned(),
            (_, Some(id)) => {
                format!("server is restarting; reconnect with after_id={id} to resume")
            }
            (_, None) => "server is restarting; reconnect to resume".to_owned(),
        };
        close(&mut sink, e, reason).await;
    }
    drop(sink);
    drop(incoming);
    mark_read(engine, &actor, chat_id).await;
}

async fn run_watch(socket: WebSocket, mut events: WatchSubscription) {
    let (mut sink, mut incoming) = socket.split();
    let mut ping = keepalive();
    let end = loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => if !send_json(&mut sink, event.as_ref()).await {
                    break End::Client;
                },
                Err(e) => break End::Hub(e),
            },
            alive = client_alive(&mut incoming) => if !alive {
                break End::Client;
            },
            _ = ping.tick() => if !send(&mut sink, Message::Ping(Bytes::new())).await {
                break End::Client;
            },
        }
    };
    if let End::Hub(e) = end {
        let reason = match e {
            RecvError::Lagged => "watch fell behind; reconnect and refetch the chat list",
            _ => "server is restarting; reconnect and refetch the chat list",
        };
        close(&mut sink, e, reason.to_owned()).await;
    }
}

/// Opening and closing the stream marks the chat read. A failure only
/// leaves the unread marker where it was, so it is logged, not reported.
async fn mark_read(engine: &Engine, actor: &Actor, chat_id: Uuid) {
    if let Err(e) = engine.mark_read(actor, chat_id).await {
        tracing::debug!(%chat_id, error = %e, "marking the chat read failed");
    }
}

/// A ping timer whose first tick is one interval away.
fn keepalive() -> tokio::time::Interval {
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + STREAM_PING_INTERVAL,
        STREAM_PING_INTERVAL,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping
}

/// Reads one client message; false once the client closed or the connection broke.
/// Cancel safe (a read cut short loses nothing that was not already buffered).
async fn client_alive(incoming: &mut SplitStream<WebSocket>) -> bool {
    matches!(incoming.next().await, Some(Ok(message)) if !matches!(message, Message::Close(_)))
}

async fn send_json<T: serde::Serialize + ?Sized>(
    sink: &mut SplitSink<WebSocket, Message>,
    value: &T,
) -> bool {
    match serde_json::to_string(value) {
        Ok(text) => send(sink, Message::Text(Utf8Bytes::from(text))).await,
        Err(e) => {
            tracing::error!(error = %e, "encoding a stream frame failed");
            false
        }
    }
}

/// Sends within [`STREAM_WRITE_TIMEOUT`]; false when the client is gone or too slow.
async fn send(sink: &mut SplitSink<WebSocket, Message>, message: Message) -> bool {
    matches!(
        tokio::time::timeout(STREAM_WRITE_TIMEOUT, sink.send(message)).await,
        Ok(Ok(()))
    )
}

async fn close(sink: &mut SplitSink<WebSocket, Message>, end: RecvError, reason: String) {
    let code = match end {
        RecvError::Lagged => CLOSE_CODE_LAGGED,
        _ => CLOSE_CODE_SHUTDOWN,
    };
    tracing::debug!(code, reason = %reason, "closing stream");
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    send(sink, Message::Close(Some(frame))).await;
}
