//! The real binary against a real SQLite file: `serve` fires on time and stops on SIGTERM,
//! survives kill -9 mid-burst without losing or duplicating work, refuses a second daemon
//! on the same file (under any name), retries an unreachable database (answering
//! `/healthz` meanwhile) but stops at once on a missing database or unknown user; two
//! daemons on one Postgres share one rate limit and send each message once; `reload`
//! reaches every daemon through the database; `round`, `task`, `status` and `simulate`
//! from the command line.

use crate::common;
use yanzhen::core::state::{MessageKind, OutboxChannel, OutboxState, TimerKind, TimerState};

use common::daemon::{Daemon, Setup, wait_for};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use yanzhen::store::Store;

mod ops;

fn stderr_of(child: Child) -> String {
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[tokio::test]
async fn serve_fires_a_due_timer_within_a_second_and_stops_cleanly_on_sigterm() {
    let s = Setup::new();
    let store = s.store().await;
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(2500);
    store
        .add_timers(vec![yanzhen::store::NewTimer {
            key: "test/stage:probe/open".into(),
            round_id: None,
            task_key: None,
            kind: TimerKind::StageOpen,
            due_at: due.timestamp_millis(),
            payload: yanzhen::store::TimerPayload {
                stage: Some("probe".into()),
                ..Default::default()
            },
        }])
        .await
        .expect("timer");
    let daemon = s.serve();
    wait_for("the probe timer to fire", Duration::from_secs(15), || {
        let store = store.clone();
        async move { store.timers_with_prefix("test/").await.unwrap()[0].state == TimerState::Fired }
    })
    .await;
    let t = store.timers_with_prefix("test/").await.unwrap().remove(0);
    let late = t.fired_at.unwrap() - t.due_at;
    assert!(
        (0..1000).contains(&late),
        "fired {late} ms after its instant"
    );
    let (ok, log) = daemon.stop();
    assert!(ok, "exit status after SIGTERM: {log}");
    assert!(
        log.contains("shutdown requested") && log.contains("scheduler stopped"),
        "{log}"
    );
}

#[tokio::test]
async fn a_second_daemon_on_the_same_sqlite_file_is_refused_with_a_clear_error() {
    let s = Setup::new();
    s.store().await;
    let first = s.serve();
    let lock = PathBuf::from(format!("{}.lock", s.url().trim_start_matches("sqlite://")));
    assert!(
        first
            .log_shows("scheduler started", Duration::from_secs(15))
            .await,
        "timed out waiting for the first daemon to start"
    );
    assert!(lock.exists());
    let second = s.cmd(&["serve"]).output().expect("second");
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("in use by another yanzhen process"), "{err}");
    let (ok, _) = first.stop();
    assert!(ok);
}

#[tokio::test]
async fn serve_keeps_retrying_while_the_database_is_unreachable() {
    let s = Setup::new();
    let mut child = s
        .cmd(&["serve"])
        .env(
            "YANZHEN_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/none",
        )
        .env("YANZHEN_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "serve must keep retrying, not exit"
    );
    let _ = child.kill();
    let err = stderr_of(child);
    assert!(err.contains("database unreachable; retrying"), "{err}");
}

/// Nothing due is left: no timer is pending and due, and none is claimed. A claimed timer
/// counts even while its lease runs: right after a kill -9, the dead daemon's last batch is
/// leased for another second, and the restarted daemon may have fired everything else by then.
async fn drained(store: &Arc<dyn Store>) -> bool {
    let now = chrono::Utc::now().timestamp_millis();
    store.timers_with_prefix("").await.unwrap().iter().all(|t| {
        t.state != TimerState::Running && (t.state != TimerState::Pending || t.due_at > now)
    })
}

/// Drain a burst of `rounds` past rounds with one daemon (1 s timer lease) on a fresh SQLite
/// file and return how many notifications it produced.
async fn clean_run(rounds: u32) -> usize {
    let s = Setup::new().lease_ms(1000);
    s.start_burst(rounds);
    let store = s.store().await;
    let daemon = s.serve();
    wait_for("the clean burst to drain", Duration::from_secs(120), || {
        let st = store.clone();
        async move { drained(&st).await }
    })
    .await;
    daemon.stop();
    store.outbox_after(0, i64::MAX).await.unwrap().len()
}

/// Daemons with a 1 s timer lease on the database of `s`.
async fn kill_9_mid_burst(s: Setup, expected: usize) {
    let s = s.lease_ms(1000);
    s.start_burst(8);
    let store = s.store().await;
    let mut daemon = s.serve();
    wait_for("the burst to start", Duration::from_secs(60), || {
        let st = store.clone();
        async move { st.outbox_after(0, i64::MAX).await.unwrap().len() > 50 }
    })
    .await;
    daemon.kill_9();
    let at_kill = store.outbox_after(0, i64::MAX).await.unwrap().len();
    assert!(
        at_kill < expected,
        "killed after the burst had finished ({at_kill}/{expected}); make it larger"
    );

    let daemon = s.serve();
    wait_for(
        "the burst to drain after restart",
        Duration::from_secs(120),
        || {
            let st = store.clone();
            async move { drained(&st).await }
        },
    )
    .await;
    daemon.stop();
    let rows = store.outbox_after(0, i64::MAX).await.unwrap();
    assert_eq!(rows.len(), expected, "every notification exactly once");
    let mut per_timer: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *per_timer
            .entry(format!(
                "{}|{}",
                r.key.split('#').next().unwrap(),
                r.address
            ))
            .or_default() += 1;
    }
    assert!(
        per_timer.values().all(|n| *n == 1),
        "one message per timer and recipient address"
    );
}

#[tokio::test]
async fn kill_9_mid_burst_then_restart_loses_nothing_and_sends_nothing_twice() {
    let expected = clean_run(8).await;
    assert!(expected > 500, "burst too small: {expected}");
    kill_9_mid_burst(Setup::new(), expected).await;
    if let Some((url, _guard)) = common::stores::postgres_database().await {
        kill_9_mid_burst(Setup::new().db_url(url), expected).await;
    }
}

#[tokio::test]
async fn three_daemons_on_one_postgres_fire_each_timer_exactly_once() {
    let Some((url, _guard)) = common::stores::postgres_database().await else {
        return;
    };
    let expected = clean_run(6).await;
    let s = Setup::new().db_url(url).lease_ms(1000);
    s.start_burst(6);
    let store = s.store().await;
    let due = store.pending_timers(None, 100_000).await.unwrap().len();
    let daemons: Vec<Daemon> = (0..3).map(|_| s.serve()).collect();
    wait_for(
        "three daemons to drain the burst",
        Duration::from_secs(120),
        || {
            let st = store.clone();
            async move { drained(&st).await }
        },
    )
    .await;
    let mut fired_by: HashMap<String, usize> = HashMap::new();
    let mut busy = 0;
    for d in daemons {
        let (ok, log) = d.stop();
        assert!(ok);
        // The weekly missing-calendar notice (written at start-up while next year's
        // holiday file is missing) is not part of the burst.
        let mine: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("timer fired") && !l.contains("timer=calendar:"))
            .collect();
        busy += usize::from(!mine.is_empty());
        for l in mine {
            let key = l
                .split("timer=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or("")
                .to_string();
            *fired_by.entry(key).or_default() += 1;
        }
    }
    assert_eq!(fired_by.len(), due, "every due timer fired");
    assert!(
        fired_by.values().all(|n| *n == 1),
        "no timer fired by two daemons"
    );
    assert!(
        busy >= 2,
        "the work was shared, not done by one daemon alone"
    );
    assert_eq!(
        store.outbox_after(0, i64::MAX).await.unwrap().len(),
        expected
    );
}

#[tokio::test]
async fn round_task_and_status_commands_work_against_the_database() {
    let s = Setup::new();
    let out = s.run(&[
        "round",
        "start",
        "community-reserve-selection",
        "--start",
        "2019-07-01",
        "--branches",
        "dongguan,xiguan,jiwei",
        "--only-listed",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("round 1 started"),
        "{out:?}"
    );
    let list = String::from_utf8_lossy(&s.run(&["task", "list", "1"]).stdout).to_string();
    let id = list
        .lines()
        .find(|l| l.contains("nomination@dongguan"))
        .and_then(|l| l.split_whitespace().next())
        .expect("task line")
        .to_string();
    let done = String::from_utf8_lossy(
        &s.run(&["task", "complete", &id, "--note", "已报送附件1"])
            .stdout,
    )
    .to_string();
    assert!(done.contains("is now done"), "{done}");
    let again = s.cmd(&["task", "complete", &id]).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is done; cannot complete"));
    let status = String::from_utf8_lossy(&s.run(&["status", "1"]).stdout).to_string();
    assert!(status.contains("implementation 组织实施"), "{status}");
    assert!(status.contains("done 1/5"), "{status}");
    assert!(
        status.contains("overdue:"),
        "a 2019 round is overdue today: {status}"
    );
    let token = String::from_utf8_lossy(&s.run(&["token", "create", "zzb-ma"]).stdout)
        .trim()
        .to_string();
    assert!(token.starts_with("yz_") && token.len() == 43, "{token}");
    let store = s.store().await;
    let row = store
        .token_by_hash(&yanzhen::access::token_hash(&token))
        .await
        .unwrap()
        .expect("stored by hash");
    assert_eq!(
        (row.name.as_str(), row.rights.as_str()),
        ("zzb-ma", "admin")
    );
    assert_eq!(
        s.cmd(&["token", "create", "zzb-ma"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(1),
        "names are unique"
    );
    let ics = String::from_utf8_lossy(&s.run(&["feed", "dongguan"]).stdout).to_string();
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\n"), "{ics}");
    assert_eq!(
        ics.matches("BEGIN:VEVENT").count(),
        3,
        "dongguan's three tasks: meeting, nomination, forms: {ics}"
    );
    assert!(
        ics.contains("SUMMARY:[已完成]"),
        "the completed nomination is marked done: {ics}"
    );
}

#[test]
fn simulate_prints_every_notification_and_escalation_of_a_shipped_round() {
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
    let lines: Vec<&str> = text.lines().collect();
    // What serve would send: a reminder waits the digest window (15 minutes in the shipped
    // config) for companions, so it goes at 18:15.
    // dongguan nominated on 7-11: one reminder (7-10 18:15), no deadline notice, no escalation.
    let dongguan_nom: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("dongguan@") && l.contains("组织推荐"))
        .collect();
    assert_eq!(dongguan_nom.len(), 1, "{dongguan_nom:#?}");
    assert!(
        dongguan_nom[0].starts_with("2019年7月10日（星期三）18:15  提醒"),
        "{}",
        dongguan_nom[0]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("2019年7月11日（星期四）09:30  完成")
                && l.contains("东关社区党委"))
    );
    // The nomination is overdue for four communities (beimen, fuqian, nanmen, xinhe; xiguan
    // nominated at 7-15 11:00, before its first escalation at 18:00): the escalations of one
    // hour to one rung are one message, climbing office → committee head → district.
    for (day, to) in [
        ("2019年7月15日（星期一）18:15", "zzb@"),
        ("2019年7月16日（星期二）18:15", "shuji@"),
        ("2019年7月18日（星期四）18:15", "zzk@"),
    ] {
        let found: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with(day) && l.contains("逐级上报") && l.contains(to))
            .collect();
        assert_eq!(found.len(), 1, "{day} {to}: {text}");
        assert!(
            found[0].contains("【逾期上报】4项工作逾期未完成"),
            "{}",
            found[0]
        );
    }
    // Every message is one that was sent: no recipient gets two of one kind at one instant.
    let mut seen = std::collections::HashSet::new();
    for l in lines.iter().filter(|l| l.contains("@")) {
        let cols: Vec<&str> = l.split_whitespace().collect();
        assert!(
            seen.insert((cols[0], cols[1], cols[3])),
            "two messages to one recipient at one instant: {l}"
        );
    }
}

#[tokio::test]
async fn serve_delivers_the_outbox_to_a_real_smtp_server() {
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
        "dongguan,xiguan",
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
    assert!(log.contains("outbox sender stopped"), "{log}");
    let rows = store.outbox_after(0, i64::MAX).await.unwrap();
    let ids: std::collections::HashSet<String> =
        rows.iter().filter_map(|r| r.message_id.clone()).collect();
    let got = smtp.messages();
    assert_eq!(
        got.len(),
        ids.len(),
        "one email per Message-ID (digests merge rows)"
    );
    let received: std::collections::HashSet<String> = got
        .iter()
        .map(|m| {
            let parsed = mailparse::parse_mail(&m.data).expect("mail");
            parsed
                .headers
                .iter()
                .find(|h| h.get_key() == "Message-ID")
                .map(|h| h.get_value())
                .unwrap_or_default()
                .trim_matches(['<', '>'])
                .to_string()
        })
        .collect();
    assert_eq!(received, ids);
}

#[tokio::test]
async fn editing_files_under_a_running_daemon_applies_valid_edits_and_rejects_invalid_ones() {
    let s = Setup::new();
    let store = s.store().await;
    let daemon = s.serve();
    assert!(
        daemon
            .log_shows("scheduler started", Duration::from_secs(20))
            .await,
        "timed out waiting for the daemon to start"
    );
    let file = s.path().join("workflows/community-reserve-selection.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    let versions = |st: Arc<dyn Store>| async move {
        st.workflow_versions("community-reserve-selection")
            .await
            .unwrap()
            .len()
    };
    assert_eq!(versions(store.clone()).await, 1);

    // A valid edit (saved the way editors do: write a temporary file, rename it over).
    let tmp = s.path().join("workflows/.edit.tmp");
    std::fs::write(
        &tmp,
        original.replace(
            "due: {from: round_start, days: 11}",
            "due: {from: round_start, days: 12}",
        ),
    )
    .unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    wait_for(
        "the edit to become version 2",
        Duration::from_secs(20),
        || {
            let st = store.clone();
            async move { versions(st).await == 2 }
        },
    )
    .await;

    let listed = String::from_utf8_lossy(
        &s.run(&["workflow", "versions", "community-reserve-selection"])
            .stdout,
    )
    .to_string();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let diff = String::from_utf8_lossy(
        &s.run(&["workflow", "diff", "community-reserve-selection"])
            .stdout,
    )
    .to_string();
    assert!(diff.contains("v1 → v2"), "{diff}");
    assert!(
        diff.lines().any(|l| l.contains("moved")
            && l.contains("nomination@xinhe ")
            && l.contains("2019年7月12日（星期五）18:00 → 2019年7月13日（星期六）18:00")),
        "{diff}"
    );

    // An invalid edit is rejected whole; the last good version keeps running.
    std::fs::write(&file, "id: community-reserve-selection\ntitle: [未闭合\n").unwrap();
    wait_for(
        "the invalid edit to be rejected",
        Duration::from_secs(20),
        || {
            let st = store.clone();
            async move {
                st.setting("last_reload")
                    .await
                    .unwrap()
                    .unwrap_or_default()
                    .contains("\"rejected\":[\"community-reserve-selection\"]")
            }
        },
    )
    .await;
    assert_eq!(versions(store.clone()).await, 2);
    let status = String::from_utf8_lossy(&s.run(&["status"]).stdout).to_string();
    assert!(
        status.contains("rejected workflow file: community-reserve-selection"),
        "{status}"
    );
    assert!(status.contains("yaml-syntax"), "{status}");

    // Reminders keep flowing after the rejected edit.
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    store
        .add_timers(vec![yanzhen::store::NewTimer {
            key: "probe/stage:after-edit/open".into(),
            round_id: None,
            task_key: None,
            kind: TimerKind::StageOpen,
            due_at: due.timestamp_millis(),
            payload: Default::default(),
        }])
        .await
        .unwrap();
    wait_for("the probe timer to fire", Duration::from_secs(20), || {
        let st = store.clone();
        async move { st.timers_with_prefix("probe/").await.unwrap()[0].state == TimerState::Fired }
    })
    .await;

    // `yanzhen reload` asks the daemon through the database.
    let out = s.run(&["reload"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reload requested; taken by 1 daemon(s)")
    );
    assert!(
        daemon
            .log_shows(
                "reload requested through the database",
                Duration::from_secs(20)
            )
            .await,
        "timed out waiting for the reload"
    );
    let (ok, log) = daemon.stop();
    assert!(ok, "{log}");
}
