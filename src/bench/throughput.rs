//! The pipeline in-process at a set rate, as live ingest runs it: frames decoded, filtered,
//! queued (a plain call on its claimed sender, its signer recovered after), simulated, detected
//! and (for attacks) answered with a pause picked from the ladder, on warm state with the real
//! workers; per-stage times for every tx, drops, and resident memory.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use alloy::primitives::B256;

use super::{SimSetup, fixtures::FixtureTx};
use crate::{
    config::ResponseMode,
    devnet::dev_accounts,
    ingest::{
        IngestStats, Lanes, SeenSet, TxRouter, Verifier, on_claim, pending_tx, runs_on_claim,
    },
    respond::{Pauser, Responder},
    worker::{LiveState, Nudge, Ready, StageTimes, WorkerContext, WorkerQueues, spawn_workers},
};

#[derive(Debug, Default, Clone)]
pub(super) struct ReplayResult {
    pub(super) rate: u64,
    pub(super) sent: usize,
    pub(super) achieved_rate: f64,
    pub(super) completed: usize,
    pub(super) dropped: u64,
    /// Frames the filter skipped (plain transfers to accounts without code).
    pub(super) filtered: u64,
    pub(super) attacks_answered: usize,
    /// Per tx, µs: frame in → handled (signed for attacks).
    pub(super) total_us: Vec<f64>,
    pub(super) decode_us: Vec<f64>,
    pub(super) filter_us: Vec<f64>,
    pub(super) queue_us: Vec<f64>,
    pub(super) simulate_us: Vec<f64>,
    pub(super) detect_us: Vec<f64>,
    pub(super) sign_us: Vec<f64>,
    pub(super) peak_rss_mb: f64,
}

/// Resident memory now, MiB (Linux).
pub(super) fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
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

/// Sends `count` frames (the mix: `mix` in order, repeated) at `rate` per second.
pub(super) fn replay(
    setup: &SimSetup,
    mix: &[FixtureTx],
    rate: u64,
    count: usize,
    workers: usize,
) -> ReplayResult {
    let SimSetup { config, fork, env: block, chain_id } = setup;
    let (block, chain_id) = (*block, *chain_id);
    let mut config = config.clone();
    config.respond.mode = ResponseMode::DryRun;
    let live = Arc::new(LiveState::new(Arc::clone(fork), block));
    let (high_tx, high_rx) = crossbeam_channel::bounded(65_536);
    let (normal_tx, normal_rx) = crossbeam_channel::bounded(config.simulation.queue_capacity);
    let (done_tx, done_rx) = crossbeam_channel::bounded(count + 16);
    let (detections, _detections_rx) = tokio::sync::mpsc::channel(count + 16);
    let (ready_tx, ready_rx) = Ready::channel(2);
    let pauser = Pauser::new(dev_accounts()[1].signer.clone(), chain_id, 0);
    let ctx = Arc::new(WorkerContext::in_process(
        config.clone(),
        chain_id,
        Arc::clone(&live),
        Responder::new(config.respond.clone(), Some(pauser)),
        detections,
        ready_tx,
        done_tx,
    ));
    let (nudge, nudged) = Nudge::channel();
    let queues = WorkerQueues {
        ready: ready_rx,
        lanes: vec![high_rx, normal_rx],
        skipped: None,
        nudged: Some((Arc::clone(&nudge), nudged)),
    };
    let Ok(threads) = spawn_workers(workers, Arc::clone(&ctx), queues) else {
        return ReplayResult { rate, sent: 0, ..Default::default() };
    };
    let stats = Arc::new(IngestStats::default());
    let router = TxRouter::new(
        chain_id,
        config.protected.iter().map(|p| p.address),
        live,
        Arc::new(SeenSet::default()),
        Arc::clone(&stats),
        Lanes { protected: high_tx.clone(), suspicious: high_tx, other: normal_tx, skipped: None },
    )
    .with_nudge(nudge);
    let source: Arc<str> = "replay".into();
    let verifier = Verifier::any_chain();
    // As on each head of a live run: every pause pre-signed at the ladder's fee levels, so an
    // attack's pause is picked, not signed (dry run: the nonce is never used up).
    crate::respond::prepare(
        &ctx.responder,
        &config.protected,
        crate::respond::HeadNonces {
            next_base_fee: block.base_fee,
            guardian_nonce: 0,
            safe_nonce: None,
        },
    );
    let frames: Vec<String> = mix.iter().map(|t| t.frame.to_string()).collect();

    // Measure the pipeline, not the workers' start-up.
    let warming = Instant::now();
    while ctx.stats.warmed.load(Ordering::Acquire) < workers.max(1) as u64
        && warming.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let started = Instant::now();
    let mut peak = rss_mb();
    for i in 0..count {
        // Sleep most of the gap and spin only its end: a spinning producer would take a core
        // from the workers it is measuring.
        let due = started + interval * i as u32;
        let now = Instant::now();
        if due > now + Duration::from_micros(200) {
            std::thread::sleep(due - now - Duration::from_micros(100));
        }
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        let seen_at = Instant::now();
        let _decoding = router.decoding();
        let Ok(decoded) = verifier.decode(&frames[i % frames.len()]) else {
            continue;
        };
        // Each copy is a new tx to the dedupe set.
        let hash = B256::from(alloy::primitives::U256::from(i as u64 + 1));
        // As live ingest: a plain call is queued on its claimed sender and its signer recovered
        // after, beside the run; anything else is recovered first.
        if runs_on_claim(&decoded.envelope) {
            let claimed = decoded.claimed_from;
            let (mut tx, check) = on_claim(decoded, &source, seen_at);
            tx.hash = hash;
            router.route(tx);
            if check.settle().is_ok() {
                router.seen().confirm(&hash, claimed);
            }
        } else {
            let Ok(recovered) = verifier.recover(decoded) else { continue };
            let mut tx = pending_tx(recovered, &source, seen_at);
            tx.hash = hash;
            router.route(tx);
        }
        if i % 1024 == 0 {
            peak = peak.max(rss_mb());
        }
    }
    let send_secs = started.elapsed().as_secs_f64();
    let counts = stats.snapshot();
    let expected = count as u64 - counts.deferred - counts.filtered;
    let mut result = ReplayResult {
        rate,
        sent: count,
        achieved_rate: count as f64 / send_secs.max(1e-9),
        dropped: counts.deferred,
        filtered: counts.filtered,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while (result.completed as u64) < expected && Instant::now() < deadline {
        match done_rx.recv_timeout(Duration::from_millis(200)) {
            Ok((times, attack)) => {
                record(&mut result, times, attack);
                result.completed += 1;
            }
            Err(_) => peak = peak.max(rss_mb()),
        }
    }
    result.peak_rss_mb = peak.max(rss_mb());
    ctx.stop.store(true, Ordering::Release);
    drop(router);
    for t in threads {
        let _ = t.join();
    }
    result
}

fn record(r: &mut ReplayResult, t: StageTimes, attack: bool) {
    let d = |a: f64, b: f64| (a - b).max(0.0);
    r.decode_us.push(t.decoded_us);
    r.filter_us.push(d(t.queued_us, t.decoded_us));
    r.queue_us.push(d(t.picked_us, t.queued_us));
    r.simulate_us.push(d(t.simulated_us, t.picked_us));
    r.detect_us.push(d(t.detected_us, t.simulated_us));
    if attack {
        r.sign_us.push(d(t.signed_us, t.detected_us));
        r.attacks_answered += 1;
    }
    r.total_us.push(t.signed_us);
}
