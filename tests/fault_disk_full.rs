//! Fault: the volume holding the SQLite database fills up. A command that cannot write says
//! so plainly and exits 1 (no panic, nothing half written); a daemon that cannot write logs
//! a clear error, keeps running without spinning, and carries on by itself once there is
//! space again; the database passes `PRAGMA integrity_check` throughout.
//!
//! Email is rate-limited (12 a minute) so that the outbox sender is still behind when the
//! volume fills, and so meets the full disk too.
//!
//! The database lives on a small tmpfs mounted for the test, so this needs root; without
//! it the test says so and passes (fails under `CI=true`). One test in its own binary, as it mounts.

#[path = "it/common/mod.rs"]
mod common;

use common::daemon::{Daemon, Setup, wait_until};
use sqlx::Connection as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use yanzhen::core::state::OutboxState;
use yanzhen::store::Store;

/// The small volume: the migrated database (larger since the pool, ratings and submissions
/// tables), its WAL and room for a few rounds.
const SMALL_KB: u32 = 1536;
/// The volume after "freeing space".
const LARGE_KB: u32 = 32 * 1024;

/// A temporary config whose SQLite database is `data/y.db`, with email rate-limited to 12
/// a minute, and whose daemons take timers with a 1 s lease. `data/` exists already (the
/// mount point); the daemons' logs are outside it, so outside the small volume.
fn setup() -> Setup {
    let s = Setup::new()
        .with_config("[notify.rate_limits]\nemail = 12\n")
        .lease_ms(1000);
    std::fs::create_dir_all(s.data()).expect("mkdir");
    s
}

/// A tmpfs mounted for the test; unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, kb: u32) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kb}k"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    fn resize(&self, kb: u32) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={kb}k")])
            .arg(&self.dir)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    /// Unmount; connections closing in the background may keep it busy for a moment.
    fn drop(&mut self) {
        for _ in 0..20 {
            let out = Command::new("umount").arg(&self.dir).output();
            if out.is_ok_and(|o| o.status.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// `PRAGMA integrity_check` and `PRAGMA foreign_key_check` on the database file.
async fn check_database(url: &str) -> (Vec<String>, usize) {
    let mut conn = sqlx::SqliteConnection::connect(url).await.expect("open");
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .expect("integrity_check");
    let fk = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .expect("foreign_key_check")
        .len();
    let _ = conn.close().await;
    (integrity, fk)
}

/// Every due timer fired (none pending or claimed); false while the database cannot be read.
async fn all_due_fired(store: &Arc<dyn Store>) -> bool {
    let now = chrono::Utc::now().timestamp_millis();
    store
        .timers_with_prefix("")
        .await
        .is_ok_and(|timers| timers.iter().all(|t| t.due_at > now || !t.state.is_live()))
}

/// Outbox rows by state.
#[derive(Debug, Default)]
struct OutboxStates {
    sent: usize,
    pending: usize,
    sending: usize,
    other: usize,
}

async fn outbox_states(store: &Arc<dyn Store>) -> OutboxStates {
    let mut n = OutboxStates::default();
    for r in store.outbox_after(0, i64::MAX).await.expect("outbox") {
        match r.state {
            OutboxState::Sent => n.sent += 1,
            OutboxState::Pending => n.pending += 1,
            OutboxState::Sending => n.sending += 1,
            OutboxState::Failed | OutboxState::Dead => n.other += 1,
        }
    }
    n
}

fn full_disk_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("ERROR") && l.contains("disk is full"))
        .collect()
}

/// Wait until the daemon logs a full-disk error on a line that also passes `which`.
async fn wait_for_log(daemon: &Daemon, what: &str, which: fn(&str) -> bool) {
    let hit = wait_until(Duration::from_secs(20), || {
        let log = daemon.log();
        async move { full_disk_lines(&log).into_iter().any(which) }
    })
    .await;
    assert!(hit, "timed out waiting for {what}:\n{}", daemon.log());
}

/// Over 3 s the daemon stays up and does not spin: a few full-disk errors at most.
async fn assert_calm(daemon: &mut Daemon, when: &str) {
    let before = full_disk_lines(&daemon.log()).len();
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        daemon.alive(),
        "the daemon died ({when}):\n{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(!log.contains("panicked"), "{log}");
    let errors = full_disk_lines(&log);
    let new = errors.len() - before;
    eprintln!("{when}: {new} full-disk errors in {:?}", window.elapsed());
    assert!(
        new <= 10,
        "the daemon spins ({when}): {new} errors in {:?}:\n{}",
        window.elapsed(),
        errors[before..].join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_a_clear_error_corrupts_nothing_and_the_daemon_carries_on() {
    let s = setup();
    let volume = match Tmpfs::mount(&s.data(), SMALL_KB) {
        Ok(v) => v,
        Err(e) => {
            common::skip_or_fail(&format!(
                "disk-full test: cannot mount a tmpfs (needs root): {}",
                e.trim()
            ));
            return;
        }
    };
    let t0 = Instant::now();

    // A daemon is running when the volume fills up: rounds are started (all in the past, so
    // their timers are due at once) faster than it fires them, until a command cannot write.
    let mut daemon = s.serve();
    let started_up = daemon
        .log_shows("scheduler started", Duration::from_secs(20))
        .await;
    assert!(started_up, "the daemon did not start:\n{}", daemon.log());
    let store = yanzhen::store::open_shared(&s.url()).await.expect("open");
    let mut started = 0;
    let failed = loop {
        let out = s.round_start(started + 1);
        if !out.status.success() {
            break out;
        }
        started += 1;
        // Its past instants would be skipped (a late round catches up, decision 20): make
        // them due now, so the daemon has a burst to fire. On the full disk this may fail
        // too; the next command then finds the disk full.
        let _ = s.make_due_now();
        assert!(started < 30, "{SMALL_KB} KiB never filled up");
    };
    assert!(started >= 1, "not even the first round fitted: {failed:?}");
    let err = String::from_utf8_lossy(&failed.stderr).to_string();
    eprintln!(
        "round {} failed after {:?}: {}",
        started + 1,
        t0.elapsed(),
        err.trim()
    );
    assert_eq!(failed.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("disk is full"),
        "the error must name the problem: {err}"
    );
    assert_eq!(
        err.matches("disk is full").count(),
        1,
        "said once, not once per error layer: {err}"
    );
    let (integrity, fk) = check_database(&s.url()).await;
    assert_eq!(integrity, ["ok"], "integrity_check on the full disk");
    assert_eq!(fk, 0, "foreign key violations on the full disk");

    // The daemon cannot write either: it says why, and keeps running without spinning.
    wait_for_log(&daemon, "the scheduler to report the full disk", |l| {
        l.contains("yanzhen::runtime::scheduler")
    })
    .await;
    assert_calm(&mut daemon, "the scheduler on the full disk").await;
    let now = chrono::Utc::now().timestamp_millis();
    let pending_due = store
        .pending_timers(None, 100_000)
        .await
        .expect("pending")
        .iter()
        .filter(|t| t.due_at <= now)
        .count();
    assert!(pending_due > 0, "nothing was left to fire on the full disk");

    // A little space: the daemon fires some timers, whose notifications fill the volume
    // again. The sender is behind (email is rate-limited), so it cannot write either.
    volume.resize(SMALL_KB + 2048);
    wait_for_log(&daemon, "the outbox sender to report the full disk", |l| {
        l.contains("yanzhen::notify::outbox")
    })
    .await;
    assert_calm(&mut daemon, "both loops on the full disk").await;
    let waiting = outbox_states(&store).await;
    eprintln!("full again; notifications by state: {waiting:?}");

    // Free space: the daemon carries on by itself. It fires everything that was due, and
    // the sender sends again.
    volume.resize(LARGE_KB);
    let freed = Instant::now();
    let sent_while_full = outbox_states(&store).await.sent;
    let done = wait_until(Duration::from_secs(30), || {
        let st = store.clone();
        async move { all_due_fired(&st).await && outbox_states(&st).await.sent > sent_while_full }
    })
    .await;
    assert!(
        done,
        "the daemon did not carry on after space was freed:\n{}",
        daemon.log()
    );
    eprintln!(
        "every due timer fired and sending resumed {:?} after freeing space",
        freed.elapsed()
    );
    assert!(daemon.alive(), "{}", daemon.log());
    // SIGTERM stops it promptly although a rate-limited backlog is waiting: the message
    // in hand is finished, the rest of the claim is handed back.
    let stopping = Instant::now();
    let (ok, log) = daemon.stop();
    assert!(ok, "exit status after SIGTERM: {log}");
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "SIGTERM took {:?}",
        stopping.elapsed()
    );

    // Nothing half written or lost: exactly the rounds that reported success, each
    // complete; no notification given up on.
    let rounds = store.rounds().await.expect("rounds");
    assert_eq!(
        rounds.len(),
        started as usize,
        "one round per successful command"
    );
    for r in &rounds {
        assert_eq!(
            store.tasks(r.id).await.expect("tasks").len(),
            26,
            "round {} is complete",
            r.id
        );
    }
    let states = outbox_states(&store).await;
    assert_eq!(states.other, 0, "notifications dead-lettered: {states:?}");
    assert_eq!(states.sending, 0, "claims left behind at exit: {states:?}");
    let (integrity, fk) = check_database(&s.url()).await;
    assert_eq!(integrity, ["ok"], "integrity_check at the end");
    assert_eq!(fk, 0, "foreign key violations at the end");
    eprintln!(
        "{started} rounds; notifications {states:?}; total {:?}",
        t0.elapsed()
    );
    drop(store);
}
