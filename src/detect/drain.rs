//! Balance drain: a protected contract loses more of an asset than the recipients' own claims
//! on it went down by, above its threshold share of what it held.

use alloy::primitives::U256;

use super::{name_of, rule_names};
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
        for h in &outcome.holdings {
            let loss = h.loss();
            let Some(p) = protected.iter().find(|p| p.address == h.contract) else { continue };
            if loss.is_zero() || h.before.is_zero() {
                continue;
            }
            // A withdrawal paid out against the withdrawer's own claim is not a drain.
            let claim_debits: Vec<_> = outcome
                .claims
                .iter()
                .filter(|c| c.contract == h.contract && c.asset == h.asset && c.before > c.after)
                .cloned()
                .collect();
            let debited = claim_debits
                .iter()
                .fold(U256::ZERO, |acc, c| acc.saturating_add(c.before - c.after));
            let unmatched = loss.saturating_sub(debited);
            let bps = unmatched.saturating_mul(U256::from(10_000u64)) / h.before;
            let loss_bps = u64::try_from(bps).unwrap_or(u64::MAX);
            if loss_bps < u64::from(p.drain_threshold_bps) {
                continue;
            }
            findings.push(Finding {
                rule: rule_names::DRAIN,
                severity: if loss_bps >= 5_000 { Severity::Critical } else { Severity::High },
                contract: h.contract,
                contract_name: name_of(protected, h.contract),
                summary: format!(
                    "{} lost {} of {} {} ({}.{:02}% of its holdings) not matched by any claim debit (threshold {}.{:02}%)",
                    p.name,
                    units(unmatched),
                    units(h.before),
                    h.asset,
                    loss_bps / 100,
                    loss_bps % 100,
                    p.drain_threshold_bps / 100,
                    p.drain_threshold_bps % 100,
                ),
                evidence: Evidence::Drain {
                    asset: h.asset,
                    holdings_before: h.before,
                    holdings_after: h.after,
                    loss,
                    unmatched_loss: unmatched,
                    loss_bps,
                    threshold_bps: p.drain_threshold_bps,
                    claim_debits,
                    recipients: h.recipients.clone(),
                },
            });
        }
    }
}

/// A raw amount as a decimal with 18 places (ETH and the usual ERC-20), trailing zeros cut.
fn units(v: U256) -> String {
    let s = alloy::primitives::utils::format_units(v, 18).unwrap_or_else(|_| v.to_string());
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}
