//! In-process fan-out of the per-chat stream and the per-owner chat-list watch.
//!
//! The worker running a chat publishes into a [`StreamHub`]; every WebSocket handler of the
//! same process subscribes to it. The hub keeps the in-memory part of a chat's stream state —
//! the `message_part` events of the step in flight and the current retry — so that a client
//! joining mid-turn sees the partial response. Everything durable (status,
//! messages, queue) comes from the database; the hub is per process, and subscribers served
//! by another process rely on database re-reads driven by pub/sub notifications (the engine's
//! job, see docs/stream-hub.md).
//!
//! The subscribe contract and the back-pressure policy are documented on [`StreamHub`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use codersdk::{ChatStatus, ChatStreamEvent, ChatStreamEventType, ChatStreamRetry, ChatWatchEvent};
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};

mod event;
mod receiver;
#[cfg(test)]
mod tests;

pub use event::HubEvent;
use receiver::{Fanout, Topic};
pub use receiver::{HubReceiver, RecvError, TryRecvError};

/// Default [`HubConfig::part_buffer_capacity`]: 10 000 `message_part` events per chat
///.
pub const DEFAULT_PART_BUFFER_CAPACITY: usize = 10_000;

/// Default [`HubConfig::subscriber_capacity`]: 128 undelivered events per subscriber.
pub const DEFAULT_SUBSCRIBER_CAPACITY: usize = 128;

/// Default [`HubConfig::retain_grace`]: a finished turn's parts are kept 5 s.
pub const DEFAULT_RETAIN_GRACE: Duration = Duration::from_secs(5);

/// Default [`HubConfig::janitor_interval`]: the janitor sweeps every 30 s.
pub const DEFAULT_JANITOR_INTERVAL: Duration = Duration::from_secs(30);

/// Default [`HubConfig::drop_warn_interval`]: at most one "part buffer full" warning per chat
/// every 10 s.
pub const DEFAULT_DROP_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Default [`HubConfig::max_subscribers_per_chat`].
pub const DEFAULT_MAX_SUBSCRIBERS_PER_CHAT: usize = 1_024;

/// Default [`HubConfig::max_watchers_per_owner`].
pub const DEFAULT_MAX_WATCHERS_PER_OWNER: usize = 1_024;

/// Largest [`HubConfig::subscriber_capacity`] honoured; larger values are lowered to it.
pub const MAX_SUBSCRIBER_CAPACITY: usize = 1 << 20;

/// Shortest janitor period; a shorter [`HubConfig::janitor_interval`] is raised to it.
pub const MIN_JANITOR_INTERVAL: Duration = Duration::from_millis(1);

/// Lock stripes: chats (and owners) are spread over this many maps so that publishers of
/// different chats rarely contend.
const SHARDS: usize = 16;

/// Limits and timings of a [`StreamHub`]. `Default` gives the `DEFAULT_*` constants of this
/// module.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubConfig {
    /// Most `message_part` events kept per chat for late subscribers; when full, the oldest is
    /// dropped (and a warning logged, rate-limited by `drop_warn_interval`). 0 disables the
    /// buffer.
    pub part_buffer_capacity: usize,
    /// Most undelivered events a subscriber (chat stream or watch) may hold before it is
    /// disconnected as lagged. Capped at [`MAX_SUBSCRIBER_CAPACITY`]; with 0, every
    /// subscriber is disconnected at the first event published after it subscribed.
    pub subscriber_capacity: usize,
    /// How long a finished turn's parts stay available to late subscribers.
    pub retain_grace: Duration,
    /// How often [`StreamHub::janitor`] sweeps (at least [`MIN_JANITOR_INTERVAL`]).
    pub janitor_interval: Duration,
    /// Least time between two "part buffer full" warnings for one chat.
    pub drop_warn_interval: Duration,
    /// Most live stream subscribers per chat; [`StreamHub::subscribe`] refuses more.
    pub max_subscribers_per_chat: usize,
    /// Most live watch subscribers per owner; [`StreamHub::watch`] refuses more.
    pub max_watchers_per_owner: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            part_buffer_capacity: DEFAULT_PART_BUFFER_CAPACITY,
            subscriber_capacity: DEFAULT_SUBSCRIBER_CAPACITY,
            retain_grace: DEFAULT_RETAIN_GRACE,
            janitor_interval: DEFAULT_JANITOR_INTERVAL,
            drop_warn_interval: DEFAULT_DROP_WARN_INTERVAL,
            max_subscribers_per_chat: DEFAULT_MAX_SUBSCRIBERS_PER_CHAT,
            max_watchers_per_owner: DEFAULT_MAX_WATCHERS_PER_OWNER,
        }
    }
}

/// The in-memory state a new chat subscriber starts from; see the
/// [`StreamHub`] documentation for how to combine it with the database read.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ChatSnapshot {
    /// The retry the chat's worker is waiting on, if any: send it as a `retry` event right
    /// after the `status` event.
    pub retry: Option<ChatStreamRetry>,
    /// The buffered `message_part` events of the step in flight, oldest first (the oldest
    /// may have been dropped if more than the buffer capacity were produced).
    pub parts: Vec<Arc<HubEvent<ChatStreamEvent>>>,
}

/// A chat stream subscription: the [`ChatSnapshot`] taken at registration and the live
/// events published after it.
#[derive(Debug)]
pub struct ChatSubscription {
    snapshot: ChatSnapshot,
    receiver: HubReceiver<ChatStreamEvent>,
}

impl ChatSubscription {
    /// The in-memory state at the moment of subscribing.
    pub fn snapshot(&self) -> &ChatSnapshot {
        &self.snapshot
    }

    /// Moves the snapshot out (leaving an empty one), so its parts are freed once sent.
    pub fn take_snapshot(&mut self) -> ChatSnapshot {
        std::mem::take(&mut self.snapshot)
    }

    /// Splits into the snapshot and the live receiver.
    pub fn into_parts(self) -> (ChatSnapshot, HubReceiver<ChatStreamEvent>) {
        (self.snapshot, self.receiver)
    }

    /// The next live event; see [`HubReceiver::recv`].
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] or [`RecvError::Closed`], both final.
    pub async fn recv(&mut self) -> std::result::Result<Arc<HubEvent<ChatStreamEvent>>, RecvError> {
        self.receiver.recv().await
    }

    /// The next live event if one is queued; see [`HubReceiver::try_recv`].
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], [`TryRecvError::Lagged`] or [`TryRecvError::Closed`].
    pub fn try_recv(
        &mut self,
    ) -> std::result::Result<Arc<HubEvent<ChatStreamEvent>>, TryRecvError> {
        self.receiver.try_recv()
    }
}

/// A chat-list watch subscription: the [`ChatWatchEvent`]s of one owner.
pub type WatchSubscription = HubReceiver<ChatWatchEvent>;

/// Where a chat's turn is, as far as buffering goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TurnPhase {
    /// No turn: parts are forwarded but not buffered.
    Idle,
    /// Between [`StreamHub::begin_turn`] and [`StreamHub::end_turn`]: parts are buffered.
    Active,
    /// The turn ended less than [`HubConfig::retain_grace`] ago; its parts are still served.
    Retaining,
}

/// Counters of one chat, for tests, metrics and debugging.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatStats {
    /// Live subscribers.
    pub subscribers: usize,
    /// Buffered `message_part` events.
    pub buffered_parts: usize,
    /// Parts dropped from a full buffer since the chat entry was created.
    pub dropped_parts: u64,
    /// "Part buffer full" warnings logged (at most one per [`HubConfig::drop_warn_interval`]).
    pub drop_warnings: u64,
    /// Drops not yet reported by a warning (they are counted into the next one).
    pub unreported_drops: u64,
    /// Subscribers disconnected for lagging.
    pub lagged_subscribers: u64,
    /// Whether a retry state is kept for late subscribers.
    pub has_retry: bool,
    /// The turn phase.
    pub turn: TurnPhase,
}

/// What one janitor pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepStats {
    /// Part buffers of finished turns released after their grace.
    pub buffers_released: usize,
    /// Chat and owner entries removed because nothing was left in them.
    pub entries_removed: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    Idle,
    Active,
    Ended(Instant),
}

struct ChatEntry {
    fanout: Fanout<ChatStreamEvent>,
    parts: VecDeque<Arc<HubEvent<ChatStreamEvent>>>,
    retry: Option<ChatStreamRetry>,
    turn: Turn,
    dropped_parts: u64,
    drop_warnings: u64,
    unreported_drops: u64,
    last_drop_warning: Option<Instant>,
    lagged_subscribers: u64,
}

impl ChatEntry {
    fn new() -> Self {
        ChatEntry {
            fanout: Fanout::new(),
            parts: VecDeque::new(),
            retry: None,
            turn: Turn::Idle,
            dropped_parts: 0,
            drop_warnings: 0,
            unreported_drops: 0,
            last_drop_warning: None,
            lagged_subscribers: 0,
        }
    }

    /// Releases the parts of a turn whose grace has passed. Returns whether it did.
    fn expire(&mut self, now: Instant, grace: Duration) -> bool {
        match self.turn {
            Turn::Ended(at) if now.saturating_duration_since(at) >= grace => {
                self.turn = Turn::Idle;
                // A fresh deque frees the (up to capacity-sized) allocation.
                self.parts = VecDeque::new();
                true
            }
            _ => false,
        }
    }

    /// Nothing worth keeping: no subscriber, no turn, no buffered state.
    fn is_vacant(&self) -> bool {
        self.fanout.is_empty()
            && self.turn == Turn::Idle
            && self.retry.is_none()
            && self.parts.is_empty()
    }

    fn push_part(
        &mut self,
        chat_id: Uuid,
        part: Arc<HubEvent<ChatStreamEvent>>,
        config: &HubConfig,
    ) {
        let capacity = config.part_buffer_capacity;
        if capacity == 0 {
            return;
        }
        let mut dropped = 0u64;
        while self.parts.len() >= capacity {
            self.parts.pop_front();
            dropped += 1;
        }
        self.parts.push_back(part);
        if dropped > 0 {
            self.note_drops(chat_id, dropped, capacity, config.drop_warn_interval);
        }
    }

    fn note_drops(&mut self, chat_id: Uuid, dropped: u64, capacity: usize, every: Duration) {
        self.dropped_parts += dropped;
        self.unreported_drops += dropped;
        let now = Instant::now();
        let due = self
            .last_drop_warning
            .is_none_or(|last| now.saturating_duration_since(last) >= every);
        if due {
            tracing::warn!(
                %chat_id,
                dropped = self.unreported_drops,
                total_dropped = self.dropped_parts,
                capacity,
                "stream part buffer full; dropped the oldest parts (late subscribers will \
                 miss the start of the step)"
            );
            self.drop_warnings += 1;
            self.unreported_drops = 0;
            self.last_drop_warning = Some(now);
        }
    }

    fn broadcast(&mut self, chat_id: Uuid, event: &Arc<HubEvent<ChatStreamEvent>>) {
        let lagged = self.fanout.broadcast(event);
        if lagged > 0 {
            self.lagged_subscribers += lagged as u64;
            tracing::debug!(
                %chat_id,
                lagged,
                remaining = self.fanout.len(),
                "disconnected lagging chat stream subscribers"
            );
        }
    }

    fn phase(&self) -> TurnPhase {
        match self.turn {
            Turn::Idle => TurnPhase::Idle,
            Turn::Active => TurnPhase::Active,
            Turn::Ended(_) => TurnPhase::Retaining,
        }
    }
}

type Shard<V> = Mutex<HashMap<Uuid, V>>;

struct Inner {
    config: HubConfig,
    chats: [Shard<ChatEntry>; SHARDS],
    owners: [Shard<Fanout<ChatWatchEvent>>; SHARDS],
    next_id: AtomicU64,
}

/// Locks without panicking on poison: the maps hold no invariant that a panic half-way could
/// break badly, and a stream hub that refuses service after one panic would be worse.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn shard_index(id: Uuid) -> usize {
    let v = id.as_u128();
    // Fold all bits: v4 ids are random everywhere, v7 ids only in the low half.
    ((v ^ (v >> 64) ^ (v >> 32)) as usize) % SHARDS
}

impl Inner {
    #[allow(clippy::indexing_slicing)] // shard_index is < SHARDS, the array length
    fn chat_shard(&self, chat_id: Uuid) -> MutexGuard<'_, HashMap<Uuid, ChatEntry>> {
        lock(&self.chats[shard_index(chat_id)])
    }

    #[allow(clippy::indexing_slicing)] // shard_index is < SHARDS, the array length
    fn owner_shard(&self, owner_id: Uuid) -> MutexGuard<'_, HashMap<Uuid, Fanout<ChatWatchEvent>>> {
        lock(&self.owners[shard_index(owner_id)])
    }

    fn unregister(&self, topic: Topic, id: u64) {
        match topic {
            Topic::Chat(chat_id) => {
                let mut shard = self.chat_shard(chat_id);
                if let Some(entry) = shard.get_mut(&chat_id) {
                    entry.fanout.remove(id);
                    entry.expire(Instant::now(), self.config.retain_grace);
                    if entry.is_vacant() {
                        shard.remove(&chat_id);
                    }
                }
            }
            Topic::Owner(owner_id) => {
                let mut shard = self.owner_shard(owner_id);
                if let Some(fanout) = shard.get_mut(&owner_id) {
                    fanout.remove(id);
                    if fanout.is_empty() {
                        shard.remove(&owner_id);
                    }
                }
            }
        }
    }

    fn sweep(&self) -> SweepStats {
        let now = Instant::now();
        let mut stats = SweepStats::default();
        for shard in &self.chats {
            let mut map = lock(shard);
            map.retain(|_, entry| {
                entry.fanout.prune_closed();
                if entry.expire(now, self.config.retain_grace) {
                    stats.buffers_released += 1;
                }
                let keep = !entry.is_vacant();
                if !keep {
                    stats.entries_removed += 1;
                }
                keep
            });
        }
        for shard in &self.owners {
            let mut map = lock(shard);
            map.retain(|_, fanout| {
                fanout.prune_closed();
                let keep = !fanout.is_empty();
                if !keep {
                    stats.entries_removed += 1;
                }
                keep
            });
        }
        stats
    }
}

/// In-process fan-out of chat streams and chat-list watches. Cheap to clone (one `Arc`);
/// all clones share the same state. Publishing methods never wait and never fail.
///
/// # The subscribe contract ("subscribe, then query")
///
/// [`StreamHub::subscribe`] registers the live receiver and copies the in-memory state under
/// one lock, so every event is in exactly one of the two: published before the call, it is
/// in the [`ChatSnapshot`] (if it is kept there); published after, it is delivered live. The
/// caller then:
///
/// 1. reads the chat's status, the messages with id > `after_id`, and the queue from the
///    database — **after** subscribing, so nothing committed in between is missed;
/// 2. sends the snapshot in protocol order: `status`, `retry` (from
///    [`ChatSnapshot::retry`]), the buffered parts ([`ChatSnapshot::parts`]), the `message`s,
///    `queue_update`;
/// 3. forwards live events, dropping each live `message` whose id is ≤ the highest message id
///    it read in step 1 (a commit that raced the read arrives both ways). Live `status` and
///    `queue_update` events may repeat what was read; they carry whole values, so repeating
///    them is harmless. Parts and retries are never duplicated.
///
/// # Back-pressure
///
/// Publishing never waits. Each subscriber has a bounded channel
/// ([`HubConfig::subscriber_capacity`]); one that is full when an event is published is
/// disconnected and its receiver ends with [`RecvError::Lagged`] after the events already
/// queued. The part buffer is bounded ([`HubConfig::part_buffer_capacity`], oldest dropped
/// first) and so is the number of subscribers per chat and per owner.
#[derive(Clone)]
pub struct StreamHub {
    inner: Arc<Inner>,
}

impl Default for StreamHub {
    fn default() -> Self {
        StreamHub::new(HubConfig::default())
    }
}

impl std::fmt::Debug for StreamHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHub")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl StreamHub {
    /// A hub with the given limits. No task is started; spawn [`StreamHub::janitor`] to
    /// release finished turns' buffers on time.
    pub fn new(mut config: HubConfig) -> Self {
        config.subscriber_capacity = config.subscriber_capacity.min(MAX_SUBSCRIBER_CAPACITY);
        config.janitor_interval = config.janitor_interval.max(MIN_JANITOR_INTERVAL);
        StreamHub {
            inner: Arc::new(Inner {
                config,
                chats: std::array::from_fn(|_| Mutex::new(HashMap::new())),
                owners: std::array::from_fn(|_| Mutex::new(HashMap::new())),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// The configuration in effect (after clamping).
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Subscribes to a chat's stream: atomically registers the live receiver and copies the
    /// in-memory state (retry, buffered parts). Call it **before** reading the database; see
    /// [`StreamHub`] for the whole contract.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TooManySubscribers`] when the chat already has
    /// [`HubConfig::max_subscribers_per_chat`] subscribers.
    pub fn subscribe(&self, chat_id: Uuid) -> Result<ChatSubscription> {
        let config = &self.inner.config;
        let id = self.next_id();
        let (rx, snapshot) = {
            let mut shard = self.inner.chat_shard(chat_id);
            let entry = shard.entry(chat_id).or_insert_with(ChatEntry::new);
            entry.expire(Instant::now(), config.retain_grace);
            if entry.fanout.len() >= config.max_subscribers_per_chat {
                if entry.is_vacant() {
                    shard.remove(&chat_id);
                }
                return Err(Error::new(
                    ErrorKind::TooManySubscribers,
                    format!(
                        "chat already has {} stream subscribers, the most allowed",
                        config.max_subscribers_per_chat
                    ),
                ));
            }
            let rx = entry.fanout.add(id, config.subscriber_capacity);
            let snapshot = ChatSnapshot {
                retry: entry.retry.clone(),
                parts: entry.parts.iter().cloned().collect(),
            };
            (rx, snapshot)
        };
        // The receiver is built outside the lock: dropping it unregisters, which locks.
        let receiver = HubReceiver::new(rx, Arc::downgrade(&self.inner), Topic::Chat(chat_id), id);
        Ok(ChatSubscription { snapshot, receiver })
    }

    /// Starts buffering a turn's parts. Call it before the `running` status is published, so
    /// a client that sees `running` also sees every part. Clears the parts and retry state
    /// left from an earlier turn.
    pub fn begin_turn(&self, chat_id: Uuid) {
        let mut shard = self.inner.chat_shard(chat_id);
        let entry = shard.entry(chat_id).or_insert_with(ChatEntry::new);
        entry.parts.clear();
        entry.retry = None;
        entry.turn = Turn::Active;
    }

    /// Ends the turn: parts are no longer buffered, the retry state is cleared, and the
    /// buffered parts stay available for [`HubConfig::retain_grace`], after which they are no
    /// longer served and the janitor frees them.
    pub fn end_turn(&self, chat_id: Uuid) {
        let mut shard = self.inner.chat_shard(chat_id);
        let Some(entry) = shard.get_mut(&chat_id) else {
            return;
        };
        entry.retry = None;
        if entry.turn == Turn::Active {
            entry.turn = if entry.parts.is_empty() {
                Turn::Idle
            } else {
                Turn::Ended(Instant::now())
            };
        }
        if entry.is_vacant() {
            shard.remove(&chat_id);
        }
    }

    /// Publishes a chat stream event to the chat's subscribers, without waiting.
    ///
    /// What the hub keeps depends on the event type:
    ///
    /// | type | effect on the in-memory state |
    /// |---|---|
    /// | `message_part` | appended to the part buffer while a turn is active; clears the retry |
    /// | `retry` | becomes the retry state; clears the part buffer (the attempt's preview is void) |
    /// | `error` | clears the retry |
    /// | `status` | clears the retry unless the status is `running` |
    /// | `message`, `queue_update`, `action_required`, others | none (durable state: publish after commit) |
    ///
    /// The event goes to the chat named by `event.chat_id`.
    pub fn publish(&self, event: ChatStreamEvent) {
        let chat_id = event.chat_id;
        let config = &self.inner.config;
        let mut shard = self.inner.chat_shard(chat_id);
        let entry = if event.event_type == ChatStreamEventType::Retry && event.retry.is_some() {
            // Kept even with nobody listening: a client may connect during the back-off.
            shard.entry(chat_id).or_insert_with(ChatEntry::new)
        } else if let Some(entry) = shard.get_mut(&chat_id) {
            entry
        } else {
            return;
        };
        let event = Arc::new(HubEvent::new(event));
        match event.event_type {
            ChatStreamEventType::MessagePart => {
                entry.retry = None;
                if entry.turn == Turn::Active {
                    entry.push_part(chat_id, Arc::clone(&event), config);
                }
            }
            ChatStreamEventType::Retry => {
                entry.parts.clear();
                if let Some(retry) = &event.retry {
                    entry.retry = Some(retry.clone());
                }
            }
            ChatStreamEventType::Error => entry.retry = None,
            ChatStreamEventType::Status
                if event
                    .status
                    .as_ref()
                    .is_some_and(|s| s.status != ChatStatus::Running) =>
            {
                entry.retry = None;
            }
            _ => {}
        }
        entry.broadcast(chat_id, &event);
    }

    /// Discards the buffered parts (for example after the step they belong to was committed
    /// and published as a `message`, which supersedes them). Buffering continues if a turn
    /// is active.
    pub fn clear_parts(&self, chat_id: Uuid) {
        let mut shard = self.inner.chat_shard(chat_id);
        if let Some(entry) = shard.get_mut(&chat_id) {
            entry.parts.clear();
            if entry.is_vacant() {
                shard.remove(&chat_id);
            }
        }
    }

    /// Forgets the retry state without publishing anything (the next `message_part`, `error`
    /// or non-`running` status clears it anyway).
    pub fn clear_retry(&self, chat_id: Uuid) {
        let mut shard = self.inner.chat_shard(chat_id);
        if let Some(entry) = shard.get_mut(&chat_id) {
            entry.retry = None;
            if entry.is_vacant() {
                shard.remove(&chat_id);
            }
        }
    }

    /// Counters of a chat, or `None` when the hub holds nothing for it.
    pub fn chat_stats(&self, chat_id: Uuid) -> Option<ChatStats> {
        let mut shard = self.inner.chat_shard(chat_id);
        let entry = shard.get_mut(&chat_id)?;
        entry.expire(Instant::now(), self.inner.config.retain_grace);
        Some(ChatStats {
            subscribers: entry.fanout.len(),
            buffered_parts: entry.parts.len(),
            dropped_parts: entry.dropped_parts,
            drop_warnings: entry.drop_warnings,
            unreported_drops: entry.unreported_drops,
            lagged_subscribers: entry.lagged_subscribers,
            has_retry: entry.retry.is_some(),
            turn: entry.phase(),
        })
    }

    /// Subscribes to an owner's chat-list watch events.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TooManySubscribers`] when the owner already has
    /// [`HubConfig::max_watchers_per_owner`] watchers.
    pub fn watch(&self, owner_id: Uuid) -> Result<WatchSubscription> {
        let config = &self.inner.config;
        let id = self.next_id();
        let rx = {
            let mut shard = self.inner.owner_shard(owner_id);
            let fanout = shard.entry(owner_id).or_insert_with(Fanout::new);
            if fanout.len() >= config.max_watchers_per_owner {
                if fanout.is_empty() {
                    shard.remove(&owner_id);
                }
                return Err(Error::new(
                    ErrorKind::TooManySubscribers,
                    format!(
                        "owner already has {} chat-list watchers, the most allowed",
                        config.max_watchers_per_owner
                    ),
                ));
            }
            fanout.add(id, config.subscriber_capacity)
        };
        Ok(HubReceiver::new(
            rx,
            Arc::downgrade(&self.inner),
            Topic::Owner(owner_id),
            id,
        ))
    }

    /// Publishes a chat-list event to the owner's watchers, without waiting. Nothing is kept.
    pub fn publish_watch(&self, owner_id: Uuid, event: ChatWatchEvent) {
        let mut shard = self.inner.owner_shard(owner_id);
        let Some(fanout) = shard.get_mut(&owner_id) else {
            return;
        };
        let lagged = fanout.broadcast(&Arc::new(HubEvent::new(event)));
        if lagged > 0 {
            tracing::debug!(%owner_id, lagged, "disconnected lagging chat-list watchers");
        }
        if fanout.is_empty() {
            shard.remove(&owner_id);
        }
    }

    /// Up to `max` chats with at least one live stream subscriber (after a relay gap, the
    /// chats whose durable state the engine re-reads).
    pub fn subscribed_chats(&self, max: usize) -> Vec<Uuid> {
        let mut chats = Vec::new();
        for shard in &self.inner.chats {
            for (chat_id, entry) in lock(shard).iter() {
                if chats.len() >= max {
                    return chats;
                }
                if !entry.fanout.is_empty() {
                    chats.push(*chat_id);
                }
            }
        }
        chats
    }

    /// Up to `max` owners with at least one live watcher.
    pub fn watched_owners(&self, max: usize) -> Vec<Uuid> {
        let mut owners = Vec::new();
        for shard in &self.inner.owners {
            for (owner_id, fanout) in lock(shard).iter() {
                if owners.len() >= max {
                    return owners;
                }
                if !fanout.is_empty() {
                    owners.push(*owner_id);
                }
            }
        }
        owners
    }

    /// The chat's turn phase (`Idle` when the hub holds nothing for it).
    pub fn turn_phase(&self, chat_id: Uuid) -> TurnPhase {
        let mut shard = self.inner.chat_shard(chat_id);
        match shard.get_mut(&chat_id) {
            Some(entry) => {
                entry.expire(Instant::now(), self.inner.config.retain_grace);
                entry.phase()
            }
            None => TurnPhase::Idle,
        }
    }

    /// The buffered parts and retry state of the chat's active turn, without subscribing;
    /// `None` when no turn is active.
    pub fn turn_snapshot(&self, chat_id: Uuid) -> Option<ChatSnapshot> {
        let shard = self.inner.chat_shard(chat_id);
        let entry = shard.get(&chat_id)?;
        (entry.turn == Turn::Active).then(|| ChatSnapshot {
            retry: entry.retry.clone(),
            parts: entry.parts.iter().cloned().collect(),
        })
    }

    /// Makes `snapshot` the chat's active turn state, replacing what was buffered, without
    /// publishing anything: how a replica takes over the state of a turn another process
    /// runs (its later parts then append as usual). Parts beyond the buffer's capacity
    /// are dropped from the oldest.
    pub fn restore_turn(&self, chat_id: Uuid, snapshot: ChatSnapshot) {
        let capacity = self.inner.config.part_buffer_capacity;
        let mut shard = self.inner.chat_shard(chat_id);
        let entry = shard.entry(chat_id).or_insert_with(ChatEntry::new);
        let skip = snapshot.parts.len().saturating_sub(capacity);
        entry.parts = snapshot.parts.into_iter().skip(skip).collect();
        entry.retry = snapshot.retry;
        entry.turn = Turn::Active;
    }

    /// Ends every subscription and watch: their receivers end with [`RecvError::Closed`]
    /// once they took what was queued (the server is going away; clients reconnect,
    /// possibly to another replica). Buffered parts are dropped too. New subscriptions
    /// may still be made afterwards.
    pub fn close_all(&self) {
        for shard in &self.inner.chats {
            // Taken out of the lock first: dropping a fan-out's senders wakes receivers.
            let taken = std::mem::take(&mut *lock(shard));
            drop(taken);
        }
        for shard in &self.inner.owners {
            let taken = std::mem::take(&mut *lock(shard));
            drop(taken);
        }
    }

    /// Whether anyone watches any owner's chat list: a cheap check (no allocation, one
    /// short lock per shard) that lets a publisher skip building watch events, and the
    /// database read behind them, when nobody would receive them.
    pub fn has_watchers(&self) -> bool {
        self.inner
            .owners
            .iter()
            .any(|shard| lock(shard).values().any(|fanout| !fanout.is_empty()))
    }

    /// Live watchers of an owner.
    pub fn watcher_count(&self, owner_id: Uuid) -> usize {
        self.inner
            .owner_shard(owner_id)
            .get(&owner_id)
            .map_or(0, Fanout::len)
    }

    /// One janitor pass: releases part buffers whose grace has passed, drops closed
    /// subscribers and removes entries with nothing left. [`StreamHub::janitor`] calls it
    /// periodically; call it directly when driving the hub from your own scheduler.
    pub fn sweep(&self) -> SweepStats {
        self.inner.sweep()
    }

    /// The janitor: a future that calls [`StreamHub::sweep`] every
    /// [`HubConfig::janitor_interval`] and ends once every clone of the hub is dropped.
    /// Spawn it once: `tokio::spawn(hub.janitor())`.
    pub fn janitor(&self) -> impl Future<Output = ()> + Send + 'static {
        let hub = Arc::downgrade(&self.inner);
        let period = self.inner.config.janitor_interval;
        async move {
            loop {
                // `sleep` saturates a huge period instead of overflowing the deadline.
                tokio::time::sleep(period).await;
                let Some(inner) = hub.upgrade() else {
                    break;
                };
                let stats = inner.sweep();
                if stats != SweepStats::default() {
                    tracing::debug!(
                        buffers_released = stats.buffers_released,
                        entries_removed = stats.entries_removed,
                        "stream hub janitor pass"
                    );
                }
            }
        }
    }
}
