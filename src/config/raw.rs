//! The file format as serde reads it: defaults beside the fields, unknown keys refused.
//! Limits are read as TOML integers (`i64`) so that a negative value reaches validation and
//! gets the same "outside the allowed range" error as any other.

use std::path::PathBuf;

use serde::Deserialize;

use super::ResponseMode;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default, rename = "node")]
    pub(super) nodes: Vec<RawNode>,
    pub(super) guardian: Option<RawGuardian>,
    #[serde(default, rename = "protect")]
    pub(super) protected: Vec<RawProtected>,
    #[serde(default)]
    pub(super) simulation: RawSimulation,
    #[serde(default, rename = "relay")]
    pub(super) relays: Vec<RawRelay>,
    pub(super) relay_auth: Option<RawRelayAuth>,
    #[serde(default)]
    pub(super) respond: RawRespond,
    pub(super) incidents: Option<RawIncidents>,
    #[serde(default)]
    pub(super) fork: RawFork,
    #[serde(default, rename = "alert")]
    pub(super) alerts: Vec<super::alert::RawAlert>,
    #[serde(default)]
    pub(super) policy: RawPolicy,
    #[serde(default)]
    pub(super) cumulative: RawCumulative,
    pub(super) metrics: Option<RawMetrics>,
}

/// `[metrics]`: where Prometheus scrapes the guard. No section, no endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    /// `host:port` for `GET /metrics`, e.g. `127.0.0.1:9464`.
    pub(super) listen: String,
}

/// `[cumulative]`: the window unaccounted takes are summed over.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawCumulative {
    pub(super) window_blocks: i64,
    /// Default: each contract's `drain_threshold_bps`.
    pub(super) threshold_bps: Option<i64>,
}

impl Default for RawCumulative {
    fn default() -> Self {
        // Ten minutes of mainnet blocks: a split drain is a burst, not a season.
        Self { window_blocks: 50, threshold_bps: None }
    }
}

/// `[policy]`: the action per severity, and per rule (`"drain" = "alert"`) or per rule at a
/// severity (`"reentrancy.low" = "record"`) under `[policy.rules]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub(super) critical: Option<String>,
    pub(super) high: Option<String>,
    pub(super) medium: Option<String>,
    pub(super) low: Option<String>,
    pub(super) info: Option<String>,
    pub(super) rules: std::collections::BTreeMap<String, String>,
}

/// `[fork]`: how much forked state the guard keeps.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawFork {
    pub(super) max_entries: i64,
    pub(super) max_age_blocks: i64,
}

impl Default for RawFork {
    fn default() -> Self {
        let limits = crate::fork::ForkLimits::default();
        Self {
            max_entries: limits.max_entries as i64,
            max_age_blocks: limits.max_age_blocks as i64,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    /// Default: `node<index>`.
    pub(super) name: Option<String>,
    pub(super) url: String,
    #[serde(default = "yes")]
    pub(super) pending: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGuardian {
    pub(super) key: Option<String>,
    pub(super) keystore: Option<PathBuf>,
    pub(super) password: Option<String>,
    /// A Safe that holds the pause role; the guardian key is one of its owners (or a module).
    pub(super) safe: Option<String>,
    /// Default: `owner`.
    pub(super) safe_role: Option<super::SafeRole>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawSimulation {
    pub(super) view_gas_limit: i64,
    pub(super) max_tx_gas: i64,
    pub(super) workers: i64,
    pub(super) queue_capacity: i64,
    pub(super) keep_warm_ms: i64,
    pub(super) worker_nice: i64,
}

impl Default for RawSimulation {
    fn default() -> Self {
        Self {
            view_gas_limit: 3_000_000,
            max_tx_gas: super::TX_GAS_CAP as i64,
            // One core left for ingest, the node connections and the guard.
            workers: std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1))
                .unwrap_or(1)
                .max(1) as i64,
            queue_capacity: 8_192,
            keep_warm_ms: 5,
            worker_nice: -10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelay {
    /// Default: `relay<index>`.
    pub(super) name: Option<String>,
    pub(super) url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelayAuth {
    pub(super) key: String,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRespond {
    pub(super) mode: ResponseMode,
    pub(super) max_fee_per_gas_gwei: f64,
    pub(super) max_priority_fee_per_gas_gwei: f64,
    pub(super) pause_gas_limit: i64,
    pub(super) resend_blocks: i64,
}

impl Default for RawRespond {
    fn default() -> Self {
        Self {
            mode: ResponseMode::Pause,
            max_fee_per_gas_gwei: 1_000.0,
            max_priority_fee_per_gas_gwei: 500.0,
            pause_gas_limit: 200_000,
            resend_blocks: 3,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIncidents {
    /// JSON lines, one per record (the export).
    pub(super) path: Option<PathBuf>,
    /// SQLite, one row per detection, finding, decision, send and outcome.
    pub(super) store: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProtected {
    pub(super) name: String,
    pub(super) address: String,
    #[serde(default)]
    pub(super) tokens: Vec<String>,
    /// Default 1,000 (10%).
    #[serde(default = "default_drain_threshold_bps")]
    pub(super) drain_threshold_bps: i64,
    #[serde(default)]
    pub(super) claims: Vec<RawClaim>,
    #[serde(default)]
    pub(super) invariants: Vec<String>,
    /// Default: `pause()` on the contract itself.
    pub(super) pause: Option<RawPause>,
    /// Senders whose actions are the protocol's own (a timelock, a multisig): recorded and
    /// alerted, never paused against.
    #[serde(default)]
    pub(super) trusted: Vec<String>,
    /// A price the contract reads moving more than this inside one tx, with a loss, is price
    /// manipulation. Default 500 (5%).
    #[serde(default = "default_price_move_bps")]
    pub(super) price_move_bps: i64,
    /// The contract legitimately pulls tokens from accounts that did not sign the tx (a
    /// keeper-run liquidator): no `approval-drain` finding for it.
    #[serde(default)]
    pub(super) pulls_from_third_parties: bool,
}

fn default_drain_threshold_bps() -> i64 {
    1_000
}

fn default_price_move_bps() -> i64 {
    500
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClaim {
    pub(super) view: String,
    pub(super) asset: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPause {
    /// Default: the protected contract.
    pub(super) target: Option<String>,
    /// Default: `pause()`.
    pub(super) calldata: Option<String>,
}
