//! `preempt check --replay ID`: the verdict of a stored incident re-derived offline. The state
//! the live simulation read (accounts, code, slots, block hashes) fills a fork with no node,
//! and the signed attack runs through the same simulate and detect in the same block env.

use std::{collections::BTreeSet, path::Path, str::FromStr, sync::Arc};

use alloy::primitives::Address;
use revm::{bytecode::Bytecode, state::AccountInfo};

use super::{CheckError, CheckReport, TxVerdict, decode_raw};
use crate::{
    config::Config,
    detect::detect,
    fork::ForkCache,
    incident::{PreState, StoreReader},
    simulate::Simulator,
    worker::verdict,
};

/// Re-runs incident `id` of the store at `store` under `config`'s rules, with no node.
pub fn run_replay(config: &Config, store: &Path, id: i64) -> Result<CheckReport, CheckError> {
    let replay_error =
        |reason: String| CheckError::Replay { id, store: store.to_path_buf(), reason };
    let reader = StoreReader::open(store).map_err(|e| replay_error(e.to_string()))?;
    let incident = reader
        .show(id)
        .map_err(|e| replay_error(e.to_string()))?
        .ok_or_else(|| replay_error("no such incident".into()))?;
    let prestate =
        reader.prestate(id).map_err(|e| replay_error(e.to_string()))?.ok_or_else(|| {
            replay_error(
                "its pre-state was not recorded (a detection by `run` with `[incidents] store` \
             records one)"
                    .into(),
            )
        })?;
    let Some(run) = prestate.run.clone() else {
        return Err(replay_error(
            "it was recorded without its signed tx and block env (an older store)".into(),
        ));
    };
    let (hash, tx) = decode_raw(&run.raw_tx)?;
    if hash != prestate.attack_tx {
        return Err(replay_error(format!(
            "the stored tx hashes to {hash}, not the incident's {}",
            prestate.attack_tx
        )));
    }
    let fork = Arc::new(fork_of(&prestate));
    let mut simulator = Simulator::new(config, fork, run.sim_block, run.chain_id);
    let verdicts = match simulator.simulate(hash, &tx) {
        Ok(outcome) => {
            let findings = detect(&outcome, &config.protected);
            vec![TxVerdict::simulated(outcome, findings)]
        }
        Err(e) => vec![TxVerdict::failed(hash, e.to_string())],
    };
    // (rule, contract) pairs: a rule may find twice on one contract (ETH and a token).
    let live: BTreeSet<(String, Address)> = incident
        .findings
        .iter()
        .filter_map(|f| Some((f.rule.clone(), Address::from_str(&f.contract).ok()?)))
        .collect();
    let replayed: BTreeSet<(String, Address)> =
        verdict(&verdicts[0].findings).into_iter().map(|(r, c)| (r.to_string(), c)).collect();
    let agrees = live == replayed;
    let mut notes = vec![format!(
        "replay of incident {id} from {}: {} account(s), {} slot(s), {} code(s) recorded; no node",
        store.display(),
        prestate.accounts.len(),
        prestate.storage.len(),
        prestate.code.len()
    )];
    let names: Vec<String> =
        incident.findings.iter().map(|f| format!("{} on {}", f.rule, f.contract_name)).collect();
    notes.push(format!(
        "live verdict: {}; replay {}",
        if names.is_empty() { "clean".to_string() } else { names.join(", ") },
        if agrees { "agrees" } else { "DISAGREES" }
    ));
    Ok(CheckReport {
        node: format!("none (incident {id})"),
        chain_id: run.chain_id,
        fork_block: prestate.block.saturating_sub(1),
        sim_block: run.sim_block,
        verdicts,
        notes,
        replay_agrees: Some(agrees),
    })
}

/// A fork holding exactly the recorded state: what was not read reads as absent or zero.
fn fork_of(p: &PreState) -> ForkCache {
    let fork = ForkCache::new(p.block.saturating_sub(1), None);
    for a in &p.accounts {
        let code = p
            .code
            .iter()
            .find(|(h, _)| *h == a.code_hash)
            .and_then(|(_, c)| Bytecode::new_raw_checked(c.clone()).ok());
        let mut info = AccountInfo { balance: a.balance, nonce: a.nonce, ..Default::default() };
        match code {
            Some(code) => {
                info.set_code_and_hash(code, a.code_hash);
            }
            // An EOA; or code that was not recorded, which the run then reports missing.
            None => {
                info.code_hash = a.code_hash;
                if a.code_hash != revm::primitives::KECCAK_EMPTY {
                    info.code = None;
                }
            }
        }
        fork.insert_account(a.address, info);
    }
    for s in &p.storage {
        fork.insert_storage(s.address, s.slot, s.value);
    }
    for (number, hash) in p.run.iter().flat_map(|r| &r.block_hashes) {
        fork.insert_block_hash(*number, *hash);
    }
    fork
}
