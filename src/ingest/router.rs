//! The router in front of the workers: drops what was seen (by computed hash), ranks the rest
//! (`rank`) and hands it to the lane's queue. The `Protected` lane never drops; a full lower
//! lane defers the tx (forgotten by the seen-set, offered again by the next reconciliation).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::primitives::Address;
use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    IngestStats, SeenSet,
    crowd::{TargetCrowd, by_crowd},
    rank::{CodeIndex, Lane, ProtectedSet, Rank, Reason, created_address, rank},
    verify::{Verifier, recover_signer},
};
use crate::{
    fork::{Answered, LiveFork, TraceWatch},
    types::PendingTx,
    worker::{Decoding, Nudge},
};

/// The three queues the workers read, in this order.
#[derive(Debug, Clone)]
pub struct Lanes {
    pub protected: Sender<PendingTx>,
    pub suspicious: Sender<PendingTx>,
    pub other: Sender<PendingTx>,
    /// Txs that run no code, still wanted by the workers: a later tx of the same sender runs
    /// after them (an attack behind a 1-wei transfer must not wait for a block).
    pub skipped: Option<Sender<PendingTx>>,
}

impl Lanes {
    fn of(&self, lane: Lane) -> &Sender<PendingTx> {
        match lane {
            Lane::Protected => &self.protected,
            Lane::Suspicious => &self.suspicious,
            Lane::Other => &self.other,
        }
    }
}

/// What became of a tx offered to the router.
#[derive(Debug)]
pub enum Admission {
    /// Its computed hash was seen before.
    Duplicate,
    /// Runs no code (a value transfer to an account without code).
    Skipped,
    Queued(Lane),
    /// Its lane was full: forgotten, so the next reconciliation brings it back.
    Deferred,
    /// The code of these accounts decides its lane: the caller fetches it and calls `dispatch`.
    NeedsCode(Box<PendingTx>, Vec<Address>),
    /// The workers are gone (shutdown).
    Closed,
}

/// Routes verified pending txs to the simulation lanes; shared by every node connection.
#[derive(Debug)]
pub struct TxRouter<T> {
    verifier: Verifier,
    protected: ProtectedSet,
    fork: Arc<LiveFork<T>>,
    seen: Arc<SeenSet>,
    stats: Arc<IngestStats>,
    code: CodeIndex,
    crowd: TargetCrowd,
    lanes: Lanes,
    cancel: CancellationToken,
    /// Unix ms of the last `CodeIndex` prune.
    last_prune_ms: AtomicU64,
    /// Woken when code may have been learned: a code lookup answered, or a pre-state trace
    /// started at admission filled the fork (parked txs are then ranked again).
    code_learned: Arc<Notify>,
    /// Wakes an idle worker as a frame arrives (`with_nudge`).
    nudge: Option<Arc<Nudge>>,
}

/// How often the code index is pruned (on a head, by whichever node brings it first).
const PRUNE_EVERY_MS: u64 = 10_000;
/// From a traced tx's answer arriving to the tx in a lane: the answer parsed and stored, the
/// classifier woken, the tx ranked (measured: tens of µs; a margin for a loaded host).
const TRACED_TX_ROUTED_WITHIN: std::time::Duration = std::time::Duration::from_micros(300);

impl<T> TxRouter<T> {
    /// `chain_id`: the chain every pending tx must be signed for (pre-EIP-155 legacy txs aside).
    pub fn new(
        chain_id: u64,
        protected: impl IntoIterator<Item = Address>,
        fork: Arc<LiveFork<T>>,
        seen: Arc<SeenSet>,
        stats: Arc<IngestStats>,
        lanes: Lanes,
    ) -> Self {
        Self {
            verifier: Verifier::new(chain_id),
            protected: ProtectedSet::new(protected),
            fork,
            seen,
            stats,
            code: CodeIndex::default(),
            crowd: TargetCrowd::default(),
            lanes,
            cancel: CancellationToken::new(),
            last_prune_ms: AtomicU64::new(0),
            code_learned: Arc::new(Notify::new()),
            nudge: None,
        }
    }

    /// Each pending frame nudges an idle worker as it starts decoding (see `worker::Nudge`).
    pub fn with_nudge(mut self, nudge: Arc<Nudge>) -> Self {
        self.nudge = Some(nudge);
        self
    }

    /// Held while a pending frame is decoded and routed.
    pub fn decoding(&self) -> Option<Decoding<'_>> {
        self.nudge.as_deref().map(Nudge::decoding)
    }

    /// A wait for room in the `Protected` lane gives up once `cancel` fires (shutdown).
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub fn seen(&self) -> &SeenSet {
        &self.seen
    }

    pub(super) fn seen_set(&self) -> Arc<SeenSet> {
        Arc::clone(&self.seen)
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    pub fn code_index(&self) -> &CodeIndex {
        &self.code
    }

    pub fn protected(&self) -> &ProtectedSet {
        &self.protected
    }

    pub(super) fn code_learned(&self) -> &Notify {
        &self.code_learned
    }

    /// Learns, from the fork's cache, the code of the accounts of `need` it holds (a pre-state
    /// trace filled them, or a run fetched them); whether it learned any. A tx parked for its
    /// code then need not wait for the lookup as well. (An account the fork holds without code
    /// already ranks as such.)
    pub fn learn_code_from_fork(&self, need: &[Address]) -> bool {
        let current = self.fork.current();
        let mut learned = false;
        for a in need {
            let Some(Some(info)) = current.0.cached_account(a) else { continue };
            let Some(code) = info.code.or_else(|| current.0.cached_code(&info.code_hash)) else {
                continue;
            };
            if code.is_empty() {
                continue;
            }
            self.code.insert_code(&self.protected, *a, &code.original_bytes());
            learned = true;
        }
        learned
    }

    /// A contract was deployed at `address` (the block guard saw it mined): calls to it rank as
    /// calls to a fresh contract, and its cached code is dropped.
    pub fn note_deployed(&self, address: Address) {
        self.code.note_deployed(address, false);
    }

    /// Keeps the code index bounded; cheap to call on every head (it runs every 10 s at most).
    pub fn maintain(&self) {
        let now = super::stats::unix_ms();
        let last = self.last_prune_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= PRUNE_EVERY_MS
            && self
                .last_prune_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.code.prune();
        }
    }

    /// The lane `tx` belongs in, from what is known now (the fork's cache answers "no code"
    /// for accounts ingest has not looked up).
    pub fn rank(&self, tx: &PendingTx) -> Rank {
        let current = self.fork.current();
        let verdict = rank(tx, &self.protected, &self.code, |a| current.0.known_code(a));
        by_crowd(verdict, self.crowded(tx))
    }

    /// The lane of a tx whose code was not learned in time.
    pub fn unclassified_lane(&self, tx: &PendingTx) -> Lane {
        match by_crowd(Rank::Lane(Lane::Other, Reason::Unclassified), self.crowded(tx)) {
            Rank::Lane(lane, _) => lane,
            _ => Lane::Other,
        }
    }

    fn crowded(&self, tx: &PendingTx) -> bool {
        alloy::consensus::Transaction::to(tx.tx.inner())
            .is_some_and(|to| self.crowd.is_crowded(&to))
    }

    /// First sight (by computed hash) → rank → queue; a tx whose rank needs code comes back.
    pub fn admit(&self, tx: PendingTx) -> Admission {
        self.stats.received.increment(1);
        if !self.seen.sight(tx.hash, tx.tx.signer(), tx.sender_check.is_none()) {
            self.stats.duplicates.increment(1);
            return Admission::Duplicate;
        }
        let inner = tx.tx.inner();
        if let Some(to) = alloy::consensus::Transaction::to(inner) {
            self.crowd.note(to);
        }
        if let Some(created) = created_address(&tx) {
            let names = self.protected.in_bytes(alloy::consensus::Transaction::input(inner));
            self.code.note_deployed(created, names);
            self.fork.current().0.warm_for_pending_creation(
                self.protected.addresses(),
                created,
                tx.tx.signer(),
            );
        }
        // Each authority's account gets code in this tx: a call to it in the same block runs
        // that code, whatever `latest` says.
        for auth in alloy::consensus::Transaction::authorization_list(inner).unwrap_or_default() {
            if let Ok(signature) = auth.signature()
                && let Ok(authority) = recover_signer(&signature, auth.signature_hash())
            {
                self.code.note_deployed(authority, self.protected.contains(&auth.address));
            }
        }
        match self.rank(&tx) {
            Rank::Skip => self.skip(tx),
            Rank::Lane(lane, _) => self.dispatch(tx, lane),
            Rank::NeedsCode(need) => {
                // Code nobody has looked at: the tx's whole pre-state is asked for now, while
                // its lane is being decided (one node round trip instead of two in a row).
                if alloy::consensus::Transaction::to(inner).is_some_and(|to| need.contains(&to))
                    && self.fork.current().0.trace_ahead(tx.hash, &tx.tx, self.trace_watch())
                {
                    self.stats.traced_ahead.increment(1);
                }
                Admission::NeedsCode(Box::new(tx), need)
            }
        }
    }

    /// As `admit`, for callers with no node to ask for code: unknown code ranks `Other`.
    pub fn route(&self, tx: PendingTx) -> Admission {
        match self.admit(tx) {
            Admission::NeedsCode(tx, _) => {
                let lane = self.unclassified_lane(&tx);
                self.dispatch(*tx, lane)
            }
            other => other,
        }
    }

    /// Not simulated (it runs no code), but handed to the workers to record: a later tx of
    /// the same sender runs on top of it.
    pub fn skip(&self, tx: PendingTx) -> Admission {
        self.stats.filtered.increment(1);
        if let Some(skipped) = &self.lanes.skipped
            && let Err(TrySendError::Full(tx)) = skipped.try_send(tx)
        {
            // Forgotten, so the next reconciliation offers it again.
            self.seen.forget(&tx.hash);
            self.stats.deferred.increment(1);
            return Admission::Deferred;
        }
        Admission::Skipped
    }

    /// What hears of a trace started at admission: the classifier, once it has filled the
    /// fork; an idle worker, woken as the answer arrives so it is running by the time the tx
    /// is routed (parsing and storing the answer, then ranking, take tens of µs).
    fn trace_watch(&self) -> TraceWatch {
        let answered = self.nudge.clone().map(|nudge| {
            Box::new(move || nudge.expect_within(TRACED_TX_ROUTED_WITHIN)) as Box<Answered>
        });
        TraceWatch { landed: Arc::clone(&self.code_learned), answered }
    }

    /// Queues an admitted tx in `lane`.
    pub fn dispatch(&self, mut tx: PendingTx, lane: Lane) -> Admission {
        tx.queued_at = std::time::Instant::now();
        let counter = match lane {
            Lane::Protected => &self.stats.queued_protected,
            Lane::Suspicious => &self.stats.queued_suspicious,
            Lane::Other => &self.stats.queued_other,
        };
        let hash = tx.hash;
        match self.lanes.of(lane).try_send(tx) {
            Ok(()) => {}
            Err(TrySendError::Full(tx)) if lane == Lane::Protected => {
                if !self.wait_for_room(tx) {
                    return Admission::Closed;
                }
            }
            Err(TrySendError::Full(_)) => {
                self.seen.forget(&hash);
                self.stats.deferred.increment(1);
                return Admission::Deferred;
            }
            Err(TrySendError::Disconnected(_)) => return Admission::Closed,
        }
        counter.increment(1);
        tracing::trace!(tx = %hash, ?lane, "queued");
        Admission::Queued(lane)
    }

    /// Blocks until the `Protected` lane has room (workers take it first), or shutdown.
    fn wait_for_room(&self, tx: PendingTx) -> bool {
        let wait = move || {
            let mut tx = tx;
            loop {
                match self.lanes.protected.send_timeout(tx, Duration::from_millis(10)) {
                    Ok(()) => return true,
                    Err(SendTimeoutError::Timeout(back)) if !self.cancel.is_cancelled() => {
                        tx = back
                    }
                    Err(_) => return false,
                }
            }
        };
        // On a multi-thread runtime, tell it this thread blocks; elsewhere just wait.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }
}
