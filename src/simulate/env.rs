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
use serde::{Deserialize, Serialize};

/// The block environment a simulation runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use alloy::{
        consensus::{SignableTransaction, TxEip4844, TxEip7702, TxLegacy},
        eips::eip7702::Authorization,
        primitives::{Signature, U256, address},
    };

    use super::*;

    fn recovered(envelope: TxEnvelope) -> Recovered<TxEnvelope> {
        Recovered::new_unchecked(envelope, address!("0x00000000000000000000000000000000000000f0"))
    }

    #[test]
    fn legacy_tx_pays_its_gas_price_and_has_no_tip() {
        let tx = TxLegacy {
            gas_price: 7,
            gas_limit: 21_000,
            to: TxKind::Call(Address::ZERO),
            ..Default::default()
        };
        let env = tx_env(&recovered(tx.into_signed(Signature::test_signature()).into()), 1 << 24);
        assert_eq!((env.tx_type, env.gas_price, env.gas_priority_fee), (0, 7, None));
    }

    #[test]
    fn blob_tx_keeps_its_blob_hashes_and_blob_fee() {
        let tx = TxEip4844 {
            chain_id: 1,
            gas_limit: 100_000,
            max_fee_per_gas: 10,
            max_priority_fee_per_gas: 2,
            max_fee_per_blob_gas: 5,
            blob_versioned_hashes: vec![B256::repeat_byte(1)],
            to: Address::repeat_byte(2),
            ..Default::default()
        };
        let signed = tx.into_signed(Signature::test_signature());
        let env = tx_env(&recovered(TxEnvelope::from(signed)), 1 << 24);
        assert_eq!(env.tx_type, 3);
        assert_eq!(env.blob_hashes, vec![B256::repeat_byte(1)]);
        assert_eq!(
            (env.max_fee_per_blob_gas, env.gas_price, env.gas_priority_fee),
            (5, 10, Some(2))
        );
    }

    #[test]
    fn set_code_tx_keeps_its_authorizations_and_a_hostile_gas_limit_is_capped() {
        let auth =
            Authorization { chain_id: U256::from(1), address: Address::repeat_byte(3), nonce: 0 }
                .into_signed(Signature::test_signature());
        let tx = TxEip7702 {
            chain_id: 1,
            gas_limit: u64::MAX,
            max_fee_per_gas: 10,
            max_priority_fee_per_gas: 2,
            to: Address::repeat_byte(2),
            authorization_list: vec![auth],
            ..Default::default()
        };
        let env = tx_env(&recovered(tx.into_signed(Signature::test_signature()).into()), 1 << 24);
        assert_eq!(env.tx_type, 4);
        assert_eq!(env.authorization_list.len(), 1);
        assert_eq!(env.gas_limit, 1 << 24);
    }
}
