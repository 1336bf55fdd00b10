//! Delivering messages to webhooks: a plain JSON POST (`generic`) and the group robots of
//! 企业微信 (WeCom), 钉钉 (DingTalk) and 飞书 (Feishu/Lark).
//!
//! Each robot gets its own official message format ([`body`]) and, when the contact names a
//! `secret_env`, its own signature: DingTalk signs the URL ([`dingtalk_url`]), Feishu signs
//! the body ([`feishu_sign`]), a generic webhook gets `X-Yanzhen-Timestamp` and
//! `X-Yanzhen-Signature` headers, and WeCom robots have no signing (a secret is ignored).
//!
//! Failures are sorted into [`SendError::Transient`] (connection errors, timeouts, HTTP 408,
//! 429 and 5xx, the robots' rate-limit codes) and [`SendError::Permanent`] (other HTTP
//! 4xx and 3xx, any other robot error code, a bad URL, a missing secret).
//!
//! Robot URLs carry their access token (in the query for WeCom and DingTalk, in the path for
//! Feishu), so every error text and log line shows the URL only through [`redact_url`], and
//! error texts are scrubbed of the secret and of every query value and token-like path
//! segment of the URL.

use super::{Channel, Item, Message, SendError, install_tls_provider};
use crate::core::directory::WebhookKind;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

/// WeCom rejects markdown content longer than 4096 bytes (UTF-8).
const WECOM_MAX_BYTES: usize = 4096;
/// Feishu rejects request bodies over 20 KB; DingTalk's limit is similar. Texts are cut
/// at this many bytes to stay clear of both.
const ROBOT_TEXT_MAX_BYTES: usize = 18_000;
/// How much of an unexpected answer goes into an error text.
const SNIPPET_CHARS: usize = 200;

/// Characters left as they are when percent-encoding a query value (RFC 3986 unreserved).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A robot signature: the timestamp it was made for and the base64 `sign`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Unix time the signature covers (milliseconds for DingTalk, seconds for Feishu).
    pub timestamp: i64,
    /// The base64 signature (not url-encoded).
    pub sign: String,
}

/// Sends messages to webhooks over HTTPS (or HTTP) with one shared connection pool.
#[derive(Debug, Clone)]
pub struct WebhookTransport {
    client: reqwest::Client,
}

impl WebhookTransport {
    /// A transport whose every request (connect, send, read the answer) must finish within
    /// `timeout`. Redirects are not followed: a robot never redirects, and following one
    /// would turn the POST into a GET.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("yanzhen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {}", error_chain(&e)))?;
        Ok(WebhookTransport { client })
    }

    /// POST the message (`m.channel` is `Channel::Webhook{kind, secret_env}`; `m.to_address`
    /// is the URL). Reads the secret from the environment variable at send time; never logs
    /// it.
    pub async fn send(&self, m: &Message) -> Result<(), SendError> {
        let Channel::Webhook { kind, secret_env } = &m.channel else {
            return Err(SendError::Permanent(format!(
                "message {} is not addressed to a webhook",
                m.message_id
            )));
        };
        let kind = *kind;
        let name = kind_name(kind);
        let shown = redact_url(&m.to_address);
        let parsed = reqwest::Url::parse(&m.to_address).map_err(|e| {
            SendError::Permanent(format!("{name} webhook URL {shown} is invalid: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SendError::Permanent(format!(
                "{name} webhook URL {shown} must start with https:// or http://"
            )));
        }

        let secret = match (kind, secret_env) {
            (WebhookKind::Wecom, Some(var)) => {
                tracing::warn!(
                    webhook = %shown,
                    variable = %var,
                    "WeCom group robots are not signed; secret_env is ignored"
                );
                None
            }
            (_, Some(var)) => Some(
                read_secret(var)
                    .map_err(|e| SendError::Permanent(format!("{name} webhook {shown}: {e}")))?,
            ),
            (_, None) => None,
        };
        let mut scrub = Scrubber::new(&m.to_address);
        if let Some(s) = &secret {
            scrub.add(s);
        }

        let now = chrono::Utc::now();
        let mut url = parsed;
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        let payload = match (kind, &secret) {
            (WebhookKind::Dingtalk, Some(secret)) => {
                let ts = now.timestamp_millis();
                scrub.add(&dingtalk_sign(secret, ts));
                let signed = dingtalk_url(&m.to_address, secret, ts);
                url = reqwest::Url::parse(&signed).map_err(|e| {
                    SendError::Permanent(format!("{name} webhook URL {shown} is invalid: {e}"))
                })?;
                to_bytes(&body(kind, m, None))?
            }
            (WebhookKind::Feishu, Some(secret)) => {
                let ts = now.timestamp();
                let sig = Signature {
                    timestamp: ts,
                    sign: feishu_sign(secret, ts),
                };
                scrub.add(&sig.sign);
                to_bytes(&body(kind, m, Some(&sig)))?
            }
            (WebhookKind::Generic, Some(secret)) => {
                let ts = now.timestamp();
                let payload = to_bytes(&body(kind, m, None))?;
                let sig = generic_signature(secret, ts, &payload);
                scrub.add(&sig);
                headers.push(("X-Yanzhen-Timestamp", ts.to_string()));
                headers.push(("X-Yanzhen-Signature", sig));
                payload
            }
            _ => to_bytes(&body(kind, m, None))?,
        };

        let mut request = self
            .client
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(payload);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let transient = !(e.is_builder() || e.is_redirect());
                let text = scrub.apply(&format!(
                    "{name} webhook {shown}: {}",
                    error_chain(&e.without_url())
                ));
                return Err(if transient {
                    SendError::Transient(text)
                } else {
                    SendError::Permanent(text)
                });
            }
        };
        let status = response.status().as_u16();
        let answer = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Err(SendError::Transient(scrub.apply(&format!(
                    "{name} webhook {shown}: HTTP {status}, but reading the answer failed: {}",
                    error_chain(&e.without_url())
                ))));
            }
        };
        match judge(kind, status, &answer) {
            Ok(()) => {
                tracing::debug!(
                    webhook = %shown,
                    kind = name,
                    message_id = %m.message_id,
                    "webhook delivered"
                );
                Ok(())
            }
            Err((transient, detail)) => {
                let text = scrub.apply(&format!("{name} webhook {shown}: {detail}"));
                Err(if transient {
                    SendError::Transient(text)
                } else {
                    SendError::Permanent(text)
                })
            }
        }
    }
}

/// The JSON body for a format (pure). `signature` is used by Feishu only (it goes in the
/// body as `timestamp` and `sign`); DingTalk signs the URL and the others are not signed.
pub fn body(kind: WebhookKind, m: &Message, signature: Option<&Signature>) -> Value {
    match kind {
        WebhookKind::Generic => json!({
            "message_id": m.message_id,
            "kind": m.kind,
            "subject": m.subject,
            "text": m.text,
            "html": m.html,
            "recipient": { "name": m.to_name, "address": m.to_address },
            "items": m.items,
        }),
        WebhookKind::Wecom => json!({
            "msgtype": "markdown",
            "markdown": { "content": wecom_markdown(m) },
        }),
        WebhookKind::Dingtalk => json!({
            "msgtype": "markdown",
            "markdown": { "title": m.subject, "text": dingtalk_markdown(m) },
        }),
        WebhookKind::Feishu => {
            let text = truncate_bytes(
                &format!("{}\n{}", m.subject, normalize_newlines(&m.text).trim_end()),
                ROBOT_TEXT_MAX_BYTES,
            );
            let mut v = json!({ "msg_type": "text", "content": { "text": text } });
            if let (Some(sig), Value::Object(obj)) = (signature, &mut v) {
                obj.insert("timestamp".into(), Value::String(sig.timestamp.to_string()));
                obj.insert("sign".into(), Value::String(sig.sign.clone()));
            }
            v
        }
    }
}

/// DingTalk's signature: `base64(HmacSHA256(key = secret, message = "{timestamp_ms}\n{secret}"))`,
/// before url-encoding.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let mac = hmac_sha256(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// The DingTalk robot URL with `timestamp` and the url-encoded `sign` appended (`&`, or `?`
/// when the URL has no query; a `#fragment` stays last).
pub fn dingtalk_url(url: &str, secret: &str, timestamp_ms: i64) -> String {
    let (base, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let sep = match base.find('?') {
        None => "?",
        Some(_) if base.ends_with('?') || base.ends_with('&') => "",
        Some(_) => "&",
    };
    let sign = utf8_percent_encode(&dingtalk_sign(secret, timestamp_ms), QUERY_VALUE).to_string();
    format!("{base}{sep}timestamp={timestamp_ms}&sign={sign}{fragment}")
}

/// Feishu/Lark's signature: `base64(HmacSHA256(key = "{timestamp_s}\n{secret}", message = ""))`.
pub fn feishu_sign(secret: &str, timestamp_s: i64) -> String {
    let mac = hmac_sha256(format!("{timestamp_s}\n{secret}").as_bytes(), b"");
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// The `X-Yanzhen-Signature` of a generic webhook: `sha256=` and the lowercase hex of
/// `HmacSHA256(key = secret, message = "{timestamp_s}.{body}")`.
pub fn generic_signature(secret: &str, timestamp_s: i64, body: &[u8]) -> String {
    let mut message = format!("{timestamp_s}.").into_bytes();
    message.extend_from_slice(body);
    let mac = hmac_sha256(secret.as_bytes(), &message);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A URL fit for logs and error texts: scheme, host, port and path, with query values,
/// user info, the fragment and token-like path segments (16 or more letters, digits, `-`
/// or `_`, with a digit among them) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Ok(u) = reqwest::Url::parse(url) else {
        return "<unparseable URL>".to_string();
    };
    let mut out = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
    if let Some(port) = u.port() {
        out.push_str(&format!(":{port}"));
    }
    let path: Vec<&str> = u
        .path()
        .split('/')
        .map(|seg| if token_like(seg) { "***" } else { seg })
        .collect();
    out.push_str(&path.join("/"));
    if u.query().is_some() {
        let names: Vec<String> = u.query_pairs().map(|(k, _)| format!("{k}=***")).collect();
        out.push('?');
        out.push_str(&names.join("&"));
    }
    out
}

fn kind_name(kind: WebhookKind) -> &'static str {
    match kind {
        WebhookKind::Generic => "generic",
        WebhookKind::Wecom => "wecom",
        WebhookKind::Dingtalk => "dingtalk",
        WebhookKind::Feishu => "feishu",
    }
}

fn read_secret(var: &str) -> Result<String, String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Ok(_) => Err(format!("the signing secret variable `{var}` is empty")),
        Err(std::env::VarError::NotPresent) => {
            Err(format!("the signing secret variable `{var}` is not set"))
        }
        Err(std::env::VarError::NotUnicode(_)) => Err(format!(
            "the signing secret variable `{var}` is not valid UTF-8"
        )),
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length (longer ones are hashed), so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn to_bytes(v: &Value) -> Result<Vec<u8>, SendError> {
    serde_json::to_vec(v)
        .map_err(|e| SendError::Permanent(format!("cannot encode the webhook body: {e}")))
}

/// Whether the answer means delivered; otherwise (transient?, detail).
fn judge(kind: WebhookKind, status: u16, answer: &[u8]) -> Result<(), (bool, String)> {
    let json: Option<Value> = serde_json::from_slice(answer).ok();
    let code = json.as_ref().and_then(|j| robot_code(kind, j));
    if (200..300).contains(&status) {
        if kind == WebhookKind::Generic {
            return Ok(());
        }
        return match code {
            Some((0, _)) => Ok(()),
            Some((c, msg)) => Err((
                rate_limited(kind, c),
                format!("the robot answered error code {c}: {msg}"),
            )),
            None => Err((
                false,
                format!(
                    "HTTP {status} without the robot's error code: {}",
                    snippet(answer)
                ),
            )),
        };
    }
    let transient = status == 408
        || status == 429
        || status >= 500
        || code.as_ref().is_some_and(|(c, _)| rate_limited(kind, *c));
    Err((transient, format!("HTTP {status}: {}", snippet(answer))))
}

/// The robot's result code and message in an answer.
fn robot_code(kind: WebhookKind, j: &Value) -> Option<(i64, String)> {
    let text = |k: &str| j.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match kind {
        WebhookKind::Generic => None,
        WebhookKind::Wecom | WebhookKind::Dingtalk => {
            Some((j.get("errcode")?.as_i64()?, text("errmsg")))
        }
        WebhookKind::Feishu => match j.get("code").and_then(Value::as_i64) {
            Some(c) => Some((c, text("msg"))),
            None => Some((j.get("StatusCode")?.as_i64()?, text("StatusMessage"))),
        },
    }
}

/// The robots' "too many messages" codes: worth retrying later.
fn rate_limited(kind: WebhookKind, code: i64) -> bool {
    match kind {
        WebhookKind::Wecom => code == 45009,
        WebhookKind::Dingtalk => code == 130101,
        WebhookKind::Feishu => code == 9499 || code == 11232,
        WebhookKind::Generic => false,
    }
}

fn snippet(answer: &[u8]) -> String {
    let s = String::from_utf8_lossy(answer);
    let s = s.trim();
    if s.is_empty() {
        return "(empty answer)".to_string();
    }
    let mut out: String = s.chars().take(SNIPPET_CHARS).collect();
    if s.chars().count() > SNIPPET_CHARS {
        out.push('…');
    }
    out
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        source = s.source();
    }
    out
}

fn token_like(seg: &str) -> bool {
    seg.len() >= 16
        && seg.bytes().any(|b| b.is_ascii_digit())
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Replaces every sensitive string (secret, signature, query values, token-like path
/// segments, the raw URL) in a text by `***`.
struct Scrubber {
    raw_url: String,
    shown_url: String,
    words: Vec<String>,
}

impl Scrubber {
    fn new(url: &str) -> Self {
        let mut s = Scrubber {
            raw_url: url.to_string(),
            shown_url: redact_url(url),
            words: Vec::new(),
        };
        if let Ok(u) = reqwest::Url::parse(url) {
            for (_, v) in u.query_pairs() {
                s.add(&v);
            }
            if let Some(q) = u.query() {
                for pair in q.split('&') {
                    if let Some((_, v)) = pair.split_once('=') {
                        s.add(v);
                    }
                }
            }
            for seg in u.path().split('/').filter(|seg| token_like(seg)) {
                s.add(seg);
            }
            s.add(u.password().unwrap_or(""));
        }
        s
    }

    fn add(&mut self, word: &str) {
        // Short values ("1", "ok") are not secrets and would garble the text.
        if word.len() >= 4 {
            self.words.push(word.to_string());
            let encoded = utf8_percent_encode(word, QUERY_VALUE).to_string();
            if encoded != word {
                self.words.push(encoded);
            }
        }
    }

    fn apply(&self, text: &str) -> String {
        let mut out = text.replace(&self.raw_url, &self.shown_url);
        let mut words: Vec<&String> = self.words.iter().collect();
        // Longest first, so a value containing another is replaced whole.
        words.sort_by_key(|w| std::cmp::Reverse(w.len()));
        for w in words {
            out = out.replace(w.as_str(), "***");
        }
        out
    }
}

fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// At most `max` bytes, cut on a character boundary and marked with `…`.
fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// One item as a line: `组织推荐（东关村党支部）截止：2019年7月12日（星期五）18:00，还剩3天`,
/// with a markdown link to mark it done when `markdown` and there is one.
fn item_line(it: &Item, markdown: bool) -> String {
    let mut s = format!("{}（{}）截止：{}", it.title, it.assignee, it.deadline);
    match it.days_left {
        d if d > 0 => s.push_str(&format!("，还剩{d}天")),
        0 => s.push_str("，今天到期"),
        d => s.push_str(&format!("，已逾期{}天", d.unsigned_abs())),
    }
    if let Some(link) = &it.link {
        if markdown {
            s.push_str(&format!(" [标记完成]({link})"));
        } else {
            s.push_str(&format!(" {link}"));
        }
    }
    s
}

/// WeCom markdown: bold subject, the text, then each item as a `> ` quote line.
fn wecom_markdown(m: &Message) -> String {
    let mut s = format!(
        "**{}**\n{}",
        m.subject,
        normalize_newlines(&m.text).trim_end()
    );
    for it in &m.items {
        s.push_str("\n> ");
        s.push_str(&item_line(it, true));
    }
    truncate_bytes(&s, WECOM_MAX_BYTES)
}

/// DingTalk markdown: a `###` subject, the text with each line its own paragraph (DingTalk
/// joins single newlines), then each item as a `> ` quote paragraph.
fn dingtalk_markdown(m: &Message) -> String {
    let text = normalize_newlines(&m.text);
    let paragraphs: Vec<&str> = text.trim_end().lines().collect();
    let mut s = format!("### {}\n\n{}", m.subject, paragraphs.join("\n\n"));
    for it in &m.items {
        s.push_str("\n\n> ");
        s.push_str(&item_line(it, true));
    }
    truncate_bytes(&s, ROBOT_TEXT_MAX_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_tokens() {
        assert_eq!(
            redact_url("https://oapi.dingtalk.com/robot/send?access_token=abc123&x=1"),
            "https://oapi.dingtalk.com/robot/send?access_token=***&x=***"
        );
        assert_eq!(
            redact_url(
                "https://open.feishu.cn/open-apis/bot/v2/hook/2f1c9a0e-1234-4bcd-9ef0-0123456789ab"
            ),
            "https://open.feishu.cn/open-apis/bot/v2/hook/***"
        );
        assert_eq!(redact_url("not a url"), "<unparseable URL>");
    }

    #[test]
    fn truncate_keeps_utf8() {
        let s = "截止".repeat(10);
        let t = truncate_bytes(&s, 10);
        assert!(t.len() <= 10);
        assert!(t.ends_with('…'));
    }
}
