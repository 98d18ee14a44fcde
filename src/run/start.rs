//! Starting the guard, in the order `ready` needs: the chain at its head with protected state
//! warm, the guardian armed (nonce, Safe checked, the first ladder signed), then the workers
//! and the ingest router that feeds them.

use std::sync::{Arc, Mutex};

use alloy::{eips::BlockNumberOrTag, providers::Provider, signers::local::PrivateKeySigner};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{RunError, warm_protected};
use crate::{
    config::Config,
    detect::CumulativeTracker,
    fork::{ForkCache, NodeError, SharedFork, StateSource},
    guard::{BlockData, fetch_block_data},
    incident::IncidentLog,
    ingest::{IngestStats, Lanes, SeenSet, TxRouter},
    respond::{HeadNonces, Pauser, Responder},
    simulate::{SimBlock, Simulator},
    telemetry::Telemetry,
    worker::{
        Detection, LiveState, Nudge, Ready, SenderChains, WorkerContext, WorkerQueues, WorkerStats,
        spawn_workers,
    },
};

/// The chain as the guard starts on it.
pub(super) struct AtHead {
    pub chain_id: u64,
    pub head: u64,
    pub block: BlockData,
    /// Pinned at `head`, protected state warm.
    pub fork: SharedFork,
}

/// Chain id and head from the nodes, fee caps checked against the next base fee, the fork
/// pinned at the head with protected state (and the simulator's own contracts) warm.
pub(super) async fn at_head(
    config: &Config,
    source: &StateSource,
    telemetry: &Telemetry,
) -> Result<AtHead, RunError> {
    let chain_id = source
        .with_failover(0, |n| async move {
            n.provider().get_chain_id().await.map_err(|e| NodeError::Rpc(e.to_string()))
        })
        .await?;
    let head = source.with_failover(0, |n| async move { n.latest_block_number().await }).await?;
    let block = fetch_block_data(source, head, false)
        .await
        .map_err(|e| RunError::Node(NodeError::Rpc(e.to_string())))?;

    // A fee cap the next block's base fee already outruns would sign pauses nobody includes.
    config.check_fee_caps(u128::from(block.header_env.base_fee))?;

    let fork = Arc::new(
        ForkCache::with_source(head, Some(source.clone()), config.fork).metered(telemetry),
    );
    warm_protected(config, &fork).await.map_err(|e| RunError::Warm(e.to_string()))?;
    let (config_for_warm, fork_for_warm) = (config.clone(), Arc::clone(&fork));
    let pending_env = block.header_env;
    tokio::task::spawn_blocking(move || {
        Simulator::new(&config_for_warm, fork_for_warm, pending_env, chain_id).warm()
    })
    .await
    .map_err(|e| RunError::Warm(e.to_string()))?
    .map_err(|e| RunError::Warm(e.to_string()))?;
    Ok(AtHead { chain_id, head, block, fork })
}

/// The responder, armed when a guardian key is configured: its pending nonce read, its Safe
/// checked to hold the pause role, and the pauses for the next block pre-signed, so the first
/// attack finds one waiting.
pub(super) async fn arm(
    config: &Config,
    source: &StateSource,
    at: &AtHead,
    guardian: Option<PrivateKeySigner>,
) -> Result<Arc<Mutex<Responder>>, RunError> {
    let head = at.head;
    let pauser = match guardian {
        Some(signer) => {
            let address = signer.address();
            let nonce = source
                .with_failover(head, |n| async move {
                    n.provider()
                        .get_transaction_count(address)
                        .block_id(BlockNumberOrTag::Pending.into())
                        .await
                        .map_err(|e| NodeError::Rpc(e.to_string()))
                })
                .await?;
            tracing::info!(guardian = %address, nonce, "guardian key loaded");
            Some(Pauser::new(signer, at.chain_id, nonce))
        }
        None => None,
    };
    let guardian = pauser.as_ref().map(|p| (p.address(), p.nonce()));
    let responder = Arc::new(Mutex::new(Responder::new(config.respond.clone(), pauser)));
    let Some((guardian_address, guardian_nonce)) = guardian else {
        return Ok(responder);
    };
    if let Some(safe) = config.respond.safe {
        source
            .with_failover(head, |n| async move {
                crate::respond::check_safe_guardian(&n.provider(), &safe, guardian_address)
                    .await
                    .map_err(|e| NodeError::Rpc(e.to_string()))
            })
            .await
            .map_err(|e| RunError::GuardianKey(format!("guardian Safe {}: {e}", safe.address)))?;
    }
    let (ladder_responder, protected) = (Arc::clone(&responder), config.protected.clone());
    let nonces = HeadNonces {
        next_base_fee: at.block.header_env.base_fee,
        guardian_nonce,
        safe_nonce: None,
    };
    let _ = tokio::task::spawn_blocking(move || {
        crate::respond::prepare(&ladder_responder, &protected, nonces)
    })
    .await;
    Ok(responder)
}

/// The worker threads and the router that feeds their lanes.
pub(super) struct Stages {
    pub ctx: Arc<WorkerContext>,
    pub workers: Vec<std::thread::JoinHandle<()>>,
    pub router: Arc<TxRouter<SimBlock>>,
    pub seen: Arc<SeenSet>,
    pub ingest_stats: Arc<IngestStats>,
    pub live: Arc<LiveState>,
    pub cumulative: Arc<CumulativeTracker>,
}

/// Where the workers' detections go: the submit stage's queue, and the submitter itself for the
/// pause's first write.
pub(super) struct ToSubmit {
    pub(super) detections: mpsc::Sender<Detection>,
    pub(super) submitter: Arc<crate::submit::Submitter>,
}

/// Workers (simulate → detect → decide) fed by the ingest lanes, most likely to reach protected
/// state first: `protected` (never drops), `suspicious`, `other`, and the plain transfers
/// that are only recorded so their senders' later txs chain on them.
pub(super) fn workers(
    config: &Config,
    at: &AtHead,
    responder: &Arc<Mutex<Responder>>,
    to_submit: ToSubmit,
    incidents: &Arc<IncidentLog>,
    telemetry: &Telemetry,
    cancel: CancellationToken,
) -> Result<Stages, RunError> {
    let live = Arc::new(LiveState::new(Arc::clone(&at.fork), at.block.header_env));
    let (high_tx, high_rx) = crossbeam_channel::bounded(65_536);
    let (suspicious_tx, suspicious_rx) =
        crossbeam_channel::bounded(config.simulation.queue_capacity);
    let (normal_tx, normal_rx) = crossbeam_channel::bounded(config.simulation.queue_capacity);
    let (ready_tx, ready_rx) = Ready::channel(3);
    let (skipped_tx, skipped_rx) = crossbeam_channel::bounded(65_536);
    let cumulative = Arc::new(config.cumulative.tracker());
    let seen = Arc::new(SeenSet::default());
    let ctx = Arc::new(WorkerContext {
        config: config.clone(),
        chain_id: at.chain_id,
        live: Arc::clone(&live),
        responder: Arc::clone(responder),
        detections: to_submit.detections,
        chains: Arc::new(SenderChains::default()),
        cumulative: Arc::clone(&cumulative),
        stats: WorkerStats::new(telemetry),
        ready: ready_tx,
        stop: Default::default(),
        runtime: Some(tokio::runtime::Handle::current()),
        submitter: Some(to_submit.submitter),
        seen: Some(Arc::clone(&seen)),
        completions: None,
        prestate: incidents.store().is_some().then(|| Arc::clone(incidents)),
    });
    let (nudge, nudged) = Nudge::channel();
    let queues = WorkerQueues {
        ready: ready_rx,
        skipped: Some(skipped_rx),
        lanes: vec![high_rx, suspicious_rx, normal_rx],
        nudged: Some((Arc::clone(&nudge), nudged)),
    };
    let workers = spawn_workers(config.simulation.workers, Arc::clone(&ctx), queues)
        .map_err(RunError::Threads)?;

    let ingest_stats = Arc::new(IngestStats::new(telemetry));
    let router = Arc::new(
        TxRouter::new(
            at.chain_id,
            config.protected.iter().map(|p| p.address),
            Arc::clone(&live),
            Arc::clone(&seen),
            Arc::clone(&ingest_stats),
            Lanes {
                protected: high_tx,
                suspicious: suspicious_tx,
                other: normal_tx,
                skipped: Some(skipped_tx),
            },
        )
        .with_cancel(cancel)
        .with_nudge(nudge),
    );
    Ok(Stages { ctx, workers, router, seen, ingest_stats, live, cumulative })
}
