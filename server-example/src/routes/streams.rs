//! The per-chat stream and the chat-list watch WebSockets, and the
//! auxiliary desktop and git streams, which need Coder workspaces (501).
//!
//! Both sockets are server → client: each per-chat frame is a JSON array of
//! `ChatStreamEvent`s (at most [`codersdk::MAX_STREAM_EVENTS_PER_FRAME`]), each watch frame
//! one `ChatWatchEvent`. Client messages are read (to answer pings and notice closes) and
//! otherwise ignored. The engine is never blocked by a client: the hub disconnects a
//! subscriber that falls [`chatd_core::DEFAULT_SUBSCRIBER_CAPACITY`] events behind, and a
//! frame the client does not accept within [`STREAM_WRITE_TIMEOUT`] ends the connection.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response as HttpResponse;
use bytes::Bytes;
use chatd_core::{Actor, ChatStream, Engine, HubEvent, RecvError, WatchSubscription};
use codersdk::{
    ChatStreamEvent, ChatStreamEventType, ChatWatchEvent, Uuid, MAX_STREAM_EVENTS_PER_FRAME,
};
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

/// Read buffer of a stream or watch socket (tungstenite's default is 128 KiB). Clients
/// send only pings, pongs and a close, a few bytes each, so a small buffer serves them; a
/// larger message (up to [`MAX_CLIENT_MESSAGE_BYTES`]) still arrives whole, the buffer
/// growing for it. Sized so an idle subscriber costs little: the buffer is allocated and
/// filled when the socket opens and lives as long as it.
pub const WEBSOCKET_READ_BUFFER_BYTES: usize = 8 * 1024;

/// Bytes of frames a socket collects before writing them to the network (tungstenite's
/// default is 128 KiB). Every frame is flushed as soon as it is queued, so this never
/// delays one; a frame larger than this is written whole all the same.
pub const WEBSOCKET_WRITE_BUFFER_BYTES: usize = 8 * 1024;

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

/// The socket settings of both WebSockets: buffers sized for chat frames, and the client
/// message bounds. The write buffer's hard cap stays unlimited: a frame is written whole
/// and flushed at once, and a cap would refuse a large message rather than bound memory.
fn limit(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(WEBSOCKET_READ_BUFFER_BYTES)
        .write_buffer_size(WEBSOCKET_WRITE_BUFFER_BYTES)
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
                    let sent = match stream_frame(&batch) {
                        Ok(frame) => send(&mut sink, Message::Text(frame)).await,
                        Err(e) => encoding_failed(&e),
                    };
                    if !sent {
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
                Ok(event) => {
                    let sent = match watch_frame(&event) {
                        Ok(frame) => send(&mut sink, Message::Text(frame)).await,
                        Err(e) => encoding_failed(&e),
                    };
                    if !sent {
                        break End::Client;
                    }
                }
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

/// Why a frame could not be built.
#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("encoding an event failed: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("an encoded event is not UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
}

/// A per-chat stream frame: the JSON array of `batch`, byte for byte what
/// `serde_json::to_string` gives for the events, built from each event's shared encoding
/// ([`HubEvent::json`]), so an event is serialized once however many subscribers send
/// it. A frame of one event is that event's shared array itself (no copy).
fn stream_frame(batch: &[Arc<HubEvent<ChatStreamEvent>>]) -> Result<Utf8Bytes, FrameError> {
    if let [only] = batch {
        return Ok(Utf8Bytes::try_from(only.json_array()?)?);
    }
    let parts = batch
        .iter()
        .map(|event| event.json())
        .collect::<Result<Vec<Bytes>, _>>()?;
    let len = parts.iter().map(Bytes::len).sum::<usize>() + parts.len() + 1;
    let mut frame = Vec::with_capacity(len);
    frame.push(b'[');
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            frame.push(b',');
        }
        frame.extend_from_slice(part);
    }
    frame.push(b']');
    Ok(Utf8Bytes::try_from(frame)?)
}

/// A watch frame: the event's shared JSON.
fn watch_frame(event: &HubEvent<ChatWatchEvent>) -> Result<Utf8Bytes, FrameError> {
    Ok(Utf8Bytes::try_from(event.json()?)?)
}

/// Logs a frame that could not be built; the socket then closes (false, as for a failed
/// send), since its client would miss an event.
fn encoding_failed(e: &FrameError) -> bool {
    tracing::error!(error = %e, "encoding a stream frame failed");
    false
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The settings [`limit`] gives an upgrade, as tungstenite's configuration reads them
    /// (axum keeps it private; its `Debug` shows it). A real server supplies the upgrade,
    /// which only a served connection carries; the handler answers with the settings
    /// instead of upgrading.
    #[tokio::test]
    async fn sockets_get_the_chat_sized_buffers_and_client_limits() {
        let app = axum::Router::new().route(
            "/ws",
            axum::routing::get(|upgrade: WebSocketUpgrade| async move {
                format!("{:?}", limit(upgrade))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                  Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Connection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        for setting in [
            format!("read_buffer_size: {WEBSOCKET_READ_BUFFER_BYTES},"),
            format!("write_buffer_size: {WEBSOCKET_WRITE_BUFFER_BYTES},"),
            format!("max_message_size: Some({MAX_CLIENT_MESSAGE_BYTES}),"),
            format!("max_frame_size: Some({MAX_CLIENT_MESSAGE_BYTES}),"),
            format!("max_write_buffer_size: {},", usize::MAX),
        ] {
            assert!(answer.contains(&setting), "{setting} in {answer}");
        }
    }

    /// Chat-sized: an idle subscriber's two buffers stay far below the 64 KiB it may cost
    /// in all, and a client's largest message still fits the grown read buffer.
    #[test]
    fn buffer_sizes_fit_an_idle_subscriber_budget() {
        const IDLE_SUBSCRIBER_BUDGET: usize = 64 * 1024;
        const {
            assert!(
                WEBSOCKET_READ_BUFFER_BYTES + WEBSOCKET_WRITE_BUFFER_BYTES
                    <= IDLE_SUBSCRIBER_BUDGET / 2
            );
            assert!(WEBSOCKET_READ_BUFFER_BYTES >= 4096 && WEBSOCKET_WRITE_BUFFER_BYTES >= 4096);
        }
    }
}
