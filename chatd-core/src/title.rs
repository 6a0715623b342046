//! Chat titles: the fallback title a chat gets at creation, and the
//! short title a model generates from the first message.
//!
//! Every title these functions return is one line without control characters, at most
//! [`MAX_TITLE_RUNES`] characters, so it passes `codersdk::validate_chat_title`.

use std::fmt;
use std::time::Duration;

use chatprovider::{CallSettings, LanguageModel, Message, ModelRequest};
use codersdk::ChatMessageUsage;
use tokio_util::sync::CancellationToken;

/// Words of the first message kept by [`fallback_title`].
pub const FALLBACK_TITLE_MAX_WORDS: usize = 6;

/// Words kept of a generated title ([`normalize_generated_title`]); the model is asked
/// for 2 to this many.
pub const MAX_GENERATED_TITLE_WORDS: usize = 8;

/// Longest automatic title, in characters (Unicode scalar values), ellipsis included.
pub const MAX_TITLE_RUNES: usize = 80;

/// Output token budget of a title generation call.
pub const TITLE_MAX_OUTPUT_TOKENS: i64 = 256;

/// Overall budget of [`generate_title`] for one model, retries included.
pub const TITLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Characters of the first message sent to the title model: the opening of a message says
/// what it is about, and a pasted log of megabytes would only cost tokens. The same cap
/// as the latest user message of a manual regenerate.
pub const TITLE_INPUT_MAX_RUNES: usize = 1_000;

/// The title of a chat whose first message has no words (only attachments, say).
pub const DEFAULT_CHAT_TITLE: &str = "New Chat";

/// Marks a title that was cut short.
pub const TITLE_ELLIPSIS: char = '…';

/// The instruction of a title generation call; the user's message follows as the user turn.
pub const TITLE_SYSTEM_PROMPT: &str = "\
Write a title for the chat that begins with the user's message. Use 2 to 8 words that name \
its topic or task, in the language of the message. Reply with the title only: no quotes, \
no trailing punctuation, no explanation.";

/// The title of a new chat before (or instead of) a generated one: the first
/// [`FALLBACK_TITLE_MAX_WORDS`] words of its first message joined by single spaces, with
/// [`TITLE_ELLIPSIS`] when words were dropped, then cut to [`MAX_TITLE_RUNES`] characters
/// (ellipsis included). Control characters are removed; a message without words gives
/// [`DEFAULT_CHAT_TITLE`].
pub fn fallback_title(first_message: &str) -> String {
    let words = clean_words(first_message);
    if words.is_empty() {
        return DEFAULT_CHAT_TITLE.to_owned();
    }
    let dropped = words.len() > FALLBACK_TITLE_MAX_WORDS;
    let mut title = words
        .into_iter()
        .take(FALLBACK_TITLE_MAX_WORDS)
        .collect::<Vec<_>>()
        .join(" ");
    if dropped {
        title.push(TITLE_ELLIPSIS);
    }
    clip_title(title)
}

/// Cleans a model's title reply: the first non-empty line, without a `Title:` label,
/// Markdown heading or emphasis marks, surrounding quotes or backticks, or a final period;
/// whitespace collapsed; at most [`MAX_GENERATED_TITLE_WORDS`] words and
/// [`MAX_TITLE_RUNES`] characters. `None` when nothing is left: the caller then tries the
/// next model or keeps the fallback title.
pub fn normalize_generated_title(raw: &str) -> Option<String> {
    normalize_generated_label(raw, MAX_GENERATED_TITLE_WORDS)
}

/// [`normalize_generated_title`] with another word cap: the cleaning every short label a
/// model writes gets (titles, turn summaries).
pub(crate) fn normalize_generated_label(raw: &str, max_words: usize) -> Option<String> {
    let mut line = raw.lines().map(str::trim).find(|l| !l.is_empty())?;
    // Models combine decorations ("**Title:** \"X.\""); peel until nothing changes.
    loop {
        let before = line;
        line = strip_decoration(line);
        if line == before {
            break;
        }
    }
    let words = clean_words(line);
    if words.is_empty() {
        return None;
    }
    let title = words
        .into_iter()
        .take(max_words)
        .collect::<Vec<_>>()
        .join(" ");
    Some(clip_title(title))
}

/// Why [`generate_title`] produced no title.
#[derive(Debug)]
#[non_exhaustive]
pub enum TitleError {
    /// The model call failed for good: not retryable, or out of attempts. The
    /// classification says why (`chaterror::classify` of it, or
    /// [`chaterror::Error::classification`]).
    Model(chaterror::Error),
    /// No answer within the budget, retries included.
    TimedOut(Duration),
    /// There was nothing to title, or the model's reply had no usable words.
    Empty,
}

impl fmt::Display for TitleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TitleError::Model(e) => write!(f, "title generation failed: {e}"),
            TitleError::TimedOut(d) => {
                write!(f, "title generation timed out after {}s", d.as_secs())
            }
            TitleError::Empty => f.write_str("title generation produced no usable title"),
        }
    }
}

impl std::error::Error for TitleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TitleError::Model(e) => Some(e),
            _ => None,
        }
    }
}

/// Asks `model` for a 2–8 word title of a chat whose first message is `first_message`
/// (its first [`TITLE_INPUT_MAX_RUNES`] characters), with at most
/// [`TITLE_MAX_OUTPUT_TOKENS`] output tokens, and returns it cleaned by
/// [`normalize_generated_title`].
///
/// Failed calls are retried with `chaterror`'s policy (back-off, Retry-After, retryable
/// kinds only) until `timeout` ([`TITLE_TIMEOUT`] normally) runs out for all attempts
/// together. Dropping the future cancels the call.
pub async fn generate_title(
    model: &dyn LanguageModel,
    first_message: &str,
    timeout: Duration,
) -> Result<String, TitleError> {
    generate_title_with_usage(model, first_message, timeout)
        .await
        .result
}

/// [`generate_title`] with the tokens the call used, for accounting.
pub(crate) async fn generate_title_with_usage(
    model: &dyn LanguageModel,
    first_message: &str,
    timeout: Duration,
) -> QuickReply {
    let message: String = first_message
        .trim()
        .chars()
        .take(TITLE_INPUT_MAX_RUNES)
        .collect();
    if message.trim().is_empty() {
        return QuickReply {
            result: Err(TitleError::Empty),
            usage: ChatMessageUsage::default(),
        };
    }
    quick_generate(
        model,
        TITLE_SYSTEM_PROMPT,
        message,
        MAX_GENERATED_TITLE_WORDS,
        timeout,
    )
    .await
}

/// What [`quick_generate`] answers: the cleaned label, and the tokens the successful
/// attempt reported (empty when no attempt got a reply), which are billed even when the
/// reply was unusable.
#[derive(Debug)]
pub(crate) struct QuickReply {
    pub(crate) result: Result<String, TitleError>,
    pub(crate) usage: ChatMessageUsage,
}

/// One short-label request (a title, a turn summary): `system` as the instruction,
/// `user_text` as the user turn, at most [`TITLE_MAX_OUTPUT_TOKENS`], retried with
/// `chaterror`'s policy until `timeout` runs out for all attempts together; the reply
/// cleaned with [`normalize_generated_label`] to at most `max_words` words. Shared by the
/// automatic title, the conversation title of the title routes and the turn summary.
pub(crate) async fn quick_generate(
    model: &dyn LanguageModel,
    system: &str,
    user_text: String,
    max_words: usize,
    timeout: Duration,
) -> QuickReply {
    let request = ModelRequest {
        system: vec![system.to_owned()],
        messages: vec![Message::user_text(user_text)],
        settings: CallSettings {
            max_output_tokens: Some(TITLE_MAX_OUTPUT_TOKENS),
            ..CallSettings::default()
        },
        ..ModelRequest::default()
    };
    // Never cancelled: the timeout (or the caller dropping us) ends the attempts.
    let cancel = CancellationToken::new();
    // Failures are redacted with the model's credentials before anything reads them.
    let redactor = model.redactor();
    let attempts = chaterror::retry(
        &cancel,
        |_| {
            let call = model.generate(request.clone());
            let redactor = &redactor;
            async move { call.await.map_err(|e| redactor.redact_provider_error(e)) }
        },
        |attempt, err, _, delay| {
            tracing::debug!(
                model = model.model_id(),
                attempt,
                ?delay,
                error = %err,
                "quick generation request failed; retrying"
            );
        },
    );
    let response = match tokio::time::timeout(timeout, attempts).await {
        Err(_) => Err(TitleError::TimedOut(timeout)),
        Ok(Err(e)) => Err(TitleError::Model(e)),
        Ok(Ok(response)) => Ok(response),
    };
    match response {
        Ok(response) => QuickReply {
            result: normalize_generated_label(&response.text, max_words).ok_or(TitleError::Empty),
            usage: response.usage,
        },
        Err(e) => QuickReply {
            result: Err(e),
            usage: ChatMessageUsage::default(),
        },
    }
}

/// Whitespace-separated words with control characters removed; empty words dropped.
fn clean_words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Cuts `title` to [`MAX_TITLE_RUNES`] characters, the last being [`TITLE_ELLIPSIS`].
fn clip_title(title: String) -> String {
    if title.chars().count() <= MAX_TITLE_RUNES {
        return title;
    }
    let mut clipped: String = title.chars().take(MAX_TITLE_RUNES - 1).collect();
    let kept = clipped.trim_end().len();
    clipped.truncate(kept);
    clipped.push(TITLE_ELLIPSIS);
    clipped
}

/// Removes one layer of decoration around a title.
fn strip_decoration(s: &str) -> &str {
    const PAIRS: [(&str, &str); 9] = [
        ("**", "**"),
        ("*", "*"),
        ("\"", "\""),
        ("'", "'"),
        ("`", "`"),
        ("\u{201c}", "\u{201d}"),
        ("\u{2018}", "\u{2019}"),
        ("\u{ab}", "\u{bb}"),
        ("\u{201e}", "\u{201c}"),
    ];
    const LABEL: &str = "title:";
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('#') {
        return rest.trim_start_matches('#');
    }
    if s.get(..LABEL.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(LABEL))
    {
        return s.get(LABEL.len()..).unwrap_or_default();
    }
    // "**Title:** X" has its label inside the emphasis.
    if let Some(rest) = s.strip_prefix("**Title:**") {
        return rest;
    }
    for (open, close) in PAIRS {
        if s.len() >= open.len() + close.len() {
            if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
                return inner;
            }
        }
    }
    if let Some(rest) = s.strip_suffix('.').filter(|r| !r.ends_with('.')) {
        return rest;
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::collections::VecDeque;
    use std::sync::Mutex;

    use chaterror::ProviderError;
    use chatprovider::{FinishReason, ModelStream, Provider, StreamPart};
    use codersdk::ChatMessageUsage;
    use futures_util::stream;

    use super::*;

    fn runes(s: &str) -> usize {
        s.chars().count()
    }

    fn assert_valid_title(title: &str) {
        assert!(runes(title) <= MAX_TITLE_RUNES, "{title:?} too long");
        codersdk::validate_chat_title(title).unwrap();
        assert_eq!(codersdk::validate_chat_title(title).unwrap(), title);
    }

    #[test]
    fn fallback_keeps_six_words_and_marks_a_seventh() {
        assert_eq!(
            fallback_title("one two three four five six"),
            "one two three four five six"
        );
        assert_eq!(
            fallback_title("one two three four five six seven"),
            "one two three four five six…"
        );
        assert_eq!(fallback_title("Fix   the\nlogin\tbug"), "Fix the login bug");
    }

    #[test]
    fn fallback_cuts_a_long_word_to_eighty_runes() {
        let word = "a".repeat(200);
        let title = fallback_title(&word);
        assert_eq!(runes(&title), MAX_TITLE_RUNES);
        assert_eq!(title, format!("{}…", "a".repeat(MAX_TITLE_RUNES - 1)));
        assert_valid_title(&title);
        // Exactly 80 runes stay whole; 81 are cut.
        let at = "b".repeat(MAX_TITLE_RUNES);
        assert_eq!(fallback_title(&at), at);
        let over = "b".repeat(MAX_TITLE_RUNES + 1);
        assert_eq!(runes(&fallback_title(&over)), MAX_TITLE_RUNES);
        assert!(fallback_title(&over).ends_with(TITLE_ELLIPSIS));
    }

    #[test]
    fn fallback_counts_runes_not_bytes() {
        // 100 two-byte and four-byte characters: cut by characters, never mid-character.
        let word = "é😀".repeat(50);
        let title = fallback_title(&word);
        assert_eq!(runes(&title), MAX_TITLE_RUNES);
        assert!(title.starts_with("é😀é😀"));
        assert_valid_title(&title);
        // 40 characters of four bytes each are 160 bytes but only 40 runes: kept whole.
        let short = "😀".repeat(40);
        assert_eq!(fallback_title(&short), short);
    }

    #[test]
    fn fallback_of_nothing_is_the_default_title() {
        assert_eq!(fallback_title(""), DEFAULT_CHAT_TITLE);
        assert_eq!(fallback_title(" \n\t \u{3000}"), DEFAULT_CHAT_TITLE);
        assert_eq!(fallback_title("\u{7}\u{0}"), DEFAULT_CHAT_TITLE);
    }

    #[test]
    fn fallback_does_not_leave_a_space_before_the_ellipsis() {
        // Five words fill 78 runes, so rune 79 is the space before the sixth word.
        let five = [
            "a".repeat(15),
            "b".repeat(15),
            "c".repeat(15),
            "d".repeat(15),
            "e".repeat(14),
        ];
        let head = five.join(" ");
        assert_eq!(runes(&head), MAX_TITLE_RUNES - 2);
        let title = fallback_title(&format!("{head} sixth seventh"));
        assert_eq!(title, format!("{head}…"));
        assert_valid_title(&title);
    }

    #[test]
    fn generated_titles_lose_their_decorations() {
        let cases = [
            ("Fix the login bug", "Fix the login bug"),
            ("\"Fix the login bug\"", "Fix the login bug"),
            ("  'Fix  the\tlogin bug.'  ", "Fix the login bug"),
            ("Title: Fix the login bug", "Fix the login bug"),
            (
                "**Title:** \u{201c}Fix the login bug\u{201d}",
                "Fix the login bug",
            ),
            ("# `Fix the login bug`", "Fix the login bug"),
            (
                "\n\nFix the login bug\nThis title summarizes…",
                "Fix the login bug",
            ),
            ("Wait...", "Wait..."),
            ("«Résumé du projet»", "Résumé du projet"),
        ];
        for (raw, want) in cases {
            assert_eq!(
                normalize_generated_title(raw).as_deref(),
                Some(want),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn generated_titles_are_capped_at_eight_words_and_eighty_runes() {
        let eight = "one two three four five six seven eight";
        assert_eq!(normalize_generated_title(eight).as_deref(), Some(eight));
        assert_eq!(
            normalize_generated_title(&format!("{eight} nine")).as_deref(),
            Some(eight)
        );
        let long = normalize_generated_title(&"ü".repeat(200)).unwrap();
        assert_eq!(runes(&long), MAX_TITLE_RUNES);
        assert_valid_title(&long);
    }

    #[test]
    fn empty_generated_titles_are_none() {
        for raw in ["", "   \n\t", "\"\"", "**", "``", "Title:", "\u{7}"] {
            assert_eq!(normalize_generated_title(raw), None, "{raw:?}");
        }
    }

    enum Reply {
        Text(&'static str),
        Status(u16),
        Hang,
    }

    /// A model that answers each call with the next scripted reply and records requests.
    #[derive(Debug, Default)]
    struct Scripted {
        replies: Mutex<VecDeque<Reply>>,
        requests: Mutex<Vec<ModelRequest>>,
    }

    impl fmt::Debug for Reply {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Reply")
        }
    }

    impl Scripted {
        fn new(replies: impl IntoIterator<Item = Reply>) -> Self {
            Scripted {
                replies: Mutex::new(replies.into_iter().collect()),
                requests: Mutex::default(),
            }
        }

        fn calls(&self) -> usize {
            self.requests.lock().unwrap().len()
        }
    }

    impl LanguageModel for Scripted {
        fn provider(&self) -> Provider {
            Provider::OpenAi
        }

        fn model_id(&self) -> &str {
            "scripted"
        }

        fn stream(&self, request: ModelRequest) -> ModelStream {
            self.requests.lock().unwrap().push(request);
            match self.replies.lock().unwrap().pop_front() {
                Some(Reply::Text(text)) => Box::pin(stream::iter(vec![
                    Ok(StreamPart::TextDelta {
                        block: 0,
                        delta: text.to_owned(),
                    }),
                    Ok(StreamPart::Finish {
                        reason: FinishReason::Stop,
                        usage: ChatMessageUsage::default(),
                    }),
                ])),
                Some(Reply::Status(status)) => Box::pin(stream::iter(vec![Err(
                    ProviderError::new(format!("status {status}")).with_status(status),
                )])),
                Some(Reply::Hang) | None => Box::pin(stream::pending()),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn generate_title_asks_for_a_short_title_and_cleans_it() {
        let model = Scripted::new([Reply::Text("\"Debugging the login flow.\"")]);
        let title = generate_title(
            &model,
            "  My login form rejects valid passwords  ",
            TITLE_TIMEOUT,
        )
        .await
        .unwrap();
        assert_eq!(title, "Debugging the login flow");
        let requests = model.requests.lock().unwrap();
        let req = &requests[0];
        assert_eq!(
            req.settings.max_output_tokens,
            Some(TITLE_MAX_OUTPUT_TOKENS)
        );
        assert_eq!(req.system, vec![TITLE_SYSTEM_PROMPT.to_owned()]);
        assert!(req.tools.is_empty());
        assert_eq!(
            req.messages,
            vec![Message::user_text("My login form rejects valid passwords")]
        );
    }

    #[test]
    fn generate_title_can_run_in_a_spawned_task() {
        fn send<F: std::future::Future + Send>(_: &F) {}
        let model = Scripted::new([]);
        send(&generate_title(&model, "hello", TITLE_TIMEOUT));
    }

    #[tokio::test(start_paused = true)]
    async fn generate_title_sends_at_most_the_input_cap() {
        let model = Scripted::new([Reply::Text("Long paste")]);
        let long = "é".repeat(TITLE_INPUT_MAX_RUNES + 500);
        generate_title(&model, &long, TITLE_TIMEOUT).await.unwrap();
        let requests = model.requests.lock().unwrap();
        assert_eq!(
            requests[0].messages,
            vec![Message::user_text("é".repeat(TITLE_INPUT_MAX_RUNES))]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn generate_title_retries_an_overloaded_provider() {
        let model = Scripted::new([Reply::Status(503), Reply::Text("Login bug")]);
        let start = tokio::time::Instant::now();
        let title = generate_title(&model, "help with login", TITLE_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(title, "Login bug");
        assert_eq!(model.calls(), 2);
        // One back-off of the initial delay between the attempts.
        assert_eq!(start.elapsed(), chaterror::retry::INITIAL_DELAY);
    }

    #[tokio::test(start_paused = true)]
    async fn generate_title_does_not_retry_an_auth_failure() {
        let model = Scripted::new([Reply::Status(401), Reply::Text("never")]);
        let err = generate_title(&model, "help", TITLE_TIMEOUT)
            .await
            .unwrap_err();
        let TitleError::Model(e) = &err else {
            panic!("want a model error, got {err:?}");
        };
        assert_eq!(
            e.classification().and_then(|c| c.kind()),
            Some(&chaterror::ChatErrorKind::Auth)
        );
        assert_eq!(model.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn generate_title_gives_up_at_the_timeout() {
        let model = Scripted::new([Reply::Hang]);
        let start = tokio::time::Instant::now();
        let err = generate_title(&model, "help", TITLE_TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(err, TitleError::TimedOut(d) if d == TITLE_TIMEOUT),
            "{err:?}"
        );
        assert_eq!(start.elapsed(), TITLE_TIMEOUT);
        assert_eq!(err.to_string(), "title generation timed out after 30s");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_count_against_the_timeout() {
        // Keeps failing with a retryable status: back-offs of 1, 2, 4, 8, 16 s pass 30 s.
        let model = Scripted::new((0..10).map(|_| Reply::Status(503)));
        let err = generate_title(&model, "help", TITLE_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, TitleError::TimedOut(_)), "{err:?}");
        assert_eq!(model.calls(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn blank_reply_or_blank_message_is_empty() {
        let model = Scripted::new([Reply::Text("  \"\" ")]);
        let err = generate_title(&model, "help", TITLE_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, TitleError::Empty), "{err:?}");

        let model = Scripted::new([]);
        let err = generate_title(&model, " \n ", TITLE_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, TitleError::Empty), "{err:?}");
        assert_eq!(model.calls(), 0);
    }
}
