//! The block a simulated tx runs in, and the conversion of a signed tx into revm's `TxEnv`.

use alloy::{
    consensus::{BlockHeader, Transaction, TxEnvelope, transaction::Recovered},
    eips::{eip1559::BaseFeeParams, eip7840::BlobParams},
    primitives::{Address, B256, TxKind, U256},
};
use either::Either;
use revm::{
    context::{BlockEnv, TxEnv},
    context_interface::block::BlobExcessGasAndPrice,
};
use serde::Serialize;

/// The block environment a simulation runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SimBlock {
    pub number: u64,
    pub timestamp: u64,
    pub base_fee: u64,
    pub gas_limit: u64,
    pub beneficiary: Address,
    pub prevrandao: B256,
    pub excess_blob_gas: u64,
}

impl SimBlock {
    /// The block a pending tx will land in: the next number, a later timestamp, the next base fee.
    pub fn pending_after(parent: &impl BlockHeader, now_unix: u64) -> Self {
        Self {
            number: parent.number() + 1,
            // Nodes stamp the next block with the wall clock, never earlier than parent + 1.
            timestamp: now_unix.max(parent.timestamp() + 1),
            base_fee: parent.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or_default(),
            gas_limit: parent.gas_limit(),
            beneficiary: parent.beneficiary(),
            prevrandao: parent.mix_hash().unwrap_or_default(),
            excess_blob_gas: parent
                .next_block_excess_blob_gas(BlobParams::osaka())
                .unwrap_or_default(),
        }
    }

    /// The environment of a mined block itself (to re-run one of its txs).
    pub fn of_block(header: &impl BlockHeader) -> Self {
        Self {
            number: header.number(),
            timestamp: header.timestamp(),
            base_fee: header.base_fee_per_gas().unwrap_or_default(),
            gas_limit: header.gas_limit(),
            beneficiary: header.beneficiary(),
            prevrandao: header.mix_hash().unwrap_or_default(),
            excess_blob_gas: header.excess_blob_gas().unwrap_or_default(),
        }
    }

    pub fn to_env(self) -> BlockEnv {
        let mut env = BlockEnv {
            number: U256::from(self.number),
            beneficiary: self.beneficiary,
            timestamp: U256::from(self.timestamp),
            gas_limit: self.gas_limit,
            basefee: self.base_fee,
            difficulty: U256::ZERO,
            prevrandao: Some(self.prevrandao),
            ..Default::default()
        };
        env.blob_excess_gas_and_price = Some(BlobExcessGasAndPrice::new(
            self.excess_blob_gas,
            BlobParams::osaka().update_fraction as u64,
        ));
        env
    }
}

/// A signed tx of any type as revm runs it. `gas_cap` bounds what a hostile tx may ask for.
pub fn tx_env(tx: &Recovered<TxEnvelope>, gas_cap: u64) -> TxEnv {
    let signer = tx.signer();
    let inner = tx.inner();
    let mut env = TxEnv {
        tx_type: inner.tx_type() as u8,
        caller: signer,
        gas_limit: inner.gas_limit().min(gas_cap),
        gas_price: inner.max_fee_per_gas(),
        kind: inner.kind(),
        value: inner.value(),
        data: inner.input().clone(),
        nonce: inner.nonce(),
        chain_id: inner.chain_id(),
        access_list: inner.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: inner.max_priority_fee_per_gas(),
        blob_hashes: inner.blob_versioned_hashes().map(<[B256]>::to_vec).unwrap_or_default(),
        max_fee_per_blob_gas: inner.max_fee_per_blob_gas().unwrap_or_default(),
        authorization_list: Vec::new(),
    };
    if let Some(auths) = inner.authorization_list() {
        env.authorization_list = auths.iter().cloned().map(Either::Left).collect();
    }
    // A legacy tx's `gas_price` is its only fee; revm reads it from the same field.
    if inner.is_legacy() || inner.tx_type() as u8 == 1 {
        env.gas_price = inner.gas_price().unwrap_or_default();
        env.gas_priority_fee = None;
    }
    env
}

/// A read-only call from the zero address, for invariant and claim views.
pub fn view_env(target: Address, data: alloy::primitives::Bytes, gas_limit: u64) -> TxEnv {
    TxEnv {
        tx_type: 0,
        caller: Address::ZERO,
        gas_limit,
        gas_price: 0,
        kind: TxKind::Call(target),
        value: U256::ZERO,
        data,
        nonce: 0,
        chain_id: None,
        ..Default::default()
    }
}
