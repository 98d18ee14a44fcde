//! The main loop's only job: route node events — a node up or down, a forging node, a new
//! head — until shutdown. Everything else runs in its own task.

use std::{collections::HashSet, future::Future, sync::Arc, time::Duration, time::Instant};

use tokio::sync::{mpsc, watch};

use crate::{
    alert::{AlertEvent, AlertHub},
    fork::StateSource,
    guard::HeadSignal,
    ingest::{NodeEvent, SeenSet, TxRouter},
    simulate::SimBlock,
};

/// Tx hashes are remembered this long: a late copy from a slower node, or a re-sync, is not
/// simulated again.
const SEEN_FOR: Duration = Duration::from_secs(600);
/// …and at most this many (≈100 bytes each): under a flood the oldest go first.
const MAX_SEEN: usize = 500_000;

pub(super) struct Routing {
    /// Nodes that must be subscribed before `ready`.
    pub expected: usize,
    pub source: StateSource,
    pub seen: Arc<SeenSet>,
    pub router: Arc<TxRouter<SimBlock>>,
    /// Wakes the block guard.
    pub heads: watch::Sender<HeadSignal>,
    pub alerts: AlertHub,
}

impl Routing {
    /// Routes until `shutdown` resolves or every node task has ended; `on_ready` runs once,
    /// when every node is up.
    pub(super) async fn run(
        self,
        mut events: mpsc::UnboundedReceiver<NodeEvent>,
        shutdown: impl Future<Output = ()>,
        on_ready: impl FnOnce(),
    ) {
        let mut on_ready = Some(on_ready);
        let mut up: HashSet<Arc<str>> = HashSet::new();
        tokio::pin!(shutdown);
        loop {
            let event = tokio::select! {
                _ = &mut shutdown => return,
                event = events.recv() => event,
            };
            let Some(event) = event else { return };
            match event {
                NodeEvent::Up { node } => {
                    tracing::info!(node = %node, "subscribed to heads and pending txs");
                    self.alerts.notify(AlertEvent::node_up(&node));
                    up.insert(node);
                    if up.len() == self.expected
                        && let Some(f) = on_ready.take()
                    {
                        f();
                    }
                }
                NodeEvent::Down { node, reason } => {
                    tracing::debug!(node = %node, %reason, "node session ended");
                    self.alerts.notify(AlertEvent::node_down(&node, &reason));
                    up.remove(&node);
                }
                NodeEvent::Forged { node, total } => {
                    // Its frames are dropped anyway; its state answers are not trusted first.
                    tracing::warn!(node = %node, forged = total, "node sends forged pending txs; demoted for state reads");
                    self.source.demote(&node);
                }
                NodeEvent::Head(h) => {
                    self.source.note_head(&h.source, h.number);
                    self.seen.prune(SEEN_FOR, MAX_SEEN);
                    tracing::debug!(block = h.number, seen = self.seen.len(), "ingest state");
                    self.router.maintain();
                    // Every announcement wakes the guard: a head it could not fetch yet (a node
                    // ahead of the others, or lying) is tried again, and never hides later ones.
                    self.heads.send_modify(|current| {
                        if h.number >= current.number && h.hash != current.hash {
                            *current = HeadSignal {
                                number: h.number,
                                hash: h.hash,
                                seen_at: Some(Instant::now()),
                            };
                        }
                    });
                }
            }
        }
    }
}
