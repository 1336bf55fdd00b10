//! Notifications: rendering messages, delivering the outbox by email and webhooks, and the
//! iCalendar feed of a branch's deadlines.
//!
//! Architecture Invariant: a notification exists first as an outbox row written in the same
//! transaction as the timer that caused it; delivery only reads and updates outbox rows, so
//! a crash can at worst repeat a message that was in flight, with the same Message-ID.

pub mod email;
pub mod ics;
pub mod outbox;
pub mod webhook;

use crate::core::directory::WebhookKind;
use chrono::{DateTime, Utc};

pub use crate::core::render::Item;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// An email address.
    Email,
    /// A webhook of this format; `secret_env` names the environment variable with the
    /// signing secret (DingTalk, Feishu).
    Webhook {
        /// Body format.
        kind: WebhookKind,
        /// Name of the variable holding the secret.
        secret_env: Option<String>,
    },
    /// Only written to the log (dry runs, contacts without any address).
    Log,
}

/// A message ready to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Stable Message-ID without angle brackets, e.g. `3f2a…@qingshui.example.gov.cn`; the same for every
    /// attempt at the same message.
    pub message_id: String,
    /// The channel.
    pub channel: Channel,
    /// Recipient display name (Chinese).
    pub to_name: String,
    /// Email address or webhook URL.
    pub to_address: String,
    /// `reminder`, `due_today`, `overdue`, `escalation`, `kickoff`, `digest`, `dead_letter`, `catch_up`.
    pub kind: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// The tasks it is about.
    pub items: Vec<Item>,
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Retrying cannot help (SMTP 5xx, HTTP 4xx, invalid address, rejected signature): stop at once.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// Worth retrying (connection refused, timeout, SMTP 4xx, HTTP 5xx/429, rate limited).
    #[error("transient failure: {0}")]
    Transient(String),
}

impl SendError {
    /// True for failures worth retrying.
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }
}

/// The Message-ID for a set of outbox keys: stable across retries of the same message.
/// `…@yanzhen`; the outbox uses [`message_id_in`] with the sender's domain.
pub fn message_id(keys: &[&str]) -> String {
    message_id_in(keys, "yanzhen")
}

/// The Message-ID for a set of outbox keys under `domain` (see [`id_domain`]).
pub fn message_id_in(keys: &[&str], domain: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    let h = Sha256::digest(sorted.join("\n").as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{hex}@{domain}")
}

/// The right-hand side of Message-IDs: the domain of the `from` address
/// (`清水街道党工委组织办 <noreply@qingshui.example.gov.cn>` → `qingshui.example.gov.cn`).
/// RFC 5322 wants a domain the sender controls, and mail filters score a Message-ID whose
/// domain differs from the sender's. `yanzhen` when `from` has no usable ASCII domain.
pub fn id_domain(from: &str) -> String {
    from.parse::<lettre::message::Mailbox>()
        .ok()
        .map(|m| m.email.domain().to_ascii_lowercase())
        .filter(|d| {
            !d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        })
        .unwrap_or_else(|| "yanzhen".into())
}

/// Make ring the process-wide rustls provider (lettre, reqwest and sqlx all use rustls;
/// one provider avoids the "no process-level CryptoProvider" panic). Idempotent.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Sign the links of a message again as it is sent (a message may wait in the outbox for
/// retries, a rate limit or a stopped daemon long after it was rendered): each link then
/// stays valid for [`crate::engine::LINK_VALID_DAYS`] after `now`. Links are replaced wherever the
/// message shows them: its items (digests, webhooks), text, and HTML as the templates
/// escape it. A link a custom template altered (e.g. `urlencode`) keeps its fire-time
/// expiry.
pub fn refresh_links(signer: &crate::access::LinkSigner, msg: &mut Message, now: DateTime<Utc>) {
    let expires = crate::engine::link_expiry(now.timestamp_millis());
    for item in &mut msg.items {
        let Some(old) = item.link.clone() else {
            continue;
        };
        let Some(new) = signer.extend(&old, expires) else {
            continue;
        };
        if new == old {
            continue;
        }
        for (from, to) in [
            (old.clone(), new.clone()),
            (
                minijinja::HtmlEscape(&old).to_string(),
                minijinja::HtmlEscape(&new).to_string(),
            ),
            (
                crate::core::render::escape_html(&old),
                crate::core::render::escape_html(&new),
            ),
        ] {
            msg.text = msg.text.replace(&from, &to);
            msg.html = msg.html.replace(&from, &to);
        }
        item.link = Some(new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_domain_is_the_from_addresses_domain() {
        assert_eq!(
            id_domain("清水街道党工委组织办 <noreply@QingShui.example.gov.cn>"),
            "qingshui.example.gov.cn"
        );
        assert_eq!(id_domain("zzb@example.org"), "example.org");
        assert_eq!(id_domain("not an address"), "yanzhen");
        let id = message_id_in(&["k"], &id_domain("a@b.example"));
        assert!(id.ends_with("@b.example"), "{id}");
        assert_eq!(id.split('@').next(), message_id(&["k"]).split('@').next());
    }
}
