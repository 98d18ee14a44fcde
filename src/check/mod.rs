//! `preempt check`: the forensic entry point. Simulates one tx (raw, by hash, or every pending
//! one) against the node's state and prints the verdict with its evidence.

mod replay;
mod report;

use std::{collections::BTreeMap, sync::Arc, time::SystemTime};

use alloy::{
    consensus::{
        Transaction as _, TxEnvelope,
        transaction::{Recovered, SignerRecoverable},
    },
    eips::{BlockNumberOrTag, Decodable2718},
    primitives::{Address, B256, Bytes},
    providers::{Provider, ext::TxPoolApi},
    rpc::types::BlockTransactionsKind,
};
use thiserror::Error;

pub use replay::run_replay;
pub use report::{CheckReport, TxVerdict, print_human};

use crate::{
    config::Config,
    detect::detect,
    fork::{ForkCache, NodeClient, NodeError},
    simulate::{SimBlock, SimError, Simulator},
};

#[derive(Debug, Error)]
pub enum CheckError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("raw tx is not a valid signed transaction: {0}")]
    Undecodable(String),
    #[error("tx {0} not found on the node")]
    TxNotFound(B256),
    #[error("block {0} not found on the node")]
    BlockNotFound(u64),
    #[error("simulation failed: {0}")]
    Sim(#[from] SimError),
    #[error("the config names no node and no --rpc was given")]
    NoNode,
    #[error("simulation thread failed: {0}")]
    Join(String),
    #[error("cannot replay incident {id} of {}: {reason}", store.display())]
    Replay { id: i64, store: std::path::PathBuf, reason: String },
}

/// What to check.
#[derive(Debug, Clone)]
pub enum CheckTarget {
    Raw(Bytes),
    Hash(B256),
    /// A mined tx on the state before it, with every earlier tx of its block applied except
    /// those that paused a protected contract: what the tx would have done had no one paused.
    HashWithoutPause(B256),
    Pending,
}

/// A tx to simulate, with the same-sender txs that must run before it.
struct Job {
    hash: B256,
    tx: Recovered<TxEnvelope>,
    before: Vec<Recovered<TxEnvelope>>,
    /// Leave out of `before` the txs that paused a protected contract.
    without_pause: bool,
}

/// Decodes a raw signed tx (any type) and recovers its sender.
pub fn decode_raw(raw: &[u8]) -> Result<(B256, Recovered<TxEnvelope>), CheckError> {
    let mut buf = raw;
    let envelope =
        TxEnvelope::decode_2718(&mut buf).map_err(|e| CheckError::Undecodable(e.to_string()))?;
    if !buf.is_empty() {
        return Err(CheckError::Undecodable(format!("{} trailing bytes", buf.len())));
    }
    let hash = *envelope.tx_hash();
    let signer = envelope
        .recover_signer()
        .map_err(|e| CheckError::Undecodable(format!("bad signature: {e}")))?;
    Ok((hash, Recovered::new_unchecked(envelope, signer)))
}

/// Runs a check against the node at `rpc` (or the config's first node).
pub async fn run_check(
    config: &Config,
    rpc: Option<&str>,
    target: CheckTarget,
) -> Result<CheckReport, CheckError> {
    // A tx that cannot be decoded is refused before any node is asked.
    let decoded = match &target {
        CheckTarget::Raw(raw) => Some(decode_raw(raw)?),
        _ => None,
    };
    let url = match rpc {
        Some(u) => u.to_string(),
        None => config.nodes.first().map(|n| n.url.clone()).ok_or(CheckError::NoNode)?,
    };
    let node = NodeClient::connect("check", &url).await?;
    let provider = node.provider();
    let chain_id = provider.get_chain_id().await.map_err(|e| NodeError::Rpc(e.to_string()))?;
    let latest = node.latest_block_number().await?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();

    // (fork block, block env, jobs)
    let (fork_block, sim_block, jobs) = match target {
        CheckTarget::Raw(_) => {
            let (hash, tx) = decoded.ok_or_else(|| CheckError::Undecodable("missing".into()))?;
            let header = header_of(&provider, latest).await?;
            (
                latest,
                SimBlock::pending_after(&header, now),
                vec![Job { hash, tx, before: Vec::new(), without_pause: false }],
            )
        }
        CheckTarget::Hash(hash) | CheckTarget::HashWithoutPause(hash) => {
            let without_pause = matches!(target, CheckTarget::HashWithoutPause(_));
            let found = provider
                .get_transaction_by_hash(hash)
                .await
                .map_err(|e| NodeError::Rpc(e.to_string()))?
                .ok_or(CheckError::TxNotFound(hash))?;
            match found.block_number {
                // Mined: the state just before it, inside its own block.
                Some(number) => {
                    let block = provider
                        .get_block_by_number(BlockNumberOrTag::Number(number))
                        .kind(BlockTransactionsKind::Full)
                        .await
                        .map_err(|e| NodeError::Rpc(e.to_string()))?
                        .ok_or(CheckError::BlockNotFound(number))?;
                    let before: Vec<_> = block
                        .transactions
                        .txns()
                        .take_while(|t| *t.inner.tx_hash() != hash)
                        .map(|t| t.inner.clone())
                        .collect();
                    let sim_block = SimBlock::of_block(&block.header);
                    (
                        number.saturating_sub(1),
                        sim_block,
                        vec![Job { hash, tx: found.inner, before, without_pause }],
                    )
                }
                None => {
                    let header = header_of(&provider, latest).await?;
                    let before = pending_predecessors(&provider, &found.inner).await?;
                    (
                        latest,
                        SimBlock::pending_after(&header, now),
                        vec![Job { hash, tx: found.inner, before, without_pause: false }],
                    )
                }
            }
        }
        CheckTarget::Pending => {
            let header = header_of(&provider, latest).await?;
            let content =
                provider.txpool_content().await.map_err(|e| NodeError::Rpc(e.to_string()))?;
            let mut jobs = Vec::new();
            for (_sender, by_nonce) in content.pending {
                let mut txs: Vec<_> = by_nonce.into_values().map(|t| t.inner).collect();
                txs.sort_by_key(|t| t.nonce());
                for i in 0..txs.len() {
                    jobs.push(Job {
                        hash: *txs[i].tx_hash(),
                        tx: txs[i].clone(),
                        before: txs[..i].to_vec(),
                        without_pause: false,
                    });
                }
            }
            (latest, SimBlock::pending_after(&header, now), jobs)
        }
    };

    let protected_accounts: Vec<Address> = config
        .protected
        .iter()
        .flat_map(|p| std::iter::once(p.address).chain(p.tokens.iter().copied()))
        .collect();
    let base = Arc::new(ForkCache::new(fork_block, Some(node.clone())));
    base.prefetch(&protected_accounts, &[])
        .await
        .map_err(|e| SimError::State { tx: B256::ZERO, source: e })?;

    let config = config.clone();
    let (verdicts, notes) = tokio::task::spawn_blocking(move || {
        simulate_jobs(&config, base, sim_block, chain_id, jobs)
    })
    .await
    .map_err(|e| CheckError::Join(e.to_string()))?;
    Ok(CheckReport {
        node: url,
        chain_id,
        fork_block,
        sim_block,
        verdicts,
        notes,
        replay_agrees: None,
    })
}

/// Simulates each job on its own thread-free path (the node is read through blocking fetches).
fn simulate_jobs(
    config: &Config,
    base: Arc<ForkCache>,
    block: SimBlock,
    chain_id: u64,
    jobs: Vec<Job>,
) -> (Vec<TxVerdict>, Vec<String>) {
    let mut simulator = Simulator::new(config, Arc::clone(&base), block, chain_id);
    if let Err(e) = simulator.warm() {
        tracing::warn!(error = %e, "warming protected state failed");
    }
    let mut out = Vec::with_capacity(jobs.len());
    let mut notes = Vec::new();
    for mut job in jobs {
        if job.without_pause {
            let (kept, left_out) = leave_out_pauses(&mut simulator, config, job.before);
            job.before = kept;
            if left_out.is_empty() {
                notes.push("no earlier tx in its block paused a protected contract".to_string());
            }
            notes.extend(left_out);
        }
        // Earlier txs of the same sender (or of the block) run first, on a fork of their own.
        let simulated = if job.before.is_empty() {
            simulator.simulate(job.hash, &job.tx)
        } else {
            simulator.simulate_after(
                job.before.iter().map(|t| (*t.tx_hash(), t)),
                job.hash,
                &job.tx,
            )
        };
        out.push(match simulated {
            Ok(outcome) => {
                let findings = detect(&outcome, &config.protected);
                TxVerdict::simulated(outcome, findings)
            }
            Err(e) => TxVerdict::failed(job.hash, e.to_string()),
        });
    }
    (out, notes)
}

/// `before` without the txs that turned a protected contract's `paused()` from false to true
/// (a direct `pause()`, or one through a Safe), and a line for each one left out.
fn leave_out_pauses(
    simulator: &mut Simulator,
    config: &Config,
    before: Vec<Recovered<TxEnvelope>>,
) -> (Vec<Recovered<TxEnvelope>>, Vec<String>) {
    let saved = std::mem::take(simulator.fork_view_mut().local_mut());
    let paused_now = |sim: &mut Simulator| -> Vec<bool> {
        config
            .protected
            .iter()
            .map(|p| sim.read_paused(p.address).ok().flatten().unwrap_or(false))
            .collect()
    };
    let mut was = paused_now(simulator);
    let (mut kept, mut notes) = (Vec::with_capacity(before.len()), Vec::new());
    for (index, tx) in before.into_iter().enumerate() {
        let hash = *tx.tx_hash();
        let Ok((_, state)) = simulator.execute(hash, &tx) else {
            // Not runnable here: it changes nothing either way.
            kept.push(tx);
            continue;
        };
        let previous = simulator.fork_view().local().clone();
        simulator.fork_view_mut().local_mut().apply_evm_state(&state);
        let now = paused_now(simulator);
        let paused: Vec<&str> = config
            .protected
            .iter()
            .zip(was.iter().zip(&now))
            .filter(|(_, (before, after))| !**before && **after)
            .map(|(p, _)| p.name.as_str())
            .collect();
        if paused.is_empty() {
            was = now;
            kept.push(tx);
        } else {
            *simulator.fork_view_mut().local_mut() = previous;
            notes.push(format!(
                "left out tx {hash} (index {index} of the block): it paused {}",
                paused.join(", ")
            ));
        }
    }
    *simulator.fork_view_mut().local_mut() = saved;
    (kept, notes)
}

async fn header_of(
    provider: &alloy::providers::DynProvider,
    number: u64,
) -> Result<alloy::rpc::types::Header, CheckError> {
    provider
        .get_block_by_number(BlockNumberOrTag::Number(number))
        .await
        .map_err(|e| NodeError::Rpc(e.to_string()))?
        .map(|b| b.header)
        .ok_or(CheckError::BlockNotFound(number))
}

/// Pending txs of the same sender with lower nonces, in nonce order.
async fn pending_predecessors(
    provider: &alloy::providers::DynProvider,
    tx: &Recovered<TxEnvelope>,
) -> Result<Vec<Recovered<TxEnvelope>>, CheckError> {
    let content = provider.txpool_content().await.map_err(|e| NodeError::Rpc(e.to_string()))?;
    let mut mine: BTreeMap<u64, Recovered<TxEnvelope>> = BTreeMap::new();
    if let Some(by_nonce) = content.pending.get(&tx.signer()) {
        for t in by_nonce.values() {
            if t.inner.nonce() < tx.nonce() {
                mine.insert(t.inner.nonce(), t.inner.clone());
            }
        }
    }
    Ok(mine.into_values().collect())
}
