//! [`Transition`]: what one committed transaction did to one chat. Every state-changing
//! store write (send, promote, interrupt, edit, tool results, archive, step, finish,
//! recovery, release) returns one, built inside the transaction from what it read under
//! the chat lock and what it wrote; the engine turns it into stream events, watch events
//! and wake-ups in one place, in the order docs/engine-design.md ("Commit, then publish")
//! documents.

use codersdk::{
    ChatError, ChatMessage, ChatMessageRole, ChatQueuedMessage, ChatStatus, ChatStreamToolCall,
    ChatWatchEventKind, Uuid,
};

use super::Lease;

/// What one committed transaction did to one chat: the facts the engine publishes.
///
/// A transition that wrote nothing (an interrupt of an idle chat, the finish of a lost
/// lease) has `status_set == false` and nothing else set, and publishes nothing
/// ([`Transition::changed`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Transition {
    /// The chat.
    pub chat_id: Uuid,
    /// The status read under the chat lock before the write.
    pub previous_status: ChatStatus,
    /// The status after the commit.
    pub status: ChatStatus,
    /// Whether the transaction wrote the chat's status, also when it wrote the value the
    /// chat had (an edit of a `pending` chat; an interrupt of a `pending` chat whose queue
    /// head it promoted): the engine then announces `status`.
    pub status_set: bool,
    /// The lease of the running turn this transaction ended: the chat was `running` under
    /// it and is no longer. That turn's worker must stop, keeping its partial step when
    /// `status` is `waiting` (interrupt, archive) and discarding it otherwise (edit,
    /// promote, recovery). Never the lease of the worker that wrote (its finish or step),
    /// and never set for a chat that was not running: a send to an idle chat supersedes
    /// nothing, even when a worker claims the chat before the send is published.
    pub ended_turn: Option<Lease>,
    /// Whether the preview of the turn in flight (its buffered parts) is void: a
    /// persisted step's messages supersede it, an edit discards it.
    pub preview_reset: bool,
    /// The messages committed, in id order: a step's assistant and tool messages,
    /// synthetic or submitted tool results, then the user message inserted, promoted from
    /// the queue or written by an edit.
    pub messages: Vec<ChatMessage>,
    /// The whole queue after the commit, oldest first, when the transaction changed it
    /// (the `queue_update` payload); `None` when the queue was left as it was.
    pub queue: Option<Vec<ChatQueuedMessage>>,
    /// The `last_error` the transaction set (the chat is now `error`).
    pub error: Option<ChatError>,
    /// The client-executed tool calls the chat now waits for (it is now
    /// `requires_action`).
    pub action_required: Option<Vec<ChatStreamToolCall>>,
    /// A chat-list watch event beside `status_change`: `deleted` for a chat archived,
    /// `created` for one unarchived.
    pub watch: Option<ChatWatchEventKind>,
}

impl Transition {
    /// A transition of `chat_id`, found `status`, that has written nothing yet.
    pub(crate) fn unchanged(chat_id: Uuid, status: ChatStatus) -> Self {
        Transition {
            chat_id,
            previous_status: status.clone(),
            status,
            status_set: false,
            ended_turn: None,
            preview_reset: false,
            messages: Vec::new(),
            queue: None,
            error: None,
            action_required: None,
            watch: None,
        }
    }

    /// Records that the transaction wrote `status`.
    pub(crate) fn set_status(&mut self, status: ChatStatus) {
        self.status = status;
        self.status_set = true;
    }

    /// Whether the transaction wrote anything the engine publishes.
    pub fn changed(&self) -> bool {
        self.status_set
            || self.preview_reset
            || !self.messages.is_empty()
            || self.queue.is_some()
            || self.watch.is_some()
    }

    /// Whether the chat is now `pending` by this transaction's write, so the run loop
    /// should look for work at once.
    pub fn wakes(&self) -> bool {
        self.status_set && self.status == ChatStatus::Pending
    }

    /// The `tool` messages committed (synthetic, submitted or a step's results), in id
    /// order.
    pub fn tool_results(&self) -> Vec<ChatMessage> {
        self.messages
            .iter()
            .filter(|m| m.role == ChatMessageRole::Tool)
            .cloned()
            .collect()
    }

    /// The user message committed: inserted by a send, promoted from the queue, or the
    /// replacement an edit wrote.
    pub fn user_message(&self) -> Option<&ChatMessage> {
        self.messages
            .iter()
            .find(|m| m.role == ChatMessageRole::User)
    }
}
