//! The pre-signed ladder against a real node: pauses taken from the ladder are accepted by
//! anvil as signed, two attacks in one block get two pauses with consecutive nonces (the
//! second from a ladder re-signed off the hot path), and both land ahead of their attacks.

use std::sync::Mutex;

use alloy::{
    eips::{BlockNumberOrTag, eip1559::BaseFeeParams},
    primitives::{Address, B256},
    providers::{Provider, RootProvider},
};
use preempt::{
    devnet::{Scenario, dev_accounts},
    respond::{self, AttackFees, Decision, HeadNonces, PausePlan, Pauser, Responder},
};

use crate::support::Devnet;

fn plan_of(d: Decision) -> PausePlan {
    match d {
        Decision::Pause { plan } => plan,
        other => panic!("expected a pause, got {other:?}"),
    }
}

async fn status(provider: &RootProvider, hash: B256) -> bool {
    provider.get_transaction_receipt(hash).await.expect("rpc").expect("mined").status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_attacks_in_one_block_get_presigned_pauses_with_consecutive_nonces_that_land_first() {
    let devnet = Devnet::start().await;
    let config = &devnet.config;
    let provider: RootProvider =
        RootProvider::new_http(devnet.anvil.http_url().parse().expect("url"));
    let guardian = dev_accounts()[1].clone();
    let latest =
        provider.get_block_by_number(BlockNumberOrTag::Latest).await.expect("rpc").expect("latest");
    let base_fee = latest.header.next_block_base_fee(BaseFeeParams::ethereum()).expect("London");
    let nonce = provider.get_transaction_count(guardian.address).await.expect("nonce");
    let chain_id = provider.get_chain_id().await.expect("chain id");
    let responder = Mutex::new(Responder::new(
        config.respond.clone(),
        Some(Pauser::new(guardian.signer.clone(), chain_id, nonce)),
    ));

    // On the head: every protected contract's pause, signed at every level, for `nonce`.
    let head = HeadNonces { next_base_fee: base_fee, guardian_nonce: nonce, safe_nonce: None };
    let report = respond::prepare(&responder, &config.protected, head);
    assert_eq!(report.installed, config.protected.len(), "{report:?}");
    assert_eq!(report.held, report.signed);

    let mut pauses = Vec::new();
    for (scenario, contract) in [
        (Scenario::VaultReentrancyAttack, "EthVault"),
        (Scenario::TreasuryTakeoverAttack, "Treasury"),
    ] {
        let attack = devnet.send(scenario).await;
        let tx = provider.get_transaction_by_hash(attack).await.expect("rpc").expect("pending");
        let fees = AttackFees::of(&tx, base_fee);
        let protected = config.protected.iter().find(|p| p.name == contract).expect("protected");
        let plan = plan_of(responder.lock().expect("lock").decide(
            protected,
            Some((attack, fees)),
            base_fee,
        ));
        assert!(plan.presigned && plan.outbids_attack, "{contract}: {plan:?}");
        let sent = provider.send_raw_transaction(&plan.raw).await.expect("the node takes it");
        assert_eq!(*sent.tx_hash(), plan.tx_hash);
        pauses.push((plan, attack, protected.address));
        // Off the hot path, after the pause took the nonce: the others move on to the next.
        let refill = respond::refill(&responder, &config.protected);
        assert_eq!(refill.installed, config.protected.len() - pauses.len(), "{refill:?}");
    }
    assert_eq!(pauses[0].0.nonce, nonce);
    assert_eq!(pauses[1].0.nonce, nonce + 1, "the second pause takes the next nonce");

    devnet.mine().await;
    let block: serde_json::Value =
        devnet.rpc("eth_getBlockByNumber", serde_json::json!(["latest", false])).await;
    let order: Vec<B256> = block["transactions"]
        .as_array()
        .expect("txs")
        .iter()
        .map(|h| h.as_str().expect("hash").parse().expect("hash"))
        .collect();
    let at = |h: B256| order.iter().position(|t| *t == h).expect("in the block");
    for (plan, attack, contract) in &pauses {
        assert!(at(plan.tx_hash) < at(*attack), "{}: pause before the attack", plan.contract_name);
        assert!(status(&provider, plan.tx_hash).await, "{}: pause succeeded", plan.contract_name);
        assert!(!status(&provider, *attack).await, "{}: the attack failed", plan.contract_name);
        assert!(is_paused(&devnet, *contract).await, "{} is paused", plan.contract_name);
    }
}

async fn is_paused(devnet: &Devnet, contract: Address) -> bool {
    let out: String = devnet
        .rpc("eth_call", serde_json::json!([{"to": contract, "data": "0x5c975abb"}, "latest"]))
        .await;
    out.ends_with('1')
}
