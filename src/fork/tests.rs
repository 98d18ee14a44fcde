use std::sync::Arc;

use alloy::primitives::{Address, U256};
use revm::{database_interface::DatabaseRef, state::AccountInfo};

use super::*;

const A: Address = Address::with_last_byte(0xa);
const B: Address = Address::with_last_byte(0xb);

fn eth(n: u64) -> AccountInfo {
    AccountInfo::from_balance(U256::from(n))
}

fn balance(fork: &ForkCache, a: Address) -> Option<U256> {
    fork.basic_ref(a).expect("offline read").map(|i| i.balance)
}

#[test]
fn a_block_layer_moves_the_fork_forward_and_a_fetch_in_flight_never_overwrites_it() {
    let fork = ForkCache::new(10, None);
    fork.insert_account(A, eth(1));
    let mut block = StateLayer::new();
    block.set_account(A, Some(eth(2)));
    block.set_slot(A, U256::from(1), U256::from(7));
    fork.apply_layer(&block, 11);
    assert_eq!(fork.block(), 11);
    assert_eq!(balance(&fork, A), Some(U256::from(2)));
    assert_eq!(fork.storage_ref(A, U256::from(1)).expect("read"), U256::from(7));

    // A fetch that started at block 10 answers with the old value after block 11 landed: the
    // block's value stays.
    let request = StateRequest { accounts: vec![A], slots: vec![(A, U256::from(1))] };
    let answer = StateAnswer { accounts: vec![Some(eth(1))], slots: vec![U256::from(3)] };
    fork.store_fetched(fork.epoch(), &request, &answer);
    assert_eq!(balance(&fork, A), Some(U256::from(2)));
    assert_eq!(fork.storage_ref(A, U256::from(1)).expect("read"), U256::from(7));
}

#[test]
fn a_rewind_forgets_what_the_dropped_blocks_changed_and_drops_fetches_from_before_it() {
    let fork = ForkCache::new(10, None);
    fork.insert_account(B, eth(5));
    let mut block = StateLayer::new();
    block.set_account(A, Some(eth(2)));
    block.set_slot(A, U256::from(1), U256::from(7));
    fork.apply_layer(&block, 11);
    let epoch = fork.epoch();
    fork.rewind(&[ChangedKeys::of_layer(&block)], 10);
    assert_eq!(fork.block(), 10);
    assert_eq!(fork.cached_account(&A), None, "fetched again at the right block when read");
    assert_eq!(fork.cached_slot(&A, &U256::from(1)), None);
    assert_eq!(balance(&fork, B), Some(U256::from(5)), "untouched entries stay");

    // A fetch issued before the rewind may hold the dropped block's state: not kept.
    let request = StateRequest { accounts: vec![A], slots: vec![] };
    let answer = StateAnswer { accounts: vec![Some(eth(2))], slots: vec![] };
    fork.store_fetched(epoch, &request, &answer);
    assert_eq!(fork.cached_account(&A), None);
    assert_eq!(fork.stats().counts().stale_fetches, 1);
}

#[test]
fn a_destroyed_or_recreated_account_loses_its_old_slots() {
    let fork = ForkCache::new(1, None);
    fork.insert_account(A, eth(1));
    fork.insert_storage(A, U256::from(1), U256::from(9));
    fork.insert_storage(B, U256::from(1), U256::from(4));
    let mut block = StateLayer::new();
    block.clear_storage(A);
    block.set_account(A, None);
    fork.apply_layer(&block, 2);
    assert_eq!(fork.cached_slot(&A, &U256::from(1)), None);
    assert_eq!(fork.cached_slot(&B, &U256::from(1)), Some(U256::from(4)));
    assert_eq!(balance(&fork, A), None);
}

#[test]
fn a_view_reads_its_own_state_then_its_layers_then_the_fork_and_never_writes_the_fork() {
    let fork = Arc::new(ForkCache::new(1, None));
    fork.insert_account(A, eth(1));
    fork.insert_storage(A, U256::from(1), U256::from(1));
    let mut lower = StateLayer::new();
    lower.set_slot(A, U256::from(1), U256::from(2));
    lower.set_slot(A, U256::from(2), U256::from(20));
    let mut view = fork.view();
    view.set_layers(vec![Arc::new(lower)]);
    view.local_mut().set_slot(A, U256::from(1), U256::from(3));
    assert_eq!(view.storage_ref(A, U256::from(1)).expect("read"), U256::from(3));
    assert_eq!(view.storage_ref(A, U256::from(2)).expect("read"), U256::from(20));
    assert_eq!(view.basic_ref(A).expect("read").map(|i| i.balance), Some(U256::from(1)));
    assert_eq!(fork.storage_ref(A, U256::from(1)).expect("read"), U256::from(1));
    view.clear_layers();
    assert_eq!(view.storage_ref(A, U256::from(2)).expect("read"), U256::ZERO);
}

#[test]
fn eviction_keeps_pinned_accounts_and_recent_entries_and_brings_the_size_under_the_cap() {
    let limits = ForkLimits { max_entries: 100, max_age_blocks: 1_000 };
    let fork = ForkCache::with_source(0, None, limits);
    fork.pin([A]);
    fork.insert_account(A, AccountInfo::default());
    // A pinned account's slots: one per holder of a popular token, written at block 0.
    for slot in 0..50u64 {
        fork.insert_storage(A, U256::from(slot), U256::from(1));
    }
    // 200 entries written over 100 blocks, the newest last.
    for n in 0..200u64 {
        let mut layer = StateLayer::new();
        layer.set_slot(B, U256::from(n), U256::from(n));
        fork.apply_layer(&layer, n / 2 + 1);
    }
    let report = fork.evict();
    assert!(report.after <= 100, "{report:?}");
    assert_eq!(report.evicted, report.before - report.after);
    assert!(fork.cached_account(&A).is_some(), "the pinned account stays");
    assert!(
        (0..50u64).all(|s| fork.cached_slot(&A, &U256::from(s)).is_none()),
        "its slots unused for 100 blocks age out like any other: pinning them would keep every holder"
    );
    assert!(fork.cached_slot(&B, &U256::from(199)).is_some(), "the newest stay");
    assert!(fork.cached_slot(&B, &U256::from(0)).is_none(), "the oldest go");
    assert_eq!(fork.stats().counts().evicted, report.evicted as u64);
}

#[test]
fn entries_unused_for_longer_than_the_age_limit_go_at_the_periodic_sweep() {
    let limits = ForkLimits { max_entries: 1_000_000, max_age_blocks: 100 };
    let fork = ForkCache::with_source(0, None, limits);
    fork.insert_storage(B, U256::from(1), U256::from(1));
    let mut layer = StateLayer::new();
    layer.set_slot(A, U256::from(1), U256::from(1));
    fork.apply_layer(&layer, 250);
    let mut layer = StateLayer::new();
    layer.set_slot(A, U256::from(2), U256::from(1));
    fork.apply_layer(&layer, 256);
    let report = fork.evict();
    assert_eq!(report.evicted, 1, "{report:?}");
    assert!(fork.cached_slot(&B, &U256::from(1)).is_none());
    assert!(fork.cached_slot(&A, &U256::from(1)).is_some());
}

#[test]
fn mapping_slot_is_solidity_keccak_of_key_and_base() {
    // keccak256(abi.encode(address(0x…01), uint256(0))), as solc lays out `mapping[key]` at slot 0.
    let key = Address::with_last_byte(1);
    let mut preimage = [0u8; 64];
    preimage[31] = 1;
    let expected = U256::from_be_bytes(alloy::primitives::keccak256(preimage).0);
    assert_eq!(super::mapping_slot(key, 0), expected);
    assert_ne!(super::mapping_slot(key, 1), expected);
}
