//! Alerts: findings, pauses (sent, landed, failed), node loss and recovery, and a guardian too
//! poor to pause, told to Slack, Discord, PagerDuty and signed webhooks from tasks of their own;
//! `AlertHub::notify` never waits, and nothing it sends carries a key.

mod event;
mod render;
mod router;
mod sign;
mod sink;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Serialize;
use thiserror::Error;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use event::{AlertEvent, FailedAlert, FindingAlert, LandedAlert, PauseAlert};
pub use sign::{
    DEFAULT_TOLERANCE_SECS, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, SignatureError,
    TIMESTAMP_HEADER, signature, verify,
};
pub use sink::SinkCounters;

use crate::{
    config::{Config, ConfigError},
    telemetry::Telemetry,
};
use router::Router;
use sink::{Endpoint, Jitter, SinkHandle, SinkStats, SinkTask};

/// Events waiting for the router. The router never waits on a sink, so this fills only if its
/// task is starved; a burst beyond it is dropped and counted, never waited for.
pub const HUB_QUEUE: usize = 1_024;

#[derive(Debug, Error)]
pub enum AlertError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The resolved secret is not a URL; the message never shows it.
    #[error("{}: key `{key}`: the secret it names is not an http(s) URL", file.display())]
    Url { file: PathBuf, key: String },
    #[error("alert `{name}`: cannot build an HTTP client: {reason}")]
    Client { name: String, reason: String },
    #[error("alerts need a tokio runtime to run their tasks")]
    NoRuntime,
}

/// The hub's own metrics (`preempt_alerts_{queued,dropped,suppressed}_total`).
#[derive(Debug)]
pub(crate) struct HubStats {
    queued: metrics::Counter,
    dropped_full: metrics::Counter,
    pub(crate) suppressed: metrics::Counter,
    telemetry: Telemetry,
}

impl HubStats {
    fn new(t: &Telemetry) -> Self {
        let hub = || [("sink", "hub".to_string())];
        Self {
            queued: t.counter("preempt_alerts_queued_total", &[]),
            dropped_full: t.counter("preempt_alerts_dropped_total", &hub()),
            suppressed: t.counter("preempt_alerts_suppressed_total", &[]),
            telemetry: t.clone(),
        }
    }
}

/// Every alert counter at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlertCounters {
    /// Events `notify` queued.
    pub queued: u64,
    /// Events `notify` dropped: the hub's queue was full (or the hub was closed).
    pub dropped_full: u64,
    /// Events that repeated one already alerted (same finding, node already down or back).
    pub suppressed: u64,
    /// Each sink's counters, in config order.
    pub sinks: Vec<(String, SinkCounters)>,
}

impl AlertCounters {
    pub fn sink(&self, name: &str) -> Option<SinkCounters> {
        self.sinks.iter().find(|(n, _)| n == name).map(|(_, c)| *c)
    }
}

/// The handle the rest of preempt holds; cheap to clone. With no `[[alert]]` configured every
/// call is a no-op.
#[derive(Debug, Clone)]
pub struct AlertHub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    tx: Option<mpsc::Sender<AlertEvent>>,
    stats: Arc<HubStats>,
    sinks: Vec<(String, Arc<SinkStats>)>,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl AlertHub {
    /// A hub that sends nothing.
    pub fn disabled() -> Self {
        Self {
            inner: Arc::new(HubInner {
                tx: None,
                stats: Arc::new(HubStats::new(&Telemetry::new())),
                sinks: Vec::new(),
                stop: CancellationToken::new(),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Resolves every sink's secrets (an error names the file and key, never the value) and
    /// starts the router and one task per sink on the current tokio runtime.
    pub fn start(config: &Config) -> Result<Self, AlertError> {
        Self::start_with_queue(config, HUB_QUEUE)
    }

    /// As `start`, with the hub's queue holding `capacity` events.
    pub fn start_with_queue(config: &Config, capacity: usize) -> Result<Self, AlertError> {
        Self::start_metered(config, capacity, &Telemetry::new())
    }

    /// As `start_with_queue`, counting on the guard's metrics.
    pub fn start_metered(
        config: &Config,
        capacity: usize,
        telemetry: &Telemetry,
    ) -> Result<Self, AlertError> {
        if config.alerts.is_empty() {
            return Ok(Self::disabled());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AlertError::NoRuntime)?;
        let mut tasks = Vec::new();
        let mut handles = Vec::new();
        let mut sinks = Vec::new();
        for (i, a) in config.alerts.iter().enumerate() {
            let endpoint = Endpoint::resolve(config, a)?;
            let client = reqwest::Client::builder()
                .connect_timeout(a.timeout)
                .pool_idle_timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| AlertError::Client { name: a.name.clone(), reason: e.to_string() })?;
            let stats = Arc::new(SinkStats::new(&a.name, telemetry));
            let (queue, rx) = mpsc::channel(a.queue_capacity);
            let seed = crate::incident::unix_ms() ^ ((i as u64 + 1) << 32);
            let task = SinkTask {
                name: a.name.clone(),
                endpoint,
                client,
                timeout: a.timeout,
                max_attempts: a.max_attempts,
                backoff: a.backoff,
                stats: Arc::clone(&stats),
                jitter: Jitter::new(seed),
            };
            tasks.push(runtime.spawn(task.run(rx)));
            handles.push(SinkHandle {
                min_severity: a.min_severity,
                low_balance_pauses: a.low_balance_pauses,
                queue,
                stats: Arc::clone(&stats),
            });
            sinks.push((a.name.clone(), stats));
        }
        let stats = Arc::new(HubStats::new(telemetry));
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stop = CancellationToken::new();
        let router = Router::new(handles, Arc::clone(&stats));
        tasks.push(runtime.spawn(router.run(rx, stop.clone())));
        tracing::info!(
            sinks = ?sinks.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            "alerts armed"
        );
        Ok(Self {
            inner: Arc::new(HubInner {
                tx: Some(tx),
                stats,
                sinks,
                stop,
                tasks: Mutex::new(tasks),
            }),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.tx.is_some()
    }

    /// Hands `event` to the alert task without waiting: from any thread, inside a runtime or
    /// not. A full queue drops it and counts it (`dropped_full`).
    pub fn notify(&self, event: AlertEvent) {
        let Some(tx) = &self.inner.tx else { return };
        let counter = match tx.try_send(event) {
            Ok(()) => &self.inner.stats.queued,
            Err(_) => &self.inner.stats.dropped_full,
        };
        counter.increment(1);
    }

    pub fn counters(&self) -> AlertCounters {
        let s = self.inner.stats.telemetry.snapshot();
        AlertCounters {
            queued: s.count("preempt_alerts_queued_total", &[]),
            dropped_full: s.count("preempt_alerts_dropped_total", &[("sink", "hub")]),
            suppressed: s.count("preempt_alerts_suppressed_total", &[]),
            sinks: self.inner.sinks.iter().map(|(n, st)| (n.clone(), st.snapshot())).collect(),
        }
    }

    /// At shutdown: routes what is queued, lets each sink deliver what it holds within
    /// `budget`, then stops whatever is still waiting on an endpoint.
    pub async fn close(&self, budget: Duration) {
        self.inner.stop.cancel();
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let deadline = tokio::time::Instant::now() + budget;
        for mut t in tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                t.abort();
            }
        }
    }
}
