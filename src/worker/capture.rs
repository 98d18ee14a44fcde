//! A detection's pre-state for `check --replay`: once the pause has left, the tx runs again on
//! the same worker with its view recording every value the run reads (the tx, the rules' views,
//! the invariants' baselines), and the reads go to the incident store off this thread. Only txs
//! with findings pay for it; every other tx runs with recording off.

use std::collections::BTreeSet;

use alloy::{
    eips::Encodable2718,
    primitives::{Address, Bytes},
};

use super::{WorkerContext, chains::ChainRun};
use crate::{
    detect::detect,
    incident::{PreState, ReplayRun},
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
        Ok(ChainRun::Parked { .. } | ChainRun::AwaitingCreation { .. }) => {
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
        block_hashes: Vec::new(),
    };
    let prestate =
        PreState::from_reads(tx.hash, outcome.block_number, reads, simulator.fork(), run);
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
