//! Pending txs that need their sender's earlier pending txs first: each runs on a stacked
//! layer holding the state those predecessors leave (computed once, shared by later nonces),
//! never on a copy of the fork. Layers are dropped on a new head; the txs are kept until a
//! block mines them, so a chain split by a block still resolves.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{consensus::Transaction as _, primitives::Address};
use dashmap::DashMap;

use super::creations::PendingCreations;
use crate::{
    fork::{ForkCache, StateLayer},
    simulate::{SimError, Simulator},
    types::{PendingTx, SimOutcome},
};

/// A sender not seen for this long is forgotten (ten mainnet blocks: a chain of pending txs
/// older than that is stuck, and its txs come back through the pool re-sync if they matter).
const SENDER_TTL: Duration = Duration::from_secs(120);
/// At most this many senders are remembered; the least recently seen go first.
const MAX_SENDERS: usize = 50_000;
/// At most this many pending txs are kept per sender (twice what a node's pool holds for one
/// account); the lowest nonces go first.
const MAX_TXS_PER_SENDER: usize = 128;

#[derive(Debug, Default)]
struct SenderState {
    txs: BTreeMap<u64, PendingTx>,
    /// The state after the sender's pending txs up to each nonce, for the fork generation
    /// it was computed on.
    layers: BTreeMap<u64, Arc<StateLayer>>,
    layers_generation: u64,
    /// Txs that need a predecessor first, each with the lane it came by.
    waiting: Vec<(PendingTx, usize)>,
    touched: Option<Instant>,
}

/// A simulation that ran, and whether it ran after predecessors.
#[derive(Debug)]
pub struct ChainedOutcome {
    pub outcome: SimOutcome,
    pub chained: bool,
}

#[derive(Debug)]
pub enum ChainRun {
    Done(Box<ChainedOutcome>),
    /// A predecessor has not arrived yet: the tx waits for it.
    Parked {
        state_nonce: u64,
        missing: u64,
    },
    /// It calls the address a pending creation deploys to, which has not run yet: the tx
    /// waits for it.
    AwaitingCreation {
        address: Address,
    },
}

/// Pending txs by sender and nonce, with the layers their predecessors leave.
#[derive(Debug, Default)]
pub struct SenderChains {
    senders: DashMap<Address, SenderState>,
    creations: PendingCreations,
}

impl SenderChains {
    pub fn record(&self, tx: &PendingTx) {
        if let Some(address) = deploys_to(tx) {
            self.creations.expect(address);
        }
        let mut s = self.senders.entry(tx.tx.signer()).or_default();
        // A replacement (same nonce, higher fee) is the one that will be mined.
        s.txs.insert(tx.tx.nonce(), tx.clone());
        while s.txs.len() > MAX_TXS_PER_SENDER {
            s.txs.pop_first();
        }
        s.touched = Some(Instant::now());
    }

    /// Whether `tx` calls a contract a pending tx creates (it runs on that creation's layer):
    /// the node would run it against an empty account.
    pub fn calls_pending_creation(&self, tx: &PendingTx) -> bool {
        self.creations.layer_for(tx.tx.to()).is_some()
    }

    /// Contracts pending txs created, until a block holds them.
    pub fn creations(&self) -> &PendingCreations {
        &self.creations
    }

    /// Simulates `tx`, after its sender's pending predecessors when the fork's nonce is behind.
    pub fn simulate(
        &self,
        simulator: &mut Simulator,
        tx: &PendingTx,
        generation: u64,
        lane: usize,
    ) -> Result<ChainRun, SimError> {
        let to = tx.tx.to();
        if let Some(address) = to
            && self.creations.wait_for(address, tx, lane)
        {
            return Ok(ChainRun::AwaitingCreation { address });
        }
        let created = self.creations.layer_for(to);
        let stacked = created.is_some();
        if stacked {
            simulator.set_layers(created.iter().cloned().collect());
        }
        let run = simulator.simulate_with_state(tx.hash, &tx.tx);
        if stacked {
            simulator.set_layers(Vec::new());
        }
        match run {
            Err(SimError::NonceAhead { state_nonce, tx_nonce, .. }) => {
                self.simulate_chained(simulator, tx, generation, lane, (state_nonce, tx_nonce))
            }
            Ok((outcome, state)) => {
                // It ran at the fork's nonce: its sender's lower nonces are mined. A sender
                // with one tx a block never needs a chain, and would otherwise keep them all.
                if let Some(mut s) = self.senders.get_mut(&tx.tx.signer()) {
                    let nonce = tx.tx.nonce();
                    if s.txs.first_key_value().is_some_and(|(n, _)| *n < nonce) {
                        s.txs = s.txs.split_off(&nonce);
                    }
                }
                self.keep_creations(tx, &outcome, &state);
                Ok(ChainRun::Done(Box::new(ChainedOutcome { outcome, chained: false })))
            }
            Err(e) => {
                if !matches!(e, SimError::NeedState { .. }) {
                    // It will not run again: whoever waits for its creation runs without it.
                    self.creations.record(None, deploys_to(tx));
                }
                Err(e)
            }
        }
    }

    fn keep_creations(&self, tx: &PendingTx, outcome: &SimOutcome, state: &revm::state::EvmState) {
        let deploys_to = deploys_to(tx);
        if deploys_to.is_some() || crate::probe::creates_contracts(outcome) {
            self.creations.record(Some(state), deploys_to);
        }
    }

    fn simulate_chained(
        &self,
        simulator: &mut Simulator,
        tx: &PendingTx,
        generation: u64,
        lane: usize,
        (state_nonce, tx_nonce): (u64, u64),
    ) -> Result<ChainRun, SimError> {
        let sender = tx.tx.signer();
        // The newest layer this generation already has, and the predecessors still to run.
        let (mut layer, todo) = {
            let mut s = self.senders.entry(sender).or_default();
            if s.layers_generation != generation {
                s.layers.clear();
                s.layers_generation = generation;
            }
            // Mined nonces are gone for good.
            s.txs.retain(|n, _| *n >= state_nonce);
            let base = s.layers.range(state_nonce..tx_nonce).next_back().map(|(n, l)| (*n, l));
            let (start, layer) = match base {
                Some((n, l)) => (n + 1, Some(Arc::clone(l))),
                None => (state_nonce, None),
            };
            let todo: Option<Vec<PendingTx>> =
                (start..tx_nonce).map(|n| s.txs.get(&n).cloned()).collect();
            match todo {
                Some(todo) => (layer, todo),
                None => {
                    let missing = (start..tx_nonce).find(|n| !s.txs.contains_key(n));
                    s.waiting.push((tx.clone(), lane));
                    return Ok(ChainRun::Parked { state_nonce, missing: missing.unwrap_or(start) });
                }
            }
        };
        // Each predecessor runs on the layer before it; its state joins the next layer.
        for prior in &todo {
            simulator.set_layers(layer.iter().cloned().collect());
            let (_, state) = match simulator.execute(prior.hash, &prior.tx) {
                Ok(run) => run,
                Err(e) => {
                    simulator.set_layers(Vec::new());
                    return Err(e);
                }
            };
            let mut next = layer.as_deref().cloned().unwrap_or_default();
            let mut step = StateLayer::new();
            step.apply_evm_state(&state);
            next.extend(&step);
            let next = Arc::new(next);
            if let Some(mut s) = self.senders.get_mut(&sender)
                && s.layers_generation == generation
            {
                s.layers.insert(prior.tx.nonce(), Arc::clone(&next));
            }
            layer = Some(next);
        }
        let created = self.creations.layer_for(tx.tx.to());
        simulator.set_layers(created.into_iter().chain(layer).collect());
        let result = simulator.simulate_with_state(tx.hash, &tx.tx);
        simulator.set_layers(Vec::new());
        result.map(|(outcome, state)| {
            self.keep_creations(tx, &outcome, &state);
            ChainRun::Done(Box::new(ChainedOutcome { outcome, chained: true }))
        })
    }

    /// Txs of `sender` that waited for a predecessor (one arrived), and txs whose awaited
    /// creation ran: they run again now.
    pub fn unpark(&self, sender: Address) -> Vec<(PendingTx, usize)> {
        let mut out = match self.senders.get_mut(&sender) {
            Some(mut s) if !s.waiting.is_empty() => std::mem::take(&mut s.waiting),
            _ => Vec::new(),
        };
        out.extend(self.creations.take_released());
        out
    }

    /// Forgets senders not seen for a while, so the map stays bounded; drops creations `fork`
    /// now holds.
    pub fn prune(&self, fork: &ForkCache) {
        self.creations.prune(fork);
        let now = Instant::now();
        self.senders.retain(|_, s| s.touched.is_some_and(|t| now.duration_since(t) < SENDER_TTL));
        if self.senders.len() > MAX_SENDERS {
            let mut seen: Vec<Instant> = self.senders.iter().filter_map(|s| s.touched).collect();
            seen.sort_unstable();
            let cutoff = seen[seen.len() - MAX_SENDERS];
            self.senders.retain(|_, s| s.touched.is_some_and(|t| t >= cutoff));
        }
    }

    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// Pending txs held for every sender together.
    pub fn txs(&self) -> usize {
        self.senders.iter().map(|s| s.txs.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }
}

/// The address a top-level creation deploys to.
fn deploys_to(tx: &PendingTx) -> Option<Address> {
    tx.tx.to().is_none().then(|| tx.tx.signer().create(tx.tx.nonce()))
}

#[cfg(test)]
pub(super) mod tests {
    use std::{path::Path, sync::Arc};

    use alloy::{
        consensus::{SignableTransaction, TxEip1559, TxEnvelope, transaction::Recovered},
        primitives::{B256, Signature, TxKind, U256},
    };
    use revm::state::AccountInfo;

    use super::*;
    use crate::{config::Config, fork::ForkCache, simulate::SimBlock};

    const SENDER: Address = Address::repeat_byte(0x5e);
    const PAYEE: Address = Address::repeat_byte(0xee);

    pub(in crate::worker) fn pending(nonce: u64) -> PendingTx {
        let inner = TxEip1559 {
            chain_id: 1,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 1,
            to: TxKind::Call(PAYEE),
            value: U256::from(1),
            ..Default::default()
        };
        let signed = inner.into_signed(Signature::new(U256::ONE, U256::ONE, false));
        let envelope = TxEnvelope::Eip1559(signed);
        let now = Instant::now();
        PendingTx {
            hash: B256::from(U256::from(nonce + 1)),
            tx: Recovered::new_unchecked(envelope, SENDER),
            seen_at: now,
            decoded_at: now,
            queued_at: now,
            source: Arc::from("t"),
            sender_check: None,
        }
    }

    pub(in crate::worker) fn simulator(sender_nonce: u64) -> Simulator {
        let config = Config::parse(
            "[[protect]]\nname = \"Vault\"\naddress = \"0x00000000000000000000000000000000000000aa\"\n",
            Path::new("test.toml"),
        )
        .expect("valid config");
        let fork = Arc::new(ForkCache::new(1, None));
        fork.insert_account(
            SENDER,
            AccountInfo {
                balance: U256::from(10u64).pow(U256::from(18)),
                nonce: sender_nonce,
                ..Default::default()
            },
        );
        let block = SimBlock {
            number: 2,
            timestamp: 1_700_000_000,
            base_fee: 0,
            gas_limit: 30_000_000,
            beneficiary: Address::ZERO,
            prevrandao: B256::ZERO,
            excess_blob_gas: 0,
        };
        Simulator::new(&config, fork, block, 1)
    }

    #[test]
    fn a_sender_with_one_tx_a_block_keeps_only_its_pending_ones() {
        let chains = SenderChains::default();
        // Nonces 0..5 were seen and mined since; the fork's nonce is 5.
        for n in 0..=5 {
            chains.record(&pending(n));
        }
        let mut sim = simulator(5);
        let run = chains.simulate(&mut sim, &pending(5), 0, 0).expect("runs");
        assert!(matches!(run, ChainRun::Done(ref d) if !d.chained), "{run:?}");
        assert_eq!(chains.txs(), 1, "the mined nonces are gone");
    }

    #[test]
    fn a_call_to_a_contract_a_pending_tx_created_is_told_apart() {
        let chains = SenderChains::default();
        assert!(!chains.calls_pending_creation(&pending(3)), "nothing created yet");
        // PAYEE is deployed by a pending tx that has run: calls to it run on its layer.
        let mut created = revm::state::Account::from(AccountInfo::default().with_code(
            revm::bytecode::Bytecode::new_raw(alloy::primitives::Bytes::from_static(&[0x00])),
        ));
        created.status = revm::state::AccountStatus::Created | revm::state::AccountStatus::Touched;
        chains.creations.expect(PAYEE);
        chains.creations.record(Some(&[(PAYEE, created)].into_iter().collect()), Some(PAYEE));
        assert!(chains.calls_pending_creation(&pending(3)));
    }

    #[test]
    fn a_sender_keeps_at_most_its_cap_of_pending_txs_the_lowest_nonces_going_first() {
        let chains = SenderChains::default();
        for n in 0..(MAX_TXS_PER_SENDER as u64 + 50) {
            chains.record(&pending(n));
        }
        assert_eq!(chains.txs(), MAX_TXS_PER_SENDER);
        let s = chains.senders.get(&SENDER).expect("sender");
        assert_eq!(s.txs.first_key_value().map(|(n, _)| *n), Some(50));
    }
}
