//! Streaming: per-chat [`ChatStreamEvent`]s and chat-list [`ChatWatchEvent`]s.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::macros::string_enum;
use crate::{
    Chat, ChatError, ChatMessage, ChatMessagePart, ChatMessageRole, ChatQueuedMessage, ChatStatus,
    ChatStreamRetry, ChatStreamToolCall,
};

/// Most events in one per-chat stream WebSocket frame (each frame is a JSON array).
pub const MAX_STREAM_EVENTS_PER_FRAME: usize = 256;

string_enum! {
    /// Type of a [`ChatStreamEvent`].
    pub enum ChatStreamEventType {
        /// A streamed part of the in-progress step.
        MessagePart = "message_part",
        /// A persisted message (supersedes the streamed parts).
        Message = "message",
        /// A status change.
        Status = "status",
        /// The turn failed.
        Error = "error",
        /// The queue changed (an empty list means it was cleared).
        QueueUpdate = "queue_update",
        /// A model call failed and will be retried.
        Retry = "retry",
        /// Dynamic tool calls wait for the client.
        ActionRequired = "action_required",
    }
}

/// Payload of a `message_part` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ChatStreamMessagePart {
    /// Role of the message being built (`tool` for tool results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub role: Option<ChatMessageRole>,
    /// The part; `text` holds the delta.
    pub part: ChatMessagePart,
}

/// Payload of a `status` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChatStreamStatus {
    /// The new status.
    pub status: ChatStatus,
}

/// Payload of an `action_required` event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct ChatStreamActionRequired {
    /// The calls the client must answer. Never null.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub tool_calls: Vec<ChatStreamToolCall>,
}

/// One event of the per-chat stream. Exactly one payload field is set, matching `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ChatStreamEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: ChatStreamEventType,
    /// The chat.
    pub chat_id: Uuid,
    /// For `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub message: Option<ChatMessage>,
    /// For `message_part`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub message_part: Option<ChatStreamMessagePart>,
    /// For `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub status: Option<ChatStreamStatus>,
    /// For `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<ChatError>,
    /// For `retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub retry: Option<ChatStreamRetry>,
    /// For `queue_update`: the whole queue (empty = cleared; always written for this type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub queued_messages: Option<Vec<ChatQueuedMessage>>,
    /// For `action_required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub action_required: Option<ChatStreamActionRequired>,
}

impl ChatStreamEvent {
    fn empty(event_type: ChatStreamEventType, chat_id: Uuid) -> Self {
        ChatStreamEvent {
            event_type,
            chat_id,
            message: None,
            message_part: None,
            status: None,
            error: None,
            retry: None,
            queued_messages: None,
            action_required: None,
        }
    }

    /// A `message_part` event.
    pub fn message_part(
        chat_id: Uuid,
        role: Option<ChatMessageRole>,
        part: ChatMessagePart,
    ) -> Self {
        ChatStreamEvent {
            message_part: Some(ChatStreamMessagePart { role, part }),
            ..Self::empty(ChatStreamEventType::MessagePart, chat_id)
        }
    }

    /// A `message` event.
    pub fn message(chat_id: Uuid, message: ChatMessage) -> Self {
        ChatStreamEvent {
            message: Some(message),
            ..Self::empty(ChatStreamEventType::Message, chat_id)
        }
    }

    /// A `status` event.
    pub fn status(chat_id: Uuid, status: ChatStatus) -> Self {
        ChatStreamEvent {
            status: Some(ChatStreamStatus { status }),
            ..Self::empty(ChatStreamEventType::Status, chat_id)
        }
    }

    /// An `error` event.
    pub fn error(chat_id: Uuid, error: ChatError) -> Self {
        ChatStreamEvent {
            error: Some(error),
            ..Self::empty(ChatStreamEventType::Error, chat_id)
        }
    }

    /// A `retry` event.
    pub fn retry(chat_id: Uuid, retry: ChatStreamRetry) -> Self {
        ChatStreamEvent {
            retry: Some(retry),
            ..Self::empty(ChatStreamEventType::Retry, chat_id)
        }
    }

    /// A `queue_update` event carrying the whole queue.
    pub fn queue_update(chat_id: Uuid, queue: Vec<ChatQueuedMessage>) -> Self {
        ChatStreamEvent {
            queued_messages: Some(queue),
            ..Self::empty(ChatStreamEventType::QueueUpdate, chat_id)
        }
    }

    /// An `action_required` event.
    pub fn action_required(chat_id: Uuid, tool_calls: Vec<ChatStreamToolCall>) -> Self {
        ChatStreamEvent {
            action_required: Some(ChatStreamActionRequired { tool_calls }),
            ..Self::empty(ChatStreamEventType::ActionRequired, chat_id)
        }
    }
}

string_enum! {
    /// Kind of a [`ChatWatchEvent`].
    pub enum ChatWatchEventKind {
        /// A chat's status changed.
        StatusChange = "status_change",
        /// A chat's turn summary changed.
        SummaryChange = "summary_change",
        /// A chat's title changed.
        TitleChange = "title_change",
        /// A chat was created (or unarchived).
        Created = "created",
        /// A chat was archived (the only removal event).
        Deleted = "deleted",
        /// A chat's diff status changed.
        DiffStatusChange = "diff_status_change",
        /// A chat waits for dynamic tool results.
        ActionRequired = "action_required",
    }
}

/// One event of the chat-list watch stream (one per WebSocket frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ChatWatchEvent {
    /// What happened.
    pub kind: ChatWatchEventKind,
    /// The chat after the change (without `files`).
    pub chat: Chat,
    /// For `action_required`: the pending calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub tool_calls: Option<Vec<ChatStreamToolCall>>,
}
