//! One block, replayed on the fork at its parent: every tx runs through the same rules as a
//! pending one (an attack from private order flow shows here), each on the state the txs
//! before it left, and the result is checked against the node's receipts (and its state diff,
//! when one is given). The fork is never written here: the caller applies the returned layer.

use std::{sync::Arc, time::Instant};

use alloy::{
    consensus::{TxEnvelope, transaction::Recovered},
    eips::Encodable2718,
    primitives::{Address, B256, Bytes, U256},
};
use revm::database_interface::DatabaseRef;

use crate::{
    config::{Asset, Config},
    detect::{CumulativeTracker, detect},
    fork::{BlockDiff, FetchWait, SharedFork, StateLayer},
    incident::{PreState, ReplayRun},
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
    /// `None`: no node gave a receipt list that matches the block.
    pub receipt: Option<ReceiptSummary>,
}

/// A mined tx with findings.
#[derive(Debug)]
pub struct MinedFinding {
    pub index: usize,
    pub tx: MinedTx,
    pub outcome: SimOutcome,
    pub findings: Vec<Finding>,
    /// What the tx's run read, for `check --replay` (a second, recording run: findings only).
    pub prestate: Option<Box<PreState>>,
}

/// Where the block's state change applied to the fork came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerSource {
    /// The node's own state diff of the block (our replay is checked against it).
    NodeDiff,
    /// Our replay, which matched every receipt.
    Replay,
    /// Neither can be trusted: the fork must be fetched afresh at this block.
    None,
}

#[derive(Debug)]
pub struct BlockReplay {
    /// The block's changes, to apply to the fork (empty with `LayerSource::None`).
    pub layer: StateLayer,
    pub layer_source: LayerSource,
    /// Why our replay disagreed with the chain, if it did. Findings past that point are dropped.
    pub divergence: Option<String>,
    pub findings: Vec<MinedFinding>,
    /// Per protected contract: holdings before the block.
    pub holdings_before: Vec<(Address, Vec<(Asset, U256)>)>,
    /// Contracts the block created (as far as the replay got).
    pub deployed: Vec<Address>,
    pub replay_us: u64,
    /// What the replay waited on the nodes for (values fetched while the node sat at the
    /// parent are read again).
    pub waited: FetchWait,
}

/// Replays `txs` (block `block`) on `fork`, which holds the state of the block's parent;
/// `diff` is the node's state diff of the block, when it gave one.
pub fn replay_block(
    config: &Config,
    fork: &SharedFork,
    block: SimBlock,
    chain_id: u64,
    txs: &[MinedTx],
    diff: Option<&BlockDiff>,
    cumulative: Option<&CumulativeTracker>,
) -> BlockReplay {
    let started = Instant::now();
    if let Some(tracker) = cumulative {
        // Sums that went quiet for the window are swept here, after each block, not by a
        // pending tx's observation.
        tracker.prune(block.number);
    }
    let mut sim = Simulator::new(config, Arc::clone(fork), block, chain_id);
    // A value the cache fetched while the node was already mining this block may hold the
    // block's own writes (anvil serves "the state at N" from its live state for a moment after
    // mining N+1): the node's "before" values win when it gave its diff; otherwise values
    // fetched at the parent are read again, now that the block is history.
    match diff {
        Some(diff) => sim.set_layers(vec![Arc::new(diff.pre.clone())]),
        None => sim.fork_view_mut().set_settled_after(Some(fork.block())),
    }
    // The block's state in a few batched rounds, not one round trip per tx.
    if let Err(e) = sim.prefetch_for(txs.iter().map(|t| &t.tx), 4) {
        tracing::debug!(block = block.number, error = %e, "block prefetch failed; read per tx");
    }
    let holdings_before = config
        .protected
        .iter()
        .map(|p| (p.address, sim.holdings_of(p).unwrap_or_default()))
        .collect();

    let mut findings = Vec::new();
    let mut divergence = None;
    let mut deployed = Vec::new();
    for (index, mined) in txs.iter().enumerate() {
        sim.invalidate_baselines();
        let (outcome, state) = match sim.simulate_with_state(mined.hash, &mined.tx) {
            Ok(run) => run,
            Err(e) => {
                divergence = Some(format!("replay of {} (index {index}) failed: {e}", mined.hash));
                break;
            }
        };
        if let Some(receipt) = mined.receipt
            && (outcome.success != receipt.success || outcome.gas_used != receipt.gas_used)
        {
            divergence = Some(format!(
                "replay of {} (index {index}) used {} gas (success {}), the receipt {} (success {})",
                mined.hash, outcome.gas_used, outcome.success, receipt.gas_used, receipt.success
            ));
            break;
        }
        let mut found = detect(&outcome, &config.protected);
        if let Some(tracker) = cumulative {
            found.extend(tracker.observe(&outcome, &config.protected));
        }
        let created = if outcome.success && found.is_empty() {
            crate::probe::created_contracts(&state, mined.tx.signer())
        } else {
            Vec::new()
        };
        // What the tx read, recorded on the state before it (findings only, for `check --replay`).
        let prestate =
            if found.is_empty() { None } else { record_prestate(&mut sim, mined, block, chain_id) };
        deployed.extend(
            state
                .iter()
                .filter(|(_, a)| a.is_created() && !a.info.is_empty_code_hash())
                .map(|(address, _)| *address),
        );
        sim.fork_view_mut().local_mut().apply_evm_state(&state);
        // A deployment nobody saw pending: its new contract is probed on the state it left.
        if !created.is_empty() {
            let (report, _) = crate::probe::probe_created(
                &mut sim,
                &created,
                &outcome,
                &config.protected,
                crate::probe::ProbeBudget::default(),
                // A mined block has no tx waiting behind it.
                &|| false,
            );
            sim.invalidate_baselines();
            if let Some(report) = report
                && let Some(probed) = report.outcome
            {
                findings.push(MinedFinding {
                    index,
                    tx: mined.clone(),
                    outcome: probed,
                    findings: report.findings,
                    prestate: None,
                });
                continue;
            }
        }
        if !found.is_empty() {
            findings.push(MinedFinding {
                index,
                tx: mined.clone(),
                outcome,
                findings: found,
                prestate,
            });
        }
    }
    if divergence.is_none()
        && let Some(diff) = diff
    {
        divergence = differs_from_node(&sim, diff);
    }
    if divergence.is_none() && txs.iter().any(|t| t.receipt.is_none()) {
        divergence = Some("no node gave receipts matching the block's txs".into());
    }
    let local = std::mem::take(sim.fork_view_mut().local_mut());
    let waited = sim.fork_view().waited();
    let receipts_verified = txs.iter().all(|t| t.receipt.is_some());
    let (layer, layer_source) = match (diff, &divergence) {
        // The node's diff is the block's change, whatever our replay made of it.
        (Some(diff), _) if receipts_verified => (diff.post.clone(), LayerSource::NodeDiff),
        (None, None) => (local, LayerSource::Replay),
        // A block the nodes cannot vouch for: the fork is fetched afresh at it.
        _ => (StateLayer::new(), LayerSource::None),
    };
    BlockReplay {
        layer,
        layer_source,
        divergence,
        findings,
        holdings_before,
        deployed,
        replay_us: started.elapsed().as_micros() as u64,
        waited,
    }
}

/// Runs `mined` again on the state the block's earlier txs left, recording what it reads.
fn record_prestate(
    sim: &mut Simulator,
    mined: &MinedTx,
    block: SimBlock,
    chain_id: u64,
) -> Option<Box<PreState>> {
    sim.start_recording();
    let run = sim.simulate(mined.hash, &mined.tx);
    let reads = sim.take_recording();
    sim.invalidate_baselines();
    if let Err(e) = run {
        tracing::warn!(tx = %mined.hash, error = %e, "pre-state not recorded: the tx did not run again");
        return None;
    }
    let run = ReplayRun {
        chain_id,
        sim_block: block,
        raw_tx: Bytes::from(mined.tx.inner().encoded_2718()),
        block_hashes: Vec::new(),
    };
    Some(Box::new(PreState::from_reads(mined.hash, block.number, reads?, sim.fork(), run)))
}

/// Every key the node says the block changed must read, after our replay, as the node says.
fn differs_from_node(sim: &Simulator, diff: &BlockDiff) -> Option<String> {
    let view = sim.fork_view();
    for (address, info) in diff.post.accounts() {
        let ours = match view.basic_ref(*address) {
            Ok(v) => v,
            Err(e) => return Some(format!("reading {address} after the replay: {e}")),
        };
        let same = match (&ours, info) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.balance == b.balance && a.nonce == b.nonce && a.code_hash == b.code_hash
            }
            (Some(a), None) | (None, Some(a)) => a.is_empty(),
        };
        if !same {
            return Some(format!(
                "after the replay {address} holds {:?}, the node says {:?}",
                ours.map(|a| (a.balance, a.nonce)),
                info.as_ref().map(|a| (a.balance, a.nonce))
            ));
        }
    }
    for ((address, slot), value) in diff.post.slots() {
        match view.storage_ref(*address, *slot) {
            Ok(ours) if ours == *value => {}
            Ok(ours) => {
                return Some(format!(
                    "after the replay {address} slot {slot:#x} holds {ours:#x}, the node says {value:#x}"
                ));
            }
            Err(e) => return Some(format!("reading {address} slot {slot:#x}: {e}")),
        }
    }
    None
}
