//! A readable timeline of an incident file: seen, simulated, findings, pause sent (fees, where),
//! and what the next block held.

use std::fmt::Write as _;

use alloy::primitives::{U256, utils::format_units};
use serde_json::Value;

fn gwei(v: &Value) -> String {
    let wei =
        v.as_u64().map(U256::from).or_else(|| v.as_str().and_then(|s| s.parse::<U256>().ok()));
    match wei {
        Some(w) => format!(
            "{} gwei",
            format_units(w, 9).unwrap_or_default().trim_end_matches('0').trim_end_matches('.')
        ),
        None => "?".into(),
    }
}

fn amount(v: &Value) -> String {
    v.as_str()
        .and_then(|s| s.parse::<U256>().ok())
        .map(|w| {
            format_units(w, 18)
                .unwrap_or_default()
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

/// A long string as its first 10 and last 4 characters (characters, not bytes: a hand-edited
/// or hostile record may hold any text).
fn short(v: &Value) -> String {
    let s = v.as_str().unwrap_or("?");
    let n = s.chars().count();
    if n > 14 {
        let head: String = s.chars().take(10).collect();
        let tail: String = s.chars().skip(n - 4).collect();
        format!("{head}…{tail}")
    } else {
        s.to_string()
    }
}

/// Renders every record of a JSON-lines incident file; unreadable lines are named, not fatal.
pub fn render(text: &str) -> String {
    let mut out = String::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let r: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                let _ = writeln!(out, "line {}: not a record ({e})", n + 1);
                continue;
            }
        };
        match r["kind"].as_str() {
            Some("detection") => detection(&mut out, &r),
            Some("outcome") => outcome(&mut out, &r),
            Some("resend") => {
                let ok = r["report"]["results"]
                    .as_array()
                    .map(|a| a.iter().filter(|x| x["ok"] == true).count());
                let _ = writeln!(
                    out,
                    "  resent pause {} for block {} ({} destination(s) took it)",
                    short(&r["pause_tx"]),
                    r["report"]["target_block"],
                    ok.unwrap_or(0)
                );
            }
            Some("rearmed") => {
                let _ = writeln!(
                    out,
                    "{} read unpaused at block {}: re-armed (it had been paused: {})",
                    r["contract_name"].as_str().unwrap_or("?"),
                    r["unpaused_at_block"],
                    r["was"].as_str().unwrap_or("?")
                );
            }
            other => {
                let _ = writeln!(out, "line {}: unknown record kind {other:?}", n + 1);
            }
        }
    }
    out
}

fn detection(out: &mut String, r: &Value) {
    let t = &r["times"];
    let via = if r["source"] == "block-guard" {
        "in a mined block (block guard)".to_string()
    } else {
        format!("pending, via {}", r["seen_from"].as_str().unwrap_or("?"))
    };
    let _ = writeln!(
        out,
        "attack {} from {} to {} — seen {via}",
        short(&r["attack_tx"]),
        short(&r["attack_from"]),
        short(&r["attack_to"])
    );
    if let Some(fees) = r["attack_fees"].as_object() {
        let _ = writeln!(
            out,
            "  attack fees: max {} / tip {}",
            gwei(&fees["max_fee_per_gas"]),
            gwei(&fees["max_priority_fee_per_gas"])
        );
    }
    let _ = writeln!(
        out,
        "  simulated in {:.0} µs (block env #{}, {} gas); +{} µs after first sight",
        r["sim_time_us"].as_f64().unwrap_or_default(),
        r["sim_block"],
        r["sim_gas_used"],
        t["simulated_us"]
    );
    for f in r["findings"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  finding [{}] {} on {}: {}",
            f["severity"].as_str().unwrap_or("?"),
            f["rule"].as_str().unwrap_or("?"),
            f["contract_name"].as_str().unwrap_or("?"),
            f["summary"].as_str().unwrap_or("")
        );
    }
    for d in r["decisions"].as_array().into_iter().flatten() {
        let decision = &d[1];
        let action = decision["action"].as_str().unwrap_or("?");
        let plan = &decision["plan"];
        if plan.is_object() {
            let _ = writeln!(
                out,
                "  {action}: {} for {} signed at +{} µs, nonce {}, max fee {}, tip {}{}",
                short(&plan["tx_hash"]),
                plan["contract_name"].as_str().unwrap_or("?"),
                t["signed_us"],
                plan["nonce"],
                gwei(&plan["max_fee_per_gas"]),
                gwei(&plan["max_priority_fee_per_gas"]),
                if plan["outbids_attack"] == false && r["source"] == "mempool" {
                    " (capped: does NOT outbid)"
                } else {
                    ""
                }
            );
        } else {
            let reason = decision["reason"].as_str().or(decision["error"].as_str()).unwrap_or("");
            let _ = writeln!(out, "  {action} {reason}");
        }
    }
    for s in r["submitted"].as_array().into_iter().flatten() {
        let dests: Vec<String> = s["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| {
                let status = if x["ok"] == true {
                    "ok".to_string()
                } else {
                    format!("FAILED: {}", x["error"].as_str().unwrap_or("?"))
                };
                format!(
                    "{} {} {} in {} µs",
                    x["kind"].as_str().unwrap_or("?"),
                    x["destination"].as_str().unwrap_or("?"),
                    status,
                    x["latency_us"]
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "  bytes written at +{} µs, answered by +{} µs, for block {}: {}",
            r["sent_us"],
            r["answered_us"],
            s["target_block"],
            dests.join("; ")
        );
    }
}

fn outcome(out: &mut String, r: &Value) {
    let idx = |v: &Value| v.as_u64().map(|i| i.to_string()).unwrap_or_else(|| "-".into());
    let attack = match (r["attack_index"].as_u64(), r["attack_succeeded"].as_bool()) {
        (Some(i), Some(false)) => format!(", attack at index {i} (reverted)"),
        (Some(i), Some(true)) => format!(", attack at index {i} (SUCCEEDED)"),
        _ => ", attack not in this block".into(),
    };
    let verdict = if r["pause_before_attack"] == true {
        "same block, pause first"
    } else if r["same_block"] == true {
        "same block, attack first"
    } else {
        "pause landed"
    };
    let _ = writeln!(
        out,
        "block {} holds [pause at index {}{attack}] — {verdict}; {} paused: {}",
        r["block"],
        idx(&r["pause_index"]),
        r["contract_name"].as_str().unwrap_or("?"),
        r["contract_paused"]
    );
    for h in r["holdings"].as_array().into_iter().flatten() {
        let asset =
            h["asset"].as_str().map(str::to_string).unwrap_or_else(|| short(&h["asset"]["Token"]));
        let _ = writeln!(
            out,
            "  {asset}: {} -> {} ({})",
            amount(&h["before"]),
            amount(&h["after"]),
            if h["kept"] == true { "value kept" } else { "VALUE LOST" }
        );
    }
}
