//! The outbox sender: claims outbox rows, merges a recipient's reminders (and escalations)
//! of the same hour into one message, delivers by email, webhook or log, and records the
//! outcome — retrying transient failures with exponential backoff and jitter, stopping at
//! once on permanent ones, dead-lettering (and telling the office) when attempts run out.

use crate::config::{DeliveryMode, NotifyConfig};
use crate::directory::{Contact, Party, WebhookKind};
use crate::engine::{Engine, from_ms, ms};
use crate::notify::email::EmailTransport;
use crate::notify::webhook::WebhookTransport;
use crate::notify::{Channel, Item, Message, SendError, message_id_in};
use crate::store::{Delivery, OutboxRow, StoreError};
use backon::BackoffBuilder;
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Rows claimed per pass.
const BATCH: i64 = 200;
/// Longest sleep between checks of the outbox (rows written by other processes).
const MAX_SLEEP: Duration = Duration::from_secs(10);

/// Configuration problems that stop delivery from starting.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// `mode = "deliver"` without an SMTP server, or a bad SMTP setting.
    #[error("notify: {0}")]
    Config(String),
}

/// The outbox sender.
#[derive(Debug)]
pub struct Outbox {
    engine: Arc<Engine>,
    cfg: NotifyConfig,
    email: Option<EmailTransport>,
    webhook: Option<WebhookTransport>,
    limits: HashMap<String, Arc<DefaultDirectRateLimiter>>,
    lease_ms: i64,
    /// Rows this sender has claimed and not yet settled. Left non-empty only by a pass
    /// that failed (database error); the next pass hands them back at once instead of
    /// leaving them to wait out the lease (90 s by default) with nobody sending them.
    unsettled: std::sync::Mutex<Vec<i64>>,
    /// Set by [`run`](Self::run) when shutdown is asked for during a pass: the pass ends
    /// after the message in hand and hands back the rest of its claim, instead of working
    /// through a rate-limited backlog first.
    stopping: std::sync::atomic::AtomicBool,
}

#[derive(Debug, serde::Deserialize)]
struct RecipientJson {
    party: PartyJson,
    #[serde(default)]
    contact: Option<Contact>,
}

#[derive(Debug, serde::Deserialize)]
struct PartyJson {
    id: String,
    name: String,
    kind: String,
}

impl Outbox {
    /// A sender for the engine's store with these settings; builds the transports.
    pub fn new(engine: Arc<Engine>, cfg: NotifyConfig) -> Result<Self, OutboxError> {
        crate::notify::install_tls_provider();
        let (email, webhook) = match cfg.mode {
            DeliveryMode::Log => (None, None),
            DeliveryMode::Deliver => {
                let smtp = cfg.smtp.as_ref().ok_or_else(|| {
                    OutboxError::Config(
                        "mode = \"deliver\" needs an [notify.smtp] section (host, port, security)"
                            .into(),
                    )
                })?;
                let email = EmailTransport::new(smtp, &cfg.from)
                    .map_err(|e| OutboxError::Config(e.to_string()))?;
                let webhook =
                    WebhookTransport::new(Duration::from_secs(cfg.webhook.timeout_seconds))
                        .map_err(OutboxError::Config)?;
                (Some(email), Some(webhook))
            }
        };
        let mut limits = HashMap::new();
        for (channel, per_minute) in &cfg.rate_limits {
            let n = NonZeroU32::new(*per_minute).ok_or_else(|| {
                OutboxError::Config(format!(
                    "rate_limits.{channel} must be at least 1 per minute"
                ))
            })?;
            limits.insert(
                channel.clone(),
                Arc::new(RateLimiter::direct(Quota::per_minute(n))),
            );
        }
        let smtp_timeout = cfg.smtp.as_ref().map_or(30, |s| s.timeout_seconds);
        let lease_ms = ((smtp_timeout.max(cfg.webhook.timeout_seconds) * 2 + 30) * 1000) as i64;
        Ok(Outbox {
            engine,
            cfg,
            email,
            webhook,
            limits,
            lease_ms,
            unsettled: std::sync::Mutex::new(Vec::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// One pass: deliver everything that is due now. Returns how many messages were sent.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let store = self.engine.store().clone();
        let owner = format!("{}:outbox", self.engine.owner());
        let mut sent = 0;
        self.release_unsettled(&owner, "claimed by a delivery pass that failed")
            .await?;
        loop {
            if self.stopping() {
                return Ok(sent);
            }
            let now = self.engine.clock().now();
            let rows = store
                .claim_outbox(ms(now), &owner, self.lease_ms, BATCH)
                .await?;
            if rows.is_empty() {
                return Ok(sent);
            }
            self.track(&rows.iter().map(|r| r.id).collect::<Vec<_>>());
            // Several messages in flight at once, one per pooled SMTP connection: a send is
            // mostly waiting on the server.
            use futures_util::StreamExt as _;
            let mut passes = futures_util::stream::iter(self.groups(rows))
                .map(|group| self.deliver_group(group, &owner))
                .buffer_unordered(self.concurrency());
            let mut failed = None;
            while let Some(r) = passes.next().await {
                match r {
                    Ok(true) => sent += 1,
                    Ok(false) => {}
                    Err(e) => failed = Some(e),
                }
            }
            drop(passes);
            if let Some(e) = failed {
                return Err(e);
            }
            if self.stopping() {
                self.release_unsettled(&owner, "the sender stopped before sending it")
                    .await?;
                return Ok(sent);
            }
        }
    }

    /// How many messages go out at once: the SMTP pool's size (at least one).
    fn concurrency(&self) -> usize {
        self.cfg
            .smtp
            .as_ref()
            .map_or(1, |s| s.pool_size.max(1) as usize)
    }

    /// Send one group and settle its rows; true when it went out. A group reached after
    /// shutdown was asked for is left claimed for [`release_unsettled`](Self::release_unsettled).
    async fn deliver_group(&self, group: Vec<OutboxRow>, owner: &str) -> Result<bool, StoreError> {
        if self.stopping() {
            return Ok(false);
        }
        let store = self.engine.store();
        let ids: Vec<i64> = group.iter().map(|r| r.id).collect();
        let mid = match group.iter().find_map(|r| r.message_id.clone()) {
            Some(m) => m,
            None => {
                let keys: Vec<&str> = group.iter().map(|r| r.key.as_str()).collect();
                let m = message_id_in(&keys, &crate::notify::id_domain(&self.cfg.from));
                store.assign_message_id(&ids, owner, &m).await?;
                m
            }
        };
        let mut msg = self.message(&group, mid);
        self.engine
            .refresh_links(&mut msg, self.engine.clock().now());
        let outcome = self.attempt(&msg, &group).await;
        let now = self.engine.clock().now();
        let sent = outcome.is_ok();
        if sent && self.cfg.mode == DeliveryMode::Deliver && msg.channel != Channel::Log {
            // One line per message that left (log-channel messages are logged by `attempt`).
            let to = match msg.channel {
                Channel::Email => msg.to_address.clone(),
                _ => crate::notify::webhook::redact_url(&msg.to_address),
            };
            tracing::info!(to = %to, name = %msg.to_name, kind = %msg.kind, message_id = %msg.message_id, rows = ids.len(), "sent");
        }
        let delivery = match outcome {
            Ok(()) => Delivery::Sent { at: ms(now) },
            Err(e) => self.failure(&group, &msg, e, now),
        };
        let outcome = match &delivery {
            Delivery::Sent { .. } => "sent",
            Delivery::Retry { .. } => "failed",
            Delivery::Dead { .. } => "dead",
        };
        metrics::counter!("yanzhen_notifications_total", "outcome" => outcome)
            .increment(ids.len() as u64);
        if store.settle_outbox(&ids, owner, delivery).await? == 0 {
            tracing::warn!(message_id = %msg.message_id, "outbox claim lost while sending; another sender owns it");
        }
        self.untrack(&ids);
        Ok(sent)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hand back, due now, the rows this sender claimed and has not settled.
    async fn release_unsettled(&self, owner: &str, why: &str) -> Result<(), StoreError> {
        let ids = self.take_unsettled();
        if ids.is_empty() {
            return Ok(());
        }
        let retry = Delivery::Retry {
            at: ms(self.engine.clock().now()),
            error: why.into(),
        };
        if let Err(e) = self.engine.store().settle_outbox(&ids, owner, retry).await {
            self.track(&ids);
            return Err(e);
        }
        Ok(())
    }

    fn track(&self, ids: &[i64]) {
        if let Ok(mut u) = self.unsettled.lock() {
            u.extend_from_slice(ids);
        }
    }

    fn untrack(&self, ids: &[i64]) {
        if let Ok(mut u) = self.unsettled.lock() {
            u.retain(|id| !ids.contains(id));
        }
    }

    fn take_unsettled(&self) -> Vec<i64> {
        self.unsettled
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default()
    }

    /// Run until `shutdown` turns true; a send in progress finishes first, and what the
    /// pass had claimed beyond it is handed back.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(mode = ?self.cfg.mode, "outbox sender started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let pass = self.deliver_due();
            tokio::pin!(pass);
            let result = tokio::select! {
                r = &mut pass => r,
                true = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => {
                    self.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
                    pass.await
                }
            };
            let failed = match result {
                Ok(_) => false,
                Err(e) => {
                    tracing::error!(error = %e, "outbox delivery failed; will retry");
                    true
                }
            };
            let clock = self.engine.clock().clone();
            let next = if failed {
                // Pause rather than retry the due rows at once in a hot loop (the disk may
                // be full while reads still work).
                clock.now() + chrono::Duration::seconds(2)
            } else {
                match self.engine.store().next_outbox_at().await {
                    Ok(Some(n)) => from_ms(n),
                    Ok(None) => {
                        clock.now() + chrono::Duration::from_std(MAX_SLEEP).unwrap_or_default()
                    }
                    Err(_) => clock.now() + chrono::Duration::seconds(2),
                }
            };
            tokio::select! {
                _ = clock.sleep_until(next, MAX_SLEEP) => {}
                _ = self.engine.outbox_woken() => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("outbox sender stopped");
    }

    /// Rows that go out as one message: the rows of an already fixed Message-ID together;
    /// otherwise a recipient's reminders (reminder, due today, overdue) of the same local
    /// hour become one digest, and likewise escalations; anything else goes alone.
    fn groups(&self, rows: Vec<OutboxRow>) -> Vec<Vec<OutboxRow>> {
        let tz = self.engine.catalog().config.tz();
        let mut groups: BTreeMap<(String, String, String, String), Vec<OutboxRow>> =
            BTreeMap::new();
        for r in rows {
            let class = match r.kind.as_str() {
                "reminder" | "due_today" | "overdue" => "remind".to_string(),
                "escalation" => "escalate".to_string(),
                _ => format!("single:{}", r.id),
            };
            let hour = from_ms(r.not_before)
                .with_timezone(&tz)
                .format("%Y%m%d%H")
                .to_string();
            let key = match &r.message_id {
                Some(m) => ("mid".to_string(), m.clone(), String::new(), String::new()),
                None => (r.channel.clone(), r.address.clone(), class, hour),
            };
            groups.entry(key).or_default().push(r);
        }
        groups.into_values().collect()
    }

    fn recipient(row: &OutboxRow) -> (Party, Option<Contact>) {
        match serde_json::from_str::<RecipientJson>(&row.recipient_json) {
            Ok(r) => (
                Party {
                    kind: if r.party.kind == "role" {
                        "role"
                    } else {
                        "unit"
                    },
                    id: r.party.id,
                    name: r.party.name,
                },
                r.contact,
            ),
            Err(_) => (
                Party {
                    kind: "unit",
                    id: String::new(),
                    name: row.address.clone(),
                },
                None,
            ),
        }
    }

    fn items(group: &[OutboxRow]) -> Vec<Item> {
        let mut items = Vec::new();
        for r in group {
            if let Ok(i) = serde_json::from_str::<Item>(&r.item_json) {
                items.push(i);
            } else if let Ok(list) = serde_json::from_str::<Vec<Item>>(&r.item_json) {
                items.extend(list);
            }
        }
        items
    }

    /// The message for a group: a row's own text when alone, a digest when merged.
    fn message(&self, group: &[OutboxRow], mid: String) -> Message {
        let first = &group[0];
        let (party, contact) = Self::recipient(first);
        let channel = match first.channel.as_str() {
            "email" => Channel::Email,
            "webhook" => {
                let hook = contact
                    .as_ref()
                    .and_then(|c| c.webhooks.iter().find(|w| w.url == first.address));
                Channel::Webhook {
                    kind: hook.map_or(WebhookKind::Generic, |w| w.kind),
                    secret_env: hook.and_then(|w| w.secret_env.clone()),
                }
            }
            _ => Channel::Log,
        };
        let items = Self::items(group);
        let (kind, subject, text, html) = if group.len() == 1 {
            (
                first.kind.clone(),
                first.subject.clone(),
                first.body.clone(),
                first.html.clone(),
            )
        } else {
            let template = if first.kind == "escalation" {
                "escalation"
            } else {
                "digest"
            };
            let cat = self.engine.catalog();
            let ctx = minijinja::context! {
                recipient => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
                items => minijinja::Value::from(minijinja::value::Serde(&items)),
                office => minijinja::context!{ name => cat.directory.office.name.clone() },
            };
            match self.engine.renderer().render(template, &[], &ctx) {
                Ok(r) => (template.to_string(), r.subject, r.text, r.html),
                Err(e) => {
                    tracing::error!(error = %e, "digest template failed; sending the parts joined");
                    let text = group
                        .iter()
                        .map(|r| r.body.as_str())
                        .collect::<Vec<_>>()
                        .join("\n----\n");
                    (
                        template.to_string(),
                        first.subject.clone(),
                        text.clone(),
                        format!("<pre>{}</pre>", crate::notify::render::escape_html(&text)),
                    )
                }
            }
        };
        Message {
            message_id: mid,
            channel,
            to_name: contact
                .as_ref()
                .map_or(party.name.clone(), |c| c.name.clone()),
            to_address: first.address.clone(),
            kind,
            subject,
            text,
            html,
            items,
        }
    }

    async fn attempt(&self, msg: &Message, group: &[OutboxRow]) -> Result<(), SendError> {
        let channel_name = match msg.channel {
            Channel::Email => "email",
            Channel::Webhook { .. } => "webhook",
            Channel::Log => "log",
        };
        if let Some(limit) = self.limits.get(channel_name) {
            limit.until_ready().await;
        }
        match (&msg.channel, self.cfg.mode) {
            (Channel::Log, _) | (_, DeliveryMode::Log) => {
                tracing::info!(
                    channel = channel_name,
                    to = %msg.to_address,
                    message_id = %msg.message_id,
                    rows = group.len(),
                    subject = %msg.subject,
                    "notification (log channel)"
                );
                Ok(())
            }
            (Channel::Email, DeliveryMode::Deliver) => match &self.email {
                Some(t) => t.send(msg).await,
                None => Err(SendError::Permanent("no SMTP server configured".into())),
            },
            (Channel::Webhook { .. }, DeliveryMode::Deliver) => match &self.webhook {
                Some(t) => t.send(msg).await,
                None => Err(SendError::Permanent("webhooks are not configured".into())),
            },
        }
    }

    fn failure(
        &self,
        group: &[OutboxRow],
        msg: &Message,
        e: SendError,
        now: DateTime<Utc>,
    ) -> Delivery {
        let attempts = group.iter().map(|r| r.attempts).max().unwrap_or(1).max(1);
        let retry = &self.cfg.retry;
        if e.is_transient() && attempts < i64::from(retry.max_attempts) {
            let delay = backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(retry.min_delay_seconds))
                .with_max_delay(Duration::from_secs(retry.max_delay_seconds))
                .with_jitter()
                .with_max_times(retry.max_attempts as usize)
                .build()
                .nth((attempts - 1) as usize)
                .unwrap_or(Duration::from_secs(retry.max_delay_seconds));
            tracing::warn!(message_id = %msg.message_id, to = %msg.to_address, attempts, retry_in_s = delay.as_secs(), error = %e, "delivery failed; will retry");
            return Delivery::Retry {
                at: ms(now) + delay.as_millis() as i64,
                error: e.to_string(),
            };
        }
        tracing::error!(message_id = %msg.message_id, to = %msg.to_address, attempts, error = %e, "delivery failed for good; dead-lettered");
        let notices = if group.iter().any(|r| r.kind == "dead_letter") {
            Vec::new() // never a notice about a failed notice
        } else {
            self.dead_letter_notices(group, msg, &e, now)
        };
        Delivery::Dead {
            error: e.to_string(),
            notices,
        }
    }

    fn dead_letter_notices(
        &self,
        group: &[OutboxRow],
        msg: &Message,
        e: &SendError,
        now: DateTime<Utc>,
    ) -> Vec<crate::store::NewNotification> {
        let cat = self.engine.catalog();
        let role = &self.cfg.dead_letter_role;
        let party = cat.directory.role_party(role);
        let items: Vec<Item> = group
            .iter()
            .map(|r| Item {
                title: r.subject.clone(),
                assignee: format!("{}（{}）", msg.to_name, msg.to_address),
                deadline: String::new(),
                days_left: 0,
                link: None,
            })
            .collect();
        let ctx = minijinja::context! {
            recipient => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
            items => minijinja::Value::from(minijinja::value::Serde(&items)),
            error => e.to_string(),
            office => minijinja::context!{ name => cat.directory.office.name.clone() },
        };
        let Ok(rendered) = self.engine.renderer().render("dead_letter", &[], &ctx) else {
            return Vec::new();
        };
        let item_json = serde_json::to_string(&items).unwrap_or_else(|_| "[]".into());
        let key = format!("dead:{}", msg.message_id);
        let task = None;
        self.engine
            .to_contacts(
                &key,
                task,
                "dead_letter",
                &party,
                &rendered,
                &item_json,
                now,
            )
            .into_iter()
            .map(|mut n| {
                n.round_id = group[0].round_id;
                n
            })
            .collect()
    }
}
