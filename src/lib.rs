//! yanzhen (雁阵): a workflow daemon for selecting and training reserve cadres.
//!
//! See `docs/architecture.md` for the map of modules.

pub mod calendar;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod definition;
pub mod diagnostic;
pub mod directory;
pub mod plan;
pub mod schedule;
pub mod timefmt;
pub mod validate;
pub mod yaml;
