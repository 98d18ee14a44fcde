//! One simulation's read handle on the shared fork: private layers on top (the state a
//! sender's earlier pending txs leave, a replay's in-block state), and speculative reads that
//! note every miss so one run finds them all and they are fetched together.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    sync::Arc,
};

use alloy::primitives::{Address, B256, U256};
use revm::{bytecode::Bytecode, database_interface::DatabaseRef, state::AccountInfo};

use super::{ColdTx, ForkCache, ForkError, SharedFork, StateLayer};

/// A piece of state a speculative run needed and did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKey {
    Account(Address),
    Slot(Address, U256),
    BlockHash(u64),
}

/// Every value a view handed out while recording: the state a run read, as it read it (with
/// the view's layers applied), so the run can be repeated on this alone with no node.
#[derive(Debug, Clone, Default)]
pub struct ReadLog {
    /// `None`: read as not existing.
    pub accounts: HashMap<Address, Option<AccountInfo>>,
    pub slots: HashMap<(Address, U256), U256>,
    pub code: HashMap<B256, Bytecode>,
    pub block_hashes: HashMap<u64, B256>,
}

/// Reads, top first: `local`, then `layers` (newest last), then values read afresh for this
/// view, then the shared fork.
#[derive(Debug)]
pub struct ForkView {
    fork: SharedFork,
    layers: Vec<Arc<StateLayer>>,
    local: StateLayer,
    /// Replaying the block after this one: the fork's values fetched while it sat here are
    /// read afresh instead (the node may have answered them from the block being replayed).
    settled_after: Option<u64>,
    fresh: RefCell<StateLayer>,
    speculative: Cell<bool>,
    misses: RefCell<Vec<StateKey>>,
    waited: Cell<FetchWait>,
    /// The tx being run: its first miss also asks the node for its whole pre-state.
    cold: RefCell<Option<ColdTx>>,
    /// Off (`None`) on the hot path; on only while a detection's pre-state is captured.
    recording: RefCell<Option<ReadLog>>,
}

/// What this view waited on the nodes for.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchWait {
    pub rounds: u64,
    pub keys: u64,
    pub micros: u64,
}

impl ForkView {
    pub fn new(fork: SharedFork) -> Self {
        Self {
            fork,
            layers: Vec::new(),
            local: StateLayer::new(),
            settled_after: None,
            fresh: RefCell::default(),
            speculative: Cell::new(false),
            misses: Default::default(),
            waited: Cell::default(),
            cold: RefCell::default(),
            recording: RefCell::new(None),
        }
    }

    pub fn fork(&self) -> &SharedFork {
        &self.fork
    }

    /// Shared layers between the fork and this view's own state (bottom first).
    pub fn set_layers(&mut self, layers: Vec<Arc<StateLayer>>) {
        self.layers = layers;
    }

    pub fn layers(&self) -> &[Arc<StateLayer>] {
        &self.layers
    }

    /// This view's own state on top of everything (a replay steps it tx by tx).
    pub fn local_mut(&mut self) -> &mut StateLayer {
        &mut self.local
    }

    pub fn local(&self) -> &StateLayer {
        &self.local
    }

    /// Drops the private layers: reads see the fork alone again.
    pub fn clear_layers(&mut self) {
        self.layers.clear();
        if !self.local.is_empty() {
            self.local = StateLayer::new();
        }
    }

    /// Reads of the fork trust only values it did not fetch while at block `base` (those are
    /// read afresh, at `base`, once the node has moved past it).
    pub fn set_settled_after(&mut self, base: Option<u64>) {
        self.settled_after = base;
        self.fresh.get_mut().clone_from(&StateLayer::new());
    }

    /// Fetches what a speculative run missed: into this view when reading afresh, else into
    /// the shared fork.
    pub fn fetch_misses(&self, keys: &[StateKey]) -> Result<(), ForkError> {
        let started = std::time::Instant::now();
        let result = self.fetch_misses_now(keys);
        let mut w = self.waited.get();
        w.rounds += 1;
        w.keys += keys.len() as u64;
        w.micros += started.elapsed().as_micros() as u64;
        self.waited.set(w);
        result
    }

    /// Time and keys this view has waited for since it was made.
    pub fn waited(&self) -> FetchWait {
        self.waited.get()
    }

    /// The tx the next misses are fetched for (`None`: no pre-state trace is raced).
    pub fn set_cold_tx(&self, cold: Option<ColdTx>) {
        *self.cold.borrow_mut() = cold;
    }

    fn fetch_misses_now(&self, keys: &[StateKey]) -> Result<(), ForkError> {
        if self.settled_after.is_none() {
            // The trace is launched once per tx; later rounds wait on it while it is in flight.
            let cold = self.cold.borrow_mut().as_mut().map(ColdTx::take);
            if cold.is_some() {
                return self.fork.fetch_cold_blocking(cold, keys).map(|_| ());
            }
            return Arc::clone(&self.fork).fetch_blocking(keys);
        }
        let (request, hashes) = super::StateRequest::of_keys(keys);
        if !request.is_empty() {
            let answer = self.fork.fetch_fresh_blocking(request.clone())?;
            let mut fresh = self.fresh.borrow_mut();
            for (a, info) in request.accounts.iter().zip(answer.accounts) {
                fresh.set_account(*a, info);
            }
            for ((a, s), v) in request.slots.iter().zip(answer.slots) {
                fresh.set_slot(*a, *s, v);
            }
        }
        let hashes: Vec<StateKey> = hashes.into_iter().map(StateKey::BlockHash).collect();
        if hashes.is_empty() { Ok(()) } else { Arc::clone(&self.fork).fetch_blocking(&hashes) }
    }

    fn fork_account(&self, address: &Address) -> Option<Option<AccountInfo>> {
        match self.settled_after {
            None => self.fork.read_account(address),
            Some(base) => self
                .fresh
                .borrow()
                .account(address)
                .or_else(|| self.fork.read_account_settled(address, base)),
        }
    }

    fn fork_slot(&self, address: &Address, slot: &U256) -> Option<U256> {
        match self.settled_after {
            None => self.fork.read_slot(address, slot),
            Some(base) => self
                .fresh
                .borrow()
                .slot(address, slot)
                .or_else(|| self.fork.read_slot_settled(address, slot, base)),
        }
    }

    /// Starts noting every value this view hands out (the last value of a key wins: a run's
    /// reads come after any earlier txs it was stacked on).
    pub fn start_recording(&self) {
        *self.recording.borrow_mut() = Some(ReadLog::default());
    }

    /// Stops recording and returns what was read.
    pub fn take_recording(&self) -> Option<ReadLog> {
        self.recording.borrow_mut().take()
    }

    fn remember_account(&self, address: Address, info: &Option<AccountInfo>) {
        if let Some(log) = self.recording.borrow_mut().as_mut() {
            if let Some(code) =
                info.as_ref().and_then(|i| i.code.as_ref()).filter(|c| !c.is_empty())
                && let Some(i) = info
            {
                log.code.entry(i.code_hash).or_insert_with(|| code.clone());
            }
            log.accounts.insert(address, info.clone());
        }
    }

    fn remember_slot(&self, address: Address, slot: U256, value: U256) {
        if let Some(log) = self.recording.borrow_mut().as_mut() {
            log.slots.insert((address, slot), value);
        }
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

    fn speculating(&self) -> bool {
        self.speculative.get() && self.fork.source().is_some()
    }

    fn layered_account(&self, address: &Address) -> Option<Option<AccountInfo>> {
        if let Some(hit) = self.local.account(address) {
            return Some(hit);
        }
        self.layers.iter().rev().find_map(|l| l.account(address))
    }

    fn layered_slot(&self, address: &Address, slot: &U256) -> Option<U256> {
        if let Some(hit) = self.local.slot(address, slot) {
            return Some(hit);
        }
        self.layers.iter().rev().find_map(|l| l.slot(address, slot))
    }
}

impl DatabaseRef for ForkView {
    type Error = ForkError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, ForkError> {
        let info = if let Some(hit) = self.layered_account(&address) {
            hit
        } else if let Some(hit) = self.fork_account(&address) {
            hit
        } else if self.speculating() {
            // A guess, not state: never recorded.
            self.note(StateKey::Account(address));
            return Ok(None);
        } else if self.settled_after.is_some() && self.fork.source().is_some() {
            self.fetch_misses(&[StateKey::Account(address)])?;
            self.fresh.borrow().account(&address).flatten()
        } else {
            self.fork.basic_ref(address)?
        };
        self.remember_account(address, &info);
        Ok(info)
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, ForkError> {
        let code = self.fork.code_by_hash_ref(code_hash)?;
        if let Some(log) = self.recording.borrow_mut().as_mut()
            && !code.is_empty()
        {
            log.code.entry(code_hash).or_insert_with(|| code.clone());
        }
        Ok(code)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, ForkError> {
        let value = if let Some(hit) = self.layered_slot(&address, &index) {
            hit
        } else if let Some(hit) = self.fork_slot(&address, &index) {
            hit
        } else if self.speculating() {
            self.note(StateKey::Slot(address, index));
            return Ok(U256::ZERO);
        } else if self.settled_after.is_some() && self.fork.source().is_some() {
            self.fetch_misses(&[StateKey::Slot(address, index)])?;
            self.fresh.borrow().slot(&address, &index).unwrap_or_default()
        } else {
            self.fork.storage_ref(address, index)?
        };
        self.remember_slot(address, index, value);
        Ok(value)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, ForkError> {
        if self.speculating() && !self.fork.block_hashes.contains_key(&number) {
            self.note(StateKey::BlockHash(number));
            return Ok(B256::ZERO);
        }
        let hash = self.fork.block_hash_ref(number)?;
        if let Some(log) = self.recording.borrow_mut().as_mut() {
            log.block_hashes.insert(number, hash);
        }
        Ok(hash)
    }
}

impl ForkCache {
    /// A read handle with no private state.
    pub fn view(self: &Arc<Self>) -> ForkView {
        ForkView::new(Arc::clone(self))
    }
}
