//! The allowed range of every limit, and why: a value outside it would blind or disarm the guard.

use std::ops::RangeInclusive;

/// The most gas one tx may use: EIP-7825 (Osaka) caps a tx at 2^24; mainnet and anvil 1.7
/// enforce it, so a pending tx asking for more can never be mined, and revm refuses to run one.
pub const TX_GAS_CAP: u64 = 1 << 24;

/// `simulation.max_tx_gas`. A tx asking for more gas than this is simulated with this much, and
/// an attack that needs more runs out of gas in the simulation and is missed. Exploits commonly
/// take 0.3–3M gas (flash loans, multi-hop swaps), so below 1M the guard is blind to most of
/// them; 21,000 (a plain transfer) would blind it to every contract call.
pub const MAX_TX_GAS: RangeInclusive<u64> = 1_000_000..=TX_GAS_CAP;

/// `simulation.view_gas_limit`. Invariant and claim views run in revm under the same per-tx cap;
/// below 100k a view that reads a few cold slots or calls a token runs out of gas, and the rule
/// that needs it cannot be checked.
pub const VIEW_GAS_LIMIT: RangeInclusive<u64> = 100_000..=TX_GAS_CAP;

/// `simulation.workers`: one EVM per thread; more than 256 threads is a typo, not a machine.
pub const WORKERS: RangeInclusive<u64> = 1..=256;

/// `simulation.keep_warm_ms`: how often an idle worker runs its keep-warm (0: never). Above a
/// second the caches are cold again by the time it runs; it is no keep-warm at all.
pub(super) const KEEP_WARM_MS: RangeInclusive<u64> = 0..=1_000;

/// `simulation.worker_nice`: Linux's nice range (-20 runs first, 19 last).
pub(super) const WORKER_NICE: std::ops::RangeInclusive<i64> = -20..=19;

/// `simulation.queue_capacity`. Under 1,024 an ordinary burst overflows the queue and txs are
/// dropped unsimulated; above 4Mi (2^22) the queue holds more than any node's pool and only
/// hides that the workers are behind.
pub const QUEUE_CAPACITY: RangeInclusive<u64> = 1_024..=4_194_304;

/// `fork.max_entries`: accounts plus slots kept (~120 bytes each). Under 10,000 the protected
/// state and one busy block no longer fit and every block refetches; above 100M the cache
/// outgrows any host it would run on (~12 GB).
pub(super) const FORK_MAX_ENTRIES: RangeInclusive<u64> = 10_000..=100_000_000;

/// `fork.max_age_blocks`: an entry unused this long is dropped. Under 64 blocks the state a
/// reorg rewinds to is gone; above ~1 year of blocks it is no bound at all.
pub(super) const FORK_MAX_AGE_BLOCKS: RangeInclusive<u64> = 64..=2_628_000;

/// `respond.resend_blocks`: at least one block, or a pause is never re-sent; a pause that has
/// not landed in 64 blocks (~13 min) needs a person, not another resend.
pub const RESEND_BLOCKS: RangeInclusive<u64> = 1..=64;

/// `cumulative.window_blocks`: at least one block back; a day of blocks at most (the sums are
/// kept in memory).
pub(super) const CUMULATIVE_WINDOW: RangeInclusive<u64> = 1..=7_200;

/// `protect.price_move_bps`: a read price moving less than 0.1% inside one tx is noise.
pub(super) const PRICE_MOVE_BPS: RangeInclusive<u64> = 10..=10_000;

/// `protect.drain_threshold_bps`: 0 would flag every wei; above 10,000 (100%) nothing.
pub const DRAIN_THRESHOLD_BPS: RangeInclusive<u64> = 1..=10_000;

/// Largest fee cap, in gwei (either field): 1,000,000 gwei a gas is already 200 ETH for a
/// 200k-gas pause; more is a unit mistake (wei typed as gwei).
pub const MAX_FEE_GWEI: f64 = 1_000_000.0;

/// Intrinsic gas of any tx.
const TX_BASE_GAS: u64 = 21_000;

/// The least a pause that changes anything costs to run: one storage write of a cold slot
/// (2,100 to access it, 2,900 to change a non-zero value; setting a zero slot costs more).
const PAUSE_EXECUTION_FLOOR: u64 = 5_000;

/// The smallest gas limit a node accepts for a pause with `calldata` and that leaves the call
/// enough to write one slot: 21,000 plus calldata at 4 gas a token (a zero byte is one token,
/// any other byte four), and never under EIP-7623's floor of 10 gas a token.
pub fn pause_gas_floor(calldata: &[u8]) -> u64 {
    let tokens: u64 = calldata.iter().map(|b| if *b == 0 { 1 } else { 4 }).sum();
    let standard = 4 * tokens + PAUSE_EXECUTION_FLOOR;
    let eip7623_floor = 10 * tokens;
    TX_BASE_GAS + standard.max(eip7623_floor)
}

/// A range as the error prints it, `1_000_000..=16_777_216` → `1000000..=16777216`.
pub(super) fn shown(range: &RangeInclusive<u64>) -> String {
    format!("{}..={}", range.start(), range.end())
}
