//! The benchmark's tx set: every fixture scenario's signed tx plus a plain ETH and an ERC-20
//! transfer, each with its JSON frame, and the receipt of each mined alone on the deployed state.

use std::sync::Arc;

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope, transaction::Recovered},
    eips::Encodable2718,
    network::TxSignerSync,
    primitives::{Address, B256, Bytes, TxKind, U256},
    providers::{DynProvider, Provider},
    sol,
    sol_types::SolCall,
};
use serde_json::json;

use super::{BenchError, rpc};
use crate::{
    devnet::{Deployment, Scenario, dev_accounts, send_scenario},
    simulate::SimBlock,
};

sol! {
    function transfer(address to, uint256 amount) returns (bool);
}

/// One tx of the mix.
#[derive(Debug, Clone)]
pub(super) struct FixtureTx {
    pub(super) name: String,
    pub(super) class: &'static str,
    pub(super) attack: bool,
    pub(super) hash: B256,
    pub(super) raw: Bytes,
    pub(super) tx: Recovered<TxEnvelope>,
    /// The pending-tx JSON object a node pushes for it.
    pub(super) frame: Arc<str>,
    /// Status and gas of its receipt when mined alone on the deployed state.
    pub(super) receipt: Option<(bool, u64)>,
    /// The environment of that block.
    pub(super) mined_env: Option<SimBlock>,
}

pub(super) fn class_of(name: &str, attack: bool) -> &'static str {
    if attack {
        "attack"
    } else if name.contains("on-fixed") {
        "attack on fixed"
    } else if name.contains("swap") || name.contains("liquidity") {
        "uniswap v2 router"
    } else if name.starts_with("eth-transfer") {
        "eth transfer"
    } else if name.starts_with("erc20-transfer") {
        "erc-20 transfer"
    } else {
        "protocol call"
    }
}

/// Signs a plain EIP-1559 call from dev account `from`.
async fn sign_call(
    provider: &DynProvider,
    from: usize,
    to: Address,
    value: U256,
    input: Bytes,
) -> Result<(B256, Bytes), BenchError> {
    let account = &dev_accounts()[from];
    let chain_id = provider.get_chain_id().await.map_err(|e| BenchError::Node(e.to_string()))?;
    let nonce = provider
        .get_transaction_count(account.address)
        .pending()
        .await
        .map_err(|e| BenchError::Node(e.to_string()))?;
    let base = provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .map_err(|e| BenchError::Node(e.to_string()))?
        .and_then(|b| b.header.base_fee_per_gas)
        .unwrap_or(1_000_000_000);
    let mut tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 100_000,
        max_fee_per_gas: u128::from(base) * 2 + 1_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input,
    };
    let sig = account
        .signer
        .sign_transaction_sync(&mut tx)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let envelope: TxEnvelope = tx.into_signed(sig).into();
    let raw = Bytes::from(envelope.encoded_2718());
    let hash: B256 =
        serde_json::from_value(rpc(provider, "eth_sendRawTransaction", json!([raw])).await?)
            .map_err(|e| BenchError::Node(e.to_string()))?;
    Ok((hash, raw))
}

/// Sends each tx alone on the deployed state, takes its frame, mines it at `timestamp`, keeps
/// its receipt, and reverts; the node ends where it began.
pub(super) async fn collect(
    provider: &DynProvider,
    rpc_url: &str,
    d: &Deployment,
    timestamp: u64,
) -> Result<Vec<FixtureTx>, BenchError> {
    let mut out = Vec::new();
    let extra: Vec<(&str, Address, U256, Bytes)> = vec![
        (
            "eth-transfer",
            dev_accounts()[9].address,
            U256::from(10u64).pow(U256::from(17u64)),
            Bytes::new(),
        ),
        (
            "erc20-transfer",
            d.address("DUSD").map_err(|e| BenchError::Setup(e.to_string()))?,
            U256::ZERO,
            transferCall {
                to: dev_accounts()[9].address,
                amount: U256::from(10u64).pow(U256::from(18u64)),
            }
            .abi_encode()
            .into(),
        ),
    ];
    let total = Scenario::all().len() + extra.len();
    for i in 0..total {
        let snapshot = rpc(provider, "evm_snapshot", json!([])).await?;
        let (name, attack, hash) = if i < Scenario::all().len() {
            let s = Scenario::all()[i];
            let hash =
                send_scenario(rpc_url, d, s).await.map_err(|e| BenchError::Setup(e.to_string()))?;
            (s.name().to_string(), s.is_attack(), hash)
        } else {
            let (name, to, value, input) = extra[i - Scenario::all().len()].clone();
            // The user (dev account 2) holds both ETH and DUSD.
            let (hash, _) = sign_call(provider, 2, to, value, input).await?;
            (name.to_string(), false, hash)
        };
        let frame = rpc(provider, "eth_getTransactionByHash", json!([hash])).await?;
        let raw: Bytes = serde_json::from_value(
            rpc(provider, "eth_getRawTransactionByHash", json!([hash])).await?,
        )
        .map_err(|e| BenchError::Node(e.to_string()))?;
        let tx: alloy::rpc::types::Transaction = serde_json::from_value(frame.clone())
            .map_err(|e| BenchError::Node(format!("frame of {name}: {e}")))?;
        rpc(provider, "evm_mine", json!([timestamp])).await?;
        let receipt = rpc(provider, "eth_getTransactionReceipt", json!([hash])).await?;
        let status = receipt["status"] == "0x1";
        let gas = receipt["gasUsed"]
            .as_str()
            .and_then(|g| u64::from_str_radix(g.trim_start_matches("0x"), 16).ok());
        let block = provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| BenchError::Node(e.to_string()))?;
        rpc(provider, "evm_revert", json!([snapshot])).await?;
        out.push(FixtureTx {
            class: class_of(&name, attack),
            name,
            attack,
            hash,
            raw,
            tx: tx.inner,
            frame: frame.to_string().into(),
            receipt: gas.map(|g| (status, g)),
            mined_env: block.map(|b| SimBlock::of_block(&b.header)),
        });
    }
    Ok(out)
}
