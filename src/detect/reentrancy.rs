//! Reentrancy: a protected contract entered again while its own frame was live, where the
//! re-entrant frame read storage the live frame wrote after it (state the re-entry saw stale).
//! A re-entrant frame that only read is a read-only reentrancy: a view served mid-update.
//! Judged by consequence: with value gone that the books do not account for, a broken
//! invariant or a moved price in the same tx it is an attack; without, a low-severity record
//! (a flash loan that re-enters and repays, a hook that only reads).

use super::{name_of, rule_names};
use crate::{
    config::ProtectedContract,
    types::{CallFrame, Evidence, Finding, Severity, SimOutcome},
};

#[derive(Debug)]
pub struct ReentrancyRule;

impl ReentrancyRule {
    pub fn check(
        outcome: &SimOutcome,
        protected: &[ProtectedContract],
        findings: &mut Vec<Finding>,
    ) {
        let consequence = findings.iter().any(|f| {
            [
                rule_names::DRAIN,
                rule_names::PRICE_MANIPULATION,
                rule_names::INVARIANT,
                rule_names::ROLE_TAKEOVER,
                rule_names::LEDGER_THEFT,
                rule_names::APPROVAL_DRAIN,
            ]
            .contains(&f.rule)
        }) || outcome.ledgers.iter().any(|l| l.unaccounted_anything());
        // One finding per contract and kind: the outermost re-entry, with the count.
        for read_only in [false, true] {
            let mut reported = Vec::new();
            for obs in outcome.reentries.iter().filter(|o| o.inner_read_only == read_only) {
                if reported.contains(&obs.contract) {
                    continue;
                }
                reported.push(obs.contract);
                let (Some(outer), Some(inner)) =
                    (outcome.frames.get(obs.outer_frame), outcome.frames.get(obs.inner_frame))
                else {
                    continue;
                };
                let count = outcome
                    .reentries
                    .iter()
                    .filter(|o| o.contract == obs.contract && o.inner_read_only == read_only)
                    .count();
                let name = name_of(protected, obs.contract);
                let (rule, summary) = if let Some(d) = &obs.double_payout {
                    (
                        rule_names::REENTRANCY,
                        format!(
                            "{name} was re-entered by {} (frame {} inside live frame {}) and paid out in both against the same entry of its books (slot {:#x}): {} before the re-entry, {} inside it",
                            inner.caller,
                            inner.index,
                            outer.index,
                            d.slot,
                            super::units(d.outer_paid),
                            super::units(d.inner_paid)
                        ),
                    )
                } else if read_only {
                    (
                        rule_names::READ_ONLY_REENTRANCY,
                        format!(
                            "{name} was read by {} (frame {}) in the middle of its own unfinished update (frame {}); {} slot(s) it read were rewritten afterwards",
                            inner.caller,
                            inner.index,
                            outer.index,
                            obs.stale_slots.len()
                        ),
                    )
                } else {
                    (
                        rule_names::REENTRANCY,
                        format!(
                            "{name} was re-entered by {} (frame {} inside live frame {}), {count} time(s); {} slot(s) read by the re-entry were written by the outer frame afterwards",
                            inner.caller,
                            inner.index,
                            outer.index,
                            obs.stale_slots.len()
                        ),
                    )
                };
                findings.push(Finding {
                    rule,
                    // Paying twice against one entry leaks whatever its size.
                    severity: match (consequence || obs.double_payout.is_some(), read_only) {
                        (false, _) => Severity::Low,
                        (true, true) => Severity::High,
                        (true, false) => Severity::Critical,
                    },
                    contract: obs.contract,
                    contract_name: name,
                    summary,
                    evidence: Evidence::Reentrancy {
                        outer: outer.clone(),
                        inner: inner.clone(),
                        path: path_between(&outcome.frames, obs.outer_frame, obs.inner_frame),
                        stale_slots: obs.stale_slots.clone(),
                        double_payout: obs.double_payout.clone(),
                    },
                });
            }
        }
    }
}

/// Frames from `outer` down to `inner` (inclusive), following parents up from `inner`.
fn path_between(frames: &[CallFrame], outer: usize, inner: usize) -> Vec<CallFrame> {
    let mut path = Vec::new();
    let mut cursor = Some(inner);
    while let Some(i) = cursor {
        let Some(frame) = frames.get(i) else { break };
        path.push(frame.clone());
        if i == outer {
            break;
        }
        cursor = frame.parent;
    }
    path.reverse();
    path
}
