//! `chatd-server chat`: the command-line chat client (part of the binary, not of the
//! library). It starts a chat with a prompt, or continues one (`--chat <id>`), streams the
//! reply to stdout and the tool activity, retries and the chat id to stderr, and succeeds
//! once the turn leaves the chat `waiting`.

use codersdk::client::{ChatMessagesOptions, Client};
use codersdk::{
    ChatError, ChatErrorKind, ChatInputPart, ChatMessage, ChatMessagePartType, ChatMessageRole,
    ChatStatus, ChatStreamEvent, ChatStreamEventType, CreateChatMessageRequest, CreateChatRequest,
    Uuid,
};

use crate::BoxError;

/// Arguments of `chatd-server chat`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatArgs {
    /// Base URL of the server.
    #[arg(long, env = "CHATD_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// API token: the admin token printed on the server's first start, or one made with
    /// `POST /api/v2/users/{user}/keys`. Prefer the environment variable: a flag is echoed
    /// by cargo and kept in shell history.
    #[arg(long, env = "CHATD_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Continue this chat (the id an earlier `chat` printed on stderr) instead of starting
    /// a new one.
    #[arg(long = "chat", value_name = "ID")]
    pub chat: Option<Uuid>,
    /// The message (several words are joined with spaces).
    #[arg(required = true, num_args = 1..)]
    pub prompt: Vec<String>,
}

impl ChatArgs {
    /// The message to send.
    pub fn message(&self) -> String {
        self.prompt.join(" ")
    }
}

/// Messages read back when the turn was over before the stream connected (one prompt's
/// turn: the user message, tool calls and results, the answer).
const CHAT_REPLY_PAGE: u32 = 200;

/// Runs the command: sends the message, streams the reply, and fails with the reason when
/// the turn does not end `waiting`.
pub async fn run(args: ChatArgs) -> Result<(), BoxError> {
    use futures_util::StreamExt;

    let client = Client::new(&args.url, args.token.clone())?;
    let content = vec![ChatInputPart::text(args.message())];
    let mut err = std::io::stderr();
    // The turn to follow: the chat, and for a continued chat the id of the message just
    // sent (the stream and the read-back start after it, so the history is not replayed).
    let (chat_id, after_id) = match args.chat {
        None => {
            let chat = client
                .create_chat(&CreateChatRequest {
                    content,
                    ..Default::default()
                })
                .await
                .map_err(|e| explain(&args.url, e))?;
            announce(&mut err, chat.id)?;
            (chat.id, None)
        }
        Some(chat_id) => {
            let sent = client
                .send_message(
                    chat_id,
                    &CreateChatMessageRequest {
                        content,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| explain(&args.url, e))?;
            announce(&mut err, chat_id)?;
            match (&sent.message, &sent.queued_message) {
                (Some(message), _) if !sent.queued => (chat_id, Some(message.id)),
                (_, queued) => {
                    use std::io::Write as _;
                    let position = queued.as_ref().map(|q| format!(" as #{}", q.id));
                    writeln!(
                        err,
                        "[the chat is busy: your message is queued{}; it runs when the \
                         current turn ends]",
                        position.unwrap_or_default()
                    )?;
                    return Ok(());
                }
            }
        }
    };
    let mut events = client
        .stream(chat_id, after_id)
        .await
        .map_err(|e| explain(&args.url, e))?;
    let mut printer = Printer::default();
    let mut out = std::io::stdout();
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
        for message in read_back(&client, chat_id, after_id).await? {
            printer.on_message(&message, &mut out, &mut err)?;
        }
    }
    printer.finish(&mut out)?;
    if ended == Ended::Finished(ChatStatus::Waiting) {
        return Ok(());
    }
    // The `error` event follows the status change: the chat's `last_error` is the
    // reliable source of the failure.
    let chat = client.chat(chat_id).await?;
    let error = chat.last_error.as_ref().or(printer.error.as_ref());
    match failure(&chat.status, error) {
        Some(message) => Err(message.into()),
        None => Ok(()),
    }
}

/// Tells the user which chat this is, and how to continue it.
fn announce(err: &mut impl std::io::Write, chat_id: Uuid) -> std::io::Result<()> {
    writeln!(err, "[chat {chat_id}; continue it with --chat {chat_id}]")
}

/// The messages of the turn that followed `after_id` (the whole chat without it), oldest
/// first.
async fn read_back(
    client: &Client,
    chat_id: Uuid,
    after_id: Option<i64>,
) -> Result<Vec<ChatMessage>, BoxError> {
    let page = client
        .chat_messages(
            chat_id,
            &ChatMessagesOptions {
                after_id,
                limit: Some(CHAT_REPLY_PAGE),
                ..Default::default()
            },
        )
        .await?;
    let mut messages = page.messages;
    // Only `after_id` pages ascend; the first page of a chat is newest first.
    if after_id.is_none() {
        messages.reverse();
    }
    Ok(messages)
}

/// Adds a hint to the errors a first-time user meets.
fn explain(url: &str, e: codersdk::client::Error) -> BoxError {
    let hint = if e.is_unauthorized() {
        " (check CHATD_TOKEN / --token: the admin token is printed on the server's first \
         start; restart the server with CHATD_ADMIN_TOKEN=<token> to set a new one)"
    } else if e.is_not_found() {
        " (no such chat of yours: check the --chat id)"
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

/// Why a chat in `status` is a failure for `chat`; `None` when it is not (`waiting`). A
/// failed turn shows the stored error whole: its user-facing message, then what the server
/// classified (kind, provider, upstream status) and its detail. These come from the
/// server's `ChatError`, which never holds secrets (the engine classifies and bounds it).
pub fn failure(status: &ChatStatus, error: Option<&ChatError>) -> Option<String> {
    match status {
        ChatStatus::Error => Some(match error {
            None => "the turn failed: no error was recorded".to_owned(),
            Some(e) => {
                let mut facts = Vec::new();
                // `generic` means unclassified: nothing to add.
                if let Some(kind) = e.kind.as_ref().filter(|k| **k != ChatErrorKind::Generic) {
                    facts.push(format!("kind {}", kind.as_str()));
                }
                if !e.provider.is_empty() {
                    facts.push(format!("provider {}", e.provider));
                }
                if e.status_code != 0 {
                    facts.push(format!("upstream HTTP {}", e.status_code));
                }
                if !e.detail.is_empty() {
                    facts.push(format!("detail: {}", e.detail));
                }
                if facts.is_empty() {
                    format!("the turn failed: {}", e.message)
                } else {
                    format!("the turn failed: {} [{}]", e.message, facts.join("; "))
                }
            }
        }),
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
    use clap::Parser;

    use super::*;

    /// `ChatArgs` as its own command line, without the environment's `CHATD_*` values.
    #[derive(Debug, Parser)]
    struct Line {
        #[command(flatten)]
        args: ChatArgs,
    }

    fn parse(args: &[&str]) -> Result<ChatArgs, clap::Error> {
        Line::try_parse_from(std::iter::once("chat").chain(args.iter().copied())).map(|l| l.args)
    }

    #[test]
    fn arguments_start_or_continue_a_chat() {
        let id = Uuid::new_v4();
        let args = parse(&["--token", "t", "what", "time"]).unwrap();
        assert_eq!(args.chat, None);
        assert_eq!(args.message(), "what time");
        let args = parse(&["--token", "t", "--chat", &id.to_string(), "and", "now?"]).unwrap();
        assert_eq!(args.chat, Some(id));
        assert_eq!(args.message(), "and now?");
        // The flag may follow the prompt.
        let args = parse(&["--token", "t", "hi", "--chat", &id.to_string()]).unwrap();
        assert_eq!((args.chat, args.message().as_str()), (Some(id), "hi"));
        // A chat id must be a UUID, and the prompt is required either way.
        let err = parse(&["--token", "t", "--chat", "nope", "hi"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(parse(&["--token", "t", "--chat", &id.to_string()]).is_err());
        assert!(parse(&["--token", "t", "--chat"]).is_err());
    }

    #[test]
    fn the_chat_id_is_announced_with_how_to_continue() {
        let id = Uuid::new_v4();
        let mut err = Vec::new();
        announce(&mut err, id).unwrap();
        assert_eq!(
            String::from_utf8(err).unwrap(),
            format!("[chat {id}; continue it with --chat {id}]\n")
        );
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
            total_cost_micros: None,
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
        // The stored error's classification and detail follow the message.
        let error = ChatError {
            message: "The chat request failed unexpectedly.".into(),
            detail: "connection reset by peer".into(),
            kind: Some(codersdk::ChatErrorKind::Overloaded),
            provider: "openai".into(),
            status_code: 529,
            retryable: true,
        };
        assert_eq!(
            failure(&ChatStatus::Error, Some(&error)).unwrap(),
            "the turn failed: The chat request failed unexpectedly. [kind overloaded; provider \
             openai; upstream HTTP 529; detail: connection reset by peer]"
        );
        // `generic` is no classification: not worth a mention, unlike the detail.
        let mut unclassified = ChatError::generic("The chat request failed unexpectedly.");
        unclassified.detail = "stream ended without a finish reason".into();
        assert_eq!(
            failure(&ChatStatus::Error, Some(&unclassified)).unwrap(),
            "the turn failed: The chat request failed unexpectedly. [detail: stream ended \
             without a finish reason]"
        );
        assert_eq!(
            failure(&ChatStatus::Error, None).unwrap(),
            "the turn failed: no error was recorded"
        );
        assert!(failure(&ChatStatus::RequiresAction, None)
            .unwrap()
            .contains("tool-results"));
        assert_eq!(failure(&ChatStatus::Waiting, None), None);
    }
}
