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
        let bump = |v: u128| v.saturating_add(v / 8).saturating_add(1);
        let tip =
            self.max_priority_fee_per_gas.max(bump(tip)).min(config.max_priority_fee_per_gas_cap);
        let max_fee =
            self.max_fee_per_gas.max(bump(max_fee)).min(config.max_fee_per_gas_cap).max(tip);
        Self { max_fee_per_gas: max_fee, max_priority_fee_per_gas: tip }
    }
}
