//! The pauser: holds the guardian key and its nonce, and signs pause txs. The nonce is kept
//! here, so signing never waits on the network; `resync` corrects it from each new head.

use std::sync::Arc;

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    primitives::{Address, B256, Bytes, Signature, TxKind, U256},
    signers::local::PrivateKeySigner,
};

use super::fees::PauseFees;

/// The guardian's secret key for libsecp256k1 (several times faster than the pure-Rust path).
/// Shared by `Arc` with ladder jobs that sign off the responder's lock; wiped on drop.
pub(super) struct SigningKey {
    secret: secp256k1::SecretKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.secret.non_secure_erase();
    }
}

impl SigningKey {
    /// A recoverable ECDSA signature of `hash`: (r, s, y parity).
    pub(super) fn sign_hash(&self, hash: B256) -> ([u8; 64], bool) {
        let digest = secp256k1::Message::from_digest(hash.0);
        let (recovery, compact) =
            secp256k1::SECP256K1.sign_ecdsa_recoverable(digest, &self.secret).serialize_compact();
        (compact, i32::from(recovery) != 0)
    }

    /// An EIP-1559 tx from the guardian, signed and encoded: its hash and raw bytes.
    pub(super) fn sign_tx(&self, tx: &PauseTx, nonce: u64, fees: PauseFees) -> (B256, Bytes) {
        let tx = TxEip1559 {
            chain_id: tx.chain_id,
            nonce,
            gas_limit: tx.gas_limit,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            to: TxKind::Call(tx.to),
            value: U256::ZERO,
            access_list: Default::default(),
            input: tx.input.clone(),
        };
        let (compact, parity) = self.sign_hash(tx.signature_hash());
        let signature = Signature::new(
            U256::from_be_slice(&compact[..32]),
            U256::from_be_slice(&compact[32..]),
            parity,
        );
        let envelope: TxEnvelope = tx.into_signed(signature).into();
        (*envelope.tx_hash(), Bytes::from(envelope.encoded_2718()))
    }
}

/// Everything of a pause tx but its nonce and fees: where it goes and what it says.
#[derive(Debug, Clone)]
pub(super) struct PauseTx {
    pub(super) chain_id: u64,
    /// The containment call's target, or the Safe that makes the call.
    pub(super) to: Address,
    pub(super) input: Bytes,
    pub(super) gas_limit: u64,
    /// The Safe making the containment call, if the pause role is a Safe's.
    pub(super) safe: Option<Address>,
    /// The Safe nonce the owner's EIP-712 signature in `input` is for.
    pub(super) safe_nonce: Option<u64>,
}

/// Holds the guardian key; `Debug` shows only its address.
pub struct Pauser {
    key: Arc<SigningKey>,
    address: Address,
    chain_id: u64,
    next_nonce: u64,
    /// The guardian's and the Safe's nonces read at one head: every pause the guardian sends
    /// goes through the Safe, so guardian nonce `g + k` executes as Safe nonce `s + k`.
    safe_anchor: Option<(u64, u64)>,
}

impl std::fmt::Debug for Pauser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pauser")
            .field("guardian", &self.address)
            .field("chain_id", &self.chain_id)
            .field("next_nonce", &self.next_nonce)
            .field("safe_anchor", &self.safe_anchor)
            .finish()
    }
}

impl Pauser {
    pub fn new(signer: PrivateKeySigner, chain_id: u64, nonce: u64) -> Self {
        let secret = secp256k1::SecretKey::from_byte_array(signer.to_bytes().0)
            // A PrivateKeySigner only ever holds a valid scalar.
            .unwrap_or_else(|_| unreachable!("a signer's key is a valid secp256k1 scalar"));
        Self {
            key: Arc::new(SigningKey { secret }),
            address: signer.address(),
            chain_id,
            next_nonce: nonce,
            safe_anchor: None,
        }
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    pub(super) fn key(&self) -> &Arc<SigningKey> {
        &self.key
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

    /// The guardian's and the Safe's nonces as read at one head (`None`: the Safe's nonce is
    /// not known, and pauses through it carry the owner's approval as the tx's sender instead).
    pub(super) fn anchor_safe_nonce(&mut self, guardian_nonce: u64, safe_nonce: Option<u64>) {
        self.safe_anchor = safe_nonce.map(|s| (guardian_nonce, s));
    }

    /// The Safe nonce a pause sent with guardian nonce `nonce` executes at, if known.
    pub(super) fn safe_nonce_for(&self, nonce: u64) -> Option<u64> {
        let (guardian, safe) = self.safe_anchor?;
        nonce.checked_sub(guardian).and_then(|k| safe.checked_add(k))
    }

    pub fn nonce(&self) -> u64 {
        self.next_nonce
    }
}
