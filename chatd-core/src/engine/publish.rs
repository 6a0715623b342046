//! Commit, then publish: the one place that turns what a transaction committed (a
//! [`Transition`]) into in-process control, stream events, watch events and the wake
//! signal, in the order docs/engine-design.md documents. Also the test hooks that hold
//! the engine at chosen points to force an interleaving.

use std::sync::Arc;

use codersdk::{Chat, ChatStatus, ChatStreamEvent, ChatWatchEvent, ChatWatchEventKind, Uuid};
use futures_util::future::BoxFuture;

use super::{lock, Inner, StopCause};
use crate::store::{Lease, Transition};

/// A point where an installed [`TestHook`] holds the engine. Not part of the supported
/// API: for tests that must force an interleaving (a worker claiming a chat between a
/// send's commit and its publication, a finished turn still winding down while the next
/// turn of its chat starts).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum HookPoint {
    /// A transaction of this chat committed and its publication is about to start.
    Publishing {
        /// The chat.
        chat_id: Uuid,
        /// Its status after the commit.
        status: ChatStatus,
    },
    /// This turn is about to run its finish transaction.
    Finishing(Lease),
}

/// An async callback the engine awaits at every [`HookPoint`]; see
/// [`EngineConfig::with_test_hook`](super::EngineConfig::with_test_hook). Not part of the
/// supported API.
#[doc(hidden)]
#[derive(Clone)]
pub struct TestHook(Arc<dyn Fn(HookPoint) -> BoxFuture<'static, ()> + Send + Sync>);

impl TestHook {
    /// A hook calling `f` at every point.
    pub fn new(f: impl Fn(HookPoint) -> BoxFuture<'static, ()> + Send + Sync + 'static) -> Self {
        TestHook(Arc::new(f))
    }
}

impl std::fmt::Debug for TestHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestHook")
    }
}

impl Inner {
    /// Waits for the test hook at `point`, if one is installed.
    pub(crate) async fn hook(&self, point: HookPoint) {
        if let Some(hook) = &self.hook {
            (hook.0)(point).await;
        }
    }

    /// Publishes what one committed transaction did to one chat, in this order:
    ///
    /// 1. the turn whose lease the transaction ended is stopped — that lease's turn only,
    ///    as interrupted when the chat is now `waiting` (it keeps its partial step), else
    ///    as superseded (it discards it);
    /// 2. the preview (buffered parts) is cleared when the transaction voided it;
    /// 3. `message` for each committed message, in id order;
    /// 4. `queue_update` when the queue changed;
    /// 5. `status` when the status was written;
    /// 6. `error` when the chat failed, `action_required` when it waits for client tools;
    /// 7. watch events to the owner: `status_change`, `action_required` (with the calls),
    ///    then `deleted` / `created` — the chat is read once, and only when someone
    ///    watches;
    /// 8. the wake signal when the chat is now `pending`.
    ///
    /// Messages come before the status they lead to, so a client that sees `pending`,
    /// `waiting` or `error` already has the messages that put the chat there.
    pub(crate) async fn publish(&self, t: Transition) {
        let chat_id = t.chat_id;
        let wakes = t.wakes();
        self.hook(HookPoint::Publishing {
            chat_id,
            status: t.status.clone(),
        })
        .await;
        if let Some(lease) = &t.ended_turn {
            self.stop_turn(lease, &t.status);
        }
        if t.preview_reset {
            self.clear_parts(chat_id);
        }
        for message in t.messages {
            self.emit(ChatStreamEvent::message(chat_id, message));
        }
        if let Some(queue) = t.queue {
            self.emit(ChatStreamEvent::queue_update(chat_id, queue));
        }
        if t.status_set {
            self.emit(ChatStreamEvent::status(chat_id, t.status.clone()));
        }
        if let Some(error) = t.error {
            self.emit(ChatStreamEvent::error(chat_id, error));
        }
        if let Some(calls) = &t.action_required {
            self.emit(ChatStreamEvent::action_required(chat_id, calls.clone()));
        }
        let mut watch = Vec::new();
        if t.status_set {
            watch.push((ChatWatchEventKind::StatusChange, None));
        }
        if let Some(calls) = t.action_required {
            watch.push((ChatWatchEventKind::ActionRequired, Some(calls)));
        }
        if let Some(kind) = t.watch {
            watch.push((kind, None));
        }
        if !watch.is_empty() {
            // Other replicas' watchers: a hint each, read there only if someone watches.
            for (kind, calls) in &watch {
                self.relay_watch(chat_id, kind.clone(), calls.clone());
            }
            if let Some(chat) = self.watched_chat(chat_id).await {
                for (kind, calls) in watch {
                    self.publish_watch_local(kind, chat.clone(), calls);
                }
            }
        }
        if wakes {
            self.announce_pending();
        }
    }

    /// Stops this process's turn holding `lease`, if it runs one, because a transaction
    /// took the chat from it and left it `status`. A turn of any other lease of the chat
    /// (an earlier one still winding down, or a later claim) is left alone.
    pub(crate) fn stop_turn(&self, lease: &Lease, status: &ChatStatus) {
        if lease.worker_id == self.worker_id {
            self.stop_local_turn(lease, status);
        } else {
            // Another replica's turn: it stops within the relay's latency.
            self.relay_stop(lease, status);
        }
    }

    /// Stops this process's turn holding `lease`, if any (see [`Inner::stop_turn`]).
    pub(crate) fn stop_local_turn(&self, lease: &Lease, status: &ChatStatus) {
        let control = lock(&self.active).get(lease).cloned();
        let Some(control) = control else {
            return;
        };
        match status {
            ChatStatus::Running => {}
            ChatStatus::Waiting => control.stop(StopCause::Interrupted),
            _ => control.stop(StopCause::Superseded),
        }
    }

    /// Publishes a `status` stream event and a `status_change` watch event (the start of a
    /// turn, which the claim committed).
    pub(crate) async fn publish_status(&self, chat_id: Uuid, status: ChatStatus) {
        self.emit(ChatStreamEvent::status(chat_id, status.clone()));
        self.publish_watch_by_id(chat_id, ChatWatchEventKind::StatusChange)
            .await;
        if status == ChatStatus::Pending {
            self.announce_pending();
        }
    }

    /// Publishes a watch event about `chat_id` to its owner, reading the chat only when
    /// someone watches.
    pub(crate) async fn publish_watch_by_id(&self, chat_id: Uuid, kind: ChatWatchEventKind) {
        self.relay_watch(chat_id, kind.clone(), None);
        if let Some(chat) = self.watched_chat(chat_id).await {
            self.publish_watch_local(kind, chat, None);
        }
    }

    /// The chat, read for watch events only when someone watches.
    pub(crate) async fn watched_chat(&self, chat_id: Uuid) -> Option<Chat> {
        if !self.hub.has_watchers() {
            return None;
        }
        match self.store.get_chat(chat_id).await {
            Ok(chat) => chat,
            Err(e) => {
                tracing::warn!(%chat_id, error = %e, "watch event skipped: chat read failed");
                None
            }
        }
    }

    /// Publishes a watch event about `chat` to its owner's watchers here and on the other
    /// replicas.
    pub(crate) fn publish_watch(
        &self,
        kind: ChatWatchEventKind,
        chat: Chat,
        tool_calls: Option<Vec<codersdk::ChatStreamToolCall>>,
    ) {
        self.relay_watch(chat.id, kind.clone(), tool_calls.clone());
        self.publish_watch_local(kind, chat, tool_calls);
    }

    /// Publishes a watch event to the owner's watchers of this replica only.
    pub(crate) fn publish_watch_local(
        &self,
        kind: ChatWatchEventKind,
        mut chat: Chat,
        tool_calls: Option<Vec<codersdk::ChatStreamToolCall>>,
    ) {
        if self.hub.watcher_count(chat.owner_id) == 0 {
            return;
        }
        // The watch carries neither the chat's files nor a request's warnings (codersdk.md
        // §8.3): a creation's answer has them, its `created` event does not.
        chat.files.clear();
        chat.warnings.clear();
        let owner = chat.owner_id;
        self.hub.publish_watch(
            owner,
            ChatWatchEvent {
                kind,
                chat,
                tool_calls,
            },
        );
    }
}
