//! The books of a protected contract for one tx, from facts alone: per asset, who took what
//! and paid what in, and how much of each outflow the contract's own accounting stands for —
//! the taker's own entry going down, its shares burnt with the supply, a liability it took on,
//! a position it closed for its owner, or a fair trade by the contract's own reserves. What no
//! one accounts for is the loss the drain rule judges.

use alloy::primitives::{Address, U256};

use crate::{
    config::Asset,
    types::{AccountedBy, Accounting, AssetLedger, CallFrame, Flow, SlotChange, TokenTransfer},
};

/// An entry that went down by at least this share of what was taken accounts for all of it
/// (a fee kept back is fine); in parts per ten thousand.
const MATCH_FLOOR_BPS: u64 = 9_900;
/// A liability or a closed position must match what was taken this closely.
const EXACT_BPS: u64 = 100;
/// A fair trade may leave the reserves' product this much lower (rounding), in ppm.
const PRODUCT_SLACK_PPM: u64 = 100;

/// Who took and who paid in `asset`, by counterparty, from call values and ERC-20 transfers.
pub(crate) fn flows(
    contract: Address,
    asset: &Asset,
    frames: &[CallFrame],
    transfers: &[TokenTransfer],
) -> Vec<Flow> {
    let mut flows: Vec<Flow> = Vec::new();
    let mut add = |account: Address, out: U256, inflow: U256| match flows
        .iter_mut()
        .find(|f| f.account == account)
    {
        Some(f) => {
            f.out = f.out.saturating_add(out);
            f.inflow = f.inflow.saturating_add(inflow);
        }
        None => flows.push(Flow { account, out, inflow }),
    };
    match asset {
        Asset::Eth => {
            for f in frames.iter().filter(|f| f.success && !f.value.is_zero()) {
                if f.caller == contract && f.target != contract {
                    add(f.target, f.value, U256::ZERO);
                } else if f.target == contract && f.caller != contract {
                    add(f.caller, U256::ZERO, f.value);
                }
            }
        }
        Asset::Token(token) => {
            for t in transfers.iter().filter(|t| t.token == *token && t.from != t.to) {
                if t.from == contract {
                    add(t.to, t.value, U256::ZERO);
                } else if t.to == contract {
                    add(t.from, U256::ZERO, t.value);
                }
            }
        }
    }
    flows
}

fn bps_of(a: U256, of: U256) -> U256 {
    if of.is_zero() {
        return U256::MAX;
    }
    a.saturating_mul(U256::from(10_000u64)) / of
}

fn within(a: U256, b: U256, tolerance_bps: u64) -> bool {
    let diff = if a > b { a - b } else { b - a };
    diff.saturating_mul(U256::from(10_000u64)) <= b.saturating_mul(U256::from(tolerance_bps))
}

/// The books of one asset: flows known, nothing accounted yet.
pub(crate) fn asset_ledger(
    asset: Asset,
    before: U256,
    after: U256,
    flows: Vec<Flow>,
) -> AssetLedger {
    let unaccounted = before.saturating_sub(after);
    let (symbol, decimals) = match asset {
        Asset::Eth => (Some("ETH".to_string()), 18),
        Asset::Token(_) => (None, 18),
    };
    AssetLedger {
        asset,
        symbol,
        decimals,
        before,
        after,
        flows,
        accounted: Vec::new(),
        unaccounted,
    }
}

/// What each net taker still needs accounted for in this asset.
fn open_needs(ledger: &AssetLedger) -> Vec<(Address, U256)> {
    ledger
        .flows
        .iter()
        .filter(|f| f.out > f.inflow)
        .map(|f| {
            let done = ledger
                .accounted
                .iter()
                .filter(|a| a.account == f.account)
                .fold(U256::ZERO, |s, a| s.saturating_add(a.amount));
            (f.account, (f.out - f.inflow).saturating_sub(done))
        })
        .filter(|(_, need)| !need.is_zero())
        .collect()
}

/// Records `amount` of `account`'s take as accounted for by `by`, and lowers what is left.
pub(crate) fn account(ledger: &mut AssetLedger, account: Address, amount: U256, by: AccountedBy) {
    if amount.is_zero() {
        return;
    }
    ledger.unaccounted = ledger.unaccounted.saturating_sub(amount);
    ledger.accounted.push(Accounting { account, amount, by });
}

/// Accounts for takers' outflows from the contract's own storage changes (no views needed):
/// shares burnt with the supply, the taker's own entry going down, a liability it took on, or a
/// position it closed for its owner. `paid_in`: takers that paid any asset into the contract.
pub(crate) fn account_from_storage(
    ledger: &mut AssetLedger,
    storage: &[SlotChange],
    paid_in: &[Address],
) {
    if ledger.unaccounted.is_zero() {
        return;
    }
    let mut used: Vec<U256> = Vec::new();
    for (taker, need) in open_needs(ledger) {
        if ledger.unaccounted.is_zero() {
            break;
        }
        // An entry matching the take exactly is the surest; a share burn next (its units
        // differ from the asset's); a partial booking only when nothing else fits.
        if let Some((amount, by, slot)) = own_entry(storage, &taker, need, &used, true)
            .or_else(|| shares_burnt(ledger, storage, &taker, need, &used))
            .or_else(|| own_entry(storage, &taker, need, &used, false))
            .or_else(|| debt_taken(storage, &taker, need, paid_in, &used))
            .or_else(|| position_closed(storage, &taker, need, &used))
        {
            used.push(slot);
            account(ledger, taker, amount, by);
        }
    }
}

/// The taker's shares went down by `s`, and an unkeyed slot (the supply) by exactly `s`: it was
/// paid `s / supply` of the holdings.
fn shares_burnt(
    ledger: &AssetLedger,
    storage: &[SlotChange],
    taker: &Address,
    need: U256,
    used: &[U256],
) -> Option<(U256, AccountedBy, U256)> {
    for entry in storage.iter().filter(|c| !used.contains(&c.slot) && c.after < c.before) {
        if !entry.key.as_ref().is_some_and(|k| k.keyed_by(taker)) {
            continue;
        }
        let shares = entry.decrease();
        let Some(supply) = storage
            .iter()
            .find(|c| c.key.is_none() && c.after < c.before && c.decrease() == shares)
        else {
            continue;
        };
        let value = shares.saturating_mul(ledger.before) / supply.before.max(U256::from(1));
        // Pro rata within 10% (rounding, fees, assets the contract counts elsewhere) is the
        // exit; far from it, this entry and supply are in other units (a debt and its total).
        if value.saturating_mul(U256::from(10u64)) < need.saturating_mul(U256::from(9u64)) {
            continue;
        }
        let amount = need;
        let by = AccountedBy::Shares {
            slot: entry.slot,
            supply_slot: supply.slot,
            shares,
            supply_before: supply.before,
            holdings_before: ledger.before,
        };
        return Some((amount, by, entry.slot));
    }
    None
}

/// The taker's own entry went down: all of the take when by ~the take (99% to 5% over: a fee
/// kept back); with `exact` false, a smaller drop accounts for as much as it went down (a
/// partial booking; a drop 1,000× smaller is another unit, not a booking).
fn own_entry(
    storage: &[SlotChange],
    taker: &Address,
    need: U256,
    used: &[U256],
    exact: bool,
) -> Option<(U256, AccountedBy, U256)> {
    let mut entries = storage
        .iter()
        .filter(|c| !used.contains(&c.slot) && c.after < c.before)
        .filter(|c| c.key.as_ref().is_some_and(|k| k.keyed_by(taker)));
    let entry = if exact {
        entries.find(|c| {
            let bps = bps_of(c.decrease(), need);
            bps >= U256::from(MATCH_FLOOR_BPS) && bps <= U256::from(10_500u64)
        })?
    } else {
        entries.max_by_key(|c| c.decrease())?
    };
    let drop = entry.decrease();
    let amount = if bps_of(drop, need) >= U256::from(MATCH_FLOOR_BPS) {
        need
    } else if drop.saturating_mul(U256::from(1_000u64)) >= need {
        drop
    } else {
        return None;
    };
    Some((
        amount,
        AccountedBy::OwnEntry { slot: entry.slot, before: entry.before, after: entry.after },
        entry.slot,
    ))
}

/// The taker's entry went up by what it took (a borrow booked as its liability) — only when
/// nothing else of the taker's went up for free: credit it did not pay for is how phantom
/// collateral drains a pool.
fn debt_taken(
    storage: &[SlotChange],
    taker: &Address,
    need: U256,
    paid_in: &[Address],
    used: &[U256],
) -> Option<(U256, AccountedBy, U256)> {
    let keyed = |c: &&SlotChange| c.key.as_ref().is_some_and(|k| k.keyed_by(taker));
    let debt = storage
        .iter()
        .filter(keyed)
        .filter(|c| !used.contains(&c.slot) && c.after > c.before)
        .find(|c| within(c.increase(), need, EXACT_BPS))?;
    let other_credit =
        storage.iter().filter(keyed).any(|c| c.slot != debt.slot && c.after > c.before);
    if other_credit && !paid_in.contains(taker) {
        return None;
    }
    Some((
        need,
        AccountedBy::Debt { slot: debt.slot, before: debt.before, after: debt.after },
        debt.slot,
    ))
}

/// Another account's entry went down by what the taker got, and another of that account's
/// entries went down too (its liability repaid): the taker closed that account's position.
fn position_closed(
    storage: &[SlotChange],
    taker: &Address,
    need: U256,
    used: &[U256],
) -> Option<(U256, AccountedBy, U256)> {
    for entry in storage.iter().filter(|c| !used.contains(&c.slot) && c.after < c.before) {
        let Some(key) = &entry.key else { continue };
        if !within(entry.decrease(), need, EXACT_BPS) {
            continue;
        }
        for owner in key.addresses().filter(|a| a != taker) {
            let repaid = storage.iter().any(|c| {
                c.slot != entry.slot
                    && c.after < c.before
                    && c.key.as_ref().is_some_and(|k| k.keyed_by(&owner))
            });
            if repaid {
                let by = AccountedBy::Position {
                    owner,
                    slot: entry.slot,
                    before: entry.before,
                    after: entry.after,
                };
                return Some((need, by, entry.slot));
            }
        }
    }
    None
}

/// A contract holding two assets that lost one and gained the other: if the product of its
/// reserves did not fall, the takers traded at its own price (an AMM's swap).
pub(crate) fn account_exchange(ledgers: &mut [AssetLedger]) {
    let live: Vec<usize> = (0..ledgers.len())
        .filter(|i| !(ledgers[*i].before.is_zero() && ledgers[*i].after.is_zero()))
        .collect();
    let [a, b] = live[..] else { return };
    let product_before = ledgers[a].before.saturating_mul(ledgers[b].before);
    let product_after = ledgers[a].after.saturating_mul(ledgers[b].after);
    let slack = product_before / U256::from(1_000_000u64) * U256::from(PRODUCT_SLACK_PPM);
    if product_after.saturating_add(slack) < product_before {
        return;
    }
    for (lost, gained) in [(a, b), (b, a)] {
        if ledgers[lost].unaccounted.is_zero() {
            continue;
        }
        let gained_asset = ledgers[gained].asset;
        let payers: Vec<(Address, U256)> = ledgers[gained]
            .flows
            .iter()
            .filter(|f| f.inflow > f.out)
            .map(|f| (f.account, f.inflow - f.out))
            .collect();
        for (taker, need) in open_needs(&ledgers[lost]) {
            // The trade's counterparty is whoever paid the other asset in (the taker itself, or
            // a router paying for it).
            let paid: Vec<(crate::config::Asset, U256)> = payers
                .iter()
                .filter(|(p, _)| *p == taker || payers.len() == 1)
                .map(|(_, v)| (gained_asset, *v))
                .collect();
            if paid.is_empty() {
                continue;
            }
            let by = AccountedBy::Exchange { paid, product_before, product_after };
            account(&mut ledgers[lost], taker, need, by);
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::B256;

    use super::*;
    use crate::types::MappingKey;

    const P: Address = Address::with_last_byte(0xaa);
    const ALICE: Address = Address::with_last_byte(0x01);
    const BOB: Address = Address::with_last_byte(0x02);

    fn eth(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18))
    }

    fn keyed(slot: u64, who: Address, before: U256, after: U256) -> SlotChange {
        SlotChange {
            address: P,
            slot: U256::from(slot),
            before,
            after,
            key: Some(MappingKey { base: U256::from(1), keys: vec![who.into_word()], field: 0 }),
        }
    }

    fn plain(slot: u64, before: U256, after: U256) -> SlotChange {
        SlotChange { address: P, slot: U256::from(slot), before, after, key: None }
    }

    fn taking(who: Address, out: U256, before: U256) -> AssetLedger {
        asset_ledger(
            Asset::Eth,
            before,
            before - out,
            vec![Flow { account: who, out, inflow: U256::ZERO }],
        )
    }

    #[test]
    fn a_withdrawal_of_ones_own_entry_is_accounted_and_a_take_beyond_it_is_not() {
        // The whale takes 90 of 100 and its entry goes down by 90.
        let mut whale = taking(ALICE, eth(90), eth(100));
        account_from_storage(&mut whale, &[keyed(10, ALICE, eth(90), U256::ZERO)], &[]);
        assert_eq!(whale.unaccounted, U256::ZERO);
        // Re-entered: 110 out against an entry of 10.
        let mut drained = taking(ALICE, eth(110), eth(200));
        account_from_storage(&mut drained, &[keyed(10, ALICE, eth(10), U256::ZERO)], &[]);
        assert_eq!(drained.unaccounted, eth(100));
        // Someone else's entry going down accounts for nothing of Alice's take.
        let mut other = taking(ALICE, eth(50), eth(100));
        account_from_storage(&mut other, &[keyed(10, BOB, eth(50), U256::ZERO)], &[]);
        assert_eq!(other.unaccounted, eth(50));
    }

    #[test]
    fn shares_burnt_with_the_supply_pay_pro_rata_whatever_the_share_price() {
        // 150 of assets for 100 of 200 shares: the share price is 1.5.
        let mut exit = taking(ALICE, eth(150), eth(300));
        let storage = [keyed(10, ALICE, eth(100), U256::ZERO), plain(2, eth(200), eth(100))];
        account_from_storage(&mut exit, &storage, &[]);
        assert_eq!(exit.unaccounted, U256::ZERO, "{:?}", exit.accounted);
        assert!(matches!(exit.accounted[0].by, AccountedBy::Shares { .. }));
        // Paid 200 for the same 100 shares: 50 over pro rata, so the burn is not taken as the
        // exit, and at least the excess stays unaccounted.
        let mut over = taking(ALICE, eth(200), eth(300));
        account_from_storage(&mut over, &storage, &[]);
        assert!(over.unaccounted >= eth(50), "{}", over.unaccounted);
    }

    #[test]
    fn a_borrow_is_accounted_as_a_liability_unless_the_collateral_came_for_free() {
        let debt = keyed(11, ALICE, U256::ZERO, eth(40));
        let mut borrow = taking(ALICE, eth(40), eth(100));
        account_from_storage(&mut borrow, std::slice::from_ref(&debt), &[]);
        assert_eq!(borrow.unaccounted, U256::ZERO);
        // Collateral credited in the same tx with nothing paid in: phantom collateral.
        let collateral = keyed(12, ALICE, U256::ZERO, eth(1_000));
        let mut phantom = taking(ALICE, eth(40), eth(100));
        account_from_storage(&mut phantom, &[debt.clone(), collateral.clone()], &[]);
        assert_eq!(phantom.unaccounted, eth(40));
        // The same with collateral paid in: a deposit and a borrow in one tx.
        let mut loop_ = taking(ALICE, eth(40), eth(100));
        account_from_storage(&mut loop_, &[debt, collateral], &[ALICE]);
        assert_eq!(loop_.unaccounted, U256::ZERO);
    }

    #[test]
    fn a_keeper_closing_someone_elses_position_is_accounted_only_when_the_debt_is_repaid() {
        let seized = keyed(12, BOB, eth(50), eth(7));
        let repaid = keyed(11, BOB, eth(70), U256::ZERO);
        let mut liquidation = taking(ALICE, eth(43), eth(100));
        account_from_storage(&mut liquidation, &[seized.clone(), repaid], &[ALICE]);
        assert_eq!(liquidation.unaccounted, U256::ZERO);
        // Bob's collateral taken with nothing of his repaid: theft, not a liquidation.
        let mut theft = taking(ALICE, eth(43), eth(100));
        account_from_storage(&mut theft, &[seized], &[]);
        assert_eq!(theft.unaccounted, eth(43));
    }

    #[test]
    fn a_swap_that_keeps_the_reserves_product_is_a_trade_and_one_that_lowers_it_is_not() {
        let token = Address::with_last_byte(0x70);
        let ledger = |out_eth: u64, in_tok: u64| {
            vec![
                asset_ledger(
                    Asset::Eth,
                    eth(100),
                    eth(100 - out_eth),
                    vec![Flow { account: ALICE, out: eth(out_eth), inflow: U256::ZERO }],
                ),
                asset_ledger(
                    Asset::Token(token),
                    eth(1_000),
                    eth(1_000 + in_tok),
                    vec![Flow { account: ALICE, out: U256::ZERO, inflow: eth(in_tok) }],
                ),
            ]
        };
        // 30% of the ETH for 450 tokens: 70 × 1,450 > 100 × 1,000.
        let mut fair = ledger(30, 450);
        account_exchange(&mut fair);
        assert_eq!(fair[0].unaccounted, U256::ZERO);
        // 30% for 100 tokens: 70 × 1,100 < 100 × 1,000.
        let mut unfair = ledger(30, 100);
        account_exchange(&mut unfair);
        assert_eq!(unfair[0].unaccounted, eth(30));
    }

    #[test]
    fn flows_net_each_counterparty_and_ignore_the_contract_calling_itself() {
        let frame = |caller, target, value| CallFrame {
            index: 0,
            parent: None,
            depth: 0,
            caller,
            target,
            code: target,
            scheme: "CALL",
            value,
            selector: None,
            success: true,
            gas_used: 0,
        };
        let frames = [frame(ALICE, P, eth(1)), frame(P, ALICE, eth(3)), frame(P, P, eth(9))];
        let f = flows(P, &Asset::Eth, &frames, &[]);
        assert_eq!(f, vec![Flow { account: ALICE, out: eth(3), inflow: eth(1) }]);
        let _ = B256::ZERO;
    }
}
