//! The block guard over time, as `preempt run` runs it: a contract whose pause is lifted is
//! raced again, a reorg rewinds the fork and the next attack is still paused, and a pending
//! tx chained on its sender's earlier pending txs is simulated as the chain then runs it.

use std::{sync::Arc, time::Duration};

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    network::TxSignerSync,
    primitives::{Address, B256, Bytes, TxKind, U256},
    providers::Provider,
    signers::local::PrivateKeySigner,
};
use preempt::{
    devnet::{Scenario, dev_accounts},
    fork::{ForkCache, NodeClient},
    simulate::{SimBlock, Simulator},
    types::PendingTx,
    worker::SenderChains,
};

use crate::support::{
    Devnet,
    fake_node::FakeNode,
    guard::{RunningGuard, wait_pending_from},
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
async fn assert_paused_ahead(devnet: &Devnet, guard: &RunningGuard, scenario: Scenario) {
    let attack = devnet.send(scenario).await;
    let pauses = wait_pending_from(devnet, guardian(), 1, Duration::from_secs(20)).await;
    assert!(!pauses.is_empty(), "{}: no pause:\n{}", scenario.name(), guard.log().join("\n"));
    devnet.mine().await;
    let txs = block_txs(devnet, "latest").await;
    let attack_at = txs.iter().position(|(h, _)| *h == attack).expect("attack in this block");
    let pause_at = txs.iter().position(|(_, f)| *f == guardian()).expect("pause in this block");
    assert!(
        pause_at < attack_at,
        "{}: pause at {pause_at}, attack at {attack_at}",
        scenario.name()
    );
    assert!(!succeeded(devnet, attack).await, "{}: the attack failed", scenario.name());
}

/// Signs a call from one of the dev keys with fees that any block takes.
async fn signed_call(devnet: &Devnet, from: &PrivateKeySigner, to: Address, input: &[u8]) -> B256 {
    let nonce: String =
        devnet.rpc("eth_getTransactionCount", serde_json::json!([from.address(), "pending"])).await;
    let nonce = u64::from_str_radix(nonce.trim_start_matches("0x"), 16).expect("nonce");
    let mut tx = TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: 200_000,
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 2_000_000_000,
        to: TxKind::Call(to),
        value: U256::ZERO,
        access_list: Default::default(),
        input: Bytes::copy_from_slice(input),
    };
    let sig = from.sign_transaction_sync(&mut tx).expect("sign");
    let raw: Bytes = TxEnvelope::from(tx.into_signed(sig)).encoded_2718().into();
    devnet.rpc("eth_sendRawTransaction", serde_json::json!([raw])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_unpaused_by_its_governance_is_raced_again_and_the_record_shows_it() {
    let devnet = Devnet::start().await;
    let guard = RunningGuard::start(&devnet, &devnet.anvil.ws_url(), "");
    assert_paused_ahead(&devnet, &guard, Scenario::VaultReentrancyAttack).await;
    assert!(is_paused(&devnet, "EthVault").await);
    guard.wait_log(|l| l.contains("pause landed"), Duration::from_secs(10), "pause landed");

    // Governance (here the guardian itself) lifts the pause.
    let vault = devnet.deployment.address("EthVault").expect("vault");
    let unpause =
        signed_call(&devnet, &dev_accounts()[1].signer, vault, &[0x3f, 0x4b, 0xa8, 0x3a]).await;
    devnet.mine().await;
    assert!(succeeded(&devnet, unpause).await, "unpause() mined");
    assert!(!is_paused(&devnet, "EthVault").await);
    guard.wait_log(|l| l.contains("re-armed"), Duration::from_secs(10), "re-armed");

    // The next attack on it is paused again, in its block.
    assert_paused_ahead(&devnet, &guard, Scenario::VaultReentrancyAttack).await;
    assert!(is_paused(&devnet, "EthVault").await);
    let records = guard.incident_records();
    let rearm = records.iter().find(|r| r["kind"] == "rearmed").expect("a re-arm record");
    assert_eq!(rearm["contract_name"], "EthVault");
    assert!(rearm["unpaused_at_block"].as_u64().is_some(), "{rearm}");
    let outcomes: Vec<_> = records.iter().filter(|r| r["kind"] == "outcome").collect();
    assert_eq!(outcomes.len(), 2, "two pauses landed: {records:?}");
    assert!(outcomes.iter().all(|o| o["pause_before_attack"] == true), "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_answered_with_too_few_receipts_is_a_divergence_and_the_next_attack_is_paused() {
    let devnet = Devnet::start().await;
    let fake = FakeNode::start(&devnet.anvil.ws_url()).await;
    let guard = RunningGuard::start(&devnet, &fake.ws_url(), "");
    // Every receipt list of the next block comes one short, however often it is asked for.
    fake.short_receipts(1_000);
    devnet.send(Scenario::VaultDeposit).await;
    devnet.send(Scenario::Swap1Pct).await;
    devnet.mine().await;
    let head: String = devnet.rpc("eth_blockNumber", serde_json::json!([])).await;
    let head = u64::from_str_radix(head.trim_start_matches("0x"), 16).expect("head");
    let at_head = format!("block={head}");
    guard.wait_log(
        |l| l.contains("fork at new head") && l.contains(&at_head),
        Duration::from_secs(30),
        "the guard at the head",
    );
    fake.short_receipts(0);
    assert!(fake.receipts_cut() >= 1, "the node lied at least once");
    let log = guard.log();
    let text = log.join("\n");
    assert!(
        log.iter().any(|l| l.contains("receipts for the 2 txs") || l.contains("1 receipts")),
        "the short answer is named: {text}"
    );
    assert!(log.iter().any(|l| l.contains("replay diverged")), "a divergence: {text}");
    // The fork did not claim the block from an unverified replay: it was re-fetched at it.
    let applied = log
        .iter()
        .find(|l| l.contains("fork at new head") && l.contains(&at_head))
        .expect("the head line");
    assert!(applied.contains("layer=None"), "{applied}");
    // State is right at the new head: the next attack is paused in its block.
    assert_paused_ahead(&devnet, &guard, Scenario::VaultReentrancyAttack).await;
    assert!(is_paused(&devnet, "EthVault").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_honest_second_node_short_receipts_from_the_first_are_not_followed() {
    let devnet = Devnet::start().await;
    let fake = FakeNode::start(&devnet.anvil.ws_url()).await;
    let second = format!("[[node]]\nname = \"honest\"\nurl = \"{}\"\n", devnet.anvil.ws_url());
    let guard = RunningGuard::start(&devnet, &fake.ws_url(), &second);
    fake.short_receipts(1_000);
    devnet.send(Scenario::VaultDeposit).await;
    devnet.mine().await;
    let head: String = devnet.rpc("eth_blockNumber", serde_json::json!([])).await;
    let head = u64::from_str_radix(head.trim_start_matches("0x"), 16).expect("head");
    let at_head = format!("block={head}");
    guard.wait_log(
        |l| l.contains("fork at new head") && l.contains(&at_head),
        Duration::from_secs(30),
        "the guard at the head",
    );
    let log = guard.log();
    let applied = log
        .iter()
        .find(|l| l.contains("fork at new head") && l.contains(&at_head))
        .expect("the head line");
    // Whichever node was asked first, the block was applied from receipts that match it.
    assert!(!applied.contains("layer=None"), "{applied}\n{}", log.join("\n"));
    assert!(!log.iter().any(|l| l.contains("replay diverged")), "{}", log.join("\n"));
    assert_paused_ahead(&devnet, &guard, Scenario::VaultReentrancyAttack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reorg_the_fork_rewinds_and_the_next_attack_is_still_paused() {
    for depth in [1u64, 3] {
        let devnet = Devnet::start().await;
        let guard = RunningGuard::start(&devnet, &devnet.anvil.ws_url(), "");
        // Blocks with benign traffic the guard applies, then a reorg replaces the last ones.
        for s in [Scenario::VaultDeposit, Scenario::Swap1Pct, Scenario::PoolDeposit] {
            devnet.send(s).await;
            devnet.mine().await;
        }
        let head: String = devnet.rpc("eth_blockNumber", serde_json::json!([])).await;
        let head = u64::from_str_radix(head.trim_start_matches("0x"), 16).expect("head");
        guard.wait_log(
            |l| l.contains("fork at new head") && l.contains(&format!("block={head}")),
            Duration::from_secs(20),
            "the guard at the head",
        );
        devnet.send(Scenario::VaultWithdraw).await;
        let _: serde_json::Value = devnet.rpc("anvil_reorg", serde_json::json!([depth, []])).await;
        guard.wait_log(|l| l.contains("reorg"), Duration::from_secs(20), "the reorg");
        // Pending traffic goes on, and an attack sent now is paused in its block.
        assert_paused_ahead(&devnet, &guard, Scenario::VaultReentrancyAttack).await;
        assert!(is_paused(&devnet, "EthVault").await, "depth {depth}");
        assert_eq!(
            guard.count_log(|l| l.contains("replay diverged")),
            0,
            "{}",
            guard.log().join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_tx_chained_on_its_senders_earlier_pending_txs_matches_its_receipt() {
    let devnet = Devnet::start().await;
    // The user deposits twice, then withdraws more than it holds now but not more than the
    // two deposits leave: only a simulation after both deposits sees it succeed.
    let vault = devnet.deployment.address("EthVault").expect("vault");
    let user = dev_accounts()[2].signer.clone();
    let balance: String = devnet
        .rpc("eth_call", serde_json::json!([{"to": vault, "data": format!("0x27e235e3{:0>64}", hex_of(user.address()))}, "latest"]))
        .await;
    let before = U256::from_str_radix(balance.trim_start_matches("0x"), 16).expect("balance");
    let deposit = [0xd0, 0xe3, 0x0d, 0xb0];
    let mut hashes = Vec::new();
    for _ in 0..2 {
        hashes.push(send_value(&devnet, &user, vault, &deposit, U256::from(10u64.pow(18))).await);
    }
    let amount = before + U256::from(2 * 10u64.pow(18));
    let mut withdraw = vec![0x2e, 0x1a, 0x7d, 0x4d];
    withdraw.extend_from_slice(&amount.to_be_bytes::<32>());
    hashes.push(signed_call(&devnet, &user, vault, &withdraw).await);

    let node = NodeClient::connect("test", &devnet.anvil.http_url()).await.expect("node");
    let provider = node.provider();
    let head = node.latest_block_number().await.expect("head");
    let header =
        provider.get_block_by_number(head.into()).await.expect("rpc").expect("head").header;
    let mut txs = Vec::new();
    for h in &hashes {
        let tx = provider.get_transaction_by_hash(*h).await.expect("rpc").expect("pending");
        let now = std::time::Instant::now();
        txs.push(PendingTx {
            hash: *h,
            tx: tx.inner,
            seen_at: now,
            decoded_at: now,
            queued_at: now,
            source: Arc::from("test"),
            sender_check: None,
        });
    }
    let config = devnet.config.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let fork = Arc::new(ForkCache::new(head, Some(node)));
        let block = SimBlock::pending_after(&header, header.timestamp + 1);
        let mut sim = Simulator::new(&config, fork, block, 31337);
        let chains = SenderChains::default();
        // The withdrawal arrives first: it waits for its predecessors, then runs after them.
        chains.record(&txs[2]);
        let parked = chains.simulate(&mut sim, &txs[2], 0, 0).expect("simulate");
        assert!(matches!(parked, preempt::worker::ChainRun::Parked { .. }));
        for t in &txs[..2] {
            chains.record(t);
        }
        match chains.simulate(&mut sim, &txs[2], 0, 0).expect("simulate") {
            preempt::worker::ChainRun::Done(done) => {
                assert!(done.chained, "ran after its sender's two deposits");
                done.outcome
            }
            other => panic!("not simulated: {other:?}"),
        }
    })
    .await
    .expect("join");
    assert!(outcome.success, "the withdrawal succeeds after both deposits: {:?}", outcome.failure);
    devnet.mine().await;
    let receipt = provider.get_transaction_receipt(hashes[2]).await.expect("rpc").expect("mined");
    assert!(receipt.status());
    assert_eq!(outcome.gas_used, receipt.gas_used, "the chained simulation's gas is the receipt's");
}

fn hex_of(a: Address) -> String {
    format!("{:x}", a)
}

async fn send_value(
    devnet: &Devnet,
    from: &PrivateKeySigner,
    to: Address,
    input: &[u8],
    value: U256,
) -> B256 {
    let nonce: String =
        devnet.rpc("eth_getTransactionCount", serde_json::json!([from.address(), "pending"])).await;
    let nonce = u64::from_str_radix(nonce.trim_start_matches("0x"), 16).expect("nonce");
    let mut tx = TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: 200_000,
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 2_000_000_000,
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input: Bytes::copy_from_slice(input),
    };
    let sig = from.sign_transaction_sync(&mut tx).expect("sign");
    let raw: Bytes = TxEnvelope::from(tx.into_signed(sig)).encoded_2718().into();
    devnet.rpc("eth_sendRawTransaction", serde_json::json!([raw])).await
}
