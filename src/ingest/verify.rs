//! Trust no frame: a pending tx body is rebuilt from its signed fields, its hash recomputed from
//! the encoding and its signer recovered from the signature; a node's claimed `hash` and `from`
//! are only compared against those, never used.
//!
//! alloy's serde keeps the JSON `hash` as the cached hash of a `Signed` (`new_unchecked`) and
//! the JSON `from` as the signer of a `Recovered`, so neither may be read from a decoded body
//! before this check.

use std::{sync::Arc, time::Instant};

use alloy::{
    consensus::{Signed, Transaction as _, TxEnvelope, TypedTransaction, transaction::Recovered},
    primitives::{Address, B256, Signature, U256},
};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use thiserror::Error;

use crate::types::{PendingTx, SenderCheck};

/// Half the secp256k1 group order: a larger `s` is the malleable twin of a valid signature,
/// which no node accepts (EIP-2).
const SECP256K1N_HALF: U256 = U256::from_be_bytes([
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
]);

/// Why a body was not taken.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// Not a signed tx body at all (wrong shape, wrong types): a bad frame, not a forgery.
    #[error("not a pending tx body: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(transparent)]
    Forged(#[from] Forgery),
}

/// A well-formed body that lies about itself or cannot have come from the pool it claims.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Forgery {
    #[error("claimed hash {claimed}, but the signed bytes hash to {computed}")]
    Hash { claimed: B256, computed: B256 },
    #[error("tx {hash}: claimed sender {claimed}, but the signature recovers {recovered}")]
    Sender { hash: B256, claimed: Address, recovered: Address },
    #[error("tx {hash}: {reason}")]
    Signature { hash: B256, reason: BadSignature },
    #[error("tx {hash} is signed for chain {got}, not {expected}")]
    Chain { hash: B256, expected: u64, got: u64 },
    #[error("asked for tx {asked}, the node answered with tx {got}")]
    Substituted { asked: B256, got: B256 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BadSignature {
    #[error("signature s is in the upper half of the curve order (malleable, EIP-2)")]
    HighS,
    #[error("signature does not recover a key: {0}")]
    Secp(#[from] secp256k1::Error),
}

/// A body whose hash was recomputed and matches its claim; its signer is not yet checked.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The envelope, carrying the computed hash.
    pub envelope: TxEnvelope,
    /// The computed hash (the only one ingest keys anything by).
    pub hash: B256,
    /// The node's `from`, to compare with the recovered signer.
    pub claimed_from: Address,
}

/// Checks bodies against one chain id (or any, for tools that replay recorded frames).
#[derive(Debug, Clone, Copy)]
pub struct Verifier {
    chain_id: Option<u64>,
}

impl Verifier {
    pub fn new(chain_id: u64) -> Self {
        Self { chain_id: Some(chain_id) }
    }

    /// Checks hash and signer but accepts any chain id.
    pub fn any_chain() -> Self {
        Self { chain_id: None }
    }

    pub fn chain_id(&self) -> Option<u64> {
        self.chain_id
    }

    /// A body as JSON text → envelope with its computed hash; the claimed hash must match and
    /// the chain id must be ours (a pre-EIP-155 legacy tx carries none and is allowed).
    pub fn decode(&self, text: &str) -> Result<Decoded, VerifyError> {
        // The common shapes are read directly; anything else, or anything that does not check
        // out, is read again by alloy, whose verdict stands.
        if let Some((typed, signature, claimed, from)) = super::body::read(text)
            && let Ok(decoded) = self.checked(typed, signature, claimed, from)
        {
            return Ok(decoded);
        }
        let tx: alloy::rpc::types::Transaction = serde_json::from_str(text)?;
        Ok(self.decode_rpc(tx)?)
    }

    /// As `decode`, for a body alloy already parsed.
    pub fn decode_rpc(&self, tx: alloy::rpc::types::Transaction) -> Result<Decoded, Forgery> {
        let (envelope, claimed_from) = tx.inner.into_parts();
        let signed: Signed<TypedTransaction> = envelope.into();
        let (typed, signature, claimed) = signed.into_parts();
        self.checked(typed, signature, claimed, claimed_from)
    }

    /// The hash recomputed from the signed fields must be the claimed one, and the chain ours.
    fn checked(
        &self,
        typed: TypedTransaction,
        signature: Signature,
        claimed: B256,
        claimed_from: Address,
    ) -> Result<Decoded, Forgery> {
        let hash = typed.tx_hash(&signature);
        if hash != claimed {
            return Err(Forgery::Hash { claimed, computed: hash });
        }
        if let (Some(expected), Some(got)) = (self.chain_id, typed.chain_id())
            && expected != got
        {
            return Err(Forgery::Chain { hash, expected, got });
        }
        Ok(Decoded {
            envelope: TxEnvelope::new_unchecked(typed, signature, hash),
            hash,
            claimed_from,
        })
    }

    /// Recovers the signer and compares it with the claimed sender.
    pub fn recover(&self, decoded: Decoded) -> Result<Recovered<TxEnvelope>, Forgery> {
        let Decoded { envelope, hash, claimed_from } = decoded;
        let signer =
            check_claim(hash, envelope.signature(), envelope.signature_hash(), claimed_from)?;
        Ok(Recovered::new_unchecked(envelope, signer))
    }

    /// `decode` then `recover`.
    pub fn verify(&self, text: &str) -> Result<Recovered<TxEnvelope>, VerifyError> {
        let decoded = self.decode(text)?;
        Ok(self.recover(decoded)?)
    }
}

/// The signer of tx `hash` (`signature` over `sighash`), which must be the `claimed` sender.
pub fn check_claim(
    hash: B256,
    signature: &Signature,
    sighash: B256,
    claimed: Address,
) -> Result<Address, Forgery> {
    let recovered =
        recover_signer(signature, sighash).map_err(|reason| Forgery::Signature { hash, reason })?;
    if recovered != claimed {
        return Err(Forgery::Sender { hash, claimed, recovered });
    }
    Ok(recovered)
}

/// The signer of `sighash` under `signature`, by libsecp256k1 (several times faster than k256).
pub fn recover_signer(signature: &Signature, sighash: B256) -> Result<Address, BadSignature> {
    if signature.s() > SECP256K1N_HALF {
        return Err(BadSignature::HighS);
    }
    let mut compact = [0u8; 64];
    compact[..32].copy_from_slice(&signature.r().to_be_bytes::<32>());
    compact[32..].copy_from_slice(&signature.s().to_be_bytes::<32>());
    let id = RecoveryId::try_from(i32::from(signature.v()))?;
    let signature = RecoverableSignature::from_compact(&compact, id)?;
    let key = secp256k1::SECP256K1
        .recover_ecdsa(secp256k1::Message::from_digest(sighash.0), &signature)?;
    // Uncompressed: 0x04 || x || y; the address hashes x || y.
    Ok(Address::from_raw_public_key(&key.serialize_uncompressed()[1..]))
}

/// A verified tx, stamped, as it leaves ingest.
pub fn pending_tx(tx: Recovered<TxEnvelope>, source: &Arc<str>, seen_at: Instant) -> PendingTx {
    let now = Instant::now();
    PendingTx {
        hash: *tx.inner().tx_hash(),
        tx,
        seen_at,
        decoded_at: now,
        queued_at: now,
        source: Arc::clone(source),
        sender_check: None,
    }
}

/// Whether a tx may be queued before its signer is recovered: a plain call. A creation
/// (whose address derives from the sender) and a tx carrying authorizations leave marks at
/// admission that a forged sender would poison, so they are recovered first.
pub fn runs_on_claim(envelope: &TxEnvelope) -> bool {
    envelope.kind().is_call() && envelope.authorization_list().is_none()
}

/// The recovery still owed for a tx queued on its claimed sender (`on_claim`).
#[derive(Debug)]
pub struct ClaimCheck {
    check: Arc<SenderCheck>,
    hash: B256,
    signature: Signature,
    sighash: B256,
    claimed: Address,
}

impl ClaimCheck {
    /// The recovery owed for `tx`, queued on its claimed sender (`None`: it was recovered
    /// before it was queued).
    pub fn of(tx: &PendingTx) -> Option<Self> {
        tx.sender_check.as_ref().map(|check| Self::for_tx(Arc::clone(check), tx))
    }

    fn for_tx(check: Arc<SenderCheck>, tx: &PendingTx) -> Self {
        let envelope = tx.tx.inner();
        Self {
            check,
            hash: tx.hash,
            signature: *envelope.signature(),
            sighash: envelope.signature_hash(),
            claimed: tx.tx.signer(),
        }
    }

    /// Recovers the signer and settles the check the workers read: the claimed sender, or why
    /// the claim is false.
    pub fn settle(self) -> Result<Address, Forgery> {
        // Recovered already, by a worker that got to it first.
        if self.check.settled() == Some(true) {
            return Ok(self.claimed);
        }
        let checked = check_claim(self.hash, &self.signature, self.sighash, self.claimed);
        self.check.settle(checked.is_ok());
        checked
    }
}

/// A decoded body as a tx stamped on its claimed sender, and the recovery that settles the
/// claim; the tx may be queued first (`runs_on_claim`): a worker acts on its sender only once
/// the check is settled.
pub fn on_claim(decoded: Decoded, source: &Arc<str>, seen_at: Instant) -> (PendingTx, ClaimCheck) {
    let claimed = Recovered::new_unchecked(decoded.envelope, decoded.claimed_from);
    let mut tx = pending_tx(claimed, source, seen_at);
    let check = Arc::new(SenderCheck::default());
    tx.sender_check = Some(Arc::clone(&check));
    let claim = ClaimCheck::for_tx(check, &tx);
    (tx, claim)
}

/// A full pending-tx body (the JSON object a node sends, as text), verified against any chain
/// id, as a `PendingTx`. Live ingest checks the chain id too (`Verifier::new`).
pub fn decode_pending(
    frame: &str,
    source: &Arc<str>,
    seen_at: Instant,
) -> Result<PendingTx, VerifyError> {
    Verifier::any_chain().verify(frame).map(|tx| pending_tx(tx, source, seen_at))
}

#[cfg(test)]
mod tests {
    use alloy::{
        consensus::{
            SignableTransaction, TxEip1559, TxEip2930, TxEip7702, TxLegacy, transaction::Recovered,
        },
        eips::eip7702::Authorization,
        network::TxSignerSync,
        primitives::{Bytes, TxKind},
        signers::{SignerSync, local::PrivateKeySigner},
    };
    use serde_json::Value;

    use super::*;

    const CHAIN: u64 = 31337;

    fn signer() -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).expect("key")
    }

    /// The JSON a node sends for `envelope`, signed by `from`.
    fn body(envelope: TxEnvelope, from: Address) -> Value {
        let rpc = alloy::rpc::types::Transaction {
            inner: Recovered::new_unchecked(envelope, from),
            block_hash: None,
            block_number: None,
            transaction_index: None,
            effective_gas_price: None,
            block_timestamp: None,
        };
        serde_json::to_value(&rpc).expect("json")
    }

    fn eip1559(chain_id: u64) -> (TxEnvelope, Address) {
        let s = signer();
        let mut tx = TxEip1559 {
            chain_id,
            nonce: 7,
            gas_limit: 50_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(Address::repeat_byte(0x42)),
            value: U256::from(5),
            access_list: Default::default(),
            input: Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]),
        };
        let sig = s.sign_transaction_sync(&mut tx).expect("sign");
        (tx.into_signed(sig).into(), s.address())
    }

    fn all_types() -> Vec<(&'static str, TxEnvelope)> {
        let s = signer();
        let mut out = vec![("eip1559", eip1559(CHAIN).0)];
        let mut legacy = TxLegacy {
            chain_id: Some(CHAIN),
            nonce: 1,
            gas_price: 1_000_000_000,
            gas_limit: 21_000,
            to: TxKind::Call(Address::repeat_byte(1)),
            value: U256::from(1),
            input: Bytes::new(),
        };
        let sig = s.sign_transaction_sync(&mut legacy).expect("sign");
        out.push(("legacy-eip155", legacy.clone().into_signed(sig).into()));
        legacy.chain_id = None;
        let sig = s.sign_transaction_sync(&mut legacy).expect("sign");
        out.push(("legacy-pre-eip155", legacy.into_signed(sig).into()));
        let mut tx2930 = TxEip2930 {
            chain_id: CHAIN,
            nonce: 2,
            gas_price: 1_000_000_000,
            gas_limit: 60_000,
            to: TxKind::Create,
            value: U256::ZERO,
            access_list: Default::default(),
            input: Bytes::from_static(&[0x60, 0x00]),
        };
        let sig = s.sign_transaction_sync(&mut tx2930).expect("sign");
        out.push(("eip2930-create", tx2930.into_signed(sig).into()));
        let auth = Authorization {
            chain_id: U256::from(CHAIN),
            address: Address::repeat_byte(0x77),
            nonce: 4,
        };
        let auth_sig = s.sign_hash_sync(&auth.signature_hash()).expect("sign auth");
        let mut tx7702 = TxEip7702 {
            chain_id: CHAIN,
            nonce: 3,
            gas_limit: 100_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to: Address::repeat_byte(0x55),
            value: U256::ZERO,
            access_list: Default::default(),
            authorization_list: vec![auth.into_signed(auth_sig)],
            input: Bytes::new(),
        };
        let sig = s.sign_transaction_sync(&mut tx7702).expect("sign");
        out.push(("eip7702", tx7702.into_signed(sig).into()));
        out
    }

    #[test]
    fn honest_bodies_of_every_type_verify_with_their_own_hash_and_signer() {
        let v = Verifier::new(CHAIN);
        for (name, envelope) in all_types() {
            let hash = *envelope.tx_hash();
            let text = body(envelope, signer().address()).to_string();
            let tx = v.verify(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(*tx.inner().tx_hash(), hash, "{name}");
            assert_eq!(tx.signer(), signer().address(), "{name}");
        }
    }

    /// What alloy's own deserializer reads from `text`: the tx, signature, hash and sender.
    fn alloy_reads(text: &str) -> (TypedTransaction, Signature, B256, Address) {
        let tx: alloy::rpc::types::Transaction = serde_json::from_str(text).expect("alloy reads");
        let (envelope, from) = tx.inner.into_parts();
        let (typed, signature, hash) = Signed::<TypedTransaction>::from(envelope).into_parts();
        (typed, signature, hash, from)
    }

    #[test]
    fn the_common_bodies_are_read_directly_into_what_alloy_reads_and_the_others_are_left_to_it() {
        let s = signer();
        let mut with_list = TxEip1559 {
            access_list: alloy::eips::eip2930::AccessList(vec![
                alloy::eips::eip2930::AccessListItem {
                    address: Address::repeat_byte(0x42),
                    storage_keys: vec![B256::repeat_byte(1), B256::repeat_byte(2)],
                },
            ]),
            to: TxKind::Create,
            ..match eip1559(CHAIN).0 {
                TxEnvelope::Eip1559(signed) => signed.strip_signature(),
                _ => unreachable!(),
            }
        };
        let sig = s.sign_transaction_sync(&mut with_list).expect("sign");
        let mut bodies = all_types();
        bodies.push(("eip1559-create-access-list", with_list.into_signed(sig).into()));
        for (name, envelope) in bodies {
            let text = body(envelope, s.address()).to_string();
            match crate::ingest::body::read(&text) {
                Some(read) => assert_eq!(read, alloy_reads(&text), "{name}"),
                None => assert_eq!(name, "eip7702", "only 7702 is left to alloy"),
            }
            // Either way the verdict is the same.
            assert!(Verifier::new(CHAIN).verify(&text).is_ok(), "{name}");
        }
        // A node that sends `v` only for a typed tx, and no `type` for a legacy one.
        let (envelope, from) = eip1559(CHAIN);
        let mut json = body(envelope, from);
        json.as_object_mut().expect("object").remove("yParity");
        assert_eq!(
            crate::ingest::body::read(&json.to_string()),
            Some(alloy_reads(&json.to_string()))
        );
        let (_, legacy) =
            all_types().into_iter().find(|(n, _)| *n == "legacy-eip155").expect("fixture");
        let mut json = body(legacy, from);
        json.as_object_mut().expect("object").remove("type");
        let read = crate::ingest::body::read(&json.to_string()).expect("read");
        assert_eq!(
            Verifier::new(CHAIN).checked(read.0, read.1, read.2, read.3).map(|d| d.hash).ok(),
            Some(read.2)
        );
        // Shapes it does not know go to alloy: a quantity as a number, an escaped string.
        let mut json = body(eip1559(CHAIN).0, from);
        json["nonce"] = Value::from(7);
        assert_eq!(crate::ingest::body::read(&json.to_string()), None);
        let escaped = body(eip1559(CHAIN).0, from).to_string().replacen("0x", "\\u0030x", 1);
        assert_eq!(crate::ingest::body::read(&escaped), None);
        assert!(Verifier::new(CHAIN).verify(&escaped).is_ok(), "alloy reads the escape");
    }

    #[test]
    fn a_made_up_hash_is_a_forgery_and_the_computed_hash_is_reported() {
        let (envelope, from) = eip1559(CHAIN);
        let real = *envelope.tx_hash();
        let mut json = body(envelope, from);
        json["hash"] = Value::String(B256::repeat_byte(0xee).to_string());
        let err = Verifier::new(CHAIN).verify(&json.to_string()).expect_err("forged");
        assert!(
            matches!(err, VerifyError::Forged(Forgery::Hash { claimed, computed })
                if claimed == B256::repeat_byte(0xee) && computed == real),
            "{err}"
        );
    }

    #[test]
    fn a_changed_body_under_the_original_hash_is_a_forgery() {
        // Hash poisoning: a different body claims the hash of a real tx.
        let (envelope, from) = eip1559(CHAIN);
        let mut json = body(envelope, from);
        json["input"] = Value::String("0x00".into());
        let err = Verifier::new(CHAIN).verify(&json.to_string()).expect_err("forged");
        assert!(matches!(err, VerifyError::Forged(Forgery::Hash { .. })), "{err}");
    }

    #[test]
    fn a_wrong_sender_is_a_forgery() {
        let (envelope, from) = eip1559(CHAIN);
        let claimed = Address::repeat_byte(0x99);
        let err =
            Verifier::new(CHAIN).verify(&body(envelope, claimed).to_string()).expect_err("forged");
        assert_eq!(
            err.to_string(),
            Forgery::Sender { hash: *eip1559(CHAIN).0.tx_hash(), claimed, recovered: from }
                .to_string()
        );
    }

    #[test]
    fn a_call_queued_on_its_claim_is_settled_by_the_recovery_after_it() {
        let v = Verifier::new(CHAIN);
        let source: Arc<str> = "node".into();
        let (envelope, from) = eip1559(CHAIN);
        assert!(runs_on_claim(&envelope), "a plain call runs on its claim");
        let mut creation = match eip1559(CHAIN).0 {
            TxEnvelope::Eip1559(signed) => signed.strip_signature(),
            _ => unreachable!(),
        };
        creation.to = TxKind::Create;
        let sig = signer().sign_transaction_sync(&mut creation).expect("sign");
        assert!(!runs_on_claim(&creation.into_signed(sig).into()), "a creation is recovered first");

        let honest = v.decode(&body(envelope.clone(), from).to_string()).expect("decoded");
        let (tx, check) = on_claim(honest, &source, Instant::now());
        let state = tx.sender_check.clone().expect("queued with a check");
        assert_eq!((tx.tx.signer(), state.settled()), (from, None), "unsettled until recovered");
        assert_eq!(check.settle(), Ok(from));
        assert_eq!(state.settled(), Some(true));
        // A worker that got there first settled it: the answer stands, nothing is recovered twice.
        let honest = v.decode(&body(envelope.clone(), from).to_string()).expect("decoded");
        let (tx, check) = on_claim(honest, &source, Instant::now());
        tx.sender_check.as_deref().expect("queued with a check").settle(true);
        assert_eq!(check.settle(), Ok(from));

        let claimed = Address::repeat_byte(0x99);
        let forged = v.decode(&body(envelope, claimed).to_string()).expect("decoded");
        let (tx, check) = on_claim(forged, &source, Instant::now());
        let state = tx.sender_check.clone().expect("queued with a check");
        assert_eq!(
            check.settle(),
            Err(Forgery::Sender { hash: tx.hash, claimed, recovered: from }),
            "the claim is borne out or refused, never taken"
        );
        assert_eq!(state.settled(), Some(false));
    }

    #[test]
    fn a_broken_signature_is_a_forgery_even_with_a_consistent_hash() {
        // The forger recomputes the hash over its broken signature, so only recovery catches it.
        let (envelope, from) = eip1559(CHAIN);
        let TxEnvelope::Eip1559(signed) = envelope else { unreachable!() };
        let (tx, sig, _) = signed.into_parts();
        for bad in [
            Signature::new(sig.r(), sig.s() ^ U256::from(1), sig.v()),
            Signature::new(U256::ZERO, U256::ZERO, false),
            Signature::new(
                sig.r(),
                alloy::primitives::uint!(
                    0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140_U256
                ),
                sig.v(),
            ),
        ] {
            let envelope: TxEnvelope = tx.clone().into_signed(bad).into();
            let err =
                Verifier::new(CHAIN).verify(&body(envelope, from).to_string()).expect_err("forged");
            assert!(
                matches!(
                    err,
                    VerifyError::Forged(Forgery::Signature { .. } | Forgery::Sender { .. })
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn another_chain_is_refused_but_a_pre_eip155_legacy_tx_is_not() {
        let (envelope, from) = eip1559(1);
        let err =
            Verifier::new(CHAIN).verify(&body(envelope, from).to_string()).expect_err("chain");
        assert!(matches!(err, VerifyError::Forged(Forgery::Chain { expected: CHAIN, got: 1, .. })));
        let (_, pre155) =
            all_types().into_iter().find(|(n, _)| *n == "legacy-pre-eip155").expect("fixture");
        assert!(Verifier::new(CHAIN).verify(&body(pre155, signer().address()).to_string()).is_ok());
    }

    #[test]
    fn wrong_shapes_are_malformed_not_forged_and_never_panic() {
        for bad in [
            "{}",
            "{\"hash\":1}",
            "[",
            "null",
            "\"0x00\"",
            "{\"type\":\"0x2\",\"hash\":\"0x00\"}",
            "{\"type\":\"0x7f\",\"hash\":\"0x0000000000000000000000000000000000000000000000000000000000000000\"}",
        ] {
            let err = Verifier::new(CHAIN).verify(bad).expect_err(bad);
            assert!(matches!(err, VerifyError::Malformed(_)), "{bad}: {err}");
        }
    }

    /// Not a benchmark: prints decode + hash + recover per frame so a regression is visible.
    #[test]
    fn verification_cost_per_frame_is_printed() {
        let (envelope, from) = eip1559(CHAIN);
        let text = body(envelope, from).to_string();
        let v = Verifier::new(CHAIN);
        let n = 2_000;
        let (mut decode, mut recover, mut alloy_recover) = (0u128, 0u128, 0u128);
        for _ in 0..n {
            let t = Instant::now();
            let d = v.decode(&text).expect("decode");
            let t1 = Instant::now();
            let envelope = d.envelope.clone();
            let t2 = Instant::now();
            v.recover(d).expect("recover");
            let t3 = Instant::now();
            alloy::consensus::transaction::SignerRecoverable::recover_signer(&envelope)
                .expect("alloy recovers");
            decode += (t1 - t).as_nanos();
            recover += (t3 - t2).as_nanos();
            alloy_recover += t3.elapsed().as_nanos();
        }
        let us = |ns: u128| ns as f64 / n as f64 / 1e3;
        println!(
            "verify per frame: decode+hash {:.1} µs, recover {:.1} µs (alloy's own recovery {:.1} µs; \
             debug builds are far slower)",
            us(decode),
            us(recover),
            us(alloy_recover)
        );
    }
}
