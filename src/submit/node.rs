//! One node's public mempool: `eth_sendRawTransaction` over the node's persistent connection.

use alloy::{
    primitives::{B256, Bytes},
    providers::Provider,
};
use tokio::time::{Instant, timeout_at};

use super::REQUEST_TIMEOUT;
use crate::fork::NodeClient;

/// Sends `raw` to `node`; `Err` carries what went wrong. A node that already holds these exact
/// bytes counts as a success: the copy is where it should be.
pub(crate) async fn send_raw(node: &NodeClient, raw: Bytes, tx_hash: B256) -> Result<(), String> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut provider = node.provider();
    let mut answer = timeout_at(
        deadline,
        provider.raw_request::<_, B256>("eth_sendRawTransaction".into(), (raw.clone(),)),
    )
    .await
    .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?;
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
        .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?;
    }
    let error = match answer {
        Ok(hash) if hash == tx_hash => return Ok(()),
        Ok(hash) => return Err(format!("node took the tx as {hash}, not {tx_hash}")),
        Err(e) => e.to_string(),
    };
    let lower = error.to_lowercase();
    // geth / reth: "already known"; anvil: "transaction already imported".
    if lower.contains("already known") || lower.contains("already imported") {
        return Ok(());
    }
    // "nonce too low" also comes back once these bytes are mined — but equally when another tx
    // took the nonce, and then this pause can never land. Only the node knowing the hash tells.
    if lower.contains("nonce too low") {
        let known = timeout_at(deadline, provider.get_transaction_by_hash(tx_hash)).await;
        if let Ok(Ok(Some(_))) = known {
            return Ok(());
        }
    }
    Err(error)
}
