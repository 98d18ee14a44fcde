//! VestingRewards, a vesting pool anyone may trigger claims on: honest holders claiming their own
//! vested rewards block after block; the attack claims other holders' rewards to itself, one
//! holder per block over ten blocks (each below the drain threshold), interleaved with honest
//! claims of the same function.

use futures::future::BoxFuture;

use super::{ScenarioDef, attack, twin};
use crate::devnet::corpus::{
    Actor::{self, *},
    CorpusError, Shape,
    abi::IVestingRewards,
    base::synthetic_holder,
    driver::{Asset, Driver, Tx},
    usdx,
};

const S: Shape = Shape::Rewards;

/// Every holder's allocation is 50k; 70 days of 100 have vested: 35k (3.5% of the pool) each.
const VESTED_DAYS: u64 = 70;
/// The split drain's blocks: one stolen claim each.
const DRAIN_BLOCKS: u8 = 10;

pub(super) const SCENARIOS: &[ScenarioDef] = &[
    twin(
        "rewards-repeated-honest-claims",
        S,
        "rewards-split-drain",
        "user claims its own vested rewards in 5 consecutive blocks; the whale and lp claim theirs too",
        repeated_claims,
    ),
    attack(
        "rewards-split-drain",
        S,
        "attacker claims another holder's 35k (3.5%) to itself in each of 10 blocks, honest claims in between",
        split_drain,
    ),
];

fn claim(
    from: Actor,
    rewards: alloy::primitives::Address,
    account: alloy::primitives::Address,
) -> Tx {
    Tx::call(from, rewards, IVestingRewards::claimCall { account })
}

fn repeated_claims(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (rewards, token) = (d.addr("VestingRewards")?, d.addr("USDX")?);
        d.advance_time(VESTED_DAYS * 86_400).await?;
        d.expect_gain(
            "user gets its vested 35k",
            User.address(),
            Asset::Token(token),
            usdx(35_000),
        )
        .await?;
        for block in 0..5 {
            let mut txs = vec![claim(User, rewards, User.address())];
            match block {
                1 => txs.push(claim(Whale, rewards, Whale.address())),
                3 => txs.push(claim(Lp, rewards, Lp.address())),
                _ => {}
            }
            d.block(txs).await?;
        }
        Ok(())
    })
}

fn split_drain(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (rewards, token) = (d.addr("VestingRewards")?, d.addr("USDX")?);
        d.advance_time(VESTED_DAYS * 86_400).await?;
        d.split_drain(rewards, token, Attacker.address(), 1_000).await?;
        d.expect_gain(
            "the attacker takes ten holders' vested rewards",
            Attacker.address(),
            Asset::Token(token),
            usdx(349_000),
        )
        .await?;
        let honest = [User, Whale, Lp, Lender, Borrower];
        for i in 0..DRAIN_BLOCKS {
            let theft = claim(Attacker, rewards, synthetic_holder(i))
                .attack()
                .gas(200_000)
                .label(format!("attacker: claim(holder {i}) to itself"));
            let mut txs = vec![theft];
            if i % 2 == 0 {
                let holder = honest[usize::from(i / 2)];
                txs.push(claim(holder, rewards, holder.address()).gas(200_000));
            }
            d.block(txs).await?;
        }
        Ok(())
    })
}
