//! yanzhen (雁阵): a workflow daemon for selecting and training reserve cadres.
//!
//! See `docs/architecture.md` for the map of modules.

pub mod access;
pub mod api;
pub mod archive;
pub mod assessment;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod core;
pub mod engine;
pub mod files;
pub mod notify;
pub mod pool;
pub mod report;
pub mod runtime;
pub mod store;
