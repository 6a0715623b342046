//! Wall-clock time as a seam: what the engine's calendar rules read (usage-limit periods,
//! date-based auto-archive, retention windows), so tests can move it.
//!
//! Only calendar decisions go through a [`Clock`]. Row timestamps (`created_at`,
//! `updated_at`, heartbeats, leases) are written with the system time by the store: a
//! test sets the clock to where the rows it made should stand relative to it, rather than
//! moving every timestamp the database writes.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration as ChronoDuration, Utc};

/// A source of the current UTC time.
pub trait Clock: Debug + Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;

    /// Now in Unix microseconds (how the store keeps time).
    fn now_micros(&self) -> i64 {
        self.now().timestamp_micros()
    }
}

/// The system's clock (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until it is set or advanced: for tests of calendar rules.
/// Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// Moves the clock to `now` (also backwards).
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: ChronoDuration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let clock = ManualClock::new(start);
        let other = clock.clone();
        assert_eq!(clock.now(), start);
        other.advance(ChronoDuration::days(1));
        assert_eq!(clock.now(), start + ChronoDuration::days(1));
        clock.set(start);
        assert_eq!(other.now_micros(), start.timestamp_micros());
    }

    #[test]
    fn system_clock_is_close_to_utc_now() {
        let before = Utc::now();
        let now = SystemClock.now();
        assert!(now >= before);
    }
}
