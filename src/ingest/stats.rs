//! Ingest metrics: the stage's totals and one handle set per node, registered once (labels
//! resolved then), so that nothing is lost without a number showing it. The `*Counts` are those
//! numbers read back from the recorder, for the shutdown summary and tests.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use metrics::{Counter, Gauge};
use serde::Serialize;

use crate::telemetry::{Snapshot, Telemetry};

/// The stage's totals (every node together) and the per-node handles.
#[derive(Debug)]
pub struct IngestStats {
    /// Verified txs offered to the router (any node, any path).
    pub received: Counter,
    /// Offered again after a first sight (same computed hash).
    pub duplicates: Counter,
    /// Plain transfers to accounts without code: they run no code, so they are not simulated.
    pub filtered: Counter,
    pub queued_protected: Counter,
    pub queued_suspicious: Counter,
    pub queued_other: Counter,
    /// Not queued because its lane was full: forgotten by the seen-set, so the next pool
    /// reconciliation offers it again. Never a tx of the `Protected` lane.
    pub deferred: Counter,
    /// Txs parked until the code of the account they call was known.
    pub classified: Counter,
    /// Parked txs routed as `Other` because the code fetch failed or took too long.
    pub classify_timeouts: Counter,
    /// Txs calling code nobody had looked at, whose pre-state trace ingest started itself.
    pub traced_ahead: Counter,
    nodes: Mutex<Vec<Arc<NodeIngestStats>>>,
    heads: Arc<HeadBoard>,
    telemetry: Telemetry,
}

/// Every node's head, to tell each how far it is behind the best one.
#[derive(Debug, Default)]
struct HeadBoard {
    nodes: Mutex<Vec<(Arc<AtomicU64>, Gauge)>>,
}

impl HeadBoard {
    /// Once per head per node: every node's lag moves when the best head does.
    fn update(&self) {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let best = nodes.iter().map(|(h, _)| h.load(Ordering::Relaxed)).max().unwrap_or_default();
        for (head, lag) in nodes.iter() {
            lag.set(best.saturating_sub(head.load(Ordering::Relaxed)) as f64);
        }
    }
}

/// One node connection's handles.
#[derive(Debug)]
pub struct NodeIngestStats {
    pub node: Arc<str>,
    /// Pending-tx notifications read off the subscription (bodies or bare hashes).
    pub received: Counter,
    /// Bodies whose computed hash, recovered signer and chain id checked out (any path).
    pub verified: Counter,
    /// Bodies whose claimed hash or sender disagreed with the signed bytes, with a bad
    /// signature, or for another chain; dropped.
    pub forged: Counter,
    /// Frames that were not JSON, binary, of the wrong shape or for no subscription; skipped.
    pub bad_frames: Counter,
    /// Verified txs already seen (from this node or another).
    pub duplicates: Counter,
    /// Txs this node delivered first that run no code (recorded, not simulated).
    pub filtered: Counter,
    /// Txs this node delivered first that found their lane full (re-offered by reconciliation).
    pub dropped: Counter,
    /// Txs this node was the first to deliver through its subscription.
    pub from_subscription: Counter,
    /// Txs this node was the first to deliver through pool reconciliation (the feed missed them).
    pub recovered: Counter,
    /// Sessions that were connected and ended other than by shutdown.
    pub reconnects: Counter,
    /// Connection attempts that failed (node down, refused, timed out).
    pub connect_failures: Counter,
    /// Requests for a tx body or code that failed or found nothing.
    pub fetch_failures: Counter,
    pub heads: Counter,
    /// 1 while a session is subscribed, 0 otherwise.
    pub connected: Gauge,
    head_block: Gauge,
    head_at: Gauge,
    /// The highest head seen, for the lag (not a metric: the board reads it).
    head_number: Arc<AtomicU64>,
    heads_board: Arc<HeadBoard>,
    /// Forged txs seen, for the first-one warning and the event's total (not a metric).
    pub(super) forged_seen: AtomicU64,
    /// Unix milliseconds of the last `NodeEvent::Forged` sent (they are rate-limited).
    pub(super) last_forged_event_ms: AtomicU64,
}

impl NodeIngestStats {
    fn new(node: Arc<str>, t: &Telemetry, board: &Arc<HeadBoard>) -> Self {
        let l = || [("node", node.to_string())];
        let first = |via: &str| {
            t.counter(
                "preempt_node_txs_first_total",
                &[("node", node.to_string()), ("via", via.into())],
            )
        };
        let head_number = Arc::new(AtomicU64::new(0));
        let lag = t.gauge("preempt_node_head_lag_blocks", &l());
        board.nodes.lock().unwrap_or_else(|p| p.into_inner()).push((Arc::clone(&head_number), lag));
        Self {
            received: t.counter("preempt_node_txs_received_total", &l()),
            verified: t.counter("preempt_node_txs_verified_total", &l()),
            forged: t.counter("preempt_node_txs_forged_total", &l()),
            bad_frames: t.counter("preempt_node_bad_frames_total", &l()),
            duplicates: t.counter("preempt_node_txs_deduped_total", &l()),
            filtered: t.counter("preempt_node_txs_filtered_total", &l()),
            dropped: t.counter("preempt_node_txs_dropped_total", &l()),
            from_subscription: first("subscription"),
            recovered: first("reconcile"),
            reconnects: t.counter("preempt_node_reconnects_total", &l()),
            connect_failures: t.counter("preempt_node_connect_failures_total", &l()),
            fetch_failures: t.counter("preempt_node_fetch_failures_total", &l()),
            heads: t.counter("preempt_node_heads_total", &l()),
            connected: t.gauge("preempt_node_connected", &l()),
            head_block: t.gauge("preempt_node_head_block", &l()),
            head_at: t.gauge("preempt_node_last_head_timestamp_seconds", &l()),
            head_number,
            heads_board: Arc::clone(board),
            forged_seen: AtomicU64::new(0),
            last_forged_event_ms: AtomicU64::new(0),
            node,
        }
    }

    pub(super) fn note_head(&self, number: u64) {
        self.heads.increment(1);
        let highest = self.head_number.fetch_max(number, Ordering::Relaxed).max(number);
        self.head_block.set(highest as f64);
        self.head_at.set(unix_ms() as f64 / 1e3);
        self.heads_board.update();
    }
}

impl NodeCounts {
    fn of(s: &Snapshot, node: &str) -> Self {
        let n = [("node", node)];
        let c = |name| s.count(name, &n);
        let via = |via| s.count("preempt_node_txs_first_total", &[("node", node), ("via", via)]);
        Self {
            node: node.to_string(),
            received: c("preempt_node_txs_received_total"),
            verified: c("preempt_node_txs_verified_total"),
            forged: c("preempt_node_txs_forged_total"),
            bad_frames: c("preempt_node_bad_frames_total"),
            duplicates: c("preempt_node_txs_deduped_total"),
            from_subscription: via("subscription"),
            recovered: via("reconcile"),
            reconnects: c("preempt_node_reconnects_total"),
            connect_failures: c("preempt_node_connect_failures_total"),
            fetch_failures: c("preempt_node_fetch_failures_total"),
            heads: c("preempt_node_heads_total"),
            last_head_number: c("preempt_node_head_block"),
            last_head_at_ms: (s.sum("preempt_node_last_head_timestamp_seconds", &n) * 1e3) as u64,
        }
    }
}

pub(super) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// A node's counters at one moment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeCounts {
    pub node: String,
    pub received: u64,
    pub verified: u64,
    pub forged: u64,
    pub bad_frames: u64,
    pub duplicates: u64,
    pub from_subscription: u64,
    pub recovered: u64,
    pub reconnects: u64,
    pub connect_failures: u64,
    pub fetch_failures: u64,
    pub heads: u64,
    pub last_head_number: u64,
    pub last_head_at_ms: u64,
}

/// The stage's counters at one moment: totals, then each node.
#[derive(Debug, Clone, Serialize)]
pub struct IngestCounts {
    pub received: u64,
    pub duplicates: u64,
    pub filtered: u64,
    pub queued_protected: u64,
    pub queued_suspicious: u64,
    pub queued_other: u64,
    pub deferred: u64,
    pub classified: u64,
    pub classify_timeouts: u64,
    pub traced_ahead: u64,
    /// Sums over the nodes.
    pub forged: u64,
    pub bad_frames: u64,
    pub recovered: u64,
    pub from_subscription: u64,
    pub fetch_failures: u64,
    pub reconnects: u64,
    pub heads: u64,
    pub nodes: Vec<NodeCounts>,
}

impl Default for IngestStats {
    /// On a recorder of its own (tests, the bench); the guard registers on its `Telemetry`.
    fn default() -> Self {
        Self::new(&Telemetry::new())
    }
}

impl IngestStats {
    pub fn new(t: &Telemetry) -> Self {
        let queued =
            |lane: &str| t.counter("preempt_ingest_txs_queued_total", &[("lane", lane.into())]);
        Self {
            received: t.counter("preempt_ingest_txs_received_total", &[]),
            duplicates: t.counter("preempt_ingest_txs_deduped_total", &[]),
            filtered: t.counter("preempt_ingest_txs_filtered_total", &[]),
            queued_protected: queued("protected"),
            queued_suspicious: queued("suspicious"),
            queued_other: queued("other"),
            deferred: t.counter("preempt_ingest_txs_dropped_total", &[]),
            classified: t.counter("preempt_ingest_txs_classified_total", &[]),
            classify_timeouts: t.counter("preempt_ingest_classify_timeouts_total", &[]),
            traced_ahead: t.counter("preempt_ingest_traced_ahead_total", &[]),
            nodes: Mutex::default(),
            heads: Arc::default(),
            telemetry: t.clone(),
        }
    }

    /// The handles of node `name`, registered on first use; a reconnect keeps counting on them.
    pub fn node(&self, name: &Arc<str>) -> Arc<NodeIngestStats> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = nodes.iter().find(|n| n.node == *name) {
            return Arc::clone(n);
        }
        let n = Arc::new(NodeIngestStats::new(Arc::clone(name), &self.telemetry, &self.heads));
        nodes.push(Arc::clone(&n));
        n
    }

    /// Node `name`'s counters now.
    pub fn node_counts(&self, name: &str) -> NodeCounts {
        NodeCounts::of(&self.telemetry.snapshot(), name)
    }

    pub fn snapshot(&self) -> IngestCounts {
        let s = self.telemetry.snapshot();
        let names: Vec<Arc<str>> = {
            let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            nodes.iter().map(|n| Arc::clone(&n.node)).collect()
        };
        let nodes: Vec<NodeCounts> = names.iter().map(|n| NodeCounts::of(&s, n)).collect();
        let sum = |f: fn(&NodeCounts) -> u64| nodes.iter().map(f).sum();
        let c = |name| s.count(name, &[]);
        let queued = |lane| s.count("preempt_ingest_txs_queued_total", &[("lane", lane)]);
        IngestCounts {
            received: c("preempt_ingest_txs_received_total"),
            duplicates: c("preempt_ingest_txs_deduped_total"),
            filtered: c("preempt_ingest_txs_filtered_total"),
            queued_protected: queued("protected"),
            queued_suspicious: queued("suspicious"),
            queued_other: queued("other"),
            deferred: c("preempt_ingest_txs_dropped_total"),
            classified: c("preempt_ingest_txs_classified_total"),
            classify_timeouts: c("preempt_ingest_classify_timeouts_total"),
            traced_ahead: c("preempt_ingest_traced_ahead_total"),
            forged: sum(|n| n.forged),
            bad_frames: sum(|n| n.bad_frames),
            recovered: sum(|n| n.recovered),
            from_subscription: sum(|n| n.from_subscription),
            fetch_failures: sum(|n| n.fetch_failures),
            reconnects: sum(|n| n.reconnects),
            heads: sum(|n| n.heads),
            nodes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_behind_the_best_head_shows_its_lag_and_the_counts_read_back() {
        let stats = IngestStats::default();
        let (a, b) = (stats.node(&"a".into()), stats.node(&"b".into()));
        a.note_head(10);
        b.note_head(7);
        a.received.increment(2);
        stats.filtered.increment(1);
        let s = stats.telemetry.snapshot();
        assert_eq!(s.value("preempt_node_head_lag_blocks", &[("node", "a")]), Some(0.0));
        assert_eq!(s.value("preempt_node_head_lag_blocks", &[("node", "b")]), Some(3.0));
        let counts = stats.snapshot();
        assert_eq!((counts.filtered, counts.heads, counts.nodes.len()), (1, 2, 2));
        assert_eq!((counts.nodes[0].received, counts.nodes[1].last_head_number), (2, 7));
    }
}
