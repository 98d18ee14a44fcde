//! The classify step: a tx whose lane depends on code ingest has not seen waits here (never in
//! front of a known-protected tx) while that code is fetched on the node's own connection
//! (`eth_getCode` at latest, batched, cached per address); after `CLASSIFY_BUDGET` it goes
//! on as `Other`.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use alloy::primitives::{Address, Bytes};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    SeenSet, TxRouter,
    node::or_cancel,
    rank::{Lane, Rank},
    rpc::RpcClient,
    stats::NodeIngestStats,
};
use crate::types::PendingTx;

/// How long a tx may wait for code before it is routed `Other`.
pub const CLASSIFY_BUDGET: Duration = Duration::from_millis(50);
const MAX_BATCH: usize = 128;
const MAX_IN_FLIGHT: usize = 8;
/// Lookups per tx: its `to`, then (one hop) a 7702 delegate.
const ROUNDS: usize = 2;

/// A parked tx and the accounts whose code decides its lane. Dropped unrouted (its session
/// ended), it is forgotten by the seen-set, so the next session's pool listing brings it back.
#[derive(Debug)]
pub(super) struct ClassifyJob {
    tx: Option<PendingTx>,
    need: Vec<Address>,
    parked_at: Instant,
    seen: Arc<SeenSet>,
}

impl ClassifyJob {
    pub(super) fn new(tx: PendingTx, need: Vec<Address>, seen: Arc<SeenSet>) -> Self {
        Self { tx: Some(tx), need, parked_at: Instant::now(), seen }
    }

    /// Routes the tx in `lane` (at most once).
    pub(super) fn dispatch<T>(mut self, router: &TxRouter<T>, lane: Lane) {
        if let Some(tx) = self.tx.take() {
            router.dispatch(tx, lane);
        }
    }
}

impl Drop for ClassifyJob {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.seen.forget(&tx.hash);
        }
    }
}

/// Takes parked txs, fetches what they need in batches (several batches in flight, so a slow
/// one does not hold the next), routes each once its code is known.
pub(super) async fn classifier<T: Send + Sync + 'static>(
    router: Arc<TxRouter<T>>,
    rpc: RpcClient,
    stats: Arc<NodeIngestStats>,
    mut jobs: mpsc::UnboundedReceiver<ClassifyJob>,
    cancel: CancellationToken,
) {
    let mut batches = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            Some(_) = batches.join_next(), if !batches.is_empty() => {}
            job = jobs.recv(), if batches.len() < MAX_IN_FLIGHT => {
                let Some(first) = job else { return };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(j) => batch.push(j),
                        Err(_) => break,
                    }
                }
                let (router, rpc, stats, cancel) =
                    (Arc::clone(&router), rpc.clone(), Arc::clone(&stats), cancel.clone());
                batches.spawn(async move {
                    or_cancel(&cancel, classify(&router, &rpc, &stats, batch)).await;
                });
            }
        }
    }
}

async fn classify<T>(
    router: &TxRouter<T>,
    rpc: &RpcClient,
    stats: &NodeIngestStats,
    mut jobs: Vec<ClassifyJob>,
) {
    let deadline = jobs.iter().map(|j| j.parked_at).min().unwrap_or_else(Instant::now)
        + CLASSIFY_BUDGET;
    for _ in 0..ROUNDS {
        let mut need: Vec<Address> = jobs
            .iter()
            .flat_map(|j| j.need.iter().copied())
            .filter(|a| router.code_index().get(a).is_none())
            .collect();
        need.sort_unstable();
        need.dedup();
        if !need.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let params: Vec<(Address, &str)> = need.iter().map(|a| (*a, "latest")).collect();
            match rpc.batch::<_, Bytes>("eth_getCode", &params, left).await {
                Ok(answers) => {
                    for (address, code) in need.iter().zip(answers) {
                        match code {
                            Ok(code) => {
                                router.code_index().insert_code(router.protected(), *address, &code);
                            }
                            Err(_) => {
                                stats.fetch_failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                Err(e) => {
                    stats.fetch_failures.fetch_add(need.len() as u64, Ordering::Relaxed);
                    tracing::debug!(node = %stats.node, error = %e, accounts = need.len(), "code lookup failed");
                    break;
                }
            }
        }
        let mut waiting = Vec::new();
        for mut job in jobs {
            let Some(tx) = &job.tx else { continue };
            match router.rank(tx) {
                Rank::Lane(lane, _) => {
                    router.stats().classified.fetch_add(1, Ordering::Relaxed);
                    job.dispatch(router, lane);
                }
                Rank::Skip => {
                    router.stats().classified.fetch_add(1, Ordering::Relaxed);
                    router.stats().filtered.fetch_add(1, Ordering::Relaxed);
                    job.tx = None;
                }
                Rank::NeedsCode(more) => {
                    job.need = more;
                    waiting.push(job);
                }
            }
        }
        jobs = waiting;
        if jobs.is_empty() {
            return;
        }
    }
    // Not learned in time: simulated anyway, in the lowest lane.
    for job in jobs {
        router.stats().classify_timeouts.fetch_add(1, Ordering::Relaxed);
        job.dispatch(router, Lane::Other);
    }
}
