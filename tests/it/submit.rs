//! The submit stage against a real anvil (`--no-mining`) and the test relay: one signed tx goes
//! to the node's mempool and, signed as a bundle, to each relay; failures stay per destination.

use std::time::{Duration, Instant};

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    network::TxSignerSync,
    primitives::{Address, B256, Bytes, TxKind, U256},
    providers::{
        Provider, ProviderBuilder,
        ext::{FLASHBOTS_SIGNATURE_HEADER, TxPoolApi, sign_flashbots_payload},
    },
    signers::local::PrivateKeySigner,
};
use preempt::{
    config::{NodeConfig, RelayConfig},
    devnet::dev_accounts,
    submit::{DestinationKind, REQUEST_TIMEOUT, SendResult, SubmitReport, Submitter},
};

use crate::support::{Anvil, relay::TestRelay};

fn guardian() -> PrivateKeySigner {
    dev_accounts()[1].signer.clone()
}

fn relay_auth() -> PrivateKeySigner {
    dev_accounts()[8].signer.clone()
}

fn node(anvil: &Anvil) -> NodeConfig {
    NodeConfig { name: "anvil".into(), url: anvil.ws_url(), pending: false }
}

fn relay(name: &str, url: String) -> RelayConfig {
    RelayConfig { name: name.into(), url }
}

/// A signed EIP-1559 transfer from `signer` at its next nonce: (raw bytes, hash, target block).
async fn signed_transfer(anvil: &Anvil, signer: &PrivateKeySigner) -> (Bytes, B256, u64) {
    signed_transfer_of(anvil, signer, 1).await
}

async fn signed_transfer_of(
    anvil: &Anvil,
    signer: &PrivateKeySigner,
    wei: u64,
) -> (Bytes, B256, u64) {
    let provider = ProviderBuilder::new().connect_http(anvil.http_url().parse().expect("url"));
    let chain_id = provider.get_chain_id().await.expect("chain id");
    let nonce = provider.get_transaction_count(signer.address()).await.expect("nonce");
    let head = provider.get_block_number().await.expect("head");
    let mut tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 2_000_000_000,
        to: TxKind::Call(Address::repeat_byte(0x42)),
        value: U256::from(wei),
        ..Default::default()
    };
    let signature = signer.sign_transaction_sync(&mut tx).expect("sign");
    let envelope = TxEnvelope::from(tx.into_signed(signature));
    (envelope.encoded_2718().into(), *envelope.tx_hash(), head + 1)
}

async fn pending_count(anvil: &Anvil) -> u64 {
    let provider = ProviderBuilder::new().connect_http(anvil.http_url().parse().expect("url"));
    provider.txpool_status().await.expect("txpool_status").pending
}

fn result<'a>(report: &'a SubmitReport, destination: &str) -> &'a SendResult {
    report
        .results
        .iter()
        .find(|r| r.destination == destination)
        .unwrap_or_else(|| panic!("no result for {destination} in {report:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_sent_to_node_and_relay_lands_once_and_the_relay_sees_a_signed_bundle() {
    let anvil = Anvil::start_no_mining();
    let test_relay = TestRelay::start(&anvil.http_url());
    let submitter = Submitter::connect(
        &[node(&anvil)],
        &[relay("test-relay", test_relay.url())],
        Some(relay_auth()),
    )
    .await
    .expect("connect");
    assert!(!format!("{submitter:?}").contains("dbda1821"), "Debug must not print the key");

    let (raw, hash, target) = signed_transfer(&anvil, &guardian()).await;
    let report = submitter.submit(raw.clone(), hash, target).await;

    assert_eq!((report.tx_hash, report.target_block, report.results.len()), (hash, target, 2));
    let at_node = result(&report, "anvil");
    let at_relay = result(&report, "test-relay");
    assert!(at_node.ok && at_node.error.is_none(), "{at_node:?}");
    assert!(at_relay.ok && at_relay.error.is_none(), "{at_relay:?}");
    assert_eq!((at_node.kind, at_relay.kind), (DestinationKind::Node, DestinationKind::Relay));
    let json = serde_json::to_value(&report).expect("serialize");
    assert_eq!(json["results"][0]["kind"], "node");
    assert_eq!(json["results"][1]["kind"], "relay");

    // Both copies carry the same bytes: anvil holds one pending tx, not two.
    assert_eq!(pending_count(&anvil).await, 1);
    let bundles = test_relay.bundles();
    assert_eq!(bundles.len(), 1);
    assert_eq!(bundles[0].signer, dev_accounts()[8].address);
    assert_eq!(bundles[0].txs, vec![raw.clone()]);
    assert_eq!(bundles[0].block_number, target);
    assert_eq!(test_relay.rejected(), 0);

    // Sending again (the next block's resend) is still ok everywhere: the node already has it.
    let again = submitter.submit(raw, hash, target + 1).await;
    assert!(again.results.iter().all(|r| r.ok), "{again:?}");
    assert_eq!(pending_count(&anvil).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_rejects_a_bundle_signed_over_another_body_or_unsigned_with_403() {
    let anvil = Anvil::start_no_mining();
    let test_relay = TestRelay::start(&anvil.http_url());
    let (raw, hash, target) = signed_transfer(&anvil, &guardian()).await;
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[{{"txs":["{raw}"],"blockNumber":"{target:#x}"}}]}}"#
    );
    let other_body = body.replace(&format!("{target:#x}"), &format!("{:#x}", target + 1));
    let client = reqwest::Client::new();

    let wrong = sign_flashbots_payload(other_body, &relay_auth()).await.expect("sign");
    let answer = client
        .post(test_relay.url())
        .header(FLASHBOTS_SIGNATURE_HEADER, wrong)
        .body(body.clone())
        .send()
        .await
        .expect("relay answers");
    assert_eq!(answer.status(), 403);
    let text = answer.text().await.expect("body");
    assert!(text.contains("invalid X-Flashbots-Signature") && text.contains("signed by"), "{text}");
    assert_eq!(test_relay.rejected(), 1);

    let answer = client.post(test_relay.url()).body(body).send().await.expect("relay answers");
    assert_eq!(answer.status(), 403);
    let text = answer.text().await.expect("body");
    assert!(text.contains("missing X-Flashbots-Signature"), "{text}");
    assert_eq!(test_relay.rejected(), 2);

    // Through the submitter with no relay key: the report says why that relay failed.
    let submitter =
        Submitter::connect(&[node(&anvil)], &[relay("unsigned", test_relay.url())], None)
            .await
            .expect("connect");
    let report = submitter.submit(raw, hash, target).await;
    let at_relay = result(&report, "unsigned");
    assert!(!at_relay.ok, "{at_relay:?}");
    let error = at_relay.error.as_deref().unwrap_or_default();
    assert!(error.contains("403") && error.contains("missing X-Flashbots-Signature"), "{error}");
    assert!(result(&report, "anvil").ok, "{report:?}");
    assert_eq!(test_relay.rejected(), 3);
    assert!(test_relay.bundles().is_empty());
    assert_eq!(pending_count(&anvil).await, 1, "the node copy landed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_silent_relay_fails_alone_and_the_node_copy_still_lands() {
    let anvil = Anvil::start_no_mining();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    // Bound but never accepting: the kernel completes the handshake, nobody ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let submitter = Submitter::connect(
        &[node(&anvil)],
        &[
            relay("closed", format!("http://{closed}")),
            relay("silent", format!("http://{silent_addr}")),
        ],
        Some(relay_auth()),
    )
    .await
    .expect("relays are not contacted at connect");

    let (raw, hash, target) = signed_transfer(&anvil, &guardian()).await;
    let started = Instant::now();
    let report = submitter.submit(raw, hash, target).await;
    let took = started.elapsed();

    let at_node = result(&report, "anvil");
    assert!(at_node.ok, "{at_node:?}");
    assert!(at_node.latency_us < 1_000_000, "node answer waited on the relays: {at_node:?}");
    // The write time is the pause connection's own, before the node's answer.
    let written = at_node.written_us.expect("a WebSocket node's write time is known");
    assert!(written <= at_node.latency_us, "{at_node:?}");
    let first = report.first_written_at.expect("first write");
    assert!(first.duration_since(report.started_at) < Duration::from_millis(500), "{report:?}");
    let at_closed = result(&report, "closed");
    assert!(!at_closed.ok && at_closed.error.as_deref().is_some_and(|e| !e.is_empty()));
    assert!(at_closed.latency_us < 1_000_000, "{at_closed:?}");
    let at_silent = result(&report, "silent");
    assert!(!at_silent.ok, "{at_silent:?}");
    assert!(at_silent.error.as_deref().is_some_and(|e| e.contains("no answer within")));
    assert!(took >= REQUEST_TIMEOUT && took < REQUEST_TIMEOUT + Duration::from_secs(1), "{took:?}");
    assert_eq!(pending_count(&anvil).await, 1, "the node copy landed");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_after_mining_is_ok_but_a_nonce_taken_by_another_tx_is_not() {
    let anvil = Anvil::start_no_mining();
    let submitter = Submitter::connect(&[node(&anvil)], &[], None).await.expect("connect");
    let (raw, hash, target) = signed_transfer_of(&anvil, &guardian(), 1).await;
    // Same nonce, different bytes: what a pause would meet if the key were used elsewhere.
    let (rival, rival_hash, _) = signed_transfer_of(&anvil, &guardian(), 2).await;
    assert!(submitter.submit(raw.clone(), hash, target).await.any_ok());
    let provider = ProviderBuilder::new().connect_http(anvil.http_url().parse().expect("url"));
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.expect("mine");

    // The node now answers "nonce too low" to both; only the mined bytes count as delivered.
    let resent = submitter.submit(raw, hash, target + 1).await;
    assert!(resent.results[0].ok, "{resent:?}");
    let lost = submitter.submit(rival, rival_hash, target + 1).await;
    assert!(!lost.results[0].ok, "{lost:?}");
    assert!(lost.results[0].error.as_deref().is_some_and(|e| e.contains("nonce too low")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_node_at_start_is_an_error_naming_it() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let nodes = [NodeConfig { name: "gone".into(), url: format!("ws://{closed}"), pending: false }];
    let err = Submitter::connect(&nodes, &[], None).await.expect_err("no node there");
    assert!(err.to_string().contains("node `gone`"), "{err}");
}
