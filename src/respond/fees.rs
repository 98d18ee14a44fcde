//! Fees that win the race: anvil orders its pool by max fee, block builders by priority tip,
//! so a pause must be strictly above the attack on both, within the policy's caps.

use serde::Serialize;

use crate::config::RespondConfig;

const GWEI: u128 = 1_000_000_000;

/// The attack tx's fee fields (a legacy tx has `gas_price` in both).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AttackFees {
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

impl AttackFees {
    /// The fee fields of `tx` as a builder sees them in a block with `base_fee`: a legacy tx
    /// tips what its gas price leaves over the base fee.
    pub fn of(tx: &impl alloy::consensus::Transaction, base_fee: u64) -> Self {
        Self {
            max_fee_per_gas: tx.max_fee_per_gas(),
            max_priority_fee_per_gas: tx
                .max_priority_fee_per_gas()
                .unwrap_or_else(|| tx.max_fee_per_gas().saturating_sub(u128::from(base_fee))),
        }
    }
}

/// EIP-1559 fees for a pause tx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PauseFees {
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

/// A tip 12.5% (at least 1 gwei) over the attack's, and a max fee at least as far over the
/// attack's and over twice the next base fee plus the tip; both capped.
pub fn outbid(attack: AttackFees, next_base_fee: u64, config: &RespondConfig) -> PauseFees {
    let margin = |v: u128| (v / 8).max(GWEI);
    let tip =
        attack.max_priority_fee_per_gas.saturating_add(margin(attack.max_priority_fee_per_gas));
    let tip = tip.min(config.max_priority_fee_per_gas_cap);
    let floor = u128::from(next_base_fee).saturating_mul(2).saturating_add(tip);
    let over_attack = attack.max_fee_per_gas.saturating_add(margin(attack.max_fee_per_gas));
    let max_fee = floor.max(over_attack).min(config.max_fee_per_gas_cap).max(tip);
    PauseFees { max_fee_per_gas: max_fee, max_priority_fee_per_gas: tip }
}

impl PauseFees {
    pub fn outbids(&self, attack: AttackFees) -> bool {
        self.max_fee_per_gas > attack.max_fee_per_gas
            && self.max_priority_fee_per_gas > attack.max_priority_fee_per_gas
    }

    /// At least 12.5% over a tx being replaced (nodes require 10%), within the caps.
    pub fn bumped_over(self, max_fee: u128, tip: u128, config: &RespondConfig) -> Self {
        let floor = replacement_floor(max_fee, tip);
        let tip = self
            .max_priority_fee_per_gas
            .max(floor.max_priority_fee_per_gas)
            .min(config.max_priority_fee_per_gas_cap);
        let max_fee = self
            .max_fee_per_gas
            .max(floor.max_fee_per_gas)
            .min(config.max_fee_per_gas_cap)
            .max(tip);
        Self { max_fee_per_gas: max_fee, max_priority_fee_per_gas: tip }
    }
}

/// The ladder's max fees, as multiples of the next base fee in quarters: 1.25, 2, 4, 8, 16.
const LADDER_BASE_FEE_QUARTERS: [u128; 5] = [5, 8, 16, 32, 64];

/// The ladder's tips, in gwei.
const LADDER_TIPS_GWEI: [u128; 5] = [2, 5, 20, 100, 500];

/// The fee levels pauses are pre-signed at for a block whose base fee is `next_base_fee`: every
/// tip with every max fee (`base fee × multiple + tip`), capped, levels the caps make equal
/// once. Cheapest first: by tip (what a pause pays over the base fee), then by max fee (the
/// most it may pay).
pub fn ladder_levels(next_base_fee: u64, config: &RespondConfig) -> Vec<PauseFees> {
    let base = u128::from(next_base_fee);
    let mut levels = Vec::with_capacity(LADDER_TIPS_GWEI.len() * LADDER_BASE_FEE_QUARTERS.len());
    for tip in LADDER_TIPS_GWEI {
        let tip = (tip * GWEI).min(config.max_priority_fee_per_gas_cap);
        for quarters in LADDER_BASE_FEE_QUARTERS {
            let max_fee = (base.saturating_mul(quarters) / 4)
                .saturating_add(tip)
                .min(config.max_fee_per_gas_cap)
                .max(tip);
            levels.push(PauseFees { max_fee_per_gas: max_fee, max_priority_fee_per_gas: tip });
        }
    }
    levels.sort_by_key(PauseFees::cost_order);
    levels.dedup();
    levels
}

impl PauseFees {
    /// Cheaper first: the tip is what a pause pays over the base fee; the max fee only bounds it.
    pub fn cost_order(&self) -> (u128, u128) {
        (self.max_priority_fee_per_gas, self.max_fee_per_gas)
    }

    /// At least as high as `other` on both fields.
    pub fn at_least(&self, other: PauseFees) -> bool {
        self.max_fee_per_gas >= other.max_fee_per_gas
            && self.max_priority_fee_per_gas >= other.max_priority_fee_per_gas
    }
}

/// The least a replacement for a pause in flight at (`max_fee`, `tip`) must pay: 12.5% more on
/// both fields (nodes require 10%).
pub fn replacement_floor(max_fee: u128, tip: u128) -> PauseFees {
    let bump = |v: u128| v.saturating_add(v / 8).saturating_add(1);
    PauseFees { max_fee_per_gas: bump(max_fee), max_priority_fee_per_gas: bump(tip) }
}
