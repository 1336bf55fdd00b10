//! The pure core: the workflow model and its loading, validation, the calendar, recurring
//! schedules, the planner and message rendering.
//!
//! Architecture Invariant: nothing here does I/O or reads the clock; every instant it
//! needs is passed in (the one exception is `Calendar::load_dir`, a thin reader that hands
//! file texts to the pure `Calendar::from_sources`).

pub mod assessment;
pub mod calendar;
pub mod counts;
pub mod definition;
pub mod diagnostic;
pub mod diagnostic_text;
pub mod directory;
pub mod plan;
pub mod pool;
pub mod pool_check;
pub mod render;
pub mod roster;
pub mod schedule;
pub mod state;
pub mod submission;
pub mod timefmt;
pub mod validate;
pub mod yaml;
