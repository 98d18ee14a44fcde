//! `incidents list` as an aligned table and `incidents show` as a timeline, for a terminal.

use std::fmt::Write as _;

use alloy::primitives::{U256, utils::format_units};
use serde_json::Value;

use super::query::{IncidentDetail, IncidentSummary, SendRow};
use crate::incident::rfc3339_ms;

fn gwei(wei: Option<&str>) -> String {
    match wei.and_then(|w| w.parse::<U256>().ok()) {
        Some(w) => {
            let s = format_units(w, 9).unwrap_or_default();
            format!("{} gwei", s.trim_end_matches('0').trim_end_matches('.'))
        }
        None => "?".into(),
    }
}

fn eth(v: &Value) -> String {
    let wei =
        v.as_str().and_then(|s| s.parse::<U256>().ok()).or_else(|| v.as_u64().map(U256::from));
    match wei {
        Some(w) => {
            let s = format_units(w, 18).unwrap_or_default();
            let s = s.trim_end_matches('0').trim_end_matches('.');
            s.to_string()
        }
        None => "?".into(),
    }
}

/// A 66-character hash as `0x1234abcd…9f3e`; lists are for scanning, `show` prints it whole.
fn short(s: &str) -> String {
    let n = s.chars().count();
    if n > 16 {
        let head: String = s.chars().take(10).collect();
        let tail: String = s.chars().skip(n - 4).collect();
        format!("{head}…{tail}")
    } else {
        s.to_string()
    }
}

/// Text from the store made safe for a terminal (a record may hold anything a node sent).
fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

pub fn render_list(rows: &[IncidentSummary]) -> String {
    if rows.is_empty() {
        return "no incidents\n".into();
    }
    let table: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                r.opened_at.clone(),
                r.source.clone(),
                clean(&r.contracts.join(",")),
                clean(&r.rules.join(",")),
                r.severity.clone().unwrap_or_else(|| "-".into()),
                if r.actions.is_empty() { "-".into() } else { r.actions.join(",") },
                short(&r.attack_tx),
                r.outcome.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let head = [
        "ID",
        "OPENED (UTC)",
        "SOURCE",
        "CONTRACT",
        "RULE",
        "SEVERITY",
        "ACTION",
        "ATTACK",
        "OUTCOME",
    ];
    let mut widths = head.map(|h| h.chars().count());
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = w.saturating_sub(cell.chars().count());
                let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&mut out, &head);
    for row in &table {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut out, &cells);
    }
    out
}

pub fn render_detail(d: &IncidentDetail) -> String {
    let mut out = String::new();
    let via = match d.source.as_str() {
        "block-guard" => "in a mined block (block guard)".to_string(),
        _ => format!("pending, via {}", clean(d.seen_from.as_deref().unwrap_or("?"))),
    };
    let _ = writeln!(out, "incident {} — opened {} — {via}", d.id, d.opened_at);
    let _ = writeln!(
        out,
        "  attack {} from {} to {}",
        d.attack_tx,
        d.attack_from.as_deref().unwrap_or("?"),
        d.attack_to.as_deref().unwrap_or("(create)")
    );
    if d.attack_max_fee_per_gas.is_some() {
        let _ = writeln!(
            out,
            "  attack fees: max {} / tip {}",
            gwei(d.attack_max_fee_per_gas.as_deref()),
            gwei(d.attack_max_priority_fee_per_gas.as_deref())
        );
    }
    let _ = writeln!(
        out,
        "  simulated in {:.0} µs (block env #{}, {} gas)",
        d.sim_time_us.unwrap_or_default(),
        d.sim_block.map(|b| b.to_string()).unwrap_or_else(|| "?".into()),
        d.sim_gas_used.map(|g| g.to_string()).unwrap_or_else(|| "?".into()),
    );
    // Pipeline order, then the submit stage's marks; a block-guard detection has no stages.
    let mut stages: Vec<String> =
        ["decoded", "queued", "picked", "simulated", "detected", "signed"]
            .iter()
            .filter_map(|k| {
                let v = d.times[format!("{k}_us")].as_f64().filter(|v| *v > 0.0)?;
                Some(format!("{k} {v}"))
            })
            .collect();
    for (k, v) in [
        ("handed to submit", d.submit_started_us),
        ("pause bytes written", d.sent_us),
        ("every destination answered", d.answered_us),
    ] {
        if let Some(v) = v.filter(|v| *v > 0.0) {
            stages.push(format!("{k} {v}"));
        }
    }
    if !stages.is_empty() {
        let _ = writeln!(out, "  µs after first sight: {}", stages.join(", "));
    }
    for f in &d.findings {
        let _ = writeln!(
            out,
            "  finding [{}] {} on {} ({}): {}",
            clean(&f.severity),
            clean(&f.rule),
            clean(&f.contract_name),
            f.contract,
            clean(&f.summary)
        );
        let evidence = serde_json::to_string_pretty(&f.evidence).unwrap_or_default();
        let _ = writeln!(out, "    evidence:");
        for l in evidence.lines() {
            let _ = writeln!(out, "      {}", clean(l));
        }
    }
    for x in &d.decisions {
        let name = clean(x.contract_name.as_deref().unwrap_or(&x.contract));
        match &x.pause_tx {
            Some(tx) => {
                let _ = writeln!(
                    out,
                    "  decision {}: {} {tx}, nonce {}, max fee {}, tip {}, gas limit {}{}{}",
                    name,
                    x.action,
                    x.nonce.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
                    gwei(x.max_fee_per_gas.as_deref()),
                    gwei(x.max_priority_fee_per_gas.as_deref()),
                    x.gas_limit.map(|g| g.to_string()).unwrap_or_else(|| "?".into()),
                    match (x.outbids_attack, d.source.as_str()) {
                        (Some(false), "mempool") => " (capped: does NOT outbid the attack)",
                        (Some(true), "mempool") => " (outbids the attack)",
                        _ => "",
                    },
                    x.replaces.as_deref().map(|r| format!(", replaces {r}")).unwrap_or_default(),
                );
            }
            None => {
                let reason =
                    x.reason.as_deref().map(|r| format!(": {}", clean(r))).unwrap_or_default();
                let _ = writeln!(out, "  decision {name}: {}{reason}", x.action);
            }
        }
    }
    for group in group_sends(&d.sends) {
        let first = group[0];
        let dests: Vec<String> = group
            .iter()
            .map(|s| {
                let status = if s.ok {
                    "ok".to_string()
                } else {
                    format!("FAILED ({})", clean(s.error.as_deref().unwrap_or("?")))
                };
                let latency = s.latency_us.map(|l| format!(" in {l} µs")).unwrap_or_default();
                format!("{} {} {status}{latency}", s.kind, clean(&s.destination))
            })
            .collect();
        let verb = if first.attempt == "resend" { "re-sent" } else { "sent" };
        let _ = writeln!(
            out,
            "  {verb} {} for block {} at {}: {}",
            first.pause_tx,
            first.target_block,
            rfc3339_ms(u64::try_from(first.at_unix_ms).unwrap_or_default()),
            dests.join("; ")
        );
    }
    for o in &d.outcomes {
        let attack = match (o.attack_index, o.attack_succeeded) {
            (Some(i), Some(false)) => format!(", attack at index {i} (reverted)"),
            (Some(i), Some(true)) => format!(", attack at index {i} (SUCCEEDED)"),
            _ => ", attack not in this block".into(),
        };
        let verdict = if o.pause_before_attack {
            "same block, pause first"
        } else if o.same_block {
            "same block, attack first"
        } else {
            "pause landed"
        };
        let pause = match o.pause_succeeded {
            Some(false) => " (REVERTED)",
            _ => "",
        };
        let _ = writeln!(
            out,
            "  outcome: block {} holds [pause at index {}{pause}{attack}] — {verdict}; {} paused: {}",
            o.block,
            o.pause_index.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            clean(&o.contract_name),
            o.contract_paused.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into()),
        );
        for h in o.holdings.as_array().into_iter().flatten() {
            let asset = match (h["asset"].as_str(), h["asset"]["Token"].as_str()) {
                (Some("Eth"), _) => "ETH".to_string(),
                (Some(other), _) => clean(other),
                (None, Some(token)) => format!("token {token}"),
                (None, None) => "?".into(),
            };
            let _ = writeln!(
                out,
                "    {asset}: {} -> {} ({})",
                eth(&h["before"]),
                eth(&h["after"]),
                if h["kept"] == true { "value kept" } else { "VALUE LOST" }
            );
        }
    }
    for r in &d.rearms {
        let _ = writeln!(
            out,
            "  re-armed: {} read unpaused at block {} ({}); it had been paused: {}",
            clean(&r.contract_name),
            r.unpaused_at_block,
            rfc3339_ms(u64::try_from(r.at_unix_ms).unwrap_or_default()),
            clean(&r.was)
        );
    }
    if d.prestate_recorded {
        let _ = writeln!(out, "  pre-state recorded: replayable offline");
    }
    out
}

/// Sends of one copy (same pause, block and moment) together.
fn group_sends(sends: &[SendRow]) -> Vec<Vec<&SendRow>> {
    let mut groups: Vec<Vec<&SendRow>> = Vec::new();
    for s in sends {
        match groups.last_mut() {
            Some(g)
                if g[0].pause_tx == s.pause_tx
                    && g[0].target_block == s.target_block
                    && g[0].at_unix_ms == s.at_unix_ms
                    && g[0].attempt == s.attempt =>
            {
                g.push(s)
            }
            _ => groups.push(vec![s]),
        }
    }
    groups
}
