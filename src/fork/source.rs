//! Where cold state comes from: every configured node, as full peers. A read goes to the
//! healthy node with the lowest latency that has reached the block asked for, and fails over
//! to the next on an error or a timeout, so one node down or lagging never costs a read.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Serialize;

use super::node::{NodeClient, NodeError, StateAnswer, StateRequest};

/// How long one node may take on one state read before the next node is asked.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// What is known of one node's health.
#[derive(Debug, Default)]
struct Health {
    /// Exponentially weighted answer time, µs (0: not measured yet).
    latency_us: AtomicU64,
    failures: AtomicU64,
    reads: AtomicU64,
    /// The newest head the node announced.
    head: AtomicU64,
    /// Set when the node was seen forging frames or serving state that diverged: used last.
    demoted: AtomicBool,
    /// Consecutive failures; a node failing now is tried after the others.
    failing: AtomicU64,
}

#[derive(Debug)]
struct Peer {
    client: NodeClient,
    health: Health,
}

/// Every node the guard reads state from, ranked on each read.
#[derive(Debug, Clone)]
pub struct StateSource {
    peers: Arc<RwLock<Vec<Arc<Peer>>>>,
    /// Off once a node refused `debug_traceCall` with the `prestateTracer`.
    prestate: super::prestate::PrestateSupport,
}

/// One node's health as shown to a person.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    pub name: String,
    pub latency_us: u64,
    pub reads: u64,
    pub failures: u64,
    pub head: u64,
    pub demoted: bool,
}

impl StateSource {
    pub fn new(nodes: impl IntoIterator<Item = NodeClient>) -> Self {
        let peers = nodes
            .into_iter()
            .map(|client| Arc::new(Peer { client, health: Health::default() }))
            .collect();
        Self { peers: Arc::new(RwLock::new(peers)), prestate: Default::default() }
    }

    /// Adds a node that became reachable after start.
    pub fn add(&self, client: NodeClient) {
        let mut peers = write(&self.peers);
        if !peers.iter().any(|p| p.client.name == client.name) {
            peers.push(Arc::new(Peer { client, health: Health::default() }));
        }
    }

    pub fn is_empty(&self) -> bool {
        read(&self.peers).is_empty()
    }

    pub(crate) fn prestate_support(&self) -> &super::prestate::PrestateSupport {
        &self.prestate
    }

    /// The node to use for work that needs one connection (first in the current ranking).
    pub fn primary(&self) -> Option<NodeClient> {
        self.ranked(0).first().map(|p| p.client.clone())
    }

    /// Every node, in ranking order.
    pub fn nodes(&self, block: u64) -> Vec<NodeClient> {
        self.ranked(block).into_iter().map(|p| p.client.clone()).collect()
    }

    pub fn note_head(&self, node: &str, number: u64) {
        if let Some(p) = read(&self.peers).iter().find(|p| p.client.name == node) {
            p.health.head.fetch_max(number, Ordering::Relaxed);
        }
    }

    /// The node is no longer trusted first (it forged frames, or its state diverged).
    pub fn demote(&self, node: &str) {
        if let Some(p) = read(&self.peers).iter().find(|p| p.client.name == node) {
            p.health.demoted.store(true, Ordering::Relaxed);
        }
    }

    pub fn status(&self) -> Vec<PeerStatus> {
        read(&self.peers)
            .iter()
            .map(|p| PeerStatus {
                name: p.client.name.clone(),
                latency_us: p.health.latency_us.load(Ordering::Relaxed),
                reads: p.health.reads.load(Ordering::Relaxed),
                failures: p.health.failures.load(Ordering::Relaxed),
                head: p.health.head.load(Ordering::Relaxed),
                demoted: p.health.demoted.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Healthy before failing, trusted before demoted, caught up before lagging, then fastest.
    fn ranked(&self, block: u64) -> Vec<Arc<Peer>> {
        let mut peers: Vec<Arc<Peer>> = read(&self.peers).iter().cloned().collect();
        peers.sort_by_key(|p| {
            let h = &p.health;
            let head = h.head.load(Ordering::Relaxed);
            // A head of 0 means unknown: not counted as lagging.
            let lagging = head != 0 && head < block;
            (
                h.failing.load(Ordering::Relaxed).min(3),
                h.demoted.load(Ordering::Relaxed),
                lagging,
                h.latency_us.load(Ordering::Relaxed),
            )
        });
        peers
    }

    /// Reads `request` at `block` from the best node. A node that fails hands over at once;
    /// one that is slow to answer (past a few times its usual latency) is hedged: the next node
    /// is asked too, and the first answer wins. A hung node costs a read milliseconds, not the
    /// full timeout.
    pub async fn fetch(&self, request: StateRequest, block: u64) -> Result<StateAnswer, NodeError> {
        use futures::{StreamExt, stream::FuturesUnordered};
        let ranked = self.ranked(block);
        let mut next = ranked.iter();
        let mut in_flight = FuturesUnordered::new();
        let launch = |peer: &Arc<Peer>| {
            let (peer, request) = (Arc::clone(peer), request.clone());
            async move {
                let started = Instant::now();
                let read =
                    tokio::time::timeout(READ_TIMEOUT, peer.client.fetch_state(request, block))
                        .await
                        .unwrap_or(Err(NodeError::Timeout(READ_TIMEOUT)));
                (peer, started.elapsed(), read)
            }
        };
        let Some(first) = next.next() else {
            return Err(NodeError::Rpc("no node configured".into()));
        };
        let mut hedge_after = first.health.hedge_after();
        in_flight.push(launch(first));
        let mut last = NodeError::Rpc("no node answered".into());
        loop {
            let hedge = tokio::time::sleep(hedge_after);
            tokio::select! {
                done = in_flight.next() => {
                    let Some((peer, took, read)) = done else { return Err(last) };
                    match read {
                        Ok(answer) => {
                            peer.health.record_success(took);
                            return Ok(answer);
                        }
                        Err(e) => {
                            peer.health.record_failure();
                            tracing::debug!(node = %peer.client.name, error = %e, "state read failed; next node");
                            last = e;
                            match next.next() {
                                Some(p) => in_flight.push(launch(p)),
                                None if in_flight.is_empty() => return Err(last),
                                None => {}
                            }
                        }
                    }
                }
                _ = hedge => match next.next() {
                    Some(p) => {
                        hedge_after = p.health.hedge_after();
                        in_flight.push(launch(p));
                    }
                    // Nobody left to ask: wait for the ones asked.
                    None => hedge_after = READ_TIMEOUT,
                },
            }
        }
    }

    /// Asks every node for its head every `every`, so a node that stopped answering is ranked
    /// last before a read has to find out, and one that came back is used again.
    pub fn spawn_probes(&self, every: Duration, cancel: tokio_util::sync::CancellationToken) {
        let peers = Arc::clone(&self.peers);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let now: Vec<Arc<Peer>> = read(&peers).iter().cloned().collect();
                let probes = now.into_iter().map(|peer| async move {
                    let started = Instant::now();
                    match tokio::time::timeout(every, peer.client.latest_block_number()).await {
                        Ok(Ok(head)) => {
                            peer.health.record_success(started.elapsed());
                            peer.health.head.fetch_max(head, Ordering::Relaxed);
                        }
                        _ => peer.health.record_failure(),
                    }
                });
                futures::future::join_all(probes).await;
            }
        });
    }

    /// Runs `f` against the best node, then the next ones on an error, until one answers.
    pub async fn with_failover<T, F, Fut>(&self, block: u64, f: F) -> Result<T, NodeError>
    where
        F: FnMut(NodeClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, NodeError>>,
    {
        self.with_failover_within(block, READ_TIMEOUT, f).await
    }

    /// As `with_failover`, giving each node up to `timeout`.
    pub async fn with_failover_within<T, F, Fut>(
        &self,
        block: u64,
        timeout: Duration,
        mut f: F,
    ) -> Result<T, NodeError>
    where
        F: FnMut(NodeClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, NodeError>>,
    {
        let mut last = NodeError::Rpc("no node configured".into());
        for peer in self.ranked(block) {
            let started = Instant::now();
            match tokio::time::timeout(timeout, f(peer.client.clone()))
                .await
                .unwrap_or(Err(NodeError::Timeout(timeout)))
            {
                Ok(v) => {
                    peer.health.record_success(started.elapsed());
                    return Ok(v);
                }
                Err(e) => {
                    peer.health.record_failure();
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Runs `fut` on the nodes' runtime and waits for it on this (non-runtime) thread.
    pub fn blocking<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, NodeError>> + Send + 'static,
    ) -> Result<T, NodeError> {
        let Some(node) = read(&self.peers).first().map(|p| p.client.clone()) else {
            return Err(NodeError::Rpc("no node configured".into()));
        };
        node.blocking(fut)
    }
}

impl Health {
    /// How long to wait for this node before asking another too: a few times its usual answer
    /// time, within bounds (a node never measured gets the upper bound).
    fn hedge_after(&self) -> Duration {
        let usual = self.latency_us.load(Ordering::Relaxed);
        if usual == 0 {
            return Duration::from_millis(250);
        }
        Duration::from_micros((usual * 4).clamp(20_000, 250_000))
    }

    fn record_success(&self, took: Duration) {
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 { us } else { (old * 7 + us) / 8 };
        self.latency_us.store(new.max(1), Ordering::Relaxed);
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.failing.store(0, Ordering::Relaxed);
    }

    fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.failing.fetch_add(1, Ordering::Relaxed);
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}
