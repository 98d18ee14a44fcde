//! Treasuries: RoleTreasury (Ownable + AccessControl) paying out and rotating roles, and two
//! UUPS treasuries behind OpenZeppelin's ERC1967Proxy; attacks: a role granted to a stranger,
//! an ownership hijack by re-running `initialize`, and a proxy upgraded by a stranger.

use alloy::primitives::Bytes;
use futures::future::BoxFuture;

use super::{ScenarioDef, almost, attack, honest, twin};
use crate::devnet::corpus::{
    Actor::*,
    CorpusError, Shape,
    abi::{IInitHijackAttack, IProxyTreasury, IRoleTreasury},
    base::{GRANTS, MULTISIG, payer_role},
    driver::{Asset, Check, Driver, Tx},
    eth, usdx,
};

const S: Shape = Shape::Treasury;

pub(super) const SCENARIOS: &[ScenarioDef] = &[
    honest(
        "treasury-owner-payout-60pct",
        S,
        "the owner (a payer) pays 600k of the treasury's 1M USDX to the grants program",
        owner_payout,
    ),
    honest(
        "treasury-eth-payout-100pct",
        S,
        "the owner pays all 100 ETH of the treasury to the DAO's multisig",
        eth_payout,
    ),
    twin(
        "treasury-admin-grants-role",
        S,
        "treasury-role-takeover",
        "the admin grants PAYER_ROLE to the keeper through grantRole",
        admin_grants_role,
    ),
    honest(
        "treasury-role-rotation",
        S,
        "the admin grants PAYER_ROLE to the keeper and revokes the lender's; next block the keeper pays 300k",
        role_rotation,
    ),
    honest(
        "treasury-transfer-ownership",
        S,
        "the owner transfers ownership to the whale (a new multisig signer)",
        transfer_ownership,
    ),
    twin(
        "treasury-proxy-owner-sweeps-all",
        S,
        "treasury-initializer-rerun-hijack",
        "the proxied treasury's owner withdraws all its USDX and ETH to the multisig",
        owner_sweeps_all,
    ),
    twin(
        "treasury-proxy-owner-upgrade",
        S,
        "treasury-proxy-upgrade-by-stranger",
        "the owner upgrades the UUPS proxy to its TreasuryV2",
        owner_upgrade,
    ),
    attack(
        "treasury-role-takeover",
        S,
        "a stranger grants itself PAYER_ROLE through the unguarded setupRole (moves nothing yet)",
        role_takeover,
    ),
    attack(
        "treasury-initializer-rerun-hijack",
        S,
        "attacker's contract re-runs initialize() to become the owner and sweeps 500k USDX and 50 ETH",
        initializer_hijack,
    ),
    attack(
        "treasury-proxy-upgrade-by-stranger",
        S,
        "a stranger upgrades the UUPS proxy to its own implementation (moves nothing yet)",
        stranger_upgrade,
    ),
];

fn owner_payout(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (treasury, token) = (d.addr("RoleTreasury")?, d.addr("USDX")?);
        d.expect_gain("grants get 600k", GRANTS, Asset::Token(token), usdx(600_000)).await?;
        let call = IRoleTreasury::payCall { token, to: GRANTS, amount: usdx(600_000) };
        d.block(vec![Tx::call(Deployer, treasury, call)]).await?;
        Ok(())
    })
}

fn eth_payout(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let treasury = d.addr("RoleTreasury")?;
        d.expect_gain("the multisig gets 100 ETH", MULTISIG, Asset::Eth, eth(100)).await?;
        let call = IRoleTreasury::payEthCall { to: MULTISIG, amount: eth(100) };
        d.block(vec![Tx::call(Deployer, treasury, call)]).await?;
        Ok(())
    })
}

fn admin_grants_role(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let treasury = d.addr("RoleTreasury")?;
        let (role, account) = (payer_role(), Keeper.address());
        d.expect_check(
            "the keeper is a payer",
            Check::HasRole { contract: treasury, role, account },
        );
        d.block(vec![Tx::call(Deployer, treasury, IRoleTreasury::grantRoleCall { role, account })])
            .await?;
        Ok(())
    })
}

fn role_rotation(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (treasury, token) = (d.addr("RoleTreasury")?, d.addr("USDX")?);
        let role = payer_role();
        d.block(vec![
            Tx::call(
                Deployer,
                treasury,
                IRoleTreasury::grantRoleCall { role, account: Keeper.address() },
            ),
            Tx::call(
                Deployer,
                treasury,
                IRoleTreasury::revokeRoleCall { role, account: Lender.address() },
            ),
        ])
        .await?;
        d.expect_gain("grants get 300k", GRANTS, Asset::Token(token), usdx(300_000)).await?;
        let pay = IRoleTreasury::payCall { token, to: GRANTS, amount: usdx(300_000) };
        d.block(vec![Tx::call(Keeper, treasury, pay)]).await?;
        Ok(())
    })
}

fn transfer_ownership(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let treasury = d.addr("RoleTreasury")?;
        let call = IRoleTreasury::transferOwnershipCall { newOwner: Whale.address() };
        d.block(vec![Tx::call(Deployer, treasury, call)]).await?;
        let owner = d.view(treasury, IRoleTreasury::ownerCall {}).await?;
        if owner != Whale.address() {
            return Err(CorpusError::Expectation(format!("owner is {owner}, not the whale")));
        }
        Ok(())
    })
}

fn owner_sweeps_all(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (treasury, token) = (d.addr("InitTreasury")?, d.addr("USDX")?);
        d.expect_gain("the multisig gets 500k", MULTISIG, Asset::Token(token), usdx(500_000))
            .await?;
        d.expect_gain("the multisig gets 50 ETH", MULTISIG, Asset::Eth, eth(50)).await?;
        d.block(vec![
            Tx::call(
                Deployer,
                treasury,
                IProxyTreasury::withdrawCall { token, to: MULTISIG, amount: usdx(500_000) },
            ),
            Tx::call(
                Deployer,
                treasury,
                IProxyTreasury::withdrawEthCall { to: MULTISIG, amount: eth(50) },
            ),
        ])
        .await?;
        Ok(())
    })
}

fn owner_upgrade(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (proxy, v2) = (d.addr("UpgradeTreasury")?, d.addr("TreasuryV2Impl")?);
        d.expect_check(
            "the proxy points at TreasuryV2",
            Check::Implementation { proxy, implementation: v2 },
        );
        let call =
            IProxyTreasury::upgradeToAndCallCall { newImplementation: v2, data: Bytes::new() };
        d.block(vec![Tx::call(Deployer, proxy, call)]).await?;
        Ok(())
    })
}

fn role_takeover(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let treasury = d.addr("RoleTreasury")?;
        let (role, account) = (payer_role(), Attacker.address());
        d.expect_check(
            "the attacker is a payer",
            Check::HasRole { contract: treasury, role, account },
        );
        let call = IRoleTreasury::setupRoleCall { role, account };
        d.block(vec![Tx::call(Attacker, treasury, call).attack()]).await?;
        Ok(())
    })
}

fn initializer_hijack(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (hijack, token) = (d.addr("InitHijackAttack")?, d.addr("USDX")?);
        d.expect_gain(
            "the attacker takes 500k",
            Attacker.address(),
            Asset::Token(token),
            usdx(500_000),
        )
        .await?;
        d.expect_gain("and 50 ETH", Attacker.address(), Asset::Eth, almost(eth(50))).await?;
        d.block(vec![Tx::call(Attacker, hijack, IInitHijackAttack::attackCall { token }).attack()])
            .await?;
        Ok(())
    })
}

fn stranger_upgrade(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (proxy, evil) = (d.addr("UpgradeTreasury")?, d.addr("EvilTreasuryImpl")?);
        d.expect_check(
            "the proxy points at the attacker's code",
            Check::Implementation { proxy, implementation: evil },
        );
        let call =
            IProxyTreasury::upgradeToAndCallCall { newImplementation: evil, data: Bytes::new() };
        d.block(vec![Tx::call(Attacker, proxy, call).attack()]).await?;
        Ok(())
    })
}
