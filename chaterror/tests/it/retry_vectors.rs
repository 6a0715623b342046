//! Every retry vector of core.md §B.3, on paused tokio time so that the whole schedule
//! runs instantly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::error::Error as StdError;
use std::time::Duration;

use crate::common::*;
use chaterror::retry::{
    self, delay, effective_delay, is_retryable, CauseToken, MAX_ATTEMPTS, MAX_DELAY,
};
use chaterror::{
    classify, classify_text, is_canceled, is_transport_reset, BoxError, Canceled, ClassifiedError,
    ErrorKind, ProviderError,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What `on_retry` saw.
#[derive(Debug)]
struct Seen {
    attempt: u32,
    error: String,
    transport_reset: bool,
    canceled: bool,
    classified: ClassifiedError,
    delay: Duration,
}

/// Runs `retry` over a script of outcomes (success once the script runs out) and records
/// calls and `on_retry` arguments.
async fn run_script(
    script: Vec<Result<(), BoxError>>,
) -> (Result<(), chaterror::Error>, u32, Vec<Seen>) {
    let token = CancellationToken::new();
    let mut script = script.into_iter();
    let mut calls = 0u32;
    let mut seen = Vec::new();
    let result = retry::retry(
        &token,
        |_attempt_token| {
            calls += 1;
            let outcome = script.next().unwrap_or(Ok(()));
            async move { outcome }
        },
        |attempt, err: &(dyn StdError + Send + Sync + 'static), c: &ClassifiedError, d| {
            seen.push(Seen {
                attempt,
                error: err.to_string(),
                transport_reset: is_transport_reset(err),
                canceled: is_canceled(err),
                classified: c.clone(),
                delay: d,
            });
        },
    )
    .await;
    (result, calls, seen)
}

fn fail(text: &str) -> Result<(), BoxError> {
    Err(Box::new(e(text)))
}

#[tokio::test(start_paused = true)]
async fn succeeds_first_time() {
    let (r, calls, seen) = run_script(vec![]).await;
    assert!(r.is_ok());
    assert_eq!(calls, 1);
    assert!(seen.is_empty());
}

#[tokio::test(start_paused = true)]
async fn transient_failures_then_success() {
    for (script, want_calls) in [
        (vec![fail("service unavailable")], 2),
        (
            vec![fail("overloaded"), fail("overloaded"), fail("overloaded")],
            4,
        ),
        (
            vec![Err(
                Box::new(wrap("received status 500 from upstream", Canceled)) as BoxError,
            )],
            2,
        ),
        (
            vec![fail(
                "http2: client connection force closed via ClientConn.Close",
            )],
            2,
        ),
    ] {
        let (r, calls, _) = run_script(script).await;
        assert!(r.is_ok());
        assert_eq!(calls, want_calls);
    }
}

/// Go's `onRetry == nil` is a no-op closure here.
#[tokio::test(start_paused = true)]
async fn no_op_on_retry() {
    let token = CancellationToken::new();
    let mut calls = 0;
    let r = retry::retry(
        &token,
        |_| {
            calls += 1;
            let outcome: Result<u32, BoxError> = if calls == 1 {
                Err("overloaded".into())
            } else {
                Ok(calls)
            };
            async move { outcome }
        },
        |_, _, _, _| {},
    )
    .await;
    assert_eq!(r.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn status_401_with_canceled_is_terminal_auth() {
    let (r, calls, _) = run_script(vec![Err(Box::new(wrap(
        "received status 401 from upstream",
        Canceled,
    )))])
    .await;
    let err = r.unwrap_err();
    assert_eq!(calls, 1);
    assert_eq!(err.kind(), ErrorKind::NotRetryable);
    assert!(is_canceled(&err));
    assert!(!is_transport_reset(&err));
    Want::kind("auth", false)
        .status(401)
        .check("401", &classify(&err));
}

#[tokio::test(start_paused = true)]
async fn insufficient_quota_with_canceled_stays_usage_limit() {
    let (r, calls, _) = run_script(vec![Err(Box::new(wrap("insufficient_quota", Canceled)))]).await;
    let err = r.unwrap_err();
    assert_eq!(calls, 1);
    assert!(!is_transport_reset(&err));
    Want::kind("usage_limit", false)
        .status(0)
        .check("quota", &classify(&err));
}

#[tokio::test(start_paused = true)]
async fn bare_cancel_with_live_caller_is_a_transport_reset() {
    let (r, calls, seen) = run_script(vec![Err(Box::new(Canceled))]).await;
    assert!(r.is_ok());
    assert_eq!(calls, 2);
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert!(s.transport_reset && s.canceled, "{s:?}");
    Want::kind("timeout", true)
        .status(0)
        .message(UNAVAILABLE_MSG)
        .detail("provider transport reset context canceled")
        .check("reset", &s.classified);
    assert_eq!(s.error, "provider transport reset\ncontext canceled");
}

#[tokio::test(start_paused = true)]
async fn caller_cancel_inside_attempt_is_not_a_transport_reset() {
    let token = CancellationToken::new();
    let mut calls = 0;
    let r: Result<(), _> = retry::retry(
        &token,
        |_| {
            calls += 1;
            token.cancel();
            async { Err::<(), _>(Canceled) }
        },
        |_, _, _, _| panic!("no retry after the caller cancelled"),
    )
    .await;
    let err = r.unwrap_err();
    assert_eq!(calls, 1);
    assert!(err.is_canceled());
    assert!(is_canceled(&err));
    assert!(!is_transport_reset(&err));
    Want::kind("generic", false)
        .message(CANCELED_MSG)
        .check("caller cancel", &classify(&err));
}

#[derive(Debug, thiserror::Error)]
#[error("chat archived by the user")]
struct Archived;

#[tokio::test(start_paused = true)]
async fn caller_cancel_cause_is_returned() {
    let token = CauseToken::new();
    let r: Result<(), _> = retry::retry(
        &token,
        |_| {
            token.cancel_with_cause(Archived);
            async { Err::<(), _>(Canceled) }
        },
        |_, _, _, _| {},
    )
    .await;
    let err = r.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Canceled);
    assert!(err.get_ref().downcast_ref::<Archived>().is_some());
    assert!(err.source().unwrap().downcast_ref::<Archived>().is_some());
    assert_eq!(err.to_string(), "chat archived by the user");
    assert!(
        !is_canceled(&err),
        "the cause replaces the bare cancellation"
    );
}

#[tokio::test(start_paused = true)]
async fn non_retryable_returns_at_once() {
    let (r, calls, seen) = run_script(vec![fail("invalid api key")]).await;
    let err = r.unwrap_err();
    assert_eq!(calls, 1);
    assert!(seen.is_empty());
    assert_eq!(err.to_string(), "invalid api key");
    assert_eq!(err.kind(), ErrorKind::NotRetryable);
    assert_eq!(classify(&err), classify_text("invalid api key"));
    assert!(!err.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn cancel_during_wait() {
    let token = CancellationToken::new();
    let mut calls = 0;
    let canceller = token.clone();
    let r: Result<(), _> = retry::retry(
        &token,
        |_| {
            calls += 1;
            async { Err::<(), _>(e("overloaded")) }
        },
        move |_, _, _, _| {
            let t = canceller.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                t.cancel();
            });
        },
    )
    .await;
    let err = r.unwrap_err();
    assert_eq!(calls, 1);
    assert!(err.is_canceled() && is_canceled(&err));
}

#[tokio::test(start_paused = true)]
async fn cancel_during_attempt_that_fails() {
    let token = CancellationToken::new();
    let r: Result<(), _> = retry::retry(
        &token,
        |_| {
            token.cancel();
            async { Err::<(), _>(e("overloaded")) }
        },
        |_, _, _, _| {},
    )
    .await;
    assert!(r.unwrap_err().is_canceled());
}

#[tokio::test(start_paused = true)]
async fn cancel_drops_an_attempt_that_never_ends() {
    let token = CancellationToken::new();
    let canceller = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        canceller.cancel();
    });
    let start = Instant::now();
    let r: Result<(), _> = retry::retry(
        &token,
        |attempt_token| async move {
            // A well-behaved attempt would watch its token; this one ignores it.
            let _ = attempt_token;
            std::future::pending::<Result<(), BoxError>>().await
        },
        |_, _, _, _| {},
    )
    .await;
    assert!(r.unwrap_err().is_canceled());
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn already_cancelled_never_calls() {
    let token = CancellationToken::new();
    token.cancel();
    let mut calls = 0;
    let r: Result<(), _> = retry::retry(
        &token,
        |_| {
            calls += 1;
            async { Ok::<(), BoxError>(()) }
        },
        |_, _, _, _| {},
    )
    .await;
    assert!(r.unwrap_err().is_canceled());
    assert_eq!(calls, 0);
}

#[tokio::test(start_paused = true)]
async fn attempt_token_is_a_child_of_the_callers() {
    let token = CancellationToken::new();
    let r: Result<bool, _> = retry::retry(
        &token,
        |attempt_token| async move {
            attempt_token.cancel(); // must not cancel the caller
            Ok::<_, BoxError>(attempt_token.is_cancelled())
        },
        |_, _, _, _| {},
    )
    .await;
    assert!(r.unwrap());
    assert!(!token.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn rate_limit_twice_uses_backoff() {
    let text = "received status 429 from upstream";
    let (r, calls, seen) = run_script(vec![fail(text), fail(text)]).await;
    assert!(r.is_ok());
    assert_eq!(calls, 3);
    let attempts: Vec<u32> = seen.iter().map(|s| s.attempt).collect();
    let delays: Vec<Duration> = seen.iter().map(|s| s.delay).collect();
    assert_eq!(attempts, [1, 2]);
    assert_eq!(delays, [delay(0), delay(1)]);
    assert_eq!(delays, [Duration::from_secs(1), Duration::from_secs(2)]);
    for s in &seen {
        assert_eq!(s.classified, classify_text(text));
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_a_floor() {
    for (header, value, want_delay, want_hint) in [
        (
            "Retry-After",
            "3",
            Duration::from_secs(3),
            Duration::from_secs(3),
        ),
        (
            "Retry-After-Ms",
            "500",
            Duration::from_secs(1),
            Duration::from_millis(500),
        ),
        // Not capped at MAX_DELAY.
        (
            "retry-after",
            "120",
            Duration::from_secs(120),
            Duration::from_secs(120),
        ),
    ] {
        let err = ProviderError::new("slow down")
            .with_status(429)
            .with_header(header, value);
        let start = Instant::now();
        let (r, calls, seen) = run_script(vec![Err(Box::new(err))]).await;
        assert!(r.is_ok());
        assert_eq!(calls, 2);
        assert_eq!(seen[0].delay, want_delay, "{header}: {value}");
        assert_eq!(seen[0].classified.retry_after(), want_hint);
        assert_eq!(start.elapsed(), want_delay);
    }
}

#[tokio::test(start_paused = true)]
async fn whole_schedule_of_25_attempts() {
    let start = Instant::now();
    let (r, calls, seen) = run_script((0..100).map(|_| fail("overloaded")).collect()).await;
    let err = r.unwrap_err();
    assert_eq!(calls, MAX_ATTEMPTS);
    assert_eq!(seen.len(), 24);
    let delays: Vec<u64> = seen.iter().map(|s| s.delay.as_secs()).collect();
    let mut want = vec![1, 2, 4, 8, 16, 32];
    want.resize(24, MAX_DELAY.as_secs());
    assert_eq!(delays, want);
    let attempts: Vec<u32> = seen.iter().map(|s| s.attempt).collect();
    assert_eq!(attempts, (1..=24).collect::<Vec<_>>());
    assert_eq!(start.elapsed(), Duration::from_secs(1143));
    assert_eq!(
        err.to_string(),
        "max retry attempts (25) exceeded: overloaded"
    );
    assert!(err.is_retries_exhausted());
    assert_eq!(classify(&err), classify_text("overloaded"));
    // It keeps its retryable classification: the failure was transient, we ran out of time.
    assert!(err.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn x_should_retry_false_is_terminal() {
    let err = ProviderError::new("service unavailable")
        .with_status(503)
        .with_header("X-Should-Retry", "false");
    let (r, calls, _) = run_script(vec![Err(Box::new(err))]).await;
    let err = r.unwrap_err();
    assert_eq!(calls, 1);
    assert_eq!(err.kind(), ErrorKind::NotRetryable);
    Want::kind("timeout", false)
        .status(503)
        .message(UNAVAILABLE_MSG)
        .check("x-should-retry", &classify(&err));
}

#[test]
fn delay_vectors() {
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
        assert_eq!(delay(attempt), Duration::from_secs(secs));
    }
    let hinted = classify(
        &ProviderError::new("x")
            .with_status(429)
            .with_header("retry-after", "90"),
    );
    assert_eq!(effective_delay(0, &hinted), Duration::from_secs(90));
    assert_eq!(effective_delay(10, &classify_text("overloaded")), MAX_DELAY);
}

#[test]
fn is_retryable_table() {
    let retryable = [
        "model is overloaded, please try again",
        "rate limit exceeded",
        "rate_limit: too many requests",
        "too many requests",
        "received status 529 from upstream",
        "status 500: internal server error",
        "server error",
        "read tcp: connection reset by peer",
        "dial tcp: connection refused",
        "unexpected EOF",
        "write: broken pipe",
        "i/o timeout",
        "service unavailable",
        "the service is currently unavailable",
        "status 502: bad gateway",
        "status 503",
    ];
    let terminal = [
        "",
        "context canceled",
        "context deadline exceeded",
        "authentication failed",
        "401 Unauthorized",
        "403 Forbidden",
        "invalid api key",
        "invalid_api_key",
        "invalid model: gpt-5-turbo",
        "model not found",
        "model_not_found",
        "context length exceeded",
        "context_exceeded",
        "maximum context length",
        "quota exceeded",
        "billing issue: payment required",
    ];
    for text in retryable {
        assert!(is_retryable(&e(text)), "{text}");
        assert!(is_retryable(&wrap("wrapped", e(text))), "wrapped {text}");
    }
    for text in terminal {
        assert!(!is_retryable(&e(text)), "{text}");
        assert!(!is_retryable(&wrap("wrapped", e(text))), "wrapped {text}");
    }
    assert!(!is_retryable(&Canceled));
    assert!(!is_retryable(&wrap("wrapped", Canceled)));
}
