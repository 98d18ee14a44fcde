//! Moving the fork to a new head: replay the block's txs on a copy of the cache and apply
//! their diffs; when a replay disagrees with a receipt, start a fresh cache instead.

use std::sync::Arc;

use alloy::{
    consensus::{TxEnvelope, transaction::Recovered},
    primitives::B256,
};
use revm::context::result::ExecutionResult;

use super::{SimBlock, Simulator};
use crate::{config::Config, fork::SharedFork};

/// What a block's tx did according to the node.
#[derive(Debug, Clone, Copy)]
pub struct ReceiptSummary {
    pub success: bool,
    pub gas_used: u64,
}

/// How the fork reached the new head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// The block's diffs were applied to a copy of the cache.
    Replayed { txs: usize },
    /// A replay disagreed with the node (or failed): a fresh cache at the new head.
    Refetched { reason: String },
}

/// Returns the fork at `header_block.number`, given the block's txs with their receipts.
pub fn advance_fork(
    config: &Config,
    fork: &SharedFork,
    header_block: SimBlock,
    chain_id: u64,
    txs: &[(B256, Recovered<TxEnvelope>, ReceiptSummary)],
) -> (SharedFork, Advance) {
    // Misses during the replay must read the parent's state; only then does the copy move on.
    let next = Arc::new(fork.copy());
    let mut replayer = Simulator::new(config, Arc::clone(&next), header_block, chain_id);
    for (hash, tx, receipt) in txs {
        let mismatch = match replayer.execute(*hash, tx) {
            Ok((result, state)) => {
                let same = result.is_success() == receipt.success
                    && result.tx_gas_used() == receipt.gas_used;
                if same {
                    next.apply_state(&state);
                    None
                } else {
                    Some(format!(
                        "replay of {hash} gave {} / {} gas, the node {} / {} gas",
                        status(&result),
                        result.tx_gas_used(),
                        if receipt.success { "success" } else { "failure" },
                        receipt.gas_used
                    ))
                }
            }
            Err(e) => Some(format!("replay of {hash} failed: {e}")),
        };
        if let Some(reason) = mismatch {
            return (Arc::new(fork.successor(header_block.number)), Advance::Refetched { reason });
        }
    }
    next.repin(header_block.number);
    (next, Advance::Replayed { txs: txs.len() })
}

fn status(result: &ExecutionResult) -> &'static str {
    if result.is_success() { "success" } else { "failure" }
}
