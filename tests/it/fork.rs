//! The fork cache follows new heads: a block's txs replayed on a copy give the node's state.

use std::sync::Arc;

use alloy::{
    eips::BlockNumberOrTag, primitives::U256, providers::Provider,
    rpc::types::BlockTransactionsKind,
};
use preempt::{
    devnet::Scenario,
    fork::{ForkCache, NodeClient},
    guard::{MinedTx, ReceiptSummary, replay_block},
    simulate::{SimBlock, Simulator},
};
use revm::database_interface::DatabaseRef;

use crate::support::Devnet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_head_is_applied_by_replay_and_matches_the_node() {
    let devnet = Devnet::start().await;
    let node = NodeClient::connect("test", &devnet.anvil.http_url()).await.expect("node");
    let provider = node.provider().clone();
    let chain_id = provider.get_chain_id().await.expect("chain id");
    let head = node.latest_block_number().await.expect("head");
    let vault = devnet.deployment.address("EthVault").expect("vault");
    let pair = devnet.deployment.address("Pair").expect("pair");

    // Warm the fork at the head, as the guard does at start.
    let fork = Arc::new(ForkCache::new(head, Some(node.clone())));
    fork.prefetch(&[vault, pair], &[(pair, U256::from(8))]).await.expect("prefetch");
    let vault_before = fork.basic_ref(vault).expect("read").expect("exists").balance;

    for s in [
        Scenario::VaultDeposit,
        Scenario::VaultWithdraw,
        Scenario::Swap20Pct,
        Scenario::RevertingWithdraw,
    ] {
        devnet.send(s).await;
    }
    devnet.mine().await;
    let block = provider
        .get_block_by_number(BlockNumberOrTag::Number(head + 1))
        .kind(BlockTransactionsKind::Full)
        .await
        .expect("rpc")
        .expect("mined block");
    let mut txs = Vec::new();
    for tx in block.transactions.txns() {
        let hash = *tx.inner.tx_hash();
        let receipt = provider.get_transaction_receipt(hash).await.expect("rpc").expect("receipt");
        txs.push(MinedTx {
            hash,
            tx: tx.inner.clone(),
            receipt: ReceiptSummary { success: receipt.status(), gas_used: receipt.gas_used },
        });
    }
    assert_eq!(txs.len(), 4, "all four txs in one block");

    let config = devnet.config.clone();
    let advanced = tokio::task::spawn_blocking(move || {
        replay_block(&config, &fork, SimBlock::of_block(&block.header), chain_id, &txs)
    })
    .await
    .expect("join");
    assert_eq!(advanced.refetched, None, "every tx replayed as the node ran it");
    assert!(advanced.findings.is_empty(), "benign block");
    let next = advanced.fork;
    assert_eq!(next.block(), head + 1);

    let node_vault =
        provider.get_balance(vault).block_id((head + 1).into()).await.expect("balance");
    let ours = tokio::task::spawn_blocking({
        let next = Arc::clone(&next);
        move || next.basic_ref(vault).expect("read").expect("exists").balance
    })
    .await
    .expect("join");
    assert_eq!(ours, node_vault, "vault balance after the block");
    assert_eq!(
        vault_before + U256::from(10u64.pow(18)) - U256::from(2 * 10u64.pow(18)),
        node_vault
    );
    let node_reserves = provider
        .get_storage_at(pair, U256::from(8))
        .block_id((head + 1).into())
        .await
        .expect("slot");
    let reserves = next.storage_ref(pair, U256::from(8)).expect("cached slot");
    assert_eq!(reserves, node_reserves, "pair reserves after the swap");

    // The advanced fork simulates the next pending tx like the node will run it.
    let hash = devnet.send(Scenario::VaultReentrancyAttack).await;
    let tx = provider.get_transaction_by_hash(hash).await.expect("rpc").expect("pending").inner;
    let header =
        provider.get_block_by_number((head + 1).into()).await.expect("rpc").expect("head").header;
    let config = devnet.config.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut sim = Simulator::new(
            &config,
            next,
            SimBlock::pending_after(&header, header.timestamp + 1),
            chain_id,
        );
        sim.simulate(hash, &tx)
    })
    .await
    .expect("join")
    .expect("simulate");
    assert!(outcome.success);
    assert!(!outcome.reentries.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_simulation_fetches_misses_in_a_few_batched_rounds_and_matches_warm() {
    let devnet = Devnet::start().await;
    let node = NodeClient::connect("test", &devnet.anvil.http_url()).await.expect("node");
    let provider = node.provider();
    let chain_id = provider.get_chain_id().await.expect("chain id");
    let head = node.latest_block_number().await.expect("head");
    let header =
        provider.get_block_by_number(head.into()).await.expect("rpc").expect("head").header;
    let hash = devnet.send(Scenario::VaultReentrancyAttack).await;
    let tx = provider.get_transaction_by_hash(hash).await.expect("rpc").expect("pending").inner;
    let config = devnet.config.clone();
    let (cold, warm, rounds, requests) = tokio::task::spawn_blocking(move || {
        let fork = Arc::new(ForkCache::new(head, Some(node)));
        let block = SimBlock::pending_after(&header, header.timestamp + 1);
        let mut sim = Simulator::new(&config, Arc::clone(&fork), block, chain_id);
        let cold = sim.simulate(hash, &tx).expect("cold");
        let rounds = fork.stats().fetch_rounds.load(std::sync::atomic::Ordering::Relaxed);
        let requests = fork.stats().round_trips();
        let warm = sim.simulate(hash, &tx).expect("warm");
        (cold, warm, rounds, requests)
    })
    .await
    .expect("join");
    assert_eq!(cold.gas_used, warm.gas_used);
    assert_eq!(cold.frames.len(), warm.frames.len());
    assert_eq!(cold.reentries.len(), warm.reentries.len());
    assert!(requests > 5, "a cold run reads several accounts and slots ({requests})");
    // Misses are discovered in dependency order, each level fetched as one batch.
    assert!(rounds <= 6, "{rounds} fetch rounds for {requests} items");
    eprintln!(
        "cold: {rounds} rounds, {requests} requests, {:?}; warm {:?}",
        cold.sim_time, warm.sim_time
    );
}
