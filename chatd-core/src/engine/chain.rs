//! OpenAI Responses chaining (docs/engine-design.md, "OpenAI Responses chaining"): a step
//! of a model that stores its responses continues from the last stored response
//! (`previous_response_id`) and sends only what came after it, instead of replaying the
//! whole history.
//!
//! # The decision
//!
//! [`decide`] is a pure function over the model-visible history. The *anchor* is the last
//! assistant message, provided only user and tool messages follow it ([`anchor`]). A step
//! is chained when **all** of these hold (numbered as in engine.md §11); otherwise it
//! replays the whole history without a `previous_response_id`, and [`FullReplay`] says
//! which condition failed:
//!
//! 1. the model stores its responses (OpenAI Responses with `store = true`): only then was
//!    an id saved, and only then can the provider resolve it ([`FullReplay::NotStored`]);
//! 2. there is an anchor ([`FullReplay::NoAnchor`]) and it has a saved response id
//!    ([`FullReplay::NoResponseId`]; an interrupted step saves none);
//! 3. the messages after the anchor carry something the model can read
//!    ([`FullReplay::NothingNew`]): a chained request continues with its input, and an
//!    empty one would give the model nothing to answer;
//! 4. the anchor was answered by the model config of this turn: a stored response lives
//!    with one provider account and one model, and a switched model must read the
//!    conversation itself ([`FullReplay::ModelChanged`]);
//! 5. the chat is not in plan mode ([`FullReplay::PlanMode`]): a plan turn has its own
//!    system prompt and tool set, and the reference replays its history in full rather
//!    than continue a conversation stored under other instructions and tools;
//! 6. every local (not provider-executed) tool call of the anchor has a result after it
//!    ([`FullReplay::UnresolvedToolCall`]): the provider refuses to continue a response
//!    whose function calls are left unanswered.
//!
//! The flags (1, 5) are checked first, then the anchor (2), its model (4), what follows it
//! (3, 6); the first failure is the reason reported. [`step_mode`] reads the anchor's id
//! from the store only when the flags allow chaining.
//!
//! In chain mode the request carries `previous_response_id` = the anchor's id and, beside
//! the system blocks (which the Responses client sends as `instructions`, never stored with
//! a response, so they travel with every request), only the messages after the anchor.
//!
//! # After a chained step
//!
//! The reference loop leaves its step loop after the first chained step, reloads the
//! history from the database and decides the chain again, now from the response just
//! saved. The turn does the same without leaving its loop: after a chained step it reloads
//! the prompt history from the store instead of appending the step's messages, and the next
//! step's decision reads the new anchor's id from the store. The chain is only sound if the
//! provider's stored conversation is exactly the stored history, so the next link is made
//! from the durable history rather than from a copy held across the step.
//!
//! # A broken chain
//!
//! The provider may no longer have the anchor's response (it expired, was deleted, or the
//! key now belongs to another project): it answers 400 "Previous response with id … not
//! found", which `chaterror` classifies with [`is_chain_broken`]. The step is then sent
//! again at once as a full replay ([`StepRequest::fall_back`]): once, without a `retry`
//! event and without counting as a retry attempt. If that fails too, the normal retry
//! policy handles the failure, and every later attempt of the step replays in full.
//!
//! [`is_chain_broken`]: chaterror::ClassifiedError::is_chain_broken

use std::sync::atomic::{AtomicBool, Ordering};

use chatprovider::{Message, ModelRequest};
use codersdk::{ChatMessage, ChatMessagePartType, ChatMessageRole, ChatPlanMode, Uuid};

use super::models::ResolvedModel;
use crate::store::Store;

/// Why a step replays the whole history instead of chaining: the first condition of the
/// module's list that failed first, in the order checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FullReplay {
    /// The model does not store its responses (condition 1).
    NotStored,
    /// The chat is in plan mode (condition 5).
    PlanMode,
    /// No assistant message, or the last one is followed by something other than user
    /// and tool messages (condition 2).
    NoAnchor,
    /// The anchor has no saved response id (condition 2).
    NoResponseId,
    /// The anchor was answered by another model config (condition 4).
    ModelChanged,
    /// Nothing after the anchor would reach the model (condition 3).
    NothingNew,
    /// A local tool call of the anchor has no result after it (condition 6).
    UnresolvedToolCall,
}

/// How one step sends the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainMode {
    /// Continue from the stored response `previous_response_id`, sending the history from
    /// index `tail_start` on (the messages after the anchor).
    Chained {
        /// The anchor's saved response id.
        previous_response_id: String,
        /// Index of the first history message after the anchor.
        tail_start: usize,
    },
    /// Send the whole history.
    Full(FullReplay),
}

impl ChainMode {
    /// Index of the first history message the step sends: after the anchor when chained,
    /// else the start of the history.
    pub(crate) fn tail_start(&self) -> usize {
        match self {
            ChainMode::Chained { tail_start, .. } => *tail_start,
            ChainMode::Full(_) => 0,
        }
    }

    /// The `previous_response_id` of the step's request: the anchor's id when chained,
    /// none for a full replay.
    pub(crate) fn previous_response_id(&self) -> Option<String> {
        match self {
            ChainMode::Chained {
                previous_response_id,
                ..
            } => Some(previous_response_id.clone()),
            ChainMode::Full(_) => None,
        }
    }

    /// The history split into what the provider already holds (empty for a full replay)
    /// and what the step sends.
    pub(crate) fn split<'h>(
        &self,
        history: &'h [ChatMessage],
    ) -> (&'h [ChatMessage], &'h [ChatMessage]) {
        history.split_at(self.tail_start().min(history.len()))
    }
}

/// What [`decide`] knows besides the history.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainFacts<'a> {
    /// The turn's model stores its responses ([`ResolvedModel::store_response_id`]).
    pub(crate) stores_responses: bool,
    /// The chat is in plan mode.
    pub(crate) plan_mode: bool,
    /// The model config the turn runs with.
    pub(crate) model_config_id: Uuid,
    /// The saved response id of the history's [`anchor`], if it has one.
    pub(crate) anchor_response_id: Option<&'a str>,
}

/// Index of the anchor of `history`: its last assistant message, when only user and tool
/// messages follow it. `None` without an assistant message, or when anything else (a
/// system message) follows the last one: the provider's stored conversation could not
/// hold it.
pub(crate) fn anchor(history: &[ChatMessage]) -> Option<usize> {
    let index = history
        .iter()
        .rposition(|m| m.role == ChatMessageRole::Assistant)?;
    let after = history.get(index.saturating_add(1)..)?;
    after
        .iter()
        .all(|m| matches!(m.role, ChatMessageRole::User | ChatMessageRole::Tool))
        .then_some(index)
}

/// The chain mode of a step over `history` (conditions and their order in the module
/// docs).
pub(crate) fn decide(history: &[ChatMessage], facts: &ChainFacts<'_>) -> ChainMode {
    if !facts.stores_responses {
        return ChainMode::Full(FullReplay::NotStored);
    }
    if facts.plan_mode {
        return ChainMode::Full(FullReplay::PlanMode);
    }
    let Some(index) = anchor(history) else {
        return ChainMode::Full(FullReplay::NoAnchor);
    };
    let Some(anchor_message) = history.get(index) else {
        return ChainMode::Full(FullReplay::NoAnchor);
    };
    let Some(response_id) = facts
        .anchor_response_id
        .map(str::trim)
        .filter(|id| !id.is_empty())
    else {
        return ChainMode::Full(FullReplay::NoResponseId);
    };
    if anchor_message.model_config_id != Some(facts.model_config_id) {
        return ChainMode::Full(FullReplay::ModelChanged);
    }
    let tail_start = index.saturating_add(1);
    let tail = history.get(tail_start..).unwrap_or_default();
    if !tail.iter().any(reaches_model) {
        return ChainMode::Full(FullReplay::NothingNew);
    }
    if has_unresolved_local_calls(anchor_message, tail) {
        return ChainMode::Full(FullReplay::UnresolvedToolCall);
    }
    ChainMode::Chained {
        previous_response_id: response_id.to_owned(),
        tail_start,
    }
}

/// Whether `message` puts anything in a request: what the request conversion keeps, or an
/// uploaded file (the turn loads its bytes, or says it is gone).
fn reaches_model(message: &ChatMessage) -> bool {
    chatprovider::message_from_parts(&message.role, &message.content).is_some()
        || message.content.iter().any(|p| {
            p.part_type == ChatMessagePartType::File && p.file_id.is_some() && p.data.is_empty()
        })
}

/// Whether a local tool call of `anchor` has no result among `after`.
fn has_unresolved_local_calls(anchor: &ChatMessage, after: &[ChatMessage]) -> bool {
    anchor
        .content
        .iter()
        .filter(|p| p.part_type == ChatMessagePartType::ToolCall && !p.provider_executed)
        .any(|call| {
            !after.iter().flat_map(|m| &m.content).any(|p| {
                p.part_type == ChatMessagePartType::ToolResult
                    && p.tool_call_id == call.tool_call_id
            })
        })
}

/// The chain mode of the next step of a turn of `chat` with `resolved`: [`decide`], with
/// the anchor's response id read from the store when the other conditions leave a chance
/// to chain.
pub(super) async fn step_mode(
    store: &Store,
    chat: &codersdk::Chat,
    resolved: &ResolvedModel,
    history: &[ChatMessage],
) -> crate::Result<ChainMode> {
    let plan_mode = chat.plan_mode == Some(ChatPlanMode::Plan);
    let candidate = anchor(history)
        .and_then(|i| history.get(i))
        .filter(|_| resolved.store_response_id && !plan_mode);
    let anchor_response_id = match candidate {
        Some(message) => store.provider_response_id(chat.id, message.id).await?,
        None => None,
    };
    let mode = decide(
        history,
        &ChainFacts {
            stores_responses: resolved.store_response_id,
            plan_mode,
            model_config_id: resolved.model_config_id,
            anchor_response_id: anchor_response_id.as_deref(),
        },
    );
    if let ChainMode::Full(reason) = &mode {
        if resolved.store_response_id {
            tracing::debug!(chat_id = %chat.id, ?reason, "step replays the whole history");
        }
    }
    Ok(mode)
}

/// The request of one step: the form its first attempt sends (chained or full), and the
/// full replay a broken chain falls back to.
#[derive(Debug)]
pub(super) struct StepRequest {
    /// The first attempts' request; chained when its `previous_response_id` is set.
    first: ModelRequest,
    /// The whole history, no `previous_response_id`; `None` when `first` is already that.
    full: Option<ModelRequest>,
    /// A chained attempt failed with a broken chain: every later attempt replays.
    fell_back: AtomicBool,
}

impl StepRequest {
    /// The step's request: `request` carries the step's [`ChainMode`] (its messages are
    /// the history from [`ChainMode::tail_start`] on, its `previous_response_id` the
    /// mode's); `held` are the converted messages before the tail, which only the full
    /// replay sends.
    pub(super) fn new(request: ModelRequest, held: Vec<Message>) -> Self {
        let full = request.previous_response_id.is_some().then(|| {
            let mut messages = held;
            messages.extend(request.messages.iter().cloned());
            ModelRequest {
                messages,
                previous_response_id: None,
                ..request.clone()
            }
        });
        StepRequest {
            first: request,
            full,
            fell_back: AtomicBool::new(false),
        }
    }

    /// Whether the step started chained (its history is reloaded after it).
    pub(super) fn is_chained(&self) -> bool {
        self.full.is_some()
    }

    /// What the next attempt sends: the chained form until the chain broke, then the
    /// full replay.
    pub(super) fn attempt(&self) -> ModelRequest {
        match &self.full {
            Some(full) if self.fell_back.load(Ordering::Acquire) => full.clone(),
            _ => self.first.clone(),
        }
    }

    /// The full replay of the step, once a chained attempt failed with `err`, when `err`
    /// says the chain is broken and the step has not fallen back before; `None` otherwise
    /// (the error goes to the retry policy). The provider refuses an unknown
    /// `previous_response_id` before it streams anything, so nothing of the failed attempt
    /// was published and the replay needs no `retry` event to clear a preview.
    pub(super) fn fall_back(
        &self,
        chat_id: Uuid,
        err: &chaterror::ProviderError,
    ) -> Option<ModelRequest> {
        let full = self.full.as_ref()?;
        if !chaterror::classify(err).is_chain_broken()
            || self.fell_back.swap(true, Ordering::AcqRel)
        {
            return None;
        }
        tracing::info!(
            %chat_id,
            previous_response_id = self.first.previous_response_id.as_deref().unwrap_or_default(),
            "the provider no longer has the chained response; replaying the whole history"
        );
        Some(full.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use codersdk::{ChatMessagePart, RawJson, Timestamp};

    fn model() -> Uuid {
        Uuid::from_u128(7)
    }

    fn message(id: i64, role: ChatMessageRole, content: Vec<ChatMessagePart>) -> ChatMessage {
        ChatMessage {
            id,
            chat_id: Uuid::from_u128(1),
            created_by: None,
            model_config_id: Some(model()),
            created_at: Timestamp(chrono::DateTime::UNIX_EPOCH),
            role,
            content,
            usage: None,
            total_cost_micros: None,
        }
    }

    fn user(id: i64, text: &str) -> ChatMessage {
        message(id, ChatMessageRole::User, vec![ChatMessagePart::text(text)])
    }

    fn assistant(id: i64, content: Vec<ChatMessagePart>) -> ChatMessage {
        message(id, ChatMessageRole::Assistant, content)
    }

    fn call(id: &str) -> ChatMessagePart {
        ChatMessagePart::tool_call(id, "echo", RawJson::empty_object())
    }

    fn result(id: &str) -> ChatMessage {
        message(
            0,
            ChatMessageRole::Tool,
            vec![ChatMessagePart::tool_result(
                id,
                "echo",
                RawJson::empty_object(),
                false,
            )],
        )
    }

    fn facts(anchor_response_id: Option<&str>) -> ChainFacts<'_> {
        ChainFacts {
            stores_responses: true,
            plan_mode: false,
            model_config_id: model(),
            anchor_response_id,
        }
    }

    /// A second turn: question, answer (the anchor), new question.
    fn second_turn() -> Vec<ChatMessage> {
        vec![
            user(1, "first"),
            assistant(2, vec![ChatMessagePart::text("answer")]),
            user(3, "second"),
        ]
    }

    #[test]
    fn a_second_turn_chains_off_the_answer_and_sends_only_the_new_message() {
        let history = second_turn();
        let mode = decide(&history, &facts(Some("resp_1")));
        assert_eq!(
            mode,
            ChainMode::Chained {
                previous_response_id: "resp_1".into(),
                tail_start: 2
            }
        );
        let (held, sent) = mode.split(&history);
        assert_eq!(held.len(), 2);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].id, 3);
        assert_eq!(mode.previous_response_id().as_deref(), Some("resp_1"));
    }

    #[test]
    fn condition_1_a_model_that_does_not_store_replays() {
        let mut f = facts(Some("resp_1"));
        f.stores_responses = false;
        assert_eq!(
            decide(&second_turn(), &f),
            ChainMode::Full(FullReplay::NotStored)
        );
    }

    #[test]
    fn condition_5_plan_mode_replays() {
        let mut f = facts(Some("resp_1"));
        f.plan_mode = true;
        assert_eq!(
            decide(&second_turn(), &f),
            ChainMode::Full(FullReplay::PlanMode)
        );
    }

    #[test]
    fn condition_2_an_anchor_with_a_response_id_is_needed() {
        // No assistant message at all: the chat's first turn.
        let first = vec![user(1, "hello")];
        assert_eq!(anchor(&first), None);
        assert_eq!(
            decide(&first, &facts(Some("resp_1"))),
            ChainMode::Full(FullReplay::NoAnchor)
        );
        // The last assistant message is followed by a system message.
        let mut history = second_turn();
        history.push(message(
            4,
            ChatMessageRole::System,
            vec![ChatMessagePart::text("summary")],
        ));
        assert_eq!(anchor(&history), None);
        assert_eq!(
            decide(&history, &facts(Some("resp_1"))),
            ChainMode::Full(FullReplay::NoAnchor)
        );
        // The anchor is the last assistant message, not an earlier one.
        let mut history = second_turn();
        history.push(assistant(4, vec![ChatMessagePart::text("again")]));
        history.push(user(5, "third"));
        assert_eq!(anchor(&history), Some(3));
        // No saved id (an interrupted step), or a blank one.
        for id in [None, Some(""), Some("  ")] {
            assert_eq!(
                decide(&second_turn(), &facts(id)),
                ChainMode::Full(FullReplay::NoResponseId),
                "{id:?}"
            );
        }
    }

    #[test]
    fn condition_4_a_switched_model_replays() {
        let mut f = facts(Some("resp_1"));
        f.model_config_id = Uuid::from_u128(8);
        assert_eq!(
            decide(&second_turn(), &f),
            ChainMode::Full(FullReplay::ModelChanged)
        );
        // An anchor without a model config cannot be matched either.
        let mut history = second_turn();
        history[1].model_config_id = None;
        assert_eq!(
            decide(&history, &facts(Some("resp_1"))),
            ChainMode::Full(FullReplay::ModelChanged)
        );
    }

    #[test]
    fn condition_3_nothing_new_after_the_anchor_replays() {
        // The history ends with the anchor.
        let mut history = second_turn();
        history.pop();
        assert_eq!(
            decide(&history, &facts(Some("resp_1"))),
            ChainMode::Full(FullReplay::NothingNew)
        );
        // Only a user message the conversion drops (empty text).
        history.push(user(3, ""));
        assert_eq!(
            decide(&history, &facts(Some("resp_1"))),
            ChainMode::Full(FullReplay::NothingNew)
        );
        // An uploaded file counts: the turn loads it (or says it is gone).
        history.push(message(
            4,
            ChatMessageRole::User,
            vec![ChatMessagePart::file(Uuid::from_u128(9), "image/png")],
        ));
        assert!(matches!(
            decide(&history, &facts(Some("resp_1"))),
            ChainMode::Chained { tail_start: 2, .. }
        ));
    }

    #[test]
    fn condition_6_unresolved_local_calls_replay() {
        let anchor = assistant(2, vec![call("a"), call("b")]);
        // One of two results.
        let history = vec![user(1, "go"), anchor.clone(), result("a")];
        assert_eq!(
            decide(&history, &facts(Some("resp_1"))),
            ChainMode::Full(FullReplay::UnresolvedToolCall)
        );
        // Both: the step after a tool step chains, sending only the results.
        let history = vec![user(1, "go"), anchor, result("a"), result("b")];
        let mode = decide(&history, &facts(Some("resp_1")));
        assert_eq!(mode.tail_start(), 2);
        assert_eq!(mode.split(&history).1.len(), 2);
        // A provider-executed call is answered inline: no result is expected after it.
        let mut web = call("w");
        web.provider_executed = true;
        let history = vec![
            user(1, "go"),
            assistant(2, vec![web, call("a")]),
            result("a"),
        ];
        assert!(matches!(
            decide(&history, &facts(Some("resp_1"))),
            ChainMode::Chained { .. }
        ));
        // A result for another call does not answer it.
        let history = vec![user(1, "go"), assistant(2, vec![call("a")]), result("z")];
        assert_eq!(
            decide(&history, &facts(Some("resp_1"))),
            ChainMode::Full(FullReplay::UnresolvedToolCall)
        );
    }

    #[test]
    fn the_conditions_are_checked_in_order() {
        // Every condition fails; the first one is reported.
        let history = vec![user(1, "only")];
        let f = ChainFacts {
            stores_responses: false,
            plan_mode: true,
            model_config_id: Uuid::from_u128(8),
            anchor_response_id: None,
        };
        assert_eq!(decide(&history, &f), ChainMode::Full(FullReplay::NotStored));
        let f = ChainFacts {
            stores_responses: true,
            ..f
        };
        assert_eq!(decide(&history, &f), ChainMode::Full(FullReplay::PlanMode));
    }

    #[test]
    fn a_full_replay_sends_everything() {
        let history = second_turn();
        let mode = decide(&history, &facts(None));
        assert_eq!(mode.tail_start(), 0);
        assert_eq!(mode.previous_response_id(), None);
        let (held, sent) = mode.split(&history);
        assert!(held.is_empty());
        assert_eq!(sent.len(), 3);
    }

    fn text(t: &str) -> Message {
        chatprovider::message_from_parts(&ChatMessageRole::User, &[ChatMessagePart::text(t)])
            .unwrap()
    }

    fn broken() -> chaterror::ProviderError {
        chaterror::ProviderError::new("openai API error: 400 Bad Request")
            .with_status(400)
            .with_provider("openai")
            .with_body(
                br#"{"error":{"message":"Previous response with id 'resp_1' not found.","type":"invalid_request_error","param":"previous_response_id","code":"previous_response_not_found"}}"#
                    .to_vec(),
            )
    }

    #[test]
    fn a_chained_step_falls_back_to_a_full_replay_once() {
        let chained = ModelRequest {
            system: vec!["system".into()],
            messages: vec![text("new")],
            previous_response_id: Some("resp_1".into()),
            ..ModelRequest::default()
        };
        let step = StepRequest::new(chained.clone(), vec![text("old")]);
        assert!(step.is_chained());
        assert_eq!(step.attempt(), chained);
        // Another failure is the retry policy's.
        let other = chaterror::ProviderError::new("server error").with_status(500);
        assert!(step.fall_back(Uuid::nil(), &other).is_none());
        assert_eq!(step.attempt(), chained);
        // A broken chain: the whole history, no previous id, the system blocks kept.
        let full = step.fall_back(Uuid::nil(), &broken()).unwrap();
        assert_eq!(full.previous_response_id, None);
        assert_eq!(full.messages, vec![text("old"), text("new")]);
        assert_eq!(full.system, chained.system);
        // Once: later attempts replay, and a second broken chain is not special.
        assert!(step.fall_back(Uuid::nil(), &broken()).is_none());
        assert_eq!(step.attempt(), full);
    }

    #[test]
    fn a_full_replay_step_never_falls_back() {
        let request = ModelRequest {
            messages: vec![text("old"), text("new")],
            ..ModelRequest::default()
        };
        let step = StepRequest::new(request.clone(), Vec::new());
        assert!(!step.is_chained());
        assert!(step.fall_back(Uuid::nil(), &broken()).is_none());
        assert_eq!(step.attempt(), request);
    }
}
