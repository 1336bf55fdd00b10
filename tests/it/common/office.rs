//! The office's server for the reserve-pool and assessment tests: every shipped workflow,
//! the shipped `config/yanzhen.toml`, the clock at 2026-01-10 09:00 Beijing time, served on
//! a loopback port with an administrator token (`zzb-ma`) and a read token (`viewer`).

use super::http::{Served, serve, token};
use super::stores::Guard;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use yanzhen::core::state::Rights;
use yanzhen::engine::Engine;
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::VirtualClock;
use yanzhen::store::Store;

/// A running office server on one store.
pub struct Office {
    /// The store's name (`sqlite`, `postgres`), for messages.
    pub name: &'static str,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The administrator token.
    pub admin: String,
    /// The read-only token.
    pub reader: String,
    /// The secret links and CSRF tokens are signed with.
    pub secret: String,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The engine behind the server.
    pub engine: Arc<Engine>,
    /// A client that does not follow redirects (a form's 303 is what a test checks).
    pub http: reqwest::Client,
    /// Keeps the store's database (and lets a test write behind the store's back).
    pub guard: Guard,
    _server: Served,
}

/// Start an [`Office`] named `name` on `store`: application `tag`, secret `TAG-test`.
pub async fn office(name: &'static str, store: Arc<dyn Store>, guard: Guard, tag: &str) -> Office {
    yanzhen::notify::install_tls_provider();
    let secret = format!("{tag}-test");
    let app = App::build(
        super::catalog_with(&[], true),
        store.clone(),
        Arc::new(VirtualClock::new(super::at(2026, 1, 10, 9, 0))),
        AppOptions {
            link_secret: Some(secret.clone()),
            config_path: super::root().join("config/yanzhen.toml"),
            ..AppOptions::new(tag)
        },
    )
    .await
    .expect("app");
    let server = serve(app.http).await;
    Office {
        name,
        base: server.base.clone(),
        admin: token(store.as_ref(), "zzb-ma", Rights::Admin).await,
        reader: token(store.as_ref(), "viewer", Rights::Read).await,
        secret,
        store,
        engine: app.engine,
        http: super::http::client(),
        guard,
        _server: server,
    }
}

/// An [`Office`] per store of [`super::stores::stores`].
pub async fn offices(tag: &str) -> Vec<Office> {
    let mut out = Vec::new();
    for (name, store, guard) in super::stores::stores().await {
        out.push(office(name, store, guard, tag).await);
    }
    out
}

impl Office {
    /// `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Send `r` with `token`: the status and the JSON body (null when there is none).
    pub async fn send(&self, r: reqwest::RequestBuilder, token: &str) -> (StatusCode, Value) {
        let resp = r.bearer_auth(token).send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Add a person of `unit` through the API as the office: its id.
    pub async fn add_person(&self, name: &str, unit: &str, tier: usize, birth: &str) -> i64 {
        let body = json!({"name": name, "unit": unit, "tier": tier, "birth": birth});
        let (st, p) = self
            .send(
                self.http.post(self.url("/api/people")).json(&body),
                &self.admin,
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{}: {p}", self.name);
        p["id"].as_i64().expect("person id")
    }

    /// GET `path`, with `token` if given (a signed link needs none): the body's text.
    pub async fn text(&self, path: &str, token: Option<&str>) -> String {
        let mut r = self.http.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body text")
    }
}
