//! The soak: `preempt run` as a real process beside anvil for thousands of blocks, each full
//! of txs touching fresh state (new token holders, new accounts, deposits from new users, long
//! nonce chains), with one attack early and one late. Records preempt's memory, the block
//! replay time and the head lag over the run, and whether both attacks were paused in the
//! block they targeted. Writes `soak.json` and `soak.svg`.

use std::{
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
    primitives::{Address, B256, Bytes, TxKind, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use serde_json::{Value, json};

use super::{AnvilProcess, BenchError, rpc, stats::percentile};
use crate::devnet::{Deployment, Scenario, config_toml, deploy, dev_accounts, send_scenario};

alloy::sol! {
    interface ISoakToken {
        function mint(address to, uint256 amount) external;
        function transfer(address to, uint256 amount) external returns (bool);
    }
    interface ISoakVault {
        function deposit() external payable;
    }
}

/// What the soak runs (the `bench --soak` flags).
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub anvil: PathBuf,
    pub preempt: PathBuf,
    pub out: PathBuf,
    pub blocks: u64,
    pub txs_per_block: usize,
    /// `[fork] max_entries` for the guard (bounded memory from early on).
    pub max_entries: usize,
}

/// The soak's record, as written to `soak.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakReport {
    pub blocks: u64,
    pub txs_per_block: usize,
    pub txs_sent: u64,
    pub max_entries: usize,
    pub rss_mb: Value,
    pub replay_us: Value,
    pub head_lag_ms: Value,
    pub divergences: u64,
    pub attacks_paused: Vec<bool>,
    pub attack_blocks: Vec<u64>,
    /// The node's own time per block: txs sent → in the pool, and `evm_mine`.
    pub node_ms: Value,
    pub wall_secs: f64,
    /// The guard's own time per block, by stage (p50/p99 µs): reading the block, its receipts
    /// and its state diff from the node; replaying it; applying it.
    pub guard_stages: Value,
    /// What the guard holds at the end against after the first 300 blocks: fork entries
    /// (accounts plus slots) and the seen-set's hashes.
    pub sizes: Value,
    pub series: Vec<SoakBlock>,
}

/// One block of the soak.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SoakBlock {
    pub block: u64,
    pub rss_mb: f64,
    pub replay_us: f64,
    /// Block mined → the guard's fork at it.
    pub head_lag_ms: f64,
    /// Accounts plus slots in the fork after the block.
    pub fork_entries: u64,
    /// Tx hashes in the ingest seen-set at the last head.
    pub seen: u64,
}

/// What the guard's log says about each block.
#[derive(Debug, Default)]
struct GuardLog {
    /// (block, the line's fields, when the line was read)
    applied: Vec<(u64, Value, Instant)>,
    divergences: u64,
    /// The seen-set's size at the last head.
    seen: u64,
    lines: Vec<String>,
}

struct Guard {
    child: Child,
    log: Arc<Mutex<GuardLog>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Guard {
    fn start(preempt: &Path, config: &Path) -> Result<Self, BenchError> {
        let mut child = Command::new(preempt)
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .env("PREEMPT_GUARDIAN_KEY", format!("{}", dev_accounts()[1].signer.to_bytes()))
            .env("RUST_LOG", "info,preempt=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", preempt.display())))?;
        let log: Arc<Mutex<GuardLog>> = Arc::default();
        let stderr = child.stderr.take().ok_or_else(|| BenchError::Setup("no stderr".into()))?;
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let msg = v["fields"]["message"].as_str().unwrap_or_default();
                    if msg == "fork at new head" {
                        let block = v["fields"]["block"].as_u64().unwrap_or_default();
                        log.applied.push((block, v["fields"].clone(), Instant::now()));
                        continue;
                    }
                    if msg == "ingest state" {
                        log.seen = v["fields"]["seen"].as_u64().unwrap_or_default();
                        continue;
                    }
                    if msg.contains("replay diverged") {
                        log.divergences += 1;
                    }
                    if v["level"] == "DEBUG" && msg == "simulated" {
                        continue;
                    }
                }
                if log.lines.len() < 20_000 {
                    log.lines.push(line);
                }
            }
        });
        Ok(Self { child, log })
    }

    fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&GuardLog) -> bool) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if pred(&self.log.lock().unwrap_or_else(|p| p.into_inner())) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        tracing::warn!(what, "soak: guard did not get there in time");
        false
    }

    fn rss_mb(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map(|kb| kb / 1024.0)
            .unwrap_or_default()
    }
}

/// Signs and sends txs, keeping each sender's nonce locally.
struct Sender {
    http: DynProvider,
    chain_id: u64,
}

impl Sender {
    fn sign(
        &self,
        signer: &PrivateKeySigner,
        nonce: u64,
        to: Address,
        value: U256,
        input: Bytes,
        base_fee: u128,
    ) -> Result<Bytes, BenchError> {
        let mut tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit: 200_000,
            max_fee_per_gas: base_fee * 2 + 1_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(to),
            value,
            access_list: Default::default(),
            input,
        };
        let sig = signer
            .sign_transaction_sync(&mut tx)
            .map_err(|e| BenchError::Setup(format!("sign: {e}")))?;
        let envelope: TxEnvelope = tx.into_signed(sig).into();
        Ok(envelope.encoded_2718().into())
    }

    async fn send_all(&self, raws: Vec<Bytes>) -> Result<(), BenchError> {
        for chunk in raws.chunks(64) {
            let sends =
                chunk.iter().map(|raw| rpc(&self.http, "eth_sendRawTransaction", json!([raw])));
            for r in futures::future::join_all(sends).await {
                r?;
            }
        }
        Ok(())
    }
}

/// Runs the soak; the numbers go to `opts.out`.
pub async fn run_soak(opts: &SoakOptions) -> Result<SoakReport, BenchError> {
    let wall = Instant::now();
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| BenchError::Write { path: opts.out.display().to_string(), source: e })?;
    // anvil keeps every block's state, and every mined tx with its trace, in memory by
    // default: ~10 MB a busy block, 6.5 GB after 800 blocks, and its per-block time grows with
    // it. The guard reads only the head and its parent: the node keeps the last 256 of each.
    let keep = ["--prune-history", "256", "--transaction-block-keeper", "256"];
    let anvil = AnvilProcess::start_with(&opts.anvil, &keep)?;
    let deployment =
        deploy(&anvil.http_url()).await.map_err(|e| BenchError::Setup(e.to_string()))?;
    let http = ProviderBuilder::new()
        .connect(&anvil.http_url())
        .await
        .map_err(|e| BenchError::Node(e.to_string()))?
        .erased();
    let chain_id = http.get_chain_id().await.map_err(|e| BenchError::Node(e.to_string()))?;
    let sender = Sender { http: http.clone(), chain_id };

    // Senders: fresh keys with ETH and DUSD, funded before the guard starts.
    let dusd = address(&deployment, "DUSD")?;
    let vault = address(&deployment, "EthVault")?;
    let deployer = dev_accounts()[0].signer.clone();
    let mut deployer_nonce = pending_nonce(&http, deployer.address()).await?;
    let pool: Vec<PrivateKeySigner> = (0..24).map(|_| PrivateKeySigner::random()).collect();
    let mut pool_nonces = vec![0u64; pool.len()];
    let base_fee = current_base_fee(&http).await?;
    let mut setup = Vec::new();
    for s in &pool {
        rpc(&http, "anvil_setBalance", json!([s.address(), "0x3635C9ADC5DEA00000"])).await?;
        let mint =
            ISoakToken::mintCall { to: s.address(), amount: U256::from(10u64).pow(U256::from(24)) };
        setup.push(sender.sign(
            &deployer,
            deployer_nonce,
            dusd,
            U256::ZERO,
            mint.abi_encode().into(),
            base_fee,
        )?);
        deployer_nonce += 1;
    }
    sender.send_all(setup).await?;
    rpc(&http, "evm_mine", json!([])).await?;

    let config_path = opts.out.join("soak.toml");
    let config = format!(
        "{}\n[incidents]\npath = \"{}\"\n{}",
        config_toml(&deployment, &anvil.ws_url(), "PREEMPT_GUARDIAN_KEY"),
        opts.out.join("soak-incidents.jsonl").display(),
        fork_section(opts.max_entries),
    );
    std::fs::write(&config_path, config)
        .map_err(|e| BenchError::Write { path: config_path.display().to_string(), source: e })?;
    let guard = Guard::start(&opts.preempt, &config_path)?;
    if !guard.wait_for("ready", Duration::from_secs(60), |l| {
        l.lines.iter().any(|x| x.contains("\"ready\""))
    }) {
        return Err(BenchError::Setup(format!(
            "preempt run never got ready:\n{}",
            guard.log.lock().unwrap_or_else(|p| p.into_inner()).lines.join("\n")
        )));
    }

    let guardian = dev_accounts()[1].address;
    let start_block = http.get_block_number().await.map_err(|e| BenchError::Node(e.to_string()))?;
    let attack_at = [opts.blocks / 10 + 1, opts.blocks * 9 / 10];
    let attacks = [Scenario::VaultReentrancyAttack, Scenario::TreasuryTakeoverAttack];
    let mut paused = Vec::new();
    let mut series = Vec::new();
    let mut node_ms = Vec::new();
    let mut txs_sent = 0u64;
    let mut stages = Vec::new();
    for i in 1..=opts.blocks {
        let number = start_block + i;
        let base_fee = current_base_fee(&http).await?;
        let mut raws = Vec::with_capacity(opts.txs_per_block);
        let quarter = opts.txs_per_block / 4;
        for k in 0..opts.txs_per_block {
            let fresh = PrivateKeySigner::random().address();
            let raw = match k / quarter.max(1) {
                // A new account.
                0 => {
                    let s = k % pool.len();
                    pool_nonces[s] += 1;
                    sender.sign(
                        &pool[s],
                        pool_nonces[s] - 1,
                        fresh,
                        U256::from(1_000u64),
                        Bytes::new(),
                        base_fee,
                    )?
                }
                // A new token holder.
                1 => {
                    let s = k % pool.len();
                    pool_nonces[s] += 1;
                    let call = ISoakToken::transferCall { to: fresh, amount: U256::from(1_000u64) };
                    sender.sign(
                        &pool[s],
                        pool_nonces[s] - 1,
                        dusd,
                        U256::ZERO,
                        call.abi_encode().into(),
                        base_fee,
                    )?
                }
                // A long nonce chain from one sender, each minting to a new holder.
                2 => {
                    deployer_nonce += 1;
                    let call = ISoakToken::mintCall { to: fresh, amount: U256::from(1u64) };
                    sender.sign(
                        &deployer,
                        deployer_nonce - 1,
                        dusd,
                        U256::ZERO,
                        call.abi_encode().into(),
                        base_fee,
                    )?
                }
                // A deposit from a user never seen before.
                _ => {
                    let user = PrivateKeySigner::random();
                    rpc(&http, "anvil_setBalance", json!([user.address(), "0xDE0B6B3A7640000"]))
                        .await?;
                    let call = ISoakVault::depositCall {};
                    sender.sign(
                        &user,
                        0,
                        vault,
                        U256::from(10u64.pow(15)),
                        call.abi_encode().into(),
                        base_fee,
                    )?
                }
            };
            raws.push(raw);
        }
        txs_sent += raws.len() as u64;
        let node_started = Instant::now();
        sender.send_all(raws).await?;
        let attack_index = attack_at.iter().position(|b| *b == i);
        let mut attack = None;
        if let Some(a) = attack_index {
            let hash = send_scenario(&anvil.http_url(), &deployment, attacks[a])
                .await
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            // The guardian's pause must be in the pool before the block is built.
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && pending_of(&http, guardian).await? == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            attack = Some(hash);
        }
        rpc(&http, "evm_mine", json!([])).await?;
        let mined = Instant::now();
        node_ms.push(node_started.elapsed().as_secs_f64() * 1e3);
        if let Some(hash) = attack {
            paused.push(paused_ahead(&http, number, hash, guardian).await?);
        }
        let applied = guard.wait_for("block applied", Duration::from_secs(60), |l| {
            l.applied.iter().any(|(b, _, _)| *b == number)
        });
        let (replay_us, lag_ms, fields, seen) = {
            let log = guard.log.lock().unwrap_or_else(|p| p.into_inner());
            let seen = log.seen;
            log.applied
                .iter()
                .find(|(b, _, _)| *b == number)
                .map(|(_, f, at)| {
                    let us = f["replay_us"].as_f64().unwrap_or(f64::NAN);
                    (us, at.saturating_duration_since(mined).as_secs_f64() * 1e3, f.clone(), seen)
                })
                .unwrap_or((f64::NAN, f64::NAN, Value::Null, seen))
        };
        let fork_entries = fields["cache"].as_u64().unwrap_or_default();
        stages.push(fields);
        if !applied {
            tracing::warn!(block = number, "soak: the guard did not apply the block within 60 s");
        }
        series.push(SoakBlock {
            block: number,
            rss_mb: guard.rss_mb(),
            replay_us,
            head_lag_ms: lag_ms,
            fork_entries,
            seen,
        });
        if i % 100 == 0 {
            tracing::info!(
                block = i,
                rss_mb = guard.rss_mb(),
                replay_us,
                lag_ms,
                fork_entries,
                seen,
                "soak progress"
            );
        }
    }
    let divergences = guard.log.lock().unwrap_or_else(|p| p.into_inner()).divergences;
    let mut report =
        summarize(opts, series, paused, attack_at.to_vec(), divergences, txs_sent, node_ms, wall);
    report.guard_stages = stage_summary(&stages);
    write_outputs(&opts.out, &report)?;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    opts: &SoakOptions,
    series: Vec<SoakBlock>,
    attacks_paused: Vec<bool>,
    attack_blocks: Vec<u64>,
    divergences: u64,
    txs_sent: u64,
    node_ms: Vec<f64>,
    wall: Instant,
) -> SoakReport {
    let rss: Vec<f64> = series.iter().map(|s| s.rss_mb).collect();
    let replay: Vec<f64> = series.iter().map(|s| s.replay_us).filter(|v| v.is_finite()).collect();
    let lag: Vec<f64> = series.iter().map(|s| s.head_lag_ms).filter(|v| v.is_finite()).collect();
    // "First" is the state after the first 300 blocks (or a tenth of a short run).
    let settle = (series.len() / 10).clamp(1, 300).min(series.len());
    let window = |v: &[f64], from: usize| -> Option<f64> {
        let end = (from + settle.max(10)).min(v.len());
        percentile(&v[from.min(end)..end], 0.5)
    };
    let first_rss = rss.get(settle.saturating_sub(1)).copied();
    let replay_first = window(&replay, settle.saturating_sub(1).min(replay.len()));
    let replay_last = percentile(&replay[replay.len().saturating_sub(settle.max(10))..], 0.5);
    SoakReport {
        blocks: opts.blocks,
        txs_per_block: opts.txs_per_block,
        txs_sent,
        max_entries: opts.max_entries,
        rss_mb: json!({
            "first": first_rss.map(round1),
            "last": rss.last().copied().map(round1),
            "max": rss.iter().copied().reduce(f64::max).map(round1),
        }),
        replay_us: json!({
            "first_p50": replay_first.map(round1),
            "last_p50": replay_last.map(round1),
        }),
        head_lag_ms: json!({
            "p50": percentile(&lag, 0.5).map(round1),
            "p99": percentile(&lag, 0.99).map(round1),
        }),
        divergences,
        attacks_paused,
        attack_blocks,
        node_ms: json!({
            "p50": percentile(&node_ms, 0.5).map(round1),
            "p99": percentile(&node_ms, 0.99).map(round1),
        }),
        wall_secs: round1(wall.elapsed().as_secs_f64()),
        guard_stages: Value::Null,
        sizes: json!({
            "fork_entries": size_summary(&series, settle, |s| s.fork_entries),
            "seen": size_summary(&series, settle, |s| s.seen),
        }),
        series,
    }
}

/// A size after the settle blocks, at the end, and at its largest.
fn size_summary(series: &[SoakBlock], settle: usize, of: impl Fn(&SoakBlock) -> u64) -> Value {
    json!({
        "first": series.get(settle.saturating_sub(1)).map(&of),
        "last": series.last().map(&of),
        "max": series.iter().map(&of).max(),
    })
}

fn stage_summary(stages: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for key in [
        "block_us",
        "receipts_us",
        "diff_us",
        "replay_us",
        "replay_fetch_us",
        "replay_fetch_rounds",
        "replay_fetch_keys",
        "apply_us",
    ] {
        let v: Vec<f64> = stages.iter().filter_map(|s| s[key].as_f64()).collect();
        out.insert(
            key.into(),
            json!({"p50": percentile(&v, 0.5).map(round1), "p99": percentile(&v, 0.99).map(round1)}),
        );
    }
    Value::Object(out)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn write_outputs(out: &Path, report: &SoakReport) -> Result<(), BenchError> {
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| BenchError::Setup(format!("encode soak.json: {e}")))?;
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text)
            .map_err(|e| BenchError::Write { path: path.display().to_string(), source: e })
    };
    write("soak.json", json)?;
    write(
        "soak.svg",
        super::chart::render_series_svg(
            "preempt soak: memory and block replay time per block",
            &report.series.iter().map(|s| (s.block as f64, s.rss_mb)).collect::<Vec<_>>(),
            "RSS (MiB)",
            &report
                .series
                .iter()
                .filter(|s| s.replay_us.is_finite())
                .map(|s| (s.block as f64, s.replay_us))
                .collect::<Vec<_>>(),
            "replay (µs)",
        ),
    )
}

/// `[fork]` bounds for the guard under soak (`0`: the defaults).
fn fork_section(max_entries: usize) -> String {
    if max_entries == 0 {
        String::new()
    } else {
        format!("\n[fork]\nmax_entries = {max_entries}\n")
    }
}

fn address(d: &Deployment, name: &str) -> Result<Address, BenchError> {
    d.address(name).map_err(|e| BenchError::Setup(e.to_string()))
}

async fn pending_nonce(http: &DynProvider, a: Address) -> Result<u64, BenchError> {
    http.get_transaction_count(a).pending().await.map_err(|e| BenchError::Node(e.to_string()))
}

async fn current_base_fee(http: &DynProvider) -> Result<u128, BenchError> {
    let block = rpc(http, "eth_getBlockByNumber", json!(["latest", false])).await?;
    Ok(block["baseFeePerGas"]
        .as_str()
        .and_then(|h| u128::from_str_radix(h.trim_start_matches("0x"), 16).ok())
        .unwrap_or(1_000_000_000))
}

async fn pending_of(http: &DynProvider, from: Address) -> Result<usize, BenchError> {
    let content = rpc(http, "txpool_content", json!([])).await?;
    let key = format!("{from:#x}");
    Ok(content["pending"]
        .as_object()
        .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(&key)).map(|(_, v)| v.clone()))
        .and_then(|v| v.as_object().map(|o| o.len()))
        .unwrap_or(0))
}

/// Whether block `number` holds a guardian tx ahead of the attack, and the attack failed.
async fn paused_ahead(
    http: &DynProvider,
    number: u64,
    attack: B256,
    guardian: Address,
) -> Result<bool, BenchError> {
    let block = rpc(http, "eth_getBlockByNumber", json!([format!("{number:#x}"), true])).await?;
    let txs = block["transactions"].as_array().cloned().unwrap_or_default();
    let attack_at =
        txs.iter().position(|t| t["hash"].as_str().and_then(|h| h.parse().ok()) == Some(attack));
    let pause_at = txs
        .iter()
        .position(|t| t["from"].as_str().and_then(|f| f.parse::<Address>().ok()) == Some(guardian));
    let receipt = rpc(http, "eth_getTransactionReceipt", json!([attack])).await?;
    Ok(matches!((pause_at, attack_at), (Some(p), Some(a)) if p < a) && receipt["status"] == "0x0")
}
