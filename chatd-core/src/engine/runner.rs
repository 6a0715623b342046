//! The run loop (acquisition and stale recovery) and the heartbeat
//! loop.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use codersdk::{ChatStatus, Timestamp, Uuid};
use tokio::time::MissedTickBehavior;

use super::{lock, turn, Inner, StopCause, TurnControl};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{
    ClaimLimits, Lease, LeaseState, SendClaim, SendMessage, SendOutcome, TurnStart, MAX_CLAIM_BATCH,
};

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
            .saturating_sub(lock(&inner.active).len() + inner.send_slots.load(Ordering::Acquire));
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
            inner.spawn(turn::run_turn(
                Arc::clone(inner),
                control,
                turn::Announced::No,
            ));
        }
        if !full {
            return;
        }
    }
}

/// A turn slot of this process reserved by a send that may claim its own turn
/// ([`Inner::reserve_send_slot`]); counted with the running turns against
/// `max_active_turns` until dropped.
pub(crate) struct SendSlot {
    inner: Arc<Inner>,
}

impl SendSlot {
    /// What a send to `chat_id` asks the store for.
    fn claim(&self, chat_id: Uuid) -> SendClaim {
        SendClaim {
            worker_id: self.inner.worker_id,
            max_running_root_chats: self.inner.settings.max_running_root_chats,
            known: self.inner.histories.known(chat_id),
        }
    }
}

impl Drop for SendSlot {
    fn drop(&mut self) {
        self.inner.send_slots.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Inner {
    /// A turn slot for a send that claims the turn it starts, when claims on send are on
    /// and this process takes work (not draining), has a free slot, and its last claim
    /// left nothing pending (a send does not overtake chats already waiting; the store
    /// checks that too, across replicas). `None`: the send leaves the chat `pending` for
    /// the run loop.
    fn reserve_send_slot(self: &Arc<Self>) -> Option<SendSlot> {
        if !self.settings.claim_on_send
            || self.draining.is_cancelled()
            || self.claim_more.load(Ordering::Relaxed)
        {
            return None;
        }
        let reserved = self.send_slots.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = SendSlot {
            inner: Arc::clone(self),
        };
        let running = lock(&self.active).len();
        (running + reserved <= self.settings.max_active_turns).then_some(slot)
    }

    /// Sends a user message (to a chat of `owner`'s when given) and publishes what it
    /// committed. A send to an idle chat claims its turn for this process when it has a
    /// place ([`Store::send_and_claim`](crate::store::Store::send_and_claim)), so the turn
    /// starts without waiting for the run loop and a claim transaction: the turn is
    /// registered and its buffer opened before the publication announces `running`, and
    /// started after it, so subscribers get the message and the status before any part.
    /// A claiming send runs in a task of its own: a caller that goes away after the commit
    /// (a client that disconnects) must not leave the chat `running` with no turn.
    /// Returns what became of the message and the send's file-linking warnings.
    pub(crate) async fn send_and_publish(
        self: &Arc<Self>,
        chat_id: Uuid,
        owner: Option<Uuid>,
        send: SendMessage,
    ) -> Result<(SendOutcome, Vec<String>)> {
        let Some(slot) = self.reserve_send_slot() else {
            let sent = match owner {
                Some(owner) => self.store.send_message_as(chat_id, owner, send).await?,
                None => self.store.send_message(chat_id, send).await?,
            };
            self.publish(sent.transition).await;
            return Ok((sent.outcome, sent.warnings));
        };
        let inner = Arc::clone(self);
        let task = tokio::spawn(async move {
            let sent = inner
                .store
                .send_and_claim(chat_id, owner, send, slot.claim(chat_id))
                .await?;
            let control = sent.claimed.map(|lease| inner.adopt_claimed_turn(lease));
            // Registered: the turn counts as running now.
            drop(slot);
            inner.publish(sent.transition).await;
            if let Some(control) = control {
                inner.start_claimed_turn(control, sent.turn_start);
            }
            Ok((sent.outcome, sent.warnings))
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::new(
                ErrorKind::ShuttingDown,
                "the server is shutting down",
            )),
        }
    }

    /// Registers the turn a send claimed (`lease`) as running here and opens its buffer,
    /// before the send's publication announces `running`.
    fn adopt_claimed_turn(&self, lease: Lease) -> Arc<TurnControl> {
        self.observer.claimed(1);
        let control = Arc::new(TurnControl::new(lease));
        lock(&self.active).insert(lease, Arc::clone(&control));
        self.begin_turn(lease.chat_id);
        if self.shutdown.is_cancelled() {
            // Shutdown may have looked at the running turns before this one joined them:
            // it ends at once and hands the chat back.
            control.stop(StopCause::Shutdown);
        }
        control
    }

    /// Starts the turn [`Inner::adopt_claimed_turn`] registered, from `start` when the send
    /// read it.
    fn start_claimed_turn(self: &Arc<Self>, control: Arc<TurnControl>, start: Option<TurnStart>) {
        self.spawn(turn::run_turn(
            Arc::clone(self),
            control,
            turn::Announced::Yes(start.map(Box::new)),
        ));
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
