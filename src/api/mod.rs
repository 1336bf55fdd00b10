//! The HTTP edge: the JSON API (`/api/...`), the web console (`/console/...`), the branch
//! pages behind signed links (`/b/...`), health and metrics.
//!
//! `serve(listener, state, shutdown)` takes the listener from the caller, so tests bind
//! port 0. Every change made through HTTP goes through the engine and lands in the audit log
//! with who made it (`token:NAME` or `link:UNIT`).
//!
//! Every request passes the limits of `[http]` (`server`: header-read timeout, connection
//! cap; [`router`]: body limit, request timeout, the branch pages' per-address rate limit),
//! the same-origin check of state-changing requests and the uniform error shapes
//! (`guard`); every response carries the security headers (`server`).

mod auth;
pub mod console;
pub mod find;
pub mod guard;
pub mod json;
pub mod openapi;
pub mod people;
pub mod reports;
pub mod results;
pub(crate) mod results_export;
pub mod server;

pub use auth::{
    Principal, Rights, SESSION_COOKIE, admin_token_exists, authenticate, bearer_token, console_url,
    idle_ms, principal_of, session_cookie, session_id, session_principal,
};
pub use server::serve_with_limits;

use crate::access::LinkSigner;
use crate::engine::{Engine, EngineError};
use crate::store::StoreError;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use std::sync::Arc;

/// Shared state of the HTTP handlers.
#[derive(Debug)]
pub struct AppState {
    /// The engine (store, catalog, clock).
    pub engine: Arc<Engine>,
    /// Signs and checks branch links.
    pub links: LinkSigner,
    /// Prometheus text renderer, when metrics are installed.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The config file, for reloading after the editor saves a workflow.
    pub config_path: PathBuf,
    /// The file store of hand-ins, opened at first use (so `simulate` and pages that
    /// never touch a file create no folder).
    pub files: std::sync::OnceLock<crate::files::Files>,
}

impl AppState {
    /// The file store `[files]` names; a relative local root is taken from the working
    /// folder, as the other paths of the config are.
    pub fn files(&self) -> Result<&crate::files::Files, crate::files::FilesError> {
        if let Some(f) = self.files.get() {
            return Ok(f);
        }
        let base = std::path::Path::new(".");
        let f = crate::files::Files::open(&self.engine.catalog().config.files, base)?;
        Ok(self.files.get_or_init(|| f))
    }
}

/// The state as handlers receive it.
pub type State = Arc<AppState>;

/// The whole router, with the request limits of the config's `[http]` (read now) and the
/// guards every request passes.
pub fn router(state: State) -> Router {
    use axum::middleware::from_fn_with_state;
    use std::time::Duration;
    let http = state.engine.catalog().config.http.clone();
    Router::new()
        .merge(json::routes())
        .merge(console::routes(&http))
        .merge(guard::branch_rate_limit(console::branch_routes(), &http))
        .merge(guard::branch_rate_limit(
            console::submissions::branch_file_routes(),
            &http,
        ))
        // One limit for every body, the configured one (axum's own 2 MB default is off).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            http.max_body_bytes,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(http.request_timeout_seconds),
        ))
        // Hand-ins carry files: limits of their own (a larger body, a longer time, a pause
        // limit, a number read at once); each file's own limit is enforced while it streams
        // (`files::Files::put_stream`).
        .merge(
            guard::branch_rate_limit(console::submissions::branch_upload_routes(&http), &http)
                .layer(axum::extract::DefaultBodyLimit::disable())
                .layer(tower_http::limit::RequestBodyLimitLayer::new(
                    console::submissions::UPLOAD_MAX_BYTES,
                ))
                .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                    Duration::from_secs(http.upload_idle_seconds),
                ))
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(http.upload_timeout_seconds),
                )),
        )
        .layer(from_fn_with_state(state.clone(), console::csrf_check))
        .layer(from_fn_with_state(state.clone(), guard::same_origin))
        .layer(from_fn_with_state(state.clone(), guard::uniform_errors))
        .with_state(state)
}

/// Serve until `shutdown` completes, within the limits of the state's `[http]` config;
/// in-flight requests finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: State,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "http listening");
    let http = state.engine.catalog().config.http.clone();
    serve_with_limits(listener, router(state), &http, shutdown).await
}

/// The HTTP service of a daemon: while it starts (the database may be unreachable for a
/// while) `/healthz` answers 200, `/readyz` answers 503 with the reason and everything else
/// 503; [`Switch::ready`] then puts the whole [`router`] in place, on the same listener.
#[derive(Debug, Clone)]
pub struct Switch {
    current: Arc<std::sync::RwLock<Router>>,
    reason: Arc<std::sync::Mutex<String>>,
}

impl Switch {
    /// A service that is starting, for `reason`.
    pub fn starting(reason: &str) -> Switch {
        let reason = Arc::new(std::sync::Mutex::new(reason.to_string()));
        Switch {
            current: Arc::new(std::sync::RwLock::new(starting_router(reason.clone()))),
            reason,
        }
    }

    /// What `/readyz` says until [`ready`](Self::ready).
    pub fn set_reason(&self, reason: String) {
        if let Ok(mut r) = self.reason.lock() {
            *r = reason;
        }
    }

    /// Serve the whole router from now on.
    pub fn ready(&self, state: State) {
        if let Ok(mut r) = self.current.write() {
            *r = router(state);
        }
    }

    fn current(&self) -> Router {
        self.current
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

fn starting_router(reason: Arc<std::sync::Mutex<String>>) -> Router {
    use axum::routing::get;
    let unavailable = |message: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": {"code": "starting", "message": message}})),
        )
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let why = reason.lock().map(|r| r.clone()).unwrap_or_default();
                async move {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({"ready": false, "reason": why})),
                    )
                }
            }),
        )
        .fallback(move || async move {
            unavailable("the daemon is starting; /readyz says why it is not ready yet".into())
        })
}

/// Serve `switch` until `shutdown` completes, within the connection limits of `http`;
/// in-flight requests finish first.
pub async fn serve_switch(
    listener: tokio::net::TcpListener,
    switch: Switch,
    http: crate::config::HttpConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use tower::ServiceExt as _;
    tracing::info!(addr = %listener.local_addr()?, "http listening");
    let app = Router::new().fallback(move |req: axum::extract::Request| {
        let current = switch.current();
        async move {
            match current.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            }
        }
    });
    serve_with_limits(listener, app, &http, shutdown).await
}

/// A JSON error: `{"error": {"code": "...", "message": "..."}}` with an HTTP status.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `not_found`, `wrong_state`.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match &e {
            EngineError::NotFound(_) => ApiError::not_found(e.to_string()),
            EngineError::UnknownWorkflow { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_workflow", e.to_string())
            }
            EngineError::UnknownUnits(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_unit",
                e.to_string(),
            ),
            EngineError::Plan { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "cannot_plan",
                e.to_string(),
            ),
            EngineError::Invalid(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
            }
            EngineError::Store(StoreError::WrongState { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "wrong_state", e.to_string())
            }
            EngineError::Store(StoreError::NotFound(_)) => ApiError::not_found(e.to_string()),
            EngineError::Store(StoreError::Exists(m)) => {
                ApiError::new(StatusCode::CONFLICT, "exists", m.clone())
            }
            // Stored data that does not parse: say which row, so it can be mended.
            EngineError::Store(StoreError::Corrupt(_)) => {
                tracing::error!(error = %e, "request failed on corrupt data");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "corrupt_data",
                    e.to_string(),
                )
            }
            _ => {
                tracing::error!(error = %e, "request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the daemon log",
                )
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(e).into()
    }
}
