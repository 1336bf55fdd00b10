//! The outbox sender: claims whole messages — a recipient's reminders (and escalations) of
//! the same clock hour merged into one digest, after a short wait for companions — within
//! a per-channel budget shared by every daemon on the database, checks right before each
//! send that the claim is still its own, delivers by email, webhook or log, and records the
//! outcome: transient failures are retried with exponential backoff and jitter (never
//! longer than `max_delay_seconds`), permanent ones stop at once, and a message given up
//! is dead-lettered with a notice to the office. docs/decisions.md §22 and §23.

use crate::config::{DeliveryMode, NotifyConfig};
use crate::core::directory::{Contact, Party, WebhookKind};
use crate::core::state::{MessageKind, OutboxChannel};
use crate::engine::{Engine, from_ms, ms};
use crate::notify::email::{EmailConfigError, EmailTransport};
use crate::notify::webhook::WebhookTransport;
use crate::notify::{Channel, Item, Message, SendError, message_id_in};
use crate::store::{
    ClaimedOutbox, Corrupt, Delivery, DigestHold, Millis, OutboxClaim, OutboxRow, StoreError,
};
use chrono::{DateTime, Offset as _, TimeZone as _, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Messages claimed per pass in log mode (nothing to wait on).
const BATCH: usize = 200;
/// Longest sleep between checks of the outbox (rows written by other processes).
const MAX_SLEEP: Duration = Duration::from_secs(10);
/// Channels a rate limit may name.
const LIMITED_CHANNELS: [&str; 2] = ["email", "webhook"];

/// Configuration problems that stop delivery from starting.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// `mode = "deliver"` without an SMTP server, or a bad SMTP setting.
    #[error("notify: {0}")]
    Config(String),
}

/// A `[notify]` setting that cannot work, found by [`config_problems`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where it is in `config/yanzhen.toml`, e.g. `["notify", "rate_limits", "email"]`.
    pub key: Vec<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
    /// It depends on the environment the daemon runs in (an unset password variable):
    /// `serve` refuses it, `validate` (often run elsewhere) warns.
    pub environment: bool,
}

fn problem(key: &[&str], message: String, hint: &str) -> ConfigProblem {
    ConfigProblem {
        key: key.iter().map(|k| k.to_string()).collect(),
        message,
        hint: hint.to_string(),
        environment: false,
    }
}

/// Every `[notify]` setting that `serve` refuses to start with. `serve` and `validate`
/// both ask this one function, so `validate` reports exactly what would stop the daemon.
pub fn config_problems(cfg: &NotifyConfig) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    if cfg.mode == DeliveryMode::Deliver {
        match &cfg.smtp {
            None => out.push(problem(
                &["notify", "mode"],
                "mode = \"deliver\" needs an [notify.smtp] section (host, port, security)".into(),
                "add [notify.smtp] (the shipped config/yanzhen.toml has a commented example), or set mode = \"log\"",
            )),
            Some(smtp) => {
                if let Err(e) = EmailTransport::new(smtp, &cfg.from) {
                    let (key, environment): (&[&str], bool) = match &e {
                        EmailConfigError::BadFrom { .. } => (&["notify", "from"], false),
                        EmailConfigError::MissingPassword { .. } => {
                            (&["notify", "smtp", "password_env"], true)
                        }
                        EmailConfigError::BadHost { .. } => (&["notify", "smtp", "host"], false),
                        EmailConfigError::Invalid { field, .. } => match *field {
                            "timeout_seconds" => (&["notify", "smtp", "timeout_seconds"], false),
                            "password_env" => (&["notify", "smtp", "username"], false),
                            _ => (&["notify", "smtp", "password_env"], false),
                        },
                    };
                    let mut p = problem(key, e.to_string(), "see [notify.smtp] in the shipped config/yanzhen.toml");
                    p.environment = environment;
                    out.push(p);
                }
            }
        }
        if cfg.webhook.timeout_seconds == 0 {
            out.push(problem(
                &["notify", "webhook", "timeout_seconds"],
                "webhook.timeout_seconds = 0 would fail every webhook".into(),
                "give the seconds one POST may take, e.g. 10",
            ));
        }
    }
    for (channel, per_minute) in &cfg.rate_limits {
        if !LIMITED_CHANNELS.contains(&channel.as_str()) {
            out.push(problem(
                &["notify", "rate_limits", channel],
                format!("unknown channel `{channel}` in rate_limits"),
                &crate::core::diagnostic::suggest(channel, LIMITED_CHANNELS.iter().copied()),
            ));
        } else if *per_minute == 0 {
            out.push(problem(
                &["notify", "rate_limits", channel],
                format!("rate_limits.{channel} = 0 would never send anything"),
                "give messages per minute (at least 1), or remove the line for no limit",
            ));
        }
    }
    if cfg.retry.max_attempts == 0 {
        out.push(problem(
            &["notify", "retry", "max_attempts"],
            "retry.max_attempts = 0 would give up on every message before trying it".into(),
            "at least 1 (the shipped value is 8)",
        ));
    }
    if cfg.retry.min_delay_seconds > cfg.retry.max_delay_seconds {
        out.push(problem(
            &["notify", "retry", "min_delay_seconds"],
            format!(
                "retry.min_delay_seconds ({}) is above retry.max_delay_seconds ({})",
                cfg.retry.min_delay_seconds, cfg.retry.max_delay_seconds
            ),
            "the first retry delay must not exceed the longest one",
        ));
    }
    if cfg.digest_window_minutes > 60 {
        out.push(problem(
            &["notify", "digest_window_minutes"],
            format!(
                "digest_window_minutes = {} is longer than the hour a digest covers",
                cfg.digest_window_minutes
            ),
            "0 to 60 (the shipped value is 15)",
        ));
    }
    out
}

/// The wait before retry number `retry` (1 after the first failed attempt): `min` doubled
/// at each retry with jitter, uniformly within `[max(min, hi / 2), hi]` where
/// `hi = min(2 × base, max)` — so never below `min` and never above `max`, jitter included.
/// `jitter` is a uniform draw from `[0, 1)`.
pub fn retry_delay(retry: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let max = max.max(min);
    let base = min
        .checked_mul(2u32.saturating_pow(retry.saturating_sub(1)))
        .unwrap_or(max)
        .min(max);
    let hi = base.saturating_mul(2).min(max);
    let lo = (hi / 2).max(min).min(hi);
    lo + (hi - lo).mul_f64(jitter.clamp(0.0, 1.0))
}

/// A message that went out, as handed to an observer ([`Outbox::with_observer`]): one per
/// message sent, so a digest of several rows is one `Sent` with the digest's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// When it went out (the sender's clock).
    pub at: DateTime<Utc>,
    /// `reminder`, `digest`, `escalation`, … (a digest's kind is its template's).
    pub kind: String,
    /// `email`, `webhook` or `log`: the channel of its rows (in log mode too).
    pub channel: String,
    /// Email address or webhook URL.
    pub recipient: String,
    /// The subject as rendered for the send.
    pub subject: String,
    /// Its Message-ID.
    pub message_id: String,
    /// How many outbox rows it carried.
    pub rows: usize,
}

/// The outbox sender.
#[derive(Debug)]
pub struct Outbox {
    engine: Arc<Engine>,
    cfg: NotifyConfig,
    email: Option<EmailTransport>,
    webhook: Option<WebhookTransport>,
    lease_ms: i64,
    /// How long a digest's first row waits for companions.
    window_ms: i64,
    /// Messages per claim: what the pool sends within one lease in deliver mode.
    max_messages: usize,
    /// Messages this sender has claimed and not yet settled (their rows and channel). Left
    /// non-empty only by a pass that failed (database error); the next pass hands them
    /// back at once instead of leaving them to wait out the lease with nobody sending them.
    unsettled: std::sync::Mutex<Vec<(Vec<i64>, OutboxChannel)>>,
    /// When the shared budget of a channel with messages left over refills (last claim).
    throttled_until: std::sync::Mutex<Option<Millis>>,
    /// Set by [`run`](Self::run) when shutdown is asked for during a pass: the pass ends
    /// after the message in hand and hands back the rest of its claim.
    stopping: std::sync::atomic::AtomicBool,
    /// Told of every message sent (`simulate` lists what was sent, not the rows queued).
    observer: Option<tokio::sync::mpsc::UnboundedSender<Sent>>,
}

/// An outbox row's `recipient_json`.
#[derive(Debug, serde::Deserialize)]
struct RecipientJson {
    party: Party,
    #[serde(default)]
    contact: Option<Contact>,
}

/// An outbox row's `item_json`: the task it is about, the tasks of a kickoff or catch-up
/// message, or `{}` for none.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum ItemJson {
    One(Item),
    Many(Vec<Item>),
    None(NoItem),
}

/// `{}` and nothing else.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoItem {}

/// A column of an outbox row that does not parse, named like the store names one.
fn corrupt(row: &OutboxRow, column: &'static str, value: &str, e: &serde_json::Error) -> Corrupt {
    Corrupt {
        table: "outbox",
        id: row.id.to_string(),
        column,
        value: value.to_string(),
        problem: format!("does not parse: {e}"),
    }
}

impl Outbox {
    /// A sender for the engine's store with these settings; builds the transports.
    /// Refuses what [`config_problems`] finds.
    pub fn new(engine: Arc<Engine>, cfg: NotifyConfig) -> Result<Self, OutboxError> {
        crate::notify::install_tls_provider();
        if let Some(p) = config_problems(&cfg).into_iter().next() {
            return Err(OutboxError::Config(p.message));
        }
        let (email, webhook) = match (cfg.mode, &cfg.smtp) {
            (DeliveryMode::Deliver, Some(smtp)) => {
                let email = EmailTransport::new(smtp, &cfg.from)
                    .map_err(|e| OutboxError::Config(e.to_string()))?;
                let webhook =
                    WebhookTransport::new(Duration::from_secs(cfg.webhook.timeout_seconds))
                        .map_err(OutboxError::Config)?;
                (Some(email), Some(webhook))
            }
            _ => (None, None),
        };
        let smtp_timeout = cfg.smtp.as_ref().map_or(30, |s| s.timeout_seconds);
        let lease_ms = ((smtp_timeout.max(cfg.webhook.timeout_seconds) * 2 + 30) * 1000) as i64;
        let concurrency = cfg.smtp.as_ref().map_or(1, |s| s.pool_size.max(1) as usize);
        // A claim is sent in at most two rounds of the pool, each send bounded by its
        // timeout: well within the lease, which every send renews anyway.
        let max_messages = match cfg.mode {
            DeliveryMode::Log => BATCH,
            DeliveryMode::Deliver => concurrency * 2,
        };
        Ok(Outbox {
            engine,
            window_ms: i64::from(cfg.digest_window_minutes.min(60)) * 60_000,
            cfg,
            email,
            webhook,
            lease_ms,
            max_messages,
            unsettled: std::sync::Mutex::new(Vec::new()),
            throttled_until: std::sync::Mutex::new(None),
            stopping: std::sync::atomic::AtomicBool::new(false),
            observer: None,
        })
    }

    /// The same sender, telling `observer` of every message it sends.
    pub fn with_observer(mut self, observer: tokio::sync::mpsc::UnboundedSender<Sent>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The same sender with a digest window in milliseconds instead of the configured
    /// minutes (`YANZHEN_DIGEST_WINDOW_MS`, for tests and operators).
    pub fn with_digest_window_ms(mut self, window_ms: i64) -> Self {
        self.window_ms = window_ms.clamp(0, 3_600_000);
        self
    }

    /// The digest rule at `now` (the office's time zone decides where clock hours start).
    fn hold(&self, now: DateTime<Utc>) -> DigestHold {
        let tz = self.engine.catalog().config.tz();
        let offset = tz
            .offset_from_utc_datetime(&now.naive_utc())
            .fix()
            .local_minus_utc();
        DigestHold::new(self.window_ms, i64::from(offset) * 1000)
    }

    fn owner(&self) -> String {
        format!("{}:outbox", self.engine.owner())
    }

    /// One pass: deliver everything that can go now. Returns how many messages were sent.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let store = self.engine.store().clone();
        let owner = self.owner();
        let mut sent = 0;
        self.release_unsettled(&owner).await?;
        loop {
            if self.stopping() {
                return Ok(sent);
            }
            let now = self.engine.clock().now();
            let ClaimedOutbox {
                messages,
                throttled_until,
                corrupt,
            } = store
                .claim_outbox(&OutboxClaim {
                    now: ms(now),
                    owner: owner.clone(),
                    lease_ms: self.lease_ms,
                    hold: self.hold(now),
                    max_messages: self.max_messages,
                    per_minute: self.cfg.rate_limits.clone(),
                })
                .await?;
            for c in &corrupt {
                tracing::error!(error = %c, "outbox row does not parse; moved to dead, not sent");
            }
            if let Ok(mut t) = self.throttled_until.lock() {
                *t = throttled_until;
            }
            if messages.is_empty() {
                return Ok(sent);
            }
            self.track(&messages);
            // Several messages in flight at once, one per pooled SMTP connection: a send is
            // mostly waiting on the server.
            use futures_util::StreamExt as _;
            let mut passes = futures_util::stream::iter(messages)
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
                self.release_unsettled(&owner).await?;
                return Ok(sent);
            }
        }
    }

    /// When the next pass has something to do: a due row, a digest's release, an expired
    /// lease, or (when the last claim left messages for lack of budget) the budget's refill.
    pub async fn next_send_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now = self.engine.clock().now();
        let next = self.engine.store().next_outbox_at(self.hold(now)).await?;
        let throttled = self.throttled_until.lock().ok().and_then(|t| *t);
        Ok(match (next, throttled) {
            // What is due now is waiting for the budget: wake when it refills.
            (Some(n), Some(t)) if n <= ms(now) => Some(t),
            (Some(n), Some(t)) => Some(n.min(t)),
            (n, t) => n.or(t),
        }
        .map(from_ms))
    }

    /// How many messages go out at once: the SMTP pool's size (at least one).
    fn concurrency(&self) -> usize {
        self.cfg
            .smtp
            .as_ref()
            .map_or(1, |s| s.pool_size.max(1) as usize)
    }

    /// Send one message and settle its rows; true when it went out. Right before the send
    /// the claim is checked and renewed ([`crate::store::Store::begin_attempt`]): a message
    /// another sender took over meanwhile is left to it. A message reached after shutdown
    /// was asked for is left claimed for [`release_unsettled`](Self::release_unsettled).
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
                message_id_in(&keys, &crate::notify::id_domain(&self.cfg.from))
            }
        };
        let lease_until = ms(self.engine.clock().now()) + self.lease_ms;
        if !store.begin_attempt(&ids, owner, lease_until, &mid).await? {
            tracing::warn!(message_id = %mid, "outbox claim lost before sending; another sender has it");
            self.untrack(&ids);
            self.refund(group[0].channel, 1).await;
            return Ok(false);
        }
        let attempts = group.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
        let mut msg = match self.message(&group, mid) {
            Ok(m) => m,
            Err(e) => {
                // Its stored recipient or items do not parse: sending would guess at them.
                tracing::error!(error = %e, "outbox message cannot be built; dead-lettered");
                let dead = Delivery::Dead {
                    error: e.to_string(),
                    notices: Vec::new(),
                };
                store.settle_outbox(&ids, owner, dead).await?;
                self.untrack(&ids);
                return Ok(false);
            }
        };
        if let Some(signer) = self.engine.link_signer() {
            crate::notify::refresh_links(&signer, &mut msg, self.engine.clock().now());
        }
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
        if let (true, Some(observer)) = (sent, &self.observer) {
            // A receiver that is gone only means nobody is listening any more.
            let _ = observer.send(Sent {
                at: now,
                kind: msg.kind.clone(),
                channel: group[0].channel.to_string(),
                recipient: msg.to_address.clone(),
                subject: msg.subject.clone(),
                message_id: msg.message_id.clone(),
                rows: group.len(),
            });
        }
        let delivery = match outcome {
            Ok(()) => Delivery::Sent { at: ms(now) },
            Err(e) => self.failure(&group, &msg, e, now, attempts),
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

    /// Give budget back for `messages` of `channel` that were not sent (best effort: a
    /// failure only costs some throughput until the budget refills).
    async fn refund(&self, channel: OutboxChannel, messages: u32) {
        let channel = channel.as_str();
        let Some(per_minute) = self.cfg.rate_limits.get(channel) else {
            return;
        };
        if let Err(e) = self
            .engine
            .store()
            .refund_budget(channel, *per_minute, messages)
            .await
        {
            tracing::warn!(channel, error = %e, "cannot give back unused rate-limit budget");
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hand back, due now and with no attempt counted, the messages this sender claimed
    /// and has not settled, and the budget they took.
    async fn release_unsettled(&self, owner: &str) -> Result<(), StoreError> {
        let held = self.take_unsettled();
        if held.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = held
            .iter()
            .flat_map(|(ids, _)| ids.iter().copied())
            .collect();
        if let Err(e) = self.engine.store().release_outbox(&ids, owner).await {
            if let Ok(mut u) = self.unsettled.lock() {
                u.extend(held);
            }
            return Err(e);
        }
        let mut per_channel: std::collections::BTreeMap<OutboxChannel, u32> = Default::default();
        for (_, channel) in &held {
            *per_channel.entry(*channel).or_default() += 1;
        }
        for (channel, n) in per_channel {
            self.refund(channel, n).await;
        }
        Ok(())
    }

    fn track(&self, messages: &[Vec<OutboxRow>]) {
        if let Ok(mut u) = self.unsettled.lock() {
            u.extend(
                messages
                    .iter()
                    .filter_map(|m| Some((m.iter().map(|r| r.id).collect(), m.first()?.channel))),
            );
        }
    }

    fn untrack(&self, ids: &[i64]) {
        if let Ok(mut u) = self.unsettled.lock() {
            u.retain(|(m, _)| !m.iter().any(|id| ids.contains(id)));
        }
    }

    fn take_unsettled(&self) -> Vec<(Vec<i64>, OutboxChannel)> {
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
                match self.next_send_at().await {
                    Ok(Some(n)) => n,
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

    /// Who a row goes to, as the engine wrote it.
    fn recipient(row: &OutboxRow) -> Result<(Party, Option<Contact>), Corrupt> {
        serde_json::from_str::<RecipientJson>(&row.recipient_json)
            .map(|r| (r.party, r.contact))
            .map_err(|e| corrupt(row, "recipient_json", &row.recipient_json, &e))
    }

    /// The tasks a group is about: each row's item (`{}` for none, one item, or a list).
    fn items(group: &[OutboxRow]) -> Result<Vec<Item>, Corrupt> {
        let mut items = Vec::new();
        for r in group {
            match serde_json::from_str::<ItemJson>(&r.item_json) {
                Ok(ItemJson::One(i)) => items.push(i),
                Ok(ItemJson::Many(list)) => items.extend(list),
                Ok(ItemJson::None(_)) => {}
                Err(e) => return Err(corrupt(r, "item_json", &r.item_json, &e)),
            }
        }
        Ok(items)
    }

    /// The message for a group: a row's own text when alone, a digest when merged.
    fn message(&self, group: &[OutboxRow], mid: String) -> Result<Message, Corrupt> {
        let first = &group[0];
        let (party, contact) = Self::recipient(first)?;
        let channel = match first.channel {
            OutboxChannel::Email => Channel::Email,
            OutboxChannel::Webhook => {
                let hook = contact
                    .as_ref()
                    .and_then(|c| c.webhooks.iter().find(|w| w.url == first.address));
                Channel::Webhook {
                    kind: hook.map_or(WebhookKind::Generic, |w| w.kind),
                    secret_env: hook.and_then(|w| w.secret_env.clone()),
                }
            }
            OutboxChannel::Log => Channel::Log,
        };
        let items = Self::items(group)?;
        let (kind, subject, text, html) = if group.len() == 1 {
            (
                first.kind.to_string(),
                first.subject.clone(),
                first.body.clone(),
                first.html.clone(),
            )
        } else {
            let template = if first.kind == MessageKind::Escalation {
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
                        format!("<pre>{}</pre>", crate::core::render::escape_html(&text)),
                    )
                }
            }
        };
        Ok(Message {
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
        })
    }

    async fn attempt(&self, msg: &Message, group: &[OutboxRow]) -> Result<(), SendError> {
        let channel_name = match msg.channel {
            Channel::Email => "email",
            Channel::Webhook { .. } => "webhook",
            Channel::Log => "log",
        };
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
        attempts: i64,
    ) -> Delivery {
        let retry = &self.cfg.retry;
        if e.is_transient() && attempts < i64::from(retry.max_attempts) {
            let delay = retry_delay(
                u32::try_from(attempts).unwrap_or(u32::MAX),
                Duration::from_secs(retry.min_delay_seconds),
                Duration::from_secs(retry.max_delay_seconds),
                rand::random::<f64>(),
            );
            tracing::warn!(message_id = %msg.message_id, to = %msg.to_address, attempts, retry_in_s = delay.as_secs(), error = %e, "delivery failed; will retry");
            return Delivery::Retry {
                at: ms(now) + delay.as_millis() as i64,
                error: e.to_string(),
            };
        }
        tracing::error!(message_id = %msg.message_id, to = %msg.to_address, attempts, error = %e, "delivery failed for good; dead-lettered");
        let notices = if group.iter().any(|r| r.kind == MessageKind::DeadLetter) {
            Vec::new() // never a notice about a failed notice
        } else {
            self.dead_letter_notices(group, msg, &e, now, attempts)
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
        attempts: i64,
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
            // Says "refused" after a permanent rejection, "N attempts" once retries ran out.
            permanent => !e.is_transient(),
            attempts => attempts,
            office => minijinja::context!{ name => cat.directory.office.name.clone() },
        };
        let Ok(rendered) = self.engine.renderer().render("dead_letter", &[], &ctx) else {
            return Vec::new();
        };
        let item_json = serde_json::to_string(&items).unwrap_or_else(|_| "[]".into());
        let key = format!("dead:{}", msg.message_id);
        let message = crate::engine::fire::Message {
            key: &key,
            task: None,
            kind: MessageKind::DeadLetter,
            party: &party,
            rendered: &rendered,
            item_json: &item_json,
        };
        crate::engine::fire::to_contacts(&cat, &message, now)
            .into_iter()
            .map(|mut n| {
                n.round_id = group[0].round_id;
                n
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::retry_delay;
    use std::time::Duration;

    #[test]
    fn a_retry_delay_stays_within_min_and_max_whatever_the_jitter() {
        let (min, max) = (Duration::from_secs(30), Duration::from_secs(3600));
        for retry in 1..=40 {
            for jitter in [0.0, 0.25, 0.5, 0.999_999] {
                let d = retry_delay(retry, min, max, jitter);
                assert!(
                    d >= min && d <= max,
                    "retry {retry}, jitter {jitter}: {d:?}"
                );
            }
        }
        assert_eq!(
            retry_delay(1, min, max, 0.0),
            min,
            "the first retry after min"
        );
        assert_eq!(retry_delay(1, min, max, 1.0), 2 * min);
        assert_eq!(retry_delay(3, min, max, 0.0), 4 * min, "doubling");
        assert_eq!(
            retry_delay(30, min, max, 0.0),
            max / 2,
            "spread below the ceiling"
        );
        assert_eq!(retry_delay(30, min, max, 1.0), max);
    }
}
