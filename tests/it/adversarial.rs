//! Issue 9 end to end: `preempt run` as a real process on `anvil --no-mining`, fed by nodes
//! that lie (forged bodies, a poisoned hash), die or hang (a TCP proxy that cuts, refuses or
//! blackholes), and babble (garbage frames, then a 20 MB one). Each test judges by the chain:
//! which txs the next block holds, in which order, and what they did.

use std::time::{Duration, Instant};

use alloy::{
    consensus::{SignableTransaction, Signed, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    network::TxSignerSync,
    primitives::{Address, B256, Bytes, Signature, TxKind, U256, keccak256},
    signers::local::PrivateKeySigner,
};
use preempt::devnet::{Scenario, dev_accounts};
use serde_json::{Value, json};

use crate::support::{
    Devnet,
    fake_node::FakeNode,
    guard::{RunningGuard, pending_from, wait_pending_from},
    proxy::TcpProxy,
};

fn guardian() -> Address {
    dev_accounts()[1].address
}

fn attacker() -> PrivateKeySigner {
    dev_accounts()[3].signer.clone()
}

fn hex_u128(v: &Value) -> u128 {
    v.as_str()
        .and_then(|h| u128::from_str_radix(h.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| panic!("not a hex quantity: {v}"))
}

/// The fixture vault attack as the attacker signs it (a plain EIP-1559 call of its own
/// contract, no access list), not sent: `VaultReentrancyAttack.attack{10 ETH}()`.
async fn signed_vault_attack(devnet: &Devnet) -> (Signed<TxEip1559>, Bytes) {
    let from = attacker();
    let to = devnet.deployment.address("VaultReentrancyAttack").expect("attack contract");
    let input = Bytes::copy_from_slice(&keccak256("attack()")[..4]);
    let value = U256::from(10u64) * U256::from(10u64).pow(U256::from(18));
    let nonce: Value =
        devnet.rpc("eth_getTransactionCount", json!([from.address(), "pending"])).await;
    let gas: Value = devnet
        .rpc(
            "eth_estimateGas",
            json!([{"from": from.address(), "to": to, "value": value, "input": input}]),
        )
        .await;
    let block: Value = devnet.rpc("eth_getBlockByNumber", json!(["latest", false])).await;
    let base_fee = hex_u128(&block["baseFeePerGas"]);
    let tx = TxEip1559 {
        chain_id: devnet.deployment.chain_id,
        nonce: hex_u128(&nonce) as u64,
        gas_limit: hex_u128(&gas) as u64 * 3 / 2 + 50_000,
        max_fee_per_gas: 2 * base_fee + 1_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input,
    };
    sign_as_attacker(devnet, tx)
}

fn sign_as_attacker(devnet: &Devnet, mut tx: TxEip1559) -> (Signed<TxEip1559>, Bytes) {
    assert_eq!(tx.chain_id, devnet.deployment.chain_id);
    let sig = attacker().sign_transaction_sync(&mut tx).expect("sign");
    let signed = tx.into_signed(sig);
    let raw = TxEnvelope::from(signed.clone()).encoded_2718().into();
    (signed, raw)
}

/// The JSON body a node pushes for `signed`, claiming `from` and `hash`.
fn body(signed: &Signed<TxEip1559>, from: Address, hash: B256) -> String {
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
    v.to_string()
}

/// `signed` with the low bit of `s` flipped: still a low-s signature, over the same fields,
/// that recovers some other key.
fn tampered(signed: &Signed<TxEip1559>) -> Signed<TxEip1559> {
    let (tx, sig, _) = signed.clone().into_parts();
    tx.into_signed(Signature::new(sig.r(), sig.s() ^ U256::from(1), sig.v()))
}

async fn block_txs(devnet: &Devnet, number: &str) -> Vec<(B256, Address)> {
    let block: Value = devnet.rpc("eth_getBlockByNumber", json!([number, true])).await;
    block["transactions"]
        .as_array()
        .map(|txs| {
            txs.iter()
                .filter_map(|t| {
                    Some((t["hash"].as_str()?.parse().ok()?, t["from"].as_str()?.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn succeeded(devnet: &Devnet, hash: B256) -> bool {
    let receipt: Value = devnet.rpc("eth_getTransactionReceipt", json!([hash])).await;
    receipt["status"] == "0x1"
}

async fn vault_paused(devnet: &Devnet) -> bool {
    let vault = devnet.deployment.address("EthVault").expect("vault");
    let out: String =
        devnet.rpc("eth_call", json!([{"to": vault, "data": "0x5c975abb"}, "latest"])).await;
    out.ends_with('1')
}

async fn send_raw(devnet: &Devnet, raw: &Bytes) -> B256 {
    devnet.rpc("eth_sendRawTransaction", json!([raw])).await
}

/// Waits for the guardian's pause in the pool, mines one block, and checks that it holds the
/// pause ahead of `attack`, that the attack failed and the vault is paused. Returns how long
/// the pause took to reach the pool, from the call.
async fn assert_paused_in_the_attack_block(
    devnet: &Devnet,
    guard: &RunningGuard,
    attack: B256,
    what: &str,
) -> Duration {
    let started = Instant::now();
    let pauses = wait_pending_from(devnet, guardian(), 1, Duration::from_secs(20)).await;
    let took = started.elapsed();
    assert_eq!(pauses.len(), 1, "{what}: one pause in the pool:\n{}", guard.log().join("\n"));
    devnet.mine().await;
    let txs = block_txs(devnet, "latest").await;
    let attack_at = txs.iter().position(|(h, _)| *h == attack);
    let pause_at = txs.iter().position(|(h, _)| *h == pauses[0]);
    assert!(
        matches!((pause_at, attack_at), (Some(p), Some(a)) if p < a),
        "{what}: the block holds the pause ahead of the attack: pause at {pause_at:?}, attack at {attack_at:?}"
    );
    assert!(!succeeded(devnet, attack).await, "{what}: the attack reverted");
    assert!(succeeded(devnet, pauses[0]).await, "{what}: the pause succeeded");
    assert!(vault_paused(devnet).await, "{what}: EthVault is paused");
    took
}

fn detection_of(guard: &RunningGuard, attack: B256) -> Value {
    let started = Instant::now();
    loop {
        let records = guard.incident_records();
        if let Some(d) = records.iter().find(|r| {
            r["kind"] == "detection"
                && r["attack_tx"].as_str().and_then(|h| h.parse::<B256>().ok()) == Some(attack)
        }) {
            return d.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no detection record: {records:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_attack_body_from_one_node_gets_no_guardian_tx_and_is_counted() {
    let devnet = Devnet::start().await;
    let fake = FakeNode::start(&devnet.anvil.ws_url()).await;
    let guard = RunningGuard::start(&devnet, &fake.ws_url(), "");
    let (attack, _never_sent) = signed_vault_attack(&devnet).await;
    let attacker = attacker().address();

    // 1. The attack's body with a broken signature under a made-up hash.
    let made_up = B256::repeat_byte(0x66);
    fake.inject_pending(&body(&tampered(&attack), attacker, made_up));
    // 2. The same broken body under the hash of its own bytes: only recovery can tell.
    let broken = tampered(&attack);
    fake.inject_pending(&body(&broken, attacker, *broken.hash()));
    // 3. The same broken body claiming the key it does recover: a well-signed tx from an
    //    account with no history, whose nonce is far ahead of that account's: it waits for
    //    predecessors that never come.
    let gap_signer = broken.recover_signer().expect("a low-s signature recovers some key");
    assert_ne!(gap_signer, attacker);
    fake.inject_pending(&body(&broken, gap_signer, *broken.hash()));
    // 4. As 3 at nonce 0: it runs at once, from an account with no ETH to pay 10 ETH and gas.
    let (first, _) = sign_as_attacker(&devnet, TxEip1559 { nonce: 0, ..attack.tx().clone() });
    let unfunded = tampered(&first);
    let nobody = unfunded.recover_signer().expect("a low-s signature recovers some key");
    fake.inject_pending(&body(&unfunded, nobody, *unfunded.hash()));

    guard.wait_log(
        |l| l.contains("node sent a forged pending tx; dropped") && l.contains("forged=1"),
        Duration::from_secs(10),
        "the first forgery",
    );
    guard.wait_log(
        |l| l.contains("node sends forged pending txs; demoted for state reads"),
        Duration::from_secs(10),
        "the node demoted",
    );
    let needle = format!("{}", unfunded.hash());
    guard.wait_log(
        |l| l.contains("tx not simulated") && l.contains(&needle) && l.contains("lack of funds"),
        Duration::from_secs(20),
        "the unfunded signer's tx refused by the simulation",
    );
    let log = guard.log();
    for hash in [unfunded.hash(), broken.hash()] {
        let needle = format!("{hash}");
        assert!(
            !log.iter().any(|l| l.contains("worker: simulated ") && l.contains(&needle)),
            "{hash}: a tx its sender cannot run has no outcome to judge"
        );
    }

    // Nothing reaches the pool, nor the next block.
    assert!(
        wait_pending_from(&devnet, guardian(), 1, Duration::from_millis(500)).await.is_empty(),
        "no guardian tx in the pool:\n{}",
        guard.log().join("\n")
    );
    devnet.mine().await;
    guard.wait_log(|l| l.contains("fork at new head"), Duration::from_secs(10), "the block");
    assert!(block_txs(&devnet, "latest").await.iter().all(|(_, from)| *from != guardian()));
    assert!(pending_from(&devnet, guardian()).await.is_empty());
    assert!(!vault_paused(&devnet).await, "EthVault is not paused");
    assert!(guard.incident_records().is_empty(), "{:?}", guard.incident_records());
    assert_eq!(guard.count_log(|l| l.contains("pause sent")), 0);

    let (code, stopped, _) = guard.stop_with_counters();
    assert_eq!(code, Some(0));
    assert_eq!(stopped.node("anvil", "forged"), 2, "{}", stopped.0);
    assert_eq!(stopped.worker("with_findings"), 0, "{}", stopped.0);
    // 2 is a plain call, queued on its claimed sender (the attacker's: it is the attack) while
    // ingest recovers the signer; the worker drops it, run or not, when the claim fails.
    assert_eq!(stopped.worker("forged"), 1, "{}", stopped.0);
    assert!(stopped.worker("invalid") >= 1, "the unfunded tx refused: {}", stopped.0);
    assert!(stopped.worker("parked") >= 1, "the nonce-gap tx parked: {}", stopped.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_hash_from_one_node_does_not_hide_the_real_attack_which_is_paused_in_its_block()
{
    let devnet = Devnet::start().await;
    let fake = FakeNode::start(&devnet.anvil.ws_url()).await;
    let guard = RunningGuard::start(&devnet, &fake.ws_url(), "");
    let (attack, raw) = signed_vault_attack(&devnet).await;

    // A harmless, validly signed body claiming the attack's hash, ahead of the attack.
    let bystander = PrivateKeySigner::random();
    let mut harmless = TxEip1559 {
        chain_id: devnet.deployment.chain_id,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(Address::repeat_byte(0xbb)),
        value: U256::ZERO,
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let sig = bystander.sign_transaction_sync(&mut harmless).expect("sign");
    let harmless = harmless.into_signed(sig);
    fake.inject_pending(&body(&harmless, bystander.address(), *attack.hash()));
    guard.wait_log(
        |l| l.contains("node sent a forged pending tx; dropped"),
        Duration::from_secs(10),
        "the poisoned claim caught",
    );

    // The real notification comes late; the attack itself reaches the pool now.
    fake.delay(Duration::from_secs(3));
    let sent = send_raw(&devnet, &raw).await;
    assert_eq!(sent, *attack.hash());
    let took = assert_paused_in_the_attack_block(&devnet, &guard, sent, "poisoned hash").await;
    println!("poisoned hash: pause in the pool {took:?} after the attack was sent");
    let detection = detection_of(&guard, sent);
    assert_eq!(detection["source"], "mempool", "{detection}");

    let (code, stopped, _) = guard.stop_with_counters();
    assert_eq!(code, Some(0));
    assert_eq!(stopped.node("anvil", "forged"), 1, "{}", stopped.0);
    assert!(
        stopped.node("anvil", "recovered") >= 1,
        "the delayed attack came by reconciliation: {}",
        stopped.0
    );
}

/// How the first node is lost.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// Connections cut, new ones refused.
    Killed,
    /// Connections held open with nothing answered, new ones accepted and never answered.
    Hung,
}

/// Two nodes (the first behind a proxy); the first is lost mid-run; the next attack must be
/// paused in its block through the second, and SIGTERM must end the process within 2 s while
/// the first is still lost. Returns the exit time.
async fn first_node_lost_mid_run(loss: Loss) -> Duration {
    let devnet = Devnet::start().await;
    let proxy = TcpProxy::start(([127, 0, 0, 1], devnet.anvil.port).into()).await;
    let second = format!("[[node]]\nname = \"second\"\nurl = \"{}\"\n", devnet.anvil.ws_url());
    let guard = RunningGuard::start(&devnet, &proxy.ws_url(), &second);
    assert_eq!(guard.count_log(|l| l.contains("subscribed to heads and pending txs")), 2);

    // Mid-run: traffic has flowed and a block was mined with both nodes up.
    let deposit = devnet.send(Scenario::VaultDeposit).await;
    let needle = format!("{deposit}");
    guard.wait_log(
        |l| l.contains("worker: simulated ") && l.contains(&needle),
        Duration::from_secs(20),
        "the deposit simulated",
    );
    devnet.mine().await;
    guard.wait_log(|l| l.contains("fork at new head"), Duration::from_secs(10), "the block");

    match loss {
        Loss::Killed => {
            proxy.refuse(true);
            assert!(proxy.cut_all() > 0, "preempt was connected through the proxy");
        }
        Loss::Hung => {
            assert!(proxy.open() > 0, "preempt was connected through the proxy");
            proxy.blackhole(true);
        }
    }
    // The attack comes at once, before anything has noticed the loss.
    let attack = devnet.send(Scenario::VaultReentrancyAttack).await;
    let took =
        assert_paused_in_the_attack_block(&devnet, &guard, attack, &format!("{loss:?}")).await;
    println!("first node {loss:?}: pause in the pool {took:?} after the attack was sent");
    let detection = detection_of(&guard, attack);
    assert_eq!(detection["seen_from"], "second", "{detection}");
    if matches!(loss, Loss::Killed) {
        guard.wait_log(
            |l| l.contains("node session ended") && l.contains("node=anvil"),
            Duration::from_secs(10),
            "the first node's session ended",
        );
    }

    // SIGTERM with the first node still lost: refusing, or holding sockets it never answers.
    if matches!(loss, Loss::Hung) {
        assert!(proxy.open() > 0, "the hung node still holds preempt's connections");
    }
    let (code, exit, stopped, _) = guard.stop_timed_with_counters();
    println!("first node {loss:?}: SIGTERM → exit in {exit:?}");
    assert_eq!(code, Some(0), "clean exit on SIGTERM");
    assert!(exit <= Duration::from_secs(2), "SIGTERM → exit took {exit:?} with a {loss:?} node");
    let second = stopped.node("second", "from_subscription") + stopped.node("second", "recovered");
    assert!(second >= 1, "the second node delivered the attack: {}", stopped.0);
    if matches!(loss, Loss::Killed) {
        assert!(stopped.node("anvil", "reconnects") >= 1, "{}", stopped.0);
        assert!(
            stopped.node("anvil", "connect_failures") >= 1,
            "reconnects to the dead node were refused: {}",
            stopped.0
        );
    }
    exit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_node_killed_mid_run_next_attack_paused_in_its_block_via_the_other_and_sigterm_exits_within_2s()
 {
    first_node_lost_mid_run(Loss::Killed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_node_hung_mid_run_next_attack_paused_in_its_block_via_the_other_and_sigterm_exits_within_2s()
 {
    first_node_lost_mid_run(Loss::Hung).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_are_counted_a_20mb_frame_reconnects_visibly_and_an_attack_in_the_gap_is_paused()
 {
    let devnet = Devnet::start().await;
    let fake = FakeNode::start(&devnet.anvil.ws_url()).await;
    let guard = RunningGuard::start(&devnet, &fake.ws_url(), "");
    let accepted = fake.accepted();

    fake.inject("{not json");
    fake.inject_binary(vec![0xff, 0x00, 0x13, 0x37]);
    fake.inject("[1,2,3]");
    fake.inject(r#"{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0xnope","result":{}}}"#);
    // Wrong types inside pending notifications.
    fake.inject_pending(r#"{"hash":5,"type":"0x2","nonce":[]}"#);
    fake.inject_pending("12345");
    guard.wait_log(
        |l| l.contains("bad frame") && l.contains("bad_frames=6"),
        Duration::from_secs(10),
        "six bad frames counted",
    );
    assert!(
        guard.log().iter().any(|l| l.contains("WARN") && l.contains("bad frame from node skipped")),
        "the first bad frame is a warning"
    );
    assert_eq!(fake.accepted(), accepted, "garbage is skipped without dropping the socket");
    assert_eq!(guard.count_log(|l| l.contains("node session ended")), 0);

    // The node stays unreachable after the over-size frame, so the attack falls in the gap.
    fake.refuse(true);
    fake.inject("x".repeat(20 << 20));
    guard.wait_log(
        |l| l.contains("node session ended; reconnecting") && l.contains("reconnects=1"),
        Duration::from_secs(10),
        "the over-size frame ending the session, logged and counted",
    );
    let attack = devnet.send(Scenario::VaultReentrancyAttack).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        pending_from(&devnet, guardian()).await.is_empty(),
        "nothing is seen while the node is unreachable"
    );
    fake.refuse(false);
    let started = Instant::now();
    while guard.count_log(|l| l.contains("subscribed to heads and pending txs")) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no reconnect:\n{}",
            guard.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = assert_paused_in_the_attack_block(&devnet, &guard, attack, "gap").await;
    println!("garbage + 20 MB frame: pause in the pool {took:?} after the reconnect began");

    let (code, stopped, _) = guard.stop_with_counters();
    assert_eq!(code, Some(0));
    assert_eq!(stopped.node("anvil", "bad_frames"), 6, "{}", stopped.0);
    assert_eq!(stopped.node("anvil", "reconnects"), 1, "{}", stopped.0);
    assert!(
        stopped.node("anvil", "recovered") >= 1,
        "the attack sent in the gap came by the pool re-sync: {}",
        stopped.0
    );
    assert_eq!(stopped.node("anvil", "forged"), 0, "{}", stopped.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attack_behind_a_plain_transfer_from_the_same_sender_is_still_paused_in_its_block() {
    let devnet = Devnet::start().await;
    let guard = RunningGuard::start(&devnet, &devnet.anvil.ws_url(), "");
    let (attack, _) = signed_vault_attack(&devnet).await;
    // First, from the attacker: 1 wei to a fresh address (no code: not worth simulating).
    let fresh = PrivateKeySigner::random().address();
    let (transfer, transfer_raw) = sign_as_attacker(
        &devnet,
        TxEip1559 {
            gas_limit: 21_000,
            to: TxKind::Call(fresh),
            value: U256::from(1),
            input: Bytes::new(),
            ..attack.tx().clone()
        },
    );
    // Then the attack itself, with the next nonce.
    let (attack, attack_raw) = sign_as_attacker(
        &devnet,
        TxEip1559 { nonce: transfer.tx().nonce + 1, ..attack.tx().clone() },
    );
    assert_eq!(send_raw(&devnet, &transfer_raw).await, *transfer.hash());
    assert_eq!(send_raw(&devnet, &attack_raw).await, *attack.hash());
    assert_paused_in_the_attack_block(&devnet, &guard, *attack.hash(), "behind a transfer").await;
}
