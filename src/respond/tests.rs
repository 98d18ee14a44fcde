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

// ---- the pre-signed ladder ----

/// Three contracts, default caps (1000 gwei max fee, 500 gwei tip) unless `respond` says else;
/// `guardian` adds lines to `[guardian]` (a Safe).
fn ladder_config(mode: &str, respond: &str, guardian: &str) -> Config {
    let text = format!(
        r#"
[guardian]
key = "env:UNUSED"
{guardian}
[respond]
mode = "{mode}"
{respond}
[[protect]]
name = "Vault"
address = "0x00000000000000000000000000000000000000aa"
[[protect]]
name = "Pool"
address = "0x00000000000000000000000000000000000000bb"
[[protect]]
name = "Lender"
address = "0x00000000000000000000000000000000000000cc"
"#
    );
    Config::parse(&text, Path::new("t.toml")).expect("valid")
}

fn ladder_responder(c: &Config, nonce: u64) -> (Responder, PrivateKeySigner) {
    let signer = PrivateKeySigner::random();
    (Responder::new(c.respond.clone(), Some(Pauser::new(signer.clone(), 31337, nonce))), signer)
}

const BASE: u64 = 10 * GWEI as u64;

fn head(nonce: u64) -> HeadNonces {
    HeadNonces { next_base_fee: BASE, guardian_nonce: nonce, safe_nonce: None }
}

fn fees_of(plan: &PausePlan) -> PauseFees {
    PauseFees {
        max_fee_per_gas: plan.max_fee_per_gas,
        max_priority_fee_per_gas: plan.max_priority_fee_per_gas,
    }
}

/// The raw tx decodes to what the plan says, and its signature recovers to `guardian`.
fn assert_signed_by(plan: &PausePlan, guardian: Address) -> TxEnvelope {
    let tx = TxEnvelope::decode_2718(&mut plan.raw.as_ref()).expect("decodes");
    assert_eq!(*tx.tx_hash(), plan.tx_hash);
    assert_eq!(tx.nonce(), plan.nonce);
    assert_eq!(tx.max_fee_per_gas(), plan.max_fee_per_gas);
    assert_eq!(tx.max_priority_fee_per_gas(), Some(plan.max_priority_fee_per_gas));
    assert_eq!(tx.gas_limit(), plan.gas_limit);
    let signer =
        alloy::consensus::transaction::SignerRecoverable::recover_signer(&tx).expect("signed");
    assert_eq!(signer, guardian);
    tx
}

#[test]
fn ladder_levels_are_cheapest_first_within_the_caps_with_collapsed_levels_once() {
    let c = ladder_config(
        "pause",
        "max_fee_per_gas_gwei = 300\nmax_priority_fee_per_gas_gwei = 100",
        "",
    );
    let levels = ladder_levels(BASE, &c.respond);
    // Tips 2, 5, 20, 100 (500 capped to 100 collapses into 100) × 5 max fees, minus the max
    // fees the 300 gwei cap makes equal: 100 gwei tip with 16x (260) stays, none reach 300.
    assert!(levels.len() < 25, "{} levels", levels.len());
    for w in levels.windows(2) {
        assert!(w[0].cost_order() < w[1].cost_order(), "cheapest first, once each: {w:?}");
    }
    for l in &levels {
        assert!(l.max_fee_per_gas <= 300 * GWEI && l.max_priority_fee_per_gas <= 100 * GWEI);
        assert!(l.max_fee_per_gas >= l.max_priority_fee_per_gas);
    }
    assert_eq!(
        levels[0],
        PauseFees {
            max_fee_per_gas: 12_500_000_000 + 2 * GWEI,
            max_priority_fee_per_gas: 2 * GWEI
        }
    );
    let top = levels.last().expect("levels");
    assert_eq!(
        *top,
        PauseFees { max_fee_per_gas: 260 * GWEI, max_priority_fee_per_gas: 100 * GWEI }
    );

    // A tiny cap collapses everything into one level.
    let c =
        ladder_config("pause", "max_fee_per_gas_gwei = 2\nmax_priority_fee_per_gas_gwei = 1", "");
    assert_eq!(
        ladder_levels(BASE, &c.respond),
        vec![PauseFees { max_fee_per_gas: 2 * GWEI, max_priority_fee_per_gas: GWEI }]
    );
}

#[test]
fn decide_takes_the_cheapest_presigned_pause_that_outbids_the_attack_on_both_fields() {
    let c = ladder_config("pause", "", "");
    let (mut r, signer) = ladder_responder(&c, 7);
    let report = r.prepare(&c.protected, head(7));
    assert_eq!((report.contracts, report.installed), (3, 3));
    assert_eq!(report.signed, 3 * 25);
    assert_eq!(r.presigned(), 75);

    let attack_fees = AttackFees { max_fee_per_gas: 40 * GWEI, max_priority_fee_per_gas: 3 * GWEI };
    let plan = plan_of(r.decide(&c.protected[0], Some((B256::repeat_byte(1), attack_fees)), BASE));
    assert!(plan.presigned, "{plan:?}");
    assert!(plan.outbids_attack);
    // Tip 5 gwei is the least above 3; with it, 4 × base fee + tip = 45 gwei is the least max
    // fee above 40.
    assert_eq!(
        fees_of(&plan),
        PauseFees { max_fee_per_gas: 45 * GWEI, max_priority_fee_per_gas: 5 * GWEI }
    );
    let cheaper_fit = ladder_levels(BASE, &c.respond)
        .into_iter()
        .filter(|l| l.cost_order() < fees_of(&plan).cost_order())
        .find(|l| l.outbids(attack_fees));
    assert_eq!(cheaper_fit, None, "no cheaper level outbids the attack");
    assert_eq!(plan.nonce, 7);
    let tx = assert_signed_by(&plan, signer.address());
    assert_eq!(tx.to(), Some(c.protected[0].address));
    assert_eq!(tx.input().as_ref(), &crate::config::PAUSE_SELECTOR);
}

#[test]
fn above_the_ladder_decide_signs_on_the_spot_and_still_outbids() {
    let c = ladder_config("pause", "", "");
    let (mut r, signer) = ladder_responder(&c, 7);
    r.prepare(&c.protected, head(7));
    // Max fee 900 gwei: above every rung (16 × 10 + 500 = 660), under the 1000 gwei cap.
    let plan = plan_of(r.decide(&c.protected[0], attack(900, 1), BASE));
    assert!(!plan.presigned, "{plan:?}");
    assert!(plan.outbids_attack);
    assert!(plan.max_fee_per_gas > 900 * GWEI && plan.max_priority_fee_per_gas > GWEI);
    assert_eq!(plan.nonce, 7);
    assert_signed_by(&plan, signer.address());
    // A tip above every rung's, likewise.
    let plan = plan_of(r.decide(&c.protected[1], attack(700, 499), BASE));
    assert!(plan.max_priority_fee_per_gas > 499 * GWEI || !plan.outbids_attack);
}

#[test]
fn ladder_respects_the_caps_and_says_when_nothing_within_them_outbids() {
    let c = ladder_config(
        "pause",
        "max_fee_per_gas_gwei = 300\nmax_priority_fee_per_gas_gwei = 100",
        "",
    );
    let (mut r, _) = ladder_responder(&c, 0);
    for (contract, fee, tip) in [(0, 40, 3), (1, 250, 90)] {
        // The node's nonce lags the pause in flight; ours does not.
        r.prepare(&c.protected, head(0));
        let plan = plan_of(r.decide(&c.protected[contract], attack(fee, tip), BASE));
        assert!(plan.presigned && plan.outbids_attack, "{plan:?}");
        assert!(plan.max_fee_per_gas <= 300 * GWEI && plan.max_priority_fee_per_gas <= 100 * GWEI);
    }
    // Beyond the caps: nothing pre-signed fits, and the fresh pause is capped and says so.
    let plan = plan_of(r.decide(&c.protected[2], attack(1_000, 500), BASE));
    assert!(!plan.presigned);
    assert_eq!(
        fees_of(&plan),
        PauseFees { max_fee_per_gas: 300 * GWEI, max_priority_fee_per_gas: 100 * GWEI }
    );
    assert!(!plan.outbids_attack);
}

#[test]
fn after_a_pause_takes_the_nonce_the_next_contract_uses_the_next_one_never_a_reused_one() {
    let c = ladder_config("pause", "", "");
    let (mut r, signer) = ladder_responder(&c, 7);
    r.prepare(&c.protected, head(7));
    let first = plan_of(r.decide(&c.protected[0], attack(40, 3), BASE));
    assert_eq!((first.nonce, first.presigned), (7, true));
    // The other contracts' rungs were for nonce 7: not used, signed on the spot with 8.
    let second = plan_of(r.decide(&c.protected[1], attack(40, 3), BASE));
    assert_eq!((second.nonce, second.presigned), (8, false));
    assert_signed_by(&second, signer.address());
    // A refill (off the worker) moves the rest on to 9; the paused-in-flight contracts keep
    // theirs for a replacement.
    let refill = super::refill(&Mutex::new(r), &c.protected);
    assert_eq!((refill.contracts, refill.installed), (2, 2), "{refill:?}");
}

#[test]
fn refill_and_prepare_through_the_shared_lock_give_the_next_pause_its_rungs() {
    let c = ladder_config("pause", "", "");
    let (r, signer) = ladder_responder(&c, 7);
    let shared = Mutex::new(r);
    let report = super::prepare(&shared, &c.protected, head(7));
    assert_eq!(report.installed, 3);
    let first = plan_of(lock(&shared).decide(&c.protected[0], attack(40, 3), BASE));
    assert_eq!((first.nonce, first.presigned), (7, true));
    let report = super::refill(&shared, &c.protected);
    // Contract 0's rungs are still for its in-flight nonce; 1 and 2 are re-signed for 8.
    assert_eq!((report.contracts, report.installed), (2, 2), "{report:?}");
    let second = plan_of(lock(&shared).decide(&c.protected[1], attack(40, 3), BASE));
    assert_eq!((second.nonce, second.presigned), (8, true));
    assert_signed_by(&second, signer.address());
    let third = plan_of(lock(&shared).decide(&c.protected[2], attack(40, 3), BASE));
    assert_eq!((third.nonce, third.presigned), (9, false), "its rungs were for 8");
    let nonces = [first.nonce, second.nonce, third.nonce];
    assert_eq!(nonces, [7, 8, 9], "every pause its own nonce");
}

#[test]
fn a_job_signed_while_a_pause_took_its_nonce_is_not_installed_for_the_others() {
    let c = ladder_config("pause", "", "");
    let (mut r, _) = ladder_responder(&c, 7);
    let job = r.ladder_job(&c.protected, Some(head(7))).expect("a job");
    // A worker decides before the job is installed: nonce 7 is taken, signed on the spot.
    let first = plan_of(r.decide(&c.protected[0], attack(40, 3), BASE));
    assert_eq!((first.nonce, first.presigned), (7, false));
    let report = r.install(job.sign());
    // Only the contract whose pause is in flight at 7 keeps rungs for 7 (for a replacement).
    assert_eq!(report.installed, 1, "{report:?}");
    let next = plan_of(r.decide(&c.protected[1], attack(40, 3), BASE));
    assert_eq!((next.nonce, next.presigned), (8, false));
}

#[test]
fn a_replacement_takes_a_rung_at_least_an_eighth_over_the_pause_in_flight() {
    let c = ladder_config("pause", "", "");
    let (mut r, signer) = ladder_responder(&c, 7);
    r.prepare(&c.protected, head(7));
    let first = plan_of(r.decide(&c.protected[0], attack(40, 3), BASE));
    // A higher attack: the replacement keeps nonce 7, comes from the ladder, and is at least
    // 12.5% over the first pause on both fields and above the new attack.
    match r.decide(&c.protected[0], attack(60, 10), BASE) {
        Decision::Replace { plan, replaces } => {
            assert_eq!(replaces, first.tx_hash);
            assert_eq!((plan.nonce, plan.presigned), (7, true));
            assert!(fees_of(&plan).at_least(replacement_floor(
                first.max_fee_per_gas,
                first.max_priority_fee_per_gas
            )));
            assert!(plan.outbids_attack);
            // Tip 20 gwei is the least above 10 (and 5 × 1.125); with it, 8 × base fee + tip =
            // 100 gwei is the least max fee above 60 (4 × 10 + 20 only equals it).
            assert_eq!(
                fees_of(&plan),
                PauseFees { max_fee_per_gas: 100 * GWEI, max_priority_fee_per_gas: 20 * GWEI }
            );
            assert_signed_by(&plan, signer.address());
        }
        other => panic!("expected a replacement, got {other:?}"),
    }
    // After a prepare on the next head the in-flight contract gets rungs over its pause only.
    let report = r.prepare(&c.protected, head(7));
    assert_eq!(report.installed, 3);
    match r.decide(&c.protected[0], attack(200, 150), BASE) {
        Decision::Replace { plan, .. } => {
            assert_eq!((plan.nonce, plan.presigned), (7, true));
            assert_eq!(plan.max_priority_fee_per_gas, 500 * GWEI);
        }
        other => panic!("expected a replacement, got {other:?}"),
    }
}

#[test]
fn dry_run_uses_the_ladder_without_using_it_up_and_alert_signs_nothing() {
    let c = ladder_config("dry-run", "", "");
    let (mut r, _) = ladder_responder(&c, 7);
    r.prepare(&c.protected, head(7));
    for _ in 0..3 {
        let plan = plan_of(r.decide(&c.protected[0], attack(40, 3), BASE));
        assert_eq!((plan.nonce, plan.presigned), (7, true));
    }
    assert_eq!(r.in_flight().count(), 0);
    let c = ladder_config("alert", "", "");
    let (mut r, _) = ladder_responder(&c, 7);
    assert_eq!(r.prepare(&c.protected, head(7)).signed, 0);
    assert!(matches!(r.decide(&c.protected[0], attack(40, 3), BASE), Decision::Alert));
}

#[test]
fn a_paused_contract_gets_no_rungs_and_no_plan() {
    let c = ladder_config("pause", "", "");
    let (mut r, _) = ladder_responder(&c, 7);
    r.prepare(&c.protected, head(7));
    r.mark_paused(c.protected[1].address, "paused() is true");
    assert_eq!(r.presigned(), 50);
    assert_eq!(r.prepare(&c.protected, head(7)).contracts, 2);
    assert!(matches!(r.decide(&c.protected[1], attack(40, 3), BASE), Decision::Skip { .. }));
}

#[test]
fn block_guard_takes_a_rung_only_if_it_pays_twice_the_base_fee() {
    let c = ladder_config("pause", "", "");
    let (mut r, _) = ladder_responder(&c, 7);
    r.prepare(&c.protected, head(7));
    let plan = plan_of(r.decide(&c.protected[0], None, BASE));
    assert!(plan.presigned);
    // 2 gwei tip; 1.25 × base + tip is too little without an attack to beat: 2 × base + tip.
    assert_eq!(
        fees_of(&plan),
        PauseFees { max_fee_per_gas: 22 * GWEI, max_priority_fee_per_gas: 2 * GWEI }
    );
}

// ---- through a Safe ----

const SAFE: &str = "0x00000000000000000000000000000000000005af";

fn safe_address() -> Address {
    SAFE.parse().expect("address")
}

fn exec_transaction(plan: &PausePlan) -> crate::types::abi::ISafe::execTransactionCall {
    use alloy::sol_types::SolCall;
    let tx = TxEnvelope::decode_2718(&mut plan.raw.as_ref()).expect("decodes");
    assert_eq!(tx.to(), Some(safe_address()), "the guardian's tx goes to the Safe");
    crate::types::abi::ISafe::execTransactionCall::abi_decode(tx.input()).expect("execTransaction")
}

#[test]
fn through_a_safe_the_pause_is_exec_transaction_with_the_owners_eip712_signature() {
    let c = ladder_config("pause", "", &format!("safe = \"{SAFE}\""));
    let (mut r, signer) = ladder_responder(&c, 7);
    r.prepare(&c.protected, HeadNonces { safe_nonce: Some(3), ..head(7) });
    let mut plans = Vec::new();
    for (i, presigned) in [(0, true), (1, false)] {
        let plan = plan_of(r.decide(&c.protected[i], attack(40, 3), BASE));
        assert_eq!(plan.presigned, presigned);
        assert_signed_by(&plan, signer.address());
        plans.push(plan);
    }
    for (plan, safe_nonce) in plans.iter().zip([3, 4]) {
        // Guardian nonces 7 and 8 execute as Safe nonces 3 and 4.
        assert_eq!((plan.safe, plan.safe_nonce), (Some(safe_address()), Some(safe_nonce)));
        let call = exec_transaction(plan);
        assert_eq!(call.to, plan.contract);
        assert_eq!(call.data.as_ref(), &crate::config::PAUSE_SELECTOR);
        assert_eq!(call.operation, 0, "a call, never a delegatecall");
        assert!(
            call.safeTxGas.is_zero() && call.gasPrice.is_zero() && call.refundReceiver.is_zero()
        );
        assert_eq!(call.signatures.len(), 65);
        let hash = safe_tx_hash(31337, safe_address(), plan.contract, &call.data, safe_nonce);
        let v = call.signatures[64];
        assert!(v == 27 || v == 28, "an ECDSA signature over the hash itself, v = {v}");
        let sig = alloy::primitives::Signature::from_raw(&call.signatures).expect("65 bytes");
        assert_eq!(sig.recover_address_from_prehash(&hash).expect("recovers"), signer.address());
    }
}

#[test]
fn safe_tx_hash_follows_the_safe_contracts_typehashes() {
    use alloy::primitives::{U256, keccak256};
    use alloy::sol_types::SolValue;
    // Safe.sol 1.4.1's constants.
    let domain_typehash = keccak256("EIP712Domain(uint256 chainId,address verifyingContract)");
    assert_eq!(
        domain_typehash.to_string(),
        "0x47e79534a245952e8b16893a336b85a3d9ea9fa8c573f3d803afb92a79469218"
    );
    let safe_tx_typehash = keccak256(
        "SafeTx(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,uint256 baseGas,uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce)",
    );
    assert_eq!(
        safe_tx_typehash.to_string(),
        "0xbb8310d486368db6bd6f849402fdd73ad53d316b5a4b2644ad6efe0f941286d8"
    );
    let (to, data) = (
        Address::with_last_byte(0xaa),
        alloy::primitives::Bytes::from(crate::config::PAUSE_SELECTOR.to_vec()),
    );
    let domain = keccak256((domain_typehash, U256::from(31337), safe_address()).abi_encode());
    // abi.encode of the SafeTx fields: each one word.
    let words: [B256; 11] = [
        safe_tx_typehash,
        to.into_word(),
        B256::ZERO,
        keccak256(&data),
        B256::ZERO, // operation: call
        B256::ZERO,
        B256::ZERO,
        B256::ZERO,
        B256::ZERO,
        B256::ZERO,
        U256::from(5).into(),
    ];
    let inner = keccak256(words.concat());
    let mut packed = vec![0x19, 0x01];
    packed.extend_from_slice(domain.as_slice());
    packed.extend_from_slice(inner.as_slice());
    assert_eq!(safe_tx_hash(31337, safe_address(), to, &data, 5), keccak256(&packed));
}

#[test]
fn without_the_safes_nonce_the_owner_approves_as_the_sender() {
    let c = ladder_config("pause", "", &format!("safe = \"{SAFE}\""));
    let (mut r, signer) = ladder_responder(&c, 0);
    let plan = plan_of(r.decide(&c.protected[0], attack(40, 3), BASE));
    assert_eq!((plan.safe, plan.safe_nonce, plan.presigned), (Some(safe_address()), None, false));
    let call = exec_transaction(&plan);
    let sig = call.signatures.as_ref();
    assert_eq!(&sig[12..32], signer.address().as_slice(), "r = the owner");
    assert!(sig[..12].iter().all(|b| *b == 0) && sig[32..64].iter().all(|b| *b == 0));
    assert_eq!(sig[64], 1, "v = 1: approved by msg.sender");
    // The ladder without the Safe's nonce is signed the same way, and used.
    r.prepare(&c.protected, head(1));
    let plan = plan_of(r.decide(&c.protected[1], attack(40, 3), BASE));
    assert_eq!((plan.nonce, plan.presigned, plan.safe_nonce), (1, true, None));
    assert_eq!(exec_transaction(&plan).signatures[64], 1);
}

#[test]
fn as_a_module_the_pause_is_exec_transaction_from_module() {
    use alloy::sol_types::SolCall;
    let c = ladder_config("pause", "", &format!("safe = \"{SAFE}\"\nsafe_role = \"module\""));
    let (mut r, signer) = ladder_responder(&c, 0);
    // A Safe nonce given for a module is ignored: modules take none.
    r.prepare(&c.protected, HeadNonces { safe_nonce: Some(9), ..head(0) });
    let plan = plan_of(r.decide(&c.protected[0], attack(40, 3), BASE));
    assert_eq!((plan.presigned, plan.safe_nonce), (true, None));
    let tx = assert_signed_by(&plan, signer.address());
    assert_eq!(tx.to(), Some(safe_address()));
    let call = crate::types::abi::ISafe::execTransactionFromModuleCall::abi_decode(tx.input())
        .expect("execTransactionFromModule");
    assert_eq!((call.to, call.operation), (plan.contract, 0));
    assert_eq!(call.data.as_ref(), &crate::config::PAUSE_SELECTOR);
}

#[test]
fn a_gas_limit_too_low_for_the_safe_is_raised_to_its_floor() {
    let low = "pause_gas_limit = 60000";
    let c = ladder_config("pause", low, &format!("safe = \"{SAFE}\""));
    let (mut r, _) = ladder_responder(&c, 0);
    let floor =
        safe_pause_gas_floor(crate::config::SafeRole::Owner, &crate::config::PAUSE_SELECTOR);
    assert!(floor > 60_000, "{floor}");
    assert_eq!(plan_of(r.decide(&c.protected[0], attack(40, 3), BASE)).gas_limit, floor);
    // Enough already, or no Safe: as configured.
    let c = ladder_config("pause", "", &format!("safe = \"{SAFE}\""));
    let (mut r, _) = ladder_responder(&c, 0);
    assert_eq!(plan_of(r.decide(&c.protected[0], attack(40, 3), BASE)).gas_limit, 200_000);
    let c = ladder_config("pause", low, "");
    let (mut r, _) = ladder_responder(&c, 0);
    assert_eq!(plan_of(r.decide(&c.protected[0], attack(40, 3), BASE)).gas_limit, 60_000);
}
