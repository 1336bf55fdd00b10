//! Hand-ins under load (issue #17 item 6): `uploads` sends 50 concurrent 10 MB files to the
//! real HTTP app on loopback while timers fall due every 5 ms in the same process; `archive`
//! writes the zip of a 1,000-branch round with one 1 MB file each. Figures in
//! docs/benchmarks.md.
//!
//! The clients run in the bench process too, but each writes its body from one shared
//! 64 KiB buffer over a raw TCP connection (HTTP/1.1 with a `Content-Length`), so they add
//! a few hundred KiB at most: the process's peak RSS is the daemon's within that margin.

use super::{BenchOptions, directory, fresh_store, peak_rss_kib, percentile, report, rss_kb};
use anyhow::Context as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yanzhen::catalog::{Catalog, LoadedWorkflow, content_hash};
use yanzhen::config::Config;
use yanzhen::core::diagnostic::Diagnostics;
use yanzhen::core::state::TimerKind;
use yanzhen::engine::{StartRound, ms};
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::SystemClock;
use yanzhen::store::{NewSubmission, NewTimer, StoredFile, TimerPayload};

/// One task per branch asking for one PDF of at most 20 MB.
const HAND_IN: &str = "id: bench-hand-in\ntitle: 基准（上报材料）\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 20}\n    tasks:\n      - id: hand_in\n        title: 上报材料\n        assignee: {group: branches}\n        due: {from: round_start, days: 10}\n        submit:\n          files:\n            - {id: doc, label: 材料, kinds: [pdf], max_mb: 20}\n";

const BOUNDARY: &str = "yanzhen-bench-boundary";
/// What a client writes at a time (and all it holds of its file).
const CHUNK: usize = 64 * 1024;
/// A timer falls due this often during the uploads.
const TIMER_EVERY_MS: i64 = 5;

fn catalog(
    branches: usize,
    calendar: yanzhen::core::calendar::Calendar,
) -> anyhow::Result<Catalog> {
    let source = HAND_IN.to_string();
    let mut d = Diagnostics::new("bench-hand-in");
    let wf = yanzhen::core::yaml::parse(&source, &mut d).context("hand-in bench workflow")?;
    let mut workflows = std::collections::BTreeMap::new();
    workflows.insert(
        "bench-hand-in".to_string(),
        LoadedWorkflow {
            workflow: wf,
            path: "bench-hand-in.yaml".into(),
            hash: content_hash(&source),
            source,
        },
    );
    Ok(Catalog {
        config: Config::default(),
        directory: directory(branches),
        calendar,
        workflows,
    })
}

/// The app over a fresh store with files kept under `tmp/{name}-files`, its round started
/// (a task per branch). The loopback clients share one address, so the per-address limits
/// meant for the internet are raised.
async fn app(
    opts: &BenchOptions,
    tmp: &Path,
    name: &str,
    branches: usize,
    base: &str,
    calendar: &yanzhen::core::calendar::Calendar,
) -> anyhow::Result<(App, i64)> {
    let (store, _) = fresh_store(opts, tmp, name).await?;
    let mut cat = catalog(branches, calendar.clone())?;
    cat.config.notify.link_base = Some(base.to_string());
    cat.config.files.root = tmp.join(format!("{name}-files"));
    cat.config.http.branch_burst = 10_000;
    cat.config.http.max_connections_per_address = 10_000;
    if let Some(n) = opts.upload_slots {
        cat.config.http.max_concurrent_uploads = n;
    }
    let app = App::build(
        cat,
        store,
        Arc::new(SystemClock),
        AppOptions {
            link_secret: Some("bench".into()),
            ..AppOptions::new("bench")
        },
    )
    .await?;
    let round = app
        .engine
        .start_round(StartRound {
            workflow: "bench-hand-in".into(),
            start: chrono::Utc::now().date_naive(),
            params: Default::default(),
            units: None,
            actor: "bench".into(),
        })
        .await?;
    Ok((app, round))
}

/// The process's RSS sampled every 20 ms until [`Sampler::peak`].
struct Sampler {
    on: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Sampler {
    fn start() -> Sampler {
        let on = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = on.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            while flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kb(std::process::id()).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        });
        Sampler { on, task }
    }

    /// The highest RSS seen, in KiB.
    async fn peak(self) -> anyhow::Result<u64> {
        self.on.store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// The bytes of file `i`: a PDF header naming `i` (so every file has its own hash), then
/// filler, then the trailer; `size` bytes in all.
fn file_head(i: usize) -> Vec<u8> {
    format!("%PDF-1.4\n% bench file {i:08}\n").into_bytes()
}
const FILE_TAIL: &[u8] = b"\n%%EOF\n";

/// POST file `i` of `size` bytes to `path` on `addr`, streamed; the status answered.
async fn upload(
    addr: std::net::SocketAddr,
    path: &str,
    i: usize,
    size: usize,
) -> anyhow::Result<u16> {
    static FILLER: [u8; CHUNK] = [b'x'; CHUNK];
    let part_head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file.doc\"; filename=\"材料{i}.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
    );
    let part_tail = format!("\r\n--{BOUNDARY}--\r\n");
    let head = file_head(i);
    let length = part_head.len() + size + part_tail.len();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n{part_head}"
        )
        .as_bytes(),
    )
    .await?;
    let sent = async {
        s.write_all(&head).await?;
        let mut left = size - head.len() - FILE_TAIL.len();
        while left > 0 {
            let n = left.min(CHUNK);
            s.write_all(&FILLER[..n]).await?;
            left -= n;
        }
        s.write_all(FILE_TAIL).await?;
        s.write_all(part_tail.as_bytes()).await
    }
    .await;
    // A server that refuses early closes before the body is sent: its answer says why.
    let mut answer = Vec::new();
    let read = s.read_to_end(&mut answer).await;
    if answer.is_empty() {
        sent?;
        read?;
    }
    if !answer.starts_with(b"HTTP/1.1 200") {
        let text = String::from_utf8_lossy(&answer);
        eprintln!("upload {i}: {}", text.chars().take(600).collect::<String>());
    }
    let status = String::from_utf8_lossy(&answer[..answer.len().min(16)])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(status)
}

/// `clients` concurrent uploads of `size` bytes each to as many branch tasks, with a plain
/// timer due every 5 ms over the same time fired by the real loop.
pub async fn uploads(
    opts: &BenchOptions,
    tmp: &Path,
    backend: &str,
    clients: usize,
    size: usize,
    calendar: &yanzhen::core::calendar::Calendar,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let (app, round) = app(opts, tmp, "uploads", clients, &base, calendar).await?;
    let engine = app.engine.clone();
    let store = engine.store();
    let now = chrono::Utc::now();
    let mut paths = Vec::with_capacity(clients);
    for t in store.tasks(round).await? {
        let link = engine
            .task_link(&t, now)
            .context("the bench app signs no links")?;
        let path = link.strip_prefix(&base).context("link base")?;
        let (page, query) = path.split_once('?').context("signed query")?;
        paths.push(format!("{page}/submit?{query}"));
    }
    anyhow::ensure!(
        paths.len() == clients,
        "{} tasks, not {clients}",
        paths.len()
    );

    // Timers every 5 ms for a minute from 1 s on; only those due while the uploads run
    // are counted.
    let t0 = ms(chrono::Utc::now()) + 1000;
    let timers = (0..(60_000 / TIMER_EVERY_MS) as usize).map(|i| NewTimer {
        key: format!("uploads/{i}"),
        round_id: None,
        task_key: None,
        kind: TimerKind::StageOpen,
        due_at: t0 + i as i64 * TIMER_EVERY_MS,
        payload: TimerPayload::default(),
    });
    super::add_timers(store, timers).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(yanzhen::api::serve(
        listener,
        app.http.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let lp = tokio::spawn(yanzhen::runtime::scheduler::run(engine.clone(), rx));
    let wait = t0 - ms(chrono::Utc::now());
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let rss_before = rss_kb(std::process::id());
    let sampler = Sampler::start();
    let started = ms(chrono::Utc::now());
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, p) in paths.into_iter().enumerate() {
        tasks.spawn(async move { upload(addr, &p, i, size).await });
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(r) = tasks.join_next().await {
        *statuses.entry(r??).or_default() += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    let ended = ms(chrono::Utc::now());
    let peak_during = sampler.peak().await?;
    // Let the loop catch up with what fell due before the end, then stop it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = tx.send(true);
    let _ = lp.await;
    let _ = stop_tx.send(());
    let _ = server.await;

    let rows = store.timers_with_prefix("uploads/").await?;
    let during: Vec<_> = rows
        .iter()
        .filter(|t| t.due_at >= started && t.due_at <= ended)
        .collect();
    let mut late: Vec<i64> = during
        .iter()
        .filter_map(|t| t.fired_at.map(|f| f - t.due_at))
        .collect();
    late.sort_unstable();
    let submitted = store
        .tasks(round)
        .await?
        .iter()
        .filter(|t| t.state == yanzhen::core::state::TaskState::Submitted)
        .count();
    let bytes = (clients * size) as f64;
    report(
        "uploads",
        serde_json::json!({"backend": backend, "clients": clients, "file_bytes": size,
        "upload_slots": app.engine.catalog().config.http.max_concurrent_uploads,
        "statuses": statuses, "tasks_submitted": submitted, "seconds": secs,
        "mb_per_s": bytes / 1_048_576.0 / secs,
        "timers_due_during": during.len(), "timers_fired": late.len(),
        "lateness_ms": {"p50": percentile(&late, 0.5), "p99": percentile(&late, 0.99), "max": late.last().copied().unwrap_or(0)},
        "rss_before_kib": rss_before, "peak_rss_during_kib": peak_during,
        "peak_rss_kib": peak_rss_kib()}),
    );
    Ok(())
}

/// The archive of a round of `branches` branches, each having handed in one file of
/// `size` bytes (written through the file store and the engine, not over HTTP).
pub async fn archive(
    opts: &BenchOptions,
    tmp: &Path,
    backend: &str,
    branches: usize,
    size: usize,
    calendar: &yanzhen::core::calendar::Calendar,
) -> anyhow::Result<()> {
    let (app, round) = app(
        opts,
        tmp,
        "archive",
        branches,
        "http://127.0.0.1:1",
        calendar,
    )
    .await?;
    let engine = app.engine.clone();
    let store = engine.store();
    let files = app.http.files()?;
    let t = Instant::now();
    for (i, task) in store.tasks(round).await?.into_iter().enumerate() {
        let mut body = file_head(i);
        body.resize(size - FILE_TAIL.len(), b'x');
        body.extend_from_slice(FILE_TAIL);
        let chunks = body
            .chunks(CHUNK)
            .map(|c| Ok::<_, std::convert::Infallible>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>();
        let r = files
            .put_stream(
                futures_util::stream::iter(chunks),
                size as u64,
                &[yanzhen::core::submission::FileKind::Pdf],
            )
            .await?;
        let unit = task.assignee_id.clone();
        engine
            .submit_task(NewSubmission {
                task_id: task.id,
                round_id: round,
                unit: unit.clone(),
                at: ms(chrono::Utc::now()),
                actor: format!("link:{unit}"),
                fields: Default::default(),
                files: vec![StoredFile {
                    slot: "doc".into(),
                    name: format!("材料{i}.pdf"),
                    kind: r.kind,
                    size: r.size,
                    hash: r.hash,
                }],
            })
            .await?;
    }
    let setup = t.elapsed().as_secs_f64();
    let before = rss_kb(std::process::id());
    let sampler = Sampler::start();
    let out = tmp.join("archive.zip");
    let t = Instant::now();
    let a = yanzhen::archive::write_round_archive(
        store.as_ref(),
        files,
        round,
        chrono_tz::Asia::Shanghai,
        &out,
    )
    .await?;
    let secs = t.elapsed().as_secs_f64();
    let peak_during = sampler.peak().await?;
    let zip_bytes = std::fs::metadata(&out)?.len();
    report(
        "archive",
        serde_json::json!({"backend": backend, "branches": branches, "file_bytes": size,
        "files": a.files, "bytes": a.bytes, "rows": a.rows, "zip_bytes": zip_bytes,
        "setup_s": setup, "seconds": secs, "mb_per_s": a.bytes as f64 / 1_048_576.0 / secs,
        "rss_before_kib": before, "peak_rss_during_kib": peak_during,
        "peak_rss_kib": peak_rss_kib()}),
    );
    Ok(())
}
