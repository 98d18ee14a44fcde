//! From one inspected run to what the rules read: the protected contracts it touched, their
//! books (who took what, and what the contracts' own accounting stands for), who acted with
//! what authority held before the tx, roles that changed hands, prices they read that moved,
//! re-entries, configured claims and invariants. Views on the state before the tx run first;
//! then the tx's state is committed to the overlay for the views after it.

use alloy::{
    primitives::{
        Address, B256, Bytes, U256, b256,
        map::{HashMap, HashSet},
    },
    sol_types::{SolCall, SolEvent},
};
use revm::{
    database_interface::{DatabaseCommit, DatabaseRef},
    state::EvmState,
};

use super::{
    SimError, Simulator, call_with_address,
    facts::{self, MappingIndex},
    inspector::{CallOut, FrameLog, FrameSpan, KeccakInput, StorageAccess},
    ledger, reentry,
};
use crate::{
    config::{Asset, ProtectedContract},
    types::{
        AccountedBy, AssetLedger, Authority, CallFrame, ClaimReading, ContractLedger,
        HoldingChange, PriceRead, RoleChange, SlotChange, ThirdPartyDebit, ThirdPartyPull,
        TokenTransfer,
        abi::{IERC20, IPrivileged},
        is_address_word,
    },
};

/// `owner()`, `admin()`: who holds a contract's keys, read before the tx.
const OWNER: [u8; 4] = IPrivileged::ownerCall::SELECTOR;
const ADMIN: [u8; 4] = IPrivileged::adminCall::SELECTOR;
const TOTAL_SUPPLY: [u8; 4] = IERC20::totalSupplyCall::SELECTOR;
const BALANCE_OF: [u8; 4] = IERC20::balanceOfCall::SELECTOR;
/// EIP-1967 slots (`keccak256("eip1967.proxy.implementation") - 1`, `…admin) - 1`): where a
/// proxy keeps its implementation and its admin.
const EIP1967_IMPLEMENTATION: B256 =
    b256!("360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc");
const EIP1967_ADMIN: B256 =
    b256!("b53127684a568b3173ae13b9f8a6016e243e63b6e8ee1178d6a717850b5d6103");
/// Event topics of role changes.
const ROLE_GRANTED: B256 = IPrivileged::RoleGranted::SIGNATURE_HASH;
const OWNERSHIP_TRANSFERRED: B256 = IPrivileged::OwnershipTransferred::SIGNATURE_HASH;
const UPGRADED: B256 = IPrivileged::Upgraded::SIGNATURE_HASH;
const ADMIN_CHANGED: B256 = IPrivileged::AdminChanged::SIGNATURE_HASH;
/// Reads that are plumbing, not prices: their answers move with any honest transfer.
const NOT_PRICES: [[u8; 4]; 9] = [
    BALANCE_OF,
    TOTAL_SUPPLY,
    IERC20::allowanceCall::SELECTOR,
    IERC20::decimalsCall::SELECTOR,
    IERC20::symbolCall::SELECTOR,
    IERC20::nameCall::SELECTOR,
    IERC20::transferCall::SELECTOR,
    IERC20::transferFromCall::SELECTOR,
    IERC20::approveCall::SELECTOR,
];
/// Read calls re-run per contract and tx, at most.
const MAX_PRICE_READS: usize = 16;
const TRANSFER_FROM: [u8; 4] = IERC20::transferFromCall::SELECTOR;
const ALLOWANCE: [u8; 4] = IERC20::allowanceCall::SELECTOR;
const SYMBOL: [u8; 4] = IERC20::symbolCall::SELECTOR;
const DECIMALS: [u8; 4] = IERC20::decimalsCall::SELECTOR;
/// The ecrecover precompile.
const ECRECOVER: Address = Address::with_last_byte(1);

/// What the inspector recorded of one run.
#[derive(Debug, Default)]
pub(super) struct Recorded {
    pub(super) frames: Vec<CallFrame>,
    pub(super) spans: Vec<FrameSpan>,
    pub(super) accesses: Vec<StorageAccess>,
    pub(super) keccak: Vec<KeccakInput>,
    pub(super) calls_out: Vec<CallOut>,
    pub(super) logs: Vec<FrameLog>,
}

/// Who holds a contract's keys before the tx, and the storage those answers came from.
#[derive(Debug, Clone, Default)]
pub(super) struct Privileged {
    holders: Vec<(Address, String)>,
    owner: Option<Address>,
    read_slots: HashSet<U256>,
}

/// What the views before and after the tx are asked.
#[derive(Debug, Default)]
struct Reads {
    calls: Vec<(Address, Bytes)>,
}

impl Reads {
    fn add(&mut self, target: Address, data: Bytes) -> usize {
        if let Some(i) = self.calls.iter().position(|(t, d)| *t == target && *d == data) {
            return i;
        }
        self.calls.push((target, data));
        self.calls.len() - 1
    }
}

/// The analysis of one run, before the views: the rules' facts.
pub(super) struct Analysis {
    pub(super) transfers: Vec<TokenTransfer>,
    pub(super) touched: Vec<Address>,
    pub(super) ledgers: Vec<ContractLedger>,
    pub(super) holdings: Vec<HoldingChange>,
    pub(super) claims: Vec<ClaimReading>,
    pub(super) reentries: Vec<crate::types::ReentryObservation>,
}

impl Simulator {
    /// The protected contracts the run entered, changed, or moved a held token of.
    pub(super) fn touched_protected(
        &self,
        frames: &[CallFrame],
        transfers: &[TokenTransfer],
        state: &EvmState,
    ) -> Vec<Address> {
        let mut touched: Vec<Address> = Vec::new();
        let mut touch = |a: Address| {
            if !touched.contains(&a) {
                touched.push(a);
            }
        };
        for p in self.protected.iter() {
            let entered = frames.iter().any(|f| f.target == p.address);
            let moved = transfers.iter().any(|t| t.from == p.address || t.to == p.address);
            let changed = state.get(&p.address).is_some_and(|a| a.is_touched());
            if entered || moved || changed {
                touch(p.address);
            }
        }
        touched
    }

    /// Books of every touched protected contract, from the run's facts and views on the state
    /// before it; the views after the tx run once `state` is committed, then the overlay is
    /// reset. Returns the ledgers and the configured claim readings.
    pub(super) fn analyze(
        &mut self,
        from: Address,
        recorded: &Recorded,
        state: &EvmState,
    ) -> Result<Analysis, SimError> {
        let frames = &recorded.frames;
        let transfers = facts::token_transfers(&recorded.logs, frames);
        let touched = self.touched_protected(frames, &transfers, state);
        let reentry_candidates = reentry::candidates(frames, &touched);
        let mut reentries = if reentry_candidates.is_empty() {
            Vec::new()
        } else {
            reentry::observe(&reentry_candidates, frames, &recorded.spans, &recorded.accesses)
        };
        let protected = std::sync::Arc::clone(&self.protected);
        let watched: Vec<&ProtectedContract> =
            protected.iter().filter(|p| touched.contains(&p.address)).collect();
        let index = if watched.is_empty() {
            MappingIndex::default()
        } else {
            MappingIndex::build(&recorded.keccak, |a| touched.contains(a))
        };

        if !reentry_candidates.is_empty() {
            let framed = facts::framed_transfers(&recorded.logs, frames);
            for leak in reentry::double_payouts(
                &reentry_candidates,
                frames,
                &recorded.spans,
                &recorded.accesses,
                &framed,
                &index,
            ) {
                match reentries.iter_mut().find(|r| {
                    r.outer_frame == leak.outer_frame && r.inner_frame == leak.inner_frame
                }) {
                    Some(r) => r.double_payout = leak.double_payout,
                    None => reentries.push(leak),
                }
            }
        }
        let mut ledgers = Vec::with_capacity(watched.len());
        for p in &watched {
            ledgers.push(self.books(p, from, recorded, &transfers, state, &index)?);
        }
        let claims = self.views_before_and_after(&watched, &mut ledgers, recorded, state)?;
        let holdings = ledgers.iter().flat_map(holdings_of).collect();
        Ok(Analysis { transfers, touched, ledgers, holdings, claims, reentries })
    }

    /// One contract's books from facts alone (plus its token holdings before the tx).
    fn books(
        &mut self,
        p: &ProtectedContract,
        from: Address,
        recorded: &Recorded,
        transfers: &[TokenTransfer],
        state: &EvmState,
        index: &MappingIndex,
    ) -> Result<ContractLedger, SimError> {
        let frames = &recorded.frames;
        let storage = facts::storage_changes(state, &p.address, index);
        // Every token the contract holds that moved, listed or not.
        let mut tokens: Vec<Address> = p.tokens.clone();
        for t in transfers.iter().filter(|t| t.from == p.address || t.to == p.address) {
            if !tokens.contains(&t.token) {
                tokens.push(t.token);
            }
        }
        let mut assets = Vec::with_capacity(tokens.len() + 1);
        let (eth_before, eth_after) = match state.get(&p.address) {
            Some(a) => (a.original_info().balance, a.info.balance),
            None => {
                let b = self
                    .fork_view()
                    .basic_ref(p.address)
                    .map_err(|source| SimError::State { tx: B256::ZERO, source })?
                    .map(|i| i.balance)
                    .unwrap_or_default();
                (b, b)
            }
        };
        let eth_flows = ledger::flows(p.address, &Asset::Eth, frames, transfers);
        assets.push(ledger::asset_ledger(Asset::Eth, eth_before, eth_after, eth_flows));
        for token in tokens {
            let asset = Asset::Token(token);
            let flows = ledger::flows(p.address, &asset, frames, transfers);
            let moved = flows.iter().any(|f| !f.out.is_zero() || !f.inflow.is_zero());
            if !moved {
                continue;
            }
            let before = self.token_holding(p.address, token)?;
            let (out, inflow) = flows.iter().fold((U256::ZERO, U256::ZERO), |(o, i), f| {
                (o.saturating_add(f.out), i.saturating_add(f.inflow))
            });
            let after = before.saturating_sub(out).saturating_add(inflow);
            assets.push(ledger::asset_ledger(asset, before, after, flows));
        }
        let paid_in: Vec<Address> = assets
            .iter()
            .flat_map(|a| a.flows.iter().filter(|f| f.inflow > f.out).map(|f| f.account))
            .collect();
        for a in assets.iter_mut() {
            ledger::account_from_storage(a, &storage, &paid_in);
        }
        ledger::account_exchange(&mut assets);
        let mut actors = vec![from];
        for f in
            frames.iter().filter(|f| f.success && f.target == p.address && f.caller != p.address)
        {
            if !actors.contains(&f.caller) {
                actors.push(f.caller);
            }
        }
        for a in assets.iter_mut() {
            if let Asset::Token(token) = a.asset {
                let (symbol, decimals) = self.token_meta(token)?;
                a.symbol = symbol;
                a.decimals = decimals;
            }
        }
        let side = signer_side(from, frames);
        let pulls = if p.pulls_from_third_parties {
            Vec::new()
        } else {
            pulls_of(p.address, recorded, &side)
        };
        let debits = debits_of(&storage, &side, p.address, recorded);
        Ok(ContractLedger {
            contract: p.address,
            assets,
            authority: None,
            role_changes: Vec::new(),
            price_reads: Vec::new(),
            pulls,
            debits,
            storage,
            actors,
            tx_hash: B256::ZERO,
        })
    }

    /// The views each ledger still needs, run on the state before the tx and after it.
    fn views_before_and_after(
        &mut self,
        watched: &[&ProtectedContract],
        ledgers: &mut [ContractLedger],
        recorded: &Recorded,
        state: &EvmState,
    ) -> Result<Vec<ClaimReading>, SimError> {
        let mut reads = Reads::default();
        let mut claim_asks = Vec::new();
        let mut standard_asks = Vec::new();
        let mut price_asks = Vec::new();
        let mut role_checks = Vec::new();
        let mut pull_asks = Vec::new();
        let mut allowance_asks = Vec::new();
        for (p, l) in watched.iter().zip(ledgers.iter_mut()) {
            let crosses = |a: &AssetLedger| a.unaccounted_bps() >= u64::from(p.drain_threshold_bps);
            let big = l.assets.iter().any(crosses);
            if big {
                // Configured claim views first, then the standard ones.
                for a in l.assets.iter().filter(|a| crosses(a)) {
                    for (ci, claim) in
                        p.claims.iter().enumerate().filter(|(_, c)| c.asset == a.asset)
                    {
                        for f in a.flows.iter().filter(|f| f.out > f.inflow) {
                            let i =
                                reads.add(p.address, call_with_address(claim.selector, f.account));
                            claim_asks.push((p.address, ci, a.asset, f.account, i));
                        }
                    }
                    for f in a.flows.iter().filter(|f| f.out > f.inflow) {
                        let bal = reads.add(p.address, call_with_address(BALANCE_OF, f.account));
                        let supply = reads.add(p.address, Bytes::from_static(&TOTAL_SUPPLY));
                        standard_asks.push((p.address, a.asset, f.account, bal, supply));
                    }
                }
            }
            let priced = l.lost_anything()
                && l.assets.iter().any(|a| {
                    !a.unaccounted.is_zero()
                        || a.accounted.iter().any(|x| {
                            !matches!(
                                x.by,
                                AccountedBy::OwnEntry { .. } | AccountedBy::Shares { .. }
                            )
                        })
                });
            if priced {
                for co in price_calls(p.address, recorded) {
                    let i = reads.add(co.0, co.1.clone());
                    price_asks.push((p.address, co.0, co.1, co.2, i));
                }
            }
            let changed_any = !l.storage.is_empty();
            if big || changed_any {
                role_checks.push(p.address);
            }
            for (k, pull) in l.pulls.iter().enumerate() {
                let i = reads.add(pull.token, call_with_address(BALANCE_OF, pull.from));
                pull_asks.push((p.address, k, i));
            }
            for (k, debit) in l.debits.iter().enumerate() {
                if debit.authorized.is_some() {
                    continue;
                }
                for spender in &l.actors {
                    let i = reads.add(p.address, call_with_two(ALLOWANCE, debit.account, *spender));
                    allowance_asks.push((p.address, k, *spender, i));
                }
            }
        }
        // Authority and role changes need who held the keys before the tx.
        let mut privileged: HashMap<Address, Privileged> = HashMap::default();
        for contract in &role_checks {
            privileged.insert(*contract, self.privileged(*contract)?);
        }
        let before = self.run_reads(&reads)?;
        let owners_after_needed: Vec<Address> = role_checks
            .iter()
            .filter(|c| {
                let l = ledgers.iter().find(|l| l.contract == **c);
                let p = privileged.get(*c);
                matches!((l, p), (Some(l), Some(p)) if l.storage.iter().any(|s| p.read_slots.contains(&s.slot)))
            })
            .copied()
            .collect();
        let mut owner_reads = Reads::default();
        for c in &owners_after_needed {
            owner_reads.add(*c, Bytes::from_static(&OWNER));
        }
        // The state after the tx.
        let needs_after = !reads.calls.is_empty() || !owner_reads.calls.is_empty();
        let (after, owners_after) = if needs_after {
            self.evm.ctx.journaled_state.database.commit(state.clone());
            let after = self.run_reads(&reads);
            let owners = self.run_reads(&owner_reads);
            self.reset_overlay();
            (after?, owners?)
        } else {
            (Vec::new(), Vec::new())
        };
        let word = |v: &[Option<Bytes>], i: usize| -> Option<U256> {
            v.get(i)
                .and_then(|o| o.as_ref())
                .filter(|o| o.len() >= 32)
                .map(|o| U256::from_be_slice(&o[..32]))
        };

        // Claims, configured.
        let mut claims = Vec::new();
        for (contract, ci, asset, account, i) in &claim_asks {
            let (Some(b), Some(a)) = (word(&before, *i), word(&after, *i)) else { continue };
            let Some(p) = watched.iter().find(|p| p.address == *contract) else { continue };
            let view = p.claims[*ci].signature.clone();
            claims.push(ClaimReading {
                contract: *contract,
                asset: *asset,
                view: view.clone(),
                account: *account,
                before: b,
                after: a,
            });
            if let Some(l) = ledgers.iter_mut().find(|l| l.contract == *contract)
                && let Some(al) = l.assets.iter_mut().find(|x| x.asset == *asset)
                && b > a
            {
                let need = open_need(al, account);
                let amount = need.min(b - a);
                ledger::account(
                    al,
                    *account,
                    amount,
                    AccountedBy::ClaimView { view, before: b, after: a },
                );
            }
        }
        // Standard views: the account's balance of the contract's own shares, priced pro rata.
        for (contract, asset, account, bal, supply) in &standard_asks {
            let (Some(b), Some(a), Some(s)) =
                (word(&before, *bal), word(&after, *bal), word(&before, *supply))
            else {
                continue;
            };
            if b <= a || s.is_zero() {
                continue;
            }
            if let Some(l) = ledgers.iter_mut().find(|l| l.contract == *contract)
                && let Some(al) = l.assets.iter_mut().find(|x| x.asset == *asset)
            {
                let value = (b - a).saturating_mul(al.before) / s;
                let need = open_need(al, account);
                let amount = need.min(value.saturating_add(value / U256::from(100u64)));
                let view = "balanceOf(address) × holdings / totalSupply()".to_string();
                ledger::account(
                    al,
                    *account,
                    amount,
                    AccountedBy::StandardView { view, before: b, after: a },
                );
            }
        }
        // Prices read inside the tx against the same reads before and after it.
        for (contract, target, input, during, i) in price_asks {
            let (Some(Some(b)), Some(Some(a))) = (before.get(i), after.get(i)) else { continue };
            let (bw, dw, aw) = (words(b), words(&during), words(a));
            let moved = moved_bps(&bw, &dw);
            if moved == 0 {
                continue;
            }
            if let Some(l) = ledgers.iter_mut().find(|l| l.contract == contract) {
                let selector = input.get(..4).map(|s| [s[0], s[1], s[2], s[3]]).unwrap_or_default();
                l.price_reads.push(PriceRead {
                    target,
                    selector,
                    input,
                    before: bw,
                    during: dw,
                    after: aw,
                    moved_bps: moved,
                });
            }
        }
        // What the accounts drawn on held, and what they had allowed.
        for (contract, k, i) in pull_asks {
            let held = word(&before, i).unwrap_or_default();
            if let Some(pull) =
                ledgers.iter_mut().find(|l| l.contract == contract).and_then(|l| l.pulls.get_mut(k))
            {
                pull.held_before = held;
            }
        }
        for (contract, k, spender, i) in allowance_asks {
            let allowed = word(&before, i).unwrap_or_default();
            if let Some(debit) = ledgers
                .iter_mut()
                .find(|l| l.contract == contract)
                .and_then(|l| l.debits.get_mut(k))
                && debit.authorized.is_none()
                && allowed >= debit.before.saturating_sub(debit.after)
            {
                debit.authorized = Some(format!("allowance to {spender}"));
            }
        }
        // Who acted with what authority, and which roles moved.
        for l in ledgers.iter_mut() {
            let Some(privileged) = privileged.get(&l.contract) else { continue };
            let owner_after = owners_after_needed
                .iter()
                .position(|c| *c == l.contract)
                .and_then(|i| word(&owners_after, i))
                .map(|w| Address::from_word(w.into()));
            self.roles_and_authority(l, privileged, owner_after, recorded)?;
        }
        Ok(claims)
    }

    /// Runs each read as a view on the overlay as it is now; `None` when it reverted.
    fn run_reads(&mut self, reads: &Reads) -> Result<Vec<Option<Bytes>>, SimError> {
        let mut out = Vec::with_capacity(reads.calls.len());
        for (target, data) in &reads.calls {
            let (answer, _) = self.view(*target, data.clone())?;
            out.push(answer.ok());
        }
        Ok(out)
    }

    /// A token's `symbol()` and `decimals()` (18 when it has none), read once per process.
    fn token_meta(&mut self, token: Address) -> Result<(Option<String>, u8), SimError> {
        if let Some(m) = self.token_meta.get(&token) {
            return Ok(m.clone());
        }
        let (symbol, _) = self.view(token, Bytes::from_static(&SYMBOL))?;
        let (decimals, _) = self.view(token, Bytes::from_static(&DECIMALS))?;
        let symbol = symbol.ok().and_then(|o| decode_symbol(&o));
        let decimals = decimals
            .ok()
            .filter(|o| o.len() >= 32)
            .and_then(|o| u8::try_from(U256::from_be_slice(&o[..32])).ok())
            .filter(|d| *d <= 36)
            .unwrap_or(18);
        self.token_meta.insert(token, (symbol.clone(), decimals));
        Ok((symbol, decimals))
    }

    /// Who holds `contract`'s keys on the state before the tx (cached per fork).
    pub(super) fn privileged(&mut self, contract: Address) -> Result<Privileged, SimError> {
        if let Some(p) = self.privileged.get(&contract) {
            return Ok(p.clone());
        }
        let mut holders = Vec::new();
        let mut read_slots = HashSet::default();
        let mut owner = None;
        for (selector, name) in [(OWNER, "owner()"), (ADMIN, "admin()")] {
            let (answer, state) = self.view(contract, Bytes::copy_from_slice(&selector))?;
            if let Some(account) = state.get(&contract) {
                read_slots.extend(account.storage.keys().copied());
            }
            if let Ok(out) = answer
                && out.len() == 32
                && is_address_word(&B256::from_slice(&out))
            {
                let a = Address::from_slice(&out[12..]);
                if selector == OWNER {
                    owner = Some(a);
                }
                holders.push((a, name.to_string()));
            }
        }
        let admin_slot = self
            .fork_view()
            .storage_ref(contract, EIP1967_ADMIN.into())
            .map_err(|source| SimError::State { tx: B256::ZERO, source })?;
        let admin_slot = B256::from(admin_slot);
        if is_address_word(&admin_slot) {
            holders.push((Address::from_word(admin_slot), "EIP-1967 admin".to_string()));
        }
        if let Some(p) = self.protected.iter().find(|p| p.address == contract) {
            holders.extend(p.trusted.iter().map(|t| (*t, "trusted".to_string())));
        }
        let p = Privileged { holders, owner, read_slots };
        self.privileged.insert(contract, p.clone());
        Ok(p)
    }

    /// Fills the ledger's authority (who moved the value, holding what before the tx) and the
    /// roles the tx moved.
    fn roles_and_authority(
        &mut self,
        l: &mut ContractLedger,
        privileged: &Privileged,
        owner_after: Option<Address>,
        recorded: &Recorded,
    ) -> Result<(), SimError> {
        let contract = l.contract;
        let held_by = |who: &Address| {
            privileged.holders.iter().find(|(a, _)| a == who).map(|(_, role)| role.clone())
        };
        // AccessControl-style checks the contract made of an actor: a slot `roles[role][actor]`
        // it read that held a non-zero value before the tx.
        let mut role_held: HashMap<Address, String> = HashMap::default();
        let index = MappingIndex::build(&recorded.keccak, |a| *a == contract);
        let mut checked: HashSet<U256> = HashSet::default();
        for access in recorded.accesses.iter().filter(|a| a.address == contract && !a.write) {
            if !checked.insert(access.slot) {
                continue;
            }
            let Some(key) = index.decode(access.slot) else { continue };
            let [role, who] = key.keys[..] else { continue };
            if is_address_word(&role) || !is_address_word(&who) {
                continue;
            }
            let actor = Address::from_word(who);
            if !l.actors.contains(&actor) {
                continue;
            }
            let before = self
                .fork_view()
                .storage_ref(contract, access.slot)
                .map_err(|source| SimError::State { tx: B256::ZERO, source })?;
            if !before.is_zero() {
                role_held.entry(actor).or_insert_with(|| format!("role {role}"));
            }
        }
        let authority_of = |who: &Address| held_by(who).or_else(|| role_held.get(who).cloned());

        // Role changes: events the contract emitted, proxy slots it rewrote, its owner.
        let frames = &recorded.frames;
        let mut changes = Vec::new();
        for fl in recorded.logs.iter().filter(|fl| fl.log.address == contract) {
            if !frames.get(fl.frame).is_some_and(|f| f.success) {
                continue;
            }
            let topics = fl.log.data.topics();
            let caller = entry_caller(frames, fl.frame, contract);
            let addr = |i: usize| topics.get(i).map(|t| Address::from_word(*t));
            let change = match topics.first() {
                Some(t) if *t == ROLE_GRANTED && topics.len() == 4 => {
                    let by = addr(3).unwrap_or(caller);
                    Some((format!("role {}", topics[1]), None, addr(2), by))
                }
                Some(t) if *t == OWNERSHIP_TRANSFERRED && topics.len() == 3 => {
                    Some(("owner".to_string(), addr(1), addr(2), caller))
                }
                Some(t) if *t == UPGRADED && topics.len() == 2 => {
                    Some(("implementation".to_string(), None, addr(1), caller))
                }
                Some(t) if *t == ADMIN_CHANGED && fl.log.data.data.len() == 64 => {
                    let d = &fl.log.data.data;
                    let from = Address::from_slice(&d[12..32]);
                    let to = Address::from_slice(&d[44..64]);
                    Some(("admin".to_string(), Some(from), Some(to), caller))
                }
                _ => None,
            };
            if let Some((role, from, to, by)) = change {
                // A role granted to the contract itself or re-granted to its holder is no change.
                if role.starts_with("role") && to.is_some_and(|t| authority_of(&t).is_some()) {
                    continue;
                }
                changes.push(RoleChange {
                    contract,
                    role,
                    from,
                    to,
                    by,
                    by_authority: authority_of(&by),
                });
            }
        }
        for s in &l.storage {
            let slot = B256::from(s.slot);
            let role = if slot == EIP1967_IMPLEMENTATION {
                "implementation"
            } else if slot == EIP1967_ADMIN {
                "admin"
            } else {
                continue;
            };
            if changes.iter().any(|c| c.role == role) {
                continue;
            }
            let by = l.actors.get(1).copied().unwrap_or(l.actors[0]);
            changes.push(RoleChange {
                contract,
                role: role.to_string(),
                from: Some(Address::from_word(s.before.into())),
                to: Some(Address::from_word(s.after.into())),
                by,
                by_authority: authority_of(&by),
            });
        }
        if let (Some(before), Some(after)) = (privileged.owner, owner_after)
            && before != after
            && !changes.iter().any(|c| c.role == "owner")
        {
            let by = l.actors.get(1).copied().unwrap_or(l.actors[0]);
            changes.push(RoleChange {
                contract,
                role: "owner".to_string(),
                from: Some(before),
                to: Some(after),
                by,
                by_authority: authority_of(&by),
            });
        }
        l.role_changes = changes;

        // The authority the value moved on: an actor holding a key before the tx, else the
        // contract acting on its own older state (a passed proposal) when nothing in the tx
        // built that state or borrowed the power to.
        let holder = l.actors.iter().find_map(|a| authority_of(a).map(|held| (*a, held)));
        l.authority = match holder {
            Some((account, held)) => Some(Authority { account, held }),
            None if self_authorized(contract, recorded) => {
                Some(Authority { account: contract, held: "self (its own earlier state)".into() })
            }
            None => None,
        };
        Ok(())
    }
}

/// A `symbol()` answer: an ABI string, or a bytes32 (older tokens); short and printable only.
fn decode_symbol(out: &[u8]) -> Option<String> {
    let text = if out.len() >= 96 && U256::from_be_slice(&out[..32]) == U256::from(32) {
        let len = usize::try_from(U256::from_be_slice(&out[32..64])).ok()?;
        out.get(64..64 + len.min(32))?.to_vec()
    } else if out.len() == 32 {
        out.iter().copied().take_while(|b| *b != 0).collect()
    } else {
        return None;
    };
    let s = String::from_utf8(text).ok()?;
    (!s.is_empty() && s.chars().all(|c| c.is_ascii_graphic())).then_some(s)
}

/// What the taker still needs accounted in this asset.
fn open_need(ledger: &AssetLedger, account: &Address) -> U256 {
    let Some(f) = ledger.flows.iter().find(|f| f.account == *account) else { return U256::ZERO };
    let done = ledger
        .accounted
        .iter()
        .filter(|a| a.account == *account)
        .fold(U256::ZERO, |s, a| s.saturating_add(a.amount));
    f.out.saturating_sub(f.inflow).saturating_sub(done).min(ledger.unaccounted)
}

/// The holding changes the incident record shows, from a ledger.
fn holdings_of(l: &ContractLedger) -> Vec<HoldingChange> {
    l.assets
        .iter()
        .filter(|a| a.before != a.after)
        .map(|a| HoldingChange {
            contract: l.contract,
            asset: a.asset,
            before: a.before,
            after: a.after,
            recipients: a
                .flows
                .iter()
                .filter(|f| !f.out.is_zero())
                .map(|f| (f.account, f.out))
                .collect(),
        })
        .collect()
}

/// The static reads `contract` made of other contracts that may be prices: (target, input,
/// answer during the tx), deduplicated, bounded.
fn price_calls(contract: Address, recorded: &Recorded) -> Vec<(Address, Bytes, Bytes)> {
    let mut out: Vec<(Address, Bytes, Bytes)> = Vec::new();
    for co in &recorded.calls_out {
        let Some(f) = recorded.frames.get(co.frame) else { continue };
        if f.caller != contract || f.scheme != "STATICCALL" || !f.success || co.output.len() < 32 {
            continue;
        }
        if f.selector.is_some_and(|s| NOT_PRICES.contains(&s)) {
            continue;
        }
        if out.iter().any(|(t, i, _)| *t == f.target && *i == co.input) {
            continue;
        }
        out.push((f.target, co.input.clone(), co.output.clone()));
        if out.len() >= MAX_PRICE_READS {
            break;
        }
    }
    out
}

fn words(output: &Bytes) -> Vec<U256> {
    output.chunks_exact(32).take(4).map(U256::from_be_slice).collect()
}

/// The largest relative move, in basis points, of any word from `before` to `during`.
fn moved_bps(before: &[U256], during: &[U256]) -> u64 {
    before
        .iter()
        .zip(during)
        .map(|(b, d)| {
            let diff = if b > d { *b - *d } else { *d - *b };
            if diff.is_zero() {
                return 0;
            }
            if b.is_zero() {
                return u64::MAX;
            }
            u64::try_from(diff.saturating_mul(U256::from(10_000u64)) / *b).unwrap_or(u64::MAX)
        })
        .max()
        .unwrap_or(0)
}

/// The caller that entered `contract` above frame `at` (the outermost run of its frames).
fn entry_caller(frames: &[CallFrame], at: usize, contract: Address) -> Address {
    let mut cursor = Some(at);
    let mut caller = frames.get(at).map(|f| f.caller).unwrap_or_default();
    while let Some(i) = cursor {
        let Some(f) = frames.get(i) else { break };
        if f.target == contract {
            caller = f.caller;
        } else if caller != contract {
            break;
        }
        cursor = f.parent;
    }
    caller
}

/// The contract paid on its own call (a proposal it executes), on state older than the tx: no
/// earlier entry into it in the same tx wrote what a later one read, and nothing was borrowed
/// and repaid around it (a flash loan of voting power).
fn self_authorized(contract: Address, recorded: &Recorded) -> bool {
    let frames = &recorded.frames;
    let self_call =
        frames.iter().any(|f| f.success && f.caller == contract && f.target == contract);
    if !self_call {
        return false;
    }
    // Separate entries into the contract (from outside), in order.
    let entries: Vec<usize> = frames
        .iter()
        .filter(|f| f.target == contract && f.caller != contract)
        .map(|f| f.index)
        .collect();
    let span = |i: usize| recorded.spans.get(i).copied().unwrap_or_default();
    let inside = |seq: u64, e: usize| seq > span(e).start && seq < span(e).end;
    for (k, later) in entries.iter().enumerate() {
        let reads: HashSet<U256> = recorded
            .accesses
            .iter()
            .filter(|a| a.address == contract && !a.write && inside(a.seq, *later))
            .map(|a| a.slot)
            .collect();
        for earlier in &entries[..k] {
            let wrote = recorded.accesses.iter().any(|a| {
                a.address == contract
                    && a.write
                    && inside(a.seq, *earlier)
                    && reads.contains(&a.slot)
            });
            if wrote {
                return false;
            }
        }
    }
    !flash_borrowed(&facts::token_transfers(&recorded.logs, frames))
}

/// The tx signer, the contracts it called directly and every contract the tx created: the
/// accounts whose funds the signer may move.
fn signer_side(from: Address, frames: &[CallFrame]) -> HashSet<Address> {
    let mut side = HashSet::from_iter([from]);
    for f in frames.iter().filter(|f| f.success) {
        if f.caller == from || f.scheme.starts_with("CREATE") {
            side.insert(f.target);
        }
    }
    side
}

/// `transferFrom` calls the contract made as spender, drawing on accounts outside the
/// signer's side.
fn pulls_of(
    contract: Address,
    recorded: &Recorded,
    side: &HashSet<Address>,
) -> Vec<ThirdPartyPull> {
    let mut out = Vec::new();
    for co in &recorded.calls_out {
        let Some(f) = recorded.frames.get(co.frame) else { continue };
        if f.caller != contract
            || !f.success
            || f.selector != Some(TRANSFER_FROM)
            || co.input.len() < 100
        {
            continue;
        }
        let word = |i: usize| B256::from_slice(&co.input[4 + 32 * i..4 + 32 * (i + 1)]);
        let (from, to) = (Address::from_word(word(0)), Address::from_word(word(1)));
        if side.contains(&from) || from == contract {
            continue;
        }
        out.push(ThirdPartyPull {
            token: f.target,
            from,
            to,
            amount: U256::from_be_bytes(word(2).0),
            held_before: U256::ZERO,
        });
    }
    out
}

/// Entries of accounts outside the signer's side that went down while other accounts'
/// entries in the same table went up; authorized already when the account's own signature
/// was checked once in the tx (a permit, a signed transfer) — a signature checked twice is a
/// replay.
fn debits_of(
    storage: &[SlotChange],
    side: &HashSet<Address>,
    contract: Address,
    recorded: &Recorded,
) -> Vec<ThirdPartyDebit> {
    let table = |c: &SlotChange| c.key.as_ref().map(|k| (k.base, k.keys.len(), k.field));
    let owner = |c: &SlotChange| {
        c.key.as_ref().and_then(|k| {
            k.keys.last().filter(|w| is_address_word(w)).map(|w| Address::from_word(*w))
        })
    };
    // Signatures the contract checked, by signer, and how often each was checked.
    let mut signed: HashMap<Address, Vec<Bytes>> = HashMap::default();
    for co in &recorded.calls_out {
        let Some(f) = recorded.frames.get(co.frame) else { continue };
        if f.caller == contract && f.target == ECRECOVER && f.success && co.output.len() == 32 {
            let who = Address::from_slice(&co.output[12..]);
            signed.entry(who).or_default().push(co.input.clone());
        }
    }
    let mut out = Vec::new();
    for c in storage.iter().filter(|c| c.after < c.before) {
        let (Some(t), Some(account)) = (table(c), owner(c)) else { continue };
        if side.contains(&account) || account == contract {
            continue;
        }
        let credited: Vec<(Address, U256)> = storage
            .iter()
            .filter(|o| o.after > o.before && table(o) == Some(t))
            .filter_map(|o| owner(o).filter(|a| *a != account).map(|a| (a, o.increase())))
            .collect();
        if credited.is_empty() {
            continue;
        }
        // The account's own liability went down too: a position closed for it, not a theft.
        let position = storage.iter().any(|o| {
            o.slot != c.slot
                && o.after < o.before
                && owner(o) == Some(account)
                && table(o) != Some(t)
        });
        if position {
            continue;
        }
        let authorized = signed.get(&account).and_then(|inputs| {
            let once = inputs.iter().all(|i| inputs.iter().filter(|j| *j == i).count() == 1);
            once.then(|| "its own signature, checked once in the tx".to_string())
        });
        out.push(ThirdPartyDebit {
            account,
            slot: c.slot,
            before: c.before,
            after: c.after,
            credited,
            authorized,
        });
    }
    out
}

fn call_with_two(selector: [u8; 4], a: Address, b: Address) -> Bytes {
    let mut data = Vec::with_capacity(68);
    data.extend_from_slice(&selector);
    data.extend_from_slice(a.into_word().as_slice());
    data.extend_from_slice(b.into_word().as_slice());
    data.into()
}

/// Some account received a token and later in the tx gave at least as much back to the same
/// party (or had it minted and then burnt): a loan taken and repaid around what happened.
fn flash_borrowed(transfers: &[TokenTransfer]) -> bool {
    let mut outstanding: HashMap<(Address, Address, Address), U256> = HashMap::default();
    for t in transfers.iter().filter(|t| t.from != t.to && !t.value.is_zero()) {
        // A repayment of what `t.to` lent `t.from` earlier.
        if let Some(lent) = outstanding.get_mut(&(t.token, t.to, t.from)) {
            *lent = lent.saturating_sub(t.value);
            if lent.is_zero() {
                return true;
            }
            continue;
        }
        let entry = outstanding.entry((t.token, t.from, t.to)).or_default();
        *entry = entry.saturating_add(t.value);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_moving_past_the_bound_is_measured_in_bps_and_a_new_value_from_zero_is_infinite() {
        let b = vec![U256::from(1_000u64), U256::from(500u64)];
        let d = vec![U256::from(1_300u64), U256::from(500u64)];
        assert_eq!(moved_bps(&b, &d), 3_000);
        assert_eq!(moved_bps(&[U256::ZERO], &[U256::from(1)]), u64::MAX);
        assert_eq!(moved_bps(&b, &b), 0);
    }

    #[test]
    fn a_loan_repaid_in_the_same_tx_is_a_flash_loan_and_a_one_way_payment_is_not() {
        let token = Address::with_last_byte(0x70);
        let (pool, user) = (Address::with_last_byte(1), Address::with_last_byte(2));
        let t = |from, to, value: u64| TokenTransfer { token, from, to, value: U256::from(value) };
        assert!(flash_borrowed(&[t(pool, user, 100), t(user, pool, 101)]));
        assert!(flash_borrowed(&[t(Address::ZERO, user, 100), t(user, Address::ZERO, 100)]));
        assert!(!flash_borrowed(&[t(pool, user, 100)]));
        assert!(!flash_borrowed(&[t(pool, user, 100), t(user, pool, 50)]));
    }
}
