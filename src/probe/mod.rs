//! Probing new contracts: a contract deployed (pending, or in a replayed block) whose code can
//! reach a protected contract is called from its deployer on the state right after its
//! deployment — its attack-shaped entry points, then the other selectors its dispatcher holds,
//! then plain ETH — within a budget, and every rule judges each call. A call that drains a
//! protected contract becomes a `probe` finding on the deploy tx: the pause can go out before
//! the exploit tx exists.

mod selectors;

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, U256, hex};
use revm::state::EvmState;

pub use crate::types::ProbeReach as Reach;
pub use selectors::{ATTACK_ENTRY_POINTS, attack_entry_points, dispatcher_selectors, selector_of};

use crate::{
    config::{Asset, ProtectedContract},
    detect::{detect, rule_names},
    simulate::{SimError, Simulator},
    types::{Evidence, Finding, Severity, SimOutcome},
};

/// Bounds of one contract's probe: it runs on a worker (after every lane is served) or in the
/// block guard's replay, so it must stay short next to the txs and blocks behind it.
#[derive(Debug, Clone, Copy)]
pub struct ProbeBudget {
    /// Calls at most (a retry with ETH counts).
    pub max_calls: usize,
    /// Gas of each call (capped again by `simulation.max_tx_gas`).
    pub gas_per_call: u64,
    /// Wall time of the whole probe; the call running when it passes finishes.
    pub time: Duration,
    /// Dispatcher selectors taken from the code at most.
    pub max_selectors: usize,
}

impl Default for ProbeBudget {
    fn default() -> Self {
        Self {
            max_calls: 48,
            gas_per_call: 8_000_000,
            time: Duration::from_millis(150),
            max_selectors: 32,
        }
    }
}

/// Zero words after the selector: "no arguments" for any signature of up to eight parameters
/// (a dynamic parameter's offset 0 decodes as an empty array or bytes).
const ZERO_ARGS: usize = 8 * 32;

/// A contract a tx created, and who created it.
#[derive(Debug, Clone)]
pub struct NewContract {
    pub address: Address,
    pub deployer: Address,
    pub code: Bytes,
    /// Storage its constructor wrote.
    pub stored: Vec<U256>,
}

/// Contracts (with code) that a tx's state diff created; `deployer` signed the tx.
pub fn created_contracts(state: &EvmState, deployer: Address) -> Vec<NewContract> {
    let mut out: Vec<NewContract> = state
        .iter()
        .filter(|(_, a)| a.is_created() && !a.info.is_empty_code_hash())
        .filter_map(|(address, a)| {
            let code = a.info.code.as_ref()?.original_bytes();
            Some(NewContract {
                address: *address,
                deployer,
                code,
                stored: a.storage.values().map(|s| s.present_value).collect(),
            })
        })
        .collect();
    out.sort_by_key(|c| c.address);
    out
}

/// Whether a tx created a contract (top-level creation or a CREATE frame inside it).
pub fn creates_contracts(outcome: &SimOutcome) -> bool {
    outcome.success && (outcome.to.is_none() || outcome.frames.iter().any(|f| f.scheme == "CREATE"))
}

/// Why `new` can reach a protected contract, if it can. A contract that cannot is not probed.
pub fn reach(
    new: &NewContract,
    deploy: &SimOutcome,
    protected: &[ProtectedContract],
) -> Option<Reach> {
    for p in protected {
        if new.code.windows(20).any(|w| w == p.address.as_slice()) {
            return Some(Reach::Code(p.address));
        }
    }
    for p in protected {
        let word = U256::from_be_slice(p.address.as_slice());
        if new.stored.contains(&word) {
            return Some(Reach::Storage(p.address));
        }
    }
    protected
        .iter()
        .find(|p| {
            deploy.touched_protected.contains(&p.address)
                || deploy.frames.iter().any(|f| f.success && f.target == p.address)
        })
        .map(|p| Reach::Deployment(p.address))
}

/// What probing one contract found.
#[derive(Debug)]
pub struct ProbeReport {
    pub contract: Address,
    pub calls: usize,
    /// The budget ran out before every entry point was called.
    pub cut_short: bool,
    /// It stopped early because a tx was waiting for the worker (`give_way`): a probe is
    /// speculative, the tx may be the attack itself.
    pub gave_way: bool,
    pub elapsed: Duration,
    /// One `probe` finding per protected contract the worst call hurt (empty: nothing did).
    pub findings: Vec<Finding>,
    /// That call's simulation (its holdings and books are the evidence).
    pub outcome: Option<SimOutcome>,
}

/// One call to make.
#[derive(Debug, Clone)]
struct Entry {
    selector: Option<[u8; 4]>,
    name: String,
}

impl Entry {
    fn calldata(&self) -> Bytes {
        match self.selector {
            Some(s) => {
                let mut data = Vec::with_capacity(4 + ZERO_ARGS);
                data.extend_from_slice(&s);
                data.resize(4 + ZERO_ARGS, 0);
                data.into()
            }
            None => Bytes::new(),
        }
    }
}

/// The calls to make, in order: attack-shaped names the dispatcher holds (all of them when no
/// dispatcher was found: a proxy or hand-written code), then its other selectors, then no
/// calldata at all (`receive` / `fallback`).
fn entries(code: &[u8], budget: &ProbeBudget) -> Vec<Entry> {
    let found = dispatcher_selectors(code, budget.max_selectors);
    let known = attack_entry_points();
    let mut out: Vec<Entry> = known
        .iter()
        .filter(|(s, _)| found.is_empty() || found.contains(s))
        .map(|(s, name)| Entry { selector: Some(*s), name: (*name).to_string() })
        .collect();
    out.extend(
        found
            .iter()
            .filter(|s| !known.iter().any(|(k, _)| k == *s))
            .map(|s| Entry { selector: Some(*s), name: format!("0x{}", hex::encode(s)) }),
    );
    out.push(Entry { selector: None, name: "(no calldata)".into() });
    out
}

/// Calls `new`'s entry points from its deployer on the simulator's state as it is (the state
/// right after the deployment, in its private layer; the shared fork is never written), and
/// judges each call with every rule. A call that reverts is tried once more with ETH (attack
/// contracts often want a deposit to start with): a tenth of the largest ETH holding of the
/// protected contracts, at most what the deployer holds. Stops at the first call with a
/// critical finding.
pub fn probe(
    sim: &mut Simulator,
    new: &NewContract,
    deploy_tx: B256,
    reach: Reach,
    protected: &[ProtectedContract],
    budget: ProbeBudget,
    give_way: &dyn Fn() -> bool,
) -> ProbeReport {
    let started = Instant::now();
    let mut report = ProbeReport {
        contract: new.address,
        calls: 0,
        cut_short: false,
        gave_way: false,
        elapsed: Duration::ZERO,
        findings: Vec::new(),
        outcome: None,
    };
    let mut stake: Option<U256> = None;
    let mut worst: Option<(Severity, Entry, U256, SimOutcome, Vec<Finding>)> = None;
    'entries: for entry in entries(&new.code, &budget) {
        for with_value in [false, true] {
            if report.calls >= budget.max_calls || started.elapsed() >= budget.time {
                report.cut_short = true;
                break 'entries;
            }
            if give_way() {
                report.cut_short = true;
                report.gave_way = true;
                break 'entries;
            }
            let value = if with_value {
                let v = *stake.get_or_insert_with(|| probe_stake(sim, new.deployer, protected));
                if v.is_zero() {
                    break;
                }
                v
            } else {
                U256::ZERO
            };
            report.calls += 1;
            let outcome = match sim.simulate_call(
                deploy_tx,
                new.deployer,
                new.address,
                entry.calldata(),
                value,
                budget.gas_per_call,
            ) {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(contract = %new.address, entry = %entry.name, error = %e, "probe call not run");
                    break;
                }
            };
            if !outcome.success {
                continue;
            }
            let found: Vec<Finding> = detect(&outcome, protected)
                .into_iter()
                .filter(|f| f.severity >= Severity::High)
                .collect();
            if let Some(top) = found.iter().map(|f| f.severity).max()
                && worst.as_ref().is_none_or(|w| top > w.0)
            {
                worst = Some((top, entry.clone(), value, outcome, found));
                if top == Severity::Critical {
                    break 'entries;
                }
            }
            break;
        }
    }
    report.elapsed = started.elapsed();
    if let Some((_, entry, value, outcome, found)) = worst {
        report.findings = probe_findings(new, reach, &entry, value, &report, found, protected);
        report.outcome = Some(outcome);
    }
    report
}

/// ETH sent along on a retry: a tenth of the largest ETH holding of a protected contract (a
/// re-entrancy drainer deposits a slice and takes the rest), capped by the deployer's balance.
fn probe_stake(sim: &mut Simulator, deployer: Address, protected: &[ProtectedContract]) -> U256 {
    let largest = protected
        .iter()
        .filter_map(|p| sim.holdings_of(p).ok())
        .flat_map(|h| h.into_iter().filter(|(a, _)| *a == Asset::Eth).map(|(_, v)| v))
        .max()
        .unwrap_or_default();
    let balance = match sim.account(deployer) {
        Ok(info) => info.map(|i| i.balance).unwrap_or_default(),
        Err(_) => U256::ZERO,
    };
    (largest / U256::from(10u64)).min(balance)
}

/// One `probe` finding per protected contract the probed call hurt, carrying that call's
/// findings as evidence.
fn probe_findings(
    new: &NewContract,
    reach: Reach,
    entry: &Entry,
    value: U256,
    report: &ProbeReport,
    found: Vec<Finding>,
    protected: &[ProtectedContract],
) -> Vec<Finding> {
    let mut contracts: Vec<Address> = found.iter().map(|f| f.contract).collect();
    contracts.sort();
    contracts.dedup();
    contracts
        .into_iter()
        .map(|contract| {
            let inner: Vec<Finding> = found.iter().filter(|f| f.contract == contract).cloned().collect();
            let severity = inner.iter().map(|f| f.severity).max().unwrap_or(Severity::High);
            let rules: Vec<&str> = inner.iter().map(|f| f.rule).collect();
            let with = if value.is_zero() {
                String::new()
            } else {
                format!(" with {} ETH", crate::detect::units(value))
            };
            let summary = format!(
                "new contract {} deployed by {}: calling {}{with} from its deployer would trip {} ({})",
                new.address,
                new.deployer,
                entry.name,
                rules.join(", "),
                inner.first().map(|f| f.summary.as_str()).unwrap_or_default(),
            );
            Finding {
                rule: rule_names::PROBE,
                severity,
                contract,
                contract_name: protected
                    .iter()
                    .find(|p| p.address == contract)
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| contract.to_string()),
                summary,
                evidence: Evidence::Probe {
                    deployed: new.address,
                    deployer: new.deployer,
                    reach,
                    entry: entry.name.clone(),
                    selector: entry.selector.map(|s| format!("0x{}", hex::encode(s))),
                    value,
                    calls: report.calls,
                    elapsed_us: report.elapsed.as_micros() as u64,
                    findings: inner,
                },
            }
        })
        .collect()
}

/// Probes every contract `deploy` created that can reach a protected contract, on the state
/// the simulator holds right after the deploy tx (its private layer holds the tx's writes).
/// Returns the first report with findings (or the one that gave way), and how many contracts
/// were probed. `give_way`: asked between calls; true stops the probe.
pub fn probe_created(
    sim: &mut Simulator,
    created: &[NewContract],
    deploy: &SimOutcome,
    protected: &[ProtectedContract],
    budget: ProbeBudget,
    give_way: &dyn Fn() -> bool,
) -> (Option<ProbeReport>, usize) {
    let mut probed = 0;
    for new in created {
        let Some(how) = reach(new, deploy, protected) else { continue };
        probed += 1;
        let report = probe(sim, new, deploy.tx_hash, how, protected, budget, give_way);
        tracing::debug!(
            contract = %new.address,
            deployer = %new.deployer,
            reach = ?how,
            calls = report.calls,
            cut_short = report.cut_short,
            findings = report.findings.len(),
            probe_us = report.elapsed.as_micros() as u64,
            "probed new contract"
        );
        sim.invalidate_baselines();
        if !report.findings.is_empty() || report.gave_way {
            return (Some(report), probed);
        }
    }
    (None, probed)
}

/// Runs a pending deploy tx on the simulator's private layer and probes what it created; the
/// layer is restored afterwards. Returns the first report with findings and how many contracts
/// were probed. An error when the tx could not run here (a sender with earlier pending txs: its
/// deployment is probed when a block holds it).
pub fn probe_pending_deploy(
    sim: &mut Simulator,
    hash: B256,
    tx: &alloy::consensus::transaction::Recovered<alloy::consensus::TxEnvelope>,
    deploy: &SimOutcome,
    protected: &[ProtectedContract],
    budget: ProbeBudget,
    give_way: &dyn Fn() -> bool,
) -> Result<(Option<ProbeReport>, usize), SimError> {
    // On top of whatever the private layer holds (empty on a worker between txs).
    let saved = sim.fork_view_mut().local_mut().clone();
    sim.invalidate_baselines();
    let result = (|| {
        let (result, state) = sim.execute(hash, tx)?;
        if !result.is_success() {
            return Ok((None, 0));
        }
        let created = created_contracts(&state, tx.signer());
        if created.is_empty() {
            return Ok((None, 0));
        }
        sim.fork_view_mut().local_mut().apply_evm_state(&state);
        Ok(probe_created(sim, &created, deploy, protected, budget, give_way))
    })();
    *sim.fork_view_mut().local_mut() = saved;
    sim.invalidate_baselines();
    result
}

#[cfg(all(test, feature = "dev"))]
mod tests;
