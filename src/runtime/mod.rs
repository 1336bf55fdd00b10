//! The runtime around the engine: the clock, the one driver of time (the scheduler's firing
//! loops and the outbox sender for `serve`, a stepping loop under a virtual clock for
//! `simulate` and the tests), the app builder they share, `simulate`, reloading edited files,
//! and the daemon (`serve`).

pub mod app;
pub mod clock;
pub mod daemon;
pub mod driver;
pub mod reload;
pub mod scheduler;
pub mod simulate;
