//! The pauser: signs the configured containment call from the guardian key. The nonce is kept
//! here, so signing never waits on the network; `resync` corrects it from each new head.

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    primitives::{Address, Bytes, Signature, TxKind, U256},
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

/// Holds the guardian key; `Debug` shows only its address.
pub struct Pauser {
    signer: PrivateKeySigner,
    /// The same key for libsecp256k1, which signs several times faster than the pure-Rust path.
    secret: secp256k1::SecretKey,
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
        let secret = secp256k1::SecretKey::from_byte_array(signer.to_bytes().0)
            // A PrivateKeySigner only ever holds a valid scalar.
            .unwrap_or_else(|_| unreachable!("a signer's key is a valid secp256k1 scalar"));
        Self { signer, secret, chain_id, next_nonce: nonce }
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
        let tx = TxEip1559 {
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
        let digest = secp256k1::Message::from_digest(tx.signature_hash().0);
        let (recovery, compact) =
            secp256k1::SECP256K1.sign_ecdsa_recoverable(digest, &self.secret).serialize_compact();
        let signature = Signature::new(
            U256::from_be_slice(&compact[..32]),
            U256::from_be_slice(&compact[32..]),
            i32::from(recovery) != 0,
        );
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
