//! What `preempt check` prints: a verdict per tx with findings and evidence, for people or as JSON.

use std::fmt::Write as _;

use alloy::primitives::{Address, B256, U256, utils::format_units};
use serde::Serialize;

use crate::{
    config::Asset,
    simulate::SimBlock,
    types::{Evidence, Finding, InvariantValue, SimOutcome, signed_delta},
};

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub node: String,
    pub chain_id: u64,
    /// The block whose state the fork was taken from.
    pub fork_block: u64,
    /// The block environment the txs ran in.
    pub sim_block: SimBlock,
    pub verdicts: Vec<TxVerdict>,
    /// What the run left out or compared against, one line each (printed under the header).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// `--replay`: whether the replayed findings (rule, contract) are the live ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_agrees: Option<bool>,
}

impl CheckReport {
    pub fn findings(&self) -> usize {
        self.verdicts.iter().map(|v| v.findings.len()).sum()
    }
}

#[derive(Debug, Serialize)]
pub struct TxVerdict {
    pub tx: B256,
    /// `exploit`, `clean`, or `error`.
    pub verdict: &'static str,
    pub findings: Vec<Finding>,
    pub outcome: Option<SimOutcome>,
    pub error: Option<String>,
}

impl TxVerdict {
    pub fn simulated(outcome: SimOutcome, findings: Vec<Finding>) -> Self {
        Self {
            tx: outcome.tx_hash,
            verdict: if findings.is_empty() { "clean" } else { "exploit" },
            findings,
            outcome: Some(outcome),
            error: None,
        }
    }

    pub fn failed(tx: B256, error: String) -> Self {
        Self { tx, verdict: "error", findings: Vec::new(), outcome: None, error: Some(error) }
    }
}

fn amount(asset: Asset, v: U256) -> String {
    // Every demo asset has 18 decimals; raw units are kept in the JSON output.
    let unit = match asset {
        Asset::Eth => "ETH".to_string(),
        Asset::Token(t) => format!("of token {t}"),
    };
    format!("{} {unit}", format_units(v, 18).unwrap_or_else(|_| v.to_string()))
}

fn short(a: &Address) -> String {
    let s = a.to_string();
    format!("{}…{}", &s[..6], &s[s.len() - 4..])
}

/// The human report.
pub fn print_human(report: &CheckReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node {} (chain {}), state of block {}, run in block env #{} (ts {}, base fee {})",
        report.node,
        report.chain_id,
        report.fork_block,
        report.sim_block.number,
        report.sim_block.timestamp,
        report.sim_block.base_fee
    );
    for note in &report.notes {
        let _ = writeln!(out, "{note}");
    }
    if report.verdicts.is_empty() {
        let _ = writeln!(out, "no transaction to check");
    }
    for v in &report.verdicts {
        let _ = writeln!(out);
        let _ = writeln!(out, "tx {}", v.tx);
        if let Some(e) = &v.error {
            let _ = writeln!(out, "  ERROR: {e}");
            continue;
        }
        let Some(o) = &v.outcome else { continue };
        let to = o.to.map(|t| t.to_string()).unwrap_or_else(|| "(create)".into());
        let _ = writeln!(out, "  from {} to {to}", o.from);
        let status = match &o.failure {
            None => "succeeded".to_string(),
            Some(f) => format!("failed ({f})"),
        };
        let _ = writeln!(
            out,
            "  simulated in {:.0} µs: {status}, gas {}, {} call frame(s)",
            o.sim_time.as_secs_f64() * 1e6,
            o.gas_used,
            o.frames.len()
        );
        if v.findings.is_empty() {
            let _ = writeln!(out, "  verdict: CLEAN");
        } else {
            let _ = writeln!(out, "  verdict: EXPLOIT ({} finding(s))", v.findings.len());
        }
        for f in &v.findings {
            let _ = writeln!(
                out,
                "  [{:?}] {} on {} ({})",
                f.severity, f.rule, f.contract_name, f.contract
            );
            let _ = writeln!(out, "    {}", f.summary);
            match &f.evidence {
                Evidence::Drain {
                    asset,
                    holdings_before,
                    holdings_after,
                    unmatched_loss,
                    claim_debits,
                    recipients,
                    ..
                } => {
                    let _ = writeln!(
                        out,
                        "    holdings: {} -> {} (unmatched loss {})",
                        amount(*asset, *holdings_before),
                        amount(*asset, *holdings_after),
                        amount(*asset, *unmatched_loss)
                    );
                    for (to, value) in recipients.iter().take(8) {
                        let _ = writeln!(out, "    paid {} to {to}", amount(*asset, *value));
                    }
                    if recipients.len() > 8 {
                        let _ = writeln!(out, "    … {} more payments", recipients.len() - 8);
                    }
                    for c in claim_debits {
                        let _ = writeln!(
                            out,
                            "    claim {}({}) {} -> {}",
                            c.view, c.account, c.before, c.after
                        );
                    }
                }
                Evidence::Reentrancy { path, stale_slots, .. } => {
                    let _ = writeln!(out, "    call path:");
                    for fr in path {
                        let sel = fr
                            .selector
                            .map(|s| format!("0x{}", alloy::primitives::hex::encode(s)))
                            .unwrap_or_default();
                        let _ = writeln!(
                            out,
                            "      #{:<3} {:indent$}{} {} -> {} {sel}{}",
                            fr.index,
                            "",
                            fr.scheme,
                            short(&fr.caller),
                            fr.target,
                            if fr.value.is_zero() {
                                String::new()
                            } else {
                                format!(" value {}", amount(Asset::Eth, fr.value))
                            },
                            indent = fr.depth.min(20)
                        );
                    }
                    let slots: Vec<String> =
                        stale_slots.iter().map(|s| format!("{s:#x}")).collect();
                    let _ = writeln!(
                        out,
                        "    slots read by the re-entry, written after it: {}",
                        slots.join(", ")
                    );
                }
                Evidence::Invariant { invariant, before, after } => {
                    let _ = writeln!(
                        out,
                        "    `{invariant}`: before {}, after {}",
                        inv(before),
                        inv(after)
                    );
                }
                Evidence::AdminAction { asset, loss, authority, role_change, .. } => {
                    let _ = writeln!(out, "    by {} ({})", authority.account, authority.held);
                    if let Some(asset) = asset {
                        let _ = writeln!(out, "    paid out {}", amount(*asset, *loss));
                    }
                    if let Some(c) = role_change {
                        let _ = writeln!(out, "    {}: {:?} -> {:?}", c.role, c.from, c.to);
                    }
                }
                Evidence::PriceManipulation { reads, bound_bps, losses } => {
                    for r in reads {
                        let _ = writeln!(
                            out,
                            "    read 0x{} on {}: before {:?}, during {:?}, after {:?} (moved {} bps, bound {bound_bps})",
                            alloy::primitives::hex::encode(r.selector),
                            r.target,
                            r.before,
                            r.during,
                            r.after,
                            r.moved_bps
                        );
                    }
                    for (asset, loss, bps) in losses {
                        let _ = writeln!(
                            out,
                            "    lost {} ({bps} bps of it unaccounted)",
                            amount(*asset, *loss)
                        );
                    }
                }
                Evidence::ApprovalDrain { pulls, .. } => {
                    for x in pulls {
                        let _ = writeln!(
                            out,
                            "    pulled {} of token {} from {} (held {}) to {}",
                            x.amount, x.token, x.from, x.held_before, x.to
                        );
                    }
                }
                Evidence::LedgerTheft { debits, .. } => {
                    for d in debits {
                        let _ = writeln!(
                            out,
                            "    {} slot {:#x}: {} -> {}; credited {:?}",
                            d.account, d.slot, d.before, d.after, d.credited
                        );
                    }
                }
                Evidence::CumulativeDrain(c) => {
                    let (sum_bps, threshold_bps, window_blocks) =
                        (c.sum_bps, c.threshold_bps, c.window_blocks);
                    for t in &c.takes {
                        let _ = writeln!(out, "    block {} tx {}: {}", t.block, t.tx, t.amount);
                    }
                    let _ = writeln!(
                        out,
                        "    {sum_bps} bps in {window_blocks} blocks (threshold {threshold_bps})"
                    );
                }
                Evidence::RoleTakeover { change } => {
                    let _ = writeln!(
                        out,
                        "    {}: {:?} -> {:?}, by {} holding no role before the tx",
                        change.role, change.from, change.to, change.by
                    );
                }
                Evidence::Probe { deployed, deployer, entry, value, findings, .. } => {
                    let _ = writeln!(
                        out,
                        "    {deployed} (deployed by {deployer}) probed with {entry}, {value} wei:"
                    );
                    for f in findings {
                        let _ = writeln!(out, "      [{}] {}", f.rule, f.summary);
                    }
                }
            }
        }
        if !o.holdings.is_empty() {
            let _ = writeln!(out, "  balance changes of protected contracts:");
            for h in &o.holdings {
                let delta = signed_delta(h.before, h.after);
                let sign = if delta.is_negative() { "-" } else { "+" };
                let _ = writeln!(
                    out,
                    "    {}: {} -> {} ({sign}{})",
                    h.contract,
                    amount(h.asset, h.before),
                    amount(h.asset, h.after),
                    format_units(delta.unsigned_abs(), 18).unwrap_or_default()
                );
            }
        }
    }
    out
}

fn inv(v: &InvariantValue) -> String {
    match v {
        InvariantValue::Holds { lhs: Some(l), rhs: Some(r) } => format!("holds ({l} vs {r})"),
        InvariantValue::Holds { .. } => "holds".into(),
        InvariantValue::Violated { lhs: Some(l), rhs: Some(r), .. } => {
            format!("VIOLATED ({l} vs {r})")
        }
        InvariantValue::Violated { .. } => "VIOLATED".into(),
        InvariantValue::Unreadable { reason } => format!("unreadable: {reason}"),
    }
}
