//! The `preempt` binary: exit codes and one-line errors for bad input; never a panic.

use std::process::{Command, Output};

use preempt::devnet::Scenario;

use crate::support::Devnet;

fn preempt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_preempt")).args(args).output().expect("run preempt")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("preempt.toml");
    std::fs::write(&path, text).expect("write");
    path.to_string_lossy().into_owned()
}

const MINIMAL: &str = "[[node]]\nurl = \"http://127.0.0.1:1\"\n\n[[protect]]\nname = \"V\"\naddress = \"0x00000000000000000000000000000000000000aa\"\n";

#[test]
fn broken_config_exits_2_with_one_line_naming_file_and_key() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write_config(&dir, &MINIMAL.replace("address", "adress"));
    let out = preempt(&["check", "--config", &path, "--pending"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("preempt.toml") && err.contains("adress"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn missing_config_file_exits_2() {
    let out = preempt(&["check", "--config", "/nonexistent/preempt.toml", "--pending"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}

#[test]
fn node_down_exits_2_with_one_line() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write_config(&dir, MINIMAL);
    let out = preempt(&["check", "--config", &path, "--pending"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("cannot connect to node http://127.0.0.1:1"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn undecodable_raw_tx_exits_2_before_touching_the_node() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write_config(&dir, MINIMAL);
    for raw in ["0x02f8", "0xdeadbeef", "0x"] {
        let out = preempt(&["check", "--config", &path, "--raw", raw]);
        assert_eq!(out.status.code(), Some(2), "{raw}");
        let err = stderr(&out);
        assert!(err.contains("not a valid signed transaction"), "{raw}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_attack_exits_1_with_json_evidence_and_a_clean_pool_exits_0() {
    let devnet = Devnet::start().await;
    let config = devnet.config_path.to_string_lossy().into_owned();
    let url = devnet.anvil.http_url();

    let clean = preempt(&["check", "--config", &config, "--rpc", &url, "--pending"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    assert!(String::from_utf8_lossy(&clean.stdout).contains("no transaction to check"));

    devnet.send(Scenario::TreasuryTakeoverAttack).await;
    let out = preempt(&["check", "--config", &config, "--rpc", &url, "--pending", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let verdict = &report["verdicts"][0];
    assert_eq!(verdict["verdict"], "exploit");
    let finding = &verdict["findings"][0];
    assert_eq!(finding["rule"], "drain");
    assert_eq!(finding["contract_name"], "Treasury");
    assert!(finding["evidence"]["unmatched_loss"].is_string(), "{finding}");

    let human = preempt(&["check", "--config", &config, "--rpc", &url, "--pending"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("verdict: EXPLOIT") && text.contains("drain on Treasury"), "{text}");
}
