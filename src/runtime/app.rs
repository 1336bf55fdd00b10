//! The one app builder: engine, branch-link signer, outbox sender, driver and HTTP state
//! assembled the same way for `serve`, `simulate` and the tests, which differ only in the
//! store, the clock and the [`AppOptions`] they pass.

use crate::access::LinkSigner;
use crate::api::AppState;
use crate::catalog::Catalog;
use crate::engine::{Engine, EngineError};
use crate::notify::outbox::{Outbox, OutboxError, Sent};
use crate::runtime::clock::Clock;
use crate::runtime::driver::Driver;
use crate::store::{Store, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

/// Why the app could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Registering the workflow versions failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The link secret could not be read or kept.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `[notify]` settings cannot work.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// What differs between `serve`, `simulate` and a test.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// This process's name in leases (`HOST-PID` for `serve`).
    pub owner: String,
    /// Timer lease in milliseconds; None keeps the engine's default (30 s).
    pub lease_ms: Option<i64>,
    /// The secret that signs branch links; None: the one kept in the database (generated at
    /// first start, so every daemon on a shared database agrees).
    pub link_secret: Option<String>,
    /// Digest window in milliseconds instead of the configured minutes.
    pub digest_window_ms: Option<i64>,
    /// The config file, for the console's reload after a save.
    pub config_path: PathBuf,
    /// The Prometheus renderer, when metrics are installed.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Told of every message the outbox sends.
    pub observer: Option<tokio::sync::mpsc::UnboundedSender<Sent>>,
}

impl AppOptions {
    /// Defaults for a process named `owner`: engine defaults, the database's link secret,
    /// the configured digest window, no config file, no metrics, no observer.
    pub fn new(owner: impl Into<String>) -> Self {
        AppOptions {
            owner: owner.into(),
            lease_ms: None,
            link_secret: None,
            digest_window_ms: None,
            config_path: PathBuf::new(),
            metrics: None,
            observer: None,
        }
    }

    /// `serve`'s options: the environment may set the lease (`YANZHEN_LEASE_MS`), the link
    /// secret (`YANZHEN_LINK_SECRET`) and the digest window (`YANZHEN_DIGEST_WINDOW_MS`).
    pub fn from_env(owner: impl Into<String>, config_path: PathBuf) -> Self {
        let parsed = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
        AppOptions {
            lease_ms: parsed("YANZHEN_LEASE_MS"),
            link_secret: std::env::var("YANZHEN_LINK_SECRET")
                .ok()
                .filter(|s| !s.is_empty()),
            digest_window_ms: parsed("YANZHEN_DIGEST_WINDOW_MS"),
            config_path,
            ..AppOptions::new(owner)
        }
    }
}

/// The assembled app.
#[derive(Debug, Clone)]
pub struct App {
    /// The engine (store, catalog, clock).
    pub engine: Arc<Engine>,
    /// The outbox sender (with the catalog's `[notify]` settings).
    pub outbox: Arc<Outbox>,
    /// The driver of time over both.
    pub driver: Driver,
    /// What the HTTP server serves.
    pub http: Arc<AppState>,
}

impl App {
    /// Build the engine over `store` with `clock` (its workflow versions registered), the
    /// link signer, the outbox sender and the driver. Nothing runs yet.
    pub async fn build(
        catalog: Catalog,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        opts: AppOptions,
    ) -> Result<App, AppError> {
        let notify = catalog.config.notify.clone();
        let mut engine = Engine::new(store, catalog, clock, opts.owner);
        if let Some(ms) = opts.lease_ms {
            engine = engine.with_lease_ms(ms);
        }
        let engine = Arc::new(engine);
        engine.register_workflows().await?;
        let secret = match opts.link_secret {
            Some(s) => s,
            None => {
                engine
                    .store()
                    .setting_or_insert("link_secret", &LinkSigner::random_secret())
                    .await?
            }
        };
        let links = LinkSigner::new(secret);
        engine.set_link_signer(links.clone());
        let mut outbox = Outbox::new(engine.clone(), notify)?;
        if let Some(ms) = opts.digest_window_ms {
            outbox = outbox.with_digest_window_ms(ms);
        }
        if let Some(tx) = opts.observer {
            outbox = outbox.with_observer(tx);
        }
        let outbox = Arc::new(outbox);
        let http = Arc::new(AppState {
            engine: engine.clone(),
            links,
            metrics: opts.metrics,
            config_path: opts.config_path,
            files: std::sync::OnceLock::new(),
        });
        Ok(App {
            driver: Driver::new(engine.clone(), Some(outbox.clone())),
            engine,
            outbox,
            http,
        })
    }
}
