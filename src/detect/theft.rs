//! Theft from accounts, not from the contract's holdings: the contract, as spender, pulled a
//! third party's tokens (approval drain: Transit Swap, LI.FI, Socket), or balances in its own
//! books moved away from accounts that neither signed the tx, nor approved the spender, nor
//! signed for it once in the tx (ledger theft: a broken `transferFrom`, a replayed signature).

use alloy::primitives::U256;

use super::{name_of, rule_names, units};
use crate::{
    config::ProtectedContract,
    types::{Evidence, Finding, Severity, SimOutcome},
};

#[derive(Debug)]
pub struct TheftRule;

/// `part` is at least `threshold_bps` of `whole` (a whole of zero: any part is).
fn crosses(part: U256, whole: U256, threshold_bps: u32) -> bool {
    whole.is_zero() && !part.is_zero()
        || part.saturating_mul(U256::from(10_000u64))
            >= whole.saturating_mul(U256::from(threshold_bps))
}

impl TheftRule {
    pub fn check(
        outcome: &SimOutcome,
        protected: &[ProtectedContract],
        findings: &mut Vec<Finding>,
    ) {
        for ledger in &outcome.ledgers {
            let Some(p) = protected.iter().find(|p| p.address == ledger.contract) else { continue };
            let name = name_of(protected, ledger.contract);
            let threshold = p.drain_threshold_bps;
            let pulls: Vec<_> = ledger
                .pulls
                .iter()
                .filter(|x| crosses(x.amount, x.held_before, threshold))
                .cloned()
                .collect();
            if !pulls.is_empty() && ledger.authority.is_none() {
                let victims: Vec<String> = pulls
                    .iter()
                    .map(|x| format!("{} of {} from {}", units(x.amount), x.token, x.from))
                    .collect();
                findings.push(Finding {
                    rule: rule_names::APPROVAL_DRAIN,
                    severity: Severity::Critical,
                    contract: ledger.contract,
                    contract_name: name.clone(),
                    summary: format!(
                        "{name} spent allowances of accounts that did not sign the tx: {}",
                        victims.join("; ")
                    ),
                    evidence: Evidence::ApprovalDrain { pulls, threshold_bps: threshold },
                });
            }
            let debits: Vec<_> = ledger
                .debits
                .iter()
                .filter(|d| d.authorized.is_none())
                .filter(|d| crosses(d.before.saturating_sub(d.after), d.before, threshold))
                .cloned()
                .collect();
            if !debits.is_empty() && ledger.authority.is_none() {
                let victims: Vec<String> = debits
                    .iter()
                    .map(|d| {
                        format!("{} lost {}", d.account, units(d.before.saturating_sub(d.after)))
                    })
                    .collect();
                findings.push(Finding {
                    rule: rule_names::LEDGER_THEFT,
                    severity: Severity::Critical,
                    contract: ledger.contract,
                    contract_name: name.clone(),
                    summary: format!(
                        "{name} moved balances from accounts that neither signed, approved nor signed for it: {}",
                        victims.join("; ")
                    ),
                    evidence: Evidence::LedgerTheft { debits, threshold_bps: threshold },
                });
            }
        }
    }
}
