//! Cumulative drain: takes that nothing in the books accounts for, each below the threshold,
//! summed per protected contract and asset over a window of recent blocks and the pending txs
//! already seen — per initiator (the signer) and per beneficiary (where the funds end). A tx
//! that would take a sum past the threshold is a finding, so a drain split across many txs is
//! stopped once, not after the threshold has been crossed many times over.

use std::{collections::HashMap, sync::Mutex};

use alloy::primitives::{Address, B256, U256};
use dashmap::DashMap;
use serde::Serialize;

use super::{name_of, rule_names};
use crate::{
    config::{Asset, ProtectedContract},
    types::{
        AssetLedger, ContractLedger, CumulativeEvidence, Evidence, Finding, Severity, SimOutcome,
    },
};

/// One take counted in a running sum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Take {
    pub block: u64,
    pub tx: B256,
    pub amount: U256,
}

type Key = (Address, Asset, Address);

/// One key's takes within the window in the order they came, and their total, kept as takes
/// come and go so a tx adds to a sum in constant time however many takes it holds (a flood of
/// small pending takes from one actor costs each of them nothing more).
#[derive(Debug)]
struct RunningSum {
    takes: Vec<Take>,
    /// Where each tx's take sits in `takes`.
    index: HashMap<B256, usize>,
    total: U256,
    /// No take is from an earlier block (a bound: a take seen again may since have moved on).
    oldest_block: u64,
}

impl Default for RunningSum {
    fn default() -> Self {
        Self { takes: Vec::new(), index: HashMap::new(), total: U256::ZERO, oldest_block: u64::MAX }
    }
}

impl RunningSum {
    /// Adds a take, or replaces the one of the same tx (pending, then mined) in its place.
    fn add(&mut self, take: Take) {
        self.oldest_block = self.oldest_block.min(take.block);
        match self.index.get(&take.tx) {
            Some(&i) => {
                self.total =
                    self.total.saturating_sub(self.takes[i].amount).saturating_add(take.amount);
                self.takes[i] = take;
            }
            None => {
                self.total = self.total.saturating_add(take.amount);
                self.index.insert(take.tx, self.takes.len());
                self.takes.push(take);
            }
        }
    }

    /// Drops the takes from before block `oldest`; nothing to scan unless one may be.
    fn drop_before(&mut self, oldest: u64) {
        if self.oldest_block >= oldest {
            return;
        }
        self.takes.retain(|t| t.block >= oldest);
        self.index = self.takes.iter().enumerate().map(|(i, t)| (t.tx, i)).collect();
        self.total = self.takes.iter().fold(U256::ZERO, |s, t| s.saturating_add(t.amount));
        self.oldest_block = self.takes.iter().map(|t| t.block).min().unwrap_or(u64::MAX);
    }
}

/// Running sums of unaccounted takes, shared by the workers and the block guard.
#[derive(Debug)]
pub struct CumulativeTracker {
    window_blocks: u64,
    /// Overrides each contract's drain threshold when set.
    threshold_bps: Option<u32>,
    takes: DashMap<Key, RunningSum>,
    pruned_at: Mutex<u64>,
}

impl CumulativeTracker {
    pub fn new(window_blocks: u64, threshold_bps: Option<u32>) -> Self {
        Self { window_blocks, threshold_bps, takes: DashMap::new(), pruned_at: Mutex::new(0) }
    }

    pub fn window_blocks(&self) -> u64 {
        self.window_blocks
    }

    /// Counts the outcome's unaccounted takes and returns a finding for every sum this tx
    /// brings to the threshold. A tx seen pending and then mined is counted once. On an
    /// attack's path: a take joins its sum in constant time, the sum's takes are copied only
    /// for a finding, and the sweep of every sum is left to the block guard (`prune`).
    pub fn observe(&self, outcome: &SimOutcome, protected: &[ProtectedContract]) -> Vec<Finding> {
        let mut findings = Vec::new();
        if !outcome.success {
            return findings;
        }
        let oldest = outcome.block_number.saturating_sub(self.window_blocks);
        for (p, ledger, a, takes) in counted_takes(outcome, protected) {
            let threshold = self.threshold_bps.unwrap_or(p.drain_threshold_bps);
            let total: U256 = takes.iter().fold(U256::ZERO, |s, (_, v)| s.saturating_add(*v));
            // The initiator and each beneficiary carry a running sum of their own.
            let mut keys: Vec<(Address, U256)> = vec![(outcome.from, total)];
            keys.extend(takes.iter().filter(|(t, _)| *t != outcome.from).copied());
            for (actor, amount) in keys {
                let key = (ledger.contract, a.asset, actor);
                let take = Take { block: outcome.block_number, tx: outcome.tx_hash, amount };
                let mut running = self.takes.entry(key).or_default();
                running.drop_before(oldest);
                running.add(take);
                let bps = running.total.saturating_mul(U256::from(10_000u64)) / a.before;
                let bps = u64::try_from(bps).unwrap_or(u64::MAX);
                // A single tx over the threshold is the drain rule's; this one is for sums.
                if bps < u64::from(threshold) || running.takes.len() < 2 {
                    continue;
                }
                let sum = running.takes.clone();
                drop(running);
                let name = name_of(protected, ledger.contract);
                findings.push(Finding {
                    rule: rule_names::CUMULATIVE_DRAIN,
                    severity: Severity::Critical,
                    contract: ledger.contract,
                    contract_name: name.clone(),
                    summary: format!(
                        "{name}: {} took {}.{:02}% of its {} in {} txs over the last {} blocks, each under the threshold ({}.{:02}%)",
                        actor,
                        bps / 100,
                        bps % 100,
                        a.symbol.clone().unwrap_or_else(|| a.asset.to_string()),
                        sum.len(),
                        self.window_blocks,
                        threshold / 100,
                        threshold % 100
                    ),
                    evidence: Evidence::CumulativeDrain(Box::new(CumulativeEvidence {
                        asset: a.asset,
                        actor,
                        takes: sum,
                        holdings_before: a.before,
                        sum_bps: bps,
                        threshold_bps: threshold,
                        window_blocks: self.window_blocks,
                    })),
                });
                break;
            }
        }
        findings
    }

    /// Whether `observe` would count anything of `outcome` (a take nothing accounts for).
    pub fn counts(outcome: &SimOutcome, protected: &[ProtectedContract]) -> bool {
        outcome.success && counted_takes(outcome, protected).next().is_some()
    }

    /// Drops takes older than the window for every key (at most once per block): the block
    /// guard's sweep, off the path of pending txs.
    pub fn prune(&self, head: u64) {
        let mut last = self.pruned_at.lock().unwrap_or_else(|p| p.into_inner());
        if *last >= head {
            return;
        }
        *last = head;
        drop(last);
        let oldest = head.saturating_sub(self.window_blocks);
        self.takes.retain(|_, sum| {
            sum.drop_before(oldest);
            !sum.takes.is_empty()
        });
    }

    pub fn len(&self) -> usize {
        self.takes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.takes.is_empty()
    }
}

/// Each asset of a protected contract in `outcome` that lost value nothing in its books
/// accounts for, with those takes by taker: what running sums count (a move on the authority
/// of the account that held the value is no take).
fn counted_takes<'a>(
    outcome: &'a SimOutcome,
    protected: &'a [ProtectedContract],
) -> impl Iterator<
    Item = (&'a ProtectedContract, &'a ContractLedger, &'a AssetLedger, Vec<(Address, U256)>),
> {
    outcome
        .ledgers
        .iter()
        .filter(|l| l.authority.is_none())
        .filter_map(|ledger| {
            protected.iter().find(|p| p.address == ledger.contract).map(|p| (p, ledger))
        })
        .flat_map(|(p, ledger)| ledger.assets.iter().map(move |a| (p, ledger, a)))
        .filter(|(_, _, a)| !a.before.is_zero())
        .filter_map(|(p, ledger, a)| {
            let takes = a.unaccounted_by_taker();
            (!takes.is_empty()).then_some((p, ledger, a, takes))
        })
}
