//! Per-tx latency on the same warm state in the same run: bare revm `transact` (the floor),
//! preempt's simulate+detect, and the node's own `debug_traceCall` over HTTP and WebSocket
//! (the peer); and the same txs on a cold fork.

use std::{sync::Arc, time::Instant};

use alloy::{
    consensus::Transaction as _,
    providers::{DynProvider, Provider},
};
use revm::{ExecuteEvm, database::CacheDB};
use serde_json::{Value, json};

use super::{BenchError, SimSetup, fixtures::FixtureTx};
use crate::{
    detect::detect,
    fork::{ForkCache, NodeClient},
    simulate::{Simulator, build_evm, tx_env},
};

/// Samples (µs) of one tx on each side.
#[derive(Debug, Default, Clone)]
pub(super) struct TxSamples {
    pub(super) floor: Vec<f64>,
    pub(super) preempt: Vec<f64>,
    pub(super) peer_http: Vec<f64>,
    pub(super) peer_ws: Vec<f64>,
    pub(super) cold: Vec<f64>,
    /// The same cold runs with batched fetches of the misses alone (no pre-state trace).
    pub(super) cold_batched: Vec<f64>,
    /// Times a cold run waited on the node: with the pre-state trace, and batched alone.
    pub(super) cold_waits: Vec<f64>,
    pub(super) cold_batched_waits: Vec<f64>,
    pub(super) cold_round_trips: u64,
    pub(super) cold_rounds: u64,
    /// Simulated on the mined block's env: (success, gas).
    pub(super) simulated: Option<(bool, u64)>,
}

/// Floor and preempt, interleaved so both see the same machine noise. Runs on this thread.
pub(super) fn floor_and_preempt(
    setup: &SimSetup,
    txs: &[FixtureTx],
    samples: usize,
) -> Result<Vec<TxSamples>, BenchError> {
    let SimSetup { config, fork, env: block, chain_id } = setup;
    let (block, chain_id) = (*block, *chain_id);
    let mut simulator = Simulator::new(config, Arc::clone(fork), block, chain_id);
    // Warm state is measured here: no trace races the warm-up's fetches (or lands after it).
    simulator.set_race_prestate(false);
    simulator.warm().map_err(|e| BenchError::Sim(e.to_string()))?;
    for t in txs {
        simulator
            .simulate(t.hash, &t.tx)
            .map_err(|e| BenchError::Sim(format!("{}: {e}", t.name)))?;
    }
    let before = fork.stats().round_trips();
    let mut out = Vec::with_capacity(txs.len());
    for t in txs {
        let env = tx_env(&t.tx, config.simulation.max_tx_gas);
        let mut s = TxSamples::default();
        for _ in 0..samples {
            let started = Instant::now();
            let mut evm = build_evm(CacheDB::new(&**fork), block, chain_id, ());
            let r = evm.transact(env.clone());
            std::hint::black_box(&r);
            s.floor.push(started.elapsed().as_secs_f64() * 1e6);

            let started = Instant::now();
            let outcome =
                simulator.simulate(t.hash, &t.tx).map_err(|e| BenchError::Sim(e.to_string()))?;
            std::hint::black_box(detect(&outcome, &config.protected));
            s.preempt.push(started.elapsed().as_secs_f64() * 1e6);
        }
        out.push(s);
    }
    if fork.stats().round_trips() != before {
        return Err(BenchError::Sim("a measured run read state that was not warm".into()));
    }
    Ok(out)
}

/// Simulates each tx in the env of the block it was mined in, on the state before it.
pub(super) fn correctness(setup: &SimSetup, txs: &[FixtureTx], out: &mut [TxSamples]) {
    let SimSetup { config, fork, chain_id, .. } = setup;
    let chain_id = *chain_id;
    for (t, s) in txs.iter().zip(out.iter_mut()) {
        let Some(env) = t.mined_env else { continue };
        let mut sim = Simulator::new(config, Arc::clone(fork), env, chain_id);
        s.simulated =
            sim.execute(t.hash, &t.tx).ok().map(|(r, _)| (r.is_success(), r.tx_gas_used()));
    }
}

/// Each tx on a fork with nothing cached: time and node round trips.
pub(super) fn cold(
    setup: &SimSetup,
    node: &NodeClient,
    fork_block: u64,
    txs: &[FixtureTx],
    runs: usize,
    out: &mut [TxSamples],
) -> Result<(), BenchError> {
    let SimSetup { config, env: block, chain_id, .. } = setup;
    let (block, chain_id) = (*block, *chain_id);
    for (t, s) in txs.iter().zip(out.iter_mut()) {
        for _ in 0..runs {
            // Batched misses alone (as before the trace), then raced with the trace.
            for race in [false, true] {
                let fork = Arc::new(ForkCache::new(fork_block, Some(node.clone())));
                let mut sim = Simulator::new(config, Arc::clone(&fork), block, chain_id);
                sim.set_race_prestate(race);
                let started = Instant::now();
                let outcome = sim
                    .simulate(t.hash, &t.tx)
                    .map_err(|e| BenchError::Sim(format!("cold {}: {e}", t.name)))?;
                std::hint::black_box(detect(&outcome, &config.protected));
                let us = started.elapsed().as_secs_f64() * 1e6;
                let waits = sim.fork_view().waited().rounds as f64;
                if race {
                    s.cold.push(us);
                    s.cold_waits.push(waits);
                    s.cold_round_trips = fork.stats().round_trips();
                    s.cold_rounds = fork.stats().counts().fetch_rounds;
                } else {
                    s.cold_batched.push(us);
                    s.cold_batched_waits.push(waits);
                }
            }
        }
    }
    Ok(())
}

/// The call object `debug_traceCall` takes for a tx.
fn call_object(t: &FixtureTx) -> Value {
    let tx = t.tx.inner();
    let mut call = json!({
        "from": t.tx.signer(),
        "gas": format!("{:#x}", tx.gas_limit()),
        "value": format!("{:#x}", tx.value()),
        "input": tx.input(),
        "nonce": format!("{:#x}", tx.nonce()),
    });
    if let Some(to) = tx.to() {
        call["to"] = json!(to);
    }
    if let Some(list) = tx.access_list() {
        call["accessList"] = json!(list);
    }
    call
}

/// `debug_traceCall` with the callTracer, timed at the client, `samples` times per tx.
pub(super) async fn peer(
    provider: &DynProvider,
    txs: &[FixtureTx],
    samples: usize,
    ws: bool,
    out: &mut [TxSamples],
) -> Result<(), BenchError> {
    for (t, s) in txs.iter().zip(out.iter_mut()) {
        let params = json!([call_object(t), "latest", {"tracer": "callTracer"}]);
        for _ in 0..samples {
            let started = Instant::now();
            let r =
                provider.raw_request::<_, Value>("debug_traceCall".into(), params.clone()).await;
            let us = started.elapsed().as_secs_f64() * 1e6;
            r.map_err(|e| BenchError::Node(format!("debug_traceCall {}: {e}", t.name)))?;
            if ws { s.peer_ws.push(us) } else { s.peer_http.push(us) }
        }
    }
    Ok(())
}
