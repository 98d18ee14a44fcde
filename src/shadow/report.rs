//! What `preempt shadow` reports: per protected contract and per rule, what the policy table
//! would have done (pause / alert / record, or nothing because the contract was already paused),
//! each would-pause with its block, tx, rules and one-line summaries; as a table or as JSON.

use std::{collections::BTreeMap, fmt::Write as _};

use alloy::primitives::{Address, B256};
use serde::Serialize;

use crate::{
    config::{Config, ResponseMode},
    respond::{Action, Decision},
    types::Severity,
};

/// What the guard would have done about one contract a tx's findings name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Would {
    Record,
    Alert,
    Pause,
    /// Nothing: the contract was already paused on chain.
    Skip,
}

impl Would {
    /// A decision as shadow counts it. `Failed` only happens when a pause could not be signed:
    /// the policy wanted a pause, so it counts as one.
    pub fn of(decision: &Decision) -> Self {
        match decision {
            Decision::Pause { .. }
            | Decision::Replace { .. }
            | Decision::DryRun { .. }
            | Decision::Failed { .. } => Self::Pause,
            Decision::Alert => Self::Alert,
            Decision::Record => Self::Record,
            Decision::Skip { .. } => Self::Skip,
        }
    }

    /// As the incident record spells the decision's `action`.
    pub fn of_action(action: &str) -> Option<Self> {
        Some(match action {
            "pause" | "replace" | "dry-run" | "failed" => Self::Pause,
            "alert" => Self::Alert,
            "record" => Self::Record,
            "skip" => Self::Skip,
            _ => return None,
        })
    }

    fn of_policy(action: Action) -> Self {
        match action {
            Action::Pause => Self::Pause,
            Action::Alert => Self::Alert,
            Action::Record => Self::Record,
        }
    }
}

/// Counts by what would have been done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pause: u64,
    pub alert: u64,
    pub record: u64,
    /// Already paused: nothing would have been done.
    pub skip: u64,
}

impl Counts {
    fn add(&mut self, would: Would) {
        match would {
            Would::Pause => self.pause += 1,
            Would::Alert => self.alert += 1,
            Would::Record => self.record += 1,
            Would::Skip => self.skip += 1,
        }
    }

    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleCounts {
    pub rule: String,
    /// One per finding of this rule, by what its rule and severity call for.
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContractCounts {
    pub name: String,
    pub address: Address,
    /// One per tx with findings on this contract: the strongest action they call for.
    #[serde(flatten)]
    pub counts: Counts,
    pub rules: Vec<RuleCounts>,
}

/// One finding, as a line a person reads.
#[derive(Debug, Clone, Serialize)]
pub struct FindingLine {
    pub rule: String,
    pub severity: Severity,
    /// What this finding alone calls for.
    pub would: Would,
    pub summary: String,
}

/// A tx the guard would have paused a contract for.
#[derive(Debug, Clone, Serialize)]
pub struct WouldPause {
    /// The block holding the tx (`None`: a pending tx seen live, never mined meanwhile).
    pub block: Option<u64>,
    /// Its index in the block.
    pub index: Option<usize>,
    pub tx: B256,
    pub from: Address,
    pub to: Option<Address>,
    pub contract: Address,
    pub contract_name: String,
    /// `block` (a mined tx replayed or seen by the block guard) or `mempool`.
    pub seen_in: String,
    pub rules: Vec<String>,
    pub findings: Vec<FindingLine>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowReport {
    /// `replay` (mined blocks) or `live` (the live pipeline, nothing sent).
    pub source: &'static str,
    pub node: String,
    pub chain_id: Option<u64>,
    /// The config's `respond.mode`; shadow decides as `dry-run` whatever it says.
    pub configured_mode: ResponseMode,
    pub from_block: Option<u64>,
    pub to_block: Option<u64>,
    /// `--live`: how long the pipeline watched.
    pub duration_s: Option<f64>,
    pub blocks: u64,
    /// Txs replayed (`None` live: the pipeline does not count what it was sent).
    pub txs: Option<u64>,
    pub txs_with_findings: u64,
    /// Blocks whose replay disagreed with the chain's receipts (repaired from the node's diff
    /// where one was given; see `notes`). `None` live: the guard keeps its own count.
    pub divergences: Option<u64>,
    pub would_pause: u64,
    pub would_alert: u64,
    pub would_record: u64,
    pub skipped: u64,
    pub contracts: Vec<ContractCounts>,
    /// Per rule, over every contract.
    pub rules: Vec<RuleCounts>,
    pub pauses: Vec<WouldPause>,
    pub notes: Vec<String>,
    pub wall_time_s: f64,
}

impl ShadowReport {
    /// 0: nothing would have been paused; 1: at least one pause.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.would_pause > 0)
    }
}

/// A finding as both paths hand it over (a `Finding` on replay, an incident line live).
#[derive(Debug, Clone)]
pub(super) struct SeenFinding {
    pub contract: Address,
    pub rule: String,
    pub severity: Severity,
    pub summary: String,
}

/// A tx with findings and what was decided for each contract they name.
#[derive(Debug, Clone)]
pub(super) struct Decided {
    pub block: Option<u64>,
    pub index: Option<usize>,
    pub tx: B256,
    pub from: Address,
    pub to: Option<Address>,
    pub seen_in: &'static str,
    pub findings: Vec<SeenFinding>,
    pub decisions: Vec<(Address, Would)>,
}

/// Adds up decisions into a report.
#[derive(Debug)]
pub(super) struct Tally<'a> {
    config: &'a Config,
    contracts: BTreeMap<Address, (Counts, BTreeMap<String, Counts>)>,
    rules: BTreeMap<String, Counts>,
    pauses: Vec<WouldPause>,
    txs_with_findings: u64,
}

impl<'a> Tally<'a> {
    pub(super) fn new(config: &'a Config) -> Self {
        Self {
            config,
            contracts: BTreeMap::new(),
            rules: BTreeMap::new(),
            pauses: Vec::new(),
            txs_with_findings: 0,
        }
    }

    pub(super) fn add(&mut self, d: Decided) {
        self.txs_with_findings += 1;
        for (contract, would) in &d.decisions {
            let (counts, by_rule) = self.contracts.entry(*contract).or_default();
            counts.add(*would);
            let mine: Vec<&SeenFinding> =
                d.findings.iter().filter(|f| f.contract == *contract).collect();
            let lines: Vec<FindingLine> = mine
                .iter()
                .map(|f| FindingLine {
                    rule: f.rule.clone(),
                    severity: f.severity,
                    // Nothing is done for any finding on a contract already paused.
                    would: if *would == Would::Skip {
                        Would::Skip
                    } else {
                        Would::of_policy(self.config.policy.action(&f.rule, f.severity))
                    },
                    summary: f.summary.clone(),
                })
                .collect();
            for line in &lines {
                by_rule.entry(line.rule.clone()).or_default().add(line.would);
                self.rules.entry(line.rule.clone()).or_default().add(line.would);
            }
            if *would == Would::Pause {
                let mut rules: Vec<String> = Vec::new();
                for l in &lines {
                    if !rules.contains(&l.rule) {
                        rules.push(l.rule.clone());
                    }
                }
                self.pauses.push(WouldPause {
                    block: d.block,
                    index: d.index,
                    tx: d.tx,
                    from: d.from,
                    to: d.to,
                    contract: *contract,
                    contract_name: self.name_of(contract),
                    seen_in: d.seen_in.to_string(),
                    rules,
                    findings: lines,
                });
            }
        }
    }

    fn name_of(&self, contract: &Address) -> String {
        self.config
            .protected(*contract)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| contract.to_string())
    }

    /// The report, with every protected contract listed (those without findings at zero).
    pub(super) fn finish(self, header: ReportHeader) -> ShadowReport {
        let mut contracts: Vec<ContractCounts> = self
            .config
            .protected
            .iter()
            .map(|p| {
                let (counts, by_rule) = self.contracts.get(&p.address).cloned().unwrap_or_default();
                ContractCounts {
                    name: p.name.clone(),
                    address: p.address,
                    counts,
                    rules: rule_rows(by_rule),
                }
            })
            .collect();
        // A contract no longer in the config (live records name it): listed after the others.
        for (address, (counts, by_rule)) in &self.contracts {
            if self.config.protected(*address).is_none() {
                contracts.push(ContractCounts {
                    name: address.to_string(),
                    address: *address,
                    counts: *counts,
                    rules: rule_rows(by_rule.clone()),
                });
            }
        }
        let total = |f: fn(&Counts) -> u64| contracts.iter().map(|c| f(&c.counts)).sum();
        ShadowReport {
            source: header.source,
            node: header.node,
            chain_id: header.chain_id,
            configured_mode: self.config.respond.mode,
            from_block: header.from_block,
            to_block: header.to_block,
            duration_s: header.duration_s,
            blocks: header.blocks,
            txs: header.txs,
            txs_with_findings: self.txs_with_findings,
            divergences: header.divergences,
            would_pause: total(|c| c.pause),
            would_alert: total(|c| c.alert),
            would_record: total(|c| c.record),
            skipped: total(|c| c.skip),
            contracts,
            rules: rule_rows(self.rules),
            pauses: self.pauses,
            notes: header.notes,
            wall_time_s: (header.wall_time_s * 100.0).round() / 100.0,
        }
    }
}

fn rule_rows(by_rule: BTreeMap<String, Counts>) -> Vec<RuleCounts> {
    by_rule.into_iter().map(|(rule, counts)| RuleCounts { rule, counts }).collect()
}

/// What the path that ran knows of itself.
#[derive(Debug, Clone, Default)]
pub(super) struct ReportHeader {
    pub source: &'static str,
    pub node: String,
    pub chain_id: Option<u64>,
    pub from_block: Option<u64>,
    pub to_block: Option<u64>,
    pub duration_s: Option<f64>,
    pub blocks: u64,
    pub txs: Option<u64>,
    pub divergences: Option<u64>,
    pub notes: Vec<String>,
    pub wall_time_s: f64,
}

fn mode_name(mode: ResponseMode) -> &'static str {
    match mode {
        ResponseMode::Pause => "pause",
        ResponseMode::Alert => "alert",
        ResponseMode::DryRun => "dry-run",
    }
}

/// The report as a person reads it.
pub fn render_human(r: &ShadowReport) -> String {
    let mut out = String::new();
    let chain = r.chain_id.map(|c| format!(" (chain {c})")).unwrap_or_default();
    match (r.source, r.from_block, r.to_block) {
        ("replay", Some(from), Some(to)) => {
            let _ = writeln!(
                out,
                "preempt shadow: blocks {from}..={to} replayed from {}{chain}",
                r.node
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "preempt shadow: the live pipeline on {}{chain} for {:.0} s",
                r.node,
                r.duration_s.unwrap_or_default()
            );
        }
    }
    let txs = r.txs.map(|t| format!("{t} txs, ")).unwrap_or_default();
    let divergences =
        r.divergences.map(|d| format!(", {d} replay divergences")).unwrap_or_default();
    let _ = writeln!(
        out,
        "{} blocks, {txs}{} with findings{divergences}, {:.1} s",
        r.blocks, r.txs_with_findings, r.wall_time_s
    );
    let _ = writeln!(
        out,
        "decided as mode = \"dry-run\" (configured: \"{}\"): nothing was sent, no guardian key was used",
        mode_name(r.configured_mode)
    );
    if r.configured_mode == ResponseMode::Alert {
        let _ = writeln!(
            out,
            "note: with mode = \"alert\" each would-pause below is an alert until the mode is \"pause\""
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "(txs): txs with findings on the contract, by the strongest action they call for; \
         a rule: its findings, by what each calls for; skip: already paused"
    );
    let _ = writeln!(
        out,
        "{:<28} {:<24} {:>6} {:>6} {:>7} {:>5}",
        "contract", "rule", "pause", "alert", "record", "skip"
    );
    let row = |out: &mut String, name: &str, rule: &str, c: &Counts| {
        let _ = writeln!(
            out,
            "{:<28} {:<24} {:>6} {:>6} {:>7} {:>5}",
            name, rule, c.pause, c.alert, c.record, c.skip
        );
    };
    for c in &r.contracts {
        row(&mut out, &c.name, "(txs)", &c.counts);
        for rule in c.rules.iter().filter(|x| !x.counts.is_empty()) {
            row(&mut out, "", &rule.rule, &rule.counts);
        }
    }
    let totals = Counts {
        pause: r.would_pause,
        alert: r.would_alert,
        record: r.would_record,
        skip: r.skipped,
    };
    row(&mut out, "all contracts", "(txs)", &totals);
    for rule in &r.rules {
        row(&mut out, "", &rule.rule, &rule.counts);
    }
    let _ = writeln!(out);
    if r.pauses.is_empty() {
        let _ = writeln!(out, "would pause: none");
    } else {
        let _ = writeln!(out, "would pause ({}):", r.pauses.len());
        for p in &r.pauses {
            let at = match (p.block, p.index) {
                (Some(b), Some(i)) => format!("block {b} #{i}"),
                (Some(b), None) => format!("block {b}"),
                _ => "pending".to_string(),
            };
            let _ = writeln!(out, "  {at} tx {} {}: {}", p.tx, p.contract_name, p.rules.join(", "));
            for f in &p.findings {
                let _ = writeln!(
                    out,
                    "      {} ({}, {}): {}",
                    f.rule,
                    f.severity.as_str(),
                    would_name(f.would),
                    one_line(&f.summary)
                );
            }
        }
    }
    for note in &r.notes {
        let _ = writeln!(out, "note: {}", one_line(note));
    }
    out
}

fn would_name(w: Would) -> &'static str {
    match w {
        Would::Pause => "pause",
        Would::Alert => "alert",
        Would::Record => "record",
        Would::Skip => "already paused",
    }
}

/// Text on one line (summaries and node errors may hold line breaks).
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
