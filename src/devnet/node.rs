//! The dev node over HTTP: fees, nonces, local signing, raw sends, and mining a batch of
//! set-up txs until every receipt is in and succeeded.

use alloy::{
    consensus::{SignableTransaction, TypedTransaction},
    eips::{BlockNumberOrTag, Encodable2718},
    network::TxSignerSync,
    primitives::{B256, Bytes},
    providers::{Provider, RootProvider, ext::AnvilApi},
    signers::local::PrivateKeySigner,
    transports::http::reqwest::Url,
};
use futures::future::try_join_all;

use super::DevnetError;

/// Priority fee paid by every dev tx.
pub(crate) const TIP_WEI: u128 = 1_000_000_000;

/// How many blocks a batch may take to be mined before we give up (a batch normally fits in a few).
const MAX_BLOCKS_PER_BATCH: u32 = 64;

/// Fee fields for the next block: `max_fee = 2 * base_fee + tip`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fees {
    pub(crate) max_fee_per_gas: u128,
    pub(crate) max_priority_fee_per_gas: u128,
}

/// A set-up tx that was sent and is waiting to be mined, with the step it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct SentStep {
    pub(crate) step: String,
    pub(crate) tx: B256,
}

/// An HTTP connection to the dev node.
#[derive(Debug, Clone)]
pub(crate) struct DevNode {
    pub(crate) provider: RootProvider,
    pub(crate) chain_id: u64,
}

fn rpc(action: impl Into<String>) -> impl FnOnce(alloy::transports::TransportError) -> DevnetError {
    let action = action.into();
    move |source| DevnetError::Rpc { action, source }
}

impl DevNode {
    pub(crate) async fn connect(rpc_url: &str) -> Result<Self, DevnetError> {
        let invalid =
            |reason: String| DevnetError::InvalidRpcUrl { url: rpc_url.to_string(), reason };
        let url: Url = rpc_url.parse().map_err(|e| invalid(format!("{e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!("scheme `{}` is not http or https", url.scheme())));
        }
        let provider = RootProvider::new_http(url);
        let chain_id =
            provider.get_chain_id().await.map_err(rpc(format!("eth_chainId on {rpc_url}")))?;
        Ok(Self { provider, chain_id })
    }

    /// The fees for a tx in the next block, from the latest block's base fee.
    pub(crate) async fn fees(&self) -> Result<Fees, DevnetError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(rpc("eth_getBlockByNumber(latest)"))?
            .ok_or_else(|| DevnetError::UnexpectedNodeState {
                what: "the node has no latest block".into(),
            })?;
        let base_fee = block
            .header
            .base_fee_per_gas
            .ok_or(DevnetError::NoBaseFee { block: block.header.number })?;
        Ok(Fees {
            max_fee_per_gas: 2 * u128::from(base_fee) + TIP_WEI,
            max_priority_fee_per_gas: TIP_WEI,
        })
    }

    /// The next nonce of `address`, counting txs still waiting in the pool.
    pub(crate) async fn pending_nonce(
        &self,
        address: alloy::primitives::Address,
    ) -> Result<u64, DevnetError> {
        self.provider
            .get_transaction_count(address)
            .pending()
            .await
            .map_err(rpc(format!("eth_getTransactionCount({address}, pending)")))
    }

    /// Signs `tx` with `signer` and returns the EIP-2718 encoding ready for `eth_sendRawTransaction`.
    pub(crate) fn sign(
        &self,
        signer: &PrivateKeySigner,
        mut tx: TypedTransaction,
        what: &str,
    ) -> Result<Bytes, DevnetError> {
        let signature = signer
            .sign_transaction_sync(&mut tx as &mut dyn SignableTransaction<_>)
            .map_err(|source| DevnetError::Sign { what: what.to_string(), source })?;
        Ok(tx.into_envelope(signature).encoded_2718().into())
    }

    pub(crate) async fn send_raw(&self, raw: &[u8], what: &str) -> Result<B256, DevnetError> {
        let pending = self
            .provider
            .send_raw_transaction(raw)
            .await
            .map_err(rpc(format!("eth_sendRawTransaction for {what}")))?;
        Ok(*pending.tx_hash())
    }

    /// Mines blocks until every step's receipt exists, then checks each succeeded.
    /// Returns the number of the last block mined.
    pub(crate) async fn mine_and_check(&self, steps: &[SentStep]) -> Result<u64, DevnetError> {
        let mut waiting: Vec<&SentStep> = steps.iter().collect();
        let mut blocks = 0;
        while !waiting.is_empty() {
            if blocks == MAX_BLOCKS_PER_BATCH {
                let stuck = waiting[0];
                return Err(DevnetError::NotMined {
                    step: stuck.step.clone(),
                    tx: stuck.tx,
                    blocks,
                });
            }
            self.provider.evm_mine(None).await.map_err(rpc("evm_mine"))?;
            blocks += 1;
            let receipts = try_join_all(waiting.iter().map(|s| async move {
                self.provider
                    .get_transaction_receipt(s.tx)
                    .await
                    .map_err(rpc(format!("eth_getTransactionReceipt for `{}`", s.step)))
            }))
            .await?;
            let mut still_waiting = Vec::with_capacity(waiting.len());
            for (step, receipt) in waiting.into_iter().zip(receipts) {
                match receipt {
                    None => still_waiting.push(step),
                    Some(r) if !r.status() => {
                        return Err(DevnetError::StepReverted {
                            step: step.step.clone(),
                            tx: step.tx,
                        });
                    }
                    Some(_) => {}
                }
            }
            waiting = still_waiting;
        }
        self.provider.get_block_number().await.map_err(rpc("eth_blockNumber"))
    }
}
