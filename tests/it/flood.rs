//! Attacks lost in a crowd (issue 9): a burst of 1,000 ordinary txs from 100 funded senders
//! with the fixture vault attack sent in the middle, through `preempt run` as a real process on
//! `anvil --no-mining`, with one and with two workers, three times each. Every run must end
//! with the pause ahead of the attack in the block that holds it, and the guard must have
//! received every tx the node's pool accepted. (10,000-tx bursts: `preempt bench --flood`.)

use std::time::Duration;

use preempt::bench::flood::{FloodOptions, FloodRun, line, run_flood};

use crate::support::tools_dir;

const TXS: usize = 1_000;
const REPEATS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attack_amid_1000_txs_is_paused_ahead_of_it_in_its_block_with_1_and_2_workers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut runs: Vec<FloodRun> = Vec::new();
    for workers in [1, 2] {
        for i in 0..REPEATS {
            let run = run_flood(&FloodOptions {
                anvil: tools_dir().join("bin/anvil"),
                preempt: env!("CARGO_BIN_EXE_preempt").into(),
                dir: dir.path().join(format!("w{workers}-{i}")),
                txs: TXS,
                workers,
                senders: 100,
                block_time: Duration::from_secs(12),
            })
            .await
            .unwrap_or_else(|e| panic!("flood run ({workers} workers, #{i}): {e}"));
            println!("{TXS} txs, {workers} worker(s), run {}: {}", i + 1, line(&run));
            runs.push(run);
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
        // Flood, attack and pause: each came to the guard once, by one path or the other.
        assert!(sub + rec >= TXS as u64 + 2, "{what}: every accepted tx reached the guard");
        assert_eq!(r.detection["source"], "mempool", "{what}");
        assert_eq!(r.guard_exit_code, Some(0), "{what}: clean exit on SIGTERM");
    }
}
