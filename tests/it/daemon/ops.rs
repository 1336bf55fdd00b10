//! The daemon's HTTP health, database errors at start-up, reload across daemons, the rate
//! limit shared by two daemons, deliver mode, a broken directory and the first run.

use super::*;

/// Run `cmd` to its end, or kill it after `limit` (then None): a command expected to exit
/// must not hang the test when it does not.
fn output_within(mut cmd: Command, limit: Duration) -> Option<std::process::Output> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().expect("try_wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The `addr=` of the daemon's "http listening" log line.
async fn http_addr(daemon: &Daemon) -> String {
    assert!(
        daemon
            .log_shows("http listening", Duration::from_secs(20))
            .await,
        "no http listener: {}",
        daemon.log()
    );
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("http listening"))
        .expect("line");
    line.split("addr=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("addr")
        .to_string()
}

#[tokio::test]
async fn healthz_answers_and_readyz_says_why_while_the_database_is_unreachable() {
    yanzhen::notify::install_tls_provider();
    let s = Setup::new().db_url("postgres://postgres@127.0.0.1:1/none");
    let daemon = s.serve();
    let addr = http_addr(&daemon).await;
    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200, "liveness does not need the database");
    let mut reason = String::new();
    for _ in 0..50 {
        let ready = http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(ready.status(), 503);
        let body: serde_json::Value = ready.json().await.expect("json");
        reason = body["reason"].as_str().unwrap_or_default().to_string();
        if reason.contains("unreachable") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reason.contains("database postgres://postgres@127.0.0.1:1/none unreachable"),
        "{reason}"
    );
    let api = http
        .get(format!("http://{addr}/api/rounds"))
        .send()
        .await
        .expect("api");
    assert_eq!(api.status(), 503, "nothing else is served yet");
    let (_, log) = daemon.stop();
    assert!(!log.contains("yanzhen serving"), "{log}");
}

#[tokio::test]
async fn a_missing_postgres_database_or_unknown_user_stops_serve_at_once_with_what_to_fix() {
    let Some(admin) = common::stores::postgres_url() else {
        common::skip_or_fail(&format!(
            "PostgreSQL test: {} not set",
            common::stores::POSTGRES_URL_VAR
        ));
        return;
    };
    let missing = common::stores::with_database(&admin, "yz_no_such_database");
    let unknown_user = admin.replacen("postgres://postgres@", "postgres://yz_no_such_user@", 1);
    assert_ne!(
        unknown_user, admin,
        "the test expects a postgres://postgres@ URL"
    );
    for (url, expect) in [
        (missing.as_str(), "createdb"),
        (unknown_user.as_str(), "check the user name and password"),
    ] {
        let s = Setup::new().db_url(url);
        let mut serve = s.cmd(&["serve"]);
        serve.env("YANZHEN_LOG", "info");
        let out = output_within(serve, Duration::from_secs(15))
            .unwrap_or_else(|| panic!("{url}: still retrying after 15 s"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {err}");
        assert!(
            err.contains("PostgreSQL refused") && err.contains(expect),
            "{url}: {err}"
        );
        assert!(
            !err.contains("retrying") && !err.contains("yanzhen serving"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn serve_refuses_deliver_mode_without_smtp_before_it_says_serving() {
    let s = Setup::new().with_config("[notify]\nmode = \"deliver\"\n");
    let out = s
        .cmd(&["serve"])
        .env("YANZHEN_LOG", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("yanzhen.toml:") && err.contains("needs an [notify.smtp] section"),
        "{err}"
    );
    assert!(!err.contains("yanzhen serving"), "{err}");
}

#[tokio::test]
async fn reload_without_a_running_daemon_says_so() {
    let s = Setup::new();
    s.store().await;
    let out = s.cmd(&["reload"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no daemon took the reload request"), "{err}");
}

#[tokio::test]
async fn reload_reaches_the_daemon_still_running_after_another_one_on_the_database_stopped() {
    let Some((url, _guard)) = common::stores::postgres_database().await else {
        return;
    };
    let s = Setup::new().db_url(url);
    s.store().await;
    let first = s.serve();
    assert!(
        first
            .log_shows("yanzhen serving", Duration::from_secs(20))
            .await,
        "{}",
        first.log()
    );
    let second = s.serve();
    assert!(
        second
            .log_shows("yanzhen serving", Duration::from_secs(20))
            .await,
        "{}",
        second.log()
    );
    let (ok, _) = second.stop();
    assert!(ok);
    let out = s.cmd(&["reload"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("taken by 1 daemon(s)"), "{said}");
    assert!(
        first
            .log_shows(
                "reload requested through the database",
                Duration::from_secs(10)
            )
            .await
    );
    let (ok, log) = first.stop();
    assert!(ok, "{log}");
}

#[tokio::test]
async fn a_symlink_to_a_running_daemons_sqlite_file_is_refused() {
    let s = Setup::new();
    s.store().await;
    let first = s.serve();
    assert!(
        first
            .log_shows("yanzhen serving", Duration::from_secs(20))
            .await,
        "{}",
        first.log()
    );
    // Once serving, the same listener answers with the whole router.
    yanzhen::notify::install_tls_provider();
    let addr = http_addr(&first).await;
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let api = http
        .get(format!("http://{addr}/api/rounds"))
        .send()
        .await
        .expect("api");
    assert_eq!(api.status(), 401, "the API asks for a token");
    let link = s.data().join("another-name.db");
    std::os::unix::fs::symlink(s.data().join("y.db"), &link).unwrap();
    let mut serve = s.cmd(&["serve"]);
    serve.env(
        "YANZHEN_DATABASE_URL",
        format!("sqlite://{}", link.display()),
    );
    let second = output_within(serve, Duration::from_secs(15))
        .expect("the second daemon must be refused, not start");
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("in use by another yanzhen process"), "{err}");
    let (ok, _) = first.stop();
    assert!(ok);
}

/// The measurement: two `serve` on one Postgres, 60 messages a minute, 250
/// reminders to 250 addresses of a real SMTP server. SMTP and webhook timeouts of 1 s make
/// the old lease (2 × timeout + 30 s = 32 s) run out while a daemon waits on its rate limit:
/// that is what sent 349 mails for 250. Takes a little over three minutes (the shared
/// budget allows 60 at once, then one a second).
#[tokio::test]
async fn two_daemons_on_one_postgres_at_60_a_minute_deliver_250_reminders_exactly_once() {
    let Some((url, _guard)) = common::stores::postgres_database().await else {
        return;
    };
    let smtp = common::smtp::TestSmtp::start();
    let s = Setup::new().db_url(url).with_config(&format!(
        "[notify]\nmode = \"deliver\"\nfrom = \"清水街道党工委组织办 <noreply@qingshui.example.gov.cn>\"\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\ntimeout_seconds = 1\n[notify.webhook]\ntimeout_seconds = 1\n[notify.rate_limits]\nemail = 60\n",
        smtp.port()
    ));
    let store = s.store().await;
    let now = chrono::Utc::now().timestamp_millis();
    store
        .add_timers(vec![yanzhen::store::NewTimer {
            key: "probe/reminders".into(),
            round_id: None,
            task_key: None,
            kind: TimerKind::StageOpen,
            due_at: 0,
            payload: Default::default(),
        }])
        .await
        .unwrap();
    let claimed = store
        .claim_due_timers(now, "test", 60_000, 1)
        .await
        .unwrap()
        .timers;
    let reminders = (0..250)
        .map(|i| yanzhen::store::NewNotification {
            key: format!("probe/reminders#email:r{i:03}@example.gov.cn"),
            round_id: None,
            task_id: None,
            kind: MessageKind::Reminder,
            channel: OutboxChannel::Email,
            address: format!("r{i:03}@example.gov.cn"),
            recipient_json: format!(
                "{{\"party\":{{\"kind\":\"unit\",\"id\":\"r{i:03}\",\"name\":\"第{i}社区党支部\"}}}}"
            ),
            subject: format!("【提醒】第{i}社区：请报送名册"),
            body: "请报送名册。".into(),
            html: "<p>请报送名册。</p>".into(),
            item_json: "{}".into(),
            not_before: now,
            created_at: now,
        })
        .collect();
    assert!(
        store
            .fire_timer(
                claimed[0].id,
                "test",
                now,
                yanzhen::store::FireEffects {
                    notifications: reminders,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    );
    let daemons = [s.serve(), s.serve()];
    let started = std::time::Instant::now();
    let mut first_at: Option<std::time::Instant> = None;
    let mut over_budget = Vec::new();
    loop {
        let got = smtp.messages().len();
        if got > 0 && first_at.is_none() {
            first_at = Some(std::time::Instant::now());
        }
        if let Some(t0) = first_at {
            // 60 at once, then one a second (and a little slack for polling).
            let allowed = 60 + t0.elapsed().as_secs() as usize + 3;
            if got > allowed {
                over_budget.push((t0.elapsed().as_secs(), got));
            }
        }
        let rows = store.outbox_after(0, 1000).await.unwrap();
        if rows.iter().all(|r| r.state == OutboxState::Sent) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(330),
            "not delivered within 330 s: {} of 250 mails",
            smtp.messages().len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Anything sent twice would arrive within a lease or two; give it the time.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut logs = Vec::new();
    for d in daemons {
        let (ok, log) = d.stop();
        assert!(ok, "{log}");
        logs.push(log);
    }
    // Besides the reminders, the office gets the weekly notice that next year's holiday
    // file is missing (from 1 November, while config/calendar has no such file).
    let (got, other): (Vec<_>, Vec<_>) = smtp
        .messages()
        .into_iter()
        .partition(|m| m.to.iter().all(|t| t.ends_with("@example.gov.cn")));
    assert!(
        other
            .iter()
            .all(|m| m.to == ["zzb@qingshui.example.gov.cn"]),
        "only the office's calendar notice besides the reminders: {:?}",
        other.iter().map(|m| &m.to).collect::<Vec<_>>()
    );
    assert!(other.len() <= 1, "the calendar notice once, not per daemon");
    let ids: HashSet<String> = got
        .iter()
        .map(|m| {
            let parsed = mailparse::parse_mail(&m.data).expect("mail");
            parsed
                .headers
                .iter()
                .find(|h| h.get_key() == "Message-ID")
                .map(|h| h.get_value())
                .unwrap_or_default()
        })
        .collect();
    let to: HashSet<&String> = got.iter().flat_map(|m| &m.to).collect();
    assert_eq!(
        (got.len(), ids.len(), to.len()),
        (250, 250, 250),
        "exactly 250 mails, 250 Message-IDs, 250 recipients"
    );
    let rows = store.outbox_after(0, 1000).await.unwrap();
    assert!(
        rows.iter().all(|r| r.attempts == 1),
        "one delivery attempt each"
    );
    assert!(
        over_budget.is_empty(),
        "the two daemons together stayed within 60 a minute (burst 60): {over_budget:?}"
    );
    let elapsed = first_at.map(|t| t.elapsed().as_secs()).unwrap_or(0);
    assert!(
        elapsed >= 180,
        "190 s at one a second after the burst, took {elapsed} s"
    );
    for log in &logs {
        assert!(log.contains("outbox sender started"), "{log}");
    }
}

#[tokio::test]
async fn deliver_mode_logs_one_line_per_sent_email_with_recipient_kind_and_message_id_of_the_from_domain()
 {
    let smtp = common::smtp::TestSmtp::start();
    let s = Setup::new().with_config(&format!(
        "[notify]\nmode = \"deliver\"\nfrom = \"清水街道党工委组织办 <noreply@qingshui.example.gov.cn>\"\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n",
        smtp.port()
    ));
    s.run(&[
        "round",
        "start",
        "community-reserve-selection",
        "--start",
        "2019-07-01",
        "--branches",
        "dongguan",
        "--only-listed",
    ]);
    let store = s.store().await;
    let daemon = s.serve();
    wait_for(
        "the outbox to be delivered",
        Duration::from_secs(60),
        || {
            let st = store.clone();
            async move {
                let rows = st.outbox_after(0, i64::MAX).await.unwrap();
                drained(&st).await
                    && !rows.is_empty()
                    && rows.iter().all(|r| r.state == OutboxState::Sent)
            }
        },
    )
    .await;
    let (ok, log) = daemon.stop();
    assert!(ok, "{log}");
    let got = smtp.messages();
    assert!(!got.is_empty());
    let sent_lines: Vec<&str> = log.lines().filter(|l| l.contains(" sent ")).collect();
    assert_eq!(sent_lines.len(), got.len(), "one line per email:\n{log}");
    for m in &got {
        let parsed = mailparse::parse_mail(&m.data).expect("mail");
        let value = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.get_key() == name)
                .map(|h| h.get_value())
                .unwrap_or_default()
        };
        let id = value("Message-ID")
            .trim_matches(['<', '>', ' '])
            .to_string();
        assert!(
            id.ends_with("@qingshui.example.gov.cn"),
            "the Message-ID's domain is the from address's: {id}"
        );
        let line = sent_lines
            .iter()
            .find(|l| l.contains(&format!("message_id={id}")))
            .unwrap_or_else(|| panic!("no log line for {id}:\n{log}"));
        let to = m.to.first().cloned().unwrap_or_default();
        assert!(line.contains(&format!("to={to}")), "{line}");
        assert!(
            line.contains(&format!("kind={}", value("X-Yanzhen-Kind"))),
            "{line}"
        );
    }
}

/// A [`Setup`] whose directory is a copy in its temp dir (so a test can break it), and
/// that copy's path.
fn with_own_directory(s: &Setup) -> PathBuf {
    // In a folder of its own: the daemon watches the directory file's folder, and the
    // temp dir's root holds the daemon's own log.
    std::fs::create_dir_all(s.path().join("dir")).unwrap();
    let copy = s.path().join("dir/directory.yaml");
    std::fs::copy(common::root().join("config/directory.yaml"), &copy).unwrap();
    let config = std::fs::read_to_string(s.config()).unwrap();
    let shipped = common::root().join("config/directory.yaml");
    let config = config.replace(
        &format!("directory = \"{}\"", shipped.display()),
        &format!("directory = \"{}\"", copy.display()),
    );
    assert!(config.contains(&copy.display().to_string()));
    std::fs::write(s.config(), config).unwrap();
    copy
}

/// Break the directory: a group member that does not exist. Returns `file:line:col` of it.
fn break_directory(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let needle = "members: [dongguan, xiguan";
    let line = text
        .lines()
        .position(|l| l.contains(needle))
        .expect("communities group")
        + 1;
    let column = text
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("dongguan")
        .unwrap()
        + 1;
    std::fs::write(path, text.replace(needle, "members: [dongguann, xiguan")).unwrap();
    format!("{}:{line}:{column}", path.display())
}

#[tokio::test]
async fn a_broken_directory_does_not_block_status_or_task_list_and_reload_logs_each_error() {
    let s = Setup::new();
    let dir_file = with_own_directory(&s);
    s.run(&[
        "round",
        "start",
        "community-reserve-selection",
        "--start",
        "2019-07-01",
        "--branches",
        "dongguan",
    ]);
    let daemon = s.serve();
    assert!(
        daemon
            .log_shows("scheduler started", Duration::from_secs(20))
            .await,
        "timed out waiting for the daemon to start"
    );
    let at = break_directory(&dir_file);
    assert!(
        daemon
            .log_shows(
                &format!("reload: error[unknown-reference]: {at}: "),
                Duration::from_secs(20)
            )
            .await,
        "the daemon logs the directory's error itself:\n{}",
        daemon.log()
    );
    let (ok, log) = daemon.stop();
    assert!(ok, "{log}");

    let status = s.cmd(&["status", "1"]).output().unwrap();
    let err = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "{err}");
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("round 1 "),
        "{status:?}"
    );
    assert!(err.contains(&at), "the problem is still shown: {err}");
    let list = s.cmd(&["task", "list", "1"]).output().unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(String::from_utf8_lossy(&list.stdout).contains("nomination@dongguan"));
    // Commands that change rounds still refuse to run on a broken directory.
    let start = s
        .cmd(&[
            "round",
            "start",
            "community-reserve-selection",
            "--start",
            "2019-07-02",
        ])
        .output()
        .unwrap();
    assert_eq!(start.status.code(), Some(1));
}

#[test]
fn workflow_diff_reports_wording_changes_not_only_dates() {
    let s = Setup::new();
    s.run(&["workflow", "versions", "community-reserve-selection"]);
    let file = s.path().join("workflows/community-reserve-selection.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "title: 组织推荐：确定推荐人选并公示，报送附件1",
            "title: 组织推荐：确定推荐人选并公示",
        ),
    )
    .unwrap();
    let out = s.run(&["workflow", "diff", "community-reserve-selection"]);
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        diff.contains("v1 → v2") && diff.contains(": 0 change(s)"),
        "{diff}"
    );
    assert!(
        diff.contains("wording: 1 change(s)")
            && diff.lines().any(|l| l.contains("changed")
                && l.contains("title")
                && l.contains("task:nomination")
                && l.contains("→ 「组织推荐：确定推荐人选并公示」")),
        "{diff}"
    );
}

#[test]
fn simulate_prints_stage_openings_and_closings() {
    let out = Command::new(env!("CARGO_BIN_EXE_yanzhen"))
        .args(["simulate", "examples/seed000-scenario.yaml"])
        .current_dir(common::root())
        .output()
        .expect("simulate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let stages: Vec<&str> = text.lines().filter(|l| l.contains("  阶段")).collect();
    assert_eq!(
        stages,
        [
            "2019年7月1日（星期一）09:00  阶段开始  工作部署（deployment）",
            "2019年7月4日（星期四）18:00  阶段结束  工作部署（deployment）",
            "2019年7月5日（星期五）09:00  阶段开始  组织实施（implementation）",
            "2019年7月18日（星期四）18:00  阶段结束  组织实施（implementation）",
            "2019年7月19日（星期五）09:00  阶段开始  总结（summary）",
            "2019年7月20日（星期六）18:00  阶段结束  总结（summary）",
        ],
        "{text}"
    );
}

#[tokio::test]
async fn a_first_serve_says_where_the_console_is_and_how_to_get_a_token_with_one_line_per_warning_code()
 {
    let s = Setup::new().with_shipped_workflows();
    let daemon = s.serve();
    let addr = http_addr(&daemon).await;
    let hint = "no administrator token yet";
    assert!(
        daemon.log_shows(hint, Duration::from_secs(20)).await,
        "{}",
        daemon.log()
    );
    let (ok, log) = daemon.stop();
    assert!(ok, "{log}");
    let url = format!("http://{addr}/console");
    assert!(log.contains(&format!("console at {url}")), "{log}");
    let hint_line = log.lines().find(|l| l.contains(hint)).expect("hint line");
    assert!(
        hint_line.contains("yanzhen token create NAME") && hint_line.contains(&url),
        "{hint_line}"
    );
    let serving = log.find("yanzhen serving").expect("serving");
    assert!(
        log.find(hint).expect("hint") > serving,
        "after serving: {log}"
    );
    let mut per_code: HashMap<&str, usize> = HashMap::new();
    for line in log.lines() {
        if let Some(rest) = line.split("warning[").nth(1) {
            let code = rest.split(']').next().unwrap_or_default();
            *per_code.entry(code).or_default() += 1;
        }
    }
    assert!(
        per_code.values().all(|&n| n == 1),
        "one line per warning code: {per_code:?}\n{log}"
    );

    let out = s
        .cmd(&["token", "create", "zzb-ma"])
        .output()
        .expect("token create");
    assert!(out.status.success(), "{out:?}");
    let daemon = s.serve();
    assert!(
        daemon
            .log_shows("console at http://", Duration::from_secs(20))
            .await,
        "{}",
        daemon.log()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, log) = daemon.stop();
    assert!(!log.contains(hint), "an administrator token exists: {log}");
}
