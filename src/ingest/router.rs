//! The filter in front of the workers: what cannot reach a protected contract is not
//! simulated; what can is queued, protected-first, so an overload never drops those.

use std::{collections::HashSet, sync::Arc, sync::atomic::Ordering};

use alloy::{consensus::Transaction as _, primitives::Address};
use crossbeam_channel::{Sender, TrySendError};

use super::{IngestStats, SeenSet};
use crate::{
    fork::{LiveFork, SharedFork},
    types::PendingTx,
};

/// Which queue a tx goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Names a protected contract (as `to`, in its access list, or through a 7702 delegation).
    Protected,
    /// Calls code that might reach a protected contract (any contract, any create).
    Other,
    /// A plain value transfer to an account known to have no code: it runs no code.
    Skip,
}

/// Routes decoded pending txs to the simulation queues.
#[derive(Debug)]
pub struct TxRouter<T> {
    protected: HashSet<Address>,
    fork: Arc<LiveFork<T>>,
    seen: Arc<SeenSet>,
    stats: Arc<IngestStats>,
    high: Sender<PendingTx>,
    normal: Sender<PendingTx>,
}

impl<T> TxRouter<T> {
    pub fn new(
        protected: impl IntoIterator<Item = Address>,
        fork: Arc<LiveFork<T>>,
        seen: Arc<SeenSet>,
        stats: Arc<IngestStats>,
        high: Sender<PendingTx>,
        normal: Sender<PendingTx>,
    ) -> Self {
        Self { protected: protected.into_iter().collect(), fork, seen, stats, high, normal }
    }

    pub fn seen(&self) -> &SeenSet {
        &self.seen
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    pub fn priority(&self, tx: &PendingTx, fork: &SharedFork) -> Priority {
        let inner = tx.tx.inner();
        let to = inner.to();
        if let Some(to) = to
            && self.protected.contains(&to)
        {
            return Priority::Protected;
        }
        if let Some(list) = inner.access_list()
            && list.iter().any(|item| self.protected.contains(&item.address))
        {
            return Priority::Protected;
        }
        if inner.authorization_list().is_some_and(|a| !a.is_empty()) {
            return Priority::Protected;
        }
        match to {
            // Creates run constructor code, which can call anything.
            None => Priority::Other,
            Some(to) if inner.input().is_empty() && fork.known_code(&to) == Some(false) => {
                Priority::Skip
            }
            // Unknown or a contract: conservative, simulate.
            Some(_) => Priority::Other,
        }
    }

    /// Takes a tx from a node: dedupes, filters, queues. Never blocks on the `Other` queue.
    pub fn route(&self, mut tx: PendingTx) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        if !self.seen.first_sight(tx.hash) {
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let current = self.fork.current();
        let priority = self.priority(&tx, &current.0);
        tx.queued_at = std::time::Instant::now();
        match priority {
            Priority::Skip => {
                self.stats.filtered.fetch_add(1, Ordering::Relaxed);
            }
            Priority::Protected => {
                self.stats.queued_protected.fetch_add(1, Ordering::Relaxed);
                // Never dropped: wait for room (workers take this queue first).
                match self.high.try_send(tx) {
                    Ok(()) => {}
                    Err(TrySendError::Full(tx)) => {
                        let high = self.high.clone();
                        let wait = move || high.send(tx).map_err(|_| ());
                        // Inside the runtime, tell it this thread blocks; elsewhere just wait.
                        let _ = match tokio::runtime::Handle::try_current() {
                            Ok(_) => tokio::task::block_in_place(wait),
                            Err(_) => wait(),
                        };
                    }
                    Err(TrySendError::Disconnected(_)) => {}
                }
            }
            Priority::Other => match self.normal.try_send(tx) {
                Ok(()) => {
                    self.stats.queued_other.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Full(_)) => {
                    self.stats.dropped_overload.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => {}
            },
        }
    }
}
