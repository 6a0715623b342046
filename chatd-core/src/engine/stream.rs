//! Subscribing to a chat and watching a user's chats.

use std::collections::VecDeque;
use std::sync::Arc;

use codersdk::{ChatStatus, ChatStreamEvent, ChatStreamEventType, Uuid};

use super::ops::Access;
use super::{Actor, Engine};
use crate::error::Result;
use crate::hub::{HubEvent, HubReceiver, RecvError, WatchSubscription};

/// A chat's event stream: the snapshot, then live events.
///
/// The snapshot is, in order: a `status` event, a `retry` event while the worker is
/// backing off, the buffered `message_part` events of the step in flight, `message` events
/// for the user-visible messages after `after_id`, an `action_required` event while the
/// chat waits for client tool results, and a `queue_update` when the queue is not empty.
/// Live `message` events the snapshot already delivered are skipped, so each message
/// arrives once, in id order.
#[derive(Debug)]
pub struct ChatStream {
    snapshot: VecDeque<Arc<HubEvent<ChatStreamEvent>>>,
    live: HubReceiver<ChatStreamEvent>,
    last_message_id: i64,
}

impl ChatStream {
    /// The next event: snapshot events first, then live ones. `Err(RecvError::Lagged)`
    /// when this subscriber fell too far behind and was dropped (resubscribe with the last
    /// message id seen); `Err(RecvError::Closed)` when the engine is gone.
    pub async fn next(&mut self) -> std::result::Result<Arc<HubEvent<ChatStreamEvent>>, RecvError> {
        if let Some(event) = self.snapshot.pop_front() {
            return Ok(event);
        }
        loop {
            let event = self.live.recv().await?;
            if let Some(message) = &event.message {
                if event.event_type == ChatStreamEventType::Message {
                    if message.id <= self.last_message_id {
                        continue;
                    }
                    self.last_message_id = message.id;
                }
            }
            return Ok(event);
        }
    }

    /// The snapshot events not yet taken by [`ChatStream::next`].
    pub fn pending_snapshot(&self) -> usize {
        self.snapshot.len()
    }
}

impl Engine {
    /// Subscribes to a chat's events: registers for live events first,
    /// then reads the database, so nothing committed in between is lost.
    pub async fn subscribe(
        &self,
        actor: &Actor,
        chat_id: Uuid,
        after_id: Option<i64>,
    ) -> Result<ChatStream> {
        self.authorized_chat(actor, chat_id, Access::Read).await?;
        let inner = &self.inner;
        // Another replica runs the chat and this one joined mid-turn: get the step's parts
        // first, so the snapshot below has them.
        inner.complete_mirror(chat_id).await;
        let subscription = inner.hub.subscribe(chat_id)?;
        let (memory, live) = subscription.into_parts();
        let chat = inner
            .store
            .get_chat(chat_id)
            .await?
            .ok_or_else(|| crate::store::chat_not_found(chat_id))?;
        let messages = inner
            .store
            .messages_after(chat_id, after_id.unwrap_or(0))
            .await?;
        let queue = inner.store.list_queue(chat_id).await?;
        let pending_calls = if chat.status == ChatStatus::RequiresAction {
            inner.store.pending_tool_calls(chat_id).await?
        } else {
            Vec::new()
        };

        let mut snapshot = VecDeque::new();
        snapshot.push_back(Arc::new(HubEvent::new(ChatStreamEvent::status(
            chat_id,
            chat.status.clone(),
        ))));
        if chat.status == ChatStatus::Running {
            if let Some(retry) = memory.retry {
                snapshot.push_back(Arc::new(HubEvent::new(ChatStreamEvent::retry(
                    chat_id, retry,
                ))));
            }
            snapshot.extend(memory.parts);
        }
        let last_message_id = messages.last().map_or(after_id.unwrap_or(0), |m| m.id);
        inner.note_read(chat_id, last_message_id);
        snapshot.extend(
            messages
                .into_iter()
                .map(|m| Arc::new(HubEvent::new(ChatStreamEvent::message(chat_id, m)))),
        );
        if !pending_calls.is_empty() {
            snapshot.push_back(Arc::new(HubEvent::new(ChatStreamEvent::action_required(
                chat_id,
                pending_calls,
            ))));
        }
        if !queue.is_empty() {
            snapshot.push_back(Arc::new(HubEvent::new(ChatStreamEvent::queue_update(
                chat_id, queue,
            ))));
        }
        Ok(ChatStream {
            snapshot,
            live,
            last_message_id,
        })
    }

    /// Watches the actor's own chats.
    pub fn watch(&self, actor: &Actor) -> Result<WatchSubscription> {
        self.inner.hub.watch(actor.user_id)
    }
}
