//! The one driver of time: `serve`, `simulate` and the tests move the same engine and outbox
//! through the same two steps — fire the timers that are due, send the messages that are due
//! — and differ only in how they wait for the next due instant.
//!
//! - [`Driver::run`] (`serve`, the system clock): the firing loops of
//!   [`crate::runtime::scheduler`] and the outbox sender ([`Outbox::run`]) run side by side, each
//!   sleeping until its own next due instant (at most 10 s, decision 8) or until woken, so a
//!   slow SMTP server never delays a deadline and a burst of timers never delays the mail.
//! - [`Driver::run_until`] / [`Driver::run_before`] (`simulate`, tests, a [`VirtualClock`]):
//!   one sequential loop that jumps the clock to the earliest next due instant of timers *or*
//!   outbox (a digest's release, a retry, a refilled rate budget) and takes [`Driver::step`]
//!   there, so a run is deterministic and sends exactly what `serve` would, digests merged.
//!   Scripted events (a scenario's completions) go between calls: `run_before(t)`, act,
//!   go on.

use crate::engine::{Engine, EngineError, Fired};
use crate::notify::outbox::Outbox;
use crate::runtime::clock::{Clock, VirtualClock};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::watch;

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Firing timers failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The outbox could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one [`Driver::step`] did.
#[derive(Debug, Default)]
pub struct Turn {
    /// The timers that fired, in order.
    pub fired: Vec<Fired>,
    /// How many messages were sent.
    pub sent: usize,
}

/// The engine and (when messages are to be sent) its outbox sender, driven through time.
#[derive(Debug, Clone)]
pub struct Driver {
    engine: Arc<Engine>,
    outbox: Option<Arc<Outbox>>,
}

impl Driver {
    /// A driver that fires timers and sends through `outbox`; without one, rows stay queued
    /// in the outbox (tests that read them as the engine wrote them).
    pub fn new(engine: Arc<Engine>, outbox: Option<Arc<Outbox>>) -> Self {
        Driver { engine, outbox }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The outbox sender, if any.
    pub fn outbox(&self) -> Option<&Arc<Outbox>> {
        self.outbox.as_ref()
    }

    /// Fire every timer due now, batch by batch, then send every message due now.
    pub async fn step(&self) -> Result<Turn, DriverError> {
        let fired = self.engine.fire_due().await?;
        let sent = match &self.outbox {
            Some(o) => o.deliver_due().await?,
            None => 0,
        };
        Ok(Turn { fired, sent })
    }

    /// Under a virtual clock: take a step at every instant something is due, up to and
    /// including `until`, and leave the clock at `until`. Returns what fired.
    pub async fn run_until(
        &self,
        clock: &VirtualClock,
        until: DateTime<Utc>,
    ) -> Result<Vec<Fired>, DriverError> {
        let mut fired = self.run_before(clock, until).await?;
        fired.extend(self.step().await?.fired);
        Ok(fired)
    }

    /// Under a virtual clock: take a step at every instant something is due strictly before
    /// `until` (and now), then move the clock to `until` without stepping there — what is due
    /// at `until` comes after whatever the caller does at that instant. Returns what fired.
    /// The clock never moves backwards.
    pub async fn run_before(
        &self,
        clock: &VirtualClock,
        until: DateTime<Utc>,
    ) -> Result<Vec<Fired>, DriverError> {
        let mut fired = Vec::new();
        loop {
            let now = clock.now();
            if now >= until {
                break;
            }
            fired.extend(self.step().await?.fired);
            // After a step, what is due now has been taken; an instant at or before now can
            // only be another process's claim, and must not make the loop spin at now.
            match self.next_after(now).await? {
                Some(next) if next < until => clock.set(next),
                _ => {
                    clock.set(until);
                    break;
                }
            }
        }
        Ok(fired)
    }

    /// The earliest instant later than `now` at which a timer or a message becomes due (a
    /// message held for a digest counts from its release, a throttled one from its budget's
    /// refill).
    async fn next_after(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, DriverError> {
        let timer = self.engine.next_due_at().await?.filter(|t| *t > now);
        let send = match &self.outbox {
            Some(o) => o.next_send_at().await?.filter(|t| *t > now),
            None => None,
        };
        Ok(timer.into_iter().chain(send).min())
    }

    /// Run the daemon until `shutdown` turns true: the firing loops and, with an outbox, the
    /// sender, each sleeping on the engine's clock. In-flight work finishes first.
    pub async fn run(&self, shutdown: watch::Receiver<bool>) {
        let sender = self
            .outbox
            .clone()
            .map(|o| tokio::spawn(o.run(shutdown.clone())));
        crate::runtime::scheduler::run(self.engine.clone(), shutdown).await;
        if let Some(s) = sender
            && let Err(e) = s.await
        {
            tracing::error!(error = %e, "outbox sender task failed");
        }
    }
}
