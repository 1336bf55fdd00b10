//! The web console and the branch pages, over real HTTP against the real server on port 0
//! (a SQLite file, and PostgreSQL when `YANZHEN_TEST_POSTGRES_URL` is set), with a virtual
//! clock: sign-in, read versus admin tokens, the rounds page and its Gantt chart, the
//! overdue board, task actions through the engine and the audit log, every rule of the
//! signed branch links, the .ics feed, and the workflow editor.

use crate::common;
use crate::common::{at, date};

use chrono::{DateTime, Utc};
use common::daemon::Setup;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use yanzhen::access::{Grant, LinkSigner};
use yanzhen::api::AppState;
use yanzhen::core::state::Rights;
use yanzhen::core::state::TaskState;
use yanzhen::engine::{Engine, StartRound};
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::{Clock, VirtualClock};
use yanzhen::runtime::driver::Driver;
use yanzhen::store::{AuditEntry, Store, TaskRow};

mod editor;
mod find;
mod find_browser;
mod links;
mod messages;
mod weekly;

/// The secret the test server signs branch links with.
const SECRET: &str = "test";

/// A running server with a round of `community-reserve-selection` (started 2019-07-01 for
/// dongguan, xiguan and nanmen) advanced to 2019-07-15 10:00: dongguan did its deployment
/// meeting on time; every other deployment meeting (due 07-04) and every nomination (due
/// 07-12) is overdue; the deployment meetings have climbed their whole escalation chain.
struct Console {
    name: &'static str,
    base: String,
    http: reqwest::Client,
    state: Arc<AppState>,
    driver: Driver,
    clock: Arc<VirtualClock>,
    store: Arc<dyn Store>,
    setup: Setup,
    admin: String,
    reader: String,
    round: i64,
    _server: common::http::Served,
    /// Session cookies by token, signed in once each.
    sessions: std::sync::Mutex<std::collections::HashMap<String, String>>,
    _guard: common::stores::Guard,
}

/// Every backend under test, each with its own server.
async fn consoles() -> Vec<Console> {
    let mut out = Vec::new();
    for (name, store, guard) in common::stores::stores().await {
        out.push(Console::start(name, store, guard).await);
    }
    out
}

impl Console {
    async fn start(
        name: &'static str,
        store: Arc<dyn Store>,
        guard: common::stores::Guard,
    ) -> Console {
        Self::start_with(name, store, guard, |_| {}).await
    }

    /// The fixture with the catalog changed by `adjust` first (e.g. to deliver to an SMTP
    /// sink).
    async fn start_with(
        name: &'static str,
        store: Arc<dyn Store>,
        guard: common::stores::Guard,
        adjust: impl FnOnce(&mut yanzhen::catalog::Catalog),
    ) -> Console {
        yanzhen::notify::install_tls_provider();
        // The shipped workflows, loaded from copies in the temp folder so that the editor
        // writes there and never into the repository.
        let setup = Setup::new().with_shipped_workflows();
        let mut cat = setup.catalog(date(2019, 7, 1));
        adjust(&mut cat);
        assert_eq!(
            cat.workflows.len(),
            common::catalog_with(&[], true).workflows.len(),
            "{name}: every shipped workflow loads from the temp folder"
        );
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let app = App::build(
            cat,
            store.clone(),
            clock.clone(),
            AppOptions {
                link_secret: Some(SECRET.into()),
                config_path: setup.config(),
                ..AppOptions::new("console-test")
            },
        )
        .await
        .expect("app");
        let engine = app.engine.clone();
        let round = common::start_round(
            &engine,
            "community-reserve-selection",
            date(2019, 7, 1),
            &["dongguan", "xiguan", "nanmen"],
        )
        .await;
        let admin = common::http::token(store.as_ref(), "zzb-admin", Rights::Admin).await;
        let reader = common::http::token(store.as_ref(), "viewer", Rights::Read).await;
        let state = app.http.clone();
        let server = common::http::serve(state.clone()).await;
        let http = common::http::client();
        let c = Console {
            name,
            base: server.base.clone(),
            http,
            state,
            driver: app.driver,
            clock,
            store,
            setup,
            admin,
            reader,
            round,
            _server: server,
            sessions: Default::default(),
            _guard: guard,
        };
        c.run_until(at(2019, 7, 3, 10, 0)).await;
        let meeting = c.task("deployment_meeting@dongguan").await;
        c.engine()
            .complete_task(meeting.id, "test", None)
            .await
            .expect("complete");
        c.run_until(at(2019, 7, 15, 10, 0)).await;
        c
    }

    fn engine(&self) -> &Engine {
        &self.state.engine
    }

    /// Advance the virtual clock to `t` through the app's driver, as the daemon would.
    async fn run_until(&self, t: DateTime<Utc>) {
        self.driver.run_until(&self.clock, t).await.expect("run");
    }

    async fn task(&self, key: &str) -> TaskRow {
        self.store
            .task_by_key(self.round, key)
            .await
            .expect("task")
            .unwrap_or_else(|| panic!("{}: no task {key}", self.name))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The session cookie of `token`, signing in once per token.
    async fn cookie(&self, token: &str) -> String {
        if let Some(c) = self.sessions.lock().expect("lock").get(token) {
            return c.clone();
        }
        let pair = common::session::sign_in(&self.base, token).await;
        self.sessions
            .lock()
            .expect("lock")
            .insert(token.to_string(), pair.clone());
        pair
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.header(COOKIE, self.cookie(t).await);
        }
        let resp = req.send().await.expect("GET");
        let status = resp.status();
        (status, resp.text().await.expect("body"))
    }

    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = form.to_vec();
        let mut req = self.http.post(self.url(path));
        let csrf;
        if let Some(t) = token {
            let cookie = self.cookie(t).await;
            csrf = common::session::csrf(SECRET, &cookie);
            form.push(("csrf", &csrf));
            req = req.header(COOKIE, cookie);
        }
        req.header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(&form))
            .send()
            .await
            .expect("POST")
    }

    /// The state of a task, its history length and the audit log length: what a refused
    /// request must leave alone.
    async fn snapshot(&self, task: i64) -> (TaskState, usize, usize) {
        let t = self.store.task(task).await.expect("task").expect("exists");
        let h = self.store.task_history(task).await.expect("history");
        let a = self.store.audit_after(0, i64::MAX).await.expect("audit");
        (t.state, h.len(), a.len())
    }

    fn now_secs(&self) -> i64 {
        self.clock.now().timestamp()
    }

    fn signer(&self) -> LinkSigner {
        LinkSigner::new(SECRET)
    }
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Text as the templates print it (minijinja's HTML escaping, which includes `/`).
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('/', "&#x2f;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The HTML of each overdue-board section, by assignee id.
fn sections(html: &str) -> BTreeMap<String, String> {
    html.split("<section class=\"group\" data-assignee=\"")
        .skip(1)
        .filter_map(|s| {
            let (id, rest) = s.split_once('"')?;
            let body = rest.split("</section>").next()?;
            Some((id.to_string(), body.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn console_pages_redirect_to_sign_in_without_a_valid_token() {
    for c in consoles().await {
        let name = c.name;
        for path in [
            "/console",
            "/console/overdue",
            "/console/workflows",
            &format!("/console/rounds/{}", c.round),
            "/console/tasks/1",
            "/console/workflows/yearly-training/edit",
        ] {
            for token in [None, Some("yz_not_a_real_token")] {
                let resp = c
                    .http
                    .get(c.url(path))
                    .header(
                        COOKIE,
                        token.map(|t| format!("yz_session={t}")).unwrap_or_default(),
                    )
                    .send()
                    .await
                    .expect("GET");
                assert_eq!(
                    resp.status(),
                    StatusCode::SEE_OTHER,
                    "{name}: {path} {token:?}"
                );
                assert_eq!(location(&resp), "/console/login", "{name}: {path}");
            }
        }
        let resp = c
            .http
            .get(c.url("/console"))
            .header("Authorization", "Bearer wrong")
            .send()
            .await
            .expect("GET");
        assert_eq!(
            resp.status(),
            StatusCode::SEE_OTHER,
            "{name}: a bad bearer token"
        );
        let resp = c
            .post(
                &format!(
                    "/console/tasks/{}/complete",
                    c.task("nomination@xiguan").await.id
                ),
                None,
                &[],
            )
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::SEE_OTHER,
            "{name}: a change without a token"
        );
        let (status, body) = c.get("/console/login", None).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(body.contains("name=\"token\""), "{name}: the sign-in form");
    }
}

#[tokio::test]
async fn signing_in_sets_an_http_only_strict_cookie_and_a_bad_token_shows_the_form_again() {
    for c in consoles().await {
        let name = c.name;
        let resp = c.post("/console/login", None, &[("token", &c.admin)]).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(location(&resp), "/console", "{name}");
        let cookie = resp
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(cookie.starts_with("yz_session="), "{name}: {cookie}");
        assert!(
            !cookie.contains(&c.admin),
            "{name}: the cookie holds a session id, never the token: {cookie}"
        );
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(attr), "{name}: {attr} in {cookie}");
        }
        // The cookie as a browser sends it back opens the console.
        let pair = cookie.split(';').next().unwrap_or_default().to_string();
        let resp = c
            .http
            .get(c.url("/console"))
            .header(COOKIE, pair)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let body = resp.text().await.expect("body");
        assert!(
            body.contains("街道社区后备干部选拔培养"),
            "{name}: the round is listed"
        );
        assert!(body.contains("zzb-admin"), "{name}: who is signed in");
        for nav in ["轮次", "逾期", "工作流", "退出"] {
            assert!(body.contains(nav), "{name}: nav {nav}");
        }

        let resp = c
            .post("/console/login", None, &[("token", "yz_wrong")])
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        assert!(
            resp.headers().get(SET_COOKIE).is_none(),
            "{name}: no cookie for a bad token"
        );
        let body = resp.text().await.expect("body");
        assert!(
            body.contains("令牌无效") && body.contains("name=\"token\""),
            "{name}: {body}"
        );

        let resp = c.post("/console/logout", Some(&c.admin), &[]).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(location(&resp), "/console/login", "{name}");
        let cleared = resp
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            cleared.starts_with("yz_session=;") && cleared.contains("Max-Age=0"),
            "{name}: {cleared}"
        );
    }
}

#[tokio::test]
async fn the_rounds_page_shows_progress_per_stage_and_the_pending_kickoffs() {
    for c in consoles().await {
        let name = c.name;
        c.engine().ensure_kickoffs().await.expect("kickoffs");
        let (status, body) = c.get("/console", Some(&c.reader)).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(
            body.contains(&format!("href=\"/console/rounds/{}\"", c.round)),
            "{name}"
        );
        assert!(
            body.contains("2019-07-01") && body.contains("进行中"),
            "{name}"
        );
        // Deployment: dongguan done, 1 of 3; xiguan and nanmen overdue.
        assert!(body.contains("工作部署：完成 1/3"), "{name}: {body}");
        assert!(body.contains("逾期 2"), "{name}");
        assert!(body.contains("待启动的定期轮次"), "{name}");
        assert!(
            body.contains("年度考核") || body.contains("annual-assessment"),
            "{name}: a kickoff is listed: {body}"
        );
    }
}

#[tokio::test]
async fn the_round_page_draws_a_gantt_chart_with_one_bar_per_stage_deadline_markers_and_now() {
    for c in consoles().await {
        let name = c.name;
        let (status, body) = c
            .get(&format!("/console/rounds/{}", c.round), Some(&c.reader))
            .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let svg = body
            .split("<svg class=\"gantt\"")
            .nth(1)
            .and_then(|s| s.split("</svg>").next())
            .unwrap_or_else(|| panic!("{name}: no Gantt svg"));
        assert_eq!(
            svg.matches("<rect class=\"bar\"").count(),
            3,
            "{name}: one bar per stage"
        );
        for stage in ["deployment", "implementation", "summary"] {
            assert!(
                svg.contains(&format!("data-stage=\"{stage}\"")),
                "{name}: {stage}"
            );
        }
        for label in ["工作部署", "组织实施", "总结"] {
            assert!(svg.contains(label), "{name}: Chinese stage label {label}");
        }
        assert!(
            svg.contains("<polygon class=\"deadline late\""),
            "{name}: an overdue deadline diamond"
        );
        assert!(
            svg.contains("截止 2019年7月12日（星期五）18:00"),
            "{name}: the nomination deadline marker"
        );
        assert!(svg.contains("<line class=\"now\""), "{name}: the now line");
        assert!(svg.contains("现在 7月15日 10:00"), "{name}");
        assert!(
            svg.contains(&escaped("7/1")) && svg.contains(&escaped("7/20")),
            "{name}: day ticks"
        );
        // The tasks table highlights overdue rows and links to task pages.
        let xiguan = c.task("nomination@xiguan").await;
        assert!(
            body.contains(&format!(
                "<tr class=\"task overdue\" data-task=\"{}\"",
                xiguan.id
            )),
            "{name}: overdue row"
        );
        assert!(
            body.contains(&format!("href=\"/console/tasks/{}\"", xiguan.id)),
            "{name}"
        );
        let (status, _) = c.get("/console/rounds/9999", Some(&c.reader)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}");
        // Not a number: malformed (400), as in the JSON API.
        let (status, _) = c.get("/console/rounds/abc", Some(&c.reader)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
    }
}

#[tokio::test]
async fn the_overdue_board_groups_by_branch_with_days_overdue_and_the_escalation_reached() {
    for c in consoles().await {
        let name = c.name;
        let (status, body) = c.get("/console/overdue", Some(&c.reader)).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let groups = sections(&body);
        let meeting_x = c.task("deployment_meeting@xiguan").await;
        let nomination_x = c.task("nomination@xiguan").await;
        let nomination_d = c.task("nomination@dongguan").await;
        let meeting_d = c.task("deployment_meeting@dongguan").await;
        let xiguan = groups
            .get("xiguan")
            .unwrap_or_else(|| panic!("{name}: {groups:?}"));
        assert!(
            xiguan.contains("西关社区党委") && xiguan.contains("2 项逾期"),
            "{name}: {xiguan}"
        );
        assert!(
            xiguan.contains(&format!("data-task=\"{}\"", meeting_x.id)),
            "{name}"
        );
        assert!(
            xiguan.contains(&format!("data-task=\"{}\"", nomination_x.id)),
            "{name}"
        );
        assert!(
            !xiguan.contains(&format!("data-task=\"{}\"", nomination_d.id)),
            "{name}"
        );
        // Deployment meeting due 07-04 18:00, now 07-15: 11 days; its 3 rungs all fired.
        assert!(xiguan.contains("逾期 11 天"), "{name}");
        assert!(
            xiguan.contains("data-fired=\"3\"")
                && xiguan.contains("已上报 3/3 级（至 区委组织部）"),
            "{name}: {xiguan}"
        );
        // Nomination due 07-12 18:00: 3 days, no rung yet (the first is one working day on).
        assert!(
            xiguan.contains("逾期 3 天") && xiguan.contains("已上报 0/3 级"),
            "{name}"
        );
        let dongguan = groups
            .get("dongguan")
            .unwrap_or_else(|| panic!("{name}: {groups:?}"));
        assert!(dongguan.contains("1 项逾期"), "{name}");
        assert!(
            !dongguan.contains(&format!("data-task=\"{}\"", meeting_d.id)),
            "{name}: done is not overdue"
        );
        assert!(groups.contains_key("nanmen"), "{name}");
        // Groups with more overdue tasks come first.
        let order: Vec<usize> = ["xiguan", "dongguan"]
            .iter()
            .map(|g| {
                body.find(&format!("data-assignee=\"{g}\""))
                    .unwrap_or(usize::MAX)
            })
            .collect();
        assert!(order[0] < order[1], "{name}");
    }
}

#[tokio::test]
async fn a_read_token_can_view_a_task_but_its_changes_are_refused_with_403() {
    for c in consoles().await {
        let name = c.name;
        let t = c.task("nomination@xiguan").await;
        let (status, body) = c
            .get(&format!("/console/tasks/{}", t.id), Some(&c.reader))
            .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(
            body.contains("组织推荐") && body.contains("西关社区党委"),
            "{name}"
        );
        assert!(
            !body.contains("id=\"complete\""),
            "{name}: no buttons for a read token"
        );
        let before = c.snapshot(t.id).await;
        for action in ["complete", "waive", "reopen"] {
            let resp = c
                .post(
                    &format!("/console/tasks/{}/{action}", t.id),
                    Some(&c.reader),
                    &[("note", "x")],
                )
                .await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}: {action}");
            assert!(resp.text().await.expect("body").contains("只读"), "{name}");
        }
        let resp = c
            .post(
                "/console/workflows/yearly-training/save",
                Some(&c.reader),
                &[("source", "id: x")],
            )
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "{name}: saving a workflow"
        );
        assert_eq!(c.snapshot(t.id).await, before, "{name}: nothing changed");
    }
}

#[tokio::test]
async fn an_admin_completes_waives_and_reopens_through_the_console_and_the_audit_log_names_the_token()
 {
    for c in consoles().await {
        let name = c.name;
        let t = c.task("nomination@xiguan").await;
        let resp = c
            .post(
                &format!("/console/tasks/{}/complete", t.id),
                Some(&c.admin),
                &[("note", "材料已收到")],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(
            location(&resp),
            format!("/console/tasks/{}?done=complete", t.id),
            "{name}"
        );
        let done = c.store.task(t.id).await.expect("task").expect("exists");
        assert_eq!(done.state, TaskState::Done, "{name}");
        let audit = c.store.audit_after(0, i64::MAX).await.expect("audit");
        let entry = audit
            .iter()
            .rev()
            .find(|a| a.entry.action == "task.complete")
            .unwrap_or_else(|| panic!("{name}: no audit entry"));
        assert_eq!(entry.entry.actor, "token:zzb-admin", "{name}");
        let history = c.store.task_history(t.id).await.expect("history");
        assert_eq!(
            history.last().map(|h| h.actor.as_str()),
            Some("token:zzb-admin"),
            "{name}"
        );
        assert_eq!(
            history.last().and_then(|h| h.note.as_deref()),
            Some("材料已收到"),
            "{name}"
        );

        let (status, body) = c.get(&location(&resp), Some(&c.admin)).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(
            body.contains("已标记完成")
                && body.contains("zzb-admin（令牌）")
                && !body.contains("token:zzb-admin"),
            "{name}: history shown, the actor by name"
        );

        // Completing again is a wrong state: the page says so, nothing crashes.
        let resp = c
            .post(
                &format!("/console/tasks/{}/complete", t.id),
                Some(&c.admin),
                &[],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CONFLICT, "{name}");
        let body = resp.text().await.expect("body");
        assert!(
            body.contains("任务当前为「已完成」，不能标记完成"),
            "{name}: {body}"
        );

        let resp = c
            .post(
                &format!("/console/tasks/{}/reopen", t.id),
                Some(&c.admin),
                &[("note", "材料不全")],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(c.snapshot(t.id).await.0, TaskState::Open, "{name}");
        let resp = c
            .post(
                &format!("/console/tasks/{}/waive", t.id),
                Some(&c.admin),
                &[("note", "本年不推荐")],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(c.snapshot(t.id).await.0, TaskState::Waived, "{name}");
        let audit = c.store.audit_after(0, i64::MAX).await.expect("audit");
        for action in ["task.reopen", "task.waive"] {
            assert!(
                audit
                    .iter()
                    .any(|a| a.entry.action == action && a.entry.actor == "token:zzb-admin"),
                "{name}: {action}"
            );
        }
        // Bearer works as well as the cookie.
        let m = c.task("nomination@nanmen").await;
        let resp = c
            .http
            .post(c.url(&format!("/console/tasks/{}/complete", m.id)))
            .header("Authorization", format!("Bearer {}", c.admin))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("note=")
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(c.snapshot(m.id).await.0, TaskState::Done, "{name}");
    }
}

#[tokio::test]
async fn the_sign_in_page_says_how_to_create_a_token_only_while_no_administrator_token_exists() {
    for c in consoles().await {
        let name = c.name;
        let (status, body) = c.get("/console/login", None).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(
            !body.contains("id=\"first-run\""),
            "{name}: an administrator token exists: {body}"
        );
        let audit = AuditEntry {
            at: c.clock.now().timestamp_millis(),
            actor: "test".into(),
            action: "token.revoke".into(),
            subject: "token:zzb-admin".into(),
            detail_json: "{}".into(),
        };
        assert!(
            c.store
                .revoke_token("zzb-admin", audit)
                .await
                .expect("revoke"),
            "{name}"
        );
        let (status, body) = c.get("/console/login", None).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(
            body.contains("id=\"first-run\"")
                && body.contains("还没有管理员令牌")
                && body.contains("yanzhen token create zzb-ma"),
            "{name}: the read-only token left does not count: {body}"
        );
        let resp = c
            .post("/console/login", None, &[("token", "yz_wrong")])
            .await;
        let body = resp.text().await.expect("body");
        assert!(
            body.contains("id=\"first-run\""),
            "{name}: a refused sign-in says it too"
        );
    }
}

#[tokio::test]
async fn branch_pages_name_the_office_contact_with_a_phone() {
    for c in consoles().await {
        let name = c.name;
        let exp = c.now_secs() + 86_400;
        let x = c.task("nomination@xiguan").await;
        let task = c.signer().task_link("xiguan", x.id, exp);
        let (status, unit_page) = c.get(&c.signer().unit_link("xiguan", exp), None).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let (status, task_page) = c.get(&task, None).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let resp = c.post(&task, None, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let done_page = resp.text().await.expect("body");
        for (page, body) in [
            ("unit", unit_page),
            ("task", task_page),
            ("done", done_page),
        ] {
            assert!(
                body.contains("id=\"office-contact\"")
                    && body.contains("街道党工委组织办")
                    && body.contains("马晓燕")
                    && body.contains("0000-1234567"),
                "{name}: the {page} page names whom to call: {body}"
            );
        }
    }
}

#[tokio::test]
async fn the_overdue_board_the_task_page_and_the_round_page_show_the_branch_secretary_and_phone() {
    for c in consoles().await {
        let name = c.name;
        let x = c.task("nomination@xiguan").await;
        let pages = [
            "/console/overdue".to_string(),
            format!("/console/tasks/{}", x.id),
            format!("/console/rounds/{}", c.round),
        ];
        for page in pages {
            let (status, body) = c.get(&page, Some(&c.reader)).await;
            assert_eq!(status, StatusCode::OK, "{name}: {page}");
            assert!(
                body.contains("陈秀英") && body.contains("0000-7654302"),
                "{name}: {page} names xiguan's secretary and phone: {body}"
            );
        }
    }
}
