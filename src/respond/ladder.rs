//! The pre-signed ladder: for every protected contract, its pause signed at a ladder of fee
//! levels for the guardian nonce that contract's next pause will use (its in-flight nonce
//! when a pause is in flight, for a replacement), so the hot path picks bytes instead of
//! signing. Jobs are built under the responder's lock, signed outside it, installed under it.

use std::{collections::HashMap, sync::Arc, time::Instant};

use alloy::primitives::{Address, B256, Bytes};
use serde::Serialize;

use super::{
    Route,
    fees::PauseFees,
    pauser::{PauseTx, SigningKey},
};

/// One pre-signed pause.
#[derive(Debug, Clone)]
pub(super) struct Rung {
    pub(super) fees: PauseFees,
    pub(super) tx_hash: B256,
    pub(super) raw: Bytes,
}

/// One contract's pre-signed pauses, all with one guardian nonce, cheapest first.
#[derive(Debug, Clone)]
pub(super) struct ContractRungs {
    pub(super) nonce: u64,
    pub(super) tx: PauseTx,
    pub(super) rungs: Vec<Rung>,
}

impl ContractRungs {
    /// The cheapest rung `fits`.
    pub(super) fn cheapest(&self, fits: impl Fn(PauseFees) -> bool) -> Option<&Rung> {
        self.rungs.iter().find(|r| fits(r.fees))
    }
}

/// The pre-signed pauses of every contract that has some.
#[derive(Debug, Default)]
pub(super) struct Ladder {
    by_contract: HashMap<Address, ContractRungs>,
}

impl Ladder {
    /// `contract`'s rungs if they were signed for guardian nonce `nonce` and Safe nonce
    /// `safe_nonce` (a pause signed for another nonce would never be mined, or would revert).
    pub(super) fn for_nonce(
        &self,
        contract: &Address,
        nonce: u64,
        safe_nonce: Option<u64>,
    ) -> Option<&ContractRungs> {
        self.by_contract.get(contract).filter(|c| c.nonce == nonce && c.tx.safe_nonce == safe_nonce)
    }

    pub(super) fn insert(&mut self, contract: Address, rungs: ContractRungs) {
        self.by_contract.insert(contract, rungs);
    }

    pub(super) fn remove(&mut self, contract: &Address) {
        self.by_contract.remove(contract);
    }

    pub(super) fn rungs(&self) -> usize {
        self.by_contract.values().map(|c| c.rungs.len()).sum()
    }
}

/// One contract's part of a job.
#[derive(Debug)]
pub(super) struct JobEntry {
    pub(super) contract: Address,
    pub(super) target: Address,
    pub(super) calldata: Bytes,
    pub(super) nonce: u64,
    pub(super) safe_nonce: Option<u64>,
    pub(super) gas_limit: u64,
    /// Only levels at least this high (a replacement must pay 12.5% over the pause in flight).
    pub(super) min: Option<PauseFees>,
}

/// A ladder to sign: what the responder knew when the job was made. Signing needs no lock.
#[derive(Debug)]
pub struct LadderJob {
    pub(super) key: Arc<SigningKey>,
    pub(super) route: Route,
    pub(super) levels: Vec<PauseFees>,
    pub(super) entries: Vec<JobEntry>,
}

/// A signed job, to be installed into the responder it came from.
#[derive(Debug)]
pub struct SignedLadder {
    pub(super) entries: Vec<(Address, ContractRungs)>,
    pub(super) sign_us: f64,
}

impl LadderJob {
    /// Signs every level for every entry (one Safe signature per entry, when the Safe needs one).
    pub fn sign(self) -> SignedLadder {
        let started = Instant::now();
        let entries = self
            .entries
            .into_iter()
            .map(|e| {
                let tx = self.route.pause_tx(
                    &self.key,
                    e.target,
                    &e.calldata,
                    e.gas_limit,
                    e.safe_nonce,
                );
                let rungs = self
                    .levels
                    .iter()
                    .filter(|l| e.min.is_none_or(|m| l.at_least(m)))
                    .map(|&fees| {
                        let (tx_hash, raw) = self.key.sign_tx(&tx, e.nonce, fees);
                        Rung { fees, tx_hash, raw }
                    })
                    .collect();
                (e.contract, ContractRungs { nonce: e.nonce, tx, rungs })
            })
            .collect();
        SignedLadder { entries, sign_us: started.elapsed().as_secs_f64() * 1e6 }
    }
}

/// What a `prepare` or `refill` did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LadderReport {
    /// Contracts whose rungs were signed.
    pub contracts: usize,
    /// Pauses signed.
    pub signed: usize,
    /// Contracts whose rungs were still valid when the job was installed.
    pub installed: usize,
    /// Time spent signing (outside the responder's lock).
    pub sign_us: f64,
    /// Pre-signed pauses held after installing.
    pub held: usize,
}
