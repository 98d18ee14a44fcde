//! State layered over the shared fork: a mined block's changes, the state a sender's earlier
//! pending txs leave, or a replay's in-block state. Reads look in a layer before the fork.

use std::collections::{HashMap, HashSet};

use alloy::primitives::{Address, U256};
use revm::state::{AccountInfo, EvmState};

/// Accounts and slots that differ from the state below. Owned by one reader, or shared
/// read-only behind an `Arc` once built.
#[derive(Debug, Default, Clone)]
pub struct StateLayer {
    /// `None`: the account does not exist at this layer. Code travels inside the info.
    accounts: HashMap<Address, Option<AccountInfo>>,
    storage: HashMap<(Address, U256), U256>,
    /// Accounts created or destroyed in this layer: their slots below it are void (read zero).
    cleared: HashSet<Address>,
}

impl StateLayer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.storage.is_empty() && self.cleared.is_empty()
    }

    /// Entries held (accounts and slots).
    pub fn len(&self) -> usize {
        self.accounts.len() + self.storage.len()
    }

    /// `None`: not set here, look further down.
    pub fn account(&self, address: &Address) -> Option<Option<AccountInfo>> {
        self.accounts.get(address).cloned()
    }

    pub fn slot(&self, address: &Address, slot: &U256) -> Option<U256> {
        if let Some(v) = self.storage.get(&(*address, *slot)) {
            return Some(*v);
        }
        self.cleared.contains(address).then_some(U256::ZERO)
    }

    pub fn has_account(&self, address: &Address) -> bool {
        self.accounts.contains_key(address)
    }

    pub fn has_slot(&self, address: &Address, slot: &U256) -> bool {
        self.storage.contains_key(&(*address, *slot))
    }

    pub fn set_account(&mut self, address: Address, info: Option<AccountInfo>) {
        self.accounts.insert(address, info.filter(|i| !is_void(i)));
    }

    pub fn set_slot(&mut self, address: Address, slot: U256, value: U256) {
        self.storage.insert((address, slot), value);
    }

    /// The account's storage below this layer no longer exists (created or destroyed here).
    pub fn clear_storage(&mut self, address: Address) {
        self.storage.retain(|(a, _), _| *a != address);
        self.cleared.insert(address);
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&Address, &Option<AccountInfo>)> {
        self.accounts.iter()
    }

    pub fn slots(&self) -> impl Iterator<Item = (&(Address, U256), &U256)> {
        self.storage.iter()
    }

    pub fn cleared(&self) -> impl Iterator<Item = &Address> {
        self.cleared.iter()
    }

    /// Writes a tx's state diff into the layer, so it holds the state after that tx.
    pub fn apply_evm_state(&mut self, state: &EvmState) {
        for (address, account) in state {
            if !account.is_touched() {
                continue;
            }
            if account.is_selfdestructed() {
                self.clear_storage(*address);
                self.accounts.insert(*address, None);
                continue;
            }
            if account.is_created() {
                self.clear_storage(*address);
            }
            self.set_account(*address, Some(account.info.clone()));
            for (slot, value) in account.changed_storage_slots() {
                self.storage.insert((*address, *slot), value.present_value);
            }
        }
    }

    /// Puts `above` on top of this layer (its entries win).
    pub fn extend(&mut self, above: &StateLayer) {
        for address in &above.cleared {
            self.clear_storage(*address);
        }
        for (address, info) in &above.accounts {
            self.accounts.insert(*address, info.clone());
        }
        for (key, value) in &above.storage {
            self.storage.insert(*key, *value);
        }
    }
}

/// An account with no balance, nonce or code is, to the EVM after EIP-161, an account that
/// does not exist; keeping one form avoids spurious differences between the two.
fn is_void(info: &AccountInfo) -> bool {
    info.balance.is_zero() && info.nonce == 0 && info.is_empty_code_hash()
}

#[cfg(test)]
mod tests {
    use revm::{
        bytecode::Bytecode,
        state::{Account, AccountStatus, EvmStorageSlot, TransactionId},
    };

    use super::*;

    fn touched(info: AccountInfo, slots: &[(u64, u64, u64)]) -> Account {
        let mut account = Account::from(info);
        for (slot, before, after) in slots {
            account.storage.insert(
                U256::from(*slot),
                EvmStorageSlot::new_changed(
                    U256::from(*before),
                    U256::from(*after),
                    TransactionId::default(),
                ),
            );
        }
        account.mark_touch();
        account
    }

    #[test]
    fn a_tx_diff_sets_changed_slots_and_accounts_and_leaves_the_rest_to_the_fork() {
        let a = Address::with_last_byte(1);
        let mut state = EvmState::default();
        state.insert(a, touched(AccountInfo::from_balance(U256::from(5)), &[(1, 0, 7), (2, 3, 3)]));
        let mut layer = StateLayer::new();
        layer.apply_evm_state(&state);
        assert_eq!(layer.slot(&a, &U256::from(1)), Some(U256::from(7)));
        // Unchanged slots are not the layer's business.
        assert_eq!(layer.slot(&a, &U256::from(2)), None);
        assert_eq!(layer.account(&a).flatten().map(|i| i.balance), Some(U256::from(5)));
        assert_eq!(layer.account(&Address::with_last_byte(2)), None);
    }

    #[test]
    fn a_created_contract_reads_zero_below_its_own_writes_and_a_destroyed_one_does_not_exist() {
        let a = Address::with_last_byte(1);
        let code = Bytecode::new_raw(vec![0x00].into());
        let mut created = touched(AccountInfo::from_bytecode(code), &[(1, 0, 9)]);
        created.status |= AccountStatus::Created;
        let mut state = EvmState::default();
        state.insert(a, created);
        let mut layer = StateLayer::new();
        layer.apply_evm_state(&state);
        assert_eq!(layer.slot(&a, &U256::from(1)), Some(U256::from(9)));
        assert_eq!(layer.slot(&a, &U256::from(2)), Some(U256::ZERO), "fresh storage");

        let mut gone = touched(AccountInfo::from_balance(U256::from(1)), &[]);
        gone.mark_selfdestruct();
        let mut state = EvmState::default();
        state.insert(a, gone);
        layer.apply_evm_state(&state);
        assert_eq!(layer.account(&a), Some(None));
        assert_eq!(layer.slot(&a, &U256::from(1)), Some(U256::ZERO));
    }

    #[test]
    fn a_layer_on_top_wins_and_its_cleared_accounts_hide_what_was_below() {
        let a = Address::with_last_byte(1);
        let mut below = StateLayer::new();
        below.set_slot(a, U256::from(1), U256::from(1));
        below.set_slot(a, U256::from(2), U256::from(2));
        let mut above = StateLayer::new();
        above.clear_storage(a);
        above.set_slot(a, U256::from(2), U256::from(20));
        below.extend(&above);
        assert_eq!(below.slot(&a, &U256::from(1)), Some(U256::ZERO));
        assert_eq!(below.slot(&a, &U256::from(2)), Some(U256::from(20)));
    }
}
