//! The connection bounds of `serve`: slow and idle clients are dropped, the connection cap
//! evicts idle sockets instead of locking out new clients, request bodies have a total
//! deadline (uploads a longer one), and WebSockets outlive the idle timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::routing::{get, post};
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use server_example::error::Json;
use server_example::serve::{spawn, ServeSettings, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn settings() -> ServeSettings {
    let mut s = ServeSettings::default();
    s.header_read_timeout = Duration::from_millis(400);
    s.idle_timeout = Duration::from_millis(600);
    s.request_body_timeout = Duration::from_millis(400);
    s.upload_body_timeout = Duration::from_secs(10);
    s.max_connections = 8;
    s
}

async fn echo(Json(v): Json<serde_json::Value>) -> Json<serde_json::Value> {
    Json(v)
}

async fn upload(body: axum::body::Bytes) -> String {
    body.len().to_string()
}

async fn ws(upgrade: WebSocketUpgrade) -> axum::response::Response {
    upgrade.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            if let Message::Text(t) = msg {
                if socket.send(Message::Text(t)).await.is_err() {
                    break;
                }
            }
        }
    })
}

async fn start(settings: ServeSettings) -> (SocketAddr, ServerHandle) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/echo", post(echo))
        .route("/api/experimental/chats/files", post(upload))
        .route("/ws", get(ws));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (handle, _task) = spawn(listener, app, settings).unwrap();
    (addr, handle)
}

/// Reads until the peer closes; the bytes read. Fails the test after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server should have closed the connection");
    out
}

#[tokio::test]
async fn slow_headers_and_idle_sockets_are_closed() {
    let (addr, _h) = start(settings()).await;
    // Never sends a byte.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    // Sends half a request head and stops (slowloris).
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    read_until_closed(&mut idle, Duration::from_secs(5)).await;
    read_until_closed(&mut slow, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn keep_alive_connections_are_closed_when_idle() {
    let (addr, _h) = start(settings()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn at_the_cap_idle_connections_make_room_for_new_clients() {
    // Timeouts far longer than the test: only eviction can free a slot.
    let mut s = settings();
    s.header_read_timeout = Duration::from_secs(600);
    s.idle_timeout = Duration::from_secs(600);
    let (addr, handle) = start(s).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Wait until the server has accepted all eight.
    for _ in 0..200 {
        if handle.stats().open_connections() == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(handle.stats().open_connections(), 8);
    let client = reqwest::Client::new();
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        client.get(format!("http://{addr}/healthz")).send(),
    )
    .await
    .expect("a new client is served at the cap")
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(handle.stats().evicted() >= 1);
    // The evicted socket was the oldest one, and the server closed it.
    read_until_closed(&mut idle[0], Duration::from_secs(5)).await;
    assert!(handle.stats().open_connections() <= 8);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408_json() {
    let (addr, _h) = start(settings()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":",
    )
    .await
    .unwrap();
    // Drip a byte now and then, each gap shorter than the deadline.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = s.write_all(b" ").await;
    }
    let got = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let body: codersdk::Response =
        serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(body.message, "The request body was not received in time.");
}

#[tokio::test]
async fn uploads_get_the_longer_body_deadline() {
    let (addr, _h) = start(settings()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /api/experimental/chats/files HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nConnection: close\r\n\r\nabc")
        .await
        .unwrap();
    // Longer than the default deadline, shorter than the upload deadline.
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.write_all(b"def").await.unwrap();
    let got = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("\r\n\r\n6"), "{text}");
}

#[tokio::test]
async fn websockets_outlive_the_idle_timeout() {
    let (addr, handle) = start(settings()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    // Three idle timeouts pass with no traffic.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    ws.send(tokio_tungstenite::tungstenite::Message::text("still here"))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "still here");
    // The upgraded socket still counts against the cap.
    assert_eq!(handle.stats().open_connections(), 1);
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let (addr, handle) = start(settings()).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    handle.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(addr).await.is_err() || {
            // The listener may still be in the kernel's table for a moment; a request fails.
            client
                .get(format!("http://{addr}/healthz"))
                .send()
                .await
                .is_err()
        }
    );
}

#[tokio::test]
async fn a_socket_that_never_speaks_gets_the_header_read_timeout_not_the_idle_timeout() {
    // hyper's HTTP/1 header timer starts only once its version detection has read a byte, so
    // a silent socket must be closed by the accept loop's own header-read deadline.
    let mut s = settings();
    s.idle_timeout = Duration::from_secs(600);
    let (addr, handle) = start(s).await;
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed long before the 600 s idle timeout"
    );
    // A client that speaks after a pause shorter than the deadline is served, and its
    // keep-alive connection is then left to the (long) idle timeout.
    let mut talker = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    talker
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut talker, &mut buf)
        .await
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    for _ in 0..100 {
        if handle.stats().open_connections() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        handle.stats().open_connections(),
        1,
        "the served client is still connected after its response"
    );
}
