//! The simulation workers: OS threads, each owning its EVM, fed by bounded crossbeam queues
//! (txs that name a protected contract first). A tx with findings is answered right here —
//! the responder signs the pause on this thread — and handed on as a `Detection`.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use alloy::{consensus::Transaction as _, primitives::Address};
use crossbeam_channel::{Receiver, Select, Sender};
use dashmap::DashMap;
use serde::Serialize;

use super::{SimBlock, SimError, Simulator};
use crate::{
    config::Config,
    detect::detect,
    fork::LiveFork,
    respond::{AttackFees, Decision, Responder},
    types::{Finding, PendingTx, SimOutcome},
};

/// The fork the workers read, with the block env pending txs run in.
pub type LiveState = LiveFork<SimBlock>;

/// Microseconds from when the tx's frame arrived, at the end of each stage.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageTimes {
    pub decoded_us: f64,
    pub queued_us: f64,
    /// Taken off the queue by a worker.
    pub picked_us: f64,
    pub simulated_us: f64,
    pub detected_us: f64,
    pub signed_us: f64,
}

impl StageTimes {
    /// The tx's own stamps, then the worker's: picked, simulated, detected, signed.
    fn of(tx: &PendingTx, [picked_us, simulated_us, detected_us, signed_us]: [f64; 4]) -> Self {
        Self {
            decoded_us: Self::since(tx.seen_at, tx.decoded_at),
            queued_us: Self::since(tx.seen_at, tx.queued_at),
            picked_us,
            simulated_us,
            detected_us,
            signed_us,
        }
    }

    /// Microseconds, to a tenth.
    fn since(seen: Instant, at: Instant) -> f64 {
        (at.saturating_duration_since(seen).as_nanos() as f64 / 100.0).round() / 10.0
    }
}

/// A tx whose simulation produced findings, and what the responder decided for each contract.
#[derive(Debug)]
pub struct Detection {
    pub tx: PendingTx,
    pub attack_fees: AttackFees,
    pub outcome: SimOutcome,
    pub findings: Vec<Finding>,
    pub decisions: Vec<(Address, Decision)>,
    pub times: StageTimes,
    pub signed_at: Instant,
}

#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Workers whose EVM and protected state are warm.
    pub warmed: AtomicU64,
    pub simulated: AtomicU64,
    pub clean: AtomicU64,
    pub with_findings: AtomicU64,
    pub invalid: AtomicU64,
    pub state_errors: AtomicU64,
    pub chained: AtomicU64,
    pub parked: AtomicU64,
    pub sim_ns_total: AtomicU64,
}

/// Pending txs by sender and nonce, so a tx that needs its sender's earlier pending txs can
/// run after them; and txs waiting for a predecessor that has not arrived yet.
#[derive(Debug, Default)]
pub struct SenderChains {
    pending: DashMap<Address, BTreeMap<u64, PendingTx>>,
    waiting: DashMap<Address, Vec<PendingTx>>,
}

impl SenderChains {
    fn record(&self, tx: &PendingTx) {
        self.pending.entry(tx.tx.signer()).or_default().insert(tx.tx.nonce(), tx.clone());
    }

    /// The sender's txs with nonces `from..to`, if every one is known.
    fn predecessors(&self, sender: Address, from: u64, to: u64) -> Option<Vec<PendingTx>> {
        let chain = self.pending.get(&sender)?;
        (from..to).map(|n| chain.get(&n).cloned()).collect()
    }

    fn park(&self, tx: PendingTx) {
        self.waiting.entry(tx.tx.signer()).or_default().push(tx);
    }

    fn unpark(&self, sender: Address) -> Vec<PendingTx> {
        self.waiting.remove(&sender).map(|(_, v)| v).unwrap_or_default()
    }

    /// Drops what a new head made stale.
    pub fn clear(&self) {
        self.pending.clear();
        self.waiting.clear();
    }
}

/// Everything a worker shares with the rest of the pipeline.
#[derive(Debug)]
pub struct WorkerContext {
    pub config: Config,
    pub chain_id: u64,
    pub live: Arc<LiveState>,
    pub responder: Arc<Mutex<Responder>>,
    pub detections: tokio::sync::mpsc::UnboundedSender<Detection>,
    pub chains: Arc<SenderChains>,
    pub stats: WorkerStats,
    pub requeue: Sender<PendingTx>,
    pub stop: AtomicBool,
    /// Benchmarks: every handled tx's stage times, findings or not.
    pub completions: Option<Sender<(StageTimes, bool)>>,
}

/// Starts `count` workers on the two queues.
pub fn spawn_workers(
    count: usize,
    ctx: Arc<WorkerContext>,
    high: Receiver<PendingTx>,
    normal: Receiver<PendingTx>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    (0..count.max(1))
        .map(|i| {
            let ctx = Arc::clone(&ctx);
            let (high, normal) = (high.clone(), normal.clone());
            std::thread::Builder::new()
                .name(format!("sim-worker-{i}"))
                .spawn(move || worker_loop(&ctx, &high, &normal))
        })
        .collect()
}

fn next_job(high: &Receiver<PendingTx>, normal: &Receiver<PendingTx>) -> Option<PendingTx> {
    if let Ok(tx) = high.try_recv() {
        return Some(tx);
    }
    let mut select = Select::new_biased();
    let h = select.recv(high);
    let n = select.recv(normal);
    let op = select.select_timeout(Duration::from_millis(100)).ok()?;
    match op.index() {
        i if i == h => op.recv(high).ok(),
        i if i == n => op.recv(normal).ok(),
        _ => None,
    }
}

fn worker_loop(ctx: &WorkerContext, high: &Receiver<PendingTx>, normal: &Receiver<PendingTx>) {
    let current = ctx.live.current();
    let mut generation = ctx.live.generation();
    let mut simulator =
        Simulator::new(&ctx.config, Arc::clone(&current.0), current.1, ctx.chain_id);
    let _ = simulator.warm();
    ctx.stats.warmed.fetch_add(1, Ordering::AcqRel);
    while !ctx.stop.load(Ordering::Acquire) {
        // Shutdown sets `stop` before the queues close, so an idle wait ends within 100 ms.
        let Some(tx) = next_job(high, normal) else { continue };
        let now = ctx.live.generation();
        if now != generation {
            let current = ctx.live.current();
            simulator.set_fork(Arc::clone(&current.0), current.1);
            generation = now;
        }
        handle(ctx, &mut simulator, tx);
    }
}

fn handle(ctx: &WorkerContext, simulator: &mut Simulator, tx: PendingTx) {
    let picked_us = micros(tx.seen_at);
    ctx.chains.record(&tx);
    let started = Instant::now();
    let result = match simulator.simulate(tx.hash, &tx.tx) {
        Err(SimError::NonceAhead { state_nonce, tx_nonce, .. }) => {
            match ctx.chains.predecessors(tx.tx.signer(), state_nonce, tx_nonce) {
                Some(before) => {
                    ctx.stats.chained.fetch_add(1, Ordering::Relaxed);
                    simulator.simulate_after(
                        before.iter().map(|p| (p.hash, &p.tx)),
                        tx.hash,
                        &tx.tx,
                    )
                }
                None => {
                    // Runs once its predecessors arrive.
                    ctx.stats.parked.fetch_add(1, Ordering::Relaxed);
                    ctx.chains.park(tx);
                    return;
                }
            }
        }
        other => other,
    };
    for waiting in ctx.chains.unpark(tx.tx.signer()) {
        let _ = ctx.requeue.try_send(waiting);
    }
    ctx.stats.simulated.fetch_add(1, Ordering::Relaxed);
    ctx.stats.sim_ns_total.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    let outcome = match result {
        Ok(o) => o,
        Err(SimError::State { source, .. }) => {
            ctx.stats.state_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tx = %tx.hash, error = %source, "state unavailable; tx skipped");
            return;
        }
        Err(e) => {
            ctx.stats.invalid.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(tx = %tx.hash, error = %e, "tx not simulated");
            return;
        }
    };
    let simulated_us = micros(tx.seen_at);
    let findings = detect(&outcome, &ctx.config.protected);
    let detected_us = micros(tx.seen_at);
    tracing::debug!(
        tx = %tx.hash,
        success = outcome.success,
        findings = findings.len(),
        sim_us = outcome.sim_time.as_micros() as u64,
        "simulated"
    );
    if findings.is_empty() {
        ctx.stats.clean.fetch_add(1, Ordering::Relaxed);
        if let Some(done) = &ctx.completions {
            let times = StageTimes::of(&tx, [picked_us, simulated_us, detected_us, detected_us]);
            let _ = done.try_send((times, false));
        }
        return;
    }
    ctx.stats.with_findings.fetch_add(1, Ordering::Relaxed);
    let inner = tx.tx.inner();
    let base_fee = simulator.block().base_fee;
    let fees = AttackFees {
        max_fee_per_gas: inner.max_fee_per_gas(),
        // A legacy tx tips what its gas price leaves over the base fee.
        max_priority_fee_per_gas: inner
            .max_priority_fee_per_gas()
            .unwrap_or_else(|| inner.max_fee_per_gas().saturating_sub(u128::from(base_fee))),
    };
    let mut contracts: Vec<Address> = findings.iter().map(|f| f.contract).collect();
    contracts.dedup();
    contracts.sort();
    contracts.dedup();
    let decisions = {
        let mut responder = match ctx.responder.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        contracts
            .iter()
            .filter_map(|c| ctx.config.protected(*c))
            .map(|p| (p.address, responder.decide(p, Some((tx.hash, fees)), base_fee)))
            .collect()
    };
    let signed_at = Instant::now();
    let times = StageTimes::of(&tx, [picked_us, simulated_us, detected_us, micros(tx.seen_at)]);
    if let Some(done) = &ctx.completions {
        let _ = done.try_send((times, true));
    }
    let _ = ctx.detections.send(Detection {
        tx,
        attack_fees: fees,
        outcome,
        findings,
        decisions,
        times,
        signed_at,
    });
}

fn micros(since: Instant) -> f64 {
    StageTimes::since(since, Instant::now())
}
