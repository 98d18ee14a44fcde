//! A contract deployed by one account and called by another while both txs are pending (the
//! attacker who deploys from one account and strikes from another in the same block): the call
//! runs on the pending creation's code and constructor storage, not on an empty account, and the
//! pause goes ahead of it in that block.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use preempt::devnet::dev_accounts;

use crate::support::{
    Devnet, drainer_init_code,
    guard::{RunningGuard, wait_pending_from},
};

async fn receipt(devnet: &Devnet, hash: B256) -> serde_json::Value {
    devnet.rpc("eth_getTransactionReceipt", serde_json::json!([hash])).await
}

fn hex_u64(v: &serde_json::Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("a hex number: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attack_through_a_contract_another_account_deploys_in_the_same_block_is_paused_ahead_of_it()
 {
    let devnet = Devnet::start().await;
    // The probe would pause at the deployment itself: here only the attack tx is judged.
    let guard = RunningGuard::start(
        &devnet,
        &devnet.anvil.ws_url(),
        "[policy.rules]\nprobe = \"record\"\n",
    );
    let vault = devnet.deployment.address("EthVault").expect("vault");
    let (deployer, striker, guardian) =
        (dev_accounts()[3].address, dev_accounts()[4].address, dev_accounts()[1].address);
    let data = drainer_init_code(vault);
    let nonce: serde_json::Value =
        devnet.rpc("eth_getTransactionCount", serde_json::json!([deployer, "pending"])).await;
    let drainer: Address = deployer.create(hex_u64(&nonce));

    // Back to back: the attack may reach a worker before the deployment has run, and waits for it.
    let deploy: B256 = devnet
        .rpc(
            "eth_sendTransaction",
            serde_json::json!([{"from": deployer, "data": data, "gas": "0x2dc6c0"}]),
        )
        .await;
    let attack: B256 = devnet
        .rpc(
            "eth_sendTransaction",
            serde_json::json!([{
                "from": striker, "to": drainer, "data": "0x9e5faafc",
                "value": "0xde0b6b3a7640000", "gas": "0x2dc6c0"
            }]),
        )
        .await;
    let pauses = wait_pending_from(&devnet, guardian, 1, Duration::from_secs(20)).await;
    assert_eq!(pauses.len(), 1, "one pause, for the attack:\n{}", guard.log().join("\n"));
    devnet.mine().await;

    let (deployed, paused, attacked) = (
        receipt(&devnet, deploy).await,
        receipt(&devnet, pauses[0]).await,
        receipt(&devnet, attack).await,
    );
    assert_eq!(deployed["status"], "0x1", "{deployed}");
    assert_eq!(deployed["contractAddress"], format!("{drainer:#x}"));
    assert_eq!(paused["status"], "0x1", "{paused}");
    assert_eq!(attacked["status"], "0x0", "the attack fails against the paused vault: {attacked}");
    assert_eq!(paused["blockNumber"], attacked["blockNumber"], "paused in the attack's block");
    assert!(
        hex_u64(&paused["transactionIndex"]) < hex_u64(&attacked["transactionIndex"]),
        "the pause goes first: {paused} {attacked}"
    );

    let records = guard.incident_records();
    let detection = records
        .iter()
        .find(|r| r["kind"] == "detection" && r["attack_tx"] == format!("{attack:#x}"))
        .unwrap_or_else(|| panic!("a detection of the attack: {records:?}"));
    assert_eq!(detection["source"], "mempool", "{detection}");
    assert!(
        detection["findings"].as_array().is_some_and(|f| f.iter().any(|f| f["contract"]
            .as_str()
            .is_some_and(|c| c.eq_ignore_ascii_case(&format!("{vault:#x}"))))),
        "a finding on the vault: {detection}"
    );
    assert_eq!(guard.stop(), Some(0));
}
