//! Incidents: every finding and every action leaves one JSON line a person can re-check —
//! what was seen, what the simulation showed, what was sent where and when, what happened —
//! and, with `[incidents] store`, the same as rows in a SQLite store written off the hot path.

mod prestate;
mod store;
mod time;
mod timeline;

pub use store::{
    ContractFilter, DecisionRow, FindingRow, IncidentDetail, IncidentFilter, IncidentStore,
    IncidentSummary, OutcomeRow, PreState, PreStateAccount, PreStateSlot, RearmRow, ReplayRun,
    STORE_QUEUE, SendRow, StoreCounters, StoreError, StoreReader, render_detail, render_list,
};
pub use time::{parse_time, rfc3339_ms};
pub use timeline::render as render_timeline;

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    sync::Mutex,
    time::SystemTime,
};

use alloy::primitives::{Address, B256, U256};
use serde::Serialize;
use thiserror::Error;

use crate::{
    config::{Asset, Config},
    respond::{AttackFees, Decision},
    submit::SubmitReport,
    types::{Finding, HoldingChange},
    worker::StageTimes,
};

/// Why the incident log could not be opened.
#[derive(Debug, Error)]
pub enum IncidentError {
    #[error("incident log {}: {source}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Appends records to the configured JSON-lines file and hands each to the store, if either is
/// configured (nowhere when neither is).
#[derive(Debug)]
pub struct IncidentLog {
    path: Option<PathBuf>,
    file: Option<Mutex<BufWriter<File>>>,
    store: Option<IncidentStore>,
}

impl IncidentLog {
    /// The JSON-lines file alone.
    pub fn open(path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                Some(Mutex::new(BufWriter::new(
                    OpenOptions::new().create(true).append(true).open(p)?,
                )))
            }
            None => None,
        };
        Ok(Self { path: path.map(Path::to_path_buf), file, store: None })
    }

    /// The JSON-lines file and the SQLite store, either or both.
    pub fn open_with_store(
        path: Option<&Path>,
        store: Option<&Path>,
    ) -> Result<Self, IncidentError> {
        Self::open_metered(path, store, &crate::telemetry::Telemetry::new())
    }

    /// As `open_with_store`, the store counting on the guard's metrics.
    pub fn open_metered(
        path: Option<&Path>,
        store: Option<&Path>,
        telemetry: &crate::telemetry::Telemetry,
    ) -> Result<Self, IncidentError> {
        let mut log = Self::open(path).map_err(|source| IncidentError::Log {
            path: path.map(Path::to_path_buf).unwrap_or_default(),
            source,
        })?;
        log.store = store
            .map(|s| IncidentStore::open_metered(s, store::STORE_QUEUE, telemetry))
            .transpose()?;
        Ok(log)
    }

    /// What `[incidents]` configures: `path` (JSON lines) and `store` (SQLite).
    pub fn from_config(config: &Config) -> Result<Self, IncidentError> {
        Self::from_config_metered(config, &crate::telemetry::Telemetry::new())
    }

    /// As `from_config`, the store counting on the guard's metrics.
    pub fn from_config_metered(
        config: &Config,
        telemetry: &crate::telemetry::Telemetry,
    ) -> Result<Self, IncidentError> {
        Self::open_metered(
            config.incidents_path.as_deref(),
            config.incidents_store.as_deref(),
            telemetry,
        )
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn store(&self) -> Option<&IncidentStore> {
        self.store.as_ref()
    }

    /// The store's counters (`store_dropped` among them), when a store is configured.
    pub fn store_counters(&self) -> Option<StoreCounters> {
        self.store.as_ref().map(IncidentStore::counters)
    }

    /// Writes one line and flushes it (a record must survive a crash right after the action),
    /// and queues the same line for the store without waiting.
    pub fn record<T: Serialize>(&self, record: &T) {
        if self.file.is_none() && self.store.is_none() {
            return;
        }
        let line = match serde_json::to_string(record) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "incident record could not be encoded");
                return;
            }
        };
        if let Some(file) = &self.file {
            let mut f = match file.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if let Err(e) = writeln!(f, "{line}").and_then(|_| f.flush()) {
                tracing::error!(error = %e, "incident record could not be written");
            }
        }
        if let Some(store) = &self.store {
            store.submit(line);
        }
    }

    /// What a simulation read, for `check --replay` (store only; the export does not hold it).
    pub fn record_prestate(&self, prestate: PreState) {
        if let Some(store) = &self.store {
            store.record_prestate(prestate);
        }
    }

    /// At shutdown: commits what the store holds, waiting at most `timeout`.
    pub fn close(&self, timeout: std::time::Duration) {
        if let Some(store) = &self.store {
            store.close(timeout);
        }
    }
}

/// Wall-clock microseconds since the epoch at `at` (an `Instant` in the past or now).
pub fn unix_us_at(at: std::time::Instant) -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default();
    now.saturating_sub(at.elapsed().as_micros() as u64)
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Where a detection came from.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectionSource {
    /// A pending tx, simulated before any block included it.
    Mempool,
    /// A tx already in a block (private order flow), found when the block arrived.
    BlockGuard,
}

/// A finding and what was done about it.
#[derive(Debug, Serialize)]
pub struct DetectionRecord {
    pub kind: &'static str,
    pub at_unix_ms: u64,
    pub source: DetectionSource,
    pub attack_tx: B256,
    pub attack_from: Address,
    pub attack_to: Option<Address>,
    /// The attack's own fee fields (what a pause must outbid).
    pub attack_fees: Option<AttackFees>,
    pub seen_from: String,
    /// The block the simulation ran in (pending: the next one; block guard: the block itself).
    pub sim_block: u64,
    pub sim_gas_used: u64,
    pub sim_time_us: f64,
    /// Wall clock at first sight, µs since the epoch (lines the record up with a node's or a
    /// benchmark's own clock; the stage times below are relative to it).
    pub seen_unix_us: Option<u64>,
    pub findings: Vec<Finding>,
    pub holdings: Vec<HoldingChange>,
    /// The protected contracts' books for the tx: who took what, what accounts for it.
    pub ledgers: Vec<crate::types::ContractLedger>,
    pub decisions: Vec<(Address, Decision)>,
    /// Microseconds since the tx was first seen: queued → simulated → detected → signed → sent.
    pub times: StageTimes,
    /// When the pause was handed to the submit stage.
    pub submit_started_us: Option<f64>,
    /// When the first copy's bytes were written to a destination's socket.
    pub sent_us: Option<f64>,
    /// When every destination had answered.
    pub answered_us: Option<f64>,
    pub submitted: Vec<SubmitReport>,
}

/// What became of a pause once a block arrived.
#[derive(Debug, Serialize)]
pub struct OutcomeRecord {
    pub kind: &'static str,
    pub at_unix_ms: u64,
    pub block: u64,
    pub contract: Address,
    pub contract_name: String,
    pub pause_tx: B256,
    pub pause_landed: bool,
    pub pause_succeeded: Option<bool>,
    pub pause_index: Option<usize>,
    pub attack_tx: Option<B256>,
    pub attack_index: Option<usize>,
    /// The attack's receipt status when it is in this block.
    pub attack_succeeded: Option<bool>,
    pub same_block: bool,
    pub pause_before_attack: bool,
    pub contract_paused: Option<bool>,
    /// The contract's holdings before the block and after it.
    pub holdings: Vec<HoldingKept>,
}

#[derive(Debug, Serialize)]
pub struct HoldingKept {
    pub asset: Asset,
    pub before: U256,
    pub after: U256,
    pub kept: bool,
}

/// A pause re-sent for a later block.
#[derive(Debug, Serialize)]
pub struct ResendRecord {
    pub kind: &'static str,
    pub at_unix_ms: u64,
    pub pause_tx: B256,
    pub contract: Address,
    pub report: SubmitReport,
}

/// A contract that reads unpaused again (its governance lifted the pause): raced again.
#[derive(Debug, Serialize)]
pub struct RearmRecord {
    pub kind: &'static str,
    pub at_unix_ms: u64,
    pub contract: Address,
    pub contract_name: String,
    /// The block at which `paused()` read false again.
    pub unpaused_at_block: u64,
    /// Why it had been considered paused.
    pub was: String,
}
