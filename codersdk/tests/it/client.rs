//! The typed client against a small axum mock server: what goes on the wire (token header
//! and query parameter, paths, query encoding, bodies) and how answers come back (typed
//! bodies, errors with status and `Response`, WebSocket frames as typed events).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::Router;
use codersdk::client::{
    ChatMessagesOptions, Client, CreateUserRequest, Error, ListChatsOptions, MAX_ERROR_BODY_BYTES,
    MAX_ERROR_DETAIL_CHARS,
};
use codersdk::{
    ChatInputPart, ChatStatus, ChatStreamEventType, ChatWatchEventKind, CreateChatRequest,
    SubmitToolResultsRequest, ToolResult, Uuid, MAX_CHAT_FILE_SIZE_BYTES,
};
use futures_util::StreamExt;
use serde_json::{json, Value};

const TOKEN: &str = "secret-token-123";

/// What the mock saw: one line per request.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn chat_json(id: Uuid, status: &str) -> Value {
    json!({
        "id": id,
        "organization_id": Uuid::nil(),
        "owner_id": Uuid::nil(),
        "last_model_config_id": Uuid::nil(),
        "title": "A chat",
        "status": status,
        "last_turn_summary": null,
        "created_at": "2026-01-02T03:04:05.123Z",
        "updated_at": "2026-01-02T03:04:05.123Z",
        "archived": false,
        "pin_order": 0,
        "mcp_server_ids": [],
        "labels": {},
        "has_unread": false,
        "client_type": "api",
        "children": []
    })
}

fn token_of(headers: &HeaderMap) -> String {
    headers
        .get("coder-session-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn json_response(status: StatusCode, body: Value) -> HttpResponse {
    (status, axum::Json(body)).into_response()
}

async fn start(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_token_goes_in_the_header_and_bodies_round_trip() {
    let seen = Seen::default();
    let app = Router::new()
        .route(
            "/api/experimental/chats",
            post(
                |State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    seen.push(format!(
                        "POST chats token={} type={content_type} body={}",
                        token_of(&headers),
                        String::from_utf8_lossy(&body)
                    ));
                    if token_of(&headers) != TOKEN {
                        return json_response(
                            StatusCode::UNAUTHORIZED,
                            json!({"message": "You must be logged in."}),
                        );
                    }
                    json_response(StatusCode::CREATED, chat_json(Uuid::nil(), "pending"))
                },
            ),
        )
        .route(
            "/api/experimental/chats/{chat}/tool-results",
            post(
                |State(seen): State<Seen>, Path(chat): Path<String>, body: Bytes| async move {
                    seen.push(format!(
                        "POST tool-results {chat} {}",
                        String::from_utf8_lossy(&body)
                    ));
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(seen.clone());
    let base = start(app).await;

    let client = Client::new(&base, TOKEN).unwrap();
    let chat = client
        .create_chat(&CreateChatRequest {
            content: vec![ChatInputPart::text("hello")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(chat.status, ChatStatus::Pending);
    assert_eq!(chat.title, "A chat");

    // A tool output given as a JSON string holding JSON is sent verbatim.
    let chat_id = Uuid::new_v4();
    client
        .submit_tool_results(
            chat_id,
            &SubmitToolResultsRequest {
                results: vec![ToolResult {
                    tool_call_id: "call_1".into(),
                    output: Some(codersdk::RawJson::from_json(r#""{\"a\":1}""#).unwrap()),
                    is_error: false,
                }],
            },
        )
        .await
        .unwrap();

    let wrong = Client::new(&base, "wrong").unwrap();
    let err = wrong
        .create_chat(&CreateChatRequest::default())
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err}");

    let seen = seen.all();
    assert_eq!(
        seen[0],
        format!(
            "POST chats token={TOKEN} type=application/json \
             body={{\"content\":[{{\"type\":\"text\",\"text\":\"hello\"}}]}}"
        )
    );
    assert_eq!(
        seen[1],
        format!(
            r#"POST tool-results {chat_id} {{"results":[{{"tool_call_id":"call_1","output":"{{\"a\":1}}","is_error":false}}]}}"#
        )
    );
    assert!(seen[2].starts_with("POST chats token=wrong "));
    // The client never prints its token.
    assert!(!format!("{client:?}").contains(TOKEN));
}

#[tokio::test]
async fn errors_carry_the_status_and_the_response_body() {
    let app = Router::new().route(
        "/api/experimental/chats/{chat}",
        get(|Path(chat): Path<String>| async move {
            match chat.as_str() {
                "00000000-0000-0000-0000-000000000404" => json_response(
                    StatusCode::NOT_FOUND,
                    json!({"message": "Chat not found.", "detail": "No chat with that id."}),
                ),
                "00000000-0000-0000-0000-000000000400" => json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "Invalid request.",
                               "validations": [{"field": "labels", "detail": "Too many labels."}]}),
                ),
                "00000000-0000-0000-0000-000000000409" => json_response(
                    StatusCode::CONFLICT,
                    json!({"message": "Chat usage limit exceeded.", "spent_micros": 1500,
                               "limit_micros": 1000, "resets_at": "2026-02-01T00:00:00Z"}),
                ),
                "00000000-0000-0000-0000-000000000502" => (
                    StatusCode::BAD_GATEWAY,
                    "<html><body>upstream down</body></html>",
                )
                    .into_response(),
                "00000000-0000-0000-0000-000000000501" => json_response(
                    StatusCode::NOT_IMPLEMENTED,
                    json!({"message": "Workspaces are not available on this server."}),
                ),
                // A JSON error body one byte over the cap: it is cut, so it no longer
                // parses, and the client falls back to the status text.
                "00000000-0000-0000-0000-000000000413" => {
                    let pad = MAX_ERROR_BODY_BYTES - r#"{"message":"big","detail":""}"#.len();
                    let body = format!(r#"{{"message":"big","detail":"{}x"}}"#, "x".repeat(pad));
                    (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        [("content-type", "application/json")],
                        body,
                    )
                        .into_response()
                }
                // Exactly at the cap: read whole, parsed.
                "00000000-0000-0000-0000-000000000429" => {
                    let pad = MAX_ERROR_BODY_BYTES - r#"{"message":"full","detail":""}"#.len();
                    let body = format!(r#"{{"message":"full","detail":"{}"}}"#, "x".repeat(pad));
                    assert_eq!(body.len(), MAX_ERROR_BODY_BYTES);
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("content-type", "application/json")],
                        body,
                    )
                        .into_response()
                }
                // Non-JSON bodies keep MAX_ERROR_DETAIL_CHARS characters of detail.
                "00000000-0000-0000-0000-000000000503" => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "é".repeat(MAX_ERROR_DETAIL_CHARS),
                )
                    .into_response(),
                "00000000-0000-0000-0000-000000000504" => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "é".repeat(MAX_ERROR_DETAIL_CHARS + 1),
                )
                    .into_response(),
                _ => json_response(StatusCode::OK, chat_json(Uuid::nil(), "waiting")),
            }
        }),
    );
    let client = Client::new(&start(app).await, TOKEN).unwrap();
    let id = |n: u128| Uuid::from_u128(n);
    let hex = |s: &str| Uuid::parse_str(&format!("00000000-0000-0000-0000-{s:0>12}")).unwrap();

    let err = client.chat(hex("404")).await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.response().unwrap().message, "Chat not found.");
    assert_eq!(err.response().unwrap().detail, "No chat with that id.");
    assert_eq!(
        err.to_string(),
        "HTTP 404: Chat not found.: No chat with that id."
    );

    let err = client.chat(hex("400")).await.unwrap_err();
    assert!(err.is_bad_request());
    assert_eq!(err.response().unwrap().validations[0].field, "labels");

    let err = client.chat(hex("409")).await.unwrap_err();
    assert!(err.is_conflict());
    let limit = err.usage_limit().unwrap();
    assert_eq!((limit.spent_micros, limit.limit_micros), (1500, 1000));

    let err = client.chat(hex("502")).await.unwrap_err();
    assert!(err.is_server_error());
    let response = err.response().unwrap();
    assert_eq!(response.message, "Bad Gateway (HTTP 502)");
    assert_eq!(response.detail, "<html><body>upstream down</body></html>");
    assert!(err.usage_limit().is_none());

    let err = client.chat(hex("503")).await.unwrap_err();
    assert_eq!(
        err.response().unwrap().detail,
        "é".repeat(MAX_ERROR_DETAIL_CHARS)
    );
    let err = client.chat(hex("504")).await.unwrap_err();
    assert_eq!(
        err.response().unwrap().detail,
        format!("{}…", "é".repeat(MAX_ERROR_DETAIL_CHARS))
    );

    let err = client.chat(hex("501")).await.unwrap_err();
    assert!(err.is_not_implemented());

    let err = client.chat(hex("413")).await.unwrap_err();
    assert!(err.is_payload_too_large());
    assert_eq!(
        err.response().unwrap().message,
        "Payload Too Large (HTTP 413)"
    );
    match &err {
        Error::Api { body, .. } => assert_eq!(body.len(), MAX_ERROR_BODY_BYTES),
        other => panic!("{other:?}"),
    }

    let err = client.chat(hex("429")).await.unwrap_err();
    assert!(err.is_too_many_requests());
    assert_eq!(err.response().unwrap().message, "full");

    assert_eq!(
        client.chat(id(1)).await.unwrap().status,
        ChatStatus::Waiting
    );

    // Nobody listening: a transport error, with no status.
    let closed = Client::new("http://127.0.0.1:1", TOKEN).unwrap();
    let err = closed.chat(id(1)).await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert_eq!(err.status(), None);
    assert!(err.response().is_none());
}

#[tokio::test]
async fn queries_are_encoded_and_omitted_when_empty() {
    let seen = Seen::default();
    let record = |State(seen): State<Seen>, RawQuery(q): RawQuery| async move {
        seen.push(q.unwrap_or_else(|| "<none>".into()));
        axum::Json(json!({"messages": [], "queued_messages": [], "has_more": false}))
    };
    let app = Router::new()
        .route(
            "/api/experimental/chats",
            get(
                |State(seen): State<Seen>, RawQuery(q): RawQuery| async move {
                    seen.push(q.unwrap_or_else(|| "<none>".into()));
                    axum::Json(json!([]))
                },
            ),
        )
        .route("/api/experimental/chats/{chat}/messages", get(record))
        .with_state(seen.clone());
    let client = Client::new(&start(app).await, TOKEN).unwrap();

    client.chats(&ListChatsOptions::default()).await.unwrap();
    let after = Uuid::from_u128(7);
    client
        .chats(&ListChatsOptions {
            q: Some("archived:false title:\"a&b\"".into()),
            labels: BTreeMap::from([
                ("env".into(), "prod".into()),
                ("team/x".into(), "a b".into()),
            ]),
            after_id: Some(after),
            limit: Some(25),
            offset: Some(50),
        })
        .await
        .unwrap();
    let chat = Uuid::from_u128(9);
    client
        .chat_messages(chat, &ChatMessagesOptions::default())
        .await
        .unwrap();
    let page = client
        .chat_messages(
            chat,
            &ChatMessagesOptions {
                before_id: Some(100),
                after_id: Some(-1),
                limit: Some(200),
            },
        )
        .await
        .unwrap();
    assert!(page.messages.is_empty() && !page.has_more);

    assert_eq!(
        seen.all(),
        vec![
            "<none>".to_owned(),
            format!(
                "q=archived%3Afalse+title%3A%22a%26b%22&label=env%3Aprod&label=team%2Fx%3Aa+b\
                 &after_id={after}&limit=25&offset=50"
            ),
            "<none>".to_owned(),
            "before_id=100&after_id=-1&limit=200".to_owned(),
        ]
    );
}

/// A WebSocket endpoint that records its query and plays `frames`, then closes with
/// `close` (`None`: a normal closure).
fn ws_route(
    seen: Seen,
    frames: Vec<String>,
    close: Option<(u16, &'static str)>,
) -> axum::routing::MethodRouter {
    get(move |ws: WebSocketUpgrade, RawQuery(q): RawQuery| {
        let frames = frames.clone();
        let seen = seen.clone();
        async move {
            seen.push(q.unwrap_or_default());
            ws.on_upgrade(move |mut socket: WebSocket| async move {
                for frame in frames {
                    socket.send(Message::Text(frame.into())).await.unwrap();
                }
                let frame = close.map(|(code, reason)| CloseFrame {
                    code,
                    reason: reason.into(),
                });
                let frame = frame.or(Some(CloseFrame {
                    code: 1000,
                    reason: "".into(),
                }));
                let _ = socket.send(Message::Close(frame)).await;
            })
        }
    })
}

#[tokio::test]
async fn stream_frames_are_flattened_in_order() {
    let seen = Seen::default();
    let chat = Uuid::from_u128(42);
    let part = |text: &str| {
        json!({"type": "message_part", "chat_id": chat, "message_part": {"role": "assistant",
            "part": {"type": "text", "text": text}}})
    };
    let status = |s: &str| json!({"type": "status", "chat_id": chat, "status": {"status": s}});
    let frames = vec![
        json!([status("running"), part("Hel")]).to_string(),
        json!([part("lo"), {"type": "preview_reset", "chat_id": chat}]).to_string(),
        "not json".to_owned(),
        // A lone event object is read too.
        status("waiting").to_string(),
    ];
    let app = Router::new().route(
        "/api/experimental/chats/{chat}/stream",
        ws_route(seen.clone(), frames, None),
    );
    let client = Client::new(&start(app).await, TOKEN).unwrap();

    let mut events = client.stream(chat, Some(17)).await.unwrap();
    let mut got = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(e) => {
                let text = e
                    .message_part
                    .as_ref()
                    .map(|p| p.part.text.clone())
                    .or_else(|| e.status.as_ref().map(|s| s.status.as_str().to_owned()))
                    .unwrap_or_default();
                got.push(format!("{}:{text}", e.event_type.as_str()));
                assert_eq!(e.chat_id, chat);
            }
            Err(Error::Decode { what, .. }) => got.push(format!("decode error: {what}")),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        got,
        vec![
            "status:running",
            "message_part:Hel",
            "message_part:lo",
            "preview_reset:",
            "decode error: a chat stream frame",
            "status:waiting",
        ]
    );
    assert_eq!(
        seen.all(),
        vec![format!("after_id=17&coder_session_token={TOKEN}")]
    );
    // The unknown type was kept, not rejected.
    assert!(ChatStreamEventType::from_wire("preview_reset").is_unknown());
}

#[tokio::test]
async fn watch_frames_are_single_events_and_abnormal_closes_are_errors() {
    let seen = Seen::default();
    let event = json!({"kind": "title_change", "chat": chat_json(Uuid::from_u128(5), "waiting")});
    let app = Router::new().route(
        "/api/experimental/chats/watch",
        ws_route(
            seen.clone(),
            vec![event.to_string()],
            Some((1008, "subscriber too slow")),
        ),
    );
    let client = Client::new(&start(app).await, TOKEN).unwrap();

    let mut events = client.watch().await.unwrap();
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.kind, ChatWatchEventKind::TitleChange);
    assert_eq!(first.chat.id, Uuid::from_u128(5));
    match events.next().await {
        Some(Err(Error::Closed { code, reason })) => {
            assert_eq!((code, reason.as_str()), (1008, "subscriber too slow"));
        }
        other => panic!("{other:?}"),
    }
    assert!(events.next().await.is_none());
    assert_eq!(seen.all(), vec![format!("coder_session_token={TOKEN}")]);
}

#[tokio::test]
async fn a_refused_upgrade_is_an_api_error() {
    let app = Router::new().route(
        "/api/experimental/chats/{chat}/stream",
        get(|| async {
            json_response(
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid after_id.", "validations": [{"field": "after_id", "detail": "Must be an integer."}]}),
            )
        }),
    );
    let client = Client::new(&start(app).await, TOKEN).unwrap();
    let err = client
        .stream(Uuid::from_u128(1), Some(3))
        .await
        .unwrap_err();
    assert!(err.is_bad_request(), "{err:?}");
    assert_eq!(err.response().unwrap().message, "Invalid after_id.");
    assert_eq!(err.response().unwrap().validations[0].field, "after_id");
}

#[tokio::test]
async fn files_go_up_raw_and_come_down_capped() {
    let seen = Seen::default();
    let app = Router::new()
        .route(
            "/api/experimental/chats/files",
            post(
                |State(seen): State<Seen>,
                 RawQuery(q): RawQuery,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    seen.push(format!(
                        "{} | {} | {} | {}",
                        q.unwrap_or_default(),
                        h("content-type"),
                        h("content-disposition"),
                        String::from_utf8_lossy(&body)
                    ));
                    json_response(StatusCode::CREATED, json!({"id": Uuid::from_u128(3)}))
                },
            ),
        )
        .route(
            "/api/experimental/chats/files/{file}",
            get(|Path(file): Path<Uuid>| async move {
                // File 1 is exactly the cap, file 2 one byte over.
                let len = MAX_CHAT_FILE_SIZE_BYTES as usize + usize::from(file.as_u128() == 2);
                (
                    [
                        ("content-type", "text/plain"),
                        ("content-disposition", "inline; filename=\"a.txt\""),
                    ],
                    vec![b'a'; len],
                )
            }),
        )
        .with_state(seen.clone());
    let client = Client::new(&start(app).await, TOKEN).unwrap();

    let org = Uuid::from_u128(8);
    let uploaded = client
        .upload_chat_file(org, "text/plain", Some("notes.txt"), b"hello".to_vec())
        .await
        .unwrap();
    assert_eq!(uploaded.id, Uuid::from_u128(3));
    assert_eq!(
        seen.all(),
        vec![format!(
            "organization={org} | text/plain | attachment; filename=\"notes.txt\" | hello"
        )]
    );

    let file = client.chat_file(Uuid::from_u128(1)).await.unwrap();
    assert_eq!(file.content_type, "text/plain");
    assert_eq!(
        file.content_disposition.as_deref(),
        Some("inline; filename=\"a.txt\"")
    );
    assert_eq!(file.data.len() as u64, MAX_CHAT_FILE_SIZE_BYTES);
    let err = client.chat_file(Uuid::from_u128(2)).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn users_and_tokens() {
    let seen = Seen::default();
    let app = Router::new()
        .route(
            "/api/v2/users/me",
            get(|headers: HeaderMap| async move {
                // Coder's shape: roles are objects; chatd may send plain names.
                let roles = if token_of(&headers) == TOKEN {
                    json!([{"name": "owner", "display_name": "Owner"}])
                } else {
                    json!(["member"])
                };
                axum::Json(
                    json!({"id": Uuid::from_u128(1), "username": "alice", "email": "",
                    "created_at": "2026-01-01T00:00:00Z", "status": "active",
                    "organization_ids": [Uuid::from_u128(2)], "roles": roles,
                    "login_type": "password", "theme_preference": ""}),
                )
            }),
        )
        .route(
            "/api/v2/users",
            post(|State(seen): State<Seen>, body: Bytes| async move {
                seen.push(String::from_utf8_lossy(&body).into_owned());
                json_response(
                    StatusCode::CREATED,
                    json!({"id": Uuid::from_u128(3), "username": "bob", "roles": null,
                           "organization_ids": null}),
                )
            }),
        )
        .route(
            "/api/v2/users/{user}/keys",
            post(
                |State(seen): State<Seen>, Path(user): Path<String>| async move {
                    seen.push(format!("keys for {user}"));
                    json_response(StatusCode::CREATED, json!({"key": "new-token"}))
                },
            ),
        )
        .with_state(seen.clone());
    let base = start(app).await;
    let client = Client::new(&base, TOKEN).unwrap();

    let me = client.me().await.unwrap();
    assert_eq!(me.username, "alice");
    assert!(me.is_admin());
    assert_eq!(me.organization_ids, vec![Uuid::from_u128(2)]);
    let member = Client::new(&base, "other").unwrap().me().await.unwrap();
    assert!(!member.is_admin());
    assert_eq!(member.roles[0].name, "member");

    let bob = client
        .create_user(&CreateUserRequest {
            username: "bob".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(bob.roles.is_empty() && bob.organization_ids.is_empty());
    let key = client.create_token("bob smith").await.unwrap();
    assert_eq!(key.key.expose(), "new-token");
    assert_eq!(
        format!("{key:?}"),
        "GenerateApiKeyResponse { key: [REDACTED] }"
    );
    assert_eq!(
        seen.all(),
        vec![
            r#"{"username":"bob"}"#.to_owned(),
            "keys for bob smith".to_owned()
        ]
    );
}
