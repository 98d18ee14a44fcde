//! The pauser: signs the configured containment call from the guardian key. The nonce is kept
//! here, so signing never waits on the network; `resync` corrects it from each new head.

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    network::TxSignerSync,
    primitives::{Address, Bytes, TxKind, U256},
    signers::local::PrivateKeySigner,
};
use thiserror::Error;

use super::{PausePlan, fees::PauseFees};
use crate::config::ProtectedContract;

#[derive(Debug, Error)]
pub enum PauserError {
    #[error("signing the pause for {contract} failed: {reason}")]
    Sign { contract: String, reason: String },
}

/// Holds the guardian signer; `Debug` shows only its address.
pub struct Pauser {
    signer: PrivateKeySigner,
    chain_id: u64,
    next_nonce: u64,
}

impl std::fmt::Debug for Pauser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pauser")
            .field("guardian", &self.signer.address())
            .field("chain_id", &self.chain_id)
            .field("next_nonce", &self.next_nonce)
            .finish()
    }
}

impl Pauser {
    pub fn new(signer: PrivateKeySigner, chain_id: u64, nonce: u64) -> Self {
        Self { signer, chain_id, next_nonce: nonce }
    }

    pub fn address(&self) -> Address {
        self.signer.address()
    }

    pub(super) fn next_nonce(&mut self) -> u64 {
        let n = self.next_nonce;
        self.next_nonce += 1;
        n
    }

    /// Gives back a nonce that was taken but not sent (only the latest one can come back).
    pub(super) fn release_nonce(&mut self, nonce: u64) {
        if nonce + 1 == self.next_nonce {
            self.next_nonce = nonce;
        }
    }

    /// The guardian's nonce on chain moved past ours (the key was used elsewhere): catch up.
    pub fn resync(&mut self, chain_nonce: u64) {
        self.next_nonce = self.next_nonce.max(chain_nonce);
    }

    pub fn nonce(&self) -> u64 {
        self.next_nonce
    }

    pub(super) fn sign(
        &self,
        contract: &ProtectedContract,
        nonce: u64,
        fees: PauseFees,
        gas_limit: u64,
        attack_tx: Option<alloy::primitives::B256>,
    ) -> Result<PausePlan, PauserError> {
        let mut tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            to: TxKind::Call(contract.pause.target),
            value: U256::ZERO,
            access_list: Default::default(),
            input: contract.pause.calldata.clone(),
        };
        let signature = self.signer.sign_transaction_sync(&mut tx).map_err(|e| {
            PauserError::Sign { contract: contract.name.clone(), reason: e.to_string() }
        })?;
        let envelope: TxEnvelope = tx.into_signed(signature).into();
        let raw = Bytes::from(envelope.encoded_2718());
        Ok(PausePlan {
            contract: contract.address,
            contract_name: contract.name.clone(),
            target: contract.pause.target,
            calldata: contract.pause.calldata.clone(),
            nonce,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            gas_limit,
            tx_hash: *envelope.tx_hash(),
            raw,
            outbids_attack: false,
            attack_tx,
        })
    }
}
