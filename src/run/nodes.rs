//! State connections to every configured node at start: all at once, any that answer are
//! used; the others are retried in the background and join when they come up. One node down
//! never stops the guard from starting or reading state.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::RunError;
use crate::{
    config::{Config, NodeConfig},
    fork::{NodeClient, StateSource},
};

const RETRY_EVERY: Duration = Duration::from_secs(2);
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(1);
/// How often every node's head and answer time are probed (a hung node is ranked last within
/// about this long).
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Connects to every node; fails only when none answers.
pub(super) async fn connect_all(
    config: &Config,
    cancel: CancellationToken,
) -> Result<StateSource, RunError> {
    let attempts = futures::future::join_all(
        config.nodes.iter().map(|n| NodeClient::connect(&n.name, &n.url)),
    )
    .await;
    let mut clients = Vec::new();
    let mut down: Vec<(NodeConfig, String)> = Vec::new();
    for (node, attempt) in config.nodes.iter().zip(attempts) {
        match attempt {
            Ok(c) => clients.push(c),
            Err(e) => down.push((node.clone(), e.to_string())),
        }
    }
    if clients.is_empty() {
        let why = down.iter().map(|(n, e)| format!("{} ({e})", n.name)).collect::<Vec<_>>();
        return Err(RunError::NoNodeReachable(why.join("; ")));
    }
    for (node, reason) in &down {
        tracing::warn!(node = %node.name, %reason, "node unreachable at start; retried in the background");
    }
    for c in &clients {
        keep_alive(c.clone(), cancel.clone());
    }
    let source = StateSource::new(clients);
    source.spawn_probes(PROBE_EVERY, cancel.clone());
    for (node, _) in down {
        let (source, cancel) = (source.clone(), cancel.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(RETRY_EVERY) => {}
                }
                if let Ok(c) = NodeClient::connect(&node.name, &node.url).await {
                    tracing::info!(node = %node.name, "node reachable; reading state from it too");
                    keep_alive(c.clone(), cancel.clone());
                    source.add(c);
                    return;
                }
            }
        });
    }
    Ok(source)
}

/// Re-opens a node's connection when a health check fails, until `cancel`.
fn keep_alive(client: NodeClient, cancel: CancellationToken) {
    let task = client.keep_alive(KEEP_ALIVE_EVERY);
    tokio::spawn(async move {
        cancel.cancelled().await;
        task.abort();
    });
}
