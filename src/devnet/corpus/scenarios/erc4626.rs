//! Vault4626, OpenZeppelin's ERC-4626 over USDX: redemptions of every size, a whale's urgent exit,
//! an approved operator withdrawing for its owner, and OpenZeppelin's multicall. (No attack: the
//! shape's honest traffic is what a plain config must stay silent on.)

use alloy::sol_types::SolCall;
use futures::future::BoxFuture;

use super::{ScenarioDef, honest};
use crate::devnet::corpus::{
    Actor::{self, *},
    CorpusError, Shape,
    abi::IERC4626,
    driver::{Asset, Driver, Tx},
    usdx,
};

const S: Shape = Shape::Erc4626;

pub(super) const SCENARIOS: &[ScenarioDef] = &[
    honest("erc4626-redeem-1pct", S, "user redeems 10k shares, 1% of the vault", redeem_1pct),
    honest("erc4626-redeem-50pct", S, "whale redeems 500k shares, half the vault", redeem_half),
    honest("erc4626-redeem-all-own", S, "user redeems all its 40k shares", redeem_own),
    honest(
        "erc4626-whale-exit-urgent",
        S,
        "whale redeems all 950k shares (95% of the vault) with a 30 gwei tip",
        whale_exit,
    ),
    honest(
        "erc4626-operator-withdraw",
        S,
        "keeper, approved for 20k shares, withdraws 20k USDX for the user, paid to the user",
        operator_withdraw,
    ),
    honest(
        "erc4626-multicall",
        S,
        "user multicalls withdraw(10k to itself) and deposit(5k for lp)",
        multicall,
    ),
];

fn redeem(from: Actor, vault: alloy::primitives::Address, n: u64) -> Tx {
    let owner = from.address();
    Tx::call(from, vault, IERC4626::redeemCall { shares: usdx(n), receiver: owner, owner })
}

fn redeem_1pct(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (vault, token) = (d.addr("Vault4626")?, d.addr("USDX")?);
        d.expect_gain("user gets 10k USDX", User.address(), Asset::Token(token), usdx(10_000))
            .await?;
        d.block(vec![redeem(User, vault, 10_000)]).await?;
        Ok(())
    })
}

fn redeem_half(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (vault, token) = (d.addr("Vault4626")?, d.addr("USDX")?);
        d.expect_loss("the vault pays 500k USDX", vault, Asset::Token(token), usdx(500_000))
            .await?;
        d.block(vec![redeem(Whale, vault, 500_000)]).await?;
        Ok(())
    })
}

fn redeem_own(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (vault, token) = (d.addr("Vault4626")?, d.addr("USDX")?);
        d.expect_gain("user gets 40k USDX", User.address(), Asset::Token(token), usdx(40_000))
            .await?;
        d.block(vec![redeem(User, vault, 40_000)]).await?;
        Ok(())
    })
}

fn whale_exit(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (vault, token) = (d.addr("Vault4626")?, d.addr("USDX")?);
        d.expect_loss("the vault pays 950k USDX", vault, Asset::Token(token), usdx(950_000))
            .await?;
        d.block(vec![redeem(Whale, vault, 950_000).urgent()]).await?;
        Ok(())
    })
}

fn operator_withdraw(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (vault, token) = (d.addr("Vault4626")?, d.addr("USDX")?);
        d.queue(Tx::call(
            User,
            vault,
            IERC4626::approveCall { spender: Keeper.address(), amount: usdx(20_000) },
        ));
        d.mine_setup().await?;
        d.expect_gain("user gets 20k USDX", User.address(), Asset::Token(token), usdx(20_000))
            .await?;
        let owner = User.address();
        let call = IERC4626::withdrawCall { assets: usdx(20_000), receiver: owner, owner };
        d.block(vec![Tx::call(Keeper, vault, call)]).await?;
        Ok(())
    })
}

fn multicall(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (vault, token) = (d.addr("Vault4626")?, d.addr("USDX")?);
        let owner = User.address();
        let calls = vec![
            IERC4626::withdrawCall { assets: usdx(10_000), receiver: owner, owner }
                .abi_encode()
                .into(),
            IERC4626::depositCall { assets: usdx(5_000), receiver: Lp.address() }
                .abi_encode()
                .into(),
        ];
        d.expect_gain("lp gets shares", Lp.address(), Asset::Token(vault), usdx(5_000)).await?;
        d.expect_gain("user nets 5k USDX", owner, Asset::Token(token), usdx(5_000)).await?;
        d.block(vec![Tx::call(User, vault, IERC4626::multicallCall { data: calls })]).await?;
        Ok(())
    })
}
