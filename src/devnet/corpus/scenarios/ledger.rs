//! LedgerToken, a token that keeps its users' balances itself, with permit: a permit used by its
//! owner through the aggregator, a relayed signed transfer, a spender pulling within its
//! allowance, a whale moving 60% of the supply; attacks: a `transferFrom` with no allowance
//! (the unchecked subtraction wraps) and a replayed transfer signature.

use alloy::primitives::U256;
use futures::future::BoxFuture;

use super::{ScenarioDef, attack, honest, twin};
use crate::devnet::corpus::{
    Actor::*,
    CorpusError, Shape,
    abi::{IERC20, ILedgerToken, ISigReplayAttack, ISwapAggregator},
    base::{DEADLINE, SIGNED_PAYMENT_LDG},
    driver::{Asset, Driver, Tx},
    eth,
};

const S: Shape = Shape::Ledger;

pub(super) const SCENARIOS: &[ScenarioDef] = &[
    honest(
        "ledger-permit-by-owner",
        S,
        "user signs a permit for the aggregator and sends 50k LDG to the lender with sendWithPermit",
        permit_by_owner,
    ),
    twin(
        "ledger-signed-transfer-relayed",
        S,
        "ledger-signature-replay",
        "a relayer submits the user's fresh signed transfer of 10k LDG to the keeper",
        signed_transfer_relayed,
    ),
    twin(
        "ledger-transferfrom-with-allowance",
        S,
        "ledger-transferfrom-without-allowance",
        "the keeper pulls the lender's whole 100k LDG within the 100k allowance it was given",
        transfer_from_with_allowance,
    ),
    honest(
        "ledger-whale-transfer",
        S,
        "whale transfers its 600k LDG (60% of the supply) to the lp",
        whale_transfer,
    ),
    attack(
        "ledger-transferfrom-without-allowance",
        S,
        "attacker calls transferFrom(whale, attacker, 600k) with no allowance: the unchecked subtraction wraps",
        transfer_from_without_allowance,
    ),
    attack(
        "ledger-signature-replay",
        S,
        "attacker replays the user's used 20k payment signature 9 times in one tx: 180k",
        signature_replay,
    ),
];

fn permit_by_owner(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (ldg, aggregator) = (d.addr("LDG")?, d.addr("SwapAggregator")?);
        let amount = eth(50_000);
        let digest = d
            .view(
                ldg,
                ILedgerToken::permitDigestCall {
                    owner: User.address(),
                    spender: aggregator,
                    value: amount,
                    deadline: DEADLINE,
                },
            )
            .await?;
        let (v, r, s) = d.sign_digest(User, digest)?;
        let call = ISwapAggregator::sendWithPermitCall {
            token: ldg,
            amount,
            deadline: DEADLINE,
            v,
            r,
            s,
            to: Lender.address(),
        };
        d.expect_gain("the lender gets 50k", Lender.address(), Asset::Token(ldg), amount).await?;
        d.block(vec![Tx::call(User, aggregator, call)]).await?;
        Ok(())
    })
}

fn signed_transfer_relayed(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let ldg = d.addr("LDG")?;
        let (from, to, value) = (User.address(), Keeper.address(), eth(10_000));
        // A deadline of its own: a different message from the payment signed before.
        let deadline = DEADLINE - U256::from(1u64);
        let digest =
            d.view(ldg, ILedgerToken::transferDigestCall { from, to, value, deadline }).await?;
        let (v, r, s) = d.sign_digest(User, digest)?;
        d.expect_gain("the keeper gets 10k", to, Asset::Token(ldg), value).await?;
        let call = ILedgerToken::transferWithSigCall { from, to, value, deadline, v, r, s };
        d.block(vec![Tx::call(Relayer, ldg, call)]).await?;
        Ok(())
    })
}

fn transfer_from_with_allowance(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let ldg = d.addr("LDG")?;
        let amount = eth(100_000);
        d.expect_gain("the keeper gets 100k", Keeper.address(), Asset::Token(ldg), amount).await?;
        // The lender allows it again first: on a chain where this repeats, a pull past the
        // allowance would be the token's wrap-around bug, an attack, not honest traffic.
        let allow = IERC20::approveCall { spender: Keeper.address(), amount };
        let call =
            IERC20::transferFromCall { from: Lender.address(), to: Keeper.address(), amount };
        d.block(vec![Tx::call(Lender, ldg, allow), Tx::call(Keeper, ldg, call)]).await?;
        Ok(())
    })
}

fn whale_transfer(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let ldg = d.addr("LDG")?;
        d.expect_gain("the lp gets 600k", Lp.address(), Asset::Token(ldg), eth(600_000)).await?;
        let call = IERC20::transferCall { to: Lp.address(), amount: eth(600_000) };
        d.block(vec![Tx::call(Whale, ldg, call)]).await?;
        Ok(())
    })
}

fn transfer_from_without_allowance(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let ldg = d.addr("LDG")?;
        let amount = eth(600_000);
        d.expect_loss("the whale loses 600k", Whale.address(), Asset::Token(ldg), amount).await?;
        let call =
            IERC20::transferFromCall { from: Whale.address(), to: Attacker.address(), amount };
        d.block(vec![Tx::call(Attacker, ldg, call).attack()]).await?;
        Ok(())
    })
}

fn signature_replay(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (ldg, replay) = (d.addr("LDG")?, d.addr("SigReplayAttack")?);
        let (from, to, value) = (User.address(), Attacker.address(), eth(SIGNED_PAYMENT_LDG));
        // The signature the user gave once (deterministic: signing the same digest again).
        let digest = d
            .view(ldg, ILedgerToken::transferDigestCall { from, to, value, deadline: DEADLINE })
            .await?;
        let (v, r, s) = d.sign_digest(User, digest)?;
        d.expect_loss("the user loses 180k", from, Asset::Token(ldg), eth(180_000)).await?;
        let call = ISigReplayAttack::replayCall {
            from,
            to,
            value,
            deadline: DEADLINE,
            v,
            r,
            s,
            times: U256::from(9u64),
        };
        d.block(vec![Tx::call(Attacker, replay, call).attack()]).await?;
        Ok(())
    })
}
