//! One node's public mempool: `eth_sendRawTransaction` on the node's pause connection (a
//! WebSocket written on this task, so the write time is known), else on its shared client.

use std::time::Instant as StdInstant;

use alloy::{
    primitives::{B256, Bytes},
    providers::Provider,
};
use tokio::time::{Instant, timeout_at};

use super::{
    REQUEST_TIMEOUT,
    socket::{PauseSocket, Written},
};
use crate::fork::NodeClient;

/// How one copy went: when its bytes were written to the socket (`None`: the transport does not
/// tell, or nothing was written), and the node's answer (`Err` says what went wrong).
#[derive(Debug)]
pub(crate) struct NodeSend {
    pub(crate) written: Option<StdInstant>,
    pub(crate) result: Result<(), String>,
}

/// Sends `raw` to `node`, or only reads the answer where `early` already wrote it. A node that
/// already holds these exact bytes counts as a success: the copy is where it should be.
pub(crate) async fn send_raw(
    node: &NodeClient,
    socket: Option<&PauseSocket>,
    raw: Bytes,
    tx_hash: B256,
    early: Option<Written>,
) -> NodeSend {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut written = None;
    if let Some(socket) = socket {
        let write = match early {
            Some(w) => Ok(Ok(w)),
            None => {
                let params = serde_json::json!([raw]);
                timeout_at(deadline, socket.write("eth_sendRawTransaction", params)).await
            }
        };
        match write {
            Ok(Ok(w)) => {
                written = Some(w.at);
                match timeout_at(deadline, w.answer()).await {
                    Err(_) => return NodeSend { written, result: Err(no_answer()) },
                    Ok(Ok(v)) => {
                        let result = match v.as_str().and_then(|h| h.parse::<B256>().ok()) {
                            Some(hash) => accepted(node, Ok(hash), tx_hash, deadline).await,
                            None => Err(format!("node answered {v}, not a tx hash")),
                        };
                        return NodeSend { written, result };
                    }
                    Ok(Err(Some(error))) => {
                        let result = accepted(node, Err(error), tx_hash, deadline).await;
                        return NodeSend { written, result };
                    }
                    // The connection dropped before the answer: the client below tries again.
                    Ok(Err(None)) => {}
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(node = %node.name, error = %e, "pause connection unusable; sending on the node's client")
            }
            Err(_) => return NodeSend { written, result: Err(no_answer()) },
        }
    }
    NodeSend { written, result: send_on_client(node, raw, tx_hash, deadline).await }
}

fn no_answer() -> String {
    format!("no answer within {REQUEST_TIMEOUT:?}")
}

/// The node's shared client (HTTP, IPC, or a WebSocket whose pause connection failed).
async fn send_on_client(
    node: &NodeClient,
    raw: Bytes,
    tx_hash: B256,
    deadline: Instant,
) -> Result<(), String> {
    let mut provider = node.provider();
    let mut answer = timeout_at(
        deadline,
        provider.raw_request::<_, B256>("eth_sendRawTransaction".into(), (raw.clone(),)),
    )
    .await
    .map_err(|_| no_answer())?;
    // A dropped connection (not an answer from the node): open a new one and try once more.
    if let Err(e) = &answer
        && e.as_error_resp().is_none()
        && timeout_at(deadline, node.reconnect()).await.is_ok_and(|r| r.is_ok())
    {
        provider = node.provider();
        answer = timeout_at(
            deadline,
            provider.raw_request::<_, B256>("eth_sendRawTransaction".into(), (raw,)),
        )
        .await
        .map_err(|_| no_answer())?;
    }
    accepted(node, answer.map_err(|e| e.to_string()), tx_hash, deadline).await
}

/// Reads the node's answer: its hash for the tx, or an error that may still mean it holds it.
async fn accepted(
    node: &NodeClient,
    answer: Result<B256, String>,
    tx_hash: B256,
    deadline: Instant,
) -> Result<(), String> {
    let error = match answer {
        Ok(hash) if hash == tx_hash => return Ok(()),
        Ok(hash) => return Err(format!("node took the tx as {hash}, not {tx_hash}")),
        Err(e) => e,
    };
    let lower = error.to_lowercase();
    // geth / reth: "already known"; anvil: "transaction already imported".
    if lower.contains("already known") || lower.contains("already imported") {
        return Ok(());
    }
    // "nonce too low" also comes back once these bytes are mined — but equally when another tx
    // took the nonce, and then this pause can never land. Only the node knowing the hash tells.
    if lower.contains("nonce too low") {
        let known = timeout_at(deadline, node.provider().get_transaction_by_hash(tx_hash)).await;
        if let Ok(Ok(Some(_))) = known {
            return Ok(());
        }
    }
    Err(error)
}
