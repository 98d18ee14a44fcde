//! Respond: a policy decides what a finding warrants, and the pauser signs the containment
//! call as an EIP-1559 tx that outbids the attack on both fee fields — picked from a ladder
//! pre-signed on each head when one fits, signed on the spot when none does — straight to the
//! contract or through the Safe that holds the pause role. Hands on a `PausePlan`.

mod fees;
mod ladder;
mod pauser;
mod policy;
mod safe;

use std::{collections::HashMap, sync::Mutex};

use alloy::primitives::{Address, B256, Bytes};
use serde::Serialize;

pub use fees::{AttackFees, PauseFees, ladder_levels, outbid, replacement_floor};
pub use ladder::{LadderJob, LadderReport, SignedLadder};
pub use pauser::Pauser;
pub use policy::{Action, Policy};
pub use safe::{
    SAFE_MODULE_OVERHEAD_GAS, SAFE_OWNER_OVERHEAD_GAS, SafeError, check_safe_guardian,
    read_safe_nonce, safe_pause_gas_floor, safe_tx_hash,
};

use self::{
    ladder::{JobEntry, Ladder},
    pauser::{PauseTx, SigningKey},
};
use crate::{
    config::{Config, GuardianSafe, ProtectedContract, RespondConfig, ResponseMode, SafeRole},
    types::Finding,
};

/// The one decide step for a tx with findings (pending or mined): one decision per protected
/// contract the findings name, in address order. `attack` is `None` for a mined tx.
pub fn decide_all(
    responder: &Mutex<Responder>,
    config: &Config,
    findings: &[Finding],
    attack: Option<(B256, AttackFees)>,
    base_fee: u64,
) -> Vec<(Address, Decision)> {
    let mut contracts: Vec<Address> = findings.iter().map(|f| f.contract).collect();
    contracts.sort();
    contracts.dedup();
    let mut responder = lock(responder);
    contracts
        .iter()
        .filter_map(|c| config.protected(*c))
        .map(|p| {
            // The strongest action any finding on this contract calls for.
            let action = findings
                .iter()
                .filter(|f| f.contract == p.address)
                .map(|f| config.policy.action_for(f))
                .max()
                .unwrap_or(Action::Record);
            let decision = match action {
                Action::Pause => responder.decide(p, attack, base_fee),
                Action::Alert => Decision::Alert,
                Action::Record => Decision::Record,
            };
            (p.address, decision)
        })
        .collect()
}

/// What the submit stage reads on each new head, for `prepare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadNonces {
    /// The base fee of the block pending txs now target.
    pub next_base_fee: u64,
    /// The guardian's nonce at that head.
    pub guardian_nonce: u64,
    /// The Safe's `nonce()` at the same head (owner route only; `None`: not read, and pauses
    /// carry the owner's approval as the sender instead of an EIP-712 signature).
    pub safe_nonce: Option<u64>,
}

/// On each new head, off the hot path: re-syncs the nonces and pre-signs every protected
/// contract's pause at the ladder's fee levels. Holds `responder`'s lock only to take the job
/// and to install it; the signing (milliseconds for many contracts) runs outside it, so
/// workers deciding meanwhile are never held up. Call it from a blocking-friendly thread.
pub fn prepare(
    responder: &Mutex<Responder>,
    protected: &[ProtectedContract],
    head: HeadNonces,
) -> LadderReport {
    let job = lock(responder).ladder_job(protected, Some(head));
    sign_and_install(responder, job)
}

/// After a pause took the nonce the ladder was signed for: re-signs the other contracts' rungs
/// for the next nonce (at the last head's base fee), so a second attack in the same block
/// also finds its pause ready. Same locking as `prepare`.
pub fn refill(responder: &Mutex<Responder>, protected: &[ProtectedContract]) -> LadderReport {
    let job = lock(responder).ladder_job(protected, None);
    sign_and_install(responder, job)
}

fn sign_and_install(responder: &Mutex<Responder>, job: Option<LadderJob>) -> LadderReport {
    let Some(job) = job else { return LadderReport::default() };
    let signed = job.sign();
    lock(responder).install(signed)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A signed pause tx, ready for the sockets.
#[derive(Debug, Clone, Serialize)]
pub struct PausePlan {
    pub contract: Address,
    pub contract_name: String,
    /// The containment call: its target and calldata (made by the Safe when `safe` is set).
    pub target: Address,
    pub calldata: Bytes,
    pub nonce: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    pub gas_limit: u64,
    pub tx_hash: B256,
    #[serde(skip)]
    pub raw: Bytes,
    /// Both fee fields strictly above the attack's (false when the caps stopped it).
    pub outbids_attack: bool,
    /// The tx that triggered it (none for a block-guard pause).
    pub attack_tx: Option<B256>,
    /// Taken from the ladder signed on the last head (false: signed on the hot path).
    pub presigned: bool,
    /// The Safe the guardian's tx goes through, if the pause role is a Safe's.
    pub safe: Option<Address>,
    /// The Safe nonce the owner's EIP-712 signature is for (`None` through a Safe: approved
    /// as the tx's sender, or sent as a module).
    pub safe_nonce: Option<u64>,
}

/// What the policy decided for one contract.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Decision {
    /// Send this pause.
    Pause { plan: PausePlan },
    /// A pause for this contract is in flight with lower fees: this one replaces it (same nonce).
    Replace { plan: PausePlan, replaces: B256 },
    /// Signed but not sent (`mode = "dry-run"`).
    DryRun { plan: PausePlan },
    /// Recorded and alerted, nothing sent (`mode = "alert"`, or the policy says alert).
    Alert,
    /// Recorded only: the policy says these findings warrant no alert.
    Record,
    /// Nothing to do: the contract is paused, or our pause in flight already outbids this.
    Skip { reason: String },
    /// Wanted to pause, could not sign.
    Failed { error: String },
}

/// Where a pause tx goes: to the containment call's target, or to the Safe that makes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    chain_id: u64,
    guardian: Address,
    safe: Option<GuardianSafe>,
}

impl Route {
    /// The pause tx for containment call (`target`, `calldata`), but its nonce and fees.
    fn pause_tx(
        &self,
        key: &SigningKey,
        target: Address,
        calldata: &Bytes,
        gas_limit: u64,
        safe_nonce: Option<u64>,
    ) -> PauseTx {
        let Some(safe) = self.safe else {
            return PauseTx {
                chain_id: self.chain_id,
                to: target,
                input: calldata.clone(),
                gas_limit,
                safe: None,
                safe_nonce: None,
            };
        };
        // A module's call needs no signature and takes no Safe nonce.
        let safe_nonce = safe_nonce.filter(|_| safe.role == SafeRole::Owner);
        let input =
            safe::wrap(&safe, self.guardian, key, self.chain_id, target, calldata, safe_nonce);
        PauseTx {
            chain_id: self.chain_id,
            to: safe.address,
            input,
            gas_limit,
            safe: Some(safe.address),
            safe_nonce,
        }
    }
}

/// Pause a contract once; never race a contract that is already paused.
#[derive(Debug)]
pub struct Responder {
    config: RespondConfig,
    pauser: Option<Pauser>,
    paused: HashMap<Address, String>,
    in_flight: HashMap<Address, PausePlan>,
    ladder: Ladder,
    /// The next block's base fee as the last `prepare` saw it (what `refill` signs for).
    next_base_fee: Option<u64>,
    /// The configured gas limit was raised for the Safe path (logged the first time).
    gas_raised: bool,
}

impl Responder {
    pub fn new(config: RespondConfig, pauser: Option<Pauser>) -> Self {
        Self {
            config,
            pauser,
            paused: HashMap::new(),
            in_flight: HashMap::new(),
            ladder: Ladder::default(),
            next_base_fee: None,
            gas_raised: false,
        }
    }

    pub fn mode(&self) -> ResponseMode {
        self.config.mode
    }

    pub fn pauser(&self) -> Option<&Pauser> {
        self.pauser.as_ref()
    }

    pub fn pauser_mut(&mut self) -> Option<&mut Pauser> {
        self.pauser.as_mut()
    }

    /// The Safe pauses go through, if the pause role is a Safe's.
    pub fn safe(&self) -> Option<GuardianSafe> {
        self.config.safe
    }

    /// Pre-signed pauses held now.
    pub fn presigned(&self) -> usize {
        self.ladder.rungs()
    }

    /// `prepare` on a responder this thread owns: job, signing and install in one go.
    pub fn prepare(&mut self, protected: &[ProtectedContract], head: HeadNonces) -> LadderReport {
        match self.ladder_job(protected, Some(head)) {
            Some(job) => self.install(job.sign()),
            None => LadderReport { held: self.ladder.rungs(), ..LadderReport::default() },
        }
    }

    /// Applies a new head's nonces (when given) and lists the rungs that need signing: for
    /// each contract not paused, at the nonce its next pause uses — its in-flight pause's nonce
    /// (levels 12.5% over it only) when one is in flight. Without a head (`refill`), only
    /// contracts whose rungs are no longer for that nonce. `None`: nothing to sign.
    pub fn ladder_job(
        &mut self,
        protected: &[ProtectedContract],
        head: Option<HeadNonces>,
    ) -> Option<LadderJob> {
        if let Some(h) = head {
            self.next_base_fee = Some(h.next_base_fee);
            if let Some(p) = self.pauser.as_mut() {
                p.resync(h.guardian_nonce);
                p.anchor_safe_nonce(h.guardian_nonce, h.safe_nonce);
            }
        }
        if self.config.mode == ResponseMode::Alert {
            return None;
        }
        let route = self.route()?;
        let levels = ladder_levels(self.next_base_fee?, &self.config);
        let next = self.pauser.as_ref()?.nonce();
        let mut entries = Vec::new();
        for p in protected {
            if self.paused.contains_key(&p.address) {
                self.ladder.remove(&p.address);
                continue;
            }
            let (nonce, safe_nonce, min) = match self.in_flight.get(&p.address) {
                Some(plan) => (
                    plan.nonce,
                    plan.safe_nonce,
                    Some(replacement_floor(plan.max_fee_per_gas, plan.max_priority_fee_per_gas)),
                ),
                None => (next, self.safe_nonce_for(next), None),
            };
            if head.is_none() && self.ladder.for_nonce(&p.address, nonce, safe_nonce).is_some() {
                continue;
            }
            let gas_limit = self.gas_limit(p);
            entries.push(JobEntry {
                contract: p.address,
                target: p.pause.target,
                calldata: p.pause.calldata.clone(),
                nonce,
                safe_nonce,
                gas_limit,
                min,
            });
        }
        if entries.is_empty() {
            return None;
        }
        let key = std::sync::Arc::clone(self.pauser.as_ref()?.key());
        Some(LadderJob { key, route, levels, entries })
    }

    /// Installs what a job signed, for each contract whose next pause still uses the nonces the
    /// job signed for (a pause taken meanwhile moved them on: those rungs are dropped).
    pub fn install(&mut self, signed: SignedLadder) -> LadderReport {
        let mut report = LadderReport {
            contracts: signed.entries.len(),
            signed: signed.entries.iter().map(|(_, c)| c.rungs.len()).sum(),
            sign_us: signed.sign_us,
            ..LadderReport::default()
        };
        for (contract, rungs) in signed.entries {
            if self.paused.contains_key(&contract) {
                continue;
            }
            let valid = match self.in_flight.get(&contract) {
                Some(plan) => plan.nonce == rungs.nonce && plan.safe_nonce == rungs.tx.safe_nonce,
                None => {
                    self.pauser.as_ref().is_some_and(|p| p.nonce() == rungs.nonce)
                        && self.safe_nonce_for(rungs.nonce) == rungs.tx.safe_nonce
                }
            };
            if valid {
                self.ladder.insert(contract, rungs);
                report.installed += 1;
            }
        }
        report.held = self.ladder.rungs();
        report
    }

    /// Decides for one protected contract a finding named. `attack` is `None` for the block guard.
    pub fn decide(
        &mut self,
        contract: &ProtectedContract,
        attack: Option<(B256, AttackFees)>,
        base_fee: u64,
    ) -> Decision {
        if let Some(why) = self.paused.get(&contract.address) {
            return Decision::Skip {
                reason: format!("{} is already paused ({why})", contract.name),
            };
        }
        if self.config.mode == ResponseMode::Alert {
            return Decision::Alert;
        }
        if self.pauser.is_none() {
            return Decision::Failed { error: "no guardian key configured".into() };
        }
        let attack_fees = attack.map(|(_, f)| f).unwrap_or_default();
        let attack_tx = attack.map(|(h, _)| h);
        let fresh = outbid(attack_fees, base_fee, &self.config);
        // A rung stands in for `fresh` when it beats the attack on both fields and can pay the
        // next base fee (twice it for the block guard, which has no attack to beat, as `outbid`).
        let base_room = u128::from(base_fee).saturating_mul(if attack.is_some() { 1 } else { 2 });
        let fits = |f: PauseFees| {
            f.outbids(attack_fees)
                && f.max_fee_per_gas >= base_room.saturating_add(f.max_priority_fee_per_gas)
        };
        let gas_limit = self.gas_limit(contract);

        if let Some(current) = self.in_flight.get(&contract.address) {
            if current.max_fee_per_gas > attack_fees.max_fee_per_gas
                && current.max_priority_fee_per_gas > attack_fees.max_priority_fee_per_gas
            {
                return Decision::Skip {
                    reason: format!("pause {} in flight already outbids", current.tx_hash),
                };
            }
            // Same nonce (and Safe nonce): nodes take a replacement 10% over on both fields.
            let (nonce, safe_nonce, replaces) =
                (current.nonce, current.safe_nonce, current.tx_hash);
            let floor =
                replacement_floor(current.max_fee_per_gas, current.max_priority_fee_per_gas);
            let bumped = fresh.bumped_over(
                current.max_fee_per_gas,
                current.max_priority_fee_per_gas,
                &self.config,
            );
            let picked = self
                .ladder
                .for_nonce(&contract.address, nonce, safe_nonce)
                .and_then(|c| c.cheapest(|f| fits(f) && f.at_least(floor)).map(|r| (c, r)))
                .map(|(c, r)| plan_of(contract, &c.tx, nonce, r.clone(), attack_tx, true));
            let at = TxAt { nonce, safe_nonce, gas_limit };
            let Some(mut plan) =
                picked.or_else(|| self.sign_fresh(contract, at, bumped, attack_tx))
            else {
                return Decision::Failed { error: "no guardian key configured".into() };
            };
            plan.outbids_attack = plan_fees(&plan).outbids(attack_fees);
            self.in_flight.insert(contract.address, plan.clone());
            return Decision::Replace { plan, replaces };
        }

        let Some(pauser) = self.pauser.as_mut() else {
            return Decision::Failed { error: "no guardian key configured".into() };
        };
        let nonce = pauser.next_nonce();
        let safe_nonce = self.safe_nonce_for(nonce);
        let picked = self
            .ladder
            .for_nonce(&contract.address, nonce, safe_nonce)
            .and_then(|c| c.cheapest(fits).map(|r| (c, r)))
            .map(|(c, r)| plan_of(contract, &c.tx, nonce, r.clone(), attack_tx, true));
        let at = TxAt { nonce, safe_nonce, gas_limit };
        let Some(mut plan) = picked.or_else(|| self.sign_fresh(contract, at, fresh, attack_tx))
        else {
            if let Some(p) = self.pauser.as_mut() {
                p.release_nonce(nonce);
            }
            return Decision::Failed { error: "no guardian key configured".into() };
        };
        plan.outbids_attack = plan_fees(&plan).outbids(attack_fees);
        if self.config.mode == ResponseMode::DryRun {
            // Nothing is sent, so the nonce is not used up (and the ladder stays valid).
            if let Some(p) = self.pauser.as_mut() {
                p.release_nonce(nonce);
            }
            return Decision::DryRun { plan };
        }
        // This contract's rungs stay: they are for its in-flight nonce, what a replacement needs.
        // The others' are for a nonce now taken; `refill` or the next `prepare` moves them on.
        self.in_flight.insert(contract.address, plan.clone());
        Decision::Pause { plan }
    }

    /// Signs on the spot: no rung fits. `None` without a guardian key.
    fn sign_fresh(
        &self,
        contract: &ProtectedContract,
        at: TxAt,
        fees: PauseFees,
        attack_tx: Option<B256>,
    ) -> Option<PausePlan> {
        let route = self.route()?;
        let key = self.pauser.as_ref()?.key();
        let tx = route.pause_tx(
            key,
            contract.pause.target,
            &contract.pause.calldata,
            at.gas_limit,
            at.safe_nonce,
        );
        let (tx_hash, raw) = key.sign_tx(&tx, at.nonce, fees);
        Some(plan_of(
            contract,
            &tx,
            at.nonce,
            ladder::Rung { fees, tx_hash, raw },
            attack_tx,
            false,
        ))
    }

    fn route(&self) -> Option<Route> {
        let pauser = self.pauser.as_ref()?;
        Some(Route {
            chain_id: pauser.chain_id(),
            guardian: pauser.address(),
            safe: self.config.safe,
        })
    }

    /// The Safe nonce a pause with guardian nonce `nonce` signs for: only an owner's
    /// `execTransaction` has one, and only once a head told us the Safe's nonce.
    fn safe_nonce_for(&self, nonce: u64) -> Option<u64> {
        let owner = self.config.safe.is_some_and(|s| s.role == SafeRole::Owner);
        self.pauser.as_ref().filter(|_| owner).and_then(|p| p.safe_nonce_for(nonce))
    }

    /// The configured gas limit, raised to what a pause through the Safe needs at least.
    fn gas_limit(&mut self, contract: &ProtectedContract) -> u64 {
        let configured = self.config.pause_gas_limit;
        let Some(safe) = self.config.safe else { return configured };
        let floor = safe_pause_gas_floor(safe.role, &contract.pause.calldata);
        if configured >= floor {
            return configured;
        }
        if !self.gas_raised {
            self.gas_raised = true;
            tracing::warn!(
                configured,
                raised_to = floor,
                safe = %safe.address,
                contract = %contract.name,
                "respond.pause_gas_limit is too low for a pause through the Safe; raised"
            );
        }
        floor
    }

    /// The contract reads unpaused again (its governance lifted the pause): race it again.
    /// Returns why it had been marked paused, if it had.
    pub fn mark_unpaused(&mut self, contract: &Address) -> Option<String> {
        self.paused.remove(contract)
    }

    /// The contract is paused (seen on chain): stop racing it.
    pub fn mark_paused(&mut self, contract: Address, why: &str) {
        self.in_flight.remove(&contract);
        self.ladder.remove(&contract);
        self.paused.entry(contract).or_insert_with(|| why.to_string());
    }

    pub fn is_paused(&self, contract: &Address) -> bool {
        self.paused.contains_key(contract)
    }

    pub fn in_flight(&self) -> impl Iterator<Item = &PausePlan> {
        self.in_flight.values()
    }

    /// A pause that will not land (dropped, or its nonce used elsewhere): allow a new one.
    pub fn forget_in_flight(&mut self, contract: &Address) -> Option<PausePlan> {
        self.ladder.remove(contract);
        self.in_flight.remove(contract)
    }
}

/// Where a pause tx is signed for: guardian nonce, Safe nonce, gas limit.
#[derive(Debug, Clone, Copy)]
struct TxAt {
    nonce: u64,
    safe_nonce: Option<u64>,
    gas_limit: u64,
}

fn plan_fees(plan: &PausePlan) -> PauseFees {
    PauseFees {
        max_fee_per_gas: plan.max_fee_per_gas,
        max_priority_fee_per_gas: plan.max_priority_fee_per_gas,
    }
}

fn plan_of(
    contract: &ProtectedContract,
    tx: &PauseTx,
    nonce: u64,
    signed: ladder::Rung,
    attack_tx: Option<B256>,
    presigned: bool,
) -> PausePlan {
    PausePlan {
        contract: contract.address,
        contract_name: contract.name.clone(),
        target: contract.pause.target,
        calldata: contract.pause.calldata.clone(),
        nonce,
        max_fee_per_gas: signed.fees.max_fee_per_gas,
        max_priority_fee_per_gas: signed.fees.max_priority_fee_per_gas,
        gas_limit: tx.gas_limit,
        tx_hash: signed.tx_hash,
        raw: signed.raw,
        outbids_attack: false,
        attack_tx,
        presigned,
        safe: tx.safe,
        safe_nonce: tx.safe_nonce,
    }
}

#[cfg(test)]
mod tests;
