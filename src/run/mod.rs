//! `preempt run`: wires the stages — node connections (ingest), the workers, the block guard,
//! the submit stage and the incident log — and runs them until SIGINT/SIGTERM. Each job has one
//! owner task; this loop only routes node events and shuts everything down.

mod events;
mod keys;
mod nodes;
mod start;

use std::{
    future::Future,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use alloy::primitives::Address;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use keys::{guardian_signer, relay_signer};

use crate::{
    alert::AlertHub,
    config::Config,
    fork::{ForkError, NodeError, SharedFork},
    guard::{BlockGuard, GuardReport, GuardStats, HeadSignal},
    incident::IncidentLog,
    ingest::{NodeEvent, spawn_node},
    submit::{DeployedHook, Dispatcher, SubmitError, Submitter},
    telemetry::{MetricsServer, Telemetry, upkeep_only},
    worker::Detection,
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
    #[error(transparent)]
    Metrics(#[from] crate::telemetry::ServeError),
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
    // An early error return stops whatever was started (the metrics listener first of all).
    let _stop_on_return = cancel.clone().drop_guard();
    // One recorder for this guard; every stage registers its handles on it below.
    let telemetry = Telemetry::new();
    let metrics_task = match config.metrics_listen {
        Some(addr) => {
            let server = MetricsServer::bind(addr, telemetry.clone()).await?;
            tracing::info!(listen = %addr, "metrics served at /metrics");
            tokio::spawn(server.run(cancel.clone()))
        }
        None => tokio::spawn(upkeep_only(telemetry.clone(), cancel.clone())),
    };
    let source = nodes::connect_all(&config, cancel.clone()).await?;
    let at = start::at_head(&config, &source, &telemetry).await?;
    let responder = start::arm(&config, &source, &at, guardian).await?;
    let submitter = Arc::new(Submitter::connect(&config.nodes, &config.relays, relay_auth).await?);
    let incidents = Arc::new(IncidentLog::from_config_metered(&config, &telemetry)?);
    let alerts = AlertHub::start_metered(&config, crate::alert::HUB_QUEUE, &telemetry)?;

    let (detections_tx, detections_rx) = mpsc::channel::<Detection>(1_024);
    let stages = start::workers(
        &config,
        &at,
        &responder,
        start::ToSubmit { detections: detections_tx, submitter: Arc::clone(&submitter) },
        &incidents,
        &telemetry,
        cancel.clone(),
    )?;

    // Submit stage: the one owner of sending, re-sending and recording.
    let (reports_tx, reports_rx) = mpsc::channel::<GuardReport>(64);
    let dispatcher = Dispatcher::new(
        config.clone(),
        Arc::clone(&submitter),
        Arc::clone(&responder),
        Arc::clone(&incidents),
        source.clone(),
        at.head,
    )
    .metered(&telemetry)
    .alerting(alerts.clone())
    .on_deployed(DeployedHook({
        let router = Arc::clone(&stages.router);
        let (fork, protected) =
            (Arc::clone(&at.fork), config.protected.iter().map(|p| p.address).collect::<Vec<_>>());
        Arc::new(move |deployed: &[Address]| {
            for a in deployed {
                router.note_deployed(*a);
            }
            // Off the hot path: a new contract's entries in the protected contracts' mappings.
            let (fork, protected, deployed) =
                (Arc::clone(&fork), protected.clone(), deployed.to_vec());
            tokio::spawn(async move {
                if let Err(e) = fork.warm_mapping_entries(&protected, &deployed).await {
                    tracing::debug!(error = %e, "warming new contracts' mapping entries failed");
                }
            });
        })
    }));
    let dispatch_task = tokio::spawn(dispatcher.run(detections_rx, reports_rx, cancel.clone()));

    // Block guard: the one writer of the fork.
    let guard_stats = Arc::new(GuardStats::new(&telemetry));
    let (heads_tx, heads_rx) =
        watch::channel(HeadSignal { number: at.head, hash: at.block.hash, seen_at: None });
    let guard = BlockGuard::new(
        config.clone(),
        at.chain_id,
        Arc::clone(&at.fork),
        source.clone(),
        Arc::clone(&stages.live),
        reports_tx,
        Arc::clone(&guard_stats),
        at.block.hash,
    )
    .warming(protected_accounts(&config))
    .summing(Arc::clone(&stages.cumulative))
    .forgetting_mined(Arc::clone(&stages.seen));
    let guard_task = tokio::spawn(guard.run(heads_rx, cancel.clone()));

    let (events_tx, events_rx) = mpsc::unbounded_channel::<NodeEvent>();
    let node_tasks: Vec<_> = config
        .nodes
        .iter()
        .map(|n| {
            spawn_node(n.clone(), Arc::clone(&stages.router), events_tx.clone(), cancel.clone())
        })
        .collect();
    drop(events_tx);

    let (nodes, protected, workers, mode) = (
        config.nodes.len(),
        config.protected.len(),
        config.simulation.workers,
        config.respond.mode,
    );
    let on_ready = move || {
        on_ready();
        tracing::info!(
            nodes,
            protected,
            block = at.head,
            workers,
            mode = ?mode,
            startup_ms = started.elapsed().as_millis() as u64,
            "ready"
        );
    };
    let routing = events::Routing {
        expected: nodes,
        source: source.clone(),
        seen: Arc::clone(&stages.seen),
        router: Arc::clone(&stages.router),
        heads: heads_tx,
        alerts: alerts.clone(),
    };
    routing.run(events_rx, shutdown, on_ready).await;

    tracing::info!("shutting down");
    cancel.cancel();
    stages.ctx.stop.store(true, Ordering::Release);
    let deadline = tokio::time::Instant::now() + SHUTDOWN_BUDGET;
    for t in node_tasks {
        let _ = tokio::time::timeout_at(deadline, t).await;
    }
    let start::Stages { ctx, workers, router, ingest_stats, .. } = stages;
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
    let _ = tokio::time::timeout_at(deadline, metrics_task).await;
    tracing::info!(
        ingest = ?ingest_stats.snapshot(),
        workers = ?ctx.stats.snapshot(),
        guard = ?guard_stats.snapshot(),
        fork_entries = at.fork.len(),
        alerts = ?alerts.counters(),
        store = ?incidents.store_counters(),
        "stopped"
    );
    Ok(())
}
