//! Probing new contracts through real `preempt run` processes on anvil (the corpus runner drives
//! them): a drainer deployed two blocks before its attack is paused in its deployment's block,
//! on the probe's evidence, before the attack tx exists; a lens that only reads the bank's views
//! is probed too and gets no guardian tx. A drainer deployed through private order flow (never
//! pending) is probed from its block by the block guard and paused before its attack too.

use std::{process::Command, time::Duration};

use alloy::primitives::{Address, B256};
use preempt::devnet::dev_accounts;

use crate::support::{
    Devnet, drainer_init_code,
    guard::{RunningGuard, wait_pending_from},
    tools_dir,
};

/// The number after `prefix` in `notes` ("... in block 12 at index 0").
fn block_after(notes: &str, prefix: &str) -> u64 {
    let rest = &notes[notes.find(prefix).unwrap_or_else(|| panic!("`{prefix}` in {notes}"))..];
    let rest = &rest[rest.find("in block ").expect("block") + "in block ".len()..];
    rest.split_whitespace().next().and_then(|n| n.parse().ok()).expect("block number")
}

#[test]
fn a_drainer_is_paused_in_its_deployment_block_before_the_attack_and_a_lens_is_left_alone() {
    let out = tempfile::tempdir().expect("temp dir");
    let run = Command::new(env!("CARGO_BIN_EXE_preempt"))
        .args(["devnet", "corpus", "--strict", "--out"])
        .arg(out.path())
        .args(["--only", "eth-bank-lens-deploy", "--only", "eth-bank-deploy-then-attack"])
        .env("PREEMPT_TOOLS", tools_dir())
        .output()
        .expect("run preempt devnet corpus");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "--strict passes:\n{stdout}\n{stderr}");
    assert!(stdout.contains("honest 1  false pauses 0  attacks 1  prevented 1"), "{stdout}");

    let text = std::fs::read_to_string(out.path().join("corpus.json")).expect("corpus.json");
    let report: serde_json::Value = serde_json::from_str(&text).expect("json");
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    let attack =
        scenarios.iter().find(|s| s["name"] == "eth-bank-deploy-then-attack").expect("attack");
    assert_eq!(attack["outcome"], "prevented", "{attack}");
    assert_eq!(attack["rules_fired"], serde_json::json!(["probe"]), "{attack}");
    let notes = attack["notes"].as_str().expect("notes");
    // Decided on the deploy tx, mined before the attack was even sent (two blocks later).
    assert!(
        notes.contains("pause decided on `attacker: deploy a fresh BankDrainAttack`"),
        "{notes}"
    );
    let (paused_in, attacked_in) = (
        block_after(notes, "guardian tx (EtherBank)"),
        block_after(notes, "attack `attacker: attack`"),
    );
    assert!(paused_in + 2 <= attacked_in, "pause in block {paused_in}, attack in {attacked_in}");
    assert!(notes.contains("reverted"), "{notes}");

    // The incident record carries the probe as evidence: which entry point, with how much ETH,
    // and the probed call's own findings.
    let dir = out.path().join("scenarios/eth-bank-deploy-then-attack");
    let incidents = std::fs::read_to_string(dir.join("incidents.jsonl")).expect("incidents");
    let detection: serde_json::Value = incidents
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|r| r["kind"] == "detection")
        .expect("a detection record");
    assert_eq!(detection["source"], "mempool");
    assert!(detection["attack_to"].is_null(), "decided on a creation: {detection}");
    let finding = &detection["findings"][0];
    assert_eq!(
        (finding["rule"].as_str(), finding["severity"].as_str()),
        (Some("probe"), Some("critical"))
    );
    let evidence = &finding["evidence"];
    assert_eq!(evidence["kind"], "probe");
    assert_eq!(evidence["entry"], "attack()");
    assert_eq!(evidence["reach"]["by"], "code", "the bank's address is an immutable: {evidence}");
    let inner: Vec<&str> = evidence["findings"]
        .as_array()
        .expect("the probed call's findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert!(inner.contains(&"drain"), "{inner:?}");

    // The lens was probed (its constructor called the bank) and found harmless.
    let lens = scenarios.iter().find(|s| s["name"] == "eth-bank-lens-deploy").expect("lens");
    assert_eq!(lens["outcome"], "clean", "{lens}");
    let log =
        std::fs::read_to_string(out.path().join("scenarios/eth-bank-lens-deploy/preempt.log"))
            .expect("lens log");
    let probed: Vec<&str> = log.lines().filter(|l| l.contains("probed new contract")).collect();
    assert!(!probed.is_empty(), "the lens was probed:\n{log}");
    assert!(probed.iter().all(|l| l.contains("\"findings\":0")), "{probed:?}");
    assert!(probed[0].contains("Deployment("), "reached by its deployment: {}", probed[0]);
}

async fn receipt(devnet: &Devnet, hash: B256) -> serde_json::Value {
    devnet.rpc("eth_getTransactionReceipt", serde_json::json!([hash])).await
}

fn block_of(receipt: &serde_json::Value) -> u64 {
    let n = receipt["blockNumber"].as_str().expect("mined");
    u64::from_str_radix(n.trim_start_matches("0x"), 16).expect("hex block number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drainer_deployed_without_the_mempool_is_probed_from_its_block_and_paused_before_its_attack()
 {
    let devnet = Devnet::start().await;
    // This node feeds heads and state only: the deployment is never seen pending.
    let guard = RunningGuard::start_with(&devnet, &devnet.anvil.ws_url(), "", false);
    let vault = devnet.deployment.address("EthVault").expect("vault");
    let (attacker, guardian) = (dev_accounts()[3].address, dev_accounts()[1].address);
    let data = drainer_init_code(vault);
    let deploy: B256 = devnet
        .rpc(
            "eth_sendTransaction",
            serde_json::json!([{"from": attacker, "data": data, "gas": "0x2dc6c0"}]),
        )
        .await;
    devnet.mine().await;
    let deployed = receipt(&devnet, deploy).await;
    assert_eq!(deployed["status"], "0x1", "{deployed}");
    let drainer: Address =
        deployed["contractAddress"].as_str().expect("created").parse().expect("address");

    // The block guard probes the new contract on the block's state and pauses for the next one.
    let pauses = wait_pending_from(&devnet, guardian, 1, Duration::from_secs(20)).await;
    assert_eq!(pauses.len(), 1, "one pause from the probe:\n{}", guard.log().join("\n"));
    devnet.mine().await;

    // The attack, sent two blocks after the deployment, meets a paused vault.
    let attack: B256 = devnet
        .rpc(
            "eth_sendTransaction",
            serde_json::json!([{
                "from": attacker, "to": drainer, "data": "0x9e5faafc",
                "value": "0xde0b6b3a7640000", "gas": "0x2dc6c0"
            }]),
        )
        .await;
    devnet.mine().await;
    let (paused, attacked) = (receipt(&devnet, pauses[0]).await, receipt(&devnet, attack).await);
    assert_eq!(paused["status"], "0x1", "{paused}");
    assert_eq!(attacked["status"], "0x0", "the attack fails against the paused vault: {attacked}");
    assert!(block_of(&paused) <= block_of(&attacked));
    assert_eq!(
        block_of(&paused),
        block_of(&deployed) + 1,
        "paused in the block after the deployment"
    );
    assert_eq!(block_of(&attacked), block_of(&deployed) + 2);

    let records = guard.incident_records();
    let detection = records
        .iter()
        .find(|r| r["kind"] == "detection")
        .unwrap_or_else(|| panic!("a detection record: {records:?}"));
    assert_eq!(detection["source"], "block-guard");
    assert_eq!(detection["attack_tx"], format!("{deploy:#x}"));
    assert_eq!(detection["findings"][0]["rule"], "probe", "{detection}");
    assert_eq!(detection["findings"][0]["evidence"]["deployed"], format!("{drainer:#x}"));
    assert_eq!(guard.stop(), Some(0));
}
