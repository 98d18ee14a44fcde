//! `preempt devnet corpus` through real `preempt run` processes: the runner judges an attack
//! paused ahead of it in its block as prevented and silent honest traffic as clean, and writes
//! what it judged, with each scenario's config, log and incidents, under --out.

use std::process::Command;

use crate::support::tools_dir;

#[test]
fn the_corpus_runner_judges_a_paused_attack_prevented_and_quiet_honest_traffic_clean() {
    let out = tempfile::tempdir().expect("temp dir");
    let status = Command::new(env!("CARGO_BIN_EXE_preempt"))
        .args(["devnet", "corpus", "--strict", "--out"])
        .arg(out.path())
        .args(["--only", "eth-bank-withdraw-1pct", "--only", "eth-bank-withdrawall-reentrancy"])
        .env("PREEMPT_TOOLS", tools_dir())
        .output()
        .expect("run preempt devnet corpus");
    let stdout = String::from_utf8_lossy(&status.stdout);
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(0), "--strict passes:\n{stdout}\n{stderr}");
    assert!(stdout.contains("honest 1  false pauses 0  attacks 1  prevented 1"), "{stdout}");

    let text = std::fs::read_to_string(out.path().join("corpus.json")).expect("corpus.json");
    let report: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!((report["honest"].as_u64(), report["false_pauses"].as_u64()), (Some(1), Some(0)));
    assert_eq!((report["attacks"].as_u64(), report["prevented"].as_u64()), (Some(1), Some(1)));
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    let attack = scenarios
        .iter()
        .find(|s| s["name"] == "eth-bank-withdrawall-reentrancy")
        .expect("the attack");
    assert_eq!(attack["kind"], "attack");
    assert_eq!(attack["shape"], "eth-vault");
    assert_eq!(attack["outcome"], "prevented");
    let rules: Vec<&str> = attack["rules_fired"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(!rules.is_empty(), "{attack}");
    let notes = attack["notes"].as_str().expect("notes");
    assert!(notes.contains("guardian tx (EtherBank)") && notes.contains("reverted"), "{notes}");
    let honest = scenarios.iter().find(|s| s["name"] == "eth-bank-withdraw-1pct").expect("honest");
    assert_eq!(
        (honest["kind"].as_str(), honest["outcome"].as_str()),
        (Some("honest"), Some("clean"))
    );

    // The plain config preempt ran with, and its incident record of the pause.
    let dir = out.path().join("scenarios/eth-bank-withdrawall-reentrancy");
    let config = std::fs::read_to_string(dir.join("preempt.toml")).expect("config");
    assert!(config.contains("name = \"EtherBank\""), "{config}");
    assert!(
        !config.lines().any(|l| l.starts_with("claims") || l.starts_with("invariants")),
        "a plain config: {config}"
    );
    let incidents = std::fs::read_to_string(dir.join("incidents.jsonl")).expect("incidents");
    assert!(incidents.lines().any(|l| l.contains("\"detection\"")), "{incidents}");
}

#[test]
fn an_unknown_scenario_name_is_a_runner_error_naming_the_known_ones() {
    let out = tempfile::tempdir().expect("temp dir");
    let run = Command::new(env!("CARGO_BIN_EXE_preempt"))
        .args(["devnet", "corpus", "--out"])
        .arg(out.path())
        .args(["--only", "no-such-scenario"])
        .env("PREEMPT_TOOLS", tools_dir())
        .output()
        .expect("run preempt devnet corpus");
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("unknown scenario `no-such-scenario`")
            && stderr.contains("rewards-split-drain"),
        "{stderr}"
    );
}
