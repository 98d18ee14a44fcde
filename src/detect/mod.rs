//! Detection: pure rules from a simulation outcome (and the config) to findings with evidence.

mod cumulative;
mod drain;
mod invariant;
mod price;
mod reentrancy;
mod roles;
mod theft;

use crate::{
    config::ProtectedContract,
    types::{Finding, SimOutcome},
};

pub use cumulative::{CumulativeTracker, Take};
pub use drain::BalanceDrainRule;
pub use invariant::InvariantRule;
pub use price::PriceManipulationRule;
pub use reentrancy::ReentrancyRule;
pub use roles::RoleRule;
pub use theft::TheftRule;

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
    PriceManipulationRule::check(outcome, protected, &mut findings);
    RoleRule::check(outcome, protected, &mut findings);
    TheftRule::check(outcome, protected, &mut findings);
    InvariantRule::check(outcome, protected, &mut findings);
    // Re-entry is judged last: its severity depends on what else the tx did.
    ReentrancyRule::check(outcome, protected, &mut findings);
    findings
}

/// A raw amount as a decimal with 18 places (ETH and the usual ERC-20), trailing zeros cut.
pub(crate) fn units(v: alloy::primitives::U256) -> String {
    let s = alloy::primitives::utils::format_units(v, 18).unwrap_or_else(|_| v.to_string());
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
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
