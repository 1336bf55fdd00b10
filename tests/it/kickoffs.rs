//! Kickoffs are never lost silently: a scheduled round whose workflow file is broken when
//! its kickoff fires waits, tells the office at once (message, console, `status`), and
//! starts once — with its scheduled date — as soon as the file is valid again. `status`
//! shows the running daemon's reload state only, never one an earlier process left.
//! The engine on a SQLite file (and PostgreSQL when `YANZHEN_TEST_POSTGRES_URL` is set),
//! and the real binary.

use crate::common;
use crate::common::at;
use yanzhen::core::state::{MessageKind, TimerState};

use chrono::{Duration, Utc};
use common::daemon::{Setup, wait_for};
use std::sync::Arc;
use yanzhen::catalog::Catalog;
use yanzhen::core::state::Rights;
use yanzhen::engine::{BLOCKED_NOT_LOADED, ms};
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::VirtualClock;
use yanzhen::store::Store;

const YEARLY: &str = r#"id: yearly-notice
title: 年度通知
schedule:
  yearly: {month: 3, day: 1, at: "09:00"}
stages:
  - id: only
    title: 唯一阶段
    closes: {from: round_start, days: 10}
    tasks:
      - id: reply
        title: 回复
        assignee: {role: organization_office}
        due: {from: stage_close}
"#;

/// A daemon's app over `store` (the builder `serve` uses), its kickoffs scheduled.
async fn app_on(store: Arc<dyn Store>, cat: Catalog, clock: Arc<VirtualClock>, owner: &str) -> App {
    let app = App::build(
        cat,
        store,
        clock,
        AppOptions {
            lease_ms: Some(5_000),
            link_secret: Some("k".into()),
            ..AppOptions::new(owner)
        },
    )
    .await
    .expect("app");
    app.engine.ensure_kickoffs().await.expect("kickoffs");
    app
}

async fn rounds_of(store: &Arc<dyn Store>, wf: &str) -> Vec<yanzhen::store::RoundRow> {
    store
        .rounds()
        .await
        .expect("rounds")
        .into_iter()
        .filter(|r| r.workflow_id == wf)
        .collect()
}

async fn alerts(store: &Arc<dyn Store>) -> Vec<yanzhen::store::OutboxRow> {
    store
        .outbox_after(0, i64::MAX)
        .await
        .expect("outbox")
        .into_iter()
        .filter(|o| o.kind == MessageKind::KickoffBlocked)
        .collect()
}

/// The console home page (`/console`) of an engine, signed in with an admin token.
struct ConsoleHome {
    url: String,
    token: String,
    _server: common::http::Served,
}

impl ConsoleHome {
    async fn start(app: &App) -> ConsoleHome {
        yanzhen::notify::install_tls_provider();
        let token = common::http::token(app.engine.store().as_ref(), "zzb", Rights::Admin).await;
        let server = common::http::serve(app.http.clone()).await;
        let url = format!("{}/console", server.base);
        ConsoleHome {
            url,
            token,
            _server: server,
        }
    }

    async fn body(&self) -> String {
        let resp = reqwest::Client::new()
            .get(&self.url)
            .header("Authorization", format!("Bearer {}", self.token))
            .send()
            .await
            .expect("GET /console");
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        resp.text().await.expect("body")
    }
}

#[tokio::test]
async fn a_kickoff_across_a_broken_file_restart_starts_its_round_once_the_file_is_fixed() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 2, 20, 12, 0)));
        let valid = || common::catalog_with(&[YEARLY], false);
        // The daemon schedules the 3-1 kickoff, then stops.
        drop(app_on(store.clone(), valid(), clock.clone(), "a").await);
        // It restarts at the kickoff while the file does not validate: nothing of it loads.
        clock.set(at(2025, 3, 1, 9, 0));
        let b = app_on(
            store.clone(),
            common::catalog_with(&[], false),
            clock.clone(),
            "b",
        )
        .await;
        let console = ConsoleHome::start(&b).await;
        b.engine.fire_due().await.expect("fire");
        assert!(
            rounds_of(&store, "yearly-notice").await.is_empty(),
            "{name}"
        );
        let blocked = b.engine.blocked_kickoffs().await.expect("blocked");
        assert_eq!(blocked.len(), 1, "{name}: the kickoff waits");
        assert_eq!(blocked[0].workflow, "yearly-notice", "{name}");
        assert_eq!(blocked[0].reason, BLOCKED_NOT_LOADED, "{name}");
        assert_eq!(blocked[0].scheduled, at(2025, 3, 1, 9, 0), "{name}");
        // The office is told at once, by message and on the console.
        let sent = alerts(&store).await;
        assert_eq!(sent.len(), 1, "{name}: {sent:?}");
        assert_eq!(sent[0].address, "zzb@qingshui.example.gov.cn", "{name}");
        assert!(
            sent[0].subject.contains("定期启动受阻"),
            "{name}: {}",
            sent[0].subject
        );
        assert!(
            sent[0].body.contains("yearly-notice") && sent[0].body.contains("2025年3月1日"),
            "{name}: {}",
            sent[0].body
        );
        let home = console.body().await;
        assert!(
            home.contains("定期启动受阻") && home.contains("data-workflow=\"yearly-notice\""),
            "{name}: a banner on the console: {home}"
        );

        // Hourly retries while it stays broken: no round, and no second alert.
        clock.set(at(2025, 3, 1, 10, 1));
        b.engine.fire_due().await.expect("fire");
        assert!(
            rounds_of(&store, "yearly-notice").await.is_empty(),
            "{name}"
        );
        assert_eq!(alerts(&store).await.len(), 1, "{name}: told once");
        let again = b.engine.blocked_kickoffs().await.expect("blocked");
        assert_eq!(again.len(), 1, "{name}");
        assert_eq!(
            again[0].since,
            at(2025, 3, 1, 9, 0),
            "{name}: blocked since the first try"
        );

        // The file is fixed and reloaded: the round starts at once, with its scheduled date.
        clock.set(at(2025, 3, 1, 10, 20));
        b.engine.set_catalog(valid()).await.expect("reload");
        b.engine.fire_due().await.expect("fire");
        let rounds = rounds_of(&store, "yearly-notice").await;
        assert_eq!(rounds.len(), 1, "{name}: the owed round started");
        assert_eq!(rounds[0].start_date, "2025-03-01", "{name}");
        assert!(
            b.engine
                .blocked_kickoffs()
                .await
                .expect("blocked")
                .is_empty(),
            "{name}"
        );
        assert!(
            !console.body().await.contains("定期启动受阻"),
            "{name}: the banner is gone"
        );

        // Once: another daemon, later firings and reloads start nothing more.
        let c = app_on(store.clone(), valid(), clock.clone(), "c").await;
        c.engine.fire_due().await.expect("fire");
        clock.set(at(2025, 3, 2, 12, 0));
        b.engine.set_catalog(valid()).await.expect("reload");
        b.engine.fire_due().await.expect("fire");
        c.engine.fire_due().await.expect("fire");
        assert_eq!(rounds_of(&store, "yearly-notice").await.len(), 1, "{name}");
        let pending: Vec<_> = store
            .timers_with_prefix("kickoff:yearly-notice:")
            .await
            .expect("timers")
            .into_iter()
            .filter(|t| t.state == TimerState::Pending)
            .collect();
        assert_eq!(pending.len(), 1, "{name}: {pending:?}");
        assert_eq!(
            pending[0].due_at,
            ms(at(2026, 3, 1, 9, 0)),
            "{name}: next year's"
        );
        assert_eq!(alerts(&store).await.len(), 1, "{name}");
    }
}

#[tokio::test]
async fn a_kickoff_whose_round_cannot_be_planned_waits_and_tells_the_office_once() {
    // Planning needs working days of a year the calendar lacks (here: 2019 is removed).
    const PAST: &str = "id: working-days\ntitle: 工作日\nschedule:\n  yearly: {month: 7, day: 1, at: \"09:00\"}\nexample_start: 2020-07-01\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, working_days: 5}\n    tasks:\n      - id: a\n        title: 甲\n        assignee: {group: branches}\n        due: {from: stage_close}\n";
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 6, 20, 12, 0)));
        let full = common::catalog_with(&[PAST], false);
        let mut gap = full.clone();
        let texts: Vec<(String, String)> =
            std::fs::read_dir(common::root().join("config/calendar"))
                .expect("calendar")
                .map(|e| e.expect("entry").path())
                .filter(|p| !p.ends_with("2019.json"))
                .map(|p| {
                    (
                        p.file_name().expect("name").to_string_lossy().to_string(),
                        std::fs::read_to_string(&p).expect("read"),
                    )
                })
                .collect();
        gap.calendar = yanzhen::core::calendar::Calendar::from_sources(
            texts.iter().map(|(n, t)| (n.as_str(), t.as_str())),
        )
        .expect("calendar");
        let e = app_on(store.clone(), full.clone(), clock.clone(), "a").await;
        e.engine
            .set_catalog(gap)
            .await
            .expect("the 2019 file is withdrawn");
        clock.set(at(2019, 7, 1, 9, 0));
        e.engine.fire_due().await.expect("fire");
        assert!(rounds_of(&store, "working-days").await.is_empty(), "{name}");
        let blocked = e.engine.blocked_kickoffs().await.expect("blocked");
        assert_eq!(blocked.len(), 1, "{name}");
        assert!(
            blocked[0]
                .error
                .as_deref()
                .is_some_and(|x| x.contains("2019")),
            "{name}: {blocked:?}"
        );
        assert_eq!(alerts(&store).await.len(), 1, "{name}");
        clock.set(at(2019, 7, 1, 10, 0) + Duration::minutes(1));
        e.engine.fire_due().await.expect("fire");
        assert_eq!(alerts(&store).await.len(), 1, "{name}: told once");
        e.engine.set_catalog(full).await.expect("the file is back");
        e.engine.fire_due().await.expect("fire");
        let rounds = rounds_of(&store, "working-days").await;
        assert_eq!(rounds.len(), 1, "{name}");
        assert_eq!(rounds[0].start_date, "2019-07-01", "{name}");
    }
}

/// Seed-like valid and broken texts of a scheduled workflow file for the real binary.
fn broken() -> &'static str {
    "id: yearly-notice\ntitle: [未闭合\n"
}

fn write_workflow(s: &Setup, text: &str) {
    let dir = s.path().join("workflows");
    let tmp = dir.join(".yearly-notice.tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join("yearly-notice.yaml")).expect("rename");
}

fn status(s: &Setup) -> String {
    String::from_utf8_lossy(&s.run(&["status"]).stdout).to_string()
}

#[tokio::test]
async fn serve_started_with_a_broken_file_alerts_the_office_and_starts_the_round_once_it_is_fixed()
{
    let s = Setup::new();
    write_workflow(&s, broken());
    let store = s.store().await;
    // The kickoff the daemon scheduled before the file was broken, due in a moment.
    store
        .add_timers(vec![yanzhen::engine::kickoff_timer(
            "yearly-notice",
            Utc::now() + Duration::seconds(2),
        )])
        .await
        .expect("kickoff");
    let daemon = s.serve();
    wait_for(
        "the office to be told",
        std::time::Duration::from_secs(30),
        || {
            let st = store.clone();
            async move { !alerts(&st).await.is_empty() }
        },
    )
    .await;
    assert!(rounds_of(&store, "yearly-notice").await.is_empty());
    let text = status(&s);
    assert!(text.contains("BLOCKED kickoff: yearly-notice"), "{text}");
    assert!(
        text.contains("workflow file not loaded:") && text.contains("yearly-notice.yaml"),
        "{text}"
    );

    write_workflow(&s, YEARLY);
    wait_for(
        "the owed round to start",
        std::time::Duration::from_secs(30),
        || {
            let st = store.clone();
            async move { rounds_of(&st, "yearly-notice").await.len() == 1 }
        },
    )
    .await;
    let text = status(&s);
    assert!(!text.contains("BLOCKED"), "{text}");
    assert!(!text.contains("not loaded"), "{text}");
    let (ok, log) = daemon.stop();
    assert!(ok, "{log}");
    assert_eq!(rounds_of(&store, "yearly-notice").await.len(), 1, "once");
    assert_eq!(alerts(&store).await.len(), 1);
}

#[tokio::test]
async fn status_shows_only_the_running_daemons_reload_state_never_an_earlier_ones() {
    let s = Setup::new();
    write_workflow(&s, broken());
    let mut first = s.serve();
    assert!(
        first
            .log_shows("scheduler started", std::time::Duration::from_secs(30))
            .await,
        "{}",
        first.log()
    );
    let text = status(&s);
    assert!(
        text.contains("loaded at start") && text.contains("workflow file not loaded:"),
        "the broken file at start-up shows: {text}"
    );
    first.kill_9();
    let text = status(&s);
    assert!(
        !text.contains("not loaded") && text.contains("is not running"),
        "a dead daemon's state is not shown as current: {text}"
    );

    write_workflow(&s, YEARLY);
    let second = s.serve();
    assert!(
        second
            .log_shows("scheduler started", std::time::Duration::from_secs(30))
            .await,
        "{}",
        second.log()
    );
    let text = status(&s);
    assert!(text.contains("loaded at start"), "{text}");
    assert!(
        !text.contains("not loaded") && !text.contains("error["),
        "{text}"
    );
    let (ok, log) = second.stop();
    assert!(ok, "{log}");
    let text = status(&s);
    assert!(
        !text.contains("loaded at start") && !text.contains("last reload"),
        "nothing is left behind by a daemon that stopped: {text}"
    );
}
