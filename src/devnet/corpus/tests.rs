use std::{collections::BTreeSet, path::Path, time::Instant};

use alloy::primitives::Address;

use super::{
    Book, Kind,
    artifacts::CorpusArtifact,
    config::{PROTECT, plain_config},
    driver::Mode,
    report::{base_state, scenario_node, select},
    scenarios::{self, protected},
};
use crate::config::Config;

#[test]
fn the_corpus_has_30_honest_scenarios_over_6_shapes_and_15_attacks_each_with_a_twin() {
    let all = scenarios::all();
    let names: BTreeSet<&str> = all.iter().map(|s| s.name).collect();
    assert_eq!(names.len(), all.len(), "scenario names are unique");
    let honest: Vec<_> = all.iter().filter(|s| s.kind == Kind::Honest).collect();
    let attacks: Vec<_> = all.iter().filter(|s| s.kind == Kind::Attack).collect();
    let honest_shapes: BTreeSet<&str> = honest.iter().map(|s| s.shape.name()).collect();
    assert!(honest.len() >= 30, "{} honest", honest.len());
    assert!(honest_shapes.len() >= 6, "{honest_shapes:?}");
    assert!(attacks.len() >= 15, "{} attacks", attacks.len());
    for a in &attacks {
        let twins: Vec<_> = honest.iter().filter(|h| h.twin_of == Some(a.name)).collect();
        assert_eq!(twins.len(), 1, "{}: one benign twin", a.name);
        assert_eq!(
            twins[0].shape, a.shape,
            "{}: its twin {} has the same shape",
            a.name, twins[0].name
        );
    }
    for h in &honest {
        if let Some(of) = h.twin_of {
            assert!(
                attacks.iter().any(|a| a.name == of),
                "{}: twin of unknown attack {of}",
                h.name
            );
        }
    }
}

#[test]
fn only_selects_named_scenarios_in_corpus_order_and_rejects_unknown_names() {
    let picked = select(&["rewards-split-drain".into(), "eth-bank-withdraw-1pct".into()])
        .map(|s| s.iter().map(|d| d.name).collect::<Vec<_>>());
    assert_eq!(picked.ok(), Some(vec!["eth-bank-withdraw-1pct", "rewards-split-drain"]));
    let err = select(&["no-such".into()]).map(|_| ()).map_err(|e| e.to_string());
    assert!(err.as_ref().is_err_and(|e| e.contains("unknown scenario `no-such`")), "{err:?}");
    assert_eq!(select(&[]).map(|s| s.len()).ok(), Some(scenarios::all().len()));
}

#[test]
fn every_corpus_artifact_has_creation_code() {
    for a in CorpusArtifact::ALL {
        let code = a.creation_code().map_err(|e| e.to_string());
        assert!(code.is_ok_and(|c| c.len() > 100), "{}", a.file_name());
    }
}

#[test]
fn the_plain_config_of_every_shape_loads_and_holds_no_claims_or_invariants() {
    let mut book = Book::default();
    let mut n = 1u8;
    for spec in PROTECT {
        for name in std::iter::once(&spec.name).chain(spec.tokens).chain(spec.pause_via.iter()) {
            book.contracts.entry(name.to_string()).or_insert_with(|| {
                n += 1;
                Address::with_last_byte(n)
            });
        }
    }
    for s in scenarios::all() {
        let text =
            plain_config(&book, protected(s.shape), "ws://127.0.0.1:8545", Path::new("i.jsonl"))
                .map_err(|e| e.to_string());
        let text = text.unwrap_or_else(|e| panic!("{}: {e}", s.name));
        let config = Config::parse(&text, Path::new("corpus.toml")).map_err(|e| e.to_string());
        let config = config.unwrap_or_else(|e| panic!("{}: {e}\n{text}", s.name));
        assert_eq!(config.protected.len(), protected(s.shape).len());
        for p in &config.protected {
            assert!(p.claims.is_empty() && p.invariants.is_empty(), "{}: plain", p.name);
        }
    }
    // The pair and the timelock are contained by pause() on their breaker and gate.
    let text =
        plain_config(&book, &["Pair", "Timelock"], "ws://x", Path::new("i")).expect("config");
    let config = Config::parse(&text, Path::new("c.toml")).expect("parses");
    assert_eq!(config.protected[0].pause.target, book.contracts["PairBreaker"]);
    assert_eq!(config.protected[1].pause.target, book.contracts["ExecutorGate"]);
    assert_eq!(config.protected[1].pause.calldata.as_ref(), &[0x84, 0x56, 0xcb, 0x59]);
}

/// Where scripts/setup.sh installed anvil.
fn anvil_bin() -> std::path::PathBuf {
    std::env::var_os("PREEMPT_TOOLS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"))
        .join("bin/anvil")
}

/// The corpus pinned without preempt: every scenario, on its own anvil loaded from the base
/// state, succeeds; each attack moves the funds it claims (the victim's loss, the attacker's
/// gain, the role or implementation it takes); each honest scenario moves what it says, and the
/// hook twins' hooks really ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_does_what_it_claims_on_anvil_without_preempt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = super::CorpusOptions {
        out: dir.path().to_path_buf(),
        only: Vec::new(),
        anvil: anvil_bin(),
        preempt: std::path::PathBuf::from("unused-in-a-bare-run"),
        bare: true,
    };
    let started = Instant::now();
    let report = super::run_corpus(&opts)
        .await
        .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh for anvil)"));
    let failed: Vec<String> = report
        .scenarios
        .iter()
        .filter(|s| s.outcome != "as-claimed")
        .map(|s| format!("{} ({}): {}", s.name, s.outcome, s.notes))
        .collect();
    assert!(failed.is_empty(), "scenarios not as claimed:\n{}", failed.join("\n"));
    assert_eq!(report.scenarios.len(), scenarios::all().len());
    assert!(
        report.honest >= 30 && report.attacks >= 15,
        "{} honest, {} attacks",
        report.honest,
        report.attacks
    );
    // Nothing watched, so nothing was judged as paused.
    assert_eq!((report.false_pauses, report.prevented, report.errors), (0, 0, 0));
    assert!(dir.path().join("corpus.json").exists());
    eprintln!("bare corpus: {:.1} s", started.elapsed().as_secs_f64());
}

/// A scenario run twice from the base state sees the same state: each starts on a fresh node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scenario_node_starts_from_the_same_base_state() {
    let base =
        base_state(&anvil_bin()).await.unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"));
    let bank = base.book.get("EtherBank").expect("bank");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (_node, mut d) = scenario_node(&anvil_bin(), &base, Mode::Bare).await.expect("node");
        seen.push(d.balance(super::driver::Asset::Eth, bank).await.expect("balance"));
        // Drain part of it: the next node must not see this.
        d.block(vec![super::driver::Tx::call(
            super::Actor::Whale,
            bank,
            super::abi::IEtherBank::withdrawCall { amount: super::eth(50) },
        )])
        .await
        .expect("withdraw");
        assert_eq!(d.sent[0].success, Some(true));
    }
    assert_eq!(seen, vec![super::eth(100), super::eth(100)]);
}

mod judging {
    use alloy::primitives::{Address, B256, U256};
    use serde_json::json;

    use super::super::{
        Actor, Book, Kind,
        driver::{GuardOutcome, MinedBlock, MinedTx, Observed, SentTx, SplitDrain, TxRole},
        report::judge,
    };

    fn hash(n: u8) -> B256 {
        B256::with_last_byte(n)
    }

    fn sent(n: u8, role: TxRole, block: u64, index: usize, success: bool) -> SentTx {
        SentTx {
            label: format!("tx {n}"),
            hash: hash(n),
            role,
            block: Some(block),
            index: Some(index),
            success: Some(success),
            processed: None,
        }
    }

    fn mined(number: u64, txs: &[(u8, Address, bool)]) -> MinedBlock {
        MinedBlock {
            number,
            txs: txs
                .iter()
                .map(|&(n, from, success)| MinedTx { hash: hash(n), from, to: None, success })
                .collect(),
        }
    }

    fn judged(kind: Kind, sent: &[SentTx], blocks: &[MinedBlock], guard: &GuardOutcome) -> String {
        let book = Book::default();
        judge(kind, &Observed { sent, blocks, split: None, book: &book }, guard).outcome
    }

    const PAUSE: u8 = 100;

    #[test]
    fn an_attack_is_prevented_only_by_a_pause_mined_ahead_of_it_that_it_then_fails_against() {
        let (guardian, attacker) = (Actor::Guardian.address(), Actor::Attacker.address());
        let none = GuardOutcome::default();
        let attack = |index, success| vec![sent(1, TxRole::Attack, 10, index, success)];
        // Pause first, attack reverted: prevented.
        let ahead = [mined(10, &[(PAUSE, guardian, true), (1, attacker, false)])];
        assert_eq!(judged(Kind::Attack, &attack(1, false), &ahead, &none), "prevented");
        // Pause first, but the attack still went through: the containment missed its target.
        let through = [mined(10, &[(PAUSE, guardian, true), (1, attacker, true)])];
        assert_eq!(
            judged(Kind::Attack, &attack(1, true), &through, &none),
            "paused-attack-succeeded"
        );
        // Pause behind the attack.
        let behind = [mined(10, &[(1, attacker, true), (PAUSE, guardian, true)])];
        assert_eq!(judged(Kind::Attack, &attack(0, true), &behind, &none), "paused-late");
        // Only in the next block (the block guard).
        let next = [mined(10, &[(1, attacker, true)]), mined(11, &[(PAUSE, guardian, true)])];
        assert_eq!(judged(Kind::Attack, &attack(0, true), &next, &none), "paused-late");
        // No guardian tx anywhere.
        let alone = [mined(10, &[(1, attacker, true)])];
        assert_eq!(judged(Kind::Attack, &attack(0, true), &alone, &none), "missed");
        // A pause only left in the pool is late, not missed.
        let pooled = GuardOutcome { pool_pauses: vec![hash(PAUSE)], ..GuardOutcome::default() };
        assert_eq!(judged(Kind::Attack, &attack(0, true), &alone, &pooled), "paused-late");
        // Deploy-then-attack: a pause in an earlier block than the attack counts.
        let earlier = [mined(10, &[(PAUSE, guardian, true)]), mined(12, &[(1, attacker, false)])];
        let late_attack = vec![sent(1, TxRole::Attack, 12, 0, false)];
        assert_eq!(judged(Kind::Attack, &late_attack, &earlier, &none), "prevented");
    }

    #[test]
    fn honest_traffic_is_a_false_pause_on_any_guardian_tx_or_pause_decision_and_not_on_an_alert() {
        let (guardian, user) = (Actor::Guardian.address(), Actor::User.address());
        let tx = vec![sent(1, TxRole::Honest, 10, 0, true)];
        let quiet = [mined(10, &[(1, user, true)])];
        let alert = json!({
            "kind": "detection",
            "attack_tx": format!("{}", hash(1)),
            "findings": [{"rule": "reentrancy"}, {"rule": "drain"}, {"rule": "reentrancy"}],
            "decisions": [["0x0000000000000000000000000000000000000001", {"action": "alert"}]],
        });
        let guard = GuardOutcome { incidents: vec![alert.clone()], ..GuardOutcome::default() };
        let book = Book::default();
        let seen = Observed { sent: &tx, blocks: &quiet, split: None, book: &book };
        let verdict = judge(Kind::Honest, &seen, &guard);
        assert_eq!(verdict.outcome, "clean", "an alert is not a pause");
        assert_eq!(verdict.rules, vec!["drain", "reentrancy"], "rules fired: unique, sorted");

        let mut paused = alert;
        paused["decisions"][0][1]["action"] = json!("pause");
        let guard = GuardOutcome { incidents: vec![paused], ..GuardOutcome::default() };
        assert_eq!(judge(Kind::Honest, &seen, &guard).outcome, "false-pause");
        let pooled = GuardOutcome { pool_pauses: vec![hash(PAUSE)], ..GuardOutcome::default() };
        assert_eq!(judged(Kind::Honest, &tx, &quiet, &pooled), "false-pause");
        let in_block = [mined(10, &[(PAUSE, guardian, true), (1, user, true)])];
        assert_eq!(judged(Kind::Honest, &tx, &in_block, &GuardOutcome::default()), "false-pause");
    }

    #[test]
    fn a_split_drain_is_prevented_when_paused_before_the_take_passes_twice_the_threshold() {
        let guardian = Actor::Guardian.address();
        let book = Book::default();
        let split = |taken: u64| SplitDrain {
            beneficiary: Actor::Attacker.address(),
            token: Address::ZERO,
            threshold_bps: 1_000,
            holdings_start: U256::from(1_000u64),
            beneficiary_start: U256::ZERO,
            taken: Some(U256::from(taken)),
        };
        let paused = [mined(13, &[(PAUSE, guardian, true)])];
        let outcome = |taken, blocks: &[MinedBlock]| {
            let split = split(taken);
            let seen = Observed { sent: &[], blocks, split: Some(&split), book: &book };
            judge(Kind::Attack, &seen, &GuardOutcome::default()).outcome
        };
        assert_eq!(outcome(200, &paused), "prevented", "exactly twice the threshold");
        assert_eq!(outcome(201, &paused), "paused-late");
        assert_eq!(outcome(100, &[]), "missed");
    }
}
