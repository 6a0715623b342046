//! Chat file upload and download (codersdk.md §9) over HTTP, on both backends: sniffing,
//! declared-type checks, the allow-list, the 10 MiB cap at its edge, organization
//! membership, who may download, and the download headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_test_support::db::{on_each_backend, RawSql};
use chatd_test_support::scripted::ScriptedModel;
use chatd_test_support::server::{TestServer, TestUser};
use codersdk::{UploadChatFileResponse, Uuid};
use server_example::routes::files::{FILE_CACHE_CONTROL, MAX_UPLOAD_BYTES};
use sqlx::Row;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01";

struct Upload<'a> {
    content_type: Option<&'a str>,
    disposition: Option<&'a str>,
    query: String,
    body: Vec<u8>,
}

impl<'a> Upload<'a> {
    fn new(server: &TestServer, content_type: &'a str, body: &[u8]) -> Self {
        Upload {
            content_type: Some(content_type),
            disposition: None,
            query: format!("organization={}", server.state.default_organization()),
            body: body.to_vec(),
        }
    }

    async fn send(self, server: &TestServer, token: &str) -> reqwest::Response {
        let mut request = server
            .http
            .post(server.api(&format!("/chats/files?{}", self.query)))
            .header("Coder-Session-Token", token)
            .body(self.body);
        if let Some(ct) = self.content_type {
            request = request.header("Content-Type", ct);
        }
        if let Some(cd) = self.disposition {
            request = request.header("Content-Disposition", cd);
        }
        request.send().await.unwrap()
    }
}

async fn created(response: reqwest::Response) -> Uuid {
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let body: UploadChatFileResponse = response.json().await.unwrap();
    body.id
}

/// A 4xx/5xx with a JSON `Response` body.
async fn error(response: reqwest::Response, status: u16) -> codersdk::Response {
    assert_eq!(response.status(), status);
    response.json().await.expect("a JSON Response body")
}

async fn download(server: &TestServer, token: &str, id: &str) -> reqwest::Response {
    server
        .http
        .get(server.api(&format!("/chats/files/{id}")))
        .header("Coder-Session-Token", token)
        .send()
        .await
        .unwrap()
}

async fn file_count(server: &TestServer) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM chat_files")
        .fetch_one(server.state.engine().store().pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

async fn setup(store: &chatd_core::store::Store) -> (TestServer, TestUser) {
    let server = TestServer::start(store, ScriptedModel::new([])).await;
    let alice = server.user("alice").await;
    (server, alice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_then_download_with_the_spec_headers() {
    on_each_backend(|store| async move {
        let (server, alice) = setup(&store).await;
        let mut upload = Upload::new(&server, "image/png", PNG);
        upload.disposition = Some("attachment; filename=\"../pixel.png\"");
        let id = created(upload.send(&server, &alice.token).await).await;

        let r = download(&server, &alice.token, &id.to_string()).await;
        assert_eq!(r.status(), 200);
        let header = |name: &str| r.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "image/png");
        assert_eq!(header("cache-control"), FILE_CACHE_CONTROL);
        assert_eq!(FILE_CACHE_CONTROL, "private, max-age=31536000, immutable");
        // Images render in place; the stored name is the base name.
        assert_eq!(
            header("content-disposition"),
            "inline; filename*=UTF-8''pixel.png"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);
        let stored = server
            .state
            .engine()
            .store()
            .get_file(id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.metadata.owner_id, alice.id);
        assert_eq!(stored.metadata.name, "pixel.png");

        // Non-renderable types download as attachments.
        let id = created(
            Upload::new(&server, "application/json", br#"{"a":1}"#)
                .send(&server, &alice.token)
                .await,
        )
        .await;
        let r = download(&server, &alice.token, &id.to_string()).await;
        assert_eq!(r.headers()["content-disposition"], "attachment");
        assert_eq!(r.headers()["content-type"], "application/json");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octet_stream_is_replaced_by_the_sniffed_type() {
    on_each_backend(|store| async move {
        let (server, alice) = setup(&store).await;
        for (body, sniffed) in [
            (PNG, "image/png"),
            (br#"[1, 2, 3]"#.as_slice(), "application/json"),
            (b"just words".as_slice(), "text/plain"),
        ] {
            let id = created(
                Upload::new(&server, "application/octet-stream", body)
                    .send(&server, &alice.token)
                    .await,
            )
            .await;
            let r = download(&server, &alice.token, &id.to_string()).await;
            assert_eq!(r.headers()["content-type"], sniffed);
        }
        // Content that sniffs as nothing on the allow-list is refused.
        let before = file_count(&server).await;
        let body = error(
            Upload::new(&server, "application/octet-stream", b"\0\x01\x02binary")
                .send(&server, &alice.token)
                .await,
            400,
        )
        .await;
        assert_eq!(body.validations[0].field, "Content-Type");
        assert_eq!(file_count(&server).await, before);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_types_are_refused_and_nothing_is_stored() {
    on_each_backend(|store| async move {
        let (server, alice) = setup(&store).await;
        // Declared type does not match the content.
        let body = error(
            Upload::new(&server, "image/png", b"not a png")
                .send(&server, &alice.token)
                .await,
            400,
        )
        .await;
        assert!(body.message.contains("does not match"), "{}", body.message);
        // Not on the allow-list.
        let body = error(
            Upload::new(&server, "text/html", b"<p>hi</p>")
                .send(&server, &alice.token)
                .await,
            400,
        )
        .await;
        assert_eq!(body.message, "Unsupported file type.");
        // No Content-Type at all.
        let mut upload = Upload::new(&server, "", b"text");
        upload.content_type = None;
        error(upload.send(&server, &alice.token).await, 400).await;
        // An empty body.
        error(
            Upload::new(&server, "text/plain", b"")
                .send(&server, &alice.token)
                .await,
            400,
        )
        .await;
        assert_eq!(file_count(&server).await, 0);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_cap_is_exactly_ten_mebibytes() {
    on_each_backend(|store| async move {
        let (server, alice) = setup(&store).await;
        assert_eq!(MAX_UPLOAD_BYTES, 10 * 1024 * 1024);
        let at_cap = vec![b'a'; MAX_UPLOAD_BYTES];
        let id = created(
            Upload::new(&server, "text/plain", &at_cap)
                .send(&server, &alice.token)
                .await,
        )
        .await;
        let r = download(&server, &alice.token, &id.to_string()).await;
        assert_eq!(r.bytes().await.unwrap().len(), MAX_UPLOAD_BYTES);

        let over = vec![b'a'; MAX_UPLOAD_BYTES + 1];
        let body = error(
            Upload::new(&server, "text/plain", &over)
                .send(&server, &alice.token)
                .await,
            413,
        )
        .await;
        assert!(body.message.contains("too large"), "{}", body.message);
        assert_eq!(file_count(&server).await, 1);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_organization_must_be_given_valid_and_joined() {
    on_each_backend(|store| async move {
        let (server, alice) = setup(&store).await;
        let mut upload = Upload::new(&server, "text/plain", b"hi");
        upload.query = String::new();
        let body = error(upload.send(&server, &alice.token).await, 400).await;
        assert_eq!(body.validations[0].field, "organization");
        let mut upload = Upload::new(&server, "text/plain", b"hi");
        upload.query = "organization=nope".into();
        let body = error(upload.send(&server, &alice.token).await, 400).await;
        assert_eq!(body.validations[0].field, "organization");
        let mut upload = Upload::new(&server, "text/plain", b"hi");
        upload.query.push_str("&extra=1");
        let body = error(upload.send(&server, &alice.token).await, 400).await;
        assert_eq!(body.validations[0].field, "extra");
        // An organization the caller is not in (existing or not) is forbidden.
        let other = server
            .state
            .engine()
            .store()
            .create_organization("elsewhere")
            .await
            .unwrap();
        for org in [other.id, Uuid::new_v4()] {
            let mut upload = Upload::new(&server, "text/plain", b"hi");
            upload.query = format!("organization={org}");
            error(upload.send(&server, &alice.token).await, 403).await;
        }
        // No token.
        let r = server
            .http
            .post(server.api(&format!(
                "/chats/files?organization={}",
                server.state.default_organization()
            )))
            .header("Content-Type", "text/plain")
            .body("hi")
            .send()
            .await
            .unwrap();
        error(r, 401).await;
        assert_eq!(file_count(&server).await, 0);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_uploader_can_download() {
    on_each_backend(|store| async move {
        let (server, alice) = setup(&store).await;
        let bob = server.user("bob").await;
        let id = created(
            Upload::new(&server, "text/plain", b"alice's notes")
                .send(&server, &alice.token)
                .await,
        )
        .await;
        // Another member and an administrator get the same 404 as a missing file.
        let missing = error(
            download(&server, &alice.token, &Uuid::new_v4().to_string()).await,
            404,
        )
        .await;
        for token in [&bob.token, &server.admin_token] {
            let body = error(download(&server, token, &id.to_string()).await, 404).await;
            assert_eq!(body, missing);
        }
        let body = error(download(&server, &alice.token, "not-a-uuid").await, 400).await;
        assert_eq!(body.validations[0].field, "file");
        let r = server
            .http
            .get(server.api(&format!("/chats/files/{id}")))
            .send()
            .await
            .unwrap();
        error(r, 401).await;
        server.stop().await;
    })
    .await;
}
