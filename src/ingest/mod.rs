//! Ingest: one task per node connection (WebSocket or IPC) that takes pending txs and new
//! heads, drops txs already seen from another node, filters what cannot reach a protected
//! contract, and hands the rest to the simulation workers by priority.

mod node;
mod router;

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use alloy::primitives::B256;
use dashmap::DashMap;
use serde::Serialize;

pub use node::{NodeEvent, decode_pending, spawn_node};
pub use router::{Priority, TxRouter};

/// Counters a person reads to see that nothing was lost silently.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub received: AtomicU64,
    pub duplicates: AtomicU64,
    pub undecodable: AtomicU64,
    pub fetch_failures: AtomicU64,
    pub filtered: AtomicU64,
    pub queued_protected: AtomicU64,
    pub queued_other: AtomicU64,
    /// Txs dropped because the workers were behind (never ones that touch a protected contract).
    pub dropped_overload: AtomicU64,
    pub reconnects: AtomicU64,
    pub heads: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct IngestCounts {
    pub received: u64,
    pub duplicates: u64,
    pub undecodable: u64,
    pub fetch_failures: u64,
    pub filtered: u64,
    pub queued_protected: u64,
    pub queued_other: u64,
    pub dropped_overload: u64,
    pub reconnects: u64,
    pub heads: u64,
}

impl IngestStats {
    pub fn snapshot(&self) -> IngestCounts {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IngestCounts {
            received: l(&self.received),
            duplicates: l(&self.duplicates),
            undecodable: l(&self.undecodable),
            fetch_failures: l(&self.fetch_failures),
            filtered: l(&self.filtered),
            queued_protected: l(&self.queued_protected),
            queued_other: l(&self.queued_other),
            dropped_overload: l(&self.dropped_overload),
            reconnects: l(&self.reconnects),
            heads: l(&self.heads),
        }
    }
}

/// Tx hashes seen from any node, so each tx is simulated once.
#[derive(Debug, Default)]
pub struct SeenSet {
    seen: DashMap<B256, Instant>,
}

impl SeenSet {
    /// True the first time a hash is offered.
    pub fn first_sight(&self, hash: B256) -> bool {
        match self.seen.entry(hash) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(v) => {
                v.insert(Instant::now());
                true
            }
        }
    }

    /// Forgets hashes older than `age` (mined or long gone), keeping the set bounded.
    pub fn prune(&self, age: Duration) {
        let now = Instant::now();
        self.seen.retain(|_, at| now.duration_since(*at) < age);
    }

    pub fn contains(&self, hash: &B256) -> bool {
        self.seen.contains_key(hash)
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
