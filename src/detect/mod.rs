//! Detection: pure rules from a simulation outcome (and the config) to findings with evidence.

mod drain;
mod invariant;
mod reentrancy;

use crate::{
    config::ProtectedContract,
    types::{Finding, SimOutcome},
};

pub use drain::BalanceDrainRule;
pub use invariant::InvariantRule;
pub use reentrancy::ReentrancyRule;

/// Rule names as they appear in findings and incident records.
pub mod rule_names {
    pub const DRAIN: &str = "drain";
    pub const REENTRANCY: &str = "reentrancy";
    pub const READ_ONLY_REENTRANCY: &str = "read-only-reentrancy";
    pub const INVARIANT: &str = "invariant";
    pub const PRICE_MANIPULATION: &str = "price-manipulation";
    pub const ROLE_TAKEOVER: &str = "role-takeover";
    pub const ADMIN_ACTION: &str = "admin-action";
    pub const APPROVAL_DRAIN: &str = "approval-drain";
    pub const LEDGER_THEFT: &str = "ledger-theft";
    pub const CUMULATIVE_DRAIN: &str = "cumulative-drain";
    pub const PROBE: &str = "probe";

    /// Every rule, as the policy table names them.
    pub const ALL: [&str; 11] = [
        DRAIN,
        REENTRANCY,
        READ_ONLY_REENTRANCY,
        INVARIANT,
        PRICE_MANIPULATION,
        ROLE_TAKEOVER,
        ADMIN_ACTION,
        APPROVAL_DRAIN,
        LEDGER_THEFT,
        CUMULATIVE_DRAIN,
        PROBE,
    ];
}

/// Runs every rule on one outcome. A reverted tx yields nothing: it changed nothing.
pub fn detect(outcome: &SimOutcome, protected: &[ProtectedContract]) -> Vec<Finding> {
    if !outcome.success || outcome.touched_protected.is_empty() && outcome.invariants.is_empty() {
        return Vec::new();
    }
    let mut findings = Vec::new();
    BalanceDrainRule::check(outcome, protected, &mut findings);
    ReentrancyRule::check(outcome, protected, &mut findings);
    InvariantRule::check(outcome, protected, &mut findings);
    findings
}

fn name_of(protected: &[ProtectedContract], address: alloy::primitives::Address) -> String {
    protected
        .iter()
        .find(|p| p.address == address)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| address.to_string())
}

#[cfg(test)]
mod tests;
