//! What the engine needs of time: "now", and a way to sleep until an instant. The runtime
//! provides the system clock and the virtual one (`crate::runtime::clock`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A source of "now" that the scheduler can also sleep on.
#[async_trait]
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Return at `until` or after `max`, whichever comes first (a real clock may return
    /// early; callers re-read `now`).
    async fn sleep_until(&self, until: DateTime<Utc>, max: Duration);
}
