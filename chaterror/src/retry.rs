//! Retry policy: exponential backoff without jitter, the
//! provider's Retry-After as a floor, at most [`MAX_ATTEMPTS`] attempts.
//!
//! The schedule for attempts that keep failing without a Retry-After hint is 1, 2, 4, 8,
//! 16, 32 s and then 60 s for each further wait: 24 waits, 1143 s (about 19 minutes) in all.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::markers::{is_canceled, Canceled, TransportReset};
use crate::{classify, BoxError, ClassifiedError, Error};

/// The wait before the second attempt.
pub const INITIAL_DELAY: Duration = Duration::from_secs(1);

/// Backoff never waits longer than this (a Retry-After hint may, see [`effective_delay`]).
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// The most times [`retry`] runs the operation.
pub const MAX_ATTEMPTS: u32 = 25;

/// Each backoff delay is this many times the previous one.
pub const BACKOFF_FACTOR: u32 = 2;

/// The backoff before retry number `attempt + 1` (0-based `attempt`): [`INITIAL_DELAY`]
/// multiplied by [`BACKOFF_FACTOR`] `attempt` times, at most [`MAX_DELAY`].
///
/// ```
/// use chaterror::retry::delay;
/// use std::time::Duration;
/// assert_eq!(delay(0), Duration::from_secs(1));
/// assert_eq!(delay(5), Duration::from_secs(32));
/// assert_eq!(delay(6), Duration::from_secs(60));
/// assert_eq!(delay(u32::MAX), Duration::from_secs(60));
/// ```
pub fn delay(attempt: u32) -> Duration {
    let mut d = INITIAL_DELAY;
    for _ in 0..attempt {
        if d >= MAX_DELAY {
            break;
        }
        d = d.saturating_mul(BACKOFF_FACTOR);
    }
    d.min(MAX_DELAY)
}

/// The wait before retry number `attempt + 1` of a failure classified as `c`: the backoff
/// [`delay`], or the provider's Retry-After if that is longer. The hint is a floor: it never
/// shortens the backoff, and it is not limited by [`MAX_DELAY`] (only by
/// [`MAX_RETRY_AFTER`](crate::MAX_RETRY_AFTER)).
pub fn effective_delay(attempt: u32, c: &ClassifiedError) -> Duration {
    delay(attempt).max(c.retry_after())
}

/// Whether [`classify`] considers `err` retryable.
pub fn is_retryable(err: &(dyn StdError + 'static)) -> bool {
    classify(err).is_retryable()
}

/// Something [`retry`] can watch for cancellation: a [`CancellationToken`], or a
/// [`CauseToken`] that also says why.
pub trait Cancellation {
    /// The token whose cancellation stops the retry loop.
    fn token(&self) -> &CancellationToken;

    /// Why the token was cancelled, if known. [`retry`] returns it as the error's source.
    fn cause(&self) -> Option<Arc<dyn StdError + Send + Sync + 'static>> {
        None
    }
}

impl Cancellation for CancellationToken {
    fn token(&self) -> &CancellationToken {
        self
    }
}

/// A [`CancellationToken`] that records why it was cancelled (Go's
/// `context.WithCancelCause`). The first cause wins.
///
/// ```
/// use chaterror::retry::CauseToken;
/// let t = CauseToken::new();
/// t.cancel_with_cause("chat archived");
/// t.cancel_with_cause("ignored: the first cause wins");
/// assert!(t.is_cancelled());
/// assert_eq!(t.cause().map(|c| c.to_string()).as_deref(), Some("chat archived"));
/// ```
#[derive(Clone, Default)]
pub struct CauseToken {
    token: CancellationToken,
    cause: Arc<OnceLock<Arc<dyn StdError + Send + Sync + 'static>>>,
}

impl CauseToken {
    /// A fresh, uncancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records causes for an existing token (for example a child of a wider one).
    pub fn from_token(token: CancellationToken) -> Self {
        CauseToken {
            token,
            cause: Arc::default(),
        }
    }

    /// The underlying token.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Cancels without a cause.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Cancels, recording `cause` unless a cause was recorded before.
    pub fn cancel_with_cause(&self, cause: impl Into<BoxError>) {
        let _ = self.cause.set(Arc::from(cause.into()));
        self.token.cancel();
    }

    /// Whether the token is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The recorded cause.
    pub fn cause(&self) -> Option<Arc<dyn StdError + Send + Sync + 'static>> {
        self.cause.get().cloned()
    }
}

impl std::fmt::Debug for CauseToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CauseToken")
            .field("cancelled", &self.token.is_cancelled())
            .field("cause", &self.cause.get())
            .finish()
    }
}

impl Cancellation for CauseToken {
    fn token(&self) -> &CancellationToken {
        &self.token
    }

    fn cause(&self) -> Option<Arc<dyn StdError + Send + Sync + 'static>> {
        CauseToken::cause(self)
    }
}

/// Runs `op` until it succeeds, fails for good, runs out of attempts or `cancel` fires
///.
///
/// `op` receives a child of the cancellation token for each attempt. After a retryable
/// failure, `on_retry(attempt, error, classification, delay)` is called (`attempt` is
/// 1-based: the number of the attempt that failed) before waiting `delay`; use it to publish
/// a retry event ([`ClassifiedError::to_stream_retry`]) and reset partial output.
///
/// Outcomes:
/// - `Ok` with the first success.
/// - The caller cancelled (before, during or between attempts; an attempt in flight is
///   dropped): [`ErrorKind::Canceled`](crate::ErrorKind::Canceled), whose source is the
///   token's cause or [`Canceled`].
/// - A failure that is not retryable, including one with `x-should-retry: false`:
///   [`ErrorKind::NotRetryable`](crate::ErrorKind::NotRetryable) at once.
/// - [`MAX_ATTEMPTS`] failures: [`ErrorKind::RetriesExhausted`](crate::ErrorKind::RetriesExhausted),
///   whose text is `max retry attempts (25) exceeded: <last error>`.
///
/// In the last two cases the error carries the classification, so [`classify`] of it
/// gives the same value `on_retry` would have seen.
///
/// An attempt that fails only because it was cancelled (a non-retryable cancellation with
/// no HTTP status) while the caller's token is still live was cut by something else, such
/// as a dropped connection: it is wrapped in a [`TransportReset`] and retried as a
/// `timeout`, unless the error also says something that must not be retried (such as
/// `insufficient_quota`).
pub async fn retry<C, T, E, F, Fut, R>(cancel: &C, mut op: F, mut on_retry: R) -> Result<T, Error>
where
    C: Cancellation + ?Sized,
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    R: FnMut(u32, &(dyn StdError + Send + Sync + 'static), &ClassifiedError, Duration),
{
    let token = cancel.token();
    let mut attempt: u32 = 0;
    loop {
        if token.is_cancelled() {
            return Err(canceled(cancel));
        }
        let outcome = tokio::select! {
            biased;
            outcome = op(token.child_token()) => outcome,
            () = token.cancelled() => return Err(canceled(cancel)),
        };
        let err: BoxError = match outcome {
            Ok(value) => return Ok(value),
            Err(e) => e.into(),
        };
        if token.is_cancelled() {
            return Err(canceled(cancel));
        }
        let (err, classified) = classify_attempt(err);
        if !classified.is_retryable() {
            return Err(Error::not_retryable(err, classified));
        }
        attempt += 1;
        if attempt >= MAX_ATTEMPTS {
            return Err(Error::retries_exhausted(err, classified));
        }
        let wait = effective_delay(attempt - 1, &classified);
        on_retry(attempt, &*err, &classified, wait);
        tokio::select! {
            biased;
            () = token.cancelled() => return Err(canceled(cancel)),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

fn canceled<C: Cancellation + ?Sized>(cancel: &C) -> Error {
    Error::canceled(cancel.cause().unwrap_or_else(|| Arc::new(Canceled)))
}

/// Classifies a failed attempt, turning a bare cancellation the caller did not ask for
/// into a retryable transport reset.
fn classify_attempt(err: BoxError) -> (BoxError, ClassifiedError) {
    let classified = classify(&*err);
    if classified.is_retryable() || classified.status_code() != 0 || !is_canceled(&*err) {
        return (err, classified);
    }
    let reset: BoxError = Box::new(TransportReset::wrap(err));
    let reclassified = classify(&*reset);
    if reclassified.is_retryable() {
        return (reset, reclassified);
    }
    // Something in the error forbids retrying (insufficient_quota, say): keep it as it was.
    match reset.downcast::<TransportReset>() {
        Ok(reset) => match reset.into_inner() {
            Some(original) => (original, classified),
            None => (Box::new(TransportReset::new()), classified),
        },
        Err(reset) => (reset, classified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_table() {
        for (attempt, secs) in [
            (0, 1),
            (1, 2),
            (2, 4),
            (3, 8),
            (4, 16),
            (5, 32),
            (6, 60),
            (10, 60),
            (100, 60),
        ] {
            assert_eq!(
                delay(attempt),
                Duration::from_secs(secs),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn whole_schedule_sums_to_1143_seconds() {
        let total: Duration = (0..MAX_ATTEMPTS - 1).map(delay).sum();
        assert_eq!(total, Duration::from_secs(1143));
    }
}
