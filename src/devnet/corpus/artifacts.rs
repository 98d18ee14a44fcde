//! Creation code of the corpus contracts (fixtures/artifacts/corpus/), embedded at build time.

use alloy::primitives::{Bytes, hex};
use serde::Deserialize;

use super::CorpusError;

/// The only key we need from an artifact file.
#[derive(Deserialize)]
struct ArtifactFile {
    bytecode: String,
}

macro_rules! corpus_artifacts {
    ($($variant:ident),* $(,)?) => {
        /// A compiled contract under `fixtures/artifacts/corpus/`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum CorpusArtifact {
            $($variant),*
        }

        impl CorpusArtifact {
            #[cfg(test)]
            pub(crate) const ALL: &'static [CorpusArtifact] = &[$(Self::$variant),*];

            pub(crate) fn file_name(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!("corpus/", stringify!($variant), ".json")),*
                }
            }

            fn json(self) -> &'static str {
                match self {
                    $(Self::$variant => include_str!(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/fixtures/artifacts/corpus/",
                        stringify!($variant),
                        ".json"
                    ))),*
                }
            }
        }
    };
}

corpus_artifacts!(
    BankDrainAttack,
    BankLeakAttack,
    BankLens,
    CorpusToken,
    CorpusVault4626,
    ERC1967Proxy,
    EtherBank,
    EvilTreasuryImpl,
    ExecutorGate,
    FlashGovernor,
    FlashRefinancer,
    FlashVoteAttack,
    GovToken,
    HookShareVault,
    HookToken,
    HookVaultReentrancyAttack,
    InitHijackAttack,
    LedgerToken,
    LendMarket,
    LooseInitTreasury,
    LooseUpgradeTreasury,
    ManualFeed,
    PairBreaker,
    PairSpotFeed,
    RateFeed,
    RateReadOnlyAttack,
    RateVault,
    RoleTreasury,
    SigReplayAttack,
    SmartWallet,
    SpotPriceAttack,
    SwapAggregator,
    TimelockController,
    TreasuryV2,
    VestingRewards,
);

impl CorpusArtifact {
    /// The contract's creation code (constructor arguments are appended by the caller).
    pub(crate) fn creation_code(self) -> Result<Bytes, CorpusError> {
        let invalid = |reason: String| CorpusError::Artifact { file: self.file_name(), reason };
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
