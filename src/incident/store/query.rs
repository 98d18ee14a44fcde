//! Reading the store back: incidents filtered by time, contract and rule (`incidents list`),
//! one incident's whole timeline (`incidents show`), and the pre-state kept for a replay.

use std::{path::Path, str::FromStr};

use alloy::primitives::{Address, B256, Bytes, U256};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::Value;

use super::{PreState, PreStateAccount, PreStateSlot, ReplayRun, StoreError, schema};
use crate::incident::rfc3339_ms;

/// A contract as `--contract` names it: its address, or its name from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractFilter {
    Address(Address),
    Name(String),
}

impl ContractFilter {
    /// An address when `s` reads as one, else a name.
    pub fn named(s: &str) -> Self {
        match Address::from_str(s.trim()) {
            Ok(a) => Self::Address(a),
            Err(_) => Self::Name(s.trim().to_string()),
        }
    }
}

/// Which incidents `list` shows.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// Opened at or after (ms since the Unix epoch).
    pub since_unix_ms: Option<u64>,
    /// A finding on this contract.
    pub contract: Option<ContractFilter>,
    /// A finding of this rule.
    pub rule: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

/// One line of `incidents list`.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentSummary {
    pub id: i64,
    pub opened_unix_ms: u64,
    pub opened_at: String,
    pub source: String,
    pub attack_tx: String,
    /// Names of the contracts with findings, in order of first finding.
    pub contracts: Vec<String>,
    pub rules: Vec<String>,
    /// The most severe finding.
    pub severity: Option<String>,
    /// Each decision's action (`pause`, `skip`, …), one per contract.
    pub actions: Vec<String>,
    /// What the blocks showed, in words (`same block, pause first; attack reverted`).
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingRow {
    pub rule: String,
    pub severity: String,
    pub contract: String,
    pub contract_name: String,
    pub summary: String,
    pub evidence: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecisionRow {
    pub contract: String,
    pub contract_name: Option<String>,
    pub action: String,
    pub pause_tx: Option<String>,
    pub nonce: Option<i64>,
    pub max_fee_per_gas: Option<String>,
    pub max_priority_fee_per_gas: Option<String>,
    pub gas_limit: Option<i64>,
    pub outbids_attack: Option<bool>,
    pub replaces: Option<String>,
    pub reason: Option<String>,
}

/// One destination's answer to one copy of a pause.
#[derive(Debug, Clone, Serialize)]
pub struct SendRow {
    pub at_unix_ms: i64,
    /// `first` or `resend`.
    pub attempt: String,
    pub pause_tx: String,
    pub target_block: i64,
    pub destination: String,
    pub kind: String,
    pub ok: bool,
    pub error: Option<String>,
    pub latency_us: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutcomeRow {
    pub at_unix_ms: i64,
    pub block: i64,
    pub contract: String,
    pub contract_name: String,
    pub pause_tx: String,
    pub pause_landed: bool,
    pub pause_succeeded: Option<bool>,
    pub pause_index: Option<i64>,
    pub attack_tx: Option<String>,
    pub attack_index: Option<i64>,
    pub attack_succeeded: Option<bool>,
    pub same_block: bool,
    pub pause_before_attack: bool,
    pub contract_paused: Option<bool>,
    pub holdings: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct RearmRow {
    pub at_unix_ms: i64,
    pub contract: String,
    pub contract_name: String,
    pub unpaused_at_block: i64,
    pub was: String,
}

/// One incident, whole: detection, findings with evidence, decisions, every send with its
/// answer, outcomes and re-arms.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentDetail {
    pub id: i64,
    pub opened_unix_ms: u64,
    pub opened_at: String,
    pub source: String,
    pub attack_tx: String,
    pub attack_from: Option<String>,
    pub attack_to: Option<String>,
    pub attack_max_fee_per_gas: Option<String>,
    pub attack_max_priority_fee_per_gas: Option<String>,
    pub seen_from: Option<String>,
    pub sim_block: Option<i64>,
    pub sim_gas_used: Option<i64>,
    pub sim_time_us: Option<f64>,
    pub submit_started_us: Option<f64>,
    pub sent_us: Option<f64>,
    pub answered_us: Option<f64>,
    /// µs since first sight at the end of each stage.
    pub times: Value,
    pub holdings: Value,
    pub findings: Vec<FindingRow>,
    pub decisions: Vec<DecisionRow>,
    pub sends: Vec<SendRow>,
    pub outcomes: Vec<OutcomeRow>,
    pub rearms: Vec<RearmRow>,
    /// Whether the pre-state the simulation read is stored (for `check --replay`).
    pub prestate_recorded: bool,
}

/// A read-only view of a store; opening never creates one.
#[derive(Debug)]
pub struct StoreReader {
    conn: Connection,
}

fn json(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null)
}

fn ms(v: i64) -> u64 {
    u64::try_from(v).unwrap_or_default()
}

impl StoreReader {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open = || -> Result<Connection, StoreError> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            schema::prepare(&conn, false)?;
            Ok(conn)
        };
        let conn = open().map_err(|e| match e {
            StoreError::Sqlite(source) => StoreError::Open { path: path.to_path_buf(), source },
            other => other,
        })?;
        Ok(Self { conn })
    }

    pub fn list(&self, filter: &IncidentFilter) -> Result<Vec<IncidentSummary>, StoreError> {
        let contract = filter.contract.as_ref().map(|c| match c {
            ContractFilter::Address(a) => format!("{a:#x}"),
            ContractFilter::Name(n) => n.clone(),
        });
        let limit = filter.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let since = filter.since_unix_ms.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
        let mut stmt = self.conn.prepare(
            "SELECT i.id, i.opened_unix_ms, i.source, i.attack_tx FROM incidents i
             WHERE (?1 IS NULL OR i.opened_unix_ms >= ?1)
               AND (?2 IS NULL OR EXISTS (SELECT 1 FROM findings f WHERE f.incident_id = i.id
                    AND (f.contract = lower(?2) OR f.contract_name = ?2 COLLATE NOCASE)))
               AND (?3 IS NULL OR EXISTS (SELECT 1 FROM findings f WHERE f.incident_id = i.id
                    AND f.rule = ?3))
             ORDER BY i.opened_unix_ms DESC, i.id DESC
             LIMIT ?4",
        )?;
        let heads: Vec<(i64, i64, String, String)> = stmt
            .query_map(params![since, contract, filter.rule, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        heads
            .into_iter()
            .map(|(id, opened, source, attack_tx)| {
                let findings = self.findings(id)?;
                let decisions = self.decisions(id)?;
                let outcomes = self.outcomes(id)?;
                let mut contracts: Vec<String> = Vec::new();
                let mut rules: Vec<String> = Vec::new();
                for f in &findings {
                    if !contracts.contains(&f.contract_name) {
                        contracts.push(f.contract_name.clone());
                    }
                    if !rules.contains(&f.rule) {
                        rules.push(f.rule.clone());
                    }
                }
                let severity = findings
                    .iter()
                    .map(|f| f.severity.as_str())
                    .max_by_key(|s| severity_rank(s))
                    .map(str::to_string);
                Ok(IncidentSummary {
                    id,
                    opened_unix_ms: ms(opened),
                    opened_at: rfc3339_ms(ms(opened)),
                    source,
                    attack_tx,
                    contracts,
                    rules,
                    severity,
                    actions: decisions.iter().map(|d| d.action.clone()).collect(),
                    outcome: outcome_words(&decisions, &outcomes),
                })
            })
            .collect()
    }

    /// `None` when no incident has this id.
    pub fn show(&self, id: i64) -> Result<Option<IncidentDetail>, StoreError> {
        let head = self
            .conn
            .query_row(
                "SELECT id, opened_unix_ms, source, attack_tx, attack_from, attack_to,
                     attack_max_fee_per_gas, attack_max_priority_fee_per_gas, seen_from, sim_block,
                     sim_gas_used, sim_time_us, submit_started_us, sent_us, answered_us,
                     times_json, holdings_json
                 FROM incidents WHERE id = ?1",
                [id],
                |r| {
                    Ok(IncidentDetail {
                        id: r.get(0)?,
                        opened_unix_ms: ms(r.get(1)?),
                        opened_at: rfc3339_ms(ms(r.get(1)?)),
                        source: r.get(2)?,
                        attack_tx: r.get(3)?,
                        attack_from: r.get(4)?,
                        attack_to: r.get(5)?,
                        attack_max_fee_per_gas: r.get(6)?,
                        attack_max_priority_fee_per_gas: r.get(7)?,
                        seen_from: r.get(8)?,
                        sim_block: r.get(9)?,
                        sim_gas_used: r.get(10)?,
                        sim_time_us: r.get(11)?,
                        submit_started_us: r.get(12)?,
                        sent_us: r.get(13)?,
                        answered_us: r.get(14)?,
                        times: json(r.get(15)?),
                        holdings: json(r.get(16)?),
                        findings: Vec::new(),
                        decisions: Vec::new(),
                        sends: Vec::new(),
                        outcomes: Vec::new(),
                        rearms: Vec::new(),
                        prestate_recorded: false,
                    })
                },
            )
            .optional()?;
        let Some(mut d) = head else { return Ok(None) };
        d.findings = self.findings(id)?;
        d.decisions = self.decisions(id)?;
        d.sends = self.sends(id)?;
        d.outcomes = self.outcomes(id)?;
        d.rearms = self.rearms(id, d.opened_unix_ms)?;
        d.prestate_recorded = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM prestate_accounts WHERE attack_tx = ?1 AND block = ?2)",
            params![d.attack_tx, d.sim_block],
            |r| r.get(0),
        )?;
        Ok(Some(d))
    }

    fn findings(&self, id: i64) -> Result<Vec<FindingRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT rule, severity, contract, contract_name, summary, evidence_json
             FROM findings WHERE incident_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(FindingRow {
                rule: r.get(0)?,
                severity: r.get(1)?,
                contract: r.get(2)?,
                contract_name: r.get(3)?,
                summary: r.get(4)?,
                evidence: json(r.get(5)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn decisions(&self, id: i64) -> Result<Vec<DecisionRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT contract, contract_name, action, pause_tx, nonce, max_fee_per_gas,
                 max_priority_fee_per_gas, gas_limit, outbids_attack, replaces, reason
             FROM decisions WHERE incident_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(DecisionRow {
                contract: r.get(0)?,
                contract_name: r.get(1)?,
                action: r.get(2)?,
                pause_tx: r.get(3)?,
                nonce: r.get(4)?,
                max_fee_per_gas: r.get(5)?,
                max_priority_fee_per_gas: r.get(6)?,
                gas_limit: r.get(7)?,
                outbids_attack: r.get(8)?,
                replaces: r.get(9)?,
                reason: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// First sends carry the incident's id; re-sends are found by the pause tx.
    fn sends(&self, id: i64) -> Result<Vec<SendRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at_unix_ms, attempt, pause_tx, target_block, destination, kind, ok, error,
                 latency_us
             FROM sends
             WHERE incident_id = ?1 OR pause_tx IN
                 (SELECT pause_tx FROM decisions WHERE incident_id = ?1 AND pause_tx IS NOT NULL)
             ORDER BY at_unix_ms, id",
        )?;
        let rows = stmt.query_map([id], |r: &Row<'_>| {
            Ok(SendRow {
                at_unix_ms: r.get(0)?,
                attempt: r.get(1)?,
                pause_tx: r.get(2)?,
                target_block: r.get(3)?,
                destination: r.get(4)?,
                kind: r.get(5)?,
                ok: r.get(6)?,
                error: r.get(7)?,
                latency_us: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn outcomes(&self, id: i64) -> Result<Vec<OutcomeRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at_unix_ms, block, contract, contract_name, pause_tx, pause_landed,
                 pause_succeeded, pause_index, attack_tx, attack_index, attack_succeeded,
                 same_block, pause_before_attack, contract_paused, holdings_json
             FROM outcomes WHERE pause_tx IN
                 (SELECT pause_tx FROM decisions WHERE incident_id = ?1 AND pause_tx IS NOT NULL)
             ORDER BY block, id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(OutcomeRow {
                at_unix_ms: r.get(0)?,
                block: r.get(1)?,
                contract: r.get(2)?,
                contract_name: r.get(3)?,
                pause_tx: r.get(4)?,
                pause_landed: r.get(5)?,
                pause_succeeded: r.get(6)?,
                pause_index: r.get(7)?,
                attack_tx: r.get(8)?,
                attack_index: r.get(9)?,
                attack_succeeded: r.get(10)?,
                same_block: r.get(11)?,
                pause_before_attack: r.get(12)?,
                contract_paused: r.get(13)?,
                holdings: json(r.get(14)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Re-arms of this incident's contracts after it opened and before a later incident on the
    /// same contract (that one owns the next re-arm).
    fn rearms(&self, id: i64, opened: u64) -> Result<Vec<RearmRow>, StoreError> {
        let opened = i64::try_from(opened).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.at_unix_ms, r.contract, r.contract_name, r.unpaused_at_block, r.was
             FROM rearms r
             WHERE r.contract IN (SELECT contract FROM findings WHERE incident_id = ?1)
               AND r.at_unix_ms >= ?2
               AND NOT EXISTS (SELECT 1 FROM incidents j JOIN findings g ON g.incident_id = j.id
                    WHERE g.contract = r.contract AND j.id != ?1
                      AND j.opened_unix_ms > ?2 AND j.opened_unix_ms <= r.at_unix_ms)
             ORDER BY r.at_unix_ms, r.id",
        )?;
        let rows = stmt.query_map(params![id, opened], |r| {
            Ok(RearmRow {
                at_unix_ms: r.get(0)?,
                contract: r.get(1)?,
                contract_name: r.get(2)?,
                unpaused_at_block: r.get(3)?,
                was: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What the simulation of incident `id` read, if it was recorded.
    pub fn prestate(&self, id: i64) -> Result<Option<PreState>, StoreError> {
        let key: Option<(String, Option<i64>)> = self
            .conn
            .query_row("SELECT attack_tx, sim_block FROM incidents WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((attack, Some(block))) = key else { return Ok(None) };
        let parse_b256 = |s: String| B256::from_str(&s).unwrap_or_default();
        let parse_addr = |s: String| Address::from_str(&s).unwrap_or_default();
        let mut stmt = self.conn.prepare(
            "SELECT address, balance, nonce, code_hash FROM prestate_accounts
             WHERE attack_tx = ?1 AND block = ?2 ORDER BY address",
        )?;
        let accounts: Vec<PreStateAccount> = stmt
            .query_map(params![attack, block], |r| {
                Ok(PreStateAccount {
                    address: parse_addr(r.get(0)?),
                    balance: U256::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                    nonce: u64::try_from(r.get::<_, i64>(2)?).unwrap_or_default(),
                    code_hash: parse_b256(r.get(3)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        if accounts.is_empty() {
            return Ok(None);
        }
        let mut stmt = self.conn.prepare(
            "SELECT address, slot, value FROM prestate_storage
             WHERE attack_tx = ?1 AND block = ?2 ORDER BY address, slot",
        )?;
        let storage: Vec<PreStateSlot> = stmt
            .query_map(params![attack, block], |r| {
                Ok(PreStateSlot {
                    address: parse_addr(r.get(0)?),
                    slot: U256::from_be_bytes(parse_b256(r.get(1)?).0),
                    value: U256::from_be_bytes(parse_b256(r.get(2)?).0),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT c.code_hash, c.code FROM prestate_code c
             WHERE c.code_hash IN (SELECT code_hash FROM prestate_accounts
                                   WHERE attack_tx = ?1 AND block = ?2)
             ORDER BY c.code_hash",
        )?;
        let code: Vec<(B256, Bytes)> = stmt
            .query_map(params![attack, block], |r| {
                Ok((parse_b256(r.get(0)?), Bytes::from(r.get::<_, Vec<u8>>(1)?)))
            })?
            .collect::<Result<_, _>>()?;
        let run = self.replay_run(&attack, block)?;
        let attack_tx = B256::from_str(&attack).unwrap_or_default();
        let block = u64::try_from(block).unwrap_or_default();
        Ok(Some(PreState { attack_tx, block, accounts, storage, code, run }))
    }

    /// The signed attack and block env of a recorded pre-state (none in a schema-1 store).
    fn replay_run(&self, attack: &str, block: i64) -> Result<Option<ReplayRun>, StoreError> {
        let has_table: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table'
                            AND name = 'prestate_runs')",
            [],
            |r| r.get(0),
        )?;
        if !has_table {
            return Ok(None);
        }
        let row: Option<(i64, String, String, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT chain_id, sim_block_json, block_hashes_json, raw_tx FROM prestate_runs
                 WHERE attack_tx = ?1 AND block = ?2",
                params![attack, block],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((chain_id, sim_block, hashes, raw_tx)) = row else { return Ok(None) };
        // A row this preempt cannot read is as good as none: the replay says what is missing.
        let (Ok(sim_block), Ok(block_hashes)) =
            (serde_json::from_str(&sim_block), serde_json::from_str(&hashes))
        else {
            return Ok(None);
        };
        Ok(Some(ReplayRun {
            chain_id: u64::try_from(chain_id).unwrap_or_default(),
            sim_block,
            raw_tx: Bytes::from(raw_tx),
            block_hashes,
        }))
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 3,
        "high" => 2,
        "medium" => 1,
        _ => 0,
    }
}

/// The incident's result in a few words, for the list.
fn outcome_words(decisions: &[DecisionRow], outcomes: &[OutcomeRow]) -> Option<String> {
    if let Some(o) = outcomes.first() {
        let attack = match o.attack_succeeded {
            Some(false) => "; attack reverted",
            Some(true) => "; ATTACK SUCCEEDED",
            None => "",
        };
        let order = if o.pause_before_attack {
            "same block, pause first".to_string()
        } else if o.same_block {
            "same block, attack first".to_string()
        } else {
            format!("pause landed in block {}", o.block)
        };
        return Some(format!("{order}{attack}"));
    }
    decisions
        .iter()
        .any(|d| d.pause_tx.is_some() && matches!(d.action.as_str(), "pause" | "replace"))
        .then(|| "pause not seen in a block".to_string())
}
