//! The worker stage: OS threads, each owning its EVM, that take pending txs from the ingest
//! lanes (most likely to reach protected state first) and run simulate → detect → decide on
//! one thread, for latency; a tx with findings leaves as a `Detection` for the submit stage.
//! Cold state is fetched off the worker: the tx waits for it while the worker runs others.

mod capture;
mod chains;
mod creations;
mod nudge;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use alloy::primitives::{Address, B256};
use crossbeam_channel::{Receiver, Select, Sender};
use metrics::{Counter, Gauge, Histogram};
use serde::Serialize;

pub use capture::{Verdict, verdict};
pub use chains::{ChainRun, ChainedOutcome, SenderChains};
pub use nudge::{Decoding, Nudge};

use crate::{
    config::Config,
    detect::detect,
    fork::{ColdTx, LiveFork, StateKey},
    respond::{AttackFees, Decision, Responder, decide_all},
    simulate::{SimBlock, SimError, Simulator},
    telemetry::{Telemetry, seconds_of_us},
    types::{Finding, PendingTx, SenderCheck, SimOutcome},
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
    /// First taken off its lane by a worker (the time it waited behind other txs).
    pub first_picked_us: f64,
    /// Taken off the queue by a worker (the last time, for a tx that waited for state).
    pub picked_us: f64,
    pub simulated_us: f64,
    pub detected_us: f64,
    pub signed_us: f64,
    /// Times the tx waited for cold state from the nodes before its final run.
    pub state_waits: u32,
}

impl StageTimes {
    /// The tx's own stamps, then the worker's: picked, simulated, detected, signed.
    fn of(
        tx: &PendingTx,
        first_picked_us: f64,
        [picked_us, simulated_us, detected_us, signed_us]: [f64; 4],
    ) -> Self {
        Self {
            decoded_us: Self::since(tx.seen_at, tx.decoded_at),
            queued_us: Self::since(tx.seen_at, tx.queued_at),
            first_picked_us,
            picked_us,
            simulated_us,
            detected_us,
            signed_us,
            state_waits: 0,
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
    /// Each pause (by its tx hash) as the worker already wrote it to the nodes' open pause
    /// connections; the submit stage reads their answers and sends everywhere else.
    pub early: Vec<(B256, crate::submit::EarlyWrites)>,
}

/// The workers' metrics: what became of each tx, and how long each stage took since its frame
/// arrived (`preempt_stage_latency_seconds{stage}`), registered once.
#[derive(Debug)]
pub struct WorkerStats {
    /// Workers whose EVM and protected state are warm (not a metric: the bench waits on it).
    pub warmed: AtomicU64,
    warm: Gauge,
    pub simulated: Counter,
    pub clean: Counter,
    pub with_findings: Counter,
    pub invalid: Counter,
    pub state_errors: Counter,
    pub chained: Counter,
    pub parked: Counter,
    /// Runs that met cold state and handed the tx to the fetcher instead of waiting.
    pub deferred: Counter,
    /// New contracts that could reach a protected one, probed from their deployer.
    pub probed: Counter,
    /// Deployments whose probe found something to act on.
    pub probe_findings: Counter,
    /// Deployments not queued for a probe (the queue was full).
    pub probes_dropped: Counter,
    /// Keep-warm runs of idle workers (`simulation.keep_warm_ms`).
    pub kept_warm: Counter,
    /// Txs queued on a node's claimed sender that the signature did not bear out: dropped
    /// with whatever their run found.
    pub forged: Counter,
    /// Txs judged harmless before their sender's check settled, their record left to the
    /// record queue.
    pub records_handed: Counter,
    /// Each run's time on the worker (EVM and inspection), seconds.
    pub sim_seconds: Histogram,
    stages: StageHistograms,
    telemetry: Telemetry,
}

/// One latency histogram per stage, seconds since the tx's frame arrived.
#[derive(Debug)]
struct StageHistograms {
    decoded: Histogram,
    queued: Histogram,
    picked: Histogram,
    simulated: Histogram,
    detected: Histogram,
    signed: Histogram,
}

/// The stage latency histogram's name; the submit stage adds `stage="sent"` to it.
pub const STAGE_LATENCY: &str = "preempt_stage_latency_seconds";

/// Stage `stage`'s latency histogram on `t`.
pub fn stage_histogram(t: &Telemetry, stage: &'static str) -> Histogram {
    t.histogram(STAGE_LATENCY, &[("stage", stage.to_string())])
}

impl Default for WorkerStats {
    /// On a recorder of its own (tests, the bench); the guard registers on its `Telemetry`.
    fn default() -> Self {
        Self::new(&Telemetry::new())
    }
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
    pub probed: u64,
    pub probe_findings: u64,
    pub probes_dropped: u64,
    pub forged: u64,
    pub records_handed: u64,
}

impl WorkerStats {
    pub fn new(t: &Telemetry) -> Self {
        let h = |stage| stage_histogram(t, stage);
        Self {
            warmed: AtomicU64::new(0),
            warm: t.gauge("preempt_workers_warm", &[]),
            simulated: t.counter("preempt_simulations_total", &[]),
            clean: t.counter("preempt_simulations_clean_total", &[]),
            with_findings: t.counter("preempt_simulations_with_findings_total", &[]),
            invalid: t.counter("preempt_simulations_invalid_total", &[]),
            state_errors: t.counter("preempt_simulation_state_errors_total", &[]),
            chained: t.counter("preempt_worker_chained_total", &[]),
            parked: t.counter("preempt_worker_parked_total", &[]),
            deferred: t.counter("preempt_worker_state_waits_total", &[]),
            probed: t.counter("preempt_probes_total", &[]),
            probe_findings: t.counter("preempt_probe_findings_total", &[]),
            probes_dropped: t.counter("preempt_probes_dropped_total", &[]),
            kept_warm: t.counter("preempt_worker_keep_warm_total", &[]),
            forged: t.counter("preempt_worker_forged_dropped_total", &[]),
            records_handed: t.counter("preempt_worker_records_handed_total", &[]),
            sim_seconds: t.histogram("preempt_simulation_seconds", &[]),
            stages: StageHistograms {
                decoded: h("decoded"),
                queued: h("queued"),
                picked: h("picked"),
                simulated: h("simulated"),
                detected: h("detected"),
                signed: h("signed"),
            },
            telemetry: t.clone(),
        }
    }

    fn note_warm(&self) {
        let warm = self.warmed.fetch_add(1, Ordering::AcqRel) + 1;
        self.warm.set(warm as f64);
    }

    /// A handled tx's stage times; `signed`: whether it got to the responder.
    fn record_stages(&self, t: &StageTimes, signed: bool) {
        let s = &self.stages;
        let sec = seconds_of_us;
        s.decoded.record(sec(t.decoded_us));
        s.queued.record(sec(t.queued_us));
        s.picked.record(sec(t.picked_us));
        s.simulated.record(sec(t.simulated_us));
        s.detected.record(sec(t.detected_us));
        if signed {
            s.signed.record(sec(t.signed_us));
        }
    }

    pub fn snapshot(&self) -> WorkerCounts {
        let s = self.telemetry.snapshot();
        let c = |name| s.count(name, &[]);
        WorkerCounts {
            simulated: c("preempt_simulations_total"),
            clean: c("preempt_simulations_clean_total"),
            with_findings: c("preempt_simulations_with_findings_total"),
            invalid: c("preempt_simulations_invalid_total"),
            state_errors: c("preempt_simulation_state_errors_total"),
            chained: c("preempt_worker_chained_total"),
            parked: c("preempt_worker_parked_total"),
            deferred: c("preempt_worker_state_waits_total"),
            probed: c("preempt_probes_total"),
            probe_findings: c("preempt_probe_findings_total"),
            probes_dropped: c("preempt_probes_dropped_total"),
            forged: c("preempt_worker_forged_dropped_total"),
            records_handed: c("preempt_worker_records_handed_total"),
        }
    }
}

/// A tx on its way through the workers, with how many times it waited for state.
#[derive(Debug)]
pub struct Job {
    pub tx: PendingTx,
    rounds: u8,
    /// When a worker first took it (µs since seen), before any wait for state.
    first_picked_us: Option<f64>,
    /// The lane it came by: its retries keep that lane's place.
    lane: usize,
}

impl Job {
    fn new(tx: PendingTx, lane: usize) -> Self {
        Self { tx, rounds: 0, first_picked_us: None, lane }
    }
}

/// Where retries go (txs whose state arrived, or whose predecessor did): one queue per lane,
/// read just before that lane, so a burst of cold ordinary txs never goes ahead of a tx from
/// a higher lane. State fetches are bounded per lane below the first, for the same reason on
/// the node's side.
#[derive(Debug, Clone)]
pub struct Ready {
    retries: Vec<Sender<Job>>,
    fetch_slots: Vec<Option<Arc<tokio::sync::Semaphore>>>,
    /// Pending deployments to probe: read after every lane, so a probe never holds up a tx.
    probes: Sender<ProbeJob>,
    /// Txs judged harmless before their sender's check settled: recorded in their sender's
    /// chain once it has, read right after the first lane.
    records: Sender<PendingTx>,
}

/// The workers' side of [`Ready`].
#[derive(Debug, Clone)]
pub struct ReadyQueues {
    retries: Vec<Receiver<Job>>,
    probes: Receiver<ProbeJob>,
    records: Receiver<PendingTx>,
}

/// Deployments waiting for a probe at most; more are left to the block guard's probe.
pub const PROBE_QUEUE: usize = 256;

/// Harmless txs waiting for their record at most; past that a worker waits on the check itself.
const RECORD_QUEUE: usize = 4_096;

/// Deferred state fetches in flight at once per lane below the first: more would queue on
/// the node ahead of a higher lane's fetch (the protected lane's are not bounded).
pub const FETCHES_IN_FLIGHT_PER_LANE: usize = 8;

impl Ready {
    pub fn channel(lanes: usize) -> (Self, ReadyQueues) {
        let (retries, receivers) =
            (0..lanes.max(1)).map(|_| crossbeam_channel::unbounded()).unzip();
        let fetch_slots = (0..lanes.max(1))
            .map(|lane| {
                (lane > 0)
                    .then(|| Arc::new(tokio::sync::Semaphore::new(FETCHES_IN_FLIGHT_PER_LANE)))
            })
            .collect();
        let (probes, probe_rx) = crossbeam_channel::bounded(PROBE_QUEUE);
        let (records, record_rx) = crossbeam_channel::bounded(RECORD_QUEUE);
        (
            Self { retries, fetch_slots, probes, records },
            ReadyQueues { retries: receivers, probes: probe_rx, records: record_rx },
        )
    }

    fn send(&self, job: Job) {
        let lane = job.lane.min(self.retries.len() - 1);
        let _ = self.retries[lane].send(job);
    }

    fn fetch_slots(&self, lane: usize) -> Option<Arc<tokio::sync::Semaphore>> {
        self.fetch_slots.get(lane).cloned().flatten()
    }
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
    /// Txs whose state arrived, or whose predecessor did.
    pub ready: Ready,
    pub stop: AtomicBool,
    /// Runs the fetches of deferred txs (the nodes' runtime).
    pub runtime: Option<tokio::runtime::Handle>,
    /// Benchmarks: every handled tx's stage times, findings or not.
    pub completions: Option<Sender<(StageTimes, bool)>>,
    /// Writes each pause on the nodes' pause connections from the worker itself, as soon as
    /// it is signed (`None`: the submit stage sends it all).
    pub submitter: Option<Arc<crate::submit::Submitter>>,
    /// Ingest's seen-set: each pause is marked seen as it is written, so the copy the nodes
    /// echo back in their pending feed is not simulated (a worker is busy with nothing of ours
    /// the moment after a pause, when a second attack may follow).
    pub seen: Option<Arc<crate::ingest::SeenSet>>,
    /// Where a detection's pre-state goes (`[incidents] store` set): recorded by running the
    /// tx again after its pause has left, so other txs pay nothing for it.
    pub prestate: Option<Arc<crate::incident::IncidentLog>>,
}

impl WorkerContext {
    /// Workers run in-process without the nodes (the bench's replay, tests): no fetches, no
    /// early writes, no seen-set or incident store; every handled tx's stage times go to
    /// `completions`.
    pub fn in_process(
        config: Config,
        chain_id: u64,
        live: Arc<LiveState>,
        responder: Responder,
        detections: DetectionSender,
        ready: Ready,
        completions: Sender<(StageTimes, bool)>,
    ) -> Self {
        Self {
            chain_id,
            live,
            responder: Arc::new(Mutex::new(responder)),
            detections,
            chains: Arc::new(SenderChains::default()),
            cumulative: Arc::new(config.cumulative.tracker()),
            stats: WorkerStats::default(),
            ready,
            stop: Default::default(),
            runtime: None,
            completions: Some(completions),
            submitter: None,
            seen: None,
            prestate: None,
            config,
        }
    }
}

/// The queues a worker reads: each lane after its retries, highest lane first; txs that only
/// need recording (`skipped`) right after the first lane.
#[derive(Debug, Clone)]
pub struct WorkerQueues {
    pub ready: ReadyQueues,
    pub lanes: Vec<Receiver<PendingTx>>,
    /// Txs that run no code: recorded for their sender's chain, not simulated.
    pub skipped: Option<Receiver<PendingTx>>,
    /// Ingest's nudge as a frame arrives, and the wake-up it sends (`None`: none is sent).
    pub nudged: Option<(Arc<Nudge>, Receiver<()>)>,
}

/// What a worker took, and from where.
enum Work {
    Run(Job),
    Record(PendingTx),
    Probe(Box<ProbeJob>),
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

/// One queue a worker reads.
#[derive(Debug, Clone, Copy)]
enum Source {
    Retry(usize),
    Lane(usize),
    Skipped,
    Records,
    Probe,
}

impl WorkerQueues {
    /// The order a worker reads its queues in.
    fn order(&self) -> Vec<Source> {
        let mut order = Vec::with_capacity(2 * self.lanes.len() + 1);
        for lane in 0..self.lanes.len() {
            if lane < self.ready.retries.len() {
                order.push(Source::Retry(lane));
            }
            order.push(Source::Lane(lane));
            if lane == 0 {
                order.push(Source::Records);
                if self.skipped.is_some() {
                    order.push(Source::Skipped);
                }
            }
        }
        order.push(Source::Probe);
        order
    }

    /// Whether a tx (or a retry) waits in any lane.
    fn tx_waiting(&self) -> bool {
        self.lanes.iter().any(|l| !l.is_empty()) || self.ready.retries.iter().any(|r| !r.is_empty())
    }

    fn try_take(&self, source: Source) -> Option<Work> {
        match source {
            Source::Retry(lane) => self.ready.retries[lane].try_recv().ok().map(Work::Run),
            Source::Lane(lane) => {
                self.lanes[lane].try_recv().ok().map(|tx| Work::Run(Job::new(tx, lane)))
            }
            Source::Skipped => self.skipped.as_ref()?.try_recv().ok().map(Work::Record),
            Source::Records => self.ready.records.try_recv().ok().map(Work::Record),
            Source::Probe => self.ready.probes.try_recv().ok().map(|p| Work::Probe(Box::new(p))),
        }
    }
}

/// How long an idle worker sleeps on its queues before it looks at the head again.
const IDLE_WAIT: Duration = Duration::from_millis(20);

fn next_job(queues: &WorkerQueues, order: &[Source], wait: Duration) -> Option<Work> {
    let take = || order.iter().find_map(|s| queues.try_take(*s));
    if let Some(work) = take() {
        return Some(work);
    }
    let deadline = Instant::now() + wait;
    loop {
        // Nothing waiting: sleep on all of them, the first in order winning a tie, and on the
        // nudge last.
        let mut select = Select::new_biased();
        for source in order {
            match *source {
                Source::Retry(lane) => select.recv(&queues.ready.retries[lane]),
                Source::Lane(lane) => select.recv(&queues.lanes[lane]),
                Source::Skipped => select.recv(queues.skipped.as_ref()?),
                Source::Records => select.recv(&queues.ready.records),
                Source::Probe => select.recv(&queues.ready.probes),
            };
        }
        if let Some((_, woken)) = &queues.nudged {
            select.recv(woken);
        }
        let op = select.select_deadline(deadline).ok()?;
        let Some(source) = order.get(op.index()) else {
            // Nudged: a frame is being decoded; poll for its tx rather than sleep again.
            let (nudge, woken) = queues.nudged.as_ref()?;
            let _ = op.recv(woken);
            if let Some(work) = nudge.poll(take) {
                return Some(work);
            }
            continue;
        };
        return match *source {
            Source::Retry(lane) => op.recv(&queues.ready.retries[lane]).ok().map(Work::Run),
            Source::Lane(lane) => {
                op.recv(&queues.lanes[lane]).ok().map(|tx| Work::Run(Job::new(tx, lane)))
            }
            Source::Skipped => {
                queues.skipped.as_ref().and_then(|r| op.recv(r).ok()).map(Work::Record)
            }
            Source::Records => op.recv(&queues.ready.records).ok().map(Work::Record),
            Source::Probe => op.recv(&queues.ready.probes).ok().map(|p| Work::Probe(Box::new(p))),
        };
    }
}

/// Runs this thread at `nice` (Linux; elsewhere nothing happens). Refused (no `CAP_SYS_NICE`
/// for a negative value): it runs at the default priority, and the first worker says so.
fn set_priority(nice: i32) {
    static REFUSED: std::sync::Once = std::sync::Once::new();
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on this thread's own id; no memory is passed.
        let tid = unsafe { libc::gettid() };
        let set = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
        if set != 0 {
            let error = std::io::Error::last_os_error();
            REFUSED.call_once(|| {
                tracing::warn!(
                    nice,
                    %error,
                    "simulation workers run at the default priority (give the process \
                     CAP_SYS_NICE, or set simulation.worker_nice = 0 to silence this)"
                );
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (nice, &REFUSED);
}

fn worker_loop(ctx: &WorkerContext, queues: &WorkerQueues) {
    if ctx.config.simulation.worker_nice != 0 {
        set_priority(ctx.config.simulation.worker_nice);
    }
    let current = ctx.live.current();
    let mut generation = ctx.live.generation();
    let mut simulator =
        Simulator::new(&ctx.config, Arc::clone(&current.0), current.1, ctx.chain_id);
    let _ = simulator.warm();
    ctx.stats.note_warm();
    let order = queues.order();
    let wait = ctx.config.simulation.keep_warm.map_or(IDLE_WAIT, |every| every.min(IDLE_WAIT));
    while !ctx.stop.load(Ordering::Acquire) {
        // Shutdown sets `stop` before the queues close, so an idle wait ends within 20 ms.
        let work = match next_job(queues, &order, wait) {
            Some(Work::Record(tx)) => {
                record_signed(ctx, &tx);
                continue;
            }
            Some(work) => work,
            None => {
                // Idle: take a new head now and read the protected state on it, so the next
                // tx (an attack, perhaps) does not pay for that.
                if follow_head(ctx, &mut simulator, &mut generation) {
                    let _ = simulator.warm();
                }
                // Measured: after 100–300 ms idle a tx runs 2–3x slower (cold CPU caches) than
                // right after another; re-running recent work takes back about half of that.
                if ctx.config.simulation.keep_warm.is_some() {
                    simulator.keep_warm();
                    ctx.stats.kept_warm.increment(1);
                }
                continue;
            }
        };
        follow_head(ctx, &mut simulator, &mut generation);
        match work {
            Work::Run(job) => handle(ctx, &mut simulator, job, generation),
            Work::Probe(job) => probe_deployment(ctx, &mut simulator, *job, queues),
            Work::Record(_) => {}
        }
    }
}

/// Records a tx that runs no code, or was judged harmless before its sender's check settled,
/// in its sender's chain once the claimed sender is borne out: only that sender's later txs
/// need it, and may run now.
fn record_signed(ctx: &WorkerContext, tx: &PendingTx) {
    if !sender_signed(tx, RECORD_WAITS_FOR_CHECK) {
        tracing::debug!(tx = %tx.hash, "claimed sender did not sign it; not recorded");
        return ctx.stats.forged.increment(1);
    }
    ctx.chains.record(tx);
    unpark_behind(ctx, tx);
}

/// Queues the txs of `tx`'s sender that were parked until it arrived.
fn unpark_behind(ctx: &WorkerContext, tx: &PendingTx) {
    for (waiting, lane) in ctx.chains.unpark(tx.tx.signer()) {
        ctx.ready.send(Job::new(waiting, lane));
    }
}

/// Moves the simulator to the newest fork if the head moved; true if it did.
fn follow_head(ctx: &WorkerContext, simulator: &mut Simulator, generation: &mut u64) -> bool {
    let now = ctx.live.generation();
    if now == *generation {
        return false;
    }
    let current = ctx.live.current();
    simulator.set_fork(Arc::clone(&current.0), current.1);
    *generation = now;
    ctx.chains.prune(&current.0);
    // Txs that waited for a creation no run delivered go as the fork is.
    for (waiting, lane) in ctx.chains.creations().take_released() {
        ctx.ready.send(Job::new(waiting, lane));
    }
    true
}

fn handle(ctx: &WorkerContext, simulator: &mut Simulator, job: Job, generation: u64) {
    let Job { tx, rounds, first_picked_us, lane } = job;
    let picked_us = micros(tx.seen_at);
    let first_picked_us = first_picked_us.unwrap_or(picked_us);
    // A tx queued on its claimed sender runs while ingest recovers the signer; its sender's
    // chain takes it only once the claim is borne out (below), so a forged claim cannot put
    // another account's nonce in it. The run itself reads the chain, never writes it.
    let recorded = match tx.sender_check.as_deref().map(SenderCheck::settled) {
        None | Some(Some(true)) => {
            ctx.chains.record(&tx);
            true
        }
        Some(Some(false)) => return ctx.stats.forged.increment(1),
        Some(None) => false,
    };
    let started = Instant::now();
    // Cold state is fetched off this thread, unless the tx has waited enough already.
    let defer = ctx.runtime.is_some() && rounds < MAX_DEFERRED_ROUNDS;
    simulator.set_defer_fetch(defer);
    let result = match ctx.chains.simulate(simulator, &tx, generation, lane) {
        Ok(chains::ChainRun::Done(outcome)) => {
            if outcome.chained {
                ctx.stats.chained.increment(1);
            }
            Ok(outcome.outcome)
        }
        Ok(chains::ChainRun::Parked { state_nonce, missing }) => {
            // Runs once its predecessors arrive.
            ctx.stats.parked.increment(1);
            tracing::debug!(
                tx = %tx.hash,
                nonce = alloy::consensus::Transaction::nonce(tx.tx.inner()),
                state_nonce,
                missing,
                "parked until its sender's earlier tx arrives"
            );
            return;
        }
        Ok(chains::ChainRun::AwaitingCreation { address }) => {
            ctx.stats.parked.increment(1);
            tracing::debug!(tx = %tx.hash, %address, "waits for the pending creation it calls");
            return;
        }
        Err(e) => Err(e),
    };
    // The run ends here: waiting on the sender's check and freeing the txs parked behind it
    // are work outside the EVM, timed with detection.
    let simulated_us = micros(tx.seen_at);
    ctx.stats.sim_seconds.record(started.elapsed().as_secs_f64());
    simulator.set_defer_fetch(false);
    let protected = &ctx.config.protected;
    let findings = result.as_ref().ok().map(|outcome| detect(outcome, protected));
    let mut unpark = true;
    if !recorded {
        // A short run often ends before ingest has recovered the signer. A tx with nothing to
        // judge is harmless whoever signed it: its verdict stands now, and its record (for its
        // sender's later txs) waits for the check on the record queue, not on this worker.
        let harmless = match (&result, &findings) {
            (Ok(outcome), Some(found)) => {
                found.is_empty()
                    && !crate::detect::CumulativeTracker::counts(outcome, protected)
                    && !crate::probe::creates_contracts(outcome)
            }
            _ => false,
        };
        let unsettled = tx.sender_check.as_deref().and_then(SenderCheck::settled).is_none();
        if harmless && unsettled && ctx.ready.records.try_send(tx.clone()).is_ok() {
            ctx.stats.records_handed.increment(1);
            unpark = false;
        } else {
            // Settled by now, as a rule: the run took longer than the recovery.
            if !sender_signed(&tx, RUN_WAITS_FOR_CHECK) {
                tracing::debug!(tx = %tx.hash, "claimed sender did not sign it; run dropped");
                return ctx.stats.forged.increment(1);
            }
            ctx.chains.record(&tx);
        }
    }
    // Any tx parked behind this one may run now.
    if unpark {
        unpark_behind(ctx, &tx);
    }
    let outcome = match result {
        Ok(o) => o,
        Err(SimError::NeedState { keys, .. }) => {
            ctx.stats.deferred.increment(1);
            tracing::debug!(tx = %tx.hash, round = rounds, ?keys, "waiting for cold state");
            let traceable = !ctx.chains.calls_pending_creation(&tx);
            fetch_then_retry(
                ctx,
                Job { tx, rounds: rounds + 1, first_picked_us: Some(first_picked_us), lane },
                keys,
                traceable,
            );
            return;
        }
        Err(SimError::State { source, .. }) => {
            ctx.stats.state_errors.increment(1);
            tracing::warn!(tx = %tx.hash, error = %source, "state unavailable; tx skipped");
            return;
        }
        Err(e) => {
            ctx.stats.invalid.increment(1);
            tracing::debug!(tx = %tx.hash, error = %e, "tx not simulated");
            return;
        }
    };
    ctx.stats.simulated.increment(1);
    let mut findings = findings.unwrap_or_default();
    findings.extend(ctx.cumulative.observe(&outcome, protected));
    // A deployment that itself did nothing wrong: what the new contract would do, called by its
    // deployer, is judged on the probe queue, which workers read after every lane.
    if findings.is_empty() && crate::probe::creates_contracts(&outcome) {
        let hash = tx.hash;
        let job = ProbeJob { tx, deploy: outcome, first_picked_us, gave_way: 0 };
        match ctx.ready.probes.try_send(job) {
            Ok(()) => {
                tracing::debug!(tx = %hash, "deployment queued for a probe");
                return;
            }
            Err(e) => {
                // Full: the block guard probes the deployment when a block holds it.
                ctx.stats.probes_dropped.increment(1);
                let ProbeJob { tx, deploy, .. } = e.into_inner();
                let detected_us = micros(tx.seen_at);
                finish(
                    ctx,
                    simulator,
                    tx,
                    deploy,
                    findings,
                    RunInfo {
                        first_picked_us,
                        state_waits: rounds,
                        chain: Some((generation, lane)),
                    },
                    [picked_us, simulated_us, detected_us],
                );
                return;
            }
        }
    }
    let detected_us = micros(tx.seen_at);
    finish(
        ctx,
        simulator,
        tx,
        outcome,
        findings,
        RunInfo { first_picked_us, state_waits: rounds, chain: Some((generation, lane)) },
        [picked_us, simulated_us, detected_us],
    );
}

/// A pending deployment waiting for its probe.
#[derive(Debug)]
pub struct ProbeJob {
    tx: PendingTx,
    /// The deploy tx's own simulation (what it called while deploying).
    deploy: SimOutcome,
    first_picked_us: f64,
    /// Times it stopped for a tx waiting behind it.
    gave_way: u8,
}

/// A probe stops for a waiting tx at most this often; after that it runs to its end (else a
/// steady stream of txs would keep a deployment from ever being probed before its block).
const PROBE_GIVES_WAY: u8 = 3;

/// Probes what a pending deployment created, from its deployer; a finding leaves as a
/// `Detection` on the deploy tx, like any other.
fn probe_deployment(
    ctx: &WorkerContext,
    simulator: &mut Simulator,
    job: ProbeJob,
    queues: &WorkerQueues,
) {
    let ProbeJob { tx, deploy, first_picked_us, gave_way } = job;
    let picked_us = micros(tx.seen_at);
    simulator.set_defer_fetch(false);
    let mut findings = Vec::new();
    let mut outcome = deploy;
    match crate::probe::probe_pending_deploy(
        simulator,
        tx.hash,
        &tx.tx,
        &outcome,
        &ctx.config.protected,
        crate::probe::ProbeBudget::default(),
        // Measured: an attack sent right behind its deployment otherwise waited for the
        // deployment's probe (~1 ms on the bench, up to the 150 ms budget).
        &|| gave_way < PROBE_GIVES_WAY && queues.tx_waiting(),
    ) {
        Ok((Some(report), _)) if report.gave_way && report.findings.is_empty() => {
            // Probed again after the waiting txs, from its first call.
            let job = ProbeJob { tx, deploy: outcome, first_picked_us, gave_way: gave_way + 1 };
            if ctx.ready.probes.try_send(job).is_err() {
                ctx.stats.probes_dropped.increment(1);
            }
            return;
        }
        Ok((report, probed)) => {
            ctx.stats.probed.increment(probed as u64);
            if let Some(report) = report {
                ctx.stats.probe_findings.increment(1);
                findings = report.findings;
                if let Some(probed) = report.outcome {
                    outcome = probed;
                }
            }
        }
        // Typically a sender with earlier pending txs, or a deployment mined meanwhile: the
        // block guard probes it from its block.
        Err(e) => tracing::debug!(tx = %tx.hash, error = %e, "deployment not probed"),
    }
    let detected_us = micros(tx.seen_at);
    finish(
        ctx,
        simulator,
        tx,
        outcome,
        findings,
        RunInfo { first_picked_us, state_waits: 0, chain: None },
        [picked_us, picked_us, detected_us],
    );
}

/// The end of every simulated tx: logged, counted, and with findings decided on and handed to
/// the submit stage.
fn finish(
    ctx: &WorkerContext,
    simulator: &mut Simulator,
    tx: PendingTx,
    outcome: SimOutcome,
    findings: Vec<Finding>,
    run: RunInfo,
    [picked_us, simulated_us, detected_us]: [f64; 3],
) {
    let RunInfo { first_picked_us, state_waits, chain } = run;
    tracing::debug!(
        tx = %tx.hash,
        success = outcome.success,
        findings = findings.len(),
        sim_us = outcome.sim_time.as_micros() as u64,
        "simulated"
    );
    if findings.is_empty() {
        ctx.stats.clean.increment(1);
        if let Some(done) = &ctx.completions {
            let times = StageTimes::of(
                &tx,
                first_picked_us,
                [picked_us, simulated_us, detected_us, detected_us],
            );
            let _ = done.try_send((times, false));
        }
        let times =
            StageTimes::of(&tx, first_picked_us, [picked_us, simulated_us, detected_us, 0.0]);
        ctx.stats.record_stages(&times, false);
        return;
    }
    ctx.stats.with_findings.increment(1);
    let base_fee = simulator.block().base_fee;
    let fees = AttackFees::of(tx.tx.inner(), base_fee);
    let decisions =
        decide_all(&ctx.responder, &ctx.config, &findings, Some((tx.hash, fees)), base_fee);
    let signed_at = Instant::now();
    let signed_us = micros(tx.seen_at);
    // The pause leaves now; the stage times say when it was signed, the record when written.
    let early = write_early(ctx, &decisions);
    let mut times =
        StageTimes::of(&tx, first_picked_us, [picked_us, simulated_us, detected_us, signed_us]);
    times.state_waits = u32::from(state_waits);
    ctx.stats.record_stages(&times, true);
    if let Some(done) = &ctx.completions {
        let _ = done.try_send((times, true));
    }
    // Kept for the pre-state run below, after the detection has left.
    let replay = ctx.prestate.is_some().then(|| (tx.clone(), verdict(&findings)));
    let detection =
        Detection { tx, attack_fees: fees, outcome, findings, decisions, times, signed_at, early };
    // The submit stage's queue is bounded; a detection is never dropped: wait for room.
    if let Err(tokio::sync::mpsc::error::TrySendError::Full(d)) = ctx.detections.try_send(detection)
    {
        let _ = ctx.detections.blocking_send(d);
    }
    if let (Some((tx, live)), Some((generation, lane))) = (replay, chain) {
        capture::record_prestate(ctx, simulator, &tx, generation, lane, &live);
    }
}

/// Writes every pause in `decisions` to the nodes from this thread (see `WorkerContext::submitter`).
fn write_early(
    ctx: &WorkerContext,
    decisions: &[(Address, Decision)],
) -> Vec<(B256, crate::submit::EarlyWrites)> {
    let (Some(submitter), Some(runtime)) = (&ctx.submitter, &ctx.runtime) else {
        return Vec::new();
    };
    let guardian = match &ctx.seen {
        Some(_) => lock_responder(&ctx.responder).pauser().map(|p| p.address()),
        None => None,
    };
    decisions
        .iter()
        .filter_map(|(_, d)| match d {
            Decision::Pause { plan } | Decision::Replace { plan, .. } => {
                if let (Some(seen), Some(guardian)) = (&ctx.seen, guardian) {
                    seen.first_sight(plan.tx_hash, guardian);
                }
                Some((plan.tx_hash, submitter.write_early(runtime, &plan.raw)))
            }
            _ => None,
        })
        .collect()
}

fn lock_responder(m: &Mutex<Responder>) -> std::sync::MutexGuard<'_, Responder> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a tx was run, for its record.
struct RunInfo {
    /// When a worker first took it.
    first_picked_us: f64,
    /// How often it waited for cold state.
    state_waits: u8,
    /// The fork generation and lane it ran on, so its pre-state can be recorded by running it
    /// again; `None` for a probe (its findings come from calls no tx made).
    chain: Option<(u64, usize)>,
}

/// Fetches what the tx missed on the nodes' runtime, then puts it back at the front. The first
/// wait of a `traceable` tx races the node's pre-state trace of the whole tx.
fn fetch_then_retry(ctx: &WorkerContext, job: Job, keys: Vec<StateKey>, traceable: bool) {
    let Some(runtime) = &ctx.runtime else { return };
    let fork = Arc::clone(&ctx.live.current().0);
    let ready = ctx.ready.clone();
    let limit = ctx.ready.fetch_slots(job.lane);
    runtime.spawn(async move {
        let _slot = match &limit {
            Some(limit) => limit.acquire().await.ok(),
            None => None,
        };
        // The first wait races the node's pre-state trace of the whole tx; later ones wait on
        // that trace while it is in flight, else fetch their misses in one batch. A failed fetch
        // still re-queues the tx: its next run fetches on the worker and reports the error there.
        // A call to a pending creation is not traced: the node would run it against an empty
        // account (a trace that brings nothing but the sender, and takes the node's time).
        let cold = match job.rounds {
            1 if traceable => ColdTx::of(job.tx.hash, &job.tx.tx),
            _ => ColdTx::launched(job.tx.hash),
        };
        if let Err(e) = fork.fetch_cold(Some(cold), keys).await {
            tracing::debug!(tx = %job.tx.hash, error = %e, "deferred state fetch failed");
        }
        ready.send(job);
    });
}

/// How long a worker waits for ingest's answer on a claimed sender before recovering it
/// itself: after a run, ingest has almost always answered (recovery is ~40 µs, the run
/// longer); a tx that only needs recording (a plain transfer, most of a busy pool) is taken
/// the moment it is queued, and recovering it twice would cost the worker ~40 µs each.
const RUN_WAITS_FOR_CHECK: Duration = Duration::from_micros(20);
const RECORD_WAITS_FOR_CHECK: Duration = Duration::from_micros(300);

/// Whether the claimed sender signed `tx`: as ingest settles it (waiting up to `wait` for
/// that), or recovered here.
fn sender_signed(tx: &PendingTx, wait: Duration) -> bool {
    let Some(check) = &tx.sender_check else { return true };
    let started = Instant::now();
    loop {
        if let Some(signed) = check.settled() {
            return signed;
        }
        if started.elapsed() >= wait {
            break;
        }
        std::thread::yield_now();
    }
    let signed = crate::ingest::ClaimCheck::of(tx).is_none_or(|claim| claim.settle().is_ok());
    check.settled().unwrap_or(signed)
}

fn micros(since: Instant) -> f64 {
    StageTimes::since(since, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_worker_sets_its_own_thread_priority_only() {
        // A positive nice needs no privilege; the calling thread alone changes.
        let nice_of = |tid: libc::pid_t| {
            // SAFETY: reads one thread's priority.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) }
        };
        // SAFETY: the calling thread's id.
        let main = unsafe { libc::gettid() };
        let before = nice_of(main);
        let worker = std::thread::spawn(move || {
            set_priority(7);
            // SAFETY: as above.
            nice_of(unsafe { libc::gettid() })
        });
        assert_eq!(worker.join().expect("thread"), 7);
        assert_eq!(nice_of(main), before);
    }

    #[test]
    fn a_nudged_worker_takes_the_tx_routed_while_it_polled_and_sleeps_again_after_a_frame_that_routed_nothing()
     {
        // The senders stay open, as the pipeline holds them.
        let (_retries, ready) = Ready::channel(1);
        let (lane_tx, lane_rx) = crossbeam_channel::bounded::<PendingTx>(4);
        let (nudge, nudged) = Nudge::channel();
        let queues = WorkerQueues {
            ready,
            lanes: vec![lane_rx],
            skipped: None,
            nudged: Some((Arc::clone(&nudge), nudged)),
        };
        let order = queues.order();
        let ingest = {
            let nudge = Arc::clone(&nudge);
            std::thread::spawn(move || {
                // A frame that routes nothing (a duplicate), then one that routes a tx.
                drop(nudge.decoding());
                std::thread::sleep(Duration::from_millis(5));
                let decoding = nudge.decoding();
                std::thread::sleep(Duration::from_micros(300));
                lane_tx.send(chains::tests::pending(3)).expect("lane");
                drop(decoding);
                lane_tx
            })
        };
        let work = next_job(&queues, &order, Duration::from_secs(5));
        let Some(Work::Run(job)) = work else { panic!("no tx taken") };
        assert_eq!(job.tx.hash, chains::tests::pending(3).hash);
        let _lane_tx = ingest.join().expect("thread");
        assert!(!nudge.busy());
        // Nothing decoding, nothing queued: the wait runs out.
        assert!(next_job(&queues, &order, Duration::from_millis(10)).is_none());
    }

    #[test]
    fn a_worker_that_gets_to_an_unchecked_claim_first_recovers_it_and_the_check_keeps_its_answer() {
        use alloy::{
            consensus::{SignableTransaction, TxEip1559, TxEnvelope, transaction::Recovered},
            network::TxSignerSync,
            primitives::{TxKind, U256},
            signers::local::PrivateKeySigner,
        };
        let key = PrivateKeySigner::random();
        let mut call = TxEip1559 {
            chain_id: 1,
            gas_limit: 50_000,
            max_fee_per_gas: 2,
            to: TxKind::Call(Address::repeat_byte(0xaa)),
            value: U256::ZERO,
            ..Default::default()
        };
        let sig = key.sign_transaction_sync(&mut call).expect("sign");
        let envelope: TxEnvelope = call.into_signed(sig).into();
        let on_claim = |claimed: Address| {
            let mut tx = chains::tests::pending(0);
            tx.hash = *envelope.tx_hash();
            tx.tx = Recovered::new_unchecked(envelope.clone(), claimed);
            tx.sender_check = Some(Arc::new(SenderCheck::default()));
            tx
        };
        let honest = on_claim(key.address());
        assert!(sender_signed(&honest, Duration::ZERO));
        assert_eq!(honest.sender_check.as_deref().and_then(SenderCheck::settled), Some(true));

        let forged = on_claim(Address::repeat_byte(0x99));
        assert!(!sender_signed(&forged, Duration::from_micros(50)), "nobody else answers");
        let check = forged.sender_check.as_deref().expect("check");
        assert_eq!(check.settled(), Some(false));
        // Ingest's own answer comes second and changes nothing.
        check.settle(true);
        assert!(!sender_signed(&forged, Duration::ZERO));

        // Ingest answering while the worker waits: its answer is taken, nothing recovered
        // twice (a made-up "forged" for an honest claim shows which answer was used).
        let waiting = on_claim(key.address());
        let check = Arc::clone(waiting.sender_check.as_ref().expect("check"));
        let ingest = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(200));
            check.settle(false);
        });
        assert!(!sender_signed(&waiting, Duration::from_secs(5)));
        ingest.join().expect("thread");

        // Recovered before it was queued: nothing to check.
        assert!(sender_signed(&chains::tests::pending(1), Duration::ZERO));
    }

    /// A worker's context on `sim`'s fork (no node), the queues it reads (one lane) and the
    /// completions it reports.
    fn context(
        sim: &Simulator,
    ) -> (WorkerContext, WorkerQueues, crossbeam_channel::Receiver<(StageTimes, bool)>) {
        let config = crate::config::Config::parse(
            "[[protect]]\nname = \"Vault\"\naddress = \"0x00000000000000000000000000000000000000aa\"\n",
            std::path::Path::new("test.toml"),
        )
        .expect("valid config");
        let (ready_tx, ready) = Ready::channel(1);
        let (done_tx, done) = crossbeam_channel::unbounded();
        let ctx = WorkerContext::in_process(
            config.clone(),
            1,
            Arc::new(LiveState::new(Arc::clone(sim.fork()), sim.block())),
            Responder::new(config.respond, None),
            tokio::sync::mpsc::channel(4).0,
            ready_tx,
            done_tx,
        );
        let lanes = vec![crossbeam_channel::bounded::<PendingTx>(1).1];
        (ctx, WorkerQueues { ready, lanes, skipped: None, nudged: None }, done)
    }

    #[test]
    fn a_harmless_run_is_judged_before_its_senders_check_and_recorded_once_that_settles() {
        let mut sim = chains::tests::simulator(0);
        let (ctx, queues, done) = context(&sim);
        let order = queues.order();
        let generation = ctx.live.generation();
        // A plain payment queued on its claim; ingest has not recovered the signer yet.
        let mut first = chains::tests::pending(0);
        let check = Arc::new(SenderCheck::default());
        first.sender_check = Some(Arc::clone(&check));
        handle(&ctx, &mut sim, Job::new(first.clone(), 0), generation);

        let (times, signed) = done.try_recv().expect("judged without waiting for the check");
        assert!(!signed);
        assert!(times.detected_us >= times.simulated_us);
        assert_eq!(check.settled(), None, "the worker neither waited for nor recovered it");
        assert_eq!(ctx.stats.snapshot().records_handed, 1);

        // Its sender's next tx waits for it: not recorded before the check settles.
        let second = chains::tests::pending(1);
        handle(&ctx, &mut sim, Job::new(second.clone(), 0), generation);
        assert!(done.try_recv().is_err());
        assert_eq!(ctx.stats.snapshot().parked, 1);

        // Ingest settles the claim; a worker takes the record and frees the next tx.
        check.settle(true);
        let Some(Work::Record(recorded)) = next_job(&queues, &order, Duration::ZERO) else {
            panic!("the record is queued")
        };
        assert_eq!(recorded.hash, first.hash);
        record_signed(&ctx, &recorded);
        let Some(Work::Run(job)) = next_job(&queues, &order, Duration::ZERO) else {
            panic!("the next tx is freed")
        };
        assert_eq!(job.tx.hash, second.hash);
        handle(&ctx, &mut sim, job, generation);
        let (_, signed) = done.try_recv().expect("the next tx judged");
        assert!(!signed);

        // A forged claim's harmless run: judged the same, its record dropped and counted.
        let mut forged = chains::tests::pending(2);
        forged.sender_check = Some(Arc::new(SenderCheck::default()));
        handle(&ctx, &mut sim, Job::new(forged, 0), generation);
        assert!(done.try_recv().is_ok());
        let Some(Work::Record(recorded)) = next_job(&queues, &order, Duration::ZERO) else {
            panic!("the record is queued")
        };
        // Nobody settles it: the record's own recovery finds the signature does not hold.
        record_signed(&ctx, &recorded);
        assert_eq!(ctx.stats.snapshot().forged, 1);
        assert!(next_job(&queues, &order, Duration::ZERO).is_none(), "nothing freed");
    }

    #[test]
    fn the_probe_queue_is_read_after_every_lane_and_its_retries() {
        let (_, ready) = Ready::channel(3);
        let lanes = (0..3).map(|_| crossbeam_channel::bounded::<PendingTx>(1).1).collect();
        let skipped = Some(crossbeam_channel::bounded::<PendingTx>(1).1);
        let order = WorkerQueues { ready, lanes, skipped, nudged: None }.order();
        assert!(matches!(order.last(), Some(Source::Probe)), "{order:?}");
        assert_eq!(order.iter().filter(|s| matches!(s, Source::Probe)).count(), 1);
    }
}
