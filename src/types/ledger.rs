//! What a tx did to each protected contract's books: per asset, who took what and who paid
//! what in, how much of each outflow the contract's own accounting (or a fair exchange) stands
//! for, and what no one accounts for. Also who acted with what authority, which roles changed
//! hands, and which prices the contract read moved inside the tx.

use alloy::primitives::{Address, B256, Bytes, U256};
use serde::Serialize;

use crate::config::Asset;

/// A storage slot the tx changed, and where it sits in a Solidity mapping when that is known
/// (from the KECCAK256 inputs seen in the same run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotChange {
    pub address: Address,
    pub slot: U256,
    pub before: U256,
    pub after: U256,
    pub key: Option<MappingKey>,
}

impl SlotChange {
    /// `after - before` as a signed difference, saturating.
    pub fn increase(&self) -> U256 {
        self.after.saturating_sub(self.before)
    }

    pub fn decrease(&self) -> U256 {
        self.before.saturating_sub(self.after)
    }
}

/// `base[keys[0]][keys[1]]…`, plus the struct field offset of the slot (0 for a plain value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappingKey {
    pub base: U256,
    /// Outermost key first.
    pub keys: Vec<B256>,
    pub field: u8,
}

impl MappingKey {
    /// The keys that are addresses (12 zero bytes, then 20).
    pub fn addresses(&self) -> impl Iterator<Item = Address> + '_ {
        self.keys.iter().filter(|k| is_address_word(k)).map(|k| Address::from_word(*k))
    }

    pub fn keyed_by(&self, account: &Address) -> bool {
        self.addresses().any(|a| a == *account)
    }
}

/// A 32-byte word that holds an address (and is not zero).
pub fn is_address_word(word: &B256) -> bool {
    word[..12].iter().all(|b| *b == 0) && word[12..].iter().any(|b| *b != 0)
}

/// What one counterparty did with one asset of the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub account: Address,
    pub out: U256,
    pub inflow: U256,
}

/// Why (part of) an outflow is not a loss to the contract's other claimants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum AccountedBy {
    /// A configured claim view went down by at least the amount.
    ClaimView { view: String, before: U256, after: U256 },
    /// A standard view (`balanceOf`, ERC-4626 `convertToAssets`) of the account went down.
    StandardView { view: String, before: U256, after: U256 },
    /// The account's own entry in the contract's books went down by the amount.
    OwnEntry { slot: U256, before: U256, after: U256 },
    /// The account's shares went down, and the share supply with them: paid pro rata.
    Shares {
        slot: U256,
        supply_slot: U256,
        shares: U256,
        supply_before: U256,
        holdings_before: U256,
    },
    /// The account's liability in the contract's books went up by the amount (a borrow).
    Debt { slot: U256, before: U256, after: U256 },
    /// A position the account closed for its owner: the owner's collateral and liability both
    /// went down (a liquidation).
    Position { owner: Address, slot: U256, before: U256, after: U256 },
    /// The account paid in other assets: a fair trade by the contract's own reserves.
    Exchange { paid: Vec<(Asset, U256)>, product_before: U256, product_after: U256 },
}

/// An amount of an outflow and what accounts for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accounting {
    pub account: Address,
    pub amount: U256,
    #[serde(flatten)]
    pub by: AccountedBy,
}

/// One asset of a protected contract across the tx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetLedger {
    pub asset: Asset,
    /// The token's `symbol()` and `decimals()` (ETH: "ETH", 18), for people.
    pub symbol: Option<String>,
    pub decimals: u8,
    pub before: U256,
    pub after: U256,
    pub flows: Vec<Flow>,
    pub accounted: Vec<Accounting>,
    /// The loss that nothing above accounts for.
    pub unaccounted: U256,
}

impl AssetLedger {
    /// `amount` of this asset for a person: decimals applied, symbol after.
    pub fn show(&self, amount: U256) -> String {
        let n = alloy::primitives::utils::format_units(amount, self.decimals)
            .unwrap_or_else(|_| amount.to_string());
        let n = if n.contains('.') {
            n.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            n
        };
        match &self.symbol {
            Some(s) => format!("{n} {s}"),
            None => format!("{n} {}", self.asset),
        }
    }

    /// What each net taker took that nothing accounts for.
    pub fn unaccounted_by_taker(&self) -> Vec<(Address, U256)> {
        self.flows
            .iter()
            .filter(|f| f.out > f.inflow)
            .map(|f| {
                let done = self
                    .accounted
                    .iter()
                    .filter(|a| a.account == f.account)
                    .fold(U256::ZERO, |s, a| s.saturating_add(a.amount));
                (f.account, (f.out - f.inflow).saturating_sub(done))
            })
            .filter(|(_, v)| !v.is_zero())
            .collect()
    }

    pub fn loss(&self) -> U256 {
        self.before.saturating_sub(self.after)
    }

    /// `unaccounted` in basis points of what the contract held.
    pub fn unaccounted_bps(&self) -> u64 {
        if self.before.is_zero() {
            return 0;
        }
        let bps = self.unaccounted.saturating_mul(U256::from(10_000u64)) / self.before;
        u64::try_from(bps).unwrap_or(u64::MAX)
    }
}

/// Who moved the contract's value, and the authority they held before the tx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authority {
    pub account: Address,
    /// `owner()`, `admin()`, `EIP-1967 admin`, `role 0x…`, `trusted`, `self (proposal state)`.
    pub held: String,
}

/// A privileged role the tx moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleChange {
    pub contract: Address,
    /// `owner`, `admin`, `implementation`, or `role 0x…`.
    pub role: String,
    pub from: Option<Address>,
    pub to: Option<Address>,
    /// Who made the change (the caller into the contract, or the event's sender).
    pub by: Address,
    /// `Some`: the authority `by` held before the tx.
    pub by_authority: Option<String>,
}

/// A call the contract made to read a value (a price, a rate, reserves), answered differently
/// inside the tx than on the state before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceRead {
    pub target: Address,
    pub selector: [u8; 4],
    pub input: Bytes,
    pub before: Vec<U256>,
    pub during: Vec<U256>,
    pub after: Vec<U256>,
    /// The largest relative move of any returned word, basis points.
    pub moved_bps: u64,
}

/// The contract, as spender, pulled an account's tokens that did not sign the tx and is not a
/// contract the signer deployed or called into (an approval drain when it is not the design).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThirdPartyPull {
    pub token: Address,
    pub from: Address,
    pub to: Address,
    pub amount: U256,
    /// `from`'s balance of the token before the tx.
    pub held_before: U256,
}

/// An account outside the signer's side whose entry in the contract's own books went down
/// while others' in the same table went up (a ledger moving balances between holders).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThirdPartyDebit {
    pub account: Address,
    pub slot: U256,
    pub before: U256,
    pub after: U256,
    /// Accounts whose entries in the same table went up, and by how much.
    pub credited: Vec<(Address, U256)>,
    /// What let it happen: an allowance it gave, or its own signature checked in the tx.
    pub authorized: Option<String>,
}

/// The books of one protected contract for one tx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractLedger {
    pub contract: Address,
    pub assets: Vec<AssetLedger>,
    /// Set when the value moved on the authority of an account that held it before the tx.
    pub authority: Option<Authority>,
    pub role_changes: Vec<RoleChange>,
    pub price_reads: Vec<PriceRead>,
    pub pulls: Vec<ThirdPartyPull>,
    pub debits: Vec<ThirdPartyDebit>,
    /// The contract's storage the tx changed (with mapping keys where known).
    pub storage: Vec<SlotChange>,
    /// Who moved what: the tx signer and the callers into the contract.
    pub actors: Vec<Address>,
    pub tx_hash: B256,
}

impl ContractLedger {
    pub fn asset(&self, asset: &Asset) -> Option<&AssetLedger> {
        self.assets.iter().find(|a| a.asset == *asset)
    }

    /// Whether any asset lost value, accounted or not.
    pub fn lost_anything(&self) -> bool {
        self.assets.iter().any(|a| !a.loss().is_zero())
    }

    pub fn unaccounted_anything(&self) -> bool {
        self.assets.iter().any(|a| !a.unaccounted.is_zero())
    }
}
