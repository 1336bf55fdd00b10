//! A real SMTP server on loopback for tests: a small tokio SMTP sink (plain text, no TLS).
//!
//! mailin-embedded 0.8.3 was the first choice, but it does not compile without one of its TLS
//! features (`default-features = false` leaves `rustls` unresolved in its `rtls` module), and
//! `rtls` pulls rustls with aws-lc-rs. This sink speaks EHLO/HELO, AUTH PLAIN, MAIL, RCPT,
//! DATA, RSET, NOOP, VRFY and QUIT, which is all lettre needs.
//!
//! `TestSmtp::start()` binds `127.0.0.1:0` and serves on its own thread (with its own tokio
//! runtime, so it works from sync and async tests alike) and records every accepted message.
//! `set_reply(Some(code))` makes RCPT and DATA answer with that code (4xx transient, 5xx
//! permanent) until `set_reply(None)`; `set_data_delay` makes it slow to confirm a message. There is no shutdown: the server thread ends with the
//! test process.

use base64::Engine;
use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest command or data line accepted (bytes); longer input ends the session.
const MAX_LINE: u64 = 64 * 1024;
/// Largest message accepted (bytes).
const MAX_DATA: usize = 16 * 1024 * 1024;

/// One message the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Envelope sender (MAIL FROM), without angle brackets.
    pub from: String,
    /// Envelope recipients (RCPT TO), in order, without angle brackets.
    pub to: Vec<String>,
    /// The raw DATA bytes: dot-unstuffed, CRLF line ends, without the final `.` line.
    pub data: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Received>>,
    reply: Mutex<Option<u16>>,
    data_delay: Mutex<Option<Duration>>,
    auths: Mutex<Vec<(String, String)>>,
    connections: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not poison the server for later assertions.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running loopback SMTP server.
pub struct TestSmtp {
    port: u16,
    shared: Arc<Shared>,
}

impl TestSmtp {
    /// Bind `127.0.0.1:0` and serve on a background thread.
    pub fn start() -> TestSmtp {
        Self::start_on(0)
    }

    /// Serve on a chosen port (e.g. one a client was already pointed at while "down").
    pub fn start_on(port: u16) -> TestSmtp {
        let listener = StdListener::bind(("127.0.0.1", port)).expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Shared::default());
        let served = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("test-smtp-{port}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("smtp runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        served.connections.fetch_add(1, Ordering::SeqCst);
                        let shared = Arc::clone(&served);
                        tokio::spawn(async move {
                            let _ = session(stream, shared).await;
                        });
                    }
                });
            })
            .expect("spawn smtp thread");
        TestSmtp { port, shared }
    }

    /// The port the server listens on (host `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        lock(&self.shared.messages).clone()
    }

    /// `Some(code)`: answer RCPT and DATA with `code` (e.g. 451, 550); `None`: accept.
    pub fn set_reply(&self, code: Option<u16>) {
        *lock(&self.shared.reply) = code;
    }

    /// `Some(d)`: wait `d` before answering the end of DATA (a slow server); `None`: answer
    /// at once.
    pub fn set_data_delay(&self, delay: Option<Duration>) {
        *lock(&self.shared.data_delay) = delay;
    }

    /// `(user, password)` of every successful `AUTH PLAIN`, in order.
    pub fn auths(&self) -> Vec<(String, String)> {
        lock(&self.shared.auths).clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

/// A loopback port with nothing listening on it (bound to :0, read, then released).
pub fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local addr").port()
}

/// A loopback server that accepts connections and never says a word (not even the greeting);
/// each connection is held for `hold`, then closed. Returns its port.
pub fn start_silent(hold: Duration) -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::Builder::new()
        .name(format!("test-silent-{port}"))
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    std::thread::sleep(hold);
                    drop(stream);
                });
            }
        })
        .expect("spawn silent thread");
    port
}

/// Envelope path of `MAIL FROM:<a> ...` / `RCPT TO:<a> ...` (text after the colon).
fn path(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(a), Some(b)) if a < b => arg[a + 1..b].to_string(),
        _ => arg.split_whitespace().next().unwrap_or("").to_string(),
    }
}

/// `AUTH PLAIN` initial response: base64 of `authzid \0 user \0 password`.
fn plain_credentials(b64: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let mut parts = raw.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let pass = String::from_utf8(parts.next()?.to_vec()).ok()?;
    Some((user, pass))
}

async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    buf.clear();
    let n = r.take(MAX_LINE).read_until(b'\n', buf).await?;
    if n > 0 && !buf.ends_with(b"\n") && n as u64 >= MAX_LINE {
        return Err(std::io::Error::other("line too long"));
    }
    Ok(n)
}

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 test.localhost ESMTP yanzhen test sink\r\n")
        .await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::with_capacity(128);
    loop {
        if read_line(&mut r, &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let cmd = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = match cmd.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a),
            None => (cmd.to_ascii_uppercase(), ""),
        };
        let forced = *lock(&shared.reply);
        let reply: String = match verb.as_str() {
            "EHLO" => "250-test.localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN".into(),
            "HELO" => "250 test.localhost".into(),
            "AUTH" => match arg.split_once(' ') {
                Some((mech, resp)) if mech.eq_ignore_ascii_case("PLAIN") => {
                    match plain_credentials(resp) {
                        Some(c) => {
                            lock(&shared.auths).push(c);
                            "235 2.7.0 Authentication succeeded".into()
                        }
                        None => "501 5.5.2 Cannot decode response".into(),
                    }
                }
                _ => "504 5.5.4 Only AUTH PLAIN with an initial response".into(),
            },
            "MAIL" => match strip_prefix_ci(arg, "FROM:") {
                Some(rest) => {
                    from = Some(path(rest));
                    to.clear();
                    "250 2.1.0 OK".into()
                }
                None => "501 5.5.4 Syntax: MAIL FROM:<address>".into(),
            },
            "RCPT" => {
                if from.is_none() {
                    "503 5.5.1 MAIL first".into()
                } else if let Some(code) = forced {
                    forced_reply(code)
                } else if let Some(rest) = strip_prefix_ci(arg, "TO:") {
                    to.push(path(rest));
                    "250 2.1.5 OK".into()
                } else {
                    "501 5.5.4 Syntax: RCPT TO:<address>".into()
                }
            }
            "DATA" => {
                if to.is_empty() {
                    "503 5.5.1 RCPT first".into()
                } else if let Some(code) = forced {
                    forced_reply(code)
                } else {
                    w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let mut data = Vec::new();
                    loop {
                        if read_line(&mut r, &mut line).await? == 0 {
                            return Ok(());
                        }
                        if line == b".\r\n" || line == b".\n" {
                            break;
                        }
                        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
                        data.extend_from_slice(unstuffed);
                        if data.len() > MAX_DATA {
                            return Err(std::io::Error::other("message too large"));
                        }
                    }
                    let delay = *lock(&shared.data_delay);
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    lock(&shared.messages).push(Received {
                        from: from.take().unwrap_or_default(),
                        to: std::mem::take(&mut to),
                        data,
                    });
                    "250 2.0.0 OK queued".into()
                }
            }
            "RSET" => {
                from = None;
                to.clear();
                "250 2.0.0 OK".into()
            }
            "NOOP" => "250 2.0.0 OK".into(),
            "VRFY" => "252 2.1.5 Cannot verify".into(),
            "QUIT" => {
                w.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 Command not implemented".into(),
        };
        // One write per reply: a reply and its line end in two small segments wait for
        // the client's delayed ACK (Nagle), ~40 ms a command.
        w.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

fn forced_reply(code: u16) -> String {
    format!("{code} test server forced reply {code}")
}

/// `s` without a leading `prefix` (ASCII case-insensitive).
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Deliver mode to the SMTP sink on `port` (plain text, two connections), the shipped
/// sender.
pub fn deliver_to(port: u16) -> yanzhen::config::NotifyConfig {
    use yanzhen::config::{DeliveryMode, NotifyConfig, SmtpConfig, SmtpSecurity};
    NotifyConfig {
        mode: DeliveryMode::Deliver,
        from: "清水街道党工委组织办 <noreply@qingshui.example.gov.cn>".into(),
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(port),
            security: SmtpSecurity::None,
            username: None,
            password_env: None,
            timeout_seconds: 5,
            pool_size: 2,
        }),
        ..NotifyConfig::default()
    }
}
