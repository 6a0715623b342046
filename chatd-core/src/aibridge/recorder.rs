//! The recorder: the [`InterceptionSink`] that stores, costs and logs the gateway's
//! records off the request path.
//!
//! `finished` puts the record on a bounded queue with `try_send` and returns: a full queue
//! drops the record and counts it ([`RecorderStats::dropped`], a warning at most once per
//! [`RecorderSettings::drop_log_interval`]); nothing a proxy does waits for the database.
//! One writer task drains the queue in batches of up to [`RecorderSettings::batch_size`]
//! records, each batch one transaction ([`Store::record_interceptions`]), and then logs
//! every record's structured lines ([`super::logs`]). [`Recorder::flush`] waits until
//! everything queued before it is written; [`Recorder::shutdown`] flushes and stops the
//! writer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::interception::{InterceptionRecord, InterceptionSink, InterceptionStart};
use super::logs;
use crate::store::{NewInterception, NewToolUsage, Store};

/// Records the queue holds by default before `finished` drops them: a few seconds of a
/// busy gateway's calls while the database stalls.
pub const DEFAULT_RECORDER_QUEUE_CAPACITY: usize = 4096;

/// Records written per transaction by default.
pub const DEFAULT_RECORDER_BATCH_SIZE: usize = 256;

/// Bytes of a user prompt kept by default (cut on a character boundary).
pub const DEFAULT_MAX_PROMPT_BYTES: usize = 16 * 1024;

/// `model_thought` log lines per interception by default; the rest are counted in
/// `interception_end`'s `thoughts_dropped`.
pub const DEFAULT_MAX_THOUGHTS_LOGGED: usize = 32;

/// Bytes of one logged thought by default (cut on a character boundary).
pub const DEFAULT_MAX_THOUGHT_BYTES: usize = 4096;

/// At most one "records dropped" warning per this long by default.
pub const DEFAULT_DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Bytes kept of the record's free-text identity fields (provider and model names, client,
/// client session id, credential hint, correlation id): what a header or a JSON field of a
/// client could make arbitrarily long.
pub const MAX_RECORDED_FIELD_BYTES: usize = 512;

/// Bytes kept of a failure's message.
pub const MAX_RECORDED_ERROR_BYTES: usize = 2048;

/// The recorder's limits and switches. `Default` gives the `DEFAULT_*` constants and
/// prompt recording on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecorderSettings {
    /// Records the queue holds (at least 1).
    pub queue_capacity: usize,
    /// Records per transaction (at least 1).
    pub batch_size: usize,
    /// Whether user prompts are stored and logged (`--ai-gateway-record-prompts`).
    pub record_prompts: bool,
    /// Bytes of a prompt kept.
    pub max_prompt_bytes: usize,
    /// `model_thought` lines per interception.
    pub max_thoughts_logged: usize,
    /// Bytes of one logged thought.
    pub max_thought_bytes: usize,
    /// At most one drop warning per this long.
    pub drop_log_interval: Duration,
}

impl Default for RecorderSettings {
    fn default() -> Self {
        RecorderSettings {
            queue_capacity: DEFAULT_RECORDER_QUEUE_CAPACITY,
            batch_size: DEFAULT_RECORDER_BATCH_SIZE,
            record_prompts: true,
            max_prompt_bytes: DEFAULT_MAX_PROMPT_BYTES,
            max_thoughts_logged: DEFAULT_MAX_THOUGHTS_LOGGED,
            max_thought_bytes: DEFAULT_MAX_THOUGHT_BYTES,
            drop_log_interval: DEFAULT_DROP_LOG_INTERVAL,
        }
    }
}

impl RecorderSettings {
    /// These settings with a queue of `capacity` records.
    pub fn with_queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// These settings with prompt recording on or off.
    pub fn with_record_prompts(mut self, on: bool) -> Self {
        self.record_prompts = on;
        self
    }

    /// These settings keeping `bytes` of a prompt.
    pub fn with_max_prompt_bytes(mut self, bytes: usize) -> Self {
        self.max_prompt_bytes = bytes;
        self
    }

    /// These settings writing `size` records per transaction.
    pub fn with_batch_size(mut self, size: usize) -> Self {
        self.batch_size = size;
        self
    }
}

/// What the recorder did so far (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RecorderStats {
    /// Records written to the database.
    pub recorded: u64,
    /// Records dropped because the queue was full (or the recorder shut down).
    pub dropped: u64,
    /// Records lost because their batch's transaction failed (logged).
    pub write_failures: u64,
    /// Records waiting in the queue now.
    pub queued: u64,
}

enum Command {
    Record(Box<InterceptionRecord>),
    Flush(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// The gateway's [`InterceptionSink`] that persists records (exact cost, thread links,
/// sessions) and emits the structured logs. Cheap to clone; built with
/// [`Recorder::start`] inside a Tokio runtime.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    queue: mpsc::Sender<Command>,
    settings: RecorderSettings,
    recorded: Arc<AtomicU64>,
    dropped: AtomicU64,
    write_failures: Arc<AtomicU64>,
    /// When the last drop warning went out, and how many drops it has not reported yet.
    drop_log: Mutex<(Option<Instant>, u64)>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("settings", &self.inner.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Recorder {
    /// Starts the writer task over `store` (spawned on the current Tokio runtime).
    pub fn start(store: Store, settings: RecorderSettings) -> Recorder {
        let settings = RecorderSettings {
            queue_capacity: settings.queue_capacity.max(1),
            batch_size: settings.batch_size.max(1),
            ..settings
        };
        let (tx, rx) = mpsc::channel(settings.queue_capacity);
        let recorded = Arc::new(AtomicU64::new(0));
        let write_failures = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            store,
            settings: settings.clone(),
            recorded: Arc::clone(&recorded),
            write_failures: Arc::clone(&write_failures),
        };
        tokio::spawn(writer.run(rx));
        Recorder {
            inner: Arc::new(Inner {
                queue: tx,
                settings,
                recorded,
                dropped: AtomicU64::new(0),
                write_failures,
                drop_log: Mutex::new((None, 0)),
            }),
        }
    }

    /// Starts a recorder over the administration handle's database.
    pub fn for_admin(admin: &crate::Admin, settings: RecorderSettings) -> Recorder {
        Recorder::start(admin.store().clone(), settings)
    }

    /// The settings in force.
    pub fn settings(&self) -> &RecorderSettings {
        &self.inner.settings
    }

    /// Counters since start.
    pub fn stats(&self) -> RecorderStats {
        let capacity = self.inner.queue.max_capacity();
        let free = self.inner.queue.capacity();
        RecorderStats {
            recorded: self.inner.recorded.load(Ordering::Relaxed),
            dropped: self.inner.dropped.load(Ordering::Relaxed),
            write_failures: self.inner.write_failures.load(Ordering::Relaxed),
            queued: u64::try_from(capacity.saturating_sub(free)).unwrap_or(u64::MAX),
        }
    }

    /// Waits until every record queued before this call is written (or failed). Returns
    /// at once after [`Recorder::shutdown`].
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.queue.send(Command::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Writes what is queued and stops the writer; later records are dropped (counted).
    /// For a clean shutdown, after the HTTP server stopped taking requests.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.queue.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    fn count_drop(&self) {
        let total = self
            .inner
            .dropped
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let mut log = self
            .inner
            .drop_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.1 = log.1.saturating_add(1);
        let due = log
            .0
            .is_none_or(|at| at.elapsed() >= self.inner.settings.drop_log_interval);
        if due {
            tracing::warn!(
                dropped = log.1,
                dropped_total = total,
                queue_capacity = self.inner.settings.queue_capacity,
                "aibridge interception records dropped: the recorder's queue is full"
            );
            *log = (Some(Instant::now()), 0);
        }
    }
}

impl InterceptionSink for Recorder {
    fn started(&self, start: &InterceptionStart) {
        logs::interception_start(start, &self.inner.settings);
    }

    fn finished(&self, record: InterceptionRecord) {
        match self.inner.queue.try_send(Command::Record(Box::new(record))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_) | mpsc::error::TrySendError::Closed(_)) => {
                self.count_drop();
            }
        }
    }
}

struct Writer {
    store: Store,
    settings: RecorderSettings,
    recorded: Arc<AtomicU64>,
    write_failures: Arc<AtomicU64>,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Command>) {
        let mut batch: Vec<InterceptionRecord> = Vec::with_capacity(self.settings.batch_size);
        while let Some(first) = rx.recv().await {
            let mut replies = Vec::new();
            let mut stop = None;
            let mut next = Some(first);
            // Take what is queued now, up to a batch; a flush or a shutdown ends the batch.
            while let Some(command) = next.take() {
                match command {
                    Command::Record(r) => batch.push(*r),
                    Command::Flush(reply) => {
                        replies.push(reply);
                        break;
                    }
                    Command::Shutdown(reply) => {
                        stop = Some(reply);
                        break;
                    }
                }
                if batch.len() >= self.settings.batch_size {
                    break;
                }
                next = rx.try_recv().ok();
            }
            if !batch.is_empty() {
                self.write(std::mem::take(&mut batch)).await;
            }
            for reply in replies {
                let _ = reply.send(());
            }
            if let Some(reply) = stop {
                // Later records find the queue closed and are counted as dropped; what is
                // already queued behind the shutdown is written first.
                rx.close();
                while let Ok(command) = rx.try_recv() {
                    match command {
                        Command::Record(r) => batch.push(*r),
                        Command::Flush(reply) | Command::Shutdown(reply) => {
                            let _ = reply.send(());
                        }
                    }
                }
                for chunk in std::mem::take(&mut batch).chunks(self.settings.batch_size) {
                    self.write(chunk.to_vec()).await;
                }
                let _ = reply.send(());
                return;
            }
        }
    }

    async fn write(&self, records: Vec<InterceptionRecord>) {
        let rows: Vec<NewInterception> =
            records.iter().map(|r| to_row(r, &self.settings)).collect();
        let links = match self.store.record_interceptions(&rows).await {
            Ok(links) => {
                self.recorded.fetch_add(
                    u64::try_from(rows.len()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                links.into_iter().map(Some).collect::<Vec<_>>()
            }
            Err(e) => {
                self.write_failures.fetch_add(
                    u64::try_from(rows.len()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                tracing::error!(
                    records = rows.len(),
                    error = %e,
                    "writing aibridge interception records failed; they are logged but not stored"
                );
                vec![None; rows.len()]
            }
        };
        for ((record, row), link) in records.iter().zip(&rows).zip(links) {
            logs::interception_finished(record, row, link.as_ref(), &self.settings);
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
pub(crate) fn truncate_to(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    text.get(..end).unwrap_or_default()
}

fn bounded(text: &str) -> String {
    truncate_to(text, MAX_RECORDED_FIELD_BYTES).to_owned()
}

/// The exact cost of a record from the embedded price book, by the instance's provider
/// type and the model that answered: `None` when the model has no price, and when the
/// provider reported no usage at all (nothing to price).
pub fn interception_cost_micros(record: &InterceptionRecord) -> Option<i64> {
    if record.usage.is_empty() {
        return None;
    }
    let model = if record.model.is_empty() {
        record.start.model.as_str()
    } else {
        record.model.as_str()
    };
    let prices = chatcost::PriceBook::embedded().lookup(&record.start.provider_type, model);
    chatcost::calculate_total_cost_micros(&record.usage, prices.as_ref())
}

/// The row the writer stores for `record`: cost computed, text bounded, the prompt kept
/// only when prompts are recorded.
pub(crate) fn to_row(record: &InterceptionRecord, settings: &RecorderSettings) -> NewInterception {
    let s = &record.start;
    let model = if record.model.is_empty() {
        &s.model
    } else {
        &record.model
    };
    let mut row = NewInterception::new(
        s.id,
        s.user_id,
        truncate_to(&s.provider_name, MAX_RECORDED_FIELD_BYTES),
        truncate_to(&s.provider_type, MAX_RECORDED_FIELD_BYTES),
    );
    row.api = s.api.as_str().to_owned();
    row.requested_model = bounded(&s.model);
    row.model = bounded(model);
    row.client = s.client.as_deref().map(bounded);
    row.client_session_id = s
        .client_session_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .map(bounded);
    row.started_at = crate::store::timestamp_to_micros(s.started_at);
    row.ended_at = crate::store::timestamp_to_micros(record.ended_at).max(row.started_at);
    row.upstream_status = record.upstream_status.map(i64::from);
    row.error_kind = record.error_kind.as_ref().map(|k| k.as_str().to_owned());
    row.error_message = record
        .error_message
        .as_deref()
        .map(|m| truncate_to(m, MAX_RECORDED_ERROR_BYTES).to_owned());
    row.client_disconnected = record.client_disconnected;
    row.streamed = s.streamed;
    row.usage = record.usage;
    row.cost_micros = interception_cost_micros(record);
    row.credential_kind = s.credential_kind.as_str().to_owned();
    row.credential_hint = bounded(&s.credential_hint);
    row.prompt = if settings.record_prompts {
        s.prompt
            .as_deref()
            .map(|p| truncate_to(p, settings.max_prompt_bytes).to_owned())
    } else {
        None
    };
    row.correlation_id = s.correlation_id.as_deref().map(bounded);
    row.tool_calls = record
        .tool_calls
        .iter()
        .map(|t| NewToolUsage {
            call_id: bounded(&t.call_id),
            name: bounded(&t.name),
            argument_bytes: i64::try_from(t.argument_bytes).unwrap_or(i64::MAX),
        })
        .collect();
    row.tool_result_call_ids = s
        .tool_result_call_ids
        .iter()
        .take(crate::store::MAX_THREAD_LINK_CALL_IDS)
        .map(|id| bounded(id))
        .collect();
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_to("héllo", 2), "h");
        assert_eq!(truncate_to("héllo", 3), "hé");
        assert_eq!(truncate_to("abc", 3), "abc");
        assert_eq!(truncate_to("abc", 0), "");
    }
}
