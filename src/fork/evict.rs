//! Keeping the fork bounded for a process that runs for months: entries unused for
//! `max_age_blocks` go, and above `max_entries` the least recently used go first. Pinned
//! accounts (protected contracts and their tokens) stay; their slots age like any other: a
//! popular token or vault has a slot per holder, and pinning those would grow the fork by every
//! new holder for good. The slots the guard reads each block (paused flags, holdings) are used
//! each block, so they stay young.

use std::{
    collections::HashSet,
    hash::Hasher,
    sync::{Mutex, atomic::Ordering},
};

use alloy::primitives::{Address, U256};
use serde::Serialize;

use super::{ForkCache, ForkStats};

/// Bounds of the fork cache (config `[fork]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkLimits {
    /// Accounts plus slots held at most; above it, the least recently used are evicted.
    pub max_entries: usize,
    /// An entry unused for this many blocks is evicted whatever the size.
    pub max_age_blocks: u64,
}

impl Default for ForkLimits {
    fn default() -> Self {
        // ~120 bytes an entry: about 120 MB at the cap; a day of mainnet blocks for the age.
        Self { max_entries: 1_000_000, max_age_blocks: 7_200 }
    }
}

/// What one eviction pass did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EvictionReport {
    pub before: usize,
    pub after: usize,
    pub evicted: usize,
    /// Entries older than this many blocks were dropped.
    pub cutoff_age: u64,
}

/// How often (in blocks) the age sweep runs when the size is within bounds.
const AGE_SWEEP_EVERY: u64 = 256;
/// A pass over the cap brings the size down to this share of it, so passes are rare.
const TARGET_SHARE: f64 = 0.9;
/// Recently evicted keys remembered (by hash), to count refetches.
const REMEMBERED: usize = 200_000;

pub(super) fn run(fork: &ForkCache) -> EvictionReport {
    let before = fork.len();
    let limits = fork.limits();
    let now = fork.block();
    let over = before > limits.max_entries;
    if !over && !now.is_multiple_of(AGE_SWEEP_EVERY) {
        return EvictionReport { before, after: before, evicted: 0, cutoff_age: u64::MAX };
    }
    let pinned = fork.pinned.read().unwrap_or_else(|p| p.into_inner()).clone();
    let age = |used: u32| u64::from((now as u32).wrapping_sub(used));
    let mut cutoff = limits.max_age_blocks;
    if over {
        cutoff = cutoff.min(age_cutoff(fork, &pinned, &age, limits.max_entries));
    }
    let mut evicted = 0usize;
    fork.accounts.retain(|address, entry| {
        let keep = pinned.contains(address) || age(entry.used.load(Ordering::Relaxed)) <= cutoff;
        if !keep {
            evicted += 1;
            fork.recently_evicted.note_evicted(address.as_slice());
        }
        keep
    });
    fork.storage.retain(|key, entry| {
        let keep = age(entry.used.load(Ordering::Relaxed)) <= cutoff;
        if !keep {
            evicted += 1;
            fork.recently_evicted.note_evicted(&slot_key_bytes(key));
        }
        keep
    });
    // Code nobody holds any more.
    if evicted > 0 {
        let live: HashSet<_> = fork
            .accounts
            .iter()
            .filter_map(|e| e.value().value.as_ref().map(|i| i.code_hash))
            .collect();
        fork.code.retain(|hash, _| live.contains(hash));
    }
    fork.stats.evicted.increment(evicted as u64);
    EvictionReport { before, after: fork.len(), evicted, cutoff_age: cutoff }
}

/// The age above which dropping everything unpinned brings the size under the target.
fn age_cutoff(
    fork: &ForkCache,
    pinned: &HashSet<Address>,
    age: &impl Fn(u32) -> u64,
    max_entries: usize,
) -> u64 {
    // Ages in buckets of growing width (exact for recent blocks, coarse for old ones).
    const BUCKETS: usize = 64;
    let bucket = |a: u64| -> usize {
        if a < 32 { a as usize } else { (32 + (63 - a.leading_zeros() as usize)).min(BUCKETS - 1) }
    };
    let lower_age = |b: usize| -> u64 { if b < 32 { b as u64 } else { 1u64 << (b - 32) } };
    let mut counts = [0usize; BUCKETS];
    for e in fork.accounts.iter() {
        if !pinned.contains(e.key()) {
            counts[bucket(age(e.value().used.load(Ordering::Relaxed)))] += 1;
        }
    }
    for e in fork.storage.iter() {
        counts[bucket(age(e.value().used.load(Ordering::Relaxed)))] += 1;
    }
    let target = (max_entries as f64 * TARGET_SHARE) as usize;
    let total: usize = counts.iter().sum();
    let pinned_entries = fork.len().saturating_sub(total);
    // Keep the youngest buckets while they fit.
    let mut kept = pinned_entries;
    for (b, count) in counts.iter().enumerate() {
        if kept + count > target {
            return lower_age(b).saturating_sub(1);
        }
        kept += count;
    }
    u64::MAX
}

pub(super) fn slot_key_bytes(key: &(Address, U256)) -> [u8; 52] {
    let mut out = [0u8; 52];
    out[..20].copy_from_slice(key.0.as_slice());
    out[20..].copy_from_slice(&key.1.to_be_bytes::<32>());
    out
}

/// A bounded memory of evicted keys (by 64-bit hash), to tell a refetch from a first fetch.
#[derive(Debug, Default)]
pub(super) struct EvictedKeys {
    keys: Mutex<HashSet<u64>>,
}

impl EvictedKeys {
    fn hash(bytes: &[u8]) -> u64 {
        // Fixed keys (not `RandomState`): the same key must hash the same way each time.
        let mut h = std::hash::DefaultHasher::new();
        h.write(bytes);
        h.finish()
    }

    fn note_evicted(&self, bytes: &[u8]) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= REMEMBERED {
            keys.clear();
        }
        keys.insert(Self::hash(bytes));
    }

    pub(super) fn note_fetch(&self, stats: &ForkStats, bytes: &[u8]) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if !keys.is_empty() && keys.remove(&Self::hash(bytes)) {
            stats.refetched.increment(1);
        }
    }
}
