//! Mined blocks through the block guard's own path: a fork at the block before the range with
//! the protected state warm, then per block `fetch_block_data` → `replay_block` (the same rules)
//! → the block's layer applied, and every tx with findings through `decide_all` with a dry-run
//! responder. Nothing is signed with the guardian key and nothing is sent.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Instant,
};

use alloy::{
    consensus::Transaction as _,
    primitives::{Address, B256},
    providers::Provider,
    signers::local::PrivateKeySigner,
};

use super::{
    ShadowError,
    report::{Decided, ReportHeader, SeenFinding, ShadowReport, Tally, Would, one_line},
};
use crate::{
    config::Config,
    fork::{ForkCache, NodeClient, NodeError, SharedFork, StateSource},
    guard::{LayerSource, MinedFinding, fetch_block_data, fetch_block_diff, replay_block},
    respond::{Pauser, Responder, decide_all},
    run::{protected_accounts, warm_protected},
    simulate::{SimBlock, Simulator},
};

/// Every node of the config, or `--rpc` alone; those that answer make the state source.
pub(super) async fn connect(
    config: &Config,
    rpc: Option<&str>,
) -> Result<(StateSource, String), ShadowError> {
    let targets: Vec<(String, String)> = match rpc {
        Some(url) => vec![("rpc".to_string(), url.to_string())],
        None => config.nodes.iter().map(|n| (n.name.clone(), n.url.clone())).collect(),
    };
    if targets.is_empty() {
        return Err(ShadowError::NoNode);
    }
    let attempts =
        futures::future::join_all(targets.iter().map(|(name, url)| NodeClient::connect(name, url)))
            .await;
    let mut clients = Vec::new();
    let mut down = Vec::new();
    for ((name, _), attempt) in targets.iter().zip(attempts) {
        match attempt {
            Ok(c) => clients.push(c),
            Err(e) => down.push(format!("{name} ({})", one_line(&e.to_string()))),
        }
    }
    if clients.is_empty() {
        return Err(ShadowError::NoNodeReachable(down.join("; ")));
    }
    for d in &down {
        tracing::warn!(node = %d, "node unreachable; replaying from the others");
    }
    let label = match rpc {
        Some(url) => url.to_string(),
        None => clients.iter().map(|c| c.name.clone()).collect::<Vec<_>>().join(", "),
    };
    Ok((StateSource::new(clients), label))
}

/// The config shadow decides with: mode dry-run, pauses signed straight to the contract (no
/// Safe: its guardian is not ours to check).
pub(super) fn dry_run_config(config: &Config) -> Config {
    let mut config = config.clone();
    config.respond.mode = crate::config::ResponseMode::DryRun;
    config.respond.safe = None;
    config
}

/// A responder that decides as `run` does in dry-run mode. Its key is a throwaway one made for
/// this run: the guardian's key is never loaded, and what it signs is never sent.
fn dry_run_responder(config: &Config, chain_id: u64) -> Mutex<Responder> {
    let pauser = Pauser::new(PrivateKeySigner::random(), chain_id, 0);
    Mutex::new(Responder::new(config.respond.clone(), Some(pauser)))
}

/// Replays blocks `from..=to`. `interrupt` stops it after the block under way (the report says
/// how far it got).
pub(super) async fn replay_range(
    operator_config: &Config,
    rpc: Option<&str>,
    from: u64,
    to: u64,
    interrupt: impl Future<Output = ()>,
) -> Result<ShadowReport, ShadowError> {
    let started = Instant::now();
    if from == 0 {
        return Err(ShadowError::Genesis);
    }
    if from > to {
        return Err(ShadowError::Range { from, to });
    }
    let (source, node) = connect(operator_config, rpc).await?;
    let chain_id = source
        .with_failover(0, |n| async move {
            n.provider().get_chain_id().await.map_err(|e| NodeError::Rpc(e.to_string()))
        })
        .await?;
    let head = source.with_failover(0, |n| async move { n.latest_block_number().await }).await?;
    if to > head {
        return Err(ShadowError::BeyondHead { to, head });
    }
    let config = dry_run_config(operator_config);
    let parent = fetch_block_data(&source, from - 1, false).await?;
    let fork = Arc::new(ForkCache::with_source(from - 1, Some(source.clone()), config.fork));
    warm_protected(&config, &fork).await.map_err(|e| ShadowError::Warm(e.to_string()))?;
    let warm = protected_accounts(&config);
    let cumulative = Arc::new(config.cumulative.tracker());
    let responder = Arc::new(dry_run_responder(&config, chain_id));
    // A contract paused before the range is not raced, as `run` would not.
    follow_paused(&config, &fork, parent.header_env, chain_id, &responder, from - 1).await?;

    let mut tally = Tally::new(operator_config);
    let mut header = ReportHeader {
        source: "replay",
        node,
        chain_id: Some(chain_id),
        from_block: Some(from),
        to_block: Some(to),
        divergences: Some(0),
        ..ReportHeader::default()
    };
    let mut txs = 0u64;
    let mut last_hash = parent.hash;
    tokio::pin!(interrupt);
    for number in from..=to {
        let step = replay_one(&config, &fork, &source, chain_id, number, &warm, &cumulative);
        let step = tokio::select! {
            biased;
            _ = &mut interrupt => {
                header.to_block = Some(number - 1);
                header.notes.push(format!("interrupted: blocks {number}..={to} not replayed"));
                break;
            }
            step = step => step?,
        };
        if step.parent_hash != last_hash {
            header.notes.push(format!(
                "block {number}'s parent is not the block replayed before it: the chain reorganised during the replay"
            ));
        }
        last_hash = step.hash;
        if let Some(reason) = step.divergence {
            *header.divergences.get_or_insert(0) += 1;
            header.notes.push(format!("block {number}: replay diverged: {}", one_line(&reason)));
        }
        header.blocks += 1;
        txs += step.txs;
        // What `run` does with a guard report: the paused state after the block first, then
        // every mined tx with findings through the one decide step.
        follow_paused(&config, &fork, step.next_env, chain_id, &responder, number).await?;
        for found in step.findings {
            let decisions =
                decide_all(&responder, &config, &found.findings, None, step.next_env.base_fee);
            tally.add(decided(number, found, decisions));
        }
        if number % 50 == 0 {
            tracing::info!(block = number, to, "shadow replay");
        }
    }
    header.txs = Some(txs);
    header.wall_time_s = started.elapsed().as_secs_f64();
    Ok(tally.finish(header))
}

/// One block replayed and applied to the fork.
struct Stepped {
    hash: B256,
    parent_hash: B256,
    /// The env of the block after it (what a pause would have been sent into).
    next_env: SimBlock,
    txs: u64,
    findings: Vec<MinedFinding>,
    divergence: Option<String>,
}

/// As the block guard applies a block: replay; on a divergence, the node's own diff of the
/// block; then the fork moves to the block (or is fetched afresh when nothing can be trusted).
async fn replay_one(
    config: &Config,
    fork: &SharedFork,
    source: &StateSource,
    chain_id: u64,
    number: u64,
    warm: &[Address],
    cumulative: &Arc<crate::detect::CumulativeTracker>,
) -> Result<Stepped, ShadowError> {
    let data = fetch_block_data(source, number, true).await?;
    let mut replay =
        replay_on(config, fork, data.block_env, chain_id, &data.txs, None, cumulative).await?;
    let divergence = replay.divergence.clone();
    if divergence.is_some() {
        let hashes: Vec<B256> = data.txs.iter().map(|t| t.hash).collect();
        match fetch_block_diff(source, number, data.hash, &hashes).await {
            Ok(diff) => {
                replay = replay_on(
                    config,
                    fork,
                    data.block_env,
                    chain_id,
                    &data.txs,
                    Some(diff),
                    cumulative,
                )
                .await?;
            }
            Err(e) => {
                tracing::warn!(block = number, error = %e, "no node gave the block's diff; fork fetched afresh");
            }
        }
    }
    match replay.layer_source {
        LayerSource::NodeDiff | LayerSource::Replay => {
            fork.apply_layer(&replay.layer, number);
            fork.insert_block_hash(number, data.hash);
        }
        LayerSource::None => {
            fork.reset(number);
            fork.pin(warm.iter().copied());
            if let Err(e) = fork.prefetch(warm, &[]).await {
                tracing::warn!(block = number, error = %e, "protected state not re-warmed; read on demand");
            }
        }
    }
    fork.evict();
    Ok(Stepped {
        hash: data.hash,
        parent_hash: data.parent_hash,
        next_env: data.header_env,
        txs: data.txs.len() as u64,
        findings: replay.findings,
        divergence,
    })
}

async fn replay_on(
    config: &Config,
    fork: &SharedFork,
    block_env: SimBlock,
    chain_id: u64,
    txs: &[crate::guard::MinedTx],
    diff: Option<crate::fork::BlockDiff>,
    cumulative: &Arc<crate::detect::CumulativeTracker>,
) -> Result<crate::guard::BlockReplay, ShadowError> {
    let (config, fork, txs) = (config.clone(), Arc::clone(fork), txs.to_vec());
    let cumulative = Arc::clone(cumulative);
    tokio::task::spawn_blocking(move || {
        replay_block(&config, &fork, block_env, chain_id, &txs, diff.as_ref(), Some(&*cumulative))
    })
    .await
    .map_err(|e| ShadowError::Join(e.to_string()))
}

/// Reads `paused()` of every protected contract on the fork (at block `number`) and tells the
/// responder, as the submit stage does on each guard report.
async fn follow_paused(
    config: &Config,
    fork: &SharedFork,
    env: SimBlock,
    chain_id: u64,
    responder: &Arc<Mutex<Responder>>,
    number: u64,
) -> Result<(), ShadowError> {
    let (config, fork, responder) = (config.clone(), Arc::clone(fork), Arc::clone(responder));
    tokio::task::spawn_blocking(move || {
        let mut sim = Simulator::new(&config, fork, env, chain_id);
        let mut responder = responder.lock().unwrap_or_else(|p| p.into_inner());
        for p in &config.protected {
            match sim.read_paused(p.address).ok().flatten() {
                Some(true) if !responder.is_paused(&p.address) => {
                    responder.mark_paused(p.address, &format!("paused() true at block {number}"));
                }
                Some(false) if responder.is_paused(&p.address) => {
                    responder.mark_unpaused(&p.address);
                    responder.forget_in_flight(&p.address);
                }
                _ => {}
            }
        }
    })
    .await
    .map_err(|e| ShadowError::Join(e.to_string()))
}

fn decided(
    block: u64,
    found: MinedFinding,
    decisions: Vec<(Address, crate::respond::Decision)>,
) -> Decided {
    Decided {
        block: Some(block),
        index: Some(found.index),
        tx: found.tx.hash,
        from: found.tx.tx.signer(),
        to: found.tx.tx.inner().to(),
        seen_in: "block",
        findings: found
            .findings
            .iter()
            .map(|f| SeenFinding {
                contract: f.contract,
                rule: f.rule.to_string(),
                severity: f.severity,
                summary: f.summary.clone(),
            })
            .collect(),
        decisions: decisions.iter().map(|(c, d)| (*c, Would::of(d))).collect(),
    }
}
