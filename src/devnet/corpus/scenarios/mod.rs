//! The corpus scenarios, one file per protocol shape: honest traffic (each the benign twin of an
//! attack of the same shape where it says so) and attacks, each a short async sequence of set-up
//! txs (mined before the guard starts) and blocks of txs under test.

mod deployments;
mod erc20_vault;
mod erc4626;
mod eth_vault;
mod governance;
mod ledger;
mod lending;
mod rewards;
mod router;
mod treasury;
mod uniswap;

use alloy::primitives::{Address, U256};
use futures::future::BoxFuture;

use super::{CorpusError, Kind, Shape, abi::IUniswapV2Pair, driver::Driver};

/// A scenario's body: set-up, then the blocks under test, then (for the corpus test) what it
/// expects to have happened.
pub(crate) type RunFn = for<'a> fn(&'a mut Driver) -> BoxFuture<'a, Result<(), CorpusError>>;

#[derive(Debug, Clone, Copy)]
pub(crate) struct ScenarioDef {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) shape: Shape,
    /// One line: who does what, and why it is honest or an attack.
    pub(crate) about: &'static str,
    /// For an honest scenario: the attack of the same shape it is the benign twin of.
    pub(crate) twin_of: Option<&'static str>,
    pub(crate) run: RunFn,
}

const fn honest(name: &'static str, shape: Shape, about: &'static str, run: RunFn) -> ScenarioDef {
    ScenarioDef { name, kind: Kind::Honest, shape, about, twin_of: None, run }
}

const fn twin(
    name: &'static str,
    shape: Shape,
    of: &'static str,
    about: &'static str,
    run: RunFn,
) -> ScenarioDef {
    ScenarioDef { name, kind: Kind::Honest, shape, about, twin_of: Some(of), run }
}

const fn attack(name: &'static str, shape: Shape, about: &'static str, run: RunFn) -> ScenarioDef {
    ScenarioDef { name, kind: Kind::Attack, shape, about, twin_of: None, run }
}

/// Every scenario, shape by shape.
pub(crate) fn all() -> Vec<&'static ScenarioDef> {
    [
        eth_vault::SCENARIOS,
        erc20_vault::SCENARIOS,
        erc4626::SCENARIOS,
        lending::SCENARIOS,
        uniswap::SCENARIOS,
        treasury::SCENARIOS,
        governance::SCENARIOS,
        router::SCENARIOS,
        ledger::SCENARIOS,
        rewards::SCENARIOS,
        deployments::SCENARIOS,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The names of every scenario, in run order.
pub fn scenario_names() -> Vec<&'static str> {
    all().into_iter().map(|s| s.name).collect()
}

/// What the config protects for a shape: the operator's own contracts.
pub(crate) fn protected(shape: Shape) -> &'static [&'static str] {
    match shape {
        Shape::EthVault => &["EtherBank"],
        Shape::Erc20Vault => &["HookShareVault"],
        Shape::Erc4626 => &["Vault4626"],
        Shape::Lending => &["SpotMarket", "OracleMarket", "RateMarket", "RateVault"],
        Shape::UniswapV2 => &["Pair"],
        Shape::Treasury => &["RoleTreasury", "InitTreasury", "UpgradeTreasury"],
        Shape::Governance => &["FlashGovernor", "Timelock"],
        Shape::Router => &["SwapAggregator"],
        Shape::Ledger => &["LDG", "SwapAggregator"],
        Shape::Rewards => &["VestingRewards"],
    }
}

/// 99% of `x`: what an EOA must at least gain when it also pays gas.
pub(crate) fn almost(x: U256) -> U256 {
    x - x / U256::from(100u64)
}

/// `x * factor` (for trade sizes; precision of an f64 is plenty).
pub(crate) fn scaled(x: U256, factor: f64) -> U256 {
    U256::from((x.saturating_to::<u128>() as f64 * factor) as u128)
}

/// Uniswap V2's output for `amount_in` (0.3% fee).
pub(crate) fn amount_out(amount_in: U256, reserve_in: U256, reserve_out: U256) -> U256 {
    let with_fee = amount_in * U256::from(997u64);
    with_fee * reserve_out / (reserve_in * U256::from(1000u64) + with_fee)
}

/// The WETH/USDX pair's reserves as (WETH, USDX).
pub(crate) async fn pair_reserves(d: &Driver) -> Result<(U256, U256), CorpusError> {
    let pair = d.addr("Pair")?;
    let weth = d.addr("WETH")?;
    let reserves = d.view(pair, IUniswapV2Pair::getReservesCall {}).await?;
    let token0: Address = d.view(pair, IUniswapV2Pair::token0Call {}).await?;
    let (r0, r1) = (U256::from(reserves.reserve0), U256::from(reserves.reserve1));
    Ok(if token0 == weth { (r0, r1) } else { (r1, r0) })
}
