//! EtherBank, an ETH vault: withdrawals of every size, a smart wallet's hooks, a lens contract,
//! and three re-entry attacks (withdrawAll drained from `receive`, the EtherStore leak where only
//! the innermost frame books, and one deployed two blocks before it strikes).

use alloy::{
    primitives::U256,
    sol_types::{SolCall, SolValue},
};
use futures::future::BoxFuture;

use super::{ScenarioDef, almost, attack, honest, twin};
use crate::devnet::corpus::{
    Actor::*,
    CorpusError, Shape,
    abi::{IBankDrainAttack, IBankLeakAttack, IEtherBank, ISmartWallet},
    artifacts::CorpusArtifact,
    base::wallet_exec,
    driver::{Asset, Check, Driver, Tx},
    eth,
};

const S: Shape = Shape::EthVault;

pub(super) const SCENARIOS: &[ScenarioDef] = &[
    honest("eth-bank-withdraw-1pct", S, "user withdraws 1 ETH, 1% of the bank", withdraw_1pct),
    honest("eth-bank-withdraw-50pct", S, "whale withdraws 50 ETH, half the bank", withdraw_50pct),
    honest(
        "eth-bank-withdraw-100pct-own",
        S,
        "lp withdraws all 3 ETH it deposited, by amount",
        withdraw_own,
    ),
    honest(
        "eth-bank-whale-exit-urgent",
        S,
        "whale withdrawAll()s its 90 ETH (90% of the bank) with a 30 gwei tip",
        whale_exit,
    ),
    honest("eth-bank-withdraw-all", S, "user withdrawAll()s its 5 ETH", withdraw_all),
    twin(
        "eth-bank-hook-reads-mid-withdraw",
        S,
        "eth-bank-withdrawall-reentrancy",
        "the user's smart wallet withdrawAll()s; its receive() reads bank.totalAssets() mid-withdraw",
        hook_reads,
    ),
    twin(
        "eth-bank-redeposit-reentry",
        S,
        "eth-bank-innermost-booking-leak",
        "the wallet withdraws 1 ETH; its receive() re-enters deposit() with it (value back in)",
        redeposit,
    ),
    twin(
        "eth-bank-lens-deploy",
        S,
        "eth-bank-deploy-then-attack",
        "user deploys a lens whose constructor only reads the bank's views",
        lens_deploy,
    ),
    attack(
        "eth-bank-withdrawall-reentrancy",
        S,
        "attacker's contract deposits 10 ETH and re-enters withdrawAll() from receive() until the bank is dry",
        drain_reentrancy,
    ),
    attack(
        "eth-bank-innermost-booking-leak",
        S,
        "EtherStore: withdraw(1 ETH) re-entered 5 times, only the innermost frame books; ~5% of the bank",
        innermost_leak,
    ),
    attack(
        "eth-bank-deploy-then-attack",
        S,
        "attacker deploys a drainer (bank address in its code), honest deposit next block, attack two blocks after deploying",
        deploy_then_attack,
    ),
];

fn withdraw(from: crate::devnet::corpus::Actor, bank: alloy::primitives::Address, n: u64) -> Tx {
    Tx::call(from, bank, IEtherBank::withdrawCall { amount: eth(n) })
}

fn withdraw_1pct(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let bank = d.addr("EtherBank")?;
        d.expect_gain("user gets 1 ETH", User.address(), Asset::Eth, almost(eth(1))).await?;
        d.block(vec![withdraw(User, bank, 1)]).await?;
        Ok(())
    })
}

fn withdraw_50pct(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let bank = d.addr("EtherBank")?;
        d.expect_loss("the bank pays 50 ETH", bank, Asset::Eth, eth(50)).await?;
        d.block(vec![withdraw(Whale, bank, 50)]).await?;
        Ok(())
    })
}

fn withdraw_own(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let bank = d.addr("EtherBank")?;
        d.expect_gain("lp gets its 3 ETH", Lp.address(), Asset::Eth, almost(eth(3))).await?;
        d.block(vec![withdraw(Lp, bank, 3)]).await?;
        Ok(())
    })
}

fn whale_exit(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let bank = d.addr("EtherBank")?;
        d.expect_loss("the bank pays 90 ETH", bank, Asset::Eth, eth(90)).await?;
        d.block(vec![Tx::call(Whale, bank, IEtherBank::withdrawAllCall {}).urgent()]).await?;
        Ok(())
    })
}

fn withdraw_all(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let bank = d.addr("EtherBank")?;
        d.expect_gain("user gets 5 ETH", User.address(), Asset::Eth, almost(eth(5))).await?;
        d.block(vec![Tx::call(User, bank, IEtherBank::withdrawAllCall {})]).await?;
        Ok(())
    })
}

fn hook_reads(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (bank, wallet) = (d.addr("EtherBank")?, d.addr("UserWallet")?);
        let view = IEtherBank::totalAssetsCall {}.abi_encode();
        d.queue(Tx::call(
            User,
            wallet,
            ISmartWallet::setHookCall { mode: 1, watched: bank, viewCall: view.into() },
        ));
        d.mine_setup().await?;
        d.expect_gain("the wallet gets its 2 ETH", wallet, Asset::Eth, eth(2)).await?;
        d.expect_check("its receive() read the bank", Check::HookRan { wallet });
        let exit = IEtherBank::withdrawAllCall {}.abi_encode();
        d.block(vec![wallet_exec(wallet, bank, U256::ZERO, exit)]).await?;
        Ok(())
    })
}

fn redeposit(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (bank, wallet) = (d.addr("EtherBank")?, d.addr("UserWallet")?);
        d.queue(Tx::call(
            User,
            wallet,
            ISmartWallet::setHookCall { mode: 2, watched: bank, viewCall: Default::default() },
        ));
        d.mine_setup().await?;
        d.expect_same("the bank keeps its ETH", bank, Asset::Eth).await?;
        d.expect_same("the wallet keeps its 2 ETH in the bank", wallet, Asset::Token(bank)).await?;
        let out = IEtherBank::withdrawCall { amount: eth(1) }.abi_encode();
        d.block(vec![wallet_exec(wallet, bank, U256::ZERO, out)]).await?;
        Ok(())
    })
}

fn lens_deploy(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let bank = d.addr("EtherBank")?;
        let code = CorpusArtifact::BankLens.creation_code()?;
        d.block(vec![Tx::create(User, CorpusArtifact::BankLens, code, bank.abi_encode())]).await?;
        Ok(())
    })
}

fn drain_reentrancy(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (bank, drainer) = (d.addr("EtherBank")?, d.addr("BankDrainAttack")?);
        d.expect_loss("the bank is drained", bank, Asset::Eth, eth(99)).await?;
        d.expect_gain("the attacker takes the bank", Attacker.address(), Asset::Eth, eth(95))
            .await?;
        d.block(vec![
            Tx::call(Attacker, drainer, IBankDrainAttack::attackCall {}).value(eth(10)).attack(),
        ])
        .await?;
        Ok(())
    })
}

fn innermost_leak(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (bank, leak) = (d.addr("EtherBank")?, d.addr("BankLeakAttack")?);
        d.expect_loss("the bank loses 5 ETH", bank, Asset::Eth, eth(5)).await?;
        d.expect_gain("the attacker takes ~5 ETH", Attacker.address(), Asset::Eth, almost(eth(5)))
            .await?;
        let call = IBankLeakAttack::attackCall { reentries: U256::from(5u64) };
        d.block(vec![Tx::call(Attacker, leak, call).value(eth(1)).attack()]).await?;
        Ok(())
    })
}

fn deploy_then_attack(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let bank = d.addr("EtherBank")?;
        let code = CorpusArtifact::BankDrainAttack.creation_code()?;
        let deploy = Tx::create(Attacker, CorpusArtifact::BankDrainAttack, code, bank.abi_encode())
            .prep()
            .label("attacker: deploy a fresh BankDrainAttack");
        let drainer = d.queue(deploy);
        d.run_block().await?;
        d.block(vec![Tx::call(User, bank, IEtherBank::depositCall {}).value(eth(1))]).await?;
        d.expect_loss("the bank is drained", bank, Asset::Eth, eth(99)).await?;
        d.block(vec![
            Tx::call(Attacker, drainer, IBankDrainAttack::attackCall {})
                .value(eth(10))
                .gas(2_000_000)
                .attack(),
        ])
        .await?;
        Ok(())
    })
}
