//! Configuration: one TOML file, read into raw structs with their defaults, then validated into
//! `Config`; every error names the file and the key, and none prints the file's text.

mod alert;
mod error;
mod invariant;
mod limits;
mod protect;
mod raw;
mod runtime;
mod secret;
mod syntax;
mod validate;

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, Bytes};

pub use alert::{
    AlertConfig, AlertKind, AlertLevel, AlertSecret, AlertTarget, PAGERDUTY_EVENTS_URL,
};
pub use error::{ConfigError, SyntaxAt};
pub use invariant::{CompareOp, Invariant, InvariantCheck, Operand, ViewCall, selector};
pub use limits::{
    DRAIN_THRESHOLD_BPS, MAX_FEE_GWEI, MAX_TX_GAS, QUEUE_CAPACITY, RESEND_BLOCKS, TX_GAS_CAP,
    VIEW_GAS_LIMIT, WORKERS, pause_gas_floor,
};
pub use secret::{SecretKey, SecretRef, SecretValue};

/// `pause()` — the default containment call.
pub const PAUSE_SELECTOR: [u8; 4] =
    <crate::types::abi::IPausable::pauseCall as alloy::sol_types::SolCall>::SELECTOR;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this config was read from; every later error about it names this path.
    pub file: PathBuf,
    pub nodes: Vec<NodeConfig>,
    pub guardian: Option<GuardianKey>,
    pub protected: Vec<ProtectedContract>,
    pub simulation: SimulationConfig,
    pub relays: Vec<RelayConfig>,
    /// Signs `X-Flashbots-Signature`; a separate key from the guardian's.
    pub relay_auth: Option<SecretRef>,
    pub respond: RespondConfig,
    /// Incident records, one JSON line each.
    pub incidents_path: Option<PathBuf>,
    /// Incident store (SQLite), written off the hot path (`[incidents] store`).
    pub incidents_store: Option<PathBuf>,
    /// Where alerts go (`[[alert]]`), in file order.
    pub alerts: Vec<AlertConfig>,
    /// How much forked state the guard keeps (`[fork]`).
    pub fork: crate::fork::ForkLimits,
    /// Rule × severity → pause / alert / record (`[policy]`).
    pub policy: crate::respond::Policy,
    /// How takes under the threshold are summed (`[cumulative]`).
    pub cumulative: CumulativeConfig,
    /// Where `/metrics` is served (`[metrics] listen`); `None`: not served.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// `[cumulative]`: the window and threshold of the cumulative-drain rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CumulativeConfig {
    pub window_blocks: u64,
    /// `None`: each contract's `drain_threshold_bps`.
    pub threshold_bps: Option<u32>,
}

impl CumulativeConfig {
    pub fn tracker(&self) -> crate::detect::CumulativeTracker {
        crate::detect::CumulativeTracker::new(self.window_blocks, self.threshold_bps)
    }
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub name: String,
    /// http(s) URL of the relay's JSON-RPC endpoint.
    pub url: String,
}

/// What preempt does with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseMode {
    /// Sign and send the pause call.
    Pause,
    /// Record and alert; send nothing.
    Alert,
    /// Sign the pause call and record it, but do not send it.
    DryRun,
}

#[derive(Debug, Clone)]
pub struct RespondConfig {
    pub mode: ResponseMode,
    /// Caps on what a pause may pay, in wei.
    pub max_fee_per_gas_cap: u128,
    pub max_priority_fee_per_gas_cap: u128,
    /// Gas limit of the pause tx.
    pub pause_gas_limit: u64,
    /// How many blocks a pause is re-sent for until it lands.
    pub resend_blocks: u64,
    /// `[guardian] safe`: the pause role belongs to this Safe, and the guardian key acts
    /// through it; `None`: the guardian key pauses directly.
    pub safe: Option<GuardianSafe>,
}

/// A Safe that holds the pause role, and how the guardian key may act through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GuardianSafe {
    pub address: Address,
    pub role: SafeRole,
}

/// The guardian key's place in the Safe (`[guardian] safe_role`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SafeRole {
    /// An owner of a Safe whose threshold is 1: `execTransaction` with the owner's signature.
    #[default]
    Owner,
    /// An enabled module: `execTransactionFromModule`, no signature, no Safe nonce.
    Module,
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    /// `ws://`, `wss://`, `http(s)://`, or a filesystem path to an IPC socket.
    pub url: String,
    /// Take pending txs from this node (false: heads and state only).
    pub pending: bool,
}

/// Where the guardian key comes from; the key itself is read only when needed.
#[derive(Debug, Clone)]
pub enum GuardianKey {
    Raw(SecretRef),
    Keystore { path: PathBuf, password: SecretRef },
}

#[derive(Debug, Clone)]
pub struct SimulationConfig {
    /// Gas limit for invariant and claim view calls.
    pub view_gas_limit: u64,
    /// Cap on a simulated tx's gas (a tx asking for more is simulated with this cap).
    pub max_tx_gas: u64,
    /// Simulation worker threads.
    pub workers: usize,
    /// Capacity of the queue of txs that do not name a protected contract (full: dropped, counted).
    pub queue_capacity: usize,
    /// An idle worker re-runs recent work this often, so the first tx after a quiet spell (an
    /// attack, perhaps) does not run on cold CPU caches; `None`: never.
    pub keep_warm: Option<std::time::Duration>,
    /// The workers' scheduling priority (Linux nice): ahead of the node beside them, so the
    /// node waking to read a pause does not preempt the worker still writing it.
    pub worker_nice: i32,
}

/// An asset a protected contract holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Asset {
    Eth,
    Token(Address),
}

impl std::fmt::Display for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Eth => f.write_str("ETH"),
            Self::Token(a) => write!(f, "{a}"),
        }
    }
}

/// A view `f(address) -> uint256` giving an account's claim on one asset of the contract.
#[derive(Debug, Clone)]
pub struct ClaimView {
    pub signature: String,
    pub selector: [u8; 4],
    pub asset: Asset,
}

#[derive(Debug, Clone)]
pub struct ProtectedContract {
    pub name: String,
    pub address: Address,
    pub tokens: Vec<Address>,
    /// A loss above this share of the holdings (basis points) is a drain.
    pub drain_threshold_bps: u32,
    pub claims: Vec<ClaimView>,
    pub invariants: Vec<Invariant>,
    pub pause: PauseCall,
    /// Senders acting for the protocol (timelock, multisig): their actions are not attacks.
    pub trusted: Vec<Address>,
    /// A read price moving more than this (bps) inside one tx, with a loss, is manipulation.
    pub price_move_bps: u32,
    /// Pulls tokens from third parties by design (no `approval-drain` finding).
    pub pulls_from_third_parties: bool,
}

impl ProtectedContract {
    pub fn assets(&self) -> impl Iterator<Item = Asset> + '_ {
        std::iter::once(Asset::Eth).chain(self.tokens.iter().map(|t| Asset::Token(*t)))
    }
}

#[derive(Debug, Clone)]
pub struct PauseCall {
    pub target: Address,
    pub calldata: Bytes,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { file: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`; `file` names the source in errors and is kept in `Config`.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(text).map_err(|e| syntax::syntax_error(file, text, &e))?;
        validate::validate(raw, file)
    }

    pub fn protected(&self, address: Address) -> Option<&ProtectedContract> {
        self.protected.iter().find(|p| p.address == address)
    }
}

#[cfg(test)]
mod tests;
