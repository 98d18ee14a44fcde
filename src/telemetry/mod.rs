//! Metrics: one recorder per guard, the stages' handle structs registered on it at start, served
//! as Prometheus text on `[metrics] listen` and read back as a `Snapshot` for summaries and tests.

mod describe;
mod serve;
mod snapshot;

use std::{fmt, sync::Arc, time::Duration};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

pub use serve::{MetricsServer, ServeError, upkeep_only};
pub use snapshot::{Sample, Snapshot, SnapshotError};

/// Latency buckets in seconds, 10 µs to 10 s: preempt's share sits in the first decade, a node
/// round trip in the middle, a cold fetch or a slow relay at the top.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes (they queue
/// in lock-free blocks until then).
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The guard's metrics: a Prometheus recorder of its own, not the process-global one, so that
/// several guards in one process (the tests) never mix their counts. Cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Telemetry")
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// A label whose value is known at registration (node, destination, contract, rule, stage).
pub type LabelPair = (&'static str, String);

impl Telemetry {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            // Only an empty bucket list is refused; the constant is not empty.
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        // `# HELP` lines; the kind given here does not matter to the exporter.
        for (name, help) in describe::DESCRIPTIONS {
            recorder.describe_counter(
                KeyName::from_const_str(name),
                None,
                SharedString::const_str(help),
            );
        }
        let handle = recorder.handle();
        Self { recorder: Arc::new(recorder), handle }
    }

    fn key(name: &'static str, labels: &[LabelPair]) -> Key {
        Key::from_parts(
            name,
            labels.iter().map(|(k, v)| Label::new(*k, v.clone())).collect::<Vec<_>>(),
        )
    }

    /// Registers (or finds) a counter; done once at start, the handle is what the hot path keeps.
    pub fn counter(&self, name: &'static str, labels: &[LabelPair]) -> Counter {
        self.recorder.register_counter(&Self::key(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, labels: &[LabelPair]) -> Gauge {
        self.recorder.register_gauge(&Self::key(name, labels), &METADATA)
    }

    /// A histogram in seconds, with `LATENCY_BUCKETS`.
    pub fn histogram(&self, name: &'static str, labels: &[LabelPair]) -> Histogram {
        self.recorder.register_histogram(&Self::key(name, labels), &METADATA)
    }

    /// Every metric as Prometheus text (what `/metrics` answers).
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Every metric as numbers: name + labels → value.
    pub fn snapshot(&self) -> Snapshot {
        // Our own rendering is well formed; a parse error would be a bug, shown as no samples.
        Snapshot::parse(&self.render()).unwrap_or_default()
    }

    /// Folds queued histogram samples into buckets; `MetricsServer` runs it on a timer.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// Seconds from microseconds, for the latency histograms (the pipeline measures in µs).
pub fn seconds_of_us(us: f64) -> f64 {
    us / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_a_stage_registers_has_a_help_line() {
        let t = Telemetry::new();
        t.counter("preempt_pauses_sent_total", &[("destination", "anvil".into())]).increment(1);
        assert!(
            t.render().contains("# HELP preempt_pauses_sent_total Pause tx copies"),
            "{}",
            t.render()
        );
    }

    #[test]
    fn two_telemetries_never_share_counts() {
        let (a, b) = (Telemetry::new(), Telemetry::new());
        a.counter("preempt_test_total", &[("node", "n1".into())]).increment(3);
        b.counter("preempt_test_total", &[("node", "n1".into())]).increment(1);
        assert_eq!(a.snapshot().value("preempt_test_total", &[("node", "n1")]), Some(3.0));
        assert_eq!(b.snapshot().value("preempt_test_total", &[("node", "n1")]), Some(1.0));
    }

    #[test]
    fn a_histogram_renders_its_buckets_count_and_sum() {
        let t = Telemetry::new();
        let h = t.histogram("preempt_test_seconds", &[("stage", "picked".into())]);
        h.record(0.000_02);
        h.record(0.3);
        let s = t.snapshot();
        assert_eq!(s.value("preempt_test_seconds_count", &[("stage", "picked")]), Some(2.0));
        assert_eq!(
            s.value("preempt_test_seconds_bucket", &[("stage", "picked"), ("le", "0.000025")]),
            Some(1.0)
        );
        let sum = s.value("preempt_test_seconds_sum", &[("stage", "picked")]).unwrap_or_default();
        assert!((sum - 0.300_02).abs() < 1e-9, "{sum}");
    }
}
