//! What the rest of preempt tells the alert stage: one `AlertEvent` per finding, pause, node
//! change or guardian balance reading, built from the records the submit stage already holds.

use alloy::primitives::{Address, B256, U256};
use serde::Serialize;

use crate::{
    config::RespondConfig,
    incident::{DetectionSource, OutcomeRecord},
    respond::PausePlan,
    submit::SubmitReport,
    types::{Finding, Severity},
};

/// Something an on-call person must hear about. Never carries a key or a webhook URL.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AlertEvent {
    /// A simulation (pending tx) or a mined block showed a rule firing on a protected contract.
    Finding(FindingAlert),
    /// A pause went to the sockets and at least one destination took it.
    PauseSent(PauseAlert),
    /// A block holds our pause.
    PauseLanded(LandedAlert),
    /// A pause could not be signed, no destination took it, it reverted, or it never landed.
    PauseFailed(FailedAlert),
    /// A node connection dropped (alerted once until it is back).
    NodeDown { node: String, reason: String },
    /// A node that was down is subscribed again.
    NodeUp { node: String },
    /// The guardian's balance, read each block; the alert stage decides whether it is low.
    GuardianBalance {
        guardian: Address,
        balance_wei: U256,
        /// What one pause costs at the fee caps: `max_fee_per_gas cap × pause_gas_limit`.
        pause_cost_wei: U256,
    },
}

/// A finding as the alert shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FindingAlert {
    pub contract: Address,
    pub contract_name: String,
    pub rule: String,
    pub severity: Severity,
    pub attack_tx: B256,
    pub source: DetectionSource,
    /// The block the simulation ran in (pending: the next one; block guard: the block itself).
    pub block: u64,
    pub summary: String,
}

/// A pause handed to the nodes and relays.
#[derive(Debug, Clone, Serialize)]
pub struct PauseAlert {
    pub contract: Address,
    pub contract_name: String,
    /// The rule that caused it, when known (filled in from the finding alert otherwise).
    pub rule: Option<String>,
    pub severity: Option<Severity>,
    pub pause_tx: B256,
    pub attack_tx: Option<B256>,
    pub nonce: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    pub gas_limit: u64,
    /// Both fee fields strictly above the attack's.
    pub outbids_attack: bool,
    pub target_block: u64,
    /// Destinations that took it, and those that refused it with their answer.
    pub accepted: Vec<String>,
    pub refused: Vec<(String, String)>,
}

/// Our pause in a block, and what became of the attack.
#[derive(Debug, Clone, Serialize)]
pub struct LandedAlert {
    pub contract: Address,
    pub contract_name: String,
    pub rule: Option<String>,
    pub pause_tx: B256,
    pub attack_tx: Option<B256>,
    pub block: u64,
    pub pause_index: Option<usize>,
    pub attack_index: Option<usize>,
    pub attack_succeeded: Option<bool>,
    pub pause_before_attack: bool,
    pub contract_paused: Option<bool>,
    /// Every asset's holdings at least what they were before the block.
    pub value_kept: Option<bool>,
}

/// A pause that did not happen.
#[derive(Debug, Clone, Serialize)]
pub struct FailedAlert {
    pub contract: Address,
    pub contract_name: String,
    pub rule: Option<String>,
    pub pause_tx: Option<B256>,
    pub attack_tx: Option<B256>,
    pub block: Option<u64>,
    pub reason: String,
}

impl AlertEvent {
    /// One finding of a detection; `block` is the block the simulation ran in.
    pub fn finding(f: &Finding, attack_tx: B256, source: DetectionSource, block: u64) -> Self {
        Self::Finding(FindingAlert {
            contract: f.contract,
            contract_name: f.contract_name.clone(),
            rule: f.rule.to_string(),
            severity: f.severity,
            attack_tx,
            source,
            block,
            summary: f.summary.clone(),
        })
    }

    /// A pause once every destination has answered: `PauseSent` when any took it, else
    /// `PauseFailed` with each destination's answer. `findings` give the rule (any order);
    /// `attack_tx` names the attack when the plan does not (a block-guard pause).
    pub fn pause_sent(
        plan: &PausePlan,
        report: &SubmitReport,
        findings: &[Finding],
        attack_tx: Option<B256>,
    ) -> Self {
        let attack_tx = plan.attack_tx.or(attack_tx);
        let top =
            findings.iter().filter(|f| f.contract == plan.contract).max_by_key(|f| f.severity);
        let accepted: Vec<String> =
            report.results.iter().filter(|r| r.ok).map(|r| r.destination.clone()).collect();
        let refused: Vec<(String, String)> = report
            .results
            .iter()
            .filter(|r| !r.ok)
            .map(|r| (r.destination.clone(), r.error.clone().unwrap_or_default()))
            .collect();
        if accepted.is_empty() {
            let reason = if refused.is_empty() {
                "no destination to send to".to_string()
            } else {
                let each: Vec<String> = refused.iter().map(|(d, e)| format!("{d}: {e}")).collect();
                format!("every destination refused it ({})", each.join("; "))
            };
            return Self::PauseFailed(FailedAlert {
                contract: plan.contract,
                contract_name: plan.contract_name.clone(),
                rule: top.map(|f| f.rule.to_string()),
                pause_tx: Some(plan.tx_hash),
                attack_tx,
                block: Some(report.target_block),
                reason,
            });
        }
        Self::PauseSent(PauseAlert {
            contract: plan.contract,
            contract_name: plan.contract_name.clone(),
            rule: top.map(|f| f.rule.to_string()),
            severity: top.map(|f| f.severity),
            pause_tx: plan.tx_hash,
            attack_tx,
            nonce: plan.nonce,
            max_fee_per_gas: plan.max_fee_per_gas,
            max_priority_fee_per_gas: plan.max_priority_fee_per_gas,
            gas_limit: plan.gas_limit,
            outbids_attack: plan.outbids_attack,
            target_block: report.target_block,
            accepted,
            refused,
        })
    }

    /// The policy wanted a pause and could not sign one (`Decision::Failed`).
    pub fn pause_not_signed(
        contract: Address,
        contract_name: &str,
        attack_tx: Option<B256>,
        error: &str,
    ) -> Self {
        Self::PauseFailed(FailedAlert {
            contract,
            contract_name: contract_name.to_string(),
            rule: None,
            pause_tx: None,
            attack_tx,
            block: None,
            reason: format!("the pause could not be signed: {error}"),
        })
    }

    /// A pause not included within `resend_blocks`, given up at `block`.
    pub fn pause_given_up(plan: &PausePlan, block: u64, resend_blocks: u64) -> Self {
        Self::PauseFailed(FailedAlert {
            contract: plan.contract,
            contract_name: plan.contract_name.clone(),
            rule: None,
            pause_tx: Some(plan.tx_hash),
            attack_tx: plan.attack_tx,
            block: Some(block),
            reason: format!("not included within {resend_blocks} block(s); given up"),
        })
    }

    /// A block holding our pause: `PauseLanded`, or `PauseFailed` when the pause reverted.
    pub fn pause_landed(outcome: &OutcomeRecord) -> Self {
        if outcome.pause_succeeded == Some(false) {
            return Self::PauseFailed(FailedAlert {
                contract: outcome.contract,
                contract_name: outcome.contract_name.clone(),
                rule: None,
                pause_tx: Some(outcome.pause_tx),
                attack_tx: outcome.attack_tx,
                block: Some(outcome.block),
                reason: format!("the pause reverted in block {}", outcome.block),
            });
        }
        let value_kept =
            (!outcome.holdings.is_empty()).then(|| outcome.holdings.iter().all(|h| h.kept));
        Self::PauseLanded(LandedAlert {
            contract: outcome.contract,
            contract_name: outcome.contract_name.clone(),
            rule: None,
            pause_tx: outcome.pause_tx,
            attack_tx: outcome.attack_tx,
            block: outcome.block,
            pause_index: outcome.pause_index,
            attack_index: outcome.attack_index,
            attack_succeeded: outcome.attack_succeeded,
            pause_before_attack: outcome.pause_before_attack,
            contract_paused: outcome.contract_paused,
            value_kept,
        })
    }

    pub fn node_down(node: &str, reason: &str) -> Self {
        Self::NodeDown { node: node.to_string(), reason: reason.to_string() }
    }

    pub fn node_up(node: &str) -> Self {
        Self::NodeUp { node: node.to_string() }
    }

    /// The guardian's balance against what one pause costs at the caps of `respond`.
    pub fn guardian_balance(guardian: Address, balance_wei: U256, respond: &RespondConfig) -> Self {
        let pause_cost_wei = U256::from(respond.max_fee_per_gas_cap)
            .saturating_mul(U256::from(respond.pause_gas_limit));
        Self::GuardianBalance { guardian, balance_wei, pause_cost_wei }
    }

    /// The event's name in payloads and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Finding(_) => "finding",
            Self::PauseSent(_) => "pause-sent",
            Self::PauseLanded(_) => "pause-landed",
            Self::PauseFailed(_) => "pause-failed",
            Self::NodeDown { .. } => "node-down",
            Self::NodeUp { .. } => "node-up",
            Self::GuardianBalance { .. } => "guardian-balance",
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::Bytes;

    use super::*;
    use crate::{
        submit::{DestinationKind, SendResult},
        types::Evidence,
    };

    fn plan(attack: Option<B256>) -> PausePlan {
        PausePlan {
            contract: Address::with_last_byte(0xaa),
            contract_name: "EthVault".into(),
            target: Address::with_last_byte(0xaa),
            calldata: Bytes::from_static(&[0x84, 0x56, 0xcb, 0x59]),
            nonce: 3,
            max_fee_per_gas: 30_000_000_000,
            max_priority_fee_per_gas: 3_000_000_000,
            gas_limit: 200_000,
            tx_hash: B256::repeat_byte(0x9a),
            raw: Bytes::new(),
            outbids_attack: true,
            attack_tx: attack,
            presigned: false,
            safe: None,
            safe_nonce: None,
        }
    }

    fn report(oks: &[bool]) -> SubmitReport {
        SubmitReport {
            tx_hash: B256::repeat_byte(0x9a),
            target_block: 13,
            results: oks
                .iter()
                .enumerate()
                .map(|(i, ok)| SendResult {
                    destination: format!("d{i}"),
                    kind: DestinationKind::Node,
                    ok: *ok,
                    error: (!ok).then(|| "nonce too low".to_string()),
                    latency_us: 100,
                    written_us: None,
                    by_worker: false,
                })
                .collect(),
            started_at: std::time::Instant::now(),
            first_written_at: None,
        }
    }

    fn finding(severity: Severity, rule: &'static str) -> Finding {
        Finding {
            rule,
            severity,
            contract: Address::with_last_byte(0xaa),
            contract_name: "EthVault".into(),
            summary: "s".into(),
            evidence: Evidence::Invariant {
                invariant: "solvent()".into(),
                before: crate::types::InvariantValue::Holds { lhs: None, rhs: None },
                after: crate::types::InvariantValue::Unreadable { reason: "r".into() },
            },
        }
    }

    #[test]
    fn a_pause_any_destination_took_is_sent_with_the_most_severe_rule() {
        let findings =
            [finding(Severity::Medium, "invariant"), finding(Severity::Critical, "reentrancy")];
        let attack = B256::repeat_byte(0xa7);
        let AlertEvent::PauseSent(p) =
            AlertEvent::pause_sent(&plan(None), &report(&[false, true]), &findings, Some(attack))
        else {
            panic!("one destination took it");
        };
        assert_eq!(p.rule.as_deref(), Some("reentrancy"));
        assert_eq!(p.severity, Some(Severity::Critical));
        assert_eq!(p.attack_tx, Some(attack), "a block-guard plan names no attack");
        assert_eq!(p.accepted, ["d1"]);
        assert_eq!(p.refused, [("d0".to_string(), "nonce too low".to_string())]);
        assert_eq!((p.target_block, p.nonce), (13, 3));
    }

    #[test]
    fn a_pause_no_destination_took_is_a_failure_naming_each_answer() {
        let AlertEvent::PauseFailed(f) =
            AlertEvent::pause_sent(&plan(Some(B256::ZERO)), &report(&[false, false]), &[], None)
        else {
            panic!("nobody took it");
        };
        assert_eq!(f.reason, "every destination refused it (d0: nonce too low; d1: nonce too low)");
        assert_eq!(f.pause_tx, Some(B256::repeat_byte(0x9a)));
        let AlertEvent::PauseFailed(f) =
            AlertEvent::pause_sent(&plan(None), &report(&[]), &[], None)
        else {
            panic!("nowhere to send");
        };
        assert_eq!(f.reason, "no destination to send to");
    }

    #[test]
    fn guardian_balance_is_priced_at_the_fee_cap_times_the_pause_gas_limit() {
        let respond = crate::config::RespondConfig {
            mode: crate::config::ResponseMode::Pause,
            max_fee_per_gas_cap: 100_000_000_000,
            max_priority_fee_per_gas_cap: 1,
            pause_gas_limit: 200_000,
            resend_blocks: 3,
            safe: None,
        };
        let AlertEvent::GuardianBalance { pause_cost_wei, .. } =
            AlertEvent::guardian_balance(Address::ZERO, U256::from(1u64), &respond)
        else {
            panic!("a balance event");
        };
        assert_eq!(pause_cost_wei, U256::from(20_000_000_000_000_000u128));
    }
}
