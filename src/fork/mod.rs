//! Forked state: a shared, concurrent cache of node state pinned to one block, read by every
//! simulation through `DatabaseRef`; simulations write only into their own overlays.

mod node;
mod ws;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use alloy::primitives::{Address, B256, U256};
use dashmap::DashMap;
use revm::{
    bytecode::Bytecode,
    database_interface::{DBErrorMarker, DatabaseRef},
    primitives::KECCAK_EMPTY,
    state::AccountInfo,
};
use thiserror::Error;

pub use node::{NodeClient, NodeError};
pub use ws::{LowLatencyWs, connect_provider};

#[derive(Debug, Error)]
pub enum ForkError {
    #[error("state not cached and no node to fetch it from: {what}")]
    Offline { what: String },
    #[error("fetching {what} at block {block}: {source}")]
    Fetch { what: String, block: u64, source: NodeError },
}

impl DBErrorMarker for ForkError {}

/// Counters for the slow path.
#[derive(Debug, Default)]
pub struct ForkStats {
    /// Batches of misses fetched together (each costs about one round trip).
    pub fetch_rounds: AtomicU64,
    pub account_fetches: AtomicU64,
    pub storage_fetches: AtomicU64,
    pub block_hash_fetches: AtomicU64,
}

impl ForkStats {
    pub fn round_trips(&self) -> u64 {
        self.account_fetches.load(Ordering::Relaxed)
            + self.storage_fetches.load(Ordering::Relaxed)
            + self.block_hash_fetches.load(Ordering::Relaxed)
    }
}

/// Node state at one block. Reads that miss go to the node (when there is one) and are kept.
#[derive(Debug)]
pub struct ForkCache {
    /// The block misses are fetched at; moved forward only by the block guard, after a replay.
    block: AtomicU64,
    /// `None`: the account does not exist at this block.
    accounts: DashMap<Address, Option<AccountInfo>>,
    code: DashMap<B256, Bytecode>,
    storage: DashMap<(Address, U256), U256>,
    block_hashes: DashMap<u64, B256>,
    node: Option<NodeClient>,
    stats: ForkStats,
}

impl ForkCache {
    /// A cache of `node`'s state at `block`.
    pub fn new(block: u64, node: Option<NodeClient>) -> Self {
        Self {
            block: AtomicU64::new(block),
            accounts: DashMap::new(),
            code: DashMap::new(),
            storage: DashMap::new(),
            block_hashes: DashMap::new(),
            node,
            stats: ForkStats::default(),
        }
    }

    pub fn block(&self) -> u64 {
        self.block.load(Ordering::Acquire)
    }

    /// Pins the cache to a later block whose changes it already holds.
    pub fn repin(&self, block: u64) {
        self.block.store(block, Ordering::Release);
    }

    pub fn stats(&self) -> &ForkStats {
        &self.stats
    }

    pub fn node(&self) -> Option<&NodeClient> {
        self.node.as_ref()
    }

    /// Seeds an account (tests, benches and state copied from another fork).
    pub fn insert_account(&self, address: Address, mut info: AccountInfo) {
        if let Some(code) = info.code.take() {
            if !code.is_empty() {
                self.code.insert(info.code_hash, code.clone());
            }
            info.code = Some(code);
        }
        self.accounts.insert(address, Some(info));
    }

    pub fn insert_storage(&self, address: Address, slot: U256, value: U256) {
        self.storage.insert((address, slot), value);
    }

    /// A new cache at `block` that keeps this one's code (immutable by hash) but no state.
    pub fn successor(&self, block: u64) -> Self {
        let next = Self::new(block, self.node.clone());
        for entry in self.code.iter() {
            next.code.insert(*entry.key(), entry.value().clone());
        }
        next
    }

    pub fn cached_accounts(&self) -> usize {
        self.accounts.len()
    }

    pub fn cached_slots(&self) -> usize {
        self.storage.len()
    }

    /// Fetches accounts and slots not cached yet, all requests at once: one `eth_getProof` per
    /// account (with every slot wanted of it), and its code where the code is not cached.
    pub async fn prefetch(
        &self,
        accounts: &[Address],
        slots: &[(Address, U256)],
    ) -> Result<(), ForkError> {
        let Some(node) = &self.node else { return Ok(()) };
        let block = self.block();
        let mut wanted: std::collections::BTreeMap<Address, (bool, Vec<U256>)> = Default::default();
        for a in accounts.iter().filter(|a| !self.accounts.contains_key(*a)) {
            wanted.entry(*a).or_default().0 = true;
        }
        for (a, s) in slots.iter().filter(|k| !self.storage.contains_key(k)) {
            let entry = wanted.entry(*a).or_default();
            if !entry.1.contains(s) {
                entry.1.push(*s);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let requests = wanted.iter().map(|(address, (need_account, slots))| {
            let proof = node.proof(*address, slots.clone(), block);
            // The code is asked for alongside, not after: one round trip either way.
            let code = need_account.then(|| node.code(*address, block));
            async move {
                let code = match code {
                    Some(c) => Some(c.await),
                    None => None,
                };
                (proof.await, code)
            }
        });
        let answers = futures::future::join_all(requests).await;
        for ((address, (need_account, slots)), (proof, code)) in wanted.into_iter().zip(answers) {
            let what = || format!("account {address}");
            let proof = proof.map_err(|source| ForkError::Fetch { what: what(), block, source })?;
            self.stats.storage_fetches.fetch_add(slots.len() as u64, Ordering::Relaxed);
            for (slot, value) in slots.iter().zip(&proof.slots) {
                self.storage.insert((address, *slot), *value);
            }
            if need_account {
                self.stats.account_fetches.fetch_add(1, Ordering::Relaxed);
                let code = match code {
                    Some(c) => {
                        c.map_err(|source| ForkError::Fetch { what: what(), block, source })?
                    }
                    None => Default::default(),
                };
                let info = if proof.balance.is_zero() && proof.nonce == 0 && code.is_empty() {
                    None
                } else {
                    let bytecode = Bytecode::new_raw(code);
                    let hash = bytecode.hash_slow();
                    Some(
                        AccountInfo::default()
                            .with_code_and_hash(bytecode, hash)
                            .with_balance(proof.balance)
                            .with_nonce(proof.nonce),
                    )
                };
                self.store_fetched_account(address, info);
            }
        }
        Ok(())
    }

    fn store_fetched_account(
        &self,
        address: Address,
        info: Option<AccountInfo>,
    ) -> Option<AccountInfo> {
        let info = info.map(|mut info| {
            if let Some(code) = &info.code
                && !code.is_empty()
            {
                self.code.insert(info.code_hash, code.clone());
            } else {
                info.code_hash = KECCAK_EMPTY;
            }
            info
        });
        self.accounts.insert(address, info.clone());
        info
    }

    fn node_or_offline(&self, what: impl FnOnce() -> String) -> Result<&NodeClient, ForkError> {
        self.node.as_ref().ok_or_else(|| ForkError::Offline { what: what() })
    }
}

impl DatabaseRef for ForkCache {
    type Error = ForkError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, ForkError> {
        if let Some(hit) = self.accounts.get(&address) {
            return Ok(hit.clone());
        }
        let Some(node) = &self.node else { return Ok(None) };
        let block = self.block();
        let info = node.blocking(node.account(address, block)).map_err(|source| {
            ForkError::Fetch { what: format!("account {address}"), block, source }
        })?;
        self.stats.account_fetches.fetch_add(1, Ordering::Relaxed);
        Ok(self.store_fetched_account(address, info))
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
        if let Some(hit) = self.storage.get(&(address, index)) {
            return Ok(*hit);
        }
        // Without a node the cache is the whole state (tests, benches): unset slots are zero.
        let Some(node) = &self.node else { return Ok(U256::ZERO) };
        let block = self.block();
        let value = node.blocking(node.storage(address, index, block)).map_err(|source| {
            ForkError::Fetch { what: format!("storage {address} slot {index:#x}"), block, source }
        })?;
        self.stats.storage_fetches.fetch_add(1, Ordering::Relaxed);
        self.storage.insert((address, index), value);
        Ok(value)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, ForkError> {
        if let Some(hit) = self.block_hashes.get(&number) {
            return Ok(*hit);
        }
        let node = self.node_or_offline(|| format!("hash of block {number}"))?;
        let hash = node.blocking(node.block_hash(number)).map_err(|source| ForkError::Fetch {
            what: format!("hash of block {number}"),
            block: number,
            source,
        })?;
        self.stats.block_hash_fetches.fetch_add(1, Ordering::Relaxed);
        self.block_hashes.insert(number, hash);
        Ok(hash)
    }
}

/// The fork every simulation reads; swapped whole when a new head arrives.
pub type SharedFork = Arc<ForkCache>;

impl ForkCache {
    /// Writes a tx's state diff into the cache, so it holds the state after that tx. Used to
    /// step the fork through the txs of a block; never by a simulation.
    pub fn apply_state(&self, state: &revm::state::EvmState) {
        for (address, account) in state {
            if !account.is_touched() {
                continue;
            }
            let mut info = account.info.clone();
            if let Some(code) = &info.code
                && !code.is_empty()
            {
                self.code.insert(info.code_hash, code.clone());
            }
            info.code = None;
            if account.is_selfdestructed() {
                self.storage.retain(|(a, _), _| a != address);
            }
            self.accounts.insert(*address, Some(info));
            for (slot, value) in account.changed_storage_slots() {
                self.storage.insert((*address, *slot), value.present_value);
            }
        }
    }
}

impl ForkCache {
    /// A copy of this cache at the same block: what a block's diffs are applied to before
    /// `repin` moves it to that block.
    pub fn copy(&self) -> Self {
        let next = self.successor(self.block());
        for e in self.accounts.iter() {
            next.accounts.insert(*e.key(), e.value().clone());
        }
        for e in self.storage.iter() {
            next.storage.insert(*e.key(), *e.value());
        }
        for e in self.block_hashes.iter() {
            next.block_hashes.insert(*e.key(), *e.value());
        }
        next
    }
}

impl ForkCache {
    /// Whether `address` has code, if the cache knows (never asks the node).
    pub fn known_code(&self, address: &Address) -> Option<bool> {
        self.accounts
            .get(address)
            .map(|a| a.as_ref().is_some_and(|i| !i.is_empty_code_hash() && !i.code_hash.is_zero()))
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

/// A piece of state a speculative run needed and did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKey {
    Account(Address),
    Slot(Address, U256),
    BlockHash(u64),
}

/// One simulation's read handle on the shared fork. While `speculative`, a miss is answered
/// with an empty value and noted instead of fetched, so a single run finds every independent
/// miss and they are fetched together (one round trip), not one by one.
#[derive(Debug)]
pub struct ForkView {
    fork: SharedFork,
    speculative: std::cell::Cell<bool>,
    misses: std::cell::RefCell<Vec<StateKey>>,
}

impl ForkView {
    pub fn new(fork: SharedFork) -> Self {
        Self { fork, speculative: std::cell::Cell::new(false), misses: Default::default() }
    }

    pub fn fork(&self) -> &SharedFork {
        &self.fork
    }

    pub fn set_speculative(&self, on: bool) {
        self.speculative.set(on);
    }

    pub fn take_misses(&self) -> Vec<StateKey> {
        std::mem::take(&mut *self.misses.borrow_mut())
    }

    fn note(&self, key: StateKey) {
        let mut misses = self.misses.borrow_mut();
        if !misses.contains(&key) {
            misses.push(key);
        }
    }
}

impl DatabaseRef for ForkView {
    type Error = ForkError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, ForkError> {
        if self.speculative.get() && self.fork.node.is_some() {
            return match self.fork.accounts.get(&address) {
                Some(hit) => Ok(hit.clone()),
                None => {
                    self.note(StateKey::Account(address));
                    Ok(None)
                }
            };
        }
        self.fork.basic_ref(address)
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, ForkError> {
        self.fork.code_by_hash_ref(code_hash)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, ForkError> {
        if self.speculative.get() && self.fork.node.is_some() {
            return match self.fork.storage.get(&(address, index)) {
                Some(hit) => Ok(*hit),
                None => {
                    self.note(StateKey::Slot(address, index));
                    Ok(U256::ZERO)
                }
            };
        }
        self.fork.storage_ref(address, index)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, ForkError> {
        if self.speculative.get()
            && self.fork.node.is_some()
            && !self.fork.block_hashes.contains_key(&number)
        {
            self.note(StateKey::BlockHash(number));
            return Ok(B256::ZERO);
        }
        self.fork.block_hash_ref(number)
    }
}

impl ForkCache {
    /// Fetches `keys` with every request in flight at once, waiting on this (non-runtime) thread.
    pub fn fetch_blocking(self: &Arc<Self>, keys: &[StateKey]) -> Result<(), ForkError> {
        let Some(node) = self.node.clone() else { return Ok(()) };
        let mut accounts = Vec::new();
        let mut slots = Vec::new();
        let mut hashes = Vec::new();
        for key in keys {
            match *key {
                StateKey::Account(a) => accounts.push(a),
                StateKey::Slot(a, s) => slots.push((a, s)),
                StateKey::BlockHash(n) => hashes.push(n),
            }
        }
        let fork = Arc::clone(self);
        let block = self.block();
        self.stats.fetch_rounds.fetch_add(1, Ordering::Relaxed);
        node.blocking(async move {
            fork.prefetch(&accounts, &slots).await.map_err(|e| NodeError::Rpc(e.to_string()))?;
            for n in hashes {
                if !fork.block_hashes.contains_key(&n)
                    && let Some(node) = &fork.node
                {
                    let hash = node.block_hash(n).await?;
                    fork.stats.block_hash_fetches.fetch_add(1, Ordering::Relaxed);
                    fork.block_hashes.insert(n, hash);
                }
            }
            Ok(())
        })
        .map_err(|source| ForkError::Fetch {
            what: format!("{} missing state item(s)", keys.len()),
            block,
            source,
        })
    }
}
