use std::{path::Path, time::Duration};

use alloy::primitives::{Address, B256, Bytes, U256};

use super::{detect, rule_names};
use crate::{
    config::{Asset, Config},
    types::{
        AccountedBy, AssetLedger, Authority, CallFrame, ContractLedger, Evidence, Flow,
        InvariantReading, InvariantValue, PriceRead, ReentryObservation, RoleChange, Severity,
        SimOutcome,
    },
};

const VAULT: Address = Address::with_last_byte(0xaa);
const USER: Address = Address::with_last_byte(0x01);
const OWNER: Address = Address::with_last_byte(0x0e);

fn config() -> Config {
    let text = format!(
        r#"
[[protect]]
name = "Vault"
address = "{VAULT}"
drain_threshold_bps = 1000
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
        ledgers: Vec::new(),
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

fn ledger(before: u64, after: u64, unaccounted: u64) -> ContractLedger {
    let out = eth(before - after);
    ContractLedger {
        contract: VAULT,
        assets: vec![AssetLedger {
            asset: Asset::Eth,
            symbol: Some("ETH".into()),
            decimals: 18,
            before: eth(before),
            after: eth(after),
            flows: vec![Flow { account: USER, out, inflow: U256::ZERO }],
            accounted: if unaccounted < before - after {
                vec![crate::types::Accounting {
                    account: USER,
                    amount: out - eth(unaccounted),
                    by: AccountedBy::OwnEntry {
                        slot: U256::from(7),
                        before: out,
                        after: U256::ZERO,
                    },
                }]
            } else {
                Vec::new()
            },
            unaccounted: eth(unaccounted),
        }],
        authority: None,
        role_changes: Vec::new(),
        price_reads: Vec::new(),
        pulls: Vec::new(),
        debits: Vec::new(),
        storage: Vec::new(),
        actors: vec![USER],
        tx_hash: B256::ZERO,
    }
}

fn with(l: ContractLedger) -> SimOutcome {
    let mut o = outcome();
    o.ledgers.push(l);
    o
}

#[test]
fn a_loss_the_books_account_for_is_not_a_drain() {
    // 90% of the vault leaves, all of it booked against the withdrawer's own entry.
    assert!(detect(&with(ledger(100, 10, 0)), &config().protected).is_empty());
}

#[test]
fn an_unaccounted_loss_over_the_threshold_is_a_drain_with_the_numbers() {
    let findings = detect(&with(ledger(100, 70, 20)), &config().protected);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, rule_names::DRAIN);
    assert_eq!(findings[0].severity, Severity::High);
    match &findings[0].evidence {
        Evidence::Drain { unmatched_loss, loss_bps, threshold_bps, accounted, .. } => {
            assert_eq!(*unmatched_loss, eth(20));
            assert_eq!(*loss_bps, 2_000);
            assert_eq!(*threshold_bps, 1_000);
            assert_eq!(accounted.len(), 1, "the booked part is shown");
        }
        other => panic!("unexpected evidence {other:?}"),
    }
    // Below the threshold: nothing.
    assert!(detect(&with(ledger(100, 95, 5)), &config().protected).is_empty());
}

#[test]
fn the_same_loss_on_the_authority_of_a_key_held_before_is_an_admin_action_not_a_drain() {
    let mut l = ledger(100, 0, 100);
    l.authority = Some(Authority { account: OWNER, held: "owner()".into() });
    let findings = detect(&with(l), &config().protected);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, rule_names::ADMIN_ACTION);
    assert_eq!(findings[0].severity, Severity::Info);
    let policy = crate::respond::Policy::default();
    assert_eq!(policy.action_for(&findings[0]), crate::respond::Action::Alert);
}

#[test]
fn a_role_given_by_a_stranger_is_a_takeover_and_by_its_holder_an_admin_action() {
    let change = |by_authority: Option<&str>| RoleChange {
        contract: VAULT,
        role: "owner".into(),
        from: Some(OWNER),
        to: Some(USER),
        by: USER,
        by_authority: by_authority.map(String::from),
    };
    let mut l = ledger(100, 100, 0);
    l.role_changes.push(change(None));
    let findings = detect(&with(l.clone()), &config().protected);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].rule, rule_names::ROLE_TAKEOVER);
    assert_eq!(findings[0].severity, Severity::Critical);
    l.role_changes = vec![change(Some("owner()"))];
    let findings = detect(&with(l), &config().protected);
    assert_eq!(findings[0].rule, rule_names::ADMIN_ACTION);
}

#[test]
fn a_price_read_that_moved_past_its_bound_with_a_priced_loss_is_manipulation() {
    let read = |moved_bps| PriceRead {
        target: Address::with_last_byte(0x50),
        selector: [0x09, 0x02, 0xf1, 0xac],
        input: Bytes::new(),
        before: vec![U256::from(100)],
        during: vec![U256::from(300)],
        after: vec![U256::from(100)],
        moved_bps,
    };
    // A borrow of 5% booked as a liability, at a price pumped 200%: below any drain threshold.
    let mut l = ledger(100, 95, 0);
    l.assets[0].accounted[0].by =
        AccountedBy::Debt { slot: U256::from(9), before: U256::ZERO, after: eth(5) };
    l.price_reads.push(read(20_000));
    let findings = detect(&with(l.clone()), &config().protected);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, rule_names::PRICE_MANIPULATION);
    // Within the bound (5% by default): nothing.
    l.price_reads = vec![read(200)];
    assert!(detect(&with(l), &config().protected).is_empty());
    // Own funds withdrawn while a price moved: no price sets them.
    let mut own = ledger(100, 95, 0);
    own.price_reads.push(read(20_000));
    assert!(detect(&with(own), &config().protected).is_empty());
}

#[test]
fn reverted_tx_yields_nothing() {
    let mut o = with(ledger(100, 0, 100));
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

fn reentered() -> SimOutcome {
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
        double_payout: None,
    });
    o
}

#[test]
fn a_reentry_with_value_gone_is_critical_and_without_consequence_is_low() {
    // Value left that the books do not account for (below the drain threshold).
    let mut o = reentered();
    o.ledgers.push(ledger(100, 95, 5));
    let findings = detect(&o, &config().protected);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, rule_names::REENTRANCY);
    assert_eq!(findings[0].severity, Severity::Critical);
    match &findings[0].evidence {
        Evidence::Reentrancy { path, stale_slots, .. } => {
            assert_eq!(path.iter().map(|f| f.index).collect::<Vec<_>>(), vec![0, 1, 2]);
            assert_eq!(stale_slots, &vec![U256::from(1)]);
        }
        other => panic!("unexpected evidence {other:?}"),
    }
    // The same re-entry with everything booked (a flash loan that repays): low, record only.
    let mut o = reentered();
    o.ledgers.push(ledger(100, 50, 0));
    let findings = detect(&o, &config().protected);
    assert_eq!(findings[0].severity, Severity::Low);
    let policy = crate::respond::Policy::default();
    assert_eq!(policy.action_for(&findings[0]), crate::respond::Action::Record);
    o.reentries[0].inner_read_only = true;
    let findings = detect(&o, &config().protected);
    assert_eq!(findings[0].rule, rule_names::READ_ONLY_REENTRANCY);
    assert_eq!(findings[0].severity, Severity::Low);
}

/// A pending tx `n` at `block` taking `unaccounted` ETH of the vault's 100 that nothing books.
fn take(n: u8, block: u64, unaccounted: u64) -> SimOutcome {
    let mut o = with(ledger(100, 100 - unaccounted, unaccounted));
    o.tx_hash = B256::repeat_byte(n);
    o.block_number = block;
    o
}

#[test]
fn takes_each_under_the_threshold_are_one_finding_once_their_sum_crosses_it() {
    let protected = config().protected;
    let tracker = super::CumulativeTracker::new(10, None);
    // 4 ETH a tx against a 10% threshold: the third tx brings the sum to 12%.
    assert!(super::CumulativeTracker::counts(&take(1, 5, 4), &protected));
    assert!(detect(&take(1, 5, 4), &protected).is_empty(), "each tx is under the drain rule");
    assert!(tracker.observe(&take(1, 5, 4), &protected).is_empty());
    // The same tx seen again (pending, then mined) is counted once.
    assert!(tracker.observe(&take(1, 6, 4), &protected).is_empty());
    assert!(tracker.observe(&take(2, 6, 4), &protected).is_empty());
    let found = tracker.observe(&take(3, 6, 4), &protected);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].rule, rule_names::CUMULATIVE_DRAIN);
    match &found[0].evidence {
        Evidence::CumulativeDrain(e) => {
            assert_eq!(e.actor, USER);
            assert_eq!(e.sum_bps, 1200);
            assert_eq!(e.threshold_bps, 1000);
            let txs: Vec<B256> = e.takes.iter().map(|t| t.tx).collect();
            assert_eq!(txs, [1, 2, 3].map(B256::repeat_byte));
            assert_eq!(e.takes[0].block, 6, "the repeat replaced the first sighting");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn takes_older_than_the_window_drop_out_of_the_sum_without_a_sweep() {
    let protected = config().protected;
    let tracker = super::CumulativeTracker::new(10, None);
    for n in 1..=2 {
        assert!(tracker.observe(&take(n, 5, 4), &protected).is_empty());
    }
    // Block 16: the takes of block 5 are past the 10-block window; no guard has swept yet.
    assert!(tracker.observe(&take(3, 16, 4), &protected).is_empty(), "8% of the window");
    assert!(tracker.observe(&take(4, 16, 4), &protected).is_empty());
    assert_eq!(tracker.observe(&take(5, 16, 4), &protected).len(), 1, "12% within it");
    // The guard's sweep drops what the window left behind, key by key.
    tracker.prune(40);
    assert!(tracker.is_empty());
}

#[test]
fn a_loss_the_books_account_for_or_a_failed_tx_is_never_summed() {
    let protected = config().protected;
    let booked = with(ledger(100, 96, 0));
    let mut failed = take(1, 5, 4);
    failed.success = false;
    for o in [&booked, &failed] {
        assert!(!super::CumulativeTracker::counts(o, &protected));
    }
    let tracker = super::CumulativeTracker::new(10, None);
    for _ in 0..5 {
        assert!(tracker.observe(&booked, &protected).is_empty());
        assert!(tracker.observe(&failed, &protected).is_empty());
    }
    assert!(tracker.is_empty());
}

#[test]
fn a_tx_seen_again_after_older_takes_left_the_window_replaces_its_own_take() {
    let protected = config().protected;
    let tracker = super::CumulativeTracker::new(10, None);
    assert!(tracker.observe(&take(1, 5, 4), &protected).is_empty());
    assert!(tracker.observe(&take(2, 10, 4), &protected).is_empty());
    // Block 16: tx 1 has left the window; tx 2, mined now, is counted once, not twice.
    assert!(tracker.observe(&take(2, 16, 4), &protected).is_empty());
    assert!(tracker.observe(&take(3, 16, 4), &protected).is_empty(), "8%");
    let found = tracker.observe(&take(4, 16, 4), &protected);
    let [finding] = found.as_slice() else { panic!("{found:?}") };
    let Evidence::CumulativeDrain(e) = &finding.evidence else { panic!("{finding:?}") };
    assert_eq!(e.sum_bps, 1200);
    let txs: Vec<B256> = e.takes.iter().map(|t| t.tx).collect();
    assert_eq!(txs, [2, 3, 4].map(B256::repeat_byte));
}
