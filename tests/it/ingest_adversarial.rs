//! Ingest against nodes that lie, babble, drop and die: `spawn_node` + `TxRouter` driven
//! directly on a real `anvil --no-mining`, through the scriptable fake node where the node
//! must misbehave; what reaches the lanes and the counters is asserted.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::{
    consensus::{SignableTransaction, Signed, Transaction, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    network::TxSignerSync,
    primitives::{Address, B256, Bytes, Signature, TxKind, U256},
    signers::local::PrivateKeySigner,
};
use crossbeam_channel::Receiver;
use preempt::{
    config::NodeConfig,
    fork::{ForkCache, LiveFork, NodeClient},
    ingest::{
        CROWDED_AT, IngestStats, Lane, Lanes, NodeCounts, NodeEvent, RECONCILE_EVERY, SeenSet,
        TxRouter, spawn_node,
    },
    types::PendingTx,
    worker::Nudge,
};
use serde_json::{Value, json};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::support::{Anvil, fake_node::FakeNode, tools_dir};

const CHAIN_ID: u64 = 31337;
const PROTECTED: Address = Address::repeat_byte(0xaa);
/// An account with no code on anvil, called with calldata (ranks `Other`).
const BYSTANDER: Address = Address::repeat_byte(0xbb);

/// `spawn_node` and a router with three lanes, as `preempt run` wires them.
struct Ingest {
    router: Arc<TxRouter<()>>,
    lanes: [(Lane, Receiver<PendingTx>); 3],
    queued: Vec<(Lane, PendingTx)>,
    events: mpsc::UnboundedReceiver<NodeEvent>,
    seen_events: Vec<NodeEvent>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    stats: Arc<IngestStats>,
    name: Arc<str>,
}

impl Ingest {
    fn start(url: &str) -> Self {
        Self::start_on(url, Arc::new(ForkCache::new(0, None)), None)
    }

    /// As `start`, on `fork` (one with a node behind it can trace cold txs ahead).
    /// On `fork`; `nudge`: the router wakes idle workers through it.
    fn start_on(url: &str, fork: Arc<ForkCache>, nudge: Option<Arc<Nudge>>) -> Self {
        let (p_tx, p) = crossbeam_channel::bounded(4096);
        let (s_tx, s) = crossbeam_channel::bounded(4096);
        let (o_tx, o) = crossbeam_channel::bounded(4096);
        let stats = Arc::new(IngestStats::default());
        let cancel = CancellationToken::new();
        let router = TxRouter::new(
            CHAIN_ID,
            [PROTECTED],
            Arc::new(LiveFork::new(fork, ())),
            Arc::new(SeenSet::default()),
            Arc::clone(&stats),
            Lanes { protected: p_tx, suspicious: s_tx, other: o_tx, skipped: None },
        )
        .with_cancel(cancel.clone());
        let router = Arc::new(match nudge {
            Some(nudge) => router.with_nudge(nudge),
            None => router,
        });
        let (events_tx, events) = mpsc::unbounded_channel();
        let node = NodeConfig { name: "node".into(), url: url.into(), pending: true };
        let task = spawn_node(node, Arc::clone(&router), events_tx, cancel.clone());
        Ingest {
            router,
            lanes: [(Lane::Protected, p), (Lane::Suspicious, s), (Lane::Other, o)],
            queued: Vec::new(),
            events,
            seen_events: Vec::new(),
            cancel,
            task: Some(task),
            stats,
            name: "node".into(),
        }
    }

    fn counts(&self) -> NodeCounts {
        self.stats.node_counts(&self.name)
    }

    fn drain(&mut self) {
        for (lane, rx) in &self.lanes {
            while let Ok(tx) = rx.try_recv() {
                self.queued.push((*lane, tx));
            }
        }
        while let Ok(e) = self.events.try_recv() {
            self.seen_events.push(e);
        }
    }

    fn queued_hashes(&mut self) -> Vec<B256> {
        self.drain();
        self.queued.iter().map(|(_, t)| t.hash).collect()
    }

    /// Waits until `done` holds (checked every 10 ms) or `within` passes; false on timeout.
    async fn wait_for(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> bool {
        let deadline = Instant::now() + within;
        loop {
            self.drain();
            if done(self) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_up(&mut self, count: usize) {
        let ok = self
            .wait_for(Duration::from_secs(10), |s| {
                s.seen_events.iter().filter(|e| matches!(e, NodeEvent::Up { .. })).count() >= count
            })
            .await;
        assert!(ok, "node not up ({count}): {:?} {:?}", self.seen_events, self.counts());
    }

    /// Waits until every hash in `want` is queued; panics with what is missing.
    async fn wait_queued(&mut self, want: &[B256], within: Duration) -> Duration {
        let started = Instant::now();
        let ok = self
            .wait_for(within, |s| {
                let have: HashSet<B256> = s.queued.iter().map(|(_, t)| t.hash).collect();
                want.iter().all(|h| have.contains(h))
            })
            .await;
        let have: HashSet<B256> = self.queued_hashes().into_iter().collect();
        let missing = want.iter().filter(|h| !have.contains(*h)).count();
        assert!(
            ok,
            "{missing} of {} not queued within {within:?}: {:?}",
            want.len(),
            self.counts()
        );
        started.elapsed()
    }

    /// Cancels and returns how long the node task took to end.
    async fn stop(&mut self) -> Duration {
        let started = Instant::now();
        self.cancel.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("node task ends after cancel")
            .expect("node task does not panic");
        started.elapsed()
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A key that sends txs, with its next nonce.
struct Wallet {
    signer: PrivateKeySigner,
    nonce: u64,
}

impl Wallet {
    fn random() -> Self {
        Wallet { signer: PrivateKeySigner::random(), nonce: 0 }
    }

    fn address(&self) -> Address {
        self.signer.address()
    }

    /// A signed EIP-1559 call (not sent), with its hash and raw bytes.
    fn call(&mut self, to: Address, input: &[u8]) -> (Signed<TxEip1559>, Bytes) {
        let mut tx = TxEip1559 {
            chain_id: CHAIN_ID,
            nonce: self.nonce,
            gas_limit: 60_000,
            max_fee_per_gas: 20_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(to),
            value: U256::ZERO,
            access_list: Default::default(),
            input: Bytes::copy_from_slice(input),
        };
        self.nonce += 1;
        let sig = self.signer.sign_transaction_sync(&mut tx).expect("sign");
        let signed = tx.into_signed(sig);
        let raw = TxEnvelope::from(signed.clone()).encoded_2718().into();
        (signed, raw)
    }
}

/// The JSON body a node pushes for `signed`, with `from` and `hash` set as given.
fn body(signed: &Signed<TxEip1559>, from: Address, hash: B256) -> Value {
    let rpc = alloy::rpc::types::Transaction {
        inner: alloy::consensus::transaction::Recovered::new_unchecked(
            TxEnvelope::from(signed.clone()),
            from,
        ),
        block_hash: None,
        block_number: None,
        transaction_index: None,
        effective_gas_price: None,
        block_timestamp: None,
    };
    let mut v = serde_json::to_value(&rpc).expect("json");
    v["hash"] = json!(hash);
    v
}

/// JSON-RPC over HTTP to anvil; `params` may be a batch (an array of requests).
async fn http(anvil: &Anvil, body: Value) -> Value {
    let text = reqwest::Client::new()
        .post(anvil.http_url())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("anvil answers")
        .text()
        .await
        .expect("anvil body");
    serde_json::from_str(&text).expect("anvil JSON")
}

async fn rpc(anvil: &Anvil, method: &str, params: Value) -> Value {
    let v =
        http(anvil, json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})).await;
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

/// Gives each address 1000 ETH (one batch).
async fn fund(anvil: &Anvil, addresses: &[Address]) {
    let batch: Vec<Value> = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| {
            json!({"jsonrpc": "2.0", "id": i, "method": "anvil_setBalance",
            "params": [a, "0x3635C9ADC5DEA00000"]})
        })
        .collect();
    let answers = http(anvil, Value::Array(batch)).await;
    assert!(
        answers.as_array().is_some_and(|a| a.iter().all(|r| r.get("error").is_none())),
        "{answers}"
    );
}

/// Sends raw txs in batches; returns the hashes the pool accepted.
async fn send_all(anvil: &Anvil, raws: &[Bytes], batch: usize) -> Vec<B256> {
    let mut accepted = Vec::new();
    for chunk in raws.chunks(batch) {
        let requests: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, raw)| json!({"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [raw]}))
            .collect();
        let answers = http(anvil, Value::Array(requests)).await;
        for a in answers.as_array().expect("batch answer") {
            match a["result"].as_str().and_then(|h| h.parse().ok()) {
                Some(h) => accepted.push(h),
                None => panic!("refused: {a}"),
            }
        }
    }
    accepted
}

async fn pool_pending(anvil: &Anvil) -> u64 {
    let status = rpc(anvil, "txpool_status", json!([])).await;
    u64::from_str_radix(status["pending"].as_str().unwrap_or("0x0").trim_start_matches("0x"), 16)
        .expect("hex count")
}

/// A no-mining anvil, a fake node in front of it, and an ingest on the fake node, connected.
async fn ingest_behind_fake_node() -> (Anvil, FakeNode, Ingest) {
    let anvil = Anvil::start_no_mining();
    let fake = FakeNode::start(&anvil.ws_url()).await;
    let mut ingest = Ingest::start(&fake.ws_url());
    ingest.wait_up(1).await;
    (anvil, fake, ingest)
}

async fn funded_wallet(anvil: &Anvil) -> Wallet {
    let w = Wallet::random();
    fund(anvil, &[w.address()]).await;
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_frame_is_dropped_counted_and_reported() {
    let (anvil, fake, mut ingest) = ingest_behind_fake_node().await;
    let mut attacker = funded_wallet(&anvil).await;

    // 1. The attack body with a made-up hash.
    let (attack, _) = attacker.call(PROTECTED, &[0xde, 0xad]);
    fake.inject_pending(&body(&attack, attacker.address(), B256::repeat_byte(0x66)).to_string());
    // 2. The attack body with a broken signature and the hash recomputed over it, so only
    //    signature recovery can tell.
    let (tx, sig, _) = attack.clone().into_parts();
    let broken = Signature::new(sig.r(), sig.s() ^ U256::from(1), sig.v());
    let resigned = tx.into_signed(broken);
    fake.inject_pending(&body(&resigned, attacker.address(), *resigned.hash()).to_string());
    // 3. A real body under a made-up sender.
    fake.inject_pending(&body(&attack, Address::repeat_byte(0x99), *attack.hash()).to_string());

    let forged = ingest.wait_for(Duration::from_secs(5), |s| s.counts().forged == 3).await;
    assert!(forged, "{:?}", ingest.counts());
    // The count can reach 3 between `wait_for`'s last drain and its check: drain once more.
    ingest.drain();
    assert!(
        ingest
            .seen_events
            .iter()
            .any(|e| matches!(e, NodeEvent::Forged { total: 1, node } if &**node == "node")),
        "the first forgery is reported at once: {:?}",
        ingest.seen_events
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    // 2 and 3 are plain calls: each was queued on its claim while its signer was recovered,
    // and carries that check, settled as forged, to the worker (which drops it). 1 fails
    // before any queue.
    let mut queued = ingest.queued_hashes();
    queued.sort();
    let mut expected = vec![*resigned.hash(), *attack.hash()];
    expected.sort();
    assert_eq!(queued, expected);
    for (_, tx) in &ingest.queued {
        let check = tx.sender_check.as_deref().expect("queued on its claim");
        assert_eq!(check.settled(), Some(false), "the forged claim is settled as such");
    }
    let c = ingest.counts();
    assert_eq!((c.verified, c.from_subscription, c.reconnects), (0, 2, 0), "{c:?}");
    assert!(
        !ingest.router.seen().contains(attack.hash())
            && !ingest.router.seen().contains(&B256::repeat_byte(0x66)),
        "neither the claimed nor the real hash is marked seen by a forgery"
    );
    let stopped = ingest.stop().await;
    assert!(stopped < Duration::from_millis(100), "{stopped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_tx_under_a_forged_sender_does_not_hide_the_honest_copy_that_follows_it() {
    let (anvil, fake, mut ingest) = ingest_behind_fake_node().await;
    let mut attacker = funded_wallet(&anvil).await;
    let (attack, _) = attacker.call(PROTECTED, &[0xde, 0xad]);
    // The same signed bytes twice, back to back: first claiming a made-up sender (taken on the
    // claim, then found forged), then honestly.
    let liar = Address::repeat_byte(0x99);
    fake.inject_pending(&body(&attack, liar, *attack.hash()).to_string());
    fake.inject_pending(&body(&attack, attacker.address(), *attack.hash()).to_string());

    let honest = |i: &Ingest| {
        i.queued.iter().any(|(_, t)| {
            t.hash == *attack.hash()
                && t.tx.signer() == attacker.address()
                && t.sender_check.as_deref().is_none_or(|c| c.settled() == Some(true))
        })
    };
    assert!(
        ingest.wait_for(Duration::from_secs(5), |i| honest(i) && i.counts().forged == 1).await,
        "the honest copy queued: {:?} {:?}",
        ingest.counts(),
        ingest.queued.iter().map(|(l, t)| (l, t.tx.signer())).collect::<Vec<_>>()
    );
    for (_, tx) in ingest.queued.iter().filter(|(_, t)| t.tx.signer() == liar) {
        let check = tx.sender_check.as_deref().expect("the liar's copy was queued on its claim");
        assert_eq!(check.settled(), Some(false), "a worker drops the forged copy");
    }
    assert_eq!(ingest.router.seen().signer_of(attack.hash()), Some(attacker.address()));
    let c = ingest.counts();
    assert_eq!((c.forged, c.verified), (1, 1), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_hash_does_not_hide_the_real_tx() {
    let (anvil, fake, mut ingest) = ingest_behind_fake_node().await;
    let mut attacker = funded_wallet(&anvil).await;
    let (attack, raw) = attacker.call(PROTECTED, &[0xde, 0xad]);
    // A harmless, validly signed body under the attack's hash, ahead of the attack.
    let mut bystander = Wallet::random();
    let (harmless, _) = bystander.call(BYSTANDER, &[1]);
    fake.inject_pending(&body(&harmless, bystander.address(), *attack.hash()).to_string());
    assert!(ingest.wait_for(Duration::from_secs(5), |s| s.counts().forged == 1).await);

    send_all(&anvil, &[raw], 1).await;
    ingest.wait_queued(&[*attack.hash()], Duration::from_secs(5)).await;
    let (lane, tx) = ingest.queued.iter().find(|(_, t)| t.hash == *attack.hash()).expect("queued");
    assert_eq!(*lane, Lane::Protected);
    assert_eq!(tx.tx.signer(), attacker.address());
    let c = ingest.counts();
    assert_eq!((c.forged, c.duplicates), (1, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_are_counted_and_the_connection_kept() {
    let (anvil, fake, mut ingest) = ingest_behind_fake_node().await;
    let accepted = fake.accepted();

    fake.inject("{not json");
    fake.inject_binary(vec![0xff, 0x00, 0x13, 0x37]);
    fake.inject("[1,2,3]");
    fake.inject(r#"{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0xnope","result":{}}}"#);
    // Wrong types inside a pending notification.
    fake.inject_pending(r#"{"hash":5,"type":"0x2","nonce":[]}"#);
    fake.inject_pending("12345");
    assert!(
        ingest.wait_for(Duration::from_secs(5), |s| s.counts().bad_frames == 6).await,
        "{:?}",
        ingest.counts()
    );

    // Still the same connection, and it still delivers.
    let mut user = funded_wallet(&anvil).await;
    let (tx, raw) = user.call(PROTECTED, &[1]);
    send_all(&anvil, &[raw], 1).await;
    ingest.wait_queued(&[*tx.hash()], Duration::from_secs(5)).await;
    let c = ingest.counts();
    assert_eq!((c.reconnects, c.forged, c.bad_frames), (0, 0, 6), "{c:?}");
    assert_eq!(fake.accepted(), accepted, "no new connection");
    assert!(!ingest.seen_events.iter().any(|e| matches!(e, NodeEvent::Down { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_ends_the_session_visibly_and_the_gap_is_resynced() {
    let (anvil, fake, mut ingest) = ingest_behind_fake_node().await;
    let mut user = funded_wallet(&anvil).await;

    // The node stays unreachable after the drop, so the tx below falls into the gap.
    fake.refuse(true);
    fake.inject("x".repeat(20 << 20));
    let down = ingest
        .wait_for(Duration::from_secs(10), |s| {
            s.seen_events.iter().any(|e| matches!(e, NodeEvent::Down { .. }))
        })
        .await;
    assert!(down, "{:?}", ingest.counts());
    let reason = ingest
        .seen_events
        .iter()
        .find_map(|e| match e {
            NodeEvent::Down { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("down");
    assert!(reason.to_lowercase().contains("too long") || reason.contains("size"), "{reason}");
    assert_eq!(ingest.counts().reconnects, 1);

    let (tx, raw) = user.call(BYSTANDER, &[1]);
    send_all(&anvil, &[raw], 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(ingest.queued_hashes().is_empty(), "nothing arrives while the node is unreachable");
    fake.refuse(false);
    ingest.wait_up(2).await;
    ingest.wait_queued(&[*tx.hash()], Duration::from_secs(10)).await;
    let c = ingest.counts();
    assert_eq!((c.recovered, c.from_subscription, c.reconnects), (1, 0, 1), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_is_reconnected_and_resynced() {
    let (anvil, fake, mut ingest) = ingest_behind_fake_node().await;
    let mut user = funded_wallet(&anvil).await;
    fake.refuse(true);
    assert!(fake.kill() >= 2, "feed and request connections");
    let (tx, raw) = user.call(PROTECTED, &[2]);
    send_all(&anvil, &[raw], 1).await;
    assert!(
        ingest
            .wait_for(Duration::from_secs(5), |s| s
                .seen_events
                .iter()
                .any(|e| matches!(e, NodeEvent::Down { .. })))
            .await
    );
    fake.refuse(false);
    ingest.wait_up(2).await;
    ingest.wait_queued(&[*tx.hash()], Duration::from_secs(10)).await;
    assert_eq!(ingest.counts().recovered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_notifications_are_recovered_within_a_reconcile_period() {
    let (anvil, fake, mut ingest) = ingest_behind_fake_node().await;
    fake.drop_ratio(0.5);
    let mut wallets: Vec<Wallet> = (0..10).map(|_| Wallet::random()).collect();
    fund(&anvil, &wallets.iter().map(Wallet::address).collect::<Vec<_>>()).await;
    let mut raws = Vec::new();
    let mut hashes = Vec::new();
    for round in 0..4 {
        for w in &mut wallets {
            let (tx, raw) = w.call(if round == 0 { PROTECTED } else { BYSTANDER }, &[round]);
            hashes.push(*tx.hash());
            raws.push(raw);
        }
    }
    let accepted = send_all(&anvil, &raws, 40).await;
    assert_eq!(accepted.len(), 40);
    let took = ingest.wait_queued(&hashes, RECONCILE_EVERY * 10).await;
    let c = ingest.counts();
    println!("50% dropped: all 40 queued {took:?} after the pool accepted them; {c:?}");
    assert_eq!(fake.dropped(), 20);
    assert!(c.recovered >= 20, "every dropped notification is recovered: {c:?}");
    assert_eq!(c.from_subscription + c.recovered, 40, "{c:?}");
    assert_eq!(ingest.queued.len(), 40, "each tx queued once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_txpool_is_resynced_from_its_pending_block() {
    let anvil = Anvil::start_no_mining();
    let fake = FakeNode::start(&anvil.ws_url()).await;
    fake.remove_method("txpool_content");
    let mut ingest = Ingest::start(&fake.ws_url());
    ingest.wait_up(1).await;
    let mut user = funded_wallet(&anvil).await;
    fake.refuse(true);
    fake.kill();
    let (tx, raw) = user.call(BYSTANDER, &[5]);
    send_all(&anvil, &[raw], 1).await;
    fake.refuse(false);
    ingest.wait_up(2).await;
    ingest.wait_queued(&[*tx.hash()], Duration::from_secs(10)).await;
    assert_eq!(ingest.counts().recovered, 1, "{:?}", ingest.counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_feed_is_overtaken_by_reconciliation() {
    let (anvil, fake, mut ingest) = ingest_behind_fake_node().await;
    fake.delay(Duration::from_secs(2));
    let mut user = funded_wallet(&anvil).await;
    let (tx, raw) = user.call(PROTECTED, &[6]);
    send_all(&anvil, &[raw], 1).await;
    let took = ingest.wait_queued(&[*tx.hash()], RECONCILE_EVERY * 5).await;
    println!("feed 2 s late: queued by reconciliation after {took:?}");
    assert_eq!(ingest.counts().recovered, 1);
    // The late notification is then a duplicate, not a second queue entry.
    assert!(ingest.wait_for(Duration::from_secs(5), |s| s.counts().duplicates == 1).await);
    assert_eq!(ingest.queued_hashes().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_only_node_is_fetched_and_verified() {
    let anvil = Anvil::start_no_mining();
    let fake = FakeNode::start(&anvil.ws_url()).await;
    fake.refuse_full_bodies(true);
    let mut ingest = Ingest::start(&fake.ws_url());
    ingest.wait_up(1).await;
    let mut user = funded_wallet(&anvil).await;
    let (tx, raw) = user.call(PROTECTED, &[3]);
    send_all(&anvil, &[raw], 1).await;
    ingest.wait_queued(&[*tx.hash()], Duration::from_secs(5)).await;
    let c = ingest.counts();
    assert_eq!((c.received, c.verified, c.from_subscription + c.recovered), (1, 1, 1), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_arrive_and_a_dead_node_never_delays_shutdown() {
    let anvil = Anvil::start_no_mining();
    let mut ingest = Ingest::start(&anvil.ws_url());
    ingest.wait_up(1).await;
    rpc(&anvil, "evm_mine", json!([])).await;
    let head = ingest
        .wait_for(Duration::from_secs(5), |s| {
            s.seen_events.iter().any(|e| matches!(e, NodeEvent::Head(h) if h.number == 1))
        })
        .await;
    assert!(head, "{:?}", ingest.seen_events);
    assert_eq!(ingest.counts().last_head_number, 1);
    let live = ingest.stop().await;

    // Accepts TCP and never completes the WebSocket handshake.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_url = format!("ws://{}", silent.local_addr().expect("addr"));
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut hanging = Ingest::start(&silent_url);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hung = hanging.stop().await;
    hold.abort();

    // Nothing listens: connect fails at once, the task sleeps in its backoff.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_url = format!("ws://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let mut refused = Ingest::start(&closed_url);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backing_off = refused.stop().await;
    assert!(refused.counts().reconnects == 0, "a failed connect is not a lost session");

    println!(
        "stop after cancel: live {live:?}, mid-handshake {hung:?}, in backoff {backing_off:?}"
    );
    for (what, took) in [("live", live), ("mid-handshake", hung), ("in backoff", backing_off)] {
        assert!(took < Duration::from_millis(100), "{what}: {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipc_node_delivers_pending_txs_and_heads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("anvil.ipc");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = std::process::Command::new(tools_dir().join("bin/anvil"))
        .args(["--port", &port.to_string(), "--no-mining", "--silent", "--ipc"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start anvil");
    let started = Instant::now();
    while !path.exists() && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ingest = Ingest::start(path.to_str().expect("utf-8 path"));
    ingest.wait_up(1).await;
    let http_url = format!("http://127.0.0.1:{port}");
    let anvil_http = HttpOnly(http_url);
    let mut user = Wallet::random();
    anvil_http.call("anvil_setBalance", json!([user.address(), "0x3635C9ADC5DEA00000"])).await;
    let (tx, raw) = user.call(PROTECTED, &[4]);
    anvil_http.call("eth_sendRawTransaction", json!([raw])).await;
    ingest.wait_queued(&[*tx.hash()], Duration::from_secs(5)).await;
    anvil_http.call("evm_mine", json!([])).await;
    let head = ingest
        .wait_for(Duration::from_secs(5), |s| {
            s.seen_events.iter().any(|e| matches!(e, NodeEvent::Head(h) if h.number == 1))
        })
        .await;
    assert!(head, "{:?}", ingest.seen_events);
    let stopped = ingest.stop().await;
    assert!(stopped < Duration::from_millis(100), "{stopped:?}");
    let _ = child.kill();
    let _ = child.wait();
}

/// JSON-RPC over HTTP to a node given by URL.
struct HttpOnly(String);

impl HttpOnly {
    async fn call(&self, method: &str, params: Value) -> Value {
        let text = reqwest::Client::new()
            .post(&self.0)
            .header("content-type", "application/json")
            .body(
                json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(),
            )
            .send()
            .await
            .expect("anvil answers")
            .text()
            .await
            .expect("body");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_txs_from_many_senders_is_all_queued() {
    let anvil = Anvil::start_no_mining();
    let mut ingest = Ingest::start(&anvil.ws_url());
    ingest.wait_up(1).await;
    let mut wallets: Vec<Wallet> = (0..100).map(|_| Wallet::random()).collect();
    fund(&anvil, &wallets.iter().map(Wallet::address).collect::<Vec<_>>()).await;
    let mut raws = Vec::new();
    let mut hashes = Vec::new();
    for round in 0..10u8 {
        for w in &mut wallets {
            // One in ten names the protected contract.
            let to = if round == 5 { PROTECTED } else { BYSTANDER };
            let (tx, raw) = w.call(to, &[round, 1, 2, 3]);
            hashes.push(*tx.hash());
            raws.push(raw);
        }
    }
    let started = Instant::now();
    // Ten concurrent senders of 100-tx batches.
    let chunks: Vec<Vec<Bytes>> = raws.chunks(100).map(|c| c.to_vec()).collect();
    let anvil = Arc::new(anvil);
    let sends: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let anvil = Arc::clone(&anvil);
            tokio::spawn(async move { send_all(&anvil, &chunk, 100).await })
        })
        .collect();
    let mut accepted = Vec::new();
    for s in sends {
        accepted.extend(s.await.expect("send task"));
    }
    let sent_in = started.elapsed();
    let in_pool = pool_pending(&anvil).await;
    assert_eq!((accepted.len(), in_pool), (1000, 1000), "the pool accepted the burst");
    let took = ingest.wait_queued(&hashes, Duration::from_secs(20)).await;
    let c = ingest.counts();
    let totals = ingest.stats.snapshot();
    println!(
        "burst: 1000 sent in {sent_in:?}, all queued {took:?} later; by subscription {}, by reconciliation {}; {totals:?}",
        c.from_subscription, c.recovered
    );
    assert_eq!(c.from_subscription + c.recovered, in_pool, "{c:?}");
    let mut by_lane: HashMap<Lane, usize> = HashMap::new();
    for (lane, _) in &ingest.queued {
        *by_lane.entry(*lane).or_default() += 1;
    }
    assert_eq!(ingest.queued.len(), 1000, "each tx queued once");
    assert_eq!(by_lane.get(&Lane::Protected), Some(&100));
    // The bystander is an uncommon target until its CROWDED_AT-th tx in the window: the calls
    // ranked before the crowd was counted move up to Suspicious, how many depends on arrival.
    let early = by_lane.get(&Lane::Suspicious).copied().unwrap_or(0);
    assert!(early < CROWDED_AT as usize, "{by_lane:?}");
    let moved_up = ingest.queued.iter().filter(|(lane, _)| *lane == Lane::Suspicious);
    let targets: Vec<_> = moved_up.map(|(_, tx)| tx.tx.inner().to()).collect();
    assert!(targets.iter().all(|to| *to == Some(BYSTANDER)), "only bystander calls move up");
    assert_eq!(by_lane.get(&Lane::Other).copied().unwrap_or(0) + early, 900, "{by_lane:?}");
    assert_eq!((totals.deferred, totals.forged, totals.bad_frames), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_unknown_code_is_ranked_by_its_prestate_trace_when_the_code_lookup_fails() {
    let anvil = Anvil::start_no_mining();
    let fake = FakeNode::start(&anvil.ws_url()).await;
    // The lookup connection cannot learn code: only the pre-state trace started at admission
    // (on the fork's own node) can rank the tx before the classify budget runs out.
    fake.remove_method("eth_getCode");
    let node = NodeClient::connect("fork", &anvil.http_url()).await.expect("fork node");
    let head = node.latest_block_number().await.expect("head");
    // Idle workers' wake-ups, counted from when the tx is sent.
    let (nudge, woken) = Nudge::channel();
    let mut ingest =
        Ingest::start_on(&fake.ws_url(), Arc::new(ForkCache::new(head, Some(node))), Some(nudge));
    ingest.wait_up(1).await;
    // A contract the guard never saw deployed, whose code names the protected contract
    // (PUSH20 <protected>, POP, STOP).
    let unknown = Address::repeat_byte(0xcc);
    let code = format!("0x73{}5000", "aa".repeat(20));
    rpc(&anvil, "anvil_setCode", json!([unknown, code])).await;
    let mut user = funded_wallet(&anvil).await;
    let (tx, raw) = user.call(unknown, &[1]);
    while woken.try_recv().is_ok() {}
    let wakes = Arc::new(AtomicUsize::new(0));
    let counting = {
        let (wakes, woken) = (Arc::clone(&wakes), woken.clone());
        std::thread::spawn(move || {
            while woken.recv_timeout(Duration::from_secs(2)).is_ok() {
                wakes.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    send_all(&anvil, &[raw], 1).await;
    let took = ingest.wait_queued(&[*tx.hash()], Duration::from_secs(5)).await;
    let lane = ingest.queued.iter().find(|(_, t)| t.hash == *tx.hash()).map(|(l, _)| *l);
    let totals = ingest.stats.snapshot();
    println!("ranked by the trace {took:?} after the pool accepted it; {totals:?}");
    assert_eq!(totals.traced_ahead, 1, "{totals:?}");
    // One wake-up as its frame was decoded, one as the trace's answer arrived (the tx is
    // routed once that answer is stored).
    counting.join().expect("counter");
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
    assert_eq!(lane, Some(Lane::Protected), "its traced code names the protected contract");
    assert_eq!(totals.classify_timeouts, 0, "not routed unclassified after the budget");
    assert_eq!(totals.classified, 1, "{totals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refusing_code_lookups_is_asked_again_only_after_a_pause_and_the_tx_goes_on() {
    let anvil = Anvil::start_no_mining();
    let fake = FakeNode::start(&anvil.ws_url()).await;
    fake.remove_method("eth_getCode");
    // No node behind the fork: nothing but the lookup could rank the tx.
    let mut ingest = Ingest::start(&fake.ws_url());
    ingest.wait_up(1).await;
    let unknown = Address::repeat_byte(0xcc);
    rpc(&anvil, "anvil_setCode", json!([unknown, format!("0x73{}5000", "aa".repeat(20))])).await;
    let mut user = funded_wallet(&anvil).await;
    let (tx, raw) = user.call(unknown, &[1]);
    send_all(&anvil, &[raw], 1).await;
    ingest.wait_queued(&[*tx.hash()], Duration::from_secs(5)).await;
    let totals = ingest.stats.snapshot();
    assert_eq!(totals.classify_timeouts, 1, "routed after the budget: {totals:?}");
    assert_eq!(totals.classified, 0, "{totals:?}");
    // A failed lookup used to wake the parked tx into asking again at once (160-odd requests
    // within the 50 ms budget); it is asked again 20 ms later.
    let failures = ingest.counts().fetch_failures;
    assert!((1..=3).contains(&failures), "{failures} failed lookups in the 50 ms budget");
}
