//! The retention job (docs/retention.md): every [`EngineSettings::retention_interval`] —
//! and just after each UTC midnight — one replica sweeps, in order:
//!
//! 1. **auto-archive**: root chats whose whole family has been idle since before UTC
//!    midnight of (today − `auto_archive_days`) are archived, with the watch events and
//!    workspace releases of an archive by the user;
//! 2. **purge chats**: families archived longer ago than `retention_days` are deleted with
//!    their messages, queues, labels and file links;
//! 3. **purge debug runs**: debug runs last written before `debug_retention_days`
//!    (default 30; 0 keeps them until their chat goes) are deleted (docs/debug-runs.md);
//! 4. **purge AI Gateway records**: interceptions that started longer ago than
//!    [`EngineSettings::ai_gateway_retention_days`] (default 60; 0 keeps them) are deleted
//!    with their tool usages, and their sessions follow (docs/ai-gateway-records.md);
//! 5. **purge files**: files linked to no chat and older than
//!    [`UNLINKED_FILE_GRACE`](crate::store::UNLINKED_FILE_GRACE) are deleted (only while a
//!    retention window is set).
//!
//! Each step works in batches of [`RETENTION_BATCH_SIZE`], each batch (and each archived
//! family) its own short transaction, and never touches a busy chat. Calendar time is the
//! engine's [`Clock`](crate::Clock). [`Engine::run_retention_sweep`] runs one sweep now.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use codersdk::Uuid;

use super::{Engine, Inner};
use crate::error::Result;

/// How often the retention job sweeps ([`EngineSettings::retention_interval`]'s default);
/// it also sweeps just after every UTC midnight, when a new day's idle chats become due for
/// archiving, and once when the engine starts.
///
/// [`EngineSettings::retention_interval`]: super::EngineSettings::retention_interval
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Most families (or files) one batch of a sweep step handles, each batch in a transaction
/// of its own: a sweep over a large backlog holds no lock for long.
pub const RETENTION_BATCH_SIZE: usize = 100;

/// How long AI Gateway interception records are kept by default
/// ([`EngineSettings::ai_gateway_retention_days`]): Coder's `CODER_AIBRIDGE_RETENTION`
/// default.
///
/// [`EngineSettings::ai_gateway_retention_days`]: super::EngineSettings::ai_gateway_retention_days
pub const DEFAULT_AI_GATEWAY_RETENTION_DAYS: u32 = 60;

/// The shortest AI Gateway retention other than 0 (keep forever): the longest usage-limit
/// period, a calendar month, is at most 31 days, and a call purged while its period runs
/// would no longer count toward the user's spend (the admission check sums the stored
/// calls). With at least 31 days every call of a current period is still stored.
pub const MIN_AI_GATEWAY_RETENTION_DAYS: u32 = 31;

/// The longest AI Gateway retention (ten years, as the chats' `MAX_CHAT_RETENTION_DAYS`);
/// longer is 0, keep forever.
pub const MAX_AI_GATEWAY_RETENTION_DAYS: u32 = 3650;

/// Checks an AI Gateway retention in days: 0 (keep forever) or
/// [`MIN_AI_GATEWAY_RETENTION_DAYS`]..=[`MAX_AI_GATEWAY_RETENTION_DAYS`]; the error says
/// which values are accepted and why.
pub fn validate_ai_gateway_retention_days(days: u32) -> std::result::Result<u32, String> {
    if days == 0 || (MIN_AI_GATEWAY_RETENTION_DAYS..=MAX_AI_GATEWAY_RETENTION_DAYS).contains(&days)
    {
        Ok(days)
    } else {
        Err(format!(
            "the AI Gateway retention must be 0 (keep forever) or from \
             {MIN_AI_GATEWAY_RETENTION_DAYS} to {MAX_AI_GATEWAY_RETENTION_DAYS} days, not {days}: \
             a shorter window would purge calls that still count toward a monthly usage limit"
        ))
    }
}

/// How long after UTC midnight the job sweeps for the new day (the wait is the interval or
/// the time to the next midnight plus this, whichever is shorter): a margin for the wall
/// clock and the timer disagreeing, and never a zero wait.
pub const RETENTION_MIDNIGHT_SLACK: Duration = Duration::from_secs(1);

/// What one retention sweep did; reported to
/// [`EngineObserver::retention_swept`](crate::EngineObserver::retention_swept) and returned
/// by [`Engine::run_retention_sweep`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionSweep {
    /// When it started, by the engine's clock.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration: Duration,
    /// The retention window it applied, in days (0: nothing purged).
    pub retention_days: i32,
    /// The auto-archive window it applied, in days (0: nothing archived).
    pub auto_archive_days: i32,
    /// Families automatically archived.
    pub archived_families: u64,
    /// Chats those families had that changed (roots and sub-agents).
    pub archived_chats: u64,
    /// Archived families purged.
    pub purged_families: u64,
    /// Chats those families had (roots and sub-agents).
    pub purged_chats: u64,
    /// The debug-run retention it applied, in days (0: none purged).
    pub debug_retention_days: i32,
    /// Debug runs purged (with their steps).
    pub purged_debug_runs: u64,
    /// The AI Gateway retention it applied, in days (0: no record purged).
    pub ai_gateway_retention_days: u32,
    /// AI Gateway interceptions purged.
    pub purged_interceptions: u64,
    /// Their tool usages.
    pub purged_interception_tool_usages: u64,
    /// AI Gateway sessions left without calls, purged.
    pub purged_interception_sessions: u64,
    /// Unlinked files purged.
    pub purged_files: u64,
    /// Steps that failed (logged); the other steps still ran.
    pub failed_steps: u32,
}

/// The steps of a sweep, in the order they run: archiving first (what it archives is
/// purged a retention window later, never in the same sweep), then the chats, then the
/// files the purged chats no longer link. A new kind of retained data is one more step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    AutoArchive,
    PurgeChats,
    PurgeDebugRuns,
    PurgeInterceptions,
    PurgeFiles,
}

const STEPS: [Step; 5] = [
    Step::AutoArchive,
    Step::PurgeChats,
    Step::PurgeDebugRuns,
    Step::PurgeInterceptions,
    Step::PurgeFiles,
];

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::AutoArchive => "auto_archive",
            Step::PurgeChats => "purge_chats",
            Step::PurgeDebugRuns => "purge_debug_runs",
            Step::PurgeInterceptions => "purge_ai_gateway_records",
            Step::PurgeFiles => "purge_files",
        }
    }
}

/// The auto-archive cutoff at `now` for `days` idle days: UTC midnight starting the day
/// `days` days before today. A family whose last activity is before it is archived, so a
/// sweep at any hour of a day archives exactly the families idle since a whole day before
/// that, and all families idle since the same day go in the same sweep (the first after
/// midnight). `None` for 0 days (off) or a date out of range.
pub fn auto_archive_cutoff(now: DateTime<Utc>, days: i32) -> Option<DateTime<Utc>> {
    let days = u64::try_from(days).ok().filter(|d| *d > 0)?;
    let day = now.date_naive().checked_sub_days(chrono::Days::new(days))?;
    Some(day.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// The retention cutoff at `now` for a window of `days`: families archived before it are
/// purged. A rolling window (nobody is notified of a purge, so it need not fall on a date).
/// `None` for 0 days (keep forever) or a time out of range.
pub fn retention_cutoff(now: DateTime<Utc>, days: i32) -> Option<DateTime<Utc>> {
    let days = i64::from(days);
    if days <= 0 {
        return None;
    }
    now.checked_sub_signed(chrono::TimeDelta::try_days(days)?)
}

impl Engine {
    /// Runs one retention sweep now (the job's work, also while it waits): `None` when
    /// another replica is sweeping. Step failures are logged and counted in
    /// [`RetentionSweep::failed_steps`]; an error means the sweep could not start (the
    /// lease or the settings could not be read).
    pub async fn run_retention_sweep(&self) -> Result<Option<RetentionSweep>> {
        sweep(&self.inner).await
    }
}

/// The job: a sweep at start-up, then one every interval or just after UTC midnight,
/// whichever comes first, until shutdown. Not started without an interval.
pub(crate) async fn run(inner: Arc<Inner>) {
    let Some(interval) = inner.settings.retention_interval else {
        return;
    };
    loop {
        match sweep(&inner).await {
            Ok(Some(report)) => tracing::debug!(?report, "retention sweep done"),
            Ok(None) => tracing::debug!("retention sweep skipped: another replica sweeps"),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
        }
        let wait = next_wait(inner.clock.now(), interval);
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long the job waits after a sweep at `now`: `interval`, or until just after the next
/// UTC midnight when that is sooner.
fn next_wait(now: DateTime<Utc>, interval: Duration) -> Duration {
    let to_midnight = now
        .date_naive()
        .succ_opt()
        .map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc() - now)
        .and_then(|d| d.to_std().ok())
        .unwrap_or(interval);
    interval.min(to_midnight.saturating_add(RETENTION_MIDNIGHT_SLACK))
}

async fn sweep(inner: &Inner) -> Result<Option<RetentionSweep>> {
    let Some(lease) = inner.store.try_retention_lease().await? else {
        return Ok(None);
    };
    let started = Instant::now();
    let started_at = inner.clock.now();
    let settings = async {
        Ok::<_, crate::Error>((
            inner.store.retention_days().await?,
            inner.store.auto_archive_days().await?,
            inner.store.debug_retention_days().await?,
        ))
    }
    .await;
    let (retention_days, auto_archive_days, debug_retention_days) = match settings {
        Ok(days) => days,
        Err(e) => {
            let _ = lease.release().await;
            return Err(e);
        }
    };
    let mut report = RetentionSweep {
        started_at,
        duration: Duration::ZERO,
        retention_days,
        auto_archive_days,
        archived_families: 0,
        archived_chats: 0,
        purged_families: 0,
        purged_chats: 0,
        debug_retention_days,
        purged_debug_runs: 0,
        ai_gateway_retention_days: inner.settings.ai_gateway_retention_days,
        purged_interceptions: 0,
        purged_interception_tool_usages: 0,
        purged_interception_sessions: 0,
        purged_files: 0,
        failed_steps: 0,
    };
    for step in STEPS {
        if inner.shutdown.is_cancelled() {
            break;
        }
        let done = match step {
            Step::AutoArchive => auto_archive(inner, &mut report).await,
            Step::PurgeChats => purge_chats(inner, &mut report).await,
            Step::PurgeDebugRuns => purge_debug_runs(inner, &mut report).await,
            Step::PurgeInterceptions => purge_interceptions(inner, &mut report).await,
            Step::PurgeFiles => purge_files(inner, &mut report).await,
        };
        if let Err(e) = done {
            report.failed_steps += 1;
            tracing::warn!(step = step.name(), error = %e, "retention sweep step failed");
        }
    }
    report.duration = started.elapsed();
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "releasing the retention lease failed");
    }
    inner.observer.retention_swept(&report);
    Ok(Some(report))
}

/// Step 1: archives the families idle since before [`auto_archive_cutoff`], batch by batch
/// (a keyset over root ids, so a family that stopped qualifying is not read again).
async fn auto_archive(inner: &Inner, report: &mut RetentionSweep) -> Result<()> {
    let Some(cutoff) = auto_archive_cutoff(report.started_at, report.auto_archive_days) else {
        return Ok(());
    };
    let cutoff = cutoff.timestamp_micros();
    let mut after: Option<Uuid> = None;
    loop {
        let roots = inner
            .store
            .auto_archive_candidates(cutoff, after, RETENTION_BATCH_SIZE)
            .await?;
        for root in &roots {
            let changed = inner.store.auto_archive_family(*root, cutoff).await?;
            if !changed.is_empty() {
                report.archived_families += 1;
                report.archived_chats += u64::try_from(changed.len()).unwrap_or(u64::MAX);
                super::ops::publish_archive(inner, changed, true).await;
            }
        }
        if roots.len() < RETENTION_BATCH_SIZE || inner.shutdown.is_cancelled() {
            return Ok(());
        }
        after = roots.last().copied();
    }
}

/// Step 2: purges the families archived before [`retention_cutoff`], a batch per
/// transaction, until a batch comes back short.
async fn purge_chats(inner: &Inner, report: &mut RetentionSweep) -> Result<()> {
    let Some(cutoff) = retention_cutoff(report.started_at, report.retention_days) else {
        return Ok(());
    };
    loop {
        let purged = inner
            .store
            .purge_archived_chats(cutoff.timestamp_micros(), RETENTION_BATCH_SIZE)
            .await?;
        report.purged_families += purged.families;
        report.purged_chats += purged.chats;
        let full = usize::try_from(purged.families).unwrap_or(usize::MAX) >= RETENTION_BATCH_SIZE;
        if !full || inner.shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

/// Step 3: purges the debug runs last written before [`retention_cutoff`] of the debug
/// retention (runs a dead process left `in_progress` included), a batch per statement.
async fn purge_debug_runs(inner: &Inner, report: &mut RetentionSweep) -> Result<()> {
    let Some(cutoff) = retention_cutoff(report.started_at, report.debug_retention_days) else {
        return Ok(());
    };
    let batch = u32::try_from(RETENTION_BATCH_SIZE).unwrap_or(u32::MAX);
    loop {
        let purged = inner
            .store
            .purge_debug_runs(cutoff.timestamp_micros(), batch)
            .await?;
        report.purged_debug_runs += purged;
        if purged < u64::from(batch) || inner.shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

/// Step 4: purges the AI Gateway interceptions that started before [`retention_cutoff`]
/// of [`EngineSettings::ai_gateway_retention_days`] (a rolling window, like the chats'),
/// with their tool usages and emptied sessions, a batch per transaction.
///
/// [`EngineSettings::ai_gateway_retention_days`]: super::EngineSettings::ai_gateway_retention_days
async fn purge_interceptions(inner: &Inner, report: &mut RetentionSweep) -> Result<()> {
    let days = i32::try_from(report.ai_gateway_retention_days).unwrap_or(i32::MAX);
    let Some(cutoff) = retention_cutoff(report.started_at, days) else {
        return Ok(());
    };
    loop {
        let purged = inner
            .store
            .purge_interceptions(cutoff.timestamp_micros(), RETENTION_BATCH_SIZE)
            .await?;
        report.purged_interceptions += purged.interceptions;
        report.purged_interception_tool_usages += purged.tool_usages;
        report.purged_interception_sessions += purged.sessions;
        let full =
            usize::try_from(purged.interceptions).unwrap_or(usize::MAX) >= RETENTION_BATCH_SIZE;
        if !full || inner.shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

/// Step 5: while a retention window is set, purges the files no chat links that are older
/// than [`UNLINKED_FILE_GRACE`](crate::store::UNLINKED_FILE_GRACE), a batch per transaction.
async fn purge_files(inner: &Inner, report: &mut RetentionSweep) -> Result<()> {
    if report.retention_days <= 0 {
        return Ok(());
    }
    let grace = chrono::TimeDelta::from_std(crate::store::UNLINKED_FILE_GRACE)
        .unwrap_or(chrono::TimeDelta::MAX);
    let Some(cutoff) = report.started_at.checked_sub_signed(grace) else {
        return Ok(());
    };
    loop {
        let purged = inner
            .store
            .purge_unlinked_files(cutoff.timestamp_micros(), RETENTION_BATCH_SIZE)
            .await?;
        report.purged_files += purged;
        let full = usize::try_from(purged).unwrap_or(usize::MAX) >= RETENTION_BATCH_SIZE;
        if !full || inner.shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn the_auto_archive_cutoff_is_a_utc_midnight_whatever_the_hour() {
        for now in [
            "2026-12-07T00:00:00Z",
            "2026-12-07T00:00:01Z",
            "2026-12-07T12:34:56Z",
            "2026-12-07T23:59:59.999999Z",
        ] {
            assert_eq!(
                auto_archive_cutoff(at(now), 1),
                Some(at("2026-12-06T00:00:00Z")),
                "{now}"
            );
            assert_eq!(
                auto_archive_cutoff(at(now), 30),
                Some(at("2026-11-07T00:00:00Z"))
            );
        }
        assert_eq!(auto_archive_cutoff(at("2026-12-07T10:00:00Z"), 0), None);
        assert_eq!(auto_archive_cutoff(at("2026-12-07T10:00:00Z"), -1), None);
        assert_eq!(
            auto_archive_cutoff(
                at("2026-12-07T10:00:00Z"),
                codersdk::MAX_CHAT_RETENTION_DAYS
            ),
            Some(at("2016-12-09T00:00:00Z"))
        );
    }

    #[test]
    fn the_retention_cutoff_is_a_rolling_window() {
        assert_eq!(
            retention_cutoff(at("2026-12-07T10:30:00Z"), 2),
            Some(at("2026-12-05T10:30:00Z"))
        );
        assert_eq!(retention_cutoff(at("2026-12-07T10:30:00Z"), 0), None);
    }

    #[test]
    fn the_ai_gateway_retention_is_zero_or_a_month_to_ten_years() {
        for ok in [0, 31, 60, 3650] {
            assert_eq!(validate_ai_gateway_retention_days(ok), Ok(ok));
        }
        for bad in [1, 30, 3651, u32::MAX] {
            let Err(e) = validate_ai_gateway_retention_days(bad) else {
                panic!("{bad} accepted");
            };
            assert!(
                e.contains("0 (keep forever) or from 31 to 3650 days"),
                "{e}"
            );
            assert!(e.ends_with("monthly usage limit"), "{e}");
        }
    }

    #[test]
    fn the_job_wakes_just_after_midnight_when_that_comes_first() {
        let hour = Duration::from_secs(3600);
        assert_eq!(next_wait(at("2026-12-07T10:00:00Z"), hour), hour);
        assert_eq!(
            next_wait(at("2026-12-07T23:30:00Z"), hour),
            Duration::from_secs(30 * 60) + RETENTION_MIDNIGHT_SLACK
        );
        // A clock standing at midnight's edge still waits a little.
        assert_eq!(
            next_wait(at("2026-12-07T23:59:59.999999Z"), hour),
            Duration::from_micros(1) + RETENTION_MIDNIGHT_SLACK
        );
    }
}
