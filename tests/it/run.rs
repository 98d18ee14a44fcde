//! `preempt run` as a real process on `anvil --no-mining`: attacks are paused in the block
//! they target, benign traffic never is, bundles reach the relay signed, a dropped node
//! connection is survived, and an attack that skipped the mempool is paused by the block guard.

use std::time::Duration;

use alloy::{
    consensus::{Transaction as _, TxEnvelope},
    eips::Decodable2718,
    primitives::{Address, B256},
};
use preempt::devnet::{Scenario, dev_accounts};

use crate::support::{
    Devnet,
    guard::{RunningGuard, wait_pending_from},
    proxy::TcpProxy,
    relay::TestRelay,
};

fn guardian() -> Address {
    dev_accounts()[1].address
}

async fn block_txs(devnet: &Devnet, number: &str) -> Vec<(B256, Address)> {
    let block: serde_json::Value =
        devnet.rpc("eth_getBlockByNumber", serde_json::json!([number, true])).await;
    block["transactions"]
        .as_array()
        .map(|txs| {
            txs.iter()
                .filter_map(|t| {
                    Some((t["hash"].as_str()?.parse().ok()?, t["from"].as_str()?.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn succeeded(devnet: &Devnet, hash: B256) -> bool {
    let receipt: serde_json::Value =
        devnet.rpc("eth_getTransactionReceipt", serde_json::json!([hash])).await;
    receipt["status"] == "0x1"
}

async fn is_paused(devnet: &Devnet, contract: &str) -> bool {
    let address = devnet.deployment.address(contract).expect("contract");
    let out: String = devnet
        .rpc("eth_call", serde_json::json!([{"to": address, "data": "0x5c975abb"}, "latest"]))
        .await;
    out.ends_with('1')
}

/// Sends `scenario`, waits for the guardian's pause in the pool, mines, and checks the block.
async fn assert_attack_stopped(devnet: &Devnet, guard: &RunningGuard, scenario: Scenario) {
    let attack = devnet.send(scenario).await;
    let pauses = wait_pending_from(devnet, guardian(), 1, Duration::from_secs(20)).await;
    assert!(
        !pauses.is_empty(),
        "{}: no pause reached the pool:\n{}",
        scenario.name(),
        guard.log().join("\n")
    );
    devnet.mine().await;
    let txs = block_txs(devnet, "latest").await;
    let attack_at = txs.iter().position(|(h, _)| *h == attack).expect("attack mined in this block");
    let first_pause =
        txs.iter().position(|(_, from)| *from == guardian()).expect("pause mined in this block");
    assert!(
        first_pause < attack_at,
        "{}: pause at {first_pause}, attack at {attack_at}",
        scenario.name()
    );
    assert!(
        !succeeded(devnet, attack).await,
        "{}: the attack must fail against the paused protocol",
        scenario.name()
    );
    let (contract, _) = scenario.expected_findings()[0];
    assert!(is_paused(devnet, contract).await, "{}: {contract} paused", scenario.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fixture_attack_is_paused_ahead_of_it_in_the_same_block_and_fails() {
    for &scenario in Scenario::all().iter().filter(|s| s.is_attack()) {
        let devnet = Devnet::start().await;
        let guard = RunningGuard::start(&devnet, &devnet.anvil.ws_url(), "");
        assert_attack_stopped(&devnet, &guard, scenario).await;

        // The incident record names the attack, the findings, the pause and the outcome.
        guard.wait_log(|l| l.contains("pause landed"), Duration::from_secs(10), "pause landed");
        // The log line comes just before the outcome record is written: wait for the record.
        let started = std::time::Instant::now();
        let mut records = guard.incident_records();
        while !records.iter().any(|r| r["kind"] == "outcome")
            && started.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            records = guard.incident_records();
        }
        let detection =
            records.iter().find(|r| r["kind"] == "detection").expect("detection record");
        assert_eq!(detection["source"], "mempool");
        assert!(!detection["findings"].as_array().expect("findings").is_empty());
        assert!(
            detection["submitted"][0]["results"][0]["ok"].as_bool().unwrap_or(false),
            "{detection}"
        );
        let outcome = records.iter().find(|r| r["kind"] == "outcome").expect("outcome record");
        assert_eq!(outcome["same_block"], true, "{outcome}");
        assert_eq!(outcome["pause_before_attack"], true, "{outcome}");
        assert_eq!(outcome["attack_succeeded"], false, "{outcome}");
        assert_eq!(guard.stop(), Some(0), "clean shutdown on SIGTERM");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benign_traffic_and_attacks_on_fixed_contracts_get_no_guardian_tx() {
    let devnet = Devnet::start().await;
    let guard = RunningGuard::start(&devnet, &devnet.anvil.ws_url(), "");
    let mut sent = Vec::new();
    for &scenario in Scenario::all().iter().filter(|s| !s.is_attack()) {
        sent.push((scenario, devnet.send(scenario).await));
    }
    // Every one of them is simulated before the block is mined.
    for (scenario, hash) in &sent {
        let needle = format!("{hash}");
        guard.wait_log(
            |l| l.contains("simulated") && l.contains(&needle),
            Duration::from_secs(20),
            scenario.name(),
        );
    }
    assert!(wait_pending_from(&devnet, guardian(), 1, Duration::from_millis(300)).await.is_empty());
    devnet.mine().await;
    let txs = block_txs(&devnet, "latest").await;
    assert!(
        txs.len() >= sent.len() - 1,
        "the benign txs were mined ({} of {})",
        txs.len(),
        sent.len()
    );
    assert!(txs.iter().all(|(_, from)| *from != guardian()), "no guardian tx in the block");
    guard.wait_log(
        |l| l.contains("fork at new head"),
        Duration::from_secs(10),
        "the block processed",
    );
    assert!(wait_pending_from(&devnet, guardian(), 1, Duration::from_millis(500)).await.is_empty());
    assert!(guard.incident_records().is_empty(), "no incident: {:?}", guard.incident_records());
    assert_eq!(guard.count_log(|l| l.contains("pause sent")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_bundle_reaches_the_relay_signed_by_the_relay_auth_key() {
    let devnet = Devnet::start().await;
    let relay = TestRelay::start(&devnet.anvil.http_url());
    let extra = format!(
        "[[relay]]\nname = \"test-relay\"\nurl = \"{}\"\n\n[relay_auth]\nkey = \"env:PREEMPT_RELAY_AUTH_KEY\"\n",
        relay.url()
    );
    let guard = RunningGuard::start(&devnet, &devnet.anvil.ws_url(), &extra);
    devnet.send(Scenario::VaultReentrancyAttack).await;
    let started = std::time::Instant::now();
    while relay.bundles().is_empty() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bundles = relay.bundles();
    assert!(!bundles.is_empty(), "no bundle reached the relay:\n{}", guard.log().join("\n"));
    assert_eq!(relay.rejected(), 0);
    assert_eq!(
        bundles[0].signer,
        dev_accounts()[8].address,
        "signed by the relay-auth key, not the guardian"
    );
    let tx = TxEnvelope::decode_2718(&mut bundles[0].txs[0].as_ref()).expect("a signed tx");
    assert_eq!(tx.to(), Some(devnet.deployment.address("EthVault").expect("vault")));
    assert_eq!(tx.input().as_ref(), &[0x84, 0x56, 0xcb, 0x59], "pause()");
    let signer =
        alloy::consensus::transaction::SignerRecoverable::recover_signer(&tx).expect("signed");
    assert_eq!(signer, guardian());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_relay_does_not_hold_the_pause_and_its_record_has_bytes_written_before_answers() {
    let devnet = Devnet::start().await;
    // Bound, never accepting: the relay takes the connection and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let extra = format!(
        "[[relay]]\nname = \"hung\"\nurl = \"http://{}\"\n\n[relay_auth]\nkey = \"env:PREEMPT_RELAY_AUTH_KEY\"\n",
        hung.local_addr().expect("addr")
    );
    let guard = RunningGuard::start(&devnet, &devnet.anvil.ws_url(), &extra);
    let started = std::time::Instant::now();
    devnet.send(Scenario::VaultReentrancyAttack).await;
    let pauses = wait_pending_from(&devnet, guardian(), 1, Duration::from_secs(20)).await;
    let in_pool = started.elapsed();
    assert_eq!(pauses.len(), 1, "pause in the pool:\n{}", guard.log().join("\n"));
    assert!(
        in_pool < preempt::submit::REQUEST_TIMEOUT,
        "the pause waited on the relay: {in_pool:?}"
    );
    // The record is written once every destination answered: the relay's timeout ends it.
    let mut detection = None;
    while detection.is_none() && started.elapsed() < Duration::from_secs(15) {
        detection = guard.incident_records().into_iter().find(|r| r["kind"] == "detection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let d = detection.unwrap_or_else(|| panic!("no detection record:\n{}", guard.log().join("\n")));
    let sent = d["sent_us"].as_f64().expect("sent_us");
    let answered = d["answered_us"].as_f64().expect("answered_us");
    let handed = d["submit_started_us"].as_f64().expect("submit_started_us");
    let results = d["submitted"][0]["results"].as_array().expect("results");
    let node = results.iter().find(|r| r["kind"] == "node").expect("node result");
    // The worker writes the pause on the node's open pause connection before it hands the
    // detection over; only where it could not does the submit task write it, after.
    if node["by_worker"] == true {
        assert!(sent <= handed, "written by the worker at {sent} µs, handed over at {handed} µs");
    } else {
        assert!(handed <= sent, "handed {handed}, sent {sent}");
    }
    assert!(sent < answered, "sent {sent}, answered {answered}");
    assert!(sent < 1_000_000.0, "bytes written late: {sent} µs");
    assert!(answered >= 2_000_000.0, "answered before the relay timed out: {answered} µs");
    let relay = results.iter().find(|r| r["kind"] == "relay").expect("relay result");
    assert_eq!(node["ok"], true, "{node}");
    assert!(node["written_us"].as_u64().is_some(), "{node}");
    assert_eq!(relay["ok"], false, "{relay}");
    assert!(relay["error"].as_str().is_some_and(|e| e.contains("no answer within")), "{relay}");
    drop(hung);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_after_a_dropped_node_connection_is_still_stopped() {
    let devnet = Devnet::start().await;
    let proxy = TcpProxy::start(([127, 0, 0, 1], devnet.anvil.port).into()).await;
    let guard = RunningGuard::start(&devnet, &proxy.ws_url(), "");
    // The node goes away; an attack reaches its pool during the gap.
    proxy.refuse(true);
    assert!(proxy.cut_all() > 0, "preempt was connected through the proxy");
    guard.wait_log(|l| l.contains("node session ended"), Duration::from_secs(10), "the drop");
    let during_gap = devnet.send(Scenario::VaultReentrancyAttack).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.refuse(false);
    let started = std::time::Instant::now();
    while guard.count_log(|l| l.contains("subscribed to heads and pending txs")) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no reconnect:\n{}",
            guard.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The pool is re-synced after the gap: the attack sent while away is caught too.
    let pauses = wait_pending_from(&devnet, guardian(), 1, Duration::from_secs(20)).await;
    assert_eq!(
        pauses.len(),
        1,
        "pause for the attack sent during the gap:\n{}",
        guard.log().join("\n")
    );
    devnet.mine().await;
    assert!(!succeeded(&devnet, during_gap).await, "the attack sent during the gap failed");
    assert!(is_paused(&devnet, "EthVault").await);
    // And an attack after the reconnect, on another contract, is stopped as usual.
    assert_attack_stopped(&devnet, &guard, Scenario::TreasuryTakeoverAttack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_mined_without_the_mempool_is_paused_in_the_next_block_by_the_block_guard() {
    let devnet = Devnet::start().await;
    // This node feeds heads and state only: the attack is never seen pending.
    let config = preempt::devnet::config_toml(
        &devnet.deployment,
        &devnet.anvil.ws_url(),
        "PREEMPT_GUARDIAN_KEY",
    );
    assert!(config.contains("[[node]]"));
    let guard = RunningGuard::start_with(&devnet, &devnet.anvil.ws_url(), "", false);
    let attack = devnet.send(Scenario::VaultReentrancyAttack).await;
    devnet.mine().await;
    assert!(succeeded(&devnet, attack).await, "the attack went through (private order flow)");
    let pauses = wait_pending_from(&devnet, guardian(), 1, Duration::from_secs(20)).await;
    assert_eq!(pauses.len(), 1, "one pause from the block guard:\n{}", guard.log().join("\n"));
    devnet.mine().await;
    let txs = block_txs(&devnet, "latest").await;
    assert_eq!(txs.first().map(|(h, _)| *h), Some(pauses[0]), "the pause is in the next block");
    assert!(succeeded(&devnet, pauses[0]).await);
    assert!(is_paused(&devnet, "EthVault").await);
    let records = guard.incident_records();
    assert!(
        records.iter().any(|r| r["kind"] == "detection" && r["source"] == "block-guard"),
        "{records:?}"
    );
}
