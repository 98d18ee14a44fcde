//! `preempt run`: wires the stages — node connections (ingest), the workers, the block guard,
//! the submit stage and the incident log — and runs them until SIGINT/SIGTERM. Each job has one
//! owner task; this loop only routes node events and shuts everything down.

mod keys;
mod nodes;

use std::{
    future::Future,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use alloy::{eips::BlockNumberOrTag, primitives::Address, providers::Provider};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use keys::{guardian_signer, relay_signer};

use crate::{
    alert::{AlertEvent, AlertHub},
    config::Config,
    fork::{ForkCache, ForkError, NodeError, SharedFork},
    guard::{BlockGuard, GuardReport, GuardStats, HeadSignal, fetch_block_data},
    incident::IncidentLog,
    ingest::{IngestStats, Lanes, NodeEvent, SeenSet, TxRouter, spawn_node},
    respond::{Pauser, Responder},
    simulate::Simulator,
    submit::{DeployedHook, Dispatcher, SubmitError, Submitter},
    worker::{
        Detection, LiveState, Ready, SenderChains, WorkerContext, WorkerQueues, spawn_workers,
    },
};

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("no node is reachable: {0}")]
    NoNodeReachable(String),
    #[error("guardian key: {0}")]
    GuardianKey(String),
    #[error("relay auth key: {0}")]
    RelayKey(String),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Incidents(#[from] crate::incident::IncidentError),
    #[error(transparent)]
    Alerts(#[from] crate::alert::AlertError),
    #[error("warming protected state: {0}")]
    Warm(String),
    #[error("cannot start the simulation threads: {0}")]
    Threads(std::io::Error),
}

/// How long shutdown may take once SIGTERM arrives, whatever the nodes do.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(1_500);

/// Runs the live guard until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    run_with(config, shutdown, || {}).await
}

/// The protected contracts and the tokens they hold: warm before `ready`, never evicted.
pub fn protected_accounts(config: &Config) -> Vec<Address> {
    let mut out: Vec<Address> = config
        .protected
        .iter()
        .flat_map(|p| std::iter::once(p.address).chain(p.tokens.iter().copied()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Pins and fetches the protected state.
pub async fn warm_protected(config: &Config, fork: &SharedFork) -> Result<(), ForkError> {
    let accounts = protected_accounts(config);
    fork.pin(accounts.iter().copied());
    fork.prefetch(&accounts, &[]).await
}

/// As `run`; `on_ready` is called once, when every node is subscribed and state is warm.
pub async fn run_with(
    config: Config,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> Result<(), RunError> {
    let started = Instant::now();
    config.check_runnable()?;
    let guardian = guardian_signer(&config)?;
    let relay_auth = relay_signer(&config)?;
    if let (Some(g), Some(r)) = (&guardian, &relay_auth) {
        config.check_distinct_keys(g.address(), r.address())?;
    }
    let cancel = CancellationToken::new();
    let source = nodes::connect_all(&config, cancel.clone()).await?;
    let chain_id = source
        .with_failover(0, |n| async move {
            n.provider().get_chain_id().await.map_err(|e| NodeError::Rpc(e.to_string()))
        })
        .await?;
    let head = source.with_failover(0, |n| async move { n.latest_block_number().await }).await?;
    let head_block = fetch_block_data(&source, head, false)
        .await
        .map_err(|e| RunError::Node(NodeError::Rpc(e.to_string())))?;

    // A fee cap the next block's base fee already outruns would sign pauses nobody includes.
    config.check_fee_caps(u128::from(head_block.header_env.base_fee))?;

    // Protected state warm before `ready`.
    let fork = Arc::new(ForkCache::with_source(head, Some(source.clone()), config.fork));
    warm_protected(&config, &fork).await.map_err(|e| RunError::Warm(e.to_string()))?;
    let pending_env = head_block.header_env;
    {
        let (config, fork) = (config.clone(), Arc::clone(&fork));
        tokio::task::spawn_blocking(move || {
            Simulator::new(&config, fork, pending_env, chain_id).warm()
        })
        .await
        .map_err(|e| RunError::Warm(e.to_string()))?
        .map_err(|e| RunError::Warm(e.to_string()))?;
    }
    let live = Arc::new(LiveState::new(Arc::clone(&fork), pending_env));

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
            Some(Pauser::new(signer, chain_id, nonce))
        }
        None => None,
    };
    let guardian_address = pauser.as_ref().map(|p| p.address());
    let guardian_nonce = pauser.as_ref().map(|p| p.nonce());
    let responder = Arc::new(Mutex::new(Responder::new(config.respond.clone(), pauser)));
    if let (Some(safe), Some(guardian)) = (config.respond.safe, guardian_address) {
        let checked = source
            .with_failover(head, |n| async move {
                crate::respond::check_safe_guardian(&n.provider(), &safe, guardian)
                    .await
                    .map_err(|e| NodeError::Rpc(e.to_string()))
            })
            .await;
        checked
            .map_err(|e| RunError::GuardianKey(format!("guardian Safe {}: {e}", safe.address)))?;
    }
    // Pauses for the next block pre-signed before `ready`: the first attack finds one waiting.
    if let Some(guardian_nonce) = guardian_nonce {
        let (responder, protected) = (Arc::clone(&responder), config.protected.clone());
        let head = crate::respond::HeadNonces {
            next_base_fee: head_block.header_env.base_fee,
            guardian_nonce,
            safe_nonce: None,
        };
        let _ = tokio::task::spawn_blocking(move || {
            crate::respond::prepare(&responder, &protected, head)
        })
        .await;
    }
    let submitter = Arc::new(Submitter::connect(&config.nodes, &config.relays, relay_auth).await?);
    let incidents = Arc::new(IncidentLog::from_config(&config)?);
    let alerts = AlertHub::start(&config)?;

    // Workers: simulate → detect → decide, fed by the ingest lanes (most likely to reach
    // protected state first).
    let (high_tx, high_rx) = crossbeam_channel::bounded(65_536);
    let (suspicious_tx, suspicious_rx) =
        crossbeam_channel::bounded(config.simulation.queue_capacity);
    let (normal_tx, normal_rx) = crossbeam_channel::bounded(config.simulation.queue_capacity);
    let (ready_tx, ready_rx) = Ready::channel(3);
    let (skipped_tx, skipped_rx) = crossbeam_channel::bounded(65_536);
    let (detections_tx, detections_rx) = mpsc::channel::<Detection>(1_024);
    let cumulative = Arc::new(config.cumulative.tracker());
    let ctx = Arc::new(WorkerContext {
        config: config.clone(),
        chain_id,
        live: Arc::clone(&live),
        responder: Arc::clone(&responder),
        detections: detections_tx,
        chains: Arc::new(SenderChains::default()),
        cumulative: Arc::clone(&cumulative),
        stats: Default::default(),
        ready: ready_tx,
        stop: Default::default(),
        runtime: Some(tokio::runtime::Handle::current()),
        completions: None,
        prestate: incidents.store().is_some().then(|| Arc::clone(&incidents)),
    });
    let queues = WorkerQueues {
        ready: ready_rx,
        skipped: Some(skipped_rx),
        lanes: vec![high_rx, suspicious_rx, normal_rx],
    };
    let workers = spawn_workers(config.simulation.workers, Arc::clone(&ctx), queues)
        .map_err(RunError::Threads)?;

    // Ingest routes txs into the lanes; one task per node (below).
    let seen = Arc::new(SeenSet::default());
    let ingest_stats = Arc::new(IngestStats::default());
    let router = Arc::new(
        TxRouter::new(
            chain_id,
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
        .with_cancel(cancel.clone()),
    );
    // Submit stage: the one owner of sending, re-sending and recording.
    let (reports_tx, reports_rx) = mpsc::channel::<GuardReport>(64);
    let dispatcher = Dispatcher::new(
        config.clone(),
        Arc::clone(&submitter),
        Arc::clone(&responder),
        Arc::clone(&incidents),
        source.clone(),
        head,
    )
    .alerting(alerts.clone())
    .on_deployed(DeployedHook({
        let router = Arc::clone(&router);
        Arc::new(move |deployed: &[Address]| {
            for a in deployed {
                router.note_deployed(*a);
            }
        })
    }));
    let dispatch_task = tokio::spawn(dispatcher.run(detections_rx, reports_rx, cancel.clone()));

    // Block guard: the one writer of the fork.
    let guard_stats = Arc::new(GuardStats::default());
    let (heads_tx, heads_rx) =
        watch::channel(HeadSignal { number: head, hash: head_block.hash, seen_at: None });
    let guard = BlockGuard::new(
        config.clone(),
        chain_id,
        Arc::clone(&fork),
        source.clone(),
        Arc::clone(&live),
        reports_tx,
        Arc::clone(&guard_stats),
        head_block.hash,
    )
    .warming(protected_accounts(&config))
    .summing(Arc::clone(&cumulative));
    let guard_task = tokio::spawn(guard.run(heads_rx, cancel.clone()));

    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<NodeEvent>();
    let node_tasks: Vec<_> = config
        .nodes
        .iter()
        .map(|n| spawn_node(n.clone(), Arc::clone(&router), events_tx.clone(), cancel.clone()))
        .collect();
    drop(events_tx);

    let mut on_ready = Some(on_ready);
    let mut up: std::collections::HashSet<Arc<str>> = Default::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            event = events_rx.recv() => match event {
                None => break,
                Some(NodeEvent::Up { node }) => {
                    tracing::info!(node = %node, "subscribed to heads and pending txs");
                    alerts.notify(AlertEvent::node_up(&node));
                    up.insert(node);
                    if up.len() == config.nodes.len()
                        && let Some(f) = on_ready.take()
                    {
                        f();
                        tracing::info!(
                            nodes = config.nodes.len(),
                            protected = config.protected.len(),
                            block = head,
                            workers = config.simulation.workers,
                            mode = ?config.respond.mode,
                            startup_ms = started.elapsed().as_millis() as u64,
                            "ready"
                        );
                    }
                }
                Some(NodeEvent::Down { node, reason }) => {
                    tracing::debug!(node = %node, %reason, "node session ended");
                    alerts.notify(AlertEvent::node_down(&node, &reason));
                    up.remove(&node);
                }
                Some(NodeEvent::Forged { node, total }) => {
                    // Its frames are dropped anyway; its state answers are not trusted first.
                    tracing::warn!(node = %node, forged = total, "node sends forged pending txs; demoted for state reads");
                    source.demote(&node);
                }
                Some(NodeEvent::Head(h)) => {
                    source.note_head(&h.source, h.number);
                    seen.prune(Duration::from_secs(600));
                    router.maintain();
                    // Every announcement wakes the guard: a head it could not fetch yet (a node
                    // ahead of the others, or lying) is tried again, and never hides later ones.
                    heads_tx.send_modify(|current| {
                        if h.number >= current.number && h.hash != current.hash {
                            *current = HeadSignal {
                                number: h.number,
                                hash: h.hash,
                                seen_at: Some(Instant::now()),
                            };
                        }
                    });
                }
            },
        }
    }

    tracing::info!("shutting down");
    cancel.cancel();
    ctx.stop.store(true, Ordering::Release);
    let deadline = tokio::time::Instant::now() + SHUTDOWN_BUDGET;
    for t in node_tasks {
        let _ = tokio::time::timeout_at(deadline, t).await;
    }
    drop(router);
    let _ = tokio::time::timeout_at(deadline, guard_task).await;
    let _ = tokio::time::timeout_at(deadline, dispatch_task).await;
    alerts.close(Duration::from_millis(300)).await;
    incidents.close(Duration::from_millis(300));
    let joined = tokio::task::spawn_blocking(move || {
        for w in workers {
            let _ = w.join();
        }
    });
    let _ = tokio::time::timeout_at(deadline, joined).await;
    tracing::info!(
        ingest = ?ingest_stats.snapshot(),
        workers = ?ctx.stats.snapshot(),
        guard = ?guard_stats.snapshot(),
        fork_entries = fork.len(),
        alerts = ?alerts.counters(),
        store = ?incidents.store_counters(),
        "stopped"
    );
    Ok(())
}
