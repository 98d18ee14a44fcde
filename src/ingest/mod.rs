//! Ingest: one task per node connection (WebSocket or IPC, sockets owned here) that takes
//! pending txs and new heads, verifies every body (hash and signer recomputed), reconciles
//! with the node's pool so no pending tx is lost, dedupes on computed hashes across nodes,
//! ranks each tx by how it can reach protected state and hands it to that lane's queue.

mod body;
mod classify;
mod conn;
mod crowd;
mod ipc;
mod node;
mod rank;
mod reconcile;
mod router;
mod rpc;
mod stats;
mod verify;
mod ws;

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use dashmap::DashMap;

pub use classify::CLASSIFY_BUDGET;
pub use conn::TransportError;
pub use crowd::{CROWDED_AT, TargetCrowd, by_crowd};
pub use node::{FEED_MAX_MESSAGE, NodeEvent, RPC_MAX_MESSAGE, SessionError, spawn_node};
pub use rank::{
    CodeFacts, CodeIndex, FRESH_SENDER_NONCE, Lane, ProtectedSet, Rank, Reason, created_address,
    delegation_target, rank,
};
pub use reconcile::RECONCILE_EVERY;
pub use router::{Admission, Lanes, TxRouter};
pub use rpc::RpcError;
pub use stats::{IngestCounts, IngestStats, NodeCounts, NodeIngestStats};
pub use verify::{
    BadSignature, ClaimCheck, Decoded, Forgery, Verifier, VerifyError, check_claim, decode_pending,
    on_claim, pending_tx, recover_signer, runs_on_claim,
};

#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    signer: Address,
    /// The signer was recovered; else it is a node's claim, being checked.
    verified: bool,
}

/// Txs seen from any node, keyed by their **computed** hash (never a node's claim), so each
/// is simulated once and a poisoned claim cannot block the real tx.
#[derive(Debug, Default)]
pub struct SeenSet {
    seen: DashMap<B256, Seen>,
}

impl SeenSet {
    /// True the first time a (verified) hash is offered; remembers its signer.
    pub fn first_sight(&self, hash: B256, signer: Address) -> bool {
        self.sight(hash, signer, true)
    }

    /// As `first_sight`; `verified`: whether `signer` was recovered or is still a claim.
    pub fn sight(&self, hash: B256, signer: Address, verified: bool) -> bool {
        match self.seen.entry(hash) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(v) => {
                v.insert(Seen { at: Instant::now(), signer, verified });
                true
            }
        }
    }

    /// The recovered signer of a tx seen before.
    pub fn signer_of(&self, hash: &B256) -> Option<Address> {
        self.seen.get(hash).filter(|s| s.verified).map(|s| s.signer)
    }

    /// The signer a tx seen before was taken with, and whether it was recovered yet.
    pub fn claim_of(&self, hash: &B256) -> Option<(Address, bool)> {
        self.seen.get(hash).map(|s| (s.signer, s.verified))
    }

    /// The claimed `signer` of `hash` was recovered.
    pub fn confirm(&self, hash: &B256, signer: Address) {
        if let Some(mut s) = self.seen.get_mut(hash)
            && s.signer == signer
        {
            s.verified = true;
        }
    }

    /// Forgets `hash` if it was taken on the claim `claimed`, not yet recovered: that claim
    /// was forged, and an honest copy must be taken when offered.
    pub fn forget_claim(&self, hash: &B256, claimed: Address) {
        self.seen.remove_if(hash, |_, s| !s.verified && s.signer == claimed);
    }

    /// Forgets a hash, so the tx is taken again when next offered (deferred, or unrouted).
    pub fn forget(&self, hash: &B256) {
        self.seen.remove(hash);
    }

    /// Forgets hashes older than `age` (mined or long gone), and under a flood the oldest
    /// beyond `max` too (a spammer must not grow it without bound): bounded by age and count.
    pub fn prune(&self, age: Duration, max: usize) {
        let now = Instant::now();
        let mut age = age;
        self.seen.retain(|_, s| now.duration_since(s.at) < age);
        while self.seen.len() > max && age > Duration::from_secs(1) {
            age /= 2;
            self.seen.retain(|_, s| now.duration_since(s.at) < age);
        }
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
mod tests;
