//! The real Uniswap V2 WETH/USDX pair (npm bytecode): swaps moving the price ±1%, ±10%, ±30%
//! through Router02 and directly on the pair (a smart wallet's transfer + swap), an ETH swap,
//! one through the pair's circuit breaker, adding liquidity, and removing an LP's whole position.

use alloy::{
    primitives::{Address, U256},
    sol_types::SolCall,
};
use futures::future::BoxFuture;

use super::{ScenarioDef, amount_out, honest, pair_reserves, scaled};
use crate::devnet::corpus::{
    Actor::*,
    CorpusError, Shape,
    abi::{IERC20, IPairBreaker, ISmartWallet, IUniswapV2Pair, IUniswapV2Router02, WalletCall},
    base::DEADLINE,
    driver::{Asset, Driver, Tx},
    eth, usdx,
};

const S: Shape = Shape::UniswapV2;

pub(super) const SCENARIOS: &[ScenarioDef] = &[
    honest(
        "univ2-router-swap-up-1pct",
        S,
        "user buys WETH with USDX via Router02: WETH +1%",
        router_up_1,
    ),
    honest(
        "univ2-router-swap-down-1pct",
        S,
        "user sells WETH for USDX via Router02: WETH -1%",
        router_down_1,
    ),
    honest(
        "univ2-router-swap-up-10pct",
        S,
        "user buys WETH with USDX via Router02: WETH +10%",
        router_up_10,
    ),
    honest(
        "univ2-router-swap-down-10pct",
        S,
        "user sells WETH for USDX via Router02: WETH -10%",
        router_down_10,
    ),
    honest(
        "univ2-router-swap-up-30pct",
        S,
        "user buys WETH with USDX via Router02: WETH +30%",
        router_up_30,
    ),
    honest(
        "univ2-router-swap-down-30pct",
        S,
        "user sells WETH for USDX via Router02: WETH -30%",
        router_down_30,
    ),
    honest(
        "univ2-direct-swap-up-1pct",
        S,
        "the wallet transfers USDX to the pair and calls pair.swap in one tx: WETH +1%",
        direct_up_1,
    ),
    honest(
        "univ2-direct-swap-down-1pct",
        S,
        "the wallet transfers WETH to the pair and calls pair.swap in one tx: WETH -1%",
        direct_down_1,
    ),
    honest(
        "univ2-direct-swap-up-10pct",
        S,
        "the wallet transfers USDX to the pair and calls pair.swap in one tx: WETH +10%",
        direct_up_10,
    ),
    honest(
        "univ2-direct-swap-down-10pct",
        S,
        "the wallet transfers WETH to the pair and calls pair.swap in one tx: WETH -10%",
        direct_down_10,
    ),
    honest(
        "univ2-direct-swap-up-30pct",
        S,
        "the wallet transfers USDX to the pair and calls pair.swap in one tx: WETH +30%",
        direct_up_30,
    ),
    honest(
        "univ2-direct-swap-down-30pct",
        S,
        "the wallet transfers WETH to the pair and calls pair.swap in one tx: WETH -30%",
        direct_down_30,
    ),
    honest(
        "univ2-router-eth-swap",
        S,
        "user swaps 50 ETH for USDX with swapExactETHForTokens (WETH -7%)",
        eth_swap,
    ),
    honest(
        "univ2-breaker-swap-10pct",
        S,
        "user buys WETH through the pair's circuit breaker: WETH +10%",
        breaker_swap,
    ),
    honest("univ2-add-liquidity", S, "whale adds 100 WETH + 200k USDX via Router02", add_liquidity),
    honest(
        "univ2-remove-all-liquidity",
        S,
        "lp removes its whole LP position (~77% of the reserves) via Router02",
        remove_all,
    ),
];

/// USDX in that moves WETH's price up by `pct` (price ∝ (y/x), so y grows by √(1+pct)).
async fn usdx_for_up(d: &Driver, pct: f64) -> Result<U256, CorpusError> {
    let (_, usdx_reserve) = pair_reserves(d).await?;
    Ok(scaled(usdx_reserve, (1.0 + pct).sqrt() - 1.0))
}

/// WETH in that moves WETH's price down by `pct`.
async fn weth_for_down(d: &Driver, pct: f64) -> Result<U256, CorpusError> {
    let (weth_reserve, _) = pair_reserves(d).await?;
    Ok(scaled(weth_reserve, 1.0 / (1.0 - pct).sqrt() - 1.0))
}

/// The trade that moves WETH's price by `pct` (signed): USDX in to push it up, WETH in to push
/// it down.
async fn trade_for(d: &Driver, pct: f64) -> Result<(bool, U256), CorpusError> {
    Ok(if pct > 0.0 {
        (true, usdx_for_up(d, pct).await?)
    } else {
        (false, weth_for_down(d, -pct).await?)
    })
}

/// The user moves WETH's price by `pct` through Router02.
async fn router_move(d: &mut Driver, pct: f64) -> Result<(), CorpusError> {
    let (weth, token) = (d.addr("WETH")?, d.addr("USDX")?);
    let (from_usdx, amount_in) = trade_for(d, pct).await?;
    let (weth_reserve, usdx_reserve) = pair_reserves(d).await?;
    let (path, out, token_out) = if from_usdx {
        (vec![token, weth], amount_out(amount_in, usdx_reserve, weth_reserve), weth)
    } else {
        (vec![weth, token], amount_out(amount_in, weth_reserve, usdx_reserve), token)
    };
    let call = IUniswapV2Router02::swapExactTokensForTokensCall {
        amountIn: amount_in,
        amountOutMin: out,
        path,
        to: User.address(),
        deadline: DEADLINE,
    };
    d.expect_gain("user gets the quoted amount", User.address(), Asset::Token(token_out), out)
        .await?;
    let router = d.addr("UniswapV2Router02")?;
    d.block(vec![Tx::call(User, router, call)]).await?;
    Ok(())
}

/// The wallet moves WETH's price by `pct`: it pays the pair and calls `pair.swap`, in one tx.
async fn direct_move(d: &mut Driver, pct: f64) -> Result<(), CorpusError> {
    let (pair, wallet) = (d.addr("Pair")?, d.addr("UserWallet")?);
    let (weth, token) = (d.addr("WETH")?, d.addr("USDX")?);
    let (from_usdx, amount_in) = trade_for(d, pct).await?;
    let (weth_reserve, usdx_reserve) = pair_reserves(d).await?;
    let token0: Address = d.view(pair, IUniswapV2Pair::token0Call {}).await?;
    let (token_in, token_out, out) = if from_usdx {
        (token, weth, amount_out(amount_in, usdx_reserve, weth_reserve))
    } else {
        (weth, token, amount_out(amount_in, weth_reserve, usdx_reserve))
    };
    let (out0, out1) = if token0 == token_in { (U256::ZERO, out) } else { (out, U256::ZERO) };
    let call = |target, data: Vec<u8>| WalletCall { target, value: U256::ZERO, data: data.into() };
    let swap = IUniswapV2Pair::swapCall {
        amount0Out: out0,
        amount1Out: out1,
        to: wallet,
        data: Default::default(),
    };
    let calls = vec![
        call(token_in, IERC20::transferCall { to: pair, amount: amount_in }.abi_encode()),
        call(pair, swap.abi_encode()),
    ];
    d.expect_gain("the wallet gets the quoted amount", wallet, Asset::Token(token_out), out)
        .await?;
    d.block(vec![Tx::call(User, wallet, ISmartWallet::execBatchCall { calls })]).await?;
    Ok(())
}

macro_rules! price_move {
    ($($name:ident => $how:ident($pct:expr)),* $(,)?) => {
        $(
            fn $name(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
                Box::pin($how(d, $pct))
            }
        )*
    };
}

price_move!(
    router_up_1 => router_move(0.01),
    router_down_1 => router_move(-0.01),
    router_up_10 => router_move(0.10),
    router_down_10 => router_move(-0.10),
    router_up_30 => router_move(0.30),
    router_down_30 => router_move(-0.30),
    direct_up_1 => direct_move(0.01),
    direct_down_1 => direct_move(-0.01),
    direct_up_10 => direct_move(0.10),
    direct_down_10 => direct_move(-0.10),
    direct_up_30 => direct_move(0.30),
    direct_down_30 => direct_move(-0.30),
);

fn eth_swap(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (weth, token) = (d.addr("WETH")?, d.addr("USDX")?);
        let call = IUniswapV2Router02::swapExactETHForTokensCall {
            amountOutMin: U256::ZERO,
            path: vec![weth, token],
            to: User.address(),
            deadline: DEADLINE,
        };
        d.expect_gain("user gets USDX", User.address(), Asset::Token(token), usdx(90_000)).await?;
        let router = d.addr("UniswapV2Router02")?;
        d.block(vec![Tx::call(User, router, call).value(eth(50))]).await?;
        Ok(())
    })
}

fn breaker_swap(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (breaker, token, weth) = (d.addr("PairBreaker")?, d.addr("USDX")?, d.addr("WETH")?);
        d.queue(Tx::call(User, token, IERC20::approveCall { spender: breaker, amount: U256::MAX }));
        d.mine_setup().await?;
        let amount = usdx_for_up(d, 0.10).await?;
        d.expect_gain("user gets WETH", User.address(), Asset::Token(weth), eth(50)).await?;
        let call = IPairBreaker::swapExactInCall {
            tokenIn: token,
            amountIn: amount,
            minOut: U256::ZERO,
            to: User.address(),
        };
        d.block(vec![Tx::call(User, breaker, call)]).await?;
        Ok(())
    })
}

fn add_liquidity(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (router, pair) = (d.addr("UniswapV2Router02")?, d.addr("Pair")?);
        let (weth, token) = (d.addr("WETH")?, d.addr("USDX")?);
        let call = IUniswapV2Router02::addLiquidityCall {
            tokenA: weth,
            tokenB: token,
            amountADesired: eth(100),
            amountBDesired: usdx(200_000),
            amountAMin: U256::ZERO,
            amountBMin: U256::ZERO,
            to: Whale.address(),
            deadline: DEADLINE,
        };
        d.expect_gain("the pair takes 100 WETH", pair, Asset::Token(weth), eth(99)).await?;
        d.block(vec![Tx::call(Whale, router, call)]).await?;
        Ok(())
    })
}

fn remove_all(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (router, pair) = (d.addr("UniswapV2Router02")?, d.addr("Pair")?);
        let (weth, token) = (d.addr("WETH")?, d.addr("USDX")?);
        let liquidity = d.token_balance(pair, Lp.address()).await?;
        let call = IUniswapV2Router02::removeLiquidityCall {
            tokenA: weth,
            tokenB: token,
            liquidity,
            amountAMin: U256::ZERO,
            amountBMin: U256::ZERO,
            to: Lp.address(),
            deadline: DEADLINE,
        };
        d.expect_loss("the pair pays out ~77% of its WETH", pair, Asset::Token(weth), eth(990))
            .await?;
        d.block(vec![Tx::call(Lp, router, call)]).await?;
        Ok(())
    })
}
