//! The per-chat stream and chat-list watch WebSockets (codersdk.md §8) over a real server,
//! on both backends: snapshot then live order, frames as arrays of at most 256 events,
//! watch events one per frame, `after_id`, authentication, slow and vanishing clients, lag
//! and shutdown closes, keep-alive pings, read markers, and the 501 auxiliary streams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatd_core::store::{NewUser, Store};
use chatd_core::{Actor, Engine, HubConfig};
use chatd_test_support::db::on_each_backend;
use chatd_test_support::scripted::{self, create_request, wait_status, Reply, ScriptedModel};
use chatd_test_support::server::{serve, test_keyring, TestServer, TestUser};
use chatprovider::ProviderApiKeys;
use codersdk::{
    ChatInputPart, ChatStatus, ChatStreamEvent, ChatStreamEventType, ChatWatchEvent,
    ChatWatchEventKind, CreateChatMessageRequest, Uuid, MAX_STREAM_EVENTS_PER_FRAME,
};
use futures_util::{SinkExt, StreamExt};
use server_example::routes::streams::{
    CLOSE_CODE_LAGGED, MAX_CLIENT_MESSAGE_BYTES, STREAM_PING_INTERVAL, STREAM_WRITE_TIMEOUT,
    WEBSOCKET_READ_BUFFER_BYTES, WEBSOCKET_WRITE_BUFFER_BYTES,
};
use server_example::AppState;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

fn ws_url(base: &str, path: &str) -> String {
    format!(
        "{}/api/experimental{path}",
        base.replacen("http://", "ws://", 1)
    )
}

/// Connects with the token in the `coder_session_token` query parameter (what browsers do).
async fn connect(base: &str, path: &str, token: &str) -> Ws {
    let sep = if path.contains('?') { '&' } else { '?' };
    let url = ws_url(base, &format!("{path}{sep}coder_session_token={token}"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The HTTP answer of a refused handshake: status and JSON `Response` body.
async fn refused(url: String, token: Option<&str>) -> (u16, codersdk::Response) {
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("Coder-Session-Token", token.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Err(WsError::Http(response)) => {
            let status = response.status().as_u16();
            let body = response.body().clone().expect("a JSON body");
            (
                status,
                serde_json::from_slice(&body).expect("a JSON Response"),
            )
        }
        other => panic!("expected a refused handshake, got {:?}", other.map(|_| ())),
    }
}

/// The next text frame of a chat stream, which must be a JSON array of events.
async fn next_frame(ws: &mut Ws) -> Vec<ChatStreamEvent> {
    next_frame_text(ws).await.0
}

/// [`next_frame`] and the frame's text as it came.
async fn next_frame_text(ws: &mut Ws) -> (Vec<ChatStreamEvent>, String) {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Text(text))) => {
                let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                assert!(value.is_array(), "stream frames are arrays: {value}");
                return (
                    serde_json::from_value(value).unwrap(),
                    text.as_str().to_owned(),
                );
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

/// Events until (and including) a `status` event with `status`.
async fn events_until_status(ws: &mut Ws, status: ChatStatus) -> Vec<ChatStreamEvent> {
    let mut out = Vec::new();
    loop {
        let frame = next_frame(ws).await;
        let done = frame.iter().any(|e| is_status(e, &status));
        out.extend(frame);
        if done {
            return out;
        }
    }
}

fn is_status(e: &ChatStreamEvent, status: &ChatStatus) -> bool {
    e.event_type == ChatStreamEventType::Status
        && e.status.as_ref().map(|s| &s.status) == Some(status)
}

fn part_text(e: &ChatStreamEvent) -> Option<&str> {
    (e.event_type == ChatStreamEventType::MessagePart)
        .then(|| e.message_part.as_ref().map(|p| p.part.text.as_str()))
        .flatten()
}

/// The close frame (code, reason) the server sends next, skipping frames before it.
async fn close_frame(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a close in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code, frame.reason.as_str().to_owned())
            }
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn create_chat(server: &TestServer, user: &TestUser, text: &str) -> Uuid {
    server
        .state
        .engine()
        .create_chat(
            &Actor::user(user.id),
            create_request(server.state.default_organization(), text),
        )
        .await
        .unwrap()
        .id
}

async fn send(engine: &Engine, user: &TestUser, chat_id: Uuid, text: &str) {
    engine
        .send_message(
            &Actor::user(user.id),
            chat_id,
            CreateChatMessageRequest {
                content: vec![ChatInputPart::text(text)],
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

fn buffered_parts(engine: &Engine, chat_id: Uuid) -> usize {
    engine
        .hub()
        .chat_stats(chat_id)
        .map_or(0, |s| s.buffered_parts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_live_events_in_order() {
    on_each_backend(|store| async move {
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([Reply::Gated {
            before: vec!["Hello ".into(), "there ".into()],
            gate: gate.clone(),
            after: vec!["friend".into()],
        }]);
        let server = TestServer::start(&store, model).await;
        let alice = server.user("alice").await;
        let engine = server.state.engine();
        let chat_id = create_chat(&server, &alice, "hi").await;
        // Join mid-step: the first two parts are buffered, the rest is held by the gate.
        eventually("two buffered parts", || {
            buffered_parts(engine, chat_id) == 2
        })
        .await;
        let mut ws = connect(
            &server.base,
            &format!("/chats/{chat_id}/stream"),
            &alice.token,
        )
        .await;

        let snapshot = next_frame(&mut ws).await;
        let kinds: Vec<_> = snapshot.iter().map(|e| e.event_type.clone()).collect();
        assert_eq!(
            kinds,
            [
                ChatStreamEventType::Status,
                ChatStreamEventType::MessagePart,
                ChatStreamEventType::MessagePart,
                ChatStreamEventType::Message,
            ],
            "status, buffered parts, then messages: {snapshot:?}"
        );
        assert!(is_status(&snapshot[0], &ChatStatus::Running));
        assert_eq!(part_text(&snapshot[1]), Some("Hello "));
        assert_eq!(part_text(&snapshot[2]), Some("there "));
        let user_message = snapshot[3].message.clone().unwrap();
        assert!(snapshot.iter().all(|e| e.chat_id == chat_id));

        gate.notify_one();
        let live = events_until_status(&mut ws, ChatStatus::Waiting).await;
        let texts: Vec<_> = live.iter().filter_map(part_text).collect();
        assert_eq!(
            texts,
            ["friend"],
            "live parts continue where the snapshot ended"
        );
        let messages: Vec<_> = live.iter().filter_map(|e| e.message.as_ref()).collect();
        assert_eq!(
            messages.len(),
            1,
            "the user message is not repeated: {live:?}"
        );
        assert!(messages[0].id > user_message.id);
        let text: String = messages[0]
            .content
            .iter()
            .map(|p| p.text.as_str())
            .collect();
        assert_eq!(text, "Hello there friend");
        let part_pos = live.iter().position(|e| part_text(e).is_some()).unwrap();
        let message_pos = live.iter().position(|e| e.message.is_some()).unwrap();
        let waiting_pos = live
            .iter()
            .position(|e| is_status(e, &ChatStatus::Waiting))
            .unwrap();
        assert!(part_pos < message_pos && message_pos < waiting_pos);

        // `after_id` replays only newer messages.
        let mut later = connect(
            &server.base,
            &format!("/chats/{chat_id}/stream?after_id={}", user_message.id),
            &alice.token,
        )
        .await;
        let snapshot = next_frame(&mut later).await;
        let ids: Vec<_> = snapshot
            .iter()
            .filter_map(|e| e.message.as_ref().map(|m| m.id))
            .collect();
        assert_eq!(ids, [messages[0].id]);
        assert!(is_status(&snapshot[0], &ChatStatus::Waiting));
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_batch_ready_events_up_to_the_cap() {
    on_each_backend(|store| async move {
        let gate = Arc::new(Notify::new());
        let parts = 600;
        let model = ScriptedModel::new([Reply::Gated {
            before: (0..parts).map(|i| format!("w{i} ")).collect(),
            gate: gate.clone(),
            after: vec!["end".into()],
        }]);
        let server = TestServer::start(&store, model).await;
        let alice = server.user("alice").await;
        let engine = server.state.engine();
        let chat_id = create_chat(&server, &alice, "hi").await;
        eventually("all parts buffered", || {
            buffered_parts(engine, chat_id) == parts
        })
        .await;
        let mut ws = connect(
            &server.base,
            &format!("/chats/{chat_id}/stream"),
            &alice.token,
        )
        .await;
        // Status + 600 parts + the user message, all ready at once: full frames, then the
        // rest.
        let total = 1 + parts + 1;
        let mut sizes = Vec::new();
        let mut events = Vec::new();
        while events.len() < total {
            let frame = next_frame(&mut ws).await;
            sizes.push(frame.len());
            events.extend(frame);
        }
        assert_eq!(
            sizes,
            [
                MAX_STREAM_EVENTS_PER_FRAME,
                MAX_STREAM_EVENTS_PER_FRAME,
                total - 2 * MAX_STREAM_EVENTS_PER_FRAME
            ]
        );
        let texts: Vec<_> = events.iter().filter_map(part_text).collect();
        assert_eq!(texts.len(), parts);
        assert_eq!(texts[0], "w0 ");
        assert_eq!(texts[parts - 1], format!("w{} ", parts - 1));
        gate.notify_one();
        let live = events_until_status(&mut ws, ChatStatus::Waiting).await;
        assert!(live.iter().all(|e| e.chat_id == chat_id));
        server.stop().await;
    })
    .await;
}

/// Frames far larger than the sockets' buffers ([`WEBSOCKET_READ_BUFFER_BYTES`],
/// [`WEBSOCKET_WRITE_BUFFER_BYTES`]) go through whole: a 100 KiB user message in the
/// snapshot and a 100 KiB part live. Every frame is byte for byte what serializing its
/// events gives, though built from each event's shared encoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_larger_than_the_socket_buffers_go_through_whole() {
    const BIG: usize = 100 * 1024;
    assert!(BIG > 4 * WEBSOCKET_READ_BUFFER_BYTES.max(WEBSOCKET_WRITE_BUFFER_BYTES));
    on_each_backend(|store| async move {
        let gate = Arc::new(Notify::new());
        let big_part = "p".repeat(BIG);
        let model = ScriptedModel::new([Reply::Gated {
            before: vec!["small ".into()],
            gate: gate.clone(),
            after: vec![big_part.clone()],
        }]);
        let server = TestServer::start(&store, model).await;
        let alice = server.user("alice").await;
        let engine = server.state.engine();
        let big_message = "m".repeat(BIG);
        let chat_id = create_chat(&server, &alice, &big_message).await;
        eventually("the first part buffered", || {
            buffered_parts(engine, chat_id) == 1
        })
        .await;
        let mut ws = connect(
            &server.base,
            &format!("/chats/{chat_id}/stream"),
            &alice.token,
        )
        .await;
        let (snapshot, text) = next_frame_text(&mut ws).await;
        assert_eq!(serde_json::to_string(&snapshot).unwrap(), text);
        let user_text: String = snapshot
            .iter()
            .filter_map(|e| e.message.as_ref())
            .flat_map(|m| m.content.iter().map(|p| p.text.as_str()))
            .collect();
        assert_eq!(user_text, big_message);

        gate.notify_one();
        let mut live = Vec::new();
        while !live.iter().any(|e| is_status(e, &ChatStatus::Waiting)) {
            let (frame, text) = next_frame_text(&mut ws).await;
            assert_eq!(serde_json::to_string(&frame).unwrap(), text);
            live.extend(frame);
        }
        let parts: Vec<_> = live.iter().filter_map(part_text).collect();
        assert_eq!(parts, [big_part.as_str()]);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sends_one_event_per_frame_for_own_chats_only() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let mut ws = connect(&server.base, "/chats/watch", &alice.token).await;
        // Bob's chat comes first; Alice must never see it.
        let bobs = create_chat(&server, &bob, "bob's").await;
        wait_status(
            server.state.engine(),
            &Actor::user(bob.id),
            bobs,
            ChatStatus::Waiting,
        )
        .await;
        let chat_id = create_chat(&server, &alice, "alice's").await;
        let mut kinds = Vec::new();
        loop {
            let message = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
            let Some(Ok(Message::Text(text))) = message else {
                panic!("expected a watch frame, got {message:?}");
            };
            let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            assert!(value.is_object(), "one event per watch frame: {value}");
            let event: ChatWatchEvent = serde_json::from_value(value).unwrap();
            assert_eq!(event.chat.id, chat_id, "only the caller's chats");
            kinds.push(event.kind.clone());
            if event.kind == ChatWatchEventKind::StatusChange
                && event.chat.status == ChatStatus::Waiting
            {
                break;
            }
        }
        assert_eq!(kinds.first(), Some(&ChatWatchEventKind::Created));
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_json_errors_before_the_upgrade() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let chat_id = create_chat(&server, &alice, "hi").await;
        let stream = |q: &str| ws_url(&server.base, &format!("/chats/{chat_id}/stream{q}"));

        let (status, body) = refused(stream("?after_id=abc"), Some(&alice.token)).await;
        assert_eq!(status, 400);
        assert_eq!(body.validations[0].field, "after_id");
        let (status, body) = refused(stream("?after=1"), Some(&alice.token)).await;
        assert_eq!(status, 400, "unknown query keys are refused");
        assert_eq!(body.validations[0].field, "after");
        let (status, _) = refused(
            ws_url(&server.base, "/chats/not-a-uuid/stream"),
            Some(&alice.token),
        )
        .await;
        assert_eq!(status, 400);
        // No token, a wrong token: 401 on both sockets.
        let (status, _) = refused(stream(""), None).await;
        assert_eq!(status, 401);
        let (status, _) = refused(stream(""), Some("chatd_wrong")).await;
        assert_eq!(status, 401);
        let (status, _) = refused(ws_url(&server.base, "/chats/watch"), None).await;
        assert_eq!(status, 401);
        let (status, _) = refused(
            ws_url(&server.base, "/chats/watch?nope=1"),
            Some(&alice.token),
        )
        .await;
        assert_eq!(status, 400);
        // Another user's chat and a missing chat are the same 404.
        let (status, _) = refused(stream(""), Some(&bob.token)).await;
        assert_eq!(status, 404);
        let (status, _) = refused(
            ws_url(&server.base, &format!("/chats/{}/stream", Uuid::new_v4())),
            Some(&alice.token),
        )
        .await;
        assert_eq!(status, 404);

        // A plain HTTP GET (no upgrade) is a JSON client error, not axum's plain text.
        for path in [
            format!("/chats/{chat_id}/stream"),
            "/chats/watch".to_owned(),
        ] {
            let r = server
                .http
                .get(server.api(&path))
                .header("Coder-Session-Token", &alice.token)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_client_error(), "{path}: {}", r.status());
            let body: codersdk::Response = r.json().await.unwrap();
            assert!(body.message.contains("WebSocket"), "{}", body.message);
        }

        // The auxiliary streams need Coder workspaces: 501 JSON (after authentication).
        for aux in ["desktop", "git"] {
            let url = server.api(&format!("/chats/{chat_id}/stream/{aux}"));
            let r = server.http.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 401);
            let r = server
                .http
                .get(&url)
                .header("Coder-Session-Token", &alice.token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 501);
            let body: codersdk::Response = r.json().await.unwrap();
            assert!(!body.message.is_empty());
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_bearer_tokens_work_on_sockets() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let chat_id = create_chat(&server, &alice, "hi").await;
        let url = ws_url(&server.base, &format!("/chats/{chat_id}/stream"));
        for (header, value) in [
            ("Coder-Session-Token", alice.token.clone()),
            ("Authorization", format!("Bearer {}", alice.token)),
        ] {
            let mut request = url.clone().into_client_request().unwrap();
            request.headers_mut().insert(header, value.parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
            let frame = next_frame(&mut ws).await;
            assert_eq!(frame[0].event_type, ChatStreamEventType::Status);
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_block_the_turn() {
    on_each_backend(|store| async move {
        // Several megabytes of output: far more than the socket buffers between the
        // server and a client that reads nothing.
        let word = format!("{} ", "x".repeat(2_000));
        let model = ScriptedModel::new([Reply::Text(word.repeat(3_000))]);
        let server = TestServer::start(&store, model).await;
        let alice = server.user("alice").await;
        let engine = server.state.engine();
        let chat_id = create_chat(&server, &alice, "hi").await;
        wait_status(engine, &Actor::user(alice.id), chat_id, ChatStatus::Waiting).await;

        // A client with a tiny receive buffer that never reads after the handshake.
        let addr = server.base.trim_start_matches("http://").parse().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(addr).await.unwrap();
        let url = ws_url(
            &server.base,
            &format!(
                "/chats/{chat_id}/stream?coder_session_token={}",
                alice.token
            ),
        );
        let (stalled, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .unwrap();
        let connected = Instant::now();
        eventually("the stream counted", || {
            server.state.metrics().active_chat_streams() == 1
        })
        .await;

        server.model.push(Reply::Text(word.repeat(3_000)));
        send(engine, &alice, chat_id, "again").await;
        // The turn finishes while the client is stalled.
        wait_status(engine, &Actor::user(alice.id), chat_id, ChatStatus::Waiting).await;
        // The hub cut the stalled subscriber off (it holds no subscriber for the chat)
        // while its socket task is still stuck writing.
        assert_eq!(
            engine
                .hub()
                .chat_stats(chat_id)
                .map_or(0, |s| s.subscribers),
            0,
            "the stalled subscriber is no longer in the hub"
        );
        if connected.elapsed() < STREAM_WRITE_TIMEOUT - Duration::from_secs(2) {
            assert_eq!(
                server.state.metrics().active_chat_streams(),
                1,
                "the socket is kept until the write timeout"
            );
        }
        // The blocked write gives up after the write timeout and the socket is released.
        let deadline = connected + STREAM_WRITE_TIMEOUT + Duration::from_secs(5);
        while server.state.metrics().active_chat_streams() != 0 {
            assert!(
                Instant::now() < deadline,
                "the stalled socket was never dropped"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(stalled);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_vanishing_mid_frame_ends_its_socket_only() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let engine = server.state.engine();
        let chat_id = create_chat(&server, &alice, "hi").await;
        wait_status(engine, &Actor::user(alice.id), chat_id, ChatStatus::Waiting).await;
        let mut ws = connect(
            &server.base,
            &format!("/chats/{chat_id}/stream"),
            &alice.token,
        )
        .await;
        // Read a few raw bytes of the snapshot frame, then vanish.
        let MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
            panic!("plain TCP expected");
        };
        let mut head = [0u8; 4];
        tcp.read_exact(&mut head).await.unwrap();
        drop(ws);
        eventually("the socket released", || {
            server.state.metrics().active_chat_streams() == 0
        })
        .await;
        eventually("the hub subscriber released", || {
            engine
                .hub()
                .chat_stats(chat_id)
                .map_or(0, |s| s.subscribers)
                == 0
        })
        .await;
        // The chat carries on.
        send(engine, &alice, chat_id, "again").await;
        wait_status(engine, &Actor::user(alice.id), chat_id, ChatStatus::Waiting).await;
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_messages_are_ignored_up_to_the_size_cap() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let engine = server.state.engine();
        let chat_id = create_chat(&server, &alice, "hi").await;
        wait_status(engine, &Actor::user(alice.id), chat_id, ChatStatus::Waiting).await;
        let mut ws = connect(
            &server.base,
            &format!("/chats/{chat_id}/stream"),
            &alice.token,
        )
        .await;
        next_frame(&mut ws).await;
        // At the cap: ignored, the stream goes on.
        ws.send(Message::text("x".repeat(MAX_CLIENT_MESSAGE_BYTES)))
            .await
            .unwrap();
        send(engine, &alice, chat_id, "again").await;
        events_until_status(&mut ws, ChatStatus::Waiting).await;
        assert_eq!(server.state.metrics().active_chat_streams(), 1);
        // One byte over: the server drops the connection.
        ws.send(Message::text("x".repeat(MAX_CLIENT_MESSAGE_BYTES + 1)))
            .await
            .unwrap();
        eventually("the oversized client dropped", || {
            server.state.metrics().active_chat_streams() == 0
        })
        .await;
        server.stop().await;
    })
    .await;
}

/// A server like [`TestServer`] whose hub disconnects a subscriber at the first event it
/// does not take at once (`subscriber_capacity` 0), to exercise the lag close.
async fn start_lagging_server(store: &Store) -> (String, AppState, TestUser) {
    let engine = scripted::engine_with_config(
        store,
        ScriptedModel::new([]),
        scripted::fast_settings(),
        |config| {
            let mut config = config.with_generated_titles(false);
            let mut hub = HubConfig::default();
            hub.subscriber_capacity = 0;
            config.hub = hub;
            config
        },
    )
    .await;
    let org = store.create_organization("default").await.unwrap();
    let user = store
        .create_user(NewUser {
            username: "alice".into(),
            name: "alice".into(),
            role: chatd_core::Role::Member,
        })
        .await
        .unwrap();
    store.add_member(org.id, user.id).await.unwrap();
    let token = store.create_api_token(user.id).await.unwrap();
    let admin = chatd_core::Admin::new(store.clone(), test_keyring(), ProviderApiKeys::new());
    let state = AppState::new(engine, admin, org.id);
    let base = serve(server_example::router(state.clone())).await;
    let user = TestUser {
        id: user.id,
        token: token.expose().to_owned(),
    };
    (base, state, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_sockets_are_closed_with_a_reason() {
    on_each_backend(|store| async move {
        let (base, state, alice) = start_lagging_server(&store).await;
        let engine = state.engine();
        let actor = Actor::user(alice.id);
        let chat = engine
            .create_chat(&actor, create_request(state.default_organization(), "hi"))
            .await
            .unwrap();
        // With capacity 0 even the first live event lags; let the first turn finish before
        // connecting so the snapshot holds its messages.
        wait_status(engine, &actor, chat.id, ChatStatus::Waiting).await;
        let mut stream = connect(&base, &format!("/chats/{}/stream", chat.id), &alice.token).await;
        let mut watch = connect(&base, "/chats/watch", &alice.token).await;
        let snapshot = next_frame(&mut stream).await;
        let last_id = snapshot
            .iter()
            .filter_map(|e| e.message.as_ref().map(|m| m.id))
            .max()
            .unwrap();
        eventually("both sockets subscribed", || {
            engine.hub().watcher_count(alice.id) == 1 && state.metrics().active_chat_streams() == 1
        })
        .await;
        send(engine, &alice, chat.id, "again").await;
        let (code, reason) = close_frame(&mut stream).await;
        assert_eq!(u16::from(code), CLOSE_CODE_LAGGED);
        assert!(
            reason.contains(&format!("after_id={last_id}")),
            "the reason says how to resume: {reason}"
        );
        let (code, reason) = close_frame(&mut watch).await;
        assert_eq!(u16::from(code), CLOSE_CODE_LAGGED);
        assert!(reason.contains("fell behind"), "{reason}");
        // The engine was never held up.
        wait_status(engine, &actor, chat.id, ChatStatus::Waiting).await;
        engine.clone().shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_and_closing_the_stream_marks_the_chat_read() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let engine = server.state.engine();
        let actor = Actor::user(alice.id);
        let chat_id = create_chat(&server, &alice, "hi").await;
        wait_status(engine, &actor, chat_id, ChatStatus::Waiting).await;
        assert!(engine.get_chat(&actor, chat_id).await.unwrap().has_unread);

        let mut ws = connect(
            &server.base,
            &format!("/chats/{chat_id}/stream"),
            &alice.token,
        )
        .await;
        next_frame(&mut ws).await;
        eventually_async(|| async { !engine.get_chat(&actor, chat_id).await.unwrap().has_unread })
            .await;

        // A reply arriving while connected is unread until the stream closes.
        send(engine, &alice, chat_id, "again").await;
        events_until_status(&mut ws, ChatStatus::Waiting).await;
        assert!(engine.get_chat(&actor, chat_id).await.unwrap().has_unread);
        ws.close(None).await.unwrap();
        drop(ws);
        eventually_async(|| async { !engine.get_chat(&actor, chat_id).await.unwrap().has_unread })
            .await;

        // An admin reading the chat does not mark it read for its owner.
        send(engine, &alice, chat_id, "third").await;
        wait_status(engine, &actor, chat_id, ChatStatus::Waiting).await;
        let mut admin = connect(
            &server.base,
            &format!("/chats/{chat_id}/stream"),
            &server.admin_token,
        )
        .await;
        next_frame(&mut admin).await;
        drop(admin);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(engine.get_chat(&actor, chat_id).await.unwrap().has_unread);
        server.stop().await;
    })
    .await;
}

async fn eventually_async<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_get_pings_at_the_interval() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let engine = server.state.engine();
        let chat_id = create_chat(&server, &alice, "hi").await;
        wait_status(engine, &Actor::user(alice.id), chat_id, ChatStatus::Waiting).await;
        let started = Instant::now();
        let mut stream = connect(
            &server.base,
            &format!("/chats/{chat_id}/stream"),
            &alice.token,
        )
        .await;
        let mut watch = connect(&server.base, "/chats/watch", &alice.token).await;
        next_frame(&mut stream).await;
        let (a, b) = tokio::join!(
            first_ping(&mut stream, started),
            first_ping(&mut watch, started)
        );
        for elapsed in [a.expect("stream ping"), b.expect("watch ping")] {
            assert!(
                elapsed >= STREAM_PING_INTERVAL - Duration::from_millis(500),
                "no ping before the interval: {elapsed:?}"
            );
        }
        server.stop().await;
    })
    .await;
}

/// When the first ping arrives, measured from `started`; `None` if none comes within the
/// interval and a margin.
async fn first_ping(ws: &mut Ws, started: Instant) -> Option<Duration> {
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_))) => return started.elapsed(),
                Some(Ok(Message::Text(_))) => continue,
                other => panic!("expected a ping, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(STREAM_PING_INTERVAL + Duration::from_secs(5), wait)
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_holds_at_most_the_websocket_limit() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        server.state.sockets().set_limit(2);
        let chat_id = create_chat(&server, &alice, "hello").await;
        // At the limit: a stream and a watch.
        let stream = connect(
            &server.base,
            &format!("/chats/{chat_id}/stream"),
            &alice.token,
        )
        .await;
        let mut watch = connect(&server.base, "/chats/watch", &alice.token).await;
        // One more (of either kind) is refused before the upgrade with a JSON 429.
        for path in [
            format!("/chats/{chat_id}/stream"),
            "/chats/watch".to_owned(),
        ] {
            let (status, body) = refused(ws_url(&server.base, &path), Some(&alice.token)).await;
            assert_eq!(status, 429, "{path}");
            assert!(body.detail.contains("At most 2"), "{}", body.detail);
        }
        // Another user has their own allowance.
        let _bobs = connect(&server.base, "/chats/watch", &bob.token).await;
        // Closing a socket frees its place once the server notices the close.
        drop(stream);
        let user = alice.id;
        eventually("alice's closed stream is released", || {
            server.state.sockets().open(user) == 1
        })
        .await;
        let _again = connect(
            &server.base,
            &format!("/chats/{chat_id}/stream"),
            &alice.token,
        )
        .await;
        assert_eq!(server.state.sockets().open(user), 2);
        watch.close(None).await.unwrap();
        server.stop().await;
    })
    .await;
}
