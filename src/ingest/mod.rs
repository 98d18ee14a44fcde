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

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Instant};

    use alloy::{
        consensus::{SignableTransaction, TxEip1559, TxEnvelope},
        network::TxSignerSync,
        primitives::{Address, Bytes, TxKind, U256},
        signers::local::PrivateKeySigner,
    };

    use super::*;
    use crate::fork::{ForkCache, LiveFork};

    const PROTECTED: Address = Address::with_last_byte(0xaa);

    /// A node's pending-tx frame for a signed 1559 tx to `to`.
    fn frame(to: Address, nonce: u64, input: Bytes) -> String {
        let signer = PrivateKeySigner::random();
        let mut tx = TxEip1559 {
            chain_id: 1,
            nonce,
            gas_limit: 50_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(to),
            value: U256::ZERO,
            access_list: Default::default(),
            input,
        };
        let sig = signer.sign_transaction_sync(&mut tx).expect("sign");
        let envelope: TxEnvelope = tx.into_signed(sig).into();
        let rpc = alloy::rpc::types::Transaction {
            inner: alloy::consensus::transaction::Recovered::new_unchecked(
                envelope,
                signer.address(),
            ),
            block_hash: None,
            block_number: None,
            transaction_index: None,
            effective_gas_price: None,
            block_timestamp: None,
        };
        serde_json::to_string(&rpc).expect("json")
    }

    fn router(
        capacity: usize,
    ) -> (
        TxRouter<()>,
        crossbeam_channel::Receiver<crate::types::PendingTx>,
        crossbeam_channel::Receiver<crate::types::PendingTx>,
    ) {
        let fork = Arc::new(ForkCache::new(1, None));
        // An EOA the cache knows has no code.
        fork.insert_account(
            Address::with_last_byte(0x01),
            revm::state::AccountInfo::from_balance(U256::from(1)),
        );
        let (high_tx, high) = crossbeam_channel::bounded(capacity);
        let (normal_tx, normal) = crossbeam_channel::bounded(capacity);
        let router = TxRouter::new(
            [PROTECTED],
            Arc::new(LiveFork::new(fork, ())),
            Arc::default(),
            Arc::default(),
            high_tx,
            normal_tx,
        );
        (router, high, normal)
    }

    #[test]
    fn a_malformed_frame_is_an_error_not_a_panic() {
        let source: Arc<str> = "n".into();
        for bad in ["{}", "{\"hash\":1}", "[", "null", "{\"type\":\"0x2\",\"hash\":\"0x00\"}"] {
            assert!(decode_pending(bad, &source, Instant::now()).is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicates_across_nodes_are_dropped_and_counted() {
        let (router, high, _) = router(16);
        let text = frame(PROTECTED, 0, Bytes::new());
        for node in ["a", "b", "c"] {
            let source: Arc<str> = node.into();
            router.route(decode_pending(&text, &source, Instant::now()).expect("decodes"));
        }
        assert_eq!(high.len(), 1);
        let s = router.stats().snapshot();
        assert_eq!((s.received, s.duplicates, s.queued_protected), (3, 2, 1));
    }

    #[test]
    fn plain_transfer_to_a_known_eoa_is_filtered_and_a_contract_call_is_not() {
        let (router, high, normal) = router(16);
        let source: Arc<str> = "n".into();
        router.route(
            decode_pending(
                &frame(Address::with_last_byte(0x01), 0, Bytes::new()),
                &source,
                Instant::now(),
            )
            .expect("ok"),
        );
        // Unknown account: might be a contract, so it is simulated.
        router.route(
            decode_pending(
                &frame(Address::with_last_byte(0x02), 0, Bytes::new()),
                &source,
                Instant::now(),
            )
            .expect("ok"),
        );
        router.route(
            decode_pending(&frame(PROTECTED, 0, Bytes::from_static(&[1])), &source, Instant::now())
                .expect("ok"),
        );
        assert_eq!(router.stats().snapshot().filtered, 1);
        assert_eq!(normal.len(), 1);
        assert_eq!(high.len(), 1);
    }

    #[test]
    fn under_overload_other_txs_are_dropped_and_counted_but_protected_ones_are_kept() {
        let (router, high, normal) = router(2);
        let source: Arc<str> = "n".into();
        for n in 0..5 {
            router.route(
                decode_pending(
                    &frame(Address::with_last_byte(0x02), n, Bytes::new()),
                    &source,
                    Instant::now(),
                )
                .expect("ok"),
            );
        }
        assert_eq!(normal.len(), 2);
        assert_eq!(router.stats().snapshot().dropped_overload, 3);
        // The protected queue never drops: a third tx waits for room, which a worker makes.
        let drain = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            high.recv().map(|_| high)
        });
        for n in 0..3 {
            router.route(
                decode_pending(&frame(PROTECTED, n, Bytes::new()), &source, Instant::now())
                    .expect("ok"),
            );
        }
        let high = drain.join().expect("join").expect("recv");
        assert_eq!(high.len(), 2);
        assert_eq!(router.stats().snapshot().queued_protected, 3);
    }
}
