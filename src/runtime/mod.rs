//! The runtime around the engine: the clock, the scheduler loop that drives time, `simulate`,
//! reloading edited files, and the daemon (`serve`) that wires store, engine, outbox and HTTP.

pub mod clock;
pub mod daemon;
pub mod reload;
pub mod scheduler;
pub mod simulate;
