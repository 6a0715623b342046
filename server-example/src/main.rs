//! `chatd-server`: serve the chats API (`serve`, the default), or talk to a running
//! server (`chat "<prompt>"`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatd_core::{Keyring, SecretKey, StoreOptions};
use server_example::state::{self, ServerOptions};
use chatprovider::{Provider, ProviderApiKeys};
use clap::{Parser, Subcommand};
use codersdk::client::{ChatMessagesOptions, Client};
use codersdk::{
    ChatError, ChatInputPart, ChatMessage, ChatMessagePartType, ChatMessageRole, ChatStatus,
    ChatStreamEvent, ChatStreamEventType, CreateChatRequest, SecretString,
};

/// The reference chatd server: Coder's /api/experimental chats API.
#[derive(Debug, Parser)]
#[command(name = "chatd-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve(ServeArgs),
    /// Send a prompt to a running server as a new chat and stream the reply to stdout.
    Chat(ChatArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct ChatArgs {
    /// Base URL of the server.
    #[arg(long, env = "CHATD_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// API token (the admin token printed on the server's first start, or one made with
    /// `POST /api/v2/users/{user}/keys`).
    #[arg(long, env = "CHATD_TOKEN", hide_env_values = true)]
    token: String,
    /// The message (several words are joined with spaces).
    #[arg(required = true, num_args = 1..)]
    prompt: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CHATD_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Database URL: a SQLite file (`sqlite://chatd.db`) or `postgres://…`.
    #[arg(long, env = "CHATD_DATABASE_URL", default_value = "sqlite://chatd.db")]
    database_url: String,
    /// Keyring for stored secrets: `id=base64key[,id=base64key…]`, the first active.
    /// Generated and saved beside a SQLite database on first start when absent; required
    /// for PostgreSQL.
    #[arg(long, env = "CHATD_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
}

/// File name suffix of the generated keyring beside a SQLite database.
const KEY_FILE_SUFFIX: &str = ".key";

/// Id of a generated key.
const GENERATED_KEY_ID: &str = "k1";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `chat` writes the reply to stdout: its logs go to stderr, warnings only by default.
    let (default_filter, chat) = match &cli.command {
        Some(Command::Chat(_)) => ("warn", true),
        _ => ("info", false),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHATD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    if chat {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let result = match cli.command {
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Chat(args)) => chat_command(args).await,
        None => serve(cli.serve).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatd-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    let keyring = Arc::new(keyring(&args)?);
    let mut options = ServerOptions::new(StoreOptions::new(&args.database_url), keyring);
    options.deployment_keys = deployment_keys_from_env()?;
    options.admin_token = std::env::var("CHATD_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    let started = state::build(options).await?;
    if let Some(token) = &started.generated_admin_token {
        // Printed once, to the terminal of whoever started the server; never logged.
        println!(
            "Admin API token (shown once, store it now): {}",
            token.expose()
        );
    }
    let state = started.state;
    let app = server_example::router(state.clone());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %args.listen, "chatd-server listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    state.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}

/// The keyring from `--encryption-key`, else the key file beside a SQLite database
/// (created on first start).
fn keyring(args: &ServeArgs) -> Result<Keyring, BoxError> {
    if let Some(spec) = &args.encryption_key {
        return Ok(Keyring::from_config(spec)?);
    }
    let Some(db_path) = sqlite_path(&args.database_url) else {
        return Err(
            "an encryption key is required for PostgreSQL: set --encryption-key or \
                    CHATD_ENCRYPTION_KEY (id=base64key; generate a key with `openssl rand \
                    -base64 32`)"
                .into(),
        );
    };
    let key_path = PathBuf::from(format!("{}{KEY_FILE_SUFFIX}", db_path.display()));
    if key_path.exists() {
        let spec = std::fs::read_to_string(&key_path)?;
        return Ok(Keyring::from_config(spec.trim())?);
    }
    let key = SecretKey::generate()?;
    let spec = format!("{GENERATED_KEY_ID}={}", key.to_base64().as_str());
    write_private(&key_path, &spec)?;
    tracing::info!(path = %key_path.display(), "generated the encryption key for stored secrets");
    Ok(Keyring::new(GENERATED_KEY_ID, key)?)
}

/// The file of a `sqlite:` URL (`sqlite://chatd.db`, `sqlite:chatd.db`, with or without
/// query parameters); `None` for other databases or in-memory SQLite.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

/// `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` (and their `*_BASE_URL`) as env-preset providers.
fn deployment_keys_from_env() -> Result<ProviderApiKeys, BoxError> {
    let mut keys = ProviderApiKeys::new();
    for (provider, key_var, url_var) in [
        (Provider::OpenAi, "OPENAI_API_KEY", "OPENAI_BASE_URL"),
        (
            Provider::Anthropic,
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
        ),
    ] {
        if let Some(key) = std::env::var(key_var).ok().filter(|k| !k.trim().is_empty()) {
            keys.set_api_key(provider, SecretString::from(key.trim().to_owned()))?;
        }
        if let Some(url) = std::env::var(url_var).ok().filter(|u| !u.trim().is_empty()) {
            keys.set_base_url(provider, url.trim())?;
        }
    }
    Ok(keys)
}

/// `chatd-server chat`: creates a chat with the prompt, streams the reply to stdout (tool
/// activity and retries to stderr), and succeeds once the chat is `waiting`.
async fn chat_command(args: ChatArgs) -> Result<(), BoxError> {
    use futures_util::StreamExt;

    let client = Client::new(&args.url, args.token)?;
    let chat = client
        .create_chat(&CreateChatRequest {
            content: vec![ChatInputPart::text(args.prompt.join(" "))],
            ..Default::default()
        })
        .await
        .map_err(|e| explain(&args.url, e))?;
    let mut events = client
        .stream(chat.id, None)
        .await
        .map_err(|e| explain(&args.url, e))?;
    let mut printer = Printer::default();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let ended = loop {
        let Some(event) = events.next().await else {
            printer.finish(&mut out)?;
            return Err("the stream closed before the turn finished".into());
        };
        if let Some(ended) = printer.on_event(&event?, &mut out, &mut err)? {
            break ended;
        }
    };
    if ended == Ended::AlreadyOver {
        // The turn ended before we subscribed: the snapshot's status came first, so read
        // the reply from the message list instead.
        let page = client
            .chat_messages(
                chat.id,
                &ChatMessagesOptions {
                    limit: Some(CHAT_REPLY_PAGE),
                    ..Default::default()
                },
            )
            .await?;
        for message in page.messages.iter().rev() {
            printer.on_message(message, &mut out, &mut err)?;
        }
    }
    printer.finish(&mut out)?;
    if ended == Ended::Finished(ChatStatus::Waiting) {
        return Ok(());
    }
    // The `error` event follows the status change: the chat's `last_error` is the
    // reliable source of the failure's message.
    let chat = client.chat(chat.id).await?;
    let error = chat.last_error.as_ref().or(printer.error.as_ref());
    match failure(&chat.status, error) {
        Some(message) => Err(message.into()),
        None => Ok(()),
    }
}

/// Messages read back when the turn was over before the stream connected (one prompt's
/// turn: the user message, tool calls and results, the answer).
const CHAT_REPLY_PAGE: u32 = 200;

/// Adds a hint to the errors a first-time user meets.
fn explain(url: &str, e: codersdk::client::Error) -> BoxError {
    let hint = if e.is_unauthorized() {
        " (check --token / CHATD_TOKEN: the admin token is printed on the server's first start)"
    } else if matches!(e, codersdk::client::Error::Transport(_)) {
        " (is the server running? start it with `cargo run -p server-example`)"
    } else {
        ""
    };
    format!("{url}: {e}{hint}").into()
}

/// How a chat stream ended, as far as `chat` is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ended {
    /// The turn reached this terminal status while we watched.
    Finished(ChatStatus),
    /// The stream's snapshot shows the turn already over.
    AlreadyOver,
}

/// Why a chat in `status` is a failure for `chat`; `None` when it is not (`waiting`).
fn failure(status: &ChatStatus, error: Option<&ChatError>) -> Option<String> {
    match status {
        ChatStatus::Error => Some(format!(
            "the turn failed: {}",
            error.map_or("no error was recorded", |e| e.message.as_str())
        )),
        ChatStatus::RequiresAction => Some(
            "the model called a client-executed tool; answer it with POST \
             /api/experimental/chats/{chat}/tool-results"
                .into(),
        ),
        ChatStatus::Waiting => None,
        other => Some(format!("the chat is {}", other.as_str())),
    }
}

/// Renders a chat's stream for a terminal: assistant text on `out` as it streams, tool
/// calls, tool results and retries on `err`.
#[derive(Debug, Default)]
struct Printer {
    /// Events seen so far.
    events: usize,
    /// Text deltas were printed since the last assistant message (which then needs no
    /// printing: it repeats them).
    streamed: bool,
    /// The last byte written to `out` was not a newline.
    open_line: bool,
    /// The last `error` event's message.
    error: Option<ChatError>,
    /// Tool calls and results already shown (by id), so a call seen streaming is not
    /// shown again when its persisted message arrives.
    shown_calls: std::collections::HashSet<String>,
    shown_results: std::collections::HashSet<String>,
}

impl Printer {
    /// Handles one event; `Some` when the stream is over for `chat`.
    fn on_event(
        &mut self,
        event: &ChatStreamEvent,
        out: &mut impl std::io::Write,
        err: &mut impl std::io::Write,
    ) -> std::io::Result<Option<Ended>> {
        self.events += 1;
        let first = self.events == 1;
        match &event.event_type {
            ChatStreamEventType::MessagePart => {
                let Some(mp) = &event.message_part else {
                    return Ok(None);
                };
                let part = &mp.part;
                match (&mp.role, &part.part_type) {
                    (Some(ChatMessageRole::Assistant), ChatMessagePartType::Text) => {
                        out.write_all(part.text.as_bytes())?;
                        out.flush()?;
                        self.streamed = true;
                        self.open_line = !part.text.ends_with('\n');
                    }
                    // The complete call (deltas carry `args_delta` and no `args`).
                    (_, ChatMessagePartType::ToolCall | ChatMessagePartType::ToolResult) => {
                        self.show_tool_part(part, err)?;
                    }
                    _ => {}
                }
            }
            ChatStreamEventType::Message => {
                if let Some(message) = &event.message {
                    self.on_message(message, out, err)?;
                }
            }
            ChatStreamEventType::Error => self.error = event.error.clone(),
            ChatStreamEventType::Retry => {
                if let Some(retry) = &event.retry {
                    writeln!(err, "[retrying in {} ms: {}]", retry.delay_ms, retry.error)?;
                }
            }
            ChatStreamEventType::Status => {
                let Some(status) = event.status.as_ref().map(|s| &s.status) else {
                    return Ok(None);
                };
                let terminal = matches!(
                    status,
                    ChatStatus::Waiting | ChatStatus::Error | ChatStatus::RequiresAction
                );
                if terminal && first {
                    return Ok(Some(Ended::AlreadyOver));
                }
                if terminal {
                    return Ok(Some(Ended::Finished(status.clone())));
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// A persisted message: an assistant message whose text did not stream is printed
    /// whole.
    fn on_message(
        &mut self,
        message: &ChatMessage,
        out: &mut impl std::io::Write,
        err: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        // Tool activity of steps that did not stream here (the stream connected later).
        for part in &message.content {
            self.show_tool_part(part, err)?;
        }
        if message.role != ChatMessageRole::Assistant {
            return Ok(());
        }
        if !std::mem::take(&mut self.streamed) {
            for part in &message.content {
                if part.part_type == ChatMessagePartType::Text && !part.text.is_empty() {
                    out.write_all(part.text.as_bytes())?;
                    self.open_line = !part.text.ends_with('\n');
                }
            }
            out.flush()?;
        }
        Ok(())
    }

    /// Shows a complete tool call or a tool result on `err`, once per id. Call deltas
    /// (without `args`) are not shown.
    fn show_tool_part(
        &mut self,
        part: &codersdk::ChatMessagePart,
        err: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        match part.part_type {
            ChatMessagePartType::ToolCall => {
                if let Some(args) = &part.args {
                    if self.shown_calls.insert(part.tool_call_id.clone()) {
                        writeln!(err, "[calling {}({args})]", part.tool_name)?;
                    }
                }
            }
            ChatMessagePartType::ToolResult
                if self.shown_results.insert(part.tool_call_id.clone()) =>
            {
                let result = part.result.as_ref().map(|r| r.get()).unwrap_or("null");
                let verb = if part.is_error { "failed" } else { "returned" };
                writeln!(err, "[{} {verb} {result}]", part.tool_name)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Ends the output with a newline.
    fn finish(&mut self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        if std::mem::take(&mut self.open_line) {
            writeln!(out)?;
        }
        out.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://chatd.db"),
            Some(PathBuf::from("chatd.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:/tmp/a.db?mode=rwc"),
            Some(PathBuf::from("/tmp/a.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }

    fn message(role: ChatMessageRole, text: &str) -> ChatMessage {
        ChatMessage {
            id: 1,
            chat_id: codersdk::Uuid::nil(),
            created_by: None,
            model_config_id: None,
            created_at: codersdk::Timestamp::now(),
            role,
            content: vec![codersdk::ChatMessagePart::text(text)],
            usage: None,
        }
    }

    fn feed(printer: &mut Printer, events: &[ChatStreamEvent]) -> (String, String, Option<Ended>) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut ended = None;
        for event in events {
            ended = printer.on_event(event, &mut out, &mut err).unwrap();
            if ended.is_some() {
                break;
            }
        }
        printer.finish(&mut out).unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            ended,
        )
    }

    #[test]
    fn chat_prints_the_streamed_reply_once_and_tools_aside() {
        let id = codersdk::Uuid::nil();
        let assistant = Some(ChatMessageRole::Assistant);
        let text = |t: &str| {
            ChatStreamEvent::message_part(id, assistant.clone(), codersdk::ChatMessagePart::text(t))
        };
        let args = codersdk::RawJson::from_json(r#"{"a":2,"b":3}"#).unwrap();
        let events = [
            ChatStreamEvent::status(id, ChatStatus::Pending),
            ChatStreamEvent::status(id, ChatStatus::Running),
            ChatStreamEvent::message_part(
                id,
                assistant.clone(),
                codersdk::ChatMessagePart::tool_call("c1", "add", args),
            ),
            ChatStreamEvent::message_part(
                id,
                Some(ChatMessageRole::Tool),
                codersdk::ChatMessagePart::tool_result(
                    "c1",
                    "add",
                    codersdk::RawJson::from_json("5").unwrap(),
                    false,
                ),
            ),
            text("The sum "),
            text("is 5."),
            // The persisted message repeats the streamed text: not printed again.
            ChatStreamEvent::message(id, message(ChatMessageRole::Assistant, "The sum is 5.")),
            ChatStreamEvent::status(id, ChatStatus::Waiting),
            text("never read"),
        ];
        let (out, err, ended) = feed(&mut Printer::default(), &events);
        assert_eq!(out, "The sum is 5.\n");
        assert_eq!(err, "[calling add({\"a\":2,\"b\":3})]\n[add returned 5]\n");
        assert_eq!(ended, Some(Ended::Finished(ChatStatus::Waiting)));
    }

    #[test]
    fn chat_reads_back_a_turn_that_ended_before_it_subscribed() {
        let id = codersdk::Uuid::nil();
        let mut printer = Printer::default();
        let (out, _, ended) = feed(
            &mut printer,
            &[ChatStreamEvent::status(id, ChatStatus::Waiting)],
        );
        assert_eq!((out.as_str(), ended), ("", Some(Ended::AlreadyOver)));
        // The messages read back: only the assistant's text is the reply; the tool activity
        // goes to stderr, each call and result once.
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let call = codersdk::ChatMessagePart::tool_call(
            "c1",
            "current_time",
            codersdk::RawJson::empty_object(),
        );
        let result = codersdk::ChatMessagePart::tool_result(
            "c1",
            "current_time",
            codersdk::RawJson::from_json(r#""12:00""#).unwrap(),
            false,
        );
        let mut asked = message(ChatMessageRole::Assistant, "");
        asked.content = vec![call];
        let mut answered = message(ChatMessageRole::Tool, "");
        answered.content = vec![result];
        for m in [
            message(ChatMessageRole::User, "hi"),
            asked.clone(),
            answered.clone(),
            asked,
            answered,
            message(ChatMessageRole::Assistant, "Hello!"),
        ] {
            printer.on_message(&m, &mut out, &mut err).unwrap();
        }
        printer.finish(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "Hello!\n");
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "[calling current_time({})]\n[current_time returned \"12:00\"]\n"
        );
    }

    #[test]
    fn chat_failures_say_why() {
        let error = ChatError::generic("The provider is overloaded.");
        assert_eq!(
            failure(&ChatStatus::Error, Some(&error)).unwrap(),
            "the turn failed: The provider is overloaded."
        );
        assert!(failure(&ChatStatus::RequiresAction, None)
            .unwrap()
            .contains("tool-results"));
        assert_eq!(failure(&ChatStatus::Waiting, None), None);
    }

    #[test]
    fn chat_arguments() {
        let cli =
            Cli::try_parse_from(["chatd-server", "chat", "--token", "t", "what", "time"]).unwrap();
        match cli.command {
            Some(Command::Chat(args)) => {
                assert_eq!(args.url, "http://127.0.0.1:3000");
                assert_eq!(args.prompt.join(" "), "what time");
            }
            other => panic!("{other:?}"),
        }
        // A prompt is required.
        assert!(Cli::try_parse_from(["chatd-server", "chat", "--token", "t"]).is_err());
    }
}
