use std::{path::Path, time::Duration};

use alloy::primitives::{Address, B256, U256};

use super::{detect, rule_names};
use crate::{
    config::{Asset, Config},
    types::{
        CallFrame, ClaimReading, Evidence, HoldingChange, InvariantReading, InvariantValue,
        ReentryObservation, SimOutcome,
    },
};

const VAULT: Address = Address::with_last_byte(0xaa);
const USER: Address = Address::with_last_byte(0x01);

fn config() -> Config {
    let text = format!(
        r#"
[[protect]]
name = "Vault"
address = "{VAULT}"
drain_threshold_bps = 1000
claims = [{{ view = "balances(address)", asset = "eth" }}]
invariants = ["totalAssets() >= totalDeposits()"]
"#
    );
    Config::parse(&text, Path::new("test.toml")).expect("valid config")
}

fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

fn outcome() -> SimOutcome {
    SimOutcome {
        tx_hash: B256::ZERO,
        from: USER,
        to: Some(VAULT),
        success: true,
        gas_used: 50_000,
        failure: None,
        frames: vec![frame(0, None, USER, VAULT)],
        transfers: Vec::new(),
        holdings: Vec::new(),
        claims: Vec::new(),
        invariants: Vec::new(),
        reentries: Vec::new(),
        touched_protected: vec![VAULT],
        sim_time: Duration::from_micros(10),
        block_number: 1,
    }
}

fn frame(index: usize, parent: Option<usize>, caller: Address, target: Address) -> CallFrame {
    CallFrame {
        index,
        parent,
        depth: parent.map_or(0, |_| 1),
        caller,
        target,
        code: target,
        scheme: "CALL",
        value: U256::ZERO,
        selector: None,
        success: true,
        gas_used: 0,
    }
}

fn withdrawal(before: u64, after: u64, claim_before: u64, claim_after: u64) -> SimOutcome {
    let mut o = outcome();
    o.holdings.push(HoldingChange {
        contract: VAULT,
        asset: Asset::Eth,
        before: eth(before),
        after: eth(after),
        recipients: vec![(USER, eth(before - after))],
    });
    o.claims.push(ClaimReading {
        contract: VAULT,
        asset: Asset::Eth,
        view: "balances(address)".into(),
        account: USER,
        before: eth(claim_before),
        after: eth(claim_after),
    });
    o
}

#[test]
fn withdrawal_matched_by_the_withdrawers_claim_is_not_a_drain() {
    // 90% of the vault leaves, and the withdrawer's own claim drops by exactly that.
    let findings = detect(&withdrawal(100, 10, 90, 0), &config().protected);
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn outflow_beyond_the_claim_is_a_drain_with_numbers() {
    // 30 ETH leave against a claim of 10: 20 ETH (20% of holdings) unmatched, threshold 10%.
    let findings = detect(&withdrawal(100, 70, 10, 0), &config().protected);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, rule_names::DRAIN);
    match &findings[0].evidence {
        Evidence::Drain { unmatched_loss, loss_bps, threshold_bps, .. } => {
            assert_eq!(*unmatched_loss, eth(20));
            assert_eq!(*loss_bps, 2_000);
            assert_eq!(*threshold_bps, 1_000);
        }
        other => panic!("unexpected evidence {other:?}"),
    }
}

#[test]
fn loss_below_threshold_is_not_reported() {
    let findings = detect(&withdrawal(100, 95, 0, 0), &config().protected);
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn a_claim_that_grows_matches_nothing() {
    // The classic unchecked underflow: the attacker's claim wraps upwards while ETH leaves.
    let mut o = withdrawal(100, 40, 1, 0);
    o.claims[0].after = U256::MAX;
    let findings = detect(&o, &config().protected);
    assert_eq!(findings.len(), 1);
    assert!(
        matches!(findings[0].evidence, Evidence::Drain { unmatched_loss, .. } if unmatched_loss == eth(60))
    );
}

#[test]
fn reverted_tx_yields_nothing() {
    let mut o = withdrawal(100, 0, 0, 0);
    o.success = false;
    assert!(detect(&o, &config().protected).is_empty());
}

#[test]
fn invariant_broken_by_the_tx_is_reported_but_one_already_broken_is_not() {
    let mut o = outcome();
    o.invariants.push(InvariantReading {
        contract: VAULT,
        invariant: "totalAssets() >= totalDeposits()".into(),
        before: InvariantValue::Holds { lhs: Some(eth(10)), rhs: Some(eth(10)) },
        after: InvariantValue::Violated { lhs: Some(eth(1)), rhs: Some(eth(10)), op: None },
    });
    let findings = detect(&o, &config().protected);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].rule, rule_names::INVARIANT);

    o.invariants[0].before = InvariantValue::Violated { lhs: None, rhs: None, op: None };
    assert!(detect(&o, &config().protected).is_empty());
    o.invariants[0].before = InvariantValue::Holds { lhs: None, rhs: None };
    o.invariants[0].after = InvariantValue::Unreadable { reason: "reverted".into() };
    assert!(detect(&o, &config().protected).is_empty(), "an unreadable view is not a violation");
}

#[test]
fn reentry_with_stale_reads_is_reentrancy_and_a_reading_one_is_read_only() {
    let attacker = Address::with_last_byte(0xbb);
    let mut o = outcome();
    o.frames = vec![
        frame(0, None, USER, VAULT),
        frame(1, Some(0), VAULT, attacker),
        frame(2, Some(1), attacker, VAULT),
    ];
    o.reentries.push(ReentryObservation {
        contract: VAULT,
        outer_frame: 0,
        inner_frame: 2,
        inner_read_only: false,
        stale_slots: vec![U256::from(1)],
    });
    let findings = detect(&o, &config().protected);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].rule, rule_names::REENTRANCY);
    match &findings[0].evidence {
        Evidence::Reentrancy { path, stale_slots, .. } => {
            assert_eq!(path.iter().map(|f| f.index).collect::<Vec<_>>(), vec![0, 1, 2]);
            assert_eq!(stale_slots, &vec![U256::from(1)]);
        }
        other => panic!("unexpected evidence {other:?}"),
    }

    o.reentries[0].inner_read_only = true;
    let findings = detect(&o, &config().protected);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].rule, rule_names::READ_ONLY_REENTRANCY);
}
