//! A mined block's state change as the node reports it (`debug_traceBlockByHash` with the
//! `prestateTracer` in diff mode): the values every changed key held before the block, and
//! after it. The replay reads the "before" side instead of what the cache may have fetched
//! while the node was already mining the block; the fork moves forward by the "after" side.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy::primitives::{Address, B256, Bytes, U256};
use revm::{bytecode::Bytecode, state::AccountInfo};
use serde::{Deserialize, Deserializer};
use thiserror::Error;

use super::layer::StateLayer;

#[derive(Debug, Error)]
pub enum DiffError {
    #[error("the node's block trace is not a list of per-tx results: {0}")]
    Shape(String),
    #[error("the node's block trace has {traces} results for {txs} transactions")]
    Count { traces: usize, txs: usize },
    #[error("the node's trace of tx {index} failed: {error}")]
    TxFailed { index: usize, error: String },
    #[error("the node's trace of tx {index} names {named}, the block holds {expected}")]
    WrongTx { index: usize, named: B256, expected: B256 },
}

/// One tx's entry in the block trace.
#[derive(Debug, Deserialize)]
struct TxTrace {
    #[serde(rename = "txHash")]
    tx_hash: Option<B256>,
    result: Option<DiffFrame>,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct DiffFrame {
    #[serde(default)]
    pre: BTreeMap<Address, AccountDiff>,
    #[serde(default)]
    post: BTreeMap<Address, AccountDiff>,
}

/// Fields the tracer omits are zero in `pre` and unchanged in `post` (geth's diff mode).
#[derive(Debug, Default, Deserialize)]
struct AccountDiff {
    balance: Option<U256>,
    #[serde(default, deserialize_with = "number_or_quantity")]
    nonce: Option<u64>,
    code: Option<Bytes>,
    #[serde(default)]
    storage: BTreeMap<B256, B256>,
}

/// geth writes the nonce as a JSON number, some nodes as a hex quantity.
fn number_or_quantity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Number(u64),
        Text(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Number(n)) => Ok(Some(n)),
        Some(N::Text(t)) => {
            let t = t.trim();
            let parsed = match t.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => t.parse(),
            };
            parsed.map(Some).map_err(serde::de::Error::custom)
        }
    }
}

/// A block's change: `pre` holds the value of every key the block changed as it was before
/// the block (`None` accounts did not exist); `post` the value after it.
#[derive(Debug, Default)]
pub struct BlockDiff {
    pub pre: StateLayer,
    pub post: StateLayer,
    /// Per tx, the accounts whose state it changed.
    pub changed_by_tx: Vec<Vec<Address>>,
}

impl BlockDiff {
    /// Reads the node's per-tx traces of a block whose txs are `tx_hashes`, in order.
    pub fn from_trace(trace: serde_json::Value, tx_hashes: &[B256]) -> Result<Self, DiffError> {
        let traces: Vec<TxTrace> =
            serde_json::from_value(trace).map_err(|e| DiffError::Shape(e.to_string()))?;
        if traces.len() != tx_hashes.len() {
            return Err(DiffError::Count { traces: traces.len(), txs: tx_hashes.len() });
        }
        let mut builder = DiffBuilder::default();
        for (index, (t, expected)) in traces.into_iter().zip(tx_hashes).enumerate() {
            if let Some(named) = t.tx_hash
                && named != *expected
            {
                return Err(DiffError::WrongTx { index, named, expected: *expected });
            }
            if let Some(error) = t.error {
                return Err(DiffError::TxFailed { index, error });
            }
            builder.add_tx(t.result.unwrap_or_default());
        }
        Ok(builder.finish())
    }

    /// Every account and slot the block changed.
    pub fn changed_keys(&self) -> ChangedKeys {
        ChangedKeys {
            accounts: self.post.accounts().map(|(a, _)| *a).collect(),
            slots: self.post.slots().map(|(k, _)| *k).collect(),
            cleared: self.post.cleared().copied().collect(),
        }
    }
}

/// The keys a block changed: what a rewind must forget.
#[derive(Debug, Default, Clone)]
pub struct ChangedKeys {
    pub accounts: Vec<Address>,
    pub slots: Vec<(Address, U256)>,
    pub cleared: Vec<Address>,
}

impl ChangedKeys {
    pub fn of_layer(layer: &StateLayer) -> Self {
        Self {
            accounts: layer.accounts().map(|(a, _)| *a).collect(),
            slots: layer.slots().map(|(k, _)| *k).collect(),
            cleared: layer.cleared().copied().collect(),
        }
    }
}

#[derive(Default)]
struct DiffBuilder {
    pre: StateLayer,
    post: StateLayer,
    /// Full account state after the txs so far, for accounts changed in the block.
    current: HashMap<Address, Option<AccountInfo>>,
    changed_by_tx: Vec<Vec<Address>>,
    seen_slots: HashSet<(Address, U256)>,
}

impl DiffBuilder {
    fn add_tx(&mut self, frame: DiffFrame) {
        let mut changed = Vec::new();
        // The first mention of a key in the block gives its value before the block.
        for (address, diff) in &frame.pre {
            if !self.current.contains_key(address) && !self.pre.has_account(address) {
                self.pre.set_account(*address, Some(full_info(diff)));
            }
            for (slot, value) in &diff.storage {
                let key = (*address, U256::from_be_bytes(slot.0));
                if self.seen_slots.insert(key) {
                    self.pre.set_slot(key.0, key.1, U256::from_be_bytes(value.0));
                }
            }
        }
        for (address, diff) in &frame.post {
            changed.push(*address);
            let before = match self.current.get(address) {
                Some(info) => info.clone(),
                None => frame.pre.get(address).map(full_info),
            };
            if before.is_none() && !self.pre.has_account(address) {
                // Created in this tx: it did not exist before the block, nor its storage.
                self.pre.set_account(*address, None);
                self.pre.clear_storage(*address);
            }
            let info = merged(before.unwrap_or_default(), diff);
            self.current.insert(*address, Some(info.clone()));
            self.post.set_account(*address, Some(info));
            for (slot, value) in &diff.storage {
                let key = (*address, U256::from_be_bytes(slot.0));
                if self.seen_slots.insert(key) {
                    // Not in `pre`: it held zero before this tx, hence before the block.
                    self.pre.set_slot(key.0, key.1, U256::ZERO);
                }
                self.post.set_slot(key.0, key.1, U256::from_be_bytes(value.0));
            }
            // A slot in `pre` but not in `post` became zero.
            if let Some(pre) = frame.pre.get(address) {
                for slot in pre.storage.keys().filter(|s| !diff.storage.contains_key(*s)) {
                    self.post.set_slot(*address, U256::from_be_bytes(slot.0), U256::ZERO);
                }
            }
        }
        // In `pre` but not in `post`: destroyed.
        for address in frame.pre.keys().filter(|a| !frame.post.contains_key(*a)) {
            changed.push(*address);
            self.current.insert(*address, None);
            self.post.clear_storage(*address);
            self.post.set_account(*address, None);
        }
        self.changed_by_tx.push(changed);
    }

    fn finish(self) -> BlockDiff {
        BlockDiff { pre: self.pre, post: self.post, changed_by_tx: self.changed_by_tx }
    }
}

fn full_info(diff: &AccountDiff) -> AccountInfo {
    merged(AccountInfo::default(), diff)
}

fn merged(mut info: AccountInfo, diff: &AccountDiff) -> AccountInfo {
    if let Some(balance) = diff.balance {
        info.balance = balance;
    }
    if let Some(nonce) = diff.nonce {
        info.nonce = nonce;
    }
    if let Some(code) = &diff.code {
        let bytecode = Bytecode::new_raw(code.clone());
        info.code_hash = bytecode.hash_slow();
        info.code = Some(bytecode);
    }
    info
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const A: Address = Address::with_last_byte(0xa);
    const B: Address = Address::with_last_byte(0xb);

    fn hashes(n: u8) -> Vec<B256> {
        (1..=n).map(B256::with_last_byte).collect()
    }

    #[test]
    fn pre_side_is_the_first_mention_and_post_side_the_last() {
        // tx1: A pays B; tx2: A pays again and writes a slot of B.
        let trace = json!([
            {"txHash": B256::with_last_byte(1), "result": {
                "pre": {A.to_string(): {"balance": "0x64", "nonce": 4}, B.to_string(): {"balance": "0x0"}},
                "post": {A.to_string(): {"balance": "0x50", "nonce": 5}, B.to_string(): {"balance": "0x14"}}}},
            {"txHash": B256::with_last_byte(2), "result": {
                "pre": {A.to_string(): {"balance": "0x50", "nonce": 5},
                        B.to_string(): {"balance": "0x14", "code": "0x00", "storage": {B256::with_last_byte(1).to_string(): B256::with_last_byte(7)}}},
                "post": {A.to_string(): {"balance": "0x40", "nonce": 6}, B.to_string(): {"storage": {}}}}}
        ]);
        let diff = BlockDiff::from_trace(trace, &hashes(2)).expect("parses");
        let pre_a = diff.pre.account(&A).flatten().expect("A before");
        assert_eq!((pre_a.balance, pre_a.nonce), (U256::from(100), 4));
        let post_a = diff.post.account(&A).flatten().expect("A after");
        assert_eq!((post_a.balance, post_a.nonce), (U256::from(64), 6));
        // B's slot 1 was 7 before the block and is zero after (in pre, not in post).
        assert_eq!(diff.pre.slot(&B, &U256::from(1)), Some(U256::from(7)));
        assert_eq!(diff.post.slot(&B, &U256::from(1)), Some(U256::ZERO));
        assert_eq!(diff.changed_by_tx, vec![vec![A, B], vec![A, B]]);
    }

    #[test]
    fn a_created_account_did_not_exist_before_and_a_destroyed_one_does_not_after() {
        let trace = json!([
            {"result": {"pre": {A.to_string(): {"balance": "0x1"}},
                        "post": {B.to_string(): {"balance": "0x0", "nonce": 1, "code": "0x6000",
                                     "storage": {B256::with_last_byte(3).to_string(): B256::with_last_byte(9)}}}}}
        ]);
        let diff = BlockDiff::from_trace(trace, &hashes(1)).expect("parses");
        assert_eq!(diff.pre.account(&B), Some(None));
        assert_eq!(diff.pre.slot(&B, &U256::from(3)), Some(U256::ZERO));
        assert_eq!(diff.post.slot(&B, &U256::from(3)), Some(U256::from(9)));
        assert!(diff.post.account(&B).flatten().is_some_and(|i| !i.is_empty_code_hash()));
        assert_eq!(diff.post.account(&A), Some(None), "in pre, not in post: destroyed");
    }

    #[test]
    fn a_trace_that_does_not_match_the_block_is_an_error_not_a_guess() {
        let one = json!([{"result": {"pre": {}, "post": {}}}]);
        assert!(matches!(
            BlockDiff::from_trace(one.clone(), &hashes(2)),
            Err(DiffError::Count { traces: 1, txs: 2 })
        ));
        let named = json!([{"txHash": B256::with_last_byte(9), "result": {}}]);
        assert!(matches!(
            BlockDiff::from_trace(named, &hashes(1)),
            Err(DiffError::WrongTx { index: 0, .. })
        ));
        let failed = json!([{"error": "execution timeout"}]);
        assert!(matches!(
            BlockDiff::from_trace(failed, &hashes(1)),
            Err(DiffError::TxFailed { index: 0, .. })
        ));
        assert!(BlockDiff::from_trace(json!({"x": 1}), &hashes(1)).is_err());
    }
}
