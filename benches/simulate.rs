//! Simulate+detect for each fixture tx beside bare revm `transact` (the floor), on the same warm
//! state in the same run. Starts its own anvil with the demo protocol (scripts/setup.sh first).
//!
//! Prints a p50/p99 table with the ratio to the floor and writes it to
//! `target/bench-simulate.json`; criterion's own report follows.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{sync::Arc, time::Instant};

use alloy::{
    consensus::{TxEnvelope, transaction::Recovered},
    primitives::B256,
    providers::{Provider, ProviderBuilder},
};
use criterion::Criterion;
use preempt::{
    detect::detect,
    devnet::Scenario,
    simulate::{Simulator, build_evm, tx_env},
};
use revm::{ExecuteEvm, database::CacheDB};
use std::hint::black_box;

struct FixtureTx {
    name: &'static str,
    hash: B256,
    tx: Recovered<TxEnvelope>,
}

/// Sends each scenario alone and takes its signed tx from the pool, then empties the pool.
async fn collect(devnet: &support::Devnet) -> Vec<FixtureTx> {
    let provider =
        ProviderBuilder::new().connect_http(devnet.anvil.http_url().parse().expect("url"));
    let mut out = Vec::new();
    for &scenario in Scenario::all() {
        let hash = devnet.send(scenario).await;
        let tx = provider.get_transaction_by_hash(hash).await.expect("rpc").expect("pending tx");
        out.push(FixtureTx { name: scenario.name(), hash, tx: tx.inner });
        devnet.drop_pending().await;
    }
    out
}

/// p50 and p99 in µs of nanosecond samples, by the harness's own percentile rule.
fn percentiles(ns: Vec<u64>) -> (f64, f64) {
    let us: Vec<f64> = ns.iter().map(|n| *n as f64 / 1000.0).collect();
    let at = |q| preempt::bench::stats::percentile(&us, q).unwrap_or_default();
    (at(0.50), at(0.99))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let devnet = runtime.block_on(support::Devnet::start());
    let txs = runtime.block_on(collect(&devnet));
    let (fork, block, chain_id) = runtime.block_on(devnet.fork_at_head());
    let config = devnet.config.clone();

    // Warm: every tx once, so both sides read only cached state.
    let mut simulator = Simulator::new(&config, Arc::clone(&fork), block, chain_id);
    simulator.warm().expect("warm protected state");
    for t in &txs {
        simulator.simulate(t.hash, &t.tx).expect("simulate");
    }
    let fetches_after_warm = fork.stats().round_trips();

    let quick = std::env::args().any(|a| a == "--test");
    let samples = if quick { 10 } else { 3_000 };
    let mut rows = Vec::new();
    println!(
        "{:<30} {:>11} {:>11} {:>13} {:>13} {:>8} {:>8}",
        "tx", "floor p50", "floor p99", "preempt p50", "preempt p99", "x p50", "x p99"
    );
    for t in &txs {
        let env = tx_env(&t.tx, 1 << 24);
        let mut floor = Vec::with_capacity(samples);
        let mut ours = Vec::with_capacity(samples);
        // Interleaved, so both sides see the same machine noise.
        for _ in 0..samples {
            let started = Instant::now();
            let mut evm = build_evm(CacheDB::new(&*fork), block, chain_id, ());
            black_box(evm.transact(env.clone()).expect("floor"));
            floor.push(started.elapsed().as_nanos() as u64);

            let started = Instant::now();
            let outcome = simulator.simulate(t.hash, &t.tx).expect("simulate");
            black_box(detect(&outcome, &config.protected));
            ours.push(started.elapsed().as_nanos() as u64);
        }
        let (f50, f99) = percentiles(floor);
        let (p50, p99) = percentiles(ours);
        println!(
            "{:<30} {f50:>9.1}µs {f99:>9.1}µs {p50:>11.1}µs {p99:>11.1}µs {:>8.2} {:>8.2}",
            t.name,
            p50 / f50,
            p99 / f99
        );
        rows.push(serde_json::json!({
            "name": t.name,
            "floor_us": {"p50": f50, "p99": f99},
            "preempt_us": {"p50": p50, "p99": p99},
            "ratio": {"p50": p50 / f50, "p99": p99 / f99},
        }));
    }
    assert_eq!(
        fork.stats().round_trips(),
        fetches_after_warm,
        "the measured runs read only warm state"
    );
    let report = serde_json::json!({ "samples": samples, "per_tx": rows });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-simulate.json");
    let _ = std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap_or_default());
    println!("wrote {}", path.display());

    if quick {
        return;
    }
    let mut c = Criterion::default().configure_from_args().sample_size(50);
    for t in &txs {
        let env = tx_env(&t.tx, 1 << 24);
        let mut group = c.benchmark_group(t.name);
        group.bench_function("floor", |b| {
            b.iter(|| {
                let mut evm = build_evm(CacheDB::new(&*fork), block, chain_id, ());
                black_box(evm.transact(env.clone()).expect("floor"))
            })
        });
        group.bench_function("preempt", |b| {
            b.iter(|| {
                let outcome = simulator.simulate(t.hash, &t.tx).expect("simulate");
                black_box(detect(&outcome, &config.protected))
            })
        });
        group.finish();
    }
    c.final_summary();
}
