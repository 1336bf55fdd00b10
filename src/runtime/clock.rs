//! Time as seen by the daemon: the system clock in production, a virtual clock in
//! `simulate` and in tests. Nothing outside this module reads the wall clock for the engine
//! (the [`Clock`] trait is the engine's: it says what it needs, the runtime provides it).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Mutex;
use std::time::Duration;

pub use crate::engine::clock::Clock;

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, until: DateTime<Utc>, max: Duration) {
        let wait = (until - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(max);
        tokio::time::sleep(wait).await;
    }
}

/// A clock that moves only when told to. Sleeping jumps straight to the instant slept
/// for, so a whole round runs in virtual time through the same scheduler loop.
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<DateTime<Utc>>,
}

impl VirtualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        VirtualClock {
            now: Mutex::new(start),
        }
    }

    /// Move to `t` (backwards too: clock-jump tests need it).
    pub fn set(&self, t: DateTime<Utc>) {
        if let Ok(mut n) = self.now.lock() {
            *n = t;
        }
    }

    /// Move forward by `d`.
    pub fn advance(&self, d: chrono::Duration) {
        if let Ok(mut n) = self.now.lock() {
            *n += d;
        }
    }
}

#[async_trait]
impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        self.now
            .lock()
            .map(|n| *n)
            .unwrap_or_else(|p| *p.into_inner())
    }

    /// `max` is ignored: nothing outside the simulation can change what is due, so the
    /// clock jumps straight to `until`.
    async fn sleep_until(&self, until: DateTime<Utc>, _max: Duration) {
        if until > self.now() {
            self.set(until);
        }
        // Let other tasks run, as a real sleep would.
        tokio::task::yield_now().await;
    }
}
