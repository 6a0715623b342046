//! Titles on request: `POST /chats/{chat}/title/propose` asks the chat's
//! model (or the deployment's title model, `ModelResolver::title_model`) for a title of the conversation so far, and `POST /chats/{chat}/title/regenerate`
//! also saves it.
//!
//! The model sees a short transcript, not the history: the first user turn (what the chat
//! set out to do) and the last [`TITLE_RECENT_TURNS`] turns (where it is now), with a marker
//! for the turns in between, at most [`TITLE_CONVERSATION_MAX_RUNES`] characters in all.
//! A turn is one user or assistant message's visible text; consecutive messages of one
//! role (an assistant's steps around its tool calls) are one turn.
//!
//! Failures map onto the crate's error kinds so the API can answer them; the table is on
//! [`Engine::propose_title`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use codersdk::{
    Chat, ChatError, ChatMessage, ChatMessagePartType, ChatMessageRole, ChatWatchEventKind,
    MessagePage, Response, Uuid,
};

use super::models::TurnModelRequest;
use super::ops::Access;
use super::usage::{record_call, CallModel};
use super::{lock, Actor, Engine};
use crate::error::{Error, ErrorKind, Result};
use crate::title::{TitleError, TITLE_ELLIPSIS, TITLE_INPUT_MAX_RUNES, TITLE_TIMEOUT};

/// Messages read from each end of the conversation (the first and the last this many,
/// merged): enough to find the first user turn and the recent ones without reading a long
/// chat whole.
pub const TITLE_CONTEXT_MESSAGES: i64 = 50;

/// Turns kept from the end of the conversation, besides the first user turn.
pub const TITLE_RECENT_TURNS: usize = 3;

/// Longest transcript sent to the title model, in characters (Unicode scalar values),
/// role labels and the omission marker included. The latest user message is cut to
/// [`TITLE_INPUT_MAX_RUNES`] first; the other turns share what is left.
pub const TITLE_CONVERSATION_MAX_RUNES: usize = 6_000;

/// The instruction of a conversation title call; the transcript follows as the user turn.
pub const CONVERSATION_TITLE_SYSTEM_PROMPT: &str = "\
Write a title for the conversation below between a user and an AI assistant. Use 2 to 8 \
words that name what the conversation is about now, in the language of the conversation. \
Reply with the title only: no quotes, no trailing punctuation, no explanation.";

/// Chats whose title is being regenerated in this process. A second regeneration of the
/// same chat is refused (409) instead of racing the first; renames are refused meanwhile
/// too (the server asks [`Engine::is_regenerating_title`]). Only this process's requests
/// are seen: two processes regenerating one chat both succeed and the later write wins,
/// which leaves a valid title either way.
static REGENERATING: Mutex<BTreeSet<Uuid>> = Mutex::new(BTreeSet::new());

/// Marks a chat as regenerating until dropped, also when the request is cancelled.
struct RegenerationGuard(Uuid);

impl RegenerationGuard {
    fn acquire(chat_id: Uuid) -> Option<RegenerationGuard> {
        // The set's lock is released before a guard exists: a guard built (and dropped)
        // under it would deadlock in `drop` and, worse, unmark the holder's chat.
        let inserted = lock(&REGENERATING).insert(chat_id);
        inserted.then(|| RegenerationGuard(chat_id))
    }
}

impl Drop for RegenerationGuard {
    fn drop(&mut self) {
        lock(&REGENERATING).remove(&self.0);
    }
}

impl Engine {
    /// A title for the chat's conversation so far, written by the deployment's title model
    /// (the `title_generation` model override, when set and usable for the owner) or else
    /// the chat's model; nothing is saved. Owner only: the call spends the owner's model and keys, so an admin reading
    /// the chat gets [`ErrorKind::Forbidden`] (another user's chat is
    /// [`ErrorKind::NotFound`]). Waits for the model up to [`TITLE_TIMEOUT`], retries
    /// included.
    ///
    /// The model reads a transcript, not the history: the first user turn
    /// and the last three turns of the first and last 50 messages, with a
    /// `[... N earlier turns omitted ...]` marker, at most 6 000 characters, the latest user
    /// message at most [`TITLE_INPUT_MAX_RUNES`].
    ///
    /// | What failed | Kind | HTTP |
    /// |---|---|---|
    /// | the chat has no text | [`ErrorKind::InvalidArgument`] | 400 |
    /// | the chat's model cannot be resolved (missing key, disabled provider, unknown config) | [`ErrorKind::InvalidArgument`] | 400 |
    /// | the model refused for good (a non-retryable classification: auth, config, bad request) | [`ErrorKind::InvalidArgument`] | 400 |
    /// | the model kept failing until [`TITLE_TIMEOUT`], or replied with nothing usable | [`ErrorKind::Conflict`] | 409 |
    /// | the owner has spent their usage limit | [`ErrorKind::UsageLimit`] | 409 |
    ///
    /// Each body carries the classified, user-facing reason (never a key) as its `detail`.
    pub async fn propose_title(&self, actor: &Actor, chat_id: Uuid) -> Result<String> {
        let chat = self.authorized_chat(actor, chat_id, Access::Write).await?;
        self.inner.admit(chat.owner_id).await?;
        self.conversation_title(&chat).await
    }

    /// [`Engine::propose_title`], then saves the title (without bumping `updated_at`),
    /// publishes a `title_change` watch event when it changed, and returns the chat.
    /// [`ErrorKind::Conflict`] while another regeneration of the chat runs in this process.
    pub async fn regenerate_title(&self, actor: &Actor, chat_id: Uuid) -> Result<Chat> {
        let chat = self.authorized_chat(actor, chat_id, Access::Write).await?;
        self.inner.admit(chat.owner_id).await?;
        let _guard = RegenerationGuard::acquire(chat_id).ok_or_else(|| {
            Error::new(
                ErrorKind::Conflict,
                "The chat's title is already being regenerated.",
            )
        })?;
        let title = self.conversation_title(&chat).await?;
        // Unconditional: the owner asked for this title, so it replaces whatever title the
        // chat has now, including an automatic one that landed meanwhile.
        if self.inner.store.set_title(chat_id, &title).await? {
            self.inner
                .publish_watch_by_id(chat_id, ChatWatchEventKind::TitleChange)
                .await;
        }
        self.authorized_chat(actor, chat_id, Access::Read).await
    }

    /// Whether this process is regenerating the chat's title now (a rename then answers
    /// 409).
    pub fn is_regenerating_title(&self, chat_id: Uuid) -> bool {
        lock(&REGENERATING).contains(&chat_id)
    }

    /// Reads the transcript, resolves the title model (else the chat's model) and asks it
    /// for a title.
    async fn conversation_title(&self, chat: &Chat) -> Result<String> {
        let messages = self.title_messages(chat.id).await?;
        let Some(transcript) = title_transcript(&messages) else {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "The chat has no text to write a title from.",
            ));
        };
        let request = TurnModelRequest {
            chat_id: chat.id,
            owner_id: chat.owner_id,
            organization_id: chat.organization_id,
            requested: None,
            last: chat.last_model_config_id,
            reasoning_effort: None,
        };
        // The deployment's title model (the `title_generation` override) when it is set
        // and usable for the owner, else the chat's model.
        let resolved = match self.inner.models.title_model(request).await {
            Some(title_model) => title_model,
            None => self
                .inner
                .models
                .resolve(request)
                .await
                .map_err(model_unavailable)?,
        };
        let model = resolved.model.as_ref();
        let provider = model.provider().as_str().to_owned();
        // Recorded as a `title_generation` debug run when debug logging is on for the owner.
        let kind = codersdk::ChatDebugRunKind::TitleGeneration;
        let links = super::debug::RunLinks {
            trigger_message_id: None,
            history_tip_message_id: messages.last().map(|m| m.id),
        };
        let run = super::debug::DebugRun::start(&self.inner, kind, chat, &resolved, links).await;
        let (recorded, recording) = super::debug::RecordingModel::wrap(resolved.model.clone(), run);
        let started = std::time::Instant::now();
        let reply = crate::title::quick_generate(
            recorded.as_ref(),
            CONVERSATION_TITLE_SYSTEM_PROMPT,
            transcript,
            crate::title::MAX_GENERATED_TITLE_WORDS,
            TITLE_TIMEOUT,
        )
        .await;
        if let Some(recording) = recording {
            let error =
                reply.result.as_ref().err().map(|e| {
                    codersdk::ChatError::generic(resolved.redactor.display(e).to_string())
                });
            recording.finish(error.as_ref()).await;
        }
        // Billed whether or not the reply was usable.
        let call = CallModel {
            model_config_id: Some(resolved.model_config_id),
            model,
            cost: resolved.cost.as_ref(),
        };
        record_call(&self.inner, chat.id, call, &reply.usage, started).await;
        reply
            .result
            .map_err(|e| generation_failed(e, &provider, &resolved.redactor))
    }

    /// The first and the last [`TITLE_CONTEXT_MESSAGES`] user-visible messages, oldest
    /// first, without duplicates.
    async fn title_messages(&self, chat_id: Uuid) -> Result<Vec<ChatMessage>> {
        let oldest = MessagePage {
            before_id: None,
            after_id: Some(0),
            limit: TITLE_CONTEXT_MESSAGES,
            ascending: true,
        };
        let newest = MessagePage {
            before_id: None,
            after_id: None,
            limit: TITLE_CONTEXT_MESSAGES,
            ascending: false,
        };
        let store = &self.inner.store;
        let (head, _) = store.list_messages(chat_id, &oldest).await?;
        let (tail, _) = store.list_messages(chat_id, &newest).await?;
        let merged: BTreeMap<i64, ChatMessage> =
            head.into_iter().chain(tail).map(|m| (m.id, m)).collect();
        Ok(merged.into_values().collect())
    }
}

/// One speaker's visible text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Turn {
    /// The user's (else the assistant's).
    pub(super) user: bool,
    pub(super) text: String,
}

/// The transcript the title model reads, from messages oldest first: the first user turn,
/// `[... N earlier turns omitted ...]` when turns were left out, and the last
/// [`TITLE_RECENT_TURNS`] turns, each as `User: …` or `Assistant: …`, separated by blank
/// lines. The latest user turn is cut to [`TITLE_INPUT_MAX_RUNES`] characters and the
/// other turns share the rest of [`TITLE_CONVERSATION_MAX_RUNES`] equally. `None` when no
/// message has text. Cut text ends with [`TITLE_ELLIPSIS`].
fn title_transcript(messages: &[ChatMessage]) -> Option<String> {
    let turns = turns(messages);
    let first_user = turns.iter().position(|t| t.user)?;
    let recent_from = turns.len().saturating_sub(TITLE_RECENT_TURNS);
    // The first user turn, then the recent ones (the first may be one of them).
    let mut kept: Vec<usize> = vec![first_user];
    kept.extend((recent_from..turns.len()).filter(|&i| i != first_user));
    kept.sort_unstable();
    // Turns before the first user turn (there are none in a normal chat) are dropped
    // unless recent; the marker counts the turns between the first user turn and the
    // recent ones.
    let omitted = recent_from.saturating_sub(first_user + 1);
    let latest_user = turns.iter().rposition(|t| t.user);

    let mut marker = (omitted > 0).then(|| format!("[... {omitted} earlier turns omitted ...]"));
    // Fixed text: labels, separators, the marker and the latest user turn.
    let label = |t: &Turn| if t.user { "User: " } else { "Assistant: " };
    let separators = 2 * (kept.len() + usize::from(marker.is_some())).saturating_sub(1);
    let mut fixed = separators + marker.as_deref().map_or(0, runes);
    let mut latest_text = None;
    for &i in &kept {
        let Some(turn) = turns.get(i) else { continue };
        fixed += runes(label(turn));
        if Some(i) == latest_user {
            let text = clip(&turn.text, TITLE_INPUT_MAX_RUNES);
            fixed += runes(&text);
            latest_text = Some(text);
        }
    }
    let others = kept.len() - usize::from(latest_text.is_some());
    let share = TITLE_CONVERSATION_MAX_RUNES
        .saturating_sub(fixed)
        .checked_div(others)
        .unwrap_or(0);

    let mut blocks = Vec::with_capacity(kept.len() + 1);
    for &i in &kept {
        let Some(turn) = turns.get(i) else { continue };
        let text = match (&latest_text, Some(i) == latest_user) {
            (Some(latest), true) => latest.clone(),
            _ => clip(&turn.text, share),
        };
        blocks.push(format!("{}{text}", label(turn)));
        if i == first_user {
            if let Some(marker) = marker.take() {
                blocks.push(marker);
            }
        }
    }
    // Every block was sized to fit; the final cut only guards the arithmetic.
    Some(clip(&blocks.join("\n\n"), TITLE_CONVERSATION_MAX_RUNES))
}

/// Visible user and assistant text, consecutive messages of one role joined into a turn.
/// Shared with the turn summary's transcript.
pub(super) fn turns(messages: &[ChatMessage]) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::new();
    for message in messages {
        let user = match message.role {
            ChatMessageRole::User => true,
            ChatMessageRole::Assistant => false,
            _ => continue,
        };
        let text = message
            .content
            .iter()
            .filter(|p| p.part_type == ChatMessagePartType::Text)
            .map(|p| p.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        if text.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.user == user => {
                last.text.push('\n');
                last.text.push_str(&text);
            }
            _ => out.push(Turn { user, text }),
        }
    }
    out
}

/// Length in characters (Unicode scalar values), the unit of every transcript cap.
pub(super) fn runes(s: &str) -> usize {
    s.chars().count()
}

/// `text` cut to `max` characters, the last being [`TITLE_ELLIPSIS`] when cut.
pub(super) fn clip(text: &str, max: usize) -> String {
    if runes(text) <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        out.push(TITLE_ELLIPSIS);
    }
    out
}

/// [`clip`] from the other end: the last `max` characters, the first being
/// [`TITLE_ELLIPSIS`] when cut. For text whose end matters most (where a reply left
/// things).
pub(super) fn clip_start(text: &str, max: usize) -> String {
    let len = runes(text);
    if len <= max {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::with_capacity(text.len().min(4 * max));
    out.push(TITLE_ELLIPSIS);
    out.extend(text.chars().skip(len - (max - 1)));
    out
}

/// The resolver could not give the chat's model: a configuration problem to fix.
fn model_unavailable(e: ChatError) -> Error {
    Error::with_response(
        ErrorKind::InvalidArgument,
        Response::new("The chat's model cannot be used to write a title.").with_detail(e.message),
    )
}

/// A failed title call: refused for good → 400; out of time or no usable words → 409
/// (trying again later may work).
fn generation_failed(e: TitleError, provider: &str, redactor: &chaterror::Redactor) -> Error {
    let (kind, message, detail) = match e {
        TitleError::Model(err) => {
            let classified = chaterror::classify(&err).with_provider(provider);
            let kind = if classified.is_retryable() {
                ErrorKind::Conflict
            } else {
                ErrorKind::InvalidArgument
            };
            tracing::warn!(provider, error = %redactor.display(&err), "conversation title failed");
            (
                kind,
                "The model could not write a title.",
                classified.message().to_owned(),
            )
        }
        TitleError::TimedOut(after) => (
            ErrorKind::Conflict,
            "The model did not write a title in time.",
            format!(
                "Gave up after {} seconds; try again later.",
                after.as_secs()
            ),
        ),
        TitleError::Empty => (
            ErrorKind::Conflict,
            "The model's reply held no usable title.",
            "Try again.".to_owned(),
        ),
    };
    Error::with_response(kind, Response::new(message).with_detail(detail))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use codersdk::{ChatMessagePart, Timestamp};

    use super::*;

    fn message(id: i64, role: ChatMessageRole, text: &str) -> ChatMessage {
        ChatMessage {
            id,
            chat_id: Uuid::nil(),
            created_by: None,
            model_config_id: None,
            created_at: Timestamp(chrono::Utc::now()),
            role,
            content: vec![ChatMessagePart::text(text)],
            usage: None,
            total_cost_micros: None,
        }
    }

    fn conversation(n: usize) -> Vec<ChatMessage> {
        (0..n)
            .map(|i| {
                let role = if i % 2 == 0 {
                    ChatMessageRole::User
                } else {
                    ChatMessageRole::Assistant
                };
                message(i as i64 + 1, role, &format!("turn {i}"))
            })
            .collect()
    }

    #[test]
    fn short_conversations_are_sent_whole() {
        let t = title_transcript(&conversation(3)).unwrap();
        assert_eq!(t, "User: turn 0\n\nAssistant: turn 1\n\nUser: turn 2");
        // Exactly the first user turn plus three recent turns: nothing omitted.
        let t = title_transcript(&conversation(4)).unwrap();
        assert!(!t.contains("omitted"), "{t}");
        assert!(t.starts_with("User: turn 0\n\nAssistant: turn 1"), "{t}");
    }

    #[test]
    fn the_first_user_turn_and_the_last_three_are_kept_with_a_marker() {
        let t = title_transcript(&conversation(10)).unwrap();
        assert_eq!(
            t,
            "User: turn 0\n\n[... 6 earlier turns omitted ...]\n\nAssistant: turn 7\n\n\
             User: turn 8\n\nAssistant: turn 9"
        );
        // One turn more than fits: one omitted.
        let t = title_transcript(&conversation(5)).unwrap();
        assert!(t.contains("[... 1 earlier turns omitted ...]"), "{t}");
    }

    #[test]
    fn consecutive_messages_of_one_role_are_one_turn_and_other_roles_are_skipped() {
        let tool = message(3, ChatMessageRole::Tool, "tool output");
        let messages = vec![
            message(1, ChatMessageRole::User, "fix the build"),
            message(2, ChatMessageRole::Assistant, "running make"),
            tool,
            message(4, ChatMessageRole::Assistant, "fixed"),
            message(5, ChatMessageRole::User, "   "),
        ];
        let t = title_transcript(&messages).unwrap();
        assert_eq!(t, "User: fix the build\n\nAssistant: running make\nfixed");
    }

    #[test]
    fn no_text_means_no_transcript() {
        assert_eq!(title_transcript(&[]), None);
        let only_assistant = vec![message(1, ChatMessageRole::Assistant, "hello")];
        assert_eq!(title_transcript(&only_assistant), None);
    }

    #[test]
    fn the_latest_user_message_is_cut_at_its_cap() {
        let at = "a".repeat(TITLE_INPUT_MAX_RUNES);
        let over = "b".repeat(TITLE_INPUT_MAX_RUNES + 1);
        let t = title_transcript(&[
            message(1, ChatMessageRole::User, "first"),
            message(2, ChatMessageRole::Assistant, "reply"),
            message(3, ChatMessageRole::User, &at),
        ])
        .unwrap();
        assert!(t.ends_with(&format!("User: {at}")), "kept whole at the cap");
        let t = title_transcript(&[
            message(1, ChatMessageRole::User, "first"),
            message(2, ChatMessageRole::Assistant, "reply"),
            message(3, ChatMessageRole::User, &over),
        ])
        .unwrap();
        let last = t.rsplit("User: ").next().unwrap();
        assert_eq!(runes(last), TITLE_INPUT_MAX_RUNES);
        assert!(last.ends_with(TITLE_ELLIPSIS));
    }

    #[test]
    fn the_transcript_never_exceeds_its_cap() {
        let huge = "é".repeat(50_000);
        let messages: Vec<ChatMessage> = (0..8)
            .map(|i| {
                let role = if i % 2 == 0 {
                    ChatMessageRole::User
                } else {
                    ChatMessageRole::Assistant
                };
                message(i + 1, role, &huge)
            })
            .collect();
        let t = title_transcript(&messages).unwrap();
        assert!(runes(&t) <= TITLE_CONVERSATION_MAX_RUNES, "{}", runes(&t));
        // The budget is used, not wasted: within a few characters of the cap.
        assert!(
            runes(&t) > TITLE_CONVERSATION_MAX_RUNES - 10,
            "{}",
            runes(&t)
        );
        // Every kept turn is there, the first one included.
        assert!(t.starts_with("User: é"));
        assert!(t.contains("[... 4 earlier turns omitted ...]"));
        assert_eq!(t.matches("Assistant: ").count(), 2);
    }

    #[test]
    fn a_transcript_just_under_the_cap_is_not_cut() {
        // Two turns whose labels and separator bring the block to exactly the cap.
        let first = "x".repeat(100);
        let fixed = runes("User: ") + runes("Assistant: ") + 2 + first.len();
        let reply = "y".repeat(TITLE_CONVERSATION_MAX_RUNES - fixed);
        let t = title_transcript(&[
            message(1, ChatMessageRole::User, &first),
            message(2, ChatMessageRole::Assistant, &reply),
        ])
        .unwrap();
        assert_eq!(runes(&t), TITLE_CONVERSATION_MAX_RUNES);
        assert!(!t.contains(TITLE_ELLIPSIS));
    }

    #[test]
    fn regeneration_guard_is_exclusive_and_released_on_drop() {
        let chat = Uuid::new_v4();
        let guard = RegenerationGuard::acquire(chat).unwrap();
        assert!(RegenerationGuard::acquire(chat).is_none());
        assert!(lock(&REGENERATING).contains(&chat));
        drop(guard);
        assert!(!lock(&REGENERATING).contains(&chat));
        assert!(RegenerationGuard::acquire(chat).is_some());
    }
}
