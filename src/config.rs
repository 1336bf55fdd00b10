//! `config/yanzhen.toml`: where the directory, calendar and workflows are, the time zone
//! and the database.

use crate::core::diagnostic::{Diagnostics, Loc};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The daemon's configuration. Relative paths are resolved against the directory the
/// command runs in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Default IANA time zone for workflows.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Folder of workflow files (`*.yaml`).
    #[serde(default = "default_workflows")]
    pub workflows_dir: PathBuf,
    /// The directory file.
    #[serde(default = "default_directory")]
    pub directory: PathBuf,
    /// Folder of holiday calendar files (`YYYY.json`).
    #[serde(default = "default_calendar")]
    pub calendar_dir: PathBuf,
    /// Database settings.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// How notifications are delivered.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// The HTTP server (API, console, branch links).
    #[serde(default)]
    pub http: HttpConfig,
    /// The reserve pool (后备干部库).
    #[serde(default)]
    pub pool: PoolConfig,
    /// The weekly 通报 (`[weekly_report]`, off by default).
    #[serde(default)]
    pub weekly_report: WeeklyReportConfig,
    /// Where handed-in files are kept (`[files]`).
    #[serde(default)]
    pub files: crate::files::FilesConfig,
    /// No longer used: `yanzhen reload` asks the daemons through the database. Accepted so
    /// that an older config still loads; `validate` and `serve` warn about it.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
}

/// The HTTP server: where it listens and the limits that keep slow or greedy clients from
/// holding it (read once, when the server starts).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080`; empty disables the server.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Seconds a client has to send a request's headers, counted from the connection's
    /// opening or the end of its previous response; then the connection is closed. This is
    /// also how long a kept-alive connection may sit idle.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_seconds: u64,
    /// Seconds one request may take, reading its body included; then 408.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// Seconds one hand-in (a branch's submit with its files) may take, its upload and its
    /// wait for a slot included; then 408. Hand-ins have their own, longer limit because a
    /// branch on a slow line needs minutes for 10 MB.
    #[serde(default = "default_upload_timeout")]
    pub upload_timeout_seconds: u64,
    /// Seconds a hand-in's upload may send nothing; then it is cut off and nothing of it is
    /// kept, so a stalled client does not hold its slot for the whole `upload_timeout_seconds`.
    #[serde(default = "default_upload_idle")]
    pub upload_idle_seconds: u64,
    /// Hand-ins read at once; further ones wait, their bodies unread, until one ends. This
    /// bounds the memory uploads take (each holds a few hundred KiB of buffers while it streams).
    #[serde(default = "default_max_concurrent_uploads")]
    pub max_concurrent_uploads: usize,
    /// Open connections at most; further ones wait in the listen queue until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections at most from one client address (a trusted proxy is exempt); a
    /// further one is closed at once, so one address cannot fill `max_connections`.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Largest request body in bytes (JSON bodies, console forms, editor drafts); a larger
    /// one is refused with 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Branch pages behind signed links (`/b/...`): requests per minute from one client
    /// address, once its burst is spent; more get 429 with `Retry-After`.
    #[serde(default = "default_branch_per_minute")]
    pub branch_requests_per_minute: u32,
    /// Branch pages: requests one client address may make at once before the per-minute
    /// rate applies.
    #[serde(default = "default_branch_burst")]
    pub branch_burst: u32,
    /// Reverse proxies (their addresses) whose `X-Forwarded-For` names the client, for the
    /// per-address limit; from any other peer the header is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Minutes a console session lasts without being used; then its user signs in again.
    #[serde(default = "default_session_idle_minutes")]
    pub session_idle_minutes: u64,
    /// Mark the session cookie `Secure` on every response (the server is reached over
    /// https). Without it the cookie is `Secure` when a trusted proxy says
    /// `X-Forwarded-Proto: https`.
    #[serde(default)]
    pub secure_cookies: bool,
    /// Console sign-in attempts per minute from one client address, once its burst is
    /// spent; more get 429 with `Retry-After`.
    #[serde(default = "default_login_per_minute")]
    pub login_attempts_per_minute: u32,
    /// Console sign-in attempts one client address may make at once before the per-minute
    /// rate applies.
    #[serde(default = "default_login_burst")]
    pub login_burst: u32,
    /// Minutes a branch may undo marking a task done through its link.
    #[serde(default = "default_branch_undo_minutes")]
    pub branch_undo_minutes: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: default_bind(),
            header_read_timeout_seconds: default_header_read_timeout(),
            request_timeout_seconds: default_request_timeout(),
            upload_timeout_seconds: default_upload_timeout(),
            upload_idle_seconds: default_upload_idle(),
            max_concurrent_uploads: default_max_concurrent_uploads(),
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            max_body_bytes: default_max_body_bytes(),
            branch_requests_per_minute: default_branch_per_minute(),
            branch_burst: default_branch_burst(),
            trusted_proxies: Vec::new(),
            session_idle_minutes: default_session_idle_minutes(),
            secure_cookies: false,
            login_attempts_per_minute: default_login_per_minute(),
            login_burst: default_login_burst(),
            branch_undo_minutes: default_branch_undo_minutes(),
        }
    }
}

impl HttpConfig {
    /// The settings that must not be zero, by name, with their values.
    fn positive_settings(&self) -> [(&'static str, u64); 13] {
        [
            (
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
            ("request_timeout_seconds", self.request_timeout_seconds),
            ("upload_timeout_seconds", self.upload_timeout_seconds),
            ("upload_idle_seconds", self.upload_idle_seconds),
            ("max_concurrent_uploads", self.max_concurrent_uploads as u64),
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
            ("max_body_bytes", self.max_body_bytes as u64),
            (
                "branch_requests_per_minute",
                u64::from(self.branch_requests_per_minute),
            ),
            ("branch_burst", u64::from(self.branch_burst)),
            ("session_idle_minutes", self.session_idle_minutes),
            (
                "login_attempts_per_minute",
                u64::from(self.login_attempts_per_minute),
            ),
            ("login_burst", u64::from(self.login_burst)),
        ]
    }
}

fn default_bind() -> String {
    "127.0.0.1:8080".into()
}
fn default_header_read_timeout() -> u64 {
    10
}
fn default_request_timeout() -> u64 {
    30
}
fn default_upload_timeout() -> u64 {
    900
}
fn default_upload_idle() -> u64 {
    60
}
fn default_max_concurrent_uploads() -> usize {
    16
}
fn default_max_connections() -> usize {
    512
}
fn default_max_connections_per_address() -> usize {
    64
}
fn default_max_body_bytes() -> usize {
    256 * 1024
}
fn default_branch_per_minute() -> u32 {
    60
}
fn default_branch_burst() -> u32 {
    20
}
fn default_session_idle_minutes() -> u64 {
    12 * 60
}
fn default_login_per_minute() -> u32 {
    5
}
fn default_login_burst() -> u32 {
    5
}
fn default_branch_undo_minutes() -> u64 {
    10
}

/// Delivery of notifications.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `log`: write every message to the log instead of sending it (dry run, the shipped
    /// default); `deliver`: send by email and webhooks.
    #[serde(default)]
    pub mode: DeliveryMode,
    /// Sender of emails, e.g. `清水街道党工委组织办 <noreply@example.gov.cn>`.
    #[serde(default = "default_from")]
    pub from: String,
    /// Base URL of the web console, for links in messages (e.g. `https://yanzhen.example.gov.cn`).
    #[serde(default)]
    pub link_base: Option<String>,
    /// Directory role told when a message is dead-lettered, and weekly from 1 November
    /// while next year's holiday file is missing (the office role).
    #[serde(default = "default_dead_letter_role")]
    pub dead_letter_role: String,
    /// SMTP server; required for email in `deliver` mode.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// Webhook HTTP settings.
    #[serde(default)]
    pub webhook: WebhookConfig,
    /// Messages per minute per channel (`email`, `webhook`); absent means unlimited.
    #[serde(default)]
    pub rate_limits: std::collections::BTreeMap<String, u32>,
    /// Retries of transient failures.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Minutes the first reminder (or escalation) of a recipient in a clock hour waits for
    /// others to merge into one digest, never past the end of that hour (0 to 60; 0 merges
    /// only what is due together).
    #[serde(default = "default_digest_window")]
    pub digest_window_minutes: u32,
}

/// Dry run or real delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// Log instead of sending.
    #[default]
    Log,
    /// Send.
    Deliver,
}

/// An SMTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name.
    pub host: String,
    /// Port (default 25 for `none`, 587 for `starttls`, 465 for `tls`).
    #[serde(default)]
    pub port: Option<u16>,
    /// `none` (plain, local relays and tests), `starttls` or `tls`.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// Login user name, if the server needs one.
    #[serde(default)]
    pub username: Option<String>,
    /// Name of the environment variable holding the password (never the password itself).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Seconds allowed for one whole send (connect to end of DATA).
    #[serde(default = "default_smtp_timeout")]
    pub timeout_seconds: u64,
    /// Pooled connections.
    #[serde(default = "default_pool")]
    pub pool_size: u32,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain text.
    #[default]
    None,
    /// STARTTLS required.
    Starttls,
    /// Implicit TLS.
    Tls,
}

/// Webhook HTTP settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Seconds allowed for one POST.
    #[serde(default = "default_webhook_timeout")]
    pub timeout_seconds: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout_seconds: default_webhook_timeout(),
        }
    }
}

/// Exponential backoff with jitter for transient failures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts before a message is dead-lettered.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay, seconds.
    #[serde(default = "default_min_delay")]
    pub min_delay_seconds: u64,
    /// Longest retry delay, seconds: a ceiling, jitter included.
    #[serde(default = "default_max_delay")]
    pub max_delay_seconds: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: default_attempts(),
            min_delay_seconds: default_min_delay(),
            max_delay_seconds: default_max_delay(),
        }
    }
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            mode: DeliveryMode::default(),
            from: default_from(),
            link_base: None,
            dead_letter_role: default_dead_letter_role(),
            smtp: None,
            webhook: WebhookConfig::default(),
            rate_limits: Default::default(),
            retry: RetryConfig::default(),
            digest_window_minutes: default_digest_window(),
        }
    }
}

fn default_from() -> String {
    "yanzhen <noreply@localhost>".into()
}
fn default_dead_letter_role() -> String {
    "organization_office".into()
}
fn default_smtp_timeout() -> u64 {
    30
}
fn default_pool() -> u32 {
    4
}
fn default_webhook_timeout() -> u64 {
    10
}
fn default_attempts() -> u32 {
    8
}
fn default_min_delay() -> u64 {
    30
}
fn default_max_delay() -> u64 {
    3600
}
fn default_digest_window() -> u32 {
    15
}

/// Where state is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://...`; `YANZHEN_DATABASE_URL` overrides it.
    #[serde(default = "default_db")]
    pub url: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: default_db() }
    }
}

fn default_tz() -> String {
    "Asia/Shanghai".into()
}
fn default_workflows() -> PathBuf {
    "workflows".into()
}
fn default_directory() -> PathBuf {
    "config/directory.yaml".into()
}
fn default_calendar() -> PathBuf {
    "config/calendar".into()
}
fn default_db() -> String {
    "sqlite://data/yanzhen.db".into()
}

/// The reserve pool: what the office calls things.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The names of the four tiers (梯队), first to fourth; default 第一梯队 … 第四梯队
    /// (seed 001 says 第一级梯队 …).
    #[serde(default)]
    pub tier_names: Option<[String; 4]>,
    /// The seeds' rules that `pool check` checks (`[pool.rules]`).
    #[serde(default)]
    pub rules: crate::core::pool_check::PoolRules,
}

impl PoolConfig {
    /// The tier names in use.
    pub fn tiers(&self) -> crate::core::pool::TierNames {
        match &self.tier_names {
            Some(names) => crate::core::pool::TierNames(names.clone()),
            None => crate::core::pool::TierNames::default(),
        }
    }
}

/// The weekly 通报 to every branch and the committee head: when it goes out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyReportConfig {
    /// Send it (off unless set).
    #[serde(default)]
    pub enabled: bool,
    /// Day of the week, 1 (Monday) to 7 (Sunday).
    #[serde(default = "default_weekly_day")]
    pub weekday: u32,
    /// Local hour, 0 to 23.
    #[serde(default = "default_weekly_hour")]
    pub hour: u32,
    /// The role that receives it besides the branches (the committee head).
    #[serde(default = "default_head_role")]
    pub head_role: String,
}

fn default_weekly_day() -> u32 {
    1
}

fn default_weekly_hour() -> u32 {
    9
}

fn default_head_role() -> String {
    "committee_head".into()
}

impl Default for WeeklyReportConfig {
    fn default() -> Self {
        WeeklyReportConfig {
            enabled: false,
            weekday: default_weekly_day(),
            hour: default_weekly_hour(),
            head_role: default_head_role(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timezone: default_tz(),
            workflows_dir: default_workflows(),
            directory: default_directory(),
            calendar_dir: default_calendar(),
            database: DatabaseConfig::default(),
            notify: NotifyConfig::default(),
            http: HttpConfig::default(),
            pool: PoolConfig::default(),
            weekly_report: WeeklyReportConfig::default(),
            files: crate::files::FilesConfig::default(),
            pid_file: None,
        }
    }
}

impl Config {
    /// Parse TOML text; problems carry line and column.
    pub fn parse(text: &str, diags: &mut Diagnostics) -> Option<Config> {
        match toml::from_str::<Config>(text) {
            Ok(c) => {
                if c.timezone.parse::<chrono_tz::Tz>().is_err() {
                    diags.error(
                        "invalid-value",
                        locate(text, text.find("timezone").unwrap_or(0)),
                        format!("unknown time zone `{}`", c.timezone),
                        Some("use an IANA name such as `Asia/Shanghai`".into()),
                    );
                    return None;
                }
                if let Some((key, _)) = c.http.positive_settings().iter().find(|(_, v)| *v == 0) {
                    diags.error(
                        "invalid-value",
                        key_loc(text, &["http", key]),
                        format!("[http] {key} must be at least 1"),
                        Some("leave it out for the default".into()),
                    );
                    return None;
                }
                Some(c)
            }
            Err(e) => {
                let loc = e.span().map(|s| locate(text, s.start)).unwrap_or_default();
                diags.error(
                    "invalid-config",
                    loc,
                    e.message().to_string(),
                    Some("see the comments in the shipped config/yanzhen.toml".into()),
                );
                None
            }
        }
    }

    /// Read and parse a config file; a missing file yields the defaults.
    pub fn load(path: &Path, diags: &mut Diagnostics) -> Option<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, diags),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Config::default()),
            Err(e) => {
                diags.error(
                    "io",
                    Loc::default(),
                    format!("cannot read: {e}"),
                    Some("check that the file is readable and holds UTF-8 text".into()),
                );
                None
            }
        }
    }

    /// The default time zone.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai)
    }
}

/// Line and column of the setting at `path` (e.g. `["notify", "rate_limits", "email"]`) in
/// a TOML text: its key, or the nearest enclosing key or table that is there, else the
/// file's start.
pub fn key_loc(text: &str, path: &[&str]) -> Loc {
    use toml::de::{DeTable, DeValue};
    let start = Loc { line: 1, column: 1 };
    let Ok(root) = DeTable::parse(text) else {
        return start;
    };
    let mut table = root.get_ref();
    let mut found = None;
    for key in path {
        let Some((k, v)) = table.get_key_value(*key) else {
            break;
        };
        found = Some(k.span().start);
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    found.map(|o| locate(text, o)).unwrap_or(start)
}

/// Line and column of a byte offset.
pub fn locate(text: &str, offset: usize) -> Loc {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u64 + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u64
        + 1;
    Loc { line, column: col }
}
