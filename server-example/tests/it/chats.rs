//! The chat routes of `/api/experimental` (codersdk.md §5, §16.1–16.4) over a real server
//! and plain HTTP, on both backends: every route's success and its main error codes, the
//! queue and interrupt flow, a client-executed (dynamic) tool flow, label filters, cursor
//! paging, titles on request, and bad input that must leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use chatd_test_support::db::on_each_backend;
use chatd_test_support::scripted::{Reply, ScriptedModel};
use chatd_test_support::server::TestServer;
use codersdk::{
    Chat, ChatMessage, ChatMessagePartType, ChatMessageRole, ChatMessagesResponse, ChatStatus,
    ChatWatchEventKind, CreateChatMessageResponse, EditChatMessageResponse,
    ProposeChatTitleResponse, Response, Uuid, MAX_CHAT_LABELS, MAX_WORKSPACE_IDS_PER_LOOKUP,
};
use reqwest::Method;
use serde_json::{json, Value};
use server_example::routes::chats::MAX_CREATE_CHAT_BODY_BYTES;
use tokio::sync::Notify;

/// How long a test waits for a chat to reach a status.
const WAIT: Duration = Duration::from_secs(10);

/// A caller of the API: a token, or none.
struct Api<'a> {
    server: &'a TestServer,
    token: Option<String>,
}

/// An HTTP answer: status and the body as JSON (`Null` when empty).
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    /// The body as `T`, after checking the status.
    fn expect<T: serde::de::DeserializeOwned>(self, status: u16) -> T {
        assert_eq!(self.status, status, "body: {}", self.body);
        serde_json::from_value(self.body).unwrap()
    }

    /// Checks that the answer is an error with `status` and a JSON `Response` body, and
    /// returns the body.
    fn error(self, status: u16) -> Response {
        assert_eq!(self.status, status, "body: {}", self.body);
        let body: Response = serde_json::from_value(self.body).expect("a JSON Response");
        assert!(!body.message.is_empty(), "error without a message");
        body
    }
}

impl<'a> Api<'a> {
    fn new(server: &'a TestServer, token: &str) -> Self {
        Api {
            server,
            token: Some(token.to_owned()),
        }
    }

    fn anonymous(server: &'a TestServer) -> Self {
        Api {
            server,
            token: None,
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.server.http.request(method, self.server.api(path));
        match &self.token {
            Some(token) => builder.header("Coder-Session-Token", token),
            None => builder,
        }
    }

    async fn finish(builder: reqwest::RequestBuilder) -> Answer {
        let response = builder.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "status {status}: body is not JSON: {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Answer { status, body }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut builder = self.request(method, path);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        Api::finish(builder).await
    }

    /// A request whose body is sent as given, with `content_type`.
    async fn raw(&self, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let builder = self
            .request(method, path)
            .header("Content-Type", content_type)
            .body(body);
        Api::finish(builder).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn post_empty(&self, path: &str) -> Answer {
        self.call(Method::POST, path, None).await
    }

    async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a chat whose first message is `text`, with `extra` fields merged into the
    /// body.
    async fn create(&self, text: &str, extra: Value) -> Chat {
        let mut body = json!({"content": [{"type": "text", "text": text}]});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.post("/chats", body).await.expect(201)
    }

    async fn chat(&self, id: Uuid) -> Chat {
        self.get(&format!("/chats/{id}")).await.expect(200)
    }

    async fn list(&self, query: &str) -> Vec<Chat> {
        self.get(&format!("/chats{query}")).await.expect(200)
    }

    async fn messages(&self, id: Uuid, query: &str) -> ChatMessagesResponse {
        self.get(&format!("/chats/{id}/messages{query}"))
            .await
            .expect(200)
    }

    async fn send(&self, id: Uuid, text: &str) -> Answer {
        self.post(
            &format!("/chats/{id}/messages"),
            json!({"content": [{"type": "text", "text": text}]}),
        )
        .await
    }

    /// Polls until the chat has `status` and `done` holds for it.
    async fn wait_until(&self, id: Uuid, status: ChatStatus, done: impl Fn(&Chat) -> bool) -> Chat {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let chat = self.chat(id).await;
            if chat.status == status && done(&chat) {
                return chat;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chat {id} stayed {:?} (title {:?}), wanted {status:?}",
                chat.status,
                chat.title
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_status(&self, id: Uuid, status: ChatStatus) -> Chat {
        self.wait_until(id, status, |_| true).await
    }

    /// Waits for the first turn to end and the automatic title (the scripted model answers
    /// title calls with "Scripted Title") to land, so later title checks are not raced.
    async fn settled(&self, id: Uuid) -> Chat {
        self.wait_until(id, ChatStatus::Waiting, |c| c.title == "Scripted Title")
            .await
    }
}

fn text_of(m: &ChatMessage) -> String {
    m.content
        .iter()
        .filter(|p| p.part_type == ChatMessagePartType::Text)
        .map(|p| p.text.as_str())
        .collect()
}

fn ids(chats: &[Chat]) -> Vec<Uuid> {
    chats.iter().map(|c| c.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_read_list_and_change_a_chat() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let api = Api::new(&server, &alice.token);

        // organization_id omitted: the caller's only organization is used (older clients).
        let chat = api
            .create(
                "plan the offsite agenda for next week please",
                json!({"labels": {"team": "ops"}}),
            )
            .await;
        assert_eq!(chat.owner_id, alice.id);
        assert_eq!(chat.organization_id, server.state.default_organization());
        assert_eq!(chat.title, "plan the offsite agenda for next…");
        assert_eq!(chat.labels.get("team").map(String::as_str), Some("ops"));
        assert!(matches!(
            chat.status,
            ChatStatus::Pending | ChatStatus::Running
        ));
        // An explicit organization works too; one the caller is not in is refused.
        let explicit = api
            .create(
                "second",
                json!({"organization_id": server.state.default_organization()}),
            )
            .await;
        let body = api
            .post(
                "/chats",
                json!({"organization_id": Uuid::new_v4(), "content": [{"type": "text", "text": "x"}]}),
            )
            .await
            .error(400);
        assert_eq!(body.validations[0].field, "organization_id");

        // The first turn runs and the automatic title lands.
        let settled = api.settled(chat.id).await;
        assert_eq!(settled.id, chat.id);
        api.settled(explicit.id).await;
        let listed = api.list("").await;
        assert_eq!(listed.len(), 2);
        assert!(ids(&listed).contains(&chat.id));

        // PATCH: rename (204, no body), then read it back.
        let r = api
            .patch(&format!("/chats/{}", chat.id), json!({"title": "  Offsite  "}))
            .await;
        assert_eq!(r.status, 204);
        assert_eq!(r.body, Value::Null);
        assert_eq!(api.chat(chat.id).await.title, "Offsite");
        // Invalid titles are 400 and change nothing.
        api.patch(&format!("/chats/{}", chat.id), json!({"title": "  "}))
            .await
            .error(400);
        api.patch(
            &format!("/chats/{}", chat.id),
            json!({"title": "t".repeat(codersdk::MAX_CHAT_TITLE_RUNES + 1)}),
        )
        .await
        .error(400);
        assert_eq!(api.chat(chat.id).await.title, "Offsite");

        // Labels are replaced whole; pinning moves the chat to the front.
        api.patch(
            &format!("/chats/{}", chat.id),
            json!({"labels": {"team": "infra", "env": "prod"}, "pin_order": 1}),
        )
        .await
        .expect::<Value>(204);
        let changed = api.chat(chat.id).await;
        assert_eq!(changed.labels.len(), 2);
        assert_eq!(changed.pin_order, 1);

        // Archiving hides the chat from the default listing; archiving twice is 400.
        api.patch(&format!("/chats/{}", chat.id), json!({"archived": true}))
            .await
            .expect::<Value>(204);
        assert_eq!(ids(&api.list("").await), vec![explicit.id]);
        assert_eq!(
            ids(&api.list("?q=archived:true").await),
            vec![chat.id],
            "archived:true lists only archived chats"
        );
        api.patch(&format!("/chats/{}", chat.id), json!({"archived": true}))
            .await
            .error(400);
        // An archived chat takes no messages.
        api.send(chat.id, "still there?").await.error(400);
        api.patch(&format!("/chats/{}", chat.id), json!({"archived": false}))
            .await
            .expect::<Value>(204);
        assert_eq!(api.list("").await.len(), 2);

        // Unknown chats are 404.
        api.get(&format!("/chats/{}", Uuid::new_v4()))
            .await
            .error(404);
        api.patch(&format!("/chats/{}", Uuid::new_v4()), json!({"title": "x"}))
            .await
            .error(404);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_are_401() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let chat = Api::new(&server, &alice.token)
            .create("hello", json!({}))
            .await;
        let chat_path = format!("/chats/{}", chat.id);
        let nobody = Api::anonymous(&server);
        let wrong = Api::new(&server, "not-a-token");
        for api in [&nobody, &wrong] {
            api.get("/chats").await.error(401);
            api.post(
                "/chats",
                json!({"content": [{"type": "text", "text": "x"}]}),
            )
            .await
            .error(401);
            api.get(&chat_path).await.error(401);
            api.patch(&chat_path, json!({"title": "x"}))
                .await
                .error(401);
            api.get(&format!("{chat_path}/messages")).await.error(401);
            api.send(chat.id, "x").await.error(401);
            api.post_empty(&format!("{chat_path}/interrupt"))
                .await
                .error(401);
            api.post_empty(&format!("{chat_path}/title/propose"))
                .await
                .error(401);
            api.get("/chats/by-workspace").await.error(401);
        }
        // The token also works as a bearer token and as the query parameter; the query
        // parameter is not an "unknown query key".
        let bearer = server
            .http
            .get(server.api(&chat_path))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap();
        assert_eq!(bearer.status(), 200);
        // The query parameter authenticates WebSocket upgrades and file downloads only.
        let query = server
            .http
            .get(server.api(&format!(
                "/chats?coder_session_token={}&limit=5",
                alice.token
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(query.status(), 401);
        // Nothing was created by the refused requests.
        assert_eq!(Api::new(&server, &alice.token).list("").await.len(), 1);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_chat_is_404_and_an_admin_may_read_but_not_write() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let owner = Api::new(&server, &alice.token);
        let stranger = Api::new(&server, &bob.token);
        let admin = Api::new(&server, &server.admin_token);
        let chat = owner.create("secret plans", json!({})).await;
        let chat = owner.settled(chat.id).await;
        let messages = owner.messages(chat.id, "").await;
        let first = messages.messages.last().unwrap().id;
        let p = |suffix: &str| format!("/chats/{}{suffix}", chat.id);

        // A stranger cannot tell the chat exists.
        assert!(stranger.list("").await.is_empty());
        stranger.get(&p("")).await.error(404);
        stranger.get(&p("/messages")).await.error(404);
        stranger
            .patch(&p(""), json!({"title": "mine"}))
            .await
            .error(404);
        stranger.send(chat.id, "hi").await.error(404);
        stranger
            .patch(
                &p(&format!("/messages/{first}")),
                json!({"content": [{"type": "text", "text": "x"}]}),
            )
            .await
            .error(404);
        stranger.post_empty(&p("/interrupt")).await.error(404);
        stranger
            .post(
                &p("/tool-results"),
                json!({"results": [{"tool_call_id": "a", "output": 1}]}),
            )
            .await
            .error(404);
        stranger.delete(&p("/queue/1")).await.error(404);
        stranger.post_empty(&p("/queue/1/promote")).await.error(404);
        stranger.post_empty(&p("/title/propose")).await.error(404);
        stranger
            .post_empty(&p("/title/regenerate"))
            .await
            .error(404);
        stranger.get(&p("/diff")).await.error(404);

        // An admin reads it...
        assert_eq!(admin.chat(chat.id).await.id, chat.id);
        assert_eq!(admin.messages(chat.id, "").await.messages.len(), 2);
        // ...but every write is the owner's: 403 with an explanation.
        admin
            .patch(&p(""), json!({"title": "admin's"}))
            .await
            .error(403);
        admin.send(chat.id, "hi").await.error(403);
        admin
            .patch(
                &p(&format!("/messages/{first}")),
                json!({"content": [{"type": "text", "text": "x"}]}),
            )
            .await
            .error(403);
        admin.post_empty(&p("/interrupt")).await.error(403);
        admin
            .post(
                &p("/tool-results"),
                json!({"results": [{"tool_call_id": "a", "output": 1}]}),
            )
            .await
            .error(403);
        admin.delete(&p("/queue/1")).await.error(403);
        admin.post_empty(&p("/queue/1/promote")).await.error(403);
        admin.post_empty(&p("/title/propose")).await.error(403);
        admin.post_empty(&p("/title/regenerate")).await.error(403);

        // None of it changed the chat.
        let after = owner.chat(chat.id).await;
        assert_eq!(after.title, chat.title);
        assert_eq!(after.status, ChatStatus::Waiting);
        assert_eq!(owner.messages(chat.id, "").await.messages.len(), 2);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_json_4xx_and_nothing_is_persisted() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let api = Api::new(&server, &alice.token);

        // Chat creation: malformed, truncated, wrongly typed, empty and oversized input.
        api.raw(
            Method::POST,
            "/chats",
            "application/json",
            b"{not json".to_vec(),
        )
        .await
        .error(400);
        api.raw(
            Method::POST,
            "/chats",
            "application/json",
            br#"{"content":[{"type":"text","text":"cut"#.to_vec(),
        )
        .await
        .error(400);
        let r = api
            .raw(
                Method::POST,
                "/chats",
                "text/plain",
                br#"{"content":[{"type":"text","text":"x"}]}"#.to_vec(),
            )
            .await;
        r.error(415);
        // A body of the wrong shape is refused by the JSON extractor (axum answers 422).
        let r = api
            .raw(
                Method::POST,
                "/chats",
                "application/json",
                br#"{"content":5}"#.to_vec(),
            )
            .await;
        assert!((400..500).contains(&r.status), "{}", r.status);
        let status = r.status;
        r.error(status);
        let body = api.post("/chats", json!({"content": []})).await.error(400);
        assert_eq!(body.message, "Content is required.");
        api.post(
            "/chats",
            json!({"content": [{"type": "image", "text": "x"}]}),
        )
        .await
        .error(400);
        // 10 000 labels: far over the limit of 50.
        let labels: serde_json::Map<String, Value> =
            (0..10_000).map(|i| (format!("k{i}"), json!("v"))).collect();
        let body = api
            .post(
                "/chats",
                json!({"content": [{"type": "text", "text": "x"}], "labels": labels.clone()}),
            )
            .await
            .error(400);
        assert!(body
            .validations
            .iter()
            .any(|v| v.field.starts_with("labels")));
        // Exactly the label limit is fine (checked last, so the list below has one chat).
        let at_limit: serde_json::Map<String, Value> = (0..MAX_CHAT_LABELS)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect();
        let chat = api
            .create("labels at the limit", json!({"labels": at_limit}))
            .await;
        assert_eq!(chat.labels.len(), MAX_CHAT_LABELS);

        // Listing: unknown keys, bad integers, bad queries, 10 000 label filters.
        let body = api.get("/chats?bogus=1").await.error(400);
        assert_eq!(body.validations[0].field, "bogus");
        api.get("/chats?limit=ten").await.error(400);
        api.get("/chats?limit=-1").await.error(400);
        api.get("/chats?offset=1.5").await.error(400);
        api.get("/chats?after_id=not-a-uuid").await.error(400);
        api.get("/chats?limit=1&limit=2").await.error(400);
        api.get("/chats?q=nonsense").await.error(400);
        api.get("/chats?label=nocolon").await.error(400);
        // As many label filters as fit in a URI (the `http` crate caps a URI below 64 KiB;
        // 10 000 filters would not even leave the client).
        let many = (0..4_000)
            .map(|i| format!("label=k{i}:v"))
            .collect::<Vec<_>>()
            .join("&");
        let body = api.get(&format!("/chats?{many}")).await.error(400);
        assert!(body.validations.iter().all(|v| v.field == "label"));

        // Path parameters: invalid UUIDs and integers are 400, not plain-text rejections.
        let id = chat.id;
        for path in [
            "/chats/not-a-uuid".to_owned(),
            "/chats/not-a-uuid/messages".to_owned(),
            format!("/chats/{id}/messages?before_id=x"),
            format!("/chats/{id}/messages?before_id=0"),
            format!("/chats/{id}/messages?limit=201"),
            format!("/chats/{id}/messages?limit=0"),
            format!("/chats/{id}/messages?after_id=5&before_id=5"),
            format!("/chats/{id}/messages?nope=1"),
            format!("/chats/{id}?extra=1"),
            "/chats/123/diff".to_owned(),
        ] {
            api.get(&path).await.error(400);
        }
        // The message quotes the bad value; the validation names the parameter.
        let body = api.get("/chats/not-a-uuid").await.error(400);
        assert_eq!(body.message, "Invalid chat ID \"not-a-uuid\".");
        assert_eq!(body.validations[0].field, "chat");
        let body = api.get(&format!("/chats/{id}?extra=1")).await.error(400);
        assert_eq!(body.validations[0].field, "extra");
        // The token parameter is an authentication parameter: tolerated as a query key on
        // every route (it authenticates only WebSocket upgrades and file downloads).
        let chat: Chat = api
            .get(&format!(
                "/chats/{id}?coder_session_token=ignored-with-a-header"
            ))
            .await
            .expect(200);
        assert_eq!(chat.id, id);
        let edit = json!({"content": [{"type": "text", "text": "x"}]});
        api.patch(&format!("/chats/{id}/messages/abc"), edit.clone())
            .await
            .error(400);
        api.patch(&format!("/chats/{id}/messages/0"), edit.clone())
            .await
            .error(400);
        api.patch(
            &format!("/chats/{id}/messages/99999999999999999999"),
            edit.clone(),
        )
        .await
        .error(400);
        api.patch("/chats/nope/messages/1", edit).await.error(400);
        api.delete(&format!("/chats/{id}/queue/abc"))
            .await
            .error(400);
        let body = api
            .delete(&format!("/chats/{id}/queue/-3"))
            .await
            .error(400);
        assert_eq!(body.validations[0].field, "queuedMessage");
        assert_eq!(body.message, "Invalid queued message ID \"-3\".");
        api.post_empty(&format!("/chats/{id}/queue/1.5/promote"))
            .await
            .error(400);
        api.post_empty("/chats/nope/interrupt").await.error(400);
        api.post_empty("/chats/nope/title/regenerate")
            .await
            .error(400);

        // Sending and patching: the same body rules.
        api.raw(
            Method::POST,
            &format!("/chats/{id}/messages"),
            "application/json",
            b"[".to_vec(),
        )
        .await
        .error(400);
        api.raw(
            Method::PATCH,
            &format!("/chats/{id}"),
            "application/x-www-form-urlencoded",
            b"title=x".to_vec(),
        )
        .await
        .error(415);
        api.patch(&format!("/chats/{id}"), json!({"labels": labels}))
            .await
            .error(400);
        api.patch(&format!("/chats/{id}"), json!({"pin_order": -1}))
            .await
            .error(400);
        api.send(id, "").await.error(400);
        api.post(&format!("/chats/{id}/tool-results"), json!({"results": []}))
            .await
            .error(400);

        // Only the one valid chat exists, with its one message and its labels intact.
        let chats = api.list("").await;
        assert_eq!(ids(&chats), vec![id]);
        api.settled(id).await;
        let messages = api.messages(id, "").await;
        assert_eq!(messages.messages.len(), 2);
        assert_eq!(api.chat(id).await.labels.len(), MAX_CHAT_LABELS);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_creation_accepts_a_body_at_the_cap_and_refuses_one_byte_more() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let api = Api::new(&server, &alice.token);
        // A valid body of exactly `len` bytes: one long word of text.
        let body_of = |len: usize| {
            let empty = r#"{"content":[{"type":"text","text":""}]}"#;
            let text = "a".repeat(len - empty.len());
            let body = format!(r#"{{"content":[{{"type":"text","text":"{text}"}}]}}"#);
            assert_eq!(body.len(), len);
            body.into_bytes()
        };
        assert_eq!(MAX_CREATE_CHAT_BODY_BYTES, 256 * 1024);

        let over = api
            .raw(
                Method::POST,
                "/chats",
                "application/json",
                body_of(MAX_CREATE_CHAT_BODY_BYTES + 1),
            )
            .await
            .error(413);
        assert!(over.message.contains("too large"), "{}", over.message);
        assert!(api.list("").await.is_empty(), "nothing was created");

        let r = api
            .raw(
                Method::POST,
                "/chats",
                "application/json",
                body_of(MAX_CREATE_CHAT_BODY_BYTES),
            )
            .await;
        let chat: Chat = r.expect(201);
        let settled = api.wait_status(chat.id, ChatStatus::Waiting).await;
        assert_eq!(settled.id, chat.id);
        let first = api.messages(chat.id, "").await.messages.pop().unwrap();
        assert_eq!(
            text_of(&first).len(),
            MAX_CREATE_CHAT_BODY_BYTES - r#"{"content":[{"type":"text","text":""}]}"#.len()
        );
        assert_eq!(api.list("").await.len(), 1);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_page_by_cursor_and_an_edit_replaces_the_tail() {
    on_each_backend(|store| async move {
        let model = ScriptedModel::new([
            Reply::Text("answer one".into()),
            Reply::Text("answer two".into()),
            Reply::Text("answer three".into()),
            Reply::Text("answer two again".into()),
        ]);
        let server = TestServer::start(&store, model).await;
        let alice = server.user("alice").await;
        let api = Api::new(&server, &alice.token);
        let chat = api.create("one", json!({})).await;
        api.wait_status(chat.id, ChatStatus::Waiting).await;
        let sent: CreateChatMessageResponse = api.send(chat.id, "two").await.expect(200);
        assert!(!sent.queued);
        let second_user = sent.message.unwrap();
        assert_eq!(text_of(&second_user), "two");
        api.wait_status(chat.id, ChatStatus::Waiting).await;
        api.send(chat.id, "three").await.expect::<Value>(200);
        api.wait_status(chat.id, ChatStatus::Waiting).await;

        // The whole history, newest first.
        let all = api.messages(chat.id, "").await;
        assert!(!all.has_more);
        let texts: Vec<String> = all.messages.iter().map(text_of).collect();
        assert_eq!(
            texts,
            [
                "answer three",
                "three",
                "answer two",
                "two",
                "answer one",
                "one"
            ]
        );
        let id = |i: usize| all.messages[i].id;

        // Pages of two, newest first, following before_id.
        let page = api.messages(chat.id, "?limit=2").await;
        assert!(page.has_more);
        assert_eq!(page.messages.len(), 2);
        assert_eq!(page.messages[0].id, id(0));
        let page = api
            .messages(chat.id, &format!("?limit=2&before_id={}", id(1)))
            .await;
        assert_eq!(
            page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            [id(2), id(3)]
        );
        assert!(page.has_more);
        let page = api
            .messages(chat.id, &format!("?limit=2&before_id={}", id(3)))
            .await;
        assert_eq!(page.messages.len(), 2);
        assert!(!page.has_more);
        // Only after_id: oldest first.
        let page = api.messages(chat.id, &format!("?after_id={}", id(4))).await;
        assert_eq!(
            page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            [id(3), id(2), id(1), id(0)]
        );
        // Both cursors: the window between them.
        let page = api
            .messages(chat.id, &format!("?after_id={}&before_id={}", id(3), id(0)))
            .await;
        assert_eq!(page.messages.len(), 2);
        api.get(&format!(
            "/chats/{}/messages?after_id={}&before_id={}",
            chat.id,
            id(0),
            id(3)
        ))
        .await
        .error(400);

        // Editing "two" soft-deletes it and everything after, and runs again from it.
        let edited: EditChatMessageResponse = api
            .patch(
                &format!("/chats/{}/messages/{}", chat.id, second_user.id),
                json!({"content": [{"type": "text", "text": "two, edited"}]}),
            )
            .await
            .expect(200);
        assert_eq!(text_of(&edited.message), "two, edited");
        api.wait_status(chat.id, ChatStatus::Waiting).await;
        let texts: Vec<String> = api
            .messages(chat.id, "")
            .await
            .messages
            .iter()
            .map(text_of)
            .collect();
        assert_eq!(
            texts,
            ["answer two again", "two, edited", "answer one", "one"]
        );
        // Only user messages can be edited; unknown ids are 404.
        let assistant = all.messages[4].id;
        api.patch(
            &format!("/chats/{}/messages/{assistant}", chat.id),
            json!({"content": [{"type": "text", "text": "x"}]}),
        )
        .await
        .error(400);
        api.patch(
            &format!("/chats/{}/messages/{}", chat.id, id(0) + 1000),
            json!({"content": [{"type": "text", "text": "x"}]}),
        )
        .await
        .error(404);
        api.patch(
            &format!("/chats/{}/messages/{}", Uuid::new_v4(), id(0)),
            json!({"content": [{"type": "text", "text": "x"}]}),
        )
        .await
        .error(404);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_chat_queues_up_to_twenty_messages_and_the_queue_can_be_changed() {
    on_each_backend(|store| async move {
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([Reply::Gated {
            before: vec!["Thinking ".into()],
            gate: gate.clone(),
            after: vec!["done".into()],
        }]);
        let server = TestServer::start(&store, model).await;
        let alice = server.user("alice").await;
        let api = Api::new(&server, &alice.token);
        let chat = api.create("start", json!({})).await;
        api.wait_status(chat.id, ChatStatus::Running).await;

        // While the turn runs, messages are queued in order, up to 20.
        let mut queued = Vec::new();
        for i in 1..=20 {
            let sent: CreateChatMessageResponse =
                api.send(chat.id, &format!("queued {i}")).await.expect(200);
            assert!(sent.queued);
            assert!(sent.message.is_none());
            queued.push(sent.queued_message.unwrap().id);
        }
        let full = api.send(chat.id, "one too many").await.error(429);
        assert_eq!(full.message, "Message queue is full.");
        let page = api.messages(chat.id, "").await;
        assert_eq!(page.queued_messages.len(), 20);
        assert_eq!(
            page.queued_messages
                .iter()
                .map(|q| q.id)
                .collect::<Vec<_>>(),
            queued
        );
        // The queue comes only with the first page.
        let first_id = page.messages.last().unwrap().id;
        assert!(api
            .messages(chat.id, &format!("?after_id={first_id}"))
            .await
            .queued_messages
            .is_empty());

        // Delete one (204), then it is gone (404); that freed a slot.
        let last = queued.pop().unwrap();
        let r = api
            .delete(&format!("/chats/{}/queue/{last}", chat.id))
            .await;
        assert_eq!(r.status, 204);
        api.delete(&format!("/chats/{}/queue/{last}", chat.id))
            .await
            .error(404);
        api.post_empty(&format!("/chats/{}/queue/{last}/promote", chat.id))
            .await
            .error(404);
        assert_eq!(api.messages(chat.id, "").await.queued_messages.len(), 19);

        // Promote the fifth: it becomes a user message and runs next; the running turn
        // stops and its partial output is dropped.
        let fifth = queued.remove(4);
        let message: ChatMessage = api
            .post_empty(&format!("/chats/{}/queue/{fifth}/promote", chat.id))
            .await
            .expect(200);
        assert_eq!(message.role, ChatMessageRole::User);
        assert_eq!(text_of(&message), "queued 5");

        // Everything left drains in order, one turn each ("ok" from the model).
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let page = api.messages(chat.id, "?limit=200").await;
            let chat_now = api.chat(chat.id).await;
            if chat_now.status == ChatStatus::Waiting && page.queued_messages.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "queue never drained"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let history = api.messages(chat.id, "?limit=200").await.messages;
        let users: Vec<String> = history
            .iter()
            .rev()
            .filter(|m| m.role == ChatMessageRole::User)
            .map(text_of)
            .collect();
        let mut expected = vec!["start".to_owned(), "queued 5".to_owned()];
        expected.extend((1..=19).filter(|i| *i != 5).map(|i| format!("queued {i}")));
        assert_eq!(users, expected);
        assert!(
            !history.iter().any(|m| text_of(m).contains("Thinking")),
            "the superseded turn's partial output was discarded"
        );
        gate.notify_one();
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_summarizes_an_idle_chat_and_refuses_a_busy_one() {
    on_each_backend(|store| async move {
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([
            Reply::Text("first reply".into()),
            Reply::Gated {
                before: vec!["busy ".into()],
                gate: gate.clone(),
                after: vec!["done".into()],
            },
        ]);
        let server = TestServer::start(&store, model.clone()).await;
        let alice = server.user("alice").await;
        let api = Api::new(&server, &alice.token);
        let chat = api.create("summarize me later", json!({})).await;
        api.wait_status(chat.id, ChatStatus::Waiting).await;

        let path = format!("/chats/{}/compact", chat.id);
        let accepted: Chat = api.post_empty(&path).await.expect(202);
        assert_eq!(accepted.id, chat.id);
        assert_eq!(accepted.status, ChatStatus::Pending);
        api.wait_status(chat.id, ChatStatus::Waiting).await;
        assert_eq!(
            model.compactions.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
        let page = api.messages(chat.id, "").await;
        assert!(page.messages.iter().any(|m| m
            .content
            .iter()
            .any(|p| p.tool_name == chatd_core::COMPACTION_TOOL_NAME)));

        // A running chat: 409, and the turn goes on untouched.
        api.send(chat.id, "keep working").await;
        api.wait_status(chat.id, ChatStatus::Running).await;
        api.post_empty(&path).await.error(409);
        gate.notify_one();
        api.wait_status(chat.id, ChatStatus::Waiting).await;
        assert_eq!(
            model.compactions.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
        let stranger = server.user("mallory").await;
        Api::new(&server, &stranger.token)
            .post_empty(&path)
            .await
            .error(404);
        api.post_empty(&format!("/chats/{}/compact", Uuid::new_v4()))
            .await
            .error(404);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_the_turn_and_keeps_its_partial_output() {
    on_each_backend(|store| async move {
        let gate = Arc::new(Notify::new());
        let model = ScriptedModel::new([Reply::Gated {
            before: vec!["Halfway ".into(), "there ".into()],
            gate: gate.clone(),
            after: vec!["never".into()],
        }]);
        let server = TestServer::start(&store, model).await;
        let alice = server.user("alice").await;
        let api = Api::new(&server, &alice.token);
        let chat = api.create("count to a million", json!({})).await;
        api.wait_status(chat.id, ChatStatus::Running).await;
        // Let the streamed words reach the hub before stopping.
        let deadline = tokio::time::Instant::now() + WAIT;
        while server
            .state
            .engine()
            .hub()
            .chat_stats(chat.id)
            .map_or(0, |s| s.buffered_parts)
            < 2
        {
            assert!(tokio::time::Instant::now() < deadline, "no parts streamed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let after: Chat = api
            .post_empty(&format!("/chats/{}/interrupt", chat.id))
            .await
            .expect(200);
        assert_eq!(after.id, chat.id);
        assert_eq!(after.status, ChatStatus::Waiting);
        // The worker persists what was streamed as the assistant's reply.
        let deadline = tokio::time::Instant::now() + WAIT;
        let partial = loop {
            let page = api.messages(chat.id, "").await;
            if let Some(m) = page
                .messages
                .iter()
                .find(|m| m.role == ChatMessageRole::Assistant)
            {
                break text_of(m);
            }
            assert!(tokio::time::Instant::now() < deadline, "no partial reply");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(partial.starts_with("Halfway"), "{partial}");
        assert!(!partial.contains("never"));
        // Interrupting an idle chat is harmless and answers the chat.
        let again: Chat = api
            .post_empty(&format!("/chats/{}/interrupt", chat.id))
            .await
            .expect(200);
        assert_eq!(again.status, ChatStatus::Waiting);
        api.post_empty(&format!("/chats/{}/interrupt", Uuid::new_v4()))
            .await
            .error(404);
        gate.notify_one();
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_tool_call_waits_for_the_clients_results() {
    on_each_backend(|store| async move {
        let model = ScriptedModel::new([
            Reply::ToolCalls(vec![
                (
                    "call_weather".into(),
                    "get_weather".into(),
                    r#"{"city":"Paris"}"#.into(),
                ),
                (
                    "call_time".into(),
                    "get_local_time".into(),
                    r#"{"city":"Paris"}"#.into(),
                ),
            ]),
            Reply::Text("Sunny, 21 °C, and it is noon in Paris".into()),
        ]);
        let server = TestServer::start(&store, model.clone()).await;
        let alice = server.user("alice").await;
        let api = Api::new(&server, &alice.token);
        let tool = |name: &str| {
            json!({
                "name": name,
                "description": "Asks the client",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}
            })
        };
        // Duplicate names are refused before anything is stored.
        api.post(
            "/chats",
            json!({
                "content": [{"type": "text", "text": "x"}],
                "unsafe_dynamic_tools": [tool("a"), tool("a")]
            }),
        )
        .await
        .error(400);
        let chat = api
            .create(
                "weather and time in Paris?",
                json!({
                    "labels": {"bot": "weather"},
                    "unsafe_dynamic_tools": [tool("get_weather"), tool("get_local_time")]
                }),
            )
            .await;
        let path = format!("/chats/{}/tool-results", chat.id);
        // (A submission before the model asks is a 409 too, but the scripted model answers
        // at once, so "before" cannot be pinned down here; the 409 after the results were
        // taken is checked below, and the store tests check every status.)
        api.wait_status(chat.id, ChatStatus::RequiresAction).await;
        // The model saw the client's tools.
        let request = model.requests.lock().unwrap()[0].clone();
        let names: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
        assert!(names.contains(&"get_weather") && names.contains(&"get_local_time"));

        // Incomplete, unknown, duplicate or output-less results are 400 and change nothing.
        for bad in [
            json!({"results": [{"tool_call_id": "call_weather", "output": 1}]}),
            json!({"results": [
                {"tool_call_id": "call_weather", "output": 1},
                {"tool_call_id": "call_other", "output": 2}
            ]}),
            json!({"results": [
                {"tool_call_id": "call_weather", "output": 1},
                {"tool_call_id": "call_weather", "output": 1}
            ]}),
            json!({"results": [
                {"tool_call_id": "call_weather"},
                {"tool_call_id": "call_time", "output": "noon"}
            ]}),
        ] {
            api.post(&path, bad).await.error(400);
        }
        assert_eq!(api.chat(chat.id).await.status, ChatStatus::RequiresAction);

        // One output is a JSON string holding JSON (what many bots send); it is stored as
        // the JSON it contains. The other is plain text.
        let r = api
            .post(
                &path,
                json!({"results": [
                    {"tool_call_id": "call_weather", "output": "{\"temp_c\":21,\"sky\":\"sunny\"}"},
                    {"tool_call_id": "call_time", "output": "noon"}
                ]}),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
        api.wait_status(chat.id, ChatStatus::Waiting).await;
        // Answering again is a conflict, not a second result.
        api.post(
            &path,
            json!({"results": [{"tool_call_id": "call_weather", "output": 1}]}),
        )
        .await
        .error(409);

        let history: Vec<ChatMessage> = api
            .messages(chat.id, "")
            .await
            .messages
            .into_iter()
            .rev()
            .collect();
        let roles: Vec<_> = history.iter().map(|m| m.role.clone()).collect();
        assert_eq!(
            roles,
            [
                ChatMessageRole::User,
                ChatMessageRole::Assistant,
                ChatMessageRole::Tool,
                ChatMessageRole::Tool,
                ChatMessageRole::Assistant
            ]
        );
        let results: Vec<Value> = history[2..4]
            .iter()
            .map(|m| serde_json::from_str(m.content[0].result.as_ref().unwrap().get()).unwrap())
            .collect();
        assert_eq!(
            results,
            [json!({"temp_c": 21, "sky": "sunny"}), json!("noon")]
        );
        assert_eq!(
            text_of(&history[4]),
            "Sunny, 21 °C, and it is noon in Paris"
        );
        // The model's second call carried the results.
        assert_eq!(model.requests.lock().unwrap().len(), 2);

        // The bot finds its chat again by label.
        assert_eq!(ids(&api.list("?label=bot:weather").await), vec![chat.id]);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_are_filtered_by_label_and_paged_by_cursor() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let api = Api::new(&server, &alice.token);
        let labels = [
            json!({"team": "a", "env": "prod"}),
            json!({"team": "a"}),
            json!({"team": "b", "env": "prod"}),
            json!({"team": "a", "env": "dev"}),
            json!({}),
        ];
        let mut created = Vec::new();
        for (i, labels) in labels.iter().enumerate() {
            let chat = api
                .create(&format!("chat {i}"), json!({"labels": labels}))
                .await;
            created.push(chat.id);
        }
        // Another user's labelled chat never shows up.
        let bobs = Api::new(&server, &bob.token)
            .create("bob's", json!({"labels": {"team": "a"}}))
            .await
            .id;
        // Let every turn finish so `updated_at` (the list order) holds still.
        for id in &created {
            api.settled(*id).await;
        }

        let all = api.list("").await;
        assert_eq!(all.len(), 5);
        let order = ids(&all);
        // Newest activity first: the order is a permutation of what was created.
        let mut sorted = order.clone();
        sorted.sort();
        let mut expected = created.clone();
        expected.sort();
        assert_eq!(sorted, expected);

        // Label filters: every given label must match.
        let team_a = api.list("?label=team:a").await;
        assert_eq!(team_a.len(), 3);
        assert!(team_a.iter().all(|c| c.labels["team"] == "a"));
        let prod_a = api.list("?label=team:a&label=env:prod").await;
        assert_eq!(ids(&prod_a), vec![created[0]]);
        assert_eq!(api.list("?label=env:prod").await.len(), 2);
        assert!(api.list("?label=team:c").await.is_empty());
        // A percent-encoded colon in the value is part of the value.
        assert!(api.list("?label=team:a%3Ab").await.is_empty());
        api.get("/chats?label=team:a&label=team:b").await.error(400);

        // Cursor paging walks the same order as the full list, without repeats.
        let mut walked = Vec::new();
        let mut cursor: Option<Uuid> = None;
        loop {
            let query = match cursor {
                Some(after) => format!("?limit=2&after_id={after}"),
                None => "?limit=2".to_owned(),
            };
            let page = api.list(&query).await;
            assert!(page.len() <= 2);
            if page.is_empty() {
                break;
            }
            cursor = page.last().map(|c| c.id);
            walked.extend(ids(&page));
        }
        assert_eq!(walked, order);
        // Cursors combine with filters; offset skips.
        let page = api
            .list(&format!("?label=team:a&limit=1&after_id={}", team_a[0].id))
            .await;
        assert_eq!(ids(&page), vec![team_a[1].id]);
        assert_eq!(
            ids(&api.list("?limit=2&offset=2").await),
            order[2..4].to_vec()
        );
        // A cursor naming no chat of the caller's is refused rather than answered with a
        // guess, the same for a missing chat and another user's.
        let body = api
            .get(&format!("/chats?after_id={}", Uuid::new_v4()))
            .await
            .error(400);
        assert_eq!(body.validations[0].field, "after_id");
        api.get(&format!("/chats?after_id={bobs}")).await.error(400);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn titles_are_proposed_and_regenerated_by_the_chats_model() {
    on_each_backend(|store| async move {
        let model = ScriptedModel::new([Reply::Text("Sure, here is a plan".into())]);
        let server = TestServer::start(&store, model.clone()).await;
        let alice = server.user("alice").await;
        let api = Api::new(&server, &alice.token);
        let chat = api
            .create("help me plan a trip to Paris in May", json!({}))
            .await;
        let chat = api.settled(chat.id).await;
        let p = |suffix: &str| format!("/chats/{}{suffix}", chat.id);

        let mut watch = server
            .state
            .engine()
            .watch(&chatd_core::Actor::user(alice.id))
            .unwrap();
        // Propose: the model's reply, cleaned; nothing is saved.
        model.push(Reply::Text("\"Paris Trip Planning.\"".into()));
        let proposed: ProposeChatTitleResponse =
            api.post_empty(&p("/title/propose")).await.expect(200);
        assert_eq!(proposed.title, "Paris Trip Planning");
        assert_eq!(api.chat(chat.id).await.title, "Scripted Title");
        // The model read the conversation as a transcript.
        let request = model.requests.lock().unwrap().last().unwrap().clone();
        let transcript = format!("{:?}", request.messages);
        assert!(
            transcript.contains("User: help me plan a trip to Paris in May"),
            "{transcript}"
        );
        assert!(transcript.contains("Assistant: Sure, here is a plan"));

        // Regenerate: saved, and the chat comes back with it.
        model.push(Reply::Text("May in Paris".into()));
        let regenerated: Chat = api.post_empty(&p("/title/regenerate")).await.expect(200);
        assert_eq!(regenerated.title, "May in Paris");
        assert_eq!(api.chat(chat.id).await.title, "May in Paris");
        // A title is not activity: the chat keeps its place in the list.
        assert_eq!(regenerated.updated_at, chat.updated_at);
        // Watchers heard of the new title once, and nothing of the proposal.
        let mut changes = Vec::new();
        while let Ok(event) = watch.try_recv() {
            if event.kind == ChatWatchEventKind::TitleChange {
                changes.push(event.chat.title.clone());
            }
        }
        assert_eq!(changes, ["May in Paris"]);

        // A model that refuses (bad credentials) is a JSON 400 with the reason.
        model.push(Reply::Fail(401));
        let refused = api.post_empty(&p("/title/propose")).await.error(400);
        assert!(!refused.detail.is_empty());
        assert_eq!(api.chat(chat.id).await.title, "May in Paris");
        // An empty reply is no title: 409 (try again), title unchanged.
        model.push(Reply::Text("   ".into()));
        api.post_empty(&p("/title/regenerate")).await.error(409);
        assert_eq!(api.chat(chat.id).await.title, "May in Paris");
        api.post_empty(&format!("/chats/{}/title/propose", Uuid::new_v4()))
            .await
            .error(404);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_regeneration_refuses_renames_and_a_second_regeneration() {
    on_each_backend(|store| async move {
        let model = ScriptedModel::new([]);
        let server = TestServer::start(&store, model.clone()).await;
        let alice = server.user("alice").await;
        let api = Api::new(&server, &alice.token);
        let chat = api.create("write release notes", json!({})).await;
        api.settled(chat.id).await;

        let gate = Arc::new(Notify::new());
        model.push(Reply::Gated {
            before: Vec::new(),
            gate: gate.clone(),
            after: vec!["Release Notes Draft".into()],
        });
        let url = server.api(&format!("/chats/{}/title/regenerate", chat.id));
        let http = server.http.clone();
        let token = alice.token.clone();
        let first = tokio::spawn(async move {
            http.post(url)
                .header("Coder-Session-Token", token)
                .send()
                .await
                .unwrap()
        });
        let deadline = tokio::time::Instant::now() + WAIT;
        while !server.state.engine().is_regenerating_title(chat.id) {
            assert!(tokio::time::Instant::now() < deadline, "never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let p = format!("/chats/{}", chat.id);
        api.post_empty(&format!("{p}/title/regenerate"))
            .await
            .error(409);
        api.patch(&p, json!({"title": "Mine"})).await.error(409);
        // Other changes go through meanwhile.
        api.patch(&p, json!({"labels": {"kind": "notes"}}))
            .await
            .expect::<Value>(204);

        gate.notify_one();
        let response = first.await.unwrap();
        assert_eq!(response.status(), 200);
        let chat_after: Chat = response.json().await.unwrap();
        assert_eq!(chat_after.title, "Release Notes Draft");
        assert!(!server.state.engine().is_regenerating_title(chat.id));
        // Done: renames work again.
        api.patch(&p, json!({"title": "Mine"}))
            .await
            .expect::<Value>(204);
        assert_eq!(api.chat(chat.id).await.title, "Mine");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_lookups_and_diffs_are_empty() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let api = Api::new(&server, &alice.token);

        // No chat is bound to a workspace here: valid lookups map nothing.
        let ws: Vec<String> = (0..MAX_WORKSPACE_IDS_PER_LOOKUP)
            .map(|_| Uuid::new_v4().to_string())
            .collect();
        let r = api
            .get(&format!(
                "/chats/by-workspace?workspace_ids={}",
                ws.join(",")
            ))
            .await;
        assert_eq!(r.expect::<Value>(200), json!({}));
        assert_eq!(
            api.get("/chats/by-workspace").await.expect::<Value>(200),
            json!({})
        );
        // One id over the limit, a malformed id, or an unknown key: 400.
        let too_many = format!("{},{}", ws.join(","), Uuid::new_v4());
        api.get(&format!("/chats/by-workspace?workspace_ids={too_many}"))
            .await
            .error(400);
        let body = api
            .get("/chats/by-workspace?workspace_ids=nope")
            .await
            .error(400);
        assert_eq!(body.validations[0].field, "workspace_ids");
        api.get("/chats/by-workspace?workspace=x").await.error(400);

        // Diffs come from Coder workspaces: a chat the caller may see has an empty one.
        let chat = api.create("diff please", json!({})).await;
        let diff = api
            .get(&format!("/chats/{}/diff", chat.id))
            .await
            .expect::<Value>(200);
        assert_eq!(diff, json!({"chat_id": chat.id}));
        let _: codersdk::ChatDiffContents = serde_json::from_value(diff).unwrap();
        // An administrator may read other users' chats, so their (empty) diffs too.
        Api::new(&server, &server.admin_token)
            .get(&format!("/chats/{}/diff", chat.id))
            .await
            .expect::<Value>(200);
        Api::new(&server, &bob.token)
            .get(&format!("/chats/{}/diff", chat.id))
            .await
            .error(404);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_chats_title_reads_only_its_first_and_last_fifty_messages() {
    on_each_backend(|store| async move {
        // engine.md §10.2: the first and the last 50 messages are read
        // (`TITLE_CONTEXT_MESSAGES` in chatd-core's engine).
        const READ_FROM_EACH_END: usize = 50;
        let model = ScriptedModel::new([]);
        let server = TestServer::start(&store, model.clone()).await;
        let alice = server.user("alice").await;
        let api = Api::new(&server, &alice.token);
        let chat = api.create("m0", json!({})).await;
        api.wait_status(chat.id, ChatStatus::Waiting).await;
        // Every turn is a user message and the model's "ok": 2 messages a turn.
        for i in 1..READ_FROM_EACH_END {
            api.send(chat.id, &format!("m{i}"))
                .await
                .expect::<Value>(200);
            api.wait_status(chat.id, ChatStatus::Waiting).await;
        }
        let transcript_of_last_call = || {
            let request = model.requests.lock().unwrap().last().unwrap().clone();
            format!("{:?}", request.messages)
        };

        // Exactly 2 × 50 messages: all of them are read. The transcript is the first user
        // turn, the marker counting the 96 turns in between, and the last 3 turns.
        model.push(Reply::Text("Counting Messages".into()));
        let proposed: ProposeChatTitleResponse = api
            .post_empty(&format!("/chats/{}/title/propose", chat.id))
            .await
            .expect(200);
        assert_eq!(proposed.title, "Counting Messages");
        let transcript = transcript_of_last_call();
        assert!(transcript.contains("User: m0"), "{transcript}");
        assert!(
            transcript.contains("[... 96 earlier turns omitted ...]"),
            "{transcript}"
        );
        assert!(transcript.contains("User: m49"), "{transcript}");
        assert!(!transcript.contains("User: m48"), "{transcript}");

        // One turn more: the two messages in the middle are not read, so the marker still
        // counts the 96 turns that were.
        api.send(chat.id, "m50").await.expect::<Value>(200);
        api.wait_status(chat.id, ChatStatus::Waiting).await;
        model.push(Reply::Text("Counting Messages".into()));
        api.post_empty(&format!("/chats/{}/title/propose", chat.id))
            .await
            .expect::<ProposeChatTitleResponse>(200);
        let transcript = transcript_of_last_call();
        assert!(transcript.contains("User: m0"), "{transcript}");
        assert!(
            transcript.contains("[... 96 earlier turns omitted ...]"),
            "{transcript}"
        );
        assert!(transcript.contains("User: m50"), "{transcript}");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sets_plan_mode_and_the_mcp_selection_and_unknown_servers_are_400() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let alice = server.user("alice").await;
        let api = Api::new(&server, &alice.token);
        let admin = Api::new(&server, &server.admin_token);
        let mcp = |slug: &str, enabled: bool| {
            json!({
                "display_name": slug, "slug": slug, "transport": "streamable_http",
                "url": "https://mcp.example.com/mcp", "auth_type": "none",
                "availability": "default_on", "enabled": enabled,
            })
        };
        let on: Value = admin
            .post("/mcp/servers", mcp("on", true))
            .await
            .expect(201);
        let on: Uuid = serde_json::from_value(on["id"].clone()).unwrap();
        let off: Value = admin
            .post("/mcp/servers", mcp("off", false))
            .await
            .expect(201);
        let off: Uuid = serde_json::from_value(off["id"].clone()).unwrap();

        // Creation names every server that does not exist or is disabled; nothing stored.
        let unknown = Uuid::new_v4();
        let body = api
            .post(
                "/chats",
                json!({
                    "content": [{"type": "text", "text": "hi"}],
                    "mcp_server_ids": [on, off, unknown],
                }),
            )
            .await
            .error(400);
        let named: Vec<&str> = body
            .validations
            .iter()
            .filter(|v| v.field == "mcp_server_ids")
            .map(|v| v.detail.as_str())
            .collect();
        assert_eq!(named.len(), 2, "{named:?}");
        assert!(named[0].contains(&off.to_string()) && named[1].contains(&unknown.to_string()));
        assert!(api.list("").await.is_empty());

        let chat = api.create("hi", json!({"mcp_server_ids": [on]})).await;
        assert_eq!(chat.mcp_server_ids, vec![on]);
        api.wait_status(chat.id, ChatStatus::Waiting).await;
        let path = format!("/chats/{}/messages", chat.id);
        let body = api
            .post(
                &path,
                json!({
                    "content": [{"type": "text", "text": "plan"}],
                    "plan_mode": "plan",
                    "mcp_server_ids": [unknown],
                }),
            )
            .await
            .error(400);
        assert!(body.validations[0].detail.contains(&unknown.to_string()));
        let unchanged = api.chat(chat.id).await;
        assert_eq!(unchanged.plan_mode, None);
        assert_eq!(unchanged.mcp_server_ids, vec![on]);

        // Applied with the message: plan mode on, the selection replaced (here: emptied).
        let sent: CreateChatMessageResponse = api
            .post(
                &path,
                json!({
                    "content": [{"type": "text", "text": "plan"}],
                    "plan_mode": "plan",
                    "mcp_server_ids": [],
                }),
            )
            .await
            .expect(200);
        assert!(sent.message.is_some());
        let raw = api
            .get(&format!("/chats/{}", chat.id))
            .await
            .expect::<Value>(200);
        assert_eq!(raw["plan_mode"], "plan");
        assert_eq!(raw["mcp_server_ids"], json!([]));
        api.wait_status(chat.id, ChatStatus::Waiting).await;
        // `""` leaves plan mode; absent fields keep the rest.
        api.post(
            &path,
            json!({"content": [{"type": "text", "text": "build"}], "plan_mode": ""}),
        )
        .await
        .expect::<CreateChatMessageResponse>(200);
        let raw = api
            .get(&format!("/chats/{}", chat.id))
            .await
            .expect::<Value>(200);
        assert!(raw.get("plan_mode").is_none(), "{raw}");
        assert_eq!(raw["mcp_server_ids"], json!([]));
        server.stop().await;
    })
    .await;
}
