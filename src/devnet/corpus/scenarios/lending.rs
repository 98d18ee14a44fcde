//! Three LendMarkets (priced from the WETH/USDX pair's spot reserves, from an owner-set oracle,
//! and from RateVault's exchange rate): lenders leaving, large and small borrows, a multicall
//! that repays and frees collateral, a keeper's liquidation, a flash loan that re-enters and
//! repays, a leveraged loop, a hook that reads a stale view; and three attacks (spot price
//! manipulation above and below the drain threshold, read-only re-entry through `getRate()`).

use alloy::{primitives::U256, sol_types::SolCall};
use futures::future::BoxFuture;

use super::{ScenarioDef, attack, honest, twin};
use crate::devnet::corpus::{
    Actor::*,
    CorpusError, Shape,
    abi::{
        IFlashRefinancer, ILendMarket, IManualFeed, IRateReadOnlyAttack, IRateVault, ISmartWallet,
        ISpotPriceAttack, IUniswapV2Router02, WalletCall,
    },
    base::{DEADLINE, wallet_exec},
    bps,
    driver::{Asset, Check, Driver, Tx},
    eth, usdx,
};

const S: Shape = Shape::Lending;

pub(super) const SCENARIOS: &[ScenarioDef] = &[
    honest(
        "lending-lender-exit-all",
        S,
        "whale withdraws its whole 500k USDX supply from SpotMarket (37% of its cash)",
        lender_exit,
    ),
    honest(
        "lending-borrow-large",
        S,
        "borrower (500 WETH posted) borrows 600k more USDX: 44% of SpotMarket's cash, LTV 70%",
        borrow_large,
    ),
    twin(
        "lending-borrow-small",
        S,
        "lending-spot-price-manipulation-small",
        "borrower borrows 5% of SpotMarket's cash at the fair price",
        borrow_small,
    ),
    honest(
        "lending-repay-withdraw-multicall",
        S,
        "lp multicalls repay(all 40k) and withdrawCollateral(all 50 WETH) on SpotMarket",
        repay_withdraw_multicall,
    ),
    honest(
        "lending-liquidation-by-keeper",
        S,
        "ETH falls to 1,700 (oracle); keeper repays 70k of the borrower's debt and seizes ~43 WETH",
        liquidation,
    ),
    honest(
        "lending-flash-loan-reenter-repay",
        S,
        "borrower's refinancer flash-borrows its debt, repays and withdraws its 50 WETH inside the loan, repays the loan",
        flash_refinance,
    ),
    twin(
        "lending-rate-unstake-hook-reads",
        S,
        "lending-rate-read-only-reentrancy",
        "the wallet unstakes 5 rsETH; its receive() reads RateMarket.maxBorrow() (inflated) and borrows nothing",
        rate_hook_reads,
    ),
    twin(
        "lending-leverage-loop",
        S,
        "lending-spot-price-manipulation",
        "the wallet buys WETH with 20k USDX, posts 15 WETH and borrows 10k in one tx, at the fair price",
        leverage_loop,
    ),
    attack(
        "lending-spot-price-manipulation",
        S,
        "attacker pumps WETH on the pair with 3M USDX, posts 100 WETH, borrows the max (~51% of cash), dumps",
        spot_manipulation,
    ),
    attack(
        "lending-spot-price-manipulation-small",
        S,
        "the same pump, 10 WETH posted, borrows 5% of SpotMarket's cash (below the 10% threshold)",
        spot_manipulation_small,
    ),
    attack(
        "lending-rate-read-only-reentrancy",
        S,
        "attacker stakes 2,000 ETH, posts a fifth, unstakes the rest and borrows all RateMarket's cash inside the payout",
        rate_read_only,
    ),
];

fn lender_exit(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (market, token) = (d.addr("SpotMarket")?, d.addr("USDX")?);
        d.expect_gain("whale gets 500k", Whale.address(), Asset::Token(token), usdx(500_000))
            .await?;
        d.block(vec![Tx::call(Whale, market, ILendMarket::withdrawCall { amount: usdx(500_000) })])
            .await?;
        Ok(())
    })
}

fn borrow_large(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (market, token) = (d.addr("SpotMarket")?, d.addr("USDX")?);
        d.expect_gain("borrower gets 600k", Borrower.address(), Asset::Token(token), usdx(600_000))
            .await?;
        d.block(vec![Tx::call(
            Borrower,
            market,
            ILendMarket::borrowCall { amount: usdx(600_000) },
        )])
        .await?;
        Ok(())
    })
}

fn borrow_small(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (market, token) = (d.addr("SpotMarket")?, d.addr("USDX")?);
        let amount = bps(d.token_balance(token, market).await?, 500);
        d.expect_gain(
            "borrower gets 5% of the cash",
            Borrower.address(),
            Asset::Token(token),
            amount,
        )
        .await?;
        d.block(vec![Tx::call(Borrower, market, ILendMarket::borrowCall { amount })]).await?;
        Ok(())
    })
}

fn repay_withdraw_multicall(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (market, weth) = (d.addr("SpotMarket")?, d.addr("WETH")?);
        let calls = vec![
            ILendMarket::repayCall { amount: usdx(40_000) }.abi_encode().into(),
            ILendMarket::withdrawCollateralCall { amount: eth(50) }.abi_encode().into(),
        ];
        d.expect_gain("lp gets its 50 WETH back", Lp.address(), Asset::Token(weth), eth(50))
            .await?;
        d.block(vec![Tx::call(Lp, market, ILendMarket::multicallCall { data: calls })]).await?;
        Ok(())
    })
}

fn liquidation(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (market, weth, feed) =
            (d.addr("OracleMarket")?, d.addr("WETH")?, d.addr("ManualFeed")?);
        d.queue(Tx::call(Deployer, feed, IManualFeed::setPriceCall { price: usdx(1_700) }));
        d.mine_setup().await?;
        d.expect_gain("keeper seizes ~43 WETH", Keeper.address(), Asset::Token(weth), eth(43))
            .await?;
        let call =
            ILendMarket::liquidateCall { borrower: Borrower.address(), repayAmount: usdx(70_000) };
        d.block(vec![Tx::call(Keeper, market, call)]).await?;
        Ok(())
    })
}

fn flash_refinance(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (refinancer, weth) = (d.addr("FlashRefinancer")?, d.addr("WETH")?);
        d.expect_gain(
            "borrower gets its 50 WETH back",
            Borrower.address(),
            Asset::Token(weth),
            eth(50),
        )
        .await?;
        d.block(vec![Tx::call(Borrower, refinancer, IFlashRefinancer::closeCall {})]).await?;
        Ok(())
    })
}

fn rate_hook_reads(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (market, vault, wallet) =
            (d.addr("RateMarket")?, d.addr("RateVault")?, d.addr("UserWallet")?);
        let view = ILendMarket::maxBorrowCall { user: wallet }.abi_encode();
        d.queue(Tx::call(
            User,
            wallet,
            ISmartWallet::setHookCall { mode: 1, watched: market, viewCall: view.into() },
        ));
        d.mine_setup().await?;
        d.expect_gain("the wallet gets ~5 ETH", wallet, Asset::Eth, eth(4)).await?;
        d.expect_check("its receive() read maxBorrow", Check::HookRan { wallet });
        d.expect_same("RateMarket lends nothing", market, Asset::Token(d.addr("USDX")?)).await?;
        let out = IRateVault::unstakeCall { shares: eth(5) }.abi_encode();
        d.block(vec![wallet_exec(wallet, vault, U256::ZERO, out)]).await?;
        Ok(())
    })
}

fn leverage_loop(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (market, router, wallet) =
            (d.addr("SpotMarket")?, d.addr("UniswapV2Router02")?, d.addr("UserWallet")?);
        let (weth, token) = (d.addr("WETH")?, d.addr("USDX")?);
        let swap = IUniswapV2Router02::swapExactTokensForTokensCall {
            amountIn: usdx(20_000),
            amountOutMin: U256::ZERO,
            path: vec![token, weth],
            to: wallet,
            deadline: DEADLINE,
        };
        let call =
            |target, data: Vec<u8>| WalletCall { target, value: U256::ZERO, data: data.into() };
        let calls = vec![
            call(router, swap.abi_encode()),
            call(market, ILendMarket::depositCollateralCall { amount: eth(15) }.abi_encode()),
            call(market, ILendMarket::borrowCall { amount: usdx(10_000) }.abi_encode()),
        ];
        d.expect_gain("SpotMarket holds 15 more WETH", market, Asset::Token(weth), eth(15)).await?;
        d.block(vec![Tx::call(User, wallet, ISmartWallet::execBatchCall { calls })]).await?;
        Ok(())
    })
}

fn spot_manipulation(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (market, token, attack) =
            (d.addr("SpotMarket")?, d.addr("USDX")?, d.addr("SpotPriceAttack")?);
        d.expect_loss(
            "SpotMarket loses > 40% of its cash",
            market,
            Asset::Token(token),
            usdx(550_000),
        )
        .await?;
        d.expect_gain(
            "the attacker nets > 500k USDX",
            Attacker.address(),
            Asset::Token(token),
            usdx(500_000),
        )
        .await?;
        let call = ISpotPriceAttack::attackCall {
            pumpAmount: usdx(3_000_000),
            collateralAmount: eth(100),
            borrowAmount: U256::ZERO,
        };
        d.block(vec![Tx::call(Attacker, attack, call).attack()]).await?;
        Ok(())
    })
}

fn spot_manipulation_small(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (market, token, attack) =
            (d.addr("SpotMarket")?, d.addr("USDX")?, d.addr("SpotPriceAttack")?);
        let borrow = bps(d.token_balance(token, market).await?, 500);
        d.expect_loss("SpotMarket loses 5% of its cash", market, Asset::Token(token), borrow)
            .await?;
        d.expect_gain(
            "the attacker nets > 30k USDX",
            Attacker.address(),
            Asset::Token(token),
            usdx(30_000),
        )
        .await?;
        let call = ISpotPriceAttack::attackCall {
            pumpAmount: usdx(3_000_000),
            collateralAmount: eth(10),
            borrowAmount: borrow,
        };
        d.block(vec![Tx::call(Attacker, attack, call).attack()]).await?;
        Ok(())
    })
}

fn rate_read_only(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (market, token, attack) =
            (d.addr("RateMarket")?, d.addr("USDX")?, d.addr("RateReadOnlyAttack")?);
        d.expect_loss(
            "RateMarket loses all its cash",
            market,
            Asset::Token(token),
            usdx(1_000_000),
        )
        .await?;
        d.expect_gain(
            "the attacker takes it",
            Attacker.address(),
            Asset::Token(token),
            usdx(1_000_000),
        )
        .await?;
        d.block(vec![
            Tx::call(Attacker, attack, IRateReadOnlyAttack::attackCall {})
                .value(eth(2_000))
                .attack(),
        ])
        .await?;
        Ok(())
    })
}
