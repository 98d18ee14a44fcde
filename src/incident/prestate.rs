//! A run's reads (the fork view's `ReadLog`) in the store's form: existing accounts with their
//! code, and every slot, sorted; with the signed tx and block env a replay needs.

use alloy::primitives::B256;
use revm::{database_interface::DatabaseRef, primitives::KECCAK_EMPTY};

use super::{PreState, PreStateAccount, PreStateSlot, ReplayRun};
use crate::fork::{ForkCache, ReadLog};

impl PreState {
    /// `fork` supplies code the run's overlay already held (it was not read through the view).
    pub fn from_reads(
        attack_tx: B256,
        block: u64,
        mut reads: ReadLog,
        fork: &ForkCache,
        mut run: ReplayRun,
    ) -> Self {
        let mut accounts = Vec::with_capacity(reads.accounts.len());
        let mut code = Vec::new();
        for (address, info) in &reads.accounts {
            // Read as absent: a replay's empty state answers the same.
            let Some(info) = info else { continue };
            accounts.push(PreStateAccount {
                address: *address,
                balance: info.balance,
                nonce: info.nonce,
                code_hash: info.code_hash,
            });
            if info.code_hash == KECCAK_EMPTY || info.code_hash.is_zero() {
                continue;
            }
            let bytecode = match reads.code.remove(&info.code_hash) {
                Some(c) => Some(c),
                None => fork.code_by_hash_ref(info.code_hash).ok(),
            };
            if let Some(bytecode) = bytecode.filter(|c| !c.is_empty()) {
                code.push((info.code_hash, bytecode.original_bytes()));
            }
        }
        accounts.sort_by_key(|a| a.address);
        code.sort_by_key(|(h, _)| *h);
        code.dedup_by_key(|(h, _)| *h);
        let mut storage: Vec<PreStateSlot> = reads
            .slots
            .iter()
            .map(|((address, slot), value)| PreStateSlot {
                address: *address,
                slot: *slot,
                value: *value,
            })
            .collect();
        storage.sort_by_key(|s| (s.address, s.slot));
        run.block_hashes = reads.block_hashes.into_iter().collect();
        run.block_hashes.sort_unstable();
        PreState { attack_tx, block, accounts, storage, code, run: Some(run) }
    }
}
