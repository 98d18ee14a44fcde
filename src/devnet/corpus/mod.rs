//! The precision corpus: honest traffic and attacks of many protocol shapes, each run on its own
//! anvil through a real `preempt run` with a plain config, judged from the node's pool and blocks
//! and the incident records (false pauses, attacks prevented), and written to `corpus.json`.

mod abi;
mod artifacts;
mod base;
mod chain;
mod config;
mod driver;
mod guard;
mod report;
mod scenarios;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, path::PathBuf};

use alloy::{
    primitives::{Address, U256},
    transports::TransportError,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{DevAccount, DevnetError, dev_accounts};

pub use chain::{
    ChainArgs, ChainAttack, ChainManifest, ChainOptions, ChainScenario, SkippedScenario,
    build_chain, chain_command,
};
pub use report::{
    CorpusArgs, CorpusOptions, CorpusReport, ScenarioResult, command, run_corpus, table,
};
pub use scenarios::scenario_names;

/// Errors of the corpus runner and of the scenarios it drives; each says which step failed.
#[derive(Debug, Error)]
pub enum CorpusError {
    #[error(transparent)]
    Devnet(#[from] DevnetError),
    #[error("{action}: {source}")]
    Rpc {
        action: String,
        #[source]
        source: TransportError,
    },
    #[error("corpus artifact fixtures/artifacts/{file}: {reason}")]
    Artifact { file: &'static str, reason: String },
    #[error("anvil: {0}")]
    Anvil(String),
    #[error("preempt run: {0}")]
    Guard(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the corpus deployment has no contract named `{0}`")]
    UnknownContract(String),
    #[error("unexpected node answer: {0}")]
    Node(String),
    #[error("signing {what}: {source}")]
    Sign {
        what: String,
        #[source]
        source: alloy::signers::Error,
    },
    #[error("`{step}` reverted (tx {tx})")]
    Reverted { step: String, tx: alloy::primitives::B256 },
    #[error("expectation not met: {0}")]
    Expectation(String),
    #[error("unknown scenario `{name}`; one of: {known}")]
    UnknownScenario { name: String, known: String },
}

pub(crate) fn rpc_err(action: impl Into<String>) -> impl FnOnce(TransportError) -> CorpusError {
    let action = action.into();
    move |source| CorpusError::Rpc { action, source }
}

/// Who signs a corpus tx: anvil's ten dev accounts, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Actor {
    /// Deploys everything; the owner and admin of the owned contracts.
    Deployer = 0,
    /// preempt's key (never signs corpus traffic).
    Guardian = 1,
    User = 2,
    Attacker = 3,
    Whale = 4,
    Lp = 5,
    Lender = 6,
    Borrower = 7,
    /// Submits other people's signed messages.
    Relayer = 8,
    /// Liquidates, executes ready operations, pulls with allowances.
    Keeper = 9,
}

impl Actor {
    pub(crate) const ALL: [Actor; 10] = [
        Actor::Deployer,
        Actor::Guardian,
        Actor::User,
        Actor::Attacker,
        Actor::Whale,
        Actor::Lp,
        Actor::Lender,
        Actor::Borrower,
        Actor::Relayer,
        Actor::Keeper,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Deployer => "owner",
            Self::Guardian => "guardian",
            Self::User => "user",
            Self::Attacker => "attacker",
            Self::Whale => "whale",
            Self::Lp => "lp",
            Self::Lender => "lender",
            Self::Borrower => "borrower",
            Self::Relayer => "relayer",
            Self::Keeper => "keeper",
        }
    }

    pub(crate) fn account(self) -> &'static DevAccount {
        static ACCOUNTS: std::sync::OnceLock<Vec<DevAccount>> = std::sync::OnceLock::new();
        // dev_accounts() always holds anvil's ten accounts, in the order of this enum.
        &ACCOUNTS.get_or_init(dev_accounts)[self as usize]
    }

    pub(crate) fn address(self) -> Address {
        self.account().address
    }
}

/// Contract name → address, for everything the base deployment put on chain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Book {
    pub(crate) contracts: BTreeMap<String, Address>,
}

impl Book {
    pub(crate) fn get(&self, name: &str) -> Result<Address, CorpusError> {
        self.contracts.get(name).copied().ok_or_else(|| CorpusError::UnknownContract(name.into()))
    }
}

/// `n` whole units of an 18-decimal token (or ETH).
pub(crate) fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

/// `n` whole USDX (6 decimals).
pub(crate) fn usdx(n: u64) -> U256 {
    U256::from(n) * U256::from(1_000_000u64)
}

/// `amount * bps / 10_000`.
pub(crate) fn bps(amount: U256, bps: u64) -> U256 {
    amount * U256::from(bps) / U256::from(10_000u64)
}

/// Honest traffic or an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Honest,
    Attack,
}

/// The protocol shape a scenario exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    EthVault,
    Erc20Vault,
    Erc4626,
    Lending,
    UniswapV2,
    Treasury,
    Governance,
    Router,
    Ledger,
    Rewards,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Self::EthVault => "eth-vault",
            Self::Erc20Vault => "erc20-vault",
            Self::Erc4626 => "erc4626",
            Self::Lending => "lending",
            Self::UniswapV2 => "uniswap-v2",
            Self::Treasury => "treasury",
            Self::Governance => "governance",
            Self::Router => "router",
            Self::Ledger => "ledger",
            Self::Rewards => "rewards",
        }
    }
}
