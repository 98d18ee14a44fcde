//! The flood: a burst of ordinary txs from many funded senders (ETH to fresh addresses, token
//! transfers, swaps, vault deposits; each sender a chain of nonces) with the fixture vault
//! attack — a plain EIP-1559 call of the attacker's own contract, no access list — sent in
//! the middle, through `preempt run` as a real process on `anvil --no-mining`. Measures the
//! attack → pause-in-pool time, judges the block holding the attack, and reads from the guard's
//! log and incident record how many flood txs were simulated before the attack and how each tx
//! reached the guard (subscription or pool reconciliation) against what the node accepted.

use std::{
    collections::{HashMap, HashSet},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    network::TxSignerSync,
    primitives::{Address, B256, Bytes, TxKind, U256, keccak256},
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::{AnvilProcess, BenchError, stats::percentile};
use crate::devnet::{Deployment, config_toml, deploy, dev_accounts};

alloy::sol! {
    interface IFloodToken {
        function mint(address to, uint256 amount) external;
        function approve(address spender, uint256 amount) external returns (bool);
        function transfer(address to, uint256 amount) external returns (bool);
    }
    interface IFloodRouter {
        function swapExactTokensForTokens(
            uint256 amountIn,
            uint256 amountOutMin,
            address[] calldata path,
            address to,
            uint256 deadline
        ) external returns (uint256[] memory amounts);
    }
    interface IFloodVault {
        function deposit() external payable;
    }
}

const GWEI: u128 = 1_000_000_000;
/// The attack's tip, as every fixture tx pays; every flood tx pays less on both fee fields, so
/// the attack is in the first block mined (a real attacker pays for the next block).
const ATTACK_TIP: u128 = GWEI;
/// Flood txs per JSON-RPC batch, and batches in flight at once.
const BATCH: usize = 100;
const SENDERS_IN_FLIGHT: usize = 4;
/// One mainnet slot: the attack's pause must be in the pool this soon after the attack, or the
/// block is mined without it.
pub const SLOT: Duration = Duration::from_secs(12);
/// The block comes at least this long after the burst's last tx was accepted (two pool
/// reconciliation periods): the counters then say what reached the guard before the block,
/// not what the last milliseconds of the burst raced against `evm_mine`.
const SETTLE: Duration = Duration::from_millis(400);

/// One flood run.
#[derive(Debug, Clone)]
pub struct FloodOptions {
    pub anvil: PathBuf,
    pub preempt: PathBuf,
    /// The run's config, incident record and the guard's log.
    pub dir: PathBuf,
    pub txs: usize,
    pub workers: usize,
    pub senders: usize,
    /// How long after the attack the block is mined whether the pause is there or not.
    pub block_time: Duration,
    /// Mine only when `block_time` is over, as a chain with fixed slots does, instead of as
    /// soon as the pause is in the pool: what else the guard simulates within the slot.
    pub full_slot: bool,
}

/// What one run measured (one entry of `flood.json`).
#[derive(Debug, Clone, Serialize)]
pub struct FloodRun {
    pub txs: usize,
    pub workers: usize,
    pub senders: usize,
    /// Flood txs the node answered with a hash (`eth_sendRawTransaction`).
    pub sent: usize,
    pub refused: usize,
    pub first_refusal: Option<String>,
    /// Flood txs sent before the attack.
    pub sent_before_attack: usize,
    /// The whole burst, first flood tx to last, ms.
    pub burst_ms: f64,
    pub attack: B256,
    /// Attack sent → the guardian's pause in the node's pool, ms (None: no pause in time).
    pub attack_to_pause_ms: Option<f64>,
    /// The block holding the attack holds the pause ahead of it, and the attack reverted.
    pub same_block: bool,
    /// The pause landed in a block before the attack's, and the attack reverted.
    pub pause_in_earlier_block: bool,
    pub attack_reverted: Option<bool>,
    pub attack_block: Option<u64>,
    pub pause_block: Option<u64>,
    pub blocks_mined: u64,
    /// Flood txs with a `simulated` line before the attack's own.
    pub simulated_before: Option<u64>,
    /// Flood txs simulated before the guard took the first block mined.
    pub flood_simulated_before_block: u64,
    /// Per kind of flood tx: how many were sent and how many simulated before the block
    /// (a deposit names the protected EthVault; an ETH transfer to a fresh address runs no
    /// code and is not simulated by design).
    pub by_kind: Value,
    /// Flood txs simulated while the attack waited in its queue (between being queued and
    /// picked), as deposits (the attack's own lane) and others.
    pub while_attack_queued: Value,
    /// The node's pool before the first block: `txpool_status` and the flood's share of it.
    pub pool_pending: u64,
    pub pool_queued: u64,
    pub pool_flood: u64,
    /// How the guard first got each tx (flood, attack and pause together), and its other
    /// ingest and worker counters, from the `stopped` line.
    pub by_subscription: Option<u64>,
    pub by_reconciliation: Option<u64>,
    pub ingest: Value,
    pub workers_counts: Value,
    /// The attack's detection record: where it came from and its stage times (µs since seen).
    pub detection: Value,
    pub guard_exit_code: Option<i32>,
    pub guard_exit_ms: f64,
    pub wall_s: f64,
    /// The machine's 1-minute load average when the burst began (the cores are shared).
    pub load_1m: Option<f64>,
}

/// Runs one flood; set-up failures are errors, a missed attack is a result.
pub async fn run_flood(opts: &FloodOptions) -> Result<FloodRun, BenchError> {
    let wall = Instant::now();
    std::fs::create_dir_all(&opts.dir)
        .map_err(|source| BenchError::Write { path: opts.dir.display().to_string(), source })?;
    let anvil = AnvilProcess::start(&opts.anvil)?;
    let node = Rpc::new(&anvil.http_url());
    let deployment =
        deploy(&anvil.http_url()).await.map_err(|e| BenchError::Setup(e.to_string()))?;
    let chain_id = deployment.chain_id;
    let senders: Vec<PrivateKeySigner> =
        (0..opts.senders.max(1)).map(|_| PrivateKeySigner::random()).collect();
    fund(&node, &deployment, &senders).await?;

    let guardian = dev_accounts()[1].address;
    let guardian_nonce = node.nonce(guardian).await?;
    let base_fee = node.base_fee().await?;
    let attack = sign_attack(&node, &deployment, base_fee).await?;
    let flood = sign_flood(&deployment, &senders, opts.txs, base_fee, chain_id)?;
    let kinds: HashMap<B256, Kind> = flood.iter().map(|t| (t.hash, t.kind)).collect();

    let config = opts.dir.join("flood.toml");
    let incidents = opts.dir.join("flood-incidents.jsonl");
    let _ = std::fs::remove_file(&incidents);
    let text = format!(
        "{}\n[simulation]\nworkers = {}\n\n[incidents]\npath = \"{}\"\n",
        config_toml(&deployment, &anvil.ws_url(), "PREEMPT_GUARDIAN_KEY"),
        opts.workers,
        incidents.display()
    );
    std::fs::write(&config, text)
        .map_err(|source| BenchError::Write { path: config.display().to_string(), source })?;
    let mut guard = GuardProcess::start(&opts.preempt, &config)?;
    guard.wait_ready(Duration::from_secs(60))?;

    // The burst: half the flood, the attack, the other half while watching for the pause.
    let raws: Vec<Bytes> = flood.iter().map(|t| t.raw.clone()).collect();
    let half = raws.len() / 2;
    let load_1m = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()));
    let burst = Instant::now();
    let mut sends = send_flood(&node, &raws[..half]).await;
    let sent_at = Instant::now();
    let attack_hash = node.send_raw(&attack.1).await?;
    let rest = {
        let (node, rest) = (node.clone(), raws[half..].to_vec());
        tokio::spawn(async move { send_flood(&node, &rest).await })
    };
    let pause_seen = wait_pause(&node, guardian, guardian_nonce, sent_at, opts.block_time).await;
    sends.merge(rest.await.map_err(|e| BenchError::Setup(format!("flood sender: {e}")))?);
    let burst_ms = ms(burst.elapsed());
    // The pause may have come after the burst ended: the slot is measured from the attack.
    let pause_seen = match pause_seen {
        Some(d) => Some(d),
        None => wait_pause(&node, guardian, guardian_nonce, sent_at, opts.block_time).await,
    };
    if opts.full_slot {
        tokio::time::sleep_until((sent_at + opts.block_time).into()).await;
    }
    tokio::time::sleep(SETTLE).await;

    let status = node.call("txpool_status", json!([])).await?;
    let pool_pending = quantity(&status["pending"]);
    let pool_queued = quantity(&status["queued"]);
    let pauses = node.nonce(guardian).await?.saturating_sub(guardian_nonce);
    let pool_flood = (pool_pending + pool_queued).saturating_sub(1 + pauses);

    let judged = mine_until_mined(&node, attack_hash, guardian, opts.txs).await?;

    // The guard's record of the block, then its counters at shutdown.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) && !has_outcome(&incidents) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (exit_code, exit) = guard.stop(Duration::from_secs(10));
    let lines = guard.lines();
    let detection = detection_of(&incidents, attack_hash);
    let log = read_log(&lines, attack_hash, &kinds, &detection["times_us"]);

    let run = FloodRun {
        txs: opts.txs,
        workers: opts.workers,
        senders: senders.len(),
        sent: sends.accepted,
        refused: sends.refused,
        first_refusal: sends.first_refusal,
        sent_before_attack: half,
        burst_ms,
        attack: attack_hash,
        attack_to_pause_ms: pause_seen.map(ms),
        same_block: judged.same_block,
        pause_in_earlier_block: judged.earlier,
        attack_reverted: judged.reverted,
        attack_block: judged.attack_block,
        pause_block: judged.pause_block,
        blocks_mined: judged.blocks,
        simulated_before: log.simulated_before,
        flood_simulated_before_block: log.before_block.values().sum(),
        by_kind: by_kind(&flood, &log.before_block),
        while_attack_queued: json!({
            "deposit": log.while_queued.get(&Kind::Deposit).copied().unwrap_or(0),
            "other": log.while_queued.iter().filter(|(k, _)| **k != Kind::Deposit).map(|(_, n)| n).sum::<u64>(),
            "attack_lane": log.attack_lane,
            "lower_lanes": log.lower_lanes_while_queued,
        }),
        pool_pending,
        pool_queued,
        pool_flood,
        by_subscription: log.ingest.as_deref().and_then(|s| debug_number(s, "from_subscription")),
        by_reconciliation: log.ingest.as_deref().and_then(|s| debug_number(s, "recovered")),
        ingest: log.ingest.as_deref().map(debug_numbers).unwrap_or(Value::Null),
        workers_counts: log.workers.as_deref().map(debug_numbers).unwrap_or(Value::Null),
        detection,
        guard_exit_code: exit_code,
        guard_exit_ms: ms(exit),
        wall_s: (wall.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        load_1m,
    };
    // Kept beside the config and the incident record, for whoever looks into a run.
    let _ = std::fs::write(opts.dir.join("guard.log"), lines.join("\n") + "\n");
    Ok(run)
}

/// What `preempt bench --flood` runs: every size × workers, `repeats` times each.
#[derive(Debug, Clone)]
pub struct FloodBenchOptions {
    pub anvil: PathBuf,
    pub preempt: PathBuf,
    pub out: PathBuf,
    pub sizes: Vec<usize>,
    pub workers: Vec<usize>,
    pub repeats: usize,
    pub senders: usize,
}

/// Runs the flood matrix and writes every run, with a summary per size and worker count, to
/// `flood.json`.
pub async fn run_flood_bench(opts: &FloodBenchOptions) -> Result<Value, BenchError> {
    let started = Instant::now();
    let mut runs = Vec::new();
    for &txs in &opts.sizes {
        for &workers in &opts.workers {
            for i in 0..opts.repeats {
                let run = run_flood(&FloodOptions {
                    anvil: opts.anvil.clone(),
                    preempt: opts.preempt.clone(),
                    dir: opts.out.join("flood").join(format!("{txs}-w{workers}-{}", i + 1)),
                    txs,
                    workers,
                    senders: opts.senders,
                    block_time: SLOT,
                    full_slot: false,
                })
                .await?;
                eprintln!("flood {txs} txs, {workers} worker(s), run {}: {}", i + 1, line(&run));
                runs.push(run);
            }
        }
    }
    let mut groups = Vec::new();
    for &txs in &opts.sizes {
        for &workers in &opts.workers {
            let of: Vec<&FloodRun> =
                runs.iter().filter(|r| r.txs == txs && r.workers == workers).collect();
            groups.push(summary(txs, workers, &of));
        }
    }
    let report = json!({
        "machine": super::machine(),
        "options": {
            "sizes": opts.sizes, "workers": opts.workers, "repeats": opts.repeats,
            "senders": opts.senders, "block_time_s": SLOT.as_secs(),
        },
        "summary": groups,
        "runs": runs,
        "wall_seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    });
    let path = opts.out.join("flood.json");
    std::fs::create_dir_all(&opts.out)
        .map_err(|source| BenchError::Write { path: opts.out.display().to_string(), source })?;
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap_or_default() + "\n")
        .map_err(|source| BenchError::Write { path: path.display().to_string(), source })?;
    Ok(report)
}

/// One line per run, for a person.
pub fn line(r: &FloodRun) -> String {
    format!(
        "attack → pause in pool {} ms, same block {}{}, simulated before {} (while it was queued: {}), flood simulated before the block {} (deposits {} of {}), pool accepted {} (flood {}), by subscription {}, by reconciliation {}, exit {:?} in {:.0} ms",
        r.attack_to_pause_ms.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into()),
        r.same_block,
        if r.pause_in_earlier_block { " (pause in an earlier block)" } else { "" },
        r.simulated_before.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
        r.while_attack_queued,
        r.flood_simulated_before_block,
        r.by_kind["deposit"]["simulated_before_block"],
        r.by_kind["deposit"]["sent"],
        r.pool_pending + r.pool_queued,
        r.pool_flood,
        r.by_subscription.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
        r.by_reconciliation.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
        r.guard_exit_code,
        r.guard_exit_ms,
    )
}

/// The `summary.flood_attack` entry of bench.json for one representative run.
pub fn bench_summary(run: &FloodRun) -> Value {
    json!({
        "ms": run.attack_to_pause_ms.map(round2),
        "same_block": run.same_block,
        "simulated_before": run.simulated_before,
    })
}

fn summary(txs: usize, workers: usize, runs: &[&FloodRun]) -> Value {
    let ms: Vec<f64> = runs.iter().filter_map(|r| r.attack_to_pause_ms).collect();
    let before: Vec<f64> =
        runs.iter().filter_map(|r| r.simulated_before.map(|v| v as f64)).collect();
    json!({
        "txs": txs,
        "workers": workers,
        "runs": runs.len(),
        "same_block": runs.iter().filter(|r| r.same_block).count(),
        "pause_in_earlier_block": runs.iter().filter(|r| r.pause_in_earlier_block).count(),
        "attack_to_pause_ms": {
            "p50": percentile(&ms, 0.5).map(round2),
            "max": ms.iter().copied().reduce(f64::max).map(round2),
        },
        "simulated_before": {
            "p50": percentile(&before, 0.5),
            "max": before.iter().copied().reduce(f64::max),
        },
        "ordinary_simulated_while_attack_queued": runs.iter().map(|r| r.while_attack_queued["other"].clone()).collect::<Vec<_>>(),
        "lower_lanes_simulated_while_attack_queued": runs.iter().map(|r| r.while_attack_queued["lower_lanes"].clone()).collect::<Vec<_>>(),
        "attack_lane": runs.iter().map(|r| r.while_attack_queued["attack_lane"].clone()).collect::<Vec<_>>(),
        "deposits_simulated_before_block": runs.iter().map(|r| r.by_kind["deposit"]["simulated_before_block"].clone()).collect::<Vec<_>>(),
        "by_subscription": runs.iter().map(|r| r.by_subscription).collect::<Vec<_>>(),
        "by_reconciliation": runs.iter().map(|r| r.by_reconciliation).collect::<Vec<_>>(),
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn ms(d: Duration) -> f64 {
    round2(d.as_secs_f64() * 1e3)
}

fn quantity(v: &Value) -> u64 {
    match v {
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_default(),
        v => v.as_u64().unwrap_or_default(),
    }
}

/// JSON-RPC over HTTP keep-alive, single calls and batches.
#[derive(Debug, Clone)]
struct Rpc {
    url: String,
    http: reqwest::Client,
}

impl Rpc {
    fn new(url: &str) -> Self {
        Self { url: url.to_string(), http: reqwest::Client::new() }
    }

    async fn post(&self, body: String) -> Result<Value, BenchError> {
        let text = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| BenchError::Node(format!("{}: {e}", self.url)))?
            .text()
            .await
            .map_err(|e| BenchError::Node(format!("{}: {e}", self.url)))?;
        serde_json::from_str(&text).map_err(|e| BenchError::Node(format!("not JSON ({e}): {text}")))
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, BenchError> {
        let v = self
            .post(
                json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(),
            )
            .await?;
        if let Some(e) = v.get("error") {
            return Err(BenchError::Node(format!("{method}: {e}")));
        }
        Ok(v["result"].clone())
    }

    /// Each request's answer, in order: its result or its error.
    async fn batch(
        &self,
        requests: Vec<(&str, Value)>,
    ) -> Result<Vec<Result<Value, Value>>, BenchError> {
        let n = requests.len();
        let body: Vec<Value> = requests
            .into_iter()
            .enumerate()
            .map(|(i, (m, p))| json!({"jsonrpc": "2.0", "id": i, "method": m, "params": p}))
            .collect();
        let answers = self.post(Value::Array(body).to_string()).await?;
        let mut out: Vec<Result<Value, Value>> = vec![Err(json!("no answer")); n];
        for a in answers.as_array().into_iter().flatten() {
            let Some(i) = a["id"].as_u64().map(|i| i as usize).filter(|i| *i < n) else { continue };
            out[i] = match a.get("error") {
                Some(e) => Err(e.clone()),
                None => Ok(a["result"].clone()),
            };
        }
        Ok(out)
    }

    async fn nonce(&self, a: Address) -> Result<u64, BenchError> {
        Ok(quantity(&self.call("eth_getTransactionCount", json!([a, "pending"])).await?))
    }

    async fn base_fee(&self) -> Result<u128, BenchError> {
        let block = self.call("eth_getBlockByNumber", json!(["latest", false])).await?;
        block["baseFeePerGas"]
            .as_str()
            .and_then(|h| u128::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            .ok_or_else(|| BenchError::Node(format!("no base fee in {block}")))
    }

    async fn send_raw(&self, raw: &Bytes) -> Result<B256, BenchError> {
        let hash = self.call("eth_sendRawTransaction", json!([raw])).await?;
        serde_json::from_value(hash).map_err(|e| BenchError::Node(format!("tx hash: {e}")))
    }

    async fn mine(&self) -> Result<(), BenchError> {
        self.call("evm_mine", json!([])).await.map(|_| ())
    }
}

fn sign(signer: &PrivateKeySigner, mut tx: TxEip1559) -> Result<(B256, Bytes), BenchError> {
    let sig = signer
        .sign_transaction_sync(&mut tx)
        .map_err(|e| BenchError::Setup(format!("sign: {e}")))?;
    let envelope: TxEnvelope = tx.into_signed(sig).into();
    Ok((*envelope.tx_hash(), envelope.encoded_2718().into()))
}

fn call_tx(
    chain_id: u64,
    nonce: u64,
    to: Address,
    value: U256,
    input: Vec<u8>,
    gas: u64,
) -> TxEip1559 {
    TxEip1559 {
        chain_id,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: 0,
        max_priority_fee_per_gas: 0,
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input: input.into(),
    }
}

fn address(d: &Deployment, name: &str) -> Result<Address, BenchError> {
    d.address(name).map_err(|e| BenchError::Setup(e.to_string()))
}

/// Each sender gets 1,000 ETH and 1,000,000 DUSD and approves the router, in mined blocks.
async fn fund(node: &Rpc, d: &Deployment, senders: &[PrivateKeySigner]) -> Result<(), BenchError> {
    let (dusd, router) = (address(d, "DUSD")?, address(d, "UniswapV2Router02")?);
    let balances = senders
        .iter()
        .map(|s| ("anvil_setBalance", json!([s.address(), "0x3635C9ADC5DEA00000"])))
        .collect();
    if let Some(Err(e)) = node.batch(balances).await?.into_iter().find(Result::is_err) {
        return Err(BenchError::Node(format!("anvil_setBalance: {e}")));
    }
    let deployer = dev_accounts()[0].signer.clone();
    let mut nonce = node.nonce(deployer.address()).await?;
    let base_fee = node.base_fee().await?;
    let fees = |mut tx: TxEip1559| {
        tx.max_fee_per_gas = base_fee * 2 + GWEI;
        tx.max_priority_fee_per_gas = GWEI;
        tx
    };
    let million = U256::from(10u64).pow(U256::from(24));
    let mut raws = Vec::new();
    for s in senders {
        let mint = IFloodToken::mintCall { to: s.address(), amount: million }.abi_encode();
        raws.push(sign(
            &deployer,
            fees(call_tx(d.chain_id, nonce, dusd, U256::ZERO, mint, 120_000)),
        )?);
        nonce += 1;
        let approve = IFloodToken::approveCall { spender: router, amount: U256::MAX }.abi_encode();
        raws.push(sign(s, fees(call_tx(d.chain_id, 0, dusd, U256::ZERO, approve, 80_000)))?);
    }
    let sent = send_flood(node, &raws.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()).await;
    if sent.refused > 0 {
        return Err(BenchError::Setup(format!(
            "funding: {} txs refused: {}",
            sent.refused,
            sent.first_refusal.unwrap_or_default()
        )));
    }
    for _ in 0..16 {
        node.mine().await?;
        if quantity(&node.call("txpool_status", json!([])).await?["pending"]) == 0 {
            break;
        }
    }
    for (hash, _) in &raws {
        let receipt = node.call("eth_getTransactionReceipt", json!([hash])).await?;
        if receipt["status"] != "0x1" {
            return Err(BenchError::Setup(format!("funding tx {hash} failed: {receipt}")));
        }
    }
    Ok(())
}

/// The fixture vault attack as `send_scenario` sends it (the attacker's own contract,
/// `attack{10 ETH}()`, EIP-1559, no access list, `max_fee = 2 * base_fee + 1 gwei`), signed
/// ahead so that sending it is one request.
async fn sign_attack(
    node: &Rpc,
    d: &Deployment,
    base_fee: u128,
) -> Result<(B256, Bytes), BenchError> {
    let attacker = dev_accounts()[3].signer.clone();
    let to = address(d, "VaultReentrancyAttack")?;
    let input = keccak256("attack()")[..4].to_vec();
    let value = U256::from(10u64) * U256::from(10u64).pow(U256::from(18));
    let estimate = node
        .call(
            "eth_estimateGas",
            json!([{"from": attacker.address(), "to": to, "value": value, "input": Bytes::from(input.clone())}]),
        )
        .await?;
    let gas = quantity(&estimate).saturating_mul(3) / 2 + 50_000;
    let nonce = node.nonce(attacker.address()).await?;
    let mut tx = call_tx(d.chain_id, nonce, to, value, input, gas);
    tx.max_fee_per_gas = 2 * base_fee + ATTACK_TIP;
    tx.max_priority_fee_per_gas = ATTACK_TIP;
    sign(&attacker, tx)
}

/// What a flood tx does; the share of each in the flood is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// ETH to a fresh address.
    Transfer,
    /// DUSD to a fresh address.
    Token,
    /// DUSD → COL through Router02.
    Swap,
    /// ETH into EthVault (a protected contract).
    Deposit,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Transfer, Kind::Token, Kind::Swap, Kind::Deposit];

    fn name(self) -> &'static str {
        match self {
            Kind::Transfer => "transfer",
            Kind::Token => "token",
            Kind::Swap => "swap",
            Kind::Deposit => "deposit",
        }
    }
}

#[derive(Debug, Clone)]
struct FloodTx {
    hash: B256,
    raw: Bytes,
    kind: Kind,
}

/// The flood, round-robin over the senders (sender `s` sends its nonces 1, 2, … in order), each
/// tx of a kind that cycles per sender: 4 in 10 ETH to a fresh address, 3 DUSD to a fresh
/// address, 2 swaps DUSD → COL through Router02, 1 deposit into EthVault. Tips from 0.1 to
/// 0.9 gwei: below the attack's on both fee fields.
fn sign_flood(
    d: &Deployment,
    senders: &[PrivateKeySigner],
    count: usize,
    base_fee: u128,
    chain_id: u64,
) -> Result<Vec<FloodTx>, BenchError> {
    let (dusd, col) = (address(d, "DUSD")?, address(d, "COL")?);
    let (router, vault) = (address(d, "UniswapV2Router02")?, address(d, "EthVault")?);
    let one = U256::from(10u64).pow(U256::from(18));
    let mut out = Vec::with_capacity(count);
    for k in 0..count {
        let (s, round) = (k % senders.len(), k / senders.len());
        let fresh = PrivateKeySigner::random().address();
        let nonce = round as u64 + 1;
        let kind = match (s + round) % 10 {
            0..=3 => Kind::Transfer,
            4..=6 => Kind::Token,
            7 | 8 => Kind::Swap,
            _ => Kind::Deposit,
        };
        let mut tx = match kind {
            Kind::Transfer => call_tx(
                chain_id,
                nonce,
                fresh,
                U256::from(1_000_000_000_000u64),
                Vec::new(),
                21_000,
            ),
            Kind::Token => {
                let input = IFloodToken::transferCall { to: fresh, amount: one }.abi_encode();
                call_tx(chain_id, nonce, dusd, U256::ZERO, input, 80_000)
            }
            Kind::Swap => {
                let input = IFloodRouter::swapExactTokensForTokensCall {
                    amountIn: one,
                    amountOutMin: U256::ZERO,
                    path: vec![dusd, col],
                    to: senders[s].address(),
                    deadline: U256::MAX,
                }
                .abi_encode();
                call_tx(chain_id, nonce, router, U256::ZERO, input, 250_000)
            }
            Kind::Deposit => {
                let input = IFloodVault::depositCall {}.abi_encode();
                call_tx(
                    chain_id,
                    nonce,
                    vault,
                    U256::from(10u64).pow(U256::from(15)),
                    input,
                    100_000,
                )
            }
        };
        let tip = GWEI / 10 * (1 + (k % 9) as u128);
        tx.max_priority_fee_per_gas = tip;
        tx.max_fee_per_gas = 2 * base_fee + tip;
        let (hash, raw) = sign(&senders[s], tx)?;
        out.push(FloodTx { hash, raw, kind });
    }
    Ok(out)
}

fn by_kind(flood: &[FloodTx], simulated: &HashMap<Kind, u64>) -> Value {
    let mut out = serde_json::Map::new();
    for kind in Kind::ALL {
        out.insert(
            kind.name().into(),
            json!({
                "sent": flood.iter().filter(|t| t.kind == kind).count(),
                "simulated_before_block": simulated.get(&kind).copied().unwrap_or(0),
            }),
        );
    }
    Value::Object(out)
}

#[derive(Debug, Default)]
struct Sent {
    accepted: usize,
    refused: usize,
    first_refusal: Option<String>,
}

impl Sent {
    fn merge(&mut self, other: Sent) {
        self.accepted += other.accepted;
        self.refused += other.refused;
        self.first_refusal = self.first_refusal.take().or(other.first_refusal);
    }
}

/// Sends raw txs in batches, several batches in flight, in order within each stream.
async fn send_flood(node: &Rpc, raws: &[Bytes]) -> Sent {
    let chunks: Vec<Vec<Bytes>> = raws.chunks(BATCH).map(<[Bytes]>::to_vec).collect();
    let mut sent = Sent::default();
    for wave in chunks.chunks(SENDERS_IN_FLIGHT) {
        let answers = futures::future::join_all(wave.iter().map(|chunk| {
            node.batch(chunk.iter().map(|raw| ("eth_sendRawTransaction", json!([raw]))).collect())
        }))
        .await;
        for answer in answers {
            match answer {
                Ok(results) => {
                    for r in results {
                        match r {
                            Ok(_) => sent.accepted += 1,
                            Err(e) => {
                                sent.refused += 1;
                                sent.first_refusal.get_or_insert_with(|| e.to_string());
                            }
                        }
                    }
                }
                Err(e) => {
                    sent.refused += BATCH;
                    sent.first_refusal.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
    sent
}

/// Polls the guardian's pending nonce until its pause is in the pool, at most until `slot`
/// after `sent_at`; the time since `sent_at` when it was seen.
async fn wait_pause(
    node: &Rpc,
    guardian: Address,
    nonce_before: u64,
    sent_at: Instant,
    slot: Duration,
) -> Option<Duration> {
    while sent_at.elapsed() < slot {
        if let Ok(n) = node.nonce(guardian).await
            && n > nonce_before
        {
            return Some(sent_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

#[derive(Debug, Default)]
struct Judged {
    same_block: bool,
    earlier: bool,
    reverted: Option<bool>,
    attack_block: Option<u64>,
    pause_block: Option<u64>,
    blocks: u64,
}

/// Mines until the attack has a receipt (at most enough blocks for the whole flood), and
/// judges where the guardian's first tx landed relative to it.
async fn mine_until_mined(
    node: &Rpc,
    attack: B256,
    guardian: Address,
    flood: usize,
) -> Result<Judged, BenchError> {
    let mut j = Judged::default();
    let limit = (flood / 100 + 8) as u64;
    let mut pause_at: Option<(u64, usize)> = None;
    while j.blocks < limit {
        node.mine().await?;
        j.blocks += 1;
        let block = node.call("eth_getBlockByNumber", json!(["latest", true])).await?;
        let number = quantity(&block["number"]);
        let txs = block["transactions"].as_array().cloned().unwrap_or_default();
        let from_guardian = |t: &Value| {
            t["from"].as_str().and_then(|f| f.parse::<Address>().ok()) == Some(guardian)
        };
        if pause_at.is_none()
            && let Some(i) = txs.iter().position(from_guardian)
        {
            pause_at = Some((number, i));
        }
        let attack_at = txs
            .iter()
            .position(|t| t["hash"].as_str().and_then(|h| h.parse::<B256>().ok()) == Some(attack));
        if let Some(a) = attack_at {
            let receipt = node.call("eth_getTransactionReceipt", json!([attack])).await?;
            let reverted = receipt["status"] == "0x0";
            j.reverted = Some(reverted);
            j.attack_block = Some(number);
            j.pause_block = pause_at.map(|(b, _)| b);
            j.same_block = reverted && matches!(pause_at, Some((b, i)) if b == number && i < a);
            j.earlier = reverted && matches!(pause_at, Some((b, _)) if b < number);
            return Ok(j);
        }
    }
    j.pause_block = pause_at.map(|(b, _)| b);
    Ok(j)
}

fn has_outcome(incidents: &Path) -> bool {
    std::fs::read_to_string(incidents)
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("\"kind\":\"outcome\""))
}

/// The attack's detection record, trimmed to where it came from and its stage times.
fn detection_of(incidents: &Path, attack: B256) -> Value {
    let text = std::fs::read_to_string(incidents).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| {
            r["kind"] == "detection"
                && r["attack_tx"].as_str().and_then(|h| h.parse::<B256>().ok()) == Some(attack)
        })
        .map(|r| {
            json!({
                "source": r["source"], "seen_from": r["seen_from"], "times_us": r["times"],
                "submit_started_us": r["submit_started_us"], "sent_us": r["sent_us"],
                "findings": r["findings"].as_array().map(|f| f.len()),
            })
        })
        .unwrap_or(Value::Null)
}

/// What the guard's JSON log says about the run.
#[derive(Debug, Default)]
struct LogFacts {
    simulated_before: Option<u64>,
    /// Distinct flood txs simulated before the first block, by kind.
    before_block: HashMap<Kind, u64>,
    /// Flood simulations while the attack waited in its queue, by kind.
    while_queued: HashMap<Kind, u64>,
    /// The lane ingest put the attack in, and how many txs of lower lanes were simulated
    /// while it waited (lanes from the router's `queued` trace lines).
    attack_lane: Option<String>,
    lower_lanes_while_queued: u64,
    ingest: Option<String>,
    workers: Option<String>,
}

/// Seconds since midnight of a log line's RFC 3339 UTC timestamp (runs are minutes long).
fn seconds_of_day(v: &Value) -> Option<f64> {
    let t = v["timestamp"].as_str()?.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = t.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

/// Reads the simulations off the log: `times_us` are the attack's stage times (µs since it
/// was seen) from its detection record, to place its wait in the queue on the log's clock.
fn read_log(
    lines: &[String],
    attack: B256,
    kinds: &HashMap<B256, Kind>,
    times_us: &Value,
) -> LogFacts {
    let mut facts = LogFacts::default();
    let parsed: Vec<Value> = lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let sim_tx = |v: &Value| {
        (v["fields"]["message"] == "simulated")
            .then(|| v["fields"]["tx"].as_str().and_then(|h| h.parse::<B256>().ok()))
            .flatten()
    };
    // The attack's queued → picked window: its `simulated` line is logged right after detect.
    let window = parsed.iter().find(|v| sim_tx(v) == Some(attack)).and_then(|v| {
        let at = seconds_of_day(v)?;
        let detected = times_us["detected_us"].as_f64()?;
        let since = |stage: &str| times_us[stage].as_f64().map(|t| at - (detected - t) / 1e6);
        // Until a worker first took it: a wait for cold state after that is not queueing.
        let picked = since("first_picked_us").or_else(|| since("picked_us"))?;
        Some((since("queued_us")?, picked))
    });
    let lane_of: HashMap<B256, String> = parsed
        .iter()
        .filter(|v| v["fields"]["message"] == "queued")
        .filter_map(|v| {
            let tx = v["fields"]["tx"].as_str()?.parse().ok()?;
            Some((tx, v["fields"]["lane"].as_str()?.to_string()))
        })
        .collect();
    let rank = |lane: &str| ["Protected", "Suspicious", "Other"].iter().position(|l| *l == lane);
    facts.attack_lane = lane_of.get(&attack).cloned();
    let attack_rank = facts.attack_lane.as_deref().and_then(rank);
    let mut before = HashSet::new();
    let mut before_block = HashSet::new();
    let mut block_seen = false;
    for v in &parsed {
        let fields = &v["fields"];
        match fields["message"].as_str().unwrap_or_default() {
            "simulated" => {
                let Some(tx) = sim_tx(v) else { continue };
                if tx == attack && facts.simulated_before.is_none() {
                    facts.simulated_before = Some(before.len() as u64);
                    continue;
                }
                let in_window = |at: Option<f64>| matches!((window, at), (Some((from, to)), Some(at)) if at >= from && at < to);
                let lower = match (attack_rank, lane_of.get(&tx).and_then(|l| rank(l))) {
                    (Some(a), Some(l)) => l > a,
                    _ => false,
                };
                if lower && in_window(seconds_of_day(v)) {
                    facts.lower_lanes_while_queued += 1;
                }
                let Some(kind) = kinds.get(&tx) else { continue };
                if facts.simulated_before.is_none() {
                    before.insert(tx);
                }
                if !block_seen && before_block.insert(tx) {
                    *facts.before_block.entry(*kind).or_default() += 1;
                }
                if in_window(seconds_of_day(v)) {
                    *facts.while_queued.entry(*kind).or_default() += 1;
                }
            }
            "fork at new head" => block_seen = true,
            "stopped" => {
                facts.ingest = fields["ingest"].as_str().map(str::to_string);
                facts.workers = fields["workers"].as_str().map(str::to_string);
            }
            _ => {}
        }
    }
    facts
}

/// `name: N` in a Debug-formatted struct: the first one, so a total before any per-node one.
fn debug_number(text: &str, name: &str) -> Option<u64> {
    let needle = format!(" {name}: ");
    let at = text.find(&needle)? + needle.len();
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The top-level `name: N` fields of a Debug-formatted struct (up to its first nested list).
fn debug_numbers(text: &str) -> Value {
    let head = text.split('[').next().unwrap_or(text);
    let mut out = serde_json::Map::new();
    for part in head.split([',', '{']) {
        if let Some((k, v)) = part.split_once(':')
            && let Ok(n) = v.trim().trim_end_matches('}').trim().parse::<u64>()
        {
            out.insert(k.trim().to_string(), json!(n));
        }
    }
    Value::Object(out)
}

/// `preempt --log-format json run` as a child process, its stderr kept line by line.
struct GuardProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for GuardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GuardProcess {
    fn start(preempt: &Path, config: &Path) -> Result<Self, BenchError> {
        let mut child = Command::new(preempt)
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .env("PREEMPT_GUARDIAN_KEY", format!("{}", dev_accounts()[1].signer.to_bytes()))
            .env("RUST_LOG", "info,preempt=debug,preempt::ingest::router=trace")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", preempt.display())))?;
        let stderr = child.stderr.take().ok_or_else(|| BenchError::Setup("no stderr".into()))?;
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Ok(Self { child, lines })
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn wait_ready(&self, limit: Duration) -> Result<(), BenchError> {
        let started = Instant::now();
        while started.elapsed() < limit {
            let ready = self.lines.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|l| {
                serde_json::from_str::<Value>(l).is_ok_and(|v| v["fields"]["message"] == "ready")
            });
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(BenchError::Setup(format!("preempt run never got ready:\n{}", self.lines().join("\n"))))
    }

    /// SIGTERM, then waits up to `limit` for the exit and for the log to be read to its end.
    fn stop(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let started = Instant::now();
        let mut code = None;
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                code = status.code();
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let took = started.elapsed();
        // The reader thread ends at the pipe's end; give it a moment to copy the last lines.
        let read = Instant::now();
        while read.elapsed() < Duration::from_secs(2)
            && !self
                .lines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|l| l.contains("\"stopped\""))
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        (code, took)
    }
}
