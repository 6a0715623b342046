//! The engine's side of several replicas on PostgreSQL ([`crate::cluster`]): every hub
//! publication also goes to the relay, the `LISTEN` loop applies what other replicas sent,
//! a gap or a lost connection re-reads the durable state of what this replica serves, and
//! the liveness loop hands back the chats of dead replicas.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use codersdk::{
    ChatStatus, ChatStreamEvent, ChatStreamEventType, ChatStreamToolCall, ChatWatchEventKind, Uuid,
};
use sqlx::postgres::PgListener;

use super::{lock, Inner};
use crate::cluster::postgres::{Envelope, LivenessLock, Namespace, Relay};
use crate::cluster::{
    ConfigChange, RecoveryCause, Signal, MAX_RECONNECT_BACKOFF, MAX_RESYNC_CHATS,
    MIN_RECONNECT_BACKOFF, PARTS_REQUEST_TIMEOUT, RELAY_FLUSH_TIMEOUT,
};
use crate::error::Result;
use crate::store::{ChatListQuery, Lease, Store};

/// Most senders whose last sequence number a receiver remembers; beyond it the memory is
/// cleared (the next batch of each sender is then taken without a gap check).
const MAX_TRACKED_SENDERS: usize = 4_096;

/// How long the engine's start waits for its `LISTEN` connection, so that a started
/// engine hears the other replicas; past it the engine starts anyway and the listener
/// keeps trying (and re-reads once connected).
pub(crate) const LISTEN_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the engine's start waits for its own liveness lock (a previous connection of
/// a restarted replica with the same worker id may still hold it until PostgreSQL notices
/// the connection is gone).
const LIVENESS_LOCK_WAIT: Duration = Duration::from_secs(30);

/// The running cluster parts of a PostgreSQL engine.
pub(crate) struct Cluster {
    pub(crate) namespace: Namespace,
    pub(crate) relay: Relay,
    /// Per chat: the highest message id this replica's hub has seen relayed or its
    /// subscribers read; a re-read after a gap publishes the messages after it.
    cursors: std::sync::Mutex<HashMap<Uuid, i64>>,
    /// Held while a hub change and its relay signal are made, so the relay carries them in
    /// the hub's order: a [`Signal::Parts`] answer then holds exactly the parts relayed
    /// before it. Striped by chat (order only matters within a chat), so publishers of
    /// different chats rarely contend, as in the hub.
    order: [std::sync::Mutex<()>; ORDER_STRIPES],
    /// Subscribers waiting for the worker's [`Signal::Parts`] of a chat.
    parts_waiters: std::sync::Mutex<HashMap<Uuid, Vec<tokio::sync::oneshot::Sender<()>>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("channel", &self.namespace.channel)
            .finish_non_exhaustive()
    }
}

/// Stripes of [`Cluster`]'s ordering lock.
const ORDER_STRIPES: usize = 16;

impl Cluster {
    /// The ordering lock of `chat_id`'s stripe.
    #[allow(clippy::indexing_slicing)] // the index is taken modulo the array's length
    fn order_lock(&self, chat_id: Uuid) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.order[(chat_id.as_u128() % ORDER_STRIPES as u128) as usize])
    }
}

/// What [`start`] gives the engine: the cluster and the liveness lock to hold.
pub(crate) struct Started {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) lock: LivenessLock,
}

/// PostgreSQL: takes this replica's liveness lock and starts the relay's sender (spawned
/// through `spawn`). `None` on SQLite.
pub(crate) async fn start(
    store: &Store,
    worker: Uuid,
    spawn: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
) -> Result<Option<Started>> {
    let Some(schema) = store.current_schema().await? else {
        return Ok(None);
    };
    let namespace = Namespace::of_schema(&schema);
    let lock = LivenessLock::acquire(
        store.url().expose(),
        namespace.locks,
        worker,
        LIVENESS_LOCK_WAIT,
    )
    .await?;
    let relay = Relay::start(store.clone(), worker, namespace.clone(), spawn);
    Ok(Some(Started {
        cluster: Arc::new(Cluster {
            namespace,
            relay,
            cursors: std::sync::Mutex::new(HashMap::new()),
            order: std::array::from_fn(|_| std::sync::Mutex::new(())),
            parts_waiters: std::sync::Mutex::new(HashMap::new()),
        }),
        lock,
    }))
}

impl Inner {
    fn relay(&self, signal: Signal) {
        if let Some(cluster) = &self.cluster {
            cluster.relay.send(signal);
        }
    }

    /// Applies `change` to this hub and relays `signal`, in one step with respect to
    /// [`Inner::answer_parts_wanted`].
    fn hub_and_relay(
        &self,
        chat_id: Uuid,
        change: impl FnOnce(&crate::hub::StreamHub),
        signal: impl FnOnce() -> Signal,
    ) {
        match &self.cluster {
            Some(cluster) => {
                let _order = cluster.order_lock(chat_id);
                change(&self.hub);
                cluster.relay.send(signal());
            }
            None => change(&self.hub),
        }
    }

    /// Publishes a stream event here and to the other replicas.
    pub(crate) fn emit(&self, event: ChatStreamEvent) {
        if self.cluster.is_none() {
            self.hub.publish(event);
            return;
        }
        let relayed = Box::new(event.clone());
        let chat_id = event.chat_id;
        self.hub_and_relay(
            chat_id,
            |hub| hub.publish(event),
            || Signal::Event { e: relayed },
        );
    }

    /// Starts buffering the chat's parts, here and on the other replicas.
    pub(crate) fn begin_turn(&self, chat_id: Uuid) {
        self.hub_and_relay(
            chat_id,
            |hub| hub.begin_turn(chat_id),
            || Signal::BeginTurn { c: chat_id },
        );
    }

    /// Ends the chat's turn, here and on the other replicas.
    pub(crate) fn end_turn(&self, chat_id: Uuid) {
        self.hub_and_relay(
            chat_id,
            |hub| hub.end_turn(chat_id),
            || Signal::EndTurn { c: chat_id },
        );
    }

    /// Voids the chat's buffered parts, here and on the other replicas.
    pub(crate) fn clear_parts(&self, chat_id: Uuid) {
        self.hub_and_relay(
            chat_id,
            |hub| hub.clear_parts(chat_id),
            || Signal::ClearParts { c: chat_id },
        );
    }

    /// Before a subscription to `chat_id`: when another replica runs the chat and this
    /// hub did not see its turn start (this replica started, or lost notifications,
    /// mid-turn), asks that replica for the step's buffered parts and waits for them (at
    /// most [`PARTS_REQUEST_TIMEOUT`]), so the subscriber's snapshot has them as it would
    /// on the worker's replica.
    pub(crate) async fn complete_mirror(&self, chat_id: Uuid) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        if self.hub.turn_phase(chat_id) == crate::hub::TurnPhase::Active {
            return;
        }
        let worker = match self.store.running_worker(chat_id).await {
            Ok(Some(worker)) if worker != self.worker_id => worker,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(%chat_id, error = %e, "reading a chat's worker failed");
                return;
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        lock(&cluster.parts_waiters)
            .entry(chat_id)
            .or_default()
            .push(tx);
        self.relay(Signal::PartsWanted {
            c: chat_id,
            w: worker,
            r: self.worker_id,
        });
        if tokio::time::timeout(PARTS_REQUEST_TIMEOUT, rx)
            .await
            .is_err()
        {
            tracing::debug!(%chat_id, %worker, "the worker's replica did not send the turn's parts in time");
            let mut waiters = lock(&cluster.parts_waiters);
            if let Some(list) = waiters.get_mut(&chat_id) {
                list.retain(|w| !w.is_closed());
                if list.is_empty() {
                    waiters.remove(&chat_id);
                }
            }
        }
    }

    /// Sends replica `to` this hub's state of the turn of `chat_id`, which this replica
    /// runs: everything relayed before it is in it, everything after follows it.
    fn answer_parts_wanted(&self, chat_id: Uuid, to: Uuid) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let _order = cluster.order_lock(chat_id);
        let Some(snapshot) = self.hub.turn_snapshot(chat_id) else {
            // No turn here (it just ended): the asker's subscriber reads the durable end.
            return;
        };
        cluster.relay.send(Signal::Parts {
            c: chat_id,
            to,
            retry: snapshot.retry,
            parts: snapshot.parts.iter().map(|p| (**p).clone()).collect(),
        });
    }

    /// A chat became `pending`: wakes this replica's run loop and the others'.
    pub(crate) fn announce_pending(&self) {
        self.wake();
        self.relay(Signal::Wake);
    }

    /// Tells the other replicas' watchers of the chat's owner about `kind`.
    pub(crate) fn relay_watch(
        &self,
        chat_id: Uuid,
        kind: ChatWatchEventKind,
        calls: Option<Vec<ChatStreamToolCall>>,
    ) {
        self.relay(Signal::Watch {
            c: chat_id,
            w: kind,
            calls,
        });
    }

    /// Asks the replica running `lease` to stop it (the chat is now `status`).
    pub(crate) fn relay_stop(&self, lease: &Lease, status: &ChatStatus) {
        self.relay(Signal::Stop {
            c: lease.chat_id,
            w: lease.worker_id,
            n: lease.epoch,
            s: status.clone(),
        });
    }

    /// Announces a configuration change here and to the other replicas.
    pub(crate) fn announce_config(&self, change: ConfigChange) {
        // The store's own writes already dropped what they changed; a change announced
        // for a write made elsewhere (an embedder's) drops it here, before anyone hears.
        self.store.config_cache().apply(&change);
        self.observer.config_changed(&change);
        let _ = self.config_changes.send(change.clone());
        self.relay(Signal::Config { change });
    }

    /// Remembers that a subscriber of `chat_id` read the messages up to `last_id`, so a
    /// re-read after a relay gap starts no later than that.
    pub(crate) fn note_read(&self, chat_id: Uuid, last_id: i64) {
        if let Some(cluster) = &self.cluster {
            let mut cursors = lock(&cluster.cursors);
            let cursor = cursors.entry(chat_id).or_insert(last_id);
            *cursor = (*cursor).min(last_id);
        }
    }

    /// Sends what the relay still holds, at most [`RELAY_FLUSH_TIMEOUT`].
    pub(crate) async fn flush_relay(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.relay.flush(RELAY_FLUSH_TIMEOUT).await;
        }
    }

    /// Applies one signal of another replica to this one.
    async fn apply(&self, signal: Signal) {
        match signal {
            Signal::Event { e } => {
                if e.event_type == ChatStreamEventType::Message {
                    if let (Some(message), Some(cluster)) = (&e.message, &self.cluster) {
                        let mut cursors = lock(&cluster.cursors);
                        if let Some(cursor) = cursors.get_mut(&e.chat_id) {
                            *cursor = (*cursor).max(message.id);
                        }
                    }
                }
                self.hub.publish(*e);
            }
            Signal::BeginTurn { c } => self.hub.begin_turn(c),
            Signal::EndTurn { c } => self.hub.end_turn(c),
            Signal::ClearParts { c } => self.hub.clear_parts(c),
            Signal::Watch { c, w, calls } => {
                if let Some(chat) = self.watched_chat(c).await {
                    self.publish_watch_local(w, chat, calls);
                }
            }
            Signal::Wake => self.wake(),
            Signal::Stop { c, w, n, s } => {
                if w == self.worker_id {
                    let lease = Lease {
                        chat_id: c,
                        worker_id: w,
                        epoch: n,
                    };
                    self.stop_local_turn(&lease, &s);
                }
            }
            Signal::Config { change } => {
                // Applied here, not by a receiver of `config_changes`: a receiver can lag
                // and miss changes, this cannot.
                self.store.config_cache().apply(&change);
                self.observer.config_changed(&change);
                let _ = self.config_changes.send(change);
            }
            Signal::PartsWanted { c, w, r } => {
                if w == self.worker_id {
                    self.answer_parts_wanted(c, r);
                }
            }
            Signal::Parts {
                c,
                to,
                retry,
                parts,
            } => {
                if to == self.worker_id {
                    self.hub.restore_turn(
                        c,
                        crate::hub::ChatSnapshot {
                            retry,
                            parts: parts
                                .into_iter()
                                .map(|p| Arc::new(crate::hub::HubEvent::new(p)))
                                .collect(),
                        },
                    );
                    if let Some(cluster) = &self.cluster {
                        let waiters = lock(&cluster.parts_waiters).remove(&c);
                        for waiter in waiters.into_iter().flatten() {
                            let _ = waiter.send(());
                        }
                    }
                }
            }
        }
    }

    /// After a gap in what other replicas sent (or a lost `LISTEN` connection): re-reads
    /// and publishes the durable state of every chat this replica streams — status,
    /// messages after its cursor, queue, pending client calls — and a `status_change` of
    /// each watched owner's recent chats. Every value is whole, so subscribers take
    /// repeats in stride (live messages they hold are dropped by id).
    async fn resync(&self) {
        // Configuration changes may have been among what was missed.
        self.store.config_cache().clear();
        let chats = self.hub.subscribed_chats(MAX_RESYNC_CHATS);
        for chat_id in chats {
            if let Err(e) = self.resync_chat(chat_id).await {
                tracing::warn!(%chat_id, error = %e, "re-reading a chat after a relay gap failed");
            }
        }
        for owner in self.hub.watched_owners(MAX_RESYNC_CHATS) {
            match self
                .store
                .list_chats(owner, &ChatListQuery::default())
                .await
            {
                Ok(chats) => {
                    for chat in chats {
                        self.publish_watch_local(ChatWatchEventKind::StatusChange, chat, None);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "re-reading a chat list failed"),
            }
        }
    }

    async fn resync_chat(&self, chat_id: Uuid) -> Result<()> {
        let Some(chat) = self.store.get_chat(chat_id).await? else {
            return Ok(());
        };
        let cursor = self
            .cluster
            .as_ref()
            .and_then(|c| lock(&c.cursors).get(&chat_id).copied());
        let messages = match cursor {
            Some(after) => self.store.messages_after(chat_id, after).await?,
            None => Vec::new(),
        };
        let queue = self.store.list_queue(chat_id).await?;
        let calls = if chat.status == ChatStatus::RequiresAction {
            self.store.pending_tool_calls(chat_id).await?
        } else {
            Vec::new()
        };
        if let (Some(last), Some(cluster)) = (messages.last(), &self.cluster) {
            lock(&cluster.cursors).insert(chat_id, last.id);
        }
        for message in messages {
            self.hub.publish(ChatStreamEvent::message(chat_id, message));
        }
        self.hub
            .publish(ChatStreamEvent::queue_update(chat_id, queue));
        if chat.status != ChatStatus::Running {
            self.hub.end_turn(chat_id);
        } else if let Some(worker) = self.store.running_worker(chat_id).await? {
            if worker != self.worker_id {
                // The mirror of the running step may have a hole: take the worker's again
                // (its answer comes through this very loop, so no waiting here; parts
                // the current subscribers missed stay missed).
                self.relay(Signal::PartsWanted {
                    c: chat_id,
                    w: worker,
                    r: self.worker_id,
                });
            }
        }
        self.hub
            .publish(ChatStreamEvent::status(chat_id, chat.status.clone()));
        if !calls.is_empty() {
            self.hub
                .publish(ChatStreamEvent::action_required(chat_id, calls));
        }
        Ok(())
    }

    /// Forgets cursors of chats nobody here streams any more.
    fn prune_cursors(&self) {
        if let Some(cluster) = &self.cluster {
            lock(&cluster.cursors).retain(|chat_id, _| {
                self.hub
                    .chat_stats(*chat_id)
                    .is_some_and(|stats| stats.subscribers > 0)
            });
        }
    }

    /// Handles one notification payload.
    async fn receive(&self, payload: &str, last_seq: &mut HashMap<Uuid, u64>) {
        // This replica's own batches come back too (everyone listens on the channel):
        // recognised by their prefix, without decoding them.
        if payload
            .strip_prefix("{\"o\":\"")
            .is_some_and(|rest| rest.starts_with(&self.worker_id.to_string()))
        {
            return;
        }
        let envelope: Envelope = match serde_json::from_str(payload) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable relay notification; re-reading");
                self.resync().await;
                return;
            }
        };
        if envelope.o == self.worker_id {
            return;
        }
        if let Some(cluster) = &self.cluster {
            cluster.relay.peers.heard(crate::store::now_micros());
        }
        if last_seq.len() >= MAX_TRACKED_SENDERS && !last_seq.contains_key(&envelope.o) {
            last_seq.clear();
        }
        let gap = last_seq
            .insert(envelope.o, envelope.s)
            .is_some_and(|last| envelope.s != last.wrapping_add(1));
        let lag = crate::store::now_micros().saturating_sub(envelope.t);
        self.observer
            .relay_lag(Duration::from_micros(u64::try_from(lag).unwrap_or(0)));
        let mut lost = gap;
        let items = match envelope.b {
            Some(id) => match self.store.relay_blob(id).await {
                Ok(Some(text)) => serde_json::from_str(&text).unwrap_or_else(|_| {
                    lost = true;
                    Vec::new()
                }),
                Ok(None) | Err(_) => {
                    lost = true;
                    Vec::new()
                }
            },
            None => envelope.g,
        };
        for item in items {
            match serde_json::from_value::<Signal>(item) {
                Ok(signal) => self.apply(signal).await,
                // A signal of a newer replica during a rolling upgrade.
                Err(e) => tracing::debug!(error = %e, "skipped an unknown relay signal"),
            }
        }
        // After applying: the database is at least as new as any signal applied.
        if lost {
            tracing::info!(sender = %envelope.o, "relay gap; re-reading what this replica serves");
            self.resync().await;
        }
    }
}

/// The `LISTEN` loop: one dedicated connection, reconnected with back-off; after every
/// reconnection the replica re-reads what it serves (notifications sent meanwhile are
/// lost).
pub(crate) async fn listen(inner: Arc<Inner>, ready: tokio::sync::oneshot::Sender<()>) {
    let mut ready = Some(ready);
    let Some(cluster) = inner.cluster.clone() else {
        return;
    };
    let channel = cluster.namespace.channel.clone();
    let url = inner.store.url().expose().to_owned();
    let mut backoff = MIN_RECONNECT_BACKOFF;
    let mut connected_before = false;
    loop {
        if inner.shutdown.is_cancelled() {
            return;
        }
        let connected = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(&channel).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "connecting the relay listener failed; retrying");
                tokio::select! {
                    () = inner.shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
                continue;
            }
        };
        backoff = MIN_RECONNECT_BACKOFF;
        if let Some(ready) = ready.take() {
            // Tells the other replicas one more listens (their relays may be off while
            // they think themselves alone); a wake-up is harmless to them.
            cluster.relay.send_always(Signal::Wake);
            let _ = ready.send(());
        }
        // Sequence numbers from before the loss say nothing about what follows.
        let mut last_seq = HashMap::new();
        if connected_before {
            inner.observer.notification_reconnected();
            tracing::info!("relay listener reconnected; re-reading what this replica serves");
            inner.resync().await;
            // Chats may have become pending meanwhile.
            inner.wake();
        }
        connected_before = true;
        loop {
            let next = tokio::select! {
                () = inner.shutdown.cancelled() => return,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(notification)) => {
                    inner.receive(notification.payload(), &mut last_seq).await;
                    // A backlog of notifications is applied in one go otherwise; letting
                    // the subscribers' tasks run between them keeps a burst of relayed
                    // parts from overrunning their queues (HubConfig::subscriber_capacity).
                    tokio::task::yield_now().await;
                }
                Ok(None) => {
                    tracing::warn!("relay listener connection lost; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// The liveness loop: every liveness interval, hands back the chats of workers whose
/// liveness lock is free (their replica died), and forgets stale cursors.
pub(crate) async fn liveness(inner: Arc<Inner>) {
    let Some(cluster) = inner.cluster.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(inner.settings.liveness_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = inner.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        inner.prune_cursors();
        match inner.store.live_replicas(cluster.namespace.locks).await {
            Ok(replicas) => cluster.relay.peers.counted(replicas),
            // Unknown: relay, as before the first count.
            Err(e) => {
                cluster.relay.peers.counted(usize::MAX);
                tracing::debug!(error = %e, "counting the replicas failed");
            }
        }
        let workers = match inner.store.running_workers(inner.worker_id).await {
            Ok(workers) => workers,
            Err(e) => {
                tracing::debug!(error = %e, "looking for dead replicas failed");
                continue;
            }
        };
        for worker in workers {
            let released = inner
                .store
                .release_dead_worker(
                    worker,
                    cluster.namespace.locks,
                    Namespace::worker_key(worker),
                )
                .await;
            match released {
                Ok(transitions) if !transitions.is_empty() => {
                    tracing::info!(
                        %worker,
                        chats = transitions.len(),
                        "a replica died; handed its chats back"
                    );
                    inner
                        .observer
                        .recovered(RecoveryCause::DeadReplica, transitions.len());
                    for transition in transitions {
                        inner.end_turn(transition.chat_id);
                        inner.publish(transition).await;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%worker, error = %e, "releasing a dead replica's chats failed")
                }
            }
        }
    }
}
