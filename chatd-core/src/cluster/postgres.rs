//! The PostgreSQL side of the cluster: the relay's sending half (a bounded queue drained
//! by one task into `NOTIFY`s), the envelope format, and the liveness lock's holder.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use codersdk::Uuid;
use serde::Deserialize;
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    key32, Signal, MAX_NOTIFY_PAYLOAD_BYTES, MAX_RECONNECT_BACKOFF, MAX_SIGNALS_PER_ROUND,
    MIN_RECONNECT_BACKOFF, RELAY_BLOB_PURGE_INTERVAL, RELAY_BLOB_RETENTION, RELAY_QUEUE_CAPACITY,
};
use crate::error::{DbResultExt, Result};
use crate::store::{now_micros, Store};

/// Where one deployment's replicas meet: the schema's notification channel and the
/// namespace of its advisory locks.
#[derive(Debug, Clone)]
pub(crate) struct Namespace {
    /// The `LISTEN`/`NOTIFY` channel: `chatd_relay_` and a hash of the schema name.
    pub(crate) channel: String,
    /// First key of every liveness lock (the second is the worker's).
    pub(crate) locks: i32,
}

impl Namespace {
    pub(crate) fn of_schema(schema: &str) -> Namespace {
        let hash = key32(schema.as_bytes());
        Namespace {
            channel: format!("chatd_relay_{:08x}", hash as u32),
            locks: hash,
        }
    }

    /// The liveness-lock key of a worker.
    pub(crate) fn worker_key(worker: Uuid) -> i32 {
        key32(worker.as_bytes())
    }
}

/// A batch of signals as it travels: the sender, its sequence number, when it was sent,
/// and either the signals or the id of the `relay_blobs` row holding them.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    /// The sending worker.
    pub(crate) o: Uuid,
    /// The sender's sequence number; consecutive batches differ by one.
    pub(crate) s: u64,
    /// When it was sent, Unix microseconds.
    pub(crate) t: i64,
    /// The signals, each decoded on its own (one a newer replica added is skipped).
    #[serde(default)]
    pub(crate) g: Vec<serde_json::Value>,
    /// The `relay_blobs` row holding `g` when it was too large for a notification.
    #[serde(default)]
    pub(crate) b: Option<i64>,
}

/// Whether other replicas can hear this one: the relay sends no per-turn signals while it
/// is alone, since no one would receive them (a notification per publication is most of a
/// lone replica's statements; docs/turn-path.md).
///
/// Another replica counts as present while the liveness locks of the namespace number more
/// than one (counted every liveness interval), and for [`PEER_SIGNAL_GRACE`] after any
/// notification from one: a replica announces itself when it starts listening, so the
/// others relay to it within milliseconds rather than at their next count.
#[derive(Debug)]
pub(crate) struct Peers {
    /// Replicas holding a liveness lock at the last count; `usize::MAX` before the first
    /// count (unknown: relay).
    replicas: AtomicUsize,
    /// When another replica was last heard from, Unix microseconds (`i64::MIN`: never).
    last_heard: AtomicI64,
}

/// How long a notification from another replica keeps the relay on without a lock count
/// confirming it (longer than any liveness interval in use, so the count takes over).
pub(crate) const PEER_SIGNAL_GRACE: Duration = Duration::from_secs(30);

impl Peers {
    pub(crate) fn new() -> Peers {
        Peers {
            replicas: AtomicUsize::new(usize::MAX),
            last_heard: AtomicI64::new(i64::MIN),
        }
    }

    /// Records a lock count.
    pub(crate) fn counted(&self, replicas: usize) {
        self.replicas.store(replicas, Ordering::SeqCst);
    }

    /// Records a notification from another replica at `now` (Unix microseconds).
    pub(crate) fn heard(&self, now: i64) {
        self.last_heard.fetch_max(now, Ordering::SeqCst);
    }

    /// Whether another replica may be listening at `now` (Unix microseconds).
    pub(crate) fn present(&self, now: i64) -> bool {
        if self.replicas.load(Ordering::SeqCst) > 1 {
            return true;
        }
        let grace = i64::try_from(PEER_SIGNAL_GRACE.as_micros()).unwrap_or(i64::MAX);
        now.saturating_sub(self.last_heard.load(Ordering::SeqCst)) < grace
    }
}

/// The sending half of the relay: [`Relay::send`] never waits; one task sends.
#[derive(Debug)]
pub(crate) struct Relay {
    queue: mpsc::Sender<Signal>,
    /// Who can hear the relay; nothing is sent while nobody can.
    pub(crate) peers: Arc<Peers>,
    /// Signals queued or being sent, for [`Relay::flush`].
    in_flight: Arc<AtomicUsize>,
    /// A signal was dropped (queue full): the next batch skips a sequence number.
    overflowed: Arc<AtomicBool>,
}

impl Relay {
    /// Starts the sending task (spawned by `spawn`) for `worker` on `namespace`.
    pub(crate) fn start(
        store: Store,
        worker: Uuid,
        namespace: Namespace,
        spawn: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
    ) -> Relay {
        let (queue, rx) = mpsc::channel(RELAY_QUEUE_CAPACITY);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let overflowed = Arc::new(AtomicBool::new(false));
        let sender = Sender {
            store,
            worker,
            channel: namespace.channel,
            seq: AtomicU64::new(0),
            in_flight: Arc::clone(&in_flight),
            overflowed: Arc::clone(&overflowed),
        };
        spawn(Box::pin(sender.run(rx)));
        Relay {
            queue,
            peers: Arc::new(Peers::new()),
            in_flight,
            overflowed,
        }
    }

    /// Queues `signal` for the other replicas, without waiting. A full queue drops it and
    /// marks a gap.
    pub(crate) fn send(&self, signal: Signal) {
        // Only the per-turn traffic (stream events, watch hints, wake-ups) is held back
        // while alone: it is most of the statements, and a replica that just started and
        // is not heard yet loses at most milliseconds of it. Stops, configuration changes
        // and parts requests are rare and must not be lost, so they always go.
        let per_turn = matches!(
            signal,
            Signal::Event { .. }
                | Signal::BeginTurn { .. }
                | Signal::EndTurn { .. }
                | Signal::ClearParts { .. }
                | Signal::Watch { .. }
                | Signal::Wake
        );
        if per_turn && !self.peers.present(now_micros()) {
            return;
        }
        self.send_always(signal);
    }

    /// [`Relay::send`] even when no other replica is known: a replica's announcement of
    /// itself.
    pub(crate) fn send_always(&self, signal: Signal) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.queue.try_send(signal).is_err() {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if !self.overflowed.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    capacity = RELAY_QUEUE_CAPACITY,
                    "relay queue full; dropping signals (other replicas will re-read the \
                     database)"
                );
            }
        }
    }

    /// Waits until every queued signal was sent (or failed), at most `timeout`.
    pub(crate) async fn flush(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct Sender {
    store: Store,
    worker: Uuid,
    channel: String,
    seq: AtomicU64,
    in_flight: Arc<AtomicUsize>,
    overflowed: Arc<AtomicBool>,
}

impl Sender {
    async fn run(self, mut rx: mpsc::Receiver<Signal>) {
        let mut last_purge = tokio::time::Instant::now();
        while let Some(first) = rx.recv().await {
            let mut round = vec![first];
            while round.len() < MAX_SIGNALS_PER_ROUND {
                match rx.try_recv() {
                    Ok(signal) => round.push(signal),
                    Err(_) => break,
                }
            }
            let count = round.len();
            self.send_round(round).await;
            self.in_flight.fetch_sub(count, Ordering::SeqCst);
            if last_purge.elapsed() >= RELAY_BLOB_PURGE_INTERVAL {
                last_purge = tokio::time::Instant::now();
                if let Err(e) = self.store.purge_relay_blobs(RELAY_BLOB_RETENTION).await {
                    tracing::debug!(error = %e, "purging relay blobs failed");
                }
            }
        }
    }

    /// Encodes `round` into as few payloads as fit and sends them in order.
    async fn send_round(&self, round: Vec<Signal>) {
        let items = round
            .iter()
            .filter_map(|signal| match serde_json::to_string(signal) {
                Ok(item) => Some(item),
                Err(e) => {
                    tracing::error!(error = %e, "encoding a relay signal failed");
                    None
                }
            })
            .collect();
        for batch in pack(items) {
            self.send_batch(batch).await;
        }
    }

    /// Sends one batch as a notification, or through `relay_blobs` when too large.
    async fn send_batch(&self, items: Vec<String>) {
        let seq = next_seq(&self.seq, &self.overflowed);
        let signals = format!("[{}]", items.join(","));
        let head = format!(
            "{{\"o\":\"{}\",\"s\":{seq},\"t\":{}",
            self.worker,
            now_micros()
        );
        let mut payload = format!("{head},\"g\":{signals}}}");
        if payload.len() >= MAX_NOTIFY_PAYLOAD_BYTES {
            match self.store.insert_relay_blob(&signals).await {
                Ok(id) => payload = format!("{head},\"b\":{id}}}"),
                Err(e) => {
                    // The sequence number is used up: receivers see the gap and re-read.
                    tracing::warn!(error = %e, "storing a relay batch failed");
                    return;
                }
            }
        }
        if let Err(e) = self.store.notify(&self.channel, &payload).await {
            tracing::warn!(error = %e, "sending a relay notification failed");
        }
    }
}

/// The next sequence number: one more than the last, two more after a dropped signal
/// (so receivers see a gap).
fn next_seq(seq: &AtomicU64, overflowed: &AtomicBool) -> u64 {
    let skip = u64::from(overflowed.swap(false, Ordering::SeqCst));
    seq.fetch_add(1 + skip, Ordering::SeqCst) + 1 + skip
}

/// Room an envelope's header (sender id, sequence number, time, brackets) takes beside
/// its signals, with margin.
const ENVELOPE_HEADER_BYTES: usize = 200;

/// Groups encoded signals, in order, into batches whose envelope stays below
/// [`MAX_NOTIFY_PAYLOAD_BYTES`]; a signal too large for any envelope is a batch of its own
/// (sent through `relay_blobs`).
fn pack(items: Vec<String>) -> Vec<Vec<String>> {
    let mut batches = Vec::new();
    let mut batch: Vec<String> = Vec::new();
    let mut size = ENVELOPE_HEADER_BYTES;
    for item in items {
        let grown = size + item.len() + 1;
        if !batch.is_empty() && grown > MAX_NOTIFY_PAYLOAD_BYTES {
            batches.push(std::mem::take(&mut batch));
            size = ENVELOPE_HEADER_BYTES;
        }
        size += item.len() + 1;
        batch.push(item);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

impl Store {
    /// `NOTIFY channel, payload` (PostgreSQL), in a transaction of its own that does not
    /// wait for its commit record to reach the disk: a notification is not durable anyway
    /// (receivers re-read the database after a gap), and waiting for a flush per relay
    /// batch would put a disk sync on every streamed part.
    pub(crate) async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        sqlx::query("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(self.pool())
            .await
            .db()?;
        Ok(())
    }
}

/// Takes the liveness lock of `worker` on a fresh dedicated connection: `Ok(Some)` holding
/// it, `Ok(None)` when another session holds it (a previous connection of this very
/// replica that PostgreSQL has not noticed is gone yet).
async fn take_lock(url: &str, namespace: i32, key: i32) -> Result<Option<PgConnection>> {
    let mut conn = PgConnection::connect(url).await.db()?;
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(namespace)
        .bind(key)
        .fetch_one(&mut conn)
        .await
        .db()?;
    Ok(taken.then_some(conn))
}

/// The liveness lock of this replica, held on its own connection for the replica's life.
pub(crate) struct LivenessLock {
    conn: PgConnection,
    url: String,
    namespace: i32,
    key: i32,
}

impl LivenessLock {
    /// Takes the lock, waiting (with back-off, until `give_up`) while another session
    /// still holds it.
    pub(crate) async fn acquire(
        url: &str,
        namespace: i32,
        worker: Uuid,
        give_up: Duration,
    ) -> Result<LivenessLock> {
        let key = Namespace::worker_key(worker);
        let deadline = tokio::time::Instant::now() + give_up;
        let mut backoff = MIN_RECONNECT_BACKOFF;
        loop {
            match take_lock(url, namespace, key).await {
                Ok(Some(conn)) => {
                    return Ok(LivenessLock {
                        conn,
                        url: url.to_owned(),
                        namespace,
                        key,
                    })
                }
                Ok(None) if tokio::time::Instant::now() < deadline => {}
                Ok(None) => {
                    return Err(crate::error::Error::new(
                        crate::error::ErrorKind::Database,
                        "another session holds this worker's liveness lock",
                    ))
                }
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
        }
    }

    /// Keeps the lock until `stop`: checks the connection every `interval` and, when it is
    /// gone (so is the lock: other replicas may hand this replica's chats back, and the
    /// fencing stops its turns), takes the lock again on a new connection.
    pub(crate) async fn hold(mut self, interval: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
            if self.conn.ping().await.is_ok() {
                continue;
            }
            tracing::warn!("the liveness lock's connection was lost; taking the lock again");
            let mut backoff = MIN_RECONNECT_BACKOFF;
            loop {
                if stop.is_cancelled() {
                    return;
                }
                match take_lock(&self.url, self.namespace, self.key).await {
                    Ok(Some(conn)) => {
                        self.conn = conn;
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, "retaking the liveness lock failed"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
            }
        }
        // Closing the connection releases the lock; the hand-back of the chats is done by
        // then (shutdown released them first).
        let _ = self.conn.close().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn the_relay_is_on_while_another_replica_holds_a_lock_or_was_heard_within_the_grace() {
        let grace = i64::try_from(PEER_SIGNAL_GRACE.as_micros()).unwrap();
        let peers = Peers::new();
        // Before the first count: unknown, so on.
        assert!(peers.present(0));
        peers.counted(1);
        assert!(!peers.present(0), "alone and never heard from anyone");
        peers.counted(2);
        assert!(peers.present(0));
        peers.counted(1);
        peers.heard(1_000);
        assert!(peers.present(1_000 + grace - 1), "just inside the grace");
        assert!(!peers.present(1_000 + grace), "the grace is over");
        // An older notification never moves the last one back.
        peers.heard(10);
        assert!(peers.present(1_000 + grace - 1));
    }

    #[test]
    fn batches_stay_below_the_payload_limit_and_keep_the_order() {
        let small = |i: usize| format!("{{\"k\":\"wake\",\"i\":{i:04}}}");
        let items: Vec<String> = (0..2_000).map(small).collect();
        let batches = pack(items.clone());
        assert!(batches.len() > 1);
        for batch in &batches {
            let body: usize = batch.iter().map(|i| i.len() + 1).sum();
            assert!(ENVELOPE_HEADER_BYTES + body <= MAX_NOTIFY_PAYLOAD_BYTES);
        }
        assert_eq!(batches.concat(), items, "order and content kept");
        // Exactly at the limit fits; one byte more starts a new batch.
        let room = MAX_NOTIFY_PAYLOAD_BYTES - ENVELOPE_HEADER_BYTES - 1;
        assert_eq!(pack(vec!["x".repeat(room)]).len(), 1);
        let two = pack(vec!["x".repeat(room - 2), "y".to_owned()]);
        assert_eq!(two.len(), 1);
        let split = pack(vec!["x".repeat(room - 1), "y".to_owned()]);
        assert_eq!(split.len(), 2);
        // Oversize signals travel alone, between their neighbours.
        let big = "z".repeat(MAX_NOTIFY_PAYLOAD_BYTES * 3);
        let batches = pack(vec!["a".into(), big.clone(), "b".into()]);
        assert_eq!(
            batches,
            vec![vec!["a".to_owned()], vec![big], vec!["b".to_owned()]]
        );
    }

    #[test]
    fn alone_the_relay_holds_back_per_turn_signals_but_not_stops_or_config() {
        let (queue, _rx) = mpsc::channel(RELAY_QUEUE_CAPACITY);
        let relay = Relay {
            queue,
            peers: Arc::new(Peers::new()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            overflowed: Arc::new(AtomicBool::new(false)),
        };
        relay.peers.counted(1);
        relay.send(Signal::Wake);
        assert_eq!(
            relay.in_flight.load(Ordering::SeqCst),
            0,
            "nobody hears a wake-up"
        );
        relay.send(Signal::Config {
            change: crate::cluster::ConfigChange::Deployment,
        });
        assert_eq!(
            relay.in_flight.load(Ordering::SeqCst),
            1,
            "a change always goes"
        );
        relay.peers.counted(2);
        relay.send(Signal::Wake);
        assert_eq!(relay.in_flight.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_full_queue_drops_and_the_next_batch_skips_a_sequence_number() {
        let (queue, rx) = mpsc::channel(RELAY_QUEUE_CAPACITY);
        let relay = Relay {
            queue,
            peers: Arc::new(Peers::new()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            overflowed: Arc::new(AtomicBool::new(false)),
        };
        for _ in 0..RELAY_QUEUE_CAPACITY {
            relay.send(Signal::Wake);
        }
        assert!(
            !relay.overflowed.load(Ordering::SeqCst),
            "the capacity itself fits"
        );
        relay.send(Signal::Wake);
        assert!(relay.overflowed.load(Ordering::SeqCst));
        assert_eq!(relay.in_flight.load(Ordering::SeqCst), RELAY_QUEUE_CAPACITY);
        drop(rx);
        let seq = AtomicU64::new(0);
        let overflowed = AtomicBool::new(false);
        assert_eq!(next_seq(&seq, &overflowed), 1);
        assert_eq!(next_seq(&seq, &overflowed), 2);
        overflowed.store(true, Ordering::SeqCst);
        assert_eq!(next_seq(&seq, &overflowed), 4, "3 is the gap");
        assert_eq!(next_seq(&seq, &overflowed), 5);
    }
}
