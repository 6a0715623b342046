//! Turn summaries (engine.md §10.3): after a turn completes, a model writes a 2–5 word
//! status label of where the chat stands ("Fixed the login bug", "Waiting for your
//! approval") into `chats.last_turn_summary`, so a chat list can show the state of each
//! chat without opening it.
//!
//! - **Trigger**: a root chat's turn that completed and left the chat `waiting`. Failed,
//!   interrupted, lost and shut-down turns get none (a failure is shown by its status and
//!   error; an interrupt was the user's own doing, often followed at once by the message
//!   that caused it; a lost or shut-down turn runs again elsewhere); a
//!   `requires_action` turn neither: it is paused, not over, on client tools whose results
//!   usually come within seconds, so a label would be outdated at once and cost a call per
//!   round trip; the next completion writes one. A completion that promoted a queued message
//!   (the chat is `pending` again) gets none either: the guard below would drop it anyway.
//!   Sub-agent chats get none: their state reaches the user through their parent, and a
//!   label per sub-agent turn would add a model call to every step of a delegated task.
//!   The generation runs in a task of its own, never delaying the turn's end or the next
//!   claim; [`EngineConfig::with_turn_summaries`](super::EngineConfig::with_turn_summaries)
//!   turns it off.
//! - **Model**: the deployment's title model ([`ModelResolver::title_model`], the
//!   `title_generation` override) when set and usable, else the turn's model, as for titles.
//! - **Input**: the latest user turn and the assistant's reply to it, see
//!   [`TURN_SUMMARY_USER_MAX_RUNES`] and [`TURN_SUMMARY_REPLY_MAX_RUNES`].
//! - **Guard**: the write applies only while the chat's newest non-deleted message is the
//!   one that was newest when the generation started
//!   ([`Store::set_turn_summary_if`](crate::store::Store::set_turn_summary_if)), so a slow
//!   summary of an old turn never overwrites a newer state. `updated_at` is left alone.
//! - **Failure**: a generation that fails (or a turn without any text) clears the label
//!   under the same guard: the field names the last completed turn, and a label of an
//!   earlier turn would describe a state the chat has left.
//! - **Event**: a `summary_change` watch event when the value changed.
//! - **Cost**: the call is recorded as a hidden usage row, usable reply or not, after the
//!   write.
//!
//! [`ModelResolver::title_model`]: super::models::ModelResolver::title_model

use std::sync::Arc;
use std::time::{Duration, Instant};

use codersdk::{ChatMessage, ChatMessageRole, ChatStatus, ChatWatchEventKind, Uuid};

use super::models::{ResolvedModel, TurnModelRequest};
use super::titles::{clip, clip_start, turns};
use super::usage::{record_call, CallModel};
use super::Inner;
use crate::error::Result;
use crate::store::{Transition, TurnOutcome};
use crate::title::QuickReply;

/// The instruction of a turn summary call; the transcript of the turn follows as the user
/// turn.
pub const TURN_SUMMARY_SYSTEM_PROMPT: &str = "\
Write a status label for the conversation below between a user and an AI assistant. Use 2 \
to 5 words that say where the assistant's latest reply left things, such as what was done \
or what the assistant now waits for from the user, in the language of the conversation. \
Reply with the label only: no quotes, no trailing punctuation, no explanation.";

/// Words kept of a turn summary; the model is asked for 2 to this many.
pub const MAX_TURN_SUMMARY_WORDS: usize = 5;

/// Overall budget of one turn summary call, retries included: the same as a title's, a
/// label of the same size.
pub const TURN_SUMMARY_TIMEOUT: Duration = Duration::from_secs(30);

/// Newest user-visible messages read to find the latest turn. A turn with more messages
/// (long tool loops) is summarized from its reply alone, which says where it ended.
pub const TURN_SUMMARY_CONTEXT_MESSAGES: i64 = 50;

/// Characters (Unicode scalar values) of the latest user message sent to the summary
/// model, from its start: what was asked. The same cap as a title's input.
pub const TURN_SUMMARY_USER_MAX_RUNES: usize = crate::title::TITLE_INPUT_MAX_RUNES;

/// Characters of the assistant's reply sent to the summary model, from its end: where
/// the reply left things (a result, a question) is what the label names.
pub const TURN_SUMMARY_REPLY_MAX_RUNES: usize = 2_000;

/// Whether the turn that ended with `outcome` and committed `finished` gets a summary
/// (see the module docs for why the others do not).
pub(crate) fn wanted(inner: &Inner, outcome: &TurnOutcome, finished: &Transition) -> bool {
    inner.turn_summaries
        && matches!(outcome, TurnOutcome::Completed)
        && finished.status_set
        && finished.status == ChatStatus::Waiting
}

/// Starts the summary of `chat_id`'s latest turn in the background, after
/// [`EngineSettings::turn_summary_delay`](super::EngineSettings::turn_summary_delay): it is
/// skipped when a later turn of the chat scheduled its own meanwhile, or when the chat is
/// no longer `waiting` then (it moved on; the label would describe a state it left).
pub(crate) fn spawn(inner: &Arc<Inner>, chat_id: Uuid) {
    let ticket = {
        let mut scheduled = super::lock(&inner.summaries);
        let next = scheduled.get(&chat_id).map_or(0, |n| n.wrapping_add(1));
        scheduled.insert(chat_id, next);
        next
    };
    let task_inner = Arc::clone(inner);
    inner.spawn(async move {
        let delay = task_inner.settings.turn_summary_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let latest = super::lock(&task_inner.summaries).get(&chat_id) == Some(&ticket);
        if latest {
            if let Err(e) = summarize(&task_inner, chat_id).await {
                tracing::warn!(%chat_id, error = %e, "turn summary skipped: the chat could not be read or written");
            }
            let mut scheduled = super::lock(&task_inner.summaries);
            if scheduled.get(&chat_id) == Some(&ticket) {
                scheduled.remove(&chat_id);
            }
        }
    });
}

/// Generates, stores and announces the summary, then records the call's cost; store
/// failures come back, model failures clear the label.
async fn summarize(inner: &Inner, chat_id: Uuid) -> Result<()> {
    let store = &inner.store;
    // The guard's message id is read first: anything committed from here on makes the
    // write below miss.
    let Some(source) = store
        .turn_summary_source(chat_id, TURN_SUMMARY_CONTEXT_MESSAGES)
        .await?
    else {
        return Ok(());
    };
    if source.parent_chat_id.is_some() || source.status != ChatStatus::Waiting {
        return Ok(());
    }
    let (as_of, messages) = (source.as_of, source.messages);
    let call = match summary_transcript(&messages) {
        Some(transcript) => {
            let request = TurnModelRequest {
                chat_id,
                owner_id: source.owner_id,
                organization_id: source.organization_id,
                // The turn's own resolution: the newest user message's model, else the
                // chat's last.
                requested: messages
                    .iter()
                    .rev()
                    .find(|m| m.role == ChatMessageRole::User)
                    .and_then(|m| m.model_config_id),
                last: source.last_model_config_id,
                reasoning_effort: None,
            };
            generate(inner, chat_id, request, transcript).await
        }
        None => None,
    };
    let label = call.as_ref().and_then(SummaryCall::label);
    let written = store.set_turn_summary_if(chat_id, as_of, label).await;
    if matches!(written, Ok(true)) {
        inner
            .publish_watch_by_id(chat_id, ChatWatchEventKind::SummaryChange)
            .await;
    }
    // Recorded after the write (the label is shown as soon as it exists), and also when
    // the reply was unusable or the write failed: the provider bills the call either way.
    if let Some(call) = call {
        call.record(inner, chat_id).await;
    }
    written.map(|_| ())
}

/// A finished summary call: its model, its reply and when it started, for the label and
/// the cost.
struct SummaryCall {
    resolved: ResolvedModel,
    reply: QuickReply,
    started: Instant,
}

impl SummaryCall {
    /// The cleaned label; `None` when the call failed or its reply had no words.
    fn label(&self) -> Option<String> {
        self.reply.result.as_ref().ok().cloned()
    }

    /// Records the call's cost as a hidden usage row.
    async fn record(self, inner: &Inner, chat_id: Uuid) {
        let call = CallModel {
            model_config_id: Some(self.resolved.model_config_id),
            model: self.resolved.model.as_ref(),
            cost: self.resolved.cost.as_ref(),
        };
        record_call(inner, chat_id, call, &self.reply.usage, self.started).await;
    }
}

/// Asks the title model (else the turn's model) for the label; `None` when no model could
/// be had.
async fn generate(
    inner: &Inner,
    chat_id: Uuid,
    request: TurnModelRequest,
    transcript: String,
) -> Option<SummaryCall> {
    let resolved = match inner.models.title_model(request).await {
        Some(title_model) => title_model,
        None => match inner.models.resolve(request).await {
            Ok(resolved) => resolved,
            Err(e) => {
                tracing::debug!(%chat_id, error = %e.message, "turn summary skipped: no model");
                return None;
            }
        },
    };
    // Recorded as a `quickgen` debug run when debug logging is on for the owner.
    let chat = super::debug::DebugChat {
        id: chat_id,
        owner_id: request.owner_id,
        root_chat_id: None,
        parent_chat_id: None,
    };
    let kind = codersdk::ChatDebugRunKind::Quickgen;
    let links = super::debug::RunLinks::default();
    let run = super::debug::DebugRun::start(inner, kind, chat, &resolved, links).await;
    let (model, recording) = super::debug::RecordingModel::wrap(resolved.model.clone(), run);
    let started = Instant::now();
    let reply = crate::title::quick_generate(
        model.as_ref(),
        TURN_SUMMARY_SYSTEM_PROMPT,
        transcript,
        MAX_TURN_SUMMARY_WORDS,
        TURN_SUMMARY_TIMEOUT,
    )
    .await;
    if let Err(e) = &reply.result {
        tracing::debug!(%chat_id, error = %resolved.redactor.display(e), "turn summary generation failed");
    }
    if let Some(recording) = recording {
        let error = reply
            .result
            .as_ref()
            .err()
            .map(|e| codersdk::ChatError::generic(resolved.redactor.display(e).to_string()));
        recording.finish(error.as_ref()).await;
    }
    Some(SummaryCall {
        resolved,
        reply,
        started,
    })
}

/// What the summary model reads, from messages oldest first: the latest user turn
/// (`User: …`, its first [`TURN_SUMMARY_USER_MAX_RUNES`] characters) and the assistant's
/// reply after it (`Assistant: …`, its last [`TURN_SUMMARY_REPLY_MAX_RUNES`]), separated
/// by a blank line. A reply without a user turn in the window is sent alone; a user turn
/// the assistant answered without text is sent alone. `None` when neither has text.
fn summary_transcript(messages: &[ChatMessage]) -> Option<String> {
    let turns = turns(messages);
    let reply = turns.last().filter(|t| !t.user);
    let user = turns.iter().rev().find(|t| t.user);
    let mut blocks = Vec::with_capacity(2);
    if let Some(user) = user {
        blocks.push(format!(
            "User: {}",
            clip(&user.text, TURN_SUMMARY_USER_MAX_RUNES)
        ));
    }
    if let Some(reply) = reply {
        blocks.push(format!(
            "Assistant: {}",
            clip_start(&reply.text, TURN_SUMMARY_REPLY_MAX_RUNES)
        ));
    }
    (!blocks.is_empty()).then(|| blocks.join("\n\n"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use codersdk::{ChatMessagePart, Timestamp};

    use super::*;
    use crate::title::TITLE_ELLIPSIS;

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

    #[test]
    fn the_latest_user_turn_and_its_reply_are_sent() {
        let messages = vec![
            message(1, ChatMessageRole::User, "first question"),
            message(2, ChatMessageRole::Assistant, "first answer"),
            message(3, ChatMessageRole::User, "fix the build"),
            message(4, ChatMessageRole::Assistant, "running make"),
            message(5, ChatMessageRole::Tool, "make output"),
            message(6, ChatMessageRole::Assistant, "fixed; shall I push?"),
        ];
        assert_eq!(
            summary_transcript(&messages).unwrap(),
            "User: fix the build\n\nAssistant: running make\nfixed; shall I push?"
        );
    }

    #[test]
    fn a_side_without_text_is_left_out() {
        let unanswered = vec![
            message(1, ChatMessageRole::User, "hello"),
            message(2, ChatMessageRole::Assistant, "   "),
        ];
        assert_eq!(summary_transcript(&unanswered).unwrap(), "User: hello");
        let reply_only = vec![message(7, ChatMessageRole::Assistant, "done")];
        assert_eq!(summary_transcript(&reply_only).unwrap(), "Assistant: done");
        assert_eq!(summary_transcript(&[]), None);
    }

    #[test]
    fn the_question_keeps_its_start_and_the_reply_its_end() {
        let question = format!("Q{}", "q".repeat(TURN_SUMMARY_USER_MAX_RUNES + 10));
        let reply = format!("{}END", "r".repeat(TURN_SUMMARY_REPLY_MAX_RUNES + 10));
        let t = summary_transcript(&[
            message(1, ChatMessageRole::User, &question),
            message(2, ChatMessageRole::Assistant, &reply),
        ])
        .unwrap();
        let (user, assistant) = t.split_once("\n\n").unwrap();
        let user = user.strip_prefix("User: ").unwrap();
        let assistant = assistant.strip_prefix("Assistant: ").unwrap();
        assert_eq!(user.chars().count(), TURN_SUMMARY_USER_MAX_RUNES);
        assert!(user.starts_with('Q') && user.ends_with(TITLE_ELLIPSIS));
        assert_eq!(assistant.chars().count(), TURN_SUMMARY_REPLY_MAX_RUNES);
        assert!(assistant.starts_with(TITLE_ELLIPSIS) && assistant.ends_with("END"));
        // At the caps, nothing is cut.
        let exact = "é".repeat(TURN_SUMMARY_REPLY_MAX_RUNES);
        let t = summary_transcript(&[message(1, ChatMessageRole::Assistant, &exact)]).unwrap();
        assert_eq!(t, format!("Assistant: {exact}"));
    }

    #[test]
    fn the_prompt_asks_for_no_more_words_than_are_kept() {
        assert!(
            TURN_SUMMARY_SYSTEM_PROMPT.contains(&format!("2 to {MAX_TURN_SUMMARY_WORDS} words"))
        );
    }
}
