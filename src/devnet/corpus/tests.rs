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
