//! Forked state: one shared, bounded cache of node state at the guard's head, read by every
//! simulation through `ForkView` (which stacks private layers over it); only the block guard
//! moves it forward, by each block's changes, and back on a reorg.

mod diff;
mod evict;
mod inflight;
mod layer;
mod node;
mod prestate;
mod source;
mod view;
mod ws;

use std::{
    collections::HashSet,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
};

use alloy::primitives::{Address, B256, U256};
use dashmap::DashMap;
use metrics::Counter;
use revm::{
    bytecode::Bytecode,
    database_interface::{DBErrorMarker, DatabaseRef},
    primitives::KECCAK_EMPTY,
    state::AccountInfo,
};
use serde::Serialize;
use thiserror::Error;

use crate::telemetry::Telemetry;

pub use diff::{BlockDiff, ChangedKeys, DiffError};
pub use evict::{EvictionReport, ForkLimits};
pub use layer::StateLayer;
pub use node::{NodeClient, NodeError, StateAnswer, StateRequest};
pub use prestate::{Answered, ColdFill, ColdTx, TraceWatch, call_object};
pub use source::{PeerStatus, StateSource};
pub use view::{FetchWait, ForkView, ReadLog, StateKey};
pub use ws::{LowLatencyWs, connect_provider};
pub(crate) use ws::{NodeSocket, connect as connect_ws};

#[derive(Debug, Error)]
pub enum ForkError {
    #[error("state not cached and no node to fetch it from: {what}")]
    Offline { what: String },
    #[error("fetching {what} at block {block}: {source}")]
    Fetch { what: String, block: u64, source: NodeError },
}

impl DBErrorMarker for ForkError {}

/// Metrics of the slow path and the cache's churn (`preempt_fork_*`).
#[derive(Debug)]
pub struct ForkStats {
    /// Batches of misses fetched together (each costs about one round trip).
    pub fetch_rounds: Counter,
    pub account_fetches: Counter,
    pub storage_fetches: Counter,
    pub block_hash_fetches: Counter,
    /// Fetched values dropped because the fork was rewound or reset while they were in flight.
    pub stale_fetches: Counter,
    pub evicted: Counter,
    /// Entries fetched again after they had been evicted.
    pub refetched: Counter,
    pub resets: Counter,
    /// Cold txs whose whole pre-state came from the node's `prestateTracer` in one request.
    pub prestate_traces: Counter,
    /// Keys a fetch found another fetch asking for, and waited on instead of asking again.
    pub joined_fetches: Counter,
    telemetry: Telemetry,
}

impl Default for ForkStats {
    /// On a recorder of its own; the guard's fork is `metered` on its `Telemetry`.
    fn default() -> Self {
        Self::new(&Telemetry::new())
    }
}

/// The fork's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ForkCounts {
    pub fetch_rounds: u64,
    pub account_fetches: u64,
    pub storage_fetches: u64,
    pub block_hash_fetches: u64,
    pub stale_fetches: u64,
    pub evicted: u64,
    pub refetched: u64,
    pub resets: u64,
    pub prestate_traces: u64,
    pub joined_fetches: u64,
}

impl ForkStats {
    pub fn new(t: &Telemetry) -> Self {
        let fetches =
            |what: &str| t.counter("preempt_fork_fetches_total", &[("what", what.into())]);
        Self {
            fetch_rounds: t.counter("preempt_fork_fetch_rounds_total", &[]),
            account_fetches: fetches("account"),
            storage_fetches: fetches("storage"),
            block_hash_fetches: fetches("block_hash"),
            stale_fetches: t.counter("preempt_fork_stale_fetches_total", &[]),
            evicted: t.counter("preempt_fork_cache_evictions_total", &[]),
            refetched: t.counter("preempt_fork_cache_refetches_total", &[]),
            resets: t.counter("preempt_fork_cache_resets_total", &[]),
            prestate_traces: t.counter("preempt_fork_prestate_traces_total", &[]),
            joined_fetches: t.counter("preempt_fork_joined_fetches_total", &[]),
            telemetry: t.clone(),
        }
    }

    pub fn counts(&self) -> ForkCounts {
        let s = self.telemetry.snapshot();
        let c = |name| s.count(name, &[]);
        let fetches = |what| s.count("preempt_fork_fetches_total", &[("what", what)]);
        ForkCounts {
            fetch_rounds: c("preempt_fork_fetch_rounds_total"),
            account_fetches: fetches("account"),
            storage_fetches: fetches("storage"),
            block_hash_fetches: fetches("block_hash"),
            stale_fetches: c("preempt_fork_stale_fetches_total"),
            evicted: c("preempt_fork_cache_evictions_total"),
            refetched: c("preempt_fork_cache_refetches_total"),
            resets: c("preempt_fork_cache_resets_total"),
            prestate_traces: c("preempt_fork_prestate_traces_total"),
            joined_fetches: c("preempt_fork_joined_fetches_total"),
        }
    }

    /// Requests made to the nodes for state (accounts, slots, block hashes).
    pub fn round_trips(&self) -> u64 {
        let c = self.counts();
        c.account_fetches + c.storage_fetches + c.block_hash_fetches
    }
}

/// A cached value, the block it was last used at (for eviction by age), and where it came
/// from: a block's change set, or a fetch made while the fork sat at `fetched_at`.
#[derive(Debug)]
struct Stamped<T> {
    value: T,
    used: AtomicU32,
    /// `SETTLED`: written by a block's change set (or seeded); else the fork's block when it
    /// was fetched. A node asked for the state of its own head while mining the next block may
    /// answer with the next block's values (anvil does), so such a value is not trusted for
    /// replaying that next block.
    fetched_at: u32,
}

const SETTLED: u32 = u32::MAX;

impl<T> Stamped<T> {
    fn new(value: T, block: u64) -> Self {
        Self { value, used: AtomicU32::new(block as u32), fetched_at: SETTLED }
    }

    fn fetched(value: T, block: u64) -> Self {
        Self { value, used: AtomicU32::new(block as u32), fetched_at: block as u32 }
    }

    fn trusted_for_block_after(&self, base: u64) -> bool {
        self.fetched_at != base as u32
    }

    fn touch(&self, block: u32) {
        // A relaxed load first: most reads find the stamp current and write nothing.
        if self.used.load(Ordering::Relaxed) != block {
            self.used.store(block, Ordering::Relaxed);
        }
    }
}

/// Node state at the block `block()`: every cached account and slot holds its value at that
/// block. Misses go to the nodes (at that block) and are kept.
#[derive(Debug)]
pub struct ForkCache {
    block: AtomicU64,
    /// Bumped by every rewind and reset: a fetch that started before one is not kept.
    epoch: AtomicU64,
    /// Held for writing by rewinds and resets, for reading by fetches storing what they read.
    rewinding: RwLock<()>,
    /// `None`: the account does not exist at this block. Code travels inside the info.
    accounts: DashMap<Address, Stamped<Option<AccountInfo>>>,
    storage: DashMap<(Address, U256), Stamped<U256>>,
    code: DashMap<B256, Bytecode>,
    block_hashes: DashMap<u64, B256>,
    /// Accounts never evicted: the protected contracts and the tokens they hold (their slots
    /// age like any other; see `evict`).
    pinned: RwLock<HashSet<Address>>,
    limits: ForkLimits,
    /// Hashes of recently evicted keys, to count refetches.
    recently_evicted: evict::EvictedKeys,
    source: Option<StateSource>,
    stats: ForkStats,
    /// Pre-state traces in flight, by tx: a tx's later fetch rounds wait on its one trace.
    traces: DashMap<B256, prestate::TraceInFlight>,
    traced: prestate::TracedTxs,
    /// Accounts and slots being fetched: a second reader waits on the fetch under way.
    in_flight: inflight::InFlight,
    /// `warm_for_pending_creation` fetches in flight.
    creation_warms: Arc<std::sync::atomic::AtomicUsize>,
}

/// Pending creations whose mapping entries are fetched at once, at most.
const MAX_CREATION_WARMS: usize = 4;

/// Storage slots of the protected contracts' likely `mapping(address => …)` roots.
const MAPPING_BASES: u64 = 8;

/// Solidity's slot for `mapping[key]` where the mapping sits at slot `base`.
pub fn mapping_slot(key: Address, base: u64) -> U256 {
    let mut preimage = [0u8; 64];
    preimage[12..32].copy_from_slice(key.as_slice());
    preimage[56..64].copy_from_slice(&base.to_be_bytes());
    U256::from_be_bytes(alloy::primitives::keccak256(preimage).0)
}

/// The fork every simulation reads.
pub type SharedFork = Arc<ForkCache>;

impl ForkCache {
    /// A cache of `node`'s state at `block` (`None`: the cache is the whole state).
    pub fn new(block: u64, node: Option<NodeClient>) -> Self {
        Self::with_source(block, node.map(|n| StateSource::new([n])), ForkLimits::default())
    }

    /// A cache reading cold state from any of `source`'s nodes, bounded by `limits`.
    pub fn with_source(block: u64, source: Option<StateSource>, limits: ForkLimits) -> Self {
        Self {
            block: AtomicU64::new(block),
            epoch: AtomicU64::new(0),
            rewinding: RwLock::new(()),
            accounts: DashMap::new(),
            storage: DashMap::new(),
            code: DashMap::new(),
            block_hashes: DashMap::new(),
            pinned: RwLock::new(HashSet::new()),
            limits,
            recently_evicted: evict::EvictedKeys::default(),
            source,
            stats: ForkStats::default(),
            traces: DashMap::new(),
            traced: prestate::TracedTxs::default(),
            in_flight: inflight::InFlight::default(),
            creation_warms: Arc::default(),
        }
    }

    pub fn block(&self) -> u64 {
        self.block.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> &ForkStats {
        &self.stats
    }

    /// Counts on `telemetry` (the guard's) instead of a recorder of its own; before sharing.
    pub fn metered(mut self, telemetry: &Telemetry) -> Self {
        self.stats = ForkStats::new(telemetry);
        self
    }

    pub fn source(&self) -> Option<&StateSource> {
        self.source.as_ref()
    }

    pub fn limits(&self) -> ForkLimits {
        self.limits
    }

    /// Accounts and slots held.
    pub fn len(&self) -> usize {
        self.accounts.len() + self.storage.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn cached_accounts(&self) -> usize {
        self.accounts.len()
    }

    pub fn cached_slots(&self) -> usize {
        self.storage.len()
    }

    /// Keeps the accounts `addresses` (info and code, not their slots) in the cache for good.
    pub fn pin(&self, addresses: impl IntoIterator<Item = Address>) {
        let mut pinned = self.pinned.write().unwrap_or_else(|p| p.into_inner());
        pinned.extend(addresses);
    }

    /// Seeds an account (tests, benches, and offline state).
    pub fn insert_account(&self, address: Address, info: AccountInfo) {
        let info = self.with_shared_code(info);
        self.accounts.insert(address, Stamped::new(Some(info), self.block()));
    }

    pub fn insert_storage(&self, address: Address, slot: U256, value: U256) {
        self.storage.insert((address, slot), Stamped::new(value, self.block()));
    }

    pub fn insert_block_hash(&self, number: u64, hash: B256) {
        self.block_hashes.insert(number, hash);
    }

    /// Whether `address` has code, if the cache knows (never asks the node).
    pub fn known_code(&self, address: &Address) -> Option<bool> {
        self.accounts.get(address).map(|a| {
            a.value.as_ref().is_some_and(|i| !i.is_empty_code_hash() && !i.code_hash.is_zero())
        })
    }

    /// The cached account, if any (`Some(None)`: known not to exist). Never asks the node.
    pub fn cached_account(&self, address: &Address) -> Option<Option<AccountInfo>> {
        self.accounts.get(address).map(|a| a.value.clone())
    }

    /// Code by its hash, if the cache holds it. Never asks the node.
    pub fn cached_code(&self, code_hash: &B256) -> Option<Bytecode> {
        self.code.get(code_hash).map(|c| c.clone())
    }

    pub fn cached_slot(&self, address: &Address, slot: &U256) -> Option<U256> {
        self.storage.get(&(*address, *slot)).map(|s| s.value)
    }

    /// Code is immutable by hash: one copy is shared by every account that runs it.
    fn with_shared_code(&self, mut info: AccountInfo) -> AccountInfo {
        match info.code.take() {
            Some(code) if !code.is_empty() => {
                let shared = self.code.entry(info.code_hash).or_insert(code).clone();
                info.code = Some(shared);
            }
            // Code known only by its hash: revm asks `code_by_hash` for it.
            None if !info.code_hash.is_zero() && info.code_hash != KECCAK_EMPTY => {}
            _ => {
                info.code_hash = KECCAK_EMPTY;
                info.code = Some(Bytecode::default());
            }
        }
        info
    }

    /// Moves the cache to `number` by the changes of the blocks up to it. Only the block
    /// guard calls this, with a block's full change set.
    pub fn apply_layer(&self, layer: &StateLayer, number: u64) {
        let cleared: Vec<Address> = layer.cleared().copied().collect();
        // A fetch in flight for an account whose storage this block voids must not land.
        let _guard = (!cleared.is_empty())
            .then(|| self.rewinding.write().unwrap_or_else(|p| p.into_inner()));
        if !cleared.is_empty() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            self.storage.retain(|(a, _), _| !cleared.contains(a));
        }
        for (address, info) in layer.accounts() {
            let info = info.clone().map(|i| self.with_shared_code(i));
            self.accounts.insert(*address, Stamped::new(info, number));
        }
        for ((address, slot), value) in layer.slots() {
            self.storage.insert((*address, *slot), Stamped::new(*value, number));
        }
        self.block.store(number, Ordering::Release);
        // BLOCKHASH reaches back 256 blocks.
        let oldest = number.saturating_sub(300);
        if self.block_hashes.len() > 512 {
            self.block_hashes.retain(|n, _| *n >= oldest);
        }
    }

    /// Forgets what the given blocks changed (a reorg dropped them) and moves back to
    /// `number`; the keys are fetched again at the right block when next read.
    pub fn rewind(&self, keys: &[ChangedKeys], number: u64) {
        let _guard = self.rewinding.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for k in keys {
            for a in &k.accounts {
                self.accounts.remove(a);
            }
            for s in &k.slots {
                self.storage.remove(s);
            }
            if !k.cleared.is_empty() {
                self.storage.retain(|(a, _), _| !k.cleared.contains(a));
            }
        }
        self.block_hashes.retain(|n, _| *n <= number);
        self.block.store(number, Ordering::Release);
    }

    /// Drops every cached value and moves to `number` (after a divergence, or a gap too long to
    /// replay). Code is kept: it is immutable by hash.
    pub fn reset(&self, number: u64) {
        let _guard = self.rewinding.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.accounts.clear();
        self.storage.clear();
        self.block_hashes.clear();
        self.block.store(number, Ordering::Release);
        self.stats.resets.increment(1);
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Stores what a fetch read, unless the fork was rewound or reset since it started, and
    /// without overwriting a newer value a block wrote meanwhile.
    fn store_fetched(&self, epoch: u64, request: &StateRequest, answer: &StateAnswer) {
        let _guard = self.rewinding.read().unwrap_or_else(|p| p.into_inner());
        if self.epoch() != epoch {
            self.stats.stale_fetches.increment(1);
            return;
        }
        let block = self.block();
        for (address, info) in request.accounts.iter().zip(&answer.accounts) {
            self.recently_evicted.note_fetch(&self.stats, address.as_slice());
            let info = info.clone().map(|i| self.with_shared_code(i));
            self.accounts.entry(*address).or_insert_with(|| Stamped::fetched(info, block));
        }
        for (key, value) in request.slots.iter().zip(&answer.slots) {
            self.recently_evicted.note_fetch(&self.stats, &evict::slot_key_bytes(key));
            self.storage.entry(*key).or_insert_with(|| Stamped::fetched(*value, block));
        }
        self.stats.account_fetches.increment(request.accounts.len() as u64);
        self.stats.storage_fetches.increment(request.slots.len() as u64);
    }

    /// Fetches accounts and slots not cached yet, all in one batch from the best node. Keys
    /// another fetch is already asking for are waited on, not asked again.
    pub async fn prefetch(
        &self,
        accounts: &[Address],
        slots: &[(Address, U256)],
    ) -> Result<(), ForkError> {
        let keys = accounts
            .iter()
            .map(|a| StateKey::Account(*a))
            .chain(slots.iter().map(|(a, s)| StateKey::Slot(*a, *s)));
        self.prefetch_keys(&keys.collect::<Vec<_>>()).await
    }

    /// As `prefetch`, for `keys` (accounts and slots in one batch), then the block hashes
    /// they name.
    async fn prefetch_keys(&self, keys: &[StateKey]) -> Result<(), ForkError> {
        let missing = self.missing(keys.iter().copied());
        if missing.is_empty() {
            return Ok(());
        }
        // No node: accounts and slots stay unread; a block hash is an error, as it always was.
        if let Some(source) = &self.source {
            self.fetch_joining(source, &missing).await?;
        }
        for key in missing {
            if let StateKey::BlockHash(n) = key {
                self.prefetch_block_hash(n).await.map_err(|source| ForkError::Fetch {
                    what: format!("hash of block {n}"),
                    block: n,
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Reads the accounts and slots of `missing` in one request, joining fetches already
    /// asking for some of them.
    async fn fetch_joining(
        &self,
        source: &StateSource,
        missing: &[StateKey],
    ) -> Result<(), ForkError> {
        let state = missing.iter().copied().filter(|k| !matches!(k, StateKey::BlockHash(_)));
        let (claim, joined) = self.in_flight.claim(state);
        let own = async {
            let fetched = self.fetch_keys(source, claim.keys()).await;
            drop(claim);
            fetched
        };
        if joined.keys.is_empty() {
            return own.await;
        }
        self.stats.joined_fetches.increment(joined.keys.len() as u64);
        let (own, _) = futures::join!(own, futures::future::join_all(joined.fetches));
        own?;
        // A joined fetch that failed, was cancelled or landed stale left its keys out.
        let rest = self.missing(joined.keys);
        self.fetch_keys(source, &rest).await
    }

    /// The keys of `keys` the cache lacks, each once.
    fn missing(&self, keys: impl IntoIterator<Item = StateKey>) -> Vec<StateKey> {
        let mut seen = HashSet::new();
        keys.into_iter()
            .filter(|k| match k {
                StateKey::Account(a) => !self.accounts.contains_key(a),
                StateKey::Slot(a, s) => !self.storage.contains_key(&(*a, *s)),
                StateKey::BlockHash(n) => !self.block_hashes.contains_key(n),
            })
            .filter(|k| seen.insert(*k))
            .collect()
    }

    /// Reads `keys`' accounts and slots in one request and stores them.
    async fn fetch_keys(&self, source: &StateSource, keys: &[StateKey]) -> Result<(), ForkError> {
        let (request, _) = StateRequest::of_keys(keys);
        if request.is_empty() {
            return Ok(());
        }
        let (epoch, block) = (self.epoch(), self.block());
        self.stats.fetch_rounds.increment(1);
        let answer =
            source.fetch(request.clone(), block).await.map_err(|source| ForkError::Fetch {
                what: format!(
                    "{} account(s) and {} slot(s)",
                    request.accounts.len(),
                    request.slots.len()
                ),
                block,
                source,
            })?;
        self.store_fetched(epoch, &request, &answer);
        Ok(())
    }

    /// Fetches `keys` in one batch, waiting on this (non-runtime) thread.
    pub fn fetch_blocking(self: &Arc<Self>, keys: &[StateKey]) -> Result<(), ForkError> {
        let Some(source) = self.source.clone() else { return Ok(()) };
        let (fork, owned, block) = (Arc::clone(self), keys.to_vec(), self.block());
        source
            .blocking(async move {
                fork.prefetch_keys(&owned).await.map_err(|e| NodeError::Rpc(e.to_string()))
            })
            .map_err(|source| ForkError::Fetch {
                what: format!("{} missing state item(s)", keys.len()),
                block,
                source,
            })
    }

    /// As `warm_mapping_entries`, for a contract a pending tx will create, with the deployer's
    /// and the created account, started now on the runtime (nothing waits on it): the creation and the attack
    /// that calls it in the same block find them warm. Only from a runtime thread, and a few
    /// at a time.
    pub fn warm_for_pending_creation(
        self: &Arc<Self>,
        protected: Vec<Address>,
        created: Address,
        deployer: Address,
    ) {
        use std::sync::atomic::Ordering::AcqRel;
        if tokio::runtime::Handle::try_current().is_err() || self.source.is_none() {
            return;
        }
        if self.creation_warms.fetch_add(1, AcqRel) >= MAX_CREATION_WARMS {
            self.creation_warms.fetch_sub(1, AcqRel);
            return;
        }
        let fork = Arc::clone(self);
        tokio::spawn(async move {
            // The deployer pays and the created account must be empty: both are read first.
            let (created, accounts) = ([created], [deployer, created]);
            let (entries, account) = futures::join!(
                fork.warm_mapping_entries(&protected, &created),
                fork.prefetch(&accounts, &[])
            );
            if let Err(e) = entries.and(account) {
                tracing::debug!(created = %created[0], error = %e, "warming a pending creation's entries failed");
            }
            fork.creation_warms.fetch_sub(1, AcqRel);
        });
    }

    /// Warms, in one batch, the entries a new contract is most likely to meet in the protected
    /// contracts' mappings (`mapping(address => …)` at the first `MAPPING_BASES` slots of each)
    /// and its own first slots: a contract created one block, attacking the next, runs warm.
    pub async fn warm_mapping_entries(
        &self,
        protected: &[Address],
        accounts: &[Address],
    ) -> Result<(), ForkError> {
        let mut slots: Vec<(Address, U256)> = protected
            .iter()
            .flat_map(|p| {
                accounts.iter().flat_map(move |a| {
                    (0..MAPPING_BASES).map(move |base| (*p, mapping_slot(*a, base)))
                })
            })
            .collect();
        // And the new contracts' own first slots (a constructor that set only immutables left
        // them zero, and the block's change set lists no zero), and the protected contracts'
        // (their totals and flags: a call into one reads them first; a guard that just started
        // may not hold them yet).
        slots.extend(
            accounts
                .iter()
                .chain(protected)
                .flat_map(|a| (0..MAPPING_BASES).map(move |i| (*a, U256::from(i)))),
        );
        self.prefetch(&[], &slots).await
    }

    /// The hash of block `number`, fetched once.
    pub async fn prefetch_block_hash(&self, number: u64) -> Result<B256, NodeError> {
        if let Some(hit) = self.block_hashes.get(&number) {
            return Ok(*hit);
        }
        let Some(source) = &self.source else {
            return Err(NodeError::Rpc(format!("hash of block {number}: no node")));
        };
        let hash =
            source.with_failover(number, |n| async move { n.block_hash(number).await }).await?;
        self.stats.block_hash_fetches.increment(1);
        self.block_hashes.insert(number, hash);
        Ok(hash)
    }

    /// Drops entries by age and, over `limits.max_entries`, the least recently used ones;
    /// pinned accounts stay. Run by the guard after a block, off the hot path.
    pub fn evict(&self) -> EvictionReport {
        evict::run(self)
    }

    fn read_account(&self, address: &Address) -> Option<Option<AccountInfo>> {
        let hit = self.accounts.get(address)?;
        hit.touch(self.block() as u32);
        Some(hit.value.clone())
    }

    fn read_slot(&self, address: &Address, slot: &U256) -> Option<U256> {
        let hit = self.storage.get(&(*address, *slot))?;
        hit.touch(self.block() as u32);
        Some(hit.value)
    }

    /// As `read_account`, but a value fetched while the fork sat at `base` counts as a miss
    /// (replaying the block after `base` must not read the node's racy answers).
    fn read_account_settled(&self, address: &Address, base: u64) -> Option<Option<AccountInfo>> {
        let hit = self.accounts.get(address)?;
        hit.trusted_for_block_after(base).then(|| {
            hit.touch(self.block() as u32);
            hit.value.clone()
        })
    }

    fn read_slot_settled(&self, address: &Address, slot: &U256, base: u64) -> Option<U256> {
        let hit = self.storage.get(&(*address, *slot))?;
        hit.trusted_for_block_after(base).then(|| {
            hit.touch(self.block() as u32);
            hit.value
        })
    }

    /// Reads `request` at the fork's block from the nodes, cache or not (the cache keeps what
    /// it did not hold). Waits on this (non-runtime) thread.
    pub fn fetch_fresh_blocking(&self, request: StateRequest) -> Result<StateAnswer, ForkError> {
        let what =
            format!("{} account(s) and {} slot(s)", request.accounts.len(), request.slots.len());
        self.stats.fetch_rounds.increment(1);
        self.fetch_now(request, what)
    }

    fn fetch_now(&self, request: StateRequest, what: String) -> Result<StateAnswer, ForkError> {
        let block = self.block();
        let Some(source) = &self.source else {
            return Err(ForkError::Offline { what });
        };
        let epoch = self.epoch();
        let fetch = {
            let (source, request) = (source.clone(), request.clone());
            async move { source.fetch(request, block).await }
        };
        let answer =
            source.blocking(fetch).map_err(|source| ForkError::Fetch { what, block, source })?;
        self.store_fetched(epoch, &request, &answer);
        Ok(answer)
    }
}

impl DatabaseRef for ForkCache {
    type Error = ForkError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, ForkError> {
        if let Some(hit) = self.read_account(&address) {
            return Ok(hit);
        }
        if self.source.is_none() {
            return Ok(None);
        }
        let request = StateRequest { accounts: vec![address], slots: vec![] };
        let mut answer = self.fetch_now(request, format!("account {address}"))?;
        Ok(answer.accounts.pop().flatten().map(|i| self.with_shared_code(i)))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, ForkError> {
        if code_hash == KECCAK_EMPTY || code_hash.is_zero() {
            return Ok(Bytecode::default());
        }
        // Code arrives with its account, so a miss here means the account was never loaded.
        self.code
            .get(&code_hash)
            .map(|c| c.clone())
            .ok_or_else(|| ForkError::Offline { what: format!("code {code_hash}") })
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, ForkError> {
        if let Some(hit) = self.read_slot(&address, &index) {
            return Ok(hit);
        }
        // Without a node the cache is the whole state (tests, benches): unset slots are zero.
        if self.source.is_none() {
            return Ok(U256::ZERO);
        }
        let request = StateRequest { accounts: vec![], slots: vec![(address, index)] };
        let mut answer = self.fetch_now(request, format!("storage {address} slot {index:#x}"))?;
        Ok(answer.slots.pop().unwrap_or_default())
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, ForkError> {
        if let Some(hit) = self.block_hashes.get(&number) {
            return Ok(*hit);
        }
        let Some(source) = &self.source else {
            return Err(ForkError::Offline { what: format!("hash of block {number}") });
        };
        let hash = {
            let source2 = source.clone();
            source.blocking(async move {
                source2.with_failover(number, |n| async move { n.block_hash(number).await }).await
            })
        }
        .map_err(|source| ForkError::Fetch {
            what: format!("hash of block {number}"),
            block: number,
            source,
        })?;
        self.stats.block_hash_fetches.increment(1);
        self.block_hashes.insert(number, hash);
        Ok(hash)
    }
}

/// The fork the live pipeline reads, with what goes with it (the pending block env); swapped
/// whole on each new head. Readers compare `generation` to see a swap cheaply.
#[derive(Debug)]
pub struct LiveFork<T> {
    current: std::sync::RwLock<Arc<(SharedFork, T)>>,
    generation: AtomicU64,
}

impl<T> LiveFork<T> {
    pub fn new(fork: SharedFork, extra: T) -> Self {
        Self {
            current: std::sync::RwLock::new(Arc::new((fork, extra))),
            generation: AtomicU64::new(0),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Arc<(SharedFork, T)> {
        // A poisoned lock only means a writer panicked mid-swap; the Arc inside is still whole.
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    pub fn publish(&self, fork: SharedFork, extra: T) {
        let next = Arc::new((fork, extra));
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(p) => *p.into_inner() = next,
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
