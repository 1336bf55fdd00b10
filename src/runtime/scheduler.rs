//! The scheduler's firing loops, the timer half of [`crate::runtime::driver::Driver::run`]:
//! fire one batch, then sleep until the next due instant or until woken by new work
//! (mini-redis `purge_expired_tasks` shape).
//!
//! The sleep is capped at [`MAX_SLEEP`] so that a wall-clock jump, or a timer inserted by
//! another process (a second daemon on PostgreSQL, a CLI command), is noticed within that
//! bound; the SQL timer table stays the only record of what must fire.

use crate::engine::{CLAIM_BATCH, Engine};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Longest sleep between checks of the timer table.
pub const MAX_SLEEP: Duration = Duration::from_secs(10);
/// Pause after a failed iteration (database down) before trying again.
const ERROR_BACKOFF: Duration = Duration::from_secs(2);
/// Pause when something is due but nothing could be claimed.
const HOT_LOOP_PAUSE_MS: i64 = 50;

fn logged<T>(r: crate::engine::Result<T>) -> Option<T> {
    match r {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(error = %e, "firing due timers failed; will retry");
            None
        }
    }
}

/// Run until `shutdown` turns true. In-flight work finishes before returning.
///
/// Runs as many firing loops as the store can write with at once
/// ([`crate::store::Store::firing_loops`]); claims never hand one timer to two loops.
pub async fn run(engine: Arc<Engine>, shutdown: watch::Receiver<bool>) {
    tracing::info!(owner = engine.owner(), "scheduler started");
    let mut peers = tokio::task::JoinSet::new();
    for _ in 1..engine.store().firing_loops().max(1) {
        peers.spawn(fire_loop(engine.clone(), shutdown.clone()));
    }
    fire_loop(engine, shutdown).await;
    while peers.join_next().await.is_some() {}
    tracing::info!("scheduler stopped");
}

async fn fire_loop(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            break;
        }
        // One batch per turn: what fired is not kept, and shutdown is seen between batches.
        let outcome = logged(engine.fire_batch().await);
        let failed = outcome.is_none();
        let fired = outcome.flatten().map_or(0, |f| f.len());
        if fired >= CLAIM_BATCH {
            // A full batch: more is likely due. Go round at once without asking, and wake
            // a peer loop that may be sleeping.
            engine.wake();
            continue;
        }
        let fired_any = fired > 0;
        let clock = engine.clock().clone();
        let (until, max) = match engine.next_due_at().await {
            Ok(Some(next)) => (next, MAX_SLEEP),
            Ok(None) => (
                clock.now() + chrono::Duration::from_std(MAX_SLEEP).unwrap_or_default(),
                MAX_SLEEP,
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the next due instant; retrying");
                (backoff(clock.now()), ERROR_BACKOFF)
            }
        };
        // Firing failed (the database refuses writes: disk full, read-only, ...) while
        // reads still work: pause rather than retry at once in a hot loop.
        let (until, max) = if failed {
            (backoff(clock.now()), ERROR_BACKOFF)
        } else {
            (until, max)
        };
        // Something became due while we were firing: go round again at once. If nothing
        // could be claimed although something is due (another daemon holds the row lock),
        // pause briefly instead of spinning.
        let (until, max) = if until <= clock.now() && !fired_any {
            (
                clock.now() + chrono::Duration::milliseconds(HOT_LOOP_PAUSE_MS),
                Duration::from_millis(HOT_LOOP_PAUSE_MS as u64).min(max),
            )
        } else {
            (until, max)
        };
        tokio::select! {
            _ = clock.sleep_until(until, max) => {}
            _ = engine.woken() => {}
            _ = shutdown.changed() => {}
        }
    }
}

fn backoff(now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    now + chrono::Duration::from_std(ERROR_BACKOFF).unwrap_or_default()
}
