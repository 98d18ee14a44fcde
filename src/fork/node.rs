//! A node connection used to read state at a pinned block, from async code or from a
//! simulation thread (which blocks on the answer without ever being a runtime thread).

use std::{
    future::Future,
    sync::{Arc, RwLock},
    time::Duration,
};

use alloy::{
    eips::BlockId,
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider},
};
use revm::{bytecode::Bytecode, state::AccountInfo};
use thiserror::Error;
use tokio::runtime::Handle;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum NodeError {
    #[error("cannot connect to node {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("node request failed: {0}")]
    Rpc(String),
    #[error("node did not answer within {0:?}")]
    Timeout(Duration),
    #[error("block {0} not found on the node")]
    MissingBlock(u64),
    #[error("the runtime that serves node requests has shut down")]
    RuntimeGone,
}

/// What `eth_getProof` says of an account and the slots asked for (in the order asked).
#[derive(Debug, Clone)]
pub struct AccountProof {
    pub balance: U256,
    pub nonce: u64,
    pub code_hash: B256,
    pub slots: Vec<U256>,
}

/// A node's JSON-RPC, shared by every stage that reads from it. The connection behind it is
/// replaced by `reconnect` (a dropped WebSocket does not come back by itself).
#[derive(Debug, Clone)]
pub struct NodeClient {
    pub name: String,
    pub url: String,
    provider: Arc<RwLock<DynProvider>>,
    runtime: Handle,
}

async fn open(url: &str) -> Result<DynProvider, NodeError> {
    // alloy's default reconnect policy for a WebSocket; `keep_alive` covers the rest.
    tokio::time::timeout(CONNECT_TIMEOUT, super::ws::connect_provider(url, 10))
        .await
        .map_err(|_| NodeError::Connect { url: url.to_string(), reason: "timed out".into() })?
        .map_err(|e| NodeError::Connect { url: url.to_string(), reason: e.to_string() })
}

impl NodeClient {
    /// Connects over ws://, http:// or IPC, as the URL says. Must run inside the tokio runtime
    /// that will serve the requests.
    pub async fn connect(name: &str, url: &str) -> Result<Self, NodeError> {
        let client = Self {
            name: name.to_string(),
            url: url.to_string(),
            provider: Arc::new(RwLock::new(open(url).await?)),
            runtime: Handle::current(),
        };
        // A connection that accepts but does not speak JSON-RPC is caught here, not mid-simulation.
        client
            .latest_block_number()
            .await
            .map_err(|e| NodeError::Connect { url: url.to_string(), reason: e.to_string() })?;
        Ok(client)
    }

    /// The current connection (cheap to clone; do not keep it across a reconnect).
    pub fn provider(&self) -> DynProvider {
        match self.provider.read() {
            Ok(p) => p.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Opens a fresh connection and makes it the current one for every clone of this client.
    pub async fn reconnect(&self) -> Result<(), NodeError> {
        let fresh = open(&self.url).await?;
        match self.provider.write() {
            Ok(mut p) => *p = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }

    /// Checks the connection every `every`; a check that fails reconnects. Ends with the runtime.
    pub fn keep_alive(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let client = self.clone();
        self.runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let check = tokio::time::timeout(every, client.provider().get_block_number()).await;
                if !matches!(check, Ok(Ok(_))) {
                    match client.reconnect().await {
                        Ok(()) => tracing::info!(node = %client.name, "node connection re-opened"),
                        Err(e) => tracing::debug!(node = %client.name, error = %e, "node still unreachable"),
                    }
                }
            }
        })
    }

    pub async fn latest_block_number(&self) -> Result<u64, NodeError> {
        timed(self.provider().get_block_number()).await
    }

    /// Balance, nonce and code of `address` at `block`, three requests in flight at once.
    pub fn account(
        &self,
        address: Address,
        block: u64,
    ) -> impl Future<Output = Result<Option<AccountInfo>, NodeError>> + Send + 'static {
        let provider = self.provider();
        async move {
            let at = BlockId::number(block);
            let (balance, nonce, code) = tokio::join!(
                timed(provider.get_balance(address).block_id(at).into_future()),
                timed(provider.get_transaction_count(address).block_id(at).into_future()),
                timed(provider.get_code_at(address).block_id(at).into_future()),
            );
            let (balance, nonce, code) = (balance?, nonce?, code?);
            if balance.is_zero() && nonce == 0 && code.is_empty() {
                return Ok(None);
            }
            let bytecode = Bytecode::new_raw(code);
            let hash = bytecode.hash_slow();
            Ok(Some(
                AccountInfo::default()
                    .with_code_and_hash(bytecode, hash)
                    .with_balance(balance)
                    .with_nonce(nonce),
            ))
        }
    }

    /// An account (balance, nonce, code hash) and any of its slots in one `eth_getProof`.
    pub fn proof(
        &self,
        address: Address,
        slots: Vec<U256>,
        block: u64,
    ) -> impl Future<Output = Result<AccountProof, NodeError>> + Send + 'static {
        let provider = self.provider();
        async move {
            let keys = slots.iter().map(|s| B256::from(*s)).collect();
            let proof = timed(
                provider.get_proof(address, keys).block_id(BlockId::number(block)).into_future(),
            )
            .await?;
            let values = slots
                .iter()
                .map(|s| {
                    proof
                        .storage_proof
                        .iter()
                        .find(|p| p.key.as_b256() == B256::from(*s))
                        .map(|p| p.value)
                        .unwrap_or_default()
                })
                .collect();
            Ok(AccountProof {
                balance: proof.balance,
                nonce: proof.nonce,
                code_hash: proof.code_hash,
                slots: values,
            })
        }
    }

    pub fn code(
        &self,
        address: Address,
        block: u64,
    ) -> impl Future<Output = Result<Bytes, NodeError>> + Send + 'static {
        let provider = self.provider();
        async move {
            timed(provider.get_code_at(address).block_id(BlockId::number(block)).into_future())
                .await
        }
    }

    pub fn storage(
        &self,
        address: Address,
        slot: U256,
        block: u64,
    ) -> impl Future<Output = Result<U256, NodeError>> + Send + 'static {
        let provider = self.provider();
        async move {
            timed(
                provider
                    .get_storage_at(address, slot)
                    .block_id(BlockId::number(block))
                    .into_future(),
            )
            .await
        }
    }

    pub fn block_hash(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<B256, NodeError>> + Send + 'static {
        let provider = self.provider();
        async move {
            let block = timed(provider.get_block_by_number(number.into()).into_future()).await?;
            block.map(|b| b.header.hash).ok_or(NodeError::MissingBlock(number))
        }
    }

    /// Runs `fut` on the node's runtime and waits for it on this (non-runtime) thread.
    pub fn blocking<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, NodeError>> + Send + 'static,
    ) -> Result<T, NodeError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| NodeError::RuntimeGone)?
    }
}

async fn timed<T, E: std::fmt::Display>(
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, NodeError> {
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| NodeError::Timeout(REQUEST_TIMEOUT))?
        .map_err(|e| NodeError::Rpc(e.to_string()))
}
