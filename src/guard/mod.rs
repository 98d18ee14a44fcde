//! Block-level guard: follows the chain head. For each new block it fetches the block, its
//! receipts and the node's state diff, replays the block with the same rules (an attack that
//! never showed in the mempool is found here), moves the fork forward, publishes the pending
//! env, and reports the block to the submit stage. It decides and sends nothing itself.

mod follow;
mod replay;

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use alloy::primitives::{Address, B256, U256};
use metrics::{Counter, Gauge, Histogram};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use follow::{BlockData, fetch_block_data, fetch_block_diff};
pub use replay::{
    BlockReplay, HoldingBeforeAfter, LayerSource, MinedFinding, MinedTx, ReceiptSummary,
    replay_block,
};

use crate::{
    config::{Asset, Config},
    detect::CumulativeTracker,
    fork::{ChangedKeys, NodeError, SharedFork, StateSource},
    simulate::{SimBlock, Simulator},
    telemetry::{Telemetry, seconds_of_us},
    worker::LiveState,
};

#[derive(Debug, Error)]
pub enum GuardError {
    #[error("reading block {block}: {source}")]
    Node { block: u64, source: NodeError },
    #[error("block {0} is on no node")]
    MissingBlock(u64),
    #[error("block {block}: {reason}")]
    BadBlock { block: u64, reason: String },
    #[error("block replay thread failed: {0}")]
    Join(String),
}

/// The newest head any node announced.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadSignal {
    pub number: u64,
    /// Its hash: a head at a number the fork already holds, with another hash, is a reorg.
    pub hash: B256,
    pub seen_at: Option<Instant>,
}

/// What one block did, for the submit stage (outcomes, re-sends, findings) and the record.
#[derive(Debug)]
pub struct GuardReport {
    pub number: u64,
    pub hash: B256,
    /// The txs of the block in order, with their receipt status.
    pub txs: Vec<(B256, bool)>,
    pub findings: Vec<MinedFinding>,
    /// Per protected contract: `paused()` after the block, when it has one.
    pub paused: Vec<(Address, Option<bool>)>,
    /// Per protected contract: holdings before and after the block.
    pub holdings: Vec<(Address, Vec<HoldingBeforeAfter>)>,
    /// Base fee of the block after this one (what a pause sent now pays at least).
    pub next_base_fee: u64,
    /// Contracts the block created.
    pub deployed: Vec<Address>,
    /// Blocks a reorg dropped before this one was applied (their numbers).
    pub reorged: Vec<u64>,
    pub divergence: Option<String>,
}

/// Metrics a person reads to see that the fork follows the chain.
#[derive(Debug)]
pub struct GuardStats {
    pub blocks: Counter,
    pub divergences: Counter,
    pub diff_unavailable: Counter,
    pub reorgs: Counter,
    pub resets: Counter,
    /// Replaying each block's txs on the fork, seconds.
    pub replay_seconds: Histogram,
    /// Head announced → fork at that head, seconds.
    pub head_apply_seconds: Histogram,
    /// The block the fork sits at (`preempt_fork_block`).
    pub head: Gauge,
    /// Accounts and slots the fork holds, after each block's eviction.
    pub cache_entries: Gauge,
    telemetry: Telemetry,
}

impl Default for GuardStats {
    /// On a recorder of its own (tests); the guard registers on its `Telemetry`.
    fn default() -> Self {
        Self::new(&Telemetry::new())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GuardCounts {
    pub blocks: u64,
    pub divergences: u64,
    pub diff_unavailable: u64,
    pub reorgs: u64,
    pub resets: u64,
    pub head: u64,
}

impl GuardStats {
    pub fn new(t: &Telemetry) -> Self {
        Self {
            blocks: t.counter("preempt_guard_blocks_total", &[]),
            divergences: t.counter("preempt_guard_divergences_total", &[]),
            diff_unavailable: t.counter("preempt_guard_diff_unavailable_total", &[]),
            reorgs: t.counter("preempt_guard_reorgs_total", &[]),
            resets: t.counter("preempt_guard_resets_total", &[]),
            replay_seconds: t.histogram("preempt_guard_replay_seconds", &[]),
            head_apply_seconds: t.histogram("preempt_guard_head_apply_seconds", &[]),
            head: t.gauge("preempt_fork_block", &[]),
            cache_entries: t.gauge("preempt_fork_cache_entries", &[]),
            telemetry: t.clone(),
        }
    }

    pub fn snapshot(&self) -> GuardCounts {
        let s = self.telemetry.snapshot();
        let c = |name| s.count(name, &[]);
        GuardCounts {
            blocks: c("preempt_guard_blocks_total"),
            divergences: c("preempt_guard_divergences_total"),
            diff_unavailable: c("preempt_guard_diff_unavailable_total"),
            reorgs: c("preempt_guard_reorgs_total"),
            resets: c("preempt_guard_resets_total"),
            head: c("preempt_fork_block"),
        }
    }
}

/// A block applied to the fork, kept for rewinding on a reorg.
#[derive(Debug)]
struct Applied {
    number: u64,
    hash: B256,
    keys: ChangedKeys,
}

/// How many blocks back a reorg can be rewound; deeper ones re-fetch the fork.
const HISTORY: usize = 64;
/// Blocks replayed in one go when the guard falls behind; past that, the fork is re-fetched.
const MAX_CATCH_UP: u64 = 32;

/// Follows the head: the only writer of the fork.
#[derive(Debug)]
pub struct BlockGuard {
    config: Config,
    chain_id: u64,
    fork: SharedFork,
    source: StateSource,
    live: Arc<LiveState>,
    reports: mpsc::Sender<GuardReport>,
    stats: Arc<GuardStats>,
    history: VecDeque<Applied>,
    /// Accounts fetched and pinned again after a reset (the protected state).
    warm: Vec<Address>,
    /// Running sums of takes under the threshold, shared with the workers.
    cumulative: Arc<CumulativeTracker>,
    /// The ingest's memory of tx hashes: a mined tx leaves it.
    seen: Option<Arc<crate::ingest::SeenSet>>,
}

impl BlockGuard {
    /// `fork` holds the state of block `head` (hash `head_hash`), already warm.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        chain_id: u64,
        fork: SharedFork,
        source: StateSource,
        live: Arc<LiveState>,
        reports: mpsc::Sender<GuardReport>,
        stats: Arc<GuardStats>,
        head_hash: B256,
    ) -> Self {
        let mut history = VecDeque::with_capacity(HISTORY);
        history.push_back(Applied {
            number: fork.block(),
            hash: head_hash,
            keys: Default::default(),
        });
        stats.head.set(fork.block() as f64);
        stats.cache_entries.set(fork.len() as f64);
        let cumulative = Arc::new(config.cumulative.tracker());
        Self {
            config,
            chain_id,
            fork,
            source,
            live,
            reports,
            stats,
            history,
            warm: Vec::new(),
            cumulative,
            seen: None,
        }
    }

    /// Mined txs leave the ingest's seen-set, so it holds what is pending (plus txs gone
    /// unmined, until their age runs out) instead of every hash of the last ten minutes. A late
    /// copy of a mined tx then runs once more and fails its nonce check.
    pub fn forgetting_mined(mut self, seen: Arc<crate::ingest::SeenSet>) -> Self {
        self.seen = Some(seen);
        self
    }

    /// Sums takes with the workers' tracker (a split drain counts across pending and mined).
    pub fn summing(mut self, cumulative: Arc<CumulativeTracker>) -> Self {
        self.cumulative = cumulative;
        self
    }

    /// Accounts to pin and fetch again whenever the fork is reset.
    pub fn warming(mut self, accounts: Vec<Address>) -> Self {
        self.warm = accounts;
        self
    }

    pub fn stats(&self) -> Arc<GuardStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `cancel`: on every newer head, brings the fork up to it.
    pub async fn run(mut self, mut heads: watch::Receiver<HeadSignal>, cancel: CancellationToken) {
        loop {
            let signal = *heads.borrow_and_update();
            if signal.number > self.fork.block() || self.replaced(&signal) {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    done = self.advance_to(signal) => if let Err(e) = done {
                        tracing::warn!(head = signal.number, error = %e, "new head not processed; retried on the next");
                        // A failing node must not make the guard spin.
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        }
                        continue;
                    },
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = heads.changed() => if changed.is_err() { return },
            }
        }
    }

    /// A head at a number we hold, with another hash: the block we applied was replaced.
    fn replaced(&self, signal: &HeadSignal) -> bool {
        !signal.hash.is_zero()
            && self.history.iter().any(|a| a.number == signal.number && a.hash != signal.hash)
    }

    /// Brings the fork up to the announced head, block by block. A head no node can serve (a
    /// lagging or lying node's announcement) stops the walk at the last real block, to be
    /// tried again on the next announcement: it never blinds the guard to the real chain.
    async fn advance_to(&mut self, signal: HeadSignal) -> Result<(), GuardError> {
        if self.replaced(&signal) {
            let reorged = self.rewind(signal.number).await?;
            // Nothing dropped: the nodes still hold our block there (a wrong announcement).
            if !reorged.is_empty() {
                let report = self.step_after_rewind(signal.number, reorged).await?;
                if self.reports.send(report).await.is_err() {
                    return Ok(());
                }
            }
        }
        if signal.number.saturating_sub(self.fork.block()) > MAX_CATCH_UP {
            // Only a gap a node really has is skipped.
            let latest = self
                .source
                .with_failover(0, |n| async move { n.latest_block_number().await })
                .await
                .map_err(|source| GuardError::Node { block: signal.number, source })?
                .min(signal.number);
            if latest.saturating_sub(self.fork.block()) > MAX_CATCH_UP {
                self.jump_to(latest).await?;
            }
        }
        while self.fork.block() < signal.number {
            let number = self.fork.block() + 1;
            let report = match self.step(number).await {
                Ok(r) => r,
                Err(GuardError::MissingBlock(n)) => {
                    tracing::debug!(
                        block = n,
                        announced = signal.number,
                        "announced head not on any node yet"
                    );
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            if let Some(seen) = signal.seen_at.filter(|_| number == signal.number) {
                self.stats.head_apply_seconds.record(seen.elapsed().as_secs_f64());
            }
            if self.reports.send(report).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Too far behind to replay: drop the cache and start afresh at `number`.
    async fn jump_to(&mut self, number: u64) -> Result<(), GuardError> {
        let data = fetch_block_data(&self.source, number, false).await?;
        tracing::warn!(
            from = self.fork.block(),
            to = number,
            "guard fell behind; fork re-fetched at the head"
        );
        self.reset_at(number, data.hash).await;
        self.publish(&data.header_env);
        Ok(())
    }

    async fn reset_at(&mut self, number: u64, hash: B256) {
        self.fork.reset(number);
        self.stats.resets.increment(1);
        self.history.clear();
        self.history.push_back(Applied { number, hash, keys: Default::default() });
        self.fork.pin(self.warm.iter().copied());
        if let Err(e) = self.fork.prefetch(&self.warm, &[]).await {
            tracing::warn!(block = number, error = %e, "protected state not re-warmed; read on demand");
        }
    }

    async fn step(&mut self, number: u64) -> Result<GuardReport, GuardError> {
        let data = fetch_block_data(&self.source, number, true).await?;
        // A new head whose parent is not the block we hold: the chain reorganised.
        let mut reorged = Vec::new();
        if let Some(last) = self.history.back()
            && last.number + 1 == number
            && last.hash != data.parent_hash
        {
            reorged = self.rewind(number).await?;
            // The fork now sits at the common ancestor: replay forward from there.
            return self.step_after_rewind(number, reorged).await;
        }
        self.apply(number, data, reorged).await
    }

    async fn step_after_rewind(
        &mut self,
        head: u64,
        reorged: Vec<u64>,
    ) -> Result<GuardReport, GuardError> {
        while self.fork.block() + 1 < head {
            let number = self.fork.block() + 1;
            let data = fetch_block_data(&self.source, number, true).await?;
            let report = self.apply(number, data, Vec::new()).await?;
            if self.reports.send(report).await.is_err() {
                break;
            }
        }
        let data = fetch_block_data(&self.source, head, true).await?;
        self.apply(head, data, reorged).await
    }

    /// Walks back to the newest block we hold that is still on the chain, forgetting what the
    /// dropped blocks changed. Returns the dropped block numbers.
    async fn rewind(&mut self, head: u64) -> Result<Vec<u64>, GuardError> {
        let mut dropped = Vec::new();
        let mut keys = Vec::new();
        while let Some(last) = self.history.back() {
            let canonical = fetch_block_data(&self.source, last.number, false).await?.hash;
            if canonical == last.hash {
                break;
            }
            if let Some(gone) = self.history.pop_back() {
                dropped.push(gone.number);
                keys.push(gone.keys);
            }
        }
        if dropped.is_empty() {
            return Ok(dropped);
        }
        self.stats.reorgs.increment(1);
        match self.history.back() {
            Some(ancestor) => {
                let ancestor = ancestor.number;
                tracing::warn!(head, ancestor, dropped = ?dropped, "reorg: fork rewound to the common ancestor");
                self.fork.rewind(&keys, ancestor);
            }
            None => {
                // Deeper than the history: start afresh at the block before the new head.
                let base = head.saturating_sub(1);
                let hash = fetch_block_data(&self.source, base, false).await?.hash;
                tracing::warn!(head, "reorg deeper than the kept history; fork re-fetched");
                self.reset_at(base, hash).await;
            }
        }
        Ok(dropped)
    }

    async fn apply(
        &mut self,
        number: u64,
        data: BlockData,
        reorged: Vec<u64>,
    ) -> Result<GuardReport, GuardError> {
        let BlockData { hash, header_env, block_env, txs, fetch_us, .. } = data;
        let applying = Instant::now();
        let mut replay = self.replay(block_env, &txs, None).await?;
        let mut diff_us = 0;
        if let Some(reason) = &replay.divergence {
            // Repair from the node's own diff of the block, where a node gives one (on anvil
            // it costs a re-execution per tx, so it is the repair path, not the default).
            tracing::warn!(block = number, %reason, "replay diverged from the chain; asking the node for its diff");
            self.stats.divergences.increment(1);
            let started = Instant::now();
            let hashes: Vec<B256> = txs.iter().map(|t| t.hash).collect();
            match fetch_block_diff(&self.source, number, hash, &hashes).await {
                Ok(diff) => {
                    let first = replay.divergence.take();
                    replay = self.replay(block_env, &txs, Some(Arc::new(diff))).await?;
                    replay.divergence = replay.divergence.or(first);
                }
                Err(e) => {
                    self.stats.diff_unavailable.increment(1);
                    tracing::warn!(block = number, error = %e, "no node gave the block's diff; fork re-fetched");
                }
            }
            diff_us = started.elapsed().as_micros() as u64;
        }
        let fetch_us = [fetch_us[0], fetch_us[1], diff_us];
        self.stats.replay_seconds.record(seconds_of_us(replay.replay_us as f64));
        let keys = ChangedKeys::of_layer(&replay.layer);
        let layer_source = replay.layer_source;
        match replay.layer_source {
            LayerSource::NodeDiff | LayerSource::Replay => {
                self.fork.apply_layer(&replay.layer, number);
                self.fork.insert_block_hash(number, hash);
                if self.history.len() == HISTORY {
                    self.history.pop_front();
                }
                self.history.push_back(Applied { number, hash, keys });
            }
            LayerSource::None => self.reset_at(number, hash).await,
        }
        self.publish(&header_env);
        if let Some(seen) = &self.seen {
            txs.iter().for_each(|t| seen.forget(&t.hash));
        }
        let deployed = replay.deployed.clone();
        let (paused, holdings) = self.read_after(replay.holdings_before).await?;
        let evicted = self.fork.evict();
        if evicted.evicted > 0 {
            tracing::debug!(block = number, ?evicted, "fork entries evicted");
        }
        self.stats.blocks.increment(1);
        self.stats.head.set(number as f64);
        self.stats.cache_entries.set(self.fork.len() as f64);
        tracing::debug!(
            block = number,
            txs = txs.len(),
            block_us = fetch_us[0],
            receipts_us = fetch_us[1],
            diff_us = fetch_us[2],
            replay_us = replay.replay_us,
            replay_fetch_us = replay.waited.micros,
            replay_fetch_rounds = replay.waited.rounds,
            replay_fetch_keys = replay.waited.keys,
            apply_us = applying.elapsed().as_micros() as u64,
            cache = self.fork.len(),
            layer = ?layer_source,
            "fork at new head"
        );
        Ok(GuardReport {
            number,
            hash,
            txs: txs.iter().map(|t| (t.hash, t.receipt.is_some_and(|r| r.success))).collect(),
            findings: replay.findings,
            paused,
            holdings,
            next_base_fee: header_env.base_fee,
            deployed,
            reorged,
            divergence: replay.divergence,
        })
    }

    async fn replay(
        &self,
        block_env: SimBlock,
        txs: &[MinedTx],
        diff: Option<Arc<crate::fork::BlockDiff>>,
    ) -> Result<BlockReplay, GuardError> {
        let (config, chain_id, fork) = (self.config.clone(), self.chain_id, Arc::clone(&self.fork));
        let cumulative = Arc::clone(&self.cumulative);
        let txs = txs.to_vec();
        tokio::task::spawn_blocking(move || {
            replay_block(
                &config,
                &fork,
                block_env,
                chain_id,
                &txs,
                diff.as_deref(),
                Some(&cumulative),
            )
        })
        .await
        .map_err(|e| GuardError::Join(e.to_string()))
    }

    /// Publishes the env pending txs now run in: the block after the new head.
    fn publish(&self, pending_env: &SimBlock) {
        self.live.publish(Arc::clone(&self.fork), *pending_env);
    }

    /// `paused()` and holdings of every protected contract on the fork after the block.
    #[allow(clippy::type_complexity)]
    async fn read_after(
        &self,
        before: Vec<(Address, Vec<(Asset, U256)>)>,
    ) -> Result<(Vec<(Address, Option<bool>)>, Vec<(Address, Vec<HoldingBeforeAfter>)>), GuardError>
    {
        let (config, chain_id, fork) = (self.config.clone(), self.chain_id, Arc::clone(&self.fork));
        let env = self.live.current().1;
        tokio::task::spawn_blocking(move || {
            let mut sim = Simulator::new(&config, fork, env, chain_id);
            let paused = config
                .protected
                .iter()
                .map(|p| (p.address, sim.read_paused(p.address).ok().flatten()))
                .collect();
            let holdings = config
                .protected
                .iter()
                .zip(before)
                .map(|(p, (address, before))| {
                    let after = sim.holdings_of(p).unwrap_or_default();
                    let joined = before
                        .iter()
                        .map(|(asset, b)| {
                            let a = after
                                .iter()
                                .find(|(x, _)| x == asset)
                                .map(|(_, v)| *v)
                                .unwrap_or_default();
                            (*asset, *b, a)
                        })
                        .collect();
                    (address, joined)
                })
                .collect();
            (paused, holdings)
        })
        .await
        .map_err(|e| GuardError::Join(e.to_string()))
    }
}

/// Seconds since the epoch, for the pending block's timestamp.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
