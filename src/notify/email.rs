//! Email delivery over SMTP with lettre's pooled tokio transport.
//!
//! [`build`] turns a [`Message`] into a MIME message: `From`, `To` with the Chinese display
//! name (RFC 2047 encoded-words), a UTF-8 `Subject`, the stable `Message-ID: <{message_id}>`
//! (the same for every retry, so receivers can de-duplicate), `Date`, `X-Yanzhen-Kind` and a
//! `multipart/alternative` body with a UTF-8 text/plain and text/html part. The headers and
//! bodies are 7-bit clean (encoded-words, quoted-printable or base64), so any server works.
//!
//! [`EmailTransport`] sends it. lettre's own timeout covers only the TCP connect, so every
//! send is wrapped in `tokio::time::timeout(timeout_seconds)`. Failures are classified for
//! the outbox: SMTP 5xx replies and unusable recipient addresses are
//! [`SendError::Permanent`]; 4xx replies, refused connections, I/O, TLS and timeouts, and
//! every other client-side failure (usually a configuration problem an operator can fix) are
//! [`SendError::Transient`]. No error or `Debug` output contains the password.

use crate::config::{SmtpConfig, SmtpSecurity};
use crate::notify::{Channel, Message, SendError};
use lettre::message::header::{HeaderName, HeaderValue, MessageId};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Name of the header carrying the message kind.
const KIND_HEADER: &str = "X-Yanzhen-Kind";

/// Why an SMTP configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailConfigError {
    /// `notify.from` is not a mailbox like `名称 <user@example.org>`.
    #[error("notify.from `{from}` is not a valid mailbox: {reason}")]
    BadFrom {
        /// The configured value.
        from: String,
        /// What the parser said.
        reason: String,
    },
    /// The variable named by `smtp.password_env` is not set (or not UTF-8).
    #[error("environment variable `{var}` (named by smtp.password_env) is not set or not UTF-8")]
    MissingPassword {
        /// The variable's name.
        var: String,
    },
    /// `smtp.host` is not a host name or IP address.
    #[error("smtp.host `{host}` is not a valid host name or IP address: {reason}")]
    BadHost {
        /// The configured value.
        host: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Another setting cannot work (credentials half given, zero timeout).
    #[error("smtp.{field}: {reason}")]
    Invalid {
        /// The setting, e.g. `timeout_seconds`.
        field: &'static str,
        /// Why it cannot work.
        reason: String,
    },
}

/// A pooled SMTP transport for one server and sender.
pub struct EmailTransport {
    host: String,
    port: u16,
    security: SmtpSecurity,
    username: Option<String>,
    password_env: Option<String>,
    /// Only kept to scrub it from error texts; never printed.
    password: Option<String>,
    from: Mailbox,
    timeout: Duration,
    pool_size: u32,
    builder: AsyncSmtpTransportBuilder,
    /// Built on first send (lettre's pool spawns a tokio task, so it needs a runtime) and
    /// dropped after a timeout; the number counts rebuilds.
    pool: Mutex<(u64, Option<AsyncSmtpTransport<Tokio1Executor>>)>,
}

impl fmt::Debug for EmailTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailTransport")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password_env", &self.password_env)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl EmailTransport {
    /// Build from config; the password comes from the variable named by `password_env`.
    pub fn new(cfg: &SmtpConfig, from: &str) -> Result<Self, EmailConfigError> {
        let from_box = from.trim().parse::<Mailbox>();
        let from_box = from_box.map_err(|e| EmailConfigError::BadFrom {
            from: from.to_string(),
            reason: e.to_string(),
        })?;
        let host = cfg.host.trim().to_string();
        if let Err(e) = rustls::pki_types::ServerName::try_from(host.as_str()) {
            return Err(EmailConfigError::BadHost {
                host,
                reason: e.to_string(),
            });
        }
        if cfg.timeout_seconds == 0 {
            return Err(EmailConfigError::Invalid {
                field: "timeout_seconds",
                reason: "must be at least 1".into(),
            });
        }
        let password = match &cfg.password_env {
            Some(var) => match std::env::var(var) {
                Ok(p) => Some(p),
                Err(_) => return Err(EmailConfigError::MissingPassword { var: var.clone() }),
            },
            None => None,
        };
        let credentials = match (&cfg.username, &password) {
            (Some(user), Some(pass)) => Some(Credentials::new(user.clone(), pass.clone())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(EmailConfigError::Invalid {
                    field: "password_env",
                    reason: "smtp.username is set, so name the password's variable too".into(),
                });
            }
            (None, Some(_)) => {
                return Err(EmailConfigError::Invalid {
                    field: "username",
                    reason: "smtp.password_env is set but smtp.username is not".into(),
                });
            }
        };
        let bad_host = |e: lettre::transport::smtp::Error| EmailConfigError::BadHost {
            host: host.clone(),
            reason: e.to_string(),
        };
        let builder = match cfg.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host).map_err(bad_host)?
            }
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&host).map_err(bad_host)?
            }
        };
        let port = cfg.port.unwrap_or(match cfg.security {
            SmtpSecurity::None => 25,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
        });
        let timeout = Duration::from_secs(cfg.timeout_seconds);
        let mut builder = builder
            .port(port)
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(cfg.pool_size));
        if let Some(c) = credentials {
            builder = builder.credentials(c);
        }
        Ok(EmailTransport {
            host,
            port,
            security: cfg.security,
            username: cfg.username.clone(),
            password_env: cfg.password_env.clone(),
            password: password.filter(|p| !p.is_empty()),
            from: from_box,
            timeout,
            pool_size: cfg.pool_size,
            builder,
            pool: Mutex::new((0, None)),
        })
    }

    /// The sender mailbox used in `From`.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Send one message (must be `Channel::Email`), within `timeout_seconds`.
    pub async fn send(&self, m: &Message) -> Result<(), SendError> {
        if m.channel != Channel::Email {
            return Err(SendError::Permanent(format!(
                "message {} is not an email (channel {:?})",
                m.message_id, m.channel
            )));
        }
        let email = build(m, &self.from)?;
        let (generation, transport) = self.transport();
        match tokio::time::timeout(self.timeout, transport.send(email)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.classify(&e)),
            Err(_) => {
                // The cancelled send may leave its pooled connection mid-transaction, and
                // lettre would park it for reuse: drop the whole pool so no later send can
                // read a stale reply.
                self.discard(generation);
                Err(SendError::Transient(format!(
                    "SMTP {}:{} did not finish within {}s",
                    self.host,
                    self.port,
                    self.timeout.as_secs()
                )))
            }
        }
    }

    fn lock_pool(&self) -> MutexGuard<'_, (u64, Option<AsyncSmtpTransport<Tokio1Executor>>)> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current pool (built now if needed) and its generation.
    fn transport(&self) -> (u64, AsyncSmtpTransport<Tokio1Executor>) {
        let mut slot = self.lock_pool();
        let generation = slot.0;
        let t = slot
            .1
            .get_or_insert_with(|| self.builder.clone().build::<Tokio1Executor>())
            .clone();
        (generation, t)
    }

    /// Forget the pool of `generation` (if not already replaced).
    fn discard(&self, generation: u64) {
        let mut slot = self.lock_pool();
        if slot.0 == generation {
            slot.0 += 1;
            slot.1 = None;
        }
    }

    fn classify(&self, e: &lettre::transport::smtp::Error) -> SendError {
        let mut text = format!("SMTP {}:{}: {e}", self.host, self.port);
        if let Some(p) = &self.password {
            text = text.replace(p.as_str(), "<redacted>");
        }
        if e.is_permanent() {
            SendError::Permanent(text)
        } else {
            // 4xx, connection refused, I/O, TLS, connect timeout, and client-side failures.
            SendError::Transient(text)
        }
    }
}

impl Drop for EmailTransport {
    fn drop(&mut self) {
        // lettre's pool spawns a tokio task when dropped, which panics outside a runtime:
        // there, leak it instead (only happens at shutdown).
        if tokio::runtime::Handle::try_current().is_err() {
            let slot = self.pool.get_mut().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = slot.1.take() {
                std::mem::forget(t);
            }
        }
    }
}

/// The MIME message for `m` from `from`; an unusable address or id is a permanent error.
pub fn build(m: &Message, from: &Mailbox) -> Result<lettre::Message, SendError> {
    let address: Address = m.to_address.trim().parse().map_err(|e| {
        SendError::Permanent(format!("invalid recipient address `{}`: {e}", m.to_address))
    })?;
    let name = m.to_name.trim();
    let to = Mailbox::new((!name.is_empty()).then(|| name.to_string()), address);
    let id = m.message_id.as_str();
    let id_ok = id.contains('@')
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
    if !id_ok {
        return Err(SendError::Permanent(format!(
            "invalid Message-ID `{id}` (want `left@right`, printable ASCII, no angle brackets)"
        )));
    }
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(m.subject.as_str())
        .date_now()
        .header(MessageId::from(format!("<{id}>")))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(KIND_HEADER),
            m.kind.clone(),
        ))
        .multipart(MultiPart::alternative_plain_html(
            m.text.clone(),
            m.html.clone(),
        ))
        .map_err(|e| SendError::Permanent(format!("cannot build email {id}: {e}")))
}
