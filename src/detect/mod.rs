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
