//! One sink: its own bounded queue and task, posting each alert with a per-attempt timeout and
//! retrying 5xx, 429, timeouts and connection errors with exponential backoff and jitter (never
//! other 4xx: the request itself is wrong). Its URL and keys never reach a log.

use std::{sync::Arc, time::Duration};

use serde::Serialize;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::{
    AlertError,
    render::{Alert, clip},
    sign::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature},
};
use crate::config::{AlertConfig, AlertKind, AlertLevel, AlertSecret, AlertTarget, Config};

/// The longest wait between two attempts, whatever the backoff doubles to.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A `Retry-After` longer than this is not waited for; the usual backoff applies.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How much of an error answer is logged.
const ANSWER_EXCERPT: usize = 160;

/// A sink's metrics (`preempt_alerts_*_total{sink}`).
#[derive(Debug)]
pub(crate) struct SinkStats {
    pub(crate) sent: metrics::Counter,
    pub(crate) retried: metrics::Counter,
    pub(crate) failed: metrics::Counter,
    pub(crate) dropped_full: metrics::Counter,
    name: String,
    telemetry: crate::telemetry::Telemetry,
}

/// What a sink's counters read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SinkCounters {
    /// Alerts a destination answered 2xx to.
    pub sent: u64,
    /// Attempts after the first (each 5xx / 429 / timeout / connection error that was retried).
    pub retried: u64,
    /// Alerts given up: a 4xx answer, or every attempt failed.
    pub failed: u64,
    /// Alerts dropped because this sink's queue was full.
    pub dropped_full: u64,
}

impl SinkStats {
    pub(crate) fn new(name: &str, t: &crate::telemetry::Telemetry) -> Self {
        let c = |metric| t.counter(metric, &[("sink", name.to_string())]);
        Self {
            sent: c("preempt_alerts_sent_total"),
            retried: c("preempt_alerts_retried_total"),
            failed: c("preempt_alerts_failed_total"),
            dropped_full: c("preempt_alerts_dropped_total"),
            name: name.to_string(),
            telemetry: t.clone(),
        }
    }

    pub(crate) fn snapshot(&self) -> SinkCounters {
        let s = self.telemetry.snapshot();
        let c = |metric| s.count(metric, &[("sink", self.name.as_str())]);
        SinkCounters {
            sent: c("preempt_alerts_sent_total"),
            retried: c("preempt_alerts_retried_total"),
            failed: c("preempt_alerts_failed_total"),
            dropped_full: c("preempt_alerts_dropped_total"),
        }
    }
}

/// Where and how a sink posts; secrets resolved once at start and wiped on drop.
pub(crate) struct Endpoint {
    kind: AlertKind,
    url: reqwest::Url,
    /// PagerDuty routing key, or the webhook's HMAC key.
    key: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL of a Slack or Discord webhook is its credential: only the host is shown.
        f.debug_struct("Endpoint")
            .field("kind", &self.kind)
            .field("host", &self.url.host_str())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    pub(crate) fn resolve(config: &Config, alert: &AlertConfig) -> Result<Self, AlertError> {
        let secret = |which| -> Result<Option<Zeroizing<String>>, AlertError> {
            Ok(config
                .resolve_alert_secret(alert, which)?
                .map(|v| Zeroizing::new(v.expose().to_string())))
        };
        let (url, key) = match &alert.target {
            AlertTarget::PagerDuty { url, .. } => {
                (Zeroizing::new(url.clone()), secret(AlertSecret::RoutingKey)?)
            }
            AlertTarget::Webhook { .. } => {
                (secret(AlertSecret::Url)?.unwrap_or_default(), secret(AlertSecret::HmacKey)?)
            }
            AlertTarget::Slack { .. } | AlertTarget::Discord { .. } => {
                (secret(AlertSecret::Url)?.unwrap_or_default(), None)
            }
        };
        let bad_url = || AlertError::Url {
            file: config.file.clone(),
            key: format!("alert[{}].url", alert.index),
        };
        let url = reqwest::Url::parse(url.trim()).map_err(|_| bad_url())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad_url());
        }
        Ok(Self { kind: alert.target.kind(), url, key })
    }
}

/// A running sink as the router sees it.
#[derive(Debug)]
pub(crate) struct SinkHandle {
    pub(crate) min_severity: AlertLevel,
    pub(crate) low_balance_pauses: u64,
    pub(crate) queue: mpsc::Sender<Arc<Alert>>,
    pub(crate) stats: Arc<SinkStats>,
}

impl SinkHandle {
    /// Queues without waiting; a full queue drops the alert and counts it.
    pub(crate) fn offer(&self, alert: Arc<Alert>) {
        if alert.level < self.min_severity {
            return;
        }
        if self.queue.try_send(alert).is_err() {
            self.stats.dropped_full.increment(1);
        }
    }
}

/// The sink's task: one alert at a time, in order.
#[derive(Debug)]
pub(crate) struct SinkTask {
    pub(crate) name: String,
    pub(crate) endpoint: Endpoint,
    pub(crate) client: reqwest::Client,
    pub(crate) timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Duration,
    pub(crate) stats: Arc<SinkStats>,
    pub(crate) jitter: Jitter,
}

/// How one attempt ended.
#[derive(Debug)]
enum Attempt {
    Delivered,
    /// 5xx, 429, timeout, connection error; with the server's `Retry-After` when it gave one.
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// Any other answer: retrying the same request cannot help.
    GiveUp {
        why: String,
    },
}

impl SinkTask {
    pub(crate) async fn run(mut self, mut queue: mpsc::Receiver<Arc<Alert>>) {
        while let Some(alert) = queue.recv().await {
            self.deliver(&alert).await;
        }
    }

    async fn deliver(&mut self, alert: &Alert) {
        let body = match self.body(alert) {
            Some(b) => b,
            None => {
                self.stats.failed.increment(1);
                tracing::error!(sink = %self.name, kind = alert.kind, "alert could not be encoded");
                return;
            }
        };
        for attempt in 1..=self.max_attempts {
            let result = self.attempt(alert, &body).await;
            match result {
                Attempt::Delivered => {
                    self.stats.sent.increment(1);
                    return;
                }
                Attempt::GiveUp { why } => {
                    self.stats.failed.increment(1);
                    tracing::warn!(sink = %self.name, kind = alert.kind, id = %alert.id, %why, "alert refused; not retried");
                    return;
                }
                Attempt::Retry { why, after } if attempt < self.max_attempts => {
                    self.stats.retried.increment(1);
                    let wait = self.jitter.backoff(self.backoff, attempt);
                    let wait =
                        after.filter(|a| *a <= MAX_RETRY_AFTER).map_or(wait, |a| a.max(wait));
                    tracing::debug!(sink = %self.name, id = %alert.id, attempt, %why, wait_ms = wait.as_millis() as u64, "alert not delivered; retrying");
                    tokio::time::sleep(wait).await;
                }
                Attempt::Retry { why, .. } => {
                    self.stats.failed.increment(1);
                    tracing::warn!(sink = %self.name, kind = alert.kind, id = %alert.id, attempts = attempt, %why, "alert not delivered; given up");
                    return;
                }
            }
        }
    }

    fn body(&self, alert: &Alert) -> Option<Vec<u8>> {
        let value = match self.endpoint.kind {
            AlertKind::Slack => alert.slack_body(),
            AlertKind::Discord => alert.discord_body(),
            AlertKind::PagerDuty => {
                alert.pagerduty_body(self.endpoint.key.as_deref().map_or("", |k| k.as_str()))
            }
            AlertKind::Webhook => alert.webhook_body(),
        };
        serde_json::to_vec(&value).ok()
    }

    async fn attempt(&self, alert: &Alert, body: &[u8]) -> Attempt {
        let mut request = self
            .client
            .post(self.endpoint.url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, alert.kind)
            .header(DELIVERY_HEADER, &alert.id);
        if self.endpoint.kind == AlertKind::Webhook {
            // Signed per attempt: a retry carries a fresh timestamp a receiver accepts.
            let now = crate::incident::unix_ms() / 1000;
            let key = self.endpoint.key.as_deref().map_or("", |k| k.as_str());
            let Some(sig) = signature(key.as_bytes(), now, body) else {
                return Attempt::GiveUp { why: "the HMAC key was refused".into() };
            };
            request =
                request.header(TIMESTAMP_HEADER, now.to_string()).header(SIGNATURE_HEADER, sig);
        }
        let sent = tokio::time::timeout(self.timeout, request.body(body.to_vec()).send()).await;
        let response = match sent {
            Err(_) => {
                return Attempt::Retry {
                    why: format!("no answer within {:?}", self.timeout),
                    after: None,
                };
            }
            Ok(Err(e)) => {
                // reqwest's message names the URL, which for a webhook is the credential.
                let e = e.without_url();
                let why = if e.is_timeout() {
                    format!("no answer within {:?}", self.timeout)
                } else {
                    error_chain(&e)
                };
                return Attempt::Retry { why, after: None };
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Delivered;
        }
        let after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let answer = tokio::time::timeout(self.timeout, response.bytes()).await;
        let text = match answer {
            Ok(Ok(b)) => excerpt(&b),
            _ => String::new(),
        };
        let why = format!("HTTP {}: {text}", status.as_u16());
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Attempt::Retry { why, after }
        } else {
            Attempt::GiveUp { why }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An answer's first characters, control characters shown as `?` (it goes to a log line).
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    clip(text.trim(), ANSWER_EXCERPT)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Spreads retries of many alerts (and many preempt instances) apart: xorshift, seeded per
/// sink; no need for a cryptographic generator.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// The wait after failed attempt `attempt` (1-based): `base × 2^(attempt-1)`, capped at
    /// `MAX_BACKOFF`, then a uniform pick in its upper half ("equal jitter": never less than
    /// half the backoff, so a flapping endpoint is not hammered).
    pub(crate) fn backoff(&mut self, base: Duration, attempt: u32) -> Duration {
        let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let full = exp.min(MAX_BACKOFF).as_micros() as u64;
        let half = full / 2;
        let spread = if half == 0 { 0 } else { self.next() % (half + 1) };
        Duration::from_micros(half + spread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_stays_in_its_upper_half_and_is_capped() {
        let mut j = Jitter::new(42);
        let base = Duration::from_millis(100);
        for attempt in 1..=12 {
            let full = (base * (1 << (attempt - 1))).min(MAX_BACKOFF);
            for _ in 0..50 {
                let w = j.backoff(base, attempt);
                assert!(w >= full / 2 && w <= full, "attempt {attempt}: {w:?} vs {full:?}");
            }
        }
        // Jitter: two sinks with different seeds do not retry in lockstep.
        let (mut a, mut b) = (Jitter::new(1), Jitter::new(2));
        let same = (0..20).filter(|_| a.backoff(base, 3) == b.backoff(base, 3)).count();
        assert!(same < 20);
        assert_eq!(Jitter::new(7).backoff(base, u32::MAX), {
            let mut k = Jitter::new(7);
            k.backoff(base, u32::MAX)
        });
        assert!(Jitter::new(7).backoff(base, u32::MAX) <= MAX_BACKOFF);
    }

    #[test]
    fn excerpt_is_short_and_has_no_control_characters() {
        let long = format!("bad\r\n\x1b[31m{}", "x".repeat(500));
        let e = excerpt(long.as_bytes());
        assert!(e.chars().count() <= ANSWER_EXCERPT);
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }
}
