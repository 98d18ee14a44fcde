//! One node connection: subscribe to heads and pending txs, re-sync the pool after every
//! (re)connect, and reconnect with backoff when the connection drops. Never panics on input.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use alloy::{
    primitives::B256,
    providers::{Provider, ext::TxPoolApi},
    rpc::types::Transaction,
};
use futures::StreamExt;
use serde_json::value::RawValue;
use tokio::{
    sync::{mpsc::UnboundedSender, watch},
    task::JoinHandle,
};

use super::TxRouter;
use crate::{
    config::NodeConfig,
    types::{NewHead, PendingTx},
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// What a node task reports besides txs.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// Subscribed (after a start or a reconnect).
    Up {
        node: Arc<str>,
    },
    Down {
        node: Arc<str>,
        reason: String,
    },
    Head(NewHead),
}

enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// Runs a node connection until `shutdown` turns true.
pub fn spawn_node<T: Send + Sync + 'static>(
    node: NodeConfig,
    router: Arc<TxRouter<T>>,
    events: UnboundedSender<NodeEvent>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let name: Arc<str> = node.name.clone().into();
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let started = Instant::now();
            let reason = match session(&node, &name, &router, &events, &mut shutdown).await {
                SessionEnd::Shutdown => return,
                SessionEnd::Lost(reason) => reason,
            };
            let _ = events.send(NodeEvent::Down { node: Arc::clone(&name), reason });
            router.stats().reconnects.fetch_add(1, Ordering::Relaxed);
            if started.elapsed() > Duration::from_secs(10) {
                backoff = Duration::from_millis(100);
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

async fn session<T: Send + Sync + 'static>(
    node: &NodeConfig,
    name: &Arc<str>,
    router: &Arc<TxRouter<T>>,
    events: &UnboundedSender<NodeEvent>,
    shutdown: &mut watch::Receiver<bool>,
) -> SessionEnd {
    // The transport's own silent reconnect is off: a gap must end the session, so that the
    // pool is re-synced on the new one.
    let connect = crate::fork::connect_provider(&node.url, 0);
    let provider = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return SessionEnd::Lost(format!("connect: {e}")),
        Err(_) => return SessionEnd::Lost("connect: timed out".into()),
    };
    let mut heads = match provider.subscribe_blocks().await {
        Ok(s) => s.into_stream(),
        Err(e) => return SessionEnd::Lost(format!("subscribe newHeads: {e}")),
    };
    let mut pending = if node.pending {
        // Full bodies where the node offers them; a node that sends hashes is handled too.
        // Raw frames: decoded straight from the text, not through a JSON tree.
        match provider.subscribe::<_, Box<RawValue>>(("newPendingTransactions", true)).await {
            Ok(s) => Some(s.into_stream()),
            Err(e) => return SessionEnd::Lost(format!("subscribe newPendingTransactions: {e}")),
        }
    } else {
        None
    };
    let _ = events.send(NodeEvent::Up { node: Arc::clone(name) });

    // Whatever arrived while we were away: the pool as it is now, and the head.
    if node.pending {
        match provider.txpool_content().await {
            Ok(content) => {
                for tx in content.pending.into_values().flat_map(|by_nonce| by_nonce.into_values())
                {
                    router.route(pending_of(tx, name, Instant::now()));
                }
            }
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "txpool_content unavailable; pool not re-synced")
            }
        }
    }
    if let Ok(number) = provider.get_block_number().await
        && let Ok(Some(block)) = provider.get_block_by_number(number.into()).await
    {
        let _ = events.send(NodeEvent::Head(NewHead {
            number,
            hash: block.header.hash,
            source: Arc::clone(name),
        }));
    }

    // A WebSocket whose peer vanished does not always end its subscriptions: ask now and then.
    let mut health = tokio::time::interval(HEALTH_EVERY);
    health.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return SessionEnd::Shutdown,
            _ = health.tick() => {
                let check = tokio::time::timeout(HEALTH_EVERY, provider.get_block_number()).await;
                if !matches!(check, Ok(Ok(_))) {
                    return SessionEnd::Lost("health check failed".into());
                }
            }
            head = heads.next() => match head {
                Some(header) => {
                    router.stats().heads.fetch_add(1, Ordering::Relaxed);
                    let _ = events.send(NodeEvent::Head(NewHead {
                        number: header.number,
                        hash: header.hash,
                        source: Arc::clone(name),
                    }));
                }
                None => return SessionEnd::Lost("head subscription closed".into()),
            },
            item = next_pending(&mut pending) => match item {
                Some(frame) => handle_pending(&frame, &provider, name, router),
                None => return SessionEnd::Lost("pending subscription closed".into()),
            },
        }
    }
}

async fn next_pending<S: futures::Stream + Unpin>(stream: &mut Option<S>) -> Option<S::Item> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

fn pending_of(tx: Transaction, source: &Arc<str>, seen_at: Instant) -> PendingTx {
    let now = Instant::now();
    PendingTx {
        hash: *tx.inner.tx_hash(),
        tx: tx.inner,
        seen_at,
        decoded_at: now,
        queued_at: now,
        source: Arc::clone(source),
    }
}

/// A full pending-tx frame (the JSON object a node sends, as text) as a `PendingTx`. The sender
/// is the node's `from`: the node checked the signature before it took the tx into its pool.
pub fn decode_pending(
    frame: &str,
    source: &Arc<str>,
    seen_at: Instant,
) -> Result<PendingTx, serde_json::Error> {
    serde_json::from_str::<Transaction>(frame).map(|tx| pending_of(tx, source, seen_at))
}

/// Just the hash of a frame, to drop a duplicate before decoding all of it.
#[derive(serde::Deserialize)]
struct FrameHash {
    hash: B256,
}

/// A full tx body or a bare hash (fetched). Malformed frames are counted and skipped.
fn handle_pending<T: Send + Sync + 'static>(
    frame: &RawValue,
    provider: &impl Provider,
    name: &Arc<str>,
    router: &Arc<TxRouter<T>>,
) {
    let seen_at = Instant::now();
    let text = frame.get();
    let duplicate = |hash: &B256| {
        let seen = router.seen().contains(hash);
        if seen {
            router.stats().received.fetch_add(1, Ordering::Relaxed);
            router.stats().duplicates.fetch_add(1, Ordering::Relaxed);
        }
        seen
    };
    if text.starts_with('"') {
        let Ok(hash) = serde_json::from_str::<B256>(text) else {
            router.stats().undecodable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if duplicate(&hash) {
            return;
        }
        let fetch = provider.get_transaction_by_hash(hash).into_future();
        let router = Arc::clone(router);
        let name = Arc::clone(name);
        tokio::spawn(async move {
            match fetch.await {
                Ok(Some(tx)) => router.route(pending_of(tx, &name, seen_at)),
                _ => {
                    router.stats().fetch_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        return;
    }
    if let Ok(FrameHash { hash }) = serde_json::from_str::<FrameHash>(text)
        && duplicate(&hash)
    {
        return;
    }
    match decode_pending(text, name, seen_at) {
        Ok(p) => router.route(p),
        Err(e) => {
            router.stats().undecodable.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(node = %name, error = %e, "undecodable pending tx skipped");
        }
    }
}
