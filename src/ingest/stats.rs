//! Ingest counters: one struct for the stage's totals and one per node, so that nothing is lost
//! without a number showing it. Plain atomics now; a later move to `metrics` is one field each.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

/// The stage's totals (every node together) and the per-node counters.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Verified txs offered to the router (any node, any path).
    pub received: AtomicU64,
    /// Offered again after a first sight (same computed hash).
    pub duplicates: AtomicU64,
    /// Plain transfers to accounts without code: they run no code, so they are not simulated.
    pub filtered: AtomicU64,
    pub queued_protected: AtomicU64,
    pub queued_suspicious: AtomicU64,
    pub queued_other: AtomicU64,
    /// Not queued because its lane was full: forgotten by the seen-set, so the next pool
    /// reconciliation offers it again. Never a tx of the `Protected` lane.
    pub deferred: AtomicU64,
    /// Txs parked until the code of the account they call was known.
    pub classified: AtomicU64,
    /// Parked txs routed as `Other` because the code fetch failed or took too long.
    pub classify_timeouts: AtomicU64,
    nodes: Mutex<Vec<Arc<NodeIngestStats>>>,
}

/// One node connection's counters.
#[derive(Debug)]
pub struct NodeIngestStats {
    pub node: Arc<str>,
    /// Pending-tx notifications read off the subscription (bodies or bare hashes).
    pub received: AtomicU64,
    /// Bodies whose computed hash, recovered signer and chain id checked out (any path).
    pub verified: AtomicU64,
    /// Bodies whose claimed hash or sender disagreed with the signed bytes, with a bad
    /// signature, or for another chain; dropped.
    pub forged: AtomicU64,
    /// Frames that were not JSON, binary, of the wrong shape or for no subscription; skipped.
    pub bad_frames: AtomicU64,
    /// Verified txs already seen (from this node or another).
    pub duplicates: AtomicU64,
    /// Txs this node was the first to deliver through its subscription.
    pub from_subscription: AtomicU64,
    /// Txs this node was the first to deliver through pool reconciliation (the feed missed them).
    pub recovered: AtomicU64,
    /// Sessions that were connected and ended other than by shutdown.
    pub reconnects: AtomicU64,
    /// Connection attempts that failed (node down, refused, timed out).
    pub connect_failures: AtomicU64,
    /// Requests for a tx body or code that failed or found nothing.
    pub fetch_failures: AtomicU64,
    pub heads: AtomicU64,
    pub last_head_number: AtomicU64,
    /// Unix milliseconds of the last head.
    pub last_head_at_ms: AtomicU64,
    /// Unix milliseconds of the last `NodeEvent::Forged` sent (they are rate-limited).
    pub(super) last_forged_event_ms: AtomicU64,
}

impl NodeIngestStats {
    fn new(node: Arc<str>) -> Self {
        Self {
            node,
            received: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            forged: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            from_subscription: AtomicU64::new(0),
            recovered: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            fetch_failures: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            last_head_number: AtomicU64::new(0),
            last_head_at_ms: AtomicU64::new(0),
            last_forged_event_ms: AtomicU64::new(0),
        }
    }

    pub(super) fn note_head(&self, number: u64) {
        self.heads.fetch_add(1, Ordering::Relaxed);
        self.last_head_number.fetch_max(number, Ordering::Relaxed);
        self.last_head_at_ms.store(unix_ms(), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> NodeCounts {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NodeCounts {
            node: self.node.to_string(),
            received: l(&self.received),
            verified: l(&self.verified),
            forged: l(&self.forged),
            bad_frames: l(&self.bad_frames),
            duplicates: l(&self.duplicates),
            from_subscription: l(&self.from_subscription),
            recovered: l(&self.recovered),
            reconnects: l(&self.reconnects),
            connect_failures: l(&self.connect_failures),
            fetch_failures: l(&self.fetch_failures),
            heads: l(&self.heads),
            last_head_number: l(&self.last_head_number),
            last_head_at_ms: l(&self.last_head_at_ms),
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

impl IngestStats {
    /// The counters of node `name`, created on first use; a reconnect keeps counting on them.
    pub fn node(&self, name: &Arc<str>) -> Arc<NodeIngestStats> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = nodes.iter().find(|n| n.node == *name) {
            return Arc::clone(n);
        }
        let n = Arc::new(NodeIngestStats::new(Arc::clone(name)));
        nodes.push(Arc::clone(&n));
        n
    }

    pub fn snapshot(&self) -> IngestCounts {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let nodes: Vec<NodeCounts> = {
            let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            nodes.iter().map(|n| n.snapshot()).collect()
        };
        let sum = |f: fn(&NodeCounts) -> u64| nodes.iter().map(f).sum();
        IngestCounts {
            received: l(&self.received),
            duplicates: l(&self.duplicates),
            filtered: l(&self.filtered),
            queued_protected: l(&self.queued_protected),
            queued_suspicious: l(&self.queued_suspicious),
            queued_other: l(&self.queued_other),
            deferred: l(&self.deferred),
            classified: l(&self.classified),
            classify_timeouts: l(&self.classify_timeouts),
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
