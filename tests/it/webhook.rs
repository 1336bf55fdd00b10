//! Webhook delivery against a local HTTP server: the four body formats, the DingTalk and
//! Feishu signatures, the sorting of failures into transient and permanent, and that no
//! error text leaks an access token or a secret.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;
use yanzhen::core::directory::WebhookKind;
use yanzhen::notify::webhook::{
    WebhookTransport, body, dingtalk_sign, dingtalk_url, feishu_sign, generic_signature, redact_url,
};
use yanzhen::notify::{Channel, Item, Message, SendError};

// ---------------------------------------------------------------------------------------
// The test server
// ---------------------------------------------------------------------------------------

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    raw: Bytes,
    json: Value,
}

impl Recorded {
    /// The raw (still percent-encoded) value of a query parameter.
    fn param(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }

    fn header(&self, name: &str) -> Option<String> {
        Some(self.headers.get(name)?.to_str().ok()?.to_string())
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    /// The body, sent as it is (usually JSON text).
    body: String,
    delay: Duration,
    /// Answer `{"errcode":310000,"errmsg":"<path>?<query>"}`, echoing the URL.
    echo: bool,
}

#[derive(Debug)]
struct Shared {
    requests: Vec<Recorded>,
    reply: Reply,
}

/// An axum server on 127.0.0.1 with an OS-chosen port; stops when dropped.
struct Server {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start() -> Server {
        let shared = Arc::new(Mutex::new(Shared {
            requests: Vec::new(),
            reply: Reply {
                status: 200,
                body: r#"{"errcode":0,"errmsg":"ok"}"#.into(),
                delay: Duration::ZERO,
                echo: false,
            },
        }));
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { addr, shared, task }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    fn reply(&self, status: u16, body: &str) {
        let mut s = self.shared.lock().expect("lock");
        s.reply.status = status;
        s.reply.body = body.to_string();
    }

    fn delay(&self, d: Duration) {
        self.shared.lock().expect("lock").reply.delay = d;
    }

    fn echo(&self) {
        self.shared.lock().expect("lock").reply.echo = true;
    }

    fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().expect("lock").requests.clone()
    }

    fn only_request(&self) -> Recorded {
        let r = self.requests();
        assert_eq!(r.len(), 1, "expected exactly one request, got {r:#?}");
        r[0].clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> impl IntoResponse {
    let reply = {
        let mut s = shared.lock().expect("lock");
        s.requests.push(Recorded {
            method,
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers,
            json: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            raw,
        });
        s.reply.clone()
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let body = if reply.echo {
        json!({
            "errcode": 310000,
            "errmsg": format!("{}?{}", uri.path(), uri.query().unwrap_or("")),
        })
        .to_string()
    } else {
        reply.body
    };
    (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json")],
        body,
    )
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

const DINGTALK_SECRET_VAR: &str = "YANZHEN_TEST_WEBHOOK_DINGTALK_SECRET";
const DINGTALK_SECRET: &str = "SEC0dingtalk0test0secret0value";
const FEISHU_SECRET_VAR: &str = "YANZHEN_TEST_WEBHOOK_FEISHU_SECRET";
const FEISHU_SECRET: &str = "feishu0test0secret0value";
const GENERIC_SECRET_VAR: &str = "YANZHEN_TEST_WEBHOOK_GENERIC_SECRET";
const GENERIC_SECRET: &str = "generic0test0secret0value";
const UNSET_VAR: &str = "YANZHEN_TEST_WEBHOOK_SECRET_THAT_IS_NEVER_SET";

/// Sets the test secrets once, before the first request of whichever test runs first.
fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the variables are set once, under `Once`, and only this file's tests read
        // them, through `std::env` (which takes std's environment lock). Nothing here reads
        // the environment through libc: requests go to IP literals, so there is no resolver.
        unsafe {
            std::env::set_var(DINGTALK_SECRET_VAR, DINGTALK_SECRET);
            std::env::set_var(FEISHU_SECRET_VAR, FEISHU_SECRET);
            std::env::set_var(GENERIC_SECRET_VAR, GENERIC_SECRET);
        }
    });
    yanzhen::notify::install_tls_provider();
}

fn transport() -> WebhookTransport {
    WebhookTransport::new(Duration::from_secs(5)).expect("transport")
}

const SUBJECT: &str = "【提醒】组织推荐 7月12日截止";
const TEXT: &str =
    "东关村党支部：\n请于2019年7月12日（星期五）18:00前完成组织推荐，报送名单；逾期将通报。";

fn items() -> Vec<Item> {
    vec![
        Item {
            title: "组织推荐".into(),
            assignee: "东关村党支部".into(),
            deadline: "2019年7月12日（星期五）18:00".into(),
            days_left: 3,
            link: Some("https://yanzhen.example.gov.cn/t/1".into()),
        },
        Item {
            title: "动员部署".into(),
            assignee: "东关村党支部".into(),
            deadline: "2019年7月5日（星期五）18:00".into(),
            days_left: -4,
            link: None,
        },
    ]
}

fn message(kind: WebhookKind, url: &str, secret_env: Option<&str>) -> Message {
    Message {
        message_id: "3f2a9c0d1e2f3a4b5c6d7e8f9a0b1c2d@yanzhen".into(),
        channel: Channel::Webhook {
            kind,
            secret_env: secret_env.map(str::to_string),
        },
        to_name: "东关村党支部".into(),
        to_address: url.into(),
        kind: "reminder".into(),
        subject: SUBJECT.into(),
        text: TEXT.into(),
        html: "<p>东关村党支部：</p><p>请于2019年7月12日（星期五）18:00前完成组织推荐。</p>".into(),
        items: items(),
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .expect("UTF-8")
        .into_owned()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn assert_json_request(r: &Recorded) {
    assert_eq!(r.method, Method::POST);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    // The body is UTF-8 JSON with the Chinese text as characters, not lost on the way.
    assert!(std::str::from_utf8(&r.raw).is_ok());
}

const ITEM_1: &str = "组织推荐（东关村党支部）截止：2019年7月12日（星期五）18:00，还剩3天 [标记完成](https://yanzhen.example.gov.cn/t/1)";
const ITEM_2: &str = "动员部署（东关村党支部）截止：2019年7月5日（星期五）18:00，已逾期4天";

// ---------------------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn generic_body_arrives_with_the_documented_shape_and_chinese_text() {
    init();
    let server = Server::start().await;
    let url = server.url("/hooks/yanzhen");
    server.reply(204, "");
    transport()
        .send(&message(WebhookKind::Generic, &url, None))
        .await
        .expect("delivered");
    let r = server.only_request();
    assert_json_request(&r);
    assert_eq!(r.path, "/hooks/yanzhen");
    assert_eq!(r.query, None);
    assert_eq!(
        r.header("x-yanzhen-signature"),
        None,
        "unsigned without secret_env"
    );
    assert_eq!(
        r.json,
        json!({
            "message_id": "3f2a9c0d1e2f3a4b5c6d7e8f9a0b1c2d@yanzhen",
            "kind": "reminder",
            "subject": SUBJECT,
            "text": TEXT,
            "html": "<p>东关村党支部：</p><p>请于2019年7月12日（星期五）18:00前完成组织推荐。</p>",
            "recipient": { "name": "东关村党支部", "address": url },
            "items": [
                {
                    "title": "组织推荐",
                    "assignee": "东关村党支部",
                    "deadline": "2019年7月12日（星期五）18:00",
                    "days_left": 3,
                    "link": "https://yanzhen.example.gov.cn/t/1"
                },
                {
                    "title": "动员部署",
                    "assignee": "东关村党支部",
                    "deadline": "2019年7月5日（星期五）18:00",
                    "days_left": -4
                }
            ]
        })
    );
}

#[tokio::test]
async fn wecom_body_is_a_markdown_message_with_bold_subject_and_quoted_items() {
    init();
    let server = Server::start().await;
    let url = server.url("/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa");
    server.reply(200, r#"{"errcode":0,"errmsg":"ok"}"#);
    transport()
        .send(&message(WebhookKind::Wecom, &url, None))
        .await
        .expect("delivered");
    let r = server.only_request();
    assert_json_request(&r);
    assert_eq!(r.path, "/cgi-bin/webhook/send");
    assert_eq!(
        r.query.as_deref(),
        Some("key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa")
    );
    assert_eq!(
        r.json,
        json!({
            "msgtype": "markdown",
            "markdown": {
                "content": format!("**{SUBJECT}**\n{TEXT}\n> {ITEM_1}\n> {ITEM_2}")
            }
        })
    );
}

#[tokio::test]
async fn dingtalk_body_is_a_markdown_message_with_title_and_heading() {
    init();
    let server = Server::start().await;
    let url = server.url("/robot/send?access_token=abc123");
    transport()
        .send(&message(WebhookKind::Dingtalk, &url, None))
        .await
        .expect("delivered");
    let r = server.only_request();
    assert_json_request(&r);
    assert_eq!(r.path, "/robot/send");
    assert_eq!(r.query.as_deref(), Some("access_token=abc123"), "unsigned");
    assert_eq!(
        r.json,
        json!({
            "msgtype": "markdown",
            "markdown": {
                "title": SUBJECT,
                "text": format!(
                    "### {SUBJECT}\n\n东关村党支部：\n\n请于2019年7月12日（星期五）18:00前完成组织推荐，报送名单；逾期将通报。\n\n> {ITEM_1}\n\n> {ITEM_2}"
                )
            }
        })
    );
}

#[tokio::test]
async fn feishu_body_is_a_text_message_with_subject_and_text() {
    init();
    let server = Server::start().await;
    let url = server.url("/open-apis/bot/v2/hook/2f1c9a0e-1234-4bcd-9ef0-0123456789ab");
    server.reply(
        200,
        r#"{"code":0,"msg":"success","data":{},"StatusCode":0,"StatusMessage":"success"}"#,
    );
    transport()
        .send(&message(WebhookKind::Feishu, &url, None))
        .await
        .expect("delivered");
    let r = server.only_request();
    assert_json_request(&r);
    assert_eq!(
        r.json,
        json!({
            "msg_type": "text",
            "content": { "text": format!("{SUBJECT}\n{TEXT}") }
        }),
        "unsigned: no timestamp or sign"
    );
}

#[test]
fn body_is_pure_and_only_feishu_carries_the_signature_in_it() {
    let m = message(WebhookKind::Feishu, "https://open.feishu.cn/x", None);
    let sig = yanzhen::notify::webhook::Signature {
        timestamp: 1_700_000_000,
        sign: "c2lnbg==".into(),
    };
    assert_eq!(
        body(WebhookKind::Feishu, &m, Some(&sig)),
        json!({
            "msg_type": "text",
            "content": { "text": format!("{SUBJECT}\n{TEXT}") },
            "timestamp": "1700000000",
            "sign": "c2lnbg=="
        })
    );
    for kind in [
        WebhookKind::Generic,
        WebhookKind::Wecom,
        WebhookKind::Dingtalk,
    ] {
        assert_eq!(body(kind, &m, Some(&sig)), body(kind, &m, None));
    }
}

#[test]
fn wecom_markdown_is_cut_to_4096_bytes_on_a_character_boundary() {
    let mut m = message(WebhookKind::Wecom, "https://qyapi.weixin.qq.com/x", None);
    m.text = "请按时完成。".repeat(400); // 7200 bytes
    let v = body(WebhookKind::Wecom, &m, None);
    let content = v["markdown"]["content"].as_str().expect("content");
    assert!(content.len() <= 4096, "{} bytes", content.len());
    assert!(content.starts_with(&format!("**{SUBJECT}**\n请按时完成。")));
    assert!(content.ends_with('…'));
}

// ---------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------

#[test]
fn dingtalk_sign_matches_the_documented_recipe_and_a_fixed_vector() {
    // The recipe, computed here independently: HmacSHA256(key = secret,
    // message = "{timestamp}\n{secret}"), then base64.
    for (secret, ts) in [
        ("SEC000", 1_700_000_000_000_i64),
        ("SEC密钥", 1_562_925_600_000),
    ] {
        let expected = b64(&hmac_sha256(
            secret.as_bytes(),
            format!("{ts}\n{secret}").as_bytes(),
        ));
        assert_eq!(dingtalk_sign(secret, ts), expected);
    }
    // Fixed vectors computed once with Python while writing this test:
    //   python3 -c 'import hmac,hashlib,base64; s="SEC000"; t=1700000000000;
    //     print(base64.b64encode(hmac.new(s.encode(), f"{t}\n{s}".encode(),
    //     hashlib.sha256).digest()).decode())'
    assert_eq!(
        dingtalk_sign("SEC000", 1_700_000_000_000),
        "ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA="
    );
    // Same script with t=1700000000002: a signature with '+' and '/' to url-encode.
    assert_eq!(
        dingtalk_sign("SEC000", 1_700_000_000_002),
        "Lv5w8tn9s0MIOD+lUcA+PvsInVZd1LSqezE/s6TZY5c="
    );
}

#[test]
fn dingtalk_url_appends_timestamp_and_url_encoded_sign() {
    // urllib.parse.quote_plus of the vector above gives the same encoding.
    assert_eq!(
        dingtalk_url(
            "https://oapi.dingtalk.com/robot/send?access_token=abc",
            "SEC000",
            1_700_000_000_002
        ),
        "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1700000000002&sign=Lv5w8tn9s0MIOD%2BlUcA%2BPvsInVZd1LSqezE%2Fs6TZY5c%3D"
    );
    assert_eq!(
        dingtalk_url(
            "https://oapi.dingtalk.com/robot/send",
            "SEC000",
            1_700_000_000_000
        ),
        "https://oapi.dingtalk.com/robot/send?timestamp=1700000000000&sign=ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA%3D"
    );
}

#[tokio::test]
async fn dingtalk_signed_url_reaches_the_server_with_timestamp_and_encoded_sign() {
    init();
    let server = Server::start().await;
    let url = server.url("/robot/send?access_token=abc123");
    let before = now_ms();
    transport()
        .send(&message(
            WebhookKind::Dingtalk,
            &url,
            Some(DINGTALK_SECRET_VAR),
        ))
        .await
        .expect("delivered");
    let after = now_ms();
    let r = server.only_request();
    let query = r.query.clone().expect("query");
    assert!(
        query.starts_with("access_token=abc123&timestamp="),
        "{query}"
    );
    let ts: i64 = r
        .param("timestamp")
        .expect("timestamp")
        .parse()
        .expect("milliseconds");
    assert!((before..=after).contains(&ts), "timestamp {ts} in ms");
    let raw_sign = r.param("sign").expect("sign");
    assert!(
        !raw_sign.contains(['+', '/', '=']),
        "sign is url-encoded: {raw_sign}"
    );
    let sign = percent_decode(&raw_sign);
    let expected = b64(&hmac_sha256(
        DINGTALK_SECRET.as_bytes(),
        format!("{ts}\n{DINGTALK_SECRET}").as_bytes(),
    ));
    assert_eq!(sign, expected);
    // The body is the same as unsigned.
    assert_eq!(r.json["msgtype"], "markdown");
    assert!(!String::from_utf8_lossy(&r.raw).contains(DINGTALK_SECRET));
}

#[test]
fn feishu_sign_matches_the_documented_recipe_and_a_fixed_vector() {
    // The recipe, computed here independently: HmacSHA256(key = "{timestamp}\n{secret}",
    // message = empty), then base64.
    for (secret, ts) in [("SEC000", 1_700_000_000_i64), ("飞书密钥", 1_562_925_600)] {
        let expected = b64(&hmac_sha256(format!("{ts}\n{secret}").as_bytes(), b""));
        assert_eq!(feishu_sign(secret, ts), expected);
    }
    // Fixed vector computed once with Python while writing this test:
    //   python3 -c 'import hmac,hashlib,base64; s="SEC000"; t=1700000000;
    //     print(base64.b64encode(hmac.new(f"{t}\n{s}".encode(), b"",
    //     hashlib.sha256).digest()).decode())'
    assert_eq!(
        feishu_sign("SEC000", 1_700_000_000),
        "QKhXycVUGrhA1dUEbXA2Vo/zGkv/W88IgYgKNA7Xmk0="
    );
}

#[tokio::test]
async fn feishu_signed_body_carries_timestamp_in_seconds_and_sign() {
    init();
    let server = Server::start().await;
    let url = server.url("/open-apis/bot/v2/hook/2f1c9a0e-1234-4bcd-9ef0-0123456789ab");
    server.reply(200, r#"{"code":0,"msg":"success","data":{}}"#);
    let before = now_ms() / 1000;
    transport()
        .send(&message(WebhookKind::Feishu, &url, Some(FEISHU_SECRET_VAR)))
        .await
        .expect("delivered");
    let after = now_ms() / 1000 + 1;
    let r = server.only_request();
    assert_eq!(r.query, None, "Feishu signs the body, not the URL");
    let obj = r.json.as_object().expect("object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["content", "msg_type", "sign", "timestamp"]);
    let ts_text = r.json["timestamp"].as_str().expect("timestamp is a string");
    let ts: i64 = ts_text.parse().expect("seconds");
    assert!((before..=after).contains(&ts), "timestamp {ts} in seconds");
    let expected = b64(&hmac_sha256(
        format!("{ts}\n{FEISHU_SECRET}").as_bytes(),
        b"",
    ));
    assert_eq!(r.json["sign"], expected.as_str());
    assert_eq!(
        r.json["content"]["text"],
        format!("{SUBJECT}\n{TEXT}").as_str()
    );
}

#[tokio::test]
async fn generic_signed_request_carries_an_hmac_of_timestamp_and_body() {
    init();
    let server = Server::start().await;
    let url = server.url("/hooks/yanzhen");
    server.reply(200, "{}");
    transport()
        .send(&message(
            WebhookKind::Generic,
            &url,
            Some(GENERIC_SECRET_VAR),
        ))
        .await
        .expect("delivered");
    let r = server.only_request();
    let ts = r.header("x-yanzhen-timestamp").expect("timestamp header");
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&r.raw);
    let hex: String = hmac_sha256(GENERIC_SECRET.as_bytes(), &signed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        r.header("x-yanzhen-signature"),
        Some(format!("sha256={hex}"))
    );
    assert_eq!(
        generic_signature(GENERIC_SECRET, ts.parse().expect("seconds"), &r.raw),
        format!("sha256={hex}")
    );
}

// ---------------------------------------------------------------------------------------
// Sorting failures
// ---------------------------------------------------------------------------------------

async fn send_and_get(
    server: &Server,
    kind: WebhookKind,
    status: u16,
    answer: &str,
) -> Result<(), SendError> {
    server.reply(status, answer);
    transport()
        .send(&message(
            kind,
            &server.url("/robot/send?access_token=abc123"),
            None,
        ))
        .await
}

const ALL_KINDS: [WebhookKind; 4] = [
    WebhookKind::Generic,
    WebhookKind::Wecom,
    WebhookKind::Dingtalk,
    WebhookKind::Feishu,
];

#[tokio::test]
async fn http_500_is_transient() {
    init();
    let server = Server::start().await;
    for kind in ALL_KINDS {
        let e = send_and_get(&server, kind, 500, r#"{"error":"boom"}"#)
            .await
            .expect_err("500 fails");
        assert!(e.is_transient(), "{kind:?}: {e}");
        assert!(e.to_string().contains("HTTP 500"), "{e}");
    }
    for status in [502, 503, 504] {
        let e = send_and_get(&server, WebhookKind::Dingtalk, status, "")
            .await
            .expect_err("5xx fails");
        assert!(e.is_transient(), "{status}: {e}");
    }
}

#[tokio::test]
async fn http_429_and_408_are_transient() {
    init();
    let server = Server::start().await;
    for kind in ALL_KINDS {
        for status in [429, 408] {
            let e = send_and_get(&server, kind, status, "{}")
                .await
                .expect_err("fails");
            assert!(e.is_transient(), "{kind:?} {status}: {e}");
        }
    }
}

#[tokio::test]
async fn http_400_is_permanent() {
    init();
    let server = Server::start().await;
    for kind in ALL_KINDS {
        for status in [400, 401, 403, 404] {
            let e = send_and_get(&server, kind, status, r#"{"error":"bad request"}"#)
                .await
                .expect_err("fails");
            assert!(
                matches!(e, SendError::Permanent(_)),
                "{kind:?} {status}: {e}"
            );
            assert!(e.to_string().contains(&format!("HTTP {status}")), "{e}");
        }
    }
}

#[tokio::test]
async fn redirects_are_not_followed_and_are_permanent() {
    init();
    let server = Server::start().await;
    let e = send_and_get(&server, WebhookKind::Generic, 302, "")
        .await
        .expect_err("fails");
    assert!(matches!(e, SendError::Permanent(_)), "{e}");
    assert_eq!(server.requests().len(), 1, "no second request");
}

#[tokio::test]
async fn robot_error_code_sign_not_match_is_permanent() {
    init();
    let server = Server::start().await;
    let e = send_and_get(
        &server,
        WebhookKind::Dingtalk,
        200,
        r#"{"errcode":310000,"errmsg":"sign not match"}"#,
    )
    .await
    .expect_err("fails");
    assert!(matches!(e, SendError::Permanent(_)), "{e}");
    assert!(e.to_string().contains("310000"), "{e}");
    assert!(e.to_string().contains("sign not match"), "{e}");

    for (kind, answer) in [
        (
            WebhookKind::Wecom,
            r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
        ),
        (
            WebhookKind::Feishu,
            r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
        ),
        (
            WebhookKind::Feishu,
            r#"{"StatusCode":19021,"StatusMessage":"sign match fail"}"#,
        ),
    ] {
        let e = send_and_get(&server, kind, 200, answer)
            .await
            .expect_err("fails");
        assert!(
            matches!(e, SendError::Permanent(_)),
            "{kind:?} {answer}: {e}"
        );
    }
}

#[tokio::test]
async fn robot_rate_limit_codes_are_transient() {
    init();
    let server = Server::start().await;
    let e = send_and_get(&server, WebhookKind::Dingtalk, 200, r#"{"errcode":130101}"#)
        .await
        .expect_err("fails");
    assert!(e.is_transient(), "{e}");
    for (kind, answer) in [
        (
            WebhookKind::Wecom,
            r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
        ),
        (
            WebhookKind::Dingtalk,
            r#"{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}"#,
        ),
        (
            WebhookKind::Feishu,
            r#"{"code":9499,"msg":"Too Many Request"}"#,
        ),
        (
            WebhookKind::Feishu,
            r#"{"code":11232,"msg":"frequency limited"}"#,
        ),
        // The older Feishu answer field.
        (
            WebhookKind::Feishu,
            r#"{"StatusCode":9499,"StatusMessage":"Too Many Request"}"#,
        ),
    ] {
        let e = send_and_get(&server, kind, 200, answer)
            .await
            .expect_err("fails");
        assert!(e.is_transient(), "{kind:?} {answer}: {e}");
    }
    // A rate-limit code with a 4xx status is still worth retrying.
    let e = send_and_get(
        &server,
        WebhookKind::Feishu,
        400,
        r#"{"code":9499,"msg":"x"}"#,
    )
    .await
    .expect_err("fails");
    assert!(e.is_transient(), "{e}");
}

#[tokio::test]
async fn success_answers_of_each_robot_are_accepted() {
    init();
    let server = Server::start().await;
    for (kind, answer) in [
        (WebhookKind::Generic, ""),
        (WebhookKind::Generic, "<html>not json</html>"),
        (WebhookKind::Wecom, r#"{"errcode":0,"errmsg":"ok"}"#),
        (WebhookKind::Dingtalk, r#"{"errcode":0,"errmsg":"ok"}"#),
        (
            WebhookKind::Feishu,
            r#"{"code":0,"msg":"success","data":{}}"#,
        ),
        // The older Feishu answer.
        (
            WebhookKind::Feishu,
            r#"{"Extra":null,"StatusCode":0,"StatusMessage":"success"}"#,
        ),
    ] {
        send_and_get(&server, kind, 200, answer)
            .await
            .unwrap_or_else(|e| panic!("{kind:?} {answer}: {e}"));
    }
}

#[tokio::test]
async fn robot_answer_without_a_result_code_is_permanent() {
    init();
    let server = Server::start().await;
    for kind in [
        WebhookKind::Wecom,
        WebhookKind::Dingtalk,
        WebhookKind::Feishu,
    ] {
        let e = send_and_get(&server, kind, 200, "<html>portal</html>")
            .await
            .expect_err("fails");
        assert!(matches!(e, SendError::Permanent(_)), "{kind:?}: {e}");
    }
}

#[tokio::test]
async fn server_down_is_transient() {
    init();
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/robot/send?access_token=abc123");
    for kind in ALL_KINDS {
        let e = transport()
            .send(&message(kind, &url, None))
            .await
            .expect_err("nothing listens");
        assert!(e.is_transient(), "{kind:?}: {e}");
    }
}

#[tokio::test]
async fn timeout_is_transient() {
    init();
    let server = Server::start().await;
    server.delay(Duration::from_secs(3));
    let t = WebhookTransport::new(Duration::from_millis(300)).expect("transport");
    let started = std::time::Instant::now();
    let e = t
        .send(&message(
            WebhookKind::Wecom,
            &server.url("/cgi-bin/webhook/send?key=k"),
            None,
        ))
        .await
        .expect_err("times out");
    assert!(e.is_transient(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up at the timeout"
    );
}

#[tokio::test]
async fn missing_secret_env_var_is_permanent_and_names_the_variable() {
    init();
    let server = Server::start().await;
    for kind in [
        WebhookKind::Dingtalk,
        WebhookKind::Feishu,
        WebhookKind::Generic,
    ] {
        let e = transport()
            .send(&message(
                kind,
                &server.url("/robot/send?access_token=abc123"),
                Some(UNSET_VAR),
            ))
            .await
            .expect_err("no secret");
        assert!(matches!(e, SendError::Permanent(_)), "{kind:?}: {e}");
        assert!(e.to_string().contains(UNSET_VAR), "{e}");
    }
    assert!(server.requests().is_empty(), "nothing is sent unsigned");
}

#[tokio::test]
async fn wecom_ignores_a_secret_env_since_its_robots_are_not_signed() {
    init();
    let server = Server::start().await;
    transport()
        .send(&message(
            WebhookKind::Wecom,
            &server.url("/cgi-bin/webhook/send?key=k"),
            Some(UNSET_VAR),
        ))
        .await
        .expect("delivered");
    assert_eq!(server.only_request().query.as_deref(), Some("key=k"));
}

#[tokio::test]
async fn other_channels_and_bad_urls_are_permanent() {
    init();
    let mut m = message(WebhookKind::Generic, "http://127.0.0.1:9/x", None);
    m.channel = Channel::Email;
    let e = transport().send(&m).await.expect_err("not a webhook");
    assert!(matches!(e, SendError::Permanent(_)), "{e}");
    for url in ["not a url", "ftp://127.0.0.1/robot", ""] {
        let e = transport()
            .send(&message(WebhookKind::Generic, url, None))
            .await
            .expect_err("bad URL");
        assert!(matches!(e, SendError::Permanent(_)), "{url:?}: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// No leaks
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn error_text_does_not_contain_the_access_token() {
    init();
    let server = Server::start().await;
    let url = server.url("/robot/send?access_token=SECRET");

    // The robot echoes the URL back in its error message.
    server.echo();
    let e = transport()
        .send(&message(WebhookKind::Dingtalk, &url, None))
        .await
        .expect_err("fails");
    assert!(!e.to_string().contains("SECRET"), "{e}");
    assert!(e.to_string().contains("access_token=***"), "{e}");

    // A plain HTTP error whose body repeats the token.
    let server = Server::start().await;
    let url = server.url("/robot/send?access_token=SECRET");
    server.reply(403, r#"{"message":"token SECRET is not allowed"}"#);
    let e = transport()
        .send(&message(WebhookKind::Generic, &url, None))
        .await
        .expect_err("fails");
    assert!(!e.to_string().contains("SECRET"), "{e}");

    // Connection refused.
    let port = server.addr.port();
    drop(server);
    let url = format!("http://127.0.0.1:{port}/robot/send?access_token=SECRET");
    let e = transport()
        .send(&message(WebhookKind::Dingtalk, &url, None))
        .await
        .expect_err("fails");
    assert!(!e.to_string().contains("SECRET"), "{e}");
    assert!(
        e.to_string().contains(&format!(
            "http://127.0.0.1:{port}/robot/send?access_token=***"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn error_text_does_not_contain_the_signing_secret_the_sign_or_a_path_token() {
    init();
    let server = Server::start().await;
    server.echo();
    let e = transport()
        .send(&message(
            WebhookKind::Dingtalk,
            &server.url("/robot/send?access_token=SECRET"),
            Some(DINGTALK_SECRET_VAR),
        ))
        .await
        .expect_err("fails");
    let r = server.only_request();
    let raw_sign = r.param("sign").expect("sign");
    let text = e.to_string();
    for leak in [
        "SECRET",
        DINGTALK_SECRET,
        raw_sign.as_str(),
        percent_decode(&raw_sign).as_str(),
    ] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }

    // Feishu's token is in the path.
    let token = "2f1c9a0e-1234-4bcd-9ef0-0123456789ab";
    let server = Server::start().await;
    server.reply(500, &format!(r#"{{"msg":"hook {token} failed"}}"#));
    let e = transport()
        .send(&message(
            WebhookKind::Feishu,
            &server.url(&format!("/open-apis/bot/v2/hook/{token}")),
            Some(FEISHU_SECRET_VAR),
        ))
        .await
        .expect_err("fails");
    let text = e.to_string();
    assert!(!text.contains(token), "{text}");
    assert!(!text.contains(FEISHU_SECRET), "{text}");
    assert!(text.contains("/open-apis/bot/v2/hook/***"), "{text}");
}

#[test]
fn redact_url_keeps_host_path_and_parameter_names_only() {
    assert_eq!(
        redact_url("https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1&sign=x%2B"),
        "https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=***&sign=***"
    );
    assert_eq!(
        redact_url("https://user:pw@qyapi.weixin.qq.com:8443/cgi-bin/webhook/send?key=k#frag"),
        "https://qyapi.weixin.qq.com:8443/cgi-bin/webhook/send?key=***"
    );
    assert_eq!(
        redact_url(
            "https://open.feishu.cn/open-apis/bot/v2/hook/2f1c9a0e-1234-4bcd-9ef0-0123456789ab"
        ),
        "https://open.feishu.cn/open-apis/bot/v2/hook/***"
    );
}
