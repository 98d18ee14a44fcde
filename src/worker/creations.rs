//! Contracts that pending txs create, kept until a block holds them: a tx that calls one
//! before then (the attacker who deploys from one account and strikes from another in the same
//! block) runs on the created code and constructor storage instead of an empty account. A tx
//! aimed at an address a pending creation will deploy to, before that creation has run, waits
//! for it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use alloy::primitives::Address;
use revm::state::EvmState;

use crate::{
    fork::{ForkCache, StateLayer},
    types::PendingTx,
};

/// A creation not mined after this long is forgotten (the same horizon as a sender's chain).
const CREATION_TTL: Duration = Duration::from_secs(120);
/// At most this many pending creations are kept; a full set takes no more until a head prunes.
const MAX_CREATIONS: usize = 4_096;

/// What one created account left: its info (with code) and its constructor's storage.
#[derive(Debug)]
struct Created {
    at: Instant,
    layer: StateLayer,
}

#[derive(Debug, Default)]
struct Inner {
    created: HashMap<Address, Created>,
    /// Addresses pending top-level creations deploy to, not simulated yet.
    expected: HashMap<Address, Instant>,
    /// Txs calling an expected address, with their lane, until its creation runs.
    waiting: HashMap<Address, Vec<(PendingTx, usize)>>,
    /// Txs whose awaited creation ran (or failed): to be run now.
    released: Vec<(PendingTx, usize)>,
}

/// Pending creations shared by every worker.
#[derive(Debug, Default)]
pub struct PendingCreations {
    inner: Mutex<Inner>,
    /// Every created account in one layer, rebuilt when one is added or dropped.
    merged: RwLock<Option<Arc<StateLayer>>>,
}

impl PendingCreations {
    /// Notes the address a pending top-level creation deploys to.
    pub fn expect(&self, address: Address) {
        let mut inner = self.lock();
        if !inner.created.contains_key(&address) && inner.expected.len() < MAX_CREATIONS {
            inner.expected.entry(address).or_insert_with(Instant::now);
        }
    }

    /// Whether a tx calling `to` must wait: a pending creation will deploy there and has not run.
    /// If so, the tx is kept until it has.
    pub fn wait_for(&self, to: Address, tx: &PendingTx, lane: usize) -> bool {
        let mut inner = self.lock();
        if inner.created.contains_key(&to) || !inner.expected.contains_key(&to) {
            return false;
        }
        inner.waiting.entry(to).or_default().push((tx.clone(), lane));
        true
    }

    /// The created accounts' layer, when `to` is one of them (txs calling anything else run on
    /// the fork alone, so they pay nothing for this).
    pub fn layer_for(&self, to: Option<Address>) -> Option<Arc<StateLayer>> {
        let to = to?;
        let merged = self.merged.read().unwrap_or_else(|p| p.into_inner());
        let layer = merged.as_ref()?;
        layer.has_account(&to).then(|| Arc::clone(layer))
    }

    /// Keeps what a pending tx created (`state` is its run's diff); a top-level creation at
    /// `deploys_to` releases the txs waiting for it whatever it did.
    pub fn record(&self, state: Option<&EvmState>, deploys_to: Option<Address>) {
        let mut inner = self.lock();
        let mut added = false;
        for (address, account) in state.into_iter().flatten() {
            if !account.is_created()
                || account.is_selfdestructed()
                || account.info.is_empty_code_hash()
                || inner.created.len() >= MAX_CREATIONS
            {
                continue;
            }
            let mut layer = StateLayer::new();
            layer.clear_storage(*address);
            layer.set_account(*address, Some(account.info.clone()));
            for (slot, value) in account.changed_storage_slots() {
                layer.set_slot(*address, *slot, value.present_value);
            }
            inner.created.insert(*address, Created { at: Instant::now(), layer });
            release(&mut inner, address);
            added = true;
        }
        if let Some(address) = deploys_to {
            release(&mut inner, &address);
        }
        if added {
            self.rebuild(&inner);
        }
    }

    /// Txs whose awaited creation ran: they run now.
    pub fn take_released(&self) -> Vec<(PendingTx, usize)> {
        let mut inner = self.lock();
        if inner.released.is_empty() { Vec::new() } else { std::mem::take(&mut inner.released) }
    }

    /// On a new head: creations the fork now holds (mined) or too old go, and every waiting
    /// tx is released (its creation may never run: it runs as the fork is).
    pub fn prune(&self, fork: &ForkCache) {
        let mut inner = self.lock();
        let now = Instant::now();
        let before = inner.created.len();
        inner.created.retain(|address, c| {
            let mined = matches!(fork.cached_account(address), Some(Some(info)) if !info.is_empty_code_hash());
            !mined && now.duration_since(c.at) < CREATION_TTL
        });
        inner.expected.retain(|_, at| now.duration_since(*at) < CREATION_TTL);
        let waiting: Vec<Address> = inner.waiting.keys().copied().collect();
        for address in waiting {
            release(&mut inner, &address);
        }
        if inner.created.len() != before {
            self.rebuild(&inner);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().created.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn rebuild(&self, inner: &Inner) {
        let merged = (!inner.created.is_empty()).then(|| {
            let mut layer = StateLayer::new();
            for c in inner.created.values() {
                layer.extend(&c.layer);
            }
            Arc::new(layer)
        });
        *self.merged.write().unwrap_or_else(|p| p.into_inner()) = merged;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn release(inner: &mut Inner, address: &Address) {
    inner.expected.remove(address);
    if let Some(txs) = inner.waiting.remove(address) {
        inner.released.extend(txs);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use alloy::{
        consensus::{Signed, TxEip1559, TxEnvelope, transaction::Recovered},
        primitives::{Signature, TxKind, U256},
    };
    use revm::{
        bytecode::Bytecode,
        state::{Account, AccountInfo, AccountStatus, EvmStorageSlot},
    };

    use super::*;

    const DEPLOYED: Address = Address::repeat_byte(0xd0);

    fn call_to(to: Address) -> PendingTx {
        let tx = TxEip1559 { chain_id: 1, to: TxKind::Call(to), ..Default::default() };
        let envelope: TxEnvelope =
            Signed::new_unchecked(tx, Signature::test_signature(), Default::default()).into();
        let now = Instant::now();
        PendingTx {
            hash: Default::default(),
            tx: Recovered::new_unchecked(envelope, Address::repeat_byte(0x5e)),
            seen_at: now,
            decoded_at: now,
            queued_at: now,
            source: Arc::from("t"),
            sender_check: None,
        }
    }

    /// The diff of a run that created `DEPLOYED` with code and one constructor slot.
    fn created_state() -> EvmState {
        let mut account = Account::from(AccountInfo::default().with_code(Bytecode::new_raw(
            alloy::primitives::Bytes::from_static(&[0x60, 0x00, 0x56]),
        )));
        account.status = AccountStatus::Created | AccountStatus::Touched;
        account.storage.insert(
            U256::from(1),
            EvmStorageSlot::new_changed(U256::ZERO, U256::from(7), Default::default()),
        );
        EvmState::from_iter([(DEPLOYED, account)])
    }

    #[test]
    fn a_call_to_a_pending_creation_waits_for_it_then_runs_on_its_code_and_storage() {
        let creations = PendingCreations::default();
        let attack = call_to(DEPLOYED);
        assert!(!creations.wait_for(DEPLOYED, &attack, 1), "no creation expected: runs now");
        creations.expect(DEPLOYED);
        assert!(creations.wait_for(DEPLOYED, &attack, 1), "waits for the creation");
        assert!(creations.take_released().is_empty());
        assert!(creations.layer_for(Some(DEPLOYED)).is_none());

        creations.record(Some(&created_state()), Some(DEPLOYED));
        let released = creations.take_released();
        assert_eq!(released.len(), 1, "released once the creation ran");
        assert_eq!(released[0].1, 1, "in its lane");
        let layer = creations.layer_for(Some(DEPLOYED)).expect("a layer for calls to it");
        assert!(layer.account(&DEPLOYED).flatten().is_some_and(|i| !i.is_empty_code_hash()));
        assert_eq!(layer.slot(&DEPLOYED, &U256::from(1)), Some(U256::from(7)));
        assert_eq!(
            layer.slot(&DEPLOYED, &U256::from(2)),
            Some(U256::ZERO),
            "new: the rest is zero"
        );
        assert!(creations.layer_for(Some(Address::repeat_byte(1))).is_none(), "others: no layer");
        assert!(!creations.wait_for(DEPLOYED, &attack, 1), "created: no wait");
    }

    #[test]
    fn a_creation_that_never_runs_releases_its_waiters_at_the_next_head_and_mined_ones_go() {
        let creations = PendingCreations::default();
        creations.expect(DEPLOYED);
        assert!(creations.wait_for(DEPLOYED, &call_to(DEPLOYED), 0));
        let fork = ForkCache::new(1, None);
        creations.prune(&fork);
        assert_eq!(creations.take_released().len(), 1, "nothing is lost");

        creations.record(Some(&created_state()), None);
        assert_eq!(creations.len(), 1);
        creations.prune(&fork);
        assert_eq!(creations.len(), 1, "still pending: kept");
        let info = created_state()[&DEPLOYED].info.clone();
        fork.insert_account(DEPLOYED, info);
        creations.prune(&fork);
        assert!(creations.is_empty(), "mined: the fork holds it now");
        assert!(creations.layer_for(Some(DEPLOYED)).is_none());
    }
}
