//! The incident store end to end: the records the submit stage writes (a real responder signs
//! the pauses) go in through `IncidentLog`; `preempt incidents list/show`, run as a process,
//! print them, filter them and emit JSON that parses; a full channel drops and counts.

use std::{
    path::Path,
    process::{Command, Output},
    str::FromStr,
    sync::Mutex,
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, U256, address},
    signers::local::PrivateKeySigner,
};
use preempt::{
    config::{Asset, Config},
    incident::{
        DetectionRecord, DetectionSource, HoldingKept, IncidentLog, IncidentStore, OutcomeRecord,
        RearmRecord, ResendRecord,
    },
    respond::{AttackFees, Decision, Pauser, Responder, decide_all},
    submit::{DestinationKind, SendResult, SubmitReport},
    types::{Evidence, Finding, InvariantValue, Severity},
    worker::StageTimes,
};
use serde_json::Value;

const VAULT: Address = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");
const POOL: Address = address!("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512");
const ATTACKER: Address = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
/// anvil's first dev key: public, but shaped like a real one.
const KEY_HEX: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// 2025-11-24T16:00:00Z.
const T0: u64 = 1_764_000_000_000;

fn preempt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_preempt")).args(args).output().expect("run preempt")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn config(dir: &Path) -> Config {
    let text = format!(
        r#"
[guardian]
key = "env:PREEMPT_GUARDIAN_KEY"

[incidents]
path = "{0}/incidents.jsonl"
store = "{0}/incidents.sqlite"

[[protect]]
name = "EthVault"
address = "{VAULT}"

[[protect]]
name = "StakePool"
address = "{POOL}"
"#,
        dir.display()
    );
    let path = dir.join("preempt.toml");
    std::fs::write(&path, &text).expect("write config");
    Config::load(&path).expect("valid config")
}

fn finding(contract: Address, name: &str, rule: &'static str, severity: Severity) -> Finding {
    Finding {
        rule,
        severity,
        contract,
        contract_name: name.into(),
        summary: format!("{rule} on {name}: solvent() no longer holds"),
        evidence: Evidence::Invariant {
            invariant: "solvent()".into(),
            before: InvariantValue::Holds { lhs: None, rhs: None },
            after: InvariantValue::Violated { lhs: None, rhs: None, op: None },
        },
    }
}

fn report(pause: B256, block: u64, relay_ok: bool) -> SubmitReport {
    SubmitReport {
        tx_hash: pause,
        target_block: block,
        results: vec![
            SendResult {
                destination: "local".into(),
                kind: DestinationKind::Node,
                ok: true,
                error: None,
                latency_us: 310,
                written_us: None,
                by_worker: false,
            },
            SendResult {
                destination: "flashbots".into(),
                kind: DestinationKind::Relay,
                ok: relay_ok,
                error: (!relay_ok).then(|| "HTTP 503: busy".into()),
                latency_us: 2_000,
                written_us: None,
                by_worker: false,
            },
        ],
        started_at: std::time::Instant::now(),
        first_written_at: None,
    }
}

fn detection(
    at: u64,
    source: DetectionSource,
    attack: B256,
    findings: Vec<Finding>,
    decisions: Vec<(Address, Decision)>,
    submitted: Vec<SubmitReport>,
) -> DetectionRecord {
    DetectionRecord {
        kind: "detection",
        at_unix_ms: at,
        source,
        attack_tx: attack,
        attack_from: ATTACKER,
        attack_to: Some(VAULT),
        attack_fees: Some(AttackFees {
            max_fee_per_gas: 30_000_000_000,
            max_priority_fee_per_gas: 2_000_000_000,
        }),
        seen_from: "local".into(),
        sim_block: 12,
        sim_gas_used: 91_234,
        sim_time_us: 55.0,
        seen_unix_us: None,
        findings,
        holdings: Vec::new(),
        ledgers: Vec::new(),
        decisions,
        times: StageTimes::default(),
        submit_started_us: Some(80.0),
        sent_us: Some(95.0),
        answered_us: Some(2_100.0),
        submitted,
    }
}

fn plan_hash(decisions: &[(Address, Decision)]) -> B256 {
    match &decisions[0].1 {
        Decision::Pause { plan } => plan.tx_hash,
        other => panic!("a pause was decided, not {other:?}"),
    }
}

/// Three incidents on two contracts, written the way the submit stage writes them: a pending
/// attack paused in the same block (its re-send recorded before its detection), a block-guard
/// drain on another contract, and a later drain on the first one (already paused: skipped),
/// with the first contract re-armed in between.
fn write_incidents(dir: &Path) -> (Config, B256, B256) {
    let config = config(dir);
    let signer = PrivateKeySigner::from_str(KEY_HEX).expect("key");
    let responder =
        Mutex::new(Responder::new(config.respond.clone(), Some(Pauser::new(signer, 31337, 0))));
    let log = IncidentLog::from_config(&config).expect("open the log and the store");

    let attack1 = B256::repeat_byte(0xa1);
    let f1 = vec![finding(VAULT, "EthVault", "reentrancy", Severity::Critical)];
    let fees =
        AttackFees { max_fee_per_gas: 30_000_000_000, max_priority_fee_per_gas: 2_000_000_000 };
    let d1 = decide_all(&responder, &config, &f1, Some((attack1, fees)), 1_000_000_000);
    let pause1 = plan_hash(&d1);
    log.record(&ResendRecord {
        kind: "resend",
        at_unix_ms: T0 + 12_000,
        pause_tx: pause1,
        contract: VAULT,
        report: report(pause1, 14, true),
    });
    log.record(&detection(
        T0,
        DetectionSource::Mempool,
        attack1,
        f1,
        d1,
        vec![report(pause1, 13, false)],
    ));
    log.record(&OutcomeRecord {
        kind: "outcome",
        at_unix_ms: T0 + 13_000,
        block: 13,
        contract: VAULT,
        contract_name: "EthVault".into(),
        pause_tx: pause1,
        pause_landed: true,
        pause_succeeded: Some(true),
        pause_index: Some(0),
        attack_tx: Some(attack1),
        attack_index: Some(1),
        attack_succeeded: Some(false),
        same_block: true,
        pause_before_attack: true,
        contract_paused: Some(true),
        holdings: vec![HoldingKept {
            asset: Asset::Eth,
            before: U256::from(10u64).pow(U256::from(19u64)),
            after: U256::from(10u64).pow(U256::from(19u64)),
            kept: true,
        }],
    });

    let attack2 = B256::repeat_byte(0xa2);
    let f2 = vec![finding(POOL, "StakePool", "drain", Severity::High)];
    let d2 = decide_all(&responder, &config, &f2, None, 1_000_000_000);
    let pause2 = plan_hash(&d2);
    log.record(&detection(
        T0 + 60_000,
        DetectionSource::BlockGuard,
        attack2,
        f2,
        d2,
        vec![report(pause2, 20, true)],
    ));
    log.record(&RearmRecord {
        kind: "rearmed",
        at_unix_ms: T0 + 90_000,
        contract: VAULT,
        contract_name: "EthVault".into(),
        unpaused_at_block: 25,
        was: "our pause landed in block 13".into(),
    });

    let f3 = vec![finding(VAULT, "EthVault", "drain", Severity::Critical)];
    responder
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .mark_paused(VAULT, "paused() true at block 30");
    let d3 = decide_all(&responder, &config, &f3, Some((B256::repeat_byte(0xa3), fees)), 1);
    assert!(matches!(d3[0].1, Decision::Skip { .. }), "{d3:?}");
    log.record(&detection(
        T0 + 120_000,
        DetectionSource::Mempool,
        B256::repeat_byte(0xa3),
        f3,
        d3,
        Vec::new(),
    ));
    log.close(Duration::from_secs(5));
    let counters = log.store_counters().expect("a store");
    assert_eq!((counters.written, counters.store_dropped, counters.errors), (6, 0, 0));
    (config, pause1, pause2)
}

fn ids(list: &str) -> Vec<i64> {
    list.lines().skip(1).filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect()
}

#[test]
fn records_in_are_listed_filtered_and_shown_by_the_binary() {
    let dir = tempfile::tempdir().expect("dir");
    let (config, pause1, pause2) = write_incidents(dir.path());
    let store = config.incidents_store.clone().expect("store path");
    let store = store.to_str().expect("utf-8 path");

    let list = stdout(&preempt(&["incidents", "list", "--store", store]));
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("ID  OPENED (UTC)"), "{list}");
    assert_eq!(ids(&list), [3, 2, 1], "newest first:\n{list}");
    let first = lines[3];
    for want in [
        "2025-11-24T16:00:00.000Z",
        "mempool",
        "EthVault",
        "reentrancy",
        "critical",
        "pause",
        "0xa1a1a1a1…a1a1",
        "same block, pause first; attack reverted",
    ] {
        assert!(first.contains(want), "`{want}` in {first}");
    }
    assert!(
        lines[2].contains("block-guard")
            && lines[2].contains("StakePool")
            && lines[2].contains("high")
    );
    assert!(lines[1].contains("skip") && lines[1].contains("drain"), "{}", lines[1]);

    for (args, want) in [
        (vec!["--contract", "EthVault"], vec![3, 1]),
        (vec!["--contract", "ethvault", "--rule", "reentrancy"], vec![1]),
        (vec!["--contract", &POOL.to_string()], vec![2]),
        (vec!["--contract", &format!("{POOL:#x}")], vec![2]),
        (vec!["--rule", "drain"], vec![3, 2]),
        (vec!["--since", "2025-11-24T16:01:00Z"], vec![3, 2]),
        (vec!["--since", "1764000061"], vec![3]),
        (vec!["--since", "2025-11-24T17:00:00+01:00", "--limit", "2"], vec![3, 2]),
        (vec!["--rule", "invariant"], vec![]),
    ] {
        let mut full = vec!["incidents", "list", "--store", store];
        full.extend(args.iter().copied());
        let out = stdout(&preempt(&full));
        assert_eq!(ids(&out), want, "{args:?}:\n{out}");
        if want.is_empty() {
            assert_eq!(out, "no incidents\n");
        }
    }

    // JSON parses and carries the same.
    let json: Value =
        serde_json::from_str(&stdout(&preempt(&["incidents", "list", "--store", store, "--json"])))
            .expect("list --json parses");
    let rows = json.as_array().expect("an array");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["id"], 1);
    assert_eq!(rows[2]["contracts"], serde_json::json!(["EthVault"]));
    assert_eq!(rows[2]["rules"], serde_json::json!(["reentrancy"]));
    assert_eq!(rows[2]["actions"], serde_json::json!(["pause"]));
    assert_eq!(rows[2]["opened_unix_ms"], T0);
    assert_eq!(rows[1]["source"], "block-guard");

    // The whole timeline of incident 1.
    let show = stdout(&preempt(&["incidents", "show", "1", "--store", store]));
    let wants = [
        "incident 1 — opened 2025-11-24T16:00:00.000Z — pending, via local".to_string(),
        format!("attack {:#x} from {ATTACKER:#x} to {VAULT:#x}", B256::repeat_byte(0xa1)),
        "attack fees: max 30 gwei / tip 2 gwei".into(),
        "simulated in 55 µs (block env #12, 91234 gas)".into(),
        "µs after first sight: handed to submit 80, pause bytes written 95, every destination answered 2100".into(),
        format!("finding [critical] reentrancy on EthVault ({VAULT:#x}): reentrancy on EthVault"),
        "\"invariant\": \"solvent()\"".into(),
        format!("decision EthVault: pause {pause1:#x}, nonce 0, max fee "),
        "(outbids the attack)".into(),
        format!("sent {pause1:#x} for block 13 at 2025-11-24T16:00:00.000Z: node local ok in 310 µs; relay flashbots FAILED (HTTP 503: busy) in 2000 µs"),
        format!("re-sent {pause1:#x} for block 14 at 2025-11-24T16:00:12.000Z: node local ok in 310 µs; relay flashbots ok in 2000 µs"),
        "outcome: block 13 holds [pause at index 0, attack at index 1 (reverted)] — same block, pause first; EthVault paused: true".into(),
        "ETH: 10 -> 10 (value kept)".into(),
        "re-armed: EthVault read unpaused at block 25 (2025-11-24T16:01:30.000Z); it had been paused: our pause landed in block 13".into(),
    ];
    for want in &wants {
        assert!(show.contains(want.as_str()), "`{want}` in:\n{show}");
    }
    // In order: detection, finding, decision, sends, outcome, re-arm.
    let at = |s: &str| show.find(s).unwrap_or(usize::MAX);
    assert!(at("finding [") < at("decision ") && at("decision ") < at("sent 0x"));
    assert!(
        at("sent 0x") < at("re-sent")
            && at("re-sent") < at("outcome:")
            && at("outcome:") < at("re-armed")
    );

    let detail: Value = serde_json::from_str(&stdout(&preempt(&[
        "incidents",
        "show",
        "1",
        "--store",
        store,
        "--json",
    ])))
    .expect("show --json parses");
    assert_eq!(detail["id"], 1);
    assert_eq!(detail["findings"][0]["evidence"]["kind"], "invariant");
    assert_eq!(detail["decisions"][0]["pause_tx"], format!("{pause1:#x}"));
    let sends = detail["sends"].as_array().expect("sends");
    assert_eq!(sends.len(), 4, "two destinations, first and re-sent");
    assert_eq!(sends.iter().filter(|s| s["attempt"] == "resend").count(), 2);
    assert_eq!(sends[1]["error"], "HTTP 503: busy");
    assert_eq!(detail["outcomes"][0]["pause_before_attack"], true);
    assert_eq!(detail["outcomes"][0]["attack_succeeded"], false);
    assert_eq!(detail["rearms"].as_array().map(Vec::len), Some(1));

    // Incident 2 (block guard) and 3 (skipped; the re-arm belongs to incident 1).
    let two = stdout(&preempt(&["incidents", "show", "2", "--store", store]));
    assert!(two.contains("in a mined block (block guard)"), "{two}");
    assert!(two.contains(&format!("decision StakePool: pause {pause2:#x}, nonce 1")), "{two}");
    assert!(!two.contains("outbids"), "a block-guard pause races no pending attack: {two}");
    let three = stdout(&preempt(&["incidents", "show", "3", "--store", store, "--json"]));
    let three: Value = serde_json::from_str(&three).expect("json");
    assert_eq!(three["decisions"][0]["action"], "skip");
    assert!(three["decisions"][0]["reason"].as_str().expect("reason").contains("already paused"));
    assert_eq!(three["rearms"], serde_json::json!([]));

    // The store is found through the config too, and the JSON-lines export still prints.
    let via_config = config.file.to_str().expect("utf-8");
    assert_eq!(ids(&stdout(&preempt(&["incidents", "list", "--config", via_config]))), [3, 2, 1]);
    let jsonl = config.incidents_path.clone().expect("jsonl");
    let timeline = stdout(&preempt(&["incidents", jsonl.to_str().expect("utf-8")]));
    assert!(timeline.contains("finding [critical] reentrancy on EthVault"), "{timeline}");
    assert!(timeline.contains("block 13 holds [pause at index 0"), "{timeline}");

    // No key anywhere: the store and the export hold addresses and hashes only.
    for file in [Path::new(store), jsonl.as_path()] {
        let bytes = std::fs::read(file).expect("read");
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        assert!(!text.contains(KEY_HEX), "{} holds the key", file.display());
    }
}

#[test]
fn bad_arguments_and_missing_incidents_exit_2_with_one_line() {
    let dir = tempfile::tempdir().expect("dir");
    let (config, _, _) = write_incidents(dir.path());
    let store = config.incidents_store.clone().expect("store");
    let store = store.to_str().expect("utf-8");
    for (args, want) in [
        (vec!["incidents", "show", "99", "--store", store], format!("error: no incident 99 in {store}")),
        (
            vec!["incidents", "list", "--store", store, "--since", "yesterday"],
            "error: --since: `yesterday` is neither Unix seconds nor RFC 3339 (2026-11-23T12:03:22Z)".into(),
        ),
        (
            vec!["incidents", "list"],
            "error: give --store FILE, or --config FILE with an [incidents] store".into(),
        ),
    ] {
        let out = preempt(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim(), want, "{args:?}");
    }
    let missing = dir.path().join("nope.sqlite");
    let out = preempt(&["incidents", "list", "--store", missing.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with(&format!("error: incident store {}: ", missing.display())), "{err}");
    assert!(!missing.exists(), "reading never creates a store");
}

#[test]
fn a_full_store_channel_drops_and_counts_without_waiting() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("incidents.sqlite");
    let store = IncidentStore::open_with_capacity(&path, 4).expect("open");
    let line = |n: u64| {
        serde_json::json!({
            "kind": "rearmed", "at_unix_ms": n, "contract": VAULT, "contract_name": "EthVault",
            "unpaused_at_block": n, "was": "test"
        })
        .to_string()
    };
    // Another writer holds the database, so the store's writer stalls as on a stuck disk.
    let blocker = rusqlite::Connection::open(&path).expect("second connection");
    blocker.execute_batch("BEGIN EXCLUSIVE;").expect("lock");
    store.submit(line(0));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.queued() > 0 {
        assert!(std::time::Instant::now() < deadline, "the writer never took the first record");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The writer holds record 0 and waits for the lock; the channel takes 4, the rest are
    // dropped at once and counted.
    for n in 1..=10 {
        store.submit(line(n));
    }
    assert_eq!(store.counters().store_dropped, 6);
    assert_eq!(store.queued(), 4);
    blocker.execute_batch("COMMIT;").expect("unlock");
    assert!(store.flush(Duration::from_secs(10)));
    let c = store.counters();
    assert_eq!((c.written, c.store_dropped, c.errors), (5, 6, 0));
    let rows: i64 =
        blocker.query_row("SELECT count(*) FROM rearms", [], |r| r.get(0)).expect("count");
    assert_eq!(rows, 5);
}
