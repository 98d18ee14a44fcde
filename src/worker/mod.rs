//! The worker stage: OS threads, each owning its EVM, that take pending txs from the ingest
//! lanes (most likely to reach protected state first) and run simulate → detect → decide on
//! one thread, for latency; a tx with findings leaves as a `Detection` for the submit stage.
//! Cold state is fetched off the worker: the tx waits for it while the worker runs others.

mod chains;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use alloy::primitives::Address;
use crossbeam_channel::{Receiver, Select, Sender};
use serde::Serialize;

pub use chains::{ChainRun, ChainedOutcome, SenderChains};

use crate::{
    config::Config,
    detect::detect,
    fork::{LiveFork, StateKey},
    respond::{AttackFees, Decision, Responder, decide_all},
    simulate::{SimBlock, SimError, Simulator},
    types::{Finding, PendingTx, SimOutcome},
};

/// The fork the workers read, with the block env pending txs run in.
pub type LiveState = LiveFork<SimBlock>;

/// Deferred fetch rounds before a tx's remaining misses are fetched on the worker itself.
const MAX_DEFERRED_ROUNDS: u8 = 6;

/// Microseconds from when the tx's frame arrived, at the end of each stage.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageTimes {
    pub decoded_us: f64,
    pub queued_us: f64,
    /// Taken off the queue by a worker (the last time, for a tx that waited for state).
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
    pub fn since(seen: Instant, at: Instant) -> f64 {
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
    /// Runs that met cold state and handed the tx to the fetcher instead of waiting.
    pub deferred: AtomicU64,
    pub sim_ns_total: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerCounts {
    pub simulated: u64,
    pub clean: u64,
    pub with_findings: u64,
    pub invalid: u64,
    pub state_errors: u64,
    pub chained: u64,
    pub parked: u64,
    pub deferred: u64,
}

impl WorkerStats {
    pub fn snapshot(&self) -> WorkerCounts {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerCounts {
            simulated: l(&self.simulated),
            clean: l(&self.clean),
            with_findings: l(&self.with_findings),
            invalid: l(&self.invalid),
            state_errors: l(&self.state_errors),
            chained: l(&self.chained),
            parked: l(&self.parked),
            deferred: l(&self.deferred),
        }
    }
}

/// A tx on its way through the workers, with how many times it waited for state.
#[derive(Debug)]
pub struct Job {
    pub tx: PendingTx,
    rounds: u8,
}

/// Where finished detections go: the submit stage's bounded queue.
pub type DetectionSender = tokio::sync::mpsc::Sender<Detection>;

/// Everything a worker shares with the rest of the pipeline.
#[derive(Debug)]
pub struct WorkerContext {
    pub config: Config,
    pub chain_id: u64,
    pub live: Arc<LiveState>,
    pub responder: Arc<Mutex<Responder>>,
    pub detections: DetectionSender,
    pub chains: Arc<SenderChains>,
    /// Running sums of takes under the threshold (shared with the block guard).
    pub cumulative: Arc<crate::detect::CumulativeTracker>,
    pub stats: WorkerStats,
    /// Txs whose state arrived, or whose predecessor did: taken before any lane.
    pub ready: Sender<Job>,
    pub stop: AtomicBool,
    /// Runs the fetches of deferred txs (the nodes' runtime).
    pub runtime: Option<tokio::runtime::Handle>,
    /// Benchmarks: every handled tx's stage times, findings or not.
    pub completions: Option<Sender<(StageTimes, bool)>>,
}

/// The queues a worker reads: `ready` first, then each lane in order.
#[derive(Debug, Clone)]
pub struct WorkerQueues {
    pub ready: Receiver<Job>,
    pub lanes: Vec<Receiver<PendingTx>>,
}

/// Starts `count` workers on `queues`.
pub fn spawn_workers(
    count: usize,
    ctx: Arc<WorkerContext>,
    queues: WorkerQueues,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    (0..count.max(1))
        .map(|i| {
            let ctx = Arc::clone(&ctx);
            let queues = queues.clone();
            std::thread::Builder::new()
                .name(format!("sim-worker-{i}"))
                .spawn(move || worker_loop(&ctx, &queues))
        })
        .collect()
}

fn next_job(queues: &WorkerQueues) -> Option<Job> {
    if let Ok(job) = queues.ready.try_recv() {
        return Some(job);
    }
    for lane in &queues.lanes {
        if let Ok(tx) = lane.try_recv() {
            return Some(Job { tx, rounds: 0 });
        }
    }
    let mut select = Select::new_biased();
    select.recv(&queues.ready);
    for lane in &queues.lanes {
        select.recv(lane);
    }
    let op = select.select_timeout(Duration::from_millis(100)).ok()?;
    match op.index() {
        0 => op.recv(&queues.ready).ok(),
        i => op.recv(&queues.lanes[i - 1]).ok().map(|tx| Job { tx, rounds: 0 }),
    }
}

fn worker_loop(ctx: &WorkerContext, queues: &WorkerQueues) {
    let current = ctx.live.current();
    let mut generation = ctx.live.generation();
    let mut simulator =
        Simulator::new(&ctx.config, Arc::clone(&current.0), current.1, ctx.chain_id);
    let _ = simulator.warm();
    ctx.stats.warmed.fetch_add(1, Ordering::AcqRel);
    while !ctx.stop.load(Ordering::Acquire) {
        // Shutdown sets `stop` before the queues close, so an idle wait ends within 100 ms.
        let Some(job) = next_job(queues) else { continue };
        let now = ctx.live.generation();
        if now != generation {
            let current = ctx.live.current();
            simulator.set_fork(Arc::clone(&current.0), current.1);
            generation = now;
            ctx.chains.prune();
        }
        handle(ctx, &mut simulator, job, generation);
    }
}

fn handle(ctx: &WorkerContext, simulator: &mut Simulator, job: Job, generation: u64) {
    let Job { tx, rounds } = job;
    let picked_us = micros(tx.seen_at);
    ctx.chains.record(&tx);
    let started = Instant::now();
    // Cold state is fetched off this thread, unless the tx has waited enough already.
    let defer = ctx.runtime.is_some() && rounds < MAX_DEFERRED_ROUNDS;
    simulator.set_defer_fetch(defer);
    let result = match ctx.chains.simulate(simulator, &tx, generation) {
        Ok(chains::ChainRun::Done(outcome)) => {
            if outcome.chained {
                ctx.stats.chained.fetch_add(1, Ordering::Relaxed);
            }
            Ok(outcome.outcome)
        }
        Ok(chains::ChainRun::Parked) => {
            // Runs once its predecessors arrive.
            ctx.stats.parked.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(e) => Err(e),
    };
    simulator.set_defer_fetch(false);
    ctx.stats.sim_ns_total.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    // Any tx parked behind this one may run now.
    for waiting in ctx.chains.unpark(tx.tx.signer()) {
        let _ = ctx.ready.try_send(Job { tx: waiting, rounds: 0 });
    }
    let outcome = match result {
        Ok(o) => o,
        Err(SimError::NeedState { keys, .. }) => {
            ctx.stats.deferred.fetch_add(1, Ordering::Relaxed);
            fetch_then_retry(ctx, Job { tx, rounds: rounds + 1 }, keys);
            return;
        }
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
    ctx.stats.simulated.fetch_add(1, Ordering::Relaxed);
    let simulated_us = micros(tx.seen_at);
    let mut findings = detect(&outcome, &ctx.config.protected);
    findings.extend(ctx.cumulative.observe(&outcome, &ctx.config.protected));
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
    let base_fee = simulator.block().base_fee;
    let fees = AttackFees::of(tx.tx.inner(), base_fee);
    let decisions =
        decide_all(&ctx.responder, &ctx.config, &findings, Some((tx.hash, fees)), base_fee);
    let signed_at = Instant::now();
    let times = StageTimes::of(&tx, [picked_us, simulated_us, detected_us, micros(tx.seen_at)]);
    if let Some(done) = &ctx.completions {
        let _ = done.try_send((times, true));
    }
    let detection =
        Detection { tx, attack_fees: fees, outcome, findings, decisions, times, signed_at };
    // The submit stage's queue is bounded; a detection is never dropped: wait for room.
    if let Err(tokio::sync::mpsc::error::TrySendError::Full(d)) = ctx.detections.try_send(detection)
    {
        let _ = ctx.detections.blocking_send(d);
    }
}

/// Fetches what the tx missed on the nodes' runtime, then puts it back at the front.
fn fetch_then_retry(ctx: &WorkerContext, job: Job, keys: Vec<StateKey>) {
    let Some(runtime) = &ctx.runtime else { return };
    let fork = Arc::clone(&ctx.live.current().0);
    let ready = ctx.ready.clone();
    runtime.spawn(async move {
        let (mut accounts, mut slots, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        for key in keys {
            match key {
                StateKey::Account(a) => accounts.push(a),
                StateKey::Slot(a, s) => slots.push((a, s)),
                StateKey::BlockHash(n) => hashes.push(n),
            }
        }
        // A failed fetch still re-queues the tx: its next run fetches on the worker and
        // reports the error there.
        if let Err(e) = fork.prefetch(&accounts, &slots).await {
            tracing::debug!(tx = %job.tx.hash, error = %e, "deferred state fetch failed");
        }
        for n in hashes {
            let _ = fork.prefetch_block_hash(n).await;
        }
        let _ = ready.try_send(job);
    });
}

fn micros(since: Instant) -> f64 {
    StageTimes::since(since, Instant::now())
}
