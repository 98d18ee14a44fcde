//! Reading one mined block as the guard needs it: header, txs, receipts (checked to be the
//! block's own, one per tx) and the node's state diff, each from the first node that answers
//! it correctly.

use std::time::Duration;

use alloy::{
    eips::BlockNumberOrTag, primitives::B256, providers::Provider,
    rpc::types::BlockTransactionsKind,
};

use super::{
    GuardError, now_unix,
    replay::{MinedTx, ReceiptSummary},
};
use crate::{
    fork::{BlockDiff, NodeClient, NodeError, StateSource},
    simulate::SimBlock,
};

/// A node may take this long to trace a whole block.
const TRACE_TIMEOUT: Duration = Duration::from_secs(20);

/// A mined block as the guard replays it.
#[derive(Debug)]
pub struct BlockData {
    pub number: u64,
    pub hash: B256,
    pub parent_hash: B256,
    /// The block's own env (to re-run its txs).
    pub block_env: SimBlock,
    /// The env of the block after it (pending txs run in it).
    pub header_env: SimBlock,
    pub txs: Vec<MinedTx>,
    /// The node's state diff, when it was asked for (see `fetch_block_diff`).
    pub diff: Option<BlockDiff>,
    /// Time spent reading the block, its receipts and its diff from the nodes, µs.
    pub fetch_us: [u64; 3],
}

/// Reads block `number` (with its txs, receipts and diff when `full`).
pub async fn fetch_block_data(
    source: &StateSource,
    number: u64,
    full: bool,
) -> Result<BlockData, GuardError> {
    let node_error = |source| GuardError::Node { block: number, source };
    let started = std::time::Instant::now();
    let block = source
        .with_failover(number, |node| async move {
            let kind =
                if full { BlockTransactionsKind::Full } else { BlockTransactionsKind::Hashes };
            node.provider()
                .get_block_by_number(BlockNumberOrTag::Number(number))
                .kind(kind)
                .await
                .map_err(|e| NodeError::Rpc(e.to_string()))?
                .ok_or(NodeError::MissingBlock(number))
        })
        .await
        .map_err(|e| match e {
            NodeError::MissingBlock(n) => GuardError::MissingBlock(n),
            other => node_error(other),
        })?;
    let header = &block.header;
    let data = BlockData {
        number,
        hash: header.hash,
        parent_hash: header.parent_hash,
        block_env: SimBlock::of_block(header),
        header_env: SimBlock::pending_after(header, now_unix()),
        txs: Vec::new(),
        diff: None,
        fetch_us: [elapsed_us(started), 0, 0],
    };
    if !full {
        return Ok(data);
    }
    let txs: Vec<_> = block.transactions.txns().map(|t| t.inner.clone()).collect();
    let hashes: Vec<B256> = txs.iter().map(|t| *t.tx_hash()).collect();
    let started = std::time::Instant::now();
    let receipts = {
        let hashes = hashes.clone();
        source
            .with_failover(number, move |node| {
                let hashes = hashes.clone();
                async move { checked_receipts(&node, number, &hashes).await }
            })
            .await
    };
    let receipts: Vec<Option<ReceiptSummary>> = match receipts {
        Ok(r) => r.into_iter().map(Some).collect(),
        Err(e) => {
            tracing::warn!(block = number, error = %e, "no node gave the block's receipts; its replay cannot be verified");
            vec![None; hashes.len()]
        }
    };
    let receipts_us = elapsed_us(started);
    let txs = txs
        .into_iter()
        .zip(hashes)
        .zip(receipts)
        .map(|((tx, hash), receipt)| MinedTx { hash, tx, receipt })
        .collect();
    let fetch_us = [data.fetch_us[0], receipts_us, 0];
    Ok(BlockData { txs, fetch_us, ..data })
}

/// The block's state diff from the first node that gives one matching its txs.
pub async fn fetch_block_diff(
    source: &StateSource,
    number: u64,
    hash: B256,
    tx_hashes: &[B256],
) -> Result<BlockDiff, NodeError> {
    source
        .with_failover_within(number, TRACE_TIMEOUT, |node| async move {
            block_diff(&node, hash, tx_hashes).await
        })
        .await
}

fn elapsed_us(since: std::time::Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

/// The block's receipts, one per tx in order, or an error saying how the node's answer falls
/// short (a node that answers with too few must not make the replay see a shorter block).
async fn checked_receipts(
    node: &NodeClient,
    number: u64,
    hashes: &[B256],
) -> Result<Vec<ReceiptSummary>, NodeError> {
    let receipts = node
        .provider()
        .get_block_receipts(number.into())
        .await
        .map_err(|e| NodeError::Rpc(e.to_string()))?
        .ok_or_else(|| NodeError::Rpc(format!("{}: no receipts for block {number}", node.name)))?;
    if receipts.len() != hashes.len() {
        return Err(NodeError::Rpc(format!(
            "{}: {} receipts for the {} txs of block {number}",
            node.name,
            receipts.len(),
            hashes.len()
        )));
    }
    receipts
        .iter()
        .zip(hashes)
        .enumerate()
        .map(|(i, (r, h))| {
            if r.transaction_hash != *h {
                return Err(NodeError::Rpc(format!(
                    "{}: receipt {i} of block {number} is for {}, not {h}",
                    node.name, r.transaction_hash
                )));
            }
            Ok(ReceiptSummary { success: r.status(), gas_used: r.gas_used })
        })
        .collect()
}

/// The block's state diff from the node's `prestateTracer` in diff mode.
async fn block_diff(
    node: &NodeClient,
    hash: B256,
    hashes: &[B256],
) -> Result<BlockDiff, NodeError> {
    let options = serde_json::json!({
        "tracer": "prestateTracer",
        "tracerConfig": { "diffMode": true },
        "timeout": "20s",
    });
    let provider = node.provider();
    // Raw JSON: the tracer's per-tx frames are read by `BlockDiff` itself.
    let trace: serde_json::Value = provider
        .raw_request("debug_traceBlockByHash".into(), (hash, options))
        .await
        .map_err(|e| NodeError::Rpc(e.to_string()))?;
    BlockDiff::from_trace(trace, hashes).map_err(|e| NodeError::Rpc(e.to_string()))
}
