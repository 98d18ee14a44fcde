//! The incident store: SQLite, written by one thread of its own fed through a bounded channel.
//! Whoever records never touches SQLite and never waits: a full channel drops the record and
//! counts it (`store_dropped`). The JSON-lines file stays beside it as the export.

mod query;
mod render;
mod schema;
mod write;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use alloy::primitives::{Address, B256, Bytes, U256};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use rusqlite::Connection;
use serde::Serialize;
use thiserror::Error;

use crate::telemetry::Telemetry;

pub use query::{
    ContractFilter, DecisionRow, FindingRow, IncidentDetail, IncidentFilter, IncidentSummary,
    OutcomeRow, RearmRow, SendRow, StoreReader,
};
pub use render::{render_detail, render_list};

/// Records waiting for the writer. A burst of incidents is a few dozen records; this much
/// backlog means the disk has stalled, and the guard must not stall with it.
pub const STORE_QUEUE: usize = 4_096;
/// Records written in one transaction at most.
const BATCH: usize = 256;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("incident store {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("incident store {path}: cannot create its folder: {source}")]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("not a preempt incident store (no tables)")]
    NotAStore,
    #[error("written by a newer preempt (schema {found}; this one reads up to {supported})")]
    Version { found: i64, supported: i64 },
    #[error("cannot start the incident store's thread: {0}")]
    Thread(std::io::Error),
}

/// One account as a simulation read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreStateAccount {
    pub address: Address,
    pub balance: U256,
    pub nonce: u64,
    pub code_hash: B256,
}

/// One storage slot as a simulation read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreStateSlot {
    pub address: Address,
    pub slot: U256,
    pub value: U256,
}

/// Everything a simulation of `attack_tx` read from the state after `block`: enough to run it
/// again with no node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PreState {
    pub attack_tx: B256,
    pub block: u64,
    pub accounts: Vec<PreStateAccount>,
    pub storage: Vec<PreStateSlot>,
    /// Code by hash (shared across incidents).
    pub code: Vec<(B256, Bytes)>,
    /// The run itself (the signed tx, the block env, the chain); `None` in a store written
    /// before these were kept.
    pub run: Option<ReplayRun>,
}

/// What a replay runs besides the state: the signed attack as it was seen, in the block env
/// and on the chain the live simulation used, with the block hashes it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayRun {
    pub chain_id: u64,
    pub sim_block: crate::simulate::SimBlock,
    /// EIP-2718 bytes.
    pub raw_tx: Bytes,
    pub block_hashes: Vec<(u64, B256)>,
}

enum StoreMsg {
    /// One incident record, as the JSON line the export holds.
    Record(String),
    PreState(Box<PreState>),
    /// Answered once everything sent before it is committed.
    Flush(Sender<()>),
    Stop,
}

/// The store's metrics (`preempt_incident_store_*_total`).
#[derive(Debug)]
struct StoreStats {
    written: metrics::Counter,
    dropped: metrics::Counter,
    errors: metrics::Counter,
    telemetry: Telemetry,
}

impl StoreStats {
    fn new(t: &Telemetry) -> Self {
        Self {
            written: t.counter("preempt_incident_store_written_total", &[]),
            dropped: t.counter("preempt_incident_store_dropped_total", &[]),
            errors: t.counter("preempt_incident_store_errors_total", &[]),
            telemetry: t.clone(),
        }
    }
}

/// The store's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounters {
    /// Records committed.
    pub written: u64,
    /// `store_dropped`: records not queued because the writer's channel was full (or closed).
    pub store_dropped: u64,
    /// Records the writer could not store (unreadable, or SQLite refused them).
    pub errors: u64,
}

/// The writing side: a handle to the writer thread.
#[derive(Debug)]
pub struct IncidentStore {
    path: PathBuf,
    tx: Sender<StoreMsg>,
    stats: Arc<StoreStats>,
    /// Disconnected when the writer thread ends.
    done: Receiver<()>,
    closed: AtomicBool,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for StoreMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Record(_) => "Record",
            Self::PreState(_) => "PreState",
            Self::Flush(_) => "Flush",
            Self::Stop => "Stop",
        })
    }
}

impl IncidentStore {
    /// Opens (creating it and its folder if needed) the store at `path` and starts its writer.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_capacity(path, STORE_QUEUE)
    }

    /// As `open`, with a channel of `capacity` records.
    pub fn open_with_capacity(path: &Path, capacity: usize) -> Result<Self, StoreError> {
        Self::open_metered(path, capacity, &Telemetry::new())
    }

    /// As `open_with_capacity`, counting on the guard's metrics.
    pub fn open_metered(
        path: &Path,
        capacity: usize,
        telemetry: &Telemetry,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::Folder { path: path.to_path_buf(), source })?;
        }
        let opened = Connection::open(path)
            .map_err(StoreError::from)
            .and_then(|c| schema::prepare(&c, true).map(|()| c));
        let conn = opened.map_err(|e| match e {
            StoreError::Sqlite(source) | StoreError::Open { source, .. } => {
                StoreError::Open { path: path.to_path_buf(), source }
            }
            other => other,
        })?;
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let (done_tx, done) = crossbeam_channel::bounded::<()>(0);
        let stats = Arc::new(StoreStats::new(telemetry));
        let writer_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("incident-store".into())
            .spawn(move || {
                writer(conn, rx, &writer_stats);
                drop(done_tx);
            })
            .map_err(StoreError::Thread)?;
        Ok(Self {
            path: path.to_path_buf(),
            tx,
            stats,
            done,
            closed: AtomicBool::new(false),
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one record (its JSON line) without waiting; full → dropped and counted.
    pub fn submit(&self, json_line: String) {
        self.offer(StoreMsg::Record(json_line));
    }

    /// Queues what a simulation read, for `check --replay`; full → dropped and counted.
    pub fn record_prestate(&self, prestate: PreState) {
        self.offer(StoreMsg::PreState(Box::new(prestate)));
    }

    fn offer(&self, msg: StoreMsg) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dropped.increment(1);
            }
        }
    }

    /// Records waiting in the channel.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    pub fn counters(&self) -> StoreCounters {
        let s = self.stats.telemetry.snapshot();
        StoreCounters {
            written: s.count("preempt_incident_store_written_total", &[]),
            store_dropped: s.count("preempt_incident_store_dropped_total", &[]),
            errors: s.count("preempt_incident_store_errors_total", &[]),
        }
    }

    /// Waits (up to `timeout`) until everything queued so far is committed. Blocking: for
    /// shutdown and tests, never the hot path.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        if self.tx.send_timeout(StoreMsg::Flush(ack_tx), timeout).is_err() {
            return false;
        }
        ack_rx.recv_timeout(timeout).is_ok()
    }

    /// Commits what is queued and stops the writer, waiting at most `timeout`. Later records
    /// are dropped and counted.
    pub fn close(&self, timeout: Duration) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.tx.send_timeout(StoreMsg::Stop, timeout).is_err() {
            tracing::error!(path = %self.path.display(), "incident store did not take the stop in time");
            return;
        }
        // Disconnected (not a message) once the writer thread has finished.
        let _ = self.done.recv_timeout(timeout);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread.filter(|t| t.is_finished()) {
            let _ = t.join();
        }
    }
}

impl Drop for IncidentStore {
    fn drop(&mut self) {
        self.close(Duration::from_secs(2));
    }
}

/// The writer thread: takes what is queued in batches, one transaction per batch and a savepoint
/// per record (a bad record is counted and leaves nothing half-written).
fn writer(mut conn: Connection, rx: Receiver<StoreMsg>, stats: &StoreStats) {
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else { break };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut acks = Vec::new();
        let records = batch
            .iter()
            .filter(|m| matches!(m, StoreMsg::Record(_) | StoreMsg::PreState(_)))
            .count() as u64;
        match write_batch(&mut conn, batch, &mut acks, &mut stop) {
            Ok((written, bad)) => {
                stats.written.increment(written);
                stats.errors.increment(bad);
            }
            Err(e) => {
                stats.errors.increment(records);
                tracing::error!(error = %e, records, "incident store: a batch could not be committed");
            }
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// Writes one batch in one transaction; returns the records written and those refused.
fn write_batch(
    conn: &mut Connection,
    batch: Vec<StoreMsg>,
    acks: &mut Vec<Sender<()>>,
    stop: &mut bool,
) -> Result<(u64, u64), rusqlite::Error> {
    let mut tx = conn.transaction()?;
    let (mut written, mut bad) = (0, 0);
    for msg in batch {
        let result = match msg {
            StoreMsg::Record(line) => write::record_in(&mut tx, &line),
            StoreMsg::PreState(p) => write::prestate_in(&mut tx, &p).map_err(Into::into),
            StoreMsg::Flush(ack) => {
                acks.push(ack);
                continue;
            }
            StoreMsg::Stop => {
                *stop = true;
                continue;
            }
        };
        match result {
            Ok(()) => written += 1,
            Err(e) => {
                bad += 1;
                tracing::error!(error = %e, "incident store: record not stored");
            }
        }
    }
    tx.commit()?;
    Ok((written, bad))
}

#[cfg(test)]
mod tests;
