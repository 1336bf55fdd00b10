//! Access: administrator tokens (kept as SHA-256 hashes) and the signed, expiring links
//! that let a branch mark *its* task done and see *its* page, and nothing else.

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = hmac::Hmac<Sha256>;

/// Hex SHA-256 of a token: what the database keeps.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (`yz_` + 40 hex characters).
pub fn new_token() -> String {
    let bytes: [u8; 20] = rand::random();
    format!("yz_{}", hex::encode(bytes))
}

/// Why a token name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "token name `{0}` is not usable: use 1 to 64 letters, digits, `-`, `_` or `.` (e.g. `zzb-ma`)"
)]
pub struct BadTokenName(pub String);

/// Check a token name: it appears in the audit log as `token:NAME` and in commands.
pub fn check_token_name(name: &str) -> Result<(), BadTokenName> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(BadTokenName(name.to_string()))
    }
}

/// Create a token named `name` with `rights`, expiring at `expires_at` (epoch ms) if given,
/// audited as `actor` at `now`; returns the token, which is shown once and never stored.
/// The store refuses a name an unrevoked token has, with one clear message.
pub async fn create_token(
    store: &dyn crate::store::Store,
    name: &str,
    rights: crate::core::state::Rights,
    expires_at: Option<i64>,
    actor: &str,
    now: i64,
) -> Result<String, crate::store::StoreError> {
    let token = new_token();
    store
        .create_token(
            crate::store::TokenRow {
                name: name.to_string(),
                hash: token_hash(&token),
                rights,
                created_at: now,
                revoked_at: None,
                expires_at,
                last_used_at: None,
            },
            crate::store::AuditEntry {
                at: now,
                actor: actor.to_string(),
                action: "token.create".into(),
                subject: format!("token:{name}"),
                detail_json: serde_json::json!({"rights": rights, "expires_at": expires_at})
                    .to_string(),
            },
        )
        .await?;
    Ok(token)
}

/// Revoke the token `name` (its console sessions end at once), audited as `actor`; false
/// when no unrevoked token has that name.
pub async fn revoke_token(
    store: &dyn crate::store::Store,
    name: &str,
    actor: &str,
    now: i64,
) -> Result<bool, crate::store::StoreError> {
    store
        .revoke_token(
            name,
            crate::store::AuditEntry {
                at: now,
                actor: actor.to_string(),
                action: "token.revoke".into(),
                subject: format!("token:{name}"),
                detail_json: "{}".into(),
            },
        )
        .await
}

/// What a signed link grants: its scope, part of the signed message, so a signature of
/// one scope never passes for another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The branch page of a unit (its open tasks and their actions, the .ics feed).
    Unit {
        /// Unit id.
        unit: String,
    },
    /// Reading a unit's calendar feed, and nothing else: calendar subscriptions are often
    /// handed to third-party calendar servers.
    Feed {
        /// Unit id.
        unit: String,
    },
    /// Marking one task of a unit done.
    Task {
        /// Unit id.
        unit: String,
        /// Task id.
        task: i64,
    },
}

impl Grant {
    /// The scope as the audit log names it: `unit:UNIT`, `feed:UNIT`, `task:ID`.
    pub fn scope(&self) -> String {
        match self {
            Grant::Unit { unit } => format!("unit:{unit}"),
            Grant::Feed { unit } => format!("feed:{unit}"),
            Grant::Task { task, .. } => format!("task:{task}"),
        }
    }

    /// The unit the link is for.
    pub fn unit(&self) -> &str {
        match self {
            Grant::Unit { unit } | Grant::Feed { unit } | Grant::Task { unit, .. } => unit,
        }
    }

    fn message(&self, expires: i64) -> String {
        match self {
            Grant::Unit { unit } => format!("unit|{unit}|{expires}"),
            Grant::Feed { unit } => format!("feed|{unit}|{expires}"),
            Grant::Task { unit, task } => format!("task|{unit}|{task}|{expires}"),
        }
    }
}

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Signature missing, malformed, or not ours (an altered link, another task or branch).
    #[error("the link is not valid for this page")]
    BadSignature,
    /// Past its expiry.
    #[error("the link has expired")]
    Expired,
}

/// Signs and checks links with the daemon's secret (HMAC-SHA256).
#[derive(Clone)]
pub struct LinkSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(<secret>)")
    }
}

impl LinkSigner {
    /// A signer with this secret.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        LinkSigner {
            secret: secret.into(),
        }
    }

    /// A fresh random secret, hex, for first start-up.
    pub fn random_secret() -> String {
        let bytes: [u8; 32] = rand::random();
        hex::encode(bytes)
    }

    fn mac(&self, grant: &Grant, expires: i64) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!());
        mac.update(grant.message(expires).as_bytes());
        mac
    }

    /// The hex signature of a grant expiring at `expires` (epoch seconds).
    pub fn sign(&self, grant: &Grant, expires: i64) -> String {
        hex::encode(self.mac(grant, expires).finalize().into_bytes())
    }

    /// Query string `exp=..&sig=..` for a grant.
    pub fn query(&self, grant: &Grant, expires: i64) -> String {
        format!("exp={expires}&sig={}", self.sign(grant, expires))
    }

    /// Check a signature (constant time) and the expiry against `now` (epoch seconds).
    pub fn verify(
        &self,
        grant: &Grant,
        expires: i64,
        sig: &str,
        now: i64,
    ) -> Result<(), LinkError> {
        let raw = hex::decode(sig).map_err(|_| LinkError::BadSignature)?;
        self.mac(grant, expires)
            .verify_slice(&raw)
            .map_err(|_| LinkError::BadSignature)?;
        if now > expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }

    /// The path and query of a grant's link.
    pub fn link(&self, grant: &Grant, expires: i64) -> String {
        match grant {
            Grant::Unit { unit } => self.unit_link(unit, expires),
            Grant::Feed { unit } => self.feed_link(unit, expires),
            Grant::Task { unit, task } => self.task_link(unit, *task, expires),
        }
    }

    /// The path and query of a task's "mark done" link.
    pub fn task_link(&self, unit: &str, task: i64, expires: i64) -> String {
        let grant = Grant::Task {
            unit: unit.to_string(),
            task,
        };
        format!("/b/{unit}/t/{task}?{}", self.query(&grant, expires))
    }

    /// The path and query of a unit's calendar feed (read only).
    pub fn feed_link(&self, unit: &str, expires: i64) -> String {
        let grant = Grant::Feed {
            unit: unit.to_string(),
        };
        format!("/b/{unit}/feed.ics?{}", self.query(&grant, expires))
    }

    /// The CSRF token of a console session: a MAC of the session id under the link
    /// secret (a message no grant can have), so it needs no storage and only this server
    /// can make it.
    pub fn csrf_token(&self, session_id: &str) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!());
        mac.update(format!("csrf|{session_id}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `token` is the CSRF token of `session_id` (constant time).
    pub fn csrf_ok(&self, session_id: &str, token: &str) -> bool {
        let Ok(raw) = hex::decode(token) else {
            return false;
        };
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!());
        mac.update(format!("csrf|{session_id}").as_bytes());
        mac.verify_slice(&raw).is_ok()
    }

    /// The path and query of a unit's page.
    pub fn unit_link(&self, unit: &str, expires: i64) -> String {
        let grant = Grant::Unit {
            unit: unit.to_string(),
        };
        format!("/b/{unit}?{}", self.query(&grant, expires))
    }

    /// A link of ours (task or unit, with or without the `link_base` in front) signed again
    /// to expire no earlier than `expires`; the same text when it already does. None when
    /// the text is not a link this signer made (a message is then left as it is).
    pub fn extend(&self, link: &str, expires: i64) -> Option<String> {
        let (path, query) = link.rsplit_once('?')?;
        let (mut old_exp, mut sig) = (None, None);
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("exp", v)) => old_exp = v.parse::<i64>().ok(),
                Some(("sig", v)) => sig = Some(v),
                _ => {}
            }
        }
        let (old_exp, sig) = (old_exp?, sig?);
        let seg: Vec<&str> = path.split('/').collect();
        let n = seg.len();
        let grant = if n >= 3 && seg[n - 1] == "feed.ics" && seg[n - 3] == "b" {
            Grant::Feed {
                unit: seg[n - 2].to_string(),
            }
        } else if n >= 4 && seg[n - 2] == "t" && seg[n - 4] == "b" {
            Grant::Task {
                unit: seg[n - 3].to_string(),
                task: seg[n - 1].parse().ok()?,
            }
        } else if n >= 2 && seg[n - 2] == "b" {
            Grant::Unit {
                unit: seg[n - 1].to_string(),
            }
        } else {
            return None;
        };
        // The old expiry may have passed: only the signature matters here.
        self.verify(&grant, old_exp, sig, i64::MIN).ok()?;
        if old_exp >= expires {
            return Some(link.to_string());
        }
        Some(format!("{path}?{}", self.query(&grant, expires)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_valid_only_for_its_own_grant_and_until_it_expires() {
        let s = LinkSigner::new("k");
        let g = Grant::Task {
            unit: "dongguan".into(),
            task: 7,
        };
        let sig = s.sign(&g, 1000);
        assert_eq!(s.verify(&g, 1000, &sig, 999), Ok(()));
        assert_eq!(s.verify(&g, 1000, &sig, 1001), Err(LinkError::Expired));
        let other_task = Grant::Task {
            unit: "dongguan".into(),
            task: 8,
        };
        assert_eq!(
            s.verify(&other_task, 1000, &sig, 999),
            Err(LinkError::BadSignature)
        );
        let other_unit = Grant::Task {
            unit: "xiguan".into(),
            task: 7,
        };
        assert_eq!(
            s.verify(&other_unit, 1000, &sig, 999),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            s.verify(&g, 2000, &sig, 999),
            Err(LinkError::BadSignature),
            "a moved expiry"
        );
        assert_eq!(s.verify(&g, 1000, "zz", 999), Err(LinkError::BadSignature));
        assert_eq!(
            LinkSigner::new("other").verify(&g, 1000, &sig, 999),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn a_link_is_extended_only_forward_and_only_when_it_is_ours() {
        let s = LinkSigner::new("k");
        let base = "https://yz.example.gov.cn";
        let task = format!("{base}{}", s.task_link("dongguan", 7, 1000));
        let longer = s.extend(&task, 5000).expect("ours");
        assert!(longer.starts_with(&format!("{base}/b/dongguan/t/7?exp=5000&sig=")));
        let g = Grant::Task {
            unit: "dongguan".into(),
            task: 7,
        };
        let sig = longer
            .rsplit_once("sig=")
            .map(|(_, s)| s)
            .unwrap_or_default();
        assert_eq!(s.verify(&g, 5000, sig, 4999), Ok(()));
        assert_eq!(
            s.extend(&task, 500).as_deref(),
            Some(task.as_str()),
            "never shortened"
        );
        let unit = s.unit_link("b", 1000);
        let u = s
            .extend(&unit, 2000)
            .expect("a unit link, even of a unit named b");
        assert_eq!(u, s.unit_link("b", 2000));
        assert_eq!(LinkSigner::new("other").extend(&task, 5000), None);
        assert_eq!(s.extend(&task.replace("/t/7", "/t/8"), 5000), None);
        assert_eq!(s.extend("https://example.com/?exp=1&sig=00", 5000), None);
        assert_eq!(s.extend("no link at all", 5000), None);
    }

    #[test]
    fn a_feed_signature_opens_neither_the_unit_page_nor_a_task() {
        let s = LinkSigner::new("k");
        let feed = Grant::Feed {
            unit: "dongguan".into(),
        };
        let sig = s.sign(&feed, 1000);
        assert_eq!(s.verify(&feed, 1000, &sig, 999), Ok(()));
        let unit = Grant::Unit {
            unit: "dongguan".into(),
        };
        assert_eq!(
            s.verify(&unit, 1000, &sig, 999),
            Err(LinkError::BadSignature)
        );
        let link = s.feed_link("dongguan", 1000);
        assert_eq!(s.extend(&link, 2000), Some(s.feed_link("dongguan", 2000)));
    }

    #[test]
    fn a_csrf_token_belongs_to_its_session_only() {
        let s = LinkSigner::new("k");
        let t = s.csrf_token("session-a");
        assert!(s.csrf_ok("session-a", &t));
        assert!(!s.csrf_ok("session-b", &t));
        assert!(!LinkSigner::new("other").csrf_ok("session-a", &t));
        assert!(!s.csrf_ok("session-a", ""));
        assert!(!s.csrf_ok("session-a", "zz"));
    }

    #[test]
    fn a_token_name_is_a_short_word() {
        assert_eq!(check_token_name("zzb-ma.2"), Ok(()));
        assert_eq!(check_token_name("组织办"), Ok(()));
        for bad in ["", "a b", "x;y", &"n".repeat(65)] {
            assert!(check_token_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("yz_") && a.len() == 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
