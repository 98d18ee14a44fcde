//! The race end to end: `preempt run` in-process against anvil, an attack sent with the
//! attacker's own fees, the time until the guardian's pause is in the node's pool, and whether
//! the next block holds the pause ahead of a failed attack. Each run starts from the same state.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256},
    providers::DynProvider,
};
use serde_json::{Value, json};

use super::{BenchError, fixtures::FixtureTx, rpc};
use crate::config::Config;

/// `preempt run` in-process, started from a full config text and stopped after a race.
pub(super) struct InProcessGuard {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), crate::run::RunError>>,
}

impl InProcessGuard {
    /// Starts the guard on `text` (read as if from `dir/bench.toml`) and waits for `ready`.
    pub(super) async fn start(text: &str, dir: &Path) -> Result<Self, BenchError> {
        let config = Config::parse(text, &dir.join("bench.toml"))
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(crate::run::run_with(
            config,
            async move {
                let _ = stop_rx.await;
            },
            move || {
                let _ = ready_tx.send(());
            },
        ));
        if tokio::time::timeout(Duration::from_secs(30), ready_rx).await.is_err() {
            return Err(BenchError::Setup("preempt run did not get ready".into()));
        }
        Ok(Self { stop, task })
    }

    /// Stops it and waits (at most 10 s) for its records to be written.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// A number the node wrote as hex (or as a plain number).
pub(super) fn hex_u64(v: &Value) -> u64 {
    v.as_str()
        .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
        .or_else(|| v.as_u64())
        .unwrap_or_default()
}

/// Txs pending in the node's pool.
pub(super) async fn pending(http: &DynProvider) -> Result<u64, BenchError> {
    Ok(hex_u64(&rpc(http, "txpool_status", json!([])).await?["pending"]))
}

/// Where the latest block put the guardian's pause and the attack, and whether the attack failed.
#[derive(Debug)]
pub(super) struct BlockOrder {
    pub(super) pause_at: Option<usize>,
    pub(super) attack_at: Option<usize>,
    pub(super) attack_failed: bool,
}

impl BlockOrder {
    pub(super) async fn latest(
        http: &DynProvider,
        guardian: Address,
        attack: B256,
    ) -> Result<Self, BenchError> {
        let block = rpc(http, "eth_getBlockByNumber", json!(["latest", true])).await?;
        let txs = block["transactions"].as_array().cloned().unwrap_or_default();
        let attack_at = txs
            .iter()
            .position(|t| t["hash"].as_str().and_then(|h| h.parse::<B256>().ok()) == Some(attack));
        let pause_at = txs.iter().position(|t| {
            t["from"].as_str().and_then(|f| f.parse::<Address>().ok()) == Some(guardian)
        });
        let receipt = rpc(http, "eth_getTransactionReceipt", json!([attack])).await?;
        Ok(Self { pause_at, attack_at, attack_failed: receipt["status"] == "0x0" })
    }

    /// The pause went first and the attack failed.
    pub(super) fn won(&self) -> bool {
        matches!((self.pause_at, self.attack_at), (Some(p), Some(a)) if p < a) && self.attack_failed
    }
}

#[derive(Debug, Default, Clone)]
pub(super) struct RaceResult {
    pub(super) runs: usize,
    pub(super) wins: usize,
    pub(super) attack_to_pool_ms: Vec<f64>,
    /// The node's own delay: attack sent → the attack itself in the pool.
    pub(super) attack_announced_ms: Vec<f64>,
    /// From the incident records, µs since the frame arrived.
    pub(super) signed_us: Vec<f64>,
    pub(super) handed_us: Vec<f64>,
    pub(super) node_answer_us: Vec<f64>,
    pub(super) failures: Vec<String>,
}

/// `runs` races, cycling through `attacks`. `config_text` is a full config without `[incidents]`.
pub(super) async fn races(
    http: &DynProvider,
    _ws_url: &str,
    config_text: &str,
    guardian: Address,
    attacks: &[FixtureTx],
    runs: usize,
    dir: &Path,
) -> Result<RaceResult, BenchError> {
    let mut result = RaceResult::default();
    for i in 0..runs {
        let attack = &attacks[i % attacks.len()];
        let snapshot = rpc(http, "evm_snapshot", json!([])).await?;
        let incidents = dir.join(format!("race-{i}.jsonl"));
        let _ = std::fs::remove_file(&incidents);
        let text = format!("{config_text}\n[incidents]\npath = \"{}\"\n", incidents.display());
        let guard = InProcessGuard::start(&text, dir).await?;
        // Steady state, as when an attack comes to a guard that has been running: the start-up
        // exchanges (pool re-sync, first head) are answered and acknowledged.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let sent = Instant::now();
        rpc(http, "eth_sendRawTransaction", json!([attack.raw])).await?;
        // The pool itself is the witness: a WebSocket notification from anvil can sit ~40 ms in
        // its socket (Nagle on the node's side against the observer's delayed ACK).
        let mut seen_pause = None;
        let deadline = sent + Duration::from_secs(5);
        while seen_pause.is_none() && Instant::now() < deadline {
            let pending = pending(http).await?;
            if pending >= 1 && result.attack_announced_ms.len() < i + 1 {
                result.attack_announced_ms.push(sent.elapsed().as_secs_f64() * 1e3);
            }
            if pending >= 2 {
                seen_pause = Some(sent.elapsed());
            } else {
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
        }
        match seen_pause {
            Some(d) => result.attack_to_pool_ms.push(d.as_secs_f64() * 1e3),
            None => result.failures.push(format!("run {i} ({}): no pause within 5 s", attack.name)),
        }
        rpc(http, "evm_mine", json!([])).await?;
        let order = BlockOrder::latest(http, guardian, attack.hash).await?;
        let won = order.won();
        if won {
            result.wins += 1;
        } else {
            result.failures.push(format!(
                "run {i} ({}): pause at {:?}, attack at {:?}, attack failed: {}",
                attack.name, order.pause_at, order.attack_at, order.attack_failed
            ));
        }
        result.runs += 1;

        // Let the guard see the block (outcome record), then stop it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        guard.stop().await;
        for line in std::fs::read_to_string(&incidents).unwrap_or_default().lines() {
            let Ok(r) = serde_json::from_str::<Value>(line) else { continue };
            if r["kind"] == "detection" {
                if let Some(v) = r["times"]["signed_us"].as_f64() {
                    result.signed_us.push(v);
                }
                if let Some(v) = r["submit_started_us"].as_f64() {
                    result.handed_us.push(v);
                }
                if let Some(v) = r["submitted"][0]["results"][0]["latency_us"].as_f64() {
                    result.node_answer_us.push(v);
                }
            }
        }
        rpc(http, "evm_revert", json!([snapshot])).await?;
        // A revert restores state, not the pool: what a run left pending must not leak into the next.
        rpc(http, "anvil_dropAllTransactions", json!([])).await?;
    }
    Ok(result)
}
