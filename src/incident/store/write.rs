//! One incident record (the JSON line the export holds) into the store's rows, inside a
//! savepoint: a record is stored whole or not at all.

use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use rusqlite::{Transaction, params};
use serde_json::Value;
use thiserror::Error;

use super::PreState;

#[derive(Debug, Error)]
pub(super) enum WriteError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("record kind {0:?} is not one the store knows")]
    Kind(Option<String>),
    #[error("`{0}` is missing or malformed")]
    Field(&'static str),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// An address as the store keeps it: 0x-hex, lower case (so filters compare exactly).
fn address(v: &Value) -> Option<String> {
    v.as_str().and_then(|s| Address::from_str(s).ok()).map(|a| format!("{a:#x}"))
}

fn hash(v: &Value) -> Option<String> {
    v.as_str().and_then(|s| B256::from_str(s).ok()).map(|h| format!("{h:#x}"))
}

/// A wei amount as decimal text, from a JSON number or a decimal / hex string.
fn amount(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => U256::from_str(s).ok().map(|u| u.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
}

fn text(v: &Value) -> Option<&str> {
    v.as_str()
}

/// `null` stays NULL; anything else is kept as compact JSON.
fn json_or_null(v: &Value) -> Option<String> {
    (!v.is_null()).then(|| v.to_string())
}

pub(super) fn record_in(tx: &mut Transaction<'_>, line: &str) -> Result<(), WriteError> {
    let r: Value = serde_json::from_str(line)?;
    let sp = tx.savepoint()?;
    match r["kind"].as_str() {
        Some("detection") => detection(&sp, &r)?,
        Some("resend") => resend(&sp, &r)?,
        Some("outcome") => outcome(&sp, &r)?,
        Some("rearmed") => rearm(&sp, &r)?,
        other => return Err(WriteError::Kind(other.map(str::to_string))),
    }
    sp.commit()?;
    Ok(())
}

fn detection(tx: &rusqlite::Savepoint<'_>, r: &Value) -> Result<(), WriteError> {
    let at = int(&r["at_unix_ms"]).ok_or(WriteError::Field("at_unix_ms"))?;
    let source = text(&r["source"]).ok_or(WriteError::Field("source"))?;
    let attack = hash(&r["attack_tx"]).ok_or(WriteError::Field("attack_tx"))?;
    let fees = &r["attack_fees"];
    tx.execute(
        "INSERT INTO incidents (opened_unix_ms, source, attack_tx, attack_from, attack_to,
             attack_max_fee_per_gas, attack_max_priority_fee_per_gas, seen_from, sim_block,
             sim_gas_used, sim_time_us, submit_started_us, sent_us, answered_us, times_json,
             holdings_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            at,
            source,
            attack,
            address(&r["attack_from"]),
            address(&r["attack_to"]),
            amount(&fees["max_fee_per_gas"]),
            amount(&fees["max_priority_fee_per_gas"]),
            text(&r["seen_from"]),
            int(&r["sim_block"]),
            int(&r["sim_gas_used"]),
            r["sim_time_us"].as_f64(),
            r["submit_started_us"].as_f64(),
            r["sent_us"].as_f64(),
            r["answered_us"].as_f64(),
            json_or_null(&r["times"]),
            json_or_null(&r["holdings"]),
        ],
    )?;
    let id = tx.last_insert_rowid();
    let findings = r["findings"].as_array().map(Vec::as_slice).unwrap_or_default();
    for f in findings {
        tx.execute(
            "INSERT INTO findings (incident_id, rule, severity, contract, contract_name, summary,
                 evidence_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                text(&f["rule"]).ok_or(WriteError::Field("findings[].rule"))?,
                text(&f["severity"]).unwrap_or("?"),
                address(&f["contract"]).ok_or(WriteError::Field("findings[].contract"))?,
                text(&f["contract_name"]).unwrap_or("?"),
                text(&f["summary"]).unwrap_or(""),
                f["evidence"].to_string(),
            ],
        )?;
    }
    for d in r["decisions"].as_array().into_iter().flatten() {
        let contract = address(&d[0]).ok_or(WriteError::Field("decisions[][0]"))?;
        let decision = &d[1];
        let plan = &decision["plan"];
        // A decision without a plan (skip, alert) names its contract through the findings.
        let name = text(&plan["contract_name"]).map(str::to_string).or_else(|| {
            findings
                .iter()
                .find(|f| address(&f["contract"]).as_deref() == Some(contract.as_str()))
                .and_then(|f| text(&f["contract_name"]).map(str::to_string))
        });
        tx.execute(
            "INSERT INTO decisions (incident_id, contract, contract_name, action, pause_tx, nonce,
                 max_fee_per_gas, max_priority_fee_per_gas, gas_limit, outbids_attack, replaces,
                 reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                id,
                contract,
                name,
                text(&decision["action"]).ok_or(WriteError::Field("decisions[][1].action"))?,
                hash(&plan["tx_hash"]),
                int(&plan["nonce"]),
                amount(&plan["max_fee_per_gas"]),
                amount(&plan["max_priority_fee_per_gas"]),
                int(&plan["gas_limit"]),
                plan["outbids_attack"].as_bool(),
                hash(&decision["replaces"]),
                text(&decision["reason"]).or(text(&decision["error"])),
            ],
        )?;
    }
    for report in r["submitted"].as_array().into_iter().flatten() {
        sends(tx, Some(id), at, "first", report)?;
    }
    Ok(())
}

/// Every destination's answer in one `SubmitReport`.
fn sends(
    tx: &rusqlite::Savepoint<'_>,
    incident: Option<i64>,
    at: i64,
    attempt: &str,
    report: &Value,
) -> Result<(), WriteError> {
    let pause = hash(&report["tx_hash"]).ok_or(WriteError::Field("report.tx_hash"))?;
    let target = int(&report["target_block"]).ok_or(WriteError::Field("report.target_block"))?;
    for s in report["results"].as_array().into_iter().flatten() {
        tx.execute(
            "INSERT INTO sends (incident_id, at_unix_ms, attempt, pause_tx, target_block,
                 destination, kind, ok, error, latency_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                incident,
                at,
                attempt,
                pause,
                target,
                text(&s["destination"]).unwrap_or("?"),
                text(&s["kind"]).unwrap_or("?"),
                s["ok"].as_bool().unwrap_or(false),
                text(&s["error"]),
                int(&s["latency_us"]),
            ],
        )?;
    }
    Ok(())
}

fn resend(tx: &rusqlite::Savepoint<'_>, r: &Value) -> Result<(), WriteError> {
    let at = int(&r["at_unix_ms"]).ok_or(WriteError::Field("at_unix_ms"))?;
    let pause = hash(&r["pause_tx"]).ok_or(WriteError::Field("pause_tx"))?;
    // The detection may not be written yet: then the send is joined by its pause tx when read.
    let incident: Option<i64> = tx
        .query_row(
            "SELECT incident_id FROM decisions WHERE pause_tx = ?1 ORDER BY id LIMIT 1",
            [&pause],
            |row| row.get(0),
        )
        .ok();
    sends(tx, incident, at, "resend", &r["report"])
}

fn outcome(tx: &rusqlite::Savepoint<'_>, r: &Value) -> Result<(), WriteError> {
    tx.execute(
        "INSERT INTO outcomes (at_unix_ms, block, contract, contract_name, pause_tx, pause_landed,
             pause_succeeded, pause_index, attack_tx, attack_index, attack_succeeded, same_block,
             pause_before_attack, contract_paused, holdings_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            int(&r["at_unix_ms"]).ok_or(WriteError::Field("at_unix_ms"))?,
            int(&r["block"]).ok_or(WriteError::Field("block"))?,
            address(&r["contract"]).ok_or(WriteError::Field("contract"))?,
            text(&r["contract_name"]).unwrap_or("?"),
            hash(&r["pause_tx"]).ok_or(WriteError::Field("pause_tx"))?,
            r["pause_landed"].as_bool().unwrap_or(false),
            r["pause_succeeded"].as_bool(),
            int(&r["pause_index"]),
            hash(&r["attack_tx"]),
            int(&r["attack_index"]),
            r["attack_succeeded"].as_bool(),
            r["same_block"].as_bool().unwrap_or(false),
            r["pause_before_attack"].as_bool().unwrap_or(false),
            r["contract_paused"].as_bool(),
            r["holdings"].to_string(),
        ],
    )?;
    Ok(())
}

fn rearm(tx: &rusqlite::Savepoint<'_>, r: &Value) -> Result<(), WriteError> {
    tx.execute(
        "INSERT INTO rearms (at_unix_ms, contract, contract_name, unpaused_at_block, was)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            int(&r["at_unix_ms"]).ok_or(WriteError::Field("at_unix_ms"))?,
            address(&r["contract"]).ok_or(WriteError::Field("contract"))?,
            text(&r["contract_name"]).unwrap_or("?"),
            int(&r["unpaused_at_block"]).ok_or(WriteError::Field("unpaused_at_block"))?,
            text(&r["was"]).unwrap_or(""),
        ],
    )?;
    Ok(())
}

pub(super) fn prestate_in(tx: &mut Transaction<'_>, p: &PreState) -> Result<(), rusqlite::Error> {
    let sp = tx.savepoint()?;
    let attack = format!("{:#x}", p.attack_tx);
    let block = i64::try_from(p.block).unwrap_or(i64::MAX);
    for a in &p.accounts {
        sp.execute(
            "INSERT OR REPLACE INTO prestate_accounts (attack_tx, block, address, balance, nonce,
                 code_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                attack,
                block,
                format!("{:#x}", a.address),
                a.balance.to_string(),
                i64::try_from(a.nonce).unwrap_or(i64::MAX),
                format!("{:#x}", a.code_hash),
            ],
        )?;
    }
    for s in &p.storage {
        sp.execute(
            "INSERT OR REPLACE INTO prestate_storage (attack_tx, block, address, slot, value)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                attack,
                block,
                format!("{:#x}", s.address),
                format!("{:#x}", B256::from(s.slot)),
                format!("{:#x}", B256::from(s.value)),
            ],
        )?;
    }
    for (code_hash, code) in &p.code {
        sp.execute(
            "INSERT OR IGNORE INTO prestate_code (code_hash, code) VALUES (?1, ?2)",
            params![format!("{code_hash:#x}"), code.as_ref()],
        )?;
    }
    if let Some(run) = &p.run {
        sp.execute(
            "INSERT OR REPLACE INTO prestate_runs (attack_tx, block, chain_id, sim_block_json,
                 block_hashes_json, raw_tx)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                attack,
                block,
                i64::try_from(run.chain_id).unwrap_or(i64::MAX),
                serde_json::to_string(&run.sim_block).unwrap_or_default(),
                serde_json::to_string(&run.block_hashes).unwrap_or_default(),
                run.raw_tx.as_ref(),
            ],
        )?;
    }
    sp.commit()
}
