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

/// What a signed link grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The branch page of a unit (its open tasks, the .ics feed).
    Unit {
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
    fn message(&self, expires: i64) -> String {
        match self {
            Grant::Unit { unit } => format!("unit|{unit}|{expires}"),
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

    /// The path and query of a task's "mark done" link.
    pub fn task_link(&self, unit: &str, task: i64, expires: i64) -> String {
        let grant = Grant::Task {
            unit: unit.to_string(),
            task,
        };
        format!("/b/{unit}/t/{task}?{}", self.query(&grant, expires))
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
        let grant = if n >= 4 && seg[n - 2] == "t" && seg[n - 4] == "b" {
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
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("yz_") && a.len() == 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
