//! Peer side of `yanzhen bench`: the same one-shot timer workload through
//! tokio-cron-scheduler (one job per timer) and apalis with its SQLite storage.
//!
//! This is a standalone cargo project on purpose (see `Cargo.toml`): it is never part of
//! the yanzhen build, CI or tests. Run it with
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- --n 10000
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- --n 10000 --spread
//! ```
//!
//! Workload (identical to the one `yanzhen bench` runs on yanzhen itself):
//! * N one-shot timers (default 10,000).
//! * burst (default): all due at the same instant T0 = start + 2 s, rounded UP to the next
//!   whole Unix second (both peers store due times in whole seconds only; without the
//!   rounding tokio-cron-scheduler would fire up to 1 s early and apalis up to 1 s late
//!   for reasons that have nothing to do with their throughput).
//! * `--spread`: due_i = T0 + 10 s * i / (N - 1), i.e. evenly spread over 10 s. Here the
//!   whole-second granularity of both peers is part of what is measured: each peer gets
//!   ceil(due_i) (never early) and lateness is measured against the exact due_i.
//! * Each timer's action: increment an atomic counter and record `now - due`.
//!
//! Reported per engine variant: drain time (T0 → last timer ran), throughput (fired /
//! drain time), lateness p50/p99/max in ms, peak RSS (VmHWM of the process that ran only
//! that variant), plus fired/missed/duplicate/early counts and the time it took to
//! register the N timers. One JSON line per variant on stdout, then a human table.
//! Each variant runs in its own child process so that VmHWM belongs to that variant alone.

use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every variant the parent runs, each in a child process.
const VARIANTS: &[&str] = &["tcs", "tcs-bigchan", "apalis", "apalis-c16", "apalis-hb1"];

#[derive(Debug, Clone)]
struct Opts {
    n: usize,
    spread: bool,
    /// Run this one variant in-process (child mode) and print only its JSON line.
    engine: Option<String>,
    /// apalis: interval of the polling strategy (the worker's only wake-up for scheduled jobs).
    apalis_poll_ms: u64,
    /// apalis-sqlite `Config::batch_size` (library default 10).
    apalis_batch: usize,
    /// apalis-sqlite `Config::heartbeat_interval` in seconds (library default 30).
    apalis_heartbeat_s: u64,
    /// Give up waiting this long after the last due time.
    timeout_s: u64,
    /// JSON lines of `yanzhen bench` to print ratios against.
    baseline: Option<String>,
}

const LEAD: Duration = Duration::from_secs(2);
const WINDOW: Duration = Duration::from_secs(10);

fn usage() -> ! {
    eprintln!(
        "usage: yanzhen-peers-bench [--n N] [--spread] [--engine {}] [--apalis-poll-ms MS] \
         [--apalis-batch B] [--apalis-heartbeat-s S] [--timeout-s S] [--baseline YANZHEN_BENCH_OUTPUT]",
        VARIANTS.join("|")
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut o = Opts {
        n: 10_000,
        spread: false,
        engine: None,
        apalis_poll_ms: 100,
        apalis_batch: 10,
        apalis_heartbeat_s: 30,
        timeout_s: 120,
        baseline: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--n" => o.n = val().parse().unwrap_or_else(|_| usage()),
            "--spread" => o.spread = true,
            "--engine" => o.engine = Some(val()),
            "--apalis-poll-ms" => o.apalis_poll_ms = val().parse().unwrap_or_else(|_| usage()),
            "--apalis-batch" => o.apalis_batch = val().parse().unwrap_or_else(|_| usage()),
            "--apalis-heartbeat-s" => {
                o.apalis_heartbeat_s = val().parse().unwrap_or_else(|_| usage())
            }
            "--timeout-s" => o.timeout_s = val().parse().unwrap_or_else(|_| usage()),
            "--baseline" => o.baseline = Some(val()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if o.n == 0 || o.apalis_batch == 0 || o.apalis_heartbeat_s == 0 {
        usage()
    }
    if let Some(e) = &o.engine {
        if !VARIANTS.contains(&e.as_str()) {
            usage()
        }
    }
    o
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_micros() as i64
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs()
}

/// ceil(us / 1e6): the whole Unix second a peer is asked to fire at (never before `us`).
fn ceil_secs(us: i64) -> u64 {
    ((us + 999_999) / 1_000_000) as u64
}

/// Peak resident set size of this process (kB), from /proc/self/status.
fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Shared by every timer action: due times, first-run times and counters.
struct Shared {
    due_us: Vec<i64>,
    ran_us: Vec<AtomicI64>,
    runs: AtomicUsize,
    duplicates: AtomicUsize,
}

impl Shared {
    fn new(due_us: Vec<i64>) -> Self {
        let ran_us = due_us.iter().map(|_| AtomicI64::new(0)).collect();
        Shared {
            due_us,
            ran_us,
            runs: AtomicUsize::new(0),
            duplicates: AtomicUsize::new(0),
        }
    }

    /// The timer action: count it and record when it ran (lateness = ran - due).
    fn fire(&self, i: usize) {
        let now = now_us();
        if self.ran_us[i]
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        self.runs.fetch_add(1, Ordering::AcqRel);
    }
}

/// The due instants (Unix µs) of the workload, T0 first.
fn workload(n: usize, spread: bool) -> (i64, Vec<i64>) {
    let start = now_us();
    let t0 = ceil_secs(start + LEAD.as_micros() as i64) as i64 * 1_000_000;
    let span = WINDOW.as_micros() as i64;
    let dues = (0..n)
        .map(|i| {
            if spread && n > 1 {
                t0 + span * i as i64 / (n as i64 - 1)
            } else {
                t0
            }
        })
        .collect();
    (t0, dues)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Wait until every timer ran (or the deadline), then a short grace to catch duplicates.
async fn wait_all(sh: &Shared, last_due_us: i64, timeout: Duration) {
    let deadline = last_due_us + timeout.as_micros() as i64;
    while sh.runs.load(Ordering::Acquire) < sh.due_us.len() && now_us() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

struct Setup {
    engine: &'static str,
    variant: String,
    notes: String,
    extra: Value,
}

/// Summarise one run into the JSON result object.
fn summarise(o: &Opts, sh: &Shared, t0: i64, scheduled_at: i64, started: i64, s: Setup) -> Value {
    let n = sh.due_us.len();
    let mut late_ms = Vec::with_capacity(n);
    let mut last_ran = t0;
    let mut early = 0usize;
    for (i, r) in sh.ran_us.iter().enumerate() {
        let r = r.load(Ordering::Acquire);
        if r == 0 {
            continue;
        }
        let l = (r - sh.due_us[i]) as f64 / 1000.0;
        if l < 0.0 {
            early += 1;
        }
        late_ms.push(l);
        last_ran = last_ran.max(r);
    }
    late_ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let fired = late_ms.len();
    // Longest stretch (after T0) in which no timer ran although some were due: a stall detector.
    let mut ran: Vec<i64> = sh
        .ran_us
        .iter()
        .map(|r| r.load(Ordering::Acquire))
        .filter(|&r| r != 0)
        .collect();
    ran.sort_unstable();
    let mut max_gap = 0i64;
    let mut prev = t0;
    for &r in &ran {
        if r > prev {
            max_gap = max_gap.max(r - prev);
        }
        prev = prev.max(r);
    }
    let drain_s = ((last_ran - t0).max(1)) as f64 / 1e6;
    json!({
        "bench": if o.spread { "spread" } else { "burst" },
        "result": {
            "engine": s.engine,
            "variant": s.variant,
            "timers": n,
            "fired": fired,
            "missed": n - fired,
            "duplicates": sh.duplicates.load(Ordering::Relaxed),
            "early": early,
            "schedule_s": round3((scheduled_at - started) as f64 / 1e6),
            "lead_s": round3((t0 - scheduled_at) as f64 / 1e6),
            // null when nothing fired at all (no drain, no lateness to speak of)
            "drain_s": (fired > 0).then(|| round3(drain_s)),
            "fires_per_s": (fired > 0).then(|| round3(fired as f64 / drain_s)),
            "lateness_ms": {
                "p50": (fired > 0).then(|| round3(percentile(&late_ms, 0.5))),
                "p99": (fired > 0).then(|| round3(percentile(&late_ms, 0.99))),
                "max": late_ms.last().map(|&m| round3(m)),
            },
            "max_gap_ms": (fired > 0).then(|| round3(max_gap as f64 / 1000.0)),
            "peak_rss_kib": vm_hwm_kib(),
            "config": s.extra,
            "notes": s.notes,
        }
    })
}

// ---------------------------------------------------------------------------------------
// tokio-cron-scheduler 0.15.x, default features (in-memory SimpleMetadataStore /
// SimpleJobCode). NOTE: with this store nothing survives a restart — job metadata and the
// closures live only in this process's memory (and even the postgres/nats stores persist
// only metadata, never the closure). One `Job::new_one_shot_async` per timer.
// ---------------------------------------------------------------------------------------

type JobFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

async fn run_tcs(o: &Opts, big_channel: bool) -> Value {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let started = now_us();
    let (t0, dues) = workload(o.n, o.spread);
    let last_due = *dues.iter().max().expect("n > 0");
    let sh = Arc::new(Shared::new(dues));
    // The library's internal broadcast channels (job activation, notifications, creation)
    // hold 200 messages by default; a lagging receiver silently drops activations.
    let channel = if big_channel { 2 * o.n + 200 } else { 200 };
    let sched = if big_channel {
        JobScheduler::new_with_channel_size(channel).await
    } else {
        JobScheduler::new().await
    }
    .expect("JobScheduler::new");
    for i in 0..o.n {
        // `new_one_shot_async` computes next_tick = floor(now in s) + floor(duration in s),
        // so pass whole seconds and retry if a second boundary was crossed meanwhile.
        let target = ceil_secs(sh.due_us[i]);
        let job = loop {
            let before = now_secs();
            let d = Duration::from_secs(target.saturating_sub(before));
            let sh = sh.clone();
            let job = Job::new_one_shot_async(d, move |_id, _l| -> JobFuture {
                let sh = sh.clone();
                Box::pin(async move { sh.fire(i) })
            })
            .expect("new_one_shot_async");
            if now_secs() == before {
                break job;
            }
        };
        // Adds are awaited one at a time: concurrent adds > channel size make the library's
        // creator task see `Lagged` and stop for good.
        sched.add(job).await.expect("JobScheduler::add");
    }
    sched.start().await.expect("JobScheduler::start");
    let scheduled_at = now_us();
    wait_all(&sh, last_due, Duration::from_secs(o.timeout_s)).await;
    let extra = json!({"channel_size": channel, "tick_interval_ms": 500, "store": "in-memory (default features)"});
    let notes =
        "scheduler loop sleeps 500 ms between ticks (hard-coded); due times have 1 s resolution; \
                 in-memory store: nothing survives a restart"
            .to_string();
    let variant = if big_channel {
        format!("channel_size {channel}")
    } else {
        "defaults (channel_size 200)".into()
    };
    summarise(
        o,
        &sh,
        t0,
        scheduled_at,
        started,
        Setup {
            engine: "tokio-cron-scheduler",
            variant,
            notes,
            extra,
        },
    )
}

// ---------------------------------------------------------------------------------------
// apalis 1.0 + apalis-sqlite 1.0: N tasks pushed with run_at = T0 (Unix seconds — the
// storage has no finer resolution) into a SQLite file in a temp dir (SqliteStorage::setup
// turns on WAL, synchronous=OFF), then ONE worker drains them. With no poll strategy the
// worker only re-fetches after a heartbeat (30 s default) once a fetch came back empty, so
// an interval strategy is required for scheduled jobs; its period bounds lateness from below.
// Measured surprise: even with `poll_with_interval`, an idle worker often is NOT woken by the
// interval and sleeps until its next heartbeat (~28 s late for every timer in 2 of 3 runs of
// 200 timers) — hence the `apalis-hb1` variant with a 1 s heartbeat, and the `max_gap_ms`
// field that shows such stalls.
// ---------------------------------------------------------------------------------------

async fn apalis_fire(
    i: u32,
    sh: apalis::prelude::Data<Arc<Shared>>,
) -> Result<(), apalis::prelude::BoxDynError> {
    sh.fire(i as usize);
    Ok(())
}

/// `heartbeat_s` overrides `--apalis-heartbeat-s`: an idle apalis-sqlite worker is not
/// reliably woken by its poll interval and can sleep until its next heartbeat (see
/// docs/benchmarks.md § Peers), so a 1 s heartbeat is the workaround variant.
async fn run_apalis(o: &Opts, concurrency: Option<usize>, heartbeat_s: Option<u64>) -> Value {
    let heartbeat_s = heartbeat_s.unwrap_or(o.apalis_heartbeat_s);
    use apalis::prelude::*;
    use apalis_sqlite::{Config, SqliteConnectOptions, SqlitePool, SqliteStorage};
    let started = now_us();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("apalis.sqlite3");
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .expect("open sqlite");
    SqliteStorage::setup(&pool)
        .await
        .expect("apalis-sqlite setup");
    let journal: String = sqlx_journal_mode(&pool).await;

    let (t0, dues) = workload(o.n, o.spread);
    let last_due = *dues.iter().max().expect("n > 0");
    let sh = Arc::new(Shared::new(dues));
    let config = Config::default()
        .batch_size(o.apalis_batch)
        .heartbeat_interval(Duration::from_secs(heartbeat_s));
    let mut storage: SqliteStorage<u32> =
        SqliteStorage::new(&pool).with_config(config.clone().queue("peers"));
    let tasks: Vec<_> = (0..o.n)
        .map(|i| {
            TaskBuilder::new(i as u32)
                .run_at_timestamp(ceil_secs(sh.due_us[i]))
                .build()
        })
        .collect();
    storage
        .push_all(&mut futures::stream::iter(tasks))
        .await
        .expect("push_all");
    let scheduled_at = now_us();

    let backend = storage.poll_with_interval(Duration::from_millis(o.apalis_poll_ms));
    let worker_sh = sh.clone();
    match concurrency {
        None => {
            let w = WorkerBuilder::new("peers-1")
                .backend(backend)
                .data(worker_sh)
                .build(apalis_fire);
            tokio::spawn(async move { w.run().await });
        }
        Some(c) => {
            let w = WorkerBuilder::new("peers-1")
                .backend(backend)
                .concurrency(c)
                .data(worker_sh)
                .build(apalis_fire);
            tokio::spawn(async move { w.run().await });
        }
    }
    wait_all(&sh, last_due, Duration::from_secs(o.timeout_s)).await;
    let extra = json!({
        "poll_interval_ms": o.apalis_poll_ms,
        "heartbeat_s": heartbeat_s,
        "batch_size": o.apalis_batch,
        "workers": 1,
        "concurrency": concurrency.map_or(Value::from("unbounded (default)"), Value::from),
        "journal_mode": journal,
    });
    let notes = format!(
        "run_at has 1 s resolution; worker wakes every {} ms when idle (poll_with_interval), fetches {} per query",
        o.apalis_poll_ms, o.apalis_batch
    );
    let variant = format!(
        "concurrency {}, poll {} ms, batch {}, heartbeat {} s",
        concurrency.map_or("unbounded".to_string(), |c| c.to_string()),
        o.apalis_poll_ms,
        o.apalis_batch,
        heartbeat_s
    );
    let v = summarise(
        o,
        &sh,
        t0,
        scheduled_at,
        started,
        Setup {
            engine: "apalis-sqlite",
            variant,
            notes,
            extra,
        },
    );
    drop(dir);
    v
}

async fn sqlx_journal_mode(pool: &apalis_sqlite::SqlitePool) -> String {
    use sqlx::Row;
    match sqlx::query("PRAGMA journal_mode").fetch_one(pool).await {
        Ok(row) => row.try_get::<String, _>(0).unwrap_or_default(),
        Err(e) => format!("error: {e}"),
    }
}

// ---------------------------------------------------------------------------------------
// Parent: one child process per variant, then a table (and ratios against yanzhen).
// ---------------------------------------------------------------------------------------

fn child_args(o: &Opts, variant: &str) -> Vec<String> {
    let mut a = vec![
        "--n".into(),
        o.n.to_string(),
        "--engine".into(),
        variant.into(),
    ];
    if o.spread {
        a.push("--spread".into());
    }
    a.extend(["--apalis-poll-ms".into(), o.apalis_poll_ms.to_string()]);
    a.extend(["--apalis-batch".into(), o.apalis_batch.to_string()]);
    a.extend([
        "--apalis-heartbeat-s".into(),
        o.apalis_heartbeat_s.to_string(),
    ]);
    a.extend(["--timeout-s".into(), o.timeout_s.to_string()]);
    a
}

fn run_children(o: &Opts) -> Vec<Value> {
    let exe = std::env::current_exe().expect("current_exe");
    let mut out = Vec::new();
    for v in VARIANTS {
        eprintln!(
            "# running {v} ({} timers, {})",
            o.n,
            if o.spread {
                "spread over 10 s"
            } else {
                "burst"
            }
        );
        let res = Command::new(&exe)
            .args(child_args(o, v))
            .output()
            .expect("spawn child");
        let stdout = String::from_utf8_lossy(&res.stdout);
        match stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            Some(j) if res.status.success() => {
                println!("{j}");
                out.push(j);
            }
            _ => {
                let err = String::from_utf8_lossy(&res.stderr);
                let j = json!({"bench": if o.spread { "spread" } else { "burst" },
                               "result": {"engine": v, "error": format!("exit {}: {}", res.status, err.trim())}});
                println!("{j}");
                out.push(j);
            }
        }
    }
    out
}

fn f(v: &Value, path: &[&str]) -> Option<f64> {
    let mut c = v;
    for p in path {
        c = c.get(*p)?;
    }
    c.as_f64()
}

fn fmt_opt(x: Option<f64>, prec: usize) -> String {
    x.map_or("-".into(), |x| format!("{x:.prec$}"))
}

fn print_table(o: &Opts, rows: &[Value]) {
    println!();
    println!(
        "# {} — {} one-shot timers{}",
        if o.spread { "spread" } else { "burst" },
        o.n,
        if o.spread {
            " spread evenly over 10 s"
        } else {
            " due at the same instant"
        }
    );
    println!(
        "| {:<22} | {:<50} | {:>6} | {:>6} | {:>8} | {:>9} | {:>9} | {:>9} | {:>9} | {:>10} | {:>9} |",
        "engine", "variant", "fired", "missed", "drain s", "timers/s", "p50 ms", "p99 ms", "max ms", "max gap ms", "RSS MiB"
    );
    println!(
        "|{:-<24}|{:-<52}|{:->8}|{:->8}|{:->10}|{:->11}|{:->11}|{:->11}|{:->11}|{:->12}|{:->11}|",
        "", "", "", "", "", "", "", "", "", "", ""
    );
    for r in rows {
        let res = &r["result"];
        if let Some(e) = res.get("error") {
            println!(
                "| {:<22} | ERROR: {}",
                res["engine"].as_str().unwrap_or("?"),
                e
            );
            continue;
        }
        println!(
            "| {:<22} | {:<50} | {:>6} | {:>6} | {:>8} | {:>9} | {:>9} | {:>9} | {:>9} | {:>10} | {:>9} |",
            res["engine"].as_str().unwrap_or("?"),
            res["variant"].as_str().unwrap_or("?"),
            res["fired"].as_u64().unwrap_or(0),
            res["missed"].as_u64().unwrap_or(0),
            fmt_opt(f(res, &["drain_s"]), 3),
            fmt_opt(f(res, &["fires_per_s"]), 0),
            fmt_opt(f(res, &["lateness_ms", "p50"]), 1),
            fmt_opt(f(res, &["lateness_ms", "p99"]), 1),
            fmt_opt(f(res, &["lateness_ms", "max"]), 1),
            fmt_opt(f(res, &["max_gap_ms"]), 1),
            fmt_opt(f(res, &["peak_rss_kib"]).map(|k| k / 1024.0), 1),
        );
    }
}

/// Ratios peer / yanzhen against the JSON lines `yanzhen bench` printed (its burst line is
/// `{"bench":"burst",...}`, its spread line `{"bench":"halfcap",...}`; a `"spread"` line is
/// accepted too). Fields read: drain_s, fires_per_s, lateness_ms.{p50,p99,max}, and
/// peak_rss_kib or rss_mb when present.
fn print_ratios(o: &Opts, rows: &[Value], path: &str) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("baseline {path}: {e}");
            return;
        }
    };
    let want: &[&str] = if o.spread {
        &["spread", "halfcap"]
    } else {
        &["burst"]
    };
    let base = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|j| j["bench"].as_str().is_some_and(|b| want.contains(&b)));
    let Some(base) = base else {
        eprintln!("baseline {path}: no {want:?} line");
        return;
    };
    let b = &base["result"];
    let b_rss = f(b, &["peak_rss_kib"]).or_else(|| f(b, &["rss_mb"]).map(|m| m * 1024.0));
    println!();
    println!(
        "# ratios peer / yanzhen (yanzhen: {} timers, drain {} s, {} timers/s, p99 {} ms)",
        b["timers"],
        fmt_opt(f(b, &["drain_s"]), 3),
        fmt_opt(f(b, &["fires_per_s"]), 0),
        fmt_opt(f(b, &["lateness_ms", "p99"]), 1)
    );
    if b["timers"].as_u64() != Some(o.n as u64) {
        println!(
            "# WARNING: yanzhen ran {} timers, peers ran {}: ratios compare different loads",
            b["timers"], o.n
        );
    }
    println!(
        "| {:<22} | {:<50} | {:>8} | {:>9} | {:>8} | {:>8} | {:>8} | {:>8} |",
        "engine", "variant", "drain", "timers/s", "p50", "p99", "max", "RSS"
    );
    println!(
        "|{:-<24}|{:-<52}|{:->10}|{:->11}|{:->10}|{:->10}|{:->10}|{:->10}|",
        "", "", "", "", "", "", "", ""
    );
    let ratio = |p: Option<f64>, y: Option<f64>| match (p, y) {
        (Some(p), Some(y)) if y.abs() > 1e-9 => format!("{:.2}x", p / y),
        _ => "-".into(),
    };
    for r in rows {
        let res = &r["result"];
        if res.get("error").is_some() {
            continue;
        }
        println!(
            "| {:<22} | {:<50} | {:>8} | {:>9} | {:>8} | {:>8} | {:>8} | {:>8} |",
            res["engine"].as_str().unwrap_or("?"),
            res["variant"].as_str().unwrap_or("?"),
            ratio(f(res, &["drain_s"]), f(b, &["drain_s"])),
            ratio(f(res, &["fires_per_s"]), f(b, &["fires_per_s"])),
            ratio(
                f(res, &["lateness_ms", "p50"]),
                f(b, &["lateness_ms", "p50"])
            ),
            ratio(
                f(res, &["lateness_ms", "p99"]),
                f(b, &["lateness_ms", "p99"])
            ),
            ratio(
                f(res, &["lateness_ms", "max"]),
                f(b, &["lateness_ms", "max"])
            ),
            ratio(f(res, &["peak_rss_kib"]), b_rss),
        );
    }
}

fn main() {
    let o = parse_args();
    if let Some(engine) = o.engine.clone() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let v = rt.block_on(async {
            match engine.as_str() {
                "tcs" => run_tcs(&o, false).await,
                "tcs-bigchan" => run_tcs(&o, true).await,
                "apalis" => run_apalis(&o, None, None).await,
                "apalis-c16" => run_apalis(&o, Some(16), None).await,
                "apalis-hb1" => run_apalis(&o, None, Some(1)).await,
                _ => usage(),
            }
        });
        println!("{v}");
        // Leave without waiting for the engines' background tasks to wind down.
        std::process::exit(0);
    }
    let rows = run_children(&o);
    print_table(&o, &rows);
    if let Some(b) = &o.baseline {
        print_ratios(&o, &rows, b);
    }
}
