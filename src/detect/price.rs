//! Price manipulation: a price the protected contract read (spot reserves, a share rate, an
//! oracle answer) moved by more than its bound inside the tx, and the contract lost value
//! against something that price sets (a borrow, a trade, an unaccounted outflow) — whatever
//! the size of the loss: a drain below the threshold is still a drain at a false price.

use super::{name_of, rule_names};
use crate::{
    config::ProtectedContract,
    types::{AccountedBy, Evidence, Finding, Severity, SimOutcome},
};

#[derive(Debug)]
pub struct PriceManipulationRule;

impl PriceManipulationRule {
    pub fn check(
        outcome: &SimOutcome,
        protected: &[ProtectedContract],
        findings: &mut Vec<Finding>,
    ) {
        for ledger in &outcome.ledgers {
            let Some(p) = protected.iter().find(|p| p.address == ledger.contract) else { continue };
            let moved: Vec<_> = ledger
                .price_reads
                .iter()
                .filter(|r| r.moved_bps >= u64::from(p.price_move_bps))
                .cloned()
                .collect();
            if moved.is_empty() {
                continue;
            }
            // Own funds out at the books' rate do not depend on any price.
            let priced = |a: &crate::types::AssetLedger| {
                !a.unaccounted.is_zero()
                    || a.accounted.iter().any(|x| {
                        !matches!(x.by, AccountedBy::OwnEntry { .. } | AccountedBy::Shares { .. })
                    })
            };
            let losses: Vec<_> = ledger
                .assets
                .iter()
                .filter(|a| !a.loss().is_zero() && priced(a))
                .map(|a| (a.asset, a.loss(), a.unaccounted_bps()))
                .collect();
            if losses.is_empty() {
                continue;
            }
            let worst = moved.iter().map(|r| r.moved_bps).max().unwrap_or_default();
            let name = name_of(protected, ledger.contract);
            findings.push(Finding {
                rule: rule_names::PRICE_MANIPULATION,
                severity: if ledger.authority.is_some() { Severity::Medium } else { Severity::High },
                contract: ledger.contract,
                contract_name: name.clone(),
                summary: format!(
                    "{name} read {} price(s) that moved up to {}.{:02}% inside the tx (bound {}.{:02}%) and lost value on them",
                    moved.len(),
                    worst.min(999_999) / 100,
                    worst.min(999_999) % 100,
                    p.price_move_bps / 100,
                    p.price_move_bps % 100
                ),
                evidence: Evidence::PriceManipulation {
                    reads: moved,
                    bound_bps: p.price_move_bps,
                    losses,
                },
            });
        }
    }
}
