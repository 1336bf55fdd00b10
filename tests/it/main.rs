//! The integration tests: one crate (one link of the whole tree), a module per area,
//! sharing `common` (fresh stores on SQLite and Postgres, the SMTP sink, the daemon
//! harness and its config files). The fault tests that restart the shared Postgres or fill
//! a disk are separate crates (`tests/fault_*.rs`): they must not run beside these.

mod common;

mod api;
mod assessment;
mod browser;
mod browser_clerk;
mod browser_submit;
mod calendar_official;
mod cli;
mod console;
mod count_check;
mod daemon;
mod driver;
mod email;
mod engine;
mod events;
mod fuzz_regressions;
mod http_security;
mod ics;
mod kickoffs;
mod links;
mod notify;
mod per_person;
mod plan_shipped;
mod pool;
mod provisional;
mod reload;
mod sessions;
mod store;
mod submissions;
mod validation_errors;
mod webhook;
