//! Several replicas on one PostgreSQL database: what crosses between them.
//!
//! Every replica runs the whole engine; PostgreSQL is the only thing they share. Three
//! mechanisms make them behave as one (docs/engine-design.md "Several replicas on
//! PostgreSQL" explains the design and its limits):
//!
//! - **The relay.** Whatever the engine publishes into its stream hub (stream events, the
//!   turn's buffered parts, watch hints, wake-ups, stops of another replica's turn,
//!   configuration changes) is also sent as a signal to the other replicas: batched
//!   into `NOTIFY` payloads with a per-replica sequence number on one channel per schema,
//!   or stored in `relay_blobs` when a batch is too large for a notification. Each replica
//!   `LISTEN`s on one dedicated connection and applies what others sent to its own hub,
//!   so a subscriber anywhere sees the same snapshot-then-live sequence. A gap in a
//!   sender's sequence, or a lost `LISTEN` connection, makes the receiver re-read the
//!   durable state of every chat it serves (invariant 4: pub/sub is a hint).
//! - **Liveness locks.** Each replica holds a session-level advisory lock for its lifetime
//!   on a dedicated connection; PostgreSQL releases it the moment the process or its
//!   connection dies, and the other replicas, which try the locks of the workers owning
//!   `running` chats every [`DEFAULT_LIVENESS_INTERVAL`], hand that worker's chats back at
//!   once. The heartbeat and the stale threshold stay as the fallback.
//! - **Draining.** [`Engine::drain`](crate::Engine::drain) stops claiming, lets running
//!   turns finish for a grace period, then hands the rest back for the others.
//!
//! SQLite serves one process: the in-process path alone, nothing is sent.

pub(crate) mod postgres;

use std::time::Duration;

use codersdk::{ChatStatus, ChatStreamEvent, ChatStreamToolCall, ChatWatchEventKind, Uuid};
use serde::{Deserialize, Serialize};

/// Default [`EngineSettings::liveness_interval`](crate::EngineSettings::liveness_interval):
/// how often a replica looks for dead replicas (by their liveness locks) and hands their
/// chats back.
pub const DEFAULT_LIVENESS_INTERVAL: Duration = Duration::from_secs(1);

/// Largest `NOTIFY` payload the relay sends, in bytes. PostgreSQL refuses payloads of
/// 8 000 bytes or more; a batch that would be larger is split, and a single signal that is
/// larger on its own goes through `relay_blobs`.
pub const MAX_NOTIFY_PAYLOAD_BYTES: usize = 7_900;

/// Most signals waiting to be sent to the other replicas. When the database cannot keep
/// up, further signals are dropped and the next batch skips a sequence number, so the
/// receivers notice the gap and re-read the database.
pub const RELAY_QUEUE_CAPACITY: usize = 16_384;

/// Most signals the relay takes from its queue for one round of notifications.
pub const MAX_SIGNALS_PER_ROUND: usize = 512;

/// How long an oversize batch stays in `relay_blobs` for the receivers to read.
pub const RELAY_BLOB_RETENTION: Duration = Duration::from_secs(60);

/// How often the sending replica deletes `relay_blobs` rows older than
/// [`RELAY_BLOB_RETENTION`].
pub const RELAY_BLOB_PURGE_INTERVAL: Duration = Duration::from_secs(10);

/// First wait before reconnecting a lost `LISTEN` or liveness connection; doubled after
/// each failure up to [`MAX_RECONNECT_BACKOFF`].
pub const MIN_RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// Longest wait between two reconnection attempts.
pub const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(5);

/// Longest [`Engine::shutdown`](crate::Engine::shutdown) waits for the relay to send what
/// it holds (the hand-back of the last chats, so the other replicas take them at once).
pub const RELAY_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Most chats and most watched owners one re-read after a relay gap covers; a replica
/// serving more re-reads the most recently active ones (the others catch up at their
/// next event).
pub const MAX_RESYNC_CHATS: usize = 1_024;

/// Longest a subscriber on one replica waits for the worker's replica to send the parts
/// of the step in flight (when its own mirror of the turn is incomplete); past it the
/// subscription starts without them.
pub const PARTS_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// What a configuration write changed, for caches of it: every replica hears about every
/// change (through the relay on PostgreSQL), after the write committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConfigChange {
    /// Provider configurations or their central keys (a provider's deletion also erases
    /// users' own keys for it and deletes its model configs).
    Providers,
    /// A model configuration; also affects which one is the default.
    ModelConfig {
        /// The model configuration.
        id: Uuid,
    },
    /// A user's personal prompt.
    UserPrompt {
        /// The user.
        user_id: Uuid,
    },
    /// A user's own provider keys (bring your own key).
    UserProviderKeys {
        /// The user.
        user_id: Uuid,
    },
    /// A user's own compaction thresholds.
    UserCompactionThresholds {
        /// The user.
        user_id: Uuid,
    },
    /// A user's own debug-logging toggle.
    UserDebugLogging {
        /// The user.
        user_id: Uuid,
    },
    /// The deployment-wide prompts and settings (system prompt, plan-mode instructions,
    /// model overrides, debug logging).
    Deployment,
    /// MCP server configurations.
    McpServers,
    /// The deployment's usage-limit configuration (limit and period; overrides are read
    /// at each check, not cached).
    UsageLimits,
}

/// Why chats were handed back to `pending` by someone other than their worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecoveryCause {
    /// The worker's heartbeat was older than the stale threshold.
    Stale,
    /// The worker's replica died: its liveness lock was free.
    DeadReplica,
}

impl RecoveryCause {
    /// A short label for metrics: `stale`, `dead_replica`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecoveryCause::Stale => "stale",
            RecoveryCause::DeadReplica => "dead_replica",
        }
    }
}

/// Hooks for a replica's metrics; every method does nothing by default. Calls come from
/// the engine's tasks and must not block.
pub trait EngineObserver: Send + Sync + std::fmt::Debug {
    /// This replica claimed `count` chats.
    fn claimed(&self, count: usize) {
        let _ = count;
    }
    /// This replica handed `count` chats of others back to `pending`.
    fn recovered(&self, cause: RecoveryCause, count: usize) {
        let _ = (cause, count);
    }
    /// A relay batch arrived `lag` after another replica sent it (wall clocks of two
    /// machines: skew shows up here).
    fn relay_lag(&self, lag: Duration) {
        let _ = lag;
    }
    /// The `LISTEN` connection was lost and is back; the replica re-read what it serves.
    fn notification_reconnected(&self) {}
    /// A configuration change was announced (by this replica or another).
    fn config_changed(&self, change: &ConfigChange) {
        let _ = change;
    }
    /// This replica ran a retention sweep (docs/retention.md): when, and what it archived
    /// and purged.
    fn retention_swept(&self, sweep: &crate::RetentionSweep) {
        let _ = sweep;
    }
}

/// An observer that records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl EngineObserver for NoObserver {}

/// One thing a replica tells the others. Short field names: they travel in notification
/// payloads of at most [`MAX_NOTIFY_PAYLOAD_BYTES`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub(crate) enum Signal {
    /// A chat stream event, as published into the sender's hub.
    Event {
        /// The event.
        e: Box<ChatStreamEvent>,
    },
    /// A turn of the chat started: buffer its parts.
    BeginTurn {
        /// The chat.
        c: Uuid,
    },
    /// The chat's turn ended.
    EndTurn {
        /// The chat.
        c: Uuid,
    },
    /// The chat's buffered parts are void.
    ClearParts {
        /// The chat.
        c: Uuid,
    },
    /// A chat-list event of the chat's owner; receivers with watchers read the chat.
    Watch {
        /// The chat.
        c: Uuid,
        /// The event kind.
        w: ChatWatchEventKind,
        /// The pending client tool calls of an `action_required` event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        calls: Option<Vec<ChatStreamToolCall>>,
    },
    /// A chat became `pending`: claim.
    Wake,
    /// A transaction ended this turn (worker + epoch) and left the chat in status `s`.
    Stop {
        /// The chat.
        c: Uuid,
        /// The worker whose turn it was.
        w: Uuid,
        /// The lease epoch.
        n: i64,
        /// The chat's status after the transaction.
        s: ChatStatus,
    },
    /// Replica `r` has subscribers for chat `c`, which worker `w` runs, but did not see the
    /// turn start (it started, or lost notifications, mid-turn): `w`'s replica answers with
    /// [`Signal::Parts`].
    PartsWanted {
        /// The chat.
        c: Uuid,
        /// The worker running it.
        w: Uuid,
        /// The replica asking.
        r: Uuid,
    },
    /// The worker's buffered parts and retry state of chat `c`, for replica `to` to take
    /// as its mirror of the turn; the chat's later signals follow this one.
    Parts {
        /// The chat.
        c: Uuid,
        /// The replica that asked.
        to: Uuid,
        /// The retry the worker is waiting on, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry: Option<codersdk::ChatStreamRetry>,
        /// The buffered `message_part` events, oldest first.
        parts: Vec<ChatStreamEvent>,
    },
    /// The configuration changed.
    Config {
        /// What changed.
        change: ConfigChange,
    },
}

/// FNV-1a, 32 bits, as an `i32`: advisory-lock keys and channel names from schema names
/// and worker ids. Stable across versions and machines (replicas of different builds must
/// agree), which `std`'s hasher does not promise.
pub(crate) fn key32(bytes: &[u8]) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_fnv1a() {
        // Reference values of FNV-1a 32: "" and "a".
        assert_eq!(key32(b"") as u32, 0x811c_9dc5);
        assert_eq!(key32(b"a") as u32, 0xe40c_292c);
    }

    #[test]
    fn signals_round_trip_in_short_json() {
        let chat = Uuid::nil();
        let signal = Signal::Stop {
            c: chat,
            w: chat,
            n: 3,
            s: ChatStatus::Waiting,
        };
        let text = serde_json::to_string(&signal).unwrap_or_default();
        assert!(text.starts_with(r#"{"k":"stop""#), "{text}");
        let back: Signal = serde_json::from_str(&text).unwrap_or(Signal::Wake);
        assert!(matches!(back, Signal::Stop { n: 3, .. }));
        let change = ConfigChange::ModelConfig { id: chat };
        let text = serde_json::to_string(&Signal::Config { change }).unwrap_or_default();
        assert!(text.contains(r#""kind":"model_config""#), "{text}");
    }
}
