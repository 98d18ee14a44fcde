//! Submit: sends one signed pause tx to every node's public mempool and, as a signed bundle for
//! the target block, to every private relay, all at once; hands on a `SubmitReport`.

mod dispatch;
mod metrics;
mod node;
mod relay;
mod socket;

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{B256, Bytes},
    signers::local::PrivateKeySigner,
};
use futures::future::join_all;
use serde::Serialize;
use thiserror::Error;

pub use dispatch::{DeployedFn, DeployedHook, Dispatcher};
#[cfg(feature = "dev")]
pub(crate) use socket::PauseSocket;

use crate::{
    config::{NodeConfig, RelayConfig},
    fork::{NodeClient, NodeError},
};
use relay::RelayEndpoint;

/// How long one destination may take to answer; a slow one never holds up the others.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The most a worker waits to write a pause itself; past it the submit task sends it.
const EARLY_WRITE_WAIT: Duration = Duration::from_millis(2);

/// A pause's bytes a worker already wrote to some nodes' pause connections, with their answers
/// to come.
#[derive(Debug)]
pub struct EarlyWrites {
    /// When the worker began writing (the report's times count from here).
    started: Instant,
    by_node: Vec<(String, socket::Written)>,
}

impl EarlyWrites {
    /// Nothing written early: the submit task sends everywhere.
    pub fn none() -> Self {
        Self { started: Instant::now(), by_node: Vec::new() }
    }
}

#[derive(Debug, Error)]
pub enum SubmitError {
    #[error("node `{name}` cannot be reached: {source}")]
    NodeUnreachable {
        name: String,
        #[source]
        source: NodeError,
    },
    #[error("relay `{name}`: `{url}` is not a usable URL: {reason}")]
    RelayUrl { name: String, url: String, reason: String },
    #[error("relay `{name}`: cannot build an HTTP client: {reason}")]
    RelayClient { name: String, reason: String },
    #[error("signing the relay request: {source}")]
    Sign {
        #[source]
        source: alloy::signers::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// A node's public mempool, by `eth_sendRawTransaction`.
    Node,
    /// A private relay, by `eth_sendBundle`.
    Relay,
}

/// Where one copy of the pause went, and how that went.
#[derive(Debug, Clone, Serialize)]
pub struct SendResult {
    /// The node's or relay's name from the config.
    pub destination: String,
    pub kind: DestinationKind,
    pub ok: bool,
    pub error: Option<String>,
    /// From the moment `submit` was called to this destination's answer (or its failure).
    pub latency_us: u64,
    /// From the moment `submit` was called to the request's bytes written to the socket;
    /// `None` where the transport does not tell (HTTP / IPC nodes, relays) or nothing was written.
    pub written_us: Option<u64>,
    /// Written by the simulation worker the moment the pause was signed, not by the submit task.
    #[serde(default)]
    pub by_worker: bool,
}

/// Every copy of one pause tx sent for one target block.
#[derive(Debug, Clone, Serialize)]
pub struct SubmitReport {
    pub tx_hash: B256,
    pub target_block: u64,
    /// Nodes first, in config order, then relays in config order.
    pub results: Vec<SendResult>,
    /// When `submit` was called.
    #[serde(skip)]
    pub started_at: Instant,
    /// When the first copy's bytes were written to a socket, where that is known.
    #[serde(skip)]
    pub first_written_at: Option<Instant>,
}

impl SubmitReport {
    /// Whether at least one destination took the tx.
    pub fn any_ok(&self) -> bool {
        self.results.iter().any(|r| r.ok)
    }
}

/// Holds a connection to every node and a keep-alive HTTP client per relay, ready to race.
pub struct Submitter {
    /// Nodes reachable so far; one that was down at start joins when it comes up.
    nodes: Arc<RwLock<Vec<NodeLink>>>,
    relays: Vec<RelayEndpoint>,
    relay_auth: Option<PrivateKeySigner>,
}

impl std::fmt::Debug for Submitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The relay-auth key is shown by its address only.
        f.debug_struct("Submitter")
            .field("nodes", &self.nodes().iter().map(|n| n.client.name.clone()).collect::<Vec<_>>())
            .field("relays", &self.relays.iter().map(|r| &r.name).collect::<Vec<_>>())
            .field("relay_auth", &self.relay_auth.as_ref().map(|s| s.address()))
            .finish()
    }
}

/// A node's shared client, and its own connection for pauses where it speaks WebSocket.
#[derive(Debug, Clone)]
struct NodeLink {
    client: NodeClient,
    socket: Option<Arc<socket::PauseSocket>>,
}

impl NodeLink {
    async fn new(client: NodeClient) -> Self {
        let socket = socket::PauseSocket::for_url(&client.url).map(Arc::new);
        if let Some(s) = &socket
            && let Err(e) = s.warm().await
        {
            // Opened again on the first pause; the shared client stands in meanwhile.
            tracing::warn!(node = %client.name, error = %e, "pause connection not open yet");
        }
        Self { client, socket }
    }
}

impl Submitter {
    /// Opens a persistent connection to every node (WS / IPC / HTTP keep-alive) and an HTTP
    /// client per relay. A node that cannot be reached at start is retried in the background
    /// (an error only when no node answers); relays are not contacted until the first submit.
    ///
    /// Without `relay_auth`, bundles go out unsigned (some builders accept that; Flashbots
    /// does not).
    pub async fn connect(
        nodes: &[NodeConfig],
        relays: &[RelayConfig],
        relay_auth: Option<PrivateKeySigner>,
    ) -> Result<Self, SubmitError> {
        let relays = relays.iter().map(RelayEndpoint::new).collect::<Result<Vec<_>, _>>()?;
        let connected = join_all(nodes.iter().map(|n| NodeClient::connect(&n.name, &n.url))).await;
        let mut up = Vec::new();
        let mut first_error = None;
        let mut down = Vec::new();
        for (n, attempt) in nodes.iter().zip(connected) {
            match attempt {
                Ok(c) => up.push(NodeLink::new(c).await),
                Err(source) => {
                    down.push(n.clone());
                    first_error.get_or_insert(SubmitError::NodeUnreachable {
                        name: n.name.clone(),
                        source,
                    });
                }
            }
        }
        if up.is_empty()
            && let Some(e) = first_error
        {
            return Err(e);
        }
        let submitter = Self { nodes: Arc::new(RwLock::new(up)), relays, relay_auth };
        for n in down {
            let nodes = Arc::clone(&submitter.nodes);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if let Ok(c) = NodeClient::connect(&n.name, &n.url).await {
                        let link = NodeLink::new(c).await;
                        nodes.write().unwrap_or_else(|p| p.into_inner()).push(link);
                        return;
                    }
                }
            });
        }
        Ok(submitter)
    }

    fn nodes(&self) -> Vec<NodeLink> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Writes `raw` on every node's pause connection that is open and idle, on the calling
    /// thread (a simulation worker, not one of `runtime`'s): the pause leaves as soon as it is
    /// signed, with no hop to the submit task. The answers are read by `submit_after`, which
    /// also sends wherever nothing was written here (HTTP and IPC nodes, relays, a connection
    /// being opened). Waits at most `EARLY_WRITE_WAIT` in all.
    pub fn write_early(&self, runtime: &tokio::runtime::Handle, raw: &Bytes) -> EarlyWrites {
        let started = Instant::now();
        // Only a multi-thread runtime drives its sockets and timers while this thread waits.
        if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread
            || tokio::runtime::Handle::try_current().is_ok()
        {
            return EarlyWrites { started, by_node: Vec::new() };
        }
        let nodes = self.nodes();
        let writes = runtime.block_on(async {
            let params = serde_json::json!([raw]);
            let each = nodes.iter().filter_map(|n| {
                let socket = n.socket.as_deref()?;
                let params = params.clone();
                Some(async move {
                    let written = tokio::time::timeout(
                        EARLY_WRITE_WAIT,
                        socket.write_if_open("eth_sendRawTransaction", params),
                    )
                    .await;
                    match written {
                        Ok(Some(Ok(w))) => Some((n.client.name.clone(), w)),
                        _ => None,
                    }
                })
            });
            join_all(each).await
        });
        EarlyWrites { started, by_node: writes.into_iter().flatten().collect() }
    }

    /// Sends the same signed raw tx to every node (`eth_sendRawTransaction`) and, as a bundle
    /// for `target_block`, to every relay (`eth_sendBundle`), all concurrently.
    ///
    /// Never fails as a whole: each destination's outcome is in the report. A node answering
    /// that it already holds these bytes counts as ok.
    pub async fn submit(&self, raw: Bytes, tx_hash: B256, target_block: u64) -> SubmitReport {
        self.submit_after(EarlyWrites::none(), raw, tx_hash, target_block).await
    }

    /// As `submit`, where `early` already wrote the tx to some nodes: their answers are read,
    /// nothing is written to them again, and times count from when `early` began.
    pub async fn submit_after(
        &self,
        early: EarlyWrites,
        raw: Bytes,
        tx_hash: B256,
        target_block: u64,
    ) -> SubmitReport {
        let started = early.started;
        let mut early = early.by_node;
        let nodes = self.nodes();
        let early: Vec<Option<socket::Written>> = nodes
            .iter()
            .map(|n| {
                let at = early.iter().position(|(name, _)| *name == n.client.name)?;
                Some(early.swap_remove(at).1)
            })
            .collect();
        let to_nodes = join_all(nodes.iter().zip(early).map(|(n, written)| async {
            let by_worker = written.is_some();
            let sent =
                node::send_raw(&n.client, n.socket.as_deref(), raw.clone(), tx_hash, written).await;
            let mut result =
                outcome(&n.client.name, DestinationKind::Node, started, async { sent.result })
                    .await;
            result.written_us = sent.written.map(|w| micros_between(started, w));
            result.by_worker = by_worker;
            (result, sent.written)
        }));
        // The nodes' requests are polled first, so the relay signature (a secp256k1 signing)
        // is computed while they are already on their way.
        let to_relays = async {
            if self.relays.is_empty() {
                return Vec::new();
            }
            let body = relay::bundle_body(&raw, target_block);
            let signature = match &self.relay_auth {
                Some(signer) => Some(relay::sign_body(signer, &body).await),
                None => None,
            };
            let body = bytes::Bytes::from(body);
            join_all(self.relays.iter().map(|r| {
                let body = body.clone();
                let signature = signature.as_ref();
                let sent = async move {
                    match signature {
                        Some(Err(e)) => Err(e.to_string()),
                        Some(Ok(header)) => r.send(body, Some(header)).await,
                        None => r.send(body, None).await,
                    }
                };
                outcome(&r.name, DestinationKind::Relay, started, sent)
            }))
            .await
        };
        let (node_results, relay_results) = futures::join!(to_nodes, to_relays);
        let first_written_at = node_results.iter().filter_map(|(_, w)| *w).min();
        let mut results: Vec<SendResult> = node_results.into_iter().map(|(r, _)| r).collect();
        results.extend(relay_results);
        SubmitReport { tx_hash, target_block, results, started_at: started, first_written_at }
    }
}

async fn outcome(
    destination: &str,
    kind: DestinationKind,
    started: Instant,
    sent: impl Future<Output = Result<(), String>>,
) -> SendResult {
    let result = sent.await;
    let latency_us = micros_between(started, Instant::now());
    SendResult {
        destination: destination.to_string(),
        kind,
        ok: result.is_ok(),
        error: result.err(),
        latency_us,
        written_us: None,
        by_worker: false,
    }
}

fn micros_between(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_micros()).unwrap_or(u64::MAX)
}
