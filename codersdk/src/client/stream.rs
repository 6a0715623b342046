//! The per-chat stream and the chat-list watch as async [`Stream`]s of typed events.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use super::error::{Error, Result, MAX_ERROR_BODY_BYTES};
use crate::{ChatStreamEvent, ChatWatchEvent};

/// A stream of typed events read from a WebSocket. It ends when the server closes the
/// socket normally; an abnormal close is yielded once as [`Error::Closed`] before the end.
/// A frame that is not valid JSON is yielded as [`Error::Decode`] and the stream goes on.
/// Dropping it closes the connection.
pub struct EventStream<T> {
    inner: BoxStream<'static, Result<T>>,
}

/// The per-chat stream (`GET /chats/{chat}/stream`): the snapshot, then live events.
/// Each WebSocket frame is a JSON array of events; they arrive here one by one, in order.
pub type ChatEventStream = EventStream<ChatStreamEvent>;

/// The chat-list watch (`GET /chats/watch`): one event per WebSocket frame.
pub type WatchEventStream = EventStream<ChatWatchEvent>;

impl<T> std::fmt::Debug for EventStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl<T> Stream for EventStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// How a frame's text becomes events.
pub(crate) trait FrameDecoder: Send + 'static {
    type Event: Send + 'static;
    /// What a decode error says was being decoded.
    const WHAT: &'static str;
    fn decode(text: &[u8]) -> std::result::Result<Vec<Self::Event>, serde_json::Error>;
}

/// Stream frames: a JSON array of events (a lone event object is accepted too).
pub(crate) struct ArrayFrames;

impl FrameDecoder for ArrayFrames {
    type Event = ChatStreamEvent;
    const WHAT: &'static str = "a chat stream frame";

    fn decode(text: &[u8]) -> std::result::Result<Vec<ChatStreamEvent>, serde_json::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Frame {
            Many(Vec<ChatStreamEvent>),
            One(Box<ChatStreamEvent>),
        }
        // Untagged enums hide the real error; decode the array form first to keep it.
        match serde_json::from_slice::<Vec<ChatStreamEvent>>(text) {
            Ok(events) => Ok(events),
            Err(e) => match serde_json::from_slice::<Frame>(text) {
                Ok(Frame::One(event)) => Ok(vec![*event]),
                Ok(Frame::Many(events)) => Ok(events),
                Err(_) => Err(e),
            },
        }
    }
}

/// Watch frames: one event per frame.
pub(crate) struct SingleFrames<T>(std::marker::PhantomData<T>);

impl<T: DeserializeOwned + Send + 'static> FrameDecoder for SingleFrames<T> {
    type Event = T;
    const WHAT: &'static str = "a watch frame";

    fn decode(text: &[u8]) -> std::result::Result<Vec<T>, serde_json::Error> {
        serde_json::from_slice(text).map(|e| vec![e])
    }
}

struct State<S, E> {
    socket: Option<S>,
    ready: VecDeque<E>,
}

/// Opens the WebSocket at `url` (`ws://` or `wss://`) and decodes its frames with `D`.
pub(crate) async fn open<D: FrameDecoder>(url: String) -> Result<EventStream<D::Event>> {
    let (socket, _response) = match tokio_tungstenite::connect_async(url).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            // The server refused the upgrade with an ordinary HTTP answer (400, 401, 404):
            // report it like any other API error.
            let status = response.status().as_u16();
            let mut body = (*response).into_body().unwrap_or_default();
            body.truncate(MAX_ERROR_BODY_BYTES);
            return Err(Error::api(status, body));
        }
        Err(e) => return Err(Error::WebSocket(Box::new(e))),
    };
    let state = State {
        socket: Some(socket),
        ready: VecDeque::new(),
    };
    let inner = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.ready.pop_front() {
                return Some((Ok(event), st));
            }
            let socket = st.socket.as_mut()?;
            let message = match socket.next().await {
                None => return None,
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    st.socket = None;
                    return Some((Err(Error::WebSocket(Box::new(e))), st));
                }
            };
            let data = match message {
                Message::Text(text) => text.as_bytes().to_vec(),
                Message::Binary(bytes) => bytes.to_vec(),
                // Pings are answered by the WebSocket layer itself.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                Message::Close(frame) => {
                    st.socket = None;
                    return match frame {
                        Some(f) if !matches!(f.code, CloseCode::Normal | CloseCode::Away) => {
                            let err = Error::Closed {
                                code: u16::from(f.code),
                                reason: f.reason.to_string(),
                            };
                            Some((Err(err), st))
                        }
                        _ => None,
                    };
                }
            };
            match D::decode(&data) {
                Ok(events) => st.ready.extend(events),
                Err(source) => {
                    return Some((
                        Err(Error::Decode {
                            what: D::WHAT,
                            source,
                        }),
                        st,
                    ))
                }
            }
        }
    });
    Ok(EventStream {
        inner: inner.boxed(),
    })
}
