//! A server with one running round, for the tests of sessions, links and the HTTP edge:
//! every shipped workflow, `community-reserve-selection` started on 2019-07-01 for
//! dongguan and xiguan (the clock at 01:00 UTC that day), an administrator token
//! (`zzb-admin`) and a read-only one (`viewer`).

use super::http::{Served, serve, token};
use std::sync::Arc;
use yanzhen::access::LinkSigner;
use yanzhen::config::HttpConfig;
use yanzhen::core::state::{Rights, TaskState};
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::{Clock, VirtualClock};
use yanzhen::store::{Store, TaskRow};

/// The running server and what a test needs of it.
pub struct Site {
    /// The store's name (`sqlite`, `postgres`), for messages.
    pub name: &'static str,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// A client that does not follow redirects.
    pub http: reqwest::Client,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The clock.
    pub clock: Arc<VirtualClock>,
    /// The administrator token.
    pub admin: String,
    /// The read-only token.
    pub reader: String,
    /// The round's id.
    pub round: i64,
    secret: &'static str,
    _server: Served,
    _guard: super::stores::Guard,
}

/// Start a [`Site`] on `store` with `[http]` as `http`, links signed with `secret`, the
/// application named `instance`.
pub async fn site_on(
    name: &'static str,
    store: Arc<dyn Store>,
    guard: super::stores::Guard,
    http: HttpConfig,
    secret: &'static str,
    instance: &str,
) -> Site {
    yanzhen::notify::install_tls_provider();
    let mut catalog = super::catalog_with(&[], true);
    catalog.config.http = http;
    let start = super::date(2019, 7, 1);
    let clock = Arc::new(VirtualClock::new(
        start.and_hms_opt(1, 0, 0).expect("time").and_utc(),
    ));
    let app = App::build(
        catalog,
        store.clone(),
        clock.clone(),
        AppOptions {
            link_secret: Some(secret.into()),
            ..AppOptions::new(instance)
        },
    )
    .await
    .expect("app");
    let round = super::start_round(
        &app.engine,
        "community-reserve-selection",
        start,
        &["dongguan", "xiguan"],
    )
    .await;
    let admin = token(store.as_ref(), "zzb-admin", Rights::Admin).await;
    let reader = token(store.as_ref(), "viewer", Rights::Read).await;
    let server = serve(app.http.clone()).await;
    Site {
        name,
        base: server.base.clone(),
        addr: server.addr,
        http: super::http::client(),
        store,
        clock,
        admin,
        reader,
        round,
        secret,
        _server: server,
        _guard: guard,
    }
}

impl Site {
    /// `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The round's task `key`.
    pub async fn task(&self, key: &str) -> TaskRow {
        self.store
            .task_by_key(self.round, key)
            .await
            .expect("task")
            .unwrap_or_else(|| panic!("{}: no task {key}", self.name))
    }

    /// The state of task `id`.
    pub async fn state_of(&self, id: i64) -> TaskState {
        self.store
            .task(id)
            .await
            .expect("task")
            .expect("exists")
            .state
    }

    /// The signer of this server's links.
    pub fn signer(&self) -> LinkSigner {
        LinkSigner::new(self.secret)
    }

    /// An expiry for links: a day from the clock's now.
    pub fn expires(&self) -> i64 {
        self.clock.now().timestamp() + 86_400
    }
}
