//! Hand-ins on the branch link (issue #17), through the real HTTP server on port 0 with
//! multipart bodies written by hand: a valid submission moves the task to 已提交 and stops
//! its reminders; too few nominees, a file whose content is not what its name says, and a
//! file over its limit (refused while it streams) are refused with their Chinese reason and
//! nothing stored; the office's 退回 reopens the task, sends 【退回】 and plans reminders
//! from the new deadline (the real SMTP sink receives them). SQLite and PostgreSQL.

use crate::common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use common::session::SignedIn;
use common::smtp::TestSmtp;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yanzhen::config::NotifyConfig;
use yanzhen::core::state::{TaskState, TimerState};
use yanzhen::engine::{Engine, NewDeadline};
use yanzhen::notify::outbox::Outbox;
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::VirtualClock;
use yanzhen::runtime::driver::Driver;
use yanzhen::store::Store;

const SECRET: &str = "submissions-test";

const NOMINATE: &str = r#"id: nominate
title: 推荐后备干部
parameters:
  - {id: min_candidates, type: integer, default: 2}
defaults:
  due_at: "18:00"
stages:
  - id: s
    title: 组织推荐
    closes: {from: round_start, days: 60}
    tasks:
      - id: nomination
        title: 组织推荐
        assignee: {group: communities}
        due: {from: round_start, days: 10}
        reminders:
          before: [{days: 1}]
        submit:
          fields:
            - {id: candidates, label: 推荐人选, type: people, min: "${min_candidates}"}
          files:
            - {id: form1, label: 附件1 推荐表, kinds: [docx, pdf], max_mb: 1}
          forms: [templates/forms/附件1-推荐表.docx]
"#;

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Shanghai
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

struct Server {
    base: String,
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    clock: Arc<VirtualClock>,
    timers: Driver,
    outbox: Arc<Outbox>,
    files: tempfile::TempDir,
    task: i64,
    _server: common::http::Served,
}

impl Server {
    async fn start(store: Arc<dyn Store>, notify: NotifyConfig) -> Server {
        Server::start_with(store, notify, None).await
    }

    /// With `files` as `[files]` (else the local store in a temporary folder).
    async fn start_with(
        store: Arc<dyn Store>,
        notify: NotifyConfig,
        files_config: Option<yanzhen::files::FilesConfig>,
    ) -> Server {
        Server::start_full(store, notify, files_config, None).await
    }

    /// With `http` as `[http]` (else the defaults).
    async fn start_with_http(store: Arc<dyn Store>, http: yanzhen::config::HttpConfig) -> Server {
        Server::start_full(store, NotifyConfig::default(), None, Some(http)).await
    }

    async fn start_full(
        store: Arc<dyn Store>,
        notify: NotifyConfig,
        files_config: Option<yanzhen::files::FilesConfig>,
        http: Option<yanzhen::config::HttpConfig>,
    ) -> Server {
        yanzhen::notify::install_tls_provider();
        let (listener, base) = common::http::bind().await;
        let files = tempfile::tempdir().expect("tempdir");
        let mut cat = common::catalog_with(&[NOMINATE], false);
        cat.config.notify = NotifyConfig {
            link_base: Some(base.clone()),
            ..notify
        };
        cat.config.files.root = files.path().to_path_buf();
        if let Some(f) = files_config {
            cat.config.files = f;
        }
        if let Some(h) = http {
            cat.config.http = h;
        }
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 9)));
        let app = App::build(
            cat,
            store.clone(),
            clock.clone(),
            AppOptions {
                link_secret: Some(SECRET.into()),
                ..AppOptions::new("submissions")
            },
        )
        .await
        .expect("app");
        let server = common::http::serve_on(listener, app.http.clone());
        common::start_round(
            &app.engine,
            "nominate",
            common::date(2019, 7, 1),
            &["dongguan"],
        )
        .await;
        let task = store
            .task_by_key(1, "nomination@dongguan")
            .await
            .expect("read")
            .expect("task")
            .id;
        Server {
            base,
            timers: Driver::new(app.engine.clone(), None),
            outbox: app.outbox,
            engine: app.engine,
            store,
            clock,
            files,
            task,
            _server: server,
        }
    }

    /// The signed path of the task's submit endpoint.
    async fn submit_path(&self) -> String {
        let link = self
            .engine
            .task_link(&self.task_row().await, self.clock_now())
            .expect("link");
        let path = link.strip_prefix(&self.base).expect("own base").to_string();
        let (page, query) = path.split_once('?').expect("query");
        format!("{page}/submit?{query}")
    }

    fn clock_now(&self) -> DateTime<Utc> {
        use yanzhen::runtime::clock::Clock;
        self.clock.now()
    }

    async fn task_row(&self) -> yanzhen::store::TaskRow {
        self.store
            .task(self.task)
            .await
            .expect("read")
            .expect("task")
    }

    async fn state(&self) -> TaskState {
        self.store
            .task(self.task)
            .await
            .expect("read")
            .expect("task")
            .state
    }

    /// The server's local file store, opened on its own.
    fn local_files(&self) -> yanzhen::files::Files {
        let cfg = yanzhen::files::FilesConfig {
            root: self.files.path().to_path_buf(),
            ..Default::default()
        };
        yanzhen::files::Files::open(&cfg, std::path::Path::new(".")).expect("open")
    }

    /// A refused hand-in left the task open, no submission and no file (`why` says why
    /// no file is left).
    async fn assert_nothing_kept(&self, name: &str, why: &str) {
        assert_eq!(self.state().await, TaskState::Open, "{name}");
        assert!(
            self.store
                .task_submissions(self.task)
                .await
                .expect("subs")
                .is_empty(),
            "{name}: no submission"
        );
        assert_eq!(self.stored_files(), 0, "{name}: {why}");
    }

    /// Files in the store, staging included.
    fn stored_files(&self) -> usize {
        walk(self.files.path())
    }

    async fn post(&self, body: Vec<u8>) -> (u16, String) {
        let resp = reqwest::Client::new()
            .post(format!("{}{}", self.base, self.submit_path().await))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }
}

/// The first link of `page` (HTML-escaped as the pages write it) with `part` in its path,
/// unescaped.
fn link_under(page: &str, part: &str) -> Option<String> {
    let escaped = part.replace('/', "&#x2f;");
    page.split("href=\"")
        .map(|x| x.split('"').next().unwrap_or(""))
        .find(|h| h.contains(&escaped))
        .map(|h| h.replace("&amp;", "&").replace("&#x2f;", "/"))
}

fn walk(p: &std::path::Path) -> usize {
    std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

const BOUNDARY: &str = "yzBoundary7MA4YWxkTrZu0gW";

/// A multipart body: text fields, then files as (field, file name, bytes).
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    for (k, name, bytes) in files {
        b.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(bytes);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

/// The hand-in that passes: two nominees and a PDF.
fn hand_in() -> Vec<u8> {
    multipart(
        &[("f.candidates", "张三\n李四")],
        &[("file.form1", "推荐表.pdf", &pdf())],
    )
}

fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n".to_vec();
    v.extend(std::iter::repeat_n(b'x', 2000));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

#[tokio::test]
async fn a_valid_submission_moves_the_task_to_submitted_stops_reminders_and_serves_the_file_as_attachment()
 {
    for (name, store, _g) in common::stores::stores().await {
        let s = Server::start(store, NotifyConfig::default()).await;
        let body = multipart(
            &[("f.candidates", "张三\n李四")],
            &[("file.form1", "../推荐表.pdf", &pdf())],
        );
        let (status, page) = s.post(body).await;
        assert_eq!(status, 200, "{name}: {page}");
        assert!(page.contains("已提交"), "{name}: {page}");
        assert_eq!(s.state().await, TaskState::Submitted, "{name}");
        let timers = s.store.task_timers(&[s.task]).await.expect("timers");
        assert!(
            timers.iter().all(|t| t.state == TimerState::Cancelled),
            "{name}: reminders stop: {timers:?}"
        );
        let subs = s.store.task_submissions(s.task).await.expect("subs");
        assert_eq!(subs.len(), 1, "{name}");
        assert_eq!(subs[0].fields["candidates"], "张三\n李四");
        let f = &subs[0].files[0];
        assert_eq!(
            (f.name.as_str(), f.size),
            ("推荐表.pdf", pdf().len() as u64)
        );
        // The task page lists it with a link that downloads it as an attachment.
        let page_link = s
            .engine
            .task_link(&s.task_row().await, s.clock_now())
            .expect("link");
        let page = reqwest::get(&page_link)
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        let href = link_under(&page, "/files/")
            .unwrap_or_else(|| panic!("{name}: no file link in {page}"));
        let resp = reqwest::get(format!("{}{href}", s.base))
            .await
            .expect("GET file");
        assert_eq!(resp.status().as_u16(), 200, "{name}");
        let h = resp.headers().clone();
        assert!(
            h["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment;")
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(resp.bytes().await.expect("bytes").to_vec(), pdf(), "{name}");
        // The blank form downloads as the shipped file.
        let form = link_under(&page, "/forms/")
            .unwrap_or_else(|| panic!("{name}: no form link in {page}"));
        let resp = reqwest::get(format!("{}{form}", s.base))
            .await
            .expect("GET form");
        assert_eq!(resp.status().as_u16(), 200, "{name}");
        assert!(
            resp.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment;")
        );
        let shipped =
            std::fs::read(common::root().join("templates/forms/附件1-推荐表.docx")).expect("form");
        assert_eq!(
            resp.bytes().await.expect("bytes").to_vec(),
            shipped,
            "{name}"
        );
        // Another task's signature does not open it.
        let forged = href.replace(&format!("/t/{}/", s.task), "/t/999/");
        let resp = reqwest::get(format!("{}{forged}", s.base))
            .await
            .expect("GET");
        assert_eq!(resp.status().as_u16(), 403, "{name}");
    }
}

#[tokio::test]
async fn too_few_nominees_are_refused_in_chinese_and_nothing_is_stored() {
    for (name, store, _g) in common::stores::stores().await {
        let s = Server::start(store, NotifyConfig::default()).await;
        let body = multipart(
            &[("f.candidates", "张三")],
            &[("file.form1", "推荐表.pdf", &pdf())],
        );
        let (status, page) = s.post(body).await;
        assert_eq!(status, 422, "{name}: {page}");
        assert!(
            page.contains("「推荐人选」至少需要 2 人，目前只填了 1 人。"),
            "{name}: {page}"
        );
        s.assert_nothing_kept(name, "the refused file is removed")
            .await;
    }
}

#[tokio::test]
async fn a_file_named_pdf_that_is_really_an_executable_or_a_zip_is_refused_by_content() {
    for (name, store, _g) in common::stores::stores().await {
        let s = Server::start(store, NotifyConfig::default()).await;
        for fake in [
            &b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff"[..],
            &b"PK\x03\x04\x14\0\0\0\x08\0"[..],
        ] {
            let body = multipart(
                &[("f.candidates", "张三\n李四")],
                &[("file.form1", "推荐表.pdf", fake)],
            );
            let (status, page) = s.post(body).await;
            assert_eq!(status, 422, "{name}: {page}");
            assert!(page.contains("不是 docx、pdf 文件"), "{name}: {page}");
        }
        s.assert_nothing_kept(name, "nothing is kept").await;
    }
}

#[tokio::test]
async fn a_file_over_its_limit_is_refused_while_it_streams_before_the_client_sends_it_all() {
    for (name, store, _g) in common::stores::stores().await {
        let s = Server::start(store, NotifyConfig::default()).await;
        const TOTAL: usize = 50 * 1024 * 1024;
        let head = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f.candidates\"\r\n\r\n张三\n李四\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file.form1\"; filename=\"big.pdf\"\r\n\r\n%PDF-1.4\n"
        );
        let addr = s.base.strip_prefix("http://").expect("addr").to_string();
        let mut conn = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let req = format!(
            "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n{head}",
            s.submit_path().await,
            TOTAL + head.len()
        );
        conn.write_all(req.as_bytes()).await.expect("head");
        let (mut rd, mut wr) = conn.into_split();
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = sent.clone();
        let writer = tokio::spawn(async move {
            let chunk = vec![b'x'; 64 * 1024];
            while counter.load(std::sync::atomic::Ordering::SeqCst) < TOTAL {
                if wr.write_all(&chunk).await.is_err() {
                    break;
                }
                counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
            }
        });
        let mut buf = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(std::time::Duration::from_secs(30), rd.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        let at_response = sent.load(std::sync::atomic::Ordering::SeqCst);
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(text.starts_with("HTTP/1.1 413"), "{name}: {text}");
        assert!(
            at_response < TOTAL / 2,
            "{name}: the server answered after {at_response} of {TOTAL} bytes"
        );
        writer.abort();
        s.assert_nothing_kept(name, "the partial upload is removed")
            .await;
    }
}

/// A raw connection that has sent a hand-in's headers and the start of its body, promising
/// `total` body bytes: the rest is written by the test.
async fn open_hand_in(s: &Server, total: usize) -> (tokio::net::TcpStream, String) {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f.candidates\"\r\n\r\n张三\n李四\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file.form1\"; filename=\"slow.pdf\"\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let addr = s.base.strip_prefix("http://").expect("addr").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        s.submit_path().await,
        head.len() + total + tail.len()
    );
    conn.write_all(req.as_bytes()).await.expect("head");
    (conn, tail)
}

/// The status line's code of what the server answered on `conn`, within `secs` seconds.
async fn answer(conn: &mut tokio::net::TcpStream, secs: u64) -> Option<u16> {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(secs),
        conn.read_to_end(&mut buf),
    )
    .await;
    if read.is_err() && buf.is_empty() {
        return None;
    }
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
}

#[tokio::test]
async fn a_hand_in_slower_than_the_request_timeout_is_accepted_within_the_upload_timeout() {
    let (_, store, _g) = common::stores::sqlite().await;
    let http = yanzhen::config::HttpConfig {
        request_timeout_seconds: 1,
        upload_timeout_seconds: 30,
        ..Default::default()
    };
    let s = Server::start_with_http(store, http).await;
    let file = pdf();
    let (mut conn, tail) = open_hand_in(&s, file.len()).await;
    // 2.5 s in all, in five pieces: past the 1 s request timeout, each pause well under
    // the upload idle limit.
    for piece in file.chunks(file.len().div_ceil(5)) {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        conn.write_all(piece).await.expect("piece");
    }
    conn.write_all(tail.as_bytes()).await.expect("tail");
    assert_eq!(answer(&mut conn, 30).await, Some(200));
    assert_eq!(s.state().await, TaskState::Submitted);
}

#[tokio::test]
async fn a_hand_in_that_stalls_past_the_idle_limit_is_cut_off_and_nothing_is_kept() {
    let (_, store, _g) = common::stores::sqlite().await;
    let http = yanzhen::config::HttpConfig {
        upload_idle_seconds: 1,
        ..Default::default()
    };
    let s = Server::start_with_http(store, http).await;
    let file = pdf();
    let (mut conn, _tail) = open_hand_in(&s, file.len()).await;
    conn.write_all(&file[..file.len() / 2]).await.expect("half");
    // Then nothing: the server must answer on its own, long before its 900 s upload limit.
    let status = answer(&mut conn, 20).await;
    assert!(
        matches!(status, Some(400) | Some(408)),
        "a stalled hand-in is refused: {status:?}"
    );
    s.assert_nothing_kept("sqlite", "the partial upload is removed")
        .await;
}

#[tokio::test]
async fn hand_ins_beyond_the_concurrent_limit_wait_for_a_slot_and_then_go_through() {
    let (_, store, _g) = common::stores::sqlite().await;
    let http = yanzhen::config::HttpConfig {
        max_concurrent_uploads: 1,
        ..Default::default()
    };
    let s = Server::start_with_http(store, http).await;
    let file = pdf();
    // The first takes the only slot and holds it half sent.
    let (mut first, first_tail) = open_hand_in(&s, file.len()).await;
    first.write_all(&file[..100]).await.expect("start");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The second is sent whole, but is not read while the first holds the slot.
    let (mut second, second_tail) = open_hand_in(&s, file.len()).await;
    second.write_all(&file).await.expect("whole");
    second
        .write_all(second_tail.as_bytes())
        .await
        .expect("tail");
    assert_eq!(
        answer(&mut second, 1).await,
        None,
        "the second hand-in waits for the slot"
    );
    first.write_all(&file[100..]).await.expect("rest");
    first.write_all(first_tail.as_bytes()).await.expect("tail");
    assert_eq!(answer(&mut first, 30).await, Some(200));
    // The task is 已提交 now, so the second, read at last, is answered 409.
    assert_eq!(answer(&mut second, 30).await, Some(409));
}

#[tokio::test]
async fn a_return_with_a_new_deadline_reopens_the_task_sends_the_reason_and_reminds_before_it() {
    for (name, store, _g) in common::stores::stores().await {
        let smtp = TestSmtp::start();
        let notify = common::smtp::deliver_to(smtp.port());
        let s = Server::start(store, notify).await;
        assert_eq!(s.post(hand_in()).await.0, 200, "{name}");
        let new_due = NaiveDate::from_ymd_opt(2019, 7, 25).expect("date");
        let row = s
            .engine
            .return_submission(
                s.task,
                "token:office",
                "推荐表缺少签字",
                NewDeadline::On(new_due),
            )
            .await
            .expect("return");
        assert_eq!(row.state, TaskState::Open, "{name}");
        assert_eq!(
            row.due_at,
            Some(at(2019, 7, 25, 18).timestamp_millis()),
            "{name}"
        );
        let history = s.store.task_history(s.task).await.expect("history");
        assert!(
            history
                .iter()
                .any(|h| h.note.as_deref() == Some("退回：推荐表缺少签字"))
        );
        s.outbox.deliver_due().await.expect("deliver");
        // The reminder one day before the new deadline fires and is sent.
        s.timers
            .run_until(&s.clock, at(2019, 7, 24, 18))
            .await
            .expect("fire");
        // Past the reminder's digest hold (the end of its clock hour).
        s.clock.set(at(2019, 7, 24, 19));
        s.outbox.deliver_due().await.expect("deliver");
        let subjects: Vec<String> = smtp
            .messages()
            .iter()
            .map(|m| {
                let mail = mailparse::parse_mail(&m.data).expect("mime");
                mail.headers
                    .iter()
                    .find(|h| h.get_key() == "Subject")
                    .map(|h| h.get_value())
                    .unwrap_or_default()
            })
            .collect();
        assert!(
            subjects.iter().any(|x| x.starts_with("【退回】组织推荐")),
            "{name}: {subjects:?}"
        );
        assert!(
            subjects
                .iter()
                .any(|x| x.starts_with("【提醒】组织推荐") && x.contains("7月25日")),
            "{name}: a reminder for the new deadline: {subjects:?}"
        );
        // 【退回】 says why and links to the task page, where the branch hands in again.
        let text = smtp
            .messages()
            .iter()
            .map(|m| {
                let mail = mailparse::parse_mail(&m.data).expect("mime");
                mail.subparts[0].get_body().expect("text")
            })
            .find(|t| t.contains("退回原因"))
            .unwrap_or_else(|| panic!("{name}: no 【退回】 text"));
        assert!(text.contains("退回原因：推荐表缺少签字"), "{name}: {text}");
        assert!(
            text.contains(&format!("{}/b/dongguan/t/{}?", s.base, s.task)),
            "{name}: {text}"
        );
    }
}

/// `plan` of a shipped workflow, with parameters.
fn shipped_plan(id: &str, params: &[(&str, &str)]) -> yanzhen::core::plan::Plan {
    use yanzhen::core::plan::{PlanInput, plan};
    let text = std::fs::read_to_string(common::workflow_path(id)).expect("workflow");
    let mut d = yanzhen::core::diagnostic::Diagnostics::new(id);
    let wf = yanzhen::core::yaml::parse::<yanzhen::core::definition::Workflow>(&text, &mut d)
        .expect("parses");
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (dir, cal) = (common::directory(), common::calendar());
    let (p, problems) = plan(PlanInput {
        workflow: &wf,
        directory: &dir,
        calendar: &cal,
        tz: chrono_tz::Asia::Shanghai,
        start: wf.example_start.as_ref().map(|s| s.value).expect("start"),
        params: &params,
        units: None,
        done: None,
        events: None,
        people: None,
    });
    p.unwrap_or_else(|| panic!("{problems:?}"))
}

#[test]
fn plan_shows_what_each_seed_task_asks_for_with_the_rounds_minimum_of_nominees() {
    let p = shipped_plan("community-reserve-selection", &[("min_candidates", "3")]);
    let nomination = p.asks_of("nomination").expect("nomination asks");
    let people = &nomination.fields[0];
    assert_eq!(
        (people.label.as_str(), people.min),
        ("推荐人选（每行一人）", Some(3))
    );
    let table = p.to_table();
    let asks = table
        .split("\n提交要求\n")
        .nth(1)
        .and_then(|t| t.split("\n\n").next())
        .expect("a 提交要求 section");
    insta::assert_snapshot!(asks);
    let village = shipped_plan("village-reserve-selection", &[]);
    let kinds: Vec<&str> = village.asks.iter().map(|a| a.task.as_str()).collect();
    assert_eq!(kinds, ["hand_over_forms", "joint_review"]);
}

#[test]
fn a_wrong_submit_declaration_is_reported_at_its_line_and_column_with_a_hint() {
    use yanzhen::core::validate::{Context, validate_workflow};
    let bad = NOMINATE
        .replace(
            r#"- {id: candidates, label: 推荐人选, type: people, min: "${min_candidates}"}"#,
            "- {id: candidates, label: 推荐人选, type: choice, min: \"${nope}\"}",
        )
        .replace("max_mb: 1}", "max_mb: 900, kinds: []}")
        .replace("kinds: [docx, pdf], ", "")
        .replace("templates/forms/附件1-推荐表.docx", "../etc/passwd");
    let (dir, cal) = (common::directory(), common::calendar());
    let ctx = Context {
        directory: &dir,
        calendar: &cal,
        default_tz: chrono_tz::Asia::Shanghai,
        today: NaiveDate::from_ymd_opt(2019, 7, 1).expect("date"),
    };
    let (wf, d) = validate_workflow("nominate.yaml", &bad, ctx);
    assert!(wf.is_none());
    let text: Vec<String> = d
        .into_sorted()
        .iter()
        .map(|x| {
            format!(
                "{}:{} [{}] {} — {}",
                x.loc.line,
                x.loc.column,
                x.code,
                x.message,
                x.hint.clone().unwrap_or_default()
            )
        })
        .collect();
    insta::assert_snapshot!(text.join("\n"));
}

/// A moto S3 server on a free loopback port, stopped on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Option<Moto> {
    yanzhen::notify::install_tls_provider();
    let port = common::smtp::free_port();
    let child = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(child) = child else {
        common::skip_or_fail(
            "S3 file-store test: moto_server not found (pip install 'moto[server]')",
        );
        return None;
    };
    let m = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(&m.endpoint).send().await.is_ok() {
            // A bucket of its own; moto's server accepts unsigned requests.
            let made = client
                .put(format!("{}/yanzhen-files", m.endpoint))
                .send()
                .await
                .expect("create bucket");
            assert!(made.status().is_success(), "{:?}", made.status());
            return Some(m);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("moto_server did not start on {}", m.endpoint);
}

fn s3_config(endpoint: &str) -> yanzhen::files::FilesConfig {
    yanzhen::files::FilesConfig {
        backend: "s3".into(),
        bucket: Some("yanzhen-files".into()),
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..yanzhen::files::FilesConfig::default()
    }
}

#[tokio::test]
async fn the_s3_backend_stores_serves_and_refuses_like_the_local_one() {
    let Some(moto) = moto().await else { return };
    let (name, store, _g) = common::stores::sqlite().await;
    let s = Server::start_with(
        store,
        NotifyConfig::default(),
        Some(s3_config(&moto.endpoint)),
    )
    .await;
    let files = yanzhen::files::Files::open(&s3_config(&moto.endpoint), std::path::Path::new("."))
        .expect("open s3");
    // Refused by content: nothing is left in the bucket, not even the staging object.
    let body = multipart(
        &[("f.candidates", "张三\n李四")],
        &[("file.form1", "推荐表.pdf", b"MZ\x90\0\x03\0\0\0")],
    );
    assert_eq!(s.post(body).await.0, 422, "{name}");
    assert_eq!(files.count().await.expect("list"), 0, "{name}");
    // Accepted: stored under its content hash, served back as the same bytes.
    let (status, page) = s.post(hand_in()).await;
    assert_eq!(status, 200, "{name}: {page}");
    let subs = s.store.task_submissions(s.task).await.expect("subs");
    let hash = &subs[0].files[0].hash;
    use sha2::Digest;
    assert_eq!(hash, &hex::encode(sha2::Sha256::digest(pdf())));
    assert!(files.exists(hash).await.expect("head"), "{name}");
    assert_eq!(files.count().await.expect("list"), 1, "{name}");
    let got: Vec<u8> = {
        use futures_util::StreamExt;
        let mut st = Box::pin(files.get(hash).await.expect("get"));
        let mut v = Vec::new();
        while let Some(c) = st.next().await {
            v.extend_from_slice(&c.expect("chunk"));
        }
        v
    };
    assert_eq!(got, pdf(), "{name}");
}

#[tokio::test]
async fn deleting_a_rounds_files_removes_them_keeps_the_records_and_is_audited() {
    for (name, store, _g) in common::stores::stores().await {
        let s = Server::start(store, NotifyConfig::default()).await;
        assert_eq!(s.post(hand_in()).await.0, 200, "{name}");
        assert_eq!(s.stored_files(), 1, "{name}");
        let files = s.local_files();
        let n =
            yanzhen::files::delete_round_files(s.store.as_ref(), &files, 1, "cli", s.clock_now())
                .await
                .expect("delete");
        assert_eq!(n, 1, "{name}");
        assert_eq!(s.stored_files(), 0, "{name}");
        assert_eq!(
            s.store.task_submissions(s.task).await.expect("subs").len(),
            1
        );
        let audit = s.store.audit_after(0, 1000).await.expect("audit");
        let entry = audit
            .iter()
            .map(|a| &a.entry)
            .find(|a| a.action == "round.delete_files")
            .unwrap_or_else(|| panic!("{name}: not audited"));
        assert_eq!(entry.subject, "round:1");
        assert!(
            entry.detail_json.contains("推荐表.pdf"),
            "{name}: {}",
            entry.detail_json
        );
    }
}

#[tokio::test]
async fn the_round_archive_has_a_folder_per_branch_and_a_summary_matching_the_database() {
    for (name, store, _g) in common::stores::stores().await {
        let s = Server::start(store, NotifyConfig::default()).await;
        // Handed in, returned once, handed in again, accepted.
        for _ in 0..2 {
            assert_eq!(s.post(hand_in()).await.0, 200, "{name}");
            if s.store.task_submissions(s.task).await.expect("subs").len() == 1 {
                s.engine
                    .return_submission(
                        s.task,
                        "token:office",
                        "缺签字",
                        NewDeadline::WorkingDays(3),
                    )
                    .await
                    .expect("return");
            }
        }
        s.engine
            .accept_submission(s.task, "token:office")
            .await
            .expect("accept");
        assert_eq!(s.state().await, TaskState::Done, "{name}");
        let files = s.local_files();
        let out = tempfile::tempdir().expect("out");
        let path = out.path().join("round.zip");
        let a = yanzhen::archive::write_round_archive(
            s.store.as_ref(),
            &files,
            1,
            chrono_tz::Asia::Shanghai,
            &path,
        )
        .await
        .expect("archive");
        assert_eq!((a.files, a.rows), (1, 1), "{name}");
        let mut zip =
            zip::ZipArchive::new(std::fs::File::open(&path).expect("zip")).expect("read zip");
        let names: Vec<String> = zip
            .file_names()
            .map(|n| n.expect("entry name").to_string())
            .collect();
        assert!(
            names.contains(&"东关社区党委/组织推荐-1-推荐表.pdf".to_string()),
            "{name}: {names:?}"
        );
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut zip
                .by_name("东关社区党委/组织推荐-1-推荐表.pdf")
                .expect("entry"),
            &mut bytes,
        )
        .expect("read");
        assert_eq!(bytes, pdf(), "{name}");
        let mut xlsx = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name("汇总.xlsx").expect("summary"), &mut xlsx)
            .expect("read");
        use calamine::Reader;
        let mut book: calamine::Xlsx<_> =
            calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx)).expect("xlsx");
        let sheet = book.worksheet_range_at(0).expect("sheet").expect("range");
        let rows: Vec<Vec<String>> = sheet
            .rows()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect();
        let subs = s.store.task_submissions(s.task).await.expect("subs");
        let fmt = |ms: i64| {
            DateTime::from_timestamp_millis(ms)
                .expect("ms")
                .with_timezone(&Shanghai)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        };
        assert_eq!(
            rows[1],
            vec![
                "东关社区党委".to_string(),
                "组织推荐".into(),
                "已完成".into(),
                fmt(subs[1].at),
                fmt(subs[1].decided_at.expect("decided")),
                "1".into(),
                "1".into(),
            ],
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_office_accepts_in_the_console_and_downloads_the_rounds_archive() {
    for (name, store, _g) in common::stores::stores().await {
        let s = Server::start(store, NotifyConfig::default()).await;
        assert_eq!(s.post(hand_in()).await.0, 200, "{name}");
        let token = common::http::admin_token(s.store.as_ref()).await;
        let office = SignedIn::new(&s.base, &token, SECRET).await;
        let http = common::http::client();
        let page = office
            .page(&http, &format!("{}/console/tasks/{}", s.base, s.task))
            .await;
        assert!(
            page.contains("id=\"accept\"") && page.contains("推荐表.pdf"),
            "{name}: {page}"
        );
        let resp = office
            .post_form(
                &http,
                &format!("{}/console/tasks/{}/accept", s.base, s.task),
                &[],
            )
            .await;
        assert_eq!(resp.status().as_u16(), 303, "{name}");
        assert_eq!(s.state().await, TaskState::Done, "{name}");
        let history = s.store.task_history(s.task).await.expect("history");
        assert_eq!(
            history.iter().map(|h| h.to_state).collect::<Vec<_>>(),
            [TaskState::Submitted, TaskState::Done],
            "{name}"
        );
        let resp = office
            .post_form(&http, &format!("{}/console/rounds/1/archive", s.base), &[])
            .await;
        assert_eq!(resp.status().as_u16(), 200, "{name}");
        assert_eq!(resp.headers()["content-type"], "application/zip");
        let bytes = resp.bytes().await.expect("zip").to_vec();
        let zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
        let names: Vec<String> = zip
            .file_names()
            .map(|n| n.expect("entry name").to_string())
            .collect();
        assert!(names.iter().any(|n| n == "汇总.xlsx"), "{name}: {names:?}");
        assert!(
            names.iter().any(|n| n.starts_with("东关社区党委/")),
            "{name}: {names:?}"
        );
        let audit = s.store.audit_after(0, 1000).await.expect("audit");
        let actions: Vec<&str> = audit.iter().map(|a| a.entry.action.as_str()).collect();
        for a in [
            "task.submit",
            "submission.create",
            "task.accept",
            "round.archive",
        ] {
            assert!(actions.contains(&a), "{name}: {a} missing from {actions:?}");
        }
    }
}
