use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use serde_json::json;

use super::*;

const FLUSH: Duration = Duration::from_secs(5);

fn detection(at: u64, attack: u8, pause: u8) -> String {
    json!({
        "kind": "detection",
        "at_unix_ms": at,
        "source": "mempool",
        "attack_tx": B256::repeat_byte(attack),
        "attack_from": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "attack_to": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "attack_fees": { "max_fee_per_gas": 30_000_000_000u64, "max_priority_fee_per_gas": 2_000_000_000u64 },
        "seen_from": "local",
        "sim_block": 12,
        "sim_gas_used": 90_000,
        "sim_time_us": 55.5,
        "findings": [{
            "rule": "reentrancy", "severity": "critical",
            "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "contract_name": "EthVault",
            "summary": "re-entered", "evidence": { "kind": "reentrancy", "stale_slots": ["0x1"] }
        }],
        "holdings": [],
        "decisions": [["0x5FbDB2315678afecb367f032d93F642f64180aa3", {
            "action": "pause",
            "plan": { "contract_name": "EthVault", "tx_hash": B256::repeat_byte(pause), "nonce": 4,
                      "max_fee_per_gas": 40_000_000_000u64, "max_priority_fee_per_gas": 3_000_000_000u64,
                      "gas_limit": 200_000, "outbids_attack": true }
        }]],
        "times": { "decoded_us": 1.0, "signed_us": 90.0 },
        "submitted": [{ "tx_hash": B256::repeat_byte(pause), "target_block": 13, "results": [
            { "destination": "local", "kind": "node", "ok": true, "error": null, "latency_us": 300 }
        ]}]
    })
    .to_string()
}

fn resend(at: u64, pause: u8, block: u64) -> String {
    json!({
        "kind": "resend", "at_unix_ms": at, "pause_tx": B256::repeat_byte(pause),
        "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "report": { "tx_hash": B256::repeat_byte(pause), "target_block": block, "results": [
            { "destination": "local", "kind": "node", "ok": false, "error": "already known", "latency_us": 200 }
        ]}
    })
    .to_string()
}

#[test]
fn a_resend_written_before_its_detection_still_joins_its_incident() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("sub/incidents.sqlite");
    let store = IncidentStore::open(&path).expect("open creates the folder and the file");
    store.submit(resend(1_500, 0x9a, 14));
    store.submit(detection(1_000, 0xa7, 0x9a));
    assert!(store.flush(FLUSH));
    assert_eq!(store.counters(), StoreCounters { written: 2, store_dropped: 0, errors: 0 });
    let reader = StoreReader::open(&path).expect("read");
    let d = reader.show(1).expect("query").expect("incident 1");
    assert_eq!(d.attack_tx, format!("{:#x}", B256::repeat_byte(0xa7)));
    assert_eq!(d.attack_from.as_deref(), Some("0x70997970c51812dc3a010c7d01b50e0d17dc79c8"));
    assert_eq!(d.attack_max_fee_per_gas.as_deref(), Some("30000000000"));
    assert_eq!(d.decisions[0].nonce, Some(4));
    let sends: Vec<(&str, i64, bool)> =
        d.sends.iter().map(|s| (s.attempt.as_str(), s.target_block, s.ok)).collect();
    assert_eq!(sends, [("first", 13, true), ("resend", 14, false)]);
    assert!(!d.prestate_recorded);
    assert!(reader.show(2).expect("query").is_none());
}

#[test]
fn bad_records_are_counted_and_never_stop_the_writer() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("i.sqlite");
    let store = IncidentStore::open(&path).expect("open");
    store.submit("not json".into());
    store.submit(r#"{"kind":"mystery"}"#.into());
    store.submit(detection(1, 1, 2).replace("attack_tx", "attack_hash"));
    store.submit(detection(2, 3, 4));
    assert!(store.flush(FLUSH));
    assert_eq!(store.counters(), StoreCounters { written: 1, store_dropped: 0, errors: 3 });
    let rows =
        StoreReader::open(&path).expect("read").list(&IncidentFilter::default()).expect("list");
    assert_eq!(rows.len(), 1, "the refused detection left no half-written rows");
    assert_eq!(rows[0].attack_tx, format!("{:#x}", B256::repeat_byte(3)));
}

#[test]
fn prestate_round_trips_for_replay() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("i.sqlite");
    let store = IncidentStore::open(&path).expect("open");
    store.submit(detection(1_000, 0xa7, 0x9a));
    let code = Bytes::from_static(&[0x60, 0x00, 0x56]);
    let code_hash = alloy::primitives::keccak256(&code);
    let vault = Address::with_last_byte(0xaa);
    let prestate = PreState {
        attack_tx: B256::repeat_byte(0xa7),
        block: 12,
        accounts: vec![PreStateAccount {
            address: vault,
            balance: U256::from(10u64).pow(U256::from(19u64)),
            nonce: 1,
            code_hash,
        }],
        storage: vec![
            PreStateSlot { address: vault, slot: U256::ZERO, value: U256::from(7u64) },
            PreStateSlot { address: vault, slot: U256::MAX, value: U256::MAX },
        ],
        code: vec![(code_hash, code)],
        run: Some(crate::incident::ReplayRun {
            chain_id: 31337,
            sim_block: crate::simulate::SimBlock {
                number: 12,
                timestamp: 1_764_000_000,
                base_fee: 875_000_000,
                gas_limit: 30_000_000,
                beneficiary: Address::with_last_byte(0xbe),
                prevrandao: B256::repeat_byte(0x11),
                excess_blob_gas: 0,
            },
            raw_tx: Bytes::from_static(&[0x02, 0xf8, 0x01]),
            block_hashes: vec![(11, B256::repeat_byte(0x0b))],
        }),
    };
    store.record_prestate(prestate.clone());
    assert!(store.flush(FLUSH));
    let reader = StoreReader::open(&path).expect("read");
    assert_eq!(reader.prestate(1).expect("query"), Some(prestate));
    assert!(reader.show(1).expect("query").expect("incident").prestate_recorded);
}

#[test]
fn a_reader_never_creates_a_store_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("missing.sqlite");
    let e = StoreReader::open(&missing).expect_err("no such file").to_string();
    assert!(e.starts_with(&format!("incident store {}: ", missing.display())), "{e}");
    assert!(!missing.exists());

    let other = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&other)
        .expect("create")
        .execute_batch("CREATE TABLE t (x);")
        .expect("table");
    assert_eq!(
        StoreReader::open(&other).expect_err("not ours").to_string(),
        "not a preempt incident store (no tables)"
    );

    let newer = dir.path().join("newer.sqlite");
    drop(IncidentStore::open(&newer).expect("create"));
    rusqlite::Connection::open(&newer)
        .expect("open")
        .pragma_update(None, "user_version", 99)
        .expect("bump");
    let e = IncidentStore::open(&newer).expect_err("newer").to_string();
    assert_eq!(e, "written by a newer preempt (schema 99; this one reads up to 2)");
}

#[test]
fn a_schema_1_store_is_read_as_it_is_and_upgraded_by_the_writer() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("v1.sqlite");
    let store = IncidentStore::open(&path).expect("create");
    store.submit(detection(1_000, 0xa7, 0x9a));
    assert!(store.flush(FLUSH));
    drop(store);
    // What a schema-1 preempt left: no replay inputs.
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch("DROP TABLE prestate_runs; PRAGMA user_version = 1;").expect("downgrade");
    drop(conn);
    let reader = StoreReader::open(&path).expect("a reader takes schema 1");
    assert!(reader.show(1).expect("query").is_some());
    assert_eq!(reader.prestate(1).expect("query"), None);
    drop(reader);
    drop(IncidentStore::open(&path).expect("the writer upgrades it"));
    let conn = rusqlite::Connection::open(&path).expect("open");
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
    assert_eq!(version, 2);
    let runs: i64 =
        conn.query_row("SELECT count(*) FROM prestate_runs", [], |r| r.get(0)).expect("table");
    assert_eq!(runs, 0);
}

#[test]
fn close_commits_what_is_queued_and_later_records_are_counted_as_dropped() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("i.sqlite");
    let store = IncidentStore::open(&path).expect("open");
    for n in 0..50u8 {
        store.submit(detection(u64::from(n), n, n.wrapping_add(100)));
    }
    store.close(FLUSH);
    assert_eq!(store.counters().written, 50);
    store.submit(detection(99, 99, 199));
    assert_eq!(store.counters().store_dropped, 1);
    let rows =
        StoreReader::open(&path).expect("read").list(&IncidentFilter::default()).expect("list");
    assert_eq!(rows.len(), 50);
}
