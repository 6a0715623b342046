//! Secrets out of every error, end to end: a provider that echoes the request's credential
//! headers (and, as a stand-in for any upstream that learned one, the chat's MCP secret) in
//! every error body leaves no trace of either in HTTP responses, chat stream events, watch
//! events, the tracing log output, or the database (every row of every table; on SQLite
//! the raw database and WAL files too). On both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chatd_core::store::StoreOptions;
use chatd_core::{Keyring, SecretKey};
use chatd_test_support::db::on_each_backend;
use chatd_test_support::db::RawSql;
use codersdk::client::Client;
use codersdk::{
    ChatErrorKind, ChatInputPart, ChatStatus, ChatStreamEvent, ChatWatchEventKind,
    CreateChatModelConfigRequest, CreateChatProviderConfigRequest, CreateChatRequest, SecretString,
    Uuid,
};
use futures_util::StreamExt;
use server_example::state::{build_on, ServerOptions};
use sqlx::Row;

/// Everything the server logs, at every level of the chatd crates.
pub(crate) fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let filter = tracing_subscriber::EnvFilter::new(
            "chatd_core=trace,server_example=trace,chatprovider=trace,chaterror=trace,info",
        );
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The fake Anthropic: the chat's first model call is rate limited, every later one (and
/// every title call) refused as unauthorized; each error body quotes every request header
/// and the MCP secret.
struct Echo {
    turn_calls: AtomicUsize,
    mcp_secret: String,
}

async fn echo(State(echo): State<Arc<Echo>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut quoted = String::new();
    for (name, value) in &headers {
        quoted.push_str(&format!(
            "{name}: {} ",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    let message = format!(
        "Invalid request. You sent {quoted}and the MCP key {} is not allowed here",
        echo.mcp_secret
    );
    let title_call = String::from_utf8_lossy(&body).contains(&format!(
        "\"max_tokens\":{}",
        chatd_core::title::TITLE_MAX_OUTPUT_TOKENS
    ));
    let first_turn_call = !title_call && echo.turn_calls.fetch_add(1, Ordering::SeqCst) == 0;
    let (status, kind) = if first_turn_call {
        (429, "rate_limit_error")
    } else {
        (401, "authentication_error")
    };
    let body = serde_json::json!({"type": "error", "error": {"type": kind, "message": message}});
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        [
            ("content-type", "application/json".to_owned()),
            ("retry-after", "0".to_owned()),
            // Some gateways echo the credential in a header too.
            (
                "x-echo",
                quoted
                    .chars()
                    .filter(|c| c.is_ascii_graphic() || *c == ' ')
                    .collect(),
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn start_echo(mcp_secret: &str) -> String {
    let state = Arc::new(Echo {
        turn_calls: AtomicUsize::new(0),
        mcp_secret: mcp_secret.to_owned(),
    });
    let app = axum::Router::new()
        .route("/v1/messages", axum::routing::post(echo))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

pub(crate) fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} shows a secret:\n{text}");
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            !text.to_ascii_lowercase().contains(&hex),
            "{what} shows a secret in hex"
        );
    }
}

/// Every row of every table of the store's database, as text.
pub(crate) async fn database_text(store: &chatd_core::store::Store) -> String {
    let pool = store.pool();
    let sqlite = pool.connect_options().database_url.scheme() == "sqlite";
    let mut out = String::new();
    if sqlite {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        for table in tables {
            let columns: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{table}')"
            )))
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
            for column in columns {
                // quote() shows text as text and blobs as hex.
                let values: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT quote(\"{column}\") FROM \"{table}\""
                )))
                .fetch_all(pool)
                .await
                .unwrap();
                for v in values.into_iter().flatten() {
                    out.push_str(&v);
                    out.push('\n');
                }
            }
        }
        // And the raw files, in case anything sits in a free page or the WAL.
        let file: String = sqlx::query("PRAGMA database_list")
            .fetch_one(pool)
            .await
            .unwrap()
            .get(2);
        for suffix in ["", "-wal"] {
            if let Ok(bytes) = std::fs::read(format!("{file}{suffix}")) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    } else {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema()",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        for table in tables {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT t::text FROM \"{table}\" t"
            )))
            .fetch_all(pool)
            .await
            .unwrap();
            for row in rows {
                out.push_str(&row);
                out.push('\n');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echoing_provider_leaves_no_trace_of_the_key_anywhere() {
    let logs = log_buffer();
    on_each_backend(|store| async move {
        // Not key-shaped, so only knowing the values can remove them.
        let key = format!("chatd-e2e-provider-credential-{}", Uuid::new_v4().simple());
        let mcp_secret = format!("chatd-e2e-mcp-credential-{}", Uuid::new_v4().simple());
        let secrets = [key.as_str(), mcp_secret.as_str()];
        let provider_url = start_echo(&mcp_secret).await;

        let keyring = Arc::new(Keyring::new("test", SecretKey::generate().unwrap()).unwrap());
        let mut options = ServerOptions::new(StoreOptions::new("unused"), keyring);
        options.admin_token = Some(chatd_test_support::server::ADMIN_TOKEN.to_owned());
        options.engine = chatd_test_support::scripted::fast_settings();
        let state = build_on(
            chatd_test_support::server::admin_over(&store, &options),
            options,
        )
        .await
        .unwrap()
        .state;
        let app = server_example::router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let admin = Client::new(&base, chatd_test_support::server::ADMIN_TOKEN).unwrap();
        admin
            .create_chat_provider(&CreateChatProviderConfigRequest {
                provider: "anthropic".into(),
                api_key: Some(SecretString::from(key.as_str())),
                base_url: Some(provider_url),
                ..Default::default()
            })
            .await
            .unwrap();
        admin
            .create_chat_model_config(&CreateChatModelConfigRequest {
                provider: "anthropic".into(),
                model: "claude-sonnet-4-5".into(),
                is_default: Some(true),
                context_limit: Some(200_000),
                ..Default::default()
            })
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let mcp: serde_json::Value = http
            .post(format!("{base}/api/experimental/mcp/servers"))
            .header(
                "Coder-Session-Token",
                chatd_test_support::server::ADMIN_TOKEN,
            )
            .json(&serde_json::json!({
                "display_name": "Tracker",
                "slug": "tracker",
                "transport": "streamable_http",
                "url": "https://mcp.example.com/mcp",
                "auth_type": "api_key",
                "api_key_header": "X-Api-Key",
                "api_key_value": mcp_secret,
                "availability": "default_on"
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mcp_id: Uuid = mcp["id"].as_str().unwrap().parse().unwrap();

        let mut watch = admin.watch().await.unwrap();
        let chat = admin
            .create_chat(&CreateChatRequest {
                content: vec![ChatInputPart::text("Hello there")],
                mcp_server_ids: Some(vec![mcp_id]),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut stream = admin.stream(chat.id, None).await.unwrap();

        // Every watch event until the chat fails.
        let mut watched = String::new();
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let event = watch.next().await.unwrap().unwrap();
                watched.push_str(&serde_json::to_string(&event).unwrap());
                if event.kind == ChatWatchEventKind::StatusChange
                    && event.chat.id == chat.id
                    && event.chat.status == ChatStatus::Error
                {
                    break;
                }
            }
        })
        .await
        .expect("the chat fails on the watch stream");
        // Every stream event until the error event.
        let mut streamed = String::new();
        let mut saw_retry = false;
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let event: ChatStreamEvent = stream.next().await.unwrap().unwrap();
                streamed.push_str(&serde_json::to_string(&event).unwrap());
                saw_retry |= event.retry.is_some();
                if event.error.is_some() {
                    break;
                }
            }
        })
        .await
        .expect("an error event on the chat stream");
        assert_clean("watch events", &watched, &secrets);
        assert_clean("stream events", &streamed, &secrets);

        // The stored error says what happened, with the echoed credentials redacted.
        let failed = admin.chat(chat.id).await.unwrap();
        let last_error = failed.last_error.clone().expect("a last_error");
        assert_eq!(last_error.kind, Some(ChatErrorKind::Auth), "{last_error:?}");
        assert!(
            last_error.detail.contains(chaterror::REDACTED),
            "the echo reached the detail: {last_error:?}"
        );
        // The rate-limited attempt was announced, so the retry path was checked too (the
        // retry waits a second; the stream was opened long before it ended).
        assert!(saw_retry, "a retry event: {streamed}");

        // HTTP responses: the chat, the list, the messages, and a title request that fails
        // the same way.
        let mut responses = String::new();
        for path in [
            format!("/api/experimental/chats/{}", chat.id),
            "/api/experimental/chats".to_owned(),
            format!("/api/experimental/chats/{}/messages", chat.id),
        ] {
            let text = http
                .get(format!("{base}{path}"))
                .header(
                    "Coder-Session-Token",
                    chatd_test_support::server::ADMIN_TOKEN,
                )
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            responses.push_str(&text);
        }
        let title = http
            .post(format!(
                "{base}/api/experimental/chats/{}/title/regenerate",
                chat.id
            ))
            .header(
                "Coder-Session-Token",
                chatd_test_support::server::ADMIN_TOKEN,
            )
            .send()
            .await
            .unwrap();
        assert!(title.status().is_client_error(), "{}", title.status());
        responses.push_str(&title.text().await.unwrap());
        assert_clean("HTTP responses", &responses, &secrets);

        // The database: every row, and SQLite's files.
        state.engine().clone().shutdown().await;
        let rows = database_text(&store).await;
        assert!(
            rows.contains(&chat.id.to_string()),
            "the scan read the rows"
        );
        assert_clean("the database", &rows, &secrets);
    })
    .await;
    // The log saw the failures (so the check below means something) and no secret.
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.contains("chat_id"), "logs were captured");
    let failure = text
        .lines()
        .find(|l| l.contains("model call failed"))
        .expect("the failed model call is logged");
    assert!(failure.contains(chaterror::REDACTED), "{failure}");
    assert!(!text.is_empty());
    assert!(
        !text.contains("chatd-e2e-provider-credential-"),
        "the log shows a key:\n{text}"
    );
    assert!(
        !text.contains("chatd-e2e-mcp-credential-"),
        "the log shows an MCP secret:\n{text}"
    );
}
