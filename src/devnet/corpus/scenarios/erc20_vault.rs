//! HookShareVault, an ERC-20 share vault over an ERC-777-style token: large redemptions, a smart
//! wallet whose token hooks read the vault mid-deposit and mid-redeem, the owner passing on an
//! airdrop, and two attacks (re-entry through the recipient hook; a stranger sweeping the
//! unlisted airdropped token).

use alloy::{primitives::U256, sol_types::SolCall};
use futures::future::BoxFuture;

use super::{ScenarioDef, attack, honest, twin};
use crate::devnet::corpus::{
    Actor::*,
    CorpusError, Shape,
    abi::{IHookShareVault, IHookToken, IHookVaultReentrancyAttack, ISmartWallet},
    base::{MULTISIG, wallet_exec},
    driver::{Asset, Check, Driver, Tx},
    eth,
};

const S: Shape = Shape::Erc20Vault;

pub(super) const SCENARIOS: &[ScenarioDef] = &[
    honest(
        "hook-vault-redeem-50pct",
        S,
        "whale redeems 500k of its 700k shares: half the vault",
        redeem_half,
    ),
    honest("hook-vault-redeem-all-own", S, "user redeems all its 200k shares (20%)", redeem_own),
    honest(
        "hook-vault-hook-reads-mid-deposit",
        S,
        "the wallet (HOOK hooks on) deposits 50k; its tokensToSend hook reads vault.totalAssets()",
        hook_reads_deposit,
    ),
    twin(
        "hook-vault-hook-reads-mid-redeem",
        S,
        "hook-vault-erc777-reentrancy",
        "the wallet redeems all its 100k shares; its tokensReceived hook reads vault.totalAssets()",
        hook_reads_redeem,
    ),
    twin(
        "hook-vault-owner-sweep",
        S,
        "hook-vault-unlisted-token-sweep",
        "the owner sweeps the 50k RWD airdrop to the DAO multisig",
        owner_sweep,
    ),
    attack(
        "hook-vault-erc777-reentrancy",
        S,
        "attacker deposits 100k HOOK and re-enters redeem() from tokensReceived 25 times (burns come last)",
        hook_reentrancy,
    ),
    attack(
        "hook-vault-unlisted-token-sweep",
        S,
        "a stranger calls sweep(RWD, itself): 50k of a token the config does not list",
        unlisted_sweep,
    ),
];

fn redeem(from: crate::devnet::corpus::Actor, vault: alloy::primitives::Address, n: u64) -> Tx {
    Tx::call(from, vault, IHookShareVault::redeemCall { shares: eth(n) })
}

fn redeem_half(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (vault, hook) = (d.addr("HookShareVault")?, d.addr("HOOK")?);
        d.expect_gain("whale gets 500k HOOK", Whale.address(), Asset::Token(hook), eth(500_000))
            .await?;
        d.block(vec![redeem(Whale, vault, 500_000)]).await?;
        Ok(())
    })
}

fn redeem_own(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (vault, hook) = (d.addr("HookShareVault")?, d.addr("HOOK")?);
        d.expect_gain("user gets 200k HOOK", User.address(), Asset::Token(hook), eth(200_000))
            .await?;
        d.block(vec![redeem(User, vault, 200_000)]).await?;
        Ok(())
    })
}

/// The wallet opts in to HOOK's hooks, and its hooks read `vault.totalAssets()`.
async fn wallet_reads_vault(d: &mut Driver) -> Result<(), CorpusError> {
    let (vault, hook, wallet) = (d.addr("HookShareVault")?, d.addr("HOOK")?, d.addr("UserWallet")?);
    let on = IHookToken::setHooksCall { enabled: true }.abi_encode();
    let view = IHookShareVault::totalAssetsCall {}.abi_encode();
    d.queue_all([
        wallet_exec(wallet, hook, U256::ZERO, on),
        Tx::call(
            User,
            wallet,
            ISmartWallet::setHookCall { mode: 1, watched: vault, viewCall: view.into() },
        ),
    ]);
    d.mine_setup().await
}

fn hook_reads_deposit(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        wallet_reads_vault(d).await?;
        let (vault, wallet) = (d.addr("HookShareVault")?, d.addr("UserWallet")?);
        d.expect_gain(
            "the vault takes 50k HOOK",
            vault,
            Asset::Token(d.addr("HOOK")?),
            eth(50_000),
        )
        .await?;
        d.expect_check("its tokensToSend hook read the vault", Check::HookRan { wallet });
        let deposit = IHookShareVault::depositCall { assets: eth(50_000) }.abi_encode();
        d.block(vec![wallet_exec(wallet, vault, U256::ZERO, deposit)]).await?;
        Ok(())
    })
}

fn hook_reads_redeem(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        wallet_reads_vault(d).await?;
        let (vault, wallet) = (d.addr("HookShareVault")?, d.addr("UserWallet")?);
        d.expect_gain(
            "the wallet gets 100k HOOK",
            wallet,
            Asset::Token(d.addr("HOOK")?),
            eth(100_000),
        )
        .await?;
        d.expect_check("its tokensReceived hook read the vault", Check::HookRan { wallet });
        let out = IHookShareVault::redeemCall { shares: eth(100_000) }.abi_encode();
        d.block(vec![wallet_exec(wallet, vault, U256::ZERO, out)]).await?;
        Ok(())
    })
}

fn owner_sweep(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (vault, rwd) = (d.addr("HookShareVault")?, d.addr("RWD")?);
        d.expect_gain("the multisig gets the airdrop", MULTISIG, Asset::Token(rwd), eth(50_000))
            .await?;
        let sweep = IHookShareVault::sweepCall { token: rwd, to: MULTISIG };
        d.block(vec![Tx::call(Deployer, vault, sweep)]).await?;
        Ok(())
    })
}

fn hook_reentrancy(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (vault, hook) = (d.addr("HookShareVault")?, d.addr("HOOK")?);
        let attacker_contract = d.addr("HookVaultReentrancyAttack")?;
        d.expect_loss("the vault loses most of its HOOK", vault, Asset::Token(hook), eth(600_000))
            .await?;
        d.expect_gain(
            "the attacker takes it",
            Attacker.address(),
            Asset::Token(hook),
            eth(500_000),
        )
        .await?;
        let call = IHookVaultReentrancyAttack::attackCall {
            amount: eth(100_000),
            maxReentries: U256::from(25u64),
        };
        d.block(vec![Tx::call(Attacker, attacker_contract, call).gas(6_000_000).attack()]).await?;
        Ok(())
    })
}

fn unlisted_sweep(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (vault, rwd) = (d.addr("HookShareVault")?, d.addr("RWD")?);
        d.expect_gain(
            "the attacker takes the RWD",
            Attacker.address(),
            Asset::Token(rwd),
            eth(50_000),
        )
        .await?;
        let sweep = IHookShareVault::sweepCall { token: rwd, to: Attacker.address() };
        d.block(vec![Tx::call(Attacker, vault, sweep).attack()]).await?;
        Ok(())
    })
}
