//! A detection's pre-state for `check --replay`: once the pause has left, the tx runs again on
//! the same worker with its view recording every value the run reads (the tx, the rules' views,
//! the invariants' baselines), and the reads go to the incident store off this thread. Only txs
//! with findings pay for it; every other tx runs with recording off.

use std::collections::BTreeSet;

use alloy::{
    eips::Encodable2718,
    primitives::{Address, B256, Bytes},
};
use revm::{database_interface::DatabaseRef, primitives::KECCAK_EMPTY};

use super::{WorkerContext, chains::ChainRun};
use crate::{
    detect::detect,
    fork::ReadLog,
    incident::{PreState, PreStateAccount, PreStateSlot, ReplayRun},
    simulate::Simulator,
    types::{Finding, PendingTx},
};

/// Runs `tx` again recording its reads and queues them for the store. Never fails the worker:
/// a run that cannot be repeated is logged and the incident simply has no replay.
pub(super) fn record_prestate(
    ctx: &WorkerContext,
    simulator: &mut Simulator,
    tx: &PendingTx,
    generation: u64,
    lane: usize,
    live: &Verdict,
) {
    let Some(incidents) = &ctx.prestate else { return };
    let started = std::time::Instant::now();
    simulator.set_defer_fetch(false);
    simulator.start_recording();
    let run = ctx.chains.simulate(simulator, tx, generation, lane);
    let reads = simulator.take_recording();
    let outcome = match run {
        Ok(ChainRun::Done(done)) => done.outcome,
        Ok(ChainRun::Parked { .. }) => {
            tracing::warn!(tx = %tx.hash, "pre-state not recorded: the tx's predecessors are gone");
            return;
        }
        Err(e) => {
            tracing::warn!(tx = %tx.hash, error = %e, "pre-state not recorded: the tx did not run again");
            return;
        }
    };
    let Some(reads) = reads else { return };
    let again = detect(&outcome, &ctx.config.protected);
    if verdict(&again) != *live {
        // The fork moved between the runs; what is kept is what the second run read.
        tracing::warn!(tx = %tx.hash, "the recording run's findings differ from the live verdict");
    }
    let run = ReplayRun {
        chain_id: ctx.chain_id,
        sim_block: simulator.block(),
        raw_tx: Bytes::from(tx.tx.inner().encoded_2718()),
        block_hashes: reads.block_hashes.iter().map(|(n, h)| (*n, *h)).collect(),
    };
    let prestate = prestate_of(tx.hash, outcome.block_number, reads, simulator, run);
    tracing::debug!(
        tx = %tx.hash,
        accounts = prestate.accounts.len(),
        slots = prestate.storage.len(),
        record_us = started.elapsed().as_micros() as u64,
        "pre-state recorded"
    );
    incidents.record_prestate(prestate);
}

/// Rule and contract of each finding: what a replay must agree on.
pub type Verdict = BTreeSet<(&'static str, Address)>;

pub fn verdict(findings: &[Finding]) -> Verdict {
    findings.iter().map(|f| (f.rule, f.contract)).collect()
}

/// The store's form of what a run read: existing accounts with their code, and every slot.
fn prestate_of(
    attack_tx: B256,
    block: u64,
    mut reads: ReadLog,
    simulator: &Simulator,
    run: ReplayRun,
) -> PreState {
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
        // Code the overlay already held was not read through the view: the fork has it.
        let bytecode = match reads.code.remove(&info.code_hash) {
            Some(c) => Some(c),
            None => simulator.fork().code_by_hash_ref(info.code_hash).ok(),
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
    PreState { attack_tx, block, accounts, storage, code, run: Some(run) }
}
