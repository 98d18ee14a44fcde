//! Balance drain: a protected contract lost more of an asset than its own books account for
//! (the takers' own entries, shares burnt, liabilities taken, positions closed, fair trades,
//! configured claims), above its threshold share of what it held. The same loss moved on the
//! authority of a key held before the tx is an admin action instead: told, not raced.

use alloy::primitives::U256;

use super::{name_of, rule_names, units};
use crate::{
    config::ProtectedContract,
    types::{Evidence, Finding, Severity, SimOutcome},
};

#[derive(Debug)]
pub struct BalanceDrainRule;

impl BalanceDrainRule {
    pub fn check(
        outcome: &SimOutcome,
        protected: &[ProtectedContract],
        findings: &mut Vec<Finding>,
    ) {
        for ledger in &outcome.ledgers {
            let Some(p) = protected.iter().find(|p| p.address == ledger.contract) else { continue };
            for a in &ledger.assets {
                let loss_bps = a.unaccounted_bps();
                if a.unaccounted.is_zero() || loss_bps < u64::from(p.drain_threshold_bps) {
                    continue;
                }
                let name = name_of(protected, ledger.contract);
                if let Some(authority) = &ledger.authority {
                    findings.push(Finding {
                        rule: rule_names::ADMIN_ACTION,
                        severity: Severity::Info,
                        contract: ledger.contract,
                        contract_name: name.clone(),
                        summary: format!(
                            "{name} paid out {} {} ({}.{:02}% of its holdings) on the authority of {} ({}), held before the tx",
                            units(a.unaccounted),
                            a.asset,
                            loss_bps / 100,
                            loss_bps % 100,
                            authority.account,
                            authority.held
                        ),
                        evidence: Evidence::AdminAction {
                            asset: Some(a.asset),
                            loss: a.unaccounted,
                            loss_bps,
                            authority: authority.clone(),
                            role_change: None,
                        },
                    });
                    continue;
                }
                let claim_debits = outcome
                    .claims
                    .iter()
                    .filter(|c| {
                        c.contract == ledger.contract && c.asset == a.asset && c.before > c.after
                    })
                    .cloned()
                    .collect();
                findings.push(Finding {
                    rule: rule_names::DRAIN,
                    severity: if loss_bps >= 5_000 { Severity::Critical } else { Severity::High },
                    contract: ledger.contract,
                    contract_name: name.clone(),
                    summary: format!(
                        "{name} lost {} of {} {} ({}.{:02}% of its holdings) that nothing in its books accounts for (threshold {}.{:02}%)",
                        units(a.unaccounted),
                        units(a.before),
                        a.asset,
                        loss_bps / 100,
                        loss_bps % 100,
                        p.drain_threshold_bps / 100,
                        p.drain_threshold_bps % 100,
                    ),
                    evidence: Evidence::Drain {
                        asset: a.asset,
                        holdings_before: a.before,
                        holdings_after: a.after,
                        loss: a.loss(),
                        unmatched_loss: a.unaccounted,
                        loss_bps,
                        threshold_bps: p.drain_threshold_bps,
                        claim_debits,
                        accounted: a.accounted.clone(),
                        recipients: a
                            .flows
                            .iter()
                            .filter(|f| f.out > U256::ZERO)
                            .map(|f| (f.account, f.out))
                            .collect(),
                    },
                });
            }
        }
    }
}
