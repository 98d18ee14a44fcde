//! Block-level guard: on every new head, replay the block on the fork (the same rules catch an
//! attack that never showed in the mempool, and pause at once), move the live fork to the new
//! head, notice paused contracts, record what became of each pause, and re-send pauses that
//! have not landed yet.

mod replay;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Instant, SystemTime},
};

use alloy::{
    consensus::Transaction as _,
    eips::BlockNumberOrTag,
    primitives::{Address, B256},
    providers::Provider,
    rpc::types::BlockTransactionsKind,
};
use thiserror::Error;

pub use replay::{
    BlockReplay, HoldingBeforeAfter, MinedFinding, MinedTx, ReceiptSummary, replay_block,
};

use crate::{
    config::Config,
    fork::{NodeClient, NodeError},
    incident::{
        DetectionRecord, DetectionSource, HoldingKept, IncidentLog, OutcomeRecord, ResendRecord,
        unix_ms,
    },
    respond::{Decision, PausePlan, Responder},
    simulate::{
        SimBlock,
        pool::{LiveState, SenderChains, StageTimes},
    },
    submit::Submitter,
};

#[derive(Debug, Error)]
pub enum GuardError {
    #[error("reading block {block}: {source}")]
    Node { block: u64, source: NodeError },
    #[error("block {0} is not on the node")]
    MissingBlock(u64),
    #[error("block replay thread failed: {0}")]
    Join(String),
}

/// A pause that has been sent and not yet seen in a block.
#[derive(Debug, Clone)]
struct Pending {
    plan: PausePlan,
    first_target: u64,
}

/// The pipeline's shared parts the guard uses.
#[derive(Debug, Clone)]
pub struct GuardHandles {
    pub live: Arc<LiveState>,
    pub responder: Arc<Mutex<Responder>>,
    pub submitter: Arc<Submitter>,
    pub incidents: Arc<IncidentLog>,
    pub chains: Arc<SenderChains>,
}

/// Everything the guard touches.
#[derive(Debug)]
pub struct BlockGuard {
    config: Config,
    chain_id: u64,
    node: NodeClient,
    live: Arc<LiveState>,
    responder: Arc<Mutex<Responder>>,
    submitter: Arc<Submitter>,
    incidents: Arc<IncidentLog>,
    chains: Arc<SenderChains>,
    last_block: u64,
    pending: HashMap<B256, Pending>,
}

impl BlockGuard {
    pub fn new(
        config: Config,
        chain_id: u64,
        node: NodeClient,
        handles: GuardHandles,
        last_block: u64,
    ) -> Self {
        let GuardHandles { live, responder, submitter, incidents, chains } = handles;
        Self {
            config,
            chain_id,
            node,
            live,
            responder,
            submitter,
            incidents,
            chains,
            last_block,
            pending: HashMap::new(),
        }
    }

    /// Tracks a pause the mempool path sent, so its outcome is recorded and it is re-sent.
    pub fn track(&mut self, plan: PausePlan, target: u64) {
        self.pending.insert(plan.tx_hash, Pending { plan, first_target: target });
    }

    pub fn last_block(&self) -> u64 {
        self.last_block
    }

    /// Brings the fork up to `head`, one block at a time.
    pub async fn on_head(&mut self, head: u64) -> Result<(), GuardError> {
        while self.last_block < head {
            let number = self.last_block + 1;
            self.step(number).await?;
            self.last_block = number;
        }
        Ok(())
    }

    async fn step(&mut self, number: u64) -> Result<(), GuardError> {
        let provider = self.node.provider();
        let rpc = |source: alloy::transports::TransportError| GuardError::Node {
            block: number,
            source: NodeError::Rpc(source.to_string()),
        };
        let block = provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .kind(BlockTransactionsKind::Full)
            .await
            .map_err(rpc)?
            .ok_or(GuardError::MissingBlock(number))?;
        let receipts =
            provider.get_block_receipts(number.into()).await.map_err(rpc)?.unwrap_or_default();
        let mut txs = Vec::new();
        for (tx, receipt) in block.transactions.txns().zip(receipts.iter()) {
            txs.push(MinedTx {
                hash: *tx.inner.tx_hash(),
                tx: tx.inner.clone(),
                receipt: ReceiptSummary { success: receipt.status(), gas_used: receipt.gas_used },
            });
        }
        let sim_block = SimBlock::of_block(&block.header);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let pending_env = SimBlock::pending_after(&block.header, now);

        let current = self.live.current();
        let (config, chain_id, fork) = (self.config.clone(), self.chain_id, Arc::clone(&current.0));
        let replay_txs = txs.clone();
        let started = Instant::now();
        let replay = tokio::task::spawn_blocking(move || {
            replay_block(&config, &fork, sim_block, chain_id, &replay_txs)
        })
        .await
        .map_err(|e| GuardError::Join(e.to_string()))?;
        if let Some(reason) = &replay.refetched {
            tracing::warn!(block = number, %reason, "fork re-fetched instead of replayed");
        }
        self.live.publish(Arc::clone(&replay.fork), pending_env);
        self.chains.clear();
        tracing::debug!(
            block = number,
            txs = txs.len(),
            replay_us = started.elapsed().as_micros() as u64,
            "fork at new head"
        );

        // Contracts paused on chain (by us or by anyone) are no longer raced.
        {
            let mut responder = lock(&self.responder);
            for (contract, paused) in &replay.paused {
                if *paused == Some(true) && !responder.is_paused(contract) {
                    responder.mark_paused(*contract, &format!("paused() true at block {number}"));
                    tracing::info!(contract = %contract, block = number, "contract is paused");
                }
            }
        }

        self.record_outcomes(number, &txs, &replay);
        self.answer_mined_attacks(number, &replay, pending_env.base_fee).await;
        self.resend(number).await;
        self.resync_nonce().await;
        Ok(())
    }

    fn record_outcomes(&mut self, number: u64, txs: &[MinedTx], replay: &BlockReplay) {
        let landed: Vec<B256> =
            self.pending.keys().copied().filter(|h| txs.iter().any(|t| t.hash == *h)).collect();
        for hash in landed {
            let Some(p) = self.pending.remove(&hash) else { continue };
            let pause_index = txs.iter().position(|t| t.hash == hash);
            let attack_index = p.plan.attack_tx.and_then(|a| txs.iter().position(|t| t.hash == a));
            let paused =
                replay.paused.iter().find(|(c, _)| *c == p.plan.contract).and_then(|(_, v)| *v);
            let holdings = replay
                .holdings
                .iter()
                .find(|(c, _)| *c == p.plan.contract)
                .map(|(_, h)| {
                    h.iter()
                        .map(|(asset, before, after)| HoldingKept {
                            asset: *asset,
                            before: *before,
                            after: *after,
                            kept: after >= before,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let record = OutcomeRecord {
                kind: "outcome",
                at_unix_ms: unix_ms(),
                block: number,
                contract: p.plan.contract,
                contract_name: p.plan.contract_name.clone(),
                pause_tx: hash,
                pause_landed: true,
                pause_succeeded: pause_index.map(|i| txs[i].receipt.success),
                pause_index,
                attack_tx: p.plan.attack_tx,
                attack_index,
                attack_succeeded: attack_index.map(|i| txs[i].receipt.success),
                same_block: attack_index.is_some(),
                pause_before_attack: matches!((pause_index, attack_index), (Some(p), Some(a)) if p < a),
                contract_paused: paused,
                holdings,
            };
            tracing::info!(
                block = number,
                contract = %p.plan.contract_name,
                pause_index = ?record.pause_index,
                attack_index = ?record.attack_index,
                attack_succeeded = ?record.attack_succeeded,
                "pause landed"
            );
            self.incidents.record(&record);
            lock(&self.responder)
                .mark_paused(p.plan.contract, &format!("our pause landed in block {number}"));
        }
    }

    /// Findings in txs already mined: pause at once.
    async fn answer_mined_attacks(&mut self, number: u64, replay: &BlockReplay, base_fee: u64) {
        for found in &replay.findings {
            let mut contracts: Vec<Address> = found.findings.iter().map(|f| f.contract).collect();
            contracts.sort();
            contracts.dedup();
            let decisions: Vec<(Address, Decision)> = {
                let mut responder = lock(&self.responder);
                contracts
                    .iter()
                    .filter_map(|c| self.config.protected(*c))
                    .map(|p| (p.address, responder.decide(p, None, base_fee)))
                    .collect()
            };
            let signed = Instant::now();
            let mut submitted = Vec::new();
            for (_, decision) in &decisions {
                if let Decision::Pause { plan } | Decision::Replace { plan, .. } = decision {
                    let report =
                        self.submitter.submit(plan.raw.clone(), plan.tx_hash, number + 1).await;
                    self.track(plan.clone(), number + 1);
                    submitted.push(report);
                }
            }
            tracing::warn!(
                block = number,
                attack = %found.tx.hash,
                findings = found.findings.len(),
                "block guard: mined tx with findings"
            );
            self.incidents.record(&DetectionRecord {
                kind: "detection",
                at_unix_ms: unix_ms(),
                source: DetectionSource::BlockGuard,
                attack_tx: found.tx.hash,
                attack_from: found.tx.tx.signer(),
                attack_to: found.tx.tx.inner().to(),
                attack_fees: None,
                seen_from: "block",
                sim_block: number,
                sim_gas_used: found.outcome.gas_used,
                sim_time_us: found.outcome.sim_time.as_secs_f64() * 1e6,
                findings: &found.findings,
                holdings: &found.outcome.holdings,
                decisions: &decisions,
                times: StageTimes::default(),
                submit_started_us: None,
                sent_us: Some(signed.elapsed().as_secs_f64() * 1e6),
                submitted,
            });
        }
    }

    /// Pauses not seen in a block yet go out again for the next one, within `resend_blocks`.
    async fn resend(&mut self, number: u64) {
        let limit = self.config.respond.resend_blocks;
        let due: Vec<Pending> = self.pending.values().cloned().collect();
        for p in due {
            if number + 1 > p.first_target + limit {
                self.pending.remove(&p.plan.tx_hash);
                lock(&self.responder).forget_in_flight(&p.plan.contract);
                tracing::warn!(pause = %p.plan.tx_hash, "pause not included within resend_blocks; given up");
                continue;
            }
            if lock(&self.responder).is_paused(&p.plan.contract) {
                self.pending.remove(&p.plan.tx_hash);
                continue;
            }
            let report =
                self.submitter.submit(p.plan.raw.clone(), p.plan.tx_hash, number + 1).await;
            self.incidents.record(&ResendRecord {
                kind: "resend",
                at_unix_ms: unix_ms(),
                pause_tx: p.plan.tx_hash,
                contract: p.plan.contract,
                report: &report,
            });
        }
    }

    async fn resync_nonce(&mut self) {
        let Some(address) = lock(&self.responder).pauser().map(|p| p.address()) else { return };
        if let Ok(n) = self.node.provider().get_transaction_count(address).await
            && let Some(p) = lock(&self.responder).pauser_mut()
        {
            p.resync(n);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
