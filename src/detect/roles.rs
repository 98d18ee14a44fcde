//! Roles: a privileged role (owner, admin, an AccessControl role, a proxy's implementation)
//! given by someone who held no authority before the tx is a takeover — an initializer run
//! again, a public role setter, an upgrade by a stranger — and is paused even when nothing has
//! moved yet. The same change by a key holder is an admin action: recorded.

use super::{name_of, rule_names};
use crate::{
    config::ProtectedContract,
    types::{Authority, Evidence, Finding, Severity, SimOutcome},
};

#[derive(Debug)]
pub struct RoleRule;

impl RoleRule {
    pub fn check(
        outcome: &SimOutcome,
        protected: &[ProtectedContract],
        findings: &mut Vec<Finding>,
    ) {
        for ledger in &outcome.ledgers {
            let name = name_of(protected, ledger.contract);
            for change in &ledger.role_changes {
                let to = change.to.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
                match &change.by_authority {
                    None => findings.push(Finding {
                        rule: rule_names::ROLE_TAKEOVER,
                        severity: Severity::Critical,
                        contract: ledger.contract,
                        contract_name: name.clone(),
                        summary: format!(
                            "{name}: {} given to {to} by {}, who held no role on it before the tx",
                            change.role, change.by
                        ),
                        evidence: Evidence::RoleTakeover { change: change.clone() },
                    }),
                    Some(held) => findings.push(Finding {
                        rule: rule_names::ADMIN_ACTION,
                        severity: Severity::Info,
                        contract: ledger.contract,
                        contract_name: name.clone(),
                        summary: format!(
                            "{name}: {} given to {to} by {} ({held})",
                            change.role, change.by
                        ),
                        evidence: Evidence::AdminAction {
                            asset: None,
                            loss: Default::default(),
                            loss_bps: 0,
                            authority: Authority { account: change.by, held: held.clone() },
                            role_change: Some(change.clone()),
                        },
                    }),
                }
            }
        }
    }
}
