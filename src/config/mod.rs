//! Configuration: one TOML file, validated at load; every error names the file and the key.

mod secret;

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    str::FromStr,
};

use alloy::primitives::{Address, Bytes, U256, hex};
use serde::Deserialize;
use thiserror::Error;

pub use secret::{SecretRef, SecretValue};

/// `pause()` — the default containment call.
pub const PAUSE_SELECTOR: [u8; 4] = [0x84, 0x56, 0xcb, 0x59];

/// Errors from loading a config file. Each names the file, and the key where one applies.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: key `{key}`: {reason}")]
    Invalid { file: PathBuf, key: String, reason: String },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
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
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub name: String,
    /// http(s) URL of the relay's JSON-RPC endpoint.
    pub url: String,
}

/// What preempt does with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
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

/// A view-call expression evaluated before and after a tx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invariant {
    pub source: String,
    pub check: InvariantCheck,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvariantCheck {
    /// `f()` returning bool must be true.
    IsTrue(ViewCall),
    /// `lhs op rhs`, each side a `f()` returning uint256 or a number.
    Compare { lhs: Operand, op: CompareOp, rhs: Operand },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Call(ViewCall),
    Literal(U256),
}

/// A zero-argument view on the protected contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewCall {
    pub signature: String,
    pub selector: [u8; 4],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CompareOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl CompareOp {
    pub fn holds(self, lhs: U256, rhs: U256) -> bool {
        match self {
            Self::Ge => lhs >= rhs,
            Self::Gt => lhs > rhs,
            Self::Le => lhs <= rhs,
            Self::Lt => lhs < rhs,
            Self::Eq => lhs == rhs,
            Self::Ne => lhs != rhs,
        }
    }
}

impl ViewCall {
    fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let open = s.find('(').ok_or_else(|| format!("`{s}` is not a call like `name()`"))?;
        let name = &s[..open];
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!("`{s}`: `{name}` is not a function name"));
        }
        if &s[open..] != "()" {
            return Err(format!("`{s}`: invariant views take no arguments"));
        }
        Ok(Self { signature: s.to_string(), selector: selector(s) })
    }
}

impl FromStr for Invariant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const OPS: [(&str, CompareOp); 6] = [
            (">=", CompareOp::Ge),
            ("<=", CompareOp::Le),
            ("==", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            (">", CompareOp::Gt),
            ("<", CompareOp::Lt),
        ];
        let operand = |t: &str| -> Result<Operand, String> {
            let t = t.trim();
            if t.starts_with(|c: char| c.is_ascii_digit()) {
                U256::from_str(t).map(Operand::Literal).map_err(|e| format!("`{t}`: {e}"))
            } else {
                ViewCall::parse(t).map(Operand::Call)
            }
        };
        for (token, op) in OPS {
            if let Some(at) = s.find(token) {
                let lhs = operand(&s[..at])?;
                let rhs = operand(&s[at + token.len()..])?;
                return Ok(Self {
                    source: s.trim().to_string(),
                    check: InvariantCheck::Compare { lhs, op, rhs },
                });
            }
        }
        Ok(Self {
            source: s.trim().to_string(),
            check: InvariantCheck::IsTrue(ViewCall::parse(s)?),
        })
    }
}

/// The 4-byte selector of a canonical signature such as `balanceOf(address)`.
pub fn selector(signature: &str) -> [u8; 4] {
    let h = alloy::primitives::keccak256(signature.as_bytes());
    [h[0], h[1], h[2], h[3]]
}

// ---- the file format ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, rename = "node")]
    nodes: Vec<RawNode>,
    guardian: Option<RawGuardian>,
    #[serde(default, rename = "protect")]
    protected: Vec<RawProtected>,
    #[serde(default)]
    simulation: RawSimulation,
    #[serde(default, rename = "relay")]
    relays: Vec<RawRelay>,
    relay_auth: Option<RawRelayAuth>,
    #[serde(default)]
    respond: RawRespond,
    incidents: Option<RawIncidents>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    name: Option<String>,
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelayAuth {
    key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRespond {
    mode: Option<ResponseMode>,
    max_fee_per_gas_gwei: Option<f64>,
    max_priority_fee_per_gas_gwei: Option<f64>,
    pause_gas_limit: Option<u64>,
    resend_blocks: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncidents {
    path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Option<String>,
    url: String,
    pending: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuardian {
    key: Option<String>,
    keystore: Option<PathBuf>,
    password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSimulation {
    view_gas_limit: Option<u64>,
    max_tx_gas: Option<u64>,
    workers: Option<usize>,
    queue_capacity: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProtected {
    name: String,
    address: String,
    #[serde(default)]
    tokens: Vec<String>,
    drain_threshold_bps: Option<u32>,
    #[serde(default)]
    claims: Vec<RawClaim>,
    #[serde(default)]
    invariants: Vec<String>,
    pause: Option<RawPause>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaim {
    view: String,
    asset: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPause {
    target: Option<String>,
    calldata: Option<String>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { file: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`; `file` is only used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            key,
            reason,
        };

        let mut nodes = Vec::with_capacity(raw.nodes.len());
        for (i, n) in raw.nodes.into_iter().enumerate() {
            let url = n.url.trim().to_string();
            let is_ws = url.starts_with("ws://") || url.starts_with("wss://");
            let is_http = url.starts_with("http://") || url.starts_with("https://");
            let is_ipc = url.starts_with('/') || url.ends_with(".ipc");
            if !(is_ws || is_http || is_ipc) {
                return Err(invalid(
                    format!("node[{i}].url"),
                    format!("`{url}` is neither ws://, wss://, http(s):// nor an IPC socket path"),
                ));
            }
            nodes.push(NodeConfig {
                name: n.name.unwrap_or_else(|| format!("node{i}")),
                url,
                pending: n.pending.unwrap_or(true),
            });
        }

        let guardian = match raw.guardian {
            None => None,
            Some(g) => Some(match (g.key, g.keystore, g.password) {
                (Some(key), None, None) => GuardianKey::Raw(
                    SecretRef::from_str(&key).map_err(|r| invalid("guardian.key".into(), r))?,
                ),
                (None, Some(path), Some(pw)) => GuardianKey::Keystore {
                    path,
                    password: SecretRef::from_str(&pw)
                        .map_err(|r| invalid("guardian.password".into(), r))?,
                },
                (None, Some(_), None) => {
                    return Err(invalid(
                        "guardian.password".into(),
                        "a keystore needs a password reference".into(),
                    ));
                }
                _ => {
                    return Err(invalid(
                        "guardian".into(),
                        "give either `key` or `keystore` with `password`".into(),
                    ));
                }
            }),
        };

        let parse_address = |key: String, s: &str| -> Result<Address, ConfigError> {
            Address::from_str(s.trim())
                .map_err(|e| invalid(key, format!("`{s}` is not an address: {e}")))
        };

        let mut protected = Vec::with_capacity(raw.protected.len());
        let mut seen = HashSet::new();
        for (i, p) in raw.protected.into_iter().enumerate() {
            let key = |k: &str| format!("protect[{i}].{k}");
            let address = parse_address(key("address"), &p.address)?;
            if !seen.insert(address) {
                return Err(invalid(key("address"), format!("{address} is protected twice")));
            }
            let tokens = p
                .tokens
                .iter()
                .enumerate()
                .map(|(j, t)| parse_address(format!("protect[{i}].tokens[{j}]"), t))
                .collect::<Result<Vec<_>, _>>()?;
            let drain_threshold_bps = p.drain_threshold_bps.unwrap_or(1_000);
            if drain_threshold_bps == 0 || drain_threshold_bps > 10_000 {
                return Err(invalid(
                    key("drain_threshold_bps"),
                    format!("{drain_threshold_bps} is outside 1..=10000"),
                ));
            }
            let mut claims = Vec::with_capacity(p.claims.len());
            for (j, c) in p.claims.iter().enumerate() {
                let view = c.view.trim();
                if !view.ends_with("(address)") {
                    return Err(invalid(
                        format!("protect[{i}].claims[{j}].view"),
                        format!("`{view}` must take one address, like `balances(address)`"),
                    ));
                }
                let asset = if c.asset.eq_ignore_ascii_case("eth") {
                    Asset::Eth
                } else {
                    let token = parse_address(format!("protect[{i}].claims[{j}].asset"), &c.asset)?;
                    if !tokens.contains(&token) {
                        return Err(invalid(
                            format!("protect[{i}].claims[{j}].asset"),
                            format!("{token} is not in this contract's `tokens`"),
                        ));
                    }
                    Asset::Token(token)
                };
                claims.push(ClaimView {
                    signature: view.to_string(),
                    selector: selector(view),
                    asset,
                });
            }
            let invariants = p
                .invariants
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    Invariant::from_str(s)
                        .map_err(|r| invalid(format!("protect[{i}].invariants[{j}]"), r))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let pause = match p.pause {
                None => {
                    PauseCall { target: address, calldata: Bytes::copy_from_slice(&PAUSE_SELECTOR) }
                }
                Some(raw) => PauseCall {
                    target: match raw.target {
                        Some(t) => parse_address(key("pause.target"), &t)?,
                        None => address,
                    },
                    calldata: match raw.calldata {
                        Some(c) => Bytes::from(hex::decode(c.trim()).map_err(|e| {
                            invalid(key("pause.calldata"), format!("not hex: {e}"))
                        })?),
                        None => Bytes::copy_from_slice(&PAUSE_SELECTOR),
                    },
                },
            };
            if p.name.trim().is_empty() {
                return Err(invalid(key("name"), "must not be empty".into()));
            }
            protected.push(ProtectedContract {
                name: p.name,
                address,
                tokens,
                drain_threshold_bps,
                claims,
                invariants,
                pause,
            });
        }
        if protected.is_empty() {
            return Err(invalid(
                "protect".into(),
                "no contract to protect: add a [[protect]] table".into(),
            ));
        }

        let simulation = SimulationConfig {
            view_gas_limit: raw.simulation.view_gas_limit.unwrap_or(3_000_000),
            max_tx_gas: raw.simulation.max_tx_gas.unwrap_or(1 << 24),
            workers: raw.simulation.workers.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get().saturating_sub(1))
                    .unwrap_or(1)
                    .max(1)
            }),
            queue_capacity: raw.simulation.queue_capacity.unwrap_or(8_192),
        };
        if simulation.workers == 0 || simulation.workers > 256 {
            return Err(invalid(
                "simulation.workers".into(),
                format!("{} is outside 1..=256", simulation.workers),
            ));
        }
        let mut relays = Vec::with_capacity(raw.relays.len());
        for (i, r) in raw.relays.into_iter().enumerate() {
            let url = r.url.trim().to_string();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    format!("relay[{i}].url"),
                    format!("`{url}` is not an http(s) URL"),
                ));
            }
            relays.push(RelayConfig { name: r.name.unwrap_or_else(|| format!("relay{i}")), url });
        }
        let relay_auth = match raw.relay_auth {
            None => None,
            Some(a) => {
                Some(SecretRef::from_str(&a.key).map_err(|r| invalid("relay_auth.key".into(), r))?)
            }
        };
        if !relays.is_empty() && relay_auth.is_none() {
            return Err(invalid(
                "relay_auth".into(),
                "relays need a [relay_auth] key to sign bundles".into(),
            ));
        }
        let gwei = |key: &str, v: Option<f64>, default: f64| -> Result<u128, ConfigError> {
            let v = v.unwrap_or(default);
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(key.into(), format!("{v} must be a positive number of gwei")));
            }
            Ok((v * 1e9) as u128)
        };
        let respond = RespondConfig {
            mode: raw.respond.mode.unwrap_or(ResponseMode::Pause),
            max_fee_per_gas_cap: gwei(
                "respond.max_fee_per_gas_gwei",
                raw.respond.max_fee_per_gas_gwei,
                1_000.0,
            )?,
            max_priority_fee_per_gas_cap: gwei(
                "respond.max_priority_fee_per_gas_gwei",
                raw.respond.max_priority_fee_per_gas_gwei,
                500.0,
            )?,
            pause_gas_limit: raw.respond.pause_gas_limit.unwrap_or(200_000),
            resend_blocks: raw.respond.resend_blocks.unwrap_or(3),
        };
        Ok(Self {
            nodes,
            guardian,
            protected,
            simulation,
            relays,
            relay_auth,
            respond,
            incidents_path: raw.incidents.map(|i| i.path),
        })
    }

    pub fn protected(&self, address: Address) -> Option<&ProtectedContract> {
        self.protected.iter().find(|p| p.address == address)
    }
}

#[cfg(test)]
mod tests;
