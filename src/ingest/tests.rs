//! The router: dedupe by computed hash, lanes, deferral under overload, shutdown.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    network::TxSignerSync,
    primitives::{Address, Bytes, TxKind, U256},
    signers::local::PrivateKeySigner,
};
use crossbeam_channel::Receiver;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::{
    fork::{ForkCache, LiveFork},
    types::PendingTx,
};

const PROTECTED: Address = Address::repeat_byte(0xaa);
const KNOWN_EOA: Address = Address::repeat_byte(0x01);
const UNKNOWN: Address = Address::repeat_byte(0x02);

/// A node's pending-tx frame for a signed 1559 tx.
fn frame(signer: &PrivateKeySigner, to: TxKind, nonce: u64, input: Bytes) -> String {
    let mut tx = TxEip1559 {
        chain_id: 1,
        nonce,
        gas_limit: 50_000,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to,
        value: U256::ZERO,
        access_list: Default::default(),
        input,
    };
    let sig = signer.sign_transaction_sync(&mut tx).expect("sign");
    let envelope: TxEnvelope = tx.into_signed(sig).into();
    let rpc = alloy::rpc::types::Transaction {
        inner: alloy::consensus::transaction::Recovered::new_unchecked(envelope, signer.address()),
        block_hash: None,
        block_number: None,
        transaction_index: None,
        effective_gas_price: None,
        block_timestamp: None,
    };
    serde_json::to_string(&rpc).expect("json")
}

fn tx(to: TxKind, nonce: u64, input: Bytes) -> PendingTx {
    let signer = PrivateKeySigner::random();
    let source: Arc<str> = "n".into();
    decode_pending(&frame(&signer, to, nonce, input), &source, Instant::now()).expect("verifies")
}

struct Wired {
    router: TxRouter<()>,
    protected: Receiver<PendingTx>,
    suspicious: Receiver<PendingTx>,
    other: Receiver<PendingTx>,
}

fn wired(capacity: usize) -> Wired {
    let fork = Arc::new(ForkCache::new(1, None));
    // An EOA the fork's cache knows has no code.
    fork.insert_account(KNOWN_EOA, revm::state::AccountInfo::from_balance(U256::from(1)));
    let (p_tx, protected) = crossbeam_channel::bounded(capacity);
    let (s_tx, suspicious) = crossbeam_channel::bounded(capacity);
    let (o_tx, other) = crossbeam_channel::bounded(capacity);
    let router = TxRouter::new(
        1,
        [PROTECTED],
        Arc::new(LiveFork::new(fork, ())),
        Arc::default(),
        Arc::default(),
        Lanes { protected: p_tx, suspicious: s_tx, other: o_tx, skipped: None },
    );
    Wired { router, protected, suspicious, other }
}

#[test]
fn duplicates_across_nodes_are_dropped_and_counted() {
    let w = wired(16);
    let signer = PrivateKeySigner::random();
    let text = frame(&signer, TxKind::Call(PROTECTED), 9, Bytes::new());
    for node in ["a", "b", "c"] {
        let source: Arc<str> = node.into();
        w.router.route(decode_pending(&text, &source, Instant::now()).expect("verifies"));
    }
    assert_eq!(w.protected.len(), 1);
    assert_eq!(w.protected.recv().expect("queued").source.as_ref(), "a", "the first copy wins");
    let s = w.router.stats().snapshot();
    assert_eq!((s.received, s.duplicates, s.queued_protected), (3, 2, 1));
}

#[test]
fn lanes_by_reach_and_plain_transfers_to_known_eoas_are_skipped() {
    let w = wired(16);
    assert!(matches!(
        w.router.route(tx(TxKind::Call(KNOWN_EOA), 9, Bytes::new())),
        Admission::Skipped
    ));
    // Unknown account with no node to ask: might be a contract, so it is simulated; few txs
    // call it, so ahead of the crowd.
    assert!(matches!(
        w.router.route(tx(TxKind::Call(UNKNOWN), 9, Bytes::new())),
        Admission::Queued(Lane::Suspicious)
    ));
    assert!(matches!(
        w.router.route(tx(TxKind::Call(PROTECTED), 9, Bytes::from_static(&[1]))),
        Admission::Queued(Lane::Protected)
    ));
    assert!(matches!(
        w.router.route(tx(TxKind::Create, 0, Bytes::from_static(&[0x60, 0]))),
        Admission::Queued(Lane::Suspicious)
    ));
    let s = w.router.stats().snapshot();
    assert_eq!((s.filtered, s.queued_other, s.queued_protected, s.queued_suspicious), (1, 0, 1, 2));
    assert_eq!((w.other.len(), w.protected.len(), w.suspicious.len()), (0, 1, 2));
}

#[test]
fn plain_calls_to_a_crowded_target_wait_behind_a_call_to_an_uncommon_one() {
    let w = wired(64);
    let crowd: Vec<PendingTx> =
        (0..20).map(|n| tx(TxKind::Call(UNKNOWN), n, Bytes::new())).collect();
    let lanes: Vec<Lane> = crowd
        .into_iter()
        .map(|t| match w.router.route(t) {
            Admission::Queued(lane) => lane,
            other => panic!("{other:?}"),
        })
        .collect();
    // The first few calls to a target are uncommon; from the eighth on it is crowded.
    let first_crowded = (CROWDED_AT - 1) as usize;
    assert!(lanes[..first_crowded].iter().all(|l| *l == Lane::Suspicious), "{lanes:?}");
    assert!(lanes[first_crowded..].iter().all(|l| *l == Lane::Other), "{lanes:?}");
    // A fresh sender (nonce 0) calling the crowded target waits with the crowd...
    assert!(matches!(
        w.router.route(tx(TxKind::Call(UNKNOWN), 0, Bytes::from_static(&[1]))),
        Admission::Queued(Lane::Other)
    ));
    // ...while a call to a contract nobody else calls goes ahead of it.
    let rare = Address::repeat_byte(0x99);
    assert!(matches!(
        w.router.route(tx(TxKind::Call(rare), 9, Bytes::from_static(&[1]))),
        Admission::Queued(Lane::Suspicious)
    ));
}

#[test]
fn an_unknown_to_comes_back_to_the_caller_for_its_code() {
    let w = wired(16);
    match w.router.admit(tx(TxKind::Call(UNKNOWN), 9, Bytes::from_static(&[1]))) {
        Admission::NeedsCode(_, need) => assert_eq!(need, vec![UNKNOWN]),
        other => panic!("{other:?}"),
    }
    assert!(w.other.is_empty(), "nothing queued before the code is known");
}

#[test]
fn a_full_lower_lane_defers_the_tx_and_forgets_it_so_it_can_come_back() {
    let w = wired(2);
    // A crowded target, so its calls go to the lowest lane.
    for n in 0..CROWDED_AT {
        w.router.route(tx(TxKind::Call(UNKNOWN), 100 + u64::from(n), Bytes::new()));
    }
    while w.suspicious.try_recv().is_ok() || w.other.try_recv().is_ok() {}
    let queued_before = w.router.stats().snapshot().queued_other;
    let deferred_before = w.router.stats().snapshot().deferred;
    let txs: Vec<PendingTx> =
        (0..3).map(|n| tx(TxKind::Call(UNKNOWN), 10 + n, Bytes::from_static(&[1]))).collect();
    for t in txs.iter().cloned() {
        w.router.route(t);
    }
    assert_eq!(w.other.len(), 2);
    let s = w.router.stats().snapshot();
    assert_eq!((s.queued_other - queued_before, s.deferred - deferred_before), (2, 1));
    let deferred = &txs[2];
    assert!(!w.router.seen().contains(&deferred.hash), "a deferred tx is forgotten");
    // Room again: the next offer of the same tx (a reconciliation) is queued, not a duplicate.
    w.other.recv().expect("a worker takes one");
    assert!(matches!(w.router.route(deferred.clone()), Admission::Queued(Lane::Other)));
    assert_eq!(w.router.stats().snapshot().duplicates, 0);
}

#[test]
fn the_protected_lane_never_drops_it_waits_for_room() {
    let w = wired(2);
    let protected = w.protected.clone();
    let drain = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        protected.recv().map(|_| ())
    });
    for n in 0..3 {
        w.router.route(tx(TxKind::Call(PROTECTED), n, Bytes::new()));
    }
    drain.join().expect("join").expect("recv");
    assert_eq!(w.protected.len(), 2);
    let s = w.router.stats().snapshot();
    assert_eq!((s.queued_protected, s.deferred), (3, 0));
}

#[test]
fn a_wait_for_the_protected_lane_ends_at_shutdown() {
    let mut w = wired(1);
    let cancel = CancellationToken::new();
    w.router = w.router.with_cancel(cancel.clone());
    w.router.route(tx(TxKind::Call(PROTECTED), 0, Bytes::new()));
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        cancel.cancel();
    });
    let started = Instant::now();
    assert!(matches!(
        w.router.route(tx(TxKind::Call(PROTECTED), 1, Bytes::new())),
        Admission::Closed
    ));
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    canceller.join().expect("join");
}

#[test]
fn a_pending_creation_makes_calls_to_its_address_suspicious_or_protected() {
    let w = wired(16);
    let signer = PrivateKeySigner::random();
    // Init code carrying the protected address as a constructor argument.
    let mut init = vec![0x60, 0x00];
    init.extend_from_slice(&[0u8; 12]);
    init.extend_from_slice(PROTECTED.as_slice());
    let source: Arc<str> = "n".into();
    let create =
        decode_pending(&frame(&signer, TxKind::Create, 0, init.into()), &source, Instant::now())
            .expect("verifies");
    let created = created_address(&create).expect("a creation");
    assert!(matches!(w.router.route(create), Admission::Queued(Lane::Protected)));
    // A call to the contract before it is mined ranks by what its creation named.
    let call = decode_pending(
        &frame(&signer, TxKind::Call(created), 1, Bytes::from_static(&[1, 2, 3, 4])),
        &source,
        Instant::now(),
    )
    .expect("verifies");
    assert_eq!(w.router.rank(&call), Rank::Lane(Lane::Protected, Reason::CodeReferences));
}

#[test]
fn the_seen_set_is_keyed_by_computed_hash_and_remembers_the_signer() {
    let set = SeenSet::default();
    let hash = alloy::primitives::B256::repeat_byte(7);
    assert!(set.first_sight(hash, KNOWN_EOA));
    assert!(!set.first_sight(hash, UNKNOWN));
    assert_eq!(set.signer_of(&hash), Some(KNOWN_EOA));
    set.forget(&hash);
    assert!(set.first_sight(hash, UNKNOWN));
}

#[test]
fn the_seen_set_is_bounded_by_count_too_and_keeps_the_newest_under_a_flood() {
    let set = SeenSet::default();
    let hash = |i: u64| alloy::primitives::B256::from(U256::from(i));
    for i in 0..1_000u64 {
        assert!(set.first_sight(hash(i), KNOWN_EOA));
    }
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    for i in 1_000..1_100u64 {
        assert!(set.first_sight(hash(i), KNOWN_EOA));
    }
    // Within the age, so only the count decides: the older burst goes, the newest stays.
    set.prune(std::time::Duration::from_secs(600), 500);
    assert!(set.len() <= 500, "{}", set.len());
    assert!((1_000..1_100u64).all(|i| set.contains(&hash(i))), "the newest are kept");
    assert!(!set.contains(&hash(0)), "the oldest go first");
    // Under the cap, only the age decides.
    set.prune(std::time::Duration::from_secs(600), 500);
    assert_eq!(set.len(), 100);
}

#[test]
fn a_set_code_tx_makes_its_authorities_fresh_code() {
    use alloy::{consensus::TxEip7702, eips::eip7702::Authorization, signers::SignerSync};
    let w = wired(16);
    let authority = PrivateKeySigner::random();
    // Known as an EOA until the set-code tx is seen.
    w.router.code_index().insert_code(w.router.protected(), authority.address(), &[]);
    let plain = tx(TxKind::Call(authority.address()), 9, Bytes::new());
    assert_eq!(w.router.rank(&plain), Rank::Skip);

    let auth = Authorization { chain_id: U256::from(1), address: UNKNOWN, nonce: 0 };
    let auth_sig = authority.sign_hash_sync(&auth.signature_hash()).expect("sign auth");
    let sender = PrivateKeySigner::random();
    let mut set_code = TxEip7702 {
        chain_id: 1,
        nonce: 0,
        gas_limit: 100_000,
        max_fee_per_gas: 2,
        max_priority_fee_per_gas: 1,
        to: KNOWN_EOA,
        value: U256::ZERO,
        access_list: Default::default(),
        authorization_list: vec![auth.into_signed(auth_sig)],
        input: Bytes::new(),
    };
    let sig = sender.sign_transaction_sync(&mut set_code).expect("sign");
    let envelope: TxEnvelope = set_code.into_signed(sig).into();
    let set_code = PendingTx {
        hash: *envelope.tx_hash(),
        tx: alloy::consensus::transaction::Recovered::new_unchecked(envelope, sender.address()),
        seen_at: Instant::now(),
        decoded_at: Instant::now(),
        queued_at: Instant::now(),
        source: "n".into(),
        sender_check: None,
    };
    assert!(
        matches!(w.router.admit(set_code), Admission::NeedsCode(..)),
        "its delegate is unknown"
    );
    // A plain transfer to the authority now runs the delegate's code: its code is asked again.
    assert_eq!(w.router.rank(&plain), Rank::NeedsCode(vec![authority.address()]));
}
