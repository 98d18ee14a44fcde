//! Facts of one inspected run, read without calling anything: the token transfers that stuck
//! (their frame did not revert), the storage slots a contract's tx changed, and where each such
//! slot sits in a Solidity mapping (its key, found among the run's 64-byte KECCAK256 inputs).

use alloy::{
    primitives::{Address, B256, U256, keccak256, map::HashMap},
    sol_types::SolEvent,
};
use revm::state::EvmState;

use super::inspector::{FrameLog, KeccakInput};
use crate::types::{CallFrame, MappingKey, SlotChange, TokenTransfer, abi::IERC20};

pub(crate) const TRANSFER_TOPIC: B256 = IERC20::Transfer::SIGNATURE_HASH;

/// Struct fields after a mapping entry's first slot that are still named by its key.
const MAX_FIELD: u8 = 8;
/// Mappings nested deeper than this are not followed (`a[x][y][z][w]`).
const MAX_NESTING: usize = 4;

/// ERC-20 transfers emitted by frames that did not revert, in order.
pub(crate) fn token_transfers(logs: &[FrameLog], frames: &[CallFrame]) -> Vec<TokenTransfer> {
    framed_transfers(logs, frames).into_iter().map(|(_, t)| t).collect()
}

/// As `token_transfers`, each with the frame that emitted it.
pub(crate) fn framed_transfers(
    logs: &[FrameLog],
    frames: &[CallFrame],
) -> Vec<(usize, TokenTransfer)> {
    logs.iter()
        .filter(|l| frames.get(l.frame).is_some_and(|f| f.success))
        .filter_map(|l| {
            let topics = l.log.data.topics();
            (topics.len() == 3 && topics[0] == TRANSFER_TOPIC && l.log.data.data.len() == 32).then(
                || {
                    let t = TokenTransfer {
                        token: l.log.address,
                        from: Address::from_word(topics[1]),
                        to: Address::from_word(topics[2]),
                        value: U256::from_be_slice(&l.log.data.data),
                    };
                    (l.frame, t)
                },
            )
        })
        .collect()
}

/// Slot → (key, base) for the mapping entries a set of contracts computed in the run.
#[derive(Debug, Default)]
pub(crate) struct MappingIndex {
    by_slot: HashMap<U256, (B256, U256)>,
}

impl MappingIndex {
    /// Hashes the 64-byte inputs computed by contracts `of` admits (only those: hashing costs).
    pub(crate) fn build(inputs: &[KeccakInput], of: impl Fn(&Address) -> bool) -> Self {
        let mut by_slot = HashMap::default();
        for k in inputs.iter().filter(|k| of(&k.address)) {
            let slot = k.slot.unwrap_or_else(|| U256::from_be_bytes(keccak256(k.input).0));
            let key = B256::from_slice(&k.input[..32]);
            let base = U256::from_be_slice(&k.input[32..]);
            by_slot.insert(slot, (key, base));
        }
        Self { by_slot }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_slot.is_empty()
    }

    /// Where `slot` sits: a mapping entry (or a struct field just after one), nested or not.
    pub(crate) fn decode(&self, slot: U256) -> Option<MappingKey> {
        for field in 0..=MAX_FIELD {
            let Some(entry) = slot.checked_sub(U256::from(field)) else { break };
            let Some(&(key, base)) = self.by_slot.get(&entry) else { continue };
            let mut keys = vec![key];
            let mut base = base;
            for _ in 1..MAX_NESTING {
                match self.by_slot.get(&base) {
                    Some(&(outer, outer_base)) => {
                        keys.insert(0, outer);
                        base = outer_base;
                    }
                    None => break,
                }
            }
            return Some(MappingKey { base, keys, field });
        }
        None
    }
}

/// The slots of `address` the run changed, with their mapping keys where known.
pub(crate) fn storage_changes(
    state: &EvmState,
    address: &Address,
    index: &MappingIndex,
) -> Vec<SlotChange> {
    let Some(account) = state.get(address) else { return Vec::new() };
    let mut out: Vec<SlotChange> = account
        .changed_storage_slots()
        .map(|(slot, value)| SlotChange {
            address: *address,
            slot: *slot,
            before: value.original_value,
            after: value.present_value,
            key: index.decode(*slot),
        })
        .collect();
    out.sort_by_key(|c| c.slot);
    out
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Bytes, Log, LogData};

    use super::*;

    const P: Address = Address::with_last_byte(0xaa);
    const ALICE: Address = Address::with_last_byte(0x01);

    fn input(key: B256, base: U256) -> KeccakInput {
        let mut input = [0u8; 64];
        input[..32].copy_from_slice(key.as_slice());
        input[32..].copy_from_slice(&base.to_be_bytes::<32>());
        KeccakInput { address: P, input, slot: None }
    }

    fn slot_of(key: B256, base: U256) -> U256 {
        let i = input(key, base);
        U256::from_be_bytes(keccak256(i.input).0)
    }

    #[test]
    fn a_mapping_entry_a_nested_one_and_a_struct_field_are_named_by_their_keys() {
        let alice = ALICE.into_word();
        let role = B256::repeat_byte(0x42);
        let outer = slot_of(role, U256::from(3));
        let index = MappingIndex::build(
            &[input(alice, U256::from(1)), input(role, U256::from(3)), input(alice, outer)],
            |a| *a == P,
        );
        let direct = index.decode(slot_of(alice, U256::from(1))).expect("balances[alice]");
        assert_eq!(
            (direct.base, direct.keys.clone(), direct.field),
            (U256::from(1), vec![alice], 0)
        );
        assert!(direct.keyed_by(&ALICE));
        let nested = index.decode(slot_of(alice, outer)).expect("roles[role][alice]");
        assert_eq!((nested.base, nested.keys), (U256::from(3), vec![role, alice]));
        let field = index.decode(slot_of(alice, U256::from(1)) + U256::from(2)).expect("field 2");
        assert_eq!(field.field, 2);
        assert!(index.decode(U256::from(7)).is_none(), "a plain slot has no key");
    }

    #[test]
    fn inputs_of_other_contracts_are_not_hashed() {
        let index = MappingIndex::build(&[input(ALICE.into_word(), U256::ZERO)], |a| *a != P);
        assert!(index.is_empty());
    }

    #[test]
    fn transfers_from_a_reverted_frame_do_not_count() {
        let token = Address::with_last_byte(0x70);
        let log = |frame| FrameLog {
            frame,
            log: Log {
                address: token,
                data: LogData::new_unchecked(
                    vec![TRANSFER_TOPIC, P.into_word(), ALICE.into_word()],
                    Bytes::from(U256::from(5).to_be_bytes_vec()),
                ),
            },
        };
        let frame = |index, success| CallFrame {
            index,
            parent: None,
            depth: 0,
            caller: ALICE,
            target: token,
            code: token,
            scheme: "CALL",
            value: U256::ZERO,
            selector: None,
            success,
            gas_used: 0,
        };
        let transfers = token_transfers(&[log(0), log(1)], &[frame(0, true), frame(1, false)]);
        assert_eq!(transfers.len(), 1);
        assert_eq!(
            (transfers[0].from, transfers[0].to, transfers[0].value),
            (P, ALICE, U256::from(5))
        );
    }
}
