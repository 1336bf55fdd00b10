//! The binary's async edge: opening the store, building the engine, `serve` with signal
//! handling, and the commands that act on rounds and tasks.

use crate::catalog::{self, Catalog};

use crate::core::diagnostic::Severity;
use crate::engine::Engine;
use crate::runtime::clock::SystemClock;
use crate::store::{self, Store, StoreError};
use anyhow::{Context as _, bail};
use chrono::NaiveDate;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Load the catalog; config, directory or calendar errors are fatal, invalid workflows are
/// reported and left out.
pub fn load_catalog(config: &Path, today: NaiveDate, daemon: bool) -> anyhow::Result<Catalog> {
    Ok(load_catalog_reporting(config, today, daemon)?.0)
}

/// [`load_catalog`], also returning every diagnostic (the daemon records them as its
/// state at start-up).
fn load_catalog_reporting(
    config: &Path,
    today: NaiveDate,
    daemon: bool,
) -> anyhow::Result<(Catalog, Vec<crate::core::diagnostic::Diagnostic>)> {
    let (cat, diags) = catalog::load(config, today);
    if daemon {
        log_summarised(&diags);
    } else {
        for d in &diags {
            match d.severity {
                Severity::Error => tracing::error!("{d}"),
                // Short commands stay quiet about warnings `validate` already shows.
                Severity::Warning => tracing::debug!("{d}"),
            }
        }
    }
    match cat {
        Some(c) => Ok((c, diags)),
        None => bail!("configuration is not valid (see the errors above); run `yanzhen validate`"),
    }
}

/// Log `diags` for the daemon: errors and one-off warnings in full, one line per repeated
/// warning code (the full list stays at debug level and in `yanzhen validate`).
fn log_summarised(diags: &[crate::core::diagnostic::Diagnostic]) {
    let s = crate::core::diagnostic::summarise(diags);
    for d in &s.full {
        match d.severity {
            Severity::Error => tracing::error!("{d}"),
            Severity::Warning => tracing::warn!("{d}"),
        }
    }
    for line in &s.summaries {
        tracing::warn!("{line}");
    }
    for d in &s.summarised {
        tracing::debug!("{d}");
    }
}

/// The engine for commands that only read the database (`status`, `task list`): a broken
/// directory or calendar is reported as a warning and does not stop them (see
/// [`catalog::load_for_reading`]); workflow files are not registered as versions.
pub async fn read_only_engine(config: &Path, today: NaiveDate) -> anyhow::Result<Arc<Engine>> {
    let (cat, diags) = catalog::load_for_reading(config, today);
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    for d in &errors {
        tracing::warn!("{d}");
    }
    let Some(cat) = cat else {
        bail!("configuration is not valid (see the errors above); run `yanzhen validate`")
    };
    if !errors.is_empty() {
        tracing::warn!(
            "the files above have errors; showing what the database holds (run `yanzhen validate`)"
        );
    }
    let store = open_store(&database_url(&cat), false, Duration::from_secs(5)).await?;
    Ok(Arc::new(Engine::new(
        store,
        cat,
        Arc::new(SystemClock),
        owner(),
    )))
}

/// The database URL: `YANZHEN_DATABASE_URL`, else the config file's.
pub fn database_url(cat: &Catalog) -> String {
    std::env::var("YANZHEN_DATABASE_URL").unwrap_or_else(|_| cat.config.database.url.clone())
}

/// Open and migrate the store, retrying while the database is unreachable.
pub async fn open_store(
    url: &str,
    daemon: bool,
    retry_for: Duration,
) -> anyhow::Result<Arc<dyn Store>> {
    open_store_reporting(url, daemon, retry_for, &|_| {}).await
}

/// [`open_store`], telling `report` why the database is not usable yet at every retry
/// (what `/readyz` says while the daemon starts). A database that refuses the URL for good
/// (it does not exist, wrong user or password), a SQLite file in use, a bad URL or a failed
/// migration end the retrying at once.
async fn open_store_reporting(
    url: &str,
    daemon: bool,
    retry_for: Duration,
    report: &(dyn Fn(String) + Sync),
) -> anyhow::Result<Arc<dyn Store>> {
    let started = std::time::Instant::now();
    let mut wait = Duration::from_millis(500);
    loop {
        let res = if daemon {
            store::open(url).await
        } else {
            store::open_shared(url).await
        };
        match res {
            Ok(s) => {
                report("applying database migrations".into());
                s.migrate().await.context("applying database migrations")?;
                return Ok(s);
            }
            Err(
                e @ (StoreError::Locked { .. }
                | StoreError::BadUrl(_)
                | StoreError::Refused(_)
                | StoreError::Migrate(_)),
            ) => return Err(e.into()),
            Err(e) if started.elapsed() < retry_for => {
                tracing::error!(database = %redact(url), error = %e, retry_in_ms = wait.as_millis() as u64, "database unreachable; retrying");
                report(format!(
                    "database {} unreachable: {e}; retrying",
                    redact(url)
                ));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(15));
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("database {} unreachable", redact(url)))
                );
            }
        }
    }
}

/// A URL with any password replaced, for logs.
pub fn redact(url: &str) -> String {
    store::redact_url(url)
}

fn owner() -> String {
    format!("{}-{}", this_host(), std::process::id())
}

pub async fn engine(config: &Path, today: NaiveDate, daemon: bool) -> anyhow::Result<Arc<Engine>> {
    engine_from(load_catalog(config, today, daemon)?, daemon).await
}

async fn engine_from(cat: Catalog, daemon: bool) -> anyhow::Result<Arc<Engine>> {
    let url = database_url(&cat);
    let retry = if daemon {
        Duration::from_secs(u64::MAX / 4)
    } else {
        Duration::from_secs(5)
    };
    let store = open_store(&url, daemon, retry).await?;
    engine_on(store, cat).await
}

/// The engine over an open store (`YANZHEN_LEASE_MS` sets the timer lease).
async fn engine_on(store: Arc<dyn Store>, cat: Catalog) -> anyhow::Result<Arc<Engine>> {
    let mut engine = Engine::new(store, cat, Arc::new(SystemClock), owner());
    if let Some(ms) = std::env::var("YANZHEN_LEASE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        engine = engine.with_lease_ms(ms);
    }
    let engine = Arc::new(engine);
    engine.register_workflows().await?;
    Ok(engine)
}

/// The setting `yanzhen reload` writes (a fresh token each time) for every daemon on the
/// database to see.
pub const RELOAD_REQUEST: &str = "reload_request";
/// Prefix of the settings by which each daemon says it took a reload request
/// (`reload_ack:OWNER` = the request's token).
pub const RELOAD_ACK: &str = "reload_ack:";
/// How often a daemon looks for a reload request.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);
/// How long `yanzhen reload` waits for daemons to take its request.
pub const RELOAD_WAIT: Duration = Duration::from_secs(10);

/// The `[notify]` settings `serve` cannot start with, as diagnostics of the config file
/// (also what `yanzhen validate` reports). `environment` problems (an unset password
/// variable) are errors only when `for_serve`.
pub fn notify_diagnostics(
    config_path: &Path,
    cfg: &crate::config::Config,
    for_serve: bool,
) -> Vec<crate::core::diagnostic::Diagnostic> {
    let text = std::fs::read_to_string(config_path).unwrap_or_default();
    let mut d = crate::core::diagnostic::Diagnostics::new(config_path.display().to_string());
    for p in crate::notify::outbox::config_problems(&cfg.notify) {
        let keys: Vec<&str> = p.key.iter().map(String::as_str).collect();
        let loc = crate::config::key_loc(&text, &keys);
        if p.environment && !for_serve {
            d.warning("invalid-config", loc, p.message, Some(p.hint));
        } else {
            d.error("invalid-config", loc, p.message, Some(p.hint));
        }
    }
    if cfg.pid_file.is_some() {
        d.warning(
            "deprecated",
            crate::config::key_loc(&text, &["pid_file"]),
            "pid_file is no longer used",
            Some("remove it: `yanzhen reload` asks every daemon through the database".into()),
        );
    }
    d.into_sorted()
}

pub async fn serve(config: &Path, today: NaiveDate) -> anyhow::Result<ExitCode> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("yanzhen_timer_lateness_seconds".into()),
            &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 60.0],
        )
        .and_then(|b| b.install_recorder())
        .map_err(|e| tracing::warn!(error = %e, "metrics disabled"))
        .ok();
    // Everything that can refuse to start is checked before anything runs, and "serving"
    // is logged only once it all did.
    let (cat, load_diagnostics) = load_catalog_reporting(config, today, true)?;
    let problems = notify_diagnostics(config, &cat.config, true);
    log_summarised(&problems);
    if problems.iter().any(|d| d.severity == Severity::Error) {
        bail!("the [notify] settings cannot work (see the errors above); run `yanzhen validate`");
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    // The HTTP server comes first, so that /healthz answers (and /readyz says why not
    // ready) while the database is still unreachable.
    let bind = cat.config.http.bind.clone();
    let mut listening = None;
    let (http, switch) = if bind.is_empty() {
        (None, None)
    } else {
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .with_context(|| format!("cannot listen on {bind} ([http] bind in the config)"))?;
        listening = listener.local_addr().ok();
        let switch = crate::api::Switch::starting("opening the database");
        let mut stop = rx.clone();
        let server = tokio::spawn(crate::api::serve_switch(
            listener,
            switch.clone(),
            cat.config.http.clone(),
            async move {
                let _ = stop.wait_for(|v| *v).await;
            },
        ));
        (Some(server), Some(switch))
    };
    let url = database_url(&cat);
    let report = |why: String| {
        if let Some(s) = &switch {
            s.set_reason(why);
        }
    };
    let store =
        open_store_reporting(&url, true, Duration::from_secs(u64::MAX / 4), &report).await?;
    let app = crate::runtime::app::App::build(
        cat,
        store,
        Arc::new(SystemClock),
        crate::runtime::app::AppOptions {
            metrics,
            ..crate::runtime::app::AppOptions::from_env(owner(), config.to_path_buf())
        },
    )
    .await?;
    let e = app.engine.clone();
    e.record_start(load_diagnostics).await;
    e.ensure_kickoffs().await?;
    // A holiday file may have been added while no daemon ran.
    e.reproject_kickoffs().await?;
    e.reproject_provisional_rounds().await?;
    e.ensure_calendar_notice().await?;
    e.ensure_weekly_report().await?;
    e.ensure_count_checks().await?;
    let reload_seen = e.store().setting(RELOAD_REQUEST).await?;
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing in-flight work");
        let _ = tx.send(true);
    });
    if let Some(s) = &switch {
        s.ready(app.http.clone());
    }
    let reloader = tokio::spawn(reload_loop(
        e.clone(),
        config.to_path_buf(),
        reload_seen,
        rx.clone(),
    ));
    tracing::info!(
        backend = e.store().backend(),
        workflows = e.catalog().workflows.len(),
        "yanzhen serving"
    );
    tell_how_to_sign_in(&e, listening).await;
    app.driver.run(rx).await;
    let _ = reloader.await;
    e.forget_reload_state().await;
    if let Some(h) = http {
        match h.await {
            Ok(Err(err)) => tracing::error!(error = %err, "http server failed"),
            Err(err) => tracing::error!(error = %err, "http server task failed"),
            Ok(Ok(())) => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Say where the console is and, while no administrator token can sign in, how to create
/// one: what a first `serve` owes whoever started it.
async fn tell_how_to_sign_in(e: &Engine, listening: Option<std::net::SocketAddr>) {
    let link_base = e.catalog().config.notify.link_base.clone();
    let Some(url) = crate::api::console_url(link_base.as_deref(), listening) else {
        tracing::info!("no web console: [http] bind is empty");
        return;
    };
    tracing::info!("console at {url}");
    let now = e.clock().now().timestamp_millis();
    match crate::api::admin_token_exists(e.store().as_ref(), now).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "no administrator token yet: create one on this server with `yanzhen token create NAME` (it is printed once) and sign in at {url}"
        ),
        Err(err) => tracing::warn!(error = %err, "could not check for administrator tokens"),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Reload on SIGHUP, when watched files change, and when `yanzhen reload` asks through the
/// database (`seen`: the request already there at start-up), until shutdown.
fn reload_loop(
    e: Arc<Engine>,
    config: std::path::PathBuf,
    mut seen: Option<String>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> {
    // The watcher and the SIGHUP handler are installed before this returns, i.e. before
    // the daemon reports itself started: an edit or a SIGHUP right after start must not be
    // missed (an unhandled SIGHUP would even end the process).
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let cat = e.catalog();
    let mut paths = vec![
        cat.config.workflows_dir.clone(),
        cat.config.calendar_dir.clone(),
    ];
    if let Some(dir) = cat.config.directory.parent() {
        paths.push(if dir.as_os_str().is_empty() {
            ".".into()
        } else {
            dir.to_path_buf()
        });
    }
    let watcher = match crate::runtime::reload::watch(&paths, tx) {
        Ok(w) => Some(w),
        Err(err) => {
            tracing::warn!(error = %err, "file watching unavailable; reload with SIGHUP or `yanzhen reload`");
            None
        }
    };
    let mut hup = signal(SignalKind::hangup()).ok();
    async move {
        let _keep_watching = watcher;
        let mut poll = tokio::time::interval(RELOAD_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(()) = changed.recv() => {
                    while changed.try_recv().is_ok() {}
                    tracing::info!("files changed; reloading");
                }
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP; reloading");
                }
                _ = poll.tick() => {
                    let asked = match e.store().setting(RELOAD_REQUEST).await {
                        Ok(v) => v,
                        Err(err) => {
                            tracing::warn!(error = %err, "cannot read reload requests");
                            continue;
                        }
                    };
                    if asked.is_none() || asked == seen {
                        continue;
                    }
                    seen = asked;
                    let token = seen.clone().unwrap_or_default();
                    let ack = format!("{RELOAD_ACK}{}", e.owner());
                    if let Err(err) = e.store().put_setting(&ack, &token).await {
                        tracing::warn!(error = %err, "cannot acknowledge the reload request");
                    }
                    tracing::info!("reload requested through the database (`yanzhen reload`); reloading");
                }
            }
            e.reload(&config).await;
        }
    }
}

/// This machine's host name (daemon owner names are `HOST-PID`).
pub fn this_host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}
