//! `preempt run`: wires the stages — node connections, the simulation workers, the responder,
//! the submitter, the block guard and the incident log — and runs them until SIGINT/SIGTERM.

use std::{
    future::Future,
    str::FromStr,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Instant, SystemTime},
};

use alloy::{eips::BlockNumberOrTag, providers::Provider, signers::local::PrivateKeySigner};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Config, GuardianKey, ResponseMode},
    fork::{ForkCache, NodeClient, NodeError},
    guard::{BlockGuard, GuardHandles},
    incident::{DetectionRecord, DetectionSource, IncidentLog, unix_ms},
    ingest::{IngestStats, Lanes, NodeEvent, SeenSet, TxRouter, spawn_node},
    respond::{Decision, Pauser, Responder},
    simulate::{
        SimBlock, Simulator,
        pool::{Detection, LiveState, SenderChains, WorkerContext, WorkerStats, spawn_workers},
    },
    submit::{SubmitError, Submitter},
};

#[derive(Debug, Error)]
pub enum RunError {
    #[error("the config names no node")]
    NoNode,
    #[error("guardian key: {0}")]
    GuardianKey(String),
    #[error("relay auth key: {0}")]
    RelayKey(String),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error("incident log {path}: {source}")]
    Incidents { path: String, source: std::io::Error },
    #[error("warming protected state: {0}")]
    Warm(String),
    #[error("cannot start the simulation threads: {0}")]
    Threads(std::io::Error),
}

fn guardian_signer(config: &Config) -> Result<Option<PrivateKeySigner>, RunError> {
    let Some(key) = &config.guardian else {
        return match config.respond.mode {
            ResponseMode::Alert => Ok(None),
            _ => Err(RunError::GuardianKey(
                "mode needs a [guardian] key (or set respond.mode = \"alert\")".into(),
            )),
        };
    };
    match key {
        GuardianKey::Raw(secret) => {
            let value = secret.resolve().map_err(RunError::GuardianKey)?;
            // The parse error never includes the key text.
            PrivateKeySigner::from_str(value.expose()).map(Some).map_err(|_| {
                RunError::GuardianKey(format!(
                    "{secret:?} does not hold a valid secp256k1 private key"
                ))
            })
        }
        GuardianKey::Keystore { path, password } => {
            let password = password.resolve().map_err(RunError::GuardianKey)?;
            PrivateKeySigner::decrypt_keystore(path, password.expose())
                .map(Some)
                .map_err(|e| RunError::GuardianKey(format!("keystore {}: {e}", path.display())))
        }
    }
}

fn relay_signer(config: &Config) -> Result<Option<PrivateKeySigner>, RunError> {
    let Some(secret) = &config.relay_auth else { return Ok(None) };
    let value = secret.resolve().map_err(RunError::RelayKey)?;
    PrivateKeySigner::from_str(value.expose()).map(Some).map_err(|_| {
        RunError::RelayKey(format!("{secret:?} does not hold a valid secp256k1 private key"))
    })
}

/// Runs the live guard until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    run_with(config, shutdown, || {}).await
}

/// As `run`; `on_ready` is called once, when every node is subscribed and state is warm.
pub async fn run_with(
    config: Config,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> Result<(), RunError> {
    let mut on_ready = Some(on_ready);
    let guardian = guardian_signer(&config)?;
    let relay_auth = relay_signer(&config)?;
    let state_node = config.nodes.first().ok_or(RunError::NoNode)?;
    let node = NodeClient::connect(&state_node.name, &state_node.url).await?;
    let keep_alive = node.keep_alive(std::time::Duration::from_secs(1));
    let provider = node.provider();
    let rpc = |e: alloy::transports::TransportError| RunError::Node(NodeError::Rpc(e.to_string()));
    let chain_id = provider.get_chain_id().await.map_err(rpc)?;
    let head = node.latest_block_number().await?;
    let header = provider
        .get_block_by_number(BlockNumberOrTag::Number(head))
        .await
        .map_err(rpc)?
        .ok_or(RunError::Node(NodeError::MissingBlock(head)))?
        .header;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();

    // Protected state warm before `ready`.
    let fork = Arc::new(ForkCache::new(head, Some(node.clone())));
    let accounts: Vec<_> = config
        .protected
        .iter()
        .flat_map(|p| std::iter::once(p.address).chain(p.tokens.iter().copied()))
        .collect();
    fork.prefetch(&accounts, &[]).await.map_err(|e| RunError::Warm(e.to_string()))?;
    let pending_env = SimBlock::pending_after(&header, now);
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
            let nonce = provider
                .get_transaction_count(signer.address())
                .block_id(BlockNumberOrTag::Pending.into())
                .await
                .map_err(rpc)?;
            tracing::info!(guardian = %signer.address(), nonce, "guardian key loaded");
            Some(Pauser::new(signer, chain_id, nonce))
        }
        None => None,
    };
    let responder = Arc::new(Mutex::new(Responder::new(config.respond.clone(), pauser)));
    let submitter = Arc::new(Submitter::connect(&config.nodes, &config.relays, relay_auth).await?);
    let incidents =
        Arc::new(IncidentLog::open(config.incidents_path.as_deref()).map_err(|source| {
            RunError::Incidents {
                path: config
                    .incidents_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                source,
            }
        })?);

    // The hot loop.
    let (high_tx, high_rx) = crossbeam_channel::bounded(65_536);
    let (normal_tx, normal_rx) = crossbeam_channel::bounded(config.simulation.queue_capacity);
    let (detections_tx, mut detections_rx) = mpsc::unbounded_channel::<Detection>();
    let chains = Arc::new(SenderChains::default());
    let ctx = Arc::new(WorkerContext {
        config: config.clone(),
        chain_id,
        live: Arc::clone(&live),
        responder: Arc::clone(&responder),
        detections: detections_tx,
        chains: Arc::clone(&chains),
        stats: WorkerStats::default(),
        requeue: high_tx.clone(),
        stop: Default::default(),
        completions: None,
    });
    let workers = spawn_workers(config.simulation.workers, Arc::clone(&ctx), high_rx, normal_rx)
        .map_err(RunError::Threads)?;

    let seen = Arc::new(SeenSet::default());
    let ingest_stats = Arc::new(IngestStats::default());
    let stop = CancellationToken::new();
    let router = Arc::new(
        TxRouter::new(
            chain_id,
            config.protected.iter().map(|p| p.address),
            Arc::clone(&live),
            Arc::clone(&seen),
            Arc::clone(&ingest_stats),
            // Until the workers read a third queue, suspicious txs share the lower one.
            Lanes { protected: high_tx, suspicious: normal_tx.clone(), other: normal_tx },
        )
        .with_cancel(stop.clone()),
    );
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<NodeEvent>();
    let node_tasks: Vec<_> = config
        .nodes
        .iter()
        .map(|n| spawn_node(n.clone(), Arc::clone(&router), events_tx.clone(), stop.clone()))
        .collect();
    drop(events_tx);

    // Detections → submit → incident; the guard learns of each pause sent.
    let (tracked_tx, mut tracked_rx) = mpsc::unbounded_channel();
    let detection_task = {
        let (submitter, incidents, live) =
            (Arc::clone(&submitter), Arc::clone(&incidents), Arc::clone(&live));
        tokio::spawn(async move {
            while let Some(d) = detections_rx.recv().await {
                let target = live.current().1.number;
                let mut submitted = Vec::new();
                let mut sent_us = None;
                let mut submit_started_us = None;
                for (_, decision) in &d.decisions {
                    if let Decision::Pause { plan } | Decision::Replace { plan, .. } = decision {
                        submit_started_us.get_or_insert(d.tx.seen_at.elapsed().as_secs_f64() * 1e6);
                        let report = submitter.submit(plan.raw.clone(), plan.tx_hash, target).await;
                        sent_us.get_or_insert(d.tx.seen_at.elapsed().as_secs_f64() * 1e6);
                        let _ = tracked_tx.send((plan.clone(), target));
                        tracing::warn!(
                            attack = %d.tx.hash,
                            contract = %plan.contract_name,
                            pause = %plan.tx_hash,
                            max_fee = plan.max_fee_per_gas,
                            tip = plan.max_priority_fee_per_gas,
                            accepted = report.results.iter().filter(|r| r.ok).count(),
                            destinations = report.results.len(),
                            "pause sent"
                        );
                        submitted.push(report);
                    }
                }
                for f in &d.findings {
                    tracing::warn!(attack = %d.tx.hash, rule = f.rule, contract = %f.contract_name, "{}", f.summary);
                }
                incidents.record(&DetectionRecord {
                    kind: "detection",
                    at_unix_ms: unix_ms(),
                    source: DetectionSource::Mempool,
                    attack_tx: d.tx.hash,
                    attack_from: d.tx.tx.signer(),
                    attack_to: alloy::consensus::Transaction::to(d.tx.tx.inner()),
                    attack_fees: Some(d.attack_fees),
                    seen_from: &d.tx.source,
                    sim_block: d.outcome.block_number,
                    sim_gas_used: d.outcome.gas_used,
                    sim_time_us: d.outcome.sim_time.as_secs_f64() * 1e6,
                    findings: &d.findings,
                    holdings: &d.outcome.holdings,
                    decisions: &d.decisions,
                    times: d.times,
                    submit_started_us,
                    sent_us,
                    submitted,
                });
            }
        })
    };

    let mut guard = BlockGuard::new(
        config.clone(),
        chain_id,
        node.clone(),
        GuardHandles {
            live: Arc::clone(&live),
            responder: Arc::clone(&responder),
            submitter: Arc::clone(&submitter),
            incidents: Arc::clone(&incidents),
            chains: Arc::clone(&chains),
        },
        head,
    );

    let started = Instant::now();
    let mut up: std::collections::HashSet<Arc<str>> = Default::default();
    let mut ready = false;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some((plan, target)) = tracked_rx.recv() => guard.track(plan, target),
            event = events_rx.recv() => match event {
                None => break,
                Some(NodeEvent::Up { node }) => {
                    tracing::info!(node = %node, "subscribed to heads and pending txs");
                    up.insert(node);
                    if !ready && up.len() == config.nodes.len() {
                        ready = true;
                        if let Some(f) = on_ready.take() {
                            f();
                        }
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
                    tracing::warn!(node = %node, %reason, "node connection lost; reconnecting");
                    up.remove(&node);
                }
                Some(NodeEvent::Forged { node, total }) => {
                    tracing::debug!(node = %node, forged = total, "node sends forged pending txs");
                }
                Some(NodeEvent::Head(h)) => {
                    seen.prune(std::time::Duration::from_secs(600));
                    if let Err(e) = guard.on_head(h.number).await {
                        tracing::warn!(block = h.number, error = %e, "new head not processed; retried on the next");
                    }
                }
            },
        }
    }

    tracing::info!("shutting down");
    keep_alive.abort();
    stop.cancel();
    ctx.stop.store(true, Ordering::Release);
    for t in node_tasks {
        let _ = t.await;
    }
    drop(router);
    let _ = tokio::task::spawn_blocking(move || {
        for w in workers {
            let _ = w.join();
        }
    })
    .await;
    let s = &ctx.stats;
    tracing::info!(
        ingest = ?ingest_stats.snapshot(),
        simulated = s.simulated.load(Ordering::Relaxed),
        with_findings = s.with_findings.load(Ordering::Relaxed),
        invalid = s.invalid.load(Ordering::Relaxed),
        state_errors = s.state_errors.load(Ordering::Relaxed),
        "stopped"
    );
    // The last detections are submitted and recorded before exit.
    drop(ctx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), detection_task).await;
    Ok(())
}
