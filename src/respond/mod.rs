//! Respond: a policy decides what a finding warrants, and the pauser signs the containment
//! call as an EIP-1559 tx that outbids the attack on both fee fields. Hands on a `PausePlan`.

mod fees;
mod pauser;

use std::collections::HashMap;

use alloy::primitives::{Address, B256, Bytes};
use serde::Serialize;

pub use fees::{AttackFees, PauseFees, outbid};
pub use pauser::{Pauser, PauserError};

use crate::{
    config::{Config, ProtectedContract, RespondConfig, ResponseMode},
    types::Finding,
};

/// The one decide step for a tx with findings (pending or mined): one decision per protected
/// contract the findings name, in address order. `attack` is `None` for a mined tx.
pub fn decide_all(
    responder: &std::sync::Mutex<Responder>,
    config: &Config,
    findings: &[Finding],
    attack: Option<(B256, AttackFees)>,
    base_fee: u64,
) -> Vec<(Address, Decision)> {
    let mut contracts: Vec<Address> = findings.iter().map(|f| f.contract).collect();
    contracts.sort();
    contracts.dedup();
    let mut responder = responder.lock().unwrap_or_else(|p| p.into_inner());
    contracts
        .iter()
        .filter_map(|c| config.protected(*c))
        .map(|p| (p.address, responder.decide(p, attack, base_fee)))
        .collect()
}

/// A signed pause tx, ready for the sockets.
#[derive(Debug, Clone, Serialize)]
pub struct PausePlan {
    pub contract: Address,
    pub contract_name: String,
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
    /// Recorded only (`mode = "alert"`).
    Alert,
    /// Nothing to do: the contract is paused, or our pause in flight already outbids this.
    Skip { reason: String },
    /// Wanted to pause, could not sign.
    Failed { error: String },
}

/// Pause a contract once; never race a contract that is already paused.
#[derive(Debug)]
pub struct Responder {
    config: RespondConfig,
    pauser: Option<Pauser>,
    paused: HashMap<Address, String>,
    in_flight: HashMap<Address, PausePlan>,
}

impl Responder {
    pub fn new(config: RespondConfig, pauser: Option<Pauser>) -> Self {
        Self { config, pauser, paused: HashMap::new(), in_flight: HashMap::new() }
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
        let Some(pauser) = self.pauser.as_mut() else {
            return Decision::Failed { error: "no guardian key configured".into() };
        };
        let attack_fees = attack.map(|(_, f)| f).unwrap_or_default();
        let fees = outbid(attack_fees, base_fee, &self.config);
        let attack_tx = attack.map(|(h, _)| h);

        if let Some(current) = self.in_flight.get(&contract.address) {
            if current.max_fee_per_gas > attack_fees.max_fee_per_gas
                && current.max_priority_fee_per_gas > attack_fees.max_priority_fee_per_gas
            {
                return Decision::Skip {
                    reason: format!("pause {} in flight already outbids", current.tx_hash),
                };
            }
            // Replace-by-fee needs >= 10% more on both fields.
            let bumped = fees.bumped_over(
                current.max_fee_per_gas,
                current.max_priority_fee_per_gas,
                &self.config,
            );
            let nonce = current.nonce;
            let replaces = current.tx_hash;
            return match pauser.sign(
                contract,
                nonce,
                bumped,
                self.config.pause_gas_limit,
                attack_tx,
            ) {
                Ok(mut plan) => {
                    plan.outbids_attack = bumped.outbids(attack_fees);
                    self.in_flight.insert(contract.address, plan.clone());
                    Decision::Replace { plan, replaces }
                }
                Err(e) => Decision::Failed { error: e.to_string() },
            };
        }

        let nonce = pauser.next_nonce();
        match pauser.sign(contract, nonce, fees, self.config.pause_gas_limit, attack_tx) {
            Ok(mut plan) => {
                plan.outbids_attack = fees.outbids(attack_fees);
                if self.config.mode == ResponseMode::DryRun {
                    // Nothing is sent, so the nonce is not used up.
                    pauser.release_nonce(nonce);
                    return Decision::DryRun { plan };
                }
                self.in_flight.insert(contract.address, plan.clone());
                Decision::Pause { plan }
            }
            Err(e) => {
                pauser.release_nonce(nonce);
                Decision::Failed { error: e.to_string() }
            }
        }
    }

    /// The contract reads unpaused again (its governance lifted the pause): race it again.
    /// Returns why it had been marked paused, if it had.
    pub fn mark_unpaused(&mut self, contract: &Address) -> Option<String> {
        self.paused.remove(contract)
    }

    /// The contract is paused (seen on chain): stop racing it.
    pub fn mark_paused(&mut self, contract: Address, why: &str) {
        self.in_flight.remove(&contract);
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
        self.in_flight.remove(contract)
    }
}

#[cfg(test)]
mod tests;
