//! Email delivery against a real SMTP server on loopback (`tests/it/common/smtp.rs`).

use crate::common;

use common::smtp::{TestSmtp, free_port, start_silent};
use mailparse::{MailHeaderMap, ParsedMail, addrparse_header, parse_mail};
use std::time::{Duration, Instant};
use yanzhen::config::{SmtpConfig, SmtpSecurity};
use yanzhen::notify::email::{EmailConfigError, EmailTransport, build};
use yanzhen::notify::{Channel, Message, SendError, install_tls_provider, message_id};

const FROM: &str = "清水街道党工委组织办 <noreply@example.gov.cn>";
/// Mixed Chinese/ASCII with spaces, long enough to be folded into several encoded-words.
const SUBJECT: &str = "【提醒】东风村党支部：请于 2019年7月12日（星期五）18:00 前报送 “三会一课” 会议记录 (Q2 report, 还剩 3 天)";
const TEXT: &str = "东风村党支部：\n\n请于 2019年7月12日（星期五）18:00 前报送第二季度“三会一课”会议记录。\n还剩 3 天。\n\n清水街道党工委组织办\n";
const HTML: &str = "<p>东风村党支部：</p>\n<p>请于 <strong>2019年7月12日（星期五）18:00</strong> 前报送第二季度“三会一课”会议记录。</p>\n<p>还剩 3 天。</p>\n";

fn message(to_address: &str) -> Message {
    Message {
        message_id: message_id(&["wf-sanhui:2019-q2:dongfeng:reminder"]),
        channel: Channel::Email,
        to_name: "东风村党支部".into(),
        to_address: to_address.into(),
        kind: "reminder".into(),
        subject: SUBJECT.into(),
        text: TEXT.into(),
        html: HTML.into(),
        items: Vec::new(),
    }
}

fn config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        security: SmtpSecurity::None,
        username: None,
        password_env: None,
        timeout_seconds: 5,
        pool_size: 2,
    }
}

fn transport(port: u16) -> EmailTransport {
    EmailTransport::new(&config(port), FROM).expect("valid config")
}

/// Header value decoded from RFC 2047 encoded-words.
fn header(mail: &ParsedMail<'_>, name: &str) -> String {
    mail.headers
        .get_first_value(name)
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// (display name, address) of a single-mailbox header.
fn mailbox(mail: &ParsedMail<'_>, name: &str) -> (Option<String>, String) {
    let h = mail
        .headers
        .get_first_header(name)
        .unwrap_or_else(|| panic!("no {name} header"));
    let info = addrparse_header(h)
        .expect("parse address header")
        .extract_single_info()
        .expect("one mailbox");
    (info.display_name, info.addr)
}

/// MIME text line ends are CRLF on the wire; compare with the LF original.
fn body(part: &ParsedMail<'_>) -> String {
    part.get_body().expect("decode body").replace("\r\n", "\n")
}

#[tokio::test]
async fn delivered_message_has_envelope_message_id_chinese_headers_and_both_parts() {
    install_tls_provider();
    let server = TestSmtp::start();
    let m = message("dongfeng@example.cn");
    transport(server.port()).send(&m).await.expect("sent");

    let got = server.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, vec!["dongfeng@example.cn".to_string()]);
    assert_eq!(got[0].from, "noreply@example.gov.cn");
    assert!(
        got[0].data.is_ascii(),
        "headers and bodies must be 7-bit encoded"
    );

    let mail = parse_mail(&got[0].data).expect("parse MIME");
    assert_eq!(header(&mail, "Message-ID"), format!("<{}>", m.message_id));
    assert_eq!(
        mailbox(&mail, "From"),
        (
            Some("清水街道党工委组织办".to_string()),
            "noreply@example.gov.cn".to_string()
        )
    );
    assert_eq!(
        mailbox(&mail, "To"),
        (
            Some("东风村党支部".to_string()),
            "dongfeng@example.cn".to_string()
        )
    );
    assert_eq!(header(&mail, "Subject"), SUBJECT);
    assert_eq!(header(&mail, "X-Yanzhen-Kind"), "reminder");
    assert!(
        mail.headers.get_first_value("Date").is_some(),
        "Date header"
    );

    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    assert_eq!(mail.subparts.len(), 2);
    let plain = &mail.subparts[0];
    let html = &mail.subparts[1];
    assert_eq!(plain.ctype.mimetype, "text/plain");
    assert_eq!(plain.ctype.charset.to_ascii_lowercase(), "utf-8");
    assert_eq!(body(plain), TEXT);
    assert_eq!(html.ctype.mimetype, "text/html");
    assert_eq!(html.ctype.charset.to_ascii_lowercase(), "utf-8");
    assert_eq!(body(html), HTML);
}

#[tokio::test]
async fn same_message_sent_twice_carries_the_same_message_id() {
    install_tls_provider();
    let server = TestSmtp::start();
    let t = transport(server.port());
    let m = message("dongfeng@example.cn");
    t.send(&m).await.expect("first send");
    t.send(&m).await.expect("second send (pooled connection)");

    let got = server.messages();
    assert_eq!(got.len(), 2);
    let ids: Vec<String> = got
        .iter()
        .map(|r| header(&parse_mail(&r.data).expect("parse"), "Message-ID"))
        .collect();
    assert_eq!(ids[0], format!("<{}>", m.message_id));
    assert_eq!(ids[0], ids[1]);
}

#[tokio::test]
async fn server_down_is_transient() {
    install_tls_provider();
    let err = transport(free_port())
        .send(&message("dongfeng@example.cn"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn reply_451_is_transient_then_delivery_recovers() {
    install_tls_provider();
    let server = TestSmtp::start();
    let t = transport(server.port());
    let m = message("dongfeng@example.cn");
    server.set_reply(Some(451));
    let err = t.send(&m).await.expect_err("451");
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert!(err.to_string().contains("451"), "{err}");
    assert!(server.messages().is_empty());

    server.set_reply(None);
    t.send(&m).await.expect("accepted after the 451 clears");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn reply_550_is_permanent() {
    install_tls_provider();
    let server = TestSmtp::start();
    server.set_reply(Some(550));
    let err = transport(server.port())
        .send(&message("dongfeng@example.cn"))
        .await
        .expect_err("550");
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("550"), "{err}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn invalid_address_is_permanent_without_contacting_the_server() {
    install_tls_provider();
    let server = TestSmtp::start();
    let m = message("not an address");
    let err = transport(server.port())
        .send(&m)
        .await
        .expect_err("bad address");
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("not an address"), "{err}");
    // `build` alone rejects it too.
    let from = FROM.parse().expect("from");
    assert!(matches!(build(&m, &from), Err(SendError::Permanent(_))));
    // Give a stray connection time to show up before asserting there was none.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.connections(), 0);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn password_is_read_from_the_named_env_var_and_hidden_from_debug() {
    install_tls_provider();
    const VAR: &str = "YANZHEN_TEST_EMAIL_PASSWORD_7C1E";
    const SECRET: &str = "s3cret-雁阵-Pa55";
    // SAFETY: the variable name is unique to this test, and nothing in this test binary
    // reads the environment from C code while tests run (std's own accesses are locked).
    unsafe { std::env::set_var(VAR, SECRET) };
    let server = TestSmtp::start();
    let mut cfg = config(server.port());
    cfg.username = Some("zuzhiban".into());
    cfg.password_env = Some(VAR.into());
    let t = EmailTransport::new(&cfg, FROM).expect("config with password");

    let debug = format!("{t:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains(VAR), "{debug}");

    t.send(&message("dongfeng@example.cn"))
        .await
        .expect("authenticated send");
    assert_eq!(
        server.auths(),
        vec![("zuzhiban".to_string(), SECRET.to_string())]
    );
    assert!(!format!("{t:?}").contains(SECRET));
}

#[test]
fn missing_password_env_var_is_a_config_error_naming_it() {
    install_tls_provider();
    const VAR: &str = "YANZHEN_TEST_EMAIL_PASSWORD_NEVER_SET_4B2D";
    let mut cfg = config(25);
    cfg.username = Some("zuzhiban".into());
    cfg.password_env = Some(VAR.into());
    let err = EmailTransport::new(&cfg, FROM).expect_err("variable unset");
    assert_eq!(
        err,
        EmailConfigError::MissingPassword {
            var: VAR.to_string()
        }
    );
    assert!(err.to_string().contains(VAR), "{err}");
}

#[test]
fn bad_from_and_bad_host_are_config_errors() {
    install_tls_provider();
    let err = EmailTransport::new(&config(25), "清水街道 <not-an-address>").expect_err("from");
    assert!(matches!(err, EmailConfigError::BadFrom { .. }), "{err:?}");

    let mut cfg = config(25);
    cfg.host = "smtp example.org".into();
    let err = EmailTransport::new(&cfg, FROM).expect_err("host");
    assert!(matches!(err, EmailConfigError::BadHost { .. }), "{err:?}");

    cfg.security = SmtpSecurity::Tls;
    let err = EmailTransport::new(&cfg, FROM).expect_err("host with tls");
    assert!(matches!(err, EmailConfigError::BadHost { .. }), "{err:?}");
}

#[tokio::test]
async fn silent_server_times_out_as_transient() {
    install_tls_provider();
    let port = start_silent(Duration::from_secs(30));
    let mut cfg = config(port);
    cfg.timeout_seconds = 1;
    let t = EmailTransport::new(&cfg, FROM).expect("config");
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        t.send(&message("dongfeng@example.cn")),
    )
    .await
    .expect("send must not hang past its own timeout");
    let err = outcome.expect_err("the server never answers");
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn timed_out_send_does_not_leave_its_connection_in_the_pool() {
    install_tls_provider();
    let server = TestSmtp::start();
    let mut cfg = config(server.port());
    cfg.timeout_seconds = 1;
    let t = EmailTransport::new(&cfg, FROM).expect("config");
    let m = message("dongfeng@example.cn");

    server.set_data_delay(Some(Duration::from_secs(2)));
    let err = t.send(&m).await.expect_err("end of DATA answered too late");
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");

    // The late "250" of the cancelled send must not be read as the reply to a later
    // command: the next send has to use a fresh connection.
    // lettre hands a dropped connection back to its pool from a spawned task: let it run.
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.set_data_delay(None);
    t.send(&m).await.expect("second send");
    assert_eq!(server.connections(), 2);
}

#[test]
fn transport_and_its_send_future_can_be_shared_across_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    install_tls_provider();
    let t = transport(free_port());
    send_sync(&t);
    let m = message("dongfeng@example.cn");
    let fut = t.send(&m);
    send(&fut);
}

#[test]
fn dropping_a_used_transport_outside_a_runtime_does_not_panic() {
    install_tls_provider();
    let server = TestSmtp::start();
    let t = transport(server.port());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(t.send(&message("dongfeng@example.cn")))
        .expect("sent");
    drop(rt);
    // lettre's pool spawns a tokio task in its Drop; without a runtime that would panic.
    drop(t);
    assert_eq!(server.messages().len(), 1);
}
