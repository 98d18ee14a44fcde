//! Never lose a pending tx: the subscription is a hint. Per node, a pending-tx filter polled
//! every ~200 ms and a pool listing diffed right after each head and each (re)connect find
//! what the feed missed; bodies are fetched in batches and verified like any frame. Runs in
//! its own tasks: the feed reader never waits on it.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::primitives::B256;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::{
    node::{Intake, SessionError, or_cancel},
    rpc::{RpcClient, RpcError},
};

/// `"params": []` (some nodes refuse `null`).
const NO_PARAMS: [u8; 0] = [];
/// How often the pending filter is polled.
pub const RECONCILE_EVERY: Duration = Duration::from_millis(200);
const FILTER_TIMEOUT: Duration = Duration::from_secs(2);
const POOL_TIMEOUT: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const FETCH_BATCH: usize = 256;
/// Consecutive unanswered polls that end the session (the node is gone but the socket is not).
const MAX_SILENT_POLLS: u32 = 3;
/// Bodies verified between yields, so a large pool listing does not hog a runtime thread.
const YIELD_EVERY: usize = 64;

/// How a tx reached ingest, for the per-node counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Subscription,
    Reconcile,
}

/// A tx known by hash only, to fetch and verify.
#[derive(Debug)]
pub(super) struct FetchJob {
    pub(super) hash: B256,
    pub(super) seen_at: Instant,
    pub(super) origin: Origin,
}

/// Fetches bodies by hash (`eth_getTransactionByHash`, batched) and verifies each against
/// the hash it was asked for.
pub(super) async fn fetcher<T: Send + Sync + 'static>(
    intake: Intake<T>,
    rpc: RpcClient,
    mut jobs: mpsc::Receiver<FetchJob>,
    cancel: CancellationToken,
) {
    loop {
        let Some(Some(first)) = or_cancel(&cancel, jobs.recv()).await else { return };
        let mut batch = vec![first];
        while batch.len() < FETCH_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Another path may have delivered some meanwhile.
        batch.retain(|j| !intake.router.seen().contains(&j.hash));
        batch.dedup_by_key(|j| j.hash);
        let params: Vec<[B256; 1]> = batch.iter().map(|j| [j.hash]).collect();
        let answers = match or_cancel(
            &cancel,
            rpc.batch::<_, Option<Box<RawValue>>>(
                "eth_getTransactionByHash",
                &params,
                FETCH_TIMEOUT,
            ),
        )
        .await
        {
            None => return,
            Some(Ok(answers)) => answers,
            Some(Err(e)) => {
                intake.stats.fetch_failures.increment(batch.len() as u64);
                tracing::debug!(node = %intake.name, error = %e, txs = batch.len(), "tx fetch failed");
                continue;
            }
        };
        for (i, (job, answer)) in batch.iter().zip(answers).enumerate() {
            match answer {
                Ok(Some(body)) => {
                    // A wrong shape here is the node's answer, not a frame: a fetch failure.
                    if let Err(Some(_)) =
                        intake.body(body.get(), job.seen_at, job.origin, Some(job.hash))
                    {
                        intake.stats.fetch_failures.increment(1);
                    }
                }
                // Gone (mined or dropped) before it was asked for, or an error.
                Ok(None) | Err(_) => {
                    intake.stats.fetch_failures.increment(1);
                }
            }
            if (i + 1).is_multiple_of(YIELD_EVERY) {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Where the node's pool can be listed from; the first that works is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolListing {
    TxpoolContent,
    PendingTransactions,
    /// `eth_getBlockByNumber("pending", true)`: what the node would mine next.
    PendingBlock,
    /// None of those: the pending filter alone reconciles (it misses what arrived in a gap).
    None,
}

#[derive(Deserialize)]
struct TxpoolContent {
    pending: HashMap<String, HashMap<String, Box<RawValue>>>,
}

#[derive(Deserialize)]
struct PendingBlock {
    transactions: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct ClaimedHash {
    hash: B256,
}

/// Polls the pending filter and diffs the pool after each head; at start (each session) the
/// filter is created before the pool is listed, so nothing falls between the two.
pub(super) async fn reconcile<T: Send + Sync + 'static>(
    intake: Intake<T>,
    rpc: RpcClient,
    fetch: mpsc::Sender<FetchJob>,
    head_seen: Arc<Notify>,
    lost: mpsc::Sender<SessionError>,
    cancel: CancellationToken,
) {
    let mut r =
        Reconciler { intake, rpc, fetch, filter: None, listing: PoolListing::TxpoolContent };
    let Some(()) = or_cancel(&cancel, r.new_filter()).await else { return };
    let Some(()) = or_cancel(&cancel, r.list_pool()).await else { return };
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut silent = 0;
    loop {
        let polled = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = head_seen.notified() => {
                let Some(()) = or_cancel(&cancel, r.list_pool()).await else { return };
                continue;
            }
            _ = tick.tick() => match or_cancel(&cancel, r.poll_filter()).await {
                None => return,
                Some(polled) => polled,
            },
        };
        match polled {
            Err(RpcError::Timeout { .. }) => {
                silent += 1;
                if silent >= MAX_SILENT_POLLS {
                    let _ = lost.try_send(SessionError::Rpc(RpcError::Timeout {
                        method: "eth_getFilterChanges",
                        after: FILTER_TIMEOUT * MAX_SILENT_POLLS,
                    }));
                    return;
                }
            }
            // The session sees the connection die and ends itself.
            Err(RpcError::Closed { .. }) => return,
            _ => silent = 0,
        }
    }
}

struct Reconciler<T> {
    intake: Intake<T>,
    rpc: RpcClient,
    fetch: mpsc::Sender<FetchJob>,
    filter: Option<String>,
    listing: PoolListing,
}

impl<T: Send + Sync + 'static> Reconciler<T> {
    async fn new_filter(&mut self) {
        match self
            .rpc
            .call::<String>("eth_newPendingTransactionFilter", NO_PARAMS, FILTER_TIMEOUT)
            .await
        {
            Ok(id) => self.filter = Some(id),
            Err(e) => {
                tracing::debug!(node = %self.intake.name, error = %e, "no pending filter; retried next poll")
            }
        }
    }

    /// New pool hashes since the last poll; unseen ones are fetched. A node that forgot the
    /// filter (expired, restarted) gets a new one.
    async fn poll_filter(&mut self) -> Result<(), RpcError> {
        let Some(id) = self.filter.clone() else {
            self.new_filter().await;
            return Ok(());
        };
        match self.rpc.call::<Vec<B256>>("eth_getFilterChanges", [id], FILTER_TIMEOUT).await {
            Ok(hashes) => {
                let now = Instant::now();
                for hash in hashes {
                    if !self.intake.router.seen().contains(&hash) {
                        // Waits when the fetcher is behind (backpressure on the poll, not a drop).
                        let job = FetchJob { hash, seen_at: now, origin: Origin::Reconcile };
                        if self.fetch.send(job).await.is_err() {
                            return Err(RpcError::Closed { method: "eth_getFilterChanges" });
                        }
                    }
                }
                Ok(())
            }
            Err(e @ (RpcError::Node { .. } | RpcError::Decode { .. })) => {
                tracing::debug!(node = %self.intake.name, error = %e, "pending filter lost; re-created");
                self.filter = None;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The pool as the node lists it now; bodies not yet seen are verified and routed.
    async fn list_pool(&mut self) {
        let bodies: Vec<Box<RawValue>> = loop {
            let answer = match self.listing {
                PoolListing::TxpoolContent => self
                    .rpc
                    .call::<TxpoolContent>("txpool_content", NO_PARAMS, POOL_TIMEOUT)
                    .await
                    .map(|c| {
                        c.pending
                            .into_values()
                            .flat_map(|by_nonce| by_nonce.into_values())
                            .collect()
                    }),
                PoolListing::PendingTransactions => {
                    self.rpc
                        .call::<Vec<Box<RawValue>>>(
                            "eth_pendingTransactions",
                            NO_PARAMS,
                            POOL_TIMEOUT,
                        )
                        .await
                }
                PoolListing::PendingBlock => self
                    .rpc
                    .call::<Option<PendingBlock>>(
                        "eth_getBlockByNumber",
                        ("pending", true),
                        POOL_TIMEOUT,
                    )
                    .await
                    .map(|b| b.map(|b| b.transactions).unwrap_or_default()),
                PoolListing::None => return,
            };
            match answer {
                Ok(bodies) => break bodies,
                // The method is missing (or refused): the next way down, said once.
                Err(e @ RpcError::Node { .. }) => {
                    self.listing = match self.listing {
                        PoolListing::TxpoolContent => PoolListing::PendingTransactions,
                        PoolListing::PendingTransactions => PoolListing::PendingBlock,
                        PoolListing::PendingBlock | PoolListing::None => PoolListing::None,
                    };
                    tracing::warn!(
                        node = %self.intake.name,
                        error = %e,
                        next = ?self.listing,
                        "pool listing unavailable; falling back"
                    );
                }
                Err(e) => {
                    self.intake.stats.fetch_failures.increment(1);
                    tracing::debug!(node = %self.intake.name, error = %e, "pool listing failed");
                    return;
                }
            }
        };
        let now = Instant::now();
        for (i, body) in bodies.iter().enumerate() {
            // Skipping by this node's own claimed hash is safe: it can only hide its own
            // listing of a tx (which it could omit anyway), never another node's copy; what
            // is not skipped is verified and keyed by its computed hash.
            if let Ok(ClaimedHash { hash }) = serde_json::from_str(body.get())
                && self.intake.router.seen().contains(&hash)
            {
                continue;
            }
            if let Err(Some(_)) = self.intake.body(body.get(), now, Origin::Reconcile, None) {
                self.intake.stats.fetch_failures.increment(1);
            }
            if (i + 1).is_multiple_of(YIELD_EVERY) {
                tokio::task::yield_now().await;
            }
        }
    }
}
