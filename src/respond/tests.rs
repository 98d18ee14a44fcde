use std::path::Path;

use alloy::{
    consensus::{Transaction, TxEnvelope},
    eips::Decodable2718,
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};

use super::*;
use crate::config::Config;

const GWEI: u128 = 1_000_000_000;

fn config(mode: &str) -> Config {
    let text = format!(
        r#"
[guardian]
key = "env:UNUSED"
[respond]
mode = "{mode}"
max_fee_per_gas_gwei = 300
max_priority_fee_per_gas_gwei = 100
[[protect]]
name = "Vault"
address = "0x00000000000000000000000000000000000000aa"
[[protect]]
name = "Pool"
address = "0x00000000000000000000000000000000000000bb"
"#
    );
    Config::parse(&text, Path::new("t.toml")).expect("valid")
}

fn responder(mode: &str) -> (Responder, Config) {
    let c = config(mode);
    let pauser = Pauser::new(PrivateKeySigner::random(), 31337, 7);
    (Responder::new(c.respond.clone(), Some(pauser)), c)
}

fn attack(max_fee_gwei: u128, tip_gwei: u128) -> Option<(B256, AttackFees)> {
    Some((
        B256::repeat_byte(1),
        AttackFees {
            max_fee_per_gas: max_fee_gwei * GWEI,
            max_priority_fee_per_gas: tip_gwei * GWEI,
        },
    ))
}

fn plan_of(d: Decision) -> PausePlan {
    match d {
        Decision::Pause { plan } | Decision::Replace { plan, .. } | Decision::DryRun { plan } => {
            plan
        }
        other => panic!("expected a plan, got {other:?}"),
    }
}

#[test]
fn pause_outbids_the_attack_on_max_fee_and_tip_and_is_a_valid_signed_1559_tx() {
    let (mut r, c) = responder("pause");
    let plan = plan_of(r.decide(&c.protected[0], attack(40, 3), 10 * GWEI as u64));
    assert!(
        plan.max_fee_per_gas > 40 * GWEI && plan.max_priority_fee_per_gas > 3 * GWEI,
        "{plan:?}"
    );
    assert!(plan.outbids_attack);
    assert_eq!(plan.nonce, 7);
    let tx = TxEnvelope::decode_2718(&mut plan.raw.as_ref()).expect("decodes");
    assert_eq!(tx.to(), Some(Address::with_last_byte(0xaa)));
    assert_eq!(tx.input().as_ref(), &crate::config::PAUSE_SELECTOR);
    assert_eq!(tx.max_fee_per_gas(), plan.max_fee_per_gas);
    assert_eq!(*tx.tx_hash(), plan.tx_hash);
    let signer =
        alloy::consensus::transaction::SignerRecoverable::recover_signer(&tx).expect("signed");
    assert_eq!(signer, r.pauser().expect("pauser").address());
}

#[test]
fn caps_bound_what_a_pause_pays_and_say_when_it_no_longer_outbids() {
    let (mut r, c) = responder("pause");
    let plan = plan_of(r.decide(&c.protected[0], attack(1_000, 500), GWEI as u64));
    assert_eq!(plan.max_fee_per_gas, 300 * GWEI);
    assert_eq!(plan.max_priority_fee_per_gas, 100 * GWEI);
    assert!(!plan.outbids_attack);
}

#[test]
fn a_contract_is_paused_once_and_a_higher_attack_replaces_with_the_same_nonce() {
    let (mut r, c) = responder("pause");
    let first = plan_of(r.decide(&c.protected[0], attack(40, 3), GWEI as u64));
    assert!(matches!(r.decide(&c.protected[0], attack(30, 2), GWEI as u64), Decision::Skip { .. }));
    match r.decide(&c.protected[0], attack(90, 20), GWEI as u64) {
        Decision::Replace { plan, replaces } => {
            assert_eq!(replaces, first.tx_hash);
            assert_eq!(plan.nonce, first.nonce);
            assert!(plan.max_fee_per_gas >= first.max_fee_per_gas + first.max_fee_per_gas / 10);
            assert!(plan.max_priority_fee_per_gas > 20 * GWEI);
        }
        other => panic!("expected a replacement, got {other:?}"),
    }
    // Another contract gets the next nonce.
    assert_eq!(
        plan_of(r.decide(&c.protected[1], attack(40, 3), GWEI as u64)).nonce,
        first.nonce + 1
    );
}

#[test]
fn a_paused_contract_is_not_raced() {
    let (mut r, c) = responder("pause");
    r.mark_paused(c.protected[0].address, "paused() is true");
    assert!(matches!(r.decide(&c.protected[0], attack(40, 3), GWEI as u64), Decision::Skip { .. }));
}

#[test]
fn alert_mode_sends_nothing_and_dry_run_keeps_the_nonce() {
    let (mut r, c) = responder("alert");
    assert!(matches!(r.decide(&c.protected[0], attack(40, 3), GWEI as u64), Decision::Alert));
    let (mut r, c) = responder("dry-run");
    let plan = plan_of(r.decide(&c.protected[0], attack(40, 3), GWEI as u64));
    assert_eq!(plan.nonce, 7);
    assert_eq!(plan_of(r.decide(&c.protected[0], attack(40, 3), GWEI as u64)).nonce, 7);
    assert_eq!(r.in_flight().count(), 0);
}

#[test]
fn block_guard_pause_without_an_attack_pays_above_twice_the_base_fee() {
    let (mut r, c) = responder("pause");
    let plan = plan_of(r.decide(&c.protected[0], None, 20 * GWEI as u64));
    assert!(plan.max_fee_per_gas >= 40 * GWEI + plan.max_priority_fee_per_gas);
    assert!(plan.max_priority_fee_per_gas >= GWEI);
}

#[test]
fn pauser_debug_shows_the_address_not_the_key() {
    let signer = PrivateKeySigner::random();
    let key_hex = alloy::primitives::hex::encode(signer.to_bytes());
    let p = Pauser::new(signer, 1, 0);
    let shown = format!("{p:?}");
    assert!(!shown.contains(&key_hex));
    assert!(shown.to_lowercase().contains(&p.address().to_string().to_lowercase()));
}
