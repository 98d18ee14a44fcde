//! Creation code of the compiled fixture contracts, embedded at build time so the binary
//! can deploy the demo from any directory.

use alloy::primitives::{Bytes, hex};
use serde::Deserialize;

use super::DevnetError;

/// A compiled contract under `fixtures/artifacts/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Artifact {
    DemoToken,
    EthVault,
    EthVaultFixed,
    FixedPriceOracle,
    FlashBorrowerSafe,
    LendingPool,
    LendingPoolFixed,
    PriceManipulationAttack,
    ReadOnlyReentrancyAttack,
    ShareLender,
    StakePool,
    StakePoolFixed,
    Treasury,
    TreasuryFixed,
    TreasuryTakeoverAttack,
    VaultReentrancyAttack,
    UniswapV2Factory,
    UniswapV2Router02,
    Weth9,
    Safe,
    SafeProxyFactory,
    CompatibilityFallbackHandler,
}

macro_rules! artifact_json {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/artifacts/", $file))
    };
}

/// The only key we need from an artifact file.
#[derive(Deserialize)]
struct ArtifactFile {
    bytecode: String,
}

impl Artifact {
    pub(crate) fn file_name(self) -> &'static str {
        match self {
            Self::DemoToken => "DemoToken.json",
            Self::EthVault => "EthVault.json",
            Self::EthVaultFixed => "EthVaultFixed.json",
            Self::FixedPriceOracle => "FixedPriceOracle.json",
            Self::FlashBorrowerSafe => "FlashBorrowerSafe.json",
            Self::LendingPool => "LendingPool.json",
            Self::LendingPoolFixed => "LendingPoolFixed.json",
            Self::PriceManipulationAttack => "PriceManipulationAttack.json",
            Self::ReadOnlyReentrancyAttack => "ReadOnlyReentrancyAttack.json",
            Self::ShareLender => "ShareLender.json",
            Self::StakePool => "StakePool.json",
            Self::StakePoolFixed => "StakePoolFixed.json",
            Self::Treasury => "Treasury.json",
            Self::TreasuryFixed => "TreasuryFixed.json",
            Self::TreasuryTakeoverAttack => "TreasuryTakeoverAttack.json",
            Self::VaultReentrancyAttack => "VaultReentrancyAttack.json",
            Self::UniswapV2Factory => "uniswap/UniswapV2Factory.json",
            Self::UniswapV2Router02 => "uniswap/UniswapV2Router02.json",
            Self::Weth9 => "uniswap/WETH9.json",
            Self::Safe => "safe/Safe.json",
            Self::SafeProxyFactory => "safe/SafeProxyFactory.json",
            Self::CompatibilityFallbackHandler => "safe/CompatibilityFallbackHandler.json",
        }
    }

    fn json(self) -> &'static str {
        match self {
            Self::DemoToken => artifact_json!("DemoToken.json"),
            Self::EthVault => artifact_json!("EthVault.json"),
            Self::EthVaultFixed => artifact_json!("EthVaultFixed.json"),
            Self::FixedPriceOracle => artifact_json!("FixedPriceOracle.json"),
            Self::FlashBorrowerSafe => artifact_json!("FlashBorrowerSafe.json"),
            Self::LendingPool => artifact_json!("LendingPool.json"),
            Self::LendingPoolFixed => artifact_json!("LendingPoolFixed.json"),
            Self::PriceManipulationAttack => artifact_json!("PriceManipulationAttack.json"),
            Self::ReadOnlyReentrancyAttack => artifact_json!("ReadOnlyReentrancyAttack.json"),
            Self::ShareLender => artifact_json!("ShareLender.json"),
            Self::StakePool => artifact_json!("StakePool.json"),
            Self::StakePoolFixed => artifact_json!("StakePoolFixed.json"),
            Self::Treasury => artifact_json!("Treasury.json"),
            Self::TreasuryFixed => artifact_json!("TreasuryFixed.json"),
            Self::TreasuryTakeoverAttack => artifact_json!("TreasuryTakeoverAttack.json"),
            Self::VaultReentrancyAttack => artifact_json!("VaultReentrancyAttack.json"),
            Self::UniswapV2Factory => artifact_json!("uniswap/UniswapV2Factory.json"),
            Self::UniswapV2Router02 => artifact_json!("uniswap/UniswapV2Router02.json"),
            Self::Weth9 => artifact_json!("uniswap/WETH9.json"),
            Self::Safe => artifact_json!("safe/Safe.json"),
            Self::SafeProxyFactory => artifact_json!("safe/SafeProxyFactory.json"),
            Self::CompatibilityFallbackHandler => {
                artifact_json!("safe/CompatibilityFallbackHandler.json")
            }
        }
    }

    /// The contract's creation code (constructor arguments are appended by the caller).
    pub(crate) fn creation_code(self) -> Result<Bytes, DevnetError> {
        let invalid = |reason: String| DevnetError::Artifact { file: self.file_name(), reason };
        let file: ArtifactFile =
            serde_json::from_str(self.json()).map_err(|e| invalid(e.to_string()))?;
        let code = hex::decode(file.bytecode.trim())
            .map_err(|e| invalid(format!("`bytecode` is not hex: {e}")))?;
        if code.is_empty() {
            return Err(invalid("`bytecode` is empty".into()));
        }
        Ok(code.into())
    }
}
