//! `[[alert]]` tables (where alerts go, how hard to try) and `[incidents]` (the JSONL export and
//! the SQLite store). Webhook URLs, routing keys and HMAC keys are secrets: by reference only.

use std::{collections::HashSet, path::PathBuf, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

use super::{
    Config, ConfigError, GuardianKey, SecretRef, SecretValue, raw::RawIncidents,
    validate::Validator,
};

/// The Events API v2 endpoint a `pagerduty` sink posts to unless `url` says otherwise.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// How urgent an alert is; a sink takes alerts at or above its `min_severity`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    /// Recoveries and notices (a node back, a balance topped up).
    #[default]
    Info,
    Warning,
    Error,
    /// A pause sent or landed, an attack, a guardian that cannot pay for one more pause.
    Critical,
}

impl AlertLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
        }
    }
}

/// Where one `[[alert]]` table sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// Slack incoming webhook.
    Slack,
    /// Discord incoming webhook.
    Discord,
    /// PagerDuty Events API v2.
    PagerDuty,
    /// Any HTTP endpoint; the JSON body is signed with HMAC-SHA256.
    Webhook,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::PagerDuty => "pagerduty",
            Self::Webhook => "webhook",
        }
    }
}

/// One validated `[[alert]]` table.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Unique; shown in logs and counters (never the URL).
    pub name: String,
    /// Its index in the file, for errors (`alert[2].url`).
    pub index: usize,
    pub target: AlertTarget,
    pub min_severity: AlertLevel,
    /// This sink's own queue: when it is full, further alerts to it are dropped and counted.
    pub queue_capacity: usize,
    /// One HTTP attempt's budget.
    pub timeout: Duration,
    /// Attempts per alert, the first included (5xx, 429, timeouts and connection errors retry).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled each retry, with jitter.
    pub backoff: Duration,
    /// Alert when the guardian can pay for fewer than this many pauses at the fee caps.
    pub low_balance_pauses: u64,
}

/// The destination of a sink, its credentials by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertTarget {
    Slack { url: SecretRef },
    Discord { url: SecretRef },
    PagerDuty { routing_key: SecretRef, url: String },
    Webhook { url: SecretRef, secret: SecretRef },
}

impl AlertTarget {
    pub fn kind(&self) -> AlertKind {
        match self {
            Self::Slack { .. } => AlertKind::Slack,
            Self::Discord { .. } => AlertKind::Discord,
            Self::PagerDuty { .. } => AlertKind::PagerDuty,
            Self::Webhook { .. } => AlertKind::Webhook,
        }
    }
}

/// `[[alert]]` as the file has it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlert {
    /// Default: `alert<index>`.
    name: Option<String>,
    kind: AlertKind,
    /// slack / discord / webhook: `env:VAR` or `file:PATH` holding the URL; pagerduty: the
    /// Events API endpoint, plain (default `PAGERDUTY_EVENTS_URL`).
    url: Option<String>,
    /// pagerduty only: the integration's routing key, by reference.
    routing_key: Option<String>,
    /// webhook only: the HMAC-SHA256 key, by reference.
    secret: Option<String>,
    #[serde(default)]
    min_severity: AlertLevel,
    #[serde(default = "default_queue")]
    queue: i64,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: i64,
    #[serde(default = "default_max_attempts")]
    max_attempts: i64,
    #[serde(default = "default_backoff_ms")]
    backoff_ms: i64,
    #[serde(default = "default_low_balance_pauses")]
    low_balance_pauses: i64,
}

fn default_queue() -> i64 {
    256
}
fn default_timeout_ms() -> i64 {
    5_000
}
fn default_max_attempts() -> i64 {
    5
}
fn default_backoff_ms() -> i64 {
    500
}
fn default_low_balance_pauses() -> i64 {
    3
}

/// `alert.queue`: under 1 nothing is queued; above 65,536 a dead endpoint only hides its backlog.
const QUEUE: std::ops::RangeInclusive<u64> = 1..=65_536;
/// `alert.timeout_ms`: under 100 ms no HTTPS endpoint answers; above a minute a dead one stalls
/// every alert queued behind it.
const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=60_000;
const MAX_ATTEMPTS: std::ops::RangeInclusive<u64> = 1..=20;
const BACKOFF_MS: std::ops::RangeInclusive<u64> = 1..=60_000;
const LOW_BALANCE_PAUSES: std::ops::RangeInclusive<u64> = 1..=10_000;

/// Which secret of an `[[alert]]` table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertSecret {
    Url,
    RoutingKey,
    HmacKey,
}

impl AlertSecret {
    fn key(self) -> &'static str {
        match self {
            Self::Url => "url",
            Self::RoutingKey => "routing_key",
            Self::HmacKey => "secret",
        }
    }
}

impl Validator<'_> {
    pub(super) fn alerts(
        &self,
        raw: Vec<RawAlert>,
        guardian: Option<&GuardianKey>,
        relay_auth: Option<&SecretRef>,
    ) -> Result<Vec<AlertConfig>, ConfigError> {
        let mut names = HashSet::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, a) in raw.into_iter().enumerate() {
            let name = a.name.clone().unwrap_or_else(|| format!("alert{i}"));
            if !names.insert(name.clone()) {
                let reason = format!("`{name}` names two alerts; alert names must be unique");
                return Err(self.invalid(&format!("alert[{i}].name"), &reason));
            }
            let target = self.alert_target(i, &a)?;
            for (field, r) in secrets_of(&target) {
                let is_guardian = matches!(guardian, Some(GuardianKey::Raw(g)) if g == r)
                    || matches!(guardian, Some(GuardianKey::Keystore { password, .. }) if password == r);
                if is_guardian || relay_auth == Some(r) {
                    let reason = format!(
                        "{r:?} is also a signing key's reference: an alert credential must be \
                         a separate secret"
                    );
                    return Err(self.invalid(&format!("alert[{i}].{field}"), &reason));
                }
            }
            let key = |k: &str| format!("alert[{i}].{k}");
            out.push(AlertConfig {
                name,
                index: i,
                target,
                min_severity: a.min_severity,
                queue_capacity: self.in_range(
                    &key("queue"),
                    a.queue,
                    &QUEUE,
                    "alerts beyond the queue are dropped and counted; a longer queue only \
                     hides a dead endpoint",
                )? as usize,
                timeout: Duration::from_millis(self.in_range(
                    &key("timeout_ms"),
                    a.timeout_ms,
                    &TIMEOUT_MS,
                    "one attempt's budget: too short for any HTTPS endpoint, or so long a dead \
                     one stalls every alert behind it",
                )?),
                max_attempts: self.in_range(
                    &key("max_attempts"),
                    a.max_attempts,
                    &MAX_ATTEMPTS,
                    "at least the first attempt; more than 20 retries hammer a failing endpoint",
                )? as u32,
                backoff: Duration::from_millis(self.in_range(
                    &key("backoff_ms"),
                    a.backoff_ms,
                    &BACKOFF_MS,
                    "the first retry's delay, doubled each retry",
                )?),
                low_balance_pauses: self.in_range(
                    &key("low_balance_pauses"),
                    a.low_balance_pauses,
                    &LOW_BALANCE_PAUSES,
                    "the number of pauses at the fee caps the guardian must be able to pay",
                )?,
            });
        }
        Ok(out)
    }

    fn alert_target(&self, i: usize, a: &RawAlert) -> Result<AlertTarget, ConfigError> {
        let key = |k: &str| format!("alert[{i}].{k}");
        let secret = |k: &str, v: &Option<String>| -> Result<SecretRef, ConfigError> {
            let Some(v) = v else {
                let reason = format!("a `{}` alert needs `{k}`", a.kind.as_str());
                return Err(self.invalid(&key(k), &reason));
            };
            // A pasted webhook URL carries its credential: refused, and never echoed.
            SecretRef::from_str(v).map_err(|reason| self.invalid(&key(k), &reason))
        };
        let refuse = |k: &str, v: &Option<String>| -> Result<(), ConfigError> {
            match v {
                Some(_) => {
                    let reason = format!("a `{}` alert takes no `{k}`", a.kind.as_str());
                    Err(self.invalid(&key(k), &reason))
                }
                None => Ok(()),
            }
        };
        match a.kind {
            AlertKind::Slack | AlertKind::Discord => {
                refuse("routing_key", &a.routing_key)?;
                refuse("secret", &a.secret)?;
                let url = secret("url", &a.url)?;
                Ok(if a.kind == AlertKind::Slack {
                    AlertTarget::Slack { url }
                } else {
                    AlertTarget::Discord { url }
                })
            }
            AlertKind::PagerDuty => {
                refuse("secret", &a.secret)?;
                let routing_key = secret("routing_key", &a.routing_key)?;
                let url = a.url.clone().unwrap_or_else(|| PAGERDUTY_EVENTS_URL.into());
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(self.invalid(&key("url"), "is not an http(s) URL"));
                }
                Ok(AlertTarget::PagerDuty { routing_key, url })
            }
            AlertKind::Webhook => {
                refuse("routing_key", &a.routing_key)?;
                let url = secret("url", &a.url)?;
                let secret = secret("secret", &a.secret)?;
                if url == secret {
                    let reason = "the HMAC key must not be the URL's own reference";
                    return Err(self.invalid(&key("secret"), reason));
                }
                Ok(AlertTarget::Webhook { url, secret })
            }
        }
    }

    /// `[incidents]`: a JSON-lines export (`path`), a SQLite store (`store`), or both.
    pub(super) fn incidents(
        &self,
        raw: Option<RawIncidents>,
    ) -> Result<(Option<PathBuf>, Option<PathBuf>), ConfigError> {
        let Some(raw) = raw else { return Ok((None, None)) };
        match (&raw.path, &raw.store) {
            (None, None) => {
                Err(self.invalid("incidents", "give `path` (JSON lines), `store` (SQLite) or both"))
            }
            (Some(p), Some(s)) if p == s => Err(self.invalid(
                "incidents.store",
                "is the same file as `incidents.path`: the store is SQLite, the path JSON lines",
            )),
            _ => Ok((raw.path, raw.store)),
        }
    }
}

fn secrets_of(target: &AlertTarget) -> Vec<(&'static str, &SecretRef)> {
    match target {
        AlertTarget::Slack { url } | AlertTarget::Discord { url } => vec![("url", url)],
        AlertTarget::PagerDuty { routing_key, .. } => vec![("routing_key", routing_key)],
        AlertTarget::Webhook { url, secret } => vec![("url", url), ("secret", secret)],
    }
}

impl Config {
    /// Reads one secret of `alert` (`None` when that sink has none of that kind). An unset
    /// variable or unreadable file names the file and the key, `alert[0].url`, never the value.
    pub fn resolve_alert_secret(
        &self,
        alert: &AlertConfig,
        which: AlertSecret,
    ) -> Result<Option<SecretValue>, ConfigError> {
        let reference = match (&alert.target, which) {
            (AlertTarget::Slack { url }, AlertSecret::Url)
            | (AlertTarget::Discord { url }, AlertSecret::Url)
            | (AlertTarget::Webhook { url, .. }, AlertSecret::Url) => url,
            (AlertTarget::PagerDuty { routing_key, .. }, AlertSecret::RoutingKey) => routing_key,
            (AlertTarget::Webhook { secret, .. }, AlertSecret::HmacKey) => secret,
            _ => return Ok(None),
        };
        let key = format!("alert[{}].{}", alert.index, which.key());
        reference
            .resolve()
            .map(Some)
            .map_err(|reason| ConfigError::invalid(&self.file, &key, &reason))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = r#"
[[node]]
url = "ws://127.0.0.1:8545"

[guardian]
key = "env:PREEMPT_GUARDIAN_KEY"

[[protect]]
name = "EthVault"
address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
"#;

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{BASE}\n{extra}"), Path::new("preempt.toml"))
    }

    fn error_of(extra: &str) -> String {
        match parse(extra) {
            Ok(_) => panic!("should be rejected:\n{extra}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_sink_kind_parses_with_defaults() {
        let c = parse(
            r#"
[[alert]]
kind = "slack"
url = "env:SLACK_URL"
[[alert]]
name = "pd"
kind = "pagerduty"
routing_key = "file:/etc/preempt/pd.key"
min_severity = "error"
[[alert]]
kind = "discord"
url = "env:DISCORD_URL"
[[alert]]
kind = "webhook"
url = "env:HOOK_URL"
secret = "env:HOOK_KEY"
queue = 16
timeout_ms = 250
max_attempts = 2
backoff_ms = 10
low_balance_pauses = 7
"#,
        )
        .expect("valid");
        assert_eq!(c.alerts.len(), 4);
        let slack = &c.alerts[0];
        assert_eq!(slack.name, "alert0");
        assert_eq!(slack.target, AlertTarget::Slack { url: SecretRef::Env("SLACK_URL".into()) });
        assert_eq!(slack.min_severity, AlertLevel::Info);
        assert_eq!(slack.queue_capacity, 256);
        assert_eq!(slack.timeout, Duration::from_secs(5));
        assert_eq!(slack.max_attempts, 5);
        assert_eq!(slack.backoff, Duration::from_millis(500));
        assert_eq!(slack.low_balance_pauses, 3);
        let pd = &c.alerts[1];
        assert_eq!(pd.name, "pd");
        assert_eq!(pd.min_severity, AlertLevel::Error);
        assert_eq!(
            pd.target,
            AlertTarget::PagerDuty {
                routing_key: SecretRef::File("/etc/preempt/pd.key".into()),
                url: PAGERDUTY_EVENTS_URL.into()
            }
        );
        let hook = &c.alerts[3];
        assert_eq!(hook.target.kind(), AlertKind::Webhook);
        assert_eq!(
            (hook.queue_capacity, hook.timeout, hook.max_attempts, hook.backoff),
            (16, Duration::from_millis(250), 2, Duration::from_millis(10))
        );
        assert_eq!(hook.low_balance_pauses, 7);
        assert!(c.incidents_store.is_none());
    }

    #[test]
    fn a_pasted_webhook_url_is_refused_without_echoing_it() {
        let url = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX";
        let e = error_of(&format!("[[alert]]\nkind = \"slack\"\nurl = \"{url}\"\n"));
        assert_eq!(
            e,
            "preempt.toml: key `alert[0].url`: secrets are given by reference only: `env:VAR` or \
             `file:PATH`"
        );
        assert!(!e.contains("secretXXXX"));
        let e = error_of(&format!(
            "[[alert]]\nkind = \"webhook\"\nurl = \"env:U\"\nsecret = \"{url}\"\n"
        ));
        assert!(e.starts_with("preempt.toml: key `alert[0].secret`: secrets are given"), "{e}");
    }

    #[test]
    fn each_kind_names_what_it_lacks_and_what_it_does_not_take() {
        assert_eq!(
            error_of("[[alert]]\nkind = \"webhook\"\nurl = \"env:U\"\n"),
            "preempt.toml: key `alert[0].secret`: a `webhook` alert needs `secret`"
        );
        assert_eq!(
            error_of("[[alert]]\nkind = \"pagerduty\"\n"),
            "preempt.toml: key `alert[0].routing_key`: a `pagerduty` alert needs `routing_key`"
        );
        assert_eq!(
            error_of("[[alert]]\nkind = \"slack\"\nurl = \"env:U\"\nsecret = \"env:K\"\n"),
            "preempt.toml: key `alert[0].secret`: a `slack` alert takes no `secret`"
        );
        assert_eq!(
            error_of(
                "[[alert]]\nkind = \"pagerduty\"\nrouting_key = \"env:K\"\nurl = \"ftp://x\"\n"
            ),
            "preempt.toml: key `alert[0].url`: is not an http(s) URL"
        );
        let e = error_of("[[alert]]\nkind = \"sms\"\nurl = \"env:U\"\n");
        assert!(e.contains("key `alert[0].kind`") && e.contains("`slack`"), "{e}");
        let e = error_of("[[alert]]\nkind = \"slack\"\nurl = \"env:U\"\nchannel = \"#x\"\n");
        assert!(e.contains("alert[0]") && e.contains("channel"), "{e}");
    }

    #[test]
    fn limits_and_names_are_checked() {
        let e = error_of("[[alert]]\nkind = \"slack\"\nurl = \"env:U\"\nqueue = 0\n");
        assert!(
            e.starts_with("preempt.toml: key `alert[0].queue`: 0 is outside 1..=65536: "),
            "{e}"
        );
        let e = error_of("[[alert]]\nkind = \"slack\"\nurl = \"env:U\"\ntimeout_ms = 5\n");
        assert!(e.starts_with("preempt.toml: key `alert[0].timeout_ms`: 5 is outside 100..=60000"));
        let e = error_of("[[alert]]\nkind = \"slack\"\nurl = \"env:U\"\nmax_attempts = 0\n");
        assert!(e.starts_with("preempt.toml: key `alert[0].max_attempts`: 0 is outside 1..=20"));
        let e = error_of(
            "[[alert]]\nname = \"a\"\nkind = \"slack\"\nurl = \"env:U\"\n[[alert]]\nname = \"a\"\nkind = \"discord\"\nurl = \"env:V\"\n",
        );
        assert_eq!(
            e,
            "preempt.toml: key `alert[1].name`: `a` names two alerts; alert names must be unique"
        );
    }

    #[test]
    fn an_alert_credential_cannot_be_a_signing_key() {
        let e = error_of(
            "[[alert]]\nkind = \"webhook\"\nurl = \"env:U\"\nsecret = \"env:PREEMPT_GUARDIAN_KEY\"\n",
        );
        assert!(
            e.starts_with("preempt.toml: key `alert[0].secret`: env:PREEMPT_GUARDIAN_KEY is also a signing key's reference"),
            "{e}"
        );
    }

    #[test]
    fn alert_secrets_resolve_naming_the_key_on_failure() {
        let c = parse(
            "[[alert]]\nkind = \"webhook\"\nurl = \"env:PREEMPT_TEST_ALERT_URL_NEVER_SET\"\nsecret = \"env:PREEMPT_TEST_ALERT_KEY_NEVER_SET\"\n",
        )
        .expect("valid");
        let e = c.resolve_alert_secret(&c.alerts[0], AlertSecret::HmacKey).expect_err("unset");
        assert_eq!(
            e.to_string(),
            "preempt.toml: key `alert[0].secret`: environment variable \
             PREEMPT_TEST_ALERT_KEY_NEVER_SET is not set"
        );
        assert!(
            c.resolve_alert_secret(&c.alerts[0], AlertSecret::RoutingKey).expect("none").is_none()
        );
    }

    #[test]
    fn incidents_take_a_path_a_store_or_both_but_not_one_file_for_both() {
        let c = parse("[incidents]\nstore = \"incidents.sqlite\"\n").expect("store alone");
        assert_eq!(c.incidents_store.as_deref(), Some(Path::new("incidents.sqlite")));
        assert!(c.incidents_path.is_none());
        let c = parse("[incidents]\npath = \"i.jsonl\"\nstore = \"i.sqlite\"\n").expect("both");
        assert_eq!(c.incidents_path.as_deref(), Some(Path::new("i.jsonl")));
        assert_eq!(
            error_of("[incidents]\n"),
            "preempt.toml: key `incidents`: give `path` (JSON lines), `store` (SQLite) or both"
        );
        assert!(
            error_of("[incidents]\npath = \"i\"\nstore = \"i\"\n")
                .starts_with("preempt.toml: key `incidents.store`: is the same file")
        );
    }
}
