//! One block, replayed on a copy of the fork: every tx runs through the same rules as a
//! pending one (an attack from private order flow shows here), its diff is applied, and the
//! result is checked against the node's receipts.

use std::sync::Arc;

use alloy::{
    consensus::{TxEnvelope, transaction::Recovered},
    primitives::{Address, B256, U256},
};

use crate::{
    config::{Asset, Config},
    detect::detect,
    fork::{ForkCache, SharedFork},
    simulate::{SimBlock, Simulator},
    types::{Finding, SimOutcome},
};

/// One asset of a contract, before and after a block.
pub type HoldingBeforeAfter = (Asset, U256, U256);

/// What a block's tx did according to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptSummary {
    pub success: bool,
    pub gas_used: u64,
}

/// A mined tx as the node reported it.
#[derive(Debug, Clone)]
pub struct MinedTx {
    pub hash: B256,
    pub tx: Recovered<TxEnvelope>,
    pub receipt: ReceiptSummary,
}

/// A mined tx with findings.
#[derive(Debug)]
pub struct MinedFinding {
    pub index: usize,
    pub tx: MinedTx,
    pub outcome: SimOutcome,
    pub findings: Vec<Finding>,
}

#[derive(Debug)]
pub struct BlockReplay {
    pub fork: SharedFork,
    /// `None`: replayed and matched every receipt; else why a fresh cache was taken instead.
    pub refetched: Option<String>,
    pub findings: Vec<MinedFinding>,
    /// Per protected contract: `paused()` after the block, when it has one.
    pub paused: Vec<(Address, Option<bool>)>,
    /// Per protected contract: holdings before and after the block.
    pub holdings: Vec<(Address, Vec<HoldingBeforeAfter>)>,
}

/// Replays `txs` (block `block`) on a copy of `fork`.
pub fn replay_block(
    config: &Config,
    fork: &SharedFork,
    block: SimBlock,
    chain_id: u64,
    txs: &[MinedTx],
) -> BlockReplay {
    let mut before_sim = Simulator::new(config, Arc::clone(fork), block, chain_id);
    let before: Vec<_> = config
        .protected
        .iter()
        .map(|p| (p.address, before_sim.holdings_of(p).unwrap_or_default()))
        .collect();

    let next = Arc::new(fork.copy());
    let mut sim = Simulator::new(config, Arc::clone(&next), block, chain_id);
    let mut findings = Vec::new();
    let mut refetched = None;
    for (index, mined) in txs.iter().enumerate() {
        sim.invalidate_baselines();
        if let Ok(outcome) = sim.simulate(mined.hash, &mined.tx) {
            let found = detect(&outcome, &config.protected);
            if !found.is_empty() {
                findings.push(MinedFinding { index, tx: mined.clone(), outcome, findings: found });
            }
        }
        let matched = match sim.execute(mined.hash, &mined.tx) {
            Ok((result, state))
                if result.is_success() == mined.receipt.success
                    && result.tx_gas_used() == mined.receipt.gas_used =>
            {
                next.apply_state(&state);
                None
            }
            Ok((result, _)) => Some(format!(
                "replay of {} used {} gas (success {}), the receipt {} (success {})",
                mined.hash,
                result.tx_gas_used(),
                result.is_success(),
                mined.receipt.gas_used,
                mined.receipt.success
            )),
            Err(e) => Some(format!("replay of {} failed: {e}", mined.hash)),
        };
        if let Some(reason) = matched {
            refetched = Some(reason);
            break;
        }
    }
    let fork: SharedFork = match &refetched {
        None => {
            next.repin(block.number);
            next
        }
        // Only the findings up to the divergence are kept: past it the replay is not the chain.
        Some(_) => Arc::new(ForkCache::successor(fork, block.number)),
    };
    let mut after_sim = Simulator::new(config, Arc::clone(&fork), block, chain_id);
    let _ = after_sim.warm();
    let paused = config
        .protected
        .iter()
        .map(|p| (p.address, after_sim.read_paused(p.address).ok().flatten()))
        .collect();
    let holdings = config
        .protected
        .iter()
        .zip(before)
        .map(|(p, (address, before))| {
            let after = after_sim.holdings_of(p).unwrap_or_default();
            let joined = before
                .iter()
                .map(|(asset, b)| {
                    let a =
                        after.iter().find(|(x, _)| x == asset).map(|(_, v)| *v).unwrap_or_default();
                    (*asset, *b, a)
                })
                .collect();
            (address, joined)
        })
        .collect();
    BlockReplay { fork, refetched, findings, paused, holdings }
}
