//! The run loop (acquisition and stale recovery) and the heartbeat
//! loop.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use codersdk::{ChatStatus, Timestamp};
use tokio::time::MissedTickBehavior;

use super::{lock, turn, Inner, StopCause, TurnControl};
use crate::store::{ClaimLimits, LeaseState, MAX_CLAIM_BATCH};

/// How long the run loop waits before claiming again when a pending chat it had a place
/// for was locked by another transaction (PostgreSQL's claims skip locked rows; the usual
/// one is the previous turn's summary write, a transaction of three statements): about as
/// long as such a write takes, far below the acquire interval. A chat still locked then is
/// retried again after the same wait.
pub const CONTENDED_CLAIM_RETRY: std::time::Duration = std::time::Duration::from_millis(1);

/// Claims `pending` chats when woken or every acquire interval, and runs stale recovery at
/// start-up and every recovery interval, until shutdown.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut acquire = tokio::time::interval(inner.settings.acquire_interval);
    acquire.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut recovery = tokio::time::interval(inner.settings.recovery_interval);
    recovery.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = inner.shutdown.cancelled() => return,
            _ = recovery.tick() => recover(&inner).await,
            () = inner.wake.notified() => {}
            _ = acquire.tick() => {}
        }
        if !inner.draining.is_cancelled() {
            claim(&inner).await;
        }
    }
}

/// Claims as many chats as there are free turn slots (in batches of at most
/// [`MAX_CLAIM_BATCH`]) and starts a turn for each.
async fn claim(inner: &Arc<Inner>) {
    loop {
        if inner.shutdown.is_cancelled() || inner.draining.is_cancelled() {
            return;
        }
        let free = inner
            .settings
            .max_active_turns
            .saturating_sub(lock(&inner.active).len());
        let batch = free.min(MAX_CLAIM_BATCH);
        if batch == 0 {
            // No free slot: a chat may be waiting for one.
            inner.claim_more.store(true, Ordering::Relaxed);
            return;
        }
        let limits = ClaimLimits {
            root_chats: inner.settings.max_running_root_chats,
            subagents: inner.settings.max_running_subagents,
        };
        let claimed = match inner
            .store
            .claim_pending_counted(inner.worker_id, batch, limits)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "claiming pending chats failed");
                inner.claim_more.store(true, Ordering::Relaxed);
                return;
            }
        };
        let leases = claimed.leases;
        let full = leases.len() == batch;
        inner
            .claim_more
            .store(full || claimed.left_pending, Ordering::Relaxed);
        if claimed.contended {
            // A pending chat was locked by a short write (a turn summary, another claim):
            // try again in a moment rather than at the next acquire interval.
            let retry = Arc::clone(inner);
            inner.spawn(async move {
                tokio::time::sleep(CONTENDED_CLAIM_RETRY).await;
                retry.wake();
            });
        }
        if !leases.is_empty() {
            inner.observer.claimed(leases.len());
        }
        for lease in leases {
            let control = Arc::new(TurnControl::new(lease));
            lock(&inner.active).insert(lease, Arc::clone(&control));
            inner.spawn(turn::run_turn(Arc::clone(inner), control));
        }
        if !full {
            return;
        }
    }
}

/// Stale recovery: hands chats of dead workers back and times out dynamic tool calls.
async fn recover(inner: &Arc<Inner>) {
    let now = Timestamp(chrono::Utc::now());
    match inner
        .store
        .recover_stale(now, inner.settings.stale_after)
        .await
    {
        Ok(recovered) => {
            let stale = recovered
                .transitions
                .iter()
                .filter(|t| t.status == ChatStatus::Pending)
                .count();
            if stale > 0 {
                inner
                    .observer
                    .recovered(crate::cluster::RecoveryCause::Stale, stale);
            }
            for transition in recovered.transitions {
                let chat_id = transition.chat_id;
                match transition.status {
                    ChatStatus::Pending => {
                        tracing::info!(%chat_id, "recovered a chat from a stale worker");
                    }
                    _ => tracing::info!(%chat_id, "dynamic tool calls timed out"),
                }
                inner.publish(transition).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "stale recovery failed"),
    }
}

/// Refreshes the heartbeats of this engine's running chats every heartbeat interval and
/// stops the turns whose lease is gone (another worker or an operation took the chat).
pub(crate) async fn heartbeats(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.settings.heartbeat_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick completes at once; a fresh claim already set the heartbeat.
    tick.tick().await;
    loop {
        tokio::select! {
            biased;
            () = inner.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let controls: Vec<Arc<TurnControl>> = lock(&inner.active).values().cloned().collect();
        if controls.is_empty() {
            continue;
        }
        let leases: Vec<_> = controls.iter().map(|c| c.lease).collect();
        match inner.store.heartbeat(inner.worker_id, &leases).await {
            Ok(kept) => {
                for control in &controls {
                    if !kept.contains(&control.lease) {
                        stop_unkept(&inner, control).await;
                    }
                }
            }
            // A failed heartbeat proves nothing; the next one retries. If the database
            // stays away long enough, recovery elsewhere takes the chats and the next
            // successful heartbeat (or the step write) stops these turns.
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

/// Stops a turn whose lease the heartbeat no longer found running. An interrupt that this
/// process did not see (made by another process, or committed before the turn was
/// registered) leaves the chat `waiting` under the same epoch: the turn then stops as
/// interrupted, keeping its partial step, and its finish runs the queue (an interrupting
/// send's message waits there). Anything else is a lost lease: stop without writing.
async fn stop_unkept(inner: &Inner, control: &TurnControl) {
    let cause = match inner.store.lease_state(&control.lease).await {
        Ok(LeaseState::Interrupted) => StopCause::Interrupted,
        // Owned again cannot be (the heartbeat just missed it); a failed read proves
        // nothing, so the next heartbeat decides.
        Ok(LeaseState::Owned) | Err(_) => return,
        Ok(LeaseState::Lost) => StopCause::LeaseLost,
    };
    control.stop(cause);
}
