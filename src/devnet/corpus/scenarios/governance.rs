//! FlashGovernor (a DAO treasury governed by GOV votes) and an OpenZeppelin TimelockController
//! executed through its gate: honest proposals voted and executed, queued payouts executed after
//! the delay; the attack votes with flash-minted GOV and executes in the same tx (Beanstalk).

use alloy::{
    primitives::{B256, Bytes, U256},
    sol_types::SolCall,
};
use futures::future::BoxFuture;

use super::{ScenarioDef, attack, honest, twin};
use crate::devnet::corpus::{
    Actor::*,
    CorpusError, Shape,
    abi::{IERC20, IExecutorGate, IFlashGovernor, IFlashVoteAttack, ITimelockController},
    base::{GRANTS, MULTISIG, TIMELOCK_DELAY_SECS, VOTING_DELAY_SECS},
    driver::{Asset, Driver, Tx},
    eth, usdx,
};

const S: Shape = Shape::Governance;

pub(super) const SCENARIOS: &[ScenarioDef] = &[
    twin(
        "governance-honest-vote-execute",
        S,
        "governance-flash-loan-vote",
        "holders of 70% of GOV voted a 600k grant a day ago; a keeper executes it",
        honest_execute,
    ),
    honest(
        "timelock-execute-queued-payout",
        S,
        "a 300k USDX payout (60% of the timelock) queued 2 days ago is executed through the gate",
        timelock_payout,
    ),
    honest(
        "timelock-execute-eth-payout-100pct",
        S,
        "a payout of all 50 ETH of the timelock, queued 2 days ago, is executed through the gate",
        timelock_eth_payout,
    ),
    attack(
        "governance-flash-loan-vote",
        S,
        "attacker proposed to sweep the governor a day ago; it flash-mints 5M GOV, votes, executes, repays",
        flash_vote,
    ),
];

/// Proposes `data` on the governor itself from `proposer`, mined before the guard starts;
/// returns the proposal id.
async fn propose(
    d: &mut Driver,
    proposer: crate::devnet::corpus::Actor,
    data: Vec<u8>,
) -> Result<U256, CorpusError> {
    let governor = d.addr("FlashGovernor")?;
    let id = d.view(governor, IFlashGovernor::proposalCountCall {}).await?;
    let call =
        IFlashGovernor::proposeCall { target: governor, value: U256::ZERO, data: data.into() };
    d.queue(Tx::call(proposer, governor, call));
    d.mine_setup().await?;
    Ok(id)
}

fn honest_execute(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (governor, token) = (d.addr("FlashGovernor")?, d.addr("USDX")?);
        let grant = IFlashGovernor::payoutCall { token, to: GRANTS, amount: usdx(600_000) };
        let id = propose(d, Lp, grant.abi_encode()).await?;
        for voter in [Whale, User, Lp] {
            d.queue(Tx::call(voter, governor, IFlashGovernor::voteCall { id }));
        }
        d.mine_setup().await?;
        d.advance_time(VOTING_DELAY_SECS + 60).await?;
        d.expect_gain("grants get 600k", GRANTS, Asset::Token(token), usdx(600_000)).await?;
        d.block(vec![Tx::call(Keeper, governor, IFlashGovernor::executeCall { id })]).await?;
        Ok(())
    })
}

/// Schedules `target.call{value}(data)` on the timelock (by its proposer, the owner), waits out
/// the delay, and executes it through the gate as the keeper.
async fn timelock_execute(
    d: &mut Driver,
    target: alloy::primitives::Address,
    value: U256,
    data: Bytes,
) -> Result<(), CorpusError> {
    let (timelock, gate) = (d.addr("Timelock")?, d.addr("ExecutorGate")?);
    let schedule = ITimelockController::scheduleCall {
        target,
        value,
        data: data.clone(),
        predecessor: B256::ZERO,
        salt: B256::ZERO,
        delay: U256::from(TIMELOCK_DELAY_SECS),
    };
    d.queue(Tx::call(Deployer, timelock, schedule));
    d.mine_setup().await?;
    d.advance_time(TIMELOCK_DELAY_SECS + 60).await?;
    let execute = IExecutorGate::executeCall {
        target,
        value,
        payload: data,
        predecessor: B256::ZERO,
        salt: B256::ZERO,
    };
    d.block(vec![Tx::call(Keeper, gate, execute)]).await?;
    Ok(())
}

fn timelock_payout(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let token = d.addr("USDX")?;
        d.expect_gain("grants get 300k", GRANTS, Asset::Token(token), usdx(300_000)).await?;
        let data = IERC20::transferCall { to: GRANTS, amount: usdx(300_000) }.abi_encode();
        timelock_execute(d, token, U256::ZERO, data.into()).await
    })
}

fn timelock_eth_payout(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        d.expect_gain("the multisig gets 50 ETH", MULTISIG, Asset::Eth, eth(50)).await?;
        timelock_execute(d, MULTISIG, eth(50), Bytes::new()).await
    })
}

fn flash_vote(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (token, attack) = (d.addr("USDX")?, d.addr("FlashVoteAttack")?);
        let sweep = IFlashGovernor::sweepCall { to: Attacker.address() };
        let id = propose(d, Attacker, sweep.abi_encode()).await?;
        d.advance_time(VOTING_DELAY_SECS + 60).await?;
        d.expect_gain(
            "the attacker sweeps 1M USDX",
            Attacker.address(),
            Asset::Token(token),
            usdx(1_000_000),
        )
        .await?;
        d.expect_gain("and ~100 ETH", Attacker.address(), Asset::Eth, eth(99)).await?;
        let call = IFlashVoteAttack::attackCall { id, amount: eth(5_000_000) };
        d.block(vec![Tx::call(Attacker, attack, call).attack()]).await?;
        Ok(())
    })
}
