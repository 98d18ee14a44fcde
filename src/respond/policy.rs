//! The policy table: what each rule at each severity makes the guard do — pause, alert, or only
//! record. A pause is an outage for the protocol, so only findings with consequence pause by
//! default; the table is in config (`[policy]`) and shown in the README.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::types::{Finding, Severity};

/// What a finding makes the guard do. Ordered: a stronger action wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Incident record and log only.
    Record,
    /// Record, log and alert; nothing is sent on chain.
    Alert,
    /// Race the containment call into the attack's block.
    Pause,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Record => "record",
            Self::Alert => "alert",
            Self::Pause => "pause",
        }
    }
}

/// Rule × severity → action: per-rule entries win over per-severity ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    by_severity: HashMap<Severity, Action>,
    by_rule: HashMap<String, Action>,
    by_rule_severity: HashMap<(String, Severity), Action>,
}

impl Default for Policy {
    fn default() -> Self {
        let by_severity = HashMap::from([
            (Severity::Critical, Action::Pause),
            (Severity::High, Action::Pause),
            (Severity::Medium, Action::Alert),
            (Severity::Low, Action::Record),
            (Severity::Info, Action::Record),
        ]);
        // Pausing against the protocol's own admin key contains nothing: it is told, not raced.
        let by_rule = HashMap::from([("admin-action".to_string(), Action::Alert)]);
        // A probe is a rehearsal, not a tx on its way: only a critical finding (a drain of
        // half the holdings, a theft, a broken invariant) is worth the outage.
        let by_rule_severity =
            HashMap::from([(("probe".to_string(), Severity::High), Action::Alert)]);
        Self { by_severity, by_rule, by_rule_severity }
    }
}

impl Policy {
    pub fn set_severity(&mut self, severity: Severity, action: Action) {
        self.by_severity.insert(severity, action);
    }

    pub fn set_rule(&mut self, rule: &str, severity: Option<Severity>, action: Action) {
        match severity {
            Some(s) => {
                self.by_rule_severity.insert((rule.to_string(), s), action);
            }
            None => {
                self.by_rule.insert(rule.to_string(), action);
            }
        }
    }

    pub fn action(&self, rule: &str, severity: Severity) -> Action {
        if let Some(a) = self.by_rule_severity.get(&(rule.to_string(), severity)) {
            return *a;
        }
        if let Some(a) = self.by_rule.get(rule) {
            return *a;
        }
        self.by_severity.get(&severity).copied().unwrap_or(Action::Alert)
    }

    pub fn action_for(&self, finding: &Finding) -> Action {
        self.action(finding.rule, finding.severity)
    }

    /// The table as rows (rule or `*`, severity, action), for the README and `status`.
    pub fn rows(&self) -> Vec<(String, Severity, Action)> {
        let mut rows: Vec<_> =
            Severity::ALL.iter().map(|s| ("*".to_string(), *s, self.action("*", *s))).collect();
        let mut rules: Vec<&String> =
            self.by_rule.keys().chain(self.by_rule_severity.keys().map(|(r, _)| r)).collect();
        rules.sort();
        rules.dedup();
        for rule in rules {
            rows.extend(Severity::ALL.iter().map(|s| (rule.clone(), *s, self.action(rule, *s))));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pause_only_on_high_and_critical_and_never_on_admin_actions() {
        let p = Policy::default();
        assert_eq!(p.action("drain", Severity::Critical), Action::Pause);
        assert_eq!(p.action("reentrancy", Severity::High), Action::Pause);
        assert_eq!(p.action("price-manipulation", Severity::Medium), Action::Alert);
        assert_eq!(p.action("reentrancy", Severity::Low), Action::Record);
        assert_eq!(p.action("admin-action", Severity::Critical), Action::Alert);
        assert_eq!(p.action("probe", Severity::Critical), Action::Pause);
        assert_eq!(p.action("probe", Severity::High), Action::Alert);
    }

    #[test]
    fn a_rule_at_a_severity_wins_over_the_rule_which_wins_over_the_severity() {
        let mut p = Policy::default();
        p.set_severity(Severity::High, Action::Alert);
        p.set_rule("drain", None, Action::Pause);
        p.set_rule("drain", Some(Severity::Medium), Action::Record);
        assert_eq!(p.action("drain", Severity::High), Action::Pause);
        assert_eq!(p.action("drain", Severity::Medium), Action::Record);
        assert_eq!(p.action("reentrancy", Severity::High), Action::Alert);
    }
}
