//! New contracts deployed next to protected ones by honest users: a vault over a protected token,
//! a price feed and an LP-token pair on the protected Uniswap pair, a borrower's flash-loan
//! helper naming its market, and an unrelated token. Each that names a protected contract is
//! probed from its deployer (issue 11 item 6); none may draw a guardian tx.

use alloy::sol_types::SolValue;
use futures::future::BoxFuture;

use super::{ScenarioDef, honest};
use crate::devnet::corpus::{
    Actor::*,
    CorpusError, Shape,
    abi::IUniswapV2Factory,
    artifacts::CorpusArtifact,
    driver::{Driver, Tx},
};

pub(super) const SCENARIOS: &[ScenarioDef] = &[
    honest(
        "deploy-vault-over-ledger-token",
        Shape::Ledger,
        "user deploys an ERC-4626 vault whose asset is the protected LDG token (probed: nothing)",
        vault_over_ledger_token,
    ),
    honest(
        "deploy-spot-feed-on-pair",
        Shape::UniswapV2,
        "user deploys a spot-price feed that reads the protected pair's reserves (probed: nothing)",
        spot_feed_on_pair,
    ),
    honest(
        "deploy-lp-token-pair",
        Shape::UniswapV2,
        "user creates a Uniswap pair of the protected pair's LP token and WETH through the factory",
        lp_token_pair,
    ),
    honest(
        "deploy-flash-refinancer",
        Shape::Lending,
        "borrower deploys its own flash-loan refinancing helper naming OracleMarket (probed: its \
         callbacks refuse strangers, close() has nothing to close)",
        flash_refinancer,
    ),
    honest(
        "deploy-unrelated-token",
        Shape::EthVault,
        "user deploys a plain ERC-20 that names no protected contract (not probed)",
        unrelated_token,
    ),
];

/// The user's deployment of `artifact`.
fn create(artifact: CorpusArtifact, args: Vec<u8>) -> Result<Tx, CorpusError> {
    Ok(Tx::create(User, artifact, artifact.creation_code()?, args))
}

fn vault_over_ledger_token(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let ldg = d.addr("LDG")?;
        let args = (User.address(), ldg).abi_encode_params();
        let tx = create(CorpusArtifact::CorpusVault4626, args)?;
        d.block(vec![tx]).await?;
        Ok(())
    })
}

fn spot_feed_on_pair(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (pair, weth) = (d.addr("Pair")?, d.addr("WETH")?);
        let tx = create(CorpusArtifact::PairSpotFeed, (pair, weth).abi_encode_params())?;
        d.block(vec![tx]).await?;
        Ok(())
    })
}

fn lp_token_pair(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (factory, pair, weth) = (d.addr("UniswapV2Factory")?, d.addr("Pair")?, d.addr("WETH")?);
        let call = IUniswapV2Factory::createPairCall { tokenA: pair, tokenB: weth };
        d.block(vec![Tx::call(User, factory, call).gas(5_000_000)]).await?;
        Ok(())
    })
}

fn flash_refinancer(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let (market, weth, usdx) = (d.addr("OracleMarket")?, d.addr("WETH")?, d.addr("USDX")?);
        let args = (market, weth, usdx).abi_encode_params();
        let tx = Tx::create(
            Borrower,
            CorpusArtifact::FlashRefinancer,
            CorpusArtifact::FlashRefinancer.creation_code()?,
            args,
        );
        d.block(vec![tx]).await?;
        Ok(())
    })
}

fn unrelated_token(d: &mut Driver) -> BoxFuture<'_, Result<(), CorpusError>> {
    Box::pin(async move {
        let args = ("Fresh".to_string(), "FRSH".to_string(), alloy::primitives::U256::from(18u8))
            .abi_encode_params();
        let tx = create(CorpusArtifact::CorpusToken, args)?;
        d.block(vec![tx]).await?;
        Ok(())
    })
}
