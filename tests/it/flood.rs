//! Attacks lost in a crowd (issue 9): a burst of 1,000 ordinary txs from 100 funded senders
//! with the fixture vault attack sent in the middle, through `preempt run` as a real process on
//! `anvil --no-mining`, with one and with two workers, three times each. Every run must end
//! with the pause ahead of the attack in the block that holds it, and the guard must have
//! received every tx the node's pool accepted. (10,000-tx bursts: `preempt bench --flood`.)

use preempt::bench::flood::{FloodOptions, FloodRun, SLOT, line, run_flood};

use crate::support::tools_dir;

const TXS: usize = 1_000;
const REPEATS: usize = 3;

async fn flood(dir: &std::path::Path, workers: usize, i: usize) -> FloodRun {
    flood_with(dir, workers, i, false).await
}

/// `full_slot`: the block comes a whole slot after the attack, not as soon as the pause is in.
async fn flood_with(dir: &std::path::Path, workers: usize, i: usize, full_slot: bool) -> FloodRun {
    let run = run_flood(&FloodOptions {
        anvil: tools_dir().join("bin/anvil"),
        preempt: env!("CARGO_BIN_EXE_preempt").into(),
        dir: dir.join(format!("w{workers}-{i}")),
        txs: TXS,
        workers,
        senders: 100,
        block_time: SLOT,
        full_slot,
    })
    .await
    .unwrap_or_else(|e| panic!("flood run ({workers} workers, #{i}): {e}"));
    println!("{TXS} txs, {workers} worker(s), run {}: {}", i + 1, line(&run));
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attack_amid_1000_txs_is_paused_ahead_of_it_in_its_block_with_1_and_2_workers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut runs: Vec<FloodRun> = Vec::new();
    for workers in [1, 2] {
        for i in 0..REPEATS {
            runs.push(flood(dir.path(), workers, i).await);
        }
    }
    for r in &runs {
        let what = format!("{} workers: {}", r.workers, line(r));
        assert_eq!((r.sent, r.refused), (TXS, 0), "{what}: the node took the whole burst");
        assert_eq!(r.pool_flood, TXS as u64, "{what}: all of it pending before the block");
        assert!(r.attack_to_pause_ms.is_some(), "{what}: the pause reached the pool in the slot");
        assert_eq!(r.attack_reverted, Some(true), "{what}: the attack reverted");
        assert!(r.same_block, "{what}: the pause is ahead of the attack in its block");
        assert!(r.simulated_before.is_some(), "{what}: the attack was simulated");
        let (sub, rec) = (r.by_subscription.unwrap_or(0), r.by_reconciliation.unwrap_or(0));
        // Flood and attack: each came to the guard once, by one path or the other. The pause
        // is marked seen as the worker writes it, so the node's echo of it is a duplicate.
        assert!(sub + rec > TXS as u64, "{what}: every accepted tx reached the guard");
        assert_eq!(r.detection["source"], "mempool", "{what}");
        assert_eq!(r.guard_exit_code, Some(0), "{what}: clean exit on SIGTERM");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vault_deposit_amid_1000_txs_is_simulated_before_the_block() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The block a slot after the attack (12 s, as on mainnet): every deposit pending in the
    // slot must have been simulated by then, however busy the machine.
    let run = flood_with(dir.path(), 1, 0, true).await;
    assert!(run.same_block, "{}", line(&run));
    let deposits = &run.by_kind["deposit"];
    assert_eq!(
        deposits["simulated_before_block"],
        deposits["sent"],
        "every pending tx that names the protected vault is simulated before the block: {}",
        line(&run)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tx_of_a_lower_lane_is_simulated_while_the_attack_waits_in_its_lane() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = flood(dir.path(), 1, 0).await;
    assert!(run.same_block, "{}", line(&run));
    // The attacker's contract holds the vault's address in storage, not in its code: ingest
    // cannot see its reach, but few txs call it, so it goes ahead of the crowd.
    let lane = run.while_attack_queued["attack_lane"].as_str().expect("lane logged");
    assert!(matches!(lane, "Protected" | "Suspicious"), "attack in lane {lane}: {}", line(&run));
    // One sim already running on the worker when the attack was queued may finish during
    // the wait; nothing else from a lower lane may start.
    let lower = run.while_attack_queued["lower_lanes"].as_u64().expect("measured");
    assert!(
        lower <= 1,
        "{lower} txs of lower lanes simulated while the attack was queued: {}",
        line(&run)
    );
}
