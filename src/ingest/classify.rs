//! The classify step: a tx whose lane depends on code ingest has not seen waits here (never in
//! front of a known-protected tx) while that code is fetched on the node's own lookup
//! connection (`eth_getCode` at latest, batched, cached per address); after `CLASSIFY_BUDGET`
//! it goes on as `Other`. A lookup outlives the budget: what it learns ranks the next tx.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::primitives::{Address, Bytes};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    SeenSet, TxRouter,
    rank::{Lane, Rank},
    rpc::RpcClient,
    stats::NodeIngestStats,
};
use crate::types::PendingTx;

/// How long a tx may wait for code before it is routed `Other`.
pub const CLASSIFY_BUDGET: Duration = Duration::from_millis(50);
/// A code lookup may take this long (it keeps teaching the index after the budget).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// A failed lookup is asked again no sooner than this.
const LOOKUP_RETRY_AFTER: Duration = Duration::from_millis(20);
const MAX_BATCH: usize = 128;
const MAX_LOOKUPS_IN_FLIGHT: usize = 8;

/// A parked tx and the accounts whose code decides its lane. Dropped unrouted (its session
/// ended), it is forgotten by the seen-set, so the next session's pool listing brings it back.
#[derive(Debug)]
pub(super) struct ClassifyJob {
    tx: Option<PendingTx>,
    parked_at: Instant,
    seen: Arc<SeenSet>,
}

impl ClassifyJob {
    pub(super) fn new(tx: PendingTx, seen: Arc<SeenSet>) -> Self {
        Self { tx: Some(tx), parked_at: Instant::now(), seen }
    }

    /// Hands the tx to the workers to record only (at most once).
    pub(super) fn skip<T>(mut self, router: &TxRouter<T>) {
        if let Some(tx) = self.tx.take() {
            router.skip(tx);
        }
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

/// Code lookups of one session: each account asked once at a time, waiters woken as answers
/// land in the router's `CodeIndex`.
struct Lookups<T> {
    router: Arc<TxRouter<T>>,
    stats: Arc<NodeIngestStats>,
    in_flight: Mutex<HashSet<Address>>,
    ask: mpsc::UnboundedSender<Vec<Address>>,
}

impl<T> Lookups<T> {
    /// Asks for the accounts of `need` not known and not already asked for.
    fn request(&self, need: &[Address]) {
        let fresh: Vec<Address> = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            need.iter()
                .copied()
                .filter(|a| self.router.code_index().get(a).is_none() && in_flight.insert(*a))
                .collect()
        };
        if !fresh.is_empty() {
            let _ = self.ask.send(fresh);
        }
    }

    /// The lookup of `addresses` ended: they may be asked again, and the parked txs are ranked
    /// again (and ask again for what is still unknown).
    fn done(&self, addresses: &[Address]) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        for a in addresses {
            in_flight.remove(a);
        }
        drop(in_flight);
        self.router.code_learned().notify_waiters();
    }
}

/// Takes parked txs and routes each once its code is known or its budget is spent; runs the
/// code lookups on `rpc` (a connection of their own, so they never wait behind a pool listing).
pub(super) async fn classifier<T: Send + Sync + 'static>(
    router: Arc<TxRouter<T>>,
    rpc: RpcClient,
    stats: Arc<NodeIngestStats>,
    mut jobs: mpsc::Receiver<ClassifyJob>,
    cancel: CancellationToken,
) {
    let (ask, mut asked) = mpsc::unbounded_channel::<Vec<Address>>();
    let lookups = Arc::new(Lookups { router, stats, in_flight: Mutex::default(), ask });
    let mut waiting = JoinSet::new();
    let mut fetching = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            Some(_) = waiting.join_next(), if !waiting.is_empty() => {}
            Some(_) = fetching.join_next(), if !fetching.is_empty() => {}
            addresses = asked.recv(), if fetching.len() < MAX_LOOKUPS_IN_FLIGHT => {
                let Some(mut addresses) = addresses else { return };
                while addresses.len() < MAX_BATCH {
                    match asked.try_recv() {
                        Ok(more) => addresses.extend(more),
                        Err(_) => break,
                    }
                }
                let (lookups, rpc) = (Arc::clone(&lookups), rpc.clone());
                fetching.spawn(async move { lookup(lookups, &rpc, addresses).await });
            }
            job = jobs.recv() => {
                let Some(first) = job else { return };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(j) => batch.push(j),
                        Err(_) => break,
                    }
                }
                let lookups = Arc::clone(&lookups);
                waiting.spawn(async move { classify(&lookups, batch).await });
            }
        }
    }
}

async fn lookup<T: Send + Sync + 'static>(
    lookups: Arc<Lookups<T>>,
    rpc: &RpcClient,
    addresses: Vec<Address>,
) {
    let params: Vec<(Address, &str)> = addresses.iter().map(|a| (*a, "latest")).collect();
    let router = &lookups.router;
    let mut learned = false;
    match rpc.batch::<_, Bytes>("eth_getCode", &params, LOOKUP_TIMEOUT).await {
        Ok(answers) => {
            for (address, code) in addresses.iter().zip(answers) {
                match code {
                    Ok(code) => {
                        router.code_index().insert_code(router.protected(), *address, &code);
                        learned = true;
                    }
                    Err(_) => {
                        lookups.stats.fetch_failures.increment(1);
                    }
                }
            }
        }
        Err(e) => {
            lookups.stats.fetch_failures.increment(addresses.len() as u64);
            tracing::debug!(node = %lookups.stats.node, error = %e, accounts = addresses.len(), "code lookup failed");
        }
    }
    if learned {
        lookups.done(&addresses);
    } else {
        // Held as in flight a while (not holding a lookup slot): the parked txs would ask again
        // at once (a node refusing `eth_getCode` got some 160 requests in one classify budget).
        tokio::spawn(async move {
            tokio::time::sleep(LOOKUP_RETRY_AFTER).await;
            lookups.done(&addresses);
        });
    }
}

/// Ranks the batch again each time code lands, until every tx has a lane or the oldest's
/// budget is spent; the rest go `Other`.
async fn classify<T>(lookups: &Lookups<T>, mut jobs: Vec<ClassifyJob>) {
    let router = &lookups.router;
    let deadline =
        jobs.iter().map(|j| j.parked_at).min().unwrap_or_else(Instant::now) + CLASSIFY_BUDGET;
    loop {
        // Registered before the check, so an answer landing in between is not missed. A code
        // lookup's answer wakes it, and so does a pre-state trace started at admission filling
        // the fork (whichever lands first decides the lane).
        let learned = router.code_learned().notified();
        tokio::pin!(learned);
        learned.as_mut().enable();
        let mut still = Vec::new();
        for job in jobs {
            let Some(tx) = &job.tx else { continue };
            let mut rank = router.rank(tx);
            if let Rank::NeedsCode(need) = &rank
                && router.learn_code_from_fork(need)
            {
                rank = router.rank(tx);
            }
            match rank {
                Rank::Lane(lane, _) => {
                    router.stats().classified.increment(1);
                    job.dispatch(router, lane);
                }
                Rank::Skip => {
                    router.stats().classified.increment(1);
                    job.skip(router);
                }
                Rank::NeedsCode(need) => {
                    lookups.request(&need);
                    still.push(job);
                }
            }
        }
        jobs = still;
        if jobs.is_empty() {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, learned).await.is_err() {
            break;
        }
    }
    // Not learned in time: simulated anyway, in the lowest lane its target's crowd allows.
    for job in jobs {
        router.stats().classify_timeouts.increment(1);
        let lane = job.tx.as_ref().map_or(Lane::Other, |tx| router.unclassified_lane(tx));
        job.dispatch(router, lane);
    }
}
