//! yanzhen (雁阵): a workflow daemon for selecting and training reserve cadres.
//!
//! See `docs/architecture.md` for the map of modules.

pub mod access;
pub mod activation;
pub mod api;
pub mod bench;
pub mod calendar;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod definition;
pub mod diagnostic;
pub mod directory;
pub mod engine;
pub mod notify;
pub mod plan;
pub mod provisional;
pub mod reload;
pub mod schedule;
pub mod scheduler;
pub mod simulate;
pub mod store;
pub mod timefmt;
pub mod validate;
pub mod yaml;
