//! `preempt bench`: the latency benchmarking harness. On a local anvil with the fixtures
//! deployed it measures, in one run: each fixture tx against the floor (bare revm) and the peer
//! (the node's `debug_traceCall`), the simulation's correctness against receipts, the full
//! pipeline's stages at a set rate, the race (attack sent → pause in the pool, same-block
//! wins), the highest sustained rate, and cold state. Writes JSON, an SVG, and a table.

mod anvil;
mod chart;
mod fixtures;
pub mod flood;
mod kinds;
mod measure;
mod naive;
mod race;
pub mod soak;
pub mod stats;
mod throughput;

use std::{
    fmt::Write as _,
    path::PathBuf,
    sync::Arc,
    time::{Instant, SystemTime},
};

use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use serde_json::{Value, json};
use thiserror::Error;

pub use anvil::AnvilProcess;
use chart::{CdfSeries, render_cdf_svg};
use stats::percentile;

use crate::{
    config::Config,
    devnet::{config_toml, deploy, dev_accounts},
    fork::{ForkCache, NodeClient},
};

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("set-up: {0}")]
    Setup(String),
    #[error("node: {0}")]
    Node(String),
    #[error("simulation: {0}")]
    Sim(String),
    #[error("{count} simulation(s) disagree with their receipts: {details}")]
    ReceiptMismatch { count: usize, details: String },
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// The warm state every in-process measurement runs on.
#[derive(Debug, Clone)]
pub(crate) struct SimSetup {
    pub(crate) config: Config,
    pub(crate) fork: Arc<ForkCache>,
    pub(crate) env: crate::simulate::SimBlock,
    pub(crate) chain_id: u64,
}

/// What to run; the defaults finish in a few minutes on 2 cores. Also the `bench` command's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// anvil binary (scripts/setup.sh installs it here).
    #[arg(long, default_value = ".tools/bin/anvil")]
    pub anvil: PathBuf,
    #[arg(long, default_value = "out/bench")]
    pub out: PathBuf,
    /// Floor / preempt samples per fixture tx.
    #[arg(long, default_value_t = 2_000)]
    pub samples: usize,
    /// `debug_traceCall` samples per fixture tx and transport.
    #[arg(long, default_value_t = 200)]
    pub peer_samples: usize,
    /// Attack → pause races.
    #[arg(long, default_value_t = 50)]
    pub races: usize,
    /// Races per kind (cold, steady, same block) for preempt, and for the naive bot (cold,
    /// steady), each on a fresh attacker contract.
    #[arg(long, default_value_t = 20)]
    pub kind_races: usize,
    /// Pipeline replay: frames per second.
    #[arg(long, default_value_t = 2_000)]
    pub rate: u64,
    /// Pipeline replay: how many frames.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Seconds per step of the throughput sweep.
    #[arg(long, default_value_t = 2.0)]
    pub sweep_secs: f64,
    /// Simulation workers for the replay and the sweep (as `preempt run`: cores - 1).
    #[arg(long, default_value_t = default_workers())]
    pub workers: usize,
    /// Cold-state runs per fixture tx.
    #[arg(long, default_value_t = 5)]
    pub cold_runs: usize,
    /// Run the soak instead: `preempt run` beside anvil for this many busy blocks
    /// (writes soak.json and soak.svg into --out).
    #[arg(long)]
    pub soak: Option<u64>,
    /// Soak: txs per block, each touching fresh state.
    #[arg(long, default_value_t = 240)]
    pub soak_txs: usize,
    /// Soak: the guard's `[fork] max_entries` (0: its default).
    #[arg(long, default_value_t = 0)]
    pub soak_max_entries: usize,
    /// Run only the flood (`preempt run` against bursts of txs with one attack in the middle):
    /// every size × worker count, `--flood-repeats` times each; writes flood.json into --out.
    #[arg(long)]
    pub flood: bool,
    /// Flood: burst sizes (txs).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub flood_sizes: Vec<usize>,
    /// Flood: `simulation.workers` values.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub flood_workers: Vec<usize>,
    /// Flood: runs per size and worker count.
    #[arg(long, default_value_t = 3)]
    pub flood_repeats: usize,
    /// Flood: funded senders, each a chain of nonces.
    #[arg(long, default_value_t = 100)]
    pub flood_senders: usize,
}

impl BenchOptions {
    /// The flood matrix these options ask for, `preempt` being this program.
    pub fn flood_options(&self) -> flood::FloodBenchOptions {
        flood::FloodBenchOptions {
            anvil: self.anvil.clone(),
            preempt: std::env::current_exe().unwrap_or_else(|_| "preempt".into()),
            out: self.out.clone(),
            sizes: self.flood_sizes.clone(),
            workers: self.flood_workers.clone(),
            repeats: self.flood_repeats,
            senders: self.flood_senders,
        }
    }
}

/// One core is left to ingest and the node connections.
fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get().saturating_sub(1)).unwrap_or(1).max(1)
}

fn p(samples: &[f64]) -> Value {
    json!({
        "p50": percentile(samples, 0.50).map(round2),
        "p99": percentile(samples, 0.99).map(round2),
        "n": samples.len(),
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(round2(a / b)),
        _ => None,
    }
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "date": date,
        "os": std::env::consts::OS,
    })
}

/// Runs every phase and writes `bench.json`, `bench.svg` and `bench.txt` into `opts.out`.
pub async fn run_bench(opts: &BenchOptions) -> Result<Value, BenchError> {
    let started = Instant::now();
    std::fs::create_dir_all(&opts.out)
        .map_err(|source| BenchError::Write { path: opts.out.display().to_string(), source })?;
    let node_proc = AnvilProcess::start(&opts.anvil)?;
    let http_url = node_proc.http_url();
    let deployment = deploy(&http_url).await.map_err(|e| BenchError::Setup(e.to_string()))?;
    let key_file = opts.out.join("guardian.key");
    // anvil's dev account 1: a public test key, the demo guardian.
    let guardian = &dev_accounts()[1];
    std::fs::write(&key_file, alloy::primitives::hex::encode_prefixed(guardian.signer.to_bytes()))
        .map_err(|source| BenchError::Write { path: key_file.display().to_string(), source })?;
    let config_text = config_toml(&deployment, &node_proc.ws_url(), "PREEMPT_GUARDIAN_KEY")
        .replace("\"env:PREEMPT_GUARDIAN_KEY\"", &format!("\"file:{}\"", key_file.display()));
    let config = Config::parse(&config_text, &opts.out.join("bench.toml"))
        .map_err(|e| BenchError::Setup(e.to_string()))?;

    let http = ProviderBuilder::new()
        .connect_http(http_url.parse().map_err(|e| BenchError::Setup(format!("{e}")))?)
        .erased();
    let chain_id = http.get_chain_id().await.map_err(|e| BenchError::Node(e.to_string()))?;
    let head = http.get_block_number().await.map_err(|e| BenchError::Node(e.to_string()))?;
    let header = http
        .get_block_by_number(head.into())
        .await
        .map_err(|e| BenchError::Node(e.to_string()))?
        .ok_or_else(|| BenchError::Node("no head block".into()))?
        .header;
    let timestamp = header.timestamp + 12;

    eprintln!("bench: collecting fixture txs and their receipts");
    let txs = fixtures::collect(&http, &http_url, &deployment, timestamp).await?;
    let env = txs
        .iter()
        .find_map(|t| t.mined_env)
        .ok_or_else(|| BenchError::Setup("no tx was mined".into()))?;

    // Warm fork at the deployed state; the pending block env is the block they were mined in.
    let node = NodeClient::connect("bench", &http_url)
        .await
        .map_err(|e| BenchError::Node(e.to_string()))?;
    let fork = Arc::new(ForkCache::new(head, Some(node.clone())));
    eprintln!("bench: floor vs preempt ({} samples per tx)", opts.samples);
    let setup = SimSetup { config: config.clone(), fork: Arc::clone(&fork), env, chain_id };
    let (setup2, txs2, samples) = (setup.clone(), txs.clone(), opts.samples);
    let mut per_tx = tokio::task::spawn_blocking(move || {
        let mut out = measure::floor_and_preempt(&setup2, &txs2, samples)?;
        measure::correctness(&setup2, &txs2, &mut out);
        Ok::<_, BenchError>(out)
    })
    .await
    .map_err(|e| BenchError::Sim(e.to_string()))??;

    eprintln!(
        "bench: peer debug_traceCall over HTTP and WebSocket ({} samples per tx)",
        opts.peer_samples
    );
    measure::peer(&http, &txs, opts.peer_samples, false, &mut per_tx).await?;
    let ws = ProviderBuilder::new()
        .connect_ws(WsConnect::new(node_proc.ws_url()))
        .await
        .map_err(|e| BenchError::Node(e.to_string()))?
        .erased();
    measure::peer(&ws, &txs, opts.peer_samples, true, &mut per_tx).await?;

    eprintln!("bench: cold state ({} runs per tx)", opts.cold_runs);
    {
        let (setup2, node2, txs2, runs) =
            (setup.clone(), node.clone(), txs.clone(), opts.cold_runs);
        let mut cold = per_tx.clone();
        cold = tokio::task::spawn_blocking(move || {
            measure::cold(&setup2, &node2, head, &txs2, runs, &mut cold).map(|()| cold)
        })
        .await
        .map_err(|e| BenchError::Sim(e.to_string()))??;
        per_tx = cold;
    }

    eprintln!(
        "bench: pipeline replay ({} frames at {}/s, {} workers)",
        opts.count, opts.rate, opts.workers
    );
    let mix = mix_of(&txs);
    let replay = {
        let (setup2, mix2, o) = (setup.clone(), mix.clone(), opts.clone());
        tokio::task::spawn_blocking(move || {
            throughput::replay(&setup2, &mix2, o.rate, o.count, o.workers)
        })
        .await
        .map_err(|e| BenchError::Sim(e.to_string()))?
    };

    eprintln!("bench: throughput sweep");
    let mut sweep = Vec::new();
    for rate in [2_000u64, 5_000, 10_000, 15_000, 20_000, 30_000, 40_000] {
        let count = (rate as f64 * opts.sweep_secs) as usize;
        let (setup2, mix2, workers) = (setup.clone(), mix.clone(), opts.workers);
        let step = tokio::task::spawn_blocking(move || {
            throughput::replay(&setup2, &mix2, rate, count, workers)
        })
        .await
        .map_err(|e| BenchError::Sim(e.to_string()))?;
        let p99 = percentile(&step.total_us, 0.99).unwrap_or(f64::MAX);
        let pass = p99 <= 1_000.0
            && step.dropped == 0
            && step.completed as u64 + step.filtered == step.sent as u64
            && step.achieved_rate >= rate as f64 * 0.95;
        eprintln!(
            "  {rate}/s: achieved {:.0}/s, p99 {p99:.0} µs, dropped {}, rss {:.0} MiB {}",
            step.achieved_rate,
            step.dropped,
            step.peak_rss_mb,
            if pass { "ok" } else { "over" }
        );
        sweep.push((step, pass));
        if !pass {
            break;
        }
    }

    eprintln!("bench: {} races (attack sent → pause in the pool → block)", opts.races);
    let attacks: Vec<_> = txs.iter().filter(|t| t.attack).cloned().collect();
    let races = race::races(
        &http,
        &node_proc.ws_url(),
        &config_text,
        guardian.address,
        &attacks,
        opts.races,
        &opts.out,
    )
    .await?;

    let kinds =
        race_kinds(opts, &http, &node_proc.ws_url(), &config_text, &deployment, chain_id).await?;

    eprintln!(
        "bench: flood (1,000 txs from {} senders, one attack in the middle)",
        opts.flood_senders
    );
    let flood = flood::run_flood(&flood::FloodOptions {
        anvil: opts.anvil.clone(),
        preempt: std::env::current_exe().unwrap_or_else(|_| "preempt".into()),
        dir: opts.out.join("flood"),
        txs: 1_000,
        workers: opts.workers,
        senders: opts.flood_senders,
        block_time: flood::SLOT,
        full_slot: false,
    })
    .await?;
    eprintln!("  {}", flood::line(&flood));

    let mut report = build_report(opts, &txs, &per_tx, &replay, &sweep, &races, started);
    add_race_kinds(&mut report, &kinds);
    report["summary"]["flood_attack"] = flood::bench_summary(&flood);
    report["flood_attack_run"] = serde_json::to_value(&flood).unwrap_or_default();
    write_outputs(opts, &report, &txs, &per_tx, &replay)?;
    if let Some(n) = report["summary"]["receipt_mismatches"].as_u64()
        && n > 0
    {
        return Err(BenchError::ReceiptMismatch {
            count: n as usize,
            details: report["receipt_mismatch_details"].to_string(),
        });
    }
    Ok(report)
}

/// Every race kind for preempt, then the naive bot on the cold and steady ones.
async fn race_kinds(
    opts: &BenchOptions,
    http: &alloy::providers::DynProvider,
    ws_url: &str,
    config_text: &str,
    deployment: &crate::devnet::Deployment,
    chain_id: u64,
) -> Result<Vec<(kinds::RaceKind, kinds::Defender, kinds::KindResult)>, BenchError> {
    use kinds::{Defender, RaceKind};
    let ws = ProviderBuilder::new()
        .connect_ws(WsConnect::new(ws_url))
        .await
        .map_err(|e| BenchError::Node(e.to_string()))?
        .erased();
    let guardian = &dev_accounts()[1];
    let setup = kinds::KindSetup {
        http,
        ws: &ws,
        ws_url,
        config_text,
        dir: &opts.out,
        vault: deployment.address("EthVault").map_err(|e| BenchError::Setup(e.to_string()))?,
        guardian,
        chain_id,
    };
    let mut out = Vec::new();
    for (kind, defender) in [
        (RaceKind::Cold, Defender::Preempt),
        (RaceKind::Steady, Defender::Preempt),
        (RaceKind::SameBlock, Defender::Preempt),
        (RaceKind::Cold, Defender::Naive),
        (RaceKind::Steady, Defender::Naive),
    ] {
        eprintln!("bench: {} × {} against {defender:?}", opts.kind_races, kind.name());
        let r = kinds::race_kind(&setup, kind, defender, opts.kind_races).await?;
        let pct = |v: &[f64], q| percentile(v, q).map(|x| format!("{x:.0}")).unwrap_or("-".into());
        eprintln!(
            "  wins {}/{}; intake p50 {} µs; share p50 {} p99 {} µs; acceptance p50 {} µs",
            r.wins,
            r.runs,
            pct(&r.intake_us, 0.5),
            pct(&r.share_us, 0.5),
            pct(&r.share_us, 0.99),
            pct(&r.accept_us, 0.5)
        );
        out.push((kind, defender, r));
    }
    Ok(out)
}

/// The race kinds' shares under `race_kinds`, and their headline numbers under `summary`.
fn add_race_kinds(
    report: &mut Value,
    kinds: &[(kinds::RaceKind, kinds::Defender, kinds::KindResult)],
) {
    use kinds::{Defender, RaceKind};
    let find = |k: RaceKind, d: Defender| {
        kinds.iter().find(|(kk, dd, _)| *kk == k && *dd == d).map(|(_, _, r)| r)
    };
    let pq = |v: &[f64]| json!({"p50": percentile(v, 0.5).map(round2), "p99": percentile(v, 0.99).map(round2)});
    let mut detail = serde_json::Map::new();
    for (kind, defender, r) in kinds {
        let key = match defender {
            Defender::Preempt => kind.name().to_string(),
            Defender::Naive => format!("naive_{}", kind.name()),
        };
        detail.insert(
            key,
            json!({
                "runs": r.runs,
                "wins": r.wins,
                "node_intake_us": p(&r.intake_us),
                "share_us": p(&r.share_us),
                "node_acceptance_us": p(&r.accept_us),
                "attack_to_pool_ms": p(&r.to_pool_ms),
                "trace_rtt_us": p(&r.trace_rtt_us),
                "state_waits": p(&r.state_waits),
                "failures": r.failures,
            }),
        );
    }
    report["race_kinds"] = Value::Object(detail);
    let empty = kinds::KindResult::default();
    let cold = find(RaceKind::Cold, Defender::Preempt).unwrap_or(&empty);
    let steady = find(RaceKind::Steady, Defender::Preempt).unwrap_or(&empty);
    let same = find(RaceKind::SameBlock, Defender::Preempt).unwrap_or(&empty);
    let naive_cold = find(RaceKind::Cold, Defender::Naive).unwrap_or(&empty);
    let naive_steady = find(RaceKind::Steady, Defender::Naive).unwrap_or(&empty);
    let trace: Vec<f64> = cold.trace_rtt_us.iter().chain(&steady.trace_rtt_us).copied().collect();
    let s = &mut report["summary"];
    s["race_cold_share_us"] = pq(&cold.share_us);
    s["race_steady_share_us"] = pq(&steady.share_us);
    s["race_same_block_share_us"] = pq(&same.share_us);
    s["naive_share_us"] =
        json!({"cold": pq(&naive_cold.share_us), "steady": pq(&naive_steady.share_us)});
    s["trace_rtt_us"] = pq(&trace);
    s["race_cold_ms"] = pq(&cold.to_pool_ms);
    s["race_steady_ms"] = pq(&steady.to_pool_ms);
    s["race_same_block_wins"] = json!({"wins": same.wins, "runs": same.runs});
    s["race_cold_share_vs_trace_rtt_p50"] =
        json!(ratio(percentile(&cold.share_us, 0.5), percentile(&trace, 0.5)));
    s["naive_vs_preempt_share_p50"] = json!({
        "cold": ratio(percentile(&naive_cold.share_us, 0.5), percentile(&cold.share_us, 0.5)),
        "steady": ratio(percentile(&naive_steady.share_us, 0.5), percentile(&steady.share_us, 0.5)),
    });
}

/// Every sample of one kind from the txs of one class.
fn class_samples(
    txs: &[fixtures::FixtureTx],
    per_tx: &[measure::TxSamples],
    class: &str,
    f: &dyn Fn(&measure::TxSamples) -> &Vec<f64>,
) -> Vec<f64> {
    txs.iter()
        .zip(per_tx)
        .filter(|(t, _)| t.class == class)
        .flat_map(|(_, s)| f(s).iter().copied())
        .collect()
}

/// JSON-RPC by name, for the harness's own calls to the node.
pub(crate) async fn rpc(
    provider: &alloy::providers::DynProvider,
    method: &'static str,
    params: Value,
) -> Result<Value, BenchError> {
    provider
        .raw_request::<_, Value>(method.into(), params)
        .await
        .map_err(|e| BenchError::Node(format!("{method}: {e}")))
}

/// Mostly benign, attacks sprinkled in: every benign tx, then one attack, in turn.
fn mix_of(txs: &[fixtures::FixtureTx]) -> Vec<fixtures::FixtureTx> {
    let benign: Vec<_> = txs.iter().filter(|t| !t.attack).cloned().collect();
    let attacks: Vec<_> = txs.iter().filter(|t| t.attack).cloned().collect();
    let mut mix = Vec::new();
    for (i, a) in attacks.iter().enumerate() {
        mix.extend(benign.iter().skip(i % 2).cloned());
        mix.push(a.clone());
    }
    mix
}

fn build_report(
    opts: &BenchOptions,
    txs: &[fixtures::FixtureTx],
    per_tx: &[measure::TxSamples],
    replay: &throughput::ReplayResult,
    sweep: &[(throughput::ReplayResult, bool)],
    races: &race::RaceResult,
    started: Instant,
) -> Value {
    let mut rows = Vec::new();
    let mut worst = 0.0f64;
    let mut mismatches = Vec::new();
    for (t, s) in txs.iter().zip(per_tx) {
        let f99 = percentile(&s.floor, 0.99);
        let p99 = percentile(&s.preempt, 0.99);
        if let Some(r) = ratio(p99, f99) {
            worst = worst.max(r);
        }
        let floor_margin = ratio(percentile(&s.peer_http, 0.50), percentile(&s.floor, 0.50));
        let preempt_margin = ratio(percentile(&s.peer_http, 0.50), percentile(&s.preempt, 0.50));
        match (t.receipt, s.simulated) {
            (Some(r), Some(sim)) if r != sim => {
                mismatches.push(json!({"name": t.name, "receipt": r, "simulated": sim}))
            }
            (Some(_), None) => mismatches.push(json!({"name": t.name, "simulated": "failed"})),
            _ => {}
        }
        rows.push(json!({
            "name": t.name,
            "class": t.class,
            "gas": t.receipt.map(|r| r.1),
            "floor_us": p(&s.floor),
            "preempt_us": p(&s.preempt),
            "peer_http_us": p(&s.peer_http),
            "peer_ws_us": p(&s.peer_ws),
            "cold_us": p(&s.cold),
            "cold_batched_us": p(&s.cold_batched),
            "cold_waits": p(&s.cold_waits),
            "cold_batched_waits": p(&s.cold_batched_waits),
            "cold_round_trips": s.cold_round_trips,
            "cold_fetch_rounds": s.cold_rounds,
            "ratios": {
                "preempt_vs_floor_p50": ratio(percentile(&s.preempt, 0.50), percentile(&s.floor, 0.50)),
                "preempt_vs_floor_p99": ratio(p99, f99),
                "peer_http_vs_preempt_p50": preempt_margin,
                "peer_http_vs_floor_p50": floor_margin,
                "peer_ws_vs_preempt_p50": ratio(percentile(&s.peer_ws, 0.50), percentile(&s.preempt, 0.50)),
            },
            "receipt": t.receipt.map(|(ok, gas)| json!({"success": ok, "gas": gas})),
            "simulated": s.simulated.map(|(ok, gas)| json!({"success": ok, "gas": gas})),
        }));
    }
    let mut classes = serde_json::Map::new();
    for class in txs.iter().map(|t| t.class).collect::<std::collections::BTreeSet<_>>() {
        let pick =
            |f: &dyn Fn(&measure::TxSamples) -> &Vec<f64>| class_samples(txs, per_tx, class, f);
        let (floor, ours, http, ws) = (
            pick(&|s| &s.floor),
            pick(&|s| &s.preempt),
            pick(&|s| &s.peer_http),
            pick(&|s| &s.peer_ws),
        );
        classes.insert(class.to_string(), json!({
            "floor_us": p(&floor), "preempt_us": p(&ours), "peer_http_us": p(&http), "peer_ws_us": p(&ws),
            "preempt_vs_floor_p99": ratio(percentile(&ours, 0.99), percentile(&floor, 0.99)),
            "peer_http_vs_preempt_p50": ratio(percentile(&http, 0.50), percentile(&ours, 0.50)),
        }));
    }
    // Outside the EVM run: decode + filter + detect + sign (queue wait and the node's answer excluded).
    let outside: Vec<f64> = (0..replay.decode_us.len())
        .map(|i| replay.decode_us[i] + replay.filter_us[i] + replay.detect_us[i])
        .collect();
    let sign_p99 = percentile(&replay.sign_us, 0.99).unwrap_or_default();
    let outside_p99 = percentile(&outside, 0.99).map(|v| round2(v + sign_p99));
    let best = sweep.iter().filter(|(_, pass)| *pass).map(|(s, _)| s).next_back();
    let cold_all: Vec<f64> = per_tx.iter().flat_map(|s| s.cold.iter().copied()).collect();
    let cold_trips: Vec<f64> = per_tx.iter().map(|s| s.cold_round_trips as f64).collect();
    let cold_batched: Vec<f64> =
        per_tx.iter().flat_map(|s| s.cold_batched.iter().copied()).collect();
    let cold_waits: Vec<f64> = per_tx.iter().flat_map(|s| s.cold_waits.iter().copied()).collect();
    let cold_batched_waits: Vec<f64> =
        per_tx.iter().flat_map(|s| s.cold_batched_waits.iter().copied()).collect();
    json!({
        "machine": machine(),
        "options": {
            "samples": opts.samples, "peer_samples": opts.peer_samples, "races": opts.races, "kind_races": opts.kind_races,
            "rate": opts.rate, "count": opts.count, "workers": opts.workers, "cold_runs": opts.cold_runs,
        },
        "per_tx": rows,
        "per_class": classes,
        "stages_us": {
            "decode": p(&replay.decode_us),
            "filter": p(&replay.filter_us),
            "queue_wait": p(&replay.queue_us),
            "simulate": p(&replay.simulate_us),
            "detect": p(&replay.detect_us),
            "plan_sign": p(&replay.sign_us),
            "hand_to_sockets_since_seen": p(&races.handed_us),
            "node_answer": p(&races.node_answer_us),
            "node_announces_attack_ms": p(&races.attack_announced_ms),
            "frame_to_signed_attack": p(&races.signed_us),
        },
        "replay": {
            "rate": replay.rate, "sent": replay.sent, "achieved_rate": round2(replay.achieved_rate),
            "completed": replay.completed, "filtered": replay.filtered, "dropped": replay.dropped, "attacks_answered": replay.attacks_answered,
            "total_us": p(&replay.total_us),
        },
        "sweep": sweep.iter().map(|(s, pass)| json!({
            "rate": s.rate, "achieved_rate": round2(s.achieved_rate), "total_us": p(&s.total_us),
            "dropped": s.dropped, "peak_rss_mb": round2(s.peak_rss_mb), "p99_under_1ms": pass,
        })).collect::<Vec<_>>(),
        "cold": {
            "us": p(&cold_all), "round_trips_per_tx": p(&cold_trips),
            "batched_only_us": p(&cold_batched),
            "waits_per_tx": p(&cold_waits), "batched_only_waits_per_tx": p(&cold_batched_waits),
        },
        "races": { "runs": races.runs, "wins": races.wins, "failures": races.failures },
        "receipt_mismatch_details": mismatches,
        "summary": {
            "sim_vs_floor_p99_max": round2(worst),
            "outside_evm_p99_us": outside_p99,
            "attack_to_pool_ms": p(&races.attack_to_pool_ms),
            "same_block_win_rate": if races.runs > 0 { round2(races.wins as f64 / races.runs as f64) } else { 0.0 },
            "throughput_tx_s": best.map(|s| round2(s.achieved_rate)),
            "peak_rss_mb": best.map(|s| round2(s.peak_rss_mb)),
            "receipt_mismatches": mismatches.len(),
            "cold_p50_us": percentile(&cold_all, 0.5).map(round2),
            "cold_p99_us": percentile(&cold_all, 0.99).map(round2),
            "cold_batched_only_p50_us": percentile(&cold_batched, 0.5).map(round2),
            "cold_batched_only_p99_us": percentile(&cold_batched, 0.99).map(round2),
            "wall_seconds": round2(started.elapsed().as_secs_f64()),
        },
    })
}

fn write_outputs(
    opts: &BenchOptions,
    report: &Value,
    txs: &[fixtures::FixtureTx],
    per_tx: &[measure::TxSamples],
    replay: &throughput::ReplayResult,
) -> Result<(), BenchError> {
    let write = |name: &str, text: String| {
        let path = opts.out.join(name);
        std::fs::write(&path, text)
            .map_err(|source| BenchError::Write { path: path.display().to_string(), source })
    };
    write("bench.json", serde_json::to_string_pretty(report).unwrap_or_default() + "\n")?;

    // Stages of the pipeline, then one panel per tx class: preempt vs floor vs peer.
    let mut series = Vec::new();
    for (name, samples) in [
        ("decode", &replay.decode_us),
        ("filter", &replay.filter_us),
        ("detect", &replay.detect_us),
        ("plan + sign", &replay.sign_us),
    ] {
        series.push(CdfSeries {
            panel: "pipeline stages outside the EVM".into(),
            label: name.into(),
            samples_us: samples.clone(),
        });
    }
    for class in txs.iter().map(|t| t.class).collect::<std::collections::BTreeSet<_>>() {
        let pick =
            |f: &dyn Fn(&measure::TxSamples) -> &Vec<f64>| class_samples(txs, per_tx, class, f);
        let panel = format!("simulate: {class}");
        series.push(CdfSeries {
            panel: panel.clone(),
            label: "preempt simulate+detect".into(),
            samples_us: pick(&|s| &s.preempt),
        });
        series.push(CdfSeries {
            panel: panel.clone(),
            label: "floor: bare revm transact".into(),
            samples_us: pick(&|s| &s.floor),
        });
        series.push(CdfSeries {
            panel: panel.clone(),
            label: "peer: debug_traceCall http".into(),
            samples_us: pick(&|s| &s.peer_http),
        });
        series.push(CdfSeries {
            panel,
            label: "peer: debug_traceCall ws".into(),
            samples_us: pick(&|s| &s.peer_ws),
        });
    }
    let m = &report["machine"];
    let subtitle = format!(
        "{} · {} cores · {}",
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["date"].as_str().unwrap_or("?")
    );
    write(
        "bench.svg",
        render_cdf_svg("preempt latency CDFs (same run, same warm state)", &subtitle, &series),
    )?;
    write("bench.txt", table(report))?;
    Ok(())
}

/// The short table printed at the end (and kept as bench.txt).
pub fn table(report: &Value) -> String {
    let mut out = String::new();
    let f = |v: &Value| v.as_f64().map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "{:<30} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}",
        "tx", "floor p50", "p99", "ours p50", "p99", "http p50", "ws p50", "x p99", "peer/us"
    );
    for r in report["per_tx"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<30} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}",
            r["name"].as_str().unwrap_or("?"),
            f(&r["floor_us"]["p50"]),
            f(&r["floor_us"]["p99"]),
            f(&r["preempt_us"]["p50"]),
            f(&r["preempt_us"]["p99"]),
            f(&r["peer_http_us"]["p50"]),
            f(&r["peer_ws_us"]["p50"]),
            f(&r["ratios"]["preempt_vs_floor_p99"]),
            f(&r["ratios"]["peer_http_vs_preempt_p50"]),
        );
    }
    let s = &report["summary"];
    let _ = writeln!(out);
    let _ = writeln!(out, "worst preempt/floor p99 ratio:     {}", f(&s["sim_vs_floor_p99_max"]));
    let _ = writeln!(out, "outside the EVM, p99:              {} µs", f(&s["outside_evm_p99_us"]));
    let _ = writeln!(
        out,
        "attack sent -> pause in pool:      p50 {} ms, p99 {} ms",
        f(&s["attack_to_pool_ms"]["p50"]),
        f(&s["attack_to_pool_ms"]["p99"])
    );
    // The race split into shares, cold first: it decides whether a real attack is stopped.
    if report["race_kinds"].is_object() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<24} {:>6} {:>13} {:>13} {:>13} {:>13} {:>13}",
            "race (µs, p50 / p99)",
            "wins",
            "node intake",
            "share p50",
            "share p99",
            "node accepts",
            "to pool ms"
        );
        for key in [
            "races_cold",
            "naive_races_cold",
            "races_steady",
            "naive_races_steady",
            "races_same_block",
        ] {
            let k = &report["race_kinds"][key];
            if !k.is_object() {
                continue;
            }
            let _ = writeln!(
                out,
                "{:<24} {:>6} {:>13} {:>13} {:>13} {:>13} {:>13}",
                key,
                format!("{}/{}", k["wins"], k["runs"]),
                f(&k["node_intake_us"]["p50"]),
                f(&k["share_us"]["p50"]),
                f(&k["share_us"]["p99"]),
                f(&k["node_acceptance_us"]["p50"]),
                f(&k["attack_to_pool_ms"]["p50"]),
            );
        }
        let _ = writeln!(
            out,
            "node's prestate trace round trip:  p50 {} µs, p99 {} µs (cold share / trace p50: {})",
            f(&s["trace_rtt_us"]["p50"]),
            f(&s["trace_rtt_us"]["p99"]),
            f(&s["race_cold_share_vs_trace_rtt_p50"]),
        );
        let _ = writeln!(
            out,
            "naive bot share / preempt's, p50:  cold {}, steady {}",
            f(&s["naive_vs_preempt_share_p50"]["cold"]),
            f(&s["naive_vs_preempt_share_p50"]["steady"]),
        );
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "same-block wins:                   {} ({} of {})",
        f(&s["same_block_win_rate"]),
        report["races"]["wins"],
        report["races"]["runs"]
    );
    if s["flood_attack"].is_object() {
        let _ = writeln!(
            out,
            "attack amid 1,000 txs:             pause in pool {} ms, same block {}, {} flood txs simulated before it",
            f(&s["flood_attack"]["ms"]),
            s["flood_attack"]["same_block"],
            s["flood_attack"]["simulated_before"]
        );
    }
    let _ = writeln!(
        out,
        "sustained rate with p99 <= 1 ms:   {} tx/s (peak RSS {} MiB)",
        f(&s["throughput_tx_s"]),
        f(&s["peak_rss_mb"])
    );
    let _ = writeln!(
        out,
        "cold state:                        p50 {} µs, p99 {} µs, node round trips per tx p50 {}",
        f(&s["cold_p50_us"]),
        f(&s["cold_p99_us"]),
        f(&report["cold"]["round_trips_per_tx"]["p50"])
    );
    let _ = writeln!(
        out,
        "cold, batched misses alone:        p50 {} µs, p99 {} µs; waits per tx p50 {} (with the trace {})",
        f(&s["cold_batched_only_p50_us"]),
        f(&s["cold_batched_only_p99_us"]),
        f(&report["cold"]["batched_only_waits_per_tx"]["p50"]),
        f(&report["cold"]["waits_per_tx"]["p50"]),
    );
    let _ = writeln!(out, "receipt mismatches:                {}", s["receipt_mismatches"]);
    let _ = writeln!(out, "wall time:                         {} s", f(&s["wall_seconds"]));
    out
}

/// Seconds since the epoch (for file names).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
