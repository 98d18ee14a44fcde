//! `check --replay ID` end to end: an attack goes through `preempt run` with the SQLite store,
//! is paused, and after both the guard and anvil are stopped the recorded pre-state re-derives
//! the same verdict (same rules, same contracts) with no node; an unknown ID is a clear error.

use std::{
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use preempt::devnet::{Scenario, dev_accounts};
use serde_json::Value;

use crate::support::{
    Devnet,
    guard::{RunningGuard, wait_pending_from},
};

fn preempt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_preempt")).args(args).output().expect("run preempt")
}

/// (rule, contract address) of each finding in a JSON array, sorted.
fn rules_and_contracts(findings: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = findings
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let contract = f["contract"].as_str().expect("contract").to_lowercase();
            (f["rule"].as_str().expect("rule").to_string(), contract)
        })
        .collect();
    out.sort();
    out
}

/// Runs `scenario` through a guard writing `store`, mines it, and stops guard and anvil.
/// Returns the config path `check` reads.
async fn attack_recorded(scenario: Scenario, dir: &Path) -> std::path::PathBuf {
    let store = dir.join("incidents.sqlite");
    let devnet = Devnet::start().await;
    let guard = RunningGuard::start(
        &devnet,
        &devnet.anvil.ws_url(),
        &format!("store = \"{}\"", store.display()),
    );
    devnet.send(scenario).await;
    let guardian = dev_accounts()[1].address;
    let pauses = wait_pending_from(&devnet, guardian, 1, Duration::from_secs(20)).await;
    assert!(!pauses.is_empty(), "{}: no pause:\n{}", scenario.name(), guard.log().join("\n"));
    devnet.mine().await;
    guard.wait_log(|l| l.contains("pause landed"), Duration::from_secs(10), "pause landed");
    let (code, _, lines) = guard.stop_with_counters();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("pre-state not recorded") || l.contains("differ from the live")),
        "{}",
        lines.join("\n")
    );
    // The replay reads this config's rules and store; the node it names is gone.
    let config = dir.join("preempt.toml");
    let text = preempt::devnet::config_toml(
        &devnet.deployment,
        &devnet.anvil.ws_url(),
        "PREEMPT_GUARDIAN_KEY",
    );
    std::fs::write(&config, format!("{text}\n[incidents]\nstore = \"{}\"\n", store.display()))
        .expect("write config");
    drop(devnet);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_paused_attack_agrees_with_the_live_verdict_with_the_node_stopped() {
    for &scenario in Scenario::all().iter().filter(|s| s.is_attack()) {
        let dir = tempfile::tempdir().expect("dir");
        let config = attack_recorded(scenario, dir.path()).await;
        let config = config.to_str().expect("utf-8");
        let store = dir.path().join("incidents.sqlite");

        let show = preempt(&["incidents", "show", "1", "--config", config, "--json"]);
        assert!(show.status.success(), "{}", String::from_utf8_lossy(&show.stderr));
        let live: Value = serde_json::from_slice(&show.stdout).expect("show --json");
        assert_eq!(live["prestate_recorded"], true, "{}: {live}", scenario.name());
        let live_findings = rules_and_contracts(&live["findings"]);
        assert!(!live_findings.is_empty());

        // Human report: exit 1 (findings), the same rules, and the agreement line.
        let out = preempt(&["check", "--config", config, "--replay", "1"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {text}\n{}",
            scenario.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("verdict: EXPLOIT"), "{text}");
        assert!(text.contains("; replay agrees"), "{}: {text}", scenario.name());
        assert!(text.contains("no node"), "{text}");
        for (contract, rule) in scenario.expected_findings() {
            assert!(
                text.contains(&format!("{rule} on {contract}")),
                "{}: `{rule} on {contract}` in {text}",
                scenario.name()
            );
        }

        // JSON, with the store named directly: the same (rule, contract) pairs as the live run.
        let out = preempt(&[
            "check",
            "--config",
            config,
            "--replay",
            "1",
            "--store",
            store.to_str().expect("utf-8"),
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(1));
        let report: Value = serde_json::from_slice(&out.stdout).expect("check --json");
        assert_eq!(report["replay_agrees"], true);
        assert_eq!(report["verdicts"][0]["tx"], live["attack_tx"]);
        assert_eq!(
            rules_and_contracts(&report["verdicts"][0]["findings"]),
            live_findings,
            "{}",
            scenario.name()
        );
        assert_eq!(report["sim_block"]["number"], live["sim_block"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_an_unknown_incident_or_without_a_store_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let config = attack_recorded(Scenario::VaultReentrancyAttack, dir.path()).await;
    let config = config.to_str().expect("utf-8");
    let store = dir.path().join("incidents.sqlite");
    let out = preempt(&["check", "--config", config, "--replay", "99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("error: cannot replay incident 99 of {}: no such incident", store.display())
    );

    // A config with no store, and a store that does not exist.
    let bare = dir.path().join("bare.toml");
    let text = std::fs::read_to_string(config).expect("read");
    let without = text.split("\n[incidents]").next().expect("head").to_string();
    std::fs::write(&bare, without).expect("write");
    let out = preempt(&["check", "--config", bare.to_str().expect("utf-8"), "--replay", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("error: {}: key `incidents.store`: not set; give --store FILE", bare.display())
    );
    let missing = dir.path().join("missing.sqlite");
    let out = preempt(&[
        "check",
        "--config",
        config,
        "--replay",
        "1",
        "--store",
        missing.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "error: cannot replay incident 1 of {}: incident store",
            missing.display()
        )),
        "{err}"
    );
    assert!(!missing.exists());
}

/// An attack mined without the mempool (private order flow): the block guard's detection records
/// the state the tx read inside its block (after the block's earlier txs), and the replay agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_block_guard_detection_agrees_with_the_node_stopped() {
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("incidents.sqlite");
    let devnet = Devnet::start().await;
    // Heads and state only: the attack is never seen pending.
    let guard = RunningGuard::start_with(
        &devnet,
        &devnet.anvil.ws_url(),
        &format!("store = \"{}\"", store.display()),
        false,
    );
    // A benign tx first in the same block: the attack runs on the state it leaves.
    devnet.send(Scenario::VaultDeposit).await;
    let attack = devnet.send(Scenario::VaultReentrancyAttack).await;
    devnet.mine().await;
    let guardian = dev_accounts()[1].address;
    let pauses = wait_pending_from(&devnet, guardian, 1, Duration::from_secs(20)).await;
    assert_eq!(pauses.len(), 1, "{}", guard.log().join("\n"));
    let (code, _, lines) = guard.stop_with_counters();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    let config = dir.path().join("preempt.toml");
    let text = preempt::devnet::config_toml(
        &devnet.deployment,
        &devnet.anvil.ws_url(),
        "PREEMPT_GUARDIAN_KEY",
    );
    std::fs::write(&config, format!("{text}\n[incidents]\nstore = \"{}\"\n", store.display()))
        .expect("write config");
    drop(devnet);
    let config = config.to_str().expect("utf-8");

    let show = preempt(&["incidents", "show", "1", "--config", config, "--json"]);
    let live: Value = serde_json::from_slice(&show.stdout).expect("show --json");
    assert_eq!(live["source"], "block-guard");
    assert_eq!(live["attack_tx"], format!("{attack:#x}"));
    assert_eq!(live["prestate_recorded"], true, "{live}");
    let out = preempt(&["check", "--config", config, "--replay", "1", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["replay_agrees"], true, "{report}");
    assert_eq!(
        rules_and_contracts(&report["verdicts"][0]["findings"]),
        rules_and_contracts(&live["findings"])
    );
    // The mined block's own env, and the gas the receipt showed (same state, same run).
    assert_eq!(report["sim_block"]["number"], live["sim_block"]);
    assert_eq!(report["verdicts"][0]["outcome"]["gas_used"], live["sim_gas_used"]);
}
