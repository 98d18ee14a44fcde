//! Invariants from config: a view-call check that held before the tx and is violated after it.

use super::{name_of, rule_names};
use crate::{
    config::ProtectedContract,
    types::{Evidence, Finding, InvariantValue, Severity, SimOutcome},
};

#[derive(Debug)]
pub struct InvariantRule;

impl InvariantRule {
    pub fn check(
        outcome: &SimOutcome,
        protected: &[ProtectedContract],
        findings: &mut Vec<Finding>,
    ) {
        for reading in &outcome.invariants {
            if !(reading.before.holds() && reading.after.violated()) {
                continue;
            }
            let values = match &reading.after {
                InvariantValue::Violated { lhs: Some(l), rhs: Some(r), .. } => {
                    format!(" (now {l} vs {r})")
                }
                _ => String::new(),
            };
            let name = name_of(protected, reading.contract);
            findings.push(Finding {
                rule: rule_names::INVARIANT,
                severity: Severity::Critical,
                contract: reading.contract,
                contract_name: name.clone(),
                summary: format!(
                    "{name}: `{}` held before the tx and is violated after it{values}",
                    reading.invariant
                ),
                evidence: Evidence::Invariant {
                    invariant: reading.invariant.clone(),
                    before: reading.before.clone(),
                    after: reading.after.clone(),
                },
            });
        }
    }
}
