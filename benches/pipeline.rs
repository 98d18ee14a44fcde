//! The hot path from a node's pending-tx frame to the signed pause bytes, stage by stage and
//! whole, on warm state. Starts its own anvil with the demo protocol (scripts/setup.sh first).
//!
//! Groups: `decode` (frame text → `PendingTx`, one per tx type), `filter` (`TxRouter::rank`),
//! `sign_pause` (`Responder::decide`, dry-run: signed on the spot, and picked from the ladder
//! `prepare` pre-signed), `frame_to_pause_bytes` (frame → decode → filter → simulate → detect →
//! decide → raw pause tx, per attack), `outside_evm` (the same without the simulation: detect
//! runs on a precomputed outcome) and `outside_evm_presigned` (the same with the ladder). After
//! criterion, a p50/p99 table of those, from 2,000 timed runs each, printed and written to
//! `target/bench-pipeline.json`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    consensus::{Transaction as _, TxType},
    primitives::{Address, Bytes},
    providers::{Provider, ProviderBuilder},
};
use criterion::Criterion;
use preempt::{
    config::{Config, ResponseMode},
    detect::detect,
    devnet::{Scenario, dev_accounts},
    ingest::{IngestStats, Lane, Lanes, Rank, SeenSet, TxRouter, decode_pending},
    respond::{AttackFees, Decision, HeadNonces, Pauser, Responder},
    simulate::{SimBlock, Simulator},
    types::{PendingTx, SimOutcome},
    worker::LiveState,
};
use serde_json::{Value, value::RawValue};

/// What the `p99` of `outside_evm` should stay under.
const OUTSIDE_EVM_P99_TARGET_US: f64 = 50.0;

/// The non-attack scenarios the `decode` and `filter` groups use.
const EXTRA: [Scenario; 3] = [Scenario::VaultDeposit, Scenario::PoolDeposit, Scenario::Swap1Pct];

/// One scenario's pending tx: the frame text a node sends, and the tx it decodes to.
struct Fixture {
    scenario: Scenario,
    frame: String,
    tx: PendingTx,
}

/// Sends each scenario alone, takes its pending tx as raw JSON text (`eth_getTransactionByHash`
/// returns the object `newPendingTransactions` pushes with full bodies), then empties the pool.
async fn collect(devnet: &support::Devnet, source: &Arc<str>) -> Vec<Fixture> {
    let provider =
        ProviderBuilder::new().connect_http(devnet.anvil.http_url().parse().expect("url"));
    let wanted = Scenario::all().iter().copied().filter(|s| s.is_attack() || EXTRA.contains(s));
    let mut out = Vec::new();
    for scenario in wanted {
        let hash = devnet.send(scenario).await;
        let raw: Box<RawValue> = provider
            .raw_request("eth_getTransactionByHash".into(), (hash,))
            .await
            .expect("eth_getTransactionByHash");
        let frame = raw.get().to_owned();
        assert_ne!(frame, "null", "{} is not pending", scenario.name());
        let value: Value = serde_json::from_str(&frame).expect("frame is JSON");
        assert!(value["blockHash"].is_null(), "{} was mined", scenario.name());
        let tx = decode_pending(&frame, source, Instant::now()).expect("frame decodes");
        assert_eq!(tx.hash, hash, "{}: decoded hash", scenario.name());
        out.push(Fixture { scenario, frame, tx });
        devnet.drop_pending().await;
    }
    out
}

/// The pipeline's stages outside the EVM, wired as `preempt run` wires them.
struct HotPath<'a> {
    config: &'a Config,
    router: &'a TxRouter<SimBlock>,
    source: Arc<str>,
    base_fee: u64,
}

impl HotPath<'_> {
    /// Frame text → JSON → `PendingTx` → filter; `None` when the filter skips it.
    fn ingest(&self, frame: &str) -> Option<PendingTx> {
        let tx = decode_pending(frame, &self.source, Instant::now()).expect("frame decodes");
        match self.router.rank(&tx) {
            Rank::Skip => None,
            Rank::Lane(..) | Rank::NeedsCode(_) => Some(tx),
        }
    }

    /// Detect on `outcome`, then decide for each contract with findings, as the worker does;
    /// the signed raw pause txs.
    fn respond(
        &self,
        responder: &mut Responder,
        tx: &PendingTx,
        outcome: &SimOutcome,
    ) -> Vec<Bytes> {
        let findings = detect(outcome, &self.config.protected);
        if findings.is_empty() {
            return Vec::new();
        }
        let fees = attack_fees(tx, self.base_fee);
        let mut contracts: Vec<Address> = findings.iter().map(|f| f.contract).collect();
        contracts.sort();
        contracts.dedup();
        contracts
            .iter()
            .filter_map(|c| self.config.protected(*c))
            .filter_map(|p| match responder.decide(p, Some((tx.hash, fees)), self.base_fee) {
                Decision::Pause { plan }
                | Decision::Replace { plan, .. }
                | Decision::DryRun { plan } => Some(plan.raw),
                Decision::Alert
                | Decision::Record
                | Decision::Skip { .. }
                | Decision::Failed { .. } => None,
            })
            .collect()
    }

    /// Group 4: everything, the simulation included.
    fn frame_to_pause(
        &self,
        simulator: &mut Simulator,
        responder: &mut Responder,
        frame: &str,
    ) -> Vec<Bytes> {
        let Some(tx) = self.ingest(frame) else { return Vec::new() };
        let outcome = simulator.simulate(tx.hash, &tx.tx).expect("simulate");
        self.respond(responder, &tx, &outcome)
    }

    /// Group 5: everything but the simulation (`outcome` was simulated beforehand).
    fn outside_evm(
        &self,
        responder: &mut Responder,
        frame: &str,
        outcome: &SimOutcome,
    ) -> Vec<Bytes> {
        let Some(tx) = self.ingest(frame) else { return Vec::new() };
        self.respond(responder, &tx, outcome)
    }
}

/// The attack's fee fields, as the worker reads them (a legacy tx tips what its gas price
/// leaves over the base fee).
fn attack_fees(tx: &PendingTx, base_fee: u64) -> AttackFees {
    let inner = tx.tx.inner();
    AttackFees {
        max_fee_per_gas: inner.max_fee_per_gas(),
        max_priority_fee_per_gas: inner
            .max_priority_fee_per_gas()
            .unwrap_or_else(|| inner.max_fee_per_gas().saturating_sub(u128::from(base_fee))),
    }
}

/// p50 and p99 in µs of nanosecond samples, by the harness's own percentile rule.
fn percentiles(ns: Vec<u64>) -> (f64, f64) {
    let us: Vec<f64> = ns.iter().map(|n| *n as f64 / 1000.0).collect();
    let at = |q| preempt::bench::stats::percentile(&us, q).unwrap_or_default();
    (at(0.50), at(0.99))
}

fn fixture(fixtures: &[Fixture], scenario: Scenario) -> &Fixture {
    fixtures.iter().find(|f| f.scenario == scenario).expect("fixture collected")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let source: Arc<str> = Arc::from("bench");
    let devnet = runtime.block_on(support::Devnet::start());
    let fixtures = runtime.block_on(collect(&devnet, &source));
    let (fork, block, chain_id) = runtime.block_on(devnet.fork_at_head());
    let config = devnet.config.clone();

    // The filter, wired as `preempt run` wires it (nothing is routed: only `rank` runs).
    let live = Arc::new(LiveState::new(Arc::clone(&fork), block));
    let (high_tx, _high_rx) = crossbeam_channel::bounded(1024);
    let (normal_tx, _normal_rx) = crossbeam_channel::bounded(1024);
    let router = TxRouter::new(
        chain_id,
        config.protected.iter().map(|p| p.address),
        Arc::clone(&live),
        Arc::new(SeenSet::default()),
        Arc::new(IngestStats::default()),
        Lanes { protected: high_tx.clone(), suspicious: high_tx, other: normal_tx, skipped: None },
    );

    // Dry-run: each decide signs and encodes a pause, but uses up no nonce and records nothing
    // in flight, so every run does the same work.
    let mut respond = config.respond.clone();
    respond.mode = ResponseMode::DryRun;
    let guardian = dev_accounts()[1].signer.clone();
    let mut responder =
        Responder::new(respond.clone(), Some(Pauser::new(guardian.clone(), chain_id, 0)));
    // The same, with the ladder `prepare` signs on each head (dry-run uses none of it up).
    let mut presigned = Responder::new(respond, Some(Pauser::new(guardian, chain_id, 0)));
    let head = HeadNonces { next_base_fee: block.base_fee, guardian_nonce: 0, safe_nonce: None };
    let ladder = presigned.prepare(&config.protected, head);
    assert_eq!(ladder.installed, config.protected.len(), "every contract has rungs: {ladder:?}");
    println!(
        "ladder: {} pauses pre-signed for {} contracts in {:.0}µs",
        ladder.signed, ladder.contracts, ladder.sign_us
    );

    let hot = HotPath {
        config: &config,
        router: &router,
        source: Arc::clone(&source),
        base_fee: block.base_fee,
    };

    // Fixtures are what the group names say they are.
    for (scenario, want) in [
        (Scenario::VaultDeposit, TxType::Legacy),
        (Scenario::PoolDeposit, TxType::Eip2930),
        (Scenario::Swap1Pct, TxType::Eip1559),
        (Scenario::VaultReentrancyAttack, TxType::Eip1559),
    ] {
        assert_eq!(fixture(&fixtures, scenario).tx.tx.inner().tx_type(), want, "{scenario}");
    }
    let protected_tx = &fixture(&fixtures, Scenario::VaultDeposit).tx;
    let other_tx = &fixture(&fixtures, Scenario::Swap1Pct).tx;
    assert!(matches!(router.rank(protected_tx), Rank::Lane(Lane::Protected, _)));
    assert!(!matches!(router.rank(other_tx), Rank::Lane(Lane::Protected, _) | Rank::Skip));

    // Warm: every tx simulated once, and each attack through the whole path once, which must
    // end in at least one signed pause.
    let mut simulator = Simulator::new(&config, Arc::clone(&fork), block, chain_id);
    simulator.warm().expect("warm protected state");
    for f in &fixtures {
        simulator.simulate(f.tx.hash, &f.tx.tx).expect("simulate");
    }
    let attacks: Vec<(&Fixture, SimOutcome)> = fixtures
        .iter()
        .filter(|f| f.scenario.is_attack())
        .map(|f| {
            let pauses = hot.frame_to_pause(&mut simulator, &mut responder, &f.frame);
            assert!(!pauses.is_empty(), "{}: no pause signed", f.scenario);
            let outcome = simulator.simulate(f.tx.hash, &f.tx.tx).expect("simulate");
            assert_eq!(
                hot.outside_evm(&mut responder, &f.frame, &outcome).len(),
                pauses.len(),
                "{}: same pauses without the simulation",
                f.scenario
            );
            assert_eq!(
                hot.outside_evm(&mut presigned, &f.frame, &outcome).len(),
                pauses.len(),
                "{}: same pauses from the ladder",
                f.scenario
            );
            (f, outcome)
        })
        .collect();
    let vault_attack = fixture(&fixtures, Scenario::VaultReentrancyAttack);
    let vault =
        config.protected.iter().find(|p| p.name == "EthVault").expect("EthVault is protected");
    let vault_fees = attack_fees(&vault_attack.tx, block.base_fee);
    assert!(
        matches!(
            responder.decide(vault, Some((vault_attack.tx.hash, vault_fees)), block.base_fee),
            Decision::DryRun { plan } if !plan.presigned
        ),
        "dry-run decide signs a pause"
    );
    // Every attack's pause comes from the ladder: the bench measures what it says.
    for (f, _) in &attacks {
        let fees = attack_fees(&f.tx, block.base_fee);
        let findings =
            detect(&simulator.simulate(f.tx.hash, &f.tx.tx).expect("simulate"), &config.protected);
        for c in findings.iter().map(|x| x.contract) {
            let p = config.protected(c).expect("protected");
            match presigned.decide(p, Some((f.tx.hash, fees)), block.base_fee) {
                Decision::DryRun { plan } => {
                    assert!(plan.presigned && plan.outbids_attack, "{}: {plan:?}", f.scenario)
                }
                other => panic!("{}: {other:?}", f.scenario),
            }
        }
    }
    let fetches_after_warm = fork.stats().round_trips();
    let warm_state = |stage: &str| {
        assert_eq!(
            fork.stats().round_trips(),
            fetches_after_warm,
            "{stage}: the measured runs read only warm state"
        );
    };

    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--test");
    let list = args.iter().any(|a| a == "--list");

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();

    let mut group = c.benchmark_group("decode");
    for (name, scenario) in [
        ("legacy/vault-deposit", Scenario::VaultDeposit),
        ("eip2930/pool-deposit", Scenario::PoolDeposit),
        ("eip1559/swap-1pct", Scenario::Swap1Pct),
        ("eip1559/vault-reentrancy-attack", Scenario::VaultReentrancyAttack),
    ] {
        let frame = fixture(&fixtures, scenario).frame.as_str();
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    decode_pending(black_box(frame), &source, Instant::now()).expect("decode"),
                )
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("filter");
    for (name, tx) in [("protected/vault-deposit", protected_tx), ("other/swap-1pct", other_tx)] {
        group.bench_function(name, |b| b.iter(|| black_box(router.rank(black_box(tx)))));
    }
    group.finish();

    let mut group = c.benchmark_group("sign_pause");
    group.bench_function("EthVault", |b| {
        b.iter(|| {
            black_box(responder.decide(
                vault,
                Some((vault_attack.tx.hash, black_box(vault_fees))),
                block.base_fee,
            ))
        })
    });
    group.bench_function("EthVault-presigned", |b| {
        b.iter(|| {
            black_box(presigned.decide(
                vault,
                Some((vault_attack.tx.hash, black_box(vault_fees))),
                block.base_fee,
            ))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("frame_to_pause_bytes");
    for (f, _) in &attacks {
        group.bench_function(f.scenario.name(), |b| {
            b.iter(|| black_box(hot.frame_to_pause(&mut simulator, &mut responder, &f.frame)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("outside_evm");
    for (f, outcome) in &attacks {
        group.bench_function(f.scenario.name(), |b| {
            b.iter(|| black_box(hot.outside_evm(&mut responder, &f.frame, outcome)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("outside_evm_presigned");
    for (f, outcome) in &attacks {
        group.bench_function(f.scenario.name(), |b| {
            b.iter(|| black_box(hot.outside_evm(&mut presigned, &f.frame, outcome)))
        });
    }
    group.finish();
    c.final_summary();
    warm_state("criterion");
    if list {
        return;
    }

    // Percentiles, which criterion does not report: both paths interleaved per iteration, so
    // they see the same machine noise.
    let samples = if quick { 5 } else { 2_000 };
    let mut rows = Vec::new();
    println!(
        "\n{:<30} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14} {:>7}  findings",
        "attack (µs)",
        "frame→pause p50",
        "p99",
        "outside-EVM p50",
        "p99",
        "presigned p50",
        "p99",
        "pauses"
    );
    for (f, outcome) in &attacks {
        let mut whole = Vec::with_capacity(samples);
        let mut outside = Vec::with_capacity(samples);
        let mut outside_presigned = Vec::with_capacity(samples);
        let mut pauses = 0;
        for _ in 0..samples {
            let started = Instant::now();
            let out = black_box(hot.frame_to_pause(&mut simulator, &mut responder, &f.frame));
            whole.push(started.elapsed().as_nanos() as u64);
            pauses = out.len();

            let started = Instant::now();
            black_box(hot.outside_evm(&mut responder, &f.frame, outcome));
            outside.push(started.elapsed().as_nanos() as u64);

            let started = Instant::now();
            black_box(hot.outside_evm(&mut presigned, &f.frame, outcome));
            outside_presigned.push(started.elapsed().as_nanos() as u64);
        }
        let (w50, w99) = percentiles(whole);
        let (o50, o99) = percentiles(outside);
        let (l50, l99) = percentiles(outside_presigned);
        let findings: Vec<String> = detect(outcome, &config.protected)
            .iter()
            .map(|x| format!("{}:{}", x.contract_name, x.rule))
            .collect();
        println!(
            "{:<30} {w50:>15.1} {w99:>14.1} {o50:>15.1} {o99:>14.1} {l50:>14.1} {l99:>14.1} \
             {pauses:>7}  {}",
            f.scenario.name(),
            findings.join(", ")
        );
        rows.push(serde_json::json!({
            "name": f.scenario.name(),
            "frame_bytes": f.frame.len(),
            "pauses": pauses,
            "findings": findings,
            "frame_to_pause_bytes_us": {"p50": w50, "p99": w99},
            "outside_evm_us": {"p50": o50, "p99": o99},
            "outside_evm_within_target": o99 <= OUTSIDE_EVM_P99_TARGET_US,
            "outside_evm_presigned_us": {"p50": l50, "p99": l99},
            "outside_evm_presigned_within_target": l99 <= OUTSIDE_EVM_P99_TARGET_US,
        }));
    }
    warm_state("percentiles");
    let worst_of =
        |key: &str| rows.iter().filter_map(|r| r[key]["p99"].as_f64()).fold(0.0_f64, f64::max);
    let (worst, worst_presigned) =
        (worst_of("outside_evm_us"), worst_of("outside_evm_presigned_us"));
    println!(
        "outside-EVM p99, worst attack: {worst:.1}µs signed on the spot, {worst_presigned:.1}µs \
         from the ladder (target ≤ {OUTSIDE_EVM_P99_TARGET_US}µs){}",
        if quick { "; --test: a handful of runs only" } else { "" }
    );
    let report = serde_json::json!({
        "samples": samples,
        "quick": quick,
        "outside_evm_p99_target_us": OUTSIDE_EVM_P99_TARGET_US,
        "outside_evm_p99_worst_us": worst,
        "outside_evm_presigned_p99_worst_us": worst_presigned,
        "ladder": {"contracts": ladder.contracts, "signed": ladder.signed, "sign_us": ladder.sign_us},
        "per_attack": rows,
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-pipeline.json");
    let _ = std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap_or_default());
    println!("wrote {}", path.display());
}
