//! The store's tables: one incident per detection, with its findings, decisions, every send
//! (first and re-sent), outcomes and re-arms, and the pre-state a simulation read (reserved for
//! `check --replay`). Sends and outcomes are joined to an incident by pause tx, not by id: a
//! block can land a pause before its detection record is written.

use rusqlite::Connection;

use super::StoreError;

/// Bumped with every change below; a store written by a newer preempt is refused, not guessed at.
pub(super) const VERSION: i64 = 2;

const TABLES: &str = r#"
CREATE TABLE incidents (
    id                      INTEGER PRIMARY KEY,
    opened_unix_ms          INTEGER NOT NULL,
    source                  TEXT NOT NULL,           -- mempool | block-guard
    attack_tx               TEXT NOT NULL,
    attack_from             TEXT,
    attack_to               TEXT,
    attack_max_fee_per_gas  TEXT,                    -- wei, decimal
    attack_max_priority_fee_per_gas TEXT,
    seen_from               TEXT,
    sim_block               INTEGER,
    sim_gas_used            INTEGER,
    sim_time_us             REAL,
    submit_started_us       REAL,
    sent_us                 REAL,
    answered_us             REAL,
    times_json              TEXT,                    -- µs since first sight, per stage
    holdings_json           TEXT                     -- protected holdings before/after, simulated
);
CREATE INDEX incidents_by_time ON incidents (opened_unix_ms);
CREATE INDEX incidents_by_attack ON incidents (attack_tx);

CREATE TABLE findings (
    id              INTEGER PRIMARY KEY,
    incident_id     INTEGER NOT NULL REFERENCES incidents (id),
    rule            TEXT NOT NULL,
    severity        TEXT NOT NULL,
    contract        TEXT NOT NULL,                   -- 0x-hex, lower case
    contract_name   TEXT NOT NULL,
    summary         TEXT NOT NULL,
    evidence_json   TEXT NOT NULL
);
CREATE INDEX findings_by_incident ON findings (incident_id);
CREATE INDEX findings_by_contract ON findings (contract);
CREATE INDEX findings_by_contract_name ON findings (contract_name COLLATE NOCASE);
CREATE INDEX findings_by_rule ON findings (rule);

CREATE TABLE decisions (
    id                          INTEGER PRIMARY KEY,
    incident_id                 INTEGER NOT NULL REFERENCES incidents (id),
    contract                    TEXT NOT NULL,
    contract_name               TEXT,
    action                      TEXT NOT NULL,      -- pause | replace | dry-run | alert | skip | failed
    pause_tx                    TEXT,
    nonce                       INTEGER,
    max_fee_per_gas             TEXT,
    max_priority_fee_per_gas    TEXT,
    gas_limit                   INTEGER,
    outbids_attack              INTEGER,
    replaces                    TEXT,
    reason                      TEXT                -- skip reason or signing error
);
CREATE INDEX decisions_by_incident ON decisions (incident_id);
CREATE INDEX decisions_by_pause ON decisions (pause_tx);
CREATE INDEX decisions_by_contract ON decisions (contract);

CREATE TABLE sends (
    id              INTEGER PRIMARY KEY,
    incident_id     INTEGER REFERENCES incidents (id), -- NULL for a re-send (joined by pause_tx)
    at_unix_ms      INTEGER NOT NULL,
    attempt         TEXT NOT NULL,                   -- first | resend
    pause_tx        TEXT NOT NULL,
    target_block    INTEGER NOT NULL,
    destination     TEXT NOT NULL,
    kind            TEXT NOT NULL,                   -- node | relay
    ok              INTEGER NOT NULL,
    error           TEXT,
    latency_us      INTEGER
);
CREATE INDEX sends_by_pause ON sends (pause_tx);
CREATE INDEX sends_by_incident ON sends (incident_id);
CREATE INDEX sends_by_time ON sends (at_unix_ms);

CREATE TABLE outcomes (
    id                  INTEGER PRIMARY KEY,
    at_unix_ms          INTEGER NOT NULL,
    block               INTEGER NOT NULL,
    contract            TEXT NOT NULL,
    contract_name       TEXT NOT NULL,
    pause_tx            TEXT NOT NULL,
    pause_landed        INTEGER NOT NULL,
    pause_succeeded     INTEGER,
    pause_index         INTEGER,
    attack_tx           TEXT,
    attack_index        INTEGER,
    attack_succeeded    INTEGER,
    same_block          INTEGER NOT NULL,
    pause_before_attack INTEGER NOT NULL,
    contract_paused     INTEGER,
    holdings_json       TEXT NOT NULL
);
CREATE INDEX outcomes_by_pause ON outcomes (pause_tx);
CREATE INDEX outcomes_by_contract ON outcomes (contract, at_unix_ms);

CREATE TABLE rearms (
    id                  INTEGER PRIMARY KEY,
    at_unix_ms          INTEGER NOT NULL,
    contract            TEXT NOT NULL,
    contract_name       TEXT NOT NULL,
    unpaused_at_block   INTEGER NOT NULL,
    was                 TEXT NOT NULL
);
CREATE INDEX rearms_by_contract ON rearms (contract, at_unix_ms);

-- What a simulation read, so a verdict can be re-derived offline (`check --replay`): keyed by
-- the attack and the block whose state it ran on, so it may be written before the incident.
CREATE TABLE prestate_accounts (
    attack_tx   TEXT NOT NULL,
    block       INTEGER NOT NULL,
    address     TEXT NOT NULL,
    balance     TEXT NOT NULL,                       -- wei, decimal
    nonce       INTEGER NOT NULL,
    code_hash   TEXT NOT NULL,
    PRIMARY KEY (attack_tx, block, address)
);
CREATE TABLE prestate_storage (
    attack_tx   TEXT NOT NULL,
    block       INTEGER NOT NULL,
    address     TEXT NOT NULL,
    slot        TEXT NOT NULL,                       -- 0x-hex, 32 bytes
    value       TEXT NOT NULL,
    PRIMARY KEY (attack_tx, block, address, slot)
);
CREATE TABLE prestate_code (
    code_hash   TEXT PRIMARY KEY,
    code        BLOB NOT NULL
);
"#;

/// Schema 1 → 2.
const RUNS: &str = r#"
-- The rest of a replay's input (schema 2): the signed attack, the block env and chain it ran in.
CREATE TABLE prestate_runs (
    attack_tx           TEXT NOT NULL,
    block               INTEGER NOT NULL,
    chain_id            INTEGER NOT NULL,
    sim_block_json      TEXT NOT NULL,
    block_hashes_json   TEXT NOT NULL,
    raw_tx              BLOB NOT NULL,
    PRIMARY KEY (attack_tx, block)
);
"#;

/// Sets the connection up (WAL: `incidents list` reads while the guard writes) and creates or
/// checks the tables.
pub(super) fn prepare(conn: &Connection, writable: bool) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    if writable {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Durable across a crash of the process; an OS crash may lose the last commit.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    match version {
        0 if writable => {
            conn.execute_batch(&format!(
                "BEGIN; {TABLES} {RUNS} PRAGMA user_version = {VERSION}; COMMIT;"
            ))?;
            Ok(())
        }
        0 => Err(StoreError::NotAStore),
        1 if writable => {
            conn.execute_batch(&format!("BEGIN; {RUNS} PRAGMA user_version = {VERSION}; COMMIT;"))?;
            Ok(())
        }
        // A schema-1 store reads as it is (its incidents have no replay inputs).
        1 | VERSION => Ok(()),
        found => Err(StoreError::Version { found, supported: VERSION }),
    }
}
