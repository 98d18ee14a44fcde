//! The fork cache follows new heads: a block's state diff, checked by replaying its txs, gives
//! the node's state; cold state is fetched in a few batched rounds.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, U256},
    providers::Provider,
};
use preempt::{
    devnet::Scenario,
    fork::{ColdFill, ColdTx, ForkCache, NodeClient, StateKey, StateSource},
    guard::{LayerSource, fetch_block_data, fetch_block_diff, replay_block},
    simulate::{SimBlock, Simulator},
};

use crate::support::{Anvil, Devnet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_head_is_applied_from_the_nodes_diff_checked_by_replay_and_matches_the_node() {
    let devnet = Devnet::start().await;
    let node = NodeClient::connect("test", &devnet.anvil.http_url()).await.expect("node");
    let provider = node.provider().clone();
    let chain_id = provider.get_chain_id().await.expect("chain id");
    let head = node.latest_block_number().await.expect("head");
    let vault = devnet.deployment.address("EthVault").expect("vault");
    let pair = devnet.deployment.address("Pair").expect("pair");

    // Warm the fork at the head, as the guard does at start.
    let source = StateSource::new([node.clone()]);
    let fork = Arc::new(ForkCache::with_source(head, Some(source.clone()), Default::default()));
    fork.prefetch(&[vault, pair], &[(pair, U256::from(8))]).await.expect("prefetch");
    let vault_before = fork.cached_account(&vault).flatten().expect("exists").balance;

    for s in [
        Scenario::VaultDeposit,
        Scenario::VaultWithdraw,
        Scenario::Swap20Pct,
        Scenario::RevertingWithdraw,
    ] {
        devnet.send(s).await;
    }
    devnet.mine().await;
    let data = fetch_block_data(&source, head + 1, true).await.expect("block data");
    assert_eq!(data.txs.len(), 4, "all four txs in one block");
    assert!(data.txs.iter().all(|t| t.receipt.is_some()), "receipts matched the block");
    let hashes: Vec<_> = data.txs.iter().map(|t| t.hash).collect();
    let diff = fetch_block_diff(&source, head + 1, data.hash, &hashes)
        .await
        .expect("anvil gives the block's state diff");

    // Replayed from the cache (values fetched at the head read again), and from the node's
    // diff: both match every receipt and give the same change set.
    let config = devnet.config.clone();
    let (ours, theirs) = {
        let fork = Arc::clone(&fork);
        tokio::task::spawn_blocking(move || {
            let ours =
                replay_block(&config, &fork, data.block_env, chain_id, &data.txs, None, None);
            let theirs = replay_block(
                &config,
                &fork,
                data.block_env,
                chain_id,
                &data.txs,
                Some(&diff),
                None,
            );
            (ours, theirs)
        })
        .await
        .expect("join")
    };
    assert_eq!(ours.divergence, None, "every tx replayed as the node ran it");
    assert_eq!(ours.layer_source, LayerSource::Replay);
    assert_eq!(theirs.divergence, None, "and the node's diff agrees with the replay");
    assert_eq!(theirs.layer_source, LayerSource::NodeDiff);
    assert!(ours.findings.is_empty(), "benign block");
    assert_eq!(fork.block(), head, "the replay never writes the fork");
    let pair_slot = (pair, U256::from(8));
    let slot_of = |l: &preempt::fork::StateLayer| l.slot(&pair_slot.0, &pair_slot.1);
    assert_eq!(slot_of(&ours.layer), slot_of(&theirs.layer), "same reserves after the swap");
    fork.apply_layer(&ours.layer, head + 1);
    let next = fork;

    let node_vault =
        provider.get_balance(vault).block_id((head + 1).into()).await.expect("balance");
    let ours = next.cached_account(&vault).flatten().expect("exists").balance;
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
    let reserves = next.cached_slot(&pair, &U256::from(8)).expect("cached slot");
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

/// A node client on `url`, the head it is at, and the demo's reentrancy attack pending on it.
struct AttackAtHead {
    node: NodeClient,
    chain_id: u64,
    head: u64,
    header: alloy::rpc::types::Header,
    hash: alloy::primitives::B256,
    tx: alloy::consensus::transaction::Recovered<alloy::consensus::TxEnvelope>,
}

async fn attack_at_head(devnet: &Devnet, url: &str) -> AttackAtHead {
    let node = NodeClient::connect("test", url).await.expect("node");
    let provider = node.provider();
    let chain_id = provider.get_chain_id().await.expect("chain id");
    let head = node.latest_block_number().await.expect("head");
    let header =
        provider.get_block_by_number(head.into()).await.expect("rpc").expect("head").header;
    let hash = devnet.send(Scenario::VaultReentrancyAttack).await;
    let tx = provider.get_transaction_by_hash(hash).await.expect("rpc").expect("pending").inner;
    AttackAtHead { node, chain_id, head, header, hash, tx }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_simulation_fetches_misses_in_a_few_batched_rounds_and_matches_warm() {
    let devnet = Devnet::start().await;
    let AttackAtHead { node, chain_id, head, header, hash, tx } =
        attack_at_head(&devnet, &devnet.anvil.http_url()).await;
    let config = devnet.config.clone();
    let (cold, warm, rounds, requests) = tokio::task::spawn_blocking(move || {
        let fork = Arc::new(ForkCache::new(head, Some(node)));
        let block = SimBlock::pending_after(&header, header.timestamp + 1);
        let mut sim = Simulator::new(&config, Arc::clone(&fork), block, chain_id);
        // The batched path alone (the pre-state trace races it otherwise; tested below).
        sim.set_race_prestate(false);
        let cold = sim.simulate(hash, &tx).expect("cold");
        let rounds = fork.stats().counts().fetch_rounds;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_tx_prestate_trace_fills_the_fork_in_one_wait_and_matches_the_batched_fetch() {
    let devnet = Devnet::start().await;
    let AttackAtHead { node, chain_id, head, header, hash, tx } =
        attack_at_head(&devnet, &devnet.anvil.ws_url()).await;
    let config = devnet.config.clone();
    let run = move |race: bool| {
        let fork = Arc::new(ForkCache::new(head, Some(node.clone())));
        let block = SimBlock::pending_after(&header, header.timestamp + 1);
        let mut sim = Simulator::new(&config, Arc::clone(&fork), block, chain_id);
        sim.set_race_prestate(race);
        let outcome = sim.simulate(hash, &tx).expect("cold run");
        let waits = sim.fork_view().waited().rounds;
        let traces = fork.stats().counts().prestate_traces;
        (outcome, waits, traces)
    };
    let (traced, batched) =
        tokio::task::spawn_blocking(move || (run(true), run(false))).await.expect("join");
    let ((with_trace, trace_waits, traces), (batch_only, batch_waits, no_traces)) =
        (traced, batched);
    assert_eq!(traces, 1, "one pre-state trace for the cold tx");
    assert_eq!(no_traces, 0);
    assert!(batch_waits >= 3, "the batched path discovers misses level by level ({batch_waits})");
    // The trace usually lands with the first level of misses (one or two waits on a quiet
    // machine); each round races it against its own batch, so it is never worse than batching.
    assert!(
        trace_waits <= batch_waits,
        "waited {trace_waits} times with the trace, {batch_waits} without"
    );
    assert_eq!(with_trace.gas_used, batch_only.gas_used);
    assert_eq!(with_trace.success, batch_only.success);
    assert_eq!(with_trace.frames.len(), batch_only.frames.len());
    assert_eq!(with_trace.reentries.len(), batch_only.reentries.len());
    eprintln!(
        "cold with trace: {trace_waits} waits, {:?}; batched: {batch_waits} waits, {:?}",
        with_trace.sim_time, batch_only.sim_time
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tx_is_traced_once_and_a_miss_after_its_trace_landed_is_fetched_by_the_batch_alone() {
    let devnet = Devnet::start().await;
    let AttackAtHead { node, head, hash, tx, .. } =
        attack_at_head(&devnet, &devnet.anvil.ws_url()).await;
    let fork = Arc::new(ForkCache::new(head, Some(node)));
    let traces = || fork.stats().counts().prestate_traces;
    let sender = tx.signer();
    fork.fetch_cold(Some(ColdTx::of(hash, &tx)), vec![StateKey::Account(sender)])
        .await
        .expect("first round");
    // Whichever of the two landed first, the trace lands too.
    let started = Instant::now();
    while traces() == 0 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(traces(), 1, "the tx's pre-state was traced");
    // A later run of the same tx misses state its trace did not cover (as after a new head):
    // the trace would answer the same, so the batch alone fetches it.
    let stranger = Address::repeat_byte(0x42);
    let fill = fork
        .fetch_cold(Some(ColdTx::of(hash, &tx)), vec![StateKey::Account(stranger)])
        .await
        .expect("later round");
    assert_eq!(fill, ColdFill::Batch);
    assert!(fork.cached_account(&stranger).is_some(), "the batch fetched the miss");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(traces(), 1, "no second trace of the same tx");
}

/// anvil's first dev account: funded, so a fetch of it reads a non-empty account.
const DEV_ACCOUNT: Address =
    alloy::primitives::address!("f39fd6e51aad88f6f4ce6ab8827279cfffb92266");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_already_being_fetched_is_waited_on_not_asked_for_again() {
    let anvil = Anvil::start_no_mining();
    let node = NodeClient::connect("test", &anvil.http_url()).await.expect("node");
    let head = node.latest_block_number().await.expect("head");
    let fork = ForkCache::new(head, Some(node));
    let (created, other) = (Address::repeat_byte(0xc1), Address::repeat_byte(0xc2));
    // A pending creation's warm-up, and the creation's first run missing its deployer moments
    // later: the deployer is asked for once, and the run waits on the warm-up for it.
    let (warm_accounts, run_accounts) = ([DEV_ACCOUNT, created], [DEV_ACCOUNT, other]);
    let run_slots = [(created, U256::ZERO)];
    let (warm, run) =
        tokio::join!(fork.prefetch(&warm_accounts, &[]), fork.prefetch(&run_accounts, &run_slots));
    warm.expect("warm-up");
    run.expect("run's batch");
    let c = fork.stats().counts();
    assert_eq!(
        (c.fetch_rounds, c.account_fetches, c.storage_fetches, c.joined_fetches),
        (2, 3, 1, 1),
        "{c:?}"
    );
    let deployer = fork.cached_account(&DEV_ACCOUNT).flatten().expect("the deployer is held");
    assert!(deployer.balance > U256::ZERO);
    assert_eq!(fork.cached_account(&other), Some(None), "an empty account, held as absent");
    assert_eq!(fork.cached_slot(&created, &U256::ZERO), Some(U256::ZERO));

    // A fetch dropped while another waits on it: the waiter reads the key itself.
    let late = [Address::repeat_byte(0xc3)];
    let mut first = Box::pin(fork.prefetch(&late, &[]));
    assert!(futures::poll!(&mut first).is_pending(), "the first fetch is on the wire");
    let mut waiter = Box::pin(fork.prefetch(&late, &[]));
    assert!(futures::poll!(&mut waiter).is_pending(), "the second waits on the first");
    drop(first);
    waiter.await.expect("the waiter's own fetch");
    let c = fork.stats().counts();
    assert_eq!((c.fetch_rounds, c.joined_fetches), (4, 2), "{c:?}");
    assert_eq!(fork.cached_account(&late[0]), Some(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_warm_reruns_recent_work_without_fetching_caching_or_changing_a_later_run() {
    let devnet = Devnet::start().await;
    let AttackAtHead { node, chain_id, head, header, hash, tx } =
        attack_at_head(&devnet, &devnet.anvil.http_url()).await;
    let config = devnet.config.clone();
    let (first, again, fetched) = tokio::task::spawn_blocking(move || {
        let fork = Arc::new(ForkCache::new(head, Some(node)));
        let block = SimBlock::pending_after(&header, header.timestamp + 1);
        let mut sim = Simulator::new(&config, Arc::clone(&fork), block, chain_id);
        sim.warm().expect("warm");
        let first = sim.simulate(hash, &tx).expect("first run");
        // The first run raced the node's pre-state trace against a batch of reads; the loser
        // runs on and lands on its own time (measured: within the keep-warm runs on a loaded
        // machine). Counted from when the node has stopped answering it.
        let asked = || {
            let c = fork.stats().counts();
            (fork.stats().round_trips(), c.fetch_rounds, c.prestate_traces)
        };
        let mut settled = asked();
        for _ in 0..40 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let now = asked();
            if now == settled {
                break;
            }
            settled = now;
        }
        let before = fork.stats().round_trips();
        for _ in 0..3 {
            sim.keep_warm();
        }
        let fetched = fork.stats().round_trips() - before;
        let again = sim.simulate(hash, &tx).expect("run after keep-warm");
        (first, again, fetched)
    })
    .await
    .expect("join");
    assert_eq!(fetched, 0, "keep-warm asks the node for nothing");
    assert!(first.success && !first.reentries.is_empty(), "the attack re-enters the vault");
    assert_eq!(again.gas_used, first.gas_used);
    assert_eq!(again.frames.len(), first.frames.len());
    assert_eq!(again.reentries.len(), first.reentries.len());
    assert_eq!(
        serde_json::to_value(&again.holdings).ok(),
        serde_json::to_value(&first.holdings).ok()
    );
    assert_eq!(again.invariants.len(), first.invariants.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_warm_a_drains_analysis_reads_nothing_from_the_node_beyond_the_txs_own_state() {
    let devnet = Devnet::start().await;
    let AttackAtHead { node, chain_id, head, header, hash, tx } =
        attack_at_head(&devnet, &devnet.anvil.http_url()).await;
    let config = devnet.config.clone();
    let (outcome, fetched) = tokio::task::spawn_blocking(move || {
        let fork = Arc::new(ForkCache::new(head, Some(node)));
        let block = SimBlock::pending_after(&header, header.timestamp + 1);
        let mut sim = Simulator::new(&config, Arc::clone(&fork), block, chain_id);
        sim.warm().expect("warm");
        // What the attack's own run reads (its contract, its sender, the entries it touches).
        sim.prefetch_for(std::iter::once(&tx), 8).expect("prefetch");
        let before = fork.stats().round_trips();
        let outcome = sim.simulate(hash, &tx).expect("run");
        (outcome, fork.stats().round_trips() - before)
    })
    .await
    .expect("join");
    assert!(outcome.success && !outcome.reentries.is_empty(), "the attack re-enters the vault");
    assert!(!outcome.ledgers.is_empty(), "the vault's books were drawn up");
    // The key holders (`owner()`, `admin()`, the EIP-1967 admin slot) were read by `warm`: a
    // blocking read in the analysis cost a drain's first run a node round trip.
    assert_eq!(fetched, 0, "the analysis of a drain waits on no node read");
}
