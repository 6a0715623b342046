//! The receiving end of a hub subscription, and the sender list a publisher fans out to.

use std::fmt;
use std::sync::{Arc, Weak};

use tokio::sync::mpsc;
use uuid::Uuid;

use super::{HubEvent, Inner};

/// What travels through a subscriber's channel.
pub(super) enum Item<T> {
    Event(Arc<HubEvent<T>>),
    /// The subscriber fell behind and was disconnected; always the last item.
    Lagged,
}

/// Why a subscription delivers no more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber did not keep up: its channel held
    /// [`HubConfig::subscriber_capacity`](super::HubConfig::subscriber_capacity) undelivered
    /// events when another was published, so the hub disconnected it rather than slow the
    /// publisher. Events after the gap are lost to this subscription; the consumer should tell
    /// its client and resubscribe, rebuilding the state from the database.
    Lagged,
    /// The hub was dropped (server shutdown).
    Closed,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecvError::Lagged => "subscriber fell behind and was disconnected",
            RecvError::Closed => "stream hub closed",
        })
    }
}

impl std::error::Error for RecvError {}

/// Why [`HubReceiver::try_recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TryRecvError {
    /// No event is waiting right now.
    Empty,
    /// See [`RecvError::Lagged`].
    Lagged,
    /// See [`RecvError::Closed`].
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no event waiting"),
            TryRecvError::Lagged => RecvError::Lagged.fmt(f),
            TryRecvError::Closed => RecvError::Closed.fmt(f),
        }
    }
}

impl std::error::Error for TryRecvError {}

/// Which sender list a registration belongs to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Topic {
    Chat(Uuid),
    Owner(Uuid),
}

/// Removes the subscriber from the hub when its receiver is dropped, so memory is released
/// at once rather than on the next publish or janitor pass.
struct Registration {
    hub: Weak<Inner>,
    topic: Topic,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unregister(self.topic, self.id);
        }
    }
}

/// A live subscription: events published after it was registered, in publish order.
///
/// Memory is bounded by the channel capacity (see [`HubConfig`](super::HubConfig)). A
/// subscriber that falls that far behind receives the events already queued and then
/// [`RecvError::Lagged`]; it never slows the publisher. Dropping the receiver unsubscribes.
pub struct HubReceiver<T> {
    rx: mpsc::Receiver<Item<T>>,
    ended: Option<RecvError>,
    _registration: Registration,
}

impl<T> HubReceiver<T> {
    pub(super) fn new(
        rx: mpsc::Receiver<Item<T>>,
        hub: Weak<Inner>,
        topic: Topic,
        id: u64,
    ) -> Self {
        HubReceiver {
            rx,
            ended: None,
            _registration: Registration { hub, topic, id },
        }
    }

    /// The next event, waiting for one if none is queued.
    ///
    /// Cancel safe: if the future is dropped before it completes, no event is lost.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] once the subscriber was disconnected for falling behind (after
    /// the events queued before the gap), [`RecvError::Closed`] once the hub is gone. Both
    /// are final: every later call returns the same error.
    pub async fn recv(&mut self) -> Result<Arc<HubEvent<T>>, RecvError> {
        if let Some(end) = self.ended {
            return Err(end);
        }
        let item = self.rx.recv().await;
        self.take(item)
    }

    /// The next event if one is queued, without waiting. Use it after [`HubReceiver::recv`]
    /// to batch whatever else is ready into one WebSocket frame.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when nothing is queued; otherwise as [`HubReceiver::recv`].
    pub fn try_recv(&mut self) -> Result<Arc<HubEvent<T>>, TryRecvError> {
        if let Some(end) = self.ended {
            return Err(end.into());
        }
        match self.rx.try_recv() {
            Ok(item) => self.take(Some(item)).map_err(Into::into),
            Err(mpsc::error::TryRecvError::Empty) => Err(TryRecvError::Empty),
            Err(mpsc::error::TryRecvError::Disconnected) => self.take(None).map_err(Into::into),
        }
    }

    /// Whether the subscription has ended (lagged or closed) and will deliver nothing more.
    pub fn is_ended(&self) -> bool {
        self.ended.is_some()
    }

    fn take(&mut self, item: Option<Item<T>>) -> Result<Arc<HubEvent<T>>, RecvError> {
        match item {
            Some(Item::Event(event)) => Ok(event),
            Some(Item::Lagged) => Err(*self.ended.insert(RecvError::Lagged)),
            None => Err(*self.ended.insert(RecvError::Closed)),
        }
    }
}

impl<T> fmt::Debug for HubReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubReceiver")
            .field("queued", &self.rx.len())
            .field("ended", &self.ended)
            .finish()
    }
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged => TryRecvError::Lagged,
            RecvError::Closed => TryRecvError::Closed,
        }
    }
}

struct Sender<T> {
    id: u64,
    tx: mpsc::Sender<Item<T>>,
}

/// The subscribers of one chat or one owner.
pub(super) struct Fanout<T> {
    senders: Vec<Sender<T>>,
}

impl<T> Fanout<T> {
    pub(super) fn new() -> Self {
        Fanout {
            senders: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.senders.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Registers a subscriber that may hold `capacity` undelivered events.
    pub(super) fn add(&mut self, id: u64, capacity: usize) -> mpsc::Receiver<Item<T>> {
        // One slot beyond the capacity is kept for the `Lagged` marker, so a full subscriber
        // can always be told why it was cut off.
        let (tx, rx) = mpsc::channel(capacity.saturating_add(1));
        self.senders.push(Sender { id, tx });
        rx
    }

    pub(super) fn remove(&mut self, id: u64) {
        if let Some(i) = self.senders.iter().position(|s| s.id == id) {
            self.senders.swap_remove(i);
        }
    }

    /// Drops senders whose receiver is gone (defensive: receivers unregister on drop).
    pub(super) fn prune_closed(&mut self) {
        self.senders.retain(|s| !s.tx.is_closed());
    }

    /// Offers `event` to every subscriber without waiting. Full subscribers get the `Lagged`
    /// marker and are removed, as are closed ones. Returns how many lagged.
    pub(super) fn broadcast(&mut self, event: &Arc<HubEvent<T>>) -> usize {
        let mut lagged = 0;
        self.senders.retain(|s| {
            if s.tx.capacity() <= 1 {
                // The reserved slot is all that is left: mark the gap and cut it off.
                let _ = s.tx.try_send(Item::Lagged);
                if !s.tx.is_closed() {
                    lagged += 1;
                }
                return false;
            }
            match s.tx.try_send(Item::Event(Arc::clone(event))) {
                Ok(()) => true,
                // The capacity check above leaves room, so `Full` cannot happen; treat it as
                // lag anyway rather than block.
                Err(mpsc::error::TrySendError::Full(_)) => {
                    lagged += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        lagged
    }
}
