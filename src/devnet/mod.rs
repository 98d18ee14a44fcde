//! Demo dev net: deploys the Solidity fixtures (Uniswap V2, vulnerable and fixed protocols,
//! attack contracts, and on request Safes that hold a vault's pause role) on anvil, writes the
//! preempt config that protects them, and sends the demo's pending txs (attacks and benign
//! traffic) one scenario at a time.

mod abi;
mod accounts;
mod artifacts;
mod config;
pub mod corpus;
mod deploy;
mod node;
mod safe;
mod scenario;
#[cfg(test)]
mod tests;

use alloy::{primitives::B256, transports::TransportError};
use thiserror::Error;

pub use accounts::{DevAccount, dev_accounts};
pub(crate) use artifacts::Artifact;
pub use config::config_toml;
pub use deploy::{Deployment, deploy};
pub use safe::{SafeDeployment, deploy_safe, safe_config_toml, send_vault_attack};
pub use scenario::{Scenario, send_scenario};

/// Errors from deploying the demo or sending a scenario; each says which step or call failed.
#[derive(Debug, Error)]
pub enum DevnetError {
    #[error("`{url}` is not a usable RPC URL: {reason}")]
    InvalidRpcUrl { url: String, reason: String },
    #[error("{action}: {source}")]
    Rpc {
        action: String,
        #[source]
        source: TransportError,
    },
    #[error("fixture artifact fixtures/artifacts/{file}: {reason}")]
    Artifact { file: &'static str, reason: String },
    #[error("signing {what}: {source}")]
    Sign {
        what: String,
        #[source]
        source: alloy::signers::Error,
    },
    #[error("set-up step `{step}` reverted (tx {tx})")]
    StepReverted { step: String, tx: B256 },
    #[error("set-up step `{step}` (tx {tx}) was still not mined after {blocks} blocks")]
    NotMined { step: String, tx: B256, blocks: u32 },
    #[error("block {block} has no base fee: the dev net needs a London-or-later node")]
    NoBaseFee { block: u64 },
    #[error("unexpected node state: {what}")]
    UnexpectedNodeState { what: String },
    #[error("the deployment has no contract named `{name}`")]
    UnknownContract { name: String },
    #[error("scenario {scenario}: {reason}")]
    ScenarioRejected { scenario: &'static str, reason: String },
}
